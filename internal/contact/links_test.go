package contact_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"crm/internal/contact"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

const custID = "0b5e1f3a-2c4d-4e6f-8a9b-0c1d2e3f4a5b"

func liveCustomer(t *testing.T) customer.Customer {
	t.Helper()
	evs, err := customer.Decide(customer.Customer{}, customer.Create{CustomerID: custID, Code: "C001", Input: customer.Input{Name: str("Acme")}}, meta(t0))
	if err != nil {
		t.Fatal(err)
	}
	return customer.Fold(evs)
}

func withIDs(m customer.Meta) customer.Meta {
	n := 0
	m.NextID = func() string { n++; return fmt.Sprintf("00000000-0000-4000-8000-%012d", n+100) }
	return m
}

// fold applies a decision's events to the customer and the contact.
func fold(cu customer.Customer, k contact.Contact, evs []events.Event) (customer.Customer, contact.Contact) {
	for _, e := range evs {
		switch e.Data.Aggregate() {
		case events.Customers:
			cu = customer.Evolve(cu, e)
		case events.Contacts:
			k = contact.Evolve(k, e)
		}
	}
	return cu, k
}

func TestDecideLink(t *testing.T) {
	cu := liveCustomer(t)
	k, _ := apply(t, contact.Contact{}, contact.Create{ContactID: id, Input: contact.Input{Name: str("Ann")}}, t0)
	other := contact.Contact{ID: "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", Version: 1, Name: "Bob"}

	d, err := contact.DecideLink(cu, k, contact.LinkInput{Role: str(" billing "), Primary: true, From: str("2026-01-01")}, withIDs(meta(t0)))
	if err != nil || !d.Created || len(d.Events) != 2 || d.Link.Role != "billing" {
		t.Fatalf("first link: %+v %v", d, err)
	}
	if d.Events[0].AggregateID != custID || d.Events[0].Version != 2 || d.Events[1].AggregateID != id || d.Events[1].Version != 2 {
		t.Fatalf("link events: %+v", d.Events)
	}
	cu, k = fold(cu, k, d.Events)
	if l := cu.Contacts[id]; !l.Primary || l.From != "2026-01-01" || k.Customers[custID] != "C001" {
		t.Fatalf("after linking: %+v %+v", cu.Contacts, k.Customers)
	}
	// The same again: nothing.
	if d, err := contact.DecideLink(cu, k, contact.LinkInput{Role: str("billing"), Primary: true, From: str("2026-01-01")}, withIDs(meta(t0))); err != nil || len(d.Events) != 0 || d.Created {
		t.Fatalf("same link: %+v %v", d, err)
	}
	// Another primary contact: Ann's link is made not primary, on the
	// customer only; Bob's link is new on both.
	d, err = contact.DecideLink(cu, other, contact.LinkInput{Primary: true}, withIDs(meta(t0)))
	if err != nil || len(d.Events) != 3 {
		t.Fatalf("second primary: %+v %v", d, err)
	}
	demoted := d.Events[1].Data.(*events.CustomerContactLinked)
	if demoted.ContactID != id || demoted.Primary || *demoted.Role != "billing" || d.Events[1].Version != 4 {
		t.Fatalf("demotion: %+v", d.Events[1])
	}
	cu, _ = fold(cu, other, d.Events)
	if cu.Contacts[id].Primary || !cu.Contacts[other.ID].Primary {
		t.Fatalf("primary after: %+v", cu.Contacts)
	}
	// Unlink: an event on each; then not linked.
	evs, err := contact.DecideUnlink(cu, k, withIDs(meta(t0)))
	if err != nil || len(evs) != 2 || evs[0].Data.(*events.CustomerContactUnlinked).Reason != events.UnlinkRemoved {
		t.Fatalf("unlink: %+v %v", evs, err)
	}
	cu, k = fold(cu, k, evs)
	if _, err := contact.DecideUnlink(cu, k, withIDs(meta(t0))); !errors.Is(err, contact.ErrNotLinked) {
		t.Fatalf("unlink again: %v", err)
	}
	// Deleting the customer ends its remaining link first.
	evs, err = customer.Decide(cu, customer.Delete{CustomerID: custID}, withIDs(meta(t0)))
	if err != nil || len(evs) != 2 || evs[0].Kind() != events.KindContactUnlinked || evs[1].Kind() != events.KindDeleted ||
		evs[0].Data.(*events.CustomerContactUnlinked).Reason != events.UnlinkCustomerDeleted || evs[1].Version != evs[0].Version+1 {
		t.Fatalf("delete: %+v %v", evs, err)
	}
}

func TestDecideLinkRefusals(t *testing.T) {
	cu := liveCustomer(t)
	k, _ := apply(t, contact.Contact{}, contact.Create{ContactID: id, Input: contact.Input{Name: str("Ann")}}, t0)
	deletedCu := cu
	deletedCu.Deleted = true
	merged := cu
	merged.MergedInto = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
	deletedK := k
	deletedK.Deleted = true
	full := cu
	full.Contacts = map[string]customer.Link{}
	for i := range customer.MaxLinks {
		full.Contacts[fmt.Sprint(i)] = customer.Link{}
	}
	for _, tc := range []struct {
		name  string
		cu    customer.Customer
		k     contact.Contact
		in    contact.LinkInput
		want  error
		kind  fault.Kind
		field string
	}{
		{"deleted customer", deletedCu, k, contact.LinkInput{}, customer.ErrNotFound, fault.NotFound, ""},
		{"unknown customer", customer.Customer{}, k, contact.LinkInput{}, customer.ErrNotFound, fault.NotFound, ""},
		{"merged customer", merged, k, contact.LinkInput{}, nil, fault.Moved, ""},
		{"deleted contact", cu, deletedK, contact.LinkInput{}, contact.ErrNotFound, fault.NotFound, ""},
		{"unknown contact", cu, contact.Contact{ID: id}, contact.LinkInput{}, contact.ErrNotFound, fault.NotFound, ""},
		{"too many", full, k, contact.LinkInput{}, contact.ErrTooManyLinks, fault.Conflict, ""},
		{"bad date", cu, k, contact.LinkInput{From: str("2026-13-01")}, nil, fault.Invalid, "from"},
		{"to before from", cu, k, contact.LinkInput{From: str("2026-02-01"), To: str("2026-01-31")}, nil, fault.Invalid, "to"},
		{"long role", cu, k, contact.LinkInput{Role: str(strings.Repeat("r", 101))}, nil, fault.Invalid, "role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := contact.DecideLink(tc.cu, tc.k, tc.in, withIDs(meta(t0)))
			if len(d.Events) != 0 || fault.KindOf(err) != tc.kind || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("DecideLink = %+v, %v; want %v (%v)", d.Events, err, tc.want, tc.kind)
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
