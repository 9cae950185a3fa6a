package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Dest is a canonical destination host: a DNS name or an IP address, never both.
//
// Policy is checked on a Dest and the gateway must dial that same Dest, never
// the text the client sent: canonicalisation is only safe when what is checked
// is what is dialed. A Name has no trailing dot; resolve it as a fully
// qualified name (Name+".") so that resolv.conf search domains cannot turn an
// allowed name into another.
type Dest struct {
	Name string     // lower-case ASCII (IDNA A-labels), no trailing dot; "" when Addr is valid
	Addr netip.Addr // valid for an IP literal: IPv4-mapped IPv6 unmapped to IPv4, never a zone
}

// IsAddr reports whether d is an IP address rather than a name.
func (d Dest) IsAddr() bool { return d.Addr.IsValid() }

// String returns the name, or the address (IPv6 without brackets).
// ParseHost of the result gives d back.
func (d Dest) String() string {
	if d.IsAddr() {
		return d.Addr.String()
	}
	return d.Name
}

// maxHostLen bounds the work spent on one host: 253 bytes of name, even
// percent-encoded Unicode, fits.
const maxHostLen = 4096

// ParseHost canonicalises a host as a client sent it: a CONNECT authority's
// host, a URL's host, a SOCKS5 domain name, a Host header's host. Anything
// malformed is an error; nothing is guessed.
//
// It reads a host the way WHATWG URL parsers do, so that a name cannot mean
// one thing to the policy and another to the resolver or the server:
//
//   - "[v6]" and bare "v6" are IPv6 addresses; zones are refused, and
//     IPv4-mapped addresses become IPv4.
//   - Otherwise the host is percent-decoded once ("ex%61mple.com"); a decoded
//     '%' or any byte that is not a letter, digit, '-', '_' or '.' is refused.
//   - Unicode goes through IDNA (UTS #46 lookup mapping, non-transitional):
//     case, fullwidth forms and the ideographic full stop map to ASCII and the
//     result is A-labels. An A-label must already be canonical: "xn--ab--",
//     which decodes to plain "ab-", is refused.
//   - One trailing dot is dropped; empty labels are refused; labels are 1 to 63
//     bytes of letters, digits, '-' and '_'; the name is at most 253 bytes.
//   - A name whose last label is numeric (digits, or 0x and hex digits) must
//     be an IPv4 address in some inet_aton spelling ("2130706433",
//     "0x7f.1", "0177.0.0.1", "127.1") or it is refused; it is never a name.
func ParseHost(s string) (Dest, error) {
	d, err := parseHost(s)
	if err != nil {
		return Dest{}, fmt.Errorf("invalid host %q: %w", clip(s), err)
	}
	return d, nil
}

// ParseHostPort parses "host:port" or "[v6]:port". The port is required,
// decimal, 1 to 65535, without a sign; the host goes through ParseHost.
func ParseHostPort(s string) (Dest, uint16, error) {
	host, port, err := splitHostPort(s)
	if err != nil {
		return Dest{}, 0, fmt.Errorf("invalid host and port %q: %w", clip(s), err)
	}
	d, err := ParseHost(host)
	if err != nil {
		return Dest{}, 0, err
	}
	p, err := parsePort(port)
	if err != nil {
		return Dest{}, 0, fmt.Errorf("invalid host and port %q: %w", clip(s), err)
	}
	return d, p, nil
}

func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", errors.New("missing ']'")
		}
		host, rest := s[:end+1], s[end+1:]
		if rest == "" {
			return "", "", errors.New("missing port")
		}
		port, ok := strings.CutPrefix(rest, ":")
		if !ok {
			return "", "", errors.New("text after ']' is not a port")
		}
		return host, port, nil
	}
	host, port, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", errors.New("missing port")
	}
	if strings.IndexByte(port, ':') >= 0 {
		return "", "", errors.New("too many colons (an IPv6 address with a port needs brackets)")
	}
	return host, port, nil
}

// parsePort reads a decimal port, 1 to 65535. Leading zeros are decimal too.
func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, errors.New("empty port")
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid port %q", clip(s))
		}
		n = n*10 + int(c-'0')
		if n > 65535 {
			return 0, fmt.Errorf("port %q out of range", clip(s))
		}
	}
	if n == 0 {
		return 0, errors.New("port 0")
	}
	return uint16(n), nil
}

