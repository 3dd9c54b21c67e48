package readmodeltest

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"crm/internal/contact"
	"crm/internal/customer"
	"crm/internal/fault"
	"crm/internal/readmodel"
	"crm/internal/search"
)

// contactID returns the id of test contact n: a UUID whose order is not
// n's (a multiplicative hash leads it), so that ties broken by id are not
// broken by the order of insertion by accident.
func contactID(n int) string {
	return fmt.Sprintf("%08x-0000-4000-9000-%012d", uint32(n)*2654435761, n)
}

// contactDoc returns a live test contact n with defaults; Seq is n.
func contactDoc(n int, name string) readmodel.Contact {
	at := base.Add(time.Duration(n) * time.Second)
	return readmodel.Contact{
		ID: contactID(n), Name: name, Tags: []string{},
		CreatedBy: "user-1", CreatedAt: at, UpdatedBy: "user-1", UpdatedAt: at,
		Version: 1, Seq: uint64(n),
	}
}

func commitBatch(t *testing.T, w readmodel.Writer, b readmodel.Batch, checkpoint uint64) {
	t.Helper()
	if err := w.CommitBatch(t.Context(), b, checkpoint); err != nil {
		t.Fatalf("CommitBatch(%d customers, %d contacts, %d): %v", len(b.Customers), len(b.Contacts), checkpoint, err)
	}
}

func commitContacts(t *testing.T, w readmodel.Writer, docs []readmodel.Contact, checkpoint uint64) {
	t.Helper()
	commitBatch(t, w, readmodel.Batch{Contacts: docs}, checkpoint)
}

// normalizeContact returns c as every adapter must return it: times in
// UTC, tags never nil.
func normalizeContact(c readmodel.Contact) readmodel.Contact {
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	if c.Tags == nil {
		c.Tags = []string{}
	}
	return c
}

