package events

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Aggregate is what a stream of events is about; it is the second token of
// each event's subject: crm.<aggregate>.<id>.<kind>.
type Aggregate string

// Customers is the aggregate of the customer events.
const Customers Aggregate = "customers"

// Upcaster reads the data of an older version of an event type into the
// current payload.
type Upcaster func(json.RawMessage) (Payload, error)

// Definition declares one event kind. Every list that must name every kind
// (decoding, subjects, the event store's per-customer load, the schema
// check of the tests, crmctl tail --kind, metrics labels, the consumer
// example) is derived from the registry of definitions, and
// TestRegistry… fails when a kind lacks its JSON Schema, its AsyncAPI
// message or its place in a list that is kept by hand (docs).
type Definition struct {
	Aggregate Aggregate
	Kind      Kind   // the last token of the subject
	Name      string // the event's name in the docs (AsyncAPI message name)
	// Type is the versioned CloudEvents type written today.
	Type string
	// Schema is the JSON Schema file of Type, under docs/events.
	Schema string
	// New returns an empty payload of Type.
	New func() Payload
	// Upcasters read older versions of the type (by their CloudEvents type).
	Upcasters map[string]Upcaster
}

// registry is the one list of event kinds.
var registry = []Definition{
	{
		Aggregate: Customers, Kind: KindCreated, Name: "CustomerCreated",
		Type: TypeCreatedV1, Schema: "customer.created.v1.schema.json",
		New:       func() Payload { return new(CustomerCreated) },
		Upcasters: map[string]Upcaster{TypeCreatedV0: upcastCreatedV0},
	},
	{
		Aggregate: Customers, Kind: KindUpdated, Name: "CustomerUpdated",
		Type: TypeUpdatedV1, Schema: "customer.updated.v1.schema.json",
		New: func() Payload { return new(CustomerUpdated) },
	},
	{
		Aggregate: Customers, Kind: KindDeleted, Name: "CustomerDeleted",
		Type: TypeDeletedV1, Schema: "customer.deleted.v1.schema.json",
		New: func() Payload { return new(CustomerDeleted) },
	},
	{
		Aggregate: Customers, Kind: KindRestored, Name: "CustomerRestored",
		Type: TypeRestoredV1, Schema: "customer.restored.v1.schema.json",
		New: func() Payload { return new(CustomerRestored) },
	},
	{
		Aggregate: Customers, Kind: KindMerged, Name: "CustomersMerged",
		Type: TypeMergedV1, Schema: "customer.merged.v1.schema.json",
		New: func() Payload { return new(CustomersMerged) },
	},
	{
		Aggregate: Customers, Kind: KindMergedInto, Name: "CustomerMergedInto",
		Type: TypeMergedIntoV1, Schema: "customer.mergedinto.v1.schema.json",
		New: func() Payload { return new(CustomerMergedInto) },
	},
	{
		Aggregate: Customers, Kind: KindMergeUndone, Name: "CustomerMergeUndone",
		Type: TypeMergeUndoneV1, Schema: "customer.mergeundone.v1.schema.json",
		New: func() Payload { return new(CustomerMergeUndone) },
	},
	{
		Aggregate: Customers, Kind: KindUnmerged, Name: "CustomerUnmerged",
		Type: TypeUnmergedV1, Schema: "customer.unmerged.v1.schema.json",
		New: func() Payload { return new(CustomerUnmerged) },
	},
	{
		Aggregate: Customers, Kind: KindContactLinked, Name: "CustomerContactLinked",
		Type: TypeContactLinkedV1, Schema: "customer.contactlinked.v1.schema.json",
		New: func() Payload { return new(CustomerContactLinked) },
	},
	{
		Aggregate: Customers, Kind: KindContactUnlinked, Name: "CustomerContactUnlinked",
		Type: TypeContactUnlinkedV1, Schema: "customer.contactunlinked.v1.schema.json",
		New: func() Payload { return new(CustomerContactUnlinked) },
	},
	{
		Aggregate: Contacts, Kind: KindCreated, Name: "ContactCreated",
		Type: TypeContactCreatedV1, Schema: "contact.created.v1.schema.json",
		New: func() Payload { return new(ContactCreated) },
	},
	{
		Aggregate: Contacts, Kind: KindUpdated, Name: "ContactUpdated",
		Type: TypeContactUpdatedV1, Schema: "contact.updated.v1.schema.json",
		New: func() Payload { return new(ContactUpdated) },
	},
	{
		Aggregate: Contacts, Kind: KindDeleted, Name: "ContactDeleted",
		Type: TypeContactDeletedV1, Schema: "contact.deleted.v1.schema.json",
		New: func() Payload { return new(ContactDeleted) },
	},
	{
		Aggregate: Contacts, Kind: KindLinked, Name: "ContactLinked",
		Type: TypeLinkedV1, Schema: "contact.linked.v1.schema.json",
		New: func() Payload { return new(ContactLinked) },
	},
	{
		Aggregate: Contacts, Kind: KindUnlinked, Name: "ContactUnlinked",
		Type: TypeUnlinkedV1, Schema: "contact.unlinked.v1.schema.json",
		New: func() Payload { return new(ContactUnlinked) },
	},
	{
		Aggregate: Activities, Kind: KindCreated, Name: "ActivityCreated",
		Type: TypeActivityCreatedV1, Schema: "activity.created.v1.schema.json",
		New: func() Payload { return new(ActivityCreated) },
	},
	{
		Aggregate: Activities, Kind: KindUpdated, Name: "ActivityUpdated",
		Type: TypeActivityUpdatedV1, Schema: "activity.updated.v1.schema.json",
		New: func() Payload { return new(ActivityUpdated) },
	},
	{
		Aggregate: Activities, Kind: KindDeleted, Name: "ActivityDeleted",
		Type: TypeActivityDeletedV1, Schema: "activity.deleted.v1.schema.json",
		New: func() Payload { return new(ActivityDeleted) },
	},
}

