package seccomp

// These tests run against the real kernel. Install changes the whole process
// for good, so every test that installs the filter re-executes the test
// binary (os.Args[0] -test.run=^TestName$) with childEnv naming what the
// child should do; the child reports over an inherited pipe (fd 3) and the
// parent, which never installs anything, asserts.
//
// Nothing here needs root: seccomp with no_new_privs is open to any user,
// and the probes are chosen to mean the same for root and for an
// unprivileged user. Where the kernel alone would answer a probe with the
// same errno the filter gives (EPERM from a capability check, say), the
// probe is built so the kernel answers something else first (ENOENT, ESRCH,
// ENOTTY, ...); TestProbesWithoutFilter checks that, so a pass of
// TestInstall means the filter did it.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

const childEnv = "CORDON_SECCOMP_TEST_CHILD"

// noSuchPID is above the kernel's largest pid_max (4194304).
const noSuchPID = 1 << 30

type probe struct {
	name string
	run  func() string
	// filtered is what run returns under the filter.
	filtered string
	// unfiltered is what run returns without it; "" where that depends on
	// privilege, sysctls or an outer filter.
	unfiltered string
	// skipUnfiltered marks probes that are unsafe to run without the filter.
	skipUnfiltered bool
}

func probes() []probe {
	return []probe{
		// Unfiltered, the kernel refuses a new user namespace to a
		// multithreaded process with EINVAL.
		{name: "unshare(CLONE_NEWUSER)", run: func() string { return result(unix.Unshare(unix.CLONE_NEWUSER)) }, filtered: "EPERM", unfiltered: "EINVAL"},
		{name: "clone(CLONE_NEWNS) via os/exec", run: func() string { return runTrue(&syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS}) }, filtered: "EPERM"},
		{name: "clone(CLONE_NEWUSER) via os/exec", run: func() string { return runTrue(&syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWUSER}) }, filtered: "EPERM"},
		// The kernel reads only the low 32 bits of clone's flags.
		{name: "clone(CLONE_NEWUSER|1<<32)", run: func() string { return forkWith(unix.CLONE_NEWUSER | 1<<32) }, filtered: "EPERM"},
		{name: "fork/exec /bin/true", run: func() string { return runTrue(nil) }, filtered: "ok", unfiltered: "ok"},
		{name: "new thread", run: newThread, filtered: "Seccomp 2"},
		{name: "every thread filtered", run: everyThreadFiltered, filtered: "ok", skipUnfiltered: true},
		{name: "mount", run: func() string {
			return result(unix.Mount("none", "/nonexistent/cordon-seccomp-test", "tmpfs", 0, ""))
		}, filtered: "EPERM", unfiltered: "ENOENT"},
		// Unfiltered, this would make the child a tracee of the test process.
		{name: "ptrace(PTRACE_TRACEME)", run: func() string { return sys(unix.SYS_PTRACE, unix.PTRACE_TRACEME) }, filtered: "EPERM", skipUnfiltered: true},
		{name: "ptrace(PTRACE_ATTACH)", run: func() string { return sys(unix.SYS_PTRACE, unix.PTRACE_ATTACH, noSuchPID) }, filtered: "EPERM", unfiltered: "ESRCH"},
		{name: "process_vm_readv", run: processVMReadv, filtered: "EPERM", unfiltered: "ESRCH"},
		{name: "keyctl", run: func() string { return sys(unix.SYS_KEYCTL, 0xdead) }, filtered: "EPERM", unfiltered: "EOPNOTSUPP"},
		// Unfiltered: EINVAL, or EPERM for an unprivileged user on kernels
		// that check kernel.unprivileged_bpf_disabled before the command.
		{name: "bpf", run: func() string { return sys(unix.SYS_BPF, 0xffff) }, filtered: "EPERM"},
		{name: "perf_event_open", run: func() string { return sys(unix.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0), 0) }, filtered: "EPERM", unfiltered: "EFAULT"},
		// Unfiltered: EFAULT, or EPERM under kernel.io_uring_disabled.
		{name: "io_uring_setup", run: func() string { return sys(unix.SYS_IO_URING_SETUP, 0, 0) }, filtered: "EPERM"},
		{name: "clone3", run: func() string { return sys(unix.SYS_CLONE3, 0, 0) }, filtered: "ENOSYS", unfiltered: "EINVAL"},
		// /dev/null is no terminal: unfiltered, every tty ioctl gets ENOTTY.
		// Unfiltered, the upper 32 bits make no difference to the kernel,
		// which is why the filter must ignore them too.
		{name: "ioctl(TIOCSTI)", run: func() string { return ioctlDevNull(unix.TIOCSTI) }, filtered: "EPERM", unfiltered: "ENOTTY"},
		{name: "ioctl(TIOCSTI|1<<32)", run: func() string { return ioctlDevNull(unix.TIOCSTI | 1<<32) }, filtered: "EPERM", unfiltered: "ENOTTY"},
		{name: "ioctl(TIOCSTI|0xffffffff<<32)", run: func() string { return ioctlDevNull(unix.TIOCSTI | 0xffffffff<<32) }, filtered: "EPERM", unfiltered: "ENOTTY"},
		{name: "ioctl(TIOCLINUX)", run: func() string { return ioctlDevNull(unix.TIOCLINUX) }, filtered: "EPERM", unfiltered: "ENOTTY"},
		{name: "ioctl(TIOCLINUX|1<<32)", run: func() string { return ioctlDevNull(unix.TIOCLINUX | 1<<32) }, filtered: "EPERM", unfiltered: "ENOTTY"},
		// TIOCSPGRP's bits are a subset of TIOCSTI's.
		{name: "ioctl(TIOCSPGRP)", run: func() string { return ioctlDevNull(unix.TIOCSPGRP) }, filtered: "ENOTTY", unfiltered: "ENOTTY"},
		{name: "ioctl(TCGETS)", run: func() string { return ioctlDevNull(unix.TCGETS) }, filtered: "ENOTTY", unfiltered: "ENOTTY"},
		{name: "getpid", run: func() string { return sys(unix.SYS_GETPID) }, filtered: "ok", unfiltered: "ok"},
	}
}

