package policy

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Wall names a wall that a user may weaken by name with --allow-degraded.
type Wall string

const (
	WallLandlock Wall = "landlock"
	WallSeccomp  Wall = "seccomp"
	WallCgroup   Wall = "cgroup"
)

// Walls lists the walls that can be degraded, for help texts and errors.
var Walls = []Wall{WallLandlock, WallSeccomp, WallCgroup}

// ParseWall checks a --allow-degraded value.
func ParseWall(s string) (Wall, error) {
	for _, w := range Walls {
		if string(w) == s {
			return w, nil
		}
	}
	names := make([]string, len(Walls))
	for i, w := range Walls {
		names[i] = string(w)
	}
	return "", fmt.Errorf("unknown wall %q (one of %s)", s, strings.Join(names, ", "))
}

// Limits are the resource ceilings of one sandbox. Zero means none.
type Limits struct {
	MemoryBytes int64
	Pids        int64
	CPUs        float64
	Timeout     time.Duration
}

// DefaultPids keeps a fork bomb inside from taking the host down.
const DefaultPids = 4096

// Policy is everything `cordon run` enforces, after flags are applied.
type Policy struct {
	Workspace string   // absolute, symlinks resolved
	Writable  []string // extra writable paths, absolute
	Masks     []Entry  // the default table plus user masks, "~/" expanded
	Protected []Entry  // relative to the workspace; or absolute: held read-only where it exists inside a writable path
	Pinned    []string // relative to the workspace
	PassEnv   []string // secret-looking names the user let through
	DropEnv   []string // names kept out though they do not look secret; wins over PassEnv
	Limits    Limits
	Degraded  map[Wall]bool
	// ConnectPorts are loopback TCP ports the sandbox may connect to inside
	// its own network namespace; none by default.
	ConnectPorts []uint16
	Hostname     string
	Network      Network
}

// Network is the egress policy: the only way out of the sandbox is the
// gateway, and it lets out what these rules allow. Rules are kept as the
// user wrote them; the gateway parses and canonicalises them.
type Network struct {
	Allow    []string // --allow-domain: names, *.suffixes, IPs, CIDRs, with optional :port
	Deny     []string // --deny-domain: wins over Allow
	Upstream string   // --upstream-proxy: http:// or socks5:// URL, "" to go direct
	// Inspect are destinations whose TLS the gateway inspects, each
	// optionally with the HTTP methods and path prefixes it lets through:
	// "registry.example.org GET,HEAD /pkg/".
	Inspect []string
	// Secrets are injected secrets, "NAME=host1,host2": the sandbox holds
	// a placeholder in $NAME, and the gateway swaps the value (from
	// cordon's environment) in only on HTTPS requests to those hosts.
	Secrets []string
	// AllowSecrets lets a token format through where it is a false
	// positive: "RULE" or "RULE@HOST".
	AllowSecrets []string
}

// Default returns the built-in policy for a workspace, the user's home
// directory and $XDG_RUNTIME_DIR (the user's sockets; "" when unset).
func Default(workspace, home, runtimeDir string) Policy {
	p := Policy{
		Workspace: workspace,
		Protected: append([]Entry(nil), Protected...),
		Pinned:    append([]string(nil), Pinned...),
		Limits:    Limits{Pids: DefaultPids},
		Degraded:  map[Wall]bool{},
		Hostname:  "cordon",
	}
	for _, m := range Masks {
		m.Path = ExpandHome(m.Path, home)
		p.Masks = append(p.Masks, m)
	}
	if strings.HasPrefix(runtimeDir, "/") {
		p.Masks = append(p.Masks, Entry{Path: runtimeDir, Kind: Dir, Why: "the user's sockets ($XDG_RUNTIME_DIR)"})
	}
	return p
}

// ExpandHome replaces a leading "~/" with home.
func ExpandHome(path, home string) string {
	if path == "~" {
		return home
	}
	if strings.HasPrefix(path, "~/") {
		return strings.TrimRight(home, "/") + path[1:]
	}
	return path
}

// DropReason is the reason FilterEnv gives for a variable dropped only
// because DropEnv names it: its value is no secret of the host's.
const DropReason = "dropped by the policy (env.drop)"

// FilterEnv splits environ into what enters the sandbox and what is
// dropped, with a reason for each dropped name (sorted).
func (p Policy) FilterEnv(environ []string) (kept []string, dropped []string) {
	pass, drop := map[string]bool{}, map[string]bool{}
	for _, n := range p.PassEnv {
		pass[n] = true
	}
	for _, n := range p.DropEnv {
		drop[n] = true
	}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !pass[name] {
			if secret, why := SecretEnv(name, value); secret {
				dropped = append(dropped, name+": "+why)
				continue
			}
		}
		if drop[name] {
			dropped = append(dropped, name+": "+DropReason)
			continue
		}
		kept = append(kept, kv)
	}
	sort.Strings(dropped)
	return kept, dropped
}
