// Package contact is the pure domain of contacts: the people behind the
// customers (a billing clerk, a decision maker), an aggregate of their own
// with their own events (crm.contacts.<id>.<kind>), so that one person can
// belong to several customers. It has the shape of package customer: State,
// validation, Decide and Evolve, no I/O.
package contact

import (
	"maps"
	"slices"
	"time"

	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

// MaxTitle is the longest job title, in characters; the other limits are
// the customer's (customer.MaxName, MaxEmail, MaxPhone, MaxNotes, MaxTags).
const MaxTitle = 200

// Contact is the state of one contact as folded from its events. Optional
// string fields are "" when unset.
type Contact struct {
	ID        string
	Name      string
	Email     string
	Phone     string
	Title     string
	Notes     string
	Tags      []string
	CreatedBy string
	CreatedAt time.Time
	UpdatedBy string
	UpdatedAt time.Time

	Version uint64 // number of events applied; 0 = never created
	Seq     uint64 // stream sequence of the last event applied
	Deleted bool   // a tombstone: the contact was deleted

	// Customers are the customers the contact is linked to: id → code.
	// (Command side only: the read model keeps links as documents of
	// their own.)
	Customers map[string]string
}

// Exists reports whether the contact was created and is not deleted.
func (c Contact) Exists() bool { return c.Version > 0 && !c.Deleted }

// Domain errors (sentinels: match them with errors.Is).
var (
	// ErrNotFound: the contact never existed or is deleted.
	ErrNotFound = fault.New(fault.NotFound, "contact not found")
	// ErrAlreadyExists: a create for an id that already has events.
	ErrAlreadyExists = fault.New(fault.Conflict, "contact already exists")
	// ErrPreconditionFailed: the client's expected version is not current.
	ErrPreconditionFailed = fault.New(fault.PreconditionFailed,
		"the contact has changed: If-Match does not match its current ETag")
)

// Field is one field of a command in JSON merge-patch terms.
type Field[T any] = events.Change[T]

// Input is the body of a create or an update, as the client sent it: a
// create treats absent and null optional fields alike; an update merges it
// into the current state (RFC 7396).
type Input struct {
	Name  Field[string]
	Email Field[string]
	Phone Field[string]
	Title Field[string]
	Notes Field[string]
	Tags  Field[[]string]
}

// normalize validates an input and returns it normalised, with the rules
// of the customer's fields of the same kinds; every invalid field is
// reported.
func normalize(in Input, create bool) (Input, error) {
	var c customer.Checker
	if create && !in.Name.Set {
		c.Fail("name", "is required")
	}
	c.Text("name", &in.Name, customer.MaxName, true, false)
	c.Email("email", &in.Email)
	c.Phone("phone", &in.Phone)
	c.Text("title", &in.Title, MaxTitle, false, false)
	c.Text("notes", &in.Notes, customer.MaxNotes, false, true)
	c.Tags("tags", &in.Tags)
	return in, c.Err()
}

// Validate checks an input (of a create when create is set) and returns a
// fault.Invalid error listing every invalid field, or nil.
func Validate(in Input, create bool) error {
	_, err := normalize(in, create)
	return err
}

// Command is one of Create, Update or Delete.
type Command interface{ isCommand() }

// Create creates a contact with a fresh id.
type Create struct {
	ContactID string
	Input     Input
}

// Update merges Input into the contact. When ExpectedVersion is not 0 the
// contact must be at that version.
type Update struct {
	ContactID       string
	Input           Input
	ExpectedVersion uint64
}

// Delete deletes the contact. When ExpectedVersion is not 0 the contact
// must be at that version.
type Delete struct {
	ContactID       string
	ExpectedVersion uint64
}

func (Create) isCommand() {}
func (Update) isCommand() {}
func (Delete) isCommand() {}

// Decide returns the events that carry out cmd on state, or an error: a
// fault.Invalid error, ErrNotFound, ErrAlreadyExists or
// ErrPreconditionFailed. An update that changes nothing returns no events
// and no error.
func Decide(state Contact, cmd Command, m customer.Meta) ([]events.Event, error) {
	ev := events.Event{
		ID:            m.EventID,
		Source:        m.Source,
		Time:          m.Now.UTC(),
		Version:       state.Version + 1,
		Actor:         m.Actor,
		CorrelationID: m.CorrelationID,
		CausationID:   m.CausationID,
	}
	switch c := cmd.(type) {
	case Create:
		if state.Version > 0 {
			return nil, ErrAlreadyExists
		}
		in, err := normalize(c.Input, true)
		if err != nil {
			return nil, err
		}
		ev.AggregateID = c.ContactID
		ev.Data = created(c.ContactID, in, m.Actor, ev.Time)
		return []events.Event{ev}, nil

	case Update:
		if !state.Exists() {
			return nil, ErrNotFound
		}
		in, err := normalize(c.Input, false)
		if err != nil {
			return nil, err
		}
		if c.ExpectedVersion != 0 && c.ExpectedVersion != state.Version {
			return nil, ErrPreconditionFailed
		}
		ch := changes(state, in)
		if ch.Empty() {
			return nil, nil
		}
		ev.AggregateID = state.ID
		ev.Data = &events.ContactUpdated{ContactID: state.ID, Changes: ch, UpdatedBy: m.Actor, UpdatedAt: ev.Time}
		return []events.Event{ev}, nil

	case Delete:
		if !state.Exists() {
			return nil, ErrNotFound
		}
		if c.ExpectedVersion != 0 && c.ExpectedVersion != state.Version {
			return nil, ErrPreconditionFailed
		}
		// Deleting a contact ends its links to customers first (the
		// command side adds the customers' half of each).
		next := customer.EventIDs(m)
		var out []events.Event
		for _, cid := range state.LinkedCustomers() {
			out = append(out, ContactUnlinked(state, cid, state.Customers[cid], events.UnlinkContactDeleted, m, next(),
				state.Version+uint64(len(out))+1))
		}
		ev.ID, ev.Version = next(), state.Version+uint64(len(out))+1
		ev.AggregateID = state.ID
		ev.Data = &events.ContactDeleted{ContactID: state.ID, DeletedBy: m.Actor, DeletedAt: ev.Time}
		return append(out, ev), nil
	}
	panic("contact.Decide: unknown command type")
}

func created(id string, in Input, actor string, now time.Time) *events.ContactCreated {
	opt := func(f Field[string]) *string {
		if f.Set && !f.Null {
			v := f.Value
			return &v
		}
		return nil
	}
	d := &events.ContactCreated{
		ContactID: id,
		Name:      in.Name.Value,
		Email:     opt(in.Email),
		Phone:     opt(in.Phone),
		Title:     opt(in.Title),
		Notes:     opt(in.Notes),
		Tags:      []string{},
		CreatedBy: actor,
		CreatedAt: now,
	}
	if in.Tags.Set && !in.Tags.Null {
		d.Tags = slices.Clone(in.Tags.Value)
	}
	return d
}

// changes compares the normalised input with the state and returns only
// what differs.
func changes(s Contact, in Input) events.ContactChanges {
	str := customer.StringChange
	ch := events.ContactChanges{
		Name:  str(s.Name, in.Name),
		Email: str(s.Email, in.Email),
		Phone: str(s.Phone, in.Phone),
		Title: str(s.Title, in.Title),
		Notes: str(s.Notes, in.Notes),
	}
	if in.Tags.Set {
		next := []string{}
		if !in.Tags.Null {
			next = in.Tags.Value
		}
		if !slices.Equal(next, s.Tags) {
			ch.Tags = events.SetTo(slices.Clone(next))
		}
	}
	return ch
}

// Evolve applies one event to the state and returns the new state: the one
// fold of the command side, the projector and the audit tools. The event
// is assumed to be this contact's and to follow the state.
func Evolve(c Contact, e events.Event) Contact {
	switch d := e.Data.(type) {
	case *events.ContactCreated:
		c = Contact{
			ID:        d.ContactID,
			Name:      d.Name,
			Email:     deref(d.Email),
			Phone:     deref(d.Phone),
			Title:     deref(d.Title),
			Notes:     deref(d.Notes),
			Tags:      slices.Clone(d.Tags),
			CreatedBy: d.CreatedBy,
			CreatedAt: d.CreatedAt,
			UpdatedBy: d.CreatedBy,
			UpdatedAt: d.CreatedAt,
		}
		if c.Tags == nil {
			c.Tags = []string{}
		}
	case *events.ContactUpdated:
		set := func(dst *string, ch events.Change[string]) {
			if ch.Set {
				*dst = ch.Value // "" when cleared
			}
		}
		set(&c.Name, d.Changes.Name)
		set(&c.Email, d.Changes.Email)
		set(&c.Phone, d.Changes.Phone)
		set(&c.Title, d.Changes.Title)
		set(&c.Notes, d.Changes.Notes)
		if d.Changes.Tags.Set {
			c.Tags = slices.Clone(d.Changes.Tags.Value)
			if c.Tags == nil {
				c.Tags = []string{}
			}
		}
		c.UpdatedBy, c.UpdatedAt = d.UpdatedBy, d.UpdatedAt
	case *events.ContactDeleted:
		c.Deleted = true
		c.UpdatedBy, c.UpdatedAt = d.DeletedBy, d.DeletedAt
		c.Customers = nil // the deletion ended its links (on the customers' side, in its batch)
	case *events.ContactLinked:
		c.Customers = maps.Clone(c.Customers)
		if c.Customers == nil {
			c.Customers = map[string]string{}
		}
		c.Customers[d.CustomerID] = d.CustomerCode
	case *events.ContactUnlinked:
		c.Customers = maps.Clone(c.Customers)
		delete(c.Customers, d.CustomerID)
	default:
		return c // not a contact event: nothing to apply
	}
	c.Version = e.Version
	if e.Seq > c.Seq {
		c.Seq = e.Seq
	}
	return c
}

// Fold replays events from the empty state.
func Fold(evs []events.Event) Contact {
	var c Contact
	for _, e := range evs {
		c = Evolve(c, e)
	}
	return c
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
