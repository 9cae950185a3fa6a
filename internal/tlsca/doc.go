// Package tlsca is the certificate authority, made afresh for each run and
// kept in memory only, that lets the egress gateway inspect TLS to the
// domains a policy names.
//
// The gateway makes one CA per run, constrained to the names it will
// inspect, and gives the sandbox a trust store that adds it to the host's:
//
//	ca, err := tlsca.New(tlsca.Constraints{DNS: []string{"api.example.com", "*.example.net"}})
//	if err != nil {
//		return err
//	}
//	path, system, err := tlsca.SystemBundle()
//	if err != nil {
//		return err
//	}
//	// mount ca.Bundle(system) over path inside the sandbox
//
//	conf := &tls.Config{
//		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
//			return ca.Leaf(hello.ServerName) // or the CONNECT host: SNI never holds an IP
//		},
//		NextProtos: []string{"h2", "http/1.1"},
//	}
//
// # What it guarantees
//
// The CA's private key and the leaves' key are made by New and never leave
// the process: nothing writes them, and no method returns them, except
// that each tls.Certificate from [CA.Leaf] holds the leaf key for the
// gateway's TLS server. They die with the run.
//
// The CA certificate carries RFC 5280 name constraints, marked critical,
// that permit exactly the Constraints given: a client that honours them
// (Go's crypto/x509, OpenSSL and so curl and Python, NSS, BoringSSL)
// rejects any certificate the CA signs for another name, even one signed
// with the CA's own key (tested with Go and with openssl verify). Without
// IPs the CA excludes every IPv4 and IPv6 address; without DNS names it
// excludes every name. Its path length is zero: it cannot make another CA
// that clients would accept. A client that does not understand name
// constraints must reject the CA outright, since they are critical.
//
// Leaf never mints a certificate the constraints forbid: it returns an
// error wrapping [ErrNotPermitted] instead, so the gateway can tell the
// host is not one to inspect rather than hand a client a certificate it
// will refuse. Leaves share the CA's validity window (an hour before New
// to seven days after) and so never outlive it. At most 4096 leaves are
// kept, so a sandbox naming host after host cannot grow the gateway's
// memory without bound; past that, one is dropped for each new host.
//
// # Limits
//
// As x509 name constraints work, a permitted domain covers its subdomains
// and itself: "*.example.com" and "example.com" permit the same names.
// Which of them the gateway intercepts is its own decision.
//
// A client may ignore constraints on a trust anchor, as RFC 5280 allows
// (Java's PKIX validation applies only those handed to its TrustAnchor
// apart from the certificate). For such a client the constraints protect
// nothing; what
// remains is that the CA is trusted only inside the sandbox and its key
// exists only in the gateway's memory.
//
// Email, URI and directory-name constraints are not set: a leaked key
// could sign, say, an S/MIME certificate, which matters nowhere the CA is
// trusted.
//
// [SystemBundle] finds the one-file trust store that OpenSSL, GnuTLS and
// Go read. Programs with a trust store of their own (Python's certifi,
// Node.js, Java's cacerts, Firefox) do not see the bundle unless pointed
// at it, by SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS and
// the like; that is the launcher's business.
package tlsca
