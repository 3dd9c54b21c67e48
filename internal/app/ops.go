package app

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"crm/internal/metrics"
)

// opsServer is the operations listener on METRICS_ADDR: /metrics, /healthz
// and the detailed /readyz, whose reasons may name paths and carry the
// text of internal errors. It belongs on an address that only the platform
// reaches (a pod port without a Service, a loopback address), never the
// public one; the API's public /readyz tells only ready or not, per check.
type opsServer struct {
	srv *http.Server
	ln  net.Listener
}

// startOps listens on addr and serves m and ready there.
func startOps(addr string, log *slog.Logger, m *metrics.Metrics, ready func(context.Context) (bool, map[string]string)) (*opsServer, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		ok, checks := ready(ctx)
		if !ok {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unready", "checks": checks})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": checks})
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	o := &opsServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}}
	go func() {
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("operations server", "err", err)
		}
	}()
	return o, nil
}

// Addr is the address it listens on.
func (o *opsServer) Addr() string { return o.ln.Addr().String() }

// Close stops it (nil-safe).
func (o *opsServer) Close(ctx context.Context) error {
	if o == nil {
		return nil
	}
	return o.srv.Shutdown(ctx)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
