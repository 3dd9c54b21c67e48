// Package readmodeltest is the conformance suite of readmodel.Store: every
// adapter runs it (the SQLite store always; the MongoDB store against an
// in-process FerretDB, and against a real MongoDB when one is configured),
// which is what makes them interchangeable.
//
// The reference semantics of List and Search are an in-memory model built on
// package search (Fold, CodeNumber, ParseQuery, Score). The data stay small
// (at most a few hundred documents per test) because FerretDB is slow.
package readmodeltest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"crm/internal/customer"
	"crm/internal/dedupe"
	"crm/internal/fault"
	"crm/internal/readmodel"
	"crm/internal/search"
)

// Option adjusts the suite for an adapter.
type Option func(*options)

type options struct {
	customers, events int
	only              map[string]bool // nil: every subtest
}

// RandomScale sets the size of the randomized subtest (default 150
// customers, 250 events per batch source); slow servers (FerretDB scans every
// document on each write) use less.
func RandomScale(customers, events int) Option {
	return func(o *options) { o.customers, o.events = customers, events }
}

// Only runs the named subtests alone (for a second run of the suite in
// another configuration of the same store, where the others would repeat).
func Only(names ...string) Option {
	return func(o *options) {
		o.only = map[string]bool{}
		for _, n := range names {
			o.only[n] = true
		}
	}
}

// Run runs every subtest on stores made by open. open returns a new, empty
// store and a function that opens another Store on the same read model (as
// a second process would).
func Run(t *testing.T, open func(t *testing.T) (readmodel.Store, func() readmodel.Store), opts ...Option) {
	o := options{customers: 150, events: 250}
	for _, f := range opts {
		f(&o)
	}
	if o.only != nil && len(o.only) == 0 {
		t.Fatal("readmodeltest.Only names no subtest")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s readmodel.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Idempotent", testIdempotent},
		{"Checkpoint", testCheckpoint},
		{"ListFiltersAndSorts", testListFiltersAndSorts},
		{"PagePastEnd", testPagePastEnd},
		{"SearchSemantics", testSearchSemantics},
		{"SearchRanking", testSearchRanking},
		{"SearchWithFilters", testSearchWithFilters},
		{"DeletedNeverReturned", testDeleted},
		{"ScanKeyset", testScan},
		{"KeysetUnderWrites", testKeysetUnderWrites},
		{"MergedCustomers", testMerged},
		{"ByEmail", testByEmail},
		{"ByExternalID", testByExternalID},
		{"Duplicates", testDuplicates},
		{"RebuildSwap", testRebuildSwap},
		{"RebuildAbort", testRebuildAbort},
		{"RebuildBehind", testRebuildBehind},
		{"RandomStreams", func(t *testing.T, s readmodel.Store) { testRandomStreams(t, s, o) }},
		{"ContactRoundTrip", testContactRoundTrip},
		{"ContactIdempotent", testContactIdempotent},
		{"ContactList", testContactList},
		{"ContactPerPage", testContactPerPage},
		{"ContactSearch", testContactSearch},
		{"ContactRebuild", testContactRebuild},
		{"LinkRoundTrip", testLinkRoundTrip},
		{"LinkFilters", testLinkFilters},
		{"LinkIdempotent", testLinkIdempotent},
		{"LinkRebuild", testLinkRebuild},
		{"ActivityRoundTrip", testActivityRoundTrip},
		{"ActivityIdempotent", testActivityIdempotent},
		{"TimelineOrder", testTimelineOrder},
		{"TimelineFollowsActivities", testTimelineFollowsActivities},
		{"TimelineRebuild", testTimelineRebuild},
	}
	for _, tc := range tests {
		if o.only != nil && !o.only[tc.name] {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			s, _ := open(t)
			tc.fn(t, s)
		})
	}
	if o.only == nil || o.only["RebuildOneAtATime"] {
		t.Run("RebuildOneAtATime", func(t *testing.T) { testRebuildOneAtATime(t, open) })
	}
}

// testRebuildOneAtATime: a second rebuild, from the same Store or from
// another one on the same read model, is refused while the first holds the
// lease; once it is swapped or aborted the next one may start.
func testRebuildOneAtATime(t *testing.T, open func(t *testing.T) (readmodel.Store, func() readmodel.Store)) {
	ctx := t.Context()
	s, again := open(t)
	other := again()
	commit(t, s, []readmodel.Customer{doc(1, "Live One")}, 1)
	rb, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	for name, st := range map[string]readmodel.Store{"same store": s, "another store": other} {
		if _, err := st.Rebuild(ctx); !errors.Is(err, readmodel.ErrRebuildInProgress) || fault.KindOf(err) != fault.Conflict {
			t.Errorf("second Rebuild (%s) = %v, want ErrRebuildInProgress", name, err)
		}
	}
	commit(t, rb, []readmodel.Customer{doc(1, "Rebuilt One")}, 1)
	if err := rb.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	rb2, err := other.Rebuild(ctx)
	if err != nil {
		t.Fatalf("Rebuild after the first was aborted: %v", err)
	}
	if n, err := rb2.Checkpoint(ctx); err != nil || n != 0 {
		t.Errorf("the next rebuild starts at checkpoint %d (%v), want an empty copy", n, err)
	}
	commit(t, rb2, []readmodel.Customer{doc(1, "Rebuilt Again")}, 1)
	if _, err := s.Rebuild(ctx); !errors.Is(err, readmodel.ErrRebuildInProgress) {
		t.Errorf("Rebuild during the second = %v, want ErrRebuildInProgress", err)
	}
	if err := rb2.Swap(ctx); err != nil {
		t.Fatalf("Swap: %v", err)
	}
	if c, err := s.Get(ctx, customerID(1)); err != nil || c.Name != "Rebuilt Again" {
		t.Errorf("after the swap: %+v %v", c, err)
	}
	rb3, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("Rebuild after a swap: %v", err)
	}
	if err := rb3.Abort(ctx); err != nil {
		t.Fatal(err)
	}
}

// doc returns a live test customer n with defaults; Seq is n.
func doc(n int, name string) readmodel.Customer {
	at := base.Add(time.Duration(n) * time.Second)
	return readmodel.Customer{
		ID: customerID(n), Code: code(n), Name: name,
		Type: customer.TypeIndividual, Status: customer.StatusLead, Tags: []string{},
		CreatedBy: "user-1", CreatedAt: at, UpdatedAt: at, Version: 1, Seq: uint64(n),
	}
}

func commit(t *testing.T, w readmodel.Writer, docs []readmodel.Customer, checkpoint uint64) {
	t.Helper()
	if err := w.Commit(t.Context(), docs, checkpoint); err != nil {
		t.Fatalf("Commit(%d docs, %d): %v", len(docs), checkpoint, err)
	}
}

func codes(cs []readmodel.Customer) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Code
	}
	return out
}

