package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	subject := events.ClaimSubject("email", key)
	for attempt := 0; ; attempt++ {
		res, err := h.upsertOnce(ctx, r, key, subject, in, expectedVersion)
		if !fault.Is(err, fault.Conflict) || errors.Is(err, ErrAmbiguousEmail) {
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

func (h *Handler) upsertOnce(ctx context.Context, r Request, key, subject string, in customer.Input, expectedVersion uint64) (UpsertResult, error) {
	holder, claimSeq, err := h.store.LoadClaim(ctx, subject)
	if err != nil {
		return UpsertResult{}, err
	}
	target, state, last, err := h.emailHolder(ctx, key, holder)
	if err != nil {
		return UpsertResult{}, err
	}
	var claims []events.Claim
	if holder != target || target == "" {
		claims = []events.Claim{{Subject: subject, ExpectedSeq: claimSeq}}
	}
	if target != "" { // an update of the customer that has the email
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
		seqs, err := h.store.Append(ctx, decided, map[string]uint64{target: last}, claims...)
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
	in.Email.Set = true // the path's address, unless the body gave its own spelling
	if err := customer.ValidateCreate(in); err != nil {
		return UpsertResult{}, err
	}
	id := h.newID()
	n, err := h.store.NextCode(ctx)
	if err != nil {
		return UpsertResult{}, err
	}
	decided, err := customer.Decide(customer.Customer{}, customer.Create{CustomerID: id, Code: FormatCode(n), Input: in}, h.meta(r))
	if err != nil {
		return UpsertResult{}, err
	}
	claims[0].CustomerID = id
	seqs, err := h.store.Append(ctx, decided, map[string]uint64{id: 0}, claims...)
	if err != nil {
		return UpsertResult{}, err // a conflict: someone claimed the email first (the code is spent)
	}
	decided[0].Seq = seqs[0]
	return UpsertResult{Result: Result{Customer: customer.Fold(decided), Seq: seqs[0]}, Outcome: Created}, nil
}

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
