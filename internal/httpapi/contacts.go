package httpapi

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"crm/internal/audit"
	"crm/internal/commands"
	"crm/internal/contact"
	"crm/internal/customer"
	"crm/internal/fault"
	"crm/internal/readmodel"
	searchq "crm/internal/search"
)

// contactJSON is a contact as the REST contract shows it: unset optional
// fields are null, tags always a list.
type contactJSON struct {
	ContactID string   `json:"contactId"`
	Name      string   `json:"name"`
	Email     *string  `json:"email"`
	Phone     *string  `json:"phone"`
	Title     *string  `json:"title"`
	Notes     *string  `json:"notes"`
	Tags      []string `json:"tags"`
	CreatedBy string   `json:"createdBy"`
	CreatedAt string   `json:"createdAt"`
	UpdatedBy string   `json:"updatedBy"`
	UpdatedAt string   `json:"updatedAt"`
}

func contactToJSON(c readmodel.Contact) contactJSON {
	j := contactJSON{
		ContactID: c.ID, Name: c.Name, Email: opt(c.Email), Phone: opt(c.Phone), Title: opt(c.Title), Notes: opt(c.Notes),
		Tags: c.Tags, CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt.UTC().Format(timeFormat),
		UpdatedBy: c.UpdatedBy, UpdatedAt: c.UpdatedAt.UTC().Format(timeFormat),
	}
	if j.Tags == nil {
		j.Tags = []string{}
	}
	return j
}

type contactListResponse struct {
	Data []contactJSON `json:"data"`
	Meta pageMeta      `json:"meta"`
}

// contactReadOnly are the fields of a contact body the server sets.
var contactReadOnly = map[string]bool{"contactId": true, "createdBy": true, "createdAt": true, "updatedBy": true, "updatedAt": true}

// decodeContactInput parses a contact create or update body as strictly as
// decodeInput does a customer's.
func decodeContactInput(body []byte, create bool) (contact.Input, error) {
	var in contact.Input
	obj, err := parseObject(body)
	if err != nil {
		return in, err
	}
	var errs []fault.FieldError
	fail := func(f, m string) { errs = append(errs, fault.FieldError{Field: f, Message: m}) }
	for _, kv := range obj {
		switch kv.key {
		case "name":
			in.Name = stringField(kv, fail)
		case "email":
			in.Email = stringField(kv, fail)
		case "phone":
			in.Phone = stringField(kv, fail)
		case "title":
			in.Title = stringField(kv, fail)
		case "notes":
			in.Notes = stringField(kv, fail)
		case "tags":
			in.Tags = tagsField(kv, fail)
		default:
			if contactReadOnly[kv.key] {
				fail(kv.path, "is read-only")
			} else {
				fail(kv.path, "is not a known field")
			}
		}
	}
	if len(errs) > 0 {
		errs = append(errs, fault.Fields(contact.Validate(in, create))...)
		return in, fault.InvalidFields(errs...)
	}
	return in, nil
}

// contactID validates the :id path parameter of a contact route.
func contactID(c *gin.Context) (string, error) {
	id := c.Param("id")
	u, err := uuid.Parse(id)
	if err != nil || u.String() != strings.ToLower(id) || len(id) != 36 {
		return "", fault.InvalidField("contactId", "must be a UUID")
	}
	return u.String(), nil
}

// contactDone writes a contact command's response: its ETag, and for an
// append the stream sequence and the read-your-writes wait.
func (a *api) contactDone(c *gin.Context, status int, res commands.ContactResult, body any) {
	c.Header("ETag", etag(res.Contact.Version))
	if res.Seq > 0 {
		a.awaitSeq(c, res.Seq)
	}
	c.JSON(status, body)
}

// observeContact records a contact command's outcome as observe does.
func (a *api) observeContact(kind string, start time.Time, res commands.ContactResult, err error) {
	a.observe(kind, start, commands.Result{Seq: res.Seq, Replayed: res.Replayed}, err)
}

func (a *api) createContact(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		writeError(c, err)
		return
	}
	in, err := decodeContactInput(body, true)
	if err != nil {
		writeError(c, err)
		return
	}
	req := a.request(c)
	if key, ok := c.Request.Header["Idempotency-Key"]; ok {
		if len(key) != 1 || !validIdempotencyKey(key[0]) {
			writeError(c, fault.InvalidField("Idempotency-Key", "must be given once, 1 to 255 printable ASCII characters"))
			return
		}
		req.IdempotencyKey, req.RequestHash = key[0], requestHash(body)
	}
	start := time.Now()
	res, err := a.Commands.CreateContact(c.Request.Context(), req, in)
	a.observeContact("contact_create", start, res, err)
	if err != nil {
		writeError(c, err)
		return
	}
	if res.Replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	logFrom(c).Info("contact created", "contact_id", res.Contact.ID, "seq", res.Seq, "replayed", res.Replayed)
	c.Header("Location", Base+"/contacts/"+res.Contact.ID)
	a.contactDone(c, http.StatusCreated, res, dataResponse{Data: contactToJSON(readmodel.FromContact(res.Contact)),
		Message: "Contact created successfully"})
}

