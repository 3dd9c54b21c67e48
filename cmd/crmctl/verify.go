package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"crm/internal/app"
	"crm/internal/audit"
	"crm/internal/config"
	"crm/internal/customer"
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
}

func runVerify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	nf := addNATSFlags(fs, getenv)
	sf := addStoreFlags(fs, getenv)
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for the read model to catch up with the stream first")
	if ok, err := parseFlags(fs, args, stderr, "Usage: crmctl verify [--nats URL] [--data-dir DIR | --mongodb-url URL]\n\nFolds the whole stream and compares it with the read model document by document;\nprints every difference and exits non-zero when there is any.\n\n"); !ok || err != nil {
		return err
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

	progress, done := progressBar("fold")
	states, order, last, err := c.foldAll(ctx, time.Time{}, progress)
	done()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*wait)
	for {
		cp, err := store.Checkpoint(ctx)
		if err != nil {
			return err
		}
		if cp >= last {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(stdout, "read model is behind: checkpoint %d, stream %d (comparing anyway)\n", cp, last)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	diffs, err := compare(ctx, store, states, order)
	if err != nil {
		return err
	}
	for _, d := range diffs {
		fmt.Fprintf(stdout, "DIFF customer %s (%s) %s: read model %s, stream %s\n", d.id, d.code, d.field, show(d.readModel), show(d.fold))
	}
	live := 0
	for _, st := range states {
		if st.Exists() {
			live++
		}
	}
	fmt.Fprintf(stdout, "verified %d customers (%d live) up to stream sequence %d: %d difference(s)\n", len(states), live, last, len(diffs))
	if len(diffs) > 0 {
		return fmt.Errorf("verify: the read model differs from the stream in %d place(s)", len(diffs))
	}
	return nil
}

// compare checks every folded customer against its document, and every live
// document against the fold (so an invented document is found too).
func compare(ctx context.Context, store readmodel.Store, states map[string]customer.Customer, order []string) ([]diff, error) {
	var out []diff
	for start := 0; start < len(order); start += 500 {
		ids := order[start:min(start+500, len(order))]
		docs, err := store.Load(ctx, ids)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			want := states[id]
			got, ok := docs[id]
			if !ok {
				if want.Exists() {
					out = append(out, diff{id, want.Code, "document", nil, "present"})
				}
				continue
			}
			out = append(out, docDiff(got.State(), want)...)
		}
	}
	for page := 1; ; page++ {
		p, err := store.List(ctx, readmodel.Query{Page: page, PerPage: 100, Sort: readmodel.SortCustomerCode})
		if err != nil {
			return nil, err
		}
		for _, d := range p.Items {
			if st, ok := states[d.ID]; !ok || !st.Exists() {
				out = append(out, diff{d.ID, d.Code, "document", "present", "absent"})
			}
		}
		if len(p.Items) < 100 {
			return out, nil
		}
	}
}

func docDiff(got, want customer.Customer) []diff {
	var out []diff
	add := func(field string, g, w any) { out = append(out, diff{want.ID, want.Code, field, g, w}) }
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
	return out
}
