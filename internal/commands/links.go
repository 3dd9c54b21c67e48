package commands

import (
	"context"

	"crm/internal/auth"
	"crm/internal/contact"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

// LinkResult is the outcome of linking a contact to a customer.
type LinkResult struct {
	Link     customer.Link
	Customer customer.Customer // after the command
	Contact  contact.Contact   // after the command
	Created  bool              // the link is new
	// Seq is the stream sequence of the last appended event; 0 when the
	// link already said this and nothing was appended.
	Seq uint64
}

// LinkContact links contact contactID to customer customerID with the
// attributes of in, or changes their link (PUT semantics: in replaces the
// attributes). The link is recorded on both, in one atomic batch expecting
// both last sequences, so a customer or contact deleted meanwhile makes it
// fail (and it is decided again). Requires crm.edit.
func (h *Handler) LinkContact(ctx context.Context, r Request, customerID, contactID string, in contact.LinkInput) (LinkResult, error) {
	if err := r.Principal.Require(auth.PermEdit); err != nil {
		return LinkResult{}, err
	}
	if err := contact.ValidateLink(in); err != nil {
		return LinkResult{}, err
	}
	var res LinkResult
	err := h.executeLink(ctx, customerID, contactID, func(cu customer.Customer, k contact.Contact) ([]events.Event, error) {
		d, err := contact.DecideLink(cu, k, in, h.meta(r))
		res = LinkResult{Link: d.Link, Created: d.Created, Customer: cu, Contact: k}
		return d.Events, err
	}, &res)
	return res, err
}

// UnlinkContact ends the link of contact contactID to customer customerID
// (an event on each, in one atomic batch). A contact not linked to the
// customer is contact.ErrNotLinked. Requires crm.edit.
func (h *Handler) UnlinkContact(ctx context.Context, r Request, customerID, contactID string) (LinkResult, error) {
	if err := r.Principal.Require(auth.PermEdit); err != nil {
		return LinkResult{}, err
	}
	var res LinkResult
	err := h.executeLink(ctx, customerID, contactID, func(cu customer.Customer, k contact.Contact) ([]events.Event, error) {
		res = LinkResult{Customer: cu, Contact: k}
		return contact.DecideUnlink(cu, k, h.meta(r))
	}, &res)
	return res, err
}

// executeLink loads the customer and the contact, decides, and appends the
// events of both in one batch, deciding again after a concurrent change of
// either.
func (h *Handler) executeLink(ctx context.Context, customerID, contactID string,
	decide func(customer.Customer, contact.Contact) ([]events.Event, error), res *LinkResult) error {
	unlock, err := h.locks.lockAll(ctx, customerID, contactID)
	if err != nil {
		return fault.Wrap(fault.Unavailable, "the request ended while waiting for earlier changes", err)
	}
	defer unlock()
	return h.retrying(ctx, func(int) (bool, error) {
		cevs, clast, err := h.store.Load(ctx, customerID)
		if err != nil {
			return false, err
		}
		kevs, klast, err := h.store.LoadAggregate(ctx, events.Contacts, contactID)
		if err != nil {
			return false, err
		}
		decided, err := decide(customer.Fold(cevs), contact.Fold(kevs))
		if err != nil || len(decided) == 0 {
			return false, err
		}
		seqs, err := h.store.Append(ctx, decided, map[string]uint64{customerID: clast, contactID: klast})
		if err != nil {
			return appended(err)
		}
		for i, e := range decided {
			e.Seq = seqs[i]
			switch e.Data.Aggregate() {
			case events.Customers:
				res.Customer = customer.Evolve(res.Customer, e)
			case events.Contacts:
				res.Contact = contact.Evolve(res.Contact, e)
			}
		}
		res.Seq = seqs[len(seqs)-1]
		return false, nil
	})
}

// maxBatchEvents is the most messages (events and claims) one atomic
// append holds: the event store's limit (eventstore.MaxBatch, which this
// package does not import).
const maxBatchEvents = 1000

// errBatchTooLarge: a command whose events (with the links it ends) do not
// fit in one atomic append.
var errBatchTooLarge = fault.New(fault.Unprocessable, "the change would record more than 1,000 events at once "+
	"(deleting customers or contacts also ends their links): split it")

// linkFanOut adds to evs the other half of every link a deletion among
// them ends: for a customer's link ended because the customer was
// deleted, the contact's event; for a contact's link ended because the
// contact was deleted, the customer's. It loads each other party (their
// last sequences go into expected, so a concurrent change of one of them
// fails the append and the command is decided again); a party no longer
// linked (its half already ended) gets no event. claims is the number of
// claims that go into the same append: a batch that would exceed the
// event store's limit is refused before anything is loaded. causes[i] is
// the index in evs of the event that extra event i answers.
func (h *Handler) linkFanOut(ctx context.Context, r Request, evs []events.Event, expected map[string]uint64, claims int) (all []events.Event, causes []int, err error) {
	extra := 0
	for _, ev := range evs {
		switch d := ev.Data.(type) {
		case *events.CustomerContactUnlinked:
			if d.Reason == events.UnlinkCustomerDeleted {
				extra++
			}
		case *events.ContactUnlinked:
			if d.Reason == events.UnlinkContactDeleted {
				extra++
			}
		}
	}
	if extra == 0 {
		return evs, nil, nil
	}
	if len(evs)+extra+claims > maxBatchEvents {
		return nil, nil, errBatchTooLarge
	}
	m := h.meta(r)
	contacts := map[string]contact.Contact{}
	customers := map[string]customer.Customer{}
	all = evs
	for i, ev := range evs {
		m.Now = ev.Time // the other half happens with the deletion
		switch d := ev.Data.(type) {
		case *events.CustomerContactUnlinked:
			if d.Reason != events.UnlinkCustomerDeleted {
				continue
			}
			k, ok := contacts[d.ContactID]
			if !ok {
				kevs, last, err := h.store.LoadAggregate(ctx, events.Contacts, d.ContactID)
				if err != nil {
					return nil, nil, err
				}
				k, expected[d.ContactID] = contact.Fold(kevs), last
			}
			if _, linked := k.Customers[d.CustomerID]; !linked || !k.Exists() {
				continue
			}
			e := contact.ContactUnlinked(k, d.CustomerID, d.CustomerCode, events.UnlinkCustomerDeleted, m, h.newID(), k.Version+1)
			contacts[d.ContactID] = contact.Evolve(k, e)
			all, causes = append(all, e), append(causes, i)
		case *events.ContactUnlinked:
			if d.Reason != events.UnlinkContactDeleted {
				continue
			}
			cu, ok := customers[d.CustomerID]
			if !ok {
				cevs, last, err := h.store.Load(ctx, d.CustomerID)
				if err != nil {
					return nil, nil, err
				}
				cu, expected[d.CustomerID] = customer.Fold(cevs), last
			}
			if _, linked := cu.Contacts[d.ContactID]; !linked {
				continue
			}
			e := contact.CustomerUnlinked(cu, d.ContactID, events.UnlinkContactDeleted, m, h.newID(), cu.Version+1)
			customers[d.CustomerID] = customer.Evolve(cu, e)
			all, causes = append(all, e), append(causes, i)
		}
	}
	return all, causes, nil
}
