// Package fault is the one set of error kinds of the service. The domain,
// the command side and the adapters (event store, read stores) return
// *Error values of these kinds; the HTTP layer turns a kind into a status in
// exactly one place (httpapi's writeError), and nothing else needs to
// recognise another package's errors.
//
// An Error carries two texts: Message, written for the client (it never
// holds a driver's text: "nats: …", "mongo: …"), and the wrapped cause,
// which is for the logs only. Modelled on benbjohnson/wtf's error codes.
package fault

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Kind classifies an error by what the caller can do about it.
type Kind uint8

// The kinds. The zero Kind is Internal: an error nobody classified is a
// defect and is reported as such, never as a client's mistake.
const (
	Internal           Kind = iota // a defect or an unexpected failure (500)
	Invalid                        // the request is malformed; Fields names what (400)
	Unauthorized                   // no valid credentials (401)
	Forbidden                      // valid credentials, missing permission (403)
	NotFound                       // no such resource (404)
	Conflict                       // a concurrent change won, or the resource exists; retry on fresh state (409)
	PreconditionFailed             // the client's expected version is not current (412)
	Unprocessable                  // well-formed but contradicts an earlier request (422)
	Unavailable                    // a backing service cannot be used now; retry later (503)
	Moved                          // the resource is another one now (a merged customer): Ref names it (308)
)

var kindNames = [...]string{
	Internal: "internal", Invalid: "invalid", Unauthorized: "unauthorized", Forbidden: "forbidden",
	NotFound: "not_found", Conflict: "conflict", PreconditionFailed: "precondition_failed",
	Unprocessable: "unprocessable", Unavailable: "unavailable", Moved: "moved",
}

// Kinds lists every kind (for tests that cover each).
func Kinds() []Kind {
	out := make([]Kind, len(kindNames))
	for i := range kindNames {
		out[i] = Kind(i)
	}
	return out
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// FieldError names one invalid field of a request.
type FieldError struct {
	Field   string
	Message string
}

// Error is a classified error. It is a plain value: package-level *Error
// variables serve as sentinels (errors.Is compares them by identity).
type Error struct {
	Kind Kind
	// Message says what went wrong in words fit for the client.
	Message string
	// Code refines the kind with a stable, machine-readable reason (for
	// example "idempotency-key-reused"); "" = the kind says it all.
	Code string
	// Fields lists every invalid field (Invalid only).
	Fields []FieldError
	// RetryAfter suggests when to retry (Unavailable, Conflict); 0 = the
	// HTTP layer's default.
	RetryAfter time.Duration
	// Ref is the id of what a Moved resource is now.
	Ref string
	// Err is the cause, for the logs; never shown to clients.
	Err error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Kind.String()
	}
	if e.Err != nil {
		return msg + ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind k with a client-facing message.
func New(k Kind, message string) *Error { return &Error{Kind: k, Message: message} }

// Wrap returns an error of kind k with a client-facing message and cause
// (which may be nil).
func Wrap(k Kind, message string, cause error) *Error {
	return &Error{Kind: k, Message: message, Err: cause}
}

// InvalidFields returns an Invalid error listing fields. Its message names the
// first field and how many more there are.
func InvalidFields(fields ...FieldError) *Error {
	msg := "invalid request"
	if len(fields) > 0 {
		msg = "invalid " + fields[0].Field + ": " + fields[0].Message
		if n := len(fields) - 1; n > 0 {
			msg += " (and " + strconv.Itoa(n) + " more)"
		}
	}
	return &Error{Kind: Invalid, Message: msg, Fields: fields}
}

// InvalidField returns an Invalid error about one field.
func InvalidField(field, message string) *Error {
	return InvalidFields(FieldError{Field: field, Message: message})
}

// KindOf returns the kind of the outermost *Error in err's chain. An
// expired or cancelled context is Unavailable (the caller may retry); any
// other error is Internal; nil has no kind and returns Internal too, so
// check err != nil first.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return Unavailable
	}
	return Internal
}

// Is reports whether err is of kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }

// Of returns the outermost *Error of err's chain, or nil.
func Of(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// Fields returns the invalid fields of err (nil when it has none).
func Fields(err error) []FieldError {
	if e := Of(err); e != nil {
		return e.Fields
	}
	return nil
}
