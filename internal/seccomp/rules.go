package seccomp

import (
	"runtime"
	"slices"
)

// Rule is one entry of the deny list.
type Rule struct {
	Syscall string // e.g. "mount", or "ioctl(TIOCSTI)", "clone(CLONE_NEWUSER|...)"
	Errno   string // "EPERM" or "ENOSYS"
	Why     string // one line, for docs and `cordon doctor`
}

// Rules returns the deny list in a stable order (for docs, doctor, tests).
// It lists the rules that apply to the running architecture: iopl and ioperm
// exist on amd64 only.
func Rules() []Rule {
	var out []Rule
	for _, e := range entriesFor(runtime.GOARCH) {
		out = append(out, e.rule())
	}
	return out
}

// Linux flag and ioctl values the deny list needs. They are written out here,
// not taken from x/sys/unix, so that Rules builds on every GOOS; they are the
// same on amd64 and arm64.
const (
	cloneNewNS     = 0x00020000
	cloneNewCgroup = 0x02000000
	cloneNewUTS    = 0x04000000
	cloneNewIPC    = 0x08000000
	cloneNewUser   = 0x10000000
	cloneNewPID    = 0x20000000
	cloneNewNet    = 0x40000000

	tiocsti   = 0x5412
	tioclinux = 0x541c
)

// cloneNewNamespaces is every namespace flag clone(2) accepts. CLONE_NEWTIME
// is missing on purpose: the kernel takes it from unshare and clone3 only, and
// both are refused whole.
const cloneNewNamespaces = cloneNewNS | cloneNewUTS | cloneNewIPC | cloneNewUser |
	cloneNewPID | cloneNewNet | cloneNewCgroup

// argOp is how an argTest compares a syscall argument.
type argOp int

const (
	// anyBitSet matches when any bit of value is set in the argument.
	anyBitSet argOp = iota + 1
	// low32Equal matches when the low 32 bits of the argument equal value,
	// whatever the upper 32 bits hold. The kernel declares ioctl's cmd as an
	// unsigned int and drops the upper half of the register, so comparing
	// all 64 bits would let cmd|1<<32 through.
	low32Equal
)

// argTest narrows a rule to the calls whose argument passes the test.
type argTest struct {
	arg   uint32 // argument index, 0 to 5
	op    argOp
	value uint64
}

// entry is one deny-list rule as the filter compiler sees it.
type entry struct {
	name   string   // the syscall's name in the kernel's table
	args   string   // shown as name(args) in Rule.Syscall; empty when test is nil
	test   *argTest // nil: every call is denied
	errno  string   // "EPERM" or "ENOSYS"
	why    string
	arches []string // GOARCH values that have this syscall; nil for all
}

func (e entry) rule() Rule {
	r := Rule{Syscall: e.name, Errno: e.errno, Why: e.why}
	if e.args != "" {
		r.Syscall += "(" + e.args + ")"
	}
	return r
}

// entriesFor returns the entries that apply to goarch, in deny-list order.
func entriesFor(goarch string) []entry {
	var out []entry
	for _, e := range denyList {
		if e.arches == nil || slices.Contains(e.arches, goarch) {
			out = append(out, e)
		}
	}
	return out
}

const (
	eperm  = "EPERM"
	enosys = "ENOSYS"
)

