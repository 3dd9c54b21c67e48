package app_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"crm/internal/apptest"
)

type activityBody struct {
	ActivityID string   `json:"activityId"`
	CustomerID string   `json:"customerId"`
	Type       string   `json:"type"`
	OccurredAt string   `json:"occurredAt"`
	Subject    *string  `json:"subject"`
	Body       *string  `json:"body"`
	ContactIDs []string `json:"contactIds"`
	Outcome    *string  `json:"outcome"`
	DueAt      *string  `json:"dueAt"`
	Done       *bool    `json:"done"`
	CreatedBy  string   `json:"createdBy"`
	UpdatedBy  string   `json:"updatedBy"`
}

type timelineBody struct {
	Data []struct {
		Kind       string        `json:"kind"`
		At         string        `json:"at"`
		CustomerID string        `json:"customerId"`
		Activity   *activityBody `json:"activity"`
		Event      *struct {
			EventID string `json:"eventId"`
			Type    string `json:"type"`
			Version uint64 `json:"version"`
			Changes []struct {
				Field    string
				Old, New any
			} `json:"changes"`
			Data map[string]any `json:"data"`
		} `json:"event"`
	} `json:"data"`
	Meta struct {
		PerPage int    `json:"perPage"`
		Next    string `json:"next"`
	} `json:"meta"`
}

func createActivity(t *testing.T, e *apptest.Env, customerID, body string) activityBody {
	t.Helper()
	r := e.Do("POST", "/api/v1/crm/customers/"+customerID+"/activities", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create activity: %d %s", r.Status, r.Body)
	}
	var env struct{ Data activityBody }
	r.JSON(t, &env)
	return env.Data
}

// TestActivities: an activity's life over HTTP: recorded for a customer
// (in the past, naming a contact), read, changed by merge patch (a call
// becoming a task takes dueAt and done), refused on a stale If-Match,
// deleted; each command is one event on crm.activities.<id>.<kind>.
func TestActivities(t *testing.T) {
	e := apptest.StartEmbedded(t)
	cu := create(t, e, `{"name":"Acme"}`)
	k := createContact(t, e, `{"name":"Ann"}`)
	n := len(e.StreamMessages())
	r := e.Do("POST", "/api/v1/crm/customers/"+cu.CustomerID+"/activities",
		`{"type":"call","occurredAt":"2026-11-30T09:15:00+01:00","subject":"Renewal","body":"Talked about\nthe renewal.","contactIds":["`+k.ContactID+`"],"outcome":"interested"}`)
	if r.Status != http.StatusCreated || r.Header.Get("ETag") != `"1"` || r.Header.Get("X-Read-Model") != "current" {
		t.Fatalf("create: %d %v %s", r.Status, r.Header, r.Body)
	}
	var created struct{ Data activityBody }
	r.JSON(t, &created)
	a := created.Data
	if a.Type != "call" || a.OccurredAt != "2026-11-30T08:15:00.000Z" || *a.Subject != "Renewal" || !slices.Equal(a.ContactIDs, []string{k.ContactID}) ||
		a.DueAt != nil || a.Done != nil || a.CustomerID != cu.CustomerID || r.Header.Get("Location") != "/api/v1/crm/activities/"+a.ActivityID {
		t.Fatalf("created: %v %s", r.Header, r.Body)
	}
	if s := subjectsSince(e, n); !slices.Equal(s, []string{"crm.activities." + a.ActivityID + ".created"}) {
		t.Fatalf("create events %v", s)
	}
	one := "/api/v1/crm/activities/" + a.ActivityID
	var got struct{ Data activityBody }
	if r := e.Do("GET", one, nil); r.Status != http.StatusOK || r.Header.Get("ETag") != `"1"` {
		t.Fatalf("get: %d %s", r.Status, r.Body)
	} else if r.JSON(t, &got); !equalJSON(t, got.Data, a) {
		t.Fatalf("get %+v, created %+v", got.Data, a)
	}
	r = e.Do("PATCH", one, `{"type":"task","dueAt":"2026-12-10T12:00:00Z","done":false,"outcome":null}`, "If-Match", `"1"`)
	if r.JSON(t, &got); r.Status != http.StatusOK || got.Data.Type != "task" || *got.Data.DueAt != "2026-12-10T12:00:00.000Z" ||
		got.Data.Done == nil || *got.Data.Done || got.Data.Outcome != nil || r.Header.Get("ETag") != `"2"` {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	if r := e.Do("PATCH", one, `{"done":true}`, "If-Match", `"1"`); r.Status != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match: %d %s", r.Status, r.Body)
	}
	// Back to a note: dueAt and done go.
	r = e.Do("PATCH", one, `{"type":"note"}`)
	if r.JSON(t, &got); r.Status != http.StatusOK || got.Data.DueAt != nil || got.Data.Done != nil {
		t.Fatalf("to a note: %d %s", r.Status, r.Body)
	}
	if r := e.Do("DELETE", one, nil); r.Status != http.StatusOK || r.Header.Get("ETag") != `"4"` {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if r := e.Do(m, one, nil); r.Status != http.StatusNotFound {
			t.Fatalf("%s of a deleted activity: %d", m, r.Status)
		}
	}
}

