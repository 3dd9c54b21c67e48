package sqlite

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"crm/internal/customer"
	"crm/internal/readmodel"
	"crm/internal/readmodel/readmodeltest"
	"crm/internal/search"
)

func openTemp(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "readmodel.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openPair opens a store on a new temp file, and returns a function that
// opens another one on the same file.
func openPair(t *testing.T) (*Store, func() *Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "readmodel.db")
	open := func() *Store {
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return open(), open
}

func TestConformance(t *testing.T) {
	readmodeltest.Run(t, func(t *testing.T) (readmodel.Store, func() readmodel.Store) {
		s, again := openPair(t)
		return s, func() readmodel.Store { return again() }
	})
}

// TestConformanceManyMatches runs the suite with List always walking the
// index of the order, and Search ranking tier by tier (a tier of two or
// more matches walked in name order, a single match read), the plans that
// larger data sets take, reading a tier's candidates a few at a time.
func TestConformanceManyMatches(t *testing.T) {
	many := func(s *Store) *Store { s.fewMatches, s.searchFew, s.searchChunk = 0, 2, 1; return s }
	readmodeltest.Run(t, func(t *testing.T) (readmodel.Store, func() readmodel.Store) {
		s, again := openPair(t)
		return many(s), func() readmodel.Store { return many(again()) }
	})
}

// TestRebuildTakeover: a rebuild whose lease went stale (its process died)
// is taken over by the next Rebuild, its copy dropped; the old handle then
// fails with ErrRebuildLost.
func TestRebuildTakeover(t *testing.T) {
	s, again := openPair(t)
	ctx := t.Context()
	old, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Commit(ctx, []readmodel.Customer{{ID: "00000000-0000-4000-8000-000000000001", Code: "C001", Name: "Old",
		Type: "individual", Status: "lead", Version: 1, Seq: 1}}, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, "UPDATE rebuild_lease SET heartbeat = ?",
		time.Now().Add(-readmodel.RebuildLease-time.Second).UnixNano()); err != nil {
		t.Fatal(err)
	}
	taker, err := again().Rebuild(ctx)
	if err != nil {
		t.Fatalf("Rebuild over a stale lease: %v", err)
	}
	if n, err := taker.Checkpoint(ctx); err != nil || n != 0 {
		t.Fatalf("the taker's copy is at %d (%v), want a fresh one", n, err)
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

func TestOpenUnavailable(t *testing.T) {
	dir := t.TempDir()
	for name, path := range map[string]string{
		"missing directory": filepath.Join(dir, "no", "such", "dir", "x.db"),
		"a directory":       dir,
	} {
		t.Run(name, func(t *testing.T) {
			s, err := Open(t.Context(), path)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", path)
			}
			if !errors.Is(err, readmodel.ErrUnavailable) {
				t.Errorf("Open(%q) = %v, want ErrUnavailable", path, err)
			}
		})
	}
	t.Run("not a database", func(t *testing.T) {
		path := filepath.Join(dir, "garbage.db")
		if err := os.WriteFile(path, []byte(strings.Repeat("not sqlite ", 1000)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(t.Context(), path); !errors.Is(err, readmodel.ErrUnavailable) {
			t.Errorf("Open(garbage) = %v, want ErrUnavailable", err)
		}
	})
}

func TestClosed(t *testing.T) {
	s := openTemp(t)
	s.Close()
	ctx := t.Context()
	if err := s.Ping(ctx); !errors.Is(err, readmodel.ErrUnavailable) {
		t.Errorf("Ping after Close = %v", err)
	}
	if _, err := s.Get(ctx, "x"); !errors.Is(err, readmodel.ErrUnavailable) {
		t.Errorf("Get after Close = %v", err)
	}
	if _, err := s.List(ctx, readmodel.Query{Page: 1, PerPage: 1}); !errors.Is(err, readmodel.ErrUnavailable) {
		t.Errorf("List after Close = %v", err)
	}
	if err := s.Commit(ctx, nil, 1); !errors.Is(err, readmodel.ErrUnavailable) {
		t.Errorf("Commit after Close = %v", err)
	}
}

func TestPragmas(t *testing.T) {
	s := openTemp(t)
	for pragma, want := range map[string]int64{"page_size": 2048, "query_only": 1} {
		var got int64
		if err := s.r.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil || got != want {
			t.Errorf("reader PRAGMA %s = %d, %v; want %d", pragma, got, err, want)
		}
	}
	var mode string
	if err := s.r.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	if _, err := s.r.ExecContext(t.Context(), "DELETE FROM checkpoint"); err == nil {
		t.Errorf("a reader connection can write")
	}
}

// TestCounts checks, after random commits, that the count tables equal the
// counts of the customers and tag tables they stand for.
func TestCounts(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	r := rand.New(rand.NewPCG(11, 12))
	var all []readmodel.Customer
	for round := range 30 {
		var docs []readmodel.Customer
		for range 1 + r.IntN(30) {
			if len(all) == 0 || r.IntN(3) == 0 {
				c := benchDoc(r, len(all)+1)
				c.Seq = uint64(round*100 + len(docs) + 1)
				all = append(all, c)
				docs = append(docs, c)
				continue
			}
			i := r.IntN(len(all))
			c := all[i]
			c.Seq = uint64(round*100 + len(docs) + 1)
			c.Status = benchStatuses[r.IntN(len(benchStatuses))]
			c.CreatedBy = fmt.Sprintf("user-%d", r.IntN(3))
			c.Tags = []string{benchTags[r.IntN(3)], benchTags[r.IntN(3)]} // repeats too
			c.Deleted = r.IntN(8) == 0
			all[i] = c
			docs = append(docs, c)
		}
		if err := s.Commit(ctx, docs, uint64(round*100+99)); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []struct{ counts, truth string }{
		{"SELECT status, type, created_by, n FROM customer_counts ORDER BY 1, 2, 3",
			"SELECT status, type, created_by, count(*) FROM customers WHERE deleted = 0 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"},
		{"SELECT tag, status, type, created_by, n FROM customer_tag_counts ORDER BY 1, 2, 3, 4",
			"SELECT t.tag, c.status, c.type, c.created_by, count(*) FROM customer_tags AS t JOIN customers AS c ON c.id = t.customer" +
				" WHERE c.deleted = 0 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"},
	} {
		if got, want := dump(t, s, q.counts), dump(t, s, q.truth); got != want || got == "" {
			t.Errorf("count table differs:\n got %s\nwant %s", got, want)
		}
	}
}

func dump(t *testing.T, s *Store, query string) string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(&b, vals...)
	}
	return b.String()
}

// TestSchemaChange opens a database of another schema version: it is
// emptied for the projector to rebuild.
func TestSchemaChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "readmodel.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(t.Context(), []readmodel.Customer{testDoc(1)}, 9); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(t.Context(), "PRAGMA user_version = 1"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if n, err := s.Checkpoint(t.Context()); err != nil || n != 0 {
		t.Errorf("Checkpoint after a schema change = %d, %v; want 0", n, err)
	}
	if _, err := s.Get(t.Context(), testDoc(1).ID); !errors.Is(err, readmodel.ErrNotFound) {
		t.Errorf("Get after a schema change: %v, want ErrNotFound", err)
	}
	if err := s.Commit(t.Context(), []readmodel.Customer{testDoc(1)}, 1); err != nil {
		t.Errorf("Commit after a schema change: %v", err)
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "readmodel.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	c := testDoc(1)
	if err := s.Commit(t.Context(), []readmodel.Customer{c}, 7); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if n, err := s.Checkpoint(t.Context()); err != nil || n != 7 {
		t.Errorf("Checkpoint after reopen = %d, %v", n, err)
	}
	if _, err := s.Get(t.Context(), c.ID); err != nil {
		t.Errorf("Get after reopen: %v", err)
	}
}

func TestRebuildInProgress(t *testing.T) {
	s := openTemp(t)
	rb, err := s.Rebuild(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rebuild(t.Context()); !errors.Is(err, readmodel.ErrRebuildInProgress) {
		t.Errorf("second Rebuild = %v, want ErrRebuildInProgress", err)
	}
	if err := rb.Abort(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := rb.Commit(t.Context(), nil, 1); err == nil {
		t.Errorf("Commit on an aborted rebuild succeeded")
	}
}

// TestSwapUnderReaders swaps while readers query without pause: no reader
// may fail or see a mix of old and new data.
func TestSwapUnderReaders(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	old := make([]readmodel.Customer, 50)
	for i := range old {
		old[i] = testDoc(i + 1)
	}
	if err := s.Commit(ctx, old, 50); err != nil {
		t.Fatal(err)
	}
	rb, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fresh := make([]readmodel.Customer, 80)
	for i := range fresh {
		fresh[i] = testDoc(i + 1001)
	}
	if err := rb.Commit(ctx, fresh, 80); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var (
		wg             sync.WaitGroup
		sawOld, sawNew atomic.Int64 // queries answered from each model
	)
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var p readmodel.Page
				var err error
				if (g+i)%2 == 0 {
					p, err = s.List(ctx, readmodel.Query{Page: 1, PerPage: 5})
				} else {
					p, err = s.Search(ctx, readmodel.Query{Text: "person", Page: 1, PerPage: 5})
				}
				switch {
				case err != nil:
				case p.Total == 50:
					sawOld.Add(1)
				case p.Total == 80:
					sawNew.Add(1)
				default:
					err = fmt.Errorf("total %d: neither the old nor the new model", p.Total)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// Let the readers run before and after the swap.
	waitFor(t, "queries on the old model", func() bool { return sawOld.Load() >= 20 || len(errs) > 0 })
	if err := rb.Swap(ctx); err != nil {
		t.Fatalf("Swap: %v", err)
	}
	waitFor(t, "queries on the new model", func() bool { return sawNew.Load() >= 20 || len(errs) > 0 })
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("reader: %v", err)
	}
	if p, err := s.List(ctx, readmodel.Query{Page: 1, PerPage: 1}); err != nil || p.Total != 80 {
		t.Errorf("after Swap: total %d, %v", p.Total, err)
	}
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestQueryPlans checks with EXPLAIN QUERY PLAN that List walks an index in
// the requested order (no sort of the whole table) and that Search is
// driven by the search index.
func TestQueryPlans(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	plan := func(query string, args ...any) string {
		t.Helper()
		rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatalf("explain %s: %v", query, err)
		}
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, detail)
		}
		return strings.Join(lines, "; ")
	}
	for _, sort := range []string{"", readmodel.SortUpdatedAt, readmodel.SortName, readmodel.SortCustomerCode} {
		for _, desc := range []bool{false, true} {
			for _, f := range []readmodel.Query{{}, {Status: "active"}, {Tag: "vip"}, {Type: "business", CreatedBy: "u"},
				{Status: "lead", Tag: "vip"}} {
				q := f
				q.Sort, q.Desc = sort, desc
				order, err := listOrder(q.Sort, q.Desc)
				if err != nil {
					t.Fatal(err)
				}
				// Many matches: an index in the order, never a sort.
				query, args := listSQL(q, order, false)
				p := plan(query, append(args, 20, 0)...)
				t.Logf("List %+v, many: %s", q, p)
				if strings.Contains(p, "TEMP B-TREE") || !strings.Contains(p, "USING COVERING INDEX") &&
					!strings.Contains(p, "USING INDEX") {
					t.Errorf("List %+v (many matches) plan: %s", q, p)
				}
				// Few matches: collected through the tag table or a
				// filter's index first.
				query, args = listSQL(q, order, true)
				p = plan(query, append(args, 20, 0)...)
				t.Logf("List %+v, few: %s", q, p)
				want := "INDEX"
				if q.Tag != "" {
					want = "SEARCH t USING PRIMARY KEY (tag=?)"
				}
				if !strings.Contains(p, want) || strings.Contains(p, "SCAN c") {
					t.Errorf("List %+v (few matches) plan: %s", q, p)
				}
				// The count reads only the count tables.
				query, args = countSQL(q)
				p = plan(query, args...)
				t.Logf("count %+v: %s", q, p)
				if strings.Contains(p, " c ") || strings.Contains(p, "customers ") || !strings.Contains(p, "counts") {
					t.Errorf("count %+v plan: %s", q, p)
				}
			}
		}
	}
	// Load (the projector's batch): each id through the unique index.
	if p := plan(loadSQL(live), `["a","b"]`); !strings.Contains(p, "USING INDEX") || strings.Contains(p, "SCAN c") {
		t.Errorf("load plan: %s", p)
	}
	// Possible duplicates and cluster members: the partial index of the
	// key, in order (not the created_at index, scanning live customers).
	for _, col := range dupColumns {
		for _, q := range []struct {
			sql  string
			args []any
		}{{possibleDuplicatesSQL(col), []any{"k", "id", 20}}, {clusterMembersSQL(col), []any{"k", 20}}} {
			if p := plan(q.sql, q.args...); !strings.Contains(p, "INDEX customers_"+col) || strings.Contains(p, "TEMP B-TREE") {
				t.Errorf("%s plan: %s", col, p)
			}
		}
	}
	// Cluster maintenance in the projector: every look-up of customers
	// through the partial index of the key.
	for _, col := range dupColumns {
		for _, st := range duplicateStatements(live, col) {
			p := plan(st, `{"k":1}`, "phone")
			for _, step := range strings.Split(p, "; ") {
				if (strings.Contains(step, " c ") || strings.HasSuffix(step, " c")) && !strings.Contains(step, "INDEX customers_"+col) {
					t.Errorf("%s maintenance plan: %s", col, p)
				}
			}
		}
	}
	// Clusters: an index in the order, of every kind or one.
	for _, where := range []string{"", " WHERE kind = 'phone'"} {
		if p := plan(clustersSQL(where), 20, 0); !strings.Contains(p, "INDEX") || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("clusters%s plan: %s", where, p)
		}
	}
	// Search: the FTS index drives, customers are read by primary key.
	p := plan("SELECT c.id FROM customers_fts CROSS JOIN customers AS c ON c.sid = customers_fts.rowid"+
		" WHERE customers_fts MATCH ? AND +c.deleted = 0 AND +c.status = ?", `"nacm"*`, "active")
	if !strings.Contains(p, "VIRTUAL TABLE INDEX") || !strings.Contains(p, "INDEX customers_sid") {
		t.Errorf("Search plan: %s", p)
	}
	// A tier's candidates: their names from the sid index alone, then
	// their scores and filters by row id, whatever the filters.
	if p := plan(candidateKeysSQL(), "[1,2]"); !strings.Contains(p, "COVERING INDEX customers_sid") {
		t.Errorf("candidate keys plan: %s", p)
	}
	score, sargs := scoreExpr([]string{"jo", "sm"}, -1000)
	for _, q := range []readmodel.Query{{}, {Status: "active"}, {Type: "business", CreatedBy: "u"}, {Tag: "vip", Status: "lead"}} {
		where, fargs := filters(q, false)
		args := append(append([]any{"[1,2]"}, sargs...), 20)
		p := plan(tierCheckSQL(score, where), append(args, fargs...)...)
		t.Logf("tier check %+v: %s", q, p)
		if !strings.Contains(p, "SEARCH c USING INTEGER PRIMARY KEY") {
			t.Errorf("tier check %+v plan: %s", q, p)
		}
	}
	// The page's documents by row id, in the given order.
	if p := plan(readIDsSQL(), "[3,1,2]"); !strings.Contains(p, "SEARCH c USING INTEGER PRIMARY KEY") {
		t.Errorf("read ids plan: %s", p)
	}
}

// TestScoreExpr checks that the SQL ranking expression computes
// search.Score for every matching customer.
func TestScoreExpr(t *testing.T) {
	s := openTemp(t)
	r := rand.New(rand.NewPCG(21, 22))
	var docs []readmodel.Customer
	for n := 1; n <= 300; n++ {
		c := benchDoc(r, n)
		if n%7 == 0 {
			c.Company = c.Name // the same word in several fields
		}
		docs = append(docs, c)
	}
	if err := s.Commit(t.Context(), docs, 300); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for range 200 {
		d := docs[r.IntN(len(docs))]
		terms := search.NewDocTerms(d.Name, d.Company, d.Email, d.Code)
		all := append(append(append([]string{terms.Code}, terms.Name...), terms.Company...), terms.Email...)
		var words []string
		for range 1 + r.IntN(3) {
			w := []rune(all[r.IntN(len(all))])
			words = append(words, string(w[:1+r.IntN(len(w))]))
		}
		expr, args := scoreExpr(words, -1000)
		rows, err := s.r.QueryContext(t.Context(), "SELECT c.customer_id, "+expr+" FROM customers AS c", args...)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for rows.Next() {
			var id string
			var score int
			if err := rows.Scan(&id, &score); err != nil {
				t.Fatal(err)
			}
			got[id] = score
		}
		rows.Close()
		inTier := map[string][]int{} // customer id -> the scores of the tiers whose candidates it is among
		ts, ok, err := tiers(words, func(expr string) (bool, error) {
			n, err := s.ftsCount(t.Context(), nil, expr, 1)
			return n > 0, err
		})
		if err != nil || !ok {
			t.Fatalf("tiers(%q): ok %v, %v", words, ok, err)
		}
		for _, tr := range ts {
			rows, err := s.r.QueryContext(t.Context(), "SELECT c.customer_id FROM customers_fts CROSS JOIN customers AS c"+
				" ON c.sid = customers_fts.rowid WHERE customers_fts MATCH ?", tr.candidates(words, ""))
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					t.Fatal(err)
				}
				inTier[id] = append(inTier[id], tr.score)
			}
			rows.Close()
		}
		for _, c := range docs {
			want := search.Score(words, search.NewDocTerms(c.Name, c.Company, c.Email, c.Code))
			if want > 0 {
				checked++
				if got[c.ID] != want {
					t.Fatalf("query %q on %s (%q, %q, %q): SQL score %d, search.Score %d",
						words, c.Code, c.Name, c.Company, c.Email, got[c.ID], want)
				}
			} else if got[c.ID] >= 0 {
				t.Fatalf("query %q on %s, no match: SQL score %d, want negative", words, c.Code, got[c.ID])
			}
			// A tier's candidates are it and better-scored customers.
			if want > 0 && !slices.Contains(inTier[c.ID], want) {
				t.Fatalf("query %q on %s (%q, %q, %q): score %d, not a candidate of its tier (%v)",
					words, c.Code, c.Name, c.Company, c.Email, want, inTier[c.ID])
			}
			for _, sc := range inTier[c.ID] {
				if sc > want {
					t.Fatalf("query %q on %s: score %d, a candidate of the tier of %d", words, c.Code, want, sc)
				}
			}
		}
	}
	if checked < 500 {
		t.Errorf("only %d matches checked", checked)
	}
}

