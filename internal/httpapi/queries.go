package httpapi

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"crm/internal/audit"
	"crm/internal/auth"
	"crm/internal/customer"
	"crm/internal/fault"
	"crm/internal/readmodel"
	searchq "crm/internal/search"
)

const (
	maxPage        = 1_000_000
	maxQueryLength = 200
)

type pageMeta struct {
	Total      int64 `json:"total"`
	Page       int   `json:"page,omitempty"` // absent when paging by cursor
	PerPage    int   `json:"perPage"`
	TotalPages int64 `json:"totalPages"`
	// TotalRelation (list and search) says what total is: "eq", the
	// number of matches, or "gte", a lower bound (a search with more
	// matches than it counts exactly).
	TotalRelation string `json:"totalRelation,omitempty"`
	// Next (list and search): the cursor of the next page (?after=),
	// absent on the last page.
	Next string `json:"next,omitempty"`
}

type listResponse struct {
	Data []customerJSON `json:"data"`
	Meta pageMeta       `json:"meta"`
}

var errNoReadModel = readmodel.ErrUnavailable

// parseQuery reads the paging, filter and sort parameters strictly: unknown
// or repeated parameters and out-of-range values are 400s naming them.
func parseQuery(values url.Values, search bool) (readmodel.Query, error) {
	q := readmodel.Query{Page: 1, PerPage: readmodel.DefaultPerPage, Sort: readmodel.SortCreatedAt, Desc: true}
	var errs []fault.FieldError
	fail := func(f, m string) { errs = append(errs, fault.FieldError{Field: f, Message: m}) }
	for key, vs := range values {
		if len(vs) != 1 {
			fail(key, "must be given once")
			continue
		}
		v := vs[0]
		switch key {
		case "page":
			n, err := number(v)
			if err != nil || n < 1 || n > maxPage {
				fail(key, "must be an integer from 1 to "+strconv.Itoa(maxPage))
				continue
			}
			q.Page = n
		case "perPage":
			n, err := number(v)
			if err != nil || n < 1 || n > readmodel.MaxPerPage {
				fail(key, "must be an integer from 1 to "+strconv.Itoa(readmodel.MaxPerPage))
				continue
			}
			q.PerPage = n
		case "status":
			switch v {
			case customer.StatusLead, customer.StatusProspect, customer.StatusActive, customer.StatusInactive:
				q.Status = v
			default:
				fail(key, "must be one of lead, prospect, active, inactive")
			}
		case "type":
			switch v {
			case customer.TypeIndividual, customer.TypeBusiness:
				q.Type = v
			default:
				fail(key, "must be one of individual, business")
			}
		case "tag":
			t := strings.TrimSpace(v)
			if t == "" || !utf8.ValidString(t) || utf8.RuneCountInString(t) > customer.MaxTagLength {
				fail(key, "must be 1 to 50 characters")
				continue
			}
			q.Tag = t
		case "createdBy":
			if v == "" || len(v) > 200 || !utf8.ValidString(v) {
				fail(key, "must be 1 to 200 characters")
				continue
			}
			q.CreatedBy = v
		case "sort":
			if search {
				fail(key, "is not supported by search (results are ranked by relevance)")
				continue
			}
			field, desc := strings.CutPrefix(v, "-")
			if !slices.Contains(readmodel.Sorts, field) {
				fail(key, "must be one of "+strings.Join(readmodel.Sorts, ", ")+", optionally prefixed with - for descending")
				continue
			}
			q.Sort, q.Desc = field, desc
		case "q":
			if !search {
				fail(key, "is only supported by /customers/search")
				continue
			}
			if strings.TrimSpace(v) == "" || utf8.RuneCountInString(v) > maxQueryLength || !utf8.ValidString(v) {
				fail(key, "must be 1 to 200 characters")
				continue
			}
			if _, err := searchq.ParseQuery(v); err != nil {
				fail(key, "must contain at least one letter or digit")
				continue
			}
			q.Text = v
		case "deleted":
			if search {
				fail(key, "is only supported by /customers (the trash lists deleted customers)")
				continue
			}
			if v != "only" {
				fail(key, "must be only (the deleted customers instead of the live ones)")
				continue
			}
			q.Deleted = true
		default:
			fail(key, "is not a known parameter")
		}
	}
	if q.Deleted {
		for _, f := range []struct{ name, v string }{{"status", q.Status}, {"type", q.Type}, {"tag", q.Tag}, {"createdBy", q.CreatedBy}} {
			if f.v != "" {
				fail(f.name, "does not apply with deleted=only (the trash takes page, perPage and sort)")
			}
		}
	}
	if search && q.Text == "" && !hasField(errs, "q") {
		fail("q", "is required")
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b fault.FieldError) int { return strings.Compare(a.Field, b.Field) })
		return q, fault.InvalidFields(errs...)
	}
	return q, nil
}

