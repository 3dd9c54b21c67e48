package customer

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"crm/internal/events"
	"crm/internal/fault"
)

// mergeMeta is a Meta that numbers every event id of a decision.
func mergeMeta(i int) Meta {
	m := meta(i)
	n := 0
	m.NextID = func() string { n++; return fmt.Sprintf("00000000-0000-4000-9000-%012d", i*100+n) }
	return m
}

// customerState creates a customer with id and code from in, updated at at.
func customerState(t *testing.T, id, code string, at time.Time, in Input) Customer {
	t.Helper()
	m := meta(0)
	m.Now = at
	evs, err := Decide(Customer{}, Create{CustomerID: id, Code: code, Input: in}, m)
	if err != nil {
		t.Fatal(err)
	}
	return Fold(evs)
}

func mergeRig(t *testing.T) (survivor, older, newer Customer) {
	survivor = customerState(t, "00000000-0000-4000-8000-00000000000a", "C010", t0,
		Input{Name: set("Ann Survivor"), Phone: set("+1 555 0100"), Tags: setTags("a"), Notes: set("survivor notes")})
	older = customerState(t, "00000000-0000-4000-8000-00000000000b", "C011", t0.Add(time.Hour),
		Input{Name: set("Ann Older"), Email: set("older@example.com"), Company: set("Older Co"), Tags: setTags("b"),
			Notes: set("older notes"), Address: addrSet(AddressInput{City: set("Oslo")})})
	newer = customerState(t, "00000000-0000-4000-8000-00000000000c", "C012", t0.Add(2*time.Hour),
		Input{Name: set("Ann Newer"), Email: set("newer@example.com"), Tags: setTags("a", "c"), Status: set(StatusActive)})
	return
}

// TestDecideMergeDefaults: the survivor's values win, empty ones are filled
// from the most recently updated absorbed customer, tags are united, notes
// joined; one event on the survivor and one on each absorbed customer.
func TestDecideMergeDefaults(t *testing.T) {
	s, older, newer := mergeRig(t)
	plan, err := DecideMerge(s, []Customer{older, newer}, Merge{SurvivorID: s.ID, AbsorbedIDs: []string{older.ID, newer.ID}}, mergeMeta(5))
	if err != nil {
		t.Fatal(err)
	}
	got := plan.Survivor
	if got.Name != "Ann Survivor" || got.Email != "newer@example.com" || got.Company != "Older Co" || got.Phone != "+1 555 0100" ||
		got.Address.City != "Oslo" || got.Status != StatusLead || !slices.Equal(got.Tags, []string{"a", "c", "b"}) ||
		got.Notes != "survivor notes\n\nolder notes" || got.Version != 2 {
		t.Fatalf("merged survivor %+v", got)
	}
	rules := map[string]string{}
	for _, c := range plan.Choices {
		rules[c.Field] = c.Rule + ":" + c.CustomerID
	}
	want := map[string]string{"name": "survivor:" + s.ID, "email": "filled:" + newer.ID, "phone": "survivor:" + s.ID,
		"company": "filled:" + older.ID, "address": "filled:" + older.ID, "type": "survivor:" + s.ID, "status": "survivor:" + s.ID,
		"notes": "joined:" + s.ID, "tags": "united:" + s.ID}
	if !reflect.DeepEqual(rules, want) {
		t.Errorf("choices %v\nwant    %v", rules, want)
	}
	if len(plan.Events) != 3 {
		t.Fatalf("%d events", len(plan.Events))
	}
	m := plan.Events[0].Data.(*events.CustomersMerged)
	if plan.Events[0].AggregateID != s.ID || plan.Events[0].Version != 2 || plan.Events[0].ID != meta(5).EventID ||
		len(m.Absorbed) != 2 || m.Changes.Email.Value != "newer@example.com" || !m.Previous.Email.Null ||
		!slices.Equal(m.Previous.Tags.Value, []string{"a"}) || m.Changes.Name.Set {
		t.Errorf("merged event %+v", m)
	}
	srcs := map[string]string{}
	for _, src := range m.Sources {
		srcs[src.Field+"/"+src.CustomerID] = strings.Join(src.Tags, ",") + src.Notes
	}
	if want := map[string]string{"email/" + newer.ID: "", "company/" + older.ID: "", "address/" + older.ID: "",
		"tags/" + newer.ID: "c", "tags/" + older.ID: "b", "notes/" + older.ID: "older notes"}; !reflect.DeepEqual(srcs, want) {
		t.Errorf("sources %v\nwant    %v", srcs, want)
	}
	for i, a := range []Customer{older, newer} {
		e := plan.Events[i+1]
		d, ok := e.Data.(*events.CustomerMergedInto)
		if !ok || e.AggregateID != a.ID || e.Version != a.Version+1 || d.SurvivorID != s.ID || e.ID == plan.Events[0].ID {
			t.Errorf("absorbed event %d: %+v %+v", i, e, e.Data)
		}
	}
	// The fold: the absorbed customer answers with the survivor.
	gone := Evolve(older, plan.Events[1])
	if gone.Exists() || gone.MergedInto != s.ID {
		t.Fatalf("absorbed state %+v", gone)
	}
	for _, cmd := range []Command{Update{CustomerID: older.ID, Input: Input{Name: set("x")}}, Delete{CustomerID: older.ID},
		Restore{CustomerID: older.ID}} {
		if _, err := Decide(gone, cmd, meta(6)); fault.KindOf(err) != fault.Moved || fault.Of(err).Ref != s.ID {
			t.Errorf("%T on an absorbed customer: %v", cmd, err)
		}
	}
	if codes := Evolve(s, plan.Events[0]).AbsorbedCodes(); !slices.Equal(codes, []string{"C011", "C012"}) {
		t.Errorf("absorbed codes %v", codes)
	}
}

