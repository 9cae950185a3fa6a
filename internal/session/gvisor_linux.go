package session

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/policy"
	"github.com/cordon-sandbox/cordon/internal/sandbox"
)

// The gvisor runtime runs each box as one runsc sandbox: the session's
// processes talk to gVisor's kernel (the Sentry), not to the host's.
//
// What a box is made of, and why:
//
//   - A network namespace of its own with only lo, made by the server on a
//     locked thread. The gateway's sockets (127.0.0.1:3128 and :1080) are
//     bound there before the sandbox starts, and runsc runs with
//     --network=host inside it: gVisor hands the session's socket calls to
//     that namespace, so 127.0.0.1:3128 inside is the gateway and there is
//     no other way out. (--network=sandbox would give the session gVisor's
//     own loopback, where the gateway is not.)
//   - A root built in a mount namespace of its own, made on the same
//     thread: a tmpfs holding a read-only bind of each top-level directory
//     of the base (the host's for "host", with HostHidden left empty, the
//     masks and the server's state directory mounted over), and empty
//     mount points for /workspace, /tmp, /proc, /dev and /sys. runsc is
//     started from that thread, so its gofer sees this root, and the
//     server's mount table gets none of it. Two runsc behaviours force
//     this: with root.path "/" its bind mounts are not seen inside
//     (google/gvisor#14470), and the gofer makes a missing mount point on
//     the base itself (google/gvisor#12327), which for "host" would be the
//     host's root.
//   - --overlay2=root:memory: the root is writable, the writes held in the
//     sandbox's memory and thrown away with it.
//   - /workspace: a tmpfs of DiskBytes mounted on the server at
//     <Dir>/files/workspace (the box's only mounts in the server's mount
//     table, undone by Destroy and Sweep), bound in, gofer-mediated, with
//     --file-access-mounts=shared so that the server's writes are seen.
//     <Dir>/files is a small read-only tmpfs holding only that mount
//     point: Root() opens it, so the files API reaches /workspace and
//     nothing else of a gvisor session (other paths do not exist there,
//     and cannot be made: read-only). The rest of the root is in the
//     Sentry's memory, which the host cannot read.
//   - /tmp: a tmpfs of gVisor's, of DiskBytes.
//   - Limits: a cgroup made by runsc (cgroupsPath relative, so a child of
//     the server's own cgroup in each hierarchy: runsc makes no parent
//     directory it would leave behind, and removes exactly the leaf); the
//     pids limit is also RLIMIT_NPROC inside, where gVisor enforces it
//     with EAGAIN: the host's pids.max counts the Sentry's own threads, so
//     there it is only a backstop with headroom.
//   - Init: /bin/sh running cat on a pipe whose other end the server
//     holds. When the server goes, cat reads EOF, init exits and gVisor
//     ends the sandbox, as a native session ends with its server; while it
//     waits for cat, sh reaps the orphans reparented to it.
//
// Each exec is one `runsc exec` child with the process given as JSON on a
// pipe (--process /proc/self/fd/4), its stdio passed by descriptor
// (--pass-fd), and its pid in the box read from a pipe
// (--internal-pid-file /proc/self/fd/3): the pid arrives once the process
// has started, or EOF if it did not, and runsc's own messages stay apart
// from the process's output.

// gvisorInitScript is the box's init: it ends when the server's end of
// the pipe on fd 3 closes (see Create).
const gvisorInitScript = "cat <&3 >/dev/null"

type gvisor struct {
	runsc string

	mu      sync.Mutex
	checked gvisorCheck
}

// gvisorCheck remembers that a runsc binary answered --version, so that
// Available (asked on every health check) runs it once per binary.
type gvisorCheck struct {
	path  string
	size  int64
	mtime time.Time
}

// NewGVisor is the gvisor runtime, with runsc at the given path (or found
// in PATH if it has no slash).
func NewGVisor(runsc string) Runtime { return &gvisor{runsc: runsc} }

func (g *gvisor) Name() string { return "gvisor" }

// binary finds runsc.
func (g *gvisor) binary() (string, error) {
	if g.runsc == "" {
		return "", errors.New("no runsc given (--runtime-gvisor-runsc)")
	}
	if !strings.Contains(g.runsc, "/") {
		p, err := exec.LookPath(g.runsc)
		if err != nil {
			return "", fmt.Errorf("runsc %q is not in PATH: install it with `CGO_ENABLED=0 go install gvisor.dev/gvisor/runsc@latest`", g.runsc)
		}
		return p, nil
	}
	return g.runsc, nil
}

func (g *gvisor) Available() error {
	path, err := g.binary()
	if err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("runsc: %w", err)
	}
	if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("runsc at %s is not an executable file", path)
	}
	if os.Geteuid() != 0 {
		return errors.New("gvisor sessions need cordon serve to run as root: runsc's rootless mode cannot put a session in a network namespace of its own with the gateway in it")
	}
	check := gvisorCheck{path: path, size: st.Size(), mtime: st.ModTime()}
	g.mu.Lock()
	ok := g.checked == check
	g.mu.Unlock()
	if ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	if err != nil || !bytes.HasPrefix(out, []byte("runsc version")) {
		return fmt.Errorf("%s --version does not answer as runsc (%v): %s", path, err, firstLine(out))
	}
	g.mu.Lock()
	g.checked = check
	g.mu.Unlock()
	return nil
}

// gvisorBox is one runsc sandbox, with the id of its one container: the
// session's id.
type gvisorBox struct {
	runsc string
	id    string
	dir   string
	flags []string // runsc's global flags, the same for every command

	files     string // the tmpfs Root() opens; its workspace child is /workspace
	mounts    []string
	listeners []net.Listener
	initW     *os.File // the server's end of init's pipe

	pid     int // the sandbox process on the host
	pidfd   *os.File
	cgroups []string // the leaves runsc made, to check they are gone
	memory  string   // the memory cgroup's usage file

	done    chan struct{}
	execs   sync.WaitGroup // runsc exec children not yet reaped
	mu      sync.Mutex
	dead    bool // the sandbox process has exited
	closing bool // teardown has begun: no more execs
	destroy sync.Once
	err     error
}

