package policyfile

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	toml "github.com/pelletier/go-toml/v2"
)

// Role is what a policy file is for, which decides the keys it may hold
// besides the policy's own sections.
type Role int

const (
	// User is the user policy, $XDG_CONFIG_HOME/cordon/policy.toml: it
	// may define profiles of the user's own, [profile.NAME].
	User Role = iota
	// Workspace is a workspace policy, .cordon.toml at the workspace root.
	Workspace
	// Profile is a profile: a top-level description and, optionally, the
	// profile it extends.
	Profile
)

func (r Role) String() string {
	return [...]string{"user policy", "workspace policy", "profile"}[r]
}

// RoleOf guesses a file's role from its name: .cordon.toml is a workspace
// policy, a .toml file in a directory named profiles is a profile, and
// anything else is a user policy.
func RoleOf(name string) Role {
	switch {
	case filepath.Base(name) == WorkspaceFile:
		return Workspace
	case filepath.Base(filepath.Dir(name)) == "profiles":
		return Profile
	}
	return User
}

// WorkspaceFile is the name of a workspace policy, at the workspace root.
const WorkspaceFile = ".cordon.toml"

// MaxSize is the largest policy file Parse reads.
const MaxSize = 1 << 20

// File is one policy file, parsed and checked.
type File struct {
	Name        string // as given to Parse, for errors and provenance
	Role        Role
	Description string // a profile's
	Extends     string // a profile's: the profile merged before it
	Body
	// Profiles are a user policy's own profiles, by name; each has Role
	// Profile.
	Profiles map[string]*File
}

// Body is what every kind of policy file sets, one field a section. A nil
// pointer, empty string or nil list is a value the file does not set.
type Body struct {
	Filesystem Filesystem
	Network    Network
	Env        Env
	Limits     Limits
	Canary     Canary
	Audit      Audit
}

// Filesystem is [filesystem].
type Filesystem struct {
	Write   []string // absolute or "~/...", cleaned
	Mask    []string // absolute or "~/...", cleaned
	Protect []string // relative to the workspace root
	Home    string   // "", "read" or "hidden"
}

// Network is [network].
type Network struct {
	Allow, Deny   []string
	Offline       *bool
	LoopbackPorts []uint16
	Upstream      *string // "" to go direct
	Inspect       []string
	AllowSecrets  []string
	Secrets       []string // NAME=HOST,HOST, as --secret takes it
}

// Env is [env].
type Env struct {
	Pass, Drop []string
}

// Limits is [limits].
type Limits struct {
	Memory  *int64 // bytes
	Pids    *int64
	CPUs    *float64
	Timeout *time.Duration
}

// Canary is [canary].
type Canary struct {
	Decoys   *bool
	OnCanary string // "", "stop" or "block"
}

// Audit is [audit].
type Audit struct {
	Path *string // "none", or absolute or "~/..."
}

// Parse reads a policy file whose role RoleOf tells from its name.
func Parse(name string, data []byte) (*File, error) {
	return ParseAs(name, data, RoleOf(name))
}

// ParseAs reads a policy file of the given role. It is strict: a syntax
// error, an unknown key, a value of the wrong type, a key set twice, a
// bad value or two values that contradict each other is an error. The
// error is an Errors, each with its FILE:LINE:COL, at most MaxErrors of
// them; a syntax error stops the parse, so it comes alone.
func ParseAs(name string, data []byte, role Role) (*File, error) {
	if len(data) > MaxSize {
		return nil, Errors{{File: name, Line: 1, Col: 1, Msg: fmt.Sprintf("larger than %d bytes: not a policy", MaxSize)}}
	}
	var doc map[string]any
	ps := findPositions(data)
	if err := toml.Unmarshal(data, &doc); err != nil {
		return nil, Errors{syntaxError(name, err, ps)}
	}
	d := &decoder{file: name, pos: ps}
	f := &File{Name: name, Role: role}
	d.top(f, "", doc, role)
	if len(d.errs) > 0 {
		return nil, d.errs.capped()
	}
	return f, nil
}

