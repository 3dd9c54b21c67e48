package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"crm/internal/apptest"
	"crm/internal/events"
)

// randomCommands creates, patches, deletes and restores customers at random;
// deleted holds the ids deleted and not restored since.
func randomCommands(t *testing.T, e *apptest.Env, rnd *rand.Rand, ids, deleted *[]string, n int) {
	t.Helper()
	var contacts []string
	for i := 0; i < n; i++ {
		if len(*ids) > 0 && rnd.IntN(6) == 0 {
			// Links to contacts: created, changed, ended (deleting a
			// contact or a customer ends them too).
			if len(contacts) < 3 {
				r := e.Do("POST", "/api/v1/crm/contacts", fmt.Sprintf(`{"name":"Contact %d"}`, i))
				var env struct{ Data struct{ ContactID string } }
				r.JSON(t, &env)
				contacts = append(contacts, env.Data.ContactID)
			}
			path := "/api/v1/crm/customers/" + (*ids)[rnd.IntN(len(*ids))] + "/contacts/" + contacts[rnd.IntN(len(contacts))]
			switch rnd.IntN(4) {
			case 0:
				e.Do("DELETE", path, nil)
			case 1:
				k := rnd.IntN(len(contacts))
				if r := e.Do("DELETE", "/api/v1/crm/contacts/"+contacts[k], nil); r.Status == http.StatusOK {
					contacts = append(contacts[:k], contacts[k+1:]...)
				}
			default:
				e.Do("PUT", path, fmt.Sprintf(`{"role":"r%d","primary":%t}`, rnd.IntN(3), rnd.IntN(2) == 0))
			}
			continue
		}
		switch op := rnd.IntN(10); {
		case op < 4 || len(*ids) == 0:
			body := fmt.Sprintf(`{"name":"Person %d","email":"p%d@example.com","tags":["t%d"],"address":{"city":"City %d"},"externalId":"X-%d"}`,
				i, i, i%3, i%5, rnd.Int64())
			r := e.Do("POST", "/api/v1/crm/customers", body)
			if r.Status != http.StatusCreated {
				t.Fatalf("create: %d %s", r.Status, r.Body)
			}
			var env struct{ Data struct{ CustomerID string } }
			r.JSON(t, &env)
			*ids = append(*ids, env.Data.CustomerID)
		case op == 8 && len(*ids) > 3:
			// A merge of two live customers, or an unmerge.
			a, b := (*ids)[rnd.IntN(len(*ids))], (*ids)[rnd.IntN(len(*ids))]
			if rnd.IntN(3) == 0 {
				e.Do("POST", "/api/v1/crm/customers/"+a+"/unmerge", map[string]string{"customerId": b})
			} else {
				e.Do("POST", "/api/v1/crm/customers/"+a+"/merge", map[string]any{"customerIds": []string{b}})
			}
		case op < 9:
			id := (*ids)[rnd.IntN(len(*ids))]
			patches := []string{`{"status":"active"}`, `{"email":null}`, `{"address":{"street":"Main 1"}}`, `{"address":null}`, `{"tags":["x","y"]}`, `{"notes":"n","company":"Co"}`, `{"externalId":null}`}
			e.Do("PATCH", "/api/v1/crm/customers/"+id, patches[rnd.IntN(len(patches))])
		case len(*deleted) > 0 && rnd.IntN(2) == 0:
			i := rnd.IntN(len(*deleted))
			if r := e.Do("POST", "/api/v1/crm/customers/"+(*deleted)[i]+"/restore", nil); r.Status != http.StatusOK {
				t.Fatalf("restore: %d %s", r.Status, r.Body)
			}
			*deleted = append((*deleted)[:i], (*deleted)[i+1:]...)
		default:
			id := (*ids)[rnd.IntN(len(*ids))]
			if r := e.Do("DELETE", "/api/v1/crm/customers/"+id, nil); r.Status == http.StatusOK {
				*deleted = append(*deleted, id)
			}
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
	var ids, deleted []string
	randomCommands(t, e, rnd, &ids, &deleted, 120)
	runUntilCaughtUp(t, e, statePath)
	randomCommands(t, e, rnd, &ids, &deleted, 120) // while the consumer is down
	runUntilCaughtUp(t, e, statePath)              // resumes from its durable consumer

	copyState, err := load(statePath)
	if err != nil {
		t.Fatal(err)
	}
	restores := 0
	for _, m := range e.StreamMessages() {
		if strings.HasSuffix(m.Subject, ".restored") {
			restores++
		}
	}
	if restores == 0 {
		t.Fatal("the random commands restored no customer")
	}
	if len(copyState.Merged) == 0 {
		t.Fatal("the random commands left no customer merged")
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
	linked := 0
	for id, c := range copyState.Customers {
		b, _ := json.Marshal(c)
		var got map[string]any
		json.Unmarshal(b, &got)
		delete(got, "version")
		// The links: the copy's against the read model's.
		var links struct {
			Data []struct {
				ContactID string `json:"contactId"`
				Link
			}
		}
		e.Do("GET", "/api/v1/crm/customers/"+id+"/contacts", nil).JSON(t, &links)
		want := map[string]Link{}
		for _, l := range links.Data {
			want[l.ContactID] = l.Link
		}
		if len(want) > 0 {
			linked++
		}
		if len(c.Contacts) > 0 || len(want) > 0 {
			if !reflect.DeepEqual(c.Contacts, want) {
				t.Fatalf("customer %s links differ:\n copy       %+v\n read model %+v", id, c.Contacts, want)
			}
		}
		delete(got, "contacts")
		for _, m := range []map[string]any{got, readModel[id]} {
			// Compare instants, not spellings, to the millisecond: the
			// events carry nanoseconds, the REST view shows milliseconds.
			for _, k := range []string{"createdAt", "updatedAt"} {
				if ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m[k])); err == nil {
					m[k] = ts.UTC().Truncate(time.Millisecond).Format(time.RFC3339Nano)
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
	if linked == 0 {
		t.Fatal("the random commands left no customer linked to a contact")
	}
	// The contacts: the live ones, with their names and linked customers.
	var contacts struct {
		Data []struct{ ContactID, Name string }
	}
	e.Do("GET", "/api/v1/crm/contacts?perPage=100", nil).JSON(t, &contacts)
	if len(contacts.Data) == 0 || len(copyState.Contacts) != len(contacts.Data) {
		t.Fatalf("copy has %d contacts, read model %d", len(copyState.Contacts), len(contacts.Data))
	}
	for _, k := range contacts.Data {
		var name string
		json.Unmarshal(copyState.Contacts[k.ContactID]["name"], &name)
		var custs linkList
		e.Do("GET", "/api/v1/crm/contacts/"+k.ContactID+"/customers", nil).JSON(t, &custs)
		var ids []string
		json.Unmarshal(copyState.Contacts[k.ContactID]["customers"], &ids)
		live := 0 // a customer merged into another keeps its links, hidden with it
		for _, id := range ids {
			if copyState.Customers[id] != nil {
				live++
			}
		}
		if name != k.Name || live != custs.Meta.Total {
			t.Fatalf("contact %s: copy %q with %d live customers, read model %q with %d", k.ContactID, name, live, k.Name, custs.Meta.Total)
		}
	}
}

// TestConsumerHandlesEveryRegisteredType: the example reads every event
// type the service writes (the event registry: customers', contacts',
// activities'); a kind added to the registry without teaching the example
// fails here.
func TestConsumerHandlesEveryRegisteredType(t *testing.T) {
	for _, typ := range events.Types() {
		if handlers[typ] == nil {
			t.Errorf("examples/consumer does not handle %s", typ)
		}
	}
}

// TestConsumerToleratesNewerWriters: fields a newer writer added are ignored,
// an event of a kind the consumer does not need is skipped (and counted),
// and a new version of a kind it handles stops it.
func TestConsumerToleratesNewerWriters(t *testing.T) {
	e := apptest.StartEmbedded(t)
	last := e.PublishNewerWriterEvents()
	id := apptest.NewerWriterCustomer
	// A kind this consumer does not need (the service's projector stops at
	// it: that is its own, stricter rule).
	_, js := e.JetStream()
	tagged := `{"specversion":"1.0","id":"3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f","source":"/crm/api-v9",
	  "type":"com.a64core.crm.customer.tagged.v1","subject":"` + id + `","time":"2026-11-30T10:03:00Z",
	  "datacontenttype":"application/json","customerversion":4,"actor":"newer-writer","data":{"customerId":"` + id + `","tag":"x"}}`
	ack, err := js.Publish(context.Background(), "crm.customers."+id+".tagged", []byte(tagged))
	if err != nil {
		t.Fatal(err)
	}
	statePath := filepath.Join(t.TempDir(), "customers.json")
	runUntilCaughtUp(t, e, statePath)
	s, err := load(statePath)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Customers[id]
	if c == nil || c.Name != "Newer Writer Ltd" || c.Status != "active" || c.Version != 3 || s.LastSeq != ack.Sequence || ack.Sequence != last+1 {
		t.Fatalf("copy: %+v, last seq %d (want %d)", c, s.LastSeq, ack.Sequence)
	}
	if s.Skipped["com.a64core.crm.customer.tagged.v1"] != 1 {
		t.Fatalf("skipped: %v", s.Skipped)
	}
	// A version of a kind it handles that it cannot read: it stops.
	v2 := strings.Replace(tagged, "customer.tagged.v1", "customer.updated.v2", 1)
	if err := s.apply(ack.Sequence+1, []byte(v2)); err == nil || !strings.Contains(err.Error(), "upgrade") {
		t.Fatalf("updated.v2 applied: %v", err)
	}
}

type linkList struct {
	Meta struct{ Total int }
}
