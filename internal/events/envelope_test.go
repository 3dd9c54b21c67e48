package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	custID  = "0b9e8a52-7c1f-4d6e-9a3b-2f4c5d6e7f80"
	otherID = "7d444840-9dc0-11d1-b245-5ffdce74fad2"
	eventID = "3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	actorID = "5f0c2d1e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"
)

var when = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)

func sp(s string) *string { return &s }

func meta(version uint64, d Payload) Event {
	return Event{
		ID: eventID, Source: "/crm/api", AggregateID: custID, Time: when, Version: version,
		Actor: actorID, CorrelationID: "req-42", CausationID: "", Data: d,
	}
}

func createdFull() Event {
	return meta(1, &CustomerCreated{
		CustomerID: custID, CustomerCode: "C001", Name: "Ada Lovelace",
		Email: sp("ada@example.com"), Phone: sp("+44 20 7946 0000"), Company: sp("Engines"),
		Address: &Address{Street: "1 Main St", City: "London", Country: "UK", PostalCode: "SW1"},
		Type:    "business", Status: "active", Notes: sp("line 1\nline 2 \"quoted\" <b>é</b>"),
		Tags: []string{"vip", "café"}, CreatedBy: actorID, CreatedAt: when,
	})
}

func createdMinimal() Event {
	return meta(1, &CustomerCreated{
		CustomerID: custID, CustomerCode: "C1000", Name: "Bob", Type: "individual", Status: "lead",
		Tags: []string{}, CreatedBy: actorID, CreatedAt: when,
	})
}

func updated(version uint64, ch Changes) Event {
	return meta(version, &CustomerUpdated{CustomerID: custID, CustomerCode: "C001", Changes: ch, UpdatedBy: actorID, UpdatedAt: when})
}

func updatedMixed() Event {
	return updated(2, Changes{
		Name:    SetTo("Augusta Ada King"),
		Email:   Cleared[string](),
		Address: SetTo(Address{City: "Paris", Country: "FR"}),
		Tags:    SetTo([]string{"a", "b"}),
	})
}

func deleted() Event {
	return meta(3, &CustomerDeleted{CustomerID: custID, CustomerCode: "C001", DeletedBy: actorID, DeletedAt: when})
}

func mustEncode(t testing.TB, e Event) []byte {
	t.Helper()
	b, err := Encode(e)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return b
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	withCausation := createdFull()
	withCausation.CausationID = "msg-7"
	noCorrelation := deleted()
	noCorrelation.CorrelationID = ""

	tests := []struct {
		name string
		e    Event
	}{
		{"created full", createdFull()},
		{"created minimal", createdMinimal()},
		{"created with causation id", withCausation},
		{"updated set, cleared, absent, address", updatedMixed()},
		{"updated every field set", updated(5, Changes{
			Name: SetTo("N"), Email: SetTo("e@x.io"), Phone: SetTo("1"), Company: SetTo("C"),
			Address: SetTo(Address{Street: "s", City: "c", State: "st", Country: "co", PostalCode: "p"}),
			Type:    SetTo("business"), Status: SetTo("inactive"), Notes: SetTo("n\tn"), Tags: SetTo([]string{"x"}),
		})},
		{"updated every optional field cleared", updated(6, Changes{
			Email: Cleared[string](), Phone: Cleared[string](), Company: Cleared[string](),
			Address: Cleared[Address](), Notes: Cleared[string](),
		})},
		{"updated tags emptied", updated(7, Changes{Tags: SetTo([]string{})})},
		{"updated address cleared only", updated(8, Changes{Address: Cleared[Address]()})},
		{"deleted", deleted()},
		{"deleted without correlation", noCorrelation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mustEncode(t, tc.e)
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(%s): %v", b, err)
			}
			if !reflect.DeepEqual(got, tc.e) {
				t.Fatalf("round trip:\n got %#v (%#v)\nwant %#v (%#v)", got, got.Data, tc.e, tc.e.Data)
			}
			if got.Kind() != tc.e.Data.Kind() || got.Type() != "com.a64core.crm.customer."+string(tc.e.Data.Kind())+".v1" {
				t.Errorf("kind %s type %s", got.Kind(), got.Type())
			}
			// Encoding is deterministic.
			if b2 := mustEncode(t, got); !bytes.Equal(b, b2) {
				t.Errorf("re-encoding differs:\n%s\n%s", b, b2)
			}
		})
	}
}

