// Package embedded runs an in-process nats-server with JetStream for the
// zero-setup default. Clients (the API, the projector, the nats CLI,
// downstream consumers) reach it over loopback TCP like any NATS server.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config of the embedded server.
type Config struct {
	// DataDir holds the JetStream store (in DataDir/jetstream).
	DataDir string
	// Host and Port to listen on; Port -1 picks a free port. Default
	// 127.0.0.1:4222.
	Host string
	Port int
	// NoSync disables syncing every write to disk (tests of speed only:
	// acknowledged writes may then be lost to an OS crash).
	NoSync bool
	// Name of the server (default "crm-embedded").
	Name string
	// Cluster, when set, makes the server a member of a JetStream cluster
	// (for tests of a 3-node cluster in one process, as nats-server's own
	// tests do).
	Cluster *Cluster
	// Logger receives the server's warnings and errors (notices at debug
	// level); nil = none.
	Logger *slog.Logger
	// User and Password, when set, are required of every client (one user
	// with every permission: the embedded service's own).
	User, Password string
}

// Cluster is the cluster membership of a server.
type Cluster struct {
	Name   string   // cluster name, the same on every member
	Port   int      // route port of this server (127.0.0.1)
	Routes []string // nats-route://127.0.0.1:PORT of every member
}

// Server is a running in-process nats-server.
type Server struct {
	ns   *server.Server
	opts *server.Options
}

// Start starts the server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("embedded: DataDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Port == 0 {
		cfg.Port = 4222
	}
	if cfg.Name == "" {
		cfg.Name = "crm-embedded"
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "jetstream"),
		// Every write is synced before it is acknowledged (see ARCHITECTURE.md:
		// the default flushes only every two minutes).
		SyncAlways:            !cfg.NoSync,
		NoSigs:                true,
		NoLog:                 false, // see logger
		MaxPayload:            2 << 20,
		DisableShortFirstPing: true,
		Username:              cfg.User,
		Password:              cfg.Password,
	}
	if c := cfg.Cluster; c != nil {
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: "127.0.0.1", Port: c.Port}
		for _, r := range c.Routes {
			opts.Routes = append(opts.Routes, server.RoutesFromStr(r)...)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded: nats-server: %w", err)
	}
	// The server reports why it cannot start (port in use, store not
	// writable) through its logger's Fatalf, then never gets ready.
	fatal := make(chan string, 1)
	var l *slog.Logger
	if cfg.Logger != nil {
		l = cfg.Logger.With("component", "nats-server")
	}
	ns.SetLogger(logger{l: l, fatal: fatal}, false, false)
	go ns.Start()
	for deadline := time.Now().Add(30 * time.Second); !ns.ReadyForConnections(100 * time.Millisecond); {
		select {
		case msg := <-fatal:
			ns.Shutdown()
			return nil, fmt.Errorf("embedded: nats-server did not start: %s", msg)
		default:
		}
		if time.Now().After(deadline) {
			ns.Shutdown()
			return nil, fmt.Errorf("embedded: nats-server on %s:%d did not start within 30s", cfg.Host, cfg.Port)
		}
	}
	if cfg.Cluster == nil && !ns.JetStreamEnabled() {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded: JetStream did not start on %s", opts.StoreDir)
	}
	return &Server{ns: ns, opts: opts}, nil
}

// ClientURL is the nats:// URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Shutdown stops the server and waits for it.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// WriteError returns the server's description of a stream or consumer that
// failed to write to disk (the disk is full, or the data directory became
// read-only), or nil. nats-server keeps such a stream failing every write
// until JetStream restarts (RestartJetStream), even after space returns.
func (s *Server) WriteError() error {
	h := s.ns.Healthz(&server.HealthzOptions{Details: true})
	var errs []string
	for _, e := range h.Errors {
		if strings.Contains(e.Error, "write error") {
			errs = append(errs, e.Error)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

// RestartJetStream stops JetStream and starts it again with the same
// configuration: every stream is recovered from its files (up to its last
// complete message; only synced, acknowledged messages are guaranteed).
// Clients see JetStream unavailable for the moment it takes; the client
// connections stay up.
func (s *Server) RestartJetStream() error {
	if err := s.ns.ShutdownJetStream(); err != nil {
		return fmt.Errorf("embedded: stop JetStream: %w", err)
	}
	o := s.opts
	err := s.ns.EnableJetStream(&server.JetStreamConfig{
		StoreDir:     o.StoreDir,
		SyncInterval: o.SyncInterval,
		SyncAlways:   o.SyncAlways,
		MaxMemory:    o.JetStreamMaxMemory,
		MaxStore:     o.JetStreamMaxStore,
		Strict:       !o.NoJetStreamStrict,
		CompressOK:   true,
	})
	if err != nil {
		_ = s.ns.ShutdownJetStream()
		return fmt.Errorf("embedded: start JetStream: %w", err)
	}
	return nil
}

// logger passes the server's log lines to slog (l, when set) and its fatal
// errors to Start (fatal).
type logger struct {
	l     *slog.Logger
	fatal chan<- string
}

func (l logger) log(level slog.Level, format string, v []any) {
	if l.l != nil {
		l.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
	}
}

func (l logger) Noticef(format string, v ...any) { l.log(slog.LevelDebug, format, v) }
func (l logger) Warnf(format string, v ...any) {
	// The embedded user's password is generated and kept in DATA_DIR
	// (mode 0600), not written in a configuration file: the server's
	// advice to hash configured passwords does not apply to it.
	if strings.HasPrefix(format, "Plaintext passwords detected") {
		return
	}
	l.log(slog.LevelWarn, format, v)
}
func (l logger) Errorf(format string, v ...any) { l.log(slog.LevelError, format, v) }
func (l logger) Debugf(format string, v ...any) { l.log(slog.LevelDebug, format, v) }
func (l logger) Tracef(format string, v ...any) { l.log(slog.LevelDebug, format, v) }

func (l logger) Fatalf(format string, v ...any) {
	l.log(slog.LevelError, format, v)
	select {
	case l.fatal <- fmt.Sprintf(format, v...):
	default:
	}
}

// StartCluster starts len(dirs) servers in-process as one JetStream cluster
// named name, server i (from 0) named name-n<i+1> with its store in dirs[i], on loopback ports picked at random (the way
// nats-server's own tests build clusters). On error, whatever started is
// shut down.
func StartCluster(name string, dirs []string) ([]*Server, error) {
	routes := make([]string, len(dirs))
	ports := make([]int, len(dirs))
	for i := range dirs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		routes[i] = "nats-route://" + l.Addr().String()
		l.Close()
	}
	servers := make([]*Server, len(dirs))
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i, dir := range dirs {
		wg.Go(func() {
			servers[i], errs[i] = Start(Config{DataDir: dir, Port: -1, Name: fmt.Sprintf("%s-n%d", name, i+1),
				Cluster: &Cluster{Name: name, Port: ports[i], Routes: routes}})
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		err = waitForPeers(servers, 30*time.Second)
	}
	if err != nil {
		for _, s := range servers {
			if s != nil {
				s.Shutdown()
			}
		}
		return nil, err
	}
	return servers, nil
}

// waitForPeers waits until the JetStream meta leader sees every server
// online with current stats: until then a stream of several replicas
// cannot be placed ("no suitable peers for placement, peer offline").
func waitForPeers(servers []*Server, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); ; {
		for _, s := range servers {
			if len(s.ns.JetStreamClusterPeers()) == len(servers) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("embedded: the JetStream cluster has not seen its %d peers online after %v", len(servers), timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
