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

// coll is one copy of the read model: the live collection or a rebuild's.
type coll struct {
	s *Store
	c *mongo.Collection
}

// Load returns the stored documents, tombstones included, of ids.
func (s *Store) Load(ctx context.Context, ids []string) (map[string]readmodel.Customer, error) {
	return s.live().load(ctx, ids)
}

// Commit stores docs and advances the checkpoint (see readmodel.Writer).
// Without transactions the two are separate writes: the documents first,
// then the checkpoint, so that a crash in between only makes the projector
// apply the same documents again, which the sequence guard makes a no-op.
func (s *Store) Commit(ctx context.Context, docs []readmodel.Customer, checkpoint uint64) error {
	return s.live().commit(ctx, docs, checkpoint)
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
	for len(want) > 0 {
		n := min(len(want), loadBatch)
		batch := want[:n]
		want = want[n:]
		cur, err := c.c.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: batch}}}},
			options.Find().SetProjection(docProjection))
		if err != nil {
			return nil, c.s.fail("load", err)
		}
		if err := decodeAll(ctx, cur, func(d readmodel.Customer) { out[d.ID] = d }); err != nil {
			return nil, c.s.fail("load", err)
		}
	}
	return out, nil
}

// decodeAll decodes every document of cur into fn and closes cur.
func decodeAll(ctx context.Context, cur *mongo.Cursor, fn func(readmodel.Customer)) error {
	defer cur.Close(context.WithoutCancel(ctx))
	for cur.Next(ctx) {
		var d document
		if err := cur.Decode(&d); err != nil {
			return err
		}
		fn(d.customer())
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

func (c coll) commit(ctx context.Context, docs []readmodel.Customer, checkpoint uint64) error {
	if c.s.closed.Load() {
		return c.s.fail("commit", errClosed)
	}
	pending, err := readmodel.Prepare(docs, checkpoint)
	if err != nil {
		return err
	}
	for _, d := range pending {
		if strings.HasPrefix(d.ID, internalPrefix) {
			return fmt.Errorf("%w: commit: invalid document id %q", readmodel.ErrInternal, d.ID)
		}
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	touched, err := c.touchedKeys(ctx, pending)
	if err != nil {
		return c.s.fail("commit", err)
	}
	if len(touched) > 0 {
		if err := c.markDirty(ctx, touched); err != nil {
			return c.s.fail("commit", err)
		}
	}
	for attempt := 1; len(pending) > 0; attempt++ {
		raced, err := c.write(ctx, pending)
		if err != nil {
			return c.s.fail("commit", err)
		}
		if len(raced) > 0 && attempt == commitAttempts {
			return fmt.Errorf("readmodel/mongodb: commit %s (%s): duplicate key: another document holds "+
				"its customer code", raced[0].ID, raced[0].Code)
		}
		pending = raced
	}
	if err := c.recluster(ctx); err != nil {
		return c.s.fail("commit duplicates", err)
	}
	return c.s.fail("commit checkpoint", c.advance(ctx, checkpoint))
}

// write stores each of docs (one per id) unless the stored version is as new
// or newer. It reads the stored sequences first, inserts the new customers
// and replaces older versions with a filter on the stored sequence, so a
// concurrent newer write is never overwritten. It returns the documents whose
// insert met a duplicate key (a concurrent first insert of the same id, or
// another customer holding the same code), to be tried again.
//
// Stale documents are never sent, and an upsert that relies on a duplicate
// key error is never used, because FerretDB 1.24 ignores ordered=false in
// update commands: it stops at the first failing statement and skips the
// rest silently.
func (c coll) write(ctx context.Context, docs []readmodel.Customer) ([]readmodel.Customer, error) {
	stored, err := c.storedSeqs(ctx, docs)
	if err != nil {
		return nil, err
	}
	var inserts, replaces []readmodel.Customer
	for _, d := range docs {
		seq, ok := stored[d.ID]
		switch {
		case !ok:
			inserts = append(inserts, d)
		case seq < int64(d.Seq):
			replaces = append(replaces, d)
		}
	}
	for chunk := range slices.Chunk(replaces, maxBulk) {
		models := make([]mongo.WriteModel, len(chunk))
		for i, d := range chunk {
			models[i] = mongo.NewReplaceOneModel().
				SetFilter(bson.D{{Key: "_id", Value: d.ID}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: int64(d.Seq)}}}}).
				SetReplacement(toDocument(d))
		}
		if _, err := c.c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
			return nil, err
		}
	}
	var raced []readmodel.Customer
	for chunk := range slices.Chunk(inserts, maxBulk) {
		models := make([]mongo.WriteModel, len(chunk))
		for i, d := range chunk {
			models[i] = mongo.NewInsertOneModel().SetDocument(toDocument(d))
		}
		_, err := c.c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
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

// storedSeqs returns the stored sequence of each of docs that has a stored
// document.
func (c coll) storedSeqs(ctx context.Context, docs []readmodel.Customer) (map[string]int64, error) {
	stored := make(map[string]int64, len(docs))
	for chunk := range slices.Chunk(docs, loadBatch) {
		ids := make([]string, len(chunk))
		for i, d := range chunk {
			ids[i] = d.ID
		}
		cur, err := c.c.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
			options.Find().SetProjection(bson.D{{Key: "seq", Value: 1}}))
		if err != nil {
			return nil, err
		}
		err = func() error {
			defer cur.Close(context.WithoutCancel(ctx))
			for cur.Next(ctx) {
				var s struct {
					ID  string `bson:"_id"`
					Seq int64  `bson:"seq"`
				}
				if err := cur.Decode(&s); err != nil {
					return err
				}
				stored[s.ID] = s.Seq
			}
			return cur.Err()
		}()
		if err != nil {
			return nil, err
		}
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
