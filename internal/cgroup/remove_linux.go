package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// killTimeout bounds Kill's loop where there is no cgroup.kill.
	killTimeout = 2 * time.Second
	// removeTimeout bounds Remove: killing, waiting for the processes to
	// exit and removing the directories.
	removeTimeout = 5 * time.Second
)

// Kill sends SIGKILL to every process in the leaf, sub-cgroups included.
// With cgroup.kill (v2, Linux 5.14+) the kernel does it at once, forks in
// flight included; otherwise Kill signals the processes listed in
// cgroup.procs and reads it again until it is empty, for at most 2 seconds.
func (l *Leaf) Kill() error {
	end := time.Now().Add(killTimeout)
	var errs []error
	for _, d := range l.dirs {
		errs = append(errs, killTree(d, end))
	}
	return errors.Join(errs...)
}

// Remove kills what is left in the leaf, waits (at most 5 seconds) until it
// is empty, and removes its directories and the shared cordon/ parents that
// are then empty. A leaf already gone is not an error.
func (l *Leaf) Remove() error {
	l.OOMKilled() // read the counters while they exist
	return removeDirs(l.dirs)
}

// RemoveDirs is Remove for a process that did not create the leaf, such as
// Cordon's cleanup after its supervisor was killed: dirs is what Leaf.Dirs
// returned. It refuses, before touching anything, a directory that is not a
// cgroup named <something>/cordon/<name> below a cgroup mount point, so that
// a stale or altered list cannot make it kill unrelated processes.
func RemoveDirs(dirs []string) error {
	for _, d := range dirs {
		if err := checkLeafDir(d); err != nil {
			return err
		}
	}
	return removeDirs(dirs)
}

func removeDirs(dirs []string) error {
	end := time.Now().Add(removeTimeout)
	var errs []error
	for _, d := range dirs {
		if err := killTree(d, end); err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range dirs {
		if err := removeTree(d, end); err != nil {
			errs = append(errs, err)
			continue
		}
		removeParent(d)
	}
	return errors.Join(errs...)
}

// checkLeafDir accepts an absolute, clean path of an existing or vanished
// directory on a cgroup filesystem whose parent is named cordon and is not
// the mount point itself.
func checkLeafDir(dir string) error {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return fmt.Errorf("cgroup leaf %q: not an absolute clean path", dir)
	}
	parent := filepath.Dir(dir)
	if filepath.Base(parent) != parentName {
		return fmt.Errorf("cgroup leaf %s: not inside a %s directory", dir, parentName)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(parent, &st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // already removed, nothing to kill
		}
		return fmt.Errorf("cgroup leaf %s: %w", dir, err)
	}
	if st.Type != unix.CGROUP_SUPER_MAGIC && st.Type != unix.CGROUP2_SUPER_MAGIC {
		return fmt.Errorf("cgroup leaf %s: not on a cgroup filesystem", dir)
	}
	// A cordon/ that is a hierarchy's mount point would make dir a
	// top-level cgroup of a foreign mount; the layout never does that.
	var ps, gs unix.Stat_t
	if err := unix.Stat(parent, &ps); err != nil {
		return fmt.Errorf("cgroup leaf %s: %w", dir, err)
	}
	if err := unix.Stat(filepath.Dir(parent), &gs); err != nil {
		return fmt.Errorf("cgroup leaf %s: %w", dir, err)
	}
	if ps.Dev != gs.Dev {
		return fmt.Errorf("cgroup leaf %s: %s is a mount point", dir, parent)
	}
	return nil
}

// killTree sends SIGKILL to every process in dir and the cgroups below it.
// Without cgroup.kill it goes round until none is left or end has passed.
func killTree(dir string, end time.Time) error {
	if writeFile(filepath.Join(dir, "cgroup.kill"), "1") == nil {
		return nil
	}
	for {
		pids, err := treePids(dir)
		if err != nil {
			return fmt.Errorf("killing processes in %s: %w", dir, err)
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("killing processes in %s: %d still there", dir, len(pids))
		}
		if err := killMembers(dir, pids); err != nil {
			return fmt.Errorf("killing processes in %s: %w", dir, err)
		}
		// Killed processes stay listed until they have finished exiting.
		time.Sleep(5 * time.Millisecond)
	}
}

// killMembers sends SIGKILL to those of pids that are still in dir's tree.
// A pid read from cgroup.procs may have exited and been reused by an
// unrelated process by the time we signal it, so each is pinned with a
// pidfd first and signalled only if the pid is still listed afterwards: a
// pidfd never reaches a process other than the one it was opened for.
func killMembers(dir string, pids []int) error {
	fds := make(map[int]int, len(pids))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		switch {
		case err == nil:
			fds[pid] = fd
		case errors.Is(err, unix.ESRCH):
		case errors.Is(err, unix.ENOSYS):
			// Before Linux 5.3: no pidfd, so plain kill with its small
			// reuse window.
			for _, pid := range pids {
				if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
					return fmt.Errorf("signalling process %d: %w", pid, err)
				}
			}
			return nil
		default:
			return fmt.Errorf("opening process %d: %w", pid, err)
		}
	}
	still, err := treePids(dir)
	if err != nil {
		return err
	}
	for _, pid := range still {
		fd, ok := fds[pid]
		if !ok {
			continue // new since the first read; the next round gets it
		}
		if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signalling process %d: %w", pid, err)
		}
	}
	return nil
}

