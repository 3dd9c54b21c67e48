package sqlite

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"crm/internal/readmodel"
	"crm/internal/search"
)

// How Search reads only what a page needs, whatever the number of matches.
//
// The ranking is search.Score, then name, then code. A score is a sum over
// the query words of the best match class of each (search.Classes), so the
// matches fall into tiers, one per score, read from the best down until
// the page is full. Within a tier the order is by name, and the search
// index gives it: its rowid, the document's search id (sid), starts with
// a bucket of the folded name (nameBucket, its first 7 characters,
// order-preserving), so the index returns matches in name order up to the
// order inside one bucket. A tier's candidates are read in rowid order a
// chunk at a time, bucket by bucket: a bucket's candidates are sorted by
// name from the sid index alone (no row read), then checked in that order
// (their score computed in SQL by scoreExpr, and the filters) until the
// page is full. The rows read are about the page and the better tiers'
// customers met on the way; the index entries read about those and one
// bucket's; never every match.
//
// The index has one token per word and field, marked by the field ("n"
// name, "c" company, "e" email, "k" code: "njohn", "eexample"), so each
// match class is one term (a token, or a prefix, from the prefix indexes up
// to six letters), and a tier's candidates are the OR, over the class
// combinations that sum to its score, of the AND of the classes' terms: a
// superset of the tier holding only better-scored customers besides it.
// The filters are tokens too (status, type, and a hash of the creator and
// of each tag), so the total is counted in the index only, up to the
// exact-total bound.

// defaultSearchFew: a search with at most this many matches scores and
// sorts all of them (cheap, and no tier to plan).
const defaultSearchFew = 500

// maxTierCombos bounds the class combinations of a query's words that the
// tiers are built from (the product over the words of their matching
// classes: 8 per word at most); queries with more rank every match.
const maxTierCombos = 256

// Search ids: the bucket of the name above slotBits bits of a slot.
const (
	slotBits   = 21
	slotMask   = 1<<slotBits - 1
	bucketRune = 7 // name characters in a bucket, 6 bits each
)

// nameBucket maps a folded name to 42 bits, order-preserving: a < b
// (bytewise, as SQLite compares name_key) implies nameBucket(a) <=
// nameBucket(b). Each of the first bucketRune bytes maps to 6 bits; space,
// digits and letters keep a code each, every other byte shares a code
// with its neighbours and ends the bucket (what follows a shared code is
// left out, which keeps the map monotone).
func nameBucket(nameKey string) int64 {
	var b int64
	stopped := false
	for i := range bucketRune {
		var c int64
		if !stopped && i < len(nameKey) {
			var exact bool
			c, exact = code6(nameKey[i])
			stopped = !exact
		}
		b = b<<6 | c
	}
	return b
}

// code6 is a byte's 6-bit code in nameBucket (0 is the end of the name),
// and whether no other byte shares it.
func code6(x byte) (int64, bool) {
	switch {
	case x < ' ':
		return 1, false
	case x == ' ':
		return 2, true
	case x < '0':
		return 3, false
	case x <= '9':
		return 4 + int64(x-'0'), true
	case x < 'a':
		return 14, false
	case x <= 'z':
		return 15 + int64(x-'a'), true
	case x < 0x80:
		return 41, false
	}
	return 42 + int64(x-0x80)/6, false // up to 63
}

var errBucketFull = errors.New("no free search id in the name's bucket")

// searchID sets c.sid: kept while the name stays in the same bucket, else
// the first free slot from the code's number in the new bucket (two live
// customers never share one: it is looked up under the write lock).
func (w *writer) searchID(ctx context.Context, c *change) error {
	c.sid = sql.NullInt64{}
	if c.doc.Hidden() {
		return nil
	}
	bucket := nameBucket(search.Fold(c.doc.Name))
	if c.exists && !c.old.deleted && c.old.sid.Valid && c.old.sid.Int64>>slotBits == bucket {
		c.sid = c.old.sid
		return nil
	}
	slot := search.CodeNumber(c.doc.Code) & slotMask
	for range slotMask + 1 {
		sid := bucket<<slotBits | slot
		var n int
		if err := w.sidTaken.QueryRowContext(ctx, sid).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			c.sid = sql.NullInt64{Int64: sid, Valid: true}
			return nil
		}
		slot = (slot + 1) & slotMask
	}
	return errBucketFull
}

// fieldMarks are the index's mark of each search.Field.
var fieldMarks = map[search.Field]string{
	search.FieldCode: "k", search.FieldName: "n", search.FieldCompany: "c", search.FieldEmail: "e",
}