func sameDoc(t *testing.T, what string, got, want readmodel.Customer) {
	t.Helper()
	if g, w := normalize(got), normalize(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// samePage compares a page with the model's, items in order and exactly.
func samePage(t *testing.T, what string, got, want readmodel.Page) {
	t.Helper()
	if got.Total != want.Total || got.TotalAtLeast != want.TotalAtLeast {
		t.Errorf("%s: Total = %d (at least: %v), want %d (%v)", what, got.Total, got.TotalAtLeast, want.Total, want.TotalAtLeast)
	}
	if got.More != want.More {
		t.Errorf("%s: More = %v, want %v", what, got.More, want.More)
	}
	if got.Items == nil {
		t.Errorf("%s: Items is nil, want a (possibly empty) slice", what)
	}
	if !slices.Equal(codes(got.Items), codes(want.Items)) {
		t.Errorf("%s: items %v, want %v", what, codes(got.Items), codes(want.Items))
		return
	}
	for i := range got.Items {
		sameDoc(t, what+" item "+got.Items[i].Code, got.Items[i], want.Items[i])
	}
}

func list(t *testing.T, r readmodel.Reader, q readmodel.Query) readmodel.Page {
	t.Helper()
	p, err := r.List(t.Context(), q)
	if err != nil {
		t.Fatalf("List(%+v): %v", q, err)
	}
	return p
}

func find(t *testing.T, r readmodel.Reader, q readmodel.Query) readmodel.Page {
	t.Helper()
	p, err := r.Search(t.Context(), q)
	if err != nil {
		t.Fatalf("Search(%+v): %v", q, err)
	}
	return p
}

// testKeysetUnderWrites: customers created, deleted and changed between
// the pages of a keyset walk never make it repeat or skip a customer that
// existed throughout with the same sort key, in every order.
func testKeysetUnderWrites(t *testing.T, s readmodel.Store) {
	r := rand.New(rand.NewPCG(5, 14))
	for _, sort := range append([]string{""}, readmodel.Sorts...) {
		for _, desc := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s desc=%v", sort, desc), func(t *testing.T) {
				keysetUnderWrites(t, s, r, sort, desc)
			})
		}
	}
}

var keysetRound int

func keysetUnderWrites(t *testing.T, s readmodel.Store, r *rand.Rand, sort string, desc bool) {
	keysetRound++
	offset := keysetRound * 1000
	var docs []readmodel.Customer
	for i := range 40 {
		d := doc(offset+i, pick(r, firstNames)+" "+pick(r, lastNames))
		d.Seq = uint64(offset*10 + i)
		d.CreatedAt = base.Add(time.Duration(r.IntN(100)) * time.Minute) // ties happen
		d.UpdatedAt = d.CreatedAt
		d.Status = "walk" + strconv.Itoa(keysetRound)
		docs = append(docs, d)
	}
	commit(t, s, docs, uint64(offset*10+100))
	q := readmodel.Query{PerPage: 5, Sort: sort, Desc: desc, Status: "walk" + strconv.Itoa(keysetRound)}
	seen := map[string]int{}
	var last *readmodel.Position
	deleted := map[string]bool{}
	for page := 0; ; page++ {
		q.After = last
		if last == nil {
			q.Page = 1
		}
		p := list(t, s, q)
		for _, c := range p.Items {
			seen[c.ID]++
		}
		if len(p.Items) == 0 || (last != nil && !p.More) || (last == nil && len(p.Items) == int(p.Total)) {
			break
		}
		pos := readmodel.ListPosition(p.Items[len(p.Items)-1], sort)
		last = &pos
		if page == 1 { // between pages: new customers, deletions, changes that keep the sort key
			var w []readmodel.Customer
			for i := range 10 {
				d := doc(offset+100+i, pick(r, firstNames))
				d.Seq = uint64(offset*10 + 200 + i)
				d.CreatedAt = base.Add(time.Duration(r.IntN(100)) * time.Minute)
				d.UpdatedAt = d.CreatedAt
				d.Status = q.Status
				w = append(w, d)
			}
			for i, d := range docs {
				switch {
				case seen[d.ID] > 0:
				case i%7 == 0:
					d.Deleted, d.Version, d.Seq = true, 2, d.Seq+5000
					deleted[d.ID] = true
					w = append(w, d)
				case i%5 == 0:
					d.Notes, d.Version, d.Seq = "changed", 2, d.Seq+5000
					w = append(w, d)
				}
			}
			commit(t, s, w, uint64(offset*10+9000))
		}
	}
	for _, d := range docs {
		if n := seen[d.ID]; n > 1 || n == 0 && !deleted[d.ID] {
			t.Errorf("%s (%s): seen %d times", d.Code, d.Name, n)
		}
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("%s seen %d times", id, n)
		}
	}
}

// walkKeyset reads every page of q with keyset paging, from the start
// until a page says no more follow, and returns the customers in order.
func walkKeyset(t *testing.T, q readmodel.Query, fetch func(readmodel.Query) readmodel.Page,
	pos func(readmodel.Customer) readmodel.Position) []readmodel.Customer {
	t.Helper()
	var out []readmodel.Customer
	q.Page = 1
	first := fetch(q)
	out = append(out, first.Items...)
	more := first.More || len(first.Items) < int(first.Total)
	for pages := 0; more && len(out) > 0; pages++ {
		if pages > 10_000 {
			t.Fatalf("keyset walk of %+v does not end", q)
		}
		p := pos(out[len(out)-1])
		q.After = &p
		page := fetch(q)
		if page.More && len(page.Items) != q.PerPage {
			t.Fatalf("keyset page of %+v: %d items with More", q, len(page.Items))
		}
		out = append(out, page.Items...)
		more = page.More
	}
	return out
}

// searchCodes returns the codes Search finds for text, in order, all pages.
func searchCodes(t *testing.T, r readmodel.Reader, text string) []string {
	t.Helper()
	return codes(find(t, r, readmodel.Query{Text: text, Page: 1, PerPage: 100}).Items)
}

func wantNotFound(t *testing.T, r readmodel.Reader, id string) {
	t.Helper()
	if c, err := r.Get(t.Context(), id); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("Get(%s) = %+v, %v; want ErrNotFound", id, c, err)
	}
}

func testRoundTrip(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	paris := time.FixedZone("CET", 3600)
	full := readmodel.Customer{
		ID: customerID(1), Code: "C001", Name: "Zoë Ångström-Łukasz 東京",
		Email: "zoe.angstrom+crm@example.com", Phone: "+33 1 23 45 67 89", Company: "Müller & Søn GmbH",
		Address: readmodel.Address{Street: "Rua São João, 1", City: "São Paulo", State: "SP",
			Country: "BR", PostalCode: "01000-000"},
		Type: customer.TypeBusiness, Status: customer.StatusActive,
		Notes:      "line 1\nline 2 ☕ \"quoted\" 'single' %_\\ $where {}",
		Tags:       []string{"vip", "北京", "with space", "ÄLG"},
		ExternalID: "SF-0012/ß é",
		CreatedBy:  "user-1", CreatedAt: base.In(paris), UpdatedAt: base.Add(90*time.Minute + time.Nanosecond),
		Version: 3, Seq: 7,
	}
	minimal := doc(2, "Al")
	minimal.Tags = nil // read back as an empty list
	tomb := doc(3, "Gone Person")
	tomb.Deleted, tomb.Version, tomb.Seq = true, 2, 9
	long := doc(4, strings.Repeat("ñ", customer.MaxName))
	long.Notes = strings.Repeat("x", customer.MaxNotes)
	for i := range customer.MaxTags {
		long.Tags = append(long.Tags, fmt.Sprintf("tag-%02d-%s", i, strings.Repeat("t", 40)))
	}
	docs := []readmodel.Customer{full, minimal, tomb, long}
	commit(t, s, docs, 9)

	missing := customerID(99)
	got, err := s.Load(ctx, []string{full.ID, minimal.ID, tomb.ID, long.ID, missing})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(got) != len(docs) {
		t.Errorf("Load returned %d documents, want %d", len(got), len(docs))
	}
	if _, ok := got[missing]; ok {
		t.Errorf("Load returned a document for a missing id")
	}
	for _, d := range docs {
		sameDoc(t, "Load "+d.Code, got[d.ID], d)
		if got[d.ID].Tags == nil {
			t.Errorf("Load %s: nil Tags", d.Code)
		}
	}
	if got, err := s.Load(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("Load(nil) = %v, %v; want empty", got, err)
	}

	for _, d := range []readmodel.Customer{full, minimal, long} {
		c, err := s.Get(ctx, d.ID)
		if err != nil {
			t.Fatalf("Get %s: %v", d.Code, err)
		}
		sameDoc(t, "Get "+d.Code, c, d)
		if c.Tags == nil {
			t.Errorf("Get %s: nil Tags", d.Code)
		}
	}
	wantNotFound(t, s, tomb.ID)
	wantNotFound(t, s, missing)

	p := list(t, s, readmodel.Query{Page: 1, PerPage: 10})
	samePage(t, "List", p, readmodel.Page{Items: []readmodel.Customer{full, minimal, long}, Total: 3})
	if got := searchCodes(t, s, "angstrom"); !slices.Equal(got, []string{"C001"}) {
		t.Errorf("Search angstrom = %v", got)
	}
}

