package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/cordon-sandbox/cordon/internal/cgroup"
)

// placeholderMode marks a placeholder: an empty directory with the sticky
// bit and r-x for all, which no one makes by hand. Another run that finds
// one shares it instead of taking it for the user's own directory. (A mode
// rather than an xattr: every filesystem keeps a mode.)
const placeholderMode = os.ModeDir | os.ModeSticky | 0o555

// cleanupJob is what a run leaves on the host and must undo: placeholders
// in writable trees, the directories made to hold them, a cgroup leaf.
// The supervisor undoes it at the end of the run; if the supervisor is
// killed first, its cleanup helper does, when the pipe from the supervisor
// closes. The helper runs in a session of its own, so a signal to the
// supervisor's process group does not reach it.
type cleanupJob struct {
	Placeholders []placeholder `json:"placeholders,omitempty"`
	Dirs         []string      `json:"dirs,omitempty"` // made for placeholders, parents first
	CgroupDirs   []string      `json:"cgroup_dirs,omitempty"`
	// Roots are the writable trees that may hold placeholders. Runs lock
	// them (flock, exclusive) while they make, join or remove placeholders,
	// so that no run joins one that another is removing.
	Roots []string `json:"roots,omitempty"`

	locks   []*os.File // shared flocks on placeholders while the run lives
	helper  int        // pid of the cleanup helper, 0 if none
	pipe    *os.File
	started chan struct{} // closed once the helper is started or not
}

type placeholder struct {
	Path string `json:"path"`
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
}

func (j *cleanupJob) empty() bool {
	return len(j.Placeholders) == 0 && len(j.Dirs) == 0 && len(j.CgroupDirs) == 0
}

// mkdirs makes dir and its missing parents, remembering them.
func (j *cleanupJob) mkdirs(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || d == "/" {
			break
		}
		missing = append([]string{d}, missing...)
	}
	for _, d := range missing {
		if err := os.Mkdir(d, 0o755); err != nil {
			return internal("making %s for a placeholder: %w", d, err)
		}
		j.Dirs = append(j.Dirs, d)
	}
	return nil
}

// lockRoots takes the exclusive lock of every root, in order (so two runs
// cannot deadlock), and returns what releases them.
func lockRoots(roots []string) (func(), error) {
	sorted := append([]string(nil), roots...)
	sort.Strings(sorted)
	var held []*os.File
	release := func() {
		for _, f := range held {
			f.Close()
		}
	}
	for _, r := range sorted {
		f, err := os.Open(r)
		if err != nil {
			release()
			return nil, fmt.Errorf("opening %s to lock it: %w", r, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			release()
			return nil, fmt.Errorf("locking %s: %w", r, err)
		}
		held = append(held, f)
	}
	return release, nil
}

// claim holds the place of path for the run: it makes a placeholder there
// when path is missing, or joins the placeholder another run made. It
// reports false, and does nothing, when path is the user's own. Every run
// that uses a placeholder holds a shared lock on it; the last one removes
// it. The caller holds the roots' locks.
func (j *cleanupJob) claim(path string) (bool, error) {
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(path, 0o700); err != nil {
			return false, internal("making a placeholder at %s: %w", path, err)
		}
		if err := os.Chmod(path, placeholderMode); err != nil {
			unix.Rmdir(path)
			return false, internal("marking the placeholder at %s: %w", path, err)
		}
	case err != nil:
		return false, internal("inspecting %s: %w", path, err)
	case st.Mode() != placeholderMode:
		return false, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return false, internal("opening placeholder %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return false, internal("locking placeholder %s: %w", path, err)
	}
	var fst unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &fst); err != nil {
		f.Close()
		return false, internal("inspecting placeholder %s: %w", path, err)
	}
	j.locks = append(j.locks, f)
	j.Placeholders = append(j.Placeholders, placeholder{Path: path, Dev: fst.Dev, Ino: fst.Ino})
	return true, nil
}

// sweepStaleLeaves removes the cgroup leaves that runs killed before their
// cleanup helper started left next to ours: those named cordon-PID-* whose
// PID is no longer alive.
func sweepStaleLeaves(dirs []string) {
	for _, d := range dirs {
		parent := filepath.Dir(d)
		ents, err := os.ReadDir(parent)
		if err != nil {
			continue
		}
		for _, e := range ents {
			var pid, n int
			if _, err := fmt.Sscanf(e.Name(), "cordon-%d-%d", &pid, &n); err != nil || pid == os.Getpid() {
				continue
			}
			if unix.Kill(pid, 0) == unix.ESRCH {
				cgroup.RemoveDirs([]string{filepath.Join(parent, e.Name())})
			}
		}
	}
}

// startAsync launches the helper that undoes the job if the supervisor
// dies, in the background: it starts while init builds the sandbox, off the
// critical path. ready waits for it; the supervisor calls that before it
// lets the command run, so that from then on a SIGKILL of the supervisor
// is always undone. A supervisor killed earlier leaves its placeholders and
// cgroup leaf to the next run, which takes them over (placeholders carry
// their mark) or sweeps them (sweepStaleLeaves).
func (j *cleanupJob) startAsync() {
	if j.empty() {
		return
	}
	j.started = make(chan struct{})
	go func() {
		defer close(j.started)
		j.start()
	}()
}

