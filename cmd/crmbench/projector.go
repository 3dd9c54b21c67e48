package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"crm/internal/projections"
	"crm/internal/readmodel"
	"crm/internal/readmodel/sqlite"
)

// catchUp runs the projector (internal/projections, its default batch
// size) from the start of the service's stream into a fresh temporary
// SQLite read model, as `projector rebuild` does, until target is applied
// or limit passes. It returns the events applied and the time taken.
// Reading the stream is all it does to the service: an ordered consumer,
// which is ephemeral.
func (b *bench) catchUp(ctx context.Context, first, target uint64, limit time.Duration) (events uint64, took time.Duration, live int64, err error) {
	dir, rm, err := b.tempDir("projector")
	if err != nil {
		return 0, 0, 0, err
	}
	defer rm()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "readmodel.db"))
	if err != nil {
		return 0, 0, 0, err
	}
	defer store.Close()
	p := projections.New(b.js, b.stream, store, projections.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	runCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	start := time.Now()
	err = p.CatchUp(runCtx, target)
	took = time.Since(start)
	if err != nil {
		return 0, took, 0, fmt.Errorf("projector: %w", err)
	}
	if ctx.Err() != nil {
		return 0, took, 0, ctx.Err()
	}
	applied, err := store.Checkpoint(context.Background())
	if err != nil {
		return 0, took, 0, err
	}
	if applied >= first {
		events = applied - first + 1
	}
	if pg, err := store.List(context.Background(), readmodel.Query{Page: 1, PerPage: 1}); err == nil {
		live = pg.Total
	}
	return events, took, live, nil
}