// denyList is the deny list. Adding a syscall here is all it takes to deny
// it; the tests check every entry against the compiled filter.
var denyList = []entry{
	// Mounts: the sandbox's view of the file system is fixed before the
	// filter goes on and must stay that way.
	{name: "mount", errno: eperm, why: "changes the mount table the sandbox is built on"},
	{name: "umount2", errno: eperm, why: "could uncover what the sandbox's mounts hide"},
	{name: "pivot_root", errno: eperm, why: "changes the root of the mount namespace"},
	{name: "chroot", errno: eperm, why: "changes the root directory; a classic step in escaping one"},
	{name: "move_mount", errno: eperm, why: "new mount API: attaches or moves mounts"},
	{name: "open_tree", errno: eperm, why: "new mount API: clones mount trees into detached mounts"},
	// open_tree_attr (Linux 6.15) is open_tree plus mount_setattr in one
	// call; allowing it would undo the two rules around it.
	{name: "open_tree_attr", errno: eperm, why: "new mount API: open_tree with mount attributes"},
	{name: "fsopen", errno: eperm, why: "new mount API: creates a file system context"},
	{name: "fsconfig", errno: eperm, why: "new mount API: configures a file system context"},
	{name: "fsmount", errno: eperm, why: "new mount API: turns a file system context into a mount"},
	{name: "fspick", errno: eperm, why: "new mount API: reconfigures an existing mount"},
	{name: "mount_setattr", errno: eperm, why: "changes mount flags such as read-only or nosuid"},

	// Namespaces: a new user namespace hands out capabilities and opens
	// kernel code otherwise reserved to root; the others change what the
	// walls were set up against.
	{name: "unshare", errno: eperm, why: "creates namespaces, the first step of most container escapes"},
	{name: "setns", errno: eperm, why: "joins another namespace"},
	{
		name:  "clone",
		args:  "CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWCGROUP",
		test:  &argTest{arg: 0, op: anyBitSet, value: cloneNewNamespaces},
		errno: eperm,
		why:   "creates namespaces while forking; plain fork and threads stay allowed",
	},
	{name: "clone3", errno: enosys, why: "its flags sit in memory seccomp cannot read; ENOSYS makes libc and Go fall back to clone"},

	// Other processes.
	{name: "ptrace", errno: eperm, why: "reads and rewrites other processes"},
	{name: "process_vm_readv", errno: eperm, why: "reads another process's memory"},
	{name: "process_vm_writev", errno: eperm, why: "writes another process's memory"},
	{name: "pidfd_getfd", errno: eperm, why: "steals a file descriptor from another process"},
	{name: "kcmp", errno: eperm, why: "compares kernel objects of other processes, leaking kernel layout"},

	// Kernel attack surface with a long record of exploitable bugs.
	{name: "bpf", errno: eperm, why: "loads programs into the kernel"},
	{name: "perf_event_open", errno: eperm, why: "kernel profiling interface; leaks kernel addresses and has a history of exploits"},
	{name: "userfaultfd", errno: eperm, why: "lets a process stall the kernel on a page fault, a staple of race exploits"},
	{name: "io_uring_setup", errno: eperm, why: "io_uring bypasses syscall filtering and has a history of exploits"},
	{name: "io_uring_enter", errno: eperm, why: "io_uring bypasses syscall filtering and has a history of exploits"},
	{name: "io_uring_register", errno: eperm, why: "io_uring bypasses syscall filtering and has a history of exploits"},

	// Keyring: not namespaced, so keys would be shared with the host.
	{name: "add_key", errno: eperm, why: "kernel keyring is not namespaced"},
	{name: "request_key", errno: eperm, why: "kernel keyring is not namespaced"},
	{name: "keyctl", errno: eperm, why: "kernel keyring is not namespaced"},

	// Loading and replacing kernel code.
	{name: "init_module", errno: eperm, why: "loads a kernel module"},
	{name: "finit_module", errno: eperm, why: "loads a kernel module"},
	{name: "delete_module", errno: eperm, why: "unloads a kernel module"},
	{name: "kexec_load", errno: eperm, why: "replaces the running kernel"},
	{name: "kexec_file_load", errno: eperm, why: "replaces the running kernel"},

	// Clocks are not namespaced (CLONE_NEWTIME only offsets monotonic ones).
	{name: "settimeofday", errno: eperm, why: "sets the host's clock"},
	{name: "clock_settime", errno: eperm, why: "sets the host's clock"},
	{name: "clock_adjtime", errno: eperm, why: "adjusts the host's clock"},
	{name: "adjtimex", errno: eperm, why: "adjusts the host's clock"},

	// Host administration.
	{name: "reboot", errno: eperm, why: "reboots the host or loads a new kernel"},
	{name: "swapon", errno: eperm, why: "changes the host's swap"},
	{name: "swapoff", errno: eperm, why: "changes the host's swap"},
	{name: "acct", errno: eperm, why: "switches process accounting for the host"},
	{name: "quotactl", errno: eperm, why: "manages disk quotas"},
	{name: "quotactl_fd", errno: eperm, why: "manages disk quotas, like quotactl"},
	{name: "syslog", errno: eperm, why: "reads or clears the kernel log, which leaks kernel addresses"},
	{name: "vhangup", errno: eperm, why: "hangs up the controlling terminal"},
	{name: "fanotify_init", errno: eperm, why: "watches file access across the whole mount or file system"},
	{name: "lookup_dcookie", errno: eperm, why: "profiling call that returns paths by kernel cookie"},
	{name: "name_to_handle_at", errno: eperm, why: "file handles, the other half of open_by_handle_at"},
	{name: "open_by_handle_at", errno: eperm, why: "opens files by handle, bypassing the mount namespace (the shocker escape)"},
	{name: "iopl", errno: eperm, why: "raises I/O privilege to reach hardware ports", arches: []string{"amd64"}},
	{name: "ioperm", errno: eperm, why: "grants access to hardware I/O ports", arches: []string{"amd64"}},

	// Terminal injection: both push input into a terminal that may be shared
	// with the user's shell outside the sandbox.
	{
		name:  "ioctl",
		args:  "TIOCSTI",
		test:  &argTest{arg: 1, op: low32Equal, value: tiocsti},
		errno: eperm,
		why:   "fakes terminal input, typing commands into the shell outside",
	},
	{
		name:  "ioctl",
		args:  "TIOCLINUX",
		test:  &argTest{arg: 1, op: low32Equal, value: tioclinux},
		errno: eperm,
		why:   "pastes the console selection as terminal input",
	},
}
