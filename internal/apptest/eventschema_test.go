package apptest

import (
	"strings"
	"testing"
	"time"

	"crm/internal/events"
)

func TestEventSchemasAcceptEncodedEventsAndRejectBadOnes(t *testing.T) {
	email := "a@example.com"
	ev := events.Event{
		ID: "0b0ad0c6-6f52-4a8b-9a43-1f1f6d2f3a55", AggregateID: "c47ac10b-58cc-4372-a567-0e02b2c3d479",
		Time: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), Version: 1, Actor: "u",
		Data: &events.CustomerCreated{CustomerID: "c47ac10b-58cc-4372-a567-0e02b2c3d479", CustomerCode: "C001", Name: "A",
			Email: &email, Type: "business", Status: "lead", Tags: []string{"x"}, CreatedBy: "u", CreatedAt: time.Now()},
	}
	good, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateEvent(good); err != nil {
		t.Fatalf("valid event rejected: %v", err)
	}
	upd := ev
	upd.Version = 2
	upd.Data = &events.CustomerUpdated{CustomerID: ev.AggregateID, CustomerCode: "C001", UpdatedBy: "u", UpdatedAt: time.Now(),
		Changes: events.Changes{Email: events.Cleared[string](), Address: events.SetTo(events.Address{City: "Oslo"})}}
	if b, _ := events.Encode(upd); ValidateEvent(b) != nil {
		t.Fatalf("valid update rejected: %v", ValidateEvent(b))
	}
	for name, mutate := range map[string]func(string) string{
		"bad enum":          func(s string) string { return strings.Replace(s, `"type":"business"`, `"type":"company"`, 1) },
		"bad code":          func(s string) string { return strings.Replace(s, `"C001"`, `"X1"`, 1) },
		"missing actor":     func(s string) string { return strings.Replace(s, `,"actor":"u"`, ``, 1) },
		"unknown data key":  func(s string) string { return strings.Replace(s, `"name":"A"`, `"name":"A","vip":true`, 1) },
		"bad version":       func(s string) string { return strings.Replace(s, `"customerversion":1`, `"customerversion":2`, 1) },
		"subject not uuid":  func(s string) string { return strings.Replace(s, `"subject":"c47ac10b`, `"subject":"x47ac10b`, 1) },
		"null name":         func(s string) string { return strings.Replace(s, `"name":"A"`, `"name":null`, 1) },
		"tags not an array": func(s string) string { return strings.Replace(s, `"tags":["x"]`, `"tags":"x"`, 1) },
	} {
		bad := mutate(string(good))
		if bad == string(good) {
			t.Fatalf("%s: mutation did not apply", name)
		}
		if ValidateEvent([]byte(bad)) == nil {
			t.Errorf("%s: accepted %s", name, bad)
		}
	}
}
