package blast

import (
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/decoy"
	"github.com/cordon-sandbox/cordon/internal/gateway"
	"github.com/cordon-sandbox/cordon/internal/policy"
	"github.com/cordon-sandbox/cordon/internal/secrets"
)

// Options are what Compute needs: the effective policy and what it is to
// be compared with.
type Options struct {
	Policy  policy.Policy // the effective policy; Workspace absolute
	Profile string        // its name, for the report ("" for the defaults)
	Home    string        // the user's home directory; "" if none
	Env     []string      // the environment a run would start from (os.Environ())
	Decoys  bool          // masked stores get decoys (false: --no-decoys)
	Host    Host          // from ProbeHost
	// Sockets are the daemons' sockets to look for; nil means
	// DefaultSockets.
	Sockets []Socket
	Now     time.Time // the report's date; zero means now
}

// Bounds of the walk of the workspace for key and .env files.
const (
	maxWalk      = 20000 // entries visited
	maxWalkDepth = 8
	maxFound     = 100 // workspace secrets reported one by one
	pemPeek      = 64 << 10
)

// Compute finds the assets of this host and how far a process gets to
// each, without a sandbox and inside one with o.Policy. It reads file
// metadata, asks access(2), and reads the credential stores the way
// secrets.Discover does to count their values (never reporting one); it
// writes nothing.
func Compute(o Options) (*Report, error) {
	p := o.Policy
	if !filepath.IsAbs(p.Workspace) {
		return nil, fmt.Errorf("computing the blast radius: the policy's workspace %q is not an absolute path", p.Workspace)
	}
	if o.Home != "" && !filepath.IsAbs(o.Home) {
		return nil, fmt.Errorf("computing the blast radius: home %q is not an absolute path", o.Home)
	}
	if o.Sockets == nil {
		o.Sockets = DefaultSockets
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	c := &computer{o: o, p: p, home: strings.TrimRight(o.Home, "/"), env: envMap(o.Env)}
	c.walls = newWalls(p)
	if o.Decoys && c.home != "" {
		// decoy.Generate decides which masks get a decoy; the bytes it
		// makes are thrown away.
		set, _, err := decoy.Generate(c.home, "dev", rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("computing the blast radius: %w", err)
		}
		for _, d := range set {
			c.walls.decoyed[d.Mask] = true
		}
	}
	c.r = &Report{
		Version:   Version,
		Generated: o.Now.UTC().Truncate(time.Second),
		Host:      HostInfo{Name: o.Host.Name, User: o.Host.User, UID: o.Host.UID, OS: o.Host.OS, Home: o.Home},
		Policy:    policyInfo(o),
		Assets:    []Asset{},
		Notes:     []string{},
	}
	c.credentials()
	c.persistence()
	c.network()
	c.sockets()
	c.privileges()
	c.resources()
	for i := range c.r.Assets {
		c.r.Assets[i].ID = i + 1
	}
	c.note("Readable and writable are as access(2) says for uid %d (mode bits, ACLs, read-only mounts); nothing was opened for writing.", o.Host.UID)
	score(c.r)
	return c.r, nil
}

func policyInfo(o Options) PolicyInfo {
	p := o.Policy
	pi := PolicyInfo{
		Profile:       o.Profile,
		Workspace:     p.Workspace,
		Writable:      append([]string{}, p.Writable...),
		Allow:         append([]string{}, p.Network.Allow...),
		Deny:          append([]string{}, p.Network.Deny...),
		Upstream:      p.Network.Upstream,
		LoopbackPorts: []int{},
		Decoys:        o.Decoys,
		Limits: Limits{
			MemoryBytes:    p.Limits.MemoryBytes,
			Pids:           p.Limits.Pids,
			CPUs:           p.Limits.CPUs,
			TimeoutSeconds: p.Limits.Timeout.Seconds(),
		},
	}
	for _, port := range p.ConnectPorts {
		pi.LoopbackPorts = append(pi.LoopbackPorts, int(port))
	}
	return pi
}

type computer struct {
	o     Options
	p     policy.Policy
	home  string
	env   map[string]string
	walls *walls
	r     *Report
}

func (c *computer) add(a Asset) {
	if a.Weight == 0 {
		a.Weight = 1
	}
	c.r.Assets = append(c.r.Assets, a)
}

func (c *computer) note(format string, args ...any) {
	c.r.Notes = append(c.r.Notes, fmt.Sprintf(format, args...))
}

// tilde spells path with "~/" for the home directory.
func (c *computer) tilde(path string) string {
	if c.home != "" && within(path, c.home) {
		if path == c.home {
			return "~"
		}
		return "~" + path[len(c.home):]
	}
	return path
}

// ring says how far path is from the process.
func (c *computer) ring(path string) Ring {
	switch {
	case within(path, c.p.Workspace):
		return RingWorkspace
	case c.home != "" && within(path, c.home):
		return RingHome
	}
	return RingHost
}

func yes(state, detail string) Reach  { return Reach{Level: 1, State: state, Detail: detail} }
func no(state, detail string) Reach   { return Reach{Level: 0, State: state, Detail: detail} }
func some(state, detail string) Reach { return Reach{Level: 0.5, State: state, Detail: detail} }

// --- credentials ---

func (c *computer) credentials() {
	// How many values each store holds: only counted, never kept.
	counts := map[string]int{}
	if c.home != "" {
		vals, _ := secrets.Discover(c.home, nil)
		for _, v := range vals {
			counts[policy.ExpandHome(v.Where, c.home)]++
		}
	}
	for _, m := range c.p.Masks {
		if socketMask(m) || homeHidden(m) {
			continue
		}
		st, err := os.Lstat(m.Path)
		if err != nil {
			continue
		}
		mode := uint32(unix.R_OK)
		if st.IsDir() {
			mode |= unix.X_OK
		}
		a := Asset{Part: "credentials", Kind: "credential-store", Name: m.Why, Path: c.tilde(m.Path), Ring: c.ring(m.Path)}
		if may(m.Path, mode) {
			a.NoSandbox = yes("readable", "readable by you")
		} else {
			a.NoSandbox = no("unreadable", fmt.Sprintf("not readable by uid %d", c.o.Host.UID))
		}
		a.Policy = c.walls.readInside(m.Path, a.NoSandbox)
		n := 0
		for where, k := range counts {
			if within(where, m.Path) {
				n += k
			}
		}
		switch {
		case n == 1:
			a.Note = "1 secret value in it"
		case n > 1:
			a.Note = fmt.Sprintf("%d secret values in it", n)
		}
		c.add(a)
	}
	c.envSecrets()
	c.workspaceSecrets()
}

// socketMask reports whether a mask hides sockets rather than credentials:
// those are counted with the host's sockets.
func socketMask(m policy.Entry) bool {
	return strings.Contains(m.Why, "socket")
}

// homeHidden reports whether m is one of the masks that hide the whole
// home directory (filesystem.home = "hidden", internal/policyfile): they
// count where they hide something, not as credential stores.
func homeHidden(m policy.Entry) bool {
	return strings.HasPrefix(m.Why, "filesystem.home")
}

// envSecrets reports the secret-looking variables of the environment that
// hold a value secrets.Discover would watch for.
func (c *computer) envSecrets() {
	all := c.p
	all.PassEnv = nil
	_, dropped := all.FilterEnv(c.o.Env)
	var kv []string
	for _, d := range dropped {
		name, _, _ := strings.Cut(d, ":")
		kv = append(kv, name+"="+c.env[name])
	}
	vals, _ := secrets.Discover("", kv)
	names := map[string]bool{}
	for _, v := range vals {
		if name, ok := strings.CutPrefix(v.Where, "environment variable "); ok {
			names[name] = true
		}
	}
	kept, _ := c.p.FilterEnv(c.o.Env)
	passed := map[string]bool{}
	for _, kv := range kept {
		name, _, _ := strings.Cut(kv, "=")
		passed[name] = true
	}
	for _, name := range sortedKeys(names) {
		a := Asset{Part: "credentials", Kind: "env-var", Name: "$" + name, Ring: RingHome,
			NoSandbox: yes("readable", "in the environment of what you start")}
		if passed[name] {
			a.Policy = yes("passed in", "the policy passes it in (--env)")
		} else {
			a.Policy = no("dropped", "not passed into the sandbox")
		}
		c.add(a)
	}
}

// workspaceSecrets walks the workspace, bounded, for key and .env files.
func (c *computer) workspaceSecrets() {
	root := c.p.Workspace
	visited, found, more := 0, 0, 0
	stopped := false
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable: what the user cannot list, a process of theirs cannot either
		}
		if visited++; visited > maxWalk {
			stopped = true
			return filepath.SkipAll
		}
		if d.IsDir() {
			if path != root && (skipDirs[d.Name()] || strings.Count(path[len(root):], string(filepath.Separator)) > maxWalkDepth) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		kind := secretKind(d.Name())
		if kind == "" || (strings.HasSuffix(d.Name(), ".pem") && !holdsPrivateKey(path)) {
			return nil
		}
		if found++; found > maxFound {
			more++
			return nil
		}
		a := Asset{Part: "credentials", Kind: "workspace-secret", Name: kind, Path: c.tilde(path), Ring: RingWorkspace}
		if may(path, unix.R_OK) {
			a.NoSandbox = yes("readable", "readable by you")
		} else {
			a.NoSandbox = no("unreadable", fmt.Sprintf("not readable by uid %d", c.o.Host.UID))
		}
		a.Policy = c.walls.readInside(path, a.NoSandbox)
		if a.Policy.InReach() {
			a.Policy.Detail = "in the workspace, which the sandbox reads and writes"
		}
		c.add(a)
		return nil
	})
	if stopped {
		c.note("The walk of the workspace for key and .env files stopped after %d entries; there may be more.", maxWalk)
	}
	if more > 0 {
		c.note("%d more key or .env files in the workspace are not listed.", more)
	}
}

