package app_test

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"

	"crm/internal/apptest"
)

type importJob struct {
	ID               string   `json:"id"`
	State            string   `json:"state"`
	Error            string   `json:"error"`
	RowsTotal        int64    `json:"rowsTotal"`
	RowsRead         int64    `json:"rowsRead"`
	RowsCreated      int64    `json:"rowsCreated"`
	RowsExisting     int64    `json:"rowsExisting"`
	RowsRejected     int64    `json:"rowsRejected"`
	IgnoredColumns   []string `json:"ignoredColumns"`
	LastSequence     uint64   `json:"lastSequence"`
	ReadModelCurrent bool     `json:"readModelCurrent"`
	KeyHash          string   `json:"keyHash"`
}

func startImport(t *testing.T, e *apptest.Env, ctype, query, body string, headers ...string) (int, importJob, string) {
	t.Helper()
	r := e.Do("POST", "/api/v1/crm/imports"+query, body, append([]string{"Content-Type", ctype}, headers...)...)
	var env struct{ Data importJob }
	if r.Status == http.StatusAccepted || r.Status == http.StatusOK {
		r.JSON(t, &env)
		if r.Header.Get("Location") != "/api/v1/crm/imports/"+env.Data.ID {
			t.Errorf("Location %q", r.Header.Get("Location"))
		}
	}
	return r.Status, env.Data, string(r.Body)
}

func waitImport(t *testing.T, e *apptest.Env, id string, done func(importJob) bool) importJob {
	t.Helper()
	var j importJob
	apptest.Eventually(t, 60*time.Second, "import "+id, func() bool {
		var env struct{ Data importJob }
		r := e.Do("GET", "/api/v1/crm/imports/"+id, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET import: %d %s", r.Status, r.Body)
		}
		r.JSON(t, &env)
		j = env.Data
		return done(j)
	})
	return j
}

// finished: the job has ended and the read model has what it created.
func finished(j importJob) bool {
	return (j.State == "done" || j.State == "failed" || j.State == "cancelled") && j.ReadModelCurrent
}

type importErrorsBody struct {
	Data []struct {
		Line   int64 `json:"line"`
		Errors []struct{ Field, Message string }
	} `json:"data"`
	Meta struct{ Total int64 } `json:"meta"`
}

