package readmodeltest

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"crm/internal/events"
	"crm/internal/fault"
	"crm/internal/readmodel"
	"crm/internal/search"
)

// linkDoc returns a live test link of customer cust to contact cont with
// defaults (no role, not primary, no dates); LinkedAt has nanoseconds.
func linkDoc(cust, cont int, seq uint64) readmodel.Link {
	return readmodel.Link{
		CustomerID: customerID(cust), ContactID: contactID(cont),
		LinkedBy: "user-1", LinkedAt: base.Add(time.Duration(seq)*time.Millisecond + time.Duration(cont)*time.Nanosecond),
		Seq: seq,
	}
}

// endedLink returns the tombstone of the link of cust to cont at seq, as
// LinkFromEvent makes it of the customer's unlink event.
func endedLink(t *testing.T, cust, cont int, seq uint64) readmodel.Link {
	t.Helper()
	l, ok := readmodel.LinkFromEvent(events.Event{Seq: seq, Data: &events.CustomerContactUnlinked{
		CustomerID: customerID(cust), CustomerCode: code(cust), ContactID: contactID(cont),
		Reason: events.UnlinkRemoved, UnlinkedBy: "user-9", UnlinkedAt: base.Add(time.Duration(seq) * time.Second),
	}})
	if !ok || !l.Ended || l.Seq != seq {
		t.Fatalf("LinkFromEvent of an unlink = %+v, %v; want an ended link at %d", l, ok, seq)
	}
	return l
}

// normalizeLink returns l as every adapter must return it: LinkedAt in
// UTC.
func normalizeLink(l readmodel.Link) readmodel.Link {
	l.LinkedAt = l.LinkedAt.UTC()
	return l
}

func sameLink(t *testing.T, what string, got, want readmodel.Link) {
	t.Helper()
	if g, w := normalizeLink(got), normalizeLink(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func customerContacts(t *testing.T, r readmodel.Reader, customerID string) []readmodel.LinkedContact {
	t.Helper()
	got, err := r.CustomerContacts(t.Context(), customerID)
	if err != nil {
		t.Fatalf("CustomerContacts(%s): %v", customerID, err)
	}
	return got
}

func contactCustomers(t *testing.T, r readmodel.Reader, contactID string) []readmodel.LinkedCustomer {
	t.Helper()
	got, err := r.ContactCustomers(t.Context(), contactID)
	if err != nil {
		t.Fatalf("ContactCustomers(%s): %v", contactID, err)
	}
	return got
}

func linkedContactNames(ls []readmodel.LinkedContact) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = fmt.Sprintf("%s/%s primary=%v role=%q", l.Contact.Name, l.Contact.ID[:8], l.Link.Primary, l.Link.Role)
	}
	return out
}

func linkedCustomerNames(ls []readmodel.LinkedCustomer) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = fmt.Sprintf("%s/%s role=%q", l.Customer.Name, l.Customer.Code, l.Link.Role)
	}
	return out
}

// wantCustomerContacts checks that CustomerContacts(customerID) is want,
// in order, every link and contact exactly.
func wantCustomerContacts(t *testing.T, r readmodel.Reader, what, customerID string, want []readmodel.LinkedContact) {
	t.Helper()
	got := customerContacts(t, r, customerID)
	if !slices.Equal(linkedContactNames(got), linkedContactNames(want)) {
		t.Errorf("%s: CustomerContacts(%s)\n got %q\nwant %q", what, customerID, linkedContactNames(got), linkedContactNames(want))
		return
	}
	for i := range got {
		sameLink(t, fmt.Sprintf("%s: CustomerContacts(%s) link %d", what, customerID, i), got[i].Link, want[i].Link)
		sameContact(t, fmt.Sprintf("%s: CustomerContacts(%s) contact %d", what, customerID, i), got[i].Contact, want[i].Contact)
		if got[i].Contact.Tags == nil {
			t.Errorf("%s: CustomerContacts(%s) contact %d: nil Tags", what, customerID, i)
		}
	}
}

