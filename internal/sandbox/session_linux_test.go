package sandbox

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/internal/cordontest"
	"github.com/cordon-sandbox/cordon/internal/policy"
)

func TestMain(m *testing.M) {
	// StartSession re-executes this binary as a session's init.
	if filepath.Base(os.Args[0]) == InitArg0 {
		Init()
		return
	}
	os.Exit(m.Run())
}

// startTestSession starts a session over base, destroyed when the test
// ends. overlaid says whether the kernel allowed the overlays that make
// the base's /etc writable (some refuse them to a user namespace whose
// root is not the host's root, or over a directory with mounts below it:
// it is then read-only, and StartSession warns).
func startTestSession(t *testing.T, base string) (s *Session, overlaid bool) {
	t.Helper()
	cordontest.RequireUserNS(t)
	cordontest.RequireLandlock(t, LandlockRequiredABI)
	overlaid = true
	logf := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if strings.Contains(msg, "refused an overlay over "+base) || strings.Contains(msg, "refused an overlay") && strings.Contains(msg+" ", " /etc ") {
			overlaid = false
		}
		t.Logf(format, args...)
	}
	degraded := map[policy.Wall]bool{}
	limits := policy.Limits{Pids: 256, MemoryBytes: 256 << 20}
	if os.Geteuid() != 0 {
		// No delegated cgroup here for a plain uid: limits by rlimits,
		// which the user must ask for (tested in TestSessionNeedsCgroup).
		// No memory limit then: RLIMIT_DATA would also bound init, and
		// the race detector's runtime in it needs far more address space.
		degraded[policy.WallCgroup] = true
		limits.MemoryBytes = 0
	}
	// As root, a session over the host base stands for nobody on the host
	// (as cordon serve's do); over a base directory, for root.
	uid, gid := -1, -1
	if os.Geteuid() == 0 && base == "host" {
		uid, gid = 65534, 65534
	}
	s, err := StartSession(SessionOptions{
		UID:       uid,
		GID:       gid,
		Base:      base,
		DiskBytes: 64 << 20,
		Hide:      []string{"/home", "/root", "/run", "/tmp", "/var/tmp", "/mnt", "/media"},
		Masks:     []policy.Entry{{Path: "/etc/shadow", Kind: policy.File}},
		Limits:    limits,
		Degraded:  degraded,
		Listen:    []uint16{3128},
		Serve: func(port uint16, l net.Listener) {
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					io.WriteString(c, "gateway\n")
					c.Close()
				}
			}()
			t.Cleanup(func() { l.Close() })
		},
		Log:  logf,
		Warn: logf,
	})
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Destroy(); err != nil {
			t.Errorf("Destroy: %v", err)
		}
		if err := syscall.Kill(s.Pid(), 0); err != syscall.ESRCH {
			t.Errorf("the session's init %d is still there after Destroy (%v)", s.Pid(), err)
		}
	})
	return s, overlaid
}

// run execs argv in s with stdin and returns stdout, stderr and the status.
func run(t *testing.T, s *Session, stdin string, argv ...string) (string, string, int) {
	t.Helper()
	p, err := s.Exec(SessionExec{Argv: argv, Env: []string{"PATH=/usr/bin:/bin"}})
	if err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	defer p.Close()
	go func() {
		io.WriteString(p.Stdin, stdin)
		p.Stdin.Close()
	}()
	errc := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(p.Stderr)
		errc <- b
	}()
	out, _ := io.ReadAll(p.Stdout)
	errb := <-errc
	code, _, err := p.Wait()
	if err != nil {
		t.Fatalf("exec %q: %v", argv, err)
	}
	return string(out), string(errb), code
}

