package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/client"
	"github.com/cordon-sandbox/cordon/internal/cordontest"
)

// server is one `cordon serve` a test started, as one of the test users,
// on a unix socket in a directory of its own.
type server struct {
	t      testing.TB
	u      cordontest.User
	dir    string
	sock   string
	state  string
	args   []string
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd is reaped
	stderr *lockedBuffer
	c      *client.Client
}

// startServer starts cordon serve as u with extra flags and waits until it
// answers. As an unprivileged uid there is no cgroup leaf to be had here,
// so it is started with --allow-degraded cgroup (the limits are rlimits).
func startServer(t testing.TB, u cordontest.User, extra ...string) *server {
	t.Helper()
	cordontest.RequireUserNS(t)
	cordontest.RequireLandlock(t, 6)
	dir, err := os.MkdirTemp(filepath.Dir(cordonBin), "serve-")
	must(t, err)
	must(t, os.Chmod(dir, 0o700))
	u.Chown(t, dir)
	s := &server{t: t, u: u, dir: dir, sock: filepath.Join(dir, "cordon.sock"), state: filepath.Join(dir, "state")}
	s.args = append([]string{"serve", "--listen", "unix://" + s.sock, "--state-dir", s.state}, extra...)
	if !u.Root() {
		s.args = append(s.args, "--allow-degraded", "cgroup")
	}
	t.Cleanup(func() {
		s.stop()
		os.RemoveAll(dir)
	})
	s.start()
	return s
}

func (s *server) start() {
	t := s.t
	t.Helper()
	s.cmd = s.u.Command(cordonBin, s.args...)
	s.cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + s.dir, "XDG_RUNTIME_DIR=" + s.dir}
	s.stderr = &lockedBuffer{}
	s.cmd.Stdout, s.cmd.Stderr = s.stderr, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting cordon serve: %v", err)
	}
	c, err := client.New("unix://" + s.sock)
	must(t, err)
	s.c = c
	s.exited = make(chan struct{})
	cmd := s.cmd
	go func() {
		cmd.Wait()
		close(s.exited)
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Health(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.exited:
			t.Fatalf("cordon serve exited:\n%s", s.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("cordon serve did not answer: %v\n%s", err, s.stderr)
		}
	}
}

// stop ends the server with SIGTERM, by pid, and waits for it (bounded).
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		s.t.Errorf("cordon serve did not end within 30 s of SIGTERM; killed\n%s", s.stderr)
	}
}

// kill9 kills the server by pid with SIGKILL and reaps it.
func (s *server) kill9() {
	s.cmd.Process.Kill()
	<-s.exited
}

func (s *server) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	s.t.Cleanup(cancel)
	return ctx
}

func (s *server) create(req client.CreateRequest) client.Session {
	s.t.Helper()
	sess, err := s.c.Create(s.ctx(), req)
	if err != nil {
		s.t.Fatalf("creating a session: %v\n%s", err, s.stderr)
	}
	return sess
}

// execOut runs argv in session id and returns stdout, stderr and the code.
func (s *server) exec(id string, stdin string, env map[string]string, argv ...string) (string, string, int) {
	s.t.Helper()
	var out, errb bytes.Buffer
	eio := client.ExecIO{Stdout: &out, Stderr: &errb}
	if stdin != "" {
		eio.Stdin = strings.NewReader(stdin)
	}
	res, err := s.c.Exec(s.ctx(), id, client.ExecRequest{Argv: argv, Env: env}, eio)
	if err != nil {
		s.t.Fatalf("exec %q: %v\n%s", argv, err, s.stderr)
	}
	if res.Error != "" {
		errb.WriteString(res.Error)
	}
	return out.String(), errb.String(), res.Code
}

// uploadProbe puts this test binary into the session as /workspace/probe.
func (s *server) uploadProbe(id string) {
	s.t.Helper()
	f, err := os.Open(probeBin)
	must(s.t, err)
	defer f.Close()
	if err := s.c.WriteFile(s.ctx(), id, "/workspace/probe", f, 0o755); err != nil {
		s.t.Fatalf("uploading the probe: %v", err)
	}
}

