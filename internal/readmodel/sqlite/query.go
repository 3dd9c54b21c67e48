package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math"
	"strings"

	msqlite "modernc.org/sqlite"

	"crm/internal/customer"
	"crm/internal/readmodel"
	"crm/internal/search"
)

// Paging defaults: a Page below 1 is the first page; PerPage is clamped to
// 1..maxPerPage, with defaultPerPage when unset.
const (
	defaultPerPage = 20
	maxPerPage     = 100
)

// defaultFewMatches is the match count up to which List reads the matches
// through their filter's index and sorts them; with more matches it walks
// the sort order's index and skips non-matching rows instead, which never
// sorts and reads about (offset+limit)·rows/matches rows. The exact count,
// needed for Total anyway, chooses.
const defaultFewMatches = 2000

// scoreFunction is search.Score as a deterministic SQL function:
// crm_search_score(query words space-joined, name tokens, company tokens,
// email tokens, customer code) → score, so that Search ranks and pages in
// SQLite.
const scoreFunction = "crm_search_score"

func registerFunctions() {
	msqlite.MustRegisterDeterministicScalarFunction(scoreFunction, 5, scoreSQL)
}

func scoreSQL(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	text := func(v driver.Value) string {
		switch v := v.(type) {
		case string:
			return v
		case []byte:
			return string(v)
		}
		return ""
	}
	d := search.DocTerms{
		Name:    strings.Fields(text(args[1])),
		Company: strings.Fields(text(args[2])),
		Email:   strings.Fields(text(args[3])),
		Code:    search.Fold(text(args[4])),
	}
	return int64(search.Score(strings.Fields(text(args[0])), d)), nil
}

// Get returns the live customer id, or readmodel.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (customer.Customer, error) {
	if s.closed.Load() {
		return customer.Customer{}, s.fail("get", errClosed)
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+docColumns+" FROM "+live.customers+
		" AS c WHERE c.customer_id = ? AND c.deleted = 0", id)
	if err != nil {
		return customer.Customer{}, s.fail("get", err)
	}
	var (
		c     customer.Customer
		found bool
	)
	if err := scanDocs(rows, func(d customer.Customer) { c, found = d, true }); err != nil {
		return customer.Customer{}, s.fail("get", err)
	}
	if !found {
		return customer.Customer{}, readmodel.ErrNotFound
	}
	return c, nil
}

// List returns one page of live customers matching q's filters in q's order.
// An unknown q.Sort is an error.
func (s *Store) List(ctx context.Context, q readmodel.Query) (readmodel.Page, error) {
	order, err := listOrder(q.Sort, q.Desc)
	if err != nil {
		return readmodel.Page{}, err
	}
	return s.page(ctx, "list", q, func(tx *sql.Tx) (int64, error) {
		query, args := countSQL(q)
		var total int64
		err := tx.QueryRowContext(ctx, query, args...).Scan(&total)
		return total, err
	}, func(tx *sql.Tx, total, limit, offset int64) (*sql.Rows, error) {
		query, args := listSQL(q, order, total <= s.fewMatches)
		return tx.QueryContext(ctx, query, append(args, limit, offset)...)
	})
}

// countSQL returns the query counting q's matches: through the tag table
// when q has a tag, else through the index of one of q's filters.
func countSQL(q readmodel.Query) (string, []any) {
	rest := q
	rest.Tag = ""
	where, args := filters(rest, true)
	if q.Tag == "" {
		return "SELECT count(*) FROM " + live.customers + " AS c WHERE c.deleted = 0" + where, args
	}
	return "SELECT count(*) FROM " + live.tags + " AS t CROSS JOIN " + live.customers + " AS c ON c.id = t.customer" +
		" WHERE t.tag = ? AND c.deleted = 0" + where, append([]any{q.Tag}, args...)
}

// listSQL returns the query of one page of q (LIMIT and OFFSET to be
// appended to the arguments). With few matches, they are first collected
// through the tag table or a filter's index and then sorted; with many, the
// index of the order is walked and non-matching rows are skipped, which
// never sorts (for the default order the filter indexes are in that order
// too, so SQLite may walk one of them instead).
func listSQL(q readmodel.Query, order string, few bool) (string, []any) {
	filtered := q.Status != "" || q.Type != "" || q.CreatedBy != "" || q.Tag != ""
	tail := " ORDER BY " + order + " LIMIT ? OFFSET ?"
	if few && filtered {
		where, args := filters(q, true)
		src := "SELECT id FROM " + live.customers + " AS c WHERE c.deleted = 0" + where
		if q.Tag != "" {
			src = "SELECT customer AS id FROM " + live.tags + " WHERE tag = ?"
			args = []any{q.Tag}
		}
		rest := q
		rest.Tag = "" // m holds only customers with the tag
		where, wargs := filters(rest, false)
		return "WITH m AS MATERIALIZED (" + src + ") SELECT " + docColumns + " FROM m CROSS JOIN " +
			live.customers + " AS c ON c.id = m.id WHERE c.deleted = 0" + where + tail, append(args, wargs...)
	}
	indexed := q.Sort == "" || q.Sort == readmodel.SortCreatedAt
	where, args := filters(q, indexed)
	return "SELECT " + docColumns + " FROM " + live.customers + " AS c WHERE c.deleted = 0" + where + tail, args
}

