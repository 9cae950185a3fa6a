package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cordon-sandbox/cordon/internal/audit"
	"github.com/cordon-sandbox/cordon/internal/canary"
)

// Ports the gateway listens on inside the sandbox, on its own 127.0.0.1.
// The sandbox has a network namespace of its own, so fixed ports collide
// with nothing on the host.
const (
	HTTPPort  = 3128 // HTTP proxy: CONNECT and absolute-form requests
	SOCKSPort = 1080 // SOCKS5: CONNECT by name or address
)

// Limits that bound what one sandbox can make the gateway hold.
const (
	// MaxHeaderBytes caps an HTTP request's head (request line and
	// headers) and a SOCKS5 handshake.
	MaxHeaderBytes = 64 << 10
	// HeaderTimeout is how long a client has to send a request's head.
	HeaderTimeout = 30 * time.Second
	// IdleTimeout ends a tunnel or a kept-alive client connection with
	// no byte in either direction for this long.
	IdleTimeout = 15 * time.Minute
	// DialTimeout bounds resolving and connecting to one destination.
	DialTimeout = 30 * time.Second
	// DefaultMaxTunnels caps concurrent connections from one sandbox:
	// each holds two descriptors in the gateway.
	DefaultMaxTunnels = 16384
)

// Resolver looks up a name's addresses. *net.Resolver is one; tests use
// a map.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config is one sandbox's egress policy and where the gateway reports.
type Config struct {
	Rules Rules
	// Upstream, if set, is a proxy (http:// or socks5://) that allowed
	// connections go on through. It resolves names itself, so the
	// resolved-address checks move to it; IP literals are still checked.
	Upstream *url.URL
	// Resolver resolves names on the host side; nil is the system's.
	Resolver Resolver
	// Own are this host's addresses, which a name must not resolve to
	// unless the policy names them. nil: OwnAddrs().
	Own []netip.Addr
	// Audit receives one event for each connection; nil discards.
	Audit *audit.Log
	// Log receives a line for each denial (cordon's --verbose).
	Log func(format string, args ...any)
	// MaxTunnels caps concurrent connections; 0 is DefaultMaxTunnels.
	MaxTunnels int
	// IdleTimeout overrides IdleTimeout (tests).
	IdleTimeout time.Duration
	// Canaries, if set, holds the run's canary tokens: a request or
	// tunnel that carries one is cut, audited and reported to OnCanary.
	Canaries *canary.Scanner
	// OnCanary is called once for each connection that tripped a canary,
	// after it was cut.
	OnCanary func(proto, hostport string, t *Tripped)
	// Tokens says which of Canaries' tokens are not canaries: credentials
	// of this host, and injected secrets' placeholders and values. They
	// are blocked like canaries, but audited as "secret" events and
	// reported to OnSecret.
	Tokens map[string]Token
	// Formats, if set, looks for token formats (cloud keys, VCS tokens,
	// private key blocks) in plain HTTP requests and inspected ones bound
	// for host, and returns the format's name. Seen in heads and in bodies
	// held whole; not in tunnels.
	Formats func(b []byte, host string) (rule string, found bool)
	// OnSecret is called for each connection or request blocked for a
	// token that is not a canary, or a token format.
	OnSecret func(proto, hostport string, t *Tripped)
	// Inspect names the destinations whose TLS the gateway ends, with the
	// HTTP requests each lets through. The hosts of Inject are inspected
	// too. Needs CA.
	Inspect []InspectRule
	// CA issues the certificates shown to the sandbox for inspected
	// destinations; the sandbox trusts it. Nil: nothing is inspected, and
	// New fails if Inspect or Inject is set.
	CA Issuer
	// Roots verify inspected destinations' certificates; nil: the host's
	// system roots.
	Roots *x509.CertPool
	// Inject are the secrets swapped in on the way to their hosts.
	Inject []Injection
}

