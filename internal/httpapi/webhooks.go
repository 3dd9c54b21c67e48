package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"crm/internal/fault"
	"crm/internal/webhooks"
)

// Webhooks keeps the webhook subscriptions (implemented by
// webhooks.Manager).
type Webhooks interface {
	Create(ctx context.Context, in webhooks.Input, actor string) (webhooks.Subscription, uint64, string, error)
	Get(ctx context.Context, id string) (webhooks.Subscription, uint64, error)
	List(ctx context.Context) ([]webhooks.Subscription, error)
	Update(ctx context.Context, id string, in webhooks.Input, ifRev uint64, actor string) (webhooks.Subscription, uint64, error)
	Delete(ctx context.Context, id string, ifRev uint64) error
	Rotate(ctx context.Context, id string, grace time.Duration, ifRev uint64, actor string) (webhooks.Subscription, uint64, string, error)
	Replay(ctx context.Context, id string, from uint64, actor string) (webhooks.Subscription, uint64, error)
	SequenceAt(ctx context.Context, t time.Time) (uint64, error)
	Ping(ctx context.Context, id string) (webhooks.Delivery, error)
	Status(ctx context.Context, id string) (webhooks.Status, error)
	Deliveries(ctx context.Context, id string, after string, since time.Time, limit int) ([]webhooks.Delivery, string, bool, error)
}

var errWebhooksOff = fault.New(fault.Unavailable, "webhooks are not available in this process")

type secretJSON struct {
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt"`
}

// webhookJSON is a subscription as the API shows it: never its secrets'
// keys (Secret carries a new one, once, on create and rotate).
type webhookJSON struct {
	ID             string           `json:"id"`
	URL            string           `json:"url"`
	Types          []string         `json:"types"`
	CustomerID     *string          `json:"customerId"`
	Description    *string          `json:"description"`
	Enabled        bool             `json:"enabled"`
	Concurrency    int              `json:"concurrency"`
	DisabledReason *string          `json:"disabledReason"`
	DisabledAt     *time.Time       `json:"disabledAt"`
	Secrets        []secretJSON     `json:"secrets"`
	StartSequence  uint64           `json:"startSequence"`
	CreatedAt      time.Time        `json:"createdAt"`
	CreatedBy      string           `json:"createdBy"`
	UpdatedAt      time.Time        `json:"updatedAt"`
	UpdatedBy      string           `json:"updatedBy"`
	ReplayedAt     *time.Time       `json:"replayedAt"`
	ReplayedBy     *string          `json:"replayedBy"`
	Secret         string           `json:"secret,omitempty"`
	Status         *webhooks.Status `json:"status,omitempty"`
}

func toWebhookJSON(s webhooks.Subscription) webhookJSON {
	v := webhookJSON{ID: s.ID, URL: s.URL, Types: s.Types, CustomerID: opt(s.CustomerID), Description: opt(s.Description),
		Enabled: s.Enabled, Concurrency: s.Concurrency, DisabledReason: opt(s.DisabledReason), DisabledAt: s.DisabledAt,
		StartSequence: s.StartSequence, CreatedAt: s.CreatedAt, CreatedBy: s.CreatedBy, UpdatedAt: s.UpdatedAt,
		UpdatedBy: s.UpdatedBy, ReplayedAt: s.ReplayedAt, ReplayedBy: opt(s.ReplayedBy), Secrets: []secretJSON{}}
	if v.Types == nil {
		v.Types = []string{}
	}
	for _, sec := range s.Secrets {
		v.Secrets = append(v.Secrets, secretJSON{CreatedAt: sec.CreatedAt, ExpiresAt: sec.ExpiresAt})
	}
	return v
}

