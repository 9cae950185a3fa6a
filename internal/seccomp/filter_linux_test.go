package seccomp

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"

	libseccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// These tests run the compiled program through golang.org/x/net/bpf's VM
// instead of the kernel, so they can feed it what a process could not send
// from here (another architecture, any argument) and need no privilege.

const (
	retAllow = unix.SECCOMP_RET_ALLOW
	retKill  = unix.SECCOMP_RET_KILL_PROCESS
	retEPERM = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	// retENOSYS is also what the x32 check answers.
	retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

func retName(v uint32) string {
	switch v {
	case retAllow:
		return "ALLOW"
	case retKill:
		return "KILL_PROCESS"
	case retEPERM:
		return "ERRNO(EPERM)"
	case retENOSYS:
		return "ERRNO(ENOSYS)"
	}
	return fmt.Sprintf("%#x", v)
}

// call is one syscall as the filter sees it.
type call struct {
	arch uint32
	nr   uint32
	args [6]uint64
}

func (c call) String() string {
	return fmt.Sprintf("arch %#x nr %d args %#x", c.arch, c.nr, c.args)
}

// seccompData lays out struct seccomp_data for the VM. The kernel loads its
// 32-bit words in native byte order, the VM (written for packets) in big
// endian; so every word is stored big-endian at the offset the kernel keeps
// it at, and which half of a 64-bit argument comes first follows the native
// order, as in the kernel.
func (c call) seccompData() []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[offsetNr:], c.nr)
	binary.BigEndian.PutUint32(b[offsetArch:], c.arch)
	littleEndian := binary.NativeEndian.Uint16([]byte{1, 0}) == 1
	for i, a := range c.args {
		off := 16 + 8*i
		first, second := uint32(a), uint32(a>>32)
		if !littleEndian {
			first, second = second, first
		}
		binary.BigEndian.PutUint32(b[off:], first)
		binary.BigEndian.PutUint32(b[off+4:], second)
	}
	return b
}

