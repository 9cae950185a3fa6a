package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/internal/audit"
	"github.com/cordon-sandbox/cordon/internal/canary"
)

// hosts is a resolver for tests: names to addresses, nothing else.
type hosts map[string][]netip.Addr

func (h hosts) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := h[strings.TrimSuffix(host, ".")]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

var loopback = netip.MustParseAddr("127.0.0.1")

// testGateway is a gateway serving both protocols on loopback.
type testGateway struct {
	*Gateway
	httpAddr, socksAddr string
	auditPath           string
	logs                *logLines
}

type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func rules(t testing.TB, allow, deny []string) Rules {
	t.Helper()
	var rs Rules
	for _, s := range allow {
		r, err := ParseRule(s)
		if err != nil {
			t.Fatalf("ParseRule(%q): %v", s, err)
		}
		rs.Allow = append(rs.Allow, r)
	}
	for _, s := range deny {
		r, err := ParseRule(s)
		if err != nil {
			t.Fatalf("ParseRule(%q): %v", s, err)
		}
		rs.Deny = append(rs.Deny, r)
	}
	return rs
}

func startGateway(t testing.TB, cfg Config) *testGateway {
	t.Helper()
	tg := &testGateway{logs: &logLines{}, auditPath: filepath.Join(t.TempDir(), "audit.jsonl")}
	if cfg.Audit == nil {
		l, err := audit.Open(tg.auditPath)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Audit = l
		t.Cleanup(func() { l.Close() })
	}
	if cfg.Log == nil {
		cfg.Log = tg.logs.add
	}
	if cfg.Own == nil {
		cfg.Own = []netip.Addr{netip.MustParseAddr("192.0.2.77")}
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tg.Gateway = g
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg.httpAddr, tg.socksAddr = hl.Addr().String(), sl.Addr().String()
	go g.ServeHTTP(hl)
	go g.ServeSOCKS(sl)
	t.Cleanup(func() { g.Close() })
	return tg
}

func (tg *testGateway) events(t testing.TB) []audit.Event {
	t.Helper()
	f, err := os.Open(tg.auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := audit.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// client is an HTTP client that goes through the gateway's HTTP proxy.
func (tg *testGateway) client(roots *tls.Config) *http.Client {
	u, _ := url.Parse("http://" + tg.httpAddr)
	tr := &http.Transport{Proxy: http.ProxyURL(u), TLSClientConfig: roots, DisableKeepAlives: true}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func portOf(t testing.TB, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rawProxy sends a raw request head to the HTTP proxy and returns the
// status line and body of the answer.
func rawProxy(t testing.TB, addr, req string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: strings.Fields(req)[0]})
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 && strings.HasPrefix(req, "CONNECT") {
		return 200, ""
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestConnectTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello over tls")
	}))
	defer srv.Close()
	port := portOf(t, srv.Listener.Addr().String())
	tg := startGateway(t, Config{
		Rules:    rules(t, []string{"example.com", "127.0.0.1:" + port}, nil),
		Resolver: hosts{"example.com": {loopback}},
	})
	cl := tg.client(srv.Client().Transport.(*http.Transport).TLSClientConfig)
	resp, err := cl.Get("https://example.com:" + port + "/")
	if err != nil {
		t.Fatalf("GET through CONNECT: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello over tls" {
		t.Fatalf("body = %q", b)
	}
	tg.Close()
	evs := tg.events(t)
	var conn *audit.Event
	for i := range evs {
		if evs[i].Event == audit.KindConnection {
			conn = &evs[i]
		}
	}
	if conn == nil || conn.Decision != audit.Allow || conn.Proto != "connect" || conn.Host != "example.com" ||
		conn.Addr != "127.0.0.1:"+port || conn.BytesUp == 0 || conn.BytesDown == 0 {
		t.Fatalf("audit event = %+v", conn)
	}
}

func TestPlainHTTP(t *testing.T) {
	var gotHost, gotURI, gotProxyAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotURI, gotProxyAuth = r.Host, r.RequestURI, r.Header.Get("Proxy-Authorization")
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, body)
	}))
	defer srv.Close()
	port := portOf(t, srv.Listener.Addr().String())
	tg := startGateway(t, Config{
		Rules:    rules(t, []string{"allowed.test", "127.0.0.1:" + port}, nil),
		Resolver: hosts{"allowed.test": {loopback}, "other.test": {loopback}},
	})

	req, _ := http.NewRequest("POST", "http://ALLOWED.test.:"+port+"/p?q=1", strings.NewReader("payload"))
	req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
	resp, err := tg.client(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "POST payload" {
		t.Fatalf("answer %d %q", resp.StatusCode, b)
	}
	if gotHost != "allowed.test:"+port || gotURI != "/p?q=1" || gotProxyAuth != "" {
		t.Fatalf("server saw Host %q URI %q Proxy-Authorization %q", gotHost, gotURI, gotProxyAuth)
	}

	// Keep-alive: two requests on one client connection, each decided.
	c, err := net.Dial("tcp", tg.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	fmt.Fprintf(c, "GET http://allowed.test:%s/ HTTP/1.1\r\nHost: allowed.test:%s\r\n\r\n", port, port)
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first request: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	fmt.Fprintf(c, "GET http://other.test:%s/ HTTP/1.1\r\nHost: other.test:%s\r\n\r\n", port, port)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || !strings.Contains(string(body), "--allow-domain other.test") {
		t.Fatalf("second request to a host not allowed: %d %q", resp.StatusCode, body)
	}
}

// TestPlainHTTPKeepAlive: requests without a body on one client
// connection to the same destination share one upstream connection; a
// body, another destination, a server that asks to close, or one that sent
// more than its answer, each get a new one; a kept connection its server
// closed is replaced without the client noticing; every request is still
// audited.
func TestPlainHTTPKeepAlive(t *testing.T) {
	var conns, closed atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			conns.Add(1)
		case http.StateClosed:
			closed.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "other") }))
	defer other.Close()
	// sly answers its first connection's first request with a second,
	// unasked-for answer behind the first, and every later one plainly.
	sly := serveRaw(t, func(i int, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			if i == 0 {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged")
				i = -1
				continue
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")
		}
	})
	port, otherPort, slyPort := portOf(t, srv.Listener.Addr().String()), portOf(t, other.Listener.Addr().String()), portOf(t, sly)
	tg := startGateway(t, Config{Rules: rules(t, []string{"127.0.0.1"}, nil)})

	c, err := net.Dial("tcp", tg.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	do := func(method, hostport, path, body string) string {
		t.Helper()
		head := fmt.Sprintf("%s http://%s%s HTTP/1.1\r\nHost: %s\r\n", method, hostport, path, hostport)
		if body != "" {
			head += fmt.Sprintf("Content-Length: %d\r\n", len(body))
		}
		io.WriteString(c, head+"\r\n"+body)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s %s%s: %v", method, hostport, path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s %s%s: %d %q %v", method, hostport, path, resp.StatusCode, b, err)
		}
		return string(b)
	}
	origin := "127.0.0.1:" + port
	want := func(step string, n int32) {
		t.Helper()
		if got := conns.Load(); got != n {
			t.Errorf("%s: the server has seen %d connections, want %d", step, got, n)
		}
	}
	for i := range 3 {
		if got := do("GET", origin, fmt.Sprintf("/%d", i), ""); got != fmt.Sprintf("GET /%d ", i) {
			t.Fatalf("GET /%d answered %q", i, got)
		}
	}
	want("three GETs", 1)
	if got := do("POST", origin, "/p", "payload"); got != "POST /p payload" {
		t.Fatalf("POST answered %q", got)
	}
	want("a POST (a body is never sent on a kept connection)", 2)
	do("GET", origin, "/after-post", "")
	want("a GET after the POST", 2)
	srv.CloseClientConnections() // the server ends the kept connection
	if got := do("GET", origin, "/after-close", ""); got != "GET /after-close " {
		t.Fatalf("GET after the server closed the kept connection answered %q", got)
	}
	want("a GET after the server closed its side", 3)
	if got := do("GET", "127.0.0.1:"+otherPort, "/", ""); got != "other" {
		t.Fatalf("the other server answered %q", got)
	}
	do("GET", origin, "/back", "")
	want("back from another destination", 4)
	do("GET", origin, "/close", "")
	do("GET", origin, "/after-close-header", "")
	want("after an answer with Connection: close", 5)

	slyOrigin := "127.0.0.1:" + slyPort
	if got := do("GET", slyOrigin, "/1", ""); got != "ok" {
		t.Fatalf("first answer %q", got)
	}
	if got := do("GET", slyOrigin, "/2", ""); got != "fresh" {
		t.Fatalf("the second request got %q: an answer the server sent unasked went to it", got)
	}

	// A request refused before it is sent still ends the kept connection.
	do("GET", origin, "/last", "")
	fmt.Fprintf(c, "GET http://%s/ HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n", origin)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 400 {
		t.Fatalf("a request whose Host differs from its target: %v %v", resp, err)
	}
	for end := time.Now().Add(5 * time.Second); closed.Load() != conns.Load() && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	if n, m := conns.Load(), closed.Load(); n != m {
		t.Errorf("%d of the server's %d connections are still open after the client's ended", n-m, n)
	}

	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	var http0 int
	for time.Now().Before(deadline) {
		http0 = 0
		for _, ev := range tg.events(t) {
			if ev.Event == "connection" && ev.Proto == "http" && ev.Decision == "allow" {
				http0++
			}
		}
		if http0 == 13 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if http0 != 13 {
		t.Errorf("the audit log has %d allowed http requests, want 13", http0)
	}
}