func (g *gvisor) Create(ctx context.Context, spec Spec) (box Box, err error) {
	if err := g.Available(); err != nil {
		return nil, err
	}
	runsc, _ := g.binary()
	if spec.Base != "host" && !filepath.IsAbs(spec.Base) {
		return nil, fmt.Errorf("base %q: want \"host\" or an absolute directory", spec.Base)
	}
	base := spec.Base
	if base == "host" {
		base = "/"
	}
	if err := checkBase(base); err != nil {
		return nil, err
	}
	b := &gvisorBox{
		runsc: runsc,
		id:    spec.ID,
		dir:   spec.Dir,
		files: filepath.Join(spec.Dir, "files"),
		done:  make(chan struct{}),
	}
	overlay := "root:memory"
	if spec.DiskBytes > 0 {
		overlay += ",size=" + strconv.FormatInt(spec.DiskBytes, 10)
	}
	b.flags = []string{
		"--root=" + filepath.Join(spec.Dir, "runsc-state"),
		"--network=host",
		"--overlay2=" + overlay,
		// The gofer needs no network; "new" makes it an empty namespace
		// without pinning one under --root (the default, "null", would
		// leave a mount there).
		"--gofer-network-namespace=new",
		// The server writes /workspace behind the sandbox's back.
		"--file-access-mounts=shared",
	}
	defer func() {
		if err != nil {
			b.teardown()
		}
	}()
	for _, d := range []string{"bundle", "runsc-state", "rootfs", "files"} {
		if err := os.Mkdir(filepath.Join(spec.Dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("making the session's %s directory: %w", d, err)
		}
	}
	if err := os.WriteFile(filepath.Join(spec.Dir, "empty"), nil, 0o444); err != nil {
		return nil, fmt.Errorf("making the mask file: %w", err)
	}
	if err := b.mountFiles(spec.DiskBytes); err != nil {
		return nil, err
	}
	cfg, missing := ociConfig(spec, b.files)
	lay := layout{
		base:    base,
		rootfs:  filepath.Join(spec.Dir, "rootfs"),
		empty:   filepath.Join(spec.Dir, "empty"),
		missing: missing,
	}
	if spec.Base == "host" {
		lay.hide = HostHidden
		lay.masks = hostMasks(spec.Policy.Masks)
		// Every session's /workspace is a mount under the state
		// directory, which the host's root would show.
		lay.state = stateDirOf(spec.Dir)
	}
	initR, initW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("making init's pipe: %w", err)
	}
	defer initR.Close()
	b.initW = initW

	start := time.Now()
	ls, err := b.start(spec, cfg, &lay, initR)
	if err != nil {
		return nil, err
	}
	b.listeners = ls
	initR.Close()
	if err := b.watch(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.findCgroups()
	if spec.Log != nil {
		spec.Log("gvisor sandbox %d started in %v", b.pid, time.Since(start).Round(time.Millisecond))
	}
	for i, port := range spec.Listen {
		if spec.Serve == nil {
			ls[i].Close()
			continue
		}
		spec.Serve(port, ls[i])
	}
	b.listeners = nil // the gateway's now
	return b, nil
}

// checkBase refuses a base without /bin/sh or cat, which the box's init
// needs (looked up inside the base, symbolic links resolved there).
func checkBase(base string) error {
	r, err := os.OpenRoot(base)
	if err != nil {
		return fmt.Errorf("opening the base %s: %w", base, err)
	}
	defer r.Close()
	if _, err := r.Stat("bin/sh"); err != nil {
		return fmt.Errorf("the base %s has no /bin/sh, which a gvisor session's init needs", base)
	}
	for _, p := range []string{"usr/bin/cat", "bin/cat"} {
		if _, err := r.Stat(p); err == nil {
			return nil
		}
	}
	return fmt.Errorf("the base %s has no cat in /bin or /usr/bin, which a gvisor session's init needs", base)
}

// stateDirOf is the server's state directory, given a session's directory
// <state>/sessions/<id>; or the session's parent if it is laid out
// otherwise.
func stateDirOf(dir string) string {
	parent := filepath.Dir(filepath.Clean(dir))
	if filepath.Base(parent) == "sessions" {
		return filepath.Dir(parent)
	}
	return parent
}

// mountFiles mounts the tmpfs the server reaches the session's files
// through: <Dir>/files, read-only and nearly empty, with the workspace
// tmpfs of diskBytes on its one directory.
func (b *gvisorBox) mountFiles(diskBytes int64) error {
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
	if err := unix.Mount("tmpfs", b.files, "tmpfs", flags, "mode=0755,size=64k,nr_inodes=8"); err != nil {
		return fmt.Errorf("mounting %s: %w", b.files, err)
	}
	b.mounts = append(b.mounts, b.files)
	ws := filepath.Join(b.files, "workspace")
	if err := os.Mkdir(ws, 0o755); err != nil {
		return fmt.Errorf("making %s: %w", ws, err)
	}
	if err := unix.Mount("", b.files, "", flags|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("making %s read-only: %w", b.files, err)
	}
	opts := "mode=0755"
	if diskBytes > 0 {
		opts += ",size=" + strconv.FormatInt(diskBytes, 10)
	}
	if err := unix.Mount("tmpfs", ws, "tmpfs", flags, opts); err != nil {
		return fmt.Errorf("mounting the workspace at %s: %w", ws, err)
	}
	b.mounts = append(b.mounts, ws)
	return nil
}

// layout is the root to build in the sandbox's mount namespace.
type layout struct {
	base    string            // "/" for the host
	rootfs  string            // the tmpfs to build it in
	empty   string            // an empty file on the server, bound over masked files
	hide    []string          // HostHidden: left empty
	masks   []policy.Entry    // the policy's
	state   string            // the server's state directory: hidden
	missing func(path string) // a masked directory not in the base: gVisor makes it
}

// start makes the sandbox's network and mount namespaces on a locked
// thread, builds the root and the gateway's listeners there, and starts
// runsc from that thread so that the sandbox lives in them. The thread is
// never unlocked once its namespaces are not the server's: it ends with
// its goroutine, and the namespaces with the last process in them.
func (b *gvisorBox) start(spec Spec, cfg *ociSpec, lay *layout, initR *os.File) ([]net.Listener, error) {
	type result struct {
		ls  []net.Listener
		err error
	}
	work := func(ch chan<- result) {
		runtime.LockOSThread()
		ls, err := b.startLocked(spec, cfg, lay, initR)
		ch <- result{ls, err}
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			work(ch)
			return
		}
		// The main thread, which Go never ends: its namespaces would
		// stay, and be the process's (/proc/self). Hold it while
		// another thread does the work.
		inner := make(chan result, 1)
		go work(inner)
		r := <-inner
		runtime.UnlockOSThread()
		ch <- r
	}()
	r := <-ch
	return r.ls, r.err
}

