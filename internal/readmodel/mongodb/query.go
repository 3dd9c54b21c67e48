package mongodb

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"crm/internal/readmodel"
)

// Get returns the live customer id (see readmodel.Found).
func (s *Store) Get(ctx context.Context, id string) (readmodel.Customer, error) {
	if s.closed.Load() {
		return readmodel.Customer{}, s.fail("get", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	var d document
	err := s.live().c.FindOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "deleted", Value: bson.D{{Key: "$exists", Value: true}}}},
		options.FindOne().SetProjection(docProjection)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return readmodel.Found(readmodel.Customer{}, false)
	}
	if err != nil {
		return readmodel.Customer{}, s.fail("get", err)
	}
	return readmodel.Found(d.customer(), true)
}

// List returns one page of live customers matching q's filters in q's order,
// and their exact count. An unknown q.Sort is an error.
func (s *Store) List(ctx context.Context, q readmodel.Query) (readmodel.Page, error) {
	order, err := listOrder(q.Sort, q.Desc)
	if err != nil {
		return readmodel.Page{}, err
	}
	if s.closed.Load() {
		return readmodel.Page{}, s.fail("list", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	c := s.live().c
	filter := filters(q)
	if q.Deleted {
		if q.Status != "" || q.Type != "" || q.Tag != "" || q.CreatedBy != "" {
			return readmodel.Page{}, fmt.Errorf("%w: list deleted: filters do not apply", readmodel.ErrInternal)
		}
		filter = trashFilter()
	}
	limit, offset, ok := q.Bounds()
	total, err := c.CountDocuments(ctx, filter)
	if err != nil {
		return readmodel.Page{}, s.fail("list", err)
	}
	p := readmodel.Page{Items: []readmodel.Customer{}, Total: total}
	if q.After != nil { // keyset: from the position, one more to know whether more follow
		limit, offset, ok = limit+1, 0, true
		filter = append(filter, bson.E{Key: "$or", Value: keyset(q)})
	}
	if !ok || offset >= total {
		return p, nil
	}
	cur, err := c.Find(ctx, filter, options.Find().SetSort(order).SetSkip(offset).SetLimit(limit).
		SetProjection(docProjection))
	if err != nil {
		return readmodel.Page{}, s.fail("list", err)
	}
	if err := decodeAll(ctx, cur, func(c readmodel.Customer) { p.Items = append(p.Items, c) }); err != nil {
		return readmodel.Page{}, s.fail("list", err)
	}
	if q.After != nil && int64(len(p.Items)) == limit {
		p.Items, p.More = p.Items[:limit-1], true
	}
	return p, nil
}

// trashFilter selects the deleted customers (not the merged ones).
func trashFilter() bson.D {
	return bson.D{{Key: "deleted", Value: true}, {Key: "mergedInto", Value: bson.D{{Key: "$in", Value: bson.A{nil, ""}}}}}
}

// keyset returns the alternatives ($or) of the documents after q.After in
// the List order of q.
func keyset(q readmodel.Query) bson.A {
	p := q.After
	var keys []bson.E
	switch q.Sort {
	case "", readmodel.SortCreatedAt:
		ms, ns := splitTime(p.Time)
		keys = []bson.E{{Key: "createdAt", Value: ms}, {Key: "createdAtNs", Value: ns}}
	case readmodel.SortUpdatedAt:
		ms, ns := splitTime(p.Time)
		keys = []bson.E{{Key: "updatedAt", Value: ms}, {Key: "updatedAtNs", Value: ns}}
	case readmodel.SortName:
		keys = []bson.E{{Key: "nameKey", Value: p.Name}}
	}
	keys = append(keys, bson.E{Key: "codeNum", Value: p.Code})
	return after(keys, q.Desc)
}

// after returns the alternatives ($or) of the documents after the position
// keys (the values of the sort keys, in sort order) in ascending order, or
// descending with desc: greater (smaller, descending) in the first sort
// key, or equal in it and after in the next ones.
func after(keys []bson.E, desc bool) bson.A {
	op := "$gt"
	if desc {
		op = "$lt"
	}
	var or bson.A
	for i, k := range keys {
		alt := bson.D{}
		for _, eq := range keys[:i] {
			alt = append(alt, eq)
		}
		alt = append(alt, bson.E{Key: k.Key, Value: bson.D{{Key: op, Value: k.Value}}})
		or = append(or, alt)
	}
	return or
}

// filters returns the filter of live customers matching q's filters. Every
// request value is a literal string compared for equality (the tag with an
// element of tags): none can become an operator or a pattern.
func filters(q readmodel.Query) bson.D {
	f := bson.D{{Key: "deleted", Value: false}}
	eq := func(field, v string) {
		if v != "" {
			f = append(f, bson.E{Key: field, Value: v})
		}
	}
	eq("status", q.Status)
	eq("type", q.Type)
	eq("createdBy", q.CreatedBy)
	eq("tags", q.Tag)
	return f
}

// listOrder returns the sort of a List order; ties are broken by the code's
// number in the same direction (codes are unique), which every sort index
// provides.
func listOrder(sort string, desc bool) (bson.D, error) {
	var keys []string
	switch sort {
	case "", readmodel.SortCreatedAt:
		keys = []string{"createdAt", "createdAtNs"}
	case readmodel.SortUpdatedAt:
		keys = []string{"updatedAt", "updatedAtNs"}
	case readmodel.SortName:
		keys = []string{"nameKey"}
	case readmodel.SortCustomerCode:
	default:
		return nil, fmt.Errorf("readmodel/mongodb: unknown sort %q", sort)
	}
	return sortOn(append(keys, "codeNum"), desc), nil
}

// sortOn returns the sort on keys, ascending, or descending with desc.
func sortOn(keys []string, desc bool) bson.D {
	dir := 1
	if desc {
		dir = -1
	}
	d := make(bson.D, len(keys))
	for i, k := range keys {
		d[i] = bson.E{Key: k, Value: dir}
	}
	return d
}

// Scan returns documents, tombstones included, after the id after, in id
// order (see readmodel.Store), through the _id index. The checkpoint
// document (_id "~checkpoint", after every UUID) is left out.
func (s *Store) Scan(ctx context.Context, after string, limit int) ([]readmodel.Customer, error) {
	if s.closed.Load() {
		return nil, s.fail("scan", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	limit = min(max(limit, 1), readmodel.MaxScan)
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}, {Key: "$lt", Value: internalPrefix}}}}
	cur, err := s.live().c.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetLimit(int64(limit)).SetProjection(docProjection))
	if err != nil {
		return nil, s.fail("scan", err)
	}
	out := make([]readmodel.Customer, 0, limit)
	if err := decodeAll(ctx, cur, func(c readmodel.Customer) { out = append(out, c) }); err != nil {
		return nil, s.fail("scan", err)
	}
	return out, nil
}