// indexText is the search index's text of a live document: its marked
// tokens, then its facet tokens.
func indexText(t search.DocTerms, status, typ, createdBy string, tags []string) string {
	var b strings.Builder
	add := func(mark string, toks []string) {
		for _, tok := range toks {
			b.WriteString(mark + tok + " ")
		}
	}
	add(fieldMarks[search.FieldName], t.Name)
	add(fieldMarks[search.FieldCompany], t.Company)
	add(fieldMarks[search.FieldEmail], t.Email)
	add(fieldMarks[search.FieldCode], t.AllCodes())
	b.WriteString(statusFacet(status) + " " + typeFacet(typ) + " " + createdByFacet(createdBy))
	for _, tag := range tags {
		b.WriteString(" " + tagFacet(tag))
	}
	return b.String()
}

// Facet tokens: the ascii tokenizer keeps letters and digits, so each is a
// mark and the value (status and type are lower-case words; a creator and
// a tag, free text, are the hex of 8 bytes of their SHA-256). No search
// word becomes one: search words get a field mark.
func statusFacet(v string) string    { return "zs" + v }
func typeFacet(v string) string      { return "zt" + v }
func createdByFacet(v string) string { return "zu" + hashFacet(v) }
func tagFacet(v string) string       { return "zg" + hashFacet(v) }

func hashFacet(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:8])
}

// phrase quotes a token for FTS5 (embedded quotes doubled): no input is
// read as FTS5 syntax.
func phrase(tok string) string { return `"` + strings.ReplaceAll(tok, `"`, `""`) + `"` }

// classExpr matches the customers with a token of c's field equal to w
// (c.Exact) or starting with it.
func classExpr(w string, c search.Class) string {
	e := phrase(fieldMarks[c.Field] + w)
	if !c.Exact {
		e += "*"
	}
	return e
}

// matchExpr returns the FTS5 query of the search words and the filters
// (facets, from facetExpr): every word a prefix of a token of some field.
func matchExpr(words []string, facets string) string {
	parts := make([]string, len(words))
	for i, w := range words {
		parts[i] = "(" + phrase("n"+w) + "* OR " + phrase("c"+w) + "* OR " + phrase("e"+w) + "* OR " + phrase("k"+w) + "*)"
	}
	return strings.Join(parts, " AND ") + facets
}

// facetExpr returns the FTS5 terms (each starting with " AND ") of q's
// filters.
func facetExpr(q readmodel.Query) string {
	var b strings.Builder
	add := func(tok string) { b.WriteString(" AND " + phrase(tok)) }
	if q.Status != "" {
		add(statusFacet(q.Status))
	}
	if q.Type != "" {
		add(typeFacet(q.Type))
	}
	if q.CreatedBy != "" {
		add(createdByFacet(q.CreatedBy))
	}
	if q.Tag != "" {
		add(tagFacet(q.Tag))
	}
	return b.String()
}

// scoreExpr returns search.Score of the query words as an SQL expression
// over the padded token columns, with its arguments: per word, the weight
// of the first class of search.Classes it matches, a token equal to the
// word being " w " in the padded column and a token starting with it " w";
// a word that matches nothing adds miss. (search.Score registered as a Go
// SQL function took a third of a broad search's CPU time: every call
// converts its arguments into Go strings; TestScoreExpr checks that both
// agree.)
func scoreExpr(words []string, miss int) (string, []any) {
	cols := map[search.Field]string{
		search.FieldCode: "c.code_key", search.FieldName: "c.name_terms",
		search.FieldCompany: "c.company_terms", search.FieldEmail: "c.email_terms",
	}
	var (
		terms []string
		args  []any
	)
	for _, w := range words {
		var b strings.Builder
		b.WriteString("CASE")
		for _, c := range search.Classes {
			b.WriteString(" WHEN instr(" + cols[c.Field] + ", ?) THEN " + strconv.Itoa(c.Weight))
			if c.Exact {
				args = append(args, " "+w+" ")
			} else {
				args = append(args, " "+w)
			}
		}
		b.WriteString(" ELSE " + strconv.Itoa(miss) + " END")
		terms = append(terms, b.String())
	}
	return "(" + strings.Join(terms, " + ") + ")", args
}

// tier is the customers whose score is score: those whose best classes are
// one of combos, each a class (an index into search.Classes) per word.
type tier struct {
	score  int
	combos [][]int
}