// TestPlainHTTPClientGone: a client that goes away in the middle of a
// plain-HTTP download ends the upstream connection too; the gateway does
// not fetch the rest of the answer for nobody.
func TestPlainHTTPClientGone(t *testing.T) {
	const size = 1 << 30
	sent := make(chan int64, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		n, _ := io.CopyN(w, pattern(3), size)
		sent <- n
	}))
	defer srv.Close()
	tg := startGateway(t, Config{Rules: rules(t, []string{"127.0.0.1"}, nil)})
	c, err := net.Dial("tcp", tg.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	origin := srv.Listener.Addr().String()
	fmt.Fprintf(c, "GET http://%s/ HTTP/1.1\r\nHost: %s\r\n\r\n", origin, origin)
	if _, err := io.CopyN(io.Discard, c, 1<<20); err != nil {
		t.Fatal(err)
	}
	c.Close()
	select {
	case n := <-sent:
		if n > 64<<20 {
			t.Errorf("the server sent %d MiB of the 1024 after the client left at 1", n>>20)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the server was still sending 20 s after the client left")
	}
}

// serveRaw accepts on a loopback listener and hands the i-th connection to
// serve; it returns the listener's address.
func serveRaw(t testing.TB, serve func(i int, c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	go func() {
		for i := 0; ; i++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				serve(i, c)
			}()
		}
	}()
	return l.Addr().String()
}

