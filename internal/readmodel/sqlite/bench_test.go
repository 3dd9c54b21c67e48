package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"crm/internal/customer"
	"crm/internal/readmodel"
)

// benchDocs is the size of the data set of the query benchmarks.
const benchDocs = 100_000

var (
	benchFirst = []string{"John", "Jane", "José", "María", "Zoë", "Ann", "Anna", "Peter", "Paul", "Li", "Wei",
		"Ahmed", "Fatima", "Olga", "Ivan", "Łukasz", "Søren", "Chloé", "Mehmet", "Aiko", "Kenji", "Raj",
		"Priya", "Carlos", "Lucía", "Tom", "Emma", "Noah", "Mia", "Lena"}
	benchLast = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "García", "Müller", "Schmidt",
		"Rossi", "Nowak", "Kowalski", "Dubois", "Martin", "Silva", "Santos", "Kim", "Lee", "Wang", "Chen",
		"Tanaka", "Suzuki", "Ivanov", "Petrov", "O'Brien", "Murphy", "Jensen", "Hansen", "Öztürk", "Yılmaz",
		"Fernández"}
	benchCompanyWords = []string{"Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Wonka", "Hooli",
		"Vandelay", "Soylent", "Tyrell", "Cyberdyne", "Aperture", "Black Mesa", "Oscorp", "Dunder Mifflin"}
	benchCompanySuffix = []string{"Corporation", "GmbH", "Ltd", "Inc", "SA", "Group", "Labs", "Holdings"}
	benchTags          = []string{"vip", "priority", "northeast", "enterprise", "smb", "churn-risk",
		"newsletter", "partner", "reseller", "trial"}
	benchStatuses = []string{customer.StatusLead, customer.StatusProspect, customer.StatusActive, customer.StatusInactive}
	benchTypes    = []string{customer.TypeIndividual, customer.TypeBusiness}
)

// benchDoc returns the n-th customer of the benchmark data set.
func benchDoc(r *rand.Rand, n int) readmodel.Customer {
	first, last := benchFirst[r.IntN(len(benchFirst))], benchLast[r.IntN(len(benchLast))]
	company := ""
	if r.IntN(3) > 0 {
		company = benchCompanyWords[r.IntN(len(benchCompanyWords))] + " " +
			benchCompanySuffix[r.IntN(len(benchCompanySuffix))]
	}
	tags := []string{}
	for _, t := range benchTags {
		if r.IntN(6) == 0 {
			tags = append(tags, t)
		}
	}
	if n%5000 == 0 {
		tags = append(tags, "rare")
	}
	// Customers arrive in code order, a few minutes apart, as in the stream.
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).
		Add(time.Duration(n)*5*time.Minute + time.Duration(r.Int64N(int64(time.Minute))))
	return readmodel.Customer{
		ID:      fmt.Sprintf("00000000-0000-4000-8000-%012d", n),
		Code:    fmt.Sprintf("C%03d", n),
		Name:    first + " " + last,
		Email:   fmt.Sprintf("%s.%s%d@example.com", first, last, n),
		Phone:   "+1 555 0100",
		Company: company,
		Address: readmodel.Address{Street: fmt.Sprintf("%d Main St", n), City: "Springfield", Country: "US"},
		Type:    benchTypes[r.IntN(len(benchTypes))], Status: benchStatuses[r.IntN(len(benchStatuses))],
		Tags: tags, CreatedBy: fmt.Sprintf("user-%d", r.IntN(20)),
		CreatedAt: created, UpdatedAt: created.Add(time.Duration(r.IntN(1000)) * time.Hour),
		Version: 1, Seq: uint64(n),
	}
}

var bench struct {
	once sync.Once
	dir  string
	s    *Store
	err  error
}

