package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"crm/internal/customer"
	"crm/internal/dedupe"
	"crm/internal/readmodel"
	"crm/internal/search"
)

// loadBatch is how many ids one Load query asks for.
const loadBatch = 500

// Load returns the stored documents, tombstones included, of ids.
func (s *Store) Load(ctx context.Context, ids []string) (map[string]readmodel.Customer, error) {
	return s.load(ctx, live, ids)
}

// Commit stores docs and advances the checkpoint, in one transaction (see
// readmodel.Writer).
func (s *Store) Commit(ctx context.Context, docs []readmodel.Customer, checkpoint uint64) error {
	return s.commit(ctx, live, "", readmodel.Batch{Customers: docs}, checkpoint)
}

// CommitBatch stores the documents of b and advances the checkpoint, in
// one transaction (see readmodel.ContactWriter).
func (s *Store) CommitBatch(ctx context.Context, b readmodel.Batch, checkpoint uint64) error {
	return s.commit(ctx, live, "", b, checkpoint)
}

// Checkpoint returns the stream sequence up to which the read model is
// complete.
func (s *Store) Checkpoint(ctx context.Context) (uint64, error) {
	return s.checkpoint(ctx, live)
}

func (s *Store) load(ctx context.Context, t tables, ids []string) (map[string]readmodel.Customer, error) {
	if s.closed.Load() {
		return nil, s.fail("load", errClosed)
	}
	out := make(map[string]readmodel.Customer, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), loadBatch)
		list, err := idList(ids[:n])
		if err != nil {
			return nil, err
		}
		ids = ids[n:]
		// Through the writer's connection: the pages are hot in its cache
		// from the commits, and a reader would first have to map the grown
		// file again (munmap + mmap on each read transaction after a write:
		// a third of Load's time under creates).
		rows, err := s.w.QueryContext(ctx, loadSQL(t), list)
		if err != nil {
			return nil, s.fail("load", err)
		}
		err = scanDocs(rows, func(c readmodel.Customer) { out[c.ID] = c })
		if err != nil {
			return nil, s.fail("load", err)
		}
	}
	return out, nil
}

func (s *Store) checkpoint(ctx context.Context, t tables) (uint64, error) {
	if s.closed.Load() {
		return 0, s.fail("checkpoint", errClosed)
	}
	var seq int64
	err := s.queryRow(ctx, nil, []any{&seq}, "SELECT seq FROM "+t.checkpoint+" WHERE id = 1")
	if err != nil {
		return 0, s.fail("checkpoint", err)
	}
	return uint64(seq), nil
}

// stored is what Commit needs to know of a document already stored.
type stored struct {
	id      int64
	seq     uint64
	deleted bool
	facet   facet
	sid     sql.NullInt64 // the search id of a live document
	tags    []string      // distinct
	keys    dedupe.Keys
	// phone and country are the stored ones: a document whose phone and
	// country did not change keeps its phone key (parsing a number is the
	// dearest part of the keys).
	phone, country string
}

// facet is a document's values of the filters other than tag.
type facet struct{ status, typ, createdBy string }

// change is one document a Commit writes, over its stored state if any.
type change struct {
	id     int64
	doc    readmodel.Customer
	old    stored
	exists bool
	tags   []string // d.Tags, never nil: what is stored
	index  []string // the distinct tags: what is indexed and counted
	terms  search.DocTerms
	keys   dedupe.Keys
	sid    sql.NullInt64 // the search id (store sets it), NULL when hidden
}

