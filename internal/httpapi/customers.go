package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"crm/internal/commands"
	"crm/internal/customer"
	"crm/internal/fault"
	"crm/internal/readmodel"
)

// customerJSON is the customer as the REST contract shows it (the seed's
// schema, camelCase). Unset optional fields are null; tags always a list.
type customerJSON struct {
	CustomerID   string       `json:"customerId"`
	CustomerCode string       `json:"customerCode"`
	Name         string       `json:"name"`
	Email        *string      `json:"email"`
	Phone        *string      `json:"phone"`
	Company      *string      `json:"company"`
	Address      *addressJSON `json:"address"`
	Type         string       `json:"type"`
	Status       string       `json:"status"`
	Notes        *string      `json:"notes"`
	Tags         []string     `json:"tags"`
	ExternalID   *string      `json:"externalId"`
	CreatedBy    string       `json:"createdBy"`
	CreatedAt    string       `json:"createdAt"`
	UpdatedAt    string       `json:"updatedAt"`
}

type addressJSON struct {
	Street     *string `json:"street"`
	City       *string `json:"city"`
	State      *string `json:"state"`
	Country    *string `json:"country"`
	PostalCode *string `json:"postalCode"`
}

// timeFormat is RFC 3339 in UTC with milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

// toJSON returns the REST view of a read-model document (command responses
// and asOf states are mapped to one with readmodel.FromState).
func toJSON(c readmodel.Customer) customerJSON {
	j := customerJSON{
		CustomerID:   c.ID,
		CustomerCode: c.Code,
		Name:         c.Name,
		Email:        opt(c.Email),
		Phone:        opt(c.Phone),
		Company:      opt(c.Company),
		Type:         c.Type,
		Status:       c.Status,
		Notes:        opt(c.Notes),
		Tags:         c.Tags,
		ExternalID:   opt(c.ExternalID),
		CreatedBy:    c.CreatedBy,
		CreatedAt:    c.CreatedAt.UTC().Format(timeFormat),
		UpdatedAt:    c.UpdatedAt.UTC().Format(timeFormat),
	}
	if j.Tags == nil {
		j.Tags = []string{}
	}
	if !c.Address.IsZero() {
		a := c.Address
		j.Address = &addressJSON{opt(a.Street), opt(a.City), opt(a.State), opt(a.Country), opt(a.PostalCode)}
	}
	return j
}

func opt(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

type dataResponse struct {
	Data    any    `json:"data"`
	Message string `json:"message,omitempty"`
	// Warnings (creates, patches, restores, upserts): possible duplicates
	// of the customer; absent when none.
	Warnings []warning `json:"warnings,omitempty"`
}

func etag(version uint64) string { return `"` + strconv.FormatUint(version, 10) + `"` }

// readBody enforces the JSON content type and the 1 MiB limit (without
// reading more than the limit).
var errBodyTooLarge = &badRequest{status: http.StatusRequestEntityTooLarge, title: "Request body too large",
	detail: "the request body exceeds " + strconv.Itoa(maxBodyBytes) + " bytes"}

func readBody(c *gin.Context) ([]byte, error) { return readBodyUpTo(c, maxBodyBytes, errBodyTooLarge) }

// readBodyUpTo is readBody with another limit, tooLarge its error.
func readBodyUpTo(c *gin.Context, limit int64, tooLarge error) ([]byte, error) {
	ct := c.GetHeader("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || (mt != "application/json" && mt != "application/merge-patch+json") {
		return nil, &badRequest{status: http.StatusUnsupportedMediaType, title: "Unsupported media type",
			detail: "Content-Type must be application/json"}
	}
	if err := identityEncoding(c); err != nil {
		return nil, err
	}
	// A declared length over the limit is refused before reading (and
	// before a 100 Continue is sent to a client that expects one).
	if c.Request.ContentLength > limit {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, tooLarge
		}
		return nil, &badRequest{status: http.StatusBadRequest, title: "Bad request", detail: "the request body could not be read"}
	}
	return body, nil
}

// identityEncoding refuses a compressed body (Content-Encoding other than
// identity): 415.
func identityEncoding(c *gin.Context) error {
	if ce := strings.TrimSpace(c.GetHeader("Content-Encoding")); ce != "" && !strings.EqualFold(ce, "identity") {
		return &badRequest{status: http.StatusUnsupportedMediaType, title: "Unsupported media type",
			detail: "Content-Encoding " + strconv.Quote(ce) + " is not supported: send the body uncompressed"}
	}
	return nil
}

func (a *api) request(c *gin.Context) commands.Request {
	id := c.GetString(ctxRequestID)
	return commands.Request{Principal: principal(c), CorrelationID: id, CausationID: id}
}

// customerID validates the :id path parameter (a UUID, canonical form).
func customerID(c *gin.Context) (string, error) {
	id := c.Param("id")
	u, err := uuid.Parse(id)
	if err != nil || u.String() != strings.ToLower(id) || len(id) != 36 {
		return "", fault.InvalidField("customer_id", "must be a UUID")
	}
	return u.String(), nil
}

// customerAndVersion reads the path's customer id and If-Match of a
// command on one customer, writing the error and reporting false when
// either is bad.
func customerAndVersion(c *gin.Context) (id string, expected uint64, ok bool) {
	id, err := customerID(c)
	if err == nil {
		expected, err = ifMatch(c)
	}
	if err != nil {
		writeError(c, err)
		return "", 0, false
	}
	return id, expected, true
}

