package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"crm/internal/apptest"
	"crm/internal/auth"
)

// browserPath finds the system's Chromium (CHROME_PATH, else chromium on
// PATH). No test downloads a browser: without one the browser tests skip,
// unless CRM_REQUIRE_BROWSER is set (CI sets it after installing Debian's
// chromium), when they fail.
func browserPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CRM_REQUIRE_BROWSER") != "" {
		t.Fatal("CRM_REQUIRE_BROWSER is set but no chromium is installed (apt-get install -y chromium)")
	}
	t.Skip("no browser installed: the console's browser tests need Chromium (apt-get install -y chromium, or set CHROME_PATH)")
	return ""
}

// session is one browser tab on the console, with what the test watches
// in it: script exceptions and dialogs (an alert() would mean injected
// script ran) fail the test.
type session struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string

	mu         sync.Mutex
	exceptions []string
	dialogs    []string
}

type harness struct {
	t       *testing.T
	browser context.Context
	base    string
	dir     string // screenshots
}

func newHarness(t *testing.T, base string) *harness {
	path := browserPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(cancelB)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", path, err)
	}
	h := &harness{t: t, browser: bctx, base: base, dir: t.ArtifactDir()}
	t.Logf("screenshots in %s", h.dir)
	return h
}

// tab opens a new tab (its own sessionStorage: a second session) on the
// console.
func (h *harness) tab() *session { return h.open(h.base + "/console") }

// open opens a new tab at addr.
func (h *harness) open(addr string) *session {
	ctx, cancel := chromedp.NewContext(h.browser)
	h.t.Cleanup(cancel)
	s := &session{t: h.t, ctx: ctx, base: h.base, dir: h.dir}
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		h.t.Fatalf("open a tab: %v", err)
	}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			s.mu.Lock()
			s.exceptions = append(s.exceptions, fmt.Sprintf("%s (%s:%d)", msg, d.URL, d.LineNumber+1))
			s.mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			s.mu.Lock()
			s.dialogs = append(s.dialogs, string(ev.Type)+": "+ev.Message)
			s.mu.Unlock()
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{}) // the test fails on the dialog anyway
		}
	}()
	s.run("open "+addr, chromedp.Navigate(addr))
	return s
}

func (s *session) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		s.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		s.t.Fatalf("%s: %v", what, err)
	}
	s.healthy(what)
}

func (s *session) healthy(what string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.exceptions) > 0 || len(s.dialogs) > 0 {
		s.t.Fatalf("after %s: script exceptions %q, dialogs %q", what, s.exceptions, s.dialogs)
	}
}

// wait polls a JavaScript condition until it is true.
func (s *session) wait(what, js string) {
	s.t.Helper()
	s.run(what, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
}

// waitText waits until the element sel contains text.
func (s *session) waitText(what, sel, text string) {
	s.t.Helper()
	s.wait(what, fmt.Sprintf(`(() => { const el = document.querySelector(%s); return !!el && el.textContent.includes(%s); })()`, q(sel), q(text)))
}

// text is the textContent of the first element that matches sel.
func (s *session) text(sel string) string {
	s.t.Helper()
	var out string
	s.eval("read "+sel, fmt.Sprintf(`(() => { const el = document.querySelector(%s); return el ? el.textContent : ''; })()`, q(sel)), &out)
	return out
}

// eval evaluates js and decodes its JSON value into out (nil: ignored).
func (s *session) eval(what, js string, out any) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js))
	if err != nil {
		s.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		s.t.Fatalf("%s: %v", what, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s: %s: %v", what, raw, err)
		}
	}
	s.healthy(what)
}

