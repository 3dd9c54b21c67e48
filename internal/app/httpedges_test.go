package app_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"crm/internal/apptest"
)

// TestDeclaredBodyTooLarge: a Content-Length over the 1 MiB limit is 413 at
// once, without waiting for the body, and a client that sends
// "Expect: 100-continue" gets the 413 instead of a 100 Continue (issue 12,
// item 7). Raw TCP: Go's client would send the body regardless.
func TestDeclaredBodyTooLarge(t *testing.T) {
	e := apptest.StartEmbedded(t)
	addr := strings.TrimPrefix(e.App.URL(), "http://")
	for _, expect := range []bool{false, true} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		req := "POST /api/v1/crm/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + e.Token +
			"\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n"
		if expect {
			req += "Expect: 100-continue\r\n"
		}
		// Only the headers and the start of a body: the server must answer
		// without reading the rest.
		if _, err := fmt.Fprint(conn, req+"\r\n"+`{"name":"`); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("expect=%v: no answer within 5 s: %v", expect, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || time.Since(start) > 2*time.Second {
			t.Errorf("expect=%v: %d after %v; want 413 at once (not 100 Continue)", expect, resp.StatusCode, time.Since(start))
		}
	}
}
