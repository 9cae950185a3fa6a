package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// setupMounts turns init's copy of the host's mount table into the
// sandbox's view. It works in place (no pivot_root): every host mount is
// made read-only, then fresh /tmp, /dev, /proc and /sys go on top, then the
// writable trees, the pinned and protected paths, and the masks.
//
// Writable trees are cloned (open_tree) before the host goes read-only:
// a clone keeps the flags of its source, and the sources may be hidden by
// the fresh /tmp afterwards.
func setupMounts(p *Plan) error {
	// Nothing we do here may propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}

	var writable []clone
	for _, path := range append([]string{p.Workspace}, p.Writable...) {
		fd, err := cloneTree(path)
		if err != nil {
			return err
		}
		writable = append(writable, clone{fd, path})
	}
	devs, err := cloneDevices()
	if err != nil {
		return err
	}
	// Programs size their thread pools from /sys/devices/system/cpu; keep
	// that one directory of /sys, read-only.
	cpuFD, cpuErr := cloneTree("/sys/devices/system/cpu")

	// The whole host, read-only and nosuid.
	if err := setattr(unix.AT_FDCWD, "/", unix.AT_RECURSIVE, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID, 0); err != nil {
		return fmt.Errorf("making the host read-only: %w", err)
	}

	// A private /tmp.
	if err := unix.Mount("tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return fmt.Errorf("mounting /tmp: %w", err)
	}
	if err := mountDev("", devs, ""); err != nil {
		return err
	}
	if err := mountProc(""); err != nil {
		return err
	}
	if err := protectProc(""); err != nil {
		return err
	}
	if err := mountSys("", cpuFD, cpuErr); err != nil {
		return err
	}

	if err := applyShadows(p.Shadows); err != nil {
		return err
	}

	// The write set. A tree that lived under /tmp or /dev/shm needs its
	// mount point made again in the fresh tmpfs.
	for _, w := range writable {
		if err := os.MkdirAll(w.target, 0o755); err != nil {
			return fmt.Errorf("creating mount point %s: %w", w.target, err)
		}
		if err := attach(w.fd, w.target); err != nil {
			return err
		}
	}

	for _, path := range p.Pin {
		if err := bindSelf(path, false); err != nil {
			return err
		}
	}
	for _, path := range p.Protect {
		if err := bindSelf(path, true); err != nil {
			return err
		}
	}
	return applyMasks(p.Masks)
}

// applyShadows lays each shadow's whiteouts over its directory with a
// read-only overlay. The whiteouts (0/0 character devices, which an
// unprivileged user may make since Linux 5.8) are built in a tmpfs mounted
// for a moment in the private /tmp and detached once the overlay holds it.
func applyShadows(shadows []Shadow) error {
	for i, sh := range shadows {
		layer := fmt.Sprintf("/tmp/.cordon-shadow-%d", i)
		if err := os.Mkdir(layer, 0o700); err != nil {
			return fmt.Errorf("making the shadow layer for %s: %w", sh.Dir, err)
		}
		if err := unix.Mount("tmpfs", layer, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=16k"); err != nil {
			return fmt.Errorf("mounting the shadow layer for %s: %w", sh.Dir, err)
		}
		// The overlay's root takes its owner, mode and times from the
		// top layer: give it those of the directory it stands for. An
		// owner unmapped in the sandbox cannot be given; it stays ours.
		if st, err := os.Stat(sh.Dir); err == nil {
			os.Chmod(layer, st.Mode().Perm())
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				os.Lchown(layer, int(sys.Uid), int(sys.Gid))
			}
		}
		for _, name := range sh.Hide {
			if err := unix.Mknod(filepath.Join(layer, name), unix.S_IFCHR, 0); err != nil {
				return fmt.Errorf("hiding %s in %s: %w", name, sh.Dir, err)
			}
		}
		if st, err := os.Stat(sh.Dir); err == nil {
			os.Chtimes(layer, st.ModTime(), st.ModTime())
		}
		opts := "lowerdir=" + layer + ":" + sh.Dir
		if err := unix.Mount("overlay", sh.Dir, "overlay", unix.MS_RDONLY|unix.MS_NOSUID, opts); err != nil {
			return fmt.Errorf("laying a shadow over %s for its missing masked paths: %w", sh.Dir, err)
		}
		if err := unix.Unmount(layer, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("detaching the shadow layer of %s: %w", sh.Dir, err)
		}
		os.Remove(layer)
	}
	return nil
}

