//go:build unix

package projections

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/readmodel"
	"crm/internal/readmodel/sqlite"
)

// benchBatch is the projector's default (and largest) batch.
const benchBatch = 1000

// memWriter is an in-memory readmodel.Writer: Fold's cost without a store.
type memWriter struct {
	docs map[string]readmodel.Customer
	cp   uint64
}

func (m *memWriter) Load(_ context.Context, ids []string) (map[string]readmodel.Customer, error) {
	out := make(map[string]readmodel.Customer, len(ids))
	for _, id := range ids {
		if d, ok := m.docs[id]; ok {
			out[id] = d
		}
	}
	return out, nil
}

func (m *memWriter) Commit(_ context.Context, docs []readmodel.Customer, cp uint64) error {
	for _, d := range docs {
		m.docs[d.ID] = d
	}
	m.cp = max(m.cp, cp)
	return nil
}

func (m *memWriter) Checkpoint(context.Context) (uint64, error) { return m.cp, nil }

func (m *memWriter) CommitBatch(ctx context.Context, b readmodel.Batch, cp uint64) error {
	return m.Commit(ctx, b.Customers, cp)
}

func (m *memWriter) LoadContacts(context.Context, []string) (map[string]readmodel.Contact, error) {
	return map[string]readmodel.Contact{}, nil
}

func (m *memWriter) LoadActivities(context.Context, []string) (map[string]readmodel.Activity, error) {
	return map[string]readmodel.Activity{}, nil
}

// eventGen produces a realistic stream: creates of full customers, and
// updates of one to three fields of existing ones, with correct versions
// and increasing stream sequences.
type eventGen struct {
	r       *rand.Rand
	seq     uint64
	ids     []string
	version map[string]uint64
	at      time.Time
}

func newEventGen() *eventGen {
	return &eventGen{r: rand.New(rand.NewPCG(1, 2)), version: map[string]uint64{},
		at: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

var (
	benchNames = []string{"John Smith", "José García", "Zoë Müller", "Łukasz Nowak", "Chloé Dubois", "Aiko Tanaka", "Mehmet Öztürk"}
	benchCos   = []string{"Acme Corporation", "Globex GmbH", "Initech Ltd", "Umbrella Group", ""}
	benchTags  = []string{"vip", "priority", "northeast", "enterprise", "smb", "partner"}
)

func ptr(s string) *string { return &s }

func (g *eventGen) next(kind events.Kind) events.Event {
	g.seq++
	g.at = g.at.Add(time.Second)
	ev := events.Event{ID: uuid.NewString(), Source: events.DefaultSource, Time: g.at, Actor: "bench-user", Seq: g.seq}
	if kind == events.KindCreated || len(g.ids) == 0 {
		id := uuid.NewString()
		g.ids = append(g.ids, id)
		g.version[id] = 1
		name := benchNames[g.r.IntN(len(benchNames))]
		var company *string
		if c := benchCos[g.r.IntN(len(benchCos))]; c != "" {
			company = &c
		}
		ev.AggregateID, ev.Version = id, 1
		ev.Data = &events.CustomerCreated{
			CustomerID: id, CustomerCode: fmt.Sprintf("C%03d", len(g.ids)), Name: name,
			Email: ptr(fmt.Sprintf("user%d@example.com", len(g.ids))), Phone: ptr("+1 555 0100"), Company: company,
			Address: &events.Address{Street: "1 Main Street", City: "Boston", Country: "US", PostalCode: "02110"},
			Type:    customer.TypeBusiness, Status: customer.StatusActive, Notes: ptr("Key account"),
			Tags:      []string{benchTags[g.r.IntN(len(benchTags))], benchTags[g.r.IntN(len(benchTags))]},
			CreatedBy: "bench-user", CreatedAt: g.at,
		}
		return ev
	}
	id := g.ids[g.r.IntN(len(g.ids))]
	g.version[id]++
	ev.AggregateID, ev.Version = id, g.version[id]
	ch := events.Changes{Status: events.SetTo(customer.StatusInactive)}
	switch g.r.IntN(3) {
	case 0:
		ch.Name = events.SetTo(benchNames[g.r.IntN(len(benchNames))])
	case 1:
		ch.Tags = events.SetTo([]string{benchTags[g.r.IntN(len(benchTags))]})
	default:
		ch.Notes = events.Cleared[string]()
		ch.Address = events.SetTo(events.Address{City: "Paris"})
	}
	ev.Data = &events.CustomerUpdated{CustomerID: id, CustomerCode: "C001", Changes: ch, UpdatedBy: "bench-user", UpdatedAt: g.at}
	return ev
}

func (g *eventGen) batch(n int, kind events.Kind) []events.Event {
	out := make([]events.Event, n)
	for i := range out {
		out[i] = g.next(kind)
	}
	return out
}

// BenchmarkFold measures Fold (load the documents a batch touches, apply
// every event with customer.Evolve) of one batch, against an in-memory
// store: the projector's CPU cost per event before the read model.
func BenchmarkFold(b *testing.B) {
	for _, kind := range []events.Kind{events.KindCreated, events.KindUpdated} {
		b.Run(string(kind), func(b *testing.B) {
			g := newEventGen()
			w := &memWriter{docs: map[string]readmodel.Customer{}}
			seed := g.batch(10*benchBatch, events.KindCreated)
			docs, err := Fold(b.Context(), w, seed)
			if err != nil {
				b.Fatal(err)
			}
			_ = w.CommitBatch(b.Context(), docs, g.seq)
			n := 0
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				batch := g.batch(benchBatch, kind)
				b.StartTimer()
				docs, err := Fold(b.Context(), w, batch)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				_ = w.CommitBatch(b.Context(), docs, g.seq) // keep versions moving
				b.StartTimer()
				n += len(batch)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkApply measures the projector's apply of one batch into a
// temporary SQLite read model: Fold, then Commit of the documents and the
// checkpoint in one transaction (what catch-up does per batch, without
// NATS). Batches of new customers grow the store from empty; batches of
// updates change customers of a store of 20,000.
func BenchmarkApply(b *testing.B) {
	for _, tc := range []struct {
		name string
		kind events.Kind
		base int
	}{{"created", events.KindCreated, 0}, {"updated", events.KindUpdated, 20 * benchBatch}} {
		b.Run(tc.name, func(b *testing.B) {
			store, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "readmodel.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			p := New(nil, "", store, Options{})
			g := newEventGen()
			for i := 0; i < tc.base; i += benchBatch {
				batch := g.batch(benchBatch, events.KindCreated)
				if err := p.apply(b.Context(), batch, batch[len(batch)-1].Seq); err != nil {
					b.Fatal(err)
				}
			}
			n := 0
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				batch := g.batch(benchBatch, tc.kind)
				b.StartTimer()
				c0 := cpuTime()
				if err := p.apply(b.Context(), batch, batch[len(batch)-1].Seq); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - c0
				n += len(batch)
			}
			if st := p.Status(); st.Applied != g.seq {
				b.Fatalf("applied %d, want %d", st.Applied, g.seq)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			if cpu > 0 {
				b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
			}
		})
	}
}

// cpuTime is the CPU time (user + system) of this process: a busy machine
// inflates it less than the wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
