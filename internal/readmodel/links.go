package readmodel

import (
	"context"
	"fmt"
	"math"
	"time"

	"crm/internal/customer"
	"crm/internal/events"
)

// Link is one link document: a contact's link to a customer as the
// customer's events record it (events.CustomerContactLinked), or its
// tombstone (Ended) once unlinked, so that a late event never revives it.
// Optional strings are "" when unset; From and To are dates (YYYY-MM-DD).
type Link struct {
	CustomerID string
	ContactID  string
	Role       string
	Primary    bool
	From, To   string
	LinkedBy   string
	LinkedAt   time.Time
	Seq        uint64 // stream sequence of the customer's event
	Ended      bool
}

// LinkFromEvent returns the link document of a customer's link event at
// stream sequence seq, and whether the event is one.
func LinkFromEvent(e events.Event) (Link, bool) {
	switch d := e.Data.(type) {
	case *events.CustomerContactLinked:
		l := customer.LinkOf(d)
		return Link{CustomerID: d.CustomerID, ContactID: d.ContactID, Role: l.Role, Primary: l.Primary, From: l.From, To: l.To,
			LinkedBy: l.LinkedBy, LinkedAt: l.LinkedAt, Seq: e.Seq}, true
	case *events.CustomerContactUnlinked:
		return Link{CustomerID: d.CustomerID, ContactID: d.ContactID, LinkedBy: d.UnlinkedBy, LinkedAt: d.UnlinkedAt, Seq: e.Seq, Ended: true}, true
	}
	return Link{}, false
}

// LinkedContact is a live link of a customer, with its contact.
type LinkedContact struct {
	Link    Link
	Contact Contact
}

// LinkedCustomer is a live link of a contact, with its customer.
type LinkedCustomer struct {
	Link     Link
	Customer Customer
}

// LinkReader is what the link query endpoints need. Each list is bounded
// by customer.MaxLinks, so it has no pages.
type LinkReader interface {
	// CustomerContacts returns the live links of the customer to live
	// contacts: the primary one first, then by the contact's name
	// (search.Fold), then contact id.
	CustomerContacts(ctx context.Context, customerID string) ([]LinkedContact, error)
	// ContactCustomers returns the live links of the contact to live
	// customers (not deleted nor merged into another), by the customer's
	// name (search.Fold), then code.
	ContactCustomers(ctx context.Context, contactID string) ([]LinkedCustomer, error)
}

// PrepareLinks checks the link documents of a Commit and returns, for each
// (customer, contact), the one with the highest Seq.
func PrepareLinks(docs []Link) ([]Link, error) {
	type key struct{ customer, contact string }
	at := make(map[key]int, len(docs))
	out := make([]Link, 0, len(docs))
	for _, d := range docs {
		switch {
		case d.CustomerID == "" || d.ContactID == "":
			return nil, fmt.Errorf("%w: a link document without its ids", ErrInternal)
		case d.Seq > math.MaxInt64:
			return nil, fmt.Errorf("%w: link %s/%s: seq out of range", ErrInternal, d.CustomerID, d.ContactID)
		}
		k := key{d.CustomerID, d.ContactID}
		i, seen := at[k]
		switch {
		case !seen:
			at[k] = len(out)
			out = append(out, d)
		case d.Seq > out[i].Seq:
			out[i] = d
		}
	}
	return out, nil
}
