// Package console is the staff web console: a small single-page application
// (plain HTML, CSS and JavaScript, no build step and no Node toolchain)
// embedded in the binary and served at /console. It talks to the public REST
// API only, with the bearer token the user signs in with, so it can do
// exactly what that token may do.
//
// The pages are static: every value is put into the page as text (DOM
// textContent, never HTML), scripts and styles come only from this origin,
// and the Content-Security-Policy forbids anything else.
package console

import (
	"embed"

	"github.com/gin-gonic/gin"

	"crm/internal/httpapi/embedfile"
)

// Path is the console's address.
const Path = "/console"

//go:embed assets
var assets embed.FS

// ContentSecurityPolicy allows the console's own script, style and API
// calls, and nothing else: no inline script or style, no other origin, no
// frames, no forms posted anywhere.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Files maps each served path to its embedded file and content type.
var Files = map[string]struct{ Name, ContentType string }{
	Path:               {"assets/index.html", "text/html; charset=utf-8"},
	Path + "/app.js":   {"assets/app.js", "text/javascript; charset=utf-8"},
	Path + "/app.css":  {"assets/app.css", "text/css; charset=utf-8"},
	Path + "/icon.svg": {"assets/icon.svg", "image/svg+xml"},
}

// Register adds GET for each of Files and the trailing-slash redirect of
// Path to r. They take no token (the page asks for one): register them
// outside any authenticated group.
func Register(r gin.IRoutes) {
	for path, f := range Files {
		body, err := assets.ReadFile(f.Name)
		if err != nil {
			panic("console: " + err.Error()) // the files are embedded: a missing one is a build error
		}
		r.GET(path, embedfile.New(body, f.ContentType, map[string]string{
			// no-cache: revalidate every time (cheap with the ETag), so a
			// new binary's console is never mixed with an old script.
			"Cache-Control":           "no-cache",
			"X-Content-Type-Options":  "nosniff",
			"Content-Security-Policy": ContentSecurityPolicy,
			"Referrer-Policy":         "no-referrer",
			"X-Frame-Options":         "DENY",
		}).Serve)
	}
	r.GET(Path+"/", embedfile.Redirect(Path))
}