func TestEncodeTimeNormalisedToUTC(t *testing.T) {
	e := createdMinimal()
	e.Time = when.In(time.FixedZone("X", -5*3600))
	got, err := Decode(mustEncode(t, e))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Time.Equal(when) || got.Time.Location() != time.UTC {
		t.Errorf("time = %v, want %v UTC", got.Time, when)
	}
}

func TestEncodeErrors(t *testing.T) {
	if _, err := Encode(Event{ID: eventID, AggregateID: custID}); err == nil {
		t.Error("Encode without data: no error")
	}
}

// attrs decodes an encoded event into its top-level members.
func attrs(t *testing.T, b []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("encoded event is not a JSON object: %v\n%s", err, b)
	}
	return m
}

func str(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s is not a string: %v", raw, err)
	}
	return s
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestEncodedAttributes(t *testing.T) {
	tests := []struct {
		name     string
		e        Event
		wantType string
		wantVer  string
	}{
		{"created", createdFull(), "com.a64core.crm.customer.created.v1", "1"},
		{"updated", updatedMixed(), "com.a64core.crm.customer.updated.v1", "2"},
		{"deleted", deleted(), "com.a64core.crm.customer.deleted.v1", "3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := attrs(t, mustEncode(t, tc.e))
			wantKeys := []string{"actor", "correlationid", "customerversion", "data", "datacontenttype", "id", "source", "specversion", "subject", "time", "type"}
			if got := keys(m); !slices.Equal(got, wantKeys) {
				t.Errorf("attributes = %v, want %v", got, wantKeys)
			}
			for k, want := range map[string]string{
				"specversion": "1.0", "id": eventID, "source": "/crm/api", "type": tc.wantType,
				"subject": custID, "datacontenttype": "application/json", "actor": actorID, "correlationid": "req-42",
			} {
				if got := str(t, m[k]); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if got := string(m["customerversion"]); got != tc.wantVer {
				t.Errorf("customerversion = %s, want the number %s", got, tc.wantVer)
			}
			ts := str(t, m["time"])
			parsed, err := time.Parse(time.RFC3339, ts)
			if err != nil || !parsed.Equal(when) || !strings.HasSuffix(ts, "Z") {
				t.Errorf("time = %q (%v), want RFC 3339 UTC of %v", ts, err, when)
			}
			var data map[string]json.RawMessage
			if err := json.Unmarshal(m["data"], &data); err != nil {
				t.Fatalf("data is not an object: %s", m["data"])
			}
			if str(t, data["customerId"]) != custID {
				t.Errorf("data.customerId = %s", data["customerId"])
			}
		})
	}
}

func TestEncodedOptionalAttributes(t *testing.T) {
	e := deleted()
	e.Source, e.CorrelationID, e.CausationID = "", "", ""
	m := attrs(t, mustEncode(t, e))
	if str(t, m["source"]) != DefaultSource {
		t.Errorf("source = %s, want the default %q", m["source"], DefaultSource)
	}
	for _, k := range []string{"correlationid", "causationid"} {
		if _, ok := m[k]; ok {
			t.Errorf("empty %s is encoded", k)
		}
	}
	e.CausationID = "msg-1"
	if got := str(t, attrs(t, mustEncode(t, e))["causationid"]); got != "msg-1" {
		t.Errorf("causationid = %q", got)
	}
}

