package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"crm/internal/apptest"
)

const base = "/api/v1/crm/customers/"

func extID(c customerBody) string {
	if c.ExternalID == nil {
		return "<null>"
	}
	return *c.ExternalID
}

// TestExternalID: the externalId field is validated, shown, kept unique
// among customers on the write side (a taken one is a 409 naming its
// holder, nothing written; a cleared or deleted holder's is taken over), found by
// GET /customers/by-external-id/{externalId} (slashes included), and
// survives merges: an absorbed customer's external id answers with its
// survivor, and stays taken, until the unmerge gives it back.
func TestExternalID(t *testing.T) {
	e := apptest.StartEmbedded(t)
	a := create(t, e, `{"name":"Ann","externalId":" SF-001 "}`)
	if extID(a) != "SF-001" {
		t.Fatalf("created with externalId %q", extID(a))
	}
	b := create(t, e, `{"name":"Bob"}`)
	if b.ExternalID != nil {
		t.Fatalf("unset externalId shown as %q", extID(b))
	}

	taken := func(r apptest.Response, holder string) {
		t.Helper()
		if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), "externalId") || !strings.Contains(string(r.Body), holder) {
			t.Fatalf("want 409 naming externalId and %s: %d %s", holder, r.Status, r.Body)
		}
	}
	before := len(e.StreamMessages())
	taken(e.Do("POST", "/api/v1/crm/customers", `{"name":"Copy","externalId":"SF-001"}`), a.CustomerID)
	taken(e.Do("PATCH", base+b.CustomerID, `{"externalId":"SF-001"}`), a.CustomerID)
	if n := len(e.StreamMessages()); n != before {
		t.Fatalf("refused writes appended %d messages", n-before)
	}
	// Case is significant: another system's ids are compared exactly.
	if r := e.Do("POST", "/api/v1/crm/customers", `{"name":"Lower","externalId":"sf-001"}`); r.Status != http.StatusCreated {
		t.Fatalf("sf-001: %d %s", r.Status, r.Body)
	}
	for _, body := range []string{
		`{"name":"x","externalId":"` + strings.Repeat("x", 101) + `"}`,
		`{"name":"x","externalId":"a\u0007b"}`,
		`{"name":"x","externalId":5}`,
	} {
		r := e.Do("POST", "/api/v1/crm/customers", body)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `"externalId"`) {
			t.Errorf("POST %.40s: %d %s", body, r.Status, r.Body)
		}
	}

	// Cleared on its holder: free for another.
	if r := e.Do("PATCH", base+a.CustomerID, `{"externalId":null}`); r.Status != http.StatusOK {
		t.Fatalf("clear: %d %s", r.Status, r.Body)
	}
	if r := e.Do("PATCH", base+b.CustomerID, `{"externalId":"SF-001"}`); r.Status != http.StatusOK {
		t.Fatalf("take over a cleared id: %d %s", r.Status, r.Body)
	}
	taken(e.Do("PATCH", base+a.CustomerID, `{"externalId":"SF-001"}`), b.CustomerID)
	get := func(x string) apptest.Response { return e.Do("GET", base+"by-external-id/"+x, nil) }
	var env envelope
	if r := get("SF-001"); r.Status != http.StatusOK {
		t.Fatalf("GET by-external-id: %d %s", r.Status, r.Body)
	} else if r.JSON(t, &env); env.Data.CustomerID != b.CustomerID || r.Header.Get("ETag") == "" {
		t.Fatalf("GET by-external-id found %+v", env.Data)
	}
	if r := get("SF-002"); r.Status != http.StatusNotFound {
		t.Errorf("unknown external id: %d", r.Status)
	}
	if r := get(""); r.Status != http.StatusBadRequest {
		t.Errorf("empty external id: %d", r.Status)
	}

	// Its holder deleted: free again; the restore of the old holder then
	// finds it taken.
	if r := e.Do("DELETE", base+b.CustomerID, nil); r.Status != http.StatusOK {
		t.Fatal(r.Status)
	}
	if r := get("SF-001"); r.Status != http.StatusNotFound {
		t.Errorf("deleted holder still found: %d", r.Status)
	}
	c := create(t, e, `{"name":"Cid","externalId":"SF-001"}`)
	taken(e.Do("POST", base+b.CustomerID+"/restore", nil), c.CustomerID)

	// Slashes, percent-encoded or not.
	s := create(t, e, `{"name":"Slash","externalId":"ACME/2020/17"}`)
	for _, p := range []string{"ACME/2020/17", "ACME%2F2020%2F17"} {
		if r := get(p); r.Status != http.StatusOK || !strings.Contains(string(r.Body), s.CustomerID) {
			t.Errorf("GET by-external-id/%s: %d %s", p, r.Status, r.Body)
		}
	}

	// History shows the change.
	if r := e.Do("GET", base+a.CustomerID+"/history", nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"externalId"`) {
		t.Errorf("history: %d %s", r.Status, r.Body)
	}

	// Merged: the absorbed customer's id answers with the survivor, and
	// stays taken; the unmerge gives it back.
	m := create(t, e, `{"name":"Merged Away","externalId":"M-1"}`)
	if r := e.Do("POST", base+c.CustomerID+"/merge", map[string]any{"customerIds": []string{m.CustomerID}}); r.Status != http.StatusOK {
		t.Fatalf("merge: %d %s", r.Status, r.Body)
	}
	if r := get("M-1"); r.Status != http.StatusPermanentRedirect || r.Header.Get("Location") != base+c.CustomerID {
		t.Errorf("GET by-external-id of an absorbed customer: %d Location %q", r.Status, r.Header.Get("Location"))
	}
	taken(e.Do("POST", "/api/v1/crm/customers", `{"name":"New M","externalId":"M-1"}`), m.CustomerID)
	if u := upsertExt(t, e, "M-1", `{"status":"active"}`, 200); u.Result != "updated" || u.Data.CustomerID != c.CustomerID || extID(u.Data) != "SF-001" {
		t.Fatalf("upsert of an absorbed customer's external id: %+v", u)
	}
	if r := e.Do("POST", base+c.CustomerID+"/unmerge", map[string]string{"customerId": m.CustomerID}); r.Status != http.StatusOK {
		t.Fatalf("unmerge: %d %s", r.Status, r.Body)
	}
	if r := get("M-1"); r.Status != http.StatusOK || !strings.Contains(string(r.Body), m.CustomerID) {
		t.Errorf("after the unmerge: %d %s", r.Status, r.Body)
	}
}

func upsertExt(t *testing.T, e *apptest.Env, x, body string, want int) upsertBody {
	t.Helper()
	r := e.Do("PUT", base+"by-external-id/"+x, body)
	var u upsertBody
	if r.Status != want {
		t.Fatalf("PUT by-external-id %s %s: %d %s, want %d", x, body, r.Status, r.Body, want)
	}
	if r.Status < 300 {
		r.JSON(t, &u)
	}
	return u
}

// TestUpsertByExternalID: the first upsert creates (with the path's
// external id), the next ones merge-patch or change nothing; a body naming
// another external id, or a create without a name, is a 400.
func TestUpsertByExternalID(t *testing.T) {
	e := apptest.StartEmbedded(t)
	u := upsertExt(t, e, "ERP%2F42", `{"name":"Erp Customer","email":"erp@example.com"}`, 201)
	if u.Result != "created" || extID(u.Data) != "ERP/42" {
		t.Fatalf("create: %+v", u)
	}
	id := u.Data.CustomerID
	if u := upsertExt(t, e, "ERP/42", `{"status":"active","externalId":"ERP/42"}`, 200); u.Result != "updated" || u.Data.CustomerID != id || u.Data.Status != "active" {
		t.Fatalf("update: %+v", u)
	}
	if u := upsertExt(t, e, "ERP/42", `{"status":"active"}`, 200); u.Result != "unchanged" || u.Data.CustomerID != id {
		t.Fatalf("unchanged: %+v", u)
	}
	for _, tc := range []struct{ x, body string }{
		{"ERP/42", `{"externalId":"ERP/43"}`},
		{"ERP/42", `{"externalId":null}`},
		{"ERP/99", `{"company":"no name"}`},
		{strings.Repeat("y", 101), `{"name":"too long"}`},
	} {
		if r := e.Do("PUT", base+"by-external-id/"+tc.x, tc.body); r.Status != http.StatusBadRequest {
			t.Errorf("PUT %.20s %s: %d %s", tc.x, tc.body, r.Status, r.Body)
		}
	}
	// An upsert by email may set an external id, which is then claimed.
	if u := upsert(t, e, "both@example.com", `{"name":"Both","externalId":"ERP/43"}`, 201); extID(u.Data) != "ERP/43" {
		t.Fatalf("by-email with externalId: %+v", u)
	}
	if r := e.Do("PUT", "/api/v1/crm/customers/by-email/other@example.com", `{"name":"Other","externalId":"ERP/42"}`); r.Status != http.StatusConflict ||
		!strings.Contains(string(r.Body), id) {
		t.Fatalf("by-email with a taken externalId: %d %s", r.Status, r.Body)
	}
}

// TestConcurrentExternalIDsAcrossReplicas: through two API processes,
// concurrent upserts of one new external id create one customer, and
// concurrent creates with one external id succeed once (the others 409).
func TestConcurrentExternalIDsAcrossReplicas(t *testing.T) {
	owner, replica := replicaPair(t)
	for round := range 3 {
		x := fmt.Sprintf("RACE-%d", round)
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			outcomes = map[string]int{}
			ids      = map[string]bool{}
		)
		for i := range 10 {
			e := []*apptest.Env{owner, replica}[i%2]
			wg.Go(func() {
				r := e.Do("PUT", base+"by-external-id/"+x, fmt.Sprintf(`{"name":"Racer","notes":"from %d"}`, i))
				if r.Status != http.StatusCreated && r.Status != http.StatusOK {
					t.Errorf("upsert %d: %d %s", i, r.Status, r.Body)
					return
				}
				var u upsertBody
				r.JSON(t, &u)
				mu.Lock()
				outcomes[u.Result]++
				ids[u.Data.CustomerID] = true
				mu.Unlock()
			})
		}
		wg.Wait()
		if outcomes["created"] != 1 || len(ids) != 1 {
			t.Fatalf("upserts, round %d: outcomes %v, customers %v", round, outcomes, ids)
		}

		x = fmt.Sprintf("POST-%d", round)
		statuses := map[int]int{}
		for i := range 10 {
			e := []*apptest.Env{owner, replica}[i%2]
			wg.Go(func() {
				r := e.Do("POST", "/api/v1/crm/customers", fmt.Sprintf(`{"name":"Poster %d","externalId":%q}`, i, x))
				mu.Lock()
				statuses[r.Status]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if statuses[http.StatusCreated] != 1 || statuses[http.StatusConflict] != 9 {
			t.Fatalf("creates, round %d: statuses %v", round, statuses)
		}
	}
}
