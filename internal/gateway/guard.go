package gateway

import (
	"net"
	"net/netip"
)

// metadata are cloud instance metadata and host agent endpoints. Most lie in
// ranges the guard refuses anyway; they are listed so that a rule for the
// whole range (169.254.0.0/16, fc00::/7) does not open them, and Azure's
// wireserver because it is in public space.
var metadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, OpenStack and most others
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task credentials
	netip.MustParseAddr("169.254.170.23"),  // AWS EKS pod identity
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
	netip.MustParseAddr("168.63.129.16"),   // Azure wireserver
	netip.MustParseAddr("192.0.0.192"),     // Oracle Cloud
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
	netip.MustParseAddr("fd00:ec2::23"),    // AWS EKS pod identity over IPv6
	netip.MustParseAddr("fd20:ce::254"),    // GCP over IPv6
	netip.MustParseAddr("fe80::a9fe:a9fe"), // OpenStack over IPv6
}

// span is a range of addresses the guard refuses, and its class.
type span struct {
	prefix netip.Prefix
	class  string
}

// spans are the ranges refused, the more specific of two nested ranges first.
// The documentation ranges (192.0.2/24, 198.51.100/24, 203.0.113/24,
// 2001:db8::/32, 3fff::/20) are not refused: no host of anyone's worth
// protecting lives there on the internet, and some networks put their
// egress proxies and mirrors in them, which names must be able to reach.
var spans = []span{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},   // IETF protocol assignments
	{netip.MustParsePrefix("192.88.99.0/24"), "reserved"}, // 6to4 relays, deprecated
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},

	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
	{netip.MustParsePrefix("2001:2::/48"), "benchmarking"},
	{netip.MustParsePrefix("fc00::/7"), "private"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

var (
	// global is where all global IPv6 unicast is; the rest is reserved
	// (discard, local NAT64, SRv6 and unassigned space) or classed above.
	global = netip.MustParsePrefix("2000::/3")
	// Addresses in these carry an IPv4 address that the traffic ends up at.
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	sixTo4 = netip.MustParsePrefix("2002::/16")
	teredo = netip.MustParsePrefix("2001::/32")
)

// Forbidden reports whether a is an address a name must not resolve to unless
// the policy names it, and which class it is in: "loopback", "private",
// "link-local", "multicast", "unspecified", "metadata", "shared (CGNAT)",
// "reserved", "broadcast", "benchmarking", "site-local",
// "IPv4-compatible", "this host" (an address in own), or one of these behind
// "NAT64 ", "6to4 " or "Teredo " for an IPv6 address that carries a forbidden
// IPv4 address. IPv6 outside 2000::/3 that is not classed otherwise is
// "reserved". A is unmapped and its zone ignored.
func Forbidden(a netip.Addr, own []netip.Addr) (class string, bad bool) {
	class, _, bad = classify(a, own)
	return class, bad
}

// classify is Forbidden that also returns the forbidden range a is in: a rule
// must lie inside it to lift the guard (see Rule.opens).
func classify(a netip.Addr, own []netip.Addr) (class string, within netip.Prefix, bad bool) {
	a = a.Unmap().WithZone("")
	if !a.IsValid() {
		return "invalid", netip.Prefix{}, true
	}
	single := netip.PrefixFrom(a, a.BitLen())
	for _, m := range metadata {
		if a == m {
			return "metadata", single, true
		}
	}
	if !a.IsLoopback() && !a.IsUnspecified() {
		for _, o := range own {
			if a == o.Unmap().WithZone("") {
				return "this host", single, true
			}
		}
	}
	if a.Is6() {
		b := a.As16()
		var embedded netip.Addr
		var bits int // where the IPv4 address starts; 0 when it is not contiguous
		switch {
		case nat64.Contains(a):
			embedded, bits, class = netip.AddrFrom4([4]byte(b[12:16])), 96, "NAT64 "
		case sixTo4.Contains(a):
			embedded, bits, class = netip.AddrFrom4([4]byte(b[2:6])), 16, "6to4 "
		case teredo.Contains(a):
			// The client's address, obscured by inverting it, is where the
			// traffic goes; the server's is checked too.
			client := netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]})
			if c, _, bad := classify(client, own); bad {
				return "Teredo " + c, single, true
			}
			embedded, class = netip.AddrFrom4([4]byte(b[4:8])), "Teredo "
		}
		if embedded.IsValid() {
			c, w, bad := classify(embedded, own)
			if !bad {
				return "", netip.Prefix{}, false
			}
			if bits == 0 {
				return class + c, single, true
			}
			return class + c, netip.PrefixFrom(a, bits+w.Bits()).Masked(), true
		}
	}
	for _, s := range spans {
		if s.prefix.Contains(a) {
			return s.class, s.prefix, true
		}
	}
	if a.Is6() && !global.Contains(a) {
		return "reserved", netip.PrefixFrom(a, 3).Masked(), true
	}
	return "", netip.Prefix{}, false
}

// OwnAddrs returns this host's interface addresses (net.InterfaceAddrs),
// unmapped and without zones; nil if they cannot be read. Addresses change
// (DHCP, VPNs), so a long-lived gateway should read them again now and then.
func OwnAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var own []netip.Addr
	for _, a := range addrs {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		}
		if x, ok := netip.AddrFromSlice(ip); ok {
			own = append(own, x.Unmap())
		}
	}
	return own
}
