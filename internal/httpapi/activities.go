package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"crm/internal/activity"
	"crm/internal/auth"
	"crm/internal/commands"
	"crm/internal/events"
	"crm/internal/fault"
	"crm/internal/readmodel"
)

// activityJSON is an activity as the REST contract shows it: unset
// optional fields are null; dueAt and done are a task's (null for the
// other types).
type activityJSON struct {
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
	CreatedAt  string   `json:"createdAt"`
	UpdatedBy  string   `json:"updatedBy"`
	UpdatedAt  string   `json:"updatedAt"`
}

// timeText is t in the REST time format, nil for the zero time.
func timeText(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(timeFormat)
	return &s
}

func activityToJSON(a readmodel.Activity) activityJSON {
	j := activityJSON{
		ActivityID: a.ID, CustomerID: a.CustomerID, Type: a.Type, OccurredAt: a.OccurredAt.UTC().Format(timeFormat),
		Subject: opt(a.Subject), Body: opt(a.Body), ContactIDs: a.ContactIDs, Outcome: opt(a.Outcome),
		CreatedBy: a.CreatedBy, CreatedAt: a.CreatedAt.UTC().Format(timeFormat), UpdatedBy: a.UpdatedBy,
		UpdatedAt: a.UpdatedAt.UTC().Format(timeFormat),
	}
	if j.ContactIDs == nil {
		j.ContactIDs = []string{}
	}
	if a.Type == activity.TypeTask {
		done := a.Done
		j.Done, j.DueAt = &done, timeText(a.DueAt)
	}
	return j
}

// activityReadOnly are the fields of an activity body the server sets.
var activityReadOnly = map[string]bool{"activityId": true, "customerId": true, "createdBy": true, "createdAt": true,
	"updatedBy": true, "updatedAt": true}

// decodeActivityInput parses an activity create or update body strictly.
func decodeActivityInput(body []byte, create bool) (activity.Input, error) {
	var in activity.Input
	obj, err := parseObject(body)
	if err != nil {
		return in, err
	}
	var errs []fault.FieldError
	fail := func(f, m string) { errs = append(errs, fault.FieldError{Field: f, Message: m}) }
	for _, kv := range obj {
		switch kv.key {
		case "type":
			in.Type = stringField(kv, fail)
		case "occurredAt":
			in.OccurredAt = stringField(kv, fail)
		case "subject":
			in.Subject = stringField(kv, fail)
		case "body":
			in.Body = stringField(kv, fail)
		case "outcome":
			in.Outcome = stringField(kv, fail)
		case "dueAt":
			in.DueAt = stringField(kv, fail)
		case "contactIds":
			in.ContactIDs = tagsField(kv, fail) // a list of strings, as tags are
		case "done":
			if isNull(kv.value) {
				in.Done = events.Cleared[bool]()
				continue
			}
			var b bool
			if err := json.Unmarshal(kv.value, &b); err != nil {
				fail(kv.path, "must be true or false")
				continue
			}
			in.Done = events.SetTo(b)
		default:
			if activityReadOnly[kv.key] {
				fail(kv.path, "is read-only")
			} else {
				fail(kv.path, "is not a known field")
			}
		}
	}
	if len(errs) > 0 {
		errs = append(errs, fault.Fields(activity.Validate(in, create))...)
		return in, fault.InvalidFields(errs...)
	}
	return in, nil
}

// activityID validates the :id path parameter of an activity route.
func activityID(c *gin.Context) (string, error) {
	id := c.Param("id")
	u, err := uuid.Parse(id)
	if err != nil || u.String() != strings.ToLower(id) || len(id) != 36 {
		return "", fault.InvalidField("activityId", "must be a UUID")
	}
	return u.String(), nil
}

// activityDone writes an activity command's response: its ETag, and for
// an append the stream sequence and the read-your-writes wait.
func (a *api) activityDone(c *gin.Context, status int, res commands.ActivityResult, body any) {
	c.Header("ETag", etag(res.Activity.Version))
	if res.Seq > 0 {
		a.awaitSeq(c, res.Seq)
	}
	c.JSON(status, body)
}