// benchStore returns the store holding the benchmark data set, built once
// per test binary run and removed by TestMain.
func benchStore(b *testing.B) *Store {
	if testing.Short() {
		b.Skip("benchmark data set skipped in -short")
	}
	bench.once.Do(func() {
		ctx := context.Background()
		bench.dir, bench.err = os.MkdirTemp("", "crm-readmodel-bench-")
		if bench.err != nil {
			return
		}
		s, err := Open(ctx, filepath.Join(bench.dir, "bench.db"))
		if err != nil {
			bench.err = err
			return
		}
		r := rand.New(rand.NewPCG(1, 2))
		start := time.Now()
		batch := make([]readmodel.Customer, 0, 2000)
		for n := 1; n <= benchDocs; n++ {
			batch = append(batch, benchDoc(r, n))
			if len(batch) == cap(batch) || n == benchDocs {
				if err := s.Commit(ctx, batch, uint64(n)); err != nil {
					bench.err = err
					return
				}
				batch = batch[:0]
			}
		}
		fmt.Fprintf(os.Stderr, "bench: %d docs committed in %v (%.0f docs/s)\n",
			benchDocs, time.Since(start).Round(time.Millisecond), benchDocs/time.Since(start).Seconds())
		bench.s = s
	})
	if bench.err != nil {
		b.Fatalf("benchmark data set: %v", bench.err)
	}
	return bench.s
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.s != nil {
		bench.s.Close()
	}
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
	if contactBench.s != nil {
		contactBench.s.Close()
	}
	if contactBench.dir != "" {
		os.RemoveAll(contactBench.dir)
	}
	os.Exit(code)
}

// BenchmarkCommit measures the projector's catch-up path: batches of 500
// new customers, and batches of 500 updates of existing ones.
func BenchmarkCommit(b *testing.B) {
	if testing.Short() {
		b.Skip("skipped in -short")
	}
	const batchSize = 500
	b.Run("insert", func(b *testing.B) {
		s := openTemp(b)
		r := rand.New(rand.NewPCG(3, 4))
		n := 0
		var cpu time.Duration
		for b.Loop() {
			b.StopTimer()
			docs := make([]readmodel.Customer, batchSize)
			for i := range docs {
				n++
				docs[i] = benchDoc(r, n)
			}
			b.StartTimer()
			c0 := cpuTime()
			if err := s.Commit(b.Context(), docs, uint64(n)); err != nil {
				b.Fatal(err)
			}
			cpu += cpuTime() - c0
		}
		reportDocs(b, n, cpu)
	})
	b.Run("update", func(b *testing.B) {
		s := openTemp(b)
		r := rand.New(rand.NewPCG(5, 6))
		docs := make([]readmodel.Customer, 20*batchSize)
		for i := range docs {
			docs[i] = benchDoc(r, i+1)
		}
		if err := s.Commit(b.Context(), docs, uint64(len(docs))); err != nil {
			b.Fatal(err)
		}
		seq, n := uint64(len(docs)), 0
		var cpu time.Duration
		for b.Loop() {
			b.StopTimer()
			batch := make([]readmodel.Customer, batchSize)
			for i := range batch {
				seq++
				c := docs[r.IntN(len(docs))]
				c.Name = benchFirst[r.IntN(len(benchFirst))] + " " + benchLast[r.IntN(len(benchLast))]
				c.Tags = []string{benchTags[r.IntN(len(benchTags))]}
				c.Seq, c.Version = seq, c.Version+1
				batch[i] = c
			}
			n += len(batch)
			b.StartTimer()
			c0 := cpuTime()
			if err := s.Commit(b.Context(), batch, seq); err != nil {
				b.Fatal(err)
			}
			cpu += cpuTime() - c0
		}
		reportDocs(b, n, cpu)
	})
}

// reportDocs reports the documents written per second of wall time, and
// the CPU time per document (which a busy machine inflates less).
func reportDocs(b *testing.B, n int, cpu time.Duration) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "docs/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/doc")
	}
}

// loop runs fn b.N times and also reports the CPU time per operation,
// which a busy machine inflates less than the wall time.
func loop(b *testing.B, fn func()) {
	c0 := cpuTime()
	for b.Loop() {
		fn()
	}
	if cpu := cpuTime() - c0; cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	}
}

