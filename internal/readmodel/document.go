package readmodel

import (
	"fmt"
	"math"
	"slices"
	"time"

	"crm/internal/customer"
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
	ID        string
	Code      string
	Name      string
	Email     string // "" = unset, as every optional string
	Phone     string
	Company   string
	Address   Address
	Type      string
	Status    string
	Notes     string
	Tags      []string
	CreatedBy string
	CreatedAt time.Time
	UpdatedAt time.Time

	Version uint64 // the customer's version (its ETag)
	Seq     uint64 // stream sequence of the last event applied: the write guard
	Deleted bool
}

// Live reports whether the document is of a customer that exists (not a
// tombstone).
func (d Customer) Live() bool { return d.Version > 0 && !d.Deleted }

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
		Type:    c.Type, Status: c.Status, Notes: c.Notes, Tags: slices.Clone(c.Tags),
		CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		Version: c.Version, Seq: c.Seq, Deleted: c.Deleted,
	}
	if d.Tags == nil {
		d.Tags = []string{}
	}
	return d
}

// State returns the aggregate state the document stores (what the
// projector folds the next events onto).
func (d Customer) State() customer.Customer {
	return customer.Customer{
		ID: d.ID, Code: d.Code, Name: d.Name, Email: d.Email, Phone: d.Phone, Company: d.Company,
		Address: customer.Address(d.Address),
		Type:    d.Type, Status: d.Status, Notes: d.Notes, Tags: slices.Clone(d.Tags),
		CreatedBy: d.CreatedBy, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
		Version: d.Version, Seq: d.Seq, Deleted: d.Deleted,
	}
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
