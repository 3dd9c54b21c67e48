package commands

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"crm/internal/auth"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

// MaxBatchOps is the most operations one Batch takes: with an external id
// claim each, 500 operations are the 1,000 messages of JetStream's largest
// atomic batch.
const MaxBatchOps = 500

// Batch operation kinds.
const (
	OpCreate = "create"
	OpUpdate = "update"
	OpDelete = "delete"
)

// BatchOp is one operation of a Batch.
type BatchOp struct {
	Op         string // OpCreate, OpUpdate or OpDelete
	CustomerID string // update, delete
	// ExpectedVersion (update, delete): as in UpdateCustomer; 0 = any.
	ExpectedVersion uint64
	// IdempotencyKey and RequestHash (create): as in Request.
	IdempotencyKey, RequestHash string
	Input                       customer.Input // create, update
}

// BatchResult is the outcome of one operation: Result, or Err; with
// NotApplied, the operation was valid but an atomic batch failed on
// another one, so nothing of it was stored.
type BatchResult struct {
	Result     Result
	Err        error
	NotApplied bool
}

// ErrNotApplied (fault.Conflict) is the error of the operations of an
// atomic batch that were not applied because another one failed.
var ErrNotApplied = fault.New(fault.Conflict, "not applied: another operation of the atomic batch failed")

// Batch carries out ops and returns one result per operation, in order.
// Each operation needs its own permission.
//
// Without atomic, every operation is its own command (its own append, its
// own retries): the operations of one customer run one after the other in
// input order, those of different customers concurrently, and one failing
// changes nothing for the others.
//
// With atomic, the batch is all or nothing: every operation is decided in
// input order on the state the earlier ones leave (an update after a
// create of the same batch is impossible, the id being fresh, but two
// updates of one customer chain), and all events are appended as one
// JetStream atomic batch with each customer's expected sequence. If any
// operation fails, nothing is appended: it carries its error and every
// other one ErrNotApplied. A concurrent change of one of the customers
// decides the whole batch again on fresh state, as execute does.
func (h *Handler) Batch(ctx context.Context, r Request, ops []BatchOp, atomic bool) []BatchResult {
	if atomic {
		return h.atomicBatch(ctx, r, ops)
	}
	out := make([]BatchResult, len(ops))
	// Chains of operations on the same customer, in input order; every
	// create is a chain of its own.
	var chains [][]int
	byID := map[string]int{}
	for i, op := range ops {
		if op.Op == OpCreate || op.CustomerID == "" {
			chains = append(chains, []int{i})
			continue
		}
		c, ok := byID[op.CustomerID]
		if !ok {
			c = len(chains)
			byID[op.CustomerID] = c
			chains = append(chains, nil)
		}
		chains[c] = append(chains[c], i)
	}
	work := make(chan []int)
	var wg sync.WaitGroup
	for range min(batchWorkers, len(chains)) {
		wg.Go(func() {
			for chain := range work {
				for _, i := range chain {
					out[i].Result, out[i].Err = h.one(ctx, r, ops[i])
				}
			}
		})
	}
	for _, c := range chains {
		work <- c
	}
	close(work)
	wg.Wait()
	return out
}

// batchWorkers is how many operations of a non-atomic batch run at once:
// enough to share synced writes (the server commits concurrent publishes
// together), few enough to leave the service to its other clients.
const batchWorkers = 16

// one carries out a single operation of a non-atomic batch.
func (h *Handler) one(ctx context.Context, r Request, op BatchOp) (Result, error) {
	switch op.Op {
	case OpCreate:
		r.IdempotencyKey, r.RequestHash = op.IdempotencyKey, op.RequestHash
		return h.CreateCustomer(ctx, r, op.Input)
	case OpUpdate:
		return h.UpdateCustomer(ctx, r, op.CustomerID, op.Input, op.ExpectedVersion)
	case OpDelete:
		return h.DeleteCustomer(ctx, r, op.CustomerID, op.ExpectedVersion)
	}
	return Result{}, fault.InvalidField("op", "must be one of create, update, delete")
}

