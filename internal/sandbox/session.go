package sandbox

import (
	"net"

	"github.com/cordon-sandbox/cordon/internal/policy"
)

// SessionOptions is one session to start (cordon serve): a box that stays
// up, with its own root, and runs the execs it is sent.
type SessionOptions struct {
	// Base is "host" or the absolute path of a root filesystem directory.
	Base string
	// UID and GID are the host's ids that the session's root (uid and gid
	// 0 of its user namespace, the only ids mapped) stands for. A root
	// server gives an unprivileged pair, so that a session owns none of
	// the host's root-owned files; a server run as a user gives its own.
	// Negative: the server's own ids.
	UID, GID int
	// DiskBytes sizes the tmpfs holding everything the session writes.
	DiskBytes int64
	// Hide are the host's top-level directories a "host" base shows empty.
	Hide []string
	// Masks hide paths of the session's root, as in `cordon run`.
	Masks    []policy.Entry
	Limits   policy.Limits
	Degraded map[policy.Wall]bool
	Hostname string
	// ConnectPorts are more TCP ports the session may connect to on its
	// own loopback (its own servers); the Listen ports always.
	ConnectPorts []uint16
	// Listen and Serve are as in Options: the gateway's sockets.
	Listen []uint16
	Serve  func(port uint16, l net.Listener)
	// Background starts the session with the least CPU weight its cgroup
	// can have, until SetLimits: one started ahead of need yields to those
	// in use.
	Background bool
	// Log receives notes, Warn what must be said; never nil.
	Log, Warn func(format string, args ...any)
}

// SessionExec is one process to start in a session.
type SessionExec struct {
	Argv []string
	Env  []string
	Cwd  string // default /workspace
	TTY  bool
	Rows uint16
	Cols uint16
}
