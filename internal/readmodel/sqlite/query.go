package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"crm/internal/dedupe"
	"crm/internal/readmodel"
)

// defaultFewMatches is the match count up to which List reads the matches
// through their filter's index and sorts them; with more matches it walks
// the sort order's index and skips non-matching rows instead, which never
// sorts and reads about (offset+limit)·rows/matches rows. The exact count,
// needed for Total anyway, chooses.
const defaultFewMatches = 2000

// Get returns the live customer id (see readmodel.Found).
func (s *Store) Get(ctx context.Context, id string) (readmodel.Customer, error) {
	if s.closed.Load() {
		return readmodel.Customer{}, s.fail("get", errClosed)
	}
	rows, err := s.query(ctx, nil, "SELECT "+docColumns+" FROM "+live.customers+
		" AS c WHERE c.customer_id = ?", id)
	if err != nil {
		return readmodel.Customer{}, s.fail("get", err)
	}
	var (
		c     readmodel.Customer
		found bool
	)
	if err := scanDocs(rows, func(d readmodel.Customer) { c, found = d, true }); err != nil {
		return readmodel.Customer{}, s.fail("get", err)
	}
	return readmodel.Found(c, found)
}

// List returns one page of live customers matching q's filters in q's order.
// An unknown q.Sort is an error.
func (s *Store) List(ctx context.Context, q readmodel.Query) (readmodel.Page, error) {
	order, err := listOrder(q.Sort, q.Desc)
	if err != nil {
		return readmodel.Page{}, err
	}
	if q.Deleted {
		return s.listDeleted(ctx, q, order)
	}
	return s.page(ctx, "list", q, func(tx *sql.Tx) (int64, error) {
		query, args := countSQL(q)
		var total int64
		err := s.queryRow(ctx, tx, []any{&total}, query, args...)
		return total, err
	}, func(tx *sql.Tx, total, limit, offset int64) (*sql.Rows, error) {
		query, args := listSQL(q, order, total <= s.fewMatches)
		return s.query(ctx, tx, query, append(args, limit, offset)...)
	})
}

// keyset returns the WHERE term (starting with " AND ") that keeps the
// rows after q.After in the List order of q ("" when q.After is nil): a
// row-value comparison over the sort index's columns, which SQLite answers
// with a range of that index.
func keyset(q readmodel.Query) (string, []any) {
	if q.After == nil {
		return "", nil
	}
	op := " > "
	if q.Desc {
		op = " < "
	}
	p := q.After
	switch q.Sort {
	case "", readmodel.SortCreatedAt:
		return " AND (c.created_at, c.code_num)" + op + "(?, ?)", []any{nanos(p.Time), p.Code}
	case readmodel.SortUpdatedAt:
		return " AND (c.updated_at, c.code_num)" + op + "(?, ?)", []any{nanos(p.Time), p.Code}
	case readmodel.SortName:
		return " AND (c.name_key, c.code_num)" + op + "(?, ?)", []any{p.Name, p.Code}
	}
	return " AND c.code_num" + op + "?", []any{p.Code}
}

// listDeleted returns one page of the deleted customers in q's order: the
// sort indexes start with deleted, so both the count and the page read the
// tombstones only.
func (s *Store) listDeleted(ctx context.Context, q readmodel.Query, order string) (readmodel.Page, error) {
	if q.Status != "" || q.Type != "" || q.Tag != "" || q.CreatedBy != "" {
		return readmodel.Page{}, fmt.Errorf("%w: list deleted: filters do not apply", readmodel.ErrInternal)
	}
	return s.page(ctx, "list deleted", q, func(tx *sql.Tx) (int64, error) {
		var total int64
		err := s.queryRow(ctx, tx, []any{&total}, "SELECT count(*) FROM "+live.customers+" AS c WHERE c.deleted = 1 AND c.merged_into = ''")
		return total, err
	}, func(tx *sql.Tx, _, limit, offset int64) (*sql.Rows, error) {
		query, args := trashSQL(q, order)
		return s.query(ctx, tx, query, append(args, limit, offset)...)
	})
}

// trashSQL returns the query of one page of the deleted customers in
// order (LIMIT and OFFSET to be appended to the arguments).
func trashSQL(q readmodel.Query, order string) (string, []any) {
	after, args := keyset(q)
	return "SELECT " + docColumns + " FROM " + live.customers + " AS c WHERE c.deleted = 1 AND c.merged_into = ''" + after +
		" ORDER BY " + order + " LIMIT ? OFFSET ?", args
}

