package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"crm/internal/commands"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/eventstore"
)

// seedBatch is how many creates one atomic append of the events top-up
// carries.
const seedBatch = 500

// topupEvents creates need customers by appending their CustomerCreated
// events to the service's stream directly: codes are reserved from the
// service's counter (so they stay unique and gap-free for the service),
// the events are decided by the domain (customer.Decide, as a POST would
// be) and appended in atomic batches, several in flight. It then waits
// until the service's read model lists them. Not a measurement of the
// service: a fast way to a large data set.
func (b *bench) topupEvents(ctx context.Context, need int64) error {
	es, err := eventstore.Open(ctx, b.nc, eventstore.Config{Stream: b.stream})
	if err != nil {
		return err
	}
	defer es.Close()
	start := time.Now()
	var (
		done   atomic.Int64
		next   atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		first  error
		actor  = b.subject
		target = b.rep.Dataset.AtStart + need
	)
	b.logf("topup: appending %d created events in batches of %d…", need, seedBatch)
	workers := min(8, b.clients)
	for w := range workers {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w)+99, uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				from := next.Add(seedBatch) - seedBatch
				if from >= need {
					return
				}
				n := int(min(seedBatch, need-from))
				code, err := es.NextCodes(ctx, n)
				if err == nil {
					var evs []events.Event
					exp := make(map[string]uint64, n)
					now := time.Now().UTC()
					for i := range n {
						p := newPerson(rnd, createSeq.Add(1))
						id := uuid.NewString()
						decided, derr := customer.Decide(customer.Customer{}, customer.Create{CustomerID: id,
							Code: commands.FormatCode(code + uint64(i)), Input: p.input()},
							customer.Meta{Actor: actor, Now: now, EventID: uuid.NewString(), Source: "/crm/crmbench"})
						if derr != nil {
							err = derr
							break
						}
						evs = append(evs, decided...)
						exp[id] = 0
					}
					if err == nil {
						_, err = es.Append(ctx, evs, exp)
					}
				}
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				if d := done.Add(int64(n)); d%50000 < seedBatch {
					b.logf("topup: %d/%d appended (%.0f/s)", d, need, float64(d)/time.Since(start).Seconds())
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("topup by events: %w", first)
	}
	appended := time.Since(start)
	b.logf("topup: %d events appended in %v (%.0f/s); waiting for the read model…", done.Load(), appended.Round(time.Millisecond),
		float64(done.Load())/appended.Seconds())
	deadline := time.Now().Add(b.topupTimeout)
	for {
		total, err := b.cl.total(ctx)
		if err == nil && total >= target {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topup: the read model lists %d customers after %v, want %d", total, b.topupTimeout, target)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	b.logf("topup: the read model caught up %v after the appends (%v in all)", (time.Since(start) - appended).Round(time.Second),
		time.Since(start).Round(time.Second))
	return nil
}

// input is p as a create command's input.
func (p person) input() customer.Input {
	in := customer.Input{
		Name: events.SetTo(p.Name), Email: events.SetTo(p.Email), Phone: events.SetTo(p.Phone),
		Type: events.SetTo(p.Type), Status: events.SetTo(p.Status), Notes: events.SetTo(p.Notes),
		Tags: events.SetTo(p.Tags),
		Address: customer.AddressInput{Set: true, Street: events.SetTo(p.Street), City: events.SetTo(p.City),
			Country: events.SetTo(p.Country), PostalCode: events.SetTo(p.PostalCode)},
	}
	if p.Company != "" {
		in.Company = events.SetTo(p.Company)
	}
	return in
}

// seedActivities appends n ActivityCreated events (calls, emails,
// meetings, notes and tasks of the last two years), in atomic batches of
// seedBatch, spread over the sampled customers, then waits until the read
// model has them: the data set of the timeline phase. (The sampled
// customers get more activities each than the average customer would,
// which makes their first timeline page no easier to read.)
func (b *bench) seedActivities(ctx context.Context, n int64) error {
	es, err := eventstore.Open(ctx, b.nc, eventstore.Config{Stream: b.stream})
	if err != nil {
		return err
	}
	defer es.Close()
	start := time.Now()
	var (
		next, done atomic.Int64
		wg         sync.WaitGroup
		mu         sync.Mutex
		first      error
		last       atomic.Uint64
	)
	types := []string{"call", "email", "meeting", "note", "task"}
	b.logf("activities: appending %d activity events in batches of %d over %d customers…", n, seedBatch, len(b.ids))
	for w := range min(8, b.clients) {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w)+7, uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				from := next.Add(seedBatch) - seedBatch
				if from >= n {
					return
				}
				k := int(min(seedBatch, n-from))
				evs := make([]events.Event, 0, k)
				exp := make(map[string]uint64, k)
				now := time.Now().UTC()
				for range k {
					id := uuid.NewString()
					typ := types[rnd.IntN(len(types))]
					at := now.Add(-time.Duration(rnd.Int64N(int64(2 * 365 * 24 * time.Hour))))
					d := &events.ActivityCreated{ActivityID: id, CustomerID: b.ids[rnd.IntN(len(b.ids))], Type: typ, OccurredAt: at,
						ContactIDs: []string{}, CreatedBy: b.subject, CreatedAt: now}
					subject := typ + " about the renewal"
					d.Subject = &subject
					if typ == "task" {
						done := rnd.IntN(2) == 0
						d.Done = &done
					}
					evs = append(evs, events.Event{ID: uuid.NewString(), Source: "/crm/crmbench", AggregateID: id, Time: now,
						Version: 1, Actor: b.subject, Data: d})
					exp[id] = 0
				}
				seqs, err := es.Append(ctx, evs, exp)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				for s := seqs[len(seqs)-1]; ; {
					cur := last.Load()
					if s <= cur || last.CompareAndSwap(cur, s) {
						break
					}
				}
				if d := done.Add(int64(k)); d%100000 < seedBatch {
					b.logf("activities: %d/%d appended (%.0f/s)", d, n, float64(d)/time.Since(start).Seconds())
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("activities: %w", first)
	}
	appended := time.Since(start)
	b.logf("activities: %d appended in %v (%.0f/s); waiting for the read model…", done.Load(), appended.Round(time.Millisecond),
		float64(done.Load())/appended.Seconds())
	// The read model applies the stream in order: once an activity
	// recorded after the last appended one is current, they all are.
	deadline := time.Now().Add(b.topupTimeout)
	for {
		body := map[string]string{"type": "note", "occurredAt": time.Now().UTC().Format(time.RFC3339Nano), "subject": "crmbench marker"}
		_, h, err := b.cl.do(ctx, http.MethodPost, apiBase+"/customers/"+b.ids[0]+"/activities", body, http.StatusCreated)
		if err == nil && h.Get("X-Read-Model") == "current" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("activities: the read model is still behind after %v (last appended sequence %d)", b.topupTimeout, last.Load())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	b.logf("activities: the read model caught up %v after the appends", (time.Since(start) - appended).Round(time.Second))
	return nil
}
