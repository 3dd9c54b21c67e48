package app_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"crm/internal/apptest"
	"crm/internal/customer"
	"crm/internal/events"
)

type changesBody struct {
	Data []struct {
		Sequence    uint64          `json:"sequence"`
		Cursor      string          `json:"cursor"`
		Type        string          `json:"type"`
		Aggregate   string          `json:"aggregate"`
		AggregateID string          `json:"aggregateId"`
		CustomerID  string          `json:"customerId"`
		Time        string          `json:"time"`
		Event       json.RawMessage `json:"event"`
	} `json:"data"`
	Meta struct {
		Next    string `json:"next"`
		HasMore bool   `json:"hasMore"`
		Limit   int    `json:"limit"`
	} `json:"meta"`
}

// feedCopy is a client's copy of the customers kept from the change feed
// alone.
type feedCopy struct {
	cursor string
	events map[string][]events.Event
	seqs   []uint64
}

// sync reads the feed from the copy's cursor to its end, limit per page.
func (f *feedCopy) sync(t *testing.T, e *apptest.Env, limit int) {
	t.Helper()
	for {
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		if f.cursor != "" {
			q.Set("after", f.cursor)
		}
		r := e.Do("GET", "/api/v1/crm/changes?"+q.Encode(), nil)
		var page changesBody
		if r.JSON(t, &page); r.Status != http.StatusOK {
			t.Fatalf("changes: %d %s", r.Status, r.Body)
		}
		for _, c := range page.Data {
			ev, err := events.Decode(c.Event)
			if err != nil {
				t.Fatalf("change %d: %v", c.Sequence, err)
			}
			if ev.AggregateID != c.CustomerID || ev.Type() != c.Type {
				t.Fatalf("change %d: envelope %s %s, event %s %s", c.Sequence, c.CustomerID, c.Type, ev.AggregateID, ev.Type())
			}
			ev.Seq = c.Sequence
			f.events[ev.AggregateID] = append(f.events[ev.AggregateID], ev)
			f.seqs = append(f.seqs, c.Sequence)
		}
		f.cursor = page.Meta.Next
		if !page.Meta.HasMore {
			if len(page.Data) == limit {
				continue // a full page may end exactly at the tip
			}
			return
		}
	}
}

// check compares the copy with the read model: the same live customers,
// each at the same version with the same fields.
func (f *feedCopy) check(t *testing.T, e *apptest.Env) {
	t.Helper()
	if !slices.IsSorted(f.seqs) || len(slices.Compact(slices.Clone(f.seqs))) != len(f.seqs) {
		t.Fatalf("the feed's sequences are not strictly increasing: %v", f.seqs)
	}
	live := 0
	for id, evs := range f.events {
		st := customer.Fold(evs)
		r := e.Do("GET", "/api/v1/crm/customers/"+id, nil)
		if !st.Exists() {
			if r.Status == http.StatusOK {
				t.Errorf("customer %s: live in the read model, not in the copy", id)
			}
			continue
		}
		live++
		var got envelope
		if r.JSON(t, &got); r.Status != http.StatusOK {
			t.Errorf("customer %s: %d in the read model, live in the copy", id, r.Status)
			continue
		}
		if r.Header.Get("ETag") != fmt.Sprintf(`"%d"`, st.Version) || got.Data.Name != st.Name || got.Data.Status != st.Status ||
			got.Data.CustomerCode != st.Code || !slices.Equal(got.Data.Tags, st.Tags) && len(st.Tags)+len(got.Data.Tags) > 0 {
			t.Errorf("customer %s: read model %s %+v, copy %+v", id, r.Header.Get("ETag"), got.Data, st)
		}
	}
	var l listBody
	e.Do("GET", "/api/v1/crm/customers?perPage=1", nil).JSON(t, &l)
	if l.Meta.Total != int64(live) {
		t.Errorf("read model lists %d customers, the copy %d", l.Meta.Total, live)
	}
}

