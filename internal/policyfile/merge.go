package policyfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cordon-sandbox/cordon/internal/gateway"
	"github.com/cordon-sandbox/cordon/internal/policy"
)

// Layer is one policy file in the stack Merge reads, with the name its
// values are shown with.
type Layer struct {
	// Source names the layer: "user ~/.config/cordon/policy.toml",
	// "workspace /ws/.cordon.toml", "profile dev".
	Source string
	File   *File
	// Flags marks the flags of `cordon run`: each value's source is then
	// its flag, "flag --allow-domain".
	Flags bool
}

// UserLayer is the layer of the user policy f.
func UserLayer(f *File, home string) Layer {
	return Layer{Source: "user " + Tilde(f.Name, home), File: f}
}

// WorkspaceLayer is the layer of a trusted workspace policy f.
func WorkspaceLayer(f *File) Layer { return Layer{Source: "workspace " + f.Name, File: f} }

// FlagLayer is the layer of the flags of `cordon run`, as a Body.
func FlagLayer(b Body) Layer {
	return Layer{Source: "flags", File: &File{Name: "flags", Body: b}, Flags: true}
}

// Host is what Merge needs of the machine.
type Host struct {
	Workspace  string // absolute, symbolic links resolved
	Home       string // "~/" in paths; "" if there is none
	RuntimeDir string // $XDG_RUNTIME_DIR, masked; "" if unset
	// Own are more built-in masks: Cordon's own configuration and state
	// where this machine keeps them (the user policy is not for the
	// sandbox to read).
	Own []policy.Entry
	// Resolve turns a writable path, "~/" expanded, into the directory
	// the sandbox mounts (symbolic links resolved); flag says it came
	// from a flag. nil: paths are taken as they are.
	Resolve func(path string, flag bool) (string, error)
	// ReadDir lists a directory, for home = "hidden"; nil: os.ReadDir.
	ReadDir func(dir string) ([]fs.DirEntry, error)
	// Stat tells a masked file from a masked directory; nil: os.Stat.
	Stat func(path string) (fs.FileInfo, error)
}

// Effective is the policy of one run, merged from its layers, with the
// layer each value came from.
type Effective struct {
	Policy     policy.Policy
	Decoys     bool
	OnCanary   string // "stop" or "block"
	Audit      string // "" for the default place, "none", or a path
	HomeHidden bool
	Offline    bool
	Layers     []string // the layers' sources, lowest first, "built-in" first
	// Values are every value of every layer, in the order of the keys,
	// each with its source; one that does not hold says why in Note and
	// is Void.
	Values []Value
}

// Value is one value of the effective policy and where it came from.
type Value struct {
	Key   string `json:"key"`   // "network.allow", "network.secrets.GITHUB_TOKEN"
	Value any    `json:"value"` // string, int64, float64 or bool, as a file would say it
	From  string `json:"from"`  // "built-in", "user ~/.config/cordon/policy.toml", "flag --allow-domain"
	Note  string `json:"note,omitempty"`
	Void  bool   `json:"void,omitempty"` // overridden: listed, but not in effect
}

// Void returns the values that do not hold, with why.
func (e *Effective) Void() []Value {
	var out []Value
	for _, v := range e.Values {
		if v.Void {
			out = append(out, v)
		}
	}
	return out
}

// item is a value being merged.
type item struct {
	Value
	canon string // what makes two values one: an expanded path, a canonical rule
	path  string // a path, "~/" expanded
	entry policy.Entry
	flag  bool
	n     int64 // limits.memory in bytes
}

type merger struct {
	h       Host
	lists   map[string][]*item
	scalars map[string]*item
	// overridden are scalars a higher layer set in vain: offline and
	// home = "hidden" hold once set.
	overridden []*item
}

func (m *merger) add(key, canon string, it *item) {
	for _, o := range m.lists[key] {
		if o.canon == canon {
			return // lists merge: the first spelling stays
		}
	}
	it.Key, it.canon = key, canon
	m.lists[key] = append(m.lists[key], it)
}

func (m *merger) set(key string, v any, from string) {
	m.scalars[key] = &item{Value: Value{Key: key, Value: v, From: from}}
}

func (m *merger) scalar(key string) (*item, bool) {
	it, ok := m.scalars[key]
	return it, ok
}