func testIdempotent(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	v1 := doc(1, "Oldname Person")
	v1.Tags, v1.Seq = []string{"old"}, 5
	commit(t, s, []readmodel.Customer{v1}, 5)
	commit(t, s, []readmodel.Customer{v1}, 5) // the same again
	check := func(what string, want readmodel.Customer) {
		t.Helper()
		got, err := s.Load(ctx, []string{want.ID})
		if err != nil {
			t.Fatalf("%s: Load: %v", what, err)
		}
		sameDoc(t, what, got[want.ID], want)
	}
	check("after duplicate commit", v1)
	if p := list(t, s, readmodel.Query{Page: 1, PerPage: 10}); p.Total != 1 || len(p.Items) != 1 {
		t.Errorf("duplicate commit: List total %d items %d, want 1", p.Total, len(p.Items))
	}

	v2 := v1
	v2.Name, v2.Tags, v2.Status = "Newname Person", []string{"new"}, customer.StatusActive
	v2.Version, v2.Seq, v2.UpdatedAt = 2, 8, base.Add(time.Hour)
	commit(t, s, []readmodel.Customer{v2}, 8)
	commit(t, s, []readmodel.Customer{v1}, 9) // older document, newer checkpoint
	check("older document after newer", v2)
	for _, c := range []struct {
		text string
		want int
	}{{"oldname", 0}, {"newname", 1}} {
		if got := searchCodes(t, s, c.text); len(got) != c.want {
			t.Errorf("Search %q after update = %v, want %d", c.text, got, c.want)
		}
	}
	for _, c := range []struct {
		q    readmodel.Query
		want int64
	}{
		{readmodel.Query{Tag: "old"}, 0}, {readmodel.Query{Tag: "new"}, 1},
		{readmodel.Query{Status: customer.StatusLead}, 0}, {readmodel.Query{Status: customer.StatusActive}, 1},
	} {
		c.q.Page, c.q.PerPage = 1, 10
		if p := list(t, s, c.q); p.Total != c.want {
			t.Errorf("List %+v after update: total %d, want %d", c.q, p.Total, c.want)
		}
	}

	tomb := v2
	tomb.Deleted, tomb.Version, tomb.Seq = true, 3, 12
	commit(t, s, []readmodel.Customer{tomb}, 12)
	commit(t, s, []readmodel.Customer{v1, v2}, 13) // late create and update
	check("tombstone after late documents", tomb)
	wantNotFound(t, s, tomb.ID)
	if p := list(t, s, readmodel.Query{Page: 1, PerPage: 10, Tag: "new"}); p.Total != 0 {
		t.Errorf("deleted customer listed by tag: %v", codes(p.Items))
	}
	if got := searchCodes(t, s, "newname"); len(got) != 0 {
		t.Errorf("deleted customer found: %v", got)
	}

	// Several versions of one customer in one batch, in any order: the
	// highest sequence wins.
	a1 := doc(2, "Alpha")
	a1.Seq = 20
	a2, a3 := a1, a1
	a2.Name, a2.Seq, a2.Version = "Beta", 21, 2
	a3.Name, a3.Seq, a3.Version = "Gamma", 22, 3
	commit(t, s, []readmodel.Customer{a3, a1, a2}, 22)
	check("batch with versions out of order", a3)
	b1 := doc(3, "Delta")
	b1.Seq = 30
	b2 := b1
	b2.Name, b2.Seq, b2.Version = "Epsilon", 31, 2
	commit(t, s, []readmodel.Customer{b1, b2}, 31)
	check("batch with versions in order", b2)
	for text, want := range map[string][]string{
		"alpha": nil, "beta": nil, "gamma": {"C002"}, "delta": nil, "epsilon": {"C003"},
	} {
		if got := searchCodes(t, s, text); !slices.Equal(got, want) && len(got)+len(want) > 0 {
			t.Errorf("Search %q = %v, want %v", text, got, want)
		}
	}
}

func testCheckpoint(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	want := func(what string, n uint64) {
		t.Helper()
		got, err := s.Checkpoint(ctx)
		if err != nil {
			t.Fatalf("%s: Checkpoint: %v", what, err)
		}
		if got != n {
			t.Errorf("%s: Checkpoint = %d, want %d", what, got, n)
		}
	}
	want("empty store", 0)
	commit(t, s, nil, 5)
	want("after commit without documents", 5)
	commit(t, s, []readmodel.Customer{doc(1, "Ann")}, 3)
	want("after an older checkpoint", 5)
	if _, err := s.Get(ctx, customerID(1)); err != nil {
		t.Errorf("documents of a commit with an older checkpoint are stored: Get: %v", err)
	}
	commit(t, s, nil, 1<<40)
	want("after a large checkpoint", 1<<40)
}

// listData returns a fixed set of customers with every kind of tie: equal
// times, names equal after folding, codes beyond C999, and tombstones.
func listData() []readmodel.Customer {
	names := []string{"anna", "Anna", "Ánna", "Bob Lee", "bob lee", "Zoë", "Zoe", "Émile", "emile", "Łukasz", "Mary"}
	var docs []readmodel.Customer
	nums := []int{}
	for n := 1; n <= 30; n++ {
		nums = append(nums, n)
	}
	nums = append(nums, 999, 1000, 1001, 10000)
	for i, n := range nums {
		c := doc(n, names[i%len(names)])
		c.Status = statuses[i%len(statuses)]
		c.Type = types[(i/2)%len(types)]
		c.CreatedBy = users[i%len(users)]
		// Times that tie to the millisecond and differ in nanoseconds:
		// the order is the exact one.
		c.CreatedAt = base.Add(time.Duration(i%5)*time.Minute + time.Duration(i%3)*time.Nanosecond)
		c.UpdatedAt = base.Add(time.Duration(i%7)*time.Hour + time.Duration(i%4)*time.Microsecond)
		for j, tag := range tagPool {
			if (i>>j)&1 == 1 {
				c.Tags = append(c.Tags, tag)
			}
		}
		c.Deleted = i%9 == 8
		docs = append(docs, c)
	}
	return docs
}

// walk reads every page of q (PerPage set) and checks each against the
// model, plus the page after the last.
func walk(t *testing.T, what string, q readmodel.Query,
	run func(readmodel.Query) readmodel.Page, ref func(readmodel.Query) readmodel.Page) {
	t.Helper()
	seen := map[string]bool{}
	for q.Page = 1; ; q.Page++ {
		got, want := run(q), ref(q)
		samePage(t, fmt.Sprintf("%s page %d", what, q.Page), got, want)
		for _, c := range got.Items {
			if seen[c.ID] {
				t.Errorf("%s: %s on two pages", what, c.Code)
			}
			seen[c.ID] = true
		}
		if len(want.Items) == 0 || t.Failed() {
			return
		}
	}
}