// decodeWebhook parses a create body or a merge patch strictly, naming
// every bad member.
func decodeWebhook(body []byte, create bool) (webhooks.Input, error) {
	var in webhooks.Input
	obj, err := parseObject(body)
	if err != nil {
		return in, err
	}
	var errs []fault.FieldError
	fail := func(f, m string) { errs = append(errs, fault.FieldError{Field: f, Message: m}) }
	str := func(kv keyValue, clear *bool) *string {
		if isNull(kv.value) && clear != nil && !create {
			*clear = true
			return nil
		}
		var s string
		if err := json.Unmarshal(kv.value, &s); err != nil || isNull(kv.value) {
			fail(kv.path, "must be a string")
			return nil
		}
		return &s
	}
	for _, kv := range obj {
		switch kv.key {
		case "url":
			in.URL = str(kv, nil)
		case "description":
			in.Description = str(kv, &in.ClearDescription)
		case "customerId":
			in.CustomerID = str(kv, &in.ClearCustomer)
		case "types":
			if isNull(kv.value) && !create {
				in.ClearTypes = true
				continue
			}
			var types []string
			if err := json.Unmarshal(kv.value, &types); err != nil || types == nil {
				fail(kv.path, "must be an array of event types or patterns (* matches any characters); [] = every event")
				continue
			}
			if len(types) == 0 {
				in.ClearTypes = true
				continue
			}
			in.Types = &types
		case "enabled":
			var b bool
			if err := json.Unmarshal(kv.value, &b); err != nil || isNull(kv.value) {
				fail(kv.path, "must be true or false")
				continue
			}
			in.Enabled = &b
		case "concurrency":
			n, err := strconv.Atoi(string(kv.value))
			if err != nil {
				fail(kv.path, "must be an integer from 1 to 64")
				continue
			}
			in.Concurrency = &n
		default:
			fail(kv.path, "is not a known field (allowed: url, types, customerId, description, enabled, concurrency)")
		}
	}
	if len(errs) > 0 {
		return in, fault.InvalidFields(errs...)
	}
	return in, nil
}

// webhookID validates the :id path parameter.
func (a *api) webhookID(c *gin.Context) (string, bool) {
	if a.Webhooks == nil {
		writeError(c, errWebhooksOff)
		return "", false
	}
	if !canonicalUUID(c.Param("id")) {
		writeError(c, fault.InvalidField("webhook_id", "must be a UUID"))
		return "", false
	}
	return c.Param("id"), true
}

func revTag(rev uint64) string { return `"` + strconv.FormatUint(rev, 10) + `"` }

// webhookTarget reads a command on one subscription's request: no query
// parameters, the path's id, If-Match as its revision (absent or * = any).
// It writes the error and reports false when one is bad.
func (a *api) webhookTarget(c *gin.Context) (id string, ifRev uint64, ok bool) {
	if !noParams(c) {
		return "", 0, false
	}
	if id, ok = a.webhookID(c); !ok {
		return "", 0, false
	}
	ifRev, err := ifMatchNumber(c, webhooks.ErrChanged)
	if err != nil {
		writeError(c, err)
		return "", 0, false
	}
	return id, ifRev, true
}

func (a *api) createWebhook(c *gin.Context) {
	if !noParams(c) {
		return
	}
	if a.Webhooks == nil {
		writeError(c, errWebhooksOff)
		return
	}
	body, err := readBody(c)
	if err != nil {
		writeError(c, err)
		return
	}
	in, err := decodeWebhook(body, true)
	if err != nil {
		writeError(c, err)
		return
	}
	s, rev, secret, err := a.Webhooks.Create(c.Request.Context(), in, principal(c).Subject)
	if err != nil {
		writeError(c, err)
		return
	}
	logFrom(c).Info("webhook subscription created", "webhook_id", s.ID, "start_sequence", s.StartSequence)
	v := toWebhookJSON(s)
	v.Secret = secret
	c.Header("Location", Base+"/webhooks/"+s.ID)
	c.Header("ETag", revTag(rev))
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, dataResponse{Data: v, Message: "Webhook subscription created: keep the secret, it is shown only now"})
}

func (a *api) listWebhooks(c *gin.Context) {
	if !noParams(c) {
		return
	}
	if a.Webhooks == nil {
		writeError(c, errWebhooksOff)
		return
	}
	subs, err := a.Webhooks.List(c.Request.Context())
	if err != nil {
		writeError(c, err)
		return
	}
	out := make([]webhookJSON, len(subs))
	for i, s := range subs {
		out[i] = toWebhookJSON(s)
	}
	c.JSON(http.StatusOK, dataResponse{Data: out})
}