// syntaxError is the decoder's error at its place. The decoder names a
// key relative to its table; the key's whole path is the one the AST has
// at that place.
func syntaxError(name string, err error, ps positions) *Error {
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		return &Error{File: name, Line: 1, Col: 1, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	}
	line, col := de.Position()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	key := ""
	for _, k := range de.Key() {
		key = child(key, k)
	}
	if path, ok := ps.paths[pos{line, col}]; ok && strings.HasSuffix(path, key) {
		key = path
	}
	if strings.Contains(msg, "already") {
		msg = "set twice: " + msg
	}
	return &Error{File: name, Line: line, Col: col, Key: key, Msg: msg}
}

// decoder turns one file's decoded TOML into a File, collecting errors.
type decoder struct {
	file string
	pos  positions
	errs Errors
}

func (d *decoder) errorf(path string, atKey bool, format string, args ...any) {
	p := d.pos.of(path, atKey)
	d.errs = append(d.errs, &Error{File: d.file, Line: p.line, Col: p.col, Key: path, Msg: fmt.Sprintf(format, args...)})
}

// profileName is ^[a-z0-9][a-z0-9_-]{0,63}$, compiled on first use: the
// expanded repetition costs a millisecond at every start of the binary
// otherwise, and every run starts it three times.
var profileName = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
})

// top decodes a file's top level, or a [profile.NAME] table (prefix
// "profile.NAME").
func (d *decoder) top(f *File, prefix string, doc map[string]any, role Role) {
	bd := &bodyDecoder{decoder: d, prefix: prefix, seen: map[string]map[string]string{}}
	for _, k := range sortedKeys(doc) {
		v := doc[k]
		path := child(prefix, k)
		switch k {
		case "description", "extends":
			if role != Profile {
				d.errorf(path, true, "only a profile has a %s (in the user policy: [profile.NAME] %s = ...)", k, k)
				continue
			}
			s, ok := v.(string)
			if !ok {
				d.errorf(path, false, "want a string, got %s", typeName(v))
				continue
			}
			switch {
			case k == "description":
				f.Description = s
			case !profileName().MatchString(s):
				d.errorf(path, false, "%q is not a profile name (lower-case letters, digits, - and _)", s)
			case prefix == "" && !isBuiltin(s):
				// A profile file stands alone: it extends a built-in
				// profile. (The user policy's profiles are checked
				// against each other in profiles.)
				d.errorf(path, false, "no built-in profile %q (built in: %s)", s, strings.Join(builtinNames(), ", "))
			default:
				f.Extends = s
			}
		case "profile":
			if role != User {
				d.errorf(path, true, "profiles are defined in the user policy only (%s)", "~/.config/cordon/policy.toml")
				continue
			}
			d.profiles(f, path, v)
		default:
			if !isSection(k) {
				d.errorf(path, true, "unknown key%s; a %s holds %s", suggest(k, topKeys(role)), role, strings.Join(quoteAll(topKeys(role)), ", "))
				continue
			}
			tbl, ok := v.(map[string]any)
			if !ok {
				d.errorf(path, false, "want a table ([%s]), got %s", k, typeName(v))
				continue
			}
			bd.section(&f.Body, k, tbl)
		}
	}
	bd.contradictions()
}

