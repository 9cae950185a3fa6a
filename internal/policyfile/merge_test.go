package policyfile

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"
)

// testHost is a machine with nothing on it: Merge sees no file.
var testHost = Host{
	Workspace: "/ws",
	Home:      "/home/u",
	ReadDir:   func(string) ([]fs.DirEntry, error) { return nil, nil },
	Stat:      func(string) (fs.FileInfo, error) { return nil, fs.ErrNotExist },
}

func mustParse(t *testing.T, name, data string) *File {
	t.Helper()
	f, err := Parse(name, []byte(data))
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return f
}

func layer(t *testing.T, source, data string) Layer {
	return Layer{Source: source, File: mustParse(t, "p.toml", data)}
}

// find returns the values of key in e.
func find(e *Effective, key string) []Value {
	var out []Value
	for _, v := range e.Values {
		if v.Key == key {
			out = append(out, v)
		}
	}
	return out
}

func TestMergeDenyBeatsAllowAcrossLayers(t *testing.T) {
	e, err := Merge(testHost,
		layer(t, "user ~/.config/cordon/policy.toml", "[network]\ndeny = [\"evil.example\", \"*.bad.example\"]\n"),
		layer(t, "profile dev", "[network]\nallow = [\"evil.example\", \"x.bad.example\", \"good.example\"]\n"),
		FlagLayer(Body{}),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(e.Policy.Network.Allow, " "); got != "good.example" {
		t.Errorf("allow = %q, want only good.example: a deny from a lower layer still wins", got)
	}
	if got := strings.Join(e.Policy.Network.Deny, " "); got != "evil.example *.bad.example" {
		t.Errorf("deny = %q", got)
	}
	allows := find(e, "network.allow")
	want := []Value{
		{Key: "network.allow", Value: "evil.example", From: "profile dev", Void: true, Note: `denied by network.deny "evil.example" (user ~/.config/cordon/policy.toml)`},
		{Key: "network.allow", Value: "x.bad.example", From: "profile dev", Void: true, Note: `denied by network.deny "*.bad.example" (user ~/.config/cordon/policy.toml)`},
		{Key: "network.allow", Value: "good.example", From: "profile dev"},
	}
	if !slices.Equal(allows, want) {
		t.Errorf("allow values = %+v, want %+v", allows, want)
	}
}

func TestMergeMaskBeatsWrite(t *testing.T) {
	e, err := Merge(testHost,
		layer(t, "user", "[filesystem]\nmask = [\"~/secret\"]\n"),
		layer(t, "workspace /ws/.cordon.toml", "[filesystem]\nwrite = [\"~/secret/cache\", \"~/ok\"]\n"),
		FlagLayer(Body{Filesystem: Filesystem{Write: []string{"/home/u/.ssh", "/run/user/1000/x"}}}),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(e.Policy.Writable, " "); got != "/home/u/ok" {
		t.Errorf("writable = %q, want only /home/u/ok", got)
	}
	void := map[string]string{}
	for _, v := range e.Void() {
		void[v.Value.(string)] = v.From + ": " + v.Note
	}
	for path, want := range map[string]string{
		"~/secret/cache":   `workspace /ws/.cordon.toml: masked by filesystem.mask "~/secret" (user): a masked path stays masked`,
		"/home/u/.ssh":     `flag --write: masked by filesystem.mask "~/.ssh" (built-in): a masked path stays masked`,
		"/run/user/1000/x": `flag --write: masked by filesystem.mask "/run" (built-in): a masked path stays masked`,
	} {
		if void[path] != want {
			t.Errorf("%s: %q, want %q", path, void[path], want)
		}
	}
}

func TestMergeScalarsHighestLayerWins(t *testing.T) {
	pids := int64(64)
	e, err := Merge(testHost,
		layer(t, "user U", "[limits]\npids = 100\nmemory = \"1G\"\ntimeout = \"1h\"\n[canary]\non_canary = \"block\"\n"),
		layer(t, "workspace W", "[limits]\npids = 200\n[canary]\ndecoys = false\n"),
		layer(t, "profile P", "[limits]\nmemory = \"2G\"\n"),
		FlagLayer(Body{Limits: Limits{Pids: &pids}}),
	)
	if err != nil {
		t.Fatal(err)
	}
	p := e.Policy
	if p.Limits.Pids != 64 || p.Limits.MemoryBytes != 2<<30 || p.Limits.Timeout != time.Hour {
		t.Errorf("limits = %+v, want pids 64 (flag), memory 2G (profile), timeout 1h (user)", p.Limits)
	}
	if e.Decoys || e.OnCanary != "block" {
		t.Errorf("decoys %v, on_canary %q; want false (workspace) and block (user)", e.Decoys, e.OnCanary)
	}
	for key, want := range map[string]string{
		"limits.pids":      "flag --pids",
		"limits.memory":    "profile P",
		"limits.timeout":   "user U",
		"canary.decoys":    "workspace W",
		"canary.on_canary": "user U",
		"filesystem.home":  "built-in",
	} {
		vs := find(e, key)
		if len(vs) != 1 || vs[0].From != want {
			t.Errorf("%s from %+v, want %q", key, vs, want)
		}
	}
}

func TestMergeListsUnion(t *testing.T) {
	e, err := Merge(testHost,
		layer(t, "user", "[network]\nallow = [\"a.example\", \"B.example\"]\ninspect = [\"a.example GET /\"]\n[network.secrets]\nT1 = [\"a.example\"]\n"),
		layer(t, "profile", "[network]\nallow = [\"b.example.\", \"c.example\"]\n[network.secrets]\nT1 = [\"b.example\"]\nT2 = [\"c.example\"]\n"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(e.Policy.Network.Allow, " "); got != "a.example B.example c.example" {
		t.Errorf("allow = %q, want the union, the first spelling kept", got)
	}
	if got := strings.Join(e.Policy.Network.Secrets, " "); got != "T1=a.example,b.example T2=c.example" {
		t.Errorf("secrets = %q, want one entry per name with every layer's hosts", got)
	}
	if vs := find(e, "network.secrets.T1"); len(vs) != 2 || vs[1].From != "profile" {
		t.Errorf("T1's values = %+v", vs)
	}
}

func TestMergeEnv(t *testing.T) {
	e, err := Merge(testHost,
		layer(t, "user", "[env]\ndrop = [\"A_TOKEN\"]\n[network.secrets]\nGH_TOKEN = [\"api.github.com\"]\n"),
		FlagLayer(Body{Env: Env{Pass: []string{"A_TOKEN", "GH_TOKEN", "NPM_TOKEN"}}}),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(e.Policy.PassEnv, " "); got != "NPM_TOKEN" {
		t.Errorf("pass = %q, want NPM_TOKEN only: A_TOKEN is dropped, GH_TOKEN injected", got)
	}
	if got := strings.Join(e.Policy.DropEnv, " "); got != "A_TOKEN" {
		t.Errorf("drop = %q", got)
	}
}

func TestMergeOfflineAndHiddenHold(t *testing.T) {
	e, err := Merge(testHost,
		layer(t, "profile offline", "[network]\noffline = true\n[filesystem]\nhome = \"hidden\"\n"),
		layer(t, "flags", "[network]\noffline = false\nallow = [\"a.example\"]\nupstream = \"http://proxy:3128\"\n[filesystem]\nhome = \"read\"\n"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Offline || len(e.Policy.Network.Allow) != 0 || e.Policy.Network.Upstream != "" {
		t.Errorf("offline %v, allow %v, upstream %q: offline must hold", e.Offline, e.Policy.Network.Allow, e.Policy.Network.Upstream)
	}
	if !e.HomeHidden {
		t.Errorf("home = read from a higher layer lifted home = hidden")
	}
	if len(e.Void()) != 4 {
		t.Errorf("void = %+v, want offline, allow, upstream and home", e.Void())
	}
}

// TestMergeProtectHome: a ~/ protected path becomes absolute, under the
// home.
func TestMergeProtectHome(t *testing.T) {
	e, err := Merge(testHost, layer(t, "profile p", "[filesystem]\nprotect = [\"~/.codex/config.toml\", \"~/./.codex//hooks\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range e.Policy.Protected {
		if strings.HasPrefix(p.Path, "/") {
			got = append(got, p.Path)
		}
	}
	if strings.Join(got, " ") != "/home/u/.codex/config.toml /home/u/.codex/hooks" {
		t.Errorf("absolute protected paths = %q", got)
	}
}

func TestMergeProtectAndMasks(t *testing.T) {
	e, err := Merge(testHost, layer(t, "workspace W", "[filesystem]\nprotect = [\".github/workflows\"]\nmask = [\"~/private\", \"~/.aws\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	last := e.Policy.Protected[len(e.Policy.Protected)-1]
	if last.Path != ".github/workflows" || last.Why != "filesystem.protect (workspace W)" {
		t.Errorf("last protected = %+v", last)
	}
	n := 0
	for _, m := range e.Policy.Masks {
		if m.Path == "/home/u/.aws" {
			n++
		}
		if m.Path == "/home/u/private" && m.Why != "filesystem.mask (workspace W)" {
			t.Errorf("mask %+v", m)
		}
	}
	if n != 1 {
		t.Errorf("~/.aws masked %d times, want once (built in, and a layer naming it again)", n)
	}
}

func TestMergeResolveErrors(t *testing.T) {
	h := testHost
	h.Resolve = func(path string, flag bool) (string, error) { return "", errors.New("no such directory") }
	_, err := Merge(h, layer(t, "user U", "[filesystem]\nwrite = [\"~/x\"]\n"))
	if err == nil || err.Error() != `filesystem.write "~/x" (user U): no such directory` {
		t.Errorf("Merge = %v", err)
	}
	_, err = Merge(h, FlagLayer(Body{Filesystem: Filesystem{Write: []string{"/x"}}}))
	if err == nil || err.Error() != `--write /x: no such directory` {
		t.Errorf("Merge = %v", err)
	}
}

func TestMergeBuiltinsOnly(t *testing.T) {
	e, err := Merge(testHost)
	if err != nil {
		t.Fatal(err)
	}
	if e.Policy.Limits.Pids != 4096 || !e.Decoys || e.OnCanary != "stop" || e.Audit != "" || len(e.Policy.Network.Allow) != 0 {
		t.Errorf("defaults: %+v", e)
	}
	if strings.Join(e.Layers, " ") != "built-in" {
		t.Errorf("layers = %v", e.Layers)
	}
}

func TestMergeMaskOverWorkspaceIsVoid(t *testing.T) {
	e, err := Merge(testHost, layer(t, "user U", "[filesystem]\nmask = [\"/ws\"]\n"), layer(t, "profile P", "[filesystem]\nwrite = [\"/ws/x\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range e.Policy.Masks {
		if m.Path == "/ws" {
			t.Errorf("the workspace is masked: %+v", m)
		}
	}
	if strings.Join(e.Policy.Writable, " ") != "/ws/x" {
		t.Errorf("writable = %v: a mask that does not hold voids no write", e.Policy.Writable)
	}
	if v := e.Void(); len(v) != 1 || v[0].Note != "covers the workspace /ws, which a run must see" {
		t.Errorf("void = %+v", v)
	}
}
