package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/cordon-sandbox/cordon/internal/cgroup"
	"github.com/cordon-sandbox/cordon/internal/policy"
)

// Run runs the command in a new sandbox and returns its exit status:
// the command's own, 128+N if it died of signal N, ExitTimeout if the
// timeout killed it. A non-nil error means the command did not run, or
// the sandbox failed around it; it is an *Error carrying the exit code.
func Run(ctx context.Context, o Options) (int, error) {
	if len(o.Argv) == 0 {
		return 0, internal("no command given")
	}
	p := o.Policy
	if err := preflight(p); err != nil {
		return 0, err
	}

	plan := Plan{
		Argv:         o.Argv,
		Env:          o.Env,
		Cwd:          p.Workspace,
		Workspace:    p.Workspace,
		Writable:     p.Writable,
		Hostname:     p.Hostname,
		Landlock:     Required,
		Seccomp:      Required,
		ConnectPorts: append(append([]uint16(nil), p.ConnectPorts...), o.Listen...),
		Listen:       o.Listen,
	}
	if p.Degraded[policy.WallLandlock] {
		plan.Landlock = BestEffort
	}
	if p.Degraded[policy.WallSeccomp] {
		plan.Seccomp = BestEffort
	}
	if o.Cwd != "" && within(o.Cwd, p.Workspace) {
		plan.Cwd = o.Cwd
	}

	var job cleanupJob
	defer func() { job.finish(o.Log) }()

	if err := planFilesystem(&plan, p, &job); err != nil {
		return 0, err
	}
	for i, m := range plan.Masks {
		if files := o.Decoys[m.Path]; len(files) > 0 && exists(m.Path) {
			plan.Masks[i].Decoy = files
		}
	}
	for _, path := range slices.Sorted(maps.Keys(o.Files)) {
		st, err := os.Stat(path)
		if err != nil || st.IsDir() {
			return 0, &Error{Code: ExitInternal, Err: fmt.Errorf("cannot show a file of the run in place of %s: not a file on this host", path)}
		}
		plan.Masks = append(plan.Masks, Mask{Path: path, File: true, Decoy: []DecoyFile{{Mode: 0o644, Content: o.Files[path]}}})
	}

	// Limits: a cgroup leaf when one can be made, rlimits otherwise.
	leaf, err := makeLeaf(p, &plan, o)
	if err != nil {
		return 0, err
	}
	if leaf != nil {
		job.CgroupDirs = leaf.Dirs()
	}
	job.startAsync()
	if leaf != nil {
		go sweepStaleLeaves(leaf.Dirs())
	}

	tty := term.IsTerminal(int(o.Stdin.Fd())) && term.IsTerminal(int(o.Stdout.Fd()))
	if tty {
		plan.TTY = true
		if w, err := windowOf(int(o.Stdin.Fd())); err == nil {
			plan.WinSize = w
		}
	}

	return launch(ctx, o, &plan, leaf, &job)
}

// preflight refuses to start when a wall that is required cannot be raised
// here, before anything is created.
func preflight(p policy.Policy) error {
	if p.Workspace == "/" {
		return internal("workspace is /: that would make the whole host writable")
	}
	if abi := LandlockABI(); abi < LandlockRequiredABI && !p.Degraded[policy.WallLandlock] {
		if abi == 0 {
			return internal("landlock is not available on this kernel (it must be built in and listed in the lsm= boot parameter); the filesystem, network and signal walls below the namespaces cannot be raised. To run without them, pass --allow-degraded landlock")
		}
		return internal("landlock ABI %d is below the %d Cordon needs for TCP and signal scoping (Linux 6.12); pass --allow-degraded landlock to run with what this kernel has", abi, LandlockRequiredABI)
	}
	return nil
}

