package app_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"crm/internal/apptest"
)

// TestBadRequests sends a table of bad requests to every endpoint: each gets
// its exact status and a problem document naming the field, none appends an
// event, none is a 500.
func TestBadRequests(t *testing.T) {
	e := apptest.StartEmbedded(t)
	c := create(t, e, `{"name":"Target"}`)
	id := c.CustomerID
	cust := "/api/v1/crm/customers"
	one := cust + "/" + id
	eventsBefore := len(e.StreamMessages())

	now := time.Now()
	sign := func(key string, claims jwt.MapClaims, method jwt.SigningMethod) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	hs := func(claims jwt.MapClaims) string { return sign(apptest.Secret, claims, jwt.SigningMethodHS256) }
	exp := now.Add(time.Hour).Unix()
	noneTok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "u", "roles": "admin", "exp": exp}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs384 := sign(apptest.Secret, jwt.MapClaims{"sub": "u", "roles": "admin", "exp": exp}, jwt.SigningMethodHS384)
	big := `{"name":"` + strings.Repeat("a", 1<<20) + `"}`
	deep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)

	type tc struct {
		name, method, path, body string
		headers                  []string
		status                   int
		field                    string
	}
	cases := []tc{
		// Malformed JSON and wrong shapes.
		{"empty body", "POST", cust, "", []string{"Content-Type", "application/json"}, 400, ""},
		{"not json", "POST", cust, "name=x", nil, 400, ""},
		{"truncated", "POST", cust, `{"name":"x"`, nil, 400, ""},
		{"array body", "POST", cust, `[{"name":"x"}]`, nil, 400, ""},
		{"string body", "POST", cust, `"x"`, nil, 400, ""},
		{"null body", "POST", cust, `null`, nil, 400, ""},
		{"trailing data", "POST", cust, `{"name":"x"} {}`, nil, 400, ""},
		{"trailing garbage", "POST", cust, `{"name":"x"}garbage`, nil, 400, ""},
		{"deep nesting", "POST", cust, `{"name":"x","tags":` + deep + `}`, nil, 400, "tags[0]"},
		// Wrong types and nulls.
		{"name number", "POST", cust, `{"name":42}`, nil, 400, "name"},
		{"name object", "POST", cust, `{"name":{"$gt":""}}`, nil, 400, "name"},
		{"name null", "POST", cust, `{"name":null}`, nil, 400, "name"},
		{"name missing", "POST", cust, `{"email":"a@b.co"}`, nil, 400, "name"},
		{"name blank", "POST", cust, `{"name":"   "}`, nil, 400, "name"},
		{"type null", "POST", cust, `{"name":"x","type":null}`, nil, 400, "type"},
		{"status null", "PATCH", one, `{"status":null}`, nil, 400, "status"},
		{"patch name null", "PATCH", one, `{"name":null}`, nil, 400, "name"},
		{"tags string", "POST", cust, `{"name":"x","tags":"vip"}`, nil, 400, "tags"},
		{"tags numbers", "POST", cust, `{"name":"x","tags":[1]}`, nil, 400, "tags[0]"},
		{"tags null item", "POST", cust, `{"name":"x","tags":[null]}`, nil, 400, "tags[0]"},
		{"address string", "POST", cust, `{"name":"x","address":"Main St"}`, nil, 400, "address"},
		{"address array", "POST", cust, `{"name":"x","address":[]}`, nil, 400, "address"},
		{"address unknown", "POST", cust, `{"name":"x","address":{"zip":"1"}}`, nil, 400, "address.zip"},
		{"address number", "POST", cust, `{"name":"x","address":{"city":1}}`, nil, 400, "address.city"},
		// Read-only, unknown, duplicate and case-mismatched keys.
		{"customerId", "POST", cust, `{"name":"x","customerId":"` + id + `"}`, nil, 400, "customerId"},
		{"customerCode", "PATCH", one, `{"customerCode":"C999"}`, nil, 400, "customerCode"},
		{"createdBy", "POST", cust, `{"name":"x","createdBy":"me"}`, nil, 400, "createdBy"},
		{"createdAt", "PATCH", one, `{"createdAt":"2020-01-01T00:00:00Z"}`, nil, 400, "createdAt"},
		{"updatedAt", "PATCH", one, `{"updatedAt":"2020-01-01T00:00:00Z"}`, nil, 400, "updatedAt"},
		{"unknown field", "POST", cust, `{"name":"x","vip":true}`, nil, 400, "vip"},
		{"case mismatch", "POST", cust, `{"name":"a","Name":"b"}`, nil, 400, "Name"},
		{"duplicate key", "POST", cust, `{"name":"a","name":"b"}`, nil, 400, "name"},
		{"dollar key", "POST", cust, `{"name":"x","$where":"sleep(1000)"}`, nil, 400, "$where"},
		{"dotted key", "PATCH", one, `{"address.city":"x"}`, nil, 400, "address.city"},
		{"operator patch", "PATCH", one, `{"$set":{"name":"x"}}`, nil, 400, "$set"},
		// Limits and formats.
		{"name too long", "POST", cust, `{"name":"` + strings.Repeat("é", 201) + `"}`, nil, 400, "name"},
		{"email invalid", "POST", cust, `{"name":"x","email":"not-an-email"}`, nil, 400, "email"},
		{"email display name", "POST", cust, `{"name":"x","email":"A <a@b.co>"}`, nil, 400, "email"},
		{"email too long", "POST", cust, `{"name":"x","email":"` + strings.Repeat("a", 250) + `@b.co"}`, nil, 400, "email"},
		{"phone letters", "POST", cust, `{"name":"x","phone":"call me"}`, nil, 400, "phone"},
		{"phone too long", "POST", cust, `{"name":"x","phone":"` + strings.Repeat("1", 33) + `"}`, nil, 400, "phone"},
		{"company too long", "POST", cust, `{"name":"x","company":"` + strings.Repeat("c", 201) + `"}`, nil, 400, "company"},
		{"street too long", "POST", cust, `{"name":"x","address":{"street":"` + strings.Repeat("s", 201) + `"}}`, nil, 400, "address.street"},
		{"notes too long", "POST", cust, `{"name":"x","notes":"` + strings.Repeat("n", 10001) + `"}`, nil, 400, "notes"},
		{"bad type", "POST", cust, `{"name":"x","type":"company"}`, nil, 400, "type"},
		{"bad status", "PATCH", one, `{"status":"won"}`, nil, 400, "status"},
		{"too many tags", "POST", cust, `{"name":"x","tags":[` + strings.TrimSuffix(strings.Repeat(`"t",`, 1)+tagList(51), ",") + `]}`, nil, 400, "tags"},
		{"empty tag", "POST", cust, `{"name":"x","tags":["ok","  "]}`, nil, 400, "tags[1]"},
		{"tag too long", "POST", cust, `{"name":"x","tags":["` + strings.Repeat("t", 51) + `"]}`, nil, 400, "tags[0]"},
		{"control char", "POST", cust, `{"name":"a\u0007b"}`, nil, 400, "name"},
		// Text that only looks like something (issue 12, item 4).
		{"name zero width space", "POST", cust, `{"name":"\u200b"}`, nil, 400, "name"},
		{"name byte order mark", "POST", cust, `{"name":"\ufeff"}`, nil, 400, "name"},
		{"name hangul filler", "POST", cust, `{"name":"\u3164"}`, nil, 400, "name"},
		{"name braille blank", "PATCH", one, `{"name":"\u2800"}`, nil, 400, "name"},
		{"name combining marks", "POST", cust, `{"name":"\u0301\u0308"}`, nil, 400, "name"},
		{"tag zero width space", "POST", cust, `{"name":"x","tags":["\u200b"]}`, nil, 400, "tags[0]"},
		{"tag right-to-left override", "POST", cust, `{"name":"x","tags":["v\u202eip"]}`, nil, 400, "tags[0]"},
		{"email right-to-left override", "POST", cust, `{"name":"x","email":"a\u202eb@c.co"}`, nil, 400, "email"},
		{"externalId bidi isolate", "PATCH", one, `{"externalId":"SF\u206642"}`, nil, 400, "externalId"},
		{"control char company", "PATCH", one, `{"company":"a\u0000b"}`, nil, 400, "company"},
		{"body too large", "POST", cust, big, nil, 413, ""},
		// Invalid UTF-8 (RFC 8259 §8.1): refused, never stored as U+FFFD.
		{"invalid utf-8 name", "POST", cust, `{"name":"Jo` + "\xff" + `hn"}`, nil, 400, "name"},
		{"invalid utf-8 patch", "PATCH", one, `{"notes":"` + "\xc3\x28" + `"}`, nil, 400, "notes"},
		{"invalid utf-8 surrogate tag", "POST", cust, `{"name":"x","tags":["` + "\xed\xa0\x80" + `"]}`, nil, 400, "tags[0]"},
		{"invalid utf-8 address", "POST", cust, `{"name":"x","address":{"city":"` + "\xff" + `"}}`, nil, 400, "address.city"},
		{"invalid utf-8 key", "POST", cust, `{"name":"x","na` + "\xff" + `me":"y"}`, nil, 400, "na\ufffdme"},
		{"invalid utf-8 tag filter", "GET", cust + "?tag=%FF", "", nil, 400, "tag"},
		{"invalid utf-8 createdBy filter", "GET", cust + "?createdBy=a%C3", "", nil, 400, "createdBy"},
		// Content types.
		{"no content type", "POST", cust, `{"name":"x"}`, []string{"Content-Type", ""}, 415, ""},
		{"text/plain", "POST", cust, `{"name":"x"}`, []string{"Content-Type", "text/plain"}, 415, ""},
		{"form", "PATCH", one, `name=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, ""},
		{"gzip body", "POST", cust, "\x1f\x8b\x08\x00", []string{"Content-Encoding", "gzip"}, 415, ""},
		{"deflate patch", "PATCH", one, `{"name":"x"}`, []string{"Content-Encoding", "deflate"}, 415, ""},
		// Ids.
		{"malformed id get", "GET", cust + "/123", "", nil, 400, "customer_id"},
		{"malformed id patch", "PATCH", cust + "/not-a-uuid", `{"status":"active"}`, nil, 400, "customer_id"},
		{"braced id", "DELETE", cust + "/{" + id + "}", "", nil, 400, "customer_id"},
		{"urn id", "GET", cust + "/urn:uuid:" + id, "", nil, 400, "customer_id"},
		{"unknown id patch", "PATCH", cust + "/6f1b6c36-5b7e-4b43-9d3a-3f4f2a7f0a11", `{"status":"active"}`, nil, 404, ""},
		{"unknown id get", "GET", cust + "/6f1b6c36-5b7e-4b43-9d3a-3f4f2a7f0a11", "", nil, 404, ""},
		// Query parameters.
		{"perPage 0", "GET", cust + "?perPage=0", "", nil, 400, "perPage"},
		{"perPage huge", "GET", cust + "?perPage=100000000000000000000", "", nil, 400, "perPage"},
		{"page negative", "GET", cust + "?page=-1", "", nil, 400, "page"},
		{"page huge", "GET", cust + "?page=9999999999", "", nil, 400, "page"},
		{"status operator", "GET", cust + "?status[$ne]=x", "", nil, 400, "status[$ne]"},
		{"unknown param", "GET", cust + "?where=1", "", nil, 400, "where"},
		{"repeated param", "GET", cust + "?type=business&type=individual", "", nil, 400, "type"},
		{"bad sort", "GET", cust + "?sort=-password", "", nil, 400, "sort"},
		{"semicolon separator", "GET", cust + "?status=active;type=business", "", nil, 400, "query"},
		{"bad escape", "GET", cust + "?status=%zz", "", nil, 400, "query"},
		{"page with a plus sign", "GET", cust + "?page=%2B1", "", nil, 400, "page"},
		{"page with a space", "GET", cust + "?page=+1", "", nil, 400, "page"},
		{"perPage with a sign", "GET", cust + "/duplicates?perPage=%2B5", "", nil, 400, "perPage"},
		{"sort on search", "GET", cust + "/search?q=a&sort=name", "", nil, 400, "sort"},
		{"q missing", "GET", cust + "/search", "", nil, 400, "q"},
		{"q too long", "GET", cust + "/search?q=" + strings.Repeat("a", 201), "", nil, 400, "q"},
		{"q regex only", "GET", cust + "/search?q=.*", "", nil, 400, "q"},
		{"q on list", "GET", cust + "?q=a", "", nil, 400, "q"},
		{"get extra param", "GET", one + "?fields=name", "", nil, 400, "fields"},
		{"bad asOf", "GET", one + "?asOf=tomorrow", "", nil, 400, "asOf"},
		{"history filter", "GET", one + "/history?status=active", "", nil, 400, "query"},
		// Preconditions and idempotency headers.
		{"stale If-Match", "PATCH", one, `{"status":"active"}`, []string{"If-Match", `"7"`}, 412, ""},
		{"garbage If-Match", "DELETE", one, "", []string{"If-Match", `"abc"`}, 412, ""},
		{"idempotency key too long", "POST", cust, `{"name":"x"}`, []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, "Idempotency-Key"},
		// Methods and routes.
		{"PUT", "PUT", one, `{"name":"x"}`, nil, 405, ""},
		{"POST on one", "POST", one, `{"name":"x"}`, nil, 405, ""},
		{"DELETE collection", "DELETE", cust, "", nil, 405, ""},
		{"unknown route", "GET", "/api/v1/crm/opportunities", "", nil, 404, ""},
		// Authentication and authorization.
		{"no token", "POST", cust, `{"name":"x"}`, []string{"Authorization", ""}, 401, ""},
		{"basic auth", "GET", cust, "", []string{"Authorization", "Basic YTpi"}, 401, ""},
		{"bad signature", "GET", cust, "", []string{"Authorization", sign("some-other-key-some-other-key-xx", jwt.MapClaims{"sub": "u", "roles": "admin", "exp": exp}, jwt.SigningMethodHS256)}, 401, ""},
		{"alg none", "GET", cust, "", []string{"Authorization", "Bearer " + noneTok}, 401, ""},
		{"HS384", "GET", cust, "", []string{"Authorization", hs384}, 401, ""},
		{"expired", "GET", cust, "", []string{"Authorization", hs(jwt.MapClaims{"sub": "u", "roles": "admin", "exp": now.Add(-time.Hour).Unix()})}, 401, ""},
		{"not yet valid", "GET", cust, "", []string{"Authorization", hs(jwt.MapClaims{"sub": "u", "roles": "admin", "exp": exp, "nbf": now.Add(time.Hour).Unix()})}, 401, ""},
		{"issued in the future", "GET", cust, "", []string{"Authorization", hs(jwt.MapClaims{"sub": "u", "roles": "admin", "exp": exp, "iat": now.Add(time.Hour).Unix()})}, 401, ""},
		{"no exp", "GET", cust, "", []string{"Authorization", hs(jwt.MapClaims{"sub": "u", "roles": "admin"})}, 401, ""},
		{"exp as string", "GET", cust, "", []string{"Authorization", hs(jwt.MapClaims{"sub": "u", "roles": "admin", "exp": "1893456000"})}, 401, ""},
		{"nbf as string", "GET", cust, "", []string{"Authorization", hs(jwt.MapClaims{"sub": "u", "roles": "admin", "exp": exp, "nbf": "1000000000"})}, 401, ""},
		{"iat as string", "GET", cust, "", []string{"Authorization", hs(jwt.MapClaims{"sub": "u", "roles": "admin", "exp": exp, "iat": "1000000000"})}, 401, ""},
		{"sub with a control character", "GET", cust, "", []string{"Authorization", hs(jwt.MapClaims{"sub": "u\r\nX-Admin: 1", "roles": "admin", "exp": exp})}, 401, ""},
		{"sub over 200 bytes", "POST", cust, `{"name":"x"}`, []string{"Authorization", hs(jwt.MapClaims{"sub": strings.Repeat("s", 201), "roles": "admin", "exp": exp})}, 401, ""},
		{"empty sub", "GET", cust, "", []string{"Authorization", hs(jwt.MapClaims{"sub": "", "roles": "admin", "exp": exp})}, 401, ""},
		{"roles object", "GET", cust, "", []string{"Authorization", hs(jwt.MapClaims{"sub": "u", "roles": map[string]any{"admin": true}, "exp": exp})}, 401, ""},
		{"viewer creates", "POST", cust, `{"name":"x"}`, []string{"Authorization", hs(jwt.MapClaims{"sub": "u", "permissions": []string{"crm.view"}, "exp": exp})}, 403, ""},
		{"viewer deletes", "DELETE", one, "", []string{"Authorization", hs(jwt.MapClaims{"sub": "u", "permissions": []string{"crm.view"}, "exp": exp})}, 403, ""},
		{"user reads history", "GET", one + "/history", "", []string{"Authorization", hs(jwt.MapClaims{"sub": "u", "roles": "user", "exp": exp})}, 403, ""},
		{"user asOf", "GET", one + "?asOf=2030-01-01T00:00:00Z", "", []string{"Authorization", hs(jwt.MapClaims{"sub": "u", "roles": "user", "exp": exp})}, 403, ""},
	}
	if len(cases) < 60 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			start := time.Now()
			r := e.Do(tc.method, tc.path, body, tc.headers...)
			elapsed := time.Since(start)
			if r.Status != tc.status {
				t.Fatalf("%s %s: status %d, want %d: %.300s", tc.method, tc.path, r.Status, tc.status, r.Body)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
			var p struct {
				Type, Title, Detail string
				Status              int
				Errors              []struct{ Field, Message string }
			}
			if err := json.Unmarshal(r.Body, &p); err != nil || p.Status != tc.status || p.Title == "" || p.Detail == "" || p.Type == "" {
				t.Fatalf("not a problem document: %s", r.Body)
			}
			// Our words, not Go's JSON parser's or strconv's.
			for _, goWords := range []string{"invalid character", "looking for beginning", "strconv.", "unexpected EOF", "json:"} {
				if strings.Contains(p.Detail, goWords) {
					t.Fatalf("detail in Go's words (%q): %s", goWords, p.Detail)
				}
			}
			if tc.field != "" {
				found := false
				for _, f := range p.Errors {
					found = found || f.Field == tc.field
				}
				if !found {
					t.Fatalf("problem does not name %q: %s", tc.field, r.Body)
				}
			}
			if elapsed > 2*time.Second {
				t.Fatalf("took %v", elapsed)
			}
		})
	}
	if n := len(e.StreamMessages()); n != eventsBefore {
		t.Fatalf("bad requests appended %d events", n-eventsBefore)
	}
}

func tagList(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(`"tag` + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `",`)
	}
	return b.String()
}