func sameContact(t *testing.T, what string, got, want readmodel.Contact) {
	t.Helper()
	if g, w := normalizeContact(got), normalizeContact(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func contactIDs(cs []readmodel.Contact) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func loadContacts(t *testing.T, w readmodel.Writer, ids ...string) map[string]readmodel.Contact {
	t.Helper()
	got, err := w.LoadContacts(t.Context(), ids)
	if err != nil {
		t.Fatalf("LoadContacts(%v): %v", ids, err)
	}
	return got
}

func listContacts(t *testing.T, r readmodel.Reader, q readmodel.ContactQuery) readmodel.ContactPage {
	t.Helper()
	p, err := r.ListContacts(t.Context(), q)
	if err != nil {
		t.Fatalf("ListContacts(%+v): %v", q, err)
	}
	return p
}

func wantContactNotFound(t *testing.T, r readmodel.Reader, id string) {
	t.Helper()
	c, err := r.GetContact(t.Context(), id)
	if !errors.Is(err, readmodel.ErrContactNotFound) || fault.KindOf(err) != fault.NotFound {
		t.Errorf("GetContact(%s) = %+v, %v (kind %s); want ErrContactNotFound", id, c, err, fault.KindOf(err))
	}
}

func wantContact(t *testing.T, r readmodel.Reader, what string, want readmodel.Contact) {
	t.Helper()
	c, err := r.GetContact(t.Context(), want.ID)
	if err != nil {
		t.Errorf("%s: GetContact(%s): %v", what, want.ID, err)
		return
	}
	sameContact(t, what+": GetContact", c, want)
	if c.Tags == nil {
		t.Errorf("%s: GetContact(%s): nil Tags", what, want.ID)
	}
}

// contactModel is the contacts of a read model, with the reference
// semantics of ListContacts.
type contactModel map[string]readmodel.Contact

func contactModelOf(docs []readmodel.Contact) contactModel {
	m := contactModel{}
	for _, d := range docs {
		if old, ok := m[d.ID]; !ok || d.Seq > old.Seq {
			m[d.ID] = d
		}
	}
	return m
}

func contactMatches(c readmodel.Contact, q readmodel.ContactQuery) bool {
	return !c.Deleted &&
		(q.Tag == "" || slices.Contains(c.Tags, q.Tag)) &&
		(q.Email == "" || strings.ToLower(c.Email) == strings.ToLower(q.Email)) &&
		(q.Text == "" || contactTextMatches(c, q.Text))
}

// contactTextMatches is the reference of a contact search: every word of
// the query (search.ParseQuery) a prefix of a word (search.Tokens) of the
// name, title or email.
func contactTextMatches(c readmodel.Contact, text string) bool {
	words, err := search.ParseQuery(text)
	if err != nil {
		return false
	}
	toks := slices.Concat(search.Tokens(c.Name), search.Tokens(c.Title), search.Tokens(c.Email))
	for _, w := range words {
		if !slices.ContainsFunc(toks, func(tok string) bool { return strings.HasPrefix(tok, w) }) {
			return false
		}
	}
	return true
}

// contactKey compares a and b by the sort key of sort alone (no
// tie-breaker, no direction).
func contactKey(sort string, a, b readmodel.ContactPosition) int {
	switch sort {
	case readmodel.SortCreatedAt, readmodel.SortUpdatedAt:
		return a.Time.Compare(b.Time)
	default:
		return strings.Compare(a.Name, b.Name)
	}
}

// compareContactPositions orders positions as ListContacts must for sort
// and desc: by the key, then by id, both reversed for desc.
func compareContactPositions(sort string, desc bool, a, b readmodel.ContactPosition) int {
	r := contactKey(sort, a, b)
	if r == 0 {
		r = strings.Compare(a.ID, b.ID)
	}
	if desc {
		r = -r
	}
	return r
}

// compareContacts orders contacts as ListContacts must: the position is
// computed here from the fields (search.Fold of the name, the times), not
// with readmodel.ContactPositionOf, so that the reference is independent.
func compareContacts(sort string, desc bool) func(a, b readmodel.Contact) int {
	pos := func(c readmodel.Contact) readmodel.ContactPosition {
		switch sort {
		case readmodel.SortCreatedAt:
			return readmodel.ContactPosition{Time: c.CreatedAt, ID: c.ID}
		case readmodel.SortUpdatedAt:
			return readmodel.ContactPosition{Time: c.UpdatedAt, ID: c.ID}
		}
		return readmodel.ContactPosition{Name: search.Fold(c.Name), ID: c.ID}
	}
	return func(a, b readmodel.Contact) int { return compareContactPositions(sort, desc, pos(a), pos(b)) }
}

// list returns every live contact matching q's filters, in q's order, and
// after q.After when it is set.
func (m contactModel) list(q readmodel.ContactQuery) []readmodel.Contact {
	out := []readmodel.Contact{}
	for _, c := range m {
		if contactMatches(c, q) {
			out = append(out, normalizeContact(c))
		}
	}
	slices.SortFunc(out, compareContacts(q.Sort, q.Desc))
	if q.After != nil {
		out = slices.DeleteFunc(out, func(c readmodel.Contact) bool {
			return compareContactPositions(q.Sort, q.Desc, readmodel.ContactPositionOf(c, q.Sort), *q.After) <= 0
		})
	}
	return out
}

// checkContactPage compares one page with the reference: want are all the
// matches from the page's start on, total the number of every match.
func checkContactPage(t *testing.T, what string, got readmodel.ContactPage, want []readmodel.Contact, limit, total int) {
	t.Helper()
	items := want[:min(len(want), limit)]
	if got.Total != int64(total) {
		t.Errorf("%s: Total = %d, want %d", what, got.Total, total)
	}
	if more := len(items) < len(want); got.More != more {
		t.Errorf("%s: More = %v, want %v", what, got.More, more)
	}
	if !slices.Equal(contactIDs(got.Items), contactIDs(items)) {
		t.Errorf("%s: items\n got %v\nwant %v", what, contactNames(got.Items), contactNames(items))
		return
	}
	for i := range got.Items {
		sameContact(t, what+" item "+got.Items[i].ID, got.Items[i], items[i])
	}
}

func contactNames(cs []readmodel.Contact) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name + "/" + c.ID[:8]
	}
	return out
}

// walkContacts reads every page of q from the first, each after the
// position (ContactPositionOf) of the last contact of the page before, and
// checks each against the reference, plus the page after the last contact.
func walkContacts(t *testing.T, what string, r readmodel.Reader, q readmodel.ContactQuery, m contactModel) {
	t.Helper()
	q.After = nil
	all := m.list(q)
	limit := q.Limit()
	start := 0
	for page := 1; ; page++ {
		if page > len(all)+2 {
			t.Fatalf("%s: the walk does not end after %d pages", what, page)
		}
		got := listContacts(t, r, q)
		checkContactPage(t, fmt.Sprintf("%s page %d", what, page), got, all[start:], limit, len(all))
		start += len(got.Items)
		if !got.More || len(got.Items) == 0 || start > len(all) || t.Failed() {
			break
		}
		pos := readmodel.ContactPositionOf(got.Items[len(got.Items)-1], q.Sort)
		q.After = &pos
	}
	if start != len(all) && !t.Failed() {
		t.Errorf("%s: the walk read %d contacts, want %d", what, start, len(all))
	}
	if len(all) > 0 { // past the last: nothing, and still the whole Total
		pos := readmodel.ContactPositionOf(all[len(all)-1], q.Sort)
		q.After = &pos
		checkContactPage(t, what+" after the last", listContacts(t, r, q), nil, limit, len(all))
	}
}