// planFilesystem decides the pins, protected paths and masks, and makes
// the placeholders that keep missing protected paths from being created.
func planFilesystem(plan *Plan, p policy.Policy, job *cleanupJob) error {
	writable := append([]string{p.Workspace}, p.Writable...)
	inWritable := func(path string) bool {
		for _, w := range writable {
			if within(path, w) {
				return true
			}
		}
		return false
	}
	// Placeholders are made, joined and removed under the roots' locks.
	job.Roots = writable
	release, err := lockRoots(writable)
	if err != nil {
		return internal("%w", err)
	}
	defer release()

	pinned := map[string]bool{}
	for _, rel := range p.Pinned {
		path := filepath.Join(p.Workspace, rel)
		// Missing (or another run's placeholder): protected whole, so a
		// repository's control files cannot be made inside.
		held, err := job.claim(path)
		if err != nil {
			return err
		}
		st, err := os.Lstat(path)
		switch {
		case err != nil:
			return internal("inspecting %s: %w", path, err)
		case held || !st.IsDir():
			// A .git file (worktree, submodule) is protected as is.
			plan.Protect = append(plan.Protect, path)
			pinned[rel] = true
		default:
			plan.Pin = append(plan.Pin, path)
		}
	}
	for _, e := range p.Protected {
		if filepath.IsAbs(e.Path) {
			// A path outside the workspace (an agent's settings in
			// its writable state directory): held read-only if it
			// exists and lies in a writable directory (elsewhere it
			// is read-only already). A missing one gets no
			// placeholder: it is the user's own directory, and a
			// directory where a tool expects its settings file
			// would break the tool.
			if !inWritable(e.Path) {
				continue
			}
			st, err := os.Lstat(e.Path)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return internal("inspecting %s: %w", e.Path, err)
			}
			if st.Mode()&os.ModeSymlink != 0 {
				return internal("protected path %s is a symbolic link, which Cordon cannot hold read-only (the sandbox could replace the link); make it a regular file or directory", e.Path)
			}
			plan.Protect = append(plan.Protect, e.Path)
			continue
		}
		if under := strings.SplitN(e.Path, "/", 2)[0]; pinned[under] {
			continue // its pinned parent is read-only already
		}
		path := filepath.Join(p.Workspace, e.Path)
		if parent := filepath.Dir(path); !exists(parent) {
			// .git/hooks without .git is covered above; any other
			// missing parent is made for the run.
			if err := job.mkdirs(parent); err != nil {
				return err
			}
		}
		// Placeholders are directories even for files: an empty
		// directory is invisible to git, so neither `git status` nor
		// `git add -A` inside picks it up.
		held, err := job.claim(path)
		if err != nil {
			return err
		}
		if !held {
			st, err := os.Lstat(path)
			if err != nil {
				return internal("inspecting %s: %w", path, err)
			}
			if st.Mode()&os.ModeSymlink != 0 {
				return internal("protected path %s is a symbolic link, which Cordon cannot hold read-only (the sandbox could replace the link); make it a regular file or directory", path)
			}
		}
		plan.Protect = append(plan.Protect, path)
	}
	shadows := map[string]map[string]bool{}
	for _, m := range p.Masks {
		covers := false
		for _, w := range writable {
			if within(w, m.Path) && w != m.Path {
				covers = true // a mask over the workspace would hide it
			}
		}
		if covers || within(m.Path, "/tmp") || within(m.Path, "/dev") || within(m.Path, "/proc") || within(m.Path, "/sys") {
			continue
		}
		if inWritable(m.Path) {
			// Missing and creatable from inside: hold its place.
			if !exists(filepath.Dir(m.Path)) {
				if err := job.mkdirs(filepath.Dir(m.Path)); err != nil {
					return err
				}
			}
			if _, err := job.claim(m.Path); err != nil {
				return err
			}
		} else if !exists(m.Path) {
			// Missing and out of reach from inside: keep it missing,
			// whatever the host does during the run.
			shadow(shadows, m, p.Masks)
			continue
		}
		plan.Masks = append(plan.Masks, Mask{Path: m.Path, File: m.Kind == policy.File})
	}
	for dir, names := range shadows {
		sh := Shadow{Dir: dir}
		for name := range names {
			sh.Hide = append(sh.Hide, name)
		}
		sort.Strings(sh.Hide)
		plan.Shadows = append(plan.Shadows, sh)
	}
	sort.Slice(plan.Shadows, func(i, j int) bool { return plan.Shadows[i].Dir < plan.Shadows[j].Dir })
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// shadow plans to keep the missing masked path m missing: a whiteout for
// the first missing component, under its nearest existing ancestor. It
// declines where an overlay is not wanted: on /, inside another mask, or
// where the directory cannot be written in overlay's option syntax.
func shadow(shadows map[string]map[string]bool, m policy.Entry, masks []policy.Entry) {
	missing := m.Path
	dir := filepath.Dir(missing)
	for {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		missing, dir = dir, filepath.Dir(dir)
	}
	if dir == "/" || strings.ContainsAny(dir, ":,\\") {
		return
	}
	for _, other := range masks {
		if other.Path != m.Path && within(dir, other.Path) {
			return // the other mask hides all of it already
		}
	}
	if shadows[dir] == nil {
		shadows[dir] = map[string]bool{}
	}
	shadows[dir][filepath.Base(missing)] = true
}

