package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"crm/internal/auth"
)

// importJob is what crmctl reads of an import job.
type importJob struct {
	ID               string   `json:"id"`
	State            string   `json:"state"`
	Error            string   `json:"error"`
	Bytes            int64    `json:"bytes"`
	RowsTotal        int64    `json:"rowsTotal"`
	RowsRead         int64    `json:"rowsRead"`
	RowsCreated      int64    `json:"rowsCreated"`
	RowsExisting     int64    `json:"rowsExisting"`
	RowsRejected     int64    `json:"rowsRejected"`
	RowsPerSecond    float64  `json:"rowsPerSecond"`
	ETASeconds       *float64 `json:"etaSeconds"`
	RunSeconds       float64  `json:"runSeconds"`
	ReadModelCurrent bool     `json:"readModelCurrent"`
	IgnoredColumns   []string `json:"ignoredColumns"`
}

func (j importJob) finished() bool {
	return j.State == "done" || j.State == "failed" || j.State == "cancelled"
}

// runImport uploads a file to POST /imports, follows the job to its end
// (a progress line on a terminal) and writes the rejected rows next to the
// file.
func runImport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	apiURL := fs.String("url", envOr(getenv, "CRM_URL", "http://127.0.0.1:8080"), "the service's base URL ($CRM_URL)")
	token := fs.String("token", getenv("CRM_TOKEN"), "bearer token ($CRM_TOKEN; default: an admin token minted with SECRET_KEY or --data-dir's key)")
	dataDir := fs.String("data-dir", "", "mint the token with DATA_DIR/secret.key (embedded mode)")
	mapping := fs.String("map", "", "column mapping, e.g. 'Full Name:name,Old Code:externalId,Fax:-'")
	format := fs.String("format", "", "csv or ndjson (default: from the file name, else csv)")
	dryRun := fs.Bool("dry-run", false, "validate every row, create nothing")
	key := fs.String("idempotency-key", "", "the job's key: the same file again with it creates nothing twice (default: none)")
	errorsPath := fs.String("errors", "", "where to write the rejected rows (default FILE.errors.ndjson)")
	if ok, err := parseFlags(fs, args, stderr, "Usage: crmctl import [--url URL] [--map MAPPING] [--dry-run] [--idempotency-key KEY] FILE\n\n"+
		"Uploads FILE (CSV with a header row, or NDJSON) to POST /api/v1/crm/imports, follows the job to its end\n"+
		"(rows, rate and time left on a terminal), then writes the rejected rows (line, field, message)\n"+
		"to FILE.errors.ndjson and prints a report. Exit status 1 when the job failed or was cancelled.\n\n"); !ok || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("import: give exactly one FILE")
	}
	path := fs.Arg(0)
	if *format == "" {
		*format = "csv"
		if strings.HasSuffix(path, ".ndjson") || strings.HasSuffix(path, ".jsonl") {
			*format = "ndjson"
		}
	}
	ctype := map[string]string{"csv": "text/csv", "ndjson": "application/x-ndjson"}[*format]
	if ctype == "" {
		return errors.New("import: --format must be csv or ndjson")
	}
	if *token == "" {
		k, err := tokenKey(getenv, *dataDir)
		if err != nil {
			return fmt.Errorf("import: no --token: %w", err)
		}
		if *token, err = auth.Mint([]byte(k), uuid.NewString(), []string{"admin"}, 24*time.Hour, time.Now()); err != nil {
			return err
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	q := url.Values{}
	if *mapping != "" {
		q.Set("map", *mapping)
	}
	if *dryRun {
		q.Set("dryRun", "true")
	}
	base := strings.TrimSuffix(*apiURL, "/") + "/api/v1/crm/imports"
	req, err := http.NewRequestWithContext(ctx, "POST", base+"?"+q.Encode(), f)
	if err != nil {
		return err
	}
	req.ContentLength = st.Size()
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Authorization", "Bearer "+*token)
	if *key != "" {
		req.Header.Set("Idempotency-Key", *key)
	}
	start := time.Now()
	var job importJob
	if err := doJSON(http.DefaultClient, req, &job, http.StatusAccepted, http.StatusOK); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	fmt.Fprintf(stderr, "import: %s uploaded (%d bytes), job %s\n", path, st.Size(), job.ID)

	draw, done := progressBar("import")
	for !job.finished() || !job.ReadModelCurrent && job.State == "done" {
		select {
		case <-ctx.Done():
			done()
			return fmt.Errorf("import: interrupted; the job %s goes on (DELETE %s/%s cancels it)", job.ID, base, job.ID)
		case <-time.After(500 * time.Millisecond):
		}
		r, _ := http.NewRequestWithContext(ctx, "GET", base+"/"+job.ID, nil)
		r.Header.Set("Authorization", "Bearer "+*token)
		if err := doJSON(http.DefaultClient, r, &job, http.StatusOK); err != nil {
			done()
			return fmt.Errorf("import: follow job %s: %w", job.ID, err)
		}
		if draw != nil {
			total := uint64(max(job.RowsTotal, job.RowsRead))
			draw(uint64(job.RowsRead), total)
			eta := ""
			if job.ETASeconds != nil {
				eta = fmt.Sprintf(", %s left", (time.Duration(*job.ETASeconds) * time.Second).String())
			}
			fmt.Fprintf(stderr, " rows, %.0f/s%s   ", job.RowsPerSecond, eta)
		}
	}
	done()

	if *errorsPath == "" {
		*errorsPath = path + ".errors.ndjson"
	}
	written, err := saveImportErrors(ctx, base+"/"+job.ID+"/errors", *token, *errorsPath)
	if err != nil {
		return fmt.Errorf("import: rejected rows: %w", err)
	}
	fmt.Fprintf(stdout, "job %s: %s in %s (running %.1fs, %.0f rows/s)\n", job.ID, job.State, time.Since(start).Round(time.Millisecond),
		job.RunSeconds, job.RowsPerSecond)
	fmt.Fprintf(stdout, "rows read %d, created %d, already there %d, rejected %d\n", job.RowsRead, job.RowsCreated, job.RowsExisting, job.RowsRejected)
	if len(job.IgnoredColumns) > 0 {
		fmt.Fprintf(stdout, "columns skipped: %s\n", strings.Join(job.IgnoredColumns, ", "))
	}
	if written > 0 {
		fmt.Fprintf(stdout, "rejected rows (line, field, message): %s\n", *errorsPath)
	}
	if job.State != "done" {
		return fmt.Errorf("import: the job %s: %s", job.State, job.Error)
	}
	return nil
}

// saveImportErrors pages the job's rejected rows into path (nothing when
// there are none) and returns how many it wrote.
func saveImportErrors(ctx context.Context, url, token, path string) (int, error) {
	var out *bufio.Writer
	var file *os.File
	n := 0
	for page := 1; ; page++ {
		var body struct {
			Data []json.RawMessage `json:"data"`
			Meta struct {
				TotalPages int `json:"totalPages"`
			} `json:"meta"`
		}
		r, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s?perPage=100&page=%d", url, page), nil)
		r.Header.Set("Authorization", "Bearer "+token)
		if err := doJSONAs(http.DefaultClient, r, &body, true, http.StatusOK); err != nil {
			return n, err
		}
		if len(body.Data) > 0 && file == nil {
			f, err := os.Create(path)
			if err != nil {
				return n, err
			}
			file, out = f, bufio.NewWriter(f)
			defer file.Close()
		}
		for _, e := range body.Data {
			out.Write(e)
			out.WriteByte('\n')
			n++
		}
		if page >= body.Meta.TotalPages {
			break
		}
	}
	if out != nil {
		return n, out.Flush()
	}
	return n, nil
}

// doJSON sends req and decodes the data of a JSON envelope into v when the
// status is one of ok; otherwise the problem's detail is the error.
func doJSON(c *http.Client, req *http.Request, v any, ok ...int) error {
	return doJSONAs(c, req, v, false, ok...)
}

// doJSONAs is doJSON decoding the whole body into v when whole.
func doJSONAs(c *http.Client, req *http.Request, v any, whole bool, ok ...int) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			var env struct {
				Data json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(b, &env); err != nil {
				return fmt.Errorf("%d: %v", resp.StatusCode, err)
			}
			if whole {
				return json.Unmarshal(b, v)
			}
			return json.Unmarshal(env.Data, v)
		}
	}
	var p struct {
		Detail string `json:"detail"`
		Errors []struct{ Field, Message string }
	}
	_ = json.Unmarshal(b, &p)
	msg := p.Detail
	for _, e := range p.Errors {
		msg += fmt.Sprintf("; %s: %s", e.Field, e.Message)
	}
	if msg == "" {
		msg = strings.TrimSpace(string(b))
	}
	return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, msg)
}

func envOr(getenv func(string) string, k, def string) string {
	if v := getenv(k); v != "" {
		return v
	}
	return def
}
