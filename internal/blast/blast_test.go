package blast

import (
	"bytes"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/internal/policy"
)

// Values planted in the synthetic home: none may ever appear in a report.
const (
	awsSecret   = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYzz"
	githubToken = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"
	envSecret   = "s3cr3t-value-of-the-dotenv-file"
)

// fixture is a synthetic home and workspace, the policy of a run in it and
// the environment of the user.
type fixture struct {
	home, ws, runtime string
	p                 policy.Policy
	env               []string
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func tempDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// listen makes a unix socket at path, closed at the end of the test.
func listen(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Skipf("cannot make a unix socket at %s: %v", path, err)
	}
	t.Cleanup(func() { l.Close() })
}

// hostDir makes a directory outside /tmp, which the sandbox replaces with
// its own: a home there would be out of its sight altogether.
func hostDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "cordon-blast-test-")
	if err != nil {
		t.Skipf("no directory outside /tmp for a synthetic home: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if d, err = filepath.EvalSymlinks(d); err != nil {
		t.Fatal(err)
	}
	return d
}

func newFixture(t *testing.T) *fixture {
	// The workspace may be in /tmp: the sandbox attaches it over its own.
	f := &fixture{home: hostDir(t), ws: tempDir(t), runtime: hostDir(t)}
	h, ws := f.home, f.ws
	write(t, h+"/.aws/credentials", "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = "+awsSecret+"\n", 0o600)
	write(t, h+"/.gnupg/pubring.kbx", "keys", 0o600)
	write(t, h+"/.config/anthropic/key", "sk-ant-whatever", 0o600)
	write(t, h+"/.bashrc", "export PATH=$HOME/bin:$PATH\n", 0o644)
	write(t, h+"/.gitconfig", "[user]\n\tname = me\n", 0o644)
	write(t, h+"/.claude/settings.json", "{}", 0o644)
	if err := os.MkdirAll(h+"/bin", 0o755); err != nil {
		t.Fatal(err)
	}
	listen(t, h+"/.docker/run/docker.sock")
	listen(t, f.runtime+"/bus")

	write(t, ws+"/.env", "API_KEY="+envSecret+"\n", 0o600)
	write(t, ws+"/deploy/.env.production", "DB_PASSWORD="+envSecret+"\n", 0o600)
	write(t, ws+"/.env.example", "API_KEY=\n", 0o644)
	write(t, ws+"/node_modules/pkg/.env", "X=1\n", 0o644)
	write(t, ws+"/certs/server.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", 0o644)
	write(t, ws+"/certs/server-key.pem", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", 0o600)
	write(t, ws+"/.git/hooks/pre-commit", "#!/bin/sh\n", 0o755)
	write(t, ws+"/.git/config", "[core]\n", 0o644)
	write(t, ws+"/.vscode/tasks.json", "{}", 0o644)
	if err := os.MkdirAll(ws+"/bin", 0o755); err != nil {
		t.Fatal(err)
	}

	f.p = policy.Default(ws, h, f.runtime)
	f.env = []string{
		"PATH=" + h + "/bin:" + ws + "/bin:/nonexistent",
		"XDG_RUNTIME_DIR=" + f.runtime,
		"GITHUB_TOKEN=" + githubToken,
		"HOME=" + h,
	}
	return f
}

func (f *fixture) compute(t *testing.T, decoys bool) *Report {
	t.Helper()
	r, err := Compute(Options{
		Policy: f.p, Home: f.home, Env: f.env, Decoys: decoys,
		Host:    testHost(),
		Sockets: []Socket{{Path: "~/.docker/run/docker.sock", Name: "Docker Desktop", Weight: rootEquivalent}},
		Now:     time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testHost() Host {
	return Host{
		Name: "testhost", User: "dev", UID: os.Getuid(), OS: "linux",
		Groups: []string{"dev"}, DefaultRoute: true, RouteKnown: true,
		Interfaces: []string{"eth0"}, Nameservers: []string{"192.0.2.53"},
		ListeningTCP: 2, AbstractSockets: 0, Processes: 5, PtraceScope: 1,
	}
}

// find returns the asset of kind at path (as the report spells it).
func find(t *testing.T, r *Report, kind, path string) Asset {
	t.Helper()
	for _, a := range r.Assets {
		if a.Kind == kind && a.Path == path {
			return a
		}
	}
	t.Fatalf("no %s asset at %s in the report", kind, path)
	return Asset{}
}

func has(r *Report, kind, path string) bool {
	for _, a := range r.Assets {
		if a.Kind == kind && a.Path == path {
			return true
		}
	}
	return false
}

func TestCredentials(t *testing.T) {
	f := newFixture(t)
	r := f.compute(t, true)
	ws := f.ws
	tests := []struct {
		kind, path        string
		noSandbox, inside string
	}{
		{"credential-store", "~/.aws", "readable", "decoy"},
		{"credential-store", "~/.gnupg", "readable", "masked"},            // no decoy format
		{"credential-store", "~/.config/anthropic", "readable", "masked"}, // no decoy format
		{"workspace-secret", ws + "/.env", "readable", "readable"},
		{"workspace-secret", ws + "/deploy/.env.production", "readable", "readable"},
		{"workspace-secret", ws + "/certs/server-key.pem", "readable", "readable"},
		{"env-var", "", "readable", "dropped"},
	}
	for _, tt := range tests {
		a := find(t, r, tt.kind, tt.path)
		if a.NoSandbox.State != tt.noSandbox || a.Policy.State != tt.inside {
			t.Errorf("%s %s: no sandbox %q, inside %q; want %q, %q", tt.kind, tt.path, a.NoSandbox.State, a.Policy.State, tt.noSandbox, tt.inside)
		}
		if a.Part != "credentials" {
			t.Errorf("%s %s: part %q, want credentials", tt.kind, tt.path, a.Part)
		}
	}
	for _, p := range []string{ws + "/.env.example", ws + "/node_modules/pkg/.env", ws + "/certs/server.pem"} {
		if has(r, "workspace-secret", p) {
			t.Errorf("%s is reported as a secret: a template, a vendored file or a certificate alone is not", p)
		}
	}
	if a := find(t, r, "credential-store", "~/.aws"); a.Note != "2 secret values in it" {
		t.Errorf("~/.aws note %q, want the 2 values secrets.Discover reads from it", a.Note)
	}
	if a := find(t, r, "env-var", ""); a.Name != "$GITHUB_TOKEN" {
		t.Errorf("env-var asset %q, want $GITHUB_TOKEN", a.Name)
	}
	if a := find(t, r, "credential-store", "~/.aws"); a.Ring != RingHome {
		t.Errorf("~/.aws on ring %q, want home", a.Ring)
	}
	if a := find(t, r, "workspace-secret", ws+"/.env"); a.Ring != RingWorkspace {
		t.Errorf(".env on ring %q, want workspace", a.Ring)
	}

	// Without decoys, the stores are masked; passing the variable lets it in.
	f.p.PassEnv = []string{"GITHUB_TOKEN"}
	r = f.compute(t, false)
	if a := find(t, r, "credential-store", "~/.aws"); a.Policy.State != "masked" {
		t.Errorf("~/.aws without decoys: inside %q, want masked", a.Policy.State)
	}
	if a := find(t, r, "env-var", ""); a.Policy.State != "passed in" || !a.Policy.InReach() {
		t.Errorf("$GITHUB_TOKEN passed with --env: inside %q, want passed in", a.Policy.State)
	}
}

func TestWritablePlaces(t *testing.T) {
	f := newFixture(t)
	ws := f.ws
	f.p.Writable = []string{f.home + "/bin"}
	r := f.compute(t, true)
	tests := []struct {
		kind, path        string
		noSandbox, inside string
	}{
		{"shell-rc", "~/.bashrc", "writable", "read-only"},
		{"shell-rc", "~/.profile", "creatable", "read-only"}, // missing, but making it is enough
		{"git-config", "~/.gitconfig", "writable", "read-only"},
		{"agent-settings", "~/.claude/settings.json", "writable", "read-only"},
		{"autostart", "~/.config/systemd/user", "creatable", "read-only"},
		{"workspace", ws, "writable", "writable"},
		{"workspace-protected", ws + "/.git/hooks", "writable", "protected"},
		{"workspace-protected", ws + "/.git/config", "writable", "protected"},
		{"workspace-protected", ws + "/.vscode", "writable", "protected"},
		{"path-dir", "~/bin", "writable", "writable"}, // the policy's --write
		{"path-dir", ws + "/bin", "writable", "writable"},
	}
	for _, tt := range tests {
		a := find(t, r, tt.kind, tt.path)
		if a.NoSandbox.State != tt.noSandbox || a.Policy.State != tt.inside {
			t.Errorf("%s %s: no sandbox %q, inside %q; want %q, %q", tt.kind, tt.path, a.NoSandbox.State, a.Policy.State, tt.noSandbox, tt.inside)
		}
	}
	if has(r, "shell-rc", "~/.zshrc") {
		t.Errorf("~/.zshrc is reported though it does not exist and making it is not enough")
	}
	if has(r, "path-dir", "/nonexistent") {
		t.Errorf("a $PATH directory that does not exist is reported")
	}
	// Without the --write, ~/bin is read-only inside.
	f.p.Writable = nil
	r = f.compute(t, true)
	if a := find(t, r, "path-dir", "~/bin"); a.Policy.State != "read-only" {
		t.Errorf("~/bin without --write: inside %q, want read-only", a.Policy.State)
	}
}

func TestHomeIsWorkspace(t *testing.T) {
	// A run in the home directory writes its start-up files: the report
	// must say so.
	f := newFixture(t)
	f.p = policy.Default(f.home, f.home, f.runtime)
	r := f.compute(t, true)
	a := find(t, r, "shell-rc", "~/.bashrc")
	if a.Policy.State != "writable" || a.Ring != RingWorkspace {
		t.Errorf("~/.bashrc with the home as workspace: inside %q on ring %q, want writable on the workspace ring", a.Policy.State, a.Ring)
	}
	if a := find(t, r, "credential-store", "~/.aws"); a.Policy.InReach() {
		t.Errorf("~/.aws with the home as workspace: inside %q, want it still hidden", a.Policy.State)
	}
}

func TestPrivateTmp(t *testing.T) {
	// A home in /tmp is out of the sandbox's sight: its own /tmp covers it.
	f := newFixture(t)
	tmpHome := tempDir(t)
	write(t, tmpHome+"/.bashrc", "", 0o644)
	write(t, tmpHome+"/.netrc", "machine x login y password zzzzzzzzzzzzzzzzzzzz\n", 0o600)
	f.home = tmpHome
	f.p = policy.Default(f.ws, tmpHome, f.runtime)
	r := f.compute(t, true)
	if a := find(t, r, "shell-rc", "~/.bashrc"); a.Policy.State != "not there" {
		t.Errorf("~/.bashrc of a home in /tmp: inside %q, want not there", a.Policy.State)
	}
	if a := find(t, r, "credential-store", "~/.netrc"); a.Policy.State != "not there" {
		t.Errorf("~/.netrc of a home in /tmp: inside %q, want not there (the sandbox skips masks in /tmp)", a.Policy.State)
	}
}

func TestHomeHidden(t *testing.T) {
	// filesystem.home = "hidden" masks each entry of the home: they hide
	// the start-up files, and are not listed as credential stores.
	f := newFixture(t)
	for _, name := range []string{".bashrc", ".gitconfig", "bin"} {
		f.p.Masks = append(f.p.Masks, policy.Entry{Path: f.home + "/" + name, Why: "filesystem.home = hidden (profile strict)"})
	}
	r := f.compute(t, true)
	if a := find(t, r, "shell-rc", "~/.bashrc"); a.Policy.State != "masked" {
		t.Errorf("~/.bashrc with the home hidden: inside %q, want masked", a.Policy.State)
	}
	if has(r, "credential-store", "~/.bashrc") {
		t.Errorf("a mask of home = hidden is listed as a credential store")
	}
}

func TestSocketsAndNetwork(t *testing.T) {
	f := newFixture(t)
	r := f.compute(t, true)
	d := find(t, r, "daemon-socket", "~/.docker/run/docker.sock")
	if d.NoSandbox.State != "connectable" || d.Policy.State != "masked" || d.Weight != rootEquivalent {
		t.Errorf("Docker Desktop socket: %q / %q weight %g; want connectable / masked weight %d", d.NoSandbox.State, d.Policy.State, d.Weight, rootEquivalent)
	}
	s := find(t, r, "session-sockets", f.runtime)
	if !s.NoSandbox.InReach() || s.Policy.State != "masked" {
		t.Errorf("session sockets: %q / %q; want connectable / masked", s.NoSandbox.State, s.Policy.State)
	}
	in := find(t, r, "internet", "")
	if in.NoSandbox.Level != 1 || in.Policy.Level != 0 {
		t.Errorf("internet: %g / %g, want 1 / 0 with no allowed destination", in.NoSandbox.Level, in.Policy.Level)
	}
	if p := find(t, r, "processes", ""); !p.NoSandbox.InReach() || p.Policy.InReach() {
		t.Errorf("processes: %q / %q, want in reach / none", p.NoSandbox.State, p.Policy.State)
	}
	if has(r, "abstract-sockets", "") {
		t.Errorf("abstract sockets reported though the host has none")
	}

	tests := []struct {
		allow           []string
		internet, local float64
	}{
		{nil, 0, 0},
		{[]string{"registry.npmjs.org", "*.githubusercontent.com"}, 0.5, 0},
		{[]string{"0.0.0.0/0"}, 1, 1},
		{[]string{"10.0.0.0/8"}, 0.5, 1},
		{[]string{"169.254.169.254"}, 0.5, 1},
		{[]string{"192.0.2.10"}, 0.5, 0},
	}
	for _, tt := range tests {
		f.p.Network.Allow = tt.allow
		r := f.compute(t, true)
		if got := find(t, r, "internet", "").Policy.Level; got != tt.internet {
			t.Errorf("allow %q: internet inside %g, want %g", tt.allow, got, tt.internet)
		}
		if got := find(t, r, "local-network", "").Policy.Level; got != tt.local {
			t.Errorf("allow %q: local network inside %g, want %g", tt.allow, got, tt.local)
		}
	}
}

func TestUnknownIsInReach(t *testing.T) {
	f := newFixture(t)
	h := Host{UID: os.Getuid(), ListeningTCP: -1, AbstractSockets: -1, Processes: -1, PtraceScope: -1}
	r, err := Compute(Options{Policy: f.p, Home: f.home, Env: f.env, Host: h, Sockets: []Socket{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"internet", "host-services", "abstract-sockets", "processes"} {
		if a := find(t, r, kind, ""); !a.NoSandbox.InReach() {
			t.Errorf("%s unknown: no sandbox %q, want it assumed in reach", kind, a.NoSandbox.State)
		}
	}
}

func TestScore(t *testing.T) {
	r := &Report{Assets: []Asset{
		{Part: "credentials", Weight: 1, NoSandbox: Reach{Level: 1}, Policy: Reach{Level: 0}},
		{Part: "credentials", Weight: 3, NoSandbox: Reach{Level: 1}, Policy: Reach{Level: 1}},
		{Part: "network", Weight: 6, NoSandbox: Reach{Level: 1}, Policy: Reach{Level: 0.5}},
		{Part: "network", Weight: 2, NoSandbox: Reach{Level: 0}, Policy: Reach{Level: 0}},
	}}
	score(r)
	// credentials: 30 * 4/4 and 30 * 3/4; network: 20 * 6/8 and 20 * 3/8;
	// the other parts have no assets here and give 0.
	want := map[string][2]float64{"credentials": {30, 22.5}, "network": {15, 7.5}, "persistence": {0, 0}}
	for _, p := range r.Parts {
		if w, ok := want[p.Name]; ok && (p.NoSandbox != w[0] || p.Policy != w[1]) {
			t.Errorf("part %s: %g / %g, want %g / %g", p.Name, p.NoSandbox, p.Policy, w[0], w[1])
		}
	}
	if r.Score.NoSandbox != 45 || r.Score.Policy != 30 {
		t.Errorf("score %g / %g, want 45 / 30", r.Score.NoSandbox, r.Score.Policy)
	}
	total := 0.0
	for _, d := range parts {
		total += d.weight
	}
	if total != 100 {
		t.Errorf("the parts' weights add up to %g, want 100", total)
	}

	// Everything in reach is 100; nothing is 0.
	all := &Report{}
	for _, d := range parts {
		all.Assets = append(all.Assets, Asset{Part: d.name, Weight: 1, NoSandbox: Reach{Level: 1}})
	}
	score(all)
	if all.Score.NoSandbox != 100 || all.Score.Policy != 0 {
		t.Errorf("all in reach without, none inside: %g / %g, want 100 / 0", all.Score.NoSandbox, all.Score.Policy)
	}
}

func TestFixtureScore(t *testing.T) {
	r := newFixture(t).compute(t, true)
	if !(r.Score.Policy < r.Score.NoSandbox) {
		t.Errorf("score inside %g is not below the score without a sandbox %g", r.Score.Policy, r.Score.NoSandbox)
	}
	sum := [2]float64{}
	for _, p := range r.Parts {
		sum[0] += p.NoSandbox
		sum[1] += p.Policy
	}
	if math.Abs(sum[0]-r.Score.NoSandbox) > 0.3 || math.Abs(sum[1]-r.Score.Policy) > 0.3 {
		t.Errorf("the parts add up to %g / %g, the score is %g / %g", sum[0], sum[1], r.Score.NoSandbox, r.Score.Policy)
	}
	for i, a := range r.Assets {
		if a.ID != i+1 {
			t.Fatalf("asset %d has id %d", i, a.ID)
		}
	}
}

func TestNoSecretInOutput(t *testing.T) {
	r := newFixture(t).compute(t, true)
	for name, write := range map[string]func(*bytes.Buffer, *Report) error{
		"text": func(b *bytes.Buffer, r *Report) error { return WriteText(b, r) },
		"json": func(b *bytes.Buffer, r *Report) error { return WriteJSON(b, r) },
		"html": func(b *bytes.Buffer, r *Report) error { return WriteHTML(b, r) },
	} {
		var b bytes.Buffer
		if err := write(&b, r); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, secret := range []string{awsSecret, githubToken, envSecret, "AKIAIOSFODNN7EXAMPLE"} {
			if strings.Contains(b.String(), secret) {
				t.Errorf("the %s report holds a secret value", name)
			}
		}
		if !strings.Contains(b.String(), "~/.aws") {
			t.Errorf("the %s report does not name ~/.aws", name)
		}
	}
}

func TestSocketMasks(t *testing.T) {
	sockets := map[string]bool{"~/.docker/run": true, "~/.docker/desktop": true, "~/.colima": true, "~/.lima": true,
		"~/.orbstack": true, "~/.rd": true, "/run": true, "/var/run": true}
	for _, m := range policy.Masks {
		if got := socketMask(m); got != sockets[m.Path] {
			t.Errorf("socketMask(%s %q) = %v, want %v", m.Path, m.Why, got, sockets[m.Path])
		}
	}
}

func TestSecretKind(t *testing.T) {
	tests := map[string]bool{
		".env": true, ".env.local": true, ".env.production": true, ".env.example": false, ".env.sample": false,
		"id_rsa": true, "id_rsa.pub": false, "tls.key": true, ".key": false, "server.pem": true, "credentials.json": true,
		".npmrc": true, ".pypirc": true, "main.go": false, "env": false,
	}
	for name, want := range tests {
		if got := secretKind(name) != ""; got != want {
			t.Errorf("secretKind(%q) = %q, want a kind: %v", name, secretKind(name), want)
		}
	}
}

func TestTextLayout(t *testing.T) {
	r := newFixture(t).compute(t, true)
	var b bytes.Buffer
	if err := WriteText(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"SCORE", "TOTAL", "STILL IN REACH INSIDE THE SANDBOX", "CREDENTIALS", "HOW THE SCORE IS COMPUTED", "~/.bashrc"} {
		if !strings.Contains(out, want) {
			t.Errorf("the text report lacks %q", want)
		}
	}
	if strings.ContainsRune(out, 0x1b) {
		t.Errorf("the text report holds an escape sequence")
	}
}
