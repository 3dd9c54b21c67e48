package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"crm/internal/app"
	"crm/internal/apptest"
	"crm/internal/projections"
)

type listBody struct {
	Data []customerBody `json:"data"`
	Meta struct {
		Total      int64 `json:"total"`
		Page       int   `json:"page"`
		PerPage    int   `json:"perPage"`
		TotalPages int64 `json:"totalPages"`
	} `json:"meta"`
}

func TestReadYourWrites(t *testing.T) {
	e := apptest.StartEmbedded(t)
	for i := range 200 {
		name := fmt.Sprintf("Ryw%04d Person", i)
		c := create(t, e, fmt.Sprintf(`{"name":%q,"company":"Ryw Company %d"}`, name, i))
		if r := e.Do("GET", "/api/v1/crm/customers/"+c.CustomerID, nil); r.Status != http.StatusOK {
			t.Fatalf("create %d then get: %d %s", i, r.Status, r.Body)
		}
		var l listBody
		e.Do("GET", "/api/v1/crm/customers?perPage=1", nil).JSON(t, &l)
		if len(l.Data) != 1 || l.Data[0].CustomerID != c.CustomerID || l.Meta.Total != int64(i+1) {
			t.Fatalf("create %d then list: newest is %+v, total %d", i, l.Data, l.Meta.Total)
		}
		var s listBody
		e.Do("GET", "/api/v1/crm/customers/search?q="+url.QueryEscape(fmt.Sprintf("ryw%04d", i)), nil).JSON(t, &s)
		if len(s.Data) != 1 || s.Data[0].CustomerID != c.CustomerID {
			t.Fatalf("create %d then search: %+v", i, s.Data)
		}
		if i%20 == 0 { // updates and deletes are visible at once too
			r := e.Do("PATCH", "/api/v1/crm/customers/"+c.CustomerID, `{"status":"active"}`)
			if r.Header.Get("X-Read-Model") != "current" {
				t.Fatalf("patch %d: X-Read-Model %q", i, r.Header.Get("X-Read-Model"))
			}
			var got envelope
			e.Do("GET", "/api/v1/crm/customers/"+c.CustomerID, nil).JSON(t, &got)
			if got.Data.Status != "active" {
				t.Fatalf("patch %d then get: status %s", i, got.Data.Status)
			}
		}
	}
}

