package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

type report struct {
	Tool          string               `json:"tool"`
	StartedAt     time.Time            `json:"startedAt"`
	Seconds       float64              `json:"seconds"`
	Config        reportConfig         `json:"config"`
	Machine       machine              `json:"machine"`
	Dataset       datasetInfo          `json:"dataset"`
	RawReadSource string               `json:"rawReadSource,omitempty"`
	Figures       []figure             `json:"figures"`
	Phases        map[string][]runStat `json:"phases"`
	Memory        []memSample          `json:"memory,omitempty"`
	Error         string               `json:"error,omitempty"`
}

type reportConfig struct {
	URL       string             `json:"url"`
	NATS      string             `json:"nats"`
	DataDir   string             `json:"dataDir"`
	Clients   int                `json:"clients"`
	ReadRate  map[string]float64 `json:"readRate,omitempty"` // open-loop offered rate per read phase; absent = closed loop
	Customers int64              `json:"customers"`
	Runs      int                `json:"runs"`
	Duration  string             `json:"duration"`
	Warmup    string             `json:"warmup"`
	Batch     int                `json:"batch"`
	Phases    []string           `json:"phases"`
	PID       int                `json:"pid,omitempty"`
}

type datasetInfo struct {
	AtStart           int64  `json:"customersAtStart"`
	ToppedUp          int64  `json:"customersCreatedByTopup"`
	ForReads          int64  `json:"customersDuringReads"`
	AtEnd             int64  `json:"customersAtEnd"`
	StreamFirst       uint64 `json:"streamFirstSeq"`
	StreamLastAtStart uint64 `json:"streamLastSeqAtStart"`
	RebuildSeq        uint64 `json:"rebuildUpToSeq"`
	RebuiltCustomers  int64  `json:"rebuiltLiveCustomers"`
}

type memSample struct {
	After   string  `json:"after"`
	RSSMiB  float64 `json:"rssMiB"`
	PeakMiB float64 `json:"peakMiB"`
	AnonMiB float64 `json:"anonMiB"` // RssAnon
	FileMiB float64 `json:"fileMiB"` // RssFile
	PSSMiB  float64 `json:"pssMiB"`  // proportional set size (0 when unknown)
}

// figure is one row of the table: a figure of the service next to its
// limit. Ratio is service ÷ limit of the medians; PairedRatios are the
// ratios of runs measured in alternation.
type figure struct {
	Name         string   `json:"name"`
	Key          string   `json:"key"` // the name without the data set size: the same figure at another size has the same key
	Unit         string   `json:"unit"`
	Service      *Summary `json:"service,omitempty"`
	LimitName    string   `json:"limitName,omitempty"`
	Limit        *Summary `json:"limit,omitempty"`
	Ratio        float64  `json:"ratio,omitempty"`
	PairedRatios *Summary `json:"pairedRatios,omitempty"`
	Target       string   `json:"target,omitempty"`
	Met          *bool    `json:"met,omitempty"`
	// The target applies to data sets of TargetFrom customers or more, up
	// to TargetUpTo (0: no bound).
	TargetFrom int64  `json:"targetFrom,omitempty"`
	TargetUpTo int64  `json:"targetUpTo,omitempty"`
	Note       string `json:"note,omitempty"`
}

func newReport(b *bench) *report {
	var phases []string
	for _, p := range phaseNames {
		if b.phases[p] {
			phases = append(phases, p)
		}
	}
	return &report{
		Tool: "crmbench", StartedAt: time.Now().UTC().Truncate(time.Second),
		Config: reportConfig{URL: b.url, NATS: b.natsURL, DataDir: b.dataDir, Clients: b.clients, ReadRate: b.readRate, Customers: b.customers,
			Runs: b.runs, Duration: b.dur.String(), Warmup: b.warmup.String(), Batch: b.batch, Phases: phases, PID: b.pid},
		Machine: machine{CPU: cpuModel(), Cores: runtime.NumCPU(), Kernel: kernel(), GoVersion: runtime.Version(), LoadStart: loadAverage()},
		Phases:  map[string][]runStat{},
	}
}

func (r *report) add(phase string, st runStat) { r.Phases[phase] = append(r.Phases[phase], st) }

