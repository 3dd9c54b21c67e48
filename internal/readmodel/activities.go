package readmodel

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"crm/internal/activity"
	"crm/internal/fault"
)

// ErrActivityNotFound (fault.NotFound): no live activity with that id.
var ErrActivityNotFound = fault.New(fault.NotFound, "activity not found")

// Activity is one activity document: the fold of the activity's events
// (activity.Evolve), tombstones included.
type Activity struct {
	ID         string
	CustomerID string
	Type       string
	OccurredAt time.Time
	Subject    string
	Body       string
	ContactIDs []string
	Outcome    string
	DueAt      time.Time // zero: none
	Done       bool
	CreatedBy  string
	CreatedAt  time.Time
	UpdatedBy  string
	UpdatedAt  time.Time
	Version    uint64
	Seq        uint64
	Deleted    bool
}

// FromActivity returns the document of an activity's state.
func FromActivity(a activity.Activity) Activity {
	d := Activity(a)
	d.ContactIDs = slices.Clone(a.ContactIDs)
	if d.ContactIDs == nil {
		d.ContactIDs = []string{}
	}
	return d
}

// State returns the activity state the document stores.
func (d Activity) State() activity.Activity {
	a := activity.Activity(d)
	a.ContactIDs = slices.Clone(d.ContactIDs)
	return a
}

// TimelineEvent is a customer's own event on its timeline: what happened
// (the event's kind), who did it, the version it made, and for the
// changes of fields (updated, merged, mergeundone) every changed field with
// its old and new value (Changes: a JSON array of {field, old, new}, as in
// the history).
type TimelineEvent struct {
	CustomerID string
	EventID    string
	Kind       string
	At         time.Time
	Version    uint64
	Actor      string
	Changes    json.RawMessage // JSON array, "[]" when none
	// Data is the event's data as published, for the kinds whose changes
	// are not fields (deleted, restored, mergedinto, unmerged,
	// contactlinked, contactunlinked); nil for the others.
	Data json.RawMessage
	Seq  uint64
}

// TimelineItem is one entry of a timeline page: an activity (Activity
// set) or a customer event (Event set), at its time (an activity's
// OccurredAt, an event's time).
type TimelineItem struct {
	At       time.Time
	Key      string // "a:<activityId>" or "e:<eventId>": the tie-breaker of the order
	Kind     string // the activity's type or the event's kind
	Activity *Activity
	Event    *TimelineEvent
}

// TimelinePosition is a place in a timeline (newest first).
type TimelinePosition struct {
	At  time.Time
	Key string
}

// TimelineQuery selects one page of timeline entries of customers.
type TimelineQuery struct {
	// CustomerIDs are the customer and the customers merged into it: their
	// entries are its timeline.
	CustomerIDs []string
	// Kinds, when set, keeps the entries of these activity types and
	// event kinds only.
	Kinds   []string
	PerPage int
	// After: the entries strictly older than this position (newest first:
	// by At descending, then Key descending).
	After *TimelinePosition
}

// Limit returns q's page size, clamped.
func (q TimelineQuery) Limit() int { return ContactQuery{PerPage: q.PerPage}.Limit() }

// TimelinePage is one page of a timeline.
type TimelinePage struct {
	Items []TimelineItem
	More  bool
}

// ActivityReader is what the activity and timeline endpoints need.
type ActivityReader interface {
	// GetActivity returns one live activity or ErrActivityNotFound.
	GetActivity(ctx context.Context, id string) (Activity, error)
	// Timeline returns one page of the timeline of q.CustomerIDs: the
	// live activities (by OccurredAt) and the customers' events (by their
	// time), newest first, ties by Key descending; More says whether
	// older entries follow. Its cost grows with the page, not with the
	// timeline before the position.
	Timeline(ctx context.Context, q TimelineQuery) (TimelinePage, error)
}

// ActivityWriter is the part of Writer that stores activities.
type ActivityWriter interface {
	// LoadActivities returns the stored activity documents (tombstones
	// included) of ids.
	LoadActivities(ctx context.Context, ids []string) (map[string]Activity, error)
}

// PrepareActivities is Prepare for activity documents.
func PrepareActivities(docs []Activity) ([]Activity, error) {
	at := make(map[string]int, len(docs))
	out := make([]Activity, 0, len(docs))
	for _, d := range docs {
		switch {
		case d.ID == "" || d.CustomerID == "":
			return nil, fmt.Errorf("%w: an activity document without its ids", ErrInternal)
		case d.Seq > math.MaxInt64 || d.Version > math.MaxInt64:
			return nil, fmt.Errorf("%w: activity %s: seq or version out of range", ErrInternal, d.ID)
		}
		if d.ContactIDs == nil {
			d.ContactIDs = []string{}
		}
		i, seen := at[d.ID]
		switch {
		case !seen:
			at[d.ID] = len(out)
			out = append(out, d)
		case d.Seq > out[i].Seq:
			out[i] = d
		}
	}
	return out, nil
}

// PrepareTimeline checks the timeline events of a Commit and drops
// repeats of one event.
func PrepareTimeline(evs []TimelineEvent) ([]TimelineEvent, error) {
	seen := make(map[string]bool, len(evs))
	out := make([]TimelineEvent, 0, len(evs))
	for _, e := range evs {
		switch {
		case e.CustomerID == "" || e.EventID == "" || e.Kind == "":
			return nil, fmt.Errorf("%w: a timeline event without its ids or kind", ErrInternal)
		case e.Seq > math.MaxInt64 || e.Version > math.MaxInt64:
			return nil, fmt.Errorf("%w: timeline event %s: seq or version out of range", ErrInternal, e.EventID)
		}
		if seen[e.EventID] {
			continue
		}
		seen[e.EventID] = true
		if len(e.Changes) == 0 {
			e.Changes = json.RawMessage("[]")
		}
		out = append(out, e)
	}
	return out, nil
}