// TestBypasses tries what an attacker inside would: every spelling of a
// forbidden address, confusion around an allowed name, mismatched Host
// headers. Only the allowed name, resolving to a public address, may pass
// the decision (the dial then fails: nothing listens there).
func TestBypasses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "reached")
	}))
	defer srv.Close()
	port := portOf(t, srv.Listener.Addr().String())
	tg := startGateway(t, Config{
		Rules: rules(t, []string{"allowed.test", "*.wild.test", "rebind.test", "mixed.test"}, []string{"ads.wild.test"}),
		Resolver: hosts{
			"allowed.test":        {loopback}, // allowed by name, but loopback is not named
			"rebind.test":         {netip.MustParseAddr("169.254.169.254")},
			"a.wild.test":         {netip.MustParseAddr("10.1.2.3")},
			"ads.wild.test":       {netip.MustParseAddr("192.0.2.1")},
			"allowed.test.evil":   {loopback},
			"evilallowed.test":    {loopback},
			"localhost":           {loopback},
			"allowed.test.wild.x": {loopback},
			// Rebinding with a mixed answer: every address is vetted.
			"mixed.test": {netip.MustParseAddr("10.0.0.1"), loopback, netip.MustParseAddr("::1")},
		},
	})
	targets := []string{
		"127.0.0.1", "127.1", "127.0.1", "2130706433", "0x7f000001", "017700000001", "0177.0.0.1",
		"0x7f.0.0.1", "127.000.000.001", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
		"[0:0:0:0:0:0:0:1]", "0.0.0.0", "0", "[::]", "169.254.169.254", "2852039166",
		"[fd00:ec2::254]", "100.100.100.200", "localhost", "LOCALHOST.", "allowed.test",
		"allowed.test.evil", "evilallowed.test", "rebind.test", "a.wild.test", "ads.wild.test",
		"wild.test", "192.0.2.77", "mixed.test", "[fe80::1]", "224.0.0.1", "255.255.255.255",
		"10.0.0.1", "172.16.0.1", "192.168.1.1", "[fc00::1]", "[64:ff9b::7f00:1]", "[::127.0.0.1]",
	}
	for _, host := range targets {
		t.Run("connect "+host, func(t *testing.T) {
			code, body := rawProxy(t, tg.httpAddr, fmt.Sprintf("CONNECT %s:%s HTTP/1.1\r\n\r\n", host, port))
			if code != 403 {
				t.Fatalf("CONNECT %s:%s = %d %q, want 403", host, port, code, body)
			}
		})
		t.Run("absolute "+host, func(t *testing.T) {
			code, body := rawProxy(t, tg.httpAddr, fmt.Sprintf("GET http://%s:%s/ HTTP/1.1\r\n\r\n", host, port))
			if code != 403 {
				t.Fatalf("GET http://%s:%s/ = %d %q, want 403", host, port, code, body)
			}
		})
		t.Run("socks "+host, func(t *testing.T) {
			if reply := socksConnect(t, tg.socksAddr, strings.Trim(host, "[]"), port); reply != socksNotAllowed {
				t.Fatalf("SOCKS5 CONNECT %s:%s reply = %d, want 2", host, port, reply)
			}
		})
	}
	malformed := []string{
		"CONNECT allowed.test@127.0.0.1:%[1]s HTTP/1.1\r\n\r\n",
		"CONNECT 127.0.0.1:%[1]s#allowed.test HTTP/1.1\r\n\r\n",
		"CONNECT 127.0.0.1%%23allowed.test:%[1]s HTTP/1.1\r\n\r\n",
		"CONNECT allowed.test%%00.evil:%[1]s HTTP/1.1\r\n\r\n",
		"CONNECT allowed.test:%[1]s HTTP/1.1\r\nHost: 127.0.0.1:%[1]s\r\n\r\n",
		"CONNECT allowed.test:%[1]s HTTP/1.1\r\nHost: allowed.test:%[1]s\r\nHost: 127.0.0.1\r\n\r\n",
		"CONNECT allowed.test HTTP/1.1\r\n\r\n",
		"GET http://allowed.test@127.0.0.1:%[1]s/ HTTP/1.1\r\n\r\n",
		"GET http://allowed.test:%[1]s/ HTTP/1.1\r\nHost: 127.0.0.1:%[1]s\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: 127.0.0.1:%[1]s\r\n\r\n",
		"GET https://allowed.test:%[1]s/ HTTP/1.1\r\n\r\n",
		"GET http://allowed.test:%[1]s/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET http://allowed.test:%[1]s/ HTTP/1.1\r\n Host: x\r\n\r\n",
		"GET http://allowed.test:%[1]s/ HTTP/1.1\r\nHost : x\r\n\r\n",
	}
	for _, m := range malformed {
		req := fmt.Sprintf(m, port)
		t.Run(strings.TrimSpace(strings.SplitN(req, "\r\n", 2)[0]), func(t *testing.T) {
			code, body := rawProxy(t, tg.httpAddr, req)
			if code != 400 && code != 403 {
				t.Fatalf("%q = %d %q, want 400 or 403", req, code, body)
			}
		})
	}
	if n := tg.Stats().Allowed.Load(); n != 0 {
		t.Fatalf("%d connections were allowed", n)
	}
}

