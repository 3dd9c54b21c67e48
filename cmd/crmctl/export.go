package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"crm/internal/audit"
	"crm/internal/customer"
	"crm/internal/events"
)

// record is a customer as exported: the REST API's shape plus version and
// deleted (present only in exports "as of" a time before the deletion).
type record struct {
	CustomerID   string          `json:"customerId"`
	CustomerCode string          `json:"customerCode"`
	Name         string          `json:"name"`
	Email        *string         `json:"email"`
	Phone        *string         `json:"phone"`
	Company      *string         `json:"company"`
	Address      *events.Address `json:"address"`
	Type         string          `json:"type"`
	Status       string          `json:"status"`
	Notes        *string         `json:"notes"`
	Tags         []string        `json:"tags"`
	ExternalID   *string         `json:"externalId"`
	CreatedBy    string          `json:"createdBy"`
	CreatedAt    string          `json:"createdAt"`
	UpdatedAt    string          `json:"updatedAt"`
	Version      uint64          `json:"version"`
}

const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func exportRecord(c customer.Customer) record {
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	r := record{
		CustomerID: c.ID, CustomerCode: c.Code, Name: c.Name, Email: opt(c.Email), Phone: opt(c.Phone),
		Company: opt(c.Company), Type: c.Type, Status: c.Status, Notes: opt(c.Notes), Tags: c.Tags,
		ExternalID: opt(c.ExternalID), CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt.UTC().Format(timeFormat), UpdatedAt: c.UpdatedAt.UTC().Format(timeFormat),
		Version: c.Version,
	}
	if r.Tags == nil {
		r.Tags = []string{}
	}
	if !c.Address.IsZero() {
		a := c.Address
		r.Address = &events.Address{Street: a.Street, City: a.City, State: a.State, Country: a.Country, PostalCode: a.PostalCode}
	}
	return r
}

var csvHeader = []string{"customerId", "customerCode", "name", "email", "phone", "company", "street", "city", "state",
	"country", "postalCode", "type", "status", "notes", "tags", "externalId", "createdBy", "createdAt", "updatedAt", "version"}

// csvRow is one customer's CSV record. Every text cell goes through
// csvCell; tags are one cell holding a JSON array of strings (["a;b","c"]),
// so that any tag survives the round trip.
func csvRow(c customer.Customer) []string {
	a := c.Address
	tags := c.Tags
	if tags == nil {
		tags = []string{}
	}
	js, _ := json.Marshal(tags) // strings only: cannot fail
	row := []string{c.ID, c.Code, c.Name, c.Email, c.Phone, c.Company, a.Street, a.City, a.State, a.Country, a.PostalCode,
		c.Type, c.Status, c.Notes, string(js), c.ExternalID, c.CreatedBy,
		c.CreatedAt.UTC().Format(timeFormat), c.UpdatedAt.UTC().Format(timeFormat), strconv.FormatUint(c.Version, 10)}
	for i, v := range row {
		row[i] = csvCell(v)
	}
	return row
}

// csvCell neutralises a cell a spreadsheet would run as a formula (OWASP
// "CSV Injection"): a value starting with = + - @, a tab or a carriage
// return gets a leading apostrophe, and so does a value that already starts
// with one, which makes the rule reversible: an importer drops one leading
// apostrophe from every cell that has one. (A phone "+1 555 0100" is
// exported as "'+1 555 0100".)
func csvCell(v string) string {
	if v == "" {
		return v
	}
	switch v[0] {
	case '=', '+', '-', '@', '\t', '\r', '\'':
		return "'" + v
	}
	return v
}

func runExport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	nf := addNATSFlags(fs, getenv)
	format := fs.String("format", "ndjson", "ndjson or csv")
	asOf := fs.String("as-of", "", "export the state as of this RFC 3339 time (default now)")
	raw := fs.Bool("events", false, "export the raw CloudEvents (ndjson) instead of customers")
	if ok, err := parseFlags(fs, args, stderr, "Usage: crmctl export [--format ndjson|csv] [--as-of TIME] [--events] [--nats URL]\n\nExports the live customers (folded from the stream, the source of truth), or the raw events,\nto stdout, streaming; a progress bar is drawn on a terminal.\n\n"); !ok || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("export: unexpected argument %q", fs.Arg(0))
	}
	if *format != "ndjson" && *format != "csv" {
		return errors.New("export: --format must be ndjson or csv")
	}
	if *raw && *format != "ndjson" {
		return errors.New("export: --events writes ndjson only")
	}
	var at time.Time
	if *asOf != "" {
		t, err := audit.ParseAsOf(*asOf)
		if err != nil {
			return fmt.Errorf("export: --as-of must be an RFC 3339 time: %w", err)
		}
		at = t
	}
	c, err := nf.connect(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	out := bufio.NewWriterSize(stdout, 1<<16)
	defer out.Flush()
	progress, done := progressBar("export")
	defer done()

	if *raw {
		_, err := c.replay(ctx, "", func(ev events.Event) error {
			if !at.IsZero() && ev.Time.After(at) {
				return nil
			}
			b, err := events.Encode(ev)
			if err != nil {
				return err
			}
			out.Write(b)
			return out.WriteByte('\n')
		}, progress)
		return err
	}
	states, order, _, err := c.foldAll(ctx, at, progress)
	if err != nil {
		return err
	}
	var cw *csv.Writer
	enc := json.NewEncoder(out)
	if *format == "csv" {
		cw = csv.NewWriter(out)
		if err := cw.Write(csvHeader); err != nil {
			return err
		}
	}
	for _, id := range order {
		st := states[id]
		if !st.Exists() {
			continue
		}
		if cw != nil {
			err = cw.Write(csvRow(st))
		} else {
			err = enc.Encode(exportRecord(st))
		}
		if err != nil {
			return err
		}
	}
	if cw != nil {
		cw.Flush()
		return cw.Error()
	}
	return nil
}
