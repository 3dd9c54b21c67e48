package mongodb

import (
	"context"
	"errors"
	"fmt"
	"math"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"crm/internal/customer"
)

const (
	// checkpointID is the _id of the checkpoint document, which lives in the
	// customers collection so that a rebuild's rename swaps it with the
	// documents. It has no deleted field, so no query of customers matches
	// it, and no customer id (a UUID) can be it.
	checkpointID = "~checkpoint"

	// maxBulk is the most statements one bulk-write command carries:
	// FerretDB 1.24 hangs on a command in which 100 or more statements
	// match existing documents.
	maxBulk = 99

	// loadBatch is how many ids one Load query asks for.
	loadBatch = 500

	// commitAttempts bounds the rounds of Commit for documents whose
	// upsert met a duplicate key while the stored document was older: a
	// concurrent first insert of the same id (retried), or another
	// customer holding the same code (an error).
	commitAttempts = 3
)

// coll is one copy of the read model: the live collection or a rebuild's.
type coll struct {
	s *Store
	c *mongo.Collection
}

// Load returns the stored documents, tombstones included, of ids.
func (s *Store) Load(ctx context.Context, ids []string) (map[string]customer.Customer, error) {
	return s.live().load(ctx, ids)
}

// Commit stores docs and advances the checkpoint (see readmodel.Writer).
// Without transactions the two are separate writes: the documents first,
// then the checkpoint, so that a crash in between only makes the projector
// apply the same documents again, which the sequence guard makes a no-op.
func (s *Store) Commit(ctx context.Context, docs []customer.Customer, checkpoint uint64) error {
	return s.live().commit(ctx, docs, checkpoint)
}

// Checkpoint returns the stream sequence up to which the read model is
// complete.
func (s *Store) Checkpoint(ctx context.Context) (uint64, error) {
	return s.live().checkpoint(ctx)
}

func (c coll) load(ctx context.Context, ids []string) (map[string]customer.Customer, error) {
	if c.s.closed.Load() {
		return nil, c.s.fail("load", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	out := make(map[string]customer.Customer, len(ids))
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
		if err := decodeAll(ctx, cur, func(d customer.Customer) { out[d.ID] = d }); err != nil {
			return nil, c.s.fail("load", err)
		}
	}
	return out, nil
}

// decodeAll decodes every document of cur into fn and closes cur.
func decodeAll(ctx context.Context, cur *mongo.Cursor, fn func(customer.Customer)) error {
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

func (c coll) commit(ctx context.Context, docs []customer.Customer, checkpoint uint64) error {
	if c.s.closed.Load() {
		return c.s.fail("commit", errClosed)
	}
	if checkpoint > math.MaxInt64 {
		return fmt.Errorf("readmodel/mongodb: commit: checkpoint %d out of range", checkpoint)
	}
	// Only the highest sequence of each customer can win: send only it.
	latest := make(map[string]customer.Customer, len(docs))
	var order []string
	for _, d := range docs {
		switch {
		case d.ID == "" || d.ID == checkpointID:
			return fmt.Errorf("readmodel/mongodb: commit: invalid document id %q", d.ID)
		case d.Seq > math.MaxInt64 || d.Version > math.MaxInt64:
			return fmt.Errorf("readmodel/mongodb: commit %s: seq or version out of range", d.ID)
		}
		old, seen := latest[d.ID]
		if !seen {
			order = append(order, d.ID)
		}
		if !seen || d.Seq > old.Seq {
			latest[d.ID] = d
		}
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	pending := make([]customer.Customer, len(order))
	for i, id := range order {
		pending[i] = latest[id]
	}
	for attempt := 1; len(pending) > 0; attempt++ {
		dups, err := c.upsert(ctx, pending)
		if err != nil {
			return c.s.fail("commit", err)
		}
		if len(dups) == 0 {
			break
		}
		if pending, err = c.newerThanStored(ctx, dups); err != nil {
			return c.s.fail("commit", err)
		}
		if len(pending) > 0 && attempt == commitAttempts {
			return fmt.Errorf("readmodel/mongodb: commit %s (%s): duplicate key: another document holds "+
				"its customer code", pending[0].ID, pending[0].Code)
		}
	}
	return c.s.fail("commit checkpoint", c.advance(ctx, checkpoint))
}

// upsert writes docs (one per id), each only over an older stored version,
// in unordered bulk writes of at most maxBulk statements. It returns the
// documents whose upsert met a duplicate key: normally because the stored
// document is as new or newer (the filter did not match, so the upsert
// tried to insert an existing _id), which is the idempotency guard at work.
func (c coll) upsert(ctx context.Context, docs []customer.Customer) ([]customer.Customer, error) {
	var dups []customer.Customer
	for start := 0; start < len(docs); start += maxBulk {
		chunk := docs[start:min(len(docs), start+maxBulk)]
		models := make([]mongo.WriteModel, len(chunk))
		for i, d := range chunk {
			models[i] = mongo.NewReplaceOneModel().
				SetFilter(bson.D{{Key: "_id", Value: d.ID}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: int64(d.Seq)}}}}).
				SetReplacement(toDocument(d)).
				SetUpsert(true)
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
			if we.Code != 11000 && we.Code != 11001 || we.Index < 0 || we.Index >= len(chunk) {
				return nil, err
			}
			dups = append(dups, chunk[we.Index])
		}
	}
	return dups, nil
}

// newerThanStored returns the documents of docs whose stored version is
// older (or missing), that is, whose duplicate key was not the sequence
// guard.
func (c coll) newerThanStored(ctx context.Context, docs []customer.Customer) ([]customer.Customer, error) {
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	cur, err := c.c.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetProjection(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	stored := make(map[string]int64, len(ids))
	for cur.Next(ctx) {
		var s struct {
			ID  string `bson:"_id"`
			Seq int64  `bson:"seq"`
		}
		if err := cur.Decode(&s); err != nil {
			return nil, err
		}
		stored[s.ID] = s.Seq
	}
	if err := cur.Err(); err != nil {
		return nil, err
	}
	var out []customer.Customer
	for _, d := range docs {
		if seq, ok := stored[d.ID]; !ok || seq < int64(d.Seq) {
			out = append(out, d)
		}
	}
	return out, nil
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
