// Package blast computes the blast radius of a process on this host: what
// it could read, change, reach and use with no sandbox, and what it still
// could inside a Cordon sandbox with a given policy, side by side, with a
// score for each. It is `cordon blast-radius`.
//
//	r, err := blast.Compute(blast.Options{
//		Policy: p, Home: home, Env: os.Environ(), Decoys: true,
//		Host: blast.ProbeHost(),
//	})
//	blast.WriteHTML(w, r) // or WriteText, WriteJSON
//
// # What it looks at
//
// The real host, not a template. Each thing found is an [Asset] in one of
// six parts, placed on a ring by how far it is from the process
// (workspace, home, this host, network), with its reach without a sandbox
// and inside one:
//
//   - credentials: the stores of the policy's masks that exist here
//     (policy.Masks, "~/" expanded, and the user's own masks), with the
//     number of secret values secrets.Discover reads from each (counted,
//     never kept or printed); the secret-looking environment variables
//     that hold a value secrets.Discover would watch for; key and .env
//     files of the workspace (.env, .env.* but not templates, *.pem with a
//     private key, *.key, *.p12, id_rsa, credentials.json, .npmrc, ...),
//     found by a walk bounded to 20000 entries and 8 levels that skips
//     .git, node_modules and other vendored trees. Without a sandbox: what
//     access(2) says the user may read. Inside: masked, or a decoy where
//     internal/decoy has a format for the store (decoy.Generate decides),
//     or readable when no mask hides it; environment variables dropped
//     unless the policy passes them.
//   - places run or trusted later: the workspace's own files, the
//     workspace's protected paths (policy.Protected), the home directory's
//     shell start-up files, git configuration, ssh login files, editor and
//     AI agent settings, autostart units, Python start-up files (see
//     places.go), each directory of $PATH, and crontab(1). Without a
//     sandbox: what access(2) says the user may write (or, for a missing
//     file whose creation is enough, whether its nearest existing parent is
//     writable). Inside: writable only under the workspace and the
//     policy's writable paths, minus masks and protected paths, as
//     internal/sandbox plans its mounts.
//   - network: the internet (a default route, or a proxy in the
//     environment), the local network and cloud metadata (an interface
//     up), DNS (a resolver), services listening on the host (TCP), raw
//     sockets (CAP_NET_RAW). Inside: only the destinations the policy
//     allows, through the gateway, which refuses loopback, private,
//     link-local and metadata addresses unless an IP rule names them; no
//     DNS, no raw socket, a loopback of its own.
//   - host sockets and processes: daemons' sockets (DefaultSockets:
//     Docker, containerd, Podman, LXD, libvirt, D-Bus, snapd, Docker
//     Desktop and its kin), the ssh-agent of $SSH_AUTH_SOCK, X11
//     displays, the sockets of $XDG_RUNTIME_DIR, abstract unix sockets,
//     and the other processes of the user (all of them for root), with
//     Yama's ptrace rule. Inside: a socket no mask hides is counted as
//     reachable (Landlock confines connect(2) on pathname sockets only
//     from ABI 9, which this package does not probe); no process outside
//     the sandbox's PID namespace.
//   - privileges: effective capabilities, setuid and setgid programs on
//     $PATH, sudo (never run: membership of sudo, wheel or admin counts as
//     usable, sudo installed otherwise as half), groups that are as good as
//     root (docker, lxd, libvirt, disk, kvm). Inside: none, no_new_privs.
//   - resource ceilings: memory, processes, CPU and run time; none without
//     a sandbox, the policy's limits inside.
//
// It writes nothing, opens no file for writing, connects to no socket and
// runs no program. What it cannot read (a /proc that is not there, on
// other systems than Linux) is assumed in reach: the report errs toward
// showing more.
//
// # The score
//
// Each asset has a reach from 0 (out of reach) to 1 (fully in reach) on
// each side, and a weight within its part. A part gives its weight times
// the weighted mean of its assets' reach, 0 when this host has none of
// them; the score is the sum of the parts, from 0 (nothing in reach) to
// 100 (everything this host has is in reach). The parts and their weights:
//
//	credentials                  30   each store, variable or file: 1
//	places run or trusted later  20   each place: 1
//	network                      20   the internet 6, local network and metadata 3,
//	                                  services on the host 2, DNS 1, raw sockets 1
//	host sockets and processes   15   a root-equivalent daemon's socket (Docker,
//	                                  containerd, Podman, LXD, libvirt) 3, ssh-agent 2,
//	                                  the session's sockets 2, other processes 2,
//	                                  any other socket 1
//	privileges                   10   capabilities 3, sudo 2, root-equivalent groups 2,
//	                                  setuid and setgid programs 1
//	resource ceilings             5   memory, processes, CPU, run time: 1 each
//
// Reach is 1 for what is readable, writable, connectable, held or
// unlimited, and 0 for what is not, with two levels in between: 0.5 for
// the internet when the policy allows named destinations only (data can
// still be sent to them), and 0.5 for sudo installed when the user is in
// no admin group (sudoers may still allow it). A decoy is 0: what can be
// read is a fake. The report's JSON carries every weight and level, each
// part's points and this method in words (Score.Method), so a score can be
// checked by hand.
//
// # Portability
//
// The package builds on every Unix. The /proc probes (routes, listening
// sockets, processes, capabilities, Yama) are in host_linux.go; elsewhere
// they are unknown and counted as in reach.
package blast
