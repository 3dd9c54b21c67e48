package main

import (
	"context"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"crm/internal/activity"
	"crm/internal/contact"
	"crm/internal/customer"
	"crm/internal/readmodel"
)

// otherCounts are what verify compared besides the customers.
type otherCounts struct {
	links, contacts, liveContacts, activities, liveActivities int
}

// compareOthers checks one part's fold of the other documents against the
// read model: each live customer's links (links: customer → contact →
// link, the customers' fold) against its link documents, and each folded
// contact and activity against its document (tombstones included; one
// changed after the fold is counted in newer, not compared).
func compareOthers(ctx context.Context, store readmodel.Store, links map[string]map[string]customer.Link,
	contacts map[string]contact.Contact, activities map[string]activity.Activity, last uint64, n *otherCounts) (comparison, error) {
	var res comparison
	for _, id := range slices.Sorted(maps.Keys(links)) {
		want := links[id]
		got, err := store.CustomerContacts(ctx, id)
		if err != nil {
			return res, err
		}
		n.links += len(want)
		have := map[string]readmodel.Link{}
		for _, l := range got {
			have[l.Link.ContactID] = l.Link
		}
		for _, kid := range slices.Sorted(maps.Keys(have)) {
			if _, ok := want[kid]; !ok && have[kid].Seq <= last {
				res.diffs = append(res.diffs, diff{id, "", "contacts." + kid, "linked", nil, "customer"})
			}
		}
		for _, kid := range slices.Sorted(maps.Keys(want)) {
			g, ok := have[kid]
			switch {
			case !ok:
				res.diffs = append(res.diffs, diff{id, "", "contacts." + kid, nil, "linked", "customer"})
			case g.Seq > last:
				res.newer++
			default:
				w := want[kid]
				w.MergedFrom = "" // the command side's note of a merge's copy: not in the read model
				gl := customer.Link{Role: g.Role, Primary: g.Primary, From: g.From, To: g.To, LinkedBy: g.LinkedBy, LinkedAt: g.LinkedAt}
				res.diffs = append(res.diffs, fieldDiffs("customer", id, "contacts."+kid+".", gl, w)...)
			}
		}
	}
	// (A link document of a customer without links in the fold is not
	// looked for: that would be a query per customer.)
	for _, ids := range batches(slices.Sorted(maps.Keys(contacts)), 500) {
		docs, err := store.LoadContacts(ctx, ids)
		if err != nil {
			return res, err
		}
		for _, id := range ids {
			want := readmodel.FromContact(contacts[id])
			n.contacts++
			if !want.Deleted {
				n.liveContacts++
			}
			res = compareDoc(res, "contact", id, docs[id], want, last, func(d readmodel.Contact) (uint64, bool) { return d.Seq, d.Deleted })
		}
	}
	for _, ids := range batches(slices.Sorted(maps.Keys(activities)), 500) {
		docs, err := store.LoadActivities(ctx, ids)
		if err != nil {
			return res, err
		}
		for _, id := range ids {
			want := readmodel.FromActivity(activities[id])
			n.activities++
			if !want.Deleted {
				n.liveActivities++
			}
			res = compareDoc(res, "activity", id, docs[id], want, last, func(d readmodel.Activity) (uint64, bool) { return d.Seq, d.Deleted })
		}
	}
	return res, nil
}

// compareDoc compares one stored document (absent: the zero D) with the
// fold's.
func compareDoc[D any](res comparison, kind, id string, got, want D, last uint64, meta func(D) (uint64, bool)) comparison {
	seq, _ := meta(got)
	switch {
	case seq == 0:
		res.diffs = append(res.diffs, diff{id, "", "document", nil, "present", kind})
	case seq > last:
		res.newer++
	default:
		res.diffs = append(res.diffs, fieldDiffs(kind, id, "", got, want)...)
	}
	return res
}

// extraContacts lists the live contacts of the read model (every page,
// by name) and reports those the fold has no live contact for.
func extraContacts(ctx context.Context, store readmodel.Store, live map[string]bool, last uint64) (comparison, error) {
	var res comparison
	q := readmodel.ContactQuery{PerPage: readmodel.MaxPerPage}
	for {
		p, err := store.ListContacts(ctx, q)
		if err != nil {
			return res, err
		}
		for _, k := range p.Items {
			if !live[k.ID] && k.Seq <= last {
				res.diffs = append(res.diffs, diff{k.ID, "", "document", "present", "absent", "contact"})
			}
		}
		if !p.More || len(p.Items) == 0 {
			return res, nil
		}
		pos := readmodel.ContactPositionOf(p.Items[len(p.Items)-1], readmodel.SortName)
		q.After = &pos
	}
}

// fieldDiffs compares two structs of one type field by field (times by
// instant, an empty list as none) and names each differing field.
func fieldDiffs(kind, id, prefix string, got, want any) []diff {
	var out []diff
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range g.NumField() {
		f := g.Type().Field(i)
		a, b := g.Field(i).Interface(), w.Field(i).Interface()
		same := reflect.DeepEqual(a, b)
		switch x := a.(type) {
		case time.Time:
			same = x.Equal(b.(time.Time))
		case []string:
			same = slices.Equal(x, b.([]string))
		}
		if !same {
			out = append(out, diff{id, "", prefix + fieldName(f.Name), a, b, kind})
		}
	}
	return out
}

// batches splits ids into runs of at most n.
func batches(ids []string, n int) [][]string {
	var out [][]string
	for len(ids) > 0 {
		k := min(n, len(ids))
		out = append(out, ids[:k])
		ids = ids[k:]
	}
	return out
}

// fieldName is a Go field's name as the API spells it: Title → title,
// ID → id, CustomerID → customerId.
func fieldName(n string) string {
	n = strings.Replace(n, "ID", "Id", 1)
	return strings.ToLower(n[:1]) + n[1:]
}
