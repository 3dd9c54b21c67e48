package mongodb

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crm/internal/customer"
	"crm/internal/readmodel"
)

// rebuildPrefix starts the name of a rebuild's collection; the rest is the
// Unix nanoseconds of its start.
const rebuildPrefix = Collection + "_rebuild_"

// staleRebuild is the age after which Rebuild drops the collection of a
// rebuild that was neither swapped nor aborted (its process died).
const staleRebuild = 24 * time.Hour

// errRebuildDone is returned by a Rebuild used after Swap or Abort.
var errRebuildDone = errors.New("readmodel/mongodb: rebuild already swapped or aborted")

// Rebuild creates an empty collection customers_rebuild_<unix nanos> with
// the indexes of the live one, which the caller fills through the returned
// Rebuild; queries are served from the live collection until Swap. Several
// rebuilds may run at once (each has its own collection); collections of
// rebuilds older than a day are dropped first.
func (s *Store) Rebuild(ctx context.Context) (readmodel.Rebuild, error) {
	if s.closed.Load() {
		return nil, s.fail("rebuild", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	now := time.Now()
	if err := s.dropStaleRebuilds(ctx, now); err != nil {
		return nil, s.fail("rebuild", err)
	}
	name := rebuildPrefix + strconv.FormatInt(now.UnixNano(), 10)
	if err := s.db.CreateCollection(ctx, name); err != nil {
		return nil, s.fail("rebuild", err)
	}
	c := coll{s: s, c: s.db.Collection(name)}
	if err := createIndexes(ctx, c); err != nil {
		_ = c.c.Drop(context.WithoutCancel(ctx))
		return nil, s.fail("rebuild", err)
	}
	return &rebuild{c: c}, nil
}

func (s *Store) dropStaleRebuilds(ctx context.Context, now time.Time) error {
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return err
	}
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, rebuildPrefix)
		if !ok {
			continue
		}
		ns, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || now.Sub(time.Unix(0, ns)) < staleRebuild {
			continue
		}
		if err := s.db.Collection(name).Drop(ctx); err != nil {
			return err
		}
	}
	return nil
}

// rebuild is the Rebuild of a Store. It is safe for concurrent use.
type rebuild struct {
	c    coll
	mu   sync.RWMutex // write-locked by Swap and Abort
	done bool
}

func (r *rebuild) Load(ctx context.Context, ids []string) (map[string]customer.Customer, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.done {
		return nil, errRebuildDone
	}
	return r.c.load(ctx, ids)
}

func (r *rebuild) Commit(ctx context.Context, docs []customer.Customer, checkpoint uint64) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.done {
		return errRebuildDone
	}
	return r.c.commit(ctx, docs, checkpoint)
}

func (r *rebuild) Checkpoint(ctx context.Context) (uint64, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.done {
		return 0, errRebuildDone
	}
	return r.c.checkpoint(ctx)
}

// Swap renames the rebuilt collection onto the live one (renameCollection
// with dropTarget, atomic on MongoDB), unless the live checkpoint is ahead
// of the rebuilt one: then it returns readmodel.ErrRebuildBehind and swaps
// nothing.
//
// Without transactions the comparison and the rename are two steps: a live
// projector that commits between them has that commit dropped with the old
// collection and goes on writing into the new one past a gap. Run rebuilds
// with the live projectors stopped, or accept that a live commit racing the
// swap (a window of one round trip) must be re-projected.
//
// FerretDB 1.24 does not implement dropTarget: there the live collection
// is dropped and the rebuilt one renamed in two commands, and for the
// moment between them queries find an empty read model.
func (r *rebuild) Swap(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return errRebuildDone
	}
	s := r.c.s
	if s.closed.Load() {
		return s.fail("swap", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	built, err := r.c.checkpoint(ctx)
	if err != nil {
		return err
	}
	live, err := s.live().checkpoint(ctx)
	if err != nil {
		return err
	}
	if live > built {
		return readmodel.ErrRebuildBehind
	}
	admin := s.client.Database("admin")
	from, to := s.db.Name()+"."+r.c.c.Name(), s.db.Name()+"."+Collection
	err = admin.RunCommand(ctx, bson.D{
		{Key: "renameCollection", Value: from}, {Key: "to", Value: to}, {Key: "dropTarget", Value: true},
	}).Err()
	if hasCode(err, 238) { // NotImplemented: FerretDB has no dropTarget
		if err = s.live().c.Drop(ctx); err == nil {
			err = admin.RunCommand(ctx, bson.D{{Key: "renameCollection", Value: from}, {Key: "to", Value: to}}).Err()
		}
	}
	if err != nil {
		return s.fail("swap", err)
	}
	r.done = true
	return nil
}

// Abort drops the rebuilt collection; the live one is untouched.
func (r *rebuild) Abort(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return errRebuildDone
	}
	s := r.c.s
	if s.closed.Load() {
		return s.fail("abort", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	if err := r.c.c.Drop(ctx); err != nil {
		return s.fail("abort", err)
	}
	r.done = true
	return nil
}
