package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// isolate points cordon's home, configuration and state at a fresh
// directory, so a test reads no policy and no trust store of the user's.
func isolate(t *testing.T) (home string) {
	t.Helper()
	home = t.TempDir()
	if r, err := filepath.EvalSymlinks(home); err == nil {
		home = r
	}
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("XDG_STATE_HOME", filepath.Join(home, ".local", "state"))
	t.Setenv("XDG_RUNTIME_DIR", "")
	return home
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func only(names ...string) func(string) bool {
	return func(n string) bool {
		for _, m := range names {
			if m == n {
				return true
			}
		}
		return false
	}
}

func quiet(string, ...any) {}

// The flags are the top layer: a flag given overrides the user policy's
// scalar, a flag not given leaves it, and lists add up.
func TestBuildPolicyFlagsOverFiles(t *testing.T) {
	home := isolate(t)
	ws := t.TempDir()
	writeFile(t, filepath.Join(home, ".config/cordon/policy.toml"), `
[network]
allow = ["pypi.org"]
[limits]
pids = 100
timeout = "10m"
[canary]
on_canary = "block"
`)
	f := runFlags{workspace: ws, allow: []string{"example.com"}, pids: 64, timeout: time.Minute, onCanary: "stop",
		changed: only("allow-domain", "pids")}
	eff, err := buildPolicy(f, quiet, quiet)
	if err != nil {
		t.Fatal(err)
	}
	p := eff.Policy
	if got := strings.Join(p.Network.Allow, " "); got != "pypi.org example.com" {
		t.Errorf("allow = %q, want the user policy's and the flag's", got)
	}
	if p.Limits.Pids != 64 {
		t.Errorf("pids = %d, want 64 from --pids", p.Limits.Pids)
	}
	if p.Limits.Timeout != 10*time.Minute {
		t.Errorf("timeout = %s, want 10m from the user policy (--timeout not given)", p.Limits.Timeout)
	}
	if eff.OnCanary != "block" {
		t.Errorf("on_canary = %q, want block from the user policy (--on-canary not given)", eff.OnCanary)
	}
	masked := map[string]bool{}
	for _, m := range p.Masks {
		masked[m.Path] = true
	}
	if !masked[filepath.Join(home, ".config/cordon")] || !masked[filepath.Join(home, ".local/state/cordon")] {
		t.Errorf("masks lack cordon's own configuration or state directory")
	}
}

func TestBuildPolicyUserPolicyError(t *testing.T) {
	home := isolate(t)
	path := filepath.Join(home, ".config/cordon/policy.toml")
	writeFile(t, path, "[network]\nallow = [\"a.example\", \"exa mple.com\"]\n")
	_, err := buildPolicy(runFlags{workspace: t.TempDir(), changed: only()}, quiet, quiet)
	if err == nil || !strings.Contains(err.Error(), path+":2:23: network.allow[1]: ") {
		t.Errorf("buildPolicy with a bad user policy = %v, want its FILE:LINE:COL", err)
	}
}

func TestBuildPolicyUnknownProfile(t *testing.T) {
	isolate(t)
	_, err := buildPolicy(runFlags{workspace: t.TempDir(), profile: "nosuch", changed: only("profile")}, quiet, quiet)
	if err == nil || !strings.Contains(err.Error(), `unknown profile "nosuch"`) || !strings.Contains(err.Error(), "offline") {
		t.Errorf("buildPolicy --profile nosuch = %v, want an error listing the profiles", err)
	}
}

// An untrusted workspace policy is not read: not even a syntax error in
// it stops the run.
func TestBuildPolicyIgnoresUntrustedWorkspacePolicy(t *testing.T) {
	isolate(t)
	ws := t.TempDir()
	writeFile(t, filepath.Join(ws, ".cordon.toml"), "[network]\nallow = [\"evil.example\"\nthis is not toml\n")
	eff, err := buildPolicy(runFlags{workspace: ws, changed: only()}, quiet, quiet)
	if err != nil {
		t.Fatalf("buildPolicy with an untrusted, broken .cordon.toml = %v, want it ignored", err)
	}
	if len(eff.Policy.Network.Allow) != 0 {
		t.Errorf("allow = %v from an untrusted file", eff.Policy.Network.Allow)
	}
}

func TestFlagBodyErrorsNameTheFlag(t *testing.T) {
	tests := []struct {
		f    runFlags
		want string
	}{
		{runFlags{memory: "lots"}, "--memory lots: "},
		{runFlags{pids: 5}, "--pids 5: "},
		{runFlags{cpus: -1}, "--cpus -1: "},
		{runFlags{timeout: -time.Second}, "--timeout -1s: "},
		{runFlags{ports: []string{"0"}}, `--allow-loopback-port "0": `},
		{runFlags{onCanary: "explode"}, `--on-canary "explode": `},
	}
	for _, tt := range tests {
		tt.f.changed = func(string) bool { return true }
		if _, err := flagBody(tt.f, "/home/u"); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("flagBody(%+v) = %v, want %q...", tt.f, err, tt.want)
		}
	}
}

// A flag's bad host is named as the flag, as before policy files.
func TestBuildPolicyBadFlagHost(t *testing.T) {
	isolate(t)
	f := runFlags{workspace: t.TempDir(), allow: []string{"exa mple.com"}, changed: only("allow-domain")}
	if _, err := buildPolicy(f, quiet, quiet); err == nil || !strings.HasPrefix(err.Error(), "--allow-domain exa mple.com: ") {
		t.Errorf("buildPolicy --allow-domain 'exa mple.com' = %v", err)
	}
}
