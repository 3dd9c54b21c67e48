package mongodb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"crm/internal/readmodel"
)

// activityDocument is the BSON shape of one activity in the activities
// collection, under the conventions of the contacts' document: camelCase
// names, unset optional strings (subject, body, outcome) null, times a
// BSON date (milliseconds) plus the nanoseconds past the millisecond
// (occurredAtNs, dueAtNs, createdAtNs, updatedAtNs: 0–999999), dueAt null
// (and dueAtNs 0) when the activity has none. version and seq are the
// write guard; deleted marks the tombstone, which stays so that a late
// event cannot resurrect the activity.
type activityDocument struct {
	ID           string         `bson:"_id"`
	CustomerID   string         `bson:"customerId"`
	Type         string         `bson:"type"`
	OccurredAt   bson.DateTime  `bson:"occurredAt"`
	OccurredAtNs int32          `bson:"occurredAtNs"`
	Subject      *string        `bson:"subject"`
	Body         *string        `bson:"body"`
	Outcome      *string        `bson:"outcome"`
	ContactIDs   []string       `bson:"contactIds"`
	DueAt        *bson.DateTime `bson:"dueAt"`
	DueAtNs      int32          `bson:"dueAtNs"`
	Done         bool           `bson:"done"`
	CreatedBy    string         `bson:"createdBy"`
	CreatedAt    bson.DateTime  `bson:"createdAt"`
	CreatedAtNs  int32          `bson:"createdAtNs"`
	UpdatedBy    string         `bson:"updatedBy"`
	UpdatedAt    bson.DateTime  `bson:"updatedAt"`
	UpdatedAtNs  int32          `bson:"updatedAtNs"`
	Version      int64          `bson:"version"`
	Seq          int64          `bson:"seq"`
	Deleted      bool           `bson:"deleted"`
}

// toActivityDocument returns the document of a. Seq and Version must fit
// in int64 (readmodel.PrepareActivities checks them).
func toActivityDocument(a readmodel.Activity) activityDocument {
	d := activityDocument{
		ID: a.ID, CustomerID: a.CustomerID, Type: a.Type,
		Subject: opt(a.Subject), Body: opt(a.Body), Outcome: opt(a.Outcome), ContactIDs: nonNil(a.ContactIDs),
		Done: a.Done, CreatedBy: a.CreatedBy, UpdatedBy: a.UpdatedBy,
		Version: int64(a.Version), Seq: int64(a.Seq), Deleted: a.Deleted,
	}
	d.OccurredAt, d.OccurredAtNs = splitTime(a.OccurredAt)
	if !a.DueAt.IsZero() {
		var due bson.DateTime
		due, d.DueAtNs = splitTime(a.DueAt)
		d.DueAt = &due
	}
	d.CreatedAt, d.CreatedAtNs = splitTime(a.CreatedAt)
	d.UpdatedAt, d.UpdatedAtNs = splitTime(a.UpdatedAt)
	return d
}

// activity returns the activity the document stores.
func (d activityDocument) activity() readmodel.Activity {
	a := readmodel.Activity{
		ID: d.ID, CustomerID: d.CustomerID, Type: d.Type, OccurredAt: joinTime(d.OccurredAt, d.OccurredAtNs),
		Subject: str(d.Subject), Body: str(d.Body), ContactIDs: nonNil(d.ContactIDs), Outcome: str(d.Outcome),
		Done: d.Done, CreatedBy: d.CreatedBy, CreatedAt: joinTime(d.CreatedAt, d.CreatedAtNs),
		UpdatedBy: d.UpdatedBy, UpdatedAt: joinTime(d.UpdatedAt, d.UpdatedAtNs),
		Version: uint64(d.Version), Seq: uint64(d.Seq), Deleted: d.Deleted,
	}
	if d.DueAt != nil {
		a.DueAt = joinTime(*d.DueAt, d.DueAtNs)
	}
	return a
}

