package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cordon-sandbox/cordon/internal/audit"
)

// TLS inspection, opt-in per destination: for a destination an
// InspectRule names, the gateway ends the sandbox's TLS itself, with a
// certificate from the run's CA (Config.CA, which the sandbox trusts), and
// opens its own TLS to the destination, verified against the host's roots
// (Config.Roots). Each HTTP request in between (HTTP/1.1 or HTTP/2) is
// then decided on its own: its Host must be the destination the tunnel was
// allowed for, its method and path must pass the rule's HTTP rules, and its
// URL, headers and body are scanned like plain HTTP's; secrets meant for
// this destination are swapped in (inject.go). Anything that is not HTTP
// inside TLS fails: a destination is inspected only when the user named it.

// Issuer makes the certificates the gateway shows the sandbox for
// inspected destinations. *tlsca.CA is one.
type Issuer interface {
	Leaf(host string) (*tls.Certificate, error)
}

// InspectRule names a destination whose TLS the gateway inspects, and the
// HTTP requests it lets through to it.
type InspectRule struct {
	Text    string
	Host    Rule
	Methods []string // upper case; empty: any
	Paths   []string // path prefixes, each beginning with "/"; empty: any
}

// ParseInspect parses one --inspect value: a host as --allow-domain takes
// it, then optionally the methods allowed, comma-separated ("*" for any),
// then optionally path prefixes:
//
//	api.example.com
//	registry.example.org GET,HEAD
//	registry.example.org GET,HEAD /pkg/ /-/
//	api.example.com * /v1/
//
// A prefix matches whole segments: /pkg matches /pkg and /pkg/a, not /pkgx.
func ParseInspect(s string) (InspectRule, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return InspectRule{}, errors.New("empty --inspect value")
	}
	host, err := ParseRule(f[0])
	if err != nil {
		return InspectRule{}, err
	}
	if host.prefix.IsValid() && host.prefix.Bits() != host.prefix.Addr().BitLen() {
		return InspectRule{}, fmt.Errorf("--inspect %q: a range of addresses cannot be inspected; name one address or host", clip(s))
	}
	ir := InspectRule{Text: strings.Join(f, " "), Host: host}
	if len(f) > 1 && f[1] != "*" {
		for _, m := range strings.Split(f[1], ",") {
			if m == "" || strings.IndexFunc(m, func(r rune) bool { return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z') }) >= 0 {
				return InspectRule{}, fmt.Errorf("--inspect %q: %q is not an HTTP method (GET,HEAD,POST,... or *)", clip(s), clip(m))
			}
			ir.Methods = append(ir.Methods, strings.ToUpper(m))
		}
	}
	for _, p := range f[min(2, len(f)):] {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#%") || path.Clean(p) != strings.TrimSuffix(p, "/") && p != "/" {
			return InspectRule{}, fmt.Errorf("--inspect %q: path prefix %q must be a clean absolute path (/v1/, /pkg), with no query, fragment or escapes", clip(s), clip(p))
		}
		ir.Paths = append(ir.Paths, p)
	}
	return ir, nil
}

func (ir InspectRule) matches(d Dest, port uint16) bool {
	if d.IsAddr() {
		return ir.Host.MatchAddr(d.Addr, port)
	}
	return ir.Host.MatchName(d.Name, port)
}

// permits reports whether the rule lets method and (cleaned, decoded)
// path through.
func (ir InspectRule) permits(method, p string) bool {
	if len(ir.Methods) > 0 && !slices.Contains(ir.Methods, method) {
		return false
	}
	if len(ir.Paths) == 0 {
		return true
	}
	for _, pre := range ir.Paths {
		base := strings.TrimSuffix(pre, "/")
		if p == pre || p == base || strings.HasPrefix(p, base+"/") {
			return true
		}
	}
	return false
}

// inspection returns the rules that make a destination inspected; none if
// it is not.
func (g *Gateway) inspection(d Dest, port uint16) []InspectRule {
	if g.cfg.CA == nil {
		return nil
	}
	var out []InspectRule
	for _, ir := range g.inspect {
		if ir.matches(d, port) {
			out = append(out, ir)
		}
	}
	return out
}

