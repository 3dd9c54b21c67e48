// Package search holds the text-search rules shared by every read-model
// adapter, so that the embedded SQLite store and MongoDB find and rank the
// same customers for the same query: how text is folded into word tokens,
// how a query is parsed, which words of a customer are searchable and how a
// match is scored.
//
// A query word matches a document token when the token starts with the word
// (it is "exact" when they are equal). Every query word must match some token
// of the customer's name, company, email or code.
//
// The package is pure: no storage, no I/O; every function is safe for
// concurrent use.
package search

import (
	"errors"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Limits of tokens and queries.
const (
	// MaxTokenRunes caps the length of a token; longer words are truncated,
	// in documents and queries alike, so a long query word still matches.
	MaxTokenRunes = 32
	// MaxQueryRunes is the longest accepted query, in characters.
	MaxQueryRunes = 200
	// MaxQueryTokens is how many words of a query are used; further words
	// are ignored, which only widens the match set.
	MaxQueryTokens = 10
)

// Query errors, matched with errors.Is.
var (
	// ErrEmptyQuery: the query has no word (empty or only separators).
	ErrEmptyQuery = errors.New("search: query has no word")
	// ErrQueryTooLong: the query is longer than MaxQueryRunes characters.
	ErrQueryTooLong = errors.New("search: query too long")
)

// Fold returns s accent-folded and lower-cased: compatibility decomposition
// (NFKD), every combining mark dropped (so "José" becomes "jose" and "ﬁ"
// becomes "fi"), then lower case. Separators are kept, which makes it the
// sort key of names.
func Fold(s string) string {
	if isASCII(s) {
		return asciiLower(s)
	}
	if !utf8.ValidString(s) {
		// Normalisation passes invalid bytes, and the rune after them,
		// through unchanged; make them U+FFFD (a separator) first.
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	f, again := foldOnce(s)
	// Lower-casing a non-ASCII rune can, in rare scripts, produce a rune
	// that decomposes further; fold again until stable so that
	// Fold(Fold(s)) == Fold(s).
	for i := 0; again && i < 3; i++ {
		f, again = foldOnce(f)
	}
	return f
}

// foldOnce decomposes, drops marks and lower-cases; again reports that a
// rune was lower-cased into a non-ASCII rune, which may need another pass.
func foldOnce(s string) (f string, again bool) {
	d := norm.NFKD.String(s)
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		if r < utf8.RuneSelf {
			if 'A' <= r && r <= 'Z' {
				r += 'a' - 'A'
			}
			b.WriteByte(byte(r))
			continue
		}
		if unicode.Is(unicode.M, r) {
			continue
		}
		if l := unicode.ToLower(r); l != r {
			again = again || l >= utf8.RuneSelf
			r = l
		}
		b.WriteRune(r)
	}
	return b.String(), again
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// isWordRune reports whether r belongs to a word; every other rune separates
// words (so an email splits on @ . _ - +).
func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r)
}

// Tokens returns the searchable words of s: s folded (see Fold), split on
// every rune that is not a letter or a digit, each word truncated to
// MaxTokenRunes runes, without empty words and without repeats (first
// occurrence kept, in order). Tokens are valid UTF-8 and contain no space.
func Tokens(s string) []string {
	f := Fold(s)
	var (
		out  []string
		seen map[string]struct{} // once out is long
	)
	for len(f) > 0 {
		// Skip separators.
		i := 0
		for i < len(f) {
			r, n := utf8.DecodeRuneInString(f[i:])
			if isWordRune(r) && !(r == utf8.RuneError && n == 1) {
				break
			}
			i += n
		}
		f = f[i:]
		if f == "" {
			break
		}
		// Take one word, counting runes for the cap.
		j, runes, cut := 0, 0, -1
		for j < len(f) {
			r, n := utf8.DecodeRuneInString(f[j:])
			if !isWordRune(r) || r == utf8.RuneError && n == 1 {
				break
			}
			runes++
			j += n
			if runes == MaxTokenRunes {
				cut = j
			}
		}
		w := f[:j]
		if cut >= 0 {
			w = f[:cut]
		}
		f = f[j:]
		if seen != nil {
			if _, dup := seen[w]; !dup {
				seen[w] = struct{}{}
				out = append(out, w)
			}
			continue
		}
		if !slices.Contains(out, w) {
			out = append(out, w)
		}
		if len(out) == 32 { // long texts: no quadratic de-duplication
			seen = make(map[string]struct{}, 64)
			for _, t := range out {
				seen[t] = struct{}{}
			}
		}
	}
	return out
}

// ParseQuery returns the words of a search query (see Tokens); only the
// first MaxQueryTokens distinct words are used. It returns ErrQueryTooLong
// for a query over MaxQueryRunes characters and ErrEmptyQuery for one
// without any word.
func ParseQuery(q string) ([]string, error) {
	if utf8.RuneCountInString(q) > MaxQueryRunes {
		return nil, ErrQueryTooLong
	}
	toks := Tokens(q)
	if len(toks) == 0 {
		return nil, ErrEmptyQuery
	}
	if len(toks) > MaxQueryTokens {
		toks = toks[:MaxQueryTokens:MaxQueryTokens]
	}
	return toks, nil
}

