package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"crm/internal/apptest"
	"crm/internal/events"
)

// seedCustomer is the seed README's example body.
const seedCustomer = `{
  "name": "John Smith",
  "email": "john.smith@example.com",
  "phone": "+1-555-0123",
  "company": "Acme Corporation",
  "address": {"street": "123 Main Street", "city": "New York", "state": "NY", "country": "United States", "postalCode": "10001"},
  "type": "business",
  "status": "active",
  "notes": "Key account - handles all northeast region sales",
  "tags": ["enterprise", "priority", "northeast"]
}`

type customerBody struct {
	CustomerID   string             `json:"customerId"`
	CustomerCode string             `json:"customerCode"`
	Name         string             `json:"name"`
	Email        *string            `json:"email"`
	Phone        *string            `json:"phone"`
	Company      *string            `json:"company"`
	Address      map[string]*string `json:"address"`
	Type         string             `json:"type"`
	Status       string             `json:"status"`
	Notes        *string            `json:"notes"`
	Tags         []string           `json:"tags"`
	ExternalID   *string            `json:"externalId"`
	CreatedBy    string             `json:"createdBy"`
	CreatedAt    string             `json:"createdAt"`
	UpdatedAt    string             `json:"updatedAt"`
}

type envelope struct {
	Data    customerBody `json:"data"`
	Message string       `json:"message"`
}

