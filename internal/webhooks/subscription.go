// Package webhooks delivers the customer events to HTTP endpoints that do
// not speak NATS: subscriptions (kept in a JetStream key-value bucket, with
// their history), one durable JetStream consumer per subscription, signed
// POSTs in the Standard Webhooks format (standardwebhooks.com), per-customer
// order, retries with backoff for a day, a log of every attempt and replay
// from any point of the stream.
//
// Like the projector, it is a consumer of the customer stream and so one of
// the few packages that import jetstream; what it decides (validation,
// signatures, the retry schedule, which addresses may be called) is pure
// and tested on its own.
package webhooks

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"crm/internal/events"
	"crm/internal/fault"
)

// Limits of a subscription.
const (
	MaxTypes       = 50
	MaxPattern     = 200
	MaxURL         = 2048
	MaxDescription = 500
	MaxConcurrency = 64
	DefaultConcur  = 8
	MaxSecretGrace = 7 * 24 * time.Hour
	DefaultGrace   = 24 * time.Hour
	// maxOlderSecrets: besides the newest secret, at most this many
	// older ones in their grace periods sign (rotations in a row).
	maxOlderSecrets = 2
)

// Subscription is a webhook subscription as it is stored, secrets included
// (the API never shows them after creation or rotation).
type Subscription struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Types are CloudEvents type patterns (* matches any run of
	// characters) over the events of every aggregate; empty = every
	// customer event (what it meant before contacts and activities had
	// events).
	Types []string `json:"types,omitempty"`
	// CustomerID limits the subscription to one customer's own events
	// (customer events only).
	CustomerID  string `json:"customerId,omitempty"`
	Description string `json:"description,omitempty"`
	Enabled     bool   `json:"enabled"`
	// Concurrency is how many customers' events are in flight at once.
	Concurrency int `json:"concurrency"`
	// DisabledReason says why the service disabled the subscription (the
	// endpoint is gone, or failed for longer than the retry period).
	DisabledReason string     `json:"disabledReason,omitempty"`
	DisabledAt     *time.Time `json:"disabledAt,omitempty"`
	// Secrets sign every request, newest first; an older one signs until
	// its ExpiresAt (the grace period of a rotation).
	Secrets []Secret `json:"secrets"`
	// StartSequence is the stream sequence delivery (re)starts from for
	// Generation: the tip at creation, or a replay's start.
	StartSequence uint64 `json:"startSequence"`
	// Generation grows with every replay: a dispatcher whose consumer was
	// made for an older generation makes a new one at StartSequence.
	Generation uint64    `json:"generation"`
	CreatedAt  time.Time `json:"createdAt"`
	CreatedBy  string    `json:"createdBy"`
	UpdatedAt  time.Time `json:"updatedAt"`
	UpdatedBy  string    `json:"updatedBy"`
	// ReplayedAt/ReplayedBy: the latest replay.
	ReplayedAt *time.Time `json:"replayedAt,omitempty"`
	ReplayedBy string     `json:"replayedBy,omitempty"`
}

