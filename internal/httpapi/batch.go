package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"crm/internal/commands"
	"crm/internal/fault"
	"crm/internal/readmodel"
)

// maxBatchBodyBytes bounds a batch body: 500 operations of customers with
// long notes fit.
const maxBatchBodyBytes = 16 << 20

var errBatchTooLarge = &badRequest{status: http.StatusRequestEntityTooLarge, title: "Request body too large",
	detail: "the request body exceeds " + strconv.Itoa(maxBatchBodyBytes) + " bytes"}

var errTooManyOps = &badRequest{status: http.StatusRequestEntityTooLarge, title: "Too many operations",
	detail: "a batch takes at most " + strconv.Itoa(commands.MaxBatchOps) + " operations"}

// batchResult is the outcome of one operation of a batch.
type batchResult struct {
	Index        int           `json:"index"`
	Op           string        `json:"op,omitempty"`
	Status       int           `json:"status"`
	CustomerID   string        `json:"customerId,omitempty"`
	CustomerCode string        `json:"customerCode,omitempty"`
	ETag         string        `json:"etag,omitempty"`
	Replayed     bool          `json:"replayed,omitempty"`
	Data         *customerJSON `json:"data,omitempty"`
	Problem      *problem      `json:"problem,omitempty"`
}

type batchMeta struct {
	Total     int  `json:"total"`
	Succeeded int  `json:"succeeded"`
	Failed    int  `json:"failed"`
	Atomic    bool `json:"atomic"`
}

type batchResponse struct {
	Data []batchResult `json:"data"`
	Meta batchMeta     `json:"meta"`
}

// batchCustomers serves POST /customers/batch: up to 500 creates, updates
// and deletes, each with its own permission check and result, in input
// order; 200 when all succeeded, else 207. With "atomic": true all or
// nothing (commands.Handler.Batch).
func (a *api) batchCustomers(c *gin.Context) {
	body, err := readBodyUpTo(c, maxBatchBodyBytes, errBatchTooLarge)
	if err != nil {
		writeError(c, err)
		return
	}
	rawOps, atomic, err := decodeBatch(body)
	if err != nil {
		writeError(c, err)
		return
	}
	ops := make([]commands.BatchOp, len(rawOps))
	bad := make([]error, len(rawOps))
	anyBad := false
	for i, raw := range rawOps {
		ops[i], bad[i] = decodeOp(raw)
		anyBad = anyBad || bad[i] != nil
	}
	results := make([]commands.BatchResult, len(ops))
	switch {
	case anyBad && atomic:
		// Nothing is decided when one operation is malformed.
		for i := range results {
			results[i] = commands.BatchResult{Err: bad[i]}
			if bad[i] == nil {
				results[i] = commands.BatchResult{Err: commands.ErrNotApplied, NotApplied: true}
			}
		}
	default:
		var good []commands.BatchOp
		var at []int
		for i, op := range ops {
			if bad[i] != nil {
				results[i].Err = bad[i]
				continue
			}
			good = append(good, op)
			at = append(at, i)
		}
		start := time.Now()
		for k, r := range a.Commands.Batch(c.Request.Context(), a.request(c), good, atomic) {
			results[at[k]] = r
			a.observe(good[k].Op, start, r.Result, r.Err)
		}
	}

	out := batchResponse{Data: make([]batchResult, len(results)), Meta: batchMeta{Total: len(results), Atomic: atomic}}
	var last uint64
	noHeader := func(string, string) {}
	for i, r := range results {
		br := batchResult{Index: i, Op: ops[i].Op}
		if r.Err != nil {
			p := problemOf(c, r.Err, noHeader)
			br.Status, br.Problem = p.Status, &p
			br.CustomerID = ops[i].CustomerID
			out.Meta.Failed++
			out.Data[i] = br
			continue
		}
		out.Meta.Succeeded++
		cu := r.Result.Customer
		br.CustomerID, br.CustomerCode, br.ETag, br.Replayed = cu.ID, cu.Code, etag(cu.Version), r.Result.Replayed
		br.Status = http.StatusOK
		if ops[i].Op == commands.OpCreate {
			br.Status = http.StatusCreated
		}
		if ops[i].Op != commands.OpDelete {
			j := toJSON(readmodel.FromState(cu))
			br.Data = &j
		}
		last = max(last, r.Result.Seq)
		out.Data[i] = br
	}
	if last > 0 {
		a.awaitSeq(c, last)
	}
	status := http.StatusOK
	if out.Meta.Failed > 0 {
		status = http.StatusMultiStatus
	}
	logFrom(c).Info("batch", "operations", len(results), "succeeded", out.Meta.Succeeded, "atomic", atomic, "seq", last)
	c.JSON(status, out)
}

// awaitSeq sets X-Stream-Sequence and waits (bounded) until the read model
// has applied the event at seq (read-your-writes; of a batch: its last),
// reporting the outcome in X-Read-Model.
func (a *api) awaitSeq(c *gin.Context, seq uint64) {
	c.Header("X-Stream-Sequence", strconv.FormatUint(seq, 10))
	if a.Projection == nil || a.ReadYourWritesTimeout <= 0 {
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.Request.Context(), a.ReadYourWritesTimeout)
	caughtUp := a.Projection.WaitFor(ctx, seq)
	cancel()
	a.Metrics.ReadYourWrites(time.Since(start), caughtUp)
	if caughtUp {
		c.Header("X-Read-Model", "current")
	} else {
		c.Header("X-Read-Model", "behind")
	}
}

