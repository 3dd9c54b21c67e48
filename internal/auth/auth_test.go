package auth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var key = []byte("unit-test-key-unit-test-key-0123456789")

func sign(t *testing.T, m jwt.SigningMethod, k any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	now := time.Now()
	exp := now.Add(time.Hour).Unix()
	v := NewVerifier(key, Options{Issuer: "crm-issuer", Audience: "crm"})
	base := func(extra jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "u1", "exp": exp, "iss": "crm-issuer", "aud": "crm"}
		for k, val := range extra {
			if val == nil {
				delete(c, k)
			} else {
				c[k] = val
			}
		}
		return c
	}
	cases := []struct {
		name  string
		token string
		ok    bool
		perms []string
	}{
		{"role string", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"role": "user"})), true, []string{PermCreate, PermDelete, PermEdit, PermView}},
		{"roles list", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"roles": []string{"admin"}})), true, []string{PermAudit, PermCreate, PermDelete, PermEdit, PermImport, PermView, PermWebhooks}},
		{"explicit permissions win", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"roles": "admin", "permissions": []string{"crm.view"}})), true, []string{PermView}},
		{"unknown role", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"role": "guest"})), true, []string{}},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"iss": "other"})), false, nil},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"aud": "other"})), false, nil},
		{"HS512", sign(t, jwt.SigningMethodHS512, key, base(nil)), false, nil},
		{"other key", sign(t, jwt.SigningMethodHS256, []byte("x-other-key-x-other-key-x-other-key"), base(nil)), false, nil},
		{"expired beyond leeway", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()})), false, nil},
		{"expired within leeway", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"exp": now.Add(-10 * time.Second).Unix(), "role": "user"})), true, []string{PermCreate, PermDelete, PermEdit, PermView}},
		{"nbf in the future", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()})), false, nil},
		{"no exp", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"exp": nil})), false, nil},
		{"blank sub", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"sub": "  "})), false, nil},
		{"sub with a newline", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"sub": "u1\nadmin"})), false, nil},
		{"sub with a NUL", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"sub": "u1\u0000"})), false, nil},
		{"sub too long", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"sub": strings.Repeat("u", MaxSubject+1)})), false, nil},
		{"sub at the limit", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"sub": strings.Repeat("u", MaxSubject), "role": "user"})), true, []string{PermCreate, PermDelete, PermEdit, PermView}},
		{"roles number", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"roles": 7})), false, nil},
		{"permissions object", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"permissions": map[string]int{"a": 1}})), false, nil},
		{"garbage", "not.a.token", false, nil},
		// RFC 7519 §2: a NumericDate is a JSON number; a string is refused.
		{"exp string", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"exp": "1893456000"})), false, nil},
		{"nbf string", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"nbf": "1000000000"})), false, nil},
		{"iat string", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"iat": "1000000000"})), false, nil},
		{"exp bool", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"exp": true})), false, nil},
		{"exp array", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"exp": []any{}})), false, nil},
		{"numeric dates", sign(t, jwt.SigningMethodHS256, key, base(jwt.MapClaims{"exp": float64(exp) + 0.5,
			"nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(), "role": "user"})), true, []string{PermCreate, PermDelete, PermEdit, PermView}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Verify(tc.token)
			if !tc.ok {
				if !errors.Is(err, ErrUnauthorized) {
					t.Fatalf("Verify = %+v, %v; want ErrUnauthorized", p, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Permissions) != len(tc.perms) {
				t.Fatalf("permissions %v, want %v", p.Permissions, tc.perms)
			}
			for i := range tc.perms {
				if p.Permissions[i] != tc.perms[i] || !p.Can(tc.perms[i]) {
					t.Fatalf("permissions %v, want %v", p.Permissions, tc.perms)
				}
			}
			if p.Can("crm.nothing") || !errors.Is(p.Require("crm.nothing"), ErrForbidden) {
				t.Fatal("granted an unknown permission")
			}
		})
	}
}

func TestParseRoles(t *testing.T) {
	rp, err := ParseRoles(`{"auditor":["crm.view","crm.audit"]}`)
	if err != nil || len(rp["auditor"]) != 2 {
		t.Fatalf("%v %v", rp, err)
	}
	if _, err := ParseRoles(`["admin"]`); err == nil {
		t.Fatal("a list accepted as a role map")
	}
	tok, _ := Mint(key, "u", []string{"auditor"}, time.Hour, time.Now())
	p, err := NewVerifier(key, Options{Roles: rp}).Verify(tok)
	if err != nil || !p.Can(PermAudit) || p.Can(PermCreate) {
		t.Fatalf("custom roles: %+v %v", p, err)
	}
}

// TestTokenPolicy: JWT_MAX_TTL bounds exp - iat (exp - now without iat);
// IgnorePermissions makes the roles alone count.
func TestTokenPolicy(t *testing.T) {
	now := time.Now()
	v := NewVerifier(key, Options{MaxTTL: 24 * time.Hour})
	tok := func(c jwt.MapClaims) string {
		c["sub"] = "u1"
		c["role"] = "user"
		return sign(t, jwt.SigningMethodHS256, key, c)
	}
	for _, tc := range []struct {
		name string
		c    jwt.MapClaims
		ok   bool
	}{
		{"24h", jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix()}, true},
		{"25h", jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(25 * time.Hour).Unix()}, false},
		{"30 days, issued 29 days ago", jwt.MapClaims{"iat": now.Add(-29 * 24 * time.Hour).Unix(), "exp": now.Add(24 * time.Hour).Unix()}, false},
		{"no iat, 1h left", jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}, true},
		{"no iat, 2 days left", jwt.MapClaims{"exp": now.Add(48 * time.Hour).Unix()}, false},
	} {
		_, err := v.Verify(tok(tc.c))
		if tc.ok != (err == nil) {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	if _, err := NewVerifier(key, Options{}).Verify(tok(jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(365 * 24 * time.Hour).Unix()})); err != nil {
		t.Errorf("no MaxTTL: a year-long token refused: %v", err)
	}
	roles := NewVerifier(key, Options{IgnorePermissions: true})
	p, err := roles.Verify(sign(t, jwt.SigningMethodHS256, key, jwt.MapClaims{"sub": "u1", "exp": now.Add(time.Hour).Unix(),
		"roles": "user", "permissions": []string{PermAudit}}))
	if err != nil || p.Can(PermAudit) || !p.Can(PermEdit) {
		t.Errorf("IgnorePermissions: %+v %v; want the user role's permissions only", p, err)
	}
}

