package gateway

import (
	"net/netip"
	"strings"
	"testing"
)

// hostTests are hosts as clients send them and their canonical form; want ""
// means ParseHost must refuse the host.
var hostTests = []struct {
	name string
	in   string
	want string
}{
	{"plain", "example.com", "example.com"},
	{"upper case", "EXAMPLE.COM", "example.com"},
	{"mixed case trailing dot", "Example.Com.", "example.com"},
	{"single label", "localhost", "localhost"},
	{"underscore", "a_b.example.com", "a_b.example.com"},
	{"triple hyphen", "r3---sn-abc.googlevideo.com", "r3---sn-abc.googlevideo.com"},
	{"leading hyphen", "-a-.example.com", "-a-.example.com"},
	{"numeric inner labels", "1.2.3.a", "1.2.3.a"},
	{"digits and letters", "123abc", "123abc"},
	{"not hex", "0xg", "0xg"},
	{"IP-like subdomain", "127.0.0.1.nip.io", "127.0.0.1.nip.io"},
	{"percent-encoded letter", "ex%61mple.com", "example.com"},
	{"percent-encoded upper", "%45XAMPLE.com", "example.com"},
	{"percent-encoded dot", "example%2ecom", "example.com"},
	{"percent-encoded dot, a name below", "evil.com%2Eallowed.com", "evil.com.allowed.com"},
	{"percent-encoded UTF-8", "b%C3%BCcher.de", "xn--bcher-kva.de"},
	{"unicode", "bücher.de", "xn--bcher-kva.de"},
	{"A-label", "xn--bcher-kva.de", "xn--bcher-kva.de"},
	{"A-label upper case", "XN--BCHER-KVA.DE", "xn--bcher-kva.de"},
	{"unicode upper case", "BÜCHER.de", "xn--bcher-kva.de"},
	{"sharp s non-transitional", "faß.de", "xn--fa-hia.de"},
	{"homograph", "аpple.com", "xn--pple-43d.com"},
	{"fullwidth", "ｅｘａｍｐｌｅ．ｃｏｍ", "example.com"},
	{"fullwidth A-label", "ｘｎ－－ｂｃｈｅｒ－ｋｖａ.de", "xn--bcher-kva.de"},
	{"ideographic full stop", "example。com", "example.com"},
	{"ideographic full stop trailing", "example.com。", "example.com"},
	{"halfwidth full stop", "example｡com", "example.com"},
	{"soft hyphen ignored", "exam\u00adple.com", "example.com"},
	{"63-byte label", strings.Repeat("a", 63) + ".com", strings.Repeat("a", 63) + ".com"},
	{"253-byte name", long(253), long(253)},
	{"253-byte name and dot", long(253) + ".", long(253)},

	// Every spelling of loopback.
	{"loopback", "127.0.0.1", "127.0.0.1"},
	{"loopback trailing dot", "127.0.0.1.", "127.0.0.1"},
	{"loopback decimal", "2130706433", "127.0.0.1"},
	{"loopback hex", "0x7f000001", "127.0.0.1"},
	{"loopback hex upper", "0X7F000001", "127.0.0.1"},
	{"loopback octal", "017700000001", "127.0.0.1"},
	{"loopback octal part", "0177.0.0.1", "127.0.0.1"},
	{"loopback octal two parts", "0177.1", "127.0.0.1"},
	{"loopback hex two parts", "0x7f.1", "127.0.0.1"},
	{"loopback hex parts", "0x7f.0x0.0x0.0x1", "127.0.0.1"},
	{"loopback two parts", "127.1", "127.0.0.1"},
	{"loopback three parts", "127.0.1", "127.0.0.1"},
	{"loopback zero padded", "127.000.000.001", "127.0.0.1"},
	{"loopback octal last", "127.0.0.01", "127.0.0.1"},
	{"loopback fullwidth", "１２７．０．０．１", "127.0.0.1"},
	{"loopback ideographic", "127。0。0。1", "127.0.0.1"},
	{"loopback percent-encoded", "%31%32%37.0.0.1", "127.0.0.1"},
	{"loopback other", "127.255.255.254", "127.255.255.254"},
	{"loopback IPv6", "::1", "::1"},
	{"loopback IPv6 brackets", "[::1]", "::1"},
	{"loopback IPv6 long", "[0:0:0:0:0:0:0:1]", "::1"},
	{"loopback IPv4-mapped", "[::ffff:127.0.0.1]", "127.0.0.1"},
	{"loopback IPv4-mapped hex", "::ffff:7f00:1", "127.0.0.1"},
	{"loopback IPv4-mapped upper", "[::FFFF:7F00:1]", "127.0.0.1"},

	// Every spelling of unspecified.
	{"unspecified", "0.0.0.0", "0.0.0.0"},
	{"unspecified one part", "0", "0.0.0.0"},
	{"unspecified hex", "0x0", "0.0.0.0"},
	{"unspecified octal", "00", "0.0.0.0"},
	{"unspecified two parts", "0.0", "0.0.0.0"},
	{"unspecified IPv6", "::", "::"},
	{"unspecified IPv6 brackets", "[::]", "::"},
	{"unspecified IPv4-mapped", "::ffff:0.0.0.0", "0.0.0.0"},

	// Every spelling of the metadata address.
	{"metadata", "169.254.169.254", "169.254.169.254"},
	{"metadata decimal", "2852039166", "169.254.169.254"},
	{"metadata hex", "0xa9fea9fe", "169.254.169.254"},
	{"metadata octal", "0251.0376.0251.0376", "169.254.169.254"},
	{"metadata three parts", "169.254.43518", "169.254.169.254"},
	{"metadata two parts", "169.16689662", "169.254.169.254"},
	{"metadata hex parts", "0xa9.0xfe.0xa9.0xfe", "169.254.169.254"},
	{"metadata IPv4-mapped", "[::ffff:a9fe:a9fe]", "169.254.169.254"},
	{"metadata IPv6", "[FD00:EC2::254]", "fd00:ec2::254"},

	{"broadcast decimal", "4294967295", "255.255.255.255"},
	{"broadcast hex", "0xffffffff", "255.255.255.255"},
	{"three parts", "1.2.3", "1.2.0.3"},
	{"two parts", "1.2", "1.0.0.2"},
	{"one part", "1", "0.0.0.1"},
	{"NAT64 stays IPv6", "[64:ff9b::7f00:1]", "64:ff9b::7f00:1"},
	{"IPv6", "[2001:DB8::1]", "2001:db8::1"},

	// Refused.
	{"empty", "", ""},
	{"space", " ", ""},
	{"inner space", "exa mple.com", ""},
	{"trailing space", "example.com ", ""},
	{"leading tab", "\texample.com", ""},
	{"newline", "example.com\n", ""},
	{"CRLF", "example.com\r\nHost: evil.com", ""},
	{"NUL", "\x00", ""},
	{"trailing NUL", "example.com\x00", ""},
	{"DEL", "example.com\x7f", ""},
	{"userinfo", "allowed.com@evil.com", ""},
	{"userinfo with password", "user:pass@evil.com", ""},
	{"fragment", "evil.com#allowed.com", ""},
	{"path", "evil.com/allowed.com", ""},
	{"backslash", "evil.com\\allowed.com", ""},
	{"query", "evil.com?allowed.com", ""},
	{"comma", "evil.com,allowed.com", ""},
	{"semicolon", "evil.com;allowed.com", ""},
	{"asterisk", "*.example.com", ""},
	{"quote", "\"example.com\"", ""},
	{"encoded fragment", "evil.com%23allowed.com", ""},
	{"encoded NUL", "allowed.com%00.evil.com", ""},
	{"encoded NUL after IP", "127.0.0.1%00", ""},
	{"encoded slash", "evil.com%2fallowed.com", ""},
	{"encoded at", "allowed.com%40evil.com", ""},
	{"encoded space", "allowed.com%20", ""},
	{"encoded colon", "example.com%3a443", ""},
	{"encoded brackets", "%5B::1%5D", ""},
	{"double encoding", "ex%2561mple.com", ""},
	{"bad escape", "ex%zzmple.com", ""},
	{"short escape", "example.co%6", ""},
	{"lone percent", "%", ""},
	{"invalid UTF-8", "\xff.com", ""},
	{"encoded invalid UTF-8", "%ff.com", ""},
	{"fullwidth solidus", "evil.com／allowed.com", ""},
	{"fullwidth at", "allowed.com＠evil.com", ""},
	{"fullwidth number sign", "evil.com＃allowed.com", ""},
	{"fullwidth asterisk", "＊.example.com", ""},
	{"disallowed rune", "a⒈com", ""},
	{"one dot leader", "a\u2024com", ""},
	{"combining mark first", "\u0301a.com", ""},
	{"empty label", "a..b", ""},
	{"leading dot", ".a", ""},
	{"two trailing dots", "a..", ""},
	{"dots only", "..", ""},
	{"dot", ".", ""},
	{"empty label ideographic", "a。。b", ""},
	{"ignored label", "a.\u00ad", ""},
	{"64-byte label", strings.Repeat("a", 64) + ".com", ""},
	{"254-byte name", long(254), ""},
	{"huge", strings.Repeat("a.", 5000), ""},
	{"empty A-label", "xn--", ""},
	{"empty A-label with TLD", "xn--.com", ""},
	{"invalid A-label", "xn--a.com", ""},
	{"A-label of ASCII", "xn--ab--.com", ""},
	{"A-label of a name", "xn--example-.com", ""},
	{"fullwidth A-label of a name", "ｘｎ－－ｅｘａｍｐｌｅ－.com", ""},
	{"A-label of an A-label-like name", "xn--ｘｎ－－-ｘｎ－－", ""},
	{"port", "example.com:443", ""},
	{"IPv4 with port", "127.0.0.1:80", ""},
	{"IPv4 part too large", "1.2.3.999", ""},
	{"IPv4 first part too large", "256.1.1.1", ""},
	{"IPv4 five parts", "1.2.3.4.5", ""},
	{"IPv4 last part too large", "1.2.3.0x100", ""},
	{"IPv4 too large", "4294967296", ""},
	{"IPv4 hex too large", "0x100000000", ""},
	{"IPv4 huge", "999999999999999999999999", ""},
	{"IPv4 three parts too large", "1.2.65536", ""},
	{"bare 0x", "0x", ""},
	{"bare 0x parts", "0x.0x", ""},
	{"bad octal", "08", ""},
	{"bad octal part", "09.1.1.1", ""},
	{"name ending in a number", "foo.1", ""},
	{"name ending in digits", "example.123", ""},
	{"name ending in hex", "example.0x1f", ""},
	{"IPv4 in brackets", "[127.0.0.1]", ""},
	{"unclosed bracket", "[::1", ""},
	{"stray bracket", "::1]", ""},
	{"bracket and port", "[::1]:80", ""},
	{"empty brackets", "[]", ""},
	{"double brackets", "[[::1]]", ""},
	{"zone", "fe80::1%eth0", ""},
	{"encoded zone", "fe80::1%25eth0", ""},
	{"zone in brackets", "[fe80::1%eth0]", ""},
	{"encoded zone in brackets", "[fe80::1%25eth0]", ""},
	{"bad IPv6", "1:2:3:4:5:6:7:8:9", ""},
	{"IPv6 with name", "[::1].evil.com", ""},
}

