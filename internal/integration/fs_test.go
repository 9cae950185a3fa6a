package integration

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Masked credentials cannot be read, directly or by any indirect path.
func TestReadMaskedCredential(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		// Links made on the host before the run, in the workspace.
		must(t, os.Symlink(filepath.Join(b.home, ".aws/credentials"), filepath.Join(b.ws, "symlink")))
		must(t, os.Symlink(filepath.Join(b.home, ".aws"), filepath.Join(b.ws, "dirlink")))
		b.u.Chown(t, filepath.Join(b.ws, "symlink"), filepath.Join(b.ws, "dirlink"))
		rel, _ := filepath.Rel(b.ws, filepath.Join(b.home, ".aws/credentials"))
		r := b.probe(nil, "read",
			filepath.Join(b.home, ".aws/credentials"),
			filepath.Join(b.home, ".ssh/id_ed25519"),
			filepath.Join(b.home, ".config/gh/hosts.yml"),
			filepath.Join(b.home, ".netrc"),
			filepath.Join(b.home, ".docker/config.json"),
			"symlink", "dirlink/credentials", rel,
			"/proc/self/root"+filepath.Join(b.home, ".aws/credentials"),
			"/proc/1/root"+filepath.Join(b.home, ".aws/credentials"),
			filepath.Join(b.home, ".config/readable.conf"),
		)
		noSecret(t, r)
		if !strings.Contains(r.stdout, "ok visible") {
			t.Errorf("an unmasked file of the home should stay readable:\n%s", r)
		}
		// Links made from inside, then read.
		r = b.sh(`ln -s ` + b.home + `/.ssh/id_ed25519 in-link; cat in-link; ln ` + b.home + `/.aws/credentials hard 2>&1; cat hard; ` +
			`cp -r ` + b.home + `/.aws copy 2>&1; cat copy/credentials; find / -xdev -name credentials 2>/dev/null | xargs cat 2>/dev/null; ` +
			`grep -r AKIA ` + b.home + ` 2>/dev/null; true`)
		noSecret(t, r)
	})
}

// A mask cannot be lifted by a nested user and mount namespace.
func TestLiftMaskWithNestedNamespace(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		r := b.probe(nil, "unshare-unmask", filepath.Join(b.home, ".aws"), "credentials")
		noSecret(t, r)
		if !strings.HasPrefix(r.stdout, "err EPERM") {
			t.Errorf("unshare(CLONE_NEWUSER|CLONE_NEWNS) should fail with EPERM:\n%s", r)
		}
		r = b.probe(nil, "clone-newuser")
		if !strings.HasPrefix(r.stdout, "err") {
			t.Errorf("clone with CLONE_NEWUSER should fail:\n%s", r)
		}
		r = b.sh("unshare -Urm sh -c 'umount " + b.home + "/.aws; cat " + b.home + "/.aws/credentials' 2>&1; true")
		noSecret(t, r)
	})
}

