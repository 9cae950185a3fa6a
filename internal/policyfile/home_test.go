package policyfile

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cordon-sandbox/cordon/internal/policy"
)

func TestHomeHidden(t *testing.T) {
	home, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{".ssh", "src/app/sub", "src/other", "docs", ".cache/go-build", ".cache/other"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{".bashrc", "src/notes.txt", ".ssh/id_ed25519"} {
		if err := os.WriteFile(filepath.Join(home, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc", filepath.Join(home, "link")); err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(home, "src/app")
	h := Host{Workspace: ws, Home: home}
	e, err := Merge(h, layer(t, "profile strict", "[filesystem]\nhome = \"hidden\"\nwrite = [\"~/.cache/go-build\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	var hidden []string
	for _, m := range e.Policy.Masks {
		if m.Why == `filesystem.home = hidden (profile strict)` {
			rel, _ := filepath.Rel(home, m.Path)
			hidden = append(hidden, rel+":"+m.Kind.String())
		}
	}
	sort.Strings(hidden)
	want := []string{".bashrc:file", ".cache/other:dir", "docs:dir", "src/notes.txt:file", "src/other:dir"}
	if strings.Join(hidden, " ") != strings.Join(want, " ") {
		t.Errorf("home = hidden masks %v, want %v (not the way to the workspace or the writable path, not ~/.ssh masked already, not a link)", hidden, want)
	}
	if strings.Join(e.Policy.Writable, " ") != filepath.Join(home, ".cache/go-build") {
		t.Errorf("writable = %v", e.Policy.Writable)
	}
	// Nothing hidden covers what must stay: the sandbox would skip such a
	// mask, or hide the workspace.
	for _, m := range e.Policy.Masks {
		for _, keep := range append([]string{ws}, e.Policy.Writable...) {
			if within(keep, m.Path) {
				t.Errorf("mask %s covers %s", m.Path, keep)
			}
		}
	}
	if vs := find(e, "filesystem.mask"); vs[len(vs)-1].From != "profile strict" {
		t.Errorf("the hidden masks are not shown with their source: %+v", vs[len(vs)-1])
	}
}

func TestHomeHiddenEdges(t *testing.T) {
	home, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(home, "f"), nil, 0o600)
	// The workspace is the home, or holds it: nothing of the home is
	// outside the workspace.
	for _, ws := range []string{home, filepath.Dir(home)} {
		got, err := hideHome(Host{Home: home}, []string{ws}, nil, "why")
		if err != nil || len(got) != 0 {
			t.Errorf("hideHome with workspace %s = %v, %v; want nothing", ws, got, err)
		}
	}
	// A workspace outside the home: all of it.
	got, err := hideHome(Host{Home: home}, []string{"/elsewhere"}, nil, "why")
	if err != nil || len(got) != 1 || got[0].Path != filepath.Join(home, "f") || got[0].Kind != policy.File {
		t.Errorf("hideHome = %v, %v; want %s", got, err, filepath.Join(home, "f"))
	}
	// No home: an error, not a policy that hides nothing.
	if _, err := hideHome(Host{Home: ""}, []string{"/ws"}, nil, "why"); err == nil {
		t.Errorf("hideHome with no home succeeded")
	}
}
