package decoy

import (
	"bytes"
	"encoding/base64"
	"errors"
	"math"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/cordon-sandbox/cordon/internal/policy"
)

const home = "/home/alice"

// generate runs Generate for alice with a ChaCha8 stream seeded by seed.
func generate(t *testing.T, seed byte) ([]Decoy, []Canary) {
	t.Helper()
	decoys, canaries, err := Generate(home, "alice", rand.NewChaCha8([32]byte{seed}))
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return decoys, canaries
}

// files maps each decoy file to its content, by its name in the table's
// form: "~/.aws/credentials", "~/.netrc".
func files(t *testing.T, decoys []Decoy) map[string]File {
	t.Helper()
	m := map[string]File{}
	for _, d := range decoys {
		mask, ok := strings.CutPrefix(d.Mask, home+"/")
		if !ok {
			t.Fatalf("mask %s is not under %s", d.Mask, home)
		}
		for _, f := range d.Files {
			m[path.Join("~", mask, f.Rel)] = f
		}
	}
	return m
}

// The decoyed masks, in the order of policy.Masks. A mask that gains or
// loses a decoy changes this list on purpose.
var decoyed = []string{
	"~/.aws",
	"~/.config/gcloud",
	"~/.kube",
	"~/.docker/config.json",
	"~/.config/doctl",
	"~/.terraform.d/credentials.tfrc.json",
	"~/.ssh",
	"~/.netrc",
	"~/.git-credentials",
	"~/.config/git/credentials",
	"~/.config/gh",
	"~/.config/hub",
	"~/.npmrc",
	"~/.yarnrc.yml",
	"~/.pypirc",
	"~/.cargo/credentials.toml",
	"~/.gem/credentials",
	"~/.vault-token",
}

func TestDecoysFillMasksOfTheTable(t *testing.T) {
	decoys, _ := generate(t, 1)
	table := map[string]policy.Entry{}
	for _, m := range policy.Masks {
		table[policy.ExpandHome(m.Path, home)] = m
	}
	var got []string
	for _, d := range decoys {
		m, ok := table[d.Mask]
		if !ok {
			t.Errorf("decoy for %s, which policy.Masks lacks", d.Mask)
			continue
		}
		got = append(got, m.Path)
		if !strings.HasPrefix(m.Path, "~/") {
			t.Errorf("decoy for %s, outside the home directory", m.Path)
		}
		if d.Dir != (m.Kind == policy.Dir) {
			t.Errorf("decoy for %s: Dir = %v, but the mask is a %s", m.Path, d.Dir, m.Kind)
		}
		if !d.Dir && (len(d.Files) != 1 || d.Files[0].Rel != "") {
			t.Errorf("decoy for file mask %s has files %v, want one with Rel \"\"", m.Path, rels(d.Files))
		}
		for _, f := range d.Files {
			if d.Dir && (f.Rel == "" || path.Clean(f.Rel) != f.Rel || path.IsAbs(f.Rel) || strings.HasPrefix(f.Rel, "..") || strings.Count(f.Rel, "/") > 1) {
				t.Errorf("decoy for %s: file %q is not a plain relative path of at most two levels", m.Path, f.Rel)
			}
			if f.Mode&^0o777 != 0 || f.Mode&0o600 != 0o600 || f.Mode&0o022 != 0 {
				t.Errorf("decoy for %s: file %q has mode %#o", m.Path, f.Rel, f.Mode)
			}
			if len(f.Content) == 0 {
				t.Errorf("decoy for %s: file %q is empty", m.Path, f.Rel)
			}
		}
	}
	if !slices.Equal(got, decoyed) {
		t.Errorf("decoyed masks = %q, want %q", got, decoyed)
	}
}

func rels(fs []File) []string {
	var s []string
	for _, f := range fs {
		s = append(s, f.Rel)
	}
	return s
}

// encoded lists the decoys that hold their canary in an encoding rather
// than verbatim, and how to get it back.
var encoded = map[string]func(t *testing.T, content []byte) []byte{
	"~/.docker/config.json": func(t *testing.T, content []byte) []byte {
		return dockerAuth(t, content)
	},
}

func TestCanariesArePlantedOnce(t *testing.T) {
	decoys, canaries := generate(t, 1)
	fs := files(t, decoys)
	seen := map[string]bool{}
	wheres := map[string]bool{}
	for _, c := range canaries {
		if len(c.Token) < 16 {
			t.Errorf("canary %q (%s) is shorter than 16", c.Token, c.Kind)
		}
		for _, r := range []byte(c.Token) {
			if r <= ' ' || r > '~' {
				t.Errorf("canary %q (%s) has byte %#x, want printable ASCII", c.Token, c.Kind, r)
				break
			}
		}
		if c.Kind == "" {
			t.Errorf("canary %q has no kind", c.Token)
		}
		if seen[c.Token] {
			t.Errorf("canary %q repeats", c.Token)
		}
		seen[c.Token] = true
		wheres[c.Where] = true
		f, ok := fs[c.Where]
		if !ok {
			t.Errorf("canary %q (%s) is in %s, which is no decoy file", c.Token, c.Kind, c.Where)
			continue
		}
		content := f.Content
		if decode, ok := encoded[c.Where]; ok {
			content = decode(t, content)
		}
		if n := bytes.Count(content, []byte(c.Token)); n != 1 {
			t.Errorf("canary %q (%s) appears %d times in %s, want once", c.Token, c.Kind, n, c.Where)
		}
	}
	// Every mask's decoy carries at least one canary.
	for _, m := range decoyed {
		found := false
		for w := range wheres {
			if w == m || strings.HasPrefix(w, m+"/") {
				found = true
			}
		}
		if !found {
			t.Errorf("the decoy of %s has no canary", m)
		}
	}
}

