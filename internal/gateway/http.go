package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxHeldBody is the largest request body the gateway reads whole before
// forwarding, when it watches for canaries; larger ones are scanned as
// they stream.
const maxHeldBody = 1 << 20

// hopHeaders are the hop-by-hop headers a proxy does not pass on
// (RFC 9110 7.6.1), with the proxy-only ones.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// handleHTTP serves one client connection of the HTTP proxy: a CONNECT,
// which turns the connection into a tunnel, or any number of
// absolute-form requests for plain HTTP, each decided on its own.
func (g *Gateway) handleHTTP(c net.Conn) {
	br := bufio.NewReaderSize(c, 8<<10)
	var up *keptConn // the upstream connection the last request left open
	defer func() { g.drop(up) }()
	for first := true; ; first = false {
		wait := HeaderTimeout
		if !first {
			wait = g.idle
		}
		c.SetReadDeadline(time.Now().Add(wait))
		h, err := readHead(br)
		if err != nil {
			var he *headError
			if errors.As(err, &he) {
				writeStatus(c, he.status, he.msg)
			} else if first && isTimeout(err) {
				writeStatus(c, http.StatusRequestTimeout, "no request within "+HeaderTimeout.String())
			}
			return
		}
		c.SetReadDeadline(time.Time{})
		if h.method == http.MethodConnect {
			g.drop(up)
			up = nil
			g.connect(c, br, h)
			return
		}
		if !g.forward(c, br, h, &up) {
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// connect serves a CONNECT: decide, dial, answer 200, relay.
func (g *Gateway) connect(c net.Conn, br *bufio.Reader, h *head) {
	dest, port, err := ParseHostPort(h.target)
	if err != nil {
		writeStatus(c, http.StatusBadRequest, fmt.Sprintf("CONNECT target %q: %v", h.target, err))
		return
	}
	// A Host that names the proxy itself is what some clients send
	// (node's http.request, for one): harmless, and not another target.
	if h.host != "" && !sameAuthority(h.host, dest, port, port) && h.host != c.LocalAddr().String() {
		writeStatus(c, http.StatusBadRequest, fmt.Sprintf("the Host header %q differs from the CONNECT target %q", h.host, h.target))
		return
	}
	r := &request{proto: "connect", raw: h.target, dest: dest, port: port, start: time.Now()}
	up, addr, v, err := g.dial(g.ctx, r)
	if err != nil {
		g.record(r, addr, v, 0, 0, err)
		writeDialError(c, r, err)
		return
	}
	if !g.track(up) {
		up.Close()
		return
	}
	defer g.untrack(up)
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		up.Close()
		g.record(r, addr, v, 0, 0, err)
		return
	}
	// Bytes the client sent right behind the CONNECT (a TLS hello, say)
	// are in br already; they go through the hello check first.
	var early []byte
	if n := br.Buffered(); n > 0 {
		early, _ = br.Peek(n)
	}
	if rules := g.inspection(dest, port); len(rules) > 0 {
		g.inspectTunnel(c, early, r, up, addr, v, rules)
		return
	}
	scan := g.stream()
	gate := func() (int64, error) {
		return g.checkHello(io.MultiReader(bytes.NewReader(early), c), up, dest, scan)
	}
	upN, downN, err := relay(c, up, g.idle, gate, scan)
	g.record(r, addr, v, upN, downN, err)
}

// sameAuthority reports whether a Host header names dest and port; a Host
// without a port names defaultPort.
func sameAuthority(host string, dest Dest, port, defaultPort uint16) bool {
	d, p, err := ParseHostPort(host)
	if err != nil {
		d, err = ParseHost(host)
		if err != nil {
			return false
		}
		p = defaultPort
	}
	return d == dest && p == port
}

// forward serves one absolute-form request for plain HTTP: decide, dial,
// send it on in origin form with the client's body, and pass the answer
// back. It reports whether the client connection can carry another
// request.
//
// *kept is the upstream connection the client connection's last request
// left open (or nil). forward takes it: a request without a body to the
// same destination goes over it, anything else closes it. It leaves in
// *kept the connection this request used if the answer ended cleanly and
// neither side asked to close.
func (g *Gateway) forward(c net.Conn, br *bufio.Reader, h *head, kept **keptConn) bool {
	reuse := *kept
	*kept = nil
	defer func() { g.drop(reuse) }() // unless send took it
	dest, port, path, err := parseAbsolute(h.target)
	if err != nil {
		writeStatus(c, http.StatusBadRequest, err.Error())
		return false
	}
	if h.host != "" && !sameAuthority(h.host, dest, port, 80) {
		writeStatus(c, http.StatusBadRequest, fmt.Sprintf("the Host header %q differs from the request target %q", h.host, h.target))
		return false
	}
	req, err := outgoing(h, br, dest, port, path)
	if err != nil {
		writeStatus(c, http.StatusBadRequest, err.Error())
		return false
	}
	r := &request{proto: "http", dest: dest, port: port, start: time.Now()}
	if err := g.scanHead(h, dest.String()); err != nil {
		g.record(r, "", Verdict{}, 0, 0, err)
		writeDialError(c, r, err)
		return false
	}
	if hasToken(h.header["Expect"], "100-continue") && req.ContentLength != 0 {
		// The client waits for this before it sends the body that is
		// about to be read.
		io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
	}
	req.Header.Del("Expect")
	var scan *scanReader
	if req.Body != http.NoBody && (g.cfg.Canaries != nil || g.cfg.Formats != nil) {
		if g.cfg.Canaries != nil {
			scan = g.scanBody(req.Body, req.Header.Get("Content-Encoding"), "body")
			req.Body = io.NopCloser(scan)
		}
		if req.ContentLength > 0 && req.ContentLength <= maxHeldBody {
			// Small bodies are read and scanned whole before the
			// destination is even dialled: what is found only in a
			// body's decoded form (gzip, deflate) is found by its end.
			b, err := io.ReadAll(req.Body)
			if err == nil {
				err = g.scanFormats("body", b, dest.String())
			}
			if err != nil {
				g.record(r, "", Verdict{}, 0, 0, err)
				writeDialError(c, r, err)
				return false
			}
			req.Body = io.NopCloser(bytes.NewReader(b))
		}
	}
	req.Close = clientCloses(h)
	if reuse != nil && (reuse.dest != dest || reuse.port != port || req.Body != http.NoBody || !idempotent(req.Method)) {
		g.drop(reuse)
		reuse = nil
	}
	up, cu, err := g.send(r, req, reuse)
	reuse = nil
	if err != nil {
		if scan != nil && scan.err != nil {
			err = scan.err // net/http hides a body's read error
		}
		var n int64
		if cu != nil {
			n = cu.n
		}
		g.record(r, up.addr, up.v, n, 0, err)
		var tripped *Tripped
		switch {
		case cu == nil || errors.As(err, &tripped):
			writeDialError(c, r, err)
		default:
			writeStatus(c, http.StatusBadGateway, fmt.Sprintf("sending the request to %s: %v", r.hostport(), err))
		}
		return false
	}
	keepUp := false
	defer func() {
		if keepUp {
			*kept = up
		} else {
			g.drop(up)
		}
	}()
	resp, err := http.ReadResponse(up.br, req)
	if err != nil {
		g.record(r, up.addr, up.v, cu.n, 0, err)
		writeStatus(c, http.StatusBadGateway, fmt.Sprintf("reading the answer of %s: %v", r.hostport(), err))
		return false
	}
	// resp.Body is not closed (see flushBeforeRead.Close): a body not read
	// to its end would be read to its end by Close; the connection is
	// closed instead.
	body := resp.Body
	upCloses := resp.Close
	for _, k := range hopHeaders {
		resp.Header.Del(k)
	}
	// The client's connection stays open if it asks and the answer's end
	// is marked (a length, or chunks), since an unmarked body ends only
	// when the connection does; so does the upstream one, if its server
	// did not ask to close it.
	framed := resp.ContentLength >= 0 || hasToken(resp.TransferEncoding, "chunked") ||
		req.Method == http.MethodHead || resp.StatusCode == 204 || resp.StatusCode == 304 || resp.StatusCode/100 == 1
	keep := !clientCloses(h) && framed
	resp.Close = !keep
	cd := &counter{Writer: c}
	// The head goes out in one write, not one per header line; the
	// buffer is flushed before each read from the server, so an answer
	// that streams still streams.
	bw := bufio.NewWriterSize(&deadlineWriter{c: c, w: cd, idle: g.idle}, 4<<10)
	resp.Body = &flushBeforeRead{ReadCloser: resp.Body, w: bw}
	err = resp.Write(bodyWriter{bw})
	if err == nil {
		err = bw.Flush()
	}
	g.record(r, up.addr, up.v, cu.n, cd.n, err)
	keepUp = err == nil && keep && !upCloses && resp.StatusCode >= 200 && ended(body) && up.br.Buffered() == 0
	return err == nil && keep
}

// keptConn is an upstream connection of the HTTP proxy, with what it was
// dialled for.
type keptConn struct {
	conn net.Conn
	br   *bufio.Reader // reads the answers, through the idle deadline
	dest Dest
	port uint16
	addr string  // the address dialled
	v    Verdict // the decision it was dialled under
}

// send writes req to r's destination over reuse, a connection a request
// before left open, or else over one it dials, and waits for the answer's
// first byte. A kept connection its server has closed in the meantime
// (the write fails, or the answer is an end) is replaced once by a new
// one; only requests without a body and with a method that may be
// repeated are sent over a kept connection, so sending again is safe.
// send owns reuse: it returns it as up, or closes it. On an error, up is
// closed, and cu is nil if no connection was
// made (the error is the dial's, a *Denied among them), and the returned
// keptConn still says what the dial decided.
func (g *Gateway) send(r *request, req *http.Request, reuse *keptConn) (up *keptConn, cu *counter, err error) {
	for {
		up = reuse
		if up == nil {
			conn, addr, v, err := g.dial(g.ctx, r)
			up = &keptConn{addr: addr, v: v}
			if err != nil {
				return up, nil, err
			}
			if !g.track(conn) {
				conn.Close()
				return up, nil, net.ErrClosed
			}
			up.conn, up.dest, up.port = conn, r.dest, r.port
			up.br = bufio.NewReaderSize(&idleConn{Conn: conn, idle: g.idle}, 32<<10)
		}
		cu = &counter{Writer: &idleConn{Conn: up.conn, idle: g.idle}}
		err = req.Write(cu)
		if err == nil {
			_, err = up.br.Peek(1)
		}
		if err == nil {
			return up, cu, nil
		}
		if reuse == nil || isTimeout(err) {
			g.drop(up)
			return up, cu, err
		}
		g.drop(reuse) // closed by its server while it waited: dial anew
		reuse = nil
	}
}

// drop closes an upstream connection (nil: nothing).
func (g *Gateway) drop(k *keptConn) {
	if k == nil || k.conn == nil {
		return
	}
	g.untrack(k.conn)
	k.conn.Close()
}

// idempotent reports whether a request with this method may be sent again
// (RFC 9110 9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// ended reports whether an answer's body was read to its end.
func ended(body io.Reader) bool {
	var b [1]byte
	n, err := body.Read(b[:])
	return n == 0 && err == io.EOF
}

// flushBeforeRead flushes w before each read of the answer's body.
type flushBeforeRead struct {
	io.ReadCloser
	w *bufio.Writer
}

func (f *flushBeforeRead) Read(p []byte) (int, error) {
	if err := f.w.Flush(); err != nil {
		return 0, err
	}
	return f.ReadCloser.Read(p)
}

// Close leaves the body as it is. Response.Write closes the body it sent,
// and a body closed before its end reads on to its end, which after a
// client went away would fetch the rest of a download for nobody; forward
// closes the connection instead, unless the body ended and it is kept.
func (f *flushBeforeRead) Close() error { return nil }

// bodyWriter copies an answer's body through the relay's lent buffers
// (large ones while the body comes in bulk) rather than io.Copy's 32 KiB.
type bodyWriter struct{ w *bufio.Writer }

func (b bodyWriter) Write(p []byte) (int, error) { return b.w.Write(p) }

func (b bodyWriter) ReadFrom(r io.Reader) (int64, error) { return copyBulk(b.w, r) }

// parseAbsolute splits an absolute-form http:// target. The authority is
// canonicalised once, by ParseHost; userinfo is refused.
func parseAbsolute(target string) (Dest, uint16, string, error) {
	scheme, rest, ok := strings.Cut(target, "://")
	if !ok {
		if strings.HasPrefix(target, "/") {
			return Dest{}, 0, "", fmt.Errorf("request target %q: this is a proxy; send absolute-form requests (http://host/path) or CONNECT", target)
		}
		return Dest{}, 0, "", fmt.Errorf("request target %q: not an absolute http:// URL", target)
	}
	if !strings.EqualFold(scheme, "http") {
		return Dest{}, 0, "", fmt.Errorf("request target %q: only http:// is forwarded; use CONNECT for %s", target, scheme)
	}
	i := strings.IndexAny(rest, "/?#")
	authority, path := rest, "/"
	if i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if strings.HasPrefix(path, "?") {
		path = "/" + path
	}
	if j := strings.IndexByte(path, '#'); j >= 0 {
		path = path[:j] // a fragment is not sent
	}
	if strings.Contains(authority, "@") {
		return Dest{}, 0, "", fmt.Errorf("request target %q: userinfo in the URL is refused", target)
	}
	dest, port, err := ParseHostPort(authority)
	if err != nil {
		d, herr := ParseHost(authority)
		if herr != nil || strings.HasSuffix(authority, ":") {
			return Dest{}, 0, "", fmt.Errorf("request target %q: %v", target, err)
		}
		dest, port = d, 80
	}
	return dest, port, path, nil
}

// outgoing builds the request sent on: origin form, the canonical
// authority as Host, no hop-by-hop headers, the client's body framed the
// way the client framed it.
func outgoing(h *head, br *bufio.Reader, dest Dest, port uint16, path string) (*http.Request, error) {
	header := http.Header(h.header)
	for _, name := range header.Values("Connection") {
		for _, f := range strings.Split(name, ",") {
			if f = strings.TrimSpace(f); f != "" {
				header.Del(f)
			}
		}
	}
	te := header.Values("Transfer-Encoding")
	cl := header.Values("Content-Length")
	for _, k := range hopHeaders {
		header.Del(k)
	}
	header.Del("Content-Length")
	host := dest.String()
	if dest.IsAddr() && dest.Addr.Is6() {
		host = "[" + host + "]"
	}
	if port != 80 {
		host += ":" + strconv.Itoa(int(port))
	}
	req := &http.Request{
		Method:     h.method,
		URL:        &url.URL{Opaque: path},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1, ProtoMinor: 1,
		Header: header,
		Host:   host,
		Body:   http.NoBody,
	}
	switch {
	case len(te) > 0 && len(cl) > 0:
		return nil, errors.New("both Transfer-Encoding and Content-Length: refused (request smuggling)")
	case len(te) > 0:
		if len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") {
			return nil, fmt.Errorf("Transfer-Encoding %q: only chunked is accepted", strings.Join(te, ", "))
		}
		req.Body = io.NopCloser(httputil.NewChunkedReader(br))
		req.ContentLength = -1
	case len(cl) > 0:
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if err != nil || n < 0 || len(cl) > 1 && strings.Join(cl, ",") != strings.Repeat(cl[0]+",", len(cl)-1)+cl[0] {
			return nil, fmt.Errorf("Content-Length %q: malformed", strings.Join(cl, ", "))
		}
		req.ContentLength = n
		if n > 0 {
			req.Body = io.NopCloser(io.LimitReader(br, n))
		}
	}
	return req, nil
}

// clientCloses reports whether the client wants its connection closed
// after this request.
func clientCloses(h *head) bool {
	conn := append(h.header["Connection"], h.header["Proxy-Connection"]...)
	if h.proto == "HTTP/1.0" {
		return !hasToken(conn, "keep-alive")
	}
	return hasToken(conn, "close")
}

// writeDialError answers a CONNECT or request that could not be served.
func writeDialError(c net.Conn, r *request, err error) {
	var denied *Denied
	var tripped *Tripped
	switch {
	case errors.As(err, &tripped):
		writeStatus(c, http.StatusForbidden, fmt.Sprintf("cordon: %s %s blocked: %s", r.proto, r.hostport(), tripped.Error()))
	case errors.As(err, &denied):
		writeStatus(c, http.StatusForbidden, fmt.Sprintf("cordon: %s %s denied: %s", r.proto, r.hostport(), denied.Error()))
	case errors.Is(err, context.DeadlineExceeded):
		writeStatus(c, http.StatusGatewayTimeout, fmt.Sprintf("cordon: %s: %v", r.hostport(), err))
	default:
		writeStatus(c, http.StatusBadGateway, fmt.Sprintf("cordon: %s: %v", r.hostport(), err))
	}
}

// writeStatus sends a short plain-text answer, and the connection closes.
func writeStatus(w io.Writer, code int, msg string) {
	body := msg + "\n"
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
}

// counter counts the bytes written through it.
type counter struct {
	io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.Writer.Write(p)
	c.n += int64(n)
	return n, err
}

// idleConn moves the connection's deadline on with each read or write.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.idle))
	return c.Conn.Write(p)
}

// deadlineWriter moves c's write deadline on with each write, so a client
// that stops reading is dropped after the idle timeout.
type deadlineWriter struct {
	c    net.Conn
	w    io.Writer
	idle time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.c.SetWriteDeadline(time.Now().Add(d.idle))
	return d.w.Write(p)
}