func (s *server) probe(id string, action string, args ...string) string {
	s.t.Helper()
	out, errs, code := s.exec(id, "", map[string]string{probeEnv: "1"}, append([]string{"/workspace/probe", action}, args...)...)
	if code != 0 && code != 2 {
		s.t.Fatalf("probe %s: %d %s %s", action, code, out, errs)
	}
	return out
}

// A session is a box: commands run in it with their output streamed, stdin
// and terminals work, files go in and out, and the walls of `cordon run`
// hold inside.
func TestServeSession(t *testing.T) {
	for _, u := range cordontest.Users() {
		t.Run(u.Name, func(t *testing.T) {
			s := startServer(t, u)
			sess := s.create(client.CreateRequest{Labels: map[string]string{"test": "session"}})
			if sess.State != client.StateRunning || !strings.HasPrefix(sess.ID, "s-") {
				t.Fatalf("created %+v", sess)
			}
			out, errs, code := s.exec(sess.ID, "", nil, "sh", "-c", "echo out; echo err >&2; exit 7")
			if out != "out\n" || errs != "err\n" || code != 7 {
				t.Errorf("exec: %q %q %d", out, errs, code)
			}
			// Output comes as it is made, not at the end.
			var frames []client.ExecFrame
			st, err := s.c.ExecStream(s.ctx(), sess.ID, client.ExecRequest{Argv: []string{"sh", "-c", "echo one; read x; echo two"}, StdinStream: true})
			must(t, err)
			for {
				f, err := st.Next()
				if err != nil {
					t.Fatalf("exec stream: %v (frames %v)", err, frames)
				}
				frames = append(frames, f)
				if f.Type == client.FrameStarted {
					continue
				}
				if f.Type == client.FrameStdout && string(f.Data) == "one\n" {
					// "two" waits for stdin, which comes only now.
					must(t, s.c.SendStdin(s.ctx(), sess.ID, frames[0].ExecID, strings.NewReader("go\n")))
					continue
				}
				if f.Type == client.FrameExit {
					break
				}
			}
			st.Close()
			var got []string
			for _, f := range frames {
				got = append(got, f.Type+":"+string(f.Data))
			}
			if !slices.Equal(got, []string{"started:", "stdout:one\n", "stdout:two\n", "exit:"}) || *frames[len(frames)-1].ExitCode != 0 {
				t.Errorf("streamed frames: %q", got)
			}
			if out, _, _ := s.exec(sess.ID, "piped", nil, "cat"); out != "piped" {
				t.Errorf("stdin to cat: %q", out)
			}
			// A terminal.
			var tty bytes.Buffer
			res, err := s.c.Exec(s.ctx(), sess.ID, client.ExecRequest{Argv: []string{"sh", "-c", "tty; stty size"}, TTY: true, Rows: 30, Cols: 90}, client.ExecIO{Stdout: &tty})
			must(t, err)
			if res.Code != 0 || !strings.Contains(tty.String(), "/dev/pts/") || !strings.Contains(tty.String(), "30 90") {
				t.Errorf("tty exec: %d %q", res.Code, tty.String())
			}
			// A child left in the background holding the output does not
			// hold the exec's answer: it ends once the process has, and
			// what the process wrote is all there, with or without a
			// terminal.
			for _, tty := range []bool{false, true} {
				var bg bytes.Buffer
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				res, err := s.c.Exec(ctx, sess.ID, client.ExecRequest{Argv: []string{"sh", "-c", "sleep 300 & echo before-exit"}, TTY: tty}, client.ExecIO{Stdout: &bg})
				cancel()
				if err != nil || res.Code != 0 || !strings.Contains(bg.String(), "before-exit") {
					t.Errorf("exec (tty %v) leaving a child in the background: %+v %v %q", tty, res, err, bg.String())
				}
			}
			// Not found is 127, as in a shell.
			if _, _, code := s.exec(sess.ID, "", nil, "no-such-command-here"); code != 127 {
				t.Errorf("a missing command: %d, want 127", code)
			}

			// Files in and out.
			must(t, s.c.WriteFile(s.ctx(), sess.ID, "/workspace/dir/hello.txt", strings.NewReader("hello\n"), 0o640))
			if out, _, _ := s.exec(sess.ID, "", nil, "sh", "-c", "cat /workspace/dir/hello.txt; stat -c %a /workspace/dir/hello.txt"); out != "hello\n640\n" {
				t.Errorf("the file put in: %q", out)
			}
			// What the API puts in is the session's own to change.
			if out, errs, code := s.exec(sess.ID, "", nil, "sh", "-c", "echo more >> /workspace/dir/hello.txt && touch /workspace/dir/new && stat -c %u /workspace/dir/hello.txt /workspace/dir"); code != 0 || out != "0\n0\n" {
				t.Errorf("changing what the API put in: %d %q %s", code, out, errs)
			}
			// A file of the host that only root may read is no more the
			// session's to read through the API than through an exec.
			if u.Root() {
				f, err := os.CreateTemp("/usr/local/share", "cordon-root-only-")
				must(t, err)
				defer os.Remove(f.Name())
				f.WriteString(secret)
				f.Close()
				if _, err := s.c.ReadFile(s.ctx(), sess.ID, f.Name()); err == nil {
					t.Errorf("a root-only host file was read through the files API")
				} else if ae, ok := err.(*client.APIError); !ok || ae.Status != 403 {
					t.Errorf("reading a root-only host file: %v, want 403", err)
				}
				if out, _, code := s.exec(sess.ID, "", nil, "cat", f.Name()); code == 0 || strings.Contains(out, secret) {
					t.Errorf("a root-only host file is readable in the session: %q", out)
				}
			}
			s.exec(sess.ID, "", nil, "sh", "-c", "mkdir -p /workspace/out/sub && echo a > /workspace/out/a && echo b > /workspace/out/sub/b && ln -s a /workspace/out/link")
			rc, err := s.c.ReadFile(s.ctx(), sess.ID, "/workspace/out/sub/b")
			must(t, err)
			b, _ := io.ReadAll(rc)
			rc.Close()
			if string(b) != "b\n" {
				t.Errorf("a file got out: %q", b)
			}
			fi, err := s.c.Stat(s.ctx(), sess.ID, "/workspace/out/link")
			if err != nil || fi.Type != "symlink" || fi.Target != "a" {
				t.Errorf("stat of a link: %+v %v", fi, err)
			}
			rc, err = s.c.GetArchive(s.ctx(), sess.ID, "/workspace/out")
			must(t, err)
			names := tarNames(t, rc)
			if !slices.Equal(names, []string{"a", "link", "sub/", "sub/b"}) {
				t.Errorf("the archive of /workspace/out holds %q", names)
			}
			var tb bytes.Buffer
			tw := tar.NewWriter(&tb)
			tw.WriteHeader(&tar.Header{Name: "in/x.txt", Mode: 0o600, Size: 2, Typeflag: tar.TypeReg})
			tw.Write([]byte("x\n"))
			tw.Close()
			must(t, s.c.PutArchive(s.ctx(), sess.ID, "/workspace/unpacked", &tb))
			if out, _, _ := s.exec(sess.ID, "", nil, "cat", "/workspace/unpacked/in/x.txt"); out != "x\n" {
				t.Errorf("the archive put in: %q", out)
			}

			// The walls, climbed from inside by the probe.
			s.uploadProbe(sess.ID)
			sleeper := u.Command("/bin/sleep", "300")
			must(t, sleeper.Start())
			defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
			host := cordontest.Serve(t, cordontest.Listen(t, "tcp4", "127.0.0.1:0"))
			for _, c := range []struct {
				action, want string
				args         []string
			}{
				{"read", "ok", []string{"/etc/hostname"}},
				{"read", "err", []string{"/etc/shadow-no"}},
				{"connect-tcp", "err", []string{host.Addr}},
				{"kill", "err ESRCH", []string{strconv.Itoa(sleeper.Process.Pid)}},
				{"clone-newuser", "err", nil},
				{"unshare-unmask", "err", []string{"/etc", "shadow"}},
			} {
				out := s.probe(sess.ID, c.action, c.args...)
				if !strings.HasPrefix(out, c.want) {
					t.Errorf("probe %s %v: %q, want %q", c.action, c.args, out, c.want)
				}
			}
			if got := host.Knock(t, "M"); len(got) != 1 {
				t.Errorf("the host's listener took %q from the session", got)
			}
			if out := s.probe(sess.ID, "read", "/etc/shadow"); strings.Contains(out, "root:") {
				t.Errorf("/etc/shadow is readable in the session: %q", out)
			}
			// The gateway is the way out, and it refuses what the policy
			// does not allow (nothing, by default), explaining why.
			out, _, _ = s.exec(sess.ID, "", nil, "sh", "-c", "curl -s -o /dev/null -w '%{http_code}' http://example.com/ || true")
			if out != "403" {
				t.Errorf("curl through the gateway to a host not allowed: %q, want 403", out)
			}

			must(t, s.c.Delete(s.ctx(), sess.ID))
			if got, err := s.c.Get(s.ctx(), sess.ID); err == nil && got.State != client.StateStopped {
				t.Errorf("after delete: %+v", got)
			}
			if _, err := s.c.Exec(s.ctx(), sess.ID, client.ExecRequest{Argv: []string{"true"}}, client.ExecIO{}); err == nil {
				t.Errorf("exec in a deleted session worked")
			}
		})
	}
}

