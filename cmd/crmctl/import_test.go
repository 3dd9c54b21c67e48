package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"crm/internal/apptest"
)

// TestCrmctlImport: crmctl import uploads a CSV, follows the job and
// reports; the rejected rows land beside the file; crmctl verify then
// finds the read model equal to the stream.
func TestCrmctlImport(t *testing.T) {
	e := apptest.StartEmbedded(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "legacy.csv")
	body := "Full Name,Mail,Old Code\nAda Lovelace,ada@example.com,L-1\nAlan Turing,alan@example.com,L-2\nNo Mail,not-a-mail,L-3\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := crmctl(t, e, "import", "--url", e.App.URL(), "--token", e.Token, "--map", "Full Name:name,Mail:email,Old Code:externalId", file)
	if err != nil {
		t.Fatalf("crmctl import: %v\n%s", err, out)
	}
	if !strings.Contains(out, "created 2") || !strings.Contains(out, "rejected 1") || !strings.Contains(out, file+".errors.ndjson") {
		t.Errorf("report:\n%s", out)
	}
	rejected, err := os.ReadFile(file + ".errors.ndjson")
	if err != nil || !strings.Contains(string(rejected), `"line":4`) || !strings.Contains(string(rejected), `"field":"email"`) {
		t.Errorf("errors file: %s %v", rejected, err)
	}
	if r := e.Do("GET", "/api/v1/crm/customers/by-external-id/L-2", nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Alan Turing") {
		t.Errorf("imported customer: %d %s", r.Status, r.Body)
	}
	if out, err := crmctl(t, e, "verify", "--data-dir", e.Cfg.DataDir); err != nil {
		t.Errorf("verify after the import: %v\n%s", err, out)
	}
	// A bad header is refused with the reason, nothing started.
	bad := filepath.Join(dir, "bad.csv")
	_ = os.WriteFile(bad, []byte("name,shoeSize\nA,1\n"), 0o600)
	if out, err := crmctl(t, e, "import", "--url", e.App.URL(), "--token", e.Token, bad); err == nil || !strings.Contains(err.Error(), "shoeSize") {
		t.Errorf("bad header: %v\n%s", err, out)
	}
}
