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
	"encoding/hex"
	"net/http"
	"regexp"
	"strings"

	"github.com/gin-gonic/gin"
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

type file struct {
	body        []byte
	contentType string
	etag        string
	headers     map[string]string
}

func newFile(body []byte, contentType string, headers map[string]string) *file {
	sum := sha256.Sum256(body)
	return &file{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, headers: headers}
}

// Register adds GET DocumentPath, GET DocsPath and its trailing-slash
// redirect to r. They take no token:
// register them outside any authenticated group.
func Register(r gin.IRoutes) {
	r.GET(DocumentPath, newFile(document, "application/json", map[string]string{
		"X-Content-Type-Options": "nosniff",
	}).serve)
	r.GET(DocsPath, newFile(docsPage, "text/html; charset=utf-8", map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"Content-Security-Policy": ContentSecurityPolicy(),
		"Referrer-Policy":         "no-referrer",
	}).serve)
	// The page fetches openapi.json relative to its own address, so it has
	// one address; the other spelling redirects to it.
	r.GET(DocsPath+"/", func(c *gin.Context) {
		c.Header("Location", DocsPath)
		c.Status(http.StatusPermanentRedirect)
	})
}

func (f *file) serve(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", cacheControl)
	for k, v := range f.headers {
		h.Set(k, v)
	}
	if etagMatches(c.GetHeader("If-None-Match"), f.etag) {
		c.Status(http.StatusNotModified)
		return
	}
	c.Data(http.StatusOK, f.contentType, f.body)
}

// etagMatches implements the weak comparison of If-None-Match (RFC 9110
// 13.1.2): "*" or any listed tag equal to etag, W/ prefixes ignored.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
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
