package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// scratch is where a session's init mounts the tmpfs that holds all the
// session writes, in its own mount namespace only: the overlay's upper
// and work directories and the root being built. It is never visible on
// the host, and it goes when the namespace goes.
const scratch = "/tmp"

// sessionRoot builds a session's root and moves init into it
// (pivot_root); the host's tree is then detached. Two kinds of base:
//
//   - a directory holding a root filesystem: an overlay whose lower layer
//     is that directory and whose upper layer lives in the scratch tmpfs.
//   - "host": the root is a directory of the scratch tmpfs; each of the
//     host's top-level directories is an overlay of its own over the host
//     directory (writable, the writes thrown away), or, where the kernel
//     refuses an overlay (a directory with mounts below it, which a user
//     namespace may not reveal by cloning it alone), a read-only bind. The
//     Hide directories (home, root, run, tmp, ...) are left empty.
//
// Then /proc, /dev and /sys are made as for `cordon run`, and /workspace
// and /tmp exist. The masks are applied after pivot_root, where their
// paths mean what they say.
func sessionRoot(p *Plan, warnings *[]string) error {
	s := p.Session
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	// The base is opened before the scratch tmpfs may hide it, and named
	// through the descriptor in the overlay's options.
	var baseFD int = -1
	if s.Base != "host" {
		fd, err := unix.Open(s.Base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening the base %s: %w", s.Base, err)
		}
		defer unix.Close(fd)
		baseFD = fd
	}
	devs, err := cloneDevices()
	if err != nil {
		return err
	}
	cpuFD, cpuErr := cloneTree("/sys/devices/system/cpu")

	opts := "mode=0755"
	if s.DiskBytes > 0 {
		opts += fmt.Sprintf(",size=%d", s.DiskBytes)
	}
	if err := unix.Mount("tmpfs", scratch, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mounting the session's tmpfs: %w", err)
	}
	root := scratch + "/root"
	for _, d := range []string{scratch + "/upper", scratch + "/work", root} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("making %s in the session's tmpfs: %w", d, err)
		}
	}
	if baseFD >= 0 {
		base := fmt.Sprintf("/proc/self/fd/%d", baseFD)
		err := overlay(base, scratch+"/upper", scratch+"/work", root)
		if refused(err) {
			// Some kernels refuse an overlay with an upper layer to a
			// user namespace whose root is not the host's root.
			*warnings = append(*warnings, fmt.Sprintf("the kernel refused an overlay over %s (%v): the base is shown read-only, and the session writes only in the directories it adds", s.Base, err))
			err = populate(root, base, nil, warnings)
		}
		if err != nil {
			return fmt.Errorf("mounting the session's root over %s: %w", s.Base, err)
		}
	} else if err := populate(root, "", s.Hide, warnings); err != nil {
		return err
	}
	for _, d := range []string{"proc", "dev", "sys", "tmp", "workspace"} {
		if err := mkdirIn(root, d, 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(root+"/tmp", 0o777|os.ModeSticky); err != nil {
		return fmt.Errorf("making /tmp: %w", err)
	}
	if err := mountProc(root); err != nil {
		return err
	}
	shm := ""
	if s.DiskBytes > 0 {
		shm = fmt.Sprintf("size=%d", s.DiskBytes)
	}
	if err := mountDev(root, devs, shm); err != nil {
		return err
	}
	if err := mountSys(root, cpuFD, cpuErr); err != nil {
		return err
	}

	// pivot_root(".", ".") stacks the old root under the new one; the
	// detach then drops the whole host tree from this namespace.
	if err := os.Chdir(root); err != nil {
		return fmt.Errorf("entering the session's root: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into the session's root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the host's tree: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := protectProc(""); err != nil {
		return err
	}
	// Hide directories below the top level (/var/tmp) with a tmpfs of
	// their own; the top-level ones were left empty above.
	for _, h := range s.Hide {
		if strings.Count(h, "/") < 2 {
			continue
		}
		if st, err := os.Lstat(h); err != nil || !st.IsDir() {
			continue
		}
		mode := "mode=0755"
		if strings.HasSuffix(h, "tmp") {
			mode = "mode=1777"
		}
		if s.DiskBytes > 0 {
			mode += fmt.Sprintf(",size=%d", s.DiskBytes)
		}
		if err := unix.Mount("tmpfs", h, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, mode); err != nil {
			return fmt.Errorf("hiding %s: %w", h, err)
		}
	}
	return applyMasks(p.Masks)
}

// refused reports whether the kernel refused an overlay for want of
// privilege or because the directory has mounts below it.
func refused(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

// populate fills root with the top-level entries of src ("" for the
// host's /): see sessionRoot. The Hide directories are made empty.
func populate(root, src string, hide []string, warnings *[]string) error {
	// The root itself must be a mount point for pivot_root.
	if err := unix.Mount(root, root, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("binding the session's root: %w", err)
	}
	ents, err := os.ReadDir(src + "/")
	if err != nil {
		return fmt.Errorf("listing the base's root: %w", err)
	}
	var readOnly []string
	for _, e := range ents {
		name := e.Name()
		host := src + "/" + name
		at := root + "/" + name
		switch {
		case name == "proc" || name == "sys" || name == "dev" || name == "workspace" && src == "":
			continue // made fresh: a host's own /workspace is not the session's
		case e.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(host)
			if err != nil {
				return fmt.Errorf("reading %s: %w", host, err)
			}
			if err := os.Symlink(target, at); err != nil {
				return fmt.Errorf("linking %s: %w", at, err)
			}
			continue
		case !e.IsDir():
			continue
		}
		if err := mkdirIn(root, name, 0o755); err != nil {
			return err
		}
		if slices.Contains(hide, "/"+name) {
			continue
		}
		upper, work := scratch+"/upper/"+name, scratch+"/work/"+name
		if err := os.Mkdir(upper, 0o755); err != nil {
			return fmt.Errorf("making %s: %w", upper, err)
		}
		if err := os.Mkdir(work, 0o755); err != nil {
			return fmt.Errorf("making %s: %w", work, err)
		}
		err := overlay(host, upper, work, at)
		if err == nil {
			continue
		}
		if !refused(err) {
			return fmt.Errorf("mounting /%s in the session: %w", name, err)
		}
		// Mounts below it, or no overlay for this user namespace:
		// shown read-only as it is.
		readOnly = append(readOnly, "/"+name)
		fd, err := cloneTree(host)
		if err != nil {
			return err
		}
		if err := setattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV, 0); err != nil {
			unix.Close(fd)
			return fmt.Errorf("making %s read-only: %w", host, err)
		}
		if err := attach(fd, at); err != nil {
			return err
		}
	}
	if len(readOnly) > 0 && src == "" {
		*warnings = append(*warnings, fmt.Sprintf("read-only in the session, the kernel having refused an overlay over them: %s", strings.Join(readOnly, " ")))
	}
	return nil
}

// overlay mounts lower with a writable upper layer at target. userxattr:
// the upper layer is a tmpfs in a user namespace, where overlayfs may
// keep its metadata only in user.* attributes.
func overlay(lower, upper, work, target string) error {
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work + ",userxattr"
	return unix.Mount("overlay", target, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts)
}

// mkdirIn makes root/name unless it exists as a directory.
func mkdirIn(root, name string, mode os.FileMode) error {
	path := filepath.Join(root, name)
	if st, err := os.Lstat(path); err == nil {
		if st.IsDir() {
			return nil
		}
		return fmt.Errorf("the session's root has /%s, but not as a directory", name)
	}
	if err := os.Mkdir(path, mode); err != nil {
		return fmt.Errorf("making /%s in the session's root: %w", name, err)
	}
	return nil
}