func newVM(t *testing.T) *bpf.VM {
	t.Helper()
	prog, err := program()
	if err != nil {
		t.Fatalf("program() = %v", err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("bpf.NewVM(program()) = %v", err)
	}
	return vm
}

func run(t *testing.T, vm *bpf.VM, c call) uint32 {
	t.Helper()
	got, err := vm.Run(c.seccompData())
	if err != nil {
		t.Fatalf("running filter on %v: %v", c, err)
	}
	return uint32(got)
}

func native(t *testing.T) uint32 {
	t.Helper()
	a, ok := nativeArches[runtime.GOARCH]
	if !ok {
		t.Skipf("no seccomp filter for %s", runtime.GOARCH)
	}
	return a
}

func TestProgramShape(t *testing.T) {
	native(t)
	prog, err := program()
	if err != nil {
		t.Fatalf("program() = %v", err)
	}
	// The kernel's limit is BPF_MAXINSNS.
	if len(prog) > 4096 {
		t.Errorf("program has %d instructions, want at most 4096", len(prog))
	}
	for i, ins := range prog {
		if ret, ok := ins.(bpf.RetConstant); ok && ret.Val == uint32(nextPolicy) {
			t.Errorf("instruction %d is %v, the placeholder program should have replaced", i, ins)
		}
	}
	if _, err := bpf.Assemble(prog); err != nil {
		t.Errorf("bpf.Assemble(program()) = %v", err)
	}
}

// TestPoliciesForEveryArch checks the deny list against the syscall tables of
// every supported architecture, not just the one running the test.
func TestPoliciesForEveryArch(t *testing.T) {
	for goarch := range nativeArches {
		t.Run(goarch, func(t *testing.T) {
			if _, err := policiesFor(goarch, entriesFor(goarch)); err != nil {
				t.Errorf("policiesFor(%q, entriesFor(%[1]q)) = %v", goarch, err)
			}
		})
	}
}

// TestProgramDeniesEveryRule walks Rules (through the entries behind them)
// and checks that calls matching each rule get the rule's errno, whatever
// the upper halves of the arguments hold.
func TestProgramDeniesEveryRule(t *testing.T) {
	nat := native(t)
	vm := newVM(t)
	info, err := arch.GetInfo(runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entriesFor(runtime.GOARCH) {
		t.Run(e.rule().Syscall, func(t *testing.T) {
			nr, ok := info.SyscallNames[e.name]
			if !ok {
				t.Fatalf("%s is not in the %s table", e.name, info.Name)
			}
			want := retEPERM
			if e.errno == enosys {
				want = retENOSYS
			}
			for _, c := range matchingCalls(nat, uint32(nr), e.test) {
				if got := run(t, vm, c); got != want {
					t.Errorf("filter(%v) = %s, want %s", c, retName(got), retName(want))
				}
			}
		})
	}
}

// matchingCalls returns calls a rule with test must deny.
func matchingCalls(arch, nr uint32, test *argTest) []call {
	if test == nil {
		return []call{
			{arch: arch, nr: nr},
			{arch: arch, nr: nr, args: [6]uint64{^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0)}},
		}
	}
	var values []uint64
	switch test.op {
	case anyBitSet:
		for bit := uint64(1); bit != 0; bit <<= 1 {
			if test.value&bit != 0 {
				values = append(values, bit, bit|1<<32, bit|0xffffffff00000000, bit|^test.value)
			}
		}
	case low32Equal:
		values = []uint64{test.value, test.value | 1<<32, test.value | 0xffffffff00000000}
	}
	var calls []call
	for _, v := range values {
		c := call{arch: arch, nr: nr}
		c.args[test.arg] = v
		calls = append(calls, c)
	}
	return calls
}

func TestProgramAllows(t *testing.T) {
	nat := native(t)
	vm := newVM(t)
	// Go's and glibc's flags for a new thread, and fork's.
	const threadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
		unix.CLONE_SYSVSEM | unix.CLONE_THREAD | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID
	tests := []struct {
		name string
		nr   uint32
		args [6]uint64
	}{
		{"getpid", unix.SYS_GETPID, [6]uint64{}},
		{"read", unix.SYS_READ, [6]uint64{0, 0xc000010000, 4096}},
		{"write", unix.SYS_WRITE, [6]uint64{1, 0xc000010000, 4096}},
		{"openat", unix.SYS_OPENAT, [6]uint64{uint64(0xffffff9c), 0xc000010000, unix.O_RDONLY}},
		{"execve", unix.SYS_EXECVE, [6]uint64{}},
		{"exit_group", unix.SYS_EXIT_GROUP, [6]uint64{}},
		{"seccomp", unix.SYS_SECCOMP, [6]uint64{}},
		{"clone thread", unix.SYS_CLONE, [6]uint64{threadFlags}},
		{"clone fork", unix.SYS_CLONE, [6]uint64{uint64(unix.SIGCHLD)}},
		{"clone vfork", unix.SYS_CLONE, [6]uint64{unix.CLONE_VM | unix.CLONE_VFORK | unix.CLONE_PIDFD | uint64(unix.SIGCHLD)}},
		// CLONE_NEWTIME (0x80) shares its bit with CSIGNAL in clone and is
		// taken from unshare and clone3 only.
		{"clone exit signal 0x80", unix.SYS_CLONE, [6]uint64{0x80}},
		// Regressions for the library's unreloaded syscall number: a clone
		// whose flags equal ioctl's number and whose second argument is
		// TIOCSTI, and one whose flags equal clone3's number, were denied.
		{"clone flags=SYS_IOCTL arg1=TIOCSTI", unix.SYS_CLONE, [6]uint64{unix.SYS_IOCTL, unix.TIOCSTI}},
		{"clone flags=SYS_CLONE3", unix.SYS_CLONE, [6]uint64{unix.SYS_CLONE3}},
		{"ioctl cmd=SYS_CLONE3", unix.SYS_IOCTL, [6]uint64{0, unix.SYS_CLONE3}},
		{"ioctl TCGETS", unix.SYS_IOCTL, [6]uint64{0, unix.TCGETS}},
		// TCSETS and TIOCSPGRP use a subset of TIOCSTI's bits: a filter that
		// took BitsSet for "all these bits" would deny them.
		{"ioctl TCSETS", unix.SYS_IOCTL, [6]uint64{0, unix.TCSETS}},
		{"ioctl TIOCSPGRP", unix.SYS_IOCTL, [6]uint64{0, unix.TIOCSPGRP}},
		{"ioctl TIOCGWINSZ", unix.SYS_IOCTL, [6]uint64{0, unix.TIOCGWINSZ}},
		{"ioctl TIOCSTI|0x100", unix.SYS_IOCTL, [6]uint64{0, unix.TIOCSTI | 0x100}},
		{"ioctl TIOCSTI in arg2", unix.SYS_IOCTL, [6]uint64{0, unix.TCGETS, unix.TIOCSTI}},
		{"ioctl cmd 0", unix.SYS_IOCTL, [6]uint64{}},
		{"ioctl upper half only", unix.SYS_IOCTL, [6]uint64{0, unix.TIOCSTI << 32}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := call{arch: nat, nr: tt.nr, args: tt.args}
			if got := run(t, vm, c); got != retAllow {
				t.Errorf("filter(%v) = %s, want ALLOW", c, retName(got))
			}
		})
	}
}

