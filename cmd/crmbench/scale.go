package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// scaleReport is the result of a scale run (--scale): one report per data
// set size, in ascending order.
type scaleReport struct {
	Tool      string    `json:"tool"`
	StartedAt time.Time `json:"startedAt"`
	Seconds   float64   `json:"seconds"`
	Sizes     []int64   `json:"sizes"`
	Steps     []*report `json:"steps"`
	Error     string    `json:"error,omitempty"`
}

// parseSizes reads "10000,100000,1000000" (also "10k,100k,1m"): positive
// and strictly ascending, since a step only tops the data set up.
func parseSizes(s string) ([]int64, error) {
	var out []int64
	for _, part := range strings.Split(s, ",") {
		part = strings.ToLower(strings.TrimSpace(part))
		if part == "" {
			continue
		}
		mult := int64(1)
		switch {
		case strings.HasSuffix(part, "k"):
			mult, part = 1_000, strings.TrimSuffix(part, "k")
		case strings.HasSuffix(part, "m"):
			mult, part = 1_000_000, strings.TrimSuffix(part, "m")
		}
		n, err := strconv.ParseInt(strings.ReplaceAll(part, "_", ""), 10, 64)
		if err != nil || n <= 0 || n > math.MaxInt64/mult {
			return nil, fmt.Errorf("%q: want a positive number of customers (10000, 10k, 1m)", part)
		}
		n *= mult
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("sizes must ascend: %d after %d", n, out[len(out)-1])
		}
		out = append(out, n)
	}
	if len(out) > 10 {
		return nil, errors.New("at most 10 sizes")
	}
	return out, nil
}

// scaleRun runs the selected phases at each size in turn, topping the
// data set up to it first, and prints each step's report and then every
// figure side by side. A step that fails ends the run; the steps measured
// so far are still printed.
func (b *bench) scaleRun(ctx context.Context, sizes []int64, stdout io.Writer, asJSON bool) error {
	sr := &scaleReport{Tool: "crmbench", StartedAt: time.Now().UTC().Truncate(time.Second), Sizes: sizes}
	var err error
	for i, n := range sizes {
		b.customers = n
		b.logf("scale: step %d/%d, %s customers", i+1, len(sizes), thousands(float64(n)))
		var rep *report
		rep, err = b.once(ctx)
		if rep != nil {
			sr.Steps = append(sr.Steps, rep)
		}
		if err != nil {
			err = fmt.Errorf("at %s customers: %w", thousands(float64(n)), err)
			break
		}
	}
	if len(sr.Steps) == 0 {
		return err
	}
	if err != nil {
		sr.Error = err.Error()
	}
	sr.Seconds = math.Round(time.Since(sr.StartedAt).Seconds())
	if asJSON {
		if werr := writeJSON(stdout, sr); werr != nil {
			return werr
		}
		return err
	}
	for _, rep := range sr.Steps {
		fmt.Fprintf(stdout, "\n==== at %s customers ====\n", thousands(float64(rep.Config.Customers)))
		rep.writeTable(stdout)
	}
	sr.writeTable(stdout)
	return err
}

// scaleRow is one figure across the sizes.
type scaleRow struct {
	name, target string
	cells        []string
}

// rows lines the steps' figures up by key, in the order they first appear:
// the figures, the per-query latencies and the service's CPU per operation.
func (sr *scaleReport) rows() []scaleRow {
	var out []scaleRow
	at := map[string]int{}
	put := func(key, target string, step int, cell string) {
		i, ok := at[key]
		if !ok {
			i = len(out)
			at[key] = i
			out = append(out, scaleRow{name: key, cells: make([]string, len(sr.Steps))})
		}
		if target != "" {
			out[i].target = target
		}
		out[i].cells[step] = cell
	}
	for s, rep := range sr.Steps {
		for _, f := range rep.Figures {
			cell := fmtSummary(&Summary{Median: f.Service.Median}, f.Unit)
			if f.Limit != nil && f.Ratio > 0 {
				cell += " (" + fmtRatio(f.Ratio, f.Unit) + ")"
			}
			if f.Met != nil && f.applies(rep.Config.Customers) {
				if *f.Met {
					cell += " met"
				} else {
					cell += " MISSED"
				}
			}
			put(f.Key, f.Target, s, cell)
		}
		for _, ph := range []string{"list", "search"} {
			for _, label := range queryLabels(rep.Phases[ph]) {
				var p50s, p99s []float64
				for _, st := range rep.Phases[ph] {
					if q, ok := st.Queries[label]; ok && q.N > 0 {
						p50s, p99s = append(p50s, q.P50Ms), append(p99s, q.P99Ms)
					}
				}
				if m50, m99 := summarize(p50s), summarize(p99s); m50 != nil {
					put(ph+" "+label+" p50 / p99", "", s, fmtMs(m50.Median)+" / "+fmtMs(m99.Median))
				}
			}
		}
		for _, ph := range phaseOrder(rep.Phases) {
			if !servicePhase(ph) {
				continue
			}
			if c := rep.of(ph, func(st runStat) float64 { return st.ServiceCPUPerOpUs }); c != nil && c.Median > 0 {
				put("service CPU per "+ph+" operation", "", s, strconv.FormatFloat(math.Round(c.Median), 'f', -1, 64)+" µs")
			}
		}
	}
	return out
}

// servicePhase reports whether ph's operations are the service's work (the
// raw limits other than publishing, catch-up and rebuild run in crmbench; the
// raw publishes load the service's NATS, in its process when embedded).
func servicePhase(ph string) bool {
	switch ph {
	case "raw-get", "raw-list", "raw-search", "raw-upsert", "catchup", "rebuild":
		return false
	}
	return true
}

func (sr *scaleReport) writeTable(w io.Writer) {
	fmt.Fprintf(w, "\n==== scale: the same figures at each size (medians of the runs; service ÷ limit of the same step in brackets) ====\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"FIGURE"}
	for _, rep := range sr.Steps {
		head = append(head, thousands(float64(rep.Config.Customers)))
	}
	fmt.Fprintln(tw, strings.Join(append(head, "TARGET"), "\t"))
	for _, r := range sr.rows() {
		cells := make([]string, len(r.cells))
		for i, c := range r.cells {
			cells[i] = c
			if c == "" {
				cells[i] = "-"
			}
		}
		fmt.Fprintln(tw, r.name+"\t"+strings.Join(cells, "\t")+"\t"+r.target)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nEach step first tops the data set up to its size, then runs the phases; the writes of a step (creates,")
	fmt.Fprintln(w, "read-your-writes) add customers, so a step's write figures are measured just above its size.")
	if sr.Error != "" {
		fmt.Fprintf(w, "\nINCOMPLETE: %s\n", sr.Error)
	}
}
