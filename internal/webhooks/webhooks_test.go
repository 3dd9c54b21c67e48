package webhooks

import (
	"errors"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"crm/internal/events"
	"crm/internal/fault"
)

// The signatures verify with the Standard Webhooks reference library, with
// either secret of a rotation, and not for a changed body or id.
func TestSignatureVerifiesWithTheReferenceLibrary(t *testing.T) {
	oldS, newS := NewSecret(), NewSecret()
	if !strings.HasPrefix(oldS, "whsec_") || oldS == newS {
		t.Fatalf("secrets %q %q", oldS, newS)
	}
	body := []byte(`{"specversion":"1.0","id":"e1","type":"com.a64core.crm.customer.created.v1"}`)
	now := time.Now()
	headers := func(id string, sig string) http.Header {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(HeaderSignature, sig)
		return h
	}
	sig := SignatureHeader([]string{newS, oldS}, "e1", now, body)
	if n := len(strings.Fields(sig)); n != 2 {
		t.Fatalf("%d signatures in %q", n, sig)
	}
	for _, s := range []string{oldS, newS} {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, headers("e1", sig)); err != nil {
			t.Errorf("verify with a signing secret: %v", err)
		}
		if err := wh.Verify(append(body, ' '), headers("e1", sig)); err == nil {
			t.Error("a changed body verifies")
		}
		if err := wh.Verify(body, headers("e2", sig)); err == nil {
			t.Error("another id verifies")
		}
	}
	wh, _ := standardwebhooks.NewWebhook(NewSecret())
	if err := wh.Verify(body, headers("e1", sig)); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("a stranger's secret: %v", err)
	}
	// The library's own signature is ours, byte for byte.
	ref, _ := standardwebhooks.NewWebhook(newS)
	want, _ := ref.Sign("e1", now, body)
	if got := SignatureHeader([]string{newS}, "e1", now, body); got != want {
		t.Errorf("signature %q, reference %q", got, want)
	}
}

func TestPolicyAllowed(t *testing.T) {
	p := Policy{}
	allowLoopback := Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	for _, c := range []struct {
		ip       string
		p        Policy
		want     bool
		whatItIs string
	}{
		{"93.184.216.34", p, true, "public v4"},
		{"2606:2800:220:1:248:1893:25c8:1946", p, true, "public v6"},
		{"127.0.0.1", p, false, "loopback"},
		{"127.0.0.1", allowLoopback, true, "allowed loopback"},
		{"127.0.0.2", allowLoopback, false, "loopback outside the allowed /32"},
		{"::1", allowLoopback, false, "v6 loopback"},
		{"::ffff:127.0.0.1", p, false, "v4-mapped loopback"},
		{"::ffff:127.0.0.1", allowLoopback, true, "v4-mapped allowed loopback"},
		{"10.1.2.3", p, false, "private"},
		{"172.16.0.1", p, false, "private"},
		{"192.168.1.1", p, false, "private"},
		{"100.64.0.1", p, false, "carrier-grade NAT"},
		{"169.254.169.254", p, false, "cloud metadata"},
		{"fd00:ec2::254", p, false, "v6 metadata (unique local)"},
		{"fe80::1", p, false, "link-local"},
		{"0.0.0.0", p, false, "unspecified"},
		{"::", p, false, "v6 unspecified"},
		{"224.0.0.1", p, false, "multicast"},
		{"255.255.255.255", p, false, "broadcast"},
		{"64:ff9b::a00:1", p, false, "NAT64 of a private address"},
		{"198.18.0.1", p, false, "benchmarking"},
		{"::%eth0", p, false, "unspecified with a zone (loopback on Linux)"},
		{"fd00:ec2::254%eth0", p, false, "metadata with a zone"},
		{"fe80::1%eth0", p, false, "link-local with a zone"},
		{"127.0.0.1", Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, true, "allowed"},
	} {
		if got := c.p.Allowed(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("%s (%s): allowed %v, want %v", c.ip, c.whatItIs, got, c.want)
		}
	}
	if err := p.control("tcp4", "127.0.0.1:80", nil); err == nil {
		t.Error("the dialer connects to loopback")
	}
	if err := p.control("tcp4", "93.184.216.34:443", nil); err != nil {
		t.Errorf("the dialer refuses a public address: %v", err)
	}
}

