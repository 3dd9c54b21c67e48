package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"crm/internal/events"
	"crm/internal/fault"
)

// ChangeFeed is what the change feed reads: the stream, forward
// (implemented by eventstore.Store).
type ChangeFeed interface {
	// ReadChanges reads up to limit messages stored after sequence after
	// and returns their events in stream order, with their Seq, the
	// sequence of the last message read (after: none) and whether more
	// follow.
	ReadChanges(ctx context.Context, after uint64, limit int) (evs []events.Event, last uint64, more bool, err error)
}

// Change feed limits.
const (
	defaultChanges = 100
	maxChanges     = 1000
	maxChangesWait = 30 * time.Second
	// maxScanned bounds the events one request reads while a types filter
	// skips them; next then points past the last one read.
	maxScanned = 10_000
)

// cursorPrefix makes a change cursor recognisable (and a list cursor, or
// any other string, not one).
const cursorPrefix = "chg1:"

// ChangeCursor returns the change feed's cursor that resumes after stream
// sequence seq (0: from the beginning).
func ChangeCursor(seq uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatUint(seq, 10)))
}

func parseChangeCursor(s string) (uint64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, false
	}
	rest, ok := strings.CutPrefix(string(b), cursorPrefix)
	if !ok {
		return 0, false
	}
	n, err := number(rest)
	return uint64(n), err == nil
}

type changeJSON struct {
	Sequence    uint64          `json:"sequence"`
	Cursor      string          `json:"cursor"`
	Type        string          `json:"type"`
	Aggregate   string          `json:"aggregate"`
	AggregateID string          `json:"aggregateId"`
	CustomerID  string          `json:"customerId,omitempty"` // customer events only
	Time        string          `json:"time"`
	Event       json.RawMessage `json:"event"`
}

type changesMeta struct {
	Next    string `json:"next"`
	HasMore bool   `json:"hasMore"`
	Limit   int    `json:"limit"`
}

type changesResponse struct {
	Data []changeJSON `json:"data"`
	Meta changesMeta  `json:"meta"`
}

// listChanges serves GET /changes: the events after the cursor in stream
// order, each as its CloudEvent (in the current version of its type), with
// the cursor to resume from; wait long-polls while there is nothing new
// (crm.audit). By default the customers' events only (what the feed served
// before contacts and activities existed); aggregates= or types= choose.
func (a *api) listChanges(c *gin.Context) {
	var (
		after uint64
		limit = defaultChanges
		wait  time.Duration
		types []string
		aggs  []events.Aggregate // nil: all
		errs  []fault.FieldError
		given bool // aggregates or types
	)
	fail := func(f, m string) { errs = append(errs, fault.FieldError{Field: f, Message: m}) }
	for key, vs := range c.Request.URL.Query() {
		if len(vs) != 1 {
			fail(key, "must be given once")
			continue
		}
		v := vs[0]
		switch key {
		case "after":
			n, ok := parseChangeCursor(v)
			if !ok {
				fail(key, "must be a cursor of this feed (meta.next or a change's cursor)")
				continue
			}
			after = n
		case "limit":
			n, err := number(v)
			if err != nil || n < 1 || n > maxChanges {
				fail(key, "must be an integer from 1 to "+strconv.Itoa(maxChanges))
				continue
			}
			limit = n
		case "wait":
			d, err := time.ParseDuration(v)
			if n, nerr := number(v); nerr == nil { // bare seconds
				d, err = time.Duration(n)*time.Second, nil
			}
			if err != nil || d < 0 || d > maxChangesWait {
				fail(key, "must be a duration from 0s to 30s, e.g. 30s")
				continue
			}
			wait = d
		case "aggregates":
			given = true
			known := events.Aggregates()
			for _, a := range strings.Split(v, ",") {
				a := events.Aggregate(strings.TrimSpace(a))
				if !slices.Contains(known, a) {
					fail(key, "must be a comma-separated list of aggregates ("+joinAggregates(known)+")")
					aggs = nil
					break
				}
				if !slices.Contains(aggs, a) {
					aggs = append(aggs, a)
				}
			}
		case "types":
			given = true
			known := events.Types()
			for _, t := range strings.Split(v, ",") {
				t = strings.TrimSpace(t)
				if !slices.Contains(known, t) {
					fail(key, "must be a comma-separated list of event types ("+strings.Join(known, ", ")+")")
					types = nil
					break
				}
				types = append(types, t)
			}
		default:
			fail(key, "is not a known parameter")
		}
	}
	if len(errs) > 0 {
		writeError(c, fault.InvalidFields(errs...))
		return
	}
	if !given {
		aggs = []events.Aggregate{events.Customers}
	}
	keep := func(ev events.Event) bool {
		return (aggs == nil || slices.Contains(aggs, ev.Data.Aggregate())) &&
			(types == nil || slices.Contains(types, ev.Type()))
	}
	if a.Changes == nil {
		writeError(c, errNoStream)
		return
	}
	ctx := c.Request.Context()
	deadline := time.Now().Add(wait)
	for {
		items, next, more, err := a.readChanges(ctx, after, limit, keep)
		if err != nil {
			writeError(c, err)
			return
		}
		if len(items) > 0 || more || wait <= 0 || !time.Now().Before(deadline) {
			c.JSON(http.StatusOK, changesResponse{Data: items, Meta: changesMeta{Next: ChangeCursor(next), HasMore: more, Limit: limit}})
			return
		}
		after = next
		if !a.waitForChanges(ctx, next+1, deadline) {
			deadline = time.Now() // answer what there is (nothing)
		}
	}
}

var errNoStream = fault.New(fault.Unavailable, "the event stream is unavailable; retry later")

// readChanges reads the events after after, keeping those keep takes,
// until limit are kept or maxScanned messages were read; next is the
// sequence of the last message read.
func (a *api) readChanges(ctx context.Context, after uint64, limit int, keep func(events.Event) bool) ([]changeJSON, uint64, bool, error) {
	items := make([]changeJSON, 0, min(limit, 64))
	next, scanned := after, uint64(0)
	for {
		evs, last, more, err := a.Changes.ReadChanges(ctx, next, limit-len(items))
		if err != nil {
			return nil, 0, false, err
		}
		scanned += last - next
		read := last > next
		next = last
		for _, ev := range evs {
			if !keep(ev) {
				continue
			}
			data, err := events.Encode(ev)
			if err != nil {
				return nil, 0, false, fault.Wrap(fault.Internal, "encode event", err)
			}
			item := changeJSON{Sequence: ev.Seq, Cursor: ChangeCursor(ev.Seq), Type: ev.Type(),
				Aggregate: string(ev.Data.Aggregate()), AggregateID: ev.AggregateID,
				Time: ev.Time.UTC().Format(time.RFC3339Nano), Event: data}
			if ev.Data.Aggregate() == events.Customers {
				item.CustomerID = ev.AggregateID
			}
			items = append(items, item)
		}
		if !more || len(items) >= limit || scanned >= maxScanned || !read {
			return items, next, more, nil
		}
	}
}

// waitForChanges blocks until the stream holds sequence seq, the deadline
// passes, the request ends or the service stops; it reports whether the
// stream got there.
func (a *api) waitForChanges(ctx context.Context, seq uint64, deadline time.Time) bool {
	if a.ChangesWaiter == nil {
		return false
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if a.Stopping != nil {
		go func() {
			select {
			case <-a.Stopping:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return a.ChangesWaiter.WaitFor(ctx, seq)
}

func joinAggregates(as []events.Aggregate) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}
