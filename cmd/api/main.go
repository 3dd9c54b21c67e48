// Command api runs the crm REST API. With no NATS_URL it is the whole
// service in one process: an embedded nats-server (JetStream on DATA_DIR),
// the SQLite read model and the projector.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"crm/internal/app"
	"crm/internal/config"
	"crm/internal/debugserver"
	"crm/internal/natsauth"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "crm api:", err)
		os.Exit(1)
	}
}

// shutdownGrace bounds how long in-flight requests may finish after SIGTERM.
const shutdownGrace = 25 * time.Second

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: api\n\n", config.Usage(config.API, "api", "the crm REST API (embedded NATS + SQLite by default)"))
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: app.LogLevel(cfg.LogLevel)}))

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Distributed mode (external NATS and MongoDB): cmd/projector builds the
	// read model and the API waits for read-your-writes on its checkpoint.
	// Otherwise the API runs the projector itself.
	distributed := !cfg.Embedded() && cfg.MongoURL != ""
	if _, err := debugserver.Start(ctx, cfg.DebugAddr, log); err != nil {
		return fmt.Errorf("DEBUG_ADDR: %w", err)
	}
	a, err := app.Start(ctx, cfg, app.Options{Logger: log, NoProjector: distributed})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "crm API listening on %s\n", a.URL())
	if cfg.Embedded() {
		fmt.Fprintf(stdout, "embedded NATS (JetStream, data in %s): %s (user and password in %s)\n", cfg.DataDir,
			app.RedactURL(a.NATSURL), filepath.Join(cfg.DataDir, natsauth.EmbeddedFile))
	}
	if a.AdminToken != "" {
		valid := "30 days"
		if cfg.JWTMaxTTL > 0 && cfg.JWTMaxTTL < 30*24*time.Hour {
			valid = cfg.JWTMaxTTL.String()
		}
		fmt.Fprintf(stdout, "admin token (valid %s; mint more with: go run ./cmd/crmctl token --data-dir %s):\n%s\n", valid, cfg.DataDir, a.AdminToken)
	}
	if a.OpsAddr() != "" {
		fmt.Fprintf(stdout, "operations listener (/metrics, /healthz, detailed /readyz): http://%s\n", a.OpsAddr())
	}
	<-ctx.Done()
	stop()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	return a.Close(sctx)
}