func TestDenialExplains(t *testing.T) {
	tg := startGateway(t, Config{
		Rules:    rules(t, []string{"*.example.org", "loop.test"}, []string{"ads.example.org"}),
		Resolver: hosts{"loop.test": {loopback}},
	})
	tests := []struct {
		target string
		want   []string
	}{
		{"example.net:443", []string{"example.net", "--allow-domain example.net"}},
		{"ads.example.org:443", []string{"ads.example.org", "--deny-domain"}},
		{"loop.test:443", []string{"loopback", "--allow-domain 127.0.0.1:443"}},
		{"10.0.0.1:22", []string{"--allow-domain 10.0.0.1:22"}},
	}
	for _, tt := range tests {
		code, body := rawProxy(t, tg.httpAddr, "CONNECT "+tt.target+" HTTP/1.1\r\n\r\n")
		if code != 403 {
			t.Errorf("CONNECT %s = %d, want 403", tt.target, code)
		}
		for _, w := range tt.want {
			if !strings.Contains(body, w) {
				t.Errorf("CONNECT %s: body %q lacks %q", tt.target, body, w)
			}
		}
		if !strings.Contains(tg.logs.String(), "denied connect "+tt.target) {
			t.Errorf("no denial line for %s in %q", tt.target, tg.logs)
		}
	}
	tg.Close()
	denied := 0
	for _, e := range tg.events(t) {
		if e.Decision == audit.Deny {
			denied++
		}
	}
	if denied != len(tests) {
		t.Fatalf("%d denials audited, want %d", denied, len(tests))
	}
}

// socksConnect does a SOCKS5 CONNECT by name (or address, if host is one)
// and returns the reply code.
func socksConnect(t testing.TB, addr, host, port string) byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	reply, err := socksHandshake(c, 0x01, host, port)
	if err != nil {
		t.Fatalf("SOCKS5 to %s:%s: %v", host, port, err)
	}
	return reply
}

func socksHandshake(c net.Conn, cmd byte, host, port string) (byte, error) {
	var p uint16
	fmt.Sscan(port, &p)
	req := []byte{5, 1, 0, 5, cmd, 0}
	if a, err := netip.ParseAddr(host); err == nil && a.Is4() {
		req = append(append(req, 1), a.AsSlice()...)
	} else if err == nil {
		req = append(append(req, 4), a.AsSlice()...)
	} else {
		req = append(append(req, 3, byte(len(host))), host...)
	}
	req = binary.BigEndian.AppendUint16(req, p)
	if _, err := c.Write(req); err != nil {
		return 0, err
	}
	var resp [2 + 10]byte
	if _, err := io.ReadFull(c, resp[:2]); err != nil {
		return 0, err
	}
	if resp[1] != 0 {
		return 0, fmt.Errorf("method reply %d", resp[1])
	}
	if _, err := io.ReadFull(c, resp[2:]); err != nil {
		return 0, err
	}
	return resp[3], nil
}

func TestSOCKS(t *testing.T) {
	echo := startEcho(t)
	port := portOf(t, echo)
	tg := startGateway(t, Config{
		Rules:    rules(t, []string{"echo.test", "127.0.0.1:" + port}, nil),
		Resolver: hosts{"echo.test": {loopback}},
	})
	c, err := net.Dial("tcp", tg.socksAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	reply, err := socksHandshake(c, 0x01, "echo.test", port)
	if err != nil || reply != 0 {
		t.Fatalf("CONNECT echo.test: reply %d, %v", reply, err)
	}
	io.WriteString(c, "ping")
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "ping" {
		t.Fatalf("echo through SOCKS5 after a half-close = %q, %v", b, err)
	}
	for _, cmd := range []byte{0x02, 0x03} {
		c, err := net.Dial("tcp", tg.socksAddr)
		if err != nil {
			t.Fatal(err)
		}
		reply, err := socksHandshake(c, cmd, "echo.test", port)
		c.Close()
		if err != nil || reply != socksCmdNotSupported {
			t.Errorf("SOCKS5 command %d: reply %d, %v; want 7", cmd, reply, err)
		}
	}
}

// startEcho serves TCP echo on loopback: it echoes until EOF, then closes.
func startEcho(t testing.TB) string {
	t.Helper()
	return serveTCP(t, func(c net.Conn) { io.Copy(c, c) })
}

// serveTCP accepts on a loopback listener until the test ends and hands
// each connection to handle, which need not close it. When the test ends
// the listener and every connection still open are closed, and every
// handler has returned. It returns the listener's address.
func serveTCP(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		conns  = map[net.Conn]bool{}
		closed bool
		wg     sync.WaitGroup
	)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			conns[c] = true
			wg.Add(1)
			mu.Unlock()
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				handle(c)
			}()
		}
	}()
	return l.Addr().String()
}

