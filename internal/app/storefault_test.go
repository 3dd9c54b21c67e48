package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"

	"crm/internal/apptest"
)

// ferret runs a FerretDB (MongoDB wire protocol) on addr until stop is called.
func ferret(t *testing.T, dir, addr string) (uri string, stop func()) {
	t.Helper()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	return f.MongoDBURI(), func() { cancel(); <-done }
}

// TestStoreOutage stops the MongoDB read model (FerretDB) under a running
// service: queries answer 503 with Retry-After and /readyz fails the read
// model check, while commands keep succeeding (the stream is the truth); the
// projector cannot write their events and reports itself stuck; when the
// store returns, it catches up and every customer is served.
func TestStoreOutage(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	uri, stop := ferret(t, dir, addr)
	// Without it the driver waits up to its default 10 s for a server, the
	// outage would end before the projector's attempts fail, and its retry
	// path would go untested.
	if strings.Contains(uri, "?") {
		uri += "&serverSelectionTimeoutMS=500"
	} else {
		uri += "?serverSelectionTimeoutMS=500"
	}
	cfg := apptest.Config(t, t.TempDir())
	cfg.MongoURL, cfg.MongoDB = uri, "crm_outage"
	cfg.ReadYourWritesTimeout = 500 * time.Millisecond
	cfg.MetricsAddr = "127.0.0.1:0"
	e := apptest.Start(t, cfg)
	before := create(t, e, `{"name":"Before Outage"}`)

	stop()
	apptest.Eventually(t, 30*time.Second, "unready without the store, with the readModel check failing", func() bool {
		s, checks := readyChecks(t, e)
		return s == http.StatusServiceUnavailable && checks["readModel"] != "ok"
	})
	r := e.Do("GET", "/api/v1/crm/customers", nil)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("list without the store: %d %v %s", r.Status, r.Header, r.Body)
	}
	var during []string
	for i := range 5 {
		c := create(t, e, fmt.Sprintf(`{"name":"During Outage %d"}`, i))
		during = append(during, c.CustomerID)
	}
	if r := e.Do("PATCH", "/api/v1/crm/customers/"+before.CustomerID, `{"status":"active"}`); r.Status != http.StatusOK {
		t.Fatalf("patch without the store: %d %s", r.Status, r.Body)
	}
	// Restart the store only once the projector has failed on these events
	// and says so: the catch-up below then goes through its retries.
	var stuck map[string]string
	apptest.Eventually(t, 20*time.Second, "projector stuck without the store", func() bool {
		_, stuck = detailedChecks(t, e)
		return strings.HasPrefix(stuck["projector"], "stuck")
	})
	t.Logf("checks without the store: %v", stuck)

	_, stop = ferret(t, dir, addr)
	defer stop()
	apptest.Eventually(t, 30*time.Second, "ready again", func() bool {
		s, checks := readyChecks(t, e)
		return s == http.StatusOK && checks["readModel"] == "ok" && checks["projector"] == "ok"
	})
	for _, id := range during {
		apptest.Eventually(t, 30*time.Second, "customer created during the outage is served", func() bool {
			return e.Do("GET", "/api/v1/crm/customers/"+id, nil).Status == http.StatusOK
		})
	}
	var got envelope
	apptest.Eventually(t, 30*time.Second, "update made during the outage is served", func() bool {
		r := e.Do("GET", "/api/v1/crm/customers/"+before.CustomerID, nil)
		r.JSON(t, &got)
		return got.Data.Status == "active"
	})
}