// commit stores docs in the tables t; lease, when not "", is the rebuild
// lease the transaction renews (or fails with readmodel.ErrRebuildLost).
func (s *Store) commit(ctx context.Context, t tables, lease string, b readmodel.Batch, checkpoint uint64) error {
	if s.closed.Load() {
		return s.fail("commit", errClosed)
	}
	docs, err := readmodel.Prepare(b.Customers, checkpoint)
	if err != nil {
		return err
	}
	contacts, err := readmodel.PrepareContacts(b.Contacts)
	if err != nil {
		return err
	}
	links, err := readmodel.PrepareLinks(b.Links)
	if err != nil {
		return err
	}
	activities, err := readmodel.PrepareActivities(b.Activities)
	if err != nil {
		return err
	}
	timeline, err := readmodel.PrepareTimeline(b.Timeline)
	if err != nil {
		return err
	}
	// A commit is short and must not be interrupted halfway: a transaction
	// cancelled by its context makes database/sql discard the connection
	// while SQLite may still hold the write lock on it (seen as endless
	// SQLITE_BUSY when a projector is stopped mid-commit).
	ctx = context.WithoutCancel(ctx)
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock up front
	if err != nil {
		return s.fail("commit", err)
	}
	defer tx.Rollback()
	if lease != "" {
		if err := renewLease(ctx, tx, lease); err != nil {
			return s.fail("commit", err)
		}
	}
	if err := commitContacts(ctx, tx, t, contacts); err != nil {
		return s.fail("commit", err)
	}
	if err := commitLinks(ctx, tx, t, links); err != nil {
		return s.fail("commit", err)
	}
	if err := commitActivities(ctx, tx, t, activities); err != nil {
		return s.fail("commit", err)
	}
	if err := commitTimeline(ctx, tx, t, timeline); err != nil {
		return s.fail("commit", err)
	}
	if err := commitTx(ctx, tx, t, docs, checkpoint); err != nil {
		return s.fail("commit", err)
	}
	if err := tx.Commit(); err != nil {
		return s.fail("commit", err)
	}
	if s.ckpt != nil {
		s.ckpt.committed()
	}
	return nil
}

// commitTx writes docs in the transaction tx, which holds the write lock:
// the stored states it reads first cannot change until it commits, so it
// knows exactly which documents are new (INSERT, with the next row ids) and
// which replace an older stored one (UPDATE … WHERE seq < new seq), and
// which are stale (skipped).
//
// Why not one INSERT … ON CONFLICT DO UPDATE: modernc.org/sqlite compiles
// every statement again on every execution (its prepared statements keep
// only the SQL text), and the upsert's program costs more to compile than
// the plain INSERT or UPDATE costs to run. (ctx has no Done channel, see
// commit, which also spares the driver a watcher goroutine per statement.)
func commitTx(ctx context.Context, tx *sql.Tx, t tables, docs []readmodel.Customer, checkpoint uint64) error {
	changes, err := plan(ctx, tx, t, docs)
	if err != nil {
		return err
	}
	if len(changes) > 0 {
		w, err := prepareWriter(ctx, tx, t)
		if err != nil {
			return err
		}
		defer w.close()
		// In phases, the search index's in its rowid (search id) order:
		// FTS5 flushes its pending inserts to a new segment on a delete,
		// and on an insert whose rowid is not above the previous one, so
		// anything else would write one tiny segment per document. The
		// rows are stored in row id order, each taking its search id.
		slices.SortFunc(changes, func(a, b change) int { return cmp.Compare(a.old.sid.Int64, b.old.sid.Int64) })
		for _, c := range changes {
			if err := w.unindex(ctx, c); err != nil {
				return fmt.Errorf("customer %s: %w", c.doc.ID, err)
			}
		}
		slices.SortFunc(changes, func(a, b change) int { return cmp.Compare(a.id, b.id) })
		for i := range changes {
			if err := w.store(ctx, &changes[i]); err != nil {
				return fmt.Errorf("customer %s: %w", changes[i].doc.ID, err)
			}
		}
		slices.SortFunc(changes, func(a, b change) int { return cmp.Compare(a.sid.Int64, b.sid.Int64) })
		for _, c := range changes {
			if err := w.index(ctx, c); err != nil {
				return fmt.Errorf("customer %s: %w", c.doc.ID, err)
			}
		}
	}
	if err := updateCounts(ctx, tx, t, changes); err != nil {
		return err
	}
	if err := updateDuplicates(ctx, tx, t, changes); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, "UPDATE "+t.checkpoint+" SET seq = max(seq, ?) WHERE id = 1", int64(checkpoint))
	return err
}

