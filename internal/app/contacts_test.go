package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"crm/internal/apptest"
)

type contactBody struct {
	ContactID string   `json:"contactId"`
	Name      string   `json:"name"`
	Email     *string  `json:"email"`
	Phone     *string  `json:"phone"`
	Title     *string  `json:"title"`
	Notes     *string  `json:"notes"`
	Tags      []string `json:"tags"`
	CreatedBy string   `json:"createdBy"`
	CreatedAt string   `json:"createdAt"`
	UpdatedBy string   `json:"updatedBy"`
	UpdatedAt string   `json:"updatedAt"`
}

type contactEnvelope struct {
	Data    contactBody `json:"data"`
	Message string      `json:"message"`
}

type contactList struct {
	Data []contactBody `json:"data"`
	Meta struct {
		Total      int64  `json:"total"`
		PerPage    int    `json:"perPage"`
		TotalPages int64  `json:"totalPages"`
		Next       string `json:"next"`
	} `json:"meta"`
}

const contactsPath = "/api/v1/crm/contacts"

// admin is the subject of the apptest environment's token.
const admin = "11111111-1111-4111-8111-111111111111"

func createContact(t *testing.T, e *apptest.Env, body string) contactBody {
	t.Helper()
	r := e.Do("POST", contactsPath, body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create contact: %d %s", r.Status, r.Body)
	}
	var env contactEnvelope
	r.JSON(t, &env)
	return env.Data
}

// problemFields returns the status and the fields a problem document names.
func problemFields(t *testing.T, r apptest.Response) []string {
	t.Helper()
	var p struct {
		Status int
		Errors []struct{ Field, Message string }
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q of %d %s", ct, r.Status, r.Body)
	}
	r.JSON(t, &p)
	var out []string
	for _, f := range p.Errors {
		out = append(out, f.Field)
	}
	return out
}

