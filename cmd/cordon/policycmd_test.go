package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runPolicy(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newPolicyCmd()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.Execute()
	return out.String(), errb.String(), err
}

func TestPolicyShow(t *testing.T) {
	home := isolate(t)
	ws := t.TempDir()
	writeFile(t, filepath.Join(home, ".config/cordon/policy.toml"), `
[network]
allow = ["pypi.org", "evil.example"]
[limits]
memory = "2G"

[profile.mine]
description = "mine"
extends = "offline"
[profile.mine.network]
deny = ["evil.example"]
[profile.mine.limits]
memory = "1G"
`)
	writeFile(t, filepath.Join(ws, ".cordon.toml"), "this is not toml, and it is not read\n")

	out, _, err := runPolicy(t, "show", "--workspace", ws, "--profile", "mine")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Layers, lowest first: built-in < user ~/.config/cordon/policy.toml < profile offline < profile mine.\n",
		"# Not a layer: ignoring " + filepath.Join(ws, ".cordon.toml") + ": not trusted (run \"cordon trust\" in " + ws + " to use it)\n",
		"\n[network]\nallow = [\n",
		`  # "pypi.org",     # void: network.offline (profile offline): nothing leaves; user ~/.config/cordon/policy.toml` + "\n",
		`  # "evil.example", # void: network.offline (profile offline): nothing leaves; user ~/.config/cordon/policy.toml` + "\n",
		`  "evil.example", # profile mine` + "\n",
		"offline = true  # profile offline\n",
		`memory = "1G"  # profile mine` + "\n",
		`  "~/.aws",`,
		"# built-in: AWS access keys and SSO tokens\n",
		"pids = 4096  # built-in\n",
		"# upstream: not set: direct\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("policy show lacks %q; it printed:\n%s", want, out)
		}
	}

	out, _, err = runPolicy(t, "show", "--workspace", ws, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var s showPolicy
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("policy show --json: %v\n%s", err, out)
	}
	var allowed []string
	for _, v := range s.Values {
		if v.Key == "network.allow" && !v.Void {
			allowed = append(allowed, v.Value.(string)+" from "+v.From)
		}
	}
	if got := strings.Join(allowed, ", "); got != "pypi.org from user ~/.config/cordon/policy.toml, evil.example from user ~/.config/cordon/policy.toml" {
		t.Errorf("--json allows %q", got)
	}
	if s.Workspace != ws || len(s.Ignored) != 1 {
		t.Errorf("--json workspace %q, ignored %v", s.Workspace, s.Ignored)
	}
}

// What policy show prints is a policy file itself: it parses.
func TestPolicyShowIsTOML(t *testing.T) {
	isolate(t)
	out, _, err := runPolicy(t, "show", "--workspace", t.TempDir(), "--profile", "strict")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "shown.toml")
	writeFile(t, path, out)
	if _, errOut, err := runPolicy(t, "check", "--as", "workspace", path); err != nil {
		t.Errorf("policy show's output does not check: %v\n%s\n%s", err, errOut, out)
	}
}

func TestPolicyCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, ".cordon.toml")
	writeFile(t, good, "[network]\nallow = [\"pypi.org\"]\n[profile.x]\ndescription = \"x\"\n")
	writeFile(t, bad, "[network]\nallow = [\"pypi.org\"]\n[profile.x]\ndescription = \"x\"\n")
	out, errOut, err := runPolicy(t, "check", good, bad)
	var st exitStatus
	if !errors.As(err, &st) || st != 1 {
		t.Errorf("policy check with a bad file = %v, want exit status 1", err)
	}
	if out != good+": ok (user policy)\n" {
		t.Errorf("stdout = %q", out)
	}
	if want := bad + ":3:2: profile: profiles are defined in the user policy only"; !strings.HasPrefix(errOut, want) {
		t.Errorf("stderr = %q, want %q...", errOut, want)
	}
	if _, _, err := runPolicy(t, "check", filepath.Join(dir, "missing.toml")); err == nil {
		t.Errorf("policy check of a missing file succeeded")
	}
	if _, _, err := runPolicy(t, "check", "--as", "nobody", good); err == nil {
		t.Errorf("policy check --as nobody succeeded")
	}
}

func TestUserPolicyPath(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "relative")
	if got := userPolicyPath("/home/u"); got != "/home/u/.config/cordon/policy.toml" {
		t.Errorf("userPolicyPath with a relative XDG_CONFIG_HOME = %q", got)
	}
	t.Setenv("XDG_CONFIG_HOME", "/xdg")
	if got := userPolicyPath("/home/u"); got != "/xdg/cordon/policy.toml" {
		t.Errorf("userPolicyPath = %q", got)
	}
	os.Unsetenv("XDG_CONFIG_HOME")
	if got := userPolicyPath(""); got != "" {
		t.Errorf("userPolicyPath with no home = %q", got)
	}
}
