package search

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestTokens(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"only separators", " .,;-@ ", nil},
		{"words", "John Smith", []string{"john", "smith"}},
		{"accents", "José Müller-Lüdenscheidt", []string{"jose", "muller", "ludenscheidt"}},
		{"upper accents", "JOSÉ ÅNGSTRÖM", []string{"jose", "angstrom"}},
		{"email", "john.smith+crm@example-mail.co_uk", []string{"john", "smith", "crm", "example", "mail", "co", "uk"}},
		{"repeats keep first", "acme ACME Acme corp acme", []string{"acme", "corp"}},
		{"digits", "C001 Route 66", []string{"c001", "route", "66"}},
		{"apostrophe splits", "O'Brien", []string{"o", "brien"}},
		{"ligature NFKD", "ﬁnance", []string{"finance"}},
		{"fullwidth NFKD", "ＡＣＭＥ", []string{"acme"}},
		{"greek", "Ωμέγα", []string{"ωμεγα"}},
		{"cyrillic", "Йошкар-Ола", []string{"иошкар", "ола"}},
		{"cjk", "東京 株式会社", []string{"東京", "株式会社"}},
		{"emoji separates", "rock🎸star", []string{"rock", "star"}},
		{"truncated", strings.Repeat("a", 40) + " b", []string{strings.Repeat("a", 32), "b"}},
		{"truncation dedups", strings.Repeat("x", 33) + " " + strings.Repeat("x", 34), []string{strings.Repeat("x", 32)}},
		{"invalid utf8", "ab\xffcd", []string{"ab", "cd"}},
		{"invalid byte before a decomposable letter", "\xf4ơ", []string{"o"}}, // found by FuzzTokens
		{"many words", strings.Repeat("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20 ", 3) +
			"w21 w22 w23 w24 w25 w26 w27 w28 w29 w30 w31 w32 w33 w34 w1 w35",
			strings.Fields("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20 " +
				"w21 w22 w23 w24 w25 w26 w27 w28 w29 w30 w31 w32 w33 w34 w35")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Tokens(tc.in); !slices.Equal(got, tc.want) {
				t.Errorf("Tokens(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestFold(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"John Smith", "john smith"},
		{"José", "jose"},
		{"Zoë O'Brien", "zoe o'brien"},
		{"ÅNGSTRÖM", "angstrom"},
		{"İstanbul", "istanbul"},
	}
	for _, tc := range tests {
		if got := Fold(tc.in); got != tc.want {
			t.Errorf("Fold(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseQuery(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr error
	}{
		{"simple", "acm", []string{"acm"}, nil},
		{"two words", "smi jo", []string{"smi", "jo"}, nil},
		{"accents and case", "JOSÉ", []string{"jose"}, nil},
		{"email", "john.smith@example.com", []string{"john", "smith", "example", "com"}, nil},
		{"empty", "", nil, ErrEmptyQuery},
		{"separators only", "  @@ -- ", nil, ErrEmptyQuery},
		{"200 characters", strings.Repeat("é", 200), []string{strings.Repeat("e", 32)}, nil},
		{"201 characters", strings.Repeat("é", 201), nil, ErrQueryTooLong},
		{"only ten words", "a b c d e f g h i j k l", []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}, nil},
		{"repeats do not count", "a a a b", []string{"a", "b"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseQuery(tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ParseQuery(%q) error = %v, want %v", tc.in, err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ParseQuery(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// doc is a customer's searchable fields.
type doc struct{ name, company, email, code string }

func (d doc) terms() DocTerms { return NewDocTerms(d.name, d.company, d.email, d.code) }

func TestSemantics(t *testing.T) {
	john := doc{"John Smith", "Acme Corporation", "john.smith@example.com", "C001"}
	jose := doc{"José Álvarez", "", "", "C002"}
	plainJose := doc{"jose", "", "", "C003"}
	tests := []struct {
		query string
		d     doc
		match bool
	}{
		{"acm", john, true},
		{"Acme Corporation", john, true},
		{"smi jo", john, true},
		{"example", john, true},
		{"john.smith@example.com", john, true},
		{"c001", john, true},
		{"C001", john, true},
		{"c", john, true},
		{"jose", jose, true},
		{"JOSÉ", plainJose, true},
		{"alv", jose, true},
		{"mith", john, false},
		{"acme zzz", john, false},
		{"c0011", john, false},
		{"001", john, false},
		{"examples", john, false},
		{"corporations", john, false},
		{"smith john acme example com c001", john, true},
	}
	for _, tc := range tests {
		q, err := ParseQuery(tc.query)
		if err != nil {
			t.Fatalf("ParseQuery(%q): %v", tc.query, err)
		}
		if got := Score(q, tc.d.terms()) > 0; got != tc.match {
			t.Errorf("query %q on %+v: match = %v, want %v", tc.query, tc.d, got, tc.match)
		}
	}
}

func TestScoreWeights(t *testing.T) {
	d := doc{"Ann Anderson", "Annex Works", "annie@anna.example", "C12"}.terms()
	tests := []struct {
		word string
		want int
	}{
		{"c12", WeightCodeExact},
		{"ann", WeightNameExact},
		{"ande", WeightNamePrefix},
		{"annex", WeightCompanyExact},
		{"wor", WeightCompanyPrefix},
		{"annie", WeightEmailExact},
		{"exa", WeightEmailPrefix},
		{"c1", WeightCodePrefix},
		{"zzz", 0},
	}
	for _, tc := range tests {
		if got := Score([]string{tc.word}, d); got != tc.want {
			t.Errorf("Score(%q) = %d, want %d", tc.word, got, tc.want)
		}
	}
	if got, want := Score([]string{"ann", "wor"}, d), WeightNameExact+WeightCompanyPrefix; got != want {
		t.Errorf("two words: %d, want %d", got, want)
	}
	if got := Score([]string{"ann", "zzz"}, d); got != 0 {
		t.Errorf("one word without match: %d, want 0", got)
	}
	if got := Score(nil, d); got != 0 {
		t.Errorf("empty query: %d, want 0", got)
	}
	// The ranking ladder: every class beats the next one.
	weights := []int{WeightCodeExact, WeightNameExact, WeightNamePrefix, WeightCompanyExact,
		WeightCompanyPrefix, WeightEmailExact, WeightEmailPrefix, WeightCodePrefix}
	if !slices.IsSortedFunc(weights, func(a, b int) int { return b - a }) || weights[len(weights)-1] <= 0 {
		t.Errorf("weights not strictly decreasing and positive: %v", weights)
	}
}

func TestPrefixes(t *testing.T) {
	got := Prefixes([]string{"acme", "ac", "jé"})
	want := []string{"a", "ac", "acm", "acme", "j", "jé"}
	if !slices.Equal(got, want) {
		t.Errorf("Prefixes = %q, want %q", got, want)
	}
	if got := Prefixes(nil); len(got) != 0 {
		t.Errorf("Prefixes(nil) = %q", got)
	}
}

func TestCodeNumber(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"C001", 1}, {"C999", 999}, {"C1000", 1000}, {"C", 0}, {"", 0}, {"X12Y", 0},
		{"C99999999999999999999999", 1<<63 - 1},
	}
	for _, tc := range tests {
		if got := CodeNumber(tc.in); got != tc.want {
			t.Errorf("CodeNumber(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// checkTokens asserts the invariants of Tokens' output.
func checkTokens(t *testing.T, in string, toks []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, tok := range toks {
		if tok == "" {
			t.Fatalf("Tokens(%q): empty token", in)
		}
		if !utf8.ValidString(tok) {
			t.Fatalf("Tokens(%q): invalid UTF-8 %q", in, tok)
		}
		if n := utf8.RuneCountInString(tok); n > MaxTokenRunes {
			t.Fatalf("Tokens(%q): token %q has %d runes", in, tok, n)
		}
		for _, r := range tok {
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				t.Fatalf("Tokens(%q): token %q holds %q", in, tok, r)
			}
		}
		if seen[tok] {
			t.Fatalf("Tokens(%q): repeated %q", in, tok)
		}
		seen[tok] = true
	}
}

func FuzzTokens(f *testing.F) {
	for _, s := range []string{"", "John Smith", "José", "john.smith+x@example.com", "ﬁ Ǆ İ ẞ Ω",
		"Йошкар-Ола", "東京", "ab\xffcd", strings.Repeat("é", 40), "हिन्दी", "a\u0301\u0302b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		toks := Tokens(s)
		checkTokens(t, s, toks)
		// Folding is stable: the tokens of the tokens are the tokens.
		if again := Tokens(strings.Join(toks, " ")); !slices.Equal(again, toks) {
			t.Fatalf("Tokens not idempotent on %q: %q then %q", s, toks, again)
		}
		if f := Fold(s); Fold(f) != f {
			t.Fatalf("Fold not idempotent on %q", s)
		}
		// Every token matches itself exactly, as a name.
		for _, tok := range toks {
			if Score([]string{tok}, DocTerms{Name: toks}) != WeightNameExact {
				t.Fatalf("token %q does not match itself", tok)
			}
		}
	})
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", " ", "acm", "smi jo", "JOSÉ", "a b c d e f g h i j k l",
		strings.Repeat("x", 201), "\"acm\"* OR NOT", "c001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		words, err := ParseQuery(q)
		switch {
		case utf8.RuneCountInString(q) > MaxQueryRunes:
			if !errors.Is(err, ErrQueryTooLong) {
				t.Fatalf("ParseQuery(%q) error %v, want ErrQueryTooLong", q, err)
			}
			return
		case len(Tokens(q)) == 0:
			if !errors.Is(err, ErrEmptyQuery) {
				t.Fatalf("ParseQuery(%q) error %v, want ErrEmptyQuery", q, err)
			}
			return
		case err != nil:
			t.Fatalf("ParseQuery(%q): %v", q, err)
		}
		if len(words) == 0 || len(words) > MaxQueryTokens {
			t.Fatalf("ParseQuery(%q): %d words", q, len(words))
		}
		checkTokens(t, q, words)
		// A text always finds itself: as a name, a company or an email.
		for _, d := range []DocTerms{{Name: Tokens(q)}, {Company: Tokens(q)}, {Email: Tokens(q)}} {
			if Score(words, d) == 0 {
				t.Fatalf("query %q does not find its own text %+v", q, d)
			}
		}
	})
}

func BenchmarkTokens(b *testing.B) {
	inputs := []struct{ name, s string }{
		{"ascii", "John Smith Acme Corporation john.smith@example.com"},
		{"accents", "José Álvarez Müller-Lüdenscheidt jose.alvarez@empresa.es"},
	}
	for _, in := range inputs {
		b.Run(in.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Tokens(in.s)
			}
		})
	}
}

// TestClassesAgreeWithScore: a word's score is the weight of the first of
// Classes it matches, so stores that rank with match expressions derived
// from Classes rank as Score does.
func TestClassesAgreeWithScore(t *testing.T) {
	docs := []doc{
		{"Ann Anderson", "Annex Works", "annie@anna.example", "C12"},
		{"Jo Jones", "Jo & Co", "jo@jo.example", "C7"},
		{"C12 Trading", "C1 Holdings", "c12@c1.example", "C120"},
		{"Zoë", "", "", "C3"},
	}
	words := []string{"c12", "c1", "c", "ann", "an", "annex", "anna", "jo", "j", "jones", "co", "exa", "zoe", "z", "zz", "12"}
	in := func(w string, toks []string, exact bool) bool {
		for _, tok := range toks {
			if tok == w || !exact && strings.HasPrefix(tok, w) {
				return true
			}
		}
		return false
	}
	for _, d := range docs {
		terms := d.terms()
		for _, w := range words {
			want := 0
			for _, c := range Classes {
				var toks []string
				switch c.Field {
				case FieldCode:
					toks = terms.AllCodes()
				case FieldName:
					toks = terms.Name
				case FieldCompany:
					toks = terms.Company
				case FieldEmail:
					toks = terms.Email
				}
				if in(w, toks, c.Exact) {
					want = c.Weight
					break
				}
			}
			if got := Score([]string{w}, terms); got != want {
				t.Errorf("%+v, word %q: Score %d, first matching class %d", d, w, got, want)
			}
		}
	}
	for i := 1; i < len(Classes); i++ {
		if Classes[i].Weight >= Classes[i-1].Weight {
			t.Errorf("Classes not in decreasing weight at %d", i)
		}
	}
}
