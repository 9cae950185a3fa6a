package gateway

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// ruleTests are rules as users write them; want is the rule's canonical
// form (see canon), "" when ParseRule must refuse it.
var ruleTests = []struct {
	in   string
	want string
}{
	{"example.com", "example.com"},
	{"EXAMPLE.com.", "example.com"},
	{"bücher.de", "xn--bcher-kva.de"},
	{"ｅｘａｍｐｌｅ．ｃｏｍ", "example.com"},
	{"localhost", "localhost"},
	{"co.uk", "co.uk"},
	{"example.com:8443", "example.com:8443"},
	{"example.com:0443", "example.com:443"},
	{"*.example.org", "*.example.org"},
	{"*.EXAMPLE.org.", "*.example.org"},
	{"*.example.org:443", "*.example.org:443"},
	{"*.bücher.de", "*.xn--bcher-kva.de"},
	{"*.github.io", "*.github.io"}, // a private suffix
	{"*.corp.internal", "*.corp.internal"},
	{"*.www.ck", "*.www.ck"}, // an exception to the *.ck public suffix
	{"127.0.0.1", "127.0.0.1/32"},
	{"127.1", "127.0.0.1/32"},
	{"0x7f.1:8080", "127.0.0.1/32:8080"},
	{"2130706433", "127.0.0.1/32"},
	{"127.0.0.1:8080", "127.0.0.1/32:8080"},
	{"::1", "::1/128"},
	{"[::1]", "::1/128"},
	{"[::1]:8080", "::1/128:8080"},
	{"::ffff:127.0.0.1", "127.0.0.1/32"},
	{"[::ffff:127.0.0.1]:80", "127.0.0.1/32:80"},
	{"10.0.0.0/8", "10.0.0.0/8"},
	{"10.1.2.3/8", "10.0.0.0/8"},
	{"10.0.0.0/8:5432", "10.0.0.0/8:5432"},
	{"0.0.0.0/0", "0.0.0.0/0"},
	{"2001:db8::/32", "2001:db8::/32"},
	{"2001:DB8::1/32", "2001:db8::/32"},
	{"[2001:db8::/32]:443", "2001:db8::/32:443"},
	{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
	{"[::ffff:10.0.0.0/104]:5432", "10.0.0.0/8:5432"},
	{"::/0", "::/0"},

	{"", ""},
	{"*", ""},
	{"*.*", ""},
	{"**.com", ""},
	{"*.", ""},
	{"*.com", ""},
	{"*.COM.", ""},
	{"*.co.uk", ""},
	{"*.localhost", ""},
	{"*.internal", ""},
	{"*.xn--p1ai", ""},
	{"*.рф", ""},
	{"*.foo.ck", ""}, // *.ck makes foo.ck a public suffix
	{"foo*.com", ""},
	{"*foo.com", ""},
	{"a.*.com", ""},
	{"*.example.*", ""},
	{"*.example.org.*", ""},
	{"＊.example.org", ""},
	{"*.exa mple.com", ""},
	{"*.127.0.0.1", ""},
	{"*.10.0.0.0/8", ""},
	{"*.[::1]", ""},
	{"example.com:0", ""},
	{"example.com:65536", ""},
	{"example.com:", ""},
	{"example.com:x", ""},
	{"example.com:+443", ""},
	{"example.com:-1", ""},
	{"https://example.com", ""},
	{"http://example.com:80", ""},
	{"example.com/", ""},
	{"example.com/x", ""},
	{"example1.com/x", ""},
	{"user@example.com", ""},
	{"user:pass@example.com", ""},
	{" example.com", ""},
	{"example.com ", ""},
	{"exa mple.com", ""},
	{"example.com#x", ""},
	{"example..com", ""},
	{"1.2.3.999", ""},
	{"foo.1", ""},
	{"10/8", ""},
	{"10.0/8", ""},
	{"0x0a.0.0.0/8", ""},
	{"10.0.0.0/33", ""},
	{"10.0.0.0/-1", ""},
	{"10.0.0.0/", ""},
	{"::1/129", ""},
	{"[10.0.0.0/8]", ""},
	{"[127.0.0.1]", ""},
	{"[127.0.0.1]:80", ""},
	{"[::1", ""},
	{"[::1]x", ""},
	{"[::1]:", ""},
	{"[::1]:0", ""},
	{"[]", ""},
	{"fe80::1%eth0", ""},
	{"fe80::/10%eth0", ""},
	{"[fe80::1%25eth0]:80", ""},
	{"2001:db8::/32:443", ""},
	{"example.com:443:443", ""},
}

// canon renders a parsed rule in a form that parses to the same rule.
func canon(r Rule) string {
	var s string
	switch {
	case r.IsAddr():
		s = r.prefix.String()
		if r.Port != 0 && r.prefix.Addr().Is6() {
			return "[" + s + "]:" + strconv.Itoa(int(r.Port))
		}
	case r.wild:
		s = "*." + r.name
	default:
		s = r.name
	}
	if r.Port != 0 {
		s += ":" + strconv.Itoa(int(r.Port))
	}
	return s
}

// canonText is canon with the brackets of IPv6 rules with ports dropped, the
// form ruleTests write.
func canonText(r Rule) string {
	s := canon(r)
	if strings.HasPrefix(s, "[") {
		s = strings.Replace(strings.TrimPrefix(s, "["), "]", "", 1)
	}
	return s
}

func TestParseRule(t *testing.T) {
	for _, tt := range ruleTests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParseRule(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseRule(%q) = %s, want error", tt.in, canon(r))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRule(%q): %v", tt.in, err)
			}
			if got := canonText(r); got != tt.want {
				t.Errorf("ParseRule(%q) = %s, want %s", tt.in, got, tt.want)
			}
			if r.Text != tt.in {
				t.Errorf("ParseRule(%q).Text = %q", tt.in, r.Text)
			}
			checkRule(t, r)
		})
	}
}

