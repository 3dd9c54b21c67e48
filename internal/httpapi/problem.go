package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"crm/internal/auth"
	"crm/internal/fault"
)

// problem is an RFC 9457 problem document. detail keeps clients written for
// the seed's FastAPI {"detail": …} errors working.
type problem struct {
	Type      string         `json:"type"`
	Title     string         `json:"title"`
	Status    int            `json:"status"`
	Detail    string         `json:"detail"`
	Instance  string         `json:"instance,omitempty"`
	Errors    []problemField `json:"errors,omitempty"`
	RequestID string         `json:"requestId,omitempty"`
}

// problemField is one invalid field, header or query parameter.
type problemField struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

const problemType = "urn:crm:problem:"

// kindStatus is the one map of error kinds to HTTP: status, problem type
// and title. Every kind has an entry (TestEveryKindHasAProblem).
var kindStatus = map[fault.Kind]struct {
	status      int
	slug, title string
}{
	fault.Internal:           {http.StatusInternalServerError, "internal", "Internal server error"},
	fault.Invalid:            {http.StatusBadRequest, "validation", "Validation failed"},
	fault.Unauthorized:       {http.StatusUnauthorized, "unauthorized", "Unauthorized"},
	fault.Forbidden:          {http.StatusForbidden, "forbidden", "Forbidden"},
	fault.NotFound:           {http.StatusNotFound, "not-found", "Not found"},
	fault.Conflict:           {http.StatusConflict, "conflict", "Conflict"},
	fault.PreconditionFailed: {http.StatusPreconditionFailed, "precondition-failed", "Precondition failed"},
	fault.Unprocessable:      {http.StatusUnprocessableEntity, "unprocessable", "Unprocessable request"},
	fault.Unavailable:        {http.StatusServiceUnavailable, "unavailable", "Service unavailable"},
	fault.Moved:              {http.StatusPermanentRedirect, "moved", "Merged into another customer"},
}

// codeTitles are the titles of the problem types that refine a kind
// (fault.Error.Code).
var codeTitles = map[string]string{
	"idempotency-key-reused": "Idempotency key reused",
}

// writeError is the one place where errors become HTTP responses. The
// detail is the fault error's client-facing message, never err.Error():
// a driver's text reaches the log only.
func writeError(c *gin.Context, err error) {
	p := problemOf(c, err, c.Header)
	c.Header("Content-Type", "application/problem+json")
	c.AbortWithStatusJSON(p.Status, p)
}

// problemOf returns the problem document of err, setting the headers that
// go with it (Retry-After, Location, WWW-Authenticate) through header.
func problemOf(c *gin.Context, err error, header func(key, value string)) problem {
	p := problem{}
	var bad *badRequest
	if errors.As(err, &bad) {
		p.Status, p.Title, p.Type, p.Detail = bad.status, bad.title, slugOf(bad.status), bad.detail
	} else {
		kind := fault.KindOf(err)
		m, ok := kindStatus[kind]
		if !ok {
			kind, m = fault.Internal, kindStatus[fault.Internal]
		}
		p.Status, p.Type, p.Title = m.status, m.slug, m.title
		fe := fault.Of(err)
		if fe != nil && fe.Kind == kind {
			p.Detail = fe.Message
			if fe.Code != "" {
				p.Type = fe.Code
				if t, ok := codeTitles[fe.Code]; ok {
					p.Title = t
				}
			}
			for _, f := range fe.Fields {
				p.Errors = append(p.Errors, problemField{Field: f.Field, Message: f.Message})
			}
		}
		switch kind {
		case fault.Internal:
			p.Detail = "an unexpected error occurred"
			logFrom(c).Error("internal error", "err", err)
		case fault.Unauthorized:
			p.Detail = auth.ErrUnauthorized.Message
			header("WWW-Authenticate", `Bearer realm="crm"`)
		case fault.Unavailable:
			retryAfter(header, fe, time.Second)
			logFrom(c).Warn("unavailable", "err", err)
		case fault.Conflict:
			retryAfter(header, fe, 0) // only when the error suggests a retry
		case fault.Moved:
			if fe != nil && fe.Ref != "" {
				header("Location", movedTo(c, fe.Ref))
			}
		}
		if p.Detail == "" {
			p.Detail = defaultDetail(kind)
		}
	}
	p.Type = problemType + p.Type
	p.Instance = c.Request.URL.Path
	p.RequestID = c.GetString(ctxRequestID)
	return p
}

// movedTo returns the request's URL with the path's customer id replaced by
// ref (the survivor of a merge): the same resource of the customer it is
// now, so a client that follows the 308 repeats its request there.
func movedTo(c *gin.Context, ref string) string {
	u := *c.Request.URL
	if id := c.Param("id"); id != "" {
		u.Path = strings.Replace(u.Path, "/customers/"+id, "/customers/"+ref, 1)
	} else {
		u.Path = Base + "/customers/" + ref
	}
	u.Scheme, u.Host, u.RawPath = "", "", ""
	return u.String()
}

// retryAfter sets Retry-After (whole seconds, at least 1) from the error's
// suggestion, else def (0 = no header).
func retryAfter(header func(key, value string), fe *fault.Error, def time.Duration) {
	d := def
	if fe != nil && fe.RetryAfter > 0 {
		d = fe.RetryAfter
	}
	if d > 0 {
		header("Retry-After", strconv.Itoa(int(max(d.Round(time.Second), time.Second)/time.Second)))
	}
}

// defaultDetail is the detail of an error whose kind was given without a
// message (a context deadline, say).
func defaultDetail(k fault.Kind) string {
	switch k {
	case fault.Unavailable:
		return "a backing service is unavailable; retry later"
	case fault.Conflict:
		return "a concurrent change conflicted; retry"
	}
	return strings.ReplaceAll(k.String(), "_", " ")
}

func slugOf(status int) string {
	switch status {
	case http.StatusRequestEntityTooLarge:
		return "too-large"
	case http.StatusUnsupportedMediaType:
		return "unsupported-media-type"
	case http.StatusMethodNotAllowed:
		return "method-not-allowed"
	case http.StatusTooManyRequests:
		return "rate-limited"
	case http.StatusNotFound:
		return "not-found"
	case http.StatusForbidden:
		return "forbidden"
	}
	return "bad-request"
}

func logFrom(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(ctxLogger); ok {
		return l.(*slog.Logger)
	}
	return slog.Default()
}
