package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/cordon-sandbox/cordon/internal/decoy"
)

// writeHome makes a home directory holding files, named as policy.Masks
// names them ("~/.aws/credentials"), and returns it.
func writeHome(t *testing.T, files map[string]string) string {
	t.Helper()
	home := t.TempDir()
	for name, content := range files {
		writeFile(t, home, name, []byte(content), 0o600)
	}
	return home
}

func writeFile(t *testing.T, home, name string, content []byte, mode os.FileMode) string {
	t.Helper()
	rel, ok := strings.CutPrefix(name, "~/")
	if !ok {
		t.Fatalf("writing %s: not under ~/", name)
	}
	p := filepath.Join(home, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, content, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// fromDecoys are the values Discover finds in the decoys, in order: each
// is the canary planted at Where, except where how says otherwise.
var fromDecoys = []struct {
	where, what string
	how         string // "canary": the value is the canary; "contains": holds it; "base64": decodes to hold it
}{
	{"~/.aws/credentials", "aws_access_key_id", "canary"},
	{"~/.aws/credentials", "aws_secret_access_key", "canary"},
	{"~/.config/gcloud/application_default_credentials.json", "client_secret", "canary"},
	{"~/.config/gcloud/application_default_credentials.json", "refresh_token", "canary"},
	{"~/.kube/config", "token", "contains"}, // the whole JWT; the canary is 40 characters of its signature
	{"~/.docker/config.json", "auth", "base64"},
	{"~/.docker/config.json", "auth password", "canary"},
	{"~/.config/doctl/config.yaml", "access-token", "canary"},
	{"~/.terraform.d/credentials.tfrc.json", "token", "canary"},
	{"~/.ssh/id_ed25519", "private key", "canary"},
	{"~/.netrc", "password", "canary"},
	{"~/.git-credentials", "password", "canary"},
	{"~/.config/git/credentials", "password", "canary"},
	{"~/.config/gh/hosts.yml", "oauth_token", "canary"},
	{"~/.config/hub", "oauth_token", "canary"},
	{"~/.npmrc", "_authtoken", "canary"},
	{"~/.yarnrc.yml", "npmAuthToken", "canary"},
	{"~/.pypirc", "password", "canary"},
	{"~/.cargo/credentials.toml", "token", "canary"},
	{"~/.gem/credentials", ":rubygems_api_key", "canary"},
	{"~/.vault-token", "token", "canary"},
}

// TestDiscoverFindsTheDecoys reads decoys as the real stores they imitate:
// every canary comes out, as itself where the decoy has it verbatim, and
// nothing else does.
func TestDiscoverFindsTheDecoys(t *testing.T) {
	for run := range 3 { // the SSH key's canary sits at a different place in each key
		home := t.TempDir()
		decoys, canaries, err := decoy.Generate(home, "alice", rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range decoys {
			for _, f := range d.Files {
				p := d.Mask
				if d.Dir {
					p = filepath.Join(d.Mask, filepath.FromSlash(f.Rel))
				}
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, f.Content, os.FileMode(f.Mode)); err != nil {
					t.Fatal(err)
				}
			}
		}

		vals, skipped := discover(home, nil)
		if skipped != 0 {
			t.Errorf("run %d: skipped = %d, want 0", run, skipped)
		}
		var got, want []string
		for _, v := range vals {
			got = append(got, v.Where+" "+v.What)
		}
		for _, w := range fromDecoys {
			want = append(want, w.where+" "+w.what)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("run %d: Discover found\n\t%s\nwant\n\t%s", run, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}

		byWhere := map[string][]decoy.Canary{}
		for _, c := range canaries {
			byWhere[c.Where] = append(byWhere[c.Where], c)
		}
		used := map[string]bool{}
		for i, v := range vals {
			how := fromDecoys[i].how
			ok := false
			for _, c := range byWhere[v.Where] {
				switch how {
				case "canary":
					ok = v.Value == c.Token
				case "contains":
					ok = strings.Contains(v.Value, c.Token)
				case "base64":
					b, err := base64.StdEncoding.DecodeString(v.Value)
					ok = err == nil && strings.Contains(string(b), c.Token)
				}
				if ok {
					used[c.Token] = true
					break
				}
			}
			if !ok {
				t.Errorf("run %d: the %s of %s (%s) is no canary of that file (%s)", run, v.What, v.Where, redact(v.Value), how)
			}
		}
		for _, c := range canaries {
			if !used[c.Token] {
				t.Errorf("run %d: the %s canary of %s was not found", run, c.Kind, c.Where)
			}
		}
	}
}

// discover runs Discover and drops the host's own SSH host keys, which a
// test running as root on a host that has them finds too.
func discover(home string, env []string) ([]Value, int) {
	vals, skipped := Discover(home, env)
	return slices.DeleteFunc(vals, func(v Value) bool { return strings.HasPrefix(v.Where, "/") }), skipped
}

// hostKeys counts the SSH host keys of this host.
func hostKeys() int {
	n := 0
	for _, p := range []string{"/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_ecdsa_key", "/etc/ssh/ssh_host_ed25519_key"} {
		if _, err := os.Stat(p); err == nil {
			n++
		}
	}
	return n
}

func redact(s string) string {
	return fmt.Sprintf("%.4s…(%d bytes)", s, len(s))
}

func TestDiscoverEnvironment(t *testing.T) {
	secret := "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	vals, skipped := discover("", []string{
		"AWS_SECRET_ACCESS_KEY=" + secret,
		"GITHUB_TOKEN=short",                         // under MinLen: skipped
		"AWS_REGION=ap-southeast-2",                  // not a secret
		"AWS_PROFILE=production-admin",               // not a secret
		"SSH_AUTH_SOCK=/tmp/ssh-XXXXabcdef/agent.42", // a socket
		"CLIENT_SECRET_FILE=/home/alice/secret.json", // a path
		"DATABASE_URL=postgres://app:" + "s3cr3t-passw0rd@db.internal/app",
		"NPM_TOKEN: looks like a token", // FilterEnv's "NAME: why" form: no value
		"DUP_TOKEN=" + secret,           // the same value once
		"EMPTY_TOKEN=",
	})
	want := []Value{
		{secret, "environment variable AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"},
		{"s3cr3t-passw0rd", "environment variable DATABASE_URL", "password in URL"},
		{"postgres://app:s3cr3t-passw0rd@db.internal/app", "environment variable DATABASE_URL", "database_url"},
	}
	if !slices.Equal(vals, want) {
		t.Errorf("Discover(env) = %v, want %v", vals, want)
	}
	if skipped != 1 {
		t.Errorf("skipped = %d, want 1", skipped)
	}
}

// TestDiscoverValuesAreFoundOnce: a value in two stores is reported at the
// first, in the order of policy.Masks, then the environment.
func TestDiscoverValuesAreFoundOnce(t *testing.T) {
	token := "ghp_" + strings.Repeat("a1B2", 9)
	home := writeHome(t, map[string]string{
		"~/.netrc":           "machine github.com login alice password " + token + "\n",
		"~/.git-credentials": "https://alice:" + token + "@github.com\n",
	})
	vals, _ := discover(home, []string{"GH_TOKEN=" + token})
	want := []Value{{token, "~/.netrc", "password"}}
	if !slices.Equal(vals, want) {
		t.Errorf("Discover = %v, want %v", vals, want)
	}
}

func TestDiscoverBounds(t *testing.T) {
	token := "hvs.CAESI" + strings.Repeat("x", 40)
	t.Run("large file", func(t *testing.T) {
		big := token + "\n" + strings.Repeat(" ", 2<<20)
		home := writeHome(t, map[string]string{"~/.vault-token": big})
		if vals, skipped := discover(home, nil); len(vals) != 0 || skipped != 1 {
			t.Errorf("Discover of a 2 MiB file = %d values, %d skipped; want 0, 1", len(vals), skipped)
		}
	})
	t.Run("unreadable file", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads a file of mode 000")
		}
		home := t.TempDir()
		writeFile(t, home, "~/.vault-token", []byte(token), 0)
		if vals, skipped := discover(home, nil); len(vals) != 0 || skipped != 1 {
			t.Errorf("Discover of a file of mode 000 = %d values, %d skipped; want 0, 1", len(vals), skipped)
		}
	})
	t.Run("unreadable directory", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads a directory of mode 000")
		}
		home := t.TempDir()
		p := writeFile(t, home, "~/.ssh/id_ed25519", ed25519PEM(t, 1), 0o600)
		if err := os.Chmod(filepath.Dir(p), 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(filepath.Dir(p), 0o700) })
		if vals, skipped := discover(home, nil); len(vals) != 0 || skipped != 1 {
			t.Errorf("Discover of a directory of mode 000 = %d values, %d skipped; want 0, 1", len(vals), skipped)
		}
	})
	t.Run("not a regular file", func(t *testing.T) {
		home := t.TempDir()
		if err := syscall.Mkfifo(filepath.Join(home, ".vault-token"), 0o600); err != nil {
			t.Skipf("making a FIFO: %v", err)
		}
		if err := os.Symlink("/dev/zero", filepath.Join(home, ".pypirc")); err != nil {
			t.Fatal(err)
		}
		// A FIFO opened for reading without a writer would block here.
		if vals, skipped := discover(home, nil); len(vals) != 0 || skipped != 0 {
			t.Errorf("Discover of a FIFO and a device = %d values, %d skipped; want 0, 0", len(vals), skipped)
		}
	})
	t.Run("many files", func(t *testing.T) {
		home := t.TempDir()
		for i := range maxFiles + 50 {
			writeFile(t, home, fmt.Sprintf("~/.ssh/key%03d", i), ed25519PEM(t, byte(i)), 0o600)
		}
		vals, skipped := discover(home, nil)
		// The host's own keys come after ~/.ssh, past the limit too.
		if want := 50 + hostKeys(); len(vals) != maxFiles || skipped != want {
			t.Errorf("Discover of %d keys = %d values, %d skipped; want %d, %d", maxFiles+50, len(vals), skipped, maxFiles, want)
		}
	})
	t.Run("deep files", func(t *testing.T) {
		home := t.TempDir()
		writeFile(t, home, "~/.ssh/a/b/id_ed25519", ed25519PEM(t, 1), 0o600)
		writeFile(t, home, "~/.ssh/a/b/c/id_ed25519", ed25519PEM(t, 2), 0o600)
		vals, _ := discover(home, nil)
		if len(vals) != 1 || vals[0].Where != "~/.ssh/a/b/id_ed25519" {
			t.Errorf("Discover of keys 2 and 3 levels down = %v, want the one 2 levels down", vals)
		}
	})
	t.Run("no home", func(t *testing.T) {
		for _, home := range []string{"", "relative/home"} {
			if vals, skipped := discover(home, nil); len(vals) != 0 || skipped != 0 {
				t.Errorf("Discover(%q) = %d values, %d skipped; want 0, 0", home, len(vals), skipped)
			}
		}
	})
}
