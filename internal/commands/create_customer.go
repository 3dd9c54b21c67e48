package commands

import (
	"context"
	"fmt"

	"crm/internal/auth"
	"crm/internal/customer"
)

// FormatCode formats a customer number as its code: C001 … C999, C1000, ….
func FormatCode(n uint64) string { return fmt.Sprintf("C%03d", n) }

// CreateCustomer creates a customer with a fresh id and the next customer
// code. The input is validated before a code is spent. Requires crm.create.
func (h *Handler) CreateCustomer(ctx context.Context, r Request, in customer.Input) (Result, error) {
	if err := r.Principal.Require(auth.PermCreate); err != nil {
		return Result{}, err
	}
	if err := customer.ValidateCreate(in); err != nil {
		return Result{}, err
	}
	n, err := h.store.NextCode(ctx)
	if err != nil {
		if h.isUnavailable(err) {
			return Result{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return Result{}, err
	}
	id := h.newID()
	return h.execute(ctx, r, id, customer.Create{CustomerID: id, Code: FormatCode(n), Input: in})
}
