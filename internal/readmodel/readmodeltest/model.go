package readmodeltest

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"crm/internal/customer"
	"crm/internal/dedupe"
	"crm/internal/events"
	"crm/internal/readmodel"
	"crm/internal/search"
)

// base is the first instant of the suite's data; nanoseconds are set on
// purpose, because documents must round-trip exactly.
var base = time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC) // the read model keeps nanoseconds

// customerID returns the id of test customer n (a UUID, as in production).
func customerID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// code returns the customer code of test customer n.
func code(n int) string { return fmt.Sprintf("C%03d", n) }

// normalize returns c as every adapter must return it: times in UTC, tags
// never nil.
func normalize(c readmodel.Customer) readmodel.Customer {
	c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
	if c.Tags == nil {
		c.Tags = []string{}
	}
	return c
}

// model is the read model as a map of documents, with the reference
// semantics of List and Search.
type model map[string]readmodel.Customer

func (m model) live() []readmodel.Customer {
	var out []readmodel.Customer
	for _, c := range m {
		if c.Live() {
			out = append(out, normalize(c))
		}
	}
	return out
}

func matchesFilters(c readmodel.Customer, q readmodel.Query) bool {
	return (q.Status == "" || c.Status == q.Status) &&
		(q.Type == "" || c.Type == q.Type) &&
		(q.CreatedBy == "" || c.CreatedBy == q.CreatedBy) &&
		(q.Tag == "" || slices.Contains(c.Tags, q.Tag))
}

// compareList orders customers as List must for sort and desc.
func compareList(sort string, desc bool) func(a, b readmodel.Customer) int {
	return func(a, b readmodel.Customer) int {
		var r int
		switch sort {
		case "", readmodel.SortCreatedAt:
			r = a.CreatedAt.Compare(b.CreatedAt)
		case readmodel.SortUpdatedAt:
			r = a.UpdatedAt.Compare(b.UpdatedAt)
		case readmodel.SortName:
			r = strings.Compare(search.Fold(a.Name), search.Fold(b.Name))
		}
		if r == 0 {
			r = cmp.Compare(search.CodeNumber(a.Code), search.CodeNumber(b.Code))
		}
		if desc {
			r = -r
		}
		return r
	}
}

// page cuts one page of q out of all, as the adapters must.
func page(all []readmodel.Customer, q readmodel.Query) readmodel.Page {
	per := q.PerPage
	p := readmodel.Page{Items: []readmodel.Customer{}, Total: int64(len(all))}
	start := (max(q.Page, 1) - 1) * per
	if start < len(all) {
		p.Items = append(p.Items, all[start:min(len(all), start+per)]...)
	}
	return p
}

// list is the reference List.
func (m model) list(q readmodel.Query) readmodel.Page {
	var all []readmodel.Customer
	for _, c := range m.live() {
		if matchesFilters(c, q) {
			all = append(all, c)
		}
	}
	if q.Deleted {
		all = nil
		for _, c := range m {
			if c.Deleted {
				all = append(all, normalize(c))
			}
		}
	}
	slices.SortFunc(all, compareList(q.Sort, q.Desc))
	return page(all, q)
}

// search is the reference Search.
func (m model) search(q readmodel.Query) (readmodel.Page, error) {
	words, err := search.ParseQuery(q.Text)
	if err != nil {
		return readmodel.Page{}, err
	}
	type hit struct {
		c     readmodel.Customer
		score int
	}
	var hits []hit
	for _, c := range m.live() {
		if !matchesFilters(c, q) {
			continue
		}
		if s := search.Score(words, search.NewDocTerms(c.Name, c.Company, c.Email, c.Code)); s > 0 {
			hits = append(hits, hit{c, s})
		}
	}
	slices.SortFunc(hits, func(a, b hit) int {
		if r := cmp.Compare(b.score, a.score); r != 0 {
			return r
		}
		if r := strings.Compare(search.Fold(a.c.Name), search.Fold(b.c.Name)); r != 0 {
			return r
		}
		return cmp.Compare(search.CodeNumber(a.c.Code), search.CodeNumber(b.c.Code))
	})
	all := make([]readmodel.Customer, len(hits))
	for i, h := range hits {
		all[i] = h.c
	}
	p := page(all, q)
	start := (max(q.Page, 1) - 1) * q.PerPage
	p.More = start+len(p.Items) < len(all)
	if bound := q.TotalBound(); p.Total > bound {
		p.Total, p.TotalAtLeast = bound, true
	}
	return p, nil
}