func TestSessionHostBase(t *testing.T) {
	s, overlaid := startTestSession(t, "host")
	out, errs, code := run(t, s, "", "/bin/sh", "-c", "echo hi; echo err >&2; exit 3")
	if out != "hi\n" || errs != "err\n" || code != 3 {
		t.Fatalf("got %q %q %d, want \"hi\\n\" \"err\\n\" 3", out, errs, code)
	}
	if out, _, _ := run(t, s, "hello", "/bin/cat"); out != "hello" {
		t.Errorf("cat of stdin: %q", out)
	}
	// The root is the session's to write, and nothing reaches the host.
	name := "cordon-session-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	_, errs, code = run(t, s, "", "/bin/sh", "-c", "echo y > /workspace/f; echo x > /etc/"+name+" && cat /etc/"+name)
	if overlaid && code != 0 || !overlaid && !strings.Contains(errs, "Read-only file system") {
		t.Fatalf("writing /etc in the session (overlay allowed: %v): %d %s", overlaid, code, errs)
	}
	if _, err := os.Stat("/etc/" + name); err == nil {
		os.Remove("/etc/" + name)
		t.Fatalf("a write to /etc in the session reached the host")
	}
	// Something of the host's in a hidden directory below the top.
	hostTmp, err := os.MkdirTemp("/var/tmp", "cordon-session-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(hostTmp)
	out, _, _ = run(t, s, "", "/bin/sh", "-c", "ls -A /home /root /tmp /var/tmp /workspace; cat /etc/shadow | wc -c")
	if strings.Join(strings.Fields(out), " ") != "/home: /root: /tmp: /var/tmp: /workspace: f 0" {
		t.Errorf("hidden directories or masks show something: %q", out)
	}
	// The gateway's port answers; nothing else does.
	ln := cordontest.Serve(t, cordontest.Listen(t, "tcp4", "127.0.0.1:0"))
	port := ln.Addr[strings.LastIndexByte(ln.Addr, ':')+1:]
	if out, errs, _ := run(t, s, "", "/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/3128 && cat <&3"); out != "gateway\n" {
		t.Errorf("the gateway's port inside: %q %s", out, errs)
	}
	run(t, s, "", "/bin/bash", "-c", "echo X > /dev/tcp/127.0.0.1/"+port)
	if got := ln.Knock(t, "M"); len(got) != 1 {
		t.Errorf("the host's 127.0.0.1:%s took %q; only the host's own knock was expected", port, got)
	}
	// The session is root of its namespace; as root's server's session
	// over the host base it owns none of root's files on the host.
	if out, _, _ := run(t, s, "", "/bin/sh", "-c", "id -u"); out != "0\n" {
		t.Errorf("id -u in the session: %q, want 0", out)
	}
	if os.Geteuid() == 0 {
		f, err := os.CreateTemp("/usr/local/share", "cordon-root-only-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(f.Name())
		f.WriteString("root only\n")
		f.Close()
		if out, errs, code := run(t, s, "", "/bin/cat", f.Name()); code == 0 || strings.Contains(out, "root only") {
			t.Errorf("a root-only host file is readable in the session: %q %q", out, errs)
		}
	}
	// A command that does not exist.
	if _, err := s.Exec(SessionExec{Argv: []string{"no-such-command"}, Env: []string{"PATH=/usr/bin:/bin"}}); err == nil {
		t.Errorf("exec of a missing command started")
	} else if e, ok := err.(*Error); !ok || e.Code != ExitNotFound {
		t.Errorf("exec of a missing command: %v, want code 127", err)
	}
	// The session's files are reachable through its root.
	root, err := s.OpenRoot()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	b, err := root.ReadFile("workspace/f")
	if err != nil || string(b) != "y\n" {
		t.Errorf("reading /workspace/f through the root: %q %v", b, err)
	}
}

// makeBase makes a root filesystem directory holding a shell and a few
// tools with their libraries: a base that is not the host.
func makeBase(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile := func(src string) {
		dst := filepath.Join(base, src)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tool := range []string{"/bin/sh", "/bin/cat", "/bin/ls", "/bin/sleep"} {
		real, err := filepath.EvalSymlinks(tool)
		if err != nil {
			t.Skipf("no %s here: %v", tool, err)
		}
		copyFile(real)
		if real != tool {
			copyFile(real) // under its own name
			os.MkdirAll(filepath.Join(base, filepath.Dir(tool)), 0o755)
			os.Symlink(real, filepath.Join(base, tool))
		}
		out, err := exec.Command("ldd", real).Output()
		if err != nil {
			continue // static
		}
		for _, line := range strings.Split(string(out), "\n") {
			for _, f := range strings.Fields(line) {
				if strings.HasPrefix(f, "/") {
					if r, err := filepath.EvalSymlinks(f); err == nil {
						copyFile(r)
						if r != f {
							os.MkdirAll(filepath.Join(base, filepath.Dir(f)), 0o755)
							os.Symlink(r, filepath.Join(base, f))
						}
					}
				}
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(base, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "etc/marker"), []byte("base\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return base
}

func TestSessionDirBase(t *testing.T) {
	base := makeBase(t)
	s, overlaid := startTestSession(t, base)
	out, errs, code := run(t, s, "", "/bin/sh", "-c", "cat /etc/marker; echo changed > /etc/marker; cat /etc/marker; ls /usr/bin /bin")
	if code != 0 {
		t.Fatalf("exec in the base: %d %s", code, errs)
	}
	if !strings.HasPrefix(out, "base\n") || overlaid != strings.Contains(out, "changed\n") {
		t.Errorf("the session does not see its base, or writing over it (overlay allowed: %v) went wrong: %q %s", overlaid, out, errs)
	}
	if b, _ := os.ReadFile(filepath.Join(base, "etc/marker")); string(b) != "base\n" {
		t.Errorf("a write in the session reached the base: %q", b)
	}
	// Only the base's few files: not the host's /usr/bin.
	if strings.Contains(out, "python") || strings.Contains(out, "systemd") {
		t.Errorf("the host shows through the base: %q", out)
	}
}

func TestSessionTTYAndSignal(t *testing.T) {
	s, _ := startTestSession(t, "host")
	p, err := s.Exec(SessionExec{Argv: []string{"/bin/sh", "-c", "tty; stty size; exit 5"}, Env: []string{"PATH=/usr/bin:/bin"}, TTY: true, Rows: 33, Cols: 101})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(p.Stdout) // EIO once the terminal's last user goes
	code, _, err := p.Wait()
	p.Close()
	if err != nil || code != 5 {
		t.Fatalf("tty exec: %d %v", code, err)
	}
	if !strings.Contains(string(out), "/dev/pts/") || !strings.Contains(string(out), "33 101") {
		t.Errorf("tty exec printed %q; want a /dev/pts terminal of 33 rows and 101 columns", out)
	}

	// A signal reaches the exec's whole process group.
	p, err = s.Exec(SessionExec{Argv: []string{"/bin/sh", "-c", "sleep 100 & sleep 100; echo never"}, Env: []string{"PATH=/usr/bin:/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Stdin.Close()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, sig, err := p.Wait()
	if err != nil || sig != syscall.SIGTERM || code != 128+int(syscall.SIGTERM) {
		t.Errorf("after SIGTERM: %d %v %v", code, sig, err)
	}
	// The background sleep got it too: gone once init has reaped it
	// (until then it may show as a zombie).
	var ps string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ps, _, _ = run(t, s, "", "/bin/sh", "-c", "cat /proc/[0-9]*/comm")
		if !strings.Contains(ps, "sleep") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the background sleep outlived the signal to its group: %q", ps)
		}
	}
}

// The session tests again as an unprivileged uid: the test binary re-run
// under it. (When the tests run as that user already, they ran above.)
func TestSessionAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs only as root, to re-run the session tests as another uid; as this uid they ran already")
	}
	cordontest.RequireLandlock(t, LandlockRequiredABI)
	bin := shareTestBinary(t)
	u := cordontest.Users()[1]
	cmd := u.Command(bin, "-test.run=^TestSession(HostBase|DirBase|TTYAndSignal|NeedsCgroup)$", "-test.v", "-test.count=1", "-test.timeout=2m")
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "TMPDIR=/var/tmp")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the session tests as uid %d: %v\n%s", u.UID, err, out)
	}
	if n := strings.Count(string(out), "--- PASS"); n != 4 {
		t.Fatalf("as uid %d, %d session tests passed, want 4:\n%s", u.UID, n, out)
	}
}

// Limits that cannot be enforced stop a session from starting, unless the
// cgroup wall was degraded by name.
func TestSessionNeedsCgroup(t *testing.T) {
	cordontest.RequireUserNS(t)
	if os.Geteuid() == 0 {
		t.Skip("root can make a cgroup leaf here")
	}
	_, err := StartSession(SessionOptions{Base: "host", Limits: policy.Limits{MemoryBytes: 64 << 20}, Degraded: map[policy.Wall]bool{},
		Log: t.Logf, Warn: t.Logf})
	if err == nil || !strings.Contains(err.Error(), "cgroup") {
		t.Fatalf("a session with a memory limit and no cgroup: %v, want a refusal naming the cgroup", err)
	}
}
