package mongodb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"crm/internal/readmodel"
	"crm/internal/search"
)

// How Search reads only what a page needs, as the SQLite store does.
//
// The ranking is search.Score, then name, then code. A score is a sum over
// the query words of the best match class of each (search.Classes), so the
// matches fall into tiers, one per score, read from the best down until
// the page is full. Each document carries its match classes as terms
// (rankTerms: a field marker, "=" and a token for the exact classes, ">"
// and a prefix of a token for the prefix classes: "n=john", "n>jo",
// "k=c001"), indexed with the name order (rankTerms, nameKey, codeNum). A
// tier's candidates are the $or, over the class combinations that sum to
// its score, of the $all of the classes' terms, sorted by name and code:
// a superset of the tier holding only better-scored customers besides it,
// read a chunk at a time until the page is full. The documents read are
// about the page and the better tiers' customers met on the way, never
// every match. The total is counted on searchTerms, up to the exact-total
// bound; a search with few matches (searchFew) reads and ranks them all.

// defaultSearchFew: a search with at most this many matches scores and
// sorts all of them (one query, no tier to plan).
const defaultSearchFew = 500

// maxTierCombos bounds the class combinations of a query's words that the
// tiers are built from (the product over the words of the classes some
// customer offers); queries with more rank every match.
const maxTierCombos = 256

// Field markers of rankTerms.
var fieldMarker = map[search.Field]string{
	search.FieldCode: "k", search.FieldName: "n", search.FieldCompany: "c", search.FieldEmail: "e",
}

// classTerm is the rankTerms term of a query word's match class.
func classTerm(c search.Class, word string) string {
	if c.Exact {
		return fieldMarker[c.Field] + "=" + word
	}
	return fieldMarker[c.Field] + ">" + word
}

// rankTerms returns the match classes a document offers (see classTerm):
// each token of each field exactly, each of its prefixes (itself included)
// as a prefix; the code's and the absorbed codes' whole.
func rankTerms(t search.DocTerms) []string {
	var out []string
	seen := map[string]struct{}{}
	field := func(f search.Field, tokens []string) {
		for _, tok := range tokens {
			if tok != "" {
				add(&out, seen, fieldMarker[f]+"="+tok)
			}
		}
		for _, p := range search.Prefixes(tokens) {
			add(&out, seen, fieldMarker[f]+">"+p)
		}
	}
	field(search.FieldCode, t.AllCodes())
	field(search.FieldName, t.Name)
	field(search.FieldCompany, t.Company)
	field(search.FieldEmail, t.Email)
	return out
}

func add(out *[]string, seen map[string]struct{}, s string) {
	if _, ok := seen[s]; !ok {
		seen[s] = struct{}{}
		*out = append(*out, s)
	}
}

// hit is what Search reads of each match to rank it.
type hit struct {
	ID           string     `bson:"_id"`
	Code         string     `bson:"customerCode"`
	NameKey      string     `bson:"nameKey"`
	CodeNum      int64      `bson:"codeNum"`
	NameTerms    []string   `bson:"nameTerms"`
	CompanyTerms []string   `bson:"companyTerms"`
	EmailTerms   []string   `bson:"emailTerms"`
	Absorbed     []absorbed `bson:"absorbed"`
	score        int
}

var hitProjection = bson.D{
	{Key: "customerCode", Value: 1}, {Key: "nameKey", Value: 1}, {Key: "codeNum", Value: 1},
	{Key: "nameTerms", Value: 1}, {Key: "companyTerms", Value: 1}, {Key: "emailTerms", Value: 1}, {Key: "absorbed", Value: 1},
}

// terms returns the searchable words h stores.
func (h hit) terms() search.DocTerms {
	t := search.DocTerms{Name: h.NameTerms, Company: h.CompanyTerms, Email: h.EmailTerms, Code: search.Fold(h.Code)}
	for _, a := range h.Absorbed {
		t.Codes = append(t.Codes, search.Fold(a.Code))
	}
	return t
}

// rank sets h.score for the query words.
func (h *hit) rank(words []string) {
	h.score = search.Score(words, h.terms())
	h.NameTerms, h.CompanyTerms, h.EmailTerms, h.Absorbed = nil, nil, nil, nil
}

// after reports whether h comes after the position (name, code) of a
// keyset page within one tier (the same score): by name, then by code.
func (h hit) after(name string, code int64) bool {
	return h.NameKey > name || h.NameKey == name && h.CodeNum > code
}