// Pools of random values: accents, case variants, shared prefixes and
// repeated values, so that filters, ties and prefix matches all happen.
var (
	firstNames = []string{"John", "Jon", "Joanna", "José", "Jose", "JOSÉ", "Zoë", "Ann", "Anna", "Ánna",
		"Łukasz", "Ōtani", "Bob", "Smith", "Mary-Jane", "Li"}
	lastNames = []string{"Smith", "Smithson", "Álvarez", "Müller", "O'Brien", "Lee", "Ng", "Acme", "東京"}
	companies = []string{"", "", "Acme Corporation", "Acme", "Globex", "Initech", "Müller GmbH", "東京 商事",
		"Smith & Sons"}
	domains  = []string{"example.com", "acme.io", "mail.example.org", "globex.net"}
	tagPool  = []string{"vip", "priority", "northeast", "enterprise", "Älg", "b2b"}
	users    = []string{"user-1", "user-2", "user-3"}
	statuses = []string{customer.StatusLead, customer.StatusProspect, customer.StatusActive, customer.StatusInactive}
	types    = []string{customer.TypeIndividual, customer.TypeBusiness}
	cities   = []string{"", "New York", "São Paulo", "Zürich"}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func randomName(r *rand.Rand) string { return pick(r, firstNames) + " " + pick(r, lastNames) }

func randomEmail(r *rand.Rand, name string) string {
	if r.IntN(5) == 0 {
		return ""
	}
	local := strings.Join(search.Tokens(name), ".")
	if r.IntN(3) == 0 {
		local += "+crm"
	}
	return local + "@" + pick(r, domains)
}

func randomTags(r *rand.Rand) []string {
	tags := []string{}
	for _, t := range tagPool {
		if r.IntN(3) == 0 {
			tags = append(tags, t)
		}
	}
	return tags
}

// randomTime returns one of few instants, so that sorts meet ties.
func randomTime(r *rand.Rand) time.Time {
	return base.Add(time.Duration(r.IntN(12)) * time.Minute)
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func randomCreated(r *rand.Rand, n int) *events.CustomerCreated {
	name := randomName(r)
	d := &events.CustomerCreated{
		CustomerID:   customerID(n),
		CustomerCode: code(n),
		Name:         name,
		Email:        optional(randomEmail(r, name)),
		Phone:        optional(pick(r, []string{"", "+1 555 0100", "+44 20 7946 0958"})),
		Company:      optional(pick(r, companies)),
		Type:         pick(r, types),
		Status:       pick(r, statuses),
		Notes:        optional(pick(r, []string{"", "likes tea", "multi\nline ☕"})),
		Tags:         randomTags(r),
		CreatedBy:    pick(r, users),
		CreatedAt:    randomTime(r),
		ExternalID:   optional(pick(r, []string{"", "", "SF-" + strconv.Itoa(n)})),
	}
	if city := pick(r, cities); city != "" {
		d.Address = &events.Address{Street: "1 Main St", City: city, Country: "US", PostalCode: "10001"}
	}
	return d
}

func randomChanges(r *rand.Rand) events.Changes {
	var ch events.Changes
	for ch.Empty() {
		if r.IntN(3) == 0 {
			ch.Name = events.SetTo(randomName(r))
		}
		if r.IntN(4) == 0 {
			if e := randomEmail(r, randomName(r)); e == "" {
				ch.Email = events.Cleared[string]()
			} else {
				ch.Email = events.SetTo(e)
			}
		}
		if r.IntN(4) == 0 {
			if c := pick(r, companies); c == "" {
				ch.Company = events.Cleared[string]()
			} else {
				ch.Company = events.SetTo(c)
			}
		}
		if r.IntN(4) == 0 {
			ch.Status = events.SetTo(pick(r, statuses))
		}
		if r.IntN(8) == 0 {
			if r.IntN(2) == 0 {
				ch.ExternalID = events.Cleared[string]()
			} else {
				ch.ExternalID = events.SetTo("ERP-" + strconv.Itoa(r.IntN(1000)))
			}
		}
		if r.IntN(6) == 0 {
			ch.Type = events.SetTo(pick(r, types))
		}
		if r.IntN(4) == 0 {
			ch.Tags = events.SetTo(randomTags(r))
		}
		if r.IntN(6) == 0 {
			ch.Address = events.SetTo(events.Address{City: pick(r, cities)})
		}
		if r.IntN(8) == 0 {
			ch.Notes = events.Cleared[string]()
		}
	}
	return ch
}

// randomStream returns the events of n customers created, updated and some
// deleted, interleaved as in a stream, with increasing sequences.
func randomStream(r *rand.Rand, n, updates int) []events.Event {
	var (
		out     []events.Event
		version = map[int]uint64{}
		deleted = map[int]bool{}
		created []int
		seq     uint64
	)
	emit := func(k int, data events.Payload, at time.Time) {
		seq++
		version[k]++
		out = append(out, events.Event{
			ID: fmt.Sprintf("evt-%d", seq), AggregateID: customerID(k), Time: at,
			Version: version[k], Actor: pick(r, users), Data: data, Seq: seq,
		})
	}
	next := 1
	for next <= n || updates > 0 {
		switch {
		case next <= n && (len(created) == 0 || r.IntN(2) == 0 || updates == 0):
			d := randomCreated(r, next)
			emit(next, d, d.CreatedAt)
			created = append(created, next)
			next++
		default:
			updates--
			k := pick(r, created)
			if deleted[k] {
				continue
			}
			at := randomTime(r).Add(time.Hour)
			if r.IntN(12) == 0 {
				deleted[k] = true
				emit(k, &events.CustomerDeleted{CustomerID: customerID(k), CustomerCode: code(k),
					DeletedBy: pick(r, users), DeletedAt: at}, at)
				continue
			}
			emit(k, &events.CustomerUpdated{CustomerID: customerID(k), CustomerCode: code(k),
				Changes: randomChanges(r), UpdatedBy: pick(r, users), UpdatedAt: at}, at)
		}
	}
	return out
}

// randomQuery returns a query with random filters, order and page.
func randomQuery(r *rand.Rand) readmodel.Query {
	q := readmodel.Query{
		Page:    1 + r.IntN(3),
		PerPage: pick(r, []int{1, 3, 10, 100}),
		Sort:    pick(r, append([]string{""}, readmodel.Sorts...)),
		Desc:    r.IntN(2) == 0,
	}
	if r.IntN(3) == 0 {
		q.Status = pick(r, statuses)
	}
	if r.IntN(4) == 0 {
		q.Type = pick(r, types)
	}
	if r.IntN(4) == 0 {
		q.Tag = pick(r, tagPool)
	}
	if r.IntN(5) == 0 {
		q.CreatedBy = pick(r, users)
	}
	return q
}

// randomSearchText returns a query made of prefixes of words of a random
// live customer (so it usually matches), or of random pool words.
func randomSearchText(r *rand.Rand, m model) string {
	live := m.live()
	var words []string
	if len(live) > 0 && r.IntN(4) != 0 {
		c := pick(r, live)
		d := search.NewDocTerms(c.Name, c.Company, c.Email, c.Code)
		all := append(append(append([]string{d.Code}, d.Name...), d.Company...), d.Email...)
		for range 1 + r.IntN(2) {
			w := []rune(pick(r, all))
			words = append(words, string(w[:1+r.IntN(len(w))]))
		}
	} else {
		words = append(words, randomName(r))
	}
	text := strings.Join(words, " ")
	if r.IntN(3) == 0 {
		text = strings.ToUpper(text)
	}
	return text
}

// clusters returns the reference result of Duplicates over every page:
// the live customers grouped by shared duplicate key (two or more), newest
// member first, ties by kind and key descending; members newest first, ties
// by code descending, at most readmodel.ClusterMembers.
func (m model) clusters(match string) []readmodel.Cluster {
	type group struct {
		cl     readmodel.Cluster
		all    []readmodel.Customer
		newest time.Time
	}
	groups := map[[2]string]*group{}
	for _, c := range m.live() {
		k := dedupe.Of(c.Name, c.Email, c.Phone, c.Company, c.Address.Country)
		for _, kind := range dedupe.Matches {
			v := k.Get(kind)
			if v == "" || (match != "" && kind != match) {
				continue
			}
			g := groups[[2]string{kind, v}]
			if g == nil {
				g = &group{cl: readmodel.Cluster{Match: kind, Key: v}}
				groups[[2]string{kind, v}] = g
			}
			g.all = append(g.all, c)
		}
	}
	var out []*group
	for _, g := range groups {
		if len(g.all) < 2 {
			continue
		}
		slices.SortFunc(g.all, newestFirst)
		g.newest = g.all[0].CreatedAt
		g.cl.Size = int64(len(g.all))
		g.cl.Customers = g.all[:min(len(g.all), readmodel.ClusterMembers)]
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *group) int {
		return cmp.Or(b.newest.Compare(a.newest), cmp.Compare(b.cl.Match, a.cl.Match), cmp.Compare(b.cl.Key, a.cl.Key))
	})
	cls := make([]readmodel.Cluster, len(out))
	for i, g := range out {
		cls[i] = g.cl
	}
	return cls
}

// possibleDuplicates returns the reference result of PossibleDuplicates.
func (m model) possibleDuplicates(id string, keys dedupe.Keys, limit int) []readmodel.Duplicate {
	var out []readmodel.Duplicate
	live := m.live()
	slices.SortFunc(live, newestFirst)
	for _, kind := range dedupe.Matches {
		v, n := keys.Get(kind), 0
		for _, c := range live {
			if v != "" && c.ID != id && n < limit && dedupe.Of(c.Name, c.Email, c.Phone, c.Company, c.Address.Country).Get(kind) == v {
				out = append(out, readmodel.Duplicate{CustomerID: c.ID, Match: kind})
				n++
			}
		}
	}
	return out
}

func newestFirst(a, b readmodel.Customer) int {
	return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(search.CodeNumber(b.Code), search.CodeNumber(a.Code)))
}
