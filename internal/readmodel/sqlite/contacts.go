package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"crm/internal/fault"
	"crm/internal/readmodel"
	"crm/internal/search"
)

// contactColumns are the columns a contact query reads, as scanContacts
// expects them; the contacts table is aliased k.
const contactColumns = "k.contact_id, k.name, k.email, k.phone, k.title, k.notes, k.tags, " +
	"k.created_by, k.created_at, k.updated_by, k.updated_at, k.version, k.seq, k.deleted"

// LoadContacts returns the stored contact documents, tombstones included,
// of ids.
func (s *Store) LoadContacts(ctx context.Context, ids []string) (map[string]readmodel.Contact, error) {
	return s.loadContacts(ctx, live, ids)
}

func (s *Store) loadContacts(ctx context.Context, t tables, ids []string) (map[string]readmodel.Contact, error) {
	if s.closed.Load() {
		return nil, s.fail("load contacts", errClosed)
	}
	out := make(map[string]readmodel.Contact, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), loadBatch)
		list, err := idList(ids[:n])
		if err != nil {
			return nil, err
		}
		ids = ids[n:]
		rows, err := s.w.QueryContext(ctx, "SELECT "+contactColumns+" FROM "+t.contacts+
			" AS k WHERE contact_id IN (SELECT value FROM json_each(?))", list)
		if err != nil {
			return nil, s.fail("load contacts", err)
		}
		if err := scanContacts(rows, func(c readmodel.Contact) { out[c.ID] = c }); err != nil {
			return nil, s.fail("load contacts", err)
		}
	}
	return out, nil
}

// storedContact is what a commit needs of a stored contact.
type storedContact struct {
	id      int64
	seq     uint64
	deleted bool
	tags    []string
	sid     sql.NullInt64
}

// commitContacts writes docs in tx (which holds the write lock), each
// only over a stored one with a lower seq, and keeps the tag rows and the
// counts of live contacts.
func commitContacts(ctx context.Context, tx *sql.Tx, t tables, docs []readmodel.Contact) error {
	if len(docs) == 0 {
		return nil
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	have := make(map[string]storedContact, len(docs))
	for i := 0; i < len(ids); i += loadBatch {
		list, err := idList(ids[i:min(len(ids), i+loadBatch)])
		if err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, "SELECT contact_id, id, seq, deleted, tags, sid FROM "+t.contacts+
			" WHERE contact_id IN (SELECT value FROM json_each(?))", list)
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				id, tags string
				st       storedContact
				seq      int64
			)
			err := rows.Scan(&id, &st.id, &seq, &st.deleted, &tags, &st.sid)
			if err == nil {
				err = json.Unmarshal([]byte(tags), &st.tags)
			}
			if err != nil {
				rows.Close()
				return fmt.Errorf("contact %s: %w", id, err)
			}
			st.seq = uint64(seq)
			st.tags = distinct(st.tags)
			have[id] = st
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
	counts := map[string]int{}
	for _, d := range docs {
		old, exists := have[d.ID]
		if exists && old.seq >= d.Seq {
			continue // stale: an older or the same event
		}
		tags, err := json.Marshal(d.Tags)
		if err != nil {
			return err
		}
		if exists && !old.deleted && old.sid.Valid {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+t.contactFts+" WHERE rowid = ?", old.sid.Int64); err != nil {
				return fmt.Errorf("contact %s: %w", d.ID, err)
			}
		}
		var sid sql.NullInt64
		if !d.Deleted {
			if sid, err = contactSearchID(ctx, tx, t, d, old, exists); err != nil {
				return fmt.Errorf("contact %s: %w", d.ID, err)
			}
		}
		args := []any{d.Name, search.Fold(d.Name), d.Email, strings.ToLower(d.Email), d.Phone, d.Title, d.Notes, string(tags),
			d.CreatedBy, nanos(d.CreatedAt), d.UpdatedBy, nanos(d.UpdatedAt), int64(d.Version), int64(d.Seq), d.Deleted, sid}
		var row int64
		if exists {
			row = old.id
			_, err = tx.ExecContext(ctx, "UPDATE "+t.contacts+" SET name = ?, name_key = ?, email = ?, email_key = ?, phone = ?, "+
				"title = ?, notes = ?, tags = ?, created_by = ?, created_at = ?, updated_by = ?, updated_at = ?, "+
				"version = ?, seq = ?, deleted = ?, sid = ? WHERE id = ?", append(args, row)...)
			if err == nil && !old.deleted {
				_, err = tx.ExecContext(ctx, "DELETE FROM "+t.contactTags+" WHERE contact = ?", row)
				counts[""]--
				for _, tag := range old.tags {
					counts[tag]--
				}
			}
		} else {
			err = tx.QueryRowContext(ctx, "INSERT INTO "+t.contacts+" (contact_id, name, name_key, email, email_key, phone, "+
				"title, notes, tags, created_by, created_at, updated_by, updated_at, version, seq, deleted, sid) "+
				"VALUES ("+placeholders(17)+") RETURNING id", append([]any{d.ID}, args...)...).Scan(&row)
		}
		if err != nil {
			return fmt.Errorf("contact %s: %w", d.ID, err)
		}
		if d.Deleted {
			continue
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+t.contactFts+" (rowid, terms) VALUES (?, ?)", sid.Int64, contactIndexText(d)); err != nil {
			return fmt.Errorf("contact %s: %w", d.ID, err)
		}
		counts[""]++
		for _, tag := range distinct(d.Tags) {
			counts[tag]++
			if _, err := tx.ExecContext(ctx, "INSERT INTO "+t.contactTags+
				" (tag, contact, contact_id, name_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
				tag, row, d.ID, search.Fold(d.Name), nanos(d.CreatedAt), nanos(d.UpdatedAt)); err != nil {
				return fmt.Errorf("contact %s: %w", d.ID, err)
			}
		}
	}
	for tag, n := range counts {
		if n == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+t.contactCounts+" (tag, n) VALUES (?, ?) "+
			"ON CONFLICT (tag) DO UPDATE SET n = n + excluded.n", tag, n); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, "DELETE FROM "+t.contactCounts+" WHERE n = 0")
	return err
}

