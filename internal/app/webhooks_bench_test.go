package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"crm/internal/apptest"
)

// BenchmarkWebhookDelivery measures, in one run on this machine:
//
//   - drain: how fast a backlog of events (one per customer) is delivered
//     to a fast local receiver (concurrency 16), beside the raw rate of the
//     same POSTs (same bodies, 16 clients, no service in between) to the same
//     receiver;
//   - latency: the time from an event's CloudEvents time (set by the
//     command just before its append) to its arrival at the receiver, while
//     customers are created at a steady 200/s, p50 and p99.
//
// go test -run '^$' -bench BenchmarkWebhookDelivery -benchtime 1x ./internal/app
// (WEBHOOK_BENCH_EVENTS sets the backlog, default 20000).
func BenchmarkWebhookDelivery(b *testing.B) {
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("WEBHOOK_BENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	cfg := apptest.Config(b, b.TempDir())
	cfg.WebhookAllowHTTP = true
	cfg.WebhookAllowNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.ReadYourWritesTimeout = -1
	e := apptest.Start(b, cfg)

	// got counts requests; the target's done closes when it reaches n.
	type target struct {
		n    int64
		done chan struct{}
		once sync.Once
	}
	var got atomic.Int64
	var cur atomic.Pointer[target]
	expect := func(n int64) *target {
		tg := &target{n: n, done: make(chan struct{})}
		got.Store(0)
		cur.Store(tg)
		return tg
	}
	expect(-1)
	var lmu sync.Mutex
	var lat []time.Duration
	measure := atomic.Bool{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if measure.Load() {
			var ev struct{ Time time.Time }
			if json.Unmarshal(body, &ev) == nil && !ev.Time.IsZero() {
				lmu.Lock()
				lat = append(lat, time.Since(ev.Time))
				lmu.Unlock()
			}
		}
		if tg := cur.Load(); got.Add(1) == tg.n {
			tg.once.Do(func() { close(tg.done) })
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	// The backlog, appended while the subscription is disabled.
	r := e.Do("POST", "/api/v1/crm/webhooks", map[string]any{"url": recv.URL, "concurrency": 16, "enabled": false})
	var sub struct{ Data struct{ ID string } }
	r.JSON(b, &sub)
	var sample []byte
	for i := 0; i < n; i += 500 {
		ops := make([]map[string]any, 0, 500)
		for j := i; j < min(n, i+500); j++ {
			ops = append(ops, map[string]any{"op": "create", "data": map[string]any{
				"name": fmt.Sprintf("Webhook Bench %d", j), "email": fmt.Sprintf("wb%d@example.com", j), "company": "Bench Co", "tags": []string{"bench"}}})
		}
		if r := e.Do("POST", "/api/v1/crm/customers/batch", map[string]any{"atomic": true, "operations": ops}); r.Status != 200 {
			b.Fatalf("batch: %d %.300s", r.Status, r.Body)
		}
	}
	for _, m := range e.StreamMessages() {
		if strings.HasSuffix(m.Subject, ".created") {
			sample = m.Data
			break
		}
	}

	// Raw: the same POSTs straight to the receiver, 16 clients.
	rawN := min(n, 20000)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= int64(rawN) {
				resp, err := client.Post(recv.URL, "application/cloudevents+json", bytes.NewReader(sample))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	raw := float64(rawN) / time.Since(start).Seconds()
	drained := expect(int64(n))

	// Drain.
	b.ResetTimer()
	start = time.Now()
	if r := e.Do("PATCH", "/api/v1/crm/webhooks/"+sub.Data.ID, `{"enabled":true}`); r.Status != 200 {
		b.Fatalf("enable: %d %s", r.Status, r.Body)
	}
	select {
	case <-drained.done:
	case <-time.After(10 * time.Minute):
		b.Fatalf("%d of %d delivered", got.Load(), n)
	}
	drain := float64(n) / time.Since(start).Seconds()
	b.StopTimer()

	// Latency at a steady 200 creates/s.
	measure.Store(true)
	const live = 2000
	lived := expect(live)
	tick := time.NewTicker(5 * time.Millisecond)
	for i := range live {
		<-tick.C
		wg.Go(func() {
			if r := e.Do("POST", "/api/v1/crm/customers", fmt.Sprintf(`{"name":"Live %d"}`, i)); r.Status != 201 {
				b.Errorf("create: %d", r.Status)
			}
		})
	}
	tick.Stop()
	wg.Wait()
	select {
	case <-lived.done:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d live events delivered", got.Load(), live)
	}
	lmu.Lock()
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	lmu.Unlock()

	b.ReportMetric(drain, "delivered/s")
	b.ReportMetric(raw, "raw-posts/s")
	b.ReportMetric(drain/raw, "ratio")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.Logf("backlog %d: delivered %.0f/s, raw POSTs %.0f/s (%.0f%%); at 200 creates/s append→delivery p50 %v p99 %v (%d samples)",
		n, drain, raw, 100*drain/raw, p50, p99, len(lat))
}
