package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The delivery log: every attempt, per subscription, in the stream
// DeliveriesStream. Attempts are gathered and written as one message per
// subscription every logFlush (or logBatch attempts): one synced write per
// batch rather than per attempt, which would cap deliveries at the disk's
// synced-write rate. A crash loses at most the last logFlush of records
// (the log is for people; no event is lost with it).
const (
	logFlush = 50 * time.Millisecond
	logBatch = 200
)

// deliveryLog gathers attempts. Safe for concurrent use.
type deliveryLog struct {
	m       *Manager
	mu      sync.Mutex
	pending map[string][]Delivery
	kick    chan struct{}
}

func newDeliveryLog(m *Manager) *deliveryLog {
	return &deliveryLog{m: m, pending: map[string][]Delivery{}, kick: make(chan struct{}, 1)}
}

// add queues an attempt of subscription id.
func (l *deliveryLog) add(id string, d Delivery) {
	l.mu.Lock()
	l.pending[id] = append(l.pending[id], d)
	full := len(l.pending[id]) >= logBatch
	l.mu.Unlock()
	if full {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// run writes the gathered attempts until ctx ends, then once more.
func (l *deliveryLog) run(ctx context.Context) {
	t := time.NewTicker(logFlush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			l.flush(fctx, "")
			cancel()
			return
		case <-t.C:
		case <-l.kick:
		}
		l.flush(ctx, "")
	}
}

// flush writes the pending attempts (of subscription only, when given) and
// waits for the writes.
func (l *deliveryLog) flush(ctx context.Context, only string) {
	l.mu.Lock()
	batch := l.pending
	if only != "" {
		batch = map[string][]Delivery{only: l.pending[only]}
		delete(l.pending, only)
	} else {
		l.pending = map[string][]Delivery{}
	}
	l.mu.Unlock()
	for id, ds := range batch {
		for len(ds) > 0 {
			n := min(len(ds), logBatch)
			b, _ := json.Marshal(ds[:n])
			if _, err := l.m.js.Publish(ctx, DeliveriesPrefix+"."+id, b); err != nil {
				l.m.log.Warn("webhooks: write the delivery log", "subscription", id, "records", n, "err", err)
			}
			ds = ds[n:]
		}
	}
}

// logCursor is a record's place in the log: the message's sequence and
// the record's index in it.
type logCursor struct {
	seq uint64
	idx int
}

func (c logCursor) String() string {
	if c.seq == 0 {
		return ""
	}
	return strconv.FormatUint(c.seq, 10) + "-" + strconv.Itoa(c.idx)
}

// ParseLogCursor reads the meta.next of a deliveries page.
func ParseLogCursor(s string) (logCursor, error) {
	a, b, ok := strings.Cut(s, "-")
	seq, err1 := strconv.ParseUint(a, 10, 64)
	idx, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || seq == 0 || idx < 0 || idx >= logBatch {
		return logCursor{}, fmt.Errorf("not a deliveries cursor")
	}
	return logCursor{seq, idx}, nil
}

// decodeRecords reads one log message (an array of attempts; a single
// object is read as one).
func decodeRecords(data []byte) []Delivery {
	var ds []Delivery
	if json.Unmarshal(data, &ds) == nil {
		return ds
	}
	var d Delivery
	if json.Unmarshal(data, &d) == nil {
		return []Delivery{d}
	}
	return nil
}
