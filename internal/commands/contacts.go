package commands

import (
	"context"
	"errors"

	"crm/internal/auth"
	"crm/internal/contact"
	"crm/internal/events"
	"crm/internal/fault"
)

// ContactResult is the outcome of a successful contact command.
type ContactResult struct {
	// Contact is the state after the command, from the aggregate.
	Contact contact.Contact
	// Seq is the stream sequence of the appended event; 0 when the command
	// changed nothing.
	Seq uint64
	// Replayed: an idempotent retry; nothing was appended by this call.
	Replayed bool
}

// CreateContact creates a contact with a fresh id. Requires crm.create.
// r.IdempotencyKey works as in CreateCustomer (its keys are apart from the
// customers' keys).
func (h *Handler) CreateContact(ctx context.Context, r Request, in contact.Input) (ContactResult, error) {
	if err := r.Principal.Require(auth.PermCreate); err != nil {
		return ContactResult{}, err
	}
	if err := contact.Validate(in, true); err != nil {
		return ContactResult{}, err
	}
	id := h.newID()
	if r.IdempotencyKey != "" {
		var err error
		if id, err = h.store.Reserve(ctx, "contacts\x00"+r.Principal.Subject, r.IdempotencyKey, r.RequestHash, id); err != nil {
			return ContactResult{}, err
		}
		if res, ok, err := h.existingContact(ctx, id); err != nil || ok {
			return res, err
		}
	}
	res, err := h.executeContact(ctx, r, id, contact.Create{ContactID: id, Input: in})
	if errors.Is(err, contact.ErrAlreadyExists) && r.IdempotencyKey != "" {
		if res, ok, err := h.existingContact(ctx, id); err != nil || ok {
			return res, err
		}
	}
	return res, err
}

// UpdateContact merges in into the contact (JSON merge-patch semantics);
// expectedVersion works as in UpdateCustomer. Requires crm.edit.
func (h *Handler) UpdateContact(ctx context.Context, r Request, id string, in contact.Input, expectedVersion uint64) (ContactResult, error) {
	if err := r.Principal.Require(auth.PermEdit); err != nil {
		return ContactResult{}, err
	}
	return h.executeContact(ctx, r, id, contact.Update{ContactID: id, Input: in, ExpectedVersion: expectedVersion})
}

// DeleteContact deletes the contact; an unknown or deleted one is
// contact.ErrNotFound. Requires crm.delete.
func (h *Handler) DeleteContact(ctx context.Context, r Request, id string, expectedVersion uint64) (ContactResult, error) {
	if err := r.Principal.Require(auth.PermDelete); err != nil {
		return ContactResult{}, err
	}
	return h.executeContact(ctx, r, id, contact.Delete{ContactID: id, ExpectedVersion: expectedVersion})
}

// existingContact returns the contact an earlier request with the same
// idempotency key created, as it was created.
func (h *Handler) existingContact(ctx context.Context, id string) (ContactResult, bool, error) {
	evs, _, err := h.store.LoadAggregate(ctx, events.Contacts, id)
	if err != nil || len(evs) == 0 {
		return ContactResult{}, false, err
	}
	return ContactResult{Contact: contact.Fold(evs[:1]), Seq: evs[0].Seq, Replayed: true}, true, nil
}

// executeContact loads the contact, decides cmd and appends the result,
// deciding again on fresh state after a concurrent change (as execute does
// for customers).
func (h *Handler) executeContact(ctx context.Context, r Request, id string, cmd contact.Command) (ContactResult, error) {
	_, isCreate := cmd.(contact.Create)
	if !isCreate {
		unlock, err := h.locks.lock(ctx, id)
		if err != nil {
			return ContactResult{}, fault.Wrap(fault.Unavailable, "the request ended while waiting for earlier changes of the contact", err)
		}
		defer unlock()
	}
	var res ContactResult
	err := h.retrying(ctx, func(attempt int) (bool, error) {
		var (
			evs  []events.Event
			last uint64
			err  error
		)
		if !isCreate || attempt > 0 {
			if evs, last, err = h.store.LoadAggregate(ctx, events.Contacts, id); err != nil {
				return false, err
			}
		}
		state := contact.Fold(evs)
		decided, err := contact.Decide(state, cmd, h.meta(r))
		if err != nil || len(decided) == 0 {
			res = ContactResult{Contact: state}
			return false, err
		}
		expected := map[string]uint64{id: last}
		all, _, err := h.linkFanOut(ctx, r, decided, expected, 0)
		if err != nil {
			return false, err
		}
		seqs, err := h.store.Append(ctx, all, expected)
		if err != nil {
			return appended(err)
		}
		for i, e := range decided {
			e.Seq = seqs[i]
			state = contact.Evolve(state, e)
		}
		// The last of all: read-your-writes covers the customers' halves.
		res = ContactResult{Contact: state, Seq: seqs[len(seqs)-1]}
		return false, nil
	})
	if err != nil {
		return ContactResult{}, err
	}
	return res, nil
}
