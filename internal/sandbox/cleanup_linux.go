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

	locks  []*os.File // shared flocks on placeholders while the run lives
	helper *exec.Cmd
	pipe   *os.File
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

func isPlaceholder(path string) bool {
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(path, placeholderXattr, buf)
	return err == nil && n > 0
}

// start launches the helper that undoes the job if the supervisor dies.
func (j *cleanupJob) start() error {
	if j.empty() {
		return nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return internal("creating the cleanup pipe: %w", err)
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
		return internal("starting the cleanup helper: %w", err)
	}
	if err := json.NewEncoder(w).Encode(j); err != nil {
		w.Close()
		cmd.Process.Kill()
		cmd.Wait()
		return internal("handing the cleanup job over: %w", err)
	}
	j.helper, j.pipe = cmd, w
	return nil
}

// finish undoes the job now, and lets the helper go.
func (j *cleanupJob) finish(log func(string, ...any)) {
	for _, f := range j.locks {
		f.Close()
	}
	j.locks = nil
	if err := j.undo(); err != nil {
		log("cleanup: %v", err)
	}
	if j.helper != nil {
		fmt.Fprintln(j.pipe, "done")
		j.pipe.Close()
		j.helper.Wait()
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
