package commands

import (
	"context"
	"fmt"
	"sync"

	"crm/internal/auth"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

// ErrMergeRaced (fault.Conflict): a customer of a merge or unmerge changed
// between its load and the append; nothing was applied. A merge is not
// retried by itself: the client decided on what it previewed.
var ErrMergeRaced = fault.New(fault.Conflict, "a customer of the merge changed meanwhile; nothing was applied: check it and retry")

// MergeResult is the outcome of a merge (or of its dry run).
type MergeResult struct {
	Plan customer.MergePlan
	// Seq is the stream sequence of the merge's last event (wait for it to
	// read the merge's every effect); 0 for a dry run.
	Seq uint64
}

// MergeCustomers absorbs the customers absorbedIDs into survivorID (see
// customer.DecideMerge for the rule) as one atomic batch: the survivor's
// CustomersMerged and each absorbed customer's CustomerMergedInto, each
// customer's expected sequence checked, so a concurrent change to any of
// them fails the whole merge with ErrMergeRaced. With dryRun nothing is
// appended. Requires crm.edit and crm.delete.
func (h *Handler) MergeCustomers(ctx context.Context, r Request, survivorID string, absorbedIDs []string,
	resolve map[string]string, dryRun bool) (MergeResult, error) {
	for _, p := range []string{auth.PermEdit, auth.PermDelete} {
		if err := r.Principal.Require(p); err != nil {
			return MergeResult{}, err
		}
	}
	states, last, err := h.loadAll(ctx, append([]string{survivorID}, absorbedIDs...))
	if err != nil {
		return MergeResult{}, err
	}
	plan, err := customer.DecideMerge(states[0], states[1:], customer.Merge{SurvivorID: survivorID, AbsorbedIDs: absorbedIDs,
		Resolve: resolve}, h.meta(r))
	if err != nil || dryRun {
		return MergeResult{Plan: plan}, err
	}
	seqs, err := h.appendDecided(ctx, r, plan.Events, absorbedIDs, survivorID, last)
	if err != nil {
		return MergeResult{}, err
	}
	plan.Survivor.Seq = lastOf(plan.Events, seqs, survivorID)
	return MergeResult{Plan: plan, Seq: seqs[len(seqs)-1]}, nil
}

// lastOf returns the stream sequence of the last of evs (appended at
// seqs) about id.
func lastOf(evs []events.Event, seqs []uint64, id string) uint64 {
	var seq uint64
	for i, e := range evs {
		if e.AggregateID == id && i < len(seqs) {
			seq = seqs[i]
		}
	}
	return seq
}

// UnmergeCustomer takes absorbedID out of survivorID (see
// customer.DecideUnmerge): one atomic batch of the survivor's
// CustomerMergeUndone and the absorbed customer's CustomerUnmerged, both
// expected sequences checked (ErrMergeRaced). It returns the stream
// sequence of the batch's last event. Requires crm.edit and crm.delete.
func (h *Handler) UnmergeCustomer(ctx context.Context, r Request, survivorID, absorbedID string) (customer.UnmergeResult, uint64, error) {
	for _, p := range []string{auth.PermEdit, auth.PermDelete} {
		if err := r.Principal.Require(p); err != nil {
			return customer.UnmergeResult{}, 0, err
		}
	}
	states, last, err := h.loadAll(ctx, []string{survivorID, absorbedID})
	if err != nil {
		return customer.UnmergeResult{}, 0, err
	}
	res, err := customer.DecideUnmerge(states[0], states[1], customer.Unmerge{SurvivorID: survivorID, AbsorbedID: absorbedID}, h.meta(r))
	if err != nil {
		return res, 0, err
	}
	// The absorbed customer comes back with its external id, which its
	// claim kept while it was merged.
	claims, err := h.externalIDClaims(ctx, absorbedID, states[1], res.Absorbed)
	if err != nil {
		return customer.UnmergeResult{}, 0, err
	}
	seqs, err := h.appendDecided(ctx, r, res.Events, []string{absorbedID}, survivorID, last, claims...)
	if err != nil {
		return customer.UnmergeResult{}, 0, err
	}
	res.Survivor.Seq, res.Absorbed.Seq = lastOf(res.Events, seqs, survivorID), lastOf(res.Events, seqs, absorbedID)
	return res, seqs[len(seqs)-1], nil
}

// loadAll folds the customers ids (at most a merge's), loaded in parallel,
// and returns their states and last sequences in the order of ids.
func (h *Handler) loadAll(ctx context.Context, ids []string) ([]customer.Customer, []uint64, error) {
	states := make([]customer.Customer, len(ids))
	last := make([]uint64, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			var evs []events.Event
			evs, last[i], errs[i] = h.store.Load(ctx, id)
			states[i] = customer.Fold(evs)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	return states, last, nil
}

// appendDecided appends the events of a multi-customer decision, with the
// contacts' halves of the links it begins or ends (linkFanOut), expecting
// each customer (the survivor, then others, matching last) at its loaded
// sequence, and each contact at its; a conflict is ErrMergeRaced.
func (h *Handler) appendDecided(ctx context.Context, r Request, evs []events.Event, others []string, survivorID string, last []uint64, claims ...events.Claim) ([]uint64, error) {
	expected := map[string]uint64{survivorID: last[0]}
	for i, id := range others {
		expected[id] = last[i+1]
	}
	evs, _, err := h.linkFanOut(ctx, r, evs, expected, len(claims))
	if err != nil {
		return nil, err
	}
	seqs, err := h.store.Append(ctx, evs, expected, claims...)
	if fault.Is(err, fault.Conflict) {
		return nil, fmt.Errorf("%w: %v", ErrMergeRaced, err)
	}
	return seqs, err
}