// treePids lists the processes in dir and in every cgroup below it. A
// directory that is gone has none.
func treePids(dir string) ([]int, error) {
	pids, err := readPids(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	subs, err := subCgroups(dir)
	if err != nil {
		return nil, err
	}
	for _, s := range subs {
		p, err := treePids(s)
		if err != nil {
			return nil, err
		}
		pids = append(pids, p...)
	}
	return pids, nil
}

func subCgroups(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// removeTree removes dir and the cgroups below it, deepest first. The
// kernel refuses (EBUSY) while a process is still exiting, so it kills and
// retries until end.
func removeTree(dir string, end time.Time) error {
	subs, err := subCgroups(dir)
	if err != nil {
		return fmt.Errorf("removing cgroup %s: %w", dir, err)
	}
	for _, s := range subs {
		if err := removeTree(s, end); err != nil {
			return err
		}
	}
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(end) {
			return fmt.Errorf("removing cgroup %s: %w", dir, err)
		}
		if err := killTree(dir, end); err != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// removeParent removes the shared cordon/ directory above leaf when it is
// empty. Another sandbox may have a leaf there or be making one: the rmdir
// then fails (EBUSY, ENOTEMPTY) and that is fine, and Create retries if we
// win the race against its mkdir.
func removeParent(leaf string) {
	parent := filepath.Dir(leaf)
	if filepath.Base(parent) == parentName {
		unix.Rmdir(parent)
	}
}

// Parents lists the directories that hold Cordon's leaves on this host
// (<cgroup>/cordon), for sweeping what a dead process left.
func Parents() []string {
	h, err := detect()
	if err != nil {
		return nil
	}
	if h.version == 1 {
		var out []string
		for _, m := range h.v1Dirs() {
			out = append(out, filepath.Join(m, parentName))
		}
		return out
	}
	return []string{filepath.Join(h.V2Base, parentName)}
}

// MemoryBytes is the memory the leaf's processes use now (memory.current,
// or memory.usage_in_bytes on v1); 0 if it cannot be read.
func (l *Leaf) MemoryBytes() int64 {
	for _, d := range l.dirs {
		for _, f := range []string{"memory.current", "memory.usage_in_bytes"} {
			b, err := os.ReadFile(filepath.Join(d, f))
			if err != nil {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return 0
}

// SetLimits changes the leaf's limits (a zero limit lifts it); a limit
// whose controller the leaf was not made with is an error. A server's
// pre-started sessions get their limits this way when they are taken.
func (l *Leaf) SetLimits(lim Limits) error {
	if err := lim.validate(); err != nil {
		return err
	}
	h, err := detect()
	if err != nil {
		return fmt.Errorf("detecting cgroups: %w", err)
	}
	if l.version == 2 {
		dir := l.dirs[0]
		if lim.MemoryBytes == 0 {
			if err := writeLimit(dir, "memory.max", "max"); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if lim.Pids == 0 {
			if err := writeLimit(dir, "pids.max", "max"); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if lim.CPUs == 0 {
			if err := writeLimit(dir, "cpu.max", "max"); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return setV2Limits(dir, lim)
	}
	name := filepath.Base(l.dirs[0])
	dir := func(c string) string { return filepath.Join(h.V1Mounts[c], parentName, name) }
	if lim.MemoryBytes == 0 && h.V1Mounts["memory"] != "" {
		writeLimit(dir("memory"), "memory.memsw.limit_in_bytes", "-1")
		if err := writeLimit(dir("memory"), "memory.limit_in_bytes", "-1"); err != nil {
			return err
		}
	} else if lim.MemoryBytes > 0 && h.V1Mounts["memory"] != "" {
		// memsw must stay at or above the memory limit: when lowering,
		// memory first; when raising, memsw first.
		v := strconv.FormatInt(lim.MemoryBytes, 10)
		writeLimit(dir("memory"), "memory.memsw.limit_in_bytes", v)
	}
	if lim.Pids == 0 && h.V1Mounts["pids"] != "" {
		if err := writeLimit(dir("pids"), "pids.max", "max"); err != nil {
			return err
		}
	}
	if lim.CPUs == 0 && h.V1Mounts["cpu"] != "" {
		if err := writeLimit(dir("cpu"), "cpu.cfs_quota_us", "-1"); err != nil {
			return err
		}
	}
	return setV1Limits(h, name, lim)
}

// SetCPUWeight sets the leaf's share of the CPU when it is contended, 1 to
// 10000, 100 being every other cgroup's (cpu.weight on v2, cpu.shares on
// v1 scaled from 1024). A server's sessions started ahead of need get the
// least while they start, so that they do not slow the sessions in use.
func (l *Leaf) SetCPUWeight(weight int) error {
	if weight < 1 || weight > 10000 {
		return fmt.Errorf("cpu weight %d: want 1 to 10000", weight)
	}
	if l.version == 2 {
		return writeLimit(l.dirs[0], "cpu.weight", strconv.Itoa(weight))
	}
	h, err := detect()
	if err != nil {
		return fmt.Errorf("detecting cgroups: %w", err)
	}
	if h.V1Mounts["cpu"] == "" {
		return fmt.Errorf("cpu weight: %w: no cgroup v1 hierarchy has cpu mounted", ErrNoController)
	}
	shares := max(2, weight*1024/100)
	return writeLimit(filepath.Join(h.V1Mounts["cpu"], parentName, filepath.Base(l.dirs[0])), "cpu.shares", strconv.Itoa(shares))
}
