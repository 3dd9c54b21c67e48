// Package projections builds the customers read model from the event stream.
//
// The projector reads the whole stream in order with an ordered JetStream
// consumer that starts after the checkpoint kept in the read model itself:
// the position is durable in the same store (and, on SQLite, the same
// transaction) as the documents, so a crash at any instant resumes exactly
// where the committed state ends. Every projector process reads every event
// in order, and every document write is guarded by the document's stream
// sequence, so redelivery, replays and several projectors at once never
// corrupt or regress a document. (A shared durable work-queue consumer would
// split one customer's events between projectors and break that order.)
package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/activity"
	"crm/internal/audit"
	"crm/internal/contact"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/metrics"
	"crm/internal/readmodel"
)

// ErrCorrupt wraps an event the projector cannot apply (malformed, unknown
// type, or out of order for its customer). The projector stops at it.
var ErrCorrupt = errors.New("projector: cannot apply event")

// Projector applies the stream to a read model. WaitFor and Status are safe
// for concurrent use with Run.
type Projector struct {
	js       jetstream.JetStream
	stream   string
	store    readmodel.Writer
	log      *slog.Logger
	maxBatch int
	metrics  *metrics.Metrics

	// Of the last message received (used by the run goroutine only).
	pending uint64
	lastTS  time.Time

	mu        sync.Mutex
	applied   uint64        // checkpoint reached
	progress  chan struct{} // closed and replaced whenever applied moves
	err       error         // why the projector is not advancing, if it is not
	lastAt    time.Time     // when the last batch was committed
	lagEvents uint64        // events pending after the last batch
}

// Options of a Projector.
type Options struct {
	MaxBatch int // events per read-model commit, default 1000
	Logger   *slog.Logger
	Metrics  *metrics.Metrics // optional
}

// New returns a projector of stream into store.
func New(js jetstream.JetStream, stream string, store readmodel.Writer, o Options) *Projector {
	if o.MaxBatch == 0 {
		o.MaxBatch = 1000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Projector{js: js, stream: stream, store: store, log: o.Logger, maxBatch: o.MaxBatch, metrics: o.Metrics, progress: make(chan struct{})}
}

// Status is the projector's health.
type Status struct {
	Applied uint64    // stream sequence up to which the read model is built
	Err     error     // non-nil: the projector is stuck (see the message)
	LastAt  time.Time // time of the last commit
	Pending uint64    // events after Applied known to be in the stream
}

// Status returns the projector's current status.
func (p *Projector) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Status{Applied: p.applied, Err: p.err, LastAt: p.lastAt, Pending: p.lagEvents}
}