// randomCommands sends n random creates, patches, deletes, restores,
// merges and batches; ids collects the customers.
func randomCommands(t *testing.T, e *apptest.Env, rng *rand.Rand, n int, ids *[]string) {
	t.Helper()
	pick := func() string { return (*ids)[rng.IntN(len(*ids))] }
	for i := range n {
		switch k := rng.IntN(10); {
		case k < 3 || len(*ids) < 3:
			ext := "" // some with an external id: its claim is in the stream, not in the feed
			if i%4 == 0 {
				ext = fmt.Sprintf(`,"externalId":"EXT-%d"`, len(*ids))
			}
			c := create(t, e, fmt.Sprintf(`{"name":"Feed %d %d","tags":["t%d"]%s}`, i, rng.IntN(1000), rng.IntN(3), ext))
			*ids = append(*ids, c.CustomerID)
		case k < 6:
			e.Do("PATCH", "/api/v1/crm/customers/"+pick(), fmt.Sprintf(`{"status":%q,"tags":["p%d"]}`,
				[]string{"lead", "active", "inactive"}[rng.IntN(3)], i))
		case k < 7:
			e.Do("DELETE", "/api/v1/crm/customers/"+pick(), nil)
		case k < 8:
			e.Do("POST", "/api/v1/crm/customers/"+pick()+"/restore", nil)
		case k < 9:
			a, b := pick(), pick()
			if a != b {
				e.Do("POST", "/api/v1/crm/customers/"+a+"/merge", map[string]any{"customerIds": []string{b}})
			}
		default:
			_, b := batch(t, e, fmt.Sprintf(`{"atomic":true,"operations":[{"op":"create","data":{"name":"Batch %d"}},
				{"op":"update","id":%q,"data":{"notes":"n%d"}}]}`, i, pick(), i))
			for _, r := range b.Data {
				if r.Op == "create" && r.Status == 201 {
					*ids = append(*ids, r.CustomerID)
				}
			}
		}
	}
}

// TestChangeFeedKeepsACopy: a client that only reads the change feed, in
// small pages and across a restart of the service (its cursor stays
// valid), holds the same customers as the read model.
func TestChangeFeedKeepsACopy(t *testing.T) {
	cfg := apptest.Config(t, t.TempDir())
	e := apptest.Start(t, cfg)
	rng := rand.New(rand.NewPCG(14, 4))
	var ids []string
	f := &feedCopy{events: map[string][]events.Event{}}
	randomCommands(t, e, rng, 60, &ids)
	f.sync(t, e, 7)
	f.check(t, e)
	randomCommands(t, e, rng, 30, &ids)
	e.Stop()

	e = apptest.Start(t, cfg)
	randomCommands(t, e, rng, 30, &ids)
	f.sync(t, e, 1000)
	f.check(t, e)
	if kinds := len(f.events); kinds < 10 {
		t.Fatalf("only %d customers in the copy", kinds)
	}
	// Every kind of event went through the feed.
	seen := map[string]bool{}
	for _, evs := range f.events {
		for _, ev := range evs {
			seen[ev.Type()] = true
		}
	}
	for _, want := range []string{events.TypeCreatedV1, events.TypeUpdatedV1, events.TypeDeletedV1} {
		if !seen[want] {
			t.Errorf("no %s in the feed (saw %v)", want, seen)
		}
	}
}

