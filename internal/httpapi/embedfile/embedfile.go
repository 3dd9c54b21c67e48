// Package embedfile serves a file embedded in the binary: fixed headers,
// an ETag of its content and 304 Not Modified on a matching If-None-Match.
// The OpenAPI document, the docs page and the console's files use it.
package embedfile

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// File is one embedded file with the headers it is served with.
type File struct {
	body        []byte
	contentType string
	etag        string
	headers     map[string]string
}

// New returns body served as contentType with headers (Cache-Control among
// them) and a strong ETag of the content.
func New(body []byte, contentType string, headers map[string]string) *File {
	sum := sha256.Sum256(body)
	return &File{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, headers: headers}
}

// Serve answers GET: 304 when If-None-Match matches the ETag, else the body.
func (f *File) Serve(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("ETag", f.etag)
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

// Redirect answers GET with 308 Permanent Redirect to location (a page's
// address with a trailing slash, to the one address it is served at).
func Redirect(location string) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Header("Location", location)
		c.Status(http.StatusPermanentRedirect)
	}
}
