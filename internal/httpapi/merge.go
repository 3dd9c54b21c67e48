package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"crm/internal/commands"
	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/fault"
	"crm/internal/readmodel"
)

type mergeRequest struct {
	customerIDs []string
	resolve     map[string]string
	dryRun      bool
}

// decodeMerge parses a merge body strictly: customerIds (1 to 10 UUIDs),
// resolve (field → customer id), dryRun; every bad member is named.
func decodeMerge(body []byte) (mergeRequest, error) {
	var req mergeRequest
	obj, err := parseObject(body)
	if err != nil {
		return req, err
	}
	var errs []fault.FieldError
	fail := func(f, m string) { errs = append(errs, fault.FieldError{Field: f, Message: m}) }
	for _, kv := range obj {
		switch kv.key {
		case "customerIds":
			var raw []json.RawMessage
			if err := json.Unmarshal(kv.value, &raw); err != nil || raw == nil {
				fail(kv.path, "must be an array of 1 to "+strconv.Itoa(customer.MaxMerge)+" customer ids")
				continue
			}
			if len(raw) == 0 || len(raw) > customer.MaxMerge {
				fail(kv.path, "must name 1 to "+strconv.Itoa(customer.MaxMerge)+" customers")
				continue
			}
			for i, r := range raw {
				var s string
				if json.Unmarshal(r, &s) != nil || !canonicalUUID(s) {
					fail(kv.path+"["+strconv.Itoa(i)+"]", "must be a customer id (UUID)")
					continue
				}
				req.customerIDs = append(req.customerIDs, s)
			}
		case "resolve":
			members, err := parseObjectAt(kv.value, kv.path)
			if err != nil {
				fail(kv.path, "must be an object of field to customer id")
				continue
			}
			req.resolve = map[string]string{}
			for _, m := range members {
				var s string
				if json.Unmarshal(m.value, &s) != nil || !canonicalUUID(s) {
					fail(m.path, "must be a customer id (UUID)")
					continue
				}
				req.resolve[m.key] = s
			}
		case "dryRun":
			if err := json.Unmarshal(kv.value, &req.dryRun); err != nil || isNull(kv.value) {
				fail(kv.path, "must be true or false")
			}
		default:
			fail(kv.path, "is not a known field (allowed: customerIds, resolve, dryRun)")
		}
	}
	if req.customerIDs == nil && !hasField(errs, "customerIds") && !hasPrefix(errs, "customerIds[") {
		fail("customerIds", "is required")
	}
	if len(errs) > 0 {
		return req, fault.InvalidFields(errs...)
	}
	return req, nil
}

func hasPrefix(errs []fault.FieldError, p string) bool {
	for _, e := range errs {
		if len(e.Field) >= len(p) && e.Field[:len(p)] == p {
			return true
		}
	}
	return false
}

func canonicalUUID(s string) bool {
	u, err := uuid.Parse(s)
	return err == nil && u.String() == s
}

type mergeChoiceJSON struct {
	Field      string  `json:"field"`
	CustomerID *string `json:"customerId"`
	Rule       string  `json:"rule"`
}

type mergedJSON struct {
	CustomerID   string `json:"customerId"`
	CustomerCode string `json:"customerCode"`
}

type mergeJSON struct {
	DryRun   bool              `json:"dryRun"`
	Absorbed []mergedJSON      `json:"absorbed"`
	Choices  []mergeChoiceJSON `json:"choices"`
	Links    []movedLinkJSON   `json:"links"`
}

// movedLinkJSON is a link of an absorbed customer that the merge copies to
// the survivor.
type movedLinkJSON struct {
	ContactID  string `json:"contactId"`
	CustomerID string `json:"customerId"` // the absorbed customer it came from
	Primary    bool   `json:"primary"`
}

type mergeResponse struct {
	Data    customerJSON `json:"data"`
	Message string       `json:"message"`
	Merge   mergeJSON    `json:"merge"`
}

