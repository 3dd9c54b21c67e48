package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/auth"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/natsauth"
)

// These tests run the real cmd/api binary as a separate process, so a
// SIGTERM or a kill -9 hits a real process.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// TestMain removes the binary built for the tests (in its own temp dir).
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "crm-api-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "api")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

const testSecret = "process-test-secret-0123456789abcdef0123"

type proc struct {
	cmd      *exec.Cmd
	url      string
	opsURL   string // the operations listener (METRICS_ADDR)
	natsURL  string
	done     chan error
	stderr   *strings.Builder
	stderrMu *sync.Mutex
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// startAPI starts the binary on dataDir and waits until /readyz is ready.
func startAPI(t *testing.T, dataDir string, httpPort, natsPort int) *proc {
	t.Helper()
	cmd := exec.Command(binary(t))
	opsPort := freePort(t)
	cmd.Env = append(os.Environ(),
		"HTTP_ADDR=127.0.0.1:"+fmt.Sprint(httpPort),
		"METRICS_ADDR=127.0.0.1:"+fmt.Sprint(opsPort),
		"NATS_PORT="+fmt.Sprint(natsPort),
		"DATA_DIR="+dataDir,
		"SECRET_KEY="+testSecret,
		"LOG_LEVEL=warn",
	)
	p := &proc{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", httpPort), opsURL: fmt.Sprintf("http://127.0.0.1:%d", opsPort), natsURL: fmt.Sprintf("nats://127.0.0.1:%d", natsPort),
		done: make(chan error, 1), stderr: &strings.Builder{}, stderrMu: &sync.Mutex{}}
	cmd.Stderr = lockedWriter{p.stderrMu, p.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := http.Get(p.url + "/readyz")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				// The embedded server's credentials, generated at first start.
				user, password, err := natsauth.Load(dataDir)
				if err != nil {
					t.Fatal(err)
				}
				p.natsURL = natsauth.WithUser(p.natsURL, user, password)
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("service did not become ready; stderr:\n%s", p.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) log() string {
	p.stderrMu.Lock()
	defer p.stderrMu.Unlock()
	return p.stderr.String()
}

var token = func() string {
	tok, err := auth.Mint([]byte(testSecret), "99999999-9999-4999-8999-999999999999", []string{"admin"}, time.Hour, time.Now())
	if err != nil {
		panic(err)
	}
	return tok
}()

// outcome of one command, Jepsen style.
type outcome struct {
	status int    // 0: unknown (no response); notSent: refused connection
	id     string // the created customer when 201
	code   string
	name   string // the customer's name, unique per request (see loadSeq)
	start  time.Time
}

// notSent is the status of a request whose connection was never
// established (the process is gone or not listening): it certainly did
// nothing, so it must not widen the "unknown" margin of the checks.
const notSent = -1

var client = &http.Client{Timeout: 15 * time.Second}

func post(url, body string) outcome {
	req, _ := http.NewRequest("POST", url+"/api/v1/crm/customers", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return outcome{status: notSent, start: start}
		}
		return outcome{start: start}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return outcome{}
	}
	o := outcome{status: resp.StatusCode, start: start}
	if resp.StatusCode == http.StatusCreated {
		var env struct {
			Data struct{ CustomerID, CustomerCode string }
		}
		if json.Unmarshal(b, &env) == nil {
			o.id, o.code = env.Data.CustomerID, env.Data.CustomerCode
		}
	}
	return o
}

// loadSeq numbers the creates of every load, so that a create of unknown
// outcome can be looked up in the stream by its name.
var loadSeq atomic.Int64

// load runs creates from n clients until stop is closed.
func load(url string, n int, stop <-chan struct{}) []outcome {
	var mu sync.Mutex
	var all []outcome
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("Load %d", loadSeq.Add(1))
				o := post(url, fmt.Sprintf(`{"name":%q}`, name))
				o.name = name
				mu.Lock()
				all = append(all, o)
				mu.Unlock()
				if o.status <= 0 {
					time.Sleep(20 * time.Millisecond) // the process is gone or restarting
				}
			}
		}()
	}
	wg.Wait()
	return all
}

// streamFold reads the whole customer stream of the running service.
func streamFold(t *testing.T, natsURL string) (map[string]customer.Customer, map[string]int) {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "CRM_CUSTOMERS")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	states := map[string]customer.Customer{}
	creates := map[string]int{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		ev.Seq = seq
		if ev.Kind() == events.KindCreated {
			creates[ev.AggregateID]++
		}
		states[ev.AggregateID] = customer.Evolve(states[ev.AggregateID], ev)
	}
	return states, creates
}

// tally counts the outcomes of a load against the stream.
type tally struct {
	ok, failed, unknown int
	serverErrors        int // answered 5xx
	created             int // created events in the stream
	storedUnknown       int // unknown outcomes whose create is in the stream
}

