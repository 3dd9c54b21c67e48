// Package commands carries out the customer commands: authorize, validate,
// load the customer's events from the event store, decide, append. One file
// per use case; no transport or storage imports.
package commands

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"crm/internal/auth"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

// EventStore is what the command side needs from the event store
// (implemented by eventstore.Store). Its errors are fault errors: Append's
// optimistic-concurrency failure is fault.Conflict, an unreachable store
// fault.Unavailable.
type EventStore interface {
	// Load returns the customer's events in order and the stream sequence of
	// the last one (0 if none).
	Load(ctx context.Context, customerID string) ([]events.Event, uint64, error)
	// LoadAggregate is Load for id of any aggregate (a contact, …).
	LoadAggregate(ctx context.Context, a events.Aggregate, id string) ([]events.Event, uint64, error)
	// Append stores evs (of one customer or several) atomically, all or
	// none, if each customer's last event is still at expected[its id] (0:
	// none yet), and returns the stream sequence of each event. A
	// concurrent change of any of them is fault.Conflict, and nothing is
	// stored.
	// claims are appended in the same batch, each expecting its subject at
	// its ExpectedSeq (a moved claim is fault.Conflict too).
	Append(ctx context.Context, evs []events.Event, expected map[string]uint64, claims ...events.Claim) ([]uint64, error)
	// LoadClaim returns the holder of a claim subject and the subject's
	// last sequence ("" and 0: never claimed).
	LoadClaim(ctx context.Context, subject string) (customerID string, seq uint64, err error)
	// LoadClaims is LoadClaim for many subjects at once (the subjects never
	// claimed are absent from the map).
	LoadClaims(ctx context.Context, subjects []string) (map[string]events.ClaimHolder, error)
	// NextCode returns a fresh customer number, unique forever.
	NextCode(ctx context.Context) (uint64, error)
	// NextCodes reserves n consecutive fresh customer numbers and returns
	// the first.
	NextCodes(ctx context.Context, n int) (uint64, error)
	// Reserve binds an idempotency key of scope to a customer id: the first
	// call keeps newID, later ones with the same requestHash return it, a
	// different requestHash fails (fault.Unprocessable).
	Reserve(ctx context.Context, scope, key, requestHash, newID string) (string, error)
}

// ErrConflict (fault.Conflict): the customer kept changing under us until
// the retries ran out. Every other error of a command is the domain's, the
// store's or auth's, each a fault error.
var ErrConflict = &fault.Error{Kind: fault.Conflict, Message: "it kept changing concurrently; try again", RetryAfter: time.Second}

// Handler carries out commands. It is safe for concurrent use.
type Handler struct {
	store   EventStore
	emails  EmailIndex
	now     func() time.Time
	newID   func() string
	source  string
	retries int
	// conflictBudget bounds the retries of a command whose append keeps
	// conflicting (see Options.ConflictBudget).
	conflictBudget time.Duration
	locks          keyedLocks
}

// Options of a Handler.
type Options struct {
	Now     func() time.Time // default time.Now
	NewID   func() string    // default uuid v4
	Source  string           // CloudEvents source, default events.DefaultSource
	Retries int              // re-decides after a conflict at least this often, default 10
	// ConflictBudget: a command whose append keeps conflicting (another
	// process writing the same customer) re-decides until this much time
	// has passed since it started, default 5s; then ErrConflict (409 with
	// Retry-After).
	ConflictBudget time.Duration
	// Emails finds customers by email for upserts (the read model); nil:
	// an upsert sees only claimed emails.
	Emails EmailIndex
}

// New returns a Handler appending to store.
func New(store EventStore, o Options) *Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewID == nil {
		o.NewID = func() string { return uuid.NewString() }
	}
	if o.Source == "" {
		o.Source = events.DefaultSource
	}
	if o.Retries == 0 {
		o.Retries = 10
	}
	if o.ConflictBudget == 0 {
		o.ConflictBudget = 5 * time.Second
	}
	return &Handler{store: store, emails: o.Emails, now: o.Now, newID: o.NewID, source: o.Source, retries: o.Retries,
		conflictBudget: o.ConflictBudget}
}

// Request is the context of one command: who asks, and the ids that tie its
// event to the request.
type Request struct {
	Principal     auth.Principal
	CorrelationID string
	// CausationID is the id of what caused the command (for HTTP, the
	// request id); empty = CorrelationID.
	CausationID string
	// IdempotencyKey (creates only): a retry with the same key and the same
	// RequestHash returns the customer the first request created.
	IdempotencyKey string
	RequestHash    string

	// eventID, when set, is the id of the command's (first) event instead
	// of a fresh one (imports derive it from the job and the row).
	eventID string
}

