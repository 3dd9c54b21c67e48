package app_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"crm/internal/apptest"
)

// TestConcurrentPatchesWithoutIfMatch: a client that asks for no
// precondition gets 200 for each of many concurrent merge-patches of one
// customer, through two API processes sharing the stream, and every patch
// is one event (issue 12, item 3: 66 of 100 were 409 before).
func TestConcurrentPatchesWithoutIfMatch(t *testing.T) {
	e := apptest.StartEmbedded(t)
	replicaCfg := apptest.Config(t, t.TempDir())
	replicaCfg.NATSURL = e.App.NATSURL
	replica := apptest.Start(t, replicaCfg)
	c := create(t, e, `{"name":"Hot Customer"}`)

	const n = 100
	var wg sync.WaitGroup
	statuses := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			to := e
			if i%2 == 1 {
				to = replica
			}
			r := to.Do("PATCH", "/api/v1/crm/customers/"+c.CustomerID, fmt.Sprintf(`{"notes":"patch %d"}`, i))
			if r.Status != http.StatusOK {
				statuses <- fmt.Sprintf("%d %s", r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	close(statuses)
	failed := 0
	for s := range statuses {
		if failed++; failed <= 3 {
			t.Errorf("patch: %s", s)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent patches without If-Match failed", failed, n)
	}
	r := e.Do("GET", "/api/v1/crm/customers/"+c.CustomerID, nil)
	if r.Header.Get("ETag") != fmt.Sprintf(`"%d"`, n+1) {
		t.Fatalf("after %d patches: ETag %s, want \"%d\"", n, r.Header.Get("ETag"), n+1)
	}
}
