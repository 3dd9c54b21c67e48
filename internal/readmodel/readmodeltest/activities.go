package readmodeltest

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"crm/internal/activity"
	"crm/internal/events"
	"crm/internal/fault"
	"crm/internal/readmodel"
)

// activityID returns the id of test activity n: a UUID led by a
// multiplicative hash, so that the order of timeline keys is not n's.
func activityID(n int) string {
	return fmt.Sprintf("%08x-0000-4000-a000-%012d", uint32(n)*2246822519, n)
}

// eventID returns the id of test customer event n, hash-led as well.
func eventID(n int) string {
	return fmt.Sprintf("%08x-0000-7000-b000-%012d", uint32(n)*3266489917, n)
}

// activityDoc returns live test activity n of customer cust with defaults
// (a call without any optional field, at base plus n seconds); Seq is seq.
func activityDoc(n, cust int, seq uint64) readmodel.Activity {
	at := base.Add(time.Duration(n) * time.Second)
	return readmodel.Activity{
		ID: activityID(n), CustomerID: customerID(cust), Type: activity.TypeCall, OccurredAt: at, ContactIDs: []string{},
		CreatedBy: "user-1", CreatedAt: at, UpdatedBy: "user-1", UpdatedAt: at, Version: 1, Seq: seq,
	}
}

// timelineEvent returns test event n of customer cust (an update of its
// status) at at; Seq is seq.
func timelineEvent(n, cust int, seq uint64, at time.Time) readmodel.TimelineEvent {
	return readmodel.TimelineEvent{
		CustomerID: customerID(cust), EventID: eventID(n), Kind: string(events.KindUpdated), At: at,
		Version: uint64(n), Actor: "user-2", Changes: json.RawMessage(`[{"field":"status","old":"lead","new":"active"}]`), Seq: seq,
	}
}

// normalizeActivity returns a as every adapter must return it: times in
// UTC, contact ids never nil.
func normalizeActivity(a readmodel.Activity) readmodel.Activity {
	a.OccurredAt, a.DueAt, a.CreatedAt, a.UpdatedAt = a.OccurredAt.UTC(), a.DueAt.UTC(), a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	if a.ContactIDs == nil {
		a.ContactIDs = []string{}
	}
	return a
}

// normalizeEvent returns e as every adapter must return it: At in UTC,
// Changes "[]" when none.
func normalizeEvent(e readmodel.TimelineEvent) readmodel.TimelineEvent {
	e.At = e.At.UTC()
	if len(e.Changes) == 0 {
		e.Changes = json.RawMessage("[]")
	}
	return e
}

