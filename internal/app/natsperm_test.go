package app_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/app"
	"crm/internal/apptest"
	"crm/internal/config"
	"crm/internal/devcerts"
	"crm/internal/natsauth"
)

// startDeployNATS runs a nats-server with the permissions of
// deploy/nats/nats.conf (its users, passwords from the environment, allow
// and deny lists), as one node with its store in a temp dir.
func startDeployNATS(t *testing.T) string {
	t.Helper()
	opts := deployNATSOptions(t, certsDir(t))
	if len(opts.Users) != 3 {
		t.Fatalf("deploy/nats/nats.conf defines %d users, want api, projector, reader", len(opts.Users))
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.Cluster, opts.Routes = server.ClusterOpts{}, nil
	opts.StoreDir = t.TempDir()
	opts.ServerName = "deploy-test"
	opts.NoSigs = true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server with the deploy config did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL()
}

// deployNATSOptions reads deploy/nats/nats.conf with the variables it needs
// set: the users' passwords, and the route TLS files (written by devcerts,
// as crmctl certs does for compose).
func deployNATSOptions(t *testing.T, certs string) *server.Options {
	t.Helper()
	for _, v := range []string{"NATS_API_PASSWORD", "NATS_PROJECTOR_PASSWORD", "NATS_READER_PASSWORD"} {
		t.Setenv(v, v+"-test-secret")
	}
	t.Setenv("NATS_ROUTE_CERT", filepath.Join(certs, devcerts.CertFile))
	t.Setenv("NATS_ROUTE_KEY", filepath.Join(certs, devcerts.KeyFile))
	t.Setenv("NATS_ROUTE_CA", filepath.Join(certs, devcerts.CAFile))
	_, file, _, _ := runtime.Caller(0)
	opts, err := server.ProcessConfigFile(filepath.Join(filepath.Dir(file), "..", "..", "deploy", "nats", "nats.conf"))
	if err != nil {
		t.Fatalf("deploy/nats/nats.conf: %v", err)
	}
	return opts
}

// certsDir writes route certificates for loopback into a temp dir.
func certsDir(t *testing.T) string {
	dir := t.TempDir()
	if err := devcerts.Write(dir, []string{"localhost", "127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDeployNATSClusterTLS forms a 3-node cluster from deploy/nats/nats.conf
// (its routes moved to loopback ports): the nodes route to each other over
// mutual TLS with the certificates of crmctl certs, and a node without TLS
// cannot join them (issue 12, item 1).
func TestDeployNATSClusterTLS(t *testing.T) {
	ports := make([]int, 3)
	var routes []string
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i]))
	}
	certs := certsDir(t) // one CA for the cluster
	start := func(name string, port int, withTLS bool) *server.Server {
		opts := deployNATSOptions(t, certs)
		if opts.Cluster.TLSConfig == nil || opts.Cluster.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
			t.Fatalf("deploy/nats/nats.conf: no verified route TLS")
		}
		opts.ServerName, opts.Host, opts.Port, opts.HTTPPort = name, "127.0.0.1", -1, 0
		opts.StoreDir, opts.NoSigs = t.TempDir(), true
		opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", port
		opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		if !withTLS {
			opts.Cluster.TLSConfig = nil
		}
		ns, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		if os.Getenv("DEBUG_ROUTES") != "" { // the servers' log, to see why routes fail
			ns.ConfigureLogger()
		}
		go ns.Start()
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		return ns
	}
	nodes := []*server.Server{start("tls-1", ports[0], true), start("tls-2", ports[1], true), start("tls-3", ports[2], true)}
	apptest.Eventually(t, 30*time.Second, "3 nodes routed over TLS, the meta leader seeing 3 peers", func() bool {
		peers := 0
		for _, n := range nodes {
			if n.NumRoutes() < 2 {
				return false
			}
			peers = max(peers, len(n.JetStreamClusterPeers())) // only the leader answers
		}
		return peers == 3
	})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plainPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	plain := start("plain", plainPort, false)
	time.Sleep(3 * time.Second)
	// It never becomes a JetStream peer (peers come only through
	// established routes; a connection failing its handshake adds none).
	peers := 0
	for _, n := range nodes {
		peers = max(peers, len(n.JetStreamClusterPeers()))
	}
	if peers != 3 || len(plain.JetStreamClusterPeers()) != 0 {
		t.Fatalf("with a node without TLS: the leader sees %d peers (want 3), the node %d (want 0)", peers, len(plain.JetStreamClusterPeers()))
	}
	// No established route of a TLS node leads to it (a connection it
	// opened may exist for the moment its handshake takes, then fails).
	for _, n := range nodes {
		rz, err := n.Routez(&server.RoutezOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rz.Routes {
			if r.RemoteID == plain.ID() || r.RemoteName == "plain" {
				t.Fatalf("%s has a route to the node without TLS: %+v", n.Name(), r)
			}
		}
	}
}

