package gateway

// Benchmarks of what watching and inspecting cost; docs/BENCHMARKS.md,
// "Secrets: scanning and inspection", has the results and the commands.

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/internal/canary"
	"github.com/cordon-sandbox/cordon/internal/tlsca"
)

// uploadSize is what one BenchmarkScanCost upload sends.
const uploadSize = 256 << 20

// BenchmarkScanCost uploads 256 MiB of text (random base64, the hardest
// ordinary data for the scanner's prefilter: every byte is in the
// alphabet of some spelling) through a CONNECT tunnel, whose up direction
// is what is scanned, to a gateway without watched tokens and to one with
// the tokens of a run: 25 canaries and 40 credential values of the host,
// random, as a run with decoys on a well-stocked home would have. The two
// alternate within the loop, so drift in the machine's load hits both;
// each iteration is one upload of each. x-unscanned is the scanned rate
// over the unscanned one.
func BenchmarkScanCost(b *testing.B) {
	sink := startDiscard(b)
	tokens := make([]string, 65)
	for i := range tokens {
		tokens[i] = randomText(20 + i%30)
	}
	sc, err := canary.New(tokens)
	if err != nil {
		b.Fatal(err)
	}
	sc.Prepare()
	plain := startGateway(b, Config{Rules: rules(b, []string{sink}, nil)})
	scanned := startGateway(b, Config{Rules: rules(b, []string{sink}, nil), Canaries: sc})
	chunk := []byte(randomText(1 << 20))
	upload := func(tg *testGateway) time.Duration {
		start := time.Now()
		c, err := dialTunnel(tg.httpAddr, sink)
		if err != nil {
			b.Fatal(err)
		}
		for sent := 0; sent < uploadSize; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c) // the sink closes once it has read all
		c.Close()
		return time.Since(start)
	}
	var tPlain, tScanned time.Duration
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			tPlain += upload(plain)
			tScanned += upload(scanned)
		} else {
			tScanned += upload(scanned)
			tPlain += upload(plain)
		}
		i++
	}
	mb := float64(i) * uploadSize / 1e6
	b.ReportMetric(mb/tPlain.Seconds(), "unscanned-MB/s")
	b.ReportMetric(mb/tScanned.Seconds(), "scanned-MB/s")
	b.ReportMetric(tPlain.Seconds()/tScanned.Seconds(), "x-unscanned")
}

// BenchmarkScanLatency measures what watching adds to one plain HTTP
// POST with a 4 KiB body, through the HTTP proxy (which holds and scans a
// small body whole before it dials): "via" is a gateway with the run's
// 65 tokens and a token-format check, "direct" the same gateway without,
// alternating in one loop.
func BenchmarkScanLatency(b *testing.B) {
	web := startHTTP(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", "3")
		io.WriteString(w, "ok\n")
	}))
	tokens := make([]string, 65)
	for i := range tokens {
		tokens[i] = randomText(20 + i%30)
	}
	sc, err := canary.New(tokens)
	if err != nil {
		b.Fatal(err)
	}
	sc.Prepare()
	formats := func(p []byte, _ string) (string, bool) { return "", bytes.Contains(p, []byte("ghp_")) }
	plain := startGateway(b, Config{Rules: rules(b, []string{web}, nil)})
	watched := startGateway(b, Config{Rules: rules(b, []string{web}, nil), Canaries: sc, Formats: formats})
	body := randomText(4096)
	client := func(tg *testGateway) *http.Client {
		u, _ := url.Parse("http://" + tg.httpAddr)
		tr := &http.Transport{Proxy: http.ProxyURL(u)}
		b.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	cp, cw := client(plain), client(watched)
	post := func(c *http.Client) error {
		resp, err := c.Post("http://"+web+"/", "text/plain", strings.NewReader(body))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	}
	latency(b, func(via bool) error {
		if via {
			return post(cw)
		}
		return post(cp)
	})
}

// startDiscard reads each connection to its end, then closes it.
func startDiscard(t testing.TB) string {
	return serveTCP(t, func(c net.Conn) { io.Copy(io.Discard, c) })
}

func randomText(n int) string {
	raw := make([]byte, n)
	rand.Read(raw)
	return base64.StdEncoding.EncodeToString(raw)[:n]
}

// BenchmarkInspectLatency measures one small HTTPS GET through an
// inspected tunnel ("via") against the same GET through a tunnel the
// gateway does not inspect ("direct": the client's TLS goes to the
// origin), the two alternating in one loop, same origin, same gateway:
//
//   - request-h1, request-h2: on a kept-alive connection, HTTP/1.1 and
//     HTTP/2 (inspected: the gateway keeps its own connection to the
//     origin alive too);
//   - new-connection: a new connection for each GET: CONNECT, the TLS
//     handshake (two of them when inspected), the GET.
//
// x-p50 is via's median over direct's.
func BenchmarkInspectLatency(b *testing.B) {
	originCA, err := tlsca.New(tlsca.Constraints{DNS: []string{"i.test", "u.test"}})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		io.WriteString(w, "ok\n")
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return originCA.Leaf(h.ServerName) }}
	srv.StartTLS()
	b.Cleanup(srv.Close)
	port := portOf(b, srv.Listener.Addr().String())
	roots := x509.NewCertPool()
	roots.AddCert(originCA.Certificate())
	runCA, err := tlsca.New(tlsca.Constraints{DNS: []string{"i.test"}})
	if err != nil {
		b.Fatal(err)
	}
	tg := startGateway(b, Config{
		Rules:    rules(b, []string{"i.test", "u.test", "127.0.0.1"}, nil),
		Resolver: hosts{"i.test": {loopback}, "u.test": {loopback}},
		Inspect:  inspectRules(b, "i.test"),
		CA:       runCA,
		Roots:    roots,
	})
	clientRoots := x509.NewCertPool()
	clientRoots.AddCert(originCA.Certificate())
	clientRoots.AddCert(runCA.Certificate())
	proxy, _ := url.Parse("http://" + tg.httpAddr)
	client := func(h2, keepAlive bool) *http.Client {
		tr := &http.Transport{
			Proxy:             http.ProxyURL(proxy),
			TLSClientConfig:   &tls.Config{RootCAs: clientRoots},
			ForceAttemptHTTP2: h2,
			DisableKeepAlives: !keepAlive,
		}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		b.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	fetch := func(c *http.Client, host string) error {
		resp, err := c.Get("https://" + host + ":" + port + "/")
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %s", host, resp.Status)
		}
		return err
	}
	for _, tc := range []struct {
		name          string
		h2, keepAlive bool
	}{{"request-h1", false, true}, {"request-h2", true, true}, {"new-connection", true, false}} {
		b.Run(tc.name, func(b *testing.B) {
			direct, inspected := client(tc.h2, tc.keepAlive), client(tc.h2, tc.keepAlive)
			latency(b, func(via bool) error {
				if via {
					return fetch(inspected, "i.test")
				}
				return fetch(direct, "u.test")
			})
		})
	}
}
