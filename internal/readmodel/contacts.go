package readmodel

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"crm/internal/contact"
	"crm/internal/fault"
	"crm/internal/search"
)

// ErrContactNotFound (fault.NotFound): no live contact with that id.
var ErrContactNotFound = fault.New(fault.NotFound, "contact not found")

// Contact is one contact document of the read model: the fold of the
// contact's events (contact.Evolve), tombstones included.
type Contact struct {
	ID        string
	Name      string
	Email     string // "" = unset, as every optional string
	Phone     string
	Title     string
	Notes     string
	Tags      []string
	CreatedBy string
	CreatedAt time.Time
	UpdatedBy string
	UpdatedAt time.Time
	Version   uint64
	Seq       uint64 // stream sequence of the last event applied
	Deleted   bool
}

// FromContact returns the document of a contact's state (its links are
// documents of their own).
func FromContact(c contact.Contact) Contact {
	d := Contact{
		ID: c.ID, Name: c.Name, Email: c.Email, Phone: c.Phone, Title: c.Title, Notes: c.Notes, Tags: slices.Clone(c.Tags),
		CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, UpdatedBy: c.UpdatedBy, UpdatedAt: c.UpdatedAt,
		Version: c.Version, Seq: c.Seq, Deleted: c.Deleted,
	}
	if d.Tags == nil {
		d.Tags = []string{}
	}
	return d
}

// State returns the contact state the document stores (without its
// links: the projector needs only the version and the fields).
func (d Contact) State() contact.Contact {
	return contact.Contact{
		ID: d.ID, Name: d.Name, Email: d.Email, Phone: d.Phone, Title: d.Title, Notes: d.Notes, Tags: slices.Clone(d.Tags),
		CreatedBy: d.CreatedBy, CreatedAt: d.CreatedAt, UpdatedBy: d.UpdatedBy, UpdatedAt: d.UpdatedAt,
		Version: d.Version, Seq: d.Seq, Deleted: d.Deleted,
	}
}

// Batch is what one Commit writes: the changed documents of each
// aggregate, all with the one checkpoint.
type Batch struct {
	Customers []Customer
	Contacts  []Contact
	// Links replace the stored link of their (customer, contact) when
	// their Seq is higher.
	Links []Link
	// Activities are stored like the others; each live one is on its
	// customer's timeline at its OccurredAt.
	Activities []Activity
	// Timeline are the customers' events to put on their timelines (each
	// once: a repeat is ignored).
	Timeline []TimelineEvent
}

// ContactWriter is the part of Writer that stores contacts.
type ContactWriter interface {
	// LoadContacts returns the stored contact documents (tombstones
	// included) of ids; ids without a document are absent from the map.
	LoadContacts(ctx context.Context, ids []string) (map[string]Contact, error)
	// CommitBatch is Commit for the documents of every aggregate: all of
	// b and the checkpoint, each document replacing a stored one only if
	// its Seq is higher. A batch holding an invalid document (no id, a
	// Seq beyond int64) is refused as a whole with ErrInternal before
	// anything is written.
	CommitBatch(ctx context.Context, b Batch, checkpoint uint64) error
}

// ContactReader is what the contact query endpoints need.
type ContactReader interface {
	// GetContact returns one live contact or ErrContactNotFound.
	GetContact(ctx context.Context, id string) (Contact, error)
	// ListContacts returns one page of the live contacts matching q's
	// filters, in q's order (keyset paging with q.After: the contacts
	// strictly after that position), their number (Total, exact: every
	// live contact matching the filters, whatever q.After), and whether
	// more follow (More). An unknown q.Sort is a fault.Invalid error.
	// With q.Text it is a search (see ContactQuery.Text): in name order,
	// its Total bounded, at a cost that does not grow with the number of
	// matches either.
	ListContacts(ctx context.Context, q ContactQuery) (ContactPage, error)
}

// Sort fields of ListContacts.
var ContactSorts = []string{SortName, SortCreatedAt, SortUpdatedAt}

// ContactQuery selects one page of contacts.
type ContactQuery struct {
	PerPage int // 1..MaxPerPage, DefaultPerPage when unset

	// Filters (exact match; empty = any).
	Tag   string
	Email string // contacts whose email, lower-cased (strings.ToLower), is this one lower-cased

	// Text, when set, keeps the contacts that match it with the rules of
	// package search (every word a prefix of a word of the name, title or
	// email; case- and accent-insensitive) and makes the page a search:
	// in name order only (Sort SortName, not Desc), without Email, its
	// Total exact up to search.MaxExactTotal and that bound beyond it
	// (TotalAtLeast). A Text without words, or too long, is an error
	// wrapping search.ErrEmptyQuery or search.ErrQueryTooLong.
	Text string

	// Sort is SortName (the default), SortCreatedAt or SortUpdatedAt; Desc
	// reverses it. Ties are broken by id in the same direction.
	Sort string
	Desc bool

	// After, when set, is the position of the last contact of the page
	// before (ContactPositionOf): the page is the PerPage contacts that
	// follow it, at a cost that does not grow with the position.
	After *ContactPosition
}

// Limit returns q's page size, clamped.
func (q ContactQuery) Limit() int {
	switch {
	case q.PerPage <= 0:
		return DefaultPerPage
	case q.PerPage > MaxPerPage:
		return MaxPerPage
	}
	return q.PerPage
}

// ContactPosition is a place in the order of ListContacts.
type ContactPosition struct {
	Name string    // SortName: search.Fold(name)
	Time time.Time // SortCreatedAt, SortUpdatedAt
	ID   string    // the tie-breaker of every order
}

// ContactPositionOf returns c's position in a ListContacts sorted by sort.
func ContactPositionOf(c Contact, sort string) ContactPosition {
	p := ContactPosition{ID: c.ID}
	switch sort {
	case SortCreatedAt:
		p.Time = c.CreatedAt
	case SortUpdatedAt:
		p.Time = c.UpdatedAt
	default:
		p.Name = search.Fold(c.Name)
	}
	return p
}

// ContactPage is one page of contacts and the number of matches.
type ContactPage struct {
	Items []Contact
	Total int64
	// TotalAtLeast: Total is a lower bound (a search with more matches
	// than search.MaxExactTotal).
	TotalAtLeast bool
	More         bool // contacts follow this page
}

// CheckContactSearch returns the words of q.Text, or why q is not a
// search a store can answer (fault.Invalid, or the search errors).
func CheckContactSearch(q ContactQuery) ([]string, error) {
	words, err := search.ParseQuery(q.Text)
	if err != nil {
		return nil, err
	}
	if q.Sort != "" && q.Sort != SortName || q.Desc || q.Email != "" {
		return nil, fault.New(fault.Invalid, "a contact search is in name order, without an email filter")
	}
	return words, nil
}

// ContactTerms returns the searchable words of a contact by field: its
// name, title and email.
func ContactTerms(c Contact) (name, title, email []string) {
	return search.Tokens(c.Name), search.Tokens(c.Title), search.Tokens(c.Email)
}

// PrepareContacts is Prepare for contact documents.
func PrepareContacts(docs []Contact) ([]Contact, error) {
	at := make(map[string]int, len(docs))
	out := make([]Contact, 0, len(docs))
	for _, d := range docs {
		switch {
		case d.ID == "":
			return nil, fmt.Errorf("%w: a contact document without id", ErrInternal)
		case d.Seq > math.MaxInt64 || d.Version > math.MaxInt64:
			return nil, fmt.Errorf("%w: contact %s: seq or version out of range", ErrInternal, d.ID)
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
