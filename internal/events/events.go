// Package events defines the customer events: the public contract that
// downstream services, the projector and the audit tools depend on.
//
// Every event travels as a CloudEvents 1.0 document in JSON structured mode
// (see envelope.go). The payload types in this file are versioned through the
// CloudEvents "type" attribute (for example
// "com.a64core.crm.customer.created.v1") and declared once, in the registry
// (registry.go). Their JSON shape never changes incompatibly within a
// version: readers ignore fields they do not know, so adding an optional
// field is compatible; removing or retyping one is a new version with an
// upcaster.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"time"
)

// Kind is the kind of a customer event; it is also the last token of the
// event's subject.
type Kind string

const (
	KindCreated  Kind = "created"
	KindUpdated  Kind = "updated"
	KindDeleted  Kind = "deleted"
	KindRestored Kind = "restored"
	// A merge: "merged" on the survivor, "mergedinto" on each absorbed
	// customer; undone: "mergeundone" on the survivor, "unmerged" on the
	// customer taken out.
	KindMerged      Kind = "merged"
	KindMergedInto  Kind = "mergedinto"
	KindMergeUndone Kind = "mergeundone"
	KindUnmerged    Kind = "unmerged"
)

// Address is the structured postal address of a customer. Empty sub-fields
// are omitted from the JSON.
type Address struct {
	Street     string `json:"street,omitempty"`
	City       string `json:"city,omitempty"`
	State      string `json:"state,omitempty"`
	Country    string `json:"country,omitempty"`
	PostalCode string `json:"postalCode,omitempty"`
}

// IsZero reports whether every sub-field is empty.
func (a Address) IsZero() bool { return a == Address{} }

// Payload is the data of one event. Each payload type is declared in the
// registry (registry.go) with its kind and CloudEvents type.
type Payload interface {
	// Aggregate and Kind place the payload in the registry and its subject.
	Aggregate() Aggregate
	Kind() Kind
	// subjectID is the id the event is about (the CloudEvents subject).
	subjectID() string
	// check reports a payload that misses what every reader relies on.
	check() error
}

// CustomerCreated carries the full customer as created. Optional fields that
// are not set are JSON null; tags are always a list.
type CustomerCreated struct {
	CustomerID   string    `json:"customerId"`
	CustomerCode string    `json:"customerCode"`
	Name         string    `json:"name"`
	Email        *string   `json:"email"`
	Phone        *string   `json:"phone"`
	Company      *string   `json:"company"`
	Address      *Address  `json:"address"`
	Type         string    `json:"type"`
	Status       string    `json:"status"`
	Notes        *string   `json:"notes"`
	Tags         []string  `json:"tags"`
	CreatedBy    string    `json:"createdBy"`
	CreatedAt    time.Time `json:"createdAt"`
	// ExternalID is the customer's id in another system (a legacy code),
	// unique among customers; absent when unset (added within v1: older
	// readers ignore it).
	ExternalID *string `json:"externalId,omitempty"`
}