func TestEncodedPayloads(t *testing.T) {
	data := func(t *testing.T, e Event) map[string]json.RawMessage {
		var d map[string]json.RawMessage
		if err := json.Unmarshal(attrs(t, mustEncode(t, e))["data"], &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	t.Run("updated changes: absent unchanged, null cleared, address whole", func(t *testing.T) {
		var ch map[string]json.RawMessage
		if err := json.Unmarshal(data(t, updatedMixed())["changes"], &ch); err != nil {
			t.Fatal(err)
		}
		if got, want := keys(ch), []string{"address", "email", "name", "tags"}; !slices.Equal(got, want) {
			t.Errorf("changes members = %v, want %v", got, want)
		}
		for k, want := range map[string]string{
			"name": `"Augusta Ada King"`, "email": `null`, "address": `{"city":"Paris","country":"FR"}`, "tags": `["a","b"]`,
		} {
			if got := string(ch[k]); got != want {
				t.Errorf("changes.%s = %s, want %s", k, got, want)
			}
		}
	})
	t.Run("updated cleared address and emptied tags", func(t *testing.T) {
		var ch map[string]json.RawMessage
		e := updated(2, Changes{Address: Cleared[Address](), Tags: SetTo([]string{})})
		if err := json.Unmarshal(data(t, e)["changes"], &ch); err != nil {
			t.Fatal(err)
		}
		if string(ch["address"]) != "null" || string(ch["tags"]) != "[]" || len(ch) != 2 {
			t.Errorf("changes = %v", ch)
		}
	})
	t.Run("created optional fields are explicit null, tags a list", func(t *testing.T) {
		d := data(t, createdMinimal())
		for _, k := range []string{"email", "phone", "company", "address", "notes"} {
			if got := string(d[k]); got != "null" {
				t.Errorf("%s = %q, want null", k, got)
			}
		}
		if string(d["tags"]) != "[]" {
			t.Errorf("tags = %s, want []", d["tags"])
		}
		want := []string{"address", "company", "createdAt", "createdBy", "customerCode", "customerId", "email", "name", "notes", "phone", "status", "tags", "type"}
		if got := keys(d); !slices.Equal(got, want) {
			t.Errorf("created members = %v, want %v", got, want)
		}
	})
	t.Run("address omits empty sub-fields", func(t *testing.T) {
		d := data(t, createdFull())
		if got, want := string(d["address"]), `{"street":"1 Main St","city":"London","country":"UK","postalCode":"SW1"}`; got != want {
			t.Errorf("address = %s, want %s", got, want)
		}
	})
}

// mutate re-encodes a valid event after changing its JSON document.
func mutate(t testing.TB, e Event, f func(doc map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(mustEncode(t, e), &doc); err != nil {
		t.Fatal(err)
	}
	f(doc)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dataOf(doc map[string]any) map[string]any { return doc["data"].(map[string]any) }

func TestDecodeStrict(t *testing.T) {
	type tcase struct {
		name string
		b    []byte
	}
	setAttr := func(e Event, k string, v any) []byte {
		return mutate(t, e, func(doc map[string]any) { doc[k] = v })
	}
	tests := []tcase{
		{"empty input", nil},
		{"not JSON", []byte("hello")},
		{"JSON null", []byte("null")},
		{"JSON array", []byte(`[1,2]`)},
		{"JSON string", []byte(`"x"`)},
		{"truncated", mustEncode(t, createdFull())[:100]},
		{"too large", append(mustEncode(t, createdFull()), bytes.Repeat([]byte(" "), 1<<20)...)},

		{"unknown type", setAttr(createdFull(), "type", "com.a64core.crm.customer.archived.v1")},
		{"unknown version of a type", setAttr(createdFull(), "type", "com.a64core.crm.customer.created.v2")},
		{"type of another kind", setAttr(createdFull(), "type", TypeDeletedV1)},
		{"unprefixed type", setAttr(deleted(), "type", "deleted")},
		{"wrong specversion", setAttr(createdFull(), "specversion", "0.3")},
		{"specversion 1", setAttr(createdFull(), "specversion", "1")},
		{"bad UUID id", setAttr(createdFull(), "id", "not-a-uuid")},
		{"id with braces", setAttr(createdFull(), "id", "{"+eventID+"}")},
		{"bad UUID subject", setAttr(createdFull(), "subject", "C001")},
		{"subject URN form", mutate(t, createdFull(), func(doc map[string]any) {
			doc["subject"] = "urn:uuid:" + custID
			dataOf(doc)["customerId"] = "urn:uuid:" + custID
		})},
		{"subject without hyphens", mutate(t, createdFull(), func(doc map[string]any) {
			id := strings.ReplaceAll(custID, "-", "")
			doc["subject"] = id
			dataOf(doc)["customerId"] = id
		})},
		{"subject upper case", mutate(t, createdFull(), func(doc map[string]any) {
			doc["subject"] = strings.ToUpper(custID)
			dataOf(doc)["customerId"] = strings.ToUpper(custID)
		})},
		{"time not RFC 3339", setAttr(createdFull(), "time", "2025-03-14 09:26:53")},
		{"time date only", setAttr(createdFull(), "time", "2025-03-14")},
		{"time without zone", setAttr(createdFull(), "time", "2025-03-14T09:26:53")},
		{"time a number", setAttr(createdFull(), "time", 1741944413)},
		{"time before year 0 in UTC", setAttr(createdFull(), "time", "0000-01-01T00:30:00+01:00")},
		{"time after year 9999 in UTC", setAttr(createdFull(), "time", "9999-12-31T23:30:00-01:00")},
		{"datacontenttype text", setAttr(createdFull(), "datacontenttype", "text/plain")},
		{"customerversion a string", setAttr(updatedMixed(), "customerversion", "2")},
		{"customerversion negative", setAttr(updatedMixed(), "customerversion", -2)},
		{"customerversion fraction", setAttr(updatedMixed(), "customerversion", 2.5)},
		{"created with customerversion 2", setAttr(createdFull(), "customerversion", 2)},
		{"actor a number", setAttr(createdFull(), "actor", 7)},

		{"data null", setAttr(createdFull(), "data", nil)},
		{"data a string", setAttr(createdFull(), "data", "{}")},
		{"data an array", setAttr(createdFull(), "data", []any{})},
		{"data empty object", setAttr(deleted(), "data", map[string]any{})},
		{"data customerId differs from subject", mutate(t, createdFull(), func(doc map[string]any) { dataOf(doc)["customerId"] = otherID })},
		{"data customerId missing", mutate(t, deleted(), func(doc map[string]any) { delete(dataOf(doc), "customerId") })},
		{"data field of the wrong type", mutate(t, createdFull(), func(doc map[string]any) { dataOf(doc)["tags"] = "vip" })},
		{"created without name", mutate(t, createdFull(), func(doc map[string]any) { delete(dataOf(doc), "name") })},
		{"created empty code", mutate(t, createdFull(), func(doc map[string]any) { dataOf(doc)["customerCode"] = "" })},
		{"created tags null", mutate(t, createdFull(), func(doc map[string]any) { dataOf(doc)["tags"] = nil })},
		{"created without createdAt", mutate(t, createdFull(), func(doc map[string]any) { delete(dataOf(doc), "createdAt") })},
		{"updated without changes", mutate(t, updatedMixed(), func(doc map[string]any) { delete(dataOf(doc), "changes") })},
		{"updated changes null", mutate(t, updatedMixed(), func(doc map[string]any) { dataOf(doc)["changes"] = nil })},
		{"updated clearing name", mutate(t, updatedMixed(), func(doc map[string]any) { dataOf(doc)["changes"].(map[string]any)["name"] = nil })},
		{"updated clearing type", mutate(t, updatedMixed(), func(doc map[string]any) { dataOf(doc)["changes"].(map[string]any)["type"] = nil })},
		{"updated clearing status", mutate(t, updatedMixed(), func(doc map[string]any) { dataOf(doc)["changes"].(map[string]any)["status"] = nil })},
		{"updated change of the wrong type", mutate(t, updatedMixed(), func(doc map[string]any) { dataOf(doc)["changes"].(map[string]any)["name"] = 5 })},
		{"updated without updatedBy", mutate(t, updatedMixed(), func(doc map[string]any) { delete(dataOf(doc), "updatedBy") })},
		{"deleted without deletedBy", mutate(t, deleted(), func(doc map[string]any) { delete(dataOf(doc), "deletedBy") })},
		{"deleted without deletedAt", mutate(t, deleted(), func(doc map[string]any) { delete(dataOf(doc), "deletedAt") })},
	}
	// Every required attribute: missing, and empty (0 for the version).
	for _, k := range []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data", "customerversion", "actor"} {
		for _, e := range []Event{createdFull(), updatedMixed(), deleted()} {
			kind := string(e.Data.Kind())
			tests = append(tests, tcase{kind + " missing " + k, mutate(t, e, func(doc map[string]any) { delete(doc, k) })})
			var empty any = ""
			if k == "customerversion" {
				empty = 0
			}
			tests = append(tests, tcase{kind + " empty " + k, setAttr(e, k, empty)})
		}
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.b)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode(%.300s) err = %v, want ErrMalformed", tc.b, err)
			}
			if !reflect.DeepEqual(got, Event{}) {
				t.Errorf("Decode returned a non-zero event with an error: %+v", got)
			}
		})
	}
}