func testListFiltersAndSorts(t *testing.T, s readmodel.Store) {
	docs := listData()
	commit(t, s, docs, 100)
	m := model{}
	for _, d := range docs {
		m[d.ID] = d
	}
	filters := []readmodel.Query{
		{},
		{Status: customer.StatusActive},
		{Type: customer.TypeBusiness},
		{Tag: "vip"},
		{CreatedBy: "user-2"},
		{Status: customer.StatusLead, Tag: "priority"},
		{Status: customer.StatusProspect, Type: customer.TypeIndividual, CreatedBy: "user-2", Tag: "vip"},
		{Tag: "no-such-tag"},
	}
	sorts := append([]string{""}, readmodel.Sorts...)
	run := func(q readmodel.Query) readmodel.Page { return list(t, s, q) }
	for _, f := range filters {
		for _, sort := range sorts {
			for _, desc := range []bool{false, true} {
				q := f
				q.Sort, q.Desc, q.PerPage = sort, desc, 4
				walk(t, fmt.Sprintf("List %+v", q), q, run, m.list)
			}
		}
	}
	for _, desc := range []bool{false, true} {
		q := readmodel.Query{Sort: readmodel.SortCreatedAt, Desc: desc, PerPage: 7}
		walk(t, fmt.Sprintf("List %+v", q), q, run, m.list)
	}
	// The trash: the deleted customers, in every order, paged.
	for _, sort := range sorts {
		for _, desc := range []bool{false, true} {
			q := readmodel.Query{Deleted: true, Sort: sort, Desc: desc, PerPage: 2}
			walk(t, fmt.Sprintf("List deleted %+v", q), q, run, m.list)
		}
	}
	if p := list(t, s, readmodel.Query{Deleted: true, PerPage: 100}); p.Total == 0 || int(p.Total) != len(p.Items) {
		t.Errorf("List deleted: %d of %d", len(p.Items), p.Total)
	}
	// One page with everything, in code order: C999 < C1000 (numeric).
	q := readmodel.Query{Page: 1, PerPage: 100, Sort: readmodel.SortCustomerCode}
	samePage(t, "List all by code", list(t, s, q), m.list(q))
}

func testPagePastEnd(t *testing.T, s readmodel.Store) {
	docs := listData()
	commit(t, s, docs, 100)
	m := model{}
	for _, d := range docs {
		m[d.ID] = d
	}
	for _, q := range []readmodel.Query{
		{Page: 100, PerPage: 5},
		{Page: 1 << 20, PerPage: 100, Sort: readmodel.SortName},
		{Page: 2, PerPage: 100, Status: customer.StatusActive},
		{Page: 1, PerPage: 10, Tag: "no-such-tag"},
	} {
		got := list(t, s, q)
		samePage(t, fmt.Sprintf("List %+v", q), got, m.list(q))
		if len(got.Items) != 0 || got.Total == 0 && q.Tag == "" {
			t.Errorf("List %+v: %d items, total %d; want none of a positive total", q, len(got.Items), got.Total)
		}
	}
	q := readmodel.Query{Page: 50, PerPage: 10, Text: "anna"}
	got := find(t, s, q)
	want, _ := m.search(q)
	samePage(t, "Search past the end", got, want)
	if want.Total == 0 {
		t.Fatalf("test data: nobody matches %q", q.Text)
	}
}

// searchData are the customers of the search semantics table.
func searchData() []readmodel.Customer {
	c1 := doc(1, "John Smith")
	c1.Company, c1.Email = "Acme Corporation", "john.smith@example.com"
	c2 := doc(2, "José Álvarez")
	c2.Email = "jalvarez@empresa.es"
	c3 := doc(3, "jose")
	c4 := doc(4, "Mary Major")
	c4.Company, c4.Email = "Globex", "mary@globex.net"
	c5 := doc(5, "Zoë Smithson")
	c5.Company = "Acme"
	c6 := doc(6, "Kenji Sato")
	c6.Company = "東京 商事"
	c7 := doc(7, "John Smith")
	c7.Company, c7.Deleted = "Acme Corporation", true
	return []readmodel.Customer{c1, c2, c3, c4, c5, c6, c7}
}

func testSearchSemantics(t *testing.T, s readmodel.Store) {
	docs := searchData()
	commit(t, s, docs, 10)
	m := model{}
	for _, d := range docs {
		m[d.ID] = d
	}
	tests := []struct {
		text string
		want []string // in any order; nil = no match
	}{
		{"acm", []string{"C001", "C005"}},
		{"Acme Corporation", []string{"C001"}},
		{"smi jo", []string{"C001"}},
		{"example", []string{"C001"}},
		{"john.smith@example.com", []string{"C001"}},
		{"c001", []string{"C001"}},
		{"C001", []string{"C001"}},
		{"jose", []string{"C002", "C003"}},
		{"JOSÉ", []string{"C002", "C003"}},
		{"álv", []string{"C002"}},
		{"ALV", []string{"C002"}},
		{"東京", []string{"C006"}},
		{"smith", []string{"C001", "C005"}},
		{"glob", []string{"C004"}},
		{"c00", []string{"C001", "C002", "C003", "C004", "C005", "C006"}},
		{"mith", nil},
		{"acme zzz", nil},
		{"orporation", nil},
		{"smithsonian", nil},
		{"c0011", nil},
		{"001", nil},
		// FTS and regex syntax is just words.
		{"acm*", []string{"C001", "C005"}},
		{`"acme"`, []string{"C001", "C005"}},
		{"acme OR mary", nil},
		{"NOT acme", nil},
		{"name:acme", nil},
		{"(acme) -", []string{"C001", "C005"}},
		{"NEAR(acme smith)", nil},
		{"^ac.*$ [a]", []string{"C001", "C005"}},
		{"a.c.m.e", nil},
	}
	for _, tc := range tests {
		q := readmodel.Query{Text: tc.text, Page: 1, PerPage: 100}
		got := find(t, s, q)
		want, err := m.search(q)
		if err != nil {
			t.Fatalf("model search %q: %v", tc.text, err)
		}
		samePage(t, fmt.Sprintf("Search %q", tc.text), got, want)
		if g, w := slices.Sorted(slices.Values(codes(got.Items))), tc.want; !slices.Equal(g, w) && len(g)+len(w) > 0 {
			t.Errorf("Search %q = %v, want %v", tc.text, g, w)
		}
	}
	for _, tc := range []struct {
		text string
		want error
	}{
		{"", search.ErrEmptyQuery},
		{" .@@- ", search.ErrEmptyQuery},
		{strings.Repeat("a ", 101), search.ErrQueryTooLong},
	} {
		if _, err := s.Search(t.Context(), readmodel.Query{Text: tc.text, Page: 1, PerPage: 10}); !errors.Is(err, tc.want) {
			t.Errorf("Search %q: error %v, want %v", tc.text, err, tc.want)
		}
	}
}

func testSearchRanking(t *testing.T, s readmodel.Store) {
	mk := func(n int, name, company, email string) readmodel.Customer {
		c := doc(n, name)
		c.Company, c.Email = company, email
		return c
	}
	docs := []readmodel.Customer{
		mk(1, "Ann Lee", "", ""),           // name exact
		mk(2, "Annabel Ray", "", ""),       // name prefix
		mk(3, "Zed One", "Ann Ltd", ""),    // company exact
		mk(4, "Zed Two", "Annex", ""),      // company prefix
		mk(5, "Zed Three", "", "ann@x.io"), // email exact
		mk(6, "Zed Four", "", "annie@x.io"),
		mk(7, "Zed Two", "", ""), // same name as C004
		mk(8, "Zéd One", "", ""), // same name as C003 after folding
		mk(9, "C010 Fan", "", ""),
		mk(10, "Ten", "", ""),
	}
	commit(t, s, docs, 10)
	tests := []struct {
		text string
		want []string // in order
	}{
		{"ann", []string{"C001", "C002", "C003", "C004", "C005", "C006"}},
		{"zed", []string{"C006", "C003", "C008", "C005", "C004", "C007"}},
		{"c010", []string{"C010", "C009"}}, // code exact beats name exact
		{"ann lee", []string{"C001"}},
		{"zed ann", []string{"C003", "C004", "C005", "C006"}},
	}
	for _, tc := range tests {
		if got := searchCodes(t, s, tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("Search %q = %v, want %v", tc.text, got, tc.want)
		}
	}
	// Paging through a ranking repeats and skips nobody.
	m := model{}
	for _, d := range docs {
		m[d.ID] = d
	}
	run := func(q readmodel.Query) readmodel.Page { return find(t, s, q) }
	ref := func(q readmodel.Query) readmodel.Page { p, _ := m.search(q); return p }
	walk(t, "Search zed", readmodel.Query{Text: "zed", PerPage: 2}, run, ref)
	walk(t, "Search c0", readmodel.Query{Text: "c0", PerPage: 3}, run, ref)
}

