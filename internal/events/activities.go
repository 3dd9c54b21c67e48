package events

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"time"
)

// Activities is the aggregate of the activity events: the interactions
// with a customer (calls, emails, meetings, notes, tasks), each with an id
// of its own, on the subjects crm.activities.<activityId>.<kind>. An
// activity belongs to one customer for its whole life (CustomerID never
// changes) and may name contacts.
const Activities Aggregate = "activities"

// CloudEvents types of the activity events.
const (
	activityTypePrefix    = "com.a64core.crm.activity."
	TypeActivityCreatedV1 = activityTypePrefix + "created.v1"
	TypeActivityUpdatedV1 = activityTypePrefix + "updated.v1"
	TypeActivityDeletedV1 = activityTypePrefix + "deleted.v1"
)

// ActivityCreated carries the full activity as created. Optional fields
// that are not set are JSON null; contactIds is always a list. DueAt and
// Done are a task's (null for the other types).
type ActivityCreated struct {
	ActivityID string     `json:"activityId"`
	CustomerID string     `json:"customerId"`
	Type       string     `json:"type"`
	OccurredAt time.Time  `json:"occurredAt"`
	Subject    *string    `json:"subject"`
	Body       *string    `json:"body"`
	ContactIDs []string   `json:"contactIds"`
	Outcome    *string    `json:"outcome"`
	DueAt      *time.Time `json:"dueAt"`
	Done       *bool      `json:"done"`
	CreatedBy  string     `json:"createdBy"`
	CreatedAt  time.Time  `json:"createdAt"`
}

// ActivityUpdated carries every changed field of an activity with its new
// value (null where cleared), as CustomerUpdated does.
type ActivityUpdated struct {
	ActivityID string          `json:"activityId"`
	CustomerID string          `json:"customerId"`
	Changes    ActivityChanges `json:"changes"`
	UpdatedBy  string          `json:"updatedBy"`
	UpdatedAt  time.Time       `json:"updatedAt"`
}

// ActivityChanges lists the fields an activity update changed.
type ActivityChanges struct {
	Type       Change[string]    `json:"type,omitzero"`
	OccurredAt Change[time.Time] `json:"occurredAt,omitzero"`
	Subject    Change[string]    `json:"subject,omitzero"`
	Body       Change[string]    `json:"body,omitzero"`
	ContactIDs Change[[]string]  `json:"contactIds,omitzero"`
	Outcome    Change[string]    `json:"outcome,omitzero"`
	DueAt      Change[time.Time] `json:"dueAt,omitzero"`
	Done       Change[bool]      `json:"done,omitzero"`
}

// Fields returns the JSON names of the changed fields, in schema order.
func (c ActivityChanges) Fields() []string {
	var out []string
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		if !v.Field(i).Interface().(interface{ IsZero() bool }).IsZero() {
			name, _, _ := strings.Cut(activityChangesType.Field(i).Tag.Get("json"), ",")
			out = append(out, name)
		}
	}
	return out
}

// Empty reports whether no field changed.
func (c ActivityChanges) Empty() bool { return len(c.Fields()) == 0 }

var activityChangesType = reflect.TypeFor[ActivityChanges]()

// ActivityDeleted records the deletion of an activity.
type ActivityDeleted struct {
	ActivityID string    `json:"activityId"`
	CustomerID string    `json:"customerId"`
	DeletedBy  string    `json:"deletedBy"`
	DeletedAt  time.Time `json:"deletedAt"`
}

func (*ActivityCreated) Aggregate() Aggregate { return Activities }
func (*ActivityUpdated) Aggregate() Aggregate { return Activities }
func (*ActivityDeleted) Aggregate() Aggregate { return Activities }

func (*ActivityCreated) Kind() Kind { return KindCreated }
func (*ActivityUpdated) Kind() Kind { return KindUpdated }
func (*ActivityDeleted) Kind() Kind { return KindDeleted }

func (p *ActivityCreated) subjectID() string { return p.ActivityID }
func (p *ActivityUpdated) subjectID() string { return p.ActivityID }
func (p *ActivityDeleted) subjectID() string { return p.ActivityID }

func (d *ActivityCreated) check() error {
	if d.CustomerID == "" || d.Type == "" || d.OccurredAt.IsZero() || d.CreatedBy == "" || d.CreatedAt.IsZero() {
		return errors.New("activity created event misses customerId/type/occurredAt/createdBy/createdAt")
	}
	if d.ContactIDs == nil {
		return errors.New("activity created event without contactIds")
	}
	return nil
}

func (d *ActivityUpdated) check() error {
	if d.CustomerID == "" || d.UpdatedBy == "" || d.UpdatedAt.IsZero() {
		return errors.New("activity updated event misses customerId/updatedBy/updatedAt")
	}
	if d.Changes.Type.Null || d.Changes.OccurredAt.Null {
		return errors.New("activity updated event clears its type or occurredAt")
	}
	return nil
}

func (d *ActivityDeleted) check() error {
	if d.CustomerID == "" || d.DeletedBy == "" || d.DeletedAt.IsZero() {
		return errors.New("activity deleted event misses customerId/deletedBy/deletedAt")
	}
	return nil
}

// UnmarshalJSON requires the changes object, as CustomerUpdated's does.
func (d *ActivityUpdated) UnmarshalJSON(b []byte) error {
	type plain ActivityUpdated
	var v struct {
		plain
		Changes *ActivityChanges `json:"changes"` // shadows plain.Changes
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Changes == nil {
		return errors.New("activity updated event without changes")
	}
	*d = ActivityUpdated(v.plain)
	d.Changes = *v.Changes
	return nil
}
