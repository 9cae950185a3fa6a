package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI is a stand-in for cordon serve: the API's routes and shapes,
// sessions as records, execs scripted by their argv[0]. It exists to test
// the client's side of the wire; internal/server's tests test the server.
type fakeAPI struct {
	token string // required as a bearer token when set

	mu       sync.Mutex
	sessions map[string]Session
	created  []CreateRequest
	execs    []ExecRequest
	queries  []string // raw queries of GET /v1/sessions
	files    map[string][]byte
	modes    map[string]string
	archives map[string][]byte
	stdin    map[string]chan []byte
	resized  chan ResizeRequest
	auth     []string // Authorization headers seen
}

func newFakeAPI() *fakeAPI {
	return &fakeAPI{
		sessions: map[string]Session{},
		files:    map[string][]byte{},
		modes:    map[string]string{},
		archives: map[string][]byte{},
		stdin:    map[string]chan []byte{},
		resized:  make(chan ResizeRequest, 8),
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, Error{Code: code, Message: msg})
}

// strict decodes a JSON body the way the server does.
func strict(r *http.Request, v any) error {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func (f *fakeAPI) handler() http.Handler {
	mux := http.NewServeMux()
	session := func(h func(w http.ResponseWriter, r *http.Request, s Session)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			f.mu.Lock()
			s, ok := f.sessions[r.PathValue("id")]
			f.mu.Unlock()
			if !ok {
				writeErr(w, http.StatusNotFound, "not_found", "no such session "+r.PathValue("id"))
				return
			}
			h(w, r, s)
		}
	}
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, Health{Status: "ok", Runtimes: map[string]string{"native": "ok", "gvisor": "runsc not found"}})
	})
	mux.HandleFunc("POST /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		var req CreateRequest
		if err := strict(r, &req); err != nil {
			writeErr(w, 400, "bad_request", err.Error())
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.created = append(f.created, req)
		id := fmt.Sprintf("s-%020d", len(f.created))
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		s := Session{ID: id, State: StateRunning, Runtime: "native", Base: "host", Profile: "default",
			Labels: req.Labels, Limits: req.Limits, CreatedAt: now, ExpiresAt: now.Add(req.TTL.D()),
			IdleTimeout: req.IdleTimeout, LastActive: now}
		f.sessions[id] = s
		writeJSON(w, http.StatusCreated, s)
	})
	mux.HandleFunc("GET /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.queries = append(f.queries, r.URL.RawQuery)
		l := List{Sessions: []Session{}}
		for _, s := range f.sessions {
			l.Sessions = append(l.Sessions, s)
		}
		writeJSON(w, 200, l)
	})
	mux.HandleFunc("GET /v1/sessions/{id}", session(func(w http.ResponseWriter, r *http.Request, s Session) {
		writeJSON(w, 200, s)
	}))
	mux.HandleFunc("DELETE /v1/sessions/{id}", session(func(w http.ResponseWriter, r *http.Request, s Session) {
		f.mu.Lock()
		delete(f.sessions, s.ID)
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /v1/sessions/{id}/timeout", session(func(w http.ResponseWriter, r *http.Request, s Session) {
		var req TimeoutRequest
		if err := strict(r, &req); err != nil {
			writeErr(w, 400, "bad_request", err.Error())
			return
		}
		s.ExpiresAt = s.CreatedAt.Add(req.TTL.D())
		writeJSON(w, 200, s)
	}))
	mux.HandleFunc("POST /v1/sessions/{id}/exec", session(f.exec))
	mux.HandleFunc("POST /v1/sessions/{id}/execs/{exec}/stdin", session(func(w http.ResponseWriter, r *http.Request, s Session) {
		f.mu.Lock()
		ch := f.stdin[r.PathValue("exec")]
		f.mu.Unlock()
		if ch == nil {
			writeErr(w, 404, "not_found", "no such exec")
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			writeErr(w, 400, "bad_request", err.Error())
			return
		}
		ch <- b
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /v1/sessions/{id}/execs/{exec}/resize", session(func(w http.ResponseWriter, r *http.Request, s Session) {
		var req ResizeRequest
		if err := strict(r, &req); err != nil {
			writeErr(w, 400, "bad_request", err.Error())
			return
		}
		f.resized <- req
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("PUT /v1/sessions/{id}/files", session(func(w http.ResponseWriter, r *http.Request, s Session) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.files[r.URL.Query().Get("path")] = b
		f.modes[r.URL.Query().Get("path")] = r.URL.Query().Get("mode")
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /v1/sessions/{id}/files", session(func(w http.ResponseWriter, r *http.Request, s Session) {
		f.mu.Lock()
		b, ok := f.files[r.URL.Query().Get("path")]
		f.mu.Unlock()
		if !ok {
			writeErr(w, 404, "not_found", "no such file")
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b)
	}))
	mux.HandleFunc("GET /v1/sessions/{id}/files/stat", session(func(w http.ResponseWriter, r *http.Request, s Session) {
		p := r.URL.Query().Get("path")
		f.mu.Lock()
		b, ok := f.files[p]
		f.mu.Unlock()
		if !ok {
			writeErr(w, 404, "not_found", "no such file")
			return
		}
		writeJSON(w, 200, FileInfo{Name: filepath.Base(p), Path: p, Type: "file", Size: int64(len(b)), Mode: 0o644})
	}))
	mux.HandleFunc("GET /v1/sessions/{id}/files/list", session(func(w http.ResponseWriter, r *http.Request, s Session) {
		writeJSON(w, 200, DirList{Path: r.URL.Query().Get("path"), Entries: []FileInfo{{Name: "a", Path: "/w/a", Type: "dir", Mode: 0o755}}})
	}))
	mux.HandleFunc("PUT /v1/sessions/{id}/archive", session(func(w http.ResponseWriter, r *http.Request, s Session) {
		if ct := r.Header.Get("Content-Type"); ct != "application/x-tar" {
			writeErr(w, 400, "bad_request", "content type "+ct)
			return
		}
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.archives[r.URL.Query().Get("path")] = b
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /v1/sessions/{id}/archive", session(func(w http.ResponseWriter, r *http.Request, s Session) {
		f.mu.Lock()
		b, ok := f.archives[r.URL.Query().Get("path")]
		f.mu.Unlock()
		if !ok {
			writeErr(w, 404, "not_found", "no such directory")
			return
		}
		w.Header().Set("Content-Type", "application/x-tar")
		w.Write(b)
	}))
	mux.HandleFunc("GET /v1/sessions/{id}/events", session(func(w http.ResponseWriter, r *http.Request, s Session) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, `{"event":"session_start","time":"2026-01-02T03:04:05Z"}`+"\n\n")
		io.WriteString(w, `{"event":"connection","bytes_up":9007199254740993,"follow":"`+r.URL.Query().Get("follow")+`"}`+"\n")
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
			writeErr(w, http.StatusUnauthorized, "unauthorized", "a bearer token is required")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// exec plays the command named by argv[0]:
//
//	echo ARGS   prints ARGS on stdout, "warn" on stderr, exits 0
//	exit N      exits N
//	cat         copies the streamed stdin to stdout
//	nocmd       exits 127: not found
//	broken      cannot start: an error frame
//	cut         the stream ends before the exit frame
//	big         one stdout frame of 64 KiB
//	resize      waits for a resize, prints it
func (f *fakeAPI) exec(w http.ResponseWriter, r *http.Request, s Session) {
	var req ExecRequest
	if err := strict(r, &req); err != nil {
		writeErr(w, 400, "bad_request", err.Error())
		return
	}
	if len(req.Argv) == 0 {
		writeErr(w, 400, "bad_request", "argv is empty")
		return
	}
	f.mu.Lock()
	f.execs = append(f.execs, req)
	execID := fmt.Sprintf("e-%012d", len(f.execs))
	ch := make(chan []byte, 1)
	f.stdin[execID] = ch
	f.mu.Unlock()

	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	frame := func(fr ExecFrame) {
		enc.Encode(fr)
		w.(http.Flusher).Flush()
	}
	exit := func(code int, msg string) {
		frame(ExecFrame{Type: FrameExit, ExitCode: &code, Error: msg})
	}
	if req.Argv[0] == "broken" {
		frame(ExecFrame{Type: FrameError, Error: "the session is stopping"})
		return
	}
	frame(ExecFrame{Type: FrameStarted, ExecID: execID, Pid: 7})
	switch req.Argv[0] {
	case "echo":
		frame(ExecFrame{Type: FrameStdout, Data: []byte(strings.Join(req.Argv[1:], " ") + "\n")})
		frame(ExecFrame{Type: FrameStderr, Data: []byte("warn\n")})
		exit(0, "")
	case "exit":
		var code int
		fmt.Sscan(req.Argv[1], &code)
		exit(code, "")
	case "cat":
		select {
		case b := <-ch:
			frame(ExecFrame{Type: FrameStdout, Data: b})
			exit(0, "")
		case <-r.Context().Done():
		}
	case "nocmd":
		exit(127, "nocmd: command not found")
	case "cut":
		frame(ExecFrame{Type: FrameStdout, Data: []byte("partial")})
	case "big":
		frame(ExecFrame{Type: FrameStdout, Data: bytes.Repeat([]byte{0xff}, 64<<10)})
		exit(0, "")
	case "resize":
		select {
		case rs := <-f.resized:
			frame(ExecFrame{Type: FrameStdout, Data: fmt.Appendf(nil, "%dx%d", rs.Rows, rs.Cols)})
			exit(0, "")
		case <-r.Context().Done():
		}
	default:
		exit(127, req.Argv[0]+": not found")
	}
}

// serveUnix serves h on a unix socket in a temporary directory and
// returns its address.
func serveUnix(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cordon.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix://" + sock
}

// serveTCP serves h on loopback TCP and returns its tcp:// address.
func serveTCP(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return "tcp://" + srv.Listener.Addr().String()
}

func newClient(t *testing.T, addr string, opts ...Option) *Client {
	t.Helper()
	c, err := New(addr, opts...)
	if err != nil {
		t.Fatalf("New(%q): %v", addr, err)
	}
	return c
}

func TestNewAddresses(t *testing.T) {
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"unix:///run/cordon/cordon.sock", true},
		{"tcp://127.0.0.1:8790", true},
		{"tcp://[::1]:8790", true},
		{"http://127.0.0.1:8790", true},
		{"https://cordon.example:8790", true},
		{"unix://run/cordon.sock", false}, // not absolute: "run" is a host
		{"unix:relative.sock", false},
		{"tcp://127.0.0.1", false}, // no port
		{"tcp://127.0.0.1:8790/v1", false},
		{"http://127.0.0.1:8790?x=1", false},
		{"ftp://127.0.0.1:21", false},
		{"/run/cordon/cordon.sock", false},
		{"", false},
	} {
		_, err := New(tt.addr)
		if (err == nil) != tt.ok {
			t.Errorf("New(%q) = %v, want ok %v", tt.addr, err, tt.ok)
		}
	}
}

// TestSessions drives the session calls over a unix socket and over TCP.
func TestSessions(t *testing.T) {
	for _, transport := range []string{"unix", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			f := newFakeAPI()
			addr := serveUnix
			if transport == "tcp" {
				addr = serveTCP
			}
			c := newClient(t, addr(t, f.handler()))
			ctx := context.Background()

			h, err := c.Health(ctx)
			if err != nil || h.Status != "ok" || h.Runtimes["gvisor"] != "runsc not found" {
				t.Errorf("Health = %+v, %v", h, err)
			}
			req := CreateRequest{Base: "host", Labels: map[string]string{"user": "u1"},
				Limits: Limits{MemoryBytes: 512 << 20, CPUs: 1.5}, TTL: Duration(time.Hour), IdleTimeout: Duration(15 * time.Minute)}
			s, err := c.Create(ctx, req)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if s.State != StateRunning || s.Labels["user"] != "u1" || s.ExpiresAt.Sub(s.CreatedAt) != time.Hour {
				t.Errorf("Create = %+v", s)
			}
			if got := f.created[0]; got.Limits != req.Limits || got.TTL != req.TTL || got.IdleTimeout != req.IdleTimeout {
				t.Errorf("server got %+v, want %+v", got, req)
			}
			g, err := c.Get(ctx, s.ID)
			if err != nil || g.ID != s.ID {
				t.Errorf("Get(%s) = %+v, %v", s.ID, g, err)
			}
			l, err := c.List(ctx, map[string]string{"user": "u1", "app": "x=y"})
			if err != nil || len(l) != 1 || l[0].ID != s.ID {
				t.Errorf("List = %+v, %v", l, err)
			}
			if want := "label=app%3Dx%3Dy&label=user%3Du1"; f.queries[0] != want {
				t.Errorf("List query = %q, want %q", f.queries[0], want)
			}
			ts, err := c.SetTimeout(ctx, s.ID, TimeoutRequest{TTL: Duration(2 * time.Hour)})
			if err != nil || ts.ExpiresAt.Sub(ts.CreatedAt) != 2*time.Hour {
				t.Errorf("SetTimeout = %+v, %v", ts, err)
			}
			if err := c.Delete(ctx, s.ID); err != nil {
				t.Errorf("Delete: %v", err)
			}
			if _, err := c.Get(ctx, s.ID); !IsNotFound(err) {
				t.Errorf("Get after Delete = %v, want not found", err)
			}
		})
	}
}