// CustomerUpdated carries every changed field with its new value; a field
// that was cleared is an explicit JSON null; a field that did not change is
// absent. Address, when present, is the complete new address (or null).
type CustomerUpdated struct {
	CustomerID   string    `json:"customerId"`
	CustomerCode string    `json:"customerCode"`
	Changes      Changes   `json:"changes"`
	UpdatedBy    string    `json:"updatedBy"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// Changes lists the fields an update changed. An absent field is unchanged.
type Changes struct {
	Name    Change[string]   `json:"name,omitzero"`
	Email   Change[string]   `json:"email,omitzero"`
	Phone   Change[string]   `json:"phone,omitzero"`
	Company Change[string]   `json:"company,omitzero"`
	Address Change[Address]  `json:"address,omitzero"`
	Type    Change[string]   `json:"type,omitzero"`
	Status  Change[string]   `json:"status,omitzero"`
	Notes   Change[string]   `json:"notes,omitzero"`
	Tags    Change[[]string] `json:"tags,omitzero"`
	// ExternalID (added within v1) is set or cleared like the others.
	ExternalID Change[string] `json:"externalId,omitzero"`
}

// Empty reports whether no field changed.
func (c Changes) Empty() bool { return len(c.Fields()) == 0 }

// Fields returns the JSON names of the changed fields, in schema order.
func (c Changes) Fields() []string {
	var out []string
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		if !v.Field(i).Interface().(interface{ IsZero() bool }).IsZero() {
			name, _, _ := strings.Cut(changesType.Field(i).Tag.Get("json"), ",")
			out = append(out, name)
		}
	}
	return out
}

var changesType = reflect.TypeFor[Changes]()

// CustomerDeleted records the deletion of a customer.
type CustomerDeleted struct {
	CustomerID   string    `json:"customerId"`
	CustomerCode string    `json:"customerCode"`
	DeletedBy    string    `json:"deletedBy"`
	DeletedAt    time.Time `json:"deletedAt"`
}

// CustomerRestored records that a deleted customer is live again, with its
// code and the state it had when it was deleted.
type CustomerRestored struct {
	CustomerID   string    `json:"customerId"`
	CustomerCode string    `json:"customerCode"`
	RestoredBy   string    `json:"restoredBy"`
	RestoredAt   time.Time `json:"restoredAt"`
}

func (*CustomerRestored) Aggregate() Aggregate { return Customers }
func (*CustomerRestored) Kind() Kind           { return KindRestored }
func (p *CustomerRestored) subjectID() string  { return p.CustomerID }

func (d *CustomerRestored) check() error {
	if d.RestoredBy == "" || d.RestoredAt.IsZero() {
		return errors.New("restored event misses restoredBy/restoredAt")
	}
	return nil
}

// CustomersMerged records, on the survivor, that a merge absorbed other
// customers: its changed fields (Changes, applied like an update's), their
// values before (Previous: null where a field was unset) and where each new
// value came from (Sources), so that the merge can be undone.
type CustomersMerged struct {
	CustomerID   string           `json:"customerId"`
	CustomerCode string           `json:"customerCode"`
	Absorbed     []MergedCustomer `json:"absorbed"`
	Changes      Changes          `json:"changes"`
	Previous     Changes          `json:"previous"`
	Sources      []MergeSource    `json:"sources"`
	MergedBy     string           `json:"mergedBy"`
	MergedAt     time.Time        `json:"mergedAt"`
}

// MergedCustomer names one customer a merge absorbed.
type MergedCustomer struct {
	CustomerID   string `json:"customerId"`
	CustomerCode string `json:"customerCode"`
}

// MergeSource says which absorbed customer gave a changed field its value:
// the whole value, or for tags the tags it added, for notes the text it
// appended.
type MergeSource struct {
	Field      string   `json:"field"`
	CustomerID string   `json:"customerId"`
	Tags       []string `json:"tags,omitempty"`
	Notes      string   `json:"notes,omitempty"`
}

// CustomerMergedInto records, on an absorbed customer, that a merge took it
// into the survivor: from now on its id answers with the survivor's.
type CustomerMergedInto struct {
	CustomerID   string    `json:"customerId"`
	CustomerCode string    `json:"customerCode"`
	SurvivorID   string    `json:"survivorId"`
	SurvivorCode string    `json:"survivorCode"`
	MergedBy     string    `json:"mergedBy"`
	MergedAt     time.Time `json:"mergedAt"`
}

// CustomerMergeUndone records, on the survivor, that one absorbed customer
// was taken out of it again: the fields it had given are set back (Changes,
// applied like an update's) unless they were changed since the merge (Kept).
type CustomerMergeUndone struct {
	CustomerID   string    `json:"customerId"`
	CustomerCode string    `json:"customerCode"`
	AbsorbedID   string    `json:"absorbedId"`
	AbsorbedCode string    `json:"absorbedCode"`
	Changes      Changes   `json:"changes"`
	Kept         []string  `json:"kept"`
	UndoneBy     string    `json:"undoneBy"`
	UndoneAt     time.Time `json:"undoneAt"`
}

// CustomerUnmerged records, on an absorbed customer, that it is live again,
// as it was when merged.
type CustomerUnmerged struct {
	CustomerID   string    `json:"customerId"`
	CustomerCode string    `json:"customerCode"`
	SurvivorID   string    `json:"survivorId"`
	UnmergedBy   string    `json:"unmergedBy"`
	UnmergedAt   time.Time `json:"unmergedAt"`
}

func (*CustomersMerged) Aggregate() Aggregate     { return Customers }
func (*CustomerMergedInto) Aggregate() Aggregate  { return Customers }
func (*CustomerMergeUndone) Aggregate() Aggregate { return Customers }
func (*CustomerUnmerged) Aggregate() Aggregate    { return Customers }

func (*CustomersMerged) Kind() Kind     { return KindMerged }
func (*CustomerMergedInto) Kind() Kind  { return KindMergedInto }
func (*CustomerMergeUndone) Kind() Kind { return KindMergeUndone }
func (*CustomerUnmerged) Kind() Kind    { return KindUnmerged }

func (p *CustomersMerged) subjectID() string     { return p.CustomerID }
func (p *CustomerMergedInto) subjectID() string  { return p.CustomerID }
func (p *CustomerMergeUndone) subjectID() string { return p.CustomerID }
func (p *CustomerUnmerged) subjectID() string    { return p.CustomerID }

func (d *CustomersMerged) check() error {
	if d.MergedBy == "" || d.MergedAt.IsZero() || len(d.Absorbed) == 0 {
		return errors.New("merged event misses mergedBy/mergedAt/absorbed")
	}
	if d.Changes.Name.Null || d.Changes.Type.Null || d.Changes.Status.Null {
		return errors.New("merged event clears a required field")
	}
	return nil
}

func (d *CustomerMergedInto) check() error {
	if d.SurvivorID == "" || d.MergedBy == "" || d.MergedAt.IsZero() {
		return errors.New("merged-into event misses survivorId/mergedBy/mergedAt")
	}
	return nil
}

func (d *CustomerMergeUndone) check() error {
	if d.AbsorbedID == "" || d.UndoneBy == "" || d.UndoneAt.IsZero() {
		return errors.New("merge-undone event misses absorbedId/undoneBy/undoneAt")
	}
	if d.Changes.Name.Null || d.Changes.Type.Null || d.Changes.Status.Null {
		return errors.New("merge-undone event clears a required field")
	}
	return nil
}

func (d *CustomerUnmerged) check() error {
	if d.SurvivorID == "" || d.UnmergedBy == "" || d.UnmergedAt.IsZero() {
		return errors.New("unmerged event misses survivorId/unmergedBy/unmergedAt")
	}
	return nil
}

func (*CustomerCreated) Aggregate() Aggregate { return Customers }
func (*CustomerUpdated) Aggregate() Aggregate { return Customers }
func (*CustomerDeleted) Aggregate() Aggregate { return Customers }

func (*CustomerCreated) Kind() Kind { return KindCreated }
func (*CustomerUpdated) Kind() Kind { return KindUpdated }
func (*CustomerDeleted) Kind() Kind { return KindDeleted }

func (p *CustomerCreated) subjectID() string { return p.CustomerID }
func (p *CustomerUpdated) subjectID() string { return p.CustomerID }
func (p *CustomerDeleted) subjectID() string { return p.CustomerID }

func (d *CustomerCreated) check() error {
	if d.CustomerCode == "" || d.Name == "" || d.Type == "" || d.Status == "" || d.CreatedBy == "" || d.CreatedAt.IsZero() {
		return errors.New("created event misses a required field")
	}
	if d.Tags == nil {
		return errors.New("created event without tags")
	}
	return nil
}

// check accepts an update without a change this reader knows: a newer
// writer may have changed only fields added since (tolerant reader); it is
// a new version of the customer all the same.
func (d *CustomerUpdated) check() error {
	if d.UpdatedBy == "" || d.UpdatedAt.IsZero() {
		return errors.New("updated event misses updatedBy/updatedAt")
	}
	if d.Changes.Name.Null || d.Changes.Type.Null || d.Changes.Status.Null {
		return errors.New("updated event clears a required field")
	}
	return nil
}

func (d *CustomerDeleted) check() error {
	if d.DeletedBy == "" || d.DeletedAt.IsZero() {
		return errors.New("deleted event misses deletedBy/deletedAt")
	}
	return nil
}

// UnmarshalJSON requires the changes object (it may be empty of the fields
// this reader knows, see check).
func (d *CustomerUpdated) UnmarshalJSON(b []byte) error {
	type plain CustomerUpdated
	var v struct {
		plain
		Changes *Changes `json:"changes"` // shadows plain.Changes
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Changes == nil {
		return errors.New("updated event without changes")
	}
	*d = CustomerUpdated(v.plain)
	d.Changes = *v.Changes
	return nil
}

// Change is one field of an update: Set says the field changed; Null says it
// was cleared; otherwise Value is its new value. The zero Change is
// "unchanged" and is omitted from JSON (omitzero).
type Change[T any] struct {
	Set   bool
	Null  bool
	Value T
}

// SetTo returns a change that sets the field to v.
func SetTo[T any](v T) Change[T] { return Change[T]{Set: true, Value: v} }

// Cleared returns a change that clears the field.
func Cleared[T any]() Change[T] { return Change[T]{Set: true, Null: true} }

// IsZero reports an unchanged field (used by omitzero).
func (c Change[T]) IsZero() bool { return !c.Set }

// MarshalJSON writes null for a cleared field, else the value.
func (c Change[T]) MarshalJSON() ([]byte, error) {
	if c.Null {
		return []byte("null"), nil
	}
	return json.Marshal(c.Value)
}

// UnmarshalJSON marks the field as set; null clears it. Fields of the value
// that this reader does not know are ignored (tolerant reader).
func (c *Change[T]) UnmarshalJSON(b []byte) error {
	c.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		c.Null = true
		var zero T
		c.Value = zero
		return nil
	}
	c.Null = false
	return json.Unmarshal(b, &c.Value)
}