func (b *gvisorBox) startLocked(spec Spec, cfg *ociSpec, lay *layout, initR *os.File) (ls []net.Listener, err error) {
	defer func() {
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			ls = nil
		}
	}()
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("making the session's namespaces: %w", err)
	}
	// A slave: nothing mounted here reaches the server's mount table; on
	// a host whose mounts are shared, what the host unmounts goes from
	// here too, so a session does not pin a filesystem the host lets go.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return nil, fmt.Errorf("making the session's mounts its own: %w", err)
	}
	// The copies of the other sessions' workspaces would keep their
	// memory for as long as this sandbox lives.
	if err := detachBelow(filepath.Dir(b.dir), b.dir); err != nil {
		return nil, err
	}
	if err := lay.build(); err != nil {
		return nil, err
	}
	if err := sandbox.LoopbackUp(); err != nil {
		return nil, fmt.Errorf("bringing up lo: %w", err)
	}
	for _, port := range spec.Listen {
		l, err := listenLoopback(port)
		if err != nil {
			return ls, err
		}
		ls = append(ls, l)
	}
	// The config is written after the layout is built: masked
	// directories missing from the base became mounts of gVisor's.
	data, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return ls, fmt.Errorf("encoding the sandbox's config: %w", err)
	}
	bundle := filepath.Join(b.dir, "bundle")
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600); err != nil {
		return ls, fmt.Errorf("writing the sandbox's config: %w", err)
	}
	pidFile := filepath.Join(b.dir, "sandbox.pid")
	// runsc's stderr is a file: the sandbox keeps the descriptor of run's
	// stdio for the life of the container, so a pipe would never end.
	logPath := filepath.Join(b.dir, "runsc.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return ls, fmt.Errorf("opening %s: %w", logPath, err)
	}
	defer logf.Close()
	// Not killed when ctx ends: runsc killed half-way could leave a
	// sandbox it has not recorded; Create checks ctx once it is done.
	runCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append(slices.Clone(b.flags), "run", "--detach", "--bundle="+bundle, "--pid-file="+pidFile, "--pass-fd=3:3", b.id)
	cmd := exec.CommandContext(runCtx, b.runsc, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{initR}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Run(); err != nil {
		out, _ := os.ReadFile(logPath)
		return ls, fmt.Errorf("starting the gvisor sandbox: %v: %s", err, lastLines(out))
	}
	pb, err := os.ReadFile(pidFile)
	if err != nil {
		return ls, fmt.Errorf("reading the sandbox's pid: %w", err)
	}
	b.pid, err = strconv.Atoi(strings.TrimSpace(string(pb)))
	if err != nil || b.pid <= 0 {
		return ls, fmt.Errorf("runsc wrote %q as the sandbox's pid", pb)
	}
	return ls, nil
}

