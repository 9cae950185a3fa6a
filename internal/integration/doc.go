// Package integration holds end-to-end tests of `cordon run`: each builds
// the real binary, runs it as root and as an unprivileged uid, and tries to
// climb every wall from inside with real system calls (the test binary
// itself, run inside the sandbox as a probe, makes them).
package integration
