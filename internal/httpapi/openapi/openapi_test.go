package openapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"crm/internal/auth"
	"crm/internal/httpapi/openapi"
	"crm/internal/httpapi/openapi/openapitest"
)

func load(t *testing.T) *openapitest.Spec {
	t.Helper()
	s, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOpenAPIDocumentIsValid checks the document against the OpenAPI 3.1
// schema, compiles every schema in it as JSON Schema 2020-12 and resolves
// every reference.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	s := load(t)
	if v, _ := s.Doc["openapi"].(string); !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(v) {
		t.Fatalf("openapi = %q, want 3.1.x", v)
	}

	// The document's structure, against the OpenAPI Initiative's schema.
	metaBytes, err := os.ReadFile("testdata/oas-3.1-schema-2022-10-07.json")
	if err != nil {
		t.Fatal(err)
	}
	meta, err := jsonschema.UnmarshalJSON(bytes.NewReader(metaBytes))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	const metaURL = "https://spec.openapis.org/oas/3.1/schema/2022-10-07"
	if err := c.AddResource(metaURL, meta); err != nil {
		t.Fatal(err)
	}
	oas, err := c.Compile(metaURL)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(openapi.Document()))
	if err != nil {
		t.Fatal(err)
	}
	if err := oas.Validate(doc); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3.1 document:\n%v", err)
	}

	// Every reference resolves, every schema compiles, every example is
	// valid against its schema.
	walk(t, s, s.Doc, "")
	for name := range s.Doc["components"].(map[string]any)["schemas"].(map[string]any) {
		if _, err := s.Schema(openapitest.Pointer("components", "schemas", name)); err != nil {
			t.Error(err)
		}
	}
}

// walk visits the document: $refs, and the schema and examples of every
// parameter, header and media type.
func walk(t *testing.T, s *openapitest.Spec, v any, ptr string) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok {
			if _, _, err := s.Deref(ptr); err != nil {
				t.Errorf("#%s: $ref %s: %v", ptr, ref, err)
			}
		}
		if _, ok := v["schema"].(map[string]any); ok {
			sp := ptr + "/schema"
			if _, err := s.Schema(sp); err != nil {
				t.Error(err)
			} else {
				if ex, ok := v["example"]; ok {
					checkExample(t, s, sp, ptr+"/example", ex)
				}
				if exs, ok := v["examples"].(map[string]any); ok {
					for name, ex := range exs {
						if val, ok := ex.(map[string]any)["value"]; ok {
							checkExample(t, s, sp, ptr+openapitest.Pointer("examples", name, "value"), val)
						}
					}
				}
			}
		}
		for k, child := range v {
			if k == "example" || k == "examples" {
				continue
			}
			walk(t, s, child, ptr+openapitest.Pointer(k))
		}
	case []any:
		for i, child := range v {
			walk(t, s, child, ptr+"/"+strconv.Itoa(i))
		}
	}
}

func checkExample(t *testing.T, s *openapitest.Spec, schemaPtr, examplePtr string, ex any) {
	t.Helper()
	// Header and parameter examples are their serialised text when the
	// schema is a string.
	if err := s.Validate(schemaPtr, ex); err != nil {
		t.Errorf("the example #%s does not match #%s: %v", examplePtr, schemaPtr, err)
	}
}

