package customer

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"crm/internal/events"
	"crm/internal/fault"
)

// MaxMerge is the most customers one merge absorbs.
const MaxMerge = 10

// Mergeable fields, in schema order: what Merge.Resolve may name.
var mergeFields = []string{"name", "email", "phone", "company", "address", "type", "status", "notes", "tags"}

// Merge absorbs customers into a survivor. Resolve names, per field, the
// customer (the survivor or one of AbsorbedIDs) whose value wins; the other
// fields follow the default rule (see DecideMerge).
type Merge struct {
	SurvivorID  string
	AbsorbedIDs []string
	Resolve     map[string]string
}

// Unmerge takes one absorbed customer out of the survivor again.
type Unmerge struct {
	SurvivorID, AbsorbedID string
}

// Choice is how a merge sets one field of the survivor.
type Choice struct {
	Field      string
	CustomerID string // whose value it is ("" when unset; the survivor's id when its own)
	Rule       string // "survivor", "filled", "resolved", "united" (tags), "joined" (notes), "unset"
}

// MergePlan is a decided merge: the survivor as merged, the choice made
// for each field, the links it copies to the survivor, and the events that
// record it (the survivor's first: the merge, then the copied links; then
// each absorbed customer's).
type MergePlan struct {
	Survivor Customer
	Choices  []Choice
	Links    []MovedLink
	Events   []events.Event
}

// MovedLink is a link of an absorbed customer that a merge copies to the
// survivor.
type MovedLink struct {
	ContactID string
	From      string // the absorbed customer
	Primary   bool   // primary on the survivor too
}