// Merge stacks the layers on the built-in defaults, lowest first, into
// one policy. Lists are merged: every layer's values, the first spelling
// of each kept. A scalar takes the value of the highest layer that sets
// one. What denies wins over what allows, whichever layer each is in: a
// host in network.deny stays denied, a path in filesystem.mask stays
// masked (a writable path at or below it is void), a variable in env.drop
// stays out, and network.offline and filesystem.home = "hidden" hold once
// any layer sets them.
func Merge(h Host, layers ...Layer) (*Effective, error) {
	m := &merger{h: h, lists: map[string][]*item{}, scalars: map[string]*item{}}
	base := policy.Default(h.Workspace, h.Home, h.RuntimeDir)
own:
	for _, e := range h.Own {
		for _, b := range base.Masks {
			if b.Path == e.Path {
				continue own
			}
		}
		base.Masks = append(base.Masks, e)
	}
	for _, e := range base.Masks {
		m.add("filesystem.mask", e.Path, &item{Value: Value{Value: Tilde(e.Path, h.Home), From: "built-in", Note: e.Why}, path: e.Path, entry: e})
	}
	for _, e := range base.Protected {
		m.add("filesystem.protect", e.Path, &item{Value: Value{Value: e.Path, From: "built-in", Note: e.Why}, entry: e})
	}
	m.set("filesystem.home", "read", "built-in")
	m.set("network.offline", false, "built-in")
	m.set("limits.pids", int64(base.Limits.Pids), "built-in")
	m.set("canary.decoys", true, "built-in")
	m.set("canary.on_canary", "stop", "built-in")
	eff := &Effective{Layers: []string{"built-in"}}
	for _, l := range layers {
		if l.File == nil {
			continue
		}
		eff.Layers = append(eff.Layers, l.Source)
		if err := m.layer(l); err != nil {
			return nil, err
		}
	}
	if err := m.finish(eff, base); err != nil {
		return nil, err
	}
	return eff, nil
}