// testContactRoundTrip: CommitBatch stores contacts exactly (every field,
// unicode, nanoseconds, tombstones), beside the customers of the same batch
// and with its checkpoint; LoadContacts returns them all, GetContact the
// live ones, and contacts and customers never answer for each other.
func testContactRoundTrip(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	paris := time.FixedZone("CET", 3600)
	full := readmodel.Contact{
		ID: contactID(1), Name: "Zoë Ångström-Łukasz 東京",
		Email: "Zoë.Ångström+crm@Example.com", Phone: "+33 1 23 45 67 89",
		Title:     "Directrice générale — 東京支社",
		Notes:     "line 1\nline 2 ☕ \"quoted\" 'single' %_\\ $where {} ${x}",
		Tags:      []string{"vip", "北京", "with space", "ÄLG"},
		CreatedBy: "user-1", CreatedAt: base.In(paris),
		UpdatedBy: "user-2", UpdatedAt: base.Add(90*time.Minute + time.Nanosecond),
		Version: 3, Seq: 7,
	}
	minimal := contactDoc(2, "Al")
	minimal.Tags = nil // read back as an empty list
	minimal.UpdatedBy = ""
	tomb := contactDoc(3, "Gone Person")
	tomb.Email, tomb.Tags = "gone@example.com", []string{"vip"}
	tomb.Deleted, tomb.Version, tomb.Seq, tomb.UpdatedBy = true, 2, 9, "user-3"
	long := contactDoc(4, strings.Repeat("ñ", customer.MaxName))
	long.Email = strings.Repeat("e", 64) + "@" + strings.Repeat("d", 180) + ".example"
	long.Phone = "+1 (201) 555-0199 ext. 12345"
	long.Title = strings.Repeat("T", contact.MaxTitle)
	long.Notes = strings.Repeat("x", customer.MaxNotes)
	for i := range customer.MaxTags {
		long.Tags = append(long.Tags, fmt.Sprintf("tag-%02d-%s", i, strings.Repeat("ü", customer.MaxTagLength-7)))
	}
	// Before 1970, to the nanosecond (a BSON date is signed milliseconds).
	long.CreatedAt = time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC)
	long.UpdatedAt = time.Date(2200, 1, 2, 3, 4, 5, 6, time.UTC)
	long.Version, long.Seq = 1<<40, math.MaxInt64 // the largest a store must keep
	contacts := []readmodel.Contact{full, minimal, tomb, long}
	customers := []readmodel.Customer{doc(1, "Customer One"), doc(2, "Customer Two")}
	commitBatch(t, s, readmodel.Batch{Customers: customers, Contacts: contacts}, 9)

	if n, err := s.Checkpoint(ctx); err != nil || n != 9 {
		t.Errorf("Checkpoint after a batch of both = %d, %v; want 9", n, err)
	}
	missing := contactID(99)
	got := loadContacts(t, s, full.ID, minimal.ID, tomb.ID, long.ID, missing, customers[0].ID)
	if len(got) != len(contacts) {
		t.Errorf("LoadContacts returned %d documents, want %d", len(got), len(contacts))
	}
	for _, id := range []string{missing, customers[0].ID} {
		if _, ok := got[id]; ok {
			t.Errorf("LoadContacts returned a document for %s, which is no contact", id)
		}
	}
	for _, d := range contacts {
		sameContact(t, "LoadContacts "+d.ID, got[d.ID], d)
		if c, ok := got[d.ID]; ok && c.Tags == nil {
			t.Errorf("LoadContacts %s: nil Tags", d.ID)
		}
	}
	if got, err := s.LoadContacts(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("LoadContacts(nil) = %v, %v; want empty", got, err)
	}

	for _, d := range []readmodel.Contact{full, minimal, long} {
		wantContact(t, s, "live contact", d)
	}
	wantContactNotFound(t, s, tomb.ID)
	wantContactNotFound(t, s, missing)
	wantContactNotFound(t, s, customers[0].ID)
	wantContactNotFound(t, s, "")

	// The customers of the batch are stored too, and only they are
	// customers.
	cs, err := s.Load(ctx, []string{customers[0].ID, customers[1].ID, full.ID})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(cs) != 2 {
		t.Errorf("Load of the batch's customers and a contact: %d documents, want 2", len(cs))
	}
	for _, c := range customers {
		sameDoc(t, "Load customer of a batch", cs[c.ID], c)
	}
	wantNotFound(t, s, full.ID)
	if p := list(t, s, readmodel.Query{Page: 1, PerPage: 10}); p.Total != 2 || !slices.Equal(codes(p.Items), []string{"C001", "C002"}) {
		t.Errorf("List customers = %v (total %d), want C001 C002", codes(p.Items), p.Total)
	}
	if scan, err := s.Scan(ctx, "", 100); err != nil || len(scan) != 2 {
		t.Errorf("Scan = %d documents, %v; want the 2 customers", len(scan), err)
	}
	m := contactModelOf(contacts)
	q := readmodel.ContactQuery{PerPage: 10}
	checkContactPage(t, "ListContacts", listContacts(t, s, q), m.list(q), 10, 3)

	// A batch of customers alone leaves the contacts; a batch of contacts
	// with an older checkpoint stores them and keeps the checkpoint; an
	// empty batch advances it.
	commitBatch(t, s, readmodel.Batch{Customers: []readmodel.Customer{doc(3, "Customer Three")}}, 11)
	checkContactPage(t, "ListContacts after a batch of customers", listContacts(t, s, q), m.list(q), 10, 3)
	late := contactDoc(5, "Late Contact")
	commitContacts(t, s, []readmodel.Contact{late}, 6)
	wantContact(t, s, "contact of a batch with an older checkpoint", late)
	if n, err := s.Checkpoint(ctx); err != nil || n != 11 {
		t.Errorf("Checkpoint after an older one = %d, %v; want 11", n, err)
	}
	commitBatch(t, s, readmodel.Batch{}, 12)
	if n, err := s.Checkpoint(ctx); err != nil || n != 12 {
		t.Errorf("Checkpoint after an empty batch = %d, %v; want 12", n, err)
	}
	if _, err := s.Get(ctx, customerID(3)); err != nil {
		t.Errorf("Get of a customer of a batch: %v", err)
	}
}