func TestAvailable(t *testing.T) {
	native(t)
	before := seccompStatus(t, "self")
	if err := Available(); err != nil {
		t.Errorf("Available() = %v, want nil", err)
	}
	if after := seccompStatus(t, "self"); after != before {
		t.Errorf("Available() changed /proc/self/status from %q to %q", before, after)
	}
}

func TestInstall(t *testing.T) {
	if os.Getenv(childEnv) == "install" {
		runProbes(t, true)
		return
	}
	native(t)
	res := runChild(t, "install")
	if res.err != nil {
		t.Fatalf("child: %v\n%s", res.err, res.output)
	}
	if got := res.results["install"]; got != "ok" {
		t.Fatalf("Install() in child = %s, want ok\n%s", got, res.output)
	}
	for _, p := range probes() {
		t.Run(p.name, func(t *testing.T) {
			got, ok := res.results[p.name]
			if !ok {
				t.Fatalf("child reported nothing for %s\n%s", p.name, res.output)
			}
			if got != p.filtered {
				t.Errorf("%s after Install() = %s, want %s", p.name, got, p.filtered)
			}
		})
	}
}

// TestProbesWithoutFilter runs the probes in a child without the filter, to
// show that what TestInstall sees comes from the filter.
func TestProbesWithoutFilter(t *testing.T) {
	if os.Getenv(childEnv) == "unfiltered" {
		runProbes(t, false)
		return
	}
	native(t)
	res := runChild(t, "unfiltered")
	if res.err != nil {
		t.Fatalf("child: %v\n%s", res.err, res.output)
	}
	for _, p := range probes() {
		if p.skipUnfiltered {
			continue
		}
		t.Run(p.name, func(t *testing.T) {
			got, ok := res.results[p.name]
			if !ok {
				t.Fatalf("child reported nothing for %s\n%s", p.name, res.output)
			}
			if p.unfiltered == "" {
				t.Logf("%s without filter = %s (not checked: depends on privilege or sysctls)", p.name, got)
				return
			}
			if got != p.unfiltered {
				t.Errorf("%s without filter = %s, want %s", p.name, got, p.unfiltered)
			}
		})
	}
}