func (m *merger) layer(l Layer) error {
	b := &l.File.Body
	from := func(key string) string {
		if f, _ := fieldOf(key); l.Flags && f.flag != "" {
			return "flag " + f.flag
		}
		return l.Source
	}
	// bad is an error in a value that only a flag can carry: a file's
	// values were checked when it was parsed.
	bad := func(key, s string, err error) error {
		if l.Flags {
			f, _ := fieldOf(key)
			return fmt.Errorf("%s %s: %w", f.flag, s, err)
		}
		return fmt.Errorf("%s: %s %q: %w", l.Source, key, s, err)
	}
	paths := func(key string, list []string) error {
		for _, p := range list {
			abs := filepath.Clean(policy.ExpandHome(p, m.h.Home))
			if !filepath.IsAbs(abs) {
				return bad(key, p, fmt.Errorf("not an absolute path"))
			}
			m.add(key, abs, &item{Value: Value{Value: p, From: from(key)}, path: abs, flag: l.Flags})
		}
		return nil
	}
	rules := func(key string, list []string, canon func(string) (string, error)) error {
		for _, s := range list {
			c, err := canon(s)
			if err != nil {
				return bad(key, s, err)
			}
			m.add(key, c, &item{Value: Value{Value: s, From: from(key)}, flag: l.Flags})
		}
		return nil
	}

	if err := paths("filesystem.write", b.Filesystem.Write); err != nil {
		return err
	}
	if err := paths("filesystem.mask", b.Filesystem.Mask); err != nil {
		return err
	}
	for _, p := range b.Filesystem.Protect {
		m.add("filesystem.protect", p, &item{Value: Value{Value: p, From: from("filesystem.protect")}})
	}
	if h := b.Filesystem.Home; h != "" {
		if cur, _ := m.scalar("filesystem.home"); cur.Value.Value == "hidden" && h != "hidden" {
			m.overridden = append(m.overridden, &item{Value: Value{Key: "filesystem.home", Value: h, From: from("filesystem.home"),
				Note: fmt.Sprintf("home = \"hidden\" (%s) holds once set", cur.From), Void: true}})
		} else {
			m.set("filesystem.home", h, from("filesystem.home"))
		}
	}

	if err := rules("network.allow", b.Network.Allow, ruleKey); err != nil {
		return err
	}
	if err := rules("network.deny", b.Network.Deny, ruleKey); err != nil {
		return err
	}
	if o := b.Network.Offline; o != nil {
		if cur, _ := m.scalar("network.offline"); cur.Value.Value == true && !*o {
			m.overridden = append(m.overridden, &item{Value: Value{Key: "network.offline", Value: false, From: from("network.offline"),
				Note: fmt.Sprintf("offline = true (%s) holds once set", cur.From), Void: true}})
		} else {
			m.set("network.offline", *o, from("network.offline"))
		}
	}
	for _, p := range b.Network.LoopbackPorts {
		if p == 0 {
			return bad("network.loopback_ports", "0", fmt.Errorf("not a TCP port (1-65535)"))
		}
		m.add("network.loopback_ports", strconv.Itoa(int(p)), &item{Value: Value{Value: int64(p), From: from("network.loopback_ports")}})
	}
	if u := b.Network.Upstream; u != nil {
		if *u != "" {
			if _, err := gateway.ParseUpstream(*u); err != nil {
				return bad("network.upstream", *u, err)
			}
		}
		m.set("network.upstream", *u, from("network.upstream"))
	}
	if err := rules("network.inspect", b.Network.Inspect, func(s string) (string, error) {
		ir, err := gateway.ParseInspect(s)
		return ir.Text, err
	}); err != nil {
		return err
	}
	if err := rules("network.allow_secrets", b.Network.AllowSecrets, func(s string) (string, error) { return s, nil }); err != nil {
		return err
	}
	for _, s := range b.Network.Secrets {
		name, hosts, ok := strings.Cut(s, "=")
		if !ok || !validEnvName(name) || hosts == "" {
			return bad("network.secrets", s, fmt.Errorf("want NAME=HOST[,HOST...], e.g. GITHUB_TOKEN=api.github.com"))
		}
		for _, h := range strings.Split(hosts, ",") {
			h = strings.TrimSpace(h)
			c, err := secretHostKey(h)
			if err != nil {
				return bad("network.secrets", s, err)
			}
			m.add("network.secrets", name+"="+c, &item{Value: Value{Value: h, From: from("network.secrets")}, canon: name})
		}
	}

	for _, n := range b.Env.Pass {
		m.add("env.pass", n, &item{Value: Value{Value: n, From: from("env.pass")}, flag: l.Flags})
	}
	for _, n := range b.Env.Drop {
		m.add("env.drop", n, &item{Value: Value{Value: n, From: from("env.drop")}})
	}

	if v := b.Limits.Memory; v != nil {
		m.set("limits.memory", policy.FormatSize(*v), from("limits.memory"))
		m.scalars["limits.memory"].n = *v
	}
	if v := b.Limits.Pids; v != nil {
		m.set("limits.pids", *v, from("limits.pids"))
	}
	if v := b.Limits.CPUs; v != nil {
		m.set("limits.cpus", *v, from("limits.cpus"))
	}
	if v := b.Limits.Timeout; v != nil {
		m.set("limits.timeout", formatDuration(*v), from("limits.timeout"))
	}
	if v := b.Canary.Decoys; v != nil {
		m.set("canary.decoys", *v, from("canary.decoys"))
	}
	if v := b.Canary.OnCanary; v != "" {
		m.set("canary.on_canary", v, from("canary.on_canary"))
	}
	if v := b.Audit.Path; v != nil {
		m.set("audit.path", *v, from("audit.path"))
	}
	return nil
}

