package app_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"crm/internal/apptest"
	"crm/internal/contact"
	"crm/internal/customer"
	"crm/internal/events"
)

type linkBody struct {
	CustomerID string        `json:"customerId"`
	ContactID  string        `json:"contactId"`
	Role       *string       `json:"role"`
	Primary    bool          `json:"primary"`
	From       *string       `json:"from"`
	To         *string       `json:"to"`
	LinkedBy   string        `json:"linkedBy"`
	LinkedAt   string        `json:"linkedAt"`
	Contact    *contactBody  `json:"contact"`
	Customer   *customerBody `json:"customer"`
}

type linkList struct {
	Data []linkBody `json:"data"`
	Meta struct {
		Total int `json:"total"`
	} `json:"meta"`
}

// subjectsSince returns the subjects of the stream's messages after the
// first n.
func subjectsSince(e *apptest.Env, n int) []string {
	var out []string
	for _, m := range e.StreamMessages()[n:] {
		out = append(out, m.Subject)
	}
	return out
}

// TestLinks: a contact linked to two customers and a customer with two
// contacts, over HTTP: PUT creates (201) then changes (200) a link, a
// second PUT of the same link appends nothing, the primary flag moves, both
// sides list the links, and each link is an event on both aggregates.
func TestLinks(t *testing.T) {
	e := apptest.StartEmbedded(t)
	acme := create(t, e, `{"name":"Acme Corporation","type":"business"}`)
	globex := create(t, e, `{"name":"Globex GmbH","type":"business"}`)
	ann := createContact(t, e, `{"name":"Ann Lee","email":"ann@example.com"}`)
	bob := createContact(t, e, `{"name":"Bob Stone"}`)
	link := func(cu, k string) string { return "/api/v1/crm/customers/" + cu + "/contacts/" + k }

	n := len(e.StreamMessages())
	r := e.Do("PUT", link(acme.CustomerID, ann.ContactID), `{"role":"billing","primary":true,"from":"2026-01-01"}`)
	if r.Status != http.StatusCreated || r.Header.Get("X-Read-Model") != "current" || r.Header.Get("Location") != link(acme.CustomerID, ann.ContactID) {
		t.Fatalf("link: %d %v %s", r.Status, r.Header, r.Body)
	}
	var got struct{ Data linkBody }
	r.JSON(t, &got)
	if got.Data.Role == nil || *got.Data.Role != "billing" || !got.Data.Primary || *got.Data.From != "2026-01-01" || got.Data.To != nil ||
		got.Data.Contact == nil || got.Data.Contact.Name != "Ann Lee" || got.Data.LinkedBy != admin {
		t.Fatalf("link: %s", r.Body)
	}
	want := []string{"crm.customers." + acme.CustomerID + ".contactlinked", "crm.contacts." + ann.ContactID + ".linked"}
	if s := subjectsSince(e, n); !slices.Equal(s, want) {
		t.Fatalf("link events %v, want %v", s, want)
	}
	// The same link again: nothing appended, 200.
	n = len(e.StreamMessages())
	if r := e.Do("PUT", link(acme.CustomerID, ann.ContactID), `{"role":"billing","primary":true,"from":"2026-01-01"}`); r.Status != http.StatusOK {
		t.Fatalf("same link again: %d %s", r.Status, r.Body)
	}
	if s := subjectsSince(e, n); len(s) != 0 {
		t.Fatalf("the same link again appended %v", s)
	}
	// Bob becomes the primary contact: Ann's link is no longer primary.
	if r := e.Do("PUT", link(acme.CustomerID, bob.ContactID), `{"role":"decision maker","primary":true}`); r.Status != http.StatusCreated {
		t.Fatalf("link bob: %d %s", r.Status, r.Body)
	}
	// Ann also works for Globex (a person in several companies); no body.
	if r := e.Do("PUT", link(globex.CustomerID, ann.ContactID), nil); r.Status != http.StatusCreated {
		t.Fatalf("link ann to globex: %d %s", r.Status, r.Body)
	}
	var acmeContacts linkList
	if r := e.Do("GET", "/api/v1/crm/customers/"+acme.CustomerID+"/contacts", nil); r.Status != http.StatusOK {
		t.Fatalf("customer contacts: %d %s", r.Status, r.Body)
	} else {
		r.JSON(t, &acmeContacts)
	}
	if acmeContacts.Meta.Total != 2 || acmeContacts.Data[0].ContactID != bob.ContactID || !acmeContacts.Data[0].Primary ||
		acmeContacts.Data[1].ContactID != ann.ContactID || acmeContacts.Data[1].Primary || *acmeContacts.Data[1].Role != "billing" ||
		acmeContacts.Data[0].Contact.Name != "Bob Stone" {
		t.Fatalf("acme's contacts: %+v", acmeContacts)
	}
	var annCustomers linkList
	e.Do("GET", "/api/v1/crm/contacts/"+ann.ContactID+"/customers", nil).JSON(t, &annCustomers)
	if annCustomers.Meta.Total != 2 || annCustomers.Data[0].Customer.Name != "Acme Corporation" || annCustomers.Data[1].Customer.Name != "Globex GmbH" ||
		annCustomers.Data[1].Role != nil || annCustomers.Data[1].Primary {
		t.Fatalf("ann's customers: %+v", annCustomers)
	}
	// Changing the attributes is one customer event (the contact's link
	// stays as it is).
	n = len(e.StreamMessages())
	if r := e.Do("PUT", link(globex.CustomerID, ann.ContactID), `{"role":"support","to":"2027-06-30"}`); r.Status != http.StatusOK {
		t.Fatalf("change link: %d %s", r.Status, r.Body)
	}
	if s := subjectsSince(e, n); !slices.Equal(s, []string{"crm.customers." + globex.CustomerID + ".contactlinked"}) {
		t.Fatalf("change link events %v", s)
	}
	// The customer's history shows each link as a change of contacts.<id>.
	var hist struct {
		Data []struct {
			Kind    string
			Changes []struct {
				Field    string
				Old, New any
			}
		}
	}
	e.Do("GET", "/api/v1/crm/customers/"+acme.CustomerID+"/history", nil).JSON(t, &hist)
	var linkChanges []string
	for _, h := range hist.Data {
		for _, c := range h.Changes {
			if strings.HasPrefix(c.Field, "contacts.") {
				linkChanges = append(linkChanges, h.Kind+" "+c.Field)
			}
		}
	}
	if want := []string{"contactlinked contacts." + ann.ContactID, "contactlinked contacts." + bob.ContactID, "contactlinked contacts." + ann.ContactID}; !slices.Equal(linkChanges, want) {
		t.Fatalf("history link changes %v, want %v", linkChanges, want)
	}

	// Unlink: an event on each; then 404.
	n = len(e.StreamMessages())
	if r := e.Do("DELETE", link(acme.CustomerID, bob.ContactID), nil); r.Status != http.StatusOK {
		t.Fatalf("unlink: %d %s", r.Status, r.Body)
	}
	if s := subjectsSince(e, n); !slices.Equal(s, []string{"crm.customers." + acme.CustomerID + ".contactunlinked", "crm.contacts." + bob.ContactID + ".unlinked"}) {
		t.Fatalf("unlink events %v", s)
	}
	if r := e.Do("DELETE", link(acme.CustomerID, bob.ContactID), nil); r.Status != http.StatusNotFound {
		t.Fatalf("unlink again: %d %s", r.Status, r.Body)
	}
	var bobCustomers linkList
	if e.Do("GET", "/api/v1/crm/contacts/"+bob.ContactID+"/customers", nil).JSON(t, &bobCustomers); bobCustomers.Meta.Total != 0 || bobCustomers.Data == nil {
		t.Fatalf("bob's customers after unlink: %+v", bobCustomers)
	}
}

