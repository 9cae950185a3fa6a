package secrets

import (
	"errors"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/cordon-sandbox/cordon/internal/canary"
	"github.com/cordon-sandbox/cordon/internal/policy"
)

// Value is a credential value found on this host.
type Value struct {
	Value string // the secret bytes as they would travel
	Where string // "~/.aws/credentials" (home-relative, as policy.Masks spells it), "/etc/ssh/ssh_host_ed25519_key", or "environment variable AWS_SECRET_ACCESS_KEY"
	What  string // "aws_secret_access_key", "private key", "password", "token", ...
}

// MinLen is the shortest value Discover reports: shorter ones match
// ordinary data by chance, and the canary scanner refuses them.
const MinLen = canary.MinTokenLen

// Bounds of what Discover reads.
const (
	maxFileSize = 1 << 20
	maxFiles    = 200
	maxDepth    = 2 // directory levels below a store that is a directory
)

// Discover returns the secret values of the credential stores of
// policy.Masks under home that have a known format (see stores.go), and
// of env: NAME=VALUE entries of the environment that the caller keeps out
// of the sandbox as secret-looking (the variables that policy.FilterEnv
// drops, with their values; an entry without '=' is ignored). An
// environment value is reported whole, and a URL's password
// (postgres://u:p@db) on its own too; variables that name a file, a
// socket, a region or a profile are not secrets and are not reported.
//
// Values are reported once, at the first place they were found, in the
// order of policy.Masks and then env. skipped counts what Discover saw
// but could not use: values shorter than MinLen, and files it could not
// read or parse (unreadable, over 1 MiB, past the 200th file, malformed).
// A store that does not exist is not counted, nor one that is not a
// regular file (a FIFO, a device), nor a host key of /etc/ssh that only
// root may read.
func Discover(home string, env []string) (vals []Value, skipped int) {
	r := &reader{home: strings.TrimRight(home, "/"), seen: map[string]bool{}}
	for _, m := range policy.Masks {
		read, ok := stores[m.Path]
		if !ok {
			continue
		}
		if strings.HasPrefix(m.Path, "~/") && (r.home == "" || !filepath.IsAbs(r.home)) {
			continue
		}
		read(r, m.Path)
	}
	r.env(env)
	return r.vals, r.skipped
}

// reader holds what one Discover has found and read.
type reader struct {
	home    string
	files   int // opened so far
	skipped int
	vals    []Value
	seen    map[string]bool
}

// add reports v, found at where (as policy.Masks spells it), unless it was
// found before. Surrounding white space is not part of a value.
func (r *reader) add(v, where, what string) {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
	case len(v) < MinLen:
		r.skipped++
	case !r.seen[v]:
		r.seen[v] = true
		r.vals = append(r.vals, Value{Value: v, Where: where, What: what})
	}
}

// local turns a path as policy.Masks spells it into one on this host.
func (r *reader) local(p string) string {
	return filepath.FromSlash(policy.ExpandHome(p, r.home))
}

// read returns the content of the regular file p (spelt as policy.Masks
// spells it), or false if there is none or it cannot be read: a file that
// is not there, or is not a regular file, says nothing; the others count
// as skipped.
func (r *reader) read(p string) ([]byte, bool) {
	if r.files >= maxFiles {
		if _, err := os.Stat(r.local(p)); err == nil {
			r.skipped++
		}
		return nil, false
	}
	// O_NONBLOCK: a FIFO planted where a store should be must not hang
	// Discover in open. It changes nothing for regular files.
	f, err := os.OpenFile(r.local(p), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		// The host-wide stores (/etc/ssh) are for root only: that a user
		// cannot read them is no news.
		hostWide := !strings.HasPrefix(p, "~/")
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) && !(hostWide && errors.Is(err, fs.ErrPermission)) {
			r.skipped++
		}
		return nil, false
	}
	defer f.Close()
	r.files++
	st, err := f.Stat()
	if err != nil {
		r.skipped++
		return nil, false
	}
	if !st.Mode().IsRegular() {
		return nil, false // a socket or device is no store
	}
	if st.Size() > maxFileSize {
		r.skipped++
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil || len(b) > maxFileSize {
		r.skipped++
		return nil, false
	}
	return b, true
}

// walk calls fn with every regular file (or link to one) under dir, spelt
// as policy.Masks spells dir, to depth levels below it, in lexical order.
func (r *reader) walk(dir string, depth int, fn func(p string)) {
	entries, err := os.ReadDir(r.local(dir))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			r.skipped++
		}
		return
	}
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		switch t := e.Type(); {
		case t.IsDir():
			if depth > 0 {
				r.walk(p, depth-1, fn)
			}
		case t.IsRegular(), t&fs.ModeSymlink != 0:
			fn(p)
		}
	}
}

// notSecretEnv names variables that policy.FilterEnv drops for what they
// point at (an agent socket, a file) or that share a secret-looking prefix
// (AWS_*) without being secret: their values are paths, regions and
// profile names, which turn up in ordinary traffic.
var notSecretEnv = map[string]bool{
	"SSH_AUTH_SOCK":                  true,
	"SSH_AGENT_PID":                  true,
	"GPG_AGENT_INFO":                 true,
	"DBUS_SESSION_BUS_ADDRESS":       true,
	"KRB5CCNAME":                     true,
	"GOOGLE_APPLICATION_CREDENTIALS": true,
	"AWS_REGION":                     true,
	"AWS_DEFAULT_REGION":             true,
	"AWS_PROFILE":                    true,
	"AWS_DEFAULT_PROFILE":            true,
	"AWS_DEFAULT_OUTPUT":             true,
	"AWS_PAGER":                      true,
	"AWS_SDK_LOAD_CONFIG":            true,
	"AWS_VAULT":                      true, // aws-vault's profile name
	"AWS_ENDPOINT_URL":               true,
	"AZURE_DEFAULTS_GROUP":           true,
	"AZURE_DEFAULTS_LOCATION":        true,
	"VAULT_ADDR":                     true,
	"VAULT_NAMESPACE":                true,
	"VAULT_FORMAT":                   true,
}

// notSecretSuffixes end the names of variables that hold a path.
var notSecretSuffixes = []string{"_FILE", "_PATH", "_DIR", "_SOCK", "_CONFIG_FILE", "_CA_BUNDLE"}

func (r *reader) env(env []string) {
	names := make([]string, 0, len(env))
	values := map[string]string{}
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		if _, dup := values[name]; !dup {
			names = append(names, name)
		}
		values[name] = value
	}
	sort.Strings(names)
	for _, name := range names {
		value := values[name]
		where := "environment variable " + name
		if u, err := url.Parse(value); err == nil && u.User != nil {
			if p, ok := u.User.Password(); ok && p != "" {
				r.add(p, where, "password in URL")
			}
		}
		if notSecretEnvName(name) {
			continue
		}
		r.add(value, where, strings.ToLower(name))
	}
}

func notSecretEnvName(name string) bool {
	upper := strings.ToUpper(name)
	if notSecretEnv[upper] {
		return true
	}
	for _, s := range notSecretSuffixes {
		if strings.HasSuffix(upper, s) {
			return true
		}
	}
	return false
}
