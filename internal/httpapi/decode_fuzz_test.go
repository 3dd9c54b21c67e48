package httpapi

import (
	"errors"
	"testing"
	"unicode/utf8"

	"crm/internal/customer"
	"crm/internal/fault"
)

// FuzzDecodeInput: decoding and validating any body never panics, and every
// outcome is either a field-level fault.Invalid error, a malformed-JSON
// badRequest, or an input that validates.
func FuzzDecodeInput(f *testing.F) {
	for _, s := range []string{
		`{"name":"John Smith","email":"john@example.com","tags":["a","b"],"address":{"city":"NY"}}`,
		`{"name":null}`, `{"name":"a","Name":"b"}`, `{"name":"a","name":"b"}`, `[]`, `{`, ``, `null`,
		`{"address":{"street":null,"zip":1}}`, `{"tags":[1,null,"x"]}`, `{"$where":"1"}`, `{"notes":"a\nb\u0000"}`,
		`{"name":"e\u0301"}`, `{"name":"` + "\xff" + `"}`, `{"email":""}`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, create bool) {
		in, err := decodeInput(body, create)
		var bad *badRequest
		switch {
		case fault.Is(err, fault.Invalid):
			if len(fault.Fields(err)) == 0 {
				t.Fatal("validation error without fields")
			}
			for _, fe := range fault.Fields(err) {
				if fe.Field == "" || fe.Message == "" {
					t.Fatalf("empty field error %+v", fe)
				}
			}
		case errors.As(err, &bad):
			if bad.status != 400 || bad.detail == "" {
				t.Fatalf("bad request %+v", bad)
			}
		case err != nil:
			t.Fatalf("unexpected error kind %T: %v", err, err)
		default:
			verr := customer.Validate(in, create)
			if verr == nil && in.Name.Set && !in.Name.Null && !utf8.ValidString(in.Name.Value) {
				t.Fatalf("invalid UTF-8 name accepted: %q", in.Name.Value)
			}
		}
	})
}
