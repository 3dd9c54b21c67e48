package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"crm/internal/readmodel"
)

// activityColumns are the columns of an activity (aliased a) as
// activityRow scans them.
const activityColumns = "a.activity_id, a.customer_id, a.type, a.occurred_at, a.subject, a.body, a.contact_ids, a.outcome, " +
	"a.due_at, a.done, a.created_by, a.created_at, a.updated_by, a.updated_at, a.version, a.seq, a.deleted"

// nullableActivityColumns are activityColumns of a LEFT JOIN: the values
// an event's entry (no activity) gives are scanned as empty.
const nullableActivityColumns = "coalesce(a.activity_id, ''), coalesce(a.customer_id, ''), coalesce(a.type, ''), a.occurred_at, " +
	"coalesce(a.subject, ''), coalesce(a.body, ''), coalesce(a.contact_ids, '[]'), coalesce(a.outcome, ''), a.due_at, " +
	"coalesce(a.done, 0), coalesce(a.created_by, ''), a.created_at, coalesce(a.updated_by, ''), a.updated_at, " +
	"coalesce(a.version, 0), coalesce(a.seq, 0), coalesce(a.deleted, 0)"

// activityRow is one row of activityColumns as scanned.
type activityRow struct {
	a                               readmodel.Activity
	contacts                        string
	occurred, due, created, updated sql.NullInt64
	version, seq                    int64
}

func (r *activityRow) dest() []any {
	a := &r.a
	return []any{&a.ID, &a.CustomerID, &a.Type, &r.occurred, &a.Subject, &a.Body, &r.contacts, &a.Outcome,
		&r.due, &a.Done, &a.CreatedBy, &r.created, &a.UpdatedBy, &r.updated, &r.version, &r.seq, &a.Deleted}
}

func (r *activityRow) doc() (readmodel.Activity, error) {
	a := r.a
	if err := json.Unmarshal([]byte(r.contacts), &a.ContactIDs); err != nil {
		return a, fmt.Errorf("activity %s: contact ids: %w", a.ID, err)
	}
	if a.ContactIDs == nil {
		a.ContactIDs = []string{}
	}
	a.OccurredAt, a.DueAt = fromNanos(r.occurred), fromNanos(r.due)
	a.CreatedAt, a.UpdatedAt = fromNanos(r.created), fromNanos(r.updated)
	a.Version, a.Seq = uint64(r.version), uint64(r.seq)
	return a, nil
}

// LoadActivities returns the stored activity documents, tombstones
// included, of ids.
func (s *Store) LoadActivities(ctx context.Context, ids []string) (map[string]readmodel.Activity, error) {
	return s.loadActivities(ctx, live, ids)
}

func (s *Store) loadActivities(ctx context.Context, t tables, ids []string) (map[string]readmodel.Activity, error) {
	if s.closed.Load() {
		return nil, s.fail("load activities", errClosed)
	}
	out := make(map[string]readmodel.Activity, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), loadBatch)
		list, err := idList(ids[:n])
		if err != nil {
			return nil, err
		}
		ids = ids[n:]
		rows, err := s.w.QueryContext(ctx, "SELECT "+activityColumns+" FROM "+t.activities+
			" AS a WHERE activity_id IN (SELECT value FROM json_each(?))", list)
		if err != nil {
			return nil, s.fail("load activities", err)
		}
		err = scanActivities(rows, func(a readmodel.Activity) { out[a.ID] = a })
		if err != nil {
			return nil, s.fail("load activities", err)
		}
	}
	return out, nil
}

