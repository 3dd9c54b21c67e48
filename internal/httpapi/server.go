// Package httpapi is the REST API: routes, request decoding, response
// envelopes and the one mapping of errors to HTTP problems. Handlers are thin:
// decode, call one command or query, write one response.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"crm/internal/auth"
	"crm/internal/commands"
	"crm/internal/fault"
	"crm/internal/httpapi/openapi"
	"crm/internal/metrics"
	"crm/internal/readmodel"
)

// Base is the path prefix of every CRM endpoint.
const Base = "/api/v1/crm"

const (
	ctxRequestID = "crm.requestID"
	ctxLogger    = "crm.logger"
	ctxPrincipal = "crm.principal"

	maxBodyBytes = 1 << 20
)

// Projection is what the API needs from the projector for read-your-writes.
type Projection interface {
	// WaitFor blocks until the read model has applied the event at seq, or
	// ctx ends; it reports whether it got there.
	WaitFor(ctx context.Context, seq uint64) bool
}

// Deps are the parts the API calls.
type Deps struct {
	Commands   *commands.Handler
	Verifier   *auth.Verifier
	Reader     readmodel.Reader // nil: query endpoints answer 503
	Projection Projection       // nil: no read-your-writes wait
	Logger     *slog.Logger
	// ReadYourWritesTimeout bounds the wait of a command response for the
	// read model (default 3s; negative disables the wait).
	ReadYourWritesTimeout time.Duration
	// CORSOrigins are the browser origins allowed to call the API.
	CORSOrigins []string
	// RateLimit per authenticated subject (zero: off).
	RateLimit RateLimit
	// SearchExactTotal is how many matches a search counts exactly (0:
	// search.MaxExactTotal).
	SearchExactTotal int64
	// Metrics records the series (nil: none); /metrics serves them.
	Metrics *metrics.Metrics
	// OpsListener: /metrics is served on the operations listener
	// (METRICS_ADDR), not here.
	OpsListener bool
	// Imports runs import jobs (nil: the import endpoints answer 503).
	Imports ImportJobs
	// Webhooks keeps the webhook subscriptions (nil: their endpoints
	// answer 503).
	Webhooks Webhooks
	// CursorKey signs the page cursors (CursorKey(secret); nil: a random
	// key, cursors valid in this process only).
	CursorKey []byte
	// Changes serves the change feed (nil: it answers 503);
	// ChangesWaiter wakes its long polls when the stream grows (nil: they
	// answer at once); Stopping, closed when the service shuts down, ends
	// them early.
	Changes       ChangeFeed
	ChangesWaiter Projection
	Stopping      <-chan struct{}
	// Ready reports readiness for /readyz: every check's result ("ok" or
	// the reason it fails).
	Ready func(ctx context.Context) (ready bool, checks map[string]string)
	// LocalSession mints the token of the console's one-click local admin
	// session (nil: not offered). Only the embedded default with a
	// generated key sets it.
	LocalSession func() (token string, expires time.Time, err error)
}

type api struct {
	Deps
	cursorKey []byte
}

