package customer

import (
	"net/mail"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"crm/internal/events"
	"crm/internal/fault"
)

// Field is one field of a command in JSON merge-patch terms (RFC 7396): not
// Set = absent (unchanged), Null = cleared, else Value.
type Field[T any] = events.Change[T]

// Input is the body of a create or an update, as the client sent it. A
// create treats absent and null optional fields alike (unset) and applies
// the defaults; an update merges it into the current state.
type Input struct {
	Name    Field[string]
	Email   Field[string]
	Phone   Field[string]
	Company Field[string]
	Address AddressInput
	Type    Field[string]
	Status  Field[string]
	Notes   Field[string]
	Tags    Field[[]string]
	// ExternalID is the customer's id in another system.
	ExternalID Field[string]
}

// AddressInput is the address of an Input: Set/Null for the object as a
// whole, and each sub-field merges on its own.
type AddressInput struct {
	Set, Null                                bool
	Street, City, State, Country, PostalCode Field[string]
}

// Limits, in Unicode characters after NFC normalisation and trimming.
const (
	MaxName       = 200
	MaxEmail      = 254
	MaxPhone      = 32
	MaxCompany    = 200
	MaxAddress    = 200
	MaxNotes      = 10000
	MaxTags       = 50
	MaxTagLength  = 50
	MaxExternalID = 100
	DefaultType   = TypeIndividual
	DefaultStatus = StatusLead
)

// normalize validates an input and returns it normalised: strings in NFC,
// trimmed; empty optional strings turned into null; tags trimmed and
// de-duplicated. Every invalid field is reported, not only the first.
func normalize(in Input) (Input, error) {
	var c Checker
	c.Text("name", &in.Name, MaxName, true, false)
	c.Email("email", &in.Email)
	c.Phone("phone", &in.Phone)
	c.Text("company", &in.Company, MaxCompany, false, false)
	c.Text("address.street", &in.Address.Street, MaxAddress, false, false)
	c.Text("address.city", &in.Address.City, MaxAddress, false, false)
	c.Text("address.state", &in.Address.State, MaxAddress, false, false)
	c.Text("address.country", &in.Address.Country, MaxAddress, false, false)
	c.Text("address.postalCode", &in.Address.PostalCode, MaxAddress, false, false)
	if c.Text("type", &in.Type, 0, true, false) && in.Type.Value != TypeIndividual && in.Type.Value != TypeBusiness {
		c.Fail("type", "must be one of individual, business")
	}
	if c.Text("status", &in.Status, 0, true, false) {
		switch in.Status.Value {
		case StatusLead, StatusProspect, StatusActive, StatusInactive:
		default:
			c.Fail("status", "must be one of lead, prospect, active, inactive")
		}
	}
	c.Text("notes", &in.Notes, MaxNotes, false, true)
	if c.Text("externalId", &in.ExternalID, MaxExternalID, false, false) {
		if msg := identifier(in.ExternalID.Value); msg != "" {
			c.Fail("externalId", msg)
		}
	}
	c.Tags("tags", &in.Tags)
	return in, c.Err()
}

// Checker validates and normalises the fields of an input (a customer's,
// or another aggregate's with the same kinds of fields), collecting every
// problem rather than stopping at the first. The zero Checker is ready.
type Checker struct {
	errs []fault.FieldError
}

// Fail records a problem of field.
func (c *Checker) Fail(field, msg string) {
	c.errs = append(c.errs, fault.FieldError{Field: field, Message: msg})
}

// Err returns a fault.Invalid error listing every problem, or nil.
func (c *Checker) Err() error {
	if len(c.errs) > 0 {
		return fault.InvalidFields(c.errs...)
	}
	return nil
}

// Text normalises one string field (NFC, trimmed, at most max characters,
// max 0 = no limit; control characters only where multiline allows new
// lines and tabs), turns an empty optional value into null, and reports
// whether it is now a value that field-specific checks still have to look
// at.
func (c *Checker) Text(name string, f *Field[string], max int, required, multiline bool) bool {
	if !f.Set {
		return false
	}
	if f.Null {
		if required {
			c.Fail(name, "must not be null")
		}
		return false
	}
	v, msg := cleanText(f.Value, max, multiline)
	if msg != "" {
		c.Fail(name, msg)
		return false
	}
	if v == "" {
		if required {
			c.Fail(name, "must not be empty")
			return false
		}
		*f = events.Cleared[string]()
		return false
	}
	f.Value = v
	return true
}

// Email is Text for an optional email address (at most MaxEmail).
func (c *Checker) Email(name string, f *Field[string]) {
	if c.Text(name, f, MaxEmail, false, false) {
		if msg := identifier(f.Value); msg != "" {
			c.Fail(name, msg)
		} else if !validEmail(f.Value) {
			c.Fail(name, "must be a valid email address")
		}
	}
}

// Phone is Text for an optional phone number (at most MaxPhone).
func (c *Checker) Phone(name string, f *Field[string]) {
	if c.Text(name, f, MaxPhone, false, false) && !validPhone(f.Value) {
		c.Fail(name, "may contain only digits, spaces and + - ( ) . and must contain a digit")
	}
}