func TestListSearchGetEndpoints(t *testing.T) {
	e := apptest.StartEmbedded(t)
	john := create(t, e, seedCustomer)
	create(t, e, `{"name":"José Álvarez","email":"jose@globex.io","company":"Globex","tags":["vip"],"status":"prospect"}`)
	create(t, e, `{"name":"Ann Lee","company":"Acme Labs","type":"business"}`)

	var l listBody
	e.Do("GET", "/api/v1/crm/customers?page=1&perPage=2", nil).JSON(t, &l)
	if l.Meta.Total != 3 || l.Meta.TotalPages != 2 || l.Meta.Page != 1 || l.Meta.PerPage != 2 || len(l.Data) != 2 || l.Data[0].Name != "Ann Lee" {
		t.Fatalf("list page 1: %+v", l)
	}
	e.Do("GET", "/api/v1/crm/customers?page=5", nil).JSON(t, &l)
	if l.Meta.Total != 3 || len(l.Data) != 0 || l.Data == nil {
		t.Fatalf("page past the end: %+v", l)
	}
	e.Do("GET", "/api/v1/crm/customers?sort=customerCode", nil).JSON(t, &l)
	if l.Data[0].CustomerCode != "C001" || l.Data[2].CustomerCode != "C003" {
		t.Fatalf("sort=customerCode: %+v", l.Data)
	}
	e.Do("GET", "/api/v1/crm/customers?tag=vip", nil).JSON(t, &l)
	if l.Meta.Total != 1 || l.Data[0].Name != "José Álvarez" {
		t.Fatalf("tag filter: %+v", l)
	}
	e.Do("GET", "/api/v1/crm/customers?status=active&type=business", nil).JSON(t, &l)
	if l.Meta.Total != 1 || l.Data[0].CustomerID != john.CustomerID {
		t.Fatalf("status+type filter: %+v", l)
	}

	search := func(q string) []string {
		var s listBody
		r := e.Do("GET", "/api/v1/crm/customers/search?q="+url.QueryEscape(q), nil)
		if r.Status != http.StatusOK {
			t.Fatalf("search %q: %d %s", q, r.Status, r.Body)
		}
		r.JSON(t, &s)
		var names []string
		for _, c := range s.Data {
			names = append(names, c.Name)
		}
		return names
	}
	for q, want := range map[string][]string{
		"acm":     {"Ann Lee", "John Smith"}, // equal scores (company prefix): by name
		"smi jo":  {"John Smith"},
		"example": {"John Smith"},
		"c001":    {"John Smith"},
		"jose":    {"José Álvarez"},
		"mith":    nil,
	} {
		got := search(q)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("search %q = %v, want %v", q, got, want)
		}
	}

	if r := e.Do("GET", "/api/v1/crm/customers/"+john.CustomerID, nil); r.Status != http.StatusOK || r.Header.Get("ETag") != `"1"` {
		t.Fatalf("get: %d %v", r.Status, r.Header)
	}
	for path, want := range map[string]int{
		"/api/v1/crm/customers?perPage=0":                            400,
		"/api/v1/crm/customers?perPage=101":                          400,
		"/api/v1/crm/customers?page=0":                               400,
		"/api/v1/crm/customers?page=abc":                             400,
		"/api/v1/crm/customers?page=99999999999999999999":            400,
		"/api/v1/crm/customers?status=vip":                           400,
		"/api/v1/crm/customers?status%5B%24ne%5D=x":                  400,
		"/api/v1/crm/customers?sort=email":                           400,
		"/api/v1/crm/customers?status=active&status=lead":            400,
		"/api/v1/crm/customers/search":                               400,
		"/api/v1/crm/customers/search?q=":                            400,
		"/api/v1/crm/customers/search?q=" + string(make201('a')):     400,
		"/api/v1/crm/customers/search?q=.*":                          400,
		"/api/v1/crm/customers/search?q=%28a%2B%29%2B%24":            200,
		"/api/v1/crm/customers/not-a-uuid":                           400,
		"/api/v1/crm/customers/6f1b6c36-5b7e-4b43-9d3a-3f4f2a7f0a11": 404,
	} {
		if r := e.Do("GET", path, nil); r.Status != want {
			t.Errorf("GET %s = %d, want %d: %s", path, r.Status, want, r.Body)
		}
	}
}

func make201(c byte) []byte {
	b := make([]byte, 201)
	for i := range b {
		b[i] = c
	}
	return b
}