func (d *decoder) profiles(f *File, path string, v any) {
	tbl, ok := v.(map[string]any)
	if !ok {
		d.errorf(path, false, "want a table of profiles ([profile.NAME]), got %s", typeName(v))
		return
	}
	f.Profiles = map[string]*File{}
	for _, name := range sortedKeys(tbl) {
		ppath := child(path, name)
		body, ok := tbl[name].(map[string]any)
		switch {
		case !ok:
			d.errorf(ppath, false, "want a table ([%s]), got %s", ppath, typeName(tbl[name]))
			continue
		case !profileName().MatchString(name):
			d.errorf(ppath, true, "%q is not a profile name (lower-case letters, digits, - and _)", name)
			continue
		case isBuiltin(name):
			d.errorf(ppath, true, "%q is a built-in profile; give yours another name (it can say extends = %q)", name, name)
			continue
		}
		p := &File{Name: f.Name + " [" + ppath + "]", Role: Profile}
		d.top(p, ppath, body, Profile)
		f.Profiles[name] = p
	}
	// extends inside one user policy: to a built-in or to another of its
	// profiles, without a cycle.
	for _, name := range sortedKeys(tbl) {
		p := f.Profiles[name]
		if p == nil || p.Extends == "" {
			continue
		}
		epath := child(child(path, name), "extends")
		seen := map[string]bool{name: true}
		chain := []string{name}
		for cur := p.Extends; cur != ""; {
			if seen[cur] {
				d.errorf(epath, false, "%s: a cycle", strings.Join(append(chain, cur), " extends "))
				break
			}
			seen[cur] = true
			chain = append(chain, cur)
			if isBuiltin(cur) {
				break
			}
			next, ok := f.Profiles[cur]
			if !ok {
				if _, bad := tbl[cur]; !bad {
					d.errorf(epath, false, "no profile %q (built in: %s; in this file: %s)", cur, strings.Join(builtinNames(), ", "), strings.Join(sortedKeys(tbl), ", "))
				}
				break
			}
			cur = next.Extends
		}
	}
}

func isSection(k string) bool {
	for _, s := range sections {
		if s == k {
			return true
		}
	}
	return false
}

func topKeys(role Role) []string {
	keys := append([]string(nil), sections...)
	switch role {
	case Profile:
		keys = append([]string{"description", "extends"}, keys...)
	case User:
		keys = append(keys, "profile")
	}
	return keys
}

// bodyDecoder decodes the sections of one file or profile, and remembers
// each list's elements to find contradictions between keys.
type bodyDecoder struct {
	*decoder
	prefix string
	// seen[key][canonical] is the path of the element that named it.
	seen map[string]map[string]string
}

func (d *bodyDecoder) section(b *Body, name string, tbl map[string]any) {
	spath := child(d.prefix, name)
	for _, k := range sortedKeys(tbl) {
		path := child(spath, k)
		f, ok := fieldOf(name + "." + k)
		if !ok {
			d.errorf(path, true, "unknown key%s; [%s] holds %s", suggest(k, keysOf(name)), name, strings.Join(keysOf(name), ", "))
			continue
		}
		if v, ok := d.convert(path, f.typ, tbl[k]); ok {
			f.set(d, b, path, v)
		}
	}
}

// convert checks a value's type and converts it; each element of a list
// is checked, and one of the wrong type is an error of its own.
func (d *bodyDecoder) convert(path string, t typ, v any) (value, bool) {
	wrong := func() (value, bool) {
		d.errorf(path, false, "want %s, got %s", t, typeName(v))
		return value{}, false
	}
	switch t {
	case tString:
		s, ok := v.(string)
		if !ok {
			return wrong()
		}
		return value{s: s}, true
	case tBool:
		b, ok := v.(bool)
		if !ok {
			return wrong()
		}
		return value{b: b}, true
	case tInteger:
		n, ok := v.(int64)
		if !ok {
			return wrong()
		}
		return value{n: n}, true
	case tNumber:
		switch n := v.(type) {
		case int64:
			return value{f: float64(n)}, true
		case float64:
			return value{f: n}, true
		}
		return wrong()
	case tStrings, tIntegers:
		arr, ok := v.([]any)
		if !ok {
			return wrong()
		}
		var out value
		good := true
		for i, e := range arr {
			epath := index(path, i)
			switch x := e.(type) {
			case string:
				if t == tStrings {
					out.list = append(out.list, elem{path: epath, s: x})
					continue
				}
			case int64:
				if t == tIntegers {
					out.list = append(out.list, elem{path: epath, n: x})
					continue
				}
			}
			good = false
			d.errorf(epath, false, "want %s, got %s", map[typ]string{tStrings: "a string", tIntegers: "an integer"}[t], typeName(e))
		}
		return out, good
	case tHosts:
		tbl, ok := v.(map[string]any)
		if !ok {
			return wrong()
		}
		var out value
		good := true
		for _, name := range sortedKeys(tbl) {
			npath := child(path, name)
			hv, ok := d.convert(npath, tStrings, tbl[name])
			if !ok {
				good = false
				continue
			}
			out.table = append(out.table, hostsEntry{path: npath, name: name, hosts: hv.list})
		}
		return out, good
	}
	return wrong()
}

