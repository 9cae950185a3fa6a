package policyfile

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
)

// The built-in profiles, one TOML file each, with the keys of a policy
// file plus a description and, optionally, the profile it extends.
//
//go:embed profiles/*.toml
var builtinFS embed.FS

// builtinNames lists the built-in profiles, sorted. It reads only the
// file names, so the parser can call it.
func builtinNames() []string {
	ents, err := fs.ReadDir(builtinFS, "profiles")
	if err != nil {
		panic(err) // the directory is embedded: it is there
	}
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".toml"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

func isBuiltin(name string) bool {
	for _, n := range builtinNames() {
		if n == name {
			return true
		}
	}
	return false
}

var builtins struct {
	once  sync.Once
	files map[string]*File
	err   error
}

// builtinFiles parses the built-in profiles once. One that does not parse
// is a bug, which the tests catch; it is still an error, never ignored.
func builtinFiles() (map[string]*File, error) {
	builtins.once.Do(func() {
		builtins.files = map[string]*File{}
		for _, name := range builtinNames() {
			file := path.Join("profiles", name+".toml")
			data, err := builtinFS.ReadFile(file)
			if err == nil {
				var f *File
				if f, err = ParseAs("built-in "+file, data, Profile); err == nil {
					builtins.files[name] = f
					continue
				}
			}
			builtins.err = fmt.Errorf("the built-in profile %s: %w", name, err)
			return
		}
	})
	return builtins.files, builtins.err
}

// ProfileInfo describes one profile for listings.
type ProfileInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Extends     string `json:"extends,omitempty"`
	Source      string `json:"source"` // "built-in", or the user policy's name
}

// Profiles lists the built-in profiles, then those of the user policy
// (user may be nil), each group sorted by name.
func Profiles(user *File) ([]ProfileInfo, error) {
	files, err := builtinFiles()
	if err != nil {
		return nil, err
	}
	var out []ProfileInfo
	for _, name := range builtinNames() {
		f := files[name]
		out = append(out, ProfileInfo{Name: name, Description: f.Description, Extends: f.Extends, Source: "built-in"})
	}
	if user != nil {
		for _, name := range sortedKeys(user.Profiles) {
			f := user.Profiles[name]
			out = append(out, ProfileInfo{Name: name, Description: f.Description, Extends: f.Extends, Source: user.Name})
		}
	}
	return out, nil
}

// LoadProfile returns the layers of profile name, a built-in one or one
// of the user policy's (user may be nil): the profiles it extends first,
// then its own, each with the source "profile NAME". A built-in profile
// extends only built-in ones. An unknown name, or a cycle of extends, is
// an error that lists the profiles there are.
func LoadProfile(name string, user *File) ([]Layer, error) {
	files, err := builtinFiles()
	if err != nil {
		return nil, err
	}
	var layers []Layer
	seen := map[string]bool{}
	chain := []string{}
	onlyBuiltin := false
	for cur := name; cur != ""; {
		chain = append(chain, cur)
		if seen[cur] {
			return nil, fmt.Errorf("profile %s: %s: a cycle", name, strings.Join(chain, " extends "))
		}
		seen[cur] = true
		f, ok := files[cur]
		if !ok && !onlyBuiltin && user != nil {
			f, ok = user.Profiles[cur]
		}
		if !ok {
			if cur == name {
				return nil, unknownProfile(name, user)
			}
			return nil, fmt.Errorf("profile %s: %s: no profile %q", name, strings.Join(chain[:len(chain)-1], " extends "), cur)
		}
		if _, b := files[cur]; b {
			onlyBuiltin = true
		}
		layers = append([]Layer{{Source: "profile " + cur, File: f}}, layers...)
		cur = f.Extends
	}
	return layers, nil
}

func unknownProfile(name string, user *File) error {
	msg := fmt.Sprintf("unknown profile %q; built in: %s", name, strings.Join(builtinNames(), ", "))
	if user != nil && len(user.Profiles) > 0 {
		msg += fmt.Sprintf("; in %s: %s", user.Name, strings.Join(sortedKeys(user.Profiles), ", "))
	}
	return fmt.Errorf("%s (cordon policy show --profile NAME shows what one does)", msg)
}
