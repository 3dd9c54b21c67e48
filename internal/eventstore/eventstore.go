// Package eventstore is the JetStream adapter of the write side: it defines
// the customer stream, loads one customer's events, appends new ones with
// optimistic concurrency, and allocates customer codes from a server-side
// counter. It is the only package of the command side that imports nats.
package eventstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/events"
	"crm/internal/fault"
)

// Errors of the event store (sentinels, matched with errors.Is; their
// fault kinds are what callers act on). Every error the store returns is a
// fault error: what no rule below classifies is fault.Internal, with the
// NATS error as its cause (for the logs, never for clients).
var (
	// ErrConflict (fault.Conflict): an expected sequence did not match: the
	// customer's events moved since they were loaded.
	ErrConflict = fault.New(fault.Conflict, "the customer was changed concurrently")
	// ErrUnavailable (fault.Unavailable): NATS or the stream cannot be
	// reached (timeout, no responders, closed connection). The outcome of an
	// append that failed this way is unknown.
	ErrUnavailable = fault.New(fault.Unavailable, "the event store is unavailable; retry later")
	// ErrNotWritable (fault.Unavailable): Config.Writable reported that the
	// server cannot write to its disk; nothing was sent.
	ErrNotWritable = &fault.Error{Kind: fault.Unavailable, RetryAfter: 5 * time.Second,
		Message: "the event store cannot write to its disk (full or read-only); nothing was changed; retry later"}
	// errUnexpected (fault.Internal) wraps any other NATS error.
	errUnexpected = fault.New(fault.Internal, "unexpected event store error")
)

// Config describes the streams. The zero value of every field but the names
// means "the safe default" (see Defaults).
type Config struct {
	Stream        string        // customer events stream, default CRM_CUSTOMERS
	CounterStream string        // counters stream, default CRM_COUNTERS
	Replicas      int           // default 1; 3 in a cluster
	Duplicates    time.Duration // duplicate window for Nats-Msg-Id, default 2m
	Timeout       time.Duration // per request, default 5s
	// Writable, when set, is asked before every write: a non-nil error
	// (the embedded server's disk is full or read-only) fails the write at
	// once with ErrNotWritable instead of waiting Timeout for an
	// acknowledgement that will not come. It must be cheap.
	Writable func() error
}

// DefaultStream is the name of the customer event stream (a contract:
// downstream consumers and tools address it by name).
const DefaultStream = "CRM_CUSTOMERS"

func (c Config) withDefaults() Config {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.CounterStream == "" {
		c.CounterStream = "CRM_COUNTERS"
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Duplicates == 0 {
		c.Duplicates = 2 * time.Minute
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	return c
}

// CounterSubject is the subject of the customer-code counter.
const CounterSubject = "crm.counters.customer_code"

// StreamConfig returns the customer stream's configuration: file storage, no
// age, size or count limits, DiscardNew (never evict history), delete, purge
// and roll-up denied, direct gets allowed (for loading one customer), atomic
// batches allowed (for commands that record several events).
func StreamConfig(c Config) jetstream.StreamConfig {
	c = c.withDefaults()
	return jetstream.StreamConfig{
		Name:        c.Stream,
		Description: "crm customer events (CloudEvents JSON); the source of truth",
		Subjects:    append(events.StreamSubjects(), events.ClaimsPrefix+".>"),
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		MaxAge:      0,
		MaxMsgSize:  1 << 20,
		Replicas:    c.Replicas,
		Duplicates:  c.Duplicates,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowRollup: false,
		AllowDirect: true,
		// The several events of one command (merge, batch, import) are one
		// atomic batch: all stored or none.
		AllowAtomicPublish: true,
	}
}

// CounterStreamConfig returns the configuration of the stream that holds the
// customer-code counter (a JetStream counter stream: the server increments
// it atomically on Nats-Incr). Only the latest value per subject is kept.
func CounterStreamConfig(c Config) jetstream.StreamConfig {
	c = c.withDefaults()
	return jetstream.StreamConfig{
		Name:              c.CounterStream,
		Description:       "crm counters (customer codes); never purge",
		Subjects:          []string{"crm.counters.>"},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: 1,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		Replicas:          c.Replicas,
		DenyDelete:        true,
		DenyPurge:         true,
		AllowMsgCounter:   true,
	}
}

// Store is the event store. It is safe for concurrent use.
type Store struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	cfg   Config
	codes *codeBatcher
	idem  idempotencyKV
}

// Open creates or updates both streams (idempotent) and returns the store.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(cfg.Timeout))
	if err != nil {
		return nil, err
	}
	for _, sc := range []jetstream.StreamConfig{StreamConfig(cfg), CounterStreamConfig(cfg)} {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("eventstore: create or update stream %s: %w", sc.Name, classify(err))
		}
	}
	s := &Store{nc: nc, js: js, cfg: cfg}
	if err := s.openIdempotency(ctx); err != nil {
		return nil, err
	}
	s.codes = newCodeBatcher(s.increment)
	return s, nil
}

