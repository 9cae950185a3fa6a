package cordontest

import (
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// UnprivilegedUID is the uid (and gid) that tests run as when the test
// binary itself runs as root. It needs no passwd entry.
const UnprivilegedUID = 4242

// User is one identity a wall test runs as.
type User struct {
	Name     string // "root" or "user", for t.Run
	UID, GID int
}

// Root reports whether this user is uid 0.
func (u User) Root() bool { return u.UID == 0 }

// Users returns the identities to test as: root and an unprivileged uid
// when the test binary runs as root (as in CI), else only the caller.
func Users() []User {
	if os.Geteuid() == 0 {
		return []User{{"root", 0, 0}, {"user", UnprivilegedUID, UnprivilegedUID}}
	}
	return []User{{"user", os.Getuid(), os.Getgid()}}
}

// Command returns cmd set up to run as u: switched to u's ids when the test
// runs as root and u is not.
func (u User) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	if os.Geteuid() == 0 && u.UID != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}},
		}
	}
	return cmd
}

// Chown gives path to u (when the test runs as root).
func (u User) Chown(t testing.TB, paths ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	for _, p := range paths {
		if err := os.Lchown(p, u.UID, u.GID); err != nil {
			t.Fatalf("chown %s: %v", p, err)
		}
	}
}

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// RequireUserNS skips the test unless this user can create a user
// namespace (with a mount namespace inside).
func RequireUserNS(t testing.TB) {
	t.Helper()
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}},
	}
	if err := cmd.Run(); err != nil {
		t.Skipf("user namespaces are not available: %v", err)
	}
}

// LandlockABI returns the kernel's Landlock ABI version, 0 without it.
func LandlockABI() int {
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return 0
	}
	return int(v)
}

// RequireLandlock skips the test unless Landlock has at least ABI abi.
func RequireLandlock(t testing.TB, abi int) {
	t.Helper()
	if got := LandlockABI(); got < abi {
		t.Skipf("needs Landlock ABI %d, kernel has %d", abi, got)
	}
}