// checkRequest applies the HTTP rules of an inspected destination.
func checkRequest(rules []InspectRule, req *http.Request) error {
	p := req.URL.Path
	if p == "" {
		p = "/"
	}
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	restricted := false
	for _, ir := range rules {
		if len(ir.Methods) > 0 || len(ir.Paths) > 0 {
			restricted = true
		}
	}
	if !restricted {
		return nil
	}
	if req.Method == http.MethodConnect {
		return &Denied{Verdict: Verdict{Reason: "CONNECT inside an inspected tunnel is refused"}}
	}
	// A path that a server could read as another one (dot segments,
	// decoded or not; a backslash) is refused rather than guessed at. An
	// escaped slash is common (npm's /@scope%2fname) and stays: the
	// rules must pass both the decoded path and the path as sent.
	escaped := req.URL.EscapedPath()
	raw := strings.ToLower(escaped)
	if clean != p && clean+"/" != p || strings.Contains(raw, "%2e") || strings.Contains(raw, "%5c") || strings.Contains(p, "\\") {
		return &Denied{Verdict: Verdict{Reason: fmt.Sprintf("request path %q is not in clean form; refused where HTTP rules apply", clip(escaped))}}
	}
	var texts []string
	for _, ir := range rules {
		if ir.permits(req.Method, clean) && ir.permits(req.Method, escaped) {
			return nil
		}
		texts = append(texts, ir.Text)
	}
	return &Denied{
		Verdict: Verdict{Rule: strings.Join(texts, "; "), Reason: fmt.Sprintf("%s %s is not among the HTTP requests allowed to %s", req.Method, clip(clean), req.Host)},
		Hint:    fmt.Sprintf("to allow it: --inspect '%s %s %s'", rules[0].Host.Text, req.Method, clean),
	}
}

// inspectTunnel serves an inspected tunnel: c is the sandbox's side (early
// holds what it already sent), up a first connection to the destination,
// already decided and dialled.
func (g *Gateway) inspectTunnel(c net.Conn, early []byte, r *request, up net.Conn, addr string, v Verdict, rules []InspectRule) {
	cc := &countConn{Conn: c, r: io.MultiReader(bytes.NewReader(early), c)}
	var helloErr error
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if err := g.scanName("TLS server name", h.ServerName); err != nil {
				helloErr = err
				return nil, err
			}
			if h.ServerName != "" && !r.dest.IsAddr() {
				if got, err := ParseHost(h.ServerName); err != nil || got != r.dest {
					helloErr = &Denied{Verdict: Verdict{Reason: fmt.Sprintf("the TLS hello names server %q, not %s, the destination that was allowed", clip(h.ServerName), r.dest)}}
					return nil, helloErr
				}
			}
			return g.cfg.CA.Leaf(r.dest.String())
		},
	}
	tc := tls.Server(cc, cfg)
	ctx, cancel := context.WithTimeout(g.ctx, HeaderTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		up.Close()
		if helloErr != nil {
			err = helloErr
		} else {
			err = fmt.Errorf("TLS handshake with the sandbox (inspecting %s): %w", r.dest, err)
		}
		g.record(r, addr, v, cc.up.Load(), cc.down.Load(), err)
		return
	}

	it := &inspected{g: g, r: r, rules: rules, inject: g.injectionsFor(r.dest, r.port)}
	it.first = up
	it.tr = &http.Transport{
		DialTLSContext:     it.dialTLS,
		ForceAttemptHTTP2:  true,
		DisableCompression: true, // the client's Accept-Encoding goes as sent
		MaxConnsPerHost:    8,
		IdleConnTimeout:    g.idle,
	}
	it.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "https"
			pr.Out.URL.Host = r.authority(443)
			pr.Out.Host = pr.Out.URL.Host
		},
		Transport:     it.tr,
		FlushInterval: -1, // answers stream as they come
		ErrorHandler:  it.upstreamError,
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	// The connection goes to the server as the *tls.Conn itself: that is
	// how http.Server finds the protocol the client chose (h2 or not).
	l := &oneConn{c: tc, done: make(chan struct{})}
	srv := &http.Server{
		Handler: it,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				l.once.Do(func() { close(l.done) })
			}
		},
		ReadHeaderTimeout: HeaderTimeout,
		IdleTimeout:       g.idle,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          log.New(io.Discard, "", 0),
		BaseContext:       func(net.Listener) context.Context { return g.ctx },
	}
	srv.Serve(l) // returns when the one connection has closed or been taken over
	it.handlers.Wait()
	it.tr.CloseIdleConnections()
	it.closeFirst()
	// The tunnel was allowed; each request refused in it has had its
	// own event.
	g.record(r, addr, v, cc.up.Load(), cc.down.Load(), nil)
}