// JetStream returns the JetStream context (for the projector's consumer).
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// StreamName returns the customer stream's name.
func (s *Store) StreamName() string { return s.cfg.Stream }

// Close stops the code allocator. The NATS connection belongs to the caller.
func (s *Store) Close() { s.codes.close() }

// Load returns every event of one customer in stream order and the stream
// sequence of the last one (0 when the customer has no events).
//
// It reads the subject of each registered kind of the customer (created,
// updated, deleted, …) with one batched direct get each, sent together: a literal subject is
// found through the stream's per-subject index, while a wildcard makes the
// server walk every block (measured at 100,000 customers: 1.2 ms against
// 6.7 ms, growing with the stream). The three reads are not one snapshot, so
// the merged events must carry the versions 1…n without a gap; a change that
// lands after the reads makes the append fail on its expected sequence.
func (s *Store) Load(ctx context.Context, customerID string) ([]events.Event, uint64, error) {
	return s.LoadAggregate(ctx, events.Customers, customerID)
}

// LoadAggregate is Load for the events of id of any aggregate (a contact's,
// …).
func (s *Store) LoadAggregate(ctx context.Context, a events.Aggregate, id string) ([]events.Event, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	for attempt := 0; attempt < 3; attempt++ {
		evs, last, err := s.loadSubjects(ctx, a, id)
		if err != nil {
			return nil, 0, err
		}
		if contiguous(evs) {
			return evs, last, nil
		}
		// A change landed between the reads: read again.
	}
	return s.loadFiltered(ctx, id, events.AggregateSubjects(a, id))
}

func contiguous(evs []events.Event) bool {
	for i, e := range evs {
		if e.Version != uint64(i+1) {
			return false
		}
	}
	return true
}

