// Package cordontest holds what Cordon's tests share: skips with a reason
// for kernel features (RequireRoot, RequireUserNS, RequireLandlock), and the
// users a wall test runs as (root, and an unprivileged uid the test binary
// switches to when it runs as root), and a host Listener that proves what
// did not arrive from a sandbox.
package cordontest