func scanActivities(rows *sql.Rows, fn func(readmodel.Activity)) error {
	defer rows.Close()
	for rows.Next() {
		var r activityRow
		if err := rows.Scan(r.dest()...); err != nil {
			return err
		}
		a, err := r.doc()
		if err != nil {
			return err
		}
		fn(a)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	return rows.Err()
}

// commitActivities writes the activity documents in tx, each only over a
// stored one with a lower seq, and keeps each one's timeline row: there
// while it is live, at its OccurredAt.
func commitActivities(ctx context.Context, tx *sql.Tx, t tables, docs []readmodel.Activity) error {
	for _, a := range docs {
		var (
			row    int64
			seq    int64
			exists = true
		)
		err := tx.QueryRowContext(ctx, "SELECT id, seq FROM "+t.activities+" WHERE activity_id = ?", a.ID).Scan(&row, &seq)
		switch {
		case err == sql.ErrNoRows:
			exists = false
		case err != nil:
			return err
		case uint64(seq) >= a.Seq:
			continue // stale
		}
		contacts, err := json.Marshal(a.ContactIDs)
		if err != nil {
			return err
		}
		args := []any{a.CustomerID, a.Type, nanos(a.OccurredAt), a.Subject, a.Body, string(contacts), a.Outcome, nanos(a.DueAt), a.Done,
			a.CreatedBy, nanos(a.CreatedAt), a.UpdatedBy, nanos(a.UpdatedAt), int64(a.Version), int64(a.Seq), a.Deleted}
		if exists {
			_, err = tx.ExecContext(ctx, "UPDATE "+t.activities+" SET customer_id = ?, type = ?, occurred_at = ?, subject = ?, body = ?, "+
				"contact_ids = ?, outcome = ?, due_at = ?, done = ?, created_by = ?, created_at = ?, updated_by = ?, updated_at = ?, "+
				"version = ?, seq = ?, deleted = ? WHERE id = ?", append(args, row)...)
		} else {
			err = tx.QueryRowContext(ctx, "INSERT INTO "+t.activities+" (activity_id, customer_id, type, occurred_at, subject, body, "+
				"contact_ids, outcome, due_at, done, created_by, created_at, updated_by, updated_at, version, seq, deleted) VALUES ("+
				placeholders(17)+") RETURNING id", append([]any{a.ID}, args...)...).Scan(&row)
		}
		if err != nil {
			return fmt.Errorf("activity %s: %w", a.ID, err)
		}
		key := "a:" + a.ID
		if a.Deleted {
			_, err = tx.ExecContext(ctx, "DELETE FROM "+t.timeline+" WHERE customer_id = ? AND key = ?", a.CustomerID, key)
		} else {
			_, err = tx.ExecContext(ctx, "INSERT INTO "+t.timeline+" (customer_id, at, key, kind, activity, data) VALUES (?, ?, ?, ?, ?, '') "+
				"ON CONFLICT (customer_id, key) DO UPDATE SET at = excluded.at, kind = excluded.kind, activity = excluded.activity",
				a.CustomerID, nanos(a.OccurredAt), key, a.Type, row)
		}
		if err != nil {
			return fmt.Errorf("activity %s: timeline: %w", a.ID, err)
		}
	}
	return nil
}

// timelineEventJSON is a customer event's timeline entry as stored.
type timelineEventJSON struct {
	EventID string          `json:"eventId"`
	Version uint64          `json:"version"`
	Actor   string          `json:"actor"`
	Changes json.RawMessage `json:"changes"`
	Data    json.RawMessage `json:"data,omitempty"`
	Seq     uint64          `json:"seq"`
}

// timelineRows is how many timeline entries one INSERT writes:
// modernc.org/sqlite compiles a statement on every execution, so a batch's
// entries go in a few statements rather than one each
// (BenchmarkCommitTimeline compares them; on a small database the
// difference was within the noise).
var timelineRows = 100 // a variable for BenchmarkCommitTimeline

// commitTimeline puts the customers' events on their timelines (an event
// already there is left as it is: events never change).
func commitTimeline(ctx context.Context, tx *sql.Tx, t tables, evs []readmodel.TimelineEvent) error {
	for len(evs) > 0 {
		n := min(len(evs), timelineRows)
		args := make([]any, 0, 5*n)
		for _, e := range evs[:n] {
			data, err := json.Marshal(timelineEventJSON{EventID: e.EventID, Version: e.Version, Actor: e.Actor, Changes: e.Changes, Data: e.Data, Seq: e.Seq})
			if err != nil {
				return err
			}
			args = append(args, e.CustomerID, nanos(e.At), "e:"+e.EventID, e.Kind, string(data))
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+t.timeline+" (customer_id, at, key, kind, activity, data) VALUES "+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, NULL, ?), ", n), ", ")+" ON CONFLICT (customer_id, key) DO NOTHING", args...); err != nil {
			return fmt.Errorf("timeline: %w", err)
		}
		evs = evs[n:]
	}
	return nil
}

