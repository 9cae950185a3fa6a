package cordontest

import (
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// Listener is a host listener that records, for each connection it
// accepts, the first byte the client sent ("" for none). With Knock it
// proves that nothing from a sandbox arrived.
type Listener struct {
	Network, Addr string

	mu  sync.Mutex
	got []string
}

// Listen listens on network and addr, closed when the test ends.
func Listen(t testing.TB, network, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatalf("listening on %s %s: %v", network, addr, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// Serve accepts on l until it is closed, recording what arrives.
func Serve(t testing.TB, l net.Listener) *Listener {
	h := &Listener{Network: l.Addr().Network(), Addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 1)
			n, _ := c.Read(buf)
			c.Close()
			h.mu.Lock()
			h.got = append(h.got, string(buf[:n]))
			h.mu.Unlock()
		}
	}()
	return h
}

// Knock connects from the host and sends mark, waits until the listener
// has taken that connection, and returns all it took. Connections wait in
// the accept queue in order, so one from a sandbox would show up before
// the mark.
func (h *Listener) Knock(t testing.TB, mark string) []string {
	t.Helper()
	c, err := net.DialTimeout(h.Network, h.Addr, 2*time.Second)
	if err != nil {
		t.Fatalf("connecting to %s from the host: %v", h.Addr, err)
	}
	c.Write([]byte(mark))
	c.Close()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		h.mu.Lock()
		got := slices.Clone(h.got)
		h.mu.Unlock()
		if slices.Contains(got, mark) {
			return got
		}
	}
	t.Fatalf("the listener on %s never took the host's connection", h.Addr)
	return nil
}
