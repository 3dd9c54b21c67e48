package httpapi

import (
	"net/http/httptest"
	"testing"
)

// TestLocalRequest: the local admin session goes only to a browser on the
// service's machine that addresses it by a loopback name, directly (no
// proxy) and from the service's own origin.
func TestLocalRequest(t *testing.T) {
	cases := []struct {
		name, remote, host string
		headers            map[string]string
		want               bool
	}{
		{"loopback ipv4", "127.0.0.1:50000", "127.0.0.1:8080", nil, true},
		{"loopback ipv6", "[::1]:50000", "[::1]:8080", nil, true},
		{"localhost name", "127.0.0.1:50000", "localhost:8080", nil, true},
		{"localhost without port", "127.0.0.1:50000", "LOCALHOST", nil, true},
		{"same origin", "127.0.0.1:50000", "127.0.0.1:8080", map[string]string{"Origin": "http://127.0.0.1:8080"}, true},
		{"ipv4-mapped loopback", "[::ffff:127.0.0.1]:50000", "127.0.0.1:8080", nil, true},
		{"another host", "192.0.2.7:50000", "127.0.0.1:8080", nil, false},
		{"dns rebinding", "127.0.0.1:50000", "evil.example:8080", nil, false},
		{"lan address as host", "127.0.0.1:50000", "192.0.2.1:8080", nil, false},
		{"other origin", "127.0.0.1:50000", "127.0.0.1:8080", map[string]string{"Origin": "http://evil.example"}, false},
		{"other port origin", "127.0.0.1:50000", "127.0.0.1:8080", map[string]string{"Origin": "http://127.0.0.1:9999"}, false},
		{"null origin", "127.0.0.1:50000", "127.0.0.1:8080", map[string]string{"Origin": "null"}, false},
		{"through a proxy", "127.0.0.1:50000", "127.0.0.1:8080", map[string]string{"X-Forwarded-For": "198.51.100.4"}, false},
		{"forwarded", "127.0.0.1:50000", "127.0.0.1:8080", map[string]string{"Forwarded": "for=198.51.100.4"}, false},
		{"no port in remote", "127.0.0.1", "127.0.0.1:8080", nil, false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("POST", "http://"+tc.host+"/console/session", nil)
		r.RemoteAddr, r.Host = tc.remote, tc.host
		for k, v := range tc.headers {
			r.Header.Set(k, v)
		}
		if got := localRequest(r); got != tc.want {
			t.Errorf("%s: localRequest = %v, want %v", tc.name, got, tc.want)
		}
	}
}
