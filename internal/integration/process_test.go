package integration

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// cordon run's exit status is the command's own, 128+N for a signal, or
// one of Cordon's: 124 timeout, 125 its own failure, 126 not executable,
// 127 not found.
func TestExitStatus(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		notExec := filepath.Join(b.ws, "not-executable")
		must(t, os.WriteFile(notExec, []byte("#!/bin/sh\necho ran\n"), 0o644))
		b.u.Chown(t, notExec)

		for _, tt := range []struct {
			name       string
			args       []string
			stdin      string
			want       int
			wantStdout string // exact, when not ""
			wantStderr string // a substring, when not ""
		}{
			{name: "success", args: []string{"run", "--", "true"}, want: 0},
			{name: "own status", args: []string{"run", "--", "sh", "-c", "exit 7"}, want: 7},
			{name: "not found", args: []string{"run", "--", "nosuchcmd"}, want: 127,
				wantStderr: "cordon: nosuchcmd: command not found"},
			{name: "not executable", args: []string{"run", "--", "./not-executable"}, want: 126,
				wantStderr: "not-executable: permission denied"},
			{name: "signal", args: []string{"run", "--", "sh", "-c", "kill -TERM $$"}, want: 128 + 15},
			{name: "timeout", args: []string{"run", "--timeout", "1s", "--", "sleep", "30"}, want: 124,
				wantStderr: "timed out"},
			{name: "bad flag value", args: []string{"run", "--memory", "lots", "--", "true"}, want: 125,
				wantStderr: "cordon: --memory lots: "},
			{name: "missing workspace", args: []string{"run", "--workspace", "/nonexistent", "--", "true"}, want: 125,
				wantStderr: "cordon: --workspace /nonexistent: "},
			{name: "stdin pipe", args: []string{"run", "--", "cat"}, stdin: "hi\n", want: 0, wantStdout: "hi\n"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				start := time.Now()
				r := b.cordon(strings.NewReader(tt.stdin), nil, tt.args...)
				if r.code != tt.want {
					t.Errorf("cordon %s: exit %d, want %d\n%s", strings.Join(tt.args, " "), r.code, tt.want, r)
				}
				if tt.wantStdout != "" && r.stdout != tt.wantStdout {
					t.Errorf("cordon %s: stdout %q, want %q", strings.Join(tt.args, " "), r.stdout, tt.wantStdout)
				}
				if tt.wantStderr != "" && !strings.Contains(r.stderr, tt.wantStderr) {
					t.Errorf("cordon %s: stderr %q, want it to contain %q", strings.Join(tt.args, " "), r.stderr, tt.wantStderr)
				}
				// The timeout killed sleep 30, rather than waiting it out.
				if d := time.Since(start); tt.want == 124 && d > 20*time.Second {
					t.Errorf("cordon %s took %v", strings.Join(tt.args, " "), d)
				}
			})
		}
	})
}

// At a terminal, the command gets a pty of the sandbox's own, with the
// size of the user's terminal; its exit status passes through.
func TestTerminalSession(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		out, r := b.onTerminal(&pty.Winsize{Rows: 33, Cols: 77}, true, nil,
			"run", "--", "sh", "-c", "tty; stty size; exit 3")
		if r.code != 3 {
			t.Errorf("exit %d, want 3\nterminal: %q\n%s", r.code, out, r)
		}
		if !regexp.MustCompile(`(?m)^/dev/pts/\d+\r?$`).MatchString(out) {
			t.Errorf("tty printed %q, want a /dev/pts/N path", out)
		}
		if !regexp.MustCompile(`(?m)^33 77\r?$`).MatchString(out) {
			t.Errorf("stty size printed %q, want 33 77", out)
		}
	})
}

// A signal sent to cordon reaches the command, which may handle it; the
// status is then the command's own.
func TestSignalForwarded(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		cmd := b.u.Command(cordonBin, "run", "--", "sh", "-c",
			`trap "echo got-term; exit 42" TERM; echo ready; while :; do sleep 0.1; done`)
		cmd.Dir, cmd.Env = b.ws, b.env
		stdout, err := cmd.StdoutPipe()
		must(t, err)
		var stderr lockedBuffer
		cmd.Stderr = &stderr
		must(t, cmd.Start())
		done := make(chan error, 1)
		lines := make(chan string, 16)
		go func() {
			s := bufio.NewScanner(stdout)
			for s.Scan() {
				lines <- s.Text()
			}
			close(lines)
			done <- cmd.Wait()
		}()
		t.Cleanup(func() {
			cmd.Process.Kill()
			for range lines {
			}
			<-done
		})

		if !waitLine(lines, "ready", 30*time.Second) {
			t.Fatalf("the command never said ready\nstderr: %s", stderr.String())
		}
		must(t, unix.Kill(cmd.Process.Pid, unix.SIGTERM))
		if !waitLine(lines, "got-term", 10*time.Second) {
			t.Errorf("the command's trap did not run\nstderr: %s", stderr.String())
		}
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 42 {
				t.Errorf("cordon ended with %v, want exit status 42\nstderr: %s", err, stderr.String())
			}
			done <- err // for the cleanup
		case <-time.After(10 * time.Second):
			t.Errorf("cordon did not exit after SIGTERM")
		}
	})
}

