package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"crm/internal/auth"
	"crm/internal/commands"
	"crm/internal/customer"
	"crm/internal/eventstore"
	"crm/internal/fault"
	"crm/internal/readmodel"
)

// TestEveryKindHasAProblem: the one map of kinds to HTTP covers every kind,
// each with its own status.
func TestEveryKindHasAProblem(t *testing.T) {
	statuses := map[int]fault.Kind{}
	for _, k := range fault.Kinds() {
		m, ok := kindStatus[k]
		if !ok || m.status == 0 || m.slug == "" || m.title == "" {
			t.Errorf("kind %s has no problem mapping", k)
			continue
		}
		if other, dup := statuses[m.status]; dup {
			t.Errorf("kinds %s and %s share status %d", k, other, m.status)
		}
		statuses[m.status] = k
	}
}

// TestErrorBodies writes the errors every layer returns, wrapped the way
// the layers wrap them (with a driver's text as the cause), and checks the
// exact status, problem type, detail and Retry-After, and that no problem
// document carries a driver's or an internal text.
func TestErrorBodies(t *testing.T) {
	natsConflict := errors.New("nats: API error: code=400 err_code=10071 description=wrong last sequence: 17")
	natsTimeout := errors.New("nats: timeout")
	mongoDown := errors.New("mongo: server selection error: context deadline exceeded, current topology: { Type: ReplicaSetNoPrimary }")
	sqliteBroken := errors.New("sqlite: constraint failed: UNIQUE constraint failed: customers.customer_code (2067)")
	tests := []struct {
		name       string
		err        error
		status     int
		typ        string
		detail     string
		retryAfter string
		fields     []string
	}{
		{"validation", fault.InvalidFields(fault.FieldError{Field: "email", Message: "must be a valid email address"},
			fault.FieldError{Field: "tags[2]", Message: "must not be empty"}),
			400, "validation", "invalid email: must be a valid email address (and 1 more)", "", []string{"email", "tags[2]"}},
		{"unauthorized", fmt.Errorf("%w: token is expired", auth.ErrUnauthorized), 401, "unauthorized",
			"a valid bearer token is required", "", nil},
		{"forbidden", auth.Principal{}.Require(auth.PermEdit), 403, "forbidden", "requires permission crm.edit", "", nil},
		{"domain not found", customer.ErrNotFound, 404, "not-found", "customer not found", "", nil},
		{"read model not found", readmodel.ErrNotFound, 404, "not-found", "customer not found", "", nil},
		{"precondition", customer.ErrPreconditionFailed, 412, "precondition-failed",
			"the customer has changed: If-Match does not match its current ETag", "", nil},
		{"already exists", customer.ErrAlreadyExists, 409, "conflict", "customer already exists", "", nil},
		{"retries exhausted", fmt.Errorf("%w: %v", commands.ErrConflict, fmt.Errorf("%w: %v", eventstore.ErrConflict, natsConflict)),
			409, "conflict", "it kept changing concurrently; try again", "1", nil},
		{"idempotency reservation churn", eventstore.ErrIdempotencyBusy, 409, "conflict",
			"a concurrent request with this Idempotency-Key is in progress; retry", "1", nil},
		{"idempotency key reused", eventstore.ErrIdempotencyMismatch, 422, "idempotency-key-reused",
			"this Idempotency-Key was used with a different request body", "", nil},
		{"event store unavailable", fmt.Errorf("%w: %v", eventstore.ErrUnavailable, natsTimeout), 503, "unavailable",
			"the event store is unavailable; retry later", "1", nil},
		{"disk full", fmt.Errorf("%w: write /data/jetstream/1.blk: no space left on device", eventstore.ErrNotWritable),
			503, "unavailable", "the event store cannot write to its disk (full or read-only); nothing was changed; retry later", "5", nil},
		{"read model unavailable", fmt.Errorf("%w: mongodb list: %w", readmodel.ErrUnavailable, mongoDown), 503, "unavailable",
			"the read model is unavailable; retry later", "1", nil},
		{"read model internal", fmt.Errorf("%w: sqlite commit: %w", readmodel.ErrInternal, sqliteBroken), 500, "internal",
			"an unexpected error occurred", "", nil},
		{"unclassified", natsConflict, 500, "internal", "an unexpected error occurred", "", nil},
		{"deadline", fmt.Errorf("load: %w", context.DeadlineExceeded), 503, "unavailable",
			"a backing service is unavailable; retry later", "1", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(rec)
			c.Request = httptest.NewRequest("GET", "/api/v1/crm/customers", nil)
			c.Set(ctxRequestID, "req-1")
			writeError(c, tc.err)
			var p struct {
				Type, Title, Detail, Instance, RequestID string
				Status                                   int
				Errors                                   []struct{ Field, Message string }
			}
			body := rec.Body.String()
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("not JSON: %s", body)
			}
			if rec.Code != tc.status || p.Status != tc.status || p.Type != problemType+tc.typ || p.Title == "" ||
				p.Detail != tc.detail || p.Instance != "/api/v1/crm/customers" || p.RequestID != "req-1" {
				t.Errorf("got %d %s", rec.Code, body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("content type %q", ct)
			}
			if got := rec.Header().Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			if tc.status == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			var fields []string
			for _, f := range p.Errors {
				if f.Message == "" {
					t.Errorf("field %q without message", f.Field)
				}
				fields = append(fields, f.Field)
			}
			if fmt.Sprint(fields) != fmt.Sprint(tc.fields) {
				t.Errorf("fields %v, want %v", fields, tc.fields)
			}
			for _, leak := range []string{"nats", "mongo", "sqlite", "API error", "err_code", "topology", "deadline", ".blk", "UNIQUE"} {
				if strings.Contains(strings.ToLower(body), strings.ToLower(leak)) {
					t.Errorf("the problem carries internal text %q: %s", leak, body)
				}
			}
		})
	}
}