func (a *api) createActivity(c *gin.Context) {
	customerID, err := customerID(c)
	if err != nil {
		writeError(c, err)
		return
	}
	body, err := readBody(c)
	if err != nil {
		writeError(c, err)
		return
	}
	in, err := decodeActivityInput(body, true)
	if err != nil {
		writeError(c, err)
		return
	}
	req := a.request(c)
	if key, ok := c.Request.Header["Idempotency-Key"]; ok {
		if len(key) != 1 || !validIdempotencyKey(key[0]) {
			writeError(c, fault.InvalidField("Idempotency-Key", "must be given once, 1 to 255 printable ASCII characters"))
			return
		}
		// The same key and body for another customer is another request.
		req.IdempotencyKey, req.RequestHash = key[0], customerID+":"+requestHash(body)
	}
	start := time.Now()
	res, err := a.Commands.CreateActivity(c.Request.Context(), req, customerID, in)
	a.observe("activity_create", start, commands.Result{Seq: res.Seq, Replayed: res.Replayed}, err)
	if err != nil {
		writeError(c, err)
		return
	}
	if res.Replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	logFrom(c).Info("activity created", "activity_id", res.Activity.ID, "customer_id", customerID, "seq", res.Seq)
	c.Header("Location", Base+"/activities/"+res.Activity.ID)
	a.activityDone(c, http.StatusCreated, res, dataResponse{Data: activityToJSON(readmodel.FromActivity(res.Activity)),
		Message: "Activity recorded successfully"})
}

func (a *api) updateActivity(c *gin.Context) {
	id, err := activityID(c)
	var expected uint64
	if err == nil {
		expected, err = ifMatchNumber(c, activity.ErrPreconditionFailed)
	}
	if err != nil {
		writeError(c, err)
		return
	}
	body, err := readBody(c)
	if err != nil {
		writeError(c, err)
		return
	}
	in, err := decodeActivityInput(body, false)
	if err != nil {
		writeError(c, err)
		return
	}
	start := time.Now()
	res, err := a.Commands.UpdateActivity(c.Request.Context(), a.request(c), id, in, expected)
	a.observe("activity_update", start, commands.Result{Seq: res.Seq}, err)
	if err != nil {
		writeError(c, err)
		return
	}
	a.activityDone(c, http.StatusOK, res, dataResponse{Data: activityToJSON(readmodel.FromActivity(res.Activity)),
		Message: "Activity updated successfully"})
}

func (a *api) deleteActivity(c *gin.Context) {
	id, err := activityID(c)
	var expected uint64
	if err == nil {
		expected, err = ifMatchNumber(c, activity.ErrPreconditionFailed)
	}
	if err != nil {
		writeError(c, err)
		return
	}
	start := time.Now()
	res, err := a.Commands.DeleteActivity(c.Request.Context(), a.request(c), id, expected)
	a.observe("activity_delete", start, commands.Result{Seq: res.Seq}, err)
	if err != nil {
		writeError(c, err)
		return
	}
	const msg = "Activity deleted successfully"
	a.activityDone(c, http.StatusOK, res, dataResponse{Data: gin.H{"message": msg}, Message: msg})
}

func (a *api) getActivity(c *gin.Context) {
	id, err := activityID(c)
	if err == nil {
		err = noParameters(c)
	}
	if err == nil && a.Reader == nil {
		err = errNoReadModel
	}
	var act readmodel.Activity
	if err == nil {
		act, err = a.Reader.GetActivity(c.Request.Context(), id)
	}
	if err != nil {
		writeError(c, err)
		return
	}
	c.Header("ETag", etag(act.Version))
	c.JSON(http.StatusOK, dataResponse{Data: activityToJSON(act)})
}

