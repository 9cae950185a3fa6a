package session

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/cordon-sandbox/cordon/internal/policy"
)

// Spec is one session to create, decided by the Manager: the policy merged,
// defaults applied, the gateway made. A Runtime builds the box from it.
type Spec struct {
	ID string
	// Dir is the session's own directory on the server (mode 0700, under
	// the state directory), made by the Manager and removed by it after
	// Destroy. The runtime keeps what it needs there.
	Dir string
	// Base is "host" or the absolute path of a root filesystem directory.
	Base string
	// Policy is the session's effective policy: Masks (for the host base),
	// Limits, Network (already in the gateway), Degraded walls.
	Policy    policy.Policy
	DiskBytes int64 // the size of the session's writable layers (tmpfs)

	// Listen are TCP ports on the session's own 127.0.0.1; Serve gets each
	// listening socket, to accept on from the server (the gateway).
	// Connecting to them from inside is allowed.
	Listen []uint16
	Serve  func(port uint16, l net.Listener)

	// Log receives the runtime's notes; never nil.
	Log func(format string, args ...any)
}

// Runtime makes boxes: "native" (namespaces, Landlock, seccomp, cgroups) or
// "gvisor" (runsc). A later backend may place them as Kubernetes pods; the
// Manager and the API do not change.
type Runtime interface {
	Name() string
	// Available says why this runtime cannot run here; nil if it can.
	Available() error
	// Create builds and starts a box. On error nothing of it remains.
	Create(ctx context.Context, spec Spec) (Box, error)
	// Sweep removes what the boxes of a server that is gone left behind
	// (cgroups, mounts, processes, files under stateDir), before serving.
	Sweep(stateDir string) error
}

// Box is one running session.
type Box interface {
	// Exec starts a process in the box. A command that cannot be found or
	// executed is an *ExecError with the shell's code (127, 126).
	Exec(ctx context.Context, e Exec) (Process, error)
	// Root opens the session's root directory for file operations: every
	// path is resolved inside it (os.Root), whatever symbolic links the
	// session made.
	Root() (*os.Root, error)
	// MemoryBytes is what the box's processes use now (0 if unknown).
	MemoryBytes() int64
	// Done is closed when the box has ended on its own (its init died).
	Done() <-chan struct{}
	// Destroy kills every process of the box, waits for them, and
	// removes its cgroups and mounts. Safe to call more than once.
	Destroy() error
}

// Owned is a Box whose files belong on the host to other ids than the
// server's: the server acts as them (its filesystem ids) when it works in
// the box's root, so that what it makes is theirs and what they cannot
// read, it does not read for them. -1: the server's own.
type Owned interface {
	Owner() (uid, gid int)
}

// Exec is one process to start in a box.
type Exec struct {
	Argv []string
	Cwd  string   // inside the box
	Env  []string // complete: NAME=VALUE
	TTY  bool
	Rows uint16
	Cols uint16
}

// Process is one process started in a box. With a TTY, Stdout is the
// terminal and Stderr is nil.
type Process interface {
	Pid() int // in the box's PID namespace
	Stdin() io.WriteCloser
	Stdout() io.Reader
	Stderr() io.Reader
	// Resize sets the terminal's size; an error without a TTY.
	Resize(rows, cols uint16) error
	// Signal sends sig to the process's group.
	Signal(sig syscall.Signal) error
	// Wait waits for the process to end. Output may still be buffered in
	// Stdout and Stderr: read them to EOF (or give up after a while, since
	// a child left running in the background may hold them open).
	Wait() (ExitStatus, error)
	// Close releases the server's ends of stdio; the process is not
	// killed.
	Close() error
}

// ExitStatus is how a process ended.
type ExitStatus struct {
	Code   int            // the shell's: 128+N for signal N
	Signal syscall.Signal // 0 unless a signal ended it
}

// ExecError is a process that could not start: Code 127 (not found), 126
// (not executable) or 125 (anything else).
type ExecError struct {
	Code int
	Err  error
}

func (e *ExecError) Error() string { return e.Err.Error() }
func (e *ExecError) Unwrap() error { return e.Err }

// Errors of the Manager.
var (
	ErrNotFound   = errors.New("no such session")
	ErrStopped    = errors.New("the session has stopped")
	ErrLimit      = errors.New("too many sessions")
	ErrNoRuntime  = errors.New("runtime not available")
	ErrBadRequest = errors.New("bad request")
)
