package seccomp

import (
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"unsafe"

	libseccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// nativeArches maps the GOARCH values Install supports to the audit
// architecture the kernel reports in seccomp_data.arch for native syscalls.
var nativeArches = map[string]uint32{
	"amd64": unix.AUDIT_ARCH_X86_64,
	"arm64": unix.AUDIT_ARCH_AARCH64,
}

// Offsets into struct seccomp_data.
const (
	offsetNr   = 0
	offsetArch = 4
)

// Install sets no_new_privs and loads the filter on every thread of the
// calling process (TSYNC). It is called by the sandbox init right before it
// starts the contained command; the filter is inherited across fork and
// execve.
//
// A failure after no_new_privs is set leaves it set; the caller is expected
// to give up on starting the command.
//
// The library has LoadFilter, but it assembles the policy itself, so there
// is no way to put the foreign-ABI check in front (see program), and it sets
// no_new_privs and loads the filter without pinning the goroutine to one
// thread. no_new_privs is per thread and the kernel only accepts a filter
// from a thread that has it (or CAP_SYS_ADMIN), so both calls must run on
// the same thread; TSYNC then copies both the filter and no_new_privs to
// every other thread.
func Install() error {
	prog, err := program()
	if err != nil {
		return err
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("assembling seccomp filter: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, ins := range raw {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	tid, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(filter)
	if errno != 0 {
		return fmt.Errorf("loading seccomp filter: %w", errno)
	}
	// With TSYNC the kernel reports a thread it could not synchronize (one
	// already under an unrelated filter) by returning its id, not an errno.
	if tid != 0 {
		return fmt.Errorf("loading seccomp filter: thread %d could not be synchronized", tid)
	}
	return nil
}

// Available reports whether seccomp filter mode works on this kernel (for
// `cordon doctor`) without installing anything in the caller.
//
// It asks the seccomp syscall itself rather than reading /proc: the Seccomp:
// line says the kernel has seccomp, not that it has filter mode, TSYNC and
// SECCOMP_RET_KILL_PROCESS, nor that an outer filter (a container runtime's)
// lets this process call seccomp.
func Available() error {
	if _, err := program(); err != nil {
		return err
	}
	// With a NULL program the kernel checks the mode and flags, then fails to
	// copy the program with EFAULT before it takes any lock or changes any
	// state. Any other answer means Install would fail.
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, 0)
	switch errno {
	case unix.EFAULT:
	case unix.ENOSYS:
		return fmt.Errorf("seccomp syscall: %w (kernel older than 3.17 or built without CONFIG_SECCOMP)", errno)
	case unix.EINVAL:
		return fmt.Errorf("seccomp filter mode with TSYNC: %w (kernel built without CONFIG_SECCOMP_FILTER)", errno)
	case 0:
		// A filter got loaded after all; nothing sane does this.
		return errors.New("seccomp probe with a NULL filter succeeded")
	default:
		return fmt.Errorf("seccomp filter mode: %w", errno)
	}
	for _, action := range []uint32{unix.SECCOMP_RET_KILL_PROCESS, unix.SECCOMP_RET_ERRNO, unix.SECCOMP_RET_ALLOW} {
		_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0,
			uintptr(unsafe.Pointer(&action)))
		if errno != 0 {
			return fmt.Errorf("seccomp action %#x: %w (needs Linux 4.14)", action, errno)
		}
	}
	return nil
}

// program compiles the deny list for the running architecture into a
// complete seccomp program.
//
// The library's Assemble checks seccomp_data.arch, but on a mismatch it jumps
// to the policy's default action, which for a deny list is ALLOW: a
// syscall made through int 0x80 on amd64 would skip every rule, with numbers
// from the i386 table to boot. So program puts its own check in front and
// kills the process on any foreign architecture. KILL_PROCESS rather than
// ENOSYS because no program the sandbox runs has a reason to switch ABIs
// (clone3's ENOSYS exists to trigger a fallback; there is none here), a
// 32-bit program fed ENOSYS for every syscall, exit included, fails in
// confusing ways, and SIGSYS ("Bad system call") says what happened. The
// library's own arch checks, now always true, stay in place.
//
// The rest is several library policies laid end to end (see policiesFor).
// Each is assembled with the otherwise unused TRACE action as its default,
// and every "return TRACE" is then rewritten into a jump to the next policy,
// which starts by reloading the arch and syscall number; after the last
// comes "return ALLOW". The rewrite swaps one instruction for one, so the
// library's relative jumps stay valid.
func program() ([]bpf.Instruction, error) {
	return compile(entriesFor(runtime.GOARCH))
}

// compile is program for any list of entries.
func compile(entries []entry) ([]bpf.Instruction, error) {
	native, ok := nativeArches[runtime.GOARCH]
	if !ok {
		return nil, fmt.Errorf("seccomp filter for %s/%s: %w", runtime.GOOS, runtime.GOARCH, errors.ErrUnsupported)
	}
	policies, err := policiesFor(runtime.GOARCH, entries)
	if err != nil {
		return nil, err
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offsetArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: native, SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS},
	}
	for _, policy := range policies {
		policy.DefaultAction = nextPolicy
		body, err := policy.Assemble()
		if err != nil {
			return nil, fmt.Errorf("assembling seccomp policy: %w", err)
		}
		for i, ins := range body {
			if ret, ok := ins.(bpf.RetConstant); ok && ret.Val == uint32(nextPolicy) {
				body[i] = bpf.Jump{Skip: uint32(len(body) - i - 1)}
			}
		}
		prog = append(prog, body...)
	}
	return append(prog, bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}), nil
}