// countSQL returns the query of the number of q's matches: a sum over the
// rows of the count tables that match q's filters.
func countSQL(q readmodel.Query) (string, []any) {
	var (
		where []string
		args  []any
	)
	table := live.counts
	if q.Tag != "" {
		table = live.tagCounts
		where, args = append(where, "tag = ?"), append(args, q.Tag)
	}
	for _, f := range []struct{ col, v string }{{"status", q.Status}, {"type", q.Type}, {"created_by", q.CreatedBy}} {
		if f.v != "" {
			where, args = append(where, f.col+" = ?"), append(args, f.v)
		}
	}
	query := "SELECT coalesce(sum(n), 0) FROM " + table
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	return query, args
}

// listSQL returns the query of one page of q (LIMIT and OFFSET to be
// appended to the arguments). With few matches, they are read through the
// tag table or a filter's index and sorted (the unary + in ORDER BY keeps
// SQLite from walking the order's index instead); with many, the index of
// the order is walked and non-matching rows are skipped, which never sorts
// (for the default order the filter indexes are in that order too, so
// SQLite may walk one of them instead).
func listSQL(q readmodel.Query, order string, few bool) (string, []any) {
	filtered := q.Status != "" || q.Type != "" || q.CreatedBy != "" || q.Tag != ""
	after, aargs := keyset(q)
	if !few || !filtered {
		indexed := q.Sort == "" || q.Sort == readmodel.SortCreatedAt
		where, args := filters(q, indexed)
		return "SELECT " + docColumns + " FROM " + live.customers + " AS c WHERE c.deleted = 0" + where + after +
			" ORDER BY " + order + " LIMIT ? OFFSET ?", append(args, aargs...)
	}
	// Sort the ids only, then read the page's documents: a sort of whole
	// rows would copy every match's document.
	tail := " ORDER BY " + strings.ReplaceAll(order, "c.", "+c.") + " LIMIT ? OFFSET ?"
	page := func(inner string) string {
		return "SELECT " + docColumns + " FROM (" + inner + ") AS p CROSS JOIN " + live.customers +
			" AS c ON c.id = p.id ORDER BY " + order
	}
	if q.Tag == "" {
		where, args := filters(q, true)
		return page("SELECT c.id FROM " + live.customers + " AS c WHERE c.deleted = 0" + where + after + tail), append(args, aargs...)
	}
	rest := q
	rest.Tag = "" // the join has the tag
	where, args := filters(rest, false)
	return page("SELECT c.id FROM " + live.tags + " AS t CROSS JOIN " + live.customers +
		" AS c ON c.id = t.customer WHERE t.tag = ? AND c.deleted = 0" + where + after + tail), append(append([]any{q.Tag}, args...), aargs...)
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
	limit, offset, ok := q.Bounds()
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return readmodel.Page{}, s.fail(op, err)
	}
	defer tx.Rollback()
	total, err := count(tx)
	if err != nil {
		return readmodel.Page{}, s.fail(op, err)
	}
	p := readmodel.Page{Items: []readmodel.Customer{}, Total: total}
	if q.After != nil { // keyset: from the position, one more to know whether more follow
		limit, offset, ok = limit+1, 0, true
	}
	if !ok || offset >= total {
		return p, nil
	}
	rows, err := items(tx, total, limit, offset)
	if err != nil {
		return readmodel.Page{}, s.fail(op, err)
	}
	if err := scanDocs(rows, func(c readmodel.Customer) { p.Items = append(p.Items, c) }); err != nil {
		return readmodel.Page{}, s.fail(op, err)
	}
	if q.After != nil && int64(len(p.Items)) == limit {
		p.Items, p.More = p.Items[:limit-1], true
	}
	return p, nil
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

// Scan returns documents, tombstones included, after the id after, in id
// order (see readmodel.Store), through the unique index on customer_id.
func (s *Store) Scan(ctx context.Context, after string, limit int) ([]readmodel.Customer, error) {
	if s.closed.Load() {
		return nil, s.fail("scan", errClosed)
	}
	limit = min(max(limit, 1), readmodel.MaxScan)
	rows, err := s.query(ctx, nil, "SELECT "+docColumns+" FROM "+live.customers+
		" AS c WHERE c.customer_id > ? ORDER BY c.customer_id LIMIT ?", after, limit)
	if err != nil {
		return nil, s.fail("scan", err)
	}
	out := make([]readmodel.Customer, 0, limit)
	if err := scanDocs(rows, func(c readmodel.Customer) { out = append(out, c) }); err != nil {
		return nil, s.fail("scan", err)
	}
	return out, nil
}