// TestImportCSV: a CSV with a column mapping, good rows and every kind of
// bad one: the good ones become customers (legacy codes in externalId),
// each bad one is reported with its line and field, nothing twice, also
// when the same file comes again with the same Idempotency-Key.
func TestImportCSV(t *testing.T) {
	e := apptest.StartEmbedded(t)
	var b strings.Builder
	b.WriteString("Full Name,E-mail,company,tags,Legacy Code,notes,customerCode\n")
	for i := range 20 {
		fmt.Fprintf(&b, "Imported %02d,imp%02d@example.com,Acme,\"vip;north\",OLD-%02d,,X%d\n", i, i, i, i)
	}
	b.WriteString("Bad Email,not-an-email,,,,,\n")                  // line 22
	b.WriteString(",nobody@example.com,,,,,\n")                     // line 23: no name
	b.WriteString("Multi Line,ml@example.com,,,OLD-ML,\"a\nb\",\n") // lines 24-25: fine
	b.WriteString("Bad \xff Bytes,,,,,,\n")                         // line 26
	b.WriteString("Nul \x00 Name,,,,,,\n")                          // line 27
	b.WriteString("Twin,,,,OLD-03,,\n")                             // line 28: externalId of line 5
	b.WriteString("Short,row\n")                                    // line 29
	b.WriteString("'=Formula Name,,,\"[\"\"a,b\"\"]\",,,\n")        // line 30: fine, neutralised cell read back
	csvBody := b.String()
	const mapping = "?map=" + "Full%20Name:name,E-mail:email,Legacy%20Code:externalId"
	holder := create(t, e, `{"name":"Holds OLD-05","externalId":"OLD-05"}`) // line 7's legacy code is taken
	before := len(e.StreamMessages())
	status, job, body := startImport(t, e, "text/csv", mapping, csvBody, "Idempotency-Key", "import-1")
	if status != http.StatusAccepted || job.ID == "" || job.KeyHash != "" {
		t.Fatalf("POST /imports: %d %s", status, body)
	}
	job = waitImport(t, e, job.ID, finished)
	if job.State != "done" || job.RowsRead != 28 || job.RowsCreated != 21 || job.RowsRejected != 7 || job.RowsTotal != 28 {
		t.Fatalf("job: %+v", job)
	}
	if fmt.Sprint(job.IgnoredColumns) != "[customerCode]" {
		t.Errorf("ignored columns %v", job.IgnoredColumns)
	}
	var errs importErrorsBody
	e.Do("GET", "/api/v1/crm/imports/"+job.ID+"/errors?perPage=100", nil).JSON(t, &errs)
	want := map[int64]string{7: "externalId", 22: "email", 23: "name", 26: "name", 27: "name", 28: "externalId", 29: "row"}
	t.Logf("rejected: %+v", errs.Data)
	if errs.Meta.Total != 7 || len(errs.Data) != 7 || !strings.Contains(errs.Data[0].Errors[0].Message, holder.CustomerID) {
		t.Fatalf("errors: %+v", errs)
	}
	for _, r := range errs.Data {
		if want[r.Line] == "" || len(r.Errors) == 0 || r.Errors[0].Field != want[r.Line] {
			t.Errorf("rejected line %d: %+v, want field %q", r.Line, r.Errors, want[r.Line])
		}
	}
	var page struct {
		Data []struct{ Line int64 } `json:"data"`
	}
	e.Do("GET", "/api/v1/crm/imports/"+job.ID+"/errors?page=2&perPage=4", nil).JSON(t, &page)
	if len(page.Data) != 3 || page.Data[0].Line != 27 {
		t.Errorf("errors page 2: %+v", page)
	}

	// The customers: in the read model (the job's last sequence applied),
	// legacy codes as external ids, tags split, the neutralised cell read back.
	var got envelope
	if r := e.Do("GET", "/api/v1/crm/customers/by-external-id/OLD-07", nil); r.Status != http.StatusOK {
		t.Fatalf("by external id: %d %s", r.Status, r.Body)
	} else if r.JSON(t, &got); got.Data.Name != "Imported 07" || fmt.Sprint(got.Data.Tags) != "[vip north]" || *got.Data.Email != "imp07@example.com" {
		t.Errorf("imported customer: %+v", got.Data)
	}
	var found listBody
	e.Do("GET", "/api/v1/crm/customers/search?q=formula", nil).JSON(t, &found)
	if found.Meta.Total != 1 || found.Data[0].Name != "=Formula Name" || fmt.Sprint(found.Data[0].Tags) != "[a,b]" {
		var all listBody
		e.Do("GET", "/api/v1/crm/customers?perPage=100&sort=-customerCode", nil).JSON(t, &all)
		msgs := e.StreamMessages()
		t.Errorf("formula row: %+v; newest %+v; job %+v; stream last %d", found.Data, all.Data[0].CustomerCode, job, msgs[len(msgs)-1].Sequence)
	}
	e.Do("GET", "/api/v1/crm/customers/search?q=multi%20line", nil).JSON(t, &found)
	if found.Meta.Total != 1 || *found.Data[0].Notes != "a\nb" {
		t.Errorf("multi-line row: %+v", found.Data)
	}
	appended := len(e.StreamMessages()) - before
	if appended < 21 {
		t.Fatalf("appended %d messages", appended)
	}

	// The same file with the same key: the same job, nothing appended.
	status, again, _ := startImport(t, e, "text/csv", mapping, csvBody, "Idempotency-Key", "import-1")
	if status != http.StatusOK || again.ID != job.ID || len(e.StreamMessages())-before != appended {
		t.Fatalf("replayed import: %d %+v, appended %d more", status, again, len(e.StreamMessages())-before-appended)
	}
	var l listBody
	e.Do("GET", "/api/v1/crm/customers?perPage=1", nil).JSON(t, &l)
	if l.Meta.Total != 22 { // 21 imported and the holder
		t.Errorf("%d customers, want 22", l.Meta.Total)
	}
}

