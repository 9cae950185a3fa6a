//go:build !linux

package sandbox

import (
	"context"
	"os"
	"runtime"
)

// Run refuses: the host tier is built on Linux namespaces, Landlock and
// seccomp.
func Run(ctx context.Context, o Options) (int, error) {
	return 0, internal("cordon run needs Linux (namespaces, Landlock, seccomp); this is %s", runtime.GOOS)
}

// Init is never reached off Linux.
func Init() { os.Exit(ExitInternal) }

// Cleanup is never reached off Linux.
func Cleanup() { os.Exit(ExitInternal) }

// LandlockABI is 0: there is no Landlock off Linux.
func LandlockABI() int { return 0 }