// TestInstallForeignABIKills makes an i386 syscall (int 0x80) from a 64-bit
// process under the filter and expects the kernel to kill it with SIGSYS.
// TestProgramForeignABI covers the same for every foreign arch in the VM;
// this checks the kernel agrees on amd64, the one place Go code can switch
// ABI without a 32-bit binary.
func TestInstallForeignABIKills(t *testing.T) {
	switch os.Getenv(childEnv) {
	case "int80-unfiltered":
		report("int80", int80Getpid())
		return
	case "int80":
		if err := Install(); err != nil {
			report("install", result(err))
			return
		}
		report("install", "ok")
		report("int80", int80Getpid())
		return
	}
	if runtime.GOARCH != "amd64" {
		t.Skipf("int 0x80 is an amd64 instruction; running on %s", runtime.GOARCH)
	}
	if ctl := runChild(t, "int80-unfiltered"); ctl.err != nil || ctl.results["int80"] != "ok" {
		first, _, _ := strings.Cut(strings.TrimSpace(ctl.output), "\n")
		t.Skipf("int 0x80 does not work here even without the filter (no IA32 emulation, or a hypervisor that does not deliver it): %v, %q, %s",
			ctl.err, ctl.results["int80"], first)
	}
	res := runChild(t, "int80")
	if got := res.results["install"]; got != "ok" {
		t.Fatalf("Install() in child = %s, want ok\n%s", got, res.output)
	}
	if got, ok := res.results["int80"]; ok {
		t.Errorf("int 0x80 getpid under the filter returned (%s), want the process killed", got)
	}
	var exit *exec.ExitError
	if !errors.As(res.err, &exit) {
		t.Fatalf("child error = %v, want it killed by SIGSYS\n%s", res.err, res.output)
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
		t.Errorf("child ended with %v, want killed by SIGSYS\n%s", res.err, res.output)
	}
}

// int80Code is "mov eax, 20; int 0x80; ret": getpid through the i386 ABI.
var int80Code = []byte{0xb8, 0x14, 0x00, 0x00, 0x00, 0xcd, 0x80, 0xc3}

// int80Getpid runs int80Code and returns "ok" if it gave this process's pid.
//
// A Go func value points at a word that holds the code's address, so a
// pointer to such a word in a *func() uintptr calls into int80Code. Go's
// register ABI returns the uintptr in RAX, where int 0x80 leaves its result;
// the code changes no register Go keeps state in (RSP, RBP, R14, R15, X15).
func int80Getpid() string {
	mem, err := unix.Mmap(-1, 0, unix.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return "mmap: " + result(err)
	}
	copy(mem, int80Code)
	if err := unix.Mprotect(mem, unix.PROT_READ|unix.PROT_EXEC); err != nil {
		return "mprotect: " + result(err)
	}
	code := &struct{ pc uintptr }{uintptr(unsafe.Pointer(&mem[0]))}
	getpid := *(*func() uintptr)(unsafe.Pointer(&code))
	if pid := getpid(); int(pid) != os.Getpid() {
		return fmt.Sprintf("int 0x80 getpid = %d, want %d", int(pid), os.Getpid())
	}
	return "ok"
}

// childResult is what a re-executed test binary reported.
type childResult struct {
	results map[string]string // by probe name
	err     error             // from Wait
	output  string            // stdout and stderr
}

// runChild re-executes the test binary to run only the calling test, with
// childEnv set to mode.
func runChild(t *testing.T, mode string) childResult {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.ExtraFiles = []*os.File{w} // fd 3 in the child
	if err := cmd.Start(); err != nil {
		w.Close()
		t.Fatalf("starting child: %v", err)
	}
	w.Close()
	data, readErr := io.ReadAll(r)
	res := childResult{results: map[string]string{}, err: cmd.Wait(), output: out.String()}
	if readErr != nil {
		t.Fatalf("reading child results: %v", readErr)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, value, _ := strings.Cut(sc.Text(), "\t")
		res.results[name] = value
	}
	return res
}

// report sends one result from a child to the parent, at once, so that what
// was reported survives the child being killed.
func report(name, value string) {
	fmt.Fprintf(resultsFile(), "%s\t%s\n", name, value)
}

// resultsFile is fd 3 in a child, wrapped once: an *os.File closes its fd
// when collected.
var resultsFile = sync.OnceValue(func() *os.File { return os.NewFile(3, "results") })

func runProbes(t *testing.T, install bool) {
	if install {
		if err := Install(); err != nil {
			report("install", result(err))
			return
		}
		report("install", "ok")
	}
	for _, p := range probes() {
		if !install && p.skipUnfiltered {
			continue
		}
		report(p.name, p.run())
	}
}