func TestMatchPattern(t *testing.T) {
	for _, c := range []struct {
		p, t string
		want bool
	}{
		{"com.a64core.crm.customer.created.v1", "com.a64core.crm.customer.created.v1", true},
		{"com.a64core.crm.customer.created.v1", "com.a64core.crm.customer.created.v2", false},
		{"*.customer.deleted.*", "com.a64core.crm.customer.deleted.v1", true},
		{"*.customer.deleted.*", "com.a64core.crm.customer.created.v1", false},
		{"*", "anything", true},
		{"com.a64core.crm.customer.*", "com.a64core.crm.customer.merged.v1", true},
		{"*merge*", "com.a64core.crm.customer.mergeundone.v1", true},
		{"*.v1", "com.a64core.crm.customer.created.v1", true},
		{"*.v1", "com.a64core.crm.customer.created.v10", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "acb", false},
	} {
		if got := matchPattern(c.p, c.t); got != c.want {
			t.Errorf("match(%q, %q) = %v", c.p, c.t, got)
		}
	}
}

func TestFilterSubjects(t *testing.T) {
	const id = "6f1c2a7e-4b3d-4c2e-9a1f-0e5d8b7c6a41"
	for _, c := range []struct {
		s    Subscription
		want []string
	}{
		// No types: the customers' events (as before contacts existed).
		{Subscription{}, []string{events.SubjectAll}},
		// A pattern reaches a contact's or an activity's events only when
		// it names the aggregate: "*" and "*.deleted.*" keep meaning the
		// customers' (what they meant before those events existed).
		{Subscription{Types: []string{"*"}}, []string{"crm.customers.>"}},
		{Subscription{Types: []string{"*", "*.contact.*", "*.activity.*"}}, []string{"crm.customers.>", "crm.contacts.>", "crm.activities.>"}},
		{Subscription{Types: []string{"*.contact.*"}}, []string{"crm.contacts.>"}},
		{Subscription{Types: []string{"*.deleted.*"}}, []string{"crm.customers.*.deleted"}},
		{Subscription{Types: []string{"*.deleted.*", "*.activity.deleted.*"}}, []string{"crm.customers.*.deleted", "crm.activities.*.deleted"}},
		{Subscription{Types: []string{events.TypeActivityCreatedV1, "*.customer.contact*"}},
			[]string{"crm.customers.*.contactlinked", "crm.customers.*.contactunlinked", "crm.activities.*.created"}},
		{Subscription{CustomerID: id}, []string{events.CustomerSubjects(id)}},
		{Subscription{CustomerID: id, Types: []string{"*"}}, []string{events.CustomerSubjects(id)}},
		{Subscription{CustomerID: id, Types: []string{"*.contact.*"}}, nil},
		{Subscription{Types: []string{"*.customer.deleted.*"}}, []string{events.KindSubjects(events.KindDeleted)}},
		{Subscription{Types: []string{events.TypeCreatedV1, events.TypeDeletedV1}, CustomerID: id},
			[]string{events.Subject(id, events.KindCreated), events.Subject(id, events.KindDeleted)}},
	} {
		if got := c.s.FilterSubjects(); !slices.Equal(got, c.want) {
			t.Errorf("%+v: %v, want %v", c.s, got, c.want)
		}
	}
}

// TestMatchesOlderVersions: a subscription takes an event stored in an
// older version of its type as it takes the current one.
func TestMatchesOlderVersions(t *testing.T) {
	for _, d := range events.Definitions() {
		for old := range d.Upcasters {
			all, one := Subscription{}, Subscription{CustomerID: "6f1c2a7e-4b3d-4c2e-9a1f-0e5d8b7c6a41"}
			wantCustomer := d.Aggregate == events.Customers
			if all.Matches(old) != wantCustomer || one.Matches(old) != wantCustomer || all.Matches(d.Type) != wantCustomer {
				t.Errorf("%s (older %s of %s): matched %v/%v, want %v", d.Type, old, d.Aggregate, all.Matches(old), one.Matches(old), wantCustomer)
			}
		}
	}
	if !(Subscription{Types: []string{"*.contact.*"}}).Matches(events.TypeContactDeletedV1) ||
		(Subscription{Types: []string{"*"}}).Matches(events.TypeContactDeletedV1) ||
		!(Subscription{Types: []string{"com.a64core.crm.activity.created.v1"}}).Matches(events.TypeActivityCreatedV1) {
		t.Error("patterns of contact and activity types")
	}
}