func (a *api) updateContact(c *gin.Context) {
	id, expected, ok := contactAndVersion(c)
	if !ok {
		return
	}
	body, err := readBody(c)
	if err != nil {
		writeError(c, err)
		return
	}
	in, err := decodeContactInput(body, false)
	if err != nil {
		writeError(c, err)
		return
	}
	start := time.Now()
	res, err := a.Commands.UpdateContact(c.Request.Context(), a.request(c), id, in, expected)
	a.observeContact("contact_update", start, res, err)
	if err != nil {
		writeError(c, err)
		return
	}
	logFrom(c).Info("contact updated", "contact_id", id, "seq", res.Seq)
	a.contactDone(c, http.StatusOK, res, dataResponse{Data: contactToJSON(readmodel.FromContact(res.Contact)),
		Message: "Contact updated successfully"})
}

func (a *api) deleteContact(c *gin.Context) {
	id, expected, ok := contactAndVersion(c)
	if !ok {
		return
	}
	start := time.Now()
	res, err := a.Commands.DeleteContact(c.Request.Context(), a.request(c), id, expected)
	a.observeContact("contact_delete", start, res, err)
	if err != nil {
		writeError(c, err)
		return
	}
	logFrom(c).Info("contact deleted", "contact_id", id, "seq", res.Seq)
	const msg = "Contact deleted successfully"
	a.contactDone(c, http.StatusOK, res, dataResponse{Data: gin.H{"message": msg}, Message: msg})
}

// contactAndVersion reads the path's contact id and If-Match, writing the
// error and reporting false when either is bad.
func contactAndVersion(c *gin.Context) (id string, expected uint64, ok bool) {
	id, err := contactID(c)
	if err == nil {
		expected, err = ifMatchNumber(c, contact.ErrPreconditionFailed)
	}
	if err != nil {
		writeError(c, err)
		return "", 0, false
	}
	return id, expected, true
}

