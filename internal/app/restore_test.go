package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"crm/internal/apptest"
)

// TestRestore: a deleted customer comes back through POST …/restore with its
// code and the state it had when deleted, in get, list (with its tags) and
// search; the trash lists it while it is deleted, for those who may restore;
// the errors are 404, 409, 412, 403 and 400 with nothing appended.
func TestRestore(t *testing.T) {
	e := apptest.StartEmbedded(t)
	keep := create(t, e, `{"name":"Kept Customer"}`)
	c := create(t, e, `{"name":"Restorable Ltd","email":"r@example.com","tags":["vip","north"],"type":"business"}`)
	one := "/api/v1/crm/customers/" + c.CustomerID
	if r := e.Do("PATCH", one, `{"status":"active","company":"Acme"}`); r.Status != http.StatusOK {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	var before envelope
	e.Do("GET", one, nil).JSON(t, &before)
	if r := e.Do("DELETE", one, nil); r.Status != http.StatusOK || r.Header.Get("ETag") != `"3"` {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	sign := func(perms ...string) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "v", "exp": 4102444800, "permissions": perms}).
			SignedString([]byte(apptest.Secret))
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}

	// The trash.
	var trash listBody
	r := e.Do("GET", "/api/v1/crm/customers?deleted=only&sort=name", nil)
	if r.JSON(t, &trash); r.Status != http.StatusOK || trash.Meta.Total != 1 || trash.Data[0].CustomerID != c.CustomerID {
		t.Fatalf("trash: %d %s", r.Status, r.Body)
	}
	if r := e.Do("GET", "/api/v1/crm/customers?deleted=only", nil, "Authorization", sign("crm.view")); r.Status != http.StatusForbidden {
		t.Fatalf("trash without crm.delete: %d", r.Status)
	}
	for _, bad := range []string{"?deleted=yes", "?deleted=only&status=active", "?deleted=only&tag=vip"} {
		if r := e.Do("GET", "/api/v1/crm/customers"+bad, nil); r.Status != http.StatusBadRequest {
			t.Errorf("GET %s: %d %s", bad, r.Status, r.Body)
		}
	}
	if r := e.Do("GET", "/api/v1/crm/customers/search?q=restorable&deleted=only", nil); r.Status != http.StatusBadRequest {
		t.Errorf("search of the trash: %d", r.Status)
	}

	// Refused restores append nothing.
	events := len(e.StreamMessages())
	for _, tc := range []struct {
		name, path string
		body       any
		headers    []string
		status     int
	}{
		{"a live customer", "/api/v1/crm/customers/" + keep.CustomerID + "/restore", nil, nil, http.StatusConflict},
		{"an unknown id", "/api/v1/crm/customers/6f1b6c36-5b7e-4b43-9d3a-3f4f2a7f0a11/restore", nil, nil, http.StatusNotFound},
		{"a malformed id", "/api/v1/crm/customers/C001/restore", nil, nil, http.StatusBadRequest},
		{"a stale If-Match", one + "/restore", nil, []string{"If-Match", `"2"`}, http.StatusPreconditionFailed},
		{"without crm.delete", one + "/restore", nil, []string{"Authorization", sign("crm.view", "crm.edit")}, http.StatusForbidden},
		{"with a body", one + "/restore", `{"name":"x"}`, nil, http.StatusBadRequest},
	} {
		if r := e.Do("POST", tc.path, tc.body, tc.headers...); r.Status != tc.status || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("restore %s: %d %s, want %d", tc.name, r.Status, r.Body, tc.status)
		}
	}
	if n := len(e.StreamMessages()); n != events {
		t.Fatalf("refused restores appended %d events", n-events)
	}

	// The restore.
	r = e.Do("POST", one+"/restore", nil, "If-Match", `"3"`)
	var got envelope
	if r.JSON(t, &got); r.Status != http.StatusOK || r.Header.Get("ETag") != `"4"` || r.Header.Get("X-Read-Model") != "current" ||
		got.Message != "Customer restored successfully" {
		t.Fatalf("restore: %d %v %s", r.Status, r.Header, r.Body)
	}
	want := before.Data
	if got.Data.UpdatedAt == want.UpdatedAt {
		t.Errorf("updatedAt did not move: %s", got.Data.UpdatedAt)
	}
	got.Data.UpdatedAt, want.UpdatedAt = "", ""
	if mustJSON(got.Data) != mustJSON(want) {
		t.Fatalf("restored customer\n%s\nwant the state at deletion\n%s", mustJSON(got.Data), mustJSON(want))
	}
	if g := e.Do("GET", one, nil); g.Status != http.StatusOK || g.Header.Get("ETag") != `"4"` {
		t.Fatalf("get after restore: %d", g.Status)
	}
	var l listBody
	e.Do("GET", "/api/v1/crm/customers?tag=north", nil).JSON(t, &l)
	if l.Meta.Total != 1 || l.Data[0].CustomerCode != c.CustomerCode {
		t.Fatalf("list by tag after restore: %+v", l)
	}
	e.Do("GET", "/api/v1/crm/customers/search?q=restorable", nil).JSON(t, &l)
	if l.Meta.Total != 1 {
		t.Fatalf("search after restore: %+v", l)
	}
	e.Do("GET", "/api/v1/crm/customers?deleted=only", nil).JSON(t, &trash)
	if trash.Meta.Total != 0 {
		t.Fatalf("the trash after restore: %+v", trash)
	}
	var h historyBody
	e.Do("GET", one+"/history", nil).JSON(t, &h)
	if len(h.Data) != 4 || h.Data[3].Kind != "restored" || h.Data[3].Version != 4 || !strings.HasSuffix(h.Data[3].Type, ".restored.v1") {
		t.Fatalf("history: %+v", h.Data)
	}
	// It lives on: changed and deleted again.
	if r := e.Do("PATCH", one, `{"notes":"back"}`); r.Status != http.StatusOK {
		t.Fatalf("patch after restore: %d", r.Status)
	}
	if r := e.Do("DELETE", one, nil); r.Status != http.StatusOK {
		t.Fatalf("delete after restore: %d", r.Status)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
