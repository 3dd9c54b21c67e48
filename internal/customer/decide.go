package customer

import (
	"maps"
	"slices"
	"time"

	"crm/internal/events"
)

// Meta is what a decision needs from outside the domain: who acts, when, and
// the ids to give the events. EventIDs must hold at least one fresh id.
type Meta struct {
	Actor         string
	Now           time.Time
	EventID       string
	Source        string
	CorrelationID string
	CausationID   string
	// NextID returns a fresh id for each event of a decision after the
	// first (merges record several); nil for single-event decisions.
	NextID func() string
}

// Command is one of Create, Update, Delete or Restore.
type Command interface{ isCommand() }

// Create creates a customer with a fresh id and an allocated code.
type Create struct {
	CustomerID string
	Code       string
	Input      Input
}

// Update merges Input into the customer (RFC 7396 semantics). When
// ExpectedVersion is not 0 the customer must be at that version.
type Update struct {
	CustomerID      string
	Input           Input
	ExpectedVersion uint64
}

// Delete deletes the customer. When ExpectedVersion is not 0 the customer
// must be at that version.
type Delete struct {
	CustomerID      string
	ExpectedVersion uint64
}

// Restore brings a deleted customer back, with its code and the state it
// had when it was deleted. When ExpectedVersion is not 0 the customer must
// be at that version.
type Restore struct {
	CustomerID      string
	ExpectedVersion uint64
	// Gone are contacts deleted since, or linked to customer.MaxLinks
	// customers since: the links the deletion ended are linked again
	// except to these.
	Gone map[string]bool
}

func (Restore) isCommand() {}
func (Create) isCommand()  {}
func (Update) isCommand()  {}
func (Delete) isCommand()  {}

// Decide returns the events that carry out cmd on state, or an error:
// a fault.Invalid error, ErrNotFound, ErrAlreadyExists, ErrNotDeleted or
// ErrPreconditionFailed.
// An update that changes nothing returns no events and no error.
func Decide(state Customer, cmd Command, m Meta) ([]events.Event, error) {
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
		in, err := normalizeCreate(c.Input)
		if err != nil {
			return nil, err
		}
		ev.AggregateID = c.CustomerID
		ev.Data = created(c.CustomerID, c.Code, in, m.Actor, ev.Time)
		return []events.Event{ev}, nil

	case Update:
		if state.MergedInto != "" {
			return nil, MovedTo(state.MergedInto)
		}
		if !state.Exists() {
			return nil, ErrNotFound
		}
		in, err := normalize(c.Input)
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
		ev.Data = &events.CustomerUpdated{
			CustomerID: state.ID, CustomerCode: state.Code, Changes: ch,
			UpdatedBy: m.Actor, UpdatedAt: ev.Time,
		}
		return []events.Event{ev}, nil

	case Delete:
		if state.MergedInto != "" {
			return nil, MovedTo(state.MergedInto)
		}
		if !state.Exists() {
			return nil, ErrNotFound
		}
		if c.ExpectedVersion != 0 && c.ExpectedVersion != state.Version {
			return nil, ErrPreconditionFailed
		}
		// Deleting a customer ends its links to contacts first (the
		// command side adds the contacts' half of each).
		next := EventIDs(m)
		out := unlinkAll(state, events.UnlinkCustomerDeleted, ev, next)
		ev.ID, ev.Version = next(), state.Version+uint64(len(out))+1
		ev.AggregateID = state.ID
		ev.Data = &events.CustomerDeleted{
			CustomerID: state.ID, CustomerCode: state.Code, DeletedBy: m.Actor, DeletedAt: ev.Time,
		}
		return append(out, ev), nil

	case Restore:
		switch {
		case state.Version == 0:
			return nil, ErrNotFound
		case state.MergedInto != "":
			return nil, MovedTo(state.MergedInto)
		case !state.Deleted:
			return nil, ErrNotDeleted
		case c.ExpectedVersion != 0 && c.ExpectedVersion != state.Version:
			return nil, ErrPreconditionFailed
		}
		ev.AggregateID = state.ID
		ev.Data = &events.CustomerRestored{
			CustomerID: state.ID, CustomerCode: state.Code, RestoredBy: m.Actor, RestoredAt: ev.Time,
		}
		out := []events.Event{ev}
		// The links its deletion ended come back, as they were, except to
		// the contacts deleted since.
		ids := EventIDs(m)
		ids() // the restore's own id
		for _, kid := range slices.Sorted(maps.Keys(state.EndedLinks)) {
			if c.Gone[kid] {
				continue
			}
			l := state.EndedLinks[kid]
			e := ev
			e.ID, e.Version = ids(), ev.Version+uint64(len(out))
			e.Data = &events.CustomerContactLinked{CustomerID: state.ID, CustomerCode: state.Code, ContactID: kid, Link: l.Attributes(),
				LinkedBy: m.Actor, LinkedAt: ev.Time, MergedFrom: l.MergedFrom} // a merge's copy stays one
			out = append(out, e)
		}
		return out, nil
	}
	panic("customer.Decide: unknown command type")
}