var activityDocs = docKind[readmodel.Activity]{
	key:  func(a readmodel.Activity) (string, uint64) { return a.ID, a.Seq },
	bson: func(a readmodel.Activity) any { return toActivityDocument(a) },
}

// The timeline collection holds the customers' timelines: one entry per
// customer event (key "e:<eventId>"), written once and never changed, and
// one per live activity (key "a:<activityId>") at its OccurredAt, kept in
// step with the activity's document: written with it while it is live,
// removed when it is deleted. An entry's _id is timelineID(customerId,
// key); at and atNs are its time as a BSON date plus the nanoseconds past
// the millisecond; seq is the stream sequence of the event, or of the
// activity version it was written from (the write guard of activity
// entries).
//
// An event's entry keeps what the timeline shows of it: eventId, version,
// actor, changes (the JSON array of changes, as a string, so that it
// round-trips byte for byte) and data (the event's data as a JSON string,
// null for the kinds without). An activity's entry keeps only activityId:
// Timeline joins the activity's document.

// timelineID is the _id of the entry key of customerID's timeline.
// (Customer ids are UUIDs, which hold no "/".)
func timelineID(customerID, key string) string { return customerID + "/" + key }

func activityKey(id string) string { return "a:" + id }

func eventKey(id string) string { return "e:" + id }

// activityEntry is the BSON shape of an activity's timeline entry.
type activityEntry struct {
	ID         string        `bson:"_id"`
	CustomerID string        `bson:"customerId"`
	Key        string        `bson:"key"`
	Kind       string        `bson:"kind"`
	At         bson.DateTime `bson:"at"`
	AtNs       int32         `bson:"atNs"`
	ActivityID string        `bson:"activityId"`
	Seq        int64         `bson:"seq"`
}

// eventEntry is the BSON shape of a customer event's timeline entry.
type eventEntry struct {
	ID         string        `bson:"_id"`
	CustomerID string        `bson:"customerId"`
	Key        string        `bson:"key"`
	Kind       string        `bson:"kind"`
	At         bson.DateTime `bson:"at"`
	AtNs       int32         `bson:"atNs"`
	EventID    string        `bson:"eventId"`
	Version    int64         `bson:"version"`
	Actor      string        `bson:"actor"`
	Changes    string        `bson:"changes"`
	Data       *string       `bson:"data"`
	Seq        int64         `bson:"seq"`
}

// timelineDocument is either entry as read (the fields of the other kind
// are absent, so zero).
type timelineDocument struct {
	ID         string        `bson:"_id"`
	CustomerID string        `bson:"customerId"`
	Key        string        `bson:"key"`
	Kind       string        `bson:"kind"`
	At         bson.DateTime `bson:"at"`
	AtNs       int32         `bson:"atNs"`
	ActivityID string        `bson:"activityId"`
	EventID    string        `bson:"eventId"`
	Version    int64         `bson:"version"`
	Actor      string        `bson:"actor"`
	Changes    string        `bson:"changes"`
	Data       *string       `bson:"data"`
	Seq        int64         `bson:"seq"`
}

func toActivityEntry(a readmodel.Activity) activityEntry {
	key := activityKey(a.ID)
	e := activityEntry{ID: timelineID(a.CustomerID, key), CustomerID: a.CustomerID, Key: key, Kind: a.Type,
		ActivityID: a.ID, Seq: int64(a.Seq)}
	e.At, e.AtNs = splitTime(a.OccurredAt)
	return e
}

// toEventEntry returns the entry of e. Seq and Version must fit in int64
// (readmodel.PrepareTimeline checks them).
func toEventEntry(e readmodel.TimelineEvent) eventEntry {
	key := eventKey(e.EventID)
	d := eventEntry{ID: timelineID(e.CustomerID, key), CustomerID: e.CustomerID, Key: key, Kind: e.Kind,
		EventID: e.EventID, Version: int64(e.Version), Actor: e.Actor, Changes: string(e.Changes), Seq: int64(e.Seq)}
	if len(e.Changes) == 0 {
		d.Changes = "[]"
	}
	if len(e.Data) > 0 {
		data := string(e.Data)
		d.Data = &data
	}
	d.At, d.AtNs = splitTime(e.At)
	return d
}

