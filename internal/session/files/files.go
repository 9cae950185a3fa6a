package files

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/client"
)

// Errors the server maps to answers: ErrBadPath to 400, ErrTooLarge to
// 413, ErrNotRegular to 400. A missing file satisfies
// errors.Is(err, fs.ErrNotExist) (404).
var (
	// ErrBadPath: the request names something it may not: a relative path,
	// one under /proc, /sys or /dev, a symbolic link that leads out of the
	// session's root, a path on a kernel filesystem, a bad tar entry, or an
	// archive that cannot be read.
	ErrBadPath = errors.New("bad path")
	// ErrTooLarge: more bytes or entries than allowed.
	ErrTooLarge = errors.New("too large")
	// ErrNotRegular: Open was asked for something that is not a regular
	// file (a directory, a symbolic link, a named pipe, a device).
	ErrNotRegular = errors.New("not a regular file")
)

// maxEntries bounds a directory listing and an archive's entries. A
// variable so tests can lower it.
var maxEntries = 100_000

// dirFlags open a directory and nothing else: O_DIRECTORY makes the
// kernel refuse a named pipe or a device before opening it, so the open
// can neither block nor wake a driver.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NONBLOCK | unix.O_CLOEXEC

// hidden are the session's kernel filesystems, never served by name.
// (A symbolic link can still lead into them; checkFS refuses what is read
// or written there.)
var hidden = []string{"/proc", "/sys", "/dev"}

// sessionPath checks a path as the API receives it and returns it
// cleaned, and as a name inside the root ("." for "/").
func sessionPath(p string, rootOK bool) (clean, name string, err error) {
	switch {
	case p == "":
		return "", "", fmt.Errorf("empty path: %w", ErrBadPath)
	case strings.IndexByte(p, 0) >= 0:
		return "", "", fmt.Errorf("path %q contains a NUL byte: %w", p, ErrBadPath)
	case !strings.HasPrefix(p, "/"):
		return "", "", fmt.Errorf("path %q is not absolute: %w", p, ErrBadPath)
	}
	clean = path.Clean(p)
	if clean == "/" {
		if !rootOK {
			return "", "", fmt.Errorf("path %q is the root directory, which cannot be used here: %w", p, ErrBadPath)
		}
		return clean, ".", nil
	}
	for _, h := range hidden {
		if clean == h || strings.HasPrefix(clean, h+"/") {
			return "", "", fmt.Errorf("path %q is under %s, which is not served: %w", p, h, ErrBadPath)
		}
	}
	return clean, clean[1:], nil
}

// escapes is os.Root's (unexported) error for a path or symbolic link
// that leads out of the root: a ".." beyond the top is refused before any
// system call, so any Root will do to obtain it.
var escapes = sync.OnceValue(func() error {
	r, err := os.OpenRoot("/")
	if err != nil {
		return nil
	}
	defer r.Close()
	_, err = r.Lstat("..")
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return nil
})

// opErr turns an error met doing op on the session path p into a
// sentence for the user: the session's path (not a host one), and
// ErrBadPath for links that escape or loop.
func opErr(op, p string, err error) error {
	if errors.Is(err, ErrBadPath) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrNotRegular) {
		return fmt.Errorf("%s %s: %w", op, p, err)
	}
	if esc := escapes(); esc != nil && errors.Is(err, esc) {
		return fmt.Errorf("%s %s: a symbolic link leads out of the session's root: %w", op, p, ErrBadPath)
	}
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("%s %s: too many levels of symbolic links: %w", op, p, ErrBadPath)
	}
	if errors.Is(err, syscall.ENAMETOOLONG) {
		return fmt.Errorf("%s %s: name too long: %w", op, p, ErrBadPath)
	}
	if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		// A file where the path needs a directory, or the reverse: the
		// request's doing, whatever the system call that found it.
		var errno syscall.Errno
		errors.As(err, &errno)
		return fmt.Errorf("%s %s: %w: %w", op, p, errno, ErrBadPath)
	}
	// Keep the errno (it says "no such file or directory" and satisfies
	// fs.ErrNotExist) but not os.Root's root-relative or host names.
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		err = pe.Err
	case errors.As(err, &le):
		err = le.Err
	}
	return fmt.Errorf("%s %s: %w", op, p, err)
}