// Gateway decides, dials and relays the connections a sandbox asks for.
type Gateway struct {
	cfg      Config
	resolver Resolver
	own      []netip.Addr
	upstream *upstream
	slots    chan struct{}
	idle     time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	listeners map[net.Listener]bool
	conns     map[net.Conn]bool
	closed    bool

	inspect []InspectRule // Config.Inspect, and a rule for each host of Inject

	stats Stats
}

// Stats counts what the gateway did.
type Stats struct {
	Allowed, Denied atomic.Int64
}

// New makes a gateway for one sandbox.
func New(cfg Config) (*Gateway, error) {
	g := &Gateway{cfg: cfg, resolver: cfg.Resolver, own: cfg.Own, idle: cfg.IdleTimeout}
	if g.resolver == nil {
		g.resolver = net.DefaultResolver
	}
	if g.own == nil {
		g.own = OwnAddrs()
	}
	if g.idle <= 0 {
		g.idle = IdleTimeout
	}
	if cfg.Upstream != nil {
		u, err := newUpstream(cfg.Upstream)
		if err != nil {
			return nil, err
		}
		g.upstream = u
	}
	n := cfg.MaxTunnels
	if n <= 0 {
		n = DefaultMaxTunnels
	}
	if (len(cfg.Inspect) > 0 || len(cfg.Inject) > 0) && cfg.CA == nil {
		return nil, errors.New("TLS inspection needs a CA")
	}
	g.inspect = append(g.inspect, cfg.Inspect...)
	for _, in := range cfg.Inject {
		if len(in.Hosts) == 0 {
			return nil, fmt.Errorf("secret %s: no host to send it to", in.Name)
		}
		for _, h := range in.Hosts {
			g.inspect = append(g.inspect, InspectRule{Text: h.Text, Host: h})
		}
	}
	g.slots = make(chan struct{}, n)
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.listeners = map[net.Listener]bool{}
	g.conns = map[net.Conn]bool{}
	return g, nil
}

// Stats returns the gateway's counters.
func (g *Gateway) Stats() *Stats { return &g.stats }

// ServeHTTP serves the HTTP proxy protocol on l until Close.
func (g *Gateway) ServeHTTP(l net.Listener) error {
	return g.serve(l, g.handleHTTP, func(c net.Conn) {
		writeStatus(c, 503, fmt.Sprintf("cordon: more than %d connections at once from this sandbox", cap(g.slots)))
	})
}

// ServeSOCKS serves SOCKS5 on l until Close.
func (g *Gateway) ServeSOCKS(l net.Listener) error {
	return g.serve(l, g.handleSOCKS, func(c net.Conn) {})
}

// serve accepts on l until Close. Each connection takes a slot for its
// lifetime; past the cap, overload tells the client, and it is closed.
func (g *Gateway) serve(l net.Listener, handle, overload func(net.Conn)) error {
	if !g.track(l) {
		l.Close()
		return net.ErrClosed
	}
	defer g.untrack(l)
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if g.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if retryable(err) {
				// Out of descriptors, or a client that gave up
				// before accept: wait, and keep serving.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accepting: %w", err)
		}
		backoff = 0
		if !g.track(c) {
			c.Close()
			return nil
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer g.untrack(c)
			defer c.Close()
			if !g.acquire() {
				c.SetDeadline(time.Now().Add(time.Second))
				overload(c)
				if g.cfg.Log != nil {
					g.cfg.Log("refused a connection: %d at once is the limit", cap(g.slots))
				}
				return
			}
			defer g.release()
			handle(c)
		}()
	}
}

// retryable reports whether an accept error passes.
func retryable(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// track registers a listener or connection so Close can end it; false
// once closed.
func (g *Gateway) track(x any) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	switch v := x.(type) {
	case net.Listener:
		g.listeners[v] = true
	case net.Conn:
		g.conns[v] = true
	}
	return true
}

func (g *Gateway) untrack(x any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch v := x.(type) {
	case net.Listener:
		delete(g.listeners, v)
	case net.Conn:
		delete(g.conns, v)
	}
}