func create(t *testing.T, e *apptest.Env, body string) customerBody {
	t.Helper()
	r := e.Do("POST", "/api/v1/crm/customers", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var env envelope
	r.JSON(t, &env)
	return env.Data
}

func TestCreateUpdateDeletePublishEvents(t *testing.T) {
	e := apptest.StartEmbedded(t)
	sub := "22222222-2222-4222-8222-222222222222"
	e.Token = e.TokenFor(sub, "user")

	// Create: the seed's response shape, and the event in the stream.
	r := e.Do("POST", "/api/v1/crm/customers", seedCustomer, "X-Request-ID", "req-create-1")
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	var created envelope
	r.JSON(t, &created)
	c := created.Data
	if created.Message != "Customer created successfully" || c.CustomerCode != "C001" || c.Name != "John Smith" ||
		*c.Company != "Acme Corporation" || *c.Address["city"] != "New York" || c.Type != "business" ||
		c.Status != "active" || len(c.Tags) != 3 || c.CreatedBy != sub || c.CreatedAt != c.UpdatedAt {
		t.Fatalf("unexpected create response: %s", r.Body)
	}
	if _, err := time.Parse(time.RFC3339, c.CreatedAt); err != nil || !strings.HasSuffix(c.CreatedAt, "Z") {
		t.Fatalf("createdAt %q is not RFC 3339 UTC", c.CreatedAt)
	}
	if r.Header.Get("ETag") != `"1"` || r.Header.Get("X-Stream-Sequence") != "1" ||
		r.Header.Get("Location") != "/api/v1/crm/customers/"+c.CustomerID {
		t.Fatalf("headers: %v", r.Header)
	}

	// A rejected command appends nothing.
	for _, bad := range []string{`{"name":""}`, `{"email":"x"}`, `{"name":"a","customerCode":"C9"}`, `[1]`, `{`} {
		if r := e.Do("POST", "/api/v1/crm/customers", bad); r.Status != http.StatusBadRequest {
			t.Fatalf("create %s: %d %s", bad, r.Status, r.Body)
		}
	}

	// Update: only the changed fields, null clears.
	r = e.Do("PATCH", "/api/v1/crm/customers/"+c.CustomerID, `{"status":"inactive","notes":null,"address":{"city":"Boston"}}`)
	if r.Status != http.StatusOK {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	var updated envelope
	r.JSON(t, &updated)
	if updated.Message != "Customer updated successfully" || updated.Data.Status != "inactive" || updated.Data.Notes != nil ||
		*updated.Data.Address["city"] != "Boston" || *updated.Data.Address["street"] != "123 Main Street" || r.Header.Get("ETag") != `"2"` {
		t.Fatalf("unexpected update response: %s", r.Body)
	}
	// A no-op update appends nothing and returns the current state.
	r = e.Do("PATCH", "/api/v1/crm/customers/"+c.CustomerID, `{"status":"inactive"}`)
	if r.Status != http.StatusOK || r.Header.Get("ETag") != `"2"` || r.Header.Get("X-Stream-Sequence") != "" {
		t.Fatalf("no-op update: %d %v %s", r.Status, r.Header, r.Body)
	}

	// Delete: the seed's shape; then update and delete are 404.
	r = e.Do("DELETE", "/api/v1/crm/customers/"+c.CustomerID, nil)
	if r.Status != http.StatusOK || string(r.Body) != `{"data":{"message":"Customer deleted successfully"},"message":"Customer deleted successfully"}` {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := e.Do("PATCH", "/api/v1/crm/customers/"+c.CustomerID, `{"status":"active"}`); r.Status != http.StatusNotFound {
		t.Fatalf("patch after delete: %d %s", r.Status, r.Body)
	}
	if r := e.Do("DELETE", "/api/v1/crm/customers/"+c.CustomerID, nil); r.Status != http.StatusNotFound {
		t.Fatalf("delete after delete: %d %s", r.Status, r.Body)
	}
	if r := e.Do("DELETE", "/api/v1/crm/customers/6f1b6c36-5b7e-4b43-9d3a-3f4f2a7f0a11", nil); r.Status != http.StatusNotFound {
		t.Fatalf("delete unknown: %d %s", r.Status, r.Body)
	}
	if r := e.Do("DELETE", "/api/v1/crm/customers/not-a-uuid", nil); r.Status != http.StatusBadRequest {
		t.Fatalf("delete malformed id: %d %s", r.Status, r.Body)
	}

	// Exactly three events, on the right subjects, as CloudEvents.
	msgs := e.StreamMessages()
	if len(msgs) != 3 {
		t.Fatalf("stream has %d messages, want 3", len(msgs))
	}
	kinds := []events.Kind{events.KindCreated, events.KindUpdated, events.KindDeleted}
	for i, m := range msgs {
		if want := events.Subject(c.CustomerID, kinds[i]); m.Subject != want {
			t.Fatalf("message %d subject %s, want %s", i, m.Subject, want)
		}
		var ce map[string]any
		if err := json.Unmarshal(m.Data, &ce); err != nil {
			t.Fatal(err)
		}
		if ce["specversion"] != "1.0" || ce["subject"] != c.CustomerID || ce["type"] != "com.a64core.crm.customer."+string(kinds[i])+".v1" ||
			ce["datacontenttype"] != "application/json" || ce["actor"] != sub || ce["customerversion"] != float64(i+1) || ce["source"] == "" {
			t.Fatalf("message %d envelope: %s", i, m.Data)
		}
		if m.Header.Get("Nats-Msg-Id") != ce["id"] {
			t.Fatalf("message %d Nats-Msg-Id %q != id %v", i, m.Header.Get("Nats-Msg-Id"), ce["id"])
		}
		// A command from HTTP is caused by its request: every event has a
		// correlation and a causation id, both the request id.
		if cid, _ := ce["correlationid"].(string); cid == "" || ce["causationid"] != cid {
			t.Fatalf("message %d: correlationid %v, causationid %v; want both the request id", i, ce["correlationid"], ce["causationid"])
		}
		ev, err := events.Decode(m.Data)
		if err != nil {
			t.Fatalf("message %d does not decode: %v", i, err)
		}
		switch d := ev.Data.(type) {
		case *events.CustomerCreated:
			if d.CustomerCode != "C001" || d.Name != "John Smith" || *d.Email != "john.smith@example.com" || d.CreatedBy != sub {
				t.Fatalf("created data: %s", m.Data)
			}
			if ev.CorrelationID != "req-create-1" {
				t.Fatalf("correlation id %q", ev.CorrelationID)
			}
		case *events.CustomerUpdated:
			data := ce["data"].(map[string]any)["changes"].(map[string]any)
			if len(data) != 3 || data["status"] != "inactive" || data["notes"] != nil {
				t.Fatalf("updated changes: %v", data)
			}
			if _, ok := data["notes"]; !ok {
				t.Fatal("cleared notes must be an explicit null")
			}
		case *events.CustomerDeleted:
			if d.CustomerCode != "C001" || d.DeletedBy != sub {
				t.Fatalf("deleted data: %s", m.Data)
			}
		}
	}
}

func TestConcurrentCreatesAcrossTwoAPIs(t *testing.T) {
	e1 := apptest.StartEmbedded(t)
	cfg := apptest.Config(t, t.TempDir())
	cfg.NATSURL = e1.App.NATSURL
	e2 := apptest.Start(t, cfg)

	const n = 200
	codes := make(chan string, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := e1
			if i%2 == 1 {
				e = e2
			}
			r := e.Do("POST", "/api/v1/crm/customers", fmt.Sprintf(`{"name":"Customer %d"}`, i))
			if r.Status != http.StatusCreated {
				errs <- fmt.Errorf("create %d: %d %s", i, r.Status, r.Body)
				return
			}
			var env envelope
			if err := json.Unmarshal(r.Body, &env); err != nil {
				errs <- err
				return
			}
			codes <- env.Data.CustomerCode
		}()
	}
	wg.Wait()
	close(codes)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for c := range codes {
		num, err := strconv.Atoi(strings.TrimPrefix(c, "C"))
		if err != nil || seen[num] {
			t.Fatalf("bad or duplicate code %q", c)
		}
		seen[num] = true
	}
	for i := 1; i <= n; i++ { // no gaps: exactly C001..C200
		if !seen[i] {
			t.Fatalf("code %d missing; got %d codes", i, len(seen))
		}
	}
	if got := len(e1.StreamMessages()); got != n {
		t.Fatalf("stream has %d events, want %d", got, n)
	}
}

func TestConcurrentPatchesOfDifferentFieldsBothApply(t *testing.T) {
	e := apptest.StartEmbedded(t)
	for round := range 10 {
		c := create(t, e, `{"name":"Race"}`)
		var wg sync.WaitGroup
		for _, body := range []string{`{"email":"race@example.com"}`, `{"company":"Race Inc"}`, `{"status":"active"}`, `{"tags":["x"]}`} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if r := e.Do("PATCH", "/api/v1/crm/customers/"+c.CustomerID, body); r.Status != http.StatusOK {
					t.Errorf("round %d patch %s: %d %s", round, body, r.Status, r.Body)
				}
			}()
		}
		wg.Wait()
		r := e.Do("GET", "/api/v1/crm/customers/"+c.CustomerID, nil)
		var got envelope
		r.JSON(t, &got)
		d := got.Data
		if d.Email == nil || *d.Email != "race@example.com" || d.Company == nil || *d.Company != "Race Inc" ||
			d.Status != "active" || len(d.Tags) != 1 || r.Header.Get("ETag") != `"5"` {
			t.Fatalf("round %d: lost an update: %s (etag %s)", round, r.Body, r.Header.Get("ETag"))
		}
	}
}