// nextPolicy is the placeholder default action program replaces with a jump
// to the next policy. The filter never returns TRACE: Cordon has no tracer.
const nextPolicy = libseccomp.ActionTrace

// policiesFor turns the deny list into library policies, one syscall group
// per errno in each, to be evaluated in order.
//
// The unconditional entries all go into the first policy; each syscall that
// has argument tests gets a policy (per errno) of its own. That is a
// workaround: once the library's code has loaded an argument to test it,
// a failed test falls through to the next syscall comparison without
// reloading the syscall number, so that comparison runs against the
// argument. When the number belongs to an earlier syscall in the policy
// this only denies a few odd calls, but a second group for the same syscall
// (ioctl with other commands and another errno, say) would be skipped
// outright. A new policy starts with a fresh load.
//
// The library assembles for runtime.GOARCH whatever goarch says (the arch of
// a Policy is unexported); goarch only names the table entries are checked
// against.
func policiesFor(goarch string, entries []entry) ([]*libseccomp.Policy, error) {
	info, err := arch.GetInfo(goarch)
	if err != nil {
		return nil, fmt.Errorf("seccomp syscall table for %s: %w", goarch, err)
	}
	plain := &libseccomp.Policy{}
	policies := []*libseccomp.Policy{plain}
	conditional := map[string]*libseccomp.Policy{} // by name and errno
	for _, e := range entries {
		// The library would reject an unknown name too, but this error says
		// which rule and which table.
		if _, ok := info.SyscallNames[e.name]; !ok {
			return nil, fmt.Errorf("deny list: %s: not a syscall on %s", e.rule().Syscall, info.Name)
		}
		errno, err := errnoValue(e.errno)
		if err != nil {
			return nil, fmt.Errorf("deny list: %s: %w", e.rule().Syscall, err)
		}
		if e.test == nil {
			g := group(plain, errno)
			g.Names = append(g.Names, e.name)
			continue
		}
		conds, err := conditions(*e.test)
		if err != nil {
			return nil, fmt.Errorf("deny list: %s: %w", e.rule().Syscall, err)
		}
		key := e.name + " " + e.errno
		p, ok := conditional[key]
		if !ok {
			p = &libseccomp.Policy{}
			conditional[key] = p
			policies = append(policies, p)
		}
		// Several entries for one syscall and errno (ioctl) become
		// alternatives: the library ORs condition sets of one name.
		g := group(p, errno)
		g.NamesWithCondtions = append(g.NamesWithCondtions, libseccomp.NameWithConditions{Name: e.name, Conditions: conds})
	}
	return policies, nil
}

// group returns p's syscall group for errno, adding it if need be.
func group(p *libseccomp.Policy, errno unix.Errno) *libseccomp.SyscallGroup {
	// An explicit errno in the action: the library turns a bare ActionErrno
	// into EPERM and has no other way to pick one.
	action := libseccomp.ActionErrno | libseccomp.Action(errno)
	for i := range p.Syscalls {
		if p.Syscalls[i].Action == action {
			return &p.Syscalls[i]
		}
	}
	p.Syscalls = append(p.Syscalls, libseccomp.SyscallGroup{Action: action})
	return &p.Syscalls[len(p.Syscalls)-1]
}

// conditions translates an argTest into library conditions, which all must
// hold (AND).
//
// The library compares 64-bit arguments as two 32-bit halves, and for
// BitsSet and BitsNotSet a half whose mask is zero never decides anything.
// BitsSet means "any of these bits", not "all of them", so an exact match on
// the low half is built from one BitsSet per bit of the value (each bit must
// be set) plus one BitsNotSet over the other 32 low bits (none of them may
// be); the upper half is never looked at. A plain Equal would compare the
// upper half too and let cmd|1<<32 through.
func conditions(t argTest) (libseccomp.ArgumentConditions, error) {
	if t.arg > 5 {
		return nil, fmt.Errorf("argument %d: syscalls have six", t.arg)
	}
	switch t.op {
	case anyBitSet:
		if t.value == 0 {
			return nil, errors.New("anyBitSet with no bits would never match")
		}
		return libseccomp.ArgumentConditions{{Argument: t.arg, Operation: libseccomp.BitsSet, Value: t.value}}, nil
	case low32Equal:
		if t.value > 0xffffffff {
			return nil, fmt.Errorf("low32Equal value %#x does not fit 32 bits", t.value)
		}
		var conds libseccomp.ArgumentConditions
		for v := uint32(t.value); v != 0; v &= v - 1 {
			bit := uint64(1) << bits.TrailingZeros32(v)
			conds = append(conds, libseccomp.Condition{Argument: t.arg, Operation: libseccomp.BitsSet, Value: bit})
		}
		conds = append(conds, libseccomp.Condition{Argument: t.arg, Operation: libseccomp.BitsNotSet, Value: uint64(^uint32(t.value))})
		return conds, nil
	default:
		return nil, fmt.Errorf("unknown argument test %d", t.op)
	}
}

func errnoValue(name string) (unix.Errno, error) {
	switch name {
	case eperm:
		return unix.EPERM, nil
	case enosys:
		return unix.ENOSYS, nil
	default:
		return 0, fmt.Errorf("unsupported errno %q", name)
	}
}
