// Package embedded runs an in-process nats-server with JetStream for the
// zero-setup default. Clients (the API, the projector, the nats CLI,
// downstream consumers) reach it over loopback TCP like any NATS server.
package embedded

import (
	"errors"
	"fmt"
	"path/filepath"
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
}

// Cluster is the cluster membership of a server.
type Cluster struct {
	Name   string   // cluster name, the same on every member
	Port   int      // route port of this server (127.0.0.1)
	Routes []string // nats-route://127.0.0.1:PORT of every member
}

// Server is a running in-process nats-server.
type Server struct {
	ns *server.Server
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
		NoLog:                 true,
		MaxPayload:            2 << 20,
		DisableShortFirstPing: true,
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
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded: nats-server on %s:%d did not start (port in use or data directory not writable?)", cfg.Host, cfg.Port)
	}
	if cfg.Cluster == nil && !ns.JetStreamEnabled() {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded: JetStream did not start on %s", opts.StoreDir)
	}
	return &Server{ns: ns}, nil
}

// ClientURL is the nats:// URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// Shutdown stops the server and waits for it.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}
