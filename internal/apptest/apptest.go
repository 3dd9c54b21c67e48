// Package apptest starts the real service in-process for integration tests:
// an embedded nats-server with JetStream on a temp dir (over loopback TCP), the
// read model, the projector and the HTTP API on a random port.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/app"
	"crm/internal/auth"
	"crm/internal/config"
)

// Secret is the signing key of every test service.
const Secret = "test-secret-key-0123456789abcdef-0123456789"

// Env is one running service.
type Env struct {
	T     testing.TB
	App   *app.App
	Cfg   config.Config
	Token string // an admin token
	// ForeignEvents: the test wrote events by hand that are not meant to
	// match the published schemas (skips the check at Stop).
	ForeignEvents bool

	stopped bool
}

// Config returns an embedded configuration on random ports in dir.
func Config(t testing.TB, dir string) config.Config {
	t.Helper()
	env := map[string]string{
		"HTTP_ADDR":  "127.0.0.1:0",
		"DATA_DIR":   dir,
		"NATS_PORT":  "-1",
		"SECRET_KEY": Secret,
		"LOG_LEVEL":  "warn",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Start starts a service with cfg (see Config) and stops it at cleanup.
func Start(t testing.TB, cfg config.Config, opts ...func(*app.Options)) *Env {
	t.Helper()
	o := app.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if testing.Verbose() {
		o.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := app.Start(ctx, cfg, o)
	if err != nil {
		t.Fatalf("start service: %v", err)
	}
	e := &Env{T: t, App: a, Cfg: cfg}
	e.Token = e.TokenFor("11111111-1111-4111-8111-111111111111", "admin")
	t.Cleanup(e.Stop)
	return e
}

// StartEmbedded starts an embedded service in a fresh temp dir.
func StartEmbedded(t testing.TB) *Env {
	t.Helper()
	return Start(t, Config(t, t.TempDir()))
}

// Stop stops the service gracefully (idempotent). First, every event the
// test made the service emit must match its published JSON Schema
// (docs/events); only a service that owns its NATS checks (a replica shares
// the first service's stream).
func (e *Env) Stop() {
	if e.stopped {
		return
	}
	e.stopped = true
	if e.Cfg.Embedded() && !e.T.Failed() && !e.ForeignEvents {
		e.validateStream()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = e.App.Close(ctx)
}

// TokenFor mints a token for sub with roles.
func (e *Env) TokenFor(sub string, roles ...string) string {
	tok, err := auth.Mint([]byte(Secret), sub, roles, time.Hour, time.Now())
	if err != nil {
		e.T.Fatal(err)
	}
	return tok
}

// client is the tests' HTTP client: it does not follow redirects, so that a
// test sees the service's own answer.
var client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Response is an HTTP response with its body read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v (failing the test on error).
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %d response %q: %v", r.Status, r.Body, err)
	}
}

// Do sends a request with the admin token. body may be nil, a string
// (sent as is) or a value (sent as JSON). Extra headers are "Key", "Value"
// pairs; an "Authorization" pair replaces the token ("" removes it).
func (e *Env) Do(method, path string, body any, headers ...string) Response {
	e.T.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			e.T.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, e.App.URL()+path, rd)
	if err != nil {
		e.T.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		e.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.T.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// JetStream connects a plain client to the service's NATS (closed at
// cleanup).
func (e *Env) JetStream() (*nats.Conn, jetstream.JetStream) {
	e.T.Helper()
	nc, err := nats.Connect(e.App.NATSURL)
	if err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		e.T.Fatal(err)
	}
	return nc, js
}

// StreamMessages returns every raw message of the customer stream.
func (e *Env) StreamMessages() []*jetstream.RawStreamMsg {
	e.T.Helper()
	_, js := e.JetStream()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "CRM_CUSTOMERS")
	if err != nil {
		e.T.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.T.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		// 10 s for each message, not for all: a stream of 24,000
		// messages took more than 10 s to read one by one under the race
		// detector on a loaded CI machine.
		mctx, mcancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := s.GetMsg(mctx, seq)
		mcancel()
		if err != nil {
			e.T.Fatalf("get msg %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// Eventually polls cond every 10ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// NewerWriterCustomer is the customer PublishNewerWriterEvents writes.
const NewerWriterCustomer = "5e2b7c1a-9d3f-4e8a-b6c2-1f0a9e8d7c6b"

// PublishNewerWriterEvents appends, by hand, the events a newer writer of
// the same versions could write: a created.v1 with a payload field, an
// address sub-field and an extension attribute this service does not know,
// an updated.v1 that changes a known field and an unknown one, and one that
// changes only an unknown field. Readers must ignore what they do not know
// (tolerant readers): the customer is "Newer Writer Ltd", status active, at
// version 3. It returns the stream sequence of the last event.
func (e *Env) PublishNewerWriterEvents() uint64 {
	e.T.Helper()
	id := NewerWriterCustomer
	docs := []struct{ id, kind, body string }{
		{"0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "created", `{"specversion":"1.0","id":"0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
		  "source":"/crm/api-v9","type":"com.a64core.crm.customer.created.v1","subject":"` + id + `","time":"2026-11-30T10:00:00.123456789Z",
		  "datacontenttype":"application/json","customerversion":1,"actor":"newer-writer","correlationid":"r1","causationid":"r1",
		  "traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		  "data":{"customerId":"` + id + `","customerCode":"C950","name":"Newer Writer Ltd","email":null,"phone":null,"company":"Newer",
		          "address":{"city":"Lyon","geo":{"lat":45.76,"lon":4.84}},"type":"business","status":"lead","notes":null,"tags":["new"],
		          "createdBy":"newer-writer","createdAt":"2026-11-30T10:00:00.123456789Z","loyaltyTier":"gold","website":"https://newer.example"}}`},
		{"1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5e", "updated", `{"specversion":"1.0","id":"1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5e",
		  "source":"/crm/api-v9","type":"com.a64core.crm.customer.updated.v1","subject":"` + id + `","time":"2026-11-30T10:01:00Z",
		  "datacontenttype":"application/json","customerversion":2,"actor":"newer-writer",
		  "data":{"customerId":"` + id + `","customerCode":"C950","changes":{"status":"active","loyaltyTier":"platinum"},
		          "updatedBy":"newer-writer","updatedAt":"2026-11-30T10:01:00Z","reason":"upgrade"}}`},
		{"2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6f", "updated", `{"specversion":"1.0","id":"2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6f",
		  "source":"/crm/api-v9","type":"com.a64core.crm.customer.updated.v1","subject":"` + id + `","time":"2026-11-30T10:02:00Z",
		  "datacontenttype":"application/json","customerversion":3,"actor":"newer-writer",
		  "data":{"customerId":"` + id + `","customerCode":"C950","changes":{"website":"https://newer.example/v2"},
		          "updatedBy":"newer-writer","updatedAt":"2026-11-30T10:02:00Z"}}`},
	}
	_, js := e.JetStream()
	var last uint64
	for _, d := range docs {
		msg := &nats.Msg{Subject: "crm.customers." + id + "." + d.kind, Data: []byte(d.body), Header: nats.Header{}}
		msg.Header.Set("Nats-Msg-Id", d.id)
		ack, err := js.PublishMsg(context.Background(), msg)
		if err != nil {
			e.T.Fatal(err)
		}
		last = ack.Sequence
	}
	e.ForeignEvents = true // not what this service writes: skip the schema check
	return last
}