func (r *report) hasResults() bool { return len(r.Phases) > 0 }

// of returns the summary of f over the runs of phase (nil without runs).
func (r *report) of(phase string, f func(runStat) float64) *Summary {
	var v []float64
	for _, st := range r.Phases[phase] {
		if st.Ops > 0 {
			v = append(v, f(st))
		}
	}
	return summarize(v)
}

func rate(st runStat) float64 { return st.Rate }
func p50(st runStat) float64  { return st.P50Ms }
func p99(st runStat) float64  { return st.P99Ms }

// paired returns the per-run ratios service ÷ limit of two phases run in
// alternation.
func (r *report) paired(svc, lim string, f func(runStat) float64) *Summary {
	s, l := r.Phases[svc], r.Phases[lim]
	if len(s) != len(l) || len(s) < 2 {
		return nil
	}
	var v []float64
	for i := range s {
		if s[i].Ops > 0 && l[i].Ops > 0 && f(l[i]) > 0 {
			v = append(v, f(s[i])/f(l[i]))
		}
	}
	return summarize(v)
}

func (r *report) finish(b *bench) {
	r.Seconds = math.Round(time.Since(r.StartedAt).Seconds())
	r.Machine.LoadEnd = loadAverage()
	at := fmt.Sprintf("at %s customers, %d clients", thousands(float64(r.Dataset.ForReads)), b.clients)
	full := r.Dataset.ForReads >= 100_000 && b.clients == 32
	row := func(name, unit, svc string, sf func(runStat) float64, limName, lim string, lf func(runStat) float64) *figure {
		f := figure{Name: name, Key: strings.TrimSuffix(name, " "+at), Unit: unit, Service: r.of(svc, sf)}
		if f.Service == nil {
			return nil
		}
		if lim != "" {
			f.LimitName, f.Limit = limName, r.of(lim, lf)
			if f.Limit != nil && f.Limit.Median > 0 {
				f.Ratio = f.Service.Median / f.Limit.Median
				f.PairedRatios = r.paired(svc, lim, sf)
			}
		}
		r.Figures = append(r.Figures, f)
		return &r.Figures[len(r.Figures)-1]
	}
	targetRatio := func(f *figure, min float64, what string) {
		if f == nil {
			return
		}
		f.Target = fmt.Sprintf("≥ %.0f%% of %s", min*100, what)
		if f.Limit != nil {
			met := f.Ratio >= min
			f.Met = &met
		}
	}
	targetBelow := func(f *figure, maxMs float64) {
		if f == nil {
			return
		}
		f.Target = "< " + fmtMs(maxMs) + " (100,000 customers, 32 clients)"
		met := f.Service.Median < maxMs
		f.Met, f.TargetFrom = &met, 100_000
		if !full {
			f.Note = "target applies at 100,000 customers and 32 clients"
		}
	}
	pub := "raw JetStream sync publish"
	if f := row("creates/s while filling the data set (POST)", "/s", "topup", rate, pub+"/s", "raw-publish", rate); f != nil {
		f.Note = fmt.Sprintf("one run: %d creates", r.Dataset.ToppedUp)
	}
	targetRatio(row("creates/s (POST)", "/s", "create", rate, pub+"/s", "raw-publish", rate), 0.5, "raw publish/s")
	row("create latency p50", "ms", "create", p50, pub+" p50", "raw-publish", p50)
	row("create latency p99", "ms", "create", p99, pub+" p99", "raw-publish", p99)
	row("patches/s (PATCH)", "/s", "patch", rate, pub+"/s", "raw-publish", rate)
	row("patch latency p99", "ms", "patch", p99, pub+" p99", "raw-publish", p99)
	row("get-by-id/s "+at, "/s", "get", rate, "raw SQLite find-by-id/s", "raw-get", rate)
	row("get-by-id p50", "ms", "get", p50, "raw find-by-id p50", "raw-get", p50)
	targetBelow(row("get-by-id p99", "ms", "get", p99, "raw find-by-id p99", "raw-get", p99), 5)
	row("list p50 (filters, sorts mix)", "ms", "list", p50, "raw SQLite List p50", "raw-list", p50)
	targetBelow(row("list p99", "ms", "list", p99, "raw SQLite List p99", "raw-list", p99), 25)
	row("search p50 (query mix)", "ms", "search", p50, "raw SQLite Search p50", "raw-search", p50)
	targetBelow(row("search p99", "ms", "search", p99, "raw SQLite Search p99", "raw-search", p99), 25)
	row("timeline first page p50", "ms", "timeline", p50, "raw SQLite Timeline p50", "raw-timeline", p50)
	targetBelow(row("timeline first page p99", "ms", "timeline", p99, "raw SQLite Timeline p99", "raw-timeline", p99), 20)
	for _, q := range []struct {
		name string
		f    func(runStat) float64
	}{{"p50", p50}, {"p99", p99}} {
		f := row("read-your-writes POST+GET "+q.name, "ms", "ryw", q.f, "", "", nil)
		if f == nil {
			continue
		}
		lp, lg := r.of("raw-publish", q.f), r.of("raw-get", q.f)
		if lp != nil && lg != nil {
			f.LimitName = "raw publish + raw find-by-id " + q.name
			f.Limit = &Summary{Median: lp.Median + lg.Median, Min: lp.Min + lg.Min, Max: lp.Max + lg.Max}
			f.Ratio = f.Service.Median / f.Limit.Median
		}
		var failed int64
		for _, st := range r.Phases["ryw"] {
			failed += st.Failed
		}
		if failed > 0 {
			f.Note = fmt.Sprintf("%d pairs failed (see failures)", failed)
		}
	}
	cu := row("projector catch-up events/s (fresh SQLite)", "/s", "catchup", rate, "raw SQLite bulk upsert docs/s", "raw-upsert", rate)
	targetRatio(cu, 0.7, "raw bulk upsert/s")
	if rb := r.of("rebuild", func(st runStat) float64 { return st.Seconds }); rb != nil {
		events := r.Phases["rebuild"][0].Ops
		f := figure{Name: fmt.Sprintf("full rebuild of %s events (%s customers)", thousands(float64(events)),
			thousands(float64(r.Dataset.RebuiltCustomers))), Key: "full rebuild of the stream", Unit: "s", Service: rb}
		if up := r.of("raw-upsert", rate); up != nil && up.Median > 0 {
			f.LimitName = "the events ÷ raw bulk upsert/s"
			f.Limit = &Summary{Median: float64(events) / up.Median, Min: float64(events) / up.Max, Max: float64(events) / up.Min}
			f.Ratio = f.Service.Median / f.Limit.Median
		}
		r.Figures = append(r.Figures, f)
	}
	if len(r.Memory) > 0 {
		var rss []float64
		peak := 0.0
		var largest memSample
		for _, m := range r.Memory {
			rss = append(rss, m.RSSMiB)
			peak = max(peak, m.PeakMiB)
			if m.RSSMiB >= largest.RSSMiB {
				largest = m
			}
		}
		s := summarize(rss)
		name := "service resident memory (VmRSS, sampled after each run)"
		f := figure{Name: name, Key: name, Unit: "MiB", Service: s,
			Target: "< 300 MiB at 100,000 customers", Note: fmt.Sprintf("largest sample %.0f MiB (anonymous %.0f, file-backed %.0f, PSS %.0f: "+
				"file pages of the read model count once per reader connection mapping them in VmRSS, once in PSS); peak VmHWM %.0f MiB",
				s.Max, largest.AnonMiB, largest.FileMiB, largest.PSSMiB, peak)}
		met := s.Max < 300
		f.Met, f.TargetFrom, f.TargetUpTo = &met, 100_000, 100_000
		if r.Dataset.ForReads < 100_000 {
			f.Note += "; target applies at 100,000 customers"
		}
		r.Figures = append(r.Figures, f)

		var anon []float64
		for _, m := range r.Memory {
			anon = append(anon, m.AnonMiB)
		}
		name = "service anonymous memory (RssAnon, sampled after each run)"
		a := figure{Name: name, Key: name, Unit: "MiB", Service: summarize(anon), Target: "< 512 MiB at 1,000,000 customers",
			Note: "the heap and other private pages; clean file-backed pages of the read model are page cache the kernel reclaims"}
		anonMet := a.Service.Max < 512
		a.Met, a.TargetFrom = &anonMet, 1_000_000
		if r.Dataset.ForReads < 1_000_000 {
			a.Note += "; target applies at 1,000,000 customers"
		}
		r.Figures = append(r.Figures, a)
	}
}

