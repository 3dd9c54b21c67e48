// Package openapitest checks HTTP responses against the OpenAPI document of
// package openapi: the status must be documented for the operation, the
// Content-Type must be one of the documented media types, the body must
// validate against the documented JSON Schema (draft 2020-12, the dialect of
// OpenAPI 3.1) and the headers against the documented headers. It is for
// tests only: it keeps the JSON Schema validator out of the binary.
package openapitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"crm/internal/httpapi/openapi"
)

// docURL is where the document is registered in the schema compiler; every
// "#/components/..." reference resolves inside it. Nothing is fetched.
const docURL = "https://crm.invalid/openapi.json"

// Methods are the HTTP methods an OpenAPI path item can hold, in the order
// the checks use them.
var Methods = []string{"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"}

// APIHeaders are the response headers the API sets on purpose: a response
// that carries one of them must document it.
var APIHeaders = []string{"ETag", "Location", "X-Stream-Sequence", "X-Read-Model", "Idempotent-Replayed",
	"X-Request-ID", "Retry-After", "Allow", "WWW-Authenticate"}

// Spec is the parsed document with a compiler for the schemas in it.
type Spec struct {
	Doc map[string]any

	mu      sync.Mutex
	c       *jsonschema.Compiler
	schemas map[string]*jsonschema.Schema
}

// Load parses the embedded document.
func Load() (*Spec, error) { return Parse(openapi.Document()) }

