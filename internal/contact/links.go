package contact

import (
	"maps"
	"slices"
	"strconv"
	"time"

	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
)

// MaxRole is the longest role of a link, in characters.
const MaxRole = 100

// DateLayout is the form of a link's from and to dates.
const DateLayout = "2006-01-02"

// Errors of the link decisions.
var (
	// ErrNotLinked: the contact is not linked to the customer.
	ErrNotLinked = fault.New(fault.NotFound, "the contact is not linked to the customer")
	// ErrTooManyLinks: the customer or the contact has customer.MaxLinks
	// links already.
	ErrTooManyLinks = fault.New(fault.Conflict, "a customer may have at most "+strconv.Itoa(customer.MaxLinks)+
		" contacts, and a contact at most "+strconv.Itoa(customer.MaxLinks)+" customers")
)

// LinkInput is the body of a link (PUT): it replaces the link's
// attributes as a whole; an absent or null field is unset (Primary false).
type LinkInput struct {
	Role     Field[string]
	Primary  bool
	From, To Field[string]
}

// normalizeLink validates a link input and returns its attributes.
func normalizeLink(in LinkInput) (customer.Link, error) {
	var c customer.Checker
	c.Text("role", &in.Role, MaxRole, false, false)
	date := func(name string, f *Field[string]) string {
		if !c.Text(name, f, 10, false, false) {
			return ""
		}
		if _, err := time.Parse(DateLayout, f.Value); err != nil {
			c.Fail(name, "must be a date YYYY-MM-DD")
			return ""
		}
		return f.Value
	}
	l := customer.Link{Primary: in.Primary, From: date("from", &in.From), To: date("to", &in.To)}
	if in.Role.Set && !in.Role.Null {
		l.Role = in.Role.Value
	}
	if l.From != "" && l.To != "" && l.To < l.From {
		c.Fail("to", "must not be before from")
	}
	return l, c.Err()
}

// ValidateLink checks a link input and returns a fault.Invalid error
// listing every invalid field, or nil.
func ValidateLink(in LinkInput) error {
	_, err := normalizeLink(in)
	return err
}

// LinkDecision is what linking a contact to a customer records.
type LinkDecision struct {
	// Events are the customer's events (the link, and the previous
	// primary contact's link made not primary), then the contact's (when
	// the link is new); none when the link already says this.
	Events []events.Event
	// Link is the link as it now is; Created says it is new.
	Link    customer.Link
	Created bool
}

// liveCustomer returns why cu cannot take a link, if it cannot.
func liveCustomer(cu customer.Customer) error {
	switch {
	case cu.MergedInto != "":
		return customer.MovedTo(cu.MergedInto)
	case !cu.Exists():
		return customer.ErrNotFound
	}
	return nil
}