// timelineEntryJSON is one entry of a timeline: an activity, or one of the
// customer's own events.
type timelineEntryJSON struct {
	Kind       string             `json:"kind"`
	At         string             `json:"at"`
	CustomerID string             `json:"customerId"`
	Activity   *activityJSON      `json:"activity,omitempty"`
	Event      *timelineEventBody `json:"event,omitempty"`
}

type timelineEventBody struct {
	EventID string          `json:"eventId"`
	Type    string          `json:"type"`
	Version uint64          `json:"version"`
	Actor   string          `json:"actor"`
	Changes json.RawMessage `json:"changes"`
	Data    json.RawMessage `json:"data,omitempty"`
}

type timelineResponse struct {
	Data []timelineEntryJSON `json:"data"`
	Meta struct {
		PerPage int    `json:"perPage"`
		Next    string `json:"next,omitempty"`
	} `json:"meta"`
}

// timelineKinds are the kinds ?types= accepts: the activity types and the
// customers' event kinds.
var timelineKinds = func() []string {
	out := slices.Clone(activity.Types)
	for _, k := range events.Kinds(events.Customers) {
		out = append(out, string(k))
	}
	return out
}()

// customerTimeline serves GET /customers/{id}/timeline: the customer's
// activities and its own events (and those of the customers merged into
// it), newest first, paged by cursor.
// maxTimelineCustomers bounds the customers one timeline shows: the
// customer and those merged into it, at any depth (a customer that had
// absorbed others, merged in turn).
const maxTimelineCustomers = 1000

// docLoader is the read model's load of documents by id, merged ones
// included (both stores have it: the projector's Writer.Load).
type docLoader interface {
	Load(ctx context.Context, ids []string) (map[string]readmodel.Customer, error)
}

// mergedInto returns cu's id and the ids of the customers merged into it,
// and into those, breadth first, at most maxTimelineCustomers.
func (a *api) mergedInto(ctx context.Context, cu readmodel.Customer) ([]string, error) {
	ids := []string{cu.ID}
	seen := map[string]bool{cu.ID: true}
	var frontier []string
	for _, ab := range cu.Absorbed {
		if !seen[ab.ID] && len(ids) < maxTimelineCustomers {
			seen[ab.ID] = true
			ids, frontier = append(ids, ab.ID), append(frontier, ab.ID)
		}
	}
	load, ok := a.Reader.(docLoader)
	for ok && len(frontier) > 0 && len(ids) < maxTimelineCustomers {
		docs, err := load.Load(ctx, frontier)
		if err != nil {
			return nil, err
		}
		var next []string
		for _, fid := range frontier {
			for _, ab := range docs[fid].Absorbed {
				if !seen[ab.ID] && len(ids) < maxTimelineCustomers {
					seen[ab.ID] = true
					ids, next = append(ids, ab.ID), append(next, ab.ID)
				}
			}
		}
		frontier = next
	}
	return ids, nil
}

