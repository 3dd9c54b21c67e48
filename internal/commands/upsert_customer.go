package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"crm/internal/auth"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

// EmailIndex finds customers by email (customer.EmailKey form): the read
// model, consulted by upserts for customers whose email was never claimed.
// Its answers are hints: each is checked against the customer's events.
type EmailIndex interface {
	CustomerIDsByEmail(ctx context.Context, key string, limit int) ([]string, error)
}

// Outcome of an upsert.
const (
	Created   = "created"
	Updated   = "updated"
	Unchanged = "unchanged"
)

// UpsertResult is the outcome of an upsert.
type UpsertResult struct {
	Result
	Outcome string // Created, Updated or Unchanged
}

// ErrAmbiguousEmail (fault.Conflict): more than one customer has the email
// (data from before emails were claimed); nothing was written.
var ErrAmbiguousEmail = fault.New(fault.Conflict, "more than one customer has this email; merge them or update one by id")

// UpsertByEmail creates the customer with this email, or merge-patches the
// one that has it (RFC 7396, as UpdateCustomer; in must not name another
// email). Race-free across processes: the email is claimed on the write
// side (events.ClaimSubject("email", key)) in the same atomic batch as the
// customer's event, so two concurrent upserts of one new email create one
// customer (the other becomes an update). A claim whose holder no longer
// has the email (changed, deleted, merged away) is taken over. A customer
// with the email from before claims is found through the EmailIndex; more
// than one is ErrAmbiguousEmail. expectedVersion applies to an update (a
// create with one is ErrPreconditionFailed: nothing to match). Requires
// crm.create and crm.edit.
func (h *Handler) UpsertByEmail(ctx context.Context, r Request, email string, in customer.Input, expectedVersion uint64) (UpsertResult, error) {
	for _, p := range []string{auth.PermCreate, auth.PermEdit} {
		if err := r.Principal.Require(p); err != nil {
			return UpsertResult{}, err
		}
	}
	key, ok := customer.EmailKey(email)
	if !ok {
		return UpsertResult{}, fault.InvalidField("email", "the path must hold a valid email address")
	}
	if in.Email.Set {
		if k, _ := customer.EmailKey(in.Email.Value); in.Email.Null || k != key {
			return UpsertResult{}, fault.InvalidField("email", "must be the address of the path, or absent")
		}
	}
	if !in.Email.Set { // a create takes the path's spelling; an update keeps the stored one
		in.Email = events.SetTo(strings.TrimSpace(email))
		in.Email.Set = false
	}
	k := upsertKey{field: "email", subject: events.ClaimSubject("email", key),
		find: func(ctx context.Context, holder string) (string, customer.Customer, uint64, bool, error) {
			target, state, last, err := h.emailHolder(ctx, key, holder)
			return target, state, last, target != "" && holder == target, err
		},
		create: func(in customer.Input) customer.Input {
			in.Email.Set = true // the path's address, unless the body gave its own spelling
			return in
		},
	}
	return h.upsert(ctx, r, k, in, expectedVersion)
}

// UpsertByExternalID creates the customer with this external id, or
// merge-patches the one that has it, as UpsertByEmail does for emails: the
// external id's claim (unique among customers, see CreateCustomer) names
// the holder, so two concurrent upserts of one new external id create one
// customer. When the holder was merged into another customer, the survivor
// is patched (the absorbed id answers as the survivor everywhere). in must
// not name another external id. Requires crm.create and crm.edit.
func (h *Handler) UpsertByExternalID(ctx context.Context, r Request, externalID string, in customer.Input, expectedVersion uint64) (UpsertResult, error) {
	for _, p := range []string{auth.PermCreate, auth.PermEdit} {
		if err := r.Principal.Require(p); err != nil {
			return UpsertResult{}, err
		}
	}
	key, ok := customer.ExternalIDKey(externalID)
	if !ok {
		return UpsertResult{}, fault.InvalidField("externalId", "the path must hold an external id of 1 to "+
			strconv.Itoa(customer.MaxExternalID)+" characters, without control characters")
	}
	if in.ExternalID.Set {
		if k, _ := customer.ExternalIDKey(in.ExternalID.Value); in.ExternalID.Null || k != key {
			return UpsertResult{}, fault.InvalidField("externalId", "must be the external id of the path, or absent")
		}
	}
	k := upsertKey{field: ClaimExternalID, subject: events.ClaimSubject(ClaimExternalID, key),
		find: func(ctx context.Context, holder string) (string, customer.Customer, uint64, bool, error) {
			return h.externalIDHolder(ctx, key, holder)
		},
		create: func(in customer.Input) customer.Input {
			in.ExternalID = events.SetTo(key)
			return in
		},
	}
	// An update leaves the holder's external id as it is (the path's); on
	// a survivor, which has its own, the path's is not given to it.
	in.ExternalID = customer.Field[string]{}
	return h.upsert(ctx, r, k, in, expectedVersion)
}

