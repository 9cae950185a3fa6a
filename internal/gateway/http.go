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
			g.connect(c, br, h)
			return
		}
		if !g.forward(c, br, h) {
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
func (g *Gateway) forward(c net.Conn, br *bufio.Reader, h *head) bool {
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
	up, addr, v, err := g.dial(g.ctx, r)
	if err != nil {
		g.record(r, addr, v, 0, 0, err)
		writeDialError(c, r, err)
		return false
	}
	if !g.track(up) {
		up.Close()
		return false
	}
	defer g.untrack(up)
	defer up.Close()

	upIdle := &idleConn{Conn: up, idle: g.idle}
	cu := &counter{Writer: upIdle}
	if err := req.Write(cu); err != nil {
		if scan != nil && scan.err != nil {
			err = scan.err // net/http hides a body's read error
		}
		g.record(r, addr, v, cu.n, 0, err)
		var tripped *Tripped
		if errors.As(err, &tripped) {
			writeDialError(c, r, tripped)
		} else {
			writeStatus(c, http.StatusBadGateway, fmt.Sprintf("sending the request to %s: %v", r.hostport(), err))
		}
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(upIdle, 32<<10), req)
	if err != nil {
		g.record(r, addr, v, cu.n, 0, err)
		writeStatus(c, http.StatusBadGateway, fmt.Sprintf("reading the answer of %s: %v", r.hostport(), err))
		return false
	}
	defer resp.Body.Close()
	for _, k := range hopHeaders {
		resp.Header.Del(k)
	}
	// The upstream connection closes after each request; the client's
	// stays open if it asks and the answer's end is marked (a length, or
	// chunks), since an unmarked body ends only when the connection does.
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
	g.record(r, addr, v, cu.n, cd.n, err)
	return err == nil && keep
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
		Close:  true,
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