func TestDecideMergeResolve(t *testing.T) {
	s, older, newer := mergeRig(t)
	plan, err := DecideMerge(s, []Customer{older, newer}, Merge{SurvivorID: s.ID, AbsorbedIDs: []string{older.ID, newer.ID},
		Resolve: map[string]string{"email": older.ID, "name": newer.ID, "tags": s.ID, "notes": older.ID, "status": newer.ID}}, mergeMeta(1))
	if err != nil {
		t.Fatal(err)
	}
	got := plan.Survivor
	if got.Email != "older@example.com" || got.Name != "Ann Newer" || !slices.Equal(got.Tags, []string{"a"}) ||
		got.Notes != "older notes" || got.Status != StatusActive {
		t.Fatalf("resolved survivor %+v", got)
	}
}

func TestDecideMergeRefusals(t *testing.T) {
	s, older, newer := mergeRig(t)
	deleted := Evolve(newer, mustDecide(t, newer, Delete{CustomerID: newer.ID}, meta(1))[0])
	absorbedElsewhere := older
	absorbedElsewhere.MergedInto = "00000000-0000-4000-8000-0000000000ff"
	tests := []struct {
		name     string
		survivor Customer
		absorbed []Customer
		resolve  map[string]string
		kind     fault.Kind
		field    string
	}{
		{"survivor unknown", Customer{}, []Customer{older}, nil, fault.NotFound, ""},
		{"survivor merged", absorbedElsewhere, []Customer{newer}, nil, fault.Moved, ""},
		{"nobody to absorb", s, nil, nil, fault.Invalid, "customerIds"},
		{"absorb the survivor", s, []Customer{s}, nil, fault.Invalid, "customerIds[0]"},
		{"absorb twice", s, []Customer{older, older}, nil, fault.Invalid, "customerIds[1]"},
		{"absorb an unknown", s, []Customer{older, {ID: "00000000-0000-4000-8000-0000000000ee"}}, nil, fault.Invalid, "customerIds[1]"},
		{"absorb a deleted", s, []Customer{deleted}, nil, fault.Invalid, "customerIds[0]"},
		{"absorb a merged", s, []Customer{absorbedElsewhere}, nil, fault.Invalid, "customerIds[0]"},
		{"resolve an unknown field", s, []Customer{older}, map[string]string{"createdBy": older.ID}, fault.Invalid, "resolve.createdBy"},
		{"resolve to a stranger", s, []Customer{older}, map[string]string{"email": newer.ID}, fault.Invalid, "resolve.email"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ids []string
			for _, a := range tc.absorbed {
				ids = append(ids, a.ID)
			}
			_, err := DecideMerge(tc.survivor, tc.absorbed, Merge{SurvivorID: tc.survivor.ID, AbsorbedIDs: ids, Resolve: tc.resolve}, mergeMeta(1))
			if fault.KindOf(err) != tc.kind {
				t.Fatalf("err %v, want kind %s", err, tc.kind)
			}
			if tc.field != "" && !slices.ContainsFunc(fault.Fields(err), func(f fault.FieldError) bool { return f.Field == tc.field }) {
				t.Fatalf("err %v does not name %s", err, tc.field)
			}
		})
	}
	// Tags beyond the limit: refused, naming tags.
	many := func(p string) []string {
		var out []string
		for i := range 30 {
			out = append(out, fmt.Sprintf("%s%d", p, i))
		}
		return out
	}
	a, b := older, newer
	a.Tags, b.Tags = many("x"), many("y")
	if _, err := DecideMerge(s, []Customer{a, b}, Merge{SurvivorID: s.ID}, mergeMeta(1)); !slices.ContainsFunc(fault.Fields(err),
		func(f fault.FieldError) bool { return f.Field == "tags" }) {
		t.Fatalf("61 tags: %v", err)
	}
}

