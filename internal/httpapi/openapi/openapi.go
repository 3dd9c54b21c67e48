// Package openapi serves the API's OpenAPI 3.1 document and a human-readable
// documentation page that renders it. Both are files embedded in the binary:
// openapi.json is written by hand next to the code it describes, and
// docs.html is a self-contained page (inline script and style, no CDN) that
// fetches the document and lists every operation with its parameters,
// bodies, responses, a curl example and a try-it form.
package openapi

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"

	"crm/internal/httpapi/embedfile"
)

// Paths of the two endpoints (both public: no token).
const (
	DocumentPath = "/api/v1/crm/openapi.json"
	DocsPath     = "/api/v1/crm/docs"
)

// cacheControl lets clients and proxies keep the files a few minutes; the
// ETag makes revalidation after that cheap.
const cacheControl = "public, max-age=300"

var (
	//go:embed openapi.json
	document []byte
	//go:embed docs.html
	docsPage []byte
)

// Document returns a copy of the embedded OpenAPI document.
func Document() []byte { return bytes.Clone(document) }

// DocsPage returns a copy of the embedded documentation page.
func DocsPage() []byte { return bytes.Clone(docsPage) }

// Register adds GET DocumentPath, GET DocsPath and its trailing-slash
// redirect to r. They take no token:
// register them outside any authenticated group.
func Register(r gin.IRoutes) {
	r.GET(DocumentPath, embedfile.New(document, "application/json", map[string]string{
		"Cache-Control":          cacheControl,
		"X-Content-Type-Options": "nosniff",
	}).Serve)
	r.GET(DocsPath, embedfile.New(docsPage, "text/html; charset=utf-8", map[string]string{
		"Cache-Control":           cacheControl,
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": ContentSecurityPolicy(),
		"Referrer-Policy":         "no-referrer",
	}).Serve)
	// The page fetches openapi.json relative to its own address, so it has
	// one address; the other spelling redirects to it.
	r.GET(DocsPath+"/", embedfile.Redirect(DocsPath))
}

var inlineBlock = regexp.MustCompile(`(?s)<(script|style)>(.*?)</(?:script|style)>`)

// ContentSecurityPolicy is the policy of the docs page: it may run only its
// own inline script and style (allowed by hash) and talk only to this origin.
func ContentSecurityPolicy() string {
	var scripts, styles []string
	for _, m := range inlineBlock.FindAllSubmatch(docsPage, -1) {
		sum := sha256.Sum256(m[2])
		src := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if string(m[1]) == "script" {
			scripts = append(scripts, src)
		} else {
			styles = append(styles, src)
		}
	}
	return "default-src 'none'; script-src " + strings.Join(scripts, " ") + "; style-src " + strings.Join(styles, " ") +
		"; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// Routes returns the routes of a handler made by httpapi.New (a Gin engine),
// for comparing them with the document; ok is false for any other handler.
func Routes(h http.Handler) (routes gin.RoutesInfo, ok bool) {
	e, ok := h.(*gin.Engine)
	if !ok {
		return nil, false
	}
	return e.Routes(), true
}
