package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
)

// helperEnv makes the test binary act as a child process for the tests.
const helperEnv = "CORDON_CGROUP_TEST_HELPER"

// testPrefix starts the name of every leaf the tests make, so that the leak
// check finds ours and not those of other Cordon processes on the host.
var testPrefix = fmt.Sprintf("cordon-test-%d-", os.Getpid())

func TestMain(m *testing.M) {
	if mib, ok := strings.CutPrefix(os.Getenv(helperEnv), "alloc="); ok {
		n, err := strconv.Atoi(mib)
		if err != nil {
			os.Exit(2)
		}
		allocHelper(n << 20)
		return
	}
	code := m.Run()
	if leaks := leakedDirs(); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "cgroup directories left behind: %v\n", leaks)
		code = 1
	}
	os.Exit(code)
}

// allocHelper waits for a byte on stdin (sent once it is in the leaf), then
// allocates and touches size bytes.
func allocHelper(size int) {
	var b [1]byte
	if _, err := os.Stdin.Read(b[:]); err != nil {
		os.Exit(3)
	}
	mem := make([]byte, size)
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 1
	}
	fmt.Println("allocated", len(mem))
}

// leakedDirs finds leaves and probe directories made by this test process.
func leakedDirs() []string {
	h, _ := detect()
	bases := []string{h.V2Mount, h.V2Base}
	for _, m := range h.V1Mounts {
		bases = append(bases, m)
	}
	var out []string
	for _, b := range bases {
		if b == "" {
			continue
		}
		for _, pat := range []string{
			filepath.Join(b, parentName, testPrefix+"*"),
			filepath.Join(b, fmt.Sprintf("cordon-probe-%d-*", os.Getpid())),
		} {
			m, _ := filepath.Glob(pat)
			out = append(out, m...)
		}
	}
	return out
}

// requireLeaf skips the test when this user cannot create a leaf here.
func requireLeaf(t *testing.T) {
	t.Helper()
	if r := Probe(); !r.Writable {
		t.Skipf("cannot create a cgroup leaf here (needs root, or a delegated cgroup v2 subtree): %s", r.Reason)
	}
}

func leafName() string { return testPrefix + randomHex() }

// newLeaf creates a leaf that is removed, and checked gone, at cleanup.
func newLeaf(t *testing.T, l Limits) *Leaf {
	t.Helper()
	requireLeaf(t)
	leaf, err := Create(leafName(), l)
	if err != nil {
		t.Fatalf("Create(%+v) = %v", l, err)
	}
	t.Cleanup(func() {
		if err := leaf.Remove(); err != nil {
			t.Errorf("Remove() = %v", err)
		}
		checkGone(t, leaf.Dirs())
	})
	return leaf
}

func checkGone(t *testing.T, dirs []string) {
	t.Helper()
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cgroup %s still there after removal (stat: %v)", d, err)
		}
	}
}

// startInLeaf starts cmd, moves it into leaf and only then lets it run
// past its first read of stdin. The process is killed (by pid) and reaped
// at cleanup if the test has not waited for it.
func startInLeaf(t *testing.T, leaf *Leaf, cmd *exec.Cmd) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	reap := func() {
		once.Do(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
	}
	t.Cleanup(reap)
	if err := leaf.Add(cmd.Process.Pid); err != nil {
		t.Fatalf("Add(%d) = %v", cmd.Process.Pid, err)
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
}

// pin opens pidfds for pids, so that the test can later tell whether
// exactly those processes have exited, whatever happens to the numbers.
func pin(t *testing.T, pids []int) []int {
	t.Helper()
	var fds []int
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			t.Fatalf("PidfdOpen(%d) = %v", pid, err)
		}
		fds = append(fds, fd)
	}
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	return fds
}

// waitExited fails the test unless every pinned process exits in time.
func waitExited(t *testing.T, fds []int, timeout time.Duration) {
	t.Helper()
	end := time.Now().Add(timeout)
	for _, fd := range fds {
		for {
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(p, 10)
			if err != nil && !errors.Is(err, unix.EINTR) {
				t.Fatalf("poll(pidfd) = %v", err)
			}
			if n == 1 {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("a process of the leaf is still alive after %v", timeout)
			}
		}
	}
}