// waitLine reads lines until want, the end, or the timeout.
func waitLine(lines <-chan string, want string, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return false
			}
			if l == want {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// When cordon itself is killed (SIGKILL: nothing of it runs after), the
// sandbox dies with it, and its cleanup helper removes what the run made
// on the host: the cgroup leaf and the placeholders in the workspace.
func TestKilledSupervisor(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		git := b.u.Command("git", "init", "-q", b.ws)
		git.Env = b.env
		if out, err := git.CombinedOutput(); err != nil {
			t.Skipf("git init: %v %s", err, out)
		}
		wsBefore := listDir(t, b.ws)
		gitBefore := listDir(t, filepath.Join(b.ws, ".git"))

		cmd := b.u.Command(cordonBin, "run", "--", "sh", "-c", "touch started; exec sleep 300")
		cmd.Dir, cmd.Env = b.ws, b.env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		must(t, cmd.Start())
		cordonPid := cmd.Process.Pid
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var tree []proc
		t.Cleanup(func() {
			// Only if the test failed half way: these are ours.
			cmd.Process.Kill()
			<-done
			for _, p := range tree {
				if p.alive() {
					unix.Kill(p.pid, unix.SIGKILL)
				}
			}
		})

		// Wait for the command, then take down the tree from cordon:
		// init, its descendants, and the cleanup helper.
		poll(t, 30*time.Second, "the sandbox to start", func() bool {
			_, err := os.Stat(filepath.Join(b.ws, "started"))
			return err == nil
		})
		var initProc proc
		poll(t, 10*time.Second, "sleep 300 to run in the sandbox", func() bool {
			tree = descendants(cordonPid)
			initProc = proc{}
			sleeping := false
			for _, p := range tree {
				switch p.argv {
				case "cordon-init":
					initProc = p
				case "sleep 300":
					sleeping = true
				}
			}
			return initProc.pid != 0 && sleeping
		})
		if len(cgroupsOf(cordonPid)) == 0 {
			t.Logf("no cgroup leaf for this run: none to check for after")
		}
		// Positive control: the placeholders are there while it runs.
		for _, name := range []string{".envrc", ".vscode", ".mcp.json"} {
			if _, err := os.Lstat(filepath.Join(b.ws, name)); err != nil {
				t.Errorf("placeholder %s missing during the run: %v", name, err)
			}
		}

		must(t, unix.Kill(cordonPid, unix.SIGKILL))
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != unix.SIGKILL {
				t.Errorf("cordon ended with %v, want killed by SIGKILL", err)
			}
			done <- err // for the cleanup
		case <-time.After(10 * time.Second):
			t.Fatalf("cordon did not die of SIGKILL")
		}

		// The kernel and the helper take a moment.
		var left []string
		deadline := time.Now().Add(10 * time.Second)
		for {
			left = nil
			for _, p := range tree {
				if p.alive() {
					left = append(left, fmt.Sprintf("%d %s", p.pid, p.argv))
				}
			}
			left = append(left, cgroupsOf(cordonPid)...)
			if ws := listDir(t, b.ws); !slices.Equal(sorted(ws), sorted(append(slices.Clone(wsBefore), "started"))) {
				left = append(left, fmt.Sprintf("workspace holds %q, want %q and started", ws, wsBefore))
			}
			if g := listDir(t, filepath.Join(b.ws, ".git")); !slices.Equal(g, gitBefore) {
				left = append(left, fmt.Sprintf(".git holds %q, want %q", g, gitBefore))
			}
			if len(left) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, l := range left {
			t.Errorf("left 10s after cordon was killed: %s", l)
		}
		if len(left) > 0 {
			t.Logf("cordon's stderr: %s", stderr.String())
		}
	})
}

// proc is a process found in /proc, with its start time so that a reused
// pid is not taken for it.
type proc struct {
	pid   int
	start string
	argv  string // the command line, space-separated
}

// alive reports whether p still runs: not gone, not a zombie, not reused.
func (p proc) alive() bool {
	state, start, err := statOf(p.pid)
	return err == nil && start == p.start && state != "Z" && state != "X"
}

// statOf returns a process's state and start time from /proc/PID/stat.
func statOf(pid int) (state, start string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", "", err
	}
	// The command name, in parentheses, may hold anything: the fields
	// are counted after its last ")".
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b)[i+1:])
	if len(f) < 20 {
		return "", "", fmt.Errorf("short /proc/%d/stat", pid)
	}
	return f[0], f[19], nil // fields 3 and 22
}

// descendants lists the processes below pid. A child is listed under the
// thread that forked it, so every thread's children are read.
func descendants(pid int) []proc {
	var out []proc
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			n, err := strconv.Atoi(c)
			if err != nil {
				continue
			}
			_, start, err := statOf(n)
			if err != nil {
				continue
			}
			cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n))
			out = append(out, proc{pid: n, start: start, argv: strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " "))})
			out = append(out, descendants(n)...)
		}
	}
	return out
}