func TestApplyNamesEveryBadField(t *testing.T) {
	u, ok, zero, big := "ftp://x", "https://hooks.example.com/crm", 0, 65
	types := []string{"com.example.none", "ok*", "bad type"}
	cust := "not-a-uuid"
	_, err := apply(Subscription{}, Input{URL: &u, Types: &types, CustomerID: &cust, Concurrency: &zero}, true, false)
	var fields []string
	for _, f := range fault.Fields(err) {
		fields = append(fields, f.Field)
	}
	want := []string{"url", "types[0]", "types[1]", "types[2]", "customerId", "concurrency"}
	if !slices.Equal(fields, want) {
		t.Errorf("fields %v, want %v (%v)", fields, want, err)
	}
	if _, err := apply(Subscription{}, Input{Concurrency: &big}, true, false); len(fault.Fields(err)) != 2 {
		t.Errorf("no url and concurrency 65: %v", err)
	}
	for _, c := range []struct {
		url       string
		allowHTTP bool
		ok        bool
	}{
		{"https://hooks.example.com/crm?x=1", false, true},
		{"http://hooks.example.com/crm", false, false},
		{"http://hooks.example.com/crm", true, true},
		{"https://u:p@hooks.example.com/", false, false},
		{"https://hooks.example.com/#frag", false, false},
		{"https://hooks.example.com:0/", false, false},
		{"https://hooks.example.com:443/", false, true},
		{"https://[fe80::1%25eth0]/", false, false},
		{"https:hooks", false, false},
		{"hooks.example.com", false, false},
		{"https://" + strings.Repeat("a", 2050), false, false},
	} {
		if msg := checkURLSyntax(c.url, c.allowHTTP); (msg == "") != c.ok {
			t.Errorf("%q (allow http %v): %q", c.url, c.allowHTTP, msg)
		}
	}
	// One customer's subscription gets customer events only: types that
	// match none are refused.
	id, contactsOnly := "6f1c2a7e-4b3d-4c2e-9a1f-0e5d8b7c6a41", []string{"*.contact.*"}
	if _, err := apply(Subscription{}, Input{URL: &ok, CustomerID: &id, Types: &contactsOnly}, true, false); len(fault.Fields(err)) != 1 || fault.Fields(err)[0].Field != "types" {
		t.Errorf("customerId with contact types only: %v", err)
	}
	// Enabling clears the reason the service disabled it for.
	now := time.Now()
	on := true
	s, err := apply(Subscription{URL: "https://x.example", DisabledReason: "410", DisabledAt: &now}, Input{Enabled: &on}, false, false)
	if err != nil || !s.Enabled || s.DisabledReason != "" || s.DisabledAt != nil {
		t.Errorf("enable: %+v %v", s, err)
	}
}

func TestScheduleAndRetryAfter(t *testing.T) {
	s := Schedule{Min: time.Second, Max: 10 * time.Minute}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 30: 10 * time.Minute} {
		lo, hi := s.Delay(n, 0), s.Delay(n, 0.999999)
		if lo != want/2 || hi > want || hi < want*99/100 {
			t.Errorf("attempt %d: delays %v..%v, want %v..%v", n, lo, hi, want/2, want)
		}
	}
	// 24 hours of retries is about 150 attempts.
	var total time.Duration
	n := 0
	for total < 24*time.Hour {
		n++
		total += s.Delay(n, 0.5)
	}
	if n < 100 || n > 250 {
		t.Errorf("%d attempts in 24 h", n)
	}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"3": 3 * time.Second, "0": 0, "Wed, 02 Dec 2026 10:00:30 GMT": 30 * time.Second,
		"999999999": 24 * time.Hour, "Wed, 02 Dec 2026 09:00:00 GMT": 0,
	} {
		h := http.Header{"Retry-After": {v}}
		if got, ok := retryAfter(h, now); !ok || got != want {
			t.Errorf("Retry-After %q: %v %v, want %v", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "soon", "-1"} {
		if _, ok := retryAfter(http.Header{"Retry-After": {v}}, now); ok {
			t.Errorf("Retry-After %q accepted", v)
		}
	}
}

func TestSigningKeysDropExpired(t *testing.T) {
	now := time.Now()
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	s := Subscription{Secrets: []Secret{{Key: "new"}, {Key: "grace", ExpiresAt: &future}, {Key: "old", ExpiresAt: &past}}}
	if got := s.signingKeys(now); !slices.Equal(got, []string{"new", "grace"}) {
		t.Errorf("signing keys %v", got)
	}
}