func leafPids(t *testing.T, leaf *Leaf) []int {
	t.Helper()
	pids, err := treePids(leaf.Dirs()[0])
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// waitPids waits until the leaf holds n processes.
func waitPids(t *testing.T, leaf *Leaf, n int) []int {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for {
		pids := leafPids(t, leaf)
		if len(pids) == n {
			return pids
		}
		if time.Now().After(end) {
			t.Fatalf("leaf holds %d processes, want %d", len(pids), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readLimit reads file from whichever leaf directory has it.
func readLimit(t *testing.T, leaf *Leaf, file string) (string, bool) {
	t.Helper()
	for _, d := range leaf.Dirs() {
		b, err := os.ReadFile(filepath.Join(d, file))
		if err == nil {
			return strings.TrimSpace(string(b)), true
		}
	}
	return "", false
}

func TestPidsLimit(t *testing.T) {
	leaf := newLeaf(t, Limits{Pids: 50})
	errFile, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	cmd := exec.Command("/bin/sh", "-c", `read x; for i in $(seq 200); do sleep 30 & done; echo started`)
	cmd.Stderr = errFile
	startInLeaf(t, leaf, cmd)

	// dash gives up at the first failed fork, bash keeps retrying: wait for
	// the complaint rather than for the shell.
	most := 0
	end := time.Now().Add(10 * time.Second)
	for {
		most = max(most, len(leafPids(t, leaf)))
		b, _ := os.ReadFile(errFile.Name())
		if strings.Contains(strings.ToLower(string(b)), "fork") {
			t.Logf("shell said: %s", strings.TrimSpace(string(b)))
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no fork error from the shell after 10s (most processes seen: %d, stderr %q)", most, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pids := leafPids(t, leaf)
	most = max(most, len(pids))
	if most > 50 {
		t.Errorf("leaf held %d processes, want at most 50", most)
	}
	if most < 40 {
		t.Errorf("leaf held at most %d processes; the fork error came before the limit of 50", most)
	}
	fds := pin(t, pids)

	if err := leaf.Remove(); err != nil {
		t.Fatalf("Remove() = %v", err)
	}
	checkGone(t, leaf.Dirs())
	waitExited(t, fds, 2*time.Second)
}

func TestMemoryLimit(t *testing.T) {
	leaf := newLeaf(t, Limits{MemoryBytes: 64 << 20})
	if leaf.OOMKilled() {
		t.Fatal("OOMKilled() = true before anything ran")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=alloc=256")
	startInLeaf(t, leaf, cmd)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child allocating 256 MiB under a 64 MiB limit: Wait() = %v, want killed by SIGKILL", err)
	}
	if !leaf.OOMKilled() {
		t.Error("OOMKilled() = false after the OOM kill")
	}
	if err := leaf.Remove(); err != nil {
		t.Fatalf("Remove() = %v", err)
	}
	if !leaf.OOMKilled() {
		t.Error("OOMKilled() = false after Remove, want the answer from before")
	}
}

func TestMemoryUnderLimit(t *testing.T) {
	// Generous: under -race the helper's shadow memory counts too.
	leaf := newLeaf(t, Limits{MemoryBytes: 512 << 20})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=alloc=32")
	startInLeaf(t, leaf, cmd)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child allocating 32 MiB under a 512 MiB limit: Wait() = %v (OOMKilled() = %v)", err, leaf.OOMKilled())
	}
	if leaf.OOMKilled() {
		t.Error("OOMKilled() = true, but nothing was killed")
	}
}

func TestLimitFiles(t *testing.T) {
	requireLeaf(t)
	tests := []struct {
		name string
		l    Limits
		v1   map[string]string // file -> content on v1
		v2   map[string]string // file -> content on v2
	}{
		{
			name: "cpu 1.5",
			l:    Limits{CPUs: 1.5},
			v1:   map[string]string{"cpu.cfs_quota_us": "150000", "cpu.cfs_period_us": "100000"},
			v2:   map[string]string{"cpu.max": "150000 100000"},
		},
		{
			name: "cpu 0.25",
			l:    Limits{CPUs: 0.25},
			v1:   map[string]string{"cpu.cfs_quota_us": "25000", "cpu.cfs_period_us": "100000"},
			v2:   map[string]string{"cpu.max": "25000 100000"},
		},
		{
			name: "memory and pids",
			l:    Limits{MemoryBytes: 64 << 20, Pids: 50},
			v1:   map[string]string{"memory.limit_in_bytes": "67108864", "pids.max": "50"},
			v2:   map[string]string{"memory.max": "67108864", "pids.max": "50"},
		},
		{
			name: "no limits",
			l:    Limits{},
			v1:   map[string]string{"cpu.cfs_quota_us": "-1", "pids.max": "max"},
			v2:   map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := newLeaf(t, tt.l)
			want := tt.v2
			if leaf.Version() == 1 {
				want = tt.v1
			}
			for file, w := range want {
				if got, ok := readLimit(t, leaf, file); !ok || got != w {
					t.Errorf("%s = %q (found %v), want %q", file, got, ok, w)
				}
			}
			// Swap must not let the sandbox go over its memory limit.
			if tt.l.MemoryBytes > 0 {
				file, w := "memory.memsw.limit_in_bytes", "67108864"
				if leaf.Version() == 2 {
					file, w = "memory.swap.max", "0"
				}
				if got, ok := readLimit(t, leaf, file); ok && got != w {
					t.Errorf("%s = %q, want %q", file, got, w)
				}
			}
		})
	}
}

func TestKill(t *testing.T) {
	leaf := newLeaf(t, Limits{})
	cmd := exec.Command("/bin/sh", "-c", `read x; sleep 30 & sleep 30 & sleep 30 & wait`)
	startInLeaf(t, leaf, cmd)
	fds := pin(t, waitPids(t, leaf, 4))

	if err := leaf.Kill(); err != nil {
		t.Fatalf("Kill() = %v", err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("shell in the leaf: Wait() = %v, want killed by SIGKILL", err)
	}
	waitExited(t, fds, 2*time.Second)
	waitPids(t, leaf, 0)
}

func TestRemoveDirs(t *testing.T) {
	leaf := newLeaf(t, Limits{Pids: 20})
	cmd := exec.Command("/bin/sh", "-c", `read x; sleep 30 & sleep 30 & wait`)
	startInLeaf(t, leaf, cmd)
	fds := pin(t, waitPids(t, leaf, 3))

	// As Cordon's cleanup helper would, from nothing but the list.
	if err := RemoveDirs(leaf.Dirs()); err != nil {
		t.Fatalf("RemoveDirs(%q) = %v", leaf.Dirs(), err)
	}
	checkGone(t, leaf.Dirs())
	waitExited(t, fds, 2*time.Second)
	if err := RemoveDirs(leaf.Dirs()); err != nil {
		t.Errorf("RemoveDirs(%q) again = %v, want nil", leaf.Dirs(), err)
	}
}

func TestRemoveDirsRefuses(t *testing.T) {
	// A directory that looks like a leaf, listing a process of ours: if the
	// check failed, the worst outcome is that our own sleep dies.
	sleep := startSleep(t)
	fake := filepath.Join(t.TempDir(), parentName, "leaf")
	if err := os.MkdirAll(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fake, "cgroup.procs"), []byte(strconv.Itoa(sleep.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, _ := detect()
	var mount string
	for _, m := range []string{h.V1Mounts["pids"], h.V2Mount} {
		if m != "" {
			mount = m
		}
	}

	tests := []struct {
		name string
		dirs []string
		skip bool
	}{
		{name: "relative", dirs: []string{"cordon/leaf"}},
		{name: "unclean", dirs: []string{"/sys/fs/cgroup/x/cordon/../cordon/leaf"}},
		{name: "parent not cordon", dirs: []string{"/sys/fs/cgroup/pids/leaf"}},
		{name: "not a cgroup filesystem", dirs: []string{fake}},
		{name: "hierarchy root", dirs: []string{mount}, skip: mount == ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skip("no cgroup mount")
			}
			// checkLeafDir first, so that a bug cannot reach the kill loop
			// with a hierarchy root.
			for _, d := range tt.dirs {
				if err := checkLeafDir(d); err == nil {
					t.Fatalf("checkLeafDir(%q) = nil, want error", d)
				}
			}
			if err := RemoveDirs(tt.dirs); err == nil {
				t.Errorf("RemoveDirs(%q) = nil, want error", tt.dirs)
			}
		})
	}
	if err := sleep.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("our sleep did not survive RemoveDirs on a fake leaf: %v", err)
	}
	if _, err := os.Stat(fake); err != nil {
		t.Errorf("fake leaf removed: %v", err)
	}
}

func TestConcurrentCreateRemove(t *testing.T) {
	requireLeaf(t)
	// Leaves come and go in the shared cordon/ directory, which each Remove
	// tries to take away: Create must win its races with those rmdirs.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 8 {
		wg.Go(func() {
			for range 5 {
				leaf, err := Create(leafName(), Limits{Pids: 20})
				if err != nil {
					errs <- fmt.Errorf("Create: %w", err)
					return
				}
				if err := leaf.Remove(); err != nil {
					errs <- fmt.Errorf("Remove: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAddUnknownProcess(t *testing.T) {
	leaf := newLeaf(t, Limits{})
	// Above pid_max's default ceiling (2^22), so never a real process.
	if err := leaf.Add(1 << 23); err == nil {
		t.Error("Add(1<<23) = nil, want error")
	}
}

func TestUnenforceableLimit(t *testing.T) {
	// The controller checks come before any directory is made, so a host
	// without controllers is easy to fake.
	h := host{layout: layout{V2Base: "/nonexistent", V1Mounts: map[string]string{}}, v2Avail: map[string]bool{"pids": true}}
	tests := []struct {
		name    string
		version int
		l       Limits
	}{
		{"v2 memory", 2, Limits{MemoryBytes: 1 << 20, Pids: 10}},
		{"v2 cpu", 2, Limits{CPUs: 1}},
		{"v1 pids", 1, Limits{Pids: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.version == 2 {
				_, err = createV2(h, "x", tt.l)
			} else {
				_, err = createV1(h, "x", tt.l)
			}
			if !errors.Is(err, ErrNoController) {
				t.Errorf("create v%d %+v = %v, want ErrNoController", tt.version, tt.l, err)
			}
		})
	}
}

func TestProbe(t *testing.T) {
	r := Probe()
	t.Logf("Probe() = %+v", r)
	for c, v := range r.Controllers {
		if v == 1 && r.V1Mounts[c] == "" || v == 2 && r.V2Mount == "" {
			t.Errorf("controller %s on v%d without a mount: %+v", c, v, r)
		}
	}
	if !r.Writable && r.Reason == "" {
		t.Error("not writable and no reason")
	}
	if r.Writable && (r.Version == 0 || r.Base == "") {
		t.Errorf("writable without a version or base: %+v", r)
	}
	// /proc/cgroups says, apart from mountinfo, which controllers are
	// bound to a v1 hierarchy (non-zero hierarchy id).
	f, err := os.Open("/proc/cgroups")
	if err != nil {
		t.Skipf("no /proc/cgroups: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) != 4 || fl[3] != "1" || !slices.Contains(controllers, fl[0]) {
			continue
		}
		if fl[1] != "0" && r.Controllers[fl[0]] != 1 {
			t.Errorf("%s is bound to v1 hierarchy %s, Probe says v%d", fl[0], fl[1], r.Controllers[fl[0]])
		}
	}
}

// v2Host returns the host with a v2 base this user can make cgroups in.
func v2Host(t *testing.T) host {
	t.Helper()
	h, _ := detect()
	if h.V2Base == "" {
		t.Skipf("no usable cgroup v2 tree: %v", h.V2BaseErr)
	}
	if err := probeDir(h.V2Base, 2); err != nil {
		t.Skipf("cannot make a cgroup v2 leaf here: %v", err)
	}
	return h
}

func TestV2Leaf(t *testing.T) {
	// The v2 path even on a hybrid host, whose v2 tree has no controllers:
	// a leaf without limits still groups the sandbox for Kill and Remove.
	h := v2Host(t)
	dirs, err := createV2(h, leafName(), Limits{})
	if err != nil {
		t.Fatalf("createV2(no limits) = %v", err)
	}
	leaf := &Leaf{version: 2, dirs: dirs}
	t.Cleanup(func() {
		if err := leaf.Remove(); err != nil {
			t.Errorf("Remove() = %v", err)
		}
		checkGone(t, dirs)
	})
	if _, err := os.Stat(filepath.Join(dirs[0], "cgroup.kill")); err != nil {
		t.Logf("no cgroup.kill, Kill loops: %v", err)
	}
	cmd := exec.Command("/bin/sh", "-c", `read x; sleep 30 & sleep 30 & wait`)
	startInLeaf(t, leaf, cmd)
	fds := pin(t, waitPids(t, leaf, 3))
	if err := leaf.Kill(); err != nil {
		t.Fatalf("Kill() = %v", err)
	}
	cmd.Wait()
	waitExited(t, fds, 2*time.Second)
	if err := leaf.Remove(); err != nil {
		t.Fatalf("Remove() = %v", err)
	}
	checkGone(t, dirs)
}

func TestMoveAside(t *testing.T) {
	// A cgroup with a process in it, made by hand, stands for the delegated
	// cgroup of an unprivileged caller.
	h := v2Host(t)
	parent := filepath.Join(h.V2Base, parentName)
	if err := mkdirShared(parent); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, leafName())
	if err := unix.Mkdir(dir, 0o755); err != nil {
		removeParent(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := RemoveDirs([]string{dir}); err != nil {
			t.Errorf("RemoveDirs = %v", err)
		}
		checkGone(t, []string{dir})
	})
	sleep := startSleep(t)
	pid := sleep.Process.Pid
	if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
		t.Fatal(err)
	}

	if err := moveAside(dir); err != nil {
		t.Fatalf("moveAside(%s) = %v", dir, err)
	}
	if got, _ := readPids(filepath.Join(dir, "cgroup.procs")); len(got) != 0 {
		t.Errorf("%s still holds %v", dir, got)
	}
	if got, _ := readPids(filepath.Join(dir, hostLeafName, "cgroup.procs")); len(got) != 1 || got[0] != pid {
		t.Errorf("%s holds %v, want [%d]", hostLeafName, got, pid)
	}
	// Again, with nothing left to move and cordon-host already there.
	if err := moveAside(dir); err != nil {
		t.Errorf("moveAside(%s) again = %v", dir, err)
	}
}

func TestRemoveNested(t *testing.T) {
	// A sandbox that reached cgroupfs could make sub-cgroups of its leaf;
	// Remove must kill their processes and remove them first.
	leaf := newLeaf(t, Limits{Pids: 20})
	sleep := startSleep(t)
	fds := pin(t, []int{sleep.Process.Pid})
	for _, d := range leaf.Dirs() {
		sub := filepath.Join(d, "sub", "deeper")
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := writeFile(filepath.Join(sub, "cgroup.procs"), strconv.Itoa(sleep.Process.Pid)); err != nil {
			t.Fatalf("moving sleep into %s: %v", sub, err)
		}
	}
	if err := leaf.Remove(); err != nil {
		t.Fatalf("Remove() = %v", err)
	}
	checkGone(t, leaf.Dirs())
	waitExited(t, fds, 2*time.Second)
}

// startSleep starts a `sleep 30` of the test's own, killed by pid and
// reaped when the test ends.
func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	sleep := exec.Command("sleep", "30")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sleep.Process.Kill()
		sleep.Wait()
	})
	return sleep
}
