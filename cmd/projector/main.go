// Command projector runs the crm projector on its own: it consumes the
// customer stream of an external NATS and builds the read model (MongoDB with
// MONGODB_URL, else SQLite in DATA_DIR). In the embedded default the API runs
// the projector in-process and this command is not needed, except for
// "projector rebuild".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"crm/internal/app"
	"crm/internal/config"
	"crm/internal/debugserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "crm projector:", err)
		os.Exit(1)
	}
}

const usage = `Usage: projector [run|rebuild]

  run      (default) consume the stream and keep the read model up to date
  rebuild  project the whole stream into a fresh copy of the read model and
           swap it in atomically (queries keep being served until the swap)

Requires NATS_URL (the embedded service's NATS is printed at its start-up,
e.g. nats://127.0.0.1:4222). The read model is MongoDB (MONGODB_URL) or the
SQLite database in DATA_DIR. "run" serves /metrics, /healthz and /readyz on
METRICS_ADDR; it exits non-zero at an event it cannot apply.

`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("projector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage, config.Usage(config.Projector, "projector", "the crm read-model projector"))
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	mode := "run"
	if fs.NArg() > 0 {
		mode = fs.Arg(0)
	}
	if mode != "run" && mode != "rebuild" || fs.NArg() > 1 {
		fs.Usage()
		return fmt.Errorf("unknown arguments %q", fs.Args())
	}
	cfg, err := config.LoadProjector(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: app.LogLevel(cfg.LogLevel)})).With("component", "projector")
	if _, err := debugserver.Start(ctx, cfg.DebugAddr, log); err != nil {
		return fmt.Errorf("DEBUG_ADDR: %w", err)
	}
	if mode == "rebuild" {
		start := time.Now()
		cp, err := app.RebuildReadModel(ctx, cfg, log)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rebuilt the read model up to stream sequence %d in %v\n", cp, time.Since(start).Round(time.Millisecond))
		return nil
	}
	p, err := app.StartProjector(ctx, cfg, app.Options{Logger: log})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "crm projector: metrics, /healthz and /readyz on http://%s\n", p.Addr())
	select {
	case <-ctx.Done():
	case <-p.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runErr := p.Err()
	if err := p.Close(sctx); err != nil && runErr == nil {
		return err
	}
	return runErr
}
