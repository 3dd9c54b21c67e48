package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/events"
)

// Outcomes of an attempt.
const (
	OutcomeDelivered = "delivered" // the endpoint answered 2xx
	OutcomeFailed    = "failed"    // anything else: retried
	OutcomeGone      = "gone"      // 410: the subscription is disabled
)

// Delivery is one logged attempt.
type Delivery struct {
	EventID        string     `json:"eventId"`
	EventType      string     `json:"eventType"`
	CustomerID     string     `json:"customerId,omitempty"` // a customer event's
	Aggregate      string     `json:"aggregate,omitempty"`
	AggregateID    string     `json:"aggregateId,omitempty"`
	StreamSequence uint64     `json:"streamSequence,omitempty"`
	Attempt        int        `json:"attempt"`
	At             time.Time  `json:"at"`
	Outcome        string     `json:"outcome"`
	Status         int        `json:"status,omitempty"`
	LatencyMs      float64    `json:"latencyMs"`
	Error          string     `json:"error,omitempty"`
	NextAttemptAt  *time.Time `json:"nextAttemptAt,omitempty"`
	Ping           bool       `json:"ping,omitempty"`
}

// maxResponseBytes is how much of a response body is read (and the first
// part of it kept as the error of a failed attempt).
const maxResponseBytes = 64 << 10

// post makes one signed attempt; it never retries.
func (m *Manager) post(ctx context.Context, s Subscription, id string, seq uint64, body []byte) (Delivery, http.Header) {
	now := time.Now()
	d := Delivery{At: now.UTC(), EventID: id, StreamSequence: seq}
	ctx, cancel := context.WithTimeout(ctx, m.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		d.Outcome, d.Error = OutcomeFailed, "bad URL"
		return d, nil
	}
	req.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
	req.Header.Set("User-Agent", "crm-webhooks/1")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, SignatureHeader(s.signingKeys(now), id, now, body))
	req.Header.Set(HeaderSubscription, s.ID)
	if seq > 0 {
		req.Header.Set(HeaderSequence, strconv.FormatUint(seq, 10))
	}
	resp, err := m.client.Do(req)
	d.LatencyMs = float64(time.Since(now).Microseconds()) / 1000
	if err != nil {
		d.Outcome, d.Error = OutcomeFailed, describe(err, ctx)
		return d, nil
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes)) // lets the connection be reused
	d.Status = resp.StatusCode
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		d.Outcome = OutcomeDelivered
	case resp.StatusCode == http.StatusGone:
		d.Outcome, d.Error = OutcomeGone, "410 Gone: the endpoint asked for no more deliveries"
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		d.Outcome, d.Error = OutcomeFailed, resp.Status+": redirects are not followed"
	default:
		d.Outcome = OutcomeFailed
		d.Error = resp.Status
		if t := strings.TrimSpace(strings.ToValidUTF8(string(head), "")); t != "" {
			d.Error += ": " + t
		}
	}
	return d, resp.Header
}

