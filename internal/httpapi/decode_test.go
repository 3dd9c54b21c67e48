package httpapi

import (
	"strings"
	"testing"
)

// TestMalformedJSONDetails: a body that is not JSON is described in our
// words (what was found, where), never with the Go parser's message.
func TestMalformedJSONDetails(t *testing.T) {
	for body, want := range map[string]string{
		`{"name":"x"`:          "it ends before the JSON is complete",
		`{"name":"x"}garbage`:  "the request body has data after the JSON object",
		`{"name" "x"}`:         `unexpected '"' at line 1, column 9 (byte 9)`,
		"{\n  \"name\": x}":    "unexpected 'x' at line 2, column 11 (byte 13)",
		`{"name":"x",}`:        "unexpected '}' at line 1, column 13 (byte 13)",
		"{\"a\":\x01}":         "unexpected byte 0x01 at line 1, column 6 (byte 6)",
		``:                     "the request body is empty; a JSON object is required",
		`[1]`:                  "the request body must be a JSON object",
		`{"tags":[1,2,]}`:      "unexpected ']' at line 1, column 14 (byte 14)",
		`{"name":"x"} {"a":1}`: "the request body has data after the JSON object",
	} {
		_, err := parseObject([]byte(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want %q", body, err, want)
		}
		if err != nil && (strings.Contains(err.Error(), "invalid character") || strings.Contains(err.Error(), "looking for")) {
			t.Errorf("%q: Go's words: %v", body, err)
		}
	}
}
