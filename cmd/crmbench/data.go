package main

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"crm/internal/customer"
	"crm/internal/readmodel"
)

// The data set: names from many languages (with diacritics, so the search
// index folds them), two thirds with a company, a few tags each, every
// status and type. The same generator feeds the HTTP creates and the raw
// store writes, so both limits see the same documents.

type name struct{ text, ascii string }

var (
	firstNames = []name{{"John", "john"}, {"Jane", "jane"}, {"José", "jose"}, {"María", "maria"}, {"Zoë", "zoe"},
		{"Ann", "ann"}, {"Anna", "anna"}, {"Peter", "peter"}, {"Paul", "paul"}, {"Li", "li"}, {"Wei", "wei"},
		{"Ahmed", "ahmed"}, {"Fatima", "fatima"}, {"Olga", "olga"}, {"Ivan", "ivan"}, {"Łukasz", "lukasz"},
		{"Søren", "soren"}, {"Chloé", "chloe"}, {"Mehmet", "mehmet"}, {"Aiko", "aiko"}, {"Kenji", "kenji"},
		{"Raj", "raj"}, {"Priya", "priya"}, {"Carlos", "carlos"}, {"Lucía", "lucia"}, {"Tom", "tom"},
		{"Emma", "emma"}, {"Noah", "noah"}, {"Mia", "mia"}, {"Lena", "lena"}, {"Joanna", "joanna"}, {"Jonas", "jonas"}}
	lastNames = []name{{"Smith", "smith"}, {"Johnson", "johnson"}, {"Williams", "williams"}, {"Brown", "brown"},
		{"Jones", "jones"}, {"García", "garcia"}, {"Müller", "muller"}, {"Schmidt", "schmidt"}, {"Rossi", "rossi"},
		{"Nowak", "nowak"}, {"Kowalski", "kowalski"}, {"Dubois", "dubois"}, {"Martin", "martin"}, {"Silva", "silva"},
		{"Santos", "santos"}, {"Kim", "kim"}, {"Lee", "lee"}, {"Wang", "wang"}, {"Chen", "chen"},
		{"Tanaka", "tanaka"}, {"Suzuki", "suzuki"}, {"Ivanov", "ivanov"}, {"Petrov", "petrov"},
		{"O'Brien", "obrien"}, {"Murphy", "murphy"}, {"Jensen", "jensen"}, {"Hansen", "hansen"},
		{"Öztürk", "ozturk"}, {"Yılmaz", "yilmaz"}, {"Fernández", "fernandez"}}
	companyWords = []string{"Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Wonka", "Hooli",
		"Vandelay", "Soylent", "Tyrell", "Cyberdyne", "Aperture", "Black Mesa", "Oscorp", "Dunder Mifflin"}
	companySuffixes = []string{"Corporation", "GmbH", "Ltd", "Inc", "SA", "Group", "Labs", "Holdings"}
	tagNames        = []string{"vip", "priority", "northeast", "enterprise", "smb", "churn-risk",
		"newsletter", "partner", "reseller", "trial"}
	cities    = []string{"New York", "Boston", "Berlin", "München", "Paris", "Kraków", "São Paulo", "Tokyo", "Lagos", "Istanbul"}
	statuses  = []string{customer.StatusLead, customer.StatusProspect, customer.StatusActive, customer.StatusInactive}
	types     = []string{customer.TypeIndividual, customer.TypeBusiness}
	noteTexts = []string{"Key account - handles all northeast region sales", "Met at the trade fair; follow up in Q3",
		"Prefers e-mail", "Renewal due next month", ""}
)

// person is one generated customer.
type person struct {
	Name, Email, Phone, Company, Notes string
	Street, City, Country, PostalCode  string
	Type, Status                       string
	Tags                               []string
}

// newPerson returns the n-th generated customer (n only makes the email
// unique and marks one in 5,000 with the tag "rare").
func newPerson(r *rand.Rand, n int64) person {
	f, l := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
	p := person{
		Name:    f.text + " " + l.text,
		Email:   fmt.Sprintf("%s.%s%d@example.com", f.ascii, l.ascii, n),
		Phone:   fmt.Sprintf("+1 555 %04d", r.IntN(10000)),
		Street:  fmt.Sprintf("%d Main Street", 1+r.IntN(999)),
		City:    cities[r.IntN(len(cities))],
		Country: "US", PostalCode: fmt.Sprintf("%05d", r.IntN(100000)),
		Type:   types[r.IntN(len(types))],
		Status: statuses[r.IntN(len(statuses))],
		Notes:  noteTexts[r.IntN(len(noteTexts))],
		Tags:   []string{},
	}
	if r.IntN(3) > 0 {
		p.Company = companyWords[r.IntN(len(companyWords))] + " " + companySuffixes[r.IntN(len(companySuffixes))]
	}
	for _, t := range tagNames {
		if r.IntN(6) == 0 {
			p.Tags = append(p.Tags, t)
		}
	}
	if n%5000 == 0 {
		p.Tags = append(p.Tags, "rare")
	}
	return p
}

// createBody is the JSON body of POST /customers.
func (p person) createBody() map[string]any {
	body := map[string]any{
		"name": p.Name, "email": p.Email, "phone": p.Phone, "type": p.Type, "status": p.Status, "tags": p.Tags,
		"address": map[string]string{"street": p.Street, "city": p.City, "country": p.Country, "postalCode": p.PostalCode},
	}
	if p.Company != "" {
		body["company"] = p.Company
	}
	if p.Notes != "" {
		body["notes"] = p.Notes
	}
	return body
}