func TestParseRuleError(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"*.co.uk", `invalid rule "*.co.uk": co.uk is a public suffix: *.co.uk would match names anyone can register`},
		{"*.com", `invalid rule "*.com": *.com would match a whole top-level domain`},
		{"foo*.com", `invalid rule "foo*.com": a wildcard must be the whole first label, as in *.example.com`},
		{"https://example.com", `invalid rule "https://example.com": a rule is a host, not a URL`},
		{"example.com/x", `invalid rule "example.com/x": a rule is a host, not a URL: paths are not allowed`},
		{"user@example.com", `invalid rule "user@example.com": user info is not allowed`},
		{"10/8", `invalid rule "10/8": write the address of CIDR "10/8" in full, as in 10.0.0.0/8`},
		{"example.com:0", `invalid rule "example.com:0": port 0`},
		{"example.com:65536", `invalid rule "example.com:65536": port "65536" out of range`},
	}
	for _, tt := range tests {
		_, err := ParseRule(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseRule(%q) error = %v, want %s", tt.in, err, tt.want)
		}
	}
}

// checkRule checks that a parsed rule matches consistently.
func checkRule(t *testing.T, r Rule) {
	t.Helper()
	port := r.Port
	if port == 0 {
		port = 1
	}
	other := port + 1
	if other == 0 {
		other = 1
	}
	again, err := ParseRule(canon(r))
	if err != nil {
		t.Fatalf("ParseRule(%q) = %s, which does not parse: %v", r.Text, canon(r), err)
	}
	again.Text = r.Text
	if again != r {
		t.Fatalf("ParseRule(%q) = %#v, but ParseRule(%q) = %#v", r.Text, r, canon(r), again)
	}
	if r.IsAddr() {
		if r.name != "" || r.wild || r.prefix != r.prefix.Masked() || r.prefix.Addr().Is4In6() && r.prefix.Bits() >= 96 {
			t.Fatalf("ParseRule(%q) = %#v", r.Text, r)
		}
		a := r.prefix.Addr()
		if !r.MatchAddr(a, port) {
			t.Errorf("ParseRule(%q).MatchAddr(%v, %d) = false", r.Text, a, port)
		}
		if r.Port != 0 && r.MatchAddr(a, other) {
			t.Errorf("ParseRule(%q).MatchAddr(%v, %d) = true", r.Text, a, other)
		}
		if r.MatchName(a.String(), port) || r.MatchName("example.com", port) {
			t.Errorf("ParseRule(%q) matches a name", r.Text)
		}
		return
	}
	if !isName(r.name) || r.prefix.IsValid() {
		t.Fatalf("ParseRule(%q) = %#v", r.Text, r)
	}
	name := r.name
	if r.wild {
		if r.MatchName(r.name, port) {
			t.Errorf("ParseRule(%q).MatchName(%q, %d) = true", r.Text, r.name, port)
		}
		if !strings.Contains(r.name, ".") {
			t.Errorf("ParseRule(%q) is a wildcard over one label", r.Text)
		}
		name = "a." + r.name
		if len(name) > 253 {
			return
		}
	}
	if !r.MatchName(name, port) {
		t.Errorf("ParseRule(%q).MatchName(%q, %d) = false", r.Text, name, port)
	}
	if r.Port != 0 && r.MatchName(name, other) {
		t.Errorf("ParseRule(%q).MatchName(%q, %d) = true", r.Text, name, other)
	}
	if r.MatchAddr(netip.MustParseAddr("127.0.0.1"), port) || r.MatchAddr(netip.MustParseAddr("::1"), port) {
		t.Errorf("ParseRule(%q) matches an address", r.Text)
	}
}

