package main

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// worker is one client of a closed-loop load: it sends its next request as
// soon as the previous one is answered.
type worker struct {
	id  int
	rnd *rand.Rand
}

// opFunc performs one operation. label groups latencies (e.g. the query
// kind); an error counts the operation as failed.
type opFunc func(ctx context.Context, w *worker) (label string, err error)

// loadResult is the outcome of one run of a load.
type loadResult struct {
	OK, Failed int64
	Elapsed    time.Duration
	Lat        []time.Duration            // of successful operations, sorted
	ByLabel    map[string][]time.Duration // sorted
	Errors     map[string]int64           // failure message -> count
}

// Rate is the successful operations per second.
func (r loadResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// maxErrorKinds bounds the distinct failure messages kept per run.
const maxErrorKinds = 20

// runLoad runs op on clients workers until dur has passed, maxOps
// operations were started, or ctx ends, whichever comes first, and waits
// for the operations in flight (each bounded by its own timeout).
//
// With rate 0 the load is a closed loop: each worker sends its next
// request when the previous one is answered, so with N workers the mean
// latency is N ÷ throughput whatever the service does. With rate > 0 it is
// an open loop: operation k of worker i is scheduled at (k·clients + i) ÷
// rate seconds, and its latency counts from that scheduled time, so time
// spent waiting behind a slow operation is measured, not omitted.
func runLoad(ctx context.Context, clients int, dur time.Duration, maxOps int64, seed uint64, op opFunc) loadResult {
	return runLoadAt(ctx, clients, 0, dur, maxOps, seed, op)
}

func runLoadAt(ctx context.Context, clients int, rate float64, dur time.Duration, maxOps int64, seed uint64, op opFunc) loadResult {
	var (
		started atomic.Int64
		wg      sync.WaitGroup
		mu      sync.Mutex
		res     = loadResult{ByLabel: map[string][]time.Duration{}, Errors: map[string]int64{}}
	)
	start := time.Now()
	deadline := start.Add(dur)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			w := &worker{id: id, rnd: rand.New(rand.NewPCG(seed, uint64(id)+1))}
			var (
				lat     []time.Duration
				byLabel = map[string][]time.Duration{}
				errs    = map[string]int64{}
				failed  int64
			)
			for k := 0; ctx.Err() == nil && time.Now().Before(deadline) && started.Add(1) <= maxOps; k++ {
				t0 := time.Now()
				if rate > 0 {
					t0 = start.Add(time.Duration(float64(k*clients+id) / rate * float64(time.Second)))
					if !t0.Before(deadline) {
						break
					}
					if wait := time.Until(t0); wait > 0 {
						select {
						case <-ctx.Done():
						case <-time.After(wait):
						}
					}
				}
				label, err := op(ctx, w)
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						break // interrupted, not failed
					}
					failed++
					msg := err.Error()
					if len(msg) > 160 {
						msg = msg[:160] + "…"
					}
					if _, ok := errs[msg]; ok || len(errs) < maxErrorKinds {
						errs[msg]++
					}
					continue
				}
				lat = append(lat, d)
				if label != "" {
					byLabel[label] = append(byLabel[label], d)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.OK += int64(len(lat))
			res.Failed += failed
			res.Lat = append(res.Lat, lat...)
			for k, v := range byLabel {
				res.ByLabel[k] = append(res.ByLabel[k], v...)
			}
			for k, v := range errs {
				if _, ok := res.Errors[k]; ok || len(res.Errors) < maxErrorKinds {
					res.Errors[k] += v
				}
			}
		}(i)
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(res.Lat)
	for _, v := range res.ByLabel {
		slices.Sort(v)
	}
	return res
}
