//go:build !linux

package main

import "github.com/cordon-sandbox/cordon/internal/session"

// serveRuntimes are the runtimes cordon serve offers: off Linux, native
// only, which says why it cannot run.
func serveRuntimes(runsc string, warm, uid, gid int) map[string]session.Runtime {
	return map[string]session.Runtime{"native": session.NewNative()}
}
