package cgroup

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
)

// Limits are the resource limits of one leaf. A zero field means no limit.
type Limits struct {
	// MemoryBytes is memory.max on v2 (with memory.swap.max 0), and
	// memory.limit_in_bytes plus memory.memsw.limit_in_bytes on v1, so swap
	// cannot be used to go over it.
	MemoryBytes int64
	// Pids is pids.max: the number of tasks, threads included.
	Pids int64
	// CPUs is the CPU bandwidth in cores: a quota of CPUs*100ms every
	// 100ms, as cpu.max on v2 and cpu.cfs_quota_us/cpu.cfs_period_us on v1.
	CPUs float64
}

// ErrNoController is wrapped by Create's error when a non-zero limit needs a
// controller the host does not offer to this user.
var ErrNoController = errors.New("cgroup controller not available")

const (
	// parentName is the directory that holds all of Cordon's leaves in one
	// place; it is created on demand and removed when the last leaf goes.
	parentName = "cordon"
	// hostLeafName is the sibling leaf that takes the processes of a
	// delegated cgroup so that it may hand controllers to its children.
	hostLeafName = "cordon-host"
	// cpuPeriod is the CFS bandwidth period in microseconds (the kernel's
	// default); the quota is scaled to it.
	cpuPeriod = 100000
	// minCPUQuota is the smallest quota the kernel accepts, in microseconds.
	minCPUQuota = 1000
)

// controllers are the controllers Cordon uses, in the order they are set up.
var controllers = []string{"memory", "pids", "cpu"}

// Leaf is one sandbox's cgroup: one directory per hierarchy that holds a
// controller we use (one on v2, up to three on v1).
type Leaf struct {
	version int
	dirs    []string
	// oom remembers OOMKilled across Remove, since the counters go away
	// with the directory.
	oom atomic.Bool
}

// Dirs returns the leaf directories, for cleanup by another process (see
// RemoveDirs) and for leak checks.
func (l *Leaf) Dirs() []string {
	return append([]string(nil), l.dirs...)
}

// Version returns the cgroup version of the leaf: 1 or 2.
func (l *Leaf) Version() int {
	return l.version
}

// Report is what Probe finds on this host, for `cordon doctor`.
type Report struct {
	// V2Mount is the cgroup2 mount point, "" when there is none.
	V2Mount string
	// V1Mounts maps memory, pids and cpu to their cgroup v1 mount point,
	// for those bound to v1.
	V1Mounts map[string]string
	// Controllers maps each of memory, pids and cpu that a leaf could use to
	// the cgroup version that provides it.
	Controllers map[string]int
	// Version is the cgroup version Create would use, 0 when none.
	Version int
	// Base is the directory under which Create would make cordon/<name>
	// (for v1, the memory, pids or cpu mount point found first).
	Base string
	// Writable reports whether this user could create a leaf.
	Writable bool
	// Reason says why not when Writable is false.
	Reason string
}

// validate rejects limits the kernel would refuse or misread.
func (l Limits) validate() error {
	if l.MemoryBytes < 0 {
		return fmt.Errorf("memory limit %d is negative", l.MemoryBytes)
	}
	if l.Pids < 0 {
		return fmt.Errorf("pids limit %d is negative", l.Pids)
	}
	if l.CPUs < 0 || math.IsNaN(l.CPUs) || math.IsInf(l.CPUs, 0) {
		return fmt.Errorf("cpu limit %g is not a non-negative number", l.CPUs)
	}
	if l.CPUs > 0 && l.cpuQuota() < minCPUQuota {
		return fmt.Errorf("cpu limit %g is below the kernel minimum of %g", l.CPUs, float64(minCPUQuota)/cpuPeriod)
	}
	if l.CPUs > 0 && l.CPUs*cpuPeriod > math.MaxInt64/2 {
		return fmt.Errorf("cpu limit %g is too large", l.CPUs)
	}
	return nil
}

// cpuQuota is the CFS quota in microseconds per cpuPeriod.
func (l Limits) cpuQuota() int64 {
	return int64(math.Round(l.CPUs * cpuPeriod))
}

// required lists the controllers that the non-zero limits need.
func (l Limits) required() []string {
	var r []string
	if l.MemoryBytes > 0 {
		r = append(r, "memory")
	}
	if l.Pids > 0 {
		r = append(r, "pids")
	}
	if l.CPUs > 0 {
		r = append(r, "cpu")
	}
	return r
}

// validName accepts a leaf name that is one plain path element.
func validName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("invalid cgroup name %q", name)
	case len(name) > 255:
		return fmt.Errorf("invalid cgroup name %q: longer than 255 bytes", name)
	case name == hostLeafName, name == parentName:
		return fmt.Errorf("invalid cgroup name %q: reserved", name)
	}
	for _, c := range []byte(name) {
		// A newline would also break the line format of /proc/PID/cgroup.
		if c == '/' || c < 0x20 || c == 0x7f {
			return fmt.Errorf("invalid cgroup name %q: contains %q", name, c)
		}
	}
	return nil
}