func tarNames(t *testing.T, r io.ReadCloser) []string {
	t.Helper()
	defer r.Close()
	var names []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the archive: %v", err)
		}
		n := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag == tar.TypeDir && !strings.HasSuffix(n, "/") {
			n += "/"
		}
		if n != "" && n != "/" && n != "./" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Sessions see nothing of each other: files, processes, network.
func TestServeIsolation(t *testing.T) {
	u := cordontest.Users()[0]
	s := startServer(t, u)
	// a may connect to its own servers on 7001; so may b, were it to reach.
	ports := "[network]\nloopback_ports = [7001]\n"
	a := s.create(client.CreateRequest{Policy: ports})
	b := s.create(client.CreateRequest{Policy: ports})
	s.exec(a.ID, "", nil, "sh", "-c", "echo a-secret > /workspace/secret; echo a > /tmp/a; echo a > /etc/a-was-here")
	out, _, _ := s.exec(b.ID, "", nil, "sh", "-c", "ls -A /workspace /tmp; cat /etc/a-was-here 2>&1 || true")
	if strings.Contains(out, "secret") || strings.Contains(out, "a-was-here\n") && !strings.Contains(out, "No such file") {
		t.Errorf("session b sees session a's files: %q", out)
	}
	// A process of a, marked, that b cannot see; a listener of a on its
	// own loopback, that b cannot reach.
	background := func(id string, argv ...string) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		st, err := s.c.ExecStream(ctx, id, client.ExecRequest{Argv: argv, Env: map[string]string{probeEnv: "1"}})
		must(t, err)
		t.Cleanup(func() { st.Close() })
		if f, err := st.Next(); err != nil || f.Type != client.FrameStarted {
			t.Fatalf("starting %q in the background: %+v %v", argv, f, err)
		}
	}
	background(a.ID, "sleep", "77777")
	s.uploadProbe(a.ID)
	background(a.ID, "/workspace/probe", "listen", "127.0.0.1:7001")
	s.uploadProbe(b.ID)
	poll(t, 10*time.Second, "a's listener", func() bool {
		out, _, _ := s.exec(a.ID, "", map[string]string{probeEnv: "1"}, "/workspace/probe", "connect-tcp", "127.0.0.1:7001")
		return strings.HasPrefix(out, "ok")
	})
	// The probe finds its own argv, which holds the needle; nothing else.
	if out := s.probe(b.ID, "scan-proc", "77777"); strings.Count(out, "found ") != 1 || !strings.Contains(out, "ok scanned") {
		t.Errorf("session b sees session a's process: %q", out)
	}
	if out := s.probe(b.ID, "connect-tcp", "127.0.0.1:7001"); strings.HasPrefix(out, "ok") {
		t.Errorf("session b connected to session a's loopback port: %q", out)
	}
}