func compareHits(a, b hit) int {
	if r := cmp.Compare(b.score, a.score); r != 0 {
		return r
	}
	if r := strings.Compare(a.NameKey, b.NameKey); r != 0 {
		return r
	}
	if r := cmp.Compare(a.CodeNum, b.CodeNum); r != 0 {
		return r
	}
	return strings.Compare(a.ID, b.ID)
}

// Search returns one page of live customers matching q.Text and q's filters,
// ranked by search.Score, then name, then code, and their count (exact up
// to q.TotalBound, that bound with TotalAtLeast beyond, as in every store). A
// q.Text without words, or too long, is an error wrapping
// search.ErrEmptyQuery or search.ErrQueryTooLong.
//
// The search index (searchTerms, every prefix of every token) counts the
// matches; the ranking is package search's, computed here from each
// candidate's tokens, which makes it identical to the SQLite store's
// without $text (absent from FerretDB) and without ranking inside the
// server; then the page's documents are read by id.
func (s *Store) Search(ctx context.Context, q readmodel.Query) (readmodel.Page, error) {
	words, err := search.ParseQuery(q.Text)
	if err != nil {
		return readmodel.Page{}, fmt.Errorf("readmodel/mongodb: search: %w", err)
	}
	if s.closed.Load() {
		return readmodel.Page{}, s.fail("search", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	c := s.live().c
	matches := append(filters(q), bson.E{Key: "searchTerms", Value: bson.D{{Key: "$all", Value: words}}})
	bound := q.TotalBound()
	n, err := c.CountDocuments(ctx, matches, options.Count().SetLimit(bound+1))
	if err != nil {
		return readmodel.Page{}, s.fail("search", err)
	}
	p := readmodel.Page{Items: []readmodel.Customer{}, Total: n}
	if n > bound {
		p.Total, p.TotalAtLeast = bound, true
	}
	limit, offset, ok := q.Bounds()
	if q.After != nil {
		offset, ok = 0, true
	}
	if !ok || n == 0 || !p.TotalAtLeast && q.After == nil && offset >= n {
		return p, nil // past the end
	}
	want := offset + limit + 1 // one more to know whether more follow
	var hits []hit
	var tiers []tier
	if p.TotalAtLeast || n > s.searchFew {
		if tiers, err = s.planTiers(ctx, c, q, words); err != nil {
			return readmodel.Page{}, s.fail("search", err)
		}
	}
	if tiers != nil {
		hits, err = s.tierHits(ctx, c, q, words, tiers, want)
	} else {
		hits, err = rankAll(ctx, c, q, words, matches)
	}
	if err != nil {
		return readmodel.Page{}, s.fail("search", err)
	}
	if offset >= int64(len(hits)) {
		return p, nil
	}
	page := hits[offset:min(int64(len(hits)), offset+limit)]
	p.More = int64(len(hits)) > offset+limit
	ids := make([]string, len(page))
	for i, h := range page {
		ids[i] = h.ID
	}
	cur, err := c.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "deleted", Value: false}},
		options.Find().SetProjection(docProjection))
	if err != nil {
		return readmodel.Page{}, s.fail("search", err)
	}
	byID := make(map[string]readmodel.Customer, len(ids))
	if err := decodeAll(ctx, cur, func(c readmodel.Customer) { byID[c.ID] = c }); err != nil {
		return readmodel.Page{}, s.fail("search", err)
	}
	for _, id := range ids {
		if c, ok := byID[id]; ok { // else deleted since it was ranked
			p.Items = append(p.Items, c)
		}
	}
	return p, nil
}

