package customer

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"crm/internal/events"
	"crm/internal/fault"
)

const (
	testCustomerID = "0b9e8a52-7c1f-4d6e-9a3b-2f4c5d6e7f80"
	testCode       = "C001"
	testActor      = "5f0c2d1e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"
	testEditor     = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
)

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)

func meta(i int) Meta {
	return Meta{
		Actor:         testActor,
		Now:           t0.Add(time.Duration(i) * time.Minute),
		EventID:       "00000000-0000-4000-8000-" + pad12(i),
		Source:        "/crm/test",
		CorrelationID: "req-" + pad12(i),
		CausationID:   "",
	}
}

func pad12(i int) string { return fmt.Sprintf("%012d", i) }

// fullInput is a create input with every field set.
func fullInput() Input {
	return Input{
		Name:    set("Ada Lovelace"),
		Email:   set("ada@example.com"),
		Phone:   set("+44 20 7946 0000"),
		Company: set("Analytical Engines Ltd"),
		Address: addrSet(AddressInput{
			Street: set("12 St James's Square"), City: set("London"), State: set("Greater London"),
			Country: set("UK"), PostalCode: set("SW1Y 4JH"),
		}),
		Type:   set("business"),
		Status: set("active"),
		Notes:  set("Met at the\nRoyal Society"),
		Tags:   setTags("vip", "math"),
	}
}

// mustDecide runs Decide and fails on an error.
func mustDecide(t testing.TB, state Customer, cmd Command, m Meta) []events.Event {
	t.Helper()
	evs, err := Decide(state, cmd, m)
	if err != nil {
		t.Fatalf("Decide(%T): %v", cmd, err)
	}
	return evs
}

// created returns the state after a create with in (sequence 1).
func createdState(t testing.TB, in Input) Customer {
	t.Helper()
	evs := mustDecide(t, Customer{}, Create{CustomerID: testCustomerID, Code: testCode, Input: in}, meta(0))
	evs[0].Seq = 1
	return Fold(evs)
}

func strptr(s string) *string { return &s }

func TestDecideCreate(t *testing.T) {
	tests := []struct {
		name string
		in   Input
		want *events.CustomerCreated
	}{
		{
			name: "minimal input gets the defaults",
			in:   Input{Name: set("  Ada ")},
			want: &events.CustomerCreated{
				CustomerID: testCustomerID, CustomerCode: testCode, Name: "Ada",
				Type: TypeIndividual, Status: StatusLead, Tags: []string{},
				CreatedBy: testActor, CreatedAt: t0,
			},
		},
		{
			name: "nulls and empties are unset",
			in: Input{Name: set("Ada"), Email: null(), Phone: set(""), Company: set("  "), Notes: null(),
				Address: AddressInput{Set: true, Null: true}, Tags: nullTags()},
			want: &events.CustomerCreated{
				CustomerID: testCustomerID, CustomerCode: testCode, Name: "Ada",
				Type: TypeIndividual, Status: StatusLead, Tags: []string{},
				CreatedBy: testActor, CreatedAt: t0,
			},
		},
		{
			name: "address with only empty sub-fields is no address",
			in:   Input{Name: set("Ada"), Address: addrSet(AddressInput{City: set(" "), Street: null()})},
			want: &events.CustomerCreated{
				CustomerID: testCustomerID, CustomerCode: testCode, Name: "Ada",
				Type: TypeIndividual, Status: StatusLead, Tags: []string{},
				CreatedBy: testActor, CreatedAt: t0,
			},
		},
		{
			name: "partial address",
			in:   Input{Name: set("Ada"), Address: addrSet(AddressInput{City: set("London")})},
			want: &events.CustomerCreated{
				CustomerID: testCustomerID, CustomerCode: testCode, Name: "Ada",
				Address: &events.Address{City: "London"},
				Type:    TypeIndividual, Status: StatusLead, Tags: []string{},
				CreatedBy: testActor, CreatedAt: t0,
			},
		},
		{
			name: "full customer",
			in:   fullInput(),
			want: &events.CustomerCreated{
				CustomerID: testCustomerID, CustomerCode: testCode, Name: "Ada Lovelace",
				Email: strptr("ada@example.com"), Phone: strptr("+44 20 7946 0000"),
				Company: strptr("Analytical Engines Ltd"),
				Address: &events.Address{Street: "12 St James's Square", City: "London", State: "Greater London",
					Country: "UK", PostalCode: "SW1Y 4JH"},
				Type: TypeBusiness, Status: StatusActive, Notes: strptr("Met at the\nRoyal Society"),
				Tags: []string{"vip", "math"}, CreatedBy: testActor, CreatedAt: t0,
			},
		},
		{
			name: "tags normalised",
			in:   Input{Name: set("Ada"), Tags: setTags(" b ", "a", "b")},
			want: &events.CustomerCreated{
				CustomerID: testCustomerID, CustomerCode: testCode, Name: "Ada",
				Type: TypeIndividual, Status: StatusLead, Tags: []string{"b", "a"},
				CreatedBy: testActor, CreatedAt: t0,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := meta(0)
			m.CausationID = "cause-1"
			evs := mustDecide(t, Customer{}, Create{CustomerID: testCustomerID, Code: testCode, Input: tc.in}, m)
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			want := events.Event{
				ID: m.EventID, Source: m.Source, AggregateID: testCustomerID, Time: t0, Version: 1,
				Actor: testActor, CorrelationID: m.CorrelationID, CausationID: "cause-1", Data: tc.want,
			}
			if !reflect.DeepEqual(evs[0], want) {
				t.Fatalf("event =\n%#v\nwant\n%#v\ndata = %#v", evs[0], want, evs[0].Data)
			}
			if evs[0].Kind() != events.KindCreated {
				t.Errorf("kind = %s", evs[0].Kind())
			}
		})
	}
}

