// Package policy is what a sandbox may see and do, as data: the built-in
// tables (credential stores masked, workspace paths protected, environment
// variables dropped), the limits, and the options a user sets with flags.
//
// It holds no system calls and builds on every OS: the launcher in
// internal/sandbox turns a Policy into mounts, Landlock rules, a seccomp
// filter and a cgroup. The tables here are the single source for the
// README's tables and for `cordon doctor`.
package policy
