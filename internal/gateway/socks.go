package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// SOCKS5 (RFC 1928), the parts a sandbox needs: no authentication, and
// CONNECT by name or address. BIND and UDP ASSOCIATE are refused: the
// first would accept connections from outside, the second would carry
// UDP past the gateway's view. golang.org/x/net/proxy has only a client.

const socksVersion = 5

// SOCKS5 reply codes.
const (
	socksSucceeded          = 0x00
	socksGeneralFailure     = 0x01
	socksNotAllowed         = 0x02
	socksNetworkUnreachable = 0x03
	socksHostUnreachable    = 0x04
	socksRefused            = 0x05
	socksTTLExpired         = 0x06
	socksCmdNotSupported    = 0x07
	socksAddrNotSupported   = 0x08
)

// socksRequest is a client's CONNECT request, or the reply code to refuse
// it with.
type socksRequest struct {
	cmd  byte
	raw  string // the host name as sent, "" for an address
	dest Dest
	port uint16
}

// socksError is a handshake Cordon refuses, with the reply code to send
// (0 when no reply can be sent).
type socksError struct {
	reply byte
	msg   string
}

func (e *socksError) Error() string { return e.msg }

// readSOCKS reads the greeting and the request, answering the greeting.
// The handshake is small and fixed; every length is bounded by its byte.
func readSOCKS(rw io.ReadWriter) (*socksRequest, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(rw, hdr[:]); err != nil {
		return nil, err
	}
	if hdr[0] != socksVersion {
		return nil, &socksError{msg: fmt.Sprintf("SOCKS version %d: only 5 is spoken here", hdr[0])}
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(rw, methods); err != nil {
		return nil, err
	}
	noAuth := false
	for _, m := range methods {
		if m == 0x00 {
			noAuth = true
		}
	}
	if !noAuth {
		rw.Write([]byte{socksVersion, 0xff})
		return nil, &socksError{msg: "the client offered no method without authentication"}
	}
	if _, err := rw.Write([]byte{socksVersion, 0x00}); err != nil {
		return nil, err
	}

	var req [4]byte
	if _, err := io.ReadFull(rw, req[:]); err != nil {
		return nil, err
	}
	if req[0] != socksVersion {
		return nil, &socksError{reply: socksGeneralFailure, msg: fmt.Sprintf("SOCKS version %d in the request", req[0])}
	}
	r := &socksRequest{cmd: req[1]}
	var host []byte
	switch req[3] {
	case 0x01:
		host = make([]byte, 4)
	case 0x04:
		host = make([]byte, 16)
	case 0x03:
		var n [1]byte
		if _, err := io.ReadFull(rw, n[:]); err != nil {
			return nil, err
		}
		if n[0] == 0 {
			return nil, &socksError{reply: socksGeneralFailure, msg: "empty host name"}
		}
		host = make([]byte, n[0])
	default:
		return nil, &socksError{reply: socksAddrNotSupported, msg: fmt.Sprintf("address type %d", req[3])}
	}
	if _, err := io.ReadFull(rw, host); err != nil {
		return nil, err
	}
	var port [2]byte
	if _, err := io.ReadFull(rw, port[:]); err != nil {
		return nil, err
	}
	r.port = binary.BigEndian.Uint16(port[:])
	if r.cmd != 0x01 {
		return nil, &socksError{reply: socksCmdNotSupported, msg: fmt.Sprintf("SOCKS command %d: only CONNECT is allowed (no BIND, no UDP ASSOCIATE)", r.cmd)}
	}
	if r.port == 0 {
		return nil, &socksError{reply: socksNotAllowed, msg: "port 0"}
	}
	switch req[3] {
	case 0x01, 0x04:
		a, _ := netip.AddrFromSlice(host)
		d, err := ParseHost(a.Unmap().String())
		if err != nil {
			return nil, &socksError{reply: socksNotAllowed, msg: err.Error()}
		}
		r.dest = d
	case 0x03:
		d, err := ParseHost(string(host))
		if err != nil {
			return nil, &socksError{reply: socksNotAllowed, msg: fmt.Sprintf("host %q: %v", host, err)}
		}
		r.dest, r.raw = d, string(host)
	}
	return r, nil
}

// handleSOCKS serves one SOCKS5 client.
func (g *Gateway) handleSOCKS(c net.Conn) {
	c.SetDeadline(time.Now().Add(HeaderTimeout))
	sr, err := readSOCKS(c)
	if err != nil {
		var se *socksError
		if errors.As(err, &se) && se.reply != 0 {
			writeSOCKSReply(c, se.reply, nil)
		}
		if g.cfg.Log != nil && errors.As(err, &se) {
			g.cfg.Log("refused a SOCKS5 request: %v", err)
		}
		return
	}
	c.SetDeadline(time.Time{})
	r := &request{proto: "socks5", raw: sr.raw, dest: sr.dest, port: sr.port, start: time.Now()}
	up, addr, v, err := g.dial(g.ctx, r)
	if err != nil {
		g.record(r, addr, v, 0, 0, err)
		writeSOCKSReply(c, socksReplyFor(err), nil)
		return
	}
	if !g.track(up) {
		up.Close()
		return
	}
	defer g.untrack(up)
	// The bound address stays zero: the host's own address is not the
	// sandbox's business.
	if err := writeSOCKSReply(c, socksSucceeded, nil); err != nil {
		up.Close()
		g.record(r, addr, v, 0, 0, err)
		return
	}
	if rules := g.inspection(r.dest, r.port); len(rules) > 0 {
		g.inspectTunnel(c, nil, r, up, addr, v, rules)
		return
	}
	scan := g.stream()
	gate := func() (int64, error) { return g.checkHello(c, up, r.dest, scan) }
	upN, downN, err := relay(c, up, g.idle, gate, scan)
	g.record(r, addr, v, upN, downN, err)
}

func socksReplyFor(err error) byte {
	var denied *Denied
	var tripped *Tripped
	switch {
	case errors.As(err, &denied), errors.As(err, &tripped):
		return socksNotAllowed
	case errors.Is(err, syscall.ECONNREFUSED):
		return socksRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return socksNetworkUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH):
		return socksHostUnreachable
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return socksTTLExpired
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return socksHostUnreachable
	}
	return socksGeneralFailure
}

// writeSOCKSReply sends a reply with the bound address (zeros if nil).
func writeSOCKSReply(w io.Writer, code byte, bound net.Addr) error {
	b := []byte{socksVersion, code, 0x00}
	ap := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if ta, ok := bound.(*net.TCPAddr); ok {
		ap = ta.AddrPort()
	}
	if a := ap.Addr().Unmap(); a.Is4() {
		b = append(b, 0x01)
		b = append(b, a.AsSlice()...)
	} else {
		b = append(b, 0x04)
		b = append(b, a.AsSlice()...)
	}
	b = binary.BigEndian.AppendUint16(b, ap.Port())
	_, err := w.Write(b)
	return err
}
