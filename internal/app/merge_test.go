package app_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"crm/internal/apptest"
)

type mergeBody struct {
	Data    customerBody `json:"data"`
	Message string       `json:"message"`
	Merge   struct {
		DryRun   bool `json:"dryRun"`
		Absorbed []struct {
			CustomerID, CustomerCode string
		} `json:"absorbed"`
		Choices []struct {
			Field, Rule string
			CustomerID  *string
		} `json:"choices"`
	} `json:"merge"`
}

// TestMerge: a dry run shows the merge and appends nothing; the merge
// applies it in one batch; afterwards the absorbed ids answer 308 to the
// survivor, queries show only the survivor (found by an absorbed code too),
// and both histories tell the story.
func TestMerge(t *testing.T) {
	e := apptest.StartEmbedded(t)
	s := create(t, e, `{"name":"Ann Smith","phone":"+1 555 0100","tags":["a"],"notes":"first"}`)
	a := create(t, e, `{"name":"Ann Smith (dup)","email":"ann@example.com","company":"Acme","tags":["b"],"notes":"second"}`)
	b := create(t, e, `{"name":"A. Smith","email":"a.smith@example.com","tags":["a","c"],"status":"active"}`)
	base := "/api/v1/crm/customers/"
	body := map[string]any{"customerIds": []string{a.CustomerID, b.CustomerID}, "resolve": map[string]string{"status": b.CustomerID}}

	before := len(e.StreamMessages())
	var dry mergeBody
	r := e.Do("POST", base+s.CustomerID+"/merge", map[string]any{"customerIds": body["customerIds"], "resolve": body["resolve"], "dryRun": true})
	if r.JSON(t, &dry); r.Status != http.StatusOK || !dry.Merge.DryRun || dry.Data.Email == nil || *dry.Data.Email != "a.smith@example.com" {
		t.Fatalf("dry run: %d %s", r.Status, r.Body)
	}
	if n := len(e.StreamMessages()); n != before {
		t.Fatalf("the dry run appended %d events", n-before)
	}

	var m mergeBody
	r = e.Do("POST", base+s.CustomerID+"/merge", body)
	if r.JSON(t, &m); r.Status != http.StatusOK || r.Header.Get("X-Read-Model") != "current" || r.Header.Get("ETag") != `"2"` {
		t.Fatalf("merge: %d %v %s", r.Status, r.Header, r.Body)
	}
	d := m.Data
	if d.CustomerID != s.CustomerID || *d.Email != "a.smith@example.com" || *d.Company != "Acme" || d.Status != "active" ||
		!slices.Equal(d.Tags, []string{"a", "c", "b"}) || *d.Notes != "first\n\nsecond" || len(m.Merge.Absorbed) != 2 {
		t.Fatalf("merged customer: %s", r.Body)
	}
	if mustJSON(dry.Data) != mustJSON(m.Data) && dry.Data.UpdatedAt == m.Data.UpdatedAt {
		t.Errorf("the dry run differs from the merge:\n%s\n%s", mustJSON(dry.Data), mustJSON(m.Data))
	}
	if n := len(e.StreamMessages()); n != before+3 {
		t.Fatalf("the merge appended %d events, want 3", n-before)
	}

	// The absorbed ids answer with the survivor.
	for _, tc := range []struct{ method, path, body string }{
		{"GET", base + a.CustomerID, ""},
		{"PATCH", base + a.CustomerID, `{"status":"lead"}`},
		{"DELETE", base + b.CustomerID, ""},
		{"POST", base + b.CustomerID + "/restore", ""},
	} {
		var rb any
		if tc.body != "" {
			rb = tc.body
		}
		r := e.Do(tc.method, tc.path, rb)
		want := strings.Replace(tc.path, a.CustomerID, s.CustomerID, 1)
		want = strings.Replace(want, b.CustomerID, s.CustomerID, 1)
		if r.Status != http.StatusPermanentRedirect || r.Header.Get("Location") != want || !strings.Contains(string(r.Body), s.CustomerID) {
			t.Errorf("%s %s: %d Location %q %s", tc.method, tc.path, r.Status, r.Header.Get("Location"), r.Body)
		}
	}
	var l listBody
	e.Do("GET", "/api/v1/crm/customers?perPage=100", nil).JSON(t, &l)
	if l.Meta.Total != 1 || l.Data[0].CustomerID != s.CustomerID {
		t.Fatalf("list after the merge: %+v", l.Meta)
	}
	e.Do("GET", "/api/v1/crm/customers/search?q="+a.CustomerCode, nil).JSON(t, &l)
	if l.Meta.Total != 1 || l.Data[0].CustomerID != s.CustomerID {
		t.Fatalf("search for an absorbed code: %+v", l.Data)
	}
	var h historyBody
	e.Do("GET", base+s.CustomerID+"/history", nil).JSON(t, &h)
	if len(h.Data) != 2 || h.Data[1].Kind != "merged" || len(h.Data[1].Changes) == 0 {
		t.Fatalf("survivor history: %+v", h.Data)
	}
	e.Do("GET", base+a.CustomerID+"/history", nil).JSON(t, &h)
	if len(h.Data) != 2 || h.Data[1].Kind != "mergedinto" {
		t.Fatalf("absorbed history: %+v", h.Data)
	}

	// Refusals append nothing.
	other := create(t, e, `{"name":"Other"}`)
	sign := func(perms ...string) string {
		tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "v", "exp": 4102444800, "permissions": perms}).
			SignedString([]byte(apptest.Secret))
		return "Bearer " + tok
	}
	before = len(e.StreamMessages())
	for _, tc := range []struct {
		name    string
		body    any
		headers []string
		status  int
		field   string
	}{
		{"no ids", `{"customerIds":[]}`, nil, 400, "customerIds"},
		{"missing ids", `{}`, nil, 400, "customerIds"},
		{"not a UUID", `{"customerIds":["C001"]}`, nil, 400, "customerIds[0]"},
		{"eleven", map[string]any{"customerIds": strings.Split(strings.Repeat(other.CustomerID+",", 11), ",")[:11]}, nil, 400, "customerIds"},
		{"unknown member", `{"customerIds":["` + other.CustomerID + `"],"force":true}`, nil, 400, "force"},
		{"an absorbed one", map[string]any{"customerIds": []string{a.CustomerID}}, nil, 400, "customerIds[0]"},
		{"itself", map[string]any{"customerIds": []string{other.CustomerID}, "resolve": map[string]string{"email": s.CustomerID}}, nil, 400, "resolve.email"},
		{"without crm.delete", map[string]any{"customerIds": []string{s.CustomerID}}, []string{"Authorization", sign("crm.view", "crm.edit")}, 403, ""},
	} {
		r := e.Do("POST", base+other.CustomerID+"/merge", tc.body, tc.headers...)
		if r.Status != tc.status || (tc.field != "" && !strings.Contains(string(r.Body), `"field":"`+tc.field+`"`)) {
			t.Errorf("merge %s: %d %s", tc.name, r.Status, r.Body)
		}
	}
	if r := e.Do("POST", base+a.CustomerID+"/merge", map[string]any{"customerIds": []string{other.CustomerID}}); r.Status != http.StatusPermanentRedirect {
		t.Errorf("merge into an absorbed customer: %d", r.Status)
	}
	if n := len(e.StreamMessages()); n != before {
		t.Fatalf("refused merges appended %d events", n-before)
	}
}

