package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// runner runs one subscription's dispatcher while this replica holds its
// lease.
type runner struct {
	sub      atomic.Pointer[Subscription]
	cancel   context.CancelFunc
	done     chan struct{}
	leaseRev uint64
	// until is when the lease surely still is this replica's (unix nanos):
	// taken before the write that got or renewed it, plus LeaseTTL less a
	// margin. The dispatcher makes no attempt and no acknowledgement past
	// it, so two replicas never deliver one subscription at once (as long
	// as their clocks run at the same rate).
	until atomic.Int64
}

// kvTimeout bounds each lease operation, so that one slow call cannot
// hold the others past their leases.
const kvTimeout = 2 * time.Second

func (m *Manager) leaseUntil(t0 time.Time) int64 {
	return t0.Add(m.opts.LeaseTTL - m.opts.LeaseTTL/4).UnixNano()
}

// restartNeeded reports whether a change of a subscription needs a new
// consumer (what it reads, or where it starts); other changes (URL,
// secrets, concurrency, description) apply to the running dispatcher.
func restartNeeded(old, cur Subscription) bool {
	return old.Generation != cur.Generation || old.CustomerID != cur.CustomerID || !slices.Equal(old.Types, cur.Types)
}

// Run follows the subscriptions and, with Options.Deliver, takes the
// leases of the enabled ones no replica delivers and runs their
// dispatchers, until ctx ends; then it stops them and gives the leases
// back so that another replica goes on at once.
func (m *Manager) Run(ctx context.Context) error {
	lctx, stopLog := context.WithCancel(context.Background())
	logDone := make(chan struct{})
	go func() { defer close(logDone); m.dlog.run(lctx) }()
	defer func() { stopLog(); <-logDone }() // after the dispatchers stopped: their last attempts are written
	if !m.opts.Deliver {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(m.opts.LeaseTTL / 3)
	defer tick.Stop()
	defer m.stopAll()
	for {
		w, err := m.subs.WatchAll(ctx)
		if err != nil {
			m.log.Warn("webhooks: watch the subscriptions", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
				continue
			}
		}
		// A lease given back (a replica stopping) is taken at once, not
		// at the next tick.
		lw, err := m.leases.WatchAll(ctx, jetstream.UpdatesOnly())
		if err != nil {
			_ = w.Stop()
			m.log.Warn("webhooks: watch the leases", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		err = m.follow(ctx, w, lw, tick.C)
		_ = w.Stop()
		_ = lw.Stop()
		// Without the watches nothing renews the leases: stop delivering
		// (and give the leases back) until they run again.
		m.stopAll()
		m.mu.Lock()
		m.synced, m.known = false, map[string]Subscription{}
		m.mu.Unlock()
		if ctx.Err() != nil {
			return nil
		}
		m.log.Warn("webhooks: the subscriptions' watch ended; watching again", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (m *Manager) follow(ctx context.Context, w, leases jetstream.KeyWatcher, tick <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-leases.Updates():
			if !ok {
				return errors.New("lease watch closed")
			}
			if e != nil && e.Operation() != jetstream.KeyValuePut {
				m.reconcile(ctx, false)
			}
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch closed")
			}
			m.mu.Lock()
			if e == nil {
				m.synced = true
			} else if e.Operation() != jetstream.KeyValuePut {
				delete(m.known, e.Key())
			} else {
				var s Subscription
				if json.Unmarshal(e.Value(), &s) == nil {
					m.known[e.Key()] = s
				}
			}
			synced := m.synced
			m.mu.Unlock()
			if synced {
				m.reconcile(ctx, false)
			}
		case <-tick:
			m.reconcile(ctx, true)
		}
	}
}

// reconcile starts the dispatchers of the enabled subscriptions whose
// lease it gets, stops those disabled, deleted or whose lease it lost, and
// (renew) renews the leases it holds.
func (m *Manager) reconcile(ctx context.Context, renew bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.synced {
		return
	}
	for id, r := range m.running {
		s, ok := m.known[id]
		if !ok || !s.Enabled {
			m.stop(id, r, true)
			if !ok {
				m.deleteConsumers(ctx, id, "")
				m.opts.Metrics.ForgetWebhook(id)
			}
			continue
		}
		select {
		case <-r.done: // it ended (disabled, as it read the subscription): start again if enabled
			m.stop(id, r, false)
			m.start(ctx, s, r.leaseRev, r.until.Load())
			continue
		default:
		}
		if restartNeeded(*r.sub.Load(), s) {
			m.stop(id, r, false)
			m.start(ctx, s, r.leaseRev, r.until.Load())
			continue
		}
		r.sub.Store(&s)
		if renew {
			t0 := time.Now()
			kctx, cancel := context.WithTimeout(ctx, kvTimeout)
			rev, err := m.leases.Update(kctx, id, []byte(m.replica), r.leaseRev)
			cancel()
			switch {
			case err == nil:
				r.leaseRev = rev
				r.until.Store(m.leaseUntil(t0))
			case isWrongRevision(err) || errors.Is(err, jetstream.ErrKeyNotFound):
				m.log.Warn("webhooks: lost the lease of a subscription", "subscription", id)
				m.stop(id, r, false)
			case time.Now().UnixNano() >= r.until.Load():
				m.log.Warn("webhooks: cannot renew a lease: stopped", "subscription", id, "err", err)
				m.stop(id, r, false)
			}
		}
	}
	for id, s := range m.known {
		if !s.Enabled || m.running[id] != nil {
			continue
		}
		t0 := time.Now()
		kctx, cancel := context.WithTimeout(ctx, kvTimeout)
		rev, err := m.leases.Create(kctx, id, []byte(m.replica))
		cancel()
		if err != nil {
			continue // another replica delivers it (or NATS is away: next tick)
		}
		m.start(ctx, s, rev, m.leaseUntil(t0))
	}
}

// start runs s's dispatcher (m.mu held), restarting it after failures
// until it is stopped or disables the subscription.
func (m *Manager) start(ctx context.Context, s Subscription, leaseRev uint64, until int64) {
	rctx, cancel := context.WithCancel(ctx)
	r := &runner{cancel: cancel, done: make(chan struct{}), leaseRev: leaseRev}
	r.until.Store(until)
	r.sub.Store(&s)
	m.running[s.ID] = r
	go func() {
		defer close(r.done)
		d := &dispatcher{m: m, sub: &r.sub, until: &r.until}
		wait := 100 * time.Millisecond
		for {
			started := time.Now()
			err := d.run(rctx)
			if rctx.Err() != nil || errors.Is(err, errDisabled) {
				return
			}
			if time.Since(started) > time.Minute {
				wait = 100 * time.Millisecond
			}
			m.log.Warn("webhooks: delivery stopped; restarting", "subscription", s.ID, "err", err, "in", wait)
			select {
			case <-rctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(wait*2, 30*time.Second)
		}
	}()
}

// stop ends a dispatcher (m.mu held) and, with release, gives its lease
// back.
func (m *Manager) stop(id string, r *runner, release bool) {
	r.cancel()
	<-r.done
	delete(m.running, id)
	if release {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = m.leases.Delete(ctx, id, jetstream.LastRevision(r.leaseRev))
		cancel()
	}
}

func (m *Manager) stopAll() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, r := range m.running {
		m.stop(id, r, true)
	}
}