// TestLinksEndWithDeletion: deleting a customer ends its links (the
// contacts' histories show it), and deleting a contact ends its links on
// every customer, each in the deletion's one atomic batch.
func TestLinksEndWithDeletion(t *testing.T) {
	e := apptest.StartEmbedded(t)
	acme := create(t, e, `{"name":"Acme"}`)
	globex := create(t, e, `{"name":"Globex"}`)
	ann := createContact(t, e, `{"name":"Ann"}`)
	bob := createContact(t, e, `{"name":"Bob"}`)
	for _, l := range [][2]string{{acme.CustomerID, ann.ContactID}, {acme.CustomerID, bob.ContactID}, {globex.CustomerID, ann.ContactID}} {
		if r := e.Do("PUT", "/api/v1/crm/customers/"+l[0]+"/contacts/"+l[1], `{"role":"r"}`); r.Status != http.StatusCreated {
			t.Fatalf("link: %d %s", r.Status, r.Body)
		}
	}
	// Deleting Acme ends both its links, on both sides.
	n := len(e.StreamMessages())
	if r := e.Do("DELETE", "/api/v1/crm/customers/"+acme.CustomerID, nil); r.Status != http.StatusOK || r.Header.Get("ETag") != `"6"` {
		t.Fatalf("delete acme: %d %v %s", r.Status, r.Header, r.Body)
	}
	got := subjectsSince(e, n)
	slices.Sort(got)
	want := []string{"crm.contacts." + ann.ContactID + ".unlinked", "crm.contacts." + bob.ContactID + ".unlinked",
		"crm.customers." + acme.CustomerID + ".contactunlinked", "crm.customers." + acme.CustomerID + ".contactunlinked",
		"crm.customers." + acme.CustomerID + ".deleted"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("delete events %v, want %v", got, want)
	}
	var l linkList
	if e.Do("GET", "/api/v1/crm/contacts/"+ann.ContactID+"/customers", nil).JSON(t, &l); l.Meta.Total != 1 || l.Data[0].CustomerID != globex.CustomerID {
		t.Fatalf("ann's customers after acme's deletion: %+v", l)
	}
	if r := e.Do("GET", "/api/v1/crm/customers/"+acme.CustomerID+"/contacts", nil); r.Status != http.StatusNotFound {
		t.Fatalf("contacts of a deleted customer: %d", r.Status)
	}
	// A restored customer comes back with its links (TestRestoreBringsLinksBack);
	// they end again here for what follows.
	if r := e.Do("POST", "/api/v1/crm/customers/"+acme.CustomerID+"/restore", nil); r.Status != http.StatusOK {
		t.Fatalf("restore: %d %s", r.Status, r.Body)
	}
	if e.Do("GET", "/api/v1/crm/customers/"+acme.CustomerID+"/contacts", nil).JSON(t, &l); l.Meta.Total != 2 {
		t.Fatalf("a restored customer's contacts: %+v", l)
	}
	for _, k := range []string{ann.ContactID, bob.ContactID} {
		if r := e.Do("DELETE", "/api/v1/crm/customers/"+acme.CustomerID+"/contacts/"+k, nil); r.Status != http.StatusOK {
			t.Fatalf("unlink after the restore: %d %s", r.Status, r.Body)
		}
	}
	// Deleting Ann ends her link to Globex.
	n = len(e.StreamMessages())
	if r := e.Do("DELETE", "/api/v1/crm/contacts/"+ann.ContactID, nil); r.Status != http.StatusOK {
		t.Fatalf("delete ann: %d %s", r.Status, r.Body)
	}
	got = subjectsSince(e, n)
	slices.Sort(got)
	if want := []string{"crm.contacts." + ann.ContactID + ".deleted", "crm.contacts." + ann.ContactID + ".unlinked",
		"crm.customers." + globex.CustomerID + ".contactunlinked"}; !slices.Equal(got, want) {
		t.Fatalf("contact delete events %v, want %v", got, want)
	}
	if e.Do("GET", "/api/v1/crm/customers/"+globex.CustomerID+"/contacts", nil).JSON(t, &l); l.Meta.Total != 0 {
		t.Fatalf("globex's contacts after ann's deletion: %+v", l)
	}
	// An atomic batch that deletes a linked customer ends its links too.
	if r := e.Do("PUT", "/api/v1/crm/customers/"+globex.CustomerID+"/contacts/"+bob.ContactID, nil); r.Status != http.StatusCreated {
		t.Fatalf("link bob to globex: %d %s", r.Status, r.Body)
	}
	if r := e.Do("POST", "/api/v1/crm/customers/batch", `{"atomic":true,"operations":[{"op":"delete","id":"`+globex.CustomerID+`"}]}`); r.Status != http.StatusOK {
		t.Fatalf("batch delete: %d %s", r.Status, r.Body)
	}
	if e.Do("GET", "/api/v1/crm/contacts/"+bob.ContactID+"/customers", nil).JSON(t, &l); l.Meta.Total != 0 {
		t.Fatalf("bob's customers after the batch: %+v", l)
	}
	if r := e.Do("PUT", "/api/v1/crm/customers/"+acme.CustomerID+"/contacts/"+bob.ContactID, nil); r.Status != http.StatusCreated {
		t.Fatalf("bob can be linked again (his link to globex ended): %d %s", r.Status, r.Body)
	}
}

