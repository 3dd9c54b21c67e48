package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"crm/internal/auth"
	"crm/internal/commands"
	"crm/internal/customer"
	"crm/internal/embedded"
	"crm/internal/events"
	"crm/internal/eventstore"
	"crm/internal/fault"
)

// start runs an embedded nats-server (JetStream in a temp dir, every write
// synced, loopback TCP) and opens a store on it.
func start(t *testing.T) (*embedded.Server, *eventstore.Store, *nats.Conn) {
	t.Helper()
	ns, err := embedded.Start(embedded.Config{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return ns, open(t, ns, eventstore.Config{}), nil
}

func open(t *testing.T, ns *embedded.Server, cfg eventstore.Config) *eventstore.Store {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	es, err := eventstore.Open(context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(es.Close)
	return es
}

var now = time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)

func created(id, code string, correlation string) events.Event {
	return events.Event{ID: uuid.NewString(), AggregateID: id, Time: now, Version: 1, Actor: "tester", CorrelationID: correlation,
		Data: &events.CustomerCreated{CustomerID: id, CustomerCode: code, Name: "Customer " + code, Type: "individual",
			Status: "lead", Tags: []string{}, CreatedBy: "tester", CreatedAt: now}}
}

func updated(st customer.Customer, status, correlation string) events.Event {
	return events.Event{ID: uuid.NewString(), AggregateID: st.ID, Time: now, Version: st.Version + 1, Actor: "tester",
		CorrelationID: correlation, Data: &events.CustomerUpdated{CustomerID: st.ID, CustomerCode: st.Code,
			Changes: events.Changes{Status: events.SetTo(status)}, UpdatedBy: "tester", UpdatedAt: now}}
}

// load folds a customer from the store and returns its state and last
// sequence.
func load(t *testing.T, es *eventstore.Store, id string) (customer.Customer, uint64, []events.Event) {
	t.Helper()
	evs, last, err := es.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return customer.Fold(evs), last, evs
}

func lastSeq(t *testing.T, es *eventstore.Store) uint64 {
	t.Helper()
	s, err := es.JetStream().Stream(context.Background(), es.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// TestAppendSeveralCustomersAtomically: events of two customers are stored
// together, with consecutive sequences, when both expectations hold; when
// either does not, nothing is stored.
func TestAppendSeveralCustomersAtomically(t *testing.T) {
	_, es, _ := start(t)
	ctx := context.Background()
	a, b := uuid.NewString(), uuid.NewString()
	for i, id := range []string{a, b} {
		if _, err := es.Append(ctx, []events.Event{created(id, fmt.Sprintf("C%03d", i+1), "")}, map[string]uint64{id: 0}); err != nil {
			t.Fatal(err)
		}
	}
	sa, la, _ := load(t, es, a)
	sb, lb, _ := load(t, es, b)

	seqs, err := es.Append(ctx, []events.Event{updated(sa, "active", ""), updated(sb, "active", "")}, map[string]uint64{a: la, b: lb})
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 2 || seqs[1] != seqs[0]+1 || seqs[1] != lastSeq(t, es) {
		t.Fatalf("sequences %v, stream at %d", seqs, lastSeq(t, es))
	}
	sa2, la2, _ := load(t, es, a)
	sb2, lb2, _ := load(t, es, b)
	if sa2.Status != "active" || sb2.Status != "active" || la2 != seqs[0] || lb2 != seqs[1] {
		t.Fatalf("after the batch: %s@%d %s@%d, want active@%d active@%d", sa2.Status, la2, sb2.Status, lb2, seqs[0], seqs[1])
	}

	// A stale expectation of either customer: nothing is stored.
	before := lastSeq(t, es)
	for _, exp := range []map[string]uint64{{a: la, b: lb2}, {a: la2, b: lb}} {
		_, err := es.Append(ctx, []events.Event{updated(sa2, "inactive", ""), updated(sb2, "inactive", "")}, exp)
		if !errors.Is(err, eventstore.ErrConflict) || fault.KindOf(err) != fault.Conflict {
			t.Fatalf("stale expectation %v: %v, want ErrConflict", exp, err)
		}
	}
	if got := lastSeq(t, es); got != before {
		t.Fatalf("a refused batch stored events: stream %d → %d", before, got)
	}
	if s, _, _ := load(t, es, a); s.Status != "active" {
		t.Fatalf("customer a changed by a refused batch: %s", s.Status)
	}
	// Every customer of a batch needs an expectation.
	if _, err := es.Append(ctx, []events.Event{updated(sa2, "lead", ""), updated(sb2, "lead", "")}, map[string]uint64{a: la2}); err == nil {
		t.Fatal("a batch without an expectation for one customer was accepted")
	}
}

// TestAppendSeveralEventsOfOneCustomer: a decision of several events for
// one customer gets one sequence per event; Load returns them in order.
func TestAppendSeveralEventsOfOneCustomer(t *testing.T) {
	_, es, _ := start(t)
	id := uuid.NewString()
	c := created(id, "C001", "")
	st := customer.Fold([]events.Event{c})
	u1 := updated(st, "prospect", "")
	st = customer.Evolve(st, u1)
	u2 := updated(st, "active", "")
	seqs, err := es.Append(context.Background(), []events.Event{c, u1, u2}, map[string]uint64{id: 0})
	if err != nil {
		t.Fatal(err)
	}
	got, last, evs := load(t, es, id)
	if len(evs) != 3 || last != seqs[2] || got.Version != 3 || got.Status != "active" {
		t.Fatalf("loaded %d events up to %d, state v%d %s; sequences %v", len(evs), last, got.Version, got.Status, seqs)
	}
	for i, e := range evs {
		if e.Seq != seqs[i] || e.Version != uint64(i+1) {
			t.Fatalf("event %d: seq %d version %d, want seq %d", i, e.Seq, e.Version, seqs[i])
		}
	}
	// The same batch again (a retry after an unknown outcome) conflicts:
	// the customer exists now.
	if _, err := es.Append(context.Background(), []events.Event{c, u1, u2}, map[string]uint64{id: 0}); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("replayed batch: %v", err)
	}
}

// TestTwoCustomerCommandRacingPatches: a command that changes two customers
// at once, racing with patches of either through the command handler, never
// lands half-applied: each of its batches is in the stream whole or not at
// all, exactly as its Append reported, and every customer's versions stay
// 1, 2, 3, … in stream order.
func TestTwoCustomerCommandRacingPatches(t *testing.T) {
	ns, es, _ := start(t)
	ctx := context.Background()
	a, b := uuid.NewString(), uuid.NewString()
	for i, id := range []string{a, b} {
		if _, err := es.Append(ctx, []events.Event{created(id, fmt.Sprintf("C%03d", i+1), "")}, map[string]uint64{id: 0}); err != nil {
			t.Fatal(err)
		}
	}
	h := commands.New(open(t, ns, eventstore.Config{}), commands.Options{})
	req := commands.Request{Principal: auth.Principal{Subject: "patcher", Permissions: []string{auth.PermEdit}}}
	statuses := []string{"lead", "prospect", "active", "inactive"}

	var (
		wg        sync.WaitGroup
		stop      atomic.Bool
		mu        sync.Mutex
		succeeded = map[string]bool{}
		refused   = map[string]bool{}
	)
	// A bounded number of patches: a customer's load reads its whole
	// history, so an unbounded race would slow down as it goes.
	for p, id := range []string{a, b} {
		wg.Go(func() {
			for i := 0; i < 150 && !stop.Load(); i++ {
				in := customer.Input{Status: events.SetTo(statuses[(i+p)%4]), Notes: events.SetTo(fmt.Sprint("patch ", i))}
				if _, err := h.UpdateCustomer(ctx, req, id, in, 0); err != nil && !fault.Is(err, fault.Conflict) {
					t.Errorf("patch: %v", err)
					return
				}
				// Pace the patches (a synced append takes about a
				// millisecond) so that some pairs get between them.
				time.Sleep(time.Duration(4+i%7) * time.Millisecond)
			}
		})
	}
	// Each two-customer command is retried on fresh state after a
	// conflict, as the command handler does; every attempt is marked.
	patching := make(chan struct{})
	go func() { wg.Wait(); close(patching) }()
	racing := func() bool {
		select {
		case <-patching:
			return false
		default:
			return true
		}
	}
	command := func(n int) {
		for attempt := 0; attempt < 30; attempt++ {
			pair := fmt.Sprintf("pair-%d-%d", n, attempt)
			sa, la, _ := load(t, es, a)
			sb, lb, _ := load(t, es, b)
			_, err := es.Append(ctx, []events.Event{updated(sa, statuses[n%4], pair), updated(sb, statuses[(n+1)%4], pair)},
				map[string]uint64{a: la, b: lb})
			mu.Lock()
			switch {
			case err == nil:
				succeeded[pair] = true
			case errors.Is(err, eventstore.ErrConflict):
				refused[pair] = true
			default:
				t.Fatalf("pair append: %v", err)
			}
			mu.Unlock()
			if err == nil {
				return
			}
		}
	}
	n := 0
	for ; racing(); n++ {
		command(n)
	}
	command(n) // and one after the race: it must apply whole
	stop.Store(true)
	wg.Wait()
	if len(succeeded) < 2 || len(refused) == 0 {
		t.Fatalf("%d pairs stored, %d refused: the race did not happen", len(succeeded), len(refused))
	}

	found := map[string][]string{}
	for _, id := range []string{a, b} {
		_, _, evs := load(t, es, id)
		for i, e := range evs {
			if e.Version != uint64(i+1) {
				t.Fatalf("customer %s: event %d has version %d", id, i, e.Version)
			}
			if e.CorrelationID != "" {
				found[e.CorrelationID] = append(found[e.CorrelationID], id)
			}
		}
	}
	for pair, ids := range found {
		if !succeeded[pair] || !slices.Contains(ids, a) || !slices.Contains(ids, b) || len(ids) != 2 {
			t.Errorf("%s is in the stream as %v (reported stored: %v)", pair, ids, succeeded[pair])
		}
	}
	for pair := range succeeded {
		if len(found[pair]) != 2 {
			t.Errorf("%s was acknowledged but is not in the stream whole: %v", pair, found[pair])
		}
	}
	t.Logf("%d two-customer batches stored, %d refused by a concurrent patch", len(succeeded), len(refused))
}

// TestLoadPagesDirectGets: Load reads a customer's events across several
// batched direct gets (256 a batch) in order, and an unknown customer has
// none.
func TestLoadPagesDirectGets(t *testing.T) {
	_, es, _ := start(t)
	ctx := context.Background()
	id, other := uuid.NewString(), uuid.NewString()
	evs := []events.Event{created(id, "C001", "")}
	st := customer.Fold(evs)
	for i := 0; i < 600; i++ {
		e := updated(st, []string{"active", "inactive"}[i%2], "")
		st = customer.Evolve(st, e)
		evs = append(evs, e)
	}
	// In batches, interleaved with another customer's events.
	last := uint64(0)
	for start := 0; start < len(evs); start += 100 {
		end := min(start+100, len(evs))
		seqs, err := es.Append(ctx, evs[start:end], map[string]uint64{id: last})
		if err != nil {
			t.Fatal(err)
		}
		last = seqs[len(seqs)-1]
		if start == 0 {
			if _, err := es.Append(ctx, []events.Event{created(other, "C002", "")}, map[string]uint64{other: 0}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, gotLast, loaded := load(t, es, id)
	if len(loaded) != 601 || gotLast != last || got.Version != 601 {
		t.Fatalf("loaded %d events up to %d (v%d), want 601 up to %d", len(loaded), gotLast, got.Version, last)
	}
	for i := 1; i < len(loaded); i++ {
		if loaded[i].Seq <= loaded[i-1].Seq {
			t.Fatalf("events out of order at %d", i)
		}
	}
	if evs, last, err := es.Load(ctx, uuid.NewString()); err != nil || len(evs) != 0 || last != 0 {
		t.Fatalf("unknown customer: %d events, last %d, %v", len(evs), last, err)
	}
}

// TestNextCodeAcrossStores: two stores (two processes' connections) draw
// customer numbers concurrently: every number is given once, none skipped.
func TestNextCodeAcrossStores(t *testing.T) {
	ns, es1, _ := start(t)
	es2 := open(t, ns, eventstore.Config{})
	var (
		mu   sync.Mutex
		seen = map[uint64]bool{}
		wg   sync.WaitGroup
	)
	for w := range 16 {
		es := []*eventstore.Store{es1, es2}[w%2]
		wg.Go(func() {
			for range 25 {
				n, err := es.NextCode(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[n] {
					t.Errorf("number %d given twice", n)
				}
				seen[n] = true
				mu.Unlock()
			}
		})
	}
	// Ranges reserved at once take their place among single numbers.
	wg.Go(func() {
		for range 5 {
			first, err := es2.NextCodes(context.Background(), 20)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for n := first; n < first+20; n++ {
				if seen[n] {
					t.Errorf("number %d given twice", n)
				}
				seen[n] = true
			}
			mu.Unlock()
		}
	})
	wg.Wait()
	for n := uint64(1); n <= 500; n++ {
		if !seen[n] {
			t.Fatalf("number %d never given (%d given)", n, len(seen))
		}
	}
}

// TestAppendErrors: a single event appended twice (a retry) is stored once
// (the second is a conflict);
// a server that is gone is Unavailable; one that cannot write its disk is
// ErrNotWritable at once, with nothing sent.
func TestAppendErrors(t *testing.T) {
	ns, es, _ := start(t)
	ctx := context.Background()
	id := uuid.NewString()
	c := created(id, "C001", "")
	s1, err := es.Append(ctx, []events.Event{c}, map[string]uint64{id: 0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := es.Append(ctx, []events.Event{c}, map[string]uint64{id: 0}); !errors.Is(err, eventstore.ErrConflict) || lastSeq(t, es) != s1[0] {
		t.Fatalf("retried append: %v, stream at %d (first at %d)", err, lastSeq(t, es), s1[0])
	}

	full := open(t, ns, eventstore.Config{Writable: func() error { return errors.New("no space left on device") }})
	other := uuid.NewString()
	if _, err := full.Append(ctx, []events.Event{created(other, "C002", "")}, map[string]uint64{other: 0}); !errors.Is(err, eventstore.ErrNotWritable) ||
		fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("append to a full disk: %v", err)
	}

	short := open(t, ns, eventstore.Config{Timeout: 300 * time.Millisecond})
	ns.Shutdown()
	for _, evs := range [][]events.Event{{created(other, "C002", "")}, {created(other, "C002", ""), created(uuid.NewString(), "C003", "")}} {
		exp := map[string]uint64{}
		for _, e := range evs {
			exp[e.AggregateID] = 0
		}
		if _, err := short.Append(ctx, evs, exp); !errors.Is(err, eventstore.ErrUnavailable) || fault.KindOf(err) != fault.Unavailable {
			t.Fatalf("append of %d to a stopped server: %v", len(evs), err)
		}
	}
	if _, _, err := short.Load(ctx, id); fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("load from a stopped server: %v", err)
	}
	if _, err := short.NextCode(ctx); fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("code from a stopped server: %v", err)
	}
}

// TestAppendBatchOnACluster: on a 3-node JetStream cluster with the stream at
// 3 replicas, a two-customer batch is stored whole, and one with a stale
// expectation is not stored at all.
func TestAppendBatchOnACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short")
	}
	servers, err := embedded.StartCluster("crm", []string{t.TempDir(), t.TempDir(), t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range servers {
		t.Cleanup(s.Shutdown)
	}
	var es *eventstore.Store
	deadline := time.Now().Add(30 * time.Second)
	for {
		nc, err := nats.Connect(servers[1].ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		es, err = eventstore.Open(context.Background(), nc, eventstore.Config{Replicas: 3})
		if err == nil {
			t.Cleanup(es.Close)
			t.Cleanup(nc.Close)
			break
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatalf("open on the cluster: %v", err)
		}
		time.Sleep(200 * time.Millisecond) // the meta leader is being elected
	}
	ctx := context.Background()
	a, b := uuid.NewString(), uuid.NewString()
	seqs, err := es.Append(ctx, []events.Event{created(a, "C001", ""), created(b, "C002", "")}, map[string]uint64{a: 0, b: 0})
	if err != nil || len(seqs) != 2 || seqs[1] != seqs[0]+1 {
		t.Fatalf("batch of two creates: %v %v", seqs, err)
	}
	sa, la, _ := load(t, es, a)
	sb, lb, _ := load(t, es, b)
	if la != seqs[0] || lb != seqs[1] {
		t.Fatalf("loaded at %d and %d, want %v", la, lb, seqs)
	}
	before := lastSeq(t, es)
	if _, err := es.Append(ctx, []events.Event{updated(sa, "active", ""), updated(sb, "active", "")}, map[string]uint64{a: la, b: lb - 1}); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("stale expectation on a cluster: %v", err)
	}
	if got := lastSeq(t, es); got != before {
		t.Fatalf("a refused batch stored events on a cluster: %d → %d", before, got)
	}
	if _, err := es.Append(ctx, []events.Event{updated(sa, "active", ""), updated(sb, "active", "")}, map[string]uint64{a: la, b: lb}); err != nil {
		t.Fatalf("batch on a cluster: %v", err)
	}
}

// TestClaims: a claim is appended with its customer's event, found by
// LoadClaim, and a second claim of the value expecting it unclaimed is a
// conflict that stores nothing.
func TestClaims(t *testing.T) {
	_, es, _ := start(t)
	ctx := context.Background()
	subject := events.ClaimSubject("email", "ann@example.com")
	if holder, seq, err := es.LoadClaim(ctx, subject); err != nil || holder != "" || seq != 0 {
		t.Fatalf("unclaimed: %q %d %v", holder, seq, err)
	}
	a, b := uuid.NewString(), uuid.NewString()
	seqs, err := es.Append(ctx, []events.Event{created(a, "C001", "")}, map[string]uint64{a: 0},
		events.Claim{Subject: subject, CustomerID: a})
	if err != nil {
		t.Fatal(err)
	}
	holder, claimSeq, err := es.LoadClaim(ctx, subject)
	if err != nil || holder != a || claimSeq != seqs[0]-1 || lastSeq(t, es) != seqs[0] {
		t.Fatalf("claimed: %q at %d (event at %d), %v", holder, claimSeq, seqs[0], err)
	}
	before := lastSeq(t, es)
	if _, err := es.Append(ctx, []events.Event{created(b, "C002", "")}, map[string]uint64{b: 0},
		events.Claim{Subject: subject, CustomerID: b}); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("a second claim: %v", err)
	}
	if lastSeq(t, es) != before {
		t.Fatal("a refused claim stored messages")
	}
	// Taken over at its sequence.
	if _, err := es.Append(ctx, []events.Event{created(b, "C002", "")}, map[string]uint64{b: 0},
		events.Claim{Subject: subject, CustomerID: b, ExpectedSeq: claimSeq}); err != nil {
		t.Fatal(err)
	}
	if holder, _, _ := es.LoadClaim(ctx, subject); holder != b {
		t.Fatalf("after the takeover: %q", holder)
	}
	// The change feed leaves claims out, but a page that read only a claim
	// still moves the reader past it.
	evs, last, more, err := es.ReadChanges(ctx, 0, 1)
	if err != nil || len(evs) != 0 || last != claimSeq || !more {
		t.Fatalf("ReadChanges of the first claim = %d events, last %d (claim at %d), more %v, %v", len(evs), last, claimSeq, more, err)
	}
	evs, last, _, err = es.ReadChanges(ctx, last, 1)
	if err != nil || len(evs) != 1 || evs[0].AggregateID != a || last != seqs[0] || evs[0].Seq != seqs[0] {
		t.Fatalf("ReadChanges after the claim = %+v, last %d, %v", evs, last, err)
	}
}

// TestContactEvents: a contact's events live on crm.contacts.<id>.<kind>
// in the same stream, load by aggregate (a customer's Load of the same id
// finds none), and are checked against the contact's own last sequence: a
// stale expectation stores nothing; a customer and a contact change
// together in one atomic batch.
func TestContactEvents(t *testing.T) {
	_, es, _ := start(t)
	ctx := context.Background()
	k, c := uuid.NewString(), uuid.NewString()
	contactCreated := events.Event{ID: uuid.NewString(), AggregateID: k, Time: now, Version: 1, Actor: "tester",
		Data: &events.ContactCreated{ContactID: k, Name: "Ann Lee", Tags: []string{}, CreatedBy: "tester", CreatedAt: now}}
	contactUpdated := func(version uint64, title string) events.Event {
		return events.Event{ID: uuid.NewString(), AggregateID: k, Time: now, Version: version, Actor: "tester",
			Data: &events.ContactUpdated{ContactID: k, Changes: events.ContactChanges{Title: events.SetTo(title)}, UpdatedBy: "tester", UpdatedAt: now}}
	}
	seqs, err := es.Append(ctx, []events.Event{contactCreated}, map[string]uint64{k: 0})
	if err != nil {
		t.Fatal(err)
	}
	evs, last, err := es.LoadAggregate(ctx, events.Contacts, k)
	if err != nil || len(evs) != 1 || last != seqs[0] || evs[0].Data.(*events.ContactCreated).Name != "Ann Lee" {
		t.Fatalf("LoadAggregate = %+v, %d, %v", evs, last, err)
	}
	if evs, last, err := es.Load(ctx, k); err != nil || len(evs) != 0 || last != 0 {
		t.Fatalf("a customer Load of a contact's id = %d events, %d, %v", len(evs), last, err)
	}
	// A stale expectation (another writer's create) is a conflict.
	before := lastSeq(t, es)
	if _, err := es.Append(ctx, []events.Event{contactUpdated(2, "CFO")}, map[string]uint64{k: 0}); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("stale contact append: %v, want ErrConflict", err)
	}
	if got := lastSeq(t, es); got != before {
		t.Fatalf("a refused append stored events: %d → %d", before, got)
	}
	// One batch across both aggregates.
	seqs, err = es.Append(ctx, []events.Event{created(c, "C001", ""), contactUpdated(2, "CFO")}, map[string]uint64{c: 0, k: last})
	if err != nil || len(seqs) != 2 {
		t.Fatalf("a batch of a customer and a contact: %v %v", seqs, err)
	}
	if evs, _, _ := es.LoadAggregate(ctx, events.Contacts, k); len(evs) != 2 || evs[1].Seq != seqs[1] {
		t.Fatalf("contact after the batch: %+v", evs)
	}
	if st, _, _ := load(t, es, c); st.Code != "C001" {
		t.Fatalf("customer after the batch: %+v", st)
	}
	// The change feed reads every aggregate's events, in stream order.
	changes, last, more, err := es.ReadChanges(ctx, 0, 100)
	if err != nil || more || last != lastSeq(t, es) {
		t.Fatalf("ReadChanges: last %d (tip %d), more %v, %v", last, lastSeq(t, es), more, err)
	}
	var got []events.Aggregate
	for _, ev := range changes {
		got = append(got, ev.Data.Aggregate())
	}
	if want := []events.Aggregate{events.Contacts, events.Customers, events.Contacts}; !slices.Equal(got, want) {
		t.Fatalf("change feed aggregates = %v, want %v", got, want)
	}
}