// Sessions end on their own: at their TTL, and when idle.
func TestServeExpiry(t *testing.T) {
	u := cordontest.Users()[0]
	s := startServer(t, u)
	ttl := s.create(client.CreateRequest{TTL: client.Duration(time.Second)})
	idle := s.create(client.CreateRequest{IdleTimeout: client.Duration(time.Second), TTL: client.Duration(time.Hour)})
	kept := s.create(client.CreateRequest{})
	for _, c := range []struct {
		id, reason string
	}{{ttl.ID, "ttl"}, {idle.ID, "idle"}} {
		poll(t, 15*time.Second, "session "+c.id+" to end ("+c.reason+")", func() bool {
			got, err := s.c.Get(context.Background(), c.id)
			if client.IsNotFound(err) {
				return true
			}
			return err == nil && got.State == client.StateStopped && got.Reason == c.reason
		})
	}
	if got, err := s.c.Get(s.ctx(), kept.ID); err != nil || got.State != client.StateRunning {
		t.Errorf("a session with the default TTL ended too: %+v %v", got, err)
	}
	// A longer timeout keeps a session alive past its first TTL.
	short := s.create(client.CreateRequest{TTL: client.Duration(2 * time.Second)})
	if _, err := s.c.SetTimeout(s.ctx(), short.ID, client.TimeoutRequest{TTL: client.Duration(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if got, err := s.c.Get(s.ctx(), short.ID); err != nil || got.State != client.StateRunning {
		t.Errorf("a session whose timeout was moved ended: %+v %v", got, err)
	}
}

// Bad requests get a clear 4xx and change nothing.
func TestServeBadRequests(t *testing.T) {
	u := cordontest.Users()[0]
	s := startServer(t, u)
	sess := s.create(client.CreateRequest{})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", s.sock)
	}}}
	do := func(method, path string, body io.Reader) (int, string) {
		req, err := http.NewRequest(method, "http://cordon"+path, body)
		must(t, err)
		resp, err := hc.Do(req)
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	id := sess.ID
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/v1/sessions", `{"bogus": 1}`, 400},
		{"POST", "/v1/sessions", `{"ttl": "forever"}`, 400},
		{"POST", "/v1/sessions", `{"limits": {"memory_bytes": -1}}`, 400},
		{"POST", "/v1/sessions", `{"base": "relative/dir"}`, 400},
		{"POST", "/v1/sessions", `{"runtime": "nope"}`, 400},
		{"POST", "/v1/sessions", `{"policy": "[network]\nallow = 3\n"}`, 400},
		{"GET", "/v1/sessions/not-an-id", "", 400},
		{"GET", "/v1/sessions/s-aaaaaaaaaaaaaaaaaaaa", "", 404},
		{"POST", "/v1/sessions/" + id + "/exec", `{"argv": []}`, 400},
		{"POST", "/v1/sessions/" + id + "/exec", `{"argv": ["true"], "extra": 1}`, 400},
		{"GET", "/v1/sessions/" + id + "/files?path=../../etc/passwd", "", 400},
		{"GET", "/v1/sessions/" + id + "/files?path=workspace/x", "", 400},
		{"GET", "/v1/sessions/" + id + "/files?path=/proc/1/environ", "", 400},
		{"GET", "/v1/sessions/" + id + "/files?path=/dev/zero", "", 400},
		{"GET", "/v1/sessions/" + id + "/files?path=", "", 400},
	} {
		code, body := do(c.method, c.path, strings.NewReader(c.body))
		if code != c.want {
			t.Errorf("%s %s %q: %d %s, want %d", c.method, c.path, c.body, code, body, c.want)
		} else if !strings.Contains(body, `"message"`) {
			t.Errorf("%s %s: the error has no message: %s", c.method, c.path, body)
		}
	}
	// A path climbing out is cleaned inside the session's root: it lands
	// in the session, never on the host.
	if code, body := do("PUT", "/v1/sessions/"+id+"/files?path=/workspace/../../../cordon-climb-test", strings.NewReader("x")); code != 204 {
		t.Errorf("PUT through ..: %d %s", code, body)
	}
	if _, err := os.Stat("/cordon-climb-test"); err == nil {
		os.Remove("/cordon-climb-test")
		t.Errorf("a PUT through .. reached the host's root")
	}
	if out, _, _ := s.exec(id, "", nil, "cat", "/cordon-climb-test"); out != "x" {
		t.Errorf("a PUT through .. did not land at the session's root: %q", out)
	}
	// A body over the limit.
	if code, _ := do("POST", "/v1/sessions", strings.NewReader(`{"labels":{"x":"`+strings.Repeat("a", 2<<20)+`"}}`)); code != 413 {
		t.Errorf("a 2 MiB create: %d, want 413", code)
	}
	// A symbolic link the session made, pointing at a file of the host
	// that the session does not see, is followed inside the session's
	// root, never on the host.
	hostFile := filepath.Join(s.dir, "host-secret")
	must(t, os.WriteFile(hostFile, []byte(secret), 0o644))
	s.exec(id, "", nil, "ln", "-s", hostFile, "/workspace/escape")
	s.exec(id, "", nil, "ln", "-s", "../../../../../../../../"+hostFile, "/workspace/escape2")
	for _, p := range []string{"/workspace/escape", "/workspace/escape2"} {
		code, body := do("GET", "/v1/sessions/"+id+"/files?path="+p, nil)
		if strings.Contains(body, secret) || code == 200 {
			t.Errorf("GET %s through a link to the host: %d %q", p, code, body)
		}
	}
	// A tar whose entries point outside: refused whole, nothing written.
	bad := []func(tw *tar.Writer){
		func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Name: "ok.txt", Mode: 0o644, Size: 1})
			tw.Write([]byte("x"))
			tw.WriteHeader(&tar.Header{Name: "../../escape.txt", Mode: 0o644, Size: 1})
			tw.Write([]byte("x"))
		},
		func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Name: "ok.txt", Mode: 0o644, Size: 1})
			tw.Write([]byte("x"))
			tw.WriteHeader(&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc"})
			tw.WriteHeader(&tar.Header{Name: "l/passwd", Mode: 0o644, Size: 1})
			tw.Write([]byte("x"))
		},
		func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Name: "ok.txt", Mode: 0o644, Size: 1})
			tw.Write([]byte("x"))
			tw.WriteHeader(&tar.Header{Name: "/abs.txt", Mode: 0o644, Size: 1})
			tw.Write([]byte("x"))
		},
	}
	for i, write := range bad {
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		write(tw)
		tw.Close()
		dir := fmt.Sprintf("/workspace/untar-%d", i)
		code, body := do("PUT", "/v1/sessions/"+id+"/archive?path="+dir, &tb)
		if code != 400 {
			t.Errorf("bad tar %d: %d %s, want 400", i, code, body)
		}
		if out, _, _ := s.exec(id, "", nil, "sh", "-c", "ls -A "+dir+" 2>/dev/null; ls /escape.txt /abs.txt /workspace/escape.txt 2>/dev/null; echo end"); out != "end\n" {
			t.Errorf("bad tar %d changed the session: %q", i, out)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.state), "escape.txt")); err == nil {
		t.Errorf("a tar entry reached the host")
	}
}