func TestCanariesDependOnRandomness(t *testing.T) {
	_, a := generate(t, 1)
	_, again := generate(t, 1)
	if !slices.Equal(a, again) {
		t.Errorf("two runs from one seed gave different canaries:\n%v\n%v", a, again)
	}
	decoys, b := generate(t, 2)
	if len(a) != len(b) {
		t.Fatalf("runs gave %d and %d canaries", len(a), len(b))
	}
	// No canary of one run is anywhere in another's decoys: this is also
	// what keeps the SSH canary off the header all OpenSSH keys share.
	for _, c := range a {
		for where, f := range files(t, decoys) {
			if bytes.Contains(f.Content, []byte(c.Token)) {
				t.Errorf("canary %q (%s) of run 1 is in run 2's %s", c.Token, c.Kind, where)
			}
		}
	}
}

// TestCanaryBits estimates each canary's randomness from 32 runs: the
// positions that vary between runs, times the bits of the characters seen
// there. It catches a token cut short or drawn from a smaller alphabet.
func TestCanaryBits(t *testing.T) {
	samples := map[string][]string{}
	var keys []string
	for seed := range byte(32) {
		_, canaries := generate(t, seed)
		for _, c := range canaries {
			k := c.Where + " " + c.Kind
			if samples[k] == nil {
				keys = append(keys, k)
			}
			samples[k] = append(samples[k], c.Token)
		}
	}
	for _, k := range keys {
		tokens := samples[k]
		n := len(tokens[0])
		for _, tok := range tokens {
			n = min(n, len(tok))
		}
		varying, seen := 0, map[byte]bool{}
		for i := range n {
			if slices.ContainsFunc(tokens, func(tok string) bool { return tok[i] != tokens[0][i] }) {
				varying++
				for _, tok := range tokens {
					seen[tok[i]] = true
				}
			}
		}
		if bits := float64(varying) * math.Log2(float64(len(seen))); bits < 80 {
			t.Errorf("canary %s: about %.0f random bits (%d varying positions, %d characters), want at least 80", k, bits, varying, len(seen))
		}
	}
}

type failingReader struct{}

var errBroken = errors.New("broken reader")

func (failingReader) Read([]byte) (int, error) { return 0, errBroken }

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

func TestGenerateFails(t *testing.T) {
	if _, _, err := Generate("home/alice", "alice", rand.NewChaCha8([32]byte{})); err == nil {
		t.Errorf("Generate with a relative home succeeded")
	}
	if _, _, err := Generate(home, "alice", failingReader{}); !errors.Is(err, errBroken) {
		t.Errorf("Generate with a failing reader = %v, want %v", err, errBroken)
	}
	if _, _, err := Generate(home, "alice", zeros{}); err == nil || !strings.Contains(err.Error(), "repeats") {
		t.Errorf("Generate with a reader of zeros = %v, want a repeated canary", err)
	}
}

func TestUserName(t *testing.T) {
	tests := []struct {
		user, want string
	}{
		{"alice", "alice"},
		{"first.last", "first.last"},
		{"", "dev"},
		{"john doe", "dev"},
		{"a\"b", "dev"},
		{"-oProxyCommand", "dev"},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			decoys, _, err := Generate(home, tt.user, rand.NewChaCha8([32]byte{}))
			if err != nil {
				t.Fatal(err)
			}
			fs := files(t, decoys)
			if got := string(fs["~/.netrc"].Content); !strings.Contains(got, " login "+tt.want+" ") {
				t.Errorf("Generate(user %q): .netrc = %q, want login %s", tt.user, got, tt.want)
			}
			if got := string(fs["~/.ssh/id_ed25519.pub"].Content); !strings.HasSuffix(got, " "+tt.want+"@laptop\n") {
				t.Errorf("Generate(user %q): id_ed25519.pub = %q, want comment %s@laptop", tt.user, got, tt.want)
			}
		})
	}
}

// dockerAuth decodes the "auth" of Docker Hub in a config.json.
func dockerAuth(t *testing.T, content []byte) []byte {
	t.Helper()
	var c struct {
		Auths map[string]struct{ Auth string }
	}
	mustJSON(t, content, &c)
	b, err := base64.StdEncoding.DecodeString(c.Auths["https://index.docker.io/v1/"].Auth)
	if err != nil {
		t.Fatalf("decoding the docker auth: %v", err)
	}
	return b
}
