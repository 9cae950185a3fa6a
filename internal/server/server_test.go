package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/client"
	"github.com/cordon-sandbox/cordon/internal/session"
	"github.com/cordon-sandbox/cordon/internal/session/sessiontest"
)

type noHosts struct{}

func (noHosts) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no such host (test)", Name: host, IsNotFound: true}
}

// api is a test server over a Manager with a fake runtime.
type api struct {
	t     *testing.T
	ts    *httptest.Server
	m     *session.Manager
	rt    *sessiontest.Runtime
	token string // sent with every request
}

func newAPI(t *testing.T, opts Options) *api {
	t.Helper()
	rt := &sessiontest.Runtime{}
	m, err := session.NewManager(session.Config{
		StateDir:     t.TempDir(),
		Runtimes:     map[string]session.Runtime{"native": rt},
		ReapInterval: 5 * time.Millisecond,
		Resolver:     noHosts{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	opts.Log = t.Logf
	ts := httptest.NewServer(New(m, opts))
	// Cleanups run last first: the sessions end (and with them every
	// stream), then the server closes.
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return &api{t: t, ts: ts, m: m, rt: rt, token: opts.Token}
}

// request sends body (a string or []byte as is, anything else as JSON).
func (a *api) request(ctx context.Context, method, path string, body any) *http.Response {
	a.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	case io.Reader:
		r = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.ts.URL+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.ts.Client().Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// do sends a request and reads the whole answer.
func (a *api) do(method, path string, body any) (int, []byte) {
	a.t.Helper()
	resp := a.request(context.Background(), method, path, body)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// wantError checks an error answer's status and code.
func (a *api) wantError(method, path string, body any, status int, code string) client.Error {
	a.t.Helper()
	got, b := a.do(method, path, body)
	var e client.Error
	if err := json.Unmarshal(b, &e); err != nil || got != status || e.Code != code || e.Message == "" {
		a.t.Errorf("%s %s: %d %s, want %d with code %s", method, path, got, b, status, code)
	}
	return e
}

func (a *api) create(req client.CreateRequest) client.Session {
	a.t.Helper()
	status, b := a.do("POST", "/v1/sessions", req)
	var s client.Session
	if err := json.Unmarshal(b, &s); status != http.StatusCreated || err != nil {
		a.t.Fatalf("create: %d %s", status, b)
	}
	return s
}

func (a *api) get(id string) client.Session {
	a.t.Helper()
	status, b := a.do("GET", "/v1/sessions/"+id, nil)
	var s client.Session
	if err := json.Unmarshal(b, &s); status != http.StatusOK || err != nil {
		a.t.Fatalf("get: %d %s", status, b)
	}
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited too long for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestSessions(t *testing.T) {
	a := newAPI(t, Options{})
	status, b := a.do("GET", "/v1/health", nil)
	var h client.Health
	if err := json.Unmarshal(b, &h); status != 200 || err != nil || h.Status != "ok" || h.Runtimes["native"] != "ok" {
		t.Errorf("health: %d %s", status, b)
	}

	resp := a.request(context.Background(), "POST", "/v1/sessions", client.CreateRequest{Labels: map[string]string{"user": "ana"}, TTL: client.Duration(time.Hour)})
	var s client.Session
	json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Location") != "/v1/sessions/"+s.ID || s.State != client.StateRunning {
		t.Fatalf("create: %d, Location %q, %+v", resp.StatusCode, resp.Header.Get("Location"), s)
	}
	other := a.create(client.CreateRequest{Labels: map[string]string{"user": "bo"}})
	if got := a.get(s.ID); got.ID != s.ID || got.Labels["user"] != "ana" {
		t.Errorf("get: %+v", got)
	}
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"", []string{s.ID, other.ID}},
		{"?label=user=ana", []string{s.ID}},
		{"?label=user=bo&label=user=bo", []string{other.ID}},
		{"?label=user=cy", []string{}},
	} {
		status, b := a.do("GET", "/v1/sessions"+tt.query, nil)
		var l client.List
		if err := json.Unmarshal(b, &l); status != 200 || err != nil || l.Sessions == nil {
			t.Errorf("list%s: %d %s", tt.query, status, b)
			continue
		}
		ids := []string{}
		for _, s := range l.Sessions {
			ids = append(ids, s.ID)
		}
		if !slices.Equal(ids, tt.want) {
			t.Errorf("list%s = %v, want %v", tt.query, ids, tt.want)
		}
	}
	a.wantError("GET", "/v1/sessions?label=user", nil, 400, "bad_request")
	a.wantError("GET", "/v1/sessions?label=user=a&label=user=b", nil, 400, "bad_request")

	status, b = a.do("POST", "/v1/sessions/"+s.ID+"/timeout", `{"ttl":"2h","idle_timeout":"1m"}`)
	var t2 client.Session
	if err := json.Unmarshal(b, &t2); status != 200 || err != nil || t2.IdleTimeout.D() != time.Minute || time.Until(t2.ExpiresAt) < time.Hour {
		t.Errorf("timeout: %d %s", status, b)
	}

	if status, b := a.do("DELETE", "/v1/sessions/"+s.ID, nil); status != http.StatusNoContent || len(b) != 0 {
		t.Errorf("delete: %d %s", status, b)
	}
	if got := a.get(s.ID); got.State != client.StateStopped || got.Reason != "deleted" {
		t.Errorf("after delete: %s (%s)", got.State, got.Reason)
	}
	a.wantError("POST", "/v1/sessions/"+s.ID+"/exec", `{"argv":["true"]}`, 409, "conflict")
	a.wantError("DELETE", "/v1/sessions/s-aaaaaaaaaaaaaaaaaaaa", nil, 404, "not_found")
	a.wantError("GET", "/v1/sessions/s-aaaaaaaaaaaaaaaaaaaa", nil, 404, "not_found")
	for _, id := range []string{"nope", "s-AAAAAAAAAAAAAAAAAAAA", "s-aaaaaaaaaaaaaaaaaaa1", "s-aaaaaaaaaaaaaaaaaaaaa", "..%2F..%2Fetc"} {
		a.wantError("GET", "/v1/sessions/"+id, nil, 400, "bad_request")
	}
	a.wantError("GET", "/v1/nothing", nil, 404, "not_found")
	a.wantError("PATCH", "/v1/sessions", nil, 404, "not_found")
}

func TestBadBodies(t *testing.T) {
	a := newAPI(t, Options{})
	s := a.create(client.CreateRequest{})
	huge := `{"labels":{"a":"` + strings.Repeat("x", MaxJSONBytes) + `"}}`
	for _, tt := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"unknown field", "/v1/sessions", `{"bse":"host"}`, 400, "bad_request"},
		{"two values", "/v1/sessions", `{}{}`, 400, "bad_request"},
		{"trailing garbage", "/v1/sessions", `{} x`, 400, "bad_request"},
		{"empty", "/v1/sessions", ``, 400, "bad_request"},
		{"not an object", "/v1/sessions", `[]`, 400, "bad_request"},
		{"huge", "/v1/sessions", huge, 413, "too_large"},
		{"bad ttl", "/v1/sessions", `{"ttl":"soon"}`, 400, "bad_request"},
		{"negative ttl", "/v1/sessions", `{"ttl":"-5s"}`, 400, "bad_request"},
		{"negative seconds", "/v1/sessions", `{"idle_timeout":-5}`, 400, "bad_request"},
		{"negative limit", "/v1/sessions", `{"limits":{"memory_bytes":-1}}`, 400, "bad_request"},
		{"limit of the wrong type", "/v1/sessions", `{"limits":{"pids":"many"}}`, 400, "bad_request"},
		{"unknown limit", "/v1/sessions", `{"limits":{"gpus":1}}`, 400, "bad_request"},
		{"bad policy", "/v1/sessions", `{"policy":"[network]\nallow = 3\n"}`, 400, "bad_request"},
		{"zero timeout", "/v1/sessions/" + s.ID + "/timeout", `{"ttl":"0s"}`, 400, "bad_request"},
		{"exec without argv", "/v1/sessions/" + s.ID + "/exec", `{}`, 400, "bad_request"},
		{"exec with a relative cwd", "/v1/sessions/" + s.ID + "/exec", `{"argv":["ls"],"cwd":"tmp"}`, 400, "bad_request"},
		{"exec with bad base64", "/v1/sessions/" + s.ID + "/exec", `{"argv":["cat"],"stdin":"!!"}`, 400, "bad_request"},
		{"exec in an unknown session", "/v1/sessions/s-aaaaaaaaaaaaaaaaaaaa/exec", `{"argv":["ls"]}`, 404, "not_found"},
		{"exec in a malformed session", "/v1/sessions/s-x/exec", `{"argv":["ls"]}`, 400, "bad_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := a.wantError("POST", tt.path, tt.body, tt.status, tt.code)
			if strings.Contains(e.Message, "\n") && tt.name != "bad policy" {
				t.Errorf("message %q spans lines", e.Message)
			}
		})
	}
	if status, b := a.do("GET", "/v1/sessions", nil); !strings.Contains(string(b), `"sessions":[{`) || strings.Count(string(b), `"id"`) != 1 {
		t.Errorf("sessions after bad requests: %d %s, want only the first", status, b)
	}
}

