package sqlite

import (
	"strings"
	"testing"
	"time"

	"crm/internal/readmodel"
)

// TestContactQueryPlans: a contact page walks an index in its order (the
// contacts' own, or the tag rows' with a tag) and starts at the cursor
// through it, never sorting the matches; the email filter reads its few
// matches through the email index; the total is one row of the counts.
func TestContactQueryPlans(t *testing.T) {
	s := openTemp(t)
	plan := func(query string, args ...any) string {
		t.Helper()
		rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatalf("explain %s: %v", query, err)
		}
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, detail)
		}
		return strings.Join(lines, "; ")
	}
	after := &readmodel.ContactPosition{Name: "m", Time: time.Unix(1e9, 0), ID: "x"}
	for _, sort := range readmodel.ContactSorts {
		for _, desc := range []bool{false, true} {
			for _, f := range []readmodel.ContactQuery{{}, {Tag: "vip"}, {Email: "a@b.c"}, {Tag: "vip", Email: "a@b.c"}, {After: after}, {Tag: "vip", After: after}} {
				q := f
				q.Sort, q.Desc = sort, desc
				query, args, err := contactListSQL(live, q, 21)
				if err != nil {
					t.Fatal(err)
				}
				p := plan(query, args...)
				t.Logf("%+v: %s", q, p)
				switch {
				case q.Email != "":
					if !strings.Contains(p, "contacts_email_key") {
						t.Errorf("%+v: not through the email index: %s", q, p)
					}
				case strings.Contains(p, "TEMP B-TREE") || !strings.Contains(p, "INDEX"):
					t.Errorf("%+v: sorts or scans: %s", q, p)
				case q.After != nil && !strings.Contains(p, ">") && !strings.Contains(p, "<"):
					t.Errorf("%+v: does not start at the cursor through the index: %s", q, p)
				}
				count, cargs := contactCountSQL(live, q)
				if p := plan(count, cargs...); q.Email == "" && (strings.Contains(p, "SCAN contact") || strings.Contains(p, "SCAN k") || strings.Contains(p, "SCAN t") || !strings.Contains(p, "contact_counts")) {
					t.Errorf("count %+v: %s", q, p)
				}
			}
		}
	}
	if _, _, err := contactListSQL(live, readmodel.ContactQuery{Sort: readmodel.SortCustomerCode}, 1); err == nil {
		t.Error("a customer sort accepted for contacts")
	}
}

// TestTimelineQueryPlan: one customer's timeline page walks the order
// index backwards and stops at the page: no sort of the customer's
// entries, whatever their number.
func TestTimelineQueryPlan(t *testing.T) {
	s := openTemp(t)
	for _, q := range []readmodel.TimelineQuery{
		{CustomerIDs: []string{"c"}},
		{CustomerIDs: []string{"c"}, After: &readmodel.TimelinePosition{At: time.Unix(1e9, 0), Key: "e:x"}},
		{CustomerIDs: []string{"c"}, Kinds: []string{"call", "updated"}},
	} {
		query, args, err := timelineSQL(live, q, 21)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, detail)
		}
		rows.Close()
		p := strings.Join(lines, "; ")
		t.Logf("%+v: %s", q, p)
		if strings.Contains(p, "TEMP B-TREE") || !strings.Contains(p, "timeline_order") {
			t.Errorf("%+v: plan %s", q, p)
		}
	}
}
