package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	_ "modernc.org/sqlite"

	"crm/internal/apptest"
	"crm/internal/auth"
	"crm/internal/natsauth"
)

func crmctl(t *testing.T, e *apptest.Env, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := map[string]string{"NATS_URL": e.App.NATSURL, "DATA_DIR": e.Cfg.DataDir}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestCrmctlAgainstRunningService(t *testing.T) {
	e := apptest.StartEmbedded(t)
	var ids []string
	for i, body := range []string{`{"name":"John Smith","email":"john@example.com"}`, `{"name":"Ann Lee","tags":["vip"]}`, `{"name":"Gone Soon"}`} {
		r := e.Do("POST", "/api/v1/crm/customers", body)
		if r.Status != http.StatusCreated {
			t.Fatalf("create %d: %d", i, r.Status)
		}
		var env struct{ Data struct{ CustomerID string } }
		r.JSON(t, &env)
		ids = append(ids, env.Data.CustomerID)
	}
	e.Do("PATCH", "/api/v1/crm/customers/"+ids[0], `{"status":"active","email":null}`)
	e.Do("DELETE", "/api/v1/crm/customers/"+ids[2], nil)
	// A contact's events in the same stream are no customer's: verify and
	// export pass over them.
	r := e.Do("POST", "/api/v1/crm/contacts", `{"name":"Jane Doe","tags":["billing"]}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("create contact: %d %s", r.Status, r.Body)
	}
	var kenv struct{ Data struct{ ContactID string } }
	r.JSON(t, &kenv)
	kid := kenv.Data.ContactID
	// Linked to Ann Lee, with an activity: verify compares them too.
	if r := e.Do("PUT", "/api/v1/crm/customers/"+ids[1]+"/contacts/"+kid, `{"role":"billing"}`); r.Status != http.StatusCreated {
		t.Fatalf("link: %d %s", r.Status, r.Body)
	}
	r = e.Do("POST", "/api/v1/crm/customers/"+ids[1]+"/activities", `{"type":"call","occurredAt":"2026-11-30T09:00:00Z","subject":"Hello"}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("activity: %d %s", r.Status, r.Body)
	}
	var aenv struct{ Data struct{ ActivityID string } }
	r.JSON(t, &aenv)
	aid := aenv.Data.ActivityID

	out, err := crmctl(t, e, "history", "C001")
	if err != nil || !strings.Contains(out, "C001") || !strings.Contains(out, "status") || !strings.Contains(out, `"john@example.com"`) {
		t.Fatalf("history C001: %v\n%s", err, out)
	}
	out, err = crmctl(t, e, "history", ids[2], "--json")
	var entries []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 2 || entries[1]["kind"] != "deleted" {
		t.Fatalf("history --json of a deleted customer: %v\n%s", err, out)
	}
	out, err = crmctl(t, e, "state", "C003", "--as-of", time.Now().Add(-time.Hour).Format(time.RFC3339))
	if err == nil {
		t.Fatalf("state before creation should fail: %s", out)
	}
	// A deleted customer: an error that says so and since when; before
	// the deletion, its state then.
	out, err = crmctl(t, e, "state", "C003")
	if err == nil || !strings.Contains(err.Error(), "is deleted: since 20") || !strings.Contains(err.Error(), "by "+apptestAdmin) {
		t.Fatalf("state of a deleted customer: %v\n%s", err, out)
	}
	hist := historyOf(t, e, ids[2])
	out, err = crmctl(t, e, "state", "C003", "--as-of", hist[0].Time.Format(time.RFC3339Nano))
	if err != nil || !strings.Contains(out, `"name": "Gone Soon"`) {
		t.Fatalf("state before the deletion: %v\n%s", err, out)
	}

	if out, err := crmctl(t, e, "verify"); err != nil || !strings.Contains(out, "0 difference") ||
		!strings.Contains(out, "verified 3 customers (2 live), 1 links, 1 contacts (1 live), 1 activities (1 live)") {
		t.Fatalf("verify on a consistent system: %v\n%s", err, out)
	}

	// Export round trip: the NDJSON export equals the read model.
	out, err = crmctl(t, e, "export", "--format", "ndjson")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	n := 0
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		r := e.Do("GET", "/api/v1/crm/customers/"+rec["customerId"].(string), nil)
		var api struct{ Data map[string]any }
		r.JSON(t, &api)
		delete(rec, "version")
		for k, v := range api.Data {
			if b1, _ := json.Marshal(v); string(b1) != mustJSON(rec[k]) {
				t.Fatalf("export field %s = %v, read model %v", k, rec[k], v)
			}
		}
		n++
	}
	if n != 2 {
		t.Fatalf("export has %d customers, want 2", n)
	}
	if out, err := crmctl(t, e, "export", "--format", "csv"); err != nil || strings.Count(out, "\n") != 3 {
		t.Fatalf("csv export: %v\n%s", err, out)
	}
	testCSVExportIsSafe(t, e)

	// Tamper with one document: verify names the customer and the field.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.Cfg.DataDir, "readmodel.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection: the temporary table below lives on it
	if _, err := db.Exec(`PRAGMA busy_timeout = 5000`); err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(`UPDATE customers SET name = 'Tampered' WHERE customer_id = ?`, ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tamper updated %d rows", n)
	}
	out, err = crmctl(t, e, "verify")
	if err == nil || !strings.Contains(out, ids[1]) || !strings.Contains(out, "name") || !strings.Contains(out, "Tampered") {
		t.Fatalf("verify after tampering: %v\n%s", err, out)
	}
	// A document missing and one invented: both named.
	invented := "99999999-9999-4999-8999-999999999999"
	for _, q := range []string{
		`DELETE FROM customers WHERE customer_id = '` + ids[0] + `'`,
		// A copy of another row under a new id (whatever the columns).
		`CREATE TEMP TABLE copy AS SELECT * FROM customers WHERE customer_id = '` + ids[1] + `'`,
		`UPDATE copy SET id = id + 1000, customer_id = '` + invented + `', customer_code = 'C777', code_num = 777, seq = 1`,
		`INSERT INTO customers SELECT * FROM copy`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	out, err = crmctl(t, e, "verify")
	if err == nil || !strings.Contains(out, "DIFF customer "+ids[0]+" (C001) document: read model —, stream \"present\"") ||
		!strings.Contains(out, "DIFF customer "+invented+" (C777) document: read model \"present\", stream \"absent\"") ||
		!strings.Contains(out, "3 difference(s)") {
		t.Fatalf("verify with a missing and an invented document: %v\n%s", err, out)
	}
	// In several passes (each folding a sixteenth of the ids' range): the
	// same differences.
	out16, err := crmctl(t, e, "verify", "--passes", "16")
	diffLines := func(s string) []string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "DIFF ") {
				out = append(out, l)
			}
		}
		slices.Sort(out)
		return out
	}
	if err == nil || !slices.Equal(diffLines(out16), diffLines(out)) || !strings.Contains(out16, "16 pass(es)") {
		t.Fatalf("verify --passes 16: %v\n%s\nwant the differences of\n%s", err, out16, out)
	}

	// A contact, a link and an activity tampered with, a contact invented:
	// each named with its field.
	inventedContact := "88888888-8888-4888-8888-888888888888"
	for _, q := range []string{
		`UPDATE contacts SET title = 'Tampered Title' WHERE contact_id = '` + kid + `'`,
		`UPDATE contact_links SET role = 'hacked' WHERE contact_id = '` + kid + `'`,
		`UPDATE activities SET subject = 'Tampered' WHERE activity_id = '` + aid + `'`,
		`CREATE TEMP TABLE kcopy AS SELECT * FROM contacts WHERE contact_id = '` + kid + `'`,
		`UPDATE kcopy SET id = id + 1000, contact_id = '` + inventedContact + `', seq = 1`,
		`INSERT INTO contacts SELECT * FROM kcopy`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	out, err = crmctl(t, e, "verify")
	for _, want := range []string{
		"DIFF contact " + kid + " title: read model \"Tampered Title\", stream \"\"",
		"DIFF customer " + ids[1] + " contacts." + kid + ".role: read model \"hacked\", stream \"billing\"",
		"DIFF activity " + aid + " subject: read model \"Tampered\", stream \"Hello\"",
		"DIFF contact " + inventedContact + " document: read model \"present\", stream \"absent\"",
		"7 difference(s)",
	} {
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("verify after tampering with the others: want %s\n%v\n%s", want, err, out)
		}
	}
	if out16, _ := crmctl(t, e, "verify", "--passes", "16"); !slices.Equal(diffLines(out16), diffLines(out)) {
		t.Errorf("verify --passes 16 of the others:\n%s\nwant the differences of\n%s", out16, out)
	}
}

