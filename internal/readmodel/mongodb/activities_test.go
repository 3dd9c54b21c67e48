package mongodb

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"crm/internal/readmodel"
)

var timelineBase = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// testActivity is activity n of testDoc(customer) at stream sequence seq,
// occurred at timelineBase plus at seconds.
func testActivity(n, customer, seq, at int) readmodel.Activity {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Second)
	return readmodel.Activity{
		ID: fmt.Sprintf("20000000-0000-4000-8000-%012d", n), CustomerID: testDoc(customer, "").ID, Type: "call",
		OccurredAt: timelineBase.Add(time.Duration(at) * time.Second), ContactIDs: []string{},
		CreatedBy: "user-1", CreatedAt: created, UpdatedBy: "user-1", UpdatedAt: created, Version: 1, Seq: uint64(seq),
	}
}

// testEvent is event n of testDoc(customer) at stream sequence seq, at
// timelineBase plus at seconds.
func testEvent(n, customer, seq, at int) readmodel.TimelineEvent {
	return readmodel.TimelineEvent{
		CustomerID: testDoc(customer, "").ID, EventID: fmt.Sprintf("30000000-0000-4000-8000-%012d", n), Kind: "updated",
		At: timelineBase.Add(time.Duration(at) * time.Second), Version: uint64(n), Actor: "user-2",
		Changes: json.RawMessage(`[{"field":"name","old":"A","new":"B"}]`), Seq: uint64(seq),
	}
}