// TestLinkBadRequests: each bad link request is its exact status with the
// field named, and appends nothing.
func TestLinkBadRequests(t *testing.T) {
	e := apptest.StartEmbedded(t)
	cu := create(t, e, `{"name":"Acme"}`)
	gone := create(t, e, `{"name":"Gone"}`)
	k := createContact(t, e, `{"name":"Ann"}`)
	deletedContact := createContact(t, e, `{"name":"Deleted"}`)
	e.Do("DELETE", "/api/v1/crm/customers/"+gone.CustomerID, nil)
	e.Do("DELETE", "/api/v1/crm/contacts/"+deletedContact.ContactID, nil)
	const unknown = "00000000-0000-4000-8000-000000000000"
	path := func(c, kid string) string { return "/api/v1/crm/customers/" + c + "/contacts/" + kid }
	before := len(e.StreamMessages())
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"unknown customer", "PUT", path(unknown, k.ContactID), "", 404, ""},
		{"deleted customer", "PUT", path(gone.CustomerID, k.ContactID), "", 404, ""},
		{"unknown contact", "PUT", path(cu.CustomerID, unknown), "", 404, ""},
		{"deleted contact", "PUT", path(cu.CustomerID, deletedContact.ContactID), "", 404, ""},
		{"bad customer id", "PUT", path("C001", k.ContactID), "", 400, "customer_id"},
		{"bad contact id", "PUT", path(cu.CustomerID, "nope"), "", 400, "contactId"},
		{"bad from", "PUT", path(cu.CustomerID, k.ContactID), `{"from":"01/02/2026"}`, 400, "from"},
		{"bad to", "PUT", path(cu.CustomerID, k.ContactID), `{"to":"2026-02-30"}`, 400, "to"},
		{"to before from", "PUT", path(cu.CustomerID, k.ContactID), `{"from":"2026-05-01","to":"2026-04-30"}`, 400, "to"},
		{"primary not bool", "PUT", path(cu.CustomerID, k.ContactID), `{"primary":"yes"}`, 400, "primary"},
		{"long role", "PUT", path(cu.CustomerID, k.ContactID), `{"role":"` + strings.Repeat("r", 101) + `"}`, 400, "role"},
		{"unknown field", "PUT", path(cu.CustomerID, k.ContactID), `{"weight":3}`, 400, "weight"},
		{"read-only field", "PUT", path(cu.CustomerID, k.ContactID), `{"contactId":"x"}`, 400, "contactId"},
		{"not an object", "PUT", path(cu.CustomerID, k.ContactID), `["billing"]`, 400, ""},
		{"unlink not linked", "DELETE", path(cu.CustomerID, k.ContactID), "", 404, ""},
		{"unlink unknown customer", "DELETE", path(unknown, k.ContactID), "", 404, ""},
		{"list unknown customer", "GET", "/api/v1/crm/customers/" + unknown + "/contacts", "", 404, ""},
		{"list deleted contact", "GET", "/api/v1/crm/contacts/" + deletedContact.ContactID + "/customers", "", 404, ""},
		{"list parameter", "GET", "/api/v1/crm/customers/" + cu.CustomerID + "/contacts?page=2", "", 400, "page"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := e.Do(tc.method, tc.path, body)
			if r.Status != tc.status {
				t.Fatalf("%s %s: %d, want %d: %s", tc.method, tc.path, r.Status, tc.status, r.Body)
			}
			if fields := problemFields(t, r); tc.field != "" && !slices.Contains(fields, tc.field) {
				t.Fatalf("problem names %v, not %q", fields, tc.field)
			}
		})
	}
	if s := subjectsSince(e, before); len(s) != 0 {
		t.Fatalf("bad link requests appended %v", s)
	}
	// A viewer may list but not link.
	viewer := "Bearer " + e.TokenFor("viewer", "nobody")
	if r := e.Do("PUT", path(cu.CustomerID, k.ContactID), nil, "Authorization", viewer); r.Status != http.StatusForbidden {
		t.Fatalf("link without crm.edit: %d", r.Status)
	}
}

