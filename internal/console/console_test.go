package console_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"crm/internal/console"
)

func serve(t *testing.T, path string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	gin.SetMode(gin.TestMode)
	r := gin.New()
	console.Register(r)
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

// TestFiles: each file is served with its type, the strict CSP and an
// ETag that revalidates to 304; the page has no inline script or style
// for the CSP to forbid.
func TestFiles(t *testing.T) {
	for path, f := range console.Files {
		w := serve(t, path)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != f.ContentType {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Header().Get("Content-Type"))
		}
		for k, want := range map[string]string{
			"Content-Security-Policy": console.ContentSecurityPolicy, "X-Content-Type-Options": "nosniff",
			"X-Frame-Options": "DENY", "Cache-Control": "no-cache", "Referrer-Policy": "no-referrer",
		} {
			if got := w.Header().Get(k); got != want {
				t.Errorf("GET %s: %s %q, want %q", path, k, got, want)
			}
		}
		etag := w.Header().Get("ETag")
		if w2 := serve(t, path, "If-None-Match", etag); w2.Code != http.StatusNotModified || w2.Body.Len() != 0 {
			t.Errorf("GET %s with If-None-Match %s: %d", path, etag, w2.Code)
		}
		if w2 := serve(t, path, "If-None-Match", `"other"`); w2.Code != http.StatusOK {
			t.Errorf("GET %s with a stale If-None-Match: %d", path, w2.Code)
		}
	}
	if !strings.Contains(console.ContentSecurityPolicy, "script-src 'self';") || strings.Contains(console.ContentSecurityPolicy, "unsafe") {
		t.Errorf("the CSP is not strict: %s", console.ContentSecurityPolicy)
	}
	page := serve(t, console.Path).Body.String()
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]+</script>`), // inline script
		regexp.MustCompile(`\son[a-z]+\s*=`),                     // inline handler
		regexp.MustCompile(`\sstyle\s*=|<style`),                 // inline style
		regexp.MustCompile(`(?:src|href)="(?:https?:)?//`),       // another origin
	} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("the page has %q, which the CSP forbids or an offline console cannot load", m)
		}
	}
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, ` src="/console/`) {
			t.Errorf("the page has the script %s, not one of the console's files", tag)
		}
	}
	if w := serve(t, console.Path+"/"); w.Code != http.StatusPermanentRedirect || w.Header().Get("Location") != console.Path {
		t.Errorf("GET /console/: %d to %q", w.Code, w.Header().Get("Location"))
	}
	if w := serve(t, console.Path+"/nope.js"); w.Code != http.StatusNotFound {
		t.Errorf("GET /console/nope.js: %d", w.Code)
	}
}
