package customer

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"

	"crm/internal/events"
)

// stream events of one customer as the store would return them: versions
// 1..n, stream sequences increasing with gaps (other customers in between).
func ev(version, seq uint64, at time.Time, d events.Payload) events.Event {
	return events.Event{
		ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", version), Source: "/crm/test",
		AggregateID: testCustomerID, Time: at, Version: version, Actor: testActor, Data: d, Seq: seq,
	}
}

func TestFoldLifecycle(t *testing.T) {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	upd := func(m int, ch events.Changes) *events.CustomerUpdated {
		return &events.CustomerUpdated{CustomerID: testCustomerID, CustomerCode: testCode, Changes: ch, UpdatedBy: testEditor, UpdatedAt: at(m)}
	}
	created := ev(1, 10, at(0), &events.CustomerCreated{
		CustomerID: testCustomerID, CustomerCode: testCode, Name: "Ada",
		Email: strptr("ada@example.com"), Phone: strptr("+44 1"), Company: nil,
		Address: &events.Address{Street: "1 Main St", City: "London"},
		Type:    TypeIndividual, Status: StatusLead, Notes: strptr("first"),
		Tags: []string{"vip"}, CreatedBy: testActor, CreatedAt: at(0),
	})
	u1 := ev(2, 15, at(1), upd(1, events.Changes{
		Name: events.SetTo("Ada Lovelace"), Company: events.SetTo("Engines"), Status: events.SetTo(StatusProspect),
		Address: events.SetTo(events.Address{Street: "1 Main St", City: "Paris", Country: "FR"}),
	}))
	u2 := ev(3, 22, at(2), upd(2, events.Changes{
		Email: events.Cleared[string](), Notes: events.Cleared[string](), Tags: events.SetTo([]string{"a", "b"}),
		Type: events.SetTo(TypeBusiness),
	}))
	u3 := ev(4, 23, at(3), upd(3, events.Changes{
		Address: events.Cleared[events.Address](), Phone: events.Cleared[string](), Status: events.SetTo(StatusActive),
	}))
	u4 := ev(5, 40, at(4), upd(4, events.Changes{Tags: events.Cleared[[]string]()}))
	u5 := ev(6, 41, at(5), upd(5, events.Changes{Tags: events.SetTo([]string(nil))}))
	del := ev(7, 57, at(9), &events.CustomerDeleted{CustomerID: testCustomerID, CustomerCode: testCode, DeletedBy: testEditor, DeletedAt: at(9)})

	base := Customer{
		ID: testCustomerID, Code: testCode, CreatedBy: testActor, CreatedAt: at(0),
	}
	tests := []struct {
		name string
		evs  []events.Event
		want Customer
	}{
		{name: "nothing", evs: nil, want: Customer{}},
		{name: "created", evs: []events.Event{created}, want: func() Customer {
			c := base
			c.Name, c.Email, c.Phone, c.Notes = "Ada", "ada@example.com", "+44 1", "first"
			c.Address = Address{Street: "1 Main St", City: "London"}
			c.Type, c.Status, c.Tags = TypeIndividual, StatusLead, []string{"vip"}
			c.UpdatedAt, c.Version, c.Seq = at(0), 1, 10
			return c
		}()},
		{name: "updated once", evs: []events.Event{created, u1}, want: func() Customer {
			c := base
			c.Name, c.Email, c.Phone, c.Notes, c.Company = "Ada Lovelace", "ada@example.com", "+44 1", "first", "Engines"
			c.Address = Address{Street: "1 Main St", City: "Paris", Country: "FR"}
			c.Type, c.Status, c.Tags = TypeIndividual, StatusProspect, []string{"vip"}
			c.UpdatedAt, c.Version, c.Seq = at(1), 2, 15
			return c
		}()},
		{name: "updated with clears", evs: []events.Event{created, u1, u2, u3}, want: func() Customer {
			c := base
			c.Name, c.Company = "Ada Lovelace", "Engines"
			c.Type, c.Status, c.Tags = TypeBusiness, StatusActive, []string{"a", "b"}
			c.UpdatedAt, c.Version, c.Seq = at(3), 4, 23
			return c
		}()},
		{name: "tags cleared and set to nil are empty lists", evs: []events.Event{created, u1, u2, u3, u4, u5}, want: func() Customer {
			c := base
			c.Name, c.Company = "Ada Lovelace", "Engines"
			c.Type, c.Status, c.Tags = TypeBusiness, StatusActive, []string{}
			c.UpdatedAt, c.Version, c.Seq = at(5), 6, 41
			return c
		}()},
		{name: "deleted keeps the last state as a tombstone", evs: []events.Event{created, u1, u2, u3, u4, u5, del}, want: func() Customer {
			c := base
			c.Name, c.Company = "Ada Lovelace", "Engines"
			c.Type, c.Status, c.Tags = TypeBusiness, StatusActive, []string{}
			c.UpdatedAt, c.Version, c.Seq, c.Deleted = at(9), 7, 57, true
			return c
		}()},
		{name: "created without tags", evs: []events.Event{ev(1, 3, at(0), &events.CustomerCreated{
			CustomerID: testCustomerID, CustomerCode: testCode, Name: "Bob", Type: TypeIndividual, Status: StatusLead,
			CreatedBy: testActor, CreatedAt: at(0),
		})}, want: func() Customer {
			c := base
			c.Name, c.Type, c.Status, c.Tags = "Bob", TypeIndividual, StatusLead, []string{}
			c.UpdatedAt, c.Version, c.Seq = at(0), 1, 3
			return c
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Fold(tc.evs)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("state =\n%+v\nwant\n%+v", got, tc.want)
			}
			if len(tc.evs) > 0 && got.Tags == nil {
				t.Error("tags are nil")
			}
			wantExists := len(tc.evs) > 0 && !tc.want.Deleted
			if got.Exists() != wantExists {
				t.Errorf("Exists() = %v, want %v", got.Exists(), wantExists)
			}
		})
	}
}