// TestContacts: a contact's life over HTTP: create (201, Location, ETag,
// every field), get, merge-patch with If-Match (a stale one is 412), delete
// (then 404); each command is one event on crm.contacts.<id>.<kind>, and
// the customers are untouched.
func TestContacts(t *testing.T) {
	e := apptest.StartEmbedded(t)
	r := e.Do("POST", contactsPath, `{"name":"  Zoë Müller ","email":"zoe@example.com","phone":"+49 30 1234","title":"Head of Billing","notes":"Prefers email.\nNever calls on Fridays.","tags":["billing","billing","emea"]}`)
	if r.Status != http.StatusCreated || r.Header.Get("ETag") != `"1"` || r.Header.Get("X-Read-Model") != "current" {
		t.Fatalf("create: %d %v %s", r.Status, r.Header, r.Body)
	}
	var created contactEnvelope
	r.JSON(t, &created)
	k := created.Data
	if r.Header.Get("Location") != contactsPath+"/"+k.ContactID || created.Message != "Contact created successfully" {
		t.Fatalf("create: location %q, message %q", r.Header.Get("Location"), created.Message)
	}
	if k.Name != "Zoë Müller" || *k.Email != "zoe@example.com" || *k.Phone != "+49 30 1234" || *k.Title != "Head of Billing" ||
		!strings.Contains(*k.Notes, "\n") || !slices.Equal(k.Tags, []string{"billing", "emea"}) || k.CreatedBy != admin ||
		k.UpdatedBy != admin || k.CreatedAt == "" || k.CreatedAt != k.UpdatedAt {
		t.Fatalf("created contact: %s", r.Body)
	}
	one := contactsPath + "/" + k.ContactID
	var got contactEnvelope
	if r := e.Do("GET", one, nil); r.Status != http.StatusOK || r.Header.Get("ETag") != `"1"` {
		t.Fatalf("get: %d %s", r.Status, r.Body)
	} else if r.JSON(t, &got); !equalJSON(t, got.Data, k) {
		t.Fatalf("get = %+v, created %+v", got.Data, k)
	}

	// Merge-patch: a field set, one cleared, the others kept.
	r = e.Do("PATCH", one, `{"title":"CFO","phone":null}`, "If-Match", `"1"`, "Authorization", "Bearer "+e.TokenFor("editor", "user"))
	if r.Status != http.StatusOK || r.Header.Get("ETag") != `"2"` {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &got)
	if *got.Data.Title != "CFO" || got.Data.Phone != nil || *got.Data.Email != "zoe@example.com" || got.Data.UpdatedBy != "editor" ||
		got.Data.CreatedBy != admin || got.Data.UpdatedAt == got.Data.CreatedAt {
		t.Fatalf("patched: %s", r.Body)
	}
	// A patch that changes nothing appends nothing and keeps the version.
	before := len(e.StreamMessages())
	if r := e.Do("PATCH", one, `{"title":"CFO"}`); r.Status != http.StatusOK || r.Header.Get("ETag") != `"2"` {
		t.Fatalf("no-op patch: %d %v", r.Status, r.Header)
	}
	// A stale If-Match is 412, nothing appended.
	if r := e.Do("PATCH", one, `{"title":"CEO"}`, "If-Match", `"1"`); r.Status != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match: %d %s", r.Status, r.Body)
	}
	if n := len(e.StreamMessages()); n != before {
		t.Fatalf("no-op and stale patches appended %d messages", n-before)
	}

	// The events: one per command, on the contact's own subjects.
	var subjects []string
	for _, m := range e.StreamMessages() {
		if strings.HasPrefix(m.Subject, "crm.contacts.") {
			subjects = append(subjects, m.Subject)
		}
	}
	if r := e.Do("DELETE", one, nil, "If-Match", `"2"`); r.Status != http.StatusOK || r.Header.Get("ETag") != `"3"` {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	for _, m := range e.StreamMessages()[len(e.StreamMessages())-1:] {
		subjects = append(subjects, m.Subject)
	}
	want := []string{"crm.contacts." + k.ContactID + ".created", "crm.contacts." + k.ContactID + ".updated", "crm.contacts." + k.ContactID + ".deleted"}
	if !slices.Equal(subjects, want) {
		t.Fatalf("subjects %v, want %v", subjects, want)
	}
	for _, tc := range []struct{ method, body string }{{"GET", ""}, {"PATCH", `{"title":"x"}`}, {"DELETE", ""}} {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		if r := e.Do(tc.method, one, body); r.Status != http.StatusNotFound {
			t.Errorf("%s of a deleted contact: %d %s", tc.method, r.Status, r.Body)
		}
	}
	var customers listBody
	if e.Do("GET", "/api/v1/crm/customers", nil).JSON(t, &customers); customers.Meta.Total != 0 {
		t.Fatalf("contacts show among customers: %d", customers.Meta.Total)
	}
}

