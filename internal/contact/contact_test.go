package contact_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"crm/internal/contact"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

const id = "7f9c2ba4-e88f-4c4b-9d6e-3a1b2c3d4e5f"

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 123456789, time.UTC)

func meta(at time.Time) customer.Meta {
	return customer.Meta{Actor: "u1", Now: at, EventID: "00000000-0000-4000-8000-000000000001", Source: "/test"}
}

func str(s string) contact.Field[string] { return events.SetTo(s) }

// apply decides cmd on state and folds the events in, failing on an error.
func apply(t *testing.T, state contact.Contact, cmd contact.Command, at time.Time) (contact.Contact, []events.Event) {
	t.Helper()
	evs, err := contact.Decide(state, cmd, meta(at))
	if err != nil {
		t.Fatalf("Decide(%T): %v", cmd, err)
	}
	for i, e := range evs {
		e.Seq = state.Seq + uint64(i) + 1
		state = contact.Evolve(state, e)
	}
	return state, evs
}

func TestLifecycle(t *testing.T) {
	c, evs := apply(t, contact.Contact{}, contact.Create{ContactID: id, Input: contact.Input{
		Name: str("  Ann Lee "), Email: str("ann@example.com"), Title: str(" "), Tags: events.SetTo([]string{"b", "a", "b"}),
	}}, t0)
	if len(evs) != 1 || evs[0].AggregateID != id || evs[0].Version != 1 || evs[0].Kind() != events.KindCreated {
		t.Fatalf("create events: %+v", evs)
	}
	d := evs[0].Data.(*events.ContactCreated)
	if d.Name != "Ann Lee" || *d.Email != "ann@example.com" || d.Title != nil || d.Phone != nil || !slices.Equal(d.Tags, []string{"b", "a"}) {
		t.Fatalf("created payload: %+v", d)
	}
	if !c.Exists() || c.Version != 1 || c.CreatedBy != "u1" || c.UpdatedAt != t0 || c.UpdatedBy != "u1" {
		t.Fatalf("state after create: %+v", c)
	}

	// A merge patch: set one field, clear another, keep the rest.
	c, evs = apply(t, c, contact.Update{ContactID: id, Input: contact.Input{Title: str("CFO"), Email: events.Cleared[string]()}, ExpectedVersion: 1}, t0.Add(time.Hour))
	ch := evs[0].Data.(*events.ContactUpdated).Changes
	if got := ch.Fields(); !slices.Equal(got, []string{"email", "title"}) || !ch.Email.Null || ch.Title.Value != "CFO" {
		t.Fatalf("changes %v %+v", got, ch)
	}
	if c.Email != "" || c.Title != "CFO" || c.Name != "Ann Lee" || c.Version != 2 || c.UpdatedAt != t0.Add(time.Hour) {
		t.Fatalf("state after update: %+v", c)
	}
	// Nothing changes: no event.
	if evs, err := contact.Decide(c, contact.Update{ContactID: id, Input: contact.Input{Title: str("CFO "), Tags: events.SetTo([]string{"b", "a"})}}, meta(t0)); err != nil || len(evs) != 0 {
		t.Fatalf("no-op update: %v %v", evs, err)
	}
	// Clearing the tags is an empty list.
	c, _ = apply(t, c, contact.Update{ContactID: id, Input: contact.Input{Tags: events.Cleared[[]string]()}}, t0.Add(2*time.Hour))
	if c.Tags == nil || len(c.Tags) != 0 {
		t.Fatalf("tags after clearing: %#v", c.Tags)
	}
	c, evs = apply(t, c, contact.Delete{ContactID: id, ExpectedVersion: 3}, t0.Add(3*time.Hour))
	if !c.Deleted || c.Exists() || c.Version != 4 || evs[0].Kind() != events.KindDeleted {
		t.Fatalf("state after delete: %+v", c)
	}
	// Fold gives the same state as the step by step evolution.
	if f := contact.Fold(nil); f.Version != 0 || f.Exists() {
		t.Fatalf("Fold(nil) = %+v", f)
	}
}

func TestDecideRefusals(t *testing.T) {
	live, _ := apply(t, contact.Contact{}, contact.Create{ContactID: id, Input: contact.Input{Name: str("Ann")}}, t0)
	deleted, _ := apply(t, live, contact.Delete{ContactID: id}, t0)
	for _, tc := range []struct {
		name  string
		state contact.Contact
		cmd   contact.Command
		want  error
		field string
	}{
		{"create twice", live, contact.Create{ContactID: id, Input: contact.Input{Name: str("Ann")}}, contact.ErrAlreadyExists, ""},
		{"create without name", contact.Contact{}, contact.Create{ContactID: id, Input: contact.Input{Email: str("a@example.com")}}, nil, "name"},
		{"create with null name", contact.Contact{}, contact.Create{ContactID: id, Input: contact.Input{Name: events.Cleared[string]()}}, nil, "name"},
		{"bad email", contact.Contact{}, contact.Create{ContactID: id, Input: contact.Input{Name: str("A"), Email: str("a@b")}}, nil, "email"},
		{"bad phone", live, contact.Update{ContactID: id, Input: contact.Input{Phone: str("call me")}}, nil, "phone"},
		{"empty tag", live, contact.Update{ContactID: id, Input: contact.Input{Tags: events.SetTo([]string{"ok", " "})}}, nil, "tags[1]"},
		{"clear name", live, contact.Update{ContactID: id, Input: contact.Input{Name: events.Cleared[string]()}}, nil, "name"},
		{"stale version", live, contact.Update{ContactID: id, Input: contact.Input{Title: str("x")}, ExpectedVersion: 7}, contact.ErrPreconditionFailed, ""},
		{"update unknown", contact.Contact{}, contact.Update{ContactID: id, Input: contact.Input{Title: str("x")}}, contact.ErrNotFound, ""},
		{"update deleted", deleted, contact.Update{ContactID: id, Input: contact.Input{Title: str("x")}}, contact.ErrNotFound, ""},
		{"delete deleted", deleted, contact.Delete{ContactID: id}, contact.ErrNotFound, ""},
		{"delete stale", live, contact.Delete{ContactID: id, ExpectedVersion: 2}, contact.ErrPreconditionFailed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := contact.Decide(tc.state, tc.cmd, meta(t0))
			if len(evs) != 0 {
				t.Fatalf("events %+v", evs)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if tc.field != "" {
				found := false
				for _, f := range fault.Fields(err) {
					found = found || f.Field == tc.field
				}
				if fault.KindOf(err) != fault.Invalid || !found {
					t.Fatalf("err %v does not name %s", err, tc.field)
				}
			}
		})
	}
}

// TestEvolveIgnoresOtherAggregates: a customer event leaves a contact as
// it is (one stream holds both).
func TestEvolveIgnoresOtherAggregates(t *testing.T) {
	c, _ := apply(t, contact.Contact{}, contact.Create{ContactID: id, Input: contact.Input{Name: str("Ann")}}, t0)
	got := contact.Evolve(c, events.Event{Version: 9, Data: &events.CustomerDeleted{CustomerID: id}})
	if got.Version != 1 || got.Deleted {
		t.Fatalf("a customer event changed the contact: %+v", got)
	}
}