func (s *Store) loadSubjects(ctx context.Context, a events.Aggregate, id string) ([]events.Event, uint64, error) {
	kinds := events.Kinds(a)
	type result struct {
		evs []events.Event
		err error
	}
	results := make([]chan result, len(kinds))
	for i, k := range kinds {
		results[i] = make(chan result, 1)
		go func() {
			evs, _, err := s.loadFiltered(ctx, id, events.AggregateSubject(a, id, k))
			results[i] <- result{evs, err}
		}()
	}
	var all []events.Event
	var firstErr error
	for _, ch := range results {
		r := <-ch
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
		all = append(all, r.evs...)
	}
	if firstErr != nil {
		return nil, 0, firstErr
	}
	slices.SortFunc(all, func(a, b events.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	var last uint64
	if len(all) > 0 {
		last = all[len(all)-1].Seq
	}
	return all, last, nil
}

// loadFiltered reads every message matching filter, 256 per direct get.
func (s *Store) loadFiltered(ctx context.Context, id, filter string) ([]events.Event, uint64, error) {
	var (
		out  []events.Event
		last uint64
		next uint64 = 1
	)
	for {
		batch, more, err := s.directBatch(ctx, filter, next, 256)
		if err != nil {
			return nil, 0, err
		}
		for _, m := range batch {
			ev, err := events.Decode(m.Data)
			if err != nil {
				return nil, 0, fmt.Errorf("%w: %s seq %d: %v", errUnexpected, id, m.Seq, err)
			}
			ev.Seq = m.Seq
			out = append(out, ev)
			last = m.Seq
		}
		if !more || len(batch) == 0 {
			return out, last, nil
		}
		next = last + 1
	}
}

// MaxChanges is the most events one ReadChanges returns.
const MaxChanges = 1000

// ReadChanges returns the events of every aggregate (customers, contacts,
// activities) among the up to limit (1..MaxChanges) messages stored after
// sequence after, in stream order, each with its Seq; last is the sequence
// of the last message read (claims included: a page of claims only still
// moves the reader on; after when nothing was read), more whether more are
// stored after it: the stream read forward for the change feed, one
// batched direct get. (The filter is ">", not a wildcard of some subjects:
// with a million subjects the server answers a partial wildcard by walking
// its subject index for every message, 0.6 s for 1,000 messages from the
// start and 2.7 s from the middle of the stream, against 7–10 ms for ">".)
func (s *Store) ReadChanges(ctx context.Context, after uint64, limit int) (evs []events.Event, last uint64, more bool, err error) {
	limit = min(max(limit, 1), MaxChanges)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	batch, more, err := s.directBatch(ctx, ">", after+1, limit)
	if err != nil {
		return nil, 0, false, err
	}
	last = after
	out := make([]events.Event, 0, len(batch))
	for _, m := range batch {
		last = m.Seq
		if events.IsClaimSubject(m.Header.Get(jetstream.SubjectHeader)) {
			continue
		}
		ev, err := events.Decode(m.Data)
		if err != nil {
			return nil, 0, false, fmt.Errorf("%w: seq %d: %v", errUnexpected, m.Seq, err)
		}
		ev.Seq = m.Seq
		out = append(out, ev)
	}
	return out, last, more, nil
}

// Tip returns the sequence of the stream's last message (0: empty).
func (s *Store) Tip(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	st, err := s.js.Stream(ctx, s.cfg.Stream) // one stream info request
	if err != nil {
		return 0, classify(err)
	}
	return st.CachedInfo().State.LastSeq, nil
}

// DirectMsg is one message of a direct get, with its stream sequence.
type DirectMsg struct {
	*nats.Msg
	Seq uint64
}

// directBatch performs one batched direct get ($JS.API.DIRECT.GET) of up to
// size messages matching filter from sequence start. more reports messages
// left.
func (s *Store) directBatch(ctx context.Context, filter string, start uint64, size int) (msgs []DirectMsg, more bool, err error) {
	req, _ := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
		Batch   int    `json:"batch"`
	}{start, filter, size})
	return s.directGet(ctx, req, size)
}

// directGet sends one direct get to the customer stream (batch: as for
// DirectGet).
func (s *Store) directGet(ctx context.Context, req []byte, batch int) ([]DirectMsg, bool, error) {
	return DirectGet(ctx, s.nc, s.cfg.Stream, req, batch)
}

// DirectGet sends one direct get request ($JS.API.DIRECT.GET.<stream>,
// the stream must allow direct gets) and collects its messages. batch is
// 0 for a request of one message (last_by_subj, or seq alone), answered by
// that message or a status; for a batched request (batch, multi_last) it
// is the most messages the request asks for (its batch, or the number of
// its multi_last subjects), answered by up to that many messages and an
// end-of-batch status. more reports messages left after a batch. Errors
// are the store's fault errors (ErrUnavailable, …); a missing message is
// no message, not an error.
//
// The replies of a batch come on a subscription of its own, into a channel
// of batch+1: a synchronous subscription would allocate (and the collector
// zero) nats.go's default 65,536-slot channel, 512 KiB, for every request
// (at 1,000,000 customers a patch's three loads spent 15% of the service's
// CPU there).
func DirectGet(ctx context.Context, nc *nats.Conn, stream string, req []byte, batch int) (msgs []DirectMsg, more bool, err error) {
	subject := "$JS.API.DIRECT.GET." + stream
	if batch <= 0 {
		m, err := nc.RequestWithContext(ctx, subject, req)
		if err != nil {
			return nil, false, classify(err)
		}
		msg, _, done, err := directReply(m)
		if err != nil || done {
			return nil, false, err
		}
		return []DirectMsg{msg}, false, nil
	}
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, batch+1)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, false, classify(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, req); err != nil {
		return nil, false, classify(err)
	}
	for {
		var m *nats.Msg
		select {
		case m = <-ch:
		case <-ctx.Done():
			return nil, false, classify(ctx.Err())
		}
		msg, left, done, err := directReply(m)
		if err != nil {
			return nil, false, err
		}
		if done {
			return msgs, left, nil
		}
		msgs = append(msgs, msg)
		if len(msgs) > batch {
			return nil, false, fmt.Errorf("%w: direct get answered more than the %d messages asked for", errUnexpected, batch)
		}
	}
}