func BenchmarkGet(b *testing.B) {
	s := benchStore(b)
	b.Run("serial", func(b *testing.B) {
		r := rand.New(rand.NewPCG(7, 8))
		loop(b, func() {
			id := fmt.Sprintf("00000000-0000-4000-8000-%012d", 1+r.IntN(benchDocs))
			if _, err := s.Get(b.Context(), id); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(rand.Uint64(), 8))
			for pb.Next() {
				id := fmt.Sprintf("00000000-0000-4000-8000-%012d", 1+r.IntN(benchDocs))
				if _, err := s.Get(context.Background(), id); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkList(b *testing.B) {
	s := benchStore(b)
	queries := []struct {
		name string
		q    readmodel.Query
	}{
		{"default", readmodel.Query{Page: 1, PerPage: 20}},
		{"default-page-50", readmodel.Query{Page: 50, PerPage: 20}},
		{"status-name", readmodel.Query{Page: 1, PerPage: 20, Status: customer.StatusActive, Sort: readmodel.SortName}},
		{"tag-updated-desc", readmodel.Query{Page: 1, PerPage: 20, Tag: "vip", Sort: readmodel.SortUpdatedAt, Desc: true}},
		{"rare-tag", readmodel.Query{Page: 1, PerPage: 20, Tag: "rare", Sort: readmodel.SortName}},
		{"status-type-createdBy-code", readmodel.Query{Page: 1, PerPage: 20, Status: customer.StatusLead,
			Type: customer.TypeBusiness, CreatedBy: "user-3", Sort: readmodel.SortCustomerCode}},
	}
	for _, tc := range queries {
		b.Run(tc.name, func(b *testing.B) {
			var total int64
			loop(b, func() {
				p, err := s.List(b.Context(), tc.q)
				if err != nil {
					b.Fatal(err)
				}
				total = p.Total
			})
			b.ReportMetric(float64(total), "matches")
		})
	}
}

func BenchmarkSearch(b *testing.B) {
	s := benchStore(b)
	queries := []struct {
		name string
		q    readmodel.Query
	}{
		{"code", readmodel.Query{Page: 1, PerPage: 20, Text: "C4711"}},
		{"full-name", readmodel.Query{Page: 1, PerPage: 20, Text: "Zoë Müller"}},
		{"two-prefixes", readmodel.Query{Page: 1, PerPage: 20, Text: "acm smi"}},
		{"prefix-with-filter", readmodel.Query{Page: 1, PerPage: 20, Text: "glob", Status: customer.StatusActive}},
		{"broad-jo", readmodel.Query{Page: 1, PerPage: 20, Text: "jo"}},
		{"broad-j", readmodel.Query{Page: 1, PerPage: 20, Text: "j"}},
	}
	for _, tc := range queries {
		b.Run(tc.name, func(b *testing.B) {
			var total int64
			loop(b, func() {
				p, err := s.Search(b.Context(), tc.q)
				if err != nil {
					b.Fatal(err)
				}
				total = p.Total
			})
			b.ReportMetric(float64(total), "matches")
		})
	}
}

// BenchmarkCommitTimeline measures a Commit of 500 new customers with the
// timeline entries of their created events (what the projector writes for
// a batch of creates), the entries inserted one per statement or 100 per
// statement (timelineRows), and without them (none: the cost before the
// timeline).
func BenchmarkCommitTimeline(b *testing.B) {
	if testing.Short() {
		b.Skip("skipped in -short")
	}
	const batchSize = 500
	for _, rows := range []int{0, 1, 100} {
		name := "rows=" + strconv.Itoa(rows)
		if rows == 0 {
			name = "none"
		}
		b.Run(name, func(b *testing.B) {
			defer func(old int) { timelineRows = old }(timelineRows)
			timelineRows = max(rows, 1)
			s := openTemp(b)
			r := rand.New(rand.NewPCG(3, 4))
			n := 0
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				docs := make([]readmodel.Customer, batchSize)
				tl := make([]readmodel.TimelineEvent, batchSize)
				for i := range docs {
					n++
					docs[i] = benchDoc(r, n)
					tl[i] = readmodel.TimelineEvent{CustomerID: docs[i].ID, EventID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n),
						Kind: "created", At: docs[i].CreatedAt, Version: 1, Actor: "bench", Seq: uint64(n)}
				}
				b.StartTimer()
				c0 := cpuTime()
				if rows == 0 {
					tl = nil
				}
				if err := s.CommitBatch(b.Context(), readmodel.Batch{Customers: docs, Timeline: tl}, uint64(n)); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - c0
			}
			reportDocs(b, n, cpu)
		})
	}
}
