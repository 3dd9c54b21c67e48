package app_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

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
	// Every patch is one version: the customer reaches version n+1 (in
	// this process's read model, which may trail the replica's last writes
	// for a moment: each process reads its own writes, not the other's).
	want := fmt.Sprintf(`"%d"`, n+1)
	var got string
	apptest.Eventually(t, 10*time.Second, "version "+want, func() bool {
		got = e.Do("GET", "/api/v1/crm/customers/"+c.CustomerID, nil).Header.Get("ETag")
		return got == want
	})
	if events := len(e.StreamMessages()); events != 1+n {
		t.Fatalf("stream has %d events, want the create and %d patches", events, n)
	}
}
