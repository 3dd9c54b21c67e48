package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"crm/internal/app"
	"crm/internal/apptest"
	"crm/internal/config"
	"crm/internal/embedded"
	"crm/internal/events"
)

// TestDistributedProjector runs the distributed wiring: an external NATS, an
// API that runs no projector, and the projector process of cmd/projector
// (app.StartProjector) on the same read model. Without a projector the
// API's /readyz fails once the checkpoint stops moving while the stream
// grows, naming the cause; with one it is ready, and the projector's own
// /healthz, /readyz and /metrics answer.
func TestDistributedProjector(t *testing.T) {
	ns, err := embedded.Start(embedded.Config{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	dir := t.TempDir()
	cfg := apptest.Config(t, dir)
	cfg.NATSURL = ns.ClientURL()
	cfg.ReadyMaxStall = time.Second
	cfg.ReadYourWritesTimeout = 100 * time.Millisecond
	cfg.MetricsAddr = "127.0.0.1:0"
	api := apptest.Start(t, cfg, func(o *app.Options) { o.NoProjector = true })

	r := api.Do("POST", "/api/v1/crm/customers", `{"name":"Waiting For A Projector"}`)
	if r.Status != http.StatusCreated || r.Header.Get("X-Read-Model") != "behind" {
		t.Fatalf("create without a projector: %d, X-Read-Model %q", r.Status, r.Header.Get("X-Read-Model"))
	}
	var created envelope
	r.JSON(t, &created)
	var checks map[string]string
	apptest.Eventually(t, 10*time.Second, "unready without a projector", func() bool {
		var status int
		status, checks = detailedChecks(t, api)
		return status == http.StatusServiceUnavailable
	})
	if !strings.Contains(checks["projector"], "is a projector running?") {
		t.Fatalf("/readyz does not name the cause: %v", checks)
	}

	var logs bytes.Buffer
	pcfg, err := config.LoadProjector(func(k string) string {
		return map[string]string{"NATS_URL": ns.ClientURL(), "DATA_DIR": dir, "METRICS_ADDR": "127.0.0.1:0", "LOG_LEVEL": "warn"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := app.StartProjector(context.Background(), pcfg, app.Options{
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: app.LogLevel(pcfg.LogLevel)}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	apptest.Eventually(t, 10*time.Second, "ready with a projector", func() bool {
		status, _ := readyChecks(t, api)
		return status == http.StatusOK
	})
	if g := api.Do("GET", "/api/v1/crm/customers/"+created.Data.CustomerID, nil); g.Status != http.StatusOK {
		t.Fatalf("read after the projector caught up: %d", g.Status)
	}

	get := func(path string) (int, []byte) {
		resp, err := http.Get("http://" + p.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if status, _ := get("/healthz"); status != http.StatusOK {
		t.Errorf("projector /healthz: %d", status)
	}
	status, body := get("/readyz")
	var ready struct {
		Status string
		Checks map[string]string
	}
	if json.Unmarshal(body, &ready); status != http.StatusOK || ready.Checks["projector"] != "ok" {
		t.Errorf("projector /readyz: %d %s", status, body)
	}
	if status, body := get("/metrics"); status != http.StatusOK ||
		!strings.Contains(string(body), `crm_projector_events_total{type="`+events.TypeCreatedV1+`"} 1`) ||
		!strings.Contains(string(body), "crm_projector_lag_events 0") {
		t.Errorf("projector /metrics: %d\n%.2000s", status, body)
	}
	if strings.Contains(logs.String(), `"level":"INFO"`) {
		t.Errorf("LOG_LEVEL=warn, but the projector logged at info:\n%s", logs.String())
	}
}