// doc is the read-model document of p as the projector would store it
// after its create event at stream sequence seq.
func (p person) doc(seq uint64, createdBy string, at time.Time) readmodel.Customer {
	at = at.UTC().Truncate(time.Millisecond)
	return readmodel.Customer{
		ID: uuid.NewString(), Code: fmt.Sprintf("C%03d", seq),
		Name: p.Name, Email: p.Email, Phone: p.Phone, Company: p.Company, Notes: p.Notes,
		Address: readmodel.Address{Street: p.Street, City: p.City, Country: p.Country, PostalCode: p.PostalCode},
		Type:    p.Type, Status: p.Status, Tags: p.Tags, CreatedBy: createdBy,
		CreatedAt: at, UpdatedAt: at, Version: 1, Seq: seq,
	}
}

// patchBody is a realistic JSON merge patch: one or two fields changed.
func patchBody(r *rand.Rand) map[string]any {
	switch r.IntN(5) {
	case 0:
		return map[string]any{"status": statuses[r.IntN(len(statuses))]}
	case 1:
		return map[string]any{"notes": noteTexts[r.IntN(len(noteTexts)-1)], "status": statuses[r.IntN(len(statuses))]}
	case 2:
		return map[string]any{"tags": []string{tagNames[r.IntN(len(tagNames))], tagNames[r.IntN(len(tagNames))]}}
	case 3:
		return map[string]any{"address": map[string]any{"city": cities[r.IntN(len(cities))]}}
	default:
		f, l := firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
		return map[string]any{"name": f.text + " " + l.text}
	}
}

// query is one list or search request of the mix.
type query struct {
	label string
	q     readmodel.Query
}

// values is q as the query string of GET /customers or /customers/search.
func (q query) values(search bool) string {
	v := url.Values{}
	v.Set("page", strconv.Itoa(q.q.Page))
	v.Set("perPage", strconv.Itoa(q.q.PerPage))
	if q.q.Status != "" {
		v.Set("status", q.q.Status)
	}
	if q.q.Type != "" {
		v.Set("type", q.q.Type)
	}
	if q.q.Tag != "" {
		v.Set("tag", q.q.Tag)
	}
	if q.q.CreatedBy != "" {
		v.Set("createdBy", q.q.CreatedBy)
	}
	if search {
		v.Set("q", q.q.Text)
	} else if q.q.Sort != "" {
		s := q.q.Sort
		if q.q.Desc {
			s = "-" + s
		}
		v.Set("sort", s)
	}
	return v.Encode()
}

// listQuery returns one query of the list mix: what a customer list screen
// sends (default order, filters, sorts, a deeper page now and then).
func listQuery(r *rand.Rand, createdBy string) query {
	base := readmodel.Query{Page: 1, PerPage: 20, Sort: readmodel.SortCreatedAt, Desc: true}
	switch r.IntN(8) {
	case 0:
		return query{"default (newest first)", base}
	case 1:
		q := base
		q.Status, q.Sort, q.Desc = customer.StatusActive, readmodel.SortName, false
		return query{"status=active sort=name", q}
	case 2:
		q := base
		q.Type, q.Tag, q.Sort = customer.TypeBusiness, "vip", readmodel.SortUpdatedAt
		return query{"type=business tag=vip sort=-updatedAt", q}
	case 3:
		q := base
		q.Tag, q.Sort, q.Desc = "rare", readmodel.SortName, false
		return query{"tag=rare sort=name", q}
	case 4:
		q := base
		q.CreatedBy, q.Sort, q.Desc = createdBy, readmodel.SortCustomerCode, false
		return query{"createdBy=me sort=customerCode", q}
	case 5:
		q := base
		q.Status, q.Type, q.Page = customer.StatusLead, customer.TypeIndividual, 1+r.IntN(10)
		return query{"status=lead type=individual page 1-10", q}
	case 6:
		q := base
		q.Sort, q.Desc, q.Page = readmodel.SortName, false, 1+r.IntN(50)
		return query{"sort=name page 1-50", q}
	default:
		q := base
		q.PerPage = 100
		return query{"perPage=100", q}
	}
}

// searchQuery returns one query of the search mix: a code, a full name,
// typeahead prefixes of one or two words, a prefix with a filter, and a
// broad two-letter prefix.
func searchQuery(r *rand.Rand, codes []string) query {
	q := readmodel.Query{Page: 1, PerPage: 20}
	prefix := func(s string, n int) string {
		rs := []rune(strings.ToLower(s))
		return string(rs[:min(n, len(rs))])
	}
	switch r.IntN(6) {
	case 0:
		if len(codes) > 0 {
			q.Text = codes[r.IntN(len(codes))]
		} else {
			q.Text = fmt.Sprintf("C%d", 1+r.IntN(1000))
		}
		return query{"code", q}
	case 1:
		q.Text = firstNames[r.IntN(len(firstNames))].text + " " + lastNames[r.IntN(len(lastNames))].text
		return query{"full name", q}
	case 2:
		q.Text = prefix(companyWords[r.IntN(len(companyWords))], 3) + " " + prefix(lastNames[r.IntN(len(lastNames))].text, 3)
		return query{"two prefixes (company + name)", q}
	case 3:
		q.Text = prefix(lastNames[r.IntN(len(lastNames))].text, 3)
		return query{"one 3-letter prefix", q}
	case 4:
		q.Text, q.Status = prefix(companyWords[r.IntN(len(companyWords))], 4), customer.StatusActive
		return query{"prefix + status=active", q}
	default:
		q.Text = prefix(firstNames[r.IntN(len(firstNames))].ascii, 2)
		return query{"broad 2-letter prefix", q}
	}
}