// WaitFor blocks until the read model includes the event at seq or ctx ends,
// and reports whether it got there.
func (p *Projector) WaitFor(ctx context.Context, seq uint64) bool {
	for {
		p.mu.Lock()
		done, ch := p.applied >= seq, p.progress
		p.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

func (p *Projector) setApplied(seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq > p.applied {
		p.applied = seq
		close(p.progress)
		p.progress = make(chan struct{})
	}
	p.err = nil
	p.lastAt = time.Now()
}

func (p *Projector) setErr(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
	if err != nil {
		p.metrics.ProjectorError()
	}
}

// Run projects until ctx ends. It returns nil when ctx ends, or an error
// wrapping ErrCorrupt when it meets an event it cannot apply: it then has
// applied every event before it, logs it with its stream sequence, and
// Status reports the error until the process is restarted. Failures of NATS
// or the store are retried forever (Status reports them meanwhile).
func (p *Projector) Run(ctx context.Context) error {
	return p.run(ctx, 0)
}

// CatchUp projects until the read model includes the event at seq (or
// returns the error Run would stop with).
func (p *Projector) CatchUp(ctx context.Context, seq uint64) error {
	return p.run(ctx, seq)
}

func (p *Projector) run(ctx context.Context, until uint64) error {
	for {
		err := p.runOnce(ctx, until)
		if err == nil && until > 0 {
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrCorrupt) {
			p.setErr(err)
			p.log.Error("projector stopped at an event it cannot apply", "err", err)
			return err
		}
		p.setErr(err)
		p.log.Warn("projector interrupted, retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// runOnce consumes from the checkpoint until an error or ctx ends.
func (p *Projector) runOnce(ctx context.Context, until uint64) error {
	cp, err := p.store.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	p.setApplied(cp)
	if until > 0 && cp >= until {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if cp > 0 {
		cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: cp + 1}
	}
	// A crashed projector's consumer is removed by the server after the
	// inactivity threshold; a stopping one deletes its own at once (the
	// server limits consumers per stream, 1,000 by default).
	cfg.InactiveThreshold = 30 * time.Second
	cons, err := p.js.OrderedConsumer(ctx, p.stream, cfg)
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = p.js.DeleteConsumer(dctx, p.stream, info.Name)
			cancel()
		}
	}()
	msgs := make(chan jetstream.Msg, 2*p.maxBatch)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(p.maxBatch))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()

	batch := make([]events.Event, 0, p.maxBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-msgs:
			var (
				stop error
				seen uint64 // the last sequence taken (claims included)
			)
			batch, seen, stop = p.add(batch, m, seen)
		drain:
			for stop == nil && len(batch) < p.maxBatch {
				select {
				case m := <-msgs:
					batch, seen, stop = p.add(batch, m, seen)
				default:
					break drain
				}
			}
			if err := p.apply(ctx, batch, seen); err != nil {
				return err
			}
			if stop != nil {
				return stop
			}
			if until > 0 && p.Status().Applied >= until {
				return nil
			}
		}
	}
}

// add decodes m and appends it to batch, returning the sequence seen; a
// claim (the write side's uniqueness records, events.IsClaimSubject) is
// passed over, but counts as seen so that the checkpoint moves past it. An
// undecodable message is returned as the stop error (the batch before it is
// still applied).
func (p *Projector) add(batch []events.Event, m jetstream.Msg, seen uint64) ([]events.Event, uint64, error) {
	md, err := m.Metadata()
	if err != nil {
		return batch, seen, fmt.Errorf("%w: message without metadata: %v", ErrCorrupt, err)
	}
	seq := md.Sequence.Stream
	p.pending, p.lastTS = md.NumPending, md.Timestamp
	if events.IsClaimSubject(m.Subject()) {
		return batch, seq, nil
	}
	ev, err := events.Decode(m.Data())
	if err != nil {
		return batch, seen, fmt.Errorf("%w: stream sequence %d (subject %s): %v", ErrCorrupt, seq, m.Subject(), err)
	}
	agg, id, kind, err := events.ParseAggregateSubject(m.Subject())
	if err != nil || agg != ev.Data.Aggregate() || id != ev.AggregateID || kind != ev.Kind() {
		return batch, seen, fmt.Errorf("%w: stream sequence %d: subject %s does not match event %s of %s", ErrCorrupt, seq, m.Subject(), ev.Type(), ev.AggregateID)
	}
	ev.Seq = seq
	return append(batch, ev), seq, nil
}

// apply folds a batch into the read model and commits it with the
// checkpoint last (the batch's last sequence, or further when claims
// followed it).
func (p *Projector) apply(ctx context.Context, batch []events.Event, last uint64) error {
	if last == 0 || (len(batch) == 0 && last <= p.Status().Applied) {
		return nil
	}
	docs, err := Fold(ctx, p.store, batch)
	if err != nil {
		return err
	}
	// Retry a failed commit (store down, disk full) with growing pauses,
	// 250 ms … 5 s, logging the first failure and then every tenth.
	pause := 250 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := p.store.CommitBatch(ctx, docs, last)
		if err == nil {
			if attempt > 0 {
				p.log.Info("read model commit succeeded again", "seq", last, "attempts", attempt+1)
			}
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.setErr(fmt.Errorf("commit: %w", err))
		if attempt%10 == 0 {
			p.log.Warn("read model commit failed, retrying", "err", err, "seq", last, "attempt", attempt+1)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
	var lag time.Duration
	if p.pending > 0 {
		lag = time.Since(p.lastTS)
	}
	p.mu.Lock()
	p.lagEvents = p.pending
	p.mu.Unlock()
	byType := make(map[string]int, 4)
	for _, ev := range batch {
		byType[ev.Type()]++
	}
	p.metrics.Projected(byType, p.pending, lag)
	// Waiters wake last, so that a response that waited for this batch
	// (read-your-writes) finds it counted in the metrics too.
	p.setApplied(last)
	return nil
}

// Fold loads the documents a batch touches and applies the batch to them in
// order, skipping events a document already includes. It returns the
// changed documents of each aggregate. An event that does not follow its
// document (a version gap, an update before the create) is ErrCorrupt.
func Fold(ctx context.Context, store readmodel.Writer, batch []events.Event) (readmodel.Batch, error) {
	var customerIDs, contactIDs, activityIDs []string
	seen := make(map[string]bool, len(batch))
	for _, ev := range batch {
		if seen[ev.AggregateID] {
			continue
		}
		seen[ev.AggregateID] = true
		switch ev.Data.Aggregate() {
		case events.Customers:
			customerIDs = append(customerIDs, ev.AggregateID)
		case events.Contacts:
			contactIDs = append(contactIDs, ev.AggregateID)
		case events.Activities:
			activityIDs = append(activityIDs, ev.AggregateID)
		default:
			return readmodel.Batch{}, fmt.Errorf("%w: stream sequence %d: no read model for %s events", ErrCorrupt, ev.Seq, ev.Data.Aggregate())
		}
	}
	var out readmodel.Batch
	if len(customerIDs) > 0 {
		docs, err := store.Load(ctx, customerIDs)
		if err != nil {
			return readmodel.Batch{}, fmt.Errorf("load documents: %w", err)
		}
		out.Customers, err = foldDocs(batch, events.Customers, customerIDs, docs,
			func(d readmodel.Customer) (uint64, uint64) { return d.Seq, d.Version },
			func(d readmodel.Customer, ev events.Event) readmodel.Customer {
				before := d.State()
				after := customer.Evolve(before, ev)
				out.Timeline = append(out.Timeline, timelineEvent(ev, before, after))
				return readmodel.FromState(after)
			})
		if err != nil {
			return readmodel.Batch{}, err
		}
		// The customer's link events are the record of its links.
		for _, ev := range batch {
			if l, ok := readmodel.LinkFromEvent(ev); ok {
				out.Links = append(out.Links, l)
			}
		}
	}
	if len(contactIDs) > 0 {
		docs, err := store.LoadContacts(ctx, contactIDs)
		if err != nil {
			return readmodel.Batch{}, fmt.Errorf("load contact documents: %w", err)
		}
		out.Contacts, err = foldDocs(batch, events.Contacts, contactIDs, docs,
			func(d readmodel.Contact) (uint64, uint64) { return d.Seq, d.Version },
			func(d readmodel.Contact, ev events.Event) readmodel.Contact {
				return readmodel.FromContact(contact.Evolve(d.State(), ev))
			})
		if err != nil {
			return readmodel.Batch{}, err
		}
	}
	if len(activityIDs) > 0 {
		docs, err := store.LoadActivities(ctx, activityIDs)
		if err != nil {
			return readmodel.Batch{}, fmt.Errorf("load activity documents: %w", err)
		}
		out.Activities, err = foldDocs(batch, events.Activities, activityIDs, docs,
			func(d readmodel.Activity) (uint64, uint64) { return d.Seq, d.Version },
			func(d readmodel.Activity, ev events.Event) readmodel.Activity {
				return readmodel.FromActivity(activity.Evolve(d.State(), ev))
			})
		if err != nil {
			return readmodel.Batch{}, err
		}
	}
	return out, nil
}

// timelineEvent returns the timeline entry of a customer's event: for a
// change of fields its changes (old and new values, as the history shows
// them), for the other kinds but created the event's data.
func timelineEvent(ev events.Event, before, after customer.Customer) readmodel.TimelineEvent {
	t := readmodel.TimelineEvent{CustomerID: ev.AggregateID, EventID: ev.ID, Kind: string(ev.Kind()), At: ev.Time,
		Version: ev.Version, Actor: ev.Actor, Seq: ev.Seq, Changes: json.RawMessage("[]")}
	switch ev.Kind() {
	case events.KindCreated:
	case events.KindUpdated, events.KindMerged, events.KindMergeUndone:
		t.Changes, _ = json.Marshal(audit.Diff(before, after))
	default:
		t.Data, _ = json.Marshal(ev.Data)
	}
	return t
}

// foldDocs applies the events of aggregate a in batch to their documents
// (docs, by id) and returns the changed ones in the order of ids.
func foldDocs[D any](batch []events.Event, a events.Aggregate, ids []string, docs map[string]D,
	seqVersion func(D) (seq, version uint64), evolve func(D, events.Event) D) ([]D, error) {
	changed := make(map[string]bool, len(ids))
	for _, ev := range batch {
		if ev.Data.Aggregate() != a {
			continue
		}
		doc := docs[ev.AggregateID]
		seq, version := seqVersion(doc)
		if ev.Seq <= seq {
			continue // already applied (replay, redelivery, another projector)
		}
		if ev.Version != version+1 {
			return nil, fmt.Errorf("%w: stream sequence %d: %s %s version %d follows version %d", ErrCorrupt, ev.Seq, a, ev.AggregateID, ev.Version, version)
		}
		docs[ev.AggregateID] = evolve(doc, ev)
		changed[ev.AggregateID] = true
	}
	out := make([]D, 0, len(changed))
	for _, id := range ids {
		if changed[id] {
			out = append(out, docs[id])
		}
	}
	return out, nil
}