// GetContact returns one live contact.
func (s *Store) GetContact(ctx context.Context, id string) (readmodel.Contact, error) {
	if s.closed.Load() {
		return readmodel.Contact{}, s.fail("get contact", errClosed)
	}
	rows, err := s.query(ctx, nil, "SELECT "+contactColumns+" FROM "+live.contacts+" AS k WHERE k.contact_id = ? AND k.deleted = 0", id)
	if err != nil {
		return readmodel.Contact{}, s.fail("get contact", err)
	}
	var (
		c     readmodel.Contact
		found bool
	)
	if err := scanContacts(rows, func(d readmodel.Contact) { c, found = d, true }); err != nil {
		return readmodel.Contact{}, s.fail("get contact", err)
	}
	if !found {
		return readmodel.Contact{}, readmodel.ErrContactNotFound
	}
	return c, nil
}

// ListContacts returns one page of live contacts (see
// readmodel.ContactReader). Without a tag it reads the contacts' index of
// the order; with one, the tag rows' (which carry the sort keys); the
// email filter reads its few matches through the email index. Both read
// one snapshot: the page and its total agree.
func (s *Store) ListContacts(ctx context.Context, q readmodel.ContactQuery) (readmodel.ContactPage, error) {
	if s.closed.Load() {
		return readmodel.ContactPage{}, s.fail("list contacts", errClosed)
	}
	if q.Text != "" {
		return s.searchContacts(ctx, q)
	}
	limit := q.Limit()
	query, args, err := contactListSQL(live, q, limit+1)
	if err != nil {
		return readmodel.ContactPage{}, err
	}
	countQuery, countArgs := contactCountSQL(live, q)
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return readmodel.ContactPage{}, s.fail("list contacts", err)
	}
	defer tx.Rollback()
	rows, err := s.query(ctx, tx, query, args...)
	if err != nil {
		return readmodel.ContactPage{}, s.fail("list contacts", err)
	}
	var out readmodel.ContactPage
	if err := scanContacts(rows, func(c readmodel.Contact) { out.Items = append(out.Items, c) }); err != nil {
		return readmodel.ContactPage{}, s.fail("list contacts", err)
	}
	if len(out.Items) > limit {
		out.Items, out.More = out.Items[:limit], true
	}
	if err := s.queryRow(ctx, tx, []any{&out.Total}, countQuery, countArgs...); err != nil {
		return readmodel.ContactPage{}, s.fail("list contacts", err)
	}
	return out, nil
}

