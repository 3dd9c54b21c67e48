// Command crmbench measures a running crm service the way its users load it
// (many concurrent HTTP clients) next to the physical limits of its own
// parts, measured in the same run on the same machine: synchronous
// JetStream publishes on the service's NATS, and the SQLite read model's
// bulk writes and reads. It prints every figure of the service as a ratio
// of its limit.
//
// It only connects to loopback addresses, bounds every loop by count and
// time, never writes into the service's live read model, and removes its
// scratch stream and temporary files when it ends (also on Ctrl-C).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/auth"
	"crm/internal/natsauth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "crmbench:", err)
		os.Exit(1)
	}
}

// Phases, in the order they run. Pairs measured in alternation (one run of
// the limit, then one of the service) see the same machine conditions.
var phaseNames = []string{
	"topup", "activities", "raw-read", "get", "list", "search", "timeline", "raw-publish", "create", "patch", "ryw",
	"raw-upsert", "catchup", "rebuild",
}

var phaseGroups = map[string][]string{
	"all":     phaseNames,
	"raw":     {"raw-publish", "raw-upsert", "raw-read"},
	"service": {"topup", "activities", "get", "list", "search", "timeline", "create", "patch", "ryw", "catchup", "rebuild"},
	"reads":   {"raw-read", "get", "list", "search", "timeline"},
	"writes":  {"raw-publish", "create", "patch", "ryw"},
	"project": {"raw-upsert", "catchup", "rebuild"},
}

const usage = `crmbench — load tool for the crm service

Drives a running service over HTTP with --clients concurrent clients and, in
the same run, measures the raw limits of its parts on the same machine:
synchronous JetStream publishes on the same NATS (scratch stream, deleted
afterwards) and the SQLite read model's bulk upserts and reads (on temporary
databases and a snapshot copy; the live database is never written). Every
figure is printed as the median of --runs runs with min–max, next to its
limit and the ratio.

Example (the README's embedded service, from the repository root; a built
binary, so that --pid is the service's own process):
  go build -o /tmp/crm-api ./cmd/api && /tmp/crm-api & API_PID=$!
  go run ./cmd/crmbench --pid $API_PID           # about 10 minutes with the defaults

Scale mode (--scale 10k,100k,1m) runs the phases at each size in turn, topping
the data set up before each step, and ends with one table of every figure per
size (docs/PERFORMANCE.md, "Scale"); with --topup-by events it reaches 1,000,000
customers in about 8 minutes (appends, then the read model catching up).

Phases (--phases, comma-separated; groups: all, raw, service, reads, writes, project):
  topup        create customers until the data set has --customers (measured, once)
  activities   append --activities activity events over the sampled customers (not measured)
  raw-read     raw SQLite find-by-id / list / search / timeline on a snapshot copy of the read model
  get          GET /customers/{id}                 (limit: raw find-by-id)
  list         GET /customers with filters, sorts   (limit: raw list on the copy)
  search       GET /customers/search, a query mix   (limit: raw search on the copy)
  timeline     GET /customers/{id}/timeline, first page (limit: raw timeline on the copy)
  raw-publish  sync JetStream publish, --clients in flight, scratch stream
  create       POST /customers                     (limit: raw publish)
  patch        PATCH /customers/{id}                (limit: raw publish)
  ryw          POST then immediately GET the new customer (read-your-writes)
  raw-upsert   SQLite Commit of --batch new documents into a fresh database
  catchup      the projector from the stream's start into a fresh SQLite database (limit: raw upsert)
  rebuild      the full rebuild of the events up to the complete data set

Flags:
`