func TestAuth(t *testing.T) {
	a := newAPI(t, Options{Token: "s3cret-token"})
	for _, tt := range []struct {
		header string
		want   int
	}{
		{"", 401},
		{"Bearer wrong", 401},
		{"Bearer s3cret-token-and-more", 401},
		{"Basic s3cret-token", 401},
		{"s3cret-token", 401},
		{"Bearer s3cret-token", 200},
		{"bearer s3cret-token", 200},
	} {
		for _, path := range []string{"/v1/health", "/metrics", "/v1/sessions", "/v1/nothing"} {
			req, _ := http.NewRequest("GET", a.ts.URL+path, nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := a.ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var e client.Error
			json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			want := tt.want
			if want == 200 && path == "/v1/nothing" {
				want = 404
			}
			if resp.StatusCode != want {
				t.Errorf("GET %s with %q: %d, want %d", path, tt.header, resp.StatusCode, want)
			}
			if want == 401 && (e.Code != "unauthorized" || resp.Header.Get("WWW-Authenticate") == "") {
				t.Errorf("GET %s with %q: %+v, %q; want unauthorized and WWW-Authenticate", path, tt.header, e, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
}

// execStream posts an exec and reads its frames as they come.
type execStream struct {
	t    *testing.T
	resp *http.Response
	sc   *bufio.Scanner
}

func (a *api) exec(ctx context.Context, id string, req any) *execStream {
	a.t.Helper()
	resp := a.request(ctx, "POST", "/v1/sessions/"+id+"/exec", req)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		a.t.Fatalf("exec: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	a.t.Cleanup(func() { resp.Body.Close() })
	return &execStream{t: a.t, resp: resp, sc: sc}
}

// next reads one frame; false at the end of the stream.
func (x *execStream) next() (client.ExecFrame, bool) {
	x.t.Helper()
	if !x.sc.Scan() {
		return client.ExecFrame{}, false
	}
	var f client.ExecFrame
	dec := json.NewDecoder(bytes.NewReader(x.sc.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		x.t.Fatalf("frame %q: %v", x.sc.Bytes(), err)
	}
	return f, true
}

// rest reads the frames to the end: stdout, stderr, and the frames in
// order.
func (x *execStream) rest() (stdout, stderr string, frames []client.ExecFrame) {
	x.t.Helper()
	for {
		f, ok := x.next()
		if !ok {
			return
		}
		frames = append(frames, f)
		switch f.Type {
		case client.FrameStdout:
			stdout += string(f.Data)
		case client.FrameStderr:
			stderr += string(f.Data)
		}
	}
}

// exit checks that frames end with exactly one exit frame, and returns it.
func exit(t *testing.T, frames []client.ExecFrame) client.ExecFrame {
	t.Helper()
	if len(frames) == 0 || frames[len(frames)-1].Type != client.FrameExit || frames[len(frames)-1].ExitCode == nil {
		t.Fatalf("frames %+v: want an exit frame last", frames)
	}
	for _, f := range frames[:len(frames)-1] {
		if f.Type == client.FrameExit || f.Type == client.FrameError {
			t.Errorf("frames %+v: an end before the end", frames)
		}
	}
	return frames[len(frames)-1]
}

func (a *api) started(x *execStream) client.ExecFrame {
	a.t.Helper()
	f, ok := x.next()
	if !ok || f.Type != client.FrameStarted || !session.ValidExecID(f.ExecID) || f.Pid <= 0 {
		a.t.Fatalf("first frame %+v, want started with an exec id and a pid", f)
	}
	return f
}

func TestExecStream(t *testing.T) {
	a := newAPI(t, Options{})
	s := a.create(client.CreateRequest{})
	x := a.exec(context.Background(), s.ID, client.ExecRequest{Argv: []string{"sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2; exit 3"}})
	a.started(x)
	stdout, stderr, frames := x.rest()
	if stdout != "out1\nout2\n" || stderr != "err1\nerr2\n" {
		t.Errorf("stdout %q, stderr %q", stdout, stderr)
	}
	if f := exit(t, frames); *f.ExitCode != 3 || f.Signal != "" || f.Timeout {
		t.Errorf("exit frame %+v, want code 3", f)
	}

	// A command not found is an exit, 127, with the reason; nothing
	// started.
	x = a.exec(context.Background(), s.ID, client.ExecRequest{Argv: []string{"no-such-command-here"}})
	_, _, frames = x.rest()
	if f := exit(t, frames); len(frames) != 1 || *f.ExitCode != 127 || !strings.Contains(f.Error, "not found") {
		t.Errorf("frames %+v, want one exit 127", frames)
	}

	// A big output arrives whole, in order.
	x = a.exec(context.Background(), s.ID, client.ExecRequest{Argv: []string{"seq", "1", "100000"}})
	a.started(x)
	stdout, _, frames = x.rest()
	var want strings.Builder
	for i := 1; i <= 100000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if stdout != want.String() || *exit(t, frames).ExitCode != 0 {
		t.Errorf("seq: %d bytes of stdout, want %d", len(stdout), want.Len())
	}
}

func TestExecStdin(t *testing.T) {
	a := newAPI(t, Options{})
	s := a.create(client.CreateRequest{})
	x := a.exec(context.Background(), s.ID, client.ExecRequest{Argv: []string{"cat"}, Stdin: []byte("hello\x00 world")})
	a.started(x)
	stdout, _, frames := x.rest()
	if stdout != "hello\x00 world" || *exit(t, frames).ExitCode != 0 {
		t.Errorf("cat: %q", stdout)
	}

	x = a.exec(context.Background(), s.ID, client.ExecRequest{Argv: []string{"cat"}, Stdin: []byte("first "), StdinStream: true})
	id := a.started(x).ExecID
	// upTo reads stdout frames until out ends with want.
	upTo := func(want string) {
		t.Helper()
		var out string
		for !strings.HasSuffix(out, want) {
			f, ok := x.next()
			if !ok || f.Type != client.FrameStdout {
				t.Fatalf("frame %+v after %q, want stdout up to %q", f, out, want)
			}
			out += string(f.Data)
		}
		if out != want {
			t.Errorf("stdout %q, want %q", out, want)
		}
	}
	upTo("first ")
	pr, pw := io.Pipe()
	done := make(chan int)
	go func() {
		resp := a.request(context.Background(), "POST", "/v1/sessions/"+s.ID+"/execs/"+id+"/stdin", pr)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	// The body streams: its first piece comes out before its end.
	io.WriteString(pw, "second ")
	upTo("second ")
	io.WriteString(pw, "third")
	pw.Close()
	if status := <-done; status != http.StatusNoContent {
		t.Errorf("stdin: %d, want 204", status)
	}
	stdout, _, frames = x.rest()
	if stdout != "third" || *exit(t, frames).ExitCode != 0 {
		t.Errorf("after stdin's end: %q, %+v", stdout, frames)
	}

	// Stdin of an exec without stdin_stream is closed.
	x = a.exec(context.Background(), s.ID, client.ExecRequest{Argv: []string{"sleep", "60"}})
	id = a.started(x).ExecID
	a.wantError("POST", "/v1/sessions/"+s.ID+"/execs/"+id+"/stdin", "x", 409, "conflict")
	a.wantError("POST", "/v1/sessions/"+s.ID+"/execs/e-aaaaaaaaaaaa/stdin", "x", 404, "not_found")
	a.wantError("POST", "/v1/sessions/"+s.ID+"/execs/nope/stdin", "x", 400, "bad_request")
}

func TestExecTimeout(t *testing.T) {
	a := newAPI(t, Options{})
	s := a.create(client.CreateRequest{})
	x := a.exec(context.Background(), s.ID, `{"argv":["sleep","60"],"timeout":"10ms"}`)
	a.started(x)
	_, _, frames := x.rest()
	if f := exit(t, frames); !f.Timeout || f.Signal != "SIGKILL" || *f.ExitCode != 137 {
		t.Errorf("exit frame %+v, want a timeout, SIGKILL, 137", f)
	}
}

func TestExecSignal(t *testing.T) {
	a := newAPI(t, Options{})
	s := a.create(client.CreateRequest{})
	x := a.exec(context.Background(), s.ID, client.ExecRequest{Argv: []string{"sleep", "60"}})
	id := a.started(x).ExecID
	base := "/v1/sessions/" + s.ID + "/execs/" + id
	a.wantError("POST", base+"/signal", `{"signal":"SIGNOPE"}`, 400, "bad_request")
	a.wantError("POST", base+"/signal", `{"sig":"TERM"}`, 400, "bad_request")
	a.wantError("POST", base+"/resize", `{"rows":10,"cols":10}`, 409, "conflict")
	if status, b := a.do("POST", base+"/signal", `{"signal":"TERM"}`); status != http.StatusNoContent {
		t.Fatalf("signal: %d %s", status, b)
	}
	_, _, frames := x.rest()
	if f := exit(t, frames); f.Signal != "SIGTERM" || *f.ExitCode != 143 || f.Timeout {
		t.Errorf("exit frame %+v, want SIGTERM, 143", f)
	}
}

func TestExecTTY(t *testing.T) {
	a := newAPI(t, Options{})
	s := a.create(client.CreateRequest{})
	x := a.exec(context.Background(), s.ID, client.ExecRequest{
		Argv: []string{"sh", "-c", "stty size; echo TERM=$TERM; read x; stty size"},
		TTY:  true, Rows: 30, Cols: 100, StdinStream: true,
	})
	id := a.started(x).ExecID
	var out string
	for !strings.Contains(out, "TERM=xterm-256color") {
		f, ok := x.next()
		if !ok {
			t.Fatalf("the stream ended: %q", out)
		}
		if f.Type != client.FrameStdout {
			t.Fatalf("frame %+v on a terminal, want stdout only", f)
		}
		out += string(f.Data)
	}
	if !strings.Contains(out, "30 100") {
		t.Errorf("first size: %q, want 30 100", out)
	}
	base := "/v1/sessions/" + s.ID + "/execs/" + id
	if status, b := a.do("POST", base+"/resize", `{"rows":40,"cols":120}`); status != http.StatusNoContent {
		t.Fatalf("resize: %d %s", status, b)
	}
	a.wantError("POST", base+"/resize", `{"rows":0,"cols":120}`, 400, "bad_request")
	// A terminal's stdin stays open after a request: the line is what
	// ends the read.
	if status, b := a.do("POST", base+"/stdin", "go\n"); status != http.StatusNoContent {
		t.Fatalf("stdin: %d %s", status, b)
	}
	stdout, stderr, frames := x.rest()
	if !strings.Contains(stdout, "40 120") || stderr != "" || *exit(t, frames).ExitCode != 0 {
		t.Errorf("after resize: %q, %q, %+v", stdout, stderr, frames)
	}
}

func TestClientLeavesMidStream(t *testing.T) {
	a := newAPI(t, Options{})
	s := a.create(client.CreateRequest{})
	_, sub, err := a.m.Events(s.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	x := a.exec(ctx, s.ID, client.ExecRequest{Argv: []string{"sleep", "60"}})
	a.started(x)
	cancel()
	var end client.Event
	for e := range sub.C {
		if e["event"] == session.EventExecEnd {
			end = e
			break
		}
	}
	if end["signal"] != "SIGKILL" {
		t.Errorf("exec_end %v, want killed", end)
	}
	waitFor(t, "no exec running", func() bool { return a.get(s.ID).Execs == 0 })
}

func TestEvents(t *testing.T) {
	a := newAPI(t, Options{})
	s := a.create(client.CreateRequest{})
	a.wantError("GET", "/v1/sessions/"+s.ID+"/events?follow=maybe", nil, 400, "bad_request")

	resp := a.request(context.Background(), "GET", "/v1/sessions/"+s.ID+"/events?follow=1", nil)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	next := func() client.Event {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("the event stream ended: %v", sc.Err())
		}
		var e client.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	if e := next(); e["event"] != "session_start" || e["session"] != s.ID {
		t.Errorf("first event %v, want session_start", e)
	}
	x := a.exec(context.Background(), s.ID, client.ExecRequest{Argv: []string{"sh", "-c", "exit 7 # <&>"}})
	id := a.started(x).ExecID
	x.rest()
	if e := next(); e["event"] != "exec_start" || e["exec_id"] != id || fmt.Sprint(e["argv"]) != "[sh -c exit 7 # <&>]" {
		t.Errorf("event %v, want exec_start of %s", e, id)
	}
	if !strings.Contains(sc.Text(), "exit 7 # <&>") {
		t.Errorf("event %s: the command line is not as typed", sc.Text())
	}
	if e := next(); e["event"] != "exec_end" || e["exec_id"] != id || e["exit_code"] != float64(7) {
		t.Errorf("event %v, want exec_end of %s with 7", e, id)
	}
	if status, _ := a.do("DELETE", "/v1/sessions/"+s.ID, nil); status != 204 {
		t.Fatal(status)
	}
	if e := next(); e["event"] != "session_end" || e["reason"] != "deleted" {
		t.Errorf("event %v, want session_end", e)
	}
	if sc.Scan() {
		t.Errorf("an event after session_end: %s", sc.Bytes())
	}

	// Without follow: the history, then the end of the answer.
	status, b := a.do("GET", "/v1/sessions/"+s.ID+"/events", nil)
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); status != 200 || len(lines) != 4 {
		t.Errorf("events without follow: %d, %d lines:\n%s", status, len(lines), b)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	a := newAPI(t, Options{})
	a.create(client.CreateRequest{})
	resp := a.request(context.Background(), "GET", "/metrics", nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(string(b), `cordon_sessions{state="running"} 1`) {
		t.Errorf("metrics lack the running session:\n%s", b)
	}
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		err    error
		status int
	}{
		{session.ErrLimit, 503},
		{session.ErrNoRuntime, 503},
		{fmt.Errorf("x: %w", session.ErrStopped), 409},
		{errors.New("something broke"), 500},
	} {
		if got, _ := classify(tt.err); got != tt.status {
			t.Errorf("classify(%v) = %d, want %d", tt.err, got, tt.status)
		}
	}
}
