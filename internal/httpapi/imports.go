package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"crm/internal/auth"
	"crm/internal/fault"
	"crm/internal/imports"
)

// ImportJobs runs import jobs (implemented by imports.Manager).
type ImportJobs interface {
	Submit(p auth.Principal, format string, mapping map[string]string, dryRun bool, key string, body io.Reader,
		chunk func()) (imports.Job, bool, error)
	Get(id string) (imports.Job, error)
	List() ([]imports.Job, error)
	Cancel(id string) (imports.Job, error)
	Errors(id string, offset, limit int64) ([]imports.RowError, int64, error)
}

// maxImportBytes bounds one upload.
const maxImportBytes = 8 << 30

var errImportsOff = fault.New(fault.Unavailable, "imports are not available: set IMPORT_DIR (or DATA_DIR) for their files")

// importJSON is a job as the API shows it: its state file plus the rate
// and the estimate of the time left.
type importJSON struct {
	imports.Job
	RowsPerSecond float64  `json:"rowsPerSecond"`
	ETASeconds    *float64 `json:"etaSeconds"`
	// ReadModelCurrent: the read model has applied every customer the
	// job created so far (list and search show them).
	ReadModelCurrent bool `json:"readModelCurrent"`
	// ErrorsBytes shadows the state file's Job.ErrorsBytes, always 0 and
	// so left out: the errors file's length is the service's business.
	ErrorsBytes int64 `json:"errorsBytes,omitempty"`
}

func (a *api) viewImport(ctx context.Context, j imports.Job) importJSON {
	v := importJSON{Job: j, ReadModelCurrent: true}
	if j.LastSequence > 0 && a.Projection != nil {
		ctx, cancel := context.WithTimeout(ctx, time.Millisecond)
		v.ReadModelCurrent = a.Projection.WaitFor(ctx, j.LastSequence)
		cancel()
	}
	if j.RunSeconds > 0 {
		v.RowsPerSecond = math.Round(float64(j.RowsRead)/j.RunSeconds*10) / 10
	}
	if !j.Finished() && v.RowsPerSecond > 0 && j.RowsTotal > 0 {
		eta := math.Round(float64(j.RowsTotal-j.RowsRead) / v.RowsPerSecond)
		v.ETASeconds = &eta
	}
	return v
}

