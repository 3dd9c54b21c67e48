// Package storetest gives tests every read-model adapter: SQLite on a temp
// file, and MongoDB against FerretDB embedded in the test process (and a real
// MongoDB when CRM_TEST_MONGODB_URL is set). Only tests import it, so
// FerretDB never ships in the binaries.
package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"crm/internal/readmodel"
	"crm/internal/readmodel/sqlite"
)

// Adapter is one read-model implementation under test.
type Adapter struct {
	Name string
	// Slow adapters (FerretDB) get smaller data sets.
	Slow bool
	// NoConcurrentWriters: the server does not make a conditional write
	// atomic (FerretDB 1.24 evaluates an update's filter and writes the
	// document in two steps), so several projectors at once may regress a
	// document there; MongoDB and SQLite are tested with several.
	NoConcurrentWriters bool
	Open                func(t *testing.T) readmodel.Store
}

// Scale picks the size of a data set for the adapter.
func (a Adapter) Scale(fast, slow int) int {
	if a.Slow {
		return slow
	}
	return fast
}

// Adapters returns every adapter available in this environment.
func Adapters() []Adapter {
	out := []Adapter{{Name: "sqlite", Open: openSQLite}}
	return append(out, mongoAdapters()...)
}

// Each runs fn as a subtest per adapter.
func Each(t *testing.T, fn func(t *testing.T, a Adapter)) {
	for _, a := range Adapters() {
		t.Run(a.Name, func(t *testing.T) { fn(t, a) })
	}
}

func openSQLite(t *testing.T) readmodel.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "readmodel.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