// mergeCustomers serves POST /customers/{id}/merge: absorb customerIds into
// the customer of the path (or, with dryRun, show what that would do).
func (a *api) mergeCustomers(c *gin.Context) {
	id, err := customerID(c)
	if err != nil {
		writeError(c, err)
		return
	}
	body, err := readBody(c)
	if err != nil {
		writeError(c, err)
		return
	}
	req, err := decodeMerge(body)
	if err != nil {
		writeError(c, err)
		return
	}
	start := time.Now()
	res, err := a.Commands.MergeCustomers(c.Request.Context(), a.request(c), id, req.customerIDs, req.resolve, req.dryRun)
	kind := "merge"
	if req.dryRun {
		kind = "merge_preview"
	}
	a.observe(kind, start, commands.Result{Customer: res.Plan.Survivor, Seq: res.Seq}, err)
	if err != nil {
		writeError(c, err)
		return
	}
	out := mergeResponse{Data: toJSON(readmodel.FromState(res.Plan.Survivor)), Merge: mergeJSON{DryRun: req.dryRun}}
	for _, ch := range res.Plan.Choices {
		out.Merge.Choices = append(out.Merge.Choices, mergeChoiceJSON{Field: ch.Field, CustomerID: opt(ch.CustomerID), Rule: ch.Rule})
	}
	for _, e := range res.Plan.Events {
		if d, ok := e.Data.(*events.CustomerMergedInto); ok {
			out.Merge.Absorbed = append(out.Merge.Absorbed, mergedJSON{CustomerID: d.CustomerID, CustomerCode: d.CustomerCode})
		}
	}
	out.Merge.Links = []movedLinkJSON{}
	for _, l := range res.Plan.Links {
		out.Merge.Links = append(out.Merge.Links, movedLinkJSON{ContactID: l.ContactID, CustomerID: l.From, Primary: l.Primary})
	}
	if req.dryRun {
		out.Message = "Merge preview: nothing was changed"
		c.Header("ETag", etag(res.Plan.Survivor.Version-1-uint64(len(res.Plan.Links)))) // the survivor's version now
		c.JSON(http.StatusOK, out)
		return
	}
	logFrom(c).Info("customers merged", "customer_id", id, "absorbed", req.customerIDs, "seq", res.Seq)
	out.Message = "Customers merged successfully"
	a.commandDone(c, http.StatusOK, commands.Result{Customer: res.Plan.Survivor, Seq: res.Seq}, out)
}

type unmergeJSON struct {
	Customer customerJSON `json:"customer"`
	Reverted []string     `json:"reverted"`
	Kept     []string     `json:"kept"`
	// Unlinked are the contacts whose links the merge had copied to the
	// survivor, ended there.
	Unlinked []string `json:"unlinked"`
}

type unmergeResponse struct {
	Data    customerJSON `json:"data"`
	Message string       `json:"message"`
	Unmerge unmergeJSON  `json:"unmerge"`
}

// unmergeCustomer serves POST /customers/{id}/unmerge {"customerId": …}:
// take that customer out of the one of the path again.
func (a *api) unmergeCustomer(c *gin.Context) {
	id, err := customerID(c)
	if err != nil {
		writeError(c, err)
		return
	}
	body, err := readBody(c)
	if err != nil {
		writeError(c, err)
		return
	}
	obj, err := parseObject(body)
	if err != nil {
		writeError(c, err)
		return
	}
	var absorbed string
	var errs []fault.FieldError
	for _, kv := range obj {
		if kv.key != "customerId" {
			errs = append(errs, fault.FieldError{Field: kv.path, Message: "is not a known field (allowed: customerId)"})
			continue
		}
		if json.Unmarshal(kv.value, &absorbed) != nil || !canonicalUUID(absorbed) {
			errs = append(errs, fault.FieldError{Field: kv.path, Message: "must be a customer id (UUID)"})
		}
	}
	if absorbed == "" && len(errs) == 0 {
		errs = append(errs, fault.FieldError{Field: "customerId", Message: "is required"})
	}
	if len(errs) > 0 {
		writeError(c, fault.InvalidFields(errs...))
		return
	}
	start := time.Now()
	res, seq, err := a.Commands.UnmergeCustomer(c.Request.Context(), a.request(c), id, absorbed)
	a.observe("unmerge", start, commands.Result{Customer: res.Survivor, Seq: seq}, err)
	if err != nil {
		writeError(c, err)
		return
	}
	logFrom(c).Info("customer unmerged", "customer_id", id, "absorbed", absorbed, "seq", seq)
	out := unmergeResponse{Data: toJSON(readmodel.FromState(res.Survivor)), Message: "Customer unmerged successfully",
		Unmerge: unmergeJSON{Customer: toJSON(readmodel.FromState(res.Absorbed)), Reverted: nonNil(res.Reverted), Kept: nonNil(res.Kept),
			Unlinked: nonNil(res.Unlinked)}}
	a.commandDone(c, http.StatusOK, commands.Result{Customer: res.Survivor, Seq: seq}, out)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
