package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/internal/cordontest"
)

var (
	// cordonBin is the cordon binary under test, built by TestMain.
	cordonBin string
	// probeBin is this test binary, copied where a sandbox can run it.
	probeBin string
)

// probeEnv marks the test binary running inside a sandbox as a probe.
const probeEnv = "CORDON_TEST_PROBE"

func TestMain(m *testing.M) {
	if os.Getenv(probeEnv) != "" {
		os.Exit(runProbe(os.Args[1:]))
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	// Outside /tmp, which every sandbox replaces with its own; readable by
	// the unprivileged test uid.
	dir, err := os.MkdirTemp("/var/tmp", "cordon-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	cordonBin = filepath.Join(dir, "cordon")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	// The test hooks let tests point names at their loopback servers.
	build := exec.Command("go", "build", "-tags", "cordon_testhooks", "-o", cordonBin, "./cmd/cordon")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building cordon: %v\n%s", err, out)
		return 1
	}
	probeBin = filepath.Join(dir, "probe")
	if err := copyFile(os.Args[0], probeBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	before := leakSnapshot()
	code := m.Run()
	if code == 0 {
		if err := checkLeaks(before); err != nil {
			fmt.Fprintf(os.Stderr, "leak check: %v\n", err)
			code = 1
		}
	}
	return code
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// The fake secret every test home holds. It must never appear inside.
const secret = "AKIAIOSFODNN7SECRETCANARY"

// box is one test's host: a home with credentials, a workspace, a runtime
// dir, all owned by the user the test runs as.
type box struct {
	t    *testing.T
	u    cordontest.User
	base string
	home string
	ws   string
	xdg  string
	env  []string
}

func newBox(t *testing.T, u cordontest.User) *box {
	t.Helper()
	cordontest.RequireUserNS(t)
	// Not under /tmp: every sandbox has a private /tmp, and the home and
	// workspace must be where the sandbox sees them.
	base, err := os.MkdirTemp(filepath.Dir(cordonBin), "box-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	b := &box{t: t, u: u, base: base,
		home: filepath.Join(base, "home"), ws: filepath.Join(base, "ws"), xdg: filepath.Join(base, "xdg")}
	files := map[string]string{
		".aws/credentials":      "[default]\naws_secret_access_key = " + secret + "\n",
		".ssh/id_ed25519":       "-----BEGIN OPENSSH PRIVATE KEY-----\n" + secret + "\n",
		".config/gh/hosts.yml":  "github.com:\n  oauth_token: " + secret + "\n",
		".netrc":                "machine example.com login me password " + secret + "\n",
		".bashrc":               "# host bashrc\n",
		".docker/config.json":   `{"auths":{"r":{"auth":"` + secret + `"}}}`,
		".config/readable.conf": "visible\n",
	}
	for rel, content := range files {
		p := filepath.Join(b.home, rel)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(content), 0o600))
	}
	must(t, os.MkdirAll(b.ws, 0o755))
	must(t, os.MkdirAll(b.xdg, 0o700))
	must(t, os.WriteFile(filepath.Join(b.ws, "README"), []byte("workspace\n"), 0o644))
	filepath.Walk(base, func(p string, _ os.FileInfo, _ error) error {
		u.Chown(t, p)
		return nil
	})
	b.env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + b.home,
		"XDG_RUNTIME_DIR=" + b.xdg,
		"LANG=C",
	}
	return b
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// result is what a run of cordon printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cordon runs the cordon binary as the box's user, in the workspace.
func (b *box) cordon(stdin io.Reader, extraEnv []string, args ...string) result {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := b.u.Command(cordonBin, args...)
	cmd.Dir = b.ws
	cmd.Env = append(append([]string{}, b.env...), extraEnv...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("starting cordon: %v", err)
	}
	inTime, err := waitBounded(ctx, cmd)
	if !inTime {
		b.t.Fatalf("cordon %v did not finish in time\nstdout: %s\nstderr: %s", args, out.String(), errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		b.t.Fatalf("running cordon: %v", err)
	}
	return result{out.String(), errb.String(), code}
}

// waitBounded waits for a started cmd until ctx ends; then it kills it by
// pid, reaps it, and reports false with how it ended.
func waitBounded(ctx context.Context, cmd *exec.Cmd) (bool, error) {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return true, err
	case <-ctx.Done():
		cmd.Process.Kill()
		return false, <-done
	}
}

// run runs `cordon run [flags] -- argv...`.
func (b *box) run(flags []string, argv ...string) result {
	b.t.Helper()
	args := append([]string{"run"}, flags...)
	args = append(args, "--")
	return b.cordon(nil, nil, append(args, argv...)...)
}

// sh runs a shell script in the sandbox with default flags.
func (b *box) sh(script string) result {
	b.t.Helper()
	return b.run(nil, "sh", "-c", script)
}

// probe runs this test binary inside the sandbox as a probe doing action;
// its stdout is one line per attempt, "ok ..." or "err ...".
func (b *box) probe(flags []string, action string, args ...string) result {
	b.t.Helper()
	all := append([]string{"run"}, flags...)
	all = append(all, "--", probeBin, action)
	return b.cordon(nil, []string{probeEnv + "=1"}, append(all, args...)...)
}

// forEachUser runs f as root and as an unprivileged uid (see Users).
func forEachUser(t *testing.T, f func(t *testing.T, b *box)) {
	for _, u := range cordontest.Users() {
		t.Run(u.Name, func(t *testing.T) {
			f(t, newBox(t, u))
		})
	}
}

// noSecret fails the test if the secret shows up in r.
func noSecret(t *testing.T, r result) {
	t.Helper()
	if strings.Contains(r.stdout, secret) || strings.Contains(r.stderr, secret) {
		t.Errorf("the secret leaked into the sandbox:\n%s", r)
	}
}
