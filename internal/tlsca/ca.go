package tlsca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Constraints limit what the CA may sign: it is made name-constrained
// (RFC 5280 name constraints, marked critical) to exactly these, so a
// leaked CA certificate vouches for nothing else.
type Constraints struct {
	// DNS holds host names. "*.example.com" means the subdomains of
	// example.com, "example.com" the name itself; as x509 name
	// constraints work, either permits both (see the package comment).
	DNS []string
	// IPs holds the IP literals the gateway may inspect; a single
	// address is a /32 or /128. Empty: the CA vouches for no IP address.
	IPs []netip.Prefix
}

// A CA is a certificate authority made for one run. Safe for concurrent
// use. Its keys exist only in this process's memory: no method returns
// them, except that a leaf's key is in the tls.Certificate that Leaf
// returns, for the gateway's TLS server.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey // the CA's: signs leaves
	leafKey *ecdsa.PrivateKey // one for every leaf, so minting is one signature

	dns []string       // permitted domains, lower case, without "*." or a trailing dot
	ips []netip.Prefix // permitted prefixes, masked; none: no IP literal

	mu       sync.Mutex
	cache    map[string]*entry // by host as normalised
	maxCache int
}

// maxCache bounds the leaves a CA keeps, so that a sandbox naming host
// after host cannot make the gateway hold unbounded memory: a leaf with
// its parsed form is a few kilobytes, so the cache stays within some
// megabytes.
const maxCache = 4096

// validity is how long the CA and its leaves are valid from New on. Runs
// can be long; a CA is made per run and lives in memory only, so a long
// window costs little.
const validity = 7 * 24 * time.Hour

// New makes a CA that may sign for c and nothing else, with a fresh ECDSA
// P-256 key, and a second key for its leaves. An entry of c.DNS that is
// not a host name (after "*."), or an invalid prefix, is an error. A
// CA with no DNS and no IPs is valid and vouches for nothing.
func New(c Constraints) (*CA, error) {
	dns, err := permittedDNS(c.DNS)
	if err != nil {
		return nil, err
	}
	ips, err := permittedIPs(c.IPs)
	if err != nil {
		return nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the CA key: %w", err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the leaf key: %w", err)
	}

	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject: pkix.Name{
			CommonName:   "Cordon run CA " + hex.EncodeToString(random(4)),
			Organization: []string{"Cordon"},
		},
		// An hour back, for a sandbox clock a little behind the host's.
		NotBefore: now.Add(-time.Hour),
		NotAfter:  now.Add(validity),

		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true, // no intermediate below it
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,

		PermittedDNSDomainsCritical: true, // marks the whole extension critical
		PermittedDNSDomains:         dns,
	}
	if len(dns) == 0 {
		// No permitted domain would leave DNS names unconstrained: exclude
		// them all. An empty constraint matches every name, in Go's x509
		// and in OpenSSL alike (tested).
		tmpl.ExcludedDNSDomains = []string{""}
	}
	if len(ips) == 0 {
		// Likewise, no permitted range would leave IP addresses open.
		tmpl.ExcludedIPRanges = []*net.IPNet{ipNet(netip.MustParsePrefix("0.0.0.0/0")), ipNet(netip.MustParsePrefix("::/0"))}
	}
	for _, p := range ips {
		tmpl.PermittedIPRanges = append(tmpl.PermittedIPRanges, ipNet(p))
	}

	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the CA certificate: %w", err)
	}
	return &CA{
		cert:     cert,
		certPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:      key,
		leafKey:  leafKey,
		dns:      dns,
		ips:      ips,
		cache:    make(map[string]*entry),
		maxCache: maxCache,
	}, nil
}

// CertPEM returns the CA certificate, PEM-encoded. The caller must not
// change it.
func (ca *CA) CertPEM() []byte { return ca.certPEM }

// Certificate returns the CA certificate. The caller must not change it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// bundleComment precedes the CA in Bundle's output. PEM readers skip text
// outside BEGIN/END lines.
const bundleComment = "# Cordon run CA: trusted inside this sandbox only\n"

// Bundle returns the trust store the sandbox sees: system (see
// SystemBundle), a newline if it lacks a final one, a comment line, and
// the CA certificate.
func (ca *CA) Bundle(system []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(system) + 1 + len(bundleComment) + len(ca.certPEM))
	b.Write(system)
	if len(system) > 0 && system[len(system)-1] != '\n' {
		b.WriteByte('\n')
	}
	b.WriteString(bundleComment)
	b.Write(ca.certPEM)
	return b.Bytes()
}

// permittedDNS normalises Constraints.DNS.
func permittedDNS(names []string) ([]string, error) {
	var out []string
	for i, name := range names {
		d := strings.TrimPrefix(strings.TrimSuffix(strings.ToLower(name), "."), "*.")
		if err := checkDNSName(d); err != nil {
			return nil, fmt.Errorf("name constraint DNS[%d] %q: %w", i, clip(name), err)
		}
		out = append(out, d)
	}
	return out, nil
}

// permittedIPs normalises Constraints.IPs.
func permittedIPs(prefixes []netip.Prefix) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, p := range prefixes {
		if !p.IsValid() {
			return nil, fmt.Errorf("name constraint IPs[%d]: invalid prefix %q", i, p)
		}
		// Go's x509 writes an IPv4-mapped address as 4 bytes, so a mapped
		// prefix must be constrained as the IPv4 one to match it.
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("name constraint IPs[%d] %q: wider than the IPv4-mapped range", i, p)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// serial returns a random positive 128-bit serial number.
func serial() *big.Int {
	b := random(16)
	b[0] |= 0x80 // exactly 128 bits, and never zero
	return new(big.Int).SetBytes(b)
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails: crypto/rand crashes the program instead
	return b
}
