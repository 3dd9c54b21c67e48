package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"crm/internal/auth"
)

// TestPanicIsA500WithoutInternals: a handler that panics (here: no command
// handler wired) answers a 500 problem that leaks nothing.
func TestPanicIsA500WithoutInternals(t *testing.T) {
	key := []byte("panic-test-key-panic-test-key-0123")
	h := New(Deps{Verifier: auth.NewVerifier(key, auth.Options{}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	tok, _ := auth.Mint(key, "u", []string{"admin"}, time.Hour, time.Now())
	req := httptest.NewRequest("POST", "/api/v1/crm/customers", strings.NewReader(`{"name":"x"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	body := rec.Body.String()
	if rec.Code != http.StatusInternalServerError || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%d %s", rec.Code, body)
	}
	for _, leak := range []string{"nil pointer", "runtime", "goroutine", ".go:"} {
		if strings.Contains(body, leak) {
			t.Fatalf("500 leaks %q: %s", leak, body)
		}
	}
}
