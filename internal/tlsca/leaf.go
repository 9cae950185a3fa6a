package tlsca

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ErrNotPermitted is wrapped by Leaf's error for a host outside the CA's
// constraints: a certificate for it would be rejected by clients.
var ErrNotPermitted = errors.New("outside the CA's name constraints")

// An entry is a leaf being minted or minted. done is closed once cert and
// err are set, so that concurrent first calls for a host mint once.
type entry struct {
	done chan struct{}
	cert *tls.Certificate
	err  error
}

// Leaf returns a certificate for host, signed by the CA, for a TLS server
// to present. host is a DNS name (matched in any case, a trailing dot
// ignored) or an IP address literal without brackets or zone. A host that
// is not a valid name, or that the CA's constraints do not permit, is an
// error naming it (wrapping ErrNotPermitted for the latter); Leaf never
// mints a certificate that a client honouring the constraints would reject.
//
// The certificate has host as its only subject alternative name, an empty
// subject, the CA's validity window, and the CA's one leaf key. Leaves are
// kept per host, up to a bound; the same *tls.Certificate is returned
// again, and must not be changed.
func (ca *CA) Leaf(host string) (*tls.Certificate, error) {
	addr, name, err := parseHost(host)
	if err != nil {
		return nil, err
	}
	if !ca.permits(addr, name) {
		return nil, fmt.Errorf("certificate for %q: %w", host, ErrNotPermitted)
	}
	key := name
	if addr.IsValid() {
		key = addr.String()
	}

	ca.mu.Lock()
	if e, ok := ca.cache[key]; ok {
		ca.mu.Unlock()
		<-e.done
		return e.cert, e.err
	}
	e := &entry{done: make(chan struct{})}
	if len(ca.cache) >= ca.maxCache {
		// Evict one, whichever the map yields first: cheap, and a host
		// evicted and asked for again costs only one more signature.
		for k := range ca.cache {
			delete(ca.cache, k)
			break
		}
	}
	ca.cache[key] = e
	ca.mu.Unlock()

	e.cert, e.err = ca.mint(addr, name, key)
	if e.err != nil {
		ca.mu.Lock()
		if ca.cache[key] == e { // a later call tries again
			delete(ca.cache, key)
		}
		ca.mu.Unlock()
	}
	close(e.done)
	return e.cert, e.err
}

// mint signs a leaf for addr, if valid, or else name; host names it in errors.
func (ca *CA) mint(addr netip.Addr, name, host string) (*tls.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		// The subject is empty (so x509 marks the SAN extension critical,
		// as RFC 5280 asks): a common name would be read by OpenSSL's
		// name-constraint check as a DNS name when the SAN is an IP.
		NotBefore:             ca.cert.NotBefore,
		NotAfter:              ca.cert.NotAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if addr.IsValid() {
		tmpl.IPAddresses = []net.IP{addr.AsSlice()}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &ca.leafKey.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("creating a certificate for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the certificate for %s: %w", host, err)
	}
	return &tls.Certificate{
		// The leaf alone: clients hold the CA as a trust anchor, so
		// sending it too would only add its bytes to every handshake.
		Certificate: [][]byte{der},
		PrivateKey:  ca.leafKey,
		Leaf:        leaf,
	}, nil
}

// permits says whether the CA's constraints permit addr, if valid, or else
// name, as x509 name constraints match: a domain permits itself and its
// subdomains.
func (ca *CA) permits(addr netip.Addr, name string) bool {
	if addr.IsValid() {
		for _, p := range ca.ips {
			if p.Contains(addr) {
				return true
			}
		}
		return false
	}
	for _, d := range ca.dns {
		if name == d || strings.HasSuffix(name, "."+d) {
			return true
		}
	}
	return false
}

// parseHost returns host as an IP address, if it is one, or else as a DNS
// name in lower case without a trailing dot.
func parseHost(host string) (netip.Addr, string, error) {
	if addr, err := netip.ParseAddr(host); err == nil {
		if addr.Zone() != "" {
			return netip.Addr{}, "", fmt.Errorf("invalid host %q: IP address with a zone", clip(host))
		}
		// x509 writes a mapped address as IPv4, and clients match it so.
		return addr.Unmap(), "", nil
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if err := checkDNSName(name); err != nil {
		return netip.Addr{}, "", fmt.Errorf("invalid host %q: %w", clip(host), err)
	}
	return netip.Addr{}, name, nil
}

// checkDNSName accepts a lower-case DNS name as Go's x509 hostname
// matching does: at most 253 bytes; labels of 1 to 63 bytes of letters,
// digits, '-' (not first) and '_'. No wildcards, no Unicode (clients send
// IDNs as punycode, xn--…).
func checkDNSName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > 253 {
		return fmt.Errorf("name of %d bytes, over 253", len(name))
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("label of %d bytes", len(label))
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_':
			case c == '-' && i > 0:
			default:
				return fmt.Errorf("character %q in label %q", c, label)
			}
		}
	}
	return nil
}

// clip shortens a host from the sandbox for an error message.
func clip(s string) string {
	if len(s) > 256 {
		return s[:256] + "..."
	}
	return s
}
