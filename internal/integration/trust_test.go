package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cordon-sandbox/cordon/internal/trust"
)

// ignoredLines returns the lines of stderr that say a workspace policy was
// ignored.
func ignoredLines(stderr string) []string {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "cordon: ignoring ") {
			lines = append(lines, l)
		}
	}
	return lines
}

// wantIgnored fails the test unless stderr has exactly one line saying
// ws's policy was ignored, for a reason starting with why.
func wantIgnored(t *testing.T, r result, ws, why string) {
	t.Helper()
	lines := ignoredLines(r.stderr)
	prefix := "cordon: ignoring " + filepath.Join(ws, ".cordon.toml") + ": " + why
	suffix := ` (run "cordon trust" in ` + ws + ` to use it)`
	if len(lines) != 1 || !strings.HasPrefix(lines[0], prefix) || !strings.HasSuffix(lines[0], suffix) {
		t.Errorf("want exactly one line %q...%q on stderr, got %q:\n%s", prefix, suffix, lines, r)
	}
}

// canonicalWS is the workspace as cordon names it, symlinks resolved.
func (b *box) canonicalWS(t *testing.T) string {
	t.Helper()
	ws, err := filepath.EvalSymlinks(b.ws)
	must(t, err)
	return ws
}

// writeWS writes a file of the workspace as the box's user would.
func (b *box) writeWS(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(b.ws, name)
	must(t, os.WriteFile(p, []byte(content), 0o644))
	b.u.Chown(t, p)
	return p
}

// A workspace policy that would open the network is ignored until the user
// trusts it, used once trusted, and ignored again once it changes.
func TestWorkspacePolicyTrust(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	forEachUser(t, func(t *testing.T, b *box) {
		o := startOrigin(t, b, "app.test")
		env := egressEnv("app.test")
		ws := b.canonicalWS(t)
		url := "http://app.test:" + o.httpPort + "/hello"
		policy := fmt.Sprintf("# v1\n[network]\nallow = [\"app.test\", \"127.0.0.1:%s\"]\n", o.httpPort)
		file := b.writeWS(t, ".cordon.toml", policy)

		r := b.runNet(nil, env, "curl", "-sS", url)
		if strings.Contains(r.stdout, originBody) {
			t.Errorf("an untrusted workspace policy opened the network:\n%s", r)
		}
		wantIgnored(t, r, ws, "not trusted")

		tr := b.cordon(nil, nil, "trust")
		if tr.code != 0 {
			t.Fatalf("cordon trust:\n%s", tr)
		}
		r = b.runNet(nil, env, "curl", "-fsS", url)
		if r.code != 0 || !strings.Contains(r.stdout, originBody) {
			t.Errorf("the trusted workspace policy should allow %s:\n%s", url, r)
		}
		if lines := ignoredLines(r.stderr); len(lines) != 0 {
			t.Errorf("a trusted policy was ignored: %q", lines)
		}

		// One byte, in a comment: the policy means the same, but it is
		// not the file that was trusted.
		changed := strings.Replace(policy, "# v1", "# v2", 1)
		must(t, os.WriteFile(file, []byte(changed), 0o644))
		r = b.runNet(nil, env, "curl", "-sS", url)
		if strings.Contains(r.stdout, originBody) {
			t.Errorf("a changed workspace policy was still used:\n%s", r)
		}
		wantIgnored(t, r, ws, "changed")
	})
}

