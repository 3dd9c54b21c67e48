package projections

import (
	"context"
	"sync"
	"time"
)

// CheckpointWaiter gives read-your-writes to an API process that does not run
// the projector itself (distributed mode): it polls the read model's
// checkpoint, which every projector advances only after committing. One
// poll loop serves every waiting request (it runs only while some request
// waits), so the store sees one checkpoint read per interval, not one per
// waiting request. Safe for concurrent use.
type CheckpointWaiter struct {
	// Store is the read model (readmodel.Writer), or whatever else has a
	// sequence that only grows (the change feed waits for the stream's
	// tip).
	Store    Checkpointer
	Interval time.Duration // poll interval, default 5ms

	mu       sync.Mutex
	seen     uint64        // highest checkpoint read so far
	progress chan struct{} // closed when seen moves or the poller stops
	waiters  int           // requests waiting; the poller runs while > 0
	polling  bool          // a poll loop is running
}

// Checkpointer reports a stream sequence that never decreases.
type Checkpointer interface {
	Checkpoint(ctx context.Context) (uint64, error)
}

// WaitFor blocks until the store's checkpoint reaches seq or ctx ends.
func (w *CheckpointWaiter) WaitFor(ctx context.Context, seq uint64) bool {
	w.mu.Lock()
	if w.seen >= seq {
		w.mu.Unlock()
		return true
	}
	w.waiters++
	if w.progress == nil {
		w.progress = make(chan struct{})
	}
	if !w.polling {
		w.polling = true
		go w.poll()
	}
	defer func() {
		w.mu.Lock()
		w.waiters--
		w.mu.Unlock()
	}()
	for {
		ch := w.progress
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
		w.mu.Lock()
		if w.seen >= seq {
			w.mu.Unlock()
			return true
		}
	}
}

// poll reads the checkpoint every interval while anyone waits.
func (w *CheckpointWaiter) poll() {
	d := w.Interval
	if d == 0 {
		d = 5 * time.Millisecond
	}
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		cp, err := w.Store.Checkpoint(ctx)
		cancel()
		w.mu.Lock()
		if err == nil && cp > w.seen {
			w.seen = cp
			close(w.progress)
			w.progress = make(chan struct{})
		}
		if w.waiters == 0 {
			w.polling = false // nobody waits: the next waiter starts a new loop
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		<-t.C
	}
}