func sameActivity(t *testing.T, what string, got, want readmodel.Activity) {
	t.Helper()
	if got.ContactIDs == nil {
		t.Errorf("%s: nil ContactIDs", what)
	}
	if g, w := normalizeActivity(got), normalizeActivity(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// sameJSON reports whether a and b are the same JSON value. The adapters
// may format an event's Changes and Data differently (SQLite stores them
// inside a JSON entry, which compacts them and escapes <, > and &; MongoDB
// keeps the bytes), so they are compared as values, not as bytes.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// sameEvent compares a timeline event exactly, its Changes and Data as
// JSON values (see sameJSON); Data must be nil when the event has none.
func sameEvent(t *testing.T, what string, got, want readmodel.TimelineEvent) {
	t.Helper()
	g, w := normalizeEvent(got), normalizeEvent(want)
	if !sameJSON(got.Changes, w.Changes) {
		t.Errorf("%s: Changes %s, want %s", what, got.Changes, w.Changes)
	}
	switch {
	case w.Data == nil && got.Data != nil:
		t.Errorf("%s: Data %q, want nil", what, got.Data)
	case w.Data != nil && !sameJSON(got.Data, w.Data):
		t.Errorf("%s: Data %s, want %s", what, got.Data, w.Data)
	}
	g.Changes, g.Data, w.Changes, w.Data = nil, nil, nil, nil
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// sameItem compares a timeline item exactly: its position, its kind, and
// its activity or event.
func sameItem(t *testing.T, what string, got, want readmodel.TimelineItem) {
	t.Helper()
	if !reflect.DeepEqual(got.At.UTC(), want.At.UTC()) || got.Key != want.Key || got.Kind != want.Kind {
		t.Errorf("%s: item %s at %s kind %q, want %s at %s kind %q", what, got.Key, got.At.Format(time.RFC3339Nano), got.Kind,
			want.Key, want.At.UTC().Format(time.RFC3339Nano), want.Kind)
	}
	switch {
	case want.Activity != nil:
		if got.Activity == nil || got.Event != nil {
			t.Errorf("%s: item %s: Activity %v, Event %v; want the activity alone", what, got.Key, got.Activity, got.Event)
			return
		}
		sameActivity(t, what+" activity "+got.Key, *got.Activity, *want.Activity)
	case want.Event != nil:
		if got.Event == nil || got.Activity != nil {
			t.Errorf("%s: item %s: Activity %v, Event %v; want the event alone", what, got.Key, got.Activity, got.Event)
			return
		}
		sameEvent(t, what+" event "+got.Key, *got.Event, *want.Event)
	}
}

func loadActivities(t *testing.T, w readmodel.Writer, ids ...string) map[string]readmodel.Activity {
	t.Helper()
	got, err := w.LoadActivities(t.Context(), ids)
	if err != nil {
		t.Fatalf("LoadActivities(%v): %v", ids, err)
	}
	return got
}

func wantActivity(t *testing.T, r readmodel.Reader, what string, want readmodel.Activity) {
	t.Helper()
	a, err := r.GetActivity(t.Context(), want.ID)
	if err != nil {
		t.Errorf("%s: GetActivity(%s): %v", what, want.ID, err)
		return
	}
	sameActivity(t, what+": GetActivity "+want.ID, a, want)
}

func wantActivityNotFound(t *testing.T, r readmodel.Reader, id string) {
	t.Helper()
	a, err := r.GetActivity(t.Context(), id)
	if !errors.Is(err, readmodel.ErrActivityNotFound) || fault.KindOf(err) != fault.NotFound {
		t.Errorf("GetActivity(%q) = %+v, %v (kind %s); want ErrActivityNotFound", id, a, err, fault.KindOf(err))
	}
}

func timeline(t *testing.T, r readmodel.Reader, q readmodel.TimelineQuery) readmodel.TimelinePage {
	t.Helper()
	p, err := r.Timeline(t.Context(), q)
	if err != nil {
		t.Fatalf("Timeline(%+v): %v", q, err)
	}
	return p
}

func positionOf(it readmodel.TimelineItem) readmodel.TimelinePosition {
	return readmodel.TimelinePosition{At: it.At, Key: it.Key}
}

// compareTimeline orders positions oldest first: by At, then Key (a
// timeline is this order reversed).
func compareTimeline(a, b readmodel.TimelinePosition) int {
	return cmp.Or(a.At.Compare(b.At), strings.Compare(a.Key, b.Key))
}

func itemKeys(items []readmodel.TimelineItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	return out
}

// itemNames describes items for a failure: key (shortened), kind, time.
func itemNames(items []readmodel.TimelineItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = fmt.Sprintf("%s/%s@%s", it.Key[:min(len(it.Key), 10)], it.Kind, it.At.UTC().Format(time.RFC3339Nano))
	}
	return out
}

// timelineModel is the activities and customer events of a read model,
// with the reference semantics of Timeline.
type timelineModel struct {
	activities map[string]readmodel.Activity
	events     map[string]readmodel.TimelineEvent // by customer id and event id
}

func newTimelineModel() *timelineModel {
	return &timelineModel{activities: map[string]readmodel.Activity{}, events: map[string]readmodel.TimelineEvent{}}
}

// apply stores b's activities, each only over one with a lower Seq, and
// its events, each only where it is absent.
func (m *timelineModel) apply(b readmodel.Batch) {
	for _, a := range b.Activities {
		if old, ok := m.activities[a.ID]; !ok || a.Seq > old.Seq {
			m.activities[a.ID] = normalizeActivity(a)
		}
	}
	for _, e := range b.Timeline {
		k := e.CustomerID + "/" + e.EventID
		if _, ok := m.events[k]; !ok {
			m.events[k] = normalizeEvent(e)
		}
	}
}

// items returns every entry of q's timeline (q's customers and kinds),
// newest first, strictly older than q.After when it is set.
func (m *timelineModel) items(q readmodel.TimelineQuery) []readmodel.TimelineItem {
	keep := func(cust, kind string) bool {
		return slices.Contains(q.CustomerIDs, cust) && (len(q.Kinds) == 0 || slices.Contains(q.Kinds, kind))
	}
	out := []readmodel.TimelineItem{}
	for _, a := range m.activities {
		if !a.Deleted && keep(a.CustomerID, a.Type) {
			out = append(out, readmodel.TimelineItem{At: a.OccurredAt, Key: "a:" + a.ID, Kind: a.Type, Activity: &a})
		}
	}
	for _, e := range m.events {
		if keep(e.CustomerID, e.Kind) {
			out = append(out, readmodel.TimelineItem{At: e.At, Key: "e:" + e.EventID, Kind: e.Kind, Event: &e})
		}
	}
	slices.SortFunc(out, func(a, b readmodel.TimelineItem) int { return compareTimeline(positionOf(b), positionOf(a)) })
	if q.After != nil {
		out = slices.DeleteFunc(out, func(it readmodel.TimelineItem) bool { return compareTimeline(positionOf(it), *q.After) >= 0 })
	}
	return out
}

// checkTimelinePage compares one page with the reference: want are all
// the entries from the page's start on.
func checkTimelinePage(t *testing.T, what string, got readmodel.TimelinePage, want []readmodel.TimelineItem, limit int) {
	t.Helper()
	items := want[:min(len(want), limit)]
	if got.Items == nil {
		t.Errorf("%s: Items is nil, want a (possibly empty) slice", what)
	}
	if more := len(items) < len(want); got.More != more {
		t.Errorf("%s: More = %v, want %v", what, got.More, more)
	}
	if !slices.Equal(itemKeys(got.Items), itemKeys(items)) {
		t.Errorf("%s: items\n got %q\nwant %q", what, itemNames(got.Items), itemNames(items))
		return
	}
	for i := range got.Items {
		sameItem(t, fmt.Sprintf("%s item %d", what, i), got.Items[i], items[i])
	}
}

// checkTimeline compares the whole timeline of q (on one page) with the
// model's.
func checkTimeline(t *testing.T, r readmodel.Reader, what string, m *timelineModel, q readmodel.TimelineQuery) {
	t.Helper()
	q.PerPage, q.After = readmodel.MaxPerPage, nil
	checkTimelinePage(t, fmt.Sprintf("%s: Timeline %v kinds %v", what, q.CustomerIDs, q.Kinds), timeline(t, r, q), m.items(q), q.Limit())
}

// walkTimeline reads every page of q from the newest, each after the
// position of the last item of the page before, and checks each against
// the reference, plus the page after the last entry.
func walkTimeline(t *testing.T, what string, r readmodel.Reader, q readmodel.TimelineQuery, m *timelineModel) {
	t.Helper()
	q.After = nil
	all := m.items(q)
	limit := q.Limit()
	start := 0
	for page := 1; ; page++ {
		if page > len(all)+2 {
			t.Fatalf("%s: the walk does not end after %d pages", what, page)
		}
		got := timeline(t, r, q)
		checkTimelinePage(t, fmt.Sprintf("%s page %d", what, page), got, all[start:], limit)
		start += len(got.Items)
		if !got.More || len(got.Items) == 0 || start > len(all) || t.Failed() {
			break
		}
		pos := positionOf(got.Items[len(got.Items)-1])
		q.After = &pos
	}
	if start != len(all) && !t.Failed() {
		t.Errorf("%s: the walk read %d entries, want %d", what, start, len(all))
	}
	if len(all) > 0 { // past the last: nothing
		pos := positionOf(all[len(all)-1])
		q.After = &pos
		checkTimelinePage(t, what+" after the last", timeline(t, r, q), nil, limit)
	}
}

// testActivityRoundTrip: CommitBatch stores activities exactly (every
// field, unicode, newlines, contact ids in their order, a task's due time
// and state, nanoseconds in any zone, before 1970 and after 2262's
// neighbourhood, the largest Seq, tombstones) beside the customers and
// contacts of the batch; LoadActivities returns them all, GetActivity the
// live ones, and the timelines of their customers list the live ones.
func testActivityRoundTrip(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	paris := time.FixedZone("CET", 3600)
	tokyo := time.FixedZone("JST", 9*3600)
	full := readmodel.Activity{
		ID: activityID(1), CustomerID: customerID(1), Type: activity.TypeTask,
		OccurredAt: time.Date(2026, 3, 4, 6, 7, 8, 987654321, paris),
		Subject:    "Rappel — 東京支社 ☕ \"quoted\" 'single' %_\\ $where {}",
		Body:       "line 1\nline 2\r\n\ttabbed — Zoë Ångström-Łukasz 東京 😀\n\n<b>&amp;</b> ${x} \\u0000 {\"json\": [1]}\n",
		ContactIDs: []string{contactID(2), contactID(1)}, // in their order, not sorted
		Outcome:    "Rückruf vereinbart ✓",
		DueAt:      time.Date(2026, 3, 11, 18, 0, 0, 1, tokyo), Done: true,
		CreatedBy: "user-1", CreatedAt: base.In(paris),
		UpdatedBy: "user-ß/é", UpdatedAt: base.Add(90*time.Minute + time.Nanosecond).In(tokyo),
		Version: 3, Seq: 7,
	}
	minimal := activityDoc(2, 1, 8)
	minimal.Type, minimal.ContactIDs, minimal.UpdatedBy = activity.TypeNote, nil, "" // read back with an empty list
	open := activityDoc(5, 2, 9)
	open.Type, open.Subject = activity.TypeTask, "Open task"
	open.DueAt = time.Date(2026, 4, 1, 0, 0, 0, 999_999_999, paris) // a task not done
	tomb := activityDoc(3, 1, 10)
	tomb.Type, tomb.Subject, tomb.Body, tomb.ContactIDs = activity.TypeMeeting, "Gone meeting", "body", []string{contactID(1)}
	tomb.Deleted, tomb.Version, tomb.UpdatedBy = true, 2, "user-3"
	long := activityDoc(4, 2, math.MaxInt64) // the largest Seq a store must keep
	long.Type = activity.TypeEmail
	long.Subject = strings.Repeat("ñ", activity.MaxSubject)
	long.Body = strings.Repeat("é\n", activity.MaxBodyBytes/3) // 2 bytes + newline
	long.Outcome = strings.Repeat("o", activity.MaxOutcome)
	for i := range activity.MaxContactIDs {
		long.ContactIDs = append(long.ContactIDs, contactID(100+i))
	}
	// Before 1970 to the nanosecond (a BSON date is signed milliseconds),
	// and far ahead.
	long.OccurredAt = time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC)
	long.CreatedAt = time.Date(1969, 12, 31, 23, 59, 59, 1, paris)
	long.DueAt = time.Date(2200, 1, 2, 3, 4, 5, 6, time.UTC)
	long.UpdatedAt = time.Date(2200, 1, 2, 3, 4, 5, 7, time.UTC)
	long.Version = 1 << 40
	activities := []readmodel.Activity{full, minimal, open, tomb, long}
	customers := []readmodel.Customer{doc(1, "Customer One"), doc(2, "Customer Two")}
	contacts := []readmodel.Contact{contactDoc(1, "Contact One"), contactDoc(2, "Contact Two")}
	b := readmodel.Batch{Customers: customers, Contacts: contacts, Activities: activities}
	commitBatch(t, s, b, 12)
	m := newTimelineModel()
	m.apply(b)

	if n, err := s.Checkpoint(ctx); err != nil || n != 12 {
		t.Errorf("Checkpoint after a batch with activities = %d, %v; want 12", n, err)
	}
	missing := activityID(99)
	got := loadActivities(t, s, full.ID, minimal.ID, open.ID, tomb.ID, long.ID, missing, customers[0].ID, contacts[0].ID)
	if len(got) != len(activities) {
		t.Errorf("LoadActivities returned %d documents, want %d", len(got), len(activities))
	}
	for _, id := range []string{missing, customers[0].ID, contacts[0].ID} {
		if _, ok := got[id]; ok {
			t.Errorf("LoadActivities returned a document for %s, which is no activity", id)
		}
	}
	for _, d := range activities {
		if a, ok := got[d.ID]; !ok {
			t.Errorf("LoadActivities: no document for %s", d.ID)
		} else {
			sameActivity(t, "LoadActivities "+d.ID, a, d)
		}
	}
	if got, err := s.LoadActivities(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("LoadActivities(nil) = %v, %v; want empty", got, err)
	}

	for _, d := range []readmodel.Activity{full, minimal, open, long} {
		wantActivity(t, s, "live activity", d)
	}
	for _, id := range []string{tomb.ID, missing, customers[0].ID, contacts[0].ID, ""} {
		wantActivityNotFound(t, s, id)
	}
	// Activities are neither customers nor contacts.
	wantNotFound(t, s, full.ID)
	wantContactNotFound(t, s, full.ID)
	if got := loadContacts(t, s, full.ID, contacts[0].ID); len(got) != 1 {
		t.Errorf("LoadContacts of an activity and a contact: %d documents, want 1", len(got))
	}
	if cs, err := s.Load(ctx, []string{full.ID, customers[0].ID}); err != nil || len(cs) != 1 {
		t.Errorf("Load of an activity and a customer: %d documents, %v; want 1", len(cs), err)
	}

	// The timelines list the live activities, exactly, newest first.
	for _, ids := range [][]string{{customers[0].ID}, {customers[1].ID}, {customers[0].ID, customers[1].ID}} {
		q := readmodel.TimelineQuery{CustomerIDs: ids}
		checkTimeline(t, s, "round trip", m, q)
	}
	if keys := itemKeys(m.items(readmodel.TimelineQuery{CustomerIDs: []string{customers[0].ID, customers[1].ID}})); !slices.Equal(keys,
		[]string{"a:" + full.ID, "a:" + open.ID, "a:" + minimal.ID, "a:" + long.ID}) {
		t.Fatalf("test data: the timeline of customers 1 and 2 is %q", keys)
	}

	// A batch of activities alone with an older checkpoint stores them and
	// keeps the checkpoint; a batch of timeline events alone stores them
	// and advances it; a batch of customers alone leaves both.
	late := activityDoc(6, 1, 3)
	b = readmodel.Batch{Activities: []readmodel.Activity{late}}
	commitBatch(t, s, b, 5)
	m.apply(b)
	wantActivity(t, s, "activity of a batch with an older checkpoint", late)
	if n, err := s.Checkpoint(ctx); err != nil || n != 12 {
		t.Errorf("Checkpoint after an older one = %d, %v; want 12", n, err)
	}
	ev := timelineEvent(1, 1, 13, base.Add(time.Minute))
	b = readmodel.Batch{Timeline: []readmodel.TimelineEvent{ev}}
	commitBatch(t, s, b, 13)
	m.apply(b)
	if n, err := s.Checkpoint(ctx); err != nil || n != 13 {
		t.Errorf("Checkpoint after a batch of timeline events = %d, %v; want 13", n, err)
	}
	commitBatch(t, s, readmodel.Batch{Customers: []readmodel.Customer{doc(3, "Customer Three")}}, 14)
	for _, ids := range [][]string{{customers[0].ID}, {customers[1].ID}, {customerID(3)}} {
		checkTimeline(t, s, "after batches of one kind", m, readmodel.TimelineQuery{CustomerIDs: ids})
	}
	wantActivity(t, s, "after a batch of customers", full)
}

// testActivityIdempotent: an activity document replaces the stored one
// only if its Seq is higher, tombstones included (a late version never
// revives a deleted activity), and its timeline entry follows the stored
// document only; in one batch the highest Seq wins, in any order; an
// invalid activity or timeline event is refused, and CommitBatch refuses
// the whole batch.
func testActivityIdempotent(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	m := newTimelineModel()
	apply := func(b readmodel.Batch, checkpoint uint64) {
		t.Helper()
		commitBatch(t, s, b, checkpoint)
		m.apply(b)
	}
	acts := func(docs ...readmodel.Activity) readmodel.Batch { return readmodel.Batch{Activities: docs} }
	cust := readmodel.TimelineQuery{CustomerIDs: []string{customerID(1)}}
	check := func(what string, want readmodel.Activity) {
		t.Helper()
		if got, ok := loadActivities(t, s, want.ID)[want.ID]; !ok {
			t.Errorf("%s: LoadActivities: no document for %s", what, want.ID)
		} else {
			sameActivity(t, what+": LoadActivities", got, want)
		}
		if want.Deleted {
			wantActivityNotFound(t, s, want.ID)
		} else {
			wantActivity(t, s, what, want)
		}
		if m.activities[want.ID].Seq != want.Seq { // the reference agrees
			t.Fatalf("%s: the model holds %+v, want %+v", what, m.activities[want.ID], want)
		}
		for _, kinds := range [][]string{nil, {activity.TypeCall}, {activity.TypeNote, activity.TypeTask}, {activity.TypeMeeting}} {
			q := cust
			q.Kinds = kinds
			checkTimeline(t, s, what, m, q)
		}
	}

	keeper := activityDoc(50, 1, 5)
	v1 := activityDoc(1, 1, 5)
	v1.Subject = "old"
	apply(acts(keeper, v1), 5)
	apply(acts(v1), 5) // the same again
	same := v1
	same.Subject, same.Type, same.OccurredAt = "same seq", activity.TypeNote, base.Add(time.Hour)
	apply(acts(same), 6) // another document, equal Seq
	lower := v1
	lower.Subject, lower.Type, lower.Seq, lower.OccurredAt = "lower", activity.TypeTask, 4, base.Add(2*time.Hour)
	lowerTomb := v1
	lowerTomb.Deleted, lowerTomb.Seq = true, 3
	apply(acts(lower), 7)
	apply(acts(lowerTomb), 8) // a late deletion never deletes a newer version
	check("equal and lower Seq", v1)

	v2 := v1
	v2.Subject, v2.Type, v2.DueAt, v2.Done, v2.ContactIDs = "new", activity.TypeTask, base.Add(48*time.Hour), true, []string{contactID(3)}
	v2.OccurredAt, v2.Version, v2.Seq, v2.UpdatedAt, v2.UpdatedBy = base.Add(-time.Hour), 2, 10, base.Add(time.Hour), "user-2"
	apply(acts(v2), 10)
	apply(acts(v1), 11) // an older document, a newer checkpoint
	check("a higher Seq, then an older document", v2)
	// A version that clears the optional fields: they read back unset.
	cleared := v2
	cleared.Subject, cleared.DueAt, cleared.Done, cleared.ContactIDs, cleared.Seq, cleared.Version = "", time.Time{}, false, nil, 11, 3
	apply(acts(cleared), 11)
	check("a version clearing the optional fields", cleared)
	v2 = cleared

	tomb := v2
	tomb.Deleted, tomb.Version, tomb.Seq, tomb.UpdatedAt = true, 3, 12, base.Add(2*time.Hour)
	apply(acts(tomb), 12)
	apply(acts(v1, v2), 13) // a late create and update
	equal := v2
	equal.Seq = 12
	apply(acts(equal), 14) // a live document with the tombstone's Seq
	check("tombstone after late documents", tomb)

	// Several versions of one activity in one batch, in any order: the
	// highest Seq wins, on the timeline too.
	a1 := activityDoc(2, 1, 20)
	a2, a3 := a1, a1
	a2.Subject, a2.Seq, a2.Version, a2.OccurredAt = "Beta", 21, 2, base.Add(time.Hour)
	a3.Subject, a3.Seq, a3.Version, a3.OccurredAt, a3.Type = "Gamma", 22, 3, base.Add(-2*time.Hour), activity.TypeMeeting
	apply(acts(a3, a1, a2), 22)
	check("batch with versions out of order", a3)
	b1 := activityDoc(3, 1, 30)
	b2 := b1
	b2.Seq, b2.Version, b2.Deleted = 31, 2, true
	apply(acts(b1, b2), 31)
	check("batch with a create and its deletion", b2)
	c1 := activityDoc(4, 1, 40)
	c2 := c1
	c2.Seq, c2.Version, c2.Deleted = 41, 2, true
	apply(acts(c2, c1), 41)
	check("batch with a deletion before its create", c2)
	// A batch whose highest Seq of an activity is below the stored one.
	a0 := a2
	a0.Subject = "Beta again"
	apply(acts(a0, a1), 42)
	check("batch older than the stored activity", a3)
	check("the other activity", keeper)
	if keys := itemKeys(m.items(cust)); !slices.Equal(keys, []string{"a:" + keeper.ID, "a:" + a3.ID}) {
		t.Fatalf("test data: the timeline is %q", keys)
	}

	// PrepareActivities: the highest Seq of each id, ids required, Seq and
	// Version in range, contact ids never nil.
	noContacts := activityDoc(5, 1, 50)
	noContacts.ContactIDs = nil
	prepared, err := readmodel.PrepareActivities([]readmodel.Activity{a1, a3, noContacts, a2, b2, b1})
	if err != nil {
		t.Fatalf("PrepareActivities: %v", err)
	}
	slices.SortFunc(prepared, func(x, y readmodel.Activity) int { return cmp.Compare(x.Seq, y.Seq) })
	wantNoContacts := noContacts
	wantNoContacts.ContactIDs = []string{}
	if want := []readmodel.Activity{a3, b2, wantNoContacts}; !reflect.DeepEqual(prepared, want) {
		t.Errorf("PrepareActivities =\n %+v\nwant %+v", prepared, want)
	}
	noID, noCustomer := activityDoc(6, 1, 60), activityDoc(6, 1, 60)
	noID.ID, noCustomer.CustomerID = "", ""
	seqTooLarge, versionTooLarge := activityDoc(6, 1, math.MaxInt64+1), activityDoc(6, 1, 60)
	versionTooLarge.Version = math.MaxInt64 + 1
	freshEvent := timelineEvent(1, 1, 60, base.Add(time.Hour))
	fresh := activityDoc(7, 1, 60)
	refused := func(name string, b readmodel.Batch) {
		t.Helper()
		err := s.CommitBatch(ctx, b, 90)
		if !errors.Is(err, readmodel.ErrInternal) || fault.KindOf(err) != fault.Internal {
			t.Errorf("CommitBatch with %s = %v (kind %s), want ErrInternal", name, err, fault.KindOf(err))
		}
		// Nothing stored, the checkpoint where it was.
		if n, err := s.Checkpoint(ctx); err != nil || n != 42 {
			t.Errorf("after a refused batch (%s): Checkpoint = %d, %v; want 42", name, n, err)
		}
		if got := loadActivities(t, s, fresh.ID); len(got) != 0 {
			t.Errorf("after a refused batch (%s): LoadActivities = %+v, want none", name, got)
		}
		wantActivityNotFound(t, s, fresh.ID)
		wantContactNotFound(t, s, contactID(9))
		checkTimeline(t, s, "after a refused batch ("+name+")", m, cust)
	}
	for name, bad := range map[string]readmodel.Activity{
		"no id": noID, "no customer id": noCustomer, "no ids": {Seq: 60}, "seq out of range": seqTooLarge, "version out of range": versionTooLarge,
	} {
		if _, err := readmodel.PrepareActivities([]readmodel.Activity{fresh, bad}); !errors.Is(err, readmodel.ErrInternal) || fault.KindOf(err) != fault.Internal {
			t.Errorf("PrepareActivities with an activity with %s = %v (kind %s), want ErrInternal", name, err, fault.KindOf(err))
		}
		refused("an activity with "+name, readmodel.Batch{Contacts: []readmodel.Contact{contactDoc(9, "Refused")},
			Activities: []readmodel.Activity{fresh, bad}, Timeline: []readmodel.TimelineEvent{freshEvent}})
	}

	// PrepareTimeline: the first of each event, ids and kind required, Seq
	// and Version in range, Changes "[]" when none.
	noChanges := timelineEvent(2, 1, 61, base)
	noChanges.Kind, noChanges.Changes = string(events.KindCreated), nil
	repeat := freshEvent
	repeat.Actor = "user-9"
	evs, err := readmodel.PrepareTimeline([]readmodel.TimelineEvent{freshEvent, noChanges, repeat})
	if err != nil {
		t.Fatalf("PrepareTimeline: %v", err)
	}
	wantNoChanges := noChanges
	wantNoChanges.Changes = json.RawMessage("[]")
	if want := []readmodel.TimelineEvent{freshEvent, wantNoChanges}; !reflect.DeepEqual(evs, want) {
		t.Errorf("PrepareTimeline =\n %+v\nwant %+v", evs, want)
	}
	badEvents := map[string]func(*readmodel.TimelineEvent){
		"no customer id":       func(e *readmodel.TimelineEvent) { e.CustomerID = "" },
		"no event id":          func(e *readmodel.TimelineEvent) { e.EventID = "" },
		"no kind":              func(e *readmodel.TimelineEvent) { e.Kind = "" },
		"seq out of range":     func(e *readmodel.TimelineEvent) { e.Seq = math.MaxInt64 + 1 },
		"version out of range": func(e *readmodel.TimelineEvent) { e.Version = math.MaxInt64 + 1 },
	}
	for name, spoil := range badEvents {
		bad := timelineEvent(3, 1, 62, base)
		spoil(&bad)
		if _, err := readmodel.PrepareTimeline([]readmodel.TimelineEvent{freshEvent, bad}); !errors.Is(err, readmodel.ErrInternal) || fault.KindOf(err) != fault.Internal {
			t.Errorf("PrepareTimeline with an event with %s = %v (kind %s), want ErrInternal", name, err, fault.KindOf(err))
		}
		refused("a timeline event with "+name, readmodel.Batch{Contacts: []readmodel.Contact{contactDoc(9, "Refused")},
			Activities: []readmodel.Activity{fresh}, Timeline: []readmodel.TimelineEvent{freshEvent, bad}})
	}
	check("after the refused batches", a3)
}

// timelineOrderData returns the activities and events of three customers
// with every kind of tie of At (activities with activities, events with
// events, activities with events, of one customer and of two), times that
// differ by a nanosecond within a millisecond and across one, times before
// 1970 and at its start, times in another zone, every activity type and
// the event kinds with their Changes and Data (none, compact JSON arrays
// and objects with unicode and HTML characters, nested values).
func timelineOrderData() ([]readmodel.Activity, []readmodel.TimelineEvent) {
	paris := time.FixedZone("CET", 3600)
	second := time.Date(2026, 5, 6, 7, 8, 9, 0, paris)
	ats := []time.Time{
		second, second.Add(time.Nanosecond), second.Add(-time.Nanosecond), second.Add(time.Millisecond), second.Add(-time.Hour),
		time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC), time.Unix(0, 0),
	}
	kinds := []struct {
		kind          events.Kind
		changes, data string
	}{
		{events.KindCreated, "", ""}, // Changes read back as []
		{events.KindUpdated, `[{"field":"status","old":"lead","new":"active"}]`, ""},
		{events.KindUpdated, `[{"field":"name","old":"Zoë","new":"Zoë Ångström <b>&</b> 東京 \"q\""},{"field":"tags","old":["vip"],"new":[]}]`, ""},
		{events.KindContactLinked, `[{"field":"contacts","old":null,"new":"` + contactID(1) + `"}]`,
			`{"contactId":"` + contactID(1) + `","role":"décideur","primary":true}`},
		{events.KindDeleted, "[]", `{"reason":"doublon — \"dup\" <x>","deletedBy":"user-2"}`},
		{events.KindRestored, "[]", `{"restoredBy":"user-3","at":"2026-05-06T07:08:09.000000001+01:00"}`},
		{events.KindMerged, `[{"field":"email","old":"","new":"a@example.com"},{"field":"phone","old":null,"new":"+1 555"}]`, ""},
		{events.KindMergedInto, "[]", `{"survivorId":"` + customerID(1) + `","survivorCode":"C001","n":12.5,"nested":{"a":[1,2,{"b":null}]}}`},
		{events.KindContactUnlinked, `[{"field":"contacts","old":"` + contactID(2) + `","new":null}]`, `{"contactId":"` + contactID(2) + `","reason":"removed"}`},
	}
	custs := []int{1, 2, 1, 3, 2, 1}
	var acts []readmodel.Activity
	var evs []readmodel.TimelineEvent
	for i := range 36 {
		n, cust, at := i+1, custs[i%len(custs)], ats[i%len(ats)]
		if i%4 < 2 {
			a := activityDoc(n, cust, uint64(n))
			a.Type, a.OccurredAt = activity.Types[i%len(activity.Types)], at
			a.Subject, a.Body = fmt.Sprintf("Activity %d — ☕", n), fmt.Sprintf("line 1\nline %d", n)
			a.ContactIDs = []string{contactID(1 + i%3)}
			if a.Type == activity.TypeTask {
				a.DueAt, a.Done = at.Add(24*time.Hour), i%2 == 1
			}
			acts = append(acts, a)
			continue
		}
		k := kinds[i%len(kinds)]
		e := timelineEvent(n, cust, uint64(n), at)
		e.Kind, e.Version, e.Actor = string(k.kind), uint64(1+i%5), users[i%len(users)]
		e.Changes = nil
		if k.changes != "" {
			e.Changes = json.RawMessage(k.changes)
		}
		if k.data != "" {
			e.Data = json.RawMessage(k.data)
		}
		evs = append(evs, e)
	}
	return acts, evs
}