// DecideLink links contact k to customer cu with the attributes of in, or
// changes the attributes of their link: both must be live. A primary link
// makes the customer's other primary link not primary. Errors: a
// fault.Invalid error, customer.ErrNotFound (or fault.Moved for a merged
// customer), ErrNotFound, ErrTooManyLinks.
func DecideLink(cu customer.Customer, k Contact, in LinkInput, m customer.Meta) (LinkDecision, error) {
	l, err := normalizeLink(in)
	if err != nil {
		return LinkDecision{}, err
	}
	if err := liveCustomer(cu); err != nil {
		return LinkDecision{}, err
	}
	if !k.Exists() {
		return LinkDecision{}, ErrNotFound
	}
	old, linked := cu.Contacts[k.ID]
	if linked && old.SameAttributes(l) {
		return LinkDecision{Link: old}, nil
	}
	if !linked && (len(cu.Contacts) >= customer.MaxLinks || len(k.Customers) >= customer.MaxLinks) {
		return LinkDecision{}, ErrTooManyLinks
	}
	l.LinkedBy, l.LinkedAt = m.Actor, m.Now.UTC()
	next := customer.EventIDs(m)
	base := events.Event{Source: m.Source, Time: l.LinkedAt, Actor: m.Actor, CorrelationID: m.CorrelationID, CausationID: m.CausationID}
	var out []events.Event
	customerEvent := func(kid string, link customer.Link) {
		e := base
		e.ID, e.AggregateID, e.Version = next(), cu.ID, cu.Version+uint64(len(out))+1
		e.Data = &events.CustomerContactLinked{CustomerID: cu.ID, CustomerCode: cu.Code, ContactID: kid, Link: link.Attributes(),
			LinkedBy: link.LinkedBy, LinkedAt: link.LinkedAt}
		out = append(out, e)
	}
	customerEvent(k.ID, l)
	if l.Primary {
		for _, kid := range slices.Sorted(maps.Keys(cu.Contacts)) {
			if p := cu.Contacts[kid]; kid != k.ID && p.Primary {
				p.Primary, p.LinkedBy, p.LinkedAt = false, l.LinkedBy, l.LinkedAt
				customerEvent(kid, p)
			}
		}
	}
	if !linked {
		e := base
		e.ID, e.AggregateID, e.Version = next(), k.ID, k.Version+1
		e.Data = &events.ContactLinked{ContactID: k.ID, CustomerID: cu.ID, CustomerCode: cu.Code, Link: l.Attributes(),
			LinkedBy: l.LinkedBy, LinkedAt: l.LinkedAt}
		out = append(out, e)
	}
	return LinkDecision{Events: out, Link: l, Created: !linked}, nil
}

// DecideUnlink ends the link of contact k to customer cu: an event on
// each. Errors: customer.ErrNotFound (fault.Moved for a merged customer),
// ErrNotLinked.
func DecideUnlink(cu customer.Customer, k Contact, m customer.Meta) ([]events.Event, error) {
	if err := liveCustomer(cu); err != nil {
		return nil, err
	}
	if _, linked := cu.Contacts[k.ID]; !linked || !k.Exists() {
		return nil, ErrNotLinked
	}
	next := customer.EventIDs(m)
	return []events.Event{
		CustomerUnlinked(cu, k.ID, events.UnlinkRemoved, m, next(), cu.Version+1),
		ContactUnlinked(k, cu.ID, cu.Code, events.UnlinkRemoved, m, next(), k.Version+1),
	}, nil
}

// CustomerUnlinked returns the customer's event of its link to contactID
// ending for reason, at version.
func CustomerUnlinked(cu customer.Customer, contactID, reason string, m customer.Meta, id string, version uint64) events.Event {
	return events.Event{ID: id, Source: m.Source, AggregateID: cu.ID, Time: m.Now.UTC(), Version: version, Actor: m.Actor,
		CorrelationID: m.CorrelationID, CausationID: m.CausationID,
		Data: &events.CustomerContactUnlinked{CustomerID: cu.ID, CustomerCode: cu.Code, ContactID: contactID, Reason: reason,
			UnlinkedBy: m.Actor, UnlinkedAt: m.Now.UTC()}}
}

// ContactUnlinked returns the contact's event of its link to a customer
// ending for reason, at version.
func ContactUnlinked(k Contact, customerID, customerCode, reason string, m customer.Meta, id string, version uint64) events.Event {
	return events.Event{ID: id, Source: m.Source, AggregateID: k.ID, Time: m.Now.UTC(), Version: version, Actor: m.Actor,
		CorrelationID: m.CorrelationID, CausationID: m.CausationID,
		Data: &events.ContactUnlinked{ContactID: k.ID, CustomerID: customerID, CustomerCode: customerCode, Reason: reason,
			UnlinkedBy: m.Actor, UnlinkedAt: m.Now.UTC()}}
}

// LinkedCustomers returns the ids of the customers k is linked to, sorted.
func (c Contact) LinkedCustomers() []string {
	return slices.Sorted(maps.Keys(c.Customers))
}