// TestActivityBadRequests: each bad input is its exact status with the
// field named, and appends nothing.
func TestActivityBadRequests(t *testing.T) {
	e := apptest.StartEmbedded(t)
	cu := create(t, e, `{"name":"Acme"}`)
	gone := create(t, e, `{"name":"Gone"}`)
	e.Do("DELETE", "/api/v1/crm/customers/"+gone.CustomerID, nil)
	k := createContact(t, e, `{"name":"Ann"}`)
	dk := createContact(t, e, `{"name":"Deleted"}`)
	e.Do("DELETE", "/api/v1/crm/contacts/"+dk.ContactID, nil)
	a := createActivity(t, e, cu.CustomerID, `{"type":"note","occurredAt":"2026-12-01T10:00:00Z"}`)
	post := "/api/v1/crm/customers/" + cu.CustomerID + "/activities"
	one := "/api/v1/crm/activities/" + a.ActivityID
	const unknown = "00000000-0000-4000-8000-000000000000"
	ok := `"type":"call","occurredAt":"2026-12-01T10:00:00Z"`
	viewer := "Bearer " + e.TokenFor("viewer", "nobody")
	before := len(e.StreamMessages())
	for _, tc := range []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		field                    string
	}{
		{"unknown customer", "POST", "/api/v1/crm/customers/" + unknown + "/activities", "{" + ok + "}", nil, 404, ""},
		{"deleted customer", "POST", "/api/v1/crm/customers/" + gone.CustomerID + "/activities", "{" + ok + "}", nil, 404, ""},
		{"bad customer id", "POST", "/api/v1/crm/customers/C001/activities", "{" + ok + "}", nil, 400, "customer_id"},
		{"no type", "POST", post, `{"occurredAt":"2026-12-01T10:00:00Z"}`, nil, 400, "type"},
		{"bad type", "POST", post, `{"type":"fax","occurredAt":"2026-12-01T10:00:00Z"}`, nil, 400, "type"},
		{"no occurredAt", "POST", post, `{"type":"call"}`, nil, 400, "occurredAt"},
		{"occurredAt not RFC 3339", "POST", post, `{"type":"call","occurredAt":"2026-12-01 10:00"}`, nil, 400, "occurredAt"},
		{"occurredAt a number", "POST", post, `{"type":"call","occurredAt":1764583200}`, nil, 400, "occurredAt"},
		{"body over 64 KiB", "POST", post, `{` + ok + `,"body":"` + strings.Repeat("b", 64<<10+1) + `"}`, nil, 400, "body"},
		{"unknown contact", "POST", post, `{` + ok + `,"contactIds":["` + unknown + `"]}`, nil, 400, "contactIds[0]"},
		{"deleted contact", "POST", post, `{` + ok + `,"contactIds":["` + k.ContactID + `","` + k.ContactID + `","` + dk.ContactID + `"]}`, nil, 400, "contactIds[2]"},
		{"contact id not a UUID", "POST", post, `{` + ok + `,"contactIds":["ann"]}`, nil, 400, "contactIds[0]"},
		{"dueAt on a call", "POST", post, `{` + ok + `,"dueAt":"2026-12-02T10:00:00Z"}`, nil, 400, "dueAt"},
		{"done on a call", "POST", post, `{` + ok + `,"done":true}`, nil, 400, "done"},
		{"done not a bool", "POST", post, `{"type":"task","occurredAt":"2026-12-01T10:00:00Z","done":"yes"}`, nil, 400, "done"},
		{"long subject", "POST", post, `{` + ok + `,"subject":"` + strings.Repeat("s", 201) + `"}`, nil, 400, "subject"},
		{"unknown field", "POST", post, `{` + ok + `,"priority":1}`, nil, 400, "priority"},
		{"read-only field", "POST", post, `{` + ok + `,"customerId":"` + cu.CustomerID + `"}`, nil, 400, "customerId"},
		{"no crm.edit", "POST", post, "{" + ok + "}", []string{"Authorization", viewer}, 403, ""},
		{"patch clears type", "PATCH", one, `{"type":null}`, nil, 400, "type"},
		{"patch dueAt on a note", "PATCH", one, `{"dueAt":"2026-12-02T10:00:00Z"}`, nil, 400, "dueAt"},
		{"patch bad id", "PATCH", "/api/v1/crm/activities/x", `{"subject":"s"}`, nil, 400, "activityId"},
		{"patch unknown", "PATCH", "/api/v1/crm/activities/" + unknown, `{"subject":"s"}`, nil, 404, ""},
		{"patch no crm.edit", "PATCH", one, `{"subject":"s"}`, []string{"Authorization", viewer}, 403, ""},
		{"delete unknown", "DELETE", "/api/v1/crm/activities/" + unknown, "", nil, 404, ""},
		{"get parameter", "GET", one + "?x=1", "", nil, 400, "x"},
		{"timeline unknown customer", "GET", "/api/v1/crm/customers/" + unknown + "/timeline", "", nil, 404, ""},
		{"timeline bad type", "GET", "/api/v1/crm/customers/" + cu.CustomerID + "/timeline?types=call,fax", "", nil, 400, "types"},
		{"timeline bad perPage", "GET", "/api/v1/crm/customers/" + cu.CustomerID + "/timeline?perPage=0", "", nil, 400, "perPage"},
		{"timeline forged cursor", "GET", "/api/v1/crm/customers/" + cu.CustomerID + "/timeline?after=x.y", "", nil, 400, "after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := e.Do(tc.method, tc.path, body, tc.headers...)
			if r.Status != tc.status {
				t.Fatalf("%s %s: %d, want %d: %.300s", tc.method, tc.path, r.Status, tc.status, r.Body)
			}
			if fields := problemFields(t, r); tc.field != "" && !slices.Contains(fields, tc.field) {
				t.Fatalf("problem names %v, not %q: %.300s", fields, tc.field, r.Body)
			}
		})
	}
	if s := subjectsSince(e, before); len(s) != 0 {
		t.Fatalf("bad requests appended %v", s)
	}
}

