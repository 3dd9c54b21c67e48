package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"crm/internal/app"
	"crm/internal/apptest"
	"crm/internal/config"
	"crm/internal/embedded"
	"crm/internal/webhooks"
)

// receiver is a webhook endpoint for the tests: it verifies every
// request's signature with the Standard Webhooks reference library, keeps
// what it acknowledged (2xx) per customer, and checks on arrival that the
// customer's earlier events were all acknowledged before (the ordering
// guarantee).
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	secrets  []string
	respond  func(r *http.Request, seq uint64) (status int, delay time.Duration, header map[string]string)
	requests int
	badSigs  []string
	// acked: stream sequences answered 2xx, per customer; arrivals: per
	// request, the sequence and the customer's acknowledged set then.
	acked    map[string]map[uint64]bool
	arrivals []arrival
	bodies   map[uint64]map[string]any
	pings    int
	headers  []http.Header
}

type arrival struct {
	customer string
	seq      uint64
	before   map[uint64]bool
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{t: t, acked: map[string]map[uint64]bool{}, bodies: map[uint64]map[string]any{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) setSecrets(s ...string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.secrets = s
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	seq, _ := strconv.ParseUint(r.Header.Get("X-Stream-Sequence"), 10, 64)
	var ev struct {
		Type    string `json:"type"`
		Subject string `json:"subject"`
	}
	_ = json.Unmarshal(body, &ev)

	rc.mu.Lock()
	rc.requests++
	rc.headers = append(rc.headers, r.Header.Clone())
	verified := false
	for _, s := range rc.secrets {
		wh, err := standardwebhooks.NewWebhook(s)
		if err == nil && wh.Verify(body, r.Header) == nil {
			verified = true
		}
	}
	if !verified {
		rc.badSigs = append(rc.badSigs, r.Header.Get("webhook-id"))
	}
	if ev.Type == webhooks.PingType {
		rc.pings++
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	c := ev.Subject
	before := map[uint64]bool{}
	for s := range rc.acked[c] {
		before[s] = true
	}
	rc.arrivals = append(rc.arrivals, arrival{c, seq, before})
	status, delay, hdr := 200, time.Duration(0), map[string]string(nil)
	if rc.respond != nil {
		status, delay, hdr = rc.respond(r, seq)
	}
	rc.mu.Unlock()

	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return // the sender gave up: not acknowledged
		}
	}
	for k, v := range hdr {
		w.Header().Set(k, v)
	}
	if status < 300 && r.Context().Err() == nil {
		rc.mu.Lock()
		if rc.acked[c] == nil {
			rc.acked[c] = map[uint64]bool{}
		}
		rc.acked[c][seq] = true
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		rc.bodies[seq] = m
		rc.mu.Unlock()
	}
	w.WriteHeader(status)
}

// ackedSeqs returns every acknowledged stream sequence.
func (rc *receiver) ackedSeqs() map[uint64]string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[uint64]string{}
	for c, set := range rc.acked {
		for s := range set {
			out[s] = c
		}
	}
	return out
}

// checkOrder fails the test for every request that arrived before all the
// earlier events of its customer (in want: sequence → customer) were
// acknowledged, and for every bad signature.
func (rc *receiver) checkOrder(want map[uint64]string) {
	rc.t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	bySeq := map[string][]uint64{}
	for s, c := range want {
		bySeq[c] = append(bySeq[c], s)
	}
	violations := 0
	for _, a := range rc.arrivals {
		for _, s := range bySeq[a.customer] {
			if s < a.seq && !a.before[s] {
				violations++
				if violations <= 5 {
					rc.t.Errorf("customer %s: event %d arrived before its earlier event %d was acknowledged", a.customer, a.seq, s)
				}
			}
		}
	}
	if len(rc.badSigs) > 0 {
		rc.t.Errorf("%d requests did not verify with the Standard Webhooks library: %v", len(rc.badSigs), rc.badSigs[:min(5, len(rc.badSigs))])
	}
}

// webhookConfig allows http to loopback (the test receiver).
func webhookConfig(t *testing.T, dir string) config.Config {
	cfg := apptest.Config(t, dir)
	cfg.WebhookAllowHTTP = true
	cfg.WebhookAllowNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.WebhookTimeout = 500 * time.Millisecond
	return cfg
}

func fastRetries(o *app.Options) {
	o.WebhookSchedule = webhooks.Schedule{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}
}

type webhookView struct {
	ID             string   `json:"id"`
	URL            string   `json:"url"`
	Types          []string `json:"types"`
	Enabled        bool     `json:"enabled"`
	DisabledReason *string  `json:"disabledReason"`
	Secret         string   `json:"secret"`
	StartSequence  uint64   `json:"startSequence"`
	Secrets        []struct {
		CreatedAt time.Time  `json:"createdAt"`
		ExpiresAt *time.Time `json:"expiresAt"`
	} `json:"secrets"`
	Status *struct {
		Pending      uint64             `json:"pending"`
		Delivering   bool               `json:"delivering"`
		LastDelivery *webhooks.Delivery `json:"lastDelivery"`
	} `json:"status"`
}

