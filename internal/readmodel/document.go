package readmodel

import (
	"fmt"
	"math"
	"slices"
	"time"

	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

// Customer is the read-model document of one customer: what the projector
// stores and the queries return. It is its own type, not the aggregate's
// state (customer.Customer), so that the read model can grow fields of its
// own without the domain, and the other way round; FromState and State are
// the one mapping between the two.
//
// Deleted customers stay as tombstones (Deleted) so that a late or
// duplicate event can never resurrect or regress a document; queries never
// return them. Tags is never nil.
type Customer struct {
	ID      string
	Code    string
	Name    string
	Email   string // "" = unset, as every optional string
	Phone   string
	Company string
	Address Address
	Type    string
	Status  string
	Notes   string
	Tags    []string
	// ExternalID is the customer's id in another system ("" = unset).
	ExternalID string
	CreatedBy  string
	CreatedAt  time.Time
	UpdatedAt  time.Time

	Version uint64 // the customer's version (its ETag)
	Seq     uint64 // stream sequence of the last event applied: the write guard
	Deleted bool

	// MergedInto is the survivor's id while a merge holds the customer
	// absorbed (never together with Deleted): hidden from queries, its Get
	// answers with the survivor.
	MergedInto string
	// Absorbed are the customers merged into this one: a search for their
	// codes finds it.
	Absorbed []Absorbed
}

// Absorbed names a customer merged into another.
type Absorbed struct {
	ID, Code string
}

// AbsorbedCodes returns the codes of d's absorbed customers.
func (d Customer) AbsorbedCodes() []string {
	out := make([]string, len(d.Absorbed))
	for i, a := range d.Absorbed {
		out[i] = a.Code
	}
	return out
}

// Hidden reports whether queries leave the document out (deleted, or
// merged into another customer).
func (d Customer) Hidden() bool { return d.Deleted || d.MergedInto != "" }

// Live reports whether the document is of a customer that exists (not a
// tombstone, not merged into another).
func (d Customer) Live() bool { return d.Version > 0 && !d.Hidden() }

// Address is a customer's postal address; empty sub-fields are unset.
type Address struct {
	Street, City, State, Country, PostalCode string
}

// IsZero reports whether no sub-field is set.
func (a Address) IsZero() bool { return a == Address{} }

// FromState returns the document of an aggregate state.
func FromState(c customer.Customer) Customer {
	d := Customer{
		ID: c.ID, Code: c.Code, Name: c.Name, Email: c.Email, Phone: c.Phone, Company: c.Company,
		Address: Address(c.Address),
		Type:    c.Type, Status: c.Status, Notes: c.Notes, Tags: slices.Clone(c.Tags), ExternalID: c.ExternalID,
		CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		Version: c.Version, Seq: c.Seq, Deleted: c.Deleted, MergedInto: c.MergedInto,
	}
	for _, a := range c.Absorbed {
		d.Absorbed = append(d.Absorbed, Absorbed{ID: a.CustomerID, Code: a.CustomerCode})
	}
	if d.Tags == nil {
		d.Tags = []string{}
	}
	return d
}

// State returns the aggregate state the document stores: what the
// projector folds the next events onto. The merge records of the command
// side (what each absorbed customer gave) are not part of it; Evolve needs
// only Absorbed to keep the document.
func (d Customer) State() customer.Customer {
	c := customer.Customer{
		ID: d.ID, Code: d.Code, Name: d.Name, Email: d.Email, Phone: d.Phone, Company: d.Company,
		Address: customer.Address(d.Address),
		Type:    d.Type, Status: d.Status, Notes: d.Notes, Tags: slices.Clone(d.Tags), ExternalID: d.ExternalID,
		CreatedBy: d.CreatedBy, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
		Version: d.Version, Seq: d.Seq, Deleted: d.Deleted, MergedInto: d.MergedInto,
	}
	for _, a := range d.Absorbed {
		c.Absorbed = append(c.Absorbed, events.MergedCustomer{CustomerID: a.ID, CustomerCode: a.Code})
	}
	return c
}

// Prepare checks the documents and checkpoint of a Commit and returns, for
// each id, the document with the highest Seq (first-seen order of the ids),
// Tags never nil: the part of Commit every adapter shares. Ids must be set,
// Seq, Version and the checkpoint must fit in an int64 (both stores keep
// signed 64-bit integers).
func Prepare(docs []Customer, checkpoint uint64) ([]Customer, error) {
	if checkpoint > math.MaxInt64 {
		return nil, fmt.Errorf("%w: checkpoint %d out of range", ErrInternal, checkpoint)
	}
	at := make(map[string]int, len(docs))
	out := make([]Customer, 0, len(docs))
	for _, d := range docs {
		switch {
		case d.ID == "":
			return nil, fmt.Errorf("%w: a document without id", ErrInternal)
		case d.Seq > math.MaxInt64 || d.Version > math.MaxInt64:
			return nil, fmt.Errorf("%w: document %s: seq or version out of range", ErrInternal, d.ID)
		}
		if d.Tags == nil {
			d.Tags = []string{}
		}
		i, seen := at[d.ID]
		switch {
		case !seen:
			at[d.ID] = len(out)
			out = append(out, d)
		case d.Seq > out[i].Seq:
			out[i] = d
		}
	}
	return out, nil
}

// Found is what Get returns for a document looked up by id (found false:
// none): the live document; readmodel.ErrNotFound for none or a tombstone;
// for a customer merged into another, a fault.Moved error naming the
// survivor.
func Found(d Customer, found bool) (Customer, error) {
	switch {
	case !found || d.Deleted:
		return Customer{}, ErrNotFound
	case d.MergedInto != "":
		return Customer{}, &fault.Error{Kind: fault.Moved, Message: "the customer was merged into " + d.MergedInto, Ref: d.MergedInto}
	}
	return d, nil
}