func TestUpstream(t *testing.T) {
	echo := startEcho(t)
	port := portOf(t, echo)
	// The upstream is another gateway: it resolves the name, and its own
	// policy must allow the loopback address.
	upper := startGateway(t, Config{
		Rules:    rules(t, []string{"echo.test", "127.0.0.1:" + port}, nil),
		Resolver: hosts{"echo.test": {loopback}},
	})
	for _, scheme := range []string{"http", "socks5"} {
		t.Run(scheme, func(t *testing.T) {
			addr := upper.httpAddr
			if scheme == "socks5" {
				addr = upper.socksAddr
			}
			u, err := ParseUpstream(scheme + "://" + addr)
			if err != nil {
				t.Fatal(err)
			}
			// This gateway cannot resolve echo.test: only the upstream can.
			tg := startGateway(t, Config{Rules: rules(t, []string{"echo.test"}, nil), Upstream: u, Resolver: hosts{}})
			c, err := net.Dial("tcp", tg.httpAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "CONNECT echo.test:%s HTTP/1.1\r\n\r\n", port)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("CONNECT through the upstream: %v %v", resp, err)
			}
			io.WriteString(c, "via upstream")
			c.(*net.TCPConn).CloseWrite()
			b, _ := io.ReadAll(br)
			if string(b) != "via upstream" {
				t.Fatalf("echo = %q", b)
			}
			// The policy still applies first.
			if code, _ := rawProxy(t, tg.httpAddr, "CONNECT other.test:443 HTTP/1.1\r\n\r\n"); code != 403 {
				t.Fatalf("a name not allowed went to the upstream: %d", code)
			}
		})
	}
	for _, bad := range []string{"ftp://x:1", "http://x", "http://:3128", "socks5://x:0", "http://x:1/path", "x:1"} {
		if _, err := ParseUpstream(bad); err == nil {
			t.Errorf("ParseUpstream(%q) = nil error", bad)
		}
	}
}

func TestLimits(t *testing.T) {
	echo := startEcho(t)
	port := portOf(t, echo)
	tg := startGateway(t, Config{
		Rules:       rules(t, []string{"127.0.0.1:" + port}, nil),
		MaxTunnels:  2,
		IdleTimeout: 300 * time.Millisecond,
	})
	t.Run("head too large", func(t *testing.T) {
		big := "CONNECT 127.0.0.1:" + port + " HTTP/1.1\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("a", 1000)+"\r\n", 80) + "\r\n"
		if code, _ := rawProxy(t, tg.httpAddr, big); code != 431 {
			t.Fatalf("a %d-byte head = %d, want 431", len(big), code)
		}
	})
	t.Run("tunnel cap", func(t *testing.T) {
		// The connection of the test before may not have let go yet.
		waitFor(t, func() bool { return len(tg.slots) == 0 })
		var held []net.Conn
		for range 2 {
			c, err := net.Dial("tcp", tg.httpAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n", port)
			resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("tunnel: %v %v", resp, err)
			}
			held = append(held, c)
		}
		code, body := rawProxy(t, tg.httpAddr, "CONNECT 127.0.0.1:"+port+" HTTP/1.1\r\n\r\n")
		if code != 503 {
			t.Fatalf("third tunnel = %d %q, want 503", code, body)
		}
		// Idle tunnels end after the idle timeout, which frees slots.
		for _, c := range held {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err == nil {
				t.Fatal("idle tunnel still open")
			}
		}
		waitFor(t, func() bool { return len(tg.slots) == 0 })
	})
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("condition not reached in 10s; gateway goroutines:\n%s", gatewayGoroutines())
		}
	}
}

// TestCloseLeavesNothing: after Close, no goroutine and no descriptor of
// the gateway is left, even with tunnels open.
func TestCloseLeavesNothing(t *testing.T) {
	echo := startEcho(t)
	port := portOf(t, echo)
	fds := countFDs(t)
	g, err := New(Config{Rules: rules(t, []string{"127.0.0.1:" + port}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { g.ServeHTTP(l); close(done) }()
	var conns []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "CONNECT 127.0.0.1:%s HTTP/1.1\r\n\r\n", port)
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("tunnel: %v %v", resp, err)
		}
		conns = append(conns, c)
	}
	g.Close()
	<-done
	// Fail closed: once the gateway is gone, nothing listens.
	if c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("the gateway's listener still accepts after Close")
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("a tunnel survived Close")
		}
		c.Close()
	}
	waitFor(t, func() bool { return gatewayGoroutines() == "" && countFDs(t) <= fds })
}

// gatewayGoroutines returns the stacks of goroutines running the
// gateway's code, "" if none.
func gatewayGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "gateway.(*Gateway)") || strings.Contains(g, "gateway.(*tunnel)") || strings.Contains(g, "gateway.relay") {
			if !strings.Contains(g, "gateway.TestCloseLeavesNothing") {
				found = append(found, g)
			}
		}
	}
	return strings.Join(found, "\n\n")
}

func countFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// TestLargeTransfer moves 64 MiB down and 32 MiB up through the gateway,
// as plain HTTP and through CONNECT, and checks every byte: the relay's
// buffers are lent per read and reused, so a buffer given back too early
// or written twice shows here. Afterwards no large buffer is still lent.
func TestLargeTransfer(t *testing.T) {
	const size, upSize = 64 << 20, 32 << 20
	want := sha256.New()
	io.CopyN(want, pattern(1), size)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %v %x", n, err, h.Sum(nil))
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(size))
		io.CopyN(w, pattern(1), size)
	}))
	defer srv.Close()
	port := portOf(t, srv.Listener.Addr().String())
	tg := startGateway(t, Config{Rules: rules(t, []string{"127.0.0.1:" + port}, nil)})
	upWant := sha256.New()
	io.CopyN(upWant, pattern(2), upSize)
	for _, viaConnect := range []bool{false, true} {
		cl := tg.client(nil)
		if viaConnect {
			// http.Transport tunnels plain http too when asked to.
			u, _ := url.Parse("http://" + tg.httpAddr)
			cl.Transport.(*http.Transport).Proxy = http.ProxyURL(u)
			cl.Transport.(*http.Transport).OnProxyConnectResponse = func(context.Context, *url.URL, *http.Request, *http.Response) error { return nil }
		}
		resp, err := cl.Get("http://127.0.0.1:" + port + "/")
		if err != nil {
			t.Fatal(err)
		}
		got := sha256.New()
		n, err := io.Copy(got, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			t.Fatalf("connect=%v: got %d bytes, %v; want %d", viaConnect, n, err, size)
		}
		if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			t.Fatalf("connect=%v: the %d bytes that came down differ from those sent", viaConnect, size)
		}
		resp, err = cl.Post("http://127.0.0.1:"+port+"/", "application/octet-stream", io.LimitReader(pattern(2), upSize))
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if w := fmt.Sprintf("%d <nil> %x", upSize, upWant.Sum(nil)); string(answer) != w {
			t.Fatalf("connect=%v: the server got %q, want %q", viaConnect, answer, w)
		}
	}
	if n := bulkLent.Load(); n != 0 {
		t.Errorf("%d large buffers still lent after the transfers", n)
	}
}

// pattern is an endless stream of bytes that differ from one position to
// the next, the same for the same seed.
func pattern(seed uint64) io.Reader {
	return rand.NewChaCha8([32]byte{byte(seed)})
}

// TestBufferLending: large buffers are lent only while fewer than maxBulk
// are out, then small ones; a transfer goes bulk once a read fills its
// buffer and back once one finds what a small buffer holds.
func TestBufferLending(t *testing.T) {
	var lent []*[]byte
	for range maxBulk {
		bp := getBuf(true)
		if len(*bp) != bulkBuf {
			t.Fatalf("got a %d-byte buffer with %d large ones lent, want %d", len(*bp), len(lent), bulkBuf)
		}
		lent = append(lent, bp)
	}
	if bp := getBuf(true); len(*bp) != smallBuf {
		t.Errorf("with %d large buffers lent, got %d bytes, want a small buffer", maxBulk, len(*bp))
	} else {
		lent = append(lent, bp)
	}
	if bp := getBuf(false); len(*bp) != smallBuf {
		t.Errorf("asked for a small buffer, got %d bytes", len(*bp))
	} else {
		lent = append(lent, bp)
	}
	for _, bp := range lent {
		putBuf(bp)
	}
	if n := bulkLent.Load(); n != 0 {
		t.Errorf("%d large buffers lent after all came back", n)
	}
	for _, c := range []struct {
		bulk    bool
		n, size int
		want    bool
	}{
		{false, smallBuf, smallBuf, true},      // a full small read: bulk
		{false, smallBuf - 1, smallBuf, false}, // a short one: not
		{true, bulkBuf, bulkBuf, true},
		{true, smallBuf + 1, bulkBuf, true}, // more than a small buffer holds: still bulk
		{true, smallBuf, bulkBuf, false},    // no more than that: back to small
		{true, smallBuf, smallBuf, true},    // the cap gave a small one, and it filled
	} {
		if got := nextBulk(c.bulk, c.n, c.size); got != c.want {
			t.Errorf("nextBulk(%v, %d, %d) = %v, want %v", c.bulk, c.n, c.size, got, c.want)
		}
	}
}

func FuzzReadHead(f *testing.F) {
	for _, s := range []string{
		"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
		"GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc",
		"GET http://a/ HTTP/1.0\r\n\r\n",
		"\r\nGET http://a/ HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
		"CONNECT [::1]:22 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := readHead(bufio.NewReaderSize(bytes.NewReader(b), 8<<10))
		if err != nil {
			return
		}
		if !isToken(h.method) || (h.proto != "HTTP/1.1" && h.proto != "HTTP/1.0") || h.target == "" {
			t.Fatalf("accepted a bad request line: %q %q %q", h.method, h.target, h.proto)
		}
		if h.method == "CONNECT" {
			ParseHostPort(h.target)
		} else {
			parseAbsolute(h.target)
		}
	})
}