// holdsPrivateKey reports whether a PEM file has a private key in its
// first 64 KiB (a certificate alone is no secret).
func holdsPrivateKey(path string) bool {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return true // unreadable: cannot tell, so count it
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, pemPeek))
	return strings.Contains(string(b), "PRIVATE KEY")
}

// --- places run or trusted later ---

func (c *computer) persistence() {
	c.workspacePlaces()
	if c.home != "" {
		c.homePlaces()
	}
	c.pathDirs()
	c.cron()
}

func (c *computer) workspacePlaces() {
	ws := c.p.Workspace
	a := Asset{Part: "persistence", Kind: "workspace", Name: "the workspace's own files", Path: c.tilde(ws), Ring: RingWorkspace,
		Note: "build files, scripts and sources you run later (Makefile, package.json, tests)"}
	a.NoSandbox = c.writableHost(ws)
	a.Policy = c.walls.writeInside(ws)
	c.add(a)

	var missing []string
	creatable := false
	for _, e := range c.p.Protected {
		if filepath.IsAbs(e.Path) {
			continue // a path of the home: its own place in the report says whether it is writable
		}
		path := filepath.Join(ws, e.Path)
		if _, err := os.Lstat(path); err != nil {
			missing = append(missing, e.Path)
			creatable = creatable || c.creatable(path)
			continue
		}
		a := Asset{Part: "persistence", Kind: "workspace-protected", Name: "file a tool runs or trusts", Path: c.tilde(path), Ring: RingWorkspace, Note: e.Why}
		a.NoSandbox = c.writableHost(path)
		a.Policy = c.walls.writeInside(path)
		c.add(a)
	}
	if len(missing) > 0 {
		a := Asset{Part: "persistence", Kind: "workspace-protected", Ring: RingWorkspace,
			Name: fmt.Sprintf("%d such files, not there yet", len(missing)),
			Path: c.tilde(ws), Note: strings.Join(missing, " ")}
		if creatable {
			a.NoSandbox = yes("creatable", "you can create them")
		} else {
			a.NoSandbox = no("read-only", "you cannot create them")
		}
		a.Policy = no("protected", "held by read-only placeholders: they cannot be created inside")
		c.add(a)
	}
}

