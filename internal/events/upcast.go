package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Schema evolution: an event type's payload never changes incompatibly within
// a version. A new shape gets a new version in the CloudEvents type (….v2),
// the stream is never rewritten, and every reader (the aggregate, the
// projector, crmctl — they all decode through Decode) upcasts older versions
// to the current payload here. Writers always write the current version.
//
// TypeCreatedV0 is the first such older version: the customer document of the
// Python CRM module this service replaces (its MongoDB schema), published as
// an event by a migration. Optional fields may be missing or empty strings,
// type and status may be missing, tags may be null.
const TypeCreatedV0 = typePrefix + "created.v0"

type createdV0 struct {
	CustomerID   string  `json:"customerId"`
	CustomerCode string  `json:"customerCode"`
	Name         string  `json:"name"`
	Email        *string `json:"email"`
	Phone        *string `json:"phone"`
	Company      *string `json:"company"`
	Address      *struct {
		Street     string `json:"street"`
		City       string `json:"city"`
		State      string `json:"state"`
		Country    string `json:"country"`
		PostalCode string `json:"postalCode"`
	} `json:"address"`
	Type      string    `json:"type"`
	Status    string    `json:"status"`
	Notes     *string   `json:"notes"`
	Tags      []string  `json:"tags"`
	CreatedBy string    `json:"createdBy"`
	CreatedAt time.Time `json:"createdAt"`
}

func upcastCreatedV0(raw json.RawMessage) (Payload, error) {
	var v createdV0
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	blank := func(s *string) *string {
		if s == nil || strings.TrimSpace(*s) == "" {
			return nil
		}
		t := strings.TrimSpace(*s)
		return &t
	}
	p := &CustomerCreated{
		CustomerID: v.CustomerID, CustomerCode: v.CustomerCode, Name: strings.TrimSpace(v.Name),
		Email: blank(v.Email), Phone: blank(v.Phone), Company: blank(v.Company), Notes: blank(v.Notes),
		Type: v.Type, Status: v.Status, Tags: []string{}, CreatedBy: v.CreatedBy, CreatedAt: v.CreatedAt.UTC(),
	}
	if p.Type == "" {
		p.Type = "individual"
	}
	if p.Status == "" {
		p.Status = "lead"
	}
	seen := map[string]bool{}
	for _, t := range v.Tags {
		if t = strings.TrimSpace(t); t != "" && !seen[t] {
			seen[t] = true
			p.Tags = append(p.Tags, t)
		}
	}
	if a := v.Address; a != nil {
		addr := Address{Street: strings.TrimSpace(a.Street), City: strings.TrimSpace(a.City), State: strings.TrimSpace(a.State),
			Country: strings.TrimSpace(a.Country), PostalCode: strings.TrimSpace(a.PostalCode)}
		if !addr.IsZero() {
			p.Address = &addr
		}
	}
	if p.CustomerID == "" {
		return nil, fmt.Errorf("v0 created event without customerId")
	}
	return p, nil
}