// Close stops accepting, ends every connection, and returns once every
// goroutine the gateway started has returned.
func (g *Gateway) Close() error {
	g.mu.Lock()
	g.closed = true
	g.cancel()
	for l := range g.listeners {
		l.Close()
	}
	for c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
	return nil
}

// request is one destination a client asked for, as it will be audited.
type request struct {
	proto string // "http", "connect", "socks5"
	raw   string // the destination as the client spelt it, before canonicalisation
	dest  Dest
	port  uint16
	start time.Time
}

func (r *request) hostport() string {
	return net.JoinHostPort(r.dest.String(), strconv.Itoa(int(r.port)))
}

// Denied is a destination the policy refuses.
type Denied struct {
	Verdict
	Hint string // how to allow it, if the user means to
}

func (d *Denied) Error() string {
	if d.Hint == "" {
		return d.Reason
	}
	return d.Reason + "; " + d.Hint
}

// dial decides on r and connects to it: a *Denied error if the policy
// refuses it, another error if it cannot be reached. The address
// returned is the one dialled ("" through an upstream proxy).
func (g *Gateway) dial(ctx context.Context, r *request) (net.Conn, string, Verdict, error) {
	// The spelling the client sent keeps the case that canonical names
	// lose: a mixed-case token is found there.
	for _, name := range []string{r.raw, r.dest.String()} {
		if err := g.scanName("host name", name); err != nil {
			return nil, "", Verdict{}, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	rules := g.cfg.Rules
	port := r.port
	if r.dest.IsAddr() {
		v := rules.CheckAddr(r.dest.Addr, port)
		if !v.Allowed {
			return nil, "", v, &Denied{Verdict: v, Hint: hintFor(r, v)}
		}
		// A broad rule (0.0.0.0/0) does not open this host's own
		// addresses: only a rule for the address itself does.
		if ov := rules.CheckResolved(r.dest.String(), r.dest.Addr, port, g.own); !ov.Allowed {
			return nil, "", ov, &Denied{Verdict: ov, Hint: hintForAddr(r.dest.Addr, port, ov)}
		}
		addr := netip.AddrPortFrom(r.dest.Addr, port).String()
		if g.upstream != nil {
			c, err := g.upstream.dial(ctx, r.dest.String(), port)
			return c, "", v, err
		}
		c, err := dialTCP(ctx, addr)
		return c, addr, v, err
	}
	v := rules.CheckName(r.dest.Name, port)
	if !v.Allowed {
		return nil, "", v, &Denied{Verdict: v, Hint: hintFor(r, v)}
	}
	if g.upstream != nil {
		c, err := g.upstream.dial(ctx, r.dest.Name, port)
		return c, "", v, err
	}
	// Fully qualified: resolv.conf's search domains must not turn an
	// allowed name into another one.
	addrs, err := g.resolver.LookupNetIP(ctx, "ip", r.dest.Name+".")
	if err != nil {
		return nil, "", v, fmt.Errorf("resolving %s: %w", r.dest.Name, err)
	}
	var refused *Denied
	var lastErr error
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		rv := rules.CheckResolved(r.dest.Name, a, port, g.own)
		if !rv.Allowed {
			if refused == nil {
				refused = &Denied{Verdict: rv, Hint: hintForAddr(a, port, rv)}
			}
			continue
		}
		// The address that was checked is the one dialled: nothing
		// resolves the name again between the check and the connect.
		addr := netip.AddrPortFrom(a, port).String()
		c, err := dialTCP(ctx, addr)
		if err == nil {
			return c, addr, v, nil
		}
		lastErr = err
	}
	if lastErr != nil {
		return nil, "", v, lastErr
	}
	if refused != nil {
		return nil, "", refused.Verdict, refused
	}
	return nil, "", v, fmt.Errorf("resolving %s: no address", r.dest.Name)
}

func dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// hintFor says what flag would allow a destination the rules refused.
func hintFor(r *request, v Verdict) string {
	if v.Rule != "" {
		return fmt.Sprintf("remove --deny-domain %s to allow it", v.Rule)
	}
	if r.dest.IsAddr() {
		return fmt.Sprintf("to allow it: --allow-domain %s", hostForRule(r.dest, r.port))
	}
	return fmt.Sprintf("to allow it: --allow-domain %s (any port) or --allow-domain %s:%d", r.dest.Name, r.dest.Name, r.port)
}

func hintForAddr(a netip.Addr, port uint16, v Verdict) string {
	if v.Rule != "" {
		return fmt.Sprintf("remove --deny-domain %s to allow it", v.Rule)
	}
	return fmt.Sprintf("to allow that address: --allow-domain %s", hostForRule(Dest{Addr: a}, port))
}

func hostForRule(d Dest, port uint16) string {
	if d.Addr.Is6() {
		return fmt.Sprintf("[%s]:%d", d.Addr, port)
	}
	return fmt.Sprintf("%s:%d", d.String(), port)
}

// acquire takes a tunnel slot; false if the cap is reached.
func (g *Gateway) acquire() bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (g *Gateway) release() { <-g.slots }

// record audits one connection's decision and, for a denial, tells the
// user with --verbose.
func (g *Gateway) record(r *request, addr string, v Verdict, up, down int64, err error) {
	g.recordEvent(audit.KindConnection, r, addr, v, up, down, err, nil)
}

// recordEvent audits a connection, or a request of an inspected tunnel
// (kind audit.KindRequest, with its detail).
func (g *Gateway) recordEvent(kind string, r *request, addr string, v Verdict, up, down int64, err error, detail map[string]string) {
	ev := audit.Event{
		Detail:     detail,
		Event:      kind,
		Proto:      r.proto,
		Host:       r.dest.String(),
		Port:       int(r.port),
		Addr:       addr,
		Rule:       v.Rule,
		Reason:     v.Reason,
		BytesUp:    up,
		BytesDown:  down,
		DurationMS: float64(time.Since(r.start).Microseconds()) / 1000,
	}
	var denied *Denied
	var tripped *Tripped
	switch {
	case errors.As(err, &tripped) && g.classify(tripped) != "canary":
		g.stats.Denied.Add(1)
		ev.Decision = "deny"
		ev.Rule, ev.Reason = "", tripped.Error()
		d := map[string]string{"kind": tripped.Kind(), "where": tripped.Where}
		if tripped.Rule != "" {
			d["rule"] = tripped.Rule
		} else {
			d["name"], d["encoding"] = tripped.Token.Name, tripped.Hit.Encoding
		}
		g.cfg.Audit.Write(audit.Event{Event: "secret", Proto: r.proto, Host: r.dest.String(), Port: int(r.port), Addr: addr, Detail: d})
		if g.cfg.OnSecret != nil {
			g.cfg.OnSecret(r.proto, r.hostport(), tripped)
		}
	case errors.As(err, &tripped):
		g.stats.Denied.Add(1)
		ev.Decision = "deny"
		ev.Rule, ev.Reason = "", tripped.Error()
		g.cfg.Audit.Write(audit.Event{
			Event: "canary", Proto: r.proto, Host: r.dest.String(), Port: int(r.port), Addr: addr,
			Detail: map[string]string{"encoding": tripped.Hit.Encoding, "where": tripped.Where, "token_prefix": prefix(tripped.Hit.Token, 6)},
		})
		if g.cfg.OnCanary != nil {
			g.cfg.OnCanary(r.proto, r.hostport(), tripped)
		}
	case errors.As(err, &denied):
		g.stats.Denied.Add(1)
		ev.Decision = "deny"
		ev.Rule, ev.Reason = denied.Rule, denied.Reason
		if g.cfg.Log != nil {
			g.cfg.Log("denied %s %s: %s", r.proto, r.hostport(), denied.Error())
		}
	default:
		g.stats.Allowed.Add(1)
		ev.Decision = "allow"
		if err != nil {
			ev.Error = err.Error()
		}
	}
	g.cfg.Audit.Write(ev)
}

func prefix(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