// Load and leaks: 200 sessions created, used and deleted at once, twice,
// leave nothing behind; nor does a server killed with SIGKILL in the middle
// of it, once a new one has started on the same state directory.
func TestServeLoadAndLeaks(t *testing.T) {
	for _, u := range cordontest.Users() {
		t.Run(u.Name, func(t *testing.T) {
			s := startServer(t, u, "--warm", "0", "--max-sessions", "1000")
			pid := s.cmd.Process.Pid
			mountsBefore := leakSnapshot().mounts
			fdsBefore := countFDs(t, pid)
			for round := 0; round < 2; round++ {
				if errs := load(s, 200, nil); len(errs) > 0 {
					t.Fatalf("round %d: %d of 200 failed, first: %v\n%s", round, len(errs), errs[0], tail(s.stderr.String()))
				}
			}
			checkServerClean(t, s, pid, fdsBefore, mountsBefore)

			// Killed mid-load: the sessions die with it (their init has
			// Pdeathsig); what is left on the host (cgroup leaves, state
			// directories) goes when the next server starts.
			started := make(chan struct{})
			var once sync.Once
			done := make(chan []error)
			go func() { done <- load(s, 200, func() { once.Do(func() { close(started) }) }) }()
			<-started
			time.Sleep(300 * time.Millisecond)
			s.kill9()
			<-done
			poll(t, 10*time.Second, "the dead server's sessions to die", func() bool {
				for _, p := range leakSnapshot().procs {
					if !strings.Contains(p, " serve ") {
						return false
					}
				}
				return true
			})
			s.start()
			checkServerClean(t, s, s.cmd.Process.Pid, -1, mountsBefore)
			if left := cgroupsOf(pid); len(left) > 0 {
				t.Errorf("the killed server's cgroups are still there after a new server started: %v", left)
			}
		})
	}
}

