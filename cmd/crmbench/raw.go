package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite" // the driver, for the read-only snapshot copy

	"crm/internal/events"
	"crm/internal/eventstore"
	"crm/internal/readmodel"
	"crm/internal/readmodel/sqlite"
)

// ---- JetStream ----

// sampleEvent returns an encoded CustomerCreated event as the service
// appends it (same size and headers), for the raw publish limit.
func sampleEvent(actor string) ([]byte, error) {
	r := rand.New(rand.NewPCG(1, 1))
	p := newPerson(r, 1)
	id := uuid.NewString()
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	return events.Encode(events.Event{
		ID: uuid.NewString(), AggregateID: id, Time: now, Version: 1, Actor: actor, CorrelationID: uuid.NewString(),
		Data: &events.CustomerCreated{
			CustomerID: id, CustomerCode: "C100000", Name: p.Name, Email: opt(p.Email), Phone: opt(p.Phone),
			Company: opt(p.Company), Type: p.Type, Status: p.Status, Notes: opt(p.Notes), Tags: p.Tags,
			Address:   &events.Address{Street: p.Street, City: p.City, Country: p.Country, PostalCode: p.PostalCode},
			CreatedBy: actor, CreatedAt: now,
		},
	})
}

// rawPublish measures synchronous JetStream publishes at the given
// concurrency into a scratch stream with the customer stream's settings
// (file storage, duplicate window, on the same server and so under the same
// sync policy), each publish shaped like the service's append: its own
// subject, a message id, and the expected last sequence for the subject.
// The stream is deleted at the end.
func (b *bench) rawPublish(ctx context.Context, run int, dur time.Duration) (loadResult, error) {
	name := fmt.Sprintf("CRMBENCH_SCRATCH_%s_%d", b.runID, run)
	prefix := fmt.Sprintf("crmbench.scratch.%s.%d.", strings.ToLower(b.runID), run)
	cfg := eventstore.StreamConfig(eventstore.Config{Stream: name})
	cfg.Description = "crmbench scratch stream for the raw publish limit; deleted by crmbench after the run"
	cfg.Subjects = []string{prefix + ">"}
	cfg.DenyDelete, cfg.DenyPurge = false, false
	cfg.MaxAge = time.Hour  // if crmbench dies before deleting it
	cfg.MaxBytes = 4 << 30  // bounded in any case
	cfg.AllowDirect = false // the service reads its stream, not this one
	if _, err := b.js.CreateStream(ctx, cfg); err != nil {
		return loadResult{}, fmt.Errorf("create scratch stream %s: %w", name, err)
	}
	drop := b.cleanup.add("delete scratch stream "+name, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := b.js.DeleteStream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil
		}
		return err
	})
	defer drop()
	payload, err := sampleEvent(b.subject)
	if err != nil {
		return loadResult{}, err
	}
	ceType := events.TypeCreatedV1
	res := runLoad(ctx, b.clients, dur, b.maxOps, uint64(run), func(ctx context.Context, w *worker) (string, error) {
		id := uuid.NewString()
		msg := &nats.Msg{Subject: prefix + id + ".created", Data: payload, Header: nats.Header{}}
		msg.Header.Set("Content-Type", events.ContentType)
		msg.Header.Set("Ce-Type", ceType)
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := b.js.PublishMsg(ctx, msg,
			jetstream.WithMsgID(id),
			jetstream.WithExpectStream(name),
			jetstream.WithExpectLastSequenceForSubject(0, prefix+id+".*"))
		return "", err
	})
	return res, nil
}

// streamState returns the first and last sequence of the customer stream.
func (b *bench) streamState(ctx context.Context) (first, last uint64, err error) {
	s, err := b.js.Stream(ctx, b.stream)
	if err != nil {
		return 0, 0, fmt.Errorf("stream %s: %w", b.stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("stream %s info: %w", b.stream, err)
	}
	return info.State.FirstSeq, info.State.LastSeq, nil
}

// ---- SQLite ----

// tempDir returns a new temporary directory removed at cleanup (or by the
// returned function, whichever comes first).
func (b *bench) tempDir(what string) (string, func(), error) {
	dir, err := os.MkdirTemp(b.tmp, "crmbench-"+what+"-")
	if err != nil {
		return "", nil, err
	}
	rm := b.cleanup.add("remove "+dir, func() error { return os.RemoveAll(dir) })
	return dir, rm, nil
}

// rawUpsert measures the SQLite read model's bulk write: Commit of batches
// of new documents (as many per batch as the projector's largest batch)
// into a fresh database, until dur of commit time or maxDocs documents.
// Generating the documents is not timed.
func (b *bench) rawUpsert(ctx context.Context, run int, dur time.Duration, maxDocs int64) (rate float64, docs int64, err error) {
	dir, rm, err := b.tempDir("upsert")
	if err != nil {
		return 0, 0, err
	}
	defer rm()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "readmodel.db"))
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(uint64(run), 42))
	at := time.Now()
	var spent time.Duration
	for docs < maxDocs && spent < dur && ctx.Err() == nil {
		n := min(int64(b.batch), maxDocs-docs)
		batch := make([]readmodel.Customer, n)
		for i := range batch {
			docs++
			batch[i] = newPerson(r, docs).doc(uint64(docs), b.subject, at.Add(time.Duration(docs)*time.Millisecond))
		}
		t0 := time.Now()
		if err := s.Commit(ctx, batch, uint64(docs)); err != nil {
			return 0, docs, err
		}
		spent += time.Since(t0)
	}
	if spent == 0 {
		return 0, docs, nil
	}
	return float64(docs) / spent.Seconds(), docs, nil
}

