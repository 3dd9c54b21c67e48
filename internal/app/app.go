// Package app wires the service: configuration in, running parts out. Both
// cmd/api and the integration tests start the service through Start, so the
// tests run exactly what users run.
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"crm/internal/auth"
	"crm/internal/commands"
	"crm/internal/config"
	"crm/internal/embedded"
	"crm/internal/events"
	"crm/internal/eventstore"
	"crm/internal/httpapi"
	"crm/internal/imports"
	"crm/internal/metrics"
	"crm/internal/natsauth"
	"crm/internal/projections"
	"crm/internal/readmodel"
	"crm/internal/webhooks"
)

// App is a running API process (with, in embedded mode, its own nats-server,
// SQLite read model and projector).
type App struct {
	Config config.Config
	// NATSURL is the NATS server the app uses (the embedded one's URL in
	// embedded mode, with its credentials: print it with RedactURL).
	NATSURL string
	// AdminToken is a ready-to-use admin token when the secret was generated
	// (embedded mode without SECRET_KEY), else "".
	AdminToken string

	log       *slog.Logger
	ns        *embedded.Server
	nc        *nats.Conn
	events    *eventstore.Store
	store     readmodel.Store
	projector *projections.Projector
	metrics   *metrics.Metrics
	srv       *http.Server
	ln        net.Listener
	ops       *opsServer // on METRICS_ADDR, nil without
	// writeErr is the embedded server's latest write error (see
	// guardJetStream), nil while it writes.
	writeErr atomic.Pointer[error]
	// stall follows the read model's checkpoint for /readyz when no
	// projector runs in this process.
	stall stallWatch

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	imports *imports.Manager
	hooks   *webhooks.Manager
	// stopping is closed when Close begins.
	stopping chan struct{}
}

// streamTip is the stream's last sequence as a projections.Checkpointer:
// what the change feed's long polls wait on.
type streamTip struct{ es *eventstore.Store }

func (t streamTip) Checkpoint(ctx context.Context) (uint64, error) { return t.es.Tip(ctx) }

// Options for Start beyond the configuration.
type Options struct {
	Logger *slog.Logger
	// OpenStore opens the read model; default: SQLite under DATA_DIR, or
	// MongoDB when MONGODB_URL is set.
	OpenStore func(ctx context.Context, cfg config.Config) (readmodel.Store, error)
	// NoProjector: do not run the projector in this process (the API then
	// waits for read-your-writes on the store's checkpoint).
	NoProjector bool
	// WebhookSchedule replaces the webhooks' retry delays (tests: short
	// ones); its For is WEBHOOK_RETRY_FOR's when zero.
	WebhookSchedule webhooks.Schedule
	// SearchExactTotal replaces how many matches a search counts exactly
	// (search.MaxExactTotal; tests: a few).
	SearchExactTotal int64
}