// TestContactBadRequests: every bad input is a 4xx problem naming the field,
// and none appends anything.
func TestContactBadRequests(t *testing.T) {
	e := apptest.StartEmbedded(t)
	k := createContact(t, e, `{"name":"Target"}`)
	one := contactsPath + "/" + k.ContactID
	viewer := func() string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "v", "exp": 4102444800, "permissions": []string{"crm.view"}}).
			SignedString([]byte(apptest.Secret))
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}()
	before := len(e.StreamMessages())
	for _, tc := range []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		field                    string
	}{
		{"no name", "POST", contactsPath, `{"email":"a@example.com"}`, nil, 400, "name"},
		{"empty name", "POST", contactsPath, `{"name":"  "}`, nil, 400, "name"},
		{"name number", "POST", contactsPath, `{"name":7}`, nil, 400, "name"},
		{"bad email", "POST", contactsPath, `{"name":"A","email":"not-an-email"}`, nil, 400, "email"},
		{"bad phone", "POST", contactsPath, `{"name":"A","phone":"call me"}`, nil, 400, "phone"},
		{"long title", "POST", contactsPath, `{"name":"A","title":"` + strings.Repeat("t", 201) + `"}`, nil, 400, "title"},
		{"tags not a list", "POST", contactsPath, `{"name":"A","tags":"vip"}`, nil, 400, "tags"},
		{"empty tag", "POST", contactsPath, `{"name":"A","tags":["ok",""]}`, nil, 400, "tags[1]"},
		{"unknown field", "POST", contactsPath, `{"name":"A","company":"Acme"}`, nil, 400, "company"},
		{"read-only field", "POST", contactsPath, `{"name":"A","contactId":"` + k.ContactID + `"}`, nil, 400, "contactId"},
		{"not json", "POST", contactsPath, `{"name":`, nil, 400, ""},
		{"wrong content type", "POST", contactsPath, `{"name":"A"}`, []string{"Content-Type", "text/plain"}, 415, ""},
		{"bad idempotency key", "POST", contactsPath, `{"name":"A"}`, []string{"Idempotency-Key", strings.Repeat("k", 256)}, 400, "Idempotency-Key"},
		{"no crm.create", "POST", contactsPath, `{"name":"A"}`, []string{"Authorization", viewer}, 403, ""},
		{"no token", "POST", contactsPath, `{"name":"A"}`, []string{"Authorization", ""}, 401, ""},
		{"patch clears name", "PATCH", one, `{"name":null}`, nil, 400, "name"},
		{"patch unknown field", "PATCH", one, `{"status":"active"}`, nil, 400, "status"},
		{"patch no crm.edit", "PATCH", one, `{"title":"x"}`, []string{"Authorization", viewer}, 403, ""},
		{"patch bad id", "PATCH", contactsPath + "/not-a-uuid", `{"title":"x"}`, nil, 400, "contactId"},
		{"patch unknown id", "PATCH", contactsPath + "/00000000-0000-4000-8000-000000000000", `{"title":"x"}`, nil, 404, ""},
		{"patch bad If-Match", "PATCH", one, `{"title":"x"}`, []string{"If-Match", `"abc"`}, 412, ""},
		{"delete no crm.delete", "DELETE", one, "", []string{"Authorization", viewer}, 403, ""},
		{"delete unknown id", "DELETE", contactsPath + "/00000000-0000-4000-8000-000000000000", "", nil, 404, ""},
		{"get bad id", "GET", contactsPath + "/C001", "", nil, 400, "contactId"},
		{"get unknown parameter", "GET", one + "?since=2026-01-01T00:00:00Z", "", nil, 400, "since"},
		{"list unknown parameter", "GET", contactsPath + "?status=active", "", nil, 400, "status"},
		{"list page", "GET", contactsPath + "?page=2", "", nil, 400, "page"},
		{"list bad sort", "GET", contactsPath + "?sort=customerCode", "", nil, 400, "sort"},
		{"list bad perPage", "GET", contactsPath + "?perPage=101", "", nil, 400, "perPage"},
		{"list forged cursor", "GET", contactsPath + "?after=abc.def", "", nil, 400, "after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := e.Do(tc.method, tc.path, body, tc.headers...)
			if r.Status != tc.status {
				t.Fatalf("%s %s: %d, want %d: %s", tc.method, tc.path, r.Status, tc.status, r.Body)
			}
			fields := problemFields(t, r)
			if tc.field != "" && !slices.Contains(fields, tc.field) {
				t.Fatalf("problem names %v, not %q: %s", fields, tc.field, r.Body)
			}
		})
	}
	if n := len(e.StreamMessages()); n != before {
		t.Fatalf("bad requests appended %d messages", n-before)
	}
}

