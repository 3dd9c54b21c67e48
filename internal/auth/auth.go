// Package auth verifies the bearer JWTs of the API and maps roles to
// permissions. It knows nothing about HTTP.
package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"crm/internal/fault"
)

// Permissions of the CRM.
const (
	PermView   = "crm.view"
	PermCreate = "crm.create"
	PermEdit   = "crm.edit"
	PermDelete = "crm.delete"
	PermAudit  = "crm.audit"
	// PermImport: start, follow and cancel import jobs.
	PermImport = "crm.import"
	// PermWebhooks: manage webhook subscriptions (create, change, rotate
	// secrets, replay, ping, read deliveries).
	PermWebhooks = "crm.webhooks"
)

// Errors, matched with errors.Is (and of the fault kinds Unauthorized and
// Forbidden).
var (
	// ErrUnauthorized: the token is missing, malformed, badly signed or expired.
	ErrUnauthorized = fault.New(fault.Unauthorized, "a valid bearer token is required")
	// ErrForbidden: the token is valid but lacks the permission.
	ErrForbidden = fault.New(fault.Forbidden, "the token lacks a required permission")
)

// RolePermissions maps a role to the permissions it grants.
type RolePermissions map[string][]string

// DefaultRoles is the seed's mapping: admin, super_admin, moderator and user
// have every CRM permission; crm.audit, crm.import and crm.webhooks are
// for admin and super_admin only.
func DefaultRoles() RolePermissions {
	all := []string{PermView, PermCreate, PermEdit, PermDelete}
	return RolePermissions{
		"super_admin": append(slices.Clone(all), PermAudit, PermImport, PermWebhooks),
		"admin":       append(slices.Clone(all), PermAudit, PermImport, PermWebhooks),
		"moderator":   all,
		"user":        all,
	}
}

// ParseRoles parses a JSON object such as {"admin":["crm.view"]}.
func ParseRoles(s string) (RolePermissions, error) {
	var rp RolePermissions
	if err := json.Unmarshal([]byte(s), &rp); err != nil {
		return nil, fmt.Errorf("role permissions must be a JSON object of role to list of permissions: %w", err)
	}
	return rp, nil
}

// Principal is the authenticated caller.
type Principal struct {
	Subject     string   // the user id (JWT sub)
	Roles       []string // as in the token
	Permissions []string // effective permissions, sorted
}

// Can reports whether the principal holds permission p.
func (p Principal) Can(perm string) bool {
	_, ok := slices.BinarySearch(p.Permissions, perm)
	return ok
}

// Require returns ErrForbidden unless the principal holds perm.
func (p Principal) Require(perm string) error {
	if p.Can(perm) {
		return nil
	}
	return &fault.Error{Kind: fault.Forbidden, Message: "requires permission " + perm, Err: ErrForbidden}
}

// Verifier checks HS256 tokens. It is safe for concurrent use.
type Verifier struct {
	key      []byte
	roles    RolePermissions
	parser   *jwt.Parser
	issuer   string
	audience string
	maxTTL   time.Duration
	// ignorePermissions: see Options.IgnorePermissions.
	ignorePermissions bool
	leeway            time.Duration
	now               func() time.Time

	// Tokens verified before, by their exact text: a client sends the
	// same token on every request, and its check (HMAC, base64, JSON,
	// roles: 13 µs in BenchmarkVerify) was 15% of a CPU profile of gets.
	mu     sync.RWMutex
	cache  map[string]verified
	maxLen int
}

// verified is a token that passed Verify, and until when it stays valid
// (its exp plus the leeway).
type verified struct {
	p     Principal
	until time.Time
}

// verifiedCacheSize bounds the tokens remembered; when full the cache
// starts over (only tokens signed with the key get in, so its churn is that
// of real clients).
const verifiedCacheSize = 4096

// Options of a Verifier.
type Options struct {
	Roles    RolePermissions // default DefaultRoles()
	Issuer   string          // when set, iss must equal it
	Audience string          // when set, aud must contain it
	Leeway   time.Duration   // clock skew allowed on exp/nbf/iat, default 30s
	// MaxTTL, when set, bounds a token's lifetime: exp - iat (exp - now
	// without iat) above it is refused.
	MaxTTL time.Duration
	// IgnorePermissions: a token's permissions claim is ignored and its
	// roles alone grant permissions (through Roles). By default an explicit
	// permissions claim replaces the role mapping.
	IgnorePermissions bool
}

// MaxSubject is the longest subject (sub) accepted, in bytes: the subject is
// stored as createdBy/updatedBy on every change it makes.
const MaxSubject = 200

// NewVerifier returns a verifier for tokens signed with key.
func NewVerifier(key []byte, o Options) *Verifier {
	if o.Roles == nil {
		o.Roles = DefaultRoles()
	}
	if o.Leeway == 0 {
		o.Leeway = 30 * time.Second
	}
	v := &Verifier{key: key, roles: o.Roles, issuer: o.Issuer, audience: o.Audience, maxTTL: o.MaxTTL,
		ignorePermissions: o.IgnorePermissions, leeway: o.Leeway, now: time.Now,
		cache: map[string]verified{}, maxLen: verifiedCacheSize}
	popts := []jwt.ParserOption{
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(o.Leeway),
	}
	if o.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		popts = append(popts, jwt.WithAudience(o.Audience))
	}
	v.parser = jwt.NewParser(popts...)
	return v
}