// testTimelineOrder: Timeline lists the customers' events and live
// activities newest first, by At then Key descending, ties and all; every
// page size walked with After from the last item gives exactly the
// reference order, with More false only on the last page; Kinds keeps the
// entries of those activity types and event kinds; several customers
// merge their timelines; After may be any position; every item is its
// activity or event exactly.
func testTimelineOrder(t *testing.T, s readmodel.Store) {
	acts, evs := timelineOrderData()
	// A tombstone is on no timeline, nor is an activity deleted later.
	gone := activityDoc(90, 1, 90)
	gone.OccurredAt, gone.Deleted = acts[0].OccurredAt, true
	later := activityDoc(91, 2, 91)
	later.OccurredAt = acts[1].OccurredAt
	laterGone := later
	laterGone.Seq, laterGone.Version, laterGone.Deleted = 92, 2, true
	customers := []readmodel.Customer{doc(1, "Alpha"), doc(2, "Bravo"), doc(3, "Charlie")}
	first := readmodel.Batch{Customers: customers, Activities: append(slices.Clone(acts[:9]), gone, later), Timeline: evs[:9]}
	second := readmodel.Batch{Activities: append(slices.Clone(acts[9:]), laterGone), Timeline: evs[9:]}
	m := newTimelineModel()
	commitBatch(t, s, first, 50)
	m.apply(first)
	commitBatch(t, s, second, 100)
	m.apply(second)

	c1, c2, c3 := customerID(1), customerID(2), customerID(3)
	both := []string{c1, c2}
	all := []string{c3, c1, c2}

	// The data exercise what they should.
	ties := map[string]int{}
	for _, ids := range [][]string{{c1}, {c2}, {c3}, both} {
		items := m.items(readmodel.TimelineQuery{CustomerIDs: ids})
		if len(ids) == 1 && (!slices.ContainsFunc(items, func(it readmodel.TimelineItem) bool { return it.Activity != nil }) ||
			!slices.ContainsFunc(items, func(it readmodel.TimelineItem) bool { return it.Event != nil })) {
			t.Fatalf("test data: customer %s lacks activities or events: %q", ids[0], itemNames(items))
		}
		for i := 1; i < len(items); i++ {
			if items[i-1].At.Equal(items[i].At) {
				kind := items[i-1].Key[:1] + items[i].Key[:1]
				if len(ids) > 1 {
					kind = "customers"
					if customerOf(items[i-1]) == customerOf(items[i]) {
						continue
					}
				}
				ties[kind]++
			}
		}
	}
	for _, kind := range []string{"aa", "ee", "ea", "customers"} {
		if ties[kind] == 0 {
			t.Fatalf("test data: no ties of At of kind %s (%v)", kind, ties)
		}
	}
	if n := len(m.items(readmodel.TimelineQuery{CustomerIDs: both})); n <= readmodel.DefaultPerPage {
		t.Fatalf("test data: %d entries of customers 1 and 2, too few to see the default page size", n)
	}
	for _, id := range []string{gone.ID, later.ID} {
		if slices.Contains(itemKeys(m.items(readmodel.TimelineQuery{CustomerIDs: all})), "a:"+id) {
			t.Fatalf("test data: the deleted activity %s is on the model's timeline", id)
		}
	}

	for _, c := range []struct {
		name string
		ids  []string
	}{{"customer 1", []string{c1}}, {"customer 2", []string{c2}}, {"customer 3", []string{c3}},
		{"customers 1 and 2", both}, {"all customers", all}} {
		for _, per := range []int{1, 2, 3} {
			q := readmodel.TimelineQuery{CustomerIDs: c.ids, PerPage: per}
			t.Run(fmt.Sprintf("%s per=%d", c.name, per), func(t *testing.T) {
				walkTimeline(t, fmt.Sprintf("Timeline %v per %d", c.ids, per), s, q, m)
			})
		}
	}
	// Page sizes: unset and negative are DefaultPerPage, too large is
	// clamped.
	for _, per := range []int{0, -1, readmodel.MaxPerPage + 1, 1 << 30} {
		q := readmodel.TimelineQuery{CustomerIDs: both, PerPage: per}
		t.Run(fmt.Sprintf("per page %d", per), func(t *testing.T) {
			walkTimeline(t, fmt.Sprintf("Timeline %v per %d", both, per), s, q, m)
		})
	}

	// Kinds: activity types and event kinds, alone and mixed, exactly
	// (no other case, no unknown kind).
	for _, kinds := range [][]string{
		{activity.TypeCall}, {string(events.KindUpdated)},
		{activity.TypeCall, string(events.KindUpdated), string(events.KindDeleted)},
		{activity.TypeTask, activity.TypeNote, string(events.KindContactLinked), string(events.KindMergedInto), string(events.KindCreated)},
		{"Call"}, {"no-such-kind"}, {""},
	} {
		for _, c := range []struct {
			name string
			ids  []string
		}{{"customer 1", []string{c1}}, {"customers 1 and 2", both}} {
			for _, per := range []int{1, 3} {
				q := readmodel.TimelineQuery{CustomerIDs: c.ids, Kinds: kinds, PerPage: per}
				t.Run(fmt.Sprintf("kinds %v %s per=%d", kinds, c.name, per), func(t *testing.T) {
					walkTimeline(t, fmt.Sprintf("Timeline %v kinds %v per %d", c.ids, kinds, per), s, q, m)
				})
			}
		}
	}
	if n := len(m.items(readmodel.TimelineQuery{CustomerIDs: both, Kinds: []string{activity.TypeCall, string(events.KindUpdated)}})); n < 3 {
		t.Fatalf("test data: %d calls and updates of customers 1 and 2", n)
	}

	// Customers without entries, none, a customer given twice.
	for _, ids := range [][]string{{customerID(99)}, {contactID(1)}, {}, nil, {""}, {c1, c1}, {c2, customerID(99), c2, c1}} {
		q := readmodel.TimelineQuery{CustomerIDs: ids, PerPage: 5}
		checkTimelinePage(t, fmt.Sprintf("Timeline %q", ids), timeline(t, s, q), m.items(q), 5)
	}

	// After may be any position, also one no entry has: the page is the
	// entries strictly older than it.
	var positions []readmodel.TimelinePosition
	for _, at := range []time.Time{acts[0].OccurredAt, acts[1].OccurredAt, evs[0].At, evs[1].At, acts[2].OccurredAt.Add(time.Nanosecond), time.Unix(0, 0)} {
		for _, key := range []string{"", "a:", "b", "e:", "e:~", "f"} {
			positions = append(positions, readmodel.TimelinePosition{At: at, Key: key})
		}
	}
	positions = append(positions, readmodel.TimelinePosition{At: gone.OccurredAt, Key: "a:" + gone.ID},
		readmodel.TimelinePosition{At: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), Key: ""},
		readmodel.TimelinePosition{At: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), Key: "z"})
	for _, pos := range positions {
		q := readmodel.TimelineQuery{CustomerIDs: both, PerPage: 3, After: &pos}
		checkTimelinePage(t, fmt.Sprintf("Timeline %v after %s %q", both, pos.At.UTC().Format(time.RFC3339Nano), pos.Key),
			timeline(t, s, q), m.items(q), 3)
	}
}