// authority is host:port as a URL's host, the port left out if it is
// defaultPort.
func (r *request) authority(defaultPort uint16) string {
	h := r.dest.String()
	if r.dest.IsAddr() && r.dest.Addr.Is6() {
		h = "[" + h + "]"
	}
	if r.port != defaultPort {
		h += ":" + strconv.Itoa(int(r.port))
	}
	return h
}

// inspected is one inspected tunnel's state.
type inspected struct {
	g      *Gateway
	r      *request
	rules  []InspectRule
	inject []*Injection
	tr     *http.Transport
	proxy  *httputil.ReverseProxy

	handlers sync.WaitGroup // requests in flight (an upgraded one outlives the server's hold on the connection)

	mu    sync.Mutex
	first net.Conn // the connection dialled for the decision, until used
}

func (it *inspected) closeFirst() {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.first != nil {
		it.first.Close()
		it.first = nil
	}
}

// UpstreamCertError is a destination whose certificate did not verify
// against the host's roots: the request is refused, never sent.
type UpstreamCertError struct {
	Host string
	Err  error
}

func (e *UpstreamCertError) Error() string {
	return fmt.Sprintf("the certificate of %s did not verify against this host's trust store: %v", e.Host, e.Err)
}

func (e *UpstreamCertError) Unwrap() error { return e.Err }

// dialTLS opens the gateway's own TLS to the destination: the connection
// dialled for the decision first, then new ones, each decided again.
func (it *inspected) dialTLS(ctx context.Context, _, _ string) (net.Conn, error) {
	g := it.g
	it.mu.Lock()
	raw := it.first
	it.first = nil
	it.mu.Unlock()
	if raw == nil {
		var err error
		if raw, _, _, err = g.dial(ctx, it.r); err != nil {
			return nil, err
		}
	}
	if !g.track(raw) {
		raw.Close()
		return nil, net.ErrClosed
	}
	name := it.r.dest.String()
	tc := tls.Client(&untrackConn{Conn: raw, g: g}, &tls.Config{
		ServerName: name, // an IP literal is checked against the certificate's IP addresses
		RootCAs:    g.cfg.Roots,
		NextProtos: []string{"h2", "http/1.1"},
		MinVersion: tls.VersionTLS12,
	})
	hctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		tc.Close()
		var ve *tls.CertificateVerificationError
		if errors.As(err, &ve) {
			return nil, &UpstreamCertError{Host: name, Err: ve.Err}
		}
		return nil, fmt.Errorf("TLS handshake with %s: %w", name, err)
	}
	return tc, nil
}

// upstreamError answers a request the destination could not be asked.
func (it *inspected) upstreamError(w http.ResponseWriter, req *http.Request, err error) {
	var ce *UpstreamCertError
	var denied *Denied
	switch {
	case errors.As(err, &ce), errors.As(err, &denied):
		if ce != nil {
			err = &Denied{Verdict: Verdict{Reason: ce.Error()}}
		}
		it.g.recordRequest(it.r, req, 0, err)
		if sw, ok := w.(*statusWriter); ok {
			sw.failed = true
		}
		http.Error(w, "cordon: "+it.r.hostport()+": "+err.Error(), http.StatusBadGateway)
	case errors.Is(err, context.Canceled):
		// The client went away.
	default:
		http.Error(w, "cordon: "+it.r.hostport()+": "+err.Error(), http.StatusBadGateway)
	}
}