// Result is the outcome of a successful command.
type Result struct {
	// Customer is the state after the command, from the aggregate.
	Customer customer.Customer
	// Seq is the stream sequence of the last appended event; 0 when the
	// command changed nothing and appended no event.
	Seq uint64
	// Replayed: an idempotent retry; nothing was appended by this call.
	Replayed bool
}

func (h *Handler) meta(r Request) customer.Meta {
	if r.CausationID == "" {
		r.CausationID = r.CorrelationID
	}
	id := r.eventID
	if id == "" {
		id = h.newID()
	}
	return customer.Meta{
		Actor:         r.Principal.Subject,
		Now:           h.now().UTC(),
		EventID:       id,
		Source:        h.source,
		CorrelationID: r.CorrelationID,
		CausationID:   r.CausationID,
		NextID:        h.newID,
	}
}

// execute loads the customer, decides cmd and appends the result, retrying
// on a concurrent change: the command is decided again on fresh state, so an
// ExpectedVersion then fails with ErrPreconditionFailed and a merge patch is
// applied on top of the other writer's change.
func (h *Handler) execute(ctx context.Context, r Request, id string, cmd customer.Command) (Result, error) {
	// One command at a time per customer in this process (a create's id
	// is fresh: nobody to wait for).
	if _, isCreate := cmd.(customer.Create); !isCreate {
		unlock, err := h.locks.lock(ctx, id)
		if err != nil {
			return Result{}, fault.Wrap(fault.Unavailable, "the request ended while waiting for earlier changes of the customer", err)
		}
		defer unlock()
	}
	start := time.Now()
	for attempt := 0; ; attempt++ {
		var (
			evs  []events.Event
			last uint64
			err  error
		)
		// A create's first attempt needs no load: its id is fresh, and the
		// append expects no event for it (a conflict reloads).
		if _, isCreate := cmd.(customer.Create); !isCreate || attempt > 0 {
			if evs, last, err = h.store.Load(ctx, id); err != nil {
				return Result{}, err
			}
		}
		state := customer.Fold(evs)
		decided, err := customer.Decide(state, cmd, h.meta(r))
		if err != nil {
			return Result{}, err
		}
		if len(decided) == 0 {
			return Result{Customer: state}, nil
		}
		after := state
		for _, e := range decided {
			after = customer.Evolve(after, e)
		}
		claims, err := h.externalIDClaims(ctx, id, state, after)
		if err != nil {
			return Result{}, err
		}
		expected := map[string]uint64{id: last}
		all, _, err := h.linkFanOut(ctx, r, decided, expected, len(claims))
		if err != nil {
			return Result{}, err
		}
		seqs, err := h.store.Append(ctx, all, expected, claims...)
		if err == nil {
			for i, e := range decided {
				e.Seq = seqs[i]
				state = customer.Evolve(state, e)
			}
			return Result{Customer: state, Seq: seqs[len(seqs)-1]}, nil
		}
		if !fault.Is(err, fault.Conflict) {
			return Result{}, err
		}
		if attempt >= h.retries && time.Since(start) >= h.conflictBudget {
			return Result{}, fmt.Errorf("%w: %v", ErrConflict, err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return Result{}, err
		}
	}
}

// retrying runs try until it succeeds, fails, or keeps conflicting: try
// reports conflicted when its append met a concurrent change (the command
// is then decided again on fresh state, after a backoff) until the retries
// and the conflict budget are spent (ErrConflict).
func (h *Handler) retrying(ctx context.Context, try func(attempt int) (conflicted bool, err error)) error {
	start := time.Now()
	for attempt := 0; ; attempt++ {
		conflicted, err := try(attempt)
		if !conflicted {
			return err
		}
		if attempt >= h.retries && time.Since(start) >= h.conflictBudget {
			return fmt.Errorf("%w: %v", ErrConflict, err)
		}
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

// appended classifies an append's error for retrying: a conflict is to be
// decided again, anything else is final.
func appended(err error) (conflicted bool, _ error) {
	return err != nil && fault.Is(err, fault.Conflict), err
}

// backoff waits a little, longer after each attempt, with jitter from the
// clock so that colliding writers spread out.
func backoff(ctx context.Context, attempt int) error {
	a := min(attempt, 7) // at most ~50 ms + jitter: the budget, not the backoff, ends the retries
	d := time.Duration(1+a*a) * time.Millisecond
	d += time.Duration(time.Now().UnixNano()%int64(time.Millisecond)) * time.Duration(a+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