// TestSearchIsLiteral checks that search input never becomes FTS5 syntax.
func TestSearchIsLiteral(t *testing.T) {
	s := openTemp(t)
	c := testDoc(1)
	if err := s.Commit(t.Context(), []readmodel.Customer{c}, 1); err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{`"`, `acme"`, `*`, `NOT`, `a OR b`, `name:x`, `NEAR(a b)`, `^x`, `{name}: x`, `x + y`, `'`, `\`} {
		_, err := s.Search(t.Context(), readmodel.Query{Text: text, Page: 1, PerPage: 5})
		if err != nil && !strings.Contains(err.Error(), "search: query") {
			t.Errorf("Search %q: %v", text, err)
		}
	}
	if got, want := matchExpr([]string{"a\"b"}, ""), `("na""b"* OR "ca""b"* OR "ea""b"* OR "ka""b"*)`; got != want {
		t.Errorf("matchExpr = %s, want %s", got, want)
	}
	// A tag is hashed into a facet token: nothing of it reaches FTS5.
	if got := facetExpr(readmodel.Query{Tag: `x" OR "y`}); !strings.HasPrefix(got, ` AND "zg`) || strings.Count(got, `"`) != 2 {
		t.Errorf("facetExpr = %s", got)
	}
}

func testDoc(n int) readmodel.Customer {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second)
	return readmodel.Customer{
		ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), Code: fmt.Sprintf("C%03d", n),
		Name: fmt.Sprintf("Person %d", n), Email: fmt.Sprintf("person%d@example.com", n),
		Type: customer.TypeIndividual, Status: customer.StatusLead, Tags: []string{},
		CreatedBy: "user-1", CreatedAt: at, UpdatedAt: at, Version: 1, Seq: uint64(n),
	}
}

// TestStatementCache runs many more concurrent paged queries than there are
// reader connections, from an empty statement cache (each holds a
// connection in its transaction while its statements are being prepared:
// preparing in line would wait forever), then checks that the statements
// were cached and that cached statements answer what uncached ones did.
func TestStatementCache(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	docs := make([]readmodel.Customer, 40)
	for i := range docs {
		docs[i] = testDoc(i + 1)
	}
	if err := s.Commit(ctx, docs, 40); err != nil {
		t.Fatal(err)
	}
	queries := []func() (readmodel.Page, error){
		func() (readmodel.Page, error) { return s.List(ctx, readmodel.Query{Page: 2, PerPage: 7}) },
		func() (readmodel.Page, error) {
			return s.List(ctx, readmodel.Query{Page: 1, PerPage: 5, Status: customer.StatusLead, Sort: readmodel.SortName})
		},
		func() (readmodel.Page, error) {
			return s.Search(ctx, readmodel.Query{Text: "person 1", Page: 1, PerPage: 5})
		},
		func() (readmodel.Page, error) {
			return s.Search(ctx, readmodel.Query{Text: "pers", Status: customer.StatusLead, Page: 3, PerPage: 4})
		},
	}
	want := make([]readmodel.Page, len(queries))
	done := make(chan error, 8*readers)
	for g := range 8 * readers {
		go func() {
			p, err := queries[g%len(queries)]()
			if err == nil && g < len(queries) {
				want[g] = p
			}
			done <- err
		}()
	}
	for range 8 * readers {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("concurrent queries from an empty statement cache did not finish")
		}
	}
	waitFor(t, "prepared statements", func() bool {
		s.stmts.mu.Lock()
		defer s.stmts.mu.Unlock()
		ready := 0
		for _, st := range s.stmts.m {
			if st != nil {
				ready++
			}
		}
		return ready == len(s.stmts.m) && ready >= 2*len(queries) // a count and a page each
	})
	for i, q := range queries {
		got, err := q()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want[i]) {
			t.Errorf("query %d: cached statement answered %v, uncached %v", i, got, want[i])
		}
	}
}

// TestNameBucket: the bucket of search ids preserves the order of names
// (a name sorting before another never gets a larger bucket), for names
// of letters, digits, punctuation and any UTF-8.
func TestNameBucket(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	alphabet := []string{"a", "b", "j", "o", "z", " ", "0", "9", "!", "-", ".", "_", "~", "\x01", "é", "ö", "東", "京", "\u00ff", "ż"}
	var names []string
	for range 20000 {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		names = append(names, search.Fold(b.String()))
	}
	names = append(names, "", "john smith", "john smithson", "john smi", "john sm", "johnsmith")
	slices.Sort(names) // bytewise, as SQLite compares name_key
	for i := 1; i < len(names); i++ {
		if a, b := nameBucket(names[i-1]), nameBucket(names[i]); a > b {
			t.Fatalf("%q < %q but buckets %x > %x", names[i-1], names[i], a, b)
		}
	}
	if nameBucket("john smith") == nameBucket("john sanchez") || nameBucket("anna") >= nameBucket("anne") {
		t.Errorf("buckets too coarse")
	}
	if b := nameBucket("zzzzzzzzzz"); b>>42 != 0 || b<<slotBits < 0 {
		t.Errorf("bucket %x overflows the search id", b)
	}
}

// TestCheckpointer checks that commits are copied back from the
// write-ahead log into the database file by the checkpointer, not by the
// writer: the writer's automatic checkpoint waits for walBackstop pages,
// far more than these commits write, so the database file grows only if the
// checkpointer ran.
func TestCheckpointer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "readmodel.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var auto int64
	if err := s.w.QueryRowContext(t.Context(), "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil || auto != walBackstop {
		t.Fatalf("writer's wal_autocheckpoint = %d, %v; want %d", auto, err, walBackstop)
	}
	size := func(name string) int64 {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size(path)
	for b := range 4 {
		docs := make([]readmodel.Customer, 100)
		for i := range docs {
			docs[i] = testDoc(b*100 + i + 1)
		}
		if err := s.Commit(t.Context(), docs, uint64(b*100+100)); err != nil {
			t.Fatal(err)
		}
	}
	if wal := size(path + "-wal"); wal >= walBackstop*2048 {
		t.Fatalf("the test wrote %d bytes of log, enough for the writer's own checkpoint", wal)
	}
	waitFor(t, "the database file to grow", func() bool { return size(path) > before })
	if got, err := s.Checkpoint(t.Context()); err != nil || got != 400 {
		t.Fatalf("Checkpoint = %d, %v", got, err)
	}
}
