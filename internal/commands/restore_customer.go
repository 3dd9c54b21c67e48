package commands

import (
	"context"

	"crm/internal/auth"
	"crm/internal/customer"
)

// RestoreCustomer brings a deleted customer back, with its code and the
// state it had when it was deleted. A live customer is
// customer.ErrNotDeleted, an unknown one customer.ErrNotFound;
// expectedVersion works as in UpdateCustomer. Requires crm.delete.
func (h *Handler) RestoreCustomer(ctx context.Context, r Request, id string, expectedVersion uint64) (Result, error) {
	if err := r.Principal.Require(auth.PermDelete); err != nil {
		return Result{}, err
	}
	return h.execute(ctx, r, id, customer.Restore{CustomerID: id, ExpectedVersion: expectedVersion})
}
