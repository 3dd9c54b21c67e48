package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/events"
	"crm/internal/eventstore"
	"crm/internal/fault"
	"crm/internal/metrics"
)

// Names in JetStream (operational contracts: renaming them loses the
// subscriptions, the delivery positions or the log).
const (
	// SubscriptionsBucket holds one key per subscription (its JSON), with
	// the last 64 revisions of each as its history.
	SubscriptionsBucket = "CRM_WEBHOOKS"
	// LeasesBucket holds which API replica delivers for a subscription; an
	// entry lives LeaseTTL unless its holder renews it.
	LeasesBucket = "CRM_WEBHOOK_LEASES"
	// RetriesBucket keeps, per subscription, when each of its failing
	// events first failed: the retry period survives restarts and lease
	// moves.
	RetriesBucket = "CRM_WEBHOOK_RETRIES"
	// DeliveriesStream logs every delivery attempt, per subscription on
	// DeliveriesPrefix.<id> (a message holds up to 200 attempts), kept 7
	// days, at most 10,000 messages per subscription.
	DeliveriesStream = "CRM_WEBHOOK_DELIVERIES"
	DeliveriesPrefix = "crm.webhookdeliveries"
	// ConsumerPrefix + id + "-" + n names a subscription's durable consumer
	// on the customer stream (n grows each time delivery restarts at a
	// new position: a replay, or a restart after pending events).
	ConsumerPrefix = "crm-webhook-"
	metaGeneration = "crm-webhook-generation"

	// MaxSubscriptions bounds the subscriptions (each is a consumer).
	MaxSubscriptions = 100
	// MaxPending is how many of a subscription's events may be in flight
	// or waiting for a retry at once (the consumer's MaxAckPending).
	MaxPending = 1000
	// PingType is the CloudEvents type of a ping.
	PingType = "com.a64core.crm.webhook.ping.v1"
)

// Errors of the Manager.
var (
	ErrNotFound = fault.New(fault.NotFound, "no such webhook subscription")
	ErrTooMany  = fault.New(fault.Unprocessable, "at most 100 webhook subscriptions: delete one first")
	ErrChanged  = fault.New(fault.PreconditionFailed, "the subscription changed since that ETag: read it again")
	errBusy     = &fault.Error{Kind: fault.Conflict, RetryAfter: time.Second, Message: "the subscription is being changed concurrently; retry"}
)

// Options configure a Manager.
type Options struct {
	// Stream is the customer event stream (CRM_CUSTOMERS).
	Stream   string
	Replicas int
	Policy   Policy
	// Timeout bounds one attempt (default 10 s).
	Timeout  time.Duration
	Schedule Schedule // default DefaultSchedule
	// LeaseTTL is how long a replica that stopped renewing keeps its
	// subscriptions (default 15 s).
	LeaseTTL time.Duration
	// AckWait is the consumers' ack wait (default 30 s); held events are
	// kept in progress well before it.
	AckWait time.Duration
	// Deliver: this process delivers (takes leases). Without it the
	// Manager serves the API only.
	Deliver bool
	// Tip returns the customer stream's last sequence.
	Tip     func(ctx context.Context) (uint64, error)
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	// Source is the CloudEvents source of pings.
	Source string
}

// Manager keeps the subscriptions, answers the API, and (with Deliver)
// runs the deliveries of the subscriptions whose lease it holds. Safe for
// concurrent use.
type Manager struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	subs    jetstream.KeyValue
	leases  jetstream.KeyValue
	retries jetstream.KeyValue
	opts    Options
	client  *http.Client
	replica string
	log     *slog.Logger

	dlog *deliveryLog

	mu      sync.Mutex
	known   map[string]Subscription // what the watch has seen
	running map[string]*runner
	synced  bool // the watch delivered the bucket's initial values
}