// describe turns a client error into a short reason without the URL (it
// may carry a token in its query).
func describe(err error, ctx context.Context) string {
	if ctx.Err() == context.DeadlineExceeded {
		return "timed out"
	}
	var be errBlocked
	if errors.As(err, &be) {
		return be.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	s := err.Error()
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// record adds an attempt to the log (see deliveryLog).
func (m *Manager) record(subID string, d Delivery) {
	m.dlog.add(subID, d)
	m.opts.Metrics.WebhookDelivery(d.Outcome)
}

// Ping sends a signed ping event to the subscription's endpoint once and
// logs the attempt.
func (m *Manager) Ping(ctx context.Context, id string) (Delivery, error) {
	s, _, err := m.Get(ctx, id)
	if err != nil {
		return Delivery{}, err
	}
	evID := uuid.NewString()
	body, _ := json.Marshal(map[string]any{
		"specversion": "1.0", "id": evID, "source": m.opts.Source, "type": PingType,
		"subject": s.ID, "time": time.Now().UTC(), "datacontenttype": "application/json",
		"data": map[string]any{"subscriptionId": s.ID, "message": "ping from crm"},
	})
	d, _ := m.post(ctx, s, evID, 0, body)
	d.EventType, d.Attempt, d.Ping = PingType, 1, true
	m.record(s.ID, d)
	m.dlog.flush(ctx, s.ID) // in the log when the answer comes
	return d, nil
}

// ---- delivery of one subscription --------------------------------------

// item is one event held by a dispatcher until its endpoint took it.
type item struct {
	msg       jetstream.Msg
	seq       uint64
	customer  string // the ordering key: aggregate and id
	id, typ   string
	attempts  int
	firstFail time.Time
}

type result struct {
	it     *item
	d      Delivery
	header http.Header
}

var (
	errGap      = errors.New("webhooks: a delivery went missing: restarting at the acknowledged position")
	errDisabled = errors.New("webhooks: subscription disabled")
)

// dispatcher delivers one subscription's events while its runner holds the
// lease: events of one customer (contact, activity) one at a time, in
// stream order; different ones up to Concurrency at once.
type dispatcher struct {
	m   *Manager
	sub *atomic.Pointer[Subscription]
	// until is when this replica's lease ends unless renewed (unix nanos).
	until *atomic.Int64
}

var errLease = errors.New("webhooks: the lease was not renewed in time: stopping")

// leased reports whether the lease is still surely this replica's.
func (d *dispatcher) leased() bool { return time.Now().UnixNano() < d.until.Load() }

func (d *dispatcher) run(ctx context.Context) error {
	s := *d.sub.Load()
	cons, err := d.m.consumerFor(ctx, s)
	if err != nil {
		return err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(min(256, MaxPending)))
	if err != nil {
		return err
	}
	defer it.Stop()
	ctx, cancel := context.WithCancel(ctx) // ends the attempts and timers of this run
	defer cancel()
	msgs, errc := make(chan jetstream.Msg), make(chan error, 1)
	go func() {
		for {
			msg, err := it.Next()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- msg:
			case <-ctx.Done():
				return
			}
		}
	}()

	failing := d.m.loadRetries(ctx, s.ID)
	var (
		queues   = map[string][]*item{}
		busy     = map[string]bool{}
		parked   = map[string]bool{}
		held     = map[uint64]*item{}
		ready    []string
		active   int
		lastDseq uint64
		gate     time.Time
		gateT    *time.Timer
		results  = make(chan result)
		wake     = make(chan string)
	)
	keepAlive := time.NewTicker(d.m.opts.AckWait / 3)
	defer keepAlive.Stop()
	lagTick := time.NewTicker(5 * time.Second)
	defer lagTick.Stop()
	gateC := make(chan struct{}, 1)
	defer func() {
		if gateT != nil {
			gateT.Stop()
		}
	}()

	pump := func() {
		s := d.sub.Load()
		for active < s.Concurrency && len(ready) > 0 {
			if wait := time.Until(gate); wait > 0 {
				if gateT == nil {
					gateT = time.AfterFunc(wait, func() {
						select {
						case gateC <- struct{}{}:
						default:
						}
					})
				}
				return
			}
			if !d.leased() {
				return // the lease may be another replica's now: no attempt (the loop stops at its next tick)
			}
			c := ready[0]
			ready = ready[1:]
			head := queues[c][0]
			busy[c] = true
			active++
			id, seq, body := head.id, head.seq, head.msg.Data() // the main loop may swap head.msg
			go func() {
				r := result{it: head}
				r.d, r.header = d.m.post(ctx, *d.sub.Load(), id, seq, body)
				select {
				case results <- r:
				case <-ctx.Done():
				}
			}()
		}
	}

	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return err
		case msg := <-msgs:
			md, err := msg.Metadata()
			if err != nil {
				return err
			}
			if md.Sequence.Consumer != lastDseq+1 {
				return errGap
			}
			lastDseq = md.Sequence.Consumer
			if h := held[md.Sequence.Stream]; h != nil {
				h.msg = msg // a redelivery of an event held: acknowledge through the newest
				continue
			}
			if md.NumDelivered > 1 {
				return errGap // a redelivery of an event never received here
			}
			var ev struct{ ID, Type string }
			_ = json.Unmarshal(msg.Data(), &ev)
			if ev.ID == "" {
				ev.ID = fmt.Sprintf("%s-%d", d.m.opts.Stream, md.Sequence.Stream)
			}
			if !d.sub.Load().Matches(ev.Type) {
				if err := msg.Ack(); err != nil {
					return err
				}
				continue
			}
			c := customerOf(msg.Subject())
			h := &item{msg: msg, seq: md.Sequence.Stream, customer: c, id: ev.ID, typ: ev.Type}
			if st, ok := failing[h.seq]; ok {
				h.firstFail, h.attempts = st.First, st.Attempts // failing since before this run
			}
			held[h.seq] = h
			queues[c] = append(queues[c], h)
			if len(queues[c]) == 1 && !busy[c] && !parked[c] {
				ready = append(ready, c)
			}
			pump()
		case r := <-results:
			if !d.leased() {
				return errLease // another replica may deliver now: no acknowledgement from here
			}
			active--
			h := r.it
			busy[h.customer] = false
			h.attempts++
			r.d.Attempt, r.d.EventType = h.attempts, h.typ
			if agg, id, ok := strings.Cut(h.customer, "."); ok {
				r.d.Aggregate, r.d.AggregateID = agg, id
				if agg == string(events.Customers) {
					r.d.CustomerID = id
				}
			}
			now := time.Now()
			switch r.d.Outcome {
			case OutcomeDelivered:
				d.m.record(d.sub.Load().ID, r.d)
				d.m.opts.Metrics.WebhookLatency(now.Sub(eventTime(h.msg)))
				if err := ackSync(ctx, h.msg); err != nil {
					return err // restart at the acknowledged position: the order is kept
				}
				delete(held, h.seq)
				if _, ok := failing[h.seq]; ok {
					delete(failing, h.seq)
					d.m.saveRetries(ctx, d.sub.Load().ID, failing)
				}
				q := queues[h.customer][1:]
				if len(q) == 0 {
					delete(queues, h.customer)
				} else {
					queues[h.customer] = q
					ready = append(ready, h.customer)
				}
			case OutcomeGone:
				d.m.record(d.sub.Load().ID, r.d)
				d.m.dlog.flush(context.WithoutCancel(ctx), d.sub.Load().ID) // the reason's attempt is in the log first
				if err := d.m.disable(context.WithoutCancel(ctx), d.sub.Load().ID, "the endpoint answered 410 Gone at "+now.UTC().Format(time.RFC3339)); err != nil {
					return err // not recorded: the run starts again and meets the 410 again
				}
				return errDisabled
			default:
				if h.firstFail.IsZero() {
					h.firstFail = now
				}
				if st, ok := failing[h.seq]; !ok || h.attempts-st.Attempts >= 10 {
					failing[h.seq] = retryState{First: h.firstFail, Attempts: h.attempts}
					d.m.saveRetries(ctx, d.sub.Load().ID, failing) // at the first failure, then every 10th
				}
				sched := d.m.opts.Schedule
				if now.Sub(h.firstFail) >= sched.For {
					d.m.record(d.sub.Load().ID, r.d)
					d.m.dlog.flush(context.WithoutCancel(ctx), d.sub.Load().ID)
					if err := d.m.disable(context.WithoutCancel(ctx), d.sub.Load().ID, fmt.Sprintf(
						"event %s failed for %s (since %s, %d attempts); last error: %s",
						h.id, sched.For, h.firstFail.UTC().Format(time.RFC3339), h.attempts, r.d.Error)); err != nil {
						return err
					}
					return errDisabled
				}
				delay := sched.Delay(h.attempts, rand.Float64())
				if (r.d.Status == http.StatusTooManyRequests || r.d.Status == http.StatusServiceUnavailable) && r.header != nil {
					if ra, ok := retryAfter(r.header, now); ok {
						delay = max(delay, ra)
						if g := now.Add(ra); g.After(gate) {
							gate = g // the endpoint asked every sender to wait
							if gateT != nil {
								gateT.Stop()
								gateT = nil
							}
						}
					}
				}
				next := now.Add(delay).UTC()
				r.d.NextAttemptAt = &next
				d.m.record(d.sub.Load().ID, r.d)
				parked[h.customer] = true
				c := h.customer
				time.AfterFunc(delay, func() {
					select {
					case wake <- c:
					case <-ctx.Done():
					}
				})
			}
			pump()
		case c := <-wake:
			delete(parked, c)
			if len(queues[c]) > 0 && !busy[c] {
				ready = append(ready, c)
			}
			pump()
		case <-gateC:
			gateT = nil
			pump()
		case <-keepAlive.C:
			if !d.leased() {
				return errLease
			}
			for _, h := range held {
				_ = h.msg.InProgress() // the ack wait restarts: no redelivery while held
			}
		case <-lagTick.C:
			if info, err := cons.Info(ctx); err == nil {
				d.m.opts.Metrics.WebhookLag(d.sub.Load().ID, info.NumPending+uint64(info.NumAckPending))
			}
		}
	}
}

