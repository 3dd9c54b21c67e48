package events

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"time"
)

// Contacts is the aggregate of the contact events: the people behind the
// customers, each with an id of its own (contactId), on the subjects
// crm.contacts.<contactId>.<kind> of the one event stream.
const Contacts Aggregate = "contacts"

// CloudEvents types of the contact events.
const (
	contactTypePrefix    = "com.a64core.crm.contact."
	TypeContactCreatedV1 = contactTypePrefix + "created.v1"
	TypeContactUpdatedV1 = contactTypePrefix + "updated.v1"
	TypeContactDeletedV1 = contactTypePrefix + "deleted.v1"
)

// ContactCreated carries the full contact as created. Optional fields that
// are not set are JSON null; tags are always a list.
type ContactCreated struct {
	ContactID string    `json:"contactId"`
	Name      string    `json:"name"`
	Email     *string   `json:"email"`
	Phone     *string   `json:"phone"`
	Title     *string   `json:"title"`
	Notes     *string   `json:"notes"`
	Tags      []string  `json:"tags"`
	CreatedBy string    `json:"createdBy"`
	CreatedAt time.Time `json:"createdAt"`
}

// ContactUpdated carries every changed field of a contact with its new
// value, as CustomerUpdated does: a cleared field is an explicit null, an
// unchanged one is absent.
type ContactUpdated struct {
	ContactID string         `json:"contactId"`
	Changes   ContactChanges `json:"changes"`
	UpdatedBy string         `json:"updatedBy"`
	UpdatedAt time.Time      `json:"updatedAt"`
}

// ContactChanges lists the fields a contact update changed.
type ContactChanges struct {
	Name  Change[string]   `json:"name,omitzero"`
	Email Change[string]   `json:"email,omitzero"`
	Phone Change[string]   `json:"phone,omitzero"`
	Title Change[string]   `json:"title,omitzero"`
	Notes Change[string]   `json:"notes,omitzero"`
	Tags  Change[[]string] `json:"tags,omitzero"`
}

// Fields returns the JSON names of the changed fields, in schema order.
func (c ContactChanges) Fields() []string {
	var out []string
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		if !v.Field(i).Interface().(interface{ IsZero() bool }).IsZero() {
			name, _, _ := strings.Cut(contactChangesType.Field(i).Tag.Get("json"), ",")
			out = append(out, name)
		}
	}
	return out
}

// Empty reports whether no field changed.
func (c ContactChanges) Empty() bool { return len(c.Fields()) == 0 }

var contactChangesType = reflect.TypeFor[ContactChanges]()

// ContactDeleted records the deletion of a contact.
type ContactDeleted struct {
	ContactID string    `json:"contactId"`
	DeletedBy string    `json:"deletedBy"`
	DeletedAt time.Time `json:"deletedAt"`
}

func (*ContactCreated) Aggregate() Aggregate { return Contacts }
func (*ContactUpdated) Aggregate() Aggregate { return Contacts }
func (*ContactDeleted) Aggregate() Aggregate { return Contacts }

func (*ContactCreated) Kind() Kind { return KindCreated }
func (*ContactUpdated) Kind() Kind { return KindUpdated }
func (*ContactDeleted) Kind() Kind { return KindDeleted }

func (p *ContactCreated) subjectID() string { return p.ContactID }
func (p *ContactUpdated) subjectID() string { return p.ContactID }
func (p *ContactDeleted) subjectID() string { return p.ContactID }

func (d *ContactCreated) check() error {
	if d.Name == "" || d.CreatedBy == "" || d.CreatedAt.IsZero() {
		return errors.New("contact created event misses name/createdBy/createdAt")
	}
	if d.Tags == nil {
		return errors.New("contact created event without tags")
	}
	return nil
}

func (d *ContactUpdated) check() error {
	if d.UpdatedBy == "" || d.UpdatedAt.IsZero() {
		return errors.New("contact updated event misses updatedBy/updatedAt")
	}
	if d.Changes.Name.Null {
		return errors.New("contact updated event clears the name")
	}
	return nil
}

func (d *ContactDeleted) check() error {
	if d.DeletedBy == "" || d.DeletedAt.IsZero() {
		return errors.New("contact deleted event misses deletedBy/deletedAt")
	}
	return nil
}

// UnmarshalJSON requires the changes object, as CustomerUpdated's does.
func (d *ContactUpdated) UnmarshalJSON(b []byte) error {
	type plain ContactUpdated
	var v struct {
		plain
		Changes *ContactChanges `json:"changes"` // shadows plain.Changes
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Changes == nil {
		return errors.New("contact updated event without changes")
	}
	*d = ContactUpdated(v.plain)
	d.Changes = *v.Changes
	return nil
}
