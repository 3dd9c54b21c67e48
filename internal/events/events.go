// Package events defines the customer events: the public contract that
// downstream services, the projector and the audit tools depend on.
//
// Every event travels as a CloudEvents 1.0 document in JSON structured mode
// (see envelope.go). The payload types in this file are versioned through the
// CloudEvents "type" attribute (for example
// "com.a64core.crm.customer.created.v1"); their JSON shape never changes
// incompatibly within a version.
package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Kind is the kind of a customer event; it is also the last token of the
// event's subject.
type Kind string

const (
	KindCreated Kind = "created"
	KindUpdated Kind = "updated"
	KindDeleted Kind = "deleted"
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

// Payload is the data of one event: *CustomerCreated, *CustomerUpdated or
// *CustomerDeleted.
type Payload interface {
	Kind() Kind
	customerID() string
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
}

// Empty reports whether no field changed.
func (c Changes) Empty() bool {
	return !c.Name.Set && !c.Email.Set && !c.Phone.Set && !c.Company.Set && !c.Address.Set &&
		!c.Type.Set && !c.Status.Set && !c.Notes.Set && !c.Tags.Set
}

// CustomerDeleted records the deletion of a customer.
type CustomerDeleted struct {
	CustomerID   string    `json:"customerId"`
	CustomerCode string    `json:"customerCode"`
	DeletedBy    string    `json:"deletedBy"`
	DeletedAt    time.Time `json:"deletedAt"`
}

func (*CustomerCreated) Kind() Kind { return KindCreated }
func (*CustomerUpdated) Kind() Kind { return KindUpdated }
func (*CustomerDeleted) Kind() Kind { return KindDeleted }

func (p *CustomerCreated) customerID() string { return p.CustomerID }
func (p *CustomerUpdated) customerID() string { return p.CustomerID }
func (p *CustomerDeleted) customerID() string { return p.CustomerID }

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

// UnmarshalJSON marks the field as set; null clears it.
func (c *Change[T]) UnmarshalJSON(b []byte) error {
	c.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		c.Null = true
		var zero T
		c.Value = zero
		return nil
	}
	c.Null = false
	return strictUnmarshal(b, &c.Value)
}

// strictUnmarshal decodes exactly one JSON value, rejecting unknown fields and
// trailing data.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after JSON value")
	}
	return nil
}
