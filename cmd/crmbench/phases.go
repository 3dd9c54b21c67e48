package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	"crm/internal/readmodel"
)

// runStat is one run of one phase.
type runStat struct {
	Ops     int64              `json:"ops"`
	Failed  int64              `json:"failed"`
	Seconds float64            `json:"seconds"`
	Rate    float64            `json:"rate"` // successful operations (or events, documents) per second
	P50Ms   float64            `json:"p50Ms,omitempty"`
	P99Ms   float64            `json:"p99Ms,omitempty"`
	MaxMs   float64            `json:"maxMs,omitempty"`
	Queries map[string]latStat `json:"queries,omitempty"`
	Errors  map[string]int64   `json:"errors,omitempty"`
	// CPU time per successful operation and CPU cores busy on average, of
	// the service (with --pid) and of crmbench itself.
	ServiceCPUPerOpUs float64 `json:"serviceCpuPerOpUs,omitempty"`
	ServiceCPUCores   float64 `json:"serviceCpuCores,omitempty"`
	ToolCPUPerOpUs    float64 `json:"toolCpuPerOpUs,omitempty"`
	ToolCPUCores      float64 `json:"toolCpuCores,omitempty"`
	Note              string  `json:"note,omitempty"`
}

type latStat struct {
	N     int     `json:"n"`
	P50Ms float64 `json:"p50Ms"`
	P99Ms float64 `json:"p99Ms"`
}

func statOf(r loadResult) runStat {
	st := runStat{Ops: r.OK, Failed: r.Failed, Seconds: r.Elapsed.Seconds(), Rate: r.Rate(),
		P50Ms: ms(percentile(r.Lat, 50)), P99Ms: ms(percentile(r.Lat, 99)), MaxMs: ms(percentile(r.Lat, 100))}
	if len(r.ByLabel) > 0 {
		st.Queries = map[string]latStat{}
		for k, v := range r.ByLabel {
			st.Queries[k] = latStat{N: len(v), P50Ms: ms(percentile(v, 50)), P99Ms: ms(percentile(v, 99))}
		}
	}
	if len(r.Errors) > 0 {
		st.Errors = r.Errors
	}
	return st
}

// measure runs fn as run number run of phase, with the CPU accounting, and
// records and logs the result.
func (b *bench) measure(ctx context.Context, phase string, run int, fn func() (runStat, error)) (runStat, error) {
	var svc0 time.Duration
	if b.pid != 0 {
		svc0, _ = procCPU(b.pid)
	}
	self0 := selfCPU()
	t0 := time.Now()
	st, err := fn()
	wall := time.Since(t0).Seconds()
	if ctx.Err() != nil {
		return st, ctx.Err() // interrupted: not a complete run
	}
	if err != nil {
		return st, fmt.Errorf("%s run %d: %w", phase, run, err)
	}
	self := (selfCPU() - self0).Seconds()
	if wall > 0 {
		st.ToolCPUCores = self / wall
	}
	if st.Ops > 0 {
		st.ToolCPUPerOpUs = self * 1e6 / float64(st.Ops)
	}
	if b.pid != 0 {
		if svc1, err := procCPU(b.pid); err == nil {
			svc := (svc1 - svc0).Seconds()
			if wall > 0 {
				st.ServiceCPUCores = svc / wall
			}
			if st.Ops > 0 {
				st.ServiceCPUPerOpUs = svc * 1e6 / float64(st.Ops)
			}
		}
	}
	b.rep.add(phase, st)
	line := fmt.Sprintf("%-11s run %d/%d: %9.0f /s  (%d ok", phase, run, b.runs, st.Rate, st.Ops)
	if st.Failed > 0 {
		line += fmt.Sprintf(", %d FAILED", st.Failed)
	}
	line += fmt.Sprintf(" in %.1fs)", st.Seconds)
	if st.P50Ms > 0 {
		line += fmt.Sprintf("  p50 %s  p99 %s", fmtMs(st.P50Ms), fmtMs(st.P99Ms))
	}
	if st.ServiceCPUCores > 0 {
		line += fmt.Sprintf("  service CPU %.2f cores", st.ServiceCPUCores)
	}
	line += fmt.Sprintf("  crmbench CPU %.2f cores", st.ToolCPUCores)
	if st.Note != "" {
		line += "  " + st.Note
	}
	b.logf("%s", line)
	for msg, n := range st.Errors {
		b.logf("    %d × %s", n, msg)
	}
	b.sampleMemory(fmt.Sprintf("%s run %d", phase, run))
	return st, nil
}