// atomicBatch decides every operation and appends them all, or none.
func (h *Handler) atomicBatch(ctx context.Context, r Request, ops []BatchOp) []BatchResult {
	out := make([]BatchResult, len(ops))
	failed := false
	fail := func(i int, err error) { out[i].Err, failed = err, true }

	// What does not depend on the stored state: permissions, input.
	var ids []string
	creates := 0
	for i, op := range ops {
		var err error
		switch op.Op {
		case OpCreate:
			if err = r.Principal.Require(auth.PermCreate); err == nil {
				err = customer.ValidateCreate(op.Input)
			}
			creates++
		case OpUpdate:
			err = r.Principal.Require(auth.PermEdit)
		case OpDelete:
			err = r.Principal.Require(auth.PermDelete)
		default:
			err = fault.InvalidField("op", "must be one of create, update, delete")
		}
		if err != nil {
			fail(i, err)
		}
		if op.Op != OpCreate && op.CustomerID != "" && !slices.Contains(ids, op.CustomerID) {
			ids = append(ids, op.CustomerID)
		}
	}
	if failed {
		return notApplied(out)
	}

	// The ids of the creates: fresh, or bound to their idempotency keys
	// (a key seen before replays the customer it created, appending
	// nothing for it).
	createIDs := make([]string, len(ops))
	replayed := make([]bool, len(ops))
	for i, op := range ops {
		if op.Op != OpCreate {
			continue
		}
		createIDs[i] = h.newID()
		if op.IdempotencyKey == "" {
			continue
		}
		id, err := h.store.Reserve(ctx, r.Principal.Subject, op.IdempotencyKey, op.RequestHash, createIDs[i])
		if err != nil {
			fail(i, err)
			continue
		}
		createIDs[i] = id
		res, ok, err := h.existing(ctx, id)
		switch {
		case err != nil:
			fail(i, err)
		case ok:
			out[i].Result, replayed[i] = res, true
			creates--
		}
	}
	if failed {
		return notApplied(out)
	}
	firstWith := map[string]int{} // a key given twice in one batch
	for i, id := range createIDs {
		if id == "" {
			continue
		}
		if j, dup := firstWith[id]; dup && !replayed[i] {
			fail(i, fault.InvalidField("idempotencyKey", fmt.Sprintf("is the key of operation %d of this batch", j)))
			continue
		}
		firstWith[id] = i
	}
	if failed {
		return notApplied(out)
	}

	// One batch at a time per customer in this process, locked in id order
	// so that two batches never wait for each other.
	slices.Sort(ids)
	for _, id := range ids {
		unlock, err := h.locks.lock(ctx, id)
		if err != nil {
			for i := range out {
				out[i].Err = fault.Wrap(fault.Unavailable, "the request ended while waiting for earlier changes of a customer", err)
			}
			return out
		}
		defer unlock()
	}
	var first uint64
	if creates > 0 {
		n, err := h.store.NextCodes(ctx, creates)
		if err != nil {
			for i := range out {
				out[i].Err = err
			}
			return out
		}
		first = n
	}

	start := time.Now()
	for attempt := 0; ; attempt++ {
		err := h.tryAtomic(ctx, r, ops, ids, createIDs, replayed, first, out)
		if err == nil || !fault.Is(err, fault.Conflict) || errorsAny(out) {
			if err != nil && !errorsAny(out) {
				for i := range out {
					if !replayed[i] {
						out[i].Err = err
					}
				}
			}
			if errorsAny(out) {
				return notApplied(out)
			}
			return out
		}
		if attempt >= h.retries && time.Since(start) >= h.conflictBudget {
			for i := range out {
				out[i] = BatchResult{Err: fmt.Errorf("%w: %v", ErrConflict, err)}
			}
			return out
		}
		if err := backoff(ctx, attempt); err != nil {
			for i := range out {
				out[i] = BatchResult{Err: err}
			}
			return out
		}
	}
}