// updateCounts keeps the count tables equal to the number of live customers
// per facet, and per tag and facet, so that List's Total is a sum over a
// few rows instead of a count over every match. Each table gets one
// statement per Commit, whatever the number of documents.
func updateCounts(ctx context.Context, tx *sql.Tx, t tables, changes []change) error {
	type tagFacet struct {
		tag string
		facet
	}
	facets, tagFacets := map[facet]int64{}, map[tagFacet]int64{}
	add := func(f facet, tags []string, n int64) {
		facets[f] += n
		for _, tag := range tags {
			tagFacets[tagFacet{tag, f}] += n
		}
	}
	for _, c := range changes {
		if c.exists && !c.old.deleted {
			add(c.old.facet, c.old.tags, -1)
		}
		if d := c.doc; !d.Hidden() {
			add(facet{d.Status, d.Type, d.CreatedBy}, c.index, 1)
		}
	}
	var rows, tagRows [][]any
	for f, n := range facets {
		if n != 0 {
			rows = append(rows, []any{f.status, f.typ, f.createdBy, n})
		}
	}
	for f, n := range tagFacets {
		if n != 0 {
			tagRows = append(tagRows, []any{f.tag, f.status, f.typ, f.createdBy, n})
		}
	}
	for _, u := range []struct {
		table, cols string
		rows        [][]any
	}{
		{t.counts, "status, type, created_by", rows},
		{t.tagCounts, "tag, status, type, created_by", tagRows},
	} {
		if len(u.rows) == 0 {
			continue
		}
		width := strings.Count(u.cols, ",") + 1
		var sel []string
		for i := range width + 1 {
			sel = append(sel, "value ->> "+strconv.Itoa(i))
		}
		js, err := json.Marshal(u.rows)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO "+u.table+" ("+u.cols+", n) SELECT "+strings.Join(sel, ", ")+
			" FROM json_each(?) WHERE true ON CONFLICT ("+u.cols+") DO UPDATE SET n = n + excluded.n", string(js))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+u.table+" WHERE n = 0"); err != nil {
			return err
		}
	}
	return nil
}

// dupColumns are the customers columns of the duplicate keys, by match.
var dupColumns = map[string]string{dedupe.MatchEmail: "dup_email", dedupe.MatchPhone: "dup_phone", dedupe.MatchNameCompany: "dup_name"}

// updateDuplicates keeps the duplicates table equal to the clusters of live
// customers sharing a key (two or more), each with its size and the
// creation time of its newest member, at a cost that does not depend on
// the size of the clusters: only the keys a commit moves (a key set,
// changed or cleared, a customer hidden or shown again) are touched, an
// existing cluster's size moves by the commit's difference, a key without
// a cluster (at most one member before this commit) is counted from its
// index, and the newest member is read from the end of the key's index.
// An update of other fields touches nothing. Three statements per match
// kind the commit touches.
func updateDuplicates(ctx context.Context, tx *sql.Tx, t tables, changes []change) error {
	deltas := map[string]map[string]int64{}
	for _, c := range changes {
		wasLive, live := c.exists && !c.old.deleted, !c.doc.Hidden()
		for _, m := range dedupe.Matches {
			before, after := c.old.keys.Get(m), c.keys.Get(m)
			if !wasLive {
				before = ""
			}
			if !live {
				after = ""
			}
			if before == after {
				continue
			}
			if deltas[m] == nil {
				deltas[m] = map[string]int64{}
			}
			if before != "" {
				deltas[m][before]--
			}
			if after != "" {
				deltas[m][after]++
			}
		}
	}
	for _, m := range dedupe.Matches {
		if len(deltas[m]) == 0 {
			continue
		}
		js, err := json.Marshal(deltas[m]) // {"key": difference, …}: json_each's key and value, parsed once
		if err != nil {
			return err
		}
		col := dupColumns[m]
		for _, st := range duplicateStatements(t, col) {
			if _, err := tx.ExecContext(ctx, st, string(js), m); err != nil {
				return fmt.Errorf("duplicates: %w", err)
			}
		}
	}
	return nil
}

// duplicateStatements returns the statements that apply a commit's
// differences of one key column col to the clusters of t: ?1 is a JSON
// object {key: difference}, ?2 the kind. Every look-up of customers walks
// the partial index of col (TestQueryPlans).
func duplicateStatements(t tables, col string) []string {
	return []string{
		// An existing cluster moves by the difference (carried in the
		// newest column of the conflicting row); a key without one (a
		// member before, at most) is counted from its index and gets
		// one if it now has two or more members.
		"WITH j AS MATERIALIZED (SELECT je.key AS k, je.value AS d, EXISTS (SELECT 1 FROM " + t.dups + " AS x WHERE x.kind = ?2 AND x.key = je.key) AS ex" +
			" FROM json_each(?1) AS je), n AS MATERIALIZED (SELECT k, d, ex, CASE WHEN ex THEN 0 ELSE (SELECT count(*) FROM " + t.customers +
			" AS c WHERE c." + col + " = j.k AND c.deleted = 0 AND c." + col + " != '') END AS n FROM j)" +
			" INSERT INTO " + t.dups + " (kind, key, n, newest) SELECT ?2, k, n, d FROM n WHERE ex OR n >= 2" +
			" ON CONFLICT (kind, key) DO UPDATE SET n = n + excluded.newest",
		// The newest member of every touched key, from the end of its
		// index.
		"UPDATE " + t.dups + " SET newest = coalesce((SELECT c.created_at FROM " + t.customers + " AS c WHERE c." + col + " = " + t.dups +
			".key AND c.deleted = 0 AND c." + col + " != '' ORDER BY c.created_at DESC LIMIT 1), " + strconv.FormatInt(math.MinInt64, 10) +
			") WHERE kind = ?2 AND key IN (SELECT key FROM json_each(?1))",
		"DELETE FROM " + t.dups + " WHERE kind = ?2 AND n < 2 AND key IN (SELECT key FROM json_each(?1))",
	}
}

