package mongodb

import (
	"context"
	"crypto/rand"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"crm/internal/readmodel"
)

// rebuildPrefix starts the name of a rebuild's collection; the rest is the
// Unix nanoseconds of its start.
const rebuildPrefix = Collection + "_rebuild_"

// leaseCollection holds the rebuild lease (readmodel.Store.Rebuild): one
// document, _id "lease", while a rebuild is in progress: its owner, its
// collection and the Unix nanoseconds of its last write. Taking the lease
// is an insert, which the unique _id makes atomic on MongoDB and on
// FerretDB alike.
const leaseCollection = "crm_rebuild_lease"

type lease struct {
	ID         string `bson:"_id"`
	Owner      string `bson:"owner"`
	Collection string `bson:"collection"`
	Heartbeat  int64  `bson:"heartbeat"`
}

// errRebuildDone is returned by a Rebuild used after Swap or Abort.
var errRebuildDone = errors.New("readmodel/mongodb: rebuild already swapped or aborted")

// Rebuild takes the rebuild lease and creates an empty collection
// customers_rebuild_<unix nanos> with the indexes of the live one, which
// the caller fills through the returned Rebuild; queries are served from
// the live collection until Swap. The collections of abandoned rebuilds are
// dropped first. While another rebuild, of this process or another, holds
// the lease, it returns readmodel.ErrRebuildInProgress.
func (s *Store) Rebuild(ctx context.Context) (readmodel.Rebuild, error) {
	if s.closed.Load() {
		return nil, s.fail("rebuild", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	now := time.Now()
	name := rebuildPrefix + strconv.FormatInt(now.UnixNano(), 10)
	l := lease{ID: "lease", Owner: rand.Text(), Collection: name, Heartbeat: now.UnixNano()}
	leases := s.db.Collection(leaseCollection)
	for attempt := 0; ; attempt++ {
		_, err := leases.InsertOne(ctx, l)
		if err == nil {
			break
		}
		if !mongo.IsDuplicateKeyError(err) || attempt > 0 {
			if mongo.IsDuplicateKeyError(err) {
				return nil, readmodel.ErrRebuildInProgress
			}
			return nil, s.fail("rebuild", err)
		}
		var held lease
		if err := leases.FindOne(ctx, bson.D{{Key: "_id", Value: "lease"}}).Decode(&held); err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return nil, s.fail("rebuild", err)
		} else if err == nil {
			if now.Sub(time.Unix(0, held.Heartbeat)) < readmodel.RebuildLease {
				return nil, readmodel.ErrRebuildInProgress
			}
			// Abandoned: take it over (the condition makes a concurrent
			// taker's delete a no-op, and only one insert can win).
			if _, err := leases.DeleteOne(ctx, bson.D{{Key: "_id", Value: "lease"}, {Key: "owner", Value: held.Owner},
				{Key: "heartbeat", Value: held.Heartbeat}}); err != nil {
				return nil, s.fail("rebuild", err)
			}
		}
	}
	if err := s.dropRebuilds(ctx); err != nil {
		return nil, s.fail("rebuild", err)
	}
	if err := s.db.CreateCollection(ctx, name); err != nil {
		return nil, s.fail("rebuild", err)
	}
	c := coll{s: s, c: s.db.Collection(name)}
	if err := createIndexes(ctx, c); err != nil {
		_ = c.c.Drop(context.WithoutCancel(ctx))
		return nil, s.fail("rebuild", err)
	}
	return &rebuild{c: c, owner: l.Owner}, nil
}

// dropRebuilds drops the collections of earlier rebuilds: the caller holds
// the lease, so they are abandoned.
func (s *Store) dropRebuilds(ctx context.Context) error {
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return err
	}
	for _, name := range names {
		if rest, ok := strings.CutPrefix(name, rebuildPrefix); !ok || strings.Trim(rest, "0123456789") != "" {
			continue
		}
		if err := s.db.Collection(name).Drop(ctx); err != nil {
			return err
		}
	}
	return nil
}

// renew renews the rebuild's lease, or returns readmodel.ErrRebuildLost.
// (Unlike SQLite's, it is a step of its own, before the write it guards: a
// rebuild taken over between the two writes one batch into a collection
// that is dropped.)
func (r *rebuild) renew(ctx context.Context) error {
	res, err := r.c.s.db.Collection(leaseCollection).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: "lease"}, {Key: "owner", Value: r.owner}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "heartbeat", Value: time.Now().UnixNano()}}}})
	if err != nil {
		return err
	}
	if res.MatchedCount != 1 {
		return readmodel.ErrRebuildLost
	}
	return nil
}

// release gives the lease up.
func (r *rebuild) release(ctx context.Context) error {
	_, err := r.c.s.db.Collection(leaseCollection).DeleteOne(ctx,
		bson.D{{Key: "_id", Value: "lease"}, {Key: "owner", Value: r.owner}})
	return err
}

// rebuild is the Rebuild of a Store. It is safe for concurrent use.
type rebuild struct {
	c     coll
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
	return r.c.load(ctx, ids)
}

func (r *rebuild) Commit(ctx context.Context, docs []readmodel.Customer, checkpoint uint64) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.done {
		return errRebuildDone
	}
	cctx, cancel := opContext(ctx)
	defer cancel()
	if err := r.renew(cctx); err != nil {
		return r.c.s.fail("commit", err)
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
	if err := r.renew(ctx); err != nil {
		return s.fail("swap", err)
	}
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
	return s.fail("swap", r.release(ctx))
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
	return s.fail("abort", r.release(ctx))
}
