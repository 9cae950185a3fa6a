package session

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net"
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

	"github.com/cordon-sandbox/cordon/internal/cordontest"
	"github.com/cordon-sandbox/cordon/internal/policy"
)

// The gvisor tests need root and runsc: $CORDON_RUNSC, else runsc in
// PATH (.ci/run installs a pinned one). Without them they skip, saying why.

// gvisorProbeEnv makes TestGVisorProbe, run inside a box as
// `session.test -test.run=^TestGVisorProbe$`, a probe: "dial ADDR".
const gvisorProbeEnv = "CORDON_GVISOR_PROBE"

// TestGVisorProbe is not a test: the test binary runs it inside a gvisor
// box to look at the box's walls from the inside.
func TestGVisorProbe(t *testing.T) {
	probe := os.Getenv(gvisorProbeEnv)
	if probe == "" {
		t.Skip("the probe runs only inside a gvisor box")
	}
	verb, arg, _ := strings.Cut(probe, " ")
	switch verb {
	case "dial":
		c, err := net.DialTimeout("tcp", arg, 5*time.Second)
		if err != nil {
			fmt.Printf("PROBE refused: %v\n", err)
			return
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		fmt.Printf("PROBE connected: %s\n", strings.TrimSpace(line))
	default:
		fmt.Printf("PROBE unknown %q\n", verb)
	}
}

func findRunsc(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CORDON_RUNSC"); p != "" {
		return p
	}
	if p, err := exec.LookPath("runsc"); err == nil {
		return p
	}
	t.Skip("no runsc: set CORDON_RUNSC, or put runsc in PATH (CGO_ENABLED=0 go install gvisor.dev/gvisor/runsc@VERSION, as .ci/run does)")
	return ""
}

// requireGVisor is the runtime, or a skip saying why it cannot run here.
func requireGVisor(t *testing.T) *gvisor {
	t.Helper()
	cordontest.RequireRoot(t)
	g := NewGVisor(findRunsc(t)).(*gvisor)
	if err := g.Available(); err != nil {
		t.Skipf("gvisor is not available: %v", err)
	}
	return g
}

