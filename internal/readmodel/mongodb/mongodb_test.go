package mongodb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"crm/internal/customer"
	"crm/internal/readmodel"
	"crm/internal/readmodel/readmodeltest"
	"crm/internal/search"
)

// ferretURI is the address of the FerretDB that TestMain runs for the whole
// test binary (one per binary: starting it is slow).
var ferretURI string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "crm-ferretdb-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	ferretURI = f.MongoDBURI()
	code := m.Run()
	cancel()
	<-done
	return code
}

var dbCounter atomic.Int64

// openDB opens a Store on a fresh database of the server at uri and drops
// the database when the test ends.
func openDB(t *testing.T, uri string) *Store {
	t.Helper()
	name := fmt.Sprintf("crm_test_%d_%d", time.Now().UnixNano()%1e9, dbCounter.Add(1))
	s, err := Open(t.Context(), uri, name)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.client.Database(name).Drop(ctx); err != nil {
			t.Errorf("drop test database: %v", err)
		}
		s.Close()
	})
	return s
}

func openFerret(t *testing.T) *Store { return openDB(t, ferretURI) }

// openPair opens a store on a fresh database (dropped at the end), and
// returns a function that opens another one on the same database.
func openPair(t *testing.T, uri string) (readmodel.Store, func() readmodel.Store) {
	t.Helper()
	s := openDB(t, uri)
	return s, func() readmodel.Store {
		other, err := Open(t.Context(), uri, s.db.Name())
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { other.Close() })
		return other
	}
}

// TestRebuildTakeover: a rebuild whose lease went stale (its process died)
// is taken over by the next Rebuild, its collection dropped; the old handle
// then fails with ErrRebuildLost.
func TestRebuildTakeover(t *testing.T) {
	s := openFerret(t)
	ctx := t.Context()
	old, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stale := time.Now().Add(-readmodel.RebuildLease - time.Second).UnixNano()
	if _, err := s.db.Collection(leaseCollection).UpdateOne(ctx, bson.D{{Key: "_id", Value: "lease"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "heartbeat", Value: stale}}}}); err != nil {
		t.Fatal(err)
	}
	taker, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("Rebuild over a stale lease: %v", err)
	}
	names, err := s.db.ListCollectionNames(ctx, bson.D{{Key: "name", Value: old.(*rebuild).c.c.Name()}})
	if err != nil || len(names) != 0 {
		t.Errorf("the abandoned rebuild's collection is still there: %v %v", names, err)
	}
	if err := old.Commit(ctx, nil, 2); !errors.Is(err, readmodel.ErrRebuildLost) {
		t.Errorf("Commit of the taken-over rebuild = %v, want ErrRebuildLost", err)
	}
	if err := old.Swap(ctx); !errors.Is(err, readmodel.ErrRebuildLost) {
		t.Errorf("Swap of the taken-over rebuild = %v, want ErrRebuildLost", err)
	}
	if err := taker.Abort(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestConformanceFerretDB runs the shared read-model suite against the
// in-process FerretDB 1.24 (the MongoDB wire protocol, small data).
func TestConformanceFerretDB(t *testing.T) {
	// FerretDB reads and decodes every document on each write: keep the
	// randomized subtest small (a real MongoDB runs it at full size).
	readmodeltest.Run(t, func(t *testing.T) (readmodel.Store, func() readmodel.Store) { return openPair(t, ferretURI) },
		readmodeltest.RandomScale(40, 80))
}

// TestConformanceFerretDBManyMatches runs the suite's search subtests with
// Search ranking tier by tier whatever the number of matches (the plan of
// larger data sets), reading a tier's candidates as few at a time as a page
// allows. Small: FerretDB under -race is the slowest package of CI
// (RandomStreams' random queries carry filters, as SearchWithFilters does).
func TestConformanceFerretDBManyMatches(t *testing.T) {
	many := func(s readmodel.Store) readmodel.Store {
		st := s.(*Store)
		st.searchFew, st.searchChunk = 0, 1
		return st
	}
	readmodeltest.Run(t, func(t *testing.T) (readmodel.Store, func() readmodel.Store) {
		s, again := openPair(t, ferretURI)
		return many(s), func() readmodel.Store { return many(again()) }
	}, readmodeltest.RandomScale(20, 40), readmodeltest.Only("SearchSemantics", "SearchRanking",
		"DeletedNeverReturned", "MergedCustomers", "RandomStreams"))
}

// TestSearchTiers: with many matches, the tier plan returns the pages that
// ranking every match does (same order, same totals, keyset and offset
// pages), for queries whose matches spread over several tiers.
func TestSearchTiers(t *testing.T) {
	s := openFerret(t)
	ctx := t.Context()
	names := []string{"Jo Smith", "John Smith", "Johanna Jones", "Smith Johnson", "Jon Snow", "Ann Jo", "Bo Jolly", "Jo", "Smithy Jo"}
	var docs []readmodel.Customer
	for i := range 36 {
		c := testDoc(i+1, names[i%len(names)])
		switch i % 4 {
		case 0:
			c.Company = "Jolly Smithers"
		case 1:
			c.Email = fmt.Sprintf("jo%d@smith.example", i)
		case 2:
			c.Company, c.Email = "Acme", "ann@example.com"
		}
		docs = append(docs, c)
	}
	if err := s.Commit(ctx, docs, 36); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"jo", "smith jo", "c01 jo"} {
		for _, perPage := range []int{5, 100} {
			s.searchFew = 1_000_000
			want := searchAll(t, s, text, perPage)
			s.searchFew, s.searchChunk = 0, 2
			got := searchAll(t, s, text, perPage)
			if !slices.Equal(got, want) {
				t.Errorf("%q perPage %d: tiers give\n%v\nranking all gives\n%v", text, perPage, got, want)
			}
		}
	}
}

