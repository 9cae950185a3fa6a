package tlsca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func newCA(t testing.TB, c Constraints) *CA {
	t.Helper()
	ca, err := New(c)
	if err != nil {
		t.Fatalf("New(%+v): %v", c, err)
	}
	return ca
}

// poolOf holds only the CA, read from its PEM as a client would.
func poolOf(t testing.TB, ca *CA) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.CertPEM()) {
		t.Fatal("AppendCertsFromPEM(CertPEM()) = false")
	}
	return pool
}

// verify checks cert against pool as a TLS client connecting to host
// would; with host "" it checks the chain and the name constraints only.
func verify(cert *x509.Certificate, pool *x509.CertPool, host string) error {
	_, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: host})
	return err
}

func prefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func TestLeafDNS(t *testing.T) {
	tests := []struct {
		name string
		dns  []string
		host string
		ok   bool
	}{
		{"exact", []string{"api.example.test"}, "api.example.test", true},
		{"other domain", []string{"api.example.test"}, "other.test", false},
		{"suffix not at a dot", []string{"api.example.test"}, "xapi.example.test", false},
		{"parent", []string{"api.example.test"}, "example.test", false},
		{"subdomain of a name", []string{"api.example.test"}, "sub.api.example.test", true},
		{"subdomain of a wildcard", []string{"*.api.example.test"}, "sub.api.example.test", true},
		{"deep subdomain of a wildcard", []string{"*.api.example.test"}, "a.b.api.example.test", true},
		{"wildcard's own name, as x509 permits it", []string{"*.api.example.test"}, "api.example.test", true},
		{"case and trailing dot", []string{"API.Example.Test."}, "Sub.API.example.TEST.", true},
		{"second entry", []string{"a.test", "b.test"}, "www.b.test", true},
		{"no DNS at all", nil, "api.example.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := newCA(t, Constraints{DNS: tt.dns})
			cert, err := ca.Leaf(tt.host)
			if !tt.ok {
				if !errors.Is(err, ErrNotPermitted) || !strings.Contains(err.Error(), tt.host) {
					t.Fatalf("Leaf(%q) = %v, want an error naming the host and wrapping ErrNotPermitted", tt.host, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Leaf(%q): %v", tt.host, err)
			}
			if err := verify(cert.Leaf, poolOf(t, ca), tt.host); err != nil {
				t.Fatalf("Verify(Leaf(%q)) = %v, want nil", tt.host, err)
			}
			want := strings.TrimSuffix(strings.ToLower(tt.host), ".")
			if got := cert.Leaf.DNSNames; len(got) != 1 || got[0] != want || len(cert.Leaf.IPAddresses) != 0 {
				t.Errorf("Leaf(%q) SANs = %q %v, want only %q", tt.host, got, cert.Leaf.IPAddresses, want)
			}
			checkLeafShape(t, ca, cert)
		})
	}
}

// checkLeafShape checks what every leaf must be, whatever its host.
func checkLeafShape(t *testing.T, ca *CA, cert *tls.Certificate) {
	t.Helper()
	l := cert.Leaf
	if len(cert.Certificate) != 1 || !bytes.Equal(cert.Certificate[0], l.Raw) {
		t.Errorf("Certificate chain has %d entries, want [Leaf.Raw]", len(cert.Certificate))
	}
	if l.IsCA || l.KeyUsage != x509.KeyUsageDigitalSignature ||
		len(l.ExtKeyUsage) != 1 || l.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("leaf IsCA %v, KeyUsage %v, ExtKeyUsage %v; want false, DigitalSignature, [ServerAuth]", l.IsCA, l.KeyUsage, l.ExtKeyUsage)
	}
	if !l.NotBefore.Equal(ca.cert.NotBefore) || !l.NotAfter.Equal(ca.cert.NotAfter) {
		t.Errorf("leaf valid %v..%v, want the CA's %v..%v", l.NotBefore, l.NotAfter, ca.cert.NotBefore, ca.cert.NotAfter)
	}
	if cert.PrivateKey != ca.leafKey {
		t.Errorf("leaf PrivateKey is not the CA's one leaf key")
	}
	if pub, ok := l.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&ca.leafKey.PublicKey) {
		t.Errorf("leaf public key does not match the leaf key")
	}
	if err := l.CheckSignatureFrom(ca.cert); err != nil {
		t.Errorf("leaf not signed by the CA: %v", err)
	}
}

