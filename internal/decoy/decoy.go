package decoy

import (
	"encoding/binary"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/cordon-sandbox/cordon/internal/policy"
)

// Decoy fills one masked path of the default table.
type Decoy struct {
	Mask  string // the masked path, "~/" expanded, exactly as policy.Masks has it after policy.ExpandHome(m.Path, home)
	Dir   bool   // the mask is a directory; Files are relative to it
	Files []File // for a file mask: exactly one, with Rel ""
}

// File is one decoy file.
type File struct {
	Rel     string // relative path inside the mask ("" for a file mask); may contain one subdirectory level
	Mode    uint32 // permission bits, as the real tool writes them (0600 for keys)
	Content []byte
}

// Canary is one token planted in the decoys: if it shows up in what leaves
// the sandbox, a decoy was read and sent.
type Canary struct {
	Token string // the bytes to look for: at least 16 characters, random per run, ASCII
	Kind  string // "aws-access-key-id", "aws-secret-access-key", "github-token", "npm-token", "ssh-private-key", ...
	Where string // the decoy file it is in, e.g. "~/.aws/credentials"
}

// Generate makes the decoys for the masks of the default table that have a
// known format, with canaries drawn from rand (crypto/rand.Reader in
// production; tests pass a seeded reader). home is the user's home (for
// Mask paths). user is the user name (for plausible contents such as an ssh
// key comment user@host); a name that would not fit in the formats as it is
// (empty, or with spaces, quotes or the like) is replaced by "dev".
//
// Decoys come in the order of policy.Masks. The same home, user and bytes
// from rand give the same decoys and canaries, except for the 8 check bytes
// inside the SSH private key, which the ssh package draws itself.
func Generate(home, user string, rand io.Reader) ([]Decoy, []Canary, error) {
	if !strings.HasPrefix(home, "/") {
		return nil, nil, fmt.Errorf("making decoys: home %q is not absolute", home)
	}
	if !plainName(user) {
		user = "dev"
	}
	g := &gen{r: rand}
	var decoys []Decoy
	var canaries []Canary
	for _, m := range policy.Masks {
		fill, ok := formats[m.Path]
		if !ok {
			continue
		}
		files, cs := fill(g, user)
		if g.err != nil {
			return nil, nil, fmt.Errorf("making the decoy of %s: %w", m.Path, g.err)
		}
		decoys = append(decoys, Decoy{Mask: policy.ExpandHome(m.Path, home), Dir: m.Kind == policy.Dir, Files: files})
		for _, c := range cs {
			c.Where = path.Join(m.Path, c.Where) // the maker names the file by Rel
			canaries = append(canaries, c)
		}
	}
	// The gateway tells which decoy leaked by its token, and a repeat means
	// the reader is not random: refuse rather than plant guessable canaries.
	seen := map[string]bool{}
	for _, c := range canaries {
		if seen[c.Token] {
			// The token stays out of the message: errors get printed.
			return nil, nil, fmt.Errorf("making decoys: the %s canary of %s repeats another: the random source is not random", c.Kind, c.Where)
		}
		seen[c.Token] = true
	}
	return decoys, canaries, nil
}

// plainName reports whether a user name can go into every format as it is.
func plainName(s string) bool {
	if s == "" || len(s) > 32 || s[0] == '-' || s[0] == '.' {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// gen draws the random parts of one run's decoys. The first read error
// sticks: later draws give zeros, and Generate reports the error.
type gen struct {
	r   io.Reader
	err error
}

func (g *gen) fail(err error) {
	if g.err == nil {
		g.err = err
	}
}

func (g *gen) bytes(n int) []byte {
	b := make([]byte, n)
	if g.err == nil {
		if _, err := io.ReadFull(g.r, b); err != nil {
			g.fail(fmt.Errorf("reading randomness: %w", err))
		}
	}
	return b
}

// chars draws n characters of alphabet. Each one takes 8 bytes modulo the
// alphabet's size: a bias below 2^-57 for alphabets of up to 128
// characters, and no rejection loop for a broken reader to spin in.
func (g *gen) chars(alphabet string, n int) string {
	b := g.bytes(8 * n)
	s := make([]byte, n)
	for i := range s {
		s[i] = alphabet[binary.BigEndian.Uint64(b[8*i:])%uint64(len(alphabet))]
	}
	return string(s)
}