// TestContactIdempotency: a create retried with the same Idempotency-Key
// and body returns the first contact (Idempotent-Replayed) and appends
// nothing; another body with the key is refused; the key is apart from the
// customers' keys.
func TestContactIdempotency(t *testing.T) {
	e := apptest.StartEmbedded(t)
	first := e.Do("POST", contactsPath, `{"name":"Ann Lee"}`, "Idempotency-Key", "k-1")
	if first.Status != http.StatusCreated {
		t.Fatalf("first: %d %s", first.Status, first.Body)
	}
	var a, b contactEnvelope
	first.JSON(t, &a)
	n := len(e.StreamMessages())
	again := e.Do("POST", contactsPath, `{ "name": "Ann Lee" }`, "Idempotency-Key", "k-1")
	if again.JSON(t, &b); again.Status != http.StatusCreated || again.Header.Get("Idempotent-Replayed") != "true" || b.Data.ContactID != a.Data.ContactID {
		t.Fatalf("retry: %d %v %s", again.Status, again.Header, again.Body)
	}
	if m := len(e.StreamMessages()); m != n {
		t.Fatalf("retry appended %d messages", m-n)
	}
	if r := e.Do("POST", contactsPath, `{"name":"Bob"}`, "Idempotency-Key", "k-1"); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("another body with the key: %d %s", r.Status, r.Body)
	}
	if r := e.Do("POST", "/api/v1/crm/customers", `{"name":"Ann Lee"}`, "Idempotency-Key", "k-1"); r.Status != http.StatusCreated ||
		r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("a customer with the contact's key: %d %v %s", r.Status, r.Header, r.Body)
	}
}

// TestContactList: filters, sorts and cursor pages read from the read
// model: every page in the right order, no repeat or skip, exact totals.
func TestContactList(t *testing.T) {
	e := apptest.StartEmbedded(t)
	names := []string{"Émile Zola", "anna Berg", "Bob Stone", "Anna Adams", "Carl Jung", "dora Maar", "Eve Ng"}
	byName := map[string]contactBody{}
	for i, n := range names {
		tags := `["all"]`
		if i%2 == 0 {
			tags = `["all","even"]`
		}
		byName[n] = createContact(t, e, fmt.Sprintf(`{"name":%q,"email":"P%d@Example.com","tags":%s}`, n, i, tags))
	}
	// Renaming moves a contact in the name order.
	id := byName["Eve Ng"].ContactID
	if r := e.Do("PATCH", contactsPath+"/"+id, `{"name":"Aaron Eve"}`); r.Status != http.StatusOK {
		t.Fatalf("rename: %d %s", r.Status, r.Body)
	}
	// A deleted contact is in no list.
	if r := e.Do("DELETE", contactsPath+"/"+byName["Carl Jung"].ContactID, nil); r.Status != http.StatusOK {
		t.Fatalf("delete: %d", r.Status)
	}
	pages := func(query string, perPage int) ([]string, int64) {
		t.Helper()
		var out []string
		var total int64 = -1
		next := ""
		for i := 0; ; i++ {
			q := query + fmt.Sprintf("&perPage=%d", perPage)
			if next != "" {
				q += "&after=" + url.QueryEscape(next)
			}
			var page contactList
			r := e.Do("GET", contactsPath+"?"+q, nil)
			if r.JSON(t, &page); r.Status != http.StatusOK {
				t.Fatalf("GET ?%s: %d %s", q, r.Status, r.Body)
			}
			if total >= 0 && page.Meta.Total != total {
				t.Fatalf("total changed between pages: %d, %d", total, page.Meta.Total)
			}
			total = page.Meta.Total
			for _, k := range page.Data {
				out = append(out, k.Name)
			}
			if page.Meta.Next == "" {
				return out, total
			}
			if len(page.Data) != perPage || i > 10 {
				t.Fatalf("a page of %d before the last", len(page.Data))
			}
			next = page.Meta.Next
		}
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"sort=name", []string{"Aaron Eve", "Anna Adams", "anna Berg", "Bob Stone", "dora Maar", "Émile Zola"}},
		{"sort=-name", []string{"Émile Zola", "dora Maar", "Bob Stone", "anna Berg", "Anna Adams", "Aaron Eve"}},
		{"sort=createdAt", []string{"Émile Zola", "anna Berg", "Bob Stone", "Anna Adams", "dora Maar", "Aaron Eve"}},
		{"sort=-updatedAt", []string{"Aaron Eve", "dora Maar", "Anna Adams", "Bob Stone", "anna Berg", "Émile Zola"}},
		{"tag=even&sort=name", []string{"Aaron Eve", "Bob Stone", "Émile Zola"}},
		{"tag=even&sort=-createdAt", []string{"Aaron Eve", "Bob Stone", "Émile Zola"}},
		{"tag=none", nil},
		{"email=p1@EXAMPLE.com", []string{"anna Berg"}},
		{"email=p1@example.com&tag=even", nil},
	} {
		for _, perPage := range []int{1, 2, 100} {
			got, total := pages(tc.query, perPage)
			if !slices.Equal(got, tc.want) || total != int64(len(tc.want)) {
				t.Errorf("?%s perPage %d: %v (total %d), want %v", tc.query, perPage, got, total, tc.want)
			}
		}
	}
	// A cursor is bound to its query.
	var page contactList
	e.Do("GET", contactsPath+"?sort=name&perPage=2", nil).JSON(t, &page)
	if r := e.Do("GET", contactsPath+"?sort=-name&perPage=2&after="+url.QueryEscape(page.Meta.Next), nil); r.Status != http.StatusBadRequest {
		t.Fatalf("a cursor of another order: %d %s", r.Status, r.Body)
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(x) == string(y)
}