// finish applies what denies over what allows, and fills in the policy.
func (m *merger) finish(eff *Effective, p policy.Policy) error {
	void := func(it *item, format string, args ...any) {
		if !it.Void {
			it.Void, it.Note = true, fmt.Sprintf(format, args...)
		}
	}
	stat := m.h.Stat
	if stat == nil {
		stat = os.Stat
	}

	// A mask over the workspace: the sandbox would not mask it, or the
	// workspace would be hidden too; say so rather than seem to hide it.
	var masks []*item
	for _, mk := range m.lists["filesystem.mask"] {
		if mk.From != "built-in" && within(p.Workspace, mk.path) {
			void(mk, "covers the workspace %s, which a run must see", p.Workspace)
			continue
		}
		masks = append(masks, mk)
	}
	// Writable paths, resolved; one at or below a mask stays masked.
	resolved := map[string]*item{}
	masked := func(w *item, dir string) {
		for _, mk := range masks {
			if within(dir, mk.path) {
				void(w, "masked by filesystem.mask %q (%s): a masked path stays masked", mk.Value.Value, mk.From)
			}
		}
	}
	for _, w := range m.lists["filesystem.write"] {
		// A masked path is not made or resolved: it is void as written.
		if masked(w, w.path); w.Void {
			continue
		}
		writeErr := func(err error) error {
			if w.flag {
				return fmt.Errorf("--write %s: %w", w.Value.Value, err)
			}
			return fmt.Errorf("filesystem.write %q (%s): %w", w.Value.Value, w.From, err)
		}
		dir := w.path
		if m.h.Resolve != nil {
			r, err := m.h.Resolve(w.path, w.flag)
			if err != nil {
				return writeErr(err)
			}
			dir = r
		}
		if dir == "/" {
			return writeErr(errors.New("that would make the whole host writable"))
		}
		w.path = dir
		if masked(w, dir); w.Void {
			continue
		}
		if o, dup := resolved[dir]; dup {
			void(w, "the same directory as %q (%s)", o.Value.Value, o.From)
			continue
		}
		resolved[dir] = w
		p.Writable = append(p.Writable, dir)
	}
	for _, mk := range masks {
		if mk.From == "built-in" {
			continue // in p.Masks already, with its kind
		}
		if mk.Void {
			continue
		}
		kind := policy.Dir
		if st, err := stat(mk.path); err == nil && !st.IsDir() {
			kind = policy.File
		}
		p.Masks = append(p.Masks, policy.Entry{Path: mk.path, Kind: kind, Why: "filesystem.mask (" + mk.From + ")"})
	}
	for _, pr := range m.lists["filesystem.protect"] {
		if pr.From == "built-in" {
			continue
		}
		where := pr.canon
		if rest, ok := strings.CutPrefix(where, "~/"); ok {
			// Absolute: the sandbox holds it read-only where it
			// lies in a writable directory.
			if !filepath.IsAbs(m.h.Home) {
				void(pr, "no home directory to find it in")
				continue
			}
			where = filepath.Join(m.h.Home, rest)
		}
		p.Protected = append(p.Protected, policy.Entry{Path: where, Kind: policy.Dir, Why: "filesystem.protect (" + pr.From + ")"})
	}

	// Network: offline voids every way out; a deny voids the allows it
	// covers (the gateway would refuse them anyway).
	offline, _ := m.scalar("network.offline")
	eff.Offline = offline.Value.Value == true
	for _, d := range m.lists["network.deny"] {
		p.Network.Deny = append(p.Network.Deny, d.Value.Value.(string))
	}
	for _, a := range m.lists["network.allow"] {
		if eff.Offline {
			void(a, "network.offline (%s): nothing leaves", offline.From)
		} else if d := deniedBy(a, m.lists["network.deny"]); d != nil {
			void(a, "denied by network.deny %q (%s)", d.Value.Value, d.From)
		} else {
			p.Network.Allow = append(p.Network.Allow, a.Value.Value.(string))
		}
	}
	for _, key := range []string{"network.inspect", "network.secrets"} {
		for _, it := range m.lists[key] {
			if eff.Offline {
				void(it, "network.offline (%s): nothing leaves", offline.From)
			}
		}
	}
	if up, ok := m.scalar("network.upstream"); ok {
		if eff.Offline {
			void(up, "network.offline (%s): nothing leaves", offline.From)
		} else {
			p.Network.Upstream = up.Value.Value.(string)
		}
	}
	for _, it := range m.lists["network.inspect"] {
		if !it.Void {
			p.Network.Inspect = append(p.Network.Inspect, it.Value.Value.(string))
		}
	}
	for _, it := range m.lists["network.allow_secrets"] {
		p.Network.AllowSecrets = append(p.Network.AllowSecrets, it.Value.Value.(string))
	}
	secretNames := map[string]*item{}
	var names []string
	hosts := map[string][]string{}
	for _, it := range m.lists["network.secrets"] {
		name, _, _ := strings.Cut(it.canon, "=")
		if _, ok := secretNames[name]; !ok {
			secretNames[name] = it
			names = append(names, name)
		}
		if !it.Void {
			hosts[name] = append(hosts[name], it.Value.Value.(string))
		}
	}
	for _, name := range names {
		if len(hosts[name]) > 0 {
			p.Network.Secrets = append(p.Network.Secrets, name+"="+strings.Join(hosts[name], ","))
		}
	}
	for _, it := range m.lists["network.loopback_ports"] {
		p.ConnectPorts = append(p.ConnectPorts, uint16(it.Value.Value.(int64)))
	}

	// Environment: a drop wins over a pass; an injected secret's variable
	// holds its placeholder, not its value.
	drops := map[string]*item{}
	for _, d := range m.lists["env.drop"] {
		drops[d.canon] = d
		p.DropEnv = append(p.DropEnv, d.canon)
	}
	for _, ps := range m.lists["env.pass"] {
		if d, ok := drops[ps.canon]; ok {
			void(ps, "dropped by env.drop (%s)", d.From)
		} else if s, ok := secretNames[ps.canon]; ok && hosts[ps.canon] != nil {
			void(ps, "injected by network.secrets (%s): the sandbox holds a placeholder", s.From)
		} else {
			p.PassEnv = append(p.PassEnv, ps.canon)
		}
	}

	// Scalars.
	if it, ok := m.scalar("limits.memory"); ok {
		p.Limits.MemoryBytes = it.n
	}
	if it, ok := m.scalar("limits.pids"); ok {
		p.Limits.Pids = it.Value.Value.(int64)
	}
	if it, ok := m.scalar("limits.cpus"); ok {
		p.Limits.CPUs = it.Value.Value.(float64)
	}
	if it, ok := m.scalar("limits.timeout"); ok {
		p.Limits.Timeout, _ = time.ParseDuration(it.Value.Value.(string))
	}
	decoys, _ := m.scalar("canary.decoys")
	eff.Decoys = decoys.Value.Value.(bool)
	onCanary, _ := m.scalar("canary.on_canary")
	eff.OnCanary = onCanary.Value.Value.(string)
	if it, ok := m.scalar("audit.path"); ok {
		eff.Audit = it.Value.Value.(string)
		if eff.Audit != "none" {
			eff.Audit = policy.ExpandHome(eff.Audit, m.h.Home)
		}
	}

	// home = "hidden": every entry of the home but the way down to the
	// workspace and the writable paths is masked.
	home, _ := m.scalar("filesystem.home")
	if home.Value.Value == "hidden" {
		eff.HomeHidden = true
		keep := append([]string{p.Workspace}, p.Writable...)
		hidden, err := hideHome(m.h, keep, p.Masks, "filesystem.home = hidden ("+home.From+")")
		if err != nil {
			return err
		}
		p.Masks = append(p.Masks, hidden...)
		for _, e := range hidden {
			m.lists["filesystem.mask"] = append(m.lists["filesystem.mask"], &item{Value: Value{Key: "filesystem.mask",
				Value: Tilde(e.Path, m.h.Home), From: home.From, Note: `filesystem.home = "hidden"`}, canon: e.Path, path: e.Path})
		}
	}

	eff.Policy = p
	eff.Values = m.values()
	return nil
}