func TestEvolveDetails(t *testing.T) {
	c := createdState(t, Input{Name: set("Ada"), Tags: setTags("x")})

	t.Run("nil payload is ignored", func(t *testing.T) {
		got := Evolve(c, events.Event{Version: 9, Seq: 99})
		if !reflect.DeepEqual(got, c) {
			t.Errorf("state changed: %+v", got)
		}
	})
	t.Run("seq never goes back", func(t *testing.T) {
		e := ev(2, 0, t0, &events.CustomerUpdated{CustomerID: testCustomerID, Changes: events.Changes{Name: events.SetTo("B")}, UpdatedAt: t0})
		got := Evolve(c, e) // an event not read from the store (Seq 0)
		if got.Seq != c.Seq || got.Version != 2 || got.Name != "B" {
			t.Errorf("seq %d version %d name %q", got.Seq, got.Version, got.Name)
		}
	})
	t.Run("created resets a previous state", func(t *testing.T) {
		dirty := c
		dirty.Deleted, dirty.Company = true, "Old"
		e := ev(1, 5, t0, &events.CustomerCreated{CustomerID: testCustomerID, CustomerCode: "C9", Name: "New",
			Type: TypeIndividual, Status: StatusLead, Tags: []string{}, CreatedBy: testActor, CreatedAt: t0})
		got := Evolve(dirty, e)
		if got.Deleted || got.Company != "" || got.Code != "C9" || got.Name != "New" {
			t.Errorf("state = %+v", got)
		}
	})
	t.Run("state does not alias the event tags", func(t *testing.T) {
		tags := []string{"a"}
		got := Evolve(c, ev(2, 7, t0, &events.CustomerUpdated{CustomerID: testCustomerID, Changes: events.Changes{Tags: events.SetTo(tags)}, UpdatedAt: t0}))
		got.Tags[0] = "mutated"
		if tags[0] != "a" {
			t.Error("Evolve aliases the event's tags")
		}
	})
}

// ---- property test: Decide+Evolve equals a reference merge ----

// refCustomer is the reference model: the mutable fields only.
type refCustomer struct {
	Name, Email, Phone, Company, Type, Status, Notes string
	Address                                          Address
	Tags                                             []string
}

func refOf(c Customer) refCustomer {
	return refCustomer{c.Name, c.Email, c.Phone, c.Company, c.Type, c.Status, c.Notes, c.Address, slices.Clone(c.Tags)}
}

