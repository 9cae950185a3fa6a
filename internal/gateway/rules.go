package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Rule is one --allow-domain or --deny-domain entry.
//
// A rule is one of:
//
//   - a name, "example.com": that name only;
//   - a wildcard, "*.example.org": any name strictly below example.org, such
//     as a.example.org and a.b.example.org, but not example.org itself;
//   - an IP address, "127.0.0.1", "::1", "[::1]": that address only;
//   - a CIDR, "10.0.0.0/8", "2001:db8::/32", "[2001:db8::/32]": the addresses
//     in it.
//
// Any of them may end in a port, "example.com:8443", "*.example.org:443",
// "127.0.0.1:8080", "10.0.0.0/8:5432", "[::1]:8080"; an IPv6 address or CIDR
// with a port needs brackets. Without a port a rule matches any port.
//
// Names go through ParseHost, so "EXAMPLE.com." and Unicode forms work. An IP
// rule takes any IPv4 spelling ParseHost takes, and a CIDR takes only the
// plain one ("10/8" is refused, not read as 0.0.0.10/8). A CIDR with host bits
// set is masked ("10.1.2.3/8" is 10.0.0.0/8) and an IPv4-mapped IPv6 prefix
// of /96 or longer becomes IPv4. IPv6 prefixes never match IPv4 addresses.
// Name rules never match IP addresses, nor IP rules names.
type Rule struct {
	Text string // as the user wrote it
	Port uint16 // 0: any

	name   string       // canonical name, or the suffix of a wildcard
	wild   bool         // the rule is *.name
	prefix netip.Prefix // valid for an IP or CIDR rule; an IP is a full-length prefix
}

// ParseRule parses one --allow-domain or --deny-domain value.
//
// It refuses wildcards that would match too much: "*", "*.*", a wildcard over
// a single label ("*.com", "*.localhost", "*.internal") or over an ICANN
// public suffix ("*.co.uk"). Wildcards over privately run suffixes of the
// public suffix list, such as "*.github.io", are accepted. A '*' anywhere but
// as the whole first label, a scheme, a path, user info or a port outside
// 1 to 65535 is an error.
func ParseRule(s string) (Rule, error) {
	r, err := parseRule(s)
	if err != nil {
		return Rule{}, fmt.Errorf("invalid rule %q: %w", clip(s), err)
	}
	return r, nil
}

func parseRule(s string) (Rule, error) {
	r := Rule{Text: s}
	switch {
	case s == "":
		return Rule{}, errors.New("empty")
	case strings.Contains(s, "://"):
		return Rule{}, errors.New("a rule is a host, not a URL")
	case strings.IndexByte(s, '@') >= 0:
		return Rule{}, errors.New("user info is not allowed")
	}
	host, port, bracketed, err := splitRule(s)
	if err != nil {
		return Rule{}, err
	}
	if port != "" {
		if r.Port, err = parsePort(port); err != nil {
			return Rule{}, err
		}
	}
	switch {
	case strings.IndexByte(host, '/') >= 0:
		r.prefix, err = parseCIDR(host, bracketed)
	case strings.IndexByte(host, '*') >= 0:
		r.name, err = parseWildcard(host)
		r.wild = true
	default:
		if bracketed {
			host = "[" + host + "]"
		}
		var d Dest
		d, err = ParseHost(host)
		if d.IsAddr() {
			r.prefix = netip.PrefixFrom(d.Addr, d.Addr.BitLen())
		}
		r.name = d.Name
	}
	if err != nil {
		return Rule{}, err
	}
	return r, nil
}

// splitRule splits off the port. A bare IPv6 address or CIDR (two colons or
// more) has none.
func splitRule(s string) (host, port string, bracketed bool, err error) {
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", false, errors.New("missing ']'")
		}
		host, rest := s[1:end], s[end+1:]
		if rest == "" {
			return host, "", true, nil
		}
		port, ok := strings.CutPrefix(rest, ":")
		if !ok || port == "" {
			return "", "", false, errors.New("text after ']' is not a port")
		}
		return host, port, true, nil
	}
	switch strings.Count(s, ":") {
	case 0:
		return s, "", false, nil
	case 1:
		host, port, _ := strings.Cut(s, ":")
		if port == "" {
			return "", "", false, errors.New("empty port")
		}
		return host, port, false, nil
	}
	return s, "", false, nil
}