// TestVerifiedTokens: a token that passed is answered from memory until its
// expiry plus the leeway, then refused; a forged one is never remembered;
// the memory is bounded.
func TestVerifiedTokens(t *testing.T) {
	v := NewVerifier(key, Options{Leeway: time.Second})
	clock := time.Now().Truncate(time.Second)
	v.now = func() time.Time { return clock }
	tok, err := Mint(key, "user-1", []string{"user"}, time.Minute, clock)
	if err != nil {
		t.Fatal(err)
	}
	first, err := v.Verify(tok)
	if err != nil || first.Subject != "user-1" || !first.Can(PermView) {
		t.Fatalf("Verify: %+v, %v", first, err)
	}
	if len(v.cache) != 1 {
		t.Fatalf("%d tokens remembered, want 1", len(v.cache))
	}
	clock = clock.Add(60 * time.Second) // at exp: within the leeway
	if again, err := v.Verify(tok); err != nil || again.Subject != first.Subject || !slices.Equal(again.Permissions, first.Permissions) {
		t.Fatalf("Verify at exp: %+v, %v", again, err)
	}
	clock = clock.Add(2 * time.Second) // past exp + leeway
	if _, err := v.Verify(tok); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Verify after expiry: %v, want ErrUnauthorized", err)
	}
	if len(v.cache) != 0 {
		t.Errorf("the expired token is still remembered")
	}

	clock = clock.Add(-time.Hour)
	forged := tok[:len(tok)-2] + "AA"
	if forged == tok {
		forged = tok[:len(tok)-2] + "BB"
	}
	for range 2 {
		if _, err := v.Verify(forged); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("forged token: %v", err)
		}
	}
	if len(v.cache) != 0 {
		t.Errorf("a forged token was remembered")
	}

	v.maxLen = 3
	for i := range 7 {
		tok, err := Mint(key, fmt.Sprintf("user-%d", i), []string{"admin"}, time.Hour, clock)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if p, err := v.Verify(tok); err != nil || p.Subject != fmt.Sprintf("user-%d", i) {
				t.Fatalf("token %d: %+v, %v", i, p, err)
			}
		}
		if len(v.cache) > 3 {
			t.Fatalf("%d tokens remembered, bound 3", len(v.cache))
		}
	}
}