func TestMatchName(t *testing.T) {
	tests := []struct {
		rule string
		name string
		port uint16
		want bool
	}{
		{"allowed.com", "allowed.com", 443, true},
		{"allowed.com", "allowed.com", 80, true},
		{"ALLOWED.com.", "allowed.com", 443, true},
		{"allowed.com", "allowed.com.evil.com", 443, false},
		{"allowed.com", "evilallowed.com", 443, false},
		{"allowed.com", "sub.allowed.com", 443, false},
		{"allowed.com", "allowed.co", 443, false},
		{"allowed.com", "allowed.com.", 443, false}, // not canonical
		{"allowed.com", "Allowed.com", 443, false},  // not canonical
		{"allowed.com", "", 443, false},
		{"*.allowed.com", "a.allowed.com", 443, true},
		{"*.allowed.com", "a.b.allowed.com", 443, true},
		{"*.allowed.com", "allowed.com", 443, false},
		{"*.allowed.com", "evilallowed.com", 443, false},
		{"*.allowed.com", "a.evilallowed.com", 443, false},
		{"*.allowed.com", ".allowed.com", 443, false},
		{"*.allowed.com", "a..allowed.com", 443, false},
		{"*.allowed.com", "allowed.com.evil.com", 443, false},
		{"*.allowed.com", "a.allowed.com.evil.com", 443, false},
		{"example.com:8443", "example.com", 8443, true},
		{"example.com:8443", "example.com", 443, false},
		{"*.example.org:443", "a.example.org", 443, true},
		{"*.example.org:443", "a.example.org", 80, false},
		{"apple.com", "xn--pple-43d.com", 443, false}, // Cyrillic а
		{"аpple.com", "xn--pple-43d.com", 443, true},
		{"127.0.0.1", "127.0.0.1", 443, false},
		{"*.0.1.example", "127.0.1.example", 443, true},
		{"10.0.0.0/8", "10.0.0.1", 443, false},
	}
	for _, tt := range tests {
		r, err := ParseRule(tt.rule)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.MatchName(tt.name, tt.port); got != tt.want {
			t.Errorf("ParseRule(%q).MatchName(%q, %d) = %v, want %v", tt.rule, tt.name, tt.port, got, tt.want)
		}
	}
}

