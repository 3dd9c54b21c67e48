package customer

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"crm/internal/events"
	"crm/internal/fault"
)

// Helpers shared by the customer tests.

func set(s string) Field[string]             { return events.SetTo(s) }
func null() Field[string]                    { return events.Cleared[string]() }
func setTags(tags ...string) Field[[]string] { return events.SetTo(tags) }
func nullTags() Field[[]string]              { return events.Cleared[[]string]() }
func addrSet(a AddressInput) AddressInput    { a.Set = true; return a }
func rep(s string, n int) string             { return strings.Repeat(s, n) }
func numberedTags(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// errFields returns the field names of a fault.Invalid error, failing the
// test when err is not one.
func errFields(t *testing.T, err error) []string {
	t.Helper()
	if !fault.Is(err, fault.Invalid) {
		t.Fatalf("error %v (%T) is not a fault.Invalid error", err, err)
	}
	fields := make([]string, len(fault.Fields(err)))
	for i, f := range fault.Fields(err) {
		fields[i] = f.Field
		if f.Message == "" {
			t.Errorf("field error %q has no message", f.Field)
		}
	}
	return fields
}

// checkFields asserts the outcome of a validation: want nil = valid, else
// exactly these fields (in any order, each once).
func checkFields(t *testing.T, err error, want []string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("want valid, got %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("want invalid fields %v, got no error", want)
	}
	got := errFields(t, err)
	slices.Sort(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		t.Fatalf("invalid fields = %v, want %v (err: %v)", got, w, err)
	}
}

func wantValue(t *testing.T, name string, f Field[string], want string) {
	t.Helper()
	if !f.Set || f.Null || f.Value != want {
		t.Errorf("%s = %+v, want value %q", name, f, want)
	}
}

func wantCleared(t *testing.T, name string, f Field[string]) {
	t.Helper()
	if !f.Set || !f.Null || f.Value != "" {
		t.Errorf("%s = %+v, want cleared (null)", name, f)
	}
}

func withName(in Input) Input {
	if !in.Name.Set {
		in.Name = set("Ada Lovelace")
	}
	return in
}

// TestValidateCreate covers every validation rule through the create path
// (normalizeCreate, as used by Decide and ValidateCreate).
func TestValidateCreate(t *testing.T) {
	// 64 + 1 + 63 + 1 + 63 + 1 + 58 + 3 = 254 characters, labels of at most 63.
	email254 := rep("l", 64) + "@" + rep("d", 63) + "." + rep("d", 63) + "." + rep("d", 58) + ".io"
	if n := len(email254); n != 254 {
		t.Fatalf("test setup: email254 has %d chars", n)
	}
	email255 := "l" + email254

	tests := []struct {
		name  string
		in    Input
		raw   bool     // use in as is (no default name added)
		want  []string // nil = valid
		check func(t *testing.T, n Input)
	}{
		// name
		{name: "name absent", in: Input{}, raw: true, want: []string{"name"}},
		{name: "name null", in: Input{Name: null()}, raw: true, want: []string{"name"}},
		{name: "name empty", in: Input{Name: set("")}, want: []string{"name"}},
		{name: "name only spaces", in: Input{Name: set(" \t  ")}, want: []string{"name"}},
		{name: "name trimmed", in: Input{Name: set("  Ada Lovelace \n")}, check: func(t *testing.T, n Input) {
			wantValue(t, "name", n.Name, "Ada Lovelace")
		}},
		{name: "name 1 char", in: Input{Name: set("A")}},
		{name: "name 200 ascii", in: Input{Name: set(rep("a", 200))}},
		{name: "name 201 ascii", in: Input{Name: set(rep("a", 201))}, want: []string{"name"}},
		{name: "name 200 e-acute (400 bytes)", in: Input{Name: set(rep("é", 200))}},
		{name: "name 201 e-acute", in: Input{Name: set(rep("é", 201))}, want: []string{"name"}},
		{name: "name 200 chars after trimming", in: Input{Name: set("   " + rep("a", 200) + "   ")}, check: func(t *testing.T, n Input) {
			wantValue(t, "name", n.Name, rep("a", 200))
		}},
		{name: "name 200 decomposed e-acute counts as 200", in: Input{Name: set(rep("e\u0301", 200))}, check: func(t *testing.T, n Input) {
			wantValue(t, "name", n.Name, rep("é", 200))
		}},
		{name: "name 201 decomposed e-acute", in: Input{Name: set(rep("e\u0301", 201))}, want: []string{"name"}},
		{name: "name NFC", in: Input{Name: set("Rene\u0301 Descartes")}, check: func(t *testing.T, n Input) {
			wantValue(t, "name", n.Name, "Ren\u00e9 Descartes")
		}},
		{name: "name emoji", in: Input{Name: set("Ada 🚀")}},
		{name: "name inner newline", in: Input{Name: set("Ada\nLovelace")}, want: []string{"name"}},
		{name: "name inner tab", in: Input{Name: set("Ada\tLovelace")}, want: []string{"name"}},
		{name: "name NUL", in: Input{Name: set("Ada\x00")}, want: []string{"name"}},
		{name: "name DEL", in: Input{Name: set("Ada\x7f")}, want: []string{"name"}},
		{name: "name C1 control", in: Input{Name: set("Ada\u0085Lovelace")}, want: []string{"name"}},
		{name: "name invalid UTF-8", in: Input{Name: set("Ada\xff")}, want: []string{"name"}},

		// email
		{name: "email absent", in: Input{}, check: func(t *testing.T, n Input) {
			if n.Email.Set {
				t.Errorf("email = %+v, want absent", n.Email)
			}
		}},
		{name: "email null", in: Input{Email: null()}},
		{name: "email empty is cleared", in: Input{Email: set("")}, check: func(t *testing.T, n Input) { wantCleared(t, "email", n.Email) }},
		{name: "email spaces is cleared", in: Input{Email: set("   ")}, check: func(t *testing.T, n Input) { wantCleared(t, "email", n.Email) }},
		{name: "email valid", in: Input{Email: set("ada@example.com")}},
		{name: "email valid plus and subdomain", in: Input{Email: set("ada.l+crm@mail.example.co.uk")}},
		{name: "email trimmed", in: Input{Email: set("  ada@example.com ")}, check: func(t *testing.T, n Input) {
			wantValue(t, "email", n.Email, "ada@example.com")
		}},
		{name: "email 254 chars", in: Input{Email: set(email254)}},
		{name: "email 255 chars", in: Input{Email: set(email255)}, want: []string{"email"}},
		{name: "email a", in: Input{Email: set("a")}, want: []string{"email"}},
		{name: "email a@", in: Input{Email: set("a@")}, want: []string{"email"}},
		{name: "email @b.c", in: Input{Email: set("@b.c")}, want: []string{"email"}},
		{name: "email a@b", in: Input{Email: set("a@b")}, want: []string{"email"}},
		{name: "email with space", in: Input{Email: set("a b@c.d")}, want: []string{"email"}},
		{name: "email display name", in: Input{Email: set("John <j@x.io>")}, want: []string{"email"}},
		{name: "email angle brackets", in: Input{Email: set("<j@x.io>")}, want: []string{"email"}},
		{name: "email quoted local part", in: Input{Email: set(`"a b"@c.d`)}, want: []string{"email"}},
		{name: "email two at signs", in: Input{Email: set("a@@b.c")}, want: []string{"email"}},
		{name: "email empty label", in: Input{Email: set("a@b..c")}, want: []string{"email"}},
		{name: "email trailing dot", in: Input{Email: set("a@b.c.")}, want: []string{"email"}},
		{name: "email hyphen label", in: Input{Email: set("a@-b.c")}, want: []string{"email"}},
		{name: "email IP literal", in: Input{Email: set("a@[127.0.0.1]")}, want: []string{"email"}},
		{name: "email control char", in: Input{Email: set("a\x01@b.c")}, want: []string{"email"}},

		// phone
		{name: "phone international", in: Input{Phone: set("+1 (555) 123-4567")}},
		{name: "phone dots", in: Input{Phone: set("555.123.4567")}},
		{name: "phone one digit", in: Input{Phone: set("7")}},
		{name: "phone 32 chars", in: Input{Phone: set(rep("1", 32))}},
		{name: "phone 32 chars after trimming", in: Input{Phone: set("  " + rep("1", 32) + "  ")}, check: func(t *testing.T, n Input) {
			wantValue(t, "phone", n.Phone, rep("1", 32))
		}},
		{name: "phone 33 chars", in: Input{Phone: set(rep("1", 33))}, want: []string{"phone"}},
		{name: "phone letters", in: Input{Phone: set("555-CALL")}, want: []string{"phone"}},
		{name: "phone no digit", in: Input{Phone: set("+() -.")}, want: []string{"phone"}},
		{name: "phone extension x", in: Input{Phone: set("555 1234 x12")}, want: []string{"phone"}},
		{name: "phone slash", in: Input{Phone: set("555/1234")}, want: []string{"phone"}},
		{name: "phone non-ASCII digits", in: Input{Phone: set("١٢٣")}, want: []string{"phone"}},
		{name: "phone inner tab", in: Input{Phone: set("555\t1234")}, want: []string{"phone"}},
		{name: "phone empty is cleared", in: Input{Phone: set("")}, check: func(t *testing.T, n Input) { wantCleared(t, "phone", n.Phone) }},
		{name: "phone null", in: Input{Phone: null()}},

		// company
		{name: "company 200", in: Input{Company: set(rep("c", 200))}},
		{name: "company 200 e-acute", in: Input{Company: set(rep("é", 200))}},
		{name: "company 201", in: Input{Company: set(rep("c", 201))}, want: []string{"company"}},
		{name: "company trimmed", in: Input{Company: set(" Acme ")}, check: func(t *testing.T, n Input) { wantValue(t, "company", n.Company, "Acme") }},
		{name: "company empty is cleared", in: Input{Company: set("")}, check: func(t *testing.T, n Input) { wantCleared(t, "company", n.Company) }},
		{name: "company control char", in: Input{Company: set("Ac\tme")}, want: []string{"company"}},

		// address
		{name: "address all sub-fields 200", in: Input{Address: addrSet(AddressInput{
			Street: set(rep("s", 200)), City: set(rep("c", 200)), State: set(rep("t", 200)),
			Country: set(rep("o", 200)), PostalCode: set(rep("p", 200)),
		})}},
		{name: "address street 201", in: Input{Address: addrSet(AddressInput{Street: set(rep("s", 201))})}, want: []string{"address.street"}},
		{name: "address city 201", in: Input{Address: addrSet(AddressInput{City: set(rep("c", 201))})}, want: []string{"address.city"}},
		{name: "address state 201", in: Input{Address: addrSet(AddressInput{State: set(rep("t", 201))})}, want: []string{"address.state"}},
		{name: "address country 201", in: Input{Address: addrSet(AddressInput{Country: set(rep("o", 201))})}, want: []string{"address.country"}},
		{name: "address postalCode 201", in: Input{Address: addrSet(AddressInput{PostalCode: set(rep("p", 201))})}, want: []string{"address.postalCode"}},
		{name: "address two sub-fields invalid", in: Input{Address: addrSet(AddressInput{
			Street: set(rep("s", 201)), PostalCode: set("12\n34"),
		})}, want: []string{"address.street", "address.postalCode"}},
		{name: "address sub-fields trimmed and NFC", in: Input{Address: addrSet(AddressInput{City: set("  Mu\u0308nchen ")})}, check: func(t *testing.T, n Input) {
			wantValue(t, "address.city", n.Address.City, "München")
		}},
		{name: "address empty sub-field is cleared", in: Input{Address: addrSet(AddressInput{City: set(" ")})}, check: func(t *testing.T, n Input) {
			wantCleared(t, "address.city", n.Address.City)
		}},
		{name: "address null", in: Input{Address: AddressInput{Set: true, Null: true}}},
		{name: "address control char", in: Input{Address: addrSet(AddressInput{Street: set("Main\rStreet")})}, want: []string{"address.street"}},

		// type
		{name: "type individual", in: Input{Type: set("individual")}},
		{name: "type business", in: Input{Type: set("business")}},
		{name: "type trimmed", in: Input{Type: set(" business ")}, check: func(t *testing.T, n Input) { wantValue(t, "type", n.Type, "business") }},
		{name: "type unknown", in: Input{Type: set("company")}, want: []string{"type"}},
		{name: "type wrong case", in: Input{Type: set("Business")}, want: []string{"type"}},
		{name: "type empty", in: Input{Type: set("")}, want: []string{"type"}},
		{name: "type null", in: Input{Type: null()}, want: []string{"type"}},

		// status
		{name: "status lead", in: Input{Status: set("lead")}},
		{name: "status prospect", in: Input{Status: set("prospect")}},
		{name: "status active", in: Input{Status: set("active")}},
		{name: "status inactive", in: Input{Status: set("inactive")}},
		{name: "status unknown", in: Input{Status: set("churned")}, want: []string{"status"}},
		{name: "status wrong case", in: Input{Status: set("Active")}, want: []string{"status"}},
		{name: "status empty", in: Input{Status: set("")}, want: []string{"status"}},
		{name: "status null", in: Input{Status: null()}, want: []string{"status"}},

		// notes
		{name: "notes 10000", in: Input{Notes: set(rep("n", 10000))}},
		{name: "notes 10000 e-acute", in: Input{Notes: set(rep("é", 10000))}},
		{name: "notes 10001", in: Input{Notes: set(rep("n", 10001))}, want: []string{"notes"}},
		{name: "notes newlines and tabs kept", in: Input{Notes: set("line 1\n\tline 2\r\nline 3")}, check: func(t *testing.T, n Input) {
			wantValue(t, "notes", n.Notes, "line 1\n\tline 2\r\nline 3")
		}},
		{name: "notes trimmed", in: Input{Notes: set("\n  hello \n\n")}, check: func(t *testing.T, n Input) { wantValue(t, "notes", n.Notes, "hello") }},
		{name: "notes bell", in: Input{Notes: set("ding\a")}, want: []string{"notes"}},
		{name: "notes NUL", in: Input{Notes: set("a\x00b")}, want: []string{"notes"}},
		{name: "notes escape", in: Input{Notes: set("a\x1bb")}, want: []string{"notes"}},
		{name: "notes empty is cleared", in: Input{Notes: set("\n")}, check: func(t *testing.T, n Input) { wantCleared(t, "notes", n.Notes) }},

		// tags
		{name: "tags empty list", in: Input{Tags: setTags()}, check: func(t *testing.T, n Input) {
			if n.Tags.Value == nil || len(n.Tags.Value) != 0 {
				t.Errorf("tags = %#v, want empty list", n.Tags.Value)
			}
		}},
		{name: "tags null", in: Input{Tags: nullTags()}},
		{name: "tags 50", in: Input{Tags: setTags(numberedTags(50, "t")...)}},
		{name: "tags 51", in: Input{Tags: setTags(numberedTags(51, "t")...)}, want: []string{"tags"}},
		{name: "tags 51 with a duplicate is 50", in: Input{Tags: setTags(append(numberedTags(50, "t"), "t7")...)}, check: func(t *testing.T, n Input) {
			if len(n.Tags.Value) != 50 {
				t.Errorf("len(tags) = %d, want 50", len(n.Tags.Value))
			}
		}},
		{name: "tag 50 chars", in: Input{Tags: setTags(rep("x", 50))}},
		{name: "tag 50 e-acute", in: Input{Tags: setTags(rep("é", 50))}},
		{name: "tag 51 chars", in: Input{Tags: setTags("ok", rep("x", 51))}, want: []string{"tags[1]"}},
		{name: "tag empty", in: Input{Tags: setTags("vip", "")}, want: []string{"tags[1]"}},
		{name: "tag only spaces", in: Input{Tags: setTags("  ")}, want: []string{"tags[0]"}},
		{name: "tag control char", in: Input{Tags: setTags("a\nb")}, want: []string{"tags[0]"}},
		{name: "several bad tags each reported", in: Input{Tags: setTags("ok", "", rep("x", 51), "fine", "\x00")},
			want: []string{"tags[1]", "tags[2]", "tags[4]"}},
		{name: "tags trimmed", in: Input{Tags: setTags(" vip ", "\tnew\n")}, check: func(t *testing.T, n Input) {
			if !slices.Equal(n.Tags.Value, []string{"vip", "new"}) {
				t.Errorf("tags = %q", n.Tags.Value)
			}
		}},
		{name: "tags de-duplicated after trim, first order kept", in: Input{Tags: setTags("vip", "b2b", " vip", "vip ", "b2b")}, check: func(t *testing.T, n Input) {
			if !slices.Equal(n.Tags.Value, []string{"vip", "b2b"}) {
				t.Errorf("tags = %q", n.Tags.Value)
			}
		}},
		{name: "tags de-duplicated after NFC", in: Input{Tags: setTags("caf\u00e9", "cafe\u0301")}, check: func(t *testing.T, n Input) {
			if !slices.Equal(n.Tags.Value, []string{"café"}) {
				t.Errorf("tags = %q", n.Tags.Value)
			}
		}},
		{name: "tags de-duplication is case-sensitive", in: Input{Tags: setTags("VIP", "vip")}, check: func(t *testing.T, n Input) {
			if !slices.Equal(n.Tags.Value, []string{"VIP", "vip"}) {
				t.Errorf("tags = %q", n.Tags.Value)
			}
		}},

		// several at once
		{name: "several invalid fields reported at once", in: Input{
			Name: set(""), Email: set("a"), Phone: set("call me"), Company: set(rep("c", 201)),
			Address: addrSet(AddressInput{City: set(rep("c", 201))}),
			Type:    set("x"), Status: set("y"), Notes: set(rep("n", 10001)), Tags: setTags(""),
		}, want: []string{"name", "email", "phone", "company", "address.city", "type", "status", "notes", "tags[0]"}},
		{name: "name absent and other errors", in: Input{Email: set("a@")}, raw: true, want: []string{"name", "email"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if !tc.raw {
				in = withName(in)
			}
			n, err := normalizeCreate(in)
			checkFields(t, err, tc.want)
			// ValidateCreate agrees with normalizeCreate.
			if err2 := ValidateCreate(in); (err2 == nil) != (err == nil) {
				t.Fatalf("ValidateCreate = %v, normalizeCreate = %v", err2, err)
			}
			if err == nil && tc.check != nil {
				tc.check(t, n)
			}
		})
	}
}

// TestValidateUpdate covers the rules that differ on the update path: null
// for a required field is rejected; null for an optional field is a clear.
func TestValidateUpdate(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		want []string
	}{
		{name: "empty input", in: Input{}},
		{name: "name absent is fine", in: Input{Email: set("a@b.co")}},
		{name: "name null", in: Input{Name: null()}, want: []string{"name"}},
		{name: "name empty", in: Input{Name: set(" ")}, want: []string{"name"}},
		{name: "type null", in: Input{Type: null()}, want: []string{"type"}},
		{name: "status null", in: Input{Status: null()}, want: []string{"status"}},
		{name: "name, type and status null", in: Input{Name: null(), Type: null(), Status: null()}, want: []string{"name", "type", "status"}},
		{name: "optional nulls", in: Input{Email: null(), Phone: null(), Company: null(), Notes: null(), Tags: nullTags(),
			Address: AddressInput{Set: true, Null: true}}},
		{name: "address sub-field nulls", in: Input{Address: addrSet(AddressInput{Street: null(), City: null(), State: null(), Country: null(), PostalCode: null()})}},
		{name: "invalid email on update", in: Input{Email: set("John <j@x.io>")}, want: []string{"email"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := normalize(tc.in)
			checkFields(t, err, tc.want)
		})
	}
}

