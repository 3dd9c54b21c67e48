package imports

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"crm/internal/customer"
	"crm/internal/events"
	"crm/internal/export"
	"crm/internal/fault"
)

// Fields an import row may set (the customer's writable fields, the
// address flattened as in the CSV export).
var Fields = []string{"name", "email", "phone", "company", "type", "status", "notes", "tags", "externalId",
	"street", "city", "state", "country", "postalCode"}

// ignoredByDefault are the export's read-only columns: a re-imported export
// skips them (map one to a field to keep it, e.g. customerCode:externalId).
var ignoredByDefault = []string{"customerId", "customerCode", "createdBy", "createdAt", "updatedAt", "version"}

// Skip is the mapping target that drops a column.
const Skip = "-"

// MaxRowBytes bounds one row (a CSV record or an NDJSON line).
const MaxRowBytes = 1 << 20

// Row is one parsed row: its line (the first line of a CSV record, 1 =
// the header), the customer, or the field errors that reject it.
type Row struct {
	Line   int64
	Input  customer.Input
	Errors []fault.FieldError
}

// Reader reads the rows of an upload.
type Reader interface {
	// Next returns the next row, io.EOF at the end, or an error that
	// stops the whole import (unreadable file).
	Next() (Row, error)
	// Offset is the byte offset just after the last row returned.
	Offset() int64
	// Ignored lists the columns the mapping skips.
	Ignored() []string
}

// ParseMapping reads "Column:field,Other:field" (Skip as field drops the
// column).
func ParseMapping(s string) (map[string]string, error) {
	m := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	for _, pair := range strings.Split(s, ",") {
		col, field, ok := strings.Cut(pair, ":")
		col, field = strings.TrimSpace(col), strings.TrimSpace(field)
		switch {
		case !ok || col == "" || field == "":
			return nil, fmt.Errorf("%q is not Column:field", pair)
		case field != Skip && !slices.Contains(Fields, field):
			return nil, fmt.Errorf("%q: %s is not a customer field (%s, or - to skip)", pair, field, strings.Join(Fields, ", "))
		}
		if _, dup := m[col]; dup {
			return nil, fmt.Errorf("column %q is mapped twice", col)
		}
		m[col] = field
	}
	return m, nil
}

// CheckMapping checks a mapping given as an object (column → field).
func CheckMapping(m map[string]string) error {
	for col, field := range m {
		if strings.TrimSpace(col) == "" || field != Skip && !slices.Contains(Fields, field) {
			return fmt.Errorf("%q: %q is not a customer field (%s, or - to skip)", col, field, strings.Join(Fields, ", "))
		}
	}
	return nil
}

// csvReader reads CSV rows with a header.
type csvReader struct {
	lim     *rowLimiter
	r       *csv.Reader
	bom     int64
	fields  []string // per column: the field, or "" to skip
	ignored []string
}

// NewCSV reads CSV from body: its header row maps columns to fields (a
// column named as a field, or mapped in mapping; the export's read-only
// columns are skipped). A bad header is an error naming the problem.
func NewCSV(body io.Reader, mapping map[string]string) (Reader, error) {
	lim := &rowLimiter{r: body}
	br := bufio.NewReaderSize(lim, 64<<10)
	var bom int64
	if b, _ := br.Peek(3); bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
		bom = 3
	}
	r := csv.NewReader(br)
	r.ReuseRecord = true
	header, err := r.Read()
	switch {
	case errors.Is(err, io.EOF):
		return nil, errors.New("the file is empty: a header row is required")
	case err != nil:
		return nil, fmt.Errorf("the header row is not CSV: %v", err)
	}
	header = slices.Clone(header)
	fields, ignored, err := columns(header, mapping)
	if err != nil {
		return nil, err
	}
	r.FieldsPerRecord = len(header)
	c := &csvReader{r: r, bom: bom, fields: fields, ignored: ignored, lim: lim}
	lim.recordEnd = c.Offset()
	return c, nil
}

// rowLimiter stops a CSV whose record grows past MaxRowBytes (an
// unterminated quote would otherwise make encoding/csv hold the rest of
// the file as one field).
type rowLimiter struct {
	r         io.Reader
	read      int64 // bytes read from r
	recordEnd int64 // offset after the last whole record
}

// errRowTooLong is the error of a record over MaxRowBytes.
var errRowTooLong = fmt.Errorf("a row is longer than %d bytes (an unterminated quote?)", MaxRowBytes)

