package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"crm/internal/commands"
	"crm/internal/customer"
	"crm/internal/fault"
	"crm/internal/readmodel"
)

type upsertResponse struct {
	Data     customerJSON `json:"data"`
	Message  string       `json:"message"`
	Result   string       `json:"result"` // created, updated or unchanged
	Warnings []warning    `json:"warnings,omitempty"`
}

var upsertMessages = map[string]string{
	commands.Created:   "Customer created successfully",
	commands.Updated:   "Customer updated successfully",
	commands.Unchanged: "Customer unchanged",
}

// upsertByEmail serves PUT /customers/by-email/{email}: create the customer
// with this email (201) or merge-patch the one that has it (200; result
// "unchanged" when nothing changed).
func (a *api) upsertByEmail(c *gin.Context) {
	a.upsert(c, c.Param("email"), a.Commands.UpsertByEmail)
}

// upsertByExternalID serves PUT /customers/by-external-id/{externalId}, as
// upsertByEmail does for the external id (which may hold slashes: the
// route's rest of the path).
func (a *api) upsertByExternalID(c *gin.Context) {
	a.upsert(c, strings.TrimPrefix(c.Param("externalId"), "/"), a.Commands.UpsertByExternalID)
}

type upsertFunc func(ctx context.Context, r commands.Request, key string, in customer.Input, expectedVersion uint64) (commands.UpsertResult, error)

func (a *api) upsert(c *gin.Context, key string, do upsertFunc) {
	expected, err := ifMatch(c)
	if err != nil {
		writeError(c, err)
		return
	}
	body, err := readBody(c)
	if err != nil {
		writeError(c, err)
		return
	}
	in, err := decodeInput(body, false)
	if err != nil {
		writeError(c, err)
		return
	}
	start := time.Now()
	res, err := do(c.Request.Context(), a.request(c), key, in, expected)
	a.observe("upsert", start, res.Result, err)
	if err != nil {
		writeError(c, err)
		return
	}
	logFrom(c).Info("customer upserted", "customer_id", res.Customer.ID, "result", res.Outcome, "seq", res.Seq)
	status := http.StatusOK
	if res.Outcome == commands.Created {
		status = http.StatusCreated
		c.Header("Location", Base+"/customers/"+res.Customer.ID)
	}
	a.awaitReadModel(c, res.Result)
	c.JSON(status, upsertResponse{Data: toJSON(readmodel.FromState(res.Customer)),
		Message: upsertMessages[res.Outcome], Result: res.Outcome, Warnings: a.duplicateWarnings(c, res.Customer)})
}

// customerByExternalID serves GET /customers/by-external-id/{externalId}
// from the read model: the customer that has it, or 308 to the survivor of
// a merged one.
func (a *api) customerByExternalID(c *gin.Context) {
	for key := range c.Request.URL.Query() {
		writeError(c, fault.InvalidField(key, "is not a known parameter"))
		return
	}
	x, ok := customer.ExternalIDKey(strings.TrimPrefix(c.Param("externalId"), "/"))
	if !ok {
		writeError(c, fault.InvalidField("externalId", "the path must hold an external id of 1 to "+
			strconv.Itoa(customer.MaxExternalID)+" characters, without control characters"))
		return
	}
	if a.Reader == nil {
		writeError(c, errNoReadModel)
		return
	}
	cu, err := a.Reader.ByExternalID(c.Request.Context(), x)
	if err != nil {
		writeError(c, err)
		return
	}
	c.Header("ETag", etag(cu.Version))
	c.JSON(http.StatusOK, dataResponse{Data: toJSON(cu)})
}