func (c *computer) homePlaces() {
	for _, pl := range homePlaces {
		path := policy.ExpandHome(pl.path, c.home)
		paths := []string{path}
		if strings.Contains(pl.path, "*") {
			paths, _ = filepath.Glob(path)
		}
		for _, path := range paths {
			a := Asset{Part: "persistence", Kind: pl.kind, Name: kindNames[pl.kind], Path: c.tilde(path), Ring: c.ring(path), Note: pl.why}
			if _, err := os.Lstat(path); err != nil {
				if !pl.create {
					continue
				}
				if c.creatable(path) {
					a.NoSandbox = yes("creatable", "not there; you can create it")
				} else {
					a.NoSandbox = no("read-only", "not there; you cannot create it")
				}
			} else {
				a.NoSandbox = c.writableHost(path)
			}
			a.Policy = c.walls.writeInside(path)
			c.add(a)
		}
	}
}

// pathDirs reports each directory of $PATH: a program put there runs in
// place of the one you meant.
func (c *computer) pathDirs() {
	seen := map[string]bool{}
	for _, dir := range filepath.SplitList(c.env["PATH"]) {
		if seen[dir] {
			continue
		}
		seen[dir] = true
		if !filepath.IsAbs(dir) {
			a := Asset{Part: "persistence", Kind: "path-dir", Name: fmt.Sprintf("$PATH entry %q: the current directory", dir), Ring: RingWorkspace,
				NoSandbox: yes("writable", "any directory you run commands from"),
				Policy:    yes("writable", "the workspace, where commands run from")}
			c.add(a)
			continue
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		a := Asset{Part: "persistence", Kind: "path-dir", Name: "directory on $PATH", Path: c.tilde(dir), Ring: c.ring(dir),
			Note: "a program put there runs in place of the one you meant"}
		a.NoSandbox = c.writableHost(dir)
		a.Policy = c.walls.writeInside(dir)
		c.add(a)
	}
}

// cron reports crontab(1): it installs jobs that cron runs as you.
func (c *computer) cron() {
	crontab := c.lookPath("crontab")
	if crontab == "" {
		return
	}
	a := Asset{Part: "persistence", Kind: "cron", Name: "cron jobs, installed with crontab", Path: crontab, Ring: RingHost,
		NoSandbox: yes("writable", "crontab installs jobs that cron runs as you"),
		Policy:    no("read-only", "crontab runs without its privileges (no_new_privs) and the spool is read-only")}
	c.add(a)
}

// writableHost says whether this user may write path (for a directory:
// add and remove entries in it).
func (c *computer) writableHost(path string) Reach {
	mode := uint32(unix.W_OK)
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		mode |= unix.X_OK
	}
	if may(path, mode) {
		return yes("writable", "writable by you")
	}
	return no("read-only", fmt.Sprintf("not writable by uid %d", c.o.Host.UID))
}

