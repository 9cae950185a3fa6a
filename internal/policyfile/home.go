package policyfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cordon-sandbox/cordon/internal/policy"
)

// hideHome returns the masks of home = "hidden": every entry of the home
// directory, except the workspace, the writable paths (keep, absolute and
// resolved) and the directories on the way down to them, in which it goes
// on the same way. What masks covers already is left to them (the
// credential stores keep their decoys), and so are symbolic links: a link
// is not the home's content, and what it points to is masked where it is,
// if that is in the home.
//
// It reads the home as it is when the run starts: an entry made in it
// during the run is not masked.
func hideHome(h Host, keep []string, masks []policy.Entry, why string) ([]policy.Entry, error) {
	home := filepath.Clean(h.Home)
	if !filepath.IsAbs(home) || home == "/" {
		return nil, fmt.Errorf("filesystem.home = \"hidden\": no home directory to hide (HOME is %q)", h.Home)
	}
	// The workspace is a resolved path: walk the home's resolved path too,
	// or a home behind a symbolic link would be masked whole, workspace
	// and all.
	if r, err := filepath.EvalSymlinks(home); err == nil {
		home = r
	}
	for _, k := range keep {
		if within(home, k) {
			return nil, nil // the home is inside the workspace, or writable whole
		}
	}
	readDir := h.ReadDir
	if readDir == nil {
		readDir = os.ReadDir
	}
	var out []policy.Entry
	var walk func(dir string) error
	walk = func(dir string) error {
		ents, err := readDir(dir)
		if err != nil {
			return fmt.Errorf("filesystem.home = \"hidden\": listing %s to mask what it holds: %w", dir, err)
		}
	next:
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			for _, k := range keep {
				if k == p {
					continue next
				}
				if within(k, p) {
					if e.IsDir() {
						if err := walk(p); err != nil {
							return err
						}
					}
					continue next
				}
			}
			if e.Type()&fs.ModeSymlink != 0 {
				continue
			}
			for _, m := range masks {
				if within(p, m.Path) {
					continue next
				}
			}
			kind := policy.File
			if e.IsDir() {
				kind = policy.Dir
			}
			out = append(out, policy.Entry{Path: p, Kind: kind, Why: why})
		}
		return nil
	}
	if err := walk(home); err != nil {
		return nil, err
	}
	return out, nil
}
