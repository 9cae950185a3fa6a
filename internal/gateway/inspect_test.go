package gateway

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/internal/audit"
	"github.com/cordon-sandbox/cordon/internal/canary"
	"github.com/cordon-sandbox/cordon/internal/tlsca"
)

// tlsOrigin is an HTTPS server on loopback with its own CA, which the
// gateway trusts as if it were the host's; it keeps what it was sent.
type tlsOrigin struct {
	*httptest.Server
	port  string
	ca    *tlsca.CA
	roots *x509.CertPool
	mu    sync.Mutex
	seen  []string // "PROTO METHOD URI | headers | body" of each request
}

func startTLSOrigin(t *testing.T, name string) *tlsOrigin {
	t.Helper()
	o := &tlsOrigin{}
	o.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var hs []string
		for k, vs := range r.Header {
			hs = append(hs, k+": "+strings.Join(vs, ","))
		}
		o.mu.Lock()
		o.seen = append(o.seen, fmt.Sprintf("%s %s %s | %s | %s", r.Proto, r.Method, r.RequestURI, strings.Join(hs, "; "), b))
		o.mu.Unlock()
		fmt.Fprintf(w, "hello from %s over %s", r.Host, r.Proto)
	}))
	o.EnableHTTP2 = true
	o.Config.ErrorLog = log.New(io.Discard, "", 0) // connections the gateway dialled and did not use
	// The origin's certificate, from a CA of its own (tlsca makes a
	// fine one), for its name.
	ca, err := tlsca.New(tlsca.Constraints{DNS: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Leaf(name)
	if err != nil {
		t.Fatal(err)
	}
	o.TLS = &tls.Config{Certificates: []tls.Certificate{*leaf}}
	o.StartTLS()
	t.Cleanup(o.Close)
	o.port = portOf(t, o.Listener.Addr().String())
	o.ca = ca
	o.roots = x509.NewCertPool()
	o.roots.AddCert(ca.Certificate())
	return o
}

func (o *tlsOrigin) requests() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.seen...)
}

// inspectClient goes through the gateway's HTTP proxy (or SOCKS5) and
// trusts only the run's CA, as the sandbox does.
func inspectClient(t *testing.T, tg *testGateway, ca *tlsca.CA, h2, socks bool) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	proxy := "http://" + tg.httpAddr
	if socks {
		proxy = "socks5://" + tg.socksAddr
	}
	u, _ := url.Parse(proxy)
	tr := &http.Transport{Proxy: http.ProxyURL(u), TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func inspectRules(t testing.TB, specs ...string) []InspectRule {
	var out []InspectRule
	for _, s := range specs {
		ir, err := ParseInspect(s)
		if err != nil {
			t.Fatalf("ParseInspect(%q): %v", s, err)
		}
		out = append(out, ir)
	}
	return out
}

func fetch(t *testing.T, c *http.Client, method, u, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, fmt.Sprintf("%s [client %s]", b, resp.Proto)
}

func TestInspect(t *testing.T) {
	o := startTLSOrigin(t, "i.test")
	ca, err := tlsca.New(tlsca.Constraints{DNS: []string{"i.test"}})
	if err != nil {
		t.Fatal(err)
	}
	tg := startGateway(t, Config{
		Rules:    rules(t, []string{"i.test", "127.0.0.1"}, nil),
		Resolver: hosts{"i.test": {loopback}},
		Inspect:  inspectRules(t, "i.test"),
		CA:       ca,
		Roots:    o.roots,
	})
	for _, tc := range []struct {
		name      string
		h2, socks bool
		want      string
	}{
		{"HTTP/1.1 by CONNECT", false, false, "HTTP/1.1"},
		{"HTTP/2 by CONNECT", true, false, "HTTP/2.0"},
		{"HTTP/2 by SOCKS5", true, true, "HTTP/2.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := inspectClient(t, tg, ca, tc.h2, tc.socks)
			code, body := fetch(t, c, "GET", "https://i.test:"+o.port+"/hello", "")
			if code != 200 || !strings.Contains(body, "hello from i.test:"+o.port) || !strings.Contains(body, "[client "+tc.want+"]") {
				t.Fatalf("got %d %q, want 200 from the origin, the client on %s", code, body, tc.want)
			}
		})
	}
	// The origin was reached over HTTP/2 by the gateway's own client.
	if reqs := o.requests(); len(reqs) != 3 || !strings.HasPrefix(reqs[0], "HTTP/2.0 GET /hello") {
		t.Errorf("origin saw %q", reqs)
	}
	// Without the run's CA, a client refuses the gateway's certificate.
	u, _ := url.Parse("http://" + tg.httpAddr)
	plain := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}, Timeout: 10 * time.Second}
	if _, err := plain.Get("https://i.test:" + o.port + "/"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without the run's CA: %v, want a certificate error", err)
	}
}