// wantContactCustomers checks that ContactCustomers(contactID) is want, in
// order, every link and customer exactly.
func wantContactCustomers(t *testing.T, r readmodel.Reader, what, contactID string, want []readmodel.LinkedCustomer) {
	t.Helper()
	got := contactCustomers(t, r, contactID)
	if !slices.Equal(linkedCustomerNames(got), linkedCustomerNames(want)) {
		t.Errorf("%s: ContactCustomers(%s)\n got %q\nwant %q", what, contactID, linkedCustomerNames(got), linkedCustomerNames(want))
		return
	}
	for i := range got {
		sameLink(t, fmt.Sprintf("%s: ContactCustomers(%s) link %d", what, contactID, i), got[i].Link, want[i].Link)
		sameDoc(t, fmt.Sprintf("%s: ContactCustomers(%s) customer %d", what, contactID, i), got[i].Customer, want[i].Customer)
		if got[i].Customer.Tags == nil {
			t.Errorf("%s: ContactCustomers(%s) customer %d: nil Tags", what, contactID, i)
		}
	}
}

func lc(l readmodel.Link, c readmodel.Contact) readmodel.LinkedContact {
	return readmodel.LinkedContact{Link: l, Contact: c}
}

func lk(l readmodel.Link, c readmodel.Customer) readmodel.LinkedCustomer {
	return readmodel.LinkedCustomer{Link: l, Customer: c}
}

// linkModel is a read model's customers, contacts and links, with the
// reference semantics of CustomerContacts and ContactCustomers.
type linkModel struct {
	customers model
	contacts  contactModel
	links     map[[2]string]readmodel.Link
}

func newLinkModel() *linkModel {
	return &linkModel{customers: model{}, contacts: contactModel{}, links: map[[2]string]readmodel.Link{}}
}

// apply stores b's documents, each only over one with a lower Seq.
func (m *linkModel) apply(b readmodel.Batch) {
	for _, d := range b.Customers {
		if old, ok := m.customers[d.ID]; !ok || d.Seq > old.Seq {
			m.customers[d.ID] = d
		}
	}
	for _, d := range b.Contacts {
		if old, ok := m.contacts[d.ID]; !ok || d.Seq > old.Seq {
			m.contacts[d.ID] = d
		}
	}
	for _, l := range b.Links {
		k := [2]string{l.CustomerID, l.ContactID}
		if old, ok := m.links[k]; !ok || l.Seq > old.Seq {
			m.links[k] = l
		}
	}
}

// compareLinkedContacts is the order of CustomerContacts: the primary link
// first, then by search.Fold of the contact's name, then contact id.
func compareLinkedContacts(a, b readmodel.LinkedContact) int {
	if a.Link.Primary != b.Link.Primary {
		if a.Link.Primary {
			return -1
		}
		return 1
	}
	return cmp.Or(strings.Compare(search.Fold(a.Contact.Name), search.Fold(b.Contact.Name)), strings.Compare(a.Contact.ID, b.Contact.ID))
}

// compareLinkedCustomers is the order of ContactCustomers: by search.Fold
// of the customer's name, then the number of its code.
func compareLinkedCustomers(a, b readmodel.LinkedCustomer) int {
	return cmp.Or(strings.Compare(search.Fold(a.Customer.Name), search.Fold(b.Customer.Name)),
		cmp.Compare(search.CodeNumber(a.Customer.Code), search.CodeNumber(b.Customer.Code)))
}

func (m *linkModel) customerContacts(customerID string) []readmodel.LinkedContact {
	out := []readmodel.LinkedContact{}
	for _, l := range m.links {
		if c, ok := m.contacts[l.ContactID]; ok && l.CustomerID == customerID && !l.Ended && !c.Deleted {
			out = append(out, readmodel.LinkedContact{Link: normalizeLink(l), Contact: normalizeContact(c)})
		}
	}
	slices.SortFunc(out, compareLinkedContacts)
	return out
}

func (m *linkModel) contactCustomers(contactID string) []readmodel.LinkedCustomer {
	out := []readmodel.LinkedCustomer{}
	for _, l := range m.links {
		if c, ok := m.customers[l.CustomerID]; ok && l.ContactID == contactID && !l.Ended && c.Live() {
			out = append(out, readmodel.LinkedCustomer{Link: normalizeLink(l), Customer: normalize(c)})
		}
	}
	slices.SortFunc(out, compareLinkedCustomers)
	return out
}