func (a *api) customerTimeline(c *gin.Context) {
	id, err := customerID(c)
	if err != nil {
		writeError(c, err)
		return
	}
	q, after, err := parseTimelineQuery(c.Request.URL.Query())
	if err == nil && a.Reader == nil {
		err = errNoReadModel
	}
	var cu readmodel.Customer
	if err == nil {
		cu, err = a.Reader.Get(c.Request.Context(), id) // 404, or 308 to a merge's survivor
	}
	if err == nil && after != "" {
		var pos readmodel.TimelinePosition
		pos, err = a.decodeTimelineCursor(after, id, q)
		q.After = &pos
	}
	if err != nil {
		writeError(c, err)
		return
	}
	if q.CustomerIDs, err = a.mergedInto(c.Request.Context(), cu); err != nil {
		writeError(c, err)
		return
	}
	p, err := a.Reader.Timeline(c.Request.Context(), q)
	if err != nil {
		writeError(c, err)
		return
	}
	// The old and new values of the changes, and the events' data, are
	// the history's: for those with crm.audit. The others see what
	// happened, who did it and which fields it changed.
	audited := principal(c).Require(auth.PermAudit) == nil
	out := timelineResponse{Data: make([]timelineEntryJSON, 0, len(p.Items))}
	out.Meta.PerPage = q.Limit()
	for _, it := range p.Items {
		e := timelineEntryJSON{Kind: it.Kind, At: it.At.UTC().Format(timeFormat)}
		switch {
		case it.Activity != nil:
			j := activityToJSON(*it.Activity)
			e.Activity, e.CustomerID = &j, it.Activity.CustomerID
		case it.Event != nil:
			ev := it.Event
			typ := ""
			if d, ok := events.Lookup(events.Customers, events.Kind(ev.Kind)); ok {
				typ = d.Type
			}
			e.Event = &timelineEventBody{EventID: ev.EventID, Type: typ, Version: ev.Version, Actor: ev.Actor, Changes: ev.Changes, Data: ev.Data}
			if !audited {
				e.Event.Changes, e.Event.Data = fieldsOnly(ev.Changes), nil
			}
			e.CustomerID = ev.CustomerID
		}
		out.Data = append(out.Data, e)
	}
	if p.More && len(p.Items) > 0 {
		last := p.Items[len(p.Items)-1]
		out.Meta.Next = a.signCursor(pageCursor{V: 1, Bind: timelineBinding(id, q), T: last.At.UnixNano(), N: last.Key})
	}
	c.JSON(http.StatusOK, out)
}

// parseTimelineQuery reads ?perPage, ?types (comma-separated) and ?after.
func parseTimelineQuery(values url.Values) (readmodel.TimelineQuery, string, error) {
	q := readmodel.TimelineQuery{PerPage: readmodel.DefaultPerPage}
	var errs []fault.FieldError
	fail := func(f, m string) { errs = append(errs, fault.FieldError{Field: f, Message: m}) }
	after := ""
	for key, vs := range values {
		if len(vs) != 1 {
			fail(key, "must be given once")
			continue
		}
		v := vs[0]
		switch key {
		case "perPage":
			n, err := number(v)
			if err != nil || n < 1 || n > readmodel.MaxPerPage {
				fail(key, "must be an integer from 1 to "+strconv.Itoa(readmodel.MaxPerPage))
				continue
			}
			q.PerPage = n
		case "types":
			for _, t := range strings.Split(v, ",") {
				t = strings.TrimSpace(t)
				if !slices.Contains(timelineKinds, t) {
					fail(key, "must list, comma-separated, some of "+strings.Join(timelineKinds, ", "))
					break
				}
				if !slices.Contains(q.Kinds, t) {
					q.Kinds = append(q.Kinds, t)
				}
			}
		case "after":
			after = v
		default:
			fail(key, "is not a known parameter")
		}
	}
	if len(errs) > 0 {
		return q, "", fault.InvalidFields(errs...)
	}
	return q, after, nil
}

// timelineBinding names what a timeline cursor is valid for: the customer
// and the kinds.
func timelineBinding(id string, q readmodel.TimelineQuery) string {
	kinds := slices.Clone(q.Kinds)
	slices.Sort(kinds)
	return bindingOf("timeline", id, strings.Join(kinds, ","))
}

func (a *api) decodeTimelineCursor(s, id string, q readmodel.TimelineQuery) (readmodel.TimelinePosition, error) {
	c, why := a.openCursor(s, timelineBinding(id, q))
	if why != "" {
		return readmodel.TimelinePosition{}, fault.InvalidField("after", why)
	}
	return readmodel.TimelinePosition{At: time.Unix(0, c.T).UTC(), Key: c.N}, nil
}

// fieldsOnly returns the changes of a timeline event with their fields
// and without their values.
func fieldsOnly(changes json.RawMessage) json.RawMessage {
	var all []struct {
		Field string `json:"field"`
	}
	if json.Unmarshal(changes, &all) != nil {
		return json.RawMessage("[]")
	}
	b, _ := json.Marshal(all)
	if all == nil {
		b = []byte("[]")
	}
	return b
}