// New returns the HTTP handler of the API.
func New(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.ReadYourWritesTimeout == 0 {
		d.ReadYourWritesTimeout = 3 * time.Second
	}
	if d.CursorKey == nil {
		d.CursorKey = CursorKey(nil)
	}
	a := &api{Deps: d, cursorKey: d.CursorKey}

	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.ContextWithFallback = true
	r.Use(a.requestContext, a.recover)
	if len(d.CORSOrigins) > 0 {
		r.Use(cors.New(cors.Config{
			AllowOrigins:  d.CORSOrigins,
			AllowMethods:  []string{"GET", "POST", "PUT", "PATCH", "DELETE"},
			AllowHeaders:  []string{"Authorization", "Content-Type", "If-Match", "Idempotency-Key", "X-Request-ID"},
			ExposeHeaders: []string{"ETag", "Location", "Retry-After", "X-Request-ID", "X-Stream-Sequence", "X-Changes-Cursor", "Content-Disposition", "X-Read-Model", "Idempotent-Replayed"},
			MaxAge:        12 * time.Hour,
		}))
	}
	r.NoRoute(func(c *gin.Context) {
		writeError(c, &badRequest{status: http.StatusNotFound, title: "Not found", detail: "no such endpoint: " + c.Request.URL.Path})
	})
	r.NoMethod(func(c *gin.Context) {
		writeError(c, &badRequest{status: http.StatusMethodNotAllowed, title: "Method not allowed",
			detail: c.Request.Method + " is not allowed on " + c.Request.URL.Path})
	})

	g := r.Group(Base, a.authenticate, strictQuery)
	if d.RateLimit.PerSecond > 0 {
		g.Use(a.rateLimit(newLimiter(d.RateLimit)))
	}
	g.POST("/customers", a.require(auth.PermCreate), a.createCustomer)
	g.GET("/customers", a.require(auth.PermView), a.listCustomers)
	g.POST("/customers/batch", a.batchCustomers) // each operation checks its own permission
	g.GET("/customers/search", a.require(auth.PermView), a.searchCustomers)
	g.GET("/customers/export", a.require(auth.PermView), a.exportCustomers)
	g.GET("/customers/duplicates", a.require(auth.PermView), a.listDuplicates)
	g.GET("/customers/:id", a.require(auth.PermView), a.getCustomer)
	g.GET("/customers/:id/history", a.require(auth.PermAudit), a.customerHistory)
	g.PATCH("/customers/:id", a.require(auth.PermEdit), a.updateCustomer)
	g.DELETE("/customers/:id", a.require(auth.PermDelete), a.deleteCustomer)
	g.PUT("/customers/by-email/:email", a.require(auth.PermCreate), a.require(auth.PermEdit), a.upsertByEmail)
	g.GET("/customers/by-external-id/*externalId", a.require(auth.PermView), a.customerByExternalID)
	g.PUT("/customers/by-external-id/*externalId", a.require(auth.PermCreate), a.require(auth.PermEdit), a.upsertByExternalID)
	g.POST("/customers/:id/restore", a.require(auth.PermDelete), a.restoreCustomer)
	g.POST("/customers/:id/merge", a.require(auth.PermEdit), a.require(auth.PermDelete), a.mergeCustomers)
	g.POST("/customers/:id/unmerge", a.require(auth.PermEdit), a.require(auth.PermDelete), a.unmergeCustomer)

	g.POST("/customers/:id/activities", a.require(auth.PermEdit), a.createActivity)
	g.GET("/customers/:id/timeline", a.require(auth.PermView), a.customerTimeline)
	g.GET("/activities/:id", a.require(auth.PermView), a.getActivity)
	g.PATCH("/activities/:id", a.require(auth.PermEdit), a.updateActivity)
	g.DELETE("/activities/:id", a.require(auth.PermEdit), a.deleteActivity)
	g.GET("/customers/:id/contacts", a.require(auth.PermView), a.customerContacts)
	g.PUT("/customers/:id/contacts/:contactId", a.require(auth.PermEdit), a.linkContact)
	g.DELETE("/customers/:id/contacts/:contactId", a.require(auth.PermEdit), a.unlinkContact)
	g.GET("/contacts/:id/customers", a.require(auth.PermView), a.contactCustomers)
	g.POST("/contacts", a.require(auth.PermCreate), a.createContact)
	g.GET("/contacts", a.require(auth.PermView), a.listContacts)
	g.GET("/contacts/search", a.require(auth.PermView), a.searchContacts)
	g.GET("/contacts/:id", a.require(auth.PermView), a.getContact)
	g.GET("/contacts/:id/history", a.require(auth.PermAudit), a.contactHistory)
	g.PATCH("/contacts/:id", a.require(auth.PermEdit), a.updateContact)
	g.DELETE("/contacts/:id", a.require(auth.PermDelete), a.deleteContact)
	g.GET("/me", a.require(auth.PermView), a.me)
	g.GET("/changes", a.require(auth.PermAudit), a.listChanges)
	g.POST("/imports", a.require(auth.PermImport), a.require(auth.PermCreate), a.createImport)
	g.GET("/imports", a.require(auth.PermImport), a.listImports)
	g.GET("/imports/:id", a.require(auth.PermImport), a.getImport)
	g.GET("/imports/:id/errors", a.require(auth.PermImport), a.importErrors)
	g.DELETE("/imports/:id", a.require(auth.PermImport), a.cancelImport)
	wh := g.Group("/webhooks", a.require(auth.PermWebhooks))
	wh.POST("", a.createWebhook)
	wh.GET("", a.listWebhooks)
	wh.GET("/:id", a.getWebhook)
	wh.PATCH("/:id", a.updateWebhook)
	wh.DELETE("/:id", a.deleteWebhook)
	wh.POST("/:id/rotate-secret", a.rotateWebhookSecret)
	wh.POST("/:id/replay", a.replayWebhook)
	wh.POST("/:id/ping", a.pingWebhook)
	wh.GET("/:id/deliveries", a.webhookDeliveries)

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", a.readyz)
	openapi.Register(r) // the OpenAPI document and its docs page, no token
	a.registerConsole(r)
	if d.Metrics != nil && !d.OpsListener {
		r.GET("/metrics", gin.WrapH(d.Metrics.Handler()))
	}
	return r
}