var (
	// activityEntryDocs writes an activity's entry guarded by the
	// activity's seq: a stored entry of a newer version is kept.
	activityEntryDocs = docKind[readmodel.Activity]{
		key: func(a readmodel.Activity) (string, uint64) {
			return timelineID(a.CustomerID, activityKey(a.ID)), a.Seq
		},
		bson: func(a readmodel.Activity) any { return toActivityEntry(a) },
	}
	// eventEntryDocs inserts an event's entry if it is absent: its guard
	// sequence 0 is never higher than a stored one, so a stored entry is
	// never replaced (events never change).
	eventEntryDocs = docKind[readmodel.TimelineEvent]{
		key: func(e readmodel.TimelineEvent) (string, uint64) {
			return timelineID(e.CustomerID, eventKey(e.EventID)), 0
		},
		bson: func(e readmodel.TimelineEvent) any { return toEventEntry(e) },
	}
)

// activityIndexModels returns the indexes of the activities collection:
// the activities of a customer.
func activityIndexModels() []mongo.IndexModel {
	return named([]mongo.IndexModel{{Keys: asc("customerId")}})
}

// timelineIndexModels returns the indexes of the timeline collection: a
// customer's timeline in its order (walked backwards: newest first), and
// the same per kind, so that a page, with or without a filter of kinds, is
// one index range per customer (and kind).
func timelineIndexModels() []mongo.IndexModel {
	return named([]mongo.IndexModel{
		{Keys: asc("customerId", "at", "atNs", "key")},
		{Keys: asc("customerId", "kind", "at", "atNs", "key")},
	})
}

// LoadActivities returns the stored activity documents, tombstones
// included, of ids (see readmodel.ActivityWriter).
func (s *Store) LoadActivities(ctx context.Context, ids []string) (map[string]readmodel.Activity, error) {
	return s.live().loadActivities(ctx, ids)
}

