package policyfile

import (
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/cordon-sandbox/cordon/internal/gateway"
	"github.com/cordon-sandbox/cordon/internal/policy"
	"github.com/cordon-sandbox/cordon/internal/secrets"
)

// typ is the TOML type a key takes.
type typ int

const (
	tString   typ = iota
	tBool         // true or false
	tInteger      // a whole number
	tNumber       // a whole or decimal number
	tStrings      // an array of strings
	tIntegers     // an array of whole numbers
	tHosts        // a table of NAME = array of strings (network.secrets)
)

func (t typ) String() string {
	return [...]string{"a string", "true or false", "an integer", "a number", "a list of strings", "a list of integers", "a table of NAME = [\"host\", ...]"}[t]
}

// field is one key of a section: its type, the flag of `cordon run` that
// does the same, and how a value is checked and kept. The table below is
// the one list of keys: the parser, `cordon policy show`, and the test
// that holds docs/policy.schema.json to it all read it.
type field struct {
	section, name string
	typ           typ
	flag          string // "--allow-domain"; "" if no flag does it
	unset         string // what no value means
	set           func(d *bodyDecoder, b *Body, path string, v value)
}

func (f field) key() string { return f.section + "." + f.name }

// value is a key's value, converted to its field's type.
type value struct {
	s     string
	b     bool
	n     int64
	f     float64
	list  []elem
	table []hostsEntry
}

// elem is one element of an array, with its path for errors.
type elem struct {
	path string
	s    string
	n    int64
}

// hostsEntry is one NAME = [...] of network.secrets.
type hostsEntry struct {
	path, name string
	hosts      []elem
}

// sections lists the tables of a policy, in the order they are shown.
var sections = []string{"filesystem", "network", "env", "limits", "canary", "audit"}