func hasField(errs []fault.FieldError, f string) bool {
	for _, e := range errs {
		if e.Field == f {
			return true
		}
	}
	return false
}

func (a *api) listCustomers(c *gin.Context)   { a.page(c, false) }
func (a *api) searchCustomers(c *gin.Context) { a.page(c, true) }

// parsePage reads a list or search query with its optional cursor
// (?after=, which replaces page).
func (a *api) parsePage(values url.Values, search bool) (readmodel.Query, error) {
	after, hasAfter := values["after"]
	if hasAfter {
		values = maps.Clone(values)
		delete(values, "after")
	}
	q, err := parseQuery(values, search)
	if search {
		q.ExactTotal = a.SearchExactTotal
	}
	if err != nil || !hasAfter {
		return q, err
	}
	switch {
	case len(after) != 1:
		return q, fault.InvalidField("after", "must be given once")
	case values.Has("page"):
		return q, fault.InvalidField("after", "cannot be combined with page: a cursor says where the page starts")
	}
	pos, why := a.decodeCursor(after[0], q, search)
	if why != "" {
		return q, fault.InvalidField("after", why)
	}
	q.After = &pos
	return q, nil
}

func (a *api) page(c *gin.Context, search bool) {
	q, err := a.parsePage(c.Request.URL.Query(), search)
	if err != nil {
		writeError(c, err)
		return
	}
	if q.Deleted { // the trash is for those who may restore
		if err := principal(c).Require(auth.PermDelete); err != nil {
			writeError(c, err)
			return
		}
	}
	if a.Reader == nil {
		writeError(c, errNoReadModel)
		return
	}
	var p readmodel.Page
	if search {
		p, err = a.Reader.Search(c.Request.Context(), q)
	} else {
		p, err = a.Reader.List(c.Request.Context(), q)
	}
	if err != nil {
		writeError(c, err)
		return
	}
	out := listResponse{Data: make([]customerJSON, 0, len(p.Items)), Meta: pageMeta{
		Total: p.Total, Page: q.Page, PerPage: q.PerPage,
		TotalPages: (p.Total + int64(q.PerPage) - 1) / int64(q.PerPage), TotalRelation: "eq",
	}}
	if p.TotalAtLeast {
		out.Meta.TotalRelation = "gte"
	}
	for _, cu := range p.Items {
		out.Data = append(out.Data, toJSON(cu))
	}
	more := p.More // always set by Search
	if q.After == nil && !search {
		_, offset, _ := q.Bounds()
		more = offset+int64(len(p.Items)) < p.Total
	}
	if q.After != nil {
		out.Meta.Page = 0
	}
	if more && len(p.Items) > 0 {
		last := p.Items[len(p.Items)-1]
		var pos readmodel.Position
		if search {
			words, _ := searchq.ParseQuery(q.Text)
			pos = readmodel.SearchPosition(last, words)
		} else {
			pos = readmodel.ListPosition(last, q.Sort)
		}
		out.Meta.Next = a.encodeCursor(q, search, pos)
	}
	c.JSON(http.StatusOK, out)
}

func (a *api) getCustomer(c *gin.Context) {
	id, err := customerID(c)
	if err != nil {
		writeError(c, err)
		return
	}
	values := c.Request.URL.Query()
	if _, ok := values["asOf"]; ok {
		a.customerAsOf(c, id, values)
		return
	}
	for key := range values {
		writeError(c, fault.InvalidField(key, "is not a known parameter"))
		return
	}
	if a.Reader == nil {
		writeError(c, errNoReadModel)
		return
	}
	cu, err := a.Reader.Get(c.Request.Context(), id)
	if err != nil {
		writeError(c, err)
		return
	}
	c.Header("ETag", etag(cu.Version))
	c.JSON(http.StatusOK, dataResponse{Data: toJSON(cu)})
}