func TestIfMatch(t *testing.T) {
	e := apptest.StartEmbedded(t)
	c := create(t, e, `{"name":"Versioned"}`)
	path := "/api/v1/crm/customers/" + c.CustomerID
	if r := e.Do("PATCH", path, `{"status":"active"}`, "If-Match", `"1"`); r.Status != http.StatusOK || r.Header.Get("ETag") != `"2"` {
		t.Fatalf("fresh If-Match: %d %s", r.Status, r.Body)
	}
	if r := e.Do("PATCH", path, `{"status":"inactive"}`, "If-Match", `"1"`); r.Status != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match PATCH: %d %s", r.Status, r.Body)
	}
	if r := e.Do("DELETE", path, nil, "If-Match", `"1"`); r.Status != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match DELETE: %d %s", r.Status, r.Body)
	}
	if n := len(e.StreamMessages()); n != 2 {
		t.Fatalf("stale preconditions appended events: %d", n)
	}
	if r := e.Do("DELETE", path, nil, "If-Match", `"2"`); r.Status != http.StatusOK {
		t.Fatalf("fresh If-Match DELETE: %d %s", r.Status, r.Body)
	}
}

func TestRestartKeepsCustomersAndCodeSequence(t *testing.T) {
	dir := t.TempDir()
	cfg := apptest.Config(t, dir)
	e := apptest.Start(t, cfg)
	first := create(t, e, `{"name":"Before Restart"}`)
	create(t, e, `{"name":"Also Before"}`)
	e.Stop()

	e = apptest.Start(t, cfg)
	r := e.Do("GET", "/api/v1/crm/customers/"+first.CustomerID, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("customer lost across restart: %d %s", r.Status, r.Body)
	}
	if c := create(t, e, `{"name":"After Restart"}`); c.CustomerCode != "C003" {
		t.Fatalf("code after restart = %s, want C003", c.CustomerCode)
	}
	if r := e.Do("PATCH", "/api/v1/crm/customers/"+first.CustomerID, `{"status":"active"}`); r.Status != http.StatusOK {
		t.Fatalf("update after restart: %d %s", r.Status, r.Body)
	}
}

