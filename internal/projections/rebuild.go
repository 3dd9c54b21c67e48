package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/readmodel"
)

// Rebuild projects the whole stream into a fresh copy of the read model and
// swaps it in atomically; queries keep being served from the live copy until
// the swap. It returns the checkpoint of the new read model.
func Rebuild(ctx context.Context, js jetstream.JetStream, stream string, store readmodel.Store, log *slog.Logger) (uint64, error) {
	rb, err := store.Rebuild(ctx)
	if err != nil {
		return 0, fmt.Errorf("start rebuild: %w", err)
	}
	swapped := false
	defer func() {
		if !swapped {
			_ = rb.Abort(context.WithoutCancel(ctx))
		}
	}()
	p := New(js, stream, rb, Options{Logger: log})
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	for attempt := 0; attempt < 1000; attempt++ {
		info, err := s.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("stream info: %w", err)
		}
		target := info.State.LastSeq
		if live, err := store.Checkpoint(ctx); err == nil && live > target {
			target = live
		}
		if target > 0 {
			if err := p.CatchUp(ctx, target); err != nil {
				return 0, err
			}
		}
		err = rb.Swap(ctx)
		if errors.Is(err, readmodel.ErrRebuildBehind) {
			continue // the live projector moved on meanwhile
		}
		if err != nil {
			return 0, fmt.Errorf("swap: %w", err)
		}
		swapped = true
		return p.Status().Applied, nil
	}
	return 0, errors.New("rebuild: could not catch up with the live read model")
}
