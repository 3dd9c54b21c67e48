package mongodb

import (
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crm/internal/customer"
	"crm/internal/dedupe"
	"crm/internal/readmodel"
	"crm/internal/search"
)

// document is the BSON shape of one customer: the seed's fields under the
// seed's names, then the projection's fields.
//
// Unset optional strings (email, phone, company, notes, address and its
// sub-fields) are null. Times are BSON dates (milliseconds) plus the
// nanoseconds past the millisecond (createdAtNs, updatedAtNs: 0–999999), so
// that every time round-trips exactly and sorts exactly.
//
// Projection fields: codeNum (search.CodeNumber, the sort key of codes and
// the tie-breaker of every order), nameKey (search.Fold(name), the sort key
// of names), version and seq (the write guard), deleted (tombstones stay so
// that a late event cannot resurrect a customer), searchTerms (every prefix
// of every token of name, email, company and code: the portable search
// index; empty for tombstones), the tokens of name, company and email
// that search.Score ranks with, and rankTerms (the match classes, see
// Search; empty for tombstones).
type document struct {
	ID         string        `bson:"_id"`
	CustomerID string        `bson:"customerId"`
	Code       string        `bson:"customerCode"`
	Name       string        `bson:"name"`
	Email      *string       `bson:"email"`
	Phone      *string       `bson:"phone"`
	Company    *string       `bson:"company"`
	Address    *address      `bson:"address"`
	Type       string        `bson:"type"`
	Status     string        `bson:"status"`
	Notes      *string       `bson:"notes"`
	Tags       []string      `bson:"tags"`
	ExternalID *string       `bson:"externalId"`
	CreatedBy  string        `bson:"createdBy"`
	CreatedAt  bson.DateTime `bson:"createdAt"`
	UpdatedAt  bson.DateTime `bson:"updatedAt"`

	CreatedAtNs  int32      `bson:"createdAtNs"`
	UpdatedAtNs  int32      `bson:"updatedAtNs"`
	CodeNum      int64      `bson:"codeNum"`
	NameKey      string     `bson:"nameKey"`
	EmailKey     string     `bson:"emailKey"` // customer.EmailKey(email), "" when unset
	Version      int64      `bson:"version"`
	Seq          int64      `bson:"seq"`
	Deleted      bool       `bson:"deleted"` // hidden: a tombstone, or merged into MergedInto
	MergedInto   string     `bson:"mergedInto"`
	Absorbed     []absorbed `bson:"absorbed"`
	SearchTerms  []string   `bson:"searchTerms"`
	NameTerms    []string   `bson:"nameTerms"`
	CompanyTerms []string   `bson:"companyTerms"`
	EmailTerms   []string   `bson:"emailTerms"`
	RankTerms    []string   `bson:"rankTerms"` // the match classes it offers (see Search); empty when hidden
	// DupKeys are the duplicate keys ("email:…", "phone:…",
	// "name+company:…", see dupKey) of a live customer; empty when hidden.
	DupKeys []string `bson:"dupKeys"`
}

// absorbed is a customer merged into the document's.
type absorbed struct {
	ID   string `bson:"customerId"`
	Code string `bson:"customerCode"`
}

type address struct {
	Street     *string `bson:"street"`
	City       *string `bson:"city"`
	State      *string `bson:"state"`
	Country    *string `bson:"country"`
	PostalCode *string `bson:"postalCode"`
}

// docProjection leaves out the search fields, which only Search's scoring
// reads.
var docProjection = bson.D{
	{Key: "searchTerms", Value: 0}, {Key: "nameTerms", Value: 0},
	{Key: "companyTerms", Value: 0}, {Key: "emailTerms", Value: 0},
	{Key: "rankTerms", Value: 0}, {Key: "dupKeys", Value: 0},
}