// makeLeaf creates the cgroup leaf for the sandbox, or falls back to
// rlimits when the host has none for this user.
func makeLeaf(p policy.Policy, plan *Plan, o Options) (*cgroup.Leaf, error) {
	l := p.Limits
	name := fmt.Sprintf("cordon-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	leaf, err := cgroup.Create(name, cgroup.Limits{MemoryBytes: l.MemoryBytes, Pids: l.Pids, CPUs: l.CPUs})
	if err == nil {
		o.Log("cgroup v%d leaf %s (memory %d, pids %d, cpus %g)", leaf.Version(), strings.Join(leaf.Dirs(), ", "), l.MemoryBytes, l.Pids, l.CPUs)
		return leaf, nil
	}
	explicit := l.MemoryBytes != 0 || l.CPUs != 0 || (l.Pids != 0 && l.Pids != policy.DefaultPids)
	if explicit && !p.Degraded[policy.WallCgroup] {
		return nil, internal("cgroup limits were asked for but cannot be enforced: %v; pass --allow-degraded cgroup to fall back to rlimits", err)
	}
	if explicit {
		o.Warn("cgroup: %v; limits fall back to rlimits because --allow-degraded cgroup was given (no CPU limit, memory as the data size of each process)", err)
	} else {
		o.Log("no cgroup leaf (%v); pids limited by RLIMIT_NPROC", err)
	}
	if l.Pids != 0 {
		// Like the cgroup's pids.max, it counts init's own threads too.
		plan.Rlimits = append(plan.Rlimits, Rlimit{Resource: unix.RLIMIT_NPROC, Cur: uint64(l.Pids), Max: uint64(l.Pids)})
	}
	if l.MemoryBytes != 0 {
		// RLIMIT_DATA, not RLIMIT_AS: init, a Go program, holds it too,
		// and the Go runtime reserves far more address space than it
		// uses (under an RLIMIT_AS of 256M it cannot start a thread, or
		// start at all), as do JVMs and V8. The data size counts the
		// memory written to, heap and private mappings.
		plan.Rlimits = append(plan.Rlimits, Rlimit{Resource: unix.RLIMIT_DATA, Cur: uint64(l.MemoryBytes), Max: uint64(l.MemoryBytes)})
	}
	return nil, nil
}

// launch starts init in its namespaces, hands it the plan, relays the
// terminal and signals, and returns the command's status.
func launch(ctx context.Context, o Options, plan *Plan, leaf *cgroup.Leaf, job *cleanupJob) (int, error) {
	planR, planW, err := os.Pipe()
	if err != nil {
		return 0, internal("creating the plan pipe: %w", err)
	}
	defer planR.Close()
	defer planW.Close()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, internal("creating the sync socket: %w", err)
	}
	syncHere := os.NewFile(uintptr(pair[0]), "sync")
	syncThere := os.NewFile(uintptr(pair[1]), "sync-init")
	defer syncHere.Close()
	defer syncThere.Close()

	attr := initAttr()
	// Caught from before the command can run, so that none sent once it
	// runs kills the supervisor (the Go default) instead of reaching it;
	// they wait in the channel until the command has started.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH, unix.SIGCONT)
	defer signal.Stop(sigs)
	// syscall.ForkExec, not exec.Cmd: os.StartProcess forks a throwaway
	// child once per process to check pidfd support.
	initPid, err := syscall.ForkExec("/proc/self/exe", []string{InitArg0}, &syscall.ProcAttr{
		Env: []string{},
		// stdio, then the plan (fd 3) and the sync socket (fd 4).
		Files: []uintptr{o.Stdin.Fd(), o.Stdout.Fd(), o.Stderr.Fd(), planR.Fd(), syncThere.Fd()},
		Sys:   attr,
	})
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EACCES) {
			return 0, internal("creating the sandbox's namespaces: %w (user namespaces may be disabled: see `cordon doctor`)", err)
		}
		return 0, internal("starting the sandbox: %w", err)
	}
	planR.Close()
	syncThere.Close()
	init := waitFor(initPid)
	defer func() {
		if !init.exited() {
			unix.Kill(initPid, unix.SIGKILL)
			init.wait()
		}
	}()

	if leaf != nil {
		if err := leaf.Add(initPid); err != nil {
			return 0, internal("moving the sandbox into its cgroup: %w", err)
		}
	}
	if err := json.NewEncoder(planW).Encode(plan); err != nil {
		return 0, internal("handing the plan to init: %w", init.failed(err))
	}
	planW.Close()
	// The cleanup helper has been starting since the job was made; it
	// stands long before init, busy with the mounts, starts the command.
	job.ready()

	var master *os.File
	for started := false; !started; {
		m, fd, err := readMessage(syncHere)
		if err != nil {
			return 0, internal("the sandbox's init died before starting the command: %w", init.failed(err))
		}
		switch m.Kind {
		case "tty":
			master = os.NewFile(uintptr(fd), "pty")
		case "listener":
			if err := serve(o, m.Port, fd); err != nil {
				return 0, internal("%w", err)
			}
		case "warn":
			o.Warn("%s", m.Text)
		case "error":
			init.wait()
			if m.Code == ExitInternal {
				return 0, &Error{Code: m.Code, Err: fmt.Errorf("starting the sandbox: %s", m.Text)}
			}
			return 0, &Error{Code: m.Code, Err: errors.New(m.Text)}
		case "started":
			started = true
		}
	}

	var relay *ttyRelay
	if master != nil {
		relay, err = startRelay(o.Stdin, o.Stdout, master)
		if err != nil {
			return 0, internal("relaying the terminal: %w", err)
		}
		defer relay.stop()
	}

	var timeout <-chan time.Time
	if t := o.Policy.Limits.Timeout; t > 0 {
		timer := time.NewTimer(t)
		defer timer.Stop()
		timeout = timer.C
	}
	timedOut := false
	for {
		select {
		case s := <-sigs:
			if s == unix.SIGWINCH {
				if relay != nil {
					relay.resize()
				}
				continue
			}
			unix.Kill(initPid, s.(syscall.Signal))
		case <-timeout:
			timedOut = true
			o.Warn("timed out after %s; the sandbox was killed", o.Policy.Limits.Timeout)
			unix.Kill(initPid, unix.SIGKILL)
			timeout = nil
		case <-ctx.Done():
			unix.Kill(initPid, unix.SIGKILL)
		case ws := <-init.done:
			init.status = &ws
			if relay != nil {
				relay.drain()
			}
			if timedOut {
				return ExitTimeout, nil
			}
			if leaf != nil && leaf.OOMKilled() {
				o.Warn("the memory limit was reached; the kernel killed a process in the sandbox")
			}
			return statusOf(ws), nil
		}
	}
}

