package mongodb

import (
	"cmp"
	"context"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"crm/internal/readmodel"
)

// linkDocument is the BSON shape of one link in the contact_links
// collection, under the conventions of the customers' and contacts'
// documents: camelCase names, unset optional strings (role, from, to) null,
// the time a BSON date (milliseconds) plus the nanoseconds past the
// millisecond (linkedAtNs: 0–999999).
//
// Its _id is linkID(customerId, contactId). seq (the stream sequence of
// the customer's event) is the write guard; ended marks the tombstone of
// an unlinked pair (then linkedBy and linkedAt say who unlinked it, and
// when), which stays so that a late link event cannot revive it.
type linkDocument struct {
	ID         string        `bson:"_id"`
	CustomerID string        `bson:"customerId"`
	ContactID  string        `bson:"contactId"`
	Role       *string       `bson:"role"`
	Primary    bool          `bson:"primary"`
	From       *string       `bson:"from"`
	To         *string       `bson:"to"`
	LinkedBy   string        `bson:"linkedBy"`
	LinkedAt   bson.DateTime `bson:"linkedAt"`
	LinkedAtNs int32         `bson:"linkedAtNs"`
	Seq        int64         `bson:"seq"`
	Ended      bool          `bson:"ended"`
}

// linkID is the _id of the link of customerID to contactID. (Both are
// UUIDs, which hold no "/".)
func linkID(customerID, contactID string) string { return customerID + "/" + contactID }

// toLinkDocument returns the document of l. Seq must fit in int64
// (readmodel.PrepareLinks checks it).
func toLinkDocument(l readmodel.Link) linkDocument {
	d := linkDocument{
		ID: linkID(l.CustomerID, l.ContactID), CustomerID: l.CustomerID, ContactID: l.ContactID,
		Role: opt(l.Role), Primary: l.Primary, From: opt(l.From), To: opt(l.To),
		LinkedBy: l.LinkedBy, Seq: int64(l.Seq), Ended: l.Ended,
	}
	d.LinkedAt, d.LinkedAtNs = splitTime(l.LinkedAt)
	return d
}

// link returns the link the document stores.
func (d linkDocument) link() readmodel.Link {
	return readmodel.Link{
		CustomerID: d.CustomerID, ContactID: d.ContactID,
		Role: str(d.Role), Primary: d.Primary, From: str(d.From), To: str(d.To),
		LinkedBy: d.LinkedBy, LinkedAt: joinTime(d.LinkedAt, d.LinkedAtNs),
		Seq: uint64(d.Seq), Ended: d.Ended,
	}
}

var linkDocs = docKind[readmodel.Link]{
	key:  func(l readmodel.Link) (string, uint64) { return linkID(l.CustomerID, l.ContactID), l.Seq },
	bson: func(l readmodel.Link) any { return toLinkDocument(l) },
}

// linkIndexModels returns the indexes of the contact_links collection: the
// live links of a customer, and of a contact.
func linkIndexModels() []mongo.IndexModel {
	return named([]mongo.IndexModel{
		{Keys: asc("customerId", "ended")},
		{Keys: asc("contactId", "ended")},
	})
}

// liveLinks returns the live (not ended) links of c whose field (customerId
// or contactId) is id.
func liveLinks(ctx context.Context, c *mongo.Collection, field, id string) ([]readmodel.Link, error) {
	// id is a literal string compared for equality: it cannot become an
	// operator.
	cur, err := c.Find(ctx, bson.D{{Key: field, Value: id}, {Key: "ended", Value: false}})
	if err != nil {
		return nil, err
	}
	var out []readmodel.Link
	err = decodeEach(ctx, cur, func(d linkDocument) { out = append(out, d.link()) })
	return out, err
}

// CustomerContacts returns the customer's live links with their live
// contacts, the primary first, then by the contact's name key, then id (see
// readmodel.LinkReader). It reads the links by the customerId index, then
// their contacts with one $in query, and joins and sorts them here: a
// customer has at most customer.MaxLinks of them.
func (s *Store) CustomerContacts(ctx context.Context, customerID string) ([]readmodel.LinkedContact, error) {
	if s.closed.Load() {
		return nil, s.fail("customer contacts", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	live := s.live()
	links, err := liveLinks(ctx, live.links, "customerId", customerID)
	if err != nil {
		return nil, s.fail("customer contacts", err)
	}
	out := []readmodel.LinkedContact{}
	if len(links) == 0 {
		return out, nil
	}
	ids := make([]string, len(links))
	for i, l := range links {
		ids[i] = l.ContactID
	}
	type joined struct {
		readmodel.LinkedContact
		nameKey string // the contact's stored nameKey
	}
	contacts := make(map[string]joined, len(ids))
	err = byIDsWhere(ctx, live.contacts, ids, bson.D{{Key: "deleted", Value: false}}, nil, func(d contactDocument) {
		contacts[d.ID] = joined{readmodel.LinkedContact{Contact: d.contact()}, d.NameKey}
	})
	if err != nil {
		return nil, s.fail("customer contacts", err)
	}
	rows := make([]joined, 0, len(links))
	for _, l := range links {
		if j, ok := contacts[l.ContactID]; ok {
			j.Link = l
			rows = append(rows, j)
		}
	}
	slices.SortFunc(rows, func(a, b joined) int {
		if a.Link.Primary != b.Link.Primary {
			if a.Link.Primary {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.nameKey, b.nameKey), cmp.Compare(a.Contact.ID, b.Contact.ID))
	})
	for _, j := range rows {
		out = append(out, j.LinkedContact)
	}
	return out, nil
}

// ContactCustomers returns the contact's live links with their live
// customers (neither deleted nor merged into another: the customer
// documents whose deleted is false), by the customer's name key, then code
// number (see readmodel.LinkReader). It reads the links by the contactId
// index, then their customers with one $in query, and joins them here: a
// contact has at most customer.MaxLinks of them.
func (s *Store) ContactCustomers(ctx context.Context, contactID string) ([]readmodel.LinkedCustomer, error) {
	if s.closed.Load() {
		return nil, s.fail("contact customers", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	live := s.live()
	links, err := liveLinks(ctx, live.links, "contactId", contactID)
	if err != nil {
		return nil, s.fail("contact customers", err)
	}
	out := []readmodel.LinkedCustomer{}
	if len(links) == 0 {
		return out, nil
	}
	ids := make([]string, len(links))
	for i, l := range links {
		ids[i] = l.CustomerID
	}
	type joined struct {
		readmodel.LinkedCustomer
		nameKey string // the customer's stored nameKey and codeNum
		codeNum int64
	}
	customers := make(map[string]joined, len(ids))
	err = byIDsWhere(ctx, live.c, ids, bson.D{{Key: "deleted", Value: false}}, docProjection, func(d document) {
		customers[d.ID] = joined{readmodel.LinkedCustomer{Customer: d.customer()}, d.NameKey, d.CodeNum}
	})
	if err != nil {
		return nil, s.fail("contact customers", err)
	}
	rows := make([]joined, 0, len(links))
	for _, l := range links {
		if j, ok := customers[l.CustomerID]; ok {
			j.Link = l
			rows = append(rows, j)
		}
	}
	// Codes are unique, so the code number decides every tie of names
	// (the id only guards against a malformed code).
	slices.SortFunc(rows, func(a, b joined) int {
		return cmp.Or(cmp.Compare(a.nameKey, b.nameKey), cmp.Compare(a.codeNum, b.codeNum),
			cmp.Compare(a.Customer.ID, b.Customer.ID))
	})
	for _, j := range rows {
		out = append(out, j.LinkedCustomer)
	}
	return out, nil
}