// check verifies Jepsen-style: every acknowledged create is in the stream
// exactly once, codes are unique, and the read model (through the API)
// serves every live customer of the fold.
func check(t *testing.T, p *proc, outcomes []outcome) tally {
	t.Helper()
	states, creates := streamFold(t, p.natsURL)
	var n tally
	for _, c := range creates {
		n.created += c
	}
	stored := map[string]bool{}
	for _, st := range states {
		stored[st.Name] = true
	}
	ok, failed, unknown, refused := 0, 0, 0, 0
	for _, o := range outcomes {
		switch {
		case o.status == http.StatusCreated:
			ok++
			if creates[o.id] != 1 {
				t.Fatalf("acknowledged create %s appears %d times in the stream", o.id, creates[o.id])
			}
		case o.status == 0:
			unknown++
			if stored[o.name] {
				n.storedUnknown++
			}
		case o.status == notSent:
			refused++
		default:
			failed++
			if o.status >= 500 {
				n.serverErrors++
			}
		}
	}
	n.ok, n.failed, n.unknown = ok, failed, unknown
	codes := map[string]string{}
	for id, st := range states {
		if other, dup := codes[st.Code]; dup {
			t.Fatalf("code %s used by %s and %s", st.Code, other, id)
		}
		codes[st.Code] = id
	}
	// The read model catches up with the fold and serves each customer.
	deadline := time.Now().Add(30 * time.Second)
	for id, st := range states {
		for {
			req, _ := http.NewRequest("GET", p.url+"/api/v1/crm/customers/"+id, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 && resp.Header.Get("ETag") == fmt.Sprintf(`"%d"`, st.Version) {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("read model never served customer %s at version %d", id, st.Version)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("outcomes: %d ok, %d failed, %d unknown (%d of them stored), %d refused connections; stream holds %d customers, %d creates",
		ok, failed, unknown, n.storedUnknown, refused, len(states), n.created)
	if ok == 0 {
		t.Fatal("no command succeeded: the load did not run")
	}
	return n
}

// TestSIGTERMDrainsInFlightCommands sends SIGTERM during a create load: the
// process exits 0 within the grace period, no acknowledged create is lost,
// and every create in flight at the signal is drained: answered, and not
// with a 5xx (NATS must outlive the HTTP drain). An exit that skips the
// drain leaves each client's request in flight unanswered, some of them
// stored: the stream then holds more creates than were answered 201. A
// create may still end unknown after a real drain, when the server closes
// an idle keep-alive connection (or a not yet accepted one) just as the
// client sends on it; such a request was never read, so it is never in the
// stream, and it hits a client only in the instant between two requests.
func TestSIGTERMDrainsInFlightCommands(t *testing.T) {
	const clients = 16
	dir := t.TempDir()
	httpPort, natsPort := freePort(t), freePort(t)
	p := startAPI(t, dir, httpPort, natsPort)
	stop := make(chan struct{})
	res := make(chan []outcome)
	go func() { res <- load(p.url, clients, stop) }()
	time.Sleep(1500 * time.Millisecond)
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.log())
		}
	case <-time.After(shutdownGrace + 5*time.Second):
		t.Fatal("did not exit within the grace period")
	}
	t.Logf("exited 0 after %v", time.Since(start))
	close(stop)
	outcomes := <-res
	p = startAPI(t, dir, httpPort, natsPort)
	n := check(t, p, outcomes)
	if n.serverErrors > 0 {
		t.Errorf("%d creates answered 5xx around the SIGTERM; the drain must answer them", n.serverErrors)
	}
	if n.created > n.ok+n.unknown {
		t.Errorf("the stream holds %d creates but only %d were answered 201 and %d are unknown", n.created, n.ok, n.unknown)
	}
	if n.storedUnknown > 0 {
		t.Errorf("%d creates are in the stream but were never answered: the process exited without draining them", n.storedUnknown)
	}
	// Whether a killed request had been stored yet is luck; that it got no
	// answer is not: nearly every client has a request in flight at any
	// instant, so a skipped drain leaves about one unanswered request per
	// client that was sent before the SIGTERM (12 to 16 of 16 measured). A
	// real drain answers those; what it leaves unanswered are requests
	// sent after the SIGTERM on a keep-alive connection the server closed
	// as idle, up to one per client on a loaded machine (15 of 16 once in
	// CI, none stored), which is HTTP/1.1's race, not a lost request. The
	// stored-unknown check above is the exact one; this count catches a
	// skipped drain that was lucky enough to store none.
	before := 0
	for _, o := range outcomes {
		if o.status == 0 && o.start.Before(start) {
			before++
		}
	}
	t.Logf("unanswered: %d (%d sent before the SIGTERM)", n.unknown, before)
	if before >= 3*clients/4 {
		t.Errorf("%d of %d clients got no answer to a request sent before the SIGTERM: the process exited without draining them", before, clients)
	}
}

// TestKill9DuringLoad kills the service (and with it the embedded NATS and
// the projector) with SIGKILL at random points of a create load, restarts
// it, and checks that nothing acknowledged was lost or duplicated and the
// read model equals the fold of the stream.
func TestKill9DuringLoad(t *testing.T) {
	dir := t.TempDir()
	httpPort, natsPort := freePort(t), freePort(t)
	var outcomes []outcome
	rounds := 3
	if !testing.Short() {
		rounds = 5
	}
	var p *proc
	for round := range rounds {
		p = startAPI(t, dir, httpPort, natsPort)
		stop := make(chan struct{})
		res := make(chan []outcome)
		go func() { res <- load(p.url, 8, stop) }()
		time.Sleep(time.Duration(300+round*170) * time.Millisecond)
		p.cmd.Process.Kill()
		<-p.done
		close(stop)
		outcomes = append(outcomes, <-res...)
	}
	p = startAPI(t, dir, httpPort, natsPort)
	check(t, p, outcomes)
}