// detachBelow detaches, in the calling thread's mount namespace, every
// mount below dir but those below keep.
func detachBelow(dir, keep string) error {
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		pt := unescapeMount(fields[4])
		if strings.HasPrefix(pt, dir+"/") && pt != keep && !strings.HasPrefix(pt, keep+"/") {
			points = append(points, pt)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	// Deepest first; a parent detached first takes its children along.
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, pt := range points {
		if err := unix.Unmount(pt, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("detaching %s from the session's mounts: %w", pt, err)
		}
	}
	return nil
}

// build makes the root: see the comment at the top of this file.
func (lay *layout) build() error {
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
	if err := unix.Mount("tmpfs", lay.rootfs, "tmpfs", flags, "mode=0755,size=1m"); err != nil {
		return fmt.Errorf("mounting the session's root: %w", err)
	}
	ents, err := os.ReadDir(lay.base)
	if err != nil {
		return fmt.Errorf("listing the base %s: %w", lay.base, err)
	}
	for _, e := range ents {
		name := e.Name()
		src := filepath.Join(lay.base, name)
		at := filepath.Join(lay.rootfs, name)
		switch {
		case e.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err != nil {
				return fmt.Errorf("reading %s: %w", src, err)
			}
			if err := os.Symlink(target, at); err != nil {
				return fmt.Errorf("linking %s: %w", at, err)
			}
		case e.IsDir():
			if err := os.Mkdir(at, 0o755); err != nil {
				return fmt.Errorf("making %s: %w", at, err)
			}
			// gVisor makes its own; the hidden ones stay empty.
			if name == "proc" || name == "sys" || name == "dev" || slices.Contains(lay.hide, "/"+name) {
				continue
			}
			if err := unix.Mount(src, at, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return fmt.Errorf("binding %s into the session's root: %w", src, err)
			}
		case e.Type().IsRegular():
			if err := os.WriteFile(at, nil, 0o644); err != nil {
				return fmt.Errorf("making %s: %w", at, err)
			}
			if err := unix.Mount(src, at, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("binding %s into the session's root: %w", src, err)
			}
		}
	}
	for _, d := range []string{"proc", "dev", "sys", "tmp", "workspace"} {
		at := filepath.Join(lay.rootfs, d)
		if st, err := os.Lstat(at); err == nil {
			if !st.IsDir() {
				return fmt.Errorf("the base has /%s, but not as a directory", d)
			}
			continue
		}
		if err := os.Mkdir(at, 0o755); err != nil {
			return fmt.Errorf("making /%s in the session's root: %w", d, err)
		}
	}
	if err := lay.mask(lay.masks, lay.missing); err != nil {
		return err
	}
	// Hidden directories below the top level (/var/tmp), and the
	// server's state directory, are masked where they exist.
	var hide []policy.Entry
	for _, h := range lay.hide {
		if strings.Count(h, "/") > 1 {
			hide = append(hide, policy.Entry{Path: h, Kind: policy.Dir})
		}
	}
	if lay.state != "" && lay.state != "/" {
		hide = append(hide, policy.Entry{Path: lay.state, Kind: policy.Dir})
	}
	if err := lay.mask(hide, nil); err != nil {
		return err
	}
	// Read-only all the way down; the root's writes go to gVisor's
	// overlay, /workspace and /tmp are mounts of their own.
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(unix.AT_FDCWD, lay.rootfs, unix.AT_RECURSIVE, &attr); err != nil {
		return fmt.Errorf("making the session's root read-only: %w", err)
	}
	return nil
}

// mask mounts an empty read-only tmpfs over each masked directory and the
// empty file over each masked file, where they exist in the root
// (resolved inside it, as the session will resolve them). For a masked
// directory the base lacks, missing adds a tmpfs of gVisor's in its
// place, so that it stays empty if the host makes it later; a missing
// masked file is left missing (gVisor's root is --file-access=exclusive:
// it does not look again for a file it found missing, but one the host
// makes before the session first looks is seen).
func (lay *layout) mask(masks []policy.Entry, missing func(string)) error {
	rootFD, err := unix.Open(lay.rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the session's root: %w", err)
	}
	defer unix.Close(rootFD)
	for _, m := range masks {
		rel := strings.TrimLeft(filepath.Clean(m.Path), "/")
		if rel == "" || rel == "." {
			continue
		}
		fd, err := unix.Openat2(rootFD, rel, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			if m.Kind == policy.Dir && missing != nil {
				missing(m.Path)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("looking up the masked path %s: %w", m.Path, err)
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		target := "/proc/self/fd/" + strconv.Itoa(fd)
		switch {
		case err != nil:
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			err = unix.Mount("tmpfs", target, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=4k,nr_inodes=2")
		default:
			err = unix.Mount(lay.empty, target, "", unix.MS_BIND, "")
		}
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("masking %s: %w", m.Path, err)
		}
	}
	return nil
}

// listenLoopback opens a listening socket on 127.0.0.1:port of the calling
// thread's network namespace; it stays in that namespace wherever it is
// accepted on.
func listenLoopback(port uint16) (net.Listener, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the gateway's socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "gateway")
	defer f.Close()
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(port), Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return nil, fmt.Errorf("binding the gateway to 127.0.0.1:%d: %w", port, err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		return nil, fmt.Errorf("listening on 127.0.0.1:%d: %w", port, err)
	}
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("taking the socket for 127.0.0.1:%d: %w", port, err)
	}
	return l, nil
}

// watch closes done when the sandbox process exits, through a pidfd in
// the runtime's poller (the sandbox is not the server's child: runsc run
// started it and exited).
func (b *gvisorBox) watch() error {
	fd, err := unix.PidfdOpen(b.pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("watching the sandbox process %d: %w", b.pid, err)
	}
	b.pidfd = os.NewFile(uintptr(fd), "sandbox-pidfd")
	rc, err := b.pidfd.SyscallConn()
	if err != nil {
		return fmt.Errorf("watching the sandbox process %d: %w", b.pid, err)
	}
	exited := func(fd uintptr, timeout int) bool {
		for {
			n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, timeout)
			if err != unix.EINTR {
				return err != nil || n > 0
			}
		}
	}
	go func() {
		err := rc.Read(func(fd uintptr) bool { return exited(fd, 0) })
		if err != nil && !errors.Is(err, os.ErrClosed) {
			// Not in the poller: wait on a thread of its own.
			rc.Control(func(fd uintptr) { exited(fd, -1) })
		}
		b.mu.Lock()
		b.dead = true
		b.mu.Unlock()
		close(b.done)
	}()
	return nil
}

// findCgroups notes the cgroup leaves runsc put the sandbox in, from
// /proc/PID/cgroup: runsc removes them on delete, and Destroy checks.
func (b *gvisorBox) findCgroups() {
	leaves, err := cgroupDirs(b.pid)
	if err != nil {
		return
	}
	for _, l := range leaves {
		if filepath.Base(l.dir) != cgroupName(b.id) {
			continue // a hierarchy runsc did not make a leaf in
		}
		b.cgroups = append(b.cgroups, l.dir)
		if l.v2 {
			b.memory = filepath.Join(l.dir, "memory.current")
		} else if slices.Contains(l.controllers, "memory") {
			b.memory = filepath.Join(l.dir, "memory.usage_in_bytes")
		}
	}
}

func cgroupName(id string) string { return "cordon-gvisor-" + id }

func (b *gvisorBox) Root() (*os.Root, error) { return os.OpenRoot(b.files) }

func (b *gvisorBox) MemoryBytes() int64 {
	if b.memory == "" {
		return 0
	}
	data, err := os.ReadFile(b.memory)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func (b *gvisorBox) Done() <-chan struct{} { return b.done }

// command is runsc with the box's global flags.
func (b *gvisorBox) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, b.runsc, append(slices.Clone(b.flags), args...)...)
}

