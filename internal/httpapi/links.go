package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"crm/internal/commands"
	"crm/internal/contact"
	"crm/internal/fault"
	"crm/internal/readmodel"
)

// linkJSON is a link between a customer and a contact as the REST contract
// shows it; unset optional fields are null. With a customer's contacts it
// carries the contact, with a contact's customers the customer.
type linkJSON struct {
	CustomerID string        `json:"customerId"`
	ContactID  string        `json:"contactId"`
	Role       *string       `json:"role"`
	Primary    bool          `json:"primary"`
	From       *string       `json:"from"`
	To         *string       `json:"to"`
	LinkedBy   string        `json:"linkedBy"`
	LinkedAt   string        `json:"linkedAt"`
	Contact    *contactJSON  `json:"contact,omitempty"`
	Customer   *customerJSON `json:"customer,omitempty"`
}

func linkToJSON(l readmodel.Link) linkJSON {
	return linkJSON{CustomerID: l.CustomerID, ContactID: l.ContactID, Role: opt(l.Role), Primary: l.Primary, From: opt(l.From),
		To: opt(l.To), LinkedBy: l.LinkedBy, LinkedAt: l.LinkedAt.UTC().Format(timeFormat)}
}

type linkListResponse struct {
	Data []linkJSON `json:"data"`
	Meta struct {
		Total int `json:"total"`
	} `json:"meta"`
}

// decodeLinkInput parses the body of PUT …/contacts/{contactId}: an
// object with role, primary, from and to, each optional; an empty body is
// the link without attributes.
func decodeLinkInput(body []byte) (contact.LinkInput, error) {
	var in contact.LinkInput
	if len(strings.TrimSpace(string(body))) == 0 {
		return in, nil
	}
	obj, err := parseObject(body)
	if err != nil {
		return in, err
	}
	var errs []fault.FieldError
	fail := func(f, m string) { errs = append(errs, fault.FieldError{Field: f, Message: m}) }
	for _, kv := range obj {
		switch kv.key {
		case "role":
			in.Role = stringField(kv, fail)
		case "from":
			in.From = stringField(kv, fail)
		case "to":
			in.To = stringField(kv, fail)
		case "primary":
			if isNull(kv.value) {
				continue
			}
			if err := json.Unmarshal(kv.value, &in.Primary); err != nil {
				fail(kv.path, "must be true or false")
			}
		default:
			if kv.key == "customerId" || kv.key == "contactId" || kv.key == "linkedBy" || kv.key == "linkedAt" {
				fail(kv.path, "is read-only (the path names the customer and the contact)")
			} else {
				fail(kv.path, "is not a known field")
			}
		}
	}
	if len(errs) > 0 {
		errs = append(errs, fault.Fields(contact.ValidateLink(in))...)
		return in, fault.InvalidFields(errs...)
	}
	return in, nil
}

// linkIDs reads the customer id (:id) and contact id (:contactId) of a
// link route.
func linkIDs(c *gin.Context) (string, string, bool) {
	cid, err := customerID(c)
	var kid string
	if err == nil {
		id := c.Param("contactId")
		u, perr := uuid.Parse(id)
		if perr != nil || u.String() != strings.ToLower(id) || len(id) != 36 {
			err = fault.InvalidField("contactId", "must be a UUID")
		}
		kid = u.String()
	}
	if err != nil {
		writeError(c, err)
		return "", "", false
	}
	return cid, kid, true
}