// randomModel folds a random stream of n customers into a model and commits
// it in one batch.
func randomModel(t *testing.T, w readmodel.Writer, seed uint64, n, updates int) model {
	r := rand.New(rand.NewPCG(seed, seed))
	m := model{}
	evs := randomStream(r, n, updates)
	for _, e := range evs {
		m[e.AggregateID] = readmodel.FromState(customer.Evolve(m[e.AggregateID].State(), e))
	}
	docs := make([]readmodel.Customer, 0, len(m))
	for _, c := range m {
		docs = append(docs, c)
	}
	commit(t, w, docs, evs[len(evs)-1].Seq)
	return m
}

func testSearchWithFilters(t *testing.T, s readmodel.Store) {
	m := randomModel(t, s, 7, 60, 60)
	run := func(q readmodel.Query) readmodel.Page { return find(t, s, q) }
	ref := func(q readmodel.Query) readmodel.Page {
		p, err := m.search(q)
		if err != nil {
			t.Fatalf("model search %+v: %v", q, err)
		}
		return p
	}
	filters := []readmodel.Query{
		{Status: customer.StatusActive},
		{Type: customer.TypeBusiness},
		{Tag: "vip"},
		{CreatedBy: "user-2"},
		{Status: customer.StatusLead, Tag: "priority"},
	}
	matched := 0
	for _, text := range []string{"acme", "jo", "smith", "c0", "müller", "example com"} {
		for _, f := range filters {
			q := f
			q.Text, q.PerPage = text, 3
			walk(t, fmt.Sprintf("Search %+v", q), q, run, ref)
			q.Page = 1
			if ref(q).Total > 0 {
				matched++
			}
		}
	}
	if matched < 10 {
		t.Errorf("test data: only %d filtered searches match anything", matched)
	}
}

func testDeleted(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	keep := doc(1, "Acme Keeper")
	keep.Tags = []string{"vip"}
	gone := doc(2, "Acme Leaver")
	gone.Tags, gone.Status = []string{"vip"}, customer.StatusActive
	commit(t, s, []readmodel.Customer{keep, gone}, 2)
	del := gone
	del.Deleted, del.Version, del.Seq, del.UpdatedAt = true, 2, 3, base.Add(time.Hour)
	commit(t, s, []readmodel.Customer{del}, 3)

	wantNotFound(t, s, gone.ID)
	for _, q := range []readmodel.Query{
		{}, {Tag: "vip"}, {Status: customer.StatusActive}, {Sort: readmodel.SortName, Desc: true},
		{Sort: readmodel.SortUpdatedAt}, {Sort: readmodel.SortCustomerCode},
	} {
		q.Page, q.PerPage = 1, 10
		p := list(t, s, q)
		if slices.Contains(codes(p.Items), gone.Code) || p.Total != int64(len(p.Items)) || p.Total > 1 {
			t.Errorf("List %+v = %v (total %d): the deleted customer counts", q, codes(p.Items), p.Total)
		}
	}
	for _, text := range []string{"acme", "leaver", "c002"} {
		p := find(t, s, readmodel.Query{Text: text, Page: 1, PerPage: 10})
		if slices.Contains(codes(p.Items), gone.Code) || p.Total != int64(len(p.Items)) {
			t.Errorf("Search %q = %v (total %d): the deleted customer counts", text, codes(p.Items), p.Total)
		}
	}
	got, err := s.Load(ctx, []string{gone.ID})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	sameDoc(t, "Load of a deleted customer", got[gone.ID], del)
}

func testRebuildSwap(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	a1, a2 := doc(1, "Alice Old"), doc(2, "Arthur Only")
	commit(t, s, []readmodel.Customer{a1, a2}, 10)

	rb, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if n, err := rb.Checkpoint(ctx); err != nil || n != 0 {
		t.Errorf("new rebuild: Checkpoint = %d, %v; want 0", n, err)
	}
	if got, err := rb.Load(ctx, []string{a1.ID}); err != nil || len(got) != 0 {
		t.Errorf("new rebuild: Load = %v, %v; want empty", got, err)
	}
	b1 := a1
	b1.Name, b1.Version, b1.Seq = "Alice New", 2, 15
	b3 := doc(3, "Bob Fresh")
	b3.Seq = 16
	commit(t, rb, []readmodel.Customer{a1}, 10)
	commit(t, rb, []readmodel.Customer{b1, b3}, 20)
	got, err := rb.Load(ctx, []string{a1.ID, a2.ID, b3.ID})
	if err != nil {
		t.Fatalf("rebuild Load: %v", err)
	}
	if len(got) != 2 {
		t.Errorf("rebuild Load: %d documents, want 2", len(got))
	}
	sameDoc(t, "rebuild Load", got[b1.ID], b1)

	// Until Swap, queries see the live model only.
	if c, err := s.Get(ctx, a1.ID); err != nil || c.Name != a1.Name {
		t.Errorf("before Swap: Get = %q, %v; want the live %q", c.Name, err, a1.Name)
	}
	wantNotFound(t, s, b3.ID)
	if p := list(t, s, readmodel.Query{Page: 1, PerPage: 10}); !slices.Equal(codes(p.Items), []string{"C001", "C002"}) {
		t.Errorf("before Swap: List = %v", codes(p.Items))
	}
	if got := searchCodes(t, s, "bob"); len(got) != 0 {
		t.Errorf("before Swap: Search bob = %v", got)
	}
	if n, _ := s.Checkpoint(ctx); n != 10 {
		t.Errorf("before Swap: Checkpoint = %d, want 10", n)
	}
	commit(t, s, []readmodel.Customer{doc(4, "Live Only")}, 11) // the live projector goes on

	if err := rb.Swap(ctx); err != nil {
		t.Fatalf("Swap: %v", err)
	}
	if c, err := s.Get(ctx, a1.ID); err != nil || c.Name != b1.Name {
		t.Errorf("after Swap: Get = %q, %v; want %q", c.Name, err, b1.Name)
	}
	wantNotFound(t, s, a2.ID)
	wantNotFound(t, s, customerID(4))
	p := list(t, s, readmodel.Query{Page: 1, PerPage: 10, Sort: readmodel.SortCustomerCode})
	if !slices.Equal(codes(p.Items), []string{"C001", "C003"}) || p.Total != 2 {
		t.Errorf("after Swap: List = %v (total %d)", codes(p.Items), p.Total)
	}
	for text, want := range map[string][]string{"bob": {"C003"}, "alice": {"C001"}, "old": nil, "arthur": nil} {
		if got := searchCodes(t, s, text); !slices.Equal(got, want) && len(got)+len(want) > 0 {
			t.Errorf("after Swap: Search %q = %v, want %v", text, got, want)
		}
	}
	if n, err := s.Checkpoint(ctx); err != nil || n != 20 {
		t.Errorf("after Swap: Checkpoint = %d, %v; want 20", n, err)
	}
	if err := rb.Swap(ctx); err == nil {
		t.Errorf("a second Swap of the same rebuild succeeded")
	}

	// The swapped model is a full read model: writes keep their guard, and
	// it can be rebuilt again.
	commit(t, s, []readmodel.Customer{a1}, 21)
	if c, _ := s.Get(ctx, a1.ID); c.Name != b1.Name {
		t.Errorf("after Swap: an older document regressed %q to %q", b1.Name, c.Name)
	}
	rb2, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("second Rebuild: %v", err)
	}
	c5 := doc(5, "Carol Third")
	commit(t, rb2, []readmodel.Customer{c5}, 30)
	if err := rb2.Swap(ctx); err != nil {
		t.Fatalf("second Swap: %v", err)
	}
	if got := searchCodes(t, s, "carol"); !slices.Equal(got, []string{"C005"}) {
		t.Errorf("after second Swap: Search carol = %v", got)
	}
	if p := list(t, s, readmodel.Query{Page: 1, PerPage: 10}); p.Total != 1 {
		t.Errorf("after second Swap: List total %d, want 1", p.Total)
	}
}