// TestDecodeTolerates: what strict decoding still accepts.
func TestDecodeTolerates(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want Event
	}{
		{"unknown extension attribute", mutate(t, createdFull(), func(doc map[string]any) { doc["traceparent"] = "00-abc" }), createdFull()},
		{"whitespace around the document", append(append([]byte("\n  "), mustEncode(t, deleted())...), "\n"...), deleted()},
		{"time with an offset", mutate(t, deleted(), func(doc map[string]any) { doc["time"] = "2025-03-14T10:26:53.589793+01:00" }), deleted()},
		{"time without fraction", mutate(t, deleted(), func(doc map[string]any) { doc["time"] = "2025-03-14T09:26:53Z" }), func() Event {
			e := deleted()
			e.Time = when.Truncate(time.Second)
			return e
		}()},
		{"changes with an emptied tag list", mutate(t, updatedMixed(), func(doc map[string]any) {
			dataOf(doc)["changes"] = map[string]any{"tags": []any{}}
		}), updated(2, Changes{Tags: SetTo([]string{})})},
		// Tolerant reader: fields added by a newer writer within the
		// version are ignored, wherever they are.
		{"payload field this reader does not know", mutate(t, createdFull(), func(doc map[string]any) {
			dataOf(doc)["loyaltyTier"] = "gold"
		}), createdFull()},
		{"address sub-field this reader does not know", mutate(t, createdFull(), func(doc map[string]any) {
			dataOf(doc)["address"].(map[string]any)["geo"] = map[string]any{"lat": 1.5}
		}), createdFull()},
		{"change of a field this reader does not know", mutate(t, updatedMixed(), func(doc map[string]any) {
			dataOf(doc)["changes"].(map[string]any)["website"] = "https://example.com"
		}), updatedMixed()},
		{"update changing only fields this reader does not know", mutate(t, updatedMixed(), func(doc map[string]any) {
			dataOf(doc)["changes"] = map[string]any{"website": "https://example.com"}
		}), updated(2, Changes{})},
		{"address change with a sub-field this reader does not know", mutate(t, updatedMixed(), func(doc map[string]any) {
			dataOf(doc)["changes"].(map[string]any)["address"] = map[string]any{"city": "Paris", "country": "FR", "geo": "x"}
		}), updatedMixed()},
		{"deleted with a reason", mutate(t, deleted(), func(doc map[string]any) { dataOf(doc)["reason"] = "duplicate" }), deleted()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v (%#v)\nwant %#v (%#v)", got, got.Data, tc.want, tc.want.Data)
			}
		})
	}
}