func TestLeafIP(t *testing.T) {
	tests := []struct {
		name string
		ips  []netip.Prefix
		host string
		ok   bool
	}{
		{"permitted /32", prefixes("127.0.0.1/32"), "127.0.0.1", true},
		{"outside /32", prefixes("127.0.0.1/32"), "10.0.0.1", false},
		{"IPv6 with only IPv4 permitted", prefixes("127.0.0.1/32"), "::1", false},
		{"no IPs", nil, "127.0.0.1", false},
		{"no IPs, IPv6", nil, "::1", false},
		{"permitted /128", prefixes("::1/128"), "::1", true},
		{"in a /8", prefixes("10.0.0.0/8"), "10.20.30.40", true},
		{"IPv4-mapped in a /8", prefixes("10.0.0.0/8"), "::ffff:10.20.30.40", true},
		{"IPv4-mapped prefix", prefixes("::ffff:10.0.0.0/104"), "10.20.30.40", true},
		{"unmasked prefix", prefixes("192.168.1.7/24"), "192.168.1.200", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := newCA(t, Constraints{DNS: []string{"example.test"}, IPs: tt.ips})
			cert, err := ca.Leaf(tt.host)
			if !tt.ok {
				if !errors.Is(err, ErrNotPermitted) {
					t.Fatalf("Leaf(%q) = %v, want ErrNotPermitted", tt.host, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Leaf(%q): %v", tt.host, err)
			}
			if err := verify(cert.Leaf, poolOf(t, ca), tt.host); err != nil {
				t.Fatalf("Verify(Leaf(%q)) = %v, want nil", tt.host, err)
			}
			want := netip.MustParseAddr(tt.host).Unmap()
			if got := cert.Leaf.IPAddresses; len(got) != 1 || len(cert.Leaf.DNSNames) != 0 {
				t.Errorf("Leaf(%q) SANs = %q %v, want only %v", tt.host, cert.Leaf.DNSNames, got, want)
			} else if a, _ := netip.AddrFromSlice(got[0]); a.Unmap() != want {
				t.Errorf("Leaf(%q) IP SAN = %v, want %v", tt.host, got[0], want)
			}
			checkLeafShape(t, ca, cert)
		})
	}
}

func TestLeafInvalidHost(t *testing.T) {
	ca := newCA(t, Constraints{DNS: []string{"example.test"}, IPs: prefixes("0.0.0.0/0", "::/0")})
	long := strings.Repeat("a.", 123) + "example.test" // 258 bytes
	for _, host := range []string{
		"",
		".",
		"a/b.example.test",
		"a b.example.test",
		" example.test",
		long,
		strings.Repeat("a", 64) + ".example.test",
		"*.example.test",
		"a..example.test",
		".example.test",
		"-a.example.test",
		"[::1]",
		"fe80::1%eth0",
		"127.0.0.1:443",
		"bücher.example.test",
		"a\x00.example.test",
	} {
		if cert, err := ca.Leaf(host); err == nil || errors.Is(err, ErrNotPermitted) {
			t.Errorf("Leaf(%q) = %v, %v; want an invalid-host error", clip(host), cert, err)
		}
	}
	// The longest valid name is accepted.
	host := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 48) + ".example.test"
	if len(host) != 253 {
		t.Fatalf("test host is %d bytes, want 253", len(host))
	}
	if _, err := ca.Leaf(host); err != nil {
		t.Errorf("Leaf(253-byte name): %v", err)
	}
}

func TestNewInvalid(t *testing.T) {
	for _, c := range []Constraints{
		{DNS: []string{""}},
		{DNS: []string{"*"}},
		{DNS: []string{"*."}},
		{DNS: []string{"*.*.example.test"}},
		{DNS: []string{"exa mple.test"}},
		{DNS: []string{"example.test", "a/b"}},
		{IPs: []netip.Prefix{{}}},
		{IPs: prefixes("::ffff:0:0/80")},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) = nil error, want one", c)
		}
	}
}