func (a *api) getWebhook(c *gin.Context) {
	if !noParams(c) {
		return
	}
	id, ok := a.webhookID(c)
	if !ok {
		return
	}
	s, rev, err := a.Webhooks.Get(c.Request.Context(), id)
	if err != nil {
		writeError(c, err)
		return
	}
	st, err := a.Webhooks.Status(c.Request.Context(), id)
	if err != nil {
		writeError(c, err)
		return
	}
	v := toWebhookJSON(s)
	v.Status = &st
	c.Header("ETag", revTag(rev))
	c.JSON(http.StatusOK, dataResponse{Data: v})
}

func (a *api) updateWebhook(c *gin.Context) {
	id, ifRev, ok := a.webhookTarget(c)
	if !ok {
		return
	}
	body, err := readBody(c)
	if err != nil {
		writeError(c, err)
		return
	}
	in, err := decodeWebhook(body, false)
	if err != nil {
		writeError(c, err)
		return
	}
	s, rev, err := a.Webhooks.Update(c.Request.Context(), id, in, ifRev, principal(c).Subject)
	if err != nil {
		writeError(c, err)
		return
	}
	c.Header("ETag", revTag(rev))
	c.JSON(http.StatusOK, dataResponse{Data: toWebhookJSON(s), Message: "Webhook subscription updated"})
}

func (a *api) deleteWebhook(c *gin.Context) {
	id, ifRev, ok := a.webhookTarget(c)
	if !ok {
		return
	}
	if err := a.Webhooks.Delete(c.Request.Context(), id, ifRev); err != nil {
		writeError(c, err)
		return
	}
	logFrom(c).Info("webhook subscription deleted", "webhook_id", id)
	c.JSON(http.StatusOK, dataResponse{Data: gin.H{"id": id}, Message: "Webhook subscription deleted"})
}

// optionalBody reads a JSON body that may be absent (no Content-Type
// and no bytes): its members, or none.
func optionalBody(c *gin.Context) ([]keyValue, error) {
	if c.Request.ContentLength == 0 && c.GetHeader("Content-Type") == "" {
		return nil, nil
	}
	body, err := readBody(c)
	if err != nil {
		return nil, err
	}
	return parseObject(body)
}

func (a *api) rotateWebhookSecret(c *gin.Context) {
	id, ifRev, ok := a.webhookTarget(c)
	if !ok {
		return
	}
	obj, err := optionalBody(c)
	if err != nil {
		writeError(c, err)
		return
	}
	grace := webhooks.DefaultGrace
	for _, kv := range obj {
		if kv.key != "gracePeriodSeconds" {
			writeError(c, fault.InvalidField(kv.path, "is not a known field (allowed: gracePeriodSeconds)"))
			return
		}
		n, err := strconv.ParseInt(string(kv.value), 10, 64)
		if err != nil || n < 0 || n > int64(webhooks.MaxSecretGrace/time.Second) {
			writeError(c, fault.InvalidField(kv.path, "must be a number of seconds from 0 to 604800 (7 days)"))
			return
		}
		grace = time.Duration(n) * time.Second
	}
	s, rev, secret, err := a.Webhooks.Rotate(c.Request.Context(), id, grace, ifRev, principal(c).Subject)
	if err != nil {
		writeError(c, err)
		return
	}
	logFrom(c).Info("webhook secret rotated", "webhook_id", id, "grace_seconds", grace.Seconds())
	v := toWebhookJSON(s)
	v.Secret = secret
	c.Header("ETag", revTag(rev))
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, dataResponse{Data: v, Message: "Secret rotated: the previous one keeps signing for the grace period"})
}