// TestDeployNATSPermissions runs the API, a projector and a downstream
// consumer with the deploy's NATS users (issue 12, item 1): each does its
// job, and nothing more: an unauthenticated client is refused, the reader
// and the projector cannot publish an event, nobody can delete or purge the
// stream.
func TestDeployNATSPermissions(t *testing.T) {
	url := startDeployNATS(t)
	user := func(name string) natsauth.Config {
		return natsauth.Config{User: name, Password: "NATS_" + map[string]string{"api": "API", "projector": "PROJECTOR", "reader": "READER"}[name] + "_PASSWORD-test-secret"}
	}
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("a client without credentials was admitted")
	}

	// The API (no projector of its own) and a projector, on one read model.
	dir := t.TempDir()
	cfg := apptest.Config(t, dir)
	cfg.NATSURL, cfg.NATSAuth = url, user("api")
	cfg.ReadYourWritesTimeout = 5 * time.Second
	cfg.WebhookAllowHTTP = true
	cfg.WebhookAllowNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	api := apptest.Start(t, cfg, func(o *app.Options) { o.NoProjector = true })
	pcfg, err := config.LoadProjector(func(k string) string {
		return map[string]string{"NATS_URL": url, "NATS_USER": "projector", "NATS_PASSWORD": user("projector").Password,
			"DATA_DIR": dir, "METRICS_ADDR": "127.0.0.1:0", "LOG_LEVEL": "warn"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := app.StartProjector(context.Background(), pcfg, app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })

	// Every kind of command and query works with the api user's rights.
	c := create(t, api, `{"name":"Least Privilege","email":"lp@example.com","externalId":"LP-1"}`)
	other := create(t, api, `{"name":"Other One"}`)
	for _, step := range []struct {
		method, path, body string
		status             int
	}{
		{"PATCH", "/api/v1/crm/customers/" + c.CustomerID, `{"status":"active"}`, 200},
		{"PUT", "/api/v1/crm/customers/by-email/lp@example.com", `{"notes":"upserted"}`, 200},
		{"PUT", "/api/v1/crm/customers/by-email/new@example.com", `{"name":"New By Email"}`, 201},
		{"GET", "/api/v1/crm/customers/" + c.CustomerID + "/history", "", 200},
		{"POST", "/api/v1/crm/customers/" + c.CustomerID + "/merge", `{"customerIds":["` + other.CustomerID + `"]}`, 200},
		{"POST", "/api/v1/crm/customers/" + c.CustomerID + "/unmerge", `{"customerId":"` + other.CustomerID + `"}`, 200},
		{"DELETE", "/api/v1/crm/customers/" + other.CustomerID, "", 200},
		{"POST", "/api/v1/crm/customers/" + other.CustomerID + "/restore", "", 200},
		{"GET", "/api/v1/crm/customers/search?q=least", "", 200},
	} {
		var body any
		if step.body != "" {
			body = step.body
		}
		r := api.Do(step.method, step.path, body, "Idempotency-Key", fmt.Sprint(time.Now().UnixNano()))
		if r.Status != step.status || r.Header.Get("X-Read-Model") == "behind" {
			t.Fatalf("%s %s with the api user: %d (read model %s) %s", step.method, step.path, r.Status, r.Header.Get("X-Read-Model"), r.Body)
		}
	}
	if r := api.Do("POST", "/api/v1/crm/customers", `{"name":"Idem"}`, "Idempotency-Key", "k1"); r.Status != 201 {
		t.Fatalf("idempotent create: %d %s", r.Status, r.Body)
	}
	// Webhooks: a subscription, a delivery, its log and status, a replay.
	rc := newReceiver(t)
	sub := createWebhook(t, api, map[string]any{"url": rc.srv.URL})
	rc.setSecrets(sub.Secret)
	hr := api.Do("POST", "/api/v1/crm/customers", `{"name":"Hooked Through The Deploy Permissions"}`)
	var hooked envelope
	hr.JSON(t, &hooked)
	seq, _ := strconv.ParseUint(hr.Header.Get("X-Stream-Sequence"), 10, 64)
	waitDelivered(t, rc, map[uint64]string{seq: hooked.Data.CustomerID}, 20*time.Second)
	apptest.Eventually(t, 10*time.Second, "the webhook's status shows the delivery (the log is written every 50 ms)", func() bool {
		v := getWebhook(t, api, sub.ID)
		return v.Status != nil && v.Status.LastDelivery != nil && v.Status.Delivering
	})
	for _, step := range []struct{ method, path, body string }{
		{"POST", "/api/v1/crm/webhooks/" + sub.ID + "/ping", ""},
		{"GET", "/api/v1/crm/webhooks/" + sub.ID + "/deliveries", ""},
		{"POST", "/api/v1/crm/webhooks/" + sub.ID + "/replay", `{"after":"2000-01-01T00:00:00Z"}`},
		{"GET", "/api/v1/crm/webhooks", ""},
	} {
		var body any
		if step.body != "" {
			body = step.body
		}
		if r := api.Do(step.method, step.path, body); r.Status >= 300 {
			t.Errorf("%s %s with the api user: %d %s", step.method, step.path, r.Status, r.Body)
		}
	}

	connect := func(name string) (*nats.Conn, jetstream.JetStream) {
		opts, err := user(name).Options()
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(url, opts...)
		if err != nil {
			t.Fatalf("connect as %s: %v", name, err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc, jetstream.WithDefaultTimeout(time.Second)) // short: the refused calls time out
		return nc, js
	}
	ctx := t.Context()
	_, apiJS := connect("api")
	s, err := apiJS.Stream(ctx, "CRM_CUSTOMERS")
	if err != nil {
		t.Fatal(err)
	}
	last := s.CachedInfo().State.LastSeq

	// A downstream consumer follows the events with a durable consumer.
	_, readerJS := connect("reader")
	cons, err := readerJS.CreateOrUpdateConsumer(ctx, "CRM_CUSTOMERS", jetstream.ConsumerConfig{
		Durable: "downstream-test", FilterSubject: "crm.customers.>", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("reader: create a durable consumer: %v", err)
	}
	batch, err := cons.Fetch(5, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range batch.Messages() {
		if err := m.Ack(); err != nil {
			t.Fatalf("reader: ack: %v", err)
		}
		got++
	}
	if got != 5 {
		t.Fatalf("reader fetched %d events, want 5 (%v)", got, batch.Error())
	}

	// Neither the reader nor the projector may write or delete anything.
	for _, name := range []string{"reader", "projector"} {
		_, js := connect(name)
		if _, err := js.Publish(ctx, "crm.customers."+c.CustomerID+".deleted", []byte(`{}`)); err == nil {
			t.Errorf("%s published an event", name)
		}
	}
	for _, name := range []string{"reader", "projector", "api"} {
		_, js := connect(name)
		if err := js.DeleteStream(ctx, "CRM_CUSTOMERS"); err == nil {
			t.Errorf("%s deleted the stream", name)
		}
		if st, err := js.Stream(ctx, "CRM_CUSTOMERS"); err == nil {
			if err := st.Purge(ctx); err == nil {
				t.Errorf("%s purged the stream", name)
			}
			if err := st.DeleteMsg(ctx, 1); err == nil {
				t.Errorf("%s deleted an event", name)
			}
		}
	}
	s, err = apiJS.Stream(ctx, "CRM_CUSTOMERS")
	if err != nil {
		t.Fatalf("the stream is gone: %v", err)
	}
	if s.CachedInfo().State.LastSeq != last || s.CachedInfo().State.FirstSeq != 1 {
		t.Fatalf("the stream changed: %+v, last was %d", s.CachedInfo().State, last)
	}
	if g := api.Do("GET", "/api/v1/crm/customers/"+c.CustomerID, nil); g.Status != http.StatusOK {
		t.Fatalf("read after: %d", g.Status)
	}
}
