package sandbox

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/cordontest"
)

// lockChildEnv marks this test binary re-executed to lock itself: Landlock
// and dropped capabilities are for the whole process and for good. Its
// value names what the child does.
const lockChildEnv = "CORDON_LOCK_TEST_CHILD"

// Landlock is a wall on its own, without the mount namespace: after
// restrictLandlock, a directory that permissions let us write is refused,
// the workspace is not, and TCP connections, signals and abstract unix
// sockets to the outside are refused.
func TestLandlockAlone(t *testing.T) {
	if os.Getenv(lockChildEnv) == "landlock" {
		landlockChild(t)
		return
	}
	cordontest.RequireLandlock(t, LandlockRequiredABI)
	bin := shareTestBinary(t)
	for _, u := range cordontest.Users() {
		t.Run(u.Name, func(t *testing.T) {
			// Not under /tmp, which the ruleset makes writable.
			base, err := os.MkdirTemp("/var/tmp", "cordon-lock-test-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(base) })
			fatalIf(t, os.Chmod(base, 0o755))
			ws, outside := filepath.Join(base, "ws"), filepath.Join(base, "outside")
			fatalIf(t, os.Mkdir(ws, 0o755))
			fatalIf(t, os.Mkdir(outside, 0o755))
			u.Chown(t, ws, outside)

			tcp := cordontest.Serve(t, cordontest.Listen(t, "tcp4", "127.0.0.1:0"))
			abstract := cordontest.Serve(t, cordontest.Listen(t, "unix", "@cordon-lock-test-"+strings.ToLower(rand.Text()[:12])))
			// A host socket in a directory no mask covers.
			pathSock := cordontest.Serve(t, cordontest.Listen(t, "unix", filepath.Join(outside, "agent.sock")))
			fatalIf(t, os.Chmod(pathSock.Addr, 0o777))
			// A process of the same user outside: SIGUSR1 would end it.
			target := u.Command("/bin/sleep", "300")
			fatalIf(t, target.Start())
			exited := make(chan struct{})
			go func() { target.Wait(); close(exited) }()
			t.Cleanup(func() {
				target.Process.Kill()
				<-exited
			})

			out := runLockChild(t, u, bin, base, "TestLandlockAlone", "landlock",
				"LOCK_WS="+ws, "LOCK_OUTSIDE="+outside, "LOCK_TCP="+tcp.Addr,
				"LOCK_ABSTRACT="+abstract.Addr, "LOCK_UNIX="+pathSock.Addr, fmt.Sprintf("LOCK_TARGET=%d", target.Process.Pid))
			if !strings.Contains(out, "landlock child done") {
				t.Fatalf("the child did not run its checks:\n%s", out)
			}

			// The child connected once before it was locked ("C"), and
			// not after: a connection would come before the sentinel.
			listeners := []*cordontest.Listener{tcp, abstract}
			if LandlockABI() >= unixSocketABI {
				listeners = append(listeners, pathSock)
			}
			for _, l := range listeners {
				if got := l.Knock(t, "S"); !slices.Equal(got, []string{"C", "S"}) {
					t.Errorf("%s accepted %q, want [C S]", l.Addr, got)
				}
			}
			select {
			case <-exited:
				t.Errorf("the process outside died: the child's SIGUSR1 reached it")
			default:
			}
			if _, err := os.Stat(filepath.Join(outside, "after")); err == nil {
				t.Errorf("the child wrote %s after it was locked", filepath.Join(outside, "after"))
			}
		})
	}
}

func landlockChild(t *testing.T) {
	ws, outside := os.Getenv("LOCK_WS"), os.Getenv("LOCK_OUTSIDE")
	var target int
	fmt.Sscan(os.Getenv("LOCK_TARGET"), &target)
	dial := func(network, addr string) error {
		c, err := net.DialTimeout(network, addr, 2*time.Second)
		if err == nil {
			c.Write([]byte("C"))
			c.Close()
		}
		return err
	}
	write := func(path string) func() error {
		return func() error { return os.WriteFile(path, nil, 0o644) }
	}
	type attempt struct {
		name string
		try  func() error
		want error
	}
	// Before: everything works, so a refusal after is Landlock's. The
	// signal is signal 0, which does not end the target.
	for _, a := range []attempt{
		{"write in the workspace", write(filepath.Join(ws, "before")), nil},
		{"write outside", write(filepath.Join(outside, "before")), nil},
		{"connect TCP", func() error { return dial("tcp4", os.Getenv("LOCK_TCP")) }, nil},
		{"connect abstract", func() error { return dial("unix", os.Getenv("LOCK_ABSTRACT")) }, nil},
		{"signal outside", func() error { return unix.Kill(target, 0) }, nil},
		{"connect a unix socket outside", func() error { return dial("unix", os.Getenv("LOCK_UNIX")) }, nil},
	} {
		if err := a.try(); err != nil {
			t.Fatalf("before Landlock: %s = %v, want nil", a.name, err)
		}
	}

	var wantUnix error
	if LandlockABI() >= unixSocketABI {
		wantUnix = unix.EACCES
	}
	if err := restrictLandlock(&Plan{Workspace: ws, Landlock: Required}); err != nil {
		t.Fatalf("restrictLandlock: %v", err)
	}

	for _, a := range []attempt{
		{"write in the workspace", write(filepath.Join(ws, "after")), nil},
		{"write outside", write(filepath.Join(outside, "after")), unix.EACCES},
		{"connect TCP", func() error { return dial("tcp4", os.Getenv("LOCK_TCP")) }, unix.EACCES},
		{"connect abstract", func() error { return dial("unix", os.Getenv("LOCK_ABSTRACT")) }, unix.EPERM},
		{"signal outside", func() error { return unix.Kill(target, unix.SIGUSR1) }, unix.EPERM},
		// Below ABI 9 Landlock cannot refuse it: the gap is known and
		// documented, and this checks it is still what we think.
		{"connect a unix socket outside", func() error { return dial("unix", os.Getenv("LOCK_UNIX")) }, wantUnix},
	} {
		if err := a.try(); !errors.Is(err, a.want) {
			t.Errorf("locked: %s = %v, want %v", a.name, err, a.want)
		}
	}
	fmt.Println("landlock child done")
}

// dropCapabilities leaves no capability in any set, and none comes back at
// execve, though the uid stays 0. As in Init, the caller is locked to the
// thread that forks the command: the bounding set and the securebits are
// dropped on that thread only, the capability sets on every thread.
func TestDropCapabilities(t *testing.T) {
	if os.Getenv(lockChildEnv) == "caps" {
		capsChild(t)
		return
	}
	cordontest.RequireRoot(t)
	root := cordontest.User{Name: "root"}
	out := runLockChild(t, root, os.Args[0], "", "TestDropCapabilities", "caps")
	if !strings.Contains(out, "caps child done") {
		t.Fatalf("the child did not run its checks:\n%s", out)
	}
}

var capSets = []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}