// testContactIdempotent: a contact document replaces the stored one only
// if its Seq is higher; a tombstone hides the contact from GetContact and
// from every list, count and filter.
func testContactIdempotent(t *testing.T, s readmodel.Store) {
	keeper := contactDoc(50, "Keeper Person")
	keeper.Tags, keeper.Email = []string{"new", "old"}, "NEW@example.com"
	v1 := contactDoc(1, "Oldname Person")
	v1.Tags, v1.Email, v1.Seq = []string{"old"}, "old@example.com", 5
	commitContacts(t, s, []readmodel.Contact{keeper, v1}, 5)
	check := func(what string, want readmodel.Contact) {
		t.Helper()
		sameContact(t, what+": LoadContacts", loadContacts(t, s, want.ID)[want.ID], want)
		if want.Deleted {
			wantContactNotFound(t, s, want.ID)
		} else {
			wantContact(t, s, what, want)
		}
	}
	// totals checks the number of matches of each filter, in every order.
	totals := func(what string, want map[readmodel.ContactQuery][]readmodel.Contact) {
		t.Helper()
		for f, items := range want {
			for _, sort := range readmodel.ContactSorts {
				for _, desc := range []bool{false, true} {
					q := f
					q.Sort, q.Desc, q.PerPage = sort, desc, 10
					slices.SortFunc(items, compareContacts(sort, desc))
					checkContactPage(t, fmt.Sprintf("%s: ListContacts %+v", what, q), listContacts(t, s, q), items, 10, len(items))
				}
			}
		}
	}

	commitContacts(t, s, []readmodel.Contact{v1}, 5) // the same again
	same := v1
	same.Name, same.Tags, same.Email = "Sameseq Person", []string{"same"}, "same@example.com"
	commitContacts(t, s, []readmodel.Contact{same}, 6) // another document, equal Seq
	lower := v1
	lower.Name, lower.Tags, lower.Seq = "Lower Person", []string{"lower"}, 4
	commitContacts(t, s, []readmodel.Contact{lower}, 7) // a lower Seq
	check("equal and lower Seq", v1)
	totals("equal and lower Seq", map[readmodel.ContactQuery][]readmodel.Contact{
		{}:                          {keeper, v1},
		{Tag: "old"}:                {keeper, v1},
		{Tag: "same"}:               {},
		{Tag: "lower"}:              {},
		{Email: "SAME@example.com"}: {},
	})

	v2 := v1
	v2.Name, v2.Tags, v2.Email, v2.Title = "Newname Person", []string{"new"}, "New@Example.com", "Boss"
	v2.Version, v2.Seq, v2.UpdatedAt, v2.UpdatedBy = 2, 8, base.Add(time.Hour), "user-2"
	commitContacts(t, s, []readmodel.Contact{v2}, 8)
	commitContacts(t, s, []readmodel.Contact{v1}, 9) // older document, newer checkpoint
	check("a higher Seq, then an older document", v2)
	totals("after the update", map[readmodel.ContactQuery][]readmodel.Contact{
		{}:                         {keeper, v2},
		{Tag: "old"}:               {keeper},
		{Tag: "new"}:               {keeper, v2},
		{Email: "old@example.com"}: {},
		{Email: "new@example.com"}: {keeper, v2},
	})

	tomb := v2
	tomb.Deleted, tomb.Version, tomb.Seq, tomb.UpdatedAt = true, 3, 12, base.Add(2*time.Hour)
	commitContacts(t, s, []readmodel.Contact{tomb}, 12)
	commitContacts(t, s, []readmodel.Contact{v1, v2}, 13) // a late create and update
	check("tombstone after late documents", tomb)
	totals("after the deletion", map[readmodel.ContactQuery][]readmodel.Contact{
		{}:                                     {keeper},
		{Tag: "new"}:                           {keeper},
		{Tag: "old"}:                           {keeper},
		{Email: "new@example.com"}:             {keeper},
		{Tag: "new", Email: "NEW@EXAMPLE.COM"}: {keeper},
	})

	// Several versions of one contact in one batch, in any order: the
	// highest Seq wins.
	a1 := contactDoc(2, "Alpha")
	a1.Seq = 20
	a2, a3 := a1, a1
	a2.Name, a2.Seq, a2.Version, a2.Tags = "Beta", 21, 2, []string{"beta"}
	a3.Name, a3.Seq, a3.Version, a3.Tags = "Gamma", 22, 3, []string{"gamma"}
	commitContacts(t, s, []readmodel.Contact{a3, a1, a2}, 22)
	check("batch with versions out of order", a3)
	b1 := contactDoc(3, "Delta")
	b1.Seq = 30
	b2 := b1
	b2.Name, b2.Seq, b2.Version, b2.Deleted = "Delta", 31, 2, true
	commitContacts(t, s, []readmodel.Contact{b1, b2}, 31)
	check("batch with a create and its deletion", b2)
	totals("after the batches", map[readmodel.ContactQuery][]readmodel.Contact{
		{}:             {keeper, a3},
		{Tag: "beta"}:  {},
		{Tag: "gamma"}: {a3},
	})
}

