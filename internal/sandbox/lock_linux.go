package sandbox

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsyscall "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"

	"github.com/cordon-sandbox/cordon/internal/seccomp"
)

// landlockConfig is what Cordon asks of Landlock: every filesystem right
// of ABI 6, TCP connect (not bind: a server on the sandbox's own loopback is
// harmless, and the network namespace keeps it there), and signal and
// abstract-socket scoping. It needs ABI 6 (Linux 6.12).
var landlockConfig = landlock.Config{
	HandledAccessFS:  landlock.V6.HandledAccessFS,
	HandledAccessNet: llsyscall.AccessNetConnectTCP,
	Scoped:           landlock.V6.Scoped,
}

// unixSocketABI is the Landlock ABI that can restrict connecting to
// pathname unix sockets: used when the kernel has it, not required.
const unixSocketABI = 9

// lockdown locks init and, through inheritance, the command: no_new_privs,
// Landlock, every capability dropped, seccomp — in that order, because
// Landlock needs no_new_privs, dropping capabilities needs CAP_SETPCAP
// which the seccomp filter does not touch, and seccomp goes last, as close
// to the command's execve as it can. Each step applies to every thread of
// init, since the Go runtime may fork the command from any of them.
//
// The all-threads calls go through psx, which go-landlock uses too: it is
// syscall.AllThreadsSyscall in a pure-Go build and still works when the
// binary is built with cgo (where AllThreadsSyscall refuses).
//
// It returns warnings for walls the user allowed to be degraded.
func lockdown(p *Plan) ([]string, error) {
	var warnings []string
	if _, _, e := psx.Syscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); e != 0 {
		return nil, fmt.Errorf("setting no_new_privs: %w", e)
	}

	if err := restrictLandlock(p); err != nil {
		if p.Landlock == Required {
			return nil, fmt.Errorf("landlock: %w", err)
		}
		warnings = append(warnings, fmt.Sprintf("landlock: %v; running without this wall because --allow-degraded landlock was given", err))
	}

	if err := dropCapabilities(); err != nil {
		return nil, fmt.Errorf("dropping capabilities: %w", err)
	}

	if err := seccomp.Install(); err != nil {
		if p.Seccomp == Required {
			return nil, fmt.Errorf("seccomp: %w", err)
		}
		warnings = append(warnings, fmt.Sprintf("seccomp: %v; running without this wall because --allow-degraded seccomp was given", err))
	}
	return warnings, nil
}

// restrictLandlock enforces the write set again, below the mounts: if a
// mount trick ever exposed a path, Landlock still refuses the write. It
// also refuses TCP connections but to the allowed ports, and scopes signals
// and abstract unix sockets to the sandbox.
func restrictLandlock(p *Plan) error {
	cfg := landlockConfig
	if p.Landlock == BestEffort {
		cfg = cfg.BestEffort()
	}
	write := append([]string{p.Workspace, "/tmp", "/dev/shm"}, p.Writable...)
	rw := landlock.RWDirs(write...)
	if LandlockABI() >= unixSocketABI {
		// Where the kernel can, connecting to a pathname unix socket is
		// refused outside the write set too: a socket of the host in a
		// directory no mask covers (a Docker socket somewhere in the
		// home) is otherwise reachable, since such sockets ignore
		// network namespaces.
		cfg.HandledAccessFS |= llsyscall.AccessFSResolveUnix
		rw = rw.WithResolveUnix()
	}
	rules := []landlock.Rule{
		landlock.RODirs("/"),
		rw,
		// Terminals and the harmless devices are written to and take
		// ioctls (tcsetattr, window size).
		landlock.RWFiles("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty").WithIoctlDev(),
		landlock.RWDirs("/dev/pts").WithIoctlDev(),
	}
	for _, port := range p.ConnectPorts {
		rules = append(rules, landlock.ConnectTCP(port))
	}
	return cfg.Restrict(rules...)
}

// LandlockABI reports the Landlock ABI version of this kernel (0: none).
func LandlockABI() int {
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return 0
	}
	return int(v)
}

// dropCapabilities leaves the command with no capability in any set, and
// init with none either.
//
// The bounding set and the securebits matter only at execve, and only on
// the thread that forks the command (Init locks its main goroutine to one
// OS thread, and forks from it): they are set there, with plain prctl
// calls. The other threads of init never execve; for them clearing the
// capability sets is enough, and that is one all-threads call instead of
// one per capability (each all-threads call stops every thread; dropping
// the bounding set on all of them was most of a run's start-up time).
//
// Securebits NOROOT (locked) keep uid 0 inside (Cordon started as root)
// from gaining the bounding set back at execve.
func dropCapabilities() error {
	if _, _, e := psx.Syscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 {
		return fmt.Errorf("clearing ambient capabilities: %w", e)
	}
	last, err := lastCap()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	bits := secbitNoroot | secbitNorootLocked |
		secbitNoSetuidFixup | secbitNoSetuidFixupLocked |
		secbitKeepCapsLocked |
		secbitNoCapAmbientRaise | secbitNoCapAmbientRaiseLocked
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, uintptr(bits), 0, 0, 0); err != nil {
		return fmt.Errorf("locking securebits: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	_, _, e := psx.Syscall3(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	runtime.KeepAlive(&hdr)
	runtime.KeepAlive(&data)
	if e != 0 {
		return fmt.Errorf("clearing capability sets: %w", e)
	}
	return nil
}

// Securebits, from linux/securebits.h (x/sys/unix does not export them).
const (
	secbitNoroot                  = 1 << 0
	secbitNorootLocked            = 1 << 1
	secbitNoSetuidFixup           = 1 << 2
	secbitNoSetuidFixupLocked     = 1 << 3
	secbitKeepCapsLocked          = 1 << 5
	secbitNoCapAmbientRaise       = 1 << 6
	secbitNoCapAmbientRaiseLocked = 1 << 7
)

func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 40, nil
		}
		return 0, fmt.Errorf("reading cap_last_cap: %w", err)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
