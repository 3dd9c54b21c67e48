// Package dedupe derives the keys by which two customers are possibly the
// same person or company: a normalised email, a phone number in E.164, and
// the folded name with the folded company. The read models store and index
// them (so that writes can warn about duplicates and GET
// /customers/duplicates can list clusters); this package is pure.
//
// The rules (documented for clients in the OpenAPI description):
//
//   - email: lower case; a "+tag" at the end of the local part is dropped
//     (sub-addressing, which Gmail, Outlook, iCloud, Fastmail, Proton and
//     most others deliver to the same mailbox); for gmail.com and
//     googlemail.com, dots in the local part are dropped and the domain is
//     gmail.com. Jane.Doe+crm@GoogleMail.com and janedoe@gmail.com match.
//   - phone: parsed by libphonenumber's rules (github.com/nyaruka/phonenumbers)
//     and formatted in E.164: "+1 (555) 010-0123" and "+15550100123" match.
//     A number without a "+" country code is read in the country of the
//     customer's address when that is an ISO 3166 alpha-2 code ("GB": "020
//     7946 0958" is +442079460958), else it has no key. Numbers
//     libphonenumber finds impossible (too short or long) have no key.
//   - name + company: both set; each accent-folded, lower-cased and reduced
//     to its words (search.Tokens): "José Pérez" at "ACME Corp." matches
//     "jose perez" at "Acme corp".
package dedupe

import (
	"strings"

	"github.com/nyaruka/phonenumbers"

	"crm/internal/search"
)

// Match kinds: which key two customers share.
const (
	MatchEmail       = "email"
	MatchPhone       = "phone"
	MatchNameCompany = "name+company"
)

// Matches lists the match kinds in the order keys are checked and
// reported.
var Matches = []string{MatchEmail, MatchPhone, MatchNameCompany}

// Keys are a customer's duplicate keys; "" = none of that kind.
type Keys struct {
	Email, Phone, NameCompany string
}

// Of returns the keys of a customer with those fields (country: its
// address's).
func Of(name, email, phone, company, country string) Keys {
	return Keys{Email: Email(email), Phone: Phone(phone, country), NameCompany: NameCompany(name, company)}
}

// Get returns the key of a match kind.
func (k Keys) Get(match string) string {
	switch match {
	case MatchEmail:
		return k.Email
	case MatchPhone:
		return k.Phone
	case MatchNameCompany:
		return k.NameCompany
	}
	return ""
}

// Email returns the duplicate key of an email address ("" for none).
func Email(email string) string {
	e := strings.ToLower(strings.TrimSpace(email))
	local, domain, ok := strings.Cut(e, "@")
	if !ok || local == "" || domain == "" {
		return ""
	}
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	if domain == "gmail.com" || domain == "googlemail.com" {
		local, domain = strings.ReplaceAll(local, ".", ""), "gmail.com"
		if local == "" {
			return ""
		}
	}
	return local + "@" + domain
}

// Phone returns the E.164 form of a phone number ("" for none); country
// is the region a number without a country code is read in (an ISO 3166
// alpha-2 code, any case; anything else: none).
func Phone(phone, country string) string {
	phone = strings.TrimSpace(phone)
	if phone == "" {
		return ""
	}
	region := strings.ToUpper(strings.TrimSpace(country))
	if len(region) != 2 || !phonenumbers.GetSupportedRegions()[region] {
		region = ""
	}
	if region == "" && !strings.HasPrefix(phone, "+") {
		return ""
	}
	n, err := phonenumbers.Parse(phone, region)
	if err != nil || !phonenumbers.IsPossibleNumber(n) {
		return ""
	}
	return phonenumbers.Format(n, phonenumbers.E164)
}

// NameCompany returns the key of a name at a company ("" unless both have
// a word).
func NameCompany(name, company string) string {
	n, c := search.Tokens(name), search.Tokens(company)
	if len(n) == 0 || len(c) == 0 {
		return ""
	}
	return strings.Join(n, " ") + "|" + strings.Join(c, " ")
}