// searchAll pages through a search by page number and by keyset and returns
// the codes in order (and checks that both agree).
func searchAll(t *testing.T, s *Store, text string, perPage int) []string {
	t.Helper()
	var byPage, byKey []string
	for page := 1; ; page++ {
		p, err := s.Search(t.Context(), readmodel.Query{Text: text, Page: page, PerPage: perPage})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Items {
			byPage = append(byPage, c.Code)
		}
		if len(p.Items) == 0 || int64(len(byPage)) >= p.Total {
			break
		}
	}
	q := readmodel.Query{Text: text, PerPage: perPage}
	for {
		p, err := s.Search(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Items {
			byKey = append(byKey, c.Code)
		}
		if !p.More || len(p.Items) == 0 {
			break
		}
		if int64(len(byKey)) > p.Total {
			t.Fatalf("%q perPage %d: keyset pages go on past the total %d: %v", text, perPage, p.Total, byKey)
		}
		last := p.Items[len(p.Items)-1]
		terms := search.NewDocTerms(last.Name, last.Company, last.Email, last.Code, last.AbsorbedCodes()...)
		words, _ := search.ParseQuery(text)
		q.After = &readmodel.Position{Score: search.Score(words, terms), Name: search.Fold(last.Name), Code: search.CodeNumber(last.Code)}
	}
	if !slices.Equal(byPage, byKey) {
		t.Errorf("%q perPage %d: pages give %v, keyset gives %v", text, perPage, byPage, byKey)
	}
	return byPage
}

// TestBackfillRankTerms: documents stored before rankTerms existed get
// them on Open, and are found by the tier plan.
func TestBackfillRankTerms(t *testing.T) {
	s := openFerret(t)
	ctx := t.Context()
	c := testDoc(3, "Jolene Parton")
	c.Company = "Nashville Records"
	if err := s.Commit(ctx, []readmodel.Customer{c, testDoc(4, "Joe Bloggs")}, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := s.live().c.UpdateMany(ctx, bson.D{}, bson.D{{Key: "$unset", Value: bson.D{{Key: "rankTerms", Value: ""}}}}); err != nil {
		t.Fatal(err)
	}
	again, err := Open(ctx, ferretURI, s.db.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	var raw bson.M
	if err := again.live().c.FindOne(ctx, bson.D{{Key: "_id", Value: c.ID}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	var terms []string
	arr, _ := raw["rankTerms"].(bson.A)
	for _, v := range arr {
		terms = append(terms, v.(string))
	}
	for _, want := range []string{"k=c003", "k>c0", "n=jolene", "n>jol", "c=nashville", "c>rec"} {
		if !slices.Contains(terms, want) {
			t.Errorf("rankTerms after the backfill %q lack %q", terms, want)
		}
	}
	again.searchFew = 0
	p, err := again.Search(ctx, readmodel.Query{Text: "jo"})
	if err != nil || len(p.Items) != 2 || p.Items[0].Code != "C004" || p.Items[1].Code != "C003" {
		t.Errorf("search after the backfill: %+v, %v", p, err)
	}
}

// TestConformanceMongoDB runs the suite against a real MongoDB when
// CRM_TEST_MONGODB_URL is set (each subtest in its own database, dropped at
// the end).
func TestConformanceMongoDB(t *testing.T) {
	uri := os.Getenv("CRM_TEST_MONGODB_URL")
	if uri == "" {
		t.Skip("CRM_TEST_MONGODB_URL not set")
	}
	readmodeltest.Run(t, func(t *testing.T) (readmodel.Store, func() readmodel.Store) { return openPair(t, uri) })
}

func testDoc(n int, name string) readmodel.Customer {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(n) * time.Second)
	return readmodel.Customer{
		ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), Code: fmt.Sprintf("C%03d", n), Name: name,
		Type: customer.TypeIndividual, Status: customer.StatusLead, Tags: []string{},
		CreatedBy: "user-1", CreatedAt: at, UpdatedAt: at, Version: 1, Seq: uint64(n),
	}
}

// TestDocumentShape pins the stored BSON: the seed's field names and types,
// the projection's fields and the checkpoint document.
func TestDocumentShape(t *testing.T) {
	s := openFerret(t)
	ctx := t.Context()
	c := testDoc(7, "José Müller")
	c.Email, c.Company, c.Tags = "jose@example.com", "Acme Corp", []string{"vip"}
	c.Address = readmodel.Address{City: "Zürich"}
	c.CreatedAt = c.CreatedAt.Add(1234567 * time.Nanosecond)
	if err := s.Commit(ctx, []readmodel.Customer{c}, 42); err != nil {
		t.Fatal(err)
	}
	var raw bson.M
	if err := s.live().c.FindOne(ctx, bson.D{{Key: "customerId", Value: c.ID}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"_id": c.ID, "customerId": c.ID, "customerCode": "C007", "name": "José Müller",
		"email": "jose@example.com", "phone": nil, "company": "Acme Corp", "type": "individual",
		"status": "lead", "notes": nil, "createdBy": "user-1",
		"createdAt": bson.DateTime(c.CreatedAt.UnixMilli()), "createdAtNs": int32(234567),
		"updatedAt": bson.DateTime(c.UpdatedAt.UnixMilli()), "updatedAtNs": int32(0),
		"codeNum": int64(7), "nameKey": "jose muller", "version": int64(1), "seq": int64(7), "deleted": false,
	}
	for k, v := range want {
		if got := raw[k]; got != v {
			t.Errorf("field %s = %#v (%T), want %#v (%T)", k, got, got, v, v)
		}
	}
	addr := bson.M{}
	if a, ok := raw["address"].(bson.D); ok {
		for _, e := range a {
			addr[e.Key] = e.Value
		}
	}
	if len(addr) != 5 || addr["city"] != "Zürich" || addr["street"] != nil {
		t.Errorf("address = %#v", raw["address"])
	}
	terms := func(k string) []string {
		var out []string
		arr, _ := raw[k].(bson.A)
		for _, v := range arr {
			out = append(out, v.(string))
		}
		return out
	}
	if got := terms("tags"); !slices.Equal(got, []string{"vip"}) {
		t.Errorf("tags = %q", got)
	}
	if got := terms("nameTerms"); !slices.Equal(got, []string{"jose", "muller"}) {
		t.Errorf("nameTerms = %q", got)
	}
	for _, p := range []string{"j", "jos", "jose", "mul", "acme", "co", "example", "com", "c", "c007"} {
		if !slices.Contains(terms("searchTerms"), p) {
			t.Errorf("searchTerms %q lacks %q", terms("searchTerms"), p)
		}
	}
	var cp bson.M
	if err := s.live().c.FindOne(ctx, bson.D{{Key: "_id", Value: checkpointID}}).Decode(&cp); err != nil {
		t.Fatal(err)
	}
	if cp["checkpoint"] != int64(42) || len(cp) != 2 {
		t.Errorf("checkpoint document = %#v", cp)
	}
	got, err := s.Get(ctx, c.ID)
	if err != nil || !got.CreatedAt.Equal(c.CreatedAt) || got.CreatedAt.Nanosecond() != c.CreatedAt.Nanosecond() {
		t.Errorf("Get = %+v, %v; want the exact time %v", got.CreatedAt, err, c.CreatedAt)
	}
}

func testContact(n int, name string) readmodel.Contact {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(n) * time.Second)
	return readmodel.Contact{
		ID: fmt.Sprintf("10000000-0000-4000-8000-%012d", n), Name: name, Tags: []string{},
		CreatedBy: "user-1", CreatedAt: at, UpdatedBy: "user-1", UpdatedAt: at, Version: 1, Seq: uint64(n),
	}
}

// TestContactDocumentShape pins the stored BSON of a contact: the field
// names and types, null for unset optional strings, the times split into a
// date and the nanoseconds past it (and read back exactly), and that the
// checkpoint stays in the customers collection.
func TestContactDocumentShape(t *testing.T) {
	s := openFerret(t)
	ctx := t.Context()
	c := testContact(7, "José Müller")
	c.Email, c.Title, c.Tags = "Jose@Example.com", "CFO", []string{"billing"}
	c.UpdatedAt = c.UpdatedAt.Add(1234567 * time.Nanosecond)
	if err := s.CommitBatch(ctx, readmodel.Batch{Contacts: []readmodel.Contact{c}}, 42); err != nil {
		t.Fatal(err)
	}
	var raw bson.M
	if err := s.live().contacts.FindOne(ctx, bson.D{{Key: "_id", Value: c.ID}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"_id": c.ID, "name": "José Müller", "nameKey": "jose muller",
		"email": "Jose@Example.com", "emailKey": "jose@example.com", "phone": nil, "title": "CFO", "notes": nil,
		"createdBy": "user-1", "updatedBy": "user-1",
		"createdAt": bson.DateTime(c.CreatedAt.UnixMilli()), "createdAtNs": int32(0),
		"updatedAt": bson.DateTime(c.UpdatedAt.UnixMilli()), "updatedAtNs": int32(234567),
		"version": int64(1), "seq": int64(7), "deleted": false,
	}
	for k, v := range want {
		if got := raw[k]; got != v {
			t.Errorf("field %s = %#v (%T), want %#v (%T)", k, got, got, v, v)
		}
	}
	if tags, _ := raw["tags"].(bson.A); len(tags) != 1 || tags[0] != "billing" {
		t.Errorf("tags = %#v", raw["tags"])
	}
	// Every prefix of every word of the name, title and email (the search).
	wantTerms := []string{"j", "jo", "jos", "jose", "m", "mu", "mul", "mull", "mulle", "muller", "c", "cf", "cfo",
		"e", "ex", "exa", "exam", "examp", "exampl", "example", "co", "com"}
	if terms, _ := raw["searchTerms"].(bson.A); fmt.Sprint(terms) != fmt.Sprint(wantTerms) {
		t.Errorf("searchTerms = %v, want %v", terms, wantTerms)
	}
	if len(raw) != len(want)+2 {
		t.Errorf("document has %d fields, want %d: %v", len(raw), len(want)+2, raw)
	}
	if cp, err := s.Checkpoint(ctx); err != nil || cp != 42 {
		t.Errorf("Checkpoint = %d, %v; want 42", cp, err)
	}
	if n, err := s.live().contacts.CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
		t.Errorf("contacts collection holds %d documents, %v; want only the contact", n, err)
	}
	got, err := s.GetContact(ctx, c.ID)
	if err != nil || got.UpdatedAt.Nanosecond() != c.UpdatedAt.Nanosecond() || got.UpdatedAt.Location() != time.UTC {
		t.Errorf("GetContact = %+v, %v; want the exact time %v", got.UpdatedAt, err, c.UpdatedAt)
	}
}

func indexNames(t *testing.T, c *mongo.Collection) []string {
	t.Helper()
	specs, err := c.Indexes().ListSpecifications(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sp := range specs {
		names = append(names, sp.Name)
	}
	return names
}

// TestIndexes checks the indexes of both collections, that Open is
// idempotent, and that a swapped-in rebuild has them too.
func TestIndexes(t *testing.T) {
	s := openFerret(t)
	ctx := t.Context()
	want := []string{"_id_", "customerId_1", "customerCode_1", "email_1", "phone_1", "company_1", "type_1",
		"status_1", "createdBy_1", "tags_1", "createdAt_-1", "searchTerms_1", "rankTerms_1_nameKey_1_codeNum_1",
		"deleted_1_createdAt_1_createdAtNs_1_codeNum_1", "deleted_1_updatedAt_1_updatedAtNs_1_codeNum_1",
		"deleted_1_nameKey_1_codeNum_1", "deleted_1_codeNum_1",
		"deleted_1_status_1_createdAt_1_createdAtNs_1_codeNum_1",
		"deleted_1_tags_1_createdAt_1_createdAtNs_1_codeNum_1"}
	wantContacts := []string{"_id_", "deleted_1_nameKey_1__id_1", "deleted_1_createdAt_1_createdAtNs_1__id_1",
		"deleted_1_updatedAt_1_updatedAtNs_1__id_1", "tags_1_deleted_1_nameKey_1__id_1",
		"tags_1_deleted_1_createdAt_1_createdAtNs_1__id_1", "tags_1_deleted_1_updatedAt_1_updatedAtNs_1__id_1", "emailKey_1_deleted_1"}
	wantLinks := []string{"_id_", "customerId_1_ended_1", "contactId_1_ended_1"}
	wantActivities := []string{"_id_", "customerId_1"}
	wantTimeline := []string{"_id_", "customerId_1_at_1_atNs_1_key_1", "customerId_1_kind_1_at_1_atNs_1_key_1"}
	check := func(what string) {
		t.Helper()
		live := s.live()
		for c, want := range map[*mongo.Collection][]string{live.c: want, live.contacts: wantContacts, live.links: wantLinks,
			live.activities: wantActivities, live.timeline: wantTimeline} {
			got := indexNames(t, c)
			for _, n := range want {
				if !slices.Contains(got, n) {
					t.Errorf("%s: index %s of %s missing (have %q)", what, n, c.Name(), got)
				}
			}
		}
	}
	check("after Open")
	again, err := Open(ctx, ferretURI, s.db.Name())
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	again.Close()
	rb, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rb.CommitBatch(ctx, readmodel.Batch{Customers: []readmodel.Customer{testDoc(1, "Ann")},
		Contacts: []readmodel.Contact{testContact(2, "Bea")}, Links: []readmodel.Link{testLink(1, 2, 3)}}, 3); err != nil {
		t.Fatal(err)
	}
	if err := rb.Swap(ctx); err != nil {
		t.Fatal(err)
	}
	check("after Swap")
	if _, err := s.GetContact(ctx, testContact(2, "Bea").ID); err != nil {
		t.Errorf("the rebuilt contact after Swap: %v", err)
	}
	if got, err := s.CustomerContacts(ctx, testDoc(1, "Ann").ID); err != nil || len(got) != 1 {
		t.Errorf("the rebuilt link after Swap: %+v, %v", got, err)
	}
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return n == leaseCollection })
	slices.Sort(names)
	if !slices.Equal(names, []string{ActivitiesCollection, LinksCollection, ContactsCollection, Collection, TimelineCollection}) {
		t.Errorf("collections after Swap: %q", names)
	}
	if n, err := s.db.Collection(leaseCollection).CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Errorf("the lease is still held after Swap: %d, %v", n, err)
	}
}

// TestUniqueCode: a different customer with a taken code is an error, not a
// silently ignored duplicate.
func TestUniqueCode(t *testing.T) {
	s := openFerret(t)
	ctx := t.Context()
	a := testDoc(1, "Ann")
	if err := s.Commit(ctx, []readmodel.Customer{a}, 1); err != nil {
		t.Fatal(err)
	}
	b := testDoc(2, "Bob")
	b.Code = a.Code
	if err := s.Commit(ctx, []readmodel.Customer{b}, 2); err == nil {
		t.Errorf("Commit of a second customer with code %s succeeded", a.Code)
	}
	if cp, _ := s.Checkpoint(ctx); cp != 1 {
		t.Errorf("checkpoint advanced to %d over a failed commit", cp)
	}
}

// TestLargeBatches writes and rewrites more documents than one bulk-write
// command may carry on FerretDB (where 100 statements matching existing
// documents hang), so the chunking is exercised.
func TestLargeBatches(t *testing.T) {
	s := openFerret(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const n = maxBulk + 1 // 100 replaces of existing documents: two commands
	var docs []readmodel.Customer
	for i := 1; i <= n; i++ {
		docs = append(docs, testDoc(i, "Person "+strconv.Itoa(i)))
	}
	if err := s.Commit(ctx, docs, n); err != nil {
		t.Fatal(err)
	}
	for i := range docs {
		docs[i].Name, docs[i].Seq, docs[i].Version = "Renamed "+strconv.Itoa(i), uint64(n+i+1), 2
	}
	if err := s.Commit(ctx, docs, 2*n); err != nil {
		t.Fatal(err)
	}
	stale := slices.Clone(docs)
	for i := range stale {
		stale[i].Name, stale[i].Seq = "Stale", 1
	}
	if err := s.Commit(ctx, stale, 2*n); err != nil { // every document is older
		t.Fatal(err)
	}
	p, err := s.Search(ctx, readmodel.Query{Text: "renamed", Page: 2, PerPage: 100})
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != n || len(p.Items) != n-100 {
		t.Errorf("Search renamed: total %d, %d items; want %d, %d", p.Total, len(p.Items), n, n-100)
	}
	if p, err := s.Search(ctx, readmodel.Query{Text: "stale", Page: 1, PerPage: 10}); err != nil || p.Total != 0 {
		t.Errorf("Search stale: %d, %v", p.Total, err)
	}
}

// TestConcurrentWriters: two projectors (two Stores on one database) write
// overlapping versions of the same customers at once; every customer ends at
// its highest version, whoever won each race of first inserts.
func TestConcurrentWriters(t *testing.T) {
	a := openFerret(t)
	ctx := t.Context()
	b, err := Open(ctx, ferretURI, a.db.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const customers, versions = 20, 4
	batches := func(reverse bool) [][]readmodel.Customer {
		var out [][]readmodel.Customer
		for v := 1; v <= versions; v++ {
			var batch []readmodel.Customer
			for i := 1; i <= customers; i++ {
				c := testDoc(i, fmt.Sprintf("Person %d v%d", i, v))
				c.Version, c.Seq = uint64(v), uint64(v*100+i)
				batch = append(batch, c)
			}
			if reverse {
				slices.Reverse(batch)
			}
			out = append(out, batch)
		}
		return out
	}
	errs := make(chan error, 2)
	for i, s := range []*Store{a, b} {
		go func() {
			for _, batch := range batches(i == 1) {
				if err := s.Commit(ctx, batch, batch[0].Seq); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
	ids := make([]string, customers)
	for i := range ids {
		ids[i] = testDoc(i+1, "").ID
	}
	got, err := a.Load(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if c := got[id]; c.Version != versions || c.Name != fmt.Sprintf("Person %d v%d", i+1, versions) {
			t.Errorf("customer %d: version %d %q, want the last version", i+1, c.Version, c.Name)
		}
	}
}

// TestLiteralFilters: request values are compared as literals, never read
// as operators or patterns.
func TestLiteralFilters(t *testing.T) {
	s := openFerret(t)
	ctx := t.Context()
	if err := s.Commit(ctx, []readmodel.Customer{testDoc(1, "Ann")}, 1); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"$ne", `{"$ne": ""}`, ".*", "^", "$where", "lead "} {
		for _, q := range []readmodel.Query{{Status: v}, {Type: v}, {Tag: v}, {CreatedBy: v}} {
			q.Page, q.PerPage = 1, 10
			p, err := s.List(ctx, q)
			if err != nil || p.Total != 0 || len(p.Items) != 0 {
				t.Errorf("List %+v = %d items, total %d, %v; want nothing", q, len(p.Items), p.Total, err)
			}
		}
		if _, err := s.Get(ctx, v); !errors.Is(err, readmodel.ErrNotFound) {
			t.Errorf("Get(%q) = %v", v, err)
		}
	}
	if _, err := s.Get(ctx, checkpointID); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("Get(checkpoint) = %v", err)
	}
	if got, err := s.Load(ctx, []string{checkpointID}); err != nil || len(got) != 0 {
		t.Errorf("Load(checkpoint) = %v, %v", got, err)
	}
	if err := s.Commit(ctx, []readmodel.Customer{{ID: checkpointID, Seq: 9}}, 9); err == nil {
		t.Errorf("Commit of a document with the checkpoint's id succeeded")
	}
}

func TestOpenUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300&connectTimeoutMS=300", "crm")
	if !errors.Is(err, readmodel.ErrUnavailable) {
		t.Errorf("Open of a closed port = %v, want ErrUnavailable", err)
	}
}

func TestClosed(t *testing.T) {
	s, err := Open(t.Context(), ferretURI, "crm_test_closed")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	ctx := t.Context()
	checks := map[string]error{"Ping": s.Ping(ctx), "Commit": s.Commit(ctx, nil, 1)}
	_, checks["Get"] = s.Get(ctx, "x")
	_, checks["List"] = s.List(ctx, readmodel.Query{})
	_, checks["Search"] = s.Search(ctx, readmodel.Query{Text: "x"})
	_, checks["Load"] = s.Load(ctx, []string{"x"})
	_, checks["Checkpoint"] = s.Checkpoint(ctx)
	_, checks["Rebuild"] = s.Rebuild(ctx)
	_, checks["LoadContacts"] = s.LoadContacts(ctx, []string{"x"})
	_, checks["GetContact"] = s.GetContact(ctx, "x")
	_, checks["ListContacts"] = s.ListContacts(ctx, readmodel.ContactQuery{})
	_, checks["CustomerContacts"] = s.CustomerContacts(ctx, "x")
	_, checks["ContactCustomers"] = s.ContactCustomers(ctx, "x")
	_, checks["LoadActivities"] = s.LoadActivities(ctx, []string{"x"})
	_, checks["GetActivity"] = s.GetActivity(ctx, "x")
	_, checks["Timeline"] = s.Timeline(ctx, readmodel.TimelineQuery{CustomerIDs: []string{"x"}})
	for op, err := range checks {
		if !errors.Is(err, readmodel.ErrUnavailable) {
			t.Errorf("%s after Close = %v, want ErrUnavailable", op, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestDirtyDuplicateKeys: a key a crash left on the dirty list (its
// customers written, its cluster not counted again) is counted by the next
// Commit, whatever that Commit writes: here a stale cluster of a key nobody
// has any more is removed, and a missing one is created.
func TestDirtyDuplicateKeys(t *testing.T) {
	ctx := t.Context()
	s := openFerret(t)
	a, b := testDoc(1, "Ann"), testDoc(2, "Bob")
	a.Email, b.Email = "same@example.com", "same@example.com"
	if err := s.Commit(ctx, []readmodel.Customer{a, b}, 2); err != nil {
		t.Fatal(err)
	}
	c := s.live()
	// The crash: b's new email is written, its clusters are not recounted.
	b.Email, b.Seq, b.Version = "other@example.com", 3, 2
	stale := dupKey("email", "same@example.com")
	if err := c.markDirty(ctx, []string{stale}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.write(ctx, []readmodel.Customer{b}); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Duplicates(ctx, readmodel.ClusterQuery{}); err != nil || p.Total != 1 {
		t.Fatalf("before the next commit: %+v, %v (want the stale cluster)", p, err)
	}
	// The next commit writes an unrelated customer.
	if err := s.Commit(ctx, []readmodel.Customer{testDoc(3, "Cid")}, 4); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Duplicates(ctx, readmodel.ClusterQuery{}); err != nil || p.Total != 0 {
		t.Fatalf("after the next commit: %+v, %v", p, err)
	}
	var dirty struct {
		Keys []string `bson:"keys"`
	}
	if err := c.c.FindOne(ctx, bson.D{{Key: "_id", Value: dirtyID}}).Decode(&dirty); err != nil || len(dirty.Keys) != 0 {
		t.Fatalf("dirty list %v, %v", dirty.Keys, err)
	}
}

// testLink is the link of testDoc(customer) to testContact(contact) at
// stream sequence seq.
func testLink(customer, contact, seq int) readmodel.Link {
	return readmodel.Link{
		CustomerID: testDoc(customer, "").ID, ContactID: testContact(contact, "").ID,
		LinkedBy: "user-1", LinkedAt: time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC).Add(time.Duration(seq) * time.Second),
		Seq: uint64(seq),
	}
}

// TestLinkDocumentShape pins the stored BSON of a link: its _id, the field
// names and types, null for unset optional strings, the time split into a
// date and the nanoseconds past it (and read back exactly).
func TestLinkDocumentShape(t *testing.T) {
	s := openFerret(t)
	ctx := t.Context()
	l := testLink(1, 2, 9)
	l.Role, l.Primary, l.From = "billing", true, "2026-01-01"
	l.LinkedAt = l.LinkedAt.Add(1234567 * time.Nanosecond)
	b := readmodel.Batch{Customers: []readmodel.Customer{testDoc(1, "Ann")}, Contacts: []readmodel.Contact{testContact(2, "Bea")},
		Links: []readmodel.Link{l}}
	if err := s.CommitBatch(ctx, b, 9); err != nil {
		t.Fatal(err)
	}
	var raw bson.M
	if err := s.live().links.FindOne(ctx, bson.D{}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"_id": l.CustomerID + "/" + l.ContactID, "customerId": l.CustomerID, "contactId": l.ContactID,
		"role": "billing", "primary": true, "from": "2026-01-01", "to": nil, "linkedBy": "user-1",
		"linkedAt": bson.DateTime(l.LinkedAt.UnixMilli()), "linkedAtNs": int32(234567),
		"seq": int64(9), "ended": false,
	}
	for k, v := range want {
		if got := raw[k]; got != v {
			t.Errorf("field %s = %#v (%T), want %#v (%T)", k, got, got, v, v)
		}
	}
	if len(raw) != len(want) {
		t.Errorf("document has %d fields, want %d: %v", len(raw), len(want), raw)
	}
	got, err := s.CustomerContacts(ctx, l.CustomerID)
	if err != nil || len(got) != 1 {
		t.Fatalf("CustomerContacts = %+v, %v", got, err)
	}
	if got[0].Link != l || got[0].Link.LinkedAt.Location() != time.UTC {
		t.Errorf("link read back = %+v, want %+v", got[0].Link, l)
	}
	if got[0].Contact.ID != l.ContactID || got[0].Contact.Name != "Bea" {
		t.Errorf("contact = %+v", got[0].Contact)
	}
}

// TestLinks: the joins keep the live links of live contacts and customers
// only, in their orders; link writes are guarded by seq, so a late or
// duplicate event neither revives an ended link nor regresses one; and a
// batch of links larger than one bulk-write command is written whole.
func TestLinks(t *testing.T) {
	s := openFerret(t)
	ctx := t.Context()
	// Customers 1–4: Zoe (C001), Anna (C002), Anna (C003), Ann deleted
	// (C004), and 5 merged into 2. Contacts 11–15: Ünal, Bob, Ünal, Al
	// deleted, Ed.
	ann := testDoc(2, "Anna")
	anna := testDoc(3, "anna")
	gone := testDoc(4, "Ann")
	gone.Deleted = true
	merged := testDoc(5, "Aaron")
	merged.MergedInto = ann.ID
	customers := []readmodel.Customer{testDoc(1, "Zoe"), ann, anna, gone, merged}
	deleted := testContact(14, "Al")
	deleted.Deleted = true
	contacts := []readmodel.Contact{testContact(11, "Ünal"), testContact(12, "Bob"), testContact(13, "unal"), deleted,
		testContact(15, "Ed")}
	var links []readmodel.Link
	seq := 100
	for _, k := range []int{11, 12, 13, 14, 15} { // customer 1's contacts, Ed primary
		seq++
		l := testLink(1, k, seq)
		l.Primary = k == 15
		links = append(links, l)
	}
	for _, c := range []int{1, 2, 3, 4, 5} { // contact 11's customers
		if c != 1 {
			seq++
			links = append(links, testLink(c, 11, seq))
		}
	}
	ended := testLink(2, 12, 200)
	ended.Ended = true
	links = append(links, ended)
	if err := s.CommitBatch(ctx, readmodel.Batch{Customers: customers, Contacts: contacts, Links: links}, 200); err != nil {
		t.Fatal(err)
	}
	contactIDs := func(got []readmodel.LinkedContact) []string {
		var out []string
		for _, g := range got {
			if g.Link.CustomerID == "" || g.Link.ContactID != g.Contact.ID {
				t.Errorf("link %+v joined with contact %s", g.Link, g.Contact.ID)
			}
			out = append(out, g.Contact.Name)
		}
		return out
	}
	customerCodes := func(got []readmodel.LinkedCustomer) []string {
		var out []string
		for _, g := range got {
			if g.Link.ContactID == "" || g.Link.CustomerID != g.Customer.ID {
				t.Errorf("link %+v joined with customer %s", g.Link, g.Customer.ID)
			}
			out = append(out, g.Customer.Code)
		}
		return out
	}
	check := func(what string, wantContacts, wantCustomers, wantBob []string) {
		t.Helper()
		got, err := s.CustomerContacts(ctx, testDoc(1, "").ID)
		if names := contactIDs(got); err != nil || !slices.Equal(names, wantContacts) {
			t.Errorf("%s: CustomerContacts = %q, %v; want %q", what, names, err, wantContacts)
		}
		gotC, err := s.ContactCustomers(ctx, testContact(11, "").ID)
		if codes := customerCodes(gotC); err != nil || !slices.Equal(codes, wantCustomers) {
			t.Errorf("%s: ContactCustomers = %q, %v; want %q", what, codes, err, wantCustomers)
		}
		gotB, err := s.ContactCustomers(ctx, testContact(12, "").ID)
		if codes := customerCodes(gotB); err != nil || !slices.Equal(codes, wantBob) {
			t.Errorf("%s: ContactCustomers of Bob = %q, %v; want %q", what, codes, err, wantBob)
		}
	}
	// The primary first, then by folded name ("unal" twice: by id), then id.
	check("first commit", []string{"Ed", "Bob", "Ünal", "unal"}, []string{"C002", "C003", "C001"}, []string{"C001"})

	// Duplicate and stale rewrites change nothing: the ended link stays
	// ended, the live ones keep their attributes.
	if err := s.CommitBatch(ctx, readmodel.Batch{Links: links}, 200); err != nil {
		t.Fatal(err)
	}
	stale := testLink(2, 12, 150)
	old := testLink(1, 15, 50) // not primary, older than the stored one
	if err := s.CommitBatch(ctx, readmodel.Batch{Links: []readmodel.Link{stale, old}}, 201); err != nil {
		t.Fatal(err)
	}
	check("stale rewrite", []string{"Ed", "Bob", "Ünal", "unal"}, []string{"C002", "C003", "C001"}, []string{"C001"})

	// Newer events win: customer 1 unlinks Bob, customer 2 links him again.
	unlinked := testLink(1, 12, 300)
	unlinked.Ended = true
	relinked := testLink(2, 12, 301)
	relinked.Role = "owner"
	if err := s.CommitBatch(ctx, readmodel.Batch{Links: []readmodel.Link{unlinked, relinked}}, 301); err != nil {
		t.Fatal(err)
	}
	check("newer events", []string{"Ed", "Ünal", "unal"}, []string{"C002", "C003", "C001"}, []string{"C002"})
	if got, err := s.ContactCustomers(ctx, testContact(12, "").ID); err != nil || len(got) != 1 || got[0].Link.Role != "owner" {
		t.Errorf("relinked = %+v, %v", got, err)
	}

	// Unknown ids have no links (an empty list, not nil).
	if got, err := s.CustomerContacts(ctx, "nobody"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("CustomerContacts of an unknown customer = %#v, %v", got, err)
	}
	if got, err := s.ContactCustomers(ctx, "nobody"); err != nil || got == nil || len(got) != 0 {
		t.Errorf("ContactCustomers of an unknown contact = %#v, %v", got, err)
	}

	// More than one bulk write of new links, then of replacements.
	many := make([]readmodel.Link, 0, maxBulk+1)
	for i := range maxBulk + 1 {
		many = append(many, readmodel.Link{CustomerID: testDoc(1, "").ID, ContactID: fmt.Sprintf("k%03d", i),
			LinkedBy: "user-1", LinkedAt: time.Unix(0, 0).UTC(), Seq: uint64(400 + i)})
	}
	if err := s.CommitBatch(ctx, readmodel.Batch{Links: many}, 600); err != nil {
		t.Fatal(err)
	}
	for i := range many {
		many[i].Seq, many[i].Ended = uint64(700+i), true
	}
	if err := s.CommitBatch(ctx, readmodel.Batch{Links: many}, 900); err != nil {
		t.Fatal(err)
	}
	if n, err := s.live().links.CountDocuments(ctx, bson.D{{Key: "ended", Value: true}, {Key: "seq", Value: bson.D{{Key: "$gte", Value: 700}}}}); err != nil || n != int64(len(many)) {
		t.Errorf("replaced links: %d, %v; want %d", n, err, len(many))
	}

	// A link document without its ids is refused, and nothing is written.
	if err := s.CommitBatch(ctx, readmodel.Batch{Links: []readmodel.Link{{CustomerID: "x", Seq: 1}}}, 901); !errors.Is(err, readmodel.ErrInternal) {
		t.Errorf("CommitBatch of a link without a contact id: %v", err)
	}
	if cp, err := s.Checkpoint(ctx); err != nil || cp != 900 {
		t.Errorf("Checkpoint = %d, %v; want 900", cp, err)
	}
}