func (s *session) click(sel string) {
	s.t.Helper()
	s.run("click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// fill replaces the value of the input sel by typing text into it.
func (s *session) fill(sel, text string) {
	s.t.Helper()
	s.run("fill "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	// (chromedp v0.23.1's SetValue passes undefined as the value: clear by script)
	s.eval("clear "+sel, fmt.Sprintf(`(() => { const el = document.querySelector(%s); el.value = ''; el.dispatchEvent(new Event('input', {bubbles: true})); })()`, q(sel)), nil)
	s.run("type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text))
}

func (s *session) go_(hash string) {
	s.t.Helper()
	s.eval("go to "+hash, `location.hash = `+q(hash), nil)
}

// shot saves a screenshot of the whole page as name.png.
func (s *session) shot(name string) {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(s.dir, name+".png"), buf, 0o644); err != nil {
		s.t.Logf("screenshot %s: %v", name, err)
	}
}

// checkA11y fails the test on each violation testdata/a11y.js finds on
// the screen as drawn.
func (s *session) checkA11y(screen string) {
	s.t.Helper()
	for _, v := range s.a11y(screen) {
		s.t.Errorf("%s: accessibility: %s", screen, v)
	}
}

// a11y runs testdata/a11y.js on the screen as drawn.
func (s *session) a11y(screen string) []string {
	s.t.Helper()
	js, err := os.ReadFile("testdata/a11y.js")
	if err != nil {
		s.t.Fatal(err)
	}
	var violations []string
	s.eval("accessibility check of "+screen, string(js), &violations)
	return violations
}

// TestA11yCheck: the accessibility check finds each kind of violation it
// looks for (a check that finds nothing anywhere proves nothing).
func TestA11yCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	page := `<!doctype html><html><head></head><body>` +
		`<h1>One</h1><h1>Two</h1><h4>Skipped</h4>` +
		`<input id="a"><input id="a" aria-describedby="gone">` +
		`<button></button><img src="data:,">` +
		`<p style="color:#bbb;background:#fff">faint</p>` +
		`<a href="#" tabindex="3">link</a></body></html>`
	h := newHarness(t, "")
	got := strings.Join(h.open("data:text/html,"+url.PathEscape(page)).a11y("broken page"), "\n")
	for _, want := range []string{"no lang", "no title", "no main landmark", "form control without a label", "control without an accessible name",
		"image without alt", "duplicate id: a", "names a missing id gone", "positive tabindex", "2 visible h1", "skips from h1 to h4", "contrast"} {
		if !strings.Contains(got, want) {
			t.Errorf("the check missed %q; it found:\n%s", want, got)
		}
	}
}

func q(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestConsoleInBrowser drives the console in headless Chromium against the
// real service (embedded NATS and SQLite, the key generated as in the
// zero-setup default): local sign-in, create with a field error, search as
// you type with highlighting, edit, an If-Match conflict from a second
// session resolved without losing either change, delete and restore,
// history with its diffs and the as-of slider, a CSV import with its
// progress and rejected rows, a read-only token's screens, phone width, and
// an accessibility check and a screenshot of each screen.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	dir := t.TempDir()
	cfg := apptest.Config(t, dir)
	cfg.SecretKey = "" // the embedded default's generated key: the local admin session is offered
	cfg.Roles = auth.DefaultRoles()
	cfg.Roles["viewer"] = []string{auth.PermView}
	e := apptest.Start(t, cfg)
	if e.App.AdminToken == "" {
		t.Fatal("the service minted no admin token with a generated key")
	}
	e.Token = e.App.AdminToken
	key, err := os.ReadFile(filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	mint := func(sub string, roles ...string) string {
		tok, err := auth.Mint([]byte(strings.TrimSpace(string(key))), sub, roles, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	apptest.Eventually(t, 10*time.Second, "ready", func() bool { return e.Do("GET", "/readyz", nil).Status == http.StatusOK })

	h := newHarness(t, e.App.URL())
	a := h.tab()

	// Sign in with the one-click local admin session.
	a.waitText("sign-in screen", "h1", "Sign in")
	a.waitText("local session offered", "#local-session", "local admin session")
	a.checkA11y("sign-in")
	a.shot("01-sign-in")
	a.click("#local-session")
	a.waitText("customers list after sign-in", "#count", "customers")
	var stored string
	a.eval("token storage", `sessionStorage.getItem('crm.console.token') || ''`, &stored)
	if strings.Count(stored, ".") != 2 {
		t.Fatalf("session storage holds %q, want the JWT", stored)
	}
	var href string
	a.eval("location", `location.href`, &href)
	if strings.Contains(href, stored) {
		t.Fatalf("the token is in the URL %s", href)
	}

	// Create: a field error first, nothing appended; then the customer.
	const evil = `Ada <img src=x onerror=alert(1)> Lovelace`
	a.go_("#/customers/new")
	a.fill("#f-name", evil)
	a.fill("#f-email", "not-an-email")
	a.fill("#f-company", "Acme Analytical")
	a.fill("#f-tags", "vip, math")
	a.checkA11y("create")
	a.click("button[type=submit]")
	a.waitText("email error", "#f-email-err", "email")
	a.shot("02-create-field-error")
	if n := len(e.StreamMessages()); n != 0 {
		t.Fatalf("a refused create appended %d events", n)
	}
	a.fill("#f-email", "ada@example.com")
	a.click("button[type=submit]")
	a.waitText("customer page with its code", "#code", "C001")
	if got := a.text("h1"); !strings.Contains(got, evil) {
		t.Fatalf("h1 %q does not show the name as text", got)
	}
	var injected bool
	a.eval("no injected element", `!!document.querySelector('main img[src=x]')`, &injected)
	if injected {
		t.Fatal("the customer's name was parsed as HTML")
	}
	a.checkA11y("customer")
	a.shot("03-customer")
	var id string
	a.eval("customer id", `location.hash.split('/')[2]`, &id)

	// Search as you type, the matched prefixes highlighted.
	a.go_("#/customers")
	a.waitText("list", "#count", "customer")
	start := time.Now()
	a.fill("#q", "acm lov")
	a.waitText("search result", "#count", "match “acm lov”")
	t.Logf("search as you type: results %v after the last key (10 customers or fewer)", time.Since(start).Round(time.Millisecond))
	var marks []string
	a.eval("highlighted prefixes", `Array.from(document.querySelectorAll('#results mark')).map(m => m.textContent)`, &marks)
	if strings.Join(marks, ",") != "Lov,Acm" {
		t.Errorf("highlighted %q, want Lov (in the name) and Acm (in the company)", marks)
	}
	a.checkA11y("search")
	a.shot("04-search")

	// Edit with merge-patch and If-Match.
	a.go_("#/customers/" + id)
	a.click("#edit")
	a.fill("#f-company", "Acme Labs")
	a.checkA11y("edit")
	a.click("#save")
	a.waitText("saved", "#version", "2")
	if got := a.text("main"); !strings.Contains(got, "Acme Labs") {
		t.Fatalf("after save the page shows %q", got)
	}

	// A conflict: this tab opens the form at version 2, a second session
	// (another tab, signed in by pasting a token) saves first.
	a.click("#edit")
	b := h.tab()
	b.waitText("second session sign-in", "h1", "Sign in")
	b.fill("#token", mint("22222222-2222-4222-8222-222222222222", "user"))
	b.click("form button[type=submit]")
	b.waitText("second session list", "#count", "customer")
	b.go_("#/customers/" + id)
	b.click("#edit")
	b.fill("#f-phone", "+44 20 7946 0000")
	b.click("#save")
	b.waitText("second session saved", "#version", "3")
	var audit bool
	b.eval("no audit view for a user", `!!document.querySelector('#history, a[href$="/history"]')`, &audit)
	if audit {
		t.Error("a user (no crm.audit) is offered the history")
	}

	a.fill("#f-notes", "Prefers email")
	a.click("#save")
	a.waitText("conflict shown", "#conflict", "Someone else changed this customer")
	if got := a.text("#conflict"); !strings.Contains(got, "+44 20 7946 0000") || !strings.Contains(got, "Prefers email") {
		t.Fatalf("the conflict does not show both versions: %q", got)
	}
	a.checkA11y("conflict")
	a.shot("05-conflict")
	a.click("#keep-mine")
	a.waitText("saved over the current version", "#version", "4")
	var cur struct {
		Data struct{ Phone, Notes string }
	}
	e.Do("GET", "/api/v1/crm/customers/"+id, nil).JSON(t, &cur)
	if cur.Data.Phone != "+44 20 7946 0000" || cur.Data.Notes != "Prefers email" {
		t.Fatalf("after the conflict: phone %q, notes %q: a change was lost", cur.Data.Phone, cur.Data.Notes)
	}

	// The people and the interactions behind the customer: a new contact
	// added with a role (created, then linked), an activity recorded; both
	// show on the customer's page, the activity first on its timeline, the
	// link and the changes below it.
	a.waitText("contacts section", "#contacts-none", "No contacts")
	a.fill("#k-name", "Charles Babbage")
	a.fill("#k-email", "charles@example.com")
	a.fill("#k-role", "billing")
	a.click("#k-primary")
	a.click("#contact-form button[type=submit]")
	a.waitText("contact linked", "#contacts", "Charles Babbage")
	if got := a.text("#contacts"); !strings.Contains(got, "primary") || !strings.Contains(got, "billing") {
		t.Errorf("the contact shows %q, want its role and the primary mark", got)
	}
	a.fill("#a-subject", "Renewal call")
	a.fill("#a-outcome", "interested")
	a.click("#activity-form button[type=submit]")
	a.waitText("activity first on the timeline", "#timeline li:first-child", "Renewal call")
	if got := a.text("#timeline"); !strings.Contains(got, "Contact linked (billing)") || !strings.Contains(got, "Customer created") {
		t.Errorf("the timeline shows %q, want the link and the creation", got)
	}
	// A task with its due date, then marked done from the timeline.
	var shown bool
	if a.eval("the task fields of a call", `document.querySelector('#a-due').offsetParent !== null`, &shown); shown {
		t.Error("the due date shows for a call")
	}
	a.eval("choose a task", `(() => { const s = document.querySelector('#a-type'); s.value = 'task'; s.dispatchEvent(new Event('change')); return true })()`, nil)
	a.fill("#a-subject", "Send the contract")
	a.eval("set the due date", `(() => { document.querySelector('#a-due').value = '2026-12-24T10:00'; return true })()`, nil)
	a.click("#activity-form button[type=submit]")
	a.waitText("the task first on the timeline", "#timeline li:first-child", "Send the contract")
	if got := a.text("#timeline li:first-child"); !strings.Contains(got, "open, due") || !strings.Contains(got, "Mark done") {
		t.Errorf("the open task shows %q, want its due date and Mark done", got)
	}
	a.click("#timeline li:first-child button.mark-done")
	a.waitText("the task done", "#timeline li:first-child", "· done")
	var tasks struct {
		Data []struct {
			Activity struct {
				Done  bool   `json:"done"`
				DueAt string `json:"dueAt"`
			} `json:"activity"`
		}
	}
	e.Do("GET", "/api/v1/crm/customers/"+id+"/timeline?types=task", nil).JSON(t, &tasks)
	if len(tasks.Data) != 1 || !tasks.Data[0].Activity.Done || tasks.Data[0].Activity.DueAt == "" {
		t.Errorf("the API's task: %+v", tasks.Data)
	}
	var links struct{ Meta struct{ Total int } }
	e.Do("GET", "/api/v1/crm/customers/"+id+"/contacts", nil).JSON(t, &links)
	if links.Meta.Total != 1 {
		t.Errorf("the API lists %d contacts of the customer, want 1", links.Meta.Total)
	}
	a.checkA11y("contacts and timeline")
	a.shot("05b-contacts-timeline")

	// Delete, then restore.
	a.click("#delete")
	a.click("#confirm-delete")
	a.waitText("deleted", "h1", "not found")
	if r := e.Do("GET", "/api/v1/crm/customers/"+id, nil); r.Status != http.StatusNotFound {
		t.Fatalf("after delete GET is %d", r.Status)
	}
	a.checkA11y("deleted")
	a.shot("06-deleted")
	a.click("#restore")
	a.waitText("restored", "#code", "C001")
	if r := e.Do("GET", "/api/v1/crm/customers/"+id, nil); r.Status != http.StatusOK {
		t.Fatalf("after restore GET is %d", r.Status)
	}

	// History with per-field diffs, and the customer as of version 1.
	a.click("#history")
	a.waitText("history", "#history-table", "Acme Labs")
	rows := a.text("#history-table tbody")
	for _, want := range []string{"Acme Analytical", "Acme Labs", "Prefers email", "22222222-2222-4222-8222-222222222222"} {
		if !strings.Contains(rows, want) {
			t.Errorf("history lacks %q: %s", want, rows)
		}
	}
	a.waitText("as of the latest version", "#asof-view", "Acme Labs")
	a.eval("slide to version 1", `(() => { const r = document.querySelector('#asof-version'); r.value = '1'; r.dispatchEvent(new Event('input')); })()`, nil)
	a.waitText("as of version 1", "#asof-view", "Acme Analytical")
	if got := a.text("#asof-view"); strings.Contains(got, "Prefers email") {
		t.Errorf("as of version 1 shows a later change: %s", got)
	}
	a.checkA11y("history")
	a.shot("07-history-as-of")

	// Import a small CSV: the mapping, the progress to the end, the
	// rejected row.
	csv := filepath.Join(t.TempDir(), "customers.csv")
	if err := os.WriteFile(csv, []byte("Full Name,Email,Company,Fax\nGrace Hopper,grace@example.com,Navy,1\nAlan Turing,alan@example.com,Bletchley,2\nBad Row,not-an-email,Nowhere,3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.go_("#/import")
	a.run("choose the file", chromedp.WaitReady(chromedp.CSS("#import-file")), chromedp.SetUploadFiles(chromedp.CSS("#import-file"), []string{csv}))
	a.wait("columns mapped", `!!document.querySelector('#map-3')`)
	var mapped []string
	a.eval("guessed mapping", `Array.from(document.querySelectorAll('#import-mapping select')).map(s => s.value)`, &mapped)
	if strings.Join(mapped, ",") != "name,email,company,-" {
		t.Errorf("guessed mapping %q, want name,email,company,-", mapped)
	}
	a.checkA11y("import")
	a.click("#import-start")
	a.waitText("import done", "#import-state", "done")
	a.waitText("rejected rows", "#import-rejected", "email")
	if got := a.text("#import-state"); !strings.Contains(got, "2 created") || !strings.Contains(got, "1 rejected") {
		t.Errorf("import state %q, want 2 created and 1 rejected", got)
	}
	var progress struct{ Value, Max float64 }
	a.eval("progress bar", `({value: document.querySelector('#import-bar').value, max: document.querySelector('#import-bar').max})`, &progress)
	if progress.Max != 3 || progress.Value != 3 {
		t.Errorf("progress bar %v of %v, want 3 of 3", progress.Value, progress.Max)
	}
	a.checkA11y("import done")
	a.shot("08-import")
	a.go_("#/customers")
	a.waitText("imported customers listed", "#results", "Grace Hopper")

	// Merge: Alan Turing (C003) into Grace Hopper (C002), keeping Alan's
	// company by the per-field choice of the dry-run preview.
	var found struct {
		Data []struct{ CustomerID, CustomerCode string }
	}
	e.Do("GET", "/api/v1/crm/customers?sort=customerCode", nil).JSON(t, &found)
	if len(found.Data) != 3 || found.Data[1].CustomerCode != "C002" || found.Data[2].CustomerCode != "C003" {
		t.Fatalf("after the import the customers are %+v", found.Data)
	}
	grace, alan := found.Data[1].CustomerID, found.Data[2].CustomerID
	a.go_("#/customers/" + grace)
	a.click("#merge")
	a.fill("#merge-refs", "C003")
	a.click("#merge-form button[type=submit]")
	a.waitText("merge preview", "#merge-preview", "nothing is changed yet")
	before := len(e.StreamMessages())
	a.click(`input[name="pick-company"][value="` + alan + `"]`)
	a.checkA11y("merge preview")
	a.shot("09-merge-preview")
	if n := len(e.StreamMessages()); n != before {
		t.Fatalf("the preview appended %d events", n-before)
	}
	a.click("#merge-go")
	a.waitText("survivor after the merge", "#code", "C002")
	var merged struct {
		Data struct{ Name, Company, Email string }
	}
	e.Do("GET", "/api/v1/crm/customers/"+grace, nil).JSON(t, &merged)
	if merged.Data.Name != "Grace Hopper" || merged.Data.Company != "Bletchley" {
		t.Errorf("after the merge the survivor is %+v, want Grace Hopper of Bletchley", merged.Data)
	}
	if r := e.Do("GET", "/api/v1/crm/customers/"+alan, nil); r.Status != http.StatusPermanentRedirect || !strings.HasSuffix(r.Header.Get("Location"), grace) {
		t.Errorf("the absorbed customer answers %d (Location %q), want 308 to the survivor", r.Status, r.Header.Get("Location"))
	}

	// A token with only crm.view: no edit, delete, history or import.
	v := h.tab()
	v.waitText("viewer sign-in", "h1", "Sign in")
	v.fill("#token", mint("33333333-3333-4333-8333-333333333333", "viewer"))
	v.click("form button[type=submit]")
	v.waitText("viewer list", "#count", "customers")
	if got := v.text("#nav"); strings.Contains(got, "Import") || strings.Contains(got, "New customer") || strings.Contains(got, "Trash") {
		t.Errorf("a viewer's navigation offers %q", got)
	}
	v.go_("#/customers/" + id)
	v.waitText("viewer customer page", "#code", "C001")
	var buttons []string
	v.eval("viewer buttons", `Array.from(document.querySelectorAll('main button, main a.button')).map(b => b.textContent)`, &buttons)
	if len(buttons) != 0 {
		t.Errorf("a viewer's customer page offers %q", buttons)
	}
	v.waitText("read-only notice", "main", "Read-only")
	v.checkA11y("read-only customer")
	v.shot("10-read-only")

	// Phone width: the list fits without scrolling sideways.
	v.go_("#/customers")
	v.waitText("viewer list again", "#results", "Grace Hopper")
	v.waitText("merged customer gone", "#count", "2 customers")
	v.run("phone viewport", chromedp.EmulateViewport(390, 844))
	var fits bool
	v.eval("no horizontal scroll", `document.documentElement.scrollWidth <= window.innerWidth`, &fits)
	if !fits {
		t.Error("at 390 px the list scrolls sideways")
	}
	v.checkA11y("list at phone width")
	v.shot("11-list-phone")

	// Sign out forgets the token.
	a.click("#signout")
	a.waitText("signed out", "h1", "Sign in")
	a.eval("token forgotten", `sessionStorage.getItem('crm.console.token') || ''`, &stored)
	if stored != "" {
		t.Error("sign-out left the token in session storage")
	}
}
