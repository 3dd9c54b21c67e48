package commands

import (
	"context"

	"crm/internal/auth"
	"crm/internal/contact"
	"crm/internal/customer"
	"crm/internal/events"
)

// CustomerEvents returns every event of one customer from the stream (the
// source of truth), oldest first, for the audit endpoints; deleted customers
// included. An id without events is customer.ErrNotFound. Requires
// crm.audit.
func (h *Handler) CustomerEvents(ctx context.Context, r Request, id string) ([]events.Event, error) {
	if err := r.Principal.Require(auth.PermAudit); err != nil {
		return nil, err
	}
	evs, _, err := h.store.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		return nil, customer.ErrNotFound
	}
	return evs, nil
}

// ContactEvents returns every event of one contact from the stream, oldest
// first, for the audit endpoints; deleted contacts included. An id without
// events is contact.ErrNotFound. Requires crm.audit.
func (h *Handler) ContactEvents(ctx context.Context, r Request, id string) ([]events.Event, error) {
	if err := r.Principal.Require(auth.PermAudit); err != nil {
		return nil, err
	}
	evs, _, err := h.store.LoadAggregate(ctx, events.Contacts, id)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		return nil, contact.ErrNotFound
	}
	return evs, nil
}