// list checks each element with canon, which returns its canonical form
// (two spellings of one host are one rule), and keeps the elements as
// written. An element listed twice is an error: it is a slip, and a
// strict file has none. key names the list for contradictions; "" keeps
// no record.
func (d *bodyDecoder) list(v value, key string, canon func(string) (string, error)) []string {
	return d.checked(v, key, canon, false)
}

// paths is list for filesystem paths: absolute or "~/...", kept cleaned.
func (d *bodyDecoder) paths(v value, key string, check func(string) error) []string {
	return d.checked(v, key, func(s string) (string, error) {
		c, err := checkPath(s)
		if err == nil {
			err = check(c)
		}
		if err != nil {
			return "", fmt.Errorf("%q: %w", s, err)
		}
		return c, nil
	}, true)
}

func (d *bodyDecoder) checked(v value, key string, canon func(string) (string, error), keepCanon bool) []string {
	var out []string
	seen := map[string]string{}
	for _, e := range v.list {
		c, err := canon(e.s)
		if err != nil {
			d.errorf(e.path, false, "%v", err)
			continue
		}
		if first, dup := seen[c]; dup {
			d.errorf(e.path, false, "%q listed twice (also %s)", e.s, first)
			continue
		}
		seen[c] = e.path
		if keepCanon {
			out = append(out, c)
		} else {
			out = append(out, e.s)
		}
	}
	if key != "" {
		d.seen[key] = seen
	}
	return out
}

// note records a key that is not a list of its own, for contradictions.
func (d *bodyDecoder) note(key, canon, path string) {
	if d.seen[key] == nil {
		d.seen[key] = map[string]string{}
	}
	d.seen[key][canon] = path
}

func (d *bodyDecoder) enum(path, s string, allowed ...string) bool {
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	d.errorf(path, false, "%q: want %s", s, strings.Join(quoteAll(allowed), " or "))
	return false
}

// contradictions finds values of one file that cannot all hold.
func (d *bodyDecoder) contradictions() {
	both := func(a, b, why string) {
		for c, bp := range d.seen[b] {
			if ap, ok := d.seen[a][c]; ok {
				d.errorf(bp, false, "also in %s: %s", ap, why)
			}
		}
	}
	both("allow", "deny", "a host cannot be allowed and denied in one file")
	both("pass", "drop", "a variable cannot be passed in and dropped in one file")
	both("pass", "secrets", "the sandbox gets either the variable's value (env.pass) or a placeholder (network.secrets), not both")
	for w, wp := range d.seen["write"] {
		for m, mp := range d.seen["mask"] {
			if within(w, m) {
				d.errorf(wp, false, "inside %s %q: a masked path stays masked, so this could not be written; remove one", mp, m)
			}
		}
	}
}

// within reports whether path is dir or below it (both clean).
func within(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64:
		return "an integer"
	case float64:
		return "a decimal number"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time, toml.LocalDate, toml.LocalTime, toml.LocalDateTime:
		return "a date or time"
	}
	return fmt.Sprintf("%T", v)
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// suggest says which known key a misspelt one is likely to be.
func suggest(k string, known []string) string {
	best, dist := "", 3
	for _, c := range known {
		if n := editDistance(strings.ToLower(k), c); n < dist {
			best, dist = c, n
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