// TestRebuildUnderQueryLoad rebuilds the read model while clients query it:
// no query fails and the rebuilt model equals the live one.
func TestRebuildUnderQueryLoad(t *testing.T) {
	e := apptest.StartEmbedded(t)
	var ids []string
	for i := range 150 {
		c := create(t, e, fmt.Sprintf(`{"name":"Rebuild %d","company":"Rb Co","tags":["t%d"]}`, i, i%5))
		ids = append(ids, c.CustomerID)
		if i%3 == 0 {
			e.Do("PATCH", "/api/v1/crm/customers/"+c.CustomerID, `{"status":"active","email":"rb@example.com"}`)
		}
		if i%10 == 0 {
			e.Do("DELETE", "/api/v1/crm/customers/"+c.CustomerID, nil)
		}
	}
	before := e.Do("GET", "/api/v1/crm/customers?perPage=100&sort=customerCode", nil)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var queries, failures atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				paths := []string{"/api/v1/crm/customers?perPage=50", "/api/v1/crm/customers/search?q=rebuild", "/api/v1/crm/customers/" + ids[(i*7+w)%len(ids)]}
				r := e.Do("GET", paths[i%3], nil)
				queries.Add(1)
				if r.Status != http.StatusOK && r.Status != http.StatusNotFound {
					failures.Add(1)
					t.Errorf("query during rebuild: %d %s", r.Status, r.Body)
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, js := e.JetStream()
	cp, err := projections.Rebuild(context.Background(), js, "CRM_CUSTOMERS", e.App.Store(), log)
	time.Sleep(50 * time.Millisecond)
	cancel()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if cp == 0 || failures.Load() > 0 || queries.Load() == 0 {
		t.Fatalf("rebuild checkpoint %d, %d of %d queries failed", cp, failures.Load(), queries.Load())
	}
	after := e.Do("GET", "/api/v1/crm/customers?perPage=100&sort=customerCode", nil)
	var a, b listBody
	json.Unmarshal(before.Body, &b)
	json.Unmarshal(after.Body, &a)
	if !reflect.DeepEqual(a, b) || a.Meta.Total != 135 {
		t.Fatalf("rebuilt read model differs from the live one (total %d vs %d)", a.Meta.Total, b.Meta.Total)
	}
	// The live projector keeps working on the rebuilt model.
	c := create(t, e, `{"name":"After Rebuild"}`)
	if r := e.Do("GET", "/api/v1/crm/customers/"+c.CustomerID, nil); r.Status != http.StatusOK {
		t.Fatalf("after rebuild: %d %s", r.Status, r.Body)
	}
	t.Logf("%d queries during the rebuild", queries.Load())
}

// TestSearchTotalBeyondTheExactBound: a search with more matches than it
// counts exactly reports the bound as a lower bound (totalRelation gte),
// and its pages past the bound and its cursors still reach every match;
// a list's total is always exact.
func TestSearchTotalBeyondTheExactBound(t *testing.T) {
	e := apptest.Start(t, apptest.Config(t, t.TempDir()), func(o *app.Options) { o.SearchExactTotal = 3 })
	for i := range 5 {
		create(t, e, fmt.Sprintf(`{"name":"Bound%d Person","status":"active"}`, i))
	}
	create(t, e, `{"name":"Other Bound"}`) // an exact name word: ranked first
	type page struct {
		Data []customerBody `json:"data"`
		Meta struct {
			Total         int64  `json:"total"`
			TotalPages    int64  `json:"totalPages"`
			TotalRelation string `json:"totalRelation"`
			Next          string `json:"next"`
		} `json:"meta"`
	}
	get := func(query string) page {
		t.Helper()
		var p page
		if r := e.Do("GET", "/api/v1/crm/customers"+query, nil); r.Status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", query, r.Status, r.Body)
		} else {
			r.JSON(t, &p)
		}
		return p
	}
	names := func(p page) (out []string) {
		for _, c := range p.Data {
			out = append(out, c.Name)
		}
		return out
	}
	p := get("/search?q=bound&perPage=2")
	if p.Meta.Total != 3 || p.Meta.TotalRelation != "gte" || p.Meta.TotalPages != 2 || p.Meta.Next == "" ||
		!reflect.DeepEqual(names(p), []string{"Other Bound", "Bound0 Person"}) {
		t.Fatalf("search page 1: %+v", p)
	}
	// Page 3 starts past the counted matches: still served.
	if p3 := get("/search?q=bound&perPage=2&page=3"); !reflect.DeepEqual(names(p3), []string{"Bound3 Person", "Bound4 Person"}) ||
		p3.Meta.Next != "" {
		t.Fatalf("search page 3: %+v", p3)
	}
	if p4 := get("/search?q=bound&perPage=2&page=4"); len(p4.Data) != 0 || p4.Meta.Next != "" {
		t.Fatalf("search page 4: %+v", p4)
	}
	// The cursors walk every match once, in order.
	var all []string
	for p := get("/search?q=bound&perPage=2"); ; {
		all = append(all, names(p)...)
		if p.Meta.Next == "" {
			break
		}
		p = get("/search?q=bound&perPage=2&after=" + url.QueryEscape(p.Meta.Next))
	}
	want := []string{"Other Bound", "Bound0 Person", "Bound1 Person", "Bound2 Person", "Bound3 Person", "Bound4 Person"}
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("cursor walk: %q, want %q", all, want)
	}
	if p := get("/search?q=bound&status=active"); p.Meta.Total != 3 || p.Meta.TotalRelation != "gte" || len(p.Data) != 5 {
		t.Fatalf("search with a filter: %+v", p)
	}
	if p := get("/search?q=other"); p.Meta.Total != 1 || p.Meta.TotalRelation != "eq" || p.Meta.Next != "" {
		t.Fatalf("search within the bound: %+v", p)
	}
	if p := get("?perPage=2"); p.Meta.Total != 6 || p.Meta.TotalRelation != "eq" {
		t.Fatalf("list: %+v", p)
	}
}
