package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/cordon-sandbox/cordon/internal/cgroup"
)

// CleanupArg0 is argv[0] of the re-executed binary when it is a run's
// cleanup helper.
const CleanupArg0 = "cordon-cleanup"

// placeholderXattr marks a placeholder, so that another run that finds it
// shares it instead of taking it for the user's own directory.
const placeholderXattr = "user.cordon.placeholder"

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

	locks   []*os.File // shared flocks on placeholders while the run lives
	helper  *exec.Cmd
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

// placeholder holds the place of a missing path with an empty directory,
// or joins the placeholder another run left there. Every run that uses a
// placeholder holds a shared lock on it; the last one removes it.
func (j *cleanupJob) placeholder(path string, _ bool) error {
	err := os.Mkdir(path, 0o755)
	if errors.Is(err, os.ErrExist) {
		if !isPlaceholder(path) {
			return nil // the user's own: bound read-only like any other
		}
	} else if err != nil {
		return internal("making a placeholder at %s: %w", path, err)
	} else {
		// Best effort: without xattrs a concurrent run would take it
		// for the user's directory and not share it.
		unix.Setxattr(path, placeholderXattr, []byte("1"), 0)
	}
	f, err := os.Open(path)
	if err != nil {
		return internal("opening placeholder %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return internal("locking placeholder %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return internal("inspecting placeholder %s: %w", path, err)
	}
	j.locks = append(j.locks, f)
	j.Placeholders = append(j.Placeholders, placeholder{Path: path, Dev: st.Dev, Ino: st.Ino})
	return nil
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

func isPlaceholder(path string) bool {
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(path, placeholderXattr, buf)
	return err == nil && n > 0
}

// startAsync launches the helper that undoes the job if the supervisor
// dies, in the background: it starts while init builds the sandbox, off the
// critical path. ready waits for it; the supervisor calls that before it
// lets the command run, so that from then on a SIGKILL of the supervisor
// is always undone. A supervisor killed earlier leaves its placeholders and
// cgroup leaf to the next run, which takes them over (placeholders carry an
// xattr) or sweeps them (sweepStaleLeaves).
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
	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{CleanupArg0},
		Env:         []string{},
		Stdin:       r,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if term.IsTerminal(int(os.Stderr.Fd())) {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return
	}
	if err := json.NewEncoder(w).Encode(j); err != nil {
		w.Close()
		cmd.Process.Kill()
		cmd.Wait()
		return
	}
	j.helper, j.pipe = cmd, w
}

// finish undoes the job now, and lets the helper go.
func (j *cleanupJob) finish(log func(string, ...any)) {
	j.ready()
	for _, f := range j.locks {
		f.Close()
	}
	j.locks = nil
	if err := j.undo(); err != nil {
		log("cleanup: %v", err)
	}
	if j.helper != nil {
		// "done": the helper exits by itself; no need to wait for it.
		fmt.Fprintln(j.pipe, "done")
		j.pipe.Close()
		go j.helper.Wait()
	}
}

// undo removes what the job made, where it is still what the job made.
func (j *cleanupJob) undo() error {
	var errs []error
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
// "done" from the supervisor means it has undone the job itself; the end
// of the pipe without "done" means it died, and the helper undoes the job.
func Cleanup() {
	// Blocks until the supervisor closes its end, by "done" or by dying.
	data, _ := io.ReadAll(os.Stdin)
	job, rest, _ := strings.Cut(string(data), "\n")
	var j cleanupJob
	if err := json.Unmarshal([]byte(job), &j); err != nil {
		os.Exit(2)
	}
	if strings.TrimSpace(rest) == "done" {
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