// load creates n sessions at once, runs a command in each, checks its
// output, and deletes it; started is called after the first creation.
func load(s *server, n int, started func()) []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess, err := s.c.Create(ctx, client.CreateRequest{Labels: map[string]string{"load": strconv.Itoa(i)}})
			if err != nil {
				fail(fmt.Errorf("create %d: %w", i, err))
				return
			}
			if started != nil {
				started()
			}
			var out bytes.Buffer
			res, err := s.c.Exec(ctx, sess.ID, client.ExecRequest{Argv: []string{"sh", "-c", "echo $0", strconv.Itoa(i)}}, client.ExecIO{Stdout: &out})
			if err != nil || res.Code != 0 || out.String() != strconv.Itoa(i)+"\n" {
				fail(fmt.Errorf("exec in %d: %q %+v %v", i, out.String(), res, err))
			}
			if err := s.c.Delete(ctx, sess.ID); err != nil {
				fail(fmt.Errorf("delete %d: %w", i, err))
			}
		}()
	}
	wg.Wait()
	return errs
}

// checkServerClean checks that the server pid holds no session: no child
// process, no cgroup leaf, no session directory, its descriptors back to
// fdsBefore (unless negative), and no new mount on the host.
func checkServerClean(t *testing.T, s *server, pid, fdsBefore int, mountsBefore []string) {
	t.Helper()
	poll(t, 15*time.Second, "the server to hold no session", func() bool {
		if len(descendants(pid)) > 0 || len(cgroupsOf(pid)) > 0 {
			return false
		}
		ents, err := os.ReadDir(filepath.Join(s.state, "sessions"))
		if err == nil && len(ents) > 0 {
			return false
		}
		return fdsBefore < 0 || countFDs(t, pid) <= fdsBefore+2
	})
	if extra := minus(leakSnapshot().mounts, mountsBefore); len(extra) > 0 {
		t.Errorf("mounts left on the host: %v", extra)
	}
}

func countFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("reading the server's descriptors: %v", err)
	}
	return len(ents)
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

// The CLI verbs against a real server, as a user would type them.
func TestServeCLI(t *testing.T) {
	u := cordontest.Users()[0]
	s := startServer(t, u)
	env := []string{"CORDON_SERVER=unix://" + s.sock}
	cli := func(stdin io.Reader, args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := u.Command(cordonBin, args...)
		cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + s.dir}, env...)
		cmd.Stdin = stdin
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		must(t, cmd.Start())
		inTime, err := waitBounded(ctx, cmd)
		if !inTime {
			t.Fatalf("cordon %v did not finish", args)
		}
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return result{out.String(), errb.String(), code}
	}
	r := cli(nil, "session", "create", "--label", "who=cli", "--ttl", "10m")
	id := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(id, "s-") {
		t.Fatalf("session create: %s", r)
	}
	if r := cli(nil, "session", "exec", id, "--", "python3", "-c", "print(1)"); r.code != 0 || r.stdout != "1\n" {
		t.Errorf("session exec python3: %s", r)
	}
	if r := cli(nil, "session", "exec", id, "--", "sh", "-c", "echo oops >&2; exit 3"); r.code != 3 || r.stderr != "oops\n" {
		t.Errorf("session exec's status and stderr: %s", r)
	}
	if r := cli(strings.NewReader("from stdin"), "session", "exec", "-i", id, "--", "cat"); r.stdout != "from stdin" {
		t.Errorf("session exec -i: %s", r)
	}
	local := filepath.Join(s.dir, "local")
	must(t, os.MkdirAll(filepath.Join(local, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(local, "sub", "f.txt"), []byte("local file\n"), 0o644))
	u.Chown(t, local, filepath.Join(local, "sub"), filepath.Join(local, "sub", "f.txt"))
	if r := cli(nil, "session", "cp", local, id+":/workspace/in"); r.code != 0 {
		t.Fatalf("session cp in: %s", r)
	}
	if r := cli(nil, "session", "exec", id, "--", "cat", "/workspace/in/sub/f.txt"); r.stdout != "local file\n" {
		t.Errorf("a directory copied in: %s", r)
	}
	back := filepath.Join(s.dir, "back")
	if r := cli(nil, "session", "cp", id+":/workspace/in", back); r.code != 0 {
		t.Fatalf("session cp out: %s", r)
	}
	if b, err := os.ReadFile(filepath.Join(back, "sub", "f.txt")); err != nil || string(b) != "local file\n" {
		t.Errorf("a directory copied out: %q %v", b, err)
	}
	if r := cli(nil, "session", "ls"); r.code != 0 || !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "who=cli") {
		t.Errorf("session ls: %s", r)
	}
	if r := cli(nil, "session", "rm", id); r.code != 0 {
		t.Errorf("session rm: %s", r)
	}
	if r := cli(nil, "session", "exec", id, "--", "true"); r.code == 0 || !strings.Contains(r.stderr, "session") {
		t.Errorf("exec in a removed session: %s", r)
	}
}