func created(id, code string, in Input, actor string, now time.Time) *events.CustomerCreated {
	val := func(f Field[string], def string) string {
		if f.Set && !f.Null {
			return f.Value
		}
		return def
	}
	addr := mergeAddress(Address{}, in.Address)
	d := &events.CustomerCreated{
		CustomerID:   id,
		CustomerCode: code,
		Name:         in.Name.Value,
		Email:        ptr(val(in.Email, "")),
		Phone:        ptr(val(in.Phone, "")),
		Company:      ptr(val(in.Company, "")),
		Type:         val(in.Type, DefaultType),
		Status:       val(in.Status, DefaultStatus),
		Notes:        ptr(val(in.Notes, "")),
		ExternalID:   ptr(val(in.ExternalID, "")),
		Tags:         []string{},
		CreatedBy:    actor,
		CreatedAt:    now,
	}
	if !addr.IsZero() {
		a := toEventAddress(addr)
		d.Address = &a
	}
	if in.Tags.Set && !in.Tags.Null {
		d.Tags = slices.Clone(in.Tags.Value)
	}
	return d
}

// changes compares the merged input with the state and returns only what
// differs.
func changes(s Customer, in Input) events.Changes {
	var ch events.Changes
	str := StringChange
	ch.Name = str(s.Name, in.Name)
	ch.Email = str(s.Email, in.Email)
	ch.Phone = str(s.Phone, in.Phone)
	ch.Company = str(s.Company, in.Company)
	ch.Type = str(s.Type, in.Type)
	ch.Status = str(s.Status, in.Status)
	ch.Notes = str(s.Notes, in.Notes)
	ch.ExternalID = str(s.ExternalID, in.ExternalID)
	if next := mergeAddress(s.Address, in.Address); next != s.Address {
		if next.IsZero() {
			ch.Address = events.Cleared[events.Address]()
		} else {
			ch.Address = events.SetTo(toEventAddress(next))
		}
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

// mergeAddress applies an address input to an address: null clears it all,
// otherwise each present sub-field replaces (or, when null, clears) its own.
func mergeAddress(a Address, in AddressInput) Address {
	if !in.Set {
		return a
	}
	if in.Null {
		return Address{}
	}
	set := func(dst *string, f Field[string]) {
		if f.Set {
			*dst = f.Value // null changes carry ""
			if f.Null {
				*dst = ""
			}
		}
	}
	set(&a.Street, in.Street)
	set(&a.City, in.City)
	set(&a.State, in.State)
	set(&a.Country, in.Country)
	set(&a.PostalCode, in.PostalCode)
	return a
}

// StringChange returns the change a merge-patch field f makes to an
// optional string field now cur: none when absent or equal, cleared when
// null or empty, else the new value.
func StringChange(cur string, f Field[string]) events.Change[string] {
	if !f.Set {
		return events.Change[string]{}
	}
	next := f.Value
	if f.Null {
		next = ""
	}
	switch {
	case next == cur:
		return events.Change[string]{}
	case next == "":
		return events.Cleared[string]()
	}
	return events.SetTo(next)
}