// load is measure for a closed-loop load of op.
func (b *bench) load(ctx context.Context, phase string, run int, op opFunc) error {
	return b.loadAt(ctx, phase, run, 0, op)
}

// loadAt is measure for a load of op offered at rate operations per second
// (open loop), or a closed loop with rate 0 (see runLoadAt).
func (b *bench) loadAt(ctx context.Context, phase string, run int, rate float64, op opFunc) error {
	_, err := b.measure(ctx, phase, run, func() (runStat, error) {
		return statOf(runLoadAt(ctx, b.clients, rate, b.dur, b.maxOps, uint64(run)*7919, op)), nil
	})
	return err
}

// warm runs op unmeasured for --warmup (connections, caches).
func (b *bench) warm(ctx context.Context, op opFunc) {
	if b.warmup > 0 {
		runLoad(ctx, b.clients, b.warmup, b.maxOps, 1, op)
	}
}

// ---- operations ----

var createSeq atomic.Int64

func init() { createSeq.Store(time.Now().UnixMilli() % 1_000_000 * 1000) }

func (b *bench) createOp(ctx context.Context, w *worker) (string, error) {
	_, err := b.cl.create(ctx, newPerson(w.rnd, createSeq.Add(1)))
	return "", err
}

func (b *bench) getOp(ctx context.Context, w *worker) (string, error) {
	_, _, err := b.cl.do(ctx, http.MethodGet, apiBase+"/customers/"+b.ids[w.rnd.IntN(len(b.ids))], nil, http.StatusOK)
	return "", err
}

func (b *bench) listOp(ctx context.Context, w *worker) (string, error) {
	q := listQuery(w.rnd, b.subject)
	_, _, err := b.cl.do(ctx, http.MethodGet, apiBase+"/customers?"+q.values(false), nil, http.StatusOK)
	return q.label, err
}

func (b *bench) searchOp(ctx context.Context, w *worker) (string, error) {
	q := searchQuery(w.rnd, b.codes)
	_, _, err := b.cl.do(ctx, http.MethodGet, apiBase+"/customers/search?"+q.values(true), nil, http.StatusOK)
	return q.label, err
}

func (b *bench) patchOp(ctx context.Context, w *worker) (string, error) {
	_, _, err := b.cl.do(ctx, http.MethodPatch, apiBase+"/customers/"+b.ids[w.rnd.IntN(len(b.ids))], patchBody(w.rnd), http.StatusOK)
	return "", err
}

// timelineOp reads the first timeline page of a sampled customer.
func (b *bench) timelineOp(ctx context.Context, w *worker) (string, error) {
	_, _, err := b.cl.do(ctx, http.MethodGet, apiBase+"/customers/"+b.ids[w.rnd.IntN(len(b.ids))]+"/timeline?perPage=20", nil, http.StatusOK)
	return "", err
}

// rywOp creates a customer and immediately reads it back: the pair's
// latency is what a client that shows what it just saved waits for.
func (b *bench) rywOp(ctx context.Context, w *worker) (string, error) {
	id, err := b.cl.create(ctx, newPerson(w.rnd, createSeq.Add(1)))
	if err != nil {
		return "", err
	}
	_, _, err = b.cl.do(ctx, http.MethodGet, apiBase+"/customers/"+id, nil, http.StatusOK)
	var se *statusError
	if errors.As(err, &se) && se.status == http.StatusNotFound {
		return "", errors.New("read-your-writes violated: GET after 201 Created returned 404")
	}
	return "", err
}

// ---- phases ----