// Stat describes path without following it if it is a symbolic link.
func Stat(root *os.Root, p string) (client.FileInfo, error) {
	clean, name, err := sessionPath(p, true)
	if err != nil {
		return client.FileInfo{}, err
	}
	fi, err := root.Lstat(name)
	if err != nil {
		return client.FileInfo{}, opErr("stat", clean, err)
	}
	info := fileInfo(clean, fi.Mode(), fi.Size(), fi.ModTime())
	if fi.Mode()&fs.ModeSymlink != 0 {
		// The link may have changed since Lstat; the target is then left
		// out rather than guessed.
		if target, err := root.Readlink(name); err == nil {
			info.Target = target
		}
	}
	return info, nil
}

// fileInfo is what the API says of the file at p.
func fileInfo(p string, mode fs.FileMode, size int64, mtime time.Time) client.FileInfo {
	name := path.Base(p)
	typ := "other"
	switch {
	case mode.IsRegular():
		typ = "file"
	case mode.IsDir():
		typ = "dir"
	case mode&fs.ModeSymlink != 0:
		typ = "symlink"
	}
	return client.FileInfo{
		Name:    name,
		Path:    p,
		Type:    typ,
		Size:    size,
		Mode:    uint32(mode.Perm()),
		ModTime: mtime,
	}
}

// List describes the entries of the directory at path, sorted by name,
// each as Stat would. A symbolic link at path itself is followed (inside
// the root); the entries' links are not.
func List(root *os.Root, p string) (client.DirList, error) {
	clean, name, err := sessionPath(p, true)
	if err != nil {
		return client.DirList{}, err
	}
	d, err := root.OpenFile(name, dirFlags, 0)
	if err != nil {
		return client.DirList{}, opErr("list", clean, err)
	}
	defer d.Close()
	names, err := readNames(d)
	if err != nil {
		return client.DirList{}, opErr("list", clean, err)
	}
	list := client.DirList{Path: clean, Entries: make([]client.FileInfo, 0, len(names))}
	for _, n := range names {
		// Relative to the directory we hold, not its name: the session
		// may rename things while we list.
		st, err := statAt(d, n)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return client.DirList{}, opErr("list", path.Join(clean, n), err)
		}
		info := fileInfo(path.Join(clean, n), st.mode, st.size, st.mtime)
		if st.mode&fs.ModeSymlink != 0 {
			info.Target, _ = readlinkAt(d, n)
		}
		list.Entries = append(list.Entries, info)
	}
	return list, nil
}

