package cgroup

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// host is the detected cgroup setup of this machine for this user.
type host struct {
	layout
	version int
	v2Avail map[string]bool // controllers in V2Base/cgroup.controllers
}

// detect reads the mount table and our membership and decides which
// hierarchy Create would use.
func detect() (host, error) {
	mf, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return host{}, err
	}
	defer mf.Close()
	mounts, err := parseMountinfo(mf)
	if err != nil {
		return host{}, err
	}
	cf, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return host{}, err
	}
	defer cf.Close()
	member, err := parseProcCgroup(cf)
	if err != nil {
		return host{}, err
	}
	h := host{layout: layoutFrom(mounts, member, os.Geteuid()), v2Avail: make(map[string]bool)}
	if h.V2Base != "" {
		// Missing file or not: either way nothing is available here.
		b, _ := os.ReadFile(filepath.Join(h.V2Base, "cgroup.controllers"))
		for _, c := range strings.Fields(string(b)) {
			h.v2Avail[c] = true
		}
	}
	h.version = chooseVersion(h.layout, h.v2Avail)
	if h.version == 0 {
		return h, fmt.Errorf("no cgroup filesystem with memory, pids or cpu is mounted")
	}
	if h.version == 2 && h.V2Base == "" {
		return h, h.V2BaseErr
	}
	return h, nil
}

// v1Dirs lists the distinct v1 mount points of memory, pids and cpu.
func (h host) v1Dirs() []string {
	var out []string
	for _, c := range controllers {
		if m := h.V1Mounts[c]; m != "" && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// Probe reports what this host offers, for `cordon doctor`. It creates and
// removes a test directory (cordon-probe-PID-RANDOM) to see whether this
// user may create cgroups, and changes nothing else: unlike Create it never
// moves processes.
func Probe() Report {
	r := Report{V1Mounts: make(map[string]string), Controllers: make(map[string]int)}
	h, err := detect()
	r.V2Mount = h.V2Mount
	for _, c := range controllers {
		if m := h.V1Mounts[c]; m != "" {
			r.V1Mounts[c] = m
			r.Controllers[c] = 1
		} else if h.v2Avail[c] {
			r.Controllers[c] = 2
		}
	}
	r.Version = h.version
	if err != nil {
		r.Reason = err.Error()
		return r
	}
	var bases []string
	if h.version == 1 {
		bases = h.v1Dirs()
	} else {
		bases = []string{h.V2Base}
	}
	r.Base = bases[0]
	for _, b := range bases {
		if err := probeDir(b, h.version); err != nil {
			r.Reason = err.Error()
			return r
		}
	}
	r.Writable = true
	return r
}

// probeDir checks that a leaf could be made under base: that a child cgroup
// can be created and, on v2, that the files Create writes to are writable.
func probeDir(base string, version int) error {
	if version == 2 {
		for _, f := range []string{"cgroup.procs", "cgroup.subtree_control"} {
			p := filepath.Join(base, f)
			if err := unix.Access(p, unix.W_OK); err != nil {
				return fmt.Errorf("cgroup %s is not delegated to uid %d: %s: %w", base, os.Geteuid(), f, err)
			}
		}
	}
	dir := filepath.Join(base, "cordon-probe-"+fmt.Sprint(os.Getpid())+"-"+randomHex())
	if err := unix.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("creating a cgroup in %s as uid %d: %w", base, os.Geteuid(), err)
		}
		return fmt.Errorf("creating a cgroup in %s: %w", base, err)
	}
	if err := unix.Rmdir(dir); err != nil {
		return fmt.Errorf("removing test cgroup %s: %w", dir, err)
	}
	return nil
}

func randomHex() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
