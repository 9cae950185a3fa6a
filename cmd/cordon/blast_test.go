package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBlastRadiusCmd(t *testing.T) {
	home, ws := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	if err := os.WriteFile(filepath.Join(home, ".netrc"), []byte("machine example.com login me password hunter2hunter2hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "report.json")
	if err := runBlastRadius(nil, blastFlags{workspace: ws, format: "json", output: out}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("report file mode %v, %v; want 0600: it names where the credentials are", st.Mode().Perm(), err)
	}
	var r struct {
		Version int
		Policy  struct{ Workspace string }
		Assets  []struct{ Kind, Path string }
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(ws)
	if r.Version != 1 || r.Policy.Workspace != real {
		t.Errorf("version %d, workspace %q; want 1, %q", r.Version, r.Policy.Workspace, real)
	}
	found := false
	for _, a := range r.Assets {
		found = found || (a.Kind == "credential-store" && a.Path == "~/.netrc")
	}
	if !found {
		t.Errorf("the report does not list ~/.netrc of $HOME")
	}
	if bytes.Contains(b, []byte("hunter2hunter2")) {
		t.Errorf("the report holds the password of ~/.netrc")
	}

	var text bytes.Buffer
	if err := runBlastRadius(&text, blastFlags{workspace: ws, format: "text"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "~/.netrc") {
		t.Errorf("the text report does not list ~/.netrc:\n%s", text.String())
	}
}

func TestBlastRadiusErrors(t *testing.T) {
	ws := t.TempDir()
	tests := []struct {
		f    blastFlags
		want string
	}{
		{blastFlags{workspace: ws, format: "yaml"}, `--format "yaml": text, json or html`},
		{blastFlags{workspace: ws, format: "text", profile: "nosuch"}, `unknown profile "nosuch"`},
		{blastFlags{workspace: filepath.Join(ws, "missing"), format: "text"}, "--workspace"},
	}
	for _, tt := range tests {
		err := runBlastRadius(&bytes.Buffer{}, tt.f)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("runBlastRadius(%+v) = %v, want an error with %q", tt.f, err, tt.want)
		}
	}
}

func TestBlastRadiusFlags(t *testing.T) {
	ws := t.TempDir()
	t.Setenv("HOME", t.TempDir())
	cmd := newBlastRadiusCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--workspace", ws, "--format", "html"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "<!DOCTYPE html>") {
		t.Errorf("--format html wrote %.40q..., want an HTML page", out.String())
	}
	cmd = newBlastRadiusCmd()
	cmd.SetArgs([]string{"extra"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.Execute(); err == nil {
		t.Errorf("an argument was accepted; blast-radius takes none")
	}
}

// TestBlastRadiusProfile: the report follows the profile: dev lets the
// package registries out, the default lets nothing out.
func TestBlastRadiusProfile(t *testing.T) {
	ws := t.TempDir()
	var def, dev bytes.Buffer
	if err := runBlastRadius(&def, blastFlags{workspace: ws, format: "json"}); err != nil {
		t.Fatal(err)
	}
	if err := runBlastRadius(&dev, blastFlags{workspace: ws, format: "json", profile: "dev"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(def.String(), "registry.npmjs.org") || !strings.Contains(dev.String(), "registry.npmjs.org") {
		t.Errorf("registry.npmjs.org in the default report: %v; in dev's: %v", strings.Contains(def.String(), "registry.npmjs.org"), strings.Contains(dev.String(), "registry.npmjs.org"))
	}
}