// initAttr is how init is started, for a run and for a session: in new
// user, mount, PID, network, IPC and UTS namespaces, the caller's uid and
// gid mapped to themselves (files keep their owners, the command sees the
// user it is; nothing else is mapped), killed if its parent goes (and with
// PID 1 gone, the kernel kills the rest of the sandbox), in a process group
// of its own (a Ctrl-C at the user's terminal reaches the supervisor,
// which forwards it once).
func initAttr() *syscall.SysProcAttr {
	uid, gid := os.Getuid(), os.Getgid()
	attr := &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID |
			unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}},
		Pdeathsig:   unix.SIGKILL,
		Setpgid:     true,
	}
	if uid != 0 {
		// A non-root uid loses its capabilities at execve; init needs
		// these to build the sandbox, and drops them before the command.
		attr.AmbientCaps = []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_NET_ADMIN, unix.CAP_SETPCAP}
	}
	return attr
}

// serve hands a listening socket from init to o.Serve.
func serve(o Options, port uint16, fd int) error {
	if fd < 0 {
		return fmt.Errorf("init sent no socket for 127.0.0.1:%d", port)
	}
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close()
	l, err := net.FileListener(f)
	if err != nil {
		return fmt.Errorf("taking the sandbox's socket for 127.0.0.1:%d: %w", port, err)
	}
	if o.Serve == nil {
		l.Close()
		return nil
	}
	o.Serve(port, l)
	return nil
}

// proc is a child the supervisor waits for with wait4.
type proc struct {
	pid    int
	done   chan unix.WaitStatus
	status *unix.WaitStatus // set once received from done
}

func waitFor(pid int) *proc {
	p := &proc{pid: pid, done: make(chan unix.WaitStatus, 1)}
	go func() {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		p.done <- ws
	}()
	return p
}

func (p *proc) exited() bool {
	if p.status != nil {
		return true
	}
	select {
	case ws := <-p.done:
		p.status = &ws
		return true
	default:
		return false
	}
}

// wait waits for the child to end, once, and returns how it did.
func (p *proc) wait() unix.WaitStatus {
	if !p.exited() {
		ws := <-p.done
		p.status = &ws
	}
	return *p.status
}

// failed waits for an init that failed early and says how it ended.
func (p *proc) failed(cause error) error {
	p.wait()
	how := fmt.Sprintf("init exited with status %d", statusOf(*p.status))
	if cause == nil || errors.Is(cause, io.EOF) {
		return errors.New(how)
	}
	return fmt.Errorf("%w (%s)", cause, how)
}

// statusOf turns init's end into `cordon run`'s exit status.
func statusOf(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return ExitInternal
}

// readMessage reads one packet from init, with the fd it carries (-1).
func readMessage(sock *os.File) (message, int, error) {
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return message{}, -1, err
	}
	if n == 0 {
		return message{}, -1, io.EOF
	}
	fd := -1
	if oobn > 0 {
		cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err == nil && len(cmsgs) > 0 {
			if fds, err := unix.ParseUnixRights(&cmsgs[0]); err == nil && len(fds) > 0 {
				fd = fds[0]
			}
		}
	}
	var m message
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		return message{}, -1, fmt.Errorf("decoding a message from init: %w", err)
	}
	return m, fd, nil
}