// long returns a name of n bytes made of 63-byte labels.
func long(n int) string {
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		l := min(63, n-b.Len())
		b.WriteString(strings.Repeat("a", l))
	}
	return b.String()
}

func TestParseHost(t *testing.T) {
	for _, tt := range hostTests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseHost(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseHost(%q) = %v, want error", tt.in, d)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHost(%q): %v", tt.in, err)
			}
			if d.String() != tt.want {
				t.Errorf("ParseHost(%q) = %v, want %v", tt.in, d, tt.want)
			}
			_, isIP := netip.ParseAddr(tt.want)
			if d.IsAddr() != (isIP == nil) {
				t.Errorf("ParseHost(%q).IsAddr() = %v, want %v", tt.in, d.IsAddr(), isIP == nil)
			}
			checkDest(t, tt.in, d)
		})
	}
}

// checkDest checks the invariants of a Dest that ParseHost(in) returned.
func checkDest(t *testing.T, in string, d Dest) {
	t.Helper()
	if (d.Name == "") != d.IsAddr() {
		t.Fatalf("ParseHost(%q) = %#v: want a name or an address", in, d)
	}
	if d.IsAddr() && (d.Addr.Zone() != "" || d.Addr.Is4In6()) {
		t.Fatalf("ParseHost(%q) = %#v: zone or IPv4-mapped", in, d)
	}
	if !d.IsAddr() && !isName(d.Name) {
		t.Fatalf("ParseHost(%q) = %#v: not a canonical name", in, d)
	}
	again, err := ParseHost(d.String())
	if err != nil {
		t.Fatalf("ParseHost(%q) = %v, which does not parse: %v", in, d, err)
	}
	if again != d {
		t.Fatalf("ParseHost(%q) = %#v, but ParseHost(%q) = %#v", in, d, d.String(), again)
	}
}

