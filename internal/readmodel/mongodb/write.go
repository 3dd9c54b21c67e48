package mongodb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"crm/internal/readmodel"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const (
	// checkpointID is the _id of the checkpoint document, which lives in the
	// customers collection so that a rebuild's rename swaps it with the
	// documents. It has no deleted field, so no query of customers matches
	// it, and no customer id (a UUID) can be it.
	checkpointID = "~checkpoint"

	// internalPrefix starts the _id of every document of the collection
	// that is not a customer's (the checkpoint, the duplicate clusters): it
	// sorts after every customer id (a UUID).
	internalPrefix = "~"

	// maxBulk is the most statements one bulk-write command carries:
	// FerretDB 1.24 hangs on a command in which 100 or more statements
	// match existing documents.
	maxBulk = 99

	// loadBatch is how many ids one Load query asks for.
	loadBatch = 500

	// commitAttempts bounds the rounds of Commit for documents whose
	// insert met a duplicate key: a concurrent first insert of the same id
	// (the next round replaces it if it is older), or another customer
	// holding the same code (an error once the rounds are spent).
	commitAttempts = 3
)

// coll is one copy of the read model: the live collections or a rebuild's.
type coll struct {
	s          *Store
	c          *mongo.Collection // the customers, the checkpoint, the duplicate clusters
	contacts   *mongo.Collection
	links      *mongo.Collection // the contact links
	activities *mongo.Collection
	timeline   *mongo.Collection // the customers' timelines: their events and live activities
}

// Load returns the stored documents, tombstones included, of ids.
func (s *Store) Load(ctx context.Context, ids []string) (map[string]readmodel.Customer, error) {
	return s.live().load(ctx, ids)
}

// Commit is CommitBatch of customers only.
func (s *Store) Commit(ctx context.Context, docs []readmodel.Customer, checkpoint uint64) error {
	return s.CommitBatch(ctx, readmodel.Batch{Customers: docs}, checkpoint)
}

// CommitBatch stores the documents of b and advances the checkpoint (see
// readmodel.Writer). Without transactions these are separate writes: the
// contacts, then the links, then the activities (each one's timeline entry
// before it, see commitActivities), then the customers' events on their
// timelines, then the customers, then the checkpoint, so that a crash in
// between only makes the projector apply the same documents again, which
// the sequence guard makes a no-op (and the timeline's events are inserted
// only where absent; they come before the customers because a customer
// already written is not folded again, so its events would not be sent
// again).
func (s *Store) CommitBatch(ctx context.Context, b readmodel.Batch, checkpoint uint64) error {
	return s.live().commitBatch(ctx, b, checkpoint)
}

// Checkpoint returns the stream sequence up to which the read model is
// complete.
func (s *Store) Checkpoint(ctx context.Context) (uint64, error) {
	return s.live().checkpoint(ctx)
}

func (c coll) load(ctx context.Context, ids []string) (map[string]readmodel.Customer, error) {
	if c.s.closed.Load() {
		return nil, c.s.fail("load", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	out := make(map[string]readmodel.Customer, len(ids))
	want := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != checkpointID {
			want = append(want, id)
		}
	}
	err := byIDs(ctx, c.c, want, docProjection, func(d document) { out[d.ID] = d.customer() })
	if err != nil {
		return nil, c.s.fail("load", err)
	}
	return out, nil
}

// byIDs decodes every document of c whose _id is one of ids into fn,
// asking for loadBatch ids at a time; projection may be nil (the whole
// documents).
func byIDs[D any](ctx context.Context, c *mongo.Collection, ids []string, projection bson.D, fn func(D)) error {
	return byIDsWhere(ctx, c, ids, nil, projection, fn)
}

// byIDsWhere is byIDs of the documents that also match filter (nil: all).
func byIDsWhere[D any](ctx context.Context, c *mongo.Collection, ids []string, filter, projection bson.D, fn func(D)) error {
	opts := options.Find()
	if projection != nil {
		opts.SetProjection(projection)
	}
	for batch := range slices.Chunk(ids, loadBatch) {
		f := append(bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: batch}}}}, filter...)
		cur, err := c.Find(ctx, f, opts)
		if err != nil {
			return err
		}
		if err := decodeEach(ctx, cur, fn); err != nil {
			return err
		}
	}
	return nil
}

// decodeAll decodes every customer document of cur into fn and closes cur.
func decodeAll(ctx context.Context, cur *mongo.Cursor, fn func(readmodel.Customer)) error {
	return decodeEach(ctx, cur, func(d document) { fn(d.customer()) })
}