// TestValidateDoesNotMutateInput checks that normalisation works on a copy:
// the caller's tag slice is left alone.
func TestValidateDoesNotMutateInput(t *testing.T) {
	tags := []string{" vip ", "vip", "cafe\u0301"}
	orig := slices.Clone(tags)
	in := Input{Name: set(" Ada "), Tags: setTags(tags...)}
	n, err := normalize(in)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tags, orig) || in.Name.Value != " Ada " {
		t.Errorf("input mutated: tags %q name %q", tags, in.Name.Value)
	}
	if !slices.Equal(n.Tags.Value, []string{"vip", "café"}) {
		t.Errorf("normalised tags = %q", n.Tags.Value)
	}
}

// TestValidationErrorMessage checks that Error() is usable (non-empty and
// mentions the field) without pinning the wording.
func TestValidationErrorMessage(t *testing.T) {
	err := ValidateCreate(Input{Name: set(""), Email: set("a")})
	if err == nil || !strings.Contains(err.Error(), "name") {
		t.Fatalf("error = %v", err)
	}
	if fault.InvalidFields().Error() == "" {
		t.Error("an Invalid error without fields has no message")
	}
}

// TestExternalID: an external id is trimmed (NFC), kept case-sensitive,
// limited to MaxExternalID characters without control characters; empty
// is unset; it is set, changed and cleared by updates like any field, and
// shows in the fold.
func TestExternalID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{" SF-001 ", "SF-001", true},
		{"sf/00 1", "sf/00 1", true},
		{"e\u0301", "é", true},
		{rep("x", MaxExternalID), rep("x", MaxExternalID), true},
		{rep("x", MaxExternalID+1), "", false},
		{"a\tb", "", false},
		{"  ", "", false},
	} {
		got, ok := ExternalIDKey(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ExternalIDKey(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if f := errFields(t, ValidateCreate(Input{Name: set("A"), ExternalID: set(rep("x", MaxExternalID+1))})); !slices.Equal(f, []string{"externalId"}) {
		t.Errorf("fields %v", f)
	}
	m := Meta{Actor: "u", EventID: "e1"}
	evs, err := Decide(Customer{}, Create{CustomerID: "c1", Code: "C001", Input: Input{Name: set("A"), ExternalID: set(" X-1 ")}}, m)
	if err != nil {
		t.Fatal(err)
	}
	c := Fold(evs)
	if c.ExternalID != "X-1" {
		t.Fatalf("created with %q", c.ExternalID)
	}
	if evs, err := Decide(Customer{}, Create{CustomerID: "c2", Code: "C002", Input: Input{Name: set("B"), ExternalID: set("")}}, m); err != nil ||
		evs[0].Data.(*events.CustomerCreated).ExternalID != nil {
		t.Fatalf("an empty externalId is unset: %v", err)
	}
	for _, step := range []struct {
		in   Field[string]
		want string
		ch   events.Change[string]
	}{
		{set("X-1"), "X-1", events.Change[string]{}},
		{set("X-2"), "X-2", events.SetTo("X-2")},
		{null(), "", events.Cleared[string]()},
	} {
		evs, err := Decide(c, Update{CustomerID: "c1", Input: Input{ExternalID: step.in}}, m)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			if step.ch.Set {
				t.Fatalf("%+v: no event", step)
			}
			continue
		}
		if got := evs[0].Data.(*events.CustomerUpdated).Changes.ExternalID; got != step.ch {
			t.Fatalf("%+v: change %+v", step, got)
		}
		if c = Evolve(c, evs[0]); c.ExternalID != step.want {
			t.Fatalf("%+v: folded %q", step, c.ExternalID)
		}
	}
}

// TestInvisibleText: values that only look like something are empty, and
// identifiers refuse bidirectional controls (issue 12, item 4).
func TestInvisibleText(t *testing.T) {
	for _, blank := range []string{"\u200b", "\ufeff", "\u3164", "\u2800", "\u0301\u0302", " \u200b\u200d ", "\u115f\u1160", "\u180e", "\u00ad"} {
		t.Run(fmt.Sprintf("%q", blank), func(t *testing.T) {
			checkFields(t, ValidateCreate(Input{Name: set(blank)}), []string{"name"})
			checkFields(t, ValidateCreate(Input{Name: set("Ann"), Tags: setTags("vip", blank)}), []string{"tags[1]"})
			// An optional field becomes null, like "".
			n, err := normalizeCreate(Input{Name: set("Ann"), Company: set(blank)})
			if err != nil || !n.Company.Null {
				t.Errorf("company %q: %+v, %v; want cleared", blank, n.Company, err)
			}
		})
	}
	// Trimmed at the ends like spaces, kept inside.
	n, err := normalizeCreate(Input{Name: set("\u200bAnn\u200d\u200b"), Tags: setTags("\ufeffvip")})
	if err != nil || n.Name.Value != "Ann" || n.Tags.Value[0] != "vip" {
		t.Errorf("trim: %q %q %v", n.Name.Value, n.Tags.Value, err)
	}
	if n, err := normalizeCreate(Input{Name: set("👩\u200d💻 Dev")}); err != nil || n.Name.Value != "👩\u200d💻 Dev" {
		t.Errorf("a joiner inside a name: %q %v", n.Name.Value, err)
	}
	if n, err := normalizeCreate(Input{Name: set("e\u0301")}); err != nil || n.Name.Value != "é" {
		t.Errorf("a letter with a combining mark: %q %v", n.Name.Value, err)
	}
	// Bidirectional controls: refused in identifiers, allowed in names.
	for _, c := range []string{"\u202e", "\u202a", "\u2066", "\u200f", "\u061c"} {
		checkFields(t, ValidateCreate(Input{Name: set("Ann"), Email: set("ann" + c + "@example.com")}), []string{"email"})
		checkFields(t, ValidateCreate(Input{Name: set("Ann"), Tags: setTags("v" + c + "ip")}), []string{"tags[0]"})
		checkFields(t, ValidateCreate(Input{Name: set("Ann"), ExternalID: set("SF" + c + "42")}), []string{"externalId"})
		if _, ok := EmailKey("ann" + c + "@example.com"); ok {
			t.Errorf("EmailKey accepts %q", c)
		}
		if _, ok := ExternalIDKey("SF" + c + "42"); ok {
			t.Errorf("ExternalIDKey accepts %q", c)
		}
	}
	checkFields(t, ValidateCreate(Input{Name: set("\u05e9\u05dc\u05d5\u05dd \u2067Ann\u2069")}), nil)
}
