package sandbox

// Plan is what the supervisor hands to init: everything init needs to build
// the sandbox, decided on the host side. It travels as JSON over fd 3.
type Plan struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Cwd  string   `json:"cwd"`

	Workspace string   `json:"workspace"`
	Writable  []string `json:"writable,omitempty"`
	// Masks are hidden behind an empty read-only directory or file.
	Masks []Mask `json:"masks,omitempty"`
	// Shadows keep missing masked paths missing: see Shadow.
	Shadows []Shadow `json:"shadows,omitempty"`
	// Pin are bound onto themselves so they cannot be renamed or removed.
	Pin []string `json:"pin,omitempty"`
	// Protect are bound read-only onto themselves; all exist by now (the
	// supervisor made placeholders for the missing ones).
	Protect  []string `json:"protect,omitempty"`
	Hostname string   `json:"hostname"`

	TTY     bool    `json:"tty,omitempty"`
	WinSize *Window `json:"winsize,omitempty"`

	Landlock     Enforce  `json:"landlock"`
	Seccomp      Enforce  `json:"seccomp"`
	ConnectPorts []uint16 `json:"connect_ports,omitempty"`
	// Listen are TCP ports init listens on at the sandbox's own
	// 127.0.0.1; each listening socket goes to the supervisor.
	Listen  []uint16 `json:"listen,omitempty"`
	Rlimits []Rlimit `json:"rlimits,omitempty"`

	// Session, when set, makes init a session's (StartSession): it builds
	// a root of its own instead of the host's view, and stays up to start
	// each exec it is sent. Argv is then empty.
	Session *SessionPlan `json:"session,omitempty"`
}

// SessionPlan is the root a session's init builds: see sessionRoot.
type SessionPlan struct {
	// Base is "host", or the absolute path of a root filesystem directory
	// (the read-only lower layer of the session's overlay root).
	Base string `json:"base"`
	// DiskBytes sizes the tmpfs that holds everything the session writes.
	DiskBytes int64 `json:"disk_bytes"`
	// Hide are the host's top-level directories that a "host" base shows
	// empty (and writable, in the session's own tmpfs).
	Hide []string `json:"hide,omitempty"`
}

// Enforce says how hard a wall is raised.
type Enforce string

const (
	Required   Enforce = "required"    // fail the run if it cannot be raised
	BestEffort Enforce = "best-effort" // the user allowed a degraded wall by name
)

// Mask is one masked path: empty, or holding decoys.
type Mask struct {
	Path string `json:"path"`
	File bool   `json:"file,omitempty"`
	// Decoy are the files the mask shows instead of nothing: one with
	// Rel "" for a file mask. They live only in a tmpfs of the sandbox.
	Decoy []DecoyFile `json:"decoy,omitempty"`
}

// DecoyFile is one file of a decoy.
type DecoyFile struct {
	Rel     string `json:"rel,omitempty"` // relative to a directory mask; may hold one "/"
	Mode    uint32 `json:"mode"`
	Content []byte `json:"content"`
}

// Shadow is a read-only overlay on Dir whose upper layer holds a whiteout
// for each name in Hide. A masked path that does not exist on the host, in
// a directory the sandbox cannot write, stays absent in the sandbox's view
// even if the host creates it during the run.
type Shadow struct {
	Dir  string   `json:"dir"`
	Hide []string `json:"hide"`
}

// Window is a terminal size.
type Window struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// Rlimit is a resource limit set on the command where cgroups are missing.
type Rlimit struct {
	Resource int    `json:"resource"`
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

// message is one packet on the sync socket from init to the supervisor.
type message struct {
	// "tty" (carries the pty master), "listener" (carries a listening
	// socket), "started", "error", "warn"; in a session also "ready",
	// and both ways on the same socket: "exec" (to init, with the three
	// stdio descriptors attached unless TTY), "exec-started" (with the
	// pty master attached if TTY), "exec-error", "signal", "exit".
	Kind string `json:"kind"`
	Text string `json:"text,omitempty"`
	Code int    `json:"code,omitempty"`
	Pid  int    `json:"pid,omitempty"`
	Port uint16 `json:"port,omitempty"`

	// A session's execs.
	ID     uint64   `json:"id,omitempty"`
	Argv   []string `json:"argv,omitempty"`
	Env    []string `json:"env,omitempty"`
	Cwd    string   `json:"cwd,omitempty"`
	TTY    bool     `json:"tty,omitempty"`
	Rows   uint16   `json:"rows,omitempty"`
	Cols   uint16   `json:"cols,omitempty"`
	Signal int      `json:"signal,omitempty"`
}

// Exit codes of `cordon run` that are not the command's own.
const (
	ExitTimeout  = 124 // --timeout elapsed; the sandbox was killed
	ExitInternal = 125 // Cordon could not start the sandbox; the reason is on stderr
	ExitNoExec   = 126 // the command exists but cannot be executed
	ExitNotFound = 127 // the command does not exist
)

// fds that init inherits.
const (
	planFD = 3
	syncFD = 4
)
