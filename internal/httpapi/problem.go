package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"crm/internal/auth"
	"crm/internal/commands"
	"crm/internal/customer"
	"crm/internal/readmodel"
)

// problem is an RFC 9457 problem document. detail keeps clients written for
// the seed's FastAPI {"detail": …} errors working.
type problem struct {
	Type      string                `json:"type"`
	Title     string                `json:"title"`
	Status    int                   `json:"status"`
	Detail    string                `json:"detail"`
	Instance  string                `json:"instance,omitempty"`
	Errors    []customer.FieldError `json:"errors,omitempty"`
	RequestID string                `json:"requestId,omitempty"`
}

const problemType = "urn:crm:problem:"

// writeError is the one place where errors become HTTP responses.
func writeError(c *gin.Context, err error) {
	p := problem{Status: http.StatusInternalServerError}
	var (
		verr *customer.ValidationError
		bad  *badRequest
	)
	switch {
	case errors.As(err, &verr):
		p.Status, p.Title, p.Type = http.StatusBadRequest, "Validation failed", "validation"
		p.Errors = verr.Fields
		p.Detail = verr.Error()
	case errors.As(err, &bad):
		p.Status, p.Title, p.Type, p.Detail = bad.status, bad.title, slugOf(bad.status), bad.detail
	case errors.Is(err, auth.ErrUnauthorized):
		p.Status, p.Title, p.Type = http.StatusUnauthorized, "Unauthorized", "unauthorized"
		p.Detail = "a valid bearer token is required"
		c.Header("WWW-Authenticate", `Bearer realm="crm"`)
	case errors.Is(err, auth.ErrForbidden):
		p.Status, p.Title, p.Type, p.Detail = http.StatusForbidden, "Forbidden", "forbidden", err.Error()
	case errors.Is(err, customer.ErrNotFound), errors.Is(err, readmodel.ErrNotFound):
		p.Status, p.Title, p.Type, p.Detail = http.StatusNotFound, "Not found", "not-found", "customer not found"
	case errors.Is(err, customer.ErrPreconditionFailed):
		p.Status, p.Title, p.Type = http.StatusPreconditionFailed, "Precondition failed", "precondition-failed"
		p.Detail = "the customer has changed: If-Match does not match its current ETag"
	case errors.Is(err, commands.ErrIdempotencyMismatch):
		p.Status, p.Title, p.Type = http.StatusUnprocessableEntity, "Idempotency key reused", "idempotency-key-reused"
		p.Detail = "this Idempotency-Key was used with a different request body"
	case errors.Is(err, commands.ErrConflict), errors.Is(err, customer.ErrAlreadyExists):
		p.Status, p.Title, p.Type, p.Detail = http.StatusConflict, "Conflict", "conflict", err.Error()
	case errors.Is(err, commands.ErrNotWritable):
		p.Status, p.Title, p.Type = http.StatusServiceUnavailable, "Service unavailable", "unavailable"
		p.Detail = "the event store cannot write to its disk (full or read-only); nothing was changed; retry later"
		c.Header("Retry-After", "5")
		logFrom(c).Warn("unavailable", "err", err)
	case errors.Is(err, commands.ErrUnavailable), errors.Is(err, readmodel.ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded):
		p.Status, p.Title, p.Type = http.StatusServiceUnavailable, "Service unavailable", "unavailable"
		p.Detail = "a backing service is unavailable; retry later"
		c.Header("Retry-After", "1")
		logFrom(c).Warn("unavailable", "err", err)
	default:
		p.Title, p.Type, p.Detail = "Internal server error", "internal", "an unexpected error occurred"
		logFrom(c).Error("internal error", "err", err)
	}
	p.Type = problemType + p.Type
	p.Instance = c.Request.URL.Path
	p.RequestID = c.GetString(ctxRequestID)
	c.Header("Content-Type", "application/problem+json")
	c.AbortWithStatusJSON(p.Status, p)
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
	}
	return "bad-request"
}

func logFrom(c *gin.Context) *slog.Logger {
	if l, ok := c.Get(ctxLogger); ok {
		return l.(*slog.Logger)
	}
	return slog.Default()
}
