package app_test

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"crm/internal/apptest"
	"crm/internal/audit"
)

type historyBody struct {
	Data []audit.Entry `json:"data"`
	Meta struct {
		Total int64 `json:"total"`
	} `json:"meta"`
}

func TestHistoryAndAsOf(t *testing.T) {
	e := apptest.StartEmbedded(t)
	alice, bob := "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
	adminTok := e.Token
	e.Token = e.TokenFor(alice, "user")
	before := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	c := create(t, e, `{"name":"Audit Me","email":"a@example.com","tags":["one"]}`)
	var times []time.Time
	times = append(times, time.Now().UTC())
	time.Sleep(5 * time.Millisecond)
	e.Token = e.TokenFor(bob, "user")
	patches := []string{`{"status":"active","company":"Acme"}`, `{"email":null,"address":{"city":"Oslo"}}`, `{"tags":[]}`}
	for _, p := range patches {
		if r := e.Do("PATCH", "/api/v1/crm/customers/"+c.CustomerID, p, "X-Request-ID", "audit-patch"); r.Status != http.StatusOK {
			t.Fatalf("patch: %d %s", r.Status, r.Body)
		}
		times = append(times, time.Now().UTC())
		time.Sleep(5 * time.Millisecond)
	}
	if r := e.Do("DELETE", "/api/v1/crm/customers/"+c.CustomerID, nil); r.Status != http.StatusOK {
		t.Fatal(r.Status)
	}
	times = append(times, time.Now().UTC())

	// A user without crm.audit is refused.
	if r := e.Do("GET", "/api/v1/crm/customers/"+c.CustomerID+"/history", nil); r.Status != http.StatusForbidden {
		t.Fatalf("history as user: %d", r.Status)
	}
	e.Token = adminTok
	var h historyBody
	r := e.Do("GET", "/api/v1/crm/customers/"+c.CustomerID+"/history", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("history: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &h)
	if h.Meta.Total != 5 || len(h.Data) != 5 {
		t.Fatalf("history has %d entries: %s", h.Meta.Total, r.Body)
	}
	wantKinds := []string{"created", "updated", "updated", "updated", "deleted"}
	wantActors := []string{alice, bob, bob, bob, bob}
	for i, en := range h.Data {
		if en.Kind != wantKinds[i] || en.Actor != wantActors[i] || en.Version != uint64(i+1) || en.EventID == "" {
			t.Fatalf("entry %d: %+v", i, en)
		}
	}
	ch := func(i int) []audit.Change { return h.Data[i].Changes }
	want1 := []audit.Change{{Field: "company", Old: nil, New: "Acme"}, {Field: "status", Old: "lead", New: "active"}}
	want2 := []audit.Change{{Field: "email", Old: "a@example.com", New: nil}, {Field: "address.city", Old: nil, New: "Oslo"}}
	want3 := []audit.Change{{Field: "tags", Old: []any{"one"}, New: []any{}}}
	for i, want := range [][]audit.Change{want1, want2, want3} {
		if !reflect.DeepEqual(ch(i+1), want) {
			t.Fatalf("entry %d changes %#v, want %#v", i+1, ch(i+1), want)
		}
	}
	if h.Data[1].CorrelationID != "audit-patch" {
		t.Fatalf("correlation id %q", h.Data[1].CorrelationID)
	}
	// Paging.
	e.Do("GET", "/api/v1/crm/customers/"+c.CustomerID+"/history?page=2&perPage=2", nil).JSON(t, &h)
	if len(h.Data) != 2 || h.Data[0].Version != 3 {
		t.Fatalf("history page 2: %+v", h.Data)
	}

	// asOf at each point.
	asOf := func(at time.Time) (int, envelope) {
		var env envelope
		r := e.Do("GET", "/api/v1/crm/customers/"+c.CustomerID+"?asOf="+at.Format(time.RFC3339Nano), nil)
		if r.Status == http.StatusOK {
			r.JSON(t, &env)
		}
		return r.Status, env
	}
	if s, _ := asOf(before); s != http.StatusNotFound {
		t.Fatalf("asOf before creation: %d", s)
	}
	checks := []func(envelope) bool{
		func(v envelope) bool { return v.Data.Status == "lead" && *v.Data.Email == "a@example.com" },
		func(v envelope) bool { return v.Data.Status == "active" && *v.Data.Company == "Acme" },
		func(v envelope) bool { return v.Data.Email == nil && *v.Data.Address["city"] == "Oslo" },
		func(v envelope) bool { return len(v.Data.Tags) == 0 && v.Data.Status == "active" },
	}
	for i, check := range checks {
		s, v := asOf(times[i])
		if s != http.StatusOK || !check(v) {
			t.Fatalf("asOf point %d: %d %+v", i, s, v.Data)
		}
	}
	if s, _ := asOf(times[4]); s != http.StatusNotFound {
		t.Fatalf("asOf after deletion: %d", s)
	}
	// The createdAt a response shows (milliseconds) names the creation,
	// though the event keeps nanoseconds: an asOf covers the last unit it
	// is written in.
	var at envelope
	r = e.Do("GET", "/api/v1/crm/customers/"+c.CustomerID+"?asOf="+c.CreatedAt, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("asOf the createdAt shown (%s): %d %s", c.CreatedAt, r.Status, r.Body)
	}
	if r.JSON(t, &at); at.Data.Status != "lead" || r.Header.Get("ETag") != `"1"` {
		t.Fatalf("asOf the createdAt shown: %+v", at.Data)
	}
	if h.Data[0].Time.Nanosecond()%int(time.Millisecond) == 0 && h.Data[1].Time.Nanosecond()%int(time.Millisecond) == 0 {
		t.Errorf("event times look millisecond-truncated: %v, %v", h.Data[0].Time, h.Data[1].Time)
	}
	if r := e.Do("GET", "/api/v1/crm/customers/"+c.CustomerID+"?asOf=yesterday", nil); r.Status != http.StatusBadRequest {
		t.Fatalf("bad asOf: %d", r.Status)
	}
}
