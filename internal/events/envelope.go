package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// CloudEvents attributes of every customer event.
const (
	SpecVersion     = "1.0"
	ContentType     = "application/json"
	DefaultSource   = "/crm/api"
	typePrefix      = "com.a64core.crm.customer."
	TypeCreatedV1   = typePrefix + "created.v1"
	TypeUpdatedV1   = typePrefix + "updated.v1"
	TypeDeletedV1   = typePrefix + "deleted.v1"
	maxEncodedBytes = 1 << 20
)

// Event is one customer event with its metadata. Seq is the event's stream
// sequence; it is set by the event store when the event is read and is not
// part of the encoded document.
type Event struct {
	ID            string    // CloudEvents id (UUID), also the JetStream Nats-Msg-Id
	Source        string    // CloudEvents source
	CustomerID    string    // CloudEvents subject
	Time          time.Time // when the change happened
	Version       uint64    // the customer's version after this event (1 for created)
	Actor         string    // the acting user's id (JWT sub)
	CorrelationID string    // the request id that caused it
	CausationID   string    // the id of the message that caused it, if any
	Data          Payload

	Seq uint64 // stream sequence; 0 before it is appended
}

// Kind returns the kind of the event's payload.
func (e Event) Kind() Kind { return e.Data.Kind() }

// Type returns the versioned CloudEvents type of the event.
func (e Event) Type() string { return typeOf(e.Data.Kind()) }

func typeOf(k Kind) string { return typePrefix + string(k) + ".v1" }

// envelope is the CloudEvents 1.0 structured-mode JSON document.
type envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
	CustomerVersion uint64          `json:"customerversion"`
	Actor           string          `json:"actor"`
	CorrelationID   string          `json:"correlationid,omitempty"`
	CausationID     string          `json:"causationid,omitempty"`
}

// ErrMalformed is wrapped by every Decode error.
var ErrMalformed = errors.New("malformed event")

// Encode returns the CloudEvents JSON document of e.
func Encode(e Event) ([]byte, error) {
	if e.Data == nil {
		return nil, fmt.Errorf("encode event %s: no data", e.ID)
	}
	data, err := json.Marshal(e.Data)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", e.ID, err)
	}
	src := e.Source
	if src == "" {
		src = DefaultSource
	}
	return json.Marshal(envelope{
		SpecVersion:     SpecVersion,
		ID:              e.ID,
		Source:          src,
		Type:            e.Type(),
		Subject:         e.CustomerID,
		Time:            e.Time.UTC().Format(time.RFC3339Nano),
		DataContentType: ContentType,
		Data:            data,
		CustomerVersion: e.Version,
		Actor:           e.Actor,
		CorrelationID:   e.CorrelationID,
		CausationID:     e.CausationID,
	})
}