func TestCACertificate(t *testing.T) {
	before := time.Now()
	ca := newCA(t, Constraints{DNS: []string{"*.example.test", "api.other.test"}})
	c := ca.Certificate()

	block, rest := pem.Decode(ca.CertPEM())
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 || !bytes.Equal(block.Bytes, c.Raw) {
		t.Fatalf("CertPEM() is not one CERTIFICATE block of Certificate().Raw")
	}
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("IsCA %v, MaxPathLen %d, MaxPathLenZero %v; want a CA with path length 0", c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
	}
	if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("KeyUsage = %v, want CertSign|CRLSign", c.KeyUsage)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if n := c.SerialNumber.BitLen(); n != 128 {
		t.Errorf("serial number of %d bits, want 128", n)
	}
	if !strings.HasPrefix(c.Subject.CommonName, "Cordon run CA ") || len(c.Subject.CommonName) != len("Cordon run CA ")+8 ||
		len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != "Cordon" {
		t.Errorf("subject %q, want CN \"Cordon run CA <8 hex>\", O \"Cordon\"", c.Subject)
	}
	if c.NotBefore.After(before.Add(-59*time.Minute)) || c.NotAfter.Before(before.Add(7*24*time.Hour-time.Minute)) ||
		c.NotAfter.After(time.Now().Add(7*24*time.Hour)) {
		t.Errorf("valid %v..%v, want an hour before now to 7 days after", c.NotBefore, c.NotAfter)
	}

	var critical bool
	for _, ext := range c.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 30}) {
			critical = ext.Critical
		}
	}
	if !critical {
		t.Errorf("name constraints extension missing or not critical")
	}
	if got := c.PermittedDNSDomains; len(got) != 2 || got[0] != "example.test" || got[1] != "api.other.test" {
		t.Errorf("PermittedDNSDomains = %q, want [example.test api.other.test]", got)
	}
	if len(c.PermittedIPRanges) != 0 || len(c.ExcludedIPRanges) != 2 ||
		c.ExcludedIPRanges[0].String() != "0.0.0.0/0" || c.ExcludedIPRanges[1].String() != "::/0" {
		t.Errorf("IP ranges permitted %v, excluded %v; want none, all", c.PermittedIPRanges, c.ExcludedIPRanges)
	}

	// Two CAs share nothing.
	ca2 := newCA(t, Constraints{DNS: []string{"example.test"}})
	if ca.key.Equal(ca2.key) || ca.leafKey.Equal(ca2.leafKey) || ca.leafKey.Equal(ca.key) ||
		c.SerialNumber.Cmp(ca2.cert.SerialNumber) == 0 || c.Subject.CommonName == ca2.cert.Subject.CommonName {
		t.Errorf("two CAs share a key, a serial or a name")
	}
}

// handSign signs a leaf with the CA's own key, as a thief of the key could,
// bypassing Leaf's checks.
func handSign(t *testing.T, ca *CA, cn string, dns []string, ips []string) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             ca.cert.NotBefore,
		NotAfter:              ca.cert.NotAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              dns,
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &ca.leafKey.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("CreateCertificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	return cert
}

// handSigned lists leaves signed with the CA key, for two CAs: one for a
// DNS name and no IP, one for an IP and no DNS name.
var handSigned = []struct {
	name string
	c    Constraints
	cn   string
	dns  []string
	ips  []string
	ok   bool
}{
	{"permitted name (control)", Constraints{DNS: []string{"api.example.test"}}, "", []string{"api.example.test"}, nil, true},
	{"other name", Constraints{DNS: []string{"api.example.test"}}, "", []string{"other.test"}, nil, false},
	{"permitted and other name", Constraints{DNS: []string{"api.example.test"}}, "", []string{"api.example.test", "other.test"}, nil, false},
	{"IPv4 with none permitted", Constraints{DNS: []string{"api.example.test"}}, "", nil, []string{"10.0.0.1"}, false},
	{"IPv6 with none permitted", Constraints{DNS: []string{"api.example.test"}}, "", nil, []string{"2001:db8::1"}, false},
	{"permitted IP (control)", Constraints{IPs: prefixes("127.0.0.1/32")}, "", nil, []string{"127.0.0.1"}, true},
	{"other IP", Constraints{IPs: prefixes("127.0.0.1/32")}, "", nil, []string{"10.0.0.1"}, false},
	{"name with no DNS permitted", Constraints{IPs: prefixes("127.0.0.1/32")}, "", []string{"api.example.test"}, nil, false},
}

// TestConstraintsInCertificate proves that the constraints are in the CA
// certificate, not only in Leaf's checks: Go's x509 rejects leaves signed
// with the CA key outside them, checking no host name at all.
func TestConstraintsInCertificate(t *testing.T) {
	for _, tt := range handSigned {
		t.Run(tt.name, func(t *testing.T) {
			ca := newCA(t, tt.c)
			leaf := handSign(t, ca, tt.cn, tt.dns, tt.ips)
			err := verify(leaf, poolOf(t, ca), "")
			if tt.ok {
				if err != nil {
					t.Fatalf("Verify(hand-signed %v %v) = %v, want nil", tt.dns, tt.ips, err)
				}
				return
			}
			var inv x509.CertificateInvalidError
			if !errors.As(err, &inv) || inv.Reason != x509.CANotAuthorizedForThisName {
				t.Fatalf("Verify(hand-signed %v %v) = %v, want CANotAuthorizedForThisName", tt.dns, tt.ips, err)
			}
		})
	}
}