func createWebhook(t *testing.T, e *apptest.Env, body any) webhookView {
	t.Helper()
	r := e.Do("POST", "/api/v1/crm/webhooks", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", r.Status, r.Body)
	}
	var env struct{ Data webhookView }
	r.JSON(t, &env)
	return env.Data
}

func getWebhook(t *testing.T, e *apptest.Env, id string) webhookView {
	t.Helper()
	r := e.Do("GET", "/api/v1/crm/webhooks/"+id, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("get webhook: %d %s", r.Status, r.Body)
	}
	var env struct{ Data webhookView }
	r.JSON(t, &env)
	return env.Data
}

// customerEvents returns the stream's customer events after seq from: sequence → customer.
func customerEvents(t *testing.T, e *apptest.Env, from uint64, match func(subject string) bool) map[uint64]string {
	t.Helper()
	out := map[uint64]string{}
	for _, m := range e.StreamMessages() {
		if m.Sequence < from || !strings.HasPrefix(m.Subject, "crm.customers.") || (match != nil && !match(m.Subject)) {
			continue
		}
		out[m.Sequence] = strings.Split(m.Subject, ".")[2]
	}
	return out
}

func waitDelivered(t *testing.T, rc *receiver, want map[uint64]string, timeout time.Duration) {
	t.Helper()
	apptest.Eventually(t, timeout, fmt.Sprintf("all %d events delivered", len(want)), func() bool {
		got := rc.ackedSeqs()
		for s := range want {
			if _, ok := got[s]; !ok {
				return false
			}
		}
		return true
	})
}

// TestWebhookDeliveryUnderFaults is the acceptance test: a receiver
// that fails at random (500s, timeouts, 429 with Retry-After, slow
// answers) still ends with every event delivered, every signature
// verifying with the Standard Webhooks library and no event of a customer
// arriving before its earlier ones were acknowledged, across a restart of
// the service in the middle.
func TestWebhookDeliveryUnderFaults(t *testing.T) {
	dir := t.TempDir()
	cfg := webhookConfig(t, dir)
	rc := newReceiver(t)
	rng := rand.New(rand.NewPCG(7, 11))
	var rmu sync.Mutex
	rc.respond = func(r *http.Request, seq uint64) (int, time.Duration, map[string]string) {
		rmu.Lock()
		x := rng.IntN(100)
		rmu.Unlock()
		switch {
		case x < 15:
			return 500, 0, nil
		case x < 22:
			return 200, 700 * time.Millisecond, nil // beyond WEBHOOK_TIMEOUT: a timeout
		case x < 27:
			return 429, 0, map[string]string{"Retry-After": "1"}
		case x < 30:
			return 503, 0, nil
		case x < 40:
			return 200, 50 * time.Millisecond, nil
		}
		return 200, 0, nil
	}
	e := apptest.Start(t, cfg, fastRetries)
	sub := createWebhook(t, e, map[string]any{"url": rc.srv.URL + "/hook?token=abc", "description": "faults", "concurrency": 8})
	rc.setSecrets(sub.Secret)

	const customers = 24
	ids := make([]string, customers)
	work := func(e *apptest.Env, round int) {
		var wg sync.WaitGroup
		for i := range customers {
			wg.Go(func() {
				if round == 0 {
					r := e.Do("POST", "/api/v1/crm/customers", fmt.Sprintf(`{"name":"Hook Customer %d"}`, i))
					var env envelope
					if r.Status != http.StatusCreated || json.Unmarshal(r.Body, &env) != nil {
						t.Errorf("create: %d %s", r.Status, r.Body)
						return
					}
					ids[i] = env.Data.CustomerID
				}
				for j := range 2 {
					if r := e.Do("PATCH", "/api/v1/crm/customers/"+ids[i], fmt.Sprintf(`{"notes":"round %d patch %d"}`, round, j)); r.Status != 200 {
						t.Errorf("patch: %d %s", r.Status, r.Body)
					}
				}
			})
		}
		wg.Wait()
	}
	work(e, 0)
	// Stop while deliveries are in flight and retrying (some acknowledged,
	// not all); start again.
	apptest.Eventually(t, 30*time.Second, "deliveries under way", func() bool { return len(rc.ackedSeqs()) >= 10 })
	if n := len(rc.ackedSeqs()); n >= customers*3 {
		t.Logf("all %d events of the first round were delivered before the restart", n)
	}
	e.Stop()
	e = apptest.Start(t, cfg, fastRetries)
	work(e, 1)
	if t.Failed() {
		t.FailNow()
	}
	want := customerEvents(t, e, sub.StartSequence, nil)
	if len(want) != customers*5 {
		t.Fatalf("%d events in the stream, want %d", len(want), customers*5)
	}
	waitDelivered(t, rc, want, 90*time.Second)
	rc.checkOrder(want)
	for s, c := range rc.ackedSeqs() {
		if want[s] != c {
			t.Errorf("delivered sequence %d of %s: not an event of the subscription", s, c)
		}
	}
	rc.mu.Lock()
	t.Logf("%d events delivered in %d requests (faults and duplicates after the restart)", len(want), rc.requests)
	for _, h := range rc.headers {
		if h.Get("Content-Type") != "application/cloudevents+json; charset=utf-8" || h.Get("X-Webhook-Subscription") != sub.ID {
			t.Errorf("headers: %v", h)
			break
		}
	}
	rc.mu.Unlock()

	// The log has the failures and the successes.
	r := e.Do("GET", "/api/v1/crm/webhooks/"+sub.ID+"/deliveries?limit=500", nil)
	var page struct {
		Data []webhooks.Delivery
		Meta struct {
			More bool
			Next string
		}
	}
	r.JSON(t, &page)
	outcomes := map[string]int{}
	for _, d := range page.Data {
		outcomes[d.Outcome]++
		if d.Outcome == webhooks.OutcomeFailed && (d.Error == "" || d.NextAttemptAt == nil) {
			t.Errorf("a failed attempt without its error or next attempt: %+v", d)
		}
		if strings.Contains(d.Error, "token=abc") {
			t.Errorf("the log shows the URL's query: %q", d.Error)
		}
	}
	if outcomes[webhooks.OutcomeDelivered] == 0 || outcomes[webhooks.OutcomeFailed] == 0 {
		t.Errorf("log outcomes %v: want both delivered and failed", outcomes)
	}
	if m := e.Do("GET", "/metrics", nil); !strings.Contains(string(m.Body), `crm_webhook_deliveries_total{outcome="delivered"}`) {
		t.Errorf("metrics lack the webhook deliveries")
	}
}