// Start starts every part and returns once the API accepts connections.
// On error, whatever was started is stopped again.
func Start(ctx context.Context, cfg config.Config, o Options) (_ *App, err error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.OpenStore == nil {
		o.OpenStore = OpenStore
	}
	a := &App{Config: cfg, log: o.Logger, stopping: make(chan struct{})}
	defer func() {
		if err != nil {
			a.Close(context.Background())
		}
	}()

	key := []byte(cfg.SecretKey)
	if cfg.Embedded() {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
		}
		if err := probeWrite(cfg.DataDir, 64<<10); err != nil {
			return nil, fmt.Errorf("data directory %s is not writable (full or read-only?): %w", cfg.DataDir, err)
		}
		// The embedded server admits only its own user, whose password is
		// generated in DATA_DIR (crmctl finds it there, like secret.key).
		user, password, err := natsauth.LoadOrCreate(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS credentials: %w", err)
		}
		a.ns, err = embedded.Start(embedded.Config{DataDir: cfg.DataDir, Host: cfg.NATSHost, Port: cfg.NATSPort, NoSync: cfg.NATSNoSync,
			Logger: a.log, User: user, Password: password})
		if err != nil {
			return nil, err
		}
		a.NATSURL = natsauth.WithUser(a.ns.ClientURL(), user, password)
		if len(key) == 0 {
			if key, err = embeddedSecret(cfg.DataDir); err != nil {
				return nil, err
			}
			ttl := 30 * 24 * time.Hour
			if cfg.JWTMaxTTL > 0 {
				ttl = min(ttl, cfg.JWTMaxTTL)
			}
			a.AdminToken, err = auth.Mint(key, "00000000-0000-4000-8000-000000000001", []string{"admin"}, ttl, time.Now())
			if err != nil {
				return nil, err
			}
		}
	} else {
		a.NATSURL = cfg.NATSURL
	}

	natsAuth := cfg.NATSAuth
	if a.ns != nil {
		natsAuth = natsauth.Config{} // the URL carries the embedded credentials
	}
	if a.nc, err = connect(a.NATSURL, "crm-api", natsAuth); err != nil {
		return nil, err
	}
	esCfg := eventstore.Config{Replicas: cfg.StreamReplicas, Duplicates: cfg.DuplicateWindow}
	if a.ns != nil {
		esCfg.Writable = a.writable
	}
	a.events, err = eventstore.Open(ctx, a.nc, esCfg)
	if err != nil {
		return nil, err
	}
	a.store, err = o.OpenStore(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open read model: %w", err)
	}

	a.metrics = metrics.New(events.Types()...)
	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	if a.ns != nil {
		a.wg.Go(func() { a.guardJetStream(runCtx, time.Second) })
	}
	var waiter httpapi.Projection
	if !o.NoProjector {
		a.projector = projections.New(a.events.JetStream(), a.events.StreamName(), a.store,
			projections.Options{Logger: a.log.With("component", "projector"), Metrics: a.metrics})
		waiter = a.projector
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			_ = a.projector.Run(runCtx) // a stuck projector is reported by Status
		}()
	} else {
		waiter = &projections.CheckpointWaiter{Store: a.store}
	}

	handler := commands.New(a.events, commands.Options{Emails: emailIndex{a.store}})
	var importJobs httpapi.ImportJobs
	if cfg.ImportDir != "" {
		// A directory that cannot be used turns imports off (503, with the
		// reason in the log) rather than the whole API.
		if a.imports, err = imports.Open(cfg.ImportDir, handler, a.log.With("component", "imports")); err != nil {
			a.log.Warn("imports are off: IMPORT_DIR cannot be used", "dir", cfg.ImportDir, "err", err)
			a.imports = nil
		} else {
			importJobs = a.imports
		}
	}
	a.hooks, err = webhooks.Open(ctx, a.nc, webhooks.Options{
		Stream: a.events.StreamName(), Replicas: cfg.StreamReplicas,
		Policy:   webhooks.Policy{AllowHTTP: cfg.WebhookAllowHTTP, Allow: cfg.WebhookAllowNets},
		Timeout:  cfg.WebhookTimeout,
		Schedule: webhookSchedule(o.WebhookSchedule, cfg.WebhookRetryFor),
		Deliver:  cfg.WebhookDelivery, Tip: a.events.Tip, Logger: a.log.With("component", "webhooks"), Metrics: a.metrics,
		Source: events.DefaultSource,
	})
	var hooks httpapi.Webhooks
	if err != nil {
		// Like imports: webhooks that cannot start (their buckets refused)
		// turn off (503, the reason in the log), not the whole API.
		a.log.Warn("webhooks are off: their JetStream buckets cannot be opened", "err", err)
		a.hooks = nil
	} else {
		hooks = a.hooks
		a.wg.Go(func() { _ = a.hooks.Run(runCtx) })
	}
	verifier := auth.NewVerifier(key, auth.Options{Roles: cfg.Roles, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
		MaxTTL: cfg.JWTMaxTTL, IgnorePermissions: !cfg.JWTPermissionsClaim})
	api := httpapi.New(httpapi.Deps{
		Commands:              handler,
		Verifier:              verifier,
		Reader:                a.store,
		Projection:            waiter,
		Logger:                a.log,
		ReadYourWritesTimeout: cfg.ReadYourWritesTimeout,
		CORSOrigins:           cfg.CORSOrigins,
		Metrics:               a.metrics,
		OpsListener:           cfg.MetricsAddr != "",
		Ready:                 a.ready,
		Changes:               a.events,
		CursorKey:             httpapi.CursorKey(key),
		Imports:               importJobs,
		Webhooks:              hooks,
		ChangesWaiter:         &projections.CheckpointWaiter{Store: streamTip{a.events}, Interval: 20 * time.Millisecond},
		Stopping:              a.stopping,
		RateLimit:             httpapi.RateLimit{PerSecond: cfg.RateLimitRPS, Burst: cfg.RateLimitBurst},
		SearchExactTotal:      o.SearchExactTotal,
		LocalSession:          localSession(a.AdminToken != "", key, cfg.JWTMaxTTL),
	})
	if cfg.MetricsAddr != "" {
		if a.ops, err = startOps(cfg.MetricsAddr, a.log, a.metrics, a.ready); err != nil {
			return nil, fmt.Errorf("listen on METRICS_ADDR %s: %w", cfg.MetricsAddr, err)
		}
	}
	a.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	a.srv = &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server", "err", err)
		}
	}()
	return a, nil
}

