package files

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// maxDepth bounds how deep WriteTar descends (it holds one open
	// directory per level) and how deep an entry of ExtractTar may be (each
	// is reached by a walk from the root, a system call or three a level).
	maxDepth = 256
	// maxNameBytes bounds the names (and link targets) of one archive in
	// total: ExtractTar keeps them all to check the archive whole before
	// writing anything.
	maxNameBytes = 64 << 20
	// Linux's PATH_MAX and NAME_MAX: longer names could never be made.
	maxPath = 4096
	maxName = 255
)

// WriteTar writes a tar of the contents of the directory at dir to w,
// names relative to dir. Regular files, directories and symbolic links
// (as links, never followed) are archived; named pipes, sockets and
// devices are left out, and so are directories on a kernel filesystem
// (and /proc, /sys and /dev when dir is "/"). A hard link is archived as
// a copy. A symbolic link at dir itself is followed, inside the root.
//
// The walk goes from each open directory to its entries by their names in
// it (openat, fstatat), never by a path from the top, so the session
// renaming things while we walk cannot lead the walk anywhere else.
func WriteTar(root *os.Root, dir string, w io.Writer) error {
	clean, name, err := sessionPath(dir, true)
	if err != nil {
		return err
	}
	d, err := root.OpenFile(name, dirFlags, 0)
	if err != nil {
		return opErr("archive", clean, err)
	}
	defer d.Close()
	if err := checkFS(d); err != nil {
		return opErr("archive", clean, err)
	}
	a := &archiver{tw: tar.NewWriter(w), top: name == "."}
	if err := a.dir(d, "", 0); err != nil {
		return opErr("archive", clean, err)
	}
	return a.tw.Close()
}

type archiver struct {
	tw  *tar.Writer
	top bool // the archive is of "/": leave out /proc, /sys and /dev
}

// dir archives the entries of d, whose name in the archive is prefix.
// Names are read in batches and not sorted: holding a whole directory's
// names at every level of a deep tree could hold a great many.
func (a *archiver) dir(d *os.File, prefix string, depth int) error {
	if depth >= maxDepth {
		return fmt.Errorf("%s is more than %d directories deep: %w", prefix, maxDepth, ErrTooLarge)
	}
	for {
		names, err := d.Readdirnames(1024)
		for _, n := range names {
			if a.top && depth == 0 && (n == "proc" || n == "sys" || n == "dev") {
				continue
			}
			if err := a.entry(d, prefix, n, depth); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading directory %q: %w", prefix, err)
		}
	}
}