// Tags normalises a list of tags: each trimmed, non-empty, at most
// MaxTagLength, without bidirectional controls; duplicates dropped; at most
// MaxTags.
func (c *Checker) Tags(name string, f *Field[[]string]) {
	if !f.Set || f.Null {
		return
	}
	seen := make(map[string]bool, len(f.Value))
	tags := make([]string, 0, len(f.Value))
	for i, t := range f.Value {
		v, msg := cleanText(t, MaxTagLength, false)
		if msg == "" && v == "" {
			msg = "must not be empty"
		}
		if msg == "" {
			msg = identifier(v)
		}
		if msg != "" {
			c.Fail(name+"["+strconv.Itoa(i)+"]", msg)
			continue
		}
		if !seen[v] {
			seen[v] = true
			tags = append(tags, v)
		}
	}
	if len(tags) > MaxTags {
		c.Fail(name, "at most "+strconv.Itoa(MaxTags)+" tags")
	}
	f.Value = tags
}

// cleanText normalises s to NFC, trims it and checks its length (max 0 = no
// limit here) and characters. It returns a message when s is invalid.
//
// Text that only looks like something is nothing: invisible characters
// (white space, format characters such as U+200B ZERO WIDTH SPACE and
// U+FEFF, fillers such as U+3164 and U+2800) are trimmed like spaces, and a
// value left with only those and combining marks is empty. Inside a
// value they are kept (a joiner in an emoji, a soft hyphen in a name).
func cleanText(s string, max int, multiline bool) (string, string) {
	if !utf8.ValidString(s) {
		return "", "must be valid UTF-8"
	}
	s = strings.TrimFunc(norm.NFC.String(s), blank)
	visible := false
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t' || r == '\r')) {
			return "", "must not contain control characters"
		}
		if !blank(r) && !unicode.Is(unicode.M, r) {
			visible = true
		}
	}
	if !visible {
		return "", ""
	}
	if max > 0 && utf8.RuneCountInString(s) > max {
		return "", "must be at most " + strconv.Itoa(max) + " characters"
	}
	return s, ""
}

// blank reports whether r shows nothing: white space, a format character
// (Unicode category Cf: zero-width spaces and joiners, the byte order mark,
// bidirectional controls, …) or one of the filler characters that render
// as empty space.
func blank(r rune) bool {
	switch r {
	case '\u115f', '\u1160', '\u3164', '\uffa0', '\u2800', '\u180e':
		return true
	}
	return unicode.IsSpace(r) || unicode.Is(unicode.Cf, r)
}

// bidiControl reports whether r changes the direction of the text around
// it (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069): in an email,
// an external id or a tag it only serves to make one value look like
// another.
func bidiControl(r rune) bool {
	return r == '\u061c' || r == '\u200e' || r == '\u200f' || r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069'
}

// identifier checks a value that identifies (an email, an external id, a
// tag): no bidirectional controls. It returns a message when s is invalid.
func identifier(s string) string {
	if strings.IndexFunc(s, bidiControl) >= 0 {
		return "must not contain bidirectional control characters"
	}
	return ""
}

func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return false
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(s, " \"<>") || strings.ContainsAny(domain, "[]") {
		return false
	}
	// A domain part with a dot and no empty labels ("a@b.c"); bare hosts
	// and IP literals are not customer addresses.
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") {
			return false
		}
	}
	return true
}

func validPhone(s string) bool {
	digit := false
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digit = true
		case r == ' ' || r == '+' || r == '-' || r == '(' || r == ')' || r == '.':
		default:
			return false
		}
	}
	return digit
}

// Validate checks an input (of a create when create is set) and returns a
// fault.Invalid error listing every invalid field, or nil.
func Validate(in Input, create bool) error {
	if create {
		return ValidateCreate(in)
	}
	_, err := normalize(in)
	return err
}

// ValidateCreate checks a create input without deciding anything, so that
// a caller can reject it before spending a customer code.
func ValidateCreate(in Input) error {
	_, err := normalizeCreate(in)
	return err
}

func normalizeCreate(in Input) (Input, error) {
	n, err := normalize(in)
	if in.Name.Set {
		return n, err
	}
	fields := append([]fault.FieldError{{Field: "name", Message: "is required"}}, fault.Fields(err)...)
	return n, fault.InvalidFields(fields...)
}

// EmailKey returns the form of an email address that identifies a customer
// for upserts (PUT /customers/by-email/{email}): NFC, trimmed, lower case,
// and whether it is a valid address. No provider-specific rules (dots,
// +tags) apply: those name other mailboxes in general.
func EmailKey(email string) (string, bool) {
	v, msg := cleanText(email, MaxEmail, false)
	if msg != "" || v == "" || identifier(v) != "" || !validEmail(v) {
		return "", false
	}
	return strings.ToLower(v), true
}

// ExternalIDKey returns an external id as customers hold it (NFC, trimmed;
// case and inner spaces kept: other systems' ids are compared exactly),
// and whether it is a valid one.
func ExternalIDKey(id string) (string, bool) {
	v, msg := cleanText(id, MaxExternalID, false)
	return v, msg == "" && v != "" && identifier(v) == ""
}