// TestWebhookOrderedPerCustomerParallelAcross: while one customer's event
// keeps failing, the other customers' events are delivered; the failing
// customer's later events wait behind it.
func TestWebhookOrderedPerCustomerParallelAcross(t *testing.T) {
	cfg := webhookConfig(t, t.TempDir())
	rc := newReceiver(t)
	var blocked struct {
		sync.Mutex
		customer string
		open     bool
	}
	e := apptest.Start(t, cfg, fastRetries)
	stuck := create(t, e, `{"name":"Stuck Customer"}`)
	sub := createWebhook(t, e, map[string]any{"url": rc.srv.URL})
	rc.setSecrets(sub.Secret)
	blocked.customer = stuck.CustomerID
	rc.respond = func(r *http.Request, seq uint64) (int, time.Duration, map[string]string) {
		blocked.Lock()
		defer blocked.Unlock()
		if !blocked.open && rc.subjectOf(seq) == blocked.customer {
			return 500, 0, nil
		}
		return 200, 0, nil
	}
	for i := range 3 {
		e.Do("PATCH", "/api/v1/crm/customers/"+stuck.CustomerID, fmt.Sprintf(`{"notes":"n%d"}`, i))
	}
	for i := range 5 {
		create(t, e, fmt.Sprintf(`{"name":"Other %d"}`, i))
	}
	want := customerEvents(t, e, sub.StartSequence, nil)
	othersWant := map[uint64]string{}
	for s, c := range want {
		if c != stuck.CustomerID {
			othersWant[s] = c
		}
	}
	waitDelivered(t, rc, othersWant, 20*time.Second)
	for s, c := range rc.ackedSeqs() {
		if c == stuck.CustomerID {
			t.Errorf("an event (%d) of the failing customer was acknowledged", s)
		}
	}
	rc.mu.Lock()
	var stuckSeqs []uint64
	for _, a := range rc.arrivals {
		if a.customer == stuck.CustomerID && !slices.Contains(stuckSeqs, a.seq) {
			stuckSeqs = append(stuckSeqs, a.seq)
		}
	}
	rc.mu.Unlock()
	if len(stuckSeqs) != 1 {
		t.Errorf("the failing customer's requests were for events %v: only its first may be tried", stuckSeqs)
	}
	blocked.Lock()
	blocked.open = true
	blocked.Unlock()
	waitDelivered(t, rc, want, 20*time.Second)
	rc.checkOrder(want)
}

// subjectOf returns the customer of an event the receiver has seen.
func (rc *receiver) subjectOf(seq uint64) string {
	for i := len(rc.arrivals) - 1; i >= 0; i-- {
		if rc.arrivals[i].seq == seq {
			return rc.arrivals[i].customer
		}
	}
	return ""
}