// apptestAdmin is the subject of the admin token of apptest services.
const apptestAdmin = "11111111-1111-4111-8111-111111111111"

// historyOf returns a customer's history through the API.
func historyOf(t *testing.T, e *apptest.Env, id string) []struct{ Time time.Time } {
	t.Helper()
	var h struct{ Data []struct{ Time time.Time } }
	e.Do("GET", "/api/v1/crm/customers/"+id+"/history", nil).JSON(t, &h)
	if len(h.Data) == 0 {
		t.Fatalf("no history of %s", id)
	}
	return h.Data
}

func TestCrmctlToken(t *testing.T) {
	env := map[string]string{"SECRET_KEY": apptest.Secret}
	getenv := func(k string) string { return env[k] }
	tok := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"token"}, args...), getenv, &out, &errOut)
		return strings.TrimSpace(out.String()), err
	}
	sub := "22222222-2222-4222-8222-222222222222"
	s, err := tok("--sub", sub, "--role", "user")
	if err != nil {
		t.Fatal(err)
	}
	p, err := auth.NewVerifier([]byte(apptest.Secret), auth.Options{}).Verify(s)
	if err != nil || p.Subject != sub || !p.Can(auth.PermEdit) || p.Can(auth.PermAudit) {
		t.Fatalf("minted token: %+v %v", p, err)
	}
	for _, bad := range [][]string{
		{"--sub", "alice"}, {"--sub", "{" + sub + "}"}, {"--role", "superuser"}, {"--role", "admin", "--role", "typo"},
	} {
		if out, err := tok(bad...); err == nil {
			t.Errorf("token %v accepted: %s", bad, out)
		}
	}
	// Roles come from ROLE_PERMISSIONS when it is set.
	env["ROLE_PERMISSIONS"] = `{"auditor":["crm.view","crm.audit"]}`
	if _, err := tok("--role", "auditor"); err != nil {
		t.Errorf("a configured role refused: %v", err)
	}
	if _, err := tok("--role", "admin"); err == nil {
		t.Error("a role ROLE_PERMISSIONS does not define accepted")
	}
	delete(env, "ROLE_PERMISSIONS")

	// SECRET_KEY and --data-dir (issue 12, item 9): used together they
	// must agree; a mismatch or a missing file names both sources.
	dir := t.TempDir()
	fileKey := "file-key-file-key-file-key-0123456789"
	if err := os.WriteFile(filepath.Join(dir, "secret.key"), []byte(fileKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tok("--data-dir", dir); err == nil || !strings.Contains(err.Error(), "SECRET_KEY") || !strings.Contains(err.Error(), "secret.key") {
		t.Errorf("SECRET_KEY and a --data-dir with another key: %v; want an error naming both", err)
	}
	if _, err := tok("--data-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "SECRET_KEY") || !strings.Contains(err.Error(), "--data-dir") {
		t.Errorf("SECRET_KEY and a --data-dir without a key: %v; want an error naming both", err)
	}
	env["SECRET_KEY"] = fileKey
	if s, err := tok("--data-dir", dir); err != nil {
		t.Errorf("SECRET_KEY equal to the --data-dir key: %v", err)
	} else if _, err := auth.NewVerifier([]byte(fileKey), auth.Options{}).Verify(s); err != nil {
		t.Errorf("token not signed with the agreed key: %v", err)
	}
	delete(env, "SECRET_KEY")
	if s, err := tok("--data-dir", dir); err != nil {
		t.Errorf("--data-dir alone: %v", err)
	} else if _, err := auth.NewVerifier([]byte(fileKey), auth.Options{}).Verify(s); err != nil {
		t.Errorf("token not signed with the file's key: %v", err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCrmctlHelpAndErrors(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"history", "--help"}, {"state", "--help"}, {"tail", "--help"}, {"verify", "--help"}, {"export", "--help"}, {"token", "--help"}} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if out.Len()+errOut.Len() == 0 {
			t.Fatalf("%v printed nothing", args)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"frobnicate"}, func(string) string { return "" }, &out, &out); err == nil {
		t.Fatal("unknown command accepted")
	}
	if err := run(context.Background(), []string{"history"}, func(string) string { return "" }, &out, &out); err == nil {
		t.Fatal("history without argument accepted")
	}
	if err := run(context.Background(), []string{"export", "--format", "xml"}, func(string) string { return "" }, &out, &out); err == nil {
		t.Fatal("bad format accepted")
	}
}

// TestCrmctlReadsNewerWriterEvents: fields a newer writer added within the
// versions are ignored by history, state, export and verify.
func TestCrmctlReadsNewerWriterEvents(t *testing.T) {
	e := apptest.StartEmbedded(t)
	last := e.PublishNewerWriterEvents()
	apptest.Eventually(t, 10*time.Second, "projected", func() bool { return e.App.Projector().Status().Applied >= last })
	id := apptest.NewerWriterCustomer
	if out, err := crmctl(t, e, "history", "C950"); err != nil || !strings.Contains(out, "status") || !strings.Contains(out, `"active"`) {
		t.Fatalf("history: %v\n%s", err, out)
	}
	if out, err := crmctl(t, e, "state", id); err != nil || !strings.Contains(out, `"name": "Newer Writer Ltd"`) || !strings.Contains(out, `"version": 3`) {
		t.Fatalf("state: %v\n%s", err, out)
	}
	if out, err := crmctl(t, e, "export"); err != nil || !strings.Contains(out, `"customerCode":"C950"`) {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if out, err := crmctl(t, e, "verify"); err != nil || !strings.Contains(out, "0 difference") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

// testCSVExportIsSafe exports customers whose values a spreadsheet would run
// as formulas, and tags with the old separator: every such cell starts with
// an apostrophe, and undoing the documented rule (drop one leading
// apostrophe; tags are a JSON array) gives back every value (issue 12,
// item 8).
func testCSVExportIsSafe(t *testing.T, e *apptest.Env) {
	t.Helper()
	values := map[string]string{"name": "=HYPERLINK(\"http://x\",\"y\")", "company": "@SUM(1+1)", "phone": "+1 555 0100",
		"notes": "'already quoted", "email": "eve@example.com"}
	tags := []string{"a;b", "c", "-1", "=x", "plain"}
	body := map[string]any{"tags": tags, "address": map[string]string{"city": "-Minus"}}
	for k, v := range values {
		body[k] = v
	}
	r := e.Do("POST", "/api/v1/crm/customers", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	out, err := crmctl(t, e, "export", "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	var row []string
	for _, rw := range rows[1:] {
		if rw[col["email"]] == "eve@example.com" {
			row = rw
		}
	}
	if row == nil {
		t.Fatalf("customer not exported:\n%s", out)
	}
	for _, cell := range row {
		if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
			t.Errorf("cell %q would run as a formula", cell)
		}
	}
	uncell := func(v string) string { return strings.TrimPrefix(v, "'") }
	for k, v := range values {
		if got := uncell(row[col[k]]); got != v {
			t.Errorf("%s: %q exported as %q, back %q", k, v, row[col[k]], got)
		}
	}
	if uncell(row[col["city"]]) != "-Minus" {
		t.Errorf("city: %q", row[col["city"]])
	}
	var back []string
	if err := json.Unmarshal([]byte(uncell(row[col["tags"]])), &back); err != nil || !slices.Equal(back, tags) {
		t.Errorf("tags %q exported as %q, back %q (%v)", tags, row[col["tags"]], back, err)
	}
}

// TestEmbeddedNATSNeedsCredentials: the embedded server refuses a client
// without credentials, and crmctl finds them in the data directory, the
// way it finds the token key (issue 12, item 1).
func TestEmbeddedNATSNeedsCredentials(t *testing.T) {
	e := apptest.StartEmbedded(t)
	create := e.Do("POST", "/api/v1/crm/customers", `{"name":"Behind A Password"}`)
	if create.Status != http.StatusCreated {
		t.Fatalf("create: %d", create.Status)
	}
	u, err := url.Parse(e.App.NATSURL)
	if err != nil || u.User == nil {
		t.Fatalf("the app's NATS URL carries no credentials: %v", err)
	}
	u.User = nil
	bare := u.String()
	if nc, err := nats.Connect(bare); err == nil {
		nc.Close()
		t.Fatal("the embedded NATS accepted a client without credentials")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect without credentials: %v, want an authorization error", err)
	}
	if fi, err := os.Stat(filepath.Join(e.Cfg.DataDir, natsauth.EmbeddedFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v, want mode 0600", fi, err)
	}
	run := func(dataDir string) (string, error) {
		var out, errOut bytes.Buffer
		env := map[string]string{"NATS_URL": bare, "DATA_DIR": dataDir}
		err := run(t.Context(), []string{"export"}, func(k string) string { return env[k] }, &out, &errOut)
		return out.String(), err
	}
	if out, err := run(e.Cfg.DataDir); err != nil || !strings.Contains(out, "Behind A Password") {
		t.Fatalf("crmctl with DATA_DIR: %v\n%s", err, out)
	}
	if _, err := run(t.TempDir()); err == nil || !strings.Contains(err.Error(), natsauth.EmbeddedFile) {
		t.Fatalf("crmctl without the credentials: %v; want an error naming %s", err, natsauth.EmbeddedFile)
	}
}

// TestCerts: crmctl certs writes the CA, the route certificate for the
// given hosts and its key (0600).
func TestCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"certs", "--hosts", "nats-1,10.0.0.1", dir}, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("certs: %v %s", err, errOut.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "route.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || !slices.Contains(cert.DNSNames, "nats-1") || len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("10.0.0.1")) {
		t.Fatalf("route certificate: %v %v %v", err, cert.DNSNames, cert.IPAddresses)
	}
	if fi, err := os.Stat(filepath.Join(dir, "route-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key: %v %v", fi, err)
	}
	if err := run(t.Context(), []string{"certs"}, func(string) string { return "" }, &out, &errOut); err == nil {
		t.Fatal("certs without a directory accepted")
	}
}

// TestVerifyAfterMergesAndRestores: links copied by a merge, taken back by
// an unmerge and brought back by a restore verify without a difference.
func TestVerifyAfterMergesAndRestores(t *testing.T) {
	e := apptest.StartEmbedded(t)
	id := func(r apptest.Response, field string) string {
		t.Helper()
		var env struct{ Data map[string]any }
		if r.JSON(t, &env); r.Status >= 300 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		return env.Data[field].(string)
	}
	a := id(e.Do("POST", "/api/v1/crm/customers", `{"name":"Survivor"}`), "customerId")
	b := id(e.Do("POST", "/api/v1/crm/customers", `{"name":"Absorbed"}`), "customerId")
	c := id(e.Do("POST", "/api/v1/crm/customers", `{"name":"Absorbed Too"}`), "customerId")
	k := id(e.Do("POST", "/api/v1/crm/contacts", `{"name":"Kim"}`), "contactId")
	l := id(e.Do("POST", "/api/v1/crm/contacts", `{"name":"Lee"}`), "contactId")
	for _, step := range []struct{ method, path, body string }{
		{"PUT", "/api/v1/crm/customers/" + b + "/contacts/" + k, `{"role":"billing","primary":true}`},
		{"PUT", "/api/v1/crm/customers/" + c + "/contacts/" + l, `{}`},
		{"POST", "/api/v1/crm/customers/" + a + "/merge", `{"customerIds":["` + b + `","` + c + `"]}`},
		{"DELETE", "/api/v1/crm/customers/" + a, ``},
		{"POST", "/api/v1/crm/customers/" + a + "/restore", ``},
		{"POST", "/api/v1/crm/customers/" + a + "/unmerge", `{"customerId":"` + c + `"}`},
	} {
		var body any
		if step.body != "" {
			body = step.body
		}
		if r := e.Do(step.method, step.path, body); r.Status >= 300 {
			t.Fatalf("%s %s: %d %s", step.method, step.path, r.Status, r.Body)
		}
	}
	out, err := crmctl(t, e, "verify")
	if err != nil || !strings.Contains(out, "0 difference") || !strings.Contains(out, "verified 3 customers (2 live), 2 links") { // Kim on the survivor, Lee on the unmerged one
		t.Fatalf("verify: %v\n%s", err, out)
	}
	// The unmerge ended the copy of Lee's link, although the restore came
	// in between; Kim's copy stays on the survivor.
	var links struct{ Meta struct{ Total int } }
	e.Do("GET", "/api/v1/crm/customers/"+a+"/contacts", nil).JSON(t, &links)
	if links.Meta.Total != 1 {
		t.Errorf("the survivor has %d links, want 1 (Kim's copy)", links.Meta.Total)
	}
}