// contactFrom returns the tables and filter terms of q and the columns
// to order by. With an email, its few matches are read through the email
// index (the unary + keeps SQLite from walking an index of the order
// instead; email_key != ” lets it use the partial index) and the tag is a
// condition on them. Else, without a tag, the contacts (aliased k) are read
// in the order of their index; with one, the tag rows (aliased t, which
// carry the sort keys) joined to their contacts.
func contactFrom(t tables, q readmodel.ContactQuery, col string) (from string, order [2]string, where []string, args []any) {
	switch {
	case q.Email != "":
		from, order = t.contacts+" AS k", [2]string{"+k." + col, "+k.contact_id"}
		where, args = []string{"k.email_key = ?", "k.email_key != ''", "k.deleted = 0"}, []any{strings.ToLower(q.Email)}
		if q.Tag != "" {
			where = append(where, "EXISTS (SELECT 1 FROM "+t.contactTags+" AS t WHERE t.tag = ? AND t.contact = k.id)")
			args = append(args, q.Tag)
		}
	case q.Tag != "":
		from, order = t.contactTags+" AS t JOIN "+t.contacts+" AS k ON k.id = t.contact", [2]string{"t." + col, "t.contact_id"}
		where, args = []string{"t.tag = ?"}, []any{q.Tag}
	default:
		from, order = t.contacts+" AS k", [2]string{"k." + col, "k.contact_id"}
		where = []string{"k.deleted = 0"}
	}
	return from, order, where, args
}

// contactListSQL returns the query of one page of q, of at most limit
// contacts. An unknown sort is fault.Invalid.
func contactListSQL(t tables, q readmodel.ContactQuery, limit int) (string, []any, error) {
	var col string
	switch q.Sort {
	case "", readmodel.SortName:
		col = "name_key"
	case readmodel.SortCreatedAt:
		col = "created_at"
	case readmodel.SortUpdatedAt:
		col = "updated_at"
	default:
		return "", nil, fault.New(fault.Invalid, fmt.Sprintf("unknown sort %q", q.Sort))
	}
	dir, cmp := "ASC", ">"
	if q.Desc {
		dir, cmp = "DESC", "<"
	}
	from, order, where, args := contactFrom(t, q, col)
	if a := q.After; a != nil {
		var key any = a.Name
		if col != "name_key" {
			key = nanos(a.Time)
		}
		where = append(where, "("+order[0]+", "+order[1]+") "+cmp+" (?, ?)")
		args = append(args, key, a.ID)
	}
	return "SELECT " + contactColumns + " FROM " + from + " WHERE " + strings.Join(where, " AND ") +
		" ORDER BY " + order[0] + " " + dir + ", " + order[1] + " " + dir + " LIMIT ?", append(args, limit), nil
}

// contactCountSQL returns the query of the number of q's matches: one row
// of the counts without an email, else the count of the email's few
// matches.
func contactCountSQL(t tables, q readmodel.ContactQuery) (string, []any) {
	if q.Email == "" {
		return "SELECT coalesce((SELECT n FROM " + t.contactCounts + " WHERE tag = ?), 0)", []any{q.Tag}
	}
	from, _, where, args := contactFrom(t, q, "name_key")
	return "SELECT count(*) FROM " + from + " WHERE " + strings.Join(where, " AND "), args
}

// contactRow is one row of contactColumns as scanned.
type contactRow struct {
	c                readmodel.Contact
	tags             string
	created, updated sql.NullInt64
	version, seq     int64
}

func (r *contactRow) dest() []any {
	c := &r.c
	return []any{&c.ID, &c.Name, &c.Email, &c.Phone, &c.Title, &c.Notes, &r.tags,
		&c.CreatedBy, &r.created, &c.UpdatedBy, &r.updated, &r.version, &r.seq, &c.Deleted}
}

// doc returns the scanned contact.
func (r *contactRow) doc() (readmodel.Contact, error) {
	c := r.c
	if err := json.Unmarshal([]byte(r.tags), &c.Tags); err != nil {
		return c, fmt.Errorf("contact %s: tags: %w", c.ID, err)
	}
	if c.Tags == nil {
		c.Tags = []string{}
	}
	c.CreatedAt, c.UpdatedAt = fromNanos(r.created), fromNanos(r.updated)
	c.Version, c.Seq = uint64(r.version), uint64(r.seq)
	return c, nil
}

// scanContacts reads every row of rows (contactColumns) into fn and
// closes rows.
func scanContacts(rows *sql.Rows, fn func(readmodel.Contact)) error {
	defer rows.Close()
	for rows.Next() {
		var r contactRow
		if err := rows.Scan(r.dest()...); err != nil {
			return err
		}
		c, err := r.doc()
		if err != nil {
			return err
		}
		fn(c)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	return rows.Err()
}