func TestParseHostError(t *testing.T) {
	_, err := ParseHost("allowed.com@evil.com")
	want := `invalid host "allowed.com@evil.com": invalid character '@'`
	if err == nil || err.Error() != want {
		t.Errorf("ParseHost error = %v, want %s", err, want)
	}
}

func TestDest(t *testing.T) {
	tests := []struct {
		d      Dest
		want   string
		isAddr bool
	}{
		{Dest{Name: "example.com"}, "example.com", false},
		{Dest{Addr: netip.MustParseAddr("127.0.0.1")}, "127.0.0.1", true},
		{Dest{Addr: netip.MustParseAddr("2001:db8::1")}, "2001:db8::1", true},
		{Dest{}, "", false},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.d, got, tt.want)
		}
		if got := tt.d.IsAddr(); got != tt.isAddr {
			t.Errorf("%#v.IsAddr() = %v, want %v", tt.d, got, tt.isAddr)
		}
	}
}

var hostPortTests = []struct {
	name string
	in   string
	host string // "" when ParseHostPort must refuse in
	port uint16
}{
	{"name", "example.com:443", "example.com", 443},
	{"upper case trailing dot", "EXAMPLE.com.:443", "example.com", 443},
	{"IPv6", "[::1]:8080", "::1", 8080},
	{"IPv4-mapped", "[::ffff:127.0.0.1]:22", "127.0.0.1", 22},
	{"short IPv4", "127.1:80", "127.0.0.1", 80},
	{"leading zero port", "example.com:0443", "example.com", 443},
	{"highest port", "example.com:65535", "example.com", 65535},
	{"lowest port", "example.com:1", "example.com", 1},
	{"percent-encoded host", "ex%61mple.com:443", "example.com", 443},

	{"empty", "", "", 0},
	{"no port", "example.com", "", 0},
	{"empty port", "example.com:", "", 0},
	{"port 0", "example.com:0", "", 0},
	{"port 00000", "example.com:00000", "", 0},
	{"port too large", "example.com:65536", "", 0},
	{"port huge", "example.com:99999999999999999999", "", 0},
	{"port plus", "example.com:+443", "", 0},
	{"port minus", "example.com:-1", "", 0},
	{"port space", "example.com: 443", "", 0},
	{"port trailing space", "example.com:443 ", "", 0},
	{"port hex", "example.com:0x1bb", "", 0},
	{"port fullwidth", "example.com:４４３", "", 0},
	{"two ports", "example.com:443:443", "", 0},
	{"empty host", ":443", "", 0},
	{"bare IPv6", "::1:80", "", 0},
	{"IPv6 without port", "[::1]", "", 0},
	{"IPv6 no colon", "[::1]80", "", 0},
	{"IPv6 unclosed", "[::1:80", "", 0},
	{"IPv4 in brackets", "[127.0.0.1]:80", "", 0},
	{"zone", "[fe80::1%25eth0]:80", "", 0},
	{"userinfo", "allowed.com@evil.com:443", "", 0},
	{"userinfo with port", "allowed.com:443@evil.com:443", "", 0},
	{"fragment", "evil.com#allowed.com:443", "", 0},
	{"encoded colon", "evil.com%3a443:443", "", 0},
	{"bad IPv4", "1.2.3.999:80", "", 0},
}