// distinct returns tags without repeats (the domain never repeats a tag,
// but the tag table and the counts must not depend on it).
func distinct(tags []string) []string {
	for i, t := range tags {
		if slices.Contains(tags[:i], t) {
			out := slices.Clone(tags[:i])
			for _, u := range tags[i:] {
				if !slices.Contains(out, u) {
					out = append(out, u)
				}
			}
			return out
		}
	}
	return tags
}

// writer holds the prepared statements of one Commit.
type writer struct {
	insert, update, ftsDelete, ftsInsert, tagDelete, tagInsert, sidTaken *sql.Stmt
}

func prepareWriter(ctx context.Context, tx *sql.Tx, t tables) (*writer, error) {
	w := &writer{}
	var sets []string
	for _, col := range strings.Split(writeColumns, ", ")[2:] { // not id, customer_id
		sets = append(sets, col+" = ?")
	}
	stmts := []struct {
		dst **sql.Stmt
		sql string
	}{
		{&w.insert, "INSERT INTO " + t.customers + " (" + writeColumns + ") VALUES (" +
			placeholders(strings.Count(writeColumns, ",")+1) + ")"},
		// The seq guard cannot fail (plan read the stored seq under the
		// write lock); it is the second line of "never regress".
		{&w.update, "UPDATE " + t.customers + " SET " + strings.Join(sets, ", ") + " WHERE id = ? AND seq < ?"},
		{&w.ftsDelete, "DELETE FROM " + t.fts + " WHERE rowid = ?"},
		{&w.ftsInsert, "INSERT INTO " + t.fts + " (rowid, terms) VALUES (?, ?)"},
		{&w.sidTaken, "SELECT count(*) FROM " + t.customers + " WHERE sid = ?"},
		{&w.tagDelete, "DELETE FROM " + t.tags + " WHERE tag = ? AND customer = ?"},
		{&w.tagInsert, "INSERT OR IGNORE INTO " + t.tags + " (tag, customer) VALUES (?, ?)"},
	}
	for _, st := range stmts {
		p, err := tx.PrepareContext(ctx, st.sql)
		if err != nil {
			w.close()
			return nil, err
		}
		*st.dst = p
	}
	return w, nil
}

func (w *writer) close() {
	for _, st := range []*sql.Stmt{w.insert, w.update, w.ftsDelete, w.ftsInsert, w.tagDelete, w.tagInsert, w.sidTaken} {
		if st != nil {
			st.Close()
		}
	}
}

// errConcurrentWrite means a stored document changed under the write lock,
// which SQLite's locking rules out; the transaction is rolled back.
var errConcurrentWrite = errors.New("stored document changed during the commit")

// unindex removes the replaced live document's rows from the search index
// and the tag table.
func (w *writer) unindex(ctx context.Context, c change) error {
	if !c.exists || c.old.deleted {
		return nil
	}
	if c.old.sid.Valid {
		if _, err := w.ftsDelete.ExecContext(ctx, c.old.sid.Int64); err != nil {
			return err
		}
	}
	for _, tag := range c.old.tags {
		if _, err := w.tagDelete.ExecContext(ctx, tag, c.id); err != nil {
			return err
		}
	}
	return nil
}