// check compares both lists of every customer and contact of the model,
// and of ids (unknown ones, or of the other kind) with it.
func (m *linkModel) check(t *testing.T, r readmodel.Reader, what string, ids ...string) {
	t.Helper()
	for _, id := range slices.Concat(slices.Sorted(maps.Keys(m.customers)), ids) {
		wantCustomerContacts(t, r, what, id, m.customerContacts(id))
	}
	for _, id := range slices.Concat(slices.Sorted(maps.Keys(m.contacts)), ids) {
		wantContactCustomers(t, r, what, id, m.contactCustomers(id))
	}
}

// testLinkRoundTrip: CommitBatch stores links beside the customers and
// contacts of the batch; CustomerContacts and ContactCustomers return the
// live ones with their contact or customer, every field exactly (unicode,
// dates, LinkedAt to the nanosecond in UTC), in their orders (ties of
// folded names broken by contact id, and by code number, not code text);
// ids without links give an empty list.
func testLinkRoundTrip(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	paris := time.FixedZone("CET", 3600)

	// Customer 1 has every field; customers 2–4 have names equal after
	// folding and codes whose numeric order (100, 999, 1000) is not their
	// text order (C0100, C1000, C999).
	full := readmodel.Customer{
		ID: customerID(1), Code: "C001", Name: "Zoë Ångström-Łukasz 東京",
		Email: "zoe.angstrom+crm@example.com", Phone: "+33 1 23 45 67 89", Company: "Müller & Søn GmbH",
		Address: readmodel.Address{Street: "Rua São João, 1", City: "São Paulo", State: "SP", Country: "BR", PostalCode: "01000-000"},
		Type:    "business", Status: "active",
		Notes:      "line 1\nline 2 ☕ \"quoted\" 'single' %_\\ $where {}",
		Tags:       []string{"vip", "北京", "with space", "ÄLG"},
		ExternalID: "SF-0012/ß é",
		CreatedBy:  "user-1", CreatedAt: base.In(paris), UpdatedAt: base.Add(90*time.Minute + time.Nanosecond),
		Version: 3, Seq: 7,
	}
	d1, d2, d3 := doc(2, "Dupont SA"), doc(3, "DUPONT sa"), doc(4, "Dupont SA")
	d1.Code, d2.Code, d3.Code = "C1000", "C999", "C0100"
	emile, other := doc(5, "Émile Bernard"), doc(6, "Unlinked Customer")
	absorbed := doc(7, "Absorbed Into Émile")
	emile.Absorbed = []readmodel.Absorbed{{ID: absorbed.ID, Code: absorbed.Code}}
	absorbed.MergedInto = emile.ID
	customers := []readmodel.Customer{full, d1, d2, d3, emile, other, absorbed}

	// Contacts: folded-name ties (anna, Anna, Ánna; émile, Emile), unicode
	// names, one with every field, one linked to nobody.
	fullContact := readmodel.Contact{
		ID: contactID(1), Name: "Zoë Ångström 東京",
		Email: "Zoë.Ångström+crm@Example.com", Phone: "+33 1 23 45 67 89",
		Title: "Directrice générale — 東京支社", Notes: "line 1\nline 2 ☕ %_\\ $where {}",
		Tags:      []string{"vip", "北京"},
		CreatedBy: "user-1", CreatedAt: base.In(paris), UpdatedBy: "user-2", UpdatedAt: base.Add(time.Hour + time.Nanosecond),
		Version: 3, Seq: 9,
	}
	names := []string{"anna", "Anna", "Ánna", "Bob Lee", "émile", "Emile", "Łukasz", "東京 太郎", "😀 Smile", "Nobody Linked"}
	contacts := []readmodel.Contact{fullContact}
	for i, name := range names {
		c := contactDoc(i+2, name)
		c.Tags = []string{fmt.Sprintf("t%d", i)}
		contacts = append(contacts, c)
	}

	var links []readmodel.Link
	// Customer 1: the primary link to a contact whose name sorts last,
	// with every field; a link to every other contact but the last.
	primary := linkDoc(1, 1, 40)
	primary.Role, primary.Primary, primary.From, primary.To = "Directrice générale — 東京支社 ☕ \"q\" %_", true, "2025-01-31", "2027-12-31"
	primary.LinkedBy, primary.LinkedAt = "user-ß/é", time.Date(2026, 3, 4, 5, 6, 7, 987654321, paris)
	links = append(links, primary)
	for n := 2; n <= 10; n++ {
		l := linkDoc(1, n, uint64(40+n))
		if n%2 == 0 {
			l.Role, l.From = fmt.Sprintf("rôle %d", n), "2026-02-28"
		}
		if n%3 == 0 {
			l.To = "2026-12-31"
		}
		links = append(links, l)
	}
	// Before 1970 to the nanosecond, and the largest Seq a store keeps.
	links[3].LinkedAt = time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC)
	links[4].Seq = math.MaxInt64
	// Contact 2 (anna) is linked to every customer but one: ties of
	// folded names broken by code number, a primary link that does not
	// count in this order, a merged customer left out.
	for n, role := range map[int]string{2: "billing", 3: "décideur", 4: "", 5: "technique", 7: "absorbed"} {
		l := linkDoc(n, 2, uint64(60+n))
		l.Role, l.Primary = role, n == 5
		l.LinkedAt = l.LinkedAt.In(paris)
		links = append(links, l)
	}
	// Contact 1 is also the contact of the Dupont C1000.
	l := linkDoc(2, 1, 70)
	l.Role, l.LinkedBy = "support", "user-2"
	links = append(links, l)

	b := readmodel.Batch{Customers: customers, Contacts: contacts, Links: links}
	commitBatch(t, s, b, 80)
	if n, err := s.Checkpoint(ctx); err != nil || n != 80 {
		t.Errorf("Checkpoint after a batch with links = %d, %v; want 80", n, err)
	}
	m := newLinkModel()
	m.apply(b)

	// The data exercise what they should.
	ofFull := m.customerContacts(full.ID)
	if len(ofFull) != 10 || !ofFull[0].Link.Primary || ofFull[0].Contact.ID != fullContact.ID {
		t.Fatalf("test data: the contacts of customer 1 are %q", linkedContactNames(ofFull))
	}
	ties, inverted := 0, 0
	for i := 2; i < len(ofFull); i++ {
		if search.Fold(ofFull[i-1].Contact.Name) == search.Fold(ofFull[i].Contact.Name) {
			ties++
			if contactDocIndex(ofFull[i-1].Contact.ID) > contactDocIndex(ofFull[i].Contact.ID) {
				inverted++ // the id order is not the order of insertion
			}
		}
	}
	if ties < 3 || inverted == 0 {
		t.Fatalf("test data: %d ties of folded contact names (%d against the order of insertion), want 3 (1)", ties, inverted)
	}
	ofAnna := m.contactCustomers(contactID(2))
	if got := codes(customersOf(ofAnna)); !slices.Equal(got, []string{"C0100", "C999", "C1000", "C005", "C001"}) {
		t.Fatalf("test data: the customers of contact 2 are %v", got)
	}

	// Exactly, in order, and the same for every customer and contact.
	wantCustomerContacts(t, s, "round trip", full.ID, ofFull)
	wantContactCustomers(t, s, "round trip", contactID(2), ofAnna)
	wantContactCustomers(t, s, "round trip", fullContact.ID, []readmodel.LinkedCustomer{
		{Link: l, Customer: d1}, {Link: primary, Customer: full},
	})
	m.check(t, s, "round trip")

	// Ids without links: empty lists, no error (also ids of the other
	// kind, and "").
	for _, id := range []string{customerID(99), contactID(99), other.ID, fullContact.ID, contactID(11), ""} {
		if got, err := s.CustomerContacts(ctx, id); err != nil || len(got) != 0 {
			t.Errorf("CustomerContacts(%q) = %q, %v; want none", id, linkedContactNames(got), err)
		}
	}
	for _, id := range []string{contactID(99), customerID(99), contactID(11), full.ID, ""} {
		if got, err := s.ContactCustomers(ctx, id); err != nil || len(got) != 0 {
			t.Errorf("ContactCustomers(%q) = %q, %v; want none", id, linkedCustomerNames(got), err)
		}
	}

	// A batch of links alone stores them and advances the checkpoint; a
	// later batch of customers or contacts alone leaves them.
	alone := linkDoc(6, 11, 90)
	alone.Role = "seul"
	b = readmodel.Batch{Links: []readmodel.Link{alone}}
	commitBatch(t, s, b, 90)
	m.apply(b)
	if n, err := s.Checkpoint(ctx); err != nil || n != 90 {
		t.Errorf("Checkpoint after a batch of links = %d, %v; want 90", n, err)
	}
	wantCustomerContacts(t, s, "a batch of links alone", other.ID, []readmodel.LinkedContact{{Link: alone, Contact: contacts[10]}})
	renamed := contacts[10]
	renamed.Name, renamed.Seq, renamed.Version = "Aaron Renamed", 100, 2
	b = readmodel.Batch{Customers: []readmodel.Customer{doc(8, "Later Customer")}, Contacts: []readmodel.Contact{renamed}}
	commitBatch(t, s, b, 100)
	m.apply(b)
	wantCustomerContacts(t, s, "after a batch without links", other.ID, []readmodel.LinkedContact{{Link: alone, Contact: renamed}})
	m.check(t, s, "after a batch without links")
}

