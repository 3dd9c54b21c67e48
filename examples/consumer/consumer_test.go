package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"crm/internal/apptest"
)

func randomCommands(t *testing.T, e *apptest.Env, rnd *rand.Rand, ids *[]string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		switch op := rnd.IntN(10); {
		case op < 4 || len(*ids) == 0:
			body := fmt.Sprintf(`{"name":"Person %d","email":"p%d@example.com","tags":["t%d"],"address":{"city":"City %d"}}`, i, i, i%3, i%5)
			r := e.Do("POST", "/api/v1/crm/customers", body)
			if r.Status != http.StatusCreated {
				t.Fatalf("create: %d %s", r.Status, r.Body)
			}
			var env struct{ Data struct{ CustomerID string } }
			r.JSON(t, &env)
			*ids = append(*ids, env.Data.CustomerID)
		case op < 9:
			id := (*ids)[rnd.IntN(len(*ids))]
			patches := []string{`{"status":"active"}`, `{"email":null}`, `{"address":{"street":"Main 1"}}`, `{"address":null}`, `{"tags":["x","y"]}`, `{"notes":"n","company":"Co"}`}
			e.Do("PATCH", "/api/v1/crm/customers/"+id, patches[rnd.IntN(len(patches))])
		default:
			id := (*ids)[rnd.IntN(len(*ids))]
			e.Do("DELETE", "/api/v1/crm/customers/"+id, nil)
		}
	}
}

// runUntilCaughtUp runs the consumer until its copy has reached the stream's
// last sequence, then stops it (as a restart would).
func runUntilCaughtUp(t *testing.T, e *apptest.Env, statePath string) {
	t.Helper()
	last := e.StreamMessages()
	want := last[len(last)-1].Sequence
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"--nats", e.App.NATSURL, "--state", statePath}) }()
	apptest.Eventually(t, 30*time.Second, "consumer caught up", func() bool {
		s, err := load(statePath)
		return err == nil && s.LastSeq >= want
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestConsumerCopyEqualsReadModel(t *testing.T) {
	e := apptest.StartEmbedded(t)
	statePath := filepath.Join(t.TempDir(), "copy", "customers.json")
	rnd := rand.New(rand.NewPCG(11, 12))
	var ids []string
	randomCommands(t, e, rnd, &ids, 120)
	runUntilCaughtUp(t, e, statePath)
	randomCommands(t, e, rnd, &ids, 120) // while the consumer is down
	runUntilCaughtUp(t, e, statePath)    // resumes from its durable consumer

	copyState, err := load(statePath)
	if err != nil {
		t.Fatal(err)
	}
	readModel := map[string]map[string]any{}
	for page := 1; ; page++ {
		var l struct{ Data []map[string]any }
		e.Do("GET", fmt.Sprintf("/api/v1/crm/customers?perPage=100&page=%d", page), nil).JSON(t, &l)
		for _, c := range l.Data {
			if a, ok := c["address"].(map[string]any); ok { // events omit unset sub-fields
				for k, v := range a {
					if v == nil {
						delete(a, k)
					}
				}
			}
			readModel[c["customerId"].(string)] = c
		}
		if len(l.Data) < 100 {
			break
		}
	}
	if len(copyState.Customers) != len(readModel) || len(readModel) == 0 {
		t.Fatalf("copy has %d customers, read model %d", len(copyState.Customers), len(readModel))
	}
	for id, c := range copyState.Customers {
		b, _ := json.Marshal(c)
		var got map[string]any
		json.Unmarshal(b, &got)
		delete(got, "version")
		for _, m := range []map[string]any{got, readModel[id]} {
			for _, k := range []string{"createdAt", "updatedAt"} { // compare instants, not spellings
				if ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m[k])); err == nil {
					m[k] = ts.UTC().Format(time.RFC3339Nano)
				}
			}
		}
		if !reflect.DeepEqual(got, readModel[id]) {
			t.Fatalf("customer %s differs:\n copy       %v\n read model %v", id, got, readModel[id])
		}
		r := e.Do("GET", "/api/v1/crm/customers/"+id, nil)
		if r.Header.Get("ETag") != fmt.Sprintf(`"%d"`, c.Version) {
			t.Fatalf("customer %s version %d, read model ETag %s", id, c.Version, r.Header.Get("ETag"))
		}
	}
}
