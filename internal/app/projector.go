package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/config"
	"crm/internal/events"
	"crm/internal/eventstore"
	"crm/internal/metrics"
	"crm/internal/natsauth"
	"crm/internal/projections"
	"crm/internal/readmodel"
)

// ProjectorProcess is a running cmd/projector: its NATS connection, the read
// model, the projector, and the operations server on METRICS_ADDR
// (/metrics, /healthz, /readyz). It reads the stream only: it creates and
// changes no stream.
type ProjectorProcess struct {
	cfg       config.Config
	log       *slog.Logger
	nc        *nats.Conn
	js        jetstream.JetStream
	store     readmodel.Store
	projector *projections.Projector
	ops       *opsServer

	cancel context.CancelFunc
	done   chan struct{}
	err    error // of the projector's Run, once done is closed
	once   sync.Once
}

// StartProjector starts a projector process with cfg (see
// config.LoadProjector) and returns once its operations server listens.
func StartProjector(ctx context.Context, cfg config.Config, o Options) (_ *ProjectorProcess, err error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.OpenStore == nil {
		o.OpenStore = OpenStore
	}
	p := &ProjectorProcess{cfg: cfg, log: o.Logger, done: make(chan struct{})}
	defer func() {
		if err != nil {
			p.Close(context.Background())
		}
	}()
	if p.nc, err = connect(cfg.NATSURL, "crm-projector", cfg.NATSAuth); err != nil {
		return nil, err
	}
	if p.js, err = jetstream.New(p.nc, jetstream.WithDefaultTimeout(5*time.Second)); err != nil {
		return nil, err
	}
	if p.store, err = o.OpenStore(ctx, cfg); err != nil {
		return nil, fmt.Errorf("open read model: %w", err)
	}
	m := metrics.New(events.Types()...)
	p.projector = projections.New(p.js, eventstore.DefaultStream, p.store, projections.Options{Logger: p.log, Metrics: m})

	if p.ops, err = startOps(cfg.MetricsAddr, p.log, m, p.ready); err != nil {
		return nil, fmt.Errorf("listen on METRICS_ADDR %s: %w", cfg.MetricsAddr, err)
	}

	runCtx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		defer close(p.done)
		p.err = p.projector.Run(runCtx)
	}()
	p.log.Info("projector started", "stream", eventstore.DefaultStream, "metrics", "http://"+p.ops.Addr()+"/metrics")
	return p, nil
}

// Addr is the address of the operations server.
func (p *ProjectorProcess) Addr() string { return p.ops.Addr() }

// Done is closed when the projector stopped: at Close, or at an event it
// cannot apply (Err says which).
func (p *ProjectorProcess) Done() <-chan struct{} { return p.done }

// Err is the projector's error once Done is closed (nil after Close).
func (p *ProjectorProcess) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Close stops the projector and the operations server and closes NATS and
// the read model.
func (p *ProjectorProcess) Close(ctx context.Context) error {
	var err error
	p.once.Do(func() {
		if p.cancel != nil {
			p.cancel()
			<-p.done
		}
		err = p.ops.Close(ctx)
		if p.nc != nil {
			p.nc.Close()
		}
		if p.store != nil {
			p.store.Close()
		}
	})
	return err
}

// ready checks NATS, the read model and the projector: not stuck, at most
// READY_MAX_LAG events behind the stream.
func (p *ProjectorProcess) ready(ctx context.Context) (bool, map[string]string) {
	checks := map[string]string{"nats": "ok", "stream": "ok", "readModel": "ok", "projector": "ok"}
	ok := true
	fail := func(name, why string) { checks[name], ok = why, false }
	if p.nc.Status() != nats.CONNECTED {
		fail("nats", "not connected ("+p.nc.Status().String()+")")
	}
	if err := p.store.Ping(ctx); err != nil {
		fail("readModel", "unreachable")
	}
	var last uint64
	if s, err := p.js.Stream(ctx, eventstore.DefaultStream); err != nil {
		fail("stream", "stream "+eventstore.DefaultStream+" unavailable")
	} else {
		last = s.CachedInfo().State.LastSeq
	}
	st := p.projector.Status()
	switch {
	case st.Err != nil:
		fail("projector", "stuck: "+st.Err.Error())
	case last > st.Applied && last-st.Applied > p.cfg.ReadyMaxLag:
		fail("projector", fmt.Sprintf("%d events behind (limit %d)", last-st.Applied, p.cfg.ReadyMaxLag))
	}
	return ok, checks
}

// RebuildReadModel projects the whole stream into a fresh copy of the read
// model and swaps it in (projector rebuild); it returns the new
// checkpoint.
func RebuildReadModel(ctx context.Context, cfg config.Config, log *slog.Logger) (uint64, error) {
	nc, err := connect(cfg.NATSURL, "crm-projector-rebuild", cfg.NATSAuth)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(5*time.Second))
	if err != nil {
		return 0, err
	}
	store, err := OpenStore(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("open read model: %w", err)
	}
	defer store.Close()
	return projections.Rebuild(ctx, js, eventstore.DefaultStream, store, log)
}

// connect opens a NATS connection that reconnects forever.
func connect(url, name string, auth natsauth.Config) (*nats.Conn, error) {
	opts, err := auth.Options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", RedactURL(url), err)
	}
	return nc, nil
}