// The same box through the gvisor runtime, where runsc is installed.
func TestServeGVisor(t *testing.T) {
	runsc := runscPath()
	if runsc == "" {
		t.Skip("runsc is not installed (CGO_ENABLED=0 go install gvisor.dev/gvisor/runsc@...; or set CORDON_RUNSC)")
	}
	cordontest.RequireRoot(t)
	s := startServer(t, cordontest.Users()[0], "--runtime-gvisor-runsc", runsc)
	sess := s.create(client.CreateRequest{Runtime: "gvisor"})
	if sess.Runtime != "gvisor" {
		t.Fatalf("created %+v", sess)
	}
	out, errs, code := s.exec(sess.ID, "", nil, "sh", "-c", "echo out; echo err >&2; exit 7")
	if out != "out\n" || errs != "err\n" || code != 7 {
		t.Errorf("exec: %q %q %d", out, errs, code)
	}
	if out, _, _ := s.exec(sess.ID, "piped", nil, "cat"); out != "piped" {
		t.Errorf("stdin: %q", out)
	}
	// gVisor's own kernel answers, not the host's.
	var uts unix.Utsname
	must(t, unix.Uname(&uts))
	hostRelease := unix.ByteSliceToString(uts.Release[:])
	if out, _, _ := s.exec(sess.ID, "", nil, "uname", "-r"); strings.TrimSpace(out) == hostRelease || out == "" {
		t.Errorf("uname -r in gvisor: %q, the host's is %q", out, hostRelease)
	}
	must(t, s.c.WriteFile(s.ctx(), sess.ID, "/workspace/f", strings.NewReader("in\n"), 0o644))
	if out, _, _ := s.exec(sess.ID, "", nil, "cat", "/workspace/f"); out != "in\n" {
		t.Errorf("a file put in: %q", out)
	}
	host := cordontest.Serve(t, cordontest.Listen(t, "tcp4", "127.0.0.1:0"))
	s.exec(sess.ID, "", nil, "sh", "-c", "exec 3<>/dev/tcp/"+strings.Replace(host.Addr, ":", "/", 1)+" 2>/dev/null; python3 -c 'import socket; socket.create_connection((\""+strings.Split(host.Addr, ":")[0]+"\", "+strings.Split(host.Addr, ":")[1]+"), 2)' 2>/dev/null; true")
	if got := host.Knock(t, "M"); len(got) != 1 {
		t.Errorf("the host's listener took %q from a gvisor session", got)
	}
	out, _, _ = s.exec(sess.ID, "", nil, "sh", "-c", "curl -s -o /dev/null -w '%{http_code}' http://example.com/ || true")
	if out != "403" {
		t.Errorf("curl through the gateway from gvisor: %q, want 403", out)
	}
	must(t, s.c.Delete(s.ctx(), sess.ID))
}
