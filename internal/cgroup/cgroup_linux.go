package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// createAttempts bounds the retries when a concurrent Remove takes the
// shared cordon/ directory away between our mkdir of it and of the leaf.
const createAttempts = 10

// Create makes the leaf name (e.g. "cordon-<pid>-<random>") and sets the
// limits in l; see the package documentation for where it goes. A limit of
// zero sets nothing, and a leaf with no limits is still made, so that the
// sandbox can be killed as a group. When a non-zero limit cannot be
// enforced, Create removes what it made and returns an error that wraps
// ErrNoController or the kernel's answer and names what is missing.
func Create(name string, l Limits) (*Leaf, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if err := l.validate(); err != nil {
		return nil, err
	}
	h, err := detect()
	if err != nil {
		return nil, fmt.Errorf("detecting cgroups: %w", err)
	}
	leaf := &Leaf{version: h.version}
	if h.version == 1 {
		leaf.dirs, err = createV1(h, name, l)
	} else {
		leaf.dirs, err = createV2(h, name, l)
	}
	if err != nil {
		return nil, err
	}
	return leaf, nil
}

// createV2 makes <base>/cordon/<name>, enabling on the way down the
// controllers the limits need.
func createV2(h host, name string, l Limits) ([]string, error) {
	need := l.required()
	for _, c := range need {
		if !h.v2Avail[c] {
			return nil, fmt.Errorf("%s limit: %w: %s is not in %s", c, ErrNoController, c,
				filepath.Join(h.V2Base, "cgroup.controllers"))
		}
	}
	var leaf string
	var err error
	for range createAttempts {
		leaf, err = makeV2Leaf(h.V2Base, name, need)
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
		return nil, fmt.Errorf("cgroup %s is not delegated to uid %d (try systemd-run --user --scope -p Delegate=yes): %w",
			h.V2Base, os.Geteuid(), err)
	}
	if err != nil {
		return nil, err
	}
	if err := setV2Limits(leaf, l); err != nil {
		removeEmpty([]string{leaf})
		return nil, err
	}
	return []string{leaf}, nil
}

func makeV2Leaf(base, name string, need []string) (string, error) {
	if err := enableControllers(base, need, true); err != nil {
		return "", err
	}
	parent := filepath.Join(base, parentName)
	if err := mkdirShared(parent); err != nil {
		return "", err
	}
	// cordon/ holds no processes, so this never needs moving anything.
	if err := enableControllers(parent, need, false); err != nil {
		return "", err
	}
	leaf := filepath.Join(parent, name)
	if err := unix.Mkdir(leaf, 0o755); err != nil {
		return "", fmt.Errorf("creating cgroup %s: %w", leaf, err)
	}
	return leaf, nil
}

// enableControllers writes +c to dir/cgroup.subtree_control for each c in
// need that is not enabled yet. When the kernel refuses because dir holds
// processes and mayMove is set, it moves them into dir/cordon-host first.
func enableControllers(dir string, need []string, mayMove bool) error {
	ctl := filepath.Join(dir, "cgroup.subtree_control")
	b, err := os.ReadFile(ctl)
	if err != nil {
		return fmt.Errorf("reading enabled controllers: %w", err)
	}
	on := strings.Fields(string(b))
	for _, c := range need {
		if slices.Contains(on, c) {
			continue
		}
		err := writeFile(ctl, "+"+c)
		if errors.Is(err, unix.EBUSY) && mayMove {
			if err := moveAside(dir); err != nil {
				return fmt.Errorf("enabling %s controller in %s: %w", c, dir, err)
			}
			err = writeFile(ctl, "+"+c)
		}
		if err != nil {
			return fmt.Errorf("enabling %s controller in %s: %w", c, dir, err)
		}
	}
	return nil
}

// moveAside moves every process in dir into dir/cordon-host, because a v2
// cgroup with processes in it cannot hand domain controllers to children
// (the no-internal-processes rule). New processes may be forked into dir
// while we move, so it goes round until dir is empty, a bounded number of
// times.
func moveAside(dir string) error {
	dst := filepath.Join(dir, hostLeafName)
	if err := unix.Mkdir(dst, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating cgroup %s: %w", dst, err)
	}
	dstProcs := filepath.Join(dst, "cgroup.procs")
	for range 10 {
		pids, err := readPids(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			err := writeFile(dstProcs, strconv.Itoa(pid))
			if err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("moving process %d into %s: %w", pid, dst, err)
			}
		}
	}
	return fmt.Errorf("moving processes out of %s: it keeps getting new ones", dir)
}