func TestInspectRefusesBadUpstream(t *testing.T) {
	o := startTLSOrigin(t, "i.test")
	ca, _ := tlsca.New(tlsca.Constraints{DNS: []string{"i.test"}})
	tg := startGateway(t, Config{
		Rules:    rules(t, []string{"i.test", "127.0.0.1"}, nil),
		Resolver: hosts{"i.test": {loopback}},
		Inspect:  inspectRules(t, "i.test"),
		CA:       ca,
		Roots:    x509.NewCertPool(), // the origin's CA is not among them
	})
	code, body := fetch(t, inspectClient(t, tg, ca, true, false), "GET", "https://i.test:"+o.port+"/", "")
	if code != http.StatusBadGateway || !strings.Contains(body, "did not verify") {
		t.Errorf("got %d %q, want 502 saying the certificate did not verify", code, body)
	}
	if n := len(o.requests()); n != 0 {
		t.Errorf("the origin got %d requests through an unverified connection", n)
	}
	found := false
	for _, e := range tg.events(t) {
		if e.Decision == "deny" && strings.Contains(e.Reason+e.Error, "did not verify") {
			found = true
		}
	}
	if !found {
		t.Errorf("no denial audited: %+v", tg.events(t))
	}
}

func TestInspectHTTPRules(t *testing.T) {
	o := startTLSOrigin(t, "i.test")
	ca, _ := tlsca.New(tlsca.Constraints{DNS: []string{"i.test"}})
	tg := startGateway(t, Config{
		Rules:    rules(t, []string{"i.test", "127.0.0.1"}, nil),
		Resolver: hosts{"i.test": {loopback}},
		Inspect:  inspectRules(t, "i.test GET,HEAD /pkg/ /-/"),
		CA:       ca,
		Roots:    o.roots,
	})
	base := "https://i.test:" + o.port
	for _, h2 := range []bool{false, true} {
		c := inspectClient(t, tg, ca, h2, false)
		for _, tc := range []struct {
			method, path string
			want         int
		}{
			{"GET", "/pkg/a", 200},
			{"HEAD", "/pkg", 200},
			{"GET", "/-/whoami", 200},
			{"POST", "/pkg/a", 403},
			{"PUT", "/pkg/a", 403},
			{"GET", "/pkgx", 403},
			{"GET", "/admin", 403},
			{"GET", "/pkg/../admin", 403},
			{"GET", "/pkg/%2e%2e/admin", 403},
			{"GET", "/pkg%2f..%2fadmin", 403},
			{"GET", "/pkg/@types%2fnode", 200}, // npm's scoped packages
			{"GET", "/@types%2fnode", 403},
			{"GET", "/pkg%2fa", 403}, // decoded it is /pkg/a, but sent it is not under /pkg/
			{"GET", "//pkg/a", 403},
		} {
			req, _ := http.NewRequest(tc.method, base+"/", nil)
			req.URL.Opaque = "//i.test:" + o.port + tc.path // sent as written, not cleaned by the client
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("h2=%v %s %s: %v", h2, tc.method, tc.path, err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("h2=%v %s %s: %d, want %d", h2, tc.method, tc.path, resp.StatusCode, tc.want)
			}
		}
	}
	for _, r := range o.requests() {
		if !strings.Contains(r, " GET /pkg/a ") && !strings.Contains(r, " HEAD /pkg ") && !strings.Contains(r, " GET /-/whoami ") && !strings.Contains(r, " GET /pkg/@types%2fnode ") {
			t.Errorf("origin got a request the rules refuse: %q", r)
		}
	}
	// The Host of each request must be the destination the tunnel was
	// allowed for.
	code, body := fetch(t, inspectClient(t, tg, ca, false, false), "GET", base+"/pkg/a", "", "Host", "other.test")
	if code != 403 || !strings.Contains(body, "Host") {
		t.Errorf("a request for another Host: %d %q, want 403", code, body)
	}
	// Each request is audited: the 8 answered with their status, the 21
	// refused with why. (An answered request's event is written after the
	// answer: Close waits for it.)
	tg.Close()
	var allowed, denied int
	for _, e := range tg.events(t) {
		if e.Event != audit.KindRequest {
			continue
		}
		switch {
		case e.Decision == audit.Allow && e.Detail["status"] == "200" && e.Proto == "https":
			allowed++
		case e.Decision == audit.Deny && e.Reason != "" && e.Detail["method"] != "":
			denied++
		default:
			t.Errorf("request event %+v", e)
		}
	}
	if allowed != 8 || denied != 21 {
		t.Errorf("%d allowed and %d denied request events, want 8 and 21", allowed, denied)
	}
}