// TestWebhookDisables: a 410 disables the subscription at once; an event
// failing for longer than WEBHOOK_RETRY_FOR disables it with the reason;
// enabling it again delivers what was pending, in order.
func TestWebhookDisables(t *testing.T) {
	cfg := webhookConfig(t, t.TempDir())
	cfg.WebhookRetryFor = time.Second
	rc := newReceiver(t)
	var mode struct {
		sync.Mutex
		status int
	}
	mode.status = 410
	rc.respond = func(*http.Request, uint64) (int, time.Duration, map[string]string) {
		mode.Lock()
		defer mode.Unlock()
		return mode.status, 0, nil
	}
	e := apptest.Start(t, cfg, fastRetries)
	sub := createWebhook(t, e, map[string]any{"url": rc.srv.URL})
	rc.setSecrets(sub.Secret)
	c := create(t, e, `{"name":"Gone Endpoint"}`)
	apptest.Eventually(t, 10*time.Second, "disabled after 410", func() bool { return !getWebhook(t, e, sub.ID).Enabled })
	v := getWebhook(t, e, sub.ID)
	if v.DisabledReason == nil || !strings.Contains(*v.DisabledReason, "410") {
		t.Errorf("reason: %v", v.DisabledReason)
	}
	if v.Status == nil || v.Status.LastDelivery == nil || v.Status.LastDelivery.Outcome != webhooks.OutcomeGone {
		t.Errorf("status: %+v", v.Status)
	}

	// Enabled again, against an endpoint that fails for longer than the
	// retry period (1 s here).
	mode.Lock()
	mode.status = 500
	mode.Unlock()
	if r := e.Do("PATCH", "/api/v1/crm/webhooks/"+sub.ID, `{"enabled":true}`); r.Status != 200 {
		t.Fatalf("enable: %d %s", r.Status, r.Body)
	}
	apptest.Eventually(t, 15*time.Second, "disabled after failing for 1s", func() bool {
		v := getWebhook(t, e, sub.ID)
		return !v.Enabled && v.DisabledReason != nil && strings.Contains(*v.DisabledReason, "failed for 1s")
	})
	// Enabled again while the endpoint still fails: a fresh retry period
	// (it fails from now, not from the first failure before).
	reenabled := time.Now().Truncate(time.Second)
	if r := e.Do("PATCH", "/api/v1/crm/webhooks/"+sub.ID, `{"enabled":true}`); r.Status != 200 {
		t.Fatalf("enable: %d %s", r.Status, r.Body)
	}
	apptest.Eventually(t, 15*time.Second, "disabled again", func() bool { return !getWebhook(t, e, sub.ID).Enabled })
	v = getWebhook(t, e, sub.ID)
	_, since, _ := strings.Cut(*v.DisabledReason, "since ")
	since, _, _ = strings.Cut(since, ",")
	if at, err := time.Parse(time.RFC3339, since); err != nil || at.Before(reenabled) {
		t.Errorf("re-enabled at %v, then %q: the retry period did not start again", reenabled, *v.DisabledReason)
	}
	e.Do("PATCH", "/api/v1/crm/customers/"+c.CustomerID, `{"notes":"while disabled"}`)

	// The endpoint works again: enabling delivers both events, in order.
	mode.Lock()
	mode.status = 200
	mode.Unlock()
	if r := e.Do("PATCH", "/api/v1/crm/webhooks/"+sub.ID, `{"enabled":true}`); r.Status != 200 {
		t.Fatalf("enable: %d %s", r.Status, r.Body)
	}
	want := customerEvents(t, e, sub.StartSequence, nil)
	if len(want) != 2 {
		t.Fatalf("events: %v", want)
	}
	waitDelivered(t, rc, want, 15*time.Second)
	rc.checkOrder(want)
	if v := getWebhook(t, e, sub.ID); !v.Enabled || v.DisabledReason != nil {
		t.Errorf("after enabling: %+v", v)
	}
}

// TestWebhookRetryPeriodSurvivesRestart: the time an event first failed
// is kept across a restart of the service, so an endpoint that stays down
// is disabled a retry period after its first failure, not after the last
// restart.
func TestWebhookRetryPeriodSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := webhookConfig(t, dir)
	cfg.WebhookRetryFor = 3 * time.Second
	rc := newReceiver(t)
	var first atomic.Int64
	rc.respond = func(*http.Request, uint64) (int, time.Duration, map[string]string) {
		first.CompareAndSwap(0, time.Now().UnixNano())
		return 500, 0, nil
	}
	e := apptest.Start(t, cfg, fastRetries)
	sub := createWebhook(t, e, map[string]any{"url": rc.srv.URL})
	rc.setSecrets(sub.Secret)
	create(t, e, `{"name":"Never Delivered"}`)
	// Two of the three seconds fail before the restart.
	apptest.Eventually(t, 10*time.Second, "failing for 2s", func() bool {
		return first.Load() != 0 && time.Since(time.Unix(0, first.Load())) > 2*time.Second
	})
	firstFail := time.Unix(0, first.Load())
	e.Stop()
	e = apptest.Start(t, cfg, fastRetries)
	restarted := time.Now()
	apptest.Eventually(t, 15*time.Second, "disabled", func() bool { return !getWebhook(t, e, sub.ID).Enabled })
	v := getWebhook(t, e, sub.ID)
	_, since, _ := strings.Cut(*v.DisabledReason, "since ")
	since, _, _ = strings.Cut(since, ",")
	at, err := time.Parse(time.RFC3339, since)
	if err != nil || at.After(firstFail.Add(time.Second)) || at.Before(firstFail.Add(-2*time.Second)) {
		t.Errorf("reason %q: failing since %v, first failure at %v", *v.DisabledReason, at, firstFail)
	}
	if took := time.Since(restarted); took > 2500*time.Millisecond {
		t.Errorf("disabled %v after the restart: the retry period restarted", took)
	}
}