// contactListData returns a fixed set of contacts with every kind of tie:
// names equal after folding, equal times, times that differ in nanoseconds
// within one millisecond, emails that differ in case, tags that differ in
// case, and tombstones that match the filters.
func contactListData() []readmodel.Contact {
	names := []string{"anna", "Anna", "Ánna", "Bob Lee", "bob lee", "Zoë", "Zoe", "Émile", "emile", "Łukasz", "Mary", "東京 太郎", "😀 Smile"}
	// Emails equal under strings.ToLower (the Kelvin sign lower-cases to
	// k), and ones that only a collation or a pattern would confuse.
	emails := []string{"ann@example.com", "ANN@Example.COM", "", "Åsa@Exempel.se", "åsa@EXEMPEL.SE",
		"a.b+c@example.com", "aXb+c@example.com", "straße@example.de", "STRASSE@example.de",
		"\u212Aelvin@example.com", "Kelvin@Example.com", "bob@example.com"}
	// Instants on both sides of millisecond boundaries, to the nanosecond.
	second := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	offsets := []time.Duration{-time.Nanosecond, 0, time.Nanosecond}
	tags := []string{"vip", "VIP", "Älg", "b2b"}
	var docs []readmodel.Contact
	for i := range 30 {
		c := contactDoc(i+1, names[i%len(names)])
		c.Email = emails[i%len(emails)]
		c.Title = fmt.Sprintf("Title %d", i)
		c.CreatedBy, c.UpdatedBy = users[i%len(users)], users[(i+1)%len(users)]
		c.CreatedAt = second.Add(time.Duration(i%5)*time.Millisecond + offsets[i%3])
		c.UpdatedAt = base.Add(time.Duration(i%7)*time.Hour + time.Duration(i%4)*time.Microsecond + time.Duration(i%2)*time.Nanosecond)
		for j, tag := range tags {
			if (i>>j)&1 == 1 {
				c.Tags = append(c.Tags, tag)
			}
		}
		c.Deleted = i%9 == 8
		c.Version = uint64(1 + i%3)
		docs = append(docs, c)
	}
	return docs
}