// topup creates customers until the data set has --customers, measuring
// the creates; it then records the stream position for the rebuild.
func (b *bench) topup(ctx context.Context) error {
	total, err := b.cl.total(ctx)
	if err != nil {
		return err
	}
	need := b.customers - total
	if need <= 0 {
		b.logf("topup: the data set already has %d customers (--customers %d)", total, b.customers)
	} else if b.topupBy == "events" {
		if err := b.topupEvents(ctx, need); err != nil {
			return err
		}
	} else {
		b.logf("topup: creating %d customers with %d clients (at most %v)…", need, b.clients, b.topupTimeout)
		var done atomic.Int64
		stop := make(chan struct{})
		go func() {
			t := time.NewTicker(10 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					b.logf("topup: %d/%d", done.Load(), need)
				}
			}
		}()
		_, err := b.measure(ctx, "topup", 1, func() (runStat, error) {
			res := runLoad(ctx, b.clients, b.topupTimeout, need, 1, func(ctx context.Context, w *worker) (string, error) {
				_, err := b.cl.create(ctx, newPerson(w.rnd, createSeq.Add(1)))
				if err == nil {
					done.Add(1)
				}
				return "", err
			})
			return statOf(res), nil
		})
		close(stop)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if total, err = b.cl.total(ctx); err != nil {
			return err
		}
		if total < b.customers {
			return fmt.Errorf("topup: the data set has %d customers after the top-up, want %d (see the failures above)", total, b.customers)
		}
	}
	b.rep.Dataset.ToppedUp = max(0, need)
	if b.js != nil {
		_, last, err := b.streamState(ctx)
		if err != nil {
			return err
		}
		b.rep.Dataset.RebuildSeq = last
	}
	return nil
}