// upsertKey is the natural key an upsert finds its customer by.
type upsertKey struct {
	field   string // the input field it is a value of
	subject string // its claim
	// find returns the live customer the key names ("": none) from the
	// claim's holder, its state and last sequence, and whether the claim
	// already names it (else the upsert's append claims it).
	find func(ctx context.Context, holder string) (target string, state customer.Customer, last uint64, claimed bool, err error)
	// create returns the input of a create: in with the key's value.
	create func(in customer.Input) customer.Input
}

// upsert runs upsertOnce until it does not conflict with a concurrent
// writer (then the other writer's customer is found and updated).
func (h *Handler) upsert(ctx context.Context, r Request, k upsertKey, in customer.Input, expectedVersion uint64) (UpsertResult, error) {
	for attempt := 0; ; attempt++ {
		res, err := h.upsertOnce(ctx, r, k, in, expectedVersion)
		if !fault.Is(err, fault.Conflict) || errors.Is(err, ErrAmbiguousEmail) || errors.Is(err, ErrExternalIDTaken) {
			return res, err
		}
		if attempt >= h.retries {
			return UpsertResult{}, fmt.Errorf("%w: %v", ErrConflict, err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return UpsertResult{}, err
		}
	}
}

func (h *Handler) upsertOnce(ctx context.Context, r Request, k upsertKey, in customer.Input, expectedVersion uint64) (UpsertResult, error) {
	holder, claimSeq, err := h.store.LoadClaim(ctx, k.subject)
	if err != nil {
		return UpsertResult{}, err
	}
	target, state, last, claimed, err := k.find(ctx, holder)
	if err != nil {
		return UpsertResult{}, err
	}
	var claims []events.Claim
	if !claimed {
		claims = []events.Claim{{Subject: k.subject, ExpectedSeq: claimSeq}}
	}
	if target != "" { // an update of the customer that has the key
		decided, err := customer.Decide(state, customer.Update{CustomerID: target, Input: in, ExpectedVersion: expectedVersion}, h.meta(r))
		if err != nil {
			return UpsertResult{}, err
		}
		if len(decided) == 0 {
			// Nothing to change: a claim alone would end a batch without a
			// customer event; it is written with the customer's next one.
			return UpsertResult{Result: Result{Customer: state}, Outcome: Unchanged}, nil
		}
		for i := range claims {
			claims[i].CustomerID = target
		}
		after := state
		for _, e := range decided {
			after = customer.Evolve(after, e)
		}
		more, err := h.externalIDClaims(ctx, target, state, after)
		if err != nil {
			return UpsertResult{}, err
		}
		seqs, err := h.store.Append(ctx, decided, map[string]uint64{target: last}, withClaims(claims, more...)...)
		if err != nil {
			return UpsertResult{}, err
		}
		for i, e := range decided {
			e.Seq = seqs[i]
			state = customer.Evolve(state, e)
		}
		return UpsertResult{Result: Result{Customer: state, Seq: seqs[len(seqs)-1]}, Outcome: Updated}, nil
	}
	if expectedVersion != 0 {
		return UpsertResult{}, customer.ErrPreconditionFailed
	}
	in = k.create(in)
	if err := customer.ValidateCreate(in); err != nil {
		return UpsertResult{}, err
	}
	id := h.newID()
	var more []events.Claim
	if k.field != ClaimExternalID { // else the key's claim is the external id's
		probe := customer.Customer{ID: id, Version: 1}
		if in.ExternalID.Set && !in.ExternalID.Null {
			probe.ExternalID, _ = customer.ExternalIDKey(in.ExternalID.Value)
		}
		if more, err = h.externalIDClaims(ctx, id, customer.Customer{}, probe); err != nil {
			return UpsertResult{}, err
		}
	}
	n, err := h.store.NextCode(ctx)
	if err != nil {
		return UpsertResult{}, err
	}
	decided, err := customer.Decide(customer.Customer{}, customer.Create{CustomerID: id, Code: FormatCode(n), Input: in}, h.meta(r))
	if err != nil {
		return UpsertResult{}, err
	}
	claims[0].CustomerID = id
	seqs, err := h.store.Append(ctx, decided, map[string]uint64{id: 0}, withClaims(claims, more...)...)
	if err != nil {
		return UpsertResult{}, err // a conflict: someone claimed the key first (the code is spent)
	}
	decided[0].Seq = seqs[0]
	return UpsertResult{Result: Result{Customer: customer.Fold(decided), Seq: seqs[0]}, Outcome: Created}, nil
}

// externalIDHolder returns the live customer that has the external id
// key: the claim's holder when it still has it (every external id is
// claimed), or the customer it is merged into (followed along merges of
// survivors, at most maxMergeHops); "" when none.
func (h *Handler) externalIDHolder(ctx context.Context, key, holder string) (string, customer.Customer, uint64, bool, error) {
	if holder == "" {
		return "", customer.Customer{}, 0, false, nil
	}
	evs, last, err := h.store.Load(ctx, holder)
	if err != nil {
		return "", customer.Customer{}, 0, false, err
	}
	st := customer.Fold(evs)
	if st.ExternalID != key || !(st.Exists() || st.MergedInto != "") {
		return "", customer.Customer{}, 0, false, nil // a stale claim, taken over by a create
	}
	id := holder
	for hop := 0; st.MergedInto != ""; hop++ {
		if hop == maxMergeHops {
			return "", customer.Customer{}, 0, false, &fault.Error{Kind: fault.Internal, Message: "unexpected error",
				Err: fmt.Errorf("customer %s: merges nested deeper than %d", holder, maxMergeHops)}
		}
		id = st.MergedInto
		if evs, last, err = h.store.Load(ctx, id); err != nil {
			return "", customer.Customer{}, 0, false, err
		}
		st = customer.Fold(evs)
	}
	if !st.Exists() { // the survivor was deleted since: the id stays taken
		return "", customer.Customer{}, 0, false, &fault.Error{Kind: fault.Conflict, Message: ErrExternalIDTaken.Message,
			Fields: []fault.FieldError{{Field: "externalId", Message: "is held by customer " + holder + ", merged into " + id +
				", which is deleted: restore " + id + " to upsert it"}}, Err: ErrExternalIDTaken}
	}
	return id, st, last, true, nil
}

// maxMergeHops bounds the survivors followed from an absorbed customer.
const maxMergeHops = 16

// emailHolder returns the live customer that has the email key: the
// claim's holder when it still has it, else the one customer the
// EmailIndex finds (customers from before claims, or a claim gone stale);
// "" when none. Each candidate is folded from its events, so neither a
// stale index nor a stale claim is trusted.
func (h *Handler) emailHolder(ctx context.Context, key, holder string) (string, customer.Customer, uint64, error) {
	check := func(ids []string) ([]string, customer.Customer, uint64, error) {
		var (
			match   []string
			state   customer.Customer
			lastSeq uint64
		)
		for _, id := range ids {
			evs, last, err := h.store.Load(ctx, id)
			if err != nil {
				return nil, customer.Customer{}, 0, err
			}
			st := customer.Fold(evs)
			if k, _ := customer.EmailKey(st.Email); st.Exists() && k == key {
				match = append(match, id)
				state, lastSeq = st, last
			}
		}
		return match, state, lastSeq, nil
	}
	if holder != "" {
		match, state, last, err := check([]string{holder})
		if err != nil || len(match) == 1 {
			return holder, state, last, err
		}
	}
	if h.emails == nil {
		return "", customer.Customer{}, 0, nil
	}
	ids, err := h.emails.CustomerIDsByEmail(ctx, key, 10)
	if err != nil {
		return "", customer.Customer{}, 0, err
	}
	match, state, last, err := check(slices.DeleteFunc(ids, func(id string) bool { return id == holder }))
	switch {
	case err != nil:
		return "", customer.Customer{}, 0, err
	case len(match) == 0:
		return "", customer.Customer{}, 0, nil
	case len(match) == 1:
		return match[0], state, last, nil
	}
	slices.Sort(match)
	return "", customer.Customer{}, 0, &fault.Error{Kind: fault.Conflict, Message: ErrAmbiguousEmail.Message,
		Fields: []fault.FieldError{{Field: "email", Message: "matches customers " + strings.Join(match, ", ")}}, Err: ErrAmbiguousEmail}
}
