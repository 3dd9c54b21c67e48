package sqlite

import (
	"context"
	"sync"

	"crm/internal/customer"
	"crm/internal/readmodel"
)

// Rebuild creates an empty copy of the read model (tables suffixed
// _rebuild, in the same database file) that the caller fills through the
// returned Rebuild; queries are served from the live tables until Swap. A
// copy left behind by a crashed process is dropped first. Only one rebuild
// may be in progress per Store: a second one gets ErrRebuildInProgress.
func (s *Store) Rebuild(ctx context.Context) (readmodel.Rebuild, error) {
	if s.closed.Load() {
		return nil, s.fail("rebuild", errClosed)
	}
	s.rebuildMu.Lock()
	defer s.rebuildMu.Unlock()
	if s.rebuild != nil {
		return nil, ErrRebuildInProgress
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.fail("rebuild", err)
	}
	defer tx.Rollback()
	var gen int64
	if err := tx.QueryRowContext(ctx, "SELECT generation FROM "+live.checkpoint).Scan(&gen); err != nil {
		return nil, s.fail("rebuild", err)
	}
	stmts := append(dropStatements(next), schema(next, gen+1)...)
	for _, stmt := range stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return nil, s.fail("rebuild", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, s.fail("rebuild", err)
	}
	s.rebuild = &rebuild{s: s}
	return s.rebuild, nil
}

// rebuild is the Rebuild of a Store. It is safe for concurrent use.
type rebuild struct {
	s    *Store
	mu   sync.RWMutex // write-locked by Swap and Abort
	done bool
}

func (r *rebuild) Load(ctx context.Context, ids []string) (map[string]customer.Customer, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.done {
		return nil, errRebuildDone
	}
	return r.s.load(ctx, next, ids)
}

func (r *rebuild) Commit(ctx context.Context, docs []customer.Customer, checkpoint uint64) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.done {
		return errRebuildDone
	}
	return r.s.commit(ctx, next, docs, checkpoint)
}

func (r *rebuild) Checkpoint(ctx context.Context) (uint64, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.done {
		return 0, errRebuildDone
	}
	return r.s.checkpoint(ctx, next)
}

// Swap replaces the live tables with the rebuilt ones in one transaction:
// the old ones are dropped and the new ones renamed into their place.
// Readers in the middle of a query finish on the old data; the next query
// reads the new.
func (r *rebuild) Swap(ctx context.Context) error {
	return r.finish(ctx, "swap", append(dropStatements(live), renameStatements(next, live)...))
}

// Abort drops the rebuilt tables; the live ones are untouched.
func (r *rebuild) Abort(ctx context.Context) error {
	return r.finish(ctx, "abort", dropStatements(next))
}

func (r *rebuild) finish(ctx context.Context, op string, stmts []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return errRebuildDone
	}
	s := r.s
	if s.closed.Load() {
		return s.fail(op, errClosed)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.fail(op, err)
	}
	defer tx.Rollback()
	for _, stmt := range stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return s.fail(op, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.fail(op, err)
	}
	r.done = true
	s.rebuildMu.Lock()
	s.rebuild = nil
	s.rebuildMu.Unlock()
	return nil
}