// readyz answers 200 when every dependency is usable, else 503, with each
// check "ok" or "failing": the reasons, which can name paths and carry
// internal error text, are for the operations listener and the log only.
func (a *api) readyz(c *gin.Context) {
	if a.Ready == nil {
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	ok, detailed := a.Ready(ctx)
	checks := make(map[string]string, len(detailed))
	for name, v := range detailed {
		if v != "ok" {
			v = "failing"
		}
		checks[name] = v
	}
	if !ok {
		c.Header("Retry-After", "1")
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unready", "checks": checks})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready", "checks": checks})
}

// requestContext assigns the request id (X-Request-ID, kept when the client
// sends a sane one), a request logger, and writes the access log line.
func (a *api) requestContext(c *gin.Context) {
	start := time.Now()
	id := c.GetHeader("X-Request-ID")
	if !validRequestID(id) {
		id = uuid.NewString()
	}
	c.Set(ctxRequestID, id)
	c.Header("X-Request-ID", id)
	log := a.Logger.With("request_id", id)
	c.Set(ctxLogger, log)
	c.Next()
	sub := ""
	if p, ok := c.Get(ctxPrincipal); ok {
		sub = p.(auth.Principal).Subject
	}
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	a.Metrics.HTTPRequest(route, c.Request.Method, c.Writer.Status(), time.Since(start))
	log.Info("request", "method", c.Request.Method, "path", c.Request.URL.Path, "route", route,
		"status", c.Writer.Status(), "latency_ms", float64(time.Since(start).Microseconds())/1000, "sub", sub)
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if r < 0x21 || r > 0x7e {
			return false
		}
	}
	return true
}

// recover turns a panic into a 500 problem without leaking internals.
func (a *api) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			logFrom(c).Error("panic", "panic", v)
			if !c.Writer.Written() {
				writeError(c, errPanic)
			}
			c.Abort()
		}
	}()
	c.Next()
}

type panicError struct{}

func (panicError) Error() string { return "panic" }

var errPanic = panicError{}

// authenticate verifies the bearer token and stores the principal.
// strictQuery refuses a query string that is not well-formed
// application/x-www-form-urlencoded: Go's parser drops the pairs it cannot
// read (a ";" separator, a bad %-escape) without a word, so a filter the
// client sent would silently not apply.
func strictQuery(c *gin.Context) {
	if _, err := url.ParseQuery(c.Request.URL.RawQuery); err != nil {
		writeError(c, fault.InvalidField("query", "is malformed: separate parameters with & (not ;) and use valid %-escapes"))
		return
	}
	c.Next()
}

func (a *api) authenticate(c *gin.Context) {
	h := c.GetHeader("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		writeError(c, auth.ErrUnauthorized)
		return
	}
	p, err := a.Verifier.Verify(strings.TrimSpace(token))
	if err != nil {
		writeError(c, err)
		return
	}
	c.Set(ctxPrincipal, p)
	c.Next()
}

// require rejects callers without perm before the body is read.
func (a *api) require(perm string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := principal(c).Require(perm); err != nil {
			writeError(c, err)
			return
		}
		c.Next()
	}
}

func principal(c *gin.Context) auth.Principal {
	p, _ := c.Get(ctxPrincipal)
	pr, _ := p.(auth.Principal)
	return pr
}