// store inserts or updates the document row, with its search id (c.sid).
func (w *writer) store(ctx context.Context, c *change) error {
	d := c.doc
	if err := w.searchID(ctx, c); err != nil {
		return err
	}
	tagsJSON, err := json.Marshal(c.tags)
	if err != nil {
		return err
	}
	absorbed := make([][2]string, len(d.Absorbed))
	for i, a := range d.Absorbed {
		absorbed[i] = [2]string{a.ID, a.Code}
	}
	absorbedJSON, err := json.Marshal(absorbed)
	if err != nil {
		return err
	}
	fields := []any{
		d.Code, search.CodeNumber(d.Code), d.Name, search.Fold(d.Name), d.Email, emailKey(d.Email), d.Phone,
		d.Company, d.Address.Street, d.Address.City, d.Address.State, d.Address.Country,
		d.Address.PostalCode, d.Type, d.Status, d.Notes, string(tagsJSON), d.ExternalID, d.CreatedBy,
		nanos(d.CreatedAt), nanos(d.UpdatedAt), int64(d.Version), int64(d.Seq), d.Hidden(), d.MergedInto, string(absorbedJSON),
		c.keys.Email, c.keys.Phone, c.keys.NameCompany,
		padded(c.terms.Name), padded(c.terms.Company), padded(c.terms.Email), padded(c.terms.AllCodes()), c.sid,
	}
	if !c.exists {
		_, err := w.insert.ExecContext(ctx, append([]any{c.id, d.ID}, fields...)...)
		return err
	}
	res, err := w.update.ExecContext(ctx, append(fields, c.id, int64(d.Seq))...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.Join(errConcurrentWrite, err)
	}
	return nil
}

// index adds a live document's rows to the search index and the tag table.
func (w *writer) index(ctx context.Context, c change) error {
	if c.doc.Hidden() {
		return nil
	}
	_, err := w.ftsInsert.ExecContext(ctx, c.sid, indexText(c.terms, c.doc.Status, c.doc.Type, c.doc.CreatedBy, c.index))
	if err != nil {
		return err
	}
	for _, tag := range c.index {
		if _, err := w.tagInsert.ExecContext(ctx, tag, c.id); err != nil {
			return err
		}
	}
	return nil
}

// plan returns the documents of docs (one per id, readmodel.Prepare) that
// replace what is stored: those with a higher Seq than the stored one; new
// ids get the next row ids.
func plan(ctx context.Context, tx *sql.Tx, t tables, docs []readmodel.Customer) ([]change, error) {
	if len(docs) == 0 {
		return nil, nil
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	have, err := storedStates(ctx, tx, t, ids)
	if err != nil {
		return nil, err
	}
	var nextID int64
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(id), 0) FROM "+t.customers).Scan(&nextID); err != nil {
		return nil, err
	}
	changes := make([]change, 0, len(ids))
	for _, d := range docs {
		old, exists := have[d.ID]
		if exists && old.seq >= d.Seq {
			continue // stale or duplicate: never regress
		}
		c := change{id: old.id, doc: d, old: old, exists: exists, tags: d.Tags,
			terms: search.NewDocTerms(d.Name, d.Company, d.Email, d.Code, d.AbsorbedCodes()...),
			keys:  dedupe.Keys{Email: dedupe.Email(d.Email), NameCompany: dedupe.NameCompany(d.Name, d.Company)}}
		if exists && old.phone == d.Phone && old.country == d.Address.Country {
			c.keys.Phone = old.keys.Phone
		} else {
			c.keys.Phone = dedupe.Phone(d.Phone, d.Address.Country)
		}
		if !exists {
			nextID++
			c.id = nextID
		}
		c.index = distinct(c.tags)
		changes = append(changes, c)
	}
	return changes, nil
}

// loadSQL is the query of the documents whose ids are in the JSON array
// argument (idList), through the unique index on customer_id.
func loadSQL(t tables) string {
	return "SELECT " + docColumns + " FROM " + t.customers + " AS c WHERE customer_id IN (SELECT value FROM json_each(?))"
}

// idList returns ids as one JSON array, the argument of "IN (SELECT value
// FROM json_each(?))": one short statement for any number of ids. (An IN
// list of n placeholders made a statement as long as the batch, parsed
// again on every call; with the reader's re-mapping of the file, Load was a
// fifth of the service's CPU under creates.)
func idList(ids []string) (string, error) {
	b, err := json.Marshal(ids)
	return string(b), err
}

// storedStates returns the stored state of those ids that exist.
func storedStates(ctx context.Context, tx *sql.Tx, t tables, ids []string) (map[string]stored, error) {
	have := make(map[string]stored, len(ids))
	for i := 0; i < len(ids); i += loadBatch {
		list, err := idList(ids[i:min(len(ids), i+loadBatch)])
		if err != nil {
			return nil, err
		}
		rows, err := tx.QueryContext(ctx, "SELECT customer_id, id, seq, deleted, status, type, created_by, tags, dup_email, dup_phone, dup_name, phone, country, sid FROM "+
			t.customers+" WHERE customer_id IN (SELECT value FROM json_each(?))", list)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var (
				id, tags string
				st       stored
				seq      int64
			)
			err := rows.Scan(&id, &st.id, &seq, &st.deleted, &st.facet.status, &st.facet.typ, &st.facet.createdBy, &tags,
				&st.keys.Email, &st.keys.Phone, &st.keys.NameCompany, &st.phone, &st.country, &st.sid)
			if err == nil {
				err = json.Unmarshal([]byte(tags), &st.tags)
			}
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("customer %s: %w", id, err)
			}
			st.seq = uint64(seq)
			st.tags = distinct(st.tags)
			have[id] = st
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return have, nil
}

