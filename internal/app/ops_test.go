package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"crm/internal/app"
	"crm/internal/apptest"
	"crm/internal/embedded"
	"crm/internal/events"
)

func TestMetricsAfterLoad(t *testing.T) {
	e := apptest.StartEmbedded(t)
	for range 5 {
		c := create(t, e, `{"name":"Metric"}`)
		e.Do("PATCH", "/api/v1/crm/customers/"+c.CustomerID, `{"status":"active"}`)
		e.Do("GET", "/api/v1/crm/customers/"+c.CustomerID, nil)
	}
	e.Do("POST", "/api/v1/crm/customers", `{"name":""}`)
	r := e.Do("GET", "/metrics", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("/metrics: %d", r.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(r.Body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	for _, name := range []string{
		"crm_http_request_duration_seconds", "crm_commands_total", "crm_event_append_duration_seconds",
		"crm_projector_events_total", "crm_projector_lag_events", "crm_projector_lag_seconds",
		"crm_projector_errors_total", "crm_read_your_writes_waits_total", "crm_read_your_writes_timeouts_total",
	} {
		if families[name] == nil {
			t.Errorf("series %s missing", name)
		}
	}
	count := func(name string, labels map[string]string) float64 {
		var sum float64
	next:
		for _, m := range families[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
		return sum
	}
	if got := count("crm_commands_total", map[string]string{"kind": "create", "outcome": "ok"}); got != 5 {
		t.Errorf("creates ok = %v, want 5", got)
	}
	if got := count("crm_commands_total", map[string]string{"kind": "create", "outcome": "invalid"}); got != 1 {
		t.Errorf("creates invalid = %v, want 1", got)
	}
	if got := count("crm_projector_events_total", nil); got != 10 {
		t.Errorf("projected events = %v, want 10", got)
	}
	// One series per registered event type, from the start.
	for _, typ := range events.Types() {
		want := map[string]float64{events.TypeCreatedV1: 5, events.TypeUpdatedV1: 5}[typ]
		if got := count("crm_projector_events_total", map[string]string{"type": typ}); got != want ||
			!strings.Contains(string(r.Body), `crm_projector_events_total{type="`+typ+`"}`) {
			t.Errorf("projected %s = %v, want %v", typ, got, want)
		}
	}
	if got := count("crm_http_request_duration_seconds", map[string]string{"route": "/api/v1/crm/customers/:id", "method": "GET", "status": "200"}); got != 5 {
		t.Errorf("GET by id observations = %v, want 5", got)
	}
	if got := count("crm_read_your_writes_waits_total", nil); got != 10 {
		t.Errorf("read-your-writes waits = %v, want 10", got)
	}
}

func readyz(e *apptest.Env) (int, string) {
	r := e.Do("GET", "/readyz", nil)
	return r.Status, string(r.Body)
}

// readyChecks returns the status of /readyz and its checks, parsed from
// {"status": …, "checks": {"nats": …, "stream": …, "readModel": …,
// "projector": …}}: each check is "ok" or why it fails. (The body always
// names every check, so looking for a name in it proves nothing.) A missing
// check fails the test rather than read as "not ok".
func readyChecks(t *testing.T, e *apptest.Env) (int, map[string]string) {
	t.Helper()
	r := e.Do("GET", "/readyz", nil)
	return parseChecks(t, r.Status, r.Body)
}

// detailedChecks is readyChecks from the operations listener (the app must
// have one: config MetricsAddr), where each failing check says why.
func detailedChecks(t *testing.T, e *apptest.Env) (int, map[string]string) {
	t.Helper()
	if e.App.OpsAddr() == "" {
		t.Fatal("no operations listener: set MetricsAddr")
	}
	r, err := http.Get("http://" + e.App.OpsAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return parseChecks(t, r.StatusCode, b)
}

func parseChecks(t *testing.T, status int, b []byte) (int, map[string]string) {
	t.Helper()
	var body struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("/readyz %d: %v: %s", status, err, b)
	}
	for _, name := range []string{"nats", "stream", "readModel", "projector"} {
		if _, ok := body.Checks[name]; !ok {
			t.Fatalf("/readyz %d without the %s check: %s", status, name, b)
		}
	}
	return status, body.Checks
}

// TestReadyzFollowsNATS stops the (external) NATS server under a running API:
// /readyz turns unready and its nats check says why, and all is ready again
// once NATS is back.
func TestReadyzFollowsNATS(t *testing.T) {
	natsDir := t.TempDir()
	ns, err := embedded.Start(embedded.Config{DataDir: natsDir, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	url := ns.ClientURL()
	port := url[strings.LastIndex(url, ":")+1:]
	cfg := apptest.Config(t, t.TempDir())
	cfg.NATSURL = url
	e := apptest.Start(t, cfg)
	if s, body := readyz(e); s != http.StatusOK {
		t.Fatalf("readyz at start: %d %s", s, body)
	}
	ns.Shutdown()
	// Poll by hand (not apptest.Eventually) to name the checks on failure:
	// without NATS the stream check fails too, so only the nats check's own
	// value shows that /readyz looks at the connection.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s, checks := readyChecks(t, e)
		if s == http.StatusServiceUnavailable && checks["nats"] != "ok" {
			t.Logf("checks without NATS: %v", checks)
			if checks["readModel"] != "ok" {
				t.Errorf("without NATS the (local) read model is reported %q", checks["readModel"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("NATS down for 10 s, /readyz still answers %d with nats %q (checks: %v)", s, checks["nats"], checks)
		}
	}
	var p int
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	ns, err = embedded.Start(embedded.Config{DataDir: natsDir, Port: p})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	apptest.Eventually(t, 20*time.Second, "ready again", func() bool {
		s, checks := readyChecks(t, e)
		return s == http.StatusOK && checks["nats"] == "ok"
	})
	if c := create(t, e, `{"name":"After NATS Restart"}`); c.CustomerCode != "C001" {
		t.Fatalf("create after NATS restart: %+v", c)
	}
}

// TestReadyzReportsStuckProjector appends an event the projector cannot
// apply: /readyz turns unready and names the projector.
func TestReadyzReportsStuckProjector(t *testing.T) {
	cfg := apptest.Config(t, t.TempDir())
	cfg.MetricsAddr = "127.0.0.1:0"
	e := apptest.Start(t, cfg)
	e.ForeignEvents = true // a malformed event is the point of the test
	create(t, e, `{"name":"Fine"}`)
	_, js := e.JetStream()
	if _, err := js.Publish(context.Background(), "crm.customers.6f1b6c36-5b7e-4b43-9d3a-3f4f2a7f0a11.created", []byte(`not json`)); err != nil {
		t.Fatal(err)
	}
	// The operations listener says why; the public /readyz only which
	// check fails, without the error's text.
	ops := func(path string) (int, string) {
		r, err := http.Get("http://" + e.App.OpsAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	apptest.Eventually(t, 10*time.Second, "unready with a stuck projector", func() bool {
		s, body := ops("/readyz")
		return s == http.StatusServiceUnavailable && strings.Contains(body, "stuck")
	})
	if s, checks := readyChecks(t, e); s != http.StatusServiceUnavailable || checks["projector"] != "failing" {
		t.Errorf("public /readyz with a stuck projector: %d %v", s, checks)
	}
	if _, body := readyz(e); strings.Contains(body, "stuck") || strings.Contains(body, "json") {
		t.Errorf("public /readyz shows the reason: %s", body)
	}
	// /metrics lives on the operations listener only.
	if s, body := ops("/metrics"); s != http.StatusOK || !strings.Contains(body, "crm_projector_events_total") {
		t.Errorf("operations /metrics: %d %.200s", s, body)
	}
	if r := e.Do("GET", "/metrics", nil); r.Status != http.StatusNotFound {
		t.Errorf("public /metrics with an operations listener: %d", r.Status)
	}
	// Commands still succeed (the stream is the truth); the response says the
	// read model is behind.
	r := e.Do("POST", "/api/v1/crm/customers", `{"name":"Still Accepted"}`, "X-Request-ID", "stuck-1")
	if r.Status != http.StatusCreated || r.Header.Get("X-Read-Model") != "behind" {
		t.Fatalf("create with a stuck projector: %d %v", r.Status, r.Header)
	}
}

func TestRateLimitPerSubject(t *testing.T) {
	cfg := apptest.Config(t, t.TempDir())
	cfg.RateLimitRPS, cfg.RateLimitBurst = 1, 3
	e := apptest.Start(t, cfg)
	for i := range 3 {
		if r := e.Do("GET", "/api/v1/crm/customers", nil); r.Status != http.StatusOK {
			t.Fatalf("request %d within burst: %d", i, r.Status)
		}
	}
	r := e.Do("GET", "/api/v1/crm/customers", nil)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "1" ||
		r.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("over the limit: %d %v %s", r.Status, r.Header, r.Body)
	}
	other := *e
	other.Token = e.TokenFor("66666666-6666-4666-8666-666666666666", "user")
	if r := other.Do("GET", "/api/v1/crm/customers", nil); r.Status != http.StatusOK {
		t.Fatalf("another subject is limited too: %d", r.Status)
	}
	// The bucket refills within Retry-After (1 s): poll, bounded a little
	// beyond it.
	apptest.Eventually(t, 2*time.Second, "a request passes again after Retry-After", func() bool {
		return e.Do("GET", "/api/v1/crm/customers", nil).Status == http.StatusOK
	})
}

func TestCORSPreflight(t *testing.T) {
	cfg := apptest.Config(t, t.TempDir())
	cfg.CORSOrigins = []string{"http://localhost:5173"}
	e := apptest.Start(t, cfg)
	r := e.Do("OPTIONS", "/api/v1/crm/customers", nil, "Authorization", "", "Origin", "http://localhost:5173",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type,idempotency-key")
	if r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(strings.ToLower(r.Header.Get("Access-Control-Allow-Headers")), "idempotency-key") {
		t.Fatalf("preflight from an allowed origin: %d %v", r.Status, r.Header)
	}
	r = e.Do("OPTIONS", "/api/v1/crm/customers", nil, "Authorization", "", "Origin", "http://evil.example",
		"Access-Control-Request-Method", "POST")
	if r.Header.Get("Access-Control-Allow-Origin") != "" || r.Status == http.StatusNoContent {
		t.Fatalf("preflight from another origin allowed: %d %v", r.Status, r.Header)
	}
	r = e.Do("GET", "/api/v1/crm/customers", nil, "Origin", "http://localhost:5173")
	if r.Status != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" ||
		!strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "Etag") && !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "ETag") {
		t.Fatalf("simple request: %d %v", r.Status, r.Header)
	}
}

// TestReadYourWritesWithoutInProcessProjector runs an API replica without a
// projector of its own (as in distributed mode) on the read model another
// process's projector keeps: its command responses still wait until the
// read model has the event, through the store's checkpoint.
func TestReadYourWritesWithoutInProcessProjector(t *testing.T) {
	dir := t.TempDir()
	owner := apptest.Start(t, apptest.Config(t, dir)) // runs the projector on dir's read model
	cfg := apptest.Config(t, dir)
	cfg.NATSURL = owner.App.NATSURL
	replica := apptest.Start(t, cfg, func(o *app.Options) { o.NoProjector = true })
	if replica.App.Projector() != nil {
		t.Fatal("the replica runs a projector")
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := replica.Do("POST", "/api/v1/crm/customers", fmt.Sprintf(`{"name":"Replica %d"}`, i))
			if r.Status != http.StatusCreated || r.Header.Get("X-Read-Model") != "current" {
				t.Errorf("create through the replica: %d, X-Read-Model %q", r.Status, r.Header.Get("X-Read-Model"))
				return
			}
			var env envelope
			r.JSON(t, &env)
			if g := replica.Do("GET", "/api/v1/crm/customers/"+env.Data.CustomerID, nil); g.Status != http.StatusOK {
				t.Errorf("read after write through the replica: %d", g.Status)
			}
		}()
	}
	wg.Wait()
}

// TestMetricsLabelsBounded sends requests with made-up methods and paths,
// without a token: the request series keep to a fixed set of label values,
// so /metrics does not grow with them.
func TestMetricsLabelsBounded(t *testing.T) {
	e := apptest.StartEmbedded(t)
	// The number of series (sample lines), not bytes: counts and sums
	// grow in digits.
	size := func() int {
		n := 0
		for _, l := range strings.Split(string(e.Do("GET", "/metrics", nil).Body), "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				n++
			}
		}
		return n
	}
	send := func(n int) {
		for i := range n {
			req, err := http.NewRequest(fmt.Sprintf("XM%04d", i), e.App.URL()+fmt.Sprintf("/healthz/%d", i), nil)
			if err != nil {
				t.Fatal(err)
			}
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
		}
	}
	send(20)
	size() // its own series (GET /metrics) exists from now on
	before := size()
	send(300)
	if after := size(); after != before {
		t.Errorf("/metrics grew from %d to %d series with 300 more requests of new methods and paths", before, after)
	}
	body := string(e.Do("GET", "/metrics", nil).Body)
	if strings.Contains(body, "XM0") || strings.Contains(body, "/healthz/1") {
		t.Errorf("a client's method or path became a label value")
	}
	if !strings.Contains(body, `method="other"`) || !strings.Contains(body, `route="unmatched"`) {
		t.Errorf("unknown methods and paths are not counted as other/unmatched")
	}
}
