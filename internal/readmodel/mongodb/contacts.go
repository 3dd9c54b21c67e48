package mongodb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"crm/internal/fault"
	"crm/internal/readmodel"
	"crm/internal/search"
)

// contactDocument is the BSON shape of one contact in the contacts
// collection, under the conventions of the customers' document: camelCase
// names, unset optional strings (email, phone, title, notes) null, times a
// BSON date (milliseconds) plus the nanoseconds past the millisecond
// (createdAtNs, updatedAtNs: 0–999999), so that every time round-trips
// exactly and sorts exactly.
//
// Projection fields: nameKey (search.Fold(name), the sort key of names),
// emailKey (strings.ToLower(email), "" when unset: the email filter),
// version and seq (the write guard), deleted (tombstones stay so that a
// late event cannot resurrect a contact), searchTerms (every prefix of
// every token of the name, title and email of a live contact: the search,
// with $all, as for customers).
type contactDocument struct {
	ID          string        `bson:"_id"`
	Name        string        `bson:"name"`
	NameKey     string        `bson:"nameKey"`
	Email       *string       `bson:"email"`
	EmailKey    string        `bson:"emailKey"`
	Phone       *string       `bson:"phone"`
	Title       *string       `bson:"title"`
	Notes       *string       `bson:"notes"`
	Tags        []string      `bson:"tags"`
	CreatedBy   string        `bson:"createdBy"`
	CreatedAt   bson.DateTime `bson:"createdAt"`
	CreatedAtNs int32         `bson:"createdAtNs"`
	UpdatedBy   string        `bson:"updatedBy"`
	UpdatedAt   bson.DateTime `bson:"updatedAt"`
	UpdatedAtNs int32         `bson:"updatedAtNs"`
	Version     int64         `bson:"version"`
	Seq         int64         `bson:"seq"`
	Deleted     bool          `bson:"deleted"`
	SearchTerms []string      `bson:"searchTerms"`
}

// toContactDocument returns the document of c. Seq and Version must fit in
// int64 (readmodel.PrepareContacts checks them).
func toContactDocument(c readmodel.Contact) contactDocument {
	d := contactDocument{
		ID: c.ID, Name: c.Name, NameKey: search.Fold(c.Name),
		Email: opt(c.Email), EmailKey: strings.ToLower(c.Email),
		Phone: opt(c.Phone), Title: opt(c.Title), Notes: opt(c.Notes), Tags: nonNil(c.Tags),
		CreatedBy: c.CreatedBy, UpdatedBy: c.UpdatedBy,
		Version: int64(c.Version), Seq: int64(c.Seq), Deleted: c.Deleted,
	}
	d.CreatedAt, d.CreatedAtNs = splitTime(c.CreatedAt)
	d.UpdatedAt, d.UpdatedAtNs = splitTime(c.UpdatedAt)
	d.SearchTerms = []string{}
	if !c.Deleted {
		name, title, email := readmodel.ContactTerms(c)
		d.SearchTerms = nonNil(search.Prefixes(append(append(name, title...), email...)))
	}
	return d
}

// contact returns the contact the document stores.
func (d contactDocument) contact() readmodel.Contact {
	return readmodel.Contact{
		ID: d.ID, Name: d.Name,
		Email: str(d.Email), Phone: str(d.Phone), Title: str(d.Title), Notes: str(d.Notes), Tags: nonNil(d.Tags),
		CreatedBy: d.CreatedBy, CreatedAt: joinTime(d.CreatedAt, d.CreatedAtNs),
		UpdatedBy: d.UpdatedBy, UpdatedAt: joinTime(d.UpdatedAt, d.UpdatedAtNs),
		Version: uint64(d.Version), Seq: uint64(d.Seq), Deleted: d.Deleted,
	}
}

// LoadContacts returns the stored contact documents, tombstones included,
// of ids (see readmodel.ContactWriter).
func (s *Store) LoadContacts(ctx context.Context, ids []string) (map[string]readmodel.Contact, error) {
	return s.live().loadContacts(ctx, ids)
}

