// Package customer is the pure domain of the service: the customer state, the
// validation of commands, the decision that turns a command into events, and
// the fold (Evolve) that turns events back into state. It does no I/O: time,
// ids and customer codes are given to it.
package customer

import (
	"slices"
	"time"

	"crm/internal/events"
	"crm/internal/fault"
)

// Customer types and statuses.
const (
	TypeIndividual = "individual"
	TypeBusiness   = "business"

	StatusLead     = "lead"
	StatusProspect = "prospect"
	StatusActive   = "active"
	StatusInactive = "inactive"
)

// Address is a customer's postal address; empty sub-fields are unset.
type Address struct {
	Street, City, State, Country, PostalCode string
}

// IsZero reports whether no sub-field is set.
func (a Address) IsZero() bool { return a == Address{} }

// Customer is the state of one customer as folded from its events. Optional
// string fields are "" when unset.
type Customer struct {
	ID      string
	Code    string
	Name    string
	Email   string
	Phone   string
	Company string
	Address Address
	Type    string
	Status  string
	Notes   string
	Tags    []string
	// ExternalID is the customer's id in another system, unique among
	// live customers (claimed on the write side).
	ExternalID string
	CreatedBy  string
	CreatedAt  time.Time
	UpdatedAt  time.Time

	Version uint64 // number of events applied; 0 = never created
	Seq     uint64 // stream sequence of the last event applied
	Deleted bool   // a tombstone: the customer was deleted

	// MergedInto is the survivor's id while a merge holds this customer
	// absorbed: its id then answers with the survivor's.
	MergedInto string
	// Absorbed are the customers merged into this one and not taken out
	// again (a search for their codes finds this one).
	Absorbed []events.MergedCustomer
	// Merges are the merges this customer survived, with what each
	// absorbed customer gave: what an unmerge sets back. (Command side
	// only: the read model keeps Absorbed, not these.)
	Merges []MergeRecord
	// Contacts are the customer's links to its contacts, by contact id.
	// (Command side only: the read model keeps links as documents of
	// their own.)
	Contacts map[string]Link
	// EndedLinks are the links its deletion ended, by contact id: what a
	// restore links again (command side only).
	EndedLinks map[string]Link
}

// MergeRecord is one merge a customer survived.
type MergeRecord struct {
	Absorbed []events.MergedCustomer
	Changes  events.Changes // the survivor's fields as the merge set them
	Previous events.Changes // their values before
	Sources  []events.MergeSource
	Undone   []string // absorbed ids taken out again since
}

// Exists reports whether the customer was created, is not deleted and is
// not merged into another.
func (c Customer) Exists() bool { return c.Version > 0 && !c.Deleted && c.MergedInto == "" }

// AbsorbedCodes returns the codes of the customers merged into c and not
// taken out again.
func (c Customer) AbsorbedCodes() []string {
	var out []string
	for _, a := range c.Absorbed {
		out = append(out, a.CustomerCode)
	}
	return out
}

// Domain errors (sentinels: match them with errors.Is). An invalid command
// is a fault.Invalid error listing every bad field (fault.Fields).
var (
	// ErrNotFound: the customer never existed or is deleted.
	ErrNotFound = fault.New(fault.NotFound, "customer not found")
	// ErrAlreadyExists: a create for an id that already has events.
	ErrAlreadyExists = fault.New(fault.Conflict, "customer already exists")
	// ErrNotDeleted: a restore of a customer that is not deleted (or that is
	// merged into another: see MovedTo).
	ErrNotDeleted = fault.New(fault.Conflict, "the customer is not deleted")
	// ErrPreconditionFailed: the client's expected version is not current.
	ErrPreconditionFailed = fault.New(fault.PreconditionFailed,
		"the customer has changed: If-Match does not match its current ETag")
)

// MovedTo is the error of a command on a customer merged into survivorID:
// fault.Moved, its Ref the survivor (HTTP: 308 to it).
func MovedTo(survivorID string) error {
	return &fault.Error{Kind: fault.Moved, Message: "the customer was merged into " + survivorID, Ref: survivorID}
}

