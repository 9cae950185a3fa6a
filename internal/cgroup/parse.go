package cgroup

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
)

// mountEntry is the part of a /proc/self/mountinfo line that matters here.
type mountEntry struct {
	Root      string // the path inside the filesystem that is mounted
	Point     string // where it is mounted
	FSType    string
	SuperOpts []string
}

// parseMountinfo reads the format of proc(5) /proc/PID/mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// with any number of optional fields before the "-".
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.Split(line, " ")
		sep := -1
		if len(f) > 6 {
			if i := slices.Index(f[6:], "-"); i >= 0 {
				sep = 6 + i
			}
		}
		if sep < 0 || sep+3 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %d: malformed: %q", n, line)
		}
		out = append(out, mountEntry{
			Root:      unescapeOctal(f[3]),
			Point:     unescapeOctal(f[4]),
			FSType:    f[sep+1],
			SuperOpts: strings.Split(f[sep+3], ","),
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	return out, nil
}

// unescapeOctal undoes the kernel's \NNN escaping of space, tab, newline and
// backslash in mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// parseProcCgroup reads /proc/PID/cgroup, "hierarchy-ID:controllers:path"
// per line. The result maps each v1 controller (and name=... hierarchy) to
// its path, and "" to the v2 path.
func parseProcCgroup(r io.Reader) (map[string]string, error) {
	out := make(map[string]string)
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		// The path may itself contain ':', so split at the first two only.
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || !strings.HasPrefix(f[2], "/") {
			return nil, fmt.Errorf("cgroup line %d: malformed: %q", n, line)
		}
		if f[0] == "0" && f[1] == "" {
			out[""] = f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c != "" {
				out[c] = f[2]
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading cgroup membership: %w", err)
	}
	return out, nil
}

// layout is where the cgroup hierarchies are and where Cordon's leaves
// would go, as far as the mount table and our membership tell.
type layout struct {
	V2Mount string // cgroup2 mount point, "" when none
	// V2Base is the directory that would hold cordon/ on v2; V2BaseErr says
	// why there is none when a cgroup2 mount exists.
	V2Base    string
	V2BaseErr error
	V1Mounts  map[string]string // memory, pids, cpu -> v1 mount point
}

// layoutFrom works out the layout from the mount table, the membership of
// the calling process and its effective uid.
func layoutFrom(mounts []mountEntry, member map[string]string, euid int) layout {
	lo := layout{V1Mounts: make(map[string]string)}
	var v2 *mountEntry
	for i, m := range mounts {
		switch m.FSType {
		case "cgroup2":
			// The first mount is the one the system made; later ones are
			// usually bind mounts into containers.
			if v2 == nil {
				v2 = &mounts[i]
			}
		case "cgroup":
			for _, c := range controllers {
				if _, ok := lo.V1Mounts[c]; !ok && slices.Contains(m.SuperOpts, c) {
					lo.V1Mounts[c] = m.Point
				}
			}
		}
	}
	if v2 == nil {
		return lo
	}
	lo.V2Mount = v2.Point
	if euid == 0 {
		lo.V2Base = v2.Point
		return lo
	}
	own, ok := member[""]
	if !ok {
		lo.V2BaseErr = fmt.Errorf("no cgroup v2 membership in /proc/self/cgroup")
		return lo
	}
	dir, err := cgroupDir(*v2, own)
	if err != nil {
		lo.V2BaseErr = err
		return lo
	}
	// Create moved us into cordon-host before; the delegated cgroup is
	// its parent, which already hands out the controllers.
	if filepath.Base(dir) == hostLeafName {
		dir = filepath.Dir(dir)
	}
	lo.V2Base = dir
	return lo
}

// cgroupDir is the directory of cgroup path p (as /proc/self/cgroup gives
// it) under mount m.
func cgroupDir(m mountEntry, p string) (string, error) {
	root := strings.TrimSuffix(m.Root, "/")
	switch {
	case root == "":
		return filepath.Join(m.Point, p), nil
	case p == root:
		return m.Point, nil
	case strings.HasPrefix(p, root+"/"):
		return filepath.Join(m.Point, p[len(root):]), nil
	}
	return "", fmt.Errorf("cgroup %s is outside the %s mount at %s (root %s)", p, m.FSType, m.Point, m.Root)
}

// chooseVersion picks the hierarchy that offers more of memory, pids and
// cpu: v1 on a hybrid host whose controllers are bound to v1, v2 otherwise.
// It returns 0 when there is no usable hierarchy.
func chooseVersion(lo layout, v2Avail map[string]bool) int {
	n1, n2 := 0, 0
	for _, c := range controllers {
		if lo.V1Mounts[c] != "" {
			n1++
		}
		if v2Avail[c] {
			n2++
		}
	}
	switch {
	case n1 > n2:
		return 1
	case lo.V2Mount != "":
		return 2
	}
	return 0
}