func requireOpenSSL(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("no openssl binary:", err)
	}
	return path
}

// opensslVerify runs openssl verify on leaf with only the CA as trust.
func opensslVerify(t *testing.T, openssl string, ca *CA, leaf []byte, args ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	caFile, leafFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "leaf.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(leafFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf}), 0o600); err != nil {
		t.Fatal(err)
	}
	args = append(append([]string{"verify", "-CAfile", caFile}, args...), leafFile)
	out, err := exec.Command(openssl, args...).CombinedOutput()
	return string(out), err
}

func TestOpenSSLVerify(t *testing.T) {
	openssl := requireOpenSSL(t)

	t.Run("Leaf", func(t *testing.T) {
		ca := newCA(t, Constraints{DNS: []string{"*.example.test"}, IPs: prefixes("127.0.0.1/32", "::1/128")})
		for _, tt := range []struct{ host, flag string }{
			{"api.example.test", "-verify_hostname"},
			{"127.0.0.1", "-verify_ip"},
			{"::1", "-verify_ip"},
		} {
			cert, err := ca.Leaf(tt.host)
			if err != nil {
				t.Fatalf("Leaf(%q): %v", tt.host, err)
			}
			if out, err := opensslVerify(t, openssl, ca, cert.Certificate[0], tt.flag, tt.host); err != nil {
				t.Errorf("openssl verify %s %s: %v\n%s", tt.flag, tt.host, err, out)
			}
		}
	})

	hand := append(handSigned[:len(handSigned):len(handSigned)], struct {
		name string
		c    Constraints
		cn   string
		dns  []string
		ips  []string
		ok   bool
	}{"common name only", Constraints{DNS: []string{"api.example.test"}}, "other.test", nil, nil, false})
	for _, tt := range hand {
		t.Run("hand-signed "+tt.name, func(t *testing.T) {
			ca := newCA(t, tt.c)
			leaf := handSign(t, ca, tt.cn, tt.dns, tt.ips)
			out, err := opensslVerify(t, openssl, ca, leaf.Raw)
			if tt.ok {
				if err != nil {
					t.Fatalf("openssl verify: %v\n%s", err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("openssl verify accepted a leaf for %q %v %v outside the constraints:\n%s", tt.cn, tt.dns, tt.ips, out)
			}
			if !strings.Contains(out, "subtree violation") {
				t.Errorf("openssl verify failed, but not for the name constraints:\n%s", out)
			}
			t.Logf("openssl verify: %s", strings.TrimSpace(out))
		})
	}
}

func TestHandshake(t *testing.T) {
	ca := newCA(t, Constraints{DNS: []string{"api.example.test"}})
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()

	server := tls.Server(sc, &tls.Config{
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			return ca.Leaf(hello.ServerName)
		},
		NextProtos: []string{"h2", "http/1.1"},
	})
	client := tls.Client(cc, &tls.Config{
		RootCAs:    poolOf(t, ca),
		ServerName: "api.example.test",
		NextProtos: []string{"h2", "http/1.1"},
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	serverErr := make(chan error, 1)
	go func() { serverErr <- server.HandshakeContext(ctx) }()
	if err := client.HandshakeContext(ctx); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-serverErr; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	st := client.ConnectionState()
	if st.NegotiatedProtocol != "h2" {
		t.Errorf("negotiated %q, want h2", st.NegotiatedProtocol)
	}
	if len(st.VerifiedChains) == 0 || st.PeerCertificates[0].DNSNames[0] != "api.example.test" {
		t.Errorf("client did not verify a leaf for api.example.test")
	}

}

// TestOpenSSLClients has curl and Python, which verify with OpenSSL, fetch
// from an HTTPS server presenting Leaf, trusting only Bundle.
func TestOpenSSLClients(t *testing.T) {
	ca := newCA(t, Constraints{DNS: []string{"api.example.test"}, IPs: prefixes("127.0.0.1/32")})
	_, system, err := SystemBundle()
	if err != nil {
		system = nil // the CA alone will do
	}
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(bundle, ca.Bundle(system), 0o600); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "inspected") }),
		TLSConfig: &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if hello.ServerName != "" {
				return ca.Leaf(hello.ServerName)
			}
			// No SNI for an IP address: the gateway uses the CONNECT host.
			host, _, _ := net.SplitHostPort(hello.Conn.LocalAddr().String())
			return ca.Leaf(host)
		}},
	}
	go srv.ServeTLS(ln, "", "")
	defer srv.Close()

	urls := []string{
		fmt.Sprintf("https://api.example.test:%d/", port),
		fmt.Sprintf("https://127.0.0.1:%d/", port),
	}
	t.Run("curl", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			t.Skip("no curl:", err)
		}
		for _, u := range urls {
			out, err := exec.Command(curl, "-sS", "--max-time", "10", "--noproxy", "*", "--cacert", bundle,
				"--resolve", fmt.Sprintf("api.example.test:%d:127.0.0.1", port), u).CombinedOutput()
			if err != nil || string(out) != "inspected" {
				t.Errorf("curl %s: %v\n%s", u, err, out)
			}
		}
	})
	t.Run("python", func(t *testing.T) {
		python, err := exec.LookPath("python3")
		if err != nil {
			t.Skip("no python3:", err)
		}
		const script = `
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
for host in ("api.example.test", "127.0.0.1"):
    with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname=host) as tls:
            print(host, tls.version())
`
		out, err := exec.Command(python, "-c", script, bundle, fmt.Sprint(port)).CombinedOutput()
		if err != nil {
			t.Errorf("python ssl: %v\n%s", err, out)
		}
	})
}