func TestMatchAddr(t *testing.T) {
	tests := []struct {
		rule string
		addr string
		port uint16
		want bool
	}{
		{"127.0.0.1", "127.0.0.1", 443, true},
		{"127.0.0.1", "::ffff:127.0.0.1", 443, true},
		{"127.0.0.1", "127.0.0.2", 443, false},
		{"127.0.0.1:8080", "127.0.0.1", 8080, true},
		{"127.0.0.1:8080", "127.0.0.1", 8081, false},
		{"10.0.0.0/8:5432", "10.1.2.3", 5432, true},
		{"10.0.0.0/8:5432", "10.1.2.3", 5433, false},
		{"10.0.0.0/8", "11.0.0.0", 443, false},
		{"10.1.2.3/8", "10.200.0.1", 443, true},
		{"::1", "::1", 443, true},
		{"::1", "127.0.0.1", 443, false},
		{"[::1]:8080", "::1", 8080, true},
		{"fe80::/10", "fe80::1%eth0", 443, true},
		{"::/0", "1.2.3.4", 443, false},
		{"::/0", "2001:db8::1", 443, true},
		{"0.0.0.0/0", "::1", 443, false},
		{"::ffff:10.0.0.0/104", "10.0.0.1", 443, true},
		{"example.com", "93.184.215.14", 443, false},
		{"localhost", "127.0.0.1", 443, false},
	}
	for _, tt := range tests {
		r, err := ParseRule(tt.rule)
		if err != nil {
			t.Fatal(err)
		}
		a := netip.MustParseAddr(tt.addr)
		if got := r.MatchAddr(a, tt.port); got != tt.want {
			t.Errorf("ParseRule(%q).MatchAddr(%v, %d) = %v, want %v", tt.rule, a, tt.port, got, tt.want)
		}
	}
	if (Rule{}).MatchAddr(netip.MustParseAddr("127.0.0.1"), 80) || (Rule{}).MatchName("example.com", 80) {
		t.Error("the zero Rule matches")
	}
}

func mustRules(t *testing.T, allow, deny []string) Rules {
	t.Helper()
	var rs Rules
	for _, s := range allow {
		r, err := ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		rs.Allow = append(rs.Allow, r)
	}
	for _, s := range deny {
		r, err := ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		rs.Deny = append(rs.Deny, r)
	}
	return rs
}

