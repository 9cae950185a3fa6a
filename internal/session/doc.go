// Package session is the session tier of Cordon (`cordon serve`): a
// Manager that keeps disposable per-session sandboxes, each built by a
// Runtime from a Spec, ends them at their TTL or idle timeout, streams
// their events, and sweeps what a crashed server left behind. The Manager
// holds its records in a Store and builds boxes through a Runtime; the two
// are separate so that a later backend can place sessions elsewhere (as
// Kubernetes pods) behind the same API (internal/server).
//
// The native runtime (native_linux.go) builds on internal/sandbox's
// session mode: an init that stays up as PID 1 of the box, with the walls
// of `cordon run` raised on itself, starting each exec it is asked for; it
// keeps a few boxes started ahead of need. The gvisor runtime
// (gvisor_linux.go) runs each box as a runsc sandbox. A box that is Owned
// says whom its files belong to on the host, and the server acts as them
// in its root.
package session