// testContactList: ListContacts in every order, with and without filters,
// paged with After, gives the reference order page after page, with exact
// totals, More exactly before the last page, ties broken by id.
func testContactList(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	docs := contactListData()
	commitBatch(t, s, readmodel.Batch{Customers: []readmodel.Customer{doc(1, "anna")}, Contacts: docs}, 100)
	m := contactModelOf(docs)

	// The data exercise what they should: every order has ties on its key,
	// every filter matches some but not every contact.
	for _, sort := range readmodel.ContactSorts {
		all := m.list(readmodel.ContactQuery{Sort: sort})
		ties := 0
		for i := 1; i < len(all); i++ {
			if contactKey(sort, readmodel.ContactPositionOf(all[i-1], sort), readmodel.ContactPositionOf(all[i], sort)) == 0 {
				ties++
			}
		}
		if ties == 0 {
			t.Fatalf("test data: no ties in the order by %s", sort)
		}
	}

	run := func(name string, q readmodel.ContactQuery) {
		t.Run(name, func(t *testing.T) { walkContacts(t, fmt.Sprintf("ListContacts %+v", q), s, q, m) })
	}
	live := len(m.list(readmodel.ContactQuery{}))
	filters := []struct {
		name string
		q    readmodel.ContactQuery
	}{
		{"all", readmodel.ContactQuery{}},
		{"tag", readmodel.ContactQuery{Tag: "vip"}},
		{"email", readmodel.ContactQuery{Email: "Ann@example.COM"}},
		{"tag and email", readmodel.ContactQuery{Tag: "vip", Email: "ann@EXAMPLE.com"}},
	}
	for _, f := range filters {
		if n := len(m.list(f.q)); f.name != "all" && (n == 0 || n == live) {
			t.Fatalf("test data: filter %s matches %d of %d", f.name, n, live)
		}
		for _, sort := range readmodel.ContactSorts {
			for _, desc := range []bool{false, true} {
				for _, per := range []int{2, 3} {
					q := f.q
					q.Sort, q.Desc, q.PerPage = sort, desc, per
					run(fmt.Sprintf("%s/%s desc=%v per=%d", f.name, sort, desc, per), q)
				}
			}
		}
	}
	// More filters, exact (tags by case, emails whole), in every order.
	for _, f := range []struct {
		name string
		q    readmodel.ContactQuery
	}{
		{"tag other case", readmodel.ContactQuery{Tag: "VIP"}},
		{"unicode tag", readmodel.ContactQuery{Tag: "Älg"}},
		{"unicode email", readmodel.ContactQuery{Email: "ÅSA@exempel.se"}},
		{"kelvin sign", readmodel.ContactQuery{Email: "kelvin@example.COM"}},
		{"email with pattern characters", readmodel.ContactQuery{Email: "A.B+C@example.com"}},
		{"sharp s", readmodel.ContactQuery{Email: "strasse@EXAMPLE.de"}},
		{"part of an email", readmodel.ContactQuery{Email: "ann"}},
		{"unknown tag", readmodel.ContactQuery{Tag: "no-such-tag"}},
		{"unknown email", readmodel.ContactQuery{Email: "nobody@example.com"}},
	} {
		for _, sort := range readmodel.ContactSorts {
			for _, desc := range []bool{false, true} {
				q := f.q
				q.Sort, q.Desc, q.PerPage = sort, desc, 3
				run(fmt.Sprintf("%s/%s desc=%v", f.name, sort, desc), q)
			}
		}
	}
	for email, want := range map[string]int{"ÅSA@exempel.se": 6, "kelvin@example.COM": 4, "A.B+C@example.com": 2, "strasse@EXAMPLE.de": 1} {
		if n := len(m.list(readmodel.ContactQuery{Email: email})); n != want {
			t.Fatalf("test data: email %s matches %d contacts, want %d", email, n, want)
		}
	}
	// The default order is by name (the reference and ContactPositionOf
	// take "" for it).
	for _, desc := range []bool{false, true} {
		run(fmt.Sprintf("default sort desc=%v", desc), readmodel.ContactQuery{PerPage: 4, Desc: desc})
	}
	// After may be any position, also one no live contact has (a
	// tombstone's): the page is the contacts strictly after it.
	for _, d := range docs {
		if !d.Deleted {
			continue
		}
		for _, sort := range readmodel.ContactSorts {
			for _, desc := range []bool{false, true} {
				pos := readmodel.ContactPositionOf(d, sort)
				q := readmodel.ContactQuery{PerPage: 3, Sort: sort, Desc: desc, After: &pos}
				checkContactPage(t, fmt.Sprintf("ListContacts after a tombstone %+v", q), listContacts(t, s, q), m.list(q), 3, live)
			}
		}
	}
	// Page sizes: unset and negative are DefaultPerPage, too large is
	// clamped.
	for _, per := range []int{0, -1, readmodel.MaxPerPage + 1} {
		q := readmodel.ContactQuery{PerPage: per, Sort: readmodel.SortCreatedAt}
		t.Run(fmt.Sprintf("per page %d", per), func(t *testing.T) {
			walkContacts(t, fmt.Sprintf("ListContacts %+v", q), s, q, m)
		})
	}
	if live <= readmodel.DefaultPerPage {
		t.Fatalf("test data: %d live contacts, too few to see the default page size", live)
	}
	// An unknown order is the caller's mistake.
	for _, sort := range []string{readmodel.SortCustomerCode, "bogus", "Name", "name "} {
		_, err := s.ListContacts(ctx, readmodel.ContactQuery{Sort: sort, PerPage: 3})
		if fault.KindOf(err) != fault.Invalid {
			t.Errorf("ListContacts with sort %q: %v (kind %s), want an invalid error", sort, err, fault.KindOf(err))
		}
	}
}

// testContactPerPage: more than MaxPerPage matches are listed MaxPerPage
// at a time, whatever larger page size is asked for.
func testContactPerPage(t *testing.T, s readmodel.Store) {
	var docs []readmodel.Contact
	for i := range readmodel.MaxPerPage + 5 {
		c := contactDoc(i+1, fmt.Sprintf("Bulk %03d", i%37))
		c.CreatedAt = base.Add(time.Duration(i%11) * time.Millisecond)
		docs = append(docs, c)
	}
	commitContacts(t, s, docs, uint64(len(docs)))
	m := contactModelOf(docs)
	for _, per := range []int{readmodel.MaxPerPage + 1, 1 << 30} {
		q := readmodel.ContactQuery{PerPage: per, Sort: readmodel.SortCreatedAt, Desc: true}
		walkContacts(t, fmt.Sprintf("ListContacts %+v", q), s, q, m)
	}
}

