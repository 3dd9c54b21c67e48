package projections

import (
	"context"
	"time"

	"crm/internal/readmodel"
)

// CheckpointWaiter gives read-your-writes to an API process that does not run
// the projector itself (distributed mode): it polls the read model's
// checkpoint, which every projector advances only after committing.
type CheckpointWaiter struct {
	Store    readmodel.Writer
	Interval time.Duration // poll interval, default 5ms
}

// WaitFor blocks until the store's checkpoint reaches seq or ctx ends.
func (w *CheckpointWaiter) WaitFor(ctx context.Context, seq uint64) bool {
	d := w.Interval
	if d == 0 {
		d = 5 * time.Millisecond
	}
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		if cp, err := w.Store.Checkpoint(ctx); err == nil && cp >= seq {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}
