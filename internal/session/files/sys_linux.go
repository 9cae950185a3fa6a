package files

import (
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// stat is what an lstat says, for the few fields used here.
type stat struct {
	mode  fs.FileMode // type and permission bits, as os.FileMode
	size  int64
	mtime time.Time
}

// statAt is fstatat(d, name, AT_SYMLINK_NOFOLLOW).
func statAt(d *os.File, name string) (stat, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(fdOf(d), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return stat{}, err
	}
	return fromStat(&st), nil
}

func fromStat(st *unix.Stat_t) stat {
	mode := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if st.Mode&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if st.Mode&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return stat{mode: mode, size: st.Size, mtime: time.Unix(st.Mtim.Unix())}
}

// openRegularAt opens the regular file name in d for reading; shown is
// the name for the *os.File.
//
// os.Root.OpenFile cannot do this: it follows a final symbolic link even
// with O_NOFOLLOW, and it opens before we can look. Here the file is first
// opened with O_PATH (which opens nothing: no driver runs, no named pipe
// waits for a writer), checked through that descriptor, and only then
// reopened for reading through /proc/self/fd: the same inode, whatever the
// session renamed meanwhile.
func openRegularAt(d *os.File, name, shown string) (*os.File, error) {
	pfd, err := unix.Openat(fdOf(d), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFLNK:
		return nil, fmt.Errorf("it is a symbolic link: %w", ErrNotRegular)
	case unix.S_IFDIR:
		return nil, fmt.Errorf("it is a directory: %w", ErrNotRegular)
	default:
		return nil, ErrNotRegular
	}
	if err := checkFSFd(pfd); err != nil {
		return nil, err
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var st2 unix.Stat_t
	if err := unix.Fstat(fd, &st2); err != nil || st2.Dev != st.Dev || st2.Ino != st.Ino || st2.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		if err == nil {
			err = ErrNotRegular
		}
		return nil, err
	}
	// O_NONBLOCK was only a second guard for the open; reads of a regular
	// file ignore it, but leave the file as callers expect.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), shown), nil
}

// kernelFS are the filesystems whose files are the kernel's interfaces,
// not data: reading them as root can leak the host (/proc/kcore, a
// process's memory), and making a directory in some makes kernel objects
// (a cgroup, a tracing instance). The session reaches its own /proc, /sys
// and /dev through links whatever names we refuse, so we refuse these by
// what they are.
var kernelFS = map[int64]string{
	unix.PROC_SUPER_MAGIC:     "proc",
	unix.SYSFS_MAGIC:          "sysfs",
	unix.CGROUP_SUPER_MAGIC:   "cgroup",
	unix.CGROUP2_SUPER_MAGIC:  "cgroup2",
	unix.DEBUGFS_MAGIC:        "debugfs",
	unix.TRACEFS_MAGIC:        "tracefs",
	unix.SECURITYFS_MAGIC:     "securityfs",
	unix.SELINUX_MAGIC:        "selinuxfs",
	unix.SMACK_MAGIC:          "smackfs",
	unix.BPF_FS_MAGIC:         "bpf",
	unix.PSTOREFS_MAGIC:       "pstore",
	unix.EFIVARFS_MAGIC:       "efivarfs",
	unix.BINFMTFS_MAGIC:       "binfmt_misc",
	unix.DEVPTS_SUPER_MAGIC:   "devpts",
	unix.NSFS_MAGIC:           "nsfs",
	unix.RDTGROUP_SUPER_MAGIC: "resctrl",
	unix.BINDERFS_SUPER_MAGIC: "binder",
	0x62656570:                "configfs", // CONFIGFS_MAGIC, not in x/sys/unix
	0x65735543:                "fusectl",  // FUSE_CTL_SUPER_MAGIC
}

// checkFS refuses f if it is on a kernel filesystem.
func checkFS(f *os.File) error { return checkFSFd(fdOf(f)) }

func checkFSFd(fd int) error {
	var sf unix.Statfs_t
	if err := unix.Fstatfs(fd, &sf); err != nil {
		return err
	}
	if name, ok := kernelFS[int64(sf.Type)]; ok {
		return fmt.Errorf("it is on the kernel filesystem %s, which is not served: %w", name, ErrBadPath)
	}
	return nil
}

// setTimes sets f's modification time (and leaves its access time).
// utimensat on /proc/self/fd/N acts on f's own inode, as futimens would.
func setTimes(f *os.File, mtime time.Time) error {
	ts, err := times(mtime)
	if err != nil {
		return err
	}
	return unix.UtimesNano("/proc/self/fd/"+strconv.Itoa(fdOf(f)), ts)
}

// setTimesAt sets the modification time of name in d, not following it
// if it is a symbolic link.
func setTimesAt(d *os.File, name string, mtime time.Time) error {
	ts, err := times(mtime)
	if err != nil {
		return err
	}
	return unix.UtimesNanoAt(fdOf(d), name, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// times are utimensat's: the access time left alone, mtime set.
func times(mtime time.Time) ([]unix.Timespec, error) {
	m, err := unix.TimeToTimespec(mtime)
	if err != nil {
		return nil, fmt.Errorf("modification time %v: %w", mtime, err)
	}
	return []unix.Timespec{{Nsec: unix.UTIME_OMIT}, m}, nil
}