// TestBypass sends hosts as a client would and checks what the policy makes
// of them, from ParseHostPort to CheckName or CheckAddr.
func TestBypass(t *testing.T) {
	rs := mustRules(t,
		[]string{"allowed.com", "*.wild.com", "bücher.de", "127.0.0.1:8080"},
		[]string{"ads.wild.com"})
	tests := []struct {
		hostport string
		want     bool
	}{
		{"allowed.com:443", true},
		{"ALLOWED.COM:443", true},
		{"allowed.com.:443", true},
		{"Allowed.Com.:443", true},
		{"ａｌｌｏｗｅｄ．ｃｏｍ:443", true},
		{"allowed%2ecom:443", true},
		{"%61llowed.com:443", true},
		{"xn--bcher-kva.de:443", true},
		{"BÜCHER.de:443", true},
		{"a.wild.com:443", true},
		{"A.B.WILD.COM.:443", true},
		{"127.0.0.1:8080", true},
		{"127.1:8080", true},
		{"[::ffff:127.0.0.1]:8080", true},

		{"allowed.com.evil.com:443", false},
		{"evilallowed.com:443", false},
		{"allowed.com@evil.com:443", false},
		{"evil.com#allowed.com:443", false},
		{"evil.com%23allowed.com:443", false},
		{"allowed.com%00.evil.com:443", false},
		{"evil.com%2fallowed.com:443", false},
		{"evil.com\\allowed.com:443", false},
		{"evil.com?.allowed.com:443", false},
		{"allowed.com..:443", false},
		{"аllowed.com:443", false}, // Cyrillic а
		{"xn--llowed-3vf.com:443", false},
		{"xn--allowed-.com:443", false},
		{"allowed.com:443:443", false},
		{"wild.com:443", false},
		{"evilwild.com:443", false},
		{"a.wild.com.evil.com:443", false},
		{"ads.wild.com:443", false},
		{"ADS.wild.com.:443", false},
		{"127.0.0.1:8081", false},
		{"localhost:8080", false},
		{"[::1]:8080", false},
		{"2130706433:80", false},
	}
	for _, tt := range tests {
		t.Run(tt.hostport, func(t *testing.T) {
			d, port, err := ParseHostPort(tt.hostport)
			var v Verdict
			switch {
			case err != nil:
				v.Reason = err.Error()
			case d.IsAddr():
				v = rs.CheckAddr(d.Addr, port)
			default:
				v = rs.CheckName(d.Name, port)
			}
			if v.Allowed != tt.want {
				t.Errorf("%s: allowed = %v, want %v (%s)", tt.hostport, v.Allowed, tt.want, v.Reason)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	rs := mustRules(t,
		[]string{"example.com", "*.example.org:443"},
		[]string{"ads.example.org"})
	tests := []struct {
		name string
		port uint16
		want Verdict
	}{
		{"example.com", 443, Verdict{true, "example.com", "allowed by --allow-domain example.com"}},
		{"a.example.org", 443, Verdict{true, "*.example.org:443", "allowed by --allow-domain *.example.org:443"}},
		{"ads.example.org", 443, Verdict{false, "ads.example.org", "denied by --deny-domain ads.example.org"}},
		{"a.example.org", 80, Verdict{false, "", "no --allow-domain rule matches a.example.org:80"}},
		{"example.net", 443, Verdict{false, "", "no --allow-domain rule matches example.net:443"}},
		{"Example.com", 443, Verdict{false, "", "no --allow-domain rule matches Example.com:443"}},
		{"example.net", 0, Verdict{false, "", "no --allow-domain rule matches example.net"}},
		{"example.com", 0, Verdict{true, "example.com", "allowed by --allow-domain example.com"}},
	}
	for _, tt := range tests {
		if got := rs.CheckName(tt.name, tt.port); got != tt.want {
			t.Errorf("CheckName(%q, %d) = %+v, want %+v", tt.name, tt.port, got, tt.want)
		}
	}
	if v := (Rules{}).CheckName("example.com", 443); v.Allowed {
		t.Errorf("zero Rules: CheckName = %+v", v)
	}
}

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		name  string
		allow []string
		deny  []string
		addr  string
		port  uint16
		want  Verdict
	}{
		{"IP rule", []string{"127.0.0.1:8080"}, nil, "127.0.0.1", 8080,
			Verdict{true, "127.0.0.1:8080", "allowed by --allow-domain 127.0.0.1:8080"}},
		{"IP rule mapped", []string{"127.0.0.1:8080"}, nil, "::ffff:127.0.0.1", 8080,
			Verdict{true, "127.0.0.1:8080", "allowed by --allow-domain 127.0.0.1:8080"}},
		{"other port", []string{"127.0.0.1:8080"}, nil, "127.0.0.1", 8081,
			Verdict{false, "", "no --allow-domain IP or CIDR rule matches 127.0.0.1:8081"}},
		{"no rule", []string{"example.com"}, nil, "93.184.215.14", 443,
			Verdict{false, "", "no --allow-domain IP or CIDR rule matches 93.184.215.14:443"}},
		{"name rule", []string{"localhost"}, nil, "127.0.0.1", 443,
			Verdict{false, "", "no --allow-domain IP or CIDR rule matches 127.0.0.1:443"}},
		{"IPv6", []string{"[::1]:8080"}, nil, "::1", 8080,
			Verdict{true, "[::1]:8080", "allowed by --allow-domain [::1]:8080"}},
		{"IPv6 no rule", nil, nil, "2001:db8::1", 443,
			Verdict{false, "", "no --allow-domain IP or CIDR rule matches [2001:db8::1]:443"}},
		{"IPv6 no rule no port", nil, nil, "2001:db8::1", 0,
			Verdict{false, "", "no --allow-domain IP or CIDR rule matches [2001:db8::1]"}},
		{"CIDR", []string{"10.0.0.0/8"}, nil, "10.1.2.3", 5432,
			Verdict{true, "10.0.0.0/8", "allowed by --allow-domain 10.0.0.0/8"}},
		{"deny wins", []string{"10.0.0.0/8"}, []string{"10.9.0.0/16"}, "10.9.1.1", 5432,
			Verdict{false, "10.9.0.0/16", "denied by --deny-domain 10.9.0.0/16"}},
		{"deny name rule does not match", []string{"10.0.0.0/8"}, []string{"localhost"}, "10.9.1.1", 5432,
			Verdict{true, "10.0.0.0/8", "allowed by --allow-domain 10.0.0.0/8"}},
		{"broad rule opens public", []string{"0.0.0.0/0"}, nil, "8.8.8.8", 53,
			Verdict{true, "0.0.0.0/0", "allowed by --allow-domain 0.0.0.0/0"}},
		{"broad rule keeps loopback", []string{"0.0.0.0/0"}, nil, "127.0.0.1", 80,
			Verdict{false, "", "127.0.0.1 is a loopback address, which --allow-domain 0.0.0.0/0 is too broad to open"}},
		{"broad rule keeps metadata", []string{"0.0.0.0/0"}, nil, "169.254.169.254", 80,
			Verdict{false, "", "169.254.169.254 is a metadata address, which --allow-domain 0.0.0.0/0 is too broad to open"}},
		{"link-local rule keeps metadata", []string{"169.254.0.0/16"}, nil, "169.254.169.254", 80,
			Verdict{false, "", "169.254.169.254 is a metadata address, which --allow-domain 169.254.0.0/16 is too broad to open"}},
		{"link-local rule", []string{"169.254.0.0/16"}, nil, "169.254.1.1", 80,
			Verdict{true, "169.254.0.0/16", "allowed by --allow-domain 169.254.0.0/16"}},
		{"metadata named", []string{"0.0.0.0/0", "169.254.169.254:80"}, nil, "169.254.169.254", 80,
			Verdict{true, "169.254.169.254:80", "allowed by --allow-domain 169.254.169.254:80"}},
		{"broad IPv6 rule keeps loopback", []string{"::/0"}, nil, "::1", 80,
			Verdict{false, "", "::1 is a loopback address, which --allow-domain ::/0 is too broad to open"}},
		{"zone ignored", nil, []string{"fe80::/10"}, "fe80::1%eth0", 80,
			Verdict{false, "fe80::/10", "denied by --deny-domain fe80::/10"}},
		{"invalid", []string{"0.0.0.0/0"}, nil, "", 80, Verdict{false, "", "invalid address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := mustRules(t, tt.allow, tt.deny)
			var a netip.Addr
			if tt.addr != "" {
				a = netip.MustParseAddr(tt.addr)
			}
			if got := rs.CheckAddr(a, tt.port); got != tt.want {
				t.Errorf("CheckAddr(%v, %d) = %+v, want %+v", a, tt.port, got, tt.want)
			}
		})
	}
}

func TestCheckResolved(t *testing.T) {
	ownPublic := netip.MustParseAddr("45.33.32.156")
	own := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.1.2.3"), ownPublic}
	tests := []struct {
		name  string
		allow []string
		deny  []string
		addr  string
		port  uint16
		want  Verdict
	}{
		{"public", []string{"example.com"}, nil, "93.184.215.14", 443,
			Verdict{true, "", "example.com resolves to 93.184.215.14"}},
		{"public mapped", []string{"example.com"}, nil, "::ffff:93.184.215.14", 443,
			Verdict{true, "", "example.com resolves to 93.184.215.14"}},
		{"deny CIDR", []string{"example.com"}, []string{"93.184.0.0/16"}, "93.184.215.14", 443,
			Verdict{false, "93.184.0.0/16", "denied by --deny-domain 93.184.0.0/16 (example.com resolves to 93.184.215.14)"}},
		{"deny CIDR other port", []string{"example.com"}, []string{"93.184.0.0/16:80"}, "93.184.215.14", 443,
			Verdict{true, "", "example.com resolves to 93.184.215.14"}},
		{"deny name rule ignored", []string{"example.com"}, []string{"example.com"}, "93.184.215.14", 443,
			Verdict{true, "", "example.com resolves to 93.184.215.14"}},
		{"loopback", []string{"example.com"}, nil, "127.0.0.1", 443,
			Verdict{false, "", "example.com resolves to 127.0.0.1, a loopback address"}},
		{"loopback mapped", []string{"example.com"}, nil, "::ffff:127.0.0.1", 443,
			Verdict{false, "", "example.com resolves to 127.0.0.1, a loopback address"}},
		{"loopback named", []string{"localhost", "127.0.0.1"}, nil, "127.0.0.1", 443,
			Verdict{true, "127.0.0.1", "allowed by --allow-domain 127.0.0.1 (localhost resolves to 127.0.0.1, a loopback address)"}},
		{"loopback named on another port", []string{"localhost", "127.0.0.1:8080"}, nil, "127.0.0.1", 443,
			Verdict{false, "", "localhost resolves to 127.0.0.1, a loopback address"}},
		{"loopback and broad rule", []string{"example.com", "0.0.0.0/0"}, nil, "127.0.0.1", 443,
			Verdict{false, "", "example.com resolves to 127.0.0.1, a loopback address, which --allow-domain 0.0.0.0/0 is too broad to open"}},
		{"loopback IPv6", []string{"example.com"}, nil, "::1", 443,
			Verdict{false, "", "example.com resolves to ::1, a loopback address"}},
		{"unspecified", []string{"example.com"}, nil, "0.0.0.0", 443,
			Verdict{false, "", "example.com resolves to 0.0.0.0, an unspecified address"}},
		{"private named by CIDR", []string{"db.corp", "10.0.0.0/8"}, nil, "10.9.9.9", 5432,
			Verdict{true, "10.0.0.0/8", "allowed by --allow-domain 10.0.0.0/8 (db.corp resolves to 10.9.9.9, a private address)"}},
		{"own private address needs its own rule", []string{"db.corp", "10.0.0.0/8"}, nil, "10.1.2.3", 5432,
			Verdict{false, "", "db.corp resolves to 10.1.2.3, an address of this host, which --allow-domain 10.0.0.0/8 is too broad to open"}},
		{"own private address named", []string{"db.corp", "10.1.2.3"}, nil, "10.1.2.3", 5432,
			Verdict{true, "10.1.2.3", "allowed by --allow-domain 10.1.2.3 (db.corp resolves to 10.1.2.3, an address of this host)"}},
		{"own public address", []string{"example.com"}, nil, ownPublic.String(), 22,
			Verdict{false, "", "example.com resolves to 45.33.32.156, an address of this host"}},
		{"own public address mapped", []string{"example.com"}, nil, "::ffff:45.33.32.156", 22,
			Verdict{false, "", "example.com resolves to 45.33.32.156, an address of this host"}},
		{"metadata", []string{"example.com", "169.254.0.0/16"}, nil, "169.254.169.254", 80,
			Verdict{false, "", "example.com resolves to 169.254.169.254, a metadata address, which --allow-domain 169.254.0.0/16 is too broad to open"}},
		{"Azure wireserver", []string{"example.com"}, nil, "168.63.129.16", 80,
			Verdict{false, "", "example.com resolves to 168.63.129.16, a metadata address"}},
		{"NAT64 metadata", []string{"example.com"}, nil, "64:ff9b::a9fe:a9fe", 80,
			Verdict{false, "", "example.com resolves to 64:ff9b::a9fe:a9fe, a NAT64 metadata address"}},
		{"NAT64 public", []string{"example.com"}, nil, "64:ff9b::808:808", 80,
			Verdict{true, "", "example.com resolves to 64:ff9b::808:808"}},
		{"link-local with zone", []string{"example.com"}, nil, "fe80::1%eth0", 80,
			Verdict{false, "", "example.com resolves to fe80::1, a link-local address"}},
		{"invalid", []string{"example.com"}, nil, "", 80, Verdict{false, "", "example.com resolves to an invalid address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := mustRules(t, tt.allow, tt.deny)
			var a netip.Addr
			if tt.addr != "" {
				a = netip.MustParseAddr(tt.addr)
			}
			host := "example.com"
			if len(tt.allow) > 0 && !strings.Contains(tt.want.Reason, "example.com") {
				host = tt.allow[0]
			}
			if got := rs.CheckResolved(host, a, tt.port, own); got != tt.want {
				t.Errorf("CheckResolved(%q, %v, %d) = %+v, want %+v", host, a, tt.port, got, tt.want)
			}
		})
	}
}

func FuzzParseRule(f *testing.F) {
	for _, tt := range ruleTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err != nil {
			return
		}
		if r.Text != s {
			t.Fatalf("ParseRule(%q).Text = %q", s, r.Text)
		}
		checkRule(t, r)
		// A rule matches what ParseHost makes of its own text.
		if !r.wild && !r.IsAddr() && r.Port == 0 {
			d, err := ParseHost(s)
			if err != nil || !r.MatchName(d.Name, 443) {
				t.Fatalf("ParseRule(%q) does not match ParseHost(%q) = %v, %v", s, s, d, err)
			}
		}
	})
}