// TestProgramDeniesByNumber cross-checks the library's syscall table against
// x/sys/unix for the calls that matter most, and the argument tests on the
// bypasses they exist to stop.
func TestProgramDeniesByNumber(t *testing.T) {
	nat := native(t)
	vm := newVM(t)
	tests := []struct {
		name string
		nr   uint32
		args [6]uint64
		want uint32
	}{
		{"mount", unix.SYS_MOUNT, [6]uint64{}, retEPERM},
		{"unshare CLONE_NEWUSER", unix.SYS_UNSHARE, [6]uint64{unix.CLONE_NEWUSER}, retEPERM},
		{"setns", unix.SYS_SETNS, [6]uint64{}, retEPERM},
		{"clone CLONE_NEWNS", unix.SYS_CLONE, [6]uint64{unix.CLONE_NEWNS | uint64(unix.SIGCHLD)}, retEPERM},
		{"clone CLONE_NEWUSER|1<<32", unix.SYS_CLONE, [6]uint64{unix.CLONE_NEWUSER | 1<<32 | uint64(unix.SIGCHLD)}, retEPERM},
		{"clone CLONE_NEWCGROUP with thread flags", unix.SYS_CLONE, [6]uint64{unix.CLONE_NEWCGROUP | unix.CLONE_VM | unix.CLONE_THREAD}, retEPERM},
		{"clone3", unix.SYS_CLONE3, [6]uint64{}, retENOSYS},
		{"ptrace", unix.SYS_PTRACE, [6]uint64{unix.PTRACE_TRACEME}, retEPERM},
		{"bpf", unix.SYS_BPF, [6]uint64{}, retEPERM},
		{"keyctl", unix.SYS_KEYCTL, [6]uint64{}, retEPERM},
		{"io_uring_setup", unix.SYS_IO_URING_SETUP, [6]uint64{}, retEPERM},
		{"open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT, [6]uint64{}, retEPERM},
		{"ioctl TIOCSTI", unix.SYS_IOCTL, [6]uint64{0, unix.TIOCSTI}, retEPERM},
		{"ioctl TIOCSTI|1<<32", unix.SYS_IOCTL, [6]uint64{0, unix.TIOCSTI | 1<<32}, retEPERM},
		{"ioctl TIOCSTI with upper half all ones", unix.SYS_IOCTL, [6]uint64{0, unix.TIOCSTI | 0xffffffff00000000}, retEPERM},
		{"ioctl TIOCLINUX", unix.SYS_IOCTL, [6]uint64{0, unix.TIOCLINUX}, retEPERM},
		{"ioctl TIOCLINUX|1<<63", unix.SYS_IOCTL, [6]uint64{0, unix.TIOCLINUX | 1<<63}, retEPERM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := call{arch: nat, nr: tt.nr, args: tt.args}
			if got := run(t, vm, c); got != tt.want {
				t.Errorf("filter(%v) = %s, want %s", c, retName(got), retName(tt.want))
			}
		})
	}
}

// TestProgramForeignABI checks that a syscall made through another ABI kills
// the process, whatever its number: with the library's program alone, i386
// calls fell through to ALLOW.
func TestProgramForeignABI(t *testing.T) {
	nat := native(t)
	vm := newVM(t)
	foreign := []struct {
		name string
		arch uint32
	}{
		{"i386", unix.AUDIT_ARCH_I386},
		{"arm", unix.AUDIT_ARCH_ARM},
		{"x86_64", unix.AUDIT_ARCH_X86_64},
		{"aarch64", unix.AUDIT_ARCH_AARCH64},
		{"zero", 0},
	}
	// i386 numbers: 21 mount, 26 ptrace, 54 ioctl, 120 clone, 310 unshare;
	// 20 getpid is one the deny list would allow.
	numbers := []uint32{0, 20, 21, 26, 54, 120, 310, 0xffffffff}
	for _, f := range foreign {
		if f.arch == nat {
			continue
		}
		t.Run(f.name, func(t *testing.T) {
			for _, nr := range numbers {
				c := call{arch: f.arch, nr: nr}
				if got := run(t, vm, c); got != retKill {
					t.Errorf("filter(%v) = %s, want KILL_PROCESS", c, retName(got))
				}
			}
		})
	}
}