// TestChangeFeedLongPollAndFilters: wait answers as soon as an event
// lands, types filters, and bad parameters are 400s naming them.
func TestChangeFeedLongPollAndFilters(t *testing.T) {
	e := apptest.StartEmbedded(t)
	a := create(t, e, `{"name":"Feed Start"}`)
	var page changesBody
	e.Do("GET", "/api/v1/crm/changes", nil).JSON(t, &page)
	if len(page.Data) != 1 || page.Data[0].CustomerID != a.CustomerID || page.Meta.HasMore {
		t.Fatalf("first page: %+v", page)
	}
	tip := page.Meta.Next

	// Nothing new: without wait at once, empty, the same cursor.
	start := time.Now()
	e.Do("GET", "/api/v1/crm/changes?after="+tip, nil).JSON(t, &page)
	if len(page.Data) != 0 || page.Meta.Next != tip || time.Since(start) > time.Second {
		t.Fatalf("at the tip: %+v after %v", page, time.Since(start))
	}
	// A long poll answers when the next event lands.
	done := make(chan changesBody, 1)
	go func() {
		var p changesBody
		r := e.Do("GET", "/api/v1/crm/changes?wait=20s&after="+tip, nil)
		_ = json.Unmarshal(r.Body, &p)
		done <- p
	}()
	time.Sleep(300 * time.Millisecond)
	landed := time.Now()
	e.Do("DELETE", "/api/v1/crm/customers/"+a.CustomerID, nil)
	select {
	case page = <-done:
		p := page
		if len(p.Data) != 1 || p.Data[0].Type != events.TypeDeletedV1 {
			t.Fatalf("long poll: %+v", p)
		}
		if d := time.Since(landed); d > 2*time.Second {
			t.Errorf("the long poll answered %v after the event", d)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the long poll did not answer after the event")
	}
	// A long poll with nothing new ends at its wait, empty.
	start = time.Now()
	e.Do("GET", "/api/v1/crm/changes?wait=1s&after="+page.Meta.Next+"&types="+events.TypeDeletedV1, nil).JSON(t, &page)
	if time.Since(start) < 900*time.Millisecond {
		t.Errorf("wait=1s answered after %v", time.Since(start))
	}

	// types.
	create(t, e, `{"name":"Feed Other"}`)
	e.Do("GET", "/api/v1/crm/changes?types="+events.TypeDeletedV1, nil).JSON(t, &page)
	if len(page.Data) != 1 || page.Data[0].Type != events.TypeDeletedV1 {
		t.Fatalf("types filter: %+v", page)
	}

	// Bad parameters.
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "viewer", "exp": 4102444800,
		"permissions": []string{"crm.view"}}).SignedString([]byte(apptest.Secret))
	if r := e.Do("GET", "/api/v1/crm/changes", nil, "Authorization", "Bearer "+tok); r.Status != http.StatusForbidden {
		t.Errorf("without crm.audit: %d", r.Status)
	}
	for q, field := range map[string]string{
		"after=bogus": "after", "after=" + strings.TrimSuffix(tip, "A") + "!": "after", "limit=0": "limit", "limit=1001": "limit",
		"wait=31s": "wait", "wait=-1s": "wait", "types=CustomerCreated": "types", "since=1": "since", "limit=1&limit=2": "limit",
	} {
		r := e.Do("GET", "/api/v1/crm/changes?"+q, nil)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `"field":"`+field+`"`) {
			t.Errorf("%s: %d %s", q, r.Status, r.Body)
		}
	}
}