func (b *gvisorBox) Destroy() error {
	b.destroy.Do(func() { b.err = b.teardown() })
	return b.err
}

// teardown kills the sandbox, waits for it and for every runsc exec of
// it, and removes its mounts and cgroups. It also undoes a Create that
// failed half-way.
func (b *gvisorBox) teardown() error {
	var errs []error
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	if b.initW != nil {
		b.initW.Close()
	}
	for _, l := range b.listeners {
		l.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// delete --force kills every process of the sandbox, waits for them
	// and removes the container's state and cgroups; it is a no-op for a
	// container runsc never made.
	if out, err := b.command(ctx, "delete", "--force", b.id).CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("runsc delete: %v: %s", err, lastLines(out)))
	}
	if b.pidfd != nil {
		select {
		case <-b.done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("the sandbox process %d has not ended", b.pid))
		}
		b.pidfd.Close()
	}
	// Each runsc exec ends once its sandbox is gone.
	b.execs.Wait()
	for i := len(b.mounts) - 1; i >= 0; i-- {
		// MNT_DETACH: the files API may still hold a descriptor below.
		// EINVAL, ENOENT: not mounted any more (Sweep was here).
		if err := unix.Unmount(b.mounts[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", b.mounts[i], err))
		}
	}
	b.mounts = nil
	for _, dir := range b.cgroups {
		if err := removeCgroup(dir); err != nil {
			errs = append(errs, err)
		}
	}
	// A sandbox runsc lost track of (runsc killed, or its delete failed)
	// is found by its cgroup's name.
	for _, dir := range staleCgroups(cgroupName(b.id)) {
		killCgroup(dir)
		if err := removeCgroup(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeCgroup removes a cgroup leaf runsc left, if it did: the kernel
// may refuse (EBUSY) for a moment after its last process died.
func removeCgroup(dir string) error {
	var err error
	for range 50 {
		err = unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("removing the cgroup %s: %w", dir, err)
}

// Sweep ends the sandboxes of a server that is gone: every container in a
// session's runsc state directory, its cgroups with it; then the mounts
// of each session's files. The Manager removes the directories.
func (g *gvisor) Sweep(stateDir string) error {
	runsc, err := g.binary()
	if err != nil {
		runsc = ""
	}
	dirs, err := filepath.Glob(filepath.Join(stateDir, "sessions", "*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, dir := range dirs {
		id := filepath.Base(dir)
		state := filepath.Join(dir, "runsc-state")
		if _, err := os.Stat(state); err != nil {
			continue // not a gvisor session
		}
		if runsc != "" {
			b := &gvisorBox{runsc: runsc, flags: []string{"--root=" + state}}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			out, err := b.command(ctx, "list", "--quiet").Output()
			if err != nil {
				errs = append(errs, fmt.Errorf("listing the sandboxes in %s: %w", state, err))
			}
			for _, c := range strings.Fields(string(out)) {
				if out, err := b.command(ctx, "delete", "--force", c).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Errorf("deleting the sandbox %s: %v: %s", c, err, lastLines(out)))
				}
			}
			cancel()
		}
		// A leaf runsc did not remove (its state lost): its processes
		// are the session's, by the name.
		for _, leaf := range staleCgroups(cgroupName(id)) {
			killCgroup(leaf)
			if err := removeCgroup(leaf); err != nil {
				errs = append(errs, err)
			}
		}
		files := filepath.Join(dir, "files")
		for _, m := range []string{filepath.Join(files, "workspace"), files} {
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unmounting %s: %w", m, err))
			}
		}
	}
	return errors.Join(errs...)
}

// gvisorProc is one runsc exec.
type gvisorProc struct {
	b   *gvisorBox
	cmd *exec.Cmd
	pid int

	stdin  io.WriteCloser
	stdout *os.File
	stderr *os.File // nil with a TTY
	master *os.File // the TTY, also stdin and stdout

	runscErr bytes.Buffer // runsc's own messages, read to the end before done

	mu       sync.Mutex
	signaled []syscall.Signal

	done   chan struct{}
	status ExitStatus
	err    error
}

// execFiles are the descriptors of one runsc exec: fd 3 the pid pipe,
// fd 4 the process's JSON, fds 5–7 the process's stdio.
type execFiles struct {
	theirs []*os.File // the child's ends: closed once it has them
	ours   []*os.File // closed if the exec fails
	pidR   *os.File
	procW  *os.File
	errR   *os.File
	errW   *os.File
	stdio  [3]*os.File
}

func (f *execFiles) pipe() (r, w *os.File, err error) {
	r, w, err = os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("making a pipe for runsc exec: %w", err)
	}
	return r, w, nil
}

func (f *execFiles) closeTheirs() {
	for _, c := range f.theirs {
		c.Close()
	}
	f.theirs = nil
}

func (f *execFiles) closeAll() {
	f.closeTheirs()
	for _, c := range f.ours {
		c.Close()
	}
	f.ours = nil
}

// open makes the pipes (or the terminal) of an exec and sets p's ends.
func (f *execFiles) open(p *gvisorProc, e Exec) error {
	var err error
	var pidW, procR *os.File
	if f.pidR, pidW, err = f.pipe(); err != nil {
		return err
	}
	f.ours, f.theirs = append(f.ours, f.pidR), append(f.theirs, pidW)
	if procR, f.procW, err = f.pipe(); err != nil {
		return err
	}
	f.ours, f.theirs = append(f.ours, f.procW), append(f.theirs, procR)
	if f.errR, f.errW, err = f.pipe(); err != nil {
		return err
	}
	f.ours, f.theirs = append(f.ours, f.errR), append(f.theirs, f.errW)
	if e.TTY {
		master, slave, err := pty.Open()
		if err != nil {
			return fmt.Errorf("opening a terminal: %w", err)
		}
		f.ours, f.theirs = append(f.ours, master), append(f.theirs, slave)
		if e.Rows > 0 && e.Cols > 0 {
			if err := pty.Setsize(master, &pty.Winsize{Rows: e.Rows, Cols: e.Cols}); err != nil {
				return fmt.Errorf("setting the terminal's size: %w", err)
			}
		}
		p.master, p.stdin, p.stdout = master, master, master
		f.stdio = [3]*os.File{slave, slave, slave}
		return nil
	}
	for i := range f.stdio {
		r, w, err := f.pipe()
		if err != nil {
			return err
		}
		if i == 0 {
			f.ours, f.theirs = append(f.ours, w), append(f.theirs, r)
			f.stdio[i], p.stdin = r, w
			continue
		}
		f.ours, f.theirs = append(f.ours, r), append(f.theirs, w)
		f.stdio[i] = w
		if i == 1 {
			p.stdout = r
		} else {
			p.stderr = r
		}
	}
	return nil
}

func (b *gvisorBox) Exec(ctx context.Context, e Exec) (Process, error) {
	if len(e.Argv) == 0 {
		return nil, errors.New("no command given")
	}
	cwd := e.Cwd
	if cwd == "" {
		cwd = "/workspace"
	}
	env := e.Env
	if env == nil {
		env = []string{}
	}
	procJSON, err := json.Marshal(ociProcess{
		Terminal:        e.TTY,
		Args:            e.Argv,
		Env:             env,
		Cwd:             cwd,
		Capabilities:    &ociCaps{},
		NoNewPrivileges: true,
	})
	if err != nil {
		return nil, fmt.Errorf("encoding the process: %w", err)
	}
	p := &gvisorProc{b: b, done: make(chan struct{})}
	var f execFiles
	if err := f.open(p, e); err != nil {
		f.closeAll()
		return nil, err
	}
	p.cmd = b.command(context.Background(), "exec",
		"--internal-pid-file=/proc/self/fd/3",
		"--process=/proc/self/fd/4",
		"--pass-fd=5:0", "--pass-fd=6:1", "--pass-fd=7:2",
		b.id)
	p.cmd.ExtraFiles = []*os.File{f.theirs[0], f.theirs[1], f.stdio[0], f.stdio[1], f.stdio[2]}
	p.cmd.Stdout = f.errW
	p.cmd.Stderr = f.errW
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if e.TTY {
		// runsc exec passes the signals it gets to the process: with the
		// terminal as its own, a resize's SIGWINCH reaches it.
		p.cmd.Stdin = f.stdio[0]
		p.cmd.SysProcAttr.Setctty = true
		p.cmd.SysProcAttr.Ctty = 0
	}
	if err := b.startExec(p); err != nil {
		f.closeAll()
		return nil, err
	}
	f.closeTheirs()
	go func() {
		f.procW.Write(procJSON)
		f.procW.Close()
	}()
	// runsc writes the pid once the process runs; EOF if it did not
	// start. One read: the few bytes come in one write.
	started := make(chan struct{})
	go func() {
		buf := make([]byte, 32)
		n, _ := f.pidR.Read(buf)
		p.pid, _ = strconv.Atoi(strings.TrimSpace(string(buf[:n])))
		f.pidR.Close()
		close(started)
	}()
	errR := f.errR
	go func() {
		io.Copy(&p.runscErr, io.LimitReader(errR, 64<<10))
		io.Copy(io.Discard, errR)
		errR.Close()
		err := p.cmd.Wait()
		<-started // EOF at the latest: runsc exec is gone
		p.finish(err)
		b.execs.Done()
	}()
	select {
	case <-started:
	case <-ctx.Done():
		p.cmd.Process.Kill()
		<-p.done
		p.Close()
		return nil, ctx.Err()
	}
	if p.pid <= 0 {
		<-p.done
		p.Close()
		return nil, p.startError(e.Argv[0], cwd)
	}
	return p, nil
}

// startExec starts runsc exec, unless the box has ended or is being
// destroyed (whose teardown waits for every exec started).
func (b *gvisorBox) startExec(p *gvisorProc) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead || b.closing {
		return ErrStopped
	}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("starting runsc exec: %w", err)
	}
	b.execs.Add(1)
	return nil
}