// TestMergeRacingPatch: a merge racing a patch of the customer it absorbs
// is applied whole or not at all: either the patch came first (and the
// merge sees it, or fails with 409 and appends nothing), or the patch is
// answered 308 after it.
func TestMergeRacingPatch(t *testing.T) {
	e := apptest.StartEmbedded(t)
	outcomes := map[string]int{}
	for i := range 30 {
		s := create(t, e, fmt.Sprintf(`{"name":"Survivor %d"}`, i))
		a := create(t, e, fmt.Sprintf(`{"name":"Absorbed %d"}`, i))
		var wg sync.WaitGroup
		var merge, patch apptest.Response
		wg.Go(func() {
			merge = e.Do("POST", "/api/v1/crm/customers/"+s.CustomerID+"/merge", map[string]any{"customerIds": []string{a.CustomerID}})
		})
		wg.Go(func() {
			patch = e.Do("PATCH", "/api/v1/crm/customers/"+a.CustomerID, `{"email":"raced@example.com"}`)
		})
		wg.Wait()
		outcomes[fmt.Sprint(merge.Status, "/", patch.Status)]++
		var sEvents, aEvents []string
		for _, m := range e.StreamMessages() {
			switch {
			case strings.Contains(m.Subject, s.CustomerID):
				sEvents = append(sEvents, m.Subject[strings.LastIndex(m.Subject, ".")+1:])
			case strings.Contains(m.Subject, a.CustomerID):
				aEvents = append(aEvents, m.Subject[strings.LastIndex(m.Subject, ".")+1:])
			}
		}
		merged := slices.Contains(sEvents, "merged")
		if merged != slices.Contains(aEvents, "mergedinto") || merged != (merge.Status == http.StatusOK) {
			t.Fatalf("half a merge: merge %d, survivor %v, absorbed %v", merge.Status, sEvents, aEvents)
		}
		switch {
		case merge.Status == http.StatusConflict && patch.Status == http.StatusOK:
		case merge.Status == http.StatusOK && (patch.Status == http.StatusOK || patch.Status == http.StatusPermanentRedirect):
			// A patch after the merge is 308; one before is in the merge.
			if patch.Status == http.StatusOK && aEvents[len(aEvents)-1] != "mergedinto" {
				t.Fatalf("the patch landed after the merge: %v", aEvents)
			}
		default:
			t.Fatalf("merge %d %s, patch %d %s", merge.Status, merge.Body, patch.Status, patch.Body)
		}
	}
	t.Logf("merge/patch outcomes: %v", outcomes)
}