// ready waits until the helper has started (or failed to).
func (j *cleanupJob) ready() {
	if j.started != nil {
		<-j.started
	}
}

// start launches the helper now. A failure leaves the job to the next
// run, as for a supervisor killed before the helper started.
func (j *cleanupJob) start() {
	r, w, err := os.Pipe()
	if err != nil {
		return
	}
	defer r.Close()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		w.Close()
		return
	}
	defer null.Close()
	stderr := null.Fd()
	if term.IsTerminal(int(os.Stderr.Fd())) {
		stderr = os.Stderr.Fd()
	}
	// syscall.ForkExec, not exec.Cmd: see launch.
	pid, err := syscall.ForkExec("/proc/self/exe", []string{CleanupArg0}, &syscall.ProcAttr{
		Env:   []string{},
		Files: []uintptr{r.Fd(), null.Fd(), stderr},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		w.Close()
		return
	}
	if err := json.NewEncoder(w).Encode(j); err != nil {
		w.Close()
		unix.Kill(pid, unix.SIGKILL)
		unix.Wait4(pid, nil, 0, nil)
		return
	}
	j.helper, j.pipe = pid, w
}

// finish undoes the job, and lets the helper go. The placeholders are
// removed before it returns (a user may look at the workspace as soon as
// cordon exits); the cgroup leaf, which takes milliseconds to remove and
// which nobody looks at, is left to the helper when there is one.
func (j *cleanupJob) finish(log func(string, ...any)) {
	j.ready()
	for _, f := range j.locks {
		f.Close()
	}
	j.locks = nil
	if j.helper != 0 {
		cgroups := j.CgroupDirs
		j.CgroupDirs = nil
		err := j.undo()
		j.CgroupDirs = cgroups
		if err != nil {
			log("cleanup: %v", err)
		}
		fmt.Fprintln(j.pipe, "cgroup")
		j.pipe.Close()
		go unix.Wait4(j.helper, nil, 0, nil)
		return
	}
	if err := j.undo(); err != nil {
		log("cleanup: %v", err)
	}
}

// undo removes what the job made, where it is still what the job made.
func (j *cleanupJob) undo() error {
	var errs []error
	if len(j.Placeholders) > 0 {
		release, err := lockRoots(j.Roots)
		if err != nil {
			return err
		}
		defer release()
	}
	if len(j.CgroupDirs) > 0 {
		if err := cgroup.RemoveDirs(j.CgroupDirs); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range j.Placeholders {
		if err := removePlaceholder(p); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(j.Dirs) - 1; i >= 0; i-- {
		// Only if still empty: what the command wrote there stays.
		unix.Rmdir(j.Dirs[i])
	}
	return errors.Join(errs...)
}

// removePlaceholder removes p if it is still the empty directory made for
// it and no other run holds it.
func removePlaceholder(p placeholder) error {
	f, err := os.Open(p.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening placeholder %s: %w", p.Path, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Dev != p.Dev || st.Ino != p.Ino {
		return nil // not ours any more
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil // another run still uses it and will remove it
	}
	if err := unix.Rmdir(p.Path); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing placeholder %s: %w", p.Path, err)
	}
	return nil
}

// Cleanup is the body of the cleanup helper. It reads the job, then waits:
// "cgroup" from the supervisor means it has undone the rest of the job and
// leaves the cgroup leaf to the helper; the end of the pipe without a word
// means it died, and the helper undoes the whole job.
func Cleanup() {
	// Blocks until the supervisor closes its end, by a word or by dying.
	data, _ := io.ReadAll(os.Stdin)
	job, rest, _ := strings.Cut(string(data), "\n")
	var j cleanupJob
	if err := json.Unmarshal([]byte(job), &j); err != nil {
		os.Exit(2)
	}
	if strings.TrimSpace(rest) == "cgroup" {
		if err := cgroup.RemoveDirs(j.CgroupDirs); err != nil {
			fmt.Fprintf(os.Stderr, "cordon: removing the cgroup of a finished run: %v\n", err)
			os.Exit(1)
		}
		return
	}
	// The supervisor is gone, and with it init (Pdeathsig): give the
	// kernel a moment to tear down the sandbox, then undo.
	deadline := time.Now().Add(10 * time.Second)
	j.waitUnlocked(2 * time.Second)
	for {
		err := j.undo()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "cordon: cleanup after a killed run: %v\n", err)
			os.Exit(1)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitUnlocked waits, up to d, until no placeholder is locked. The dead
// supervisor's shared locks go with its open files, which the kernel may
// release only after the end of the pipe has woken the helper; undo would
// take such a lock for another run's and leave the placeholder behind. A
// lock still held after d is another run's, which removes it itself.
func (j *cleanupJob) waitUnlocked(d time.Duration) {
	deadline := time.Now().Add(d)
	for _, p := range j.Placeholders {
		for locked(p.Path) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// locked reports whether a run holds a lock on the placeholder at path.
func locked(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close() // and with it the lock, if we got it
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil
}