func TestLeafCache(t *testing.T) {
	ca := newCA(t, Constraints{DNS: []string{"example.test"}, IPs: prefixes("127.0.0.1/32")})

	a, err := ca.Leaf("a.example.test")
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"a.example.test", "A.Example.TEST", "a.example.test."} {
		if b, err := ca.Leaf(host); err != nil || b != a {
			t.Errorf("Leaf(%q) = %p, %v; want the cached %p", host, b, err, a)
		}
	}
	if b, _ := ca.Leaf("b.example.test"); b == a {
		t.Errorf("Leaf of two hosts returned one certificate")
	}

	// Concurrent first calls for a host mint once and all get that leaf.
	hosts := []string{"c.example.test", "d.example.test", "127.0.0.1"}
	got := make([][]*tls.Certificate, len(hosts))
	var wg sync.WaitGroup
	for i, host := range hosts {
		got[i] = make([]*tls.Certificate, 32)
		for j := range got[i] {
			wg.Go(func() {
				cert, err := ca.Leaf(host)
				if err != nil {
					t.Errorf("Leaf(%q): %v", host, err)
				}
				got[i][j] = cert
			})
		}
	}
	wg.Wait()
	for i, certs := range got {
		for _, c := range certs {
			if c == nil || c != certs[0] {
				t.Fatalf("concurrent Leaf(%q) returned different certificates", hosts[i])
			}
		}
	}
}

func TestLeafCacheBound(t *testing.T) {
	ca := newCA(t, Constraints{DNS: []string{"example.test"}})
	ca.maxCache = 3
	pool := poolOf(t, ca)
	for i := range 10 {
		host := fmt.Sprintf("h%d.example.test", i)
		cert, err := ca.Leaf(host)
		if err != nil {
			t.Fatalf("Leaf(%q): %v", host, err)
		}
		if err := verify(cert.Leaf, pool, host); err != nil {
			t.Fatalf("Verify(Leaf(%q)) = %v", host, err)
		}
		ca.mu.Lock()
		n := len(ca.cache)
		ca.mu.Unlock()
		if n > 3 {
			t.Fatalf("after %d hosts the cache holds %d leaves, want at most 3", i+1, n)
		}
	}
	// The last host is kept.
	a, _ := ca.Leaf("h9.example.test")
	if b, _ := ca.Leaf("h9.example.test"); a != b {
		t.Errorf("the newest host was not kept")
	}
}

// pemCerts parses every certificate in a PEM bundle, failing on any that
// does not parse.
func pemCerts(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return certs
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("certificate %d in the bundle: %v", len(certs), err)
		}
		certs = append(certs, c)
	}
}