func customerOf(it readmodel.TimelineItem) string {
	if it.Activity != nil {
		return it.Activity.CustomerID
	}
	return it.Event.CustomerID
}

// testTimelineFollowsActivities: an activity's entry follows its stored
// document: a later version with another OccurredAt (or type) moves it, a
// deletion takes it off the timeline, a stale version (a lower or equal
// Seq) never moves or revives it; a customer event is on the timeline
// once, however often it is committed, as it was first written.
func testTimelineFollowsActivities(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	c1 := customerID(1)
	m := newTimelineModel()
	e1 := timelineEvent(1, 1, 1, base.Add(1*time.Minute))
	e2 := timelineEvent(2, 1, 2, base.Add(3*time.Minute))
	e2.Kind, e2.Changes = string(events.KindCreated), nil
	e3 := timelineEvent(3, 1, 3, base.Add(5*time.Minute))
	e3.Kind, e3.Changes, e3.Data = string(events.KindDeleted), json.RawMessage("[]"), json.RawMessage(`{"deletedBy":"user-2"}`)
	x := activityDoc(1, 1, 4)
	x.OccurredAt = base.Add(2 * time.Minute)
	y := activityDoc(2, 1, 5)
	y.Type, y.OccurredAt = activity.TypeNote, base.Add(4*time.Minute)
	other := activityDoc(3, 2, 6) // another customer's
	other.OccurredAt = base.Add(2 * time.Minute)
	checkpoint := uint64(0)
	apply := func(b readmodel.Batch) {
		t.Helper()
		checkpoint++
		commitBatch(t, s, b, checkpoint)
		m.apply(b)
	}
	ek, ak := func(e readmodel.TimelineEvent) string { return "e:" + e.EventID }, func(a readmodel.Activity) string { return "a:" + a.ID }
	follow := func(what string, want ...string) {
		t.Helper()
		q := readmodel.TimelineQuery{CustomerIDs: []string{c1}}
		if keys := itemKeys(m.items(q)); !slices.Equal(keys, want) {
			t.Fatalf("%s: the model's timeline is %q, want %q", what, keys, want)
		}
		checkTimeline(t, s, what, m, q)
		for _, kinds := range [][]string{{activity.TypeCall}, {activity.TypeMeeting, activity.TypeNote}, {string(events.KindUpdated)}} {
			q.Kinds = kinds
			checkTimeline(t, s, what, m, q)
		}
		for _, per := range []int{1, 2} {
			q := readmodel.TimelineQuery{CustomerIDs: []string{c1, customerID(2)}, PerPage: per}
			walkTimeline(t, fmt.Sprintf("%s: Timeline of both per %d", what, per), s, q, m)
		}
	}

	apply(readmodel.Batch{Customers: []readmodel.Customer{doc(1, "Alpha"), doc(2, "Bravo")},
		Timeline: []readmodel.TimelineEvent{e1, e2, e3}, Activities: []readmodel.Activity{x, y, other}})
	follow("created", ek(e3), ak(y), ek(e2), ak(x), ek(e1))

	x2 := x
	x2.Subject, x2.OccurredAt, x2.Version, x2.Seq = "moved to the top", base.Add(6*time.Minute), 2, 10
	apply(readmodel.Batch{Activities: []readmodel.Activity{x2}})
	follow("moved to the newest", ak(x), ek(e3), ak(y), ek(e2), ek(e1))
	wantActivity(t, s, "moved to the newest", x2)

	x3 := x2
	x3.Type, x3.OccurredAt, x3.Version, x3.Seq = activity.TypeMeeting, base.Add(-time.Minute), 3, 11
	apply(readmodel.Batch{Activities: []readmodel.Activity{x3}})
	follow("moved to the oldest, another type", ek(e3), ak(y), ek(e2), ek(e1), ak(x))

	// At the time of an event: the tie is broken by key ("e:" after "a:").
	x4 := x3
	x4.OccurredAt, x4.Version, x4.Seq = e2.At.In(time.FixedZone("X", -7*3600)), 4, 12
	apply(readmodel.Batch{Activities: []readmodel.Activity{x4}})
	follow("moved to an event's time", ek(e3), ak(y), ek(e2), ak(x), ek(e1))

	// Stale versions: a lower Seq, an equal one.
	stale := x
	stale.OccurredAt = base.Add(10 * time.Minute)
	equal := x4
	equal.OccurredAt, equal.Type = base.Add(11*time.Minute), activity.TypeCall
	apply(readmodel.Batch{Activities: []readmodel.Activity{stale}})
	apply(readmodel.Batch{Activities: []readmodel.Activity{equal}})
	apply(readmodel.Batch{Activities: []readmodel.Activity{x2, x3}})
	follow("stale versions", ek(e3), ak(y), ek(e2), ak(x), ek(e1))
	wantActivity(t, s, "stale versions", x4)

	// Several versions in one batch: the highest Seq places it.
	x5, x6 := x4, x4
	x5.OccurredAt, x5.Version, x5.Seq = base.Add(7*time.Minute), 5, 13
	x6.OccurredAt, x6.Version, x6.Seq = base.Add(30*time.Second), 6, 14
	apply(readmodel.Batch{Activities: []readmodel.Activity{x6, x5}})
	follow("two versions in one batch", ek(e3), ak(y), ek(e2), ek(e1), ak(x))

	// Deleted: off the timeline; stale live versions never revive it.
	yGone := y
	yGone.Deleted, yGone.Version, yGone.Seq = true, 2, 15
	apply(readmodel.Batch{Activities: []readmodel.Activity{yGone}})
	follow("deleted", ek(e3), ek(e2), ek(e1), ak(x))
	wantActivityNotFound(t, s, y.ID)
	yEqual := y
	yEqual.Seq, yEqual.Version, yEqual.OccurredAt = 15, 2, base.Add(8*time.Minute)
	apply(readmodel.Batch{Activities: []readmodel.Activity{y}})
	apply(readmodel.Batch{Activities: []readmodel.Activity{yEqual}})
	follow("deleted, after stale versions", ek(e3), ek(e2), ek(e1), ak(x))
	wantActivityNotFound(t, s, y.ID)
	// Deleted and moved in one batch.
	xGone := x6
	xGone.Deleted, xGone.Version, xGone.Seq = true, 7, 17
	x7 := x6
	x7.OccurredAt, x7.Version, x7.Seq = base.Add(9*time.Minute), 7, 16
	apply(readmodel.Batch{Activities: []readmodel.Activity{xGone, x7}})
	follow("moved and deleted in one batch", ek(e3), ek(e2), ek(e1))
	if got := loadActivities(t, s, x.ID, y.ID); len(got) != 2 || !got[x.ID].Deleted || !got[y.ID].Deleted {
		t.Errorf("LoadActivities of the deleted activities = %+v, want both tombstones", got)
	}
	// A live document with a higher Seq than the tombstone is on the
	// timeline again (the domain never does this, but the contract
	// stores every higher Seq and lists every live activity).
	yBack := y
	yBack.Version, yBack.Seq, yBack.OccurredAt = 3, 18, base.Add(4*time.Minute+time.Nanosecond)
	apply(readmodel.Batch{Activities: []readmodel.Activity{yBack}})
	follow("live again by a higher Seq", ek(e3), ak(y), ek(e2), ek(e1))
	yGone2 := yBack
	yGone2.Deleted, yGone2.Version, yGone2.Seq = true, 4, 19
	apply(readmodel.Batch{Activities: []readmodel.Activity{yGone2}})
	follow("deleted again", ek(e3), ek(e2), ek(e1))

	// Events: once, however often committed, as first written.
	e4 := timelineEvent(4, 1, 20, base.Add(4*time.Minute))
	apply(readmodel.Batch{Timeline: []readmodel.TimelineEvent{e4, e1, e4}})
	apply(readmodel.Batch{Timeline: []readmodel.TimelineEvent{e4, e3}})
	follow("events committed again", ek(e3), ek(e4), ek(e2), ek(e1))
	e2again := e2
	e2again.At, e2again.Actor, e2again.Changes = base.Add(20*time.Minute), "user-9", json.RawMessage(`[{"field":"x","old":"","new":"y"}]`)
	apply(readmodel.Batch{Timeline: []readmodel.TimelineEvent{e2again}})
	follow("an event committed again, changed", ek(e3), ek(e4), ek(e2), ek(e1))
	if m.events[c1+"/"+e2.EventID].Actor != e2.Actor {
		t.Fatalf("the model took the repeat of an event")
	}
	if n, err := s.Checkpoint(ctx); err != nil || n != checkpoint {
		t.Errorf("Checkpoint = %d, %v; want %d", n, err, checkpoint)
	}
}