// rankAll reads, scores and sorts every match, and returns those from
// q.After on (all of them without it).
func rankAll(ctx context.Context, c *mongo.Collection, q readmodel.Query, words []string, matches bson.D) ([]hit, error) {
	cur, err := c.Find(ctx, matches, options.Find().SetProjection(hitProjection))
	if err != nil {
		return nil, err
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var hits []hit
	for cur.Next(ctx) {
		var h hit
		if err := cur.Decode(&h); err != nil {
			return nil, err
		}
		if h.rank(words); h.score > 0 {
			hits = append(hits, h)
		}
	}
	if err := cur.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(hits, compareHits)
	if a := q.After; a != nil { // keyset: the hits after the position
		i := slices.IndexFunc(hits, func(h hit) bool { return h.score < a.Score || h.score == a.Score && h.after(a.Name, a.Code) })
		if i < 0 {
			return nil, nil
		}
		hits = hits[i:]
	}
	return hits, nil
}

// tier is one score of a query and the class combinations that sum to it,
// as the $or of their $all.
type tier struct {
	score int
	or    bson.A
}

// planTiers returns the tiers of the query words, best first: the classes
// of each word that some live customer offers (one indexed lookup each),
// combined. It returns nil when the combinations are too many (the caller
// ranks every match) and an empty plan when a word matches nothing.
func (s *Store) planTiers(ctx context.Context, c *mongo.Collection, q readmodel.Query, words []string) ([]tier, error) {
	type option struct {
		weight int
		term   string
	}
	perWord := make([][]option, len(words))
	combos := 1
	for i, w := range words {
		for _, cl := range search.Classes {
			term := classTerm(cl, w)
			err := c.FindOne(ctx, bson.D{{Key: "rankTerms", Value: term}, {Key: "deleted", Value: false}},
				options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
			if errors.Is(err, mongo.ErrNoDocuments) {
				continue
			}
			if err != nil {
				return nil, err
			}
			perWord[i] = append(perWord[i], option{cl.Weight, term})
		}
		if len(perWord[i]) == 0 {
			return []tier{}, nil
		}
		if combos *= len(perWord[i]); combos > maxTierCombos {
			return nil, nil
		}
	}
	byScore := map[int]bson.A{}
	var walk func(i, score int, terms []string)
	walk = func(i, score int, terms []string) {
		if i == len(words) {
			byScore[score] = append(byScore[score], bson.D{{Key: "rankTerms", Value: bson.D{{Key: "$all", Value: slices.Clone(terms)}}}})
			return
		}
		for _, o := range perWord[i] {
			walk(i+1, score+o.weight, append(terms, o.term))
		}
	}
	walk(0, 0, nil)
	tiers := make([]tier, 0, len(byScore))
	for score, or := range byScore {
		tiers = append(tiers, tier{score, or})
	}
	slices.SortFunc(tiers, func(a, b tier) int { return cmp.Compare(b.score, a.score) })
	return tiers, nil
}

// tierHits returns the first want hits from q.After on (from the best
// without it), reading each tier's candidates in name order, s.searchChunk
// at a time, and keeping those of the tier's score (the others, better,
// were a better tier's).
func (s *Store) tierHits(ctx context.Context, c *mongo.Collection, q readmodel.Query, words []string, tiers []tier, want int64) ([]hit, error) {
	var hits []hit
	for _, t := range tiers {
		var from *hit // the last candidate read: the next chunk starts after it
		if a := q.After; a != nil {
			if t.score > a.Score {
				continue
			}
			if t.score == a.Score {
				from = &hit{NameKey: a.Name, CodeNum: a.Code}
			}
		}
		for {
			cond := bson.A{bson.D{{Key: "$or", Value: t.or}}}
			if from != nil {
				cond = append(cond, bson.D{{Key: "$or", Value: bson.A{
					bson.D{{Key: "nameKey", Value: bson.D{{Key: "$gt", Value: from.NameKey}}}},
					bson.D{{Key: "nameKey", Value: from.NameKey}, {Key: "codeNum", Value: bson.D{{Key: "$gt", Value: from.CodeNum}}}},
				}}})
			}
			filter := append(filters(q), bson.E{Key: "$and", Value: cond})
			chunk := max(int64(s.searchChunk), want-int64(len(hits)))
			cur, err := c.Find(ctx, filter, options.Find().SetProjection(hitProjection).
				SetSort(bson.D{{Key: "nameKey", Value: 1}, {Key: "codeNum", Value: 1}}).SetLimit(chunk))
			if err != nil {
				return nil, err
			}
			var read int64
			err = func() error {
				defer cur.Close(context.WithoutCancel(ctx))
				for cur.Next(ctx) {
					var h hit
					if err := cur.Decode(&h); err != nil {
						return err
					}
					read++
					h.rank(words)
					last := h
					from = &last
					if h.score == t.score {
						hits = append(hits, h)
					}
				}
				return cur.Err()
			}()
			if err != nil {
				return nil, err
			}
			if int64(len(hits)) >= want {
				return hits[:want], nil
			}
			if read < chunk {
				break // the tier is read
			}
		}
	}
	return hits, nil
}
