//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDiskFullAndReadOnly runs the real binary (embedded NATS and SQLite)
// on a small tmpfs of its own under a create load, and fills the disk to
// the last byte. While it cannot write, commands answer 503 at once with a
// problem that says so, nothing answers 500, queries keep working and
// /readyz names the cause; once space returns, commands succeed again
// without a restart. Then every acknowledged create is in the stream
// exactly once, codes are unique and the read model serves the fold of the
// stream. Then the process is killed (kill -9), the file system remounted
// read-only (Linux refuses that while files are open for writing, so a
// running service can only meet a full disk, or a read-only disk at start):
// the binary must exit at once with an error naming the directory; back
// read-write, it starts on the same files and the same checks hold.
//
// It needs to mount a tmpfs (root, or CAP_SYS_ADMIN); elsewhere it skips.
func TestDiskFullAndReadOnly(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=48m"); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs root or CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})
	dir := filepath.Join(mnt, "data")
	httpPort, natsPort := freePort(t), freePort(t)
	p := startAPI(t, dir, httpPort, natsPort)

	stop := make(chan struct{})
	res := make(chan []outcome)
	go func() { res <- load(p.url, 4, stop) }()
	time.Sleep(time.Second)

	// 1. The disk fills up.
	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	expectCannotWrite(t, p, "no space left on device")
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	expectWritesAgain(t, p)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	outcomes := <-res
	for _, o := range outcomes {
		if o.status >= 500 && o.status != http.StatusServiceUnavailable {
			t.Fatalf("a create answered %d", o.status)
		}
	}
	check(t, p, outcomes)

	// 2. Read-only at start: a clear error, at once.
	p.cmd.Process.Kill()
	<-p.done
	if err := syscall.Mount("", mnt, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	cmd := exec.Command(binary(t))
	cmd.Env = append(os.Environ(), "HTTP_ADDR=127.0.0.1:"+fmt.Sprint(httpPort), "NATS_PORT="+fmt.Sprint(natsPort),
		"DATA_DIR="+dir, "SECRET_KEY="+testSecret)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || time.Since(start) > 10*time.Second ||
		!strings.Contains(string(out), dir+" is not writable") || !strings.Contains(string(out), "read-only file system") {
		t.Fatalf("start on a read-only data directory: %v after %v; want a quick non-zero exit naming %s:\n%s",
			err, time.Since(start), dir, out)
	}
	if err := syscall.Mount("", mnt, "", syscall.MS_REMOUNT, "size=48m"); err != nil {
		t.Fatalf("remount read-write: %v", err)
	}

	// No corruption: the files written around the failures recover.
	p = startAPI(t, dir, httpPort, natsPort)
	check(t, p, outcomes)
}

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			return
		}
	}
}

// expectCannotWrite waits (the first write after the failure may time out)
// until a create answers 503 at once with Retry-After and a problem saying
// the event store cannot write, and checks that /readyz reports cause and
// that queries still answer.
func expectCannotWrite(t *testing.T, p *proc, cause string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		start := time.Now()
		status, hdr, body := do(t, p, "POST", "/api/v1/crm/customers", `{"name":"Probe"}`)
		took := time.Since(start)
		if status == http.StatusServiceUnavailable && strings.Contains(body, "cannot write to its disk") {
			if hdr.Get("Retry-After") == "" {
				t.Fatalf("503 without Retry-After: %v", hdr)
			}
			// A create already under way when the disk filled may take
			// its append timeout or conflict retries before it answers
			// this; the ones after it must answer at once.
			if took <= time.Second {
				break
			}
			t.Logf("a slow 503 (%v) while the disk filled; waiting for a fast one", took)
		}
		if status != http.StatusCreated && status != http.StatusServiceUnavailable {
			t.Fatalf("create while the disk fails: %d %s", status, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("creates never failed with a clear 503 (last: %d %s)\n%s", status, body, tail(p.log()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The operations listener names the cause; the public port only says
	// which check fails.
	var ready struct {
		Status string
		Checks map[string]string
	}
	r, err := client.Get(p.opsURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	_ = json.Unmarshal(b, &ready)
	if r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(ready.Checks["stream"], cause) {
		t.Errorf("operations /readyz while the disk fails: %d %s; want 503 naming %q", r.StatusCode, b, cause)
	}
	status, _, body := do(t, p, "GET", "/readyz", "")
	ready.Checks = nil
	_ = json.Unmarshal([]byte(body), &ready)
	if status != http.StatusServiceUnavailable || ready.Checks["stream"] != "failing" || strings.Contains(body, "/") {
		t.Errorf("public /readyz while the disk fails: %d %s; want 503, stream failing, no path", status, body)
	}
	if status, _, body := do(t, p, "GET", "/api/v1/crm/customers?perPage=5", ""); status != http.StatusOK {
		t.Errorf("list while the disk fails: %d %s", status, body)
	}
}

// expectWritesAgain waits until a create succeeds and /readyz is ready.
func expectWritesAgain(t *testing.T, p *proc) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		status, _, _ := do(t, p, "POST", "/api/v1/crm/customers", `{"name":"Again"}`)
		if status == http.StatusCreated {
			if r, _, _ := do(t, p, "GET", "/readyz", ""); r == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the service did not write again after the disk returned\n%s", tail(p.log()))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func do(t *testing.T, p *proc, method, path, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, p.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}
