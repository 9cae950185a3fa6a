package gateway

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/net/proxy"
)

// upstream is a proxy that allowed connections go on through (a corporate
// proxy). The gateway's policy is applied first; the upstream resolves
// names, so the checks on resolved addresses are its to make.
type upstream struct {
	u     *url.URL
	auth  *proxy.Auth
	socks bool
}

// ParseUpstream checks an --upstream-proxy URL: http://HOST:PORT or
// socks5://HOST:PORT, with optional user:password.
func ParseUpstream(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("upstream proxy %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "socks5" && u.Scheme != "socks5h" {
		return nil, fmt.Errorf("upstream proxy %q: the scheme must be http:// or socks5://", s)
	}
	if u.Hostname() == "" || u.Port() == "" {
		return nil, fmt.Errorf("upstream proxy %q: give a host and a port, as in http://proxy.corp:3128", s)
	}
	if p, err := strconv.ParseUint(u.Port(), 10, 16); err != nil || p == 0 {
		return nil, fmt.Errorf("upstream proxy %q: bad port", s)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("upstream proxy %q: a proxy URL has no path or query", s)
	}
	return u, nil
}

func newUpstream(u *url.URL) (*upstream, error) {
	up := &upstream{u: u, socks: u.Scheme == "socks5" || u.Scheme == "socks5h"}
	if up.socks && u.User != nil {
		pw, _ := u.User.Password()
		up.auth = &proxy.Auth{User: u.User.Username(), Password: pw}
	}
	return up, nil
}

// capture is a forward dialer that keeps the connection it made: after
// the SOCKS5 handshake the tunnel is that plain TCP connection, which the
// relay can peek at and half-close (x/net/proxy wraps it in a type that
// hides CloseWrite).
type capture struct {
	net.Dialer
	conn net.Conn
}

func (c *capture) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := c.Dialer.DialContext(ctx, network, addr)
	c.conn = conn
	return conn, err
}

func (c *capture) Dial(network, addr string) (net.Conn, error) {
	return c.DialContext(context.Background(), network, addr)
}

// dial connects to host:port through the upstream; host is a canonical
// name or address, passed unresolved.
func (up *upstream) dial(ctx context.Context, host string, port uint16) (net.Conn, error) {
	target := net.JoinHostPort(host, strconv.Itoa(int(port)))
	if up.socks {
		fwd := &capture{}
		d, err := proxy.SOCKS5("tcp", up.u.Host, up.auth, fwd)
		if err != nil {
			return nil, fmt.Errorf("upstream proxy %s: %w", up.u.Redacted(), err)
		}
		if _, err := d.(proxy.ContextDialer).DialContext(ctx, "tcp", target); err != nil {
			return nil, fmt.Errorf("through upstream proxy %s: %w", up.u.Redacted(), err)
		}
		// The handshake reads exactly its reply: nothing is buffered.
		return fwd.conn, nil
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", up.u.Host)
	if err != nil {
		return nil, fmt.Errorf("reaching upstream proxy %s: %w", up.u.Redacted(), err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	req := fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n", target, target)
	if up.u.User != nil {
		pw, _ := up.u.User.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(up.u.User.Username() + ":" + pw))
		req += "Proxy-Authorization: Basic " + cred + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		c.Close()
		return nil, fmt.Errorf("upstream proxy %s: %w", up.u.Redacted(), err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("upstream proxy %s: %w", up.u.Redacted(), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, fmt.Errorf("upstream proxy %s answered %s for %s", up.u.Redacted(), resp.Status, target)
	}
	c.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: c, r: br}, nil
	}
	return c, nil
}

// bufferedConn is a connection whose first bytes were read ahead.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *bufferedConn) CloseWrite() error {
	if cw, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return b.Conn.Close()
}