// readNames reads a directory's names, sorted, refusing more than
// maxEntries (the session can make millions; we hold them all to sort).
func readNames(d *os.File) ([]string, error) {
	var names []string
	for {
		batch, err := d.Readdirnames(1024)
		names = append(names, batch...)
		if len(names) > maxEntries {
			return nil, fmt.Errorf("more than %d entries: %w", maxEntries, ErrTooLarge)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	slices.Sort(names)
	return names, nil
}

// Open opens the regular file at path for reading. A final symbolic link
// is not followed (ErrNotRegular), and nothing but a regular file is ever
// opened: no named pipe (it would block us), no device (opening one runs
// its driver, as root). The caller closes the file.
func Open(root *os.Root, p string) (*os.File, os.FileInfo, error) {
	clean, name, err := sessionPath(p, false)
	if err != nil {
		return nil, nil, err
	}
	d, err := openDir(root, path.Dir(name), false)
	if err != nil {
		return nil, nil, opErr("open", clean, err)
	}
	defer d.Close()
	f, err := openRegularAt(d, path.Base(name), clean)
	if err != nil {
		return nil, nil, opErr("open", clean, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, opErr("open", clean, err)
	}
	return f, fi, nil
}

// Write makes the file at path hold what r gives, at most max bytes, with
// the permission bits mode (0: 0644). Missing parents are made (0755).
// The bytes go to a new file beside the target that then replaces it in
// one rename, so a reader never sees half a file, a hard link the session
// made to the target is not written through, and a symbolic link at the
// target is replaced, not followed. Beyond max: ErrTooLarge and the target
// is untouched.
func Write(root *os.Root, p string, r io.Reader, mode os.FileMode, max int64) error {
	clean, name, err := sessionPath(p, false)
	if err != nil {
		return err
	}
	if mode&^fs.ModePerm != 0 {
		return fmt.Errorf("write %s: mode %#o: only permission bits (0777) are allowed: %w", clean, uint32(mode), ErrBadPath)
	}
	if mode == 0 {
		mode = 0o644
	}
	d, err := openDir(root, path.Dir(name), true)
	if err != nil {
		return opErr("write", clean, err)
	}
	defer d.Close()
	if err := replaceAt(d, path.Base(name), r, mode, max, time.Time{}); err != nil {
		return opErr("write", clean, err)
	}
	return nil
}

// replaceAt writes a file named base in the directory d through a
// temporary name and a rename: the steps are relative to d, which we
// hold, so nothing the session renames meanwhile can send them elsewhere.
// A non-zero mtime is set on the file.
func replaceAt(d *os.File, base string, r io.Reader, mode fs.FileMode, max int64, mtime time.Time) error {
	if st, err := statAt(d, base); err == nil && st.mode.IsDir() {
		return syscall.EISDIR
	}
	tmp, f, err := createTempAt(d)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			unix.Unlinkat(fdOf(d), tmp, 0)
		}
	}()
	n, err := io.Copy(f, io.LimitReader(r, plusOne(max)))
	if err != nil {
		return err
	}
	if n > max {
		return fmt.Errorf("more than %d bytes: %w", max, ErrTooLarge)
	}
	// fchmod, not the mode of the open: the server's umask must not
	// change what the caller asked for.
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if !mtime.IsZero() {
		if err := setTimes(f, mtime); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := unix.Renameat(fdOf(d), tmp, fdOf(d), base); err != nil {
		return err
	}
	done = true
	return nil
}

// createTempAt makes a new empty file with an unused name in d. O_EXCL
// and O_NOFOLLOW: never an existing file, never through a link.
func createTempAt(d *os.File) (string, *os.File, error) {
	for range 100 {
		name := fmt.Sprintf(".cordon-%016x.tmp", rand.Uint64())
		fd, err := unix.Openat(fdOf(d), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, syscall.EEXIST) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return name, os.NewFile(uintptr(fd), name), nil
	}
	return "", nil, fmt.Errorf("no unused temporary name: %w", syscall.EEXIST)
}

// openDir opens the directory name (relative to the root; "." for the
// root itself), making it and its missing parents (0755) if create.
//
// os.Root.MkdirAll and os.Root.OpenFile would do the resolving, but not
// the check this walk adds: each directory is opened and checked with
// checkFS before anything is made in it or opened from it, so no request
// ever makes a directory in a kernel filesystem (a cgroup, a tracing
// instance) that the session linked to. Symbolic links on the way are
// still resolved by os.Root, inside the root.
func openDir(root *os.Root, name string, create bool) (*os.File, error) {
	d, err := root.OpenFile(".", dirFlags, 0)
	if err != nil {
		return nil, err
	}
	if err := checkFS(d); err != nil {
		d.Close()
		return nil, err
	}
	if name == "." {
		return d, nil
	}
	parts := strings.Split(name, "/")
	for i := range parts {
		next, err := openDirStep(root, d, parts[:i+1], create)
		d.Close()
		if err != nil {
			return nil, err
		}
		d = next
		if err := checkFS(d); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// openDirStep opens the last of parts, a child of the directory d.
func openDirStep(root *os.Root, d *os.File, parts []string, create bool) (*os.File, error) {
	part := parts[len(parts)-1]
	made := false
	// Bounded: a session making and removing the directory as fast as we
	// can cannot keep us here.
	for try := 0; ; try++ {
		fd, err := unix.Openat(fdOf(d), part, dirFlags|unix.O_NOFOLLOW, 0)
		if err == nil {
			f := os.NewFile(uintptr(fd), part)
			if made {
				// mkdirat's mode went through the umask.
				if err := f.Chmod(0o755); err != nil {
					f.Close()
					return nil, err
				}
			}
			return f, nil
		}
		switch {
		case errors.Is(err, syscall.ENOENT) && create && try < 3:
			err := unix.Mkdirat(fdOf(d), part, 0o755)
			if err != nil && !errors.Is(err, syscall.EEXIST) {
				return nil, err
			}
			made = made || err == nil
			continue
		case errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP):
			if _, lerr := readlinkAt(d, part); lerr == nil {
				// A symbolic link: os.Root follows it, and refuses it if
				// it leads out of the root.
				return root.OpenFile(strings.Join(parts, "/"), dirFlags, 0)
			}
		}
		return nil, err
	}
}

// readlinkAt reads the symbolic link name in d.
func readlinkAt(d *os.File, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fdOf(d), name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size >= 1<<16 {
			return "", syscall.ENAMETOOLONG
		}
	}
}

// fdOf is f's descriptor; f must stay open (and referenced) while it is
// used, which every caller does by closing f afterwards.
func fdOf(f *os.File) int { return int(f.Fd()) }
