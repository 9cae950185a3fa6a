package sandbox

import (
	"fmt"
	"net"
	"os"

	"github.com/cordon-sandbox/cordon/internal/policy"
)

// InitArg0 is argv[0] of the re-executed binary when it is a sandbox's init.
// main dispatches on it before anything else runs.
const InitArg0 = "cordon-init"

// CleanupArg0 is argv[0] of the re-executed binary when it is a run's
// cleanup helper.
const CleanupArg0 = "cordon-cleanup"

// LandlockRequiredABI is the Landlock ABI version the default walls need.
const LandlockRequiredABI = 6

// Options is one `cordon run`.
type Options struct {
	Policy policy.Policy
	Argv   []string
	Env    []string // already filtered
	Cwd    string   // the caller's working directory

	// Listen are TCP ports to listen on at the sandbox's own 127.0.0.1;
	// Serve gets each listening socket, before the command starts, to
	// accept on from the host side. Connecting to them is allowed.
	Listen []uint16
	Serve  func(port uint16, l net.Listener)

	// Decoys fill masked paths (keyed by Policy.Masks' Path) that exist
	// on the host with fake files instead of nothing.
	Decoys map[string][]DecoyFile
	// Files show other bytes, read-only, in place of existing host files
	// (keyed by absolute path; a symlink is replaced where it points):
	// the trust store that holds the run's CA. Like decoys they live only
	// in a tmpfs of the sandbox. A path that does not exist is an error.
	Files map[string][]byte

	Stdin, Stdout, Stderr *os.File
	// Log receives Cordon's own notes (--verbose) and warnings; never nil.
	Log func(format string, args ...any)
	// Warn receives what must be said even without --verbose.
	Warn func(format string, args ...any)
}

// Error is a failure to start the sandbox: the command did not run. Code is
// the exit status `cordon run` returns for it.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func internal(format string, args ...any) error {
	return &Error{Code: ExitInternal, Err: fmt.Errorf(format, args...)}
}
