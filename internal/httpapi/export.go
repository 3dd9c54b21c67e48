package httpapi

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"crm/internal/auth"
	"crm/internal/export"
	"crm/internal/fault"
	"crm/internal/readmodel"
)

// exportWriteWindow is how long one chunk of an export may take to reach
// the client: a stalled client ends the export, a slow one does not.
const exportWriteWindow = time.Minute

// exportCustomers serves GET /customers/export?format=csv|ndjson with the
// list's filters and sort: every matching customer, streamed from the read
// model at one checkpoint (X-Stream-Sequence; X-Changes-Cursor continues
// from it in the change feed). crm.view; the trash (deleted=only)
// crm.delete.
func (a *api) exportCustomers(c *gin.Context) {
	values := c.Request.URL.Query()
	format := "ndjson"
	if vs, ok := values["format"]; ok {
		if len(vs) != 1 || (vs[0] != "csv" && vs[0] != "ndjson") {
			writeError(c, fault.InvalidField("format", "must be csv or ndjson"))
			return
		}
		format = vs[0]
		values = maps.Clone(values)
		delete(values, "format")
	}
	for _, k := range []string{"page", "perPage", "after"} {
		if values.Has(k) {
			writeError(c, fault.InvalidField(k, "does not apply: an export streams every match"))
			return
		}
	}
	q, err := parseQuery(values, false)
	if err != nil {
		writeError(c, err)
		return
	}
	if q.Deleted {
		if err := principal(c).Require(auth.PermDelete); err != nil {
			writeError(c, err)
			return
		}
	}
	if a.Reader == nil {
		writeError(c, errNoReadModel)
		return
	}
	rc := http.NewResponseController(c.Writer)
	out := bufio.NewWriterSize(c.Writer, 64<<10)
	var (
		cw      *csv.Writer
		enc     = json.NewEncoder(out)
		started bool
		n       int
	)
	begin := func(cp uint64) error {
		started = true
		name := "customers-" + time.Now().UTC().Format("20060102T150405Z") + "." + format
		h := c.Writer.Header()
		if format == "csv" {
			h.Set("Content-Type", "text/csv; charset=utf-8")
		} else {
			h.Set("Content-Type", "application/x-ndjson")
		}
		h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
		h.Set("X-Stream-Sequence", strconv.FormatUint(cp, 10))
		h.Set("X-Changes-Cursor", ChangeCursor(cp))
		h.Set("Cache-Control", "no-store")
		_ = rc.SetWriteDeadline(time.Now().Add(exportWriteWindow))
		c.Status(http.StatusOK)
		if format == "csv" {
			cw = csv.NewWriter(out)
			return cw.Write(export.CSVHeader)
		}
		return nil
	}
	each := func(cu readmodel.Customer) error {
		var err error
		if cw != nil {
			err = cw.Write(export.CSVRow(cu))
		} else {
			err = enc.Encode(export.RecordOf(cu))
		}
		if n++; n%1000 == 0 && err == nil {
			if cw != nil {
				cw.Flush()
			}
			err = out.Flush()
			_ = rc.SetWriteDeadline(time.Now().Add(exportWriteWindow))
		}
		return err
	}
	err = a.Reader.Export(c.Request.Context(), q, begin, each)
	if err == nil && cw != nil {
		cw.Flush()
		err = cw.Error()
	}
	if err == nil {
		err = out.Flush()
	}
	switch {
	case err == nil:
		logFrom(c).Info("export", "format", format, "customers", n)
	case !started:
		writeError(c, err)
	default:
		// Mid-stream: the status is sent. End the response without its
		// final chunk, so the client sees a broken transfer, not a short
		// file that looks complete.
		logFrom(c).Warn("export broken off", "customers", n, "err", err)
		panic(http.ErrAbortHandler)
	}
}