// Addr is the address the API listens on.
func (a *App) Addr() string { return a.ln.Addr().String() }

// URL is the API's base URL (http://host:port).
func (a *App) URL() string {
	host, port, _ := net.SplitHostPort(a.Addr())
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// OpsAddr is the address of the operations listener (METRICS_ADDR:
// /metrics, /healthz, the detailed /readyz), "" without one.
func (a *App) OpsAddr() string {
	if a.ops == nil {
		return ""
	}
	return a.ops.Addr()
}

// Projector returns the in-process projector (nil with NoProjector).
func (a *App) Projector() *projections.Projector { return a.projector }

// Store returns the read model.
func (a *App) Store() readmodel.Store { return a.store }

// Close stops accepting requests, lets in-flight ones finish (until ctx
// ends), stops the projector, and closes NATS, the store and the embedded
// server, in that order.
func (a *App) Close(ctx context.Context) error {
	var err error
	a.once.Do(func() {
		close(a.stopping) // long polls answer now, so Shutdown does not wait for them
		if a.srv != nil {
			err = a.srv.Shutdown(ctx)
		} else if a.ln != nil {
			a.ln.Close()
		}
		if e := a.ops.Close(ctx); err == nil {
			err = e
		}
		if a.imports != nil {
			a.imports.Close() // the running jobs pause at their next batch, resumed at the next start
		}
		if a.cancel != nil {
			a.cancel()
		}
		a.wg.Wait()
		if a.events != nil {
			a.events.Close()
		}
		if a.nc != nil {
			_ = a.nc.Drain()
			for i := 0; i < 200 && !a.nc.IsClosed(); i++ {
				time.Sleep(10 * time.Millisecond)
			}
			a.nc.Close()
		}
		if a.store != nil {
			a.store.Close()
		}
		if a.ns != nil {
			a.ns.Shutdown()
		}
	})
	return err
}

// ready checks NATS, the stream, the read model and the projector.
func (a *App) ready(ctx context.Context) (bool, map[string]string) {
	checks := map[string]string{"nats": "ok", "stream": "ok", "readModel": "ok", "projector": "ok"}
	ok := true
	fail := func(name, why string) { checks[name], ok = why, false }
	if a.nc.Status() != nats.CONNECTED {
		fail("nats", "not connected ("+a.nc.Status().String()+")")
	}
	// The local read model first: a NATS lookup that times out must not
	// use up the budget and make the read model look unreachable too.
	if err := a.store.Ping(ctx); err != nil {
		fail("readModel", "unreachable")
	}
	var last uint64
	if err := a.writable(); err != nil {
		fail("stream", "JetStream cannot write to "+a.Config.DataDir+": "+err.Error())
	} else if s, err := a.events.JetStream().Stream(ctx, a.events.StreamName()); err != nil {
		fail("stream", "stream "+a.events.StreamName()+" unavailable")
	} else {
		last = s.CachedInfo().State.LastSeq
	}
	if a.projector != nil {
		st := a.projector.Status()
		switch {
		case st.Err != nil:
			fail("projector", "stuck: "+st.Err.Error())
		case last > st.Applied && last-st.Applied > a.Config.ReadyMaxLag:
			fail("projector", fmt.Sprintf("%d events behind (limit %d)", last-st.Applied, a.Config.ReadyMaxLag))
		}
	} else if cp, err := a.store.Checkpoint(ctx); err == nil {
		// Distributed mode: another process projects. Its checkpoint
		// must keep up, and must move while the stream is ahead of it.
		stuckFor := a.stall.observe(cp, last, time.Now())
		switch {
		case last > cp && last-cp > a.Config.ReadyMaxLag:
			fail("projector", fmt.Sprintf("read model %d events behind (limit %d)", last-cp, a.Config.ReadyMaxLag))
		case stuckFor >= a.Config.ReadyMaxStall:
			fail("projector", fmt.Sprintf("the read model's checkpoint has not moved for %v (at %d, the stream at %d): is a projector running?",
				stuckFor.Round(time.Second), cp, last))
		}
	}
	return ok, checks
}

// stallWatch tells how long a checkpoint has stayed put while the stream
// was ahead of it. Safe for concurrent use.
type stallWatch struct {
	mu    sync.Mutex
	cp    uint64
	since time.Time // when cp was first seen, or the stream first seen ahead of it
	ahead bool
}

// observe records a checkpoint and the stream's last sequence at now and
// returns how long the checkpoint has been behind without moving (0 while
// it moves or is caught up).
func (w *stallWatch) observe(cp, last uint64, now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if cp != w.cp || last <= cp || !w.ahead {
		w.cp, w.since, w.ahead = cp, now, last > cp
		return 0
	}
	return now.Sub(w.since)
}

// embeddedSecret returns the signing key kept in dataDir/secret.key,
// generating it (32 random bytes, hex) on first use.
// localSession is the minter of the console's one-click local admin
// session: offered only where the service printed an admin token at start
// (embedded default, key generated in DATA_DIR), nil elsewhere. A session
// lasts 12 hours (or JWT_MAX_TTL if shorter).
func localSession(offered bool, key []byte, maxTTL time.Duration) func() (string, time.Time, error) {
	if !offered {
		return nil
	}
	ttl := 12 * time.Hour
	if maxTTL > 0 {
		ttl = min(ttl, maxTTL)
	}
	return func() (string, time.Time, error) {
		now := time.Now()
		tok, err := auth.Mint(key, "00000000-0000-4000-8000-000000000001", []string{"admin"}, ttl, now)
		return tok, now.Add(ttl), err
	}
}

func embeddedSecret(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, "secret.key")
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); len(s) >= 32 {
			return []byte(s), nil
		}
		return nil, fmt.Errorf("%s is shorter than 32 bytes; delete it to generate a new one", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	s := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return []byte(s), nil
}

// RedactURL hides credentials in a URL list for logs and errors.
func RedactURL(u string) string {
	parts := strings.Split(u, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if scheme := strings.Index(p, "://"); scheme >= 0 && scheme < at {
				parts[i] = p[:scheme+3] + "***" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// LogLevel returns the slog level of a LOG_LEVEL value (info when unknown;
// config.Load validates it).
func LogLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s))
	return l
}

// emailIndex gives the command side the read model's look-up of customers
// by email (a hint the upserts check against the events).
type emailIndex struct{ store readmodel.Store }

func (x emailIndex) CustomerIDsByEmail(ctx context.Context, key string, limit int) ([]string, error) {
	docs, err := x.store.ByEmail(ctx, key, limit)
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	return ids, err
}

// webhookSchedule is the retry schedule: the default delays (or the
// options'), retried for WEBHOOK_RETRY_FOR unless the options say.
func webhookSchedule(o webhooks.Schedule, retryFor time.Duration) webhooks.Schedule {
	s := webhooks.DefaultSchedule
	if o.Min > 0 {
		s.Min, s.Max = o.Min, max(o.Min, o.Max)
	}
	s.For = retryFor
	if o.For > 0 {
		s.For = o.For
	}
	return s
}