// Aggregates returns the aggregates of the registry, in registry order.
func Aggregates() []Aggregate {
	var out []Aggregate
	for _, d := range registry {
		if !slices.Contains(out, d.Aggregate) {
			out = append(out, d.Aggregate)
		}
	}
	return out
}

// TypesOf returns the CloudEvents types of aggregate a written today, in
// registry order.
func TypesOf(a Aggregate) []string {
	var out []string
	for _, d := range registry {
		if d.Aggregate == a {
			out = append(out, d.Type)
		}
	}
	return out
}

// byType finds the definition of a CloudEvents type (current or older) and,
// for an older one, its upcaster.
var byType = func() map[string]typeEntry {
	m := map[string]typeEntry{}
	for _, d := range registry {
		m[d.Type] = typeEntry{def: d}
		for t, up := range d.Upcasters {
			m[t] = typeEntry{def: d, up: up}
		}
	}
	return m
}()

// DefinitionOfType returns the definition of a CloudEvents type written
// today or in an older version.
func DefinitionOfType(t string) (Definition, bool) {
	e, ok := byType[t]
	return e.def, ok
}

type typeEntry struct {
	def Definition
	up  Upcaster // nil for the current version
}

// Definitions returns every registered event kind, in registry order.
func Definitions() []Definition { return slices.Clone(registry) }

// Lookup returns the definition of kind k of aggregate a.
func Lookup(a Aggregate, k Kind) (Definition, bool) {
	for _, d := range registry {
		if d.Aggregate == a && d.Kind == k {
			return d, true
		}
	}
	return Definition{}, false
}

// Kinds returns the kinds of aggregate a, in registry order.
func Kinds(a Aggregate) []Kind {
	var out []Kind
	for _, d := range registry {
		if d.Aggregate == a {
			out = append(out, d.Kind)
		}
	}
	return out
}

