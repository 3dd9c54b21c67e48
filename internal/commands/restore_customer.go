package commands

import (
	"context"
	"errors"

	"crm/internal/auth"
	"crm/internal/customer"
)

// RestoreCustomer brings a deleted customer back, with its code and the
// state it had when it was deleted. A live customer is
// customer.ErrNotDeleted, an unknown one customer.ErrNotFound;
// expectedVersion works as in UpdateCustomer. Requires crm.delete.
//
// The links its deletion ended come back as they were, on both sides, in
// the restore's batch, except to contacts deleted since (found when the
// contacts' halves are added: the restore is then decided again without
// them).
func (h *Handler) RestoreCustomer(ctx context.Context, r Request, id string, expectedVersion uint64) (Result, error) {
	if err := r.Principal.Require(auth.PermDelete); err != nil {
		return Result{}, err
	}
	gone := map[string]bool{}
	for {
		res, err := h.execute(ctx, r, id, customer.Restore{CustomerID: id, ExpectedVersion: expectedVersion, Gone: gone})
		var g *contactsGone
		if !errors.As(err, &g) || len(gone) > customer.MaxLinks {
			return res, err
		}
		for _, kid := range g.ids {
			gone[kid] = true // a deleted contact stays deleted
		}
	}
}
