package commands

import (
	"context"
	"strconv"
	"strings"

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

// linkFanOut adds to evs the other half of every link event among them
// that lacks one: for a customer's link begun (a merge copying an absorbed
// customer's link) or ended (its deletion, an unmerge), the contact's
// event; for a contact's link ended (its deletion), the customer's. It
// loads each other party; one that gets an event has its last sequence in
// expected, so a concurrent change of it fails the append and the command
// is decided again; a party whose half is already so (linked, or no
// longer linked) gets none. claims is the number of claims that go into
// the same append: a batch that would exceed the event store's limit is
// refused before anything is loaded. causes[i] is the index in evs of the
// event that extra event i answers.
func (h *Handler) linkFanOut(ctx context.Context, r Request, evs []events.Event, expected map[string]uint64, claims int) (all []events.Event, causes []int, err error) {
	type pair struct{ customer, contact string }
	contactHalf, customerHalf := map[pair]bool{}, map[pair]bool{}
	for _, ev := range evs {
		switch d := ev.Data.(type) {
		case *events.ContactLinked:
			contactHalf[pair{d.CustomerID, d.ContactID}] = true
		case *events.ContactUnlinked:
			contactHalf[pair{d.CustomerID, d.ContactID}] = true
		case *events.CustomerContactLinked:
			customerHalf[pair{d.CustomerID, d.ContactID}] = true
		case *events.CustomerContactUnlinked:
			customerHalf[pair{d.CustomerID, d.ContactID}] = true
		}
	}
	extra := 0
	for _, ev := range evs {
		switch d := ev.Data.(type) {
		case *events.CustomerContactLinked:
			if !contactHalf[pair{d.CustomerID, d.ContactID}] {
				extra++
			}
		case *events.CustomerContactUnlinked:
			if !contactHalf[pair{d.CustomerID, d.ContactID}] {
				extra++
			}
		case *events.ContactUnlinked:
			if !customerHalf[pair{d.CustomerID, d.ContactID}] {
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
	contactLast := map[string]uint64{}
	customers := map[string]customer.Customer{}
	customerLast := map[string]uint64{}
	loadContact := func(id string) (contact.Contact, error) {
		if k, ok := contacts[id]; ok {
			return k, nil
		}
		kevs, last, err := h.store.LoadAggregate(ctx, events.Contacts, id)
		if err != nil {
			return contact.Contact{}, err
		}
		contacts[id], contactLast[id] = contact.Fold(kevs), last
		return contacts[id], nil
	}
	all = evs
	var gone []string // contacts a link was to begin with, deleted meanwhile
	for i, ev := range evs {
		m.Now = ev.Time // the other half happens with its cause
		var e events.Event
		switch d := ev.Data.(type) {
		case *events.CustomerContactLinked:
			if contactHalf[pair{d.CustomerID, d.ContactID}] {
				continue // a new link: its command records both halves
			}
			k, err := loadContact(d.ContactID)
			if err != nil {
				return nil, nil, err
			}
			if _, linked := k.Customers[d.CustomerID]; linked {
				continue // a change of the link's attributes: the customer's alone
			}
			if !k.Exists() || len(k.Customers) >= customer.MaxLinks {
				gone = append(gone, d.ContactID) // deleted, or full, since the decision
				continue
			}
			e = events.Event{ID: h.newID(), Source: m.Source, AggregateID: k.ID, Time: m.Now.UTC(), Version: k.Version + 1,
				Actor: m.Actor, CorrelationID: m.CorrelationID, CausationID: m.CausationID,
				Data: &events.ContactLinked{ContactID: k.ID, CustomerID: d.CustomerID, CustomerCode: d.CustomerCode, Link: d.Link,
					LinkedBy: d.LinkedBy, LinkedAt: d.LinkedAt}}
			contacts[k.ID] = contact.Evolve(k, e)
			expected[k.ID] = contactLast[k.ID]
		case *events.CustomerContactUnlinked:
			if contactHalf[pair{d.CustomerID, d.ContactID}] {
				continue
			}
			k, err := loadContact(d.ContactID)
			if err != nil {
				return nil, nil, err
			}
			if _, linked := k.Customers[d.CustomerID]; !linked || !k.Exists() {
				continue
			}
			e = contact.ContactUnlinked(k, d.CustomerID, d.CustomerCode, d.Reason, m, h.newID(), k.Version+1)
			contacts[k.ID] = contact.Evolve(k, e)
			expected[k.ID] = contactLast[k.ID]
		case *events.ContactUnlinked:
			if customerHalf[pair{d.CustomerID, d.ContactID}] {
				continue
			}
			cu, ok := customers[d.CustomerID]
			if !ok {
				cevs, last, err := h.store.Load(ctx, d.CustomerID)
				if err != nil {
					return nil, nil, err
				}
				cu, customerLast[d.CustomerID] = customer.Fold(cevs), last
			}
			if _, linked := cu.Contacts[d.ContactID]; !linked {
				customers[d.CustomerID] = cu
				continue
			}
			e = contact.CustomerUnlinked(cu, d.ContactID, d.Reason, m, h.newID(), cu.Version+1)
			customers[d.CustomerID] = customer.Evolve(cu, e)
			expected[d.CustomerID] = customerLast[d.CustomerID]
		default:
			continue
		}
		all, causes = append(all, e), append(causes, i)
	}
	if len(gone) > 0 {
		return nil, nil, &contactsGone{ids: gone}
	}
	return all, causes, nil
}

// errContactsGone (fault.Conflict): a link was to begin with a contact
// deleted since the decision, or linked to customer.MaxLinks customers (a
// restore decides again without it; a merge fails).
var errContactsGone = fault.New(fault.Conflict, "a contact to link was deleted meanwhile, or has "+
	strconv.Itoa(customer.MaxLinks)+" linked customers: unlink some, or check it and retry")

// contactsGone is errContactsGone naming the contacts.
type contactsGone struct{ ids []string }

func (e *contactsGone) Error() string {
	return errContactsGone.Error() + ": " + strings.Join(e.ids, ", ")
}
func (e *contactsGone) Unwrap() error { return errContactsGone }
