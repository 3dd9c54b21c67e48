package events

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var typePattern = regexp.MustCompile(`^com\.a64core\.crm\.([a-z]+)\.([a-zA-Z]+)\.v([0-9]+)$`)

// TestRegistry: every registered kind is consistent with its payload type,
// has a unique versioned type, and decodes through the registry.
func TestRegistry(t *testing.T) {
	seenType := map[string]bool{}
	seenKind := map[string]bool{}
	for _, d := range Definitions() {
		p := d.New()
		if p.Kind() != d.Kind || p.Aggregate() != d.Aggregate {
			t.Errorf("%s: New() is a %T of %s/%s, want %s/%s", d.Name, p, p.Aggregate(), p.Kind(), d.Aggregate, d.Kind)
		}
		m := typePattern.FindStringSubmatch(d.Type)
		if m == nil || m[1] != singular(d.Aggregate) || m[2] != string(d.Kind) {
			t.Errorf("%s: type %q is not com.a64core.crm.<%s singular>.%s.v<N>", d.Name, d.Type, d.Aggregate, d.Kind)
		}
		for _, typ := range append([]string{d.Type}, mapKeys(d.Upcasters)...) {
			if seenType[typ] {
				t.Errorf("type %s registered twice", typ)
			}
			seenType[typ] = true
		}
		if k := string(d.Aggregate) + "/" + string(d.Kind); seenKind[k] {
			t.Errorf("kind %s registered twice", k)
		} else {
			seenKind[k] = true
		}
		if !slices.Contains(Kinds(d.Aggregate), d.Kind) || !slices.Contains(Types(), d.Type) {
			t.Errorf("%s missing from Kinds or Types", d.Name)
		}
		if got, ok := Lookup(d.Aggregate, d.Kind); !ok || got.Type != d.Type {
			t.Errorf("Lookup(%s, %s) = %v, %v", d.Aggregate, d.Kind, got.Type, ok)
		}
		subject := AggregateSubject(d.Aggregate, custID, d.Kind)
		if d.Aggregate == Customers {
			if id, k, err := ParseSubject(subject); err != nil || id != custID || k != d.Kind {
				t.Errorf("ParseSubject(%q) = %q, %q, %v (the subject of %s)", subject, id, k, err, d.Name)
			}
		} else if _, _, err := ParseSubject(subject); err == nil {
			t.Errorf("ParseSubject accepts %q, the subject of %s (not a customer event)", subject, d.Name)
		}
		if a, id, k, err := ParseAggregateSubject(subject); err != nil || a != d.Aggregate || id != custID || k != d.Kind {
			t.Errorf("ParseAggregateSubject(%q) = %q, %q, %q, %v, want %s, %s, %s (the subject of %s)",
				subject, a, id, k, err, d.Aggregate, custID, d.Kind, d.Name)
		}
	}
	if len(Definitions()) < 3 {
		t.Fatalf("only %d kinds registered", len(Definitions()))
	}
}

// TestParseAggregateSubject: a subject that is not the subject of a
// registered kind is an error wrapping ErrMalformed.
func TestParseAggregateSubject(t *testing.T) {
	for name, subject := range map[string]string{
		"empty":             "",
		"root only":         "crm",
		"no id":             "crm.contacts",
		"no kind":           "crm.contacts." + custID,
		"empty kind":        "crm.contacts." + custID + ".",
		"extra token":       "crm.contacts." + custID + ".created.x",
		"wildcard":          "crm.contacts." + custID + ".*",
		"other root":        "xrm.contacts." + custID + ".created",
		"unknown aggregate": "crm.orders." + custID + ".created",
		"empty aggregate":   "crm.." + custID + ".created",
		"unknown kind":      "crm.contacts." + custID + ".archived",
		"kind of customers": "crm.contacts." + custID + ".merged",
		"id not a uuid":     "crm.contacts.abc.created",
		"id upper case":     "crm.contacts." + strings.ToUpper(custID) + ".created",
		"claims subject":    "crm.claims.email.abc",
	} {
		a, id, k, err := ParseAggregateSubject(subject)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ParseAggregateSubject(%q) = %q, %q, %q, %v, want an error wrapping ErrMalformed", name, subject, a, id, k, err)
		}
	}
}

// TestRegistryDocs: every registered kind has its JSON Schema (for its
// type), its AsyncAPI channel and message, and its place in the lists of
// the OpenAPI document (history entries), so that adding a kind without
// documenting it fails here.
func TestRegistryDocs(t *testing.T) {
	root := filepath.Join("..", "..")
	asyncapi := readFile(t, filepath.Join(root, "docs", "asyncapi.yaml"))
	for _, d := range Definitions() {
		schema := readFile(t, filepath.Join(root, "docs", "events", d.Schema))
		var doc struct {
			Properties struct {
				Type struct {
					Const string `json:"const"`
				} `json:"type"`
			} `json:"properties"`
		}
		if err := json.Unmarshal([]byte(schema), &doc); err != nil {
			t.Errorf("%s: schema %s is not JSON: %v", d.Name, d.Schema, err)
		} else if doc.Properties.Type.Const != d.Type {
			t.Errorf("%s: schema %s is for type %q, want %q", d.Name, d.Schema, doc.Properties.Type.Const, d.Type)
		}
		for _, want := range []string{
			"address: crm." + string(d.Aggregate) + ".{" + idParam(d.Aggregate) + "}." + string(d.Kind) + "\n",
			"name: " + d.Name + "\n",
			"$ref: './events/" + d.Schema + "'",
		} {
			if !strings.Contains(asyncapi, want) {
				t.Errorf("%s: docs/asyncapi.yaml lacks %q", d.Name, want)
			}
		}
	}

	// The history entry of the OpenAPI document (a customer's history)
	// lists the customer types and kinds.
	var spec any
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(root, "internal", "httpapi", "openapi", "openapi.json"))), &spec); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, k := range Kinds(Customers) {
		kinds = append(kinds, string(k))
	}
	for _, want := range [][]string{TypesOf(Customers), kinds} {
		if !hasEnum(spec, want) {
			t.Errorf("openapi.json has no enum listing exactly %v (the history entry's type and kind)", want)
		}
	}
}

// idParam is the AsyncAPI channel parameter of an aggregate's id: the
// aggregate's singular (its name without the trailing "s") + "Id", as in
// crm.customers.{customerId}.created.
func idParam(a Aggregate) string { return singular(a) + "Id" }

// singular is the name of one of an aggregate's items: customers →
// customer, activities → activity.
func singular(a Aggregate) string {
	if s, ok := strings.CutSuffix(string(a), "ies"); ok {
		return s + "y"
	}
	return strings.TrimSuffix(string(a), "s")
}

// hasEnum reports whether some "enum" in the JSON document v holds exactly
// the values of want (in any order).
func hasEnum(v any, want []string) bool {
	switch n := v.(type) {
	case map[string]any:
		if e, ok := n["enum"].([]any); ok && len(e) == len(want) {
			all := true
			for _, x := range e {
				s, _ := x.(string)
				all = all && slices.Contains(want, s)
			}
			if all {
				return true
			}
		}
		for _, c := range n {
			if hasEnum(c, want) {
				return true
			}
		}
	case []any:
		for _, c := range n {
			if hasEnum(c, want) {
				return true
			}
		}
	}
	return false
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
