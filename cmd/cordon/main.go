// Command cordon contains a process so that, whatever it wants, it can reach
// only what the policy gives it. See `cordon --help` and README.md.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cordon-sandbox/cordon/internal/sandbox"
)

// probeArg0 is argv[0] of a child that only proves its namespaces could be
// created (cordon doctor): it exits at once.
const probeArg0 = "cordon-probe"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// The re-executed binary is told what it is by argv[0], before any
	// flag parsing or initialisation that a sandbox's init must not do.
	switch filepath.Base(os.Args[0]) {
	case sandbox.InitArg0:
		sandbox.Init()
		return
	case sandbox.CleanupArg0:
		sandbox.Cleanup()
		return
	case probeArg0:
		os.Exit(0)
	}
	os.Exit(run(os.Args[1:]))
}

// run executes the CLI and returns the exit status. It is the one place
// that prints Cordon's errors.
func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var status exitStatus
	if errors.As(err, &status) {
		return int(status)
	}
	code := sandbox.ExitInternal
	var serr *sandbox.Error
	if errors.As(err, &serr) {
		code = serr.Code
	}
	fmt.Fprintf(os.Stderr, "cordon: %v\n", err)
	return code
}

// exitStatus carries the contained command's exit status out of a cobra
// command without printing anything.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