// applyMasks covers each masked path that exists with an empty read-only
// directory or file from a private tmpfs that is mounted nowhere.
func applyMasks(masks []Mask) error {
	if len(masks) == 0 {
		return nil
	}
	empty, err := emptyTmpfs(decoyBytes(masks))
	if err != nil {
		return err
	}
	defer unix.Close(empty)
	for i, m := range masks {
		st, err := os.Stat(m.Path)
		if err != nil {
			continue // absent: see the package doc for what that means
		}
		src := "dir"
		if !st.IsDir() {
			src = "file"
		}
		// A decoy only where the host has what the table expects (a
		// directory for a directory mask): otherwise an empty mask.
		if len(m.Decoy) > 0 && m.File != st.IsDir() {
			if src, err = writeDecoy(empty, i, m, st.IsDir()); err != nil {
				return err
			}
		}
		fd, err := unix.OpenTree(empty, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return fmt.Errorf("cloning the mask for %s: %w", m.Path, err)
		}
		if err := setattr(fd, "", unix.AT_EMPTY_PATH, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC, 0); err != nil {
			unix.Close(fd)
			return fmt.Errorf("making the mask for %s read-only: %w", m.Path, err)
		}
		// A symlink is masked where it points: the mount goes on its
		// target, which hides the target wherever it is reached from.
		if err := attachFollow(fd, m.Path); err != nil {
			return err
		}
	}
	return nil
}

// decoyBytes is the room the decoys need in the mask tmpfs.
func decoyBytes(masks []Mask) int {
	n := 0
	for _, m := range masks {
		for _, f := range m.Decoy {
			n += len(f.Content) + 4096
		}
	}
	return n
}

// writeDecoy writes mask i's decoy files into the mask tmpfs and returns
// the name of what to mount: a directory "decoy-i" or a file "decoy-i".
// They never touch the host's disk: the tmpfs is the sandbox's own.
func writeDecoy(mfd, i int, m Mask, dir bool) (string, error) {
	name := fmt.Sprintf("decoy-%d", i)
	write := func(rel string, f DecoyFile) error {
		fd, err := unix.Openat(mfd, rel, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, f.Mode&0o777)
		if err != nil {
			return fmt.Errorf("creating the decoy %s for %s: %w", rel, m.Path, err)
		}
		defer unix.Close(fd)
		for b := f.Content; len(b) > 0; {
			n, err := unix.Write(fd, b)
			if err != nil {
				return fmt.Errorf("writing the decoy %s for %s: %w", rel, m.Path, err)
			}
			b = b[n:]
		}
		return unix.Fchmod(fd, f.Mode&0o777)
	}
	if !dir {
		return name, write(name, m.Decoy[0])
	}
	if err := unix.Mkdirat(mfd, name, 0o700); err != nil {
		return "", fmt.Errorf("creating the decoy directory for %s: %w", m.Path, err)
	}
	for _, f := range m.Decoy {
		rel := filepath.Clean(f.Rel)
		if rel == "." || filepath.IsAbs(rel) || strings.HasPrefix(rel, "..") {
			return "", fmt.Errorf("decoy file %q for %s: not a relative path", f.Rel, m.Path)
		}
		if sub := filepath.Dir(rel); sub != "." {
			if err := unix.Mkdirat(mfd, filepath.Join(name, sub), 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
				return "", fmt.Errorf("creating the decoy directory %s for %s: %w", sub, m.Path, err)
			}
		}
		if err := write(filepath.Join(name, rel), f); err != nil {
			return "", err
		}
	}
	return name, nil
}

// emptyTmpfs makes a detached tmpfs holding an empty directory "dir" and an
// empty file "file", the sources of every mask, with room for extra bytes
// of decoys.
func emptyTmpfs(extra int) (int, error) {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("opening a tmpfs for masks: %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigSetString(fsfd, "size", fmt.Sprint(16<<10+extra)); err != nil {
		return -1, fmt.Errorf("configuring the mask tmpfs: %w", err)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("creating the mask tmpfs: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return -1, fmt.Errorf("mounting the mask tmpfs: %w", err)
	}
	if err := unix.Mkdirat(mfd, "dir", 0o755); err != nil {
		unix.Close(mfd)
		return -1, fmt.Errorf("creating the empty mask directory: %w", err)
	}
	f, err := unix.Openat(mfd, "file", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		unix.Close(mfd)
		return -1, fmt.Errorf("creating the empty mask file: %w", err)
	}
	unix.Close(f)
	return mfd, nil
}

// cloneTree returns a detached copy of the mount tree at path, with the
// flags it has now.
func cloneTree(path string) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return -1, fmt.Errorf("cloning the mount tree at %s: %w", path, err)
	}
	return fd, nil
}

// attach mounts a detached tree at target and closes its fd.
func attach(fd int, target string) error {
	defer unix.Close(fd)
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mounting onto %s: %w", target, err)
	}
	return nil
}