// TestActivityDocumentShape pins the stored BSON of an activity and of its
// timeline entry and of an event's entry, and that all of them read back
// exactly.
func TestActivityDocumentShape(t *testing.T) {
	s := openFerret(t)
	ctx := t.Context()
	a := testActivity(1, 1, 5, 0)
	a.Type, a.Subject, a.ContactIDs = "task", "Call back", []string{testContact(2, "").ID}
	a.OccurredAt = a.OccurredAt.Add(1234567 * time.Nanosecond)
	a.DueAt, a.Done = timelineBase.Add(time.Hour+7*time.Nanosecond), true
	plain := testActivity(2, 1, 6, 1) // no optional field set
	ev := testEvent(1, 1, 4, 2)
	ev.At = ev.At.Add(999999 * time.Nanosecond)
	deletedEv := testEvent(2, 1, 3, 3)
	deletedEv.Kind, deletedEv.Changes, deletedEv.Data = "deleted", nil, json.RawMessage(`{"deletedBy":"u <1>","x":[1, 2]}`)
	b := readmodel.Batch{Customers: []readmodel.Customer{testDoc(1, "Ann")}, Activities: []readmodel.Activity{a, plain},
		Timeline: []readmodel.TimelineEvent{ev, deletedEv}}
	if err := s.CommitBatch(ctx, b, 6); err != nil {
		t.Fatal(err)
	}
	var raw bson.M
	if err := s.live().activities.FindOne(ctx, bson.D{{Key: "_id", Value: a.ID}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"_id": a.ID, "customerId": a.CustomerID, "type": "task",
		"occurredAt": bson.DateTime(a.OccurredAt.UnixMilli()), "occurredAtNs": int32(234567),
		"subject": "Call back", "body": nil, "outcome": nil,
		"dueAt": bson.DateTime(a.DueAt.UnixMilli()), "dueAtNs": int32(7), "done": true,
		"createdBy": "user-1", "createdAt": bson.DateTime(a.CreatedAt.UnixMilli()), "createdAtNs": int32(0),
		"updatedBy": "user-1", "updatedAt": bson.DateTime(a.UpdatedAt.UnixMilli()), "updatedAtNs": int32(0),
		"version": int64(1), "seq": int64(5), "deleted": false,
	}
	for k, v := range want {
		if got := raw[k]; got != v {
			t.Errorf("activity field %s = %#v (%T), want %#v (%T)", k, got, got, v, v)
		}
	}
	if ids, _ := raw["contactIds"].(bson.A); len(ids) != 1 || ids[0] != a.ContactIDs[0] {
		t.Errorf("contactIds = %#v", raw["contactIds"])
	}
	if len(raw) != len(want)+1 {
		t.Errorf("activity document has %d fields, want %d: %v", len(raw), len(want)+1, raw)
	}
	raw = nil
	if err := s.live().activities.FindOne(ctx, bson.D{{Key: "_id", Value: plain.ID}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"subject", "body", "outcome", "dueAt"} {
		if v, ok := raw[k]; !ok || v != nil {
			t.Errorf("unset %s = %#v (present %v), want null", k, v, ok)
		}
	}
	if ids, ok := raw["contactIds"].(bson.A); !ok || len(ids) != 0 {
		t.Errorf("empty contactIds = %#v, want []", raw["contactIds"])
	}

	raw = nil
	key := "a:" + a.ID
	if err := s.live().timeline.FindOne(ctx, bson.D{{Key: "_id", Value: a.CustomerID + "/" + key}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	wantEntry := map[string]any{
		"_id": a.CustomerID + "/" + key, "customerId": a.CustomerID, "key": key, "kind": "task",
		"at": bson.DateTime(a.OccurredAt.UnixMilli()), "atNs": int32(234567), "activityId": a.ID, "seq": int64(5),
	}
	for k, v := range wantEntry {
		if got := raw[k]; got != v {
			t.Errorf("activity entry field %s = %#v (%T), want %#v (%T)", k, got, got, v, v)
		}
	}
	if len(raw) != len(wantEntry) {
		t.Errorf("activity entry has %d fields, want %d: %v", len(raw), len(wantEntry), raw)
	}
	raw = nil
	key = "e:" + ev.EventID
	if err := s.live().timeline.FindOne(ctx, bson.D{{Key: "_id", Value: ev.CustomerID + "/" + key}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	wantEntry = map[string]any{
		"_id": ev.CustomerID + "/" + key, "customerId": ev.CustomerID, "key": key, "kind": "updated",
		"at": bson.DateTime(ev.At.UnixMilli()), "atNs": int32(999999), "eventId": ev.EventID, "version": int64(1),
		"actor": "user-2", "changes": string(ev.Changes), "data": nil, "seq": int64(4),
	}
	for k, v := range wantEntry {
		if got := raw[k]; got != v {
			t.Errorf("event entry field %s = %#v (%T), want %#v (%T)", k, got, got, v, v)
		}
	}
	if len(raw) != len(wantEntry) {
		t.Errorf("event entry has %d fields, want %d: %v", len(raw), len(wantEntry), raw)
	}

	// Read back exactly.
	got, err := s.GetActivity(ctx, a.ID)
	if err != nil || !reflect.DeepEqual(got, a) || got.OccurredAt.Location() != time.UTC || got.DueAt.Location() != time.UTC {
		t.Errorf("GetActivity = %+v, %v; want %+v", got, err, a)
	}
	if got, err := s.GetActivity(ctx, plain.ID); err != nil || !reflect.DeepEqual(got, plain) || !got.DueAt.IsZero() {
		t.Errorf("GetActivity = %+v, %v; want %+v", got, err, plain)
	}
	loaded, err := s.LoadActivities(ctx, []string{a.ID, plain.ID, "nobody"})
	if err != nil || len(loaded) != 2 || !reflect.DeepEqual(loaded[a.ID], a) || !reflect.DeepEqual(loaded[plain.ID], plain) {
		t.Errorf("LoadActivities = %+v, %v", loaded, err)
	}
	page, err := s.Timeline(ctx, readmodel.TimelineQuery{CustomerIDs: []string{a.CustomerID}})
	if err != nil || len(page.Items) != 4 || page.More {
		t.Fatalf("Timeline = %+v, %v", page, err)
	}
	deletedEv.Changes = json.RawMessage("[]") // as PrepareTimeline gives it
	wantItems := []readmodel.TimelineItem{
		{At: deletedEv.At, Key: "e:" + deletedEv.EventID, Kind: "deleted", Event: &deletedEv},
		{At: ev.At, Key: "e:" + ev.EventID, Kind: "updated", Event: &ev},
		{At: plain.OccurredAt, Key: "a:" + plain.ID, Kind: "call", Activity: &plain},
		{At: a.OccurredAt, Key: "a:" + a.ID, Kind: "task", Activity: &a},
	}
	if !reflect.DeepEqual(page.Items, wantItems) {
		for i := range page.Items {
			t.Errorf("item %d = %+v (%+v %+v)", i, page.Items[i], page.Items[i].Activity, page.Items[i].Event)
		}
		t.Errorf("want %+v", wantItems)
	}
	if e := page.Items[0].Event; e == nil || string(e.Data) != string(deletedEv.Data) {
		t.Errorf("data = %+v, want %s byte for byte", e, deletedEv.Data)
	}

	// A deleted activity is gone from GetActivity and from the timeline,
	// and stays a tombstone for the projector.
	gone := a
	gone.Deleted, gone.Version, gone.Seq = true, 2, 7
	if err := s.CommitBatch(ctx, readmodel.Batch{Activities: []readmodel.Activity{gone}}, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetActivity(ctx, a.ID); !errors.Is(err, readmodel.ErrActivityNotFound) {
		t.Errorf("GetActivity of a deleted activity = %v, want ErrActivityNotFound", err)
	}
	if _, err := s.GetActivity(ctx, "nobody"); !errors.Is(err, readmodel.ErrActivityNotFound) {
		t.Errorf("GetActivity of an unknown activity = %v, want ErrActivityNotFound", err)
	}
	if got, err := s.LoadActivities(ctx, []string{a.ID}); err != nil || !reflect.DeepEqual(got[a.ID], gone) {
		t.Errorf("LoadActivities of the tombstone = %+v, %v", got, err)
	}
	if n, err := s.live().timeline.CountDocuments(ctx, bson.D{}); err != nil || n != 3 {
		t.Errorf("timeline holds %d entries, %v; want 3", n, err)
	}
}

// timelineKeys pages through the whole timeline of q (q.After and
// q.PerPage as given) and returns the keys of its items, checking that
// each page but the last is full and says More.
func timelineKeys(t *testing.T, s *Store, q readmodel.TimelineQuery) []string {
	t.Helper()
	var keys []string
	for range 1000 {
		page, err := s.Timeline(t.Context(), q)
		if err != nil {
			t.Fatalf("Timeline: %v", err)
		}
		for _, it := range page.Items {
			keys = append(keys, it.Key)
			if (it.Activity == nil) == (it.Event == nil) {
				t.Errorf("item %s has activity %v and event %v", it.Key, it.Activity, it.Event)
			}
		}
		if !page.More {
			return keys
		}
		if len(page.Items) != q.Limit() {
			t.Fatalf("a page with More has %d items, want %d", len(page.Items), q.Limit())
		}
		last := page.Items[len(page.Items)-1]
		q.After = &readmodel.TimelinePosition{At: last.At, Key: last.Key}
	}
	t.Fatal("Timeline does not end")
	return nil
}

type entry struct {
	at   time.Time
	key  string
	kind string
	cust int
}

// wantKeys returns the keys of entries of the customers custs (and kinds,
// if any), newest first.
func wantKeys(entries []entry, custs []int, kinds ...string) []string {
	var sel []entry
	for _, e := range entries {
		if slices.Contains(custs, e.cust) && (len(kinds) == 0 || slices.Contains(kinds, e.kind)) {
			sel = append(sel, e)
		}
	}
	slices.SortFunc(sel, func(a, b entry) int { return cmp.Or(b.at.Compare(a.at), cmp.Compare(b.key, a.key)) })
	keys := []string{}
	for _, e := range sel {
		keys = append(keys, e.key)
	}
	return keys
}

// TestTimeline: the timeline of one or several customers, newest first,
// ties by key, paged, filtered by kinds; activity entries follow their
// documents (moved and retyped by an update, removed by a deletion, kept
// by a stale rewrite); an event's entry is written once; batches larger
// than one bulk-write command are written whole; an entry whose activity
// document is missing is skipped and the page still filled.
func TestTimeline(t *testing.T) {
	s := openFerret(t)
	ctx := t.Context()
	var (
		entries []entry
		acts    []readmodel.Activity
		evs     []readmodel.TimelineEvent
		seq     = 1000
	)
	// Customers 1 and 2 (2 merged into 1), 3 another; several entries at
	// the same time, and nanosecond differences.
	for i := range 30 {
		cust := []int{1, 2, 3}[i%3]
		seq++
		a := testActivity(i, cust, seq, i/4)
		a.Type = []string{"call", "note", "task"}[i%4%3]
		if i%5 == 0 {
			a.OccurredAt = a.OccurredAt.Add(time.Duration(i) * time.Nanosecond)
		}
		acts = append(acts, a)
		entries = append(entries, entry{a.OccurredAt, "a:" + a.ID, a.Type, cust})
		seq++
		e := testEvent(i, cust, seq, i/3)
		e.Kind = []string{"created", "updated"}[i%2]
		evs = append(evs, e)
		entries = append(entries, entry{e.At, "e:" + e.EventID, e.Kind, cust})
	}
	if err := s.CommitBatch(ctx, readmodel.Batch{Activities: acts, Timeline: evs}, uint64(seq)); err != nil {
		t.Fatal(err)
	}
	c1, c2, c3 := testDoc(1, "").ID, testDoc(2, "").ID, testDoc(3, "").ID
	check := func(what string) {
		t.Helper()
		for _, tc := range []struct {
			q     readmodel.TimelineQuery
			custs []int
			kinds []string
		}{
			{readmodel.TimelineQuery{CustomerIDs: []string{c1, c2}, PerPage: 7}, []int{1, 2}, nil},
			{readmodel.TimelineQuery{CustomerIDs: []string{c3}, PerPage: 100}, []int{3}, nil},
			{readmodel.TimelineQuery{CustomerIDs: []string{c1, c2, c3}, PerPage: 1}, []int{1, 2, 3}, nil},
			{readmodel.TimelineQuery{CustomerIDs: []string{c1, c2}, Kinds: []string{"note", "updated"}, PerPage: 3},
				[]int{1, 2}, []string{"note", "updated"}},
		} {
			got := timelineKeys(t, s, tc.q)
			if want := wantKeys(entries, tc.custs, tc.kinds...); !slices.Equal(got, want) {
				t.Errorf("%s: timeline of %v %v = %q, want %q", what, tc.custs, tc.kinds, got, want)
			}
		}
		// A position between entries: strictly older ones only.
		all := wantKeys(entries, []int{1, 2})
		q := readmodel.TimelineQuery{CustomerIDs: []string{c1, c2}, PerPage: 100,
			After: &readmodel.TimelinePosition{At: timelineBase.Add(5 * time.Second), Key: "b"}}
		var older []string
		for _, e := range all {
			i := slices.IndexFunc(entries, func(x entry) bool { return x.key == e })
			if x := entries[i]; x.at.Before(q.After.At) || x.at.Equal(q.After.At) && x.key < "b" {
				older = append(older, e)
			}
		}
		if got := timelineKeys(t, s, q); !slices.Equal(got, older) {
			t.Errorf("%s: after %v = %q, want %q", what, q.After, got, older)
		}
	}
	check("first commit")
	if p, err := s.Timeline(ctx, readmodel.TimelineQuery{CustomerIDs: []string{"nobody"}}); err != nil || p.Items == nil || len(p.Items) != 0 || p.More {
		t.Errorf("Timeline of an unknown customer = %#v, %v", p, err)
	}
	if p, err := s.Timeline(ctx, readmodel.TimelineQuery{}); err != nil || p.Items == nil || len(p.Items) != 0 {
		t.Errorf("Timeline of no customer = %#v, %v", p, err)
	}

	// Repeats change nothing: the same batch again, an event again with
	// other content, a stale activity version.
	if err := s.CommitBatch(ctx, readmodel.Batch{Activities: acts, Timeline: evs}, uint64(seq)); err != nil {
		t.Fatal(err)
	}
	again := evs[0]
	again.Kind, again.At, again.Seq = "merged", again.At.Add(time.Hour), uint64(seq+1)
	stale := acts[1]
	stale.OccurredAt, stale.Seq = stale.OccurredAt.Add(time.Hour), stale.Seq-1
	if err := s.CommitBatch(ctx, readmodel.Batch{Activities: []readmodel.Activity{stale}, Timeline: []readmodel.TimelineEvent{again}}, uint64(seq+1)); err != nil {
		t.Fatal(err)
	}
	check("repeats")

	// Newer versions: activity 0 moves and becomes a meeting, activity 3
	// is deleted (and its tombstone written again later).
	moved := acts[0]
	moved.OccurredAt, moved.Type, moved.Version, moved.Seq = timelineBase.Add(-time.Hour), "meeting", 2, uint64(seq+2)
	deleted := acts[3]
	deleted.Deleted, deleted.Version, deleted.Seq = true, 2, uint64(seq+3)
	seq += 3
	if err := s.CommitBatch(ctx, readmodel.Batch{Activities: []readmodel.Activity{moved, deleted}}, uint64(seq)); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitBatch(ctx, readmodel.Batch{Activities: []readmodel.Activity{deleted, acts[3]}}, uint64(seq)); err != nil {
		t.Fatal(err)
	}
	entries[0] = entry{moved.OccurredAt, "a:" + moved.ID, "meeting", 1}
	entries = slices.DeleteFunc(entries, func(e entry) bool { return e.key == "a:"+deleted.ID })
	check("newer versions")
	p, err := s.Timeline(ctx, readmodel.TimelineQuery{CustomerIDs: []string{c1}, Kinds: []string{"meeting"}})
	if err != nil || len(p.Items) != 1 || p.Items[0].Activity == nil || !reflect.DeepEqual(*p.Items[0].Activity, moved) {
		t.Errorf("the moved activity = %+v, %v", p, err)
	}

	// An entry without its live document (as between the two writes of
	// commitActivities) is skipped; the pages stay full.
	for _, a := range acts[5:9] {
		if _, err := s.live().activities.DeleteOne(ctx, bson.D{{Key: "_id", Value: a.ID}}); err != nil {
			t.Fatal(err)
		}
		entries = slices.DeleteFunc(entries, func(e entry) bool { return e.key == "a:"+a.ID })
	}
	check("missing documents")

	// More than one bulk write of new entries, then of replacements and
	// of removals.
	var many []readmodel.Activity
	var manyEvs []readmodel.TimelineEvent
	for i := range maxBulk + 2 {
		seq++
		many = append(many, testActivity(100+i, 3, seq, 100+i))
		manyEvs = append(manyEvs, testEvent(100+i, 3, seq, 100+i))
	}
	if err := s.CommitBatch(ctx, readmodel.Batch{Activities: many, Timeline: manyEvs}, uint64(seq)); err != nil {
		t.Fatal(err)
	}
	for i := range many {
		seq++
		many[i].Version, many[i].Seq, many[i].Type = 2, uint64(seq), "email"
	}
	if err := s.CommitBatch(ctx, readmodel.Batch{Activities: many}, uint64(seq)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.live().timeline.CountDocuments(ctx, bson.D{{Key: "kind", Value: "email"}}); err != nil || n != int64(len(many)) {
		t.Errorf("replaced entries: %d, %v; want %d", n, err, len(many))
	}
	if n, err := s.live().timeline.CountDocuments(ctx, bson.D{{Key: "customerId", Value: c3}, {Key: "key", Value: bson.D{{Key: "$gte", Value: "e:"}}}}); err != nil || n != int64(len(manyEvs)+10) {
		t.Errorf("event entries of customer 3: %d, %v; want %d", n, err, len(manyEvs)+10)
	}
	for i := range many {
		seq++
		many[i].Version, many[i].Seq, many[i].Deleted = 3, uint64(seq), true
	}
	if err := s.CommitBatch(ctx, readmodel.Batch{Activities: many}, uint64(seq)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.live().timeline.CountDocuments(ctx, bson.D{{Key: "kind", Value: "email"}}); err != nil || n != 0 {
		t.Errorf("removed entries left: %d, %v", n, err)
	}

	// An invalid document is refused and nothing is written.
	if err := s.CommitBatch(ctx, readmodel.Batch{Activities: []readmodel.Activity{{ID: "x", Seq: 1}}}, uint64(seq+1)); !errors.Is(err, readmodel.ErrInternal) {
		t.Errorf("CommitBatch of an activity without its customer: %v", err)
	}
	if err := s.CommitBatch(ctx, readmodel.Batch{Timeline: []readmodel.TimelineEvent{{CustomerID: c1, EventID: "x"}}}, uint64(seq+1)); !errors.Is(err, readmodel.ErrInternal) {
		t.Errorf("CommitBatch of an event without its kind: %v", err)
	}
	if cp, err := s.Checkpoint(ctx); err != nil || cp != uint64(seq) {
		t.Errorf("Checkpoint = %d, %v; want %d", cp, err, seq)
	}
}

// TestRebuildActivities: a rebuild fills its own activities and timeline,
// which the live queries see only after Swap.
func TestRebuildActivities(t *testing.T) {
	s := openFerret(t)
	ctx := t.Context()
	old := testActivity(1, 1, 1, 0)
	if err := s.CommitBatch(ctx, readmodel.Batch{Activities: []readmodel.Activity{old}}, 1); err != nil {
		t.Fatal(err)
	}
	rb, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := testActivity(2, 1, 2, 1)
	ev := testEvent(1, 1, 3, 2)
	if err := rb.CommitBatch(ctx, readmodel.Batch{Activities: []readmodel.Activity{a}, Timeline: []readmodel.TimelineEvent{ev}}, 3); err != nil {
		t.Fatal(err)
	}
	if got, err := rb.LoadActivities(ctx, []string{a.ID, old.ID}); err != nil || len(got) != 1 || !reflect.DeepEqual(got[a.ID], a) {
		t.Errorf("rebuild LoadActivities = %+v, %v", got, err)
	}
	q := readmodel.TimelineQuery{CustomerIDs: []string{a.CustomerID}}
	if got := timelineKeys(t, s, q); !slices.Equal(got, []string{"a:" + old.ID}) {
		t.Errorf("live timeline before Swap = %q", got)
	}
	if err := rb.Swap(ctx); err != nil {
		t.Fatal(err)
	}
	if got := timelineKeys(t, s, q); !slices.Equal(got, []string{"e:" + ev.EventID, "a:" + a.ID}) {
		t.Errorf("live timeline after Swap = %q", got)
	}
	if _, err := s.GetActivity(ctx, old.ID); !errors.Is(err, readmodel.ErrActivityNotFound) {
		t.Errorf("GetActivity of the old activity after Swap = %v", err)
	}
	if got, err := s.GetActivity(ctx, a.ID); err != nil || !reflect.DeepEqual(got, a) {
		t.Errorf("GetActivity after Swap = %+v, %v", got, err)
	}
	if _, err := rb.LoadActivities(ctx, nil); err == nil {
		t.Error("LoadActivities after Swap succeeded")
	}
	// An aborted rebuild drops its activities and timeline.
	rb, err = s.Rebuild(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := rb.(*rebuild).c.timeline.Name()
	if err := rb.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	names, err := s.db.ListCollectionNames(ctx, bson.D{{Key: "name", Value: bson.D{{Key: "$in", Value: bson.A{name, rb.(*rebuild).c.activities.Name()}}}}})
	if err != nil || len(names) != 0 {
		t.Errorf("collections of the aborted rebuild: %q, %v", names, err)
	}
}