// Open creates or updates the buckets and the delivery log.
func Open(ctx context.Context, nc *nats.Conn, o Options) (*Manager, error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Schedule == (Schedule{}) {
		o.Schedule = DefaultSchedule
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 15 * time.Second
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Source == "" {
		o.Source = "crm"
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(5*time.Second))
	if err != nil {
		return nil, err
	}
	m := &Manager{nc: nc, js: js, opts: o, replica: uuid.NewString(), log: o.Logger,
		known: map[string]Subscription{}, running: map[string]*runner{}}
	m.dlog = newDeliveryLog(m)
	if m.subs, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: SubscriptionsBucket, Description: "crm webhook subscriptions (with their signing secrets)",
		History: 64, Storage: jetstream.FileStorage, Replicas: o.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("webhooks: bucket %s: %w", SubscriptionsBucket, err)
	}
	if m.leases, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: LeasesBucket, Description: "crm webhook delivery leases (which API replica delivers a subscription)",
		History: 1, TTL: o.LeaseTTL, Storage: jetstream.FileStorage, Replicas: o.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("webhooks: bucket %s: %w", LeasesBucket, err)
	}
	if m.retries, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: RetriesBucket, Description: "crm webhook events failing, per subscription: since when",
		History: 1, Storage: jetstream.FileStorage, Replicas: o.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("webhooks: bucket %s: %w", RetriesBucket, err)
	}
	if _, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: DeliveriesStream, Description: "crm webhook delivery attempts (a log: kept 7 days, 10,000 messages of up to 200 attempts per subscription)",
		Subjects: []string{DeliveriesPrefix + ".>"}, Storage: jetstream.FileStorage, Replicas: o.Replicas,
		Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld, MaxAge: 7 * 24 * time.Hour,
		// No MaxBytes: JetStream reserves it on disk at creation (a small
		// disk would refuse the stream); age and the per-subscription count
		// bound it (100 subscriptions x 10,000 records of ~0.5 KiB).
		MaxMsgsPerSubject: 10_000, MaxBytes: -1, MaxMsgSize: 1 << 20, AllowDirect: true,
	}); err != nil {
		return nil, fmt.Errorf("webhooks: stream %s: %w", DeliveriesStream, err)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: o.Policy.control}
	m.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil, // the policy checks the address actually dialled
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: o.Timeout,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   MaxConcurrency,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return m, nil
}

// Create stores a new subscription, delivering the events appended from
// now on, and returns it with its signing secret (shown this once) and its
// revision.
func (m *Manager) Create(ctx context.Context, in Input, actor string) (Subscription, uint64, string, error) {
	s, err := apply(Subscription{}, in, true, m.opts.Policy.AllowHTTP)
	if err != nil {
		return s, 0, "", err
	}
	if err := m.opts.Policy.CheckTarget(ctx, s.URL); err != nil {
		return s, 0, "", err
	}
	keys, err := m.subs.ListKeys(ctx)
	if err != nil {
		return s, 0, "", m.unavailable(err)
	}
	n := 0
	for range keys.Keys() {
		n++
	}
	if n >= MaxSubscriptions {
		return s, 0, "", ErrTooMany
	}
	tip, err := m.opts.Tip(ctx)
	if err != nil {
		return s, 0, "", err
	}
	now := time.Now().UTC()
	secret := NewSecret()
	s.ID = uuid.NewString()
	s.StartSequence, s.Generation = tip+1, 1
	s.Secrets = []Secret{{Key: secret, CreatedAt: now}}
	s.CreatedAt, s.UpdatedAt, s.CreatedBy, s.UpdatedBy = now, now, actor, actor
	b, _ := json.Marshal(s)
	rev, err := m.subs.Create(ctx, s.ID, b)
	if err != nil {
		return s, 0, "", m.unavailable(err)
	}
	return s, rev, secret, nil
}

// Get returns a subscription and its revision (the ETag).
func (m *Manager) Get(ctx context.Context, id string) (Subscription, uint64, error) {
	e, err := m.subs.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) || errors.Is(err, jetstream.ErrInvalidKey) {
		return Subscription{}, 0, ErrNotFound
	}
	if err != nil {
		return Subscription{}, 0, m.unavailable(err)
	}
	var s Subscription
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return Subscription{}, 0, fault.Wrap(fault.Internal, "unreadable subscription", err)
	}
	return s, e.Revision(), nil
}