// decodeEach decodes every document of cur into fn and closes cur.
func decodeEach[D any](ctx context.Context, cur *mongo.Cursor, fn func(D)) error {
	defer cur.Close(context.WithoutCancel(ctx))
	for cur.Next(ctx) {
		var d D
		if err := cur.Decode(&d); err != nil {
			return err
		}
		fn(d)
	}
	return cur.Err()
}

func (c coll) checkpoint(ctx context.Context) (uint64, error) {
	if c.s.closed.Load() {
		return 0, c.s.fail("checkpoint", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	var cp struct {
		Checkpoint int64 `bson:"checkpoint"`
	}
	err := c.c.FindOne(ctx, bson.D{{Key: "_id", Value: checkpointID}},
		options.FindOne().SetProjection(bson.D{{Key: "checkpoint", Value: 1}})).Decode(&cp)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, c.s.fail("checkpoint", err)
	}
	return uint64(max(cp.Checkpoint, 0)), nil
}

func (c coll) commitBatch(ctx context.Context, b readmodel.Batch, checkpoint uint64) error {
	if c.s.closed.Load() {
		return c.s.fail("commit", errClosed)
	}
	pending, err := readmodel.Prepare(b.Customers, checkpoint)
	if err != nil {
		return err
	}
	for _, d := range pending {
		if strings.HasPrefix(d.ID, internalPrefix) {
			return fmt.Errorf("%w: commit: invalid document id %q", readmodel.ErrInternal, d.ID)
		}
	}
	contacts, err := readmodel.PrepareContacts(b.Contacts)
	if err != nil {
		return err
	}
	links, err := readmodel.PrepareLinks(b.Links)
	if err != nil {
		return err
	}
	activities, err := readmodel.PrepareActivities(b.Activities)
	if err != nil {
		return err
	}
	timeline, err := readmodel.PrepareTimeline(b.Timeline)
	if err != nil {
		return err
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	// The contacts first: no contact write depends on the customers'.
	raced, err := writeRounds(contacts, func(docs []readmodel.Contact) ([]readmodel.Contact, error) {
		return writeGuarded(ctx, c.contacts, docs, contactDocs)
	})
	if err != nil {
		return c.s.fail("commit contacts", err)
	}
	if len(raced) > 0 {
		return fmt.Errorf("%w: commit contact %s: duplicate key after %d attempts", readmodel.ErrInternal,
			raced[0].ID, commitAttempts)
	}
	// The links next: no link write depends on the customers' either (the
	// queries join them with the live customers and contacts as they are).
	racedLinks, err := writeRounds(links, func(docs []readmodel.Link) ([]readmodel.Link, error) {
		return writeGuarded(ctx, c.links, docs, linkDocs)
	})
	if err != nil {
		return c.s.fail("commit links", err)
	}
	if len(racedLinks) > 0 {
		return fmt.Errorf("%w: commit link %s: duplicate key after %d attempts", readmodel.ErrInternal,
			linkID(racedLinks[0].CustomerID, racedLinks[0].ContactID), commitAttempts)
	}
	// The activities and the timeline: no write of theirs depends on the
	// customers' either (the timeline is read by customer ids as given).
	if err := c.commitActivities(ctx, activities); err != nil {
		return c.s.fail("commit activities", err)
	}
	if err := c.commitTimeline(ctx, timeline); err != nil {
		return c.s.fail("commit timeline", err)
	}
	touched, err := c.touchedKeys(ctx, pending)
	if err != nil {
		return c.s.fail("commit", err)
	}
	if len(touched) > 0 {
		if err := c.markDirty(ctx, touched); err != nil {
			return c.s.fail("commit", err)
		}
	}
	racedCustomers, err := writeRounds(pending, func(docs []readmodel.Customer) ([]readmodel.Customer, error) {
		return c.write(ctx, docs)
	})
	if err != nil {
		return c.s.fail("commit", err)
	}
	if len(racedCustomers) > 0 {
		return fmt.Errorf("readmodel/mongodb: commit %s (%s): duplicate key: another document holds "+
			"its customer code", racedCustomers[0].ID, racedCustomers[0].Code)
	}
	if err := c.recluster(ctx); err != nil {
		return c.s.fail("commit duplicates", err)
	}
	return c.s.fail("commit checkpoint", c.advance(ctx, checkpoint))
}

// writeRounds calls write with docs, then again with the documents it
// returns (whose insert met a duplicate key), up to commitAttempts times,
// and returns those still returned by the last round.
func writeRounds[T any](docs []T, write func([]T) ([]T, error)) ([]T, error) {
	for attempt := 1; len(docs) > 0; attempt++ {
		raced, err := write(docs)
		if err != nil {
			return nil, err
		}
		if len(raced) > 0 && attempt == commitAttempts {
			return raced, nil
		}
		docs = raced
	}
	return nil, nil
}

// docKind is how writeGuarded stores the documents of one aggregate: key
// gives a document's _id and stream sequence, bson its stored form.
type docKind[T any] struct {
	key  func(T) (id string, seq uint64)
	bson func(T) any
}

var (
	customerDocs = docKind[readmodel.Customer]{
		key:  func(d readmodel.Customer) (string, uint64) { return d.ID, d.Seq },
		bson: func(d readmodel.Customer) any { return toDocument(d) },
	}
	contactDocs = docKind[readmodel.Contact]{
		key:  func(d readmodel.Contact) (string, uint64) { return d.ID, d.Seq },
		bson: func(d readmodel.Contact) any { return toContactDocument(d) },
	}
)

// write stores each of the customers docs (one per id) with writeGuarded.
func (c coll) write(ctx context.Context, docs []readmodel.Customer) ([]readmodel.Customer, error) {
	return writeGuarded(ctx, c.c, docs, customerDocs)
}

// writeGuarded stores each of docs (one per id) in c unless the stored
// version is as new or newer. It reads the stored sequences first, inserts
// the new documents and replaces older versions with a filter on the
// stored sequence, so a concurrent newer write is never overwritten. It
// returns the documents whose insert met a duplicate key (a concurrent
// first insert of the same id, or, for customers, another customer holding
// the same code), to be tried again.
//
// Stale documents are never sent, and an upsert that relies on a duplicate
// key error is never used, because FerretDB 1.24 ignores ordered=false in
// update commands: it stops at the first failing statement and skips the
// rest silently. A command carries at most maxBulk statements.
func writeGuarded[T any](ctx context.Context, c *mongo.Collection, docs []T, k docKind[T]) ([]T, error) {
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i], _ = k.key(d)
	}
	stored, err := storedSeqs(ctx, c, ids)
	if err != nil {
		return nil, err
	}
	return writeStored(ctx, c, docs, stored, k)
}