func FuzzReadSOCKS(f *testing.F) {
	f.Add([]byte{5, 1, 0, 5, 1, 0, 3, 11, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0, 80})
	f.Add([]byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 22})
	f.Add([]byte{5, 2, 0, 2, 5, 3, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 187})
	f.Fuzz(func(t *testing.T, b []byte) {
		rw := &struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(b), io.Discard}
		r, err := readSOCKS(rw)
		if err != nil {
			return
		}
		if r.cmd != 1 || r.port == 0 || (r.dest.Name == "" && !r.dest.IsAddr()) {
			t.Fatalf("accepted %+v", r)
		}
	})
}

// TestHelloServerName: a TLS hello that names another server than the
// allowed CONNECT or SOCKS5 target ends the tunnel before a byte of it
// reaches the destination; a server that speaks first still works.
func TestHelloServerName(t *testing.T) {
	var reached sync.Map
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateActive {
			reached.Store(c.RemoteAddr().String(), true)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	port := portOf(t, srv.Listener.Addr().String())
	tg := startGateway(t, Config{
		Rules:    rules(t, []string{"example.com", "127.0.0.1:" + port}, nil),
		Resolver: hosts{"example.com": {loopback}},
	})
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig
	for _, name := range []string{"evil.example", "EXAMPLE.net"} {
		cfg := roots.Clone()
		cfg.ServerName = name
		cfg.InsecureSkipVerify = true // the server's answer is not the point
		c, err := net.Dial("tcp", tg.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "CONNECT example.com:%s HTTP/1.1\r\n\r\n", port)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		tc := tls.Client(&bufferedConn{Conn: c, r: br}, cfg)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err == nil {
			t.Errorf("a TLS handshake naming %s through CONNECT example.com succeeded", name)
		}
		c.Close()
	}
	n := 0
	reached.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
	tg.Close()
	denied := 0
	for _, e := range tg.events(t) {
		if e.Decision == audit.Deny && strings.Contains(e.Reason, "TLS hello names server") {
			denied++
		}
	}
	if denied != 2 {
		t.Errorf("%d hello denials audited, want 2", denied)
	}
}

func TestServerSpeaksFirst(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, "220 greetings\r\n")
				io.Copy(c, c)
			}()
		}
	}()
	port := portOf(t, l.Addr().String())
	tg := startGateway(t, Config{Rules: rules(t, []string{"127.0.0.1:" + port}, nil)})
	c, err := net.Dial("tcp", tg.socksAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if reply, err := socksHandshake(c, 1, "127.0.0.1", port); err != nil || reply != 0 {
		t.Fatalf("SOCKS5 CONNECT: %d %v", reply, err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || line != "220 greetings\r\n" {
		t.Fatalf("greeting = %q, %v", line, err)
	}
	io.WriteString(c, "QUIT\r\n")
	if line, err := br.ReadString('\n'); err != nil || line != "QUIT\r\n" {
		t.Fatalf("echo = %q, %v", line, err)
	}
}

// TestCanaryRoutes: a canary token leaving by any plaintext route is cut
// before the destination gets it whole, reported once, and audited.
func TestCanaryRoutes(t *testing.T) {
	const token = "AKIAQ7X2M4ZKP3LB9TRW"
	scanner, err := canary.New([]string{token})
	if err != nil {
		t.Fatal(err)
	}
	var got sync.Map // path or tunnel payloads that arrived whole
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, err := io.ReadAll(r.Body); err == nil {
			got.Store(r.URL.String()+string(b), true)
		}
	}))
	defer srv.Close()
	port := portOf(t, srv.Listener.Addr().String())
	// The tunnels' destination takes whatever comes, as an attacker's
	// would, and keeps it.
	sink := startSink(t, &got)
	var mu sync.Mutex
	var trips []string
	tg := startGateway(t, Config{
		Rules:    rules(t, []string{"c.test", "*.c.test", "127.0.0.1:" + port, "127.0.0.1:" + sink}, nil),
		Resolver: hosts{"c.test": {loopback}},
		Canaries: scanner,
		OnCanary: func(proto, hostport string, tr *Tripped) {
			mu.Lock()
			trips = append(trips, proto+" "+tr.Where)
			mu.Unlock()
		},
	})
	b64 := base64.StdEncoding.EncodeToString([]byte("key=" + token + "\n"))
	base := "http://c.test:" + port
	tests := []struct {
		name string
		req  string
	}{
		{"body", "POST " + base + "/ HTTP/1.1\r\nContent-Length: " + fmt.Sprint(len(b64)) + "\r\n\r\n" + b64},
		{"chunked body", "POST " + base + "/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n" + b64[:5] + "\r\n" + fmt.Sprintf("%x", len(b64)-5) + "\r\n" + b64[5:] + "\r\n0\r\n\r\n"},
		{"query", "GET " + base + "/?k=" + url.QueryEscape(b64) + " HTTP/1.1\r\n\r\n"},
		{"header", "GET " + base + "/ HTTP/1.1\r\nAuthorization: Basic " + b64 + "\r\n\r\n"},
		{"host name", "GET http://" + strings.ToLower(token) + ".c.test:" + port + "/ HTTP/1.1\r\n\r\n"},
		{"CONNECT host name", "CONNECT " + strings.ToLower(token) + ".c.test:" + port + " HTTP/1.1\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := rawProxy(t, tg.httpAddr, tt.req); code != 403 || !strings.Contains(body, "canary") {
				t.Errorf("%s: %d %q, want 403 naming the canary", tt.name, code, body)
			}
		})
	}
	// A plaintext tunnel, by CONNECT and by SOCKS5: cut before the token
	// goes through.
	hello := clientHello(t, "c.test")
	for _, proto := range []string{"connect", "socks5", "hello then plaintext"} {
		c, err := net.Dial("tcp", map[string]string{"connect": tg.httpAddr, "socks5": tg.socksAddr, "hello then plaintext": tg.httpAddr}[proto])
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		if proto != "socks5" {
			fmt.Fprintf(c, "CONNECT c.test:%s HTTP/1.1\r\n\r\n", sink)
			if resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"}); err != nil || resp.StatusCode != 200 {
				t.Fatalf("CONNECT: %v %v", resp, err)
			}
			if proto == "hello then plaintext" {
				// A hello for the allowed name, then plaintext: the
				// destination may be the attacker's, which reads both.
				c.Write(hello)
			}
		} else if reply, err := socksHandshake(c, 1, "c.test", sink); err != nil || reply != 0 {
			t.Fatalf("SOCKS5: %d %v", reply, err)
		}
		fmt.Fprintf(c, "POST /%s HTTP/1.1\r\nHost: c.test\r\nContent-Length: %d\r\n\r\n", proto, len(b64))
		io.WriteString(c, b64[:10])
		time.Sleep(50 * time.Millisecond) // the token split across writes
		io.WriteString(c, b64[10:])
		if _, err := io.ReadAll(br); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Logf("%s: %v", proto, err)
		}
		c.Close()
	}
	tg.Close()
	n := 0
	got.Range(func(k, _ any) bool { n++; t.Errorf("arrived whole: %q", k); return true })
	mu.Lock()
	defer mu.Unlock()
	if len(trips) != len(tests)+3 {
		t.Errorf("OnCanary called %d times (%q), want %d", len(trips), trips, len(tests)+3)
	}
	events := 0
	for _, e := range tg.events(t) {
		if e.Event == "canary" {
			events++
		}
	}
	if events != len(tests)+3 {
		t.Errorf("%d canary events audited, want %d", events, len(tests)+3)
	}
}

