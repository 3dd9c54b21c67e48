package app_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"crm/internal/apptest"
)

type warningBody struct {
	Type       string `json:"type"`
	CustomerID string `json:"customerId"`
	Match      string `json:"match"`
}

type writeBody struct {
	Data     customerBody  `json:"data"`
	Warnings []warningBody `json:"warnings"`
	Result   string        `json:"result"`
}

func write(t *testing.T, e *apptest.Env, method, path, body string, want int) writeBody {
	t.Helper()
	r := e.Do(method, path, body)
	if r.Status != want {
		t.Fatalf("%s %s %s: %d %s", method, path, body, r.Status, r.Body)
	}
	var w writeBody
	r.JSON(t, &w)
	return w
}

func warned(w writeBody) []string {
	var out []string
	for _, x := range w.Warnings {
		out = append(out, x.Type+" "+x.Match+" "+x.CustomerID)
	}
	return out
}

// TestDuplicateDetection: creates, patches and upserts name the live
// customers that share a normalised email, a phone in E.164 or a name and
// company with the result; GET /customers/duplicates lists the clusters,
// newest first, paged and filtered by match.
func TestDuplicateDetection(t *testing.T) {
	e := apptest.StartEmbedded(t)
	coll := "/api/v1/crm/customers"
	a := write(t, e, "POST", coll, `{"name":"Jane Doe","email":"Jane.Doe+crm@gmail.com"}`, 201)
	if a.Warnings != nil {
		t.Fatalf("first customer warned: %v", warned(a))
	}
	b := write(t, e, "POST", coll, `{"name":"J Doe","email":"janedoe@gmail.com"}`, 201)
	if got, want := warned(b), []string{"possible-duplicate email " + a.Data.CustomerID}; !slices.Equal(got, want) {
		t.Fatalf("create: warnings %v, want %v", got, want)
	}
	d := write(t, e, "POST", coll, `{"name":"Phone Later"}`, 201)
	c := write(t, e, "POST", coll, `{"name":"Phone First","phone":"+44 20 7946 0958"}`, 201)
	if c.Warnings != nil {
		t.Fatalf("no duplicate yet: %v", warned(c))
	}
	d = write(t, e, "PATCH", coll+"/"+d.Data.CustomerID, `{"phone":"020 7946 0958","address":{"country":"GB"}}`, 200)
	if got, want := warned(d), []string{"possible-duplicate phone " + c.Data.CustomerID}; !slices.Equal(got, want) {
		t.Fatalf("patch: warnings %v, want %v", got, want)
	}
	write(t, e, "POST", coll, `{"name":"Ann Lee","company":"Acme Corp"}`, 201)
	f := write(t, e, "POST", coll, `{"name":"ann lee","company":"ACME corp."}`, 201)
	if len(f.Warnings) != 1 || f.Warnings[0].Match != "name+company" {
		t.Fatalf("name+company: %v", warned(f))
	}
	u := write(t, e, "PUT", coll+"/by-email/jane.doe@gmail.com", `{"name":"Jane D."}`, 201)
	if got, want := warned(u), []string{"possible-duplicate email " + b.Data.CustomerID, "possible-duplicate email " + a.Data.CustomerID}; !slices.Equal(got, want) {
		t.Fatalf("upsert: warnings %v, want %v", got, want)
	}

	type clusters struct {
		Data []struct {
			Match     string         `json:"match"`
			Key       string         `json:"key"`
			Size      int            `json:"size"`
			Customers []customerBody `json:"customers"`
		} `json:"data"`
		Meta struct {
			Total, Page, PerPage, TotalPages int
		} `json:"meta"`
	}
	list := func(query string) (clusters, []string) {
		t.Helper()
		r := e.Do("GET", coll+"/duplicates"+query, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET duplicates%s: %d %s", query, r.Status, r.Body)
		}
		var cl clusters
		r.JSON(t, &cl)
		var out []string
		for _, x := range cl.Data {
			var names []string
			for _, m := range x.Customers {
				names = append(names, m.Name)
			}
			out = append(out, fmt.Sprintf("%s %s %d %v", x.Match, x.Key, x.Size, names))
		}
		return cl, out
	}
	cl, got := list("")
	want := []string{"email janedoe@gmail.com 3 [Jane D. J Doe Jane Doe]", "name+company ann lee|acme corp 2 [ann lee Ann Lee]",
		"phone +442079460958 2 [Phone First Phone Later]"}
	if !slices.Equal(got, want) || cl.Meta.Total != 3 {
		t.Fatalf("clusters %q (total %d), want %q", got, cl.Meta.Total, want)
	}
	if _, got := list("?match=phone"); !slices.Equal(got, want[2:]) {
		t.Errorf("match=phone: %q", got)
	}
	if cl, got := list("?perPage=1&page=2"); !slices.Equal(got, want[1:2]) || cl.Meta.TotalPages != 3 {
		t.Errorf("page 2 of 1: %q %+v", got, cl.Meta)
	}
	for _, q := range []string{"?match=name", "?perPage=0", "?page=x", "?sort=name", "?match=email&match=phone"} {
		if r := e.Do("GET", coll+"/duplicates"+q, nil); r.Status != http.StatusBadRequest {
			t.Errorf("GET duplicates%s: %d %s", q, r.Status, r.Body)
		}
	}
	// A deleted customer leaves its cluster; merged ones too.
	if r := e.Do("DELETE", coll+"/"+f.Data.CustomerID, nil); r.Status != http.StatusOK {
		t.Fatal(r.Status)
	}
	if r := e.Do("POST", coll+"/"+a.Data.CustomerID+"/merge", map[string]any{"customerIds": []string{b.Data.CustomerID}}); r.Status != http.StatusOK {
		t.Fatalf("merge: %d %s", r.Status, r.Body)
	}
	if _, got := list(""); !slices.Equal(got, []string{"email janedoe@gmail.com 2 [Jane D. Jane Doe]", want[2]}) {
		t.Errorf("after a delete and a merge: %q", got)
	}
}