func testRebuildAbort(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	a := doc(1, "Alice Live")
	a.Tags = []string{"vip"}
	commit(t, s, []readmodel.Customer{a}, 5)
	rb, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	commit(t, rb, []readmodel.Customer{doc(2, "Bob Lost")}, 50)
	if err := rb.Abort(ctx); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	c, err := s.Get(ctx, a.ID)
	if err != nil {
		t.Fatalf("after Abort: Get: %v", err)
	}
	sameDoc(t, "after Abort", c, a)
	wantNotFound(t, s, customerID(2))
	if n, _ := s.Checkpoint(ctx); n != 5 {
		t.Errorf("after Abort: Checkpoint = %d, want 5", n)
	}
	if p := list(t, s, readmodel.Query{Page: 1, PerPage: 10, Tag: "vip"}); p.Total != 1 {
		t.Errorf("after Abort: List by tag total %d, want 1", p.Total)
	}
	if got := searchCodes(t, s, "alice"); !slices.Equal(got, []string{"C001"}) {
		t.Errorf("after Abort: Search alice = %v", got)
	}
	// A new rebuild starts empty.
	rb2, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("Rebuild after Abort: %v", err)
	}
	if n, err := rb2.Checkpoint(ctx); err != nil || n != 0 {
		t.Errorf("Rebuild after Abort: Checkpoint = %d, %v; want 0", n, err)
	}
	if got, err := rb2.Load(ctx, []string{customerID(2)}); err != nil || len(got) != 0 {
		t.Errorf("Rebuild after Abort: Load = %v, %v; want empty", got, err)
	}
	if err := rb2.Abort(ctx); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
}

func testRebuildBehind(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	a := doc(1, "Alice Live")
	commit(t, s, []readmodel.Customer{a}, 10)
	rb, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	b := doc(2, "Bob Rebuilt")
	commit(t, rb, []readmodel.Customer{b}, 5)
	if err := rb.Swap(ctx); !errors.Is(err, readmodel.ErrRebuildBehind) {
		t.Fatalf("Swap of a rebuild behind the live model = %v, want ErrRebuildBehind", err)
	}
	if _, err := s.Get(ctx, a.ID); err != nil {
		t.Errorf("after a refused Swap: Get live customer: %v", err)
	}
	wantNotFound(t, s, b.ID)
	if n, _ := s.Checkpoint(ctx); n != 10 {
		t.Errorf("after a refused Swap: Checkpoint = %d, want 10", n)
	}
	// The rebuild catches up and swaps.
	commit(t, rb, []readmodel.Customer{a}, 10)
	if err := rb.Swap(ctx); err != nil {
		t.Fatalf("Swap after catching up: %v", err)
	}
	if p := list(t, s, readmodel.Query{Page: 1, PerPage: 10, Sort: readmodel.SortCustomerCode}); !slices.Equal(codes(p.Items), []string{"C001", "C002"}) {
		t.Errorf("after Swap: List = %v", codes(p.Items))
	}
}

// testRandomStreams projects random event streams, folded with
// customer.Evolve, in random batches with stale and duplicate documents
// mixed in, and compares everything with the model.
func testRandomStreams(t *testing.T, s readmodel.Store, o options) {
	ctx := t.Context()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	evs := randomStream(r, o.customers, o.events)

	m := model{}
	var history []readmodel.Customer // every state ever committed
	for len(evs) > 0 {
		n := min(len(evs), 1+r.IntN(40))
		batch := evs[:n]
		evs = evs[n:]
		touched := map[string]bool{}
		for _, e := range batch {
			m[e.AggregateID] = readmodel.FromState(customer.Evolve(m[e.AggregateID].State(), e))
			touched[e.AggregateID] = true
		}
		var docs []readmodel.Customer
		for id := range touched {
			docs = append(docs, m[id])
		}
		// Replays: stale states of any customer, and duplicates.
		for range r.IntN(4) {
			if len(history) > 0 {
				docs = append(docs, pick(r, history))
			}
		}
		if len(docs) > 0 && r.IntN(4) == 0 {
			docs = append(docs, pick(r, docs))
		}
		r.Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] })
		history = append(history, docs...)
		commit(t, s, docs, batch[len(batch)-1].Seq)
	}

	want := history[len(history)-1].Seq
	for _, c := range m {
		want = max(want, c.Seq)
	}
	if got, err := s.Checkpoint(ctx); err != nil || got != want {
		t.Errorf("Checkpoint = %d, %v; want %d", got, err, want)
	}
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	got, err := s.Load(ctx, ids)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(got) != len(m) {
		t.Errorf("Load: %d documents, want %d", len(got), len(m))
	}
	for id, c := range m {
		sameDoc(t, "Load "+c.Code, got[id], c)
	}
	for range 30 {
		c := m[pick(r, ids)]
		g, err := s.Get(ctx, c.ID)
		switch {
		case !c.Live():
			if !errors.Is(err, readmodel.ErrNotFound) {
				t.Errorf("Get deleted %s: %v", c.Code, err)
			}
		case err != nil:
			t.Errorf("Get %s: %v", c.Code, err)
		default:
			sameDoc(t, "Get "+c.Code, g, c)
		}
	}
	for range 40 {
		q := randomQuery(r)
		samePage(t, fmt.Sprintf("List %+v", q), list(t, s, q), m.list(q))
	}
	for range 40 {
		q := randomQuery(r)
		q.Sort, q.Desc = "", false
		q.Text = randomSearchText(r, m)
		if r.IntN(2) == 0 {
			q.Status, q.Type, q.Tag, q.CreatedBy = "", "", "", ""
		}
		if r.IntN(3) == 0 {
			q.ExactTotal = int64(1 + r.IntN(8))
		}
		want, err := m.search(q)
		if err != nil {
			t.Fatalf("model search %+v: %v", q, err)
		}
		samePage(t, fmt.Sprintf("Search %+v", q), find(t, s, q), want)
	}
	// Keyset paging walks the same order as the model, page after page.
	for range 12 {
		q := randomQuery(r)
		q.PerPage = pick(r, []int{1, 4, 25})
		all := q
		all.Page, all.PerPage = 1, len(m)+1
		got := walkKeyset(t, q, func(q readmodel.Query) readmodel.Page { return list(t, s, q) },
			func(c readmodel.Customer) readmodel.Position { return readmodel.ListPosition(c, q.Sort) })
		if want := m.list(all).Items; !slices.Equal(codes(got), codes(want)) {
			t.Errorf("keyset List %+v: %v, want %v", q, codes(got), codes(want))
		}
	}
	// Export streams the same customers, in the same order, at the
	// checkpoint.
	wantCP, err := s.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		q := randomQuery(r)
		q.Deleted = i == 0
		if q.Deleted {
			q.Status, q.Type, q.Tag, q.CreatedBy = "", "", "", ""
		}
		all := q
		all.Page, all.PerPage = 1, len(m)+1
		var got []readmodel.Customer
		var cp uint64
		err := s.Export(ctx, q, func(c uint64) error { cp = c; return nil },
			func(c readmodel.Customer) error { got = append(got, c); return nil })
		if err != nil {
			t.Fatalf("Export %+v: %v", q, err)
		}
		want := m.list(all).Items
		if cp != wantCP || !slices.Equal(codes(got), codes(want)) {
			t.Errorf("Export %+v at %d: %v, want %v at %d", q, cp, codes(got), codes(want), wantCP)
		}
		for i := range min(len(got), len(want)) {
			sameDoc(t, "Export item", normalize(got[i]), normalize(want[i]))
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Export(ctx, readmodel.Query{}, func(uint64) error { return nil },
		func(readmodel.Customer) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("Export stopped by its callback: %v after %d", err, n)
	}
	for range 12 {
		q := readmodel.Query{PerPage: pick(r, []int{1, 3, 10}), Text: randomSearchText(r, m)}
		if r.IntN(3) == 0 {
			q.Status = pick(r, statuses)
		}
		if r.IntN(2) == 0 { // totals beyond the bound: the walk still reaches every match
			q.ExactTotal = int64(1 + r.IntN(5))
		}
		words, err := search.ParseQuery(q.Text)
		if err != nil {
			continue
		}
		all := q
		all.Page, all.PerPage = 1, len(m)+1
		all.ExactTotal = 0
		want, _ := m.search(all)
		got := walkKeyset(t, q, func(q readmodel.Query) readmodel.Page { return find(t, s, q) },
			func(c readmodel.Customer) readmodel.Position { return readmodel.SearchPosition(c, words) })
		if !slices.Equal(codes(got), codes(want.Items)) {
			t.Errorf("keyset Search %+v: %v, want %v", q, codes(got), codes(want.Items))
		}
	}
	for _, match := range append([]string{""}, dedupe.Matches...) {
		sameClusters(t, "Duplicates "+match, allClusters(t, s, match, 1+r.IntN(7)), m.clusters(match))
	}
	for range 20 {
		c := m[pick(r, ids)]
		keys := dedupe.Of(c.Name, c.Email, c.Phone, c.Company, c.Address.Country)
		limit := 1 + r.IntN(4)
		got, err := s.PossibleDuplicates(ctx, c.ID, keys, limit)
		if err != nil {
			t.Fatal(err)
		}
		if want := m.possibleDuplicates(c.ID, keys, limit); !slices.Equal(got, want) {
			t.Errorf("PossibleDuplicates(%s, %+v, %d) = %v, want %v", c.Code, keys, limit, got, want)
		}
	}
	if t.Failed() {
		t.Logf("reproduce with seed %d", seed)
	}
}