// directReply reads one reply of a direct get: a message, or (done) the
// status that ends the answer: not found, end of batch (left: messages
// left after it), or an error.
func directReply(m *nats.Msg) (msg DirectMsg, left, done bool, err error) {
	switch m.Header.Get("Status") {
	case "":
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return DirectMsg{}, false, false, fmt.Errorf("%w: direct get without sequence: %v", errUnexpected, err)
		}
		return DirectMsg{m, seq}, false, false, nil
	case "404":
		return DirectMsg{}, false, true, nil
	case "204": // end of batch
		pending, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
		return DirectMsg{}, pending > 0, true, nil
	case "503":
		return DirectMsg{}, false, true, ErrUnavailable
	default:
		return DirectMsg{}, false, true, fmt.Errorf("%w: direct get: status %s %s", errUnexpected, m.Header.Get("Status"), m.Header.Get("Description"))
	}
}

// Append stores evs, in order, all of them or none, once every customer
// they are about still has its last event at expected[customerID] (0: the
// customer has no events yet); only the first event of each customer in evs
// is checked, the batch being atomic. It returns each event's stream
// sequence once JetStream has acknowledged the write (stored, and synced
// where the server syncs every write): one event is one publish; several
// are one JetStream atomic batch, committed in one synced write, their
// sequences consecutive. Appending events again (a retry after an unknown
// outcome) never stores them twice: the expectations no longer hold (the
// server checks them before de-duplicating by Nats-Msg-Id), so it is
// ErrConflict.
//
// Errors: ErrConflict (an expected sequence did not match: nothing was
// stored), ErrUnavailable (the outcome is unknown), ErrNotWritable, or
// another fault error.
//
// claims, when given, are appended in the same batch, before the events
// (so a batch always ends with a customer event): each expects its subject
// at its ExpectedSeq; one that moved is ErrConflict too, nothing stored.
// The returned sequences are the events' only.
func (s *Store) Append(ctx context.Context, evs []events.Event, expected map[string]uint64, claims ...events.Claim) ([]uint64, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	if err := s.writable(); err != nil {
		return nil, err
	}
	msgs := make([]*nats.Msg, 0, len(claims)+len(evs))
	for _, c := range claims {
		m, err := claimMessage(c)
		if err != nil {
			return nil, err
		}
		m.Header.Set(jetstream.ExpectedStreamHeader, s.cfg.Stream)
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(c.ExpectedSeq, 10))
		msgs = append(msgs, m)
	}
	checked := make(map[string]bool, 2)
	for _, ev := range evs {
		m, err := message(ev)
		if err != nil {
			return nil, err
		}
		m.Header.Set(jetstream.ExpectedStreamHeader, s.cfg.Stream)
		if !checked[ev.AggregateID] {
			checked[ev.AggregateID] = true
			seq, ok := expected[ev.AggregateID]
			if !ok {
				return nil, fmt.Errorf("%w: append: no expected sequence for customer %s", errUnexpected, ev.AggregateID)
			}
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(seq, 10))
			m.Header.Set(jetstream.ExpectedLastSubjSeqSubjHeader, events.AggregateSubjects(ev.Data.Aggregate(), ev.AggregateID))
		}
		msgs = append(msgs, m)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if len(msgs) == 1 { // one event, no claim
		ack, err := s.js.PublishMsg(ctx, msgs[0])
		if err != nil {
			return nil, classify(err)
		}
		return []uint64{ack.Sequence}, nil
	}
	last, err := s.publishBatch(ctx, msgs)
	if err != nil {
		return nil, err
	}
	seqs := make([]uint64, len(evs)) // the events are the batch's last messages
	for i := range seqs {
		seqs[i] = last - uint64(len(evs)-1-i)
	}
	return seqs, nil
}

type claimRecord struct {
	CustomerID string `json:"customerId"`
}

func claimMessage(c events.Claim) (*nats.Msg, error) {
	if !events.IsClaimSubject(c.Subject) || c.CustomerID == "" {
		return nil, fmt.Errorf("%w: claim %q of %q", errUnexpected, c.Subject, c.CustomerID)
	}
	data, _ := json.Marshal(claimRecord{CustomerID: c.CustomerID})
	m := &nats.Msg{Subject: c.Subject, Data: data, Header: nats.Header{}}
	m.Header.Set("Content-Type", events.ContentType)
	m.Header.Set(jetstream.MsgIDHeader, uuid.NewString())
	return m, nil
}

