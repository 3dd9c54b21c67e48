// Package audit turns a customer's events into its history (who changed what,
// from which value to which) and its state as of any instant. Pure functions
// over events read from the stream, shared by the API and crmctl.
package audit

import (
	"maps"
	"slices"
	"strings"
	"time"

	"crm/internal/customer"
	"crm/internal/events"
)

// Change is one field's old and new value (nil = unset).
type Change struct {
	Field string `json:"field"`
	Old   any    `json:"old"`
	New   any    `json:"new"`
}

// Entry is one event of a customer's history.
type Entry struct {
	EventID       string    `json:"eventId"`
	Type          string    `json:"type"`
	Kind          string    `json:"kind"`
	Version       uint64    `json:"version"`
	Time          time.Time `json:"time"`
	Actor         string    `json:"actor"`
	CorrelationID string    `json:"correlationId,omitempty"`
	Sequence      uint64    `json:"sequence"`
	Changes       []Change  `json:"changes"`
}

// History returns the entries of a customer's events, oldest first. For a
// creation the changes list every field that was set; for an update every
// changed field with its old and new value; for a deletion none.
func History(evs []events.Event) []Entry {
	out := make([]Entry, 0, len(evs))
	var state customer.Customer
	for _, ev := range evs {
		next := customer.Evolve(state, ev)
		e := Entry{
			EventID: ev.ID, Type: ev.Type(), Kind: string(ev.Kind()), Version: ev.Version, Time: ev.Time,
			Actor: ev.Actor, CorrelationID: ev.CorrelationID, Sequence: ev.Seq, Changes: []Change{},
		}
		if ev.Kind() != events.KindDeleted {
			e.Changes = Diff(state, next)
		}
		out = append(out, e)
		state = next
	}
	return out
}

// Diff lists the fields that differ between two states, in schema order.
func Diff(a, b customer.Customer) []Change {
	out := []Change{}
	str := func(field, x, y string) {
		if x != y {
			out = append(out, Change{Field: field, Old: opt(x), New: opt(y)})
		}
	}
	str("name", a.Name, b.Name)
	str("email", a.Email, b.Email)
	str("phone", a.Phone, b.Phone)
	str("company", a.Company, b.Company)
	str("address.street", a.Address.Street, b.Address.Street)
	str("address.city", a.Address.City, b.Address.City)
	str("address.state", a.Address.State, b.Address.State)
	str("address.country", a.Address.Country, b.Address.Country)
	str("address.postalCode", a.Address.PostalCode, b.Address.PostalCode)
	str("type", a.Type, b.Type)
	str("status", a.Status, b.Status)
	str("notes", a.Notes, b.Notes)
	if !slices.Equal(a.Tags, b.Tags) && (len(a.Tags) > 0 || len(b.Tags) > 0) {
		out = append(out, Change{Field: "tags", Old: tags(a.Tags, a.Version == 0), New: tags(b.Tags, false)})
	}
	str("externalId", a.ExternalID, b.ExternalID)
	// Links to contacts: one change per contact whose link appeared,
	// changed or ended, as contacts.<contactId>.
	ids := slices.Sorted(maps.Keys(a.Contacts))
	for id := range b.Contacts {
		if _, ok := a.Contacts[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		x, inA := a.Contacts[id]
		y, inB := b.Contacts[id]
		if inA == inB && x.SameAttributes(y) {
			continue
		}
		out = append(out, Change{Field: "contacts." + id, Old: linkValue(x, inA), New: linkValue(y, inB)})
	}
	return out
}

// linkValue is a link's attributes as a history shows them (nil: no link).
func linkValue(l customer.Link, ok bool) any {
	if !ok {
		return nil
	}
	return l.Attributes()
}

func opt(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func tags(t []string, none bool) any {
	if none {
		return nil
	}
	if t == nil {
		return []string{}
	}
	return t
}

// AsOf folds the events that happened at or before t. ok is false when the
// customer did not exist yet at t.
func AsOf(evs []events.Event, t time.Time) (customer.Customer, bool) {
	state := foldUntil(evs, t, customer.Evolve)
	return state, state.Version > 0
}

// foldUntil folds, with evolve, the events of one aggregate that
// happened at or before t (they are in stream order).
func foldUntil[S any](evs []events.Event, t time.Time, evolve func(S, events.Event) S) S {
	var state S
	for _, ev := range evs {
		if ev.Time.After(t) {
			break
		}
		state = evolve(state, ev)
	}
	return state
}

// ParseAsOf parses the RFC 3339 time of an "as of" query and returns the
// last instant it names: a time written to the second covers that whole
// second, one written to the millisecond that millisecond, and so on to
// the nanosecond. Events keep nanoseconds while the REST views show
// milliseconds, so a time copied from a response includes the change that
// response showed.
func ParseAsOf(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	digits := 0
	if i := strings.IndexByte(s, '.'); i >= 0 {
		for _, r := range s[i+1:] {
			if r < '0' || r > '9' {
				break
			}
			digits++
		}
	}
	unit := time.Second
	for range min(digits, 9) {
		unit /= 10
	}
	return t.Add(unit - time.Nanosecond), nil
}