// startError says why runsc exec could not start the process, from what
// runsc wrote: a command not found or not executable is an *ExecError
// with the shell's code.
func (p *gvisorProc) startError(argv0, cwd string) error {
	p.b.mu.Lock()
	dead := p.b.dead || p.b.closing
	p.b.mu.Unlock()
	if dead {
		return ErrStopped
	}
	msg := strings.TrimSpace(p.runscErr.String())
	why := msg
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		why = msg[i+2:]
	}
	switch {
	case strings.Contains(msg, "initial working directory"):
		return fmt.Errorf("working directory %s: not a directory in the session", cwd)
	case strings.Contains(msg, "error finding executable"):
		return &ExecError{Code: 127, Err: fmt.Errorf("%s: command not found", argv0)}
	case strings.Contains(msg, "failed to load") && strings.Contains(why, "no such file"):
		return &ExecError{Code: 127, Err: fmt.Errorf("%s: %s", argv0, why)}
	case strings.Contains(msg, "failed to load"):
		return &ExecError{Code: 126, Err: fmt.Errorf("%s: %s", argv0, why)}
	}
	if msg == "" {
		msg = "runsc exec ended without a word"
	}
	return &ExecError{Code: 125, Err: fmt.Errorf("starting %s in the gvisor sandbox: %s", argv0, lastLines([]byte(msg)))}
}