func TestAuth(t *testing.T) {
	e := apptest.StartEmbedded(t)
	now := time.Now()
	sign := func(key string, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := jwt.MapClaims{"sub": "33333333-3333-4333-8333-333333333333", "roles": []string{"admin"}, "exp": now.Add(time.Hour).Unix()}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, valid).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"not bearer", "Basic abc", http.StatusUnauthorized},
		{"garbage", "Bearer abc.def.ghi", http.StatusUnauthorized},
		{"bad signature", "Bearer " + sign("another-secret-another-secret-xx", valid), http.StatusUnauthorized},
		{"alg none", "Bearer " + none, http.StatusUnauthorized},
		{"expired", "Bearer " + sign(apptest.Secret, jwt.MapClaims{"sub": "u", "roles": "admin", "exp": now.Add(-time.Hour).Unix()}), http.StatusUnauthorized},
		{"no exp", "Bearer " + sign(apptest.Secret, jwt.MapClaims{"sub": "u", "roles": "admin"}), http.StatusUnauthorized},
		{"no sub", "Bearer " + sign(apptest.Secret, jwt.MapClaims{"roles": "admin", "exp": now.Add(time.Hour).Unix()}), http.StatusUnauthorized},
		{"non-string roles", "Bearer " + sign(apptest.Secret, jwt.MapClaims{"sub": "u", "roles": []int{1}, "exp": now.Add(time.Hour).Unix()}), http.StatusUnauthorized},
		{"no permission", "Bearer " + sign(apptest.Secret, jwt.MapClaims{"sub": "u", "roles": "guest", "exp": now.Add(time.Hour).Unix()}), http.StatusForbidden},
		{"view only", "Bearer " + sign(apptest.Secret, jwt.MapClaims{"sub": "u", "permissions": []string{"crm.view"}, "exp": now.Add(time.Hour).Unix()}), http.StatusForbidden},
		{"valid", "Bearer " + sign(apptest.Secret, valid), http.StatusCreated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Do("POST", "/api/v1/crm/customers", `{"name":"Auth Test"}`, "Authorization", tc.auth)
			if r.Status != tc.want {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.want, r.Body)
			}
			if tc.want == http.StatusUnauthorized && r.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	if n := len(e.StreamMessages()); n != 1 {
		t.Fatalf("rejected requests appended events: %d", n)
	}
}