// TestImportRefusals: bad uploads are refused at once with the reason, and
// a dry run appends nothing.
func TestImportRefusals(t *testing.T) {
	e := apptest.StartEmbedded(t)
	before := len(e.StreamMessages())
	for _, tc := range []struct {
		name, ctype, query, body string
		status                   int
		field                    string
	}{
		{"unknown column", "text/csv", "", "name,shoeSize\nA,42\n", 400, "header"},
		{"mapped column missing", "text/csv", "?map=Nom:name", "name\nA\n", 400, "header"},
		{"no name column", "text/csv", "", "email\na@example.com\n", 400, "header"},
		{"duplicate column", "text/csv", "", "name,name\nA,B\n", 400, "header"},
		{"empty file", "text/csv", "", "", 400, "header"},
		{"bad mapping", "text/csv", "?map=A:shoeSize", "A\nx\n", 400, "map"},
		{"bad dryRun", "text/csv", "?dryRun=maybe", "name\nA\n", 400, "dryRun"},
		{"unknown parameter", "text/csv", "?foo=1", "name\nA\n", 400, "foo"},
		{"wrong media type", "application/json", "", `{"name":"A"}`, 415, ""},
	} {
		status, _, body := startImport(t, e, tc.ctype, tc.query, tc.body)
		if status != tc.status || (tc.field != "" && !strings.Contains(body, `"field":"`+tc.field+`"`)) {
			t.Errorf("%s: %d %s", tc.name, status, body)
		}
	}
	if r := e.Do("POST", "/api/v1/crm/imports", "name\nA\n", "Content-Type", "text/csv",
		"Authorization", "Bearer "+e.TokenFor("u-1", "user")); r.Status != http.StatusForbidden {
		t.Errorf("without crm.import: %d", r.Status)
	}
	status, job, _ := startImport(t, e, "text/csv", "?dryRun=true", "name,email\nA,a@example.com\nB,bad\n")
	if status != http.StatusAccepted {
		t.Fatalf("dry run: %d", status)
	}
	job = waitImport(t, e, job.ID, finished)
	if job.State != "done" || job.RowsCreated != 1 || job.RowsRejected != 1 || len(e.StreamMessages()) != before {
		t.Fatalf("dry run: %+v, appended %d", job, len(e.StreamMessages())-before)
	}
	// A file that stops being CSV fails with the line.
	status, job, _ = startImport(t, e, "text/csv", "", "name,notes\nA,\"unterminated\nB,x\n")
	if status != http.StatusAccepted {
		t.Fatalf("broken csv: %d", status)
	}
	if job = waitImport(t, e, job.ID, finished); job.State != "failed" || !strings.Contains(job.Error, "line 2") {
		t.Errorf("broken csv: %+v", job)
	}
	// NDJSON.
	status, job, _ = startImport(t, e, "application/x-ndjson", "", `{"name":"Nd One","tags":["x"],"address":{"city":"Zürich"}}`+"\n\n"+
		`{"name":"Nd Two","shoe":1}`+"\n"+`not json`+"\n"+`{"name":"Nd Three","customerId":"ignored"}`+"\n")
	if status != http.StatusAccepted {
		t.Fatalf("ndjson: %d", status)
	}
	job = waitImport(t, e, job.ID, finished)
	if job.State != "done" || job.RowsCreated != 2 || job.RowsRejected != 2 {
		t.Fatalf("ndjson: %+v", job)
	}
	var errs importErrorsBody
	e.Do("GET", "/api/v1/crm/imports/"+job.ID+"/errors", nil).JSON(t, &errs)
	if len(errs.Data) != 2 || errs.Data[0].Line != 3 || errs.Data[0].Errors[0].Field != "shoe" || errs.Data[1].Line != 4 {
		t.Errorf("ndjson errors: %+v", errs)
	}
	var list struct{ Data []importJob }
	e.Do("GET", "/api/v1/crm/imports", nil).JSON(t, &list)
	if len(list.Data) != 3 || list.Data[0].ID != job.ID {
		t.Errorf("list: %d jobs", len(list.Data))
	}
}