// testContactRebuild: contacts written into a rebuild stay out of the live
// read model until Swap, which replaces the live contacts with them; Abort
// leaves the live ones as they were.
func testContactRebuild(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	alice := contactDoc(1, "Alice Live")
	alice.Tags, alice.Email = []string{"vip"}, "alice@example.com"
	arthur := contactDoc(2, "Arthur Only")
	cust := doc(1, "Customer Live")
	commitBatch(t, s, readmodel.Batch{Customers: []readmodel.Customer{cust}, Contacts: []readmodel.Contact{alice, arthur}}, 10)
	liveOnly := func(what string) {
		t.Helper()
		wantContact(t, s, what, alice)
		wantContact(t, s, what, arthur)
		for _, n := range []int{3, 4} {
			wantContactNotFound(t, s, contactID(n))
		}
		q := readmodel.ContactQuery{PerPage: 10}
		checkContactPage(t, what+": ListContacts", listContacts(t, s, q), []readmodel.Contact{alice, arthur}, 10, 2)
		for _, f := range []readmodel.ContactQuery{{Tag: "vip"}, {Email: "ALICE@example.com"}} {
			f.PerPage = 10
			checkContactPage(t, fmt.Sprintf("%s: ListContacts %+v", what, f), listContacts(t, s, f), []readmodel.Contact{alice}, 10, 1)
		}
		if q := (readmodel.ContactQuery{PerPage: 10, Tag: "rebuilt"}); listContacts(t, s, q).Total != 0 {
			t.Errorf("%s: the rebuild's tag is listed", what)
		}
		checkContactPage(t, what+": search", listContacts(t, s, readmodel.ContactQuery{PerPage: 10, Text: "alice"}), []readmodel.Contact{alice}, 10, 1)
	}

	// Abort.
	rb, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if got := loadContacts(t, rb, alice.ID, arthur.ID); len(got) != 0 {
		t.Errorf("new rebuild: LoadContacts = %v, want empty", got)
	}
	lost := alice
	lost.Name, lost.Tags, lost.Seq, lost.Version = "Alice Lost", []string{"rebuilt"}, 30, 2
	commitContacts(t, rb, []readmodel.Contact{lost, contactDoc(3, "Bob Lost")}, 50)
	liveOnly("before Abort")
	if err := rb.Abort(ctx); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	liveOnly("after Abort")
	if n, _ := s.Checkpoint(ctx); n != 10 {
		t.Errorf("after Abort: Checkpoint = %d, want 10", n)
	}

	// Swap.
	rb, err = s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("Rebuild after Abort: %v", err)
	}
	if got := loadContacts(t, rb, alice.ID, contactID(3)); len(got) != 0 {
		t.Errorf("Rebuild after Abort: LoadContacts = %v, want empty", got)
	}
	newAlice := alice
	newAlice.Name, newAlice.Tags, newAlice.Email = "Alice Rebuilt", []string{"rebuilt"}, "alice@rebuilt.example"
	newAlice.Version, newAlice.Seq, newAlice.UpdatedAt = 2, 15, base.Add(time.Hour+time.Nanosecond)
	bob := contactDoc(3, "Bob Fresh")
	bob.Seq = 16
	commitContacts(t, rb, []readmodel.Contact{alice}, 10)
	commitBatch(t, rb, readmodel.Batch{Customers: []readmodel.Customer{cust}, Contacts: []readmodel.Contact{newAlice, bob}}, 20)
	got := loadContacts(t, rb, alice.ID, arthur.ID, bob.ID)
	if len(got) != 2 {
		t.Errorf("rebuild LoadContacts: %d documents, want 2", len(got))
	}
	sameContact(t, "rebuild LoadContacts", got[newAlice.ID], newAlice)
	sameContact(t, "rebuild LoadContacts", got[bob.ID], bob)
	liveOnly("before Swap")
	commitContacts(t, s, []readmodel.Contact{contactDoc(4, "Live Only")}, 11) // the live projector goes on
	if err := rb.Swap(ctx); err != nil {
		t.Fatalf("Swap: %v", err)
	}
	wantContact(t, s, "after Swap", newAlice)
	wantContact(t, s, "after Swap", bob)
	wantContactNotFound(t, s, arthur.ID)
	wantContactNotFound(t, s, contactID(4))
	q := readmodel.ContactQuery{PerPage: 10}
	checkContactPage(t, "after Swap: ListContacts", listContacts(t, s, q), []readmodel.Contact{newAlice, bob}, 10, 2)
	for _, c := range []struct {
		q    readmodel.ContactQuery
		want []readmodel.Contact
	}{
		{readmodel.ContactQuery{Tag: "rebuilt"}, []readmodel.Contact{newAlice}},
		{readmodel.ContactQuery{Tag: "vip"}, nil},
		{readmodel.ContactQuery{Email: "alice@example.com"}, nil},
		{readmodel.ContactQuery{Email: "Alice@Rebuilt.example"}, []readmodel.Contact{newAlice}},
	} {
		c.q.PerPage = 10
		checkContactPage(t, fmt.Sprintf("after Swap: ListContacts %+v", c.q), listContacts(t, s, c.q), c.want, 10, len(c.want))
	}
	if c, err := s.Get(ctx, cust.ID); err != nil || c.Name != cust.Name {
		t.Errorf("after Swap: Get customer = %+v, %v", c, err)
	}
	if n, err := s.Checkpoint(ctx); err != nil || n != 20 {
		t.Errorf("after Swap: Checkpoint = %d, %v; want 20", n, err)
	}
	// The swapped contacts keep their guard.
	commitContacts(t, s, []readmodel.Contact{alice}, 21)
	wantContact(t, s, "after Swap, an older document", newAlice)
}