// Types returns the CloudEvents types written today, in registry order.
func Types() []string {
	out := make([]string, len(registry))
	for i, d := range registry {
		out[i] = d.Type
	}
	return out
}

// definitionOf returns the definition of a payload's kind.
func definitionOf(p Payload) (Definition, bool) { return Lookup(p.Aggregate(), p.Kind()) }

// Subject scheme: crm.<aggregate>.<id>.<kind>.
const (
	subjectRoot = "crm"
	// SubjectPrefix is the prefix of every customer subject.
	SubjectPrefix = subjectRoot + "." + string(Customers)
	// SubjectAll matches every customer event.
	SubjectAll = SubjectPrefix + ".>"
)

// StreamSubjects returns the subjects of every aggregate's events,
// crm.<aggregate>.>, in registry order (the event stream's subjects, with
// the claims').
func StreamSubjects() []string {
	var out []string
	for _, a := range Aggregates() {
		out = append(out, AggregateAll(a))
	}
	return out
}

// AggregateAll returns the wildcard that matches every event of aggregate
// a, crm.<aggregate>.>.
func AggregateAll(a Aggregate) string { return subjectRoot + "." + string(a) + ".>" }

// AggregateKindSubjects returns the wildcard that matches every event of
// kind k of aggregate a.
func AggregateKindSubjects(a Aggregate, k Kind) string {
	return subjectRoot + "." + string(a) + ".*." + string(k)
}

// AggregateSubject returns the subject of an event of kind k about id, of
// aggregate a.
func AggregateSubject(a Aggregate, id string, k Kind) string {
	return subjectRoot + "." + string(a) + "." + id + "." + string(k)
}

// AggregateSubjects returns the wildcard that matches every event of id, of
// aggregate a.
func AggregateSubjects(a Aggregate, id string) string {
	return subjectRoot + "." + string(a) + "." + id + ".*"
}

// ParseAggregateSubject splits the subject of any registered event into
// aggregate, id and kind.
func ParseAggregateSubject(subject string) (a Aggregate, id string, k Kind, err error) {
	rest, ok := strings.CutPrefix(subject, subjectRoot+".")
	if ok {
		var agg, kind string
		agg, rest, _ = strings.Cut(rest, ".")
		id, kind, ok = strings.Cut(rest, ".")
		if ok && isUUID(id) {
			if _, known := Lookup(Aggregate(agg), Kind(kind)); known {
				return Aggregate(agg), id, Kind(kind), nil
			}
		}
	}
	return "", "", "", fmt.Errorf("%w: subject %q", ErrMalformed, subject)
}

// Subject returns the subject of an event of kind k about customer id.
func Subject(customerID string, k Kind) string {
	return SubjectPrefix + "." + customerID + "." + string(k)
}

// SubjectOf returns the subject of event e.
func SubjectOf(e Event) string {
	return AggregateSubject(e.Data.Aggregate(), e.AggregateID, e.Data.Kind())
}

// CustomerSubjects returns the wildcard that matches every event of one
// customer.
func CustomerSubjects(customerID string) string {
	return SubjectPrefix + "." + customerID + ".*"
}

// KindSubjects returns the wildcard that matches every event of one kind.
func KindSubjects(k Kind) string { return SubjectPrefix + ".*." + string(k) }

// ParseSubject splits a customer subject into customer id and kind; the
// kind must be a registered kind of the customers aggregate.
func ParseSubject(subject string) (customerID string, k Kind, err error) {
	rest, ok := strings.CutPrefix(subject, SubjectPrefix+".")
	if !ok {
		return "", "", fmt.Errorf("%w: subject %q", ErrMalformed, subject)
	}
	id, kind, ok := strings.Cut(rest, ".")
	if !ok || !isUUID(id) {
		return "", "", fmt.Errorf("%w: subject %q", ErrMalformed, subject)
	}
	if _, known := Lookup(Customers, Kind(kind)); !known {
		return "", "", fmt.Errorf("%w: subject %q", ErrMalformed, subject)
	}
	return id, Kind(kind), nil
}