// finish records how runsc exec ended: it exits with the process's status
// the way a shell says it, 128+N for signal N; it cannot tell that from
// an exit with 128+N, so a signal is reported only if the server sent it.
func (p *gvisorProc) finish(err error) {
	code := 0
	var ee *exec.ExitError
	switch {
	case err == nil:
	case !errors.As(err, &ee):
		code = 128 + int(unix.SIGKILL)
		p.err = fmt.Errorf("waiting for runsc exec: %w", err)
	case ee.Sys().(syscall.WaitStatus).Signaled():
		sig := ee.Sys().(syscall.WaitStatus).Signal()
		code = 128 + int(sig)
		p.err = fmt.Errorf("runsc exec was killed by %v", sig)
	default:
		code = ee.ExitCode()
	}
	p.status = ExitStatus{Code: code}
	p.mu.Lock()
	for _, s := range p.signaled {
		if code == 128+int(s) {
			p.status.Signal = s
		}
	}
	p.mu.Unlock()
	switch {
	case p.pid > 0 && code == 128 && p.runscErr.Len() > 0:
		// runsc's own failure once the process ran: the sandbox went.
		p.status = ExitStatus{Code: 128 + int(unix.SIGKILL), Signal: unix.SIGKILL}
		p.err = fmt.Errorf("the session ended: %s", lastLines(p.runscErr.Bytes()))
	case p.pid > 0 && code == 128+int(unix.SIGKILL) && p.status.Signal == 0 && !p.b.running():
		// gVisor kills what is left when the box's init ends.
		p.status.Signal = unix.SIGKILL
		p.err = errors.New("the session ended")
	}
	close(p.done)
}

// running says whether the box's container still runs; asked when a
// process was killed with SIGKILL that the server did not send.
func (b *gvisorBox) running() bool {
	b.mu.Lock()
	ended := b.dead || b.closing
	b.mu.Unlock()
	if ended {
		return false
	}
	// init reads its pipe and drops what it reads; with init gone,
	// nothing reads it. (Closed: the server let the box go.)
	_, err := b.initW.Write([]byte{'\n'})
	return !errors.Is(err, unix.EPIPE) && !errors.Is(err, os.ErrClosed)
}

func (p *gvisorProc) Pid() int              { return p.pid }
func (p *gvisorProc) Stdin() io.WriteCloser { return p.stdin }
func (p *gvisorProc) Stdout() io.Reader     { return p.stdout }
func (p *gvisorProc) Stderr() io.Reader {
	if p.stderr == nil {
		return nil // a TTY: stderr is the terminal
	}
	return p.stderr
}

// Resize sets the terminal's size; the kernel sends SIGWINCH to runsc
// exec, whose terminal it is, and runsc passes it on to the process.
func (p *gvisorProc) Resize(rows, cols uint16) error {
	if p.master == nil {
		return errors.New("the process has no terminal")
	}
	return pty.Setsize(p.master, &pty.Winsize{Rows: rows, Cols: cols})
}

// Signal sends sig to the process's group (runsc exec makes each process
// the leader of a session of its own), or to the process if the group is
// gone.
func (p *gvisorProc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	p.mu.Lock()
	if !slices.Contains(p.signaled, sig) {
		p.signaled = append(p.signaled, sig)
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := strconv.Itoa(int(sig))
	out, err := p.b.command(ctx, "kill", "--pgid="+strconv.Itoa(p.pid), p.b.id, n).CombinedOutput()
	if err == nil {
		return nil
	}
	out2, err := p.b.command(ctx, "kill", "--pid="+strconv.Itoa(p.pid), p.b.id, n).CombinedOutput()
	if err == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil // it ended meanwhile
	default:
	}
	return fmt.Errorf("signalling the process: %s; %s", lastLines(out), lastLines(out2))
}

func (p *gvisorProc) Wait() (ExitStatus, error) {
	<-p.done
	return p.status, p.err
}

func (p *gvisorProc) Close() error {
	if p.master != nil {
		return p.master.Close()
	}
	p.stdin.Close()
	p.stdout.Close()
	p.stderr.Close()
	return nil
}

// The OCI runtime spec, as much of it as a box uses.
type ociSpec struct {
	OCIVersion string     `json:"ociVersion"`
	Process    ociProcess `json:"process"`
	Root       ociRoot    `json:"root"`
	Hostname   string     `json:"hostname"`
	Mounts     []ociMount `json:"mounts"`
	Linux      ociLinux   `json:"linux"`
}

type ociProcess struct {
	Terminal        bool        `json:"terminal,omitempty"`
	User            ociUser     `json:"user"`
	Args            []string    `json:"args"`
	Env             []string    `json:"env"`
	Cwd             string      `json:"cwd"`
	Capabilities    *ociCaps    `json:"capabilities,omitempty"`
	Rlimits         []ociRlimit `json:"rlimits,omitempty"`
	NoNewPrivileges bool        `json:"noNewPrivileges"`
}

type ociUser struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// ociCaps empty: no capability in any set.
type ociCaps struct {
	Bounding    []string `json:"bounding"`
	Effective   []string `json:"effective"`
	Inheritable []string `json:"inheritable"`
	Permitted   []string `json:"permitted"`
	Ambient     []string `json:"ambient"`
}

type ociRlimit struct {
	Type string `json:"type"`
	Hard uint64 `json:"hard"`
	Soft uint64 `json:"soft"`
}

type ociRoot struct {
	Path     string `json:"path"`
	Readonly bool   `json:"readonly"`
}

type ociMount struct {
	Destination string   `json:"destination"`
	Type        string   `json:"type"`
	Source      string   `json:"source"`
	Options     []string `json:"options,omitempty"`
}

type ociLinux struct {
	Namespaces  []ociNamespace `json:"namespaces"`
	CgroupsPath string         `json:"cgroupsPath"`
	Resources   *ociResources  `json:"resources,omitempty"`
}

type ociNamespace struct {
	Type string `json:"type"`
}

type ociResources struct {
	Memory *ociMemory `json:"memory,omitempty"`
	Pids   *ociPids   `json:"pids,omitempty"`
	CPU    *ociCPU    `json:"cpu,omitempty"`
}

type ociMemory struct {
	Limit int64 `json:"limit"`
	Swap  int64 `json:"swap"`
}