// TestLibraryForeignABIFallsThrough documents why program adds its own arch
// check: the library's program alone allows an i386 mount. If this starts
// failing, the library changed and the prefix may be redundant (but stays
// harmless).
func TestLibraryForeignABIFallsThrough(t *testing.T) {
	native(t)
	policy := libseccomp.Policy{
		DefaultAction: libseccomp.ActionAllow,
		Syscalls:      []libseccomp.SyscallGroup{{Names: []string{"mount"}, Action: libseccomp.ActionErrno}},
	}
	prog, err := policy.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	c := call{arch: unix.AUDIT_ARCH_I386, nr: 21}
	got, err := vm.Run(c.seccompData())
	if err != nil {
		t.Fatal(err)
	}
	if uint32(got) != retAllow {
		t.Errorf("library-only filter(%v) = %s, want ALLOW (the hole program closes)", c, retName(uint32(got)))
	}
}

func TestProgramX32(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("x32 exists on amd64 only")
	}
	vm := newVM(t)
	const x32Bit = 0x40000000
	for _, nr := range []uint32{x32Bit | unix.SYS_GETPID, x32Bit | unix.SYS_MOUNT, x32Bit | unix.SYS_IOCTL} {
		c := call{arch: unix.AUDIT_ARCH_X86_64, nr: nr}
		if got := run(t, vm, c); got != retENOSYS {
			t.Errorf("filter(%v) = %s, want ERRNO(ENOSYS)", c, retName(got))
		}
	}
}

// TestCompileSameSyscallTwoErrnos covers the library's unreloaded syscall
// number: with one policy, the second group for ioctl was never reached and
// TIOCLINUX was allowed.
func TestCompileSameSyscallTwoErrnos(t *testing.T) {
	nat := native(t)
	prog, err := compile([]entry{
		{name: "ioctl", args: "TIOCSTI", test: &argTest{arg: 1, op: low32Equal, value: tiocsti}, errno: eperm},
		{name: "ioctl", args: "TIOCLINUX", test: &argTest{arg: 1, op: low32Equal, value: tioclinux}, errno: enosys},
		{name: "mount", errno: eperm},
	})
	if err != nil {
		t.Fatalf("compile() = %v", err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("bpf.NewVM(compile()) = %v", err)
	}
	tests := []struct {
		name string
		c    call
		want uint32
	}{
		{"TIOCSTI", call{arch: nat, nr: unix.SYS_IOCTL, args: [6]uint64{0, unix.TIOCSTI}}, retEPERM},
		{"TIOCLINUX", call{arch: nat, nr: unix.SYS_IOCTL, args: [6]uint64{0, unix.TIOCLINUX}}, retENOSYS},
		{"TCGETS", call{arch: nat, nr: unix.SYS_IOCTL, args: [6]uint64{0, unix.TCGETS}}, retAllow},
		{"mount", call{arch: nat, nr: unix.SYS_MOUNT}, retEPERM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(t, vm, tt.c); got != tt.want {
				t.Errorf("filter(%v) = %s, want %s", tt.c, retName(got), retName(tt.want))
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	native(t)
	tests := []struct {
		name    string
		entries []entry
	}{
		{"unknown syscall", []entry{{name: "no_such_syscall", errno: eperm}}},
		{"unknown errno", []entry{{name: "mount", errno: "EBUSY"}}},
		{"bad test", []entry{{name: "clone", args: "x", test: &argTest{arg: 0, op: anyBitSet}, errno: eperm}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := compile(tt.entries); err == nil {
				t.Errorf("compile(%+v) = nil error, want one", tt.entries)
			}
		})
	}
}

func TestConditionsErrors(t *testing.T) {
	tests := []struct {
		name string
		test argTest
	}{
		{"argument 6", argTest{arg: 6, op: anyBitSet, value: 1}},
		{"no bits", argTest{op: anyBitSet}},
		{"too wide", argTest{op: low32Equal, value: 1 << 32}},
		{"unknown op", argTest{op: 99, value: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := conditions(tt.test); err == nil {
				t.Errorf("conditions(%+v) = nil error, want one", tt.test)
			}
		})
	}
}