// reads measures get, list and search, each run after a run of its raw
// limit on a snapshot copy of the read model.
func (b *bench) reads(ctx context.Context) error {
	if !(b.phases["raw-read"] || b.phases["get"] || b.phases["list"] || b.phases["search"] || b.phases["timeline"]) {
		return nil
	}
	var rs *rawStore
	if b.phases["raw-read"] {
		var err error
		b.logf("raw-read: copying the read model…")
		if rs, err = b.openRawStore(ctx, b.customers); err != nil {
			return fmt.Errorf("raw-read: %w", err)
		}
		defer rs.close()
		b.rep.RawReadSource = rs.source
		b.logf("raw-read: on a %s (%d ids sampled)", rs.source, len(rs.ids))
	}
	type pair struct {
		raw, svc     string
		rawOp, svcOp opFunc
	}
	var pairs []pair
	if rs != nil {
		pairs = []pair{
			{"raw-get", "get", func(ctx context.Context, w *worker) (string, error) {
				_, err := rs.s.Get(ctx, rs.ids[w.rnd.IntN(len(rs.ids))])
				return "", err
			}, b.getOp},
			{"raw-list", "list", func(ctx context.Context, w *worker) (string, error) {
				q := listQuery(w.rnd, b.subject)
				_, err := rs.s.List(ctx, q.q)
				return q.label, err
			}, b.listOp},
			{"raw-search", "search", func(ctx context.Context, w *worker) (string, error) {
				q := searchQuery(w.rnd, rs.codes)
				_, err := rs.s.Search(ctx, q.q)
				return q.label, err
			}, b.searchOp},
			{"raw-timeline", "timeline", func(ctx context.Context, w *worker) (string, error) {
				_, err := rs.s.Timeline(ctx, readmodel.TimelineQuery{CustomerIDs: []string{rs.ids[w.rnd.IntN(len(rs.ids))]}, PerPage: 20})
				return "", err
			}, b.timelineOp},
		}
	} else {
		pairs = []pair{{"", "get", nil, b.getOp}, {"", "list", nil, b.listOp}, {"", "search", nil, b.searchOp}, {"", "timeline", nil, b.timelineOp}}
	}
	for _, p := range pairs {
		doSvc := b.phases[p.svc]
		if p.rawOp == nil && !doSvc {
			continue
		}
		if p.rawOp != nil {
			b.warm(ctx, p.rawOp)
		}
		if doSvc {
			b.warm(ctx, p.svcOp)
		}
		for run := 1; run <= b.runs && ctx.Err() == nil; run++ {
			if p.rawOp != nil {
				if err := b.loadAt(ctx, p.raw, run, b.readRate[p.svc], p.rawOp); err != nil {
					return err
				}
			}
			if doSvc {
				if err := b.loadAt(ctx, p.svc, run, b.readRate[p.svc], p.svcOp); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// writes measures creates (each run after a run of the raw publish limit),
// patches and read-your-writes pairs.
func (b *bench) writes(ctx context.Context) error {
	if b.phases["raw-publish"] || b.phases["create"] {
		if b.phases["create"] {
			b.warm(ctx, b.createOp)
		}
		for run := 1; run <= b.runs && ctx.Err() == nil; run++ {
			if b.phases["raw-publish"] {
				if _, err := b.measure(ctx, "raw-publish", run, func() (runStat, error) {
					res, err := b.rawPublish(ctx, run, b.dur)
					return statOf(res), err
				}); err != nil {
					return err
				}
			}
			if b.phases["create"] {
				if err := b.load(ctx, "create", run, b.createOp); err != nil {
					return err
				}
			}
		}
	}
	for _, p := range []struct {
		name string
		op   opFunc
	}{{"patch", b.patchOp}, {"ryw", b.rywOp}} {
		if !b.phases[p.name] {
			continue
		}
		b.warm(ctx, p.op)
		for run := 1; run <= b.runs && ctx.Err() == nil; run++ {
			if err := b.load(ctx, p.name, run, p.op); err != nil {
				return err
			}
		}
	}
	return nil
}

// projection measures the projector's catch-up (each run after a run of the
// raw bulk-upsert limit) and the full rebuild.
func (b *bench) projection(ctx context.Context) error {
	first := max(b.rep.Dataset.StreamFirst, 1)
	if b.phases["raw-upsert"] || b.phases["catchup"] {
		for run := 1; run <= b.runs && ctx.Err() == nil; run++ {
			var last uint64
			if b.js != nil {
				var err error
				if _, last, err = b.streamState(ctx); err != nil {
					return err
				}
			}
			if b.phases["raw-upsert"] {
				maxDocs := b.customers
				if last >= first {
					maxDocs = int64(last - first + 1)
				}
				maxDocs = max(maxDocs, int64(b.batch))
				if _, err := b.measure(ctx, "raw-upsert", run, func() (runStat, error) {
					rate, docs, err := b.rawUpsert(ctx, run, b.dur, maxDocs)
					return runStat{Ops: docs, Rate: rate, Seconds: float64(docs) / max(rate, 1e-9),
						Note: fmt.Sprintf("(batches of %d new documents)", b.batch)}, err
				}); err != nil {
					return err
				}
			}
			if b.phases["catchup"] {
				if last < first {
					b.logf("catchup: the stream is empty, nothing to project")
					break
				}
				if _, err := b.measure(ctx, "catchup", run, func() (runStat, error) {
					evs, took, _, err := b.catchUp(ctx, first, last, b.dur)
					return runStat{Ops: int64(evs), Seconds: took.Seconds(), Rate: float64(evs) / took.Seconds(),
						Note: fmt.Sprintf("(events %d…%d of %d)", first, first+evs-1, last)}, err
				}); err != nil {
					return err
				}
			}
		}
	}
	if b.phases["rebuild"] {
		target := b.rep.Dataset.RebuildSeq
		if target < first {
			b.logf("rebuild: the stream is empty, nothing to rebuild")
			return nil
		}
		want := target - first + 1
		for run := 1; run <= b.runs && ctx.Err() == nil; run++ {
			if _, err := b.measure(ctx, "rebuild", run, func() (runStat, error) {
				evs, took, live, err := b.catchUp(ctx, first, target, b.rebuildTimeout)
				st := runStat{Ops: int64(evs), Seconds: took.Seconds(), Rate: float64(evs) / took.Seconds(),
					Note: fmt.Sprintf("(%d events → %d live customers in %.1fs)", evs, live, took.Seconds())}
				if err == nil && evs < want {
					err = fmt.Errorf("only %d of %d events in %v (--rebuild-timeout)", evs, want, b.rebuildTimeout)
				}
				b.rep.Dataset.RebuiltCustomers = live
				return st, err
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// queryLabels returns the labels of a phase's per-query latencies, sorted.
func queryLabels(runs []runStat) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range runs {
		for k := range r.Queries {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}
