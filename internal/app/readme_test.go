package app_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"crm/internal/apptest"
)

// TestReadmeWalkThrough runs the README's walk-through, as written, with
// bash and curl against a live service (only the address differs: the
// test's service listens on a free port), and checks what it printed.
func TestReadmeWalkThrough(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed to run the README's walk-through (apt-get install -y curl)")
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)### Walk-through[^\n]*\n\n```sh\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no walk-through block")
	}
	script := string(m[1])
	if !strings.Contains(script, "http://127.0.0.1:8080/api/v1/crm") {
		t.Fatalf("the walk-through does not use the documented address:\n%s", script)
	}
	e := apptest.StartEmbedded(t)
	script = strings.ReplaceAll(script, "http://127.0.0.1:8080", e.App.URL())

	run := func() string {
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "SECRET_KEY="+apptest.Secret, "DATA_DIR="+e.Cfg.DataDir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the walk-through failed: %v\n%s", err, out)
		}
		return string(out)
	}
	out := run()
	for _, want := range []string{
		`"customerCode":"C001"`,                         // create
		`"meta":{"total":1,"page":1,"perPage":20`,       // list and search
		`"status":"inactive"`,                           // patch
		`"kind":"updated"`,                              // history
		`"notes":"Key account - handles all northeast`,  // asOf the createdAt shown: as created
		`"message":"Contact created successfully"`,      // contact create
		`"data":[{"contactId":`,                         // contact list
		`"message":"Contact linked successfully"`,       // link
		`"role":"billing","primary":true`,               // the customer's contacts
		`"message":"Activity recorded successfully"`,    // activity
		`"kind":"call","at":"2026-12-01T09:30:00.000Z"`, // timeline
		`"message":"Customer deleted successfully"`,     // delete
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the walk-through's output lacks %s:\n%s", want, out)
		}
	}
	// The asOf (after the history) shows the customer as created, with the
	// notes the patch cleared.
	if strings.LastIndex(out, `"notes":"Key account`) < strings.Index(out, `"kind":"updated"`) {
		t.Errorf("the asOf of the createdAt shown did not return the customer as created:\n%s", out)
	}
	if strings.Contains(out, `"status":4`) || strings.Contains(out, `"status":5`) {
		t.Errorf("the walk-through got an error response:\n%s", out)
	}
	// It runs again on the same data: the next customer is C002.
	if out := run(); !strings.Contains(out, `"customerCode":"C002"`) || !strings.Contains(out, `"message":"Customer deleted successfully"`) {
		t.Errorf("a second run of the walk-through:\n%s", out)
	}
}