func (a *api) getContact(c *gin.Context) {
	id, err := contactID(c)
	if err != nil {
		writeError(c, err)
		return
	}
	values := c.Request.URL.Query()
	if _, ok := values["asOf"]; ok {
		a.contactAsOf(c, id, values)
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
	k, err := a.Reader.GetContact(c.Request.Context(), id)
	if err != nil {
		writeError(c, err)
		return
	}
	c.Header("ETag", etag(k.Version))
	c.JSON(http.StatusOK, dataResponse{Data: contactToJSON(k)})
}

// contactAsOf serves GET /contacts/{id}?asOf=: the contact folded from
// the stream up to that instant (crm.audit).
func (a *api) contactAsOf(c *gin.Context, id string, values url.Values) {
	at, err := asOfOnly(c, values)
	if err != nil {
		writeError(c, err)
		return
	}
	evs, err := a.Commands.ContactEvents(c.Request.Context(), a.request(c), id)
	if err != nil {
		writeError(c, err)
		return
	}
	state, existed := audit.ContactAsOf(evs, at)
	if !existed || state.Deleted {
		writeError(c, contact.ErrNotFound)
		return
	}
	c.Header("ETag", etag(state.Version))
	c.JSON(http.StatusOK, dataResponse{Data: contactToJSON(readmodel.FromContact(state))})
}

// contactHistory serves GET /contacts/{id}/history: the contact's events
// from the stream, oldest first, paginated (crm.audit).
func (a *api) contactHistory(c *gin.Context) {
	id, err := contactID(c)
	if err != nil {
		writeError(c, err)
		return
	}
	q, err := historyPage(c.Request.URL.Query())
	if err != nil {
		writeError(c, err)
		return
	}
	evs, err := a.Commands.ContactEvents(c.Request.Context(), a.request(c), id)
	if err != nil {
		writeError(c, err)
		return
	}
	writeHistory(c, audit.ContactHistory(evs), q)
}

// listContacts serves GET /contacts: the live contacts, filtered by tag
// or email, sorted by name (default), createdAt or updatedAt, paged by
// cursor (?after= meta.next).
func (a *api) listContacts(c *gin.Context) { a.contactPage(c, false) }

// searchContacts serves GET /contacts/search?q=: the live contacts with a
// word of their name, title or email starting with each word of q, in
// name order, filtered by tag, paged by cursor; the total is exact up to
// 10,000 (then meta.totalRelation is "gte").
func (a *api) searchContacts(c *gin.Context) { a.contactPage(c, true) }

func (a *api) contactPage(c *gin.Context, search bool) {
	q, err := a.parseContactQuery(c.Request.URL.Query(), search)
	if err != nil {
		writeError(c, err)
		return
	}
	if a.Reader == nil {
		writeError(c, errNoReadModel)
		return
	}
	p, err := a.Reader.ListContacts(c.Request.Context(), q)
	if err != nil {
		writeError(c, err)
		return
	}
	perPage := int64(q.Limit())
	out := contactListResponse{Data: make([]contactJSON, 0, len(p.Items)), Meta: pageMeta{
		Total: p.Total, PerPage: int(perPage), TotalPages: (p.Total + perPage - 1) / perPage, TotalRelation: "eq",
	}}
	if p.TotalAtLeast {
		out.Meta.TotalRelation = "gte"
	}
	for _, k := range p.Items {
		out.Data = append(out.Data, contactToJSON(k))
	}
	if p.More && len(p.Items) > 0 {
		out.Meta.Next = a.encodeContactCursor(q, readmodel.ContactPositionOf(p.Items[len(p.Items)-1], q.Sort))
	}
	c.JSON(http.StatusOK, out)
}

// parseContactQuery reads the parameters of GET /contacts (search: of GET
// /contacts/search) strictly.
func (a *api) parseContactQuery(values url.Values, search bool) (readmodel.ContactQuery, error) {
	q := readmodel.ContactQuery{PerPage: readmodel.DefaultPerPage, Sort: readmodel.SortName}
	var errs []fault.FieldError
	fail := func(f, m string) { errs = append(errs, fault.FieldError{Field: f, Message: m}) }
	after := ""
	for key, vs := range values {
		if len(vs) != 1 {
			fail(key, "must be given once")
			continue
		}
		v := vs[0]
		switch key {
		case "perPage":
			n, err := number(v)
			if err != nil || n < 1 || n > readmodel.MaxPerPage {
				fail(key, "must be an integer from 1 to "+strconv.Itoa(readmodel.MaxPerPage))
				continue
			}
			q.PerPage = n
		case "tag":
			t := strings.TrimSpace(v)
			if t == "" || !utf8.ValidString(t) || utf8.RuneCountInString(t) > customer.MaxTagLength {
				fail(key, "must be 1 to "+strconv.Itoa(customer.MaxTagLength)+" characters")
				continue
			}
			q.Tag = t
		case "q":
			if !search {
				fail(key, "is only supported by /contacts/search")
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
		case "email":
			if search {
				fail(key, "is not supported by /contacts/search (list the contacts with that email instead)")
				continue
			}
			e := strings.TrimSpace(v)
			if e == "" || !utf8.ValidString(e) || utf8.RuneCountInString(e) > customer.MaxEmail {
				fail(key, "must be 1 to "+strconv.Itoa(customer.MaxEmail)+" characters")
				continue
			}
			q.Email = e
		case "sort":
			if search {
				fail(key, "is not supported by /contacts/search: the matches are in name order")
				continue
			}
			field, desc := strings.CutPrefix(v, "-")
			if !slices.Contains(readmodel.ContactSorts, field) {
				fail(key, "must be one of "+strings.Join(readmodel.ContactSorts, ", ")+", optionally prefixed with - for descending")
				continue
			}
			q.Sort, q.Desc = field, desc
		case "after":
			after = v
		case "page":
			fail(key, "is not supported: contacts are paged by cursor (after = meta.next of the page before)")
		default:
			fail(key, "is not a known parameter")
		}
	}
	if search && q.Text == "" && !slices.ContainsFunc(errs, func(e fault.FieldError) bool { return e.Field == "q" }) {
		fail("q", "is required")
	}
	if len(errs) > 0 {
		return q, fault.InvalidFields(errs...)
	}
	if after != "" {
		pos, why := a.decodeContactCursor(after, q)
		if why != "" {
			return q, fault.InvalidField("after", why)
		}
		q.After = &pos
	}
	return q, nil
}

// contactBinding names what a contact cursor is valid for: the filters and
// the order.
func contactBinding(q readmodel.ContactQuery) string {
	parts := []string{"contacts", q.Sort, strconv.FormatBool(q.Desc), q.Tag, strings.ToLower(q.Email)}
	if q.Text != "" { // a search's cursor is its query's (the list's stay what they were)
		parts = append(parts, "search", q.Text)
	}
	return bindingOf(parts...)
}

func (a *api) encodeContactCursor(q readmodel.ContactQuery, p readmodel.ContactPosition) string {
	return a.signCursor(pageCursor{V: 1, Bind: contactBinding(q), N: p.Name, I: p.ID, T: unixNanos(p.Time)})
}

func (a *api) decodeContactCursor(s string, q readmodel.ContactQuery) (readmodel.ContactPosition, string) {
	c, why := a.openCursor(s, contactBinding(q))
	if why != "" {
		return readmodel.ContactPosition{}, why
	}
	p := readmodel.ContactPosition{Name: c.N, ID: c.I}
	if c.T != 0 {
		p.Time = time.Unix(0, c.T).UTC()
	}
	return p, ""
}