// ByEmail returns live customers whose email key is key (see
// readmodel.Store), through the partial index on email_key.
func (s *Store) ByEmail(ctx context.Context, key string, limit int) ([]readmodel.Customer, error) {
	if s.closed.Load() {
		return nil, s.fail("by email", errClosed)
	}
	if key == "" {
		return nil, nil
	}
	rows, err := s.query(ctx, nil, "SELECT "+docColumns+" FROM "+live.customers+
		" AS c WHERE c.email_key = ? AND c.deleted = 0 AND c.email_key != '' ORDER BY c.code_num LIMIT ?", key, min(max(limit, 1), 100))
	if err != nil {
		return nil, s.fail("by email", err)
	}
	var out []readmodel.Customer
	if err := scanDocs(rows, func(c readmodel.Customer) { out = append(out, c) }); err != nil {
		return nil, s.fail("by email", err)
	}
	return out, nil
}

// ByExternalID returns the customer whose external id is externalID (see
// readmodel.Reader), through the partial index on external_id.
func (s *Store) ByExternalID(ctx context.Context, externalID string) (readmodel.Customer, error) {
	if s.closed.Load() {
		return readmodel.Customer{}, s.fail("by external id", errClosed)
	}
	if externalID == "" {
		return readmodel.Customer{}, readmodel.ErrNotFound
	}
	rows, err := s.query(ctx, nil, "SELECT "+docColumns+" FROM "+live.customers+" AS c WHERE c.external_id = ? AND c.external_id != ''"+
		" AND (c.deleted = 0 OR c.merged_into != '') ORDER BY c.deleted, c.code_num LIMIT 1", externalID)
	if err != nil {
		return readmodel.Customer{}, s.fail("by external id", err)
	}
	var (
		out   readmodel.Customer
		found bool
	)
	if err := scanDocs(rows, func(c readmodel.Customer) { out, found = c, true }); err != nil {
		return readmodel.Customer{}, s.fail("by external id", err)
	}
	return readmodel.Found(out, found)
}

// PossibleDuplicates returns the live customers sharing a key of keys (see
// readmodel.Reader), through the partial indexes of the key columns.
func (s *Store) PossibleDuplicates(ctx context.Context, id string, keys dedupe.Keys, limit int) ([]readmodel.Duplicate, error) {
	if s.closed.Load() {
		return nil, s.fail("possible duplicates", errClosed)
	}
	limit = min(max(limit, 1), readmodel.MaxPerPage)
	var out []readmodel.Duplicate
	for _, m := range dedupe.Matches {
		key := keys.Get(m)
		if key == "" {
			continue
		}
		col := dupColumns[m]
		rows, err := s.query(ctx, nil, possibleDuplicatesSQL(col), key, id, limit)
		if err != nil {
			return nil, s.fail("possible duplicates", err)
		}
		for rows.Next() {
			d := readmodel.Duplicate{Match: m}
			if err := rows.Scan(&d.CustomerID); err != nil {
				rows.Close()
				return nil, s.fail("possible duplicates", err)
			}
			out = append(out, d)
		}
		if err := rows.Close(); err != nil {
			return nil, s.fail("possible duplicates", err)
		}
		if err := rows.Err(); err != nil {
			return nil, s.fail("possible duplicates", err)
		}
	}
	return out, nil
}