func setV2Limits(dir string, l Limits) error {
	if l.MemoryBytes > 0 {
		if err := writeLimit(dir, "memory.max", strconv.FormatInt(l.MemoryBytes, 10)); err != nil {
			return err
		}
		// Without this, pages over memory.max go to swap rather than to the
		// OOM killer. The file is missing when swap is not accounted.
		if err := writeLimit(dir, "memory.swap.max", "0"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if l.Pids > 0 {
		if err := writeLimit(dir, "pids.max", strconv.FormatInt(l.Pids, 10)); err != nil {
			return err
		}
	}
	if l.CPUs > 0 {
		if err := writeLimit(dir, "cpu.max", fmt.Sprintf("%d %d", l.cpuQuota(), cpuPeriod)); err != nil {
			return err
		}
	}
	return nil
}

// createV1 makes <mount>/cordon/<name> in each hierarchy that holds memory,
// pids or cpu, and sets the limits there.
func createV1(h host, name string, l Limits) ([]string, error) {
	for _, c := range l.required() {
		if h.V1Mounts[c] == "" {
			return nil, fmt.Errorf("%s limit: %w: no cgroup v1 hierarchy has %s mounted", c, ErrNoController, c)
		}
	}
	var dirs []string
	for _, m := range h.v1Dirs() {
		var dir string
		var err error
		for range createAttempts {
			dir, err = makeV1Leaf(m, name)
			if !errors.Is(err, fs.ErrNotExist) {
				break
			}
		}
		if err != nil {
			removeEmpty(dirs)
			return nil, err
		}
		dirs = append(dirs, dir)
	}
	if err := setV1Limits(h, name, l); err != nil {
		removeEmpty(dirs)
		return nil, err
	}
	return dirs, nil
}

func makeV1Leaf(mount, name string) (string, error) {
	parent := filepath.Join(mount, parentName)
	if err := mkdirShared(parent); err != nil {
		return "", err
	}
	if err := copyCpuset(parent); err != nil {
		return "", err
	}
	leaf := filepath.Join(parent, name)
	if err := unix.Mkdir(leaf, 0o755); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return "", fmt.Errorf("creating cgroup %s (cgroup v1 needs root): %w", leaf, err)
		}
		return "", fmt.Errorf("creating cgroup %s: %w", leaf, err)
	}
	if err := copyCpuset(leaf); err != nil {
		unix.Rmdir(leaf)
		return "", err
	}
	return leaf, nil
}

// copyCpuset fills in cpuset.cpus and cpuset.mems from the parent when cpu
// shares its v1 hierarchy with cpuset: a new cpuset cgroup starts with
// neither, and the kernel refuses to add processes to it (ENOSPC).
func copyCpuset(dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || strings.TrimSpace(string(b)) != "" {
			continue // not a cpuset hierarchy, or already set
		}
		pb, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
		if err != nil {
			return err
		}
		if err := writeLimit(dir, f, strings.TrimSpace(string(pb))); err != nil {
			return err
		}
	}
	return nil
}

func setV1Limits(h host, name string, l Limits) error {
	dir := func(c string) string { return filepath.Join(h.V1Mounts[c], parentName, name) }
	if l.MemoryBytes > 0 {
		v := strconv.FormatInt(l.MemoryBytes, 10)
		// memsw (memory plus swap) must not be below the memory limit, so
		// the memory limit goes first.
		if err := writeLimit(dir("memory"), "memory.limit_in_bytes", v); err != nil {
			return err
		}
		// Missing when the kernel does not account swap (swapaccount=0).
		if err := writeLimit(dir("memory"), "memory.memsw.limit_in_bytes", v); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if l.Pids > 0 {
		if err := writeLimit(dir("pids"), "pids.max", strconv.FormatInt(l.Pids, 10)); err != nil {
			return err
		}
	}
	if l.CPUs > 0 {
		if err := writeLimit(dir("cpu"), "cpu.cfs_period_us", strconv.Itoa(cpuPeriod)); err != nil {
			return err
		}
		if err := writeLimit(dir("cpu"), "cpu.cfs_quota_us", strconv.FormatInt(l.cpuQuota(), 10)); err != nil {
			return err
		}
	}
	return nil
}

// Add moves process pid, with all its threads, into the leaf in every
// hierarchy.
func (l *Leaf) Add(pid int) error {
	for _, d := range l.dirs {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("adding process %d to cgroup %s: %w", pid, d, err)
		}
	}
	return nil
}

// OOMKilled reports whether the memory limit made the kernel kill a process
// in the leaf: oom_kill in memory.events on v2, in memory.oom_control on v1
// (or memory.failcnt on kernels before 4.13, which only says the limit was
// hit). It is best effort; after Remove it reports what it saw just before.
func (l *Leaf) OOMKilled() bool {
	if l.oom.Load() {
		return true
	}
	for _, d := range l.dirs {
		if oomKilled(d) {
			l.oom.Store(true)
			return true
		}
	}
	return false
}

func oomKilled(dir string) bool {
	for _, f := range []string{"memory.events", "memory.oom_control"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue
		}
		if n, ok := field(string(b), "oom_kill"); ok {
			return n > 0
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "memory.failcnt"))
	if err != nil {
		return false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return err == nil && n > 0
}

// field finds "key N" in a flat-keyed cgroup file.
func field(s, key string) (int64, bool) {
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// mkdirShared makes the cordon/ directory that concurrent sandboxes share.
func mkdirShared(dir string) error {
	if err := unix.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating cgroup %s: %w", dir, err)
	}
	return nil
}

// removeEmpty undoes a Create that failed half way: the leaves hold no
// processes yet, so a plain rmdir is enough.
func removeEmpty(dirs []string) {
	for _, d := range dirs {
		unix.Rmdir(d)
		removeParent(d)
	}
}

func writeLimit(dir, file, value string) error {
	p := filepath.Join(dir, file)
	if err := writeFile(p, value); err != nil {
		return fmt.Errorf("writing %q to %s: %w", value, p, err)
	}
	return nil
}

// writeFile writes data to an existing cgroup file in one write(2), which is
// how the kernel expects to receive it, and returns the bare errno.
func writeFile(path, data string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for {
		_, err = unix.Write(fd, []byte(data))
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// readPids reads a cgroup.procs file. A missing file (the cgroup is gone)
// reads as empty.
func readPids(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("reading %s: bad pid %q", path, f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}