// ackSync acknowledges an event and waits for the server's confirmation,
// trying a few times: an event whose acknowledgement is lost would come
// again after later events of its customer.
func ackSync(ctx context.Context, msg jetstream.Msg) error {
	var err error
	for i := range 3 {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = msg.DoubleAck(actx)
		cancel()
		if err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			return nil
		}
		time.Sleep(time.Duration(i+1) * 100 * time.Millisecond)
	}
	return err
}

func eventTime(msg jetstream.Msg) time.Time {
	if md, err := msg.Metadata(); err == nil {
		return md.Timestamp
	}
	return time.Now()
}

// customerOf returns "<aggregate>.<id>" of crm.<aggregate>.<id>.<kind>:
// the events of one customer (contact, activity) are delivered in order.
func customerOf(subject string) string {
	parts := strings.SplitN(subject, ".", 4)
	if len(parts) < 3 {
		return subject
	}
	return parts[1] + "." + parts[2]
}

// consumerFor returns a fresh durable consumer for s that starts where
// delivery must go on: at the first event the previous consumer did not
// see acknowledged (so events still pending come again, in order, before
// later ones; the endpoint de-duplicates by webhook-id), or at
// s.StartSequence when s's generation is new (created or replayed). The
// previous consumers are deleted after the new one exists, so a crash in
// between loses no position.
func (m *Manager) consumerFor(ctx context.Context, s Subscription) (jetstream.Consumer, error) {
	// The subscription as stored now: a dispatcher restarting on a stale
	// copy must not bring back the consumer of a deleted or disabled one.
	cur, _, err := m.Get(ctx, s.ID)
	if errors.Is(err, ErrNotFound) || err == nil && !cur.Enabled {
		return nil, errDisabled
	}
	if err != nil {
		return nil, err
	}
	if restartNeeded(s, cur) {
		return nil, errors.New("webhooks: the subscription changed: restarting on the new one")
	}
	stream, err := m.js.Stream(ctx, m.opts.Stream)
	if err != nil {
		return nil, err
	}
	names, n, err := m.consumerNames(ctx, stream, s.ID)
	if err != nil {
		return nil, err
	}
	start := s.StartSequence
	if len(names) > 0 {
		if c, err := stream.Consumer(ctx, names[len(names)-1]); err == nil {
			info, err := c.Info(ctx)
			if err != nil {
				return nil, err
			}
			if info.Config.Metadata[metaGeneration] == strconv.FormatUint(s.Generation, 10) {
				start = max(info.AckFloor.Stream+1, info.Config.OptStartSeq)
			}
		} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, err
		}
	}
	name := ConsumerPrefix + s.ID + "-" + strconv.Itoa(n+1)
	c, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:        name,
		Description:    "crm webhook subscription " + s.ID,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        m.opts.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  MaxPending,
		FilterSubjects: s.FilterSubjects(),
		Replicas:       m.opts.Replicas,
		Metadata:       map[string]string{metaGeneration: strconv.FormatUint(s.Generation, 10)},
	})
	if err != nil {
		return nil, err
	}
	for _, old := range names {
		if err := stream.DeleteConsumer(ctx, old); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			m.log.Warn("webhook: delete an old consumer", "consumer", old, "err", err)
		}
	}
	return c, nil
}

