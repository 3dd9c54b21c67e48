package app_test

import (
	"net/http"
	"sync"
	"testing"

	"crm/internal/apptest"
)

func TestIdempotentCreate(t *testing.T) {
	dir := t.TempDir()
	cfg := apptest.Config(t, dir)
	e := apptest.Start(t, cfg)
	body := `{"name":"Idem Potent","email":"idem@example.com"}`

	first := e.Do("POST", "/api/v1/crm/customers", body, "Idempotency-Key", "key-1")
	if first.Status != http.StatusCreated || first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %v %s", first.Status, first.Header, first.Body)
	}
	var c1 envelope
	first.JSON(t, &c1)

	// Sequential retry (whitespace differs): same customer, no new event.
	again := e.Do("POST", "/api/v1/crm/customers", "{ \"name\": \"Idem Potent\",\n \"email\": \"idem@example.com\" }", "Idempotency-Key", "key-1")
	var c2 envelope
	again.JSON(t, &c2)
	if again.Status != http.StatusCreated || c2.Data.CustomerID != c1.Data.CustomerID || c2.Data.CustomerCode != c1.Data.CustomerCode ||
		again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %s", again.Status, again.Body)
	}
	// Same key, different body: 422, nothing appended.
	if r := e.Do("POST", "/api/v1/crm/customers", `{"name":"Someone Else"}`, "Idempotency-Key", "key-1"); r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("reuse with another body: %d %s", r.Status, r.Body)
	}
	// Concurrent duplicates of a new key: one customer.
	var wg sync.WaitGroup
	ids := make(chan string, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.Do("POST", "/api/v1/crm/customers", `{"name":"Concurrent"}`, "Idempotency-Key", "key-2")
			if r.Status != http.StatusCreated {
				t.Errorf("concurrent: %d %s", r.Status, r.Body)
				return
			}
			var c envelope
			r.JSON(t, &c)
			ids <- c.Data.CustomerID
		}()
	}
	wg.Wait()
	close(ids)
	var concurrentID string
	for id := range ids {
		if concurrentID != "" && id != concurrentID {
			t.Fatalf("concurrent retries created two customers: %s and %s", concurrentID, id)
		}
		concurrentID = id
	}
	// The same key of another user is another key.
	e2 := *e
	e2.Token = e.TokenFor("55555555-5555-4555-8555-555555555555", "user")
	if r := e2.Do("POST", "/api/v1/crm/customers", body, "Idempotency-Key", "key-1"); r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("another user's key replayed: %s", r.Body)
	}
	if r := e.Do("POST", "/api/v1/crm/customers", body, "Idempotency-Key", ""); r.Status != http.StatusCreated {
		t.Fatalf("no key: %d", r.Status)
	}
	if n := len(e.StreamMessages()); n != 4 {
		t.Fatalf("stream has %d events, want 4", n)
	}

	// After a restart (and from another replica) the key still holds.
	e.Stop()
	e = apptest.Start(t, cfg)
	r := e.Do("POST", "/api/v1/crm/customers", body, "Idempotency-Key", "key-1")
	var c3 envelope
	r.JSON(t, &c3)
	if r.Status != http.StatusCreated || c3.Data.CustomerID != c1.Data.CustomerID || c3.Data.CustomerCode != c1.Data.CustomerCode {
		t.Fatalf("after restart: %d %s", r.Status, r.Body)
	}
	replica := apptest.Config(t, t.TempDir())
	replica.NATSURL = e.App.NATSURL
	e3 := apptest.Start(t, replica)
	if r := e3.Do("POST", "/api/v1/crm/customers", body, "Idempotency-Key", "key-1"); r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("other replica: %d %s", r.Status, r.Body)
	}
	if n := len(e.StreamMessages()); n != 4 {
		t.Fatalf("stream has %d events after retries, want 4", n)
	}
}

// TestIdempotentReplayAfterChange: a replay after the customer was changed
// and deleted answers what the first request answered (issue 12, item 6):
// the customer as created, version 1, 201.
func TestIdempotentReplayAfterChange(t *testing.T) {
	e := apptest.StartEmbedded(t)
	body := `{"name":"Replay Me","email":"replay@example.com"}`
	first := e.Do("POST", "/api/v1/crm/customers", body, "Idempotency-Key", "replay-1")
	if first.Status != http.StatusCreated {
		t.Fatalf("first: %d %s", first.Status, first.Body)
	}
	var c envelope
	first.JSON(t, &c)
	id := c.Data.CustomerID
	if r := e.Do("PATCH", "/api/v1/crm/customers/"+id, `{"name":"Renamed"}`); r.Status != http.StatusOK {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	if r := e.Do("DELETE", "/api/v1/crm/customers/"+id, nil); r.Status != http.StatusOK {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	events := len(e.StreamMessages())
	r := e.Do("POST", "/api/v1/crm/customers", body, "Idempotency-Key", "replay-1")
	var again envelope
	r.JSON(t, &again)
	if r.Status != http.StatusCreated || r.Header.Get("Idempotent-Replayed") != "true" || r.Header.Get("ETag") != `"1"` ||
		again.Data.CustomerID != id || again.Data.Name != "Replay Me" || again.Data.CustomerCode != c.Data.CustomerCode ||
		r.Header.Get("X-Stream-Sequence") != first.Header.Get("X-Stream-Sequence") {
		t.Fatalf("replay after patch and delete: %d %v %s; want the original 201 (ETag \"1\", name Replay Me)", r.Status, r.Header, r.Body)
	}
	if n := len(e.StreamMessages()); n != events {
		t.Fatalf("the replay appended %d events", n-events)
	}
}
