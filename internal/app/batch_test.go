package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"crm/internal/apptest"
)

type batchBody struct {
	Data []struct {
		Index        int           `json:"index"`
		Op           string        `json:"op"`
		Status       int           `json:"status"`
		CustomerID   string        `json:"customerId"`
		CustomerCode string        `json:"customerCode"`
		ETag         string        `json:"etag"`
		Replayed     bool          `json:"replayed"`
		Data         *customerBody `json:"data"`
		Problem      *struct {
			Type   string `json:"type"`
			Detail string `json:"detail"`
			Errors []struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"errors"`
		} `json:"problem"`
	} `json:"data"`
	Meta struct {
		Total, Succeeded, Failed int
		Atomic                   bool
	} `json:"meta"`
}

func (b batchBody) statuses() []int {
	var out []int
	for _, r := range b.Data {
		out = append(out, r.Status)
	}
	return out
}

func (b batchBody) field(i int) string {
	if p := b.Data[i].Problem; p != nil && len(p.Errors) > 0 {
		return p.Errors[0].Field
	}
	return ""
}

func batch(t *testing.T, e *apptest.Env, body string, headers ...string) (int, batchBody) {
	t.Helper()
	r := e.Do("POST", "/api/v1/crm/customers/batch", body, headers...)
	var out batchBody
	if r.Status == http.StatusOK || r.Status == http.StatusMultiStatus {
		r.JSON(t, &out)
		if len(out.Data) != out.Meta.Total {
			t.Fatalf("batch: %d results for %d operations: %s", len(out.Data), out.Meta.Total, r.Body)
		}
	}
	return r.Status, out
}

// TestBatchNonAtomic: every operation is its own command with its own
// result in input order; the failing ones change nothing and stop
// nothing; the batch answers after the read model has the successful ones.
func TestBatchNonAtomic(t *testing.T) {
	e := apptest.StartEmbedded(t)
	a := create(t, e, `{"name":"Alpha Existing"}`)
	d := create(t, e, `{"name":"Delta Doomed"}`)
	before := len(e.StreamMessages())
	status, b := batch(t, e, fmt.Sprintf(`{"operations":[
		{"op":"create","data":{"name":"Batch One","email":"one@example.com","tags":["imported"]}},
		{"op":"create","data":{"name":""}},
		{"op":"update","id":%q,"data":{"status":"active"}},
		{"op":"update","id":%q,"data":{"company":"Acme"},"ifMatch":"\"2\""},
		{"op":"delete","id":"6f1b6c36-5b7e-4b43-9d3a-3f4f2a7f0a11"},
		{"op":"delete","id":%q},
		{"op":"create","data":{"name":"Batch Two"}},
		{"op":"merge","id":%q}
	]}`, a.CustomerID, a.CustomerID, d.CustomerID, a.CustomerID))
	if status != http.StatusMultiStatus {
		t.Fatalf("status %d, want 207", status)
	}
	want := []int{201, 400, 200, 200, 404, 200, 201, 400}
	if got := b.statuses(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	if b.field(1) != "name" || b.field(7) != "op" {
		t.Errorf("field errors %q, %q", b.field(1), b.field(7))
	}
	if b.Meta.Succeeded != 5 || b.Meta.Failed != 3 || b.Meta.Atomic {
		t.Errorf("meta %+v", b.Meta)
	}
	// Two patches of one customer ran in input order: the second's
	// If-Match saw the first.
	if b.Data[3].ETag != `"3"` || b.Data[3].Data.Company == nil || b.Data[3].Data.Status != "active" {
		t.Errorf("chained update: %+v", b.Data[3])
	}
	if n := len(e.StreamMessages()) - before; n != 5 {
		t.Fatalf("appended %d events, want 5", n)
	}
	// Read-your-writes for the whole batch.
	var one envelope
	if r := e.Do("GET", "/api/v1/crm/customers/"+b.Data[0].CustomerID, nil); r.Status != 200 {
		t.Fatalf("get created: %d", r.Status)
	} else if r.JSON(t, &one); one.Data.CustomerCode != b.Data[0].CustomerCode || one.Data.Tags[0] != "imported" {
		t.Errorf("created: %+v", one.Data)
	}
	if r := e.Do("GET", "/api/v1/crm/customers/"+d.CustomerID, nil); r.Status != http.StatusNotFound {
		t.Errorf("deleted customer: %d", r.Status)
	}
	var found listBody
	e.Do("GET", "/api/v1/crm/customers/search?q=batch", nil).JSON(t, &found)
	if found.Meta.Total != 2 {
		t.Errorf("search finds %d of the batch's creates", found.Meta.Total)
	}

	// Each operation needs its own permission.
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "creator", "exp": 4102444800,
		"permissions": []string{"crm.create", "crm.view"}}).SignedString([]byte(apptest.Secret))
	status, b = batch(t, e, fmt.Sprintf(`{"operations":[{"op":"create","data":{"name":"Allowed"}},
		{"op":"update","id":%q,"data":{"notes":"x"}},{"op":"delete","id":%q}]}`, a.CustomerID, a.CustomerID),
		"Authorization", "Bearer "+tok)
	if status != http.StatusMultiStatus || fmt.Sprint(b.statuses()) != "[201 403 403]" {
		t.Fatalf("permissions: %d %v", status, b.statuses())
	}
	// A token with no permission at all still gets one result per
	// operation, all 403.
	tok, _ = jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "nobody", "exp": 4102444800,
		"permissions": []string{}}).SignedString([]byte(apptest.Secret))
	if status, b = batch(t, e, `{"operations":[{"op":"create","data":{"name":"No"}}]}`, "Authorization", "Bearer "+tok); status != 207 || b.Data[0].Status != 403 {
		t.Fatalf("no permission: %d %v", status, b.statuses())
	}
}

// TestBatchAtomic: all or nothing in one atomic append; any failing
// operation (invalid, stale If-Match, unknown customer, a clash inside the
// batch) leaves the stream as it was, and says which one failed.
func TestBatchAtomic(t *testing.T) {
	e := apptest.StartEmbedded(t)
	a := create(t, e, `{"name":"Alpha Existing"}`)
	before := len(e.StreamMessages())
	for _, tc := range []struct {
		name   string
		ops    string
		bad    int
		status int
		field  string
	}{
		{"an invalid create", `{"op":"create","data":{"name":"Fine"}},{"op":"create","data":{"name":"Y","email":"nope"}}`, 1, 400, "email"},
		{"a stale If-Match", fmt.Sprintf(`{"op":"create","data":{"name":"Fine"}},{"op":"update","id":%q,"ifMatch":"\"7\"","data":{"notes":"x"}}`, a.CustomerID), 1, 412, ""},
		{"an unknown customer", `{"op":"delete","id":"6f1b6c36-5b7e-4b43-9d3a-3f4f2a7f0a11"},{"op":"create","data":{"name":"Fine"}}`, 0, 404, ""},
		{"one external id twice", `{"op":"create","data":{"name":"X1","externalId":"LEGACY-1"}},{"op":"create","data":{"name":"X2","externalId":"LEGACY-1"}}`, 1, 409, "externalId"},
		{"a key given twice", `{"op":"create","idempotencyKey":"k1","data":{"name":"K"}},{"op":"create","idempotencyKey":"k1","data":{"name":"K"}}`, 1, 400, "idempotencyKey"},
		{"a malformed operation", fmt.Sprintf(`{"op":"update","id":%q,"data":{"notes":"x"}},{"op":"update","data":{}}`, a.CustomerID), 1, 400, "id"},
		{"an update after the delete", fmt.Sprintf(`{"op":"delete","id":%q},{"op":"update","id":%q,"data":{"notes":"x"}}`, a.CustomerID, a.CustomerID), 1, 404, ""},
	} {
		status, b := batch(t, e, `{"atomic":true,"operations":[`+tc.ops+`]}`)
		if status != http.StatusMultiStatus || !b.Meta.Atomic || b.Meta.Succeeded != 0 {
			t.Errorf("%s: %d %+v", tc.name, status, b.Meta)
			continue
		}
		for i, r := range b.Data {
			switch {
			case i == tc.bad && (r.Status != tc.status || b.field(i) != tc.field):
				t.Errorf("%s: operation %d: %d %q, want %d %q", tc.name, i, r.Status, b.field(i), tc.status, tc.field)
			case i != tc.bad && (r.Status != http.StatusConflict || !strings.Contains(r.Problem.Detail, "not applied")):
				t.Errorf("%s: operation %d: %d %+v, want 409 not applied", tc.name, i, r.Status, r.Problem)
			}
		}
	}
	if n := len(e.StreamMessages()) - before; n != 0 {
		t.Fatalf("failed atomic batches appended %d events", n)
	}

	// Success: one atomic batch, consecutive sequences, codes in order,
	// two updates of one customer chained.
	status, b := batch(t, e, fmt.Sprintf(`{"atomic":true,"operations":[
		{"op":"create","data":{"name":"Atom One","externalId":"LEGACY-9"}},
		{"op":"create","data":{"name":"Atom Two"}},
		{"op":"update","id":%q,"ifMatch":1,"data":{"status":"active"}},
		{"op":"update","id":%q,"ifMatch":"\"2\"","data":{"company":"Acme"}}
	]}`, a.CustomerID, a.CustomerID))
	if status != http.StatusOK || b.Meta.Succeeded != 4 {
		t.Fatalf("atomic batch: %d %v %+v", status, b.statuses(), b.Data)
	}
	msgs := e.StreamMessages()[before:]
	var events []*struct{ Seq uint64 }
	for _, m := range msgs {
		if strings.HasPrefix(m.Subject, "crm.customers.") {
			events = append(events, &struct{ Seq uint64 }{m.Sequence})
		}
	}
	if len(events) != 4 || events[3].Seq-events[0].Seq != 3 {
		t.Fatalf("the batch's events: %d messages %+v", len(msgs), events)
	}
	if b.Data[0].CustomerCode == "" || b.Data[1].CustomerCode == "" || b.Data[3].ETag != `"3"` {
		t.Errorf("results: %+v", b.Data)
	}
	var got envelope
	e.Do("GET", "/api/v1/crm/customers/"+a.CustomerID, nil).JSON(t, &got)
	if got.Data.Status != "active" || got.Data.Company == nil || *got.Data.Company != "Acme" {
		t.Errorf("after the batch: %+v", got.Data)
	}
	// The external id is claimed: a single create with it is refused.
	if r := e.Do("POST", "/api/v1/crm/customers", `{"name":"Late","externalId":"LEGACY-9"}`); r.Status != http.StatusConflict {
		t.Errorf("external id of the batch: %d %s", r.Status, r.Body)
	}

	// Idempotency keys: the same batch again replays the creates and
	// appends nothing.
	keyed := `{"atomic":true,"operations":[{"op":"create","idempotencyKey":"imp-1","data":{"name":"Keyed One"}},
		{"op":"create","idempotencyKey":"imp-2","data":{"name":"Keyed Two"}}]}`
	_, first := batch(t, e, keyed)
	n := len(e.StreamMessages())
	status, again := batch(t, e, keyed)
	if status != 200 || !again.Data[0].Replayed || again.Data[1].CustomerID != first.Data[1].CustomerID || len(e.StreamMessages()) != n {
		t.Fatalf("replayed batch: %d %+v (appended %d)", status, again.Data, len(e.StreamMessages())-n)
	}
	// …and the same key with other data is refused.
	status, again = batch(t, e, `{"operations":[{"op":"create","idempotencyKey":"imp-1","data":{"name":"Other"}}]}`)
	if status != 207 || again.Data[0].Status != http.StatusUnprocessableEntity {
		t.Fatalf("reused key: %d %v", status, again.statuses())
	}
}

// TestBatchLimits: the envelope is checked before anything is decided.
func TestBatchLimits(t *testing.T) {
	e := apptest.StartEmbedded(t)
	before := len(e.StreamMessages())
	ops := make([]string, 501)
	for i := range ops {
		ops[i] = fmt.Sprintf(`{"op":"create","data":{"name":"N%d"}}`, i)
	}
	if r := e.Do("POST", "/api/v1/crm/customers/batch", `{"operations":[`+strings.Join(ops, ",")+`]}`); r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("501 operations: %d %s", r.Status, r.Body)
	}
	huge := `{"operations":[{"op":"create","data":{"name":"` + strings.Repeat("x", 17<<20) + `"}}]}`
	if r := e.Do("POST", "/api/v1/crm/customers/batch", huge); r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("17 MiB body: %d", r.Status)
	}
	for _, bad := range []struct{ body, field string }{
		{`{}`, "operations"},
		{`{"operations":[]}`, "operations"},
		{`{"operations":{}}`, "operations"},
		{`{"operations":[{"op":"create","data":{"name":"x"}}],"atomic":"yes"}`, "atomic"},
		{`{"operations":[],"extra":1}`, "extra"},
	} {
		r := e.Do("POST", "/api/v1/crm/customers/batch", bad.body)
		var p struct {
			Errors []struct{ Field string } `json:"errors"`
		}
		_ = json.Unmarshal(r.Body, &p)
		if r.Status != http.StatusBadRequest || len(p.Errors) == 0 || p.Errors[0].Field != bad.field {
			t.Errorf("%s: %d %s", bad.body, r.Status, r.Body)
		}
	}
	if r := e.Do("POST", "/api/v1/crm/customers/batch", `{"operations":[`); r.Status != http.StatusBadRequest {
		t.Errorf("truncated body: %d", r.Status)
	}
	// 500 creates in one atomic batch are one append.
	ops = ops[:500]
	status, b := batch(t, e, `{"atomic":true,"operations":[`+strings.Join(ops, ",")+`]}`)
	if status != 200 || b.Meta.Succeeded != 500 {
		t.Fatalf("500 creates: %d %+v", status, b.Meta)
	}
	if n := len(e.StreamMessages()) - before; n != 500 {
		t.Fatalf("appended %d, want 500", n)
	}
	var l listBody
	e.Do("GET", "/api/v1/crm/customers?perPage=1", nil).JSON(t, &l)
	if l.Meta.Total != 500 {
		t.Errorf("read model has %d", l.Meta.Total)
	}
}