func (l *rowLimiter) Read(p []byte) (int, error) {
	if l.read-l.recordEnd > MaxRowBytes+128<<10 { // the readers' buffers read ahead
		return 0, errRowTooLong
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	return n, err
}

func columns(header []string, mapping map[string]string) ([]string, []string, error) {
	fields := make([]string, len(header))
	seenCol := map[string]bool{}
	seenField := map[string]string{}
	var ignored []string
	for i, col := range header {
		if !utf8.ValidString(col) {
			return nil, nil, fmt.Errorf("header column %d is not valid UTF-8", i+1)
		}
		col = strings.TrimSpace(col)
		if col == "" {
			return nil, nil, fmt.Errorf("header column %d is empty", i+1)
		}
		if seenCol[col] {
			return nil, nil, fmt.Errorf("header column %q appears twice", col)
		}
		seenCol[col] = true
		f, mapped := mapping[col]
		switch {
		case mapped:
		case slices.Contains(Fields, col):
			f = col
		case slices.Contains(ignoredByDefault, col):
			f = Skip
		default:
			return nil, nil, fmt.Errorf("column %q is not a customer field: map it (map=%s:name) or skip it (map=%s:-)", col, col, col)
		}
		if f == Skip {
			ignored = append(ignored, col)
			continue
		}
		if other, dup := seenField[f]; dup {
			return nil, nil, fmt.Errorf("columns %q and %q both map to %s", other, col, f)
		}
		seenField[f] = col
		fields[i] = f
	}
	for col := range mapping {
		if !seenCol[col] {
			return nil, nil, fmt.Errorf("the mapping names column %q, which the header does not have", col)
		}
	}
	if _, ok := seenField["name"]; !ok {
		return nil, nil, errors.New(`no column maps to "name", which every customer needs`)
	}
	return fields, ignored, nil
}

func (c *csvReader) Ignored() []string { return c.ignored }
func (c *csvReader) Offset() int64     { return c.bom + c.r.InputOffset() }

func (c *csvReader) Next() (Row, error) {
	for {
		rec, err := c.r.Read()
		line, _ := c.r.FieldPos(0)
		row := Row{Line: int64(line)}
		c.lim.recordEnd = c.Offset()
		if errors.Is(err, errRowTooLong) {
			return Row{}, fmt.Errorf("after line %d: %w", line, err)
		}
		if err != nil {
			var pe *csv.ParseError
			switch {
			case errors.Is(err, io.EOF):
				return Row{}, io.EOF
			case errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount):
				row.Line = int64(pe.StartLine)
				row.Errors = []fault.FieldError{{Field: "row", Message: fmt.Sprintf("has %d columns, the header %d", len(rec), len(c.fields))}}
				return row, nil
			case errors.As(err, &pe):
				return Row{}, fmt.Errorf("line %d: the file is not valid CSV (%v)", pe.StartLine, pe.Err)
			}
			return Row{}, err
		}
		cells := map[string]string{}
		for i, v := range rec {
			if f := c.fields[i]; f != "" {
				cells[f] = v
			}
		}
		row.Input, row.Errors = fromCells(cells)
		return row, nil
	}
}

// fromCells makes a customer of one row's cells: "" is unset; a cell the
// CSV export neutralised (a leading apostrophe before = + - @ tab CR or
// another apostrophe) is read back; tags are a JSON array or separated by
// ; or ,.
func fromCells(cells map[string]string) (customer.Input, []fault.FieldError) {
	var in customer.Input
	var errs []fault.FieldError
	str := func(f string) customer.Field[string] {
		v, ok := cells[f]
		if !ok || v == "" {
			return customer.Field[string]{}
		}
		if !utf8.ValidString(v) {
			errs = append(errs, fault.FieldError{Field: f, Message: "must be valid UTF-8 (save the file as UTF-8)"})
			return customer.Field[string]{}
		}
		if strings.ContainsRune(v, 0) {
			errs = append(errs, fault.FieldError{Field: f, Message: "must not contain NUL characters"})
			return customer.Field[string]{}
		}
		if len(v) > 1 && v[0] == '\'' && strings.ContainsRune("=+-@\t\r'", rune(v[1])) {
			v = export.Uncell(v)
		}
		return events.SetTo(v)
	}
	in.Name, in.Email, in.Phone, in.Company = str("name"), str("email"), str("phone"), str("company")
	in.Type, in.Status, in.Notes, in.ExternalID = str("type"), str("status"), str("notes"), str("externalId")
	a := customer.AddressInput{Street: str("street"), City: str("city"), State: str("state"), Country: str("country"),
		PostalCode: str("postalCode")}
	a.Set = a.Street.Set || a.City.Set || a.State.Set || a.Country.Set || a.PostalCode.Set
	in.Address = a
	if t := str("tags"); t.Set {
		tags, err := splitTags(t.Value)
		if err != nil {
			errs = append(errs, fault.FieldError{Field: "tags", Message: err.Error()})
		} else {
			in.Tags = events.SetTo(tags)
		}
	}
	return in, errs
}

