package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"crm/internal/readmodel"
	"crm/internal/search"
)

// How a contact search reads only what its page needs.
//
// A contact search is in name order (it has no ranking: a directory of
// people reads alphabetically), so it is the customers' search of one
// tier (search.go): the search index's rowid is the contact's search id
// (sid), a bucket of the folded name (nameBucket) above a slot; the
// matches are read from the index in rowid order a chunk at a time, each
// chunk's names taken from the sid index alone (contacts_sid), and a
// bucket's matches sorted by name once the whole bucket is read. The rows
// read are the page's and one bucket's, whatever the number of matches;
// the total is counted in the index only, up to search.MaxExactTotal.

// contactMarks are the index's marks of the searchable fields.
const (
	contactNameMark  = "n"
	contactTitleMark = "t"
	contactEmailMark = "e"
)

// contactIndexText is the search index's text of a live contact: its
// marked tokens, then a facet per tag.
func contactIndexText(d readmodel.Contact) string {
	var b strings.Builder
	name, title, email := readmodel.ContactTerms(d)
	for _, f := range []struct {
		mark string
		toks []string
	}{{contactNameMark, name}, {contactTitleMark, title}, {contactEmailMark, email}} {
		for _, tok := range f.toks {
			b.WriteString(f.mark + tok + " ")
		}
	}
	for _, tag := range distinct(d.Tags) {
		b.WriteString(tagFacet(tag) + " ")
	}
	return b.String()
}

// contactSearchID returns the search id of live contact d: its stored one
// while the name stays in the same bucket, else the first free slot from
// a hash of its id in the new bucket (looked up under the write lock, so
// two live contacts never share one).
func contactSearchID(ctx context.Context, tx *sql.Tx, t tables, d readmodel.Contact, old storedContact, exists bool) (sql.NullInt64, error) {
	bucket := nameBucket(search.Fold(d.Name))
	if exists && !old.deleted && old.sid.Valid && old.sid.Int64>>slotBits == bucket {
		return old.sid, nil
	}
	h := fnv.New64a()
	h.Write([]byte(d.ID))
	slot := int64(h.Sum64() & slotMask)
	for range slotMask + 1 {
		sid := bucket<<slotBits | slot
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+t.contacts+" WHERE sid = ?", sid).Scan(&n); err != nil {
			return sql.NullInt64{}, err
		}
		if n == 0 {
			return sql.NullInt64{Int64: sid, Valid: true}, nil
		}
		slot = (slot + 1) & slotMask
	}
	return sql.NullInt64{}, errBucketFull
}

// contactMatchExpr is the FTS5 query of the words (each a prefix of a
// token of the name, title or email) and the tag.
func contactMatchExpr(words []string, tag string) string {
	parts := make([]string, 0, len(words)+1)
	for _, w := range words {
		parts = append(parts, "("+phrase(contactNameMark+w)+"* OR "+phrase(contactTitleMark+w)+"* OR "+phrase(contactEmailMark+w)+"*)")
	}
	if tag != "" {
		parts = append(parts, phrase(tagFacet(tag)))
	}
	return strings.Join(parts, " AND ")
}

// searchContacts answers a ListContacts with Text (see
// readmodel.ContactQuery).
func (s *Store) searchContacts(ctx context.Context, q readmodel.ContactQuery) (readmodel.ContactPage, error) {
	const op = "search contacts"
	words, err := readmodel.CheckContactSearch(q)
	if err != nil {
		if errors.Is(err, search.ErrEmptyQuery) || errors.Is(err, search.ErrQueryTooLong) {
			return readmodel.ContactPage{}, fmt.Errorf("readmodel/sqlite: %s: %w", op, err)
		}
		return readmodel.ContactPage{}, err
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return readmodel.ContactPage{}, s.fail(op, err)
	}
	defer tx.Rollback()
	expr := contactMatchExpr(words, q.Tag)
	var total int64
	if err := s.queryRow(ctx, tx, []any{&total}, "SELECT count(*) FROM (SELECT 1 FROM "+live.contactFts+" WHERE "+
		live.contactFts+" MATCH ? LIMIT ?)", expr, search.MaxExactTotal+1); err != nil {
		return readmodel.ContactPage{}, s.fail(op, err)
	}
	p := readmodel.ContactPage{Items: []readmodel.Contact{}, Total: total}
	if total > search.MaxExactTotal {
		p.Total, p.TotalAtLeast = search.MaxExactTotal, true
	}
	if total == 0 {
		return p, nil
	}
	limit := q.Limit()
	hits, err := s.contactHits(ctx, tx, expr, q.After, int64(limit)+1)
	if err != nil {
		return readmodel.ContactPage{}, s.fail(op, err)
	}
	if len(hits) > limit {
		hits, p.More = hits[:limit], true
	}
	ids := make([]int64, len(hits))
	for i, h := range hits {
		ids[i] = h.id
	}
	rows, err := s.query(ctx, tx, "SELECT "+contactColumns+" FROM json_each(?) AS j CROSS JOIN "+live.contacts+
		" AS k ON k.id = j.value ORDER BY j.key", jsonInts(ids))
	if err != nil {
		return readmodel.ContactPage{}, s.fail(op, err)
	}
	if err := scanContacts(rows, func(c readmodel.Contact) { p.Items = append(p.Items, c) }); err != nil {
		return readmodel.ContactPage{}, s.fail(op, err)
	}
	return p, nil
}