func TestDecideCreateTimeIsUTC(t *testing.T) {
	m := meta(0)
	m.Now = t0.In(time.FixedZone("CET", 3600))
	evs := mustDecide(t, Customer{}, Create{CustomerID: testCustomerID, Code: testCode, Input: Input{Name: set("Ada")}}, m)
	d := evs[0].Data.(*events.CustomerCreated)
	if evs[0].Time.Location() != time.UTC || d.CreatedAt.Location() != time.UTC || !d.CreatedAt.Equal(t0) {
		t.Errorf("time %v / createdAt %v, want %v in UTC", evs[0].Time, d.CreatedAt, t0)
	}
}

func TestDecideCreateErrors(t *testing.T) {
	existing := createdState(t, Input{Name: set("Ada")})
	deleted := Fold([]events.Event{
		mustDecide(t, Customer{}, Create{CustomerID: testCustomerID, Code: testCode, Input: Input{Name: set("Ada")}}, meta(0))[0],
		mustDecide(t, existing, Delete{CustomerID: testCustomerID}, meta(1))[0],
	})
	tests := []struct {
		name       string
		state      Customer
		in         Input
		wantErr    error
		wantFields []string
	}{
		{name: "existing customer", state: existing, in: Input{Name: set("Bob")}, wantErr: ErrAlreadyExists},
		{name: "deleted customer", state: deleted, in: Input{Name: set("Bob")}, wantErr: ErrAlreadyExists},
		{name: "existing customer, invalid input", state: existing, in: Input{}, wantErr: ErrAlreadyExists},
		{name: "name missing", in: Input{Email: set("a@b.co")}, wantFields: []string{"name"}},
		{name: "name null", in: Input{Name: null()}, wantFields: []string{"name"}},
		{name: "type null", in: Input{Name: set("Ada"), Type: null()}, wantFields: []string{"type"}},
		{name: "several", in: Input{Name: set("Ada"), Email: set("a"), Tags: setTags("x", " ")}, wantFields: []string{"email", "tags[1]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := Decide(tc.state, Create{CustomerID: testCustomerID, Code: "C002", Input: tc.in}, meta(5))
			if evs != nil {
				t.Errorf("events = %v, want none", evs)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			checkFields(t, err, tc.wantFields)
		})
	}
}

// TestDecideUpdate covers the merge-patch cases. Each case starts from the
// full customer (fullInput) at version 1.
func TestDecideUpdate(t *testing.T) {
	base := createdState(t, fullInput())
	fullAddr := events.Address{Street: "12 St James's Square", City: "London", State: "Greater London", Country: "UK", PostalCode: "SW1Y 4JH"}

	tests := []struct {
		name       string
		in         Input
		want       *events.Changes // nil = no event
		wantFields []string
	}{
		{name: "empty patch changes nothing", in: Input{}},
		{name: "same values change nothing", in: Input{
			Name: set("Ada Lovelace"), Email: set("ada@example.com"), Type: set("business"),
			Status: set("active"), Tags: setTags("vip", "math"),
			Address: addrSet(AddressInput{City: set("London")}),
		}},
		{name: "same values after normalisation change nothing", in: Input{
			Name: set("  Ada Lovelace "), Tags: setTags(" vip", "math", "vip"), Email: set(" ada@example.com"),
		}},
		{name: "empty address object changes nothing", in: Input{Address: addrSet(AddressInput{})}},
		{name: "set name", in: Input{Name: set("Augusta Ada King")},
			want: &events.Changes{Name: events.SetTo("Augusta Ada King")}},
		{name: "set name trims", in: Input{Name: set(" Augusta ")},
			want: &events.Changes{Name: events.SetTo("Augusta")}},
		{name: "only changed fields appear", in: Input{Name: set("Ada Lovelace"), Email: set("ada@lovelace.org"), Status: set("active")},
			want: &events.Changes{Email: events.SetTo("ada@lovelace.org")}},
		{name: "set every scalar", in: Input{
			Name: set("A"), Email: set("a@b.co"), Phone: set("1"), Company: set("C"),
			Type: set("individual"), Status: set("inactive"), Notes: set("n"),
		}, want: &events.Changes{
			Name: events.SetTo("A"), Email: events.SetTo("a@b.co"), Phone: events.SetTo("1"), Company: events.SetTo("C"),
			Type: events.SetTo("individual"), Status: events.SetTo("inactive"), Notes: events.SetTo("n"),
		}},
		{name: "null email clears", in: Input{Email: null()}, want: &events.Changes{Email: events.Cleared[string]()}},
		{name: "empty email clears", in: Input{Email: set("")}, want: &events.Changes{Email: events.Cleared[string]()}},
		{name: "null phone clears", in: Input{Phone: null()}, want: &events.Changes{Phone: events.Cleared[string]()}},
		{name: "null company clears", in: Input{Company: null()}, want: &events.Changes{Company: events.Cleared[string]()}},
		{name: "null notes clears", in: Input{Notes: null()}, want: &events.Changes{Notes: events.Cleared[string]()}},
		{name: "null all optional", in: Input{Email: null(), Phone: null(), Company: null(), Notes: null()},
			want: &events.Changes{Email: events.Cleared[string](), Phone: events.Cleared[string](),
				Company: events.Cleared[string](), Notes: events.Cleared[string]()}},
		{name: "null name rejected", in: Input{Name: null()}, wantFields: []string{"name"}},
		{name: "empty name rejected", in: Input{Name: set("")}, wantFields: []string{"name"}},
		{name: "null type rejected", in: Input{Type: null()}, wantFields: []string{"type"}},
		{name: "null status rejected", in: Input{Status: null()}, wantFields: []string{"status"}},
		{name: "invalid fields with valid ones: nothing applied", in: Input{Email: set("x"), Phone: set("2")}, wantFields: []string{"email"}},
		{name: "address set city keeps the rest", in: Input{Address: addrSet(AddressInput{City: set("Paris")})},
			want: &events.Changes{Address: events.SetTo(func() events.Address { a := fullAddr; a.City = "Paris"; return a }())}},
		{name: "address null sub-field clears it", in: Input{Address: addrSet(AddressInput{State: null()})},
			want: &events.Changes{Address: events.SetTo(func() events.Address { a := fullAddr; a.State = ""; return a }())}},
		{name: "address empty sub-field clears it", in: Input{Address: addrSet(AddressInput{PostalCode: set(" ")})},
			want: &events.Changes{Address: events.SetTo(func() events.Address { a := fullAddr; a.PostalCode = ""; return a }())}},
		{name: "address null clears all", in: Input{Address: AddressInput{Set: true, Null: true}},
			want: &events.Changes{Address: events.Cleared[events.Address]()}},
		{name: "address clearing every sub-field is a clear", in: Input{Address: addrSet(AddressInput{
			Street: null(), City: null(), State: set(""), Country: null(), PostalCode: null(),
		})}, want: &events.Changes{Address: events.Cleared[events.Address]()}},
		{name: "address sub-field too long", in: Input{Address: addrSet(AddressInput{Country: set(rep("x", 201))})}, wantFields: []string{"address.country"}},
		{name: "tags replace the list", in: Input{Tags: setTags("new")}, want: &events.Changes{Tags: events.SetTo([]string{"new"})}},
		{name: "tags reorder is a change", in: Input{Tags: setTags("math", "vip")}, want: &events.Changes{Tags: events.SetTo([]string{"math", "vip"})}},
		{name: "tags normalised", in: Input{Tags: setTags(" new ", "new", "vip")}, want: &events.Changes{Tags: events.SetTo([]string{"new", "vip"})}},
		{name: "tags null gives empty list", in: Input{Tags: nullTags()}, want: &events.Changes{Tags: events.SetTo([]string{})}},
		{name: "tags empty list", in: Input{Tags: setTags()}, want: &events.Changes{Tags: events.SetTo([]string{})}},
		{name: "tags invalid", in: Input{Tags: setTags("ok", "")}, wantFields: []string{"tags[1]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := meta(3)
			m.Actor = testEditor
			evs, err := Decide(base, Update{CustomerID: testCustomerID, Input: tc.in}, m)
			if tc.wantFields != nil {
				checkFields(t, err, tc.wantFields)
				if evs != nil {
					t.Errorf("events = %v on error", evs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if tc.want == nil {
				if len(evs) != 0 {
					t.Fatalf("events = %#v, want none", evs[0].Data)
				}
				return
			}
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			want := events.Event{
				ID: m.EventID, Source: m.Source, AggregateID: testCustomerID, Time: m.Now, Version: 2,
				Actor: testEditor, CorrelationID: m.CorrelationID,
				Data: &events.CustomerUpdated{
					CustomerID: testCustomerID, CustomerCode: testCode, Changes: *tc.want,
					UpdatedBy: testEditor, UpdatedAt: m.Now,
				},
			}
			if !reflect.DeepEqual(evs[0], want) {
				t.Fatalf("event data =\n%#v\nwant\n%#v", evs[0].Data, want.Data)
			}
			// The update event, applied, gives the merged state.
			after := Evolve(base, evs[0])
			if after.Version != 2 || !after.UpdatedAt.Equal(m.Now) || !after.CreatedAt.Equal(t0) {
				t.Errorf("after: version %d updatedAt %v createdAt %v", after.Version, after.UpdatedAt, after.CreatedAt)
			}
		})
	}
}

// TestDecideUpdateAddressLastSubField: a customer with only a city; clearing
// the city yields a Cleared address change, and the state has no address.
func TestDecideUpdateAddressLastSubField(t *testing.T) {
	base := createdState(t, Input{Name: set("Ada"), Address: addrSet(AddressInput{City: set("London")})})
	evs := mustDecide(t, base, Update{CustomerID: testCustomerID, Input: Input{Address: addrSet(AddressInput{City: null()})}}, meta(1))
	if len(evs) != 1 {
		t.Fatalf("got %d events", len(evs))
	}
	ch := evs[0].Data.(*events.CustomerUpdated).Changes
	if want := (events.Changes{Address: events.Cleared[events.Address]()}); !reflect.DeepEqual(ch, want) {
		t.Fatalf("changes = %#v, want %#v", ch, want)
	}
	if got := Evolve(base, evs[0]); !got.Address.IsZero() {
		t.Errorf("address = %+v, want none", got.Address)
	}
	// Setting a sub-field on a customer without an address creates one.
	noAddr := createdState(t, Input{Name: set("Ada")})
	evs = mustDecide(t, noAddr, Update{CustomerID: testCustomerID, Input: Input{Address: addrSet(AddressInput{Country: set("FR")})}}, meta(1))
	ch = evs[0].Data.(*events.CustomerUpdated).Changes
	if want := (events.Changes{Address: events.SetTo(events.Address{Country: "FR"})}); !reflect.DeepEqual(ch, want) {
		t.Fatalf("changes = %#v, want %#v", ch, want)
	}
	// Clearing an address that is not there changes nothing.
	evs = mustDecide(t, noAddr, Update{CustomerID: testCustomerID, Input: Input{Address: AddressInput{Set: true, Null: true}}}, meta(1))
	if len(evs) != 0 {
		t.Errorf("clearing an absent address: %d events", len(evs))
	}
}

// TestDecideUpdateClearAbsentOptional: nulling a field that is already unset
// changes nothing.
func TestDecideUpdateClearAbsentOptional(t *testing.T) {
	base := createdState(t, Input{Name: set("Ada")})
	evs := mustDecide(t, base, Update{CustomerID: testCustomerID, Input: Input{
		Email: null(), Phone: null(), Company: set(""), Notes: null(), Tags: nullTags(),
	}}, meta(1))
	if len(evs) != 0 {
		t.Errorf("got %d events, want none", len(evs))
	}
}

func TestDecideUpdateVersionsAndExistence(t *testing.T) {
	v1 := createdState(t, Input{Name: set("Ada")})
	v2 := Evolve(v1, mustDecide(t, v1, Update{CustomerID: testCustomerID, Input: Input{Name: set("Bob")}}, meta(1))[0])
	deleted := Evolve(v2, mustDecide(t, v2, Delete{CustomerID: testCustomerID}, meta(2))[0])
	change := Input{Name: set("Carol")}

	tests := []struct {
		name     string
		state    Customer
		cmd      Command
		wantErr  error
		wantVers uint64 // version of the produced event; 0 = no event
	}{
		{name: "update without expected version", state: v2, cmd: Update{CustomerID: testCustomerID, Input: change}, wantVers: 3},
		{name: "update expected version matches", state: v2, cmd: Update{CustomerID: testCustomerID, Input: change, ExpectedVersion: 2}, wantVers: 3},
		{name: "update expected version stale", state: v2, cmd: Update{CustomerID: testCustomerID, Input: change, ExpectedVersion: 1}, wantErr: ErrPreconditionFailed},
		{name: "update expected version ahead", state: v2, cmd: Update{CustomerID: testCustomerID, Input: change, ExpectedVersion: 3}, wantErr: ErrPreconditionFailed},
		{name: "update no-op with stale version", state: v2, cmd: Update{CustomerID: testCustomerID, Input: Input{}, ExpectedVersion: 1}, wantErr: ErrPreconditionFailed},
		{name: "update no-op with matching version", state: v2, cmd: Update{CustomerID: testCustomerID, Input: Input{Name: set("Bob")}, ExpectedVersion: 2}},
		{name: "update unknown customer", state: Customer{}, cmd: Update{CustomerID: testCustomerID, Input: change}, wantErr: ErrNotFound},
		{name: "update unknown customer with invalid input", state: Customer{}, cmd: Update{CustomerID: testCustomerID, Input: Input{Name: null()}}, wantErr: ErrNotFound},
		{name: "update deleted customer", state: deleted, cmd: Update{CustomerID: testCustomerID, Input: change}, wantErr: ErrNotFound},
		{name: "update deleted customer with its version", state: deleted, cmd: Update{CustomerID: testCustomerID, Input: change, ExpectedVersion: 3}, wantErr: ErrNotFound},
		{name: "delete", state: v2, cmd: Delete{CustomerID: testCustomerID}, wantVers: 3},
		{name: "delete expected version matches", state: v2, cmd: Delete{CustomerID: testCustomerID, ExpectedVersion: 2}, wantVers: 3},
		{name: "delete expected version stale", state: v2, cmd: Delete{CustomerID: testCustomerID, ExpectedVersion: 1}, wantErr: ErrPreconditionFailed},
		{name: "delete unknown customer", state: Customer{}, cmd: Delete{CustomerID: testCustomerID}, wantErr: ErrNotFound},
		{name: "delete deleted customer", state: deleted, cmd: Delete{CustomerID: testCustomerID}, wantErr: ErrNotFound},
		{name: "delete deleted customer with its version", state: deleted, cmd: Delete{CustomerID: testCustomerID, ExpectedVersion: 3}, wantErr: ErrNotFound},
		{name: "restore deleted customer", state: deleted, cmd: Restore{CustomerID: testCustomerID}, wantVers: 4},
		{name: "restore deleted customer with its version", state: deleted, cmd: Restore{CustomerID: testCustomerID, ExpectedVersion: 3}, wantVers: 4},
		{name: "restore expected version stale", state: deleted, cmd: Restore{CustomerID: testCustomerID, ExpectedVersion: 2}, wantErr: ErrPreconditionFailed},
		{name: "restore live customer", state: v2, cmd: Restore{CustomerID: testCustomerID}, wantErr: ErrNotDeleted},
		{name: "restore unknown customer", state: Customer{}, cmd: Restore{CustomerID: testCustomerID}, wantErr: ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := Decide(tc.state, tc.cmd, meta(9))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if fault.Is(err, fault.Invalid) {
					t.Errorf("unexpected validation error %v", err)
				}
				if evs != nil {
					t.Errorf("events on error: %v", evs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if tc.wantVers == 0 {
				if len(evs) != 0 {
					t.Fatalf("got %d events, want none", len(evs))
				}
				return
			}
			if len(evs) != 1 || evs[0].Version != tc.wantVers {
				t.Fatalf("events %v, want one at version %d", evs, tc.wantVers)
			}
		})
	}
}

func TestDecideDelete(t *testing.T) {
	base := createdState(t, fullInput())
	m := meta(7)
	m.Actor = testEditor
	m.CausationID = "cmd-7"
	evs := mustDecide(t, base, Delete{CustomerID: testCustomerID, ExpectedVersion: 1}, m)
	want := []events.Event{{
		ID: m.EventID, Source: m.Source, AggregateID: testCustomerID, Time: m.Now, Version: 2,
		Actor: testEditor, CorrelationID: m.CorrelationID, CausationID: "cmd-7",
		Data: &events.CustomerDeleted{CustomerID: testCustomerID, CustomerCode: testCode, DeletedBy: testEditor, DeletedAt: m.Now},
	}}
	if !reflect.DeepEqual(evs, want) {
		t.Fatalf("events =\n%#v\nwant\n%#v", evs[0].Data, want[0].Data)
	}
}

// TestRestoreBringsBackTheStateAtDeletion: a restored customer has every
// field it had when deleted, is live, and can be changed and deleted again.
func TestRestoreBringsBackTheStateAtDeletion(t *testing.T) {
	live := createdState(t, fullInput())
	live = Evolve(live, mustDecide(t, live, Update{CustomerID: testCustomerID, Input: Input{Status: set(StatusInactive)}}, meta(1))[0])
	deleted := Evolve(live, mustDecide(t, live, Delete{CustomerID: testCustomerID}, meta(2))[0])
	m := meta(3)
	m.Actor = testEditor
	evs := mustDecide(t, deleted, Restore{CustomerID: testCustomerID, ExpectedVersion: 3}, m)
	want := &events.CustomerRestored{CustomerID: testCustomerID, CustomerCode: testCode, RestoredBy: testEditor, RestoredAt: m.Now}
	if len(evs) != 1 || !reflect.DeepEqual(evs[0].Data, want) || evs[0].Version != 4 {
		t.Fatalf("events %#v", evs)
	}
	restored := Evolve(deleted, evs[0])
	expect := live
	expect.Version, expect.Seq, expect.UpdatedAt = 4, restored.Seq, m.Now
	if !reflect.DeepEqual(restored, expect) || !restored.Exists() {
		t.Fatalf("restored %+v\nwant     %+v", restored, expect)
	}
	if _, err := Decide(restored, Delete{CustomerID: testCustomerID}, meta(4)); err != nil {
		t.Fatalf("delete after restore: %v", err)
	}
}

// TestDecideDoesNotAliasState: the events Decide returns do not share the
// tag slice with the state or the input, and Decide leaves the state alone.
func TestDecideDoesNotAliasState(t *testing.T) {
	tags := []string{"a", "b"}
	base := createdState(t, Input{Name: set("Ada"), Tags: setTags(tags...)})
	before := base
	before.Tags = slices.Clone(base.Tags)

	inTags := []string{"c", "d"}
	evs := mustDecide(t, base, Update{CustomerID: testCustomerID, Input: Input{Tags: setTags(inTags...)}}, meta(1))
	ch := evs[0].Data.(*events.CustomerUpdated).Changes
	ch.Tags.Value[0] = "mutated"
	if inTags[0] != "c" {
		t.Error("event tags alias the input")
	}
	after := Evolve(base, evs[0])
	after.Tags[1] = "mutated"
	if !reflect.DeepEqual(base, before) {
		t.Errorf("state changed: %+v", base)
	}
	if ch.Tags.Value[1] != "d" {
		t.Error("state tags alias the event")
	}
}

func TestDecideUnknownCommandPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for an unknown command")
		}
	}()
	_, _ = Decide(Customer{}, nil, meta(0))
}

// BenchmarkDecideUpdate measures one validated merge-patch decision on a
// full customer that changes several fields.
func BenchmarkDecideUpdate(b *testing.B) {
	base := createdState(b, fullInput())
	cmd := Update{CustomerID: testCustomerID, ExpectedVersion: 1, Input: Input{
		Name: set(" Augusta Ada King "), Email: null(), Status: set("inactive"),
		Address: addrSet(AddressInput{City: set("Paris"), State: null()}),
		Tags:    setTags("vip", " new ", "vip", "math"),
	}}
	m := meta(1)
	b.ReportAllocs()
	for b.Loop() {
		evs, err := Decide(base, cmd, m)
		if err != nil || len(evs) != 1 {
			b.Fatal(err, len(evs))
		}
	}
}
