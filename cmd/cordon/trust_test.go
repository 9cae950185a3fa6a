package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cordon-sandbox/cordon/internal/trust"
)

// runTrustCmd runs `cordon trust ARGS` and returns stdout and the error
// main would print.
func runTrustCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newTrustCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.Execute()
	return out.String(), err
}

// trustWorkspace is a workspace holding a .cordon.toml, in a state
// directory of its own; it returns the workspace's canonical path.
func trustWorkspace(t *testing.T, policy string) string {
	t.Helper()
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	ws, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, trust.FileName), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	return ws
}

// loadTrusted answers what `cordon run` would: is ws's policy trusted?
func loadTrusted(t *testing.T, ws string) (bool, string) {
	t.Helper()
	path, err := trust.DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	s, err := trust.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	_, ok, why, err := s.Load(filepath.Join(ws, trust.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return ok, why
}

func TestTrustCmd(t *testing.T) {
	const policy = "# allow the registry\n[network]\nallow = [\"registry.npmjs.org\"]\n"
	ws := trustWorkspace(t, policy)
	file := filepath.Join(ws, trust.FileName)

	out, err := runTrustCmd(t, "--list")
	if err != nil || !strings.Contains(out, "no workspace policy is trusted") {
		t.Errorf("cordon trust --list of an empty store = %q, %v", out, err)
	}

	out, err = runTrustCmd(t, ws)
	if err != nil {
		t.Fatalf("cordon trust %s: %v", ws, err)
	}
	for _, want := range []string{file, `network.allow = ["registry.npmjs.org"]`, "trusted"} {
		if !strings.Contains(out, want) {
			t.Errorf("cordon trust output lacks %q:\n%s", want, out)
		}
	}
	if ok, why := loadTrusted(t, ws); !ok {
		t.Fatalf("after cordon trust, Load = not ok (%s)", why)
	}

	// The current directory by default; trusting again changes nothing.
	t.Chdir(ws)
	if _, err := runTrustCmd(t); err != nil {
		t.Errorf("cordon trust in %s: %v", ws, err)
	}

	out, err = runTrustCmd(t, "--list")
	if err != nil || !strings.Contains(out, "ok") || !strings.Contains(out, file) {
		t.Errorf("cordon trust --list = %q, %v; want %s ok", out, err, file)
	}
	if err := os.WriteFile(file, []byte(policy+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := runTrustCmd(t, "--list"); !strings.Contains(out, "changed") {
		t.Errorf("cordon trust --list after a change = %q, want it to say changed", out)
	}
	if ok, why := loadTrusted(t, ws); ok || !strings.HasPrefix(why, "changed") {
		t.Errorf("after a change, Load = %v (%s), want not ok: changed", ok, why)
	}
	if _, err := runTrustCmd(t); err != nil {
		t.Fatal(err)
	}

	out, err = runTrustCmd(t, "--revoke", ws)
	if err != nil || !strings.Contains(out, "revoked "+file) {
		t.Errorf("cordon trust --revoke = %q, %v", out, err)
	}
	if ok, _ := loadTrusted(t, ws); ok {
		t.Errorf("still trusted after --revoke")
	}
	if _, err := runTrustCmd(t, "--revoke"); err == nil || !strings.Contains(err.Error(), "not trusted") {
		t.Errorf("cordon trust --revoke of an untrusted file = %v, want an error", err)
	}
}

func TestTrustCmdRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, ws string)
		want  string
	}{
		{"missing", func(t *testing.T, ws string) { os.Remove(filepath.Join(ws, trust.FileName)) }, "no .cordon.toml in"},
		{"not text", func(t *testing.T, ws string) {
			os.WriteFile(filepath.Join(ws, trust.FileName), []byte("[network]\nallow = [\"\xff\"]\n"), 0o644)
		}, "is not trusted: fix it"},
		{"unknown key", func(t *testing.T, ws string) {
			os.WriteFile(filepath.Join(ws, trust.FileName), []byte("[network]\nalow = [\"evil.example\"]\n"), 0o644)
		}, ".cordon.toml:2:1: network.alow"},
		{"symbolic link", func(t *testing.T, ws string) {
			target := filepath.Join(t.TempDir(), "policy.toml")
			os.WriteFile(target, []byte("# fine\n"), 0o644)
			os.Remove(filepath.Join(ws, trust.FileName))
			os.Symlink(target, filepath.Join(ws, trust.FileName))
		}, "symbolic link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := trustWorkspace(t, "# fine\n")
			tt.setup(t, ws)
			if _, err := runTrustCmd(t, ws); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("cordon trust = %v, want an error saying %q", err, tt.want)
			}
			if out, _ := runTrustCmd(t, "--list"); !strings.Contains(out, "no workspace policy is trusted") {
				t.Errorf("a refused file was recorded:\n%s", out)
			}
		})
	}
	if _, err := runTrustCmd(t, "--list", "."); err == nil {
		t.Errorf("cordon trust --list DIR should fail")
	}
	if _, err := runTrustCmd(t, "--list", "--revoke"); err == nil {
		t.Errorf("cordon trust --list --revoke should fail")
	}
}

func TestSnake(t *testing.T) {
	for in, want := range map[string]string{"Network": "network", "LoopbackPorts": "loopback_ports", "CPUs": "cpus", "OnCanary": "on_canary"} {
		if got := snake(in); got != want {
			t.Errorf("snake(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/home/u/src/app", "/home/u/src/app"},
		{"allow = [\"é\"]\t# ok", "allow = [\"é\"]\t# ok"},
		{"/x/\x1b[2J", `"/x/\x1b[2J"`},
		{"evil\u202etxt", `"evil\u202etxt"`},
	}
	for _, tt := range tests {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