// testTimelineRebuild: activities and timeline entries written into a
// rebuild stay out of the live read model until Swap, which replaces the
// live ones with them; Abort leaves the live ones as they were.
func testTimelineRebuild(t *testing.T, s readmodel.Store) {
	ctx := t.Context()
	c1, c2 := customerID(1), customerID(2)
	queries := []readmodel.TimelineQuery{{CustomerIDs: []string{c1}}, {CustomerIDs: []string{c2}}, {CustomerIDs: []string{c1, c2}},
		{CustomerIDs: []string{c1, c2}, Kinds: []string{activity.TypeNote, string(events.KindCreated)}}}
	a1, a2 := activityDoc(1, 1, 1), activityDoc(2, 2, 2)
	e1 := timelineEvent(1, 1, 3, base.Add(time.Hour))
	e2 := timelineEvent(2, 2, 4, base.Add(time.Hour))
	e2.Kind, e2.Changes = string(events.KindCreated), nil
	customers := []readmodel.Customer{doc(1, "Alpha"), doc(2, "Bravo")}
	live := readmodel.Batch{Customers: customers, Activities: []readmodel.Activity{a1, a2}, Timeline: []readmodel.TimelineEvent{e1, e2}}
	commitBatch(t, s, live, 10)
	mLive := newTimelineModel()
	mLive.apply(live)
	check := func(what string, m *timelineModel) {
		t.Helper()
		for _, q := range queries {
			checkTimeline(t, s, what, m, q)
		}
		for _, a := range m.activities {
			if a.Deleted {
				wantActivityNotFound(t, s, a.ID)
			} else {
				wantActivity(t, s, what, a)
			}
		}
	}
	liveOnly := func(what string) {
		t.Helper()
		check(what, mLive)
		wantActivityNotFound(t, s, activityID(3))
	}

	// Abort.
	rb, err := s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	if got := loadActivities(t, rb, a1.ID, a2.ID); len(got) != 0 {
		t.Errorf("new rebuild: LoadActivities = %v, want empty", got)
	}
	lost := a1
	lost.Subject, lost.OccurredAt, lost.Type, lost.Seq, lost.Version = "lost", base.Add(2*time.Hour), activity.TypeNote, 30, 2
	commitBatch(t, rb, readmodel.Batch{Customers: customers, Activities: []readmodel.Activity{lost, activityDoc(3, 1, 31)},
		Timeline: []readmodel.TimelineEvent{timelineEvent(3, 1, 32, base.Add(3*time.Hour)), e1}}, 50)
	liveOnly("before Abort")
	if err := rb.Abort(ctx); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	liveOnly("after Abort")

	// Swap.
	rb, err = s.Rebuild(ctx)
	if err != nil {
		t.Fatalf("Rebuild after Abort: %v", err)
	}
	if got := loadActivities(t, rb, a1.ID, activityID(3)); len(got) != 0 {
		t.Errorf("Rebuild after Abort: LoadActivities = %v, want empty", got)
	}
	mRb := newTimelineModel()
	moved := a1
	moved.Subject, moved.OccurredAt, moved.Type, moved.Seq, moved.Version = "rebuilt", base.Add(2*time.Hour), activity.TypeNote, 15, 2
	a2Gone := a2
	a2Gone.Deleted, a2Gone.Seq, a2Gone.Version = true, 16, 2
	a3 := activityDoc(3, 2, 17)
	a3.Type = activity.TypeNote
	e3 := timelineEvent(3, 1, 18, base.Add(time.Hour)) // a tie with e1
	e3.Kind, e3.Changes, e3.Data = string(events.KindCreated), nil, nil
	firstRb := readmodel.Batch{Customers: customers, Activities: []readmodel.Activity{a1, a2}, Timeline: []readmodel.TimelineEvent{e1}}
	secondRb := readmodel.Batch{Activities: []readmodel.Activity{moved, a2Gone, a3}, Timeline: []readmodel.TimelineEvent{e3, e1}}
	commitBatch(t, rb, firstRb, 10)
	mRb.apply(firstRb)
	commitBatch(t, rb, secondRb, 20)
	mRb.apply(secondRb)
	got := loadActivities(t, rb, a1.ID, a2.ID, a3.ID, activityID(4))
	if len(got) != 3 {
		t.Errorf("rebuild LoadActivities: %d documents, want 3", len(got))
	}
	for _, want := range []readmodel.Activity{moved, a2Gone, a3} {
		sameActivity(t, "rebuild LoadActivities", got[want.ID], want)
	}
	liveOnly("before Swap")
	// The live projector goes on.
	goesOn := readmodel.Batch{Activities: []readmodel.Activity{activityDoc(4, 1, 11)}, Timeline: []readmodel.TimelineEvent{timelineEvent(4, 2, 12, base)}}
	commitBatch(t, s, goesOn, 12)
	mLive.apply(goesOn)
	liveOnly("before Swap, the live projector went on")
	if got := loadActivities(t, s, activityID(4), a1.ID); len(got) != 2 || got[a1.ID].Seq != a1.Seq {
		t.Errorf("live LoadActivities before Swap = %+v, want the live documents", got)
	}
	if err := rb.Swap(ctx); err != nil {
		t.Fatalf("Swap: %v", err)
	}
	afterSwap := func(what string) {
		t.Helper()
		check(what, mRb)
		wantActivityNotFound(t, s, activityID(4))
	}
	keys := itemKeys(mRb.items(readmodel.TimelineQuery{CustomerIDs: []string{c1, c2}}))
	if want := []string{"a:" + moved.ID, "e:" + e1.EventID, "e:" + e3.EventID, "a:" + a3.ID}; !slices.Equal(slices.Sorted(slices.Values(keys)),
		slices.Sorted(slices.Values(want))) {
		t.Fatalf("test data: the rebuilt timeline is %q, want %q in some order", keys, want)
	}
	afterSwap("after Swap")
	if got := loadActivities(t, s, a1.ID, a2.ID, a3.ID, activityID(4)); len(got) != 3 {
		t.Errorf("after Swap: LoadActivities = %d documents, want 3", len(got))
	}
	if n, err := s.Checkpoint(ctx); err != nil || n != 20 {
		t.Errorf("after Swap: Checkpoint = %d, %v; want 20", n, err)
	}
	// The swapped activities and timeline keep their guards.
	old := readmodel.Batch{Activities: []readmodel.Activity{a1, a2}, Timeline: []readmodel.TimelineEvent{e1, e3, e2}}
	commitBatch(t, s, old, 21)
	mRb.apply(old)
	afterSwap("after Swap, older documents and events again")
	if got := timeline(t, s, readmodel.TimelineQuery{CustomerIDs: []string{c2}, PerPage: 10}); !slices.Contains(itemKeys(got.Items), "e:"+e2.EventID) {
		t.Errorf("after Swap: an event of the old live timeline committed again is not listed: %q", itemNames(got.Items))
	}
	a3v2 := a3
	a3v2.OccurredAt, a3v2.Seq, a3v2.Version = base.Add(5*time.Hour), 22, 2
	newer := readmodel.Batch{Activities: []readmodel.Activity{a3v2}}
	commitBatch(t, s, newer, 22)
	mRb.apply(newer)
	check("after Swap, a newer document", mRb)
}
