package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAgentProfiles: each agent's CLI, installed with npm install -g (CI
// installs Claude Code and Codex), starts under its own profile, as each
// user. A CLI that is not installed is skipped, with the reason.
func TestAgentProfiles(t *testing.T) {
	agents := []struct {
		profile, cli, want string
	}{
		{"claude-code", "claude", "Claude Code"},
		{"codex", "codex", "codex-cli"},
		{"gemini", "gemini", "."},
	}
	forEachUser(t, func(t *testing.T, b *box) {
		for _, a := range agents {
			t.Run(a.profile, func(t *testing.T) {
				path, err := exec.LookPath(a.cli)
				if err != nil {
					t.Skipf("%s is not installed (npm install -g its package)", a.cli)
				}
				r := b.cordon(nil, nil, "run", "--profile", a.profile, "--", path, "--version")
				if r.code != 0 || !strings.Contains(r.stdout, a.want) {
					t.Fatalf("cordon run --profile %s -- %s --version:\n%s", a.profile, a.cli, r)
				}
			})
		}
	})
}

// TestProtectedHomePath: under the codex profile ~/.codex is writable, but
// its config.toml (filesystem.protect = ["~/.codex/config.toml", ...]) is
// not: a contained agent cannot change how the next one on the host
// behaves.
func TestProtectedHomePath(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		dir := filepath.Join(b.home, ".codex")
		must(t, os.MkdirAll(dir, 0o700))
		b.u.Chown(t, dir)
		conf := filepath.Join(dir, "config.toml")
		must(t, os.WriteFile(conf, []byte("model = \"o3\"\n"), 0o600))
		b.u.Chown(t, conf)
		r := b.cordon(nil, nil, "run", "--profile", "codex", "--", "sh", "-c",
			`echo 'notify = ["sh", "-c", "evil"]' >> ~/.codex/config.toml || echo refused; echo state > ~/.codex/state.txt && echo wrote`)
		if !strings.Contains(r.stdout, "refused") || !strings.Contains(r.stdout, "wrote") || !strings.Contains(r.stderr, "Read-only") {
			t.Errorf("appending to ~/.codex/config.toml and writing ~/.codex/state.txt:\n%s", r)
		}
		if b, _ := os.ReadFile(conf); string(b) != "model = \"o3\"\n" {
			t.Errorf("config.toml on the host is now %q", b)
		}
		if _, err := os.Stat(filepath.Join(dir, "state.txt")); err != nil {
			t.Errorf("the state directory was not writable: %v", err)
		}
	})
}
