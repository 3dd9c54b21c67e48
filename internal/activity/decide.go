package activity

import (
	"slices"
	"strconv"
	"time"

	"crm/internal/customer"
	"crm/internal/events"
)

// Command is one of Create, Update or Delete.
type Command interface{ isCommand() }

// Create records a new activity of a customer.
type Create struct {
	ActivityID string
	CustomerID string
	Input      Input
}

// Update merges Input into the activity (RFC 7396). When ExpectedVersion
// is not 0 the activity must be at that version.
type Update struct {
	ActivityID      string
	Input           Input
	ExpectedVersion uint64
}

// Delete deletes the activity. When ExpectedVersion is not 0 the activity
// must be at that version.
type Delete struct {
	ActivityID      string
	ExpectedVersion uint64
}

func (Create) isCommand() {}
func (Update) isCommand() {}
func (Delete) isCommand() {}

// Parties is what a decision knows of the others an activity names: its
// customer (for a create) and which of the contacts it names are live.
type Parties struct {
	Customer customer.Customer
	Contacts map[string]bool
}

// Decide returns the events that carry out cmd on state, or an error: a
// fault.Invalid error (a contact named that is not live is one, on its
// contactIds entry), customer.ErrNotFound or fault.Moved (a create for a
// customer deleted, unknown or merged into another), ErrNotFound,
// ErrAlreadyExists, ErrPreconditionFailed. An update that changes nothing
// returns no events.
func Decide(state Activity, cmd Command, p Parties, m customer.Meta) ([]events.Event, error) {
	ev := events.Event{ID: m.EventID, Source: m.Source, Time: m.Now.UTC(), Version: state.Version + 1, Actor: m.Actor,
		CorrelationID: m.CorrelationID, CausationID: m.CausationID}
	switch c := cmd.(type) {
	case Create:
		if state.Version > 0 {
			return nil, ErrAlreadyExists
		}
		n, err := normalize(c.Input, Activity{}, true)
		if err != nil {
			return nil, err
		}
		switch {
		case p.Customer.MergedInto != "":
			return nil, customer.MovedTo(p.Customer.MergedInto)
		case !p.Customer.Exists() || p.Customer.ID != c.CustomerID:
			return nil, customer.ErrNotFound
		}
		// (The request's list, so that a problem names its own index.)
		if err := liveContacts(c.Input.ContactIDs, nil, p.Contacts); err != nil {
			return nil, err
		}
		ev.AggregateID = c.ActivityID
		ev.Data = created(c, n, m.Actor, ev.Time)
		return []events.Event{ev}, nil

	case Update:
		if !state.Exists() {
			return nil, ErrNotFound
		}
		n, err := normalize(c.Input, state, false)
		if err != nil {
			return nil, err
		}
		if c.ExpectedVersion != 0 && c.ExpectedVersion != state.Version {
			return nil, ErrPreconditionFailed
		}
		if err := liveContacts(c.Input.ContactIDs, state.ContactIDs, p.Contacts); err != nil {
			return nil, err
		}
		ch := changes(state, n)
		if ch.Empty() {
			return nil, nil
		}
		ev.AggregateID = state.ID
		ev.Data = &events.ActivityUpdated{ActivityID: state.ID, CustomerID: state.CustomerID, Changes: ch, UpdatedBy: m.Actor, UpdatedAt: ev.Time}
		return []events.Event{ev}, nil

	case Delete:
		if !state.Exists() {
			return nil, ErrNotFound
		}
		if c.ExpectedVersion != 0 && c.ExpectedVersion != state.Version {
			return nil, ErrPreconditionFailed
		}
		ev.AggregateID = state.ID
		ev.Data = &events.ActivityDeleted{ActivityID: state.ID, CustomerID: state.CustomerID, DeletedBy: m.Actor, DeletedAt: ev.Time}
		return []events.Event{ev}, nil
	}
	panic("activity.Decide: unknown command type")
}

// liveContacts checks that every contact named anew (in f, not in had) is
// live.
func liveContacts(f Field[[]string], had []string, live map[string]bool) error {
	if !f.Set || f.Null {
		return nil
	}
	var c customer.Checker
	for i, id := range f.Value {
		if !slices.Contains(had, id) && !live[id] {
			c.Fail("contactIds["+strconv.Itoa(i)+"]", "is not a contact (unknown or deleted)")
		}
	}
	return c.Err()
}