// allClusters reads every page of Duplicates.
func allClusters(t *testing.T, s readmodel.Store, match string, perPage int) []readmodel.Cluster {
	t.Helper()
	var out []readmodel.Cluster
	for page := 1; ; page++ {
		p, err := s.Duplicates(t.Context(), readmodel.ClusterQuery{Page: page, PerPage: perPage, Match: match})
		if err != nil {
			t.Fatalf("Duplicates %q page %d: %v", match, page, err)
		}
		out = append(out, p.Items...)
		if len(p.Items) == 0 || int64(len(out)) >= p.Total {
			if int64(len(out)) != p.Total {
				t.Errorf("Duplicates %q: %d clusters over the pages, Total %d", match, len(out), p.Total)
			}
			return out
		}
	}
}

// sameClusters compares clusters by match, key, size and member ids.
func sameClusters(t *testing.T, what string, got, want []readmodel.Cluster) {
	t.Helper()
	show := func(cls []readmodel.Cluster) []string {
		var out []string
		for _, c := range cls {
			out = append(out, fmt.Sprintf("%s=%s n=%d %v", c.Match, c.Key, c.Size, codes(c.Customers)))
		}
		return out
	}
	if g, w := show(got), show(want); !slices.Equal(g, w) {
		t.Errorf("%s:\n got  %q\n want %q", what, g, w)
	}
}