var fields = []field{
	{section: "filesystem", name: "write", typ: tStrings, flag: "--write", unset: "only the workspace, /tmp and /dev/shm",
		set: func(d *bodyDecoder, b *Body, _ string, v value) {
			b.Filesystem.Write = d.paths(v, "write", func(p string) error {
				if p == "/" {
					return errors.New("that would make the whole host writable")
				}
				return nil
			})
		}},
	{section: "filesystem", name: "mask", typ: tStrings, flag: "--mask", unset: "the built-in table only",
		set: func(d *bodyDecoder, b *Body, _ string, v value) {
			b.Filesystem.Mask = d.paths(v, "mask", func(p string) error {
				if p == "/" || p == "~" {
					return errors.New("that would hide everything; mask what holds secrets")
				}
				return nil
			})
		}},
	{section: "filesystem", name: "protect", typ: tStrings,
		set: func(d *bodyDecoder, b *Body, _ string, v value) {
			b.Filesystem.Protect = d.checked(v, "protect", func(s string) (string, error) {
				if rest, ok := strings.CutPrefix(s, "~/"); ok {
					// A path of the home, read-only inside a
					// writable directory (an agent's settings in
					// its state directory).
					c := path.Clean(rest)
					if strings.ContainsRune(rest, 0) || c == "." || c == ".." || strings.HasPrefix(c, "../") {
						return "", errors.New("not a path below the home directory")
					}
					return "~/" + c, nil
				}
				c := path.Clean(s)
				switch {
				case s == "" || strings.ContainsRune(s, 0):
					return "", errors.New("not a path")
				case strings.HasPrefix(s, "/") || strings.HasPrefix(s, "~"):
					return "", errors.New("a protected path is relative to the workspace root, like \".github/workflows\", or to the home, like \"~/.codex/config.toml\"")
				case c == "." || c == ".." || strings.HasPrefix(c, "../"):
					return "", errors.New("not inside the workspace")
				}
				return c, nil
			}, true)
		}},
	{section: "filesystem", name: "home", typ: tString, unset: `"read"`,
		set: func(d *bodyDecoder, b *Body, path string, v value) {
			if d.enum(path, v.s, "read", "hidden") {
				b.Filesystem.Home = v.s
			}
		}},

	{section: "network", name: "allow", typ: tStrings, flag: "--allow-domain", unset: "nothing",
		set: func(d *bodyDecoder, b *Body, _ string, v value) {
			b.Network.Allow = d.list(v, "allow", ruleKey)
		}},
	{section: "network", name: "deny", typ: tStrings, flag: "--deny-domain", unset: "nothing",
		set: func(d *bodyDecoder, b *Body, _ string, v value) {
			b.Network.Deny = d.list(v, "deny", ruleKey)
		}},
	{section: "network", name: "offline", typ: tBool, unset: "false",
		set: func(d *bodyDecoder, b *Body, _ string, v value) {
			b.Network.Offline = &v.b
		}},
	{section: "network", name: "loopback_ports", typ: tIntegers, flag: "--allow-loopback-port", unset: "none",
		set: func(d *bodyDecoder, b *Body, _ string, v value) {
			seen := map[int64]string{}
			for _, e := range v.list {
				switch {
				case e.n < 1 || e.n > 65535:
					d.errorf(e.path, false, "%d is not a TCP port (1-65535)", e.n)
				case seen[e.n] != "":
					d.errorf(e.path, false, "%d listed twice (also %s)", e.n, seen[e.n])
				default:
					seen[e.n] = e.path
					b.Network.LoopbackPorts = append(b.Network.LoopbackPorts, uint16(e.n))
				}
			}
		}},
	{section: "network", name: "upstream", typ: tString, flag: "--upstream-proxy", unset: "direct",
		set: func(d *bodyDecoder, b *Body, path string, v value) {
			if v.s != "" {
				if _, err := gateway.ParseUpstream(v.s); err != nil {
					d.errorf(path, false, "%v", err)
					return
				}
			}
			b.Network.Upstream = &v.s
		}},
	{section: "network", name: "inspect", typ: tStrings, flag: "--inspect", unset: "nothing",
		set: func(d *bodyDecoder, b *Body, _ string, v value) {
			b.Network.Inspect = d.list(v, "inspect", func(s string) (string, error) {
				ir, err := gateway.ParseInspect(s)
				return ir.Text, err
			})
		}},
	{section: "network", name: "allow_secrets", typ: tStrings, flag: "--allow-secret", unset: "nothing",
		set: func(d *bodyDecoder, b *Body, _ string, v value) {
			b.Network.AllowSecrets = d.list(v, "allow_secrets", func(s string) (string, error) {
				a, err := secrets.ParseAllow(s)
				if a.Host != "" {
					return a.Rule + "@" + a.Host, err
				}
				return a.Rule, err
			})
		}},
	{section: "network", name: "secrets", typ: tHosts, flag: "--secret", unset: "none",
		set: func(d *bodyDecoder, b *Body, _ string, v value) {
			for _, t := range v.table {
				if !validEnvName(t.name) {
					d.errorf(t.path, true, "%q is not an environment variable name", t.name)
					continue
				}
				if len(t.hosts) == 0 {
					d.errorf(t.path, false, "no host: name the hosts $%s is sent to", t.name)
					continue
				}
				hosts := d.list(value{list: t.hosts}, "", secretHostKey)
				if len(hosts) == len(t.hosts) {
					b.Network.Secrets = append(b.Network.Secrets, t.name+"="+strings.Join(hosts, ","))
					d.note("secrets", t.name, t.path)
				}
			}
		}},

	{section: "env", name: "pass", typ: tStrings, flag: "--env", unset: "none: secret-looking variables stay out",
		set: func(d *bodyDecoder, b *Body, _ string, v value) {
			b.Env.Pass = d.list(v, "pass", envKey)
		}},
	{section: "env", name: "drop", typ: tStrings, unset: "only the secret-looking ones",
		set: func(d *bodyDecoder, b *Body, _ string, v value) {
			b.Env.Drop = d.list(v, "drop", envKey)
		}},

	{section: "limits", name: "memory", typ: tString, flag: "--memory", unset: "no limit",
		set: func(d *bodyDecoder, b *Body, path string, v value) {
			n, err := policy.ParseSize(v.s)
			if err != nil {
				d.errorf(path, false, "%q: %v", v.s, err)
				return
			}
			b.Limits.Memory = &n
		}},
	{section: "limits", name: "pids", typ: tInteger, flag: "--pids", unset: strconv.Itoa(policy.DefaultPids),
		set: func(d *bodyDecoder, b *Body, path string, v value) {
			if v.n < 0 || v.n > 0 && v.n < policy.MinPids || v.n > maxPids {
				d.errorf(path, false, "%d: must be 0 (none) or from %d to %d (the limit counts every process and thread of the sandbox, its init's included)", v.n, policy.MinPids, maxPids)
				return
			}
			b.Limits.Pids = &v.n
		}},
	{section: "limits", name: "cpus", typ: tNumber, flag: "--cpus", unset: "no limit",
		set: func(d *bodyDecoder, b *Body, path string, v value) {
			if math.IsNaN(v.f) || v.f < 0 || v.f > maxCPUs {
				d.errorf(path, false, "%g: must be 0 (none) to %d cores", v.f, maxCPUs)
				return
			}
			b.Limits.CPUs = &v.f
		}},
	{section: "limits", name: "timeout", typ: tString, flag: "--timeout", unset: "none",
		set: func(d *bodyDecoder, b *Body, path string, v value) {
			t, err := time.ParseDuration(v.s)
			if err != nil || t < 0 {
				d.errorf(path, false, "%q is not a duration (like \"90s\", \"30m\" or \"2h\"; \"0s\" for none)", v.s)
				return
			}
			b.Limits.Timeout = &t
		}},

	{section: "canary", name: "decoys", typ: tBool, flag: "--no-decoys", unset: "true",
		set: func(d *bodyDecoder, b *Body, _ string, v value) {
			b.Canary.Decoys = &v.b
		}},
	{section: "canary", name: "on_canary", typ: tString, flag: "--on-canary", unset: `"stop"`,
		set: func(d *bodyDecoder, b *Body, path string, v value) {
			if d.enum(path, v.s, "stop", "block") {
				b.Canary.OnCanary = v.s
			}
		}},

	{section: "audit", name: "path", typ: tString, flag: "--audit", unset: "a new file in ~/.local/state/cordon/audit",
		set: func(d *bodyDecoder, b *Body, path string, v value) {
			if v.s != "none" {
				if _, err := checkPath(v.s); err != nil {
					d.errorf(path, false, "%q: %v, or \"none\" for no log", v.s, err)
					return
				}
				v.s = cleanPath(v.s)
			}
			b.Audit.Path = &v.s
		}},
}