func TestParseInspect(t *testing.T) {
	for _, bad := range []string{"", "i.test G3T", "i.test GET pkg", "i.test GET /a/../b", "i.test GET /a?b", "10.0.0.0/8", "*"} {
		if _, err := ParseInspect(bad); err == nil {
			t.Errorf("ParseInspect(%q) accepted", bad)
		}
	}
	ir, err := ParseInspect("  I.test  get,Head  /a/ /b ")
	if err != nil || ir.Host.Name() != "i.test" || strings.Join(ir.Methods, ",") != "GET,HEAD" || strings.Join(ir.Paths, " ") != "/a/ /b" {
		t.Errorf("ParseInspect: %+v %v", ir, err)
	}
}

// TestInspectScansAndInjects: an inspected request's URL, headers and body
// are scanned like plain HTTP's; a secret's placeholder is swapped for its
// value on the way to the secret's host only, and refused anywhere else;
// the value itself, coming from the sandbox, is refused everywhere.
func TestInspectScansAndInjects(t *testing.T) {
	const (
		canaryToken = "CANARYtoken0123456789"
		placeholder = "cordon-placeholder-0123456789abcdef"
		value       = "s3cr3t-VALUE-of-the-token"
	)
	o := startTLSOrigin(t, "i.test")
	other := startTLSOrigin(t, "j.test")
	roots := x509.NewCertPool()
	roots.AddCert(o.ca.Certificate())
	roots.AddCert(other.ca.Certificate())
	scanner, err := canary.New([]string{canaryToken, placeholder, value})
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := tlsca.New(tlsca.Constraints{DNS: []string{"i.test", "j.test"}})
	var mu sync.Mutex
	var kinds []string
	host, _ := ParseRule("i.test")
	tg := startGateway(t, Config{
		Rules:    rules(t, []string{"i.test", "j.test", "127.0.0.1"}, nil),
		Resolver: hosts{"i.test": {loopback}, "j.test": {loopback}},
		Inspect:  inspectRules(t, "j.test"),
		CA:       ca,
		Roots:    roots,
		Canaries: scanner,
		Tokens: map[string]Token{
			placeholder: {Kind: TokenPlaceholder, Name: "API_TOKEN"},
			value:       {Kind: TokenInjected, Name: "API_TOKEN"},
		},
		Formats: func(b []byte, host string) (string, bool) {
			return "test-format", strings.Contains(string(b), "FORMATTED-TOKEN") && host != "allowed.test"
		},
		Inject:   []Injection{{Name: "API_TOKEN", Placeholder: placeholder, Value: value, Hosts: []Rule{host}}},
		OnCanary: func(_, _ string, tr *Tripped) { mu.Lock(); kinds = append(kinds, tr.Kind()); mu.Unlock() },
		OnSecret: func(_, _ string, tr *Tripped) { mu.Lock(); kinds = append(kinds, tr.Kind()); mu.Unlock() },
	})
	basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + placeholder))
	for _, h2 := range []bool{false, true} {
		c := inspectClient(t, tg, ca, h2, false)
		// Swapped in: header, Basic credentials, query, body.
		code, body := fetch(t, c, "POST", "https://i.test:"+o.port+"/api?key="+placeholder, `{"token":"`+placeholder+`"}`,
			"Authorization", "Bearer "+placeholder, "X-Basic", "Basic "+basic)
		if code != 200 {
			t.Fatalf("h2=%v: injected request: %d %q", h2, code, body)
		}
		// Refused: the placeholder to a host it is not for; the value
		// from inside; a canary; a token format.
		for _, tc := range []struct {
			name, u, body, kind string
			header              []string
		}{
			{"placeholder elsewhere", "https://j.test:" + other.port + "/", "", "placeholder", []string{"Authorization", "Bearer " + placeholder}},
			{"placeholder elsewhere, body", "https://j.test:" + other.port + "/", "t=" + placeholder, "placeholder", nil},
			{"value from inside", "https://i.test:" + o.port + "/", "", "injected", []string{"Authorization", "Bearer " + value}},
			{"canary", "https://i.test:" + o.port + "/", base64.StdEncoding.EncodeToString([]byte("k=" + canaryToken)), "canary", nil},
			{"format", "https://j.test:" + other.port + "/?q=FORMATTED-TOKEN", "", "format", nil},
		} {
			if code, body := fetch(t, c, "POST", tc.u, tc.body, tc.header...); code != 403 || !strings.Contains(body, "blocked") {
				t.Errorf("h2=%v %s: %d %q, want 403 blocked", h2, tc.name, code, body)
			}
		}
	}
	reqs := o.requests()
	if len(reqs) != 2 {
		t.Fatalf("i.test got %d requests, want the 2 injected ones: %q", len(reqs), reqs)
	}
	wantBasic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + value))
	for _, r := range reqs {
		if strings.Contains(r, placeholder) {
			t.Errorf("the placeholder reached the secret's host: %q", r)
		}
		for _, want := range []string{"/api?key=" + value, "Authorization: Bearer " + value, "X-Basic: Basic " + wantBasic, `{"token":"` + value + `"}`} {
			if !strings.Contains(r, want) {
				t.Errorf("i.test got %q, missing %q", r, want)
			}
		}
	}
	for _, r := range other.requests() {
		t.Errorf("j.test got a request it should not have: %q", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(kinds, " "); got != "placeholder placeholder injected canary format placeholder placeholder injected canary format" {
		t.Errorf("reported %q", got)
	}
	secretsAudited := 0
	for _, e := range tg.events(t) {
		if e.Event == "secret" {
			secretsAudited++
		}
	}
	if secretsAudited != 8 {
		t.Errorf("%d secret events audited, want 8", secretsAudited)
	}
}

// TestInspectServerName: the hello must name the destination allowed.
func TestInspectServerName(t *testing.T) {
	o := startTLSOrigin(t, "i.test")
	ca, _ := tlsca.New(tlsca.Constraints{DNS: []string{"i.test"}})
	tg := startGateway(t, Config{
		Rules:    rules(t, []string{"i.test", "127.0.0.1"}, nil),
		Resolver: hosts{"i.test": {loopback}},
		Inspect:  inspectRules(t, "i.test"),
		CA:       ca,
		Roots:    o.roots,
	})
	c, err := net.Dial("tcp", tg.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT i.test:%s HTTP/1.1\r\n\r\n", o.port)
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	tc := tls.Client(c, &tls.Config{ServerName: "evil.test", RootCAs: pool, InsecureSkipVerify: true})
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err == nil {
		t.Fatal("a hello for another server was answered")
	}
	waitFor(t, func() bool {
		for _, e := range tg.events(t) {
			if e.Decision == "deny" && strings.Contains(e.Reason, "evil.test") {
				return true
			}
		}
		return false
	})
}

// TestInspectCloseLeavesNothing: Close ends inspected tunnels and every
// goroutine and descriptor they held.
func TestInspectCloseLeavesNothing(t *testing.T) {
	o := startTLSOrigin(t, "i.test")
	ca, _ := tlsca.New(tlsca.Constraints{DNS: []string{"i.test"}})
	fds := countFDs(t)
	g, err := New(Config{
		Rules:    rules(t, []string{"i.test", "127.0.0.1"}, nil),
		Resolver: hosts{"i.test": {loopback}},
		Own:      []netip.Addr{netip.MustParseAddr("192.0.2.77")},
		Inspect:  inspectRules(t, "i.test"),
		CA:       ca,
		Roots:    o.roots,
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.ServeHTTP(l)
	tg := &testGateway{Gateway: g, httpAddr: l.Addr().String()}
	for _, h2 := range []bool{false, true} {
		c := inspectClient(t, tg, ca, h2, false)
		if code, body := fetch(t, c, "GET", "https://i.test:"+o.port+"/", ""); code != 200 {
			t.Fatalf("%d %q", code, body)
		}
		// The client keeps its connection open: Close must end it.
	}
	g.Close()
	o.CloseClientConnections()
	waitFor(t, func() bool { return gatewayGoroutines() == "" && countFDs(t) <= fds+4 })
}

// TestInspectLargeBody: a body too large to hold is scanned as it streams
// and cut before a canary near its end goes out whole.
func TestInspectLargeBody(t *testing.T) {
	const canaryToken = "CANARYtoken0123456789"
	o := startTLSOrigin(t, "i.test")
	scanner, err := canary.New([]string{canaryToken})
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := tlsca.New(tlsca.Constraints{DNS: []string{"i.test"}})
	var mu sync.Mutex
	var where []string
	tg := startGateway(t, Config{
		Rules:    rules(t, []string{"i.test", "127.0.0.1"}, nil),
		Resolver: hosts{"i.test": {loopback}},
		Inspect:  inspectRules(t, "i.test"),
		CA:       ca,
		Roots:    o.roots,
		Canaries: scanner,
		OnCanary: func(_, _ string, tr *Tripped) { mu.Lock(); where = append(where, tr.Where); mu.Unlock() },
	})
	body := strings.Repeat("x", 2<<20) + base64.StdEncoding.EncodeToString([]byte("k="+canaryToken)) + strings.Repeat("y", 1000)
	for _, h2 := range []bool{false, true} {
		if code, resp := fetch(t, inspectClient(t, tg, ca, h2, false), "POST", "https://i.test:"+o.port+"/up", body); code == 200 {
			t.Errorf("h2=%v: a 2 MiB body with a canary went through: %d %q", h2, code, resp)
		}
	}
	for _, r := range o.requests() {
		if strings.Contains(r, strings.Repeat("y", 1000)) {
			t.Errorf("the origin got the whole body: %d bytes", len(r))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(where) != 2 || !strings.HasPrefix(where[0], "body (over 1 MiB") {
		t.Errorf("alarms: %q, want two, in a streamed body", where)
	}
}

// TestInspectAuditsCutAnswers: a request whose answer the client stops
// reading (the reverse proxy then aborts its handler) is audited all the
// same: it was sent.
func TestInspectAuditsCutAnswers(t *testing.T) {
	big := strings.Repeat("z", 8<<20)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, big)
	}))
	ca, _ := tlsca.New(tlsca.Constraints{DNS: []string{"i.test"}})
	originCA, _ := tlsca.New(tlsca.Constraints{DNS: []string{"i.test"}})
	leaf, _ := originCA.Leaf("i.test")
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{*leaf}}
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(originCA.Certificate())
	tg := startGateway(t, Config{
		Rules:    rules(t, []string{"i.test", "127.0.0.1"}, nil),
		Resolver: hosts{"i.test": {loopback}},
		Inspect:  inspectRules(t, "i.test"),
		CA:       ca,
		Roots:    roots,
	})
	port := portOf(t, srv.Listener.Addr().String())
	for _, h2 := range []bool{false, true} {
		c := inspectClient(t, tg, ca, h2, false)
		resp, err := c.Get("https://i.test:" + port + "/big")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Read(make([]byte, 10))
		resp.Body.Close() // the rest unread
		c.Transport.(*http.Transport).CloseIdleConnections()
	}
	tg.Close()
	n := 0
	for _, e := range tg.events(t) {
		if e.Event == audit.KindRequest && e.Decision == audit.Allow && e.Detail["status"] == "200" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d request events for 2 requests whose answers were cut", n)
	}
}
