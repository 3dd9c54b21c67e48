package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"crm/internal/activity"
	"crm/internal/app"
	"crm/internal/audit"
	"crm/internal/config"
	"crm/internal/contact"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/readmodel"
)

type storeFlags struct {
	dataDir, mongoURL, mongoDB *string
}

func addStoreFlags(fs *flag.FlagSet, getenv func(string) string) storeFlags {
	dd := getenv("DATA_DIR")
	if dd == "" {
		dd = "./data"
	}
	db := getenv("MONGODB_DB_NAME")
	if db == "" {
		db = "a64core"
	}
	return storeFlags{
		dataDir:  fs.String("data-dir", dd, "embedded mode: directory of the SQLite read model (readmodel.db)"),
		mongoURL: fs.String("mongodb-url", getenv("MONGODB_URL"), "MongoDB read model (default $MONGODB_URL; empty = SQLite)"),
		mongoDB:  fs.String("mongodb-db", db, "MongoDB database"),
	}
}

func (f storeFlags) open(ctx context.Context) (readmodel.Store, error) {
	return app.OpenStore(ctx, config.Config{DataDir: *f.dataDir, MongoURL: *f.mongoURL, MongoDB: *f.mongoDB})
}

// Diff is one difference between the read model and the fold of the stream.
type diff struct {
	id, code, field string
	readModel, fold any
	kind            string // "" (a customer), "contact", "activity"
}

