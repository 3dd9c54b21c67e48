package httpapi

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"crm/internal/customer"
	"crm/internal/dedupe"
	"crm/internal/fault"
	"crm/internal/readmodel"
)

// warning is one entry of the warnings of a command response.
type warning struct {
	Type       string `json:"type"` // "possible-duplicate"
	CustomerID string `json:"customerId"`
	Match      string `json:"match"` // dedupe.MatchEmail, …
}

// maxWarnings bounds the possible duplicates a response names per match.
const maxWarnings = 5

// duplicateWarnings returns the live customers that share a duplicate key
// with the state a command left (from the read model, after the
// read-your-writes wait: best effort, never failing the command).
func (a *api) duplicateWarnings(c *gin.Context, st customer.Customer) []warning {
	if a.Reader == nil || !st.Exists() {
		return nil
	}
	keys := dedupe.Of(st.Name, st.Email, st.Phone, st.Company, st.Address.Country)
	if keys == (dedupe.Keys{}) {
		return nil
	}
	dups, err := a.Reader.PossibleDuplicates(c.Request.Context(), st.ID, keys, maxWarnings)
	if err != nil {
		logFrom(c).Warn("possible duplicates not checked", "customer_id", st.ID, "err", err)
		return nil
	}
	var out []warning
	for _, d := range dups {
		out = append(out, warning{Type: "possible-duplicate", CustomerID: d.CustomerID, Match: d.Match})
	}
	return out
}

type clusterJSON struct {
	Match     string         `json:"match"`
	Key       string         `json:"key"`
	Size      int64          `json:"size"`
	Customers []customerJSON `json:"customers"`
}

type clustersResponse struct {
	Data []clusterJSON `json:"data"`
	Meta pageMeta      `json:"meta"`
}

// listDuplicates serves GET /customers/duplicates: the clusters of live
// customers that share a duplicate key, newest first, paged.
func (a *api) listDuplicates(c *gin.Context) {
	q := readmodel.ClusterQuery{Page: 1, PerPage: readmodel.DefaultPerPage}
	var errs []fault.FieldError
	for key, vs := range c.Request.URL.Query() {
		if len(vs) != 1 {
			errs = append(errs, fault.FieldError{Field: key, Message: "must be given once"})
			continue
		}
		v := vs[0]
		switch key {
		case "page":
			n, err := number(v)
			if err != nil || n < 1 || n > maxPage {
				errs = append(errs, fault.FieldError{Field: key, Message: "must be an integer from 1 to " + strconv.Itoa(maxPage)})
			}
			q.Page = n
		case "perPage":
			n, err := number(v)
			if err != nil || n < 1 || n > readmodel.MaxPerPage {
				errs = append(errs, fault.FieldError{Field: key, Message: "must be an integer from 1 to " + strconv.Itoa(readmodel.MaxPerPage)})
			}
			q.PerPage = n
		case "match":
			if !validMatch(v) {
				errs = append(errs, fault.FieldError{Field: key, Message: "must be one of email, phone, name+company"})
			}
			q.Match = v
		default:
			errs = append(errs, fault.FieldError{Field: key, Message: "is not a known parameter"})
		}
	}
	if len(errs) > 0 {
		writeError(c, fault.InvalidFields(errs...))
		return
	}
	if a.Reader == nil {
		writeError(c, errNoReadModel)
		return
	}
	p, err := a.Reader.Duplicates(c.Request.Context(), q)
	if err != nil {
		writeError(c, err)
		return
	}
	out := clustersResponse{Data: make([]clusterJSON, 0, len(p.Items)), Meta: pageMeta{
		Total: p.Total, Page: q.Page, PerPage: q.PerPage,
		TotalPages: (p.Total + int64(q.PerPage) - 1) / int64(q.PerPage),
	}}
	for _, cl := range p.Items {
		j := clusterJSON{Match: cl.Match, Key: cl.Key, Size: cl.Size, Customers: make([]customerJSON, 0, len(cl.Customers))}
		for _, cu := range cl.Customers {
			j.Customers = append(j.Customers, toJSON(cu))
		}
		out.Data = append(out.Data, j)
	}
	c.JSON(http.StatusOK, out)
}

func validMatch(m string) bool {
	for _, x := range dedupe.Matches {
		if m == x {
			return true
		}
	}
	return false
}
