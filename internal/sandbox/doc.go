// Package sandbox runs one command behind Cordon's walls on the host kernel
// (tier "host"): the launcher on the host side and the init that runs inside.
//
// # Process tree
//
//	cordon run (supervisor: Run)
//	  ├─ cordon-cleanup  (only when something on the host must be undone:
//	  │                   a cgroup leaf or a placeholder; survives a SIGKILL
//	  │                   of the supervisor just long enough to undo it)
//	  └─ cordon-init     (/proc/self/exe in new user, mount, pid, net, ipc,
//	       │              uts and cgroup namespaces; PID 1 of the sandbox: Init)
//	       └─ the command
//
// The supervisor decides everything and writes it down as a Plan, which it
// hands to init over an inherited pipe (fd 3). Init builds the mount view,
// brings up lo, locks itself (no_new_privs, Landlock, capabilities dropped,
// seccomp, in that order), starts the command in a new session and reaps
// until the command exits. Errors travel home over a socket (fd 4) so that
// the supervisor prints them once.
//
// # What it guarantees
//
// Whatever the command does, it can write only the workspace, the paths the
// policy adds and its private /tmp and /dev/shm; it cannot read the masked
// paths; it has no network but its own loopback; it sees and signals no
// process outside; it holds no capability; and if the supervisor dies,
// everything inside dies with it (Pdeathsig on init, which is PID 1).
//
// # What it does not
//
// The host is readable, minus the masks: what the calling user can read and
// is not masked, the command can read. Protected paths are protected at the
// workspace root only.
// Started as root, the command keeps uid 0 inside a user namespace that
// maps it to host uid 0, with no capability anywhere: it owns what root
// owns, but only through read-only mounts outside its write set.
package sandbox