func capsChild(t *testing.T) {
	runtime.LockOSThread()
	before := statusFields(t, readText(t, "/proc/thread-self/status"))
	if before["CapEff"] == "0000000000000000" || before["CapBnd"] == "0000000000000000" {
		t.Fatalf("before: CapEff %s, CapBnd %s: nothing to drop", before["CapEff"], before["CapBnd"])
	}

	if err := dropCapabilities(); err != nil {
		t.Fatalf("dropCapabilities: %v", err)
	}

	checkNoCaps(t, "/proc/thread-self/status", capSets, statusFields(t, readText(t, "/proc/thread-self/status")))
	tasks, _ := filepath.Glob("/proc/self/task/*/status")
	for _, f := range tasks {
		checkNoCaps(t, f, []string{"CapInh", "CapPrm", "CapEff", "CapAmb"}, statusFields(t, readText(t, f)))
	}
	// Forked from this thread, as Init forks the command.
	out, err := exec.Command("/bin/sh", "-c", "cat /proc/self/status").Output()
	if err != nil {
		t.Fatalf("sh -c 'cat /proc/self/status': %v", err)
	}
	after := statusFields(t, string(out))
	checkNoCaps(t, "cat's /proc/self/status", capSets, after)
	if uid := strings.Fields(after["Uid"]); len(uid) < 2 || uid[1] != "0" {
		t.Errorf("cat's Uid = %q, want effective uid 0 (root without capabilities)", after["Uid"])
	}
	fmt.Println("caps child done")
}

func checkNoCaps(t *testing.T, where string, sets []string, status map[string]string) {
	t.Helper()
	for _, set := range sets {
		if got := status[set]; got != "0000000000000000" {
			t.Errorf("%s: %s = %q, want 0000000000000000", where, set, got)
		}
	}
}

func statusFields(t *testing.T, s string) map[string]string {
	t.Helper()
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// runChild re-executes bin as u to run only test, as the child named
// what, and returns its output. A failing child fails the test.
func runLockChild(t *testing.T, u cordontest.User, bin, dir, test, what string, env ...string) string {
	t.Helper()
	cmd := u.Command(bin, "-test.run=^"+test+"$", "-test.v", "-test.count=1", "-test.timeout=2m")
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), lockChildEnv+"="+what), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("child %s: %v\n%s", what, err, out)
	}
	return string(out)
}

// shareTestBinary copies this test binary where an unprivileged uid can
// run it (go test builds it in a private directory).
func shareTestBinary(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		return os.Args[0]
	}
	dir, err := os.MkdirTemp("/var/tmp", "cordon-lock-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	fatalIf(t, os.Chmod(dir, 0o755))
	bin := filepath.Join(dir, "sandbox.test")
	in, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	fatalIf(t, out.Close())
	return bin
}

// lockListener accepts connections and records the first byte each sent.
func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fatalIf(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
