package sqlite

import (
	"context"
	"database/sql"

	"crm/internal/readmodel"
)

// commitLinks writes the link documents in tx, each only over a stored one
// with a lower seq. (Links change seldom: one upsert each is cheap enough.)
func commitLinks(ctx context.Context, tx *sql.Tx, t tables, docs []readmodel.Link) error {
	for _, l := range docs {
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+t.links+" (customer_id, contact_id, role, is_primary, from_date, to_date, "+
			"linked_by, linked_at, seq, ended) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (customer_id, contact_id) DO UPDATE SET "+
			"role = excluded.role, is_primary = excluded.is_primary, from_date = excluded.from_date, to_date = excluded.to_date, "+
			"linked_by = excluded.linked_by, linked_at = excluded.linked_at, seq = excluded.seq, ended = excluded.ended "+
			"WHERE excluded.seq > "+t.links+".seq",
			l.CustomerID, l.ContactID, l.Role, l.Primary, l.From, l.To, l.LinkedBy, nanos(l.LinkedAt), int64(l.Seq), l.Ended); err != nil {
			return err
		}
	}
	return nil
}

// linkColumns are the columns of a link (aliased l) as scanLink reads them.
const linkColumns = "l.customer_id, l.contact_id, l.role, l.is_primary, l.from_date, l.to_date, l.linked_by, l.linked_at, l.seq, l.ended"

func linkDest(l *readmodel.Link, at *sql.NullInt64, seq *int64) []any {
	return []any{&l.CustomerID, &l.ContactID, &l.Role, &l.Primary, &l.From, &l.To, &l.LinkedBy, at, seq, &l.Ended}
}

// CustomerContacts returns the customer's live links with their live
// contacts (see readmodel.LinkReader).
func (s *Store) CustomerContacts(ctx context.Context, customerID string) ([]readmodel.LinkedContact, error) {
	if s.closed.Load() {
		return nil, s.fail("customer contacts", errClosed)
	}
	rows, err := s.query(ctx, nil, "SELECT "+linkColumns+", "+contactColumns+" FROM "+live.links+" AS l JOIN "+live.contacts+
		" AS k ON k.contact_id = l.contact_id WHERE l.customer_id = ? AND l.ended = 0 AND k.deleted = 0 "+
		"ORDER BY l.is_primary DESC, k.name_key, k.contact_id", customerID)
	if err != nil {
		return nil, s.fail("customer contacts", err)
	}
	defer rows.Close()
	out := []readmodel.LinkedContact{}
	for rows.Next() {
		var (
			lc      readmodel.LinkedContact
			at      sql.NullInt64
			seq     int64
			contact contactRow
		)
		if err := rows.Scan(append(linkDest(&lc.Link, &at, &seq), contact.dest()...)...); err != nil {
			return nil, s.fail("customer contacts", err)
		}
		lc.Link.LinkedAt, lc.Link.Seq = fromNanos(at), uint64(seq)
		if lc.Contact, err = contact.doc(); err != nil {
			return nil, s.fail("customer contacts", err)
		}
		out = append(out, lc)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("customer contacts", err)
	}
	return out, nil
}

// ContactCustomers returns the contact's live links with their live
// customers (see readmodel.LinkReader).
func (s *Store) ContactCustomers(ctx context.Context, contactID string) ([]readmodel.LinkedCustomer, error) {
	if s.closed.Load() {
		return nil, s.fail("contact customers", errClosed)
	}
	rows, err := s.query(ctx, nil, "SELECT "+linkColumns+" FROM "+live.links+" AS l WHERE l.contact_id = ? AND l.ended = 0", contactID)
	if err != nil {
		return nil, s.fail("contact customers", err)
	}
	defer rows.Close()
	var links []readmodel.Link
	for rows.Next() {
		var (
			l   readmodel.Link
			at  sql.NullInt64
			seq int64
		)
		if err := rows.Scan(linkDest(&l, &at, &seq)...); err != nil {
			return nil, s.fail("contact customers", err)
		}
		l.LinkedAt, l.Seq = fromNanos(at), uint64(seq)
		links = append(links, l)
	}
	if err := rows.Close(); err != nil {
		return nil, s.fail("contact customers", err)
	}
	ids := make([]string, len(links))
	for i, l := range links {
		ids[i] = l.CustomerID
	}
	list, err := idList(ids)
	if err != nil {
		return nil, err
	}
	// The live customers among them, by name then code (the name index).
	crows, err := s.query(ctx, nil, "SELECT "+docColumns+" FROM "+live.customers+
		" AS c WHERE c.customer_id IN (SELECT value FROM json_each(?)) AND c.deleted = 0 ORDER BY c.name_key, c.code_num", list)
	if err != nil {
		return nil, s.fail("contact customers", err)
	}
	byID := make(map[string]readmodel.Link, len(links))
	for _, l := range links {
		byID[l.CustomerID] = l
	}
	out := []readmodel.LinkedCustomer{}
	err = scanDocs(crows, func(c readmodel.Customer) {
		out = append(out, readmodel.LinkedCustomer{Link: byID[c.ID], Customer: c})
	})
	if err != nil {
		return nil, s.fail("contact customers", err)
	}
	return out, nil
}