// TestLinkRacesDeletion: a link and a deletion of its customer or contact
// at the same moment never leave a half link: at the end, folding the
// stream, every link is on both sides and none names a deleted party.
func TestLinkRacesDeletion(t *testing.T) {
	e := apptest.StartEmbedded(t)
	for i := range 12 {
		cu := create(t, e, fmt.Sprintf(`{"name":"Racer %d"}`, i))
		k := createContact(t, e, fmt.Sprintf(`{"name":"Contact %d"}`, i))
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			e.Do("PUT", "/api/v1/crm/customers/"+cu.CustomerID+"/contacts/"+k.ContactID, `{"role":"r"}`)
		}()
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				e.Do("DELETE", "/api/v1/crm/customers/"+cu.CustomerID, nil)
			} else {
				e.Do("DELETE", "/api/v1/crm/contacts/"+k.ContactID, nil)
			}
		}()
		wg.Wait()
	}
	customers := map[string]customer.Customer{}
	contacts := map[string]contact.Contact{}
	for _, m := range e.StreamMessages() {
		ev, err := events.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Data.Aggregate() {
		case events.Customers:
			customers[ev.AggregateID] = customer.Evolve(customers[ev.AggregateID], ev)
		case events.Contacts:
			contacts[ev.AggregateID] = contact.Evolve(contacts[ev.AggregateID], ev)
		}
	}
	for id, cu := range customers {
		for kid := range cu.Contacts {
			k := contacts[kid]
			if _, ok := k.Customers[id]; !ok || cu.Deleted || k.Deleted {
				t.Errorf("customer %s (deleted %v) links contact %s (deleted %v, its side %v)", id, cu.Deleted, kid, k.Deleted, ok)
			}
		}
	}
	for kid, k := range contacts {
		for id := range k.Customers {
			if _, ok := customers[id].Contacts[kid]; !ok {
				t.Errorf("contact %s links customer %s, which does not link it", kid, id)
			}
		}
	}
}