// Nothing outside the write set can be written: the host's files stay as
// they were, whichever way the write is tried.
func TestWriteOutsideWorkspace(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		outside := filepath.Join(b.base, "outside")
		must(t, os.WriteFile(outside, []byte("host\n"), 0o644))
		b.u.Chown(t, outside)
		must(t, os.Symlink(filepath.Join(b.home, ".bashrc"), filepath.Join(b.ws, "rc-link")))
		b.u.Chown(t, filepath.Join(b.ws, "rc-link"))
		shmName := "cordon-test-" + filepath.Base(b.base)
		tmpName := "/tmp/cordon-test-" + filepath.Base(b.base)
		r := b.sh(strings.Join([]string{
			"echo evil >> " + b.home + "/.bashrc",
			"mkdir -p " + b.home + "/.ssh; echo evil >> " + b.home + "/.ssh/authorized_keys",
			"echo evil > " + outside,
			"echo evil >> rc-link",
			"echo moved > mv-src; mv mv-src " + b.home + "/moved",
			"mv README " + b.base + "/README-moved",
			"echo evil > " + tmpName,
			"echo evil > /dev/shm/" + shmName,
			"echo evil > /etc/cordon-test",
			"echo evil > /var/tmp/cordon-test-" + filepath.Base(b.base),
			"echo ok > inside",
		}, " 2>/dev/null; ") + " 2>/dev/null; true")
		if r.code != 0 {
			t.Fatalf("script failed:\n%s", r)
		}
		if got := readFile(t, filepath.Join(b.home, ".bashrc")); got != "# host bashrc\n" {
			t.Errorf(".bashrc changed to %q", got)
		}
		if got := readFile(t, outside); got != "host\n" {
			t.Errorf("a file outside the workspace changed to %q", got)
		}
		for _, p := range []string{
			filepath.Join(b.home, ".ssh/authorized_keys"), filepath.Join(b.home, "moved"),
			filepath.Join(b.base, "README-moved"), tmpName, "/dev/shm/" + shmName,
			"/etc/cordon-test", "/var/tmp/cordon-test-" + filepath.Base(b.base),
		} {
			if _, err := os.Lstat(p); err == nil {
				os.Remove(p)
				t.Errorf("%s was created on the host", p)
			}
		}
		if got := readFile(t, filepath.Join(b.ws, "inside")); got != "ok\n" {
			t.Errorf("the workspace should be writable; inside = %q\n%s", got, r)
		}
	})
}

// Files a host tool runs or trusts later stay read-only, and missing ones
// cannot be created; no placeholder is left after the run.
func TestProtectedWorkspacePaths(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		// A repository made on the host, as a user would have it.
		r := b.u.Command("git", "init", "-q", b.ws)
		r.Env = b.env
		if out, err := r.CombinedOutput(); err != nil {
			t.Skipf("git init: %v %s", err, out)
		}
		before := listDir(t, b.ws)
		configBefore := readFile(t, filepath.Join(b.ws, ".git/config"))
		res := b.sh(strings.Join([]string{
			"echo '#!/bin/sh' > .git/hooks/pre-commit",
			"chmod +x .git/hooks/pre-commit",
			"git config core.hooksPath /tmp/hooks",
			"git config core.fsmonitor 'touch /tmp/pwned'",
			"echo '[core]' >> .git/config",
			"mv .git .git-old",
			"rm -rf .git/hooks",
			"mkdir -p .vscode; echo '{}' > .vscode/tasks.json",
			"echo 'curl evil' > .envrc",
			"mkdir -p .claude; echo '{}' > .claude/settings.json",
			"echo '{}' > .mcp.json",
			"mkdir -p .husky; echo x > .husky/pre-commit",
			"echo x > .cordon.toml",
			"rmdir .vscode",
			"mv .envrc envrc-moved",
			"echo ok > normal-file",
			"git add normal-file && git -c user.email=a@b -c user.name=a commit -qm inside && echo committed",
		}, " 2>/dev/null; ") + " 2>/dev/null; git status --porcelain; true")
		if !strings.Contains(res.stdout, "committed") {
			t.Errorf("ordinary git work inside should succeed:\n%s", res)
		}
		if strings.Contains(res.stdout, ".envrc") || strings.Contains(res.stdout, ".vscode") {
			t.Errorf("placeholders should be invisible to git status:\n%s", res)
		}
		if got := readFile(t, filepath.Join(b.ws, ".git/config")); got != configBefore {
			t.Errorf(".git/config changed:\n%s", got)
		}
		if _, err := os.Stat(filepath.Join(b.ws, ".git/hooks/pre-commit")); err == nil {
			t.Errorf(".git/hooks/pre-commit was created")
		}
		after := listDir(t, b.ws)
		for _, name := range after {
			if !contains(before, name) && name != "normal-file" {
				t.Errorf("%s exists in the workspace after the run", name)
			}
		}
		if _, err := os.Stat(filepath.Join(b.ws, ".git/HEAD")); err != nil {
			t.Errorf(".git was moved away: %v", err)
		}
	})
}