func parseCIDR(s string, bracketed bool) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		addr, _, _ := strings.Cut(s, "/")
		d, err := ParseHost(addr)
		switch {
		case err == nil && !d.IsAddr():
			return netip.Prefix{}, errors.New("a rule is a host, not a URL: paths are not allowed")
		case err == nil:
			if _, err := netip.ParseAddr(addr); err != nil {
				return netip.Prefix{}, fmt.Errorf("write the address of CIDR %q in full, as in 10.0.0.0/8", s)
			}
		}
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
	}
	if bracketed && !p.Addr().Is6() {
		return netip.Prefix{}, errors.New("brackets are for IPv6 only")
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// parseWildcard returns the suffix of "*.suffix".
func parseWildcard(s string) (string, error) {
	suffix, ok := strings.CutPrefix(s, "*.")
	if !ok || suffix == "" || strings.IndexByte(suffix, '*') >= 0 {
		return "", errors.New("a wildcard must be the whole first label, as in *.example.com")
	}
	d, err := ParseHost(suffix)
	if err != nil {
		return "", err
	}
	if d.IsAddr() {
		return "", errors.New("a wildcard needs a domain name, not an address")
	}
	if !strings.Contains(d.Name, ".") {
		return "", fmt.Errorf("*.%s would match a whole top-level domain", d.Name)
	}
	if ps, icann := publicsuffix.PublicSuffix(d.Name); icann && ps == d.Name {
		return "", fmt.Errorf("%s is a public suffix: *.%s would match names anyone can register", d.Name, d.Name)
	}
	return d.Name, nil
}

// IsAddr reports whether r is an IP address or CIDR rule.
func (r Rule) IsAddr() bool { return r.prefix.IsValid() }

// Name is a name rule's canonical name, "*."-prefixed for a wildcard; ""
// for an IP or CIDR rule.
func (r Rule) Name() string {
	if r.wild {
		return "*." + r.name
	}
	return r.name
}

// Prefix is an IP or CIDR rule's addresses; not valid for a name rule.
func (r Rule) Prefix() netip.Prefix { return r.prefix }

func (r Rule) portOK(port uint16) bool { return r.Port == 0 || r.Port == port }

// MatchName reports whether r matches name on port. The name must be
// canonical, as in a Dest from ParseHost; any other string matches nothing.
func (r Rule) MatchName(name string, port uint16) bool {
	if r.name == "" || !r.portOK(port) || !isName(name) {
		return false
	}
	if r.wild {
		n := len(name) - len(r.name)
		return n > 1 && name[n-1] == '.' && name[n:] == r.name
	}
	return name == r.name
}

// MatchAddr reports whether r matches address a on port. Only IP and CIDR
// rules ever match an address. A is unmapped and its zone ignored.
func (r Rule) MatchAddr(a netip.Addr, port uint16) bool {
	return r.prefix.IsValid() && r.portOK(port) && r.prefix.Contains(a.Unmap().WithZone(""))
}

// opens reports whether allow rule r, which matches a, lifts the guard on a,
// a forbidden address in range within. The rule must lie inside that range:
// 127.0.0.1 and 10.0.0.0/8 name their addresses, but 0.0.0.0/0 names no
// loopback address and 169.254.0.0/16 no metadata address.
func (r Rule) opens(within netip.Prefix) bool {
	return within.IsValid() && r.prefix.Bits() >= within.Bits()
}

// Rules is the destination policy: the --allow-domain and --deny-domain rules.
// The zero Rules denies everything.
type Rules struct{ Allow, Deny []Rule }

// Verdict is a decision and the reason for it.
type Verdict struct {
	Allowed bool
	Rule    string // Text of the rule that decided; "" when none did (default deny, the guard, a public resolved address)
	Reason  string // short, for the user: "denied by --deny-domain ads.example.com"
}

// CheckName decides on a destination given as a name (canonical, from
// ParseHost). A deny rule wins over an allow rule; no match is denied. When
// the name is allowed, each address it resolves to still goes through
// CheckResolved.
func (rs Rules) CheckName(name string, port uint16) Verdict {
	for _, r := range rs.Deny {
		if r.MatchName(name, port) {
			return denied(r)
		}
	}
	for _, r := range rs.Allow {
		if r.MatchName(name, port) {
			return allowed(r)
		}
	}
	return Verdict{Reason: "no --allow-domain rule matches " + hostPort(name, port)}
}

// CheckAddr decides on a destination given as an IP literal: it is allowed
// only if an IP or CIDR allow rule names it and no deny rule matches. A rule
// names a forbidden address (see Forbidden) only if it lies inside the
// address's forbidden range, so "0.0.0.0/0" opens public addresses but not
// 127.0.0.1, and "169.254.0.0/16" not 169.254.169.254. CheckAddr does not
// know the host's own addresses: to keep a broad rule from opening a public
// one, pass an allowed literal through CheckResolved too.
func (rs Rules) CheckAddr(a netip.Addr, port uint16) Verdict {
	a = a.Unmap().WithZone("")
	if !a.IsValid() {
		return Verdict{Reason: "invalid address"}
	}
	for _, r := range rs.Deny {
		if r.MatchAddr(a, port) {
			return denied(r)
		}
	}
	class, within, bad := classify(a, nil)
	broad := ""
	for _, r := range rs.Allow {
		if !r.MatchAddr(a, port) {
			continue
		}
		if !bad || r.opens(within) {
			return allowed(r)
		}
		if broad == "" {
			broad = r.Text
		}
	}
	if broad != "" {
		return Verdict{Reason: fmt.Sprintf("%s is %s, which --allow-domain %s is too broad to open", a, article(class), broad)}
	}
	return Verdict{Reason: "no --allow-domain IP or CIDR rule matches " + hostPort(a.String(), port)}
}

// CheckResolved vets one address that name, already allowed by CheckName,
// resolved to. It is denied if an IP or CIDR deny rule matches it, or if
// Forbidden(a, own) says so and no IP or CIDR allow rule names the address on
// that port (a rule names a forbidden address as in CheckAddr, and an own
// address only with a rule for that single address). The gateway must dial
// the address it vetted, not resolve the name again.
func (rs Rules) CheckResolved(name string, a netip.Addr, port uint16, own []netip.Addr) Verdict {
	a = a.Unmap().WithZone("")
	if !a.IsValid() {
		return Verdict{Reason: name + " resolves to an invalid address"}
	}
	for _, r := range rs.Deny {
		if r.MatchAddr(a, port) {
			v := denied(r)
			v.Reason += fmt.Sprintf(" (%s resolves to %s)", name, a)
			return v
		}
	}
	class, within, bad := classify(a, own)
	if !bad {
		return Verdict{Allowed: true, Reason: fmt.Sprintf("%s resolves to %s", name, a)}
	}
	reason := fmt.Sprintf("%s resolves to %s, %s", name, a, article(class))
	broad := ""
	for _, r := range rs.Allow {
		if !r.MatchAddr(a, port) {
			continue
		}
		if r.opens(within) {
			v := allowed(r)
			v.Reason += " (" + reason + ")"
			return v
		}
		if broad == "" {
			broad = r.Text
		}
	}
	if broad != "" {
		reason += ", which --allow-domain " + broad + " is too broad to open"
	}
	return Verdict{Reason: reason}
}

func denied(r Rule) Verdict {
	return Verdict{Rule: r.Text, Reason: "denied by --deny-domain " + r.Text}
}

func allowed(r Rule) Verdict {
	return Verdict{Allowed: true, Rule: r.Text, Reason: "allowed by --allow-domain " + r.Text}
}

// hostPort joins host and port as a rule would be written; port 0 is left out.
func hostPort(host string, port uint16) string {
	if port == 0 {
		if strings.IndexByte(host, ':') >= 0 {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// article names a guard class with its article: "a loopback address".
func article(class string) string {
	switch {
	case class == "this host":
		return "an address of this host"
	case strings.IndexByte("aeiouAEIOU", class[0]) >= 0:
		return "an " + class + " address"
	}
	return "a " + class + " address"
}
