package blast

import (
	"os"
	"path/filepath"

	"github.com/cordon-sandbox/cordon/internal/policy"
)

// walls is what a policy makes of a path inside the sandbox, decided the
// way internal/sandbox plans its mounts (planFilesystem): the host
// read-only; the workspace and the policy's writable paths writable; the
// protected paths of the workspace read-only; masks empty and read-only,
// or holding a decoy; a private /tmp and /dev/shm.
type walls struct {
	writable  []string // the workspace first
	masks     []policy.Entry
	protected []string // absolute
	decoyed   map[string]bool
}

func newWalls(p policy.Policy) *walls {
	w := &walls{writable: append([]string{p.Workspace}, p.Writable...), decoyed: map[string]bool{}}
	for _, m := range p.Masks {
		covers := false
		for _, root := range w.writable {
			if within(root, m.Path) && root != m.Path {
				covers = true // the sandbox does not mask what holds its workspace
			}
		}
		if !covers && !private(m.Path) {
			w.masks = append(w.masks, m)
		}
	}
	for _, rel := range p.Pinned {
		path := filepath.Join(p.Workspace, rel)
		if st, err := os.Lstat(path); err != nil || !st.IsDir() {
			// No .git: protected whole, so none can be made inside.
			w.protected = append(w.protected, path)
		}
	}
	for _, e := range p.Protected {
		if filepath.IsAbs(e.Path) {
			// A path of the home: the sandbox holds it read-only
			// only if it exists (a missing one can be created).
			if _, err := os.Lstat(e.Path); err == nil {
				w.protected = append(w.protected, e.Path)
			}
			continue
		}
		w.protected = append(w.protected, filepath.Join(p.Workspace, e.Path))
	}
	return w
}

// private reports whether the sandbox has its own of path: a fresh /tmp,
// /dev, /proc and /sys, so the host's are out of reach.
func private(path string) bool {
	for _, d := range []string{"/tmp", "/dev", "/proc", "/sys"} {
		if within(path, d) {
			return true
		}
	}
	return false
}

// mask returns the mask that hides path, if one does.
func (w *walls) mask(path string) (policy.Entry, bool) {
	best, found := policy.Entry{}, false
	for _, m := range w.masks {
		if within(path, m.Path) && (!found || len(m.Path) > len(best.Path)) {
			best, found = m, true
		}
	}
	return best, found
}

// visible reports whether the sandbox sees the host's path at all: not
// when its own /tmp, /dev, /proc or /sys covers it, unless path lies in a
// writable tree, which is attached on top of them.
func (w *walls) visible(path string) bool {
	for _, root := range w.writable {
		if within(path, root) {
			return true
		}
	}
	return !private(path)
}

// readInside is what the sandbox reads of path, given what the user reads
// on the host.
func (w *walls) readInside(path string, host Reach) Reach {
	if m, ok := w.mask(path); ok {
		if w.decoyed[m.Path] {
			return no("decoy", "a fake in the same format holds its place; its canary tokens raise the alarm if they leave")
		}
		return no("masked", "hidden behind an empty read-only stand-in")
	}
	if !w.visible(path) {
		return no("not there", "the sandbox has its own /tmp, /dev, /proc and /sys")
	}
	if host.InReach() {
		return yes("readable", "the sandbox sees the host read-only, minus the masks")
	}
	return no("unreadable", host.Detail)
}

// writeInside is whether the sandbox can write path (for a missing path:
// create it).
func (w *walls) writeInside(path string) Reach {
	if _, ok := w.mask(path); ok {
		return no("masked", "hidden behind an empty read-only stand-in")
	}
	for _, p := range w.protected {
		if within(path, p) {
			return no("protected", "read-only inside, though in the workspace; cannot be created")
		}
	}
	for i, root := range w.writable {
		if within(path, root) {
			if i == 0 {
				return yes("writable", "in the workspace, which the sandbox writes")
			}
			return yes("writable", "the policy makes "+root+" writable")
		}
	}
	if private(path) {
		return no("not there", "the sandbox has its own /tmp, /dev, /proc and /sys")
	}
	return no("read-only", "outside the workspace: the sandbox sees the host read-only")
}

// connectInside is whether the sandbox can connect to the unix socket at
// path. A pathname socket is reachable from any network namespace, so
// one that no mask hides is counted as reachable: Landlock confines
// connecting to the write set only from ABI 9, which this report does not
// probe.
func (w *walls) connectInside(path string) Reach {
	if _, ok := w.mask(path); ok {
		return no("masked", "hidden behind an empty read-only stand-in")
	}
	if !w.visible(path) {
		return no("not there", "the sandbox has its own /tmp")
	}
	return yes("connectable", "no mask hides it (Landlock ABI 9 and later refuse it outside the write set)")
}