// decodeBatch reads {"operations": [...], "atomic": bool} strictly.
func decodeBatch(body []byte) ([]json.RawMessage, bool, error) {
	obj, err := parseObject(body)
	if err != nil {
		return nil, false, err
	}
	var ops []json.RawMessage
	atomic, seen := false, false
	for _, kv := range obj {
		switch kv.key {
		case "operations":
			seen = true
			if err := json.Unmarshal(kv.value, &ops); err != nil || isNull(kv.value) {
				return nil, false, fault.InvalidField("operations", "must be an array of operations")
			}
		case "atomic":
			if err := json.Unmarshal(kv.value, &atomic); err != nil || isNull(kv.value) {
				return nil, false, fault.InvalidField("atomic", "must be true or false")
			}
		default:
			return nil, false, fault.InvalidField(kv.path, "is not a known field (allowed: operations, atomic)")
		}
	}
	switch {
	case !seen:
		return nil, false, fault.InvalidField("operations", "is required")
	case len(ops) == 0:
		return nil, false, fault.InvalidField("operations", "must hold at least one operation")
	case len(ops) > commands.MaxBatchOps:
		return nil, false, errTooManyOps
	}
	return ops, atomic, nil
}

// decodeOp reads one operation: {"op", "id"?, "ifMatch"?,
// "idempotencyKey"?, "data"?}. Its field errors name the operation's own
// keys, and the customer's fields (in data) as the single endpoints do.
func decodeOp(raw json.RawMessage) (commands.BatchOp, error) {
	var op commands.BatchOp
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return op, fault.InvalidField("operation", "must be an object")
	}
	members, err := parseObject(raw)
	if err != nil {
		return op, err
	}
	var errs []fault.FieldError
	failf := func(f, m string) { errs = append(errs, fault.FieldError{Field: f, Message: m}) }
	var data json.RawMessage
	hasID, hasIfMatch := false, false
	for _, kv := range members {
		switch kv.key {
		case "op":
			if err := json.Unmarshal(kv.value, &op.Op); err != nil || (op.Op != commands.OpCreate && op.Op != commands.OpUpdate && op.Op != commands.OpDelete) {
				failf("op", "must be one of create, update, delete")
				op.Op = ""
			}
		case "id":
			hasID = true
			var s string
			if json.Unmarshal(kv.value, &s) != nil {
				failf("id", "must be a UUID")
				continue
			}
			if u, err := uuid.Parse(s); err != nil || u.String() != strings.ToLower(s) || len(s) != 36 {
				failf("id", "must be a UUID")
				continue
			}
			op.CustomerID = strings.ToLower(s)
		case "ifMatch":
			hasIfMatch = true
			v, ok := opVersion(kv.value)
			if !ok {
				failf("ifMatch", `must be an ETag such as "3" (or the version number 3, or "*")`)
				continue
			}
			op.ExpectedVersion = v
		case "idempotencyKey":
			var s string
			if json.Unmarshal(kv.value, &s) != nil || !validIdempotencyKey(s) {
				failf("idempotencyKey", "must be 1 to 255 printable ASCII characters")
				continue
			}
			op.IdempotencyKey = s
		case "data":
			data = kv.value
		default:
			failf(kv.path, "is not a known field (allowed: op, id, ifMatch, idempotencyKey, data)")
		}
	}
	switch op.Op {
	case commands.OpCreate:
		if hasID {
			failf("id", "is assigned by the service: a create takes no id")
		}
		if hasIfMatch {
			failf("ifMatch", "applies to update and delete only")
		}
		if data == nil {
			failf("data", "is required: the customer to create")
		}
	case commands.OpUpdate, commands.OpDelete:
		if !hasID {
			failf("id", "is required")
		}
		if op.IdempotencyKey != "" {
			failf("idempotencyKey", "applies to create only (updates and deletes take ifMatch)")
		}
		if op.Op == commands.OpUpdate && data == nil {
			failf("data", "is required: the merge patch to apply")
		}
		if op.Op == commands.OpDelete && data != nil {
			failf("data", "a delete takes no data")
		}
	case "":
		if !hasField(errs, "op") {
			failf("op", "is required")
		}
	}
	if data != nil && op.Op != commands.OpDelete && op.Op != "" {
		if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
			failf("data", "must be an object")
		} else if in, err := decodeInput(data, op.Op == commands.OpCreate); err != nil {
			if !fault.Is(err, fault.Invalid) {
				return op, err
			}
			errs = append(errs, fault.Fields(err)...)
		} else {
			op.Input = in
			if op.IdempotencyKey != "" {
				op.RequestHash = requestHash(data)
			}
		}
	}
	if len(errs) > 0 {
		return op, fault.InvalidFields(errs...)
	}
	return op, nil
}

// opVersion reads an operation's ifMatch: an ETag string ("\"3\"", "3",
// "W/\"3\"", "*" = any) or a version number.
func opVersion(raw json.RawMessage) (uint64, bool) {
	var n uint64
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, n > 0
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, false
	}
	s = strings.TrimSpace(s)
	if s == "*" {
		return 0, true
	}
	v, err := strconv.ParseUint(strings.Trim(strings.TrimPrefix(s, "W/"), `"`), 10, 64)
	return v, err == nil && v > 0
}