// customerAsOf serves GET /customers/{id}?asOf=: the state folded from the
// stream up to that instant (crm.audit).
func (a *api) customerAsOf(c *gin.Context, id string, values url.Values) {
	at, err := asOfOnly(c, values)
	if err != nil {
		writeError(c, err)
		return
	}
	evs, err := a.Commands.CustomerEvents(c.Request.Context(), a.request(c), id)
	if err != nil {
		writeError(c, err)
		return
	}
	state, existed := audit.AsOf(evs, at)
	if existed && state.MergedInto != "" {
		writeError(c, customer.MovedTo(state.MergedInto))
		return
	}
	if !existed || state.Deleted {
		writeError(c, customer.ErrNotFound)
		return
	}
	c.Header("ETag", etag(state.Version))
	c.JSON(http.StatusOK, dataResponse{Data: toJSON(readmodel.FromState(state))})
}

// asOfOnly returns the instant of a query that must hold asOf and nothing
// else, once the caller is known to hold crm.audit.
func asOfOnly(c *gin.Context, values url.Values) (time.Time, error) {
	var errs []fault.FieldError
	var at time.Time
	for key, vs := range values {
		switch {
		case key != "asOf":
			errs = append(errs, fault.FieldError{Field: key, Message: "is not a known parameter"})
		case len(vs) != 1:
			errs = append(errs, fault.FieldError{Field: key, Message: "must be given once"})
		default:
			t, err := audit.ParseAsOf(vs[0])
			if err != nil {
				errs = append(errs, fault.FieldError{Field: key, Message: "must be an RFC 3339 time, e.g. 2025-01-21T10:00:00Z"})
			}
			at = t
		}
	}
	if len(errs) > 0 {
		return time.Time{}, fault.InvalidFields(errs...)
	}
	if err := principal(c).Require(auth.PermAudit); err != nil {
		return time.Time{}, err
	}
	return at, nil
}

// historyPage parses history's page and perPage (nothing else).
func historyPage(values url.Values) (readmodel.Query, error) {
	q, err := parseQuery(values, false)
	if err == nil && (q.Status != "" || q.Type != "" || q.Tag != "" || q.CreatedBy != "" || q.Deleted || values.Get("sort") != "") {
		err = fault.InvalidField("query", "history takes only page and perPage")
	}
	return q, err
}

// writeHistory answers one page of history entries.
func writeHistory(c *gin.Context, entries []audit.Entry, q readmodel.Query) {
	total := int64(len(entries))
	from := min(int64(q.Page-1)*int64(q.PerPage), total)
	to := min(from+int64(q.PerPage), total)
	c.JSON(http.StatusOK, historyResponse{Data: entries[from:to], Meta: pageMeta{
		Total: total, Page: q.Page, PerPage: q.PerPage, TotalPages: (total + int64(q.PerPage) - 1) / int64(q.PerPage),
	}})
}

type historyResponse struct {
	Data []audit.Entry `json:"data"`
	Meta pageMeta      `json:"meta"`
}

// customerHistory serves GET /customers/{id}/history: the customer's events
// from the stream, oldest first, paginated (crm.audit).
func (a *api) customerHistory(c *gin.Context) {
	id, err := customerID(c)
	if err != nil {
		writeError(c, err)
		return
	}
	q, err := historyPage(c.Request.URL.Query())
	if err != nil {
		writeError(c, err)
		return
	}
	evs, err := a.Commands.CustomerEvents(c.Request.Context(), a.request(c), id)
	if err != nil {
		writeError(c, err)
		return
	}
	writeHistory(c, audit.History(evs), q)
}

// number parses a query parameter's decimal digits: no sign, no spaces
// (strconv.Atoi would take "+1").
func number(v string) (int, error) {
	if v == "" || strings.TrimLeft(v, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.Atoi(v)
}