// TestUnmerge: taking a customer out of a merge brings it back as it was and
// sets back on the survivor what it gave, except what changed since (kept,
// reported).
func TestUnmerge(t *testing.T) {
	e := apptest.StartEmbedded(t)
	s := create(t, e, `{"name":"Bob Survivor","tags":["x"]}`)
	a := create(t, e, `{"name":"Bob Absorbed","email":"bob@example.com","company":"Bob Co","tags":["y"]}`)
	base := "/api/v1/crm/customers/"
	if r := e.Do("POST", base+s.CustomerID+"/merge", map[string]any{"customerIds": []string{a.CustomerID}}); r.Status != http.StatusOK {
		t.Fatalf("merge: %d %s", r.Status, r.Body)
	}
	if r := e.Do("PATCH", base+s.CustomerID, `{"email":"bob.new@example.com"}`); r.Status != http.StatusOK {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	var u struct {
		Data    customerBody `json:"data"`
		Unmerge struct {
			Customer       customerBody
			Reverted, Kept []string
		} `json:"unmerge"`
	}
	r := e.Do("POST", base+s.CustomerID+"/unmerge", map[string]string{"customerId": a.CustomerID})
	if r.JSON(t, &u); r.Status != http.StatusOK || r.Header.Get("X-Read-Model") != "current" {
		t.Fatalf("unmerge: %d %s", r.Status, r.Body)
	}
	if *u.Data.Email != "bob.new@example.com" || u.Data.Company != nil || !slices.Equal(u.Data.Tags, []string{"x"}) ||
		!slices.Equal(u.Unmerge.Kept, []string{"email"}) || !slices.Contains(u.Unmerge.Reverted, "company") ||
		u.Unmerge.Customer.CustomerID != a.CustomerID || *u.Unmerge.Customer.Email != "bob@example.com" {
		t.Fatalf("unmerge result: %s", r.Body)
	}
	var back envelope
	if g := e.Do("GET", base+a.CustomerID, nil); g.Status != http.StatusOK {
		t.Fatalf("get of the unmerged customer: %d", g.Status)
	} else if g.JSON(t, &back); back.Data.Name != "Bob Absorbed" {
		t.Fatalf("unmerged customer: %+v", back.Data)
	}
	var l listBody
	e.Do("GET", "/api/v1/crm/customers/search?q="+a.CustomerCode, nil).JSON(t, &l)
	if l.Meta.Total != 1 || l.Data[0].CustomerID != a.CustomerID {
		t.Fatalf("search for its code after the unmerge: %+v", l.Data)
	}
	if r := e.Do("POST", base+s.CustomerID+"/unmerge", map[string]string{"customerId": a.CustomerID}); r.Status != http.StatusBadRequest {
		t.Fatalf("a second unmerge: %d %s", r.Status, r.Body)
	}
}