// DecideMerge decides a merge of absorbed (in cmd.AbsorbedIDs' order) into
// survivor. The default rule: the survivor's non-empty values win; an empty
// one is filled from the absorbed customers, the most recently updated
// first; tags are united (the survivor's first); notes are joined (the
// survivor's first, each absorbed customer's after a blank line).
// cmd.Resolve overrides a field with the named customer's value. m.EventID
// and then m.NextID give the events' ids.
//
// The absorbed customers' links go with them: each contact an absorbed
// customer is linked to and the survivor is not gets a link to the
// survivor with the same attributes (primary only when the survivor has no
// primary contact yet, the first such), recorded with MergedFrom so that
// an unmerge can end it. The absorbed customer keeps its own links, hidden
// with it while it is merged, and is live again with them when unmerged.
//
// Errors: MovedTo or ErrNotFound for the survivor; a fault.Invalid error
// naming customerIds[i] or resolve.<field> for a bad reference, customerIds
// when the survivor would have more than MaxLinks links, or tags / notes
// when the merged value would exceed its limit.
func DecideMerge(survivor Customer, absorbed []Customer, cmd Merge, m Meta) (MergePlan, error) {
	switch {
	case survivor.MergedInto != "":
		return MergePlan{}, MovedTo(survivor.MergedInto)
	case !survivor.Exists():
		return MergePlan{}, ErrNotFound
	}
	var errs []fault.FieldError
	fail := func(f, msg string) { errs = append(errs, fault.FieldError{Field: f, Message: msg}) }
	if len(absorbed) == 0 || len(absorbed) > MaxMerge {
		fail("customerIds", "must name 1 to "+strconv.Itoa(MaxMerge)+" customers")
	}
	byID := map[string]Customer{survivor.ID: survivor}
	for i, a := range absorbed {
		f := "customerIds[" + strconv.Itoa(i) + "]"
		switch {
		case a.ID == survivor.ID:
			fail(f, "is the survivor")
		case byID[a.ID].ID != "":
			fail(f, "appears more than once")
		case a.Version == 0:
			fail(f, "no such customer")
		case a.MergedInto != "":
			fail(f, "is merged into "+a.MergedInto+" already")
		case a.Deleted:
			fail(f, "is deleted")
		}
		byID[a.ID] = a
	}
	for _, field := range sortedKeys(cmd.Resolve) {
		id := cmd.Resolve[field]
		if !slices.Contains(mergeFields, field) {
			fail("resolve."+field, "is not a field a merge resolves ("+strings.Join(mergeFields, ", ")+")")
		} else if _, ok := byID[id]; !ok || id == "" {
			fail("resolve."+field, "must be the survivor or one of customerIds")
		}
	}
	if len(errs) > 0 {
		return MergePlan{}, fault.InvalidFields(errs...)
	}

	// The absorbed customers, most recently updated first.
	newest := slices.Clone(absorbed)
	slices.SortStableFunc(newest, func(a, b Customer) int { return b.UpdatedAt.Compare(a.UpdatedAt) })

	merged := survivor
	merged.Tags = slices.Clone(survivor.Tags)
	var (
		choices []Choice
		sources []events.MergeSource
	)
	for _, field := range mergeFields {
		if id, ok := cmd.Resolve[field]; ok {
			src := byID[id]
			setField(&merged, field, src)
			choices = append(choices, Choice{Field: field, CustomerID: id, Rule: "resolved"})
			if id != survivor.ID && !sameField(survivor, merged, field) {
				sources = append(sources, events.MergeSource{Field: field, CustomerID: id})
			}
			continue
		}
		switch field {
		case "tags":
			rule := "survivor"
			for _, a := range newest {
				var added []string
				for _, t := range a.Tags {
					if !slices.Contains(merged.Tags, t) {
						merged.Tags = append(merged.Tags, t)
						added = append(added, t)
					}
				}
				if len(added) > 0 {
					rule = "united"
					sources = append(sources, events.MergeSource{Field: field, CustomerID: a.ID, Tags: added})
				}
			}
			choices = append(choices, Choice{Field: field, CustomerID: survivor.ID, Rule: rule})
		case "notes":
			rule := "survivor"
			for _, a := range newest {
				if a.Notes == "" || strings.Contains(merged.Notes, a.Notes) {
					continue
				}
				if merged.Notes == "" {
					merged.Notes = a.Notes
				} else {
					merged.Notes += "\n\n" + a.Notes
				}
				rule = "joined"
				sources = append(sources, events.MergeSource{Field: field, CustomerID: a.ID, Notes: a.Notes})
			}
			choices = append(choices, Choice{Field: field, CustomerID: survivor.ID, Rule: rule})
		default:
			if !fieldEmpty(survivor, field) {
				choices = append(choices, Choice{Field: field, CustomerID: survivor.ID, Rule: "survivor"})
				continue
			}
			ch := Choice{Field: field, Rule: "unset"}
			for _, a := range newest {
				if !fieldEmpty(a, field) {
					setField(&merged, field, a)
					ch = Choice{Field: field, CustomerID: a.ID, Rule: "filled"}
					sources = append(sources, events.MergeSource{Field: field, CustomerID: a.ID})
					break
				}
			}
			choices = append(choices, ch)
		}
	}
	if n := len(merged.Tags); n > MaxTags {
		fail("tags", "the merged customers have "+strconv.Itoa(n)+" distinct tags, at most "+strconv.Itoa(MaxTags)+
			": choose one customer's with resolve.tags")
	}
	if n := utf8.RuneCountInString(merged.Notes); n > MaxNotes {
		fail("notes", "the joined notes are "+strconv.Itoa(n)+" characters, at most "+strconv.Itoa(MaxNotes)+
			": choose one customer's with resolve.notes")
	}
	moved := movedLinks(survivor, absorbed)
	if n := len(survivor.Contacts) + len(moved); n > MaxLinks {
		fail("customerIds", "the merged customer would have "+strconv.Itoa(n)+" linked contacts, at most "+
			strconv.Itoa(MaxLinks)+": unlink some first")
	}
	if len(errs) > 0 {
		return MergePlan{}, fault.InvalidFields(errs...)
	}

	ids := EventIDs(m)
	at := m.Now.UTC()
	ev := func(c Customer, data events.Payload) events.Event {
		return events.Event{ID: ids(), Source: m.Source, AggregateID: c.ID, Time: at, Version: c.Version + 1, Actor: m.Actor,
			CorrelationID: m.CorrelationID, CausationID: m.CausationID, Data: data}
	}
	ch, prev := changesBetween(survivor, merged)
	var names []events.MergedCustomer
	for _, a := range absorbed {
		names = append(names, events.MergedCustomer{CustomerID: a.ID, CustomerCode: a.Code})
	}
	if sources == nil {
		sources = []events.MergeSource{}
	}
	evs := []events.Event{ev(survivor, &events.CustomersMerged{CustomerID: survivor.ID, CustomerCode: survivor.Code,
		Absorbed: names, Changes: ch, Previous: prev, Sources: sources, MergedBy: m.Actor, MergedAt: at})}
	after := Evolve(survivor, evs[0])
	for _, l := range moved {
		link := byID[l.From].Contacts[l.ContactID]
		link.Primary = l.Primary
		e := ev(after, &events.CustomerContactLinked{CustomerID: survivor.ID, CustomerCode: survivor.Code, ContactID: l.ContactID,
			Link: link.Attributes(), LinkedBy: m.Actor, LinkedAt: at, MergedFrom: l.From})
		evs = append(evs, e)
		after = Evolve(after, e)
	}
	for _, a := range absorbed {
		evs = append(evs, ev(a, &events.CustomerMergedInto{CustomerID: a.ID, CustomerCode: a.Code, SurvivorID: survivor.ID,
			SurvivorCode: survivor.Code, MergedBy: m.Actor, MergedAt: at}))
	}
	return MergePlan{Survivor: after, Choices: choices, Links: moved, Events: evs}, nil
}

