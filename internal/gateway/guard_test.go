package gateway

import (
	"net/netip"
	"testing"
)

func TestForbidden(t *testing.T) {
	own := []netip.Addr{
		netip.MustParseAddr("127.0.0.1"),
		netip.MustParseAddr("::ffff:45.33.32.156"),
		netip.MustParseAddr("2a01:4f8::1"),
		netip.MustParseAddr("fe80::5%eth0"),
	}
	tests := []struct {
		addr string
		want string // class, "" for an address names may resolve to
	}{
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"93.184.215.14", ""},
		{"2606:4700:4700::1111", ""},
		{"2001:4860:4860::8888", ""},

		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"::", "unspecified"},
		{"::ffff:0.0.0.0", "unspecified"},
		{"10.0.0.1", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"172.32.0.1", ""},
		{"192.168.1.1", "private"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},
		{"100.64.0.1", "shared (CGNAT)"},
		{"100.127.255.255", "shared (CGNAT)"},
		{"100.128.0.1", ""},
		{"169.254.1.1", "link-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.254", "reserved"},
		{"192.0.0.8", "reserved"},
		{"192.88.99.1", "reserved"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"198.20.0.1", ""},
		{"2001:2::1", "benchmarking"},
		{"192.0.2.1", ""},    // documentation ranges are not refused
		{"198.51.100.1", ""}, // documentation ranges are not refused
		{"203.0.113.1", ""},  // documentation ranges are not refused
		{"2001:db8::1", ""},  // documentation ranges are not refused
		{"3fff::1", ""},      // documentation ranges are not refused
		{"fec0::1", "site-local"},
		{"::7f00:1", "IPv4-compatible"},
		{"::8.8.8.8", "IPv4-compatible"},
		{"::ffff:0:808:808", "reserved"}, // IPv4-translated
		{"100::1", "reserved"},           // discard-only
		{"64:ff9b:1::1", "reserved"},     // local-use NAT64
		{"5f00::1", "reserved"},          // SRv6
		{"4000::1", "reserved"},
		{"fe00::1", "reserved"},

		{"169.254.169.254", "metadata"},
		{"::ffff:169.254.169.254", "metadata"},
		{"169.254.170.2", "metadata"},
		{"fd00:ec2::254", "metadata"},
		{"100.100.100.200", "metadata"},
		{"168.63.129.16", "metadata"},
		{"192.0.0.192", "metadata"},

		{"45.33.32.156", "this host"},
		{"::ffff:45.33.32.156", "this host"},
		{"2a01:4f8::1", "this host"},
		{"fe80::5", "this host"},
		{"fe80::5%eth1", "this host"},
		{"2a01:4f8::2", ""},

		{"64:ff9b::808:808", ""},
		{"64:ff9b::7f00:1", "NAT64 loopback"},
		{"64:ff9b::a00:1", "NAT64 private"},
		{"64:ff9b::a9fe:a9fe", "NAT64 metadata"},
		{"64:ff9b::2d21:209c", "NAT64 this host"},
		{"2002:808:808::1", ""},
		{"2002:7f00:1::", "6to4 loopback"},
		{"2002:a9fe:a9fe::1", "6to4 metadata"},
		{"2002:c0a8:101::1", "6to4 private"},
		{"2001:0:808:808::f7f7:f7f7", ""},                // server and client 8.8.8.8
		{"2001:0:808:808::80ff:fffe", "Teredo loopback"}, // client 127.0.0.1
		{"2001:0:7f00:1::f7f7:f7f7", "Teredo loopback"},  // server 127.0.0.1
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", ""},     // RFC 4380's client 192.0.2.45
	}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		class, bad := Forbidden(a, own)
		if class != tt.want || bad != (tt.want != "") {
			t.Errorf("Forbidden(%v) = %q, %v, want %q", a, class, bad, tt.want)
		}
	}
	if class, bad := Forbidden(netip.Addr{}, nil); !bad {
		t.Errorf("Forbidden(invalid) = %q, %v, want forbidden", class, bad)
	}
}

// TestForbiddenRange checks the range a rule must lie in to lift the guard.
func TestForbiddenRange(t *testing.T) {
	own := []netip.Addr{netip.MustParseAddr("10.1.2.3")}
	tests := []struct {
		addr   string
		within string
	}{
		{"127.0.0.1", "127.0.0.0/8"},
		{"10.9.9.9", "10.0.0.0/8"},
		{"10.1.2.3", "10.1.2.3/32"},
		{"169.254.1.1", "169.254.0.0/16"},
		{"169.254.169.254", "169.254.169.254/32"},
		{"100.100.100.200", "100.100.100.200/32"},
		{"255.255.255.255", "255.255.255.255/32"},
		{"240.0.0.1", "240.0.0.0/4"},
		{"::1", "::1/128"},
		{"::7f00:1", "::/96"},
		{"fd00:ec2::254", "fd00:ec2::254/128"},
		{"fd00::1", "fc00::/7"},
		{"64:ff9b::7f00:1", "64:ff9b::7f00:0/104"},
		{"64:ff9b::a01:203", "64:ff9b::a01:203/128"},
		{"2002:7f00:1::", "2002:7f00::/24"},
		{"2001:0:808:808::80ff:fffe", "2001:0:808:808::80ff:fffe/128"},
		{"4000::1", "4000::/3"},
	}
	for _, tt := range tests {
		_, within, bad := classify(netip.MustParseAddr(tt.addr), own)
		if !bad || within.String() != tt.within {
			t.Errorf("classify(%s) range = %v, %v, want %s", tt.addr, within, bad, tt.within)
		}
	}
}

func TestOwnAddrs(t *testing.T) {
	for _, a := range OwnAddrs() {
		if !a.IsValid() || a.Is4In6() || a.Zone() != "" {
			t.Errorf("OwnAddrs() has %v", a)
		}
		if _, bad := Forbidden(a, OwnAddrs()); !bad {
			t.Errorf("Forbidden(%v, OwnAddrs()) = false", a)
		}
	}
}
