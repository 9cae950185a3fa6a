package server

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/session"
)

// asOwner runs f with this goroutine's thread acting, on the filesystem,
// as the session's owner: its filesystem uid and gid set to theirs and no
// supplementary group. A root server thus makes files in a session that
// the session can change, and reads for a caller only what the session's
// user could read: root's own files on the host base are not handed out
// through the files API any more than through an exec. Those ids are per
// thread in Linux, so the goroutine is locked to its thread until they are
// back; if they cannot be put back, the thread is left locked, and ends
// with the goroutine.
func asOwner(o session.Owner, f func() error) error {
	if o.UID < 0 || o.GID < 0 || os.Geteuid() != 0 || o.UID == 0 && o.GID == 0 {
		return f()
	}
	runtime.LockOSThread()
	groups, err := unix.Getgroups()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("reading the server's groups: %w", err)
	}
	restored := false
	defer func() {
		if restored {
			runtime.UnlockOSThread()
		}
	}()
	defer func() {
		// The raw calls change this thread only.
		unix.SetfsuidRetUid(0)
		unix.SetfsgidRetGid(0)
		gerr := unix.Setgroups(groups)
		u, _ := unix.SetfsuidRetUid(-1)
		g, _ := unix.SetfsgidRetGid(-1)
		restored = gerr == nil && u == 0 && g == 0
	}()
	if err := unix.Setgroups(nil); err != nil {
		return fmt.Errorf("dropping the server's groups: %w", err)
	}
	unix.SetfsgidRetGid(o.GID)
	unix.SetfsuidRetUid(o.UID)
	if u, _ := unix.SetfsuidRetUid(-1); u != o.UID {
		return fmt.Errorf("acting as uid %d in the session: the kernel kept %d", o.UID, u)
	}
	if g, _ := unix.SetfsgidRetGid(-1); g != o.GID {
		return fmt.Errorf("acting as gid %d in the session: the kernel kept %d", o.GID, g)
	}
	return f()
}
