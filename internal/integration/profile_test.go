package integration

import (
	"os/exec"
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
