// Package files performs the session API's file operations (stat, list,
// get and put a file, get and put a tar of a directory) inside a
// session's root filesystem, given as an *os.Root opened on
// /proc/<init pid>/root.
//
// # Why the operations are shaped like this
//
// Two facts decide everything here. The tree belongs to the adversary:
// the contained process can plant symbolic links (to /, to /etc/passwd,
// to ../../ anything), named pipes, hard links, huge files and deep
// trees, and can rename any of them between two of our system calls. And
// the server that does the work runs as root on the host. A path resolved
// the usual way (filepath.Join onto the host path, then open) would
// follow the session's links out of its root with root's rights; an open
// of a named pipe would hang the request forever; an open of a device
// runs its driver; reading /proc/kcore through a link is reading the
// host's memory. So:
//
//   - Every name is resolved inside the root by os.Root, which walks it a
//     part at a time with openat(O_NOFOLLOW) and refuses symbolic links
//     that are absolute or climb out. Operations on the last part are done
//     relative to a directory we hold open (openat, fstatat, renameat,
//     symlinkat, utimensat with AT_SYMLINK_NOFOLLOW), never by a path
//     again, so a rename by the session cannot redirect them.
//   - A final symbolic link is never followed: Stat and List report it
//     (with its target), Open refuses it, Write and ExtractTar replace it.
//   - Only regular files are read, and they are opened with O_PATH first
//     (no driver runs, no pipe waits), checked, and reopened through
//     /proc/self/fd; directories are opened with O_DIRECTORY|O_NONBLOCK.
//     Nothing blocks on what the session made.
//   - /proc, /sys and /dev are refused by name, and, since a link reaches
//     them whatever the name, nothing is read from or made in a kernel
//     filesystem (proc, sysfs, cgroup, debugfs, ...): fstatfs says which
//     filesystem each open file or directory is on.
//   - Writes go to a new file (O_EXCL|O_NOFOLLOW) beside the target and
//     are renamed over it: a hard link the session made to the target is
//     never written through, and a reader never sees half a file.
//   - Archives are spooled to the host, checked whole, and only then
//     written: a refused archive changes nothing in the session.
//   - Every size is bounded (bytes by the caller's max; 100,000 entries in
//     a listing or an archive; 256 levels of directories in an archive we
//     write), so no request can make the server run out of memory.
//
// Errors say the session's path, never a host path. ErrBadPath (the
// request names something it may not), ErrTooLarge and ErrNotRegular are
// for the server to map to 400, 413 and 400; a missing file satisfies
// errors.Is(err, fs.ErrNotExist).
//
// # What it does not do
//
// The operations act with the server's rights, not the session user's:
// a file in the root that the session's own user cannot read (a host
// base's /etc/shadow, unless the policy masks it) can still be read
// through this package, and what is written is owned by the server's
// user. The checks of an archive hold against the tree as it was when
// they ran; a session racing the second pass (or a full disk) can still
// stop an extraction half done, and the session may change anything we
// wrote the moment after. Sessions run only on Linux; elsewhere every
// operation fails (sys_other.go).
package files
