package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// CloudEvents attributes of every customer event.
const (
	SpecVersion       = "1.0"
	ContentType       = "application/json"
	DefaultSource     = "/crm/api"
	typePrefix        = "com.a64core.crm.customer."
	TypeCreatedV1     = typePrefix + "created.v1"
	TypeUpdatedV1     = typePrefix + "updated.v1"
	TypeDeletedV1     = typePrefix + "deleted.v1"
	TypeRestoredV1    = typePrefix + "restored.v1"
	TypeMergedV1      = typePrefix + "merged.v1"
	TypeMergedIntoV1  = typePrefix + "mergedinto.v1"
	TypeMergeUndoneV1 = typePrefix + "mergeundone.v1"
	TypeUnmergedV1    = typePrefix + "unmerged.v1"
	maxEncodedBytes   = 1 << 20
)

// Event is one customer event with its metadata. Seq is the event's stream
// sequence; it is set by the event store when the event is read and is not
// part of the encoded document.
type Event struct {
	ID            string    // CloudEvents id (UUID), also the JetStream Nats-Msg-Id
	Source        string    // CloudEvents source
	AggregateID   string    // CloudEvents subject
	Time          time.Time // when the change happened
	Version       uint64    // its version after this event (1 for created): the customerversion extension
	Actor         string    // the acting user's id (JWT sub)
	CorrelationID string    // the request id that caused it
	CausationID   string    // the id of the message that caused it, if any
	Data          Payload

	Seq uint64 // stream sequence; 0 before it is appended
}

// Kind returns the kind of the event's payload.
func (e Event) Kind() Kind { return e.Data.Kind() }

// Type returns the versioned CloudEvents type of the event (the current
// version of its kind: an upcast event reports the type it was read as).
func (e Event) Type() string {
	d, _ := definitionOf(e.Data)
	return d.Type
}

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
	if _, ok := definitionOf(e.Data); !ok {
		return nil, fmt.Errorf("encode event %s: %T is not a registered event kind", e.ID, e.Data)
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
		Subject:         e.AggregateID,
		Time:            e.Time.UTC().Format(time.RFC3339Nano),
		DataContentType: ContentType,
		Data:            data,
		CustomerVersion: e.Version,
		Actor:           e.Actor,
		CorrelationID:   e.CorrelationID,
		CausationID:     e.CausationID,
	})
}

// Decode parses a CloudEvents JSON document: an unknown type, a missing
// required attribute or payload field, or a payload whose customer id
// differs from the subject is an error wrapping ErrMalformed, never a zero
// value. It is a tolerant reader: unknown CloudEvents extension attributes
// and payload fields it does not know are ignored (adding an optional field
// is a compatible change within a version); older versions of a type are
// upcast to the current payload.
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
		return bad("subject %q is not an id (UUID)", env.Subject)
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
	if payload.subjectID() != env.Subject {
		return bad("the id in data, %q, differs from subject", payload.subjectID())
	}
	if payload.Kind() == KindCreated && env.CustomerVersion != 1 {
		return bad("created event with customerversion %d", env.CustomerVersion)
	}
	return Event{
		ID:            env.ID,
		Source:        env.Source,
		AggregateID:   env.Subject,
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

// decodeData decodes the payload of a registered, versioned event type.
// Older versions of a type are upcast here, so every reader sees the
// current shape.
func decodeData(typ string, raw json.RawMessage) (Payload, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("data missing")
	}
	t, ok := byType[typ]
	if !ok {
		return nil, fmt.Errorf("unknown type %q", typ)
	}
	var p Payload
	if t.up != nil {
		var err error
		if p, err = t.up(raw); err != nil {
			return nil, fmt.Errorf("data (%s): %v", typ, err)
		}
	} else {
		p = t.def.New()
		if err := json.Unmarshal(raw, p); err != nil {
			return nil, fmt.Errorf("data: %v", err)
		}
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("data (%s): %v", typ, err)
	}
	return p, nil
}
