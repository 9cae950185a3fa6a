package sandbox

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

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

// startTestSession starts a session over base, destroyed when the test ends.
func startTestSession(t *testing.T, base string) *Session {
	t.Helper()
	cordontest.RequireUserNS(t)
	cordontest.RequireLandlock(t, LandlockRequiredABI)
	logf := func(format string, args ...any) { t.Logf(format, args...) }
	s, err := StartSession(SessionOptions{
		Base:      base,
		DiskBytes: 64 << 20,
		Hide:      []string{"/home", "/root", "/run", "/tmp", "/var/tmp", "/mnt", "/media"},
		Masks:     []policy.Entry{{Path: "/etc/shadow", Kind: policy.File}},
		Limits:    policy.Limits{Pids: 256, MemoryBytes: 256 << 20},
		Degraded:  map[policy.Wall]bool{},
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
	return s
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
	s := startTestSession(t, "host")
	out, errs, code := run(t, s, "", "/bin/sh", "-c", "echo hi; echo err >&2; exit 3")
	if out != "hi\n" || errs != "err\n" || code != 3 {
		t.Fatalf("got %q %q %d, want \"hi\\n\" \"err\\n\" 3", out, errs, code)
	}
	if out, _, _ := run(t, s, "hello", "/bin/cat"); out != "hello" {
		t.Errorf("cat of stdin: %q", out)
	}
	// The root is the session's to write, and nothing reaches the host.
	name := "cordon-session-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	_, errs, code = run(t, s, "", "/bin/sh", "-c", "echo x > /etc/"+name+" && echo y > /workspace/f && cat /etc/"+name)
	if code != 0 {
		t.Fatalf("writing in the session: %d %s", code, errs)
	}
	if _, err := os.Stat("/etc/" + name); err == nil {
		os.Remove("/etc/" + name)
		t.Fatalf("a write to /etc in the session reached the host")
	}
	out, _, _ = run(t, s, "", "/bin/sh", "-c", "ls -A /home /root /tmp; cat /etc/shadow | wc -c")
	if strings.Join(strings.Fields(out), " ") != "/home: /root: /tmp: 0" {
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
	// A command that does not exist.
	if _, err := s.Exec(SessionExec{Argv: []string{"no-such-command"}, Env: []string{"PATH=/usr/bin:/bin"}}); err == nil {
		t.Errorf("exec of a missing command started")
	} else if e, ok := err.(*Error); !ok || e.Code != ExitNotFound {
		t.Errorf("exec of a missing command: %v, want code 127", err)
	}
	// The session's files are reachable through its root.
	root, err := os.OpenRoot(s.RootPath())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	b, err := root.ReadFile("workspace/f")
	if err != nil || string(b) != "y\n" {
		t.Errorf("reading /workspace/f through the root: %q %v", b, err)
	}
}