// ServeHTTP decides, scans, injects and forwards one request of an
// inspected tunnel.
func (it *inspected) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	it.handlers.Add(1)
	defer it.handlers.Done()
	g := it.g
	if !sameAuthority(req.Host, it.r.dest, it.r.port, 443) {
		err := &Denied{Verdict: Verdict{Reason: fmt.Sprintf("the request's Host %q differs from %s, the destination that was allowed", clip(req.Host), it.r.hostport())}}
		it.refuse(w, req, err)
		return
	}
	if err := checkRequest(it.rules, req); err != nil {
		it.refuse(w, req, err)
		return
	}
	streamed, err := g.prepare(req, it.r.dest.String(), it.inject)
	if err != nil {
		it.refuse(w, req, err)
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	// Deferred: the reverse proxy aborts the handler with a panic
	// (http.ErrAbortHandler) when the answer cannot be copied to the
	// end, the client having gone; the request was sent all the same.
	defer func() {
		switch {
		case streamed != nil && streamed.err != nil:
			// Found in a body too large to hold: the request was
			// cut before the token's end went out (the client got
			// a 502).
			it.g.recordRequest(it.r, req, 0, streamed.err)
		case !sw.failed:
			it.g.recordRequest(it.r, req, sw.status, nil)
		}
	}()
	it.proxy.ServeHTTP(sw, req)
}

// refuse answers a request the policy refuses; the tunnel stays up for the
// next one.
func (it *inspected) refuse(w http.ResponseWriter, req *http.Request, err error) {
	it.g.recordRequest(it.r, req, 0, err)
	var tripped *Tripped
	if errors.As(err, &tripped) {
		http.Error(w, fmt.Sprintf("cordon: %s %s blocked: %s", req.Method, it.r.hostport(), tripped.Error()), http.StatusForbidden)
		return
	}
	http.Error(w, fmt.Sprintf("cordon: %s %s denied: %s", req.Method, it.r.hostport(), err.Error()), http.StatusForbidden)
}

// recordRequest audits a request of an inspected tunnel: one refused
// (err set), or one forwarded and answered with status (0: no answer).
func (g *Gateway) recordRequest(r *request, req *http.Request, status int, err error) {
	rr := *r
	rr.proto = "https"
	rr.start = time.Now()
	d := map[string]string{"method": req.Method, "path": clip(req.URL.Path)}
	if status != 0 {
		d["status"] = strconv.Itoa(status)
	}
	g.recordEvent(audit.KindRequest, &rr, "", Verdict{}, 0, 0, err, d)
}

// statusWriter keeps the status of the answer it writes.
type statusWriter struct {
	http.ResponseWriter
	status int
	failed bool // upstreamError answered, and audited
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController (the reverse proxy's flushes and
// upgrades) reach the server's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// oneConn is a listener that yields one connection, then blocks until
// done: http.Server.Serve returns when the connection is over.
type oneConn struct {
	c    net.Conn
	used atomic.Bool
	once sync.Once
	done chan struct{}
}

func (l *oneConn) Accept() (net.Conn, error) {
	if l.used.CompareAndSwap(false, true) {
		return l.c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConn) Close() error   { return nil }
func (l *oneConn) Addr() net.Addr { return l.c.LocalAddr() }

// countConn counts the sandbox's bytes, reading first what was buffered.
type countConn struct {
	net.Conn
	r        io.Reader
	up, down atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.up.Add(int64(n))
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.down.Add(int64(n))
	return n, err
}

// untrackConn leaves the gateway's set of connections when closed.
type untrackConn struct {
	net.Conn
	g    *Gateway
	once sync.Once
}

func (c *untrackConn) Close() error {
	c.once.Do(func() { c.g.untrack(c.Conn) })
	return c.Conn.Close()
}
