package commands

import (
	"context"

	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

// ClaimExternalID is the claim kind of external ids (events.ClaimSubject).
const ClaimExternalID = "externalId"

// ErrExternalIDTaken (fault.Conflict): the external id is another
// customer's; nothing was written. The error of a command carries the
// holder in its field message.
var ErrExternalIDTaken = fault.New(fault.Conflict, "the externalId is taken by another customer")

// externalIDClaims returns the claim a command's events need when they
// give customer id (before → after) an external id it did not hold: a
// create or update that sets one, a restore or unmerge that brings one
// back. The claim's holder is checked first: a holder that still has the
// external id (live, or merged into another customer, whose old id still
// answers) makes it ErrExternalIDTaken; one that no longer has it (changed,
// cleared, deleted) is taken over. The append then expects the claim
// subject where it was read, so a concurrent claim fails the batch and the
// command is decided again.
func (h *Handler) externalIDClaims(ctx context.Context, id string, before, after customer.Customer) ([]events.Claim, error) {
	x := after.ExternalID
	if x == "" || !after.Exists() || (before.Exists() && before.ExternalID == x) {
		return nil, nil
	}
	subject := events.ClaimSubject(ClaimExternalID, x)
	holder, seq, err := h.store.LoadClaim(ctx, subject)
	if err != nil {
		return nil, err
	}
	if holder != "" && holder != id {
		evs, _, err := h.store.Load(ctx, holder)
		if err != nil {
			return nil, err
		}
		if st := customer.Fold(evs); st.ExternalID == x && (st.Exists() || st.MergedInto != "") {
			return nil, externalIDTaken(holder)
		}
	}
	if holder == id {
		// Ours already (set again after a clear, or brought back): the
		// claim still names this customer, nothing to write.
		return nil, nil
	}
	return []events.Claim{{Subject: subject, CustomerID: id, ExpectedSeq: seq}}, nil
}

func externalIDTaken(holder string) error {
	return &fault.Error{Kind: fault.Conflict, Message: ErrExternalIDTaken.Message,
		Fields: []fault.FieldError{{Field: "externalId", Message: "is taken by customer " + holder}}, Err: ErrExternalIDTaken}
}

// withClaims returns claims followed by those of more whose subjects are
// not among them yet.
func withClaims(claims []events.Claim, more ...events.Claim) []events.Claim {
	for _, c := range more {
		dup := false
		for _, have := range claims {
			dup = dup || have.Subject == c.Subject
		}
		if !dup {
			claims = append(claims, c)
		}
	}
	return claims
}