// Evolve applies one event to the state and returns the new state. It is the
// single fold used by the command side, the projector and the audit tools.
// The event is assumed to belong to this customer and to follow the state.
func Evolve(c Customer, e events.Event) Customer {
	switch d := e.Data.(type) {
	case *events.CustomerCreated:
		c = Customer{
			ID:         d.CustomerID,
			Code:       d.CustomerCode,
			Name:       d.Name,
			Email:      deref(d.Email),
			Phone:      deref(d.Phone),
			Company:    deref(d.Company),
			Type:       d.Type,
			Status:     d.Status,
			Notes:      deref(d.Notes),
			Tags:       slices.Clone(d.Tags),
			ExternalID: deref(d.ExternalID),
			CreatedBy:  d.CreatedBy,
			CreatedAt:  d.CreatedAt,
			UpdatedAt:  d.CreatedAt,
		}
		if d.Address != nil {
			c.Address = fromEventAddress(*d.Address)
		}
		if c.Tags == nil {
			c.Tags = []string{}
		}
	case *events.CustomerUpdated:
		c = applyChanges(c, d.Changes)
		c.UpdatedAt = d.UpdatedAt
	case *events.CustomersMerged:
		c = applyChanges(c, d.Changes)
		c.Absorbed = append(slices.Clone(c.Absorbed), d.Absorbed...)
		c.Merges = append(slices.Clone(c.Merges), MergeRecord{Absorbed: slices.Clone(d.Absorbed), Changes: d.Changes,
			Previous: d.Previous, Sources: slices.Clone(d.Sources)})
		c.UpdatedAt = d.MergedAt
	case *events.CustomerMergedInto:
		c.MergedInto = d.SurvivorID
		c.UpdatedAt = d.MergedAt
	case *events.CustomerMergeUndone:
		c = applyChanges(c, d.Changes)
		c.Absorbed = slices.DeleteFunc(slices.Clone(c.Absorbed), func(a events.MergedCustomer) bool { return a.CustomerID == d.AbsorbedID })
		c.Merges = slices.Clone(c.Merges)
		for i := len(c.Merges) - 1; i >= 0; i-- {
			if m := c.Merges[i]; slices.ContainsFunc(m.Absorbed, func(a events.MergedCustomer) bool { return a.CustomerID == d.AbsorbedID }) &&
				!slices.Contains(m.Undone, d.AbsorbedID) {
				c.Merges[i].Undone = append(slices.Clone(m.Undone), d.AbsorbedID)
				// What the record expects now: the merge's values with
				// this unmerge's set back (a later unmerge compares to it).
				c.Merges[i].Changes = overlay(m.Changes, d.Changes)
				break
			}
		}
		c.UpdatedAt = d.UndoneAt
	case *events.CustomerUnmerged:
		c.MergedInto = ""
		c.UpdatedAt = d.UnmergedAt
	case *events.CustomerDeleted:
		c.Deleted = true
		c.UpdatedAt = d.DeletedAt
	case *events.CustomerRestored:
		c.Deleted = false
		c.UpdatedAt = d.RestoredAt
		c.EndedLinks = nil
	case *events.CustomerContactLinked, *events.CustomerContactUnlinked:
		// A link is a change of the customer (its version moves) but not
		// of its fields (updatedAt stays).
		c = evolveLink(c, e)
	default:
		return c
	}
	c.Version = e.Version
	if e.Seq > c.Seq {
		c.Seq = e.Seq
	}
	return c
}

// Fold replays events from the empty state.
func Fold(evs []events.Event) Customer {
	var c Customer
	for _, e := range evs {
		c = Evolve(c, e)
	}
	return c
}

// overlay returns base with every field set in ch replaced by ch's.
func overlay(base, ch events.Changes) events.Changes {
	pick := func(b, c events.Change[string]) events.Change[string] {
		if c.Set {
			return c
		}
		return b
	}
	base.Name, base.Email, base.Phone = pick(base.Name, ch.Name), pick(base.Email, ch.Email), pick(base.Phone, ch.Phone)
	base.Company, base.Type, base.Status = pick(base.Company, ch.Company), pick(base.Type, ch.Type), pick(base.Status, ch.Status)
	base.Notes, base.ExternalID = pick(base.Notes, ch.Notes), pick(base.ExternalID, ch.ExternalID)
	if ch.Address.Set {
		base.Address = ch.Address
	}
	if ch.Tags.Set {
		base.Tags = events.SetTo(slices.Clone(ch.Tags.Value))
	}
	return base
}

// applyChanges returns c with an update's (or merge's) changed fields set.
func applyChanges(c Customer, ch events.Changes) Customer {
	applyString(&c.Name, ch.Name)
	applyString(&c.Email, ch.Email)
	applyString(&c.Phone, ch.Phone)
	applyString(&c.Company, ch.Company)
	applyString(&c.Type, ch.Type)
	applyString(&c.Status, ch.Status)
	applyString(&c.Notes, ch.Notes)
	applyString(&c.ExternalID, ch.ExternalID)
	if ch.Address.Set {
		c.Address = fromEventAddress(ch.Address.Value)
	}
	if ch.Tags.Set {
		c.Tags = slices.Clone(ch.Tags.Value)
		if c.Tags == nil {
			c.Tags = []string{}
		}
	}
	return c
}

func applyString(dst *string, ch events.Change[string]) {
	if ch.Set {
		*dst = ch.Value // a cleared change has the zero value
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func ptr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func fromEventAddress(a events.Address) Address {
	return Address{Street: a.Street, City: a.City, State: a.State, Country: a.Country, PostalCode: a.PostalCode}
}

func toEventAddress(a Address) events.Address {
	return events.Address{Street: a.Street, City: a.City, State: a.State, Country: a.Country, PostalCode: a.PostalCode}
}
