package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// snapshot is what the host has that a sandbox could leave behind.
type snapshot struct {
	mounts  []string
	cgroups []string
	procs   []string
}

func leakSnapshot() snapshot {
	var s snapshot
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.Fields(l)
			if len(f) > 4 {
				s.mounts = append(s.mounts, f[4])
			}
		}
	}
	for _, pat := range []string{"/sys/fs/cgroup/*/cordon/cordon-[0-9]*", "/sys/fs/cgroup/cordon/cordon-[0-9]*", "/sys/fs/cgroup/*/*/cordon-[0-9]*"} {
		m, _ := filepath.Glob(pat)
		s.cgroups = append(s.cgroups, m...)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		// Only what this test run started: the binaries it built, not
		// another cordon on the machine.
		exe, _ := os.Readlink("/proc/" + e.Name() + "/exe")
		exe = strings.TrimSuffix(exe, " (deleted)")
		if exe != "" && (exe == cordonBin || exe == probeBin) {
			s.procs = append(s.procs, e.Name()+" "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	sort.Strings(s.mounts)
	sort.Strings(s.cgroups)
	return s
}

// checkLeaks waits briefly for cleanup helpers, then compares.
func checkLeaks(before snapshot) error {
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = compare(before, leakSnapshot()); err == nil {
			return nil
		}
	}
	return err
}

func compare(before, after snapshot) error {
	if extra := minus(after.mounts, before.mounts); len(extra) > 0 {
		return fmt.Errorf("mounts left on the host: %v", extra)
	}
	if extra := minus(after.cgroups, before.cgroups); len(extra) > 0 {
		return fmt.Errorf("cgroups left: %v", extra)
	}
	if len(after.procs) > 0 {
		return fmt.Errorf("processes left: %v", after.procs)
	}
	return nil
}

func minus(a, b []string) []string {
	have := map[string]int{}
	for _, x := range b {
		have[x]++
	}
	var out []string
	for _, x := range a {
		if have[x] > 0 {
			have[x]--
			continue
		}
		out = append(out, x)
	}
	return out
}
