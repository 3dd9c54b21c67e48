package commands

import (
	"context"

	"crm/internal/auth"
	"crm/internal/customer"
)

// UpdateCustomer merges in into the customer (JSON merge-patch semantics).
// expectedVersion 0 means "any version"; otherwise a different current
// version is customer.ErrPreconditionFailed. An update that changes nothing
// appends no event (Result.Seq is 0). Requires crm.edit.
func (h *Handler) UpdateCustomer(ctx context.Context, r Request, id string, in customer.Input, expectedVersion uint64) (Result, error) {
	if err := r.Principal.Require(auth.PermEdit); err != nil {
		return Result{}, err
	}
	return h.execute(ctx, r, id, customer.Update{CustomerID: id, Input: in, ExpectedVersion: expectedVersion})
}