// TestImportResumesAfterRestart: a service stopped in the middle of an
// import resumes it when it starts again; every valid row becomes exactly
// one customer. A cancelled job stops, keeping what it created.
func TestImportResumesAfterRestart(t *testing.T) {
	cfg := apptest.Config(t, t.TempDir())
	e := apptest.Start(t, cfg)
	var b strings.Builder
	b.WriteString("name,email,externalId\n")
	const rows = 12000
	for i := range rows {
		fmt.Fprintf(&b, "Resume %05d,r%05d@example.com,R-%05d\n", i, i, i)
	}
	status, job, body := startImport(t, e, "text/csv", "", b.String())
	if status != http.StatusAccepted {
		t.Fatalf("start: %d %s", status, body)
	}
	job = waitImport(t, e, job.ID, func(j importJob) bool { return j.RowsRead > 0 || finished(j) })
	e.Stop()
	if job.State == "done" {
		t.Log("the import finished before the stop; the resume is not exercised this time")
	}
	e = apptest.Start(t, cfg)
	job = waitImport(t, e, job.ID, finished)
	if job.State != "done" || job.RowsCreated+job.RowsExisting != rows || job.RowsRejected != 0 {
		var errs importErrorsBody
		e.Do("GET", "/api/v1/crm/imports/"+job.ID+"/errors?perPage=2", nil).JSON(t, &errs)
		t.Fatalf("resumed job: %+v; rejected %+v", job, errs.Data)
	}
	apptest.Eventually(t, 30*time.Second, "read model", func() bool {
		var l listBody
		e.Do("GET", "/api/v1/crm/customers?perPage=1", nil).JSON(t, &l)
		return l.Meta.Total == rows
	})
	var l listBody
	e.Do("GET", "/api/v1/crm/customers?perPage=1", nil).JSON(t, &l)
	if l.Meta.Total != rows {
		t.Fatalf("%d customers after the resumed import, want %d", l.Meta.Total, rows)
	}
	// Cancel.
	status, job, _ = startImport(t, e, "text/csv", "?map=externalId:-", strings.Replace(b.String(), "Resume", "Cancel", -1))
	if status != http.StatusAccepted {
		t.Fatal(status)
	}
	r := e.Do("DELETE", "/api/v1/crm/imports/"+job.ID, nil)
	if r.Status != http.StatusOK && r.Status != http.StatusConflict {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	job = waitImport(t, e, job.ID, finished)
	if r.Status == http.StatusOK && (job.State != "cancelled" || job.RowsCreated == rows) {
		t.Errorf("cancelled job: %+v", job)
	}
	if r := e.Do("DELETE", "/api/v1/crm/imports/"+job.ID, nil); r.Status != http.StatusConflict {
		t.Errorf("cancel a finished job: %d", r.Status)
	}
	if r := e.Do("GET", "/api/v1/crm/imports/"+url.PathEscape("not-a-uuid"), nil); r.Status != http.StatusBadRequest {
		t.Errorf("bad id: %d", r.Status)
	}
}

// TestImportMultipart: a multipart upload with a JSON mapping part, then
// the file part; a missing file part or a bad mapping is a 400.
func TestImportMultipart(t *testing.T) {
	e := apptest.StartEmbedded(t)
	form := func(parts ...[3]string) (string, string) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		for _, p := range parts {
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p[0], p[1]))
			if p[1] == "" {
				h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q`, p[0]))
			}
			pw, _ := w.CreatePart(h)
			pw.Write([]byte(p[2]))
		}
		w.Close()
		return w.FormDataContentType(), b.String()
	}
	ctype, body := form([3]string{"mapping", "", `{"Nom":"name","Courriel":"email","Fax":"-"}`},
		[3]string{"file", "clients.csv", "Nom,Courriel,Fax\nÉlise Dupont,elise@example.com,123\n"})
	status, job, out := startImport(t, e, ctype, "", body)
	if status != http.StatusAccepted {
		t.Fatalf("multipart import: %d %s", status, out)
	}
	if job = waitImport(t, e, job.ID, finished); job.State != "done" || job.RowsCreated != 1 {
		t.Fatalf("multipart job: %+v", job)
	}
	var found listBody
	e.Do("GET", "/api/v1/crm/customers/search?q=elise", nil).JSON(t, &found)
	if found.Meta.Total != 1 || *found.Data[0].Email != "elise@example.com" {
		t.Errorf("imported: %+v", found.Data)
	}
	for name, parts := range map[string][][3]string{
		"mapping": {{"mapping", "", `{"Nom":"shoe"}`}, {"file", "a.csv", "Nom\nx\n"}},
		"file":    {{"mapping", "", `{"Nom":"name"}`}},
		"other":   {{"other", "", "x"}},
	} {
		ctype, body := form(parts...)
		if status, _, out := startImport(t, e, ctype, "", body); status != http.StatusBadRequest || !strings.Contains(out, `"field":"`+name+`"`) {
			t.Errorf("%s: %d %s", name, status, out)
		}
	}
	ctype, body = form([3]string{"mapping", "", `{"Nom":"name"}`}, [3]string{"file", "a.csv", "Nom\nx\n"})
	if status, _, out := startImport(t, e, ctype, "?map=Nom:name", body); status != http.StatusBadRequest || !strings.Contains(out, `"field":"map"`) {
		t.Errorf("two mappings: %d %s", status, out)
	}
}
