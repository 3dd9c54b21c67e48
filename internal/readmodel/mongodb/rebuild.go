package mongodb

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"crm/internal/readmodel"
)

// rebuildPrefix and the other prefixes start the names of a rebuild's
// collections; the rest is the Unix nanoseconds of its start, the same in
// all of them.
const (
	rebuildPrefix           = Collection + "_rebuild_"
	contactsRebuildPrefix   = ContactsCollection + "_rebuild_"
	linksRebuildPrefix      = LinksCollection + "_rebuild_"
	activitiesRebuildPrefix = ActivitiesCollection + "_rebuild_"
	timelineRebuildPrefix   = TimelineCollection + "_rebuild_"
)

// rebuildPrefixes are the prefixes of every collection of a rebuild.
var rebuildPrefixes = []string{rebuildPrefix, contactsRebuildPrefix, linksRebuildPrefix, activitiesRebuildPrefix,
	timelineRebuildPrefix}

// leaseCollection holds the rebuild lease (readmodel.Store.Rebuild): one
// document, _id "lease", while a rebuild is in progress: its owner, its
// customers collection (the other collections of the rebuild have the
// same suffix) and the Unix nanoseconds of its last write. Taking the lease is an insert, which the
// unique _id makes atomic on MongoDB and on FerretDB alike.
const leaseCollection = "crm_rebuild_lease"

type lease struct {
	ID         string `bson:"_id"`
	Owner      string `bson:"owner"`
	Collection string `bson:"collection"`
	Heartbeat  int64  `bson:"heartbeat"`
}

// errRebuildDone is returned by a Rebuild used after Swap or Abort.
var errRebuildDone = errors.New("readmodel/mongodb: rebuild already swapped or aborted")

