package main

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/apptest"
	"crm/internal/natsauth"
)

func TestPercentileAndSummary(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if p := percentile(d, 50); p != 50*time.Millisecond {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(d, 99); p != 99*time.Millisecond {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile(d[:1], 99); p != time.Millisecond {
		t.Errorf("p99 of one = %v", p)
	}
	if p := percentile(nil, 50); p != 0 {
		t.Errorf("p50 of none = %v", p)
	}
	s := summarize([]float64{3, 1, 2})
	if s.Median != 2 || s.Min != 1 || s.Max != 3 {
		t.Errorf("summary %+v", s)
	}
	if s := summarize([]float64{4, 1, 2, 3}); s.Median != 2.5 {
		t.Errorf("even median %v", s.Median)
	}
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", 12.34: "12.3"} {
		if got := thousands(in); got != want {
			t.Errorf("thousands(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestRefusesRemoteAddresses(t *testing.T) {
	for _, args := range [][]string{
		{"--url", "http://10.1.2.3:8080", "--token", "x"},
		{"--url", "http://example.com:8080", "--token", "x"},
		{"--nats", "nats://192.168.1.1:4222", "--token", "x"},
		{"--phases", "nope", "--token", "x"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), args, func(string) string { return "" }, &out, &errb)
		if err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	for _, h := range []string{"127.0.0.1", "127.0.0.53", "::1", "localhost"} {
		if !loopback(h) {
			t.Errorf("%s is loopback", h)
		}
	}
}

// TestAgainstService runs every phase with tiny numbers against a real
// service (embedded NATS over loopback TCP, SQLite, HTTP) and checks the
// report, and that the scratch stream and temporary files are gone.
func TestAgainstService(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a service")
	}
	env := apptest.StartEmbedded(t)
	tmp := t.TempDir()
	var out, errb bytes.Buffer
	args := []string{"--url", env.App.URL(), "--nats", env.App.NATSURL, "--data-dir", env.Cfg.DataDir,
		"--token", env.Token, "--clients", "4", "--customers", "60", "--runs", "2", "--duration", "250ms",
		"--warmup", "0", "--batch", "50", "--tmp", tmp, "--pid", strconv.Itoa(os.Getpid()), "--activities", "120", "--json"}
	if err := run(context.Background(), args, func(string) string { return "" }, &out, &errb); err != nil {
		t.Fatalf("crmbench: %v\n%s", err, errb.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, out.String())
	}
	if rep.Dataset.ForReads < 60 || rep.Dataset.AtEnd <= rep.Dataset.ForReads {
		t.Errorf("data set %+v", rep.Dataset)
	}
	for _, p := range phaseNames {
		if p == "activities" {
			continue // a seeding step, not measured
		}
		if p == "raw-read" {
			p = "raw-get"
		}
		runs := rep.Phases[p]
		want := 2
		if p == "topup" {
			want = 1
		}
		if len(runs) != want {
			t.Errorf("phase %s: %d runs, want %d", p, len(runs), want)
			continue
		}
		for i, st := range runs {
			if st.Ops == 0 || st.Rate <= 0 || st.Failed > 0 {
				t.Errorf("phase %s run %d: %+v", p, i+1, st)
			}
		}
	}
	ratios := map[string]bool{}
	for _, f := range rep.Figures {
		if f.Limit != nil && f.Ratio > 0 {
			ratios[strings.Fields(f.Name)[0]] = true
		}
	}
	for _, name := range []string{"creates/s", "get-by-id/s", "list", "search", "timeline", "projector", "full", "read-your-writes"} {
		if !ratios[name] {
			t.Errorf("no ratio for %s in %+v", name, rep.Figures)
		}
	}
	if rep.Dataset.RebuiltCustomers < 60 {
		t.Errorf("rebuild built %d customers", rep.Dataset.RebuiltCustomers)
	}
	if len(rep.Memory) == 0 {
		t.Error("no memory samples with --pid")
	}

	// The table renders the same report.
	var table bytes.Buffer
	rep.writeTable(&table)
	for _, s := range []string{"creates/s (POST)", "raw JetStream sync publish/s", "projector catch-up", "per query"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}

	// Clean: no scratch stream, no temporary files.
	_, js := env.JetStream()
	names := js.StreamNames(context.Background())
	for n := range names.Name() {
		if strings.HasPrefix(n, "CRMBENCH") {
			t.Errorf("scratch stream %s left behind", n)
		}
	}
	if err := names.Err(); err != nil && err != jetstream.ErrEndOfData {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// TestOpenLoop checks the open-loop schedule: the offered rate is kept, and
// an operation that starts late behind a slow one is charged the wait.
func TestOpenLoop(t *testing.T) {
	instant := func(context.Context, *worker) (string, error) { return "", nil }
	res := runLoadAt(t.Context(), 2, 100, time.Second, 1<<40, 1, instant)
	if res.OK < 90 || res.OK > 101 {
		t.Errorf("offered 100/s for 1s: %d operations", res.OK)
	}
	slow := func(context.Context, *worker) (string, error) { time.Sleep(10 * time.Millisecond); return "", nil }
	res = runLoadAt(t.Context(), 1, 1000, 300*time.Millisecond, 1<<40, 1, slow)
	if res.OK < 10 || res.OK > 35 {
		t.Errorf("one worker, 10 ms per operation, 300 ms: %d operations", res.OK)
	}
	if last := res.Lat[len(res.Lat)-1]; last < 100*time.Millisecond {
		t.Errorf("overloaded open loop: worst latency %v, want the time behind schedule counted (> 100ms)", last)
	}
	closed := runLoadAt(t.Context(), 1, 0, 300*time.Millisecond, 1<<40, 1, slow)
	if worst := closed.Lat[len(closed.Lat)-1]; worst > 50*time.Millisecond {
		t.Errorf("closed loop: worst latency %v, want about 10ms", worst)
	}
}

// TestTopupByEvents: the events top-up reaches --customers through the
// stream (codes from the service's counter, events the domain decided), and
// the service serves them: unique codes, valid events.
func TestTopupByEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a service")
	}
	env := apptest.StartEmbedded(t)
	var out, errb bytes.Buffer
	args := []string{"--url", env.App.URL(), "--nats", env.App.NATSURL, "--data-dir", env.Cfg.DataDir,
		"--token", env.Token, "--customers", "1203", "--runs", "1", "--phases", "topup", "--topup-by", "events", "--tmp", t.TempDir()}
	if err := run(context.Background(), args, func(string) string { return "" }, &out, &errb); err != nil {
		t.Fatalf("crmbench: %v\n%s\n%s", err, out.String(), errb.String())
	}
	var l struct {
		Data []struct{ CustomerCode string }
		Meta struct{ Total int }
	}
	env.Do("GET", "/api/v1/crm/customers?sort=-customerCode&perPage=1", nil).JSON(t, &l)
	if l.Meta.Total != 1203 || len(l.Data) != 1 || l.Data[0].CustomerCode != "C1203" {
		t.Fatalf("after the top-up: %+v", l)
	}
	// The next create through the API takes the next code.
	r := env.Do("POST", "/api/v1/crm/customers", `{"name":"After The Seed"}`)
	if r.Status != 201 || !strings.Contains(string(r.Body), `"customerCode":"C1204"`) {
		t.Fatalf("create after the top-up: %d %s", r.Status, r.Body)
	}
}

// TestNATSAuth: crmbench finds the embedded service's NATS credentials in
// --data-dir, as crmctl does, unless --nats or NATS_* give them.
func TestNATSAuth(t *testing.T) {
	dir := t.TempDir()
	none := func(string) string { return "" }
	b := &bench{natsURL: "nats://127.0.0.1:4222", dataDir: dir}
	if o, err := b.natsAuth(none); err != nil || len(o) != 0 {
		t.Fatalf("no credentials anywhere: %d options, %v", len(o), err)
	}
	if _, _, err := natsauth.LoadOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	if o, err := b.natsAuth(none); err != nil || len(o) != 1 {
		t.Fatalf("credentials in --data-dir: %d options, %v", len(o), err)
	}
	b.natsURL = "nats://u:p@127.0.0.1:4222"
	if o, err := b.natsAuth(none); err != nil || len(o) != 0 {
		t.Fatalf("credentials in the URL: %d options, %v", len(o), err)
	}
}

func TestParseSizes(t *testing.T) {
	got, err := parseSizes("10k, 100_000,1m")
	if err != nil || !slices.Equal(got, []int64{10_000, 100_000, 1_000_000}) {
		t.Fatalf("parseSizes: %v, %v", got, err)
	}
	for _, bad := range []string{"100,10", "100,100", "0", "-5", "x", "1.5k", "10000000000000000000"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q) accepted", bad)
		}
	}
	if got, err := parseSizes(""); err != nil || got != nil {
		t.Errorf("no sizes: %v, %v", got, err)
	}
}

// TestScaleMode is the small-scale smoke run of --scale against a real
// service: each step tops the data set up to its size and measures there,
// and the scale table lines the same figure up across the sizes.
func TestScaleMode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a service")
	}
	env := apptest.StartEmbedded(t)
	var out, errb bytes.Buffer
	args := []string{"--url", env.App.URL(), "--nats", env.App.NATSURL, "--data-dir", env.Cfg.DataDir,
		"--token", env.Token, "--clients", "4", "--scale", "40,2000", "--topup-by", "events", "--runs", "1", "--duration", "200ms", "--warmup", "0",
		"--phases", "get,search,raw-publish,create,patch", "--tmp", t.TempDir(), "--pid", strconv.Itoa(os.Getpid()), "--json"}
	if err := run(context.Background(), args, func(string) string { return "" }, &out, &errb); err != nil {
		t.Fatalf("crmbench: %v\n%s", err, errb.String())
	}
	var sr scaleReport
	if err := json.Unmarshal(out.Bytes(), &sr); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, out.String())
	}
	if len(sr.Steps) != 2 || !slices.Equal(sr.Sizes, []int64{40, 2000}) || sr.Error != "" {
		t.Fatalf("steps %d, sizes %v, error %q", len(sr.Steps), sr.Sizes, sr.Error)
	}
	for i, rep := range sr.Steps {
		size := sr.Sizes[i]
		if rep.Config.Customers != size || rep.Dataset.ForReads < size {
			t.Errorf("step %d: config %d customers, %d during the reads, want %d", i, rep.Config.Customers, rep.Dataset.ForReads, size)
		}
		for _, p := range []string{"get", "search", "create", "patch", "raw-publish"} {
			if len(rep.Phases[p]) != 1 || rep.Phases[p][0].Ops == 0 || rep.Phases[p][0].Failed > 0 {
				t.Errorf("step %d phase %s: %+v", i, p, rep.Phases[p])
			}
		}
	}
	// The first step appended 40 customers; the second topped up from what
	// the first left (its creates included) to 2,000.
	first, second := sr.Steps[0].Dataset, sr.Steps[1].Dataset
	if first.ToppedUp != 40 || second.AtStart != first.AtEnd || second.ToppedUp != 2000-second.AtStart || second.ForReads < 2000 {
		t.Errorf("data sets: first step %+v, second %+v", first, second)
	}

	rows := sr.rows()
	byName := map[string]scaleRow{}
	for _, r := range rows {
		byName[r.name] = r
	}
	for _, name := range []string{"get-by-id/s", "get-by-id p99", "creates/s (POST)", "patches/s (PATCH)",
		"service CPU per get operation", "service anonymous memory (RssAnon, sampled after each run)"} {
		r, ok := byName[name]
		if !ok || len(r.cells) != 2 || r.cells[0] == "" || r.cells[1] == "" {
			t.Errorf("scale row %q: %+v (rows %v)", name, r, slices.Collect(maps.Keys(byName)))
		}
	}
	if r := byName["creates/s (POST)"]; !strings.Contains(r.cells[0], "%)") {
		t.Errorf("creates/s at the first size without its ratio to raw publish: %q", r.cells[0])
	}
	var searchRows int
	for _, r := range rows {
		if strings.HasPrefix(r.name, "search ") && strings.HasSuffix(r.name, " p50 / p99") {
			searchRows++
		}
	}
	if searchRows == 0 {
		t.Error("no per-query search rows")
	}
	var table bytes.Buffer
	sr.writeTable(&table)
	if !strings.Contains(table.String(), "FIGURE  ") || !strings.Contains(table.String(), "get-by-id/s  ") {
		t.Errorf("scale table:\n%s", table.String())
	}
}

