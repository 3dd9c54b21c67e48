package webhooks

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"crm/internal/fault"
)

// Policy says which endpoints may be called.
type Policy struct {
	// AllowHTTP admits http:// URLs (development only).
	AllowHTTP bool
	// Allow lists networks that may be called although they are loopback,
	// private, link-local or otherwise internal (e.g. 127.0.0.1/32 for a
	// local receiver).
	Allow []netip.Prefix
}

// blocked are the networks a webhook never calls unless Allow lists them:
// what a server-side request forgery would aim at (the service's own
// host, the private network, cloud metadata endpoints) and what is not a
// unicast internet address.
var blocked = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
		"224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Allowed reports whether the policy lets a webhook connect to ip.
func (p Policy) Allowed(ip netip.Addr) bool {
	// A zone (fe80::1%eth0) would make every prefix test false: drop it.
	ip = ip.Unmap().WithZone("")
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return true
		}
	}
	for _, b := range blocked {
		if b.Contains(ip) {
			return false
		}
	}
	return ip.IsGlobalUnicast()
}

// errBlocked is a dial refused by the policy.
type errBlocked struct{ addr string }

func (e errBlocked) Error() string {
	return "address " + e.addr + " is internal (loopback, private, link-local or reserved); set WEBHOOK_ALLOW_NETS to call it"
}

// control is the dialer's check of every address it connects to, after
// name resolution: a name that resolves to an internal address (at
// creation or later, DNS rebinding) is refused at connect time.
func (p Policy) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("webhooks: dial %s: %w", address, err)
	}
	if !p.Allowed(ip) {
		return errBlocked{ip.String()}
	}
	return nil
}

// CheckTarget refuses a URL whose host is, or resolves to, an address the
// policy does not allow (fault.Invalid naming url). A name that does not
// resolve now is accepted: every connection is checked again.
func (p Policy) CheckTarget(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fault.InvalidField("url", "must be an absolute https URL")
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil
		}
		ips = addrs
	}
	for _, ip := range ips {
		if !p.Allowed(ip) {
			return fault.InvalidField("url", "resolves to "+ip.Unmap().String()+
				", an internal address (loopback, private, link-local or reserved): webhooks call only public endpoints unless WEBHOOK_ALLOW_NETS lists the network")
		}
	}
	return nil
}
