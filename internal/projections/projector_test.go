package projections_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"crm/internal/activity"
	"crm/internal/auth"
	"crm/internal/commands"
	"crm/internal/contact"
	"crm/internal/customer"
	"crm/internal/embedded"
	"crm/internal/events"
	"crm/internal/eventstore"
	"crm/internal/fault"
	"crm/internal/projections"
	"crm/internal/readmodel"
	"crm/internal/readmodel/storetest"
)

type rig struct {
	t   *testing.T
	nc  *nats.Conn
	es  *eventstore.Store
	cmd *commands.Handler
	ids []string
	// contacts and activities are the ids of those randomOps created.
	contacts, activities []string
	linked               int // successful link commands
	rnd                  *rand.Rand
}

// newRig starts an embedded nats-server (JetStream in a temp dir, loopback
// TCP) and a command handler on it.
func newRig(t *testing.T, seed uint64) *rig {
	t.Helper()
	ns, err := embedded.Start(embedded.Config{DataDir: t.TempDir(), Port: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	es, err := eventstore.Open(context.Background(), nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(es.Close)
	h := commands.New(es, commands.Options{})
	return &rig{t: t, nc: nc, es: es, cmd: h, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

var admin = commands.Request{Principal: auth.Principal{
	Subject: "44444444-4444-4444-8444-444444444444", Permissions: []string{auth.PermCreate, auth.PermDelete, auth.PermEdit, auth.PermView},
}}

func str(s string) customer.Field[string] { return events.SetTo(s) }

// randomOps runs n random commands: creates, updates (set and clear fields,
// addresses, tags), deletes and restores.
func (r *rig) randomOps(n int) {
	r.t.Helper()
	ctx := context.Background()
	words := []string{"Acme", "José", "Smith", "Globex", "Initech", "Zoë", "Müller", "O'Brien", "Umbrella", "Stark"}
	w := func() string { return words[r.rnd.IntN(len(words))] }
	for i := 0; i < n; i++ {
		if r.rnd.IntN(5) == 0 {
			r.randomContactOp(w)
			continue
		}
		if r.rnd.IntN(6) == 0 && len(r.ids) > 0 {
			r.randomActivityOp(w)
			continue
		}
		op := r.rnd.IntN(10)
		switch {
		case op < 4 || len(r.ids) == 0:
			in := customer.Input{Name: str(w() + " " + w())}
			if r.rnd.IntN(2) == 0 {
				in.Email = str(fmt.Sprintf("user%d@example.com", r.rnd.IntN(1000)))
			}
			if r.rnd.IntN(2) == 0 {
				in.Company = str(w() + " Corp")
			}
			in.Tags = events.SetTo([]string{w(), w()})
			res, err := r.cmd.CreateCustomer(ctx, admin, in)
			if err != nil {
				r.t.Fatal(err)
			}
			r.ids = append(r.ids, res.Customer.ID)
		case op < 9:
			id := r.ids[r.rnd.IntN(len(r.ids))]
			var in customer.Input
			switch r.rnd.IntN(6) {
			case 0:
				in.Name = str(w() + " " + w())
			case 1:
				in.Email = events.Cleared[string]()
			case 2:
				in.Status = str([]string{"lead", "prospect", "active", "inactive"}[r.rnd.IntN(4)])
			case 3:
				in.Address = customer.AddressInput{Set: true, City: str(w())}
			case 4:
				in.Tags = events.SetTo([]string{w()})
			case 5:
				in.Company = events.Cleared[string]()
				in.Notes = str("note " + w())
			}
			if _, err := r.cmd.UpdateCustomer(ctx, admin, id, in, 0); err != nil && !errors.Is(err, customer.ErrNotFound) && !fault.Is(err, fault.Moved) {
				r.t.Fatal(err)
			}
		case r.rnd.IntN(4) == 0 && len(r.ids) > 3:
			// A merge of two or three customers, or an unmerge; of
			// customers deleted or merged already, a refusal.
			pick := func() string { return r.ids[r.rnd.IntN(len(r.ids))] }
			survivor := pick()
			if r.rnd.IntN(3) == 0 {
				_, _, err := r.cmd.UnmergeCustomer(ctx, admin, survivor, pick())
				if err != nil && !fault.Is(err, fault.Invalid) && !fault.Is(err, fault.Moved) && !errors.Is(err, customer.ErrNotFound) {
					r.t.Fatal(err)
				}
				continue
			}
			absorbed := []string{pick()}
			if r.rnd.IntN(2) == 0 {
				absorbed = append(absorbed, pick())
			}
			_, err := r.cmd.MergeCustomers(ctx, admin, survivor, absorbed, nil, false)
			if err != nil && !fault.Is(err, fault.Invalid) && !fault.Is(err, fault.Moved) && !errors.Is(err, customer.ErrNotFound) {
				r.t.Fatal(err)
			}
		case r.rnd.IntN(2) == 0:
			// A restore: of a deleted customer it is an event; of a live
			// one a refusal.
			id := r.ids[r.rnd.IntN(len(r.ids))]
			if _, err := r.cmd.RestoreCustomer(ctx, admin, id, 0); err != nil && !errors.Is(err, customer.ErrNotDeleted) && !fault.Is(err, fault.Moved) {
				r.t.Fatal(err)
			}
		default:
			id := r.ids[r.rnd.IntN(len(r.ids))]
			if _, err := r.cmd.DeleteCustomer(ctx, admin, id, 0); err != nil && !errors.Is(err, customer.ErrNotFound) && !fault.Is(err, fault.Moved) {
				r.t.Fatal(err)
			}
		}
	}
}

// randomContactOp creates, changes or deletes a contact: events of another
// aggregate between the customers', in the same stream.
func (r *rig) randomContactOp(w func() string) {
	r.t.Helper()
	ctx := context.Background()
	switch op := r.rnd.IntN(7); {
	case op >= 5 && len(r.contacts) > 0 && len(r.ids) > 0:
		// A link set, changed or ended (of a deleted or merged customer or
		// contact, a refusal).
		cid, kid := r.ids[r.rnd.IntN(len(r.ids))], r.contacts[r.rnd.IntN(len(r.contacts))]
		var err error
		if op == 5 {
			_, err = r.cmd.LinkContact(ctx, admin, cid, kid, contact.LinkInput{Role: str(w()), Primary: r.rnd.IntN(2) == 0})
			if err == nil {
				r.linked++
			}
		} else {
			_, err = r.cmd.UnlinkContact(ctx, admin, cid, kid)
		}
		if err != nil && !errors.Is(err, customer.ErrNotFound) && !errors.Is(err, contact.ErrNotFound) &&
			!errors.Is(err, contact.ErrNotLinked) && !fault.Is(err, fault.Moved) {
			r.t.Fatal(err)
		}
	case op < 2 || len(r.contacts) == 0:
		in := contact.Input{Name: str(w() + " " + w()), Tags: events.SetTo([]string{w()})}
		if r.rnd.IntN(2) == 0 {
			in.Email = str(fmt.Sprintf("contact%d@example.com", r.rnd.IntN(1000)))
		}
		res, err := r.cmd.CreateContact(ctx, admin, in)
		if err != nil {
			r.t.Fatal(err)
		}
		r.contacts = append(r.contacts, res.Contact.ID)
	case op < 4:
		in := contact.Input{Title: str("Head of " + w())}
		if r.rnd.IntN(2) == 0 {
			in.Name, in.Tags = str(w()), events.SetTo([]string{w(), w()})
		}
		id := r.contacts[r.rnd.IntN(len(r.contacts))]
		if _, err := r.cmd.UpdateContact(ctx, admin, id, in, 0); err != nil && !errors.Is(err, contact.ErrNotFound) {
			r.t.Fatal(err)
		}
	default:
		id := r.contacts[r.rnd.IntN(len(r.contacts))]
		if _, err := r.cmd.DeleteContact(ctx, admin, id, 0); err != nil && !errors.Is(err, contact.ErrNotFound) {
			r.t.Fatal(err)
		}
	}
}

// randomActivityOp records, changes or deletes an activity of a random
// customer (of a deleted or merged one, a refusal).
func (r *rig) randomActivityOp(w func() string) {
	r.t.Helper()
	ctx := context.Background()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.rnd.IntN(1e6)) * time.Second).Format(time.RFC3339)
	switch op := r.rnd.IntN(4); {
	case op < 2 || len(r.activities) == 0:
		res, err := r.cmd.CreateActivity(ctx, admin, r.ids[r.rnd.IntN(len(r.ids))],
			activity.Input{Type: str([]string{"call", "email", "note", "task"}[r.rnd.IntN(4)]), OccurredAt: str(at), Subject: str(w())})
		if err != nil && !errors.Is(err, customer.ErrNotFound) && !fault.Is(err, fault.Moved) {
			r.t.Fatal(err)
		}
		if err == nil {
			r.activities = append(r.activities, res.Activity.ID)
		}
	case op == 2:
		id := r.activities[r.rnd.IntN(len(r.activities))]
		if _, err := r.cmd.UpdateActivity(ctx, admin, id, activity.Input{OccurredAt: str(at), Outcome: str(w())}, 0); err != nil && !errors.Is(err, activity.ErrNotFound) {
			r.t.Fatal(err)
		}
	default:
		id := r.activities[r.rnd.IntN(len(r.activities))]
		if _, err := r.cmd.DeleteActivity(ctx, admin, id, 0); err != nil && !errors.Is(err, activity.ErrNotFound) {
			r.t.Fatal(err)
		}
	}
}

// assertTimelinesEqualFold checks the activity documents against the fold
// of their events, and each customer's timeline against its events and
// live activities.
func (r *rig) assertTimelinesEqualFold(store readmodel.Store) {
	r.t.Helper()
	ctx := context.Background()
	acts := map[string]activity.Activity{}
	entries := map[string][]string{} // customer → keys, as the timeline must list them
	at := map[string]time.Time{}
	for _, ev := range r.streamEvents() {
		switch ev.Data.Aggregate() {
		case events.Activities:
			acts[ev.AggregateID] = activity.Evolve(acts[ev.AggregateID], ev)
		case events.Customers:
			k := "e:" + ev.ID
			entries[ev.AggregateID] = append(entries[ev.AggregateID], k)
			at[k] = ev.Time
		}
	}
	ids := make([]string, 0, len(acts))
	for id, a := range acts {
		ids = append(ids, id)
		if a.Exists() {
			k := "a:" + id
			entries[a.CustomerID] = append(entries[a.CustomerID], k)
			at[k] = a.OccurredAt
		}
	}
	got, err := store.LoadActivities(ctx, ids)
	if err != nil || len(got) != len(acts) {
		r.t.Fatalf("LoadActivities: %d of %d (%v)", len(got), len(acts), err)
	}
	for id, a := range acts {
		g, w := got[id], readmodel.FromActivity(a)
		for _, t := range []*time.Time{&g.OccurredAt, &g.DueAt, &g.CreatedAt, &g.UpdatedAt, &w.OccurredAt, &w.DueAt, &w.CreatedAt, &w.UpdatedAt} {
			*t = t.UTC()
		}
		if !reflect.DeepEqual(g, w) {
			r.t.Fatalf("activity %s:\n read model %+v\n fold       %+v", id, g, w)
		}
	}
	for cid, keys := range entries {
		slices.SortFunc(keys, func(x, y string) int {
			if c := at[y].Compare(at[x]); c != 0 {
				return c
			}
			return strings.Compare(y, x)
		})
		var all []string
		q := readmodel.TimelineQuery{CustomerIDs: []string{cid}, PerPage: 7}
		for {
			p, err := store.Timeline(ctx, q)
			if err != nil {
				r.t.Fatal(err)
			}
			for _, it := range p.Items {
				all = append(all, it.Key)
			}
			if !p.More {
				break
			}
			last := p.Items[len(p.Items)-1]
			q.After = &readmodel.TimelinePosition{At: last.At, Key: last.Key}
		}
		if !slices.Equal(all, keys) {
			r.t.Fatalf("customer %s timeline:\n read model %v\n fold       %v", cid, all, keys)
		}
	}
}

// foldContacts folds the contact events of the stream per contact.
func (r *rig) foldContacts() map[string]contact.Contact {
	r.t.Helper()
	out := map[string]contact.Contact{}
	for _, ev := range r.streamEvents() {
		if ev.Data.Aggregate() == events.Contacts {
			out[ev.AggregateID] = contact.Evolve(out[ev.AggregateID], ev)
		}
	}
	return out
}

// fold reads the whole stream and folds it per customer; it also returns the
// last sequence.
func (r *rig) fold() (map[string]customer.Customer, uint64) {
	r.t.Helper()
	out := map[string]customer.Customer{}
	evs := r.streamEvents()
	for _, ev := range evs {
		if ev.Data.Aggregate() == events.Customers {
			out[ev.AggregateID] = customer.Evolve(out[ev.AggregateID], ev)
		}
	}
	var last uint64
	if len(evs) > 0 {
		last = evs[len(evs)-1].Seq
	}
	return out, last
}

// streamEvents reads every event of the stream, in order.
func (r *rig) streamEvents() []events.Event {
	r.t.Helper()
	ctx := context.Background()
	js := r.es.JetStream()
	s, err := js.Stream(ctx, r.es.StreamName())
	if err != nil {
		r.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []events.Event
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			r.t.Fatal(err)
		}
		ev, err := events.Decode(m.Data)
		if err != nil {
			r.t.Fatal(err)
		}
		ev.Seq = m.Sequence
		out = append(out, ev)
	}
	return out
}

// assertEqualsFold checks the read model, document by document and field by
// field, against the fold of the stream, and its checkpoint.
func (r *rig) assertEqualsFold(store readmodel.Store) {
	r.t.Helper()
	want, last := r.fold()
	ctx := context.Background()
	if cp, err := store.Checkpoint(ctx); err != nil || cp != last {
		r.t.Fatalf("checkpoint %d (%v), want %d", cp, err, last)
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	got, err := store.Load(ctx, ids)
	if err != nil {
		r.t.Fatal(err)
	}
	if len(got) != len(want) {
		r.t.Fatalf("read model has %d documents, fold has %d", len(got), len(want))
	}
	live := 0
	for id, w := range want {
		g := got[id]
		if !reflect.DeepEqual(normalize(g), normalize(readmodel.FromState(w))) {
			r.t.Fatalf("customer %s differs:\n read model %+v\n fold       %+v", id, g, w)
		}
		_, err := store.Get(ctx, id)
		switch {
		case w.MergedInto != "" && (fault.KindOf(err) != fault.Moved || fault.Of(err).Ref != w.MergedInto):
			r.t.Fatalf("customer %s merged into %s: Get = %v", id, w.MergedInto, err)
		case w.Deleted && !errors.Is(err, readmodel.ErrNotFound):
			r.t.Fatalf("deleted customer %s: Get = %v", id, err)
		case w.Exists() && err != nil:
			r.t.Fatalf("live customer %s: Get = %v", id, err)
		}
		if w.Exists() {
			live++
		}
	}
	p, err := store.List(ctx, readmodel.Query{Page: 1, PerPage: 100})
	if err != nil || p.Total != int64(live) {
		r.t.Fatalf("list total %d (%v), want %d live customers", p.Total, err, live)
	}
	r.assertContactsEqualFold(store)
	r.assertTimelinesEqualFold(store)
}

// assertContactsEqualFold checks the contact documents against the fold of
// the contact events.
func (r *rig) assertContactsEqualFold(store readmodel.Store) {
	r.t.Helper()
	ctx := context.Background()
	want := r.foldContacts()
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	got, err := store.LoadContacts(ctx, ids)
	if err != nil {
		r.t.Fatal(err)
	}
	if len(got) != len(want) {
		r.t.Fatalf("read model has %d contacts, fold has %d", len(got), len(want))
	}
	live := 0
	for id, w := range want {
		wd := readmodel.FromContact(w)
		g := got[id]
		g.CreatedAt, g.UpdatedAt, wd.CreatedAt, wd.UpdatedAt = g.CreatedAt.UTC(), g.UpdatedAt.UTC(), wd.CreatedAt.UTC(), wd.UpdatedAt.UTC()
		if !reflect.DeepEqual(g, wd) {
			r.t.Fatalf("contact %s differs:\n read model %+v\n fold       %+v", id, g, wd)
		}
		_, err := store.GetContact(ctx, id)
		switch {
		case w.Deleted && !errors.Is(err, readmodel.ErrContactNotFound):
			r.t.Fatalf("deleted contact %s: GetContact = %v", id, err)
		case w.Exists() && err != nil:
			r.t.Fatalf("live contact %s: GetContact = %v", id, err)
		}
		if w.Exists() {
			live++
		}
	}
	p, err := store.ListContacts(ctx, readmodel.ContactQuery{PerPage: 100})
	if err != nil || p.Total != int64(live) {
		r.t.Fatalf("contact list total %d (%v), want %d live contacts", p.Total, err, live)
	}
	// The links of every live customer: those of the fold, to live
	// contacts.
	customers, _ := r.fold()
	links := 0
	for id, cu := range customers {
		if !cu.Exists() {
			continue
		}
		got, err := store.CustomerContacts(ctx, id)
		if err != nil {
			r.t.Fatal(err)
		}
		gotLinks := map[string]customer.Link{}
		for _, l := range got {
			gotLinks[l.Link.ContactID] = customer.Link{Role: l.Link.Role, Primary: l.Link.Primary, From: l.Link.From, To: l.Link.To,
				LinkedBy: l.Link.LinkedBy, LinkedAt: l.Link.LinkedAt.UTC()}
		}
		wantLinks := map[string]customer.Link{}
		for kid, l := range cu.Contacts {
			if want[kid].Exists() {
				l.LinkedAt = l.LinkedAt.UTC()
				l.MergedFrom = "" // the command side's note of a merge's copy, not in the read model
				wantLinks[kid] = l
			}
		}
		if !reflect.DeepEqual(gotLinks, wantLinks) {
			r.t.Fatalf("customer %s links:\n read model %+v\n fold       %+v", id, gotLinks, wantLinks)
		}
		links += len(wantLinks)
	}
	if r.linked > 0 && links == 0 && r.t.Name() == "TestProjectionEqualsFold/sqlite" {
		r.t.Fatal("the random operations left no link")
	}
}

func normalize(c readmodel.Customer) readmodel.Customer {
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	if c.Tags == nil {
		c.Tags = []string{}
	}
	return c
}

func waitApplied(t *testing.T, p *projections.Projector, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if !p.WaitFor(ctx, seq) {
		t.Fatalf("projector stuck at %d, want %d (err %v)", p.Status().Applied, seq, p.Status().Err)
	}
}

func start(t *testing.T, r *rig, store readmodel.Writer) (*projections.Projector, context.CancelFunc, chan error) {
	p := projections.New(r.es.JetStream(), r.es.StreamName(), store, projections.Options{MaxBatch: 64})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p, cancel, done
}

func TestProjectionEqualsFold(t *testing.T) {
	storetest.Each(t, func(t *testing.T, a storetest.Adapter) {
		r := newRig(t, 1)
		store := a.Open(t)
		p, _, _ := start(t, r, store)
		r.randomOps(a.Scale(1500, 300))
		_, last := r.fold()
		waitApplied(t, p, last)
		r.assertEqualsFold(store)
	})
}

// TestProjectorRestartsAndReplay stops the projector at random points of a
// load, resumes it on the same store, and finally replays the whole stream
// on top of the result, which must change nothing.
func TestProjectorRestartsAndReplay(t *testing.T) {
	storetest.Each(t, func(t *testing.T, a storetest.Adapter) {
		r := newRig(t, 2)
		store := a.Open(t)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(7, 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := projections.New(r.es.JetStream(), r.es.StreamName(), store, projections.Options{MaxBatch: 1 + i%50})
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+rnd.IntN(30))*time.Millisecond)
				_ = p.Run(ctx)
				cancel()
			}
		}()
		r.randomOps(a.Scale(1000, 200))
		close(stop)
		wg.Wait()

		p, _, _ := start(t, r, store)
		states, last := r.fold()
		merges := 0
		for _, st := range states {
			merges += len(st.Merges)
		}
		if merges == 0 {
			t.Fatal("the random commands merged no customers")
		}
		waitApplied(t, p, last)
		r.assertEqualsFold(store)

		// Replay everything from sequence 1 on top: nothing may change.
		replay := projections.New(r.es.JetStream(), r.es.StreamName(), fromZero{store}, projections.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := replay.CatchUp(ctx, last); err != nil {
			t.Fatal(err)
		}
		r.assertEqualsFold(store)
	})
}

// fromZero pretends the store has no checkpoint, forcing a full replay.
type fromZero struct{ readmodel.Store }

func (fromZero) Checkpoint(context.Context) (uint64, error) { return 0, nil }

func TestTwoProjectorsAtOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, a storetest.Adapter) {
		if a.NoConcurrentWriters {
			t.Skip("the server's conditional writes are not atomic (FerretDB 1.24); run with CRM_TEST_MONGODB_URL for MongoDB")
		}
		r := newRig(t, 3)
		store := a.Open(t)
		p1, _, _ := start(t, r, store)
		p2, _, _ := start(t, r, store)
		r.randomOps(a.Scale(1000, 200))
		_, last := r.fold()
		waitApplied(t, p1, last)
		waitApplied(t, p2, last)
		r.assertEqualsFold(store)
	})
}

func TestMalformedEventStopsProjector(t *testing.T) {
	storetest.Each(t, func(t *testing.T, a storetest.Adapter) {
		r := newRig(t, 4)
		store := a.Open(t)
		r.randomOps(20)
		_, good := r.fold()
		js := r.es.JetStream()
		if _, err := js.Publish(context.Background(), "crm.customers.6f1b6c36-5b7e-4b43-9d3a-3f4f2a7f0a11.created", []byte(`{"specversion":"1.0","type":"bogus"}`)); err != nil {
			t.Fatal(err)
		}
		p, _, done := start(t, r, store)
		select {
		case err := <-done:
			if !errors.Is(err, projections.ErrCorrupt) {
				t.Fatalf("Run returned %v, want ErrCorrupt", err)
			}
			done <- err // for the cleanup
		case <-time.After(30 * time.Second):
			t.Fatal("projector did not stop at the malformed event")
		}
		st := p.Status()
		if st.Err == nil || st.Applied != good {
			t.Fatalf("status after malformed event: applied %d (want %d), err %v", st.Applied, good, st.Err)
		}
		if cp, _ := store.Checkpoint(context.Background()); cp != good {
			t.Fatalf("checkpoint moved past the malformed event: %d", cp)
		}
	})
}
