package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"crm/internal/commands"
	"crm/internal/readmodel"
)

type upsertResponse struct {
	Data    customerJSON `json:"data"`
	Message string       `json:"message"`
	Result  string       `json:"result"` // created, updated or unchanged
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
	email := c.Param("email")
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
	res, err := a.Commands.UpsertByEmail(c.Request.Context(), a.request(c), email, in, expected)
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
	a.commandDone(c, status, res.Result, upsertResponse{Data: toJSON(readmodel.FromState(res.Customer)),
		Message: upsertMessages[res.Outcome], Result: res.Outcome})
}