// A workspace policy that is not even TOML gives no parse error before it
// is trusted: cordon run does not read it. Only `cordon trust` does, and
// refuses it.
func TestUntrustedPolicyNotParsed(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		ws := b.canonicalWS(t)
		base := b.run(nil, "true")
		if base.code != 0 {
			t.Fatalf("cordon run -- true:\n%s", base)
		}
		b.writeWS(t, ".cordon.toml", "[network\nallow = = \"\xff\x00\"\n")
		r := b.run(nil, "true")
		if r.code != 0 {
			t.Errorf("an untrusted, unparseable policy made the run fail:\n%s", r)
		}
		wantIgnored(t, r, ws, "not trusted")
		rest := r.stderr
		for _, l := range ignoredLines(r.stderr) {
			rest = strings.Replace(rest, l+"\n", "", 1)
		}
		if rest != base.stderr {
			t.Errorf("stderr beyond the ignoring line = %q, want what a run without the file prints, %q", rest, base.stderr)
		}

		tr := b.cordon(nil, nil, "trust")
		if tr.code == 0 || !strings.Contains(tr.stderr, "not trusted") {
			t.Errorf("cordon trust of an invalid policy should fail and say it is not trusted:\n%s", tr)
		}
		if r := b.run(nil, "true"); r.code != 0 || len(ignoredLines(r.stderr)) != 1 {
			t.Errorf("after a refused cordon trust, the policy should still be ignored:\n%s", r)
		}
	})
}

// Inside the sandbox the workspace policy cannot be changed or created,
// and neither the trust store nor the user policy can be seen.
func TestPolicyFilesInsideSandbox(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		const wsPolicy = "# the workspace policy\n"
		const userMarker = "USER-POLICY-MARKER"
		file := b.writeWS(t, ".cordon.toml", wsPolicy)

		// Trusted, as `cordon trust` would record it.
		state := filepath.Join(b.home, ".local", "state", "cordon")
		s, err := trust.Open(filepath.Join(state, "trust.json"))
		must(t, err)
		rec, err := s.Trust(file)
		must(t, err)
		userDir := filepath.Join(b.home, ".config", "cordon")
		must(t, os.MkdirAll(userDir, 0o700))
		must(t, os.WriteFile(filepath.Join(userDir, "policy.toml"), []byte("# "+userMarker+"\n"), 0o600))
		b.u.Chown(t, filepath.Join(b.home, ".local"), filepath.Join(b.home, ".local", "state"), state,
			filepath.Join(state, "trust.json"), filepath.Join(state, "trust.json.lock"),
			userDir, filepath.Join(userDir, "policy.toml"))
		storeBefore := readFile(t, filepath.Join(state, "trust.json"))

		r := b.sh(strings.Join([]string{
			"echo '[network]' >> .cordon.toml && echo WROTE",
			"echo '[network]' > .cordon.toml && echo WROTE",
			"rm -f .cordon.toml && echo WROTE",
			"mv .cordon.toml moved.toml && echo WROTE",
			"cat ~/.local/state/cordon/trust.json",
			"ls -a ~/.local/state/cordon",
			"echo '{}' > ~/.local/state/cordon/trust.json && echo WROTE",
			"cat ~/.config/cordon/policy.toml",
			"ls -a ~/.config/cordon",
		}, " 2>/dev/null; ") + " 2>/dev/null; true")
		if strings.Contains(r.stdout, "WROTE") {
			t.Errorf("a write to the workspace policy or the trust store succeeded:\n%s", r)
		}
		if got := readFile(t, file); got != wsPolicy {
			t.Errorf(".cordon.toml changed to %q", got)
		}
		if _, err := os.Lstat(filepath.Join(b.ws, "moved.toml")); err == nil {
			t.Errorf(".cordon.toml was moved")
		}
		if strings.Contains(r.stdout, rec.SHA256) || strings.Contains(r.stdout, "trust.json") {
			t.Errorf("the trust store is visible inside:\n%s", r)
		}
		if got := readFile(t, filepath.Join(state, "trust.json")); got != storeBefore {
			t.Errorf("the trust store changed to %q", got)
		}
		if strings.Contains(r.stdout, userMarker) || strings.Contains(r.stdout, "policy.toml") {
			t.Errorf("the user policy is visible inside:\n%s", r)
		}

		// A workspace without a policy cannot be given one from inside.
		must(t, os.Remove(file))
		r = b.sh("echo '[network]' > .cordon.toml 2>&1 && echo WROTE; mkdir .cordon.toml 2>&1 && echo WROTE; true")
		if strings.Contains(r.stdout, "WROTE") {
			t.Errorf(".cordon.toml could be created inside:\n%s", r)
		}
		if _, err := os.Lstat(file); err == nil {
			t.Errorf(".cordon.toml was created in the workspace:\n%s", r)
		}
	})
}