// Secret is one signing secret (whsec_ + base64 of 32 random bytes).
type Secret struct {
	Key       string     `json:"key"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

// signingKeys returns the secrets that sign at now, newest first.
func (s Subscription) signingKeys(now time.Time) []string {
	var keys []string
	for _, sec := range s.Secrets {
		if sec.ExpiresAt == nil || now.Before(*sec.ExpiresAt) {
			keys = append(keys, sec.Key)
		}
	}
	return keys
}

// Input is a subscription's writable fields as a create or a merge patch
// gives them: nil = not given; for the clearable fields (Types,
// CustomerID, Description) a patch's explicit null is Clear*.
type Input struct {
	URL              *string
	Types            *[]string
	ClearTypes       bool
	CustomerID       *string
	ClearCustomer    bool
	Description      *string
	ClearDescription bool
	Enabled          *bool
	Concurrency      *int
}

// apply returns s with in applied, validated against policy's URL rules
// (syntax only; addresses are checked by the Manager). create requires a
// URL. Every invalid field is named in one fault.Invalid error.
func apply(s Subscription, in Input, create bool, allowHTTP bool) (Subscription, error) {
	var errs []fault.FieldError
	fail := func(f, m string) { errs = append(errs, fault.FieldError{Field: f, Message: m}) }
	if in.URL != nil {
		if msg := checkURLSyntax(*in.URL, allowHTTP); msg != "" {
			fail("url", msg)
		} else {
			s.URL = *in.URL
		}
	} else if create {
		fail("url", "is required")
	}
	switch {
	case in.ClearTypes:
		s.Types = nil
	case in.Types != nil:
		types := *in.Types
		if len(types) > MaxTypes {
			fail("types", "must list at most 50 patterns")
			break
		}
		var out []string
		for i, p := range types {
			if msg := checkPattern(p); msg != "" {
				fail("types["+strconv.Itoa(i)+"]", msg)
				continue
			}
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
		s.Types = out
	}
	switch {
	case in.ClearCustomer:
		s.CustomerID = ""
	case in.CustomerID != nil:
		if u, err := uuid.Parse(*in.CustomerID); err != nil || u.String() != *in.CustomerID {
			fail("customerId", "must be a customer id (UUID)")
		} else {
			s.CustomerID = *in.CustomerID
		}
	}
	switch {
	case in.ClearDescription:
		s.Description = ""
	case in.Description != nil:
		d := *in.Description
		if !utf8.ValidString(d) || utf8.RuneCountInString(d) > MaxDescription || strings.ContainsRune(d, 0) {
			fail("description", "must be text of at most 500 characters")
		} else {
			s.Description = d
		}
	}
	if in.Enabled != nil {
		if *in.Enabled && !s.Enabled {
			s.DisabledReason, s.DisabledAt = "", nil
		}
		s.Enabled = *in.Enabled
	} else if create {
		s.Enabled = true
	}
	if in.Concurrency != nil {
		if c := *in.Concurrency; c < 1 || c > MaxConcurrency {
			fail("concurrency", "must be 1 to 64")
		} else {
			s.Concurrency = c
		}
	} else if create {
		s.Concurrency = DefaultConcur
	}
	if len(errs) == 0 && s.CustomerID != "" && len(s.FilterSubjects()) == 0 {
		fail("types", "must match a customer event type when customerId is set (a subscription to one customer gets that customer's own events)")
	}
	if len(errs) > 0 {
		return s, fault.InvalidFields(errs...)
	}
	return s, nil
}

// checkURLSyntax returns why raw is not a usable target URL, "" when it is.
func checkURLSyntax(raw string, allowHTTP bool) string {
	if raw == "" || len(raw) > MaxURL || !utf8.ValidString(raw) {
		return "must be an absolute https URL of at most 2048 characters"
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return "must be an absolute https URL, e.g. https://hooks.example.com/crm"
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	case u.Scheme == "http":
		return "must use https (http is allowed only when WEBHOOK_ALLOW_HTTP is set, for development)"
	default:
		return "must use https"
	}
	if strings.Contains(u.Host, "%") {
		return "must not carry an IPv6 zone"
	}
	if u.User != nil {
		return "must not carry credentials: verify the webhook-signature header instead"
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return "must not have a fragment"
	}
	if u.Port() != "" {
		if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
			return "has an invalid port"
		}
	}
	return ""
}

// checkPattern returns why p is not a usable type pattern, "" when it is:
// it must match at least one event type the service writes.
func checkPattern(p string) string {
	if p == "" || len(p) > MaxPattern {
		return "must be an event type or a pattern of at most 200 characters"
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_*", r)) {
			return "may hold only letters, digits, '.', '-', '_' and the wildcard '*'"
		}
	}
	for _, t := range events.Types() {
		if matchPattern(p, t) {
			return ""
		}
	}
	return "matches no event type this service writes (docs/events lists them), e.g. com.a64core.crm.customer.created.v1 or *.customer.deleted.*"
}

// matchPattern reports whether the CloudEvents type t matches pattern p,
// where * matches any run of characters (dots included).
func matchPattern(p, t string) bool {
	for {
		star := strings.IndexByte(p, '*')
		if star < 0 {
			return p == t
		}
		if !strings.HasPrefix(t, p[:star]) {
			return false
		}
		t, p = t[star:], p[star+1:]
		if p == "" {
			return true
		}
		// The shortest match of the star that lets the rest match.
		for i := 0; i <= len(t); i++ {
			if matchPattern(p, t[i:]) {
				return true
			}
		}
		return false
	}
}

// Matches reports whether an event of CloudEvents type t (of any
// version) is for s. Without types: every customer event. A pattern
// matches the customers' events it matches, and a contact's or an
// activity's only when it names the aggregate as a segment of its own
// (".contact.", ".activity."): the patterns of the subscriptions made
// before those events existed ("*", "*.deleted.*") keep meaning the
// customers' events. Of one customer: customer events only.
func (s Subscription) Matches(t string) bool {
	d, known := events.DefinitionOfType(t)
	customers := !known || d.Aggregate == events.Customers
	if !customers && s.CustomerID != "" {
		return false
	}
	if len(s.Types) == 0 {
		return customers
	}
	seg := "." + typeSegment(t) + "."
	for _, p := range s.Types {
		if matchPattern(p, t) && (customers || strings.Contains("."+p, seg)) {
			return true
		}
	}
	return false
}

// typeSegment is the aggregate's segment of a type: "contact" of
// com.a64core.crm.contact.created.v1.
func typeSegment(t string) string {
	parts := strings.Split(t, ".")
	if len(parts) < 3 {
		return t
	}
	return parts[len(parts)-3]
}

// FilterSubjects returns the subjects of the stream s's consumer reads:
// per aggregate, all its events when s matches every kind of it, else the
// kinds s matches; of one customer, that customer's subjects only.
func (s Subscription) FilterSubjects() []string {
	var out []string
	for _, a := range events.Aggregates() {
		var kinds []events.Kind
		all := true
		for _, k := range events.Kinds(a) {
			if d, _ := events.Lookup(a, k); s.Matches(d.Type) {
				kinds = append(kinds, k)
			} else {
				all = false
			}
		}
		switch {
		case len(kinds) == 0:
		case all && s.CustomerID != "":
			out = append(out, events.CustomerSubjects(s.CustomerID))
		case all:
			out = append(out, events.AggregateAll(a))
		default:
			for _, k := range kinds {
				if s.CustomerID != "" {
					out = append(out, events.Subject(s.CustomerID, k))
				} else {
					out = append(out, events.AggregateKindSubjects(a, k))
				}
			}
		}
	}
	return out
}
