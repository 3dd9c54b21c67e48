package debugserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestServesProfilesOnlyWhenAsked(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if addr, err := Start(t.Context(), "", log); addr != nil || err != nil {
		t.Fatalf("empty address: %v, %v; want nothing started", addr, err)
	}
	if _, err := Start(t.Context(), "not an address", log); err == nil {
		t.Fatal("a bad address was accepted")
	}
	ctx, cancel := context.WithCancel(t.Context())
	addr, err := Start(ctx, "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr.String() + "/debug/pprof/goroutine?debug=1"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("goroutine profile: %d %.200s", resp.StatusCode, body)
	}
	cancel()
	waitClosed := func() bool {
		for range 100 {
			r, err := http.Get(url)
			if err != nil {
				return true
			}
			r.Body.Close()
			time.Sleep(20 * time.Millisecond)
		}
		return false
	}
	if !waitClosed() {
		t.Error("still serving after its context ended")
	}
}
