package audit

import (
	"testing"
	"time"
)

func TestParseAsOf(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2026-12-01T10:00:00Z", "2026-12-01T10:00:00.999999999Z"},
		{"2026-12-01T10:00:00.123Z", "2026-12-01T10:00:00.123999999Z"},
		{"2026-12-01T10:00:00.1Z", "2026-12-01T10:00:00.199999999Z"},
		{"2026-12-01T10:00:00.123456789Z", "2026-12-01T10:00:00.123456789Z"},
		{"2026-12-01T11:00:00.5+01:00", "2026-12-01T10:00:00.599999999Z"},
	}
	for _, tc := range tests {
		got, err := ParseAsOf(tc.in)
		if err != nil || got.UTC().Format(time.RFC3339Nano) != tc.want {
			t.Errorf("ParseAsOf(%s) = %s, %v; want %s", tc.in, got.UTC().Format(time.RFC3339Nano), err, tc.want)
		}
	}
	for _, bad := range []string{"", "tomorrow", "2026-12-01", "2026-12-01T10:00:00"} {
		if _, err := ParseAsOf(bad); err == nil {
			t.Errorf("ParseAsOf(%q) accepted", bad)
		}
	}
}