// testDuplicates: customers sharing a normalised email, a phone in E.164
// or a name and company are found by PossibleDuplicates and listed as
// clusters, newest first; deleted and merged customers are in none; a
// changed key, a deletion and a restore move the clusters.
func testDuplicates(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	a, b, c, d, e, f, gone, merged, lone := doc(1, "Jane Doe"), doc(2, "J. Doe"), doc(3, "Phone One"), doc(4, "Phone Two"),
		doc(5, "Ann Lee"), doc(6, "ann  LEE"), doc(7, "Gone"), doc(8, "Merged"), doc(9, "Lone")
	a.Email, b.Email = "Jane.Doe+news@GoogleMail.com", "janedoe@gmail.com"
	c.Phone, d.Phone, d.Address.Country = "+44 20 7946 0958", "020 7946 0958", "GB"
	e.Company, f.Company = "Acme Corp.", "ACME corp"
	gone.Email, gone.Deleted = "janedoe@gmail.com", true
	merged.Email, merged.MergedInto = "jane.doe@gmail.com", a.ID
	lone.Email, lone.Phone = "lone@example.com", "+1 201 555 0199"
	commit(t, s, []readmodel.Customer{a, b, c, d, e, f, gone, merged, lone}, 20)

	keys := func(x readmodel.Customer) dedupe.Keys {
		return dedupe.Of(x.Name, x.Email, x.Phone, x.Company, x.Address.Country)
	}
	dups := func(x readmodel.Customer) []readmodel.Duplicate {
		t.Helper()
		got, err := s.PossibleDuplicates(ctx, x.ID, keys(x), 10)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := dups(a); !slices.Equal(got, []readmodel.Duplicate{{CustomerID: b.ID, Match: dedupe.MatchEmail}}) {
		t.Errorf("PossibleDuplicates(a) = %v", got)
	}
	if got := dups(d); !slices.Equal(got, []readmodel.Duplicate{{CustomerID: c.ID, Match: dedupe.MatchPhone}}) {
		t.Errorf("PossibleDuplicates(d) = %v", got)
	}
	// A customer not stored yet (id ""), sharing two keys.
	probe := readmodel.Customer{Name: "Ann Lee", Company: "acme corp", Email: "JaneDoe@gmail.com"}
	want := []readmodel.Duplicate{{CustomerID: b.ID, Match: dedupe.MatchEmail}, {CustomerID: a.ID, Match: dedupe.MatchEmail},
		{CustomerID: f.ID, Match: dedupe.MatchNameCompany}, {CustomerID: e.ID, Match: dedupe.MatchNameCompany}}
	if got := dups(probe); !slices.Equal(got, want) {
		t.Errorf("PossibleDuplicates(probe) = %v, want %v", got, want)
	}
	if got := dups(lone); len(got) != 0 {
		t.Errorf("PossibleDuplicates(lone) = %v", got)
	}

	check := func(what string, want ...string) {
		t.Helper()
		got := allClusters(t, s, "", 2)
		var g []string
		for _, c := range got {
			g = append(g, fmt.Sprintf("%s %d %v", c.Match, c.Size, codes(c.Customers)))
		}
		if !slices.Equal(g, want) {
			t.Errorf("%s: clusters %q, want %q", what, g, want)
		}
	}
	check("at first", "name+company 2 [C006 C005]", "phone 2 [C004 C003]", "email 2 [C002 C001]")
	p, err := s.Duplicates(ctx, readmodel.ClusterQuery{Page: 1, PerPage: 5, Match: dedupe.MatchPhone})
	if err != nil || p.Total != 1 || len(p.Items) != 1 || p.Items[0].Key != "+442079460958" {
		t.Errorf("Duplicates phone = %+v, %v", p, err)
	}
	if p, err := s.Duplicates(ctx, readmodel.ClusterQuery{Page: 3, PerPage: 2}); err != nil || p.Total != 3 || len(p.Items) != 0 {
		t.Errorf("Duplicates past the end = %+v, %v", p, err)
	}

	// b's email changes to lone's; f is deleted; a third phone joins.
	b.Email, b.Seq, b.Version = "LONE@example.com", 30, 2
	f.Deleted, f.Seq, f.Version = true, 31, 2
	third := doc(10, "Phone Three")
	third.Phone = "+442079460958"
	commit(t, s, []readmodel.Customer{b, f, third}, 40)
	check("after changes", "phone 3 [C010 C004 C003]", "email 2 [C009 C002]")
	// Restored; an update of another field moves nothing.
	f.Deleted, f.Seq, f.Version = false, 41, 3
	c.Notes, c.Seq, c.Version = "noted", 42, 2
	commit(t, s, []readmodel.Customer{f, c}, 50)
	check("after the restore", "phone 3 [C010 C004 C003]", "email 2 [C009 C002]", "name+company 2 [C006 C005]")
}

// testScan: Scan pages through every document, tombstones included, in id
// order, each once, and past the last returns nothing.
func testScan(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	var docs []readmodel.Customer
	var want []string
	for _, n := range []int{7, 3, 1000, 12, 5, 999, 40, 41, 2, 8, 77, 100, 6} {
		d := doc(n, fmt.Sprint("Scan ", n))
		d.Deleted = n%3 == 0
		docs = append(docs, d)
		want = append(want, d.ID)
	}
	commit(t, s, docs, 2000)
	slices.Sort(want)
	var got []string
	after := ""
	for range 100 {
		page, err := s.Scan(ctx, after, 4)
		if err != nil {
			t.Fatalf("Scan(%q): %v", after, err)
		}
		if len(page) > 4 {
			t.Fatalf("Scan returned %d documents, limit 4", len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, d := range page {
			got = append(got, d.ID)
			if d.Tags == nil || d.Version == 0 {
				t.Errorf("Scan %s: %+v", d.ID, d)
			}
		}
		after = page[len(page)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Scan pages = %v, want %v", got, want)
	}
	if page, err := s.Scan(ctx, "", 0); err != nil || len(page) != 1 || page[0].ID != want[0] {
		t.Errorf("Scan limit 0 = %v, %v; want the first document", page, err)
	}
}

// testMerged: a customer merged into another is hidden (Get answers with
// the survivor, List, Search and the trash leave it out), the survivor is
// found by the absorbed code, and both documents round-trip.
func testMerged(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	survivor, gone, other := doc(1, "Surviving Person"), doc(2, "Absorbed Person"), doc(3, "Deleted Person")
	survivor.Absorbed = []readmodel.Absorbed{{ID: gone.ID, Code: gone.Code}}
	gone.MergedInto = survivor.ID
	other.Deleted = true
	commit(t, s, []readmodel.Customer{survivor, gone, other}, 10)
	got, err := s.Load(ctx, []string{survivor.ID, gone.ID})
	if err != nil {
		t.Fatal(err)
	}
	sameDoc(t, "Load survivor", got[survivor.ID], survivor)
	sameDoc(t, "Load absorbed", got[gone.ID], gone)
	if _, err := s.Get(ctx, gone.ID); fault.KindOf(err) != fault.Moved || fault.Of(err).Ref != survivor.ID {
		t.Errorf("Get of a merged customer = %v, want Moved to %s", err, survivor.ID)
	}
	if _, err := s.Get(ctx, other.ID); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("Get of a deleted customer = %v", err)
	}
	if p := list(t, s, readmodel.Query{PerPage: 10}); p.Total != 1 || p.Items[0].ID != survivor.ID {
		t.Errorf("List = %+v, want the survivor only", p)
	}
	if p := list(t, s, readmodel.Query{PerPage: 10, Deleted: true}); p.Total != 1 || p.Items[0].ID != other.ID {
		t.Errorf("the trash = %+v, want the deleted customer only", p)
	}
	for _, q := range []string{"c002", "c00", "absorbed", "surviving"} {
		if got := searchCodes(t, s, q); (q == "absorbed" && len(got) != 0) || (q != "absorbed" && !slices.Equal(got, []string{"C001"})) {
			t.Errorf("Search %q = %v", q, got)
		}
	}
	// Taken out again: the absorbed customer is back, the code no longer
	// finds the survivor.
	survivor.Absorbed, survivor.Seq, survivor.Version = nil, 11, 2
	gone.MergedInto, gone.Seq, gone.Version = "", 12, 2
	commit(t, s, []readmodel.Customer{survivor, gone}, 12)
	if c, err := s.Get(ctx, gone.ID); err != nil || c.Name != "Absorbed Person" {
		t.Errorf("Get after the unmerge = %+v, %v", c, err)
	}
	if got := searchCodes(t, s, "c002"); !slices.Equal(got, []string{"C002"}) {
		t.Errorf("Search c002 after the unmerge = %v", got)
	}
}

// testByExternalID: the customer with an external id, matched exactly
// (case-sensitive): the live one first, a merged one as Get answers it
// (moved to its survivor), deleted ones never.
func testByExternalID(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	gone, merged, a, other, alone := doc(1, "A"), doc(2, "B"), doc(3, "C"), doc(4, "D"), doc(5, "E")
	gone.ExternalID, merged.ExternalID, a.ExternalID, other.ExternalID = "X-1", "X-1", "X-1", "x-1"
	gone.Deleted = true
	merged.MergedInto = a.ID
	alone.ExternalID, alone.MergedInto = "M-1", a.ID
	commit(t, s, []readmodel.Customer{gone, merged, a, other, alone}, 10)
	got, err := s.ByExternalID(ctx, "X-1")
	if err != nil || got.Code != "C003" || got.ExternalID != "X-1" {
		t.Errorf("ByExternalID(X-1) = %s %q, %v; want C003", got.Code, got.ExternalID, err)
	}
	if got, err := s.ByExternalID(ctx, "x-1"); err != nil || got.Code != "C004" {
		t.Errorf("ByExternalID(x-1) = %s, %v; want C004", got.Code, err)
	}
	var moved *fault.Error
	if _, err := s.ByExternalID(ctx, "M-1"); !errors.As(err, &moved) || moved.Kind != fault.Moved || moved.Ref != a.ID {
		t.Errorf("ByExternalID(M-1) = %v; want moved to %s", err, a.ID)
	}
	for _, id := range []string{"", "X-2", "X"} {
		if got, err := s.ByExternalID(ctx, id); !errors.Is(err, readmodel.ErrNotFound) {
			t.Errorf("ByExternalID(%q) = %s, %v; want ErrNotFound", id, got.Code, err)
		}
	}
	// Cleared on the live one: the merged one answers (moved), the deleted
	// one never.
	a.ExternalID, a.Seq, a.Version = "", a.Seq+10, a.Version+1
	merged.Deleted, merged.MergedInto, merged.Seq, merged.Version = true, "", merged.Seq+10, merged.Version+1
	commit(t, s, []readmodel.Customer{a, merged}, 20)
	if got, err := s.ByExternalID(ctx, "X-1"); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("ByExternalID(X-1) after clearing = %s, %v; want ErrNotFound", got.Code, err)
	}
}

// testByEmail: the live customers with an email, compared in
// customer.EmailKey form (case and NFC), in code order.
func testByEmail(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	a, b, gone, other, merged := doc(1, "A"), doc(2, "B"), doc(3, "C"), doc(4, "D"), doc(5, "E")
	a.Email, b.Email, gone.Email, other.Email, merged.Email = "Ann@Example.COM", "ann@example.com", "ann@example.com", "bob@example.com", "ann@example.com"
	gone.Deleted = true
	merged.MergedInto = a.ID
	commit(t, s, []readmodel.Customer{a, b, gone, other, merged}, 10)
	got, err := s.ByEmail(ctx, "ann@example.com", 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(codes(got), []string{"C001", "C002"}) {
		t.Errorf("ByEmail = %v, want C001 C002", codes(got))
	}
	if got, _ := s.ByEmail(ctx, "ann@example.com", 1); len(got) != 1 {
		t.Errorf("ByEmail limit 1 = %v", codes(got))
	}
	for _, key := range []string{"", "Ann@Example.COM", "nobody@example.com"} {
		if got, err := s.ByEmail(ctx, key, 10); err != nil || len(got) != 0 {
			t.Errorf("ByEmail(%q) = %v, %v", key, codes(got), err)
		}
	}
}
