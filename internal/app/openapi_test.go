package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"crm/internal/apptest"
	"crm/internal/auth"
	"crm/internal/console"
	"crm/internal/embedded"
	"crm/internal/events"
	"crm/internal/httpapi"
	"crm/internal/httpapi/openapi"
	"crm/internal/httpapi/openapi/openapitest"
	"crm/internal/metrics"
)

func loadSpec(t *testing.T) *openapitest.Spec {
	t.Helper()
	s, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// TestOpenAPIRoutesMatchDocument compares the API's routes with the
// document both ways. The route table is the Gin engine's own (built by
// httpapi.New with every optional part switched on), so a route added
// without documenting it fails here, and so does a documented operation
// that has no route. Then, on the running service, every documented path is
// sent every method: documented ones must reach their handler (not the
// 404/405 of the router) and answer as documented; the others must be 405
// with an Allow header listing exactly the documented methods.
func TestOpenAPIRoutesMatchDocument(t *testing.T) {
	spec := loadSpec(t)
	documented := map[string]bool{}
	for _, op := range spec.Operations() {
		documented[op.Key()] = true
	}

	h := httpapi.New(httpapi.Deps{
		Metrics:     metrics.New(events.Types()...),
		CORSOrigins: []string{"https://crm.example"},
		RateLimit:   httpapi.RateLimit{PerSecond: 10},
	})
	routes, ok := openapi.Routes(h)
	if !ok {
		t.Fatalf("httpapi.New returned a %T, not a Gin engine", h)
	}
	registered := map[string]bool{}
	for _, r := range routes {
		key := r.Method + " " + ginParam.ReplaceAllString(r.Path, "{$1}")
		registered[key] = true
		if !documented[key] {
			t.Errorf("route %s %s is not in openapi.json", r.Method, r.Path)
		}
	}
	for key := range documented {
		if !registered[key] {
			t.Errorf("openapi.json documents %s but the API has no such route", key)
		}
	}
	if len(registered) < 12 {
		t.Fatalf("only %d routes registered: %v", len(registered), routes)
	}

	// The running service.
	cfg := apptest.Config(t, t.TempDir())
	cfg.RateLimitRPS, cfg.RateLimitBurst = 0.01, 2
	e := apptest.Start(t, cfg)
	apptest.Eventually(t, 10*time.Second, "ready", func() bool { return e.Do("GET", "/readyz", nil).Status == http.StatusOK })

	concrete := func(path string) string {
		return regexp.MustCompile(`\{[^}]+\}`).ReplaceAllStringFunc(path, func(string) string { return uuid.NewString() })
	}
	// owner returns the documented template that serves method on path.
	owner := func(method, path string) (string, bool) {
		for _, op := range spec.Operations() {
			if op.Method == method && openapitest.Match(op.Path, path) {
				// Static segments win over parameters, as in the router.
				if !strings.Contains(op.Path, "{") || !documented[method+" "+path] {
					return op.Path, true
				}
			}
		}
		return "", false
	}
	paths := map[string]bool{}
	for _, op := range spec.Operations() {
		paths[op.Path] = true
	}
	for tmpl := range paths {
		path := concrete(tmpl)
		var allowed []string
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
			if _, ok := owner(m, path); ok {
				allowed = append(allowed, m)
			}
		}
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
			r := e.Do(m, path, nil, "Authorization", "")
			if own, ok := owner(m, path); ok {
				if r.Status == http.StatusMethodNotAllowed || (r.Status == http.StatusNotFound && strings.Contains(string(r.Body), "no such endpoint")) {
					t.Errorf("%s %s (documented as %s %s) does not reach a handler: %d %s", m, path, m, own, r.Status, r.Body)
					continue
				}
				if err := spec.CheckResponse(m, own, r.Status, r.Header, r.Body); err != nil {
					t.Errorf("%s %s without a token: %v", m, path, err)
				}
				continue
			}
			if r.Status != http.StatusMethodNotAllowed {
				t.Errorf("%s %s is not documented but answers %d: %s", m, path, r.Status, r.Body)
				continue
			}
			if err := spec.CheckComponentResponse("MethodNotAllowed", r.Header, r.Body); err != nil {
				t.Errorf("%s %s: %v", m, path, err)
			}
			var allow []string
			for _, a := range strings.Split(r.Header.Get("Allow"), ",") {
				allow = append(allow, strings.TrimSpace(a))
			}
			slices.Sort(allow)
			want := slices.Clone(allowed)
			slices.Sort(want)
			if !slices.Equal(allow, want) {
				t.Errorf("%s %s: Allow %v, documented methods %v", m, path, allow, want)
			}
		}
	}

	// An unknown path is the documented 404 problem.
	r := e.Do("GET", "/api/v1/crm/no-such-thing", nil)
	if r.Status != http.StatusNotFound {
		t.Errorf("unknown path: %d", r.Status)
	}
	if err := spec.CheckComponentResponse("NotFound", r.Header, r.Body); err != nil {
		t.Errorf("unknown path: %v", err)
	}

	// 429 (this service allows a burst of 2 requests, then one per 100 s).
	for i := range 3 {
		r := e.Do("GET", "/api/v1/crm/customers", nil)
		want := http.StatusOK
		if i == 2 {
			want = http.StatusTooManyRequests
		}
		if r.Status != want {
			t.Fatalf("request %d: %d, want %d", i, r.Status, want)
		}
		if err := spec.CheckResponse("GET", "/api/v1/crm/customers", r.Status, r.Header, r.Body); err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
}

// TestOpenAPIDocsServed fetches the document and the docs page from the
// running service, without a token.
func TestOpenAPIDocsServed(t *testing.T) {
	spec := loadSpec(t)
	e := apptest.StartEmbedded(t)
	r := e.Do("GET", openapi.DocumentPath, nil, "Authorization", "")
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET openapi.json: %d %q", r.Status, r.Header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	if !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(doc.OpenAPI) || len(doc.Paths) == 0 {
		t.Fatalf("openapi %q with %d paths", doc.OpenAPI, len(doc.Paths))
	}
	if err := spec.CheckResponse("GET", openapi.DocumentPath, r.Status, r.Header, r.Body); err != nil {
		t.Error(err)
	}
	if r := e.Do("GET", openapi.DocumentPath, nil, "If-None-Match", r.Header.Get("ETag")); r.Status != http.StatusNotModified {
		t.Errorf("conditional GET openapi.json: %d", r.Status)
	} else if err := spec.CheckResponse("GET", openapi.DocumentPath, r.Status, r.Header, r.Body); err != nil {
		t.Error(err)
	}

	r = e.Do("GET", openapi.DocsPath, nil, "Authorization", "")
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET docs: %d %q", r.Status, r.Header.Get("Content-Type"))
	}
	if err := spec.CheckResponse("GET", openapi.DocsPath, r.Status, r.Header, r.Body); err != nil {
		t.Error(err)
	}
	page := string(r.Body)
	for _, want := range []string{"<!doctype html>", `fetch("openapi.json"`, "<script>", "curl -sS -i -X "} {
		if !strings.Contains(page, want) {
			t.Errorf("the docs page lacks %q", want)
		}
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'sha256-") {
		t.Errorf("docs page CSP %q", csp)
	}
	// The trailing-slash spelling redirects to the page (it loads
	// openapi.json relative to its address).
	if r := e.Do("GET", openapi.DocsPath+"/", nil, "Authorization", ""); r.Status != http.StatusPermanentRedirect ||
		r.Header.Get("Location") != openapi.DocsPath {
		t.Errorf("GET docs/: %d, Location %q", r.Status, r.Header.Get("Location"))
	}
}

// contract drives requests through the running service and checks each
// response against what the document says for its operation and status.
type contract struct {
	t    *testing.T
	e    *apptest.Env
	spec *openapitest.Spec
	seen map[string]map[int]bool
}