type ociPids struct {
	Limit int64 `json:"limit"`
}

type ociCPU struct {
	Quota  int64  `json:"quota"`
	Period uint64 `json:"period"`
}

// sentryPidsHeadroom is what the host's pids.max allows beyond the
// session's own limit: the Sentry's and gofer's threads, and the host
// threads gVisor's platform keeps per process of the session. The
// session's limit itself is RLIMIT_NPROC inside, where going over is an
// EAGAIN; over the host's, the whole sandbox dies.
const (
	sentryPidsPerTask  = 4
	sentryPidsHeadroom = 256
)

// ociConfig is the sandbox's config.json for spec, with /workspace bound
// from files/workspace; missing adds a tmpfs for a masked directory the
// base lacks (to be called before the config is encoded).
func ociConfig(spec Spec, files string) (*ociSpec, func(string)) {
	tmpOpts := []string{"nosuid", "nodev", "mode=1777"}
	if spec.DiskBytes > 0 {
		tmpOpts = append(tmpOpts, "size="+strconv.FormatInt(spec.DiskBytes, 10))
	}
	hostname := spec.Policy.Hostname
	if hostname == "" {
		hostname = "cordon"
	}
	c := &ociSpec{
		OCIVersion: "1.0.2",
		Process: ociProcess{
			Args:            []string{"/bin/sh", "-c", gvisorInitScript},
			Env:             []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cwd:             "/",
			Capabilities:    &ociCaps{},
			NoNewPrivileges: true,
		},
		Root:     ociRoot{Path: filepath.Join(spec.Dir, "rootfs")},
		Hostname: hostname,
		Mounts: []ociMount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: tmpOpts},
			{Destination: "/workspace", Type: "bind", Source: filepath.Join(files, "workspace"), Options: []string{"bind", "rw", "nosuid", "nodev"}},
		},
		Linux: ociLinux{
			// No network namespace: the sandbox stays in the one runsc
			// is started in, the session's (see start).
			Namespaces:  []ociNamespace{{"pid"}, {"ipc"}, {"uts"}, {"mount"}},
			CgroupsPath: cgroupName(spec.ID),
		},
	}
	l := spec.Policy.Limits
	res := &ociResources{}
	if l.MemoryBytes > 0 {
		res.Memory = &ociMemory{Limit: l.MemoryBytes, Swap: l.MemoryBytes}
	}
	if l.Pids > 0 {
		res.Pids = &ociPids{Limit: l.Pids*sentryPidsPerTask + sentryPidsHeadroom}
		c.Process.Rlimits = append(c.Process.Rlimits, ociRlimit{Type: "RLIMIT_NPROC", Hard: uint64(l.Pids), Soft: uint64(l.Pids)})
	}
	if l.CPUs > 0 {
		const period = 100000
		quota := int64(l.CPUs * period)
		res.CPU = &ociCPU{Quota: max(quota, 1000), Period: period}
	}
	if res.Memory != nil || res.Pids != nil || res.CPU != nil {
		c.Linux.Resources = res
	}
	missing := func(path string) {
		c.Mounts = append(c.Mounts, ociMount{Destination: path, Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "nosuid", "nodev", "noexec", "mode=755", "size=4k"}})
	}
	return c, missing
}

// cgroupLeaf is one hierarchy's cgroup of a process.
type cgroupLeaf struct {
	dir         string
	v2          bool
	controllers []string
}

// cgroupDirs finds the directories of process pid's cgroups, from
// /proc/PID/cgroup and this process's mount table.
func cgroupDirs(pid int) ([]cgroupLeaf, error) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []cgroupLeaf
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrls, path := parts[1], parts[2]
		for _, m := range mounts {
			if m.v2 != (parts[0] == "0" && ctrls == "") {
				continue
			}
			if !m.v2 && !slices.Equal(m.controllers, strings.Split(ctrls, ",")) && !slices.Contains(m.controllers, ctrls) {
				continue
			}
			rel, err := filepath.Rel(m.root, path)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			out = append(out, cgroupLeaf{dir: filepath.Join(m.point, rel), v2: m.v2, controllers: m.controllers})
			break
		}
	}
	return out, sc.Err()
}

type cgroupMount struct {
	point, root string
	v2          bool
	controllers []string
}

// cgroupMounts lists the cgroup hierarchies mounted here (the first
// mount of each: later ones are usually binds into containers).
func cgroupMounts() ([]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []cgroupMount
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 0 || sep+3 >= len(fields) || len(fields) < 5 {
			continue
		}
		fstype, super := fields[sep+1], fields[sep+3]
		m := cgroupMount{point: unescapeMount(fields[4]), root: unescapeMount(fields[3])}
		switch fstype {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			for _, o := range strings.Split(super, ",") {
				switch {
				case o == "rw", o == "ro", o == "clone_children", o == "xattr", o == "noprefix", o == "cpuset_v2_mode":
				case strings.Contains(o, "=") && !strings.HasPrefix(o, "name="):
				default:
					m.controllers = append(m.controllers, o)
				}
			}
		default:
			continue
		}
		key := fstype + strings.Join(m.controllers, ",")
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, m)
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (space, tab, newline,
// backslash).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// staleCgroups finds leaves named name where runsc puts a sandbox started
// by this process: below this process's cgroup, or beside it on v2.
func staleCgroups(name string) []string {
	own, err := cgroupDirs(os.Getpid())
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range own {
		for _, d := range []string{filepath.Join(l.dir, name), filepath.Join(filepath.Dir(l.dir), name)} {
			if st, err := os.Stat(d); err == nil && st.IsDir() && !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
	}
	return out
}

// killCgroup kills the processes in a cgroup leaf.
func killCgroup(dir string) {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// lastLines is the end of runsc's output, where its error is.
func lastLines(b []byte) string {
	s := strings.TrimSpace(string(b))
	lines := strings.Split(s, "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	s = strings.Join(lines, "; ")
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}
