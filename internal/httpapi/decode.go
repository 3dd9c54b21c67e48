package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

// badRequest is a malformed request that is not about one field (bad JSON,
// wrong content type, …).
type badRequest struct {
	status int
	title  string
	detail string
}

func (e *badRequest) Error() string { return e.detail }

const maxTags = 1000 // hard bound on the tags array before validation

// Writable and read-only fields of the customer body.
var (
	readOnlyFields = map[string]bool{"customerId": true, "customerCode": true, "createdBy": true, "createdAt": true, "updatedAt": true}
)

// decodeInput parses a create or update body strictly: a single JSON object,
// exact (case-sensitive) keys, no duplicates, no unknown or read-only keys,
// the right JSON type for every field. Every field problem is reported at
// once in a fault.Invalid error; broken JSON is a *badRequest.
func decodeInput(body []byte, create bool) (customer.Input, error) {
	var in customer.Input
	obj, err := parseObject(body)
	if err != nil {
		return in, err
	}
	var errs []fault.FieldError
	fail := func(f, m string) { errs = append(errs, fault.FieldError{Field: f, Message: m}) }

	for _, kv := range obj {
		switch kv.key {
		case "name":
			in.Name = stringField(kv, fail)
		case "email":
			in.Email = stringField(kv, fail)
		case "phone":
			in.Phone = stringField(kv, fail)
		case "company":
			in.Company = stringField(kv, fail)
		case "type":
			in.Type = stringField(kv, fail)
		case "status":
			in.Status = stringField(kv, fail)
		case "notes":
			in.Notes = stringField(kv, fail)
		case "tags":
			in.Tags = tagsField(kv, fail)
		case "externalId":
			in.ExternalID = stringField(kv, fail)
		case "address":
			in.Address = addressField(kv, fail)
		default:
			if readOnlyFields[kv.key] {
				fail(kv.path, "is read-only")
			} else {
				fail(kv.path, "is not a known field")
			}
		}
	}
	if len(errs) > 0 {
		// Also report the problems of the fields that did decode.
		errs = append(errs, fault.Fields(customer.Validate(in, create))...)
		return in, fault.InvalidFields(errs...)
	}
	return in, nil
}

type keyValue struct {
	key   string
	path  string
	value json.RawMessage
}

// parseObject reads one JSON object into its members in order, rejecting
// duplicate keys and trailing data.
func parseObject(body []byte) ([]keyValue, error) {
	return parseObjectAt(body, "")
}

