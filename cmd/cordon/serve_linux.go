package main

import "github.com/cordon-sandbox/cordon/internal/session"

// serveRuntimes are the runtimes cordon serve offers; GET /v1/health says
// which of them can run here.
func serveRuntimes(runsc string, warm, uid, gid int) map[string]session.Runtime {
	return map[string]session.Runtime{
		"native": session.NewNative(session.WithWarm(warm), session.WithSessionUser(uid, gid)),
		"gvisor": session.NewGVisor(runsc),
	}
}