// rawStore is a read model opened directly (not through the service) for
// the raw find-by-id, list and search limits.
type rawStore struct {
	s      *sqlite.Store
	ids    []string
	codes  []string
	source string // where its data came from
	close  func()
}

// openRawStore returns a snapshot copy of the service's read model
// (VACUUM INTO from a read-only connection: the live database is never
// written), or, without one, a temporary database filled with dataset
// generated documents.
func (b *bench) openRawStore(ctx context.Context, dataset int64) (*rawStore, error) {
	dir, rm, err := b.tempDir("store")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "readmodel.db")
	live := ""
	if b.dataDir != "" {
		live = filepath.Join(b.dataDir, "readmodel.db")
		if _, err := os.Stat(live); err != nil {
			live = ""
		}
	}
	if live != "" {
		if err := snapshot(ctx, live, path); err != nil {
			rm()
			return nil, fmt.Errorf("copy the read model %s: %w", live, err)
		}
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			rm()
			return nil, err
		}
		ids, codes, err := storeSample(ctx, s, b.sampleSize)
		if err != nil || len(ids) == 0 {
			s.Close()
			rm()
			if err == nil {
				err = errors.New("the copy has no customers (another schema version?)")
			}
			return nil, fmt.Errorf("copy of %s: %w", live, err)
		}
		return &rawStore{s: s, ids: ids, codes: codes, source: "snapshot copy of " + live,
			close: func() { s.Close(); rm() }}, nil
	}
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		rm()
		return nil, err
	}
	r := rand.New(rand.NewPCG(7, 7))
	at := time.Now().Add(-time.Duration(dataset) * time.Second)
	var ids, codes []string
	every := max(1, dataset/int64(b.sampleSize))
	for n := int64(0); n < dataset && ctx.Err() == nil; {
		batch := make([]readmodel.Customer, 0, b.batch)
		for len(batch) < b.batch && n < dataset {
			n++
			d := newPerson(r, n).doc(uint64(n), b.subject, at.Add(time.Duration(n)*time.Second))
			if n%every == 0 {
				ids, codes = append(ids, d.ID), append(codes, d.Code)
			}
			batch = append(batch, d)
		}
		if err := s.Commit(ctx, batch, uint64(n)); err != nil {
			s.Close()
			rm()
			return nil, err
		}
	}
	return &rawStore{s: s, ids: ids, codes: codes,
		source: fmt.Sprintf("temporary database of %d generated customers (no read model in --data-dir)", dataset),
		close:  func() { s.Close(); rm() }}, nil
}

// snapshot copies the SQLite database at src to dst with VACUUM INTO over a
// read-only connection: a consistent snapshot, even while the service's
// projector writes.
func snapshot(ctx context.Context, src, dst string) error {
	abs, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+filepath.ToSlash(abs)+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "VACUUM INTO "+quote(dst)); err != nil {
		return err
	}
	// VACUUM INTO keeps the header's user_version, which sqlite.Open checks;
	// set it anyway so that a copy is never mistaken for another version.
	out, err := sql.Open("sqlite", "file:"+filepath.ToSlash(dst))
	if err != nil {
		return err
	}
	defer out.Close()
	_, err = out.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(version))
	return err
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// storeSample returns ids and codes of up to n customers spread over the
// store's data set (pages in code order).
func storeSample(ctx context.Context, s readmodel.Reader, n int) (ids, codes []string, err error) {
	p, err := s.List(ctx, readmodel.Query{Page: 1, PerPage: 1, Sort: readmodel.SortCustomerCode})
	if err != nil || p.Total == 0 {
		return nil, nil, err
	}
	pages := (p.Total + 99) / 100
	want := min(int64(n+99)/100, pages)
	for i := int64(0); i < want; i++ {
		page, err := s.List(ctx, readmodel.Query{Page: int(1 + i*pages/want), PerPage: 100, Sort: readmodel.SortCustomerCode})
		if err != nil {
			return nil, nil, err
		}
		for _, c := range page.Items {
			ids, codes = append(ids, c.ID), append(codes, c.Code)
		}
	}
	return ids, codes, nil
}