// applies reports whether f's target applies at a data set of n customers.
func (f figure) applies(n int64) bool {
	return n >= f.TargetFrom && (f.TargetUpTo == 0 || n <= f.TargetUpTo)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (r *report) writeTable(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "\ncrmbench  %s  (NATS %s)  %s\n", c.URL, c.NATS, r.StartedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "machine   %s, %d cores, Linux %s, %s, load average %s → %s\n",
		r.Machine.CPU, r.Machine.Cores, r.Machine.Kernel, r.Machine.GoVersion, r.Machine.LoadStart, r.Machine.LoadEnd)
	fmt.Fprintf(w, "load      %d clients, %d runs × %s per phase (after %s warm-up), medians [min–max]\n",
		c.Clients, c.Runs, c.Duration, c.Warmup)
	for _, ph := range []string{"get", "list", "search"} {
		if r := c.ReadRate[ph]; r > 0 {
			fmt.Fprintf(w, "open loop %s (and its raw limit) offered %s requests/s over the %d clients; latency from each scheduled start\n",
				ph, thousands(r), c.Clients)
		}
	}
	d := r.Dataset
	fmt.Fprintf(w, "data set  %s customers at start, %s created by the top-up, %s during the reads, %s at the end; stream %d…%d at start\n",
		thousands(float64(d.AtStart)), thousands(float64(d.ToppedUp)), thousands(float64(d.ForReads)), thousands(float64(d.AtEnd)),
		d.StreamFirst, d.StreamLastAtStart)
	if busy(r.Machine.LoadStart, r.Machine.Cores) {
		fmt.Fprintf(w, "WARNING   the machine was busy before the run (load average %s on %d cores): figures are low and noisy\n",
			r.Machine.LoadStart, r.Machine.Cores)
	}
	if r.RawReadSource != "" {
		fmt.Fprintf(w, "raw reads on a %s\n", r.RawReadSource)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tSERVICE\tLIMIT (same run, same machine)\t\tSERVICE ÷ LIMIT\tTARGET")
	for _, f := range r.Figures {
		lim, ratio := "", ""
		if f.Limit != nil {
			lim = fmtSummary(f.Limit, f.Unit)
			ratio = fmtRatio(f.Ratio, f.Unit)
			if f.PairedRatios != nil {
				ratio += " [" + fmtRatioRange(f.PairedRatios, f.Unit) + "]"
			}
		}
		target := f.Target
		if f.Met != nil {
			if *f.Met {
				target += "  met"
			} else {
				target += "  MISSED"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, fmtSummary(f.Service, f.Unit), f.LimitName, lim, ratio, target)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nSERVICE ÷ LIMIT: rates as a percentage of the limit (higher is better); latencies and times as a multiple")
	fmt.Fprintln(w, "of the limit (lower is better); [min–max] of the runs measured in alternation with their limit.")
	var notes []string
	for _, f := range r.Figures {
		if f.Note != "" {
			notes = append(notes, f.Name+": "+f.Note)
		}
	}
	for _, n := range notes {
		fmt.Fprintln(w, "  note: "+n)
	}

	// Per-query latencies.
	var qrows [][]string
	for _, pair := range [][2]string{{"list", "raw-list"}, {"search", "raw-search"}} {
		for _, label := range queryLabels(append(slices.Clone(r.Phases[pair[0]]), r.Phases[pair[1]]...)) {
			cell := func(phase string, pct func(latStat) float64) string {
				var v []float64
				for _, st := range r.Phases[phase] {
					if q, ok := st.Queries[label]; ok && q.N > 0 {
						v = append(v, pct(q))
					}
				}
				if s := summarize(v); s != nil {
					return fmtMs(s.Median)
				}
				return "-"
			}
			qp50 := func(q latStat) float64 { return q.P50Ms }
			qp99 := func(q latStat) float64 { return q.P99Ms }
			qrows = append(qrows, []string{pair[0], label, cell(pair[0], qp50), cell(pair[0], qp99), cell(pair[1], qp50), cell(pair[1], qp99)})
		}
	}
	if len(qrows) > 0 {
		fmt.Fprintln(w, "\nper query (medians of the runs)")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "\tQUERY\tSERVICE p50\tp99\tRAW STORE p50\tp99")
		for _, q := range qrows {
			fmt.Fprintln(tw, strings.Join(q, "\t"))
		}
		tw.Flush()
	}

	// CPU.
	fmt.Fprintln(w, "\nCPU (medians of the runs; service figures need --pid)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tOPS/s\tSERVICE CPU µs/op\tSERVICE CORES\tCRMBENCH CPU µs/op\tCRMBENCH CORES")
	for _, p := range phaseOrder(r.Phases) {
		g := func(f func(runStat) float64) string {
			s := r.of(p, f)
			if s == nil || s.Median == 0 {
				return "-"
			}
			return strconv.FormatFloat(s.Median, 'f', -1, 64)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p,
			fmtNum(r.of(p, rate)),
			g(func(st runStat) float64 { return math.Round(st.ServiceCPUPerOpUs) }),
			g(func(st runStat) float64 { return math.Round(st.ServiceCPUCores*100) / 100 }),
			g(func(st runStat) float64 { return math.Round(st.ToolCPUPerOpUs) }),
			g(func(st runStat) float64 { return math.Round(st.ToolCPUCores*100) / 100 }))
	}
	tw.Flush()

	// Failures.
	first := true
	for _, p := range phaseOrder(r.Phases) {
		for i, st := range r.Phases[p] {
			for msg, n := range st.Errors {
				if first {
					fmt.Fprintln(w, "\nFAILURES")
					first = false
				}
				fmt.Fprintf(w, "  %s run %d: %d × %s\n", p, i+1, n, msg)
			}
		}
	}
	if r.Error != "" {
		fmt.Fprintf(w, "\nINCOMPLETE: %s\n", r.Error)
	}
}

func phaseOrder(m map[string][]runStat) []string {
	order := []string{"topup", "raw-get", "get", "raw-list", "list", "raw-search", "search", "raw-timeline", "timeline", "raw-publish", "create",
		"patch", "ryw", "raw-upsert", "catchup", "rebuild"}
	var out []string
	for _, p := range order {
		if len(m[p]) > 0 {
			out = append(out, p)
		}
	}
	return out
}

func fmtSummary(s *Summary, unit string) string {
	if s == nil {
		return "-"
	}
	one := func(v float64) string {
		switch unit {
		case "ms":
			return fmtMs(v)
		case "/s":
			return thousands(v) + "/s"
		case "s":
			return strconv.FormatFloat(v, 'f', 1, 64) + " s"
		case "MiB":
			return strconv.FormatFloat(v, 'f', 0, 64) + " MiB"
		}
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	if len(s.Runs) <= 1 {
		return one(s.Median)
	}
	return one(s.Median) + " [" + strings.TrimSuffix(strings.TrimSuffix(one(s.Min), "/s"), " MiB") + "–" + one(s.Max) + "]"
}

func fmtRatio(v float64, unit string) string {
	if unit == "/s" {
		return strconv.FormatFloat(v*100, 'f', 0, 64) + "%"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + "×"
}

func fmtRatioRange(s *Summary, unit string) string {
	if unit == "/s" {
		return strconv.FormatFloat(s.Min*100, 'f', 0, 64) + "–" + strconv.FormatFloat(s.Max*100, 'f', 0, 64) + "%"
	}
	return strconv.FormatFloat(s.Min, 'f', 1, 64) + "–" + strconv.FormatFloat(s.Max, 'f', 1, 64) + "×"
}

func fmtMs(v float64) string {
	switch {
	case v < 1:
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
}

func fmtNum(s *Summary) string {
	if s == nil {
		return "-"
	}
	return thousands(s.Median)
}

// thousands formats v with no decimals (one below 100) and thousands
// separators.
func thousands(v float64) string {
	if v < 100 && v != math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// busy reports whether the 1-minute load average exceeds the cores.
func busy(load string, cores int) bool {
	f := strings.Fields(load)
	if len(f) == 0 {
		return false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return err == nil && v > float64(cores)
}