// contactHit is a matching contact: its row id, search id and name order.
type contactHit struct {
	id, sid   int64
	name, cid string
}

func compareContactHits(x, y contactHit) int {
	if r := strings.Compare(x.name, y.name); r != 0 {
		return r
	}
	return strings.Compare(x.cid, y.cid)
}

// contactHits returns the first n contacts matching expr in name order
// (after the position a, when not nil), reading the index a chunk at a
// time and sorting each whole bucket of names.
func (s *Store) contactHits(ctx context.Context, tx *sql.Tx, expr string, a *readmodel.ContactPosition, n int64) ([]contactHit, error) {
	from := int64(0)
	if a != nil {
		from = nameBucket(a.Name) << slotBits
	}
	var (
		out     []contactHit
		pending []contactHit // the last bucket read, which may go on in the next chunk
		chunk   = min(max(2*n, s.searchChunk), 4096)
	)
	take := func(bucket []contactHit) {
		slices.SortFunc(bucket, compareContactHits)
		if a != nil {
			pos := contactHit{name: a.Name, cid: a.ID}
			i, found := slices.BinarySearchFunc(bucket, pos, compareContactHits)
			if found {
				i++
			}
			bucket = bucket[i:]
		}
		out = append(out, bucket[:min(int64(len(bucket)), n-int64(len(out)))]...)
	}
	for int64(len(out)) < n {
		sids, err := s.ids(ctx, tx, "SELECT rowid FROM "+live.contactFts+" WHERE "+live.contactFts+
			" MATCH ? AND rowid >= ? ORDER BY rowid LIMIT ?", expr, from, chunk)
		if err != nil {
			return nil, err
		}
		cands, err := s.contactKeys(ctx, tx, sids)
		if err != nil {
			return nil, err
		}
		cands = append(pending, cands...)
		last := len(sids) < int(chunk)
		pending = nil
		for len(cands) > 0 && int64(len(out)) < n {
			b := cands[0].sid >> slotBits
			end := slices.IndexFunc(cands, func(h contactHit) bool { return h.sid>>slotBits != b })
			if end < 0 && !last {
				pending = cands
				break
			}
			if end < 0 {
				end = len(cands)
			}
			take(slices.Clone(cands[:end]))
			cands = cands[end:]
		}
		if last {
			break
		}
		from = sids[len(sids)-1] + 1
		chunk = min(chunk*4, 4096)
	}
	return out, nil
}

// contactKeys returns the row id, search id and name order of the live
// contacts with the search ids sids, in that order, from the sid index.
func (s *Store) contactKeys(ctx context.Context, tx *sql.Tx, sids []int64) ([]contactHit, error) {
	if len(sids) == 0 {
		return nil, nil
	}
	rows, err := s.query(ctx, tx, "SELECT k.sid, k.id, k.name_key, k.contact_id FROM json_each(?) AS j CROSS JOIN "+live.contacts+
		" AS k ON k.sid = j.value ORDER BY j.key", jsonInts(sids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]contactHit, 0, len(sids))
	for rows.Next() {
		var h contactHit
		if err := rows.Scan(&h.sid, &h.id, &h.name, &h.cid); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}
