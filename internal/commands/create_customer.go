package commands

import (
	"context"
	"errors"
	"fmt"

	"crm/internal/auth"
	"crm/internal/customer"
)

// FormatCode formats a customer number as its code: C001 … C999, C1000, ….
func FormatCode(n uint64) string { return fmt.Sprintf("C%03d", n) }

// CreateCustomer creates a customer with a fresh id and the next customer
// code. The input is validated before a code is spent. Requires crm.create.
//
// With r.IdempotencyKey the customer id is bound to the key first (in the
// event store, so across processes and restarts): a retry, or a concurrent
// duplicate, finds the customer the first request created and returns it
// (Result.Replayed) instead of creating another; the create itself appends
// with "no event yet for this id", so at most one can ever succeed.
func (h *Handler) CreateCustomer(ctx context.Context, r Request, in customer.Input) (Result, error) {
	if err := r.Principal.Require(auth.PermCreate); err != nil {
		return Result{}, err
	}
	if err := customer.ValidateCreate(in); err != nil {
		return Result{}, err
	}
	id := h.newID()
	if r.IdempotencyKey != "" {
		var err error
		if id, err = h.store.Reserve(ctx, r.Principal.Subject, r.IdempotencyKey, r.RequestHash, id); err != nil {
			return Result{}, err
		}
		if res, ok, err := h.existing(ctx, id); err != nil || ok {
			return res, err
		}
	}
	if x, ok := customer.ExternalIDKey(in.ExternalID.Value); ok && in.ExternalID.Set && !in.ExternalID.Null {
		// A taken external id fails before a code is spent (execute checks
		// it again, race-free, with the append).
		if _, err := h.externalIDClaims(ctx, id, customer.Customer{}, customer.Customer{ID: id, Version: 1, ExternalID: x}); err != nil {
			return Result{}, err
		}
	}
	n, err := h.store.NextCode(ctx)
	if err != nil {
		return Result{}, err
	}
	res, err := h.execute(ctx, r, id, customer.Create{CustomerID: id, Code: FormatCode(n), Input: in})
	if errors.Is(err, customer.ErrAlreadyExists) && r.IdempotencyKey != "" {
		if res, ok, err := h.existing(ctx, id); err != nil || ok {
			return res, err
		}
	}
	return res, err
}

// existing returns the customer an earlier request with the same
// idempotency key created, if any, as that request created it: a replay
// answers what the original answered (version 1, the created event's
// sequence), not the customer's state now, which may have been changed or
// deleted since (IETF draft-ietf-httpapi-idempotency-key-header).
func (h *Handler) existing(ctx context.Context, id string) (Result, bool, error) {
	evs, _, err := h.store.Load(ctx, id)
	if err != nil {
		return Result{}, false, err
	}
	if len(evs) == 0 {
		return Result{}, false, nil
	}
	return Result{Customer: customer.Fold(evs[:1]), Seq: evs[0].Seq, Replayed: true}, true, nil
}