// movedLinks returns the links of absorbed (in their order, each's
// contacts by id) to contacts the survivor is not linked to, each contact
// once: the first absorbed customer's link wins; a primary one stays
// primary only when the survivor has no primary contact and no link
// before it was made primary.
func movedLinks(survivor Customer, absorbed []Customer) []MovedLink {
	hasPrimary := false
	for _, l := range survivor.Contacts {
		hasPrimary = hasPrimary || l.Primary
	}
	var out []MovedLink
	seen := map[string]bool{}
	for _, a := range absorbed {
		for _, kid := range a.LinkedContacts() {
			if _, linked := survivor.Contacts[kid]; linked || seen[kid] {
				continue
			}
			seen[kid] = true
			primary := a.Contacts[kid].Primary && !hasPrimary
			hasPrimary = hasPrimary || primary
			out = append(out, MovedLink{ContactID: kid, From: a.ID, Primary: primary})
		}
	}
	return out
}

// UnmergeResult is a decided unmerge: its events (the survivor's first:
// the undo, then the ends of the links the merge copied; the absorbed
// customer's last) and the fields of the survivor it set back and kept.
type UnmergeResult struct {
	Events   []events.Event
	Reverted []string
	Kept     []string // changed since the merge: not set back
	// Unlinked are the contacts whose links the merge had copied from the
	// absorbed customer to the survivor, ended on the survivor (a link
	// changed since is kept).
	Unlinked []string
	Survivor Customer
	Absorbed Customer
}

