package commands

import (
	"context"
	"slices"
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

// lockAll takes the locks of ids (in sorted order, so that two commands
// taking the same two never wait for each other) and returns the unlock of
// all, or ctx's error.
func (k *keyedLocks) lockAll(ctx context.Context, ids ...string) (func(), error) {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	unlocks := make([]func(), 0, len(ids))
	unlock := func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
	for _, id := range ids {
		u, err := k.lock(ctx, id)
		if err != nil {
			unlock()
			return nil, err
		}
		unlocks = append(unlocks, u)
	}
	return unlock, nil
}