type bench struct {
	url, token, subject string
	natsURL             string
	dataDir, tmp        string
	natsOpts            []nats.Option // authentication (natsAuth)
	stream              string
	clients             int
	readRate            map[string]float64 // read phase → open-loop rate
	customers           int64
	runs                int
	dur, warmup         time.Duration
	topupTimeout        time.Duration
	topupBy             string // http or events
	rebuildTimeout      time.Duration
	maxOps              int64
	batch, sampleSize   int
	pid                 int
	phases              map[string]bool
	runID               string
	log                 io.Writer

	cl      *client
	nc      *nats.Conn
	js      jetstream.JetStream
	cleanup *cleanups

	ids, codes []string // sample of the data set
	activities int64    // --activities
	rep        *report
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("crmbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	b := &bench{log: stderr, cleanup: &cleanups{}}
	fs.StringVar(&b.url, "url", "http://127.0.0.1:8080", "the service's base URL (loopback only)")
	fs.StringVar(&b.token, "token", "", "bearer token (admin); default: minted with $SECRET_KEY, else --data-dir/secret.key")
	fs.StringVar(&b.natsURL, "nats", "nats://127.0.0.1:4222", "the service's NATS (loopback only): raw publish limit, catch-up and rebuild")
	fs.StringVar(&b.dataDir, "data-dir", "./data", "the service's DATA_DIR: secret.key for the token, readmodel.db for the raw read limits (copied, never written)")
	fs.StringVar(&b.stream, "stream", "CRM_CUSTOMERS", "the customer event stream")
	fs.IntVar(&b.clients, "clients", 32, "concurrent clients (HTTP connections; publishes in flight; store readers)")
	readRate := fs.String("read-rate", "", "open loop for the read phases: offer get, list and search (and their raw limits) a fixed\n"+
		"rate of requests/s in total, e.g. get=2000,list=400,search=40; latency counts from each request's\n"+
		"scheduled start. Empty (or a phase left out) = closed loop: each client sends its next request\n"+
		"when the last is answered, so the mean latency is clients ÷ throughput")
	fs.Int64Var(&b.customers, "customers", 100_000, "data set size for get, list and search (topped up with creates)")
	fs.IntVar(&b.runs, "runs", 3, "runs of each phase (the median is reported, with min–max)")
	fs.DurationVar(&b.dur, "duration", 10*time.Second, "duration of each run of each phase")
	fs.DurationVar(&b.warmup, "warmup", time.Second, "unmeasured warm-up before the first run of each load phase (0 = none)")
	phases := fs.String("phases", "all", "phases to run, comma-separated (see above)")
	jsonOut := fs.Bool("json", false, "print the results as JSON instead of the table")
	fs.IntVar(&b.pid, "pid", 0, "the service's process id: report its resident memory (VmRSS) and CPU per operation")
	fs.Int64Var(&b.maxOps, "max-ops", 2_000_000, "most operations per run of a phase")
	fs.IntVar(&b.batch, "batch", 1000, "documents per raw upsert commit (the projector's largest batch)")
	fs.IntVar(&b.sampleSize, "sample", 20_000, "customer ids sampled (spread over the data set) for get and patch")
	fs.DurationVar(&b.topupTimeout, "topup-timeout", 30*time.Minute, "longest the top-up may take")
	fs.Int64Var(&b.activities, "activities", 0, "the activities phase appends this many ActivityCreated events (atomic batches of 500)\n"+
		"spread over the sampled customers, then waits for the read model: the data set of the timeline phase")
	fs.StringVar(&b.topupBy, "topup-by", "http", "how the top-up creates customers: http (POST /customers, measured) or events\n"+
		"(CustomerCreated events appended to the stream in atomic batches of 500, with codes reserved from the\n"+
		"service's counter: a fast way to reach 1,000,000; then waits for the read model)")
	fs.DurationVar(&b.rebuildTimeout, "rebuild-timeout", 15*time.Minute, "longest one full rebuild may take")
	fs.StringVar(&b.tmp, "tmp", os.TempDir(), "directory for temporary databases (removed at the end)")
	scale := fs.String("scale", "", "scale mode: data set sizes, comma-separated and ascending (e.g. 10000,100000,1000000): for each\n"+
		"size in turn, top up to it (--topup-by; the topup phase is implied) and run the phases, then print every\n"+
		"figure side by side per size, so that the growth of each cost shows. --customers is ignored")
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := b.validate(*phases); err != nil {
		return err
	}
	sizes, err := parseSizes(*scale)
	if err != nil {
		return fmt.Errorf("--scale: %w", err)
	}
	if len(sizes) > 0 {
		b.phases["topup"] = true
		b.customers = sizes[0]
	}
	if b.readRate, err = parseRates(*readRate); err != nil {
		return fmt.Errorf("--read-rate: %w", err)
	}
	if b.natsOpts, err = b.natsAuth(getenv); err != nil {
		return err
	}
	if err := b.resolveToken(getenv); err != nil {
		return err
	}
	b.runID = strings.ToUpper(strings.ReplaceAll(uuid.NewString()[:8], "-", ""))
	if len(sizes) > 0 {
		return b.scaleRun(ctx, sizes, stdout, *jsonOut)
	}

	rep, err := b.once(ctx)
	if rep == nil {
		return err
	}
	if *jsonOut {
		if werr := writeJSON(stdout, rep); werr != nil {
			return werr
		}
	} else {
		rep.writeTable(stdout)
	}
	return err
}

// once runs the selected phases at --customers and returns the finished
// report (nil when nothing was measured) and the error that ended it early.
// Scratch streams, temporary files and connections are gone when it returns.
func (b *bench) once(ctx context.Context) (*report, error) {
	b.rep = newReport(b)
	err := b.execute(ctx)
	if cerr := b.cleanup.runAll(); cerr != nil {
		fmt.Fprintln(b.log, "crmbench: cleanup:", cerr)
	}
	if b.nc != nil {
		b.nc.Close()
		b.nc, b.js = nil, nil
	}
	if b.cl != nil {
		b.cl.close()
		b.cl = nil
	}
	b.ids, b.codes = nil, nil
	if err != nil && !b.rep.hasResults() {
		return nil, err
	}
	if err != nil {
		b.rep.Error = err.Error()
	}
	b.rep.finish(b)
	return b.rep, err
}

// parseRates reads "get=2000,list=400,search=40".
func parseRates(s string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		name, v, ok := strings.Cut(part, "=")
		r, err := strconv.ParseFloat(v, 64)
		if !ok || err != nil || r <= 0 || (name != "get" && name != "list" && name != "search" && name != "timeline") {
			return nil, fmt.Errorf("%q: want get=N, list=N, search=N or timeline=N with N > 0 requests/s", part)
		}
		out[name] = r
	}
	return out, nil
}

