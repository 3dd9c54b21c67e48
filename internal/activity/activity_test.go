package activity_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"crm/internal/activity"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

const (
	actID  = "3a4b5c6d-7e8f-4a0b-9c1d-2e3f4a5b6c7d"
	custID = "0b5e1f3a-2c4d-4e6f-8a9b-0c1d2e3f4a5b"
	kID    = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
)

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)

func str(s string) activity.Field[string] { return events.SetTo(s) }

func meta() customer.Meta {
	return customer.Meta{Actor: "u1", Now: t0, EventID: "00000000-0000-4000-8000-000000000001", Source: "/test"}
}

func parties() activity.Parties {
	return activity.Parties{Customer: customer.Customer{ID: custID, Code: "C001", Version: 1}, Contacts: map[string]bool{kID: true}}
}

func decide(t *testing.T, s activity.Activity, cmd activity.Command) activity.Activity {
	t.Helper()
	evs, err := activity.Decide(s, cmd, parties(), meta())
	if err != nil {
		t.Fatalf("Decide(%T): %v", cmd, err)
	}
	for i, e := range evs {
		e.Seq = s.Seq + uint64(i) + 1
		s = activity.Evolve(s, e)
	}
	return s
}

func TestLifecycle(t *testing.T) {
	a := decide(t, activity.Activity{}, activity.Create{ActivityID: actID, CustomerID: custID, Input: activity.Input{
		Type: str("task"), OccurredAt: str("2026-11-30T09:15:00+01:00"), Subject: str(" Send the offer "),
		ContactIDs: events.SetTo([]string{kID, kID}), DueAt: str("2026-12-10T12:00:00Z"),
	}})
	if a.Type != "task" || !a.OccurredAt.Equal(time.Date(2026, 11, 30, 8, 15, 0, 0, time.UTC)) || a.Subject != "Send the offer" ||
		!slices.Equal(a.ContactIDs, []string{kID}) || a.DueAt.IsZero() || a.Done || a.Version != 1 || a.CustomerID != custID {
		t.Fatalf("created: %+v", a)
	}
	a = decide(t, a, activity.Update{ActivityID: actID, Input: activity.Input{Done: events.SetTo(true), Outcome: str("sent")}, ExpectedVersion: 1})
	if !a.Done || a.Outcome != "sent" || a.Version != 2 {
		t.Fatalf("done: %+v", a)
	}
	// No change, no event.
	if evs, err := activity.Decide(a, activity.Update{ActivityID: actID, Input: activity.Input{Outcome: str("sent")}}, parties(), meta()); err != nil || len(evs) != 0 {
		t.Fatalf("no-op: %v %v", evs, err)
	}
	// A task that becomes a call drops its dueAt and done.
	evs, err := activity.Decide(a, activity.Update{ActivityID: actID, Input: activity.Input{Type: str("call")}}, parties(), meta())
	if err != nil || len(evs) != 1 {
		t.Fatal(err)
	}
	if f := evs[0].Data.(*events.ActivityUpdated).Changes.Fields(); !slices.Equal(f, []string{"type", "dueAt", "done"}) {
		t.Fatalf("changes %v", f)
	}
	a = decide(t, a, activity.Update{ActivityID: actID, Input: activity.Input{Type: str("call")}})
	if !a.DueAt.IsZero() || a.Done {
		t.Fatalf("a call with a task's fields: %+v", a)
	}
	a = decide(t, a, activity.Delete{ActivityID: actID, ExpectedVersion: 3})
	if a.Exists() || !a.Deleted {
		t.Fatalf("deleted: %+v", a)
	}
}

