package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"crm/internal/apptest"
)

// TestReceiverKeepsACopy runs the example against the real service: a
// subscription to it, creates, patches, a delete and a restore; the
// receiver's copy ends equal to the read model, and a request with a bad
// signature is refused.
func TestReceiverKeepsACopy(t *testing.T) {
	cfg := apptest.Config(t, t.TempDir())
	cfg.WebhookAllowHTTP = true
	cfg.WebhookAllowNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	e := apptest.Start(t, cfg)

	// The secret comes with the subscription; the receiver's address once
	// it listens: subscribe first, then point the subscription at it.
	r := e.Do("POST", "/api/v1/crm/webhooks", `{"url":"http://127.0.0.1:1/hook"}`)
	var sub struct{ Data struct{ ID, Secret string } }
	r.JSON(t, &sub)
	if r.Status != http.StatusCreated {
		t.Fatalf("subscribe: %d %s", r.Status, r.Body)
	}
	statePath := filepath.Join(t.TempDir(), "hooked.json")
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--state", statePath},
			func(k string) string { return map[string]string{"WEBHOOK_SECRET": sub.Data.Secret}[k] }, io.Discard, ready)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	addr := <-ready
	if r := e.Do("PATCH", "/api/v1/crm/webhooks/"+sub.Data.ID, `{"url":"http://`+addr+`/hook"}`); r.Status != 200 {
		t.Fatalf("point the subscription: %d %s", r.Status, r.Body)
	}

	var ids []string
	for i := range 4 {
		r := e.Do("POST", "/api/v1/crm/customers", fmt.Sprintf(`{"name":"Hooked %d","email":"h%d@example.com","tags":["t%d"]}`, i, i, i))
		var env struct{ Data struct{ CustomerID string } }
		r.JSON(t, &env)
		ids = append(ids, env.Data.CustomerID)
		e.Do("PATCH", "/api/v1/crm/customers/"+env.Data.CustomerID, `{"notes":"patched","email":null}`)
	}
	e.Do("DELETE", "/api/v1/crm/customers/"+ids[0], nil)
	e.Do("POST", "/api/v1/crm/customers/"+ids[0]+"/restore", nil)
	e.Do("DELETE", "/api/v1/crm/customers/"+ids[1], nil)

	var st state
	apptest.Eventually(t, 20*time.Second, "the receiver's copy is complete", func() bool {
		b, err := os.ReadFile(statePath)
		st = state{} // a fresh copy each time (Unmarshal into a map merges)
		return err == nil && json.Unmarshal(b, &st) == nil && st.Events == 11
	})
	if len(st.Customers) != 3 || st.Customers[ids[1]] != nil || st.Aside[ids[1]] == nil {
		t.Errorf("copy: %d customers, deleted one %v", len(st.Customers), st.Customers[ids[1]])
	}
	for _, id := range []string{ids[0], ids[2], ids[3]} {
		var env struct{ Data map[string]any }
		e.Do("GET", "/api/v1/crm/customers/"+id, nil).JSON(t, &env)
		c := st.Customers[id]
		if c == nil || c["name"] != env.Data["name"] || c["notes"] != "patched" || c["email"] != nil {
			t.Errorf("customer %s: copy %v, read model %v", id, c, env.Data)
		}
	}

	// A request that is not signed with the secret is refused.
	req, _ := http.NewRequest("POST", "http://"+addr+"/hook", strings.NewReader(`{"type":"x"}`))
	req.Header.Set("webhook-id", "forged")
	req.Header.Set("webhook-timestamp", fmt.Sprint(time.Now().Unix()))
	req.Header.Set("webhook-signature", "v1,Zm9yZ2Vk")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged request: %d", resp.StatusCode)
	}
}
