package events

import (
	"errors"
	"time"
)

// Links between customers and contacts, many to many: a link is recorded
// on both aggregates, in one atomic batch, so that each one's history
// shows it and each one's expected sequence guards it (a contact cannot be
// linked to a customer that is being deleted, nor the other way round).
// The customer's events carry the link's attributes every time they change
// (the record of a link); the contact's events record that it was linked
// to and unlinked from a customer.
const (
	// KindContactLinked (customers): a contact was linked to the customer,
	// or the link's attributes changed.
	KindContactLinked Kind = "contactlinked"
	// KindContactUnlinked (customers): a link ended.
	KindContactUnlinked Kind = "contactunlinked"
	// KindLinked (contacts): the contact was linked to a customer.
	KindLinked Kind = "linked"
	// KindUnlinked (contacts): a link to a customer ended.
	KindUnlinked Kind = "unlinked"
)

// CloudEvents types of the link events.
const (
	TypeContactLinkedV1   = typePrefix + "contactlinked.v1"
	TypeContactUnlinkedV1 = typePrefix + "contactunlinked.v1"
	TypeLinkedV1          = contactTypePrefix + "linked.v1"
	TypeUnlinkedV1        = contactTypePrefix + "unlinked.v1"
)

// Why a link ended.
const (
	UnlinkRemoved         = "unlinked"        // the link itself was removed
	UnlinkCustomerDeleted = "customerdeleted" // its customer was deleted
	UnlinkContactDeleted  = "contactdeleted"  // its contact was deleted
)

// Link is what a link says of its contact's part for the customer: a
// role ("billing", "decision maker"), whether it is the customer's primary
// contact, and the dates (YYYY-MM-DD) from and to which it holds. Unset
// fields are null.
type Link struct {
	Role    *string `json:"role"`
	Primary bool    `json:"primary"`
	From    *string `json:"from"`
	To      *string `json:"to"`
}

// CustomerContactLinked records, on the customer, a link to a contact as
// it now is (created or changed).
type CustomerContactLinked struct {
	CustomerID   string `json:"customerId"`
	CustomerCode string `json:"customerCode"`
	ContactID    string `json:"contactId"`
	Link
	LinkedBy string    `json:"linkedBy"`
	LinkedAt time.Time `json:"linkedAt"`
	// MergedFrom, when set, is the customer merged into this one whose
	// link to the contact the merge copied here (an undo of that merge
	// ends it, unless it changed since). Optional.
	MergedFrom string `json:"mergedFrom,omitempty"`
}

// CustomerContactUnlinked records, on the customer, that its link to a
// contact ended, and why (UnlinkRemoved, UnlinkCustomerDeleted,
// UnlinkContactDeleted).
type CustomerContactUnlinked struct {
	CustomerID   string    `json:"customerId"`
	CustomerCode string    `json:"customerCode"`
	ContactID    string    `json:"contactId"`
	Reason       string    `json:"reason"`
	UnlinkedBy   string    `json:"unlinkedBy"`
	UnlinkedAt   time.Time `json:"unlinkedAt"`
}

// ContactLinked records, on the contact, that it was linked to a customer,
// with the link's attributes at that moment.
type ContactLinked struct {
	ContactID    string `json:"contactId"`
	CustomerID   string `json:"customerId"`
	CustomerCode string `json:"customerCode"`
	Link
	LinkedBy string    `json:"linkedBy"`
	LinkedAt time.Time `json:"linkedAt"`
}

// ContactUnlinked records, on the contact, that its link to a customer
// ended, and why.
type ContactUnlinked struct {
	ContactID    string    `json:"contactId"`
	CustomerID   string    `json:"customerId"`
	CustomerCode string    `json:"customerCode"`
	Reason       string    `json:"reason"`
	UnlinkedBy   string    `json:"unlinkedBy"`
	UnlinkedAt   time.Time `json:"unlinkedAt"`
}

func (*CustomerContactLinked) Aggregate() Aggregate   { return Customers }
func (*CustomerContactUnlinked) Aggregate() Aggregate { return Customers }
func (*ContactLinked) Aggregate() Aggregate           { return Contacts }
func (*ContactUnlinked) Aggregate() Aggregate         { return Contacts }

func (*CustomerContactLinked) Kind() Kind   { return KindContactLinked }
func (*CustomerContactUnlinked) Kind() Kind { return KindContactUnlinked }
func (*ContactLinked) Kind() Kind           { return KindLinked }
func (*ContactUnlinked) Kind() Kind         { return KindUnlinked }

func (p *CustomerContactLinked) subjectID() string   { return p.CustomerID }
func (p *CustomerContactUnlinked) subjectID() string { return p.CustomerID }
func (p *ContactLinked) subjectID() string           { return p.ContactID }
func (p *ContactUnlinked) subjectID() string         { return p.ContactID }

func (d *CustomerContactLinked) check() error {
	if d.ContactID == "" || d.LinkedBy == "" || d.LinkedAt.IsZero() {
		return errors.New("contact linked event misses contactId/linkedBy/linkedAt")
	}
	return nil
}

func (d *CustomerContactUnlinked) check() error {
	if d.ContactID == "" || d.Reason == "" || d.UnlinkedBy == "" || d.UnlinkedAt.IsZero() {
		return errors.New("contact unlinked event misses contactId/reason/unlinkedBy/unlinkedAt")
	}
	return nil
}

func (d *ContactLinked) check() error {
	if d.CustomerID == "" || d.LinkedBy == "" || d.LinkedAt.IsZero() {
		return errors.New("linked event misses customerId/linkedBy/linkedAt")
	}
	return nil
}

func (d *ContactUnlinked) check() error {
	if d.CustomerID == "" || d.Reason == "" || d.UnlinkedBy == "" || d.UnlinkedAt.IsZero() {
		return errors.New("unlinked event misses customerId/reason/unlinkedBy/unlinkedAt")
	}
	return nil
}