// DecideUnmerge takes absorbed out of survivor: absorbed is live again as it
// was when merged; on the survivor, each field absorbed gave is set back to
// its value before the merge unless it was changed since (then kept and
// reported); tags lose the tags absorbed added, notes the text it
// appended; each link the merge copied from absorbed to the survivor, and
// unchanged since, ends (absorbed has its own). Errors: MovedTo or ErrNotFound for the survivor, a
// fault.Invalid error naming customerId when absorbed is not merged into
// survivor.
func DecideUnmerge(survivor, absorbed Customer, cmd Unmerge, m Meta) (UnmergeResult, error) {
	switch {
	case survivor.MergedInto != "":
		return UnmergeResult{}, MovedTo(survivor.MergedInto)
	case !survivor.Exists():
		return UnmergeResult{}, ErrNotFound
	case absorbed.Version == 0 || absorbed.MergedInto != survivor.ID:
		return UnmergeResult{}, fault.InvalidField("customerId", "is not merged into this customer")
	}
	var rec *MergeRecord
	for i := len(survivor.Merges) - 1; i >= 0 && rec == nil; i-- {
		mg := &survivor.Merges[i]
		if slices.ContainsFunc(mg.Absorbed, func(a events.MergedCustomer) bool { return a.CustomerID == absorbed.ID }) &&
			!slices.Contains(mg.Undone, absorbed.ID) {
			rec = mg
		}
	}
	if rec == nil { // its merged-into event without the survivor's: a corrupt stream
		return UnmergeResult{}, fault.New(fault.Internal, "no merge of the customer is recorded on the survivor")
	}
	back := survivor
	back.Tags = slices.Clone(survivor.Tags)
	mergedAs := applyChanges(Customer{Tags: []string{}}, rec.Changes) // the merged values of the changed fields
	before := applyChanges(Customer{Tags: []string{}}, rec.Previous)
	var reverted, kept []string
	for _, src := range rec.Sources {
		if src.CustomerID != absorbed.ID {
			continue
		}
		f := src.Field
		if !sameField(survivor, mergedAs, f) {
			kept = appendOnce(kept, f)
			continue
		}
		switch {
		case f == "tags" && len(src.Tags) > 0:
			back.Tags = slices.DeleteFunc(back.Tags, func(t string) bool {
				return slices.Contains(src.Tags, t) && !slices.Contains(before.Tags, t)
			})
		case f == "notes" && src.Notes != "":
			back.Notes = strings.TrimSpace(strings.Replace(back.Notes, src.Notes, "", 1))
			for strings.Contains(back.Notes, "\n\n\n\n") {
				back.Notes = strings.Replace(back.Notes, "\n\n\n\n", "\n\n", 1)
			}
		default:
			setField(&back, f, before)
		}
		reverted = appendOnce(reverted, f)
	}
	ids := EventIDs(m)
	at := m.Now.UTC()
	ch, _ := changesBetween(survivor, back)
	if kept == nil {
		kept = []string{}
	}
	base := events.Event{Source: m.Source, Time: at, Actor: m.Actor, CorrelationID: m.CorrelationID, CausationID: m.CausationID}
	undo := base
	undo.ID, undo.AggregateID, undo.Version = ids(), survivor.ID, survivor.Version+1
	undo.Data = &events.CustomerMergeUndone{CustomerID: survivor.ID, CustomerCode: survivor.Code, AbsorbedID: absorbed.ID,
		AbsorbedCode: absorbed.Code, Changes: ch, Kept: kept, UndoneBy: m.Actor, UndoneAt: at}
	evs := []events.Event{undo}
	after := Evolve(survivor, undo)
	var unlinked []string
	for _, kid := range survivor.LinkedContacts() {
		if survivor.Contacts[kid].MergedFrom != absorbed.ID {
			continue
		}
		e := base
		e.ID, e.AggregateID, e.Version = ids(), survivor.ID, after.Version+1
		e.Data = &events.CustomerContactUnlinked{CustomerID: survivor.ID, CustomerCode: survivor.Code, ContactID: kid,
			Reason: events.UnlinkRemoved, UnlinkedBy: m.Actor, UnlinkedAt: at}
		evs = append(evs, e)
		after = Evolve(after, e)
		unlinked = append(unlinked, kid)
	}
	back2 := base
	back2.ID, back2.AggregateID, back2.Version = ids(), absorbed.ID, absorbed.Version+1
	back2.Data = &events.CustomerUnmerged{CustomerID: absorbed.ID, CustomerCode: absorbed.Code, SurvivorID: survivor.ID,
		UnmergedBy: m.Actor, UnmergedAt: at}
	evs = append(evs, back2)
	if unlinked == nil {
		unlinked = []string{}
	}
	return UnmergeResult{Events: evs, Reverted: reverted, Kept: kept, Unlinked: unlinked,
		Survivor: after, Absorbed: Evolve(absorbed, back2)}, nil
}