// TestWebhookReplayAndFilters: a subscription filtered by type sees only
// those events, one filtered by customer only that customer's; a replay
// from the beginning delivers all of history again, in order, and one from
// a change cursor what follows it.
func TestWebhookReplayAndFilters(t *testing.T) {
	cfg := webhookConfig(t, t.TempDir())
	e := apptest.Start(t, cfg, fastRetries)
	a := create(t, e, `{"name":"Before Subscribing"}`)
	all, deletes, one := newReceiver(t), newReceiver(t), newReceiver(t)
	subAll := createWebhook(t, e, map[string]any{"url": all.srv.URL})
	subDel := createWebhook(t, e, map[string]any{"url": deletes.srv.URL, "types": []string{"*.customer.deleted.*"}})
	subOne := createWebhook(t, e, map[string]any{"url": one.srv.URL, "customerId": a.CustomerID})
	all.setSecrets(subAll.Secret)
	deletes.setSecrets(subDel.Secret)
	one.setSecrets(subOne.Secret)
	if len(subDel.Types) != 1 || subAll.Types == nil || len(subAll.Types) != 0 {
		t.Errorf("types: %v %v", subDel.Types, subAll.Types)
	}
	people := newReceiver(t) // the contacts' and activities' events only
	subPeople := createWebhook(t, e, map[string]any{"url": people.srv.URL, "types": []string{"*.contact.*", "*.activity.*"}})
	people.setSecrets(subPeople.Secret)
	b := create(t, e, `{"name":"After Subscribing"}`)
	e.Do("PATCH", "/api/v1/crm/customers/"+a.CustomerID, `{"notes":"a changed"}`)
	k := createContact(t, e, `{"name":"Hook Contact"}`)
	if r := e.Do("PUT", "/api/v1/crm/customers/"+a.CustomerID+"/contacts/"+k.ContactID, nil); r.Status != http.StatusCreated {
		t.Fatalf("link: %d %s", r.Status, r.Body)
	}
	createActivity(t, e, b.CustomerID, `{"type":"note","occurredAt":"2026-11-30T09:15:00Z","subject":"Hooked"}`)
	e.Do("DELETE", "/api/v1/crm/customers/"+b.CustomerID, nil)
	e.Do("DELETE", "/api/v1/crm/customers/"+a.CustomerID, nil)

	wantAll := customerEvents(t, e, subAll.StartSequence, nil)
	wantDel := customerEvents(t, e, subAll.StartSequence, func(s string) bool { return strings.HasSuffix(s, ".deleted") })
	wantOne := customerEvents(t, e, subAll.StartSequence, func(s string) bool { return strings.Contains(s, a.CustomerID) })
	waitDelivered(t, all, wantAll, 15*time.Second)
	waitDelivered(t, deletes, wantDel, 15*time.Second)
	waitDelivered(t, one, wantOne, 15*time.Second)
	wantPeople := map[uint64]string{}
	for _, m := range e.StreamMessages() {
		if m.Sequence >= subPeople.StartSequence && (strings.HasPrefix(m.Subject, "crm.contacts.") || strings.HasPrefix(m.Subject, "crm.activities.")) {
			wantPeople[m.Sequence] = strings.Split(m.Subject, ".")[2]
		}
	}
	if len(wantPeople) != 4 { // contact created, linked, unlinked (its customer deleted); activity created
		t.Fatalf("contact and activity events in the stream: %v", wantPeople)
	}
	waitDelivered(t, people, wantPeople, 15*time.Second)
	// The delivery log names each event's aggregate and id.
	apptest.Eventually(t, 10*time.Second, "the contact and activity deliveries logged", func() bool {
		var log struct {
			Data []struct {
				StreamSequence uint64  `json:"streamSequence"`
				Aggregate      string  `json:"aggregate"`
				AggregateID    string  `json:"aggregateId"`
				CustomerID     *string `json:"customerId"`
			}
		}
		e.Do("GET", "/api/v1/crm/webhooks/"+subPeople.ID+"/deliveries", nil).JSON(t, &log)
		n := 0
		for _, d := range log.Data {
			want := map[bool]string{true: "contacts", false: "activities"}[wantPeople[d.StreamSequence] == k.ContactID]
			if d.Aggregate != want || d.AggregateID != wantPeople[d.StreamSequence] || d.CustomerID != nil {
				t.Fatalf("delivery of %d: %+v", d.StreamSequence, d)
			}
			n++
		}
		return n >= len(wantPeople)
	})
	for name, x := range map[string]struct {
		rc   *receiver
		want map[uint64]string
	}{"all": {all, wantAll}, "deletes": {deletes, wantDel}, "one customer": {one, wantOne}, "contacts and activities": {people, wantPeople}} {
		for s := range x.rc.ackedSeqs() {
			if _, ok := x.want[s]; !ok {
				t.Errorf("%s: got event %d it does not subscribe to", name, s)
			}
		}
	}

	// Replay from the beginning: the whole history, in order (the
	// receiver forgets what it had).
	all.mu.Lock()
	all.acked, all.arrivals = map[string]map[uint64]bool{}, nil
	all.mu.Unlock()
	if r := e.Do("POST", "/api/v1/crm/webhooks/"+subAll.ID+"/replay", `{"after":"beginning"}`); r.Status != http.StatusAccepted {
		t.Fatalf("replay: %d %s", r.Status, r.Body)
	}
	history := customerEvents(t, e, 1, nil)
	waitDelivered(t, all, history, 15*time.Second)
	all.checkOrder(history)

	// Replay after a change cursor: only what follows it.
	var changes struct {
		Data []struct {
			Sequence uint64 `json:"sequence"`
		}
		Meta struct{ Next string }
	}
	e.Do("GET", "/api/v1/crm/changes?limit=2", nil).JSON(t, &changes)
	deletes.mu.Lock()
	deletes.acked, deletes.arrivals = map[string]map[uint64]bool{}, nil
	deletes.mu.Unlock()
	if r := e.Do("POST", "/api/v1/crm/webhooks/"+subDel.ID+"/replay", map[string]string{"after": changes.Meta.Next}); r.Status != http.StatusAccepted {
		t.Fatalf("replay after a cursor: %d %s", r.Status, r.Body)
	}
	waitDelivered(t, deletes, wantDel, 15*time.Second)
	// A replay from a time.
	if r := e.Do("POST", "/api/v1/crm/webhooks/"+subOne.ID+"/replay", `{"after":"2000-01-01T00:00:00Z"}`); r.Status != http.StatusAccepted {
		t.Fatalf("replay from a time: %d %s", r.Status, r.Body)
	} else {
		var env struct{ Data webhookView }
		r.JSON(t, &env)
		if env.Data.StartSequence != 1 {
			t.Errorf("replay from 2000: starts at %d", env.Data.StartSequence)
		}
	}
}