// linkContact serves PUT /customers/{id}/contacts/{contactId}: links the
// contact to the customer (201) or sets the link's attributes (200).
func (a *api) linkContact(c *gin.Context) {
	customerID, contactID, ok := linkIDs(c)
	if !ok {
		return
	}
	var body []byte
	if c.Request.ContentLength != 0 {
		var err error
		if body, err = readBody(c); err != nil {
			writeError(c, err)
			return
		}
	}
	in, err := decodeLinkInput(body)
	if err != nil {
		writeError(c, err)
		return
	}
	start := time.Now()
	res, err := a.Commands.LinkContact(c.Request.Context(), a.request(c), customerID, contactID, in)
	a.observe("link", start, commands.Result{Seq: res.Seq}, err)
	if err != nil {
		writeError(c, err)
		return
	}
	logFrom(c).Info("contact linked", "customer_id", customerID, "contact_id", contactID, "created", res.Created, "seq", res.Seq)
	status, msg := http.StatusOK, "Link updated successfully"
	if res.Created {
		status, msg = http.StatusCreated, "Contact linked successfully"
		c.Header("Location", Base+"/customers/"+customerID+"/contacts/"+contactID)
	}
	if res.Seq > 0 {
		a.awaitSeq(c, res.Seq)
	}
	l := res.Link
	j := linkToJSON(readmodel.Link{CustomerID: customerID, ContactID: contactID, Role: l.Role, Primary: l.Primary, From: l.From, To: l.To,
		LinkedBy: l.LinkedBy, LinkedAt: l.LinkedAt})
	k := contactToJSON(readmodel.FromContact(res.Contact))
	j.Contact = &k
	c.JSON(status, dataResponse{Data: j, Message: msg})
}

// unlinkContact serves DELETE /customers/{id}/contacts/{contactId}.
func (a *api) unlinkContact(c *gin.Context) {
	customerID, contactID, ok := linkIDs(c)
	if !ok {
		return
	}
	start := time.Now()
	res, err := a.Commands.UnlinkContact(c.Request.Context(), a.request(c), customerID, contactID)
	a.observe("unlink", start, commands.Result{Seq: res.Seq}, err)
	if err != nil {
		writeError(c, err)
		return
	}
	logFrom(c).Info("contact unlinked", "customer_id", customerID, "contact_id", contactID, "seq", res.Seq)
	a.awaitSeq(c, res.Seq)
	const msg = "Contact unlinked successfully"
	c.JSON(http.StatusOK, dataResponse{Data: gin.H{"message": msg}, Message: msg})
}

// customerContacts serves GET /customers/{id}/contacts: the customer's
// linked contacts, the primary one first, then by name.
func (a *api) customerContacts(c *gin.Context) {
	id, err := customerID(c)
	if err == nil {
		err = noParameters(c)
	}
	if err == nil && a.Reader == nil {
		err = errNoReadModel
	}
	if err == nil {
		_, err = a.Reader.Get(c.Request.Context(), id) // 404, or 308 to a merge's survivor
	}
	var links []readmodel.LinkedContact
	if err == nil {
		links, err = a.Reader.CustomerContacts(c.Request.Context(), id)
	}
	if err != nil {
		writeError(c, err)
		return
	}
	out := linkListResponse{Data: make([]linkJSON, 0, len(links))}
	for _, l := range links {
		j := linkToJSON(l.Link)
		k := contactToJSON(l.Contact)
		j.Contact = &k
		out.Data = append(out.Data, j)
	}
	out.Meta.Total = len(out.Data)
	c.JSON(http.StatusOK, out)
}

// contactCustomers serves GET /contacts/{id}/customers: the customers the
// contact is linked to, by name.
func (a *api) contactCustomers(c *gin.Context) {
	id, err := contactID(c)
	if err == nil {
		err = noParameters(c)
	}
	if err == nil && a.Reader == nil {
		err = errNoReadModel
	}
	if err == nil {
		_, err = a.Reader.GetContact(c.Request.Context(), id)
	}
	var links []readmodel.LinkedCustomer
	if err == nil {
		links, err = a.Reader.ContactCustomers(c.Request.Context(), id)
	}
	if err != nil {
		writeError(c, err)
		return
	}
	out := linkListResponse{Data: make([]linkJSON, 0, len(links))}
	for _, l := range links {
		j := linkToJSON(l.Link)
		cu := toJSON(l.Customer)
		j.Customer = &cu
		out.Data = append(out.Data, j)
	}
	out.Meta.Total = len(out.Data)
	c.JSON(http.StatusOK, out)
}

// noParameters refuses any query parameter.
func noParameters(c *gin.Context) error {
	for key := range c.Request.URL.Query() {
		return fault.InvalidField(key, "is not a known parameter")
	}
	return nil
}