// tiers returns the tiers of words from the best score down, built from
// the classes each word matches somewhere (has reports whether an FTS5
// expression matches any customer); ok is false when the words have more
// than maxTierCombos combinations.
func tiers(words []string, has func(expr string) (bool, error)) (out []tier, ok bool, err error) {
	perWord := make([][]int, len(words))
	combos := 1
	for i, w := range words {
		exact := map[search.Field]bool{}
		for ci, c := range search.Classes {
			found := !c.Exact && exact[c.Field] // a token equal to w starts with w
			if !found {
				if found, err = has(classExpr(w, c)); err != nil {
					return nil, false, err
				}
			}
			if found {
				perWord[i] = append(perWord[i], ci)
				exact[c.Field] = exact[c.Field] || c.Exact
			}
		}
		if len(perWord[i]) == 0 {
			return nil, true, nil // this word matches nothing: no tier
		}
		if combos *= len(perWord[i]); combos > maxTierCombos {
			return nil, false, nil
		}
	}
	byScore := map[int][][]int{}
	var walk func(i, score int, combo []int)
	walk = func(i, score int, combo []int) {
		if i == len(words) {
			byScore[score] = append(byScore[score], slices.Clone(combo))
			return
		}
		for _, ci := range perWord[i] {
			walk(i+1, score+search.Classes[ci].Weight, append(combo, ci))
		}
	}
	walk(0, 0, nil)
	for score, cs := range byScore {
		out = append(out, tier{score: score, combos: cs})
	}
	slices.SortFunc(out, func(a, b tier) int { return cmp.Compare(b.score, a.score) })
	return out, true, nil
}

// candidates returns the FTS5 query of the tier's candidates matching
// facets: every customer whose words match one of its combinations, which
// is the tier and customers of better tiers.
func (t tier) candidates(words []string, facets string) string {
	alts := make([]string, len(t.combos))
	for i, combo := range t.combos {
		parts := make([]string, len(combo))
		for j, ci := range combo {
			parts[j] = classExpr(words[j], search.Classes[ci])
		}
		alts[i] = "(" + strings.Join(parts, " AND ") + ")"
	}
	return "(" + strings.Join(alts, " OR ") + ")" + facets
}

// Search returns one page of live customers matching q.Text and q's
// filters, ranked by search.Score, then name, then code (see the comment
// at the top of this file for how). Total is exact up to q.TotalBound and
// that bound beyond (TotalAtLeast); More says whether matches follow. A
// q.Text without words, or too long, is an error wrapping
// search.ErrEmptyQuery or search.ErrQueryTooLong.
func (s *Store) Search(ctx context.Context, q readmodel.Query) (readmodel.Page, error) {
	const op = "search"
	words, err := search.ParseQuery(q.Text)
	if err != nil {
		return readmodel.Page{}, fmt.Errorf("readmodel/sqlite: search: %w", err)
	}
	if s.closed.Load() {
		return readmodel.Page{}, s.fail(op, errClosed)
	}
	limit, offset, ok := q.Bounds()
	if q.After != nil {
		offset, ok = 0, true
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return readmodel.Page{}, s.fail(op, err)
	}
	defer tx.Rollback()
	facets := facetExpr(q)
	bound := q.TotalBound()
	total, err := s.ftsCount(ctx, tx, matchExpr(words, facets), bound+1)
	if err != nil {
		return readmodel.Page{}, s.fail(op, err)
	}
	p := readmodel.Page{Items: []readmodel.Customer{}, Total: total}
	if total > bound {
		p.Total, p.TotalAtLeast = bound, true
	}
	if !ok || total == 0 || !p.TotalAtLeast && offset >= total {
		return p, nil
	}
	var ids []int64
	if !p.TotalAtLeast && total <= s.searchFew {
		ids, err = s.rankAll(ctx, tx, q, words, limit+1, offset)
	} else {
		ids, err = s.rankTiers(ctx, tx, q, words, facets, limit+1, offset)
	}
	if err != nil {
		return readmodel.Page{}, s.fail(op, err)
	}
	if int64(len(ids)) > limit {
		ids, p.More = ids[:limit], true
	}
	if err := s.readIDs(ctx, tx, ids, func(c readmodel.Customer) { p.Items = append(p.Items, c) }); err != nil {
		return readmodel.Page{}, s.fail(op, err)
	}
	return p, nil
}