func TestBundle(t *testing.T) {
	ca := newCA(t, Constraints{DNS: []string{"example.test"}})
	other := newCA(t, Constraints{DNS: []string{"other.test"}})
	otherPEM := bytes.TrimSuffix(other.CertPEM(), []byte("\n")) // no final newline

	systems := map[string][]byte{
		"empty":            nil,
		"no final newline": otherPEM,
		"final newline":    other.CertPEM(),
	}
	if _, system, err := SystemBundle(); err == nil {
		systems["this host's"] = system
	}
	for name, system := range systems {
		t.Run(name, func(t *testing.T) {
			b := ca.Bundle(system)
			if !bytes.HasPrefix(b, system) {
				t.Fatalf("Bundle does not start with the system bundle")
			}
			tail := "# Cordon run CA: trusted inside this sandbox only\n" + string(ca.CertPEM())
			if !strings.HasSuffix(string(b), tail) {
				t.Fatalf("Bundle does not end with the comment and the CA:\n%s", b[max(0, len(b)-len(tail)-40):])
			}
			wantLen := len(system) + len(tail)
			if len(system) > 0 && system[len(system)-1] != '\n' {
				wantLen++
			}
			if len(b) != wantLen || (len(system) > 0 && b[len(b)-len(tail)-1] != '\n') {
				t.Fatalf("Bundle is %d bytes, want %d: the system bundle, a newline if it lacks one, the comment, the CA", len(b), wantLen)
			}

			want := len(pemCerts(t, system)) + 1
			certs := pemCerts(t, b)
			if len(certs) != want || !certs[len(certs)-1].Equal(ca.cert) {
				t.Fatalf("Bundle holds %d certificates, want %d ending with the CA", len(certs), want)
			}

			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b) {
				t.Fatal("AppendCertsFromPEM(Bundle) = false")
			}
			leaf, err := ca.Leaf("api.example.test")
			if err != nil {
				t.Fatal(err)
			}
			if err := verify(leaf.Leaf, pool, "api.example.test"); err != nil {
				t.Fatalf("Verify(leaf) against the bundle: %v", err)
			}
		})
	}
}

func TestSystemBundle(t *testing.T) {
	path, b, err := SystemBundle()
	if err != nil {
		for _, p := range systemBundles {
			if _, serr := os.Stat(p); serr == nil {
				t.Fatalf("SystemBundle() = %v, but %s exists", err, p)
			}
		}
		t.Skip("no system trust store on this host:", err)
	}
	const debian = "/etc/ssl/certs/ca-certificates.crt"
	if fi, err := os.Stat(debian); err == nil && fi.Mode().IsRegular() && fi.Size() > 0 && path != debian {
		t.Errorf("SystemBundle() path = %q, want %q", path, debian)
	}
	want, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(b, want) {
		t.Errorf("SystemBundle() bytes differ from %s (%v)", path, err)
	}
	if n := len(pemCerts(t, b)); n == 0 {
		t.Errorf("SystemBundle() = %s with no certificates", path)
	}
}

// FuzzLeaf holds Leaf to its promise for any host a sandbox may send:
// either an error, or a certificate that Go's x509 accepts for that host.
func FuzzLeaf(f *testing.F) {
	for _, s := range []string{
		"example.test", "A.EXAMPLE.TEST.", "b.test", "x.b.test", "other.test", "127.0.0.1", "127.1.2.3",
		"::1", "::ffff:127.0.0.1", "10.0.0.1", "", ".", "a..example.test", "-a.example.test", "a_b.example.test",
		"1.2.3.4.example.test", "01.2.3.4", "*.example.test", "[::1]", "fe80::1%1",
	} {
		f.Add(s)
	}
	ca := newCA(f, Constraints{DNS: []string{"example.test", "*.b.test"}, IPs: prefixes("127.0.0.0/8", "::1/128")})
	pool := poolOf(f, ca)
	f.Fuzz(func(t *testing.T, host string) {
		cert, err := ca.Leaf(host)
		if err != nil {
			return
		}
		if err := verify(cert.Leaf, pool, host); err != nil {
			t.Fatalf("Leaf(%q) minted a certificate that does not verify: %v", host, err)
		}
		if again, err := ca.Leaf(host); err != nil || again != cert {
			t.Fatalf("Leaf(%q) again = %p, %v; want %p", host, again, err, cert)
		}
	})
}

func BenchmarkLeaf(b *testing.B) {
	ca := newCA(b, Constraints{DNS: []string{"example.test"}})
	i := 0
	for b.Loop() {
		if _, err := ca.Leaf(fmt.Sprintf("h%d.example.test", i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkLeafCached(b *testing.B) {
	ca := newCA(b, Constraints{DNS: []string{"example.test"}})
	if _, err := ca.Leaf("api.example.test"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := ca.Leaf("api.example.test"); err != nil {
			b.Fatal(err)
		}
	}
}