// createImport serves POST /imports: the body (text/csv with a header
// row, or application/x-ndjson) is stored, then imported in the
// background; 202 with the job. ?map=Column:field,…, ?dryRun=true.
func (a *api) createImport(c *gin.Context) {
	if a.Imports == nil {
		writeError(c, errImportsOff)
		return
	}
	if err := identityEncoding(c); err != nil {
		writeError(c, err)
		return
	}
	var (
		mapping map[string]string
		dryRun  bool
		errs    []fault.FieldError
	)
	for key, vs := range c.Request.URL.Query() {
		if len(vs) != 1 {
			errs = append(errs, fault.FieldError{Field: key, Message: "must be given once"})
			continue
		}
		switch key {
		case "map":
			m, err := imports.ParseMapping(vs[0])
			if err != nil {
				errs = append(errs, fault.FieldError{Field: key, Message: err.Error()})
			}
			mapping = m
		case "dryRun":
			b, err := strconv.ParseBool(vs[0])
			if err != nil || (vs[0] != "true" && vs[0] != "false") {
				errs = append(errs, fault.FieldError{Field: key, Message: "must be true or false"})
			}
			dryRun = b
		default:
			errs = append(errs, fault.FieldError{Field: key, Message: "is not a known parameter"})
		}
	}
	key, hasKey := c.Request.Header["Idempotency-Key"]
	if hasKey && (len(key) != 1 || !validIdempotencyKey(key[0])) {
		errs = append(errs, fault.FieldError{Field: "Idempotency-Key", Message: "must be given once, 1 to 255 printable ASCII characters"})
	}
	if len(errs) > 0 {
		writeError(c, fault.InvalidFields(errs...))
		return
	}
	if c.Request.ContentLength > maxImportBytes {
		writeError(c, &badRequest{status: http.StatusRequestEntityTooLarge, title: "Request body too large",
			detail: "an upload takes at most " + strconv.FormatInt(maxImportBytes>>30, 10) + " GiB"})
		return
	}
	idem := ""
	if hasKey {
		idem = key[0]
	}
	rc := http.NewResponseController(c.Writer)
	_ = rc.SetReadDeadline(time.Now().Add(30 * time.Second))
	format, body, partMapping, err := importBody(c, http.MaxBytesReader(c.Writer, c.Request.Body, maxImportBytes))
	if err == nil && partMapping != nil {
		if mapping != nil && len(mapping) > 0 {
			err = fault.InvalidField("map", "give the mapping once: as ?map= or as the mapping part")
		}
		mapping = partMapping
	}
	if err != nil {
		writeError(c, err)
		return
	}
	job, replayed, err := a.Imports.Submit(principal(c), format, mapping, dryRun, idem, body, func() {
		_ = rc.SetReadDeadline(time.Now().Add(30 * time.Second)) // a large upload may take minutes
	})
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = &badRequest{status: http.StatusRequestEntityTooLarge, title: "Request body too large", detail: "the upload is too large"}
		} else if fault.KindOf(err) == fault.Internal && fault.Of(err) == nil {
			// The body could not be read: the client stopped sending.
			err = &badRequest{status: http.StatusBadRequest, title: "Bad request", detail: "the upload was cut off before its end: nothing was imported"}
		}
		writeError(c, err)
		return
	}
	c.Header("Location", Base+"/imports/"+job.ID)
	if replayed {
		c.Header("Idempotent-Replayed", "true")
		c.JSON(http.StatusOK, dataResponse{Data: a.viewImport(c.Request.Context(), job)})
		return
	}
	logFrom(c).Info("import started", "job", job.ID, "bytes", job.Bytes, "format", format, "dry_run", dryRun)
	c.JSON(http.StatusAccepted, dataResponse{Data: a.viewImport(c.Request.Context(), job), Message: "Import started"})
}

var errImportMedia = &badRequest{status: http.StatusUnsupportedMediaType, title: "Unsupported media type",
	detail: "Content-Type must be text/csv (with a header row), application/x-ndjson, or multipart/form-data with a file part"}

// importBody returns the upload's format and rows: the body itself (text/csv,
// application/x-ndjson), or the file part of multipart/form-data, which
// may be preceded by a mapping part (a JSON object of column to field).
func importBody(c *gin.Context, body io.Reader) (string, io.Reader, map[string]string, error) {
	mt, params, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if err != nil {
		return "", nil, nil, errImportMedia
	}
	if format := importFormat(mt, ""); format != "" {
		return format, body, nil, nil
	}
	if mt != "multipart/form-data" || params["boundary"] == "" {
		return "", nil, nil, errImportMedia
	}
	mr := multipart.NewReader(body, params["boundary"])
	var mapping map[string]string
	for {
		part, err := mr.NextPart()
		if err != nil {
			return "", nil, nil, fault.InvalidField("file", "is required: a multipart part named file holding the CSV or NDJSON")
		}
		switch part.FormName() {
		case "mapping":
			b, err := io.ReadAll(io.LimitReader(part, 64<<10))
			var m map[string]string
			if err != nil || json.Unmarshal(b, &m) != nil {
				return "", nil, nil, fault.InvalidField("mapping", `must be a JSON object of column to field, e.g. {"Full Name":"name","Fax":"-"}`)
			}
			if err := imports.CheckMapping(m); err != nil {
				return "", nil, nil, fault.InvalidField("mapping", err.Error())
			}
			mapping = m
		case "file":
			pmt, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
			format := importFormat(pmt, part.FileName())
			if format == "" {
				return "", nil, nil, fault.InvalidField("file", "must be text/csv or application/x-ndjson (or a file named .csv, .ndjson or .jsonl)")
			}
			return format, part, mapping, nil
		default:
			return "", nil, nil, fault.InvalidField(part.FormName(), "is not a known part (mapping, then file)")
		}
	}
}