// result names err the way the probes' wants do: "ok", an errno's name, or
// the error's text.
func result(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if errno == unix.ENOTSUP { // the same number; keyctl's errno is known as this
			return "EOPNOTSUPP"
		}
		if name := unix.ErrnoName(errno); name != "" {
			return name
		}
	}
	return err.Error()
}

func sys(nr uintptr, args ...uintptr) string {
	var a [6]uintptr
	copy(a[:], args)
	_, _, errno := unix.Syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	if errno != 0 {
		return result(errno)
	}
	return "ok"
}

func runTrue(attr *syscall.SysProcAttr) string {
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = attr
	return result(cmd.Run())
}

// forkWith calls clone directly with flags, so that it can set bits
// os/exec would not pass, and reaps the child should one be made.
func forkWith(flags uint64) string {
	pid, errno := rawFork(uintptr(flags) | uintptr(syscall.SIGCHLD))
	if errno != 0 {
		return result(errno)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(int(pid), &ws, 0, nil); err != nil {
		return "wait4: " + result(err)
	}
	return "ok"
}

// rawFork is clone without CLONE_VM: the child gets a copy of the calling
// thread alone and, like the child half of syscall.forkExec, must stick to
// raw syscalls, so it exits at once. Hence no race instrumentation and no
// stack checks here.
//
//go:norace
//go:nosplit
func rawFork(flags uintptr) (pid uintptr, errno syscall.Errno) {
	pid, _, errno = syscall.RawSyscall6(syscall.SYS_CLONE, flags, 0, 0, 0, 0, 0)
	if errno == 0 && pid == 0 {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return pid, errno
}

func processVMReadv() string {
	// Non-empty iovecs: with nothing to copy the kernel returns 0 before it
	// looks the process up.
	var buf [8]byte
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(len(buf))
	remote := []unix.RemoteIovec{{Base: 0x10000, Len: len(buf)}}
	_, err := unix.ProcessVMReadv(noSuchPID, local, remote, 0)
	return result(err)
}

func ioctlDevNull(cmd uint64) string {
	f, err := os.Open(os.DevNull)
	if err != nil {
		return "open: " + result(err)
	}
	defer f.Close()
	var c byte = 'x'
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(cmd), uintptr(unsafe.Pointer(&c)))
	if errno != 0 {
		return result(errno)
	}
	return "ok"
}

// newThread makes the Go runtime start an OS thread (clone with thread
// flags) and returns the new thread's seccomp mode. Goroutines that exit
// while locked take their thread with them, so the runtime soon has to
// clone a fresh one; if clone were denied it would crash the child.
func newThread() string {
	before, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return result(err)
	}
	old := map[string]bool{}
	for _, e := range before {
		old[e.Name()] = true
	}
	for range 100 {
		var (
			wg     sync.WaitGroup
			fresh  bool
			status string
		)
		wg.Go(func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			fresh = !old[fmt.Sprint(unix.Gettid())]
			status = seccompMode("thread-self")
		})
		wg.Wait()
		if fresh {
			return status
		}
	}
	return "the runtime kept reusing old threads"
}

// everyThreadFiltered checks that TSYNC reached all threads: each has the
// filter and no_new_privs.
func everyThreadFiltered() string {
	tasks, err := filepath.Glob("/proc/self/task/*")
	if err != nil {
		return result(err)
	}
	var bad []string
	for _, task := range tasks {
		data, err := os.ReadFile(filepath.Join(task, "status"))
		if err != nil {
			continue // the thread has exited
		}
		s := string(data)
		if !strings.Contains(s, "\nSeccomp:\t2\n") || !strings.Contains(s, "\nNoNewPrivs:\t1\n") {
			bad = append(bad, filepath.Base(task))
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return "unfiltered threads " + strings.Join(bad, ",")
	}
	return "ok"
}

// seccompMode returns "Seccomp N" from /proc/<proc>/status.
func seccompMode(proc string) string {
	data, err := os.ReadFile("/proc/" + proc + "/status")
	if err != nil {
		return result(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "Seccomp:"); ok {
			return "Seccomp " + strings.TrimSpace(v)
		}
	}
	return "no Seccomp line"
}

// seccompStatus returns the seccomp and no_new_privs lines of
// /proc/<proc>/status.
func seccompStatus(t *testing.T, proc string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/" + proc + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for line := range strings.Lines(string(data)) {
		if strings.HasPrefix(line, "Seccomp") || strings.HasPrefix(line, "NoNewPrivs") {
			b.WriteString(line)
		}
	}
	return b.String()
}