// writeStored is writeGuarded with the stored sequences of docs read
// already (storedSeqs: absent ids have no document).
func writeStored[T any](ctx context.Context, c *mongo.Collection, docs []T, stored map[string]int64, k docKind[T]) ([]T, error) {
	var inserts, replaces []T
	for _, d := range docs {
		id, seq := k.key(d)
		switch have, ok := stored[id]; {
		case !ok:
			inserts = append(inserts, d)
		case have < int64(seq):
			replaces = append(replaces, d)
		}
	}
	for chunk := range slices.Chunk(replaces, maxBulk) {
		models := make([]mongo.WriteModel, len(chunk))
		for i, d := range chunk {
			id, seq := k.key(d)
			models[i] = mongo.NewReplaceOneModel().
				SetFilter(bson.D{{Key: "_id", Value: id}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: int64(seq)}}}}).
				SetReplacement(k.bson(d))
		}
		if _, err := c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
			return nil, err
		}
	}
	var raced []T
	for chunk := range slices.Chunk(inserts, maxBulk) {
		models := make([]mongo.WriteModel, len(chunk))
		for i, d := range chunk {
			models[i] = mongo.NewInsertOneModel().SetDocument(k.bson(d))
		}
		_, err := c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
		if err == nil {
			continue
		}
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
			return nil, err
		}
		for _, we := range bwe.WriteErrors {
			if we.Code != 11000 && we.Code != 11001 {
				return nil, err
			}
		}
		// Which statements failed is read back rather than trusted from
		// the indexes of the write errors.
		raced = append(raced, chunk...)
	}
	return raced, nil
}

// storedSeqs returns the stored sequence of each of ids that has a stored
// document in c.
func storedSeqs(ctx context.Context, c *mongo.Collection, ids []string) (map[string]int64, error) {
	type seqOf struct {
		ID  string `bson:"_id"`
		Seq int64  `bson:"seq"`
	}
	stored := make(map[string]int64, len(ids))
	err := byIDs(ctx, c, ids, bson.D{{Key: "seq", Value: 1}}, func(s seqOf) { stored[s.ID] = s.Seq })
	if err != nil {
		return nil, err
	}
	return stored, nil
}

// advance moves the checkpoint to cp unless it is further already.
func (c coll) advance(ctx context.Context, cp uint64) error {
	update := bson.D{{Key: "$max", Value: bson.D{{Key: "checkpoint", Value: int64(cp)}}}}
	var err error
	for range 2 { // a concurrent first upsert of the document may win the insert
		_, err = c.c.UpdateOne(ctx, bson.D{{Key: "_id", Value: checkpointID}}, update,
			options.UpdateOne().SetUpsert(true))
		if !mongo.IsDuplicateKeyError(err) {
			return err
		}
	}
	return err
}