func TestChangeJSON(t *testing.T) {
	tests := []struct {
		name string
		json string
		want Change[string]
	}{
		{"value", `"x"`, SetTo("x")},
		{"empty string is a value", `""`, SetTo("")},
		{"null", `null`, Cleared[string]()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c Change[string]
			if err := json.Unmarshal([]byte(tc.json), &c); err != nil {
				t.Fatal(err)
			}
			if c != tc.want {
				t.Errorf("got %+v, want %+v", c, tc.want)
			}
			b, err := json.Marshal(c)
			if err != nil || string(b) != tc.json {
				t.Errorf("marshal = %s, %v", b, err)
			}
		})
	}
	// A null over a previous value resets it.
	c := SetTo("old")
	if err := json.Unmarshal([]byte("null"), &c); err != nil || c != Cleared[string]() {
		t.Errorf("null over a value: %+v %v", c, err)
	}
	if !(Change[int]{}).IsZero() || SetTo(0).IsZero() || Cleared[int]().IsZero() {
		t.Error("IsZero")
	}
	if !(Changes{}).Empty() || (Changes{Notes: Cleared[string]()}).Empty() {
		t.Error("Changes.Empty")
	}
	ch := Changes{Tags: SetTo([]string{}), Name: SetTo("x"), Address: Cleared[Address]()}
	if got := ch.Fields(); !slices.Equal(got, []string{"name", "address", "tags"}) {
		t.Errorf("Fields() = %v", got)
	}
}

