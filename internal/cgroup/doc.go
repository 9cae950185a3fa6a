// Package cgroup makes the cgroup leaf that holds one sandbox: every process
// of the sandbox lives in it, it carries the memory, pids and cpu limits, and
// it lets the supervisor kill the whole sandbox at once and remove it
// afterwards, even from another process.
//
//	leaf, err := cgroup.Create("cordon-1234-ab12", cgroup.Limits{MemoryBytes: 1 << 30, Pids: 256, CPUs: 2})
//	if err != nil {
//		return err // names the controller or directory that is missing
//	}
//	defer leaf.Remove()
//	if err := leaf.Add(cmd.Process.Pid); err != nil { ... }
//
// Create fails, wrapping [ErrNoController], when a non-zero limit cannot be
// enforced, and with an error matching [fs.ErrPermission] when this user may
// not create a cgroup at all; the caller decides whether to run without.
//
// # Where leaves go
//
// The host is read from /proc/self/mountinfo and /proc/self/cgroup. When any
// of memory, pids and cpu is bound to a cgroup v1 hierarchy and cgroup v2
// offers fewer of them (a hybrid host), v1 is used; otherwise v2.
//
//   - cgroup v2, root: <cgroup2 mount>/cordon/<name>.
//   - cgroup v2, other users: <own cgroup>/cordon/<name>, where the own
//     cgroup is the one in /proc/self/cgroup and must have been delegated to
//     the user (systemd does so for user@UID.service and for
//     `systemd-run --user --scope -p Delegate=yes`). A session scope made by
//     logind is not delegated; Create then fails with a permission error.
//   - cgroup v1: <controller mount>/cordon/<name> in each hierarchy holding
//     memory, pids or cpu (one directory per hierarchy, so co-mounted
//     controllers share one). The hierarchy roots are owned by root, so in
//     practice only root gets this far.
//
// On v1 and on v2 as root the leaf sits at the top of the hierarchy, not
// under the caller's own cgroup: a limit on the caller (a container's or a
// systemd unit's) does not bound the sandbox; the leaf's own limits do.
//
// # The no-internal-processes rule
//
// On v2 a cgroup that holds processes cannot pass memory, pids or cpu to its
// children, and the own cgroup of an unprivileged caller always holds the
// caller. When a controller needed for a limit cannot be enabled for that
// reason (EBUSY), Create moves every process in that cgroup, the caller and
// whatever else is there (typically the shell that started it), into a
// sibling leaf <own cgroup>/cordon-host and tries again. The move is not
// undone: those processes stay in cordon-host, which is still inside the
// same systemd unit, and a later Create from inside cordon-host uses its
// parent. Only controllers that carry a limit are enabled on v2, so a leaf
// with no limits never moves anything.
//
// # Ownership and the sandbox
//
// The leaf and its files belong to the uid that created it. The sandbox runs
// in a cgroup namespace rooted at the leaf and Cordon mounts no cgroupfs
// inside, so the limit files are out of the sandbox's reach. If the sandbox
// found a way to mount cgroupfs anyway:
//
//   - On v2 mounted with nsdelegate (systemd's default) the kernel refuses,
//     whoever owns the files, writes from inside the namespace to the leaf's
//     own limit files, and moves of a process out of the namespace's
//     subtree.
//   - Without nsdelegate (v1, or v2 mounted without it, as on the hybrid
//     host these tests were written on) ownership decides. A cgroupfs
//     mounted inside the namespace shows the leaf as its root, so the
//     ancestors a move out would need are not reachable by path, but the
//     leaf's limit files are. When the sandbox runs as a uid other than the
//     creator (the usual case when root creates the leaf) those files, mode
//     0644, cannot be written; when it runs as the creator's uid (an
//     unprivileged Cordon), it could raise its own limits.
//
// Sub-cgroups a sandbox makes inside the leaf can only tighten the limits;
// Remove takes them down with the leaf.
//
// # What it does not guarantee
//
// Memory limits count swap only where the kernel accounts it: v1 sets
// memory.memsw.limit_in_bytes when the file exists, v2 sets memory.swap.max
// to 0 when it exists; without swap accounting, pages over the limit can go
// to swap. The pids limit counts threads as well as processes. Kill without
// cgroup.kill (v1, or v2 before Linux 5.14) signals processes one by one, so
// a fork racing the loop is caught on a later round, within a bound.
// OOMKilled is best effort, from the counters the kernel keeps.
package cgroup