func (c coll) loadActivities(ctx context.Context, ids []string) (map[string]readmodel.Activity, error) {
	if c.s.closed.Load() {
		return nil, c.s.fail("load activities", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	out := make(map[string]readmodel.Activity, len(ids))
	if err := byIDs(ctx, c.activities, ids, nil, func(d activityDocument) { out[d.ID] = d.activity() }); err != nil {
		return nil, c.s.fail("load activities", err)
	}
	return out, nil
}

// commitActivities writes the activity documents docs (one per id), each
// only over a stored one with a lower seq, and keeps each written one's
// timeline entry: there while it is live, at its OccurredAt.
//
// Without transactions, the entries are written before the documents: a
// crash in between makes the projector fold and commit the same documents
// again (their stored ones are still older), which writes the entries
// again (idempotent) and then the documents. The other order would leave
// an entry missing or stale for good, since a document already written is
// never sent again. Until the document follows, Timeline skips an entry
// whose live document it does not find.
func (c coll) commitActivities(ctx context.Context, docs []readmodel.Activity) error {
	raced, err := writeRounds(docs, func(docs []readmodel.Activity) ([]readmodel.Activity, error) {
		ids := make([]string, len(docs))
		for i, d := range docs {
			ids[i] = d.ID
		}
		stored, err := storedSeqs(ctx, c.activities, ids)
		if err != nil {
			return nil, err
		}
		var live, gone []readmodel.Activity
		for _, d := range docs {
			if have, ok := stored[d.ID]; ok && have >= int64(d.Seq) {
				continue // stale: neither it nor its entry is written
			}
			if d.Deleted {
				gone = append(gone, d)
			} else {
				live = append(live, d)
			}
		}
		racedEntries, err := writeRounds(live, func(docs []readmodel.Activity) ([]readmodel.Activity, error) {
			return writeGuarded(ctx, c.timeline, docs, activityEntryDocs)
		})
		if err != nil {
			return nil, err
		}
		if len(racedEntries) > 0 {
			a := racedEntries[0]
			return nil, fmt.Errorf("%w: commit activity %s: timeline entry: duplicate key after %d attempts",
				readmodel.ErrInternal, a.ID, commitAttempts)
		}
		if err := removeEntries(ctx, c.timeline, gone); err != nil {
			return nil, err
		}
		return writeStored(ctx, c.activities, docs, stored, activityDocs)
	})
	if err != nil {
		return err
	}
	if len(raced) > 0 {
		return fmt.Errorf("%w: commit activity %s: duplicate key after %d attempts", readmodel.ErrInternal,
			raced[0].ID, commitAttempts)
	}
	return nil
}

// removeEntries removes the timeline entries of the deleted activities
// docs, each only if it was written from an older version (a concurrent
// write of a newer one is never undone), at most maxBulk per command.
func removeEntries(ctx context.Context, c *mongo.Collection, docs []readmodel.Activity) error {
	for chunk := range slices.Chunk(docs, maxBulk) {
		models := make([]mongo.WriteModel, len(chunk))
		for i, a := range chunk {
			models[i] = mongo.NewDeleteOneModel().SetFilter(bson.D{
				{Key: "_id", Value: timelineID(a.CustomerID, activityKey(a.ID))},
				{Key: "seq", Value: bson.D{{Key: "$lt", Value: int64(a.Seq)}}},
			})
		}
		if _, err := c.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
			return err
		}
	}
	return nil
}

// commitTimeline puts the customers' events evs (one per event) on their
// timelines: each entry is inserted if it is absent, an entry already
// there is left as it is (events never change).
func (c coll) commitTimeline(ctx context.Context, evs []readmodel.TimelineEvent) error {
	raced, err := writeRounds(evs, func(evs []readmodel.TimelineEvent) ([]readmodel.TimelineEvent, error) {
		return writeGuarded(ctx, c.timeline, evs, eventEntryDocs)
	})
	if err != nil {
		return err
	}
	if len(raced) > 0 {
		return fmt.Errorf("%w: commit timeline event %s: duplicate key after %d attempts", readmodel.ErrInternal,
			raced[0].EventID, commitAttempts)
	}
	return nil
}

// GetActivity returns the live activity id, or
// readmodel.ErrActivityNotFound when it is missing or deleted.
func (s *Store) GetActivity(ctx context.Context, id string) (readmodel.Activity, error) {
	if s.closed.Load() {
		return readmodel.Activity{}, s.fail("get activity", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	var d activityDocument
	// id is a literal string compared for equality: it cannot become an
	// operator.
	err := s.live().activities.FindOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "deleted", Value: false}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return readmodel.Activity{}, readmodel.ErrActivityNotFound
	}
	if err != nil {
		return readmodel.Activity{}, s.fail("get activity", err)
	}
	return d.activity(), nil
}

// Timeline returns one page of the timeline of q.CustomerIDs, newest first
// (see readmodel.ActivityReader). It reads the page's entries, one more
// than the page, from the timeline index (one range per customer, and per
// kind when q.Kinds is set), then the live documents of its activities
// with one $in query, and joins them here in the entries' order.
//
// An activity entry whose live document is not there (between the two
// writes of commitActivities, or left over by concurrent projectors
// writing the same activity) is skipped, and as many entries more are read
// after the page's last one, so that a page is full and More exact.
func (s *Store) Timeline(ctx context.Context, q readmodel.TimelineQuery) (readmodel.TimelinePage, error) {
	if s.closed.Load() {
		return readmodel.TimelinePage{}, s.fail("timeline", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	out := readmodel.TimelinePage{Items: []readmodel.TimelineItem{}}
	if len(q.CustomerIDs) == 0 {
		return out, nil
	}
	live := s.live()
	limit := q.Limit()
	pos := q.After
	for {
		want := limit + 1 - len(out.Items)
		entries, err := timelineEntries(ctx, live.timeline, q, pos, want)
		if err != nil {
			return readmodel.TimelinePage{}, s.fail("timeline", err)
		}
		items, err := joinActivities(ctx, live.activities, entries)
		if err != nil {
			return readmodel.TimelinePage{}, s.fail("timeline", err)
		}
		out.Items = append(out.Items, items...)
		if len(entries) < want || len(out.Items) > limit {
			break
		}
		last := entries[len(entries)-1]
		pos = &readmodel.TimelinePosition{At: joinTime(last.At, last.AtNs), Key: last.Key}
	}
	if len(out.Items) > limit {
		out.Items, out.More = out.Items[:limit], true
	}
	return out, nil
}

// timelineEntries returns up to n entries of q's customers (and kinds)
// strictly older than pos (nil: from the newest), newest first.
func timelineEntries(ctx context.Context, c *mongo.Collection, q readmodel.TimelineQuery, pos *readmodel.TimelinePosition,
	n int) ([]timelineDocument, error) {
	// Every request value is a literal string compared for equality (with
	// an element of an $in list): none can become an operator.
	filter := bson.D{{Key: "customerId", Value: bson.D{{Key: "$in", Value: q.CustomerIDs}}}}
	if len(q.Kinds) > 0 {
		filter = append(filter, bson.E{Key: "kind", Value: bson.D{{Key: "$in", Value: q.Kinds}}})
	}
	if pos != nil {
		ms, ns := splitTime(pos.At)
		keys := []bson.E{{Key: "at", Value: ms}, {Key: "atNs", Value: ns}, {Key: "key", Value: pos.Key}}
		// The bound on at, besides the $or, bounds the index range.
		filter = append(filter, bson.E{Key: "at", Value: bson.D{{Key: "$lte", Value: ms}}},
			bson.E{Key: "$or", Value: after(keys, true)})
	}
	cur, err := c.Find(ctx, filter, options.Find().SetSort(sortOn([]string{"at", "atNs", "key"}, true)).SetLimit(int64(n)))
	if err != nil {
		return nil, err
	}
	out := make([]timelineDocument, 0, n)
	err = decodeEach(ctx, cur, func(d timelineDocument) { out = append(out, d) })
	return out, err
}

// joinActivities returns the items of entries in their order, each
// activity entry with its live document (read with one $in query), those
// without one left out.
func joinActivities(ctx context.Context, c *mongo.Collection, entries []timelineDocument) ([]readmodel.TimelineItem, error) {
	var ids []string
	for _, e := range entries {
		if strings.HasPrefix(e.Key, "a:") {
			ids = append(ids, e.ActivityID)
		}
	}
	docs := make(map[string]readmodel.Activity, len(ids))
	if len(ids) > 0 {
		err := byIDsWhere(ctx, c, ids, bson.D{{Key: "deleted", Value: false}}, nil,
			func(d activityDocument) { docs[d.ID] = d.activity() })
		if err != nil {
			return nil, err
		}
	}
	items := make([]readmodel.TimelineItem, 0, len(entries))
	for _, e := range entries {
		item := readmodel.TimelineItem{At: joinTime(e.At, e.AtNs), Key: e.Key, Kind: e.Kind}
		if strings.HasPrefix(e.Key, "a:") {
			a, ok := docs[e.ActivityID]
			if !ok {
				continue
			}
			item.Activity = &a
		} else {
			ev := &readmodel.TimelineEvent{CustomerID: e.CustomerID, EventID: e.EventID, Kind: e.Kind, At: item.At,
				Version: uint64(e.Version), Actor: e.Actor, Changes: json.RawMessage(e.Changes), Seq: uint64(e.Seq)}
			if e.Data != nil {
				ev.Data = json.RawMessage(*e.Data)
			}
			item.Event = ev
		}
		items = append(items, item)
	}
	return items, nil
}