// TestTimeline: a customer's timeline merges its activities (at their
// occurredAt, which may be in the past) with its own events, newest first,
// filtered by type, paged by cursor without repeats or gaps, with
// read-your-writes; a merge brings the absorbed customer's activities
// along, an unmerge takes them back.
func TestTimeline(t *testing.T) {
	e := apptest.StartEmbedded(t)
	cu := create(t, e, `{"name":"Acme","status":"lead"}`)
	tl := "/api/v1/crm/customers/" + cu.CustomerID + "/timeline"
	past := time.Now().Add(-48 * time.Hour).UTC()
	call := createActivity(t, e, cu.CustomerID, `{"type":"call","occurredAt":"`+past.Format(time.RFC3339)+`","subject":"First call"}`)
	if r := e.Do("PATCH", "/api/v1/crm/customers/"+cu.CustomerID, `{"status":"active"}`); r.Status != http.StatusOK {
		t.Fatal(r.Status)
	}
	k := createContact(t, e, `{"name":"Ann"}`)
	if r := e.Do("PUT", "/api/v1/crm/customers/"+cu.CustomerID+"/contacts/"+k.ContactID, `{"role":"billing"}`); r.Status != http.StatusCreated {
		t.Fatal(r.Status)
	}
	note := createActivity(t, e, cu.CustomerID, `{"type":"note","occurredAt":"`+time.Now().UTC().Format(time.RFC3339Nano)+`","body":"Latest"}`)

	var page timelineBody
	if r := e.Do("GET", tl, nil); r.Status != http.StatusOK {
		t.Fatalf("timeline: %d %s", r.Status, r.Body)
	} else {
		r.JSON(t, &page)
	}
	var kinds []string
	for _, it := range page.Data {
		kinds = append(kinds, it.Kind)
	}
	// Newest first: the note, the link, the update, the creation, then
	// the call of two days ago.
	if want := []string{"note", "contactlinked", "updated", "created", "call"}; !slices.Equal(kinds, want) {
		t.Fatalf("timeline kinds %v, want %v", kinds, want)
	}
	if page.Data[0].Activity == nil || page.Data[0].Activity.ActivityID != note.ActivityID || page.Data[4].Activity.ActivityID != call.ActivityID {
		t.Fatalf("activity entries: %+v", page.Data)
	}
	upd := page.Data[2].Event
	if upd == nil || upd.Type != "com.a64core.crm.customer.updated.v1" || upd.Version != 2 || len(upd.Changes) != 1 ||
		upd.Changes[0].Field != "status" || upd.Changes[0].Old != "lead" || upd.Changes[0].New != "active" {
		t.Fatalf("update entry: %+v", upd)
	}
	if l := page.Data[1].Event; l == nil || l.Data["contactId"] != k.ContactID || l.Data["role"] != "billing" {
		t.Fatalf("link entry: %+v", page.Data[1].Event)
	}
	// Without crm.audit: the same entries, the changed fields without
	// their old and new values, no event data.
	var plain timelineBody
	e.Do("GET", tl, nil, "Authorization", "Bearer "+e.TokenFor("a-user", "user")).JSON(t, &plain)
	if len(plain.Data) != 5 || plain.Data[2].Event == nil || len(plain.Data[2].Event.Changes) != 1 ||
		plain.Data[2].Event.Changes[0].Field != "status" || plain.Data[2].Event.Changes[0].New != nil || plain.Data[1].Event.Data != nil {
		t.Fatalf("a user's timeline: %+v", plain.Data)
	}
	// Filtered by type.
	e.Do("GET", tl+"?types=call,note", nil).JSON(t, &page)
	if len(page.Data) != 2 || page.Data[0].Kind != "note" || page.Data[1].Kind != "call" {
		t.Fatalf("types=call,note: %+v", page.Data)
	}
	// Pages of 2: the same five, in order, then no next.
	var paged []string
	next := ""
	for range 5 {
		q := tl + "?perPage=2"
		if next != "" {
			q += "&after=" + url.QueryEscape(next)
		}
		var p timelineBody
		if r := e.Do("GET", q, nil); r.Status != http.StatusOK {
			t.Fatalf("page: %d %s", r.Status, r.Body)
		} else {
			r.JSON(t, &p)
		}
		for _, it := range p.Data {
			paged = append(paged, it.Kind)
		}
		if next = p.Meta.Next; next == "" {
			break
		}
	}
	if !slices.Equal(paged, kinds) {
		t.Fatalf("paged %v, want %v", paged, kinds)
	}
	// Moving the call to now puts it first; deleting the note takes it off.
	if r := e.Do("PATCH", "/api/v1/crm/activities/"+call.ActivityID, `{"occurredAt":"`+time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)+`"}`); r.Status != http.StatusOK {
		t.Fatalf("move call: %d %s", r.Status, r.Body)
	}
	e.Do("DELETE", "/api/v1/crm/activities/"+note.ActivityID, nil)
	e.Do("GET", tl+"?types=call,note", nil).JSON(t, &page)
	if len(page.Data) != 1 || page.Data[0].Activity.ActivityID != call.ActivityID {
		t.Fatalf("after moving and deleting: %+v", page.Data)
	}

	// A merge shows the absorbed customer's activities on the survivor's
	// timeline; an unmerge takes them back.
	other := create(t, e, `{"name":"Acme Duplicate"}`)
	meeting := createActivity(t, e, other.CustomerID, `{"type":"meeting","occurredAt":"2026-01-01T09:00:00Z"}`)
	if r := e.Do("POST", "/api/v1/crm/customers/"+cu.CustomerID+"/merge", map[string]any{"customerIds": []string{other.CustomerID}}); r.Status != http.StatusOK {
		t.Fatalf("merge: %d %s", r.Status, r.Body)
	}
	has := func(id string) bool {
		var p timelineBody
		e.Do("GET", tl+"?types=meeting&perPage=100", nil).JSON(t, &p)
		for _, it := range p.Data {
			if it.Activity != nil && it.Activity.ActivityID == id {
				return true
			}
		}
		return false
	}
	if !has(meeting.ActivityID) {
		t.Fatal("the absorbed customer's meeting is not on the survivor's timeline")
	}
	if r := e.Do("POST", "/api/v1/crm/customers/"+cu.CustomerID+"/unmerge", map[string]string{"customerId": other.CustomerID}); r.Status != http.StatusOK {
		t.Fatalf("unmerge: %d %s", r.Status, r.Body)
	}
	if has(meeting.ActivityID) {
		t.Fatal("the unmerged customer's meeting is still on the survivor's timeline")
	}
	var back timelineBody
	e.Do("GET", "/api/v1/crm/customers/"+other.CustomerID+"/timeline?types=meeting", nil).JSON(t, &back)
	if len(back.Data) != 1 {
		t.Fatalf("the unmerged customer's own timeline: %+v", back.Data)
	}

	// Merged in turn: the survivor of a merge absorbed by another brings
	// its absorbed customers' entries along, at any depth.
	if r := e.Do("POST", "/api/v1/crm/customers/"+cu.CustomerID+"/merge", map[string]any{"customerIds": []string{other.CustomerID}}); r.Status != http.StatusOK {
		t.Fatalf("merge again: %d %s", r.Status, r.Body)
	}
	top := create(t, e, `{"name":"Acme Holding"}`)
	if r := e.Do("POST", "/api/v1/crm/customers/"+top.CustomerID+"/merge", map[string]any{"customerIds": []string{cu.CustomerID}}); r.Status != http.StatusOK {
		t.Fatalf("merge into the holding: %d %s", r.Status, r.Body)
	}
	var deep timelineBody
	e.Do("GET", "/api/v1/crm/customers/"+top.CustomerID+"/timeline?types=meeting&perPage=100", nil).JSON(t, &deep)
	found := false
	for _, it := range deep.Data {
		found = found || it.Activity != nil && it.Activity.ActivityID == meeting.ActivityID && it.CustomerID == other.CustomerID
	}
	if !found {
		t.Fatalf("the meeting of a customer merged into one merged in turn is not on the top survivor's timeline: %+v", deep.Data)
	}
}