// TestContactHistoryAndAsOf: a contact's history, read from the stream,
// shows each change with its old and new value and each link to a
// customer as customers.<customerId> (attributes before and after);
// asOf folds the contact to any past instant; both need crm.audit.
func TestContactHistoryAndAsOf(t *testing.T) {
	e := apptest.StartEmbedded(t)
	cu := create(t, e, `{"name":"Acme History"}`)
	k := createContact(t, e, `{"name":"Ann Lee","tags":["vip"]}`)
	one := contactsPath + "/" + k.ContactID
	steps := []struct{ method, path, body string }{
		{"PATCH", one, `{"title":"CFO","tags":[]}`},
		{"PUT", "/api/v1/crm/customers/" + cu.CustomerID + "/contacts/" + k.ContactID, `{"role":"billing"}`},
		{"PUT", "/api/v1/crm/customers/" + cu.CustomerID + "/contacts/" + k.ContactID, `{"role":"billing","primary":true}`},
		{"PATCH", one, `{"name":"Ann Lee-Smith"}`},
		{"DELETE", one, ""},
	}
	for _, s := range steps {
		var body any
		if s.body != "" {
			body = s.body
		}
		if r := e.Do(s.method, s.path, body); r.Status >= 300 {
			t.Fatalf("%s %s: %d %s", s.method, s.path, r.Status, r.Body)
		}
	}
	type entry struct {
		Kind     string `json:"kind"`
		Version  uint64 `json:"version"`
		Time     string `json:"time"`
		Actor    string `json:"actor"`
		Sequence uint64 `json:"sequence"`
		Changes  []struct {
			Field    string
			Old, New any
		} `json:"changes"`
	}
	var h struct {
		Data []entry `json:"data"`
		Meta struct {
			Total int64 `json:"total"`
		} `json:"meta"`
	}
	if r := e.Do("GET", one+"/history", nil); r.Status != http.StatusOK {
		t.Fatalf("history: %d %s", r.Status, r.Body)
	} else {
		r.JSON(t, &h)
	}
	var got []string
	for i, en := range h.Data {
		if en.Version != uint64(i+1) || en.Actor != admin || en.Sequence == 0 {
			t.Errorf("entry %d: %+v", i, en)
		}
		s := en.Kind + ":"
		for _, c := range en.Changes {
			s += fmt.Sprintf(" %s %v→%v", c.Field, c.Old, c.New)
		}
		got = append(got, s)
	}
	link := "customers." + cu.CustomerID
	want := []string{
		"created: name <nil>→Ann Lee tags <nil>→[vip]",
		"updated: title <nil>→CFO tags [vip]→[]",
		"linked: " + link + " <nil>→map[customerCode:" + cu.CustomerCode + "]",
		"updated: name Ann Lee→Ann Lee-Smith", // the link's change is on the customer's history only
		"unlinked: " + link + " map[customerCode:" + cu.CustomerCode + "]→<nil>",
		"deleted:",
	}
	if !slices.Equal(got, want) || h.Meta.Total != int64(len(want)) {
		t.Fatalf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Paged like the customers' history.
	var p2 struct{ Data []entry }
	e.Do("GET", one+"/history?page=2&perPage=3", nil).JSON(t, &p2)
	if len(p2.Data) != 3 || p2.Data[0].Version != 4 || p2.Data[2].Kind != "deleted" {
		t.Errorf("page 2: %+v", p2.Data)
	}

	// As of each entry's time: the contact as it was then.
	asOf := func(at string) (int, contactBody, string) {
		r := e.Do("GET", one+"?asOf="+url.QueryEscape(at), nil)
		var env contactEnvelope
		if r.Status == http.StatusOK {
			r.JSON(t, &env)
		}
		return r.Status, env.Data, r.Header.Get("ETag")
	}
	if st, c, tag := asOf(h.Data[1].Time); st != http.StatusOK || c.Name != "Ann Lee" || c.Title == nil || *c.Title != "CFO" || len(c.Tags) != 0 || tag != `"2"` {
		t.Errorf("as of the first patch: %d %+v %s", st, c, tag)
	}
	if st, c, tag := asOf(h.Data[3].Time); st != http.StatusOK || c.Name != "Ann Lee-Smith" || tag != `"4"` {
		t.Errorf("as of the rename: %d %+v %s", st, c, tag)
	}
	if st, _, _ := asOf("2000-01-01T00:00:00Z"); st != http.StatusNotFound {
		t.Errorf("before it existed: %d", st)
	}
	if st, _, _ := asOf(time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); st != http.StatusNotFound {
		t.Errorf("after its deletion: %d", st)
	}

	// Bad requests, permissions, unknown ids.
	viewer, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "v", "exp": 4102444800, "permissions": []string{"crm.view"}}).
		SignedString([]byte(apptest.Secret))
	for _, c := range []struct {
		path   string
		status int
		field  string
		auth   string
	}{
		{one + "?asOf=yesterday", 400, "asOf", ""},
		{one + "?asOf=2026-01-01T00:00:00Z&x=1", 400, "x", ""},
		{one + "/history?sort=name", 400, "query", ""},
		{one + "/history?page=0", 400, "page", ""},
		{contactsPath + "/not-a-uuid/history", 400, "contactId", ""},
		{contactsPath + "/" + uuid.NewString() + "/history", 404, "", ""},
		{contactsPath + "/" + cu.CustomerID + "/history", 404, "", ""}, // a customer's id is no contact
		{one + "/history", 403, "", viewer},
		{one + "?asOf=2026-01-01T00:00:00Z", 403, "", viewer},
	} {
		var r apptest.Response
		if c.auth != "" {
			r = e.Do("GET", c.path, nil, "Authorization", "Bearer "+c.auth)
		} else {
			r = e.Do("GET", c.path, nil)
		}
		if r.Status != c.status || c.field != "" && !strings.Contains(string(r.Body), `"field":"`+c.field+`"`) {
			t.Errorf("GET %s: %d %s, want %d naming %q", c.path, r.Status, r.Body, c.status, c.field)
		}
	}
}

