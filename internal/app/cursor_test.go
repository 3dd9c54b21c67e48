package app_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"crm/internal/apptest"
)

type cursorPage struct {
	Data []customerBody `json:"data"`
	Meta struct {
		Total   int64  `json:"total"`
		Page    *int   `json:"page"`
		PerPage int    `json:"perPage"`
		Next    string `json:"next"`
	} `json:"meta"`
}

// walkCursor follows meta.next from path's first page to the last and
// returns the codes in order; between pages it calls between(page number).
func walkCursor(t *testing.T, e *apptest.Env, path string, between func(int)) []string {
	t.Helper()
	var out []string
	next := path
	for n := 0; ; n++ {
		var p cursorPage
		r := e.Do("GET", next, nil)
		if r.JSON(t, &p); r.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", next, r.Status, r.Body)
		}
		if n > 0 && p.Meta.Page != nil {
			t.Errorf("a cursor page reports page %d", *p.Meta.Page)
		}
		for _, c := range p.Data {
			out = append(out, c.CustomerCode)
		}
		if p.Meta.Next == "" {
			return out
		}
		if n > 1000 {
			t.Fatal("the walk does not end")
		}
		if between != nil {
			between(n)
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		next = path + sep + "after=" + url.QueryEscape(p.Meta.Next)
	}
}

// TestCursorPaging: meta.next walks list and search to the end in the
// order of the pages; customers created or deleted meanwhile never make it
// repeat or skip one that existed throughout; a cursor of another query, a
// changed one, or one with page is 400.
func TestCursorPaging(t *testing.T) {
	e := apptest.StartEmbedded(t)
	for i := range 23 {
		create(t, e, fmt.Sprintf(`{"name":"Cursor %c%d","tags":["walk"],"status":%q}`, 'A'+i%7, i, []string{"lead", "active"}[i%2]))
	}
	var all cursorPage
	e.Do("GET", "/api/v1/crm/customers?perPage=100&sort=name&tag=walk", nil).JSON(t, &all)
	var want []string
	for _, c := range all.Data {
		want = append(want, c.CustomerCode)
	}
	if got := walkCursor(t, e, "/api/v1/crm/customers?perPage=4&sort=name&tag=walk", nil); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("cursor walk by name:\n got %v\nwant %v", got, want)
	}
	e.Do("GET", "/api/v1/crm/customers/search?q=cursor&perPage=100", nil).JSON(t, &all)
	want = want[:0]
	for _, c := range all.Data {
		want = append(want, c.CustomerCode)
	}
	if got := walkCursor(t, e, "/api/v1/crm/customers/search?q=cursor&perPage=3", nil); fmt.Sprint(got) != fmt.Sprint(want) || len(got) != 23 {
		t.Fatalf("cursor walk of a search:\n got %v\nwant %v", got, want)
	}

	// Writes between pages: new customers (sorting first and last), a
	// deletion of one not reached yet.
	e.Do("GET", "/api/v1/crm/customers?perPage=100&sort=createdAt&status=active", nil).JSON(t, &all)
	existing := map[string]bool{}
	for _, c := range all.Data {
		existing[c.CustomerCode] = true
	}
	victim := all.Data[len(all.Data)-1]
	got := walkCursor(t, e, "/api/v1/crm/customers?perPage=3&sort=createdAt&status=active", func(n int) {
		if n == 0 {
			create(t, e, `{"name":"Newcomer","status":"active"}`)
			if r := e.Do("DELETE", "/api/v1/crm/customers/"+victim.CustomerID, nil); r.Status != http.StatusOK {
				t.Fatalf("delete: %d", r.Status)
			}
		}
	})
	seen := map[string]int{}
	for _, c := range got {
		seen[c]++
	}
	for c := range existing {
		if c != victim.CustomerCode && seen[c] != 1 {
			t.Errorf("%s seen %d times in %v", c, seen[c], got)
		}
	}
	if seen[victim.CustomerCode] != 0 {
		t.Errorf("the deleted customer was listed")
	}

	// Refused cursors.
	var first cursorPage
	e.Do("GET", "/api/v1/crm/customers?perPage=2&sort=name", nil).JSON(t, &first)
	cur := url.QueryEscape(first.Meta.Next)
	payload, mac, _ := strings.Cut(first.Meta.Next, ".")
	tampered := url.QueryEscape(payload[:len(payload)-2] + "x" + payload[len(payload)-1:] + "." + mac)
	for _, path := range []string{
		"/api/v1/crm/customers?perPage=2&sort=-name&after=" + cur,       // another order
		"/api/v1/crm/customers?perPage=2&sort=name&tag=x&after=" + cur,  // another filter
		"/api/v1/crm/customers/search?q=cursor&after=" + cur,            // another endpoint
		"/api/v1/crm/customers?perPage=2&sort=name&after=" + tampered,   // changed by hand
		"/api/v1/crm/customers?perPage=2&sort=name&page=2&after=" + cur, // with page
		"/api/v1/crm/customers?sort=name&after=bm90IGEgY3Vyc29y",        // not one
	} {
		r := e.Do("GET", path, nil)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `"field":"after"`) {
			t.Errorf("GET %s: %d %s", path, r.Status, r.Body)
		}
	}
	// The page size may change between pages.
	if r := e.Do("GET", "/api/v1/crm/customers?perPage=7&sort=name&after="+cur, nil); r.Status != http.StatusOK {
		t.Errorf("another perPage: %d %s", r.Status, r.Body)
	}
}