func clean(s string) string { return strings.TrimSpace(norm.NFC.String(s)) }

// refMerge applies an update input to the reference in the simplest way.
func refMerge(r refCustomer, in Input) refCustomer {
	str := func(dst *string, f Field[string]) {
		switch {
		case !f.Set:
		case f.Null:
			*dst = ""
		default:
			*dst = clean(f.Value)
		}
	}
	str(&r.Name, in.Name)
	str(&r.Email, in.Email)
	str(&r.Phone, in.Phone)
	str(&r.Company, in.Company)
	str(&r.Type, in.Type)
	str(&r.Status, in.Status)
	str(&r.Notes, in.Notes)
	if in.Address.Set {
		if in.Address.Null {
			r.Address = Address{}
		} else {
			str(&r.Address.Street, in.Address.Street)
			str(&r.Address.City, in.Address.City)
			str(&r.Address.State, in.Address.State)
			str(&r.Address.Country, in.Address.Country)
			str(&r.Address.PostalCode, in.Address.PostalCode)
		}
	}
	if in.Tags.Set {
		r.Tags = []string{}
		if !in.Tags.Null {
			for _, t := range in.Tags.Value {
				if t = clean(t); !slices.Contains(r.Tags, t) {
					r.Tags = append(r.Tags, t)
				}
			}
		}
	}
	return r
}

// genInput draws a random, valid update input: each field absent, null
// (optional fields only) or a value from a small pool with variants that
// normalise alike.
func genInput(r *rand.Rand) Input {
	pick := func(optional bool, pool ...string) Field[string] {
		switch n := r.IntN(10); {
		case n < 5:
			return Field[string]{}
		case n < 6 && optional:
			return null()
		default:
			return set(pool[r.IntN(len(pool))])
		}
	}
	var in Input
	in.Name = pick(false, "Ada", " Ada ", "Bob", "Rene\u0301", "Ren\u00e9", "Zoë")
	in.Email = pick(true, "a@b.co", " a@b.co", "x@y.org", "")
	in.Phone = pick(true, "+1 555", "123", "(0) 1-2.3", "")
	in.Company = pick(true, "Acme", "Acme ", "Globex", "")
	in.Type = pick(false, TypeIndividual, TypeBusiness, " business")
	in.Status = pick(false, StatusLead, StatusProspect, StatusActive, StatusInactive)
	in.Notes = pick(true, "hi", "  hi\n", "line 1\nline 2", "")
	switch n := r.IntN(10); {
	case n < 5:
	case n < 6:
		in.Address = AddressInput{Set: true, Null: true}
	default:
		in.Address = AddressInput{Set: true,
			Street: pick(true, "1 Main St", "2 High St", ""), City: pick(true, "London", " London", "Paris"),
			State: pick(true, "CA", ""), Country: pick(true, "UK", "FR"), PostalCode: pick(true, "12345", "SW1"),
		}
	}
	switch n := r.IntN(10); {
	case n < 5:
	case n < 6:
		in.Tags = nullTags()
	default:
		pool := []string{"a", " a", "b", "c ", "caf\u00e9", "cafe\u0301", "vip"}
		tags := make([]string, r.IntN(5))
		for i := range tags {
			tags[i] = pool[r.IntN(len(pool))]
		}
		in.Tags = setTags(tags...)
	}
	return in
}

// changedFields lists which fields differ between two references.
func changedFields(a, b refCustomer) map[string]bool {
	return map[string]bool{
		"name": a.Name != b.Name, "email": a.Email != b.Email, "phone": a.Phone != b.Phone,
		"company": a.Company != b.Company, "type": a.Type != b.Type, "status": a.Status != b.Status,
		"notes": a.Notes != b.Notes, "address": a.Address != b.Address, "tags": !slices.Equal(a.Tags, b.Tags),
	}
}

func setFields(ch events.Changes) map[string]bool {
	return map[string]bool{
		"name": ch.Name.Set, "email": ch.Email.Set, "phone": ch.Phone.Set, "company": ch.Company.Set,
		"type": ch.Type.Set, "status": ch.Status.Set, "notes": ch.Notes.Set, "address": ch.Address.Set, "tags": ch.Tags.Set,
	}
}