// LoadClaim returns the holder of a claim and its subject's last sequence;
// "" and 0 when the value was never claimed.
func (s *Store) LoadClaim(ctx context.Context, subject string) (string, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, _ := json.Marshal(struct {
		Last string `json:"last_by_subj"`
	}{subject})
	msgs, _, err := s.directGet(ctx, req, 0)
	if err != nil || len(msgs) == 0 {
		return "", 0, err
	}
	resp, seq := msgs[0], msgs[0].Seq
	var rec claimRecord
	if err := json.Unmarshal(resp.Data, &rec); err != nil || rec.CustomerID == "" {
		return "", 0, fmt.Errorf("%w: claim %s at %d: %q", errUnexpected, subject, seq, resp.Data)
	}
	return rec.CustomerID, seq, nil
}

// MaxClaimsPerLoad is the most subjects one LoadClaims reads.
const MaxClaimsPerLoad = 1000

// LoadClaims returns the holder and last sequence of each claimed subject
// of subjects (at most MaxClaimsPerLoad; subjects never claimed are absent)
// with one batched direct get (multi_last): what LoadClaim answers one by
// one, for a batch of imports.
func (s *Store) LoadClaims(ctx context.Context, subjects []string) (map[string]events.ClaimHolder, error) {
	out := make(map[string]events.ClaimHolder, len(subjects))
	if len(subjects) == 0 {
		return out, nil
	}
	if len(subjects) > MaxClaimsPerLoad {
		return nil, fmt.Errorf("%w: LoadClaims of %d subjects", errUnexpected, len(subjects))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, _ := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
	}{subjects})
	msgs, _, err := s.directGet(ctx, req, len(subjects))
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		subject := m.Header.Get(jetstream.SubjectHeader)
		var rec claimRecord
		if json.Unmarshal(m.Data, &rec) != nil || rec.CustomerID == "" {
			return nil, fmt.Errorf("%w: claim %s: %q", errUnexpected, subject, m.Data)
		}
		out[subject] = events.ClaimHolder{CustomerID: rec.CustomerID, Seq: m.Seq}
	}
	return out, nil
}

// message returns the NATS message of one event: its subject, the
// CloudEvents document, and Nats-Msg-Id = the event id (de-duplication).
func message(ev events.Event) (*nats.Msg, error) {
	data, err := events.Encode(ev)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUnexpected, err)
	}
	m := &nats.Msg{Subject: events.SubjectOf(ev), Data: data, Header: nats.Header{}}
	m.Header.Set("Content-Type", events.ContentType)
	m.Header.Set("Ce-Type", ev.Type())
	m.Header.Set(jetstream.MsgIDHeader, ev.ID)
	return m, nil
}

// Headers of JetStream atomic batch publishing (nats-server 2.12+; nats.go
// 1.55 has no publisher for it).
const (
	batchIDHeader     = "Nats-Batch-Id"
	batchSeqHeader    = "Nats-Batch-Sequence"
	batchCommitHeader = "Nats-Batch-Commit"
)

// MaxBatch is the most events one Append may carry (the server's default
// limit of an atomic batch).
const MaxBatch = 1000

