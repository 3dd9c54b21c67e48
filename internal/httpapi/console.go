package httpapi

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"crm/internal/console"
)

// meJSON is the caller as the API sees it: the console shows only the
// screens its permissions allow.
type meJSON struct {
	Subject     string   `json:"subject"`
	Roles       []string `json:"roles"`
	Permissions []string `json:"permissions"`
}

// me serves GET /me: the token's subject, roles and effective permissions.
func (a *api) me(c *gin.Context) {
	if len(c.Request.URL.Query()) > 0 {
		writeError(c, &badRequest{status: http.StatusBadRequest, title: "Bad request", detail: "/me takes no query parameters"})
		return
	}
	p := principal(c)
	roles, perms := p.Roles, p.Permissions
	if roles == nil {
		roles = []string{}
	}
	if perms == nil {
		perms = []string{}
	}
	c.JSON(http.StatusOK, gin.H{"data": meJSON{Subject: p.Subject, Roles: roles, Permissions: perms}})
}

// consoleSessionInfo serves GET /console/session: whether the one-click
// local admin session is offered (the embedded default with a generated
// key only) and to whom it would be given (callers on this machine).
func (a *api) consoleSessionInfo(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"data": gin.H{"localSession": a.LocalSession != nil && localRequest(c.Request)}})
}

// consoleSession serves POST /console/session: an admin token for the
// console's local sign-in. It is offered only where the service itself
// printed an admin token at start (embedded default, key generated in
// DATA_DIR: whoever can read the terminal or ./data has it anyway), and
// only to a browser on this machine that addresses the service by a
// loopback name: another host, a page of another origin (Origin) and a DNS
// rebinding (a foreign Host) are refused.
func (a *api) consoleSession(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	if a.LocalSession == nil {
		writeError(c, &badRequest{status: http.StatusNotFound, title: "Not found",
			detail: "the local admin session is offered only by the embedded default with a generated key; sign in with a token"})
		return
	}
	if !localRequest(c.Request) {
		writeError(c, &badRequest{status: http.StatusForbidden, title: "Forbidden",
			detail: "the local admin session is only for a browser on the service's machine that opens it at a loopback address (127.0.0.1, ::1 or localhost)"})
		return
	}
	if c.Request.ContentLength > 0 {
		writeError(c, &badRequest{status: http.StatusBadRequest, title: "Bad request", detail: "the body must be empty"})
		return
	}
	token, expires, err := a.LocalSession()
	if err != nil {
		writeError(c, err)
		return
	}
	logFrom(c).Info("console local admin session", "expires", expires)
	c.JSON(http.StatusCreated, gin.H{"data": gin.H{"token": token, "expiresAt": expires.UTC().Format(time.RFC3339)},
		"message": "Local admin session started"})
}

// localRequest: the connection comes from a loopback address, the Host the
// browser used is a loopback name, and an Origin, if sent, is this host.
func localRequest(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return false
	}
	if !loopbackName(r.Host) {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return false
		}
	}
	return r.Header.Get("X-Forwarded-For") == "" && r.Header.Get("Forwarded") == ""
}

func loopbackName(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// registerConsole adds the console's files and its session endpoints.
func (a *api) registerConsole(r *gin.Engine) {
	console.Register(r)
	r.GET(console.Path+"/session", a.consoleSessionInfo)
	r.POST(console.Path+"/session", a.consoleSession)
}