// Duplicates returns one page of clusters (see readmodel.Reader) from the
// duplicates table Commit keeps, and each one's newest members, in one read
// transaction.
func (s *Store) Duplicates(ctx context.Context, q readmodel.ClusterQuery) (readmodel.ClusterPage, error) {
	const op = "duplicates"
	if s.closed.Load() {
		return readmodel.ClusterPage{}, s.fail(op, errClosed)
	}
	where, args := "", []any{}
	if q.Match != "" {
		if dupColumns[q.Match] == "" {
			return readmodel.ClusterPage{}, fmt.Errorf("%w: duplicates: unknown match %q", readmodel.ErrInternal, q.Match)
		}
		where, args = " WHERE kind = ?", append(args, q.Match)
	}
	limit, offset, ok := q.Bounds()
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return readmodel.ClusterPage{}, s.fail(op, err)
	}
	defer tx.Rollback()
	p := readmodel.ClusterPage{Items: []readmodel.Cluster{}}
	if err := s.queryRow(ctx, tx, []any{&p.Total}, "SELECT count(*) FROM "+live.dups+where, args...); err != nil {
		return readmodel.ClusterPage{}, s.fail(op, err)
	}
	if !ok || offset >= p.Total {
		return p, nil
	}
	rows, err := s.query(ctx, tx, clustersSQL(where), append(args, limit, offset)...)
	if err != nil {
		return readmodel.ClusterPage{}, s.fail(op, err)
	}
	for rows.Next() {
		var c readmodel.Cluster
		if err := rows.Scan(&c.Match, &c.Key, &c.Size); err != nil {
			rows.Close()
			return readmodel.ClusterPage{}, s.fail(op, err)
		}
		p.Items = append(p.Items, c)
	}
	if err := rows.Close(); err != nil {
		return readmodel.ClusterPage{}, s.fail(op, err)
	}
	for i, c := range p.Items {
		col := dupColumns[c.Match]
		rows, err := s.query(ctx, tx, clusterMembersSQL(col), c.Key, readmodel.ClusterMembers)
		if err != nil {
			return readmodel.ClusterPage{}, s.fail(op, err)
		}
		if err := scanDocs(rows, func(d readmodel.Customer) { p.Items[i].Customers = append(p.Items[i].Customers, d) }); err != nil {
			return readmodel.ClusterPage{}, s.fail(op, err)
		}
	}
	return p, nil
}

// possibleDuplicatesSQL selects the live customers other than ? whose key
// column col equals ?, newest first, LIMIT ?. Like clusterMembersSQL it
// walks the partial index of col, whose columns give the whole order: with
// only (col, created_at) SQLite would prefer the (deleted, created_at)
// index, reading live customers newest first until enough matched (seconds
// at 1,000,000 customers; TestQueryPlans).
func possibleDuplicatesSQL(col string) string {
	return "SELECT c.customer_id FROM " + live.customers + " AS c WHERE c." + col + " = ? AND c.deleted = 0 AND c." + col +
		" != '' AND c.customer_id != ? ORDER BY c.created_at DESC, c.code_num DESC LIMIT ?"
}

// clusterMembersSQL selects the live customers whose key column col
// equals ?, newest first, LIMIT ?.
func clusterMembersSQL(col string) string {
	return "SELECT " + docColumns + " FROM " + live.customers + " AS c WHERE c." + col + " = ? AND c.deleted = 0 AND c." + col +
		" != '' ORDER BY c.created_at DESC, c.code_num DESC LIMIT ?"
}

// clustersSQL selects a page of clusters (LIMIT ? OFFSET ?) matching where,
// newest first.
func clustersSQL(where string) string {
	return "SELECT kind, key, n FROM " + live.dups + where + " ORDER BY newest DESC, kind DESC, key DESC LIMIT ? OFFSET ?"
}

// Export calls begin with the checkpoint, then each for every customer
// matching q's filters in q's order (see readmodel.Reader): one read
// transaction, so the customers are exactly those of that checkpoint.
func (s *Store) Export(ctx context.Context, q readmodel.Query, begin func(checkpoint uint64) error,
	each func(readmodel.Customer) error) error {
	if s.closed.Load() {
		return s.fail("export", errClosed)
	}
	order, err := listOrder(q.Sort, q.Desc)
	if err != nil {
		return err
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s.fail("export", err)
	}
	defer tx.Rollback()
	var cp int64
	if err := s.queryRow(ctx, tx, []any{&cp}, "SELECT seq FROM "+live.checkpoint+" WHERE id = 1"); err != nil {
		return s.fail("export", err)
	}
	if err := begin(uint64(cp)); err != nil {
		return err
	}
	q.After = nil
	var (
		query string
		args  []any
	)
	if q.Deleted {
		query, args = trashSQL(q, order)
	} else { // walk the order's index, never a sort of every match
		query, args = listSQL(q, order, false)
	}
	rows, err := s.query(ctx, tx, query, append(args, -1, 0)...)
	if err != nil {
		return s.fail("export", err)
	}
	var stopped error
	err = scanDocsUntil(rows, func(c readmodel.Customer) error {
		if err := each(c); err != nil {
			stopped = err
			return err
		}
		return nil
	})
	switch {
	case stopped != nil:
		return stopped
	case err != nil:
		return s.fail("export", err)
	}
	return nil
}