// TestWebhookTwoReplicas: two API processes on one NATS deliver each
// event once between them (one holds the subscription's lease); when the
// one delivering stops, the other goes on.
func TestWebhookTwoReplicas(t *testing.T) {
	ns, err := embedded.Start(embedded.Config{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown) // after the replicas' cleanups (LIFO)
	newReplica := func() *apptest.Env {
		cfg := webhookConfig(t, t.TempDir())
		cfg.NATSURL = ns.ClientURL()
		return apptest.Start(t, cfg, fastRetries)
	}
	a, b := newReplica(), newReplica()
	rc := newReceiver(t)
	sub := createWebhook(t, a, map[string]any{"url": rc.srv.URL})
	rc.setSecrets(sub.Secret)
	for i := range 10 {
		create(t, []*apptest.Env{a, b}[i%2], fmt.Sprintf(`{"name":"Replica Customer %d"}`, i))
	}
	want := customerEvents(t, a, sub.StartSequence, nil)
	waitDelivered(t, rc, want, 20*time.Second)
	rc.mu.Lock()
	if rc.requests != len(want) {
		t.Errorf("%d requests for %d events: each event must be delivered once", rc.requests, len(want))
	}
	rc.mu.Unlock()
	a.Stop() // gives its leases back
	for i := range 5 {
		create(t, b, fmt.Sprintf(`{"name":"After The Stop %d"}`, i))
	}
	want = customerEvents(t, b, sub.StartSequence, nil)
	waitDelivered(t, rc, want, 30*time.Second)
	rc.checkOrder(want)
}

// TestWebhookAPI covers the subscriptions API: validation of every field,
// secrets shown once, rotation with a grace period, If-Match, ping, the
// deliveries log, permissions and the address policy.
func TestWebhookAPI(t *testing.T) {
	cfg := webhookConfig(t, t.TempDir())
	e := apptest.Start(t, cfg, fastRetries)
	rc := newReceiver(t)
	const base = "/api/v1/crm/webhooks"

	bad := []struct {
		name, body, field string
	}{
		{"no url", `{}`, "url"},
		{"ftp", `{"url":"ftp://example.com/x"}`, "url"},
		{"relative", `{"url":"/hook"}`, "url"},
		{"credentials", `{"url":"https://user:pw@example.com/x"}`, "url"},
		{"fragment", `{"url":"https://example.com/x#y"}`, "url"},
		{"bad port", `{"url":"https://example.com:99999/x"}`, "url"},
		{"unknown type", `{"url":"https://example.com/x","types":["com.example.nothing"]}`, "types[0]"},
		{"type chars", `{"url":"https://example.com/x","types":["a b"]}`, "types[0]"},
		{"types not array", `{"url":"https://example.com/x","types":"x"}`, "types"},
		{"customer", `{"url":"https://example.com/x","customerId":"nope"}`, "customerId"},
		{"concurrency", `{"url":"https://example.com/x","concurrency":0}`, "concurrency"},
		{"concurrency big", `{"url":"https://example.com/x","concurrency":65}`, "concurrency"},
		{"enabled", `{"url":"https://example.com/x","enabled":"yes"}`, "enabled"},
		{"description", `{"url":"https://example.com/x","description":"` + strings.Repeat("d", 501) + `"}`, "description"},
		{"unknown", `{"url":"https://example.com/x","secret":"mine"}`, "secret"},
		{"private", `{"url":"http://10.1.2.3/x"}`, "url"},
		{"metadata", `{"url":"http://169.254.169.254/latest"}`, "url"},
		{"v6 loopback", `{"url":"http://[::1]:8080/x"}`, "url"},
	}
	for _, c := range bad {
		r := e.Do("POST", base, c.body)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `"field":"`+c.field+`"`) {
			t.Errorf("%s: %d %s (want 400 naming %s)", c.name, r.Status, r.Body, c.field)
		}
	}
	if r := e.Do("POST", base, `{"url":`); r.Status != 400 {
		t.Errorf("malformed: %d", r.Status)
	}
	if r := e.Do("POST", base, `{"url":"https://example.com"}`, "Content-Type", "text/plain"); r.Status != 415 {
		t.Errorf("text/plain: %d", r.Status)
	}
	user := "Bearer " + e.TokenFor("22222222-2222-4222-8222-222222222222", "user")
	if r := e.Do("GET", base, nil, "Authorization", user); r.Status != 403 {
		t.Errorf("a user lists webhooks: %d", r.Status)
	}

	// Create: the secret is shown once.
	r := e.Do("POST", base, map[string]any{"url": rc.srv.URL + "/in", "types": []string{"*.customer.created.*", "*.customer.created.*"}, "description": "CRM to billing"})
	if r.Status != 201 || r.Header.Get("Location") == "" || r.Header.Get("ETag") == "" || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %v %s", r.Status, r.Header, r.Body)
	}
	var created struct{ Data webhookView }
	r.JSON(t, &created)
	sub := created.Data
	if !strings.HasPrefix(sub.Secret, "whsec_") || !sub.Enabled || len(sub.Types) != 1 {
		t.Fatalf("created: %s", r.Body)
	}
	rc.setSecrets(sub.Secret)
	got := e.Do("GET", base+"/"+sub.ID, nil)
	if strings.Contains(string(got.Body), sub.Secret) || strings.Contains(string(got.Body), "whsec_") {
		t.Errorf("GET shows the secret: %s", got.Body)
	}
	list := e.Do("GET", base, nil)
	if list.Status != 200 || !strings.Contains(string(list.Body), sub.ID) || strings.Contains(string(list.Body), "whsec_") {
		t.Errorf("list: %d %s", list.Status, list.Body)
	}

	// Ping: signed, answered, logged.
	p := e.Do("POST", base+"/"+sub.ID+"/ping", nil)
	var ping struct{ Data webhooks.Delivery }
	p.JSON(t, &ping)
	if p.Status != 200 || ping.Data.Outcome != webhooks.OutcomeDelivered || ping.Data.Status != 204 || !ping.Data.Ping {
		t.Errorf("ping: %d %s", p.Status, p.Body)
	}

	// Patch with If-Match: a stale revision is 412; merge-patch null clears.
	etag := got.Header.Get("ETag")
	r = e.Do("PATCH", base+"/"+sub.ID, `{"description":null,"concurrency":2}`, "If-Match", etag)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"description":null`) || !strings.Contains(string(r.Body), `"concurrency":2`) {
		t.Errorf("patch: %d %s", r.Status, r.Body)
	}
	if r := e.Do("PATCH", base+"/"+sub.ID, `{"enabled":false}`, "If-Match", etag); r.Status != 412 {
		t.Errorf("stale If-Match: %d %s", r.Status, r.Body)
	}
	if r := e.Do("PATCH", base+"/"+sub.ID, `{"url":"http://192.168.1.1/x"}`); r.Status != 400 {
		t.Errorf("patch to a private address: %d %s", r.Status, r.Body)
	}
	if r := e.Do("PATCH", base+"/"+uuidLike(), `{"enabled":false}`); r.Status != 404 {
		t.Errorf("patch unknown: %d", r.Status)
	}
	if r := e.Do("GET", base+"/not-a-uuid", nil); r.Status != 400 {
		t.Errorf("bad id: %d", r.Status)
	}

	// Rotate: both secrets sign during the grace period.
	r = e.Do("POST", base+"/"+sub.ID+"/rotate-secret", `{"gracePeriodSeconds":3600}`)
	var rotated struct{ Data webhookView }
	r.JSON(t, &rotated)
	if r.Status != 200 || !strings.HasPrefix(rotated.Data.Secret, "whsec_") || rotated.Data.Secret == sub.Secret || len(rotated.Data.Secrets) != 2 || rotated.Data.Secrets[1].ExpiresAt == nil {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	// pingVerifies sends a ping and reports whether it arrived verifying
	// with secret alone (a ping that does not arrive fails the test).
	pingVerifies := func(secret string) bool {
		t.Helper()
		rc.setSecrets(secret)
		rc.mu.Lock()
		pings, bad := rc.pings, len(rc.badSigs)
		rc.mu.Unlock()
		if r := e.Do("POST", base+"/"+sub.ID+"/ping", nil); r.Status != 200 {
			t.Fatalf("ping: %d %s", r.Status, r.Body)
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if rc.pings != pings+1 {
			t.Fatalf("the ping did not reach the receiver")
		}
		return len(rc.badSigs) == bad
	}
	for _, only := range []string{sub.Secret, rotated.Data.Secret} {
		if !pingVerifies(only) {
			t.Errorf("during the grace period a ping did not verify with one of the secrets")
		}
	}
	r = e.Do("POST", base+"/"+sub.ID+"/rotate-secret", `{"gracePeriodSeconds":0}`)
	var rotated2 struct{ Data webhookView }
	r.JSON(t, &rotated2)
	if len(rotated2.Data.Secrets) != 1 {
		t.Errorf("rotation without grace keeps %d secrets", len(rotated2.Data.Secrets))
	}
	if pingVerifies(rotated.Data.Secret) {
		t.Errorf("a retired secret still verifies")
	}
	if !pingVerifies(rotated2.Data.Secret) {
		t.Errorf("the new secret does not verify")
	}
	rc.setSecrets(rotated2.Data.Secret)
	for _, body := range []string{`{"gracePeriodSeconds":-1}`, `{"gracePeriodSeconds":604801}`, `{"grace":1}`} {
		if r := e.Do("POST", base+"/"+sub.ID+"/rotate-secret", body); r.Status != 400 {
			t.Errorf("rotate %s: %d", body, r.Status)
		}
	}
	for _, body := range []string{`{}`, `{"after":"nope"}`, `{"after":1}`, `{"from":"beginning"}`} {
		if r := e.Do("POST", base+"/"+sub.ID+"/replay", body); r.Status != 400 {
			t.Errorf("replay %s: %d %s", body, r.Status, r.Body)
		}
	}

	// Deliveries: the pings and the created event, paged.
	create(t, e, `{"name":"Logged Delivery"}`)
	apptest.Eventually(t, 10*time.Second, "the created event delivered", func() bool { return len(rc.ackedSeqs()) == 1 })
	// The log is written in batches (every 50 ms): read until it has them.
	var all []webhooks.Delivery
	pings, events := 0, 0
	apptest.Eventually(t, 10*time.Second, "the deliveries log has the pings and the event", func() bool {
		all, pings, events = nil, 0, 0
		after := ""
		for range 10 {
			path := base + "/" + sub.ID + "/deliveries?limit=2"
			if after != "" {
				path += "&after=" + after
			}
			r := e.Do("GET", path, nil)
			var page struct {
				Data []webhooks.Delivery
				Meta struct {
					More bool
					Next string
				}
			}
			r.JSON(t, &page)
			all = append(all, page.Data...)
			if !page.Meta.More {
				break
			}
			after = page.Meta.Next
		}
		for _, d := range all {
			if d.Ping {
				pings++
			} else if d.Outcome == webhooks.OutcomeDelivered && d.EventType == "com.a64core.crm.customer.created.v1" && d.Attempt == 1 && d.StreamSequence > 0 {
				events++
			}
		}
		return pings == 5 && events == 1
	})
	if len(all) != 6 {
		t.Errorf("deliveries log: %d records, want 5 pings and the event: %+v", len(all), all)
	}
	for _, q := range []string{"limit=0", "limit=501", "after=x", "after=12", "since=yesterday", "foo=1"} {
		if r := e.Do("GET", base+"/"+sub.ID+"/deliveries?"+q, nil); r.Status != 400 {
			t.Errorf("deliveries?%s: %d", q, r.Status)
		}
	}
	if r := e.Do("GET", base+"/"+sub.ID+"/deliveries?since="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339), nil); r.Status != 200 || !strings.Contains(string(r.Body), `"data":[]`) {
		t.Errorf("deliveries since the future: %d %s", r.Status, r.Body)
	}

	// Delete: gone, its consumers too.
	if r := e.Do("DELETE", base+"/"+sub.ID, nil); r.Status != 200 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := e.Do("GET", base+"/"+sub.ID, nil); r.Status != 404 {
		t.Errorf("after delete: %d", r.Status)
	}
	if r := e.Do("DELETE", base+"/"+sub.ID, nil); r.Status != 404 {
		t.Errorf("delete again: %d", r.Status)
	}
	_, js := e.JetStream()
	apptest.Eventually(t, 10*time.Second, "consumers removed", func() bool {
		s, err := js.Stream(context.Background(), "CRM_CUSTOMERS")
		if err != nil {
			return false
		}
		for n := range s.ConsumerNames(context.Background()).Name() {
			if strings.HasPrefix(n, webhooks.ConsumerPrefix+sub.ID) {
				return false
			}
		}
		return true
	})
}

func uuidLike() string { return "0b5d2f9e-6a4c-4c1e-9a7e-3f1d2c4b5a69" }

// TestWebhookPolicyWithoutAllowList: without WEBHOOK_ALLOW_HTTP and
// WEBHOOK_ALLOW_NETS, http and loopback targets are refused.
func TestWebhookPolicyWithoutAllowList(t *testing.T) {
	e := apptest.StartEmbedded(t)
	for _, u := range []string{"http://example.com/x", "https://127.0.0.1:9/x", "https://[::ffff:127.0.0.1]/x", "https://0.0.0.0/x", "https://localhost/x"} {
		if r := e.Do("POST", "/api/v1/crm/webhooks", map[string]string{"url": u}); r.Status != 400 {
			t.Errorf("%s: %d %s", u, r.Status, r.Body)
		}
	}
	if r := e.Do("POST", "/api/v1/crm/webhooks", map[string]string{"url": "https://203.0.114.7/x"}); r.Status != 201 {
		t.Errorf("a public address: %d %s", r.Status, r.Body)
	}
}
