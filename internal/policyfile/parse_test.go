package policyfile

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		role Role
		in   string
		want []string // each error, in order
	}{
		{"unknown key", User, "[network]\nallow = []\nalow = [\"a.example\"]\n",
			[]string{`p.toml:3:1: network.alow: unknown key (did you mean "allow"?); [network] holds allow, deny, offline, loopback_ports, upstream, inspect, allow_secrets, secrets`}},
		{"unknown section", User, "[netwrok]\nallow = []\n",
			[]string{`p.toml:1:2: netwrok: unknown key (did you mean "network"?); a user policy holds "filesystem", "network", "env", "limits", "canary", "audit", "profile"`}},
		{"wrong type", User, "[limits]\npids = \"4096\"\n",
			[]string{`p.toml:2:8: limits.pids: want an integer, got a string`}},
		{"wrong type in a list", User, "[network]\nloopback_ports = [8080, \"8081\"]\n",
			[]string{`p.toml:2:25: network.loopback_ports[1]: want an integer, got a string`}},
		{"a list wanted", User, "[network]\nallow = \"a.example\"\n",
			[]string{`p.toml:2:9: network.allow: want a list of strings, got a string`}},
		{"bad host", User, "[network]\nallow = [\n  \"a.example\",\n  \"b.example\",\n  \"c.example\",\n  \"exa mple.com\",\n]\n",
			[]string{`p.toml:6:3: network.allow[3]: invalid host "exa mple.com": invalid character ' '`}},
		{"duplicate key", User, "[limits]\npids = 100\npids = 200\n",
			[]string{`p.toml:3:1: limits.pids: set twice: key pids is already defined`}},
		{"duplicate table", User, "[network]\nallow = [\"a.example\"]\n[network]\ndeny = [\"b.example\"]\n",
			[]string{`p.toml:3:2: network: set twice: table network already exists`}},
		{"listed twice", User, "[network]\ndeny = [\"a.example\", \"A.example.\"]\n",
			[]string{`p.toml:2:22: network.deny[1]: "A.example." listed twice (also network.deny[0])`}},
		{"allowed and denied", User, "[network]\nallow = [\"a.example\"]\ndeny = [\"A.Example\"]\n",
			[]string{`p.toml:3:9: network.deny[0]: also in network.allow[0]: a host cannot be allowed and denied in one file`}},
		{"written and masked", User, "[filesystem]\nwrite = [\"~/.cache/x\"]\nmask = [\"~/.cache\"]\n",
			[]string{`p.toml:2:10: filesystem.write[0]: inside filesystem.mask[0] "~/.cache": a masked path stays masked, so this could not be written; remove one`}},
		{"passed and dropped", User, "[env]\npass = [\"A_TOKEN\"]\ndrop = [\"A_TOKEN\"]\n",
			[]string{`p.toml:3:9: env.drop[0]: also in env.pass[0]: a variable cannot be passed in and dropped in one file`}},
		{"passed and injected", User, "[env]\npass = [\"GH_TOKEN\"]\n[network.secrets]\nGH_TOKEN = [\"api.github.com\"]\n",
			[]string{`p.toml:4:1: network.secrets.GH_TOKEN: also in env.pass[0]: the sandbox gets either the variable's value (env.pass) or a placeholder (network.secrets), not both`}},
		{"bad enum", User, "[canary]\non_canary = \"explode\"\n",
			[]string{`p.toml:2:13: canary.on_canary: "explode": want "stop" or "block"`}},
		{"bad size and duration", User, "[limits]\nmemory = \"lots\"\ntimeout = \"soon\"\n",
			[]string{`p.toml:2:10: limits.memory: "lots": not a size (like 512M or 4G)`,
				`p.toml:3:11: limits.timeout: "soon" is not a duration (like "90s", "30m" or "2h"; "0s" for none)`}},
		{"relative path", User, "[filesystem]\nwrite = [\"build\"]\n",
			[]string{`p.toml:2:10: filesystem.write[0]: "build": must be absolute or start with ~/`}},
		{"protect outside", User, "[filesystem]\nprotect = [\"../x\"]\n",
			[]string{`p.toml:2:12: filesystem.protect[0]: not inside the workspace`}},
		{"protect above the home", User, "[filesystem]\nprotect = [\"~/../x\", \"/etc/x\"]\n",
			[]string{`p.toml:2:12: filesystem.protect[0]: not a path below the home directory`,
				`p.toml:2:22: filesystem.protect[1]: a protected path is relative to the workspace root, like ".github/workflows", or to the home, like "~/.codex/config.toml"`}},
		{"profile in a workspace policy", Workspace, "[profile.x]\ndescription = \"x\"\n",
			[]string{`p.toml:1:2: profile: profiles are defined in the user policy only (~/.config/cordon/policy.toml)`}},
		{"description in a user policy", User, "description = \"x\"\n",
			[]string{`p.toml:1:1: description: only a profile has a description (in the user policy: [profile.NAME] description = ...)`}},
		{"profile shadows a built-in", User, "[profile.offline]\ndescription = \"x\"\n",
			[]string{`p.toml:1:10: profile.offline: "offline" is a built-in profile; give yours another name (it can say extends = "offline")`}},
		{"extends cycle", User, "[profile.a]\nextends = \"b\"\n[profile.b]\nextends = \"a\"\n",
			[]string{`p.toml:2:11: profile.a.extends: a extends b extends a: a cycle`, `p.toml:4:11: profile.b.extends: b extends a extends b: a cycle`}},
		{"extends nothing", User, "[profile.a]\nextends = \"nosuch\"\n",
			[]string{`p.toml:2:11: profile.a.extends: no profile "nosuch" (built in: ` + strings.Join(builtinNames(), ", ") + `; in this file: a)`}},
		{"error in a profile", User, "[profile.a.limits]\ncpus = -1\n",
			[]string{`p.toml:2:8: profile.a.limits.cpus: -1: must be 0 (none) to 4096 cores`}},
		{"profile file extends nothing", Profile, "description = \"x\"\nextends = \"nosuch\"\n",
			[]string{`p.toml:2:11: extends: no built-in profile "nosuch" (built in: ` + strings.Join(builtinNames(), ", ") + `)`}},
		{"syntax", User, "[network\nallow = []\n",
			[]string{`p.toml:1:9: expected ']' to close table name`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAs("p.toml", []byte(tt.in), tt.role)
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("ParseAs(%q) = %v, want Errors", tt.in, err)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("ParseAs(%q) =\n%s\nwant\n%s", tt.in, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// Many problems come at once, in the order of the file, capped.
func TestParseReportsManyErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("[network]\nallow = [\n")
	for range MaxErrors + 5 {
		b.WriteString("  \"bad host\",\n")
	}
	b.WriteString("]\n")
	_, err := Parse("p.toml", []byte(b.String()))
	var es Errors
	if !errors.As(err, &es) || len(es) != MaxErrors+1 {
		t.Fatalf("Parse with %d bad hosts gave %d errors, want %d and a last line: %v", MaxErrors+5, len(es), MaxErrors, err)
	}
	for i, e := range es[:MaxErrors] {
		if e.Line != i+3 || e.Col != 3 {
			t.Errorf("error %d at %d:%d, want %d:3", i, e.Line, e.Col, i+3)
		}
	}
	if last := es[MaxErrors].Msg; last != "and 5 more problems; fix these first" {
		t.Errorf("last error = %q", last)
	}
}

const everyKey = `
[filesystem]
write   = ["~/.cache/go-build", "/var/tmp/build/"]
mask    = ["~/private"]
protect = [".github/workflows"]
home    = "hidden"

[network]
allow          = ["registry.npmjs.org", "*.githubusercontent.com"]
deny           = ["evil.example"]
offline        = false
loopback_ports = [8080]
upstream       = "http://proxy.corp:3128"
inspect        = ["registry.npmjs.org GET,HEAD /"]
allow_secrets  = ["github-token@api.github.com"]

[network.secrets]
GITHUB_TOKEN = ["api.github.com", "uploads.github.com"]

[env]
pass = ["NPM_TOKEN"]
drop = ["MY_VAR"]

[limits]
memory  = "4G"
pids    = 4096
cpus    = 1.5
timeout = "30m"

[canary]
decoys    = true
on_canary = "block"

[audit]
path = "none"
`

func TestParseEveryKey(t *testing.T) {
	f, err := Parse("policy.toml", []byte(everyKey))
	if err != nil {
		t.Fatal(err)
	}
	b := f.Body
	checks := []struct {
		what      string
		got, want any
	}{
		{"write", strings.Join(b.Filesystem.Write, " "), "~/.cache/go-build /var/tmp/build"},
		{"mask", strings.Join(b.Filesystem.Mask, " "), "~/private"},
		{"protect", strings.Join(b.Filesystem.Protect, " "), ".github/workflows"},
		{"home", b.Filesystem.Home, "hidden"},
		{"allow", strings.Join(b.Network.Allow, " "), "registry.npmjs.org *.githubusercontent.com"},
		{"deny", strings.Join(b.Network.Deny, " "), "evil.example"},
		{"offline", *b.Network.Offline, false},
		{"ports", b.Network.LoopbackPorts[0], uint16(8080)},
		{"upstream", *b.Network.Upstream, "http://proxy.corp:3128"},
		{"inspect", b.Network.Inspect[0], "registry.npmjs.org GET,HEAD /"},
		{"allow_secrets", b.Network.AllowSecrets[0], "github-token@api.github.com"},
		{"secrets", strings.Join(b.Network.Secrets, " "), "GITHUB_TOKEN=api.github.com,uploads.github.com"},
		{"pass", b.Env.Pass[0], "NPM_TOKEN"},
		{"drop", b.Env.Drop[0], "MY_VAR"},
		{"memory", *b.Limits.Memory, int64(4 << 30)},
		{"pids", *b.Limits.Pids, int64(4096)},
		{"cpus", *b.Limits.CPUs, 1.5},
		{"timeout", *b.Limits.Timeout, 30 * time.Minute},
		{"decoys", *b.Canary.Decoys, true},
		{"on_canary", b.Canary.OnCanary, "block"},
		{"audit", *b.Audit.Path, "none"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestParseProfiles(t *testing.T) {
	f, err := Parse("policy.toml", []byte(`
[network]
deny = ["evil.example"]

[profile.mywork]
description = "work"
extends = "offline"
[profile.mywork.network]
allow = ["git.corp.example"]

[profile.play]
extends = "mywork"
limits.cpus = 2
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Profiles) != 2 || f.Profiles["mywork"].Extends != "offline" || f.Profiles["mywork"].Network.Allow[0] != "git.corp.example" {
		t.Errorf("profiles = %+v", f.Profiles)
	}
	if c := f.Profiles["play"].Limits.CPUs; c == nil || *c != 2 {
		t.Errorf("play's cpus = %v, want 2 (an integer where a number goes)", c)
	}
}

func TestRoleOf(t *testing.T) {
	for name, want := range map[string]Role{
		"/ws/.cordon.toml":                   Workspace,
		".cordon.toml":                       Workspace,
		"/home/u/.config/cordon/policy.toml": User,
		"profiles/dev.toml":                  Profile,
		"mine.toml":                          User,
	} {
		if got := RoleOf(name); got != want {
			t.Errorf("RoleOf(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestParseRefusesHugeFile(t *testing.T) {
	if _, err := Parse("p.toml", make([]byte, MaxSize+1)); err == nil {
		t.Errorf("Parse of %d bytes succeeded", MaxSize+1)
	}
}
