//go:build !linux

package seccomp

import (
	"errors"
	"fmt"
	"runtime"
)

// Install sets no_new_privs and loads the filter on every thread of the
// calling process. Seccomp is Linux only; elsewhere it returns an error
// wrapping errors.ErrUnsupported.
func Install() error {
	return unsupported()
}

// Available reports whether seccomp filter mode works on this kernel. Seccomp
// is Linux only; elsewhere it returns an error wrapping
// errors.ErrUnsupported.
func Available() error {
	return unsupported()
}

func unsupported() error {
	return fmt.Errorf("seccomp filter for %s/%s: %w", runtime.GOOS, runtime.GOARCH, errors.ErrUnsupported)
}
