package eventstore

import (
	"context"
	"errors"
)

// maxCodeBatch bounds how many waiting callers share one counter increment.
const maxCodeBatch = 128

// codeBatcher coalesces concurrent code requests of one process into one
// server-side increment of +n, then hands out the n numbers of the range.
// With one caller at a time it adds no latency (a batch of one is sent at
// once); under load it turns n counter writes, each synced to disk, into one.
type codeBatcher struct {
	inc  func(ctx context.Context, n int) (uint64, error)
	reqs chan chan codeResult
	quit chan struct{}
	done chan struct{}
}

type codeResult struct {
	v   uint64
	err error
}

var errClosed = errors.New("eventstore: closed")

func newCodeBatcher(inc func(ctx context.Context, n int) (uint64, error)) *codeBatcher {
	b := &codeBatcher{
		inc:  inc,
		reqs: make(chan chan codeResult, maxCodeBatch),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	go b.loop()
	return b
}

func (b *codeBatcher) next(ctx context.Context) (uint64, error) {
	res := make(chan codeResult, 1)
	select {
	case b.reqs <- res:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-b.quit:
		return 0, errClosed
	}
	// Once queued, wait for the answer even if ctx ends: the increment has
	// its own timeout, and the number is spent either way.
	select {
	case r := <-res:
		return r.v, r.err
	case <-b.done:
		select {
		case r := <-res:
			return r.v, r.err
		default:
			return 0, errClosed
		}
	}
}

func (b *codeBatcher) loop() {
	defer close(b.done)
	batch := make([]chan codeResult, 0, maxCodeBatch)
	for {
		select {
		case <-b.quit:
			return
		case r := <-b.reqs:
			batch = append(batch[:0], r)
		}
	drain:
		for len(batch) < maxCodeBatch {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		v, err := b.inc(context.Background(), len(batch))
		first := v - uint64(len(batch)) + 1
		for i, r := range batch {
			if err != nil {
				r <- codeResult{err: err}
				continue
			}
			r <- codeResult{v: first + uint64(i)}
		}
	}
}

func (b *codeBatcher) close() {
	select {
	case <-b.quit:
	default:
		close(b.quit)
	}
	<-b.done
	// Answer anyone still queued.
	for {
		select {
		case r := <-b.reqs:
			r <- codeResult{err: errClosed}
		default:
			return
		}
	}
}