// consumerNames lists the consumers of subscription id in the order they
// were made, and the highest number used.
func (m *Manager) consumerNames(ctx context.Context, stream jetstream.Stream, id string) ([]string, int, error) {
	prefix := ConsumerPrefix + id + "-"
	type named struct {
		name string
		n    int
	}
	var found []named
	lister := stream.ConsumerNames(ctx)
	for name := range lister.Name() {
		if rest, ok := strings.CutPrefix(name, prefix); ok {
			if n, err := strconv.Atoi(rest); err == nil {
				found = append(found, named{name, n})
			}
		}
	}
	if err := lister.Err(); err != nil {
		return nil, 0, err
	}
	sort.Slice(found, func(i, j int) bool { return found[i].n < found[j].n })
	names := make([]string, len(found))
	hi := 0
	for i, f := range found {
		names[i], hi = f.name, f.n
	}
	return names, hi, nil
}

// current returns the newest consumer of subscription id (nil: none yet).
func (m *Manager) current(ctx context.Context, id string) (jetstream.Consumer, error) {
	stream, err := m.js.Stream(ctx, m.opts.Stream)
	if err != nil {
		return nil, m.unavailable(err)
	}
	names, _, err := m.consumerNames(ctx, stream, id)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	c, err := stream.Consumer(ctx, names[len(names)-1])
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil
	}
	return c, err
}

// deleteConsumers removes subscription id's consumers but keep.
func (m *Manager) deleteConsumers(ctx context.Context, id, keep string) {
	stream, err := m.js.Stream(ctx, m.opts.Stream)
	if err != nil {
		return
	}
	names, _, _ := m.consumerNames(ctx, stream, id)
	for _, n := range names {
		if n != keep {
			_ = stream.DeleteConsumer(ctx, n)
		}
	}
}

// disable turns a subscription off with the reason (within 10 s).
func (m *Manager) disable(ctx context.Context, id, reason string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, _, err := m.change(ctx, id, 0, func(s *Subscription) error {
		now := time.Now().UTC()
		s.Enabled, s.DisabledReason, s.DisabledAt = false, reason, &now
		s.UpdatedAt, s.UpdatedBy = now, "crm-webhooks"
		return nil
	})
	if err != nil {
		m.log.Error("webhook: disable", "subscription", id, "err", err)
		return err
	}
	m.log.Warn("webhook subscription disabled", "subscription", id, "reason", reason)
	return nil
}
