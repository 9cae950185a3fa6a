package policy

import (
	"os"
	"strings"
	"testing"
)

func TestSecretEnv(t *testing.T) {
	tests := []struct {
		name, value string
		want        bool
	}{
		{"AWS_SECRET_ACCESS_KEY", "x", true},
		{"AWS_PROFILE", "prod", true},
		{"GITHUB_TOKEN", "x", true},
		{"github_token", "x", true},
		{"NPM_TOKEN", "x", true},
		{"OPENAI_API_KEY", "x", true},
		{"ANTHROPIC_API_KEY", "x", true},
		{"STRIPE_SECRET", "x", true},
		{"CLIENT_SECRET_VALUE", "x", true},
		{"DB_PASSWORD", "x", true},
		{"MYSQL_PWD_PASS", "x", true},
		{"GOOGLE_APPLICATION_CREDENTIALS", "/k.json", true},
		{"SSH_AUTH_SOCK", "/run/user/1000/ssh", true},
		{"GPG_AGENT_INFO", "x", true},
		{"VAULT_TOKEN", "x", true},
		{"DATABASE_URL", "postgres://u:pw@db/x", true},
		{"PATH", "/usr/bin", false},
		{"HOME", "/home/u", false},
		{"TERM", "xterm", false},
		{"EDITOR", "vi", false},
		{"GOPATH", "/go", false},
		{"DATABASE_URL", "postgres://db/x", false},
		{"KEYBOARD", "us", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := SecretEnv(tt.name, tt.value)
			if got != tt.want {
				t.Errorf("SecretEnv(%q, %q) = %v (%s), want %v", tt.name, tt.value, got, why, tt.want)
			}
			if got && why == "" {
				t.Errorf("SecretEnv(%q) gives no reason", tt.name)
			}
		})
	}
}

func TestFilterEnvPassesNamedSecrets(t *testing.T) {
	p := Default("/ws", "/home/u", "")
	p.PassEnv = []string{"GITHUB_TOKEN"}
	kept, dropped := p.FilterEnv([]string{"GITHUB_TOKEN=a", "NPM_TOKEN=b", "PATH=/bin"})
	if strings.Join(kept, " ") != "GITHUB_TOKEN=a PATH=/bin" {
		t.Errorf("kept = %v, want GITHUB_TOKEN and PATH", kept)
	}
	if len(dropped) != 1 || !strings.HasPrefix(dropped[0], "NPM_TOKEN: ") {
		t.Errorf("dropped = %v, want NPM_TOKEN with a reason", dropped)
	}
}

func TestDefaultExpandsHomeAndRuntimeDir(t *testing.T) {
	p := Default("/ws", "/home/u/", "/run/user/1000")
	seen := map[string]bool{}
	for _, m := range p.Masks {
		if strings.HasPrefix(m.Path, "~") {
			t.Errorf("mask %q not expanded", m.Path)
		}
		seen[m.Path] = true
	}
	for _, want := range []string{"/home/u/.aws", "/home/u/.ssh", "/run/user/1000"} {
		if !seen[want] {
			t.Errorf("Default masks lack %s", want)
		}
	}
}

// The README's tables are the code's tables: every row of each must be in
// the README, so the two cannot drift apart silently.
func TestReadmeListsTables(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, m := range Masks {
		if !strings.Contains(readme, "| `"+m.Path+"` | "+m.Kind.String()+" |") {
			t.Errorf("README lacks the mask row for %s (%s)", m.Path, m.Kind)
		}
	}
	for _, m := range Protected {
		if !strings.Contains(readme, "| `"+m.Path+"` | "+m.Kind.String()+" |") {
			t.Errorf("README lacks the protected row for %s (%s)", m.Path, m.Kind)
		}
	}
	for _, p := range SecretEnvPatterns() {
		if !strings.Contains(readme, "`"+p+"`") {
			t.Errorf("README lacks the variable pattern %s", p)
		}
	}
}

func TestParseWall(t *testing.T) {
	if w, err := ParseWall("landlock"); err != nil || w != WallLandlock {
		t.Errorf("ParseWall(landlock) = %v, %v", w, err)
	}
	if _, err := ParseWall("namespaces"); err == nil {
		t.Errorf("ParseWall(namespaces) should fail: namespaces cannot be degraded")
	}
}

func TestFilterEnvDropsNamedVariables(t *testing.T) {
	p := Default("/ws", "/home/u", "")
	p.PassEnv = []string{"GITHUB_TOKEN"}
	p.DropEnv = []string{"MY_VAR", "NPM_TOKEN"}
	kept, dropped := p.FilterEnv([]string{"GITHUB_TOKEN=a", "NPM_TOKEN=b", "MY_VAR=c", "PATH=/bin"})
	if strings.Join(kept, " ") != "GITHUB_TOKEN=a PATH=/bin" {
		t.Errorf("kept = %v, want GITHUB_TOKEN and PATH", kept)
	}
	want := []string{"MY_VAR: " + DropReason, "NPM_TOKEN: looks like a token"}
	if strings.Join(dropped, "|") != strings.Join(want, "|") {
		t.Errorf("dropped = %q, want %q (a secret keeps its own reason: its value is watched for)", dropped, want)
	}
}
