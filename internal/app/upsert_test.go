package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"crm/internal/app"
	"crm/internal/apptest"
)

type upsertBody struct {
	Data    customerBody `json:"data"`
	Message string       `json:"message"`
	Result  string       `json:"result"`
}

func upsert(t *testing.T, e *apptest.Env, email, body string, want int) upsertBody {
	t.Helper()
	r := e.Do("PUT", "/api/v1/crm/customers/by-email/"+email, body)
	var u upsertBody
	if r.Status != want {
		t.Fatalf("PUT by-email %s %s: %d %s, want %d", email, body, r.Status, r.Body, want)
	}
	if r.Status < 300 {
		r.JSON(t, &u)
	}
	return u
}

// TestUpsertByEmail: the first upsert creates, the next ones merge-patch
// (or change nothing); the email's case does not matter; a claim whose
// holder lost the email is taken over; customers from before claims are
// found, and two of them are a 409 that writes nothing.
func TestUpsertByEmail(t *testing.T) {
	e := apptest.StartEmbedded(t)
	u := upsert(t, e, "Jane@Example.com", `{"name":"Jane Doe","company":"Acme"}`, 201)
	if u.Result != "created" || *u.Data.Email != "Jane@Example.com" || u.Data.CustomerCode != "C001" {
		t.Fatalf("create: %+v", u)
	}
	id := u.Data.CustomerID
	if u := upsert(t, e, "jane@example.com", `{"status":"active"}`, 200); u.Result != "updated" || u.Data.CustomerID != id || u.Data.Status != "active" {
		t.Fatalf("update: %+v", u)
	}
	if u := upsert(t, e, "JANE@example.com", `{"status":"active"}`, 200); u.Result != "unchanged" || u.Data.CustomerID != id {
		t.Fatalf("unchanged: %+v", u)
	}
	for _, tc := range []struct{ email, body string }{
		{"not-an-email", `{"name":"x"}`},
		{"new@example.com", `{"company":"no name"}`},
		{"jane@example.com", `{"email":"other@example.com"}`},
		{"jane@example.com", `{"email":null}`},
	} {
		if r := e.Do("PUT", "/api/v1/crm/customers/by-email/"+tc.email, tc.body); r.Status != http.StatusBadRequest {
			t.Errorf("PUT %s %s: %d %s", tc.email, tc.body, r.Status, r.Body)
		}
	}
	if r := e.Do("PUT", "/api/v1/crm/customers/by-email/jane@example.com", `{"notes":"x"}`, "If-Match", `"1"`); r.Status != http.StatusPreconditionFailed {
		t.Errorf("stale If-Match: %d", r.Status)
	}

	// The holder's email changes: the claim is stale, the next upsert
	// creates a new customer and takes the claim over.
	if r := e.Do("PATCH", "/api/v1/crm/customers/"+id, `{"email":"jane.doe@example.com"}`); r.Status != http.StatusOK {
		t.Fatal(r.Status)
	}
	if u := upsert(t, e, "jane@example.com", `{"name":"Another Jane"}`, 201); u.Data.CustomerID == id {
		t.Fatalf("a stale claim was followed: %+v", u)
	} else if r := e.Do("DELETE", "/api/v1/crm/customers/"+u.Data.CustomerID, nil); r.Status != http.StatusOK {
		t.Fatal(r.Status)
	}
	// Its holder deleted: a new one again.
	upsert(t, e, "jane@example.com", `{"name":"Third Jane"}`, 201)

	// Customers created by POST (no claim): one is found and updated; two
	// are ambiguous.
	legacy := create(t, e, `{"name":"Legacy One","email":"legacy@example.com"}`)
	if u := upsert(t, e, "legacy@example.com", `{"status":"prospect"}`, 200); u.Data.CustomerID != legacy.CustomerID || u.Result != "updated" {
		t.Fatalf("legacy customer: %+v", u)
	}
	a := create(t, e, `{"name":"Twin A","email":"twin@example.com"}`)
	b := create(t, e, `{"name":"Twin B","email":"Twin@example.com"}`)
	before := len(e.StreamMessages())
	r := e.Do("PUT", "/api/v1/crm/customers/by-email/twin@example.com", `{"notes":"which one?"}`)
	if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), a.CustomerID) || !strings.Contains(string(r.Body), b.CustomerID) {
		t.Fatalf("two matches: %d %s", r.Status, r.Body)
	}
	if n := len(e.StreamMessages()); n != before {
		t.Fatalf("an ambiguous upsert appended %d messages", n-before)
	}
	// Claims are skipped by the projector, which stays at the stream's end.
	apptest.Eventually(t, 5*time.Second, "ready", func() bool {
		status, _ := readyChecks(t, e)
		return status == http.StatusOK
	})
	msgs := e.StreamMessages()
	if st := e.App.Projector().Status(); st.Applied != msgs[len(msgs)-1].Sequence || st.Err != nil {
		t.Fatalf("projector at %d (%v), stream at %d", st.Applied, st.Err, msgs[len(msgs)-1].Sequence)
	}
}

// replicaPair starts two API processes on one stream and one read model:
// the owner runs the projector, the replica waits on the owner's
// checkpoint.
func replicaPair(t *testing.T) (owner, replica *apptest.Env) {
	t.Helper()
	dir := t.TempDir()
	owner = apptest.Start(t, apptest.Config(t, dir))
	cfg := apptest.Config(t, dir)
	cfg.NATSURL = owner.App.NATSURL
	replica = apptest.Start(t, cfg, func(o *app.Options) { o.NoProjector = true })
	return owner, replica
}

// TestConcurrentUpsertsAcrossReplicas: concurrent upserts of one new email,
// through two API processes, create one customer; every other one updates
// it (or finds nothing to change).
func TestConcurrentUpsertsAcrossReplicas(t *testing.T) {
	owner, replica := replicaPair(t)
	for round := range 5 {
		email := fmt.Sprintf("race%d@example.com", round)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			created = map[string]int{}
			ids     = map[string]bool{}
		)
		for i := range 12 {
			e := []*apptest.Env{owner, replica}[i%2]
			wg.Go(func() {
				r := e.Do("PUT", "/api/v1/crm/customers/by-email/"+email, fmt.Sprintf(`{"name":"Racer","notes":"from %d"}`, i))
				if r.Status != http.StatusCreated && r.Status != http.StatusOK {
					t.Errorf("upsert %d: %d %s", i, r.Status, r.Body)
					return
				}
				var u upsertBody
				r.JSON(t, &u)
				mu.Lock()
				created[u.Result]++
				ids[u.Data.CustomerID] = true
				mu.Unlock()
			})
		}
		wg.Wait()
		if created["created"] != 1 || len(ids) != 1 {
			t.Fatalf("round %d: outcomes %v, customers %v", round, created, ids)
		}
		var l listBody
		owner.Do("GET", "/api/v1/crm/customers/search?q="+email, nil).JSON(t, &l)
		if l.Meta.Total != 1 {
			t.Fatalf("round %d: %d customers with %s", round, l.Meta.Total, email)
		}
	}
}
