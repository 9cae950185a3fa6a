package gateway

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cordon-sandbox/cordon/internal/canary"
)

// tunnel relays bytes both ways between the sandbox's connection and the
// destination's.
//
// An idle tunnel holds no buffer: each direction waits for its source to
// be readable, and only then takes a pooled buffer, reads what is waiting
// and writes it out. What an idle tunnel costs is its two goroutines'
// stacks.
type tunnel struct {
	idle time.Duration
	last atomic.Int64 // unix nanoseconds of the last byte either way
}

// relay copies client→dest and dest→client until both directions end,
// then closes both. Each direction's end (EOF) is passed on as a
// half-close, so a client that shuts down its writing side still gets
// the whole answer. It returns the bytes sent up (client→dest) and down.
//
// gate, if not nil, runs first in the up direction, while the down
// direction already flows (a server may speak first): it reads what it must
// see from the client, writes what may pass to dest, and returns the bytes
// it sent, or an error that ends the tunnel (returned as err).
//
// scan, if set, watches the up direction: each piece is scanned for
// canaries before it is written.
func relay(client, dest net.Conn, idle time.Duration, gate func() (int64, error), scan *canary.Stream) (up, down int64, err error) {
	t := &tunnel{idle: idle}
	t.touch()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		down, _ = t.pump(client, dest, nil)
	}()
	if gate != nil {
		client.SetReadDeadline(time.Now().Add(idle))
		up, err = gate()
	}
	// The up direction is scanned even when the tunnel began with a TLS
	// hello: the destination may be the attacker's own server, which
	// takes plaintext after a hello as gladly as records. (A random
	// canary in real ciphertext is a chance not worth counting.)
	if err == nil {
		var n int64
		n, err = t.pump(dest, client, scan)
		up += n
		var tripped *Tripped
		if !errors.As(err, &tripped) {
			err = nil // a connection's end is not the tunnel's error
		}
	}
	if err != nil {
		client.Close()
		dest.Close()
	}
	wg.Wait()
	client.Close()
	dest.Close()
	return up, down, err
}

func (t *tunnel) touch() { t.last.Store(time.Now().UnixNano()) }

// quiet reports whether neither direction has moved a byte for t.idle.
func (t *tunnel) quiet() bool {
	return time.Since(time.Unix(0, t.last.Load())) >= t.idle
}

// pump copies src to dst until src ends, then half-closes dst. On an
// error or an idle timeout it closes both, which ends the other
// direction too. With scan set, each piece is scanned for canaries
// before it is written.
func (t *tunnel) pump(dst, src net.Conn, scan *canary.Stream) (int64, error) {
	var n int64
	var err error
	s, ok1 := src.(*net.TCPConn)
	d, ok2 := dst.(*net.TCPConn)
	if ok1 && ok2 && canReadRaw {
		n, err = t.move(d, s, scan)
	} else {
		n, err = t.copy(dst, src, scan)
	}
	if err != nil {
		src.Close()
		dst.Close()
		return n, err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() != nil {
			dst.Close()
		}
	} else {
		dst.Close()
	}
	return n, nil
}

func (t *tunnel) move(dst, src *net.TCPConn, scan *canary.Stream) (int64, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	bulk := false
	for {
		src.SetReadDeadline(time.Now().Add(t.idle))
		bp, n, err := readRaw(rc, bulk)
		if errors.Is(err, os.ErrDeadlineExceeded) && !t.quiet() {
			continue // the other direction is busy
		}
		if err != nil {
			return total, err
		}
		if bp == nil {
			return total, nil // EOF
		}
		bulk = nextBulk(bulk, n, len(*bp))
		t.touch()
		if err := scanned(scan, (*bp)[:n], "tunnel"); err != nil {
			putBuf(bp)
			return total, err
		}
		dst.SetWriteDeadline(time.Now().Add(t.idle))
		w, werr := dst.Write((*bp)[:n])
		putBuf(bp)
		total += int64(w)
		if werr != nil {
			return total, werr
		}
	}
}

// copyBufs are the buffers of the fallback path, taken only while bytes
// are in flight.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copy is the path for connections that are not both plain TCP (an
// upstream proxy's connection with buffered bytes, tests' pipes).
func (t *tunnel) copy(dst, src net.Conn, scan *canary.Stream) (int64, error) {
	var total int64
	for {
		src.SetReadDeadline(time.Now().Add(t.idle))
		bp := copyBufs.Get().(*[]byte)
		n, err := src.Read(*bp)
		if serr := scanned(scan, (*bp)[:n], "tunnel"); serr != nil {
			copyBufs.Put(bp)
			return total, serr
		}
		if n > 0 {
			t.touch()
			dst.SetWriteDeadline(time.Now().Add(t.idle))
			w, werr := dst.Write((*bp)[:n])
			total += int64(w)
			if werr != nil {
				copyBufs.Put(bp)
				return total, werr
			}
		}
		copyBufs.Put(bp)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded) && !t.quiet():
			continue
		case errors.Is(err, io.EOF):
			return total, nil
		case err != nil:
			return total, err
		}
	}
}

// scanned scans p for canaries if scan is set: a *Tripped error (found in
// where) if one is there, and p must not be written.
func scanned(scan *canary.Stream, p []byte, where string) error {
	if scan == nil || len(p) == 0 {
		return nil
	}
	if hit, ok := scan.Write(p); ok {
		return &Tripped{Hit: hit, Where: where}
	}
	return nil
}