// ByEmail returns live customers whose email key is key (see
// readmodel.Store).
func (s *Store) ByEmail(ctx context.Context, key string, limit int) ([]readmodel.Customer, error) {
	if s.closed.Load() {
		return nil, s.fail("by email", errClosed)
	}
	if key == "" {
		return nil, nil
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	cur, err := s.live().c.Find(ctx, bson.D{{Key: "emailKey", Value: key}, {Key: "deleted", Value: false}},
		options.Find().SetSort(bson.D{{Key: "codeNum", Value: 1}}).SetLimit(int64(min(max(limit, 1), 100))).SetProjection(docProjection))
	if err != nil {
		return nil, s.fail("by email", err)
	}
	var out []readmodel.Customer
	if err := decodeAll(ctx, cur, func(c readmodel.Customer) { out = append(out, c) }); err != nil {
		return nil, s.fail("by email", err)
	}
	return out, nil
}

// ByExternalID returns the customer whose external id is externalID (see
// readmodel.Reader).
func (s *Store) ByExternalID(ctx context.Context, externalID string) (readmodel.Customer, error) {
	if s.closed.Load() {
		return readmodel.Customer{}, s.fail("by external id", errClosed)
	}
	if externalID == "" {
		return readmodel.Customer{}, readmodel.ErrNotFound
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	filter := bson.D{{Key: "externalId", Value: externalID}, {Key: "$or", Value: bson.A{
		bson.D{{Key: "deleted", Value: false}},
		bson.D{{Key: "mergedInto", Value: bson.D{{Key: "$ne", Value: ""}}}},
	}}}
	cur, err := s.live().c.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "deleted", Value: 1}, {Key: "codeNum", Value: 1}}).
		SetLimit(1).SetProjection(docProjection))
	if err != nil {
		return readmodel.Customer{}, s.fail("by external id", err)
	}
	var (
		out   readmodel.Customer
		found bool
	)
	if err := decodeAll(ctx, cur, func(c readmodel.Customer) { out, found = c, true }); err != nil {
		return readmodel.Customer{}, s.fail("by external id", err)
	}
	return readmodel.Found(out, found)
}

// Export calls begin with the checkpoint, then each for every customer
// matching q's filters in q's order (see readmodel.Reader), read through
// one cursor: MongoDB gives no snapshot without a replica-set session, so
// a customer changed during the export may show a state newer than the
// checkpoint (never an older one).
func (s *Store) Export(ctx context.Context, q readmodel.Query, begin func(checkpoint uint64) error,
	each func(readmodel.Customer) error) error {
	order, err := listOrder(q.Sort, q.Desc)
	if err != nil {
		return err
	}
	if s.closed.Load() {
		return s.fail("export", errClosed)
	}
	live := s.live()
	cp, err := live.checkpoint(ctx)
	if err != nil {
		return err
	}
	if err := begin(cp); err != nil {
		return err
	}
	filter := filters(q)
	if q.Deleted {
		filter = trashFilter()
	}
	cur, err := live.c.Find(ctx, filter, options.Find().SetSort(order).SetProjection(docProjection).SetBatchSize(1000))
	if err != nil {
		return s.fail("export", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	for cur.Next(ctx) {
		var d document
		if err := cur.Decode(&d); err != nil {
			return s.fail("export", err)
		}
		if err := each(d.customer()); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return s.fail("export", err)
	}
	return nil
}