func (k *contract) call(method, tmpl, path string, body any, want int, headers ...string) apptest.Response {
	k.t.Helper()
	r := k.e.Do(method, path, body, headers...)
	if r.Status != want {
		k.t.Errorf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	if err := k.spec.CheckResponse(method, tmpl, r.Status, r.Header, r.Body); err != nil {
		k.t.Errorf("%s %s → %d does not match openapi.json:\n%v", method, path, r.Status, err)
	}
	key := method + " " + tmpl
	if k.seen[key] == nil {
		k.seen[key] = map[int]bool{}
	}
	k.seen[key][r.Status] = true
	return r
}

func (k *contract) data(r apptest.Response) map[string]any {
	k.t.Helper()
	var env struct {
		Data map[string]any `json:"data"`
	}
	r.JSON(k.t, &env)
	return env.Data
}

// TestOpenAPIResponsesMatchDocument runs a realistic session — creates
// (with idempotency), reads, lists, searches, patches, history, asOf,
// deletes, the same for contacts and activities, links, timelines, and the
// error cases of each — and validates every response (status, content type,
// headers, body) against the document. A renamed or added response field,
// a changed header or an undocumented status fails. It also checks that
// each operation needs exactly the permission it documents.
func TestOpenAPIResponsesMatchDocument(t *testing.T) {
	spec := loadSpec(t)
	cfg := apptest.Config(t, t.TempDir())
	perms := []string{auth.PermView, auth.PermCreate, auth.PermEdit, auth.PermDelete, auth.PermAudit, auth.PermImport, auth.PermWebhooks}
	cfg.Roles = auth.DefaultRoles()
	for _, p := range perms {
		cfg.Roles["only:"+p] = []string{p}
		var others []string
		for _, q := range perms {
			if q != p {
				others = append(others, q)
			}
		}
		cfg.Roles["not:"+p] = others
	}
	cfg.WebhookAllowHTTP = true
	cfg.WebhookAllowNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	e := apptest.Start(t, cfg)
	k := &contract{t: t, e: e, spec: spec, seen: map[string]map[int]bool{}}
	bearer := func(roles ...string) string { return "Bearer " + e.TokenFor(uuid.NewString(), roles...) }
	const (
		coll    = "/api/v1/crm/customers"
		one     = coll + "/{id}"
		history = one + "/history"
		search  = coll + "/search"
	)

	// Operations.
	apptest.Eventually(t, 10*time.Second, "ready", func() bool { return e.Do("GET", "/readyz", nil).Status == http.StatusOK })
	k.call("GET", "/healthz", "/healthz", nil, 200, "Authorization", "")
	k.call("GET", "/readyz", "/readyz", nil, 200, "Authorization", "")
	k.call("GET", "/metrics", "/metrics", nil, 200, "Authorization", "")
	k.call("GET", openapi.DocumentPath, openapi.DocumentPath, nil, 200, "Authorization", "")
	k.call("GET", openapi.DocsPath, openapi.DocsPath, nil, 200, "Authorization", "")
	k.call("GET", openapi.DocsPath+"/", openapi.DocsPath+"/", nil, 308, "Authorization", "")

	// The console: its files (revalidated by ETag), who the token is, and
	// the local sign-in this service (configured key) does not offer.
	for path := range console.Files {
		r := k.call("GET", path, path, nil, 200, "Authorization", "")
		k.call("GET", path, path, nil, 304, "Authorization", "", "If-None-Match", r.Header.Get("ETag"))
	}
	k.call("GET", console.Path+"/", console.Path+"/", nil, 308, "Authorization", "")
	var who struct {
		Data struct{ Permissions []string }
	}
	k.call("GET", "/api/v1/crm/me", "/api/v1/crm/me", nil, 200).JSON(t, &who)
	if !slices.Contains(who.Data.Permissions, auth.PermEdit) {
		t.Errorf("GET /me of an admin lists %v", who.Data.Permissions)
	}
	k.call("GET", "/api/v1/crm/me", "/api/v1/crm/me?x=1", nil, 400)
	k.call("GET", "/api/v1/crm/me", "/api/v1/crm/me", nil, 401, "Authorization", "")
	var offered struct {
		Data struct{ LocalSession bool }
	}
	k.call("GET", console.Path+"/session", console.Path+"/session", nil, 200, "Authorization", "").JSON(t, &offered)
	if offered.Data.LocalSession {
		t.Error("a service with a configured key offers the local admin session")
	}
	k.call("POST", console.Path+"/session", console.Path+"/session", nil, 404, "Authorization", "")
	// The embedded default's generated key: the session is offered, to
	// this machine only.
	{
		cfg := apptest.Config(t, t.TempDir())
		cfg.SecretKey = ""
		local := &contract{t: t, e: apptest.Start(t, cfg), spec: spec, seen: k.seen}
		session := console.Path + "/session"
		local.call("GET", session, session, nil, 200, "Authorization", "").JSON(t, &offered)
		if !offered.Data.LocalSession {
			t.Error("the embedded default with a generated key does not offer the local admin session")
		}
		var started struct {
			Data struct{ Token string }
		}
		local.call("POST", session, session, nil, 201, "Authorization", "").JSON(t, &started)
		local.call("GET", "/api/v1/crm/me", "/api/v1/crm/me", nil, 200, "Authorization", "Bearer "+started.Data.Token).JSON(t, &who)
		if !slices.Contains(who.Data.Permissions, auth.PermDelete) {
			t.Errorf("the local admin session's token grants %v", who.Data.Permissions)
		}
		local.call("POST", session, session, nil, 403, "Authorization", "", "Origin", "http://evil.example")
		local.call("POST", session, session, nil, 403, "Authorization", "", "X-Forwarded-For", "203.0.113.9")
		local.call("POST", session, session, "{}", 400, "Authorization", "")
	}

	// Creates: full and minimal bodies, idempotent replay, key reuse.
	r := k.call("POST", coll, coll, seedCustomer, 201, "Idempotency-Key", "oa-key-1", "X-Request-ID", "oa-create-1")
	seed := k.data(r)
	id := seed["customerId"].(string)
	if r.Header.Get("Location") != coll+"/"+id || r.Header.Get("ETag") != `"1"` || r.Header.Get("X-Request-ID") != "oa-create-1" {
		t.Errorf("create headers: %v", r.Header)
	}
	r = k.call("POST", coll, coll, seedCustomer, 201, "Idempotency-Key", "oa-key-1")
	if r.Header.Get("Idempotent-Replayed") != "true" || k.data(r)["customerId"] != id {
		t.Errorf("replay: %v %s", r.Header, r.Body)
	}
	k.call("POST", coll, coll, `{"name":"Someone Else"}`, 422, "Idempotency-Key", "oa-key-1")
	k.call("POST", coll, coll, `{"name":"Someone Else"}`, 400, "Idempotency-Key", strings.Repeat("k", 256))
	r = k.call("POST", coll, coll, `{"name":"Jane Doe","tags":["vip"]}`, 201, "Content-Type", "application/merge-patch+json")
	jane := k.data(r)
	if jane["address"] != nil || jane["email"] != nil {
		t.Errorf("minimal customer: %s", r.Body)
	}
	janeID := jane["customerId"].(string)

	// Create errors.
	k.call("POST", coll, coll, `{"name":"","email":"not-an-email","Name":"x","customerId":"x","address":{"zip":1}}`, 400)
	k.call("POST", coll, coll, `{"name":`, 400)
	k.call("POST", coll, coll, `{"name":"x"}`, 415, "Content-Type", "text/plain")
	k.call("POST", coll, coll, `{"name":"x"}`, 415, "Content-Type", "")
	k.call("POST", coll, coll, `{"notes":"`+strings.Repeat("x", 1<<20)+`"}`, 413)

	// Batches.
	const batchPath = coll + "/batch"
	k.call("POST", batchPath, batchPath, `{"operations":[{"op":"create","data":{"name":"Batch Made"}}]}`, 200)
	k.call("POST", batchPath, batchPath, `{"atomic":true,"operations":[{"op":"create","data":{"name":"Fine"}},{"op":"delete","id":"`+uuid.NewString()+`"}]}`, 207)
	k.call("POST", batchPath, batchPath, `{"operations":[{"op":"update","id":"`+id+`","data":{"name":""}},{"op":"nope"}]}`, 207)
	k.call("POST", batchPath, batchPath, `{"operations":[]}`, 400)
	k.call("POST", batchPath, batchPath, `{"operations":[`+strings.Repeat(`{"op":"delete","id":"`+id+`"},`, 500)+`{"op":"delete","id":"`+id+`"}]}`, 413)
	k.call("POST", batchPath, batchPath, `{}`, 415, "Content-Type", "text/plain")
	k.call("POST", batchPath, batchPath, `{}`, 401, "Authorization", "")

	// Cursor paging.
	r = k.call("GET", coll, coll+"?perPage=1&sort=name", nil, 200)
	var paged struct {
		Meta struct{ Next string } `json:"meta"`
	}
	if r.JSON(t, &paged); paged.Meta.Next == "" {
		t.Fatalf("no meta.next on a first page: %s", r.Body)
	}
	k.call("GET", coll, coll+"?perPage=1&sort=name&after="+url.QueryEscape(paged.Meta.Next), nil, 200)
	k.call("GET", coll, coll+"?perPage=1&sort=-name&after="+url.QueryEscape(paged.Meta.Next), nil, 400)

	// Exports.
	const exportPath = coll + "/export"
	k.call("GET", exportPath, exportPath+"?format=csv&sort=name", nil, 200)
	k.call("GET", exportPath, exportPath+"?status=active", nil, 200)
	k.call("GET", exportPath, exportPath+"?format=xml", nil, 400)

	// Imports.
	const (
		importsPath = "/api/v1/crm/imports"
		importPath  = importsPath + "/{id}"
	)
	r = k.call("POST", importsPath, importsPath+"?map=Full%20Name:name", "Full Name,email\nImported One,one@example.com\nBad,nope\n", 202,
		"Content-Type", "text/csv", "Idempotency-Key", "oa-import")
	importID := k.data(r)["id"].(string)
	k.call("POST", importsPath, importsPath+"?map=Full%20Name:name", "Full Name,email\nImported One,one@example.com\nBad,nope\n", 200,
		"Content-Type", "text/csv", "Idempotency-Key", "oa-import")
	k.call("POST", importsPath, importsPath, "shoe\n1\n", 400, "Content-Type", "text/csv")
	k.call("POST", importsPath, importsPath, "name\nx\n", 415, "Content-Type", "application/json")
	apptest.Eventually(t, 10*time.Second, "import done", func() bool {
		return strings.Contains(string(e.Do("GET", importsPath+"/"+importID, nil).Body), `"state":"done"`)
	})
	k.call("GET", importsPath, importsPath, nil, 200)
	k.call("GET", importPath, importsPath+"/"+importID, nil, 200)
	k.call("GET", importPath, importsPath+"/"+uuid.NewString(), nil, 404)
	k.call("GET", importPath, importsPath+"/nope", nil, 400)
	k.call("GET", importPath+"/errors", importsPath+"/"+importID+"/errors", nil, 200)
	k.call("DELETE", importPath, importsPath+"/"+importID, nil, 409)
	var big strings.Builder
	big.WriteString("name\n")
	for i := range 100_000 {
		fmt.Fprintf(&big, "Big Import %d\n", i)
	}
	r = k.call("POST", importsPath, importsPath+"?dryRun=true", big.String(), 202, "Content-Type", "text/csv")
	k.call("DELETE", importPath, importsPath+"/"+k.data(r)["id"].(string), nil, 200)

	// The change feed.
	const changes = "/api/v1/crm/changes"
	r = k.call("GET", changes, changes+"?limit=2", nil, 200)
	var feed struct {
		Meta struct{ Next string } `json:"meta"`
	}
	r.JSON(t, &feed)
	k.call("GET", changes, changes+"?limit=1000&after="+feed.Meta.Next+"&types=com.a64core.crm.customer.deleted.v1&wait=10ms", nil, 200)
	k.call("GET", changes, changes+"?after=nope", nil, 400)
	k.call("GET", changes, changes, nil, 401, "Authorization", "")

	// Reads.
	r = k.call("GET", one, coll+"/"+id, nil, 200)
	etag := r.Header.Get("ETag")
	k.call("GET", one, coll+"/"+id+"?foo=1", nil, 400)
	k.call("GET", one, coll+"/not-a-uuid", nil, 400)
	k.call("GET", one, coll+"/"+strings.ToUpper(id), nil, 200) // either case
	k.call("GET", one, coll+"/"+id[:35], nil, 400)
	k.call("GET", one, coll+"/"+uuid.NewString(), nil, 404)

	// List and search.
	r = k.call("GET", coll, coll+"?page=1&perPage=2&sort=name&status=active&type=business&tag=enterprise", nil, 200)
	var page struct {
		Data []map[string]any `json:"data"`
	}
	r.JSON(t, &page)
	if len(page.Data) != 1 || page.Data[0]["customerId"] != id {
		t.Errorf("filtered list: %s", r.Body)
	}
	k.call("GET", coll, coll+"?sort=-updatedAt&createdBy=someone", nil, 200)
	k.call("GET", coll, coll+"?perPage=1000&page=0&sort=email&status=gone&q=x", nil, 400)
	k.call("GET", coll, coll+"?page=1&page=2", nil, 400)
	r = k.call("GET", search, search+"?q=acme&perPage=5", nil, 200)
	r.JSON(t, &page)
	if len(page.Data) != 1 || page.Data[0]["customerId"] != id {
		t.Errorf("search: %s", r.Body)
	}
	k.call("GET", search, search+"?q="+url.QueryEscape("(a+)+$ .*")+"&status=lead", nil, 200)
	k.call("GET", search, search, nil, 400)
	k.call("GET", search, search+"?q=acme&sort=name", nil, 400)

	// Patches.
	const patch = `{"status":"inactive","notes":null,"address":{"city":"Boston"}}`
	r = k.call("PATCH", one, coll+"/"+id, patch, 200, "If-Match", etag, "Content-Type", "application/merge-patch+json")
	if got := k.data(r); got["status"] != "inactive" || got["notes"] != nil || r.Header.Get("X-Stream-Sequence") == "" {
		t.Errorf("patch: %v %s", r.Header, r.Body)
	}
	newTag := r.Header.Get("ETag")
	r = k.call("PATCH", one, coll+"/"+id, `{}`, 200) // changes nothing
	if r.Header.Get("X-Stream-Sequence") != "" || r.Header.Get("ETag") != newTag {
		t.Errorf("no-op patch: %v", r.Header)
	}
	k.call("PATCH", one, coll+"/"+id, `{"status":"active"}`, 412, "If-Match", etag)
	k.call("PATCH", one, coll+"/"+id, `{"status":"active"}`, 412, "If-Match", "yesterday")
	k.call("PATCH", one, coll+"/"+id, `{"status":"active"}`, 415, "Content-Type", "text/plain")
	k.call("PATCH", one, coll+"/"+id, `{"name":null,"customerCode":"C9","tags":[1],"type":"robot"}`, 400)
	k.call("PATCH", one, coll+"/"+id, `{"name":"a","name":"b"}`, 400)
	k.call("PATCH", one, coll+"/"+id, `{"notes":"`+strings.Repeat("x", 1<<20)+`"}`, 413)
	k.call("PATCH", one, coll+"/"+uuid.NewString(), `{"status":"active"}`, 404)
	k.call("PATCH", one, coll+"/nope", `{"status":"active"}`, 400)

	// Audit: history and asOf.
	r = k.call("GET", history, coll+"/"+id+"/history", nil, 200)
	var h struct {
		Data []map[string]any `json:"data"`
	}
	r.JSON(t, &h)
	if len(h.Data) != 2 {
		t.Errorf("history: %s", r.Body)
	}
	k.call("GET", history, coll+"/"+id+"/history?page=2&perPage=1", nil, 200)
	k.call("GET", history, coll+"/"+id+"/history?sort=name", nil, 400)
	k.call("GET", history, coll+"/"+uuid.NewString()+"/history", nil, 404)
	k.call("GET", history, coll+"/"+id+"/history", nil, 403, "Authorization", bearer("user"))
	now := time.Now().UTC().Format(time.RFC3339Nano)
	r = k.call("GET", one, coll+"/"+id+"?asOf="+url.QueryEscape(now), nil, 200)
	if k.data(r)["status"] != "inactive" {
		t.Errorf("asOf now: %s", r.Body)
	}
	k.call("GET", one, coll+"/"+id+"?asOf=2000-01-01T00:00:00Z", nil, 404)
	k.call("GET", one, coll+"/"+id+"?asOf=yesterday", nil, 400)
	k.call("GET", one, coll+"/"+id+"?asOf="+url.QueryEscape(now), nil, 403, "Authorization", bearer("user"))

	// Authentication.
	k.call("GET", coll, coll, nil, 401, "Authorization", "")
	k.call("POST", coll, coll, `{"name":"x"}`, 401, "Authorization", "Bearer not.a.token")
	k.call("DELETE", one, coll+"/"+id, nil, 401, "Authorization", "Basic YTpi")

	// Deletes.
	k.call("DELETE", one, coll+"/"+id, nil, 412, "If-Match", etag)
	r = k.call("DELETE", one, coll+"/"+id, nil, 200, "If-Match", newTag)
	k.call("GET", one, coll+"/"+id, nil, 404)
	k.call("DELETE", one, coll+"/"+id, nil, 404)
	k.call("DELETE", one, coll+"/not-a-uuid", nil, 400)
	r = k.call("GET", history, coll+"/"+id+"/history", nil, 200)
	r.JSON(t, &h)
	if len(h.Data) != 3 || h.Data[2]["kind"] != "deleted" {
		t.Errorf("history after delete: %s", r.Body)
	}
	k.call("GET", coll, coll, nil, 200)

	// The trash and restores.
	const restore = one + "/restore"
	k.call("GET", coll, coll+"?deleted=only", nil, 200)
	k.call("GET", coll, coll+"?deleted=only&status=active", nil, 400)
	k.call("GET", coll, coll+"?deleted=only", nil, 403, "Authorization", bearer("not:"+auth.PermDelete))
	k.call("POST", restore, coll+"/"+id+"/restore", nil, 412, "If-Match", etag)
	k.call("POST", restore, coll+"/not-a-uuid/restore", nil, 400)
	k.call("POST", restore, coll+"/"+uuid.NewString()+"/restore", nil, 404)
	k.call("POST", restore, coll+"/"+id+"/restore", nil, 401, "Authorization", "")
	r = k.call("POST", restore, coll+"/"+id+"/restore", nil, 200)
	if k.data(r)["customerId"] != id {
		t.Errorf("restore: %s", r.Body)
	}
	k.call("POST", restore, coll+"/"+id+"/restore", nil, 409)
	k.call("GET", one, coll+"/"+id, nil, 200)

	// Upserts by email.
	const byEmail = coll + "/by-email/{email}"
	k.call("PUT", byEmail, coll+"/by-email/upsert@example.com", `{"name":"Upserted"}`, 201)
	k.call("PUT", byEmail, coll+"/by-email/upsert@example.com", `{"status":"active"}`, 200)
	k.call("PUT", byEmail, coll+"/by-email/upsert@example.com", `{"status":"lead"}`, 412, "If-Match", `"9"`)
	k.call("PUT", byEmail, coll+"/by-email/not-an-email", `{"name":"x"}`, 400)
	k.call("PUT", byEmail, coll+"/by-email/upsert@example.com", `{"name":"x"}`, 401, "Authorization", "")
	k.call("PUT", byEmail, coll+"/by-email/upsert@example.com", `{"name":"x"}`, 415, "Content-Type", "text/plain")

	// Clusters of possible duplicates, and the warnings of writes.
	const dups = coll + "/duplicates"
	k.call("POST", coll, coll, `{"name":"Dup One","email":"dup.one+a@gmail.com","phone":"+44 20 7946 0958"}`, 201)
	k.call("POST", coll, coll, `{"name":"Dup Two","email":"dupone@gmail.com"}`, 201) // warned
	k.call("GET", dups, dups, nil, 200)
	k.call("GET", dups, dups+"?match=email&page=1&perPage=5", nil, 200)
	k.call("GET", dups, dups+"?match=bogus", nil, 400)
	k.call("GET", dups, dups, nil, 401, "Authorization", "")

	// Upserts and look-ups by external id.
	const byExt = coll + "/by-external-id/{externalId}"
	k.call("PUT", byExt, coll+"/by-external-id/SF%2F1", `{"name":"Synced","email":"synced@example.com"}`, 201)
	k.call("PUT", byExt, coll+"/by-external-id/SF%2F1", `{"status":"active"}`, 200)
	k.call("PUT", byExt, coll+"/by-external-id/SF%2F1", `{"status":"lead"}`, 412, "If-Match", `"9"`)
	k.call("PUT", byExt, coll+"/by-external-id/SF%2F1", `{"externalId":"SF/2"}`, 400)
	k.call("PUT", byExt, coll+"/by-external-id/SF%2F1", `{"name":"x"}`, 401, "Authorization", "")
	k.call("PUT", byExt, coll+"/by-external-id/SF%2F1", `{"name":"x"}`, 415, "Content-Type", "text/plain")
	k.call("POST", coll, coll, `{"name":"Copy","externalId":"SF/1"}`, 409)
	k.call("GET", byExt, coll+"/by-external-id/SF/1", nil, 200)
	k.call("GET", byExt, coll+"/by-external-id/SF%2F404", nil, 404)
	k.call("GET", byExt, coll+"/by-external-id/SF%2F1?x=1", nil, 400)
	k.call("GET", byExt, coll+"/by-external-id/SF%2F1", nil, 401, "Authorization", "")

	// Merges and unmerges.
	const merge, unmerge = one + "/merge", one + "/unmerge"
	dup := k.data(k.call("POST", coll, coll, `{"name":"Duplicate Of Jane","email":"dup@example.com"}`, 201))["customerId"].(string)
	k.call("POST", merge, coll+"/"+id+"/merge", map[string]any{"customerIds": []string{dup}, "dryRun": true}, 200)
	k.call("POST", merge, coll+"/"+id+"/merge", `{"customerIds":[]}`, 400)
	k.call("POST", merge, coll+"/"+id+"/merge", `{"customerIds":["`+dup+`"]}`, 415, "Content-Type", "text/plain")
	k.call("POST", merge, coll+"/"+uuid.NewString()+"/merge", map[string]any{"customerIds": []string{dup}}, 404)
	k.call("POST", merge, coll+"/"+id+"/merge", map[string]any{"customerIds": []string{dup}}, 401, "Authorization", "")
	k.call("POST", merge, coll+"/"+id+"/merge", map[string]any{"customerIds": []string{dup}}, 200)
	for _, m := range []string{"GET", "DELETE"} {
		k.call(m, one, coll+"/"+dup, nil, 308)
	}
	k.call("PATCH", one, coll+"/"+dup, `{"status":"active"}`, 308)
	k.call("POST", restore, coll+"/"+dup+"/restore", nil, 308)
	k.call("POST", merge, coll+"/"+dup+"/merge", map[string]any{"customerIds": []string{id}}, 308)
	k.call("POST", unmerge, coll+"/"+id+"/unmerge", map[string]any{"customerId": dup}, 200)
	k.call("POST", unmerge, coll+"/"+id+"/unmerge", map[string]any{"customerId": dup}, 400)
	k.call("POST", unmerge, coll+"/"+uuid.NewString()+"/unmerge", map[string]any{"customerId": dup}, 404)

	// Contacts: creates (with idempotency), reads, cursor pages, patches,
	// deletes, and the error cases of each.
	const contacts = "/api/v1/crm/contacts"
	const contactOne = contacts + "/{id}"
	const zoe = `{"name":"Zoë Müller","email":"Zoe@Example.com","phone":"+49 30 1234","title":"Head of Billing","notes":"Prefers email.\nNever on Fridays.","tags":["billing","billing","emea"]}`
	r = k.call("POST", contacts, contacts, zoe, 201, "Idempotency-Key", "oa-contact-1", "X-Request-ID", "oa-contact-create-1")
	cid := k.data(r)["contactId"].(string)
	if r.Header.Get("Location") != contacts+"/"+cid || r.Header.Get("ETag") != `"1"` || r.Header.Get("X-Request-ID") != "oa-contact-create-1" ||
		r.Header.Get("X-Read-Model") == "" {
		t.Errorf("contact create headers: %v", r.Header)
	}
	r = k.call("POST", contacts, contacts, zoe, 201, "Idempotency-Key", "oa-contact-1")
	if r.Header.Get("Idempotent-Replayed") != "true" || k.data(r)["contactId"] != cid {
		t.Errorf("contact replay: %v %s", r.Header, r.Body)
	}
	k.call("POST", contacts, contacts, `{"name":"Someone Else"}`, 422, "Idempotency-Key", "oa-contact-1")
	k.call("POST", contacts, contacts, `{"name":"Someone Else"}`, 400, "Idempotency-Key", strings.Repeat("k", 256))
	r = k.call("POST", contacts, contacts, `{"name":"Ann Lee","tags":["billing"]}`, 201, "Content-Type", "application/merge-patch+json")
	ann := k.data(r)
	if ann["email"] != nil || ann["title"] != nil || ann["notes"] != nil {
		t.Errorf("minimal contact: %s", r.Body)
	}
	k.call("POST", contacts, contacts, `{"name":"","email":"not-an-email","phone":"call me","contactId":"x","company":"Acme","tags":[""]}`, 400)
	k.call("POST", contacts, contacts, `{"email":"a@example.com"}`, 400)
	k.call("POST", contacts, contacts, `{"name":`, 400)
	k.call("POST", contacts, contacts, `{"name":"x"}`, 415, "Content-Type", "text/plain")
	k.call("POST", contacts, contacts, `{"notes":"`+strings.Repeat("x", 1<<20)+`"}`, 413)
	k.call("POST", contacts, contacts, `{"name":"x"}`, 401, "Authorization", "")

	// Contact reads.
	r = k.call("GET", contactOne, contacts+"/"+cid, nil, 200)
	cetag := r.Header.Get("ETag")
	k.call("GET", contactOne, contacts+"/"+strings.ToUpper(cid), nil, 200) // either case
	k.call("GET", contactOne, contacts+"/"+cid+"?since=2026-01-01T00:00:00Z", nil, 400)
	k.call("GET", contactOne, contacts+"/C001", nil, 400)
	k.call("GET", contactOne, contacts+"/"+uuid.NewString(), nil, 404)
	k.call("GET", contactOne, contacts+"/"+cid, nil, 401, "Authorization", "")

	// Contact lists: filters, sorts, cursor pages.
	type contactPage struct {
		Data []map[string]any `json:"data"`
		Meta struct {
			Total int64  `json:"total"`
			Next  string `json:"next"`
		} `json:"meta"`
	}
	readPage := func(r apptest.Response) (p contactPage) {
		r.JSON(t, &p)
		return p
	}
	var cpage contactPage
	r = k.call("GET", contacts, contacts+"?perPage=1&sort=name", nil, 200)
	if cpage = readPage(r); len(cpage.Data) != 1 || cpage.Data[0]["contactId"] != ann["contactId"] || cpage.Meta.Total != 2 || cpage.Meta.Next == "" {
		t.Fatalf("first contact page: %s", r.Body)
	}
	r = k.call("GET", contacts, contacts+"?perPage=1&sort=name&after="+url.QueryEscape(cpage.Meta.Next), nil, 200)
	if cpage = readPage(r); len(cpage.Data) != 1 || cpage.Data[0]["contactId"] != cid || cpage.Meta.Next != "" {
		t.Errorf("last contact page: %s", r.Body)
	}
	r = k.call("GET", contacts, contacts+"?tag=billing&email="+url.QueryEscape(" zoe@EXAMPLE.com ")+"&sort=-updatedAt", nil, 200)
	if cpage = readPage(r); len(cpage.Data) != 1 || cpage.Data[0]["contactId"] != cid {
		t.Errorf("contacts by email: %s", r.Body)
	}
	k.call("GET", contacts, contacts+"?sort=createdAt&tag=emea&perPage=100", nil, 200)
	k.call("GET", contacts, contacts+"?page=2", nil, 400)
	k.call("GET", contacts, contacts+"?perPage=101&sort=customerCode&status=active", nil, 400)
	k.call("GET", contacts, contacts+"?tag=a&tag=b", nil, 400)
	k.call("GET", contacts, contacts+"?after=abc.def", nil, 400)
	r = k.call("GET", contacts, contacts+"?perPage=1&sort=name", nil, 200)
	cpage = readPage(r)
	k.call("GET", contacts, contacts+"?perPage=1&sort=-name&after="+url.QueryEscape(cpage.Meta.Next), nil, 400) // another order
	k.call("GET", contacts, contacts, nil, 401, "Authorization", "")
	// Contact search.
	const contactSearch = contacts + "/search"
	r = k.call("GET", contactSearch, contactSearch+"?q=zoe&perPage=1", nil, 200)
	if cpage = readPage(r); len(cpage.Data) != 1 || cpage.Data[0]["contactId"] != cid {
		t.Errorf("contact search: %s", r.Body)
	}
	k.call("GET", contactSearch, contactSearch+"?q=a&tag=billing&perPage=1", nil, 200)
	k.call("GET", contactSearch, contactSearch+"?q=zoe&sort=name", nil, 400)
	k.call("GET", contactSearch, contactSearch, nil, 400)
	k.call("GET", contactSearch, contactSearch+"?q=zoe", nil, 401, "Authorization", "")

	// Contact patches.
	r = k.call("PATCH", contactOne, contacts+"/"+cid, `{"title":"CFO","phone":null}`, 200, "If-Match", cetag, "Content-Type", "application/merge-patch+json")
	if got := k.data(r); got["title"] != "CFO" || got["phone"] != nil || got["email"] != "Zoe@Example.com" || r.Header.Get("X-Stream-Sequence") == "" {
		t.Errorf("contact patch: %v %s", r.Header, r.Body)
	}
	cnewTag := r.Header.Get("ETag")
	r = k.call("PATCH", contactOne, contacts+"/"+cid, `{"title":"CFO"}`, 200) // changes nothing
	if r.Header.Get("X-Stream-Sequence") != "" || r.Header.Get("ETag") != cnewTag {
		t.Errorf("no-op contact patch: %v", r.Header)
	}
	k.call("PATCH", contactOne, contacts+"/"+cid, `{"title":"CEO"}`, 412, "If-Match", cetag)
	k.call("PATCH", contactOne, contacts+"/"+cid, `{"title":"CEO"}`, 412, "If-Match", "yesterday")
	k.call("PATCH", contactOne, contacts+"/"+cid, `{"title":"CEO"}`, 415, "Content-Type", "text/plain")
	k.call("PATCH", contactOne, contacts+"/"+cid, `{"name":null,"status":"active","createdAt":"x","tags":[1]}`, 400)
	k.call("PATCH", contactOne, contacts+"/"+cid, `{"title":"a","title":"b"}`, 400)
	k.call("PATCH", contactOne, contacts+"/"+cid, `{"notes":"`+strings.Repeat("x", 1<<20)+`"}`, 413)
	k.call("PATCH", contactOne, contacts+"/"+uuid.NewString(), `{"title":"CEO"}`, 404)
	k.call("PATCH", contactOne, contacts+"/nope", `{"title":"CEO"}`, 400)
	k.call("PATCH", contactOne, contacts+"/"+cid, `{"title":"CEO"}`, 401, "Authorization", "")

	// Contact deletes.
	k.call("DELETE", contactOne, contacts+"/"+cid, nil, 412, "If-Match", cetag)
	k.call("DELETE", contactOne, contacts+"/"+cid, nil, 401, "Authorization", "")
	r = k.call("DELETE", contactOne, contacts+"/"+cid, nil, 200, "If-Match", cnewTag)
	if r.Header.Get("ETag") != `"3"` || r.Header.Get("X-Stream-Sequence") == "" {
		t.Errorf("contact delete headers: %v", r.Header)
	}
	k.call("GET", contactOne, contacts+"/"+cid, nil, 404)
	k.call("DELETE", contactOne, contacts+"/"+cid, nil, 404)
	// Its history and its state as of before the deletion.
	const contactHistory = contactOne + "/history"
	r = k.call("GET", contactHistory, contacts+"/"+cid+"/history", nil, 200)
	var ch struct {
		Data []struct{ Time, Kind string } `json:"data"`
	}
	if r.JSON(t, &ch); len(ch.Data) != 3 || ch.Data[2].Kind != "deleted" {
		t.Errorf("contact history: %s", r.Body)
	} else {
		k.call("GET", contactOne, contacts+"/"+cid+"?asOf="+url.QueryEscape(ch.Data[1].Time), nil, 200)
	}
	k.call("GET", contactHistory, contacts+"/"+cid+"/history?perPage=0", nil, 400)
	k.call("GET", contactHistory, contacts+"/"+uuid.NewString()+"/history", nil, 404)
	k.call("GET", contactHistory, contacts+"/"+cid+"/history", nil, 401, "Authorization", "")
	k.call("GET", contactOne, contacts+"/"+cid+"?asOf=never", nil, 400)
	k.call("DELETE", contactOne, contacts+"/not-a-uuid", nil, 400)
	r = k.call("GET", contacts, contacts, nil, 200)
	if cpage = readPage(r); cpage.Meta.Total != 1 || len(cpage.Data) != 1 || cpage.Data[0]["contactId"] != ann["contactId"] {
		t.Errorf("contacts after the delete: %s", r.Body)
	}

	// Links between customers and contacts: created (201), changed and
	// unchanged (200), listed from both sides, unlinked, and the error
	// cases of each (the limit of 200 links per contact included).
	const (
		customerContacts = one + "/contacts"
		link             = customerContacts + "/{contactId}"
		contactCustomers = contactOne + "/customers"
	)
	linkPath := func(cu, kid string) string { return coll + "/" + cu + "/contacts/" + kid }
	annID := ann["contactId"].(string)
	bob := k.data(k.call("POST", contacts, contacts, `{"name":"Bob Stone"}`, 201))["contactId"].(string)
	const billing = `{"role":"billing","primary":true,"from":"2026-01-01"}`
	r = k.call("PUT", link, linkPath(janeID, annID), billing, 201, "X-Request-ID", "oa-link-1")
	if got := k.data(r); r.Header.Get("Location") != linkPath(janeID, annID) || r.Header.Get("X-Stream-Sequence") == "" ||
		r.Header.Get("X-Read-Model") == "" || got["role"] != "billing" || got["primary"] != true || got["to"] != nil ||
		got["contact"].(map[string]any)["contactId"] != annID {
		t.Errorf("link: %v %s", r.Header, r.Body)
	}
	r = k.call("PUT", link, linkPath(janeID, annID), billing, 200) // changes nothing
	if r.Header.Get("X-Stream-Sequence") != "" || r.Header.Get("Location") != "" {
		t.Errorf("unchanged link: %v", r.Header)
	}
	r = k.call("PUT", link, linkPath(janeID, annID), `{"role":"billing","primary":true,"from":"2026-01-01","to":"2026-12-31"}`, 200,
		"Content-Type", "application/merge-patch+json")
	if k.data(r)["to"] != "2026-12-31" || r.Header.Get("X-Stream-Sequence") == "" {
		t.Errorf("changed link: %v %s", r.Header, r.Body)
	}
	k.call("PUT", link, linkPath(janeID, bob), nil, 201) // no body: a link without attributes
	k.call("PUT", link, linkPath(id, annID), `{}`, 201)
	k.call("PUT", link, linkPath(janeID, annID), `{"from":"01/02/2026","to":"2026-02-30","primary":"yes"}`, 400)
	k.call("PUT", link, linkPath(janeID, annID), `{"from":"2026-05-01","to":"2026-04-30"}`, 400)
	k.call("PUT", link, linkPath(janeID, annID), `{"role":"`+strings.Repeat("r", 101)+`","weight":3,"contactId":"x"}`, 400)
	k.call("PUT", link, linkPath(janeID, annID), `["billing"]`, 400)
	k.call("PUT", link, linkPath(janeID, "nope"), nil, 400)
	k.call("PUT", link, linkPath("C001", annID), nil, 400)
	k.call("PUT", link, linkPath(janeID, annID), billing, 415, "Content-Type", "text/plain")
	k.call("PUT", link, linkPath(janeID, annID), `{"role":"`+strings.Repeat("r", 1<<20)+`"}`, 413)
	k.call("PUT", link, linkPath(janeID, uuid.NewString()), nil, 404)
	k.call("PUT", link, linkPath(janeID, cid), nil, 404) // a deleted contact
	k.call("PUT", link, linkPath(uuid.NewString(), annID), nil, 404)
	k.call("PUT", link, linkPath(janeID, annID), billing, 401, "Authorization", "")

	// Both sides list their links.
	var links struct {
		Data []map[string]any    `json:"data"`
		Meta struct{ Total int } `json:"meta"`
	}
	k.call("GET", customerContacts, coll+"/"+janeID+"/contacts", nil, 200).JSON(t, &links)
	if links.Meta.Total != 2 || len(links.Data) != 2 || links.Data[0]["contactId"] != annID || links.Data[0]["primary"] != true ||
		links.Data[1]["contactId"] != bob {
		t.Errorf("jane's contacts: %+v", links)
	}
	k.call("GET", customerContacts, coll+"/"+strings.ToUpper(janeID)+"/contacts", nil, 200) // either case
	k.call("GET", customerContacts, coll+"/"+janeID+"/contacts?page=2", nil, 400)
	k.call("GET", customerContacts, coll+"/nope/contacts", nil, 400)
	k.call("GET", customerContacts, coll+"/"+uuid.NewString()+"/contacts", nil, 404)
	k.call("GET", customerContacts, coll+"/"+janeID+"/contacts", nil, 401, "Authorization", "")
	k.call("GET", contactCustomers, contacts+"/"+annID+"/customers", nil, 200).JSON(t, &links)
	if links.Meta.Total != 2 || len(links.Data) != 2 || links.Data[0]["customer"] == nil {
		t.Errorf("ann's customers: %+v", links)
	}
	k.call("GET", contactCustomers, contacts+"/"+annID+"/customers?sort=name", nil, 400)
	k.call("GET", contactCustomers, contacts+"/C001/customers", nil, 400)
	k.call("GET", contactCustomers, contacts+"/"+cid+"/customers", nil, 404) // a deleted contact
	k.call("GET", contactCustomers, contacts+"/"+annID+"/customers", nil, 401, "Authorization", "")

	// The customer's history shows a link as the change of contacts.<id>.
	r = k.call("GET", history, coll+"/"+janeID+"/history", nil, 200)
	if !strings.Contains(string(r.Body), `"field":"contacts.`+annID+`"`) || !strings.Contains(string(r.Body), `"kind":"contactlinked"`) {
		t.Errorf("jane's history shows no link: %s", r.Body)
	}

	// A customer merged into another answers 308 at the survivor's.
	merged := k.data(k.call("POST", coll, coll, `{"name":"Merged Away"}`, 201))["customerId"].(string)
	k.call("POST", merge, coll+"/"+id+"/merge", map[string]any{"customerIds": []string{merged}}, 200)
	k.call("GET", customerContacts, coll+"/"+merged+"/contacts", nil, 308)
	k.call("PUT", link, linkPath(merged, bob), nil, 308)
	k.call("DELETE", link, linkPath(merged, bob), nil, 308)

	// Unlinks.
	r = k.call("DELETE", link, linkPath(janeID, bob), nil, 200)
	if r.Header.Get("X-Stream-Sequence") == "" {
		t.Errorf("unlink headers: %v", r.Header)
	}
	k.call("DELETE", link, linkPath(janeID, bob), nil, 404) // not linked (any more)
	k.call("DELETE", link, linkPath(uuid.NewString(), bob), nil, 404)
	k.call("DELETE", link, linkPath(janeID, "nope"), nil, 400)
	k.call("DELETE", link, linkPath(janeID, bob), nil, 401, "Authorization", "")

	// A contact has at most 200 customers: Bob gets 200, the 201st is 409.
	var ops []string
	for i := range 200 {
		ops = append(ops, fmt.Sprintf(`{"op":"create","data":{"name":"Link Limit %d"}}`, i))
	}
	var made struct {
		Data []struct{ CustomerID string } `json:"data"`
	}
	k.call("POST", batchPath, batchPath, `{"atomic":true,"operations":[`+strings.Join(ops, ",")+`]}`, 200).JSON(t, &made)
	if len(made.Data) != 200 {
		t.Fatalf("batch of 200 creates: %d results", len(made.Data))
	}
	for _, m := range made.Data {
		if r := e.Do("PUT", linkPath(m.CustomerID, bob), nil); r.Status != http.StatusCreated {
			t.Fatalf("link bob to %s: %d %s", m.CustomerID, r.Status, r.Body)
		}
	}
	k.call("PUT", link, linkPath(janeID, bob), nil, 409)
	k.call("PUT", link, linkPath(made.Data[0].CustomerID, bob), `{"role":"still fine"}`, 200) // a change is no new link

	// Activities and the timeline: recorded for a customer (with
	// idempotency), read, patched (a call becoming a task), deleted, the
	// customer's timeline filtered and paged by cursor, and the error cases
	// of each.
	const (
		customerActivities = one + "/activities"
		activities         = "/api/v1/crm/activities"
		activityOne        = activities + "/{id}"
		timeline           = one + "/timeline"
	)
	activitiesOf := func(cu string) string { return coll + "/" + cu + "/activities" }
	timelineOf := func(cu string) string { return coll + "/" + cu + "/timeline" }
	const aNote = `{"type":"note","occurredAt":"2025-01-21T10:00:00Z"}`
	callBody := `{"type":"call","occurredAt":"2025-01-20T09:15:00+01:00","subject":"Renewal","body":"Talked about the renewal.\nWants a quote by Friday.","contactIds":["` +
		annID + `","` + annID + `"],"outcome":"interested"}`
	r = k.call("POST", customerActivities, activitiesOf(janeID), callBody, 201, "Idempotency-Key", "oa-activity-1", "X-Request-ID", "oa-activity-create-1")
	act := k.data(r)
	aid, _ := act["activityId"].(string)
	if r.Header.Get("Location") != activities+"/"+aid || r.Header.Get("ETag") != `"1"` || r.Header.Get("X-Request-ID") != "oa-activity-create-1" ||
		r.Header.Get("X-Stream-Sequence") == "" || r.Header.Get("X-Read-Model") == "" || act["customerId"] != janeID ||
		act["occurredAt"] != "2025-01-20T08:15:00.000Z" || fmt.Sprint(act["contactIds"]) != "["+annID+"]" || act["dueAt"] != nil || act["done"] != nil {
		t.Errorf("activity create: %v %s", r.Header, r.Body)
	}
	r = k.call("POST", customerActivities, activitiesOf(janeID), callBody, 201, "Idempotency-Key", "oa-activity-1")
	if r.Header.Get("Idempotent-Replayed") != "true" || k.data(r)["activityId"] != aid {
		t.Errorf("activity replay: %v %s", r.Header, r.Body)
	}
	k.call("POST", customerActivities, activitiesOf(janeID), aNote, 422, "Idempotency-Key", "oa-activity-1")
	k.call("POST", customerActivities, activitiesOf(id), callBody, 422, "Idempotency-Key", "oa-activity-1") // another customer
	k.call("POST", customerActivities, activitiesOf(janeID), aNote, 400, "Idempotency-Key", strings.Repeat("k", 256))
	r = k.call("POST", customerActivities, activitiesOf(janeID), `{"type":"task","occurredAt":"2025-01-24T09:30:00Z","subject":"Send the quote","dueAt":"2025-01-31T12:00:00Z"}`,
		201, "Content-Type", "application/merge-patch+json")
	task := k.data(r)
	taskID, _ := task["activityId"].(string)
	if task["done"] != false || task["dueAt"] != "2025-01-31T12:00:00.000Z" || task["body"] != nil || fmt.Sprint(task["contactIds"]) != "[]" {
		t.Errorf("task: %s", r.Body)
	}
	k.call("POST", customerActivities, activitiesOf(janeID), `{"type":"fax","occurredAt":"yesterday","subject":"`+strings.Repeat("s", 201)+
		`","contactIds":["ann"],"done":true,"customerId":"x","priority":1}`, 400)
	k.call("POST", customerActivities, activitiesOf(janeID), `{"type":"call","occurredAt":"2025-01-20T08:00:00Z","dueAt":"2025-01-21T08:00:00Z"}`, 400)
	k.call("POST", customerActivities, activitiesOf(janeID), `{"type":"call","occurredAt":"2025-01-20T08:00:00Z","contactIds":["`+cid+`"]}`, 400) // a deleted contact
	k.call("POST", customerActivities, activitiesOf(janeID), `{"type":"note","occurredAt":"2025-01-20T08:00:00Z","body":"`+strings.Repeat("b", 64<<10+1)+`"}`, 400)
	k.call("POST", customerActivities, activitiesOf(janeID), `{"occurredAt":"2025-01-20T08:00:00Z"}`, 400)
	k.call("POST", customerActivities, activitiesOf(janeID), `{"type":`, 400)
	k.call("POST", customerActivities, activitiesOf("C001"), aNote, 400)
	k.call("POST", customerActivities, activitiesOf(uuid.NewString()), aNote, 404)
	k.call("POST", customerActivities, activitiesOf(merged), aNote, 308)
	k.call("POST", customerActivities, activitiesOf(janeID), aNote, 415, "Content-Type", "text/plain")
	k.call("POST", customerActivities, activitiesOf(janeID), `{"body":"`+strings.Repeat("x", 1<<20)+`"}`, 413)
	k.call("POST", customerActivities, activitiesOf(janeID), aNote, 401, "Authorization", "")

	// Activity reads.
	r = k.call("GET", activityOne, activities+"/"+aid, nil, 200)
	aetag := r.Header.Get("ETag")
	k.call("GET", activityOne, activities+"/"+strings.ToUpper(aid), nil, 200) // either case
	k.call("GET", activityOne, activities+"/"+aid+"?asOf=2026-01-01T00:00:00Z", nil, 400)
	k.call("GET", activityOne, activities+"/nope", nil, 400)
	k.call("GET", activityOne, activities+"/"+uuid.NewString(), nil, 404)
	k.call("GET", activityOne, activities+"/"+aid, nil, 401, "Authorization", "")

	// Activity patches.
	r = k.call("PATCH", activityOne, activities+"/"+aid, `{"type":"task","dueAt":"2025-01-31T12:00:00Z","outcome":null}`, 200,
		"If-Match", aetag, "Content-Type", "application/merge-patch+json")
	if got := k.data(r); got["type"] != "task" || got["done"] != false || got["outcome"] != nil || got["subject"] != "Renewal" ||
		r.Header.Get("ETag") != `"2"` || r.Header.Get("X-Stream-Sequence") == "" {
		t.Errorf("activity patch: %v %s", r.Header, r.Body)
	}
	r = k.call("PATCH", activityOne, activities+"/"+aid, `{"type":"task"}`, 200) // changes nothing
	if r.Header.Get("X-Stream-Sequence") != "" || r.Header.Get("ETag") != `"2"` {
		t.Errorf("no-op activity patch: %v", r.Header)
	}
	k.call("PATCH", activityOne, activities+"/"+aid, `{"done":true}`, 412, "If-Match", aetag)
	k.call("PATCH", activityOne, activities+"/"+aid, `{"done":true}`, 412, "If-Match", "yesterday")
	k.call("PATCH", activityOne, activities+"/"+aid, `{"done":true}`, 415, "Content-Type", "text/plain")
	k.call("PATCH", activityOne, activities+"/"+aid, `{"type":null,"occurredAt":null,"customerId":"`+id+`","contactIds":[1]}`, 400)
	k.call("PATCH", activityOne, activities+"/"+aid, `{"type":"note","done":true}`, 400)
	k.call("PATCH", activityOne, activities+"/"+aid, `{"subject":"a","subject":"b"}`, 400)
	k.call("PATCH", activityOne, activities+"/"+aid, `{"body":"`+strings.Repeat("x", 1<<20)+`"}`, 413)
	k.call("PATCH", activityOne, activities+"/"+uuid.NewString(), `{"done":true}`, 404)
	k.call("PATCH", activityOne, activities+"/nope", `{"done":true}`, 400)
	k.call("PATCH", activityOne, activities+"/"+aid, `{"done":true}`, 401, "Authorization", "")

	// The timeline: Jane's events (now) before her activities (of 2025),
	// filtered by type, paged by cursor.
	type timelinePage struct {
		Data []struct {
			Kind     string         `json:"kind"`
			Activity map[string]any `json:"activity"`
			Event    map[string]any `json:"event"`
		} `json:"data"`
		Meta struct{ Next string } `json:"meta"`
	}
	readTimeline := func(r apptest.Response) (p timelinePage) {
		r.JSON(t, &p)
		return p
	}
	tl := readTimeline(k.call("GET", timeline, timelineOf(janeID), nil, 200))
	if n := len(tl.Data); n < 4 || tl.Data[n-1].Activity["activityId"] != aid || tl.Data[n-2].Activity["activityId"] != taskID ||
		tl.Data[n-3].Kind != "created" || tl.Data[0].Kind != "contactunlinked" || tl.Data[0].Event["data"] == nil {
		t.Errorf("jane's timeline: %+v", tl.Data)
	}
	tl = readTimeline(k.call("GET", timeline, timelineOf(janeID)+"?types=task,call&perPage=1", nil, 200))
	if len(tl.Data) != 1 || tl.Data[0].Activity["activityId"] != taskID || tl.Meta.Next == "" {
		t.Fatalf("first timeline page: %+v", tl)
	}
	next := tl.Meta.Next
	tl = readTimeline(k.call("GET", timeline, timelineOf(janeID)+"?types=call,task&perPage=100&after="+url.QueryEscape(next), nil, 200))
	if len(tl.Data) != 1 || tl.Data[0].Activity["activityId"] != aid || tl.Meta.Next != "" {
		t.Errorf("last timeline page: %+v", tl)
	}
	k.call("GET", timeline, timelineOf(strings.ToUpper(janeID))+"?types=contactlinked,contactunlinked", nil, 200) // either case
	k.call("GET", timeline, timelineOf(janeID)+"?types=note&after="+url.QueryEscape(next), nil, 400)              // other types
	k.call("GET", timeline, timelineOf(id)+"?types=call,task&after="+url.QueryEscape(next), nil, 400)             // another customer
	k.call("GET", timeline, timelineOf(janeID)+"?types=call,fax&perPage=101&page=2", nil, 400)
	k.call("GET", timeline, timelineOf(janeID)+"?perPage=1&perPage=2", nil, 400)
	k.call("GET", timeline, timelineOf(janeID)+"?after=abc.def", nil, 400)
	k.call("GET", timeline, timelineOf("nope"), nil, 400)
	k.call("GET", timeline, timelineOf(uuid.NewString()), nil, 404)
	k.call("GET", timeline, timelineOf(merged), nil, 308)
	k.call("GET", timeline, timelineOf(janeID), nil, 401, "Authorization", "")

	// Activity deletes.
	k.call("DELETE", activityOne, activities+"/"+taskID, nil, 412, "If-Match", `"9"`)
	k.call("DELETE", activityOne, activities+"/"+taskID, nil, 401, "Authorization", "")
	r = k.call("DELETE", activityOne, activities+"/"+taskID, nil, 200, "If-Match", `"1"`)
	if r.Header.Get("ETag") != `"2"` || r.Header.Get("X-Stream-Sequence") == "" || r.Header.Get("X-Read-Model") == "" {
		t.Errorf("activity delete headers: %v", r.Header)
	}
	k.call("GET", activityOne, activities+"/"+taskID, nil, 404)
	k.call("DELETE", activityOne, activities+"/"+taskID, nil, 404)
	k.call("DELETE", activityOne, activities+"/not-a-uuid", nil, 400)
	tl = readTimeline(k.call("GET", timeline, timelineOf(janeID)+"?types=task", nil, 200))
	if len(tl.Data) != 1 || tl.Data[0].Activity["activityId"] != aid {
		t.Errorf("timeline after the delete: %+v", tl.Data)
	}
	// The change feed with the contacts' and activities' events.
	k.call("GET", changes, changes+"?aggregates=customers,contacts,activities&limit=1000", nil, 200)
	k.call("GET", changes, changes+"?aggregates=people", nil, 400)

	// Webhooks, against a local receiver.
	const hooks = "/api/v1/crm/webhooks"
	const hook = hooks + "/{id}"
	rc := newReceiver(t)
	k.call("POST", hooks, hooks, `{"url":"http://10.0.0.1/hooks","types":["*.customer.created.*"]}`, 400)
	sub := k.data(k.call("POST", hooks, hooks, `{"url":"`+rc.srv.URL+`","description":"contract"}`, 201))
	hid := sub["id"].(string)
	k.call("POST", hooks, hooks, `{"url":"https://203.0.114.9/hooks","concurrency":0}`, 400)
	k.call("POST", hooks, hooks, `{"url":"x"}`, 415, "Content-Type", "text/plain")
	k.call("POST", hooks, hooks, `{"description":"`+strings.Repeat("x", 1<<20)+`"}`, 413)
	k.call("GET", hooks, hooks, nil, 200)
	k.call("GET", hooks, hooks+"?x=1", nil, 400)
	r = k.call("GET", hook, hooks+"/"+hid, nil, 200)
	hetag := r.Header.Get("ETag")
	k.call("GET", hook, hooks+"/"+uuid.NewString(), nil, 404)
	k.call("GET", hook, hooks+"/nope", nil, 400)
	k.call("PATCH", hook, hooks+"/"+hid, `{"enabled":false,"types":null}`, 200, "If-Match", hetag)
	k.call("PATCH", hook, hooks+"/"+hid, `{"enabled":true}`, 412, "If-Match", hetag)
	k.call("PATCH", hook, hooks+"/"+hid, `{"url":"https://10.0.0.1/x"}`, 400)
	k.call("PATCH", hook, hooks+"/"+uuid.NewString(), `{"enabled":true}`, 404)
	k.call("POST", hook+"/rotate-secret", hooks+"/"+hid+"/rotate-secret", `{"gracePeriodSeconds":60}`, 200)
	k.call("POST", hook+"/rotate-secret", hooks+"/"+hid+"/rotate-secret", nil, 200)
	k.call("POST", hook+"/rotate-secret", hooks+"/"+hid+"/rotate-secret", `{"gracePeriodSeconds":"soon"}`, 400)
	k.call("POST", hook+"/replay", hooks+"/"+hid+"/replay", `{"after":"beginning"}`, 202)
	k.call("POST", hook+"/replay", hooks+"/"+hid+"/replay", `{"after":"tomorrow"}`, 400)
	k.call("POST", hook+"/replay", hooks+"/"+uuid.NewString()+"/replay", `{"after":"beginning"}`, 404)
	k.call("POST", hook+"/ping", hooks+"/"+hid+"/ping", nil, 200)
	k.call("POST", hook+"/ping", hooks+"/"+uuid.NewString()+"/ping", nil, 404)
	k.call("GET", hook+"/deliveries", hooks+"/"+hid+"/deliveries?limit=10", nil, 200)
	k.call("GET", hook+"/deliveries", hooks+"/"+hid+"/deliveries?limit=0", nil, 400)
	k.call("GET", hook+"/deliveries", hooks+"/"+uuid.NewString()+"/deliveries", nil, 404)
	k.call("DELETE", hook, hooks+"/"+hid, nil, 412, "If-Match", hetag)
	k.call("DELETE", hook, hooks+"/"+hid, nil, 200)
	k.call("DELETE", hook, hooks+"/"+hid, nil, 404)

	// Permissions: each authenticated operation needs exactly the one it
	// documents (403 without it, past authorisation with only it).
	for _, op := range spec.Operations() {
		sec, _ := op.Op["security"].([]any)
		if len(sec) == 0 {
			continue
		}
		var needed []string
		for _, p := range sec[0].(map[string]any)["bearerAuth"].([]any) {
			needed = append(needed, p.(string))
		}
		path := strings.ReplaceAll(op.Path, "{id}", janeID)
		if op.Method == "DELETE" || strings.HasSuffix(op.Path, "/merge") || strings.HasSuffix(op.Path, "/unmerge") {
			path = strings.ReplaceAll(op.Path, "{id}", uuid.NewString()) // keep Jane
		}
		for _, perm := range needed {
			r := k.call(op.Method, op.Path, path, nil, 403, "Authorization", bearer("not:"+perm))
			if !strings.Contains(string(r.Body), perm) {
				t.Errorf("%s without %s: %s", op.Key(), perm, r.Body)
			}
		}
		var roles []string
		for _, perm := range needed {
			roles = append(roles, "only:"+perm)
		}
		r := k.e.Do(op.Method, path, nil, "Authorization", bearer(roles...))
		if r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden {
			t.Errorf("%s with only %v: %d %s", op.Key(), needed, r.Status, r.Body)
		}
		if err := spec.CheckResponse(op.Method, op.Path, r.Status, r.Header, r.Body); err != nil {
			t.Errorf("%s with only %v: %v", op.Key(), needed, err)
		}
	}

	// Every documented operation answered successfully at least once, and
	// the statuses seen are listed for the record.
	var report []string
	for _, op := range spec.Operations() {
		var ok bool
		var got []string
		for s := range k.seen[op.Key()] {
			ok = ok || s < 400 // a redirect is the success of a redirecting operation
			got = append(got, fmt.Sprint(s))
		}
		sort.Strings(got)
		if !ok {
			t.Errorf("%s: no successful response was checked", op.Key())
		}
		var missing []string
		for _, s := range op.Statuses() {
			if !slices.Contains(got, s) {
				missing = append(missing, s)
			}
		}
		report = append(report, fmt.Sprintf("%-45s checked %v, not exercised %v", op.Key(), got, missing))
	}
	t.Logf("statuses checked against openapi.json:\n%s", strings.Join(report, "\n"))
}

// TestOpenAPIUnavailableResponses stops the (external) NATS server under a
// running API: readiness, commands (of customers, contacts, links and
// activities) and stream reads answer the documented 503s (with
// Retry-After), while the read model still serves queries (links, activities
// and timelines included).
func TestOpenAPIUnavailableResponses(t *testing.T) {
	spec := loadSpec(t)
	ns, err := embedded.Start(embedded.Config{DataDir: t.TempDir(), Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	cfg := apptest.Config(t, t.TempDir())
	cfg.NATSURL = ns.ClientURL()
	e := apptest.Start(t, cfg)
	k := &contract{t: t, e: e, spec: spec, seen: map[string]map[int]bool{}}
	c := k.data(k.call("POST", "/api/v1/crm/customers", "/api/v1/crm/customers", `{"name":"Before The Outage"}`, 201))
	ct := k.data(k.call("POST", "/api/v1/crm/contacts", "/api/v1/crm/contacts", `{"name":"Before The Outage"}`, 201))
	act := k.data(k.call("POST", "/api/v1/crm/customers/{id}/activities", "/api/v1/crm/customers/"+c["customerId"].(string)+"/activities",
		`{"type":"note","occurredAt":"2026-01-01T00:00:00Z","body":"Before the outage"}`, 201))
	ns.Shutdown()
	apptest.Eventually(t, 10*time.Second, "unready without NATS", func() bool { return e.Do("GET", "/readyz", nil).Status == http.StatusServiceUnavailable })
	k.call("GET", "/readyz", "/readyz", nil, 503)
	// Each of these waits for the event store's timeout: send them together.
	reqs := []struct{ method, tmpl, path, body string }{
		{"POST", "/api/v1/crm/customers", "/api/v1/crm/customers", `{"name":"During The Outage"}`},
		{"GET", "/api/v1/crm/customers/{id}/history", "/api/v1/crm/customers/" + c["customerId"].(string) + "/history", ""},
		{"POST", "/api/v1/crm/contacts", "/api/v1/crm/contacts", `{"name":"During The Outage"}`},
		{"PATCH", "/api/v1/crm/contacts/{id}", "/api/v1/crm/contacts/" + ct["contactId"].(string), `{"title":"During The Outage"}`},
		{"PUT", "/api/v1/crm/customers/{id}/contacts/{contactId}", "/api/v1/crm/customers/" + c["customerId"].(string) + "/contacts/" + ct["contactId"].(string), `{"role":"During The Outage"}`},
		{"POST", "/api/v1/crm/customers/{id}/activities", "/api/v1/crm/customers/" + c["customerId"].(string) + "/activities", `{"type":"call","occurredAt":"2026-01-02T00:00:00Z"}`},
		{"PATCH", "/api/v1/crm/activities/{id}", "/api/v1/crm/activities/" + act["activityId"].(string), `{"subject":"During The Outage"}`},
	}
	resps := make([]apptest.Response, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() {
			var body any
			if r.body != "" {
				body = r.body
			}
			resps[i] = e.Do(r.method, r.path, body)
		})
	}
	wg.Wait()
	for i, r := range reqs {
		if resps[i].Status != http.StatusServiceUnavailable {
			t.Errorf("%s %s during the outage: %d %s", r.method, r.path, resps[i].Status, resps[i].Body)
		}
		if err := spec.CheckResponse(r.method, r.tmpl, resps[i].Status, resps[i].Header, resps[i].Body); err != nil {
			t.Errorf("%s %s during the outage: %v", r.method, r.path, err)
		}
	}
	k.call("GET", "/api/v1/crm/customers/{id}", "/api/v1/crm/customers/"+c["customerId"].(string), nil, 200)
	k.call("GET", "/api/v1/crm/contacts/{id}", "/api/v1/crm/contacts/"+ct["contactId"].(string), nil, 200)
	k.call("GET", "/api/v1/crm/contacts", "/api/v1/crm/contacts", nil, 200)
	k.call("GET", "/api/v1/crm/customers/{id}/contacts", "/api/v1/crm/customers/"+c["customerId"].(string)+"/contacts", nil, 200)
	k.call("GET", "/api/v1/crm/contacts/{id}/customers", "/api/v1/crm/contacts/"+ct["contactId"].(string)+"/customers", nil, 200)
	k.call("GET", "/api/v1/crm/activities/{id}", "/api/v1/crm/activities/"+act["activityId"].(string), nil, 200)
	k.call("GET", "/api/v1/crm/customers/{id}/timeline", "/api/v1/crm/customers/"+c["customerId"].(string)+"/timeline", nil, 200)
}
