package audit

import (
	"slices"
	"time"

	"crm/internal/contact"
	"crm/internal/events"
)

// ContactHistory returns the entries of a contact's events, oldest first.
// A creation lists every field that was set, an update each changed field
// with its old and new value, a link to a customer or its end the field
// customers.<customerId> with the customer's code, {"customerCode": …}
// (null: no link; the contact records only that a link began or ended:
// its role, primary flag and dates, and their changes, are the
// customer's history), a deletion none (the unlinks before it end the
// links).
func ContactHistory(evs []events.Event) []Entry {
	out := make([]Entry, 0, len(evs))
	var state contact.Contact
	for _, ev := range evs {
		next := contact.Evolve(state, ev)
		e := Entry{
			EventID: ev.ID, Type: ev.Type(), Kind: string(ev.Kind()), Version: ev.Version, Time: ev.Time,
			Actor: ev.Actor, CorrelationID: ev.CorrelationID, Sequence: ev.Seq, Changes: []Change{},
		}
		switch d := ev.Data.(type) {
		case *events.ContactLinked:
			e.Changes = linkChange(d.CustomerID, state, next)
		case *events.ContactUnlinked:
			e.Changes = linkChange(d.CustomerID, state, next)
		case *events.ContactDeleted:
		default:
			e.Changes = ContactDiff(state, next)
		}
		out = append(out, e)
		state = next
	}
	return out
}

// ContactLink is a link's value in a contact's history.
type ContactLink struct {
	CustomerCode string `json:"customerCode"`
}

// linkChange is the change of the link to customer id between two contact
// states (none when it did not change).
func linkChange(id string, a, b contact.Contact) []Change {
	x, inA := a.Customers[id]
	y, inB := b.Customers[id]
	if inA == inB && x == y {
		return []Change{}
	}
	value := func(code string, ok bool) any {
		if !ok {
			return nil
		}
		return ContactLink{CustomerCode: code}
	}
	return []Change{{Field: "customers." + id, Old: value(x, inA), New: value(y, inB)}}
}

// ContactDiff lists the fields that differ between two contact states, in
// schema order (the links aside).
func ContactDiff(a, b contact.Contact) []Change {
	out := []Change{}
	str := func(field, x, y string) {
		if x != y {
			out = append(out, Change{Field: field, Old: opt(x), New: opt(y)})
		}
	}
	str("name", a.Name, b.Name)
	str("email", a.Email, b.Email)
	str("phone", a.Phone, b.Phone)
	str("title", a.Title, b.Title)
	str("notes", a.Notes, b.Notes)
	if !slices.Equal(a.Tags, b.Tags) && (len(a.Tags) > 0 || len(b.Tags) > 0) {
		out = append(out, Change{Field: "tags", Old: tags(a.Tags, a.Version == 0), New: tags(b.Tags, false)})
	}
	return out
}

// ContactAsOf folds the contact's events that happened at or before t; ok
// is false when the contact did not exist yet at t.
func ContactAsOf(evs []events.Event, t time.Time) (contact.Contact, bool) {
	state := foldUntil(evs, t, contact.Evolve)
	return state, state.Version > 0
}