// Rebuild takes the rebuild lease and creates the empty collections
// customers_rebuild_<unix nanos>, contacts_rebuild_<unix nanos>,
// contact_links_rebuild_<unix nanos>, activities_rebuild_<unix nanos> and
// timeline_rebuild_<unix nanos> with the indexes of the live ones, which
// the caller fills through the returned Rebuild; queries are served from
// the live collections until Swap. The collections of abandoned rebuilds
// are dropped first. While another rebuild, of this process or another,
// holds the lease, it returns readmodel.ErrRebuildInProgress.
func (s *Store) Rebuild(ctx context.Context) (readmodel.Rebuild, error) {
	if s.closed.Load() {
		return nil, s.fail("rebuild", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	now := time.Now()
	suffix := strconv.FormatInt(now.UnixNano(), 10)
	name := rebuildPrefix + suffix
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
	c := coll{s: s, c: s.db.Collection(name), contacts: s.db.Collection(contactsRebuildPrefix + suffix),
		links: s.db.Collection(linksRebuildPrefix + suffix), activities: s.db.Collection(activitiesRebuildPrefix + suffix),
		timeline: s.db.Collection(timelineRebuildPrefix + suffix)}
	// Created explicitly (not by the first write), so that Swap finds all
	// of them even when the stream holds no contact, link or activity.
	var err error
	for _, cc := range c.all() {
		if err = s.db.CreateCollection(ctx, cc.Name()); err != nil {
			break
		}
	}
	if err == nil {
		err = createIndexes(ctx, c)
	}
	if err != nil {
		_ = c.drop(context.WithoutCancel(ctx))
		return nil, s.fail("rebuild", err)
	}
	return &rebuild{c: c, owner: l.Owner}, nil
}

// all returns the collections of c, the customers first.
func (c coll) all() []*mongo.Collection {
	return []*mongo.Collection{c.c, c.contacts, c.links, c.activities, c.timeline}
}

// drop drops the collections of c, the customers last.
func (c coll) drop(ctx context.Context) error {
	return errors.Join(c.timeline.Drop(ctx), c.activities.Drop(ctx), c.links.Drop(ctx), c.contacts.Drop(ctx),
		c.c.Drop(ctx))
}

// dropRebuilds drops the collections of earlier rebuilds: the caller holds
// the lease, so they are abandoned.
func (s *Store) dropRebuilds(ctx context.Context) error {
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return err
	}
	for _, name := range names {
		if !slices.ContainsFunc(rebuildPrefixes, func(p string) bool { return isRebuild(name, p) }) {
			continue
		}
		if err := s.db.Collection(name).Drop(ctx); err != nil {
			return err
		}
	}
	return nil
}

// isRebuild reports whether name is prefix followed by Unix nanoseconds.
func isRebuild(name, prefix string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	return ok && strings.Trim(rest, "0123456789") == ""
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

func (r *rebuild) LoadActivities(ctx context.Context, ids []string) (map[string]readmodel.Activity, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.done {
		return nil, errRebuildDone
	}
	return r.c.loadActivities(ctx, ids)
}

func (r *rebuild) LoadContacts(ctx context.Context, ids []string) (map[string]readmodel.Contact, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.done {
		return nil, errRebuildDone
	}
	return r.c.loadContacts(ctx, ids)
}

func (r *rebuild) Commit(ctx context.Context, docs []readmodel.Customer, checkpoint uint64) error {
	return r.CommitBatch(ctx, readmodel.Batch{Customers: docs}, checkpoint)
}

func (r *rebuild) CommitBatch(ctx context.Context, b readmodel.Batch, checkpoint uint64) error {
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
	return r.c.commitBatch(ctx, b, checkpoint)
}

func (r *rebuild) Checkpoint(ctx context.Context) (uint64, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.done {
		return 0, errRebuildDone
	}
	return r.c.checkpoint(ctx)
}

// Swap renames the rebuilt collections onto the live ones
// (renameCollection with dropTarget, each atomic on MongoDB): the contacts
// first, then the links, the timeline and the activities, and last the
// customers, which carry the checkpoint, unless the live checkpoint is
// ahead of the rebuilt one: then it returns readmodel.ErrRebuildBehind and
// swaps nothing.
//
// The five renames are five steps without a transaction, and that order
// (the customers last) is what makes a crash between any two of them safe:
// the rebuilt checkpoint is not behind the live one, so the rebuilt
// contacts, links, timeline and activities hold every event of theirs up
// to the live checkpoint; the live projector, still on the old customers
// and their checkpoint, goes on from that checkpoint, and its rewrites of
// events the rebuilt collections already hold are no-ops, because every
// document write is guarded by its Seq (and a customer event's timeline
// entry is only inserted where it is absent). The contacts and the links
// depend on nothing else, so the order between them does not matter, and
// neither does which of them a crash leaves swapped. The timeline goes
// before the activities because an activity's timeline entry is written
// with its document (commitActivities): the rebuilt timeline over the old
// activities is safe, since the projector finds the activity events past
// the live checkpoint not applied to the old documents and applies them
// again, entries included (an entry is guarded by its activity's Seq, so a
// newer rebuilt one stays, and the entry of an activity deleted later is
// removed again when the deletion is applied); the rebuilt activities over
// the old timeline would not be, since the projector would find those
// events applied already and never write their entries. (Renaming the
// customers earlier would leave the rebuilt checkpoint live over old
// collections, which hold their events only up to the old checkpoint:
// those between the two would never be applied.) Until the last rename,
// the queries may join rebuilt documents with old ones (links with
// contacts or customers, timeline entries with activities): both hold
// every event up to the live checkpoint, so a query sees at most a
// document newer than the checkpoint early, or without its counterpart for
// that moment (Timeline skips an entry without its activity). The copies
// left behind are dropped by the next Rebuild. After a failed rename of
// any but the contacts this rebuild is done as well (its contacts are live
// now): start another one.
//
// Without transactions the comparison and the renames are separate steps
// too: a live projector that commits between them has that commit dropped
// with the old collections and goes on writing into the new ones past a
// gap. Run rebuilds with the live projectors stopped, or accept that a
// live commit racing the swap (a window of a few round trips) must be
// re-projected.
//
// FerretDB 1.24 does not implement dropTarget: there each live collection
// is dropped and the rebuilt one renamed in two commands, and for the
// moment between them queries find it empty (a crash then leaves the
// collection empty under the old checkpoint: FerretDB is for tests only).
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
	if err := s.rename(ctx, r.c.contacts.Name(), ContactsCollection); err != nil {
		return s.fail("swap contacts", err)
	}
	r.done = true
	// After this point a failure gives the lease up, so that the next
	// Rebuild need not wait for it to go stale; it drops the copies left
	// behind.
	for _, step := range []struct{ what, from, to string }{
		{"swap links", r.c.links.Name(), LinksCollection},
		{"swap timeline", r.c.timeline.Name(), TimelineCollection},
		{"swap activities", r.c.activities.Name(), ActivitiesCollection},
		{"swap", r.c.c.Name(), Collection}, // the customers and the checkpoint: last
	} {
		if err := s.rename(ctx, step.from, step.to); err != nil {
			return errors.Join(s.fail(step.what, err), s.fail("swap", r.release(ctx)))
		}
	}
	return s.fail("swap", r.release(ctx))
}

// rename renames the collection from of the store's database onto to,
// replacing it.
func (s *Store) rename(ctx context.Context, from, to string) error {
	admin := s.client.Database("admin")
	src, dst := s.db.Name()+"."+from, s.db.Name()+"."+to
	err := admin.RunCommand(ctx, bson.D{
		{Key: "renameCollection", Value: src}, {Key: "to", Value: dst}, {Key: "dropTarget", Value: true},
	}).Err()
	if hasCode(err, 238) { // NotImplemented: FerretDB has no dropTarget
		if err = s.db.Collection(to).Drop(ctx); err == nil {
			err = admin.RunCommand(ctx, bson.D{{Key: "renameCollection", Value: src}, {Key: "to", Value: dst}}).Err()
		}
	}
	return err
}

// Abort drops the rebuilt collections; the live ones are untouched.
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
	if err := r.c.drop(ctx); err != nil {
		return s.fail("abort", err)
	}
	r.done = true
	return s.fail("abort", r.release(ctx))
}