func (c coll) loadContacts(ctx context.Context, ids []string) (map[string]readmodel.Contact, error) {
	if c.s.closed.Load() {
		return nil, c.s.fail("load contacts", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	out := make(map[string]readmodel.Contact, len(ids))
	if err := byIDs(ctx, c.contacts, ids, nil, func(d contactDocument) { out[d.ID] = d.contact() }); err != nil {
		return nil, c.s.fail("load contacts", err)
	}
	return out, nil
}

// GetContact returns the live contact id, or readmodel.ErrContactNotFound
// when it is missing or deleted.
func (s *Store) GetContact(ctx context.Context, id string) (readmodel.Contact, error) {
	if s.closed.Load() {
		return readmodel.Contact{}, s.fail("get contact", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	var d contactDocument
	err := s.live().contacts.FindOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "deleted", Value: false}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return readmodel.Contact{}, readmodel.ErrContactNotFound
	}
	if err != nil {
		return readmodel.Contact{}, s.fail("get contact", err)
	}
	return d.contact(), nil
}

// ListContacts returns one page of the live contacts matching q's filters
// in q's order, keyset-paged after q.After, with their exact count (see
// readmodel.ContactReader). Every order, with or without a tag, has its
// index (contactIndexModels), so a page reads about q.Limit()+1 documents
// whatever its position; the count reads every match (unlike SQLite's
// count table: a MongoDB deployment with millions of contacts per tag pays
// for the exact total). An unknown q.Sort is a fault.Invalid error.
func (s *Store) ListContacts(ctx context.Context, q readmodel.ContactQuery) (readmodel.ContactPage, error) {
	keys, err := contactOrder(q.Sort, q.After)
	if err != nil {
		return readmodel.ContactPage{}, err
	}
	if s.closed.Load() {
		return readmodel.ContactPage{}, s.fail("list contacts", errClosed)
	}
	var words []string
	if q.Text != "" {
		if words, err = readmodel.CheckContactSearch(q); err != nil {
			if errors.Is(err, search.ErrEmptyQuery) || errors.Is(err, search.ErrQueryTooLong) {
				err = fmt.Errorf("readmodel/mongodb: search contacts: %w", err)
			}
			return readmodel.ContactPage{}, err
		}
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	c := s.live().contacts
	// Every request value is a literal string compared for equality (the
	// tag with an element of tags, each search word with an element of
	// searchTerms): none can become an operator.
	filter := bson.D{{Key: "deleted", Value: false}}
	if q.Tag != "" {
		filter = append(filter, bson.E{Key: "tags", Value: q.Tag})
	}
	if q.Email != "" {
		filter = append(filter, bson.E{Key: "emailKey", Value: strings.ToLower(q.Email)})
	}
	count := options.Count()
	if words != nil {
		// A search: its first word's index range (searchTerms, deleted,
		// nameKey, _id) is in name order, so a page reads about a page of
		// matches of every word; the total stops at the exact bound.
		filter = append(filter, bson.E{Key: "searchTerms", Value: bson.D{{Key: "$all", Value: words}}})
		count.SetLimit(search.MaxExactTotal + 1)
	}
	total, err := c.CountDocuments(ctx, filter, count)
	if err != nil {
		return readmodel.ContactPage{}, s.fail("list contacts", err)
	}
	p := readmodel.ContactPage{Items: []readmodel.Contact{}, Total: total}
	if words != nil && total > search.MaxExactTotal {
		p.Total, p.TotalAtLeast = search.MaxExactTotal, true
	}
	if total == 0 {
		return p, nil
	}
	if q.After != nil {
		filter = append(filter, bson.E{Key: "$or", Value: after(keys, q.Desc)})
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Key
	}
	limit := q.Limit()
	// One more than the page, to know whether more follow.
	cur, err := c.Find(ctx, filter, options.Find().SetSort(sortOn(names, q.Desc)).SetLimit(int64(limit)+1))
	if err != nil {
		return readmodel.ContactPage{}, s.fail("list contacts", err)
	}
	if err := decodeEach(ctx, cur, func(d contactDocument) { p.Items = append(p.Items, d.contact()) }); err != nil {
		return readmodel.ContactPage{}, s.fail("list contacts", err)
	}
	if len(p.Items) > limit {
		p.Items, p.More = p.Items[:limit], true
	}
	return p, nil
}

// contactOrder returns the sort keys of the ListContacts order sort, the
// tie-breaker _id last, each with its value at the position at (zero
// values when at is nil). An unknown sort is a fault.Invalid error.
func contactOrder(sort string, at *readmodel.ContactPosition) ([]bson.E, error) {
	var p readmodel.ContactPosition
	if at != nil {
		p = *at
	}
	var keys []bson.E
	switch sort {
	case "", readmodel.SortName:
		keys = []bson.E{{Key: "nameKey", Value: p.Name}}
	case readmodel.SortCreatedAt:
		ms, ns := splitTime(p.Time)
		keys = []bson.E{{Key: "createdAt", Value: ms}, {Key: "createdAtNs", Value: ns}}
	case readmodel.SortUpdatedAt:
		ms, ns := splitTime(p.Time)
		keys = []bson.E{{Key: "updatedAt", Value: ms}, {Key: "updatedAtNs", Value: ns}}
	default:
		return nil, fault.InvalidField("sort", "must be one of "+strings.Join(readmodel.ContactSorts, ", "))
	}
	return append(keys, bson.E{Key: "_id", Value: p.ID}), nil
}