// tryAtomic loads the customers, decides every operation and appends the
// events; an operation's own failure goes to its result, a failed append
// (a conflict: decide again) is returned.
func (h *Handler) tryAtomic(ctx context.Context, r Request, ops []BatchOp, ids, createIDs []string, replayed []bool,
	firstCode uint64, out []BatchResult) error {
	loaded, last, err := h.loadAll(ctx, ids)
	if err != nil {
		return err
	}
	state := make(map[string]customer.Customer, len(ids)+len(ops))
	before := make(map[string]customer.Customer, len(ids))
	expected := make(map[string]uint64, len(ids)+len(ops))
	for i, id := range ids {
		state[id], before[id], expected[id] = loaded[i], loaded[i], last[i]
	}
	var evs []events.Event
	owner := []int{} // the operation of each event
	code := firstCode
	for i, op := range ops {
		if replayed[i] {
			continue
		}
		out[i].Err = nil
		var id string
		var cmd customer.Command
		switch op.Op {
		case OpCreate:
			id = createIDs[i]
			cmd = customer.Create{CustomerID: id, Code: FormatCode(code), Input: op.Input}
			code++
			expected[id] = 0
		case OpUpdate:
			id = op.CustomerID
			cmd = customer.Update{CustomerID: id, Input: op.Input, ExpectedVersion: op.ExpectedVersion}
		case OpDelete:
			id = op.CustomerID
			cmd = customer.Delete{CustomerID: id, ExpectedVersion: op.ExpectedVersion}
		}
		decided, err := customer.Decide(state[id], cmd, h.meta(r))
		if err != nil {
			out[i].Err = err
			continue
		}
		st := state[id]
		for _, e := range decided {
			st = customer.Evolve(st, e)
			evs = append(evs, e)
			owner = append(owner, i)
		}
		state[id] = st
		out[i].Result = Result{Customer: st}
	}
	if errorsAny(out) {
		return nil
	}
	// The external id claims of every customer the batch leaves with an
	// external id it did not hold; two customers of the batch claiming the
	// same one fail the later.
	opID := func(i int) string { // the customer of operation i
		if ops[i].Op == OpCreate {
			return createIDs[i]
		}
		return ops[i].CustomerID
	}
	lastOp := map[string]int{} // each customer's last operation
	for i := range ops {
		lastOp[opID(i)] = i
	}
	var claims []events.Claim
	claimedBy := map[string]int{}
	for i := range ops {
		id := opID(i)
		if replayed[i] || out[i].Result.Customer.ID != id || lastOp[id] != i {
			continue
		}
		cs, err := h.externalIDClaims(ctx, id, before[id], state[id])
		if err != nil {
			out[i].Err = err
			continue
		}
		for _, c := range cs {
			if j, dup := claimedBy[c.Subject]; dup {
				out[i].Err = externalIDTaken(fmt.Sprintf("of operation %d of this batch", j))
				continue
			}
			claimedBy[c.Subject] = i
			claims = append(claims, c)
		}
	}
	if errorsAny(out) || len(evs) == 0 {
		return nil
	}
	// The links that deletions end get their other half in the same batch
	// (after the operations' events: owner indexes those).
	all, causes, err := h.linkFanOut(ctx, r, evs, expected, len(claims))
	if err != nil {
		return err
	}

	seqs, err := h.store.Append(ctx, all, expected, claims...)
	if err != nil {
		for i := range out {
			if !replayed[i] {
				out[i].Result = Result{}
			}
		}
		return err
	}
	for k, i := range owner {
		out[i].Result.Seq = seqs[k]
	}
	// Each result shows the customer's state after its operation, with the
	// sequence of that operation's event.
	for i := range ops {
		if !replayed[i] && out[i].Result.Seq > 0 {
			out[i].Result.Customer.Seq = out[i].Result.Seq
		}
	}
	// An operation that ended links waits (read-your-writes) for their
	// other halves too, appended after every operation's events.
	for j, c := range causes {
		i := owner[c]
		out[i].Result.Seq = max(out[i].Result.Seq, seqs[len(evs)+j])
	}
	return nil
}

func errorsAny(out []BatchResult) bool {
	for _, r := range out {
		if r.Err != nil {
			return true
		}
	}
	return false
}

// notApplied marks every operation without an error as not applied
// (replays included: the batch as a whole failed) and drops their results.
func notApplied(out []BatchResult) []BatchResult {
	for i := range out {
		if out[i].Err == nil {
			out[i] = BatchResult{Err: ErrNotApplied, NotApplied: true}
		}
	}
	return out
}
