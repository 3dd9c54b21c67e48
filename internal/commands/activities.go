package commands

import (
	"context"
	"errors"

	"crm/internal/activity"
	"crm/internal/auth"
	"crm/internal/contact"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

// ActivityResult is the outcome of a successful activity command.
type ActivityResult struct {
	Activity activity.Activity // the state after the command
	Seq      uint64            // of the appended event; 0 when nothing changed
	Replayed bool              // an idempotent retry of a create
}

// CreateActivity records an activity of customer customerID: the customer
// must be live (a merged one is fault.Moved) and every contact it names
// live. (A customer deleted at the same moment may still get it: the
// activity is its own aggregate, and a deleted customer's activities are
// kept with it.) r.IdempotencyKey works as in CreateCustomer. Requires
// crm.edit.
func (h *Handler) CreateActivity(ctx context.Context, r Request, customerID string, in activity.Input) (ActivityResult, error) {
	if err := r.Principal.Require(auth.PermEdit); err != nil {
		return ActivityResult{}, err
	}
	if err := activity.Validate(in, true); err != nil {
		return ActivityResult{}, err
	}
	id := h.newID()
	if r.IdempotencyKey != "" {
		var err error
		if id, err = h.store.Reserve(ctx, "activities\x00"+r.Principal.Subject, r.IdempotencyKey, r.RequestHash, id); err != nil {
			return ActivityResult{}, err
		}
		if res, ok, err := h.existingActivity(ctx, id); err != nil || ok {
			return res, err
		}
	}
	res, err := h.executeActivity(ctx, r, id, activity.Create{ActivityID: id, CustomerID: customerID, Input: in}, customerID, in)
	if errors.Is(err, activity.ErrAlreadyExists) && r.IdempotencyKey != "" {
		if res, ok, err := h.existingActivity(ctx, id); err != nil || ok {
			return res, err
		}
	}
	return res, err
}

// UpdateActivity merges in into the activity; expectedVersion works as in
// UpdateCustomer. Requires crm.edit.
func (h *Handler) UpdateActivity(ctx context.Context, r Request, id string, in activity.Input, expectedVersion uint64) (ActivityResult, error) {
	if err := r.Principal.Require(auth.PermEdit); err != nil {
		return ActivityResult{}, err
	}
	return h.executeActivity(ctx, r, id, activity.Update{ActivityID: id, Input: in, ExpectedVersion: expectedVersion}, "", in)
}

// DeleteActivity deletes the activity. Requires crm.edit.
func (h *Handler) DeleteActivity(ctx context.Context, r Request, id string, expectedVersion uint64) (ActivityResult, error) {
	if err := r.Principal.Require(auth.PermEdit); err != nil {
		return ActivityResult{}, err
	}
	return h.executeActivity(ctx, r, id, activity.Delete{ActivityID: id, ExpectedVersion: expectedVersion}, "", activity.Input{})
}

func (h *Handler) existingActivity(ctx context.Context, id string) (ActivityResult, bool, error) {
	evs, _, err := h.store.LoadAggregate(ctx, events.Activities, id)
	if err != nil || len(evs) == 0 {
		return ActivityResult{}, false, err
	}
	return ActivityResult{Activity: activity.Fold(evs[:1]), Seq: evs[0].Seq, Replayed: true}, true, nil
}

// executeActivity loads the activity and what it names (the customer of a
// create, the contacts of in), decides and appends, deciding again after a
// concurrent change.
func (h *Handler) executeActivity(ctx context.Context, r Request, id string, cmd activity.Command, customerID string, in activity.Input) (ActivityResult, error) {
	_, isCreate := cmd.(activity.Create)
	if !isCreate {
		unlock, err := h.locks.lock(ctx, id)
		if err != nil {
			return ActivityResult{}, fault.Wrap(fault.Unavailable, "the request ended while waiting for earlier changes of the activity", err)
		}
		defer unlock()
	}
	var p activity.Parties
	if customerID != "" {
		evs, _, err := h.store.Load(ctx, customerID)
		if err != nil {
			return ActivityResult{}, err
		}
		p.Customer = customer.Fold(evs)
	}
	p.Contacts = map[string]bool{}
	for _, kid := range activity.ContactsOf(in) {
		evs, _, err := h.store.LoadAggregate(ctx, events.Contacts, kid)
		if err != nil {
			return ActivityResult{}, err
		}
		p.Contacts[kid] = contact.Fold(evs).Exists()
	}
	var res ActivityResult
	err := h.retrying(ctx, func(attempt int) (bool, error) {
		var (
			evs  []events.Event
			last uint64
			err  error
		)
		if !isCreate || attempt > 0 {
			if evs, last, err = h.store.LoadAggregate(ctx, events.Activities, id); err != nil {
				return false, err
			}
		}
		state := activity.Fold(evs)
		decided, err := activity.Decide(state, cmd, p, h.meta(r))
		if err != nil || len(decided) == 0 {
			res = ActivityResult{Activity: state}
			return false, err
		}
		seqs, err := h.store.Append(ctx, decided, map[string]uint64{id: last})
		if err != nil {
			return appended(err)
		}
		for i, e := range decided {
			e.Seq = seqs[i]
			state = activity.Evolve(state, e)
		}
		res = ActivityResult{Activity: state, Seq: seqs[len(seqs)-1]}
		return false, nil
	})
	if err != nil {
		return ActivityResult{}, err
	}
	return res, nil
}