func (b *bench) validate(phases string) error {
	var errs []string
	if b.clients < 1 || b.clients > 4096 {
		errs = append(errs, "--clients must be 1 to 4096")
	}
	if b.runs < 1 || b.runs > 100 {
		errs = append(errs, "--runs must be 1 to 100")
	}
	if b.customers < 0 {
		errs = append(errs, "--customers must not be negative")
	}
	if b.topupBy != "http" && b.topupBy != "events" {
		errs = append(errs, "--topup-by must be http or events")
	}
	if b.dur <= 0 || b.dur > time.Hour {
		errs = append(errs, "--duration must be positive, at most 1h")
	}
	if b.warmup < 0 {
		errs = append(errs, "--warmup must not be negative")
	}
	if b.maxOps < 1 || b.batch < 1 || b.sampleSize < 1 {
		errs = append(errs, "--max-ops, --batch and --sample must be positive")
	}
	if b.topupTimeout <= 0 || b.rebuildTimeout <= 0 {
		errs = append(errs, "--topup-timeout and --rebuild-timeout must be positive")
	}
	u, err := url.Parse(b.url)
	if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		errs = append(errs, "--url must be http://host:port")
	} else if !loopback(u.Hostname()) {
		errs = append(errs, fmt.Sprintf("--url: %s is not a loopback address (crmbench only loads a service on this machine)", u.Hostname()))
	}
	for _, s := range strings.Split(b.natsURL, ",") {
		n, err := url.Parse(strings.TrimSpace(s))
		if err != nil || n.Hostname() == "" {
			errs = append(errs, "--nats must be nats://host:port")
		} else if !loopback(n.Hostname()) {
			errs = append(errs, fmt.Sprintf("--nats: %s is not a loopback address", n.Hostname()))
		}
	}
	b.phases = map[string]bool{}
	for _, p := range strings.Split(phases, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
		case phaseGroups[p] != nil:
			for _, q := range phaseGroups[p] {
				b.phases[q] = true
			}
		case slices.Contains(phaseNames, p):
			b.phases[p] = true
		default:
			errs = append(errs, fmt.Sprintf("--phases: unknown phase %q (phases: %s; groups: all, raw, service, reads, writes, project)",
				p, strings.Join(phaseNames, ", ")))
		}
	}
	if len(b.phases) == 0 && len(errs) == 0 {
		errs = append(errs, "--phases selects nothing")
	}
	if b.pid != 0 {
		if _, err := memInfo(b.pid); err != nil {
			errs = append(errs, fmt.Sprintf("--pid %d: %v", b.pid, err))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// loopback reports whether host is a loopback address (or localhost).
func loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// benchSubject is the user id of the tokens crmbench mints (the createdBy
// of the customers it creates).
const benchSubject = "00000000-0000-4000-8000-00000000b3c4"

func (b *bench) resolveToken(getenv func(string) string) error {
	if b.token != "" {
		b.subject = tokenSubject(b.token)
		if b.subject == "" {
			b.subject = benchSubject
		}
		return nil
	}
	key := getenv("SECRET_KEY")
	if key == "" {
		raw, err := os.ReadFile(filepath.Join(b.dataDir, "secret.key"))
		if err != nil {
			return fmt.Errorf("no --token, no $SECRET_KEY and no key in %s (start the service once, or pass --token / --data-dir): %w",
				b.dataDir, err)
		}
		key = strings.TrimSpace(string(raw))
	}
	tok, err := auth.Mint([]byte(key), benchSubject, []string{"admin"}, 12*time.Hour, time.Now())
	if err != nil {
		return err
	}
	b.token, b.subject = tok, benchSubject
	return nil
}

func (b *bench) logf(format string, a ...any) {
	fmt.Fprintf(b.log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}

// needsNATS reports whether a selected phase talks to NATS.
func (b *bench) needsNATS() bool {
	return b.phases["raw-publish"] || b.phases["catchup"] || b.phases["rebuild"] || b.phases["topup"]
}

func (b *bench) execute(ctx context.Context) error {
	b.cl = newClient(b.url, b.token, b.clients)
	pre, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, _, err := b.cl.do(pre, "GET", "/healthz", nil, 200); err != nil {
		return fmt.Errorf("the service at %s does not answer: %w", b.url, err)
	}
	total, err := b.cl.total(pre)
	if err != nil {
		return fmt.Errorf("list customers with the token: %w", err)
	}
	b.rep.Dataset.AtStart = total
	b.logf("service %s: %d customers", b.url, total)
	if b.needsNATS() {
		b.nc, err = nats.Connect(b.natsURL, append(slices.Clone(b.natsOpts), nats.Name("crmbench"), nats.IgnoreDiscoveredServers(),
			nats.MaxReconnects(5), nats.ReconnectWait(200*time.Millisecond), nats.Timeout(5*time.Second))...)
		if err != nil {
			return fmt.Errorf("connect to NATS %s: %w", b.natsURL, err)
		}
		if b.js, err = jetstream.New(b.nc, jetstream.WithDefaultTimeout(10*time.Second)); err != nil {
			return err
		}
		first, last, err := b.streamState(pre)
		if err != nil {
			return err
		}
		b.rep.Dataset.StreamFirst, b.rep.Dataset.StreamLastAtStart = first, last
		b.rep.Dataset.RebuildSeq = last
	}
	b.sampleMemory("start")

	if b.phases["topup"] {
		if err := b.topup(ctx); err != nil {
			return err
		}
	}
	if total, err := b.cl.total(ctx); err == nil {
		b.rep.Dataset.ForReads = total
		if total < b.customers && (b.phases["get"] || b.phases["list"] || b.phases["search"]) {
			b.logf("note: the data set has %d customers, fewer than --customers %d (run the topup phase)", total, b.customers)
		}
	}
	if b.phases["get"] || b.phases["patch"] || b.phases["search"] || b.phases["timeline"] || b.phases["activities"] {
		b.ids, b.codes, err = b.cl.sample(ctx, b.sampleSize)
		if err != nil {
			return fmt.Errorf("sample customer ids: %w", err)
		}
		b.logf("sampled %d customer ids over the data set", len(b.ids))
		if len(b.ids) == 0 && (b.phases["get"] || b.phases["patch"] || b.phases["timeline"] || b.phases["activities"]) {
			return errors.New("the service has no customers to get, patch or record activities of (run the topup phase)")
		}
	}
	if b.phases["activities"] && b.activities > 0 {
		if err := b.seedActivities(ctx, b.activities); err != nil {
			return err
		}
	}
	steps := []func(context.Context) error{b.reads, b.writes, b.projection}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if total, err := b.cl.total(context.WithoutCancel(ctx)); err == nil {
		b.rep.Dataset.AtEnd = total
	}
	b.sampleMemory("end")
	return nil
}

// sampleMemory records the service's resident memory.
func (b *bench) sampleMemory(after string) {
	if b.pid == 0 {
		return
	}
	m, err := memInfo(b.pid)
	if err != nil {
		b.logf("memory of pid %d: %v", b.pid, err)
		return
	}
	b.rep.Memory = append(b.rep.Memory, memSample{After: after, RSSMiB: mib(m.RSS), PeakMiB: mib(m.Peak),
		AnonMiB: mib(m.Anon), FileMiB: mib(m.File), PSSMiB: mib(m.PSS)})
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// cleanups runs registered clean-up actions once each, in reverse order.
type cleanups struct {
	mu   sync.Mutex
	next int
	fns  map[int]cleanupFn
}

type cleanupFn struct {
	what string
	fn   func() error
}

// add registers fn and returns a function that runs it now (once).
func (c *cleanups) add(what string, fn func() error) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fns == nil {
		c.fns = map[int]cleanupFn{}
	}
	id := c.next
	c.next++
	c.fns[id] = cleanupFn{what, fn}
	return func() { _ = c.runOne(id) }
}

func (c *cleanups) runOne(id int) error {
	c.mu.Lock()
	f, ok := c.fns[id]
	delete(c.fns, id)
	c.mu.Unlock()
	if !ok {
		return nil
	}
	if err := f.fn(); err != nil {
		return fmt.Errorf("%s: %w", f.what, err)
	}
	return nil
}

func (c *cleanups) runAll() error {
	c.mu.Lock()
	ids := make([]int, 0, len(c.fns))
	for id := range c.fns {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	slices.Sort(ids)
	slices.Reverse(ids)
	var errs []error
	for _, id := range ids {
		errs = append(errs, c.runOne(id))
	}
	return errors.Join(errs...)
}

// natsAuth returns the NATS authentication (natsauth.ClientOptions: the
// URL's, the NATS_* variables', or the embedded service's in --data-dir).
func (b *bench) natsAuth(getenv func(string) string) ([]nats.Option, error) {
	return natsauth.ClientOptions(b.natsURL, natsauth.FromEnv(getenv), b.dataDir)
}