func parseHost(s string) (Dest, error) {
	switch {
	case s == "":
		return Dest{}, errors.New("empty")
	case len(s) > maxHostLen:
		return Dest{}, fmt.Errorf("%d bytes long", len(s))
	case s[0] == '[':
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return Dest{}, errors.New("missing ']'")
		}
		if end != len(s)-1 {
			return Dest{}, errors.New("text after ']'")
		}
		return parseIPv6(s[1:end])
	case strings.IndexByte(s, ':') >= 0:
		if c, bad := badByte(s, ":%"); bad {
			return Dest{}, fmt.Errorf("invalid character %q", c)
		}
		if strings.Count(s, ":") == 1 {
			return Dest{}, errors.New("a port is not part of a host")
		}
		return parseIPv6(s)
	}
	decoded, err := percentDecode(s)
	if err != nil {
		return Dest{}, err
	}
	name, err := toASCII(decoded)
	if err != nil {
		return Dest{}, err
	}
	last := name[strings.LastIndexByte(name, '.')+1:]
	if numeric(last) {
		a, err := parseIPv4(name)
		if err != nil {
			return Dest{}, err
		}
		return Dest{Addr: a}, nil
	}
	return Dest{Name: name}, nil
}

func parseIPv6(s string) (Dest, error) {
	if strings.IndexByte(s, '%') >= 0 {
		return Dest{}, errors.New("zone identifiers and percent-encoding are not allowed in an IPv6 address")
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return Dest{}, errors.New("not an IPv6 address")
	}
	return Dest{Addr: a.Unmap()}, nil
}

// hostByte reports whether c may appear in a host before IDNA: ASCII letters,
// digits, '-', '_' and '.', or any byte of a non-ASCII UTF-8 sequence.
func hostByte(c byte) bool {
	return c >= 0x80 || nameByte(c) || c == '.' || 'A' <= c && c <= 'Z'
}

// nameByte reports whether c may appear in a canonical label.
func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// badByte returns the first byte of s that is neither a host byte nor in extra.
func badByte(s, extra string) (byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !hostByte(c) && strings.IndexByte(extra, c) < 0 {
			return c, true
		}
	}
	return 0, false
}

// percentDecode decodes %XX escapes once. Whatever they decode to must be a
// host byte itself: "%25" (a second round of encoding), "%00", "%2f", "%40"
// and the like are refused.
func percentDecode(s string) (string, error) {
	if c, bad := badByte(s, "%"); bad {
		return "", fmt.Errorf("invalid character %q", c)
	}
	if strings.IndexByte(s, '%') < 0 {
		if !utf8.ValidString(s) {
			return "", errors.New("invalid UTF-8")
		}
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
				return "", errors.New("invalid percent-encoding")
			}
			c = byte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			if !hostByte(c) {
				return "", fmt.Errorf("invalid character %q (percent-encoded)", c)
			}
			i += 2
		}
		b.WriteByte(c)
	}
	if !utf8.ValidString(b.String()) {
		return "", errors.New("invalid UTF-8")
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// lookup is the IDNA profile for names clients send.
var lookup = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false), // "ß" stays "ß", as in browsers and registries
	// Let '_' and the like through the mapping: validName checks the result,
	// and '_' is common in real names.
	idna.StrictDomainName(false),
	// Names like "r3---sn-x.googlevideo.com" are in use; hyphens change
	// nothing about where a name leads.
	idna.CheckHyphens(false),
	idna.VerifyDNSLength(true),
)