// maxPids is the kernel's own ceiling (PID_MAX_LIMIT).
const maxPids = 1 << 22

// maxCPUs is more cores than any machine has.
const maxCPUs = 4096

// Key describes one key of a policy file, for listings and docs.
type Key struct {
	Section, Name string
	Type          string // "a list of strings", ...
	List          bool   // an array, or a table of arrays
	Flag          string // the flag of cordon run that does the same, if any
	Unset         string // what it is when no layer sets it
}

// Keys lists every key of a policy's sections, in the order of the
// sections and of docs/policy.md.
func Keys() []Key {
	out := make([]Key, len(fields))
	for i, f := range fields {
		out[i] = Key{Section: f.section, Name: f.name, Type: f.typ.String(), List: f.typ >= tStrings, Flag: f.flag, Unset: f.unset}
	}
	return out
}

// fieldOf returns the field of a key such as "network.allow".
func fieldOf(key string) (field, bool) {
	for _, f := range fields {
		if f.key() == key {
			return f, true
		}
	}
	return field{}, false
}

// keysOf lists the keys of a section.
func keysOf(section string) []string {
	var out []string
	for _, f := range fields {
		if f.section == section {
			out = append(out, f.name)
		}
	}
	return out
}

// checkPath accepts an absolute path or one under the home, "~/...".
func checkPath(s string) (string, error) {
	switch {
	case s == "" || strings.ContainsRune(s, 0):
		return "", errors.New("not a path")
	case s == "~" || strings.HasPrefix(s, "~/"), strings.HasPrefix(s, "/"):
		return cleanPath(s), nil
	case strings.HasPrefix(s, "~"):
		return "", errors.New("only the user's own home can be named with ~ (\"~/...\")")
	}
	return "", errors.New("must be absolute or start with ~/")
}

// cleanPath cleans an absolute or "~/" path, keeping the "~".
func cleanPath(s string) string {
	if rest, ok := strings.CutPrefix(s, "~/"); ok {
		if c := path.Clean("/" + rest); c != "/" {
			return "~" + c
		}
		return "~"
	}
	return path.Clean(s)
}

// ruleKey is a host rule's canonical form: two spellings of one rule
// ("Example.COM", "example.com.") are the same rule.
func ruleKey(s string) (string, error) {
	r, err := gateway.ParseRule(s)
	if err != nil {
		return "", ruleError(s, err)
	}
	return canonOf(r), nil
}

func canonOf(r gateway.Rule) string {
	k := r.Name()
	if r.IsAddr() {
		k = r.Prefix().String()
	}
	if r.Port != 0 {
		k += ":" + strconv.Itoa(int(r.Port))
	}
	return k
}

// ruleError drops the "invalid rule" the gateway wraps its reason in
// when the reason names the value already: the key path says it is a
// rule.
func ruleError(s string, err error) error {
	if inner := errors.Unwrap(err); inner != nil && strings.Contains(inner.Error(), strconv.Quote(s)) {
		return inner
	}
	return err
}

// secretHostKey is ruleKey for the host of an injected secret: one host
// or address, not a range.
func secretHostKey(s string) (string, error) {
	r, err := gateway.ParseRule(s)
	if err != nil {
		return "", ruleError(s, err)
	}
	if r.IsAddr() && r.Prefix().Bits() != r.Prefix().Addr().BitLen() {
		return "", fmt.Errorf("%s is a range; name hosts or single addresses", s)
	}
	return ruleKey(s)
}

func envKey(s string) (string, error) {
	if !validEnvName(s) {
		return "", fmt.Errorf("%q is not an environment variable name", s)
	}
	return s, nil
}

func validEnvName(s string) bool {
	for i, c := range s {
		if !(c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return s != ""
}