// TestMemoryTargets: each memory figure is judged against its own target.
func TestMemoryTargets(t *testing.T) {
	r := &report{Phases: map[string][]runStat{}, Dataset: datasetInfo{ForReads: 100_000},
		Memory: []memSample{{After: "get run 1", RSSMiB: 555, AnonMiB: 148}, {After: "end", RSSMiB: 520, AnonMiB: 700}}}
	r.finish(&bench{clients: 32})
	met := map[string]bool{}
	for _, f := range r.Figures {
		if f.Met != nil {
			met[f.Key] = *f.Met
		}
	}
	rss, anon := "service resident memory (VmRSS, sampled after each run)", "service anonymous memory (RssAnon, sampled after each run)"
	if v, ok := met[rss]; !ok || v {
		t.Errorf("VmRSS 555 MiB against < 300 MiB: met %v (present %v)", v, ok)
	}
	if v, ok := met[anon]; !ok || v {
		t.Errorf("RssAnon 700 MiB against < 512 MiB: met %v (present %v)", v, ok)
	}
	r = &report{Phases: map[string][]runStat{}, Memory: []memSample{{RSSMiB: 900, AnonMiB: 100}}}
	r.finish(&bench{clients: 32})
	for _, f := range r.Figures {
		if f.Key == anon && (f.Met == nil || !*f.Met) {
			t.Errorf("RssAnon 100 MiB against < 512 MiB: %+v", f)
		}
		if f.Key == rss && (f.Met == nil || *f.Met) {
			t.Errorf("VmRSS 900 MiB against < 300 MiB: %+v", f)
		}
	}
}
