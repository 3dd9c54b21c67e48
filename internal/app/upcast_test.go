package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"crm/internal/apptest"
)

// TestOlderEventVersionIsUpcastByEveryReader publishes a hand-written
// created.v0 event (the Python module's document shape) into the stream and
// checks that the projector (read model), the aggregate (a PATCH on it) and
// the audit reader (history) all see it as the current version.
func TestOlderEventVersionIsUpcastByEveryReader(t *testing.T) {
	e := apptest.StartEmbedded(t)
	id := "7d0c3e0e-8a3f-4c53-9d8e-2f1b6a1c9e01"
	v0 := `{"specversion":"1.0","id":"9b7f1c1e-5a52-4b0e-8f7e-1c2d3e4f5a6b","source":"/crm/migration","type":"com.a64core.crm.customer.created.v0",
	  "subject":"` + id + `","time":"2025-01-21T10:00:00Z","datacontenttype":"application/json","customerversion":1,"actor":"migration",
	  "data":{"customerId":"` + id + `","customerCode":"C900","name":" Legacy Ltd ","email":"","company":"Legacy",
	          "address":{"street":"","city":"","state":"","country":"","postalCode":""},"notes":null,"tags":null,
	          "createdBy":"migration","createdAt":"2025-01-21T10:00:00Z"}}`
	nc, js := e.JetStream()
	_ = nc
	msg := &nats.Msg{Subject: "crm.customers." + id + ".created", Data: []byte(v0), Header: nats.Header{}}
	msg.Header.Set("Nats-Msg-Id", "9b7f1c1e-5a52-4b0e-8f7e-1c2d3e4f5a6b")
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	// Projector.
	var got envelope
	apptest.Eventually(t, 10*time.Second, "projected v0 event", func() bool {
		r := e.Do("GET", "/api/v1/crm/customers/"+id, nil)
		if r.Status != http.StatusOK {
			return false
		}
		r.JSON(t, &got)
		return true
	})
	d := got.Data
	if d.Name != "Legacy Ltd" || d.Email != nil || d.Address != nil || d.Type != "individual" || d.Status != "lead" || d.Tags == nil || d.CustomerCode != "C900" {
		t.Fatalf("upcast customer: %+v", d)
	}
	// Aggregate.
	r := e.Do("PATCH", "/api/v1/crm/customers/"+id, `{"status":"active"}`)
	if r.Status != http.StatusOK || r.Header.Get("ETag") != `"2"` {
		t.Fatalf("patch of a v0 customer: %d %s", r.Status, r.Body)
	}
	// Audit reader.
	var h historyBody
	e.Do("GET", "/api/v1/crm/customers/"+id+"/history", nil).JSON(t, &h)
	if len(h.Data) != 2 || h.Data[0].Kind != "created" || h.Data[0].Actor != "migration" {
		t.Fatalf("history of a v0 customer: %+v", h.Data)
	}
}

// TestNewerWriterFieldsAreIgnored: events of the current versions that carry
// fields this service does not know (a newer writer's optional additions)
// are read by every reader, the unknown fields ignored: the projector (the
// read model), the aggregate (a PATCH on top), the audit reader (history)
// and readiness (the projector is not stuck).
func TestNewerWriterFieldsAreIgnored(t *testing.T) {
	e := apptest.StartEmbedded(t)
	last := e.PublishNewerWriterEvents()
	id := apptest.NewerWriterCustomer
	var got envelope
	apptest.Eventually(t, 10*time.Second, "projected", func() bool {
		r := e.Do("GET", "/api/v1/crm/customers/"+id, nil)
		if r.Status != http.StatusOK || r.Header.Get("ETag") != `"3"` {
			return false
		}
		r.JSON(t, &got)
		return true
	})
	if d := got.Data; d.Name != "Newer Writer Ltd" || d.Status != "active" || d.CustomerCode != "C950" ||
		d.Address == nil || *d.Address["city"] != "Lyon" || len(d.Tags) != 1 {
		t.Fatalf("customer: %+v", d)
	}
	if st := e.App.Projector().Status(); st.Err != nil || st.Applied < last {
		t.Fatalf("projector: %+v", st)
	}
	r := e.Do("PATCH", "/api/v1/crm/customers/"+id, `{"notes":"seen by an older writer"}`)
	if r.Status != http.StatusOK || r.Header.Get("ETag") != `"4"` {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	var h historyBody
	e.Do("GET", "/api/v1/crm/customers/"+id+"/history", nil).JSON(t, &h)
	if len(h.Data) != 4 || h.Data[0].Kind != "created" || len(h.Data[1].Changes) != 1 || h.Data[1].Changes[0].Field != "status" ||
		len(h.Data[2].Changes) != 0 || h.Data[2].Version != 3 {
		t.Fatalf("history: %+v", h.Data)
	}
	if status, checks := readyChecks(t, e); status != http.StatusOK {
		t.Fatalf("/readyz %d %v", status, checks)
	}
}
