package customer

import (
	"maps"
	"slices"
	"time"

	"crm/internal/events"
)

// MaxLinks is the most contacts one customer may have linked, and the
// most customers one contact may be linked to: deleting either ends every
// link in the one atomic batch of the deletion (two events per link, and a
// batch holds at most 1,000).
const MaxLinks = 200

// Link is a customer's link to one of its contacts, as the customer's
// events record it. Optional strings are "" when unset; From and To are
// dates (YYYY-MM-DD).
type Link struct {
	Role     string
	Primary  bool
	From, To string
	LinkedBy string
	LinkedAt time.Time
	// MergedFrom is the absorbed customer a merge copied the link from,
	// until the link is changed ("" for a link made here).
	MergedFrom string
}

// LinkOf returns the link an event records.
func LinkOf(d *events.CustomerContactLinked) Link {
	return Link{Role: deref(d.Role), Primary: d.Primary, From: deref(d.From), To: deref(d.To), LinkedBy: d.LinkedBy, LinkedAt: d.LinkedAt,
		MergedFrom: d.MergedFrom}
}

// Attributes returns the link's attributes as events carry them.
func (l Link) Attributes() events.Link {
	return events.Link{Role: ptr(l.Role), Primary: l.Primary, From: ptr(l.From), To: ptr(l.To)}
}

// SameAttributes reports whether two links say the same (who linked and
// when aside).
func (l Link) SameAttributes(o Link) bool {
	return l.Role == o.Role && l.Primary == o.Primary && l.From == o.From && l.To == o.To
}

// evolveLink applies a link event to the customer's links.
func evolveLink(c Customer, e events.Event) Customer {
	links := maps.Clone(c.Contacts)
	if links == nil {
		links = map[string]Link{}
	}
	switch d := e.Data.(type) {
	case *events.CustomerContactLinked:
		links[d.ContactID] = LinkOf(d)
	case *events.CustomerContactUnlinked:
		if l, ok := links[d.ContactID]; ok && d.Reason == events.UnlinkCustomerDeleted {
			ended := maps.Clone(c.EndedLinks)
			if ended == nil {
				ended = map[string]Link{}
			}
			ended[d.ContactID] = l
			c.EndedLinks = ended
		}
		delete(links, d.ContactID)
	}
	c.Contacts = links
	return c
}

// LinkedContacts returns the ids of the customer's contacts, sorted.
func (c Customer) LinkedContacts() []string {
	return slices.Sorted(maps.Keys(c.Contacts))
}

// unlinkAll returns the events that end every link of c because of
// reason, from version c.Version+1 on, each with an id from next.
func unlinkAll(c Customer, reason string, base events.Event, next func() string) []events.Event {
	var out []events.Event
	for _, kid := range c.LinkedContacts() {
		e := base
		e.ID, e.AggregateID, e.Version = next(), c.ID, c.Version+uint64(len(out))+1
		e.Data = &events.CustomerContactUnlinked{CustomerID: c.ID, CustomerCode: c.Code, ContactID: kid, Reason: reason,
			UnlinkedBy: base.Actor, UnlinkedAt: base.Time}
		out = append(out, e)
	}
	return out
}