func (a *api) replayWebhook(c *gin.Context) {
	if !noParams(c) {
		return
	}
	id, ok := a.webhookID(c)
	if !ok {
		return
	}
	obj, err := optionalBody(c)
	if err != nil {
		writeError(c, err)
		return
	}
	var from uint64
	given := false
	for _, kv := range obj {
		if kv.key != "after" {
			writeError(c, fault.InvalidField(kv.path, "is not a known field (allowed: after)"))
			return
		}
		var s string
		if json.Unmarshal(kv.value, &s) != nil {
			writeError(c, fault.InvalidField(kv.path, `must be a change cursor (meta.next of /changes, X-Changes-Cursor), an RFC 3339 time, or "beginning"`))
			return
		}
		given = true
		switch t, terr := time.Parse(time.RFC3339Nano, s); {
		case s == "beginning":
			from = 1
		case terr == nil:
			if from, err = a.Webhooks.SequenceAt(c.Request.Context(), t); err != nil {
				writeError(c, err)
				return
			}
		default:
			seq, ok := parseChangeCursor(s)
			if !ok {
				writeError(c, fault.InvalidField(kv.path, `must be a change cursor (meta.next of /changes, X-Changes-Cursor), an RFC 3339 time, or "beginning"`))
				return
			}
			from = seq + 1
		}
	}
	if !given {
		writeError(c, fault.InvalidField("after", "is required"))
		return
	}
	s, rev, err := a.Webhooks.Replay(c.Request.Context(), id, from, principal(c).Subject)
	if err != nil {
		writeError(c, err)
		return
	}
	logFrom(c).Info("webhook replay", "webhook_id", id, "from_sequence", s.StartSequence)
	c.Header("ETag", revTag(rev))
	c.JSON(http.StatusAccepted, dataResponse{Data: toWebhookJSON(s),
		Message: "Replay started: every event from sequence " + strconv.FormatUint(s.StartSequence, 10) + " is delivered again, in order"})
}

func (a *api) pingWebhook(c *gin.Context) {
	if !noParams(c) {
		return
	}
	id, ok := a.webhookID(c)
	if !ok {
		return
	}
	d, err := a.Webhooks.Ping(c.Request.Context(), id)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, dataResponse{Data: d})
}

type deliveriesResponse struct {
	Data []webhooks.Delivery `json:"data"`
	Meta deliveriesMeta      `json:"meta"`
}

type deliveriesMeta struct {
	Limit int    `json:"limit"`
	More  bool   `json:"more"`
	Next  string `json:"next,omitempty"`
}

// webhookDeliveries serves GET /webhooks/{id}/deliveries?after&since&limit:
// the logged attempts, oldest first.
func (a *api) webhookDeliveries(c *gin.Context) {
	id, ok := a.webhookID(c)
	if !ok {
		return
	}
	limit, after := 50, ""
	var since time.Time
	for key, vals := range c.Request.URL.Query() {
		v := vals[0]
		var err error
		switch key {
		case "limit":
			if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 500 || len(vals) > 1 {
				writeError(c, fault.InvalidField("limit", "must be an integer from 1 to 500"))
				return
			}
		case "after":
			if _, err := webhooks.ParseLogCursor(v); err != nil || len(vals) > 1 {
				writeError(c, fault.InvalidField("after", "must be the meta.next of a previous page"))
				return
			}
			after = v
		case "since":
			if since, err = time.Parse(time.RFC3339Nano, v); err != nil || len(vals) > 1 {
				writeError(c, fault.InvalidField("since", "must be an RFC 3339 time"))
				return
			}
		default:
			writeError(c, fault.InvalidField(key, "is not a known parameter (allowed: after, since, limit)"))
			return
		}
	}
	if _, _, err := a.Webhooks.Get(c.Request.Context(), id); err != nil {
		writeError(c, err)
		return
	}
	ds, next, more, err := a.Webhooks.Deliveries(c.Request.Context(), id, after, since, limit)
	if err != nil {
		writeError(c, err)
		return
	}
	meta := deliveriesMeta{Limit: limit, More: more, Next: next}
	c.JSON(http.StatusOK, deliveriesResponse{Data: ds, Meta: meta})
}
