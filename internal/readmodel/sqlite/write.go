package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"crm/internal/customer"
	"crm/internal/search"
)

// loadBatch is how many ids one Load query asks for.
const loadBatch = 500

// Load returns the stored documents, tombstones included, of ids.
func (s *Store) Load(ctx context.Context, ids []string) (map[string]customer.Customer, error) {
	return s.load(ctx, live, ids)
}

// Commit stores docs and advances the checkpoint, in one transaction (see
// readmodel.Writer).
func (s *Store) Commit(ctx context.Context, docs []customer.Customer, checkpoint uint64) error {
	return s.commit(ctx, live, docs, checkpoint)
}

// Checkpoint returns the stream sequence up to which the read model is
// complete.
func (s *Store) Checkpoint(ctx context.Context) (uint64, error) {
	return s.checkpoint(ctx, live)
}

func (s *Store) load(ctx context.Context, t tables, ids []string) (map[string]customer.Customer, error) {
	if s.closed.Load() {
		return nil, s.fail("load", errClosed)
	}
	out := make(map[string]customer.Customer, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), loadBatch)
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		ids = ids[n:]
		rows, err := s.r.QueryContext(ctx, "SELECT "+docColumns+" FROM "+t.customers+
			" AS c WHERE customer_id IN ("+placeholders(n)+")", args...)
		if err != nil {
			return nil, s.fail("load", err)
		}
		err = scanDocs(rows, func(c customer.Customer) { out[c.ID] = c })
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
	err := s.r.QueryRowContext(ctx, "SELECT seq FROM "+t.checkpoint+" WHERE id = 1").Scan(&seq)
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
	tags    string // JSON
}

func (s *Store) commit(ctx context.Context, t tables, docs []customer.Customer, checkpoint uint64) error {
	if s.closed.Load() {
		return s.fail("commit", errClosed)
	}
	if checkpoint > math.MaxInt64 {
		return fmt.Errorf("readmodel/sqlite: commit: checkpoint %d out of range", checkpoint)
	}
	for _, d := range docs {
		if d.ID == "" {
			return fmt.Errorf("readmodel/sqlite: commit: document without id")
		}
		if d.Seq > math.MaxInt64 || d.Version > math.MaxInt64 {
			return fmt.Errorf("readmodel/sqlite: commit %s: seq or version out of range", d.ID)
		}
	}
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the write lock up front
	if err != nil {
		return s.fail("commit", err)
	}
	defer tx.Rollback()
	if err := s.commitTx(ctx, tx, t, docs, checkpoint); err != nil {
		return s.fail("commit", err)
	}
	return s.fail("commit", tx.Commit())
}

func (s *Store) commitTx(ctx context.Context, tx *sql.Tx, t tables, docs []customer.Customer, checkpoint uint64) error {
	if len(docs) > 0 {
		have, err := storedStates(ctx, tx, t, docs)
		if err != nil {
			return err
		}
		w, err := prepareWriter(ctx, tx, t)
		if err != nil {
			return err
		}
		defer w.close()
		for _, d := range docs {
			old, exists := have[d.ID]
			if exists && old.seq >= d.Seq {
				continue // stale or duplicate: never regress
			}
			st, changed, err := w.write(ctx, d, old, exists)
			if err != nil {
				return err
			}
			if changed {
				have[d.ID] = st
			}
		}
	}
	_, err := tx.ExecContext(ctx, "UPDATE "+t.checkpoint+" SET seq = max(seq, ?) WHERE id = 1", int64(checkpoint))
	return err
}