// contactDocIndex returns n of contactID(n).
func contactDocIndex(id string) int {
	var n int
	fmt.Sscanf(id[len(id)-12:], "%d", &n)
	return n
}

func customersOf(ls []readmodel.LinkedCustomer) []readmodel.Customer {
	out := make([]readmodel.Customer, len(ls))
	for i, l := range ls {
		out[i] = l.Customer
	}
	return out
}

// testLinkFilters: the lists leave out ended links, links to deleted or
// missing contacts (CustomerContacts), and links to deleted, merged or
// missing customers (ContactCustomers); each comes back when its other end
// does.
func testLinkFilters(t *testing.T, s readmodel.Store) {
	a, deleted, merged, d, late := doc(1, "Alpha Customer"), doc(2, "Bravo Deleted"), doc(3, "Charlie Merged"), doc(4, "Delta Live"), doc(5, "Echo Late")
	deleted.Deleted, deleted.Version = true, 2
	merged.MergedInto = a.ID
	a.Absorbed = []readmodel.Absorbed{{ID: merged.ID, Code: merged.Code}}
	c1, c2, c3, c4, c5 := contactDoc(1, "One Live"), contactDoc(2, "Two Ended"), contactDoc(3, "Three Deleted"), contactDoc(4, "Four Late"), contactDoc(5, "Zed Primary")
	c3.Deleted, c3.Version = true, 2
	l1, l2, l3, l4, l5 := linkDoc(1, 1, 10), endedLink(t, 1, 2, 11), linkDoc(1, 3, 12), linkDoc(1, 4, 13), linkDoc(1, 5, 14)
	l5.Primary, l5.Role = true, "principal"
	// Contact 1's links: to a live, a deleted, a merged and a missing
	// customer, and an ended one.
	ld, lm, ll, lx := linkDoc(2, 1, 20), linkDoc(3, 1, 21), linkDoc(4, 1, 22), linkDoc(5, 1, 23)
	le := endedLink(t, 4, 5, 24)
	commitBatch(t, s, readmodel.Batch{
		Customers: []readmodel.Customer{a, deleted, merged, d},
		Contacts:  []readmodel.Contact{c1, c2, c3, c5},
		Links:     []readmodel.Link{l1, l2, l3, l4, l5, ld, lm, ll, lx, le},
	}, 30)

	wantCustomerContacts(t, s, "filters", a.ID, []readmodel.LinkedContact{lc(l5, c5), lc(l1, c1)})
	wantContactCustomers(t, s, "filters", c1.ID, []readmodel.LinkedCustomer{lk(l1, a), lk(ll, d)})
	wantContactCustomers(t, s, "an ended link", c2.ID, nil)
	wantContactCustomers(t, s, "an ended link", c5.ID, []readmodel.LinkedCustomer{lk(l5, a)})
	wantCustomerContacts(t, s, "an ended link", d.ID, []readmodel.LinkedContact{lc(ll, c1)})

	// The missing ends arrive, the merged customer is taken out again:
	// their links are listed.
	unmerged := merged
	unmerged.MergedInto, unmerged.Seq, unmerged.Version = "", 40, 2
	a2 := a
	a2.Absorbed, a2.Seq, a2.Version = nil, 41, 2
	commitBatch(t, s, readmodel.Batch{Customers: []readmodel.Customer{late, unmerged, a2}, Contacts: []readmodel.Contact{c4}}, 41)
	wantCustomerContacts(t, s, "the missing contact arrived", a.ID, []readmodel.LinkedContact{lc(l5, c5), lc(l4, c4), lc(l1, c1)})
	wantContactCustomers(t, s, "the missing customer arrived, the merged one is back", c1.ID,
		[]readmodel.LinkedCustomer{lk(l1, a2), lk(lm, unmerged), lk(ll, d), lk(lx, late)})

	// Deleted and merged later: left out again.
	c4gone := c4
	c4gone.Deleted, c4gone.Seq, c4gone.Version = true, 50, 2
	dGone := d
	dGone.Deleted, dGone.Seq, dGone.Version = true, 51, 2
	lateMerged := late
	lateMerged.MergedInto, lateMerged.Seq, lateMerged.Version = a.ID, 52, 2
	a3 := a2
	a3.Absorbed, a3.Seq, a3.Version = []readmodel.Absorbed{{ID: late.ID, Code: late.Code}}, 52, 3
	commitBatch(t, s, readmodel.Batch{Customers: []readmodel.Customer{dGone, lateMerged, a3}, Contacts: []readmodel.Contact{c4gone}}, 52)
	wantCustomerContacts(t, s, "a contact deleted later", a.ID, []readmodel.LinkedContact{lc(l5, c5), lc(l1, c1)})
	wantContactCustomers(t, s, "customers deleted and merged later", c1.ID, []readmodel.LinkedCustomer{lk(l1, a3), lk(lm, unmerged)})
	wantContactCustomers(t, s, "the contact of a deleted customer", c5.ID, []readmodel.LinkedCustomer{lk(l5, a3)})
}