// creatable reports whether this user could make the missing path: its
// nearest existing ancestor is a directory they may write.
func (c *computer) creatable(path string) bool {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		if st, err := os.Stat(dir); err == nil {
			return st.IsDir() && may(dir, unix.W_OK|unix.X_OK)
		}
		if dir == filepath.Dir(dir) {
			return false
		}
	}
}

// lookPath finds an executable of name on the environment's $PATH.
func (c *computer) lookPath(name string) string {
	for _, dir := range filepath.SplitList(c.env["PATH"]) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// --- network ---

func (c *computer) network() {
	h := c.o.Host
	n := c.p.Network

	a := Asset{Part: "network", Kind: "internet", Name: "the internet", Ring: RingNetwork, Weight: 6}
	proxy := firstSet(c.env, "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")
	switch {
	case h.DefaultRoute:
		a.NoSandbox = yes("any host", "this host has a default route")
	case proxy != "":
		a.NoSandbox = yes("any host", "through the proxy in $"+proxy)
	case !h.RouteKnown:
		a.NoSandbox = yes("any host", "assumed: the routing table could not be read")
	default:
		a.NoSandbox = no("none", "no default route and no proxy")
	}
	a.Policy = internetInside(n)
	c.add(a)

	a = Asset{Part: "network", Kind: "local-network", Name: "the local network and cloud metadata (169.254.169.254)", Ring: RingNetwork, Weight: 3}
	if len(h.Interfaces) > 0 {
		a.NoSandbox = yes("reachable", "interfaces up: "+strings.Join(h.Interfaces, ", "))
	} else {
		a.NoSandbox = no("none", "no interface up but loopback")
	}
	if rules := opensForbidden(n.Allow); len(rules) > 0 {
		a.Policy = yes("reachable", "the policy names "+strings.Join(rules, ", "))
	} else {
		a.Policy = no("refused", "the gateway refuses loopback, private, link-local and metadata addresses unless the policy names them")
	}
	c.add(a)

	a = Asset{Part: "network", Kind: "dns", Name: "DNS (a way out even without a route)", Ring: RingNetwork}
	if len(h.Nameservers) > 0 {
		a.NoSandbox = yes("reachable", "resolvers: "+strings.Join(h.Nameservers, ", "))
	} else {
		a.NoSandbox = no("none", "no resolver in /etc/resolv.conf")
	}
	a.Policy = no("none", "no resolver inside: the gateway resolves names on the host, only once it has allowed them")
	c.add(a)

	a = Asset{Part: "network", Kind: "host-services", Name: "services listening on this host (TCP)", Ring: RingHost, Weight: 2}
	switch {
	case h.ListeningTCP > 0:
		a.NoSandbox = yes("reachable", fmt.Sprintf("%d listening sockets", h.ListeningTCP))
	case h.ListeningTCP < 0:
		a.NoSandbox = yes("reachable", "assumed: the listening sockets could not be counted")
	default:
		a.NoSandbox = no("none", "nothing listens")
	}
	a.Policy = no("none", "the sandbox has its own network namespace: its loopback is not the host's")
	if len(c.p.ConnectPorts) > 0 {
		a.Policy.Detail += " (--allow-loopback-port opens ports of that own loopback only)"
	}
	c.add(a)

	a = Asset{Part: "network", Kind: "raw-sockets", Name: "raw sockets (forged packets, sniffing)", Ring: RingNetwork}
	if slices.Contains(h.Caps, "cap_net_raw") || (h.OS != "linux" && h.UID == 0) {
		a.NoSandbox = yes("allowed", "this process holds CAP_NET_RAW")
	} else {
		a.NoSandbox = no("refused", "no CAP_NET_RAW")
	}
	a.Policy = no("refused", "no capabilities, no interface but loopback")
	c.add(a)
}

// internetInside is how much of the internet the policy lets out.
func internetInside(n policy.Network) Reach {
	if len(n.Allow) == 0 {
		return no("none", "the policy allows no destination: the gateway refuses every connection")
	}
	for _, s := range n.Allow {
		if r, err := gateway.ParseRule(s); err == nil && r.IsAddr() && r.Prefix().Bits() == 0 {
			return yes("any host", "the policy allows every address: "+s)
		}
	}
	d := fmt.Sprintf("only %d named destinations, through the gateway: %s", len(n.Allow), strings.Join(n.Allow, ", "))
	if len(n.Deny) > 0 {
		d += "; denied: " + strings.Join(n.Deny, ", ")
	}
	return some("named hosts", d+" (data can still be sent to them)")
}

// forbiddenSpans are samples of what the gateway's guard refuses: an IP
// or CIDR rule that overlaps one opens it.
var forbiddenSpans = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

// opensForbidden returns the allow rules that name addresses the guard
// would otherwise refuse.
func opensForbidden(allow []string) []string {
	var out []string
	for _, s := range allow {
		r, err := gateway.ParseRule(s)
		if err != nil || !r.IsAddr() {
			continue
		}
		if _, bad := gateway.Forbidden(r.Prefix().Addr(), nil); bad {
			out = append(out, s)
			continue
		}
		for _, f := range forbiddenSpans {
			if r.Prefix().Overlaps(f) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// --- host sockets and processes ---

func (c *computer) sockets() {
	seen := map[string]bool{}
	for _, s := range c.o.Sockets {
		path := s.Path
		if strings.HasPrefix(path, "~/") {
			if c.home == "" {
				continue
			}
			path = policy.ExpandHome(path, c.home)
		}
		real, ok := socketAt(path)
		if !ok || seen[real] {
			continue
		}
		seen[real] = true
		a := Asset{Part: "sockets", Kind: "daemon-socket", Name: s.Name + " socket", Path: c.tilde(path), Ring: c.ring(path), Weight: s.Weight, Note: s.Note}
		a.NoSandbox = connectHost(path)
		a.Policy = c.walls.connectInside(path)
		c.add(a)
	}
	if agent := c.env["SSH_AUTH_SOCK"]; filepath.IsAbs(agent) {
		if real, ok := socketAt(agent); ok && !seen[real] {
			seen[real] = true
			a := Asset{Part: "sockets", Kind: "ssh-agent", Name: "ssh-agent socket", Path: c.tilde(agent), Ring: c.ring(agent), Weight: 2,
				Note: "signs with your SSH keys for whoever connects"}
			a.NoSandbox = connectHost(agent)
			a.Policy = c.walls.connectInside(agent)
			if !a.Policy.InReach() {
				a.Policy.Detail += "; $SSH_AUTH_SOCK is not passed in"
			}
			c.add(a)
		}
	}
	if x, _ := filepath.Glob("/tmp/.X11-unix/X*"); len(x) > 0 {
		a := Asset{Part: "sockets", Kind: "x11", Name: "X11 display", Path: "/tmp/.X11-unix", Ring: RingHost,
			Note: "keystrokes and screenshots of your desktop"}
		n := 0
		for _, p := range x {
			if _, ok := socketAt(p); ok && may(p, unix.W_OK) {
				n++
			}
		}
		if n > 0 {
			a.NoSandbox = yes("connectable", fmt.Sprintf("%d display sockets", n))
		} else {
			a.NoSandbox = no("refused", "no display socket you may connect to")
		}
		a.Policy = c.walls.connectInside("/tmp/.X11-unix/X0")
		c.add(a)
	}
	c.runtimeSockets(seen)

	h := c.o.Host
	if h.AbstractSockets != 0 {
		a := Asset{Part: "sockets", Kind: "abstract-sockets", Name: "abstract unix sockets (no file permissions guard them)", Ring: RingHost}
		if h.AbstractSockets > 0 {
			a.NoSandbox = yes("connectable", fmt.Sprintf("%d listening in this network namespace", h.AbstractSockets))
		} else {
			a.NoSandbox = yes("connectable", "assumed: they could not be counted")
		}
		a.Policy = no("none", "the sandbox has its own network namespace, and Landlock scopes abstract sockets")
		c.add(a)
	}

	a := Asset{Part: "sockets", Kind: "processes", Name: "your other processes (signal, trace, read memory)", Ring: RingHost, Weight: 2}
	who := fmt.Sprintf("of uid %d", h.UID)
	if h.UID == 0 {
		who = "(all: you are root)"
	}
	switch {
	case h.Processes > 0:
		a.NoSandbox = yes("in reach", fmt.Sprintf("%d processes %s can be signalled; %s", h.Processes, who, ptraceRule(h)))
	case h.Processes < 0:
		a.NoSandbox = yes("in reach", "assumed: processes could not be counted")
	default:
		a.NoSandbox = no("none", "no other process "+who)
	}
	a.Policy = no("none", "own PID namespace: it sees and signals no process outside; ptrace and process_vm_* are refused")
	c.add(a)
}

func ptraceRule(h Host) string {
	switch h.PtraceScope {
	case 0:
		return "Yama ptrace_scope 0: any of them can be traced"
	case 1:
		return "Yama ptrace_scope 1: only a process's own descendants can be traced"
	case 2:
		return "Yama ptrace_scope 2: only with CAP_SYS_PTRACE"
	case 3:
		return "Yama ptrace_scope 3: no tracing"
	}
	return "no Yama: any of them can be traced"
}

// runtimeSockets counts the sockets of $XDG_RUNTIME_DIR (or
// /run/user/UID) that this user may connect to.
func (c *computer) runtimeSockets(seen map[string]bool) {
	dir := c.env["XDG_RUNTIME_DIR"]
	if !filepath.IsAbs(dir) {
		dir = fmt.Sprintf("/run/user/%d", c.o.Host.UID)
	}
	n := 0
	var names []string
	visited := 0
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if visited++; visited > 2000 {
			return filepath.SkipAll
		}
		if d.IsDir() {
			if strings.Count(path[len(dir):], "/") >= 3 {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeSocket == 0 || seen[path] || !may(path, unix.W_OK) {
			return nil
		}
		n++
		if len(names) < 6 {
			names = append(names, strings.TrimPrefix(path, dir+"/"))
		}
		return nil
	})
	if n == 0 {
		return
	}
	a := Asset{Part: "sockets", Kind: "session-sockets", Name: "your session's sockets (D-Bus, systemd --user, keyring, audio)", Path: c.tilde(dir), Ring: RingHost, Weight: 2,
		NoSandbox: yes("connectable", fmt.Sprintf("%d sockets: %s", n, strings.Join(names, ", "))),
		Policy:    c.walls.connectInside(filepath.Join(dir, "bus"))}
	if n > len(names) {
		a.NoSandbox.Detail += ", ..."
	}
	c.add(a)
}

// socketAt returns the resolved path of the unix socket at path.
func socketAt(path string) (string, bool) {
	st, err := os.Stat(path)
	if err != nil || st.Mode()&fs.ModeSocket == 0 {
		return "", false
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		return real, true
	}
	return path, true
}

// connectHost: connecting to a unix socket needs write permission on it.
func connectHost(path string) Reach {
	if may(path, unix.W_OK) {
		return yes("connectable", "you may connect to it")
	}
	return no("refused", "you may not connect to it")
}

// --- privileges ---

// adminGroups may use sudo on the usual sudoers files; rootGroups open
// something that is root in all but name.
var (
	adminGroups = []string{"sudo", "wheel", "admin"}
	rootGroups  = []string{"docker", "lxd", "incus-admin", "libvirt", "disk", "kvm"}
)

func (c *computer) privileges() {
	h := c.o.Host
	a := Asset{Part: "privileges", Kind: "capabilities", Name: "capabilities (root's powers, one by one)", Ring: RingHost, Weight: 3}
	if len(h.Caps) > 0 {
		a.NoSandbox = yes("held", fmt.Sprintf("%d effective: %s", len(h.Caps), abbrev(h.Caps, 6)))
	} else {
		a.NoSandbox = no("none", "this process holds none")
	}
	a.Policy = no("none", "bounding set dropped, securebits locked: none, even as uid 0")
	c.add(a)

	a = Asset{Part: "privileges", Kind: "setuid", Name: "setuid and setgid programs on $PATH", Ring: RingHost}
	if found := c.setuidOnPath(); len(found) > 0 {
		a.NoSandbox = yes("usable", fmt.Sprintf("%d: %s", len(found), abbrev(found, 8)))
	} else {
		a.NoSandbox = no("none", "none you may run")
	}
	a.Policy = no("inert", "no_new_privs and nosuid mounts: they run with your privileges only")
	c.add(a)

	a = Asset{Part: "privileges", Kind: "sudo", Name: "sudo", Ring: RingHost, Weight: 2}
	sudo := c.lookPath("sudo")
	switch {
	case sudo == "":
		a.NoSandbox = no("absent", "not on $PATH")
	case h.UID == 0:
		a.NoSandbox = yes("root", "you are root already")
	case intersects(h.Groups, adminGroups):
		a.NoSandbox = yes("usable", "you are in group "+strings.Join(common(h.Groups, adminGroups), ", ")+" (a password may be asked)")
	default:
		a.NoSandbox = some("maybe", "installed; whether sudoers lets you use it was not tested (that would run sudo)")
	}
	a.Path = sudo
	a.Policy = no("inert", "no_new_privs: sudo cannot gain root")
	c.add(a)

	a = Asset{Part: "privileges", Kind: "groups", Name: "groups as good as root (docker, lxd, libvirt, disk, kvm)", Ring: RingHost, Weight: 2}
	if g := common(h.Groups, rootGroups); len(g) > 0 {
		a.NoSandbox = yes("member", "you are in "+strings.Join(g, ", "))
	} else {
		a.NoSandbox = no("none", "you are in none of them")
	}
	a.Policy = no("inert", "the sockets and devices they open are masked or absent inside")
	c.add(a)
}

// setuidOnPath lists the setuid and setgid programs of $PATH this user may
// run.
func (c *computer) setuidOnPath() []string {
	seen := map[string]bool{}
	var out []string
	for _, dir := range filepath.SplitList(c.env["PATH"]) {
		if !filepath.IsAbs(dir) || seen[dir] {
			continue
		}
		seen[dir] = true
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for i, e := range entries {
			if i >= 10000 {
				break
			}
			if !e.Type().IsRegular() || seen[e.Name()] {
				continue
			}
			info, err := e.Info()
			if err != nil || info.Mode()&(fs.ModeSetuid|fs.ModeSetgid) == 0 {
				continue
			}
			if p := filepath.Join(dir, e.Name()); may(p, unix.X_OK) {
				seen[e.Name()] = true
				out = append(out, e.Name())
			}
		}
	}
	sort.Strings(out)
	return out
}

// --- resources ---

func (c *computer) resources() {
	l := c.p.Limits
	for _, r := range []struct {
		kind, name string
		set        bool
		value      string
	}{
		{"memory", "memory", l.MemoryBytes > 0, fmt.Sprintf("%d MiB", l.MemoryBytes>>20)},
		{"pids", "processes and threads", l.Pids > 0, fmt.Sprintf("%d", l.Pids)},
		{"cpu", "CPU", l.CPUs > 0, fmt.Sprintf("%g cores", l.CPUs)},
		{"time", "run time", l.Timeout > 0, l.Timeout.String()},
	} {
		a := Asset{Part: "resources", Kind: r.kind, Name: r.name, Ring: RingHost,
			NoSandbox: yes("unlimited", "no ceiling but your own rlimits")}
		if r.set {
			a.Policy = no("limited", "at most "+r.value)
		} else {
			a.Policy = yes("unlimited", "the policy sets no ceiling")
		}
		c.add(a)
	}
}

// --- helpers ---

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			if _, dup := m[k]; !dup {
				m[k] = v
			}
		}
	}
	return m
}

func firstSet(env map[string]string, names ...string) string {
	for _, n := range names {
		if env[n] != "" {
			return n
		}
	}
	return ""
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func abbrev(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, ", ")
	}
	return strings.Join(list[:n], ", ") + fmt.Sprintf(", and %d more", len(list)-n)
}

func intersects(a, b []string) bool { return len(common(a, b)) > 0 }

func common(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}