func TestDecideEvolveMatchesReferenceMerge(t *testing.T) {
	runs, steps := 200, 25
	if testing.Short() {
		runs = 50
	}
	r := rand.New(rand.NewPCG(20250314, 92653))
	var noops, updates int
	for run := range runs {
		// Create from a random input (the create path treats it as a full
		// customer with defaults), starting the reference the same way.
		in := genInput(r)
		in.Name = set("Start")
		createEvs := mustDecide(t, Customer{}, Create{CustomerID: testCustomerID, Code: testCode, Input: in}, meta(0))
		createEvs[0].Seq = 1
		state := Fold(createEvs)
		ref := refMerge(refCustomer{Type: DefaultType, Status: DefaultStatus, Tags: []string{}}, in)
		if !reflect.DeepEqual(refOf(state), ref) {
			t.Fatalf("run %d: created state %+v, reference %+v (input %+v)", run, refOf(state), ref, in)
		}
		for step := 1; step <= steps; step++ {
			in := genInput(r)
			prev := ref
			ref = refMerge(ref, in)
			m := meta(step)
			evs, err := Decide(state, Update{CustomerID: testCustomerID, Input: in, ExpectedVersion: state.Version}, m)
			if err != nil {
				t.Fatalf("run %d step %d: Decide(%+v): %v", run, step, in, err)
			}
			changed := changedFields(prev, ref)
			anyChange := false
			for _, v := range changed {
				anyChange = anyChange || v
			}
			if !anyChange {
				noops++
				if len(evs) != 0 {
					t.Fatalf("run %d step %d: no-op input %+v produced %#v", run, step, in, evs[0].Data)
				}
				continue
			}
			if len(evs) != 1 {
				t.Fatalf("run %d step %d: got %d events for a change", run, step, len(evs))
			}
			updates++
			e := evs[0]
			if got := setFields(e.Data.(*events.CustomerUpdated).Changes); !reflect.DeepEqual(got, changed) {
				t.Fatalf("run %d step %d: fields in changes %v, changed fields %v", run, step, got, changed)
			}
			e.Seq = state.Seq + uint64(1+r.IntN(3))
			next := Evolve(state, e)

			// The event survives its encoding unchanged, and so does the state.
			b, err := events.Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			decoded, err := events.Decode(b)
			if err != nil {
				t.Fatalf("run %d step %d: decode %s: %v", run, step, b, err)
			}
			decoded.Seq = e.Seq
			if viaWire := Evolve(state, decoded); !reflect.DeepEqual(viaWire, next) {
				t.Fatalf("run %d step %d: state via the wire %+v, direct %+v", run, step, viaWire, next)
			}

			state = next
			if !reflect.DeepEqual(refOf(state), ref) {
				t.Fatalf("run %d step %d: state %+v, reference %+v (input %+v)", run, step, refOf(state), ref, in)
			}
			if state.Version != e.Version || state.Seq != e.Seq || !state.UpdatedAt.Equal(m.Now) || state.Tags == nil {
				t.Fatalf("run %d step %d: version %d seq %d updatedAt %v tags %#v", run, step, state.Version, state.Seq, state.UpdatedAt, state.Tags)
			}
		}
	}
	t.Logf("%d updates, %d no-op inputs", updates, noops)
	if noops == 0 || updates == 0 {
		t.Fatalf("generator exercised only one path: %d updates, %d no-ops", updates, noops)
	}
}

// BenchmarkEvolve measures applying one update event to a full customer.
func BenchmarkEvolve(b *testing.B) {
	base := createdState(b, fullInput())
	e := ev(2, 2, t0, &events.CustomerUpdated{
		CustomerID: testCustomerID, CustomerCode: testCode, UpdatedBy: testEditor, UpdatedAt: t0,
		Changes: events.Changes{
			Name: events.SetTo("Augusta"), Email: events.Cleared[string](), Status: events.SetTo(StatusInactive),
			Address: events.SetTo(events.Address{City: "Paris"}), Tags: events.SetTo([]string{"a", "b", "c"}),
		},
	})
	b.ReportAllocs()
	for b.Loop() {
		if c := Evolve(base, e); c.Version != 2 {
			b.Fatal(c.Version)
		}
	}
}