func importFormat(mt, filename string) string {
	switch {
	case mt == "text/csv" || mt == "" && strings.HasSuffix(filename, ".csv"):
		return imports.FormatCSV
	case mt == "application/x-ndjson" || mt == "application/ndjson" || mt == "application/jsonl",
		(mt == "" || mt == "application/octet-stream") && (strings.HasSuffix(filename, ".ndjson") || strings.HasSuffix(filename, ".jsonl")):
		return imports.FormatNDJSON
	case mt == "application/octet-stream" && strings.HasSuffix(filename, ".csv"):
		return imports.FormatCSV
	}
	return ""
}

func (a *api) importJob(c *gin.Context) (imports.Job, bool) {
	if a.Imports == nil {
		writeError(c, errImportsOff)
		return imports.Job{}, false
	}
	id := c.Param("id")
	if _, err := uuid.Parse(id); err != nil {
		writeError(c, fault.InvalidField("import_id", "must be a UUID"))
		return imports.Job{}, false
	}
	j, err := a.Imports.Get(id)
	if err != nil {
		writeError(c, err)
		return imports.Job{}, false
	}
	return j, true
}

func (a *api) getImport(c *gin.Context) {
	if !noParams(c) {
		return
	}
	if j, ok := a.importJob(c); ok {
		c.JSON(http.StatusOK, dataResponse{Data: a.viewImport(c.Request.Context(), j)})
	}
}

func (a *api) listImports(c *gin.Context) {
	if !noParams(c) {
		return
	}
	if a.Imports == nil {
		writeError(c, errImportsOff)
		return
	}
	jobs, err := a.Imports.List()
	if err != nil {
		writeError(c, err)
		return
	}
	out := make([]importJSON, len(jobs))
	for i, j := range jobs {
		out[i] = a.viewImport(c.Request.Context(), j)
	}
	c.JSON(http.StatusOK, dataResponse{Data: out})
}

func (a *api) cancelImport(c *gin.Context) {
	if !noParams(c) {
		return
	}
	j, ok := a.importJob(c)
	if !ok {
		return
	}
	j, err := a.Imports.Cancel(j.ID)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, dataResponse{Data: a.viewImport(c.Request.Context(), j), Message: "Import cancelled: the rows created so far stay"})
}

type importErrorsResponse struct {
	Data []imports.RowError `json:"data"`
	Meta pageMeta           `json:"meta"`
}

// importErrors serves GET /imports/{id}/errors?page&perPage: the rejected
// rows in line order.
func (a *api) importErrors(c *gin.Context) {
	q, err := parseQuery(c.Request.URL.Query(), false)
	if err == nil && (q.Status != "" || q.Type != "" || q.Tag != "" || q.CreatedBy != "" || q.Deleted || c.Query("sort") != "") {
		err = fault.InvalidField("query", "the errors take only page and perPage")
	}
	if err != nil {
		writeError(c, err)
		return
	}
	j, ok := a.importJob(c)
	if !ok {
		return
	}
	limit, offset, _ := q.Bounds()
	rows, total, err := a.Imports.Errors(j.ID, offset, limit)
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, importErrorsResponse{Data: rows, Meta: pageMeta{Total: total, Page: q.Page, PerPage: q.PerPage,
		TotalPages: (total + int64(q.PerPage) - 1) / int64(q.PerPage)}})
}

func noParams(c *gin.Context) bool {
	for key := range c.Request.URL.Query() {
		writeError(c, fault.InvalidField(key, "is not a known parameter"))
		return false
	}
	return true
}
