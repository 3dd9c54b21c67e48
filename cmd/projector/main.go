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

	"github.com/nats-io/nats.go"

	"crm/internal/app"
	"crm/internal/config"
	"crm/internal/debugserver"
	"crm/internal/eventstore"
	"crm/internal/projections"
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
SQLite database in DATA_DIR.

`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("projector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage, config.Usage("projector", "the crm read-model projector")) }
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
	// The projector verifies no tokens: SECRET_KEY is not needed.
	cfg, err := config.Load(func(k string) string {
		if k == "SECRET_KEY" {
			return "-projector-does-not-verify-tokens-"
		}
		return getenv(k)
	})
	if err != nil {
		return err
	}
	if cfg.Embedded() {
		return errors.New("NATS_URL is required (in the embedded default the API runs the projector itself)")
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("component", "projector")
	if _, err := debugserver.Start(ctx, cfg.DebugAddr, log); err != nil {
		return fmt.Errorf("DEBUG_ADDR: %w", err)
	}

	nc, err := nats.Connect(cfg.NATSURL, nats.Name("crm-projector"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	es, err := eventstore.Open(ctx, nc, eventstore.Config{Replicas: cfg.StreamReplicas, Duplicates: cfg.DuplicateWindow})
	if err != nil {
		return err
	}
	defer es.Close()
	store, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("open read model: %w", err)
	}
	defer store.Close()

	if mode == "rebuild" {
		start := time.Now()
		cp, err := projections.Rebuild(ctx, es.JetStream(), es.StreamName(), store, log)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rebuilt the read model up to stream sequence %d in %v\n", cp, time.Since(start).Round(time.Millisecond))
		return nil
	}
	p := projections.New(es.JetStream(), es.StreamName(), store, projections.Options{Logger: log})
	log.Info("projector started", "stream", es.StreamName())
	return p.Run(ctx)
}