func parseObjectAt(body []byte, prefix string) ([]keyValue, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	malformed := func(detail string) error {
		return &badRequest{status: 400, title: "Malformed JSON", detail: detail}
	}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, malformed("the request body is empty; a JSON object is required")
		}
		return nil, malformed("the request body is not valid JSON: " + jsonErr(body, err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		if prefix != "" {
			return nil, fault.InvalidField(prefix, "must be an object or null")
		}
		return nil, malformed("the request body must be a JSON object")
	}
	var out []keyValue
	seen := map[string]bool{}
	for dec.More() {
		from := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, malformed("the request body is not valid JSON: " + jsonErr(body, err))
		}
		key := tok.(string) // object keys are always strings
		path := key
		if key == "" {
			path = `""` // name the empty key visibly
		}
		if prefix != "" {
			path = prefix + "." + path
		}
		// The decoder replaces invalid UTF-8 by U+FFFD; RFC 8259 §8.1
		// requires UTF-8, so a key that was not is refused, not renamed.
		if !utf8.Valid(body[from:dec.InputOffset()]) {
			return nil, fault.InvalidField(path, "the key is not valid UTF-8")
		}
		if seen[key] {
			return nil, fault.InvalidField(path, "appears more than once")
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, malformed("the request body is not valid JSON: " + jsonErr(body, err))
		}
		out = append(out, keyValue{key: key, path: path, value: raw})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, malformed("the request body is not valid JSON: " + jsonErr(body, err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, malformed("the request body has data after the JSON object")
	}
	return out, nil
}

// jsonErr says in our words where body stops being JSON: the character
// found, its line and column (1-based, in bytes) and byte offset. The
// streaming decoder's offsets are not the body's, so the body is scanned
// again as a whole (on this error path only).
func jsonErr(body []byte, _ error) string {
	var v any
	var se *json.SyntaxError
	if err := json.Unmarshal(body, &v); errors.As(err, &se) {
		if se.Offset <= 0 || se.Offset >= int64(len(body)) && strings.Contains(se.Error(), "end of JSON") {
			return "it ends before the JSON is complete"
		}
		at := int(min(se.Offset, int64(len(body)))) - 1
		line := 1 + bytes.Count(body[:at], []byte("\n"))
		col := at - bytes.LastIndexByte(body[:at], '\n')
		return fmt.Sprintf("unexpected %s at line %d, column %d (byte %d)", describeByte(body[at]), line, col, at+1)
	}
	return "it is not a JSON object"
}

// describeByte names a byte for an error message without echoing
// arbitrary input: a printable ASCII character quoted, others by code.
func describeByte(b byte) string {
	switch {
	case b == '"':
		return `'"'`
	case b > ' ' && b < 0x7f:
		return "'" + string(b) + "'"
	case b == ' ' || b == '\t' || b == '\n' || b == '\r':
		return "white space"
	default:
		return fmt.Sprintf("byte 0x%02x", b)
	}
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func stringField(kv keyValue, fail func(f, m string)) customer.Field[string] {
	if isNull(kv.value) {
		return events.Cleared[string]()
	}
	if !utf8.Valid(kv.value) { // the decoder would replace it by U+FFFD
		fail(kv.path, "must be valid UTF-8")
		return customer.Field[string]{}
	}
	var s string
	if err := json.Unmarshal(kv.value, &s); err != nil {
		fail(kv.path, "must be a string")
		return customer.Field[string]{}
	}
	return events.SetTo(s)
}

func tagsField(kv keyValue, fail func(f, m string)) customer.Field[[]string] {
	if isNull(kv.value) {
		return events.Cleared[[]string]()
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(kv.value, &raw); err != nil {
		fail(kv.path, "must be an array of strings")
		return customer.Field[[]string]{}
	}
	if len(raw) > maxTags {
		fail(kv.path, "at most "+strconv.Itoa(customer.MaxTags)+" tags")
		return customer.Field[[]string]{}
	}
	tags := make([]string, 0, len(raw))
	ok := true
	for i, r := range raw {
		var s string
		if err := json.Unmarshal(r, &s); err != nil || isNull(r) {
			fail(kv.path+"["+strconv.Itoa(i)+"]", "must be a string")
			ok = false
			continue
		}
		if !utf8.Valid(r) {
			fail(kv.path+"["+strconv.Itoa(i)+"]", "must be valid UTF-8")
			ok = false
			continue
		}
		tags = append(tags, s)
	}
	if !ok {
		return customer.Field[[]string]{}
	}
	return events.SetTo(tags)
}

func addressField(kv keyValue, fail func(f, m string)) customer.AddressInput {
	if isNull(kv.value) {
		return customer.AddressInput{Set: true, Null: true}
	}
	members, err := parseObjectAt(kv.value, kv.path)
	if err != nil {
		if fault.Is(err, fault.Invalid) {
			for _, f := range fault.Fields(err) {
				fail(f.Field, f.Message)
			}
		} else {
			fail(kv.path, "must be an object or null")
		}
		return customer.AddressInput{}
	}
	a := customer.AddressInput{Set: true}
	for _, m := range members {
		switch m.key {
		case "street":
			a.Street = stringField(m, fail)
		case "city":
			a.City = stringField(m, fail)
		case "state":
			a.State = stringField(m, fail)
		case "country":
			a.Country = stringField(m, fail)
		case "postalCode":
			a.PostalCode = stringField(m, fail)
		default:
			fail(m.path, "is not a known field (allowed: street, city, state, country, postalCode)")
		}
	}
	return a
}
