package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"crm/internal/auth"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

// ImportRow is one customer to create by an import: its id and its event's
// id derived from the job and the row (ImportIDs), so that the same row of
// the same job can never create two customers.
type ImportRow struct {
	CustomerID, EventID string
	Input               customer.Input
}

// ImportIDs returns the customer id and the event id of row line of job.
func ImportIDs(jobID string, line int64) (customerID, eventID string) {
	ns := uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:crm:import:"+jobID))
	return uuid.NewSHA1(ns, fmt.Appendf(nil, "customer:%d", line)).String(),
		uuid.NewSHA1(ns, fmt.Appendf(nil, "event:%d", line)).String()
}

// ImportResult is the outcome of one row: Created (now, or by an earlier
// run of the same job: Existed), or Err (the row's own problem).
type ImportResult struct {
	Customer customer.Customer
	Existed  bool
	Err      error
	Seq      uint64
}

// ImportCreates creates the customers of rows (already validated with
// customer.ValidateCreate), normally as one atomic batch: one synced write
// for them all, codes reserved as one block. If the batch fails (a row's
// customer exists from an earlier run, an external id is taken or given
// twice), the rows are created one by one, each with its own result, and a
// row whose customer exists is reported Existed, not created again.
// Requires crm.create.
func (h *Handler) ImportCreates(ctx context.Context, r Request, rows []ImportRow) ([]ImportResult, error) {
	if err := r.Principal.Require(auth.PermCreate); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	out := make([]ImportResult, len(rows))
	first, err := h.store.NextCodes(ctx, len(rows))
	if err != nil {
		return nil, err
	}
	evs := make([]events.Event, 0, len(rows))
	expected := make(map[string]uint64, len(rows))
	fast := true
	states := make([]customer.Customer, len(rows))
	for i, row := range rows {
		r.eventID = row.EventID
		decided, err := customer.Decide(customer.Customer{}, customer.Create{CustomerID: row.CustomerID,
			Code: FormatCode(first + uint64(i)), Input: row.Input}, h.meta(r))
		if err != nil {
			out[i].Err = err
			fast = false
			continue
		}
		states[i] = customer.Evolve(customer.Customer{}, decided[0])
		out[i].Customer = states[i]
		evs = append(evs, decided[0])
		expected[row.CustomerID] = 0
	}
	// The external ids' claims: one batched read of every subject; a
	// subject held by another customer is checked as a single create
	// checks it (is it still that customer's?).
	rowClaims := make([][]events.Claim, len(rows))
	errs := make([]error, len(rows))
	var subjects []string
	for i := range rows {
		if out[i].Err == nil && states[i].ExternalID != "" {
			subjects = append(subjects, events.ClaimSubject(ClaimExternalID, states[i].ExternalID))
		}
	}
	holders, err := h.store.LoadClaims(ctx, subjects)
	if err != nil {
		return nil, err
	}
	for i, row := range rows {
		if out[i].Err != nil || states[i].ExternalID == "" {
			continue
		}
		subject := events.ClaimSubject(ClaimExternalID, states[i].ExternalID)
		switch hd, held := holders[subject]; {
		case !held:
			rowClaims[i] = []events.Claim{{Subject: subject, CustomerID: row.CustomerID}}
		case hd.CustomerID == row.CustomerID: // ours: an earlier run of the job
		default:
			rowClaims[i], errs[i] = h.externalIDClaims(ctx, row.CustomerID, customer.Customer{}, states[i])
		}
	}
	var claims []events.Claim
	claimed := map[string]bool{}
	for i, err := range errs {
		if err != nil {
			if !rowError(err) {
				return nil, err
			}
			out[i].Err = err
			fast = false
			continue
		}
		for _, c := range rowClaims[i] {
			if claimed[c.Subject] {
				out[i].Err = externalIDTaken("of an earlier row")
				fast = false
			}
			claimed[c.Subject] = true
			claims = append(claims, c)
		}
	}
	if fast {
		seqs, err := h.store.Append(ctx, evs, expected, claims...)
		if err == nil {
			for i := range out {
				out[i].Seq = seqs[i]
				out[i].Customer.Seq = seqs[i]
			}
			return out, nil
		}
		if !fault.Is(err, fault.Conflict) {
			return nil, err
		}
	}
	// One by one: each row its own append (its code already reserved).
	for i, row := range rows {
		if out[i].Err != nil && !fault.Is(out[i].Err, fault.Conflict) {
			continue // invalid: no retry can help
		}
		out[i] = h.importOne(ctx, r, row, first+uint64(i))
		if out[i].Err != nil && !rowError(out[i].Err) {
			return nil, out[i].Err // the store, not the row: the job stops or retries
		}
	}
	return out, nil
}

// rowError reports whether err is a row's own problem (invalid, or its
// external id taken), not the store's.
func rowError(err error) bool {
	k := fault.KindOf(err)
	return k == fault.Invalid || k == fault.Conflict
}

// importOne creates one row's customer as a single create does (execute:
// its external id claimed, a conflict decided again), unless an earlier
// run of the job did.
func (h *Handler) importOne(ctx context.Context, r Request, row ImportRow, code uint64) ImportResult {
	r.eventID = row.EventID
	res, err := h.execute(ctx, r, row.CustomerID, customer.Create{CustomerID: row.CustomerID, Code: FormatCode(code), Input: row.Input})
	if errors.Is(err, customer.ErrAlreadyExists) {
		evs, _, lerr := h.store.Load(ctx, row.CustomerID)
		if lerr != nil {
			return ImportResult{Err: lerr}
		}
		if len(evs) > 0 {
			return ImportResult{Customer: customer.Fold(evs[:1]), Existed: true, Seq: evs[0].Seq}
		}
	}
	if err != nil {
		return ImportResult{Err: err}
	}
	return ImportResult{Customer: res.Customer, Seq: res.Seq}
}