// testContactSearch: ListContacts with Text finds the contacts whose name,
// title or email has a word starting with each query word (case- and
// accent-insensitive), in name order, paged with After, with the tag
// filter, exact totals; a changed name or title is found by its new words
// only, a deleted contact by none; a search with an email filter or in
// another order is fault.Invalid, an empty or too long one a search error.
func testContactSearch(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	docs := contactListData()
	extra := []struct{ name, title, email string }{
		{"José Álvarez", "CFO", "jose@acme.example"},
		{"Ann Lee", "Chief Executive", "ann.lee@acme.example"},
		{"Annabel Smith", "Buyer", ""},
		{"Smith Annabel", "", "as@globex.example"},
		{"O'Brien-Smythe", "Head of IT", "obrien@globex.example"},
	}
	for i, x := range extra {
		c := contactDoc(100+i, x.name)
		c.Title, c.Email, c.Tags = x.title, x.email, []string{"vip"}[:i%2]
		docs = append(docs, c)
	}
	commitBatch(t, s, readmodel.Batch{Contacts: docs}, 100)
	m := contactModelOf(docs)
	queries := []string{"ann", "ANN", "ánn", "anna", "annabel smith", "smith annabel", "title 1", "title", "example com",
		"jose", "JOSÉ álv", "cfo", "chief exec", "acme", "globex obrien", "o brien", "smythe", "smile", "zoe", "emile",
		"東京", "łukasz", "lukasz", "strasse", "e", "nobody", "ann zzz"}
	hits := 0
	for _, text := range queries {
		for _, q := range []readmodel.ContactQuery{{Text: text, PerPage: 100}, {Text: text, PerPage: 1}, {Text: text, PerPage: 3, Tag: "vip"}} {
			hits += len(m.list(q))
			walkContacts(t, fmt.Sprintf("search %q (perPage %d, tag %q)", text, q.PerPage, q.Tag), s, q, m)
		}
	}
	if hits == 0 || len(m.list(readmodel.ContactQuery{Text: "nobody"})) != 0 || len(m.list(readmodel.ContactQuery{Text: "jose"})) != 1 ||
		len(m.list(readmodel.ContactQuery{Text: "ann"})) < 5 {
		t.Fatalf("test data: the queries do not exercise the search (%d hits)", hits)
	}

	// A renamed contact is found by its new name only; a deleted one not.
	renamed := m[contactID(100)]
	renamed.Name, renamed.Title, renamed.Seq, renamed.Version = "Josefina Ortega", "CEO", 200, renamed.Version+1
	gone := m[contactID(101)]
	gone.Deleted, gone.Seq, gone.Version = true, 201, gone.Version+1
	commitBatch(t, s, readmodel.Batch{Contacts: []readmodel.Contact{renamed, gone}}, 201)
	m[renamed.ID], m[gone.ID] = renamed, gone
	for _, text := range []string{"alvarez", "cfo", "josefina", "ceo", "jose", "ann lee", "chief"} {
		walkContacts(t, "after the rename: search "+text, s, readmodel.ContactQuery{Text: text, PerPage: 2}, m)
	}
	if len(m.list(readmodel.ContactQuery{Text: "alvarez"})) != 0 || len(m.list(readmodel.ContactQuery{Text: "josefina"})) != 1 {
		t.Fatal("test data: the rename does not change what is found")
	}

	// Queries a store cannot answer.
	for _, q := range []readmodel.ContactQuery{{Text: "ann", Email: "ann@example.com"}, {Text: "ann", Sort: readmodel.SortCreatedAt},
		{Text: "ann", Desc: true}} {
		if _, err := s.ListContacts(ctx, q); fault.KindOf(err) != fault.Invalid {
			t.Errorf("ListContacts(%+v) = %v, want fault.Invalid", q, err)
		}
	}
	if _, err := s.ListContacts(ctx, readmodel.ContactQuery{Text: " -- "}); !errors.Is(err, search.ErrEmptyQuery) {
		t.Errorf("a search without words: %v", err)
	}
	if _, err := s.ListContacts(ctx, readmodel.ContactQuery{Text: strings.Repeat("a", search.MaxQueryRunes+1)}); !errors.Is(err, search.ErrQueryTooLong) {
		t.Errorf("a search too long: %v", err)
	}
}
