package app_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"crm/internal/apptest"
)

// TestTokenPolicy: JWT_MAX_TTL refuses long-lived tokens, and
// JWT_PERMISSIONS_CLAIM=false makes a token's roles alone count (issue 12,
// item 5), over HTTP.
func TestTokenPolicy(t *testing.T) {
	cfg := apptest.Config(t, t.TempDir())
	cfg.JWTMaxTTL = time.Hour
	cfg.JWTPermissionsClaim = false
	e := apptest.Start(t, cfg)
	now := time.Now()
	tok := func(c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(apptest.Secret))
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	get := func(auth string) int {
		return e.Do("GET", "/api/v1/crm/customers", nil, "Authorization", auth).Status
	}
	if s := get(tok(jwt.MapClaims{"sub": "u", "roles": "user", "iat": now.Unix(), "exp": now.Add(50 * time.Minute).Unix()})); s != http.StatusOK {
		t.Errorf("a 50-minute token: %d", s)
	}
	if s := get(tok(jwt.MapClaims{"sub": "u", "roles": "user", "iat": now.Unix(), "exp": now.Add(2 * time.Hour).Unix()})); s != http.StatusUnauthorized {
		t.Errorf("a 2-hour token with JWT_MAX_TTL=1h: %d", s)
	}
	// A permissions claim granting more than the role is ignored.
	user := tok(jwt.MapClaims{"sub": "u", "roles": "user", "permissions": []string{"crm.view", "crm.audit"}, "exp": now.Add(30 * time.Minute).Unix()})
	c := create(t, e, `{"name":"Policy"}`)
	if r := e.Do("GET", "/api/v1/crm/customers/"+c.CustomerID+"/history", nil, "Authorization", user); r.Status != http.StatusForbidden {
		t.Errorf("history with a user role and a crm.audit permissions claim, claims off: %d", r.Status)
	}
	if r := e.Do("PATCH", "/api/v1/crm/customers/"+c.CustomerID, `{"status":"active"}`, "Authorization", user); r.Status != http.StatusOK {
		t.Errorf("patch with the user role, claims off: %d %s", r.Status, r.Body)
	}
}
