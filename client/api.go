package client

import "time"

// The wire types of Cordon's session API (/v1). The server
// (internal/server) and this client both use them, so they cannot drift;
// docs/api.md and docs/openapi.yaml describe the same shapes.

// Health is the body of GET /v1/health.
type Health struct {
	Status string `json:"status"` // "ok"
	// Runtimes says of each runtime "ok", or why it cannot run here.
	Runtimes map[string]string `json:"runtimes"`
}

// CreateRequest is the body of POST /v1/sessions. Unknown fields are an
// error (400).
type CreateRequest struct {
	// Base is the session's read-only lower layer: "host" (the host's root
	// filesystem, read-only, with /home, /root and the policy's masks
	// hidden) or the absolute path of a directory on the server holding a
	// root filesystem (debootstrap makes one). Default "host".
	Base string `json:"base,omitempty"`
	// Runtime is "native" (default) or "gvisor".
	Runtime string `json:"runtime,omitempty"`
	// Profile is a built-in or server-defined profile ("default",
	// "offline", "dev", ...). Default "default".
	Profile string `json:"profile,omitempty"`
	// Policy is an inline policy in the TOML format of policy files
	// (docs/policy.md), stacked over the profile.
	Policy string `json:"policy,omitempty"`
	// Env is set in every exec of the session (an exec's own env wins).
	Env map[string]string `json:"env,omitempty"`
	// Labels are the caller's, kept and returned; filterable in list.
	Labels map[string]string `json:"labels,omitempty"`
	Limits Limits            `json:"limits,omitempty"`
	// TTL ends the session this long after creation ("30m"); 0: the
	// server's default. IdleTimeout ends it after this long without an
	// API call naming it or an exec running.
	TTL         Duration `json:"ttl,omitempty"`
	IdleTimeout Duration `json:"idle_timeout,omitempty"`
}

// Limits are a session's resource ceilings; zero fields take the server's
// defaults.
type Limits struct {
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	Pids        int64   `json:"pids,omitempty"`
	CPUs        float64 `json:"cpus,omitempty"`
	// DiskBytes bounds what the session writes (its overlay's upper
	// layer and its /tmp live in memory, within the memory limit too).
	DiskBytes int64 `json:"disk_bytes,omitempty"`
}

// Session states.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StateStopping = "stopping"
	StateStopped  = "stopped" // deleted, expired or failed; kept briefly for GET
)

// Session is what the API says of one session.
type Session struct {
	ID          string            `json:"id"`
	State       string            `json:"state"`
	Runtime     string            `json:"runtime"`
	Base        string            `json:"base"`
	Profile     string            `json:"profile"`
	Labels      map[string]string `json:"labels,omitempty"`
	Limits      Limits            `json:"limits"`
	CreatedAt   time.Time         `json:"created_at"`
	ExpiresAt   time.Time         `json:"expires_at"`
	IdleTimeout Duration          `json:"idle_timeout"`
	LastActive  time.Time         `json:"last_active"`
	// Execs is how many execs are running now.
	Execs int `json:"execs"`
	// Reason says why a stopped session stopped: "deleted", "ttl",
	// "idle", "failed: ...".
	Reason string `json:"reason,omitempty"`
}

// List is the body of GET /v1/sessions.
type List struct {
	Sessions []Session `json:"sessions"`
}

// TimeoutRequest is the body of POST /v1/sessions/{id}/timeout: the
// session now ends TTL from now (and IdleTimeout, if given, replaces the
// idle timeout).
type TimeoutRequest struct {
	TTL         Duration  `json:"ttl"`
	IdleTimeout *Duration `json:"idle_timeout,omitempty"`
}

// ExecRequest is the body of POST /v1/sessions/{id}/exec. The answer is a
// stream of ExecFrame, one JSON object a line (application/x-ndjson),
// written as the process produces output, ending with an "exit" frame.
type ExecRequest struct {
	Argv []string `json:"argv"`
	// Cwd inside the session; default /workspace.
	Cwd string            `json:"cwd,omitempty"`
	Env map[string]string `json:"env,omitempty"`
	// Stdin is given whole, then closed. With StdinStream the process's
	// stdin stays open for POST /v1/sessions/{id}/execs/{exec}/stdin
	// instead (and Stdin, if any, is written first).
	Stdin       []byte `json:"stdin,omitempty"` // base64 in JSON
	StdinStream bool   `json:"stdin_stream,omitempty"`
	// Timeout kills the process (and its process group) after this long;
	// the exit frame then says "timeout". 0: none but the session's.
	Timeout Duration `json:"timeout,omitempty"`
	// TTY gives the process a terminal of Rows x Cols; output then comes
	// as "stdout" frames only.
	TTY  bool   `json:"tty,omitempty"`
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
}

// Frame types of an exec stream.
const (
	FrameStarted = "started" // ExecID and Pid
	FrameStdout  = "stdout"  // Data
	FrameStderr  = "stderr"  // Data
	FrameExit    = "exit"    // ExitCode, and Signal or Timeout or Error
	FrameError   = "error"   // the process could not start: Error; last frame
)

// ExecFrame is one line of an exec stream.
type ExecFrame struct {
	Type     string `json:"type"`
	ExecID   string `json:"exec_id,omitempty"`
	Pid      int    `json:"pid,omitempty"`
	Data     []byte `json:"data,omitempty"` // base64 in JSON
	ExitCode *int   `json:"exit_code,omitempty"`
	Signal   string `json:"signal,omitempty"` // "SIGKILL" if a signal ended it
	Timeout  bool   `json:"timeout,omitempty"`
	Error    string `json:"error,omitempty"`
}

// ResizeRequest is the body of POST /v1/sessions/{id}/execs/{exec}/resize.
type ResizeRequest struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// SignalRequest is the body of POST /v1/sessions/{id}/execs/{exec}/signal.
type SignalRequest struct {
	Signal string `json:"signal"` // "SIGINT", "INT", "2"
}

// FileInfo is what stat and list say of one file in a session.
type FileInfo struct {
	Name    string    `json:"name"`
	Path    string    `json:"path"`
	Type    string    `json:"type"` // "file", "dir", "symlink", "other"
	Size    int64     `json:"size"`
	Mode    uint32    `json:"mode"` // permission bits
	ModTime time.Time `json:"mod_time"`
	Target  string    `json:"target,omitempty"` // a symlink's
}

// DirList is the body of GET /v1/sessions/{id}/files/list.
type DirList struct {
	Path    string     `json:"path"`
	Entries []FileInfo `json:"entries"`
}

// Error is the body of every 4xx and 5xx answer.
type Error struct {
	// Code is a stable word: "bad_request", "unauthorized", "forbidden", "not_found",
	// "conflict", "too_large", "unavailable", "internal".
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Event is one line of GET /v1/sessions/{id}/events: the session's audit
// stream. Kind is an audit event kind ("connection", "request", "canary",
// "secret") or "exec_start", "exec_end", "session_start", "session_end".
// Fields holds the rest, as in the audit log (docs: cordon audit).
type Event = map[string]any

// Duration is a time.Duration written as Go's duration text ("90s",
// "15m") in JSON; a bare number is taken as seconds.
type Duration time.Duration