// toDocument returns the document of c. Seq and Version must fit in int64.
func toDocument(c readmodel.Customer) document {
	tags := c.Tags
	if tags == nil {
		tags = []string{}
	}
	terms := search.NewDocTerms(c.Name, c.Company, c.Email, c.Code, c.AbsorbedCodes()...)
	d := document{
		ID: c.ID, CustomerID: c.ID, Code: c.Code, Name: c.Name,
		Email: opt(c.Email), Phone: opt(c.Phone), Company: opt(c.Company),
		Type: c.Type, Status: c.Status, Notes: opt(c.Notes), Tags: tags, ExternalID: opt(c.ExternalID), CreatedBy: c.CreatedBy,
		CodeNum: search.CodeNumber(c.Code), NameKey: search.Fold(c.Name), EmailKey: emailKey(c.Email),
		Version: int64(c.Version), Seq: int64(c.Seq), Deleted: c.Hidden(), MergedInto: c.MergedInto, Absorbed: []absorbed{},
		SearchTerms:  []string{},
		RankTerms:    []string{},
		NameTerms:    nonNil(terms.Name),
		CompanyTerms: nonNil(terms.Company),
		EmailTerms:   nonNil(terms.Email),
		DupKeys:      []string{},
	}
	d.CreatedAt, d.CreatedAtNs = splitTime(c.CreatedAt)
	d.UpdatedAt, d.UpdatedAtNs = splitTime(c.UpdatedAt)
	if !c.Address.IsZero() {
		a := c.Address
		d.Address = &address{Street: opt(a.Street), City: opt(a.City), State: opt(a.State),
			Country: opt(a.Country), PostalCode: opt(a.PostalCode)}
	}
	for _, a := range c.Absorbed {
		d.Absorbed = append(d.Absorbed, absorbed{ID: a.ID, Code: a.Code})
	}
	if !c.Hidden() {
		// Every query word is a token, so it matches a document token when
		// it is one of the token's prefixes. The code's tokens cover every
		// word that is a prefix of the folded code.
		var all []string
		all = append(all, terms.Name...)
		all = append(all, terms.Company...)
		all = append(all, terms.Email...)
		for _, code := range append([]string{c.Code}, c.AbsorbedCodes()...) {
			all = append(all, search.Tokens(code)...)
		}
		d.SearchTerms = nonNil(search.Prefixes(all))
		d.RankTerms = nonNil(rankTerms(terms))
		d.DupKeys = dupKeys(c)
	}
	return d
}

// customer returns the customer the document stores.
func (d document) customer() readmodel.Customer {
	c := readmodel.Customer{
		ID: d.ID, Code: d.Code, Name: d.Name,
		Email: str(d.Email), Phone: str(d.Phone), Company: str(d.Company),
		Type: d.Type, Status: d.Status, Notes: str(d.Notes), Tags: d.Tags, ExternalID: str(d.ExternalID), CreatedBy: d.CreatedBy,
		CreatedAt: joinTime(d.CreatedAt, d.CreatedAtNs),
		UpdatedAt: joinTime(d.UpdatedAt, d.UpdatedAtNs),
		Version:   uint64(d.Version), Seq: uint64(d.Seq), Deleted: d.Deleted && d.MergedInto == "",
		MergedInto: d.MergedInto,
	}
	for _, a := range d.Absorbed {
		c.Absorbed = append(c.Absorbed, readmodel.Absorbed{ID: a.ID, Code: a.Code})
	}
	if c.Tags == nil {
		c.Tags = []string{}
	}
	if a := d.Address; a != nil {
		c.Address = readmodel.Address{Street: str(a.Street), City: str(a.City), State: str(a.State),
			Country: str(a.Country), PostalCode: str(a.PostalCode)}
	}
	return c
}

// splitTime returns t as a BSON date (milliseconds, floored) and the
// nanoseconds past that millisecond.
func splitTime(t time.Time) (bson.DateTime, int32) {
	return bson.DateTime(t.UnixMilli()), int32(t.Nanosecond() % int(time.Millisecond))
}

func joinTime(ms bson.DateTime, ns int32) time.Time {
	return time.UnixMilli(int64(ms)).Add(time.Duration(ns)).UTC()
}

func opt(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// emailKey is the indexed form of an email (customer.EmailKey; "" when
// unset or invalid).
func emailKey(email string) string {
	k, _ := customer.EmailKey(email)
	return k
}

// dupKey is the stored form of a duplicate key: its match kind, a colon,
// the key.
func dupKey(match, key string) string { return match + ":" + key }

// dupKeys returns the stored duplicate keys of a customer, in
// dedupe.Matches order.
func dupKeys(c readmodel.Customer) []string {
	k := dedupe.Of(c.Name, c.Email, c.Phone, c.Company, c.Address.Country)
	out := []string{}
	for _, m := range dedupe.Matches {
		if v := k.Get(m); v != "" {
			out = append(out, dupKey(m, v))
		}
	}
	return out
}