// attachFollow is attach for a target that may be a symbolic link.
func attachFollow(fd int, target string) error {
	defer unix.Close(fd)
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_SYMLINKS); err != nil {
		return fmt.Errorf("mounting onto %s: %w", target, err)
	}
	return nil
}

// bindSelf binds path onto itself, read-only if asked. A path bound onto
// itself is a mount point: it cannot be renamed or removed (EBUSY).
func bindSelf(path string, readOnly bool) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_SYMLINK_NOFOLLOW)
	if err != nil {
		return fmt.Errorf("cloning %s: %w", path, err)
	}
	if readOnly {
		if err := setattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, 0); err != nil {
			unix.Close(fd)
			return fmt.Errorf("making %s read-only: %w", path, err)
		}
	}
	return attach(fd, path)
}

func setattr(dirfd int, path string, flags int, set, clear uint64) error {
	return unix.MountSetattr(dirfd, path, uint(flags), &unix.MountAttr{Attr_set: set, Attr_clr: clear})
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// clone is a detached mount tree and where it goes.
type clone struct {
	fd     int
	target string
}

// cloneDevices clones the harmless device nodes of the host's /dev, to be
// attached in the sandbox's own /dev.
func cloneDevices() ([]clone, error) {
	var devs []clone
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		fd, err := cloneTree("/dev/" + d)
		if err != nil {
			for _, c := range devs {
				unix.Close(c.fd)
			}
			return nil, err
		}
		devs = append(devs, clone{fd, "/dev/" + d})
	}
	return devs, nil
}

// mountDev makes root+"/dev": a tmpfs holding the cloned devices, a private
// devpts and shm, then read-only. shmOpts sizes /dev/shm ("" for no size).
func mountDev(root string, devs []clone, shmOpts string) error {
	dev := root + "/dev"
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return fmt.Errorf("mounting /dev: %w", err)
	}
	for _, d := range devs {
		target := root + d.target
		if err := os.WriteFile(target, nil, 0o666); err != nil {
			return fmt.Errorf("creating %s: %w", d.target, err)
		}
		if err := attach(d.fd, target); err != nil {
			return err
		}
	}
	for _, l := range [][2]string{
		{"pts/ptmx", "/dev/ptmx"}, {"/proc/self/fd", "/dev/fd"},
		{"/proc/self/fd/0", "/dev/stdin"}, {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"},
	} {
		if err := os.Symlink(l[0], root+l[1]); err != nil {
			return fmt.Errorf("linking %s: %w", l[1], err)
		}
	}
	for _, d := range []string{"/dev/pts", "/dev/shm"} {
		if err := os.Mkdir(root+d, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	if err := unix.Mount("devpts", dev+"/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return fmt.Errorf("mounting /dev/pts: %w", err)
	}
	opts := "mode=1777"
	if shmOpts != "" {
		opts += "," + shmOpts
	}
	if err := unix.Mount("tmpfs", dev+"/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mounting /dev/shm: %w", err)
	}
	if err := setattr(unix.AT_FDCWD, dev, 0, unix.MOUNT_ATTR_RDONLY, 0); err != nil {
		return fmt.Errorf("making /dev read-only: %w", err)
	}
	return nil
}

// mountProc mounts a fresh /proc for the new PID namespace at root+"/proc":
// the host's processes are not in it. In a user namespace the kernel
// allows it only while a full procfs is visible in the mount namespace, so
// a session mounts it before leaving the host's tree.
func mountProc(root string) error {
	if err := unix.Mount("proc", root+"/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	return nil
}

// protectProc keeps the kernel knobs in root+"/proc" read-only.
func protectProc(root string) error {
	for _, ro := range []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"} {
		if err := bindSelf(root+ro, true); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

// mountSys hides root+"/sys" but for the CPU topology (cpuFD, if cloning
// it worked).
func mountSys(root string, cpuFD int, cpuErr error) error {
	sys := root + "/sys"
	if err := unix.Mount("tmpfs", sys, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=16k"); err != nil {
		return fmt.Errorf("mounting /sys: %w", err)
	}
	if cpuErr == nil {
		if err := os.MkdirAll(sys+"/devices/system/cpu", 0o755); err != nil {
			return fmt.Errorf("creating /sys/devices/system/cpu: %w", err)
		}
		if err := setattr(cpuFD, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, unix.MOUNT_ATTR_RDONLY, 0); err != nil {
			return fmt.Errorf("making /sys/devices/system/cpu read-only: %w", err)
		}
		if err := attach(cpuFD, sys+"/devices/system/cpu"); err != nil {
			return err
		}
	}
	if err := setattr(unix.AT_FDCWD, sys, 0, unix.MOUNT_ATTR_RDONLY, 0); err != nil {
		return fmt.Errorf("making /sys read-only: %w", err)
	}
	return nil
}