// TestMergeMovesLinks: a merge copies the absorbed customers' links to the
// contacts the survivor is not linked to (primary only when the survivor
// has none), on both sides, in the merge's batch; the contacts then list
// the survivor, not the absorbed customer; an unmerge ends the copied links
// that did not change since and brings the absorbed customer back with its
// own.
func TestMergeMovesLinks(t *testing.T) {
	e := apptest.StartEmbedded(t)
	acme := create(t, e, `{"name":"Acme"}`)
	globex := create(t, e, `{"name":"Globex"}`)
	initech := create(t, e, `{"name":"Initech"}`)
	ann := createContact(t, e, `{"name":"Ann"}`)
	bob := createContact(t, e, `{"name":"Bob"}`)
	carl := createContact(t, e, `{"name":"Carl"}`)
	link := func(cu, k, body string, want int) {
		t.Helper()
		if r := e.Do("PUT", "/api/v1/crm/customers/"+cu+"/contacts/"+k, body); r.Status != want {
			t.Fatalf("link %s-%s: %d %s", cu, k, r.Status, r.Body)
		}
	}
	link(acme.CustomerID, ann.ContactID, `{"role":"billing","primary":true}`, http.StatusCreated)
	link(globex.CustomerID, ann.ContactID, `{"role":"support"}`, http.StatusCreated)
	link(globex.CustomerID, bob.ContactID, `{"role":"cto","primary":true,"from":"2025-01-01"}`, http.StatusCreated)
	link(initech.CustomerID, carl.ContactID, `{"role":"buyer"}`, http.StatusCreated)
	contactsOf := func(cu string) []string {
		t.Helper()
		var l linkList
		if r := e.Do("GET", "/api/v1/crm/customers/"+cu+"/contacts", nil); r.Status != http.StatusOK {
			t.Fatalf("contacts of %s: %d %s", cu, r.Status, r.Body)
		} else {
			r.JSON(t, &l)
		}
		var out []string
		for _, x := range l.Data {
			s := x.Contact.Name + ":" + deref(x.Role)
			if x.Primary {
				s += ":primary"
			}
			out = append(out, s)
		}
		return out
	}
	customersOf := func(k string) []string {
		t.Helper()
		var l linkList
		e.Do("GET", "/api/v1/crm/contacts/"+k+"/customers", nil).JSON(t, &l)
		var out []string
		for _, x := range l.Data {
			out = append(out, x.Customer.Name)
		}
		return out
	}
	merge := map[string]any{"customerIds": []string{globex.CustomerID, initech.CustomerID}}
	type moved struct {
		ContactID, CustomerID string
		Primary               bool
	}
	var preview struct {
		Merge struct{ Links []moved }
	}
	n := len(e.StreamMessages())
	r := e.Do("POST", "/api/v1/crm/customers/"+acme.CustomerID+"/merge", map[string]any{"customerIds": merge["customerIds"], "dryRun": true})
	if r.JSON(t, &preview); r.Status != http.StatusOK || r.Header.Get("ETag") != `"2"` || len(subjectsSince(e, n)) != 0 {
		t.Fatalf("dry run: %d %v %s", r.Status, r.Header, r.Body)
	}
	wantMoved := []moved{{bob.ContactID, globex.CustomerID, false}, {carl.ContactID, initech.CustomerID, false}}
	if !slices.Equal(preview.Merge.Links, wantMoved) {
		t.Fatalf("dry run links %+v, want %+v", preview.Merge.Links, wantMoved)
	}
	var done struct {
		Merge struct{ Links []moved }
	}
	r = e.Do("POST", "/api/v1/crm/customers/"+acme.CustomerID+"/merge", merge)
	if r.JSON(t, &done); r.Status != http.StatusOK || r.Header.Get("ETag") != `"5"` || !slices.Equal(done.Merge.Links, wantMoved) {
		t.Fatalf("merge: %d %v %s", r.Status, r.Header, r.Body)
	}
	got := subjectsSince(e, n)
	want := []string{"crm.customers." + acme.CustomerID + ".merged", "crm.customers." + acme.CustomerID + ".contactlinked",
		"crm.customers." + acme.CustomerID + ".contactlinked", "crm.customers." + globex.CustomerID + ".mergedinto",
		"crm.customers." + initech.CustomerID + ".mergedinto", "crm.contacts." + bob.ContactID + ".linked", "crm.contacts." + carl.ContactID + ".linked"}
	if !slices.Equal(got, want) {
		t.Fatalf("merge events\n%v\nwant\n%v", got, want)
	}
	if got := contactsOf(acme.CustomerID); !slices.Equal(got, []string{"Ann:billing:primary", "Bob:cto", "Carl:buyer"}) {
		t.Errorf("the survivor's contacts: %v", got)
	}
	for k, want := range map[string][]string{ann.ContactID: {"Acme"}, bob.ContactID: {"Acme"}, carl.ContactID: {"Acme"}} {
		if got := customersOf(k); !slices.Equal(got, want) {
			t.Errorf("customers of %s: %v, want %v", k, got, want)
		}
	}
	var tl timelineBody
	e.Do("GET", "/api/v1/crm/customers/"+acme.CustomerID+"/timeline?types=contactlinked", nil).JSON(t, &tl)
	if len(tl.Data) < 4 { // acme's own link to ann, the two copies, and the absorbed customers' own links
		t.Errorf("the survivor's timeline of links: %+v", tl.Data)
	}

	// The copy of Carl's link changes (the role): it stays at the unmerge of
	// Initech. Bob's copy did not: the unmerge of Globex ends it.
	link(acme.CustomerID, carl.ContactID, `{"role":"head buyer"}`, http.StatusOK)
	n = len(e.StreamMessages())
	var un struct {
		Unmerge struct{ Unlinked []string }
	}
	r = e.Do("POST", "/api/v1/crm/customers/"+acme.CustomerID+"/unmerge", map[string]string{"customerId": globex.CustomerID})
	if r.JSON(t, &un); r.Status != http.StatusOK || !slices.Equal(un.Unmerge.Unlinked, []string{bob.ContactID}) {
		t.Fatalf("unmerge globex: %d %s", r.Status, r.Body)
	}
	want = []string{"crm.customers." + acme.CustomerID + ".mergeundone", "crm.customers." + acme.CustomerID + ".contactunlinked",
		"crm.customers." + globex.CustomerID + ".unmerged", "crm.contacts." + bob.ContactID + ".unlinked"}
	if got := subjectsSince(e, n); !slices.Equal(got, want) {
		t.Fatalf("unmerge events\n%v\nwant\n%v", got, want)
	}
	if got := contactsOf(acme.CustomerID); !slices.Equal(got, []string{"Ann:billing:primary", "Carl:head buyer"}) {
		t.Errorf("the survivor's contacts after the unmerge: %v", got)
	}
	if got := contactsOf(globex.CustomerID); !slices.Equal(got, []string{"Bob:cto:primary", "Ann:support"}) {
		t.Errorf("the unmerged customer's contacts: %v", got)
	}
	if got := customersOf(bob.ContactID); !slices.Equal(got, []string{"Globex"}) {
		t.Errorf("bob's customers after the unmerge: %v", got)
	}
	if got := customersOf(ann.ContactID); !slices.Equal(got, []string{"Acme", "Globex"}) {
		t.Errorf("ann's customers after the unmerge: %v", got)
	}
	r = e.Do("POST", "/api/v1/crm/customers/"+acme.CustomerID+"/unmerge", map[string]string{"customerId": initech.CustomerID})
	if r.JSON(t, &un); r.Status != http.StatusOK || len(un.Unmerge.Unlinked) != 0 {
		t.Fatalf("unmerge initech: %d %s", r.Status, r.Body)
	}
	if got := contactsOf(acme.CustomerID); !slices.Equal(got, []string{"Ann:billing:primary", "Carl:head buyer"}) {
		t.Errorf("the survivor keeps the changed link: %v", got)
	}
	if got := customersOf(carl.ContactID); !slices.Equal(got, []string{"Acme", "Initech"}) {
		t.Errorf("carl's customers: %v", got)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// TestRestoreBringsLinksBack: a restore links the customer again to the
// contacts its deletion unlinked, as they were, on both sides, in the
// restore's batch, except to a contact deleted meanwhile.
func TestRestoreBringsLinksBack(t *testing.T) {
	e := apptest.StartEmbedded(t)
	acme := create(t, e, `{"name":"Acme"}`)
	ann := createContact(t, e, `{"name":"Ann"}`)
	bob := createContact(t, e, `{"name":"Bob"}`)
	carl := createContact(t, e, `{"name":"Carl"}`)
	for k, body := range map[string]string{ann.ContactID: `{"role":"billing","primary":true,"from":"2025-01-01"}`,
		bob.ContactID: `{"role":"cto"}`, carl.ContactID: `{}`} {
		if r := e.Do("PUT", "/api/v1/crm/customers/"+acme.CustomerID+"/contacts/"+k, body); r.Status != http.StatusCreated {
			t.Fatalf("link: %d %s", r.Status, r.Body)
		}
	}
	if r := e.Do("DELETE", "/api/v1/crm/customers/"+acme.CustomerID, nil); r.Status != http.StatusOK {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := e.Do("DELETE", "/api/v1/crm/contacts/"+carl.ContactID, nil); r.Status != http.StatusOK { // meanwhile
		t.Fatalf("delete carl: %d %s", r.Status, r.Body)
	}
	n := len(e.StreamMessages())
	r := e.Do("POST", "/api/v1/crm/customers/"+acme.CustomerID+"/restore", nil)
	if r.Status != http.StatusOK || r.Header.Get("ETag") != `"11"` { // create, 3 links, 3 unlinks, delete, restore, 2 links again
		t.Fatalf("restore: %d %v %s", r.Status, r.Header, r.Body)
	}
	got := subjectsSince(e, n)
	want := []string{"crm.customers." + acme.CustomerID + ".restored", "crm.customers." + acme.CustomerID + ".contactlinked",
		"crm.customers." + acme.CustomerID + ".contactlinked", "crm.contacts." + ann.ContactID + ".linked", "crm.contacts." + bob.ContactID + ".linked"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("restore events\n%v\nwant\n%v", got, want)
	}
	var l linkList
	e.Do("GET", "/api/v1/crm/customers/"+acme.CustomerID+"/contacts", nil).JSON(t, &l)
	var links []string
	for _, x := range l.Data {
		links = append(links, fmt.Sprintf("%s:%s:%v:%s", x.Contact.Name, deref(x.Role), x.Primary, deref(x.From)))
	}
	if !slices.Equal(links, []string{"Ann:billing:true:2025-01-01", "Bob:cto:false:"}) {
		t.Errorf("the restored customer's links: %v", links)
	}
	for _, k := range []string{ann.ContactID, bob.ContactID} {
		var cl linkList
		if e.Do("GET", "/api/v1/crm/contacts/"+k+"/customers", nil).JSON(t, &cl); cl.Meta.Total != 1 || cl.Data[0].CustomerID != acme.CustomerID {
			t.Errorf("contact %s's customers after the restore: %+v", k, cl)
		}
	}
	// A second delete and restore: the same links again.
	e.Do("DELETE", "/api/v1/crm/customers/"+acme.CustomerID, nil)
	if r := e.Do("POST", "/api/v1/crm/customers/"+acme.CustomerID+"/restore", nil); r.Status != http.StatusOK {
		t.Fatalf("restore again: %d %s", r.Status, r.Body)
	}
	if e.Do("GET", "/api/v1/crm/customers/"+acme.CustomerID+"/contacts", nil).JSON(t, &l); l.Meta.Total != 2 {
		t.Errorf("after the second restore: %+v", l)
	}
}