// testLinkIdempotent: a link document replaces the stored one of its
// (customer, contact) only if its Seq is higher, also an ended one (a late
// unlink never ends a newer link, a late link never revives an ended
// one); in one batch the highest Seq wins, in any order; PrepareLinks
// refuses a link without its ids, and CommitBatch the whole batch.
func testLinkIdempotent(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	a, b := doc(1, "Alpha Customer"), doc(2, "Bravo Customer")
	c1, c2, c3 := contactDoc(1, "One Contact"), contactDoc(2, "Two Contact"), contactDoc(3, "Three Contact")
	v1 := linkDoc(1, 1, 10)
	v1.Role, v1.From = "old", "2026-01-01"
	commitBatch(t, s, readmodel.Batch{Customers: []readmodel.Customer{a, b}, Contacts: []readmodel.Contact{c1, c2, c3}, Links: []readmodel.Link{v1}}, 10)
	check := func(what string, aContacts []readmodel.LinkedContact, c1Customers []readmodel.LinkedCustomer) {
		t.Helper()
		wantCustomerContacts(t, s, what, a.ID, aContacts)
		wantContactCustomers(t, s, what, c1.ID, c1Customers)
	}

	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{v1}}, 10) // the same again
	same := v1
	same.Role, same.Primary, same.LinkedBy = "same", true, "user-2"
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{same}}, 11) // another document, equal Seq
	lower := v1
	lower.Role, lower.Seq, lower.To = "lower", 9, "2026-02-01"
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{lower}}, 12)
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{endedLink(t, 1, 1, 8)}}, 13)  // a late unlink
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{endedLink(t, 1, 1, 10)}}, 14) // an unlink, equal Seq
	check("equal and lower Seq", []readmodel.LinkedContact{lc(v1, c1)}, []readmodel.LinkedCustomer{lk(v1, a)})

	v2 := v1
	v2.Role, v2.Primary, v2.To, v2.Seq, v2.LinkedAt, v2.LinkedBy = "new", true, "2026-06-30", 20, base.Add(time.Hour+time.Nanosecond), "user-2"
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{v2}}, 20)
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{v1, endedLink(t, 1, 1, 15)}}, 21) // older documents, newer checkpoint
	check("a higher Seq, then older documents", []readmodel.LinkedContact{lc(v2, c1)}, []readmodel.LinkedCustomer{lk(v2, a)})

	end := endedLink(t, 1, 1, 30)
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{end}}, 30)
	check("ended", nil, nil)
	late := v2
	late.Role, late.Seq = "late", 29
	again := v2
	again.Role, again.Seq = "equal", 30
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{v1, v2}}, 31) // a late link and change
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{late}}, 32)
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{again}}, 33)
	check("ended, after late links", nil, nil)

	relinked := linkDoc(1, 1, 40)
	relinked.Role = "relinked"
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{relinked}}, 40)
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{end}}, 41) // the old unlink again
	check("linked again", []readmodel.LinkedContact{lc(relinked, c1)}, []readmodel.LinkedCustomer{lk(relinked, a)})

	// Several documents of one (customer, contact) in one batch, in any
	// order: the highest Seq wins, ended or not.
	g1, g2, g3 := linkDoc(1, 2, 50), endedLink(t, 1, 2, 51), linkDoc(1, 2, 52)
	g1.Role, g3.Role = "alpha", "gamma"
	h1, h2 := linkDoc(1, 3, 60), endedLink(t, 1, 3, 61)
	k1, k2, k3 := linkDoc(2, 1, 70), endedLink(t, 2, 1, 72), linkDoc(2, 1, 71)
	k1.Role, k3.Role = "k1", "k3"
	j1, j2 := endedLink(t, 2, 2, 80), linkDoc(2, 2, 81)
	j2.Role = "j2"
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{g3, h1, k1, g1, j1, k2, h2, g2, j2, k3}}, 81)
	check("batch with documents out of order", []readmodel.LinkedContact{lc(relinked, c1), lc(g3, c2)}, []readmodel.LinkedCustomer{lk(relinked, a)})
	wantCustomerContacts(t, s, "batch with documents out of order", b.ID, []readmodel.LinkedContact{lc(j2, c2)})
	wantContactCustomers(t, s, "batch with documents out of order", c2.ID, []readmodel.LinkedCustomer{lk(g3, a), lk(j2, b)})
	wantContactCustomers(t, s, "batch with documents out of order", c3.ID, nil)
	// A batch whose highest Seq of a pair is below the stored one.
	g0 := g1
	g0.Role, g0.Seq = "beta", 51
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{g0, endedLink(t, 1, 2, 49)}}, 82)
	wantContactCustomers(t, s, "batch older than the stored link", c2.ID, []readmodel.LinkedCustomer{lk(g3, a), lk(j2, b)})

	// PrepareLinks: the highest Seq of each pair, ids required, Seq in
	// range.
	got, err := readmodel.PrepareLinks([]readmodel.Link{g1, h1, g3, g2, h2})
	if err != nil {
		t.Fatalf("PrepareLinks: %v", err)
	}
	slices.SortFunc(got, func(x, y readmodel.Link) int { return cmp.Compare(x.Seq, y.Seq) })
	if len(got) != 2 || !reflect.DeepEqual(got[0], g3) || !reflect.DeepEqual(got[1], h2) {
		t.Errorf("PrepareLinks = %+v, want %+v and %+v", got, g3, h2)
	}
	noCustomer, noContact := linkDoc(1, 1, 90), linkDoc(1, 1, 90)
	noCustomer.CustomerID, noContact.ContactID = "", ""
	tooLarge := linkDoc(1, 3, math.MaxInt64+1)
	for name, bad := range map[string]readmodel.Link{
		"no customer id": noCustomer, "no contact id": noContact, "no ids": {Seq: 90}, "seq out of range": tooLarge,
	} {
		if _, err := readmodel.PrepareLinks([]readmodel.Link{linkDoc(1, 3, 90), bad}); !errors.Is(err, readmodel.ErrInternal) || fault.KindOf(err) != fault.Internal {
			t.Errorf("PrepareLinks with a link with %s = %v (kind %s), want ErrInternal", name, err, fault.KindOf(err))
		}
		// CommitBatch refuses the whole batch: nothing stored, the
		// checkpoint where it was.
		good := linkDoc(1, 3, 90)
		good.Role = "refused"
		fresh := contactDoc(4, "Four Refused")
		err := s.CommitBatch(ctx, readmodel.Batch{Contacts: []readmodel.Contact{fresh}, Links: []readmodel.Link{good, bad}}, 90)
		if !errors.Is(err, readmodel.ErrInternal) || fault.KindOf(err) != fault.Internal {
			t.Errorf("CommitBatch with a link with %s = %v (kind %s), want ErrInternal", name, err, fault.KindOf(err))
		}
		if n, err := s.Checkpoint(ctx); err != nil || n != 82 {
			t.Errorf("after a refused batch (%s): Checkpoint = %d, %v; want 82", name, n, err)
		}
		wantContactCustomers(t, s, "after a refused batch ("+name+")", c3.ID, nil)
		wantContactNotFound(t, s, fresh.ID)
	}
	check("after the refused batches", []readmodel.LinkedContact{lc(relinked, c1), lc(g3, c2)}, []readmodel.LinkedCustomer{lk(relinked, a)})
}