func TestDecideRefusals(t *testing.T) {
	live := decide(t, activity.Activity{}, activity.Create{ActivityID: actID, CustomerID: custID, Input: activity.Input{Type: str("note"), OccurredAt: str("2026-12-01T10:00:00Z")}})
	ok := func(in activity.Input) activity.Input {
		if !in.Type.Set {
			in.Type = str("call")
		}
		if !in.OccurredAt.Set {
			in.OccurredAt = str("2026-12-01T10:00:00Z")
		}
		return in
	}
	create := func(in activity.Input) activity.Command {
		return activity.Create{ActivityID: actID, CustomerID: custID, Input: in}
	}
	deletedCustomer := parties()
	deletedCustomer.Customer.Deleted = true
	merged := parties()
	merged.Customer.MergedInto = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
	for _, tc := range []struct {
		name  string
		state activity.Activity
		cmd   activity.Command
		p     activity.Parties
		want  error
		kind  fault.Kind
		field string
	}{
		{"no type", activity.Activity{}, create(activity.Input{OccurredAt: str("2026-12-01T10:00:00Z")}), parties(), nil, fault.Invalid, "type"},
		{"bad type", activity.Activity{}, create(ok(activity.Input{Type: str("fax")})), parties(), nil, fault.Invalid, "type"},
		{"no occurredAt", activity.Activity{}, create(activity.Input{Type: str("call")}), parties(), nil, fault.Invalid, "occurredAt"},
		{"bad occurredAt", activity.Activity{}, create(ok(activity.Input{OccurredAt: str("yesterday")})), parties(), nil, fault.Invalid, "occurredAt"},
		{"body too long", activity.Activity{}, create(ok(activity.Input{Body: str(strings.Repeat("é", 40000))})), parties(), nil, fault.Invalid, "body"},
		{"unknown contact", activity.Activity{}, create(ok(activity.Input{ContactIDs: events.SetTo([]string{actID})})), parties(), nil, fault.Invalid, "contactIds[0]"},
		{"dueAt on a call", activity.Activity{}, create(ok(activity.Input{DueAt: str("2026-12-01T10:00:00Z")})), parties(), nil, fault.Invalid, "dueAt"},
		{"deleted customer", activity.Activity{}, create(ok(activity.Input{})), deletedCustomer, customer.ErrNotFound, fault.NotFound, ""},
		{"merged customer", activity.Activity{}, create(ok(activity.Input{})), merged, nil, fault.Moved, ""},
		{"twice", live, create(ok(activity.Input{})), parties(), activity.ErrAlreadyExists, fault.Conflict, ""},
		{"update unknown", activity.Activity{}, activity.Update{ActivityID: actID, Input: activity.Input{Subject: str("s")}}, parties(), activity.ErrNotFound, fault.NotFound, ""},
		{"update stale", live, activity.Update{ActivityID: actID, Input: activity.Input{Subject: str("s")}, ExpectedVersion: 5}, parties(), activity.ErrPreconditionFailed, fault.PreconditionFailed, ""},
		{"clear occurredAt", live, activity.Update{ActivityID: actID, Input: activity.Input{OccurredAt: events.Cleared[string]()}}, parties(), nil, fault.Invalid, "occurredAt"},
		{"done on a note", live, activity.Update{ActivityID: actID, Input: activity.Input{Done: events.SetTo(true)}}, parties(), nil, fault.Invalid, "done"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := activity.Decide(tc.state, tc.cmd, tc.p, meta())
			if len(evs) != 0 || fault.KindOf(err) != tc.kind || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Decide = %v, %v; want %v (%v)", evs, err, tc.want, tc.kind)
			}
			if tc.field != "" {
				found := false
				for _, f := range fault.Fields(err) {
					found = found || f.Field == tc.field
				}
				if !found {
					t.Fatalf("%v does not name %s", err, tc.field)
				}
			}
		})
	}
}

// TestTimesInRange: an occurredAt or dueAt out of 1900-2199 UTC (the zero
// time among them, which no reader accepts) is refused, naming the field.
func TestTimesInRange(t *testing.T) {
	for _, at := range []string{"0001-01-01T00:00:00Z", "1600-01-01T00:00:00Z", "1899-12-31T23:59:59Z", "2200-01-01T00:00:00Z",
		"9999-12-31T23:30:00-01:00"} {
		in := activity.Input{Type: str("task"), OccurredAt: str(at)}
		if err := activity.Validate(in, true); !slices.Contains(fieldsOf(err), "occurredAt") {
			t.Errorf("occurredAt %s: %v", at, err)
		}
		in = activity.Input{Type: str("task"), OccurredAt: str("2026-12-01T10:00:00Z"), DueAt: str(at)}
		if err := activity.Validate(in, true); !slices.Contains(fieldsOf(err), "dueAt") {
			t.Errorf("dueAt %s: %v", at, err)
		}
	}
	if err := activity.Validate(activity.Input{Type: str("call"), OccurredAt: str("1900-01-01T00:00:00Z")}, true); err != nil {
		t.Errorf("1900-01-01: %v", err)
	}
}

func fieldsOf(err error) []string {
	var out []string
	for _, f := range fault.Fields(err) {
		out = append(out, f.Field)
	}
	return out
}
