package imports

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseMapping(t *testing.T) {
	m, err := ParseMapping(" Full Name : name ,Fax:-,Old Code:externalId")
	if err != nil || m["Full Name"] != "name" || m["Fax"] != Skip || m["Old Code"] != "externalId" {
		t.Fatalf("ParseMapping: %v %v", m, err)
	}
	for _, bad := range []string{"A", "A:", ":name", "A:shoe", "A:name,A:email"} {
		if _, err := ParseMapping(bad); err == nil {
			t.Errorf("ParseMapping(%q) accepted", bad)
		}
	}
}

func TestCSVHeader(t *testing.T) {
	for header, want := range map[string]string{
		"name,shoe\n":         `column "shoe" is not a customer field`,
		"name,name\n":         "appears twice",
		"email\n":             `no column maps to "name"`,
		"name,,email\n":       "header column 2 is empty",
		"":                    "empty",
		"Name,email\n":        `column "Name" is not a customer field`, // exact names
		"name,email,Mail\n":   `column "Mail"`,
		"\"name\nx\",email\n": `column "name\nx"`,
	} {
		_, err := NewCSV(strings.NewReader(header), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("header %q: %v, want %q", header, err, want)
		}
	}
	if _, err := NewCSV(strings.NewReader("A,B\n"), map[string]string{"A": "name", "B": "name"}); err == nil {
		t.Error("two columns mapped to one field accepted")
	}
	if _, err := NewCSV(strings.NewReader("A\n"), map[string]string{"A": "name", "Z": "email"}); err == nil || !strings.Contains(err.Error(), `"Z"`) {
		t.Errorf("a mapped column the header lacks: %v", err)
	}
}

func TestCSVRows(t *testing.T) {
	body := "\xef\xbb\xbfname,tags,phone,customerCode,notes\n" +
		"Ann,\"[\"\"a,b\"\",\"\"c\"\"]\",'+1 555,C001,\n" +
		"Bob,x; y ,'plain,C002,\"two\nlines\"\n" +
		"Cy,,,C003\n" +
		"Dee,\"[broken\",,C004,\n"
	rd, err := NewCSV(strings.NewReader(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rd.Ignored(), []string{"customerCode"}) {
		t.Errorf("ignored %v", rd.Ignored())
	}
	rows := readAll(t, rd)
	if len(rows) != 4 {
		t.Fatalf("%d rows", len(rows))
	}
	if r := rows[0]; r.Line != 2 || !slices.Equal(r.Input.Tags.Value, []string{"a,b", "c"}) || r.Input.Phone.Value != "+1 555" {
		t.Errorf("row 1: %+v", r)
	}
	// Only the export's own escapes are undone: "'plain" stays as it is.
	if r := rows[1]; r.Line != 3 || !slices.Equal(r.Input.Tags.Value, []string{"x", "y"}) || r.Input.Phone.Value != "'plain" || r.Input.Notes.Value != "two\nlines" {
		t.Errorf("row 2: %+v", r)
	}
	if r := rows[2]; r.Line != 5 || len(r.Errors) == 0 || r.Errors[0].Field != "row" {
		t.Errorf("short row: %+v", r)
	}
	if r := rows[3]; r.Line != 6 || len(r.Errors) == 0 || r.Errors[0].Field != "tags" {
		t.Errorf("bad tags: %+v", r)
	}
	if rd.Offset() != int64(len(body)) {
		t.Errorf("offset %d of %d", rd.Offset(), len(body))
	}
}

func TestNDJSONRows(t *testing.T) {
	rd := NewNDJSON(strings.NewReader(`{"Nom":"Ann","address":{"city":"Bern","zip":"1"}}`+"\n"+`[1]`+"\n"+
		`{"name":"Bob","tags":"vip","version":3}`), map[string]string{"Nom": "name"})
	rows := readAll(t, rd)
	if len(rows) != 3 || rows[0].Input.Name.Value != "Ann" || rows[0].Input.Address.City.Value != "Bern" ||
		len(rows[0].Errors) != 1 || rows[0].Errors[0].Field != "address.zip" {
		t.Fatalf("row 1: %+v", rows)
	}
	if len(rows[1].Errors) != 1 || rows[1].Errors[0].Field != "row" || rows[1].Line != 2 {
		t.Errorf("row 2: %+v", rows[1])
	}
	if len(rows[2].Errors) != 1 || rows[2].Errors[0].Field != "tags" {
		t.Errorf("row 3 (tags not an array; version skipped): %+v", rows[2])
	}
}

// TestCSVRowTooLong: an unterminated quote stops the reading at the row
// limit instead of holding the rest of the file.
func TestCSVRowTooLong(t *testing.T) {
	body := io.MultiReader(strings.NewReader("name,notes\nA,ok\nB,\"never closed"), &endless{})
	rd, err := NewCSV(body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := rd.Next(); err != nil || r.Input.Name.Value != "A" {
		t.Fatalf("first row: %+v %v", r, err)
	}
	_, err = rd.Next()
	if !errors.Is(err, errRowTooLong) {
		t.Fatalf("an endless field: %v", err)
	}
}

// endless reads "x" forever (and fails the test past 4 MiB).
type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	if e.n > 4<<20 {
		return 0, errors.New("read past 4 MiB: the limit did not stop it")
	}
	for i := range p {
		p[i] = 'x'
	}
	e.n += len(p)
	return len(p), nil
}

// readAll reads every row of rd.
func readAll(t *testing.T, rd Reader) []Row {
	t.Helper()
	var rows []Row
	for {
		r, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return rows
		}
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
}
