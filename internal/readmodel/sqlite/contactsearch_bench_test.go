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

	"crm/internal/readmodel"
)

// benchContacts is the size of the contact search benchmark's data set:
// CRM_BENCH_CONTACTS, default 100,000 (docs/PERFORMANCE.md quotes it at
// 1,000,000).
func benchContacts() int {
	if n, err := strconv.Atoi(os.Getenv("CRM_BENCH_CONTACTS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

var benchTitles = []string{"CFO", "CEO", "Head of IT", "Buyer", "Account Manager", "Analyst", "Office Manager",
	"Procurement Lead", "CTO", "Sales Director"}

// benchContact returns the n-th contact of the data set: names from the
// customers' lists (so "john" is a first name of about 1 in 30, clustered
// in the name order), a title, an email at a company's domain, tags.
func benchContact(r *rand.Rand, n int) readmodel.Contact {
	first, last := benchFirst[r.IntN(len(benchFirst))], benchLast[r.IntN(len(benchLast))]
	company := benchCompanyWords[r.IntN(len(benchCompanyWords))]
	tags := []string{}
	for _, t := range benchTags[:4] {
		if r.IntN(6) == 0 {
			tags = append(tags, t)
		}
	}
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Minute)
	return readmodel.Contact{
		ID: fmt.Sprintf("00000000-0000-4000-9000-%012d", n), Name: first + " " + last,
		Email: fmt.Sprintf("%s.%s%d@%s.example", first, last, n, company), Title: benchTitles[r.IntN(len(benchTitles))],
		Tags: tags, CreatedBy: "bench", CreatedAt: at, UpdatedBy: "bench", UpdatedAt: at, Version: 1, Seq: uint64(n),
	}
}

var contactBench struct {
	once sync.Once
	dir  string
	s    *Store
	err  error
}

func contactBenchStore(b *testing.B) *Store {
	if testing.Short() {
		b.Skip("benchmark data set skipped in -short")
	}
	contactBench.once.Do(func() {
		ctx := context.Background()
		n := benchContacts()
		contactBench.dir, contactBench.err = os.MkdirTemp("", "crm-contact-bench-")
		if contactBench.err != nil {
			return
		}
		s, err := Open(ctx, filepath.Join(contactBench.dir, "bench.db"))
		if err != nil {
			contactBench.err = err
			return
		}
		r := rand.New(rand.NewPCG(3, 4))
		start := time.Now()
		batch := make([]readmodel.Contact, 0, 2000)
		for i := 1; i <= n; i++ {
			batch = append(batch, benchContact(r, i))
			if len(batch) == cap(batch) || i == n {
				if err := s.CommitBatch(ctx, readmodel.Batch{Contacts: batch}, uint64(i)); err != nil {
					contactBench.err = err
					return
				}
				batch = batch[:0]
			}
		}
		fmt.Fprintf(os.Stderr, "bench: %d contacts committed in %v (%.0f/s)\n",
			n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())
		contactBench.s = s
	})
	if contactBench.err != nil {
		b.Fatalf("contact benchmark data set: %v", contactBench.err)
	}
	return contactBench.s
}

// BenchmarkContactSearch measures a contact search's first page (and a
// page deep in a broad query) beside the plain list's first page on the
// same store: a name clustered in the name order (john), a broad prefix
// (j), a word spread over it (smith), two words, a title, a company's
// email domain, a tag.
func BenchmarkContactSearch(b *testing.B) {
	s := contactBenchStore(b)
	queries := []struct {
		name string
		q    readmodel.ContactQuery
	}{
		{"list-first-page", readmodel.ContactQuery{PerPage: 20}},
		{"john", readmodel.ContactQuery{PerPage: 20, Text: "john"}},
		{"j", readmodel.ContactQuery{PerPage: 20, Text: "j"}},
		{"smith", readmodel.ContactQuery{PerPage: 20, Text: "smith"}},
		{"john-smith", readmodel.ContactQuery{PerPage: 20, Text: "john smith"}},
		{"head-of-it", readmodel.ContactQuery{PerPage: 20, Text: "head of it"}},
		{"domain", readmodel.ContactQuery{PerPage: 20, Text: "wonka example"}},
		{"zoe-tag", readmodel.ContactQuery{PerPage: 20, Text: "zoe", Tag: "vip"}},
		{"lena-fernandez-last", readmodel.ContactQuery{PerPage: 20, Text: "lena fernandez"}},
	}
	for _, tc := range queries {
		b.Run(tc.name, func(b *testing.B) {
			var total int64
			loop(b, func() {
				p, err := s.ListContacts(b.Context(), tc.q)
				if err != nil {
					b.Fatal(err)
				}
				total = p.Total
			})
			b.ReportMetric(float64(total), "matches")
		})
	}
	// A page after 5,000 matches of a broad query: the cursor's bucket is
	// found in the index, not walked to.
	b.Run("j-deep", func(b *testing.B) {
		q := readmodel.ContactQuery{PerPage: 100, Text: "j"}
		for range 50 {
			p, err := s.ListContacts(b.Context(), q)
			if err != nil || len(p.Items) == 0 {
				b.Fatalf("walk: %v", err)
			}
			pos := readmodel.ContactPositionOf(p.Items[len(p.Items)-1], readmodel.SortName)
			q.After = &pos
		}
		q.PerPage = 20
		loop(b, func() {
			if _, err := s.ListContacts(b.Context(), q); err != nil {
				b.Fatal(err)
			}
		})
	})
}