// ftsCount counts the customers matching the FTS5 query expr, up to most,
// in the index only.
func (s *Store) ftsCount(ctx context.Context, tx *sql.Tx, expr string, most int64) (int64, error) {
	var n int64
	err := s.queryRow(ctx, tx, []any{&n}, "SELECT count(*) FROM (SELECT 1 FROM "+live.fts+" WHERE "+live.fts+
		" MATCH ? LIMIT ?)", expr, most)
	return n, err
}

// rankAll returns the ids of the page (limit rows from offset) of q's
// matches by scoring and sorting every one of them.
func (s *Store) rankAll(ctx context.Context, tx *sql.Tx, q readmodel.Query, words []string, limit, offset int64) ([]int64, error) {
	score, args := scoreExpr(words, 0)
	where, fargs := filters(q, false)
	args = append(append(args, matchExpr(words, facetExpr(q))), fargs...)
	ranked := "SELECT c.id, " + score + " AS score, c.name_key, c.code_num FROM " + live.fts + " CROSS JOIN " + live.customers +
		" AS c ON c.sid = " + live.fts + ".rowid WHERE " + live.fts + " MATCH ? AND +c.deleted = 0" + where
	if a := q.After; a != nil { // keyset: after the position in the ranking
		ranked = "SELECT * FROM (" + ranked + ") WHERE score < ? OR score = ? AND (name_key, code_num) > (?, ?)"
		args = append(args, a.Score, a.Score, a.Name, a.Code)
	}
	return s.ids(ctx, tx, "SELECT id FROM ("+ranked+" ORDER BY 2 DESC, 3, 4, 1 LIMIT ? OFFSET ?) ORDER BY score DESC, name_key, code_num, id",
		append(args, limit, offset)...)
}

// hit is a customer of a tier: its row id, search id and name order.
type hit struct {
	id, sid int64
	name    string
	code    int64
}

