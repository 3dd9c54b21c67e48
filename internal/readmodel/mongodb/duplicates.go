package mongodb

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"crm/internal/dedupe"
	"crm/internal/readmodel"
)

// The clusters of live customers sharing a duplicate key live in the
// customers collection, as the checkpoint does (so that a rebuild's rename
// swaps them with the documents), one document per cluster of two or more,
// _id clusterPrefix + the stored key. They have no deleted field, so no
// customer query matches them.
//
// Commit keeps them: the keys a commit moves (set, changed, cleared, a
// customer hidden or shown) are first added to the dirty document, then
// the customers are written, then every dirty key is counted again from
// the customers that have it and taken off the dirty list. Counting is
// idempotent, and a key a crash left dirty is counted by the next Commit,
// so the clusters always end up equal to the customers. (FerretDB 1.24's
// aggregations have no $max, which rules out computing clusters per
// request; and a per-request aggregation would read every customer with a
// key, at a million customers far too slow for a list.)
const (
	clusterPrefix = "~dup:"
	dirtyID       = "~dupdirty"
)

// clusterDoc is the stored form of one cluster.
type clusterDoc struct {
	ID       string        `bson:"_id"`
	Kind     string        `bson:"clusterKind"`
	Key      string        `bson:"clusterKey"`
	Size     int64         `bson:"clusterSize"`
	Newest   bson.DateTime `bson:"clusterNewest"` // the newest member's createdAt
	NewestNs int32         `bson:"clusterNewestNs"`
}

// touchedKeys returns the stored duplicate keys that writing docs moves:
// those a document gains or loses (stale documents, which the write skips,
// move nothing).
func (c coll) touchedKeys(ctx context.Context, docs []readmodel.Customer) ([]string, error) {
	type old struct {
		ID      string   `bson:"_id"`
		Seq     int64    `bson:"seq"`
		DupKeys []string `bson:"dupKeys"`
	}
	stored := make(map[string]old, len(docs))
	for chunk := range slices.Chunk(docs, loadBatch) {
		ids := make([]string, len(chunk))
		for i, d := range chunk {
			ids[i] = d.ID
		}
		cur, err := c.c.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
			options.Find().SetProjection(bson.D{{Key: "seq", Value: 1}, {Key: "dupKeys", Value: 1}}))
		if err != nil {
			return nil, err
		}
		var got []old
		if err := cur.All(ctx, &got); err != nil {
			return nil, err
		}
		for _, o := range got {
			stored[o.ID] = o
		}
	}
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, d := range docs {
		o, ok := stored[d.ID]
		if ok && o.Seq >= int64(d.Seq) {
			continue
		}
		var next []string
		if !d.Hidden() {
			next = dupKeys(d)
		}
		for _, k := range o.DupKeys {
			if !slices.Contains(next, k) {
				add(k)
			}
		}
		for _, k := range next {
			if !slices.Contains(o.DupKeys, k) {
				add(k)
			}
		}
	}
	return out, nil
}

// markDirty adds keys to the dirty list.
func (c coll) markDirty(ctx context.Context, keys []string) error {
	update := bson.D{{Key: "$addToSet", Value: bson.D{{Key: "keys", Value: bson.D{{Key: "$each", Value: keys}}}}}}
	var err error
	for range 2 { // a concurrent first upsert of the document may win the insert
		_, err = c.c.UpdateOne(ctx, bson.D{{Key: "_id", Value: dirtyID}}, update, options.UpdateOne().SetUpsert(true))
		if !mongo.IsDuplicateKeyError(err) {
			return err
		}
	}
	return err
}

// recluster counts every dirty key again and stores its cluster (or
// removes it, under two customers), then takes the keys off the list.
func (c coll) recluster(ctx context.Context) error {
	var dirty struct {
		Keys []string `bson:"keys"`
	}
	err := c.c.FindOne(ctx, bson.D{{Key: "_id", Value: dirtyID}}).Decode(&dirty)
	if err == mongo.ErrNoDocuments || (err == nil && len(dirty.Keys) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	for chunk := range slices.Chunk(dirty.Keys, loadBatch) {
		cur, err := c.c.Find(ctx, bson.D{{Key: "dupKeys", Value: bson.D{{Key: "$in", Value: chunk}}}, {Key: "deleted", Value: false}},
			options.Find().SetProjection(bson.D{{Key: "dupKeys", Value: 1}, {Key: "createdAt", Value: 1}, {Key: "createdAtNs", Value: 1}}))
		if err != nil {
			return err
		}
		var members []struct {
			DupKeys     []string      `bson:"dupKeys"`
			CreatedAt   bson.DateTime `bson:"createdAt"`
			CreatedAtNs int32         `bson:"createdAtNs"`
		}
		if err := cur.All(ctx, &members); err != nil {
			return err
		}
		clusters := make(map[string]*clusterDoc, len(chunk))
		for _, k := range chunk {
			kind, key, _ := strings.Cut(k, ":")
			clusters[k] = &clusterDoc{ID: clusterPrefix + k, Kind: kind, Key: key}
		}
		for _, m := range members {
			for _, k := range m.DupKeys {
				cl := clusters[k]
				if cl == nil {
					continue
				}
				cl.Size++
				if m.CreatedAt > cl.Newest || (m.CreatedAt == cl.Newest && m.CreatedAtNs > cl.NewestNs) || cl.Size == 1 {
					cl.Newest, cl.NewestNs = m.CreatedAt, m.CreatedAtNs
				}
			}
		}
		models := make([]mongo.WriteModel, 0, len(chunk))
		for _, k := range chunk {
			cl := clusters[k]
			if cl.Size >= 2 {
				models = append(models, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: cl.ID}}).
					SetReplacement(cl).SetUpsert(true))
			} else {
				models = append(models, mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: "_id", Value: cl.ID}}))
			}
		}
		for part := range slices.Chunk(models, maxBulk) {
			if _, err := c.c.BulkWrite(ctx, part, options.BulkWrite().SetOrdered(true)); err != nil {
				return err
			}
		}
	}
	_, err = c.c.UpdateOne(ctx, bson.D{{Key: "_id", Value: dirtyID}},
		bson.D{{Key: "$pullAll", Value: bson.D{{Key: "keys", Value: dirty.Keys}}}})
	return err
}