// TestContactSearch: GET /contacts/search finds the contacts by a prefix
// of any word of their name, title or email, accent- and
// case-insensitively, in name order, with the tag filter and cursor pages;
// a rename and a delete show at once (read-your-writes); bad parameters
// are 400s naming them.
func TestContactSearch(t *testing.T) {
	e := apptest.StartEmbedded(t)
	for _, body := range []string{
		`{"name":"José Álvarez","title":"CFO","email":"jose@acme.example","tags":["vip"]}`,
		`{"name":"Ann Lee","title":"Chief Executive","email":"ann.lee@acme.example"}`,
		`{"name":"Annabel Smith","title":"Buyer","tags":["vip"]}`,
		`{"name":"Bob Stone","email":"annie.stone@globex.example"}`,
		`{"name":"Carl Jung","title":"Analyst"}`,
	} {
		createContact(t, e, body)
	}
	search := func(query string) (names []string, total int64, relation string) {
		t.Helper()
		next := ""
		for i := 0; i < 10; i++ {
			q := query
			if next != "" {
				q += "&after=" + url.QueryEscape(next)
			}
			var page struct {
				Data []contactBody
				Meta struct {
					Total         int64
					TotalRelation string
					Next          string
				}
			}
			r := e.Do("GET", contactsPath+"/search?"+q, nil)
			if r.JSON(t, &page); r.Status != http.StatusOK {
				t.Fatalf("search ?%s: %d %s", q, r.Status, r.Body)
			}
			for _, k := range page.Data {
				names = append(names, k.Name)
			}
			total, relation = page.Meta.Total, page.Meta.TotalRelation
			if next = page.Meta.Next; next == "" {
				return names, total, relation
			}
		}
		t.Fatalf("search ?%s: no end", query)
		return nil, 0, ""
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"q=ann", []string{"Ann Lee", "Annabel Smith", "Bob Stone"}}, // Bob by his email
		{"q=ANN&perPage=1", []string{"Ann Lee", "Annabel Smith", "Bob Stone"}},
		{"q=jose+alv", []string{"José Álvarez"}},
		{"q=JOSÉ", []string{"José Álvarez"}},
		{"q=chief+exec", []string{"Ann Lee"}},
		{"q=acme", []string{"Ann Lee", "José Álvarez"}},
		{"q=a&tag=vip&perPage=1", []string{"Annabel Smith", "José Álvarez"}},
		{"q=nobody", nil},
	} {
		got, total, rel := search(tc.query)
		if !slices.Equal(got, tc.want) || total != int64(len(tc.want)) || rel != "eq" {
			t.Errorf("search ?%s = %v (total %d %s), want %v", tc.query, got, total, rel, tc.want)
		}
	}
	// A rename and a delete are searched at once.
	var page struct{ Data []contactBody }
	e.Do("GET", contactsPath+"/search?q=carl", nil).JSON(t, &page)
	if len(page.Data) != 1 {
		t.Fatalf("carl: %+v", page.Data)
	}
	carl := page.Data[0].ContactID
	if r := e.Do("PATCH", contactsPath+"/"+carl, `{"name":"Carla Jung"}`); r.Status != http.StatusOK {
		t.Fatalf("rename: %d %s", r.Status, r.Body)
	}
	if got, _, _ := search("q=carla+analyst"); !slices.Equal(got, []string{"Carla Jung"}) {
		t.Errorf("after the rename: %v", got)
	}
	if r := e.Do("DELETE", contactsPath+"/"+carl, nil); r.Status != http.StatusOK {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if got, _, _ := search("q=jung"); len(got) != 0 {
		t.Errorf("after the delete: %v", got)
	}

	// Bad parameters.
	var first struct{ Meta struct{ Next string } }
	e.Do("GET", contactsPath+"/search?q=ann&perPage=1", nil).JSON(t, &first)
	for q, field := range map[string]string{
		"":                              "q",
		"q=":                            "q",
		"q=+--+":                        "q",
		"q=" + strings.Repeat("a", 201): "q",
		"q=ann&email=ann@acme.example":  "email",
		"q=ann&sort=createdAt":          "sort",
		"q=ann&page=2":                  "page",
		"q=ann&perPage=101":             "perPage",
		"q=ann&x=1":                     "x",
		"q=ann&q=bob":                   "q",
		"q=bob&after=" + url.QueryEscape(first.Meta.Next): "after", // another query's cursor
	} {
		r := e.Do("GET", contactsPath+"/search?"+q, nil)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `"field":"`+field+`"`) {
			t.Errorf("search ?%s: %d %s, want 400 naming %s", q, r.Status, r.Body, field)
		}
	}
	if r := e.Do("GET", contactsPath+"?q=ann", nil); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `"field":"q"`) {
		t.Errorf("the list with q: %d %s", r.Status, r.Body)
	}
}