// entry archives the entry n of d. An entry that vanishes or changes type
// while we look is left out.
func (a *archiver) entry(d *os.File, prefix, n string, depth int) error {
	name := prefix + n
	st, err := statAt(d, n)
	if gone(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	hdr := &tar.Header{Name: name, Mode: int64(st.mode.Perm()), ModTime: st.mtime}
	switch {
	case st.mode.IsDir():
		fd, err := unix.Openat(fdOf(d), n, dirFlags|unix.O_NOFOLLOW, 0)
		if gone(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		sub := os.NewFile(uintptr(fd), name)
		defer sub.Close()
		if checkFS(sub) != nil {
			return nil // a kernel filesystem mounted here
		}
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		if err := a.tw.WriteHeader(hdr); err != nil {
			return err
		}
		return a.dir(sub, name+"/", depth+1)
	case st.mode&fs.ModeSymlink != 0:
		target, err := readlinkAt(d, n)
		if gone(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
		return a.tw.WriteHeader(hdr)
	case st.mode.IsRegular():
		f, err := openRegularAt(d, n, name)
		if gone(err) || errors.Is(err, ErrNotRegular) || errors.Is(err, ErrBadPath) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		hdr.Typeflag = tar.TypeReg
		hdr.Size = fi.Size()
		hdr.Mode = int64(fi.Mode().Perm())
		hdr.ModTime = fi.ModTime()
		if err := a.tw.WriteHeader(hdr); err != nil {
			return err
		}
		// The session may grow or shrink the file while we read it: the
		// header's size is what goes out, cut or padded with zeros, so the
		// archive stays well formed.
		copied, err := io.CopyN(a.tw, f, hdr.Size)
		if errors.Is(err, io.EOF) {
			_, err = io.CopyN(a.tw, zeros{}, hdr.Size-copied)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	default:
		return nil
	}
}

// gone reports an error that means the entry changed under us.
func gone(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// ExtractTar extracts the tar read from r into the directory at dir
// (made, with its parents, if missing), all or nothing: the archive is
// first copied whole to an unlinked temporary file in the host directory
// spool (more than max bytes: ErrTooLarge), every entry is checked, and
// only when all pass is anything written.
//
// Refused (ErrBadPath, the error names the entry): absolute names, names
// that leave dir, names with NUL or more than 256 directories deep, hard
// links, devices, named pipes, old GNU sparse and unknown entry types,
// symbolic links whose target is absolute or leads out of dir (counting
// ".." through links the archive makes as leading anywhere), entries
// under a file or link the archive makes, a directory replacing a
// non-directory or the reverse (in the archive, or in what is already
// there), an archive that cannot be read; ErrTooLarge: file sizes summing
// over max (a PAX sparse file counts at its full size), more than
// 100,000 entries. Files get the header's permission bits (no setuid,
// setgid or sticky; 0 means 0644), directories too (0 means 0755; missing
// parents 0755), and the header's modification times.
// Entries replace what is at their names (files and links through a
// rename, never written through); links already in the session are
// followed, inside the root.
//
// What is checked is the archive against the tree as it is; the session
// can still race the second pass (or the disk can fill), which then stops
// with part of the archive written.
func ExtractTar(root *os.Root, dir string, r io.Reader, max int64, spool string) error {
	clean, name, err := sessionPath(dir, false)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(spool, ".cordon-archive-*")
	if err != nil {
		return fmt.Errorf("extract %s: spooling the archive: %w", clean, err)
	}
	// Unlinked at once: the bytes live while we hold the file, and nothing
	// is left behind whatever happens to the server.
	os.Remove(f.Name())
	defer f.Close()
	if max < 0 {
		max = 0
	}
	n, err := io.Copy(f, io.LimitReader(r, plusOne(max)))
	if err != nil {
		return fmt.Errorf("extract %s: reading the archive: %w", clean, err)
	}
	if n > max {
		return fmt.Errorf("extract %s: the archive is larger than %d bytes: %w", clean, max, ErrTooLarge)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	p, err := readPlan(f, max)
	if err != nil {
		return fmt.Errorf("extract %s: %w", clean, err)
	}
	if err := p.checkTree(root, name); err != nil {
		return fmt.Errorf("extract %s: %w", clean, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := extract(root, name, f); err != nil {
		return fmt.Errorf("extract %s: %w", clean, err)
	}
	return nil
}

func plusOne(n int64) int64 {
	if n < math.MaxInt64 {
		return n + 1
	}
	return n
}

// kind is what an archive makes at a name.
type kind uint8

const (
	kindDir kind = iota + 1
	kindFile
	kindLink
)

// plan is what the first pass learnt of an archive.
type plan struct {
	kinds     map[string]kind // every name made, explicit or a parent; "." is dir
	links     []link
	size      int64
	nameBytes int
}

type link struct{ name, target string }

// readPlan reads and checks every header of the archive.
func readPlan(r io.Reader, max int64) (*plan, error) {
	p := &plan{kinds: map[string]kind{".": kindDir}}
	tr := tar.NewReader(r)
	for count := 0; ; count++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the archive: %v: %w", err, ErrBadPath)
		}
		if count >= maxEntries {
			return nil, fmt.Errorf("the archive has more than %d entries: %w", maxEntries, ErrTooLarge)
		}
		if err := p.add(hdr, max); err != nil {
			return nil, fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
	}
	// Links last: a link may lead through a link made later in the archive.
	for _, l := range p.links {
		if err := p.checkLink(l); err != nil {
			return nil, fmt.Errorf("tar entry %q: %w", l.name, err)
		}
	}
	return p, nil
}

// entryName checks an entry's name and returns it cleaned.
func entryName(raw string) (string, error) {
	switch {
	case raw == "":
		return "", fmt.Errorf("empty name: %w", ErrBadPath)
	case strings.IndexByte(raw, 0) >= 0:
		return "", fmt.Errorf("the name contains a NUL byte: %w", ErrBadPath)
	case strings.HasPrefix(raw, "/"):
		return "", fmt.Errorf("absolute names are not accepted: %w", ErrBadPath)
	case len(raw) > maxPath:
		return "", fmt.Errorf("the name is longer than %d bytes: %w", maxPath, ErrBadPath)
	}
	name := path.Clean(raw)
	if name == ".." || strings.HasPrefix(name, "../") {
		return "", fmt.Errorf("the name leads out of the directory: %w", ErrBadPath)
	}
	depth := 0
	for c := range strings.SplitSeq(name, "/") {
		if len(c) > maxName {
			return "", fmt.Errorf("a part of the name is longer than %d bytes: %w", maxName, ErrBadPath)
		}
		depth++
	}
	if depth > maxDepth {
		return "", fmt.Errorf("the name is more than %d directories deep: %w", maxDepth, ErrBadPath)
	}
	return name, nil
}

// add checks one header against the rules and what the archive made
// before it.
func (p *plan) add(hdr *tar.Header, max int64) error {
	name, err := entryName(hdr.Name)
	if err != nil {
		return err
	}
	var k kind
	switch hdr.Typeflag {
	case tar.TypeReg:
		k = kindFile
		if hdr.Size < 0 || hdr.Size > max-p.size {
			return fmt.Errorf("the files sum to more than %d bytes: %w", max, ErrTooLarge)
		}
		p.size += hdr.Size
	case tar.TypeDir:
		k = kindDir
	case tar.TypeSymlink:
		k = kindLink
		t := hdr.Linkname
		switch {
		case t == "":
			return fmt.Errorf("symbolic link with an empty target: %w", ErrBadPath)
		case strings.IndexByte(t, 0) >= 0:
			return fmt.Errorf("the link target contains a NUL byte: %w", ErrBadPath)
		case strings.HasPrefix(t, "/"):
			return fmt.Errorf("symbolic link to the absolute path %q: %w", t, ErrBadPath)
		case len(t) > maxPath:
			return fmt.Errorf("the link target is longer than %d bytes: %w", maxPath, ErrBadPath)
		}
		p.links = append(p.links, link{name, t})
	case tar.TypeLink:
		return fmt.Errorf("hard links are not accepted: %w", ErrBadPath)
	case tar.TypeChar, tar.TypeBlock:
		return fmt.Errorf("device files are not accepted: %w", ErrBadPath)
	case tar.TypeFifo:
		return fmt.Errorf("named pipes are not accepted: %w", ErrBadPath)
	case tar.TypeGNUSparse:
		return fmt.Errorf("sparse files are not accepted: %w", ErrBadPath)
	default:
		return fmt.Errorf("entries of type %q are not accepted: %w", hdr.Typeflag, ErrBadPath)
	}
	p.nameBytes += len(name) + len(hdr.Linkname)
	if p.nameBytes > maxNameBytes {
		return fmt.Errorf("the archive's names sum to more than %d bytes: %w", maxNameBytes, ErrTooLarge)
	}

	// Its parents are directories: made by the archive, or to be made.
	// Deepest first, stopping at one already known, so each name is
	// looked at once however deep the archive goes.
parents:
	for par := path.Dir(name); par != "."; par = path.Dir(par) {
		switch p.kinds[par] {
		case kindDir:
			break parents
		case kindFile:
			return fmt.Errorf("%q is a file in this archive: %w", par, ErrBadPath)
		case kindLink:
			return fmt.Errorf("%q is a symbolic link in this archive, which entries may not go through: %w", par, ErrBadPath)
		default:
			p.kinds[par] = kindDir
		}
	}
	if old, ok := p.kinds[name]; ok && (old == kindDir) != (k == kindDir) {
		if old == kindDir {
			return fmt.Errorf("it would replace a directory of this archive with a non-directory: %w", ErrBadPath)
		}
		return fmt.Errorf("it would replace a non-directory of this archive with a directory: %w", ErrBadPath)
	}
	p.kinds[name] = k
	if len(p.kinds) > 2*maxEntries {
		return fmt.Errorf("the archive makes more than %d files and directories: %w", 2*maxEntries, ErrTooLarge)
	}
	return nil
}

// checkLink refuses a link whose target leads out of the directory the
// archive is extracted into. The target is followed a part at a time
// from the link's own directory; ".." after a link this archive makes
// would go wherever that link leads, so going through one is refused
// too. (Links already in the session are not consulted: they are the
// session's, and the root bounds them all the same.)
func (p *plan) checkLink(l link) error {
	var at []string
	if dir := path.Dir(l.name); dir != "." {
		at = strings.Split(dir, "/")
	}
	parts := strings.Split(l.target, "/")
	for i, part := range parts {
		switch part {
		case "", ".":
			continue
		case "..":
			if len(at) == 0 {
				return fmt.Errorf("symbolic link to %q, which leads out of the directory: %w", l.target, ErrBadPath)
			}
			at = at[:len(at)-1]
		default:
			at = append(at, part)
			if i < len(parts)-1 && p.kinds[strings.Join(at, "/")] == kindLink {
				return fmt.Errorf("symbolic link to %q, which goes through another link of this archive: %w", l.target, ErrBadPath)
			}
		}
	}
	return nil
}

// checkTree checks the archive against what is at its names now: a
// directory where the archive puts a file or link, or a non-directory
// where it needs a directory, would stop the second pass half done.
func (p *plan) checkTree(root *os.Root, dir string) error {
	fi, err := root.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // made by the second pass, with all in it
	}
	if err != nil {
		return opErr("directory", "/"+dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a directory: %w", "/"+dir, ErrBadPath)
	}
	names := make([]string, 0, len(p.kinds))
	for n := range p.kinds {
		if n != "." {
			names = append(names, n)
		}
	}
	// Sorted, a directory comes before what is in it.
	slices.Sort(names)
	missing := map[string]bool{}
	for _, n := range names {
		if missing[path.Dir(n)] {
			missing[n] = true
			continue
		}
		full := path.Join(dir, n)
		fi, err := root.Lstat(full)
		if errors.Is(err, fs.ErrNotExist) {
			missing[n] = true
			continue
		}
		if err != nil {
			return opErr("tar entry", strconv.Quote(n), err)
		}
		isDir := fi.IsDir()
		want := p.kinds[n]
		if fi.Mode()&fs.ModeSymlink != 0 && want == kindDir {
			// The session's own link to a directory: followed, inside
			// the root.
			fi, err := root.Stat(full)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return opErr("tar entry", strconv.Quote(n), err)
			}
			isDir = err == nil && fi.IsDir()
		}
		switch {
		case want == kindDir && !isDir:
			return fmt.Errorf("tar entry %q: %s exists and is not a directory: %w", n, "/"+full, ErrBadPath)
		case want != kindDir && isDir:
			return fmt.Errorf("tar entry %q: %s exists and is a directory: %w", n, "/"+full, ErrBadPath)
		}
	}
	return nil
}

// extract is the second pass: it writes the checked archive.
func extract(root *os.Root, dir string, r io.Reader) error {
	top, err := openDir(root, dir, true)
	if err != nil {
		return opErr("directory", "/"+dir, err)
	}
	top.Close()
	dirs := map[string]dirMeta{}
	var parent parentCache
	defer parent.close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the archive: %v: %w", err, ErrBadPath)
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return fmt.Errorf("tar entry %q: %w", hdr.Name, err) // checked already: cannot happen
		}
		if err := extractEntry(root, &parent, path.Join(dir, name), hdr, tr); err != nil {
			return opErr("tar entry", strconv.Quote(hdr.Name), err)
		}
		if hdr.Typeflag == tar.TypeDir {
			mode := fs.FileMode(hdr.Mode) & fs.ModePerm
			if mode == 0 {
				mode = 0o755
			}
			dirs[name] = dirMeta{mode, hdr.ModTime}
		}
	}
	// Directories' modes and times come last, deepest first: making their
	// entries changed their times, and a mode without write permission
	// would have stopped us (when not root).
	names := slices.Sorted(maps.Keys(dirs))
	slices.Reverse(names)
	for _, name := range names {
		m := dirs[name]
		d, err := openDir(root, path.Join(dir, name), false)
		if err != nil {
			return opErr("tar entry", strconv.Quote(name), err)
		}
		err = d.Chmod(m.mode)
		if err == nil && !m.mtime.IsZero() {
			err = setTimes(d, m.mtime)
		}
		d.Close()
		if err != nil {
			return opErr("tar entry", strconv.Quote(name), err)
		}
	}
	return nil
}

type dirMeta struct {
	mode  fs.FileMode
	mtime time.Time
}

// parentCache holds the directory the last file or link went into: an
// archive lists a directory's files together, and walking to it again
// from the root for each would cost its depth in system calls each time.
type parentCache struct {
	name string
	d    *os.File
}

func (c *parentCache) open(root *os.Root, name string) (*os.File, error) {
	if c.d != nil && c.name == name {
		return c.d, nil
	}
	c.close()
	d, err := openDir(root, name, true)
	if err != nil {
		return nil, err
	}
	c.name, c.d = name, d
	return d, nil
}

func (c *parentCache) close() {
	if c.d != nil {
		c.d.Close()
		c.d = nil
	}
}

// extractEntry writes one entry at full (a name in the root).
func extractEntry(root *os.Root, parent *parentCache, full string, hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeDir {
		d, err := openDir(root, full, true)
		if err != nil {
			return err
		}
		return d.Close()
	}
	d, err := parent.open(root, path.Dir(full))
	if err != nil {
		return err
	}
	base := path.Base(full)
	if hdr.Typeflag == tar.TypeSymlink {
		return symlinkAt(d, base, hdr.Linkname, hdr.ModTime)
	}
	mode := fs.FileMode(hdr.Mode) & fs.ModePerm
	if mode == 0 {
		mode = 0o644
	}
	return replaceAt(d, base, r, mode, hdr.Size, hdr.ModTime)
}

// symlinkAt makes (or replaces) the symbolic link base in d, through a
// temporary name and a rename like replaceAt.
func symlinkAt(d *os.File, base, target string, mtime time.Time) error {
	if st, err := statAt(d, base); err == nil && st.mode.IsDir() {
		return syscall.EISDIR
	}
	for range 100 {
		tmp := fmt.Sprintf(".cordon-%016x.tmp", rand.Uint64())
		err := unix.Symlinkat(target, fdOf(d), tmp)
		if errors.Is(err, syscall.EEXIST) {
			continue
		}
		if err != nil {
			return err
		}
		if !mtime.IsZero() {
			err = setTimesAt(d, tmp, mtime)
		}
		if err == nil {
			err = unix.Renameat(fdOf(d), tmp, fdOf(d), base)
		}
		if err != nil {
			unix.Unlinkat(fdOf(d), tmp, 0)
		}
		return err
	}
	return fmt.Errorf("no unused temporary name: %w", syscall.EEXIST)
}