func TestToken(t *testing.T) {
	f := newFakeAPI()
	f.token = "s3cret"
	addr := serveTCP(t, f.handler())
	ctx := context.Background()

	_, err := newClient(t, addr).Health(ctx)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 || ae.Code != "unauthorized" {
		t.Errorf("Health without a token = %v, want a 401 APIError", err)
	}
	c := newClient(t, addr, WithToken("s3cret"))
	if _, err := c.Health(ctx); err != nil {
		t.Errorf("Health with the token: %v", err)
	}
	// The token goes with streamed requests too.
	s, _ := c.Create(ctx, CreateRequest{})
	if _, err := c.Exec(ctx, s.ID, ExecRequest{Argv: []string{"cat"}}, ExecIO{Stdin: strings.NewReader("x")}); err != nil {
		t.Errorf("Exec with the token: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if last := f.auth[len(f.auth)-1]; last != "Bearer s3cret" {
		t.Errorf("Authorization of the stdin request = %q", last)
	}
}

func TestErrors(t *testing.T) {
	f := newFakeAPI()
	mux := http.NewServeMux()
	mux.Handle("/v1/", f.handler())
	mux.HandleFunc("/v1/health", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream \x1b[31mdown", http.StatusBadGateway) // a proxy's answer
	})
	c := newClient(t, serveUnix(t, mux))
	ctx := context.Background()

	_, err := c.Get(ctx, "s-aaaaaaaaaaaaaaaaaaaa")
	if want := "cordon serve: no such session s-aaaaaaaaaaaaaaaaaaaa (HTTP 404 not_found)"; err == nil || err.Error() != want {
		t.Errorf("Get of an unknown session = %v, want %q", err, want)
	}
	if !IsNotFound(err) || IsConflict(err) {
		t.Errorf("IsNotFound(%v) = false", err)
	}
	_, err = c.Health(ctx)
	if want := "cordon serve: upstream ?[31mdown (HTTP 502 http_502)"; err == nil || err.Error() != want {
		t.Errorf("Health through a failing proxy = %v, want %q", err, want)
	}
	// An id with a slash stays one path segment: the server sees it
	// whole, and no other route answers.
	if _, err := c.Get(ctx, "../health"); !IsNotFound(err) {
		t.Errorf("Get(../health) = %v, want not found", err)
	}
	for _, id := range []string{"", ".", ".."} {
		f.mu.Lock()
		seen := len(f.auth)
		f.mu.Unlock()
		if err := c.Delete(ctx, id); err == nil || !strings.Contains(err.Error(), "an empty or dot-only id") {
			t.Errorf("Delete(%q) = %v, want a refusal", id, err)
		}
		f.mu.Lock()
		if len(f.auth) != seen {
			t.Errorf("Delete(%q) reached the server", id)
		}
		f.mu.Unlock()
	}
	if _, err := c.ExecStream(ctx, "s-x", ExecRequest{}); !IsNotFound(err) {
		t.Errorf("ExecStream of an unknown session = %v", err)
	}

	dead := newClient(t, "unix://"+filepath.Join(t.TempDir(), "none.sock"))
	_, err = dead.Health(ctx)
	if err == nil || !strings.Contains(err.Error(), "cannot reach cordon serve at unix://") {
		t.Errorf("Health of no server = %v", err)
	}
}

func TestExec(t *testing.T) {
	f := newFakeAPI()
	c := newClient(t, serveUnix(t, f.handler()))
	ctx := context.Background()
	s, err := c.Create(ctx, CreateRequest{})
	if err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	var started string
	res, err := c.Exec(ctx, s.ID, ExecRequest{Argv: []string{"echo", "hello", "world"}, Timeout: Duration(time.Minute)},
		ExecIO{Stdout: &stdout, Stderr: &stderr, OnStart: func(id string, pid int) {
			if stdout.Len() > 0 {
				t.Errorf("OnStart called after output")
			}
			started = fmt.Sprintf("%s %d", id, pid)
		}})
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if stdout.String() != "hello world\n" || stderr.String() != "warn\n" {
		t.Errorf("Exec output = %q, %q", stdout.String(), stderr.String())
	}
	if res.Code != 0 || res.ExecID != "e-000000000001" || started != "e-000000000001 7" {
		t.Errorf("Exec = %+v, started %q", res, started)
	}
	if f.execs[0].StdinStream || f.execs[0].Timeout != Duration(time.Minute) {
		t.Errorf("server got %+v", f.execs[0])
	}

	res, err = c.Exec(ctx, s.ID, ExecRequest{Argv: []string{"exit", "3"}}, ExecIO{})
	if err != nil || res.Code != 3 {
		t.Errorf("Exec(exit 3) = %+v, %v", res, err)
	}
	res, err = c.Exec(ctx, s.ID, ExecRequest{Argv: []string{"nocmd"}}, ExecIO{})
	if err != nil || res.Code != 127 || res.Error != "nocmd: command not found" {
		t.Errorf("Exec(nocmd) = %+v, %v", res, err)
	}
	_, err = c.Exec(ctx, s.ID, ExecRequest{Argv: []string{"broken"}}, ExecIO{})
	if err == nil || err.Error() != "cordon serve: the exec could not start: the session is stopping" {
		t.Errorf("Exec(broken) = %v", err)
	}
	stdout.Reset()
	_, err = c.Exec(ctx, s.ID, ExecRequest{Argv: []string{"cut"}}, ExecIO{Stdout: &stdout})
	if !errors.Is(err, io.ErrUnexpectedEOF) || stdout.String() != "partial" {
		t.Errorf("Exec(cut) = %v, output %q; want the output so far and ErrUnexpectedEOF", err, stdout.String())
	}
	stdout.Reset()
	if _, err := c.Exec(ctx, s.ID, ExecRequest{Argv: []string{"big"}}, ExecIO{Stdout: &stdout}); err != nil || stdout.Len() != 64<<10 {
		t.Errorf("Exec(big) = %v, %d bytes of output", err, stdout.Len())
	}
	_, err = c.Exec(ctx, s.ID, ExecRequest{}, ExecIO{})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Message != "argv is empty" {
		t.Errorf("Exec with no argv = %v, want the server's 400", err)
	}
}

func TestExecStream(t *testing.T) {
	f := newFakeAPI()
	c := newClient(t, serveTCP(t, f.handler()))
	ctx := context.Background()
	s, _ := c.Create(ctx, CreateRequest{})
	st, err := c.ExecStream(ctx, s.ID, ExecRequest{Argv: []string{"echo", "x"}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var types []string
	for {
		fr, err := st.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, fr.Type)
	}
	if got := strings.Join(types, " "); got != "started stdout stderr exit" {
		t.Errorf("frames = %s", got)
	}
}

// closeRecorder is a stdin that says whether it was closed.
type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

func TestExecStdin(t *testing.T) {
	f := newFakeAPI()
	c := newClient(t, serveUnix(t, f.handler()))
	ctx := context.Background()
	s, _ := c.Create(ctx, CreateRequest{})

	// A reader of unknown length, given in pieces: it goes as a streamed
	// body of the second request.
	pr, pw := io.Pipe()
	go func() {
		for _, p := range []string{"one ", "two ", "three"} {
			pw.Write([]byte(p))
		}
		pw.Close()
	}()
	in := &closeRecorder{Reader: pr}
	var out bytes.Buffer
	res, err := c.Exec(ctx, s.ID, ExecRequest{Argv: []string{"cat"}}, ExecIO{Stdout: &out, Stdin: in})
	if err != nil || res.Code != 0 || res.StdinErr != nil {
		t.Fatalf("Exec(cat) = %+v, %v", res, err)
	}
	if out.String() != "one two three" {
		t.Errorf("Exec(cat) output = %q", out.String())
	}
	if !f.execs[0].StdinStream {
		t.Errorf("stdin_stream was not set with ExecIO.Stdin")
	}
	if in.closed {
		t.Errorf("Exec closed the caller's stdin")
	}
}

func TestExecResize(t *testing.T) {
	f := newFakeAPI()
	c := newClient(t, serveUnix(t, f.handler()))
	ctx := context.Background()
	s, _ := c.Create(ctx, CreateRequest{})
	resize := make(chan ResizeRequest, 1)
	var out bytes.Buffer
	res, err := c.Exec(ctx, s.ID, ExecRequest{Argv: []string{"resize"}, TTY: true, Rows: 24, Cols: 80},
		ExecIO{Stdout: &out, Resize: resize, OnStart: func(string, int) { resize <- ResizeRequest{Rows: 50, Cols: 132} }})
	if err != nil || res.Code != 0 || out.String() != "50x132" {
		t.Errorf("Exec with a resize = %+v, %v, output %q", res, err, out.String())
	}
	if e := f.execs[0]; !e.TTY || e.Rows != 24 || e.Cols != 80 {
		t.Errorf("server got %+v", e)
	}
}

func TestFiles(t *testing.T) {
	f := newFakeAPI()
	c := newClient(t, serveUnix(t, f.handler()))
	ctx := context.Background()
	s, _ := c.Create(ctx, CreateRequest{})

	if err := c.WriteFile(ctx, s.ID, "/workspace/run.sh", strings.NewReader("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	if got := f.modes["/workspace/run.sh"]; got != "0755" {
		t.Errorf("WriteFile sent mode %q, want 0755", got)
	}
	rc, err := c.ReadFile(ctx, s.ID, "/workspace/run.sh")
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "#!/bin/sh\n" {
		t.Errorf("ReadFile = %q", b)
	}
	if _, err := c.ReadFile(ctx, s.ID, "/nope"); !IsNotFound(err) {
		t.Errorf("ReadFile(/nope) = %v, want not found", err)
	}
	fi, err := c.Stat(ctx, s.ID, "/workspace/run.sh")
	if err != nil || fi.Size != 10 || fi.Type != "file" || fi.Name != "run.sh" {
		t.Errorf("Stat = %+v, %v", fi, err)
	}
	l, err := c.ListDir(ctx, s.ID, "/w")
	if err != nil || l.Path != "/w" || len(l.Entries) != 1 || l.Entries[0].Type != "dir" {
		t.Errorf("ListDir = %+v, %v", l, err)
	}

	// The archive goes through untouched both ways: the server checks
	// it, not the client.
	tarball := bytes.Repeat([]byte("not really a tar "), 1000)
	if err := c.PutArchive(ctx, s.ID, "/workspace/src", io.MultiReader(bytes.NewReader(tarball))); err != nil {
		t.Fatalf("PutArchive: %v", err)
	}
	rc, err = c.GetArchive(ctx, s.ID, "/workspace/src")
	if err != nil {
		t.Fatalf("GetArchive: %v", err)
	}
	b, _ = io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(b, tarball) {
		t.Errorf("GetArchive returned %d bytes, not the %d put", len(b), len(tarball))
	}
}

func TestEvents(t *testing.T) {
	f := newFakeAPI()
	c := newClient(t, serveUnix(t, f.handler()))
	ctx := context.Background()
	s, _ := c.Create(ctx, CreateRequest{})
	es, err := c.Events(ctx, s.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	var kinds []string
	var last Event
	for {
		e, err := es.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, fmt.Sprint(e["event"]))
		last = e
	}
	if strings.Join(kinds, ",") != "session_start,connection" {
		t.Errorf("events = %v", kinds)
	}
	if b, _ := json.Marshal(last["bytes_up"]); string(b) != "9007199254740993" || last["follow"] != "1" {
		t.Errorf("last event = %v (bytes_up %s): want the number as sent, and follow=1", last, b)
	}
}

// TestTLS: a tcp:// address with a TLS configuration speaks TLS, and
// verifies the server against that configuration.
func TestTLS(t *testing.T) {
	f := newFakeAPI()
	f.token = "tok"
	srv := httptest.NewTLSServer(f.handler())
	t.Cleanup(srv.Close)
	addr := "tcp://" + srv.Listener.Addr().String()
	ctx := context.Background()

	trusting := srv.Client().Transport.(*http.Transport).TLSClientConfig
	c := newClient(t, addr, WithToken("tok"), WithTLSConfig(trusting))
	if h, err := c.Health(ctx); err != nil || h.Status != "ok" {
		t.Errorf("Health over TLS = %+v, %v", h, err)
	}
	// The system's roots do not know the test's certificate.
	if _, err := newClient(t, addr, WithTLSConfig(&tls.Config{})).Health(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Health with an unknown certificate = %v, want a refusal", err)
	}
	if _, err := New("http://"+srv.Listener.Addr().String(), WithTLSConfig(trusting)); err == nil {
		t.Errorf("New(http://..., WithTLSConfig) = nil error: the TLS configuration would be ignored")
	}
}