// EventIDs returns m.EventID, then m.NextID for every further id.
func EventIDs(m Meta) func() string {
	first := true
	return func() string {
		if first {
			first = false
			return m.EventID
		}
		return m.NextID()
	}
}

// changesBetween returns the fields in which b differs from a: b's values
// (changes) and a's (previous), each null where unset.
func changesBetween(a, b Customer) (changes, previous events.Changes) {
	str := func(x, y string) (events.Change[string], events.Change[string]) {
		if x == y {
			return events.Change[string]{}, events.Change[string]{}
		}
		return strChange(y), strChange(x)
	}
	changes.Name, previous.Name = str(a.Name, b.Name)
	changes.Email, previous.Email = str(a.Email, b.Email)
	changes.Phone, previous.Phone = str(a.Phone, b.Phone)
	changes.Company, previous.Company = str(a.Company, b.Company)
	changes.Type, previous.Type = str(a.Type, b.Type)
	changes.Status, previous.Status = str(a.Status, b.Status)
	changes.Notes, previous.Notes = str(a.Notes, b.Notes)
	changes.ExternalID, previous.ExternalID = str(a.ExternalID, b.ExternalID)
	if a.Address != b.Address {
		changes.Address, previous.Address = addrChange(b.Address), addrChange(a.Address)
	}
	if !slices.Equal(a.Tags, b.Tags) {
		changes.Tags, previous.Tags = events.SetTo(slices.Clone(nonNilTags(b.Tags))), events.SetTo(slices.Clone(nonNilTags(a.Tags)))
	}
	return changes, previous
}

func strChange(v string) events.Change[string] {
	if v == "" {
		return events.Cleared[string]()
	}
	return events.SetTo(v)
}

func addrChange(a Address) events.Change[events.Address] {
	if a.IsZero() {
		return events.Cleared[events.Address]()
	}
	return events.SetTo(toEventAddress(a))
}

func nonNilTags(t []string) []string {
	if t == nil {
		return []string{}
	}
	return t
}

// fieldEmpty reports whether c's field is unset.
func fieldEmpty(c Customer, field string) bool {
	switch field {
	case "address":
		return c.Address.IsZero()
	case "tags":
		return len(c.Tags) == 0
	}
	return *stringField(&c, field) == ""
}

// sameField reports whether a and b have the same value of field.
func sameField(a, b Customer, field string) bool {
	switch field {
	case "address":
		return a.Address == b.Address
	case "tags":
		return slices.Equal(a.Tags, b.Tags)
	}
	return *stringField(&a, field) == *stringField(&b, field)
}

// setField sets dst's field to src's value.
func setField(dst *Customer, field string, src Customer) {
	switch field {
	case "address":
		dst.Address = src.Address
	case "tags":
		dst.Tags = slices.Clone(nonNilTags(src.Tags))
	default:
		*stringField(dst, field) = *stringField(&src, field)
	}
}

func stringField(c *Customer, field string) *string {
	switch field {
	case "name":
		return &c.Name
	case "email":
		return &c.Email
	case "phone":
		return &c.Phone
	case "company":
		return &c.Company
	case "type":
		return &c.Type
	case "status":
		return &c.Status
	case "notes":
		return &c.Notes
	}
	panic("customer: no string field " + field)
}

func appendOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp.Compare[string])
	return keys
}