// Decode parses a CloudEvents JSON document strictly: an unknown type, a
// missing required attribute, a payload with unknown fields or a payload
// whose customer id differs from the subject is an error wrapping
// ErrMalformed, never a zero value. Unknown CloudEvents extension attributes
// are tolerated (they are additive by the CloudEvents rules).
func Decode(b []byte) (Event, error) {
	if len(b) > maxEncodedBytes {
		return Event{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	var env envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	bad := func(format string, a ...any) (Event, error) {
		return Event{}, fmt.Errorf("%w: event %q: %s", ErrMalformed, env.ID, fmt.Sprintf(format, a...))
	}
	if env.SpecVersion != SpecVersion {
		return bad("specversion %q", env.SpecVersion)
	}
	if !isUUID(env.ID) {
		return bad("id is not a UUID")
	}
	if env.Source == "" {
		return bad("source missing")
	}
	if !isUUID(env.Subject) {
		return bad("subject %q is not a customer id", env.Subject)
	}
	t, err := time.Parse(time.RFC3339Nano, env.Time)
	if err != nil {
		return bad("time: %v", err)
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		// Encode writes the time in UTC; it must stay an RFC 3339 year.
		return bad("time %q is out of range", env.Time)
	}
	if env.DataContentType != ContentType {
		return bad("datacontenttype %q", env.DataContentType)
	}
	if env.CustomerVersion == 0 {
		return bad("customerversion missing")
	}
	if env.Actor == "" {
		return bad("actor missing")
	}
	payload, err := decodeData(env.Type, env.Data)
	if err != nil {
		return bad("%v", err)
	}
	if payload.customerID() != env.Subject {
		return bad("data.customerId %q differs from subject", payload.customerID())
	}
	if payload.Kind() == KindCreated && env.CustomerVersion != 1 {
		return bad("created event with customerversion %d", env.CustomerVersion)
	}
	return Event{
		ID:            env.ID,
		Source:        env.Source,
		CustomerID:    env.Subject,
		Time:          t.UTC(),
		Version:       env.CustomerVersion,
		Actor:         env.Actor,
		CorrelationID: env.CorrelationID,
		CausationID:   env.CausationID,
		Data:          payload,
	}, nil
}

// isUUID reports whether s is a UUID in its canonical form (lower case, 36
// characters): the form the service mints, uses in subjects and in URLs.
// uuid.Parse alone also accepts "urn:uuid:…", "{…}", upper case and the
// 32-digit form, which would name the same customer differently.
func isUUID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}

// decodeData decodes the payload of a known, versioned event type. Older
// versions of a type are upcast here, so every reader sees the current shape.
func decodeData(typ string, raw json.RawMessage) (Payload, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("data missing")
	}
	if up, ok := upcasters[typ]; ok {
		p, err := up(raw)
		if err != nil {
			return nil, fmt.Errorf("data (%s): %v", typ, err)
		}
		if err := checkPayload(p); err != nil {
			return nil, fmt.Errorf("data (%s): %v", typ, err)
		}
		return p, nil
	}
	var p Payload
	switch typ {
	case TypeCreatedV1:
		p = new(CustomerCreated)
	case TypeUpdatedV1:
		p = new(CustomerUpdated)
	case TypeDeletedV1:
		p = new(CustomerDeleted)
	default:
		return nil, fmt.Errorf("unknown type %q", typ)
	}
	if err := strictUnmarshal(raw, p); err != nil {
		return nil, fmt.Errorf("data: %v", err)
	}
	if err := checkPayload(p); err != nil {
		return nil, fmt.Errorf("data: %v", err)
	}
	return p, nil
}

func checkPayload(p Payload) error {
	switch d := p.(type) {
	case *CustomerCreated:
		if d.CustomerCode == "" || d.Name == "" || d.Type == "" || d.Status == "" || d.CreatedBy == "" || d.CreatedAt.IsZero() {
			return errors.New("created event misses a required field")
		}
		if d.Tags == nil {
			return errors.New("created event without tags")
		}
	case *CustomerUpdated:
		if d.Changes.Empty() {
			return errors.New("updated event without changes")
		}
		if d.UpdatedBy == "" || d.UpdatedAt.IsZero() {
			return errors.New("updated event misses updatedBy/updatedAt")
		}
		if d.Changes.Name.Null || d.Changes.Type.Null || d.Changes.Status.Null {
			return errors.New("updated event clears a required field")
		}
	case *CustomerDeleted:
		if d.DeletedBy == "" || d.DeletedAt.IsZero() {
			return errors.New("deleted event misses deletedBy/deletedAt")
		}
	}
	return nil
}

// Subject scheme: crm.customers.<customerId>.<kind>.
const (
	SubjectPrefix = "crm.customers"
	// SubjectAll matches every customer event.
	SubjectAll = SubjectPrefix + ".>"
)

// Subject returns the subject of an event of kind k about customer id.
func Subject(customerID string, k Kind) string {
	return SubjectPrefix + "." + customerID + "." + string(k)
}

// CustomerSubjects returns the wildcard that matches every event of one
// customer.
func CustomerSubjects(customerID string) string {
	return SubjectPrefix + "." + customerID + ".*"
}

// KindSubjects returns the wildcard that matches every event of one kind.
func KindSubjects(k Kind) string { return SubjectPrefix + ".*." + string(k) }

// ParseSubject splits a subject into customer id and kind.
func ParseSubject(subject string) (customerID string, k Kind, err error) {
	rest, ok := strings.CutPrefix(subject, SubjectPrefix+".")
	if !ok {
		return "", "", fmt.Errorf("%w: subject %q", ErrMalformed, subject)
	}
	id, kind, ok := strings.Cut(rest, ".")
	if !ok || !isUUID(id) {
		return "", "", fmt.Errorf("%w: subject %q", ErrMalformed, subject)
	}
	switch Kind(kind) {
	case KindCreated, KindUpdated, KindDeleted:
		return id, Kind(kind), nil
	}
	return "", "", fmt.Errorf("%w: subject %q", ErrMalformed, subject)
}
