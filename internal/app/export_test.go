package app_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"crm/internal/apptest"
	"crm/internal/customer"
	"crm/internal/events"
)

// TestExport: CSV and NDJSON of the list's filters and order, streamed,
// with the stream sequence they are at, neutralised formula cells and
// tags that survive; bad parameters are 400s.
func TestExport(t *testing.T) {
	e := apptest.StartEmbedded(t)
	for i := range 12 {
		create(t, e, fmt.Sprintf(`{"name":"Export %02d","status":%q,"tags":["a,b","t%d"],"phone":"+1 555 01%02d"}`, i, []string{"lead", "active"}[i%2], i, i))
	}
	evil := create(t, e, `{"name":"=HYPERLINK(\"http://x\")","notes":"'quoted","status":"active"}`)
	r := e.Do("GET", "/api/v1/crm/customers/export?format=csv&status=active&sort=name", nil)
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(r.Header.Get("Content-Disposition"), `filename="customers-`) {
		t.Fatalf("csv export: %d %v", r.Status, r.Header)
	}
	if seq, err := strconv.ParseUint(r.Header.Get("X-Stream-Sequence"), 10, 64); err != nil || seq == 0 || r.Header.Get("X-Changes-Cursor") == "" {
		t.Errorf("export headers: %v", r.Header)
	}
	rows, err := csv.NewReader(bytes.NewReader(r.Body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+7 || rows[0][0] != "customerId" || rows[0][14] != "tags" {
		t.Fatalf("csv: %d rows, header %v", len(rows), rows[0])
	}
	if rows[1][1] != evil.CustomerCode || rows[1][2] != `'=HYPERLINK("http://x")` || rows[1][13] != "''quoted" {
		t.Errorf("neutralised row: %v", rows[1])
	}
	var tags []string
	if err := json.Unmarshal([]byte(rows[2][14]), &tags); err != nil || tags[0] != "a,b" || rows[2][4] != "'+1 555 0101" {
		t.Errorf("row %v: tags %v %v", rows[2], tags, err)
	}
	for i := 3; i < len(rows); i++ {
		if rows[i-1][2] > rows[i][2] && rows[i-1][1] != evil.CustomerCode {
			t.Errorf("csv not sorted by name: %q before %q", rows[i-1][2], rows[i][2])
		}
	}

	r = e.Do("GET", "/api/v1/crm/customers/export?tag=t3", nil)
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("ndjson export: %d %v", r.Status, r.Header)
	}
	lines := strings.Split(strings.TrimSpace(string(r.Body)), "\n")
	var rec struct {
		Name    string
		Tags    []string
		Version int
	}
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &rec) != nil || rec.Name != "Export 03" || rec.Version != 1 {
		t.Fatalf("ndjson: %q", lines)
	}

	viewer, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "v", "exp": 4102444800,
		"permissions": []string{"crm.view"}}).SignedString([]byte(apptest.Secret))
	if r := e.Do("GET", "/api/v1/crm/customers/export?deleted=only", nil, "Authorization", "Bearer "+viewer); r.Status != http.StatusForbidden {
		t.Errorf("trash export without crm.delete: %d", r.Status)
	}
	for q, field := range map[string]string{"format=xlsx": "format", "page=2": "page", "perPage=5": "perPage",
		"status=gone": "status", "q=x": "q", "format=csv&format=csv": "format"} {
		r := e.Do("GET", "/api/v1/crm/customers/export?"+q, nil)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), `"field":"`+field+`"`) {
			t.Errorf("export?%s: %d %s", q, r.Status, r.Body)
		}
	}
}

// TestExportIsOneSnapshot: an export taken while customers are being
// changed holds each customer exactly as it was at the export's
// X-Stream-Sequence (the change feed folded up to that sequence).
func TestExportIsOneSnapshot(t *testing.T) {
	e := apptest.StartEmbedded(t)
	_, b := batch(t, e, `{"atomic":true,"operations":[`+strings.TrimSuffix(strings.Repeat(`{"op":"create","data":{"name":"Snap"}},`, 400), ",")+`]}`)
	var ids []string
	for _, r := range b.Data {
		ids = append(ids, r.CustomerID)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e.Do("PATCH", "/api/v1/crm/customers/"+ids[i%len(ids)], fmt.Sprintf(`{"notes":"n%d"}`, i))
		}
	})
	var exports []struct {
		seq  uint64
		body []byte
	}
	distinct := map[uint64]bool{}
	for i := 0; len(distinct) < 3; i++ { // exports at three points of the stream, at least
		if i == 200 {
			t.Fatal("the stream did not move between 200 exports")
		}
		r := e.Do("GET", "/api/v1/crm/customers/export", nil)
		seq, _ := strconv.ParseUint(r.Header.Get("X-Stream-Sequence"), 10, 64)
		distinct[seq] = true
		exports = append(exports, struct {
			seq  uint64
			body []byte
		}{seq, r.Body})
	}
	close(stop)
	wg.Wait()

	f := &feedCopy{events: map[string][]events.Event{}}
	f.sync(t, e, 1000)
	for _, x := range exports {
		want := map[string]customer.Customer{}
		for id, evs := range f.events {
			var upTo []events.Event
			for _, ev := range evs {
				if ev.Seq <= x.seq {
					upTo = append(upTo, ev)
				}
			}
			if st := customer.Fold(upTo); st.Exists() {
				want[id] = st
			}
		}
		got := 0
		sc := bufio.NewScanner(bytes.NewReader(x.body))
		for sc.Scan() {
			var rec struct {
				CustomerID string  `json:"customerId"`
				Notes      *string `json:"notes"`
				Version    uint64  `json:"version"`
			}
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatal(err)
			}
			got++
			st, ok := want[rec.CustomerID]
			if !ok || st.Version != rec.Version || (rec.Notes == nil) != (st.Notes == "") {
				t.Errorf("export at %d: %s at version %d, the stream says %d", x.seq, rec.CustomerID, rec.Version, st.Version)
			}
		}
		if got != len(want) {
			t.Errorf("export at %d: %d customers, want %d", x.seq, got, len(want))
		}
	}
}