// Without a repository, .git cannot be made inside (its hooks and config
// would run on the host later), and nothing is left behind.
func TestNoRepositoryCreatedInside(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		r := b.sh("git init -q . 2>&1; mkdir -p .git/hooks 2>&1; echo x > .envrc 2>&1; ls -a")
		if _, err := os.Stat(filepath.Join(b.ws, ".git")); err == nil {
			t.Errorf(".git was created in the workspace:\n%s", r)
		}
		for _, name := range listDir(t, b.ws) {
			if name != "README" {
				t.Errorf("%s left in the workspace after the run", name)
			}
		}
	})
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("reading %s: %v", p, err)
	}
	return string(b)
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A masked path that does not exist when the run starts stays hidden even
// if the host creates it while the run goes on.
func TestMaskedPathCreatedDuringRun(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		cmd, stdout, stderr := b.startWaiting(`cat ~/.kube/config ~/.config/gcloud/credentials.db 2>&1; ls -a ~`)
		for _, rel := range []string{".kube/config", ".config/gcloud/credentials.db"} {
			p := filepath.Join(b.home, rel)
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
			must(t, os.WriteFile(p, []byte(secret), 0o644))
		}
		must(t, os.WriteFile(filepath.Join(b.ws, "go"), nil, 0o644))
		rest, _ := io.ReadAll(stdout)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("cordon: %v\n%s", err, stderr.String())
		}
		out := string(rest)
		if strings.Contains(out, secret) {
			t.Errorf("a credential the host created during the run was readable:\n%s", out)
		}
		if !strings.Contains(out, ".bashrc") {
			t.Errorf("the home should still list its files:\n%s", out)
		}
		if strings.Contains(out, "\n.kube\n") {
			t.Errorf("~/.kube, missing at start, should stay missing:\n%s", out)
		}
	})
}

// Runs in the same workspace share the placeholders: one that ends does
// not lift the protection of one still running, and the last one removes
// them.
func TestConcurrentRunsShareProtection(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		long, stdout, stderr := b.startWaiting(`echo x > .envrc && echo CREATED; mkdir -p .vscode/x && echo CREATED`)
		// Short runs start and end while the long one goes on.
		done := make(chan result, 8)
		for i := 0; i < cap(done); i++ {
			go func() { done <- b.sh("test -d .envrc") }()
		}
		for i := 0; i < cap(done); i++ {
			if r := <-done; r.code != 0 {
				t.Errorf("a short run failed:\n%s", r)
			}
		}
		must(t, os.WriteFile(filepath.Join(b.ws, "go"), nil, 0o644))
		rest, _ := io.ReadAll(stdout)
		// It fails (its writes are refused); only how matters.
		long.Wait()
		if !strings.Contains(stderr.String(), "cannot create .envrc") {
			t.Errorf("the long run should have been refused .envrc:\n%s", stderr.String())
		}
		if strings.Contains(string(rest), "CREATED") {
			t.Errorf("a protected path was created after another run ended:\n%s", rest)
		}
		for _, name := range listDir(t, b.ws) {
			if name != "README" && name != "go" {
				t.Errorf("%s left in the workspace after the runs", name)
			}
		}
	})
}

// startWaiting starts `cordon run -- sh -c` with a script that says it is
// ready, waits until the test creates "go" in the workspace, then runs
// script. It returns once the sandbox is ready, with the command's stdout
// to read the rest from and its stderr.
func (b *box) startWaiting(script string) (*exec.Cmd, io.Reader, *strings.Builder) {
	b.t.Helper()
	cmd := b.u.Command(cordonBin, "run", "--", "sh", "-c",
		`echo ready; while [ ! -e go ]; do sleep 0.05; done; `+script)
	cmd.Dir = b.ws
	cmd.Env = b.env
	stdout, err := cmd.StdoutPipe()
	must(b.t, err)
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	must(b.t, cmd.Start())
	buf := make([]byte, 6)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		b.t.Fatalf("the sandbox did not start: %q %v %s", buf, err, stderr.String())
	}
	return cmd, stdout, stderr
}