// gvisorStateDir is a server state directory for the test. It is not
// under /tmp: the host's /tmp is hidden from a session, and the tests
// check that the state directory is hidden too.
func gvisorStateDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/lib", "cordon-gvisor-test-")
	if err != nil {
		t.Skipf("making a state directory in /var/lib: %v", err)
	}
	t.Cleanup(func() {
		if m := mountsBelow(t, dir); len(m) > 0 {
			t.Errorf("mounts left below %s: %v", dir, m)
			return
		}
		os.RemoveAll(dir)
	})
	if err := os.Mkdir(filepath.Join(dir, "sessions"), 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func testSessionID() string {
	b := make([]byte, 13)
	rand.Read(b)
	return "s-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))[:20]
}

// testBox is a box and what the test knows of it.
type testBox struct {
	*gvisorBox
	spec Spec
}

// newTestBox creates a box in stateDir; its gateway answers "gateway ID
// PORT" on each connection. Destroy and the leak checks run when the test
// ends.
func newTestBox(t *testing.T, g *gvisor, stateDir, base string, edit func(*Spec)) *testBox {
	t.Helper()
	b, err := makeTestBox(t, g, stateDir, base, edit)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// makeTestBox is newTestBox for any goroutine: it fails with an error.
func makeTestBox(t *testing.T, g *gvisor, stateDir, base string, edit func(*Spec)) (*testBox, error) {
	id := testSessionID()
	dir := filepath.Join(stateDir, "sessions", id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	spec := Spec{
		ID:        id,
		Dir:       dir,
		Base:      base,
		Policy:    policy.Default("/nonexistent", "/root", ""),
		DiskBytes: 256 << 20,
		Listen:    []uint16{3128, 1080},
		Serve: func(port uint16, l net.Listener) {
			t.Cleanup(func() { l.Close() })
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					fmt.Fprintf(c, "gateway %s %d\n", id, port)
					c.Close()
				}
			}()
		},
		Log: t.Logf,
	}
	if edit != nil {
		edit(&spec)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	box, err := g.Create(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("Create: %w", err)
	}
	t.Logf("created %s in %v", id, time.Since(start).Round(time.Millisecond))
	tb := &testBox{gvisorBox: box.(*gvisorBox), spec: spec}
	if len(tb.cgroups) == 0 {
		t.Errorf("no cgroup leaf of the sandbox found")
	}
	t.Cleanup(func() { destroyAndCheck(t, tb) })
	return tb, nil
}

// destroyAndCheck destroys the box and checks that nothing of it is left:
// no process it had (by pid), no mount below its directory, no cgroup.
func destroyAndCheck(t *testing.T, b *testBox) {
	t.Helper()
	pids := []int{b.pid}
	for _, d := range b.cgroups {
		data, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	start := time.Now()
	if err := b.Destroy(); err != nil {
		t.Errorf("Destroy: %v", err)
	}
	t.Logf("destroyed %s in %v", b.id, time.Since(start).Round(time.Millisecond))
	if err := b.Destroy(); err != nil {
		t.Errorf("Destroy again: %v", err)
	}
	select {
	case <-b.Done():
	default:
		t.Errorf("Done is open after Destroy")
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d of the box is still running", pid)
		}
	}
	if m := mountsBelow(t, b.dir); len(m) > 0 {
		t.Errorf("mounts left below %s: %v", b.dir, m)
	}
	for _, d := range b.cgroups {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("cgroup %s left", d)
		}
	}
	if left := staleCgroups(cgroupName(b.id)); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

// alive says whether pid is a process that has not exited (a zombie
// waiting for its parent has).
func alive(pid int) bool {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

func mountsBelow(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// result is one finished exec.
type result struct {
	stdout, stderr string
	status         ExitStatus
}

// run execs argv with stdin and waits for it.
func (b *testBox) run(t *testing.T, stdin string, argv ...string) result {
	t.Helper()
	p, err := b.Exec(context.Background(), Exec{Argv: argv, Env: []string{"PATH=/usr/bin:/bin"}})
	if err != nil {
		t.Fatalf("Exec(%q): %v", argv, err)
	}
	defer p.Close()
	if p.Pid() <= 0 {
		t.Errorf("Exec(%q).Pid() = %d", argv, p.Pid())
	}
	go func() {
		io.WriteString(p.Stdin(), stdin)
		p.Stdin().Close()
	}()
	var out, errOut bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { io.Copy(&out, p.Stdout()); wg.Done() }()
	go func() { io.Copy(&errOut, p.Stderr()); wg.Done() }()
	st, err := p.Wait()
	if err != nil {
		t.Fatalf("Exec(%q).Wait: %v", argv, err)
	}
	wg.Wait()
	return result{out.String(), errOut.String(), st}
}

// sh runs a shell command and fails the test unless it exits 0.
func (b *testBox) sh(t *testing.T, script string) string {
	t.Helper()
	r := b.run(t, "", "/bin/sh", "-c", script)
	if r.status.Code != 0 {
		t.Fatalf("sh -c %q: exit %d, stderr %q", script, r.status.Code, r.stderr)
	}
	return r.stdout
}

// probe copies the test binary into the box's workspace once and runs
// TestGVisorProbe there.
func (b *testBox) probe(t *testing.T, what string) string {
	t.Helper()
	root, err := b.Root()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := root.Stat("workspace/probe"); err != nil {
		self, err := os.Open("/proc/self/exe")
		if err != nil {
			t.Fatal(err)
		}
		defer self.Close()
		f, err := root.OpenFile("workspace/probe", os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, self); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	p, err := b.Exec(context.Background(), Exec{
		Argv: []string{"/workspace/probe", "-test.run=^TestGVisorProbe$", "-test.v"},
		Env:  []string{gvisorProbeEnv + "=" + what},
	})
	if err != nil {
		t.Fatalf("starting the probe: %v", err)
	}
	defer p.Close()
	p.Stdin().Close()
	go io.Copy(io.Discard, p.Stderr())
	out, _ := io.ReadAll(p.Stdout())
	p.Wait()
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "PROBE "); ok {
			return rest
		}
	}
	t.Fatalf("the probe said nothing: %s", out)
	return ""
}

func TestGVisorAvailable(t *testing.T) {
	missing := NewGVisor(filepath.Join(t.TempDir(), "runsc"))
	if err := missing.Available(); err == nil {
		t.Errorf("Available() with no runsc = nil")
	}
	notExec := filepath.Join(t.TempDir(), "runsc")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	if err := NewGVisor(notExec).Available(); err == nil || !strings.Contains(err.Error(), "not an executable") {
		t.Errorf("Available() with a non-executable runsc = %v", err)
	}
	fake := filepath.Join(t.TempDir(), "runsc")
	os.WriteFile(fake, []byte("#!/bin/sh\necho not runsc\n"), 0o755)
	if err := NewGVisor(fake).Available(); err == nil {
		t.Errorf("Available() with a runsc that is not runsc = nil")
	}
	if NewGVisor("x").Name() != "gvisor" {
		t.Errorf("Name() = %q", NewGVisor("x").Name())
	}
	g := requireGVisor(t)
	if err := g.Available(); err != nil {
		t.Errorf("Available() = %v", err)
	}
}

// TestGVisorHostBox runs the box's behaviour over the "host" base in one
// box (creating one costs a good part of a second).
func TestGVisorHostBox(t *testing.T) {
	g := requireGVisor(t)
	state := gvisorStateDir(t)
	created := time.Now()
	b := newTestBox(t, g, state, "host", nil)

	t.Run("echo", func(t *testing.T) {
		r := b.run(t, "", "echo", "hi")
		if r.stdout != "hi\n" || r.status != (ExitStatus{}) {
			t.Errorf("echo hi = %q, %+v; want \"hi\\n\", 0", r.stdout, r.status)
		}
		t.Logf("create → first exec done: %v", time.Since(created).Round(time.Millisecond))
	})
	t.Run("exit code and stderr", func(t *testing.T) {
		r := b.run(t, "", "sh", "-c", "echo oops >&2; exit 3")
		if r.status.Code != 3 || r.status.Signal != 0 || r.stderr != "oops\n" || r.stdout != "" {
			t.Errorf("exit 3: %+v, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		in := strings.Repeat("line of stdin\n", 10000)
		r := b.run(t, in, "cat")
		if r.stdout != in {
			t.Errorf("cat gave back %d bytes of %d", len(r.stdout), len(in))
		}
	})
	t.Run("cwd and env", func(t *testing.T) {
		p, err := b.Exec(context.Background(), Exec{Argv: []string{"sh", "-c", "pwd; echo $FOO"}, Cwd: "/etc", Env: []string{"PATH=/bin:/usr/bin", "FOO=bar"}})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		out, _ := io.ReadAll(p.Stdout())
		p.Wait()
		if string(out) != "/etc\nbar\n" {
			t.Errorf("pwd; echo $FOO = %q", out)
		}
		r := b.run(t, "", "pwd")
		if r.stdout != "/workspace\n" {
			t.Errorf("the default cwd is %q, want /workspace", r.stdout)
		}
	})
	t.Run("not found", func(t *testing.T) {
		for _, tt := range []struct {
			argv []string
			code int
		}{
			{[]string{"no-such-command-xyz"}, 127},
			{[]string{"/no/such/file"}, 127},
			{[]string{"/etc/passwd"}, 126},
			{[]string{"/etc"}, 126},
		} {
			_, err := b.Exec(context.Background(), Exec{Argv: tt.argv, Env: []string{"PATH=/bin:/usr/bin"}})
			var ee *ExecError
			if !errors.As(err, &ee) || ee.Code != tt.code {
				t.Errorf("Exec(%q) = %v, want an ExecError %d", tt.argv, err, tt.code)
			}
		}
		_, err := b.Exec(context.Background(), Exec{Argv: []string{"true"}, Cwd: "/no/such/dir", Env: []string{"PATH=/bin:/usr/bin"}})
		if err == nil || !strings.Contains(err.Error(), "/no/such/dir") {
			t.Errorf("Exec with a missing cwd = %v", err)
		}
	})
	t.Run("signal", func(t *testing.T) {
		// The signal goes to the group: the background sleep too.
		p, err := b.Exec(context.Background(), Exec{Argv: []string{"sh", "-c", "sleep 101 & echo up; sleep 100"}, Env: []string{"PATH=/bin:/usr/bin"}})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		line, _ := bufio.NewReader(p.Stdout()).ReadString('\n')
		if line != "up\n" {
			t.Fatalf("read %q", line)
		}
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		st, err := p.Wait()
		if err != nil || st.Code != 128+int(syscall.SIGTERM) || st.Signal != syscall.SIGTERM {
			t.Errorf("after SIGTERM: %+v, %v", st, err)
		}
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("Signal after the end = %v", err)
		}
		for _, line := range strings.Split(b.sh(t, "ps -eo args"), "\n") {
			if strings.HasPrefix(line, "sleep 10") {
				t.Errorf("%q still runs after SIGTERM to its group", line)
			}
		}
	})
	t.Run("tty", func(t *testing.T) {
		p, err := b.Exec(context.Background(), Exec{
			Argv: []string{"sh", "-c", `test -t 0 && test -t 1 && echo is-a-tty; stty size; read x; stty size; trap "echo winch; exit 7" WINCH; echo ready; i=0; while [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`},
			Env:  []string{"PATH=/bin:/usr/bin"},
			TTY:  true, Rows: 33, Cols: 99,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if p.Stderr() != nil {
			t.Errorf("a TTY exec has a Stderr")
		}
		out := bufio.NewReader(p.Stdout())
		expect := func(want string) {
			t.Helper()
			for {
				line, err := out.ReadString('\n')
				if err != nil {
					t.Fatalf("waiting for %q: %v", want, err)
				}
				if strings.TrimSpace(line) == want {
					return
				}
			}
		}
		expect("is-a-tty")
		expect("33 99")
		if err := p.Resize(40, 120); err != nil {
			t.Fatal(err)
		}
		io.WriteString(p.Stdin(), "\n")
		expect("40 120")
		expect("ready")
		if err := p.Resize(41, 121); err != nil {
			t.Fatal(err)
		}
		expect("winch")
		st, _ := p.Wait()
		if st.Code != 7 {
			t.Errorf("the tty exec ended with %+v, want 7", st)
		}
	})
	t.Run("no tty", func(t *testing.T) {
		r := b.run(t, "", "sh", "-c", "test -t 0 || echo no-tty")
		if r.stdout != "no-tty\n" {
			t.Errorf("without a TTY: %q", r.stdout)
		}
		p, err := b.Exec(context.Background(), Exec{Argv: []string{"true"}, Env: []string{"PATH=/bin:/usr/bin"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Resize(1, 1); err == nil {
			t.Errorf("Resize without a TTY = nil")
		}
		p.Wait()
		p.Close()
	})
	t.Run("gVisor's kernel", func(t *testing.T) {
		var u unix.Utsname
		unix.Uname(&u)
		host := unix.ByteSliceToString(u.Release[:])
		inside := strings.TrimSpace(b.sh(t, "uname -r"))
		if inside == "" || inside == host {
			t.Errorf("uname -r inside = %q, the host's is %q: not gVisor", inside, host)
		}
		if h := strings.TrimSpace(b.sh(t, "hostname")); h != "cordon" {
			t.Errorf("hostname = %q", h)
		}
		caps := b.sh(t, "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status")
		for _, line := range strings.Split(strings.TrimSpace(caps), "\n") {
			if !strings.HasSuffix(line, "0000000000000000") {
				t.Errorf("a capability inside: %s", line)
			}
		}
	})
	t.Run("root is throwaway", func(t *testing.T) {
		name := "/etc/cordon-gvisor-test-" + b.id
		if out := b.sh(t, "echo written > "+name+" && cat "+name); out != "written\n" {
			t.Errorf("writing %s inside: %q", name, out)
		}
		if _, err := os.Lstat(name); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s written inside is on the host: %v", name, err)
		}
		if _, err := os.Lstat("/workspace"); err == nil {
			t.Errorf("/workspace exists on the host")
		}
	})
	t.Run("workspace through Root", func(t *testing.T) {
		b.sh(t, "echo from-inside > /workspace/in.txt")
		root, err := b.Root()
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		got, err := root.ReadFile("workspace/in.txt")
		if err != nil || string(got) != "from-inside\n" {
			t.Errorf("workspace/in.txt through Root = %q, %v", got, err)
		}
		if err := root.WriteFile("workspace/out.txt", []byte("from-outside\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out := b.sh(t, "cat /workspace/out.txt"); out != "from-outside\n" {
			t.Errorf("cat /workspace/out.txt = %q", out)
		}
		if err := root.Mkdir("etc", 0o755); err == nil {
			t.Errorf("Root made /etc beside /workspace")
		}
		if _, err := root.Stat("etc/passwd"); err == nil {
			t.Errorf("Root reaches /etc/passwd")
		}
	})
	t.Run("hidden and masked", func(t *testing.T) {
		for _, dir := range []string{"/root", "/tmp", "/var/tmp", "/run", state} {
			ents, err := os.ReadDir(dir)
			if err != nil || len(ents) == 0 {
				continue // nothing to hide on this host
			}
			if out := b.sh(t, "ls -A "+dir+" 2>/dev/null; true"); out != "" {
				t.Errorf("%s inside shows %q", dir, out)
			}
		}
		if st, err := os.Stat("/etc/shadow"); err == nil && st.Size() > 0 {
			if out := b.sh(t, "wc -c < /etc/shadow"); strings.TrimSpace(out) != "0" {
				t.Errorf("/etc/shadow inside has %s bytes", strings.TrimSpace(out))
			}
		}
	})
	t.Run("network", func(t *testing.T) {
		host := cordontest.Serve(t, cordontest.Listen(t, "tcp", "127.0.0.1:0"))
		if got := b.probe(t, "dial "+host.Addr); !strings.HasPrefix(got, "refused") {
			t.Errorf("dialing the host's %s from inside: %s", host.Addr, got)
		}
		if got := host.Knock(t, "k"); !slices.Equal(got, []string{"k"}) {
			t.Errorf("the host's listener took %q", got)
		}
		for _, port := range b.spec.Listen {
			want := fmt.Sprintf("connected: gateway %s %d", b.id, port)
			if got := b.probe(t, fmt.Sprintf("dial 127.0.0.1:%d", port)); got != want {
				t.Errorf("dialing the gateway's port %d: %s, want %s", port, got, want)
			}
		}
		if got := b.probe(t, "dial 1.1.1.1:80"); !strings.HasPrefix(got, "refused") {
			t.Errorf("dialing out: %s", got)
		} else {
			t.Logf("dialing out: %s", got)
		}
	})
	t.Run("concurrent execs", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := b.run(t, "", "echo", strconv.Itoa(i))
				if r.stdout != strconv.Itoa(i)+"\n" {
					t.Errorf("exec %d said %q", i, r.stdout)
				}
			}()
		}
		wg.Wait()
	})
	t.Run("memory", func(t *testing.T) {
		if m := b.MemoryBytes(); m <= 0 {
			t.Errorf("MemoryBytes() = %d", m)
		}
	})
	select {
	case <-b.Done():
		t.Fatalf("Done is closed while the box runs")
	default:
	}
}

// TestGVisorSessionsApart: a session sees neither another's files (its
// workspace is a mount below the state directory, which the host base
// shows) nor its processes, and its gateway ports are its own.
func TestGVisorSessionsApart(t *testing.T) {
	g := requireGVisor(t)
	state := gvisorStateDir(t)
	a := newTestBox(t, g, state, "host", nil)
	b := newTestBox(t, g, state, "host", nil)
	a.sh(t, "echo secret-of-a > /workspace/secret; sleep 1000 >/dev/null 2>&1 &")
	path := filepath.Join(a.files, "workspace", "secret")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a's secret is not at %s on the host: %v", path, err)
	}
	if out := b.run(t, "", "cat", path); out.status.Code == 0 {
		t.Errorf("b reads a's workspace at %s: %q", path, out.stdout)
	}
	if out := b.sh(t, "ps -eo args"); strings.Contains(out, "sleep 1000") {
		t.Errorf("b sees a's processes:\n%s", out)
	}
	want := fmt.Sprintf("connected: gateway %s 3128", b.id)
	if got := b.probe(t, "dial 127.0.0.1:3128"); got != want {
		t.Errorf("b's gateway: %s, want %s", got, want)
	}
}

func TestGVisorLimits(t *testing.T) {
	g := requireGVisor(t)
	state := gvisorStateDir(t)
	b := newTestBox(t, g, state, "host", func(s *Spec) {
		s.Policy.Limits = policy.Limits{MemoryBytes: 512 << 20, Pids: 64, CPUs: 0.5}
		s.DiskBytes = 16 << 20
	})
	// Each writable layer holds DiskBytes.
	for _, dir := range []string{"/etc", "/tmp", "/workspace"} {
		r := b.run(t, "", "sh", "-c", "dd if=/dev/zero of="+dir+"/big bs=1M count=32 2>&1; rm -f "+dir+"/big")
		if !strings.Contains(r.stdout, "No space left") {
			t.Errorf("writing 32 MiB to %s with 16 MiB of disk: %q", dir, r.stdout)
		}
	}
	if out := b.sh(t, "grep 'Max processes' /proc/self/limits"); !strings.Contains(out, " 64 ") {
		t.Errorf("the process limit inside: %q", out)
	}
	files := map[string]string{
		"memory.limit_in_bytes": strconv.Itoa(512 << 20),
		"memory.max":            strconv.Itoa(512 << 20),
		"cpu.cfs_quota_us":      "50000",
		"cpu.max":               "50000 100000",
	}
	seen := 0
	for _, d := range b.cgroups {
		for f, want := range files {
			data, err := os.ReadFile(filepath.Join(d, f))
			if err != nil {
				continue
			}
			seen++
			if got := strings.TrimSpace(string(data)); got != want {
				t.Errorf("%s/%s = %q, want %q", d, f, got, want)
			}
		}
	}
	if seen < 2 {
		t.Errorf("found %d of the memory and cpu limit files in %v", seen, b.cgroups)
	}
	// Over the limit, a fork fails inside (dash gives up); the box lives
	// on.
	r := b.run(t, "", "sh", "-c", "for i in $(seq 100); do sleep 1 & done; wait")
	if r.status.Code == 0 || !strings.Contains(strings.ToLower(r.stderr), "fork") {
		t.Errorf("100 processes with a limit of 64: exit %d, stderr %q", r.status.Code, r.stderr)
	}
	if out := b.sh(t, "echo alive"); out != "alive\n" {
		t.Errorf("after the fork loop: %q", out)
	}
}

// TestGVisorEndsWithServer: the box's init ends when the server's end of
// its pipe closes, as when the server dies; Done closes, and Sweep then
// Destroy leave nothing.
func TestGVisorEndsWithServer(t *testing.T) {
	g := requireGVisor(t)
	state := gvisorStateDir(t)
	b := newTestBox(t, g, state, "host", nil)
	p, err := b.Exec(context.Background(), Exec{Argv: []string{"sleep", "1000"}, Env: []string{"PATH=/bin:/usr/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	b.initW.Close()
	select {
	case <-b.Done():
	case <-time.After(time.Minute):
		t.Fatalf("the box did not end when its init's pipe closed")
	}
	st, err := p.Wait()
	if err == nil || st.Code != 128+int(syscall.SIGKILL) || st.Signal != syscall.SIGKILL {
		t.Errorf("an exec running when the box ended: %+v, %v; want SIGKILL and an error", st, err)
	}
	if _, err := b.Exec(context.Background(), Exec{Argv: []string{"true"}}); !errors.Is(err, ErrStopped) {
		t.Errorf("Exec in an ended box = %v, want ErrStopped", err)
	}
}

// TestGVisorSweep: a server gone (its boxes never destroyed) leaves
// sandboxes, cgroups and mounts; Sweep removes them.
func TestGVisorSweep(t *testing.T) {
	g := requireGVisor(t)
	state := gvisorStateDir(t)
	b := newTestBox(t, g, state, "host", nil)
	b.sh(t, "true")
	pid := b.pid
	if err := g.Sweep(state); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	select {
	case <-b.Done():
	case <-time.After(time.Minute):
		t.Fatalf("the box still runs after Sweep")
	}
	if alive(pid) {
		t.Errorf("the sandbox %d still runs after Sweep", pid)
	}
	if m := mountsBelow(t, b.dir); len(m) > 0 {
		t.Errorf("mounts left after Sweep: %v", m)
	}
	for _, d := range b.cgroups {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("cgroup %s left after Sweep", d)
		}
	}
	out, _ := exec.Command(b.runsc, "--root="+filepath.Join(b.dir, "runsc-state"), "list", "--quiet").Output()
	if strings.TrimSpace(string(out)) != "" {
		t.Errorf("runsc still lists %q", out)
	}
}

// TestGVisorDirBase runs a box over a directory holding a tiny root
// filesystem (dash and cat with their libraries, copied from the host).
func TestGVisorDirBase(t *testing.T) {
	g := requireGVisor(t)
	state := gvisorStateDir(t)
	base := t.TempDir()
	for _, bin := range []string{"/bin/sh", "/bin/cat"} {
		copyWithLibs(t, base, bin)
	}
	os.MkdirAll(filepath.Join(base, "etc"), 0o755)
	os.WriteFile(filepath.Join(base, "etc", "marker"), []byte("from the base\n"), 0o644)
	before := listTree(t, base)

	b := newTestBox(t, g, state, base, nil)
	r := b.run(t, "", "/bin/sh", "-c", "cat /etc/marker; echo new > /etc/marker; cat /etc/marker; echo ws > /workspace/f; cat /workspace/f")
	if r.stdout != "from the base\nnew\nws\n" || r.status.Code != 0 {
		t.Errorf("in the dir base: %q, %q, %+v", r.stdout, r.stderr, r.status)
	}
	r = b.run(t, "", "/bin/sh", "-c", "cat /etc/passwd")
	if r.status.Code == 0 {
		t.Errorf("the host's /etc/passwd is in a dir base: %q", r.stdout)
	}
	if got, _ := os.ReadFile(filepath.Join(base, "etc", "marker")); string(got) != "from the base\n" {
		t.Errorf("the base's file was changed: %q", got)
	}
	if after := listTree(t, base); !slices.Equal(before, after) {
		t.Errorf("the base changed: before %v, after %v", before, after)
	}
}

// copyWithLibs copies bin (symbolic links followed) to the same path in
// root, with its ELF interpreter and libraries.
func copyWithLibs(t *testing.T, root, bin string) {
	t.Helper()
	todo := []string{bin}
	for len(todo) > 0 {
		p := todo[0]
		todo = todo[1:]
		dst := filepath.Join(root, p)
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Skipf("cannot build a base: %v", err)
		}
		data, err := os.ReadFile(real)
		if err != nil {
			t.Skipf("cannot build a base: %v", err)
		}
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := elf.Open(real)
		if err != nil {
			t.Skipf("cannot build a base: %s: %v", real, err)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				b := make([]byte, prog.Filesz)
				prog.ReadAt(b, 0)
				todo = append(todo, strings.TrimRight(string(b), "\x00"))
			}
		}
		libs, _ := f.ImportedLibraries()
		f.Close()
		for _, lib := range libs {
			found := false
			for _, dir := range []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"} {
				if _, err := os.Stat(filepath.Join(dir, lib)); err == nil {
					todo = append(todo, filepath.Join(dir, lib))
					found = true
					break
				}
			}
			if !found {
				t.Skipf("cannot build a base: no %s for %s", lib, p)
			}
		}
	}
}

func listTree(t *testing.T, root string) []string {
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		out = append(out, p)
		return nil
	})
	return out
}

func TestGVisorBadBase(t *testing.T) {
	g := requireGVisor(t)
	state := gvisorStateDir(t)
	dir := filepath.Join(state, "sessions", testSessionID())
	os.Mkdir(dir, 0o700)
	for _, base := range []string{"relative/dir", t.TempDir()} {
		_, err := g.Create(context.Background(), Spec{ID: filepath.Base(dir), Dir: dir, Base: base, Log: t.Logf})
		if err == nil {
			t.Errorf("Create over the base %q = nil", base)
		}
		if m := mountsBelow(t, dir); len(m) > 0 {
			t.Errorf("a failed Create left mounts: %v", m)
		}
	}
	// A failure once the mounts are made (the second listener cannot
	// bind) undoes them.
	_, err := g.Create(context.Background(), Spec{
		ID: filepath.Base(dir), Dir: dir, Base: "host", Log: t.Logf,
		Listen: []uint16{3128, 3128}, Serve: func(uint16, net.Listener) { t.Errorf("Serve called") },
	})
	if err == nil || !strings.Contains(err.Error(), "3128") {
		t.Errorf("Create with a port twice = %v", err)
	}
	if m := mountsBelow(t, dir); len(m) > 0 {
		t.Errorf("a failed Create left mounts: %v", m)
	}
}

// gvisorCrashEnv makes TestGVisorCrashHelper a server that makes a box in
// the state directory it names, says so, and waits to be killed.
const gvisorCrashEnv = "CORDON_GVISOR_CRASH"

// TestGVisorCrashHelper is not a test: TestGVisorServerKilled runs it as
// the server it kills.
func TestGVisorCrashHelper(t *testing.T) {
	state := os.Getenv(gvisorCrashEnv)
	if state == "" {
		t.Skip("the crash helper runs only under TestGVisorServerKilled")
	}
	g := requireGVisor(t)
	id := testSessionID()
	dir := filepath.Join(state, "sessions", id)
	os.Mkdir(dir, 0o700)
	box, err := g.Create(context.Background(), Spec{
		ID: id, Dir: dir, Base: "host", DiskBytes: 64 << 20, Log: t.Logf,
		Listen: []uint16{3128}, Serve: func(uint16, net.Listener) {},
	})
	if err != nil {
		fmt.Printf("FAILED %v\n", err)
		return
	}
	b := box.(*gvisorBox)
	fmt.Printf("READY %s %d %s\n", id, b.pid, strings.Join(b.cgroups, " "))
	select {}
}

// TestGVisorServerKilled: a server killed with SIGKILL takes its boxes'
// sandboxes with it (their init's pipe closes); what is left on the host
// (cgroups, the files mounts) Sweep removes.
func TestGVisorServerKilled(t *testing.T) {
	requireGVisor(t)
	state := gvisorStateDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestGVisorCrashHelper$", "-test.v")
	cmd.Env = append(os.Environ(), gvisorCrashEnv+"="+state)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var fields []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
			fields = strings.Fields(rest)
			break
		}
		if strings.HasPrefix(sc.Text(), "FAILED") || strings.Contains(sc.Text(), "SKIP") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the helper: %s", sc.Text())
		}
	}
	cmd.Process.Kill()
	go io.Copy(io.Discard, out)
	cmd.Wait()
	if len(fields) < 3 {
		t.Fatalf("the helper said %q", fields)
	}
	id, cgroups := fields[0], fields[2:]
	pid, _ := strconv.Atoi(fields[1])
	for deadline := time.Now().Add(time.Minute); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the sandbox %d outlived its server", pid)
		}
	}
	dir := filepath.Join(state, "sessions", id)
	if len(mountsBelow(t, dir)) == 0 {
		t.Fatalf("no mounts below %s before Sweep: the test proves nothing", dir)
	}
	if err := NewGVisor(findRunsc(t)).Sweep(state); err != nil {
		t.Errorf("Sweep: %v", err)
	}
	if m := mountsBelow(t, dir); len(m) > 0 {
		t.Errorf("mounts left after Sweep: %v", m)
	}
	for _, d := range cgroups {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("cgroup %s left after Sweep", d)
		}
	}
	if left := staleCgroups(cgroupName(id)); len(left) > 0 {
		t.Errorf("cgroups left after Sweep: %v", left)
	}
}