func runVerify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	sf := addStoreFlags(fs, getenv)
	nf := addNATSFlags(fs, getenv) // after: it finds the service's NATS credentials in the same --data-dir
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for the read model to catch up with the stream first")
	partitions := fs.Int("passes", 0, "fold the stream in this many passes (1, 2, 4, 8 or 16), each holding 1/N of the customers\n"+
		"in memory; 0 = one pass per 250,000 events")
	if ok, err := parseFlags(fs, args, stderr, "Usage: crmctl verify [--nats URL] [--data-dir DIR | --mongodb-url URL]\n\nFolds the whole stream, then walks the read model in id order and compares it with the\nfold document by document; prints every difference and exits non-zero when there is any.\nProgress bars are drawn on a terminal.\n\n"); !ok || err != nil {
		return err
	}
	switch *partitions {
	case 0, 1, 2, 4, 8, 16:
	default:
		return fmt.Errorf("verify: --passes must be 1, 2, 4, 8 or 16")
	}
	c, err := nf.connect(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	store, err := sf.open(ctx)
	if err != nil {
		return fmt.Errorf("open read model: %w", err)
	}
	defer store.Close()

	start := time.Now()
	info, err := c.stream.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	if err := waitFor(ctx, store, last, *wait, stdout); err != nil {
		return err
	}
	parts := *partitions
	if parts == 0 {
		// About 250,000 events a pass keeps the fold under ~600 MB.
		for parts = 1; parts < 16 && info.State.Msgs/uint64(parts) > 250_000; parts *= 2 {
		}
	}
	var (
		res         comparison
		total, live int
		others      otherCounts
		liveContact = map[string]bool{} // every live contact of the fold: the read model lists no other
		folded      time.Duration
		width       = 16 / parts
	)
	for p := range parts {
		lo, hi := p*width, (p+1)*width // first hex digits [lo, hi) of the part's ids
		inPart := func(id string) bool {
			d := strings.IndexByte(hexDigits, id[0])
			return d >= lo && d < hi || d < 0 && p == parts-1 // not hex: the last part
		}
		t0 := time.Now()
		foldBar, fEnd := progressBar(fmt.Sprintf("fold   %d/%d", p+1, parts))
		states := map[string]customer.Customer{}
		contacts := map[string]contact.Contact{}
		activities := map[string]activity.Activity{}
		_, err := c.replayWith(ctx, replayOpts{upTo: last, keep: func(subject string) bool {
			if _, id, _, err := events.ParseAggregateSubject(subject); err == nil {
				return inPart(id)
			}
			return !events.IsClaimSubject(subject) // another subject is decoded: Decode reports it
		}}, func(ev events.Event) error {
			switch ev.Data.Aggregate() {
			case events.Contacts:
				contacts[ev.AggregateID] = contact.Evolve(contacts[ev.AggregateID], ev)
			case events.Activities:
				activities[ev.AggregateID] = activity.Evolve(activities[ev.AggregateID], ev)
			default:
				states[ev.AggregateID] = customer.Evolve(states[ev.AggregateID], ev)
			}
			return nil
		}, foldBar)
		fEnd()
		if err != nil {
			return err
		}
		folded += time.Since(t0)
		n := len(states)
		links := map[string]map[string]customer.Link{} // the links of the live customers, checked after compare
		for id, st := range states {
			if st.Exists() {
				live++
			}
			if len(st.Contacts) > 0 && st.Exists() { // a merged customer keeps its links, hidden with it
				links[id] = st.Contacts
			}
		}
		total += n
		scanBar, sEnd := progressBar(fmt.Sprintf("verify %d/%d", p+1, parts))
		after := ""
		if lo > 0 {
			after = string(hexDigits[lo-1]) + "\xff"
		}
		past := func(id string) bool { return strings.IndexByte(hexDigits, id[0]) >= hi }
		r, err := compare(ctx, store, states, last, after, inPart, past, func(done int) {
			if scanBar != nil {
				scanBar(uint64(done), uint64(n))
			}
		})
		sEnd()
		if err != nil {
			return err
		}
		res.diffs, res.newer = append(res.diffs, r.diffs...), res.newer+r.newer
		r, err = compareOthers(ctx, store, links, contacts, activities, last, &others)
		if err != nil {
			return err
		}
		res.diffs, res.newer = append(res.diffs, r.diffs...), res.newer+r.newer
		for id, k := range contacts {
			if k.Exists() {
				liveContact[id] = true
			}
		}
	}
	r, err := extraContacts(ctx, store, liveContact, last)
	if err != nil {
		return err
	}
	res.diffs, res.newer = append(res.diffs, r.diffs...), res.newer+r.newer
	for _, d := range res.diffs {
		switch d.kind {
		case "":
			fmt.Fprintf(stdout, "DIFF customer %s (%s) %s: read model %s, stream %s\n", d.id, d.code, d.field, show(d.readModel), show(d.fold))
		default:
			fmt.Fprintf(stdout, "DIFF %s %s %s: read model %s, stream %s\n", d.kind, d.id, d.field, show(d.readModel), show(d.fold))
		}
	}
	if res.newer > 0 {
		fmt.Fprintf(stdout, "%d document(s) changed after the fold (stream sequence > %d): not compared\n", res.newer, last)
	}
	fmt.Fprintf(stdout, "verified %d customers (%d live), %d links, %d contacts (%d live), %d activities (%d live) up to stream sequence %d in %v (%d pass(es), fold %v): %d difference(s)\n",
		total, live, others.links, others.contacts, others.liveContacts, others.activities, others.liveActivities,
		last, time.Since(start).Round(time.Millisecond), parts, folded.Round(time.Millisecond), len(res.diffs))
	if len(res.diffs) > 0 {
		return fmt.Errorf("verify: the read model differs from the stream in %d place(s)", len(res.diffs))
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// waitFor waits up to wait for the read model's checkpoint to reach last.
func waitFor(ctx context.Context, store readmodel.Store, last uint64, wait time.Duration, stdout io.Writer) error {
	deadline := time.Now().Add(wait)
	for {
		cp, err := store.Checkpoint(ctx)
		if err != nil {
			return err
		}
		if cp >= last {
			return nil
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(stdout, "read model is behind: checkpoint %d, stream %d (comparing anyway)\n", cp, last)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// scanBatch is how many documents one Scan of verify reads.
const scanBatch = 5000

type comparison struct {
	diffs []diff
	newer int // documents past the fold, not compared
}

// compare walks one part of the read model (the ids after after, until
// past; those inPart) in id order (keyset paging, tombstones included) and checks each
// document against the fold of its customer, then
// reports the folded customers that have no document. Each state is removed
// from states once compared, so states ends with the missing ones.
// progress is told how many documents were compared.
func compare(ctx context.Context, store readmodel.Store, states map[string]customer.Customer, last uint64,
	after string, inPart, past func(id string) bool, progress func(int)) (comparison, error) {
	var res comparison
	seen := 0
scan:
	for {
		docs, err := store.Scan(ctx, after, scanBatch)
		if err != nil {
			return res, err
		}
		if len(docs) == 0 {
			break
		}
		after = docs[len(docs)-1].ID
		for _, d := range docs {
			if past(d.ID) {
				break scan // past the part's range of ids
			}
			if !inPart(d.ID) {
				continue
			}
			want, ok := states[d.ID]
			delete(states, d.ID)
			switch {
			case d.Seq > last:
				res.newer++
			case !ok && !d.Deleted:
				res.diffs = append(res.diffs, diff{d.ID, d.Code, "document", "present", "absent", ""})
			case !ok:
				res.diffs = append(res.diffs, diff{d.ID, d.Code, "tombstone", "present", "absent", ""})
			default:
				res.diffs = append(res.diffs, docDiff(d.State(), want)...)
			}
		}
		seen += len(docs)
		progress(seen)
	}
	missing := make([]string, 0, len(states))
	for id, st := range states {
		if st.Exists() {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	for _, id := range missing {
		res.diffs = append(res.diffs, diff{id, states[id].Code, "document", nil, "present", ""})
	}
	return res, nil
}

func docDiff(got, want customer.Customer) []diff {
	var out []diff
	add := func(field string, g, w any) { out = append(out, diff{want.ID, want.Code, field, g, w, ""}) }
	want.Contacts = nil // the links are documents of their own (compareOthers)
	for _, ch := range audit.Diff(got, want) {
		add(ch.Field, ch.Old, ch.New)
	}
	if got.Code != want.Code {
		add("customerCode", got.Code, want.Code)
	}
	if got.CreatedBy != want.CreatedBy {
		add("createdBy", got.CreatedBy, want.CreatedBy)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		add("createdAt", got.CreatedAt, want.CreatedAt)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		add("updatedAt", got.UpdatedAt, want.UpdatedAt)
	}
	if got.Version != want.Version {
		add("version", got.Version, want.Version)
	}
	if got.Deleted != want.Deleted {
		add("deleted", got.Deleted, want.Deleted)
	}
	if got.MergedInto != want.MergedInto {
		add("mergedInto", got.MergedInto, want.MergedInto)
	}
	if g, w := got.AbsorbedCodes(), want.AbsorbedCodes(); !slices.Equal(g, w) {
		add("absorbed", g, w)
	}
	return out
}
