package commands

import (
	"context"
	"sync"
)

// keyedLocks serialises the commands of one customer within a process:
// concurrent commands on the same customer would otherwise all load the
// same version and all but one fail their append, then retry into each
// other again. Across processes the expected-sequence check still decides;
// this only removes the collisions a process can see coming.
//
// A waiter gives up when its context ends. The map holds only customers
// with a command running or waiting.
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch      chan struct{} // holds a token while locked
	holders int           // running + waiting
}

// lock waits for id's lock and returns its unlock, or ctx's error.
func (k *keyedLocks) lock(ctx context.Context, id string) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyLock{}
	}
	l := k.m[id]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.m[id] = l
	}
	l.holders++
	k.mu.Unlock()

	release := func() {
		k.mu.Lock()
		if l.holders--; l.holders == 0 {
			delete(k.m, id)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