// claims are the token's claims. Role and Roles accept a string or a list of
// strings; anything else fails to decode (and the token is refused). exp,
// nbf and iat are read strictly (numericDate): they shadow the embedded
// registered claims of the same names, and the Get… methods below hand them
// to the validator.
type claims struct {
	jwt.RegisteredClaims
	Exp         *numericDate `json:"exp,omitempty"`
	Nbf         *numericDate `json:"nbf,omitempty"`
	Iat         *numericDate `json:"iat,omitempty"`
	Role        stringList   `json:"role,omitempty"`
	Roles       stringList   `json:"roles,omitempty"`
	Permissions *stringList  `json:"permissions,omitempty"`
}

func (c claims) GetExpirationTime() (*jwt.NumericDate, error) { return c.Exp.date(), nil }
func (c claims) GetNotBefore() (*jwt.NumericDate, error)      { return c.Nbf.date(), nil }
func (c claims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.Iat.date(), nil }

// numericDate is an RFC 7519 NumericDate: a JSON number of seconds. jwt's
// own type also accepts a string holding a number ("exp":"1893456000"),
// which the RFC does not allow.
type numericDate struct{ jwt.NumericDate }

func (d *numericDate) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return errors.New("a NumericDate must be a JSON number")
	}
	return d.NumericDate.UnmarshalJSON(b)
}

func (d *numericDate) date() *jwt.NumericDate {
	if d == nil {
		return nil
	}
	return &d.NumericDate
}

type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = stringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("must be a string or a list of strings")
	}
	*l = many
	return nil
}

// Verify parses and checks a token and returns its principal. Every failure
// wraps ErrUnauthorized. A token that passed is remembered by its exact text
// until it expires (exp plus the leeway), so a client's repeated token costs
// a map lookup; a failing token is never remembered.
func (v *Verifier) Verify(token string) (Principal, error) {
	now := v.now()
	v.mu.RLock()
	e, ok := v.cache[token]
	v.mu.RUnlock()
	if ok && !now.After(e.until) {
		return e.p, nil
	}
	p, exp, err := v.check(token, now)
	if err != nil {
		if ok {
			v.mu.Lock()
			delete(v.cache, token)
			v.mu.Unlock()
		}
		return Principal{}, err
	}
	v.mu.Lock()
	if len(v.cache) >= v.maxLen {
		clear(v.cache)
	}
	v.cache[token] = verified{p: p, until: exp.Add(v.leeway)}
	v.mu.Unlock()
	return p, nil
}

// check verifies token at now and returns its principal and expiry.
func (v *Verifier) check(token string, now time.Time) (Principal, time.Time, error) {
	var c claims
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		return v.key, nil
	})
	if err != nil {
		return Principal{}, time.Time{}, fmt.Errorf("%w: %v", ErrUnauthorized, err)
	}
	if strings.TrimSpace(c.Subject) == "" {
		return Principal{}, time.Time{}, fmt.Errorf("%w: token has no subject", ErrUnauthorized)
	}
	if len(c.Subject) > MaxSubject || !utf8.ValidString(c.Subject) || strings.ContainsFunc(c.Subject, unicode.IsControl) {
		return Principal{}, time.Time{}, fmt.Errorf("%w: the subject must be at most %d bytes of text without control characters", ErrUnauthorized, MaxSubject)
	}
	if v.maxTTL > 0 {
		from := now
		if c.Iat != nil {
			from = c.Iat.Time
		}
		if c.Exp.Time.Sub(from) > v.maxTTL {
			return Principal{}, time.Time{}, fmt.Errorf("%w: the token's lifetime exceeds the maximum of %v", ErrUnauthorized, v.maxTTL)
		}
	}
	roles := append(slices.Clone([]string(c.Role)), c.Roles...)
	perms := map[string]bool{}
	if c.Permissions != nil && !v.ignorePermissions {
		// An explicit permissions claim is honoured as given.
		for _, p := range *c.Permissions {
			perms[p] = true
		}
	} else {
		for _, r := range roles {
			for _, p := range v.roles[r] {
				perms[p] = true
			}
		}
	}
	list := make([]string, 0, len(perms))
	for p := range perms {
		list = append(list, p)
	}
	sort.Strings(list)
	return Principal{Subject: c.Subject, Roles: roles, Permissions: list}, c.Exp.Time, nil
}

// Mint signs a token for sub with the given roles, valid for ttl. It is for
// development and tests (crmctl token, the embedded start-up banner).
func Mint(key []byte, sub string, roles []string, ttl time.Duration, now time.Time) (string, error) {
	c := struct {
		jwt.RegisteredClaims
		Roles []string `json:"roles,omitempty"`
	}{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   sub,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Roles: roles,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
}
