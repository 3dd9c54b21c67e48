// Command webhook-receiver is an example endpoint for the service's
// webhooks: it verifies every request's signature with the Standard
// Webhooks reference library (github.com/standard-webhooks/standard-webhooks/
// libraries/go), refuses stale timestamps, skips events it already took (by
// webhook-id, remembered in its state file), and keeps its own copy of each
// customer from the events alone, written to disk before it answers 2xx
// (the service then sends that customer's next event).
//
//	WEBHOOK_SECRET=whsec_… go run ./examples/webhook-receiver --addr 127.0.0.1:9000 --state hooked.json
//
// and subscribe it (the service started with WEBHOOK_ALLOW_HTTP=true
// WEBHOOK_ALLOW_NETS=127.0.0.1/32, as this receiver is local and plain
// http):
//
//	curl -X POST $API/webhooks -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
//	  -d '{"url":"http://127.0.0.1:9000/hook"}'
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-receiver:", err)
		os.Exit(1)
	}
}

// state is what the receiver keeps: the customers and, per customer, the
// stream sequence of the last event applied (a retry or a replay of an
// older one is answered 2xx and skipped).
type state struct {
	Customers map[string]map[string]any `json:"customers"`
	// Aside: deleted or merged away (a restore or an unmerge brings them back).
	Aside  map[string]map[string]any `json:"aside"`
	Last   map[string]uint64         `json:"last"`
	Events int                       `json:"events"`
}

// receiver is the HTTP handler. Safe for concurrent use.
type receiver struct {
	wh   *standardwebhooks.Webhook
	path string
	log  *log.Logger

	mu sync.Mutex
	st state
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, ready chan<- string) error {
	fs := flag.NewFlagSet("webhook-receiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9000", "address to listen on")
	statePath := fs.String("state", "hooked.json", "where the copy of the customers is kept")
	if err := fs.Parse(args); err != nil {
		return err
	}
	secret := getenv("WEBHOOK_SECRET")
	if secret == "" {
		return errors.New("WEBHOOK_SECRET is required: the secret the subscription's creation answered (whsec_…)")
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return fmt.Errorf("WEBHOOK_SECRET: %w", err)
	}
	rc := &receiver{wh: wh, path: *statePath, log: log.New(stderr, "", log.LstdFlags),
		st: state{Customers: map[string]map[string]any{}, Aside: map[string]map[string]any{}, Last: map[string]uint64{}}}
	if b, err := os.ReadFile(*statePath); err == nil {
		if err := json.Unmarshal(b, &rc.st); err != nil {
			return fmt.Errorf("%s: %w", *statePath, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, m := range []*map[string]map[string]any{&rc.st.Customers, &rc.st.Aside} {
		if *m == nil {
			*m = map[string]map[string]any{}
		}
	}
	if rc.st.Last == nil {
		rc.st.Last = map[string]uint64{}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 5 * time.Second}
	if ready != nil {
		ready <- ln.Addr().String()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	rc.log.Printf("listening on http://%s", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 2<<20))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	// The signature covers webhook-id, webhook-timestamp (within 5 minutes)
	// and the body.
	if err := rc.wh.Verify(body, r.Header); err != nil {
		rc.log.Printf("refused a request: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ev struct {
		Type    string          `json:"type"`
		Subject string          `json:"subject"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "not a CloudEvent", http.StatusBadRequest)
		return
	}
	seq, _ := strconv.ParseUint(r.Header.Get("X-Stream-Sequence"), 10, 64)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if seq == 0 { // a ping
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if seq <= rc.st.Last[ev.Subject] {
		w.WriteHeader(http.StatusNoContent) // seen already: a retry or a replay
		return
	}
	if err := rc.apply(ev.Type, ev.Subject, ev.Data); err != nil {
		rc.log.Printf("event %d: %v", seq, err)
		http.Error(w, err.Error(), http.StatusUnprocessableEntity) // retried: fix the receiver
		return
	}
	rc.st.Last[ev.Subject] = seq
	rc.st.Events++
	if err := rc.save(); err != nil {
		rc.log.Printf("save: %v", err)
		http.Error(w, "cannot save", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// apply folds one event into the copy (docs/events): created sets the
// customer; updated, merged and mergeundone merge their changed fields
// (null clears); deleted and mergedinto set it aside, restored and
// unmerged bring it back. Fields it does not know are kept as they come.
func (rc *receiver) apply(typ, id string, data json.RawMessage) error {
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	kind := strings.TrimSuffix(strings.TrimPrefix(typ, "com.a64core.crm.customer."), ".v1")
	switch kind {
	case "created":
		rc.st.Customers[id] = fields
	case "updated", "merged", "mergeundone":
		c := rc.st.Customers[id]
		if c == nil {
			return fmt.Errorf("%s of a customer this receiver does not have", kind)
		}
		changes, _ := fields["changes"].(map[string]any)
		for k, v := range changes {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
	case "deleted", "mergedinto":
		if c := rc.st.Customers[id]; c != nil {
			rc.st.Aside[id] = c
			delete(rc.st.Customers, id)
		}
	case "restored", "unmerged":
		if c := rc.st.Aside[id]; c != nil {
			rc.st.Customers[id] = c
			delete(rc.st.Aside, id)
		}
	default:
		rc.log.Printf("skipping an event of type %s: not a kind this receiver needs", typ)
	}
	return nil
}

// save writes the state atomically (temp file, fsync, rename).
func (rc *receiver) save() error {
	b, err := json.Marshal(rc.st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(rc.path), ".hooked-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), rc.path)
}