// deniedBy returns the deny that covers allow a wholly: the same rule, or
// for one name or address, a deny rule that matches it on every port the
// allow opens.
func deniedBy(a *item, denies []*item) *item {
	r, err := gateway.ParseRule(a.Value.Value.(string))
	if err != nil {
		return nil
	}
	for _, d := range denies {
		if d.canon == a.canon {
			return d
		}
		dr, err := gateway.ParseRule(d.Value.Value.(string))
		if err != nil || dr.Port != 0 && dr.Port != r.Port {
			continue
		}
		switch {
		case r.IsAddr() && r.Prefix().IsSingleIP():
			if dr.MatchAddr(r.Prefix().Addr(), r.Port) {
				return d
			}
		case !r.IsAddr() && !strings.HasPrefix(r.Name(), "*."):
			if dr.MatchName(r.Name(), r.Port) {
				return d
			}
		}
	}
	return nil
}

// values lists every value in the order of the keys.
func (m *merger) values() []Value {
	var out []Value
	for _, f := range fields {
		k := f.key()
		if it, ok := m.scalars[k]; ok {
			out = append(out, it.Value)
		}
		for _, it := range m.lists[k] {
			v := it.Value
			if k == "network.secrets" {
				name, _, _ := strings.Cut(it.canon, "=")
				v.Key = k + "." + name
			}
			out = append(out, v)
		}
		for _, it := range m.overridden {
			if it.Key == k {
				out = append(out, it.Value)
			}
		}
	}
	return out
}

// Tilde writes path with the home as "~".
func Tilde(path, home string) string {
	if home == "" || home == "/" {
		return path
	}
	home = strings.TrimRight(home, "/")
	if path == home {
		return "~"
	}
	if rest, ok := strings.CutPrefix(path, home+"/"); ok {
		return "~/" + rest
	}
	return path
}

// formatDuration writes d as time.ParseDuration reads it, without the
// zero units of Duration.String: 1h, 1h30m, 90s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