// testLinkRebuild: links written into a rebuild stay out of the live read
// model until Swap, which replaces the live links with them; Abort leaves
// the live ones as they were.
func testLinkRebuild(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	a, b := doc(1, "Alpha Customer"), doc(2, "Bravo Customer")
	c1, c2, c3 := contactDoc(1, "One Contact"), contactDoc(2, "Two Contact"), contactDoc(3, "Three Contact")
	la, lb := linkDoc(1, 1, 5), linkDoc(2, 2, 6)
	la.Role = "live"
	everything := readmodel.Batch{Customers: []readmodel.Customer{a, b}, Contacts: []readmodel.Contact{c1, c2, c3}}
	live := everything
	live.Links = []readmodel.Link{la, lb}
	commitBatch(t, s, live, 10)
	liveOnly := func(what string) {
		t.Helper()
		wantCustomerContacts(t, s, what, a.ID, []readmodel.LinkedContact{lc(la, c1)})
		wantCustomerContacts(t, s, what, b.ID, []readmodel.LinkedContact{lc(lb, c2)})
		wantContactCustomers(t, s, what, c1.ID, []readmodel.LinkedCustomer{lk(la, a)})
		wantContactCustomers(t, s, what, c2.ID, []readmodel.LinkedCustomer{lk(lb, b)})
		wantContactCustomers(t, s, what, c3.ID, nil)
	}

	// Abort.
	rb, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	lost := la
	lost.Role, lost.Seq, lost.Primary = "lost", 30, true
	lostBatch := everything
	lostBatch.Links = []readmodel.Link{lost, linkDoc(1, 3, 31), endedLink(t, 2, 2, 32)}
	commitBatch(t, rb, lostBatch, 50)
	liveOnly("before Abort")
	if err := rb.Abort(ctx); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	liveOnly("after Abort")

	// Swap.
	rb, err = s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("Rebuild after Abort: %v", err)
	}
	rebuilt := la
	rebuilt.Role, rebuilt.Seq, rebuilt.To = "rebuilt", 15, "2026-12-31"
	l3 := linkDoc(1, 3, 16)
	l3.Primary = true
	first := everything
	first.Links = []readmodel.Link{la, lb}
	commitBatch(t, rb, first, 10)
	commitBatch(t, rb, readmodel.Batch{Links: []readmodel.Link{rebuilt, l3, endedLink(t, 2, 2, 17)}}, 20)
	liveOnly("before Swap")
	liveLink := linkDoc(2, 3, 11) // the live projector goes on
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{liveLink}}, 11)
	if err := rb.Swap(ctx); err != nil {
		t.Fatalf("Swap: %v", err)
	}
	afterSwap := func(what string) {
		t.Helper()
		wantCustomerContacts(t, s, what, a.ID, []readmodel.LinkedContact{lc(l3, c3), lc(rebuilt, c1)})
		wantCustomerContacts(t, s, what, b.ID, nil)
		wantContactCustomers(t, s, what, c1.ID, []readmodel.LinkedCustomer{lk(rebuilt, a)})
		wantContactCustomers(t, s, what, c2.ID, nil)
		wantContactCustomers(t, s, what, c3.ID, []readmodel.LinkedCustomer{lk(l3, a)})
	}
	afterSwap("after Swap")
	// The swapped links keep their guard.
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{la, lb, endedLink(t, 1, 3, 12)}}, 21)
	afterSwap("after Swap, older documents")
	relinked := linkDoc(2, 2, 22)
	relinked.Role = "after swap"
	commitBatch(t, s, readmodel.Batch{Links: []readmodel.Link{relinked}}, 22)
	wantContactCustomers(t, s, "after Swap, a newer document", c2.ID, []readmodel.LinkedCustomer{lk(relinked, b)})
}
