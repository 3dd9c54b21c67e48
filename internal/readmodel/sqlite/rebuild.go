package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"sync"
	"time"

	"crm/internal/readmodel"
)

// leaseTable holds the rebuild lease (readmodel.Store.Rebuild): one row
// while a rebuild is in progress, its owner and the Unix nanoseconds of its
// last write. It is not one of the tables a rebuild copies, so a Swap
// leaves it in place.
const leaseTable = `CREATE TABLE IF NOT EXISTS rebuild_lease (
	id        INTEGER PRIMARY KEY CHECK (id = 1),
	owner     TEXT    NOT NULL,
	heartbeat INTEGER NOT NULL
)`

// Rebuild takes the rebuild lease and creates an empty copy of the read
// model (tables suffixed _rebuild, in the same database file) that the
// caller fills through the returned Rebuild; queries are served from the
// live tables until Swap. The copy of an abandoned rebuild is dropped
// first. While another rebuild, of this process or another, holds the
// lease, it returns readmodel.ErrRebuildInProgress.
func (s *Store) Rebuild(ctx context.Context) (readmodel.Rebuild, error) {
	if s.closed.Load() {
		return nil, s.fail("rebuild", errClosed)
	}
	ctx = context.WithoutCancel(ctx) // a write transaction, see commit
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.fail("rebuild", err)
	}
	defer tx.Rollback()
	var (
		holder    string
		heartbeat int64
	)
	err = tx.QueryRowContext(ctx, "SELECT owner, heartbeat FROM rebuild_lease WHERE id = 1").Scan(&holder, &heartbeat)
	switch {
	case err == nil && time.Since(time.Unix(0, heartbeat)) < readmodel.RebuildLease:
		return nil, readmodel.ErrRebuildInProgress
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return nil, s.fail("rebuild", err)
	}
	owner := rand.Text()
	if _, err := tx.ExecContext(ctx, "INSERT INTO rebuild_lease (id, owner, heartbeat) VALUES (1, ?, ?) "+
		"ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, heartbeat = excluded.heartbeat",
		owner, time.Now().UnixNano()); err != nil {
		return nil, s.fail("rebuild", err)
	}
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
	return &rebuild{s: s, owner: owner}, nil
}

// renewLease renews the lease of owner in tx, or returns
// readmodel.ErrRebuildLost when another rebuild holds it now.
func renewLease(ctx context.Context, tx *sql.Tx, owner string) error {
	res, err := tx.ExecContext(ctx, "UPDATE rebuild_lease SET heartbeat = ? WHERE id = 1 AND owner = ?", time.Now().UnixNano(), owner)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.Join(readmodel.ErrRebuildLost, err)
	}
	return nil
}

// rebuild is the Rebuild of a Store. It is safe for concurrent use.
type rebuild struct {
	s     *Store
	owner string       // this rebuild's lease
	mu    sync.RWMutex // write-locked by Swap and Abort
	done  bool
}

func (r *rebuild) Load(ctx context.Context, ids []string) (map[string]readmodel.Customer, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.done {
		return nil, errRebuildDone
	}
	return r.s.load(ctx, next, ids)
}

func (r *rebuild) Commit(ctx context.Context, docs []readmodel.Customer, checkpoint uint64) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.done {
		return errRebuildDone
	}
	return r.s.commit(ctx, next, r.owner, readmodel.Batch{Customers: docs}, checkpoint)
}

func (r *rebuild) CommitBatch(ctx context.Context, b readmodel.Batch, checkpoint uint64) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.done {
		return errRebuildDone
	}
	return r.s.commit(ctx, next, r.owner, b, checkpoint)
}

func (r *rebuild) LoadActivities(ctx context.Context, ids []string) (map[string]readmodel.Activity, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.done {
		return nil, errRebuildDone
	}
	return r.s.loadActivities(ctx, next, ids)
}

func (r *rebuild) LoadContacts(ctx context.Context, ids []string) (map[string]readmodel.Contact, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.done {
		return nil, errRebuildDone
	}
	return r.s.loadContacts(ctx, next, ids)
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
// reads the new. When the live checkpoint is ahead of the rebuilt one it
// returns readmodel.ErrRebuildBehind and changes nothing; the rebuild stays
// usable.
func (r *rebuild) Swap(ctx context.Context) error {
	return r.finish(ctx, "swap", func(ctx context.Context, tx *sql.Tx) error {
		var liveSeq, builtSeq int64
		err := tx.QueryRowContext(ctx, "SELECT l.seq, b.seq FROM "+live.checkpoint+" AS l, "+
			next.checkpoint+" AS b").Scan(&liveSeq, &builtSeq)
		if err != nil {
			return err
		}
		if liveSeq > builtSeq {
			return readmodel.ErrRebuildBehind
		}
		return execAll(ctx, tx, append(dropStatements(live), renameStatements(next, live)...))
	})
}

// Abort drops the rebuilt tables; the live ones are untouched.
func (r *rebuild) Abort(ctx context.Context) error {
	return r.finish(ctx, "abort", func(ctx context.Context, tx *sql.Tx) error {
		return execAll(ctx, tx, dropStatements(next))
	})
}

func execAll(ctx context.Context, tx *sql.Tx, stmts []string) error {
	for _, stmt := range stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// finish runs fn in a write transaction and, once it committed, ends the
// rebuild. Like a Commit it is not interrupted by ctx halfway.
func (r *rebuild) finish(ctx context.Context, op string, fn func(context.Context, *sql.Tx) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return errRebuildDone
	}
	s := r.s
	if s.closed.Load() {
		return s.fail(op, errClosed)
	}
	ctx = context.WithoutCancel(ctx)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.fail(op, err)
	}
	defer tx.Rollback()
	if err := renewLease(ctx, tx, r.owner); err != nil {
		return s.fail(op, err)
	}
	if err := fn(ctx, tx); err != nil {
		if errors.Is(err, readmodel.ErrRebuildBehind) {
			return err
		}
		return s.fail(op, err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM rebuild_lease WHERE id = 1"); err != nil {
		return s.fail(op, err)
	}
	if err := tx.Commit(); err != nil {
		return s.fail(op, err)
	}
	r.done = true
	return nil
}