func TestSubjects(t *testing.T) {
	if got, want := Subject(custID, KindCreated), "crm.customers."+custID+".created"; got != want {
		t.Errorf("Subject = %q, want %q", got, want)
	}
	if got, want := CustomerSubjects(custID), "crm.customers."+custID+".*"; got != want {
		t.Errorf("CustomerSubjects = %q, want %q", got, want)
	}
	if got, want := KindSubjects(KindDeleted), "crm.customers.*.deleted"; got != want {
		t.Errorf("KindSubjects = %q, want %q", got, want)
	}
	if SubjectAll != "crm.customers.>" {
		t.Errorf("SubjectAll = %q", SubjectAll)
	}
	for _, k := range []Kind{KindCreated, KindUpdated, KindDeleted} {
		t.Run("round trip "+string(k), func(t *testing.T) {
			id, kind, err := ParseSubject(Subject(custID, k))
			if err != nil || id != custID || kind != k {
				t.Errorf("ParseSubject(Subject(%s)) = %q, %q, %v", k, id, kind, err)
			}
		})
	}
	bad := []struct{ name, subject string }{
		{"empty", ""},
		{"prefix only", "crm.customers"},
		{"prefix and dot", "crm.customers."},
		{"no kind", "crm.customers." + custID},
		{"empty kind", "crm.customers." + custID + "."},
		{"unknown kind", "crm.customers." + custID + ".archived"},
		{"kind wildcard", CustomerSubjects(custID)},
		{"extra token", "crm.customers." + custID + ".created.v1"},
		{"token before kind", "crm.customers." + custID + ".x.created"},
		{"empty id", "crm.customers..created"},
		{"id wildcard", KindSubjects(KindCreated)},
		{"id not a UUID", "crm.customers.C001.created"},
		{"full wildcard", SubjectAll},
		{"other prefix", "crm.orders." + custID + ".created"},
		{"prefix without separator", "crm.customers" + custID + ".created"},
		{"kind upper case", "crm.customers." + custID + ".CREATED"},
	}
	for _, tc := range bad {
		t.Run("bad "+tc.name, func(t *testing.T) {
			id, kind, err := ParseSubject(tc.subject)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseSubject(%q) = %q, %q, %v; want ErrMalformed", tc.subject, id, kind, err)
			}
			if id != "" || kind != "" {
				t.Errorf("values returned with an error: %q %q", id, kind)
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	e := createdFull()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data := mustEncode(b, createdFull())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// sameEvent compares two events field by field, times as instants: the
// same instant may come back with another *time.Location (time.Parse gives
// time.Local for an offset that matches the local zone), which
// reflect.DeepEqual would call different.
func sameEvent(a, b Event) bool {
	utc := func(e Event) Event {
		e.Time = e.Time.UTC()
		switch d := e.Data.(type) {
		case *CustomerCreated:
			c := *d
			c.CreatedAt = c.CreatedAt.UTC()
			e.Data = &c
		case *CustomerUpdated:
			c := *d
			c.UpdatedAt = c.UpdatedAt.UTC()
			e.Data = &c
		case *CustomerDeleted:
			c := *d
			c.DeletedAt = c.DeletedAt.UTC()
			e.Data = &c
		}
		return e
	}
	return reflect.DeepEqual(utc(a), utc(b))
}

// FuzzDecode: Decode never panics, fails only with ErrMalformed, and every
// event it accepts encodes and decodes back to an equal event.
func FuzzDecode(f *testing.F) {
	for _, e := range []Event{createdFull(), createdMinimal(), updatedMixed(), deleted(),
		updated(4, Changes{Address: Cleared[Address](), Tags: SetTo([]string{}), Notes: Cleared[string]()})} {
		f.Add(mustEncode(f, e))
	}
	f.Add(mutate(f, deleted(), func(doc map[string]any) { doc["time"] = "2025-03-14T10:26:53+01:00" }))
	f.Add(mutate(f, createdMinimal(), func(doc map[string]any) { dataOf(doc)["createdAt"] = "2025-03-14T10:26:53.5+01:00" }))
	// Found by the fuzzer: keys matched case-insensitively, a one-digit hour,
	// a "+00:00" offset that time.Parse turns into time.Local when Local is
	// UTC and that re-encodes as "Z".
	f.Add([]byte("{\"ACtor\":\"\x9a000000000000000\",\"Customerversion\":1,\"dAtA\":{\"CreAtedAt\":\"0000-01-01T0:00:00+00:00\",\"CreAtedBY\":\"0\",\"CustomerCode\":\"0\",\"CustomerId\":\"0b9e8a52-7c1f-4d6e-9a3b-2f4c5d6e7f80\",\"nAme\":\"0\",\"stAtus\":\"0\",\"tAgs\":[],\"tYpe\":\"0\"},\"dAtAContenttYpe\":\"application/json\",\"id\":\"00000000-0000-0000-0000-000000000000\",\"sourCe\":\"0\",\"speCversion\":\"1.0\",\"suBjeCt\":\"0b9e8a52-7c1f-4d6e-9a3b-2f4c5d6e7f80\",\"time\":\"0000-01-01T0:00:00Z\",\"tYpe\":\"com.a64core.crm.customer.created.v1\"}"))
	for _, junk := range []string{"", "null", "{}", "[]", `{"specversion":"1.0"}`, "\xff\xfe", `{"data":null}`, `"\u0000"`} {
		f.Add([]byte(junk))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if e.Data == nil {
			t.Fatal("decoded event without data")
		}
		b2, err := Encode(e)
		if err != nil {
			t.Fatalf("re-encode of a decoded event: %v", err)
		}
		e2, err := Decode(b2)
		if err != nil {
			t.Fatalf("decode of a re-encoded event: %v\ninput: %q\nre-encoded: %s", err, b, b2)
		}
		if !sameEvent(e, e2) {
			t.Fatalf("round trip differs:\n%#v (%#v)\n%#v (%#v)", e, e.Data, e2, e2.Data)
		}
	})
}