// publishBatch publishes msgs as one atomic batch and returns the stream
// sequence of the last one. The first message is sent as a request, so
// that a batch the server refuses at once (atomic publishing disabled, too
// many batches in flight) fails before the rest is sent; the others are
// staged without a reply; the commit (the last) returns the acknowledgement
// of the whole batch, or why nothing was stored.
func (s *Store) publishBatch(ctx context.Context, msgs []*nats.Msg) (uint64, error) {
	if len(msgs) > MaxBatch {
		return 0, fmt.Errorf("%w: a batch of %d events (at most %d)", errUnexpected, len(msgs), MaxBatch)
	}
	id := uuid.NewString()
	for i, m := range msgs {
		m.Header.Set(batchIDHeader, id)
		m.Header.Set(batchSeqHeader, strconv.Itoa(i+1))
		if i == len(msgs)-1 {
			m.Header.Set(batchCommitHeader, "1")
		}
	}
	first, err := s.nc.RequestMsgWithContext(ctx, msgs[0])
	if err != nil {
		return 0, classify(err)
	}
	if len(first.Data) > 0 { // an empty reply means "staged"
		if err := ackError(first.Data); err != nil {
			return 0, err
		}
	}
	for _, m := range msgs[1 : len(msgs)-1] {
		if err := s.nc.PublishMsg(m); err != nil {
			return 0, classify(err)
		}
	}
	resp, err := s.nc.RequestMsgWithContext(ctx, msgs[len(msgs)-1])
	if err != nil {
		return 0, classify(err)
	}
	var ack struct {
		Error  *jetstream.APIError `json:"error"`
		Stream string              `json:"stream"`
		Seq    uint64              `json:"seq"`
		Batch  string              `json:"batch"`
		Count  int                 `json:"count"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, fmt.Errorf("%w: batch ack %q: %v", errUnexpected, resp.Data, err)
	}
	if ack.Error != nil {
		return 0, classify(ack.Error)
	}
	if ack.Stream != s.cfg.Stream || ack.Batch != id || ack.Count != len(msgs) || ack.Seq < uint64(len(msgs)) {
		return 0, fmt.Errorf("%w: batch ack %s does not acknowledge batch %s of %d", errUnexpected, resp.Data, id, len(msgs))
	}
	return ack.Seq, nil
}

// ackError returns the classified error of a JetStream API reply, or nil.
func ackError(data []byte) error {
	var r struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%w: reply %q: %v", errUnexpected, data, err)
	}
	if r.Error != nil {
		return classify(r.Error)
	}
	return nil
}

// NextCode returns the next customer number (1, 2, …) from the server-side
// counter. Numbers are unique across every API process sharing the NATS
// system and are never reused; concurrent callers in one process share one
// increment.
func (s *Store) NextCode(ctx context.Context) (uint64, error) {
	return s.codes.next(ctx)
}

// NextCodes reserves n consecutive customer numbers at once (for a batch of
// creates) and returns the first. Like NextCode's, they are never given
// again, used or not.
func (s *Store) NextCodes(ctx context.Context, n int) (uint64, error) {
	if n < 1 {
		return 0, fmt.Errorf("%w: NextCodes(%d)", errUnexpected, n)
	}
	v, err := s.increment(ctx, n)
	if err != nil {
		return 0, err
	}
	return v - uint64(n) + 1, nil
}

// increment adds n to the counter and returns its new value.
func (s *Store) increment(ctx context.Context, n int) (uint64, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	msg := nats.NewMsg(CounterSubject)
	msg.Header.Set("Nats-Incr", "+"+strconv.Itoa(n))
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	resp, err := s.nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return 0, classify(err)
	}
	var ack struct {
		Error *jetstream.APIError `json:"error"`
		Val   string              `json:"val"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return 0, fmt.Errorf("%w: counter ack: %v", errUnexpected, err)
	}
	if ack.Error != nil {
		return 0, classify(ack.Error)
	}
	v, err := strconv.ParseUint(ack.Val, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: counter value %q: %v", errUnexpected, ack.Val, err)
	}
	return v, nil
}

// writable returns ErrNotWritable when Config.Writable reports an error.
func (s *Store) writable() error {
	if s.cfg.Writable == nil {
		return nil
	}
	if err := s.cfg.Writable(); err != nil {
		return fmt.Errorf("%w: %v", ErrNotWritable, err)
	}
	return nil
}

// JetStream API error codes of atomic batches (nats-server's
// JSAtomicPublishIncompleteBatchErr, JSAtomicPublishTooManyInflight,
// JSAtomicPublishContainsDuplicateMessageErr).
const (
	errCodeBatchIncomplete      jetstream.ErrorCode = 10176
	errCodeBatchTooManyInflight jetstream.ErrorCode = 10210
	errCodeBatchDuplicate       jetstream.ErrorCode = 10201
)

// classify maps a NATS error to ErrConflict, ErrUnavailable or (anything
// else) errUnexpected, keeping it as the cause.
func classify(err error) error {
	if err == nil || fault.Of(err) != nil {
		return err
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant,
			errCodeBatchDuplicate: // a batch whose events are stored already
			return fmt.Errorf("%w: %v", ErrConflict, err)
		case errCodeBatchIncomplete, errCodeBatchTooManyInflight:
			// Staged messages lost (a reconnect, a restart, the batch timed
			// out) or too many batches at once: nothing was stored; retry.
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if apiErr.Code == 503 {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return fmt.Errorf("%w: %v", errUnexpected, err)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %v", errUnexpected, err)
}
