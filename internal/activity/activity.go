// Package activity is the pure domain of activities: the interactions with
// a customer (a call, an email, a meeting, a note, a task), an aggregate of
// their own (crm.activities.<id>.<kind>) that belongs to one customer and
// may name its contacts. It has the shape of package customer: state,
// validation, Decide and Evolve, no I/O.
package activity

import (
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

// Activity types.
const (
	TypeCall    = "call"
	TypeEmail   = "email"
	TypeMeeting = "meeting"
	TypeNote    = "note"
	TypeTask    = "task"
)

// Types lists the activity types.
var Types = []string{TypeCall, TypeEmail, TypeMeeting, TypeNote, TypeTask}

// Limits.
const (
	MaxSubject    = 200
	MaxOutcome    = 200
	MaxBodyBytes  = 64 << 10 // the body, in bytes of UTF-8
	MaxContactIDs = 50
)

// The range of an activity's times (occurredAt, dueAt), in UTC.
var (
	MinTime = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Activity is the state of one activity as folded from its events.
// Optional strings are "" when unset; DueAt and Done are a task's.
type Activity struct {
	ID         string
	CustomerID string
	Type       string
	OccurredAt time.Time
	Subject    string
	Body       string
	ContactIDs []string
	Outcome    string
	DueAt      time.Time
	Done       bool
	CreatedBy  string
	CreatedAt  time.Time
	UpdatedBy  string
	UpdatedAt  time.Time

	Version uint64
	Seq     uint64
	Deleted bool
}

// Exists reports whether the activity was created and is not deleted.
func (a Activity) Exists() bool { return a.Version > 0 && !a.Deleted }

// Domain errors.
var (
	// ErrNotFound: the activity never existed or is deleted.
	ErrNotFound = fault.New(fault.NotFound, "activity not found")
	// ErrAlreadyExists: a create for an id that already has events.
	ErrAlreadyExists = fault.New(fault.Conflict, "activity already exists")
	// ErrPreconditionFailed: the client's expected version is not current.
	ErrPreconditionFailed = fault.New(fault.PreconditionFailed,
		"the activity has changed: If-Match does not match its current ETag")
)

// Field is one field of a command in JSON merge-patch terms.
type Field[T any] = events.Change[T]

// Input is the body of a create or an update as the client sent it; times
// are RFC 3339 strings, validated here.
type Input struct {
	Type       Field[string]
	OccurredAt Field[string]
	Subject    Field[string]
	Body       Field[string]
	ContactIDs Field[[]string]
	Outcome    Field[string]
	DueAt      Field[string]
	Done       Field[bool]
}

// normalized is a valid input with its times parsed.
type normalized struct {
	Input
	occurredAt, dueAt time.Time
}

// normalize validates an input (of a create when create is set) against
// the activity it changes (cur; zero for a create) and returns it
// normalised. Every invalid field is reported.
func normalize(in Input, cur Activity, create bool) (normalized, error) {
	var c customer.Checker
	n := normalized{Input: in}
	if create && !in.Type.Set {
		c.Fail("type", "is required")
	}
	if c.Text("type", &n.Type, 0, true, false) && !slices.Contains(Types, n.Type.Value) {
		c.Fail("type", "must be one of call, email, meeting, note, task")
	}
	parseTime := func(name string, f *Field[string], dst *time.Time, required bool) {
		if required && create && !f.Set {
			c.Fail(name, "is required")
			return
		}
		if !c.Text(name, f, 64, required, false) {
			return
		}
		t, err := time.Parse(time.RFC3339Nano, f.Value)
		if err != nil {
			c.Fail(name, "must be an RFC 3339 time, e.g. 2026-12-04T10:00:00Z")
			return
		}
		if t = t.UTC(); t.Before(MinTime) || !t.Before(MaxTime) {
			// Every store keeps it exactly (SQLite's nanoseconds cover
			// 1678-2262), and a zero time is no activity's.
			c.Fail(name, "must be from 1900 to 2199 (UTC)")
			return
		}
		*dst = t
	}
	parseTime("occurredAt", &n.OccurredAt, &n.occurredAt, true)
	c.Text("subject", &n.Subject, MaxSubject, false, false)
	if n.Body.Set && !n.Body.Null && len(n.Body.Value) > MaxBodyBytes {
		c.Fail("body", "must be at most "+strconv.Itoa(MaxBodyBytes)+" bytes")
	} else {
		c.Text("body", &n.Body, 0, false, true)
	}
	c.Text("outcome", &n.Outcome, MaxOutcome, false, false)
	parseTime("dueAt", &n.DueAt, &n.dueAt, false)
	if n.ContactIDs.Set && !n.ContactIDs.Null {
		seen := map[string]bool{}
		ids := make([]string, 0, len(n.ContactIDs.Value))
		for i, id := range n.ContactIDs.Value {
			u, err := uuid.Parse(id)
			if err != nil || u.String() != id {
				c.Fail("contactIds["+strconv.Itoa(i)+"]", "must be a contact id (UUID)")
				continue
			}
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		if len(ids) > MaxContactIDs {
			c.Fail("contactIds", "at most "+strconv.Itoa(MaxContactIDs)+" contacts")
		}
		n.ContactIDs.Value = ids
	}
	// dueAt and done are a task's.
	typ := cur.Type
	if n.Type.Set && !n.Type.Null {
		typ = n.Type.Value
	}
	if typ != TypeTask {
		if n.DueAt.Set && !n.DueAt.Null {
			c.Fail("dueAt", "is only for tasks")
		}
		if n.Done.Set && !n.Done.Null {
			c.Fail("done", "is only for tasks")
		}
	}
	return n, c.Err()
}

// Validate checks an input (of a create when create is set) without the
// activity's state: a fault.Invalid error listing every invalid field, or
// nil. (Whether dueAt and done are allowed on an update depends on the
// stored type: Decide checks that.)
func Validate(in Input, create bool) error {
	cur := Activity{}
	if !create {
		cur.Type = TypeTask // the state decides; here, accept a task's fields
	}
	_, err := normalize(in, cur, create)
	return err
}

// ContactsOf returns the contact ids an input names (set and valid), to
// check that they exist.
func ContactsOf(in Input) []string {
	if !in.ContactIDs.Set || in.ContactIDs.Null {
		return nil
	}
	var out []string
	for _, id := range in.ContactIDs.Value {
		if u, err := uuid.Parse(id); err == nil && u.String() == id && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}