// ifMatch parses If-Match: absent or "*" = 0 (any version); a quoted or
// bare version number; anything else can never match (412).
func ifMatch(c *gin.Context) (uint64, error) { return ifMatchNumber(c, customer.ErrPreconditionFailed) }

// ifMatchNumber parses If-Match as a quoted (or bare, or weak) positive
// number: absent or "*" = 0; anything else is noMatch.
func ifMatchNumber(c *gin.Context, noMatch error) (uint64, error) {
	h := strings.TrimSpace(c.GetHeader("If-Match"))
	if h == "" || h == "*" {
		return 0, nil
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.Trim(h, `"`), "W/"), 10, 64)
	if err != nil || v == 0 {
		return 0, noMatch
	}
	return v, nil
}

// commandDone writes a command's response after the read-your-writes wait.
func (a *api) commandDone(c *gin.Context, status int, res commands.Result, body any) {
	a.awaitReadModel(c, res)
	c.JSON(status, body)
}

// customerDone writes the response of a command that leaves a live
// customer (create, patch, restore): the customer, and the possible
// duplicates the read model knows after the read-your-writes wait.
func (a *api) customerDone(c *gin.Context, status int, res commands.Result, message string) {
	a.awaitReadModel(c, res)
	c.JSON(status, dataResponse{Data: toJSON(readmodel.FromState(res.Customer)), Message: message,
		Warnings: a.duplicateWarnings(c, res.Customer)})
}

// awaitReadModel sets a command response's ETag, and for an append
// X-Stream-Sequence and the read-your-writes wait (awaitSeq).
func (a *api) awaitReadModel(c *gin.Context, res commands.Result) {
	c.Header("ETag", etag(res.Customer.Version))
	if res.Seq > 0 {
		a.awaitSeq(c, res.Seq)
	}
}

func (a *api) createCustomer(c *gin.Context) {
	body, err := readBody(c)
	if err != nil {
		writeError(c, err)
		return
	}
	in, err := decodeInput(body, true)
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
	res, err := a.Commands.CreateCustomer(c.Request.Context(), req, in)
	a.observe("create", start, res, err)
	if err != nil {
		writeError(c, err)
		return
	}
	if res.Replayed {
		c.Header("Idempotent-Replayed", "true")
	}
	logFrom(c).Info("customer created", "customer_id", res.Customer.ID, "customer_code", res.Customer.Code, "seq", res.Seq, "replayed", res.Replayed)
	c.Header("Location", Base+"/customers/"+res.Customer.ID)
	a.customerDone(c, http.StatusCreated, res, "Customer created successfully")
}

func (a *api) updateCustomer(c *gin.Context) {
	id, expected, ok := customerAndVersion(c)
	if !ok {
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
	res, err := a.Commands.UpdateCustomer(c.Request.Context(), a.request(c), id, in, expected)
	a.observe("update", start, res, err)
	if err != nil {
		writeError(c, err)
		return
	}
	logFrom(c).Info("customer updated", "customer_id", id, "seq", res.Seq)
	a.customerDone(c, http.StatusOK, res, "Customer updated successfully")
}

func (a *api) deleteCustomer(c *gin.Context) {
	id, expected, ok := customerAndVersion(c)
	if !ok {
		return
	}
	start := time.Now()
	res, err := a.Commands.DeleteCustomer(c.Request.Context(), a.request(c), id, expected)
	a.observe("delete", start, res, err)
	if err != nil {
		writeError(c, err)
		return
	}
	logFrom(c).Info("customer deleted", "customer_id", id, "seq", res.Seq)
	const msg = "Customer deleted successfully"
	a.commandDone(c, http.StatusOK, res, dataResponse{Data: gin.H{"message": msg}, Message: msg})
}

// restoreCustomer serves POST /customers/{id}/restore: the customer is live
// again, as it was when deleted. The body, if any, must be empty.
func (a *api) restoreCustomer(c *gin.Context) {
	id, expected, ok := customerAndVersion(c)
	if !ok {
		return
	}
	if c.Request.ContentLength > 0 {
		writeError(c, &badRequest{status: http.StatusBadRequest, title: "Bad request", detail: "restore takes no request body"})
		return
	}
	start := time.Now()
	res, err := a.Commands.RestoreCustomer(c.Request.Context(), a.request(c), id, expected)
	a.observe("restore", start, res, err)
	if err != nil {
		writeError(c, err)
		return
	}
	logFrom(c).Info("customer restored", "customer_id", id, "seq", res.Seq)
	a.customerDone(c, http.StatusOK, res, "Customer restored successfully")
}

func validIdempotencyKey(k string) bool {
	if k == "" || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// requestHash identifies a create body for idempotency: the SHA-256 of its
// compact JSON, so whitespace does not matter but any value does.
func requestHash(body []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, body); err != nil {
		buf.Reset()
		buf.Write(body)
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:])
}

// observe records a command's outcome and, for an append, its latency.
func (a *api) observe(kind string, start time.Time, res commands.Result, err error) {
	if a.Metrics == nil {
		return
	}
	outcome := "ok"
	switch {
	case err == nil && res.Replayed:
		outcome = "replayed"
	case err == nil && res.Seq == 0:
		outcome = "noop"
	case err == nil:
		a.Metrics.Append(time.Since(start))
	case fault.KindOf(err) == fault.Internal:
		outcome = "error"
	default:
		outcome = fault.KindOf(err).String()
	}
	a.Metrics.Command(kind, outcome)
}
