package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"crm/internal/auth"
	"crm/internal/commands"
	"crm/internal/customer"
	"crm/internal/embedded"
	"crm/internal/events"
	"crm/internal/eventstore"
	"crm/internal/readmodel"
	"crm/internal/readmodel/sqlite"
)

// TestKill9ProjectorDuringLoad runs the real cmd/projector binary against a
// NATS server while 20,000 events are appended, kills it with SIGKILL ten
// times at random points, lets a last one catch up, and checks that the
// read model equals the fold of the stream, document by document.
func TestKill9ProjectorDuringLoad(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 4000
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "projector")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ns, err := embedded.Start(embedded.Config{DataDir: filepath.Join(dir, "nats"), Port: -1, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	es, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	h := commands.New(es, commands.Options{})
	req := commands.Request{Principal: auth.Principal{Subject: "loader", Permissions: []string{auth.PermCreate, auth.PermDelete, auth.PermEdit}}}

	dataDir := filepath.Join(dir, "data")
	os.MkdirAll(dataDir, 0o700)
	env := append(os.Environ(), "NATS_URL="+ns.ClientURL(), "DATA_DIR="+dataDir, "LOG_LEVEL=error", "METRICS_ADDR=127.0.0.1:0")
	start := func() *exec.Cmd {
		cmd := exec.Command(bin)
		cmd.Env = env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	// The load: n events from 8 writers (creates, updates, deletes).
	var wg sync.WaitGroup
	var appended atomic.Int64
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 99))
			var ids []string
			for i := 0; appended.Load() < int64(n); i++ {
				var err error
				var res commands.Result
				switch op := r.IntN(10); {
				case op < 4 || len(ids) == 0:
					res, err = h.CreateCustomer(ctx, req, customer.Input{Name: events.SetTo(fmt.Sprintf("Kill %d %d", w, i)), Tags: events.SetTo([]string{"t"})})
					ids = append(ids, res.Customer.ID)
				case op < 9:
					res, err = h.UpdateCustomer(ctx, req, ids[r.IntN(len(ids))], customer.Input{Notes: events.SetTo(fmt.Sprint(i))}, 0)
				default:
					res, err = h.DeleteCustomer(ctx, req, ids[r.IntN(len(ids))], 0)
				}
				if err != nil && !errors.Is(err, customer.ErrNotFound) {
					t.Error(err)
					return
				}
				if res.Seq > 0 {
					appended.Add(1)
				}
			}
		}()
	}
	loadDone := make(chan struct{})
	go func() { wg.Wait(); close(loadDone) }()

	rnd := rand.New(rand.NewPCG(5, 6))
	for kill := 0; kill < 10; kill++ {
		cmd := start()
		time.Sleep(time.Duration(150+rnd.IntN(600)) * time.Millisecond)
		cmd.Process.Kill() // SIGKILL: no cleanup of any kind
		cmd.Wait()
	}
	<-loadDone
	if t.Failed() {
		t.FailNow()
	}

	// A last projector catches up.
	info, err := es.JetStream().Stream(ctx, es.StreamName())
	if err != nil {
		t.Fatal(err)
	}
	last := info.CachedInfo().State.LastSeq
	final := start()
	defer func() { final.Process.Kill(); final.Wait() }()
	store, err := sqlite.Open(ctx, filepath.Join(dataDir, "readmodel.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	deadline := time.Now().Add(120 * time.Second)
	for {
		cp, err := store.Checkpoint(ctx)
		if err == nil && cp >= last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("projector stuck at %d of %d", cp, last)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Fold the stream and compare.
	want := map[string]customer.Customer{}
	s, _ := es.JetStream().Stream(ctx, es.StreamName())
	for seq := uint64(1); seq <= last; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		ev.Seq = seq
		want[ev.AggregateID] = customer.Evolve(want[ev.AggregateID], ev)
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	got, err := store.Load(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read model has %d documents, the fold %d", len(got), len(want))
	}
	for id, w := range want {
		g, w := got[id], readmodel.FromState(w)
		g.CreatedAt, g.UpdatedAt = g.CreatedAt.UTC(), g.UpdatedAt.UTC()
		w.CreatedAt, w.UpdatedAt = w.CreatedAt.UTC(), w.UpdatedAt.UTC()
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("customer %s differs:\n read model %+v\n fold       %+v", id, g, w)
		}
	}
	t.Logf("%d events, %d customers: read model equals the fold after 10 kill -9", last, len(want))
}

// TestHelpListsOnlyTheProjectorsVariables: --help documents what the
// projector reads, not the API's settings.
func TestHelpListsOnlyTheProjectorsVariables(t *testing.T) {
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	help := errOut.String()
	for _, want := range []string{"NATS_URL", "MONGODB_URL", "METRICS_ADDR", "LOG_LEVEL", "READY_MAX_LAG"} {
		if !strings.Contains(help, want) {
			t.Errorf("--help lacks %s", want)
		}
	}
	for _, not := range []string{"SECRET_KEY", "HTTP_ADDR", "CORS_ORIGINS", "NATS_PORT"} {
		if strings.Contains(help, not) {
			t.Errorf("--help lists the API's %s", not)
		}
	}
	if err := run(context.Background(), nil, func(string) string { return "" }, &out, &errOut); err == nil || !strings.Contains(err.Error(), "NATS_URL") {
		t.Errorf("run without NATS_URL: %v", err)
	}
}