func created(c Create, n normalized, actor string, now time.Time) *events.ActivityCreated {
	opt := func(f Field[string]) *string {
		if f.Set && !f.Null {
			v := f.Value
			return &v
		}
		return nil
	}
	d := &events.ActivityCreated{
		ActivityID: c.ActivityID, CustomerID: c.CustomerID, Type: n.Type.Value, OccurredAt: n.occurredAt,
		Subject: opt(n.Subject), Body: opt(n.Body), ContactIDs: []string{}, Outcome: opt(n.Outcome),
		CreatedBy: actor, CreatedAt: now,
	}
	if n.ContactIDs.Set && !n.ContactIDs.Null {
		d.ContactIDs = slices.Clone(n.ContactIDs.Value)
	}
	if n.Type.Value == TypeTask {
		done := n.Done.Set && !n.Done.Null && n.Done.Value
		d.Done = &done
		if !n.dueAt.IsZero() {
			due := n.dueAt
			d.DueAt = &due
		}
	}
	return d
}

// changes compares the normalised input with the state and returns only
// what differs. A type that stops being a task clears dueAt and done.
func changes(s Activity, n normalized) events.ActivityChanges {
	str := customer.StringChange
	var ch events.ActivityChanges
	ch.Type = str(s.Type, n.Type)
	if n.OccurredAt.Set && !n.occurredAt.Equal(s.OccurredAt) {
		ch.OccurredAt = events.SetTo(n.occurredAt)
	}
	ch.Subject = str(s.Subject, n.Subject)
	ch.Body = str(s.Body, n.Body)
	ch.Outcome = str(s.Outcome, n.Outcome)
	if n.ContactIDs.Set {
		next := []string{}
		if !n.ContactIDs.Null {
			next = n.ContactIDs.Value
		}
		if !slices.Equal(next, s.ContactIDs) {
			ch.ContactIDs = events.SetTo(slices.Clone(next))
		}
	}
	typ := s.Type
	if ch.Type.Set {
		typ = ch.Type.Value
	}
	if typ != TypeTask {
		if !s.DueAt.IsZero() {
			ch.DueAt = events.Cleared[time.Time]()
		}
		if s.Done {
			ch.Done = events.Cleared[bool]()
		}
		return ch
	}
	if n.DueAt.Set {
		switch {
		case n.DueAt.Null && !s.DueAt.IsZero():
			ch.DueAt = events.Cleared[time.Time]()
		case !n.DueAt.Null && !n.dueAt.Equal(s.DueAt):
			ch.DueAt = events.SetTo(n.dueAt)
		}
	}
	if n.Done.Set {
		done := !n.Done.Null && n.Done.Value
		if done != s.Done {
			ch.Done = events.SetTo(done)
		}
	}
	return ch
}

// Evolve applies one event to the state and returns the new state (an
// event of another aggregate leaves it as it is).
func Evolve(a Activity, e events.Event) Activity {
	switch d := e.Data.(type) {
	case *events.ActivityCreated:
		a = Activity{
			ID: d.ActivityID, CustomerID: d.CustomerID, Type: d.Type, OccurredAt: d.OccurredAt.UTC(),
			Subject: deref(d.Subject), Body: deref(d.Body), ContactIDs: slices.Clone(d.ContactIDs), Outcome: deref(d.Outcome),
			CreatedBy: d.CreatedBy, CreatedAt: d.CreatedAt, UpdatedBy: d.CreatedBy, UpdatedAt: d.CreatedAt,
		}
		if a.ContactIDs == nil {
			a.ContactIDs = []string{}
		}
		if d.DueAt != nil {
			a.DueAt = d.DueAt.UTC()
		}
		if d.Done != nil {
			a.Done = *d.Done
		}
	case *events.ActivityUpdated:
		ch := d.Changes
		str := func(dst *string, c events.Change[string]) {
			if c.Set {
				*dst = c.Value
			}
		}
		str(&a.Type, ch.Type)
		str(&a.Subject, ch.Subject)
		str(&a.Body, ch.Body)
		str(&a.Outcome, ch.Outcome)
		if ch.OccurredAt.Set {
			a.OccurredAt = ch.OccurredAt.Value.UTC()
		}
		if ch.ContactIDs.Set {
			a.ContactIDs = slices.Clone(ch.ContactIDs.Value)
			if a.ContactIDs == nil {
				a.ContactIDs = []string{}
			}
		}
		if ch.DueAt.Set {
			a.DueAt = ch.DueAt.Value.UTC() // zero when cleared
			if ch.DueAt.Null {
				a.DueAt = time.Time{}
			}
		}
		if ch.Done.Set {
			a.Done = ch.Done.Value // false when cleared
		}
		a.UpdatedBy, a.UpdatedAt = d.UpdatedBy, d.UpdatedAt
	case *events.ActivityDeleted:
		a.Deleted = true
		a.UpdatedBy, a.UpdatedAt = d.DeletedBy, d.DeletedAt
	default:
		return a
	}
	a.Version = e.Version
	if e.Seq > a.Seq {
		a.Seq = e.Seq
	}
	return a
}

// Fold replays events from the empty state.
func Fold(evs []events.Event) Activity {
	var a Activity
	for _, e := range evs {
		a = Evolve(a, e)
	}
	return a
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
