package blast

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/user"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Host is what Compute learns of this machine beyond the files it looks at.
// ProbeHost fills it from the running system; tests make one by hand.
// A count of -1 is unknown, and Compute then assumes the worse.
type Host struct {
	Name   string
	User   string
	UID    int
	OS     string
	Groups []string // names of this process's groups
	// Caps are this process's effective capabilities ("cap_net_raw").
	Caps []string
	// DefaultRoute: the routing table has a default route (IPv4 or
	// IPv6); RouteKnown is false where it could not be read.
	DefaultRoute, RouteKnown bool
	Interfaces               []string // up, not loopback
	Nameservers              []string // of /etc/resolv.conf
	ListeningTCP             int      // TCP sockets listening in this network namespace
	AbstractSockets          int      // abstract unix sockets listening in this network namespace
	Processes                int      // other processes this one may signal: its uid's, or all for root
	PtraceScope              int      // kernel.yama.ptrace_scope; -1: no Yama (or unknown)
}

// ProbeHost reads this machine: the routing table, resolvers, listening
// sockets, processes and capabilities (from /proc on Linux; elsewhere what
// the standard library can tell, and the rest unknown). It never fails:
// what cannot be read is left unknown.
func ProbeHost() Host {
	h := Host{
		UID:             os.Getuid(),
		OS:              runtime.GOOS,
		ListeningTCP:    -1,
		AbstractSockets: -1,
		Processes:       -1,
		PtraceScope:     -1,
	}
	h.Name, _ = os.Hostname()
	if u, err := user.Current(); err == nil {
		h.User = u.Username
	}
	if gids, err := os.Getgroups(); err == nil {
		gids = append(gids, os.Getgid())
		seen := map[string]bool{}
		for _, gid := range gids {
			name := strconv.Itoa(gid)
			if g, err := user.LookupGroupId(name); err == nil {
				name = g.Name
			}
			if !seen[name] {
				seen[name] = true
				h.Groups = append(h.Groups, name)
			}
		}
	}
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			if i.Flags&net.FlagUp != 0 && i.Flags&net.FlagLoopback == 0 {
				h.Interfaces = append(h.Interfaces, i.Name)
			}
		}
	}
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		h.Nameservers = nameservers(b)
	}
	probeOS(&h)
	return h
}

// nameservers returns the nameserver lines of a resolv.conf.
func nameservers(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out
}

// may reports whether this process's real uid and gids may do mode
// (unix.R_OK, W_OK, X_OK, or'd) to path, as access(2) decides: mode bits,
// ACLs, read-only mounts. Nothing is opened or written.
func may(path string, mode uint32) bool {
	return unix.Access(path, mode) == nil
}