// Search returns one page of live customers matching q.Text and q's filters,
// ranked by search.Score, then name, then code. A q.Text without words, or
// too long, is an error wrapping search.ErrEmptyQuery or
// search.ErrQueryTooLong.
func (s *Store) Search(ctx context.Context, q readmodel.Query) (readmodel.Page, error) {
	words, err := search.ParseQuery(q.Text)
	if err != nil {
		return readmodel.Page{}, fmt.Errorf("readmodel/sqlite: search: %w", err)
	}
	match := matchExpr(words)
	// The search index drives (CROSS JOIN fixes the join order): the
	// customers row of each match is read by its primary key, filtered and
	// scored.
	from := " FROM " + live.fts + " CROSS JOIN " + live.customers + " AS c ON c.id = " + live.fts + ".rowid" +
		" WHERE " + live.fts + " MATCH ? AND c.deleted = 0"
	where, fargs := filters(q, false)
	return s.page(ctx, "search", q, func(tx *sql.Tx) (int64, error) {
		var total int64
		var err error
		if where == "" { // the index holds live customers only
			err = tx.QueryRowContext(ctx, "SELECT count(*) FROM "+live.fts+" WHERE "+live.fts+" MATCH ?",
				match).Scan(&total)
		} else {
			err = tx.QueryRowContext(ctx, "SELECT count(*)"+from+where,
				append([]any{match}, fargs...)...).Scan(&total)
		}
		return total, err
	}, func(tx *sql.Tx, _, limit, offset int64) (*sql.Rows, error) {
		args := append([]any{match}, fargs...)
		args = append(args, strings.Join(words, " "), limit, offset)
		return tx.QueryContext(ctx, "SELECT "+docColumns+from+where+
			" ORDER BY "+scoreFunction+"(?, c.name_terms, c.company_terms, c.email_terms, c.customer_code) DESC,"+
			" c.name_key, c.code_num, c.id LIMIT ? OFFSET ?", args...)
	})
}

// page counts and reads one page in one read transaction, so that Total and
// Items agree.
func (s *Store) page(ctx context.Context, op string, q readmodel.Query,
	count func(*sql.Tx) (int64, error),
	items func(tx *sql.Tx, total, limit, offset int64) (*sql.Rows, error),
) (readmodel.Page, error) {
	if s.closed.Load() {
		return readmodel.Page{}, s.fail(op, errClosed)
	}
	limit, offset, ok := pageBounds(q)
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return readmodel.Page{}, s.fail(op, err)
	}
	defer tx.Rollback()
	total, err := count(tx)
	if err != nil {
		return readmodel.Page{}, s.fail(op, err)
	}
	p := readmodel.Page{Items: []customer.Customer{}, Total: total}
	if !ok || offset >= total {
		return p, nil
	}
	rows, err := items(tx, total, limit, offset)
	if err != nil {
		return readmodel.Page{}, s.fail(op, err)
	}
	if err := scanDocs(rows, func(c customer.Customer) { p.Items = append(p.Items, c) }); err != nil {
		return readmodel.Page{}, s.fail(op, err)
	}
	return p, nil
}

// pageBounds returns LIMIT and OFFSET of q's page; ok is false for a page
// so far that its offset overflows (it is past the end).
func pageBounds(q readmodel.Query) (limit, offset int64, ok bool) {
	limit = int64(q.PerPage)
	switch {
	case limit <= 0:
		limit = defaultPerPage
	case limit > maxPerPage:
		limit = maxPerPage
	}
	page := int64(max(q.Page, 1))
	if page-1 > math.MaxInt64/limit {
		return limit, 0, false
	}
	return limit, (page - 1) * limit, true
}

// listOrder returns the ORDER BY of a List sort; ties are broken by code,
// then by row id (codes are unique, so that never decides), in the same
// direction, which every sort index provides without sorting.
func listOrder(sort string, desc bool) (string, error) {
	var key string
	switch sort {
	case "", readmodel.SortCreatedAt:
		key = "c.created_at"
	case readmodel.SortUpdatedAt:
		key = "c.updated_at"
	case readmodel.SortName:
		key = "c.name_key"
	case readmodel.SortCustomerCode:
	default:
		return "", fmt.Errorf("readmodel/sqlite: unknown sort %q", sort)
	}
	dir := " ASC"
	if desc {
		dir = " DESC"
	}
	cols := []string{"c.code_num" + dir, "c.id" + dir}
	if key != "" {
		cols = append([]string{key + dir}, cols...)
	}
	return strings.Join(cols, ", "), nil
}

// filters returns the WHERE terms (each starting with " AND ") of q's
// filters on the customers table c. With indexed false the equality terms
// cannot select an index (unary +). The tag is always a correlated EXISTS on
// the tag table's primary key, a check per row; the queries that should be
// driven by the tag join the tag table themselves.
func filters(q readmodel.Query, indexed bool) (string, []any) {
	var (
		b    strings.Builder
		args []any
	)
	plus := "+"
	if indexed {
		plus = ""
	}
	eq := func(col, v string) {
		if v != "" {
			b.WriteString(" AND " + plus + "c." + col + " = ?")
			args = append(args, v)
		}
	}
	eq("status", q.Status)
	eq("type", q.Type)
	eq("created_by", q.CreatedBy)
	if q.Tag != "" {
		b.WriteString(" AND EXISTS (SELECT 1 FROM " + live.tags + " AS t WHERE t.tag = ? AND t.customer = c.id)")
		args = append(args, q.Tag)
	}
	return b.String(), args
}

// matchExpr returns the FTS5 query of the search words: every word as a
// quoted prefix query, all required. Quoting (with embedded quotes doubled)
// keeps any input from being read as FTS5 syntax.
func matchExpr(words []string) string {
	parts := make([]string, len(words))
	for i, w := range words {
		parts[i] = `"` + strings.ReplaceAll(w, `"`, `""`) + `"*`
	}
	return strings.Join(parts, " AND ")
}
