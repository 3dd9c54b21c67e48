package dedupe

import "testing"

func TestEmail(t *testing.T) {
	for in, want := range map[string]string{
		"Jane.Doe+crm@GoogleMail.com": "janedoe@gmail.com",
		"janedoe@gmail.com":           "janedoe@gmail.com",
		"j.a.n.e.doe@gmail.com":       "janedoe@gmail.com",
		"Jane.Doe+x+y@Example.com":    "jane.doe@example.com",
		" jane.doe@example.com ":      "jane.doe@example.com",
		"+tag@example.com":            "+tag@example.com", // nothing before the +: kept
		"...@gmail.com":               "",
		"no-at-sign":                  "",
		"":                            "",
	} {
		if got := Email(in); got != want {
			t.Errorf("Email(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPhone(t *testing.T) {
	for _, tc := range []struct{ phone, country, want string }{
		{"+1 (201) 555-0123", "", "+12015550123"},
		{"+12015550123", "fr", "+12015550123"},
		{"+44 20 7946 0958", "", "+442079460958"},
		{"020 7946 0958", "GB", "+442079460958"},
		{"020 7946 0958", "gb", "+442079460958"},
		{"020 7946 0958", "United Kingdom", ""}, // not a region code
		{"020 7946 0958", "", ""},               // no country code, no region
		{"+1 2", "", ""},                        // impossible
		{"", "US", ""},
	} {
		if got := Phone(tc.phone, tc.country); got != tc.want {
			t.Errorf("Phone(%q, %q) = %q, want %q", tc.phone, tc.country, got, tc.want)
		}
	}
}

func TestNameCompany(t *testing.T) {
	if a, b := NameCompany("José Pérez", "ACME Corp."), NameCompany(" jose  perez", "Acme corp"); a == "" || a != b {
		t.Errorf("keys %q and %q", a, b)
	}
	if k := NameCompany("José Pérez", ""); k != "" {
		t.Errorf("without a company: %q", k)
	}
	if NameCompany("Ann", "Acme") == NameCompany("Ann Acme", "") || NameCompany("Ann", "B C") == NameCompany("Ann B", "C") {
		t.Error("the name/company boundary is lost")
	}
	k := Of("Ann", "Ann@x.io", "+44 20 7946 0958", "Acme", "")
	if k.Get(MatchEmail) != "ann@x.io" || k.Get(MatchPhone) != "+442079460958" || k.Get(MatchNameCompany) != "ann|acme" || k.Get("x") != "" {
		t.Errorf("Of = %+v", k)
	}
}