// Parse parses an OpenAPI document.
func Parse(doc []byte) (*Spec, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("parse the OpenAPI document: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("the OpenAPI document is not a JSON object")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat() // "format" is an assertion here: uuid, date-time, email, uri…
	if err := c.AddResource(docURL, v); err != nil {
		return nil, err
	}
	return &Spec{Doc: m, c: c, schemas: map[string]*jsonschema.Schema{}}, nil
}

// Pointer builds a JSON pointer from unescaped tokens.
func Pointer(tokens ...string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// Get returns the value at the JSON pointer ptr ("" is the whole document).
func (s *Spec) Get(ptr string) (any, bool) {
	var cur any = s.Doc
	if ptr == "" {
		return cur, true
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, false
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[tok]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// Deref returns the object at ptr after following its "$ref" chain, and the
// pointer it was finally found at.
func (s *Spec) Deref(ptr string) (map[string]any, string, error) {
	for range 32 {
		v, ok := s.Get(ptr)
		if !ok {
			return nil, "", fmt.Errorf("nothing at #%s", ptr)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, "", fmt.Errorf("#%s is not an object", ptr)
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m, ptr, nil
		}
		if !strings.HasPrefix(ref, "#") {
			return nil, "", fmt.Errorf("#%s: only local references are supported, not %q", ptr, ref)
		}
		ptr = ref[1:]
	}
	return nil, "", fmt.Errorf("#%s: $ref chain too long", ptr)
}

// Schema compiles the JSON Schema at ptr.
func (s *Spec) Schema(ptr string) (*jsonschema.Schema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch, ok := s.schemas[ptr]; ok {
		return sch, nil
	}
	sch, err := s.c.Compile(docURL + "#" + strings.ReplaceAll(ptr, "%", "%25"))
	if err != nil {
		return nil, fmt.Errorf("compile the schema at #%s: %w", ptr, err)
	}
	s.schemas[ptr] = sch
	return sch, nil
}

// Validate validates v (as decoded by jsonschema.UnmarshalJSON or
// encoding/json with UseNumber) against the schema at ptr.
func (s *Spec) Validate(ptr string, v any) error {
	sch, err := s.Schema(ptr)
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

// Operation is one documented path and method.
type Operation struct {
	Method string // upper case
	Path   string // the template, e.g. /api/v1/crm/customers/{id}
	Ptr    string // JSON pointer of the operation object
	Op     map[string]any
}

// Key is "METHOD path".
func (o Operation) Key() string { return o.Method + " " + o.Path }

// Operations returns every documented operation, sorted by path and method.
func (s *Spec) Operations() []Operation {
	paths, _ := s.Doc["paths"].(map[string]any)
	var out []Operation
	for path, item := range paths {
		im, _ := item.(map[string]any)
		for _, m := range Methods {
			if op, ok := im[strings.ToLower(m)].(map[string]any); ok {
				out = append(out, Operation{Method: m, Path: path, Ptr: Pointer("paths", path, strings.ToLower(m)), Op: op})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// Operation returns the operation documented for method and path template.
func (s *Spec) Operation(method, path string) (Operation, bool) {
	for _, o := range s.Operations() {
		if o.Method == strings.ToUpper(method) && o.Path == path {
			return o, true
		}
	}
	return Operation{}, false
}

// Statuses returns the response codes an operation documents.
func (o Operation) Statuses() []string {
	rs, _ := o.Op["responses"].(map[string]any)
	var out []string
	for code := range rs {
		out = append(out, code)
	}
	slices.Sort(out)
	return out
}

// Match reports whether a concrete path matches a path template.
func Match(template, path string) bool {
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}") {
			if ps[i] == "" {
				return false
			}
			continue
		}
		if ts[i] != ps[i] {
			return false
		}
	}
	return true
}

// CheckResponse checks a response to method on the path template against
// the document: the status is documented for the operation (no "default"
// fallback is used), and the content type, body and headers match.
func (s *Spec) CheckResponse(method, path string, status int, h http.Header, body []byte) error {
	op, ok := s.Operation(method, path)
	if !ok {
		return fmt.Errorf("%s %s is not documented", method, path)
	}
	ptr := op.Ptr + Pointer("responses", strconv.Itoa(status))
	if _, ok := s.Get(ptr); !ok {
		return fmt.Errorf("%s %s: status %d is not documented (documented: %s)", method, path, status, strings.Join(op.Statuses(), ", "))
	}
	return s.CheckResponseAt(ptr, h, body)
}

// CheckComponentResponse checks a response against the response object
// components/responses/name (for answers no operation owns: an unknown
// path's 404, a wrong method's 405).
func (s *Spec) CheckComponentResponse(name string, h http.Header, body []byte) error {
	return s.CheckResponseAt(Pointer("components", "responses", name), h, body)
}

// CheckResponseAt checks a response against the response object at ptr.
func (s *Spec) CheckResponseAt(ptr string, h http.Header, body []byte) error {
	resp, ptr, err := s.Deref(ptr)
	if err != nil {
		return err
	}
	var errs []error
	if err := s.checkHeaders(ptr, resp, h); err != nil {
		errs = append(errs, err)
	}
	if err := s.checkBody(ptr, resp, h.Get("Content-Type"), body); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (s *Spec) checkBody(ptr string, resp map[string]any, contentType string, body []byte) error {
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(body) > 0 {
			return fmt.Errorf("#%s documents no body, got %d bytes", ptr, len(body))
		}
		return nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("#%s: response Content-Type %q: %v", ptr, contentType, err)
	}
	var documented []string
	for k := range content {
		documented = append(documented, k)
	}
	slices.Sort(documented)
	media, ok := content[mt].(map[string]any)
	if !ok {
		return fmt.Errorf("#%s: Content-Type %s is not documented (documented: %s)", ptr, mt, strings.Join(documented, ", "))
	}
	if _, ok := media["schema"]; !ok {
		return nil
	}
	schemaPtr := ptr + Pointer("content", mt, "schema")
	var v any
	if isJSON(mt) {
		v, err = jsonschema.UnmarshalJSON(bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("#%s: the %s body is not JSON: %v", ptr, mt, err)
		}
	} else {
		v = string(body)
	}
	if err := s.Validate(schemaPtr, v); err != nil {
		return fmt.Errorf("the body does not match #%s:\n%v\nbody: %s", schemaPtr, err, truncate(body))
	}
	return nil
}

func (s *Spec) checkHeaders(ptr string, resp map[string]any, h http.Header) error {
	headers, _ := resp["headers"].(map[string]any)
	documented := map[string]bool{}
	var errs []error
	for name := range headers {
		documented[http.CanonicalHeaderKey(name)] = true
		hdr, hptr, err := s.Deref(ptr + Pointer("headers", name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		values := h.Values(name)
		if len(values) == 0 {
			if req, _ := hdr["required"].(bool); req {
				errs = append(errs, fmt.Errorf("header %s is required by #%s but absent", name, hptr))
			}
			continue
		}
		if len(values) > 1 {
			errs = append(errs, fmt.Errorf("header %s appears %d times", name, len(values)))
			continue
		}
		if _, ok := hdr["schema"]; !ok {
			continue
		}
		sptr := hptr + "/schema"
		if err := s.Validate(sptr, s.headerValue(sptr, values[0])); err != nil {
			errs = append(errs, fmt.Errorf("header %s: %q does not match #%s: %v", name, values[0], sptr, err))
		}
	}
	for _, name := range APIHeaders {
		if len(h.Values(name)) > 0 && !documented[http.CanonicalHeaderKey(name)] {
			errs = append(errs, fmt.Errorf("header %s is sent but #%s does not document it", name, ptr))
		}
	}
	return errors.Join(errs...)
}

// headerValue converts a header's text to the JSON type its schema wants
// (headers are "simple" style: integers are sent as digits).
func (s *Spec) headerValue(schemaPtr, v string) any {
	sch, _, err := s.Deref(schemaPtr)
	if err != nil {
		return v
	}
	if t, _ := sch["type"].(string); t == "integer" || t == "number" {
		if _, err := strconv.ParseFloat(v, 64); err == nil {
			return json.Number(v)
		}
	}
	return v
}

func isJSON(mt string) bool { return mt == "application/json" || strings.HasSuffix(mt, "+json") }

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}
