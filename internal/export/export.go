// Package export is the one file format of exported customers, shared by
// the API's streamed export and crmctl export: NDJSON records (the REST
// shape plus version) and CSV rows whose cells cannot run as spreadsheet
// formulas and whose tags survive any content.
package export

import (
	"encoding/json"
	"strconv"

	"crm/internal/readmodel"
)

// Record is a customer as exported: the REST API's shape plus version.
type Record struct {
	CustomerID   string   `json:"customerId"`
	CustomerCode string   `json:"customerCode"`
	Name         string   `json:"name"`
	Email        *string  `json:"email"`
	Phone        *string  `json:"phone"`
	Company      *string  `json:"company"`
	Address      *Address `json:"address"`
	Type         string   `json:"type"`
	Status       string   `json:"status"`
	Notes        *string  `json:"notes"`
	Tags         []string `json:"tags"`
	ExternalID   *string  `json:"externalId"`
	CreatedBy    string   `json:"createdBy"`
	CreatedAt    string   `json:"createdAt"`
	UpdatedAt    string   `json:"updatedAt"`
	Version      uint64   `json:"version"`
}

// Address is the exported address (unset sub-fields null).
type Address struct {
	Street     *string `json:"street"`
	City       *string `json:"city"`
	State      *string `json:"state"`
	Country    *string `json:"country"`
	PostalCode *string `json:"postalCode"`
}

// TimeFormat is RFC 3339 in UTC with milliseconds, as the REST API shows.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

func opt(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// RecordOf returns c's NDJSON record.
func RecordOf(c readmodel.Customer) Record {
	r := Record{
		CustomerID: c.ID, CustomerCode: c.Code, Name: c.Name, Email: opt(c.Email), Phone: opt(c.Phone),
		Company: opt(c.Company), Type: c.Type, Status: c.Status, Notes: opt(c.Notes), Tags: c.Tags,
		ExternalID: opt(c.ExternalID), CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt.UTC().Format(TimeFormat),
		UpdatedAt: c.UpdatedAt.UTC().Format(TimeFormat), Version: c.Version,
	}
	if r.Tags == nil {
		r.Tags = []string{}
	}
	if a := c.Address; a != (readmodel.Address{}) {
		r.Address = &Address{opt(a.Street), opt(a.City), opt(a.State), opt(a.Country), opt(a.PostalCode)}
	}
	return r
}

// CSVHeader is the header row of a CSV export.
var CSVHeader = []string{"customerId", "customerCode", "name", "email", "phone", "company", "street", "city", "state",
	"country", "postalCode", "type", "status", "notes", "tags", "externalId", "createdBy", "createdAt", "updatedAt", "version"}

// CSVRow is one customer's CSV record. Every text cell goes through Cell;
// tags are one cell holding a JSON array of strings (["a;b","c"]), so that
// any tag survives the round trip.
func CSVRow(c readmodel.Customer) []string {
	a := c.Address
	tags := c.Tags
	if tags == nil {
		tags = []string{}
	}
	js, _ := json.Marshal(tags) // strings only: cannot fail
	row := []string{c.ID, c.Code, c.Name, c.Email, c.Phone, c.Company, a.Street, a.City, a.State, a.Country, a.PostalCode,
		c.Type, c.Status, c.Notes, string(js), c.ExternalID, c.CreatedBy,
		c.CreatedAt.UTC().Format(TimeFormat), c.UpdatedAt.UTC().Format(TimeFormat), strconv.FormatUint(c.Version, 10)}
	for i, v := range row {
		row[i] = Cell(v)
	}
	return row
}

// Cell neutralises a cell a spreadsheet would run as a formula (OWASP "CSV
// Injection"): a value starting with = + - @, a tab or a carriage return
// gets a leading apostrophe, and so does a value that already starts with
// one, which makes the rule reversible (Uncell): an importer drops one
// leading apostrophe from every cell that has one. (A phone "+1 555 0100"
// is exported as "'+1 555 0100".)
func Cell(v string) string {
	if v == "" {
		return v
	}
	switch v[0] {
	case '=', '+', '-', '@', '\t', '\r', '\'':
		return "'" + v
	}
	return v
}

// Uncell reverses Cell.
func Uncell(v string) string {
	if len(v) > 0 && v[0] == '\'' {
		return v[1:]
	}
	return v
}
