package storetest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"

	"crm/internal/readmodel"
	"crm/internal/readmodel/mongodb"
)

// One FerretDB per test binary (starting one is slow), in a temp dir; stale
// dirs of earlier runs are removed when it starts.
var (
	ferretOnce sync.Once
	ferretURI  string
	ferretErr  error
	dbCounter  atomic.Int64
)

func startFerret() {
	tmp := os.TempDir()
	if old, _ := filepath.Glob(filepath.Join(tmp, "crm-storetest-ferret-*")); len(old) > 0 {
		for _, d := range old {
			if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.RemoveAll(d)
			}
		}
	}
	dir, err := os.MkdirTemp(tmp, "crm-storetest-ferret-")
	if err != nil {
		ferretErr = err
		return
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		ferretErr = err
		return
	}
	go func() { _ = f.Run(context.Background()) }() // lives as long as the test binary
	ferretURI = f.MongoDBURI()
}

func mongoAdapters() []Adapter {
	out := []Adapter{{Name: "mongodb-ferretdb", Slow: true, NoConcurrentWriters: true, Open: func(t *testing.T) readmodel.Store {
		ferretOnce.Do(startFerret)
		if ferretErr != nil {
			t.Fatalf("FerretDB: %v", ferretErr)
		}
		return openMongo(t, ferretURI)
	}}}
	if uri := os.Getenv("CRM_TEST_MONGODB_URL"); uri != "" {
		out = append(out, Adapter{Name: "mongodb", Open: func(t *testing.T) readmodel.Store { return openMongo(t, uri) }})
	}
	return out
}

// openMongo opens a store on a fresh database, dropped at cleanup.
func openMongo(t *testing.T, uri string) readmodel.Store {
	t.Helper()
	name := fmt.Sprintf("crm_storetest_%d_%d", time.Now().UnixNano()%1e9, dbCounter.Add(1))
	s, err := mongodb.Open(t.Context(), uri, name)
	if err != nil {
		t.Fatalf("open MongoDB read model: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = s.DropDatabase(ctx)
		s.Close()
	})
	return s
}
