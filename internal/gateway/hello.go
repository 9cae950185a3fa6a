package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/cordon-sandbox/cordon/internal/canary"
)

// A CONNECT (or SOCKS5) target is decided by name, but what a TLS server
// serves is decided by the server name in the client's hello. A client
// that asks for an allowed name and then says another one in its hello is
// reaching for a site the policy never allowed, on a server or CDN the two
// share. checkHello reads the first bytes the client sends up a tunnel and,
// if they open a TLS handshake, holds them until the hello is read and its
// server name matches the target.
//
// The hello is parsed by crypto/tls itself (a server handshake that stops
// at GetConfigForClient), not by a parser of our own: what it reads is what
// a Go TLS server would. Nothing is ever written back to the client.

// maxHello caps the bytes held while a hello is read.
const maxHello = 64 << 10

var errHelloRead = errors.New("hello read")

// checkHello reads from client up to the end of a TLS ClientHello (or the
// first bytes, if they are not TLS), and writes what it read to dest. It
// returns a *Denied error if the hello names another server than want.
//
// If scan is set, what it forwards is scanned for canaries first, and a
// hello's server name too.
func (g *Gateway) checkHello(client io.Reader, dest io.Writer, want Dest, scan *canary.Stream) (int64, error) {
	rec := &recorder{r: client}
	// What was read goes on, scanned first.
	forward := func(where string) (int64, error) {
		if err := scanned(scan, rec.buf, where); err != nil {
			return 0, err
		}
		n, err := dest.Write(rec.buf)
		return int64(n), err
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(rec, first); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil // the client sent nothing and closed its side
		}
		return 0, err
	}
	if first[0] != 0x16 { // not a TLS handshake record: nothing to check
		return forward("tunnel")
	}
	var name string
	cfg := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		name = h.ServerName
		return nil, errHelloRead
	}}
	ctx, cancel := context.WithTimeout(context.Background(), HeaderTimeout)
	defer cancel()
	err := tls.Server(&helloConn{r: io.MultiReader(bytes.NewReader(first), rec)}, cfg).HandshakeContext(ctx)
	if !errors.Is(err, errHelloRead) {
		if rec.over {
			return 0, &Denied{Verdict: Verdict{Reason: fmt.Sprintf("TLS hello to %s larger than %d bytes", want, maxHello)}}
		}
		// Not a hello a TLS server would read: nothing a server
		// would answer either, so nothing is lost by ending here.
		return 0, &Denied{Verdict: Verdict{Reason: fmt.Sprintf("unreadable TLS hello to %s: %v", want, err)}}
	}
	if err := g.scanName("TLS server name", name); err != nil {
		return 0, err
	}
	if name != "" && !want.IsAddr() {
		got, perr := ParseHost(name)
		if perr != nil || got != want {
			return 0, &Denied{Verdict: Verdict{Reason: fmt.Sprintf("the TLS hello names server %q, not %s, the destination that was allowed", name, want)},
				Hint: "connect to that name itself, if it is allowed"}
		}
	}
	// The hello itself can carry bytes of the client's choosing
	// (extensions, padding): scanned like the rest.
	return forward("TLS hello")
}

// recorder keeps what it reads, up to maxHello.
type recorder struct {
	r    io.Reader
	buf  []byte
	over bool
}

func (r *recorder) Read(p []byte) (int, error) {
	if len(r.buf) >= maxHello {
		r.over = true
		return 0, errors.New("hello too large")
	}
	p = p[:min(len(p), maxHello-len(r.buf))]
	n, err := r.r.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}

// helloConn is the connection crypto/tls reads a hello from: reads come
// from the recorded stream, writes (the alert it sends on stopping) go
// nowhere.
type helloConn struct {
	r io.Reader
}

func (c *helloConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *helloConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *helloConn) Close() error                     { return nil }
func (c *helloConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *helloConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *helloConn) SetDeadline(time.Time) error      { return nil }
func (c *helloConn) SetReadDeadline(time.Time) error  { return nil }
func (c *helloConn) SetWriteDeadline(time.Time) error { return nil }