// cgroupsOf lists the cgroup leaves of the run cordon pid started.
func cgroupsOf(pid int) []string {
	var dirs []string
	for _, pat := range []string{"/sys/fs/cgroup/*/cordon/cordon-%d-*", "/sys/fs/cgroup/cordon/cordon-%d-*"} {
		m, _ := filepath.Glob(fmt.Sprintf(pat, pid))
		dirs = append(dirs, m...)
	}
	return dirs
}

func poll(t *testing.T, timeout time.Duration, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !f(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// Resource limits hold: --pids caps the processes (a cgroup, or
// RLIMIT_NPROC without one), --memory caps memory (a cgroup; without one
// only with --allow-degraded cgroup, as RLIMIT_DATA).
func TestLimits(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		started := func(r result) int {
			t.Helper()
			m := regexp.MustCompile(`(?m)^started (\d+)$`).FindStringSubmatch(r.stdout)
			if m == nil {
				t.Fatalf("the fork probe printed no count\n%s", r)
			}
			return atoi(m[1])
		}
		r := b.run([]string{"-v"}, "true")
		leaf := regexp.MustCompile(`cgroup v\d leaf`).MatchString(r.stderr)
		t.Logf("cgroup leaf for this user: %v", leaf)
		pids := []string{"--pids", "100"}
		mem := []string{"--memory", "256M"}
		if !leaf {
			// Asked for explicitly, a limit the cgroup cannot hold
			// stops the run, unless rlimits are allowed instead.
			for _, flags := range [][]string{pids, mem} {
				r := b.probe(flags, "alloc", "1")
				if r.code != 125 || !strings.Contains(r.stderr, "cgroup") {
					t.Errorf("%v without a cgroup: exit %d, want 125 and a message naming cgroup\n%s", flags, r.code, r)
				}
				if strings.Contains(r.stdout, "ok allocated") {
					t.Errorf("%v without a cgroup ran the command\n%s", flags, r)
				}
			}
			pids = append(pids, "--allow-degraded", "cgroup")
			mem = append(mem, "--allow-degraded", "cgroup")
		}

		// Positive control: well under the limit, all start.
		if r := b.probe(pids, "fork", "20"); started(r) != 20 {
			t.Errorf("fork 20 with %v started %d, want 20\n%s", pids, started(r), r)
		}
		if r := b.probe(pids, "fork", "2000"); started(r) >= 100 {
			t.Errorf("fork 2000 with %v started %d, want fewer than 100\n%s", pids, started(r), r)
		}

		// Memory: never more than 2 GiB is asked for, even if a limit
		// fails to hold. Positive control: an allocation well under it.
		if !leaf && raceBuild() {
			t.Log("not testing RLIMIT_DATA: the race detector's shadow memory does not fit under it; the pure-Go run tests it")
			return
		}
		r = b.probe(mem, "alloc", "64")
		if r.code != 0 || !strings.Contains(r.stdout, "ok allocated 64") {
			t.Errorf("alloc 64 with %v: exit %d, want 0 and ok\n%s", mem, r.code, r)
		}
		r = b.probe(mem, "alloc", "2048")
		if strings.Contains(r.stdout, "ok allocated") {
			t.Errorf("alloc 2048 with %v succeeded\n%s", mem, r)
		}
		if leaf {
			// The kernel's OOM killer.
			if r.code != 128+9 {
				t.Errorf("alloc 2048 with %v: exit %d, want 137 (SIGKILL)\n%s", mem, r.code, r)
			}
		} else if r.code == 0 || r.code == 125 || !strings.Contains(r.stderr, "fatal error") {
			// RLIMIT_DATA: the Go runtime finds no memory and dies.
			t.Errorf("alloc 2048 with %v: exit %d, want the Go runtime's fatal error\n%s", mem, r.code, r)
		}
	})
}

// raceBuild reports whether this binary, and so the probe, was built with
// the race detector.
func raceBuild() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// lockedBuffer is a bytes.Buffer that a test may read while a command
// still writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Descriptors the caller of cordon left open (without close-on-exec) do
// not reach the command: one open for writing on a file outside the
// workspace would be a way through every wall.
func TestInheritedDescriptorsClosed(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		outside := filepath.Join(b.base, "outside-fd")
		must(t, os.WriteFile(outside, []byte("host\n"), 0o666))
		f, err := os.OpenFile(outside, os.O_WRONLY|os.O_APPEND, 0)
		must(t, err)
		defer f.Close()
		cmd := b.u.Command(cordonBin, "run", "--", "sh", "-c", `ls /proc/$$/fd | tr '\n' ' '; echo evil >&7`)
		cmd.Dir = b.ws
		cmd.Env = b.env
		// fds 3 to 8 in cordon: the high ones are none of its own.
		cmd.ExtraFiles = []*os.File{f, f, f, f, f, f}
		out, _ := cmd.Output()
		if got := strings.TrimSpace(string(out)); got != "0 1 2" {
			t.Errorf("descriptors inside = %q, want 0 1 2", got)
		}
		if got := readFile(t, outside); got != "host\n" {
			t.Errorf("the file outside was written through an inherited descriptor: %q", got)
		}
	})
}
