package commands

import (
	"context"

	"crm/internal/auth"
	"crm/internal/customer"
)

// DeleteCustomer deletes the customer; an unknown or deleted one is
// customer.ErrNotFound. expectedVersion works as in UpdateCustomer.
// Requires crm.delete.
func (h *Handler) DeleteCustomer(ctx context.Context, r Request, id string, expectedVersion uint64) (Result, error) {
	if err := r.Principal.Require(auth.PermDelete); err != nil {
		return Result{}, err
	}
	return h.execute(ctx, r, id, customer.Delete{CustomerID: id, ExpectedVersion: expectedVersion})
}