// List returns every subscription, oldest first.
func (m *Manager) List(ctx context.Context) ([]Subscription, error) {
	keys, err := m.subs.ListKeys(ctx)
	if err != nil {
		return nil, m.unavailable(err)
	}
	var out []Subscription
	for k := range keys.Keys() {
		s, _, err := m.Get(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Subscription) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// change reads, changes and writes a subscription with optimistic
// concurrency: ifRev (0 = any) must be its revision; a concurrent writer
// makes it read again (or ErrChanged when ifRev was given).
func (m *Manager) change(ctx context.Context, id string, ifRev uint64, f func(*Subscription) error) (Subscription, uint64, error) {
	for range 5 {
		s, rev, err := m.Get(ctx, id)
		if err != nil {
			return s, 0, err
		}
		if ifRev != 0 && rev != ifRev {
			return s, rev, ErrChanged
		}
		if err := f(&s); err != nil {
			return s, rev, err
		}
		b, _ := json.Marshal(s)
		nrev, err := m.subs.Update(ctx, id, b, rev)
		if err == nil {
			return s, nrev, nil
		}
		if !isWrongRevision(err) {
			return s, 0, m.unavailable(err)
		}
		if ifRev != 0 {
			return s, 0, ErrChanged
		}
	}
	return Subscription{}, 0, errBusy
}

// isWrongRevision: a KV compare-and-swap failed (10071, or 10164 on
// replicated buckets; nats.go wraps both).
func isWrongRevision(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Update applies a merge patch.
func (m *Manager) Update(ctx context.Context, id string, in Input, ifRev uint64, actor string) (Subscription, uint64, error) {
	return m.change(ctx, id, ifRev, func(s *Subscription) error {
		if !s.Enabled && in.Enabled != nil && *in.Enabled {
			// Enabled again: its failing events get a fresh retry period
			// (cleared before the write that lets a dispatcher start).
			m.saveRetries(ctx, id, nil)
		}
		oldURL := s.URL
		ns, err := apply(*s, in, false, m.opts.Policy.AllowHTTP)
		if err != nil {
			return err
		}
		if ns.URL != oldURL {
			if err := m.opts.Policy.CheckTarget(ctx, ns.URL); err != nil {
				return err
			}
		}
		ns.UpdatedAt, ns.UpdatedBy = time.Now().UTC(), actor
		*s = ns
		return nil
	})
}

// Rotate adds a new signing secret; the ones in use keep signing for
// grace (0: they stop at once). It returns the new secret (shown once).
func (m *Manager) Rotate(ctx context.Context, id string, grace time.Duration, ifRev uint64, actor string) (Subscription, uint64, string, error) {
	secret := NewSecret()
	s, rev, err := m.change(ctx, id, ifRev, func(s *Subscription) error {
		now := time.Now().UTC()
		until := now.Add(grace)
		keep := []Secret{{Key: secret, CreatedAt: now}}
		for _, old := range s.Secrets {
			if old.ExpiresAt != nil && !now.Before(*old.ExpiresAt) {
				continue // expired
			}
			if grace <= 0 {
				continue
			}
			if old.ExpiresAt == nil || old.ExpiresAt.After(until) {
				old.ExpiresAt = &until
			}
			keep = append(keep, old)
		}
		if len(keep) > 1+maxOlderSecrets {
			keep = keep[:1+maxOlderSecrets]
		}
		s.Secrets = keep
		s.UpdatedAt, s.UpdatedBy = now, actor
		return nil
	})
	return s, rev, secret, err
}

// Replay restarts delivery at stream sequence from (every event from it on
// is delivered again, in order); from beyond the stream's end starts after
// its last event.
func (m *Manager) Replay(ctx context.Context, id string, from uint64, actor string) (Subscription, uint64, error) {
	tip, err := m.opts.Tip(ctx)
	if err != nil {
		return Subscription{}, 0, err
	}
	from = max(1, min(from, tip+1))
	return m.change(ctx, id, 0, func(s *Subscription) error {
		now := time.Now().UTC()
		s.StartSequence = from
		s.Generation++
		s.ReplayedAt, s.ReplayedBy = &now, actor
		s.UpdatedAt, s.UpdatedBy = now, actor
		return nil
	})
}

// SequenceAt returns the sequence of the first customer event stored at or
// after t (the stream's next sequence when there is none).
func (m *Manager) SequenceAt(ctx context.Context, t time.Time) (uint64, error) {
	req, _ := json.Marshal(struct {
		StartTime time.Time `json:"start_time"`
		NextFor   string    `json:"next_by_subj"`
	}{t.UTC(), events.SubjectAll})
	msgs, _, err := m.directGet(ctx, m.opts.Stream, req, 0)
	if err != nil {
		return 0, err
	}
	if len(msgs) == 0 {
		tip, err := m.opts.Tip(ctx)
		return tip + 1, err
	}
	return msgs[0].Seq, nil
}

// Delete removes a subscription (ifRev 0 = any revision) and its
// consumers; its delivery log ages out.
func (m *Manager) Delete(ctx context.Context, id string, ifRev uint64) error {
	_, rev, err := m.Get(ctx, id)
	if err != nil {
		return err
	}
	if ifRev != 0 && rev != ifRev {
		return ErrChanged
	}
	// Purge, not Delete: the key's history (its revisions hold the
	// secrets) goes with it.
	if err := m.subs.Purge(ctx, id, jetstream.LastRevision(rev)); err != nil {
		if isWrongRevision(err) {
			if ifRev != 0 {
				return ErrChanged
			}
			return errBusy
		}
		return m.unavailable(err)
	}
	m.deleteConsumers(ctx, id, "")
	_ = m.retries.Purge(ctx, id)
	return nil
}

// Status is what the service knows of a subscription's deliveries.
type Status struct {
	// Pending counts the events not yet delivered (waiting or in flight).
	Pending uint64 `json:"pending"`
	// Delivering: a replica holds the subscription's lease.
	Delivering   bool      `json:"delivering"`
	LastDelivery *Delivery `json:"lastDelivery"`
}

// Status reads a subscription's consumer and the last logged attempt.
func (m *Manager) Status(ctx context.Context, id string) (Status, error) {
	var st Status
	if c, err := m.current(ctx, id); err == nil && c != nil {
		if info, err := c.Info(ctx); err == nil {
			st.Pending = info.NumPending + uint64(info.NumAckPending)
		}
	} else if err != nil {
		return st, m.unavailable(err)
	}
	if _, err := m.leases.Get(ctx, id); err == nil {
		st.Delivering = true
	}
	msgs, _, err := m.directGet(ctx, DeliveriesStream, mustJSON(struct {
		Last string `json:"last_by_subj"`
	}{DeliveriesPrefix + "." + id}), 0)
	if err != nil {
		return st, err
	}
	if len(msgs) == 1 {
		if ds := decodeRecords(msgs[0].Data); len(ds) > 0 {
			st.LastDelivery = &ds[len(ds)-1]
		}
	}
	return st, nil
}

// Deliveries returns up to limit logged attempts of a subscription, oldest
// first: after the record at cursor after (meta.next of the previous page;
// "" = from the oldest kept) or, with since, from that time. next is the
// cursor of the last one returned ("" when none).
func (m *Manager) Deliveries(ctx context.Context, id string, after string, since time.Time, limit int) ([]Delivery, string, bool, error) {
	var cur logCursor
	if after != "" {
		c, err := ParseLogCursor(after)
		if err != nil {
			return nil, "", false, fault.InvalidField("after", "must be the meta.next of a previous page")
		}
		cur = c
	}
	req := map[string]any{"next_by_subj": DeliveriesPrefix + "." + id, "batch": limit + 1}
	if !since.IsZero() && cur.seq == 0 {
		req["start_time"] = since.UTC()
	} else {
		req["seq"] = max(cur.seq, 1)
	}
	msgs, more, err := m.directGet(ctx, DeliveriesStream, mustJSON(req), limit+1)
	if err != nil {
		return nil, "", false, err
	}
	out := make([]Delivery, 0, limit)
	last := cur
	for _, msg := range msgs {
		for i, d := range decodeRecords(msg.Data) {
			if msg.Seq == cur.seq && i <= cur.idx {
				continue // on the previous page
			}
			if !since.IsZero() && cur.seq == 0 && d.At.Before(since) {
				continue // in a message written from since on, but earlier
			}
			if len(out) == limit {
				return out, last.String(), true, nil
			}
			out = append(out, d)
			last = logCursor{msg.Seq, i}
		}
	}
	return out, last.String(), more, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// directGet is one direct get with a 5 s bound.
func (m *Manager) directGet(ctx context.Context, stream string, req []byte, batch int) ([]eventstore.DirectMsg, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return eventstore.DirectGet(ctx, m.nc, stream, req, batch)
}

func (m *Manager) unavailable(err error) error {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return err
	}
	return fault.Wrap(fault.Unavailable, "webhook subscriptions are unavailable; retry later", err)
}

// retryState is how long an event has been failing.
type retryState struct {
	First    time.Time `json:"first"`
	Attempts int       `json:"attempts"`
}

// loadRetries reads a subscription's failing events (stream sequence →
// state); none when it has none or the bucket cannot be read.
func (m *Manager) loadRetries(ctx context.Context, id string) map[uint64]retryState {
	out := map[uint64]retryState{}
	e, err := m.retries.Get(ctx, id)
	if err == nil {
		var raw map[string]retryState
		if json.Unmarshal(e.Value(), &raw) == nil {
			for k, v := range raw {
				if seq, err := strconv.ParseUint(k, 10, 64); err == nil {
					out[seq] = v
				}
			}
		}
	}
	return out
}

// saveRetries writes them (deletes the key when there are none).
func (m *Manager) saveRetries(ctx context.Context, id string, st map[uint64]retryState) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var err error
	if len(st) == 0 {
		err = m.retries.Delete(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			err = nil
		}
	} else {
		raw := make(map[string]retryState, len(st))
		for k, v := range st {
			raw[strconv.FormatUint(k, 10)] = v
		}
		b, _ := json.Marshal(raw)
		_, err = m.retries.Put(ctx, id, b)
	}
	if err != nil {
		m.log.Warn("webhooks: save the failing events' times", "subscription", id, "err", err)
	}
}