// PossibleDuplicates returns the live customers sharing a key of keys (see
// readmodel.Reader), through the index on dupKeys.
func (s *Store) PossibleDuplicates(ctx context.Context, id string, keys dedupe.Keys, limit int) ([]readmodel.Duplicate, error) {
	if s.closed.Load() {
		return nil, s.fail("possible duplicates", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	limit = min(max(limit, 1), readmodel.MaxPerPage)
	var out []readmodel.Duplicate
	for _, m := range dedupe.Matches {
		key := keys.Get(m)
		if key == "" {
			continue
		}
		cur, err := s.live().c.Find(ctx, bson.D{{Key: "dupKeys", Value: dupKey(m, key)}, {Key: "deleted", Value: false},
			{Key: "_id", Value: bson.D{{Key: "$ne", Value: id}}}},
			options.Find().SetSort(newestFirst).SetLimit(int64(limit)).SetProjection(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			return nil, s.fail("possible duplicates", err)
		}
		var ids []struct {
			ID string `bson:"_id"`
		}
		if err := cur.All(ctx, &ids); err != nil {
			return nil, s.fail("possible duplicates", err)
		}
		for _, d := range ids {
			out = append(out, readmodel.Duplicate{CustomerID: d.ID, Match: m})
		}
	}
	return out, nil
}

// newestFirst orders customers by creation, newest first, ties by code.
var newestFirst = bson.D{{Key: "createdAt", Value: -1}, {Key: "createdAtNs", Value: -1}, {Key: "codeNum", Value: -1}}

// Duplicates returns one page of clusters (see readmodel.Reader), and each
// one's newest members.
func (s *Store) Duplicates(ctx context.Context, q readmodel.ClusterQuery) (readmodel.ClusterPage, error) {
	const op = "duplicates"
	if s.closed.Load() {
		return readmodel.ClusterPage{}, s.fail(op, errClosed)
	}
	filter := bson.D{{Key: "clusterKind", Value: bson.D{{Key: "$exists", Value: true}}}}
	if q.Match != "" {
		if !slices.Contains(dedupe.Matches, q.Match) {
			return readmodel.ClusterPage{}, fmt.Errorf("%w: duplicates: unknown match %q", readmodel.ErrInternal, q.Match)
		}
		filter = bson.D{{Key: "clusterKind", Value: q.Match}}
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	c := s.live().c
	total, err := c.CountDocuments(ctx, filter)
	if err != nil {
		return readmodel.ClusterPage{}, s.fail(op, err)
	}
	p := readmodel.ClusterPage{Items: []readmodel.Cluster{}, Total: total}
	limit, offset, ok := q.Bounds()
	if !ok || offset >= total {
		return p, nil
	}
	cur, err := c.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "clusterNewest", Value: -1}, {Key: "clusterNewestNs", Value: -1},
		{Key: "clusterKind", Value: -1}, {Key: "clusterKey", Value: -1}}).SetSkip(offset).SetLimit(limit))
	if err != nil {
		return readmodel.ClusterPage{}, s.fail(op, err)
	}
	var docs []clusterDoc
	if err := cur.All(ctx, &docs); err != nil {
		return readmodel.ClusterPage{}, s.fail(op, err)
	}
	for _, d := range docs {
		cl := readmodel.Cluster{Match: d.Kind, Key: d.Key, Size: d.Size}
		cur, err := c.Find(ctx, bson.D{{Key: "dupKeys", Value: dupKey(d.Kind, d.Key)}, {Key: "deleted", Value: false}},
			options.Find().SetSort(newestFirst).SetLimit(readmodel.ClusterMembers).SetProjection(docProjection))
		if err != nil {
			return readmodel.ClusterPage{}, s.fail(op, err)
		}
		if err := decodeAll(ctx, cur, func(m readmodel.Customer) { cl.Customers = append(cl.Customers, m) }); err != nil {
			return readmodel.ClusterPage{}, s.fail(op, err)
		}
		p.Items = append(p.Items, cl)
	}
	return p, nil
}