// DocTerms are the searchable words of one customer.
type DocTerms struct {
	Name    []string // Tokens(name)
	Company []string // Tokens(company)
	Email   []string // Tokens(email)
	Code    string   // the folded customer code, e.g. "c001"
	// Codes are the folded codes of the customers merged into this one:
	// they match as its own code does.
	Codes []string
}

// NewDocTerms returns the searchable words of a customer with those fields
// (and the codes of the customers merged into it).
func NewDocTerms(name, company, email, code string, absorbed ...string) DocTerms {
	d := DocTerms{
		Name:    Tokens(name),
		Company: Tokens(company),
		Email:   Tokens(email),
		Code:    Fold(code),
	}
	for _, c := range absorbed {
		d.Codes = append(d.Codes, Fold(c))
	}
	return d
}

// AllCodes returns the document's code followed by the absorbed ones.
func (d DocTerms) AllCodes() []string { return append([]string{d.Code}, d.Codes...) }

// Weights of the match classes of one query word. A word scores the best
// class it reaches over all fields.
const (
	WeightCodeExact     = 14
	WeightNameExact     = 12
	WeightNamePrefix    = 10
	WeightCompanyExact  = 8
	WeightCompanyPrefix = 6
	WeightEmailExact    = 4
	WeightEmailPrefix   = 2
	WeightCodePrefix    = 1
)

// Field is a searchable field of a customer.
type Field int

// The searchable fields.
const (
	FieldCode    Field = iota // the code and the codes of the customers merged into it
	FieldName                 // the name's tokens
	FieldCompany              // the company's tokens
	FieldEmail                // the email's tokens
)

// Class is one match class of a query word: a token of Field equal to the
// word (Exact) or starting with it, worth Weight.
type Class struct {
	Weight int
	Field  Field
	Exact  bool
}

// Classes are the match classes from the best down: a word scores the
// Weight of the first class it matches (Score). A store that ranks in its
// own query language derives its match expressions from this list.
var Classes = []Class{
	{WeightCodeExact, FieldCode, true},
	{WeightNameExact, FieldName, true},
	{WeightNamePrefix, FieldName, false},
	{WeightCompanyExact, FieldCompany, true},
	{WeightCompanyPrefix, FieldCompany, false},
	{WeightEmailExact, FieldEmail, true},
	{WeightEmailPrefix, FieldEmail, false},
	{WeightCodePrefix, FieldCode, false},
}

// MaxExactTotal is how many matches a search counts exactly by default:
// beyond it the total is a lower bound (the convention of Elasticsearch's
// track_total_hits), because counting every match of a broad query costs as
// much as reading them.
const MaxExactTotal = 10_000

// Score returns the relevance of a document for the query words: the sum
// over the words of the best match class of each (see the Weight
// constants). It returns 0, no match, when any word matches nothing, and also
// for an empty query.
func Score(query []string, d DocTerms) int {
	if len(query) == 0 {
		return 0
	}
	total := 0
	for _, w := range query {
		s := wordScore(w, d)
		if s == 0 {
			return 0
		}
		total += s
	}
	return total
}

func wordScore(w string, d DocTerms) int {
	if w == "" {
		return 0
	}
	if d.Code == w || slices.Contains(d.Codes, w) {
		return WeightCodeExact
	}
	best := 0
	if m := match(w, d.Name); m == exact {
		return WeightNameExact
	} else if m == prefix {
		best = WeightNamePrefix
	}
	if best == 0 {
		if m := match(w, d.Company); m == exact {
			best = WeightCompanyExact
		} else if m == prefix {
			best = WeightCompanyPrefix
		}
	}
	if best == 0 {
		if m := match(w, d.Email); m == exact {
			best = WeightEmailExact
		} else if m == prefix {
			best = WeightEmailPrefix
		}
	}
	if best == 0 && (strings.HasPrefix(d.Code, w) || slices.ContainsFunc(d.Codes, func(c string) bool { return strings.HasPrefix(c, w) })) {
		best = WeightCodePrefix
	}
	return best
}

type matchClass int

const (
	none matchClass = iota
	prefix
	exact
)

func match(w string, tokens []string) matchClass {
	m := none
	for _, t := range tokens {
		if t == w {
			return exact
		}
		if m == none && strings.HasPrefix(t, w) {
			m = prefix
		}
	}
	return m
}

// Prefixes returns every prefix (1 rune up to the whole token) of every
// token, without repeats: the portable search index of stores without
// prefix search (an indexed array field queried with $all in MongoDB).
func Prefixes(tokens []string) []string {
	var out []string
	seen := make(map[string]struct{})
	for _, t := range tokens {
		for i := range t {
			if i == 0 {
				continue
			}
			add(&out, seen, t[:i])
		}
		if t != "" {
			add(&out, seen, t)
		}
	}
	return out
}

func add(out *[]string, seen map[string]struct{}, p string) {
	if _, ok := seen[p]; ok {
		return
	}
	seen[p] = struct{}{}
	*out = append(*out, p)
}

// CodeNumber returns the number of a customer code ("C001" is 1, "C1000" is
// 1000): the sort key of codes, which are unique, so it also breaks every
// tie of the other orders. A code without trailing digits is 0; a number
// too large for int64 saturates.
func CodeNumber(code string) int64 {
	i := len(code)
	for i > 0 && '0' <= code[i-1] && code[i-1] <= '9' {
		i--
	}
	var n int64
	for _, c := range code[i:] {
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 1<<63 - 1
		}
		n = n*10 + d
	}
	return n
}