// startSink accepts connections and reads each to its end, as an
// attacker's server would; a connection that delivered a whole POST (its
// base64 body ends in padding) is stored in got. It returns its port.
func startSink(t *testing.T, got *sync.Map) string {
	return portOf(t, serveTCP(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		if bytes.Contains(b, []byte("POST /")) && bytes.HasSuffix(bytes.TrimSpace(b), []byte("=")) {
			got.Store("tunnel:"+string(b), true)
		}
	}))
}

// clientHello returns the first flight of a TLS client for name.
func clientHello(t *testing.T, name string) []byte {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, &tls.Config{ServerName: name}).Handshake()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16<<10)
	n, err := b.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// TestCanaryMixedCaseName: a mixed-case token in a host name is found in
// the name as the client sent it, before Cordon lower-cases it.
func TestCanaryMixedCaseName(t *testing.T) {
	const token = "ghp_Q7xZm4KpL3b9TrWvN2cD8fHj"
	scanner, err := canary.New([]string{token})
	if err != nil {
		t.Fatal(err)
	}
	tripped := 0
	var mu sync.Mutex
	tg := startGateway(t, Config{
		Rules:    rules(t, []string{"*.c.test"}, nil),
		Resolver: hosts{},
		Canaries: scanner,
		OnCanary: func(string, string, *Tripped) { mu.Lock(); tripped++; mu.Unlock() },
	})
	if code, body := rawProxy(t, tg.httpAddr, "CONNECT "+token+".c.test:443 HTTP/1.1\r\n\r\n"); code != 403 || !strings.Contains(body, "canary") {
		t.Errorf("CONNECT with the token in the name: %d %q", code, body)
	}
	if reply := socksConnect(t, tg.socksAddr, token+".c.test", "443"); reply != socksNotAllowed {
		t.Errorf("SOCKS5 with the token in the name: reply %d", reply)
	}
	mu.Lock()
	defer mu.Unlock()
	if tripped != 2 {
		t.Errorf("OnCanary called %d times, want 2", tripped)
	}
}

// TestConnectHost: a CONNECT's Host header must name its target, or the
// proxy itself (as node's http.request sends it); another host is refused.
func TestConnectHost(t *testing.T) {
	echo := startEcho(t)
	port := portOf(t, echo)
	tg := startGateway(t, Config{Rules: rules(t, []string{"127.0.0.1:" + port}, nil)})
	for host, want := range map[string]int{
		"127.0.0.1:" + port:  200,
		tg.httpAddr:          200,
		"other.test:" + port: 400,
		"127.0.0.1:1":        400,
	} {
		if code, _ := rawProxy(t, tg.httpAddr, "CONNECT 127.0.0.1:"+port+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); code != want {
			t.Errorf("CONNECT with Host %s: %d, want %d", host, code, want)
		}
	}
}