// TestDecideUnmerge: an absorbed customer taken out is live again as it was;
// the survivor gets back the values it had before, except those changed
// since (kept and reported); tags and notes lose what it gave.
func TestDecideUnmerge(t *testing.T) {
	s, older, newer := mergeRig(t)
	plan, err := DecideMerge(s, []Customer{older, newer}, Merge{SurvivorID: s.ID, AbsorbedIDs: []string{older.ID, newer.ID}}, mergeMeta(1))
	if err != nil {
		t.Fatal(err)
	}
	s = plan.Survivor
	olderGone, newerGone := Evolve(older, plan.Events[1]), Evolve(newer, plan.Events[2])
	// The survivor's address is changed after the merge.
	s = Evolve(s, mustDecide(t, s, Update{CustomerID: s.ID, Input: Input{Address: addrSet(AddressInput{City: set("Bergen")})}}, meta(2))[0])

	res, err := DecideUnmerge(s, olderGone, Unmerge{SurvivorID: s.ID, AbsorbedID: older.ID}, mergeMeta(3))
	if err != nil {
		t.Fatal(err)
	}
	got := res.Survivor
	if got.Company != "" || got.Address.City != "Bergen" || got.Email != "newer@example.com" ||
		!slices.Equal(got.Tags, []string{"a", "c"}) || got.Notes != "survivor notes" {
		t.Fatalf("survivor after the unmerge %+v", got)
	}
	if !slices.Equal(res.Kept, []string{"address"}) || !slices.Contains(res.Reverted, "company") || !slices.Contains(res.Reverted, "tags") {
		t.Errorf("reverted %v, kept %v", res.Reverted, res.Kept)
	}
	back := res.Absorbed
	if !back.Exists() || back.MergedInto != "" || back.Email != "older@example.com" || back.Version != older.Version+2 {
		t.Fatalf("unmerged customer %+v", back)
	}
	if codes := got.AbsorbedCodes(); !slices.Equal(codes, []string{"C012"}) {
		t.Errorf("absorbed codes after the unmerge %v", codes)
	}
	// Not merged into this survivor (any more): refused.
	if _, err := DecideUnmerge(got, back, Unmerge{SurvivorID: s.ID, AbsorbedID: older.ID}, mergeMeta(4)); fault.KindOf(err) != fault.Invalid {
		t.Errorf("second unmerge: %v", err)
	}
	// The other one, too: the survivor is as it was (but for the address
	// changed since).
	res2, err := DecideUnmerge(got, newerGone, Unmerge{SurvivorID: s.ID, AbsorbedID: newer.ID}, mergeMeta(5))
	if err != nil {
		t.Fatal(err)
	}
	if g := res2.Survivor; g.Email != "" || !slices.Equal(g.Tags, []string{"a"}) || len(g.AbsorbedCodes()) != 0 {
		t.Fatalf("survivor after both unmerges %+v", g)
	}
}