// TestOpenAPIOperationsAreComplete checks what every operation must say:
// permissions that exist, the error statuses of authentication, bodies and
// preconditions, problem documents for errors, and unique operation ids.
func TestOpenAPIOperationsAreComplete(t *testing.T) {
	s := load(t)
	known := []string{auth.PermView, auth.PermCreate, auth.PermEdit, auth.PermDelete, auth.PermAudit, auth.PermImport, auth.PermWebhooks}
	ids := map[string]string{}
	for _, op := range s.Operations() {
		id, _ := op.Op["operationId"].(string)
		if id == "" {
			t.Errorf("%s: no operationId", op.Key())
		} else if prev, dup := ids[id]; dup {
			t.Errorf("%s and %s share operationId %s", prev, op.Key(), id)
		}
		ids[id] = op.Key()
		if d, _ := op.Op["summary"].(string); d == "" {
			t.Errorf("%s: no summary", op.Key())
		}
		statuses := op.Statuses()
		has := func(code string) bool { return slices.Contains(statuses, code) }

		security, explicit := op.Op["security"].([]any)
		if !explicit {
			t.Errorf("%s: security is not explicit", op.Key())
		}
		var scopes []string
		for _, req := range security {
			for _, sc := range req.(map[string]any)["bearerAuth"].([]any) {
				scopes = append(scopes, sc.(string))
			}
		}
		var xperms []string
		for _, p := range asSlice(op.Op["x-permissions"]) {
			xperms = append(xperms, p.(string))
		}
		if !slices.Equal(scopes, xperms) {
			t.Errorf("%s: security scopes %v but x-permissions %v", op.Key(), scopes, xperms)
		}
		for _, p := range scopes {
			if !slices.Contains(known, p) {
				t.Errorf("%s: unknown permission %s", op.Key(), p)
			}
		}
		// An operation whose parts each need their own permission (the
		// batch) documents them per part, and answers their 403s in its
		// results, not as its status.
		perPart, _ := op.Op["x-permissions-per-operation"].(map[string]any)
		for _, p := range perPart {
			if !slices.Contains(known, p.(string)) {
				t.Errorf("%s: unknown permission %s", op.Key(), p)
			}
		}
		if len(security) > 0 {
			if len(scopes) == 0 && len(perPart) == 0 {
				t.Errorf("%s: an authenticated operation documents no permission", op.Key())
			}
			for _, code := range []string{"400", "401", "403", "429", "500", "503"} {
				if code == "403" && len(scopes) == 0 {
					continue
				}
				if !has(code) {
					t.Errorf("%s: authenticated operation does not document %s", op.Key(), code)
				}
			}
		}
		if _, ok := op.Op["requestBody"]; ok {
			for _, code := range []string{"400", "413", "415"} {
				if !has(code) {
					t.Errorf("%s: operation with a body does not document %s", op.Key(), code)
				}
			}
		}
		if hasParam(s, op, "If-Match") && !has("412") {
			t.Errorf("%s: takes If-Match but does not document 412", op.Key())
		}
		if hasParam(s, op, "Idempotency-Key") && !has("422") {
			t.Errorf("%s: takes Idempotency-Key but does not document 422", op.Key())
		}
		if !hasParam(s, op, "X-Request-ID") {
			t.Errorf("%s: does not document the X-Request-ID request header", op.Key())
		}
		for _, code := range statuses {
			resp, rptr, err := s.Deref(op.Ptr + openapitest.Pointer("responses", code))
			if err != nil {
				t.Error(err)
				continue
			}
			headers, _ := resp["headers"].(map[string]any)
			if _, ok := headers["X-Request-ID"]; !ok {
				t.Errorf("%s %s (#%s): X-Request-ID is not documented", op.Key(), code, rptr)
			}
			if code[0] < '4' || op.Path == "/readyz" {
				continue
			}
			content, _ := resp["content"].(map[string]any)
			media, ok := content["application/problem+json"].(map[string]any)
			if !ok || len(content) != 1 {
				t.Errorf("%s %s: an error must be application/problem+json only", op.Key(), code)
				continue
			}
			js, _ := json.Marshal(media["schema"])
			if !strings.Contains(string(js), `"#/components/schemas/Problem"`) ||
				!strings.Contains(string(js), `"const":`+code) {
				t.Errorf("%s %s: the schema must refine Problem with status const %s: %s", op.Key(), code, code, js)
			}
		}
	}
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

func hasParam(s *openapitest.Spec, op openapitest.Operation, name string) bool {
	pathPtr := openapitest.Pointer("paths", op.Path)
	for _, base := range []string{pathPtr, op.Ptr} {
		v, _ := s.Get(base + "/parameters")
		for i := range asSlice(v) {
			p, _, err := s.Deref(base + "/parameters/" + strconv.Itoa(i))
			if err == nil && p["name"] == name {
				return true
			}
		}
	}
	return false
}

// TestOpenAPIServeFiles checks the two handlers: content types, caching
// headers, conditional requests and the docs page's security policy.
func TestOpenAPIServeFiles(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	openapi.Register(r)
	get := func(path string, headers ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		return w
	}
	for _, tc := range []struct {
		path, contentType string
		body              []byte
	}{
		{openapi.DocumentPath, "application/json", openapi.Document()},
		{openapi.DocsPath, "text/html; charset=utf-8", openapi.DocsPage()},
	} {
		w := get(tc.path)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != tc.contentType || !bytes.Equal(w.Body.Bytes(), tc.body) {
			t.Fatalf("GET %s: %d %q (%d bytes)", tc.path, w.Code, w.Header().Get("Content-Type"), w.Body.Len())
		}
		etag := w.Header().Get("ETag")
		if !regexp.MustCompile(`^"[0-9a-f]+"$`).MatchString(etag) || w.Header().Get("Cache-Control") != "public, max-age=300" ||
			w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("GET %s: caching headers %v", tc.path, w.Header())
		}
		for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
			if w := get(tc.path, "If-None-Match", inm); w.Code != http.StatusNotModified || w.Body.Len() != 0 || w.Header().Get("ETag") != etag {
				t.Fatalf("GET %s with If-None-Match %s: %d, %d bytes", tc.path, inm, w.Code, w.Body.Len())
			}
		}
		if w := get(tc.path, "If-None-Match", `"stale"`); w.Code != http.StatusOK {
			t.Fatalf("GET %s with a stale If-None-Match: %d", tc.path, w.Code)
		}
	}

	// The page's inline script and style are allowed by hash, nothing else.
	csp := get(openapi.DocsPath).Header().Get("Content-Security-Policy")
	page := string(openapi.DocsPage())
	for _, tag := range []string{"script", "style"} {
		start := strings.Index(page, "<"+tag+">") + len(tag) + 2
		end := strings.Index(page, "</"+tag+">")
		if strings.Count(page, "<"+tag) != 1 || start < len(tag)+2 || end < start {
			t.Fatalf("docs.html must have exactly one inline <%s>", tag)
		}
		sum := sha256.Sum256([]byte(page[start:end]))
		want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !strings.Contains(csp, want+";") {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if !strings.HasPrefix(csp, "default-src 'none';") || !strings.Contains(csp, "connect-src 'self';") {
		t.Errorf("CSP %q", csp)
	}
	// No external resource: every src/href is relative or a fragment.
	for _, m := range regexp.MustCompile(`(?i)(?:src|href)\s*=\s*["']([^"']*)["']`).FindAllStringSubmatch(page, -1) {
		if strings.Contains(m[1], "//") {
			t.Errorf("docs.html loads an external resource: %s", m[1])
		}
	}
	if strings.Contains(page, "@import") || regexp.MustCompile(`url\(\s*['"]?https?:`).MatchString(page) {
		t.Error("docs.html imports external styles")
	}
}
