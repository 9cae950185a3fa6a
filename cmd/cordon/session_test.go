package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/client"
)

const testSession = "s-abcdefghijklmnopqrst"

// fakeServer is a stand-in for cordon serve, enough to see what the CLI
// sends and what it makes of the answers. Its one session is testSession;
// its files are a map; execs are scripted by argv[0].
type fakeServer struct {
	addr string

	mu       sync.Mutex
	auth     []string
	created  []client.CreateRequest
	execs    []client.ExecRequest
	queries  []string
	deleted  []string
	timeouts []client.TimeoutRequest
	files    map[string]fakeFile // by absolute path; Type "file", "dir" or "symlink"
	puts     map[string][]byte   // archives put, by directory
	archives map[string][]byte   // archives to get, by directory
	written  map[string]fakeFile // files put, by path
	stdin    map[string]chan []byte
}

type fakeFile struct {
	Type string
	Data []byte
	Mode uint32
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	f := &fakeServer{
		files:    map[string]fakeFile{"/workspace": {Type: "dir", Mode: 0o755}},
		puts:     map[string][]byte{},
		archives: map[string][]byte{},
		written:  map[string]fakeFile{},
		stdin:    map[string]chan []byte{},
	}
	sock := filepath.Join(t.TempDir(), "cordon.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f.handler())
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	f.addr = "unix://" + sock
	return f
}

func sendJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func sendErr(w http.ResponseWriter, status int, code, msg string) {
	sendJSON(w, status, client.Error{Code: code, Message: msg})
}

var fakeSession = client.Session{
	ID: testSession, State: client.StateRunning, Runtime: "native", Base: "host", Profile: "default",
	Labels: map[string]string{"user": "ada"}, Limits: client.Limits{MemoryBytes: 512 << 20, Pids: 256},
	CreatedAt: time.Now().Add(-5 * time.Minute), ExpiresAt: time.Now().Add(55*time.Minute + 30*time.Second),
	IdleTimeout: client.Duration(15 * time.Minute), LastActive: time.Now(), Execs: 1,
}

func (f *fakeServer) handler() http.Handler {
	mux := http.NewServeMux()
	known := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("id") != testSession {
				sendErr(w, 404, "not_found", "no such session "+r.PathValue("id"))
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("POST /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		var req client.CreateRequest
		d := json.NewDecoder(r.Body)
		d.DisallowUnknownFields()
		if err := d.Decode(&req); err != nil {
			sendErr(w, 400, "bad_request", err.Error())
			return
		}
		f.mu.Lock()
		f.created = append(f.created, req)
		f.mu.Unlock()
		sendJSON(w, 201, fakeSession)
	})
	mux.HandleFunc("GET /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.queries = append(f.queries, r.URL.RawQuery)
		f.mu.Unlock()
		old := client.Session{ID: "s-zzzzzzzzzzzzzzzzzzzz", State: client.StateStopped, Reason: "ttl", Runtime: "gvisor",
			Base: "/srv/roots/bookworm", CreatedAt: time.Now().Add(-3 * time.Hour)}
		sendJSON(w, 200, client.List{Sessions: []client.Session{fakeSession, old}})
	})
	mux.HandleFunc("GET /v1/sessions/{id}", known(func(w http.ResponseWriter, r *http.Request) {
		sendJSON(w, 200, fakeSession)
	}))
	mux.HandleFunc("DELETE /v1/sessions/{id}", known(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.deleted = append(f.deleted, r.PathValue("id"))
		f.mu.Unlock()
		w.WriteHeader(204)
	}))
	mux.HandleFunc("POST /v1/sessions/{id}/timeout", known(func(w http.ResponseWriter, r *http.Request) {
		var req client.TimeoutRequest
		json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		f.timeouts = append(f.timeouts, req)
		f.mu.Unlock()
		s := fakeSession
		s.ExpiresAt = time.Now().Add(req.TTL.D())
		sendJSON(w, 200, s)
	}))
	mux.HandleFunc("POST /v1/sessions/{id}/exec", known(f.exec))
	mux.HandleFunc("POST /v1/sessions/{id}/execs/{exec}/stdin", known(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		ch := f.stdin[r.PathValue("exec")]
		f.mu.Unlock()
		ch <- b
		w.WriteHeader(204)
	}))
	mux.HandleFunc("GET /v1/sessions/{id}/files/stat", known(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Query().Get("path")
		f.mu.Lock()
		fl, ok := f.files[p]
		f.mu.Unlock()
		if !ok {
			sendErr(w, 404, "not_found", p+": no such file or directory")
			return
		}
		fi := client.FileInfo{Name: path.Base(p), Path: p, Type: fl.Type, Size: int64(len(fl.Data)), Mode: fl.Mode}
		if fl.Type == "symlink" {
			fi.Target = string(fl.Data)
		}
		sendJSON(w, 200, fi)
	}))
	mux.HandleFunc("GET /v1/sessions/{id}/files", known(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		fl, ok := f.files[r.URL.Query().Get("path")]
		f.mu.Unlock()
		if !ok || fl.Type != "file" {
			sendErr(w, 404, "not_found", "no such file")
			return
		}
		w.Write(fl.Data)
	}))
	mux.HandleFunc("PUT /v1/sessions/{id}/files", known(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var mode uint32
		fmt.Sscanf(r.URL.Query().Get("mode"), "%o", &mode)
		f.mu.Lock()
		f.written[r.URL.Query().Get("path")] = fakeFile{Type: "file", Data: b, Mode: mode}
		f.mu.Unlock()
		w.WriteHeader(204)
	}))
	mux.HandleFunc("PUT /v1/sessions/{id}/archive", known(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			sendErr(w, 400, "bad_request", err.Error())
			return
		}
		f.mu.Lock()
		f.puts[r.URL.Query().Get("path")] = b
		f.mu.Unlock()
		w.WriteHeader(204)
	}))
	mux.HandleFunc("GET /v1/sessions/{id}/archive", known(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		b, ok := f.archives[r.URL.Query().Get("path")]
		f.mu.Unlock()
		if !ok {
			sendErr(w, 404, "not_found", "no such directory")
			return
		}
		w.Write(b)
	}))
	mux.HandleFunc("GET /v1/sessions/{id}/events", known(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"time":"2026-01-02T03:04:05Z","event":"exec_start","exec_id":"e-000000000001","argv":["sh","-c","a && b > c"]}`+"\n")
		if r.URL.Query().Get("follow") == "1" {
			io.WriteString(w, `{"event":"session_end","reason":"deleted"}`+"\n")
		}
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.auth = append(f.auth, r.Header.Get("Authorization"))
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

// exec plays argv[0]: echo, exit N, cat (stdin to stdout), nocmd (127),
// slow (killed by its timeout), env (prints its cwd, env and terminal).
func (f *fakeServer) exec(w http.ResponseWriter, r *http.Request) {
	var req client.ExecRequest
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil || len(req.Argv) == 0 {
		sendErr(w, 400, "bad_request", "a bad exec request")
		return
	}
	f.mu.Lock()
	f.execs = append(f.execs, req)
	id := fmt.Sprintf("e-%012d", len(f.execs))
	ch := make(chan []byte, 1)
	f.stdin[id] = ch
	f.mu.Unlock()
	enc := json.NewEncoder(w)
	frame := func(fr client.ExecFrame) { enc.Encode(fr); w.(http.Flusher).Flush() }
	exit := func(code int, fr client.ExecFrame) {
		fr.Type, fr.ExitCode = client.FrameExit, &code
		frame(fr)
	}
	frame(client.ExecFrame{Type: client.FrameStarted, ExecID: id, Pid: 2})
	switch req.Argv[0] {
	case "echo":
		frame(client.ExecFrame{Type: client.FrameStdout, Data: []byte(strings.Join(req.Argv[1:], " ") + "\n")})
		frame(client.ExecFrame{Type: client.FrameStderr, Data: []byte("to stderr\n")})
		exit(0, client.ExecFrame{})
	case "exit":
		var code int
		fmt.Sscan(req.Argv[1], &code)
		exit(code, client.ExecFrame{})
	case "cat":
		frame(client.ExecFrame{Type: client.FrameStdout, Data: <-ch})
		exit(0, client.ExecFrame{})
	case "slow":
		exit(137, client.ExecFrame{Signal: "SIGKILL", Timeout: true})
	case "env":
		keys := make([]string, 0, len(req.Env))
		for k := range req.Env {
			keys = append(keys, k+"="+req.Env[k])
		}
		sort.Strings(keys)
		out := fmt.Sprintf("cwd=%s env=%s tty=%v %dx%d\n", req.Cwd, strings.Join(keys, ","), req.TTY, req.Rows, req.Cols)
		frame(client.ExecFrame{Type: client.FrameStdout, Data: []byte(out)})
		exit(0, client.ExecFrame{})
	default:
		exit(127, client.ExecFrame{Error: req.Argv[0] + ": command not found"})
	}
}

// cli runs `cordon ARGS` with stdin and returns what a user sees: stdout,
// stderr (with the line main prints for an error) and the exit status.
func cli(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.Execute()
	code := 0
	if err != nil {
		var status exitStatus
		if errors.As(err, &status) {
			code = int(status)
		} else {
			fmt.Fprintf(&errOut, "cordon: %v\n", err)
			code = 125
		}
	}
	return out.String(), errOut.String(), code
}

// session runs `cordon session --server ADDR ARGS` against f.
func (f *fakeServer) session(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	return cli(t, stdin, append([]string{"session", "--server", f.addr}, args...)...)
}

func TestSessionCreate(t *testing.T) {
	f := newFakeServer(t)
	pol := filepath.Join(t.TempDir(), "pol.toml")
	os.WriteFile(pol, []byte("[network]\nallow = [\"pypi.org\"]\n"), 0o644)
	t.Setenv("FROM_HERE", "yes")
	out, errOut, code := f.session(t, "", "create", "--base", "/srv/roots/bookworm", "--runtime", "gvisor",
		"--profile", "offline", "--policy-file", pol, "--env", "A=1", "--env", "FROM_HERE", "--label", "user=ada",
		"--label", "chat=a=b", "--memory", "512M", "--pids", "100", "--cpus", "1.5", "--disk", "1G", "--ttl", "2h", "--idle", "10m")
	if code != 0 || out != testSession+"\n" {
		t.Fatalf("cordon session create = %q, %q, %d; want the id alone", out, errOut, code)
	}
	got := f.created[0]
	want := client.CreateRequest{Base: "/srv/roots/bookworm", Runtime: "gvisor", Profile: "offline",
		Policy: "[network]\nallow = [\"pypi.org\"]\n", Env: map[string]string{"A": "1", "FROM_HERE": "yes"},
		Labels: map[string]string{"user": "ada", "chat": "a=b"},
		Limits: client.Limits{MemoryBytes: 512 << 20, Pids: 100, CPUs: 1.5, DiskBytes: 1 << 30},
		TTL:    client.Duration(2 * time.Hour), IdleTimeout: client.Duration(10 * time.Minute)}
	if g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); g != w {
		t.Errorf("the server got\n%s\nwant\n%s", g, w)
	}

	out, _, code = f.session(t, "", "create", "--json")
	var s client.Session
	if err := json.Unmarshal([]byte(out), &s); code != 0 || err != nil || s.ID != testSession || s.Limits.Pids != 256 {
		t.Errorf("cordon session create --json = %q (%v), %d", out, err, code)
	}
	if g := f.created[1]; g.Base != "" || g.Limits != (client.Limits{}) || g.TTL != 0 {
		t.Errorf("create with no flags sent %+v, want the server's defaults", g)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--memory", "12Q"}, `--memory "12Q": not a size`},
		{[]string{"--disk", "10K"}, `--disk "10K": below 1M`},
		{[]string{"--label", "nokey"}, `--label "nokey": want KEY=VALUE`},
		{[]string{"--env", "=x"}, `--env "=x": want KEY=VALUE`},
		{[]string{"--env", "SURELY_NOT_SET_HERE_42"}, "$SURELY_NOT_SET_HERE_42 is not set here"},
		{[]string{"--ttl", "-1h"}, "--ttl -1h0m0s: want a positive duration"},
		{[]string{"--policy-file", "/nonexistent/p.toml"}, "--policy-file: open /nonexistent/p.toml"},
		{[]string{"--pids", "many"}, `invalid argument "many" for "--pids"`},
	} {
		n := len(f.created)
		out, errOut, code := f.session(t, "", append([]string{"create"}, tt.args...)...)
		if code != 125 || out != "" || !strings.Contains(errOut, tt.want) || len(f.created) != n {
			t.Errorf("cordon session create %v = %q, %q, %d; want status 125 and %q, nothing sent", tt.args, out, errOut, code, tt.want)
		}
	}
}

func TestSessionServerAndToken(t *testing.T) {
	f := newFakeServer(t)
	t.Setenv("CORDON_SERVER", f.addr)
	t.Setenv("CORDON_TOKEN", "from-env")
	if _, errOut, code := cli(t, "", "session", "get", testSession); code != 0 {
		t.Fatalf("cordon session get with $CORDON_SERVER: %s", errOut)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("  from-file \nsecond line\n"), 0o600)
	if _, errOut, code := cli(t, "", "session", "--token-file", tokenFile, "get", testSession); code != 0 {
		t.Fatalf("cordon session get --token-file: %s", errOut)
	}
	if want := []string{"Bearer from-env", "Bearer from-file"}; fmt.Sprint(f.auth) != fmt.Sprint(want) {
		t.Errorf("Authorization headers = %q, want %q", f.auth, want)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, errOut, code := cli(t, "", "session", "--token-file", empty, "ls"); code != 125 || !strings.Contains(errOut, "the first line is empty") {
		t.Errorf("an empty token file = %q, %d", errOut, code)
	}

	// With nothing set, the default socket: nothing listens there.
	t.Setenv("CORDON_SERVER", "")
	runtimeDir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", runtimeDir)
	want := "unix://" + runtimeDir + "/cordon/cordon.sock"
	if os.Geteuid() == 0 {
		want = "unix:///run/cordon/cordon.sock"
	}
	if _, errOut, code := cli(t, "", "session", "ls"); code != 125 || !strings.Contains(errOut, "cannot reach cordon serve at "+want) {
		t.Errorf("cordon session ls with no server = %q, %d; want it to name %s", errOut, code, want)
	}
	if _, errOut, code := cli(t, "", "session", "--server", "http://x:1/path", "ls"); code != 125 || !strings.Contains(errOut, "with no path") {
		t.Errorf("cordon session --server with a path = %q, %d", errOut, code)
	}
}

func TestSessionExec(t *testing.T) {
	f := newFakeServer(t)
	for _, tt := range []struct {
		name        string
		stdin       string
		args        []string
		out, errOut string
		code        int
		stdinStream bool
		tty         bool
	}{
		{name: "output", args: []string{testSession, "--", "echo", "hello", "world"},
			out: "hello world\n", errOut: "to stderr\n"},
		{name: "no dashes", args: []string{testSession, "echo", "-n", "x"}, out: "-n x\n", errOut: "to stderr\n"},
		{name: "exit status", args: []string{testSession, "--", "exit", "3"}, code: 3},
		{name: "not found", args: []string{testSession, "--", "nope"}, errOut: "cordon: nope: command not found\n", code: 127},
		{name: "timeout", args: []string{"--timeout", "5s", testSession, "--", "slow"}, errOut: "cordon: slow timed out after 5s\n", code: 124},
		{name: "stdin", stdin: "piped in", args: []string{"-i", testSession, "--", "cat"}, out: "piped in", stdinStream: true},
		{name: "env and cwd", args: []string{"-e", "B=2", "--env", "A=1", "-w", "/srv", testSession, "--", "env"},
			out: "cwd=/srv env=A=1,B=2 tty=false 0x0\n"},
		// No terminal here: -t still asks for one, of the usual size.
		{name: "tty", args: []string{"-t", testSession, "--", "env"}, out: "cwd= env= tty=true 24x80\n", tty: true},
		{name: "unknown session", args: []string{"s-bbbbbbbbbbbbbbbbbbbb", "--", "echo"},
			errOut: "cordon: cordon serve: no such session s-bbbbbbbbbbbbbbbbbbbb (HTTP 404 not_found)\n", code: 125},
		{name: "no command", args: []string{testSession}, errOut: "want a session id and a command", code: 125},
		{name: "no command after dashes", args: []string{testSession, "--"}, errOut: "want a session id and a command", code: 125},
		{name: "-it without a terminal", args: []string{"-it", testSession, "--", "cat"},
			errOut: "cordon: -t with -i wants a terminal on stdin: drop -t to send piped input\n", code: 125},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := len(f.execs)
			out, errOut, code := f.session(t, tt.stdin, append([]string{"exec"}, tt.args...)...)
			if out != tt.out || !strings.Contains(errOut, tt.errOut) || (tt.errOut == "" && errOut != "") || code != tt.code {
				t.Errorf("cordon session exec %v = %q, %q, %d; want %q, %q, %d", tt.args, out, errOut, code, tt.out, tt.errOut, tt.code)
			}
			if len(f.execs) > n {
				if e := f.execs[n]; e.StdinStream != tt.stdinStream || e.TTY != tt.tty {
					t.Errorf("the server got %+v", e)
				}
			}
		})
	}
}

func TestSessionLsGetRmTimeoutEvents(t *testing.T) {
	f := newFakeServer(t)
	out, errOut, code := f.session(t, "", "ls", "--label", "user=ada")
	if code != 0 {
		t.Fatalf("cordon session ls: %s", errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "ID STATE RUNTIME BASE AGE EXPIRES EXECS LABELS" {
		t.Fatalf("cordon session ls =\n%s", out)
	}
	// Oldest first.
	if got := strings.Join(strings.Fields(lines[1]), " "); got != "s-zzzzzzzzzzzzzzzzzzzz stopped (ttl) gvisor /srv/roots/bookworm 3h - 0" {
		t.Errorf("the stopped session's row = %q", got)
	}
	if got := strings.Join(strings.Fields(lines[2]), " "); got != testSession+" running native host 5m in 55m 1 user=ada" {
		t.Errorf("the running session's row = %q", got)
	}
	if f.queries[0] != "label=user%3Dada" {
		t.Errorf("ls --label sent the query %q", f.queries[0])
	}
	out, _, _ = f.session(t, "", "ls", "--json")
	var l client.List
	if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Sessions) != 2 {
		t.Errorf("cordon session ls --json = %q (%v)", out, err)
	}

	out, _, code = f.session(t, "", "get", testSession)
	for _, want := range []string{"STATE    running", "LIMITS   memory 512M, pids 256", "LABELS   user=ada", "(in 55m)"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("cordon session get lacks %q:\n%s", want, out)
		}
	}

	out, errOut, code = f.session(t, "", "rm", testSession, "s-bbbbbbbbbbbbbbbbbbbb")
	if out != testSession+"\n" || code != 1 ||
		errOut != "cordon: removing s-bbbbbbbbbbbbbbbbbbbb: cordon serve: no such session s-bbbbbbbbbbbbbbbbbbbb (HTTP 404 not_found)\n" {
		t.Errorf("cordon session rm, one known one not = %q, %q, %d", out, errOut, code)
	}

	out, errOut, code = f.session(t, "", "timeout", testSession, "2h", "--idle", "5m")
	if code != 0 || !strings.HasPrefix(out, testSession+" ends at ") || !strings.Contains(out, "(in 1h)") && !strings.Contains(out, "(in 2h)") {
		t.Errorf("cordon session timeout = %q, %q, %d", out, errOut, code)
	}
	if r := f.timeouts[0]; r.TTL != client.Duration(2*time.Hour) || r.IdleTimeout == nil || *r.IdleTimeout != client.Duration(5*time.Minute) {
		t.Errorf("timeout sent %+v", r)
	}
	if _, errOut, code := f.session(t, "", "timeout", testSession, "soon"); code != 125 || !strings.Contains(errOut, "want a duration") {
		t.Errorf("cordon session timeout soon = %q, %d", errOut, code)
	}

	out, _, code = f.session(t, "", "events", "-f", testSession)
	want := `{"argv":["sh","-c","a && b > c"],"event":"exec_start","exec_id":"e-000000000001","time":"2026-01-02T03:04:05Z"}` + "\n" + `{"event":"session_end","reason":"deleted"}` + "\n"
	if code != 0 || out != want {
		t.Errorf("cordon session events -f =\n%s\nwant\n%s", out, want)
	}
}

func TestParseCpEnd(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want cpEnd
	}{
		{"s-x:/a/b", cpEnd{id: "s-x", path: "/a/b"}},
		{"s-x:out.txt", cpEnd{id: "s-x", path: "/workspace/out.txt"}},
		{"s-x:", cpEnd{id: "s-x", path: "/workspace", dir: true}},
		{"s-x:/tmp/", cpEnd{id: "s-x", path: "/tmp", dir: true}},
		{"s-x:src/.", cpEnd{id: "s-x", path: "/workspace/src", dir: true}},
		{"./a:b", cpEnd{path: "./a:b"}},
		{"/abs/x:y", cpEnd{path: "/abs/x:y"}},
		{"dir/", cpEnd{path: "dir/", dir: true}},
		{"-", cpEnd{path: "-"}},
	} {
		if got := parseCpEnd(tt.in); got != tt.want {
			t.Errorf("parseCpEnd(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// tarEntry is one entry of a test archive.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func makeTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	tw.Close()
	return b.Bytes()
}

// readTar lists an archive as "name type [link|body]" lines.
func readTar(t *testing.T, b []byte) []string {
	t.Helper()
	var got []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("reading the archive: %v", err)
		}
		body, _ := io.ReadAll(tr)
		got = append(got, fmt.Sprintf("%s %c %s%s %o", h.Name, h.Typeflag, h.Linkname, body, h.Mode&0o777))
	}
}

// tree lists the files under dir as "path type [link|body] mode" lines.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var got []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		fi, _ := d.Info()
		switch {
		case rel == ".":
		case d.IsDir():
			got = append(got, fmt.Sprintf("%s/ %o", rel, fi.Mode().Perm()))
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			got = append(got, rel+" -> "+l)
		default:
			b, _ := os.ReadFile(p)
			got = append(got, fmt.Sprintf("%s %q %o", rel, b, fi.Mode().Perm()))
		}
		return nil
	})
	return got
}

func TestSessionCpIn(t *testing.T) {
	f := newFakeServer(t)
	src := filepath.Join(t.TempDir(), "proj")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "a.txt"), []byte("a"), 0o600)
	os.Symlink("sub/a.txt", filepath.Join(src, "link"))

	// A directory onto a path that does not exist: it becomes that path.
	if _, errOut, code := f.session(t, "", "cp", src, testSession+":/workspace/app"); code != 0 {
		t.Fatalf("cordon session cp DIR ID:PATH: %s", errOut)
	}
	want := []string{"link 2 sub/a.txt 777", "run.sh 0 #!/bin/sh\n 755", "sub/ 5  755", "sub/a.txt 0 a 600"}
	if got := readTar(t, f.puts["/workspace/app"]); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the archive put = %q, want %q", got, want)
	}
	// Onto an existing directory: into it, by its name.
	if _, errOut, code := f.session(t, "", "cp", src, testSession+":"); code != 0 {
		t.Fatalf("cordon session cp DIR ID:: %s", errOut)
	}
	if _, ok := f.puts["/workspace/proj"]; !ok {
		t.Errorf("cp DIR ID: did not put the archive in /workspace/proj: %v", f.puts)
	}
	// A link named as SRC is followed.
	viaLink := filepath.Join(t.TempDir(), "via")
	os.Symlink(src, viaLink)
	if _, errOut, code := f.session(t, "", "cp", viaLink, testSession+":/workspace/via"); code != 0 {
		t.Fatalf("cordon session cp LINK-TO-DIR ID:PATH: %s", errOut)
	}
	if got := readTar(t, f.puts["/workspace/via"]); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("cp LINK-TO-DIR put %q, want %q", got, want)
	}
	// SRC/. is what SRC holds.
	f.session(t, "", "cp", src+"/.", testSession+":/workspace")
	if got := readTar(t, f.puts["/workspace"]); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("cp DIR/. ID:/workspace put %q", got)
	}

	// A file keeps its mode; onto a directory, it goes in by its name.
	if _, errOut, code := f.session(t, "", "cp", filepath.Join(src, "run.sh"), testSession+":/workspace"); code != 0 {
		t.Fatalf("cordon session cp FILE ID:DIR: %s", errOut)
	}
	if w := f.written["/workspace/run.sh"]; string(w.Data) != "#!/bin/sh\n" || w.Mode != 0o755 {
		t.Errorf("cp FILE wrote %+v", w)
	}
	f.session(t, "", "cp", filepath.Join(src, "sub", "a.txt"), testSession+":b.txt")
	if w := f.written["/workspace/b.txt"]; string(w.Data) != "a" || w.Mode != 0o600 {
		t.Errorf("cp FILE ID:NEWNAME wrote %+v", w)
	}

	// - is a tar on stdin, passed as it is.
	in := string(makeTar(t, tarEntry{name: "x", body: "y"}))
	if _, errOut, code := f.session(t, in, "cp", "-", testSession+":/workspace/in"); code != 0 || string(f.puts["/workspace/in"]) != in {
		t.Errorf("cp - ID:DIR = %q, %d; put %d bytes of %d", errOut, code, len(f.puts["/workspace/in"]), len(in))
	}

	if _, errOut, code := f.session(t, "", "cp", src, "./elsewhere"); code != 125 || !strings.Contains(errOut, "neither side is in a session") {
		t.Errorf("cp LOCAL LOCAL = %q, %d", errOut, code)
	}
	if _, errOut, code := f.session(t, "", "cp", testSession+":/a", testSession+":/b"); code != 125 || !strings.Contains(errOut, "both sides are in sessions") {
		t.Errorf("cp ID:A ID:B = %q, %d", errOut, code)
	}
	if _, errOut, code := f.session(t, "", "cp", filepath.Join(src, "nope"), testSession+":"); code != 125 || !strings.Contains(errOut, "no such file") {
		t.Errorf("cp of a missing file = %q, %d", errOut, code)
	}
}

func TestSessionCpOut(t *testing.T) {
	f := newFakeServer(t)
	f.files["/workspace/dist"] = fakeFile{Type: "dir", Mode: 0o755}
	f.files["/workspace/out.txt"] = fakeFile{Type: "file", Data: []byte("result\n"), Mode: 0o640}
	f.files["/workspace/ln"] = fakeFile{Type: "symlink", Data: []byte("/etc/passwd")}
	f.archives["/workspace/dist"] = makeTar(t,
		tarEntry{name: "./", typ: tar.TypeDir, mode: 0o750},
		tarEntry{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		tarEntry{name: "bin/tool", body: "elf", mode: 0o755},
		tarEntry{name: "README", body: "hi"},
		tarEntry{name: "bin/latest", typ: tar.TypeSymlink, link: "tool"},
		tarEntry{name: "up", typ: tar.TypeSymlink, link: "bin/../README"},
		tarEntry{name: "copy", typ: tar.TypeLink, link: "README"},
	)
	wantTree := []string{`README "hi" 644`, "bin/ 755", "bin/latest -> tool", `bin/tool "elf" 755`, `copy "hi" 644`, "up -> bin/../README"}

	here := t.TempDir()
	// A directory onto a new path: that path, with the directory's mode.
	if _, errOut, code := f.session(t, "", "cp", testSession+":dist", filepath.Join(here, "d")); code != 0 {
		t.Fatalf("cordon session cp ID:DIR NEW: %s", errOut)
	}
	if got := tree(t, filepath.Join(here, "d")); fmt.Sprint(got) != fmt.Sprint(wantTree) {
		t.Errorf("cp ID:DIR NEW made\n%q\nwant\n%q", got, wantTree)
	}
	if fi, _ := os.Stat(filepath.Join(here, "d")); fi.Mode().Perm() != 0o750 {
		t.Errorf("the copy's mode = %o, want 0750 as in the archive", fi.Mode().Perm())
	}
	// Onto an existing directory: into it by its name, merged with what
	// is there.
	os.MkdirAll(filepath.Join(here, "dist", "bin"), 0o755)
	os.WriteFile(filepath.Join(here, "dist", "bin", "mine"), []byte("kept"), 0o644)
	os.WriteFile(filepath.Join(here, "dist", "README"), []byte("old"), 0o644)
	if _, errOut, code := f.session(t, "", "cp", testSession+":/workspace/dist", here); code != 0 {
		t.Fatalf("cordon session cp ID:DIR EXISTING: %s", errOut)
	}
	want := append([]string{}, wantTree...)
	want = append(want[:3], append([]string{`bin/mine "kept" 644`}, want[3:]...)...)
	if got := tree(t, filepath.Join(here, "dist")); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("cp ID:DIR EXISTING made\n%q\nwant\n%q", got, want)
	}

	// A file: with its mode, onto a name or into a directory.
	if _, errOut, code := f.session(t, "", "cp", testSession+":out.txt", here); code != 0 {
		t.Fatalf("cordon session cp ID:FILE DIR: %s", errOut)
	}
	if got := tree(t, here); !strings.Contains(fmt.Sprint(got), `out.txt "result\n" 640`) {
		t.Errorf("cp ID:FILE DIR made %q", got)
	}
	f.session(t, "", "cp", testSession+":out.txt", filepath.Join(here, "renamed"))
	if b, _ := os.ReadFile(filepath.Join(here, "renamed")); string(b) != "result\n" {
		t.Errorf("cp ID:FILE NAME wrote %q", b)
	}
	if _, errOut, code := f.session(t, "", "cp", testSession+":ln", here); code != 125 || !strings.Contains(errOut, "is a symbolic link to /etc/passwd") {
		t.Errorf("cp ID:LINK = %q, %d", errOut, code)
	}
	if _, errOut, code := f.session(t, "", "cp", testSession+":nope", here); code != 125 || !strings.Contains(errOut, "HTTP 404") {
		t.Errorf("cp ID:MISSING = %q, %d", errOut, code)
	}

	for _, src := range []string{"dist", "out.txt"} {
		missing := filepath.Join(here, "missing", "x")
		if _, errOut, code := f.session(t, "", "cp", testSession+":"+src, missing); code != 125 || errOut != "cordon: "+filepath.Dir(missing)+": no such directory\n" {
			t.Errorf("cp ID:%s into a missing directory = %q, %d", src, errOut, code)
		}
	}

	// - gives a tar: the directory's as it came, a file's made here.
	out, _, code := f.session(t, "", "cp", testSession+":dist", "-")
	if code != 0 || out != string(f.archives["/workspace/dist"]) {
		t.Errorf("cp ID:DIR - did not pass the archive through")
	}
	out, _, code = f.session(t, "", "cp", testSession+":out.txt", "-")
	if got := readTar(t, []byte(out)); code != 0 || fmt.Sprint(got) != fmt.Sprint([]string{"out.txt 0 result\n 640"}) {
		t.Errorf("cp ID:FILE - = %q", got)
	}
	if entries, _ := os.ReadDir(here); len(entries) != 4 {
		t.Errorf("left in %s: %v", here, entries)
	}
}

// TestSessionCpOutRefusesBadEntries: what comes out of a session cannot
// write outside the copy or leave a way out, and a refused copy changes
// nothing here.
func TestSessionCpOutRefusesBadEntries(t *testing.T) {
	f := newFakeServer(t)
	f.files["/workspace/bad"] = fakeFile{Type: "dir", Mode: 0o755}
	ok := tarEntry{name: "fine.txt", body: "fine"}
	for _, tt := range []struct {
		name  string
		entry []tarEntry
		want  string
	}{
		{"absolute", []tarEntry{{name: "/etc/cron.d/x", body: "x"}}, `"/etc/cron.d/x": an absolute name`},
		{"dot dot", []tarEntry{{name: "a/../../x", body: "x"}}, `"a/../../x": a name with ".."`},
		{"absolute link", []tarEntry{{name: "l", typ: tar.TypeSymlink, link: "/home"}}, `a symbolic link to "/home", outside the copy`},
		{"link out", []tarEntry{{name: "a/l", typ: tar.TypeSymlink, link: "../../x"}}, `a symbolic link to "../../x", outside the copy`},
		{"under a link", []tarEntry{{name: "l", typ: tar.TypeSymlink, link: "."}, {name: "l/x", typ: tar.TypeSymlink, link: "../y"}},
			`under "l", which is not a directory`},
		{"hard link out", []tarEntry{{name: "h", typ: tar.TypeLink, link: "../../etc/passwd"}}, `a hard link to entry "../../etc/passwd"`},
		{"hard link to nothing", []tarEntry{{name: "h", typ: tar.TypeLink, link: "missing"}}, `which is not a file before it`},
		{"device", []tarEntry{{name: "null", typ: tar.TypeChar}}, "a device, pipe or other special file"},
		{"fifo", []tarEntry{{name: "p", typ: tar.TypeFifo}}, "a device, pipe or other special file"},
		{"twice", []tarEntry{{name: "x", body: "1"}, {name: "x", body: "2"}}, `entry "x"`},
		{"file over a link", []tarEntry{{name: "x", typ: tar.TypeSymlink, link: "fine.txt"}, {name: "x", body: "2"}}, `entry "x"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.archives["/workspace/bad"] = makeTar(t, append([]tarEntry{ok}, tt.entry...)...)
			here := t.TempDir()
			os.MkdirAll(filepath.Join(here, "bad"), 0o755)
			os.WriteFile(filepath.Join(here, "bad", "fine.txt"), []byte("mine"), 0o644)
			for _, dst := range []string{filepath.Join(here, "new"), here} {
				before := tree(t, here)
				_, errOut, code := f.session(t, "", "cp", testSession+":bad", dst)
				if code != 125 || !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, "nothing was changed here") {
					t.Errorf("cp ID:DIR %s = %q, %d; want status 125 and %q", dst, errOut, code, tt.want)
				}
				if after := tree(t, here); fmt.Sprint(after) != fmt.Sprint(before) {
					t.Errorf("a refused copy to %s changed\n%q\ninto\n%q", dst, before, after)
				}
			}
		})
	}

	// Merging never puts a file where a directory is, or the reverse.
	f.archives["/workspace/bad"] = makeTar(t, tarEntry{name: "sub", body: "a file"}, ok)
	here := t.TempDir()
	os.MkdirAll(filepath.Join(here, "bad", "sub"), 0o755)
	before := tree(t, here)
	_, errOut, code := f.session(t, "", "cp", testSession+":bad", here)
	if code != 125 || !strings.Contains(errOut, "is a directory here") || fmt.Sprint(tree(t, here)) != fmt.Sprint(before) {
		t.Errorf("cp of a file onto a directory = %q, %d; tree %q", errOut, code, tree(t, here))
	}
}

func TestShortDuration(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{45 * time.Second, "45s"},
		{59*time.Second + 600*time.Millisecond, "1m"},
		{9*time.Minute + 59*time.Second, "10m"},
		{59*time.Minute + 40*time.Second, "1h"},
		{90 * time.Minute, "2h"},
		{47 * time.Hour, "47h"},
		{72 * time.Hour, "3d"},
	} {
		if got := shortDuration(tt.d); got != tt.want {
			t.Errorf("shortDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