// GetActivity returns one live activity.
func (s *Store) GetActivity(ctx context.Context, id string) (readmodel.Activity, error) {
	if s.closed.Load() {
		return readmodel.Activity{}, s.fail("get activity", errClosed)
	}
	rows, err := s.query(ctx, nil, "SELECT "+activityColumns+" FROM "+live.activities+" AS a WHERE a.activity_id = ? AND a.deleted = 0", id)
	if err != nil {
		return readmodel.Activity{}, s.fail("get activity", err)
	}
	var (
		a     readmodel.Activity
		found bool
	)
	if err := scanActivities(rows, func(d readmodel.Activity) { a, found = d, true }); err != nil {
		return readmodel.Activity{}, s.fail("get activity", err)
	}
	if !found {
		return readmodel.Activity{}, readmodel.ErrActivityNotFound
	}
	return a, nil
}

// timelineSQL returns the query of one timeline page of q, of at most
// limit entries: one range of the timeline index per customer, newest
// first, each entry with its activity's row (LEFT JOIN: NULL for events).
func timelineSQL(t tables, q readmodel.TimelineQuery, limit int) (string, []any, error) {
	// One customer (the usual case): its range of the order index, read
	// in order, so the LIMIT stops the scan (and the join) at the page.
	// Several (a merge's survivor and the absorbed): their ranges merged.
	where := []string{"t.customer_id = ?"}
	args := []any{""}
	if len(q.CustomerIDs) == 1 {
		args[0] = q.CustomerIDs[0]
	} else {
		ids, err := idList(q.CustomerIDs)
		if err != nil {
			return "", nil, err
		}
		where[0], args[0] = "t.customer_id IN (SELECT value FROM json_each(?))", ids
	}
	if len(q.Kinds) > 0 {
		kinds, err := idList(q.Kinds)
		if err != nil {
			return "", nil, err
		}
		where, args = append(where, "t.kind IN (SELECT value FROM json_each(?))"), append(args, kinds)
	}
	if a := q.After; a != nil {
		where, args = append(where, "(t.at, t.key) < (?, ?)"), append(args, nanos(a.At), a.Key)
	}
	return "SELECT t.customer_id, t.at, t.key, t.kind, t.data, " + nullableActivityColumns + " FROM " + t.timeline + " AS t LEFT JOIN " +
		t.activities + " AS a ON a.id = t.activity WHERE " + strings.Join(where, " AND ") +
		" ORDER BY t.at DESC, t.key DESC LIMIT ?", append(args, limit), nil
}

// Timeline returns one page of the customers' timeline (see
// readmodel.ActivityReader).
func (s *Store) Timeline(ctx context.Context, q readmodel.TimelineQuery) (readmodel.TimelinePage, error) {
	if s.closed.Load() {
		return readmodel.TimelinePage{}, s.fail("timeline", errClosed)
	}
	limit := q.Limit()
	query, args, err := timelineSQL(live, q, limit+1)
	if err != nil {
		return readmodel.TimelinePage{}, err
	}
	rows, err := s.query(ctx, nil, query, args...)
	if err != nil {
		return readmodel.TimelinePage{}, s.fail("timeline", err)
	}
	defer rows.Close()
	out := readmodel.TimelinePage{Items: []readmodel.TimelineItem{}}
	for rows.Next() {
		var (
			customerID, data string
			at               int64
			item             readmodel.TimelineItem
			ar               activityRow
		)
		if err := rows.Scan(append([]any{&customerID, &at, &item.Key, &item.Kind, &data}, ar.dest()...)...); err != nil {
			return readmodel.TimelinePage{}, s.fail("timeline", err)
		}
		item.At = fromNanos(sql.NullInt64{Int64: at, Valid: true})
		if strings.HasPrefix(item.Key, "a:") {
			a, err := ar.doc()
			if err != nil {
				return readmodel.TimelinePage{}, s.fail("timeline", err)
			}
			item.Activity = &a
		} else {
			var e timelineEventJSON
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				return readmodel.TimelinePage{}, s.fail("timeline", fmt.Errorf("entry %s: %w", item.Key, err))
			}
			item.Event = &readmodel.TimelineEvent{CustomerID: customerID, EventID: e.EventID, Kind: item.Kind, At: item.At,
				Version: e.Version, Actor: e.Actor, Changes: e.Changes, Data: e.Data, Seq: e.Seq}
		}
		out.Items = append(out.Items, item)
	}
	if err := rows.Err(); err != nil {
		return readmodel.TimelinePage{}, s.fail("timeline", err)
	}
	if len(out.Items) > limit {
		out.Items, out.More = out.Items[:limit], true
	}
	return out, nil
}