func splitTags(v string) ([]string, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "[") {
		var tags []string
		if err := json.Unmarshal([]byte(v), &tags); err != nil {
			return nil, errors.New(`must be a JSON array of strings (["a","b"]) or tags separated by ; or ,`)
		}
		return tags, nil
	}
	var tags []string
	for _, t := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' }) {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags, nil
}

// ndjsonReader reads one JSON object per line.
type ndjsonReader struct {
	br      *bufio.Reader
	mapping map[string]string
	offset  int64
	line    int64
}

// NewNDJSON reads NDJSON rows from body. Keys map to fields as CSV
// columns do; blank lines are skipped.
func NewNDJSON(body io.Reader, mapping map[string]string) Reader {
	return &ndjsonReader{br: bufio.NewReaderSize(body, 64<<10), mapping: mapping}
}

func (n *ndjsonReader) Ignored() []string { return nil }
func (n *ndjsonReader) Offset() int64     { return n.offset }

func (n *ndjsonReader) Next() (Row, error) {
	for {
		raw, err := n.readLine()
		if err != nil {
			return Row{}, err
		}
		n.line++
		row := Row{Line: n.line}
		t := bytes.TrimSpace(raw)
		if len(t) == 0 {
			continue
		}
		if len(raw) > MaxRowBytes {
			row.Errors = []fault.FieldError{{Field: "row", Message: fmt.Sprintf("is longer than %d bytes", MaxRowBytes)}}
			return row, nil
		}
		var obj map[string]json.RawMessage
		if !utf8.Valid(t) {
			row.Errors = []fault.FieldError{{Field: "row", Message: "is not valid UTF-8"}}
			return row, nil
		}
		if err := json.Unmarshal(t, &obj); err != nil || obj == nil {
			row.Errors = []fault.FieldError{{Field: "row", Message: "is not a JSON object"}}
			return row, nil
		}
		cells := map[string]string{}
		var errs []fault.FieldError
		for k, v := range obj {
			f, mapped := n.mapping[k]
			switch {
			case mapped:
			case slices.Contains(Fields, k) || k == "address":
				f = k
			case slices.Contains(ignoredByDefault, k):
				f = Skip
			default:
				errs = append(errs, fault.FieldError{Field: k, Message: "is not a customer field (map it, or skip it with map=" + k + ":-)"})
				continue
			}
			if f == Skip || string(v) == "null" {
				continue
			}
			switch f {
			case "address":
				var a map[string]*string
				if json.Unmarshal(v, &a) != nil {
					errs = append(errs, fault.FieldError{Field: "address", Message: "must be an object of strings"})
					continue
				}
				for sub, s := range a {
					if !slices.Contains([]string{"street", "city", "state", "country", "postalCode"}, sub) {
						errs = append(errs, fault.FieldError{Field: "address." + sub, Message: "is not a known field"})
					} else if s != nil {
						cells[sub] = *s
					}
				}
			case "tags":
				var tags []string
				if json.Unmarshal(v, &tags) != nil {
					errs = append(errs, fault.FieldError{Field: "tags", Message: "must be an array of strings"})
					continue
				}
				js, _ := json.Marshal(tags)
				cells["tags"] = string(js)
			default:
				var s string
				if json.Unmarshal(v, &s) != nil {
					errs = append(errs, fault.FieldError{Field: f, Message: "must be a string"})
					continue
				}
				cells[f] = s
			}
		}
		row.Input, row.Errors = fromCells(cells)
		row.Errors = append(errs, row.Errors...)
		return row, nil
	}
}

// readLine reads one line (without its newline) and advances the offset;
// a line over MaxRowBytes is returned cut, consumed to its end.
func (n *ndjsonReader) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := n.br.ReadSlice('\n')
		n.offset += int64(len(chunk))
		if len(line) <= MaxRowBytes {
			line = append(line, chunk...)
		}
		switch {
		case err == nil:
			return bytes.TrimSuffix(line, []byte("\n")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return line, nil
		default:
			return nil, err
		}
	}
}
