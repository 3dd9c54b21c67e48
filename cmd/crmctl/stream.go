package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/app"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/natsauth"
)

const streamName = "CRM_CUSTOMERS"

// natsFlags are the connection flags every stream command takes.
type natsFlags struct {
	url     *string
	stream  *string
	dataDir func() string
	auth    natsauth.Config // NATS_CREDS, NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_CA, …
}

func addNATSFlags(fs *flag.FlagSet, getenv func(string) string) natsFlags {
	def := getenv("NATS_URL")
	if def == "" {
		def = "nats://127.0.0.1:4222"
	}
	f := natsFlags{
		url:    fs.String("nats", def, "NATS server URL (default $NATS_URL, else the embedded service's nats://127.0.0.1:4222)"),
		stream: fs.String("stream", streamName, "customer events stream"),
		auth:   natsauth.FromEnv(getenv),
	}
	// The embedded service's NATS credentials are in its data directory
	// (verify's --data-dir is the same directory).
	if dd := fs.Lookup("data-dir"); dd != nil {
		f.dataDir = func() string { return dd.Value.String() }
	} else {
		dir := getenv("DATA_DIR")
		if dir == "" {
			dir = "./data"
		}
		v := fs.String("data-dir", dir, "embedded mode: the service's data directory, holding its NATS credentials (default $DATA_DIR or ./data)")
		f.dataDir = func() string { return *v }
	}
	return f
}

// options returns the connection's authentication (natsauth.ClientOptions:
// the URL's, the NATS_* variables', or the embedded service's in the data
// directory).
func (f natsFlags) options() ([]nats.Option, error) {
	return natsauth.ClientOptions(*f.url, f.auth, f.dataDir())
}

type conn struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
}

func (f natsFlags) connect(ctx context.Context) (*conn, error) {
	opts, err := f.options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(*f.url, append([]nats.Option{nats.Name("crmctl"), nats.Timeout(5 * time.Second)}, opts...)...)
	if err != nil {
		hint := "is the service running? set --nats or NATS_URL"
		if errors.Is(err, nats.ErrAuthorization) {
			hint = "the embedded service's credentials are in DATA_DIR/" + natsauth.EmbeddedFile + " (--data-dir); a NATS cluster's come from NATS_CREDS, NATS_USER/NATS_PASSWORD or NATS_TOKEN"
		}
		return nil, fmt.Errorf("connect to NATS at %s: %w (%s)", app.RedactURL(*f.url), err, hint)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	s, err := js.Stream(ctx, *f.stream)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("stream %s: %w", *f.stream, err)
	}
	return &conn{nc: nc, js: js, stream: s}, nil
}

func (c *conn) close() { c.nc.Close() }

// replay calls fn for every event of the stream matching filter (all when
// ""), in order, up to the stream's last sequence at the time of the call.
// progress, when not nil, is told how far it got.
func (c *conn) replay(ctx context.Context, filter string, fn func(events.Event) error, progress func(done, total uint64)) (uint64, error) {
	return c.replayWith(ctx, replayOpts{filter: filter}, fn, progress)
}

// replayOpts narrow a replay: a subject filter for the server, a last
// sequence (0 = the stream's last at the call) and a subject test applied
// before an event is decoded.
type replayOpts struct {
	filter string
	upTo   uint64
	keep   func(subject string) bool
}

func (c *conn) replayWith(ctx context.Context, o replayOpts, fn func(events.Event) error, progress func(done, total uint64)) (uint64, error) {
	info, err := c.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	last := info.State.LastSeq
	if o.upTo > 0 && o.upTo < last {
		last = o.upTo
	}
	if info.State.Msgs == 0 {
		return 0, nil
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if o.filter != "" {
		cfg.FilterSubjects = []string{o.filter}
	}
	cons, err := c.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return 0, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return 0, err
	}
	defer it.Stop()
	for {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		m, err := it.Next()
		if err != nil {
			return 0, err
		}
		md, err := m.Metadata()
		if err != nil {
			return 0, err
		}
		seq := md.Sequence.Stream
		if seq > last {
			return last, nil
		}
		if !events.IsClaimSubject(m.Subject()) && (o.keep == nil || o.keep(m.Subject())) {
			ev, err := events.Decode(m.Data())
			if err != nil {
				return 0, fmt.Errorf("stream sequence %d: %w", seq, err)
			}
			ev.Seq = seq
			if err := fn(ev); err != nil {
				return 0, err
			}
		}
		if progress != nil {
			progress(seq, last)
		}
		if seq >= last || md.NumPending == 0 {
			return last, nil
		}
	}
}

// customerEvents returns one customer's events; the reference is a customer
// id or a code (C001), resolved from the created events.
func (c *conn) customerEvents(ctx context.Context, ref string) ([]events.Event, error) {
	id := ref
	if !looksLikeUUID(ref) {
		code := strings.ToUpper(ref)
		found := ""
		errFound := errors.New("found")
		_, err := c.replay(ctx, events.KindSubjects(events.KindCreated), func(ev events.Event) error {
			if ev.Data.(*events.CustomerCreated).CustomerCode == code {
				found = ev.AggregateID
				return errFound
			}
			return nil
		}, nil)
		if err != nil && !errors.Is(err, errFound) {
			return nil, err
		}
		if found == "" {
			return nil, fmt.Errorf("no customer with id or code %q", ref)
		}
		id = found
	}
	var out []events.Event
	_, err := c.replay(ctx, events.CustomerSubjects(id), func(ev events.Event) error {
		out = append(out, ev)
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no customer with id %s", id)
	}
	return out, nil
}

func looksLikeUUID(s string) bool {
	return len(s) == 36 && strings.Count(s, "-") == 4
}

// foldAll folds the whole stream (events up to asOf when not zero) into the
// state of every customer.
func (c *conn) foldAll(ctx context.Context, asOf time.Time, progress func(done, total uint64)) (map[string]customer.Customer, []string, uint64, error) {
	states := map[string]customer.Customer{}
	var order []string
	last, err := c.replay(ctx, "", func(ev events.Event) error {
		if ev.Data.Aggregate() != events.Customers || !asOf.IsZero() && ev.Time.After(asOf) {
			return nil // another aggregate's event (a contact's), or after asOf
		}
		if _, ok := states[ev.AggregateID]; !ok {
			order = append(order, ev.AggregateID)
		}
		states[ev.AggregateID] = customer.Evolve(states[ev.AggregateID], ev)
		return nil
	}, progress)
	return states, order, last, err
}

// progressBar draws a progress bar on stderr when it is a terminal.
func progressBar(label string) (func(done, total uint64), func()) {
	fi, err := os.Stderr.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil, func() {}
	}
	var lastDraw time.Time
	draw := func(done, total uint64) {
		if time.Since(lastDraw) < 100*time.Millisecond && done < total {
			return
		}
		lastDraw = time.Now()
		pct := 100.0
		if total > 0 {
			pct = float64(done) * 100 / float64(total)
		}
		n := int(pct / 5)
		fmt.Fprintf(os.Stderr, "\r%s [%-20s] %5.1f%% %d/%d", label, strings.Repeat("#", n), pct, done, total)
	}
	return draw, func() { fmt.Fprintln(os.Stderr) }
}