// TestGVisorConcurrentCreate makes boxes at once, as the server does
// under load; each is its own.
func TestGVisorConcurrentCreate(t *testing.T) {
	g := requireGVisor(t)
	state := gvisorStateDir(t)
	const n = 4
	boxes := make([]*testBox, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := makeTestBox(t, g, state, "host", nil)
			if err != nil {
				t.Error(err)
			}
			boxes[i] = b
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i, b := range boxes {
		b.sh(t, fmt.Sprintf("echo %d > /workspace/n", i))
	}
	for i, b := range boxes {
		if out := b.sh(t, "cat /workspace/n"); out != fmt.Sprintf("%d\n", i) {
			t.Errorf("box %d has %q in its workspace", i, out)
		}
	}
}

// benchBox makes a box for a benchmark; Destroy is the caller's.
func benchBox(b *testing.B, g *gvisor, state string) *gvisorBox {
	b.Helper()
	id := testSessionID()
	dir := filepath.Join(state, "sessions", id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	box, err := g.Create(context.Background(), Spec{
		ID: id, Dir: dir, Base: "host", DiskBytes: 64 << 20,
		Policy: policy.Default("/nonexistent", "/root", ""),
		Listen: []uint16{3128, 1080}, Serve: func(_ uint16, l net.Listener) { l.Close() },
		Log: func(string, ...any) {},
	})
	if err != nil {
		b.Fatal(err)
	}
	return box.(*gvisorBox)
}

func benchExec(b *testing.B, box Box) {
	p, err := box.Exec(context.Background(), Exec{Argv: []string{"/bin/true"}})
	if err != nil {
		b.Fatal(err)
	}
	p.Stdin().Close()
	io.Copy(io.Discard, p.Stdout())
	io.Copy(io.Discard, p.Stderr())
	if st, err := p.Wait(); err != nil || st.Code != 0 {
		b.Fatalf("/bin/true: %+v, %v", st, err)
	}
	p.Close()
}

// benchRuntime is the gvisor runtime and a state directory for a
// benchmark, removed when it ends; or a skip saying why not.
func benchRuntime(b *testing.B) (*gvisor, string) {
	b.Helper()
	cordontest.RequireRoot(b)
	g := NewGVisor(findRunsc(b)).(*gvisor)
	if err := g.Available(); err != nil {
		b.Skipf("gvisor is not available: %v", err)
	}
	state, err := os.MkdirTemp("/var/lib", "cordon-gvisor-bench-")
	if err != nil {
		b.Skip(err)
	}
	b.Cleanup(func() { os.RemoveAll(state) })
	os.Mkdir(filepath.Join(state, "sessions"), 0o700)
	return g, state
}

// BenchmarkGVisorCreateFirstExec is a box made, one exec run in it, and
// the box destroyed; it reports the parts and the idle box's memory.
func BenchmarkGVisorCreateFirstExec(b *testing.B) {
	g, state := benchRuntime(b)
	var first, destroy time.Duration
	var mem int64
	for b.Loop() {
		start := time.Now()
		box := benchBox(b, g, state)
		benchExec(b, box)
		first += time.Since(start)
		mem += box.MemoryBytes()
		start = time.Now()
		if err := box.Destroy(); err != nil {
			b.Fatal(err)
		}
		destroy += time.Since(start)
	}
	b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "ms-to-first-exec")
	b.ReportMetric(float64(destroy.Milliseconds())/float64(b.N), "ms-destroy")
	b.ReportMetric(float64(mem)/float64(b.N)/(1<<20), "MiB-idle")
}

// BenchmarkGVisorExec is one exec of /bin/true in a running box.
func BenchmarkGVisorExec(b *testing.B) {
	g, state := benchRuntime(b)
	box := benchBox(b, g, state)
	defer box.Destroy()
	for b.Loop() {
		benchExec(b, box)
	}
}

// TestGVisorDestroyRunning: Destroy ends the execs still running, whose
// Wait then says the session ended.
func TestGVisorDestroyRunning(t *testing.T) {
	g := requireGVisor(t)
	state := gvisorStateDir(t)
	b := newTestBox(t, g, state, "host", nil)
	var procs []Process
	for _, tty := range []bool{false, true} {
		p, err := b.Exec(context.Background(), Exec{Argv: []string{"sleep", "1000"}, Env: []string{"PATH=/bin:/usr/bin"}, TTY: tty})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		procs = append(procs, p)
	}
	if err := b.Destroy(); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	for i, p := range procs {
		st, err := p.Wait()
		if err == nil || st.Code != 128+int(syscall.SIGKILL) || st.Signal != syscall.SIGKILL {
			t.Errorf("exec %d running at Destroy: %+v, %v; want SIGKILL and an error", i, st, err)
		}
	}
	if _, err := b.Exec(context.Background(), Exec{Argv: []string{"true"}}); !errors.Is(err, ErrStopped) {
		t.Errorf("Exec after Destroy = %v, want ErrStopped", err)
	}
}