// storedStates returns the stored state of the documents of docs that exist.
func storedStates(ctx context.Context, tx *sql.Tx, t tables, docs []customer.Customer) (map[string]stored, error) {
	have := make(map[string]stored, len(docs))
	for i := 0; i < len(docs); i += loadBatch {
		batch := docs[i:min(len(docs), i+loadBatch)]
		args := make([]any, len(batch))
		for j, d := range batch {
			args[j] = d.ID
		}
		rows, err := tx.QueryContext(ctx, "SELECT customer_id, id, seq, deleted, tags FROM "+t.customers+
			" WHERE customer_id IN ("+placeholders(len(batch))+")", args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var (
				id  string
				st  stored
				seq int64
			)
			if err := rows.Scan(&id, &st.id, &seq, &st.deleted, &st.tags); err != nil {
				rows.Close()
				return nil, err
			}
			st.seq = uint64(seq)
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

// writer holds the prepared statements of one Commit.
type writer struct {
	upsert, ftsDelete, ftsInsert, tagDelete, tagInsert *sql.Stmt
}

func prepareWriter(ctx context.Context, tx *sql.Tx, t tables) (*writer, error) {
	w := &writer{}
	var updates []string
	for _, col := range strings.Split(writeColumns, ", ") {
		if col != "customer_id" {
			updates = append(updates, col+" = excluded."+col)
		}
	}
	stmts := []struct {
		dst *(*sql.Stmt)
		sql string
	}{
		{&w.upsert, "INSERT INTO " + t.customers + " (" + writeColumns + ") VALUES (" +
			placeholders(strings.Count(writeColumns, ",")+1) + ")" +
			" ON CONFLICT (customer_id) DO UPDATE SET " + strings.Join(updates, ", ") +
			" WHERE excluded.seq > " + t.customers + ".seq RETURNING id"},
		{&w.ftsDelete, "DELETE FROM " + t.fts + " WHERE rowid = ?"},
		{&w.ftsInsert, "INSERT INTO " + t.fts + " (rowid, name, company, email, code) VALUES (?, ?, ?, ?, ?)"},
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
	for _, st := range []*sql.Stmt{w.upsert, w.ftsDelete, w.ftsInsert, w.tagDelete, w.tagInsert} {
		if st != nil {
			st.Close()
		}
	}
}

// writeColumns are the columns Commit writes, in the order of docArgs.
const writeColumns = "customer_id, customer_code, code_num, name, name_key, email, phone, company, " +
	"street, city, state, country, postal_code, type, status, notes, tags, created_by, " +
	"created_at, updated_at, version, seq, deleted, name_terms, company_terms, email_terms"

// write stores d over the stored state old (when exists) and keeps the tag
// table and the search index in step. changed is false when the stored row
// was newer after all (another writer got there first).
func (w *writer) write(ctx context.Context, d customer.Customer, old stored, exists bool) (stored, bool, error) {
	tags := d.Tags
	if tags == nil {
		tags = []string{}
	}
	tagsJSON, err := json.Marshal(tags)
	if err != nil {
		return stored{}, false, err
	}
	terms := search.NewDocTerms(d.Name, d.Company, d.Email, d.Code)
	nameTerms := strings.Join(terms.Name, " ")
	companyTerms := strings.Join(terms.Company, " ")
	emailTerms := strings.Join(terms.Email, " ")
	var id int64
	err = w.upsert.QueryRowContext(ctx,
		d.ID, d.Code, search.CodeNumber(d.Code), d.Name, search.Fold(d.Name), d.Email, d.Phone, d.Company,
		d.Address.Street, d.Address.City, d.Address.State, d.Address.Country, d.Address.PostalCode,
		d.Type, d.Status, d.Notes, string(tagsJSON), d.CreatedBy,
		nanos(d.CreatedAt), nanos(d.UpdatedAt), int64(d.Version), int64(d.Seq), d.Deleted,
		nameTerms, companyTerms, emailTerms,
	).Scan(&id)
	if err == sql.ErrNoRows {
		return stored{}, false, nil
	}
	if err != nil {
		return stored{}, false, err
	}
	if exists && !old.deleted {
		if _, err := w.ftsDelete.ExecContext(ctx, id); err != nil {
			return stored{}, false, err
		}
		var oldTags []string
		if err := json.Unmarshal([]byte(old.tags), &oldTags); err != nil {
			return stored{}, false, err
		}
		for _, tag := range oldTags {
			if _, err := w.tagDelete.ExecContext(ctx, tag, id); err != nil {
				return stored{}, false, err
			}
		}
	}
	if !d.Deleted {
		if _, err := w.ftsInsert.ExecContext(ctx, id, nameTerms, companyTerms, emailTerms, terms.Code); err != nil {
			return stored{}, false, err
		}
		for _, tag := range tags {
			if _, err := w.tagInsert.ExecContext(ctx, tag, id); err != nil {
				return stored{}, false, err
			}
		}
	}
	return stored{id: id, seq: d.Seq, deleted: d.Deleted, tags: string(tagsJSON)}, true, nil
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
	"c.street, c.city, c.state, c.country, c.postal_code, c.type, c.status, c.notes, c.tags, " +
	"c.created_by, c.created_at, c.updated_at, c.version, c.seq, c.deleted"

// scanDocs reads every row of rows (docColumns) into fn and closes rows.
func scanDocs(rows *sql.Rows, fn func(customer.Customer)) error {
	defer rows.Close()
	for rows.Next() {
		var (
			c                customer.Customer
			tags             string
			created, updated sql.NullInt64
			version, seq     int64
		)
		err := rows.Scan(&c.ID, &c.Code, &c.Name, &c.Email, &c.Phone, &c.Company,
			&c.Address.Street, &c.Address.City, &c.Address.State, &c.Address.Country, &c.Address.PostalCode,
			&c.Type, &c.Status, &c.Notes, &tags, &c.CreatedBy, &created, &updated, &version, &seq, &c.Deleted)
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(tags), &c.Tags); err != nil {
			return fmt.Errorf("customer %s: tags: %w", c.ID, err)
		}
		if c.Tags == nil {
			c.Tags = []string{}
		}
		c.CreatedAt, c.UpdatedAt = fromNanos(created), fromNanos(updated)
		c.Version, c.Seq = uint64(version), uint64(seq)
		fn(c)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	return rows.Err()
}