// toASCII maps s, percent-decoded, to a canonical name without trailing dot.
func toASCII(s string) (string, error) {
	out, err := lookup.ToASCII(s)
	if err != nil {
		return "", fmt.Errorf("not a valid domain name: %w", err)
	}
	out = strings.TrimSuffix(out, ".")
	if err := validName(out); err != nil {
		return "", err
	}
	// Each label must still be the label the client sent, as DNS reads it:
	// idna decodes an A-label that holds only ASCII ("xn--ab--") to that ASCII
	// ("ab-"), a different name.
	in := splitLabels(s)
	labels := strings.Split(out, ".")
	if len(in) != len(labels) {
		return "", errors.New("unexpected label separator")
	}
	for i, l := range labels {
		if ascii(in[i]) {
			if strings.ToLower(in[i]) != l {
				return "", fmt.Errorf("label %q is not a canonical A-label", in[i])
			}
			continue
		}
		// A non-ASCII label that became plain ASCII, like fullwidth
		// "ｅｘａｍｐｌｅ", is fine unless it mapped to an A-label first, like
		// "ｘｎ－－ａｂ－－". Behind a letter it cannot start an A-label, so the
		// two differ exactly then.
		if !strings.HasPrefix(l, "xn--") {
			q, err := lookup.ToASCII("q" + in[i])
			if err != nil || q != "q"+l {
				return "", fmt.Errorf("label %q is not a canonical A-label", in[i])
			}
		}
	}
	// And the result must read back as itself: "xn--ｘｎ－－-ｘｎ－－" maps to
	// an A-label that decodes to the ASCII "xn---xn-", itself no A-label.
	if !ascii(s) {
		if again, err := toASCII(out); err != nil || again != out {
			return "", fmt.Errorf("%q is not a canonical name", out)
		}
	}
	return out, nil
}

// splitLabels splits s on the separators IDNA maps to '.', after dropping one
// trailing separator.
func splitLabels(s string) []string {
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\u3002', '\uff0e', '\uff61':
			return '.'
		}
		return r
	}, s)
	return strings.Split(strings.TrimSuffix(s, "."), ".")
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// validName checks the shape of a canonical name: labels of 1 to 63 bytes of
// lower-case letters, digits, '-' and '_', at most 253 bytes in all.
func validName(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 253 {
		return fmt.Errorf("name is %d bytes long, more than 253", len(s))
	}
	for l := range strings.SplitSeq(s, ".") {
		if l == "" {
			return errors.New("empty label")
		}
		if len(l) > 63 {
			return fmt.Errorf("label is %d bytes long, more than 63", len(l))
		}
		for i := 0; i < len(l); i++ {
			if !nameByte(l[i]) {
				return fmt.Errorf("invalid character %q", l[i])
			}
		}
	}
	return nil
}

// isName reports whether s is a canonical name as ParseHost returns it.
func isName(s string) bool {
	return validName(s) == nil && !numeric(s[strings.LastIndexByte(s, '.')+1:])
}

// numeric reports whether a label looks like a number, which makes the whole
// host an IPv4 address or nothing (WHATWG URL's "ends in a number").
func numeric(l string) bool {
	if h, ok := strings.CutPrefix(l, "0x"); ok {
		return strings.Trim(h, "0123456789abcdef") == ""
	}
	return l != "" && strings.Trim(l, "0123456789") == ""
}

// parseIPv4 reads an IPv4 address as inet_aton and WHATWG URL do: one to four
// parts, each decimal, 0x hex or 0 octal, the last filling the bytes left.
// Unlike WHATWG, a bare "0x" is refused.
func parseIPv4(s string) (netip.Addr, error) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, errors.New("invalid IPv4 address: more than four parts")
	}
	var v uint64
	for i, p := range parts {
		n, ok := ipv4Part(p)
		last := i == len(parts)-1
		switch {
		case !ok:
			return netip.Addr{}, fmt.Errorf("invalid IPv4 address: bad number %q", p)
		case !last && n > 255:
			return netip.Addr{}, fmt.Errorf("invalid IPv4 address: %q is more than 255", p)
		case last && n >= 1<<(8*(5-len(parts))):
			return netip.Addr{}, fmt.Errorf("invalid IPv4 address: %q is too large", p)
		}
		if last {
			v = v<<(8*(5-len(parts))) | n
		} else {
			v = v<<8 | n
		}
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
}

// ipv4Part reads one part of an IPv4 address; values past 32 bits fail.
func ipv4Part(p string) (uint64, bool) {
	base := uint64(10)
	switch {
	case strings.HasPrefix(p, "0x"):
		base, p = 16, p[2:]
	case len(p) > 1 && p[0] == '0':
		base, p = 8, p[1:]
	}
	if p == "" {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(p); i++ {
		d := uint64(unhex(p[i]))
		if unhex(p[i]) < 0 || d >= base {
			return 0, false
		}
		n = n*base + d
		if n > 1<<32 {
			return 0, false
		}
	}
	return n, true
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 256 {
		return s[:256] + "..."
	}
	return s
}