func TestParseHostPort(t *testing.T) {
	for _, tt := range hostPortTests {
		t.Run(tt.name, func(t *testing.T) {
			d, port, err := ParseHostPort(tt.in)
			if tt.host == "" {
				if err == nil {
					t.Fatalf("ParseHostPort(%q) = %v, %d, want error", tt.in, d, port)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHostPort(%q): %v", tt.in, err)
			}
			if d.String() != tt.host || port != tt.port {
				t.Errorf("ParseHostPort(%q) = %v, %d, want %v, %d", tt.in, d, port, tt.host, tt.port)
			}
		})
	}
}

func FuzzParseHost(f *testing.F) {
	for _, tt := range hostTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseHost(s)
		if err != nil {
			return
		}
		checkDest(t, s, d)
		if strings.ContainsAny(s, " \t\r\n\x00@/\\?#,;*\"'<>|^`{}") {
			t.Fatalf("ParseHost(%q) = %v, want error", s, d)
		}
		// What the standard library reads as an address, ParseHost reads
		// as the same address.
		if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" && d.Addr != a.Unmap() {
			t.Fatalf("ParseHost(%q) = %v, want %v", s, d, a.Unmap())
		}
	})
}

func FuzzParseHostPort(f *testing.F) {
	for _, tt := range hostPortTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, port, err := ParseHostPort(s)
		if err != nil {
			return
		}
		if port == 0 {
			t.Fatalf("ParseHostPort(%q) = %v, 0", s, d)
		}
		checkDest(t, s, d)
		joined := hostPort(d.String(), port)
		d2, port2, err := ParseHostPort(joined)
		if err != nil || d2 != d || port2 != port {
			t.Fatalf("ParseHostPort(%q) = %v, %d, but ParseHostPort(%q) = %v, %d, %v", s, d, port, joined, d2, port2, err)
		}
	})
}