// writeColumns are the columns Commit writes, in the order of its arguments.
const writeColumns = "id, customer_id, customer_code, code_num, name, name_key, email, email_key, phone, company, " +
	"street, city, state, country, postal_code, type, status, notes, tags, external_id, created_by, " +
	"created_at, updated_at, version, seq, deleted, merged_into, absorbed, dup_email, dup_phone, dup_name, " +
	"name_terms, company_terms, email_terms, code_key, sid"

// padded returns tokens joined by spaces with a space before and after
// (" john smith "), so that SQL finds a token as " w " and a token
// starting with w as " w" (see scoreExpr).
func padded(tokens []string) string {
	if len(tokens) == 0 {
		return " "
	}
	return " " + strings.Join(tokens, " ") + " "
}

// Times are stored as Unix nanoseconds in UTC, exact for every time between
// the years 1678 and 2262; the zero time is NULL; times beyond are clamped.
var (
	minNanos = time.Unix(0, math.MinInt64).UTC()
	maxNanos = time.Unix(0, math.MaxInt64).UTC()
)

func nanos(t time.Time) any {
	switch {
	case t.IsZero():
		return nil
	case t.Before(minNanos):
		return int64(math.MinInt64)
	case t.After(maxNanos):
		return int64(math.MaxInt64)
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// docColumns are the columns a query reads, as scanDocs expects them; the
// customers table is aliased c.
const docColumns = "c.customer_id, c.customer_code, c.name, c.email, c.phone, c.company, " +
	"c.street, c.city, c.state, c.country, c.postal_code, c.type, c.status, c.notes, c.tags, c.external_id, " +
	"c.created_by, c.created_at, c.updated_at, c.version, c.seq, c.deleted, c.merged_into, c.absorbed"

// scanDocs reads every row of rows (docColumns) into fn and closes rows.
func scanDocs(rows *sql.Rows, fn func(readmodel.Customer)) error {
	return scanDocsUntil(rows, func(c readmodel.Customer) error { fn(c); return nil })
}

// scanDocsUntil is scanDocs stopping at fn's first error.
func scanDocsUntil(rows *sql.Rows, fn func(readmodel.Customer) error) error {
	defer rows.Close()
	for rows.Next() {
		var (
			c                readmodel.Customer
			tags, absorbed   string
			created, updated sql.NullInt64
			version, seq     int64
			hidden           bool
		)
		err := rows.Scan(&c.ID, &c.Code, &c.Name, &c.Email, &c.Phone, &c.Company,
			&c.Address.Street, &c.Address.City, &c.Address.State, &c.Address.Country, &c.Address.PostalCode,
			&c.Type, &c.Status, &c.Notes, &tags, &c.ExternalID, &c.CreatedBy, &created, &updated, &version, &seq, &hidden,
			&c.MergedInto, &absorbed)
		if err != nil {
			return err
		}
		c.Deleted = hidden && c.MergedInto == "" // a merged customer is never deleted too
		var pairs [][2]string
		if err := json.Unmarshal([]byte(absorbed), &pairs); err != nil {
			return fmt.Errorf("customer %s: absorbed: %w", c.ID, err)
		}
		for _, p := range pairs {
			c.Absorbed = append(c.Absorbed, readmodel.Absorbed{ID: p[0], Code: p[1]})
		}
		if err := json.Unmarshal([]byte(tags), &c.Tags); err != nil {
			return fmt.Errorf("customer %s: tags: %w", c.ID, err)
		}
		if c.Tags == nil {
			c.Tags = []string{}
		}
		c.CreatedAt, c.UpdatedAt = fromNanos(created), fromNanos(updated)
		c.Version, c.Seq = uint64(version), uint64(seq)
		if err := fn(c); err != nil {
			return err
		}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	return rows.Err()
}

// emailKey is the indexed form of an email (customer.EmailKey; "" when
// unset or invalid).
func emailKey(email string) string {
	k, _ := customer.EmailKey(email)
	return k
}