// TestChangeFeedAggregates: by default the feed carries the customers'
// events only, as before contacts and activities existed; aggregates= and
// types= bring the contacts' and activities' events, in stream order with
// the customers', never the claims, each named by aggregate and id.
func TestChangeFeedAggregates(t *testing.T) {
	e := apptest.StartEmbedded(t)
	cu := create(t, e, `{"name":"Feed Acme","externalId":"FEED-1"}`) // with a claim in the stream
	k := createContact(t, e, `{"name":"Ann Feed"}`)
	if r := e.Do("PUT", "/api/v1/crm/customers/"+cu.CustomerID+"/contacts/"+k.ContactID, `{"role":"billing"}`); r.Status != http.StatusCreated {
		t.Fatalf("link: %d %s", r.Status, r.Body)
	}
	act := createActivity(t, e, cu.CustomerID, `{"type":"call","occurredAt":"2026-11-30T09:15:00Z","subject":"Hello"}`)
	if r := e.Do("PATCH", "/api/v1/crm/activities/"+act.ActivityID, `{"outcome":"done"}`); r.Status != http.StatusOK {
		t.Fatalf("patch activity: %d %s", r.Status, r.Body)
	}
	if r := e.Do("DELETE", contactsPath+"/"+k.ContactID, nil); r.Status != http.StatusOK {
		t.Fatalf("delete contact: %d %s", r.Status, r.Body)
	}
	read := func(q string) changesBody {
		t.Helper()
		var all changesBody
		after := ""
		for range 100 {
			r := e.Do("GET", "/api/v1/crm/changes?limit=1"+q+after, nil)
			var page changesBody
			if r.JSON(t, &page); r.Status != http.StatusOK {
				t.Fatalf("changes?%s: %d %s", q, r.Status, r.Body)
			}
			for i, c := range page.Data {
				ev, err := events.Decode(c.Event)
				if err != nil || ev.Type() != c.Type || ev.AggregateID != c.AggregateID || string(ev.Data.Aggregate()) != c.Aggregate {
					t.Fatalf("change %d: %s %s/%s, event %+v %v", c.Sequence, c.Type, c.Aggregate, c.AggregateID, ev, err)
				}
				if want := map[bool]string{true: c.AggregateID}[c.Aggregate == "customers"]; c.CustomerID != want {
					t.Fatalf("change %d of %s: customerId %q", c.Sequence, c.Aggregate, c.CustomerID)
				}
				if c.Aggregate != "customers" && strings.Contains(string(r.Body), `"customerId":""`) {
					t.Fatalf("an empty customerId: %s", r.Body)
				}
				if n := len(all.Data); n > 0 && all.Data[n-1].Sequence >= c.Sequence || i > 0 {
					t.Fatalf("sequences out of order at %d", c.Sequence)
				}
			}
			all.Data = append(all.Data, page.Data...)
			after = "&after=" + page.Meta.Next
			if !page.Meta.HasMore {
				return all
			}
		}
		t.Fatalf("changes?%s: no end after 100 pages", q)
		return all
	}
	kinds := func(b changesBody) []string {
		var out []string
		for _, c := range b.Data {
			out = append(out, c.Aggregate+" "+c.Type[strings.LastIndex(c.Type[:len(c.Type)-3], ".")+1:len(c.Type)-3])
		}
		return out
	}
	if got, want := kinds(read("")), []string{"customers created", "customers contactlinked", "customers contactunlinked"}; !slices.Equal(got, want) {
		t.Errorf("default feed = %v, want %v", got, want)
	}
	if got, want := kinds(read("&aggregates=contacts,activities")), []string{"contacts created", "contacts linked",
		"activities created", "activities updated", "contacts unlinked", "contacts deleted"}; !slices.Equal(got, want) {
		t.Errorf("contacts and activities = %v, want %v", got, want)
	}
	all := read("&aggregates=customers,contacts,activities")
	if len(all.Data) != 9 || all.Data[1].AggregateID != k.ContactID || all.Data[4].AggregateID != act.ActivityID {
		t.Errorf("every aggregate = %v", kinds(all))
	}
	if got := kinds(read("&types=" + events.TypeActivityCreatedV1 + "," + events.TypeContactDeletedV1)); !slices.Equal(got, []string{"activities created", "contacts deleted"}) {
		t.Errorf("types of contacts and activities = %v", got)
	}
	if got := kinds(read("&aggregates=customers&types=" + events.TypeActivityCreatedV1)); len(got) != 0 {
		t.Errorf("aggregates and types both filter: %v", got)
	}
	for _, q := range []string{"aggregates=claims", "aggregates=customers,bogus", "aggregates=", "aggregates=contacts&aggregates=customers"} {
		r := e.Do("GET", "/api/v1/crm/changes?"+q, nil)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `"field":"aggregates"`) {
			t.Errorf("%s: %d %s", q, r.Status, r.Body)
		}
	}
}

// TestChangeFeedLongPollEndsAtShutdown: a stopping service answers its
// long polls at once instead of holding the shutdown for their wait.
func TestChangeFeedLongPollEndsAtShutdown(t *testing.T) {
	e := apptest.StartEmbedded(t)
	create(t, e, `{"name":"Before Stop"}`)
	var page changesBody
	e.Do("GET", "/api/v1/crm/changes", nil).JSON(t, &page)
	done := make(chan int, 1)
	go func() {
		r := e.Do("GET", "/api/v1/crm/changes?wait=30s&after="+page.Meta.Next, nil)
		done <- r.Status
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	e.Stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %v with a long poll open", d)
	}
	select {
	case s := <-done:
		if s != http.StatusOK {
			t.Errorf("long poll at shutdown: %d", s)
		}
	case <-time.After(5 * time.Second):
		t.Error("the long poll did not end")
	}
}