// rankTiers returns the ids of the page (limit rows from offset) of q's
// matches tier by tier (see the top of this file).
func (s *Store) rankTiers(ctx context.Context, tx *sql.Tx, q readmodel.Query, words []string, facets string,
	limit, offset int64) ([]int64, error) {
	ts, ok, err := tiers(words, func(expr string) (bool, error) {
		n, err := s.ftsCount(ctx, tx, expr, 1)
		return n > 0, err
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return s.rankAll(ctx, tx, q, words, limit, offset)
	}
	where, fargs := filters(q, false)
	var out []int64
	need := offset + limit // the page, after offset matches of better tiers
	for _, t := range ts {
		a := q.After
		if a != nil && t.score > a.Score {
			continue // wholly before the position
		}
		if a != nil && t.score < a.Score {
			a = nil // wholly after it
		}
		hits, err := s.tierHits(ctx, tx, words, t, facets, where, fargs, a, need-int64(len(out)))
		if err != nil {
			return nil, err
		}
		for _, h := range hits {
			out = append(out, h.id)
		}
		if int64(len(out)) >= need {
			break
		}
	}
	if offset >= int64(len(out)) {
		return nil, nil
	}
	return out[offset:min(int64(len(out)), need)], nil
}

// tierHits returns the first n customers of tier t (after the position a,
// when not nil) in name order. It reads the tier's candidates in search id
// order, a chunk at a time, takes their names from the sid index alone,
// and goes bucket by bucket: a bucket's candidates sorted by name, then
// checked (score, filters) in that order until n are found. Only the
// customers checked are read.
func (s *Store) tierHits(ctx context.Context, tx *sql.Tx, words []string, t tier, facets, where string, fargs []any,
	a *readmodel.Position, n int64) ([]hit, error) {
	expr := t.candidates(words, facets)
	score, sargs := scoreExpr(words, -1000)
	check := tierCheckSQL(score, where)
	checkArgs := append(append(slices.Clone(sargs), t.score), fargs...)
	from := int64(0)
	if a != nil {
		from = nameBucket(a.Name) << slotBits
	}
	var (
		out     []hit
		pending []hit // the candidates of the last bucket read, which may go on in the next chunk
		chunk   = min(max(2*n, s.searchChunk), 4096)
	)
	// take checks the candidates of one whole bucket in name order.
	take := func(bucket []hit) error {
		slices.SortFunc(bucket, func(x, y hit) int {
			if r := strings.Compare(x.name, y.name); r != 0 {
				return r
			}
			if r := cmp.Compare(x.code, y.code); r != 0 {
				return r
			}
			return cmp.Compare(x.id, y.id)
		})
		if a != nil { // after the position only
			i, _ := slices.BinarySearchFunc(bucket, *a, func(h hit, p readmodel.Position) int {
				if r := strings.Compare(h.name, p.Name); r != 0 {
					return r
				}
				if h.code <= p.Code {
					return -1
				}
				return 1
			})
			bucket = bucket[i:]
		}
		for len(bucket) > 0 && int64(len(out)) < n {
			batch := bucket[:min(len(bucket), int(2*(n-int64(len(out))))+8)]
			bucket = bucket[len(batch):]
			ids := make([]int64, len(batch))
			for i, h := range batch {
				ids[i] = h.id
			}
			ok, err := s.ids(ctx, tx, check, append([]any{jsonInts(ids)}, checkArgs...)...)
			if err != nil {
				return err
			}
			for _, h := range batch { // ok is in the batch's order
				if len(ok) > 0 && ok[0] == h.id {
					out, ok = append(out, h), ok[1:]
				}
			}
		}
		return nil
	}
	for int64(len(out)) < n {
		sids, err := s.ids(ctx, tx, "SELECT rowid FROM "+live.fts+" WHERE "+live.fts+" MATCH ? AND rowid >= ? ORDER BY rowid LIMIT ?",
			expr, from, chunk)
		if err != nil {
			return nil, err
		}
		cands, err := s.candidateKeys(ctx, tx, sids)
		if err != nil {
			return nil, err
		}
		cands = append(pending, cands...)
		last := len(sids) < int(chunk) // no candidate is left after these
		pending = nil
		for len(cands) > 0 && int64(len(out)) < n {
			b := cands[0].sid >> slotBits
			end := slices.IndexFunc(cands, func(h hit) bool { return h.sid>>slotBits != b })
			if end < 0 && !last {
				pending = cands // this bucket may go on
				break
			}
			if end < 0 {
				end = len(cands)
			}
			if err := take(slices.Clone(cands[:end])); err != nil {
				return nil, err
			}
			cands = cands[end:]
		}
		if last {
			break
		}
		from = sids[len(sids)-1] + 1
		chunk = min(chunk*4, 4096)
	}
	return out[:min(int64(len(out)), n)], nil
}

// candidateKeys returns the row id and name order of the live customers
// with the search ids sids, in that order, from the sid index alone.
func (s *Store) candidateKeys(ctx context.Context, tx *sql.Tx, sids []int64) ([]hit, error) {
	if len(sids) == 0 {
		return nil, nil
	}
	rows, err := s.query(ctx, tx, candidateKeysSQL(), jsonInts(sids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]hit, 0, len(sids))
	for rows.Next() {
		var h hit
		if err := rows.Scan(&h.sid, &h.id, &h.name, &h.code); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// candidateKeysSQL selects the search id, row id and name order of the
// customers with the search ids of a JSON array, in its order: a covering
// read of the sid index (TestQueryPlans).
func candidateKeysSQL() string {
	return "SELECT c.sid, c.id, c.name_key, c.code_num FROM json_each(?) AS j CROSS JOIN " + live.customers +
		" AS c ON c.sid = j.value ORDER BY j.key"
}

// tierCheckSQL selects, of the customers with the row ids of a JSON array
// (the first argument), the live ones whose score (the SQL expression
// score) is ? and that match where, in the array's order.
func tierCheckSQL(score, where string) string {
	return "SELECT c.id FROM json_each(?) AS j CROSS JOIN " + live.customers +
		" AS c ON c.id = j.value WHERE c.deleted = 0 AND " + score + " = ?" + where + " ORDER BY j.key"
}

// jsonInts returns ids as a JSON array.
func jsonInts(ids []int64) string {
	b := make([]byte, 0, 12*len(ids)+2)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

// readIDsSQL selects the documents of a JSON array of row ids, in its order.
func readIDsSQL() string {
	return "SELECT " + docColumns + " FROM json_each(?) AS j CROSS JOIN " + live.customers +
		" AS c ON c.id = j.value ORDER BY j.key"
}

// ids runs a query of integers.
func (s *Store) ids(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]int64, error) {
	rows, err := s.query(ctx, tx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// readIDs calls fn with the documents of the row ids, in their order.
func (s *Store) readIDs(ctx context.Context, tx *sql.Tx, ids []int64, fn func(readmodel.Customer)) error {
	if len(ids) == 0 {
		return nil
	}
	rows, err := s.query(ctx, tx, readIDsSQL(), jsonInts(ids))
	if err != nil {
		return err
	}
	return scanDocs(rows, fn)
}