// TestDecideMergeLinks: the absorbed customers' links to contacts the
// survivor lacks are copied to it (each contact once, the first absorbed
// customer's link; primary only while the survivor has none), recorded
// with MergedFrom after the merge event; beyond MaxLinks the merge is
// refused naming customerIds; an unmerge ends the copies from that
// customer still marked, and keeps a changed one.
func TestDecideMergeLinks(t *testing.T) {
	s, older, newer := mergeRig(t)
	kid := func(n int) string { return fmt.Sprintf("00000000-0000-4000-a000-%012d", n) }
	at := t0.Add(3 * time.Hour)
	s.Contacts = map[string]Link{kid(1): {Role: "own", LinkedBy: "u", LinkedAt: at}}
	older.Contacts = map[string]Link{kid(1): {Role: "dup"}, kid(2): {Role: "cfo", Primary: true, From: "2025-01-01"}, kid(3): {Role: "x"}}
	newer.Contacts = map[string]Link{kid(3): {Role: "y", Primary: true}, kid(4): {Primary: true}}
	plan, err := DecideMerge(s, []Customer{older, newer}, Merge{SurvivorID: s.ID}, mergeMeta(1))
	if err != nil {
		t.Fatal(err)
	}
	want := []MovedLink{{kid(2), older.ID, true}, {kid(3), older.ID, false}, {kid(4), newer.ID, false}}
	if !slices.Equal(plan.Links, want) {
		t.Fatalf("links %+v, want %+v", plan.Links, want)
	}
	var kinds []string
	for _, e := range plan.Events {
		kinds = append(kinds, e.AggregateID[len(e.AggregateID)-1:]+":"+string(e.Kind())+":"+fmt.Sprint(e.Version))
		if d, ok := e.Data.(*events.CustomerContactLinked); ok && (d.MergedFrom == "" || d.CustomerID != s.ID) {
			t.Errorf("a copied link without its origin: %+v", d)
		}
	}
	if got := strings.Join(kinds, " "); got != "a:merged:2 a:contactlinked:3 a:contactlinked:4 a:contactlinked:5 b:mergedinto:2 c:mergedinto:2" {
		t.Errorf("events %s", got)
	}
	if l := plan.Survivor.Contacts[kid(2)]; l.Role != "cfo" || !l.Primary || l.From != "2025-01-01" || l.MergedFrom != older.ID ||
		len(plan.Survivor.Contacts) != 4 || plan.Survivor.Contacts[kid(1)].Role != "own" || plan.Survivor.Version != 5 {
		t.Errorf("survivor after the merge: %d links %+v, version %d", len(plan.Survivor.Contacts), plan.Survivor.Contacts, plan.Survivor.Version)
	}

	// Unmerge of older: its copies (2, 3) end, unless changed since (3).
	merged := plan.Survivor
	absorbed := Fold(nil)
	for _, e := range plan.Events {
		if e.AggregateID == older.ID {
			absorbed = Evolve(older, e)
		}
	}
	changed := merged.Contacts[kid(3)]
	changed.Role, changed.MergedFrom = "changed", ""
	merged.Contacts[kid(3)] = changed
	res, err := DecideUnmerge(merged, absorbed, Unmerge{SurvivorID: s.ID, AbsorbedID: older.ID}, mergeMeta(2))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Unlinked, []string{kid(2)}) || len(res.Events) != 3 {
		t.Fatalf("unmerge: unlinked %v, %d events", res.Unlinked, len(res.Events))
	}
	if d, ok := res.Events[1].Data.(*events.CustomerContactUnlinked); !ok || d.ContactID != kid(2) || d.Reason != events.UnlinkRemoved ||
		res.Events[1].Version != merged.Version+2 || res.Events[2].AggregateID != older.ID {
		t.Errorf("unmerge events: %+v", res.Events)
	}
	if _, ok := res.Survivor.Contacts[kid(2)]; ok || len(res.Survivor.Contacts) != 3 || len(res.Absorbed.Contacts) != 3 {
		t.Errorf("after the unmerge: survivor %v, absorbed %v", res.Survivor.Contacts, res.Absorbed.Contacts)
	}

	// Too many links on the survivor: refused.
	big := map[string]Link{}
	for i := range MaxLinks - 1 {
		big[kid(100+i)] = Link{}
	}
	s.Contacts = big
	if _, err := DecideMerge(s, []Customer{older, newer}, Merge{SurvivorID: s.ID}, mergeMeta(1)); !slices.ContainsFunc(fault.Fields(err),
		func(f fault.FieldError) bool {
			return f.Field == "customerIds" && strings.Contains(f.Message, "203 linked contacts")
		}) {
		t.Errorf("a merge beyond MaxLinks: %v", err)
	}
}

// TestRestoreLinksAgain: a deletion remembers the links it ended; a
// restore links them again (after its own event, as they were) except to
// the contacts named gone, and forgets them.
func TestRestoreLinksAgain(t *testing.T) {
	s, _, _ := mergeRig(t)
	kid := func(n int) string { return fmt.Sprintf("00000000-0000-4000-a000-%012d", n) }
	s.Contacts = map[string]Link{kid(1): {Role: "billing", Primary: true}, kid(2): {Role: "cto"}, kid(3): {}}
	deleted := s
	for _, e := range mustDecide(t, s, Delete{CustomerID: s.ID}, mergeMeta(1)) {
		deleted = Evolve(deleted, e)
	}
	if len(deleted.Contacts) != 0 || len(deleted.EndedLinks) != 3 || !deleted.Deleted {
		t.Fatalf("deleted: links %v, ended %v", deleted.Contacts, deleted.EndedLinks)
	}
	evs := mustDecide(t, deleted, Restore{CustomerID: s.ID, Gone: map[string]bool{kid(2): true}}, mergeMeta(2))
	var got []string
	for _, e := range evs {
		got = append(got, string(e.Kind())+":"+fmt.Sprint(e.Version))
	}
	if strings.Join(got, " ") != fmt.Sprintf("restored:%d contactlinked:%d contactlinked:%d", deleted.Version+1, deleted.Version+2, deleted.Version+3) {
		t.Fatalf("restore events %v", got)
	}
	back := deleted
	for _, e := range evs {
		back = Evolve(back, e)
	}
	if l := back.Contacts[kid(1)]; len(back.Contacts) != 2 || l.Role != "billing" || !l.Primary || back.EndedLinks != nil || back.Deleted {
		t.Errorf("restored: links %v, ended %v", back.Contacts, back.EndedLinks)
	}
}
