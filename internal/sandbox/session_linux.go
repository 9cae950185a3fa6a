package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/cgroup"
	"github.com/cordon-sandbox/cordon/internal/policy"
)

// Session is a running session's init, seen from the server.
type Session struct {
	pid  int
	init *proc
	ctrl *os.File
	leaf *cgroup.Leaf

	sendMu sync.Mutex // one exec's message and descriptors at a time

	mu     sync.Mutex
	nextID uint64
	procs  map[uint64]*SessionProc
	// listeners wait for Serve when the session started without one.
	listeners map[uint16]net.Listener
	// rootFD holds the session's root (O_PATH), taken while init was
	// known to be alive; -1 once destroyed.
	rootFD  int
	dead    bool
	done    chan struct{}
	destroy sync.Once
	err     error
}

// SessionProc is one exec in a session. Without a TTY, Stdin, Stdout and
// Stderr are pipes; with one, Stdin and Stdout are the same terminal
// master and Stderr is nil.
type SessionProc struct {
	s       *Session
	id      uint64
	pid     int
	tty     bool
	started chan error // one value: nil, or why it did not start

	Stdin  *os.File
	Stdout *os.File
	Stderr *os.File

	done   chan struct{}
	code   int
	signal syscall.Signal
	err    error
}

// Pid is the process's id in the session's PID namespace.
func (p *SessionProc) Pid() int { return p.pid }

// Wait waits for the process to end and returns its status the way a shell
// says it (128+N for signal N) and the signal, if one ended it. An error
// means the session ended before the process did.
func (p *SessionProc) Wait() (int, syscall.Signal, error) {
	<-p.done
	return p.code, p.signal, p.err
}

// Done is closed when the process has ended.
func (p *SessionProc) Done() <-chan struct{} { return p.done }

// Close releases the server's ends of the process's stdio.
func (p *SessionProc) Close() error {
	for _, f := range []*os.File{p.Stdin, p.Stdout, p.Stderr} {
		if f != nil {
			f.Close()
		}
	}
	return nil
}

// sessionSeq numbers this process's session leaves.
var sessionSeq atomic.Uint64

// StartSession starts a session's init in new namespaces and cgroup leaf,
// with the session's root built and its walls raised, and returns once it
// is ready for execs. On error nothing of it remains.
func StartSession(o SessionOptions) (*Session, error) {
	if o.Base != "host" && !filepath.IsAbs(o.Base) {
		return nil, internal("base %q: want \"host\" or an absolute directory", o.Base)
	}
	if abi := LandlockABI(); abi < LandlockRequiredABI && !o.Degraded[policy.WallLandlock] {
		return nil, internal("landlock ABI %d is below the %d Cordon needs; a session cannot be given its walls here", abi, LandlockRequiredABI)
	}
	plan := Plan{
		Hostname:     o.Hostname,
		Landlock:     Required,
		Seccomp:      Required,
		ConnectPorts: append(append([]uint16(nil), o.Listen...), o.ConnectPorts...),
		Listen:       o.Listen,
		Session:      &SessionPlan{Base: o.Base, DiskBytes: o.DiskBytes, Hide: o.Hide},
	}
	if plan.Hostname == "" {
		plan.Hostname = "cordon"
	}
	if o.Degraded[policy.WallLandlock] {
		plan.Landlock = BestEffort
	}
	if o.Degraded[policy.WallSeccomp] {
		plan.Seccomp = BestEffort
	}
	for _, m := range o.Masks {
		plan.Masks = append(plan.Masks, Mask{Path: m.Path, File: m.Kind == policy.File})
	}

	l := o.Limits
	name := fmt.Sprintf("cordon-%d-%d", os.Getpid(), sessionSeq.Add(1))
	leaf, err := cgroup.Create(name, cgroup.Limits{MemoryBytes: l.MemoryBytes, Pids: l.Pids, CPUs: l.CPUs})
	if err == nil && o.Background {
		leaf.SetCPUWeight(1) // best effort: without it, it only starts at the same weight
	}
	if err != nil {
		if !o.Degraded[policy.WallCgroup] {
			return nil, internal("a session's limits cannot be enforced without a cgroup: %v", err)
		}
		o.Warn("cgroup: %v; the session's limits fall back to rlimits", err)
		if l.Pids != 0 {
			plan.Rlimits = append(plan.Rlimits, Rlimit{Resource: unix.RLIMIT_NPROC, Cur: uint64(l.Pids), Max: uint64(l.Pids)})
		}
		if l.MemoryBytes != 0 {
			plan.Rlimits = append(plan.Rlimits, Rlimit{Resource: unix.RLIMIT_DATA, Cur: uint64(l.MemoryBytes), Max: uint64(l.MemoryBytes)})
		}
	}
	s, err := startSession(o, &plan, leaf)
	if err != nil {
		if leaf != nil {
			leaf.Remove()
		}
		return nil, err
	}
	return s, nil
}

func startSession(o SessionOptions, plan *Plan, leaf *cgroup.Leaf) (*Session, error) {
	planR, planW, err := os.Pipe()
	if err != nil {
		return nil, internal("creating the plan pipe: %w", err)
	}
	defer planR.Close()
	defer planW.Close()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, internal("creating the control socket: %w", err)
	}
	ctrl := os.NewFile(uintptr(pair[0]), "session-control")
	there := os.NewFile(uintptr(pair[1]), "session-control-init")
	defer there.Close()
	for _, fd := range pair {
		// An exec's argv and env travel whole in one packet.
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 2*maxControl)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		ctrl.Close()
		return nil, internal("opening %s: %w", os.DevNull, err)
	}
	defer null.Close()

	// The server's death ends every session (Pdeathsig on init). The
	// session's root is uid 0 of its namespace, mapped to o.UID: init
	// becomes it before it runs (and so holds every capability in its
	// namespace, which it drops before any exec); overlayfs also needs
	// the mounter to be the namespace's root on some kernels.
	attr := initAttr()
	uid, gid := o.UID, o.GID
	if uid < 0 {
		uid = os.Getuid()
	}
	if gid < 0 {
		gid = os.Getgid()
	}
	attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}}
	attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}}
	attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	attr.AmbientCaps = nil
	pid, err := syscall.ForkExec("/proc/self/exe", []string{InitArg0}, &syscall.ProcAttr{
		Env:   []string{},
		Files: []uintptr{null.Fd(), null.Fd(), null.Fd(), planR.Fd(), there.Fd()},
		Sys:   attr,
	})
	if err != nil {
		ctrl.Close()
		return nil, internal("creating the session's namespaces: %w", err)
	}
	planR.Close()
	there.Close()
	s := &Session{pid: pid, init: waitFor(pid), ctrl: ctrl, leaf: leaf, procs: map[uint64]*SessionProc{}, done: make(chan struct{}),
		listeners: map[uint16]net.Listener{}, rootFD: -1}
	fail := func(err error) (*Session, error) {
		unix.Kill(pid, unix.SIGKILL)
		s.init.wait()
		ctrl.Close()
		s.closeListeners()
		return nil, err
	}
	if leaf != nil {
		if err := leaf.Add(pid); err != nil {
			return fail(internal("moving the session into its cgroup: %w", err))
		}
	}
	if err := json.NewEncoder(planW).Encode(plan); err != nil {
		return fail(internal("handing the plan to init: %w", s.init.failed(err)))
	}
	planW.Close()
	for ready := false; !ready; {
		m, fd, err := readMessage(ctrl)
		if err != nil {
			return fail(internal("the session's init died before it was ready: %w", s.init.failed(err)))
		}
		switch m.Kind {
		case "listener":
			keep := func(port uint16, l net.Listener) { s.listeners[port] = l }
			if o.Serve != nil {
				keep = o.Serve
			}
			if err := serve(Options{Serve: keep}, m.Port, fd); err != nil {
				s.closeListeners()
				return fail(internal("%w", err))
			}
		case "warn":
			o.Warn("%s", m.Text)
		case "error":
			s.init.wait()
			ctrl.Close()
			s.closeListeners()
			return nil, &Error{Code: m.Code, Err: fmt.Errorf("starting the session: %s", m.Text)}
		case "ready":
			// init cannot have been reaped yet (only this process
			// reaps it, in s.init), so its pid is still its own.
			fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/root", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fail(internal("opening the session's root: %w", err))
			}
			s.rootFD = fd
			ready = true
		default:
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}
	go s.read()
	return s, nil
}

// Serve hands the sockets the session listens on (SessionOptions.Listen)
// to serve, for a session started without a Serve: a session started
// ahead of need gets its gateway when it is taken.
func (s *Session) Serve(serve func(port uint16, l net.Listener)) {
	s.mu.Lock()
	ls := s.listeners
	s.listeners = map[uint16]net.Listener{}
	s.mu.Unlock()
	for port, l := range ls {
		if serve == nil {
			l.Close()
			continue
		}
		serve(port, l)
	}
}

func (s *Session) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for port, l := range s.listeners {
		l.Close()
		delete(s.listeners, port)
	}
}

// SetLimits changes the session's limits in its cgroup leaf, and gives it
// back the CPU weight of every other cgroup (see Background); without a
// leaf (rlimits, set at start) it is an error.
func (s *Session) SetLimits(l policy.Limits) error {
	if s.leaf == nil {
		return errors.New("the session has no cgroup leaf; its limits were fixed at start")
	}
	s.leaf.SetCPUWeight(100)
	return s.leaf.SetLimits(cgroup.Limits{MemoryBytes: l.MemoryBytes, Pids: l.Pids, CPUs: l.CPUs})
}

// HasLeaf says whether the session has a cgroup leaf of its own.
func (s *Session) HasLeaf() bool { return s.leaf != nil }

// Pid is the session's init on the host.
func (s *Session) Pid() int { return s.pid }

// OpenRoot opens the session's root for file operations (os.Root: a path
// inside it is the session's to shape, and is resolved inside it). It goes
// through a descriptor of the root taken when the session became ready,
// never through init's pid again: once init is reaped, its pid may be
// another process's, whose root is not the session's.
func (s *Session) OpenRoot() (*os.Root, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rootFD < 0 {
		return nil, errors.New("the session has ended")
	}
	return os.OpenRoot("/proc/self/fd/" + strconv.Itoa(s.rootFD))
}

// MemoryBytes is what the session's processes use now, from its cgroup.
func (s *Session) MemoryBytes() int64 {
	if s.leaf == nil {
		return 0
	}
	return s.leaf.MemoryBytes()
}

// Done is closed when the session's init has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err says why the session ended, once Done is closed.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Exec starts a process in the session. A command that cannot be found or
// executed is an *Error with code 127 or 126.
func (s *Session) Exec(e SessionExec) (*SessionProc, error) {
	m := message{Kind: "exec", Argv: e.Argv, Env: e.Env, Cwd: e.Cwd, TTY: e.TTY, Rows: e.Rows, Cols: e.Cols}
	if len(e.Argv) == 0 {
		return nil, internal("no command given")
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, internal("encoding the exec: %w", err)
	}
	if len(b) > maxControl-64 {
		return nil, &Error{Code: ExitInternal, Err: fmt.Errorf("the command and its environment take %d bytes; at most %d fit", len(b), maxControl-64)}
	}
	p := &SessionProc{s: s, tty: e.TTY, started: make(chan error, 1), done: make(chan struct{})}
	var theirs []*os.File
	defer func() {
		for _, f := range theirs {
			f.Close()
		}
	}()
	if !e.TTY {
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, internal("creating stdin: %w", err)
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			inR.Close()
			inW.Close()
			return nil, internal("creating stdout: %w", err)
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			inR.Close()
			inW.Close()
			outR.Close()
			outW.Close()
			return nil, internal("creating stderr: %w", err)
		}
		p.Stdin, p.Stdout, p.Stderr = inW, outR, errR
		theirs = []*os.File{inR, outW, errW}
	}

	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		p.Close()
		return nil, internal("the session has ended")
	}
	s.nextID++
	p.id = s.nextID
	m.ID = p.id
	s.procs[p.id] = p
	s.mu.Unlock()

	b, _ = json.Marshal(m)
	var oob []byte
	if len(theirs) > 0 {
		oob = unix.UnixRights(int(theirs[0].Fd()), int(theirs[1].Fd()), int(theirs[2].Fd()))
	}
	s.sendMu.Lock()
	err = unix.Sendmsg(int(s.ctrl.Fd()), b, oob, nil, 0)
	s.sendMu.Unlock()
	if err != nil {
		s.forget(p.id)
		p.Close()
		return nil, internal("sending the exec to the session: %w", err)
	}
	// init has its copies now (or will never need them).
	for _, f := range theirs {
		f.Close()
	}
	theirs = nil
	select {
	case err := <-p.started:
		if err != nil {
			s.forget(p.id)
			p.Close()
			return nil, err
		}
	case <-s.done:
		s.forget(p.id)
		p.Close()
		return nil, internal("the session ended before the command started")
	}
	return p, nil
}

func (s *Session) forget(id uint64) {
	s.mu.Lock()
	delete(s.procs, id)
	s.mu.Unlock()
}

// Signal sends sig to the process's group in the session.
func (p *SessionProc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	b, _ := json.Marshal(message{Kind: "signal", ID: p.id, Signal: int(sig)})
	p.s.sendMu.Lock()
	defer p.s.sendMu.Unlock()
	if err := unix.Sendmsg(int(p.s.ctrl.Fd()), b, nil, nil, 0); err != nil {
		return fmt.Errorf("signalling the process: %w", err)
	}
	return nil
}

// Resize sets the size of the process's terminal.
func (p *SessionProc) Resize(rows, cols uint16) error {
	if !p.tty || p.Stdout == nil {
		return errors.New("the process has no terminal")
	}
	// Through SyscallConn: Fd would put the terminal back in blocking
	// mode, out of Go's poller.
	rc, err := p.Stdout.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	if err := rc.Control(func(fd uintptr) { werr = setWindow(int(fd), &Window{Rows: rows, Cols: cols}) }); err != nil {
		return err
	}
	return werr
}

// read takes init's messages until it goes: starts, refusals and exits of
// execs.
func (s *Session) read() {
	var why error
	for {
		m, fd, err := readMessage(s.ctrl)
		if err != nil {
			why = err
			break
		}
		s.mu.Lock()
		p := s.procs[m.ID]
		s.mu.Unlock()
		switch m.Kind {
		case "exec-started":
			if p == nil {
				closeFD(fd)
				continue
			}
			p.pid = m.Pid
			if p.tty {
				if fd < 0 {
					p.started <- internal("the session sent no terminal")
					continue
				}
				// Non-blocking, so that Go polls it: a read blocked on
				// it can then be ended (a deadline, Close) even while a
				// child left in the background holds the terminal.
				unix.SetNonblock(fd, true)
				master := os.NewFile(uintptr(fd), "pty")
				p.Stdin, p.Stdout = master, master
			} else {
				closeFD(fd)
			}
			p.started <- nil
		case "exec-error":
			closeFD(fd)
			if p != nil {
				p.started <- &Error{Code: m.Code, Err: errors.New(m.Text)}
			}
		case "exit":
			closeFD(fd)
			if p != nil {
				p.code, p.signal = m.Code, syscall.Signal(m.Signal)
				s.forget(m.ID)
				close(p.done)
			}
		default:
			closeFD(fd)
		}
	}
	ws := s.init.wait()
	s.mu.Lock()
	s.dead = true
	if s.err == nil {
		s.err = fmt.Errorf("the session's init ended (status %d): %v", statusOf(ws), why)
	}
	procs := s.procs
	s.procs = map[uint64]*SessionProc{}
	s.mu.Unlock()
	for _, p := range procs {
		p.err = errors.New("the session ended")
		p.code = 128 + int(unix.SIGKILL)
		p.signal = unix.SIGKILL
		select {
		case p.started <- internal("the session ended"):
		default:
		}
		close(p.done)
	}
	close(s.done)
}

func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

// Destroy kills everything in the session, waits for it, and removes its
// cgroup leaf. Its mounts lived only in its own mount namespace, which is
// gone with its last process.
func (s *Session) Destroy() error {
	var err error
	s.destroy.Do(func() {
		s.mu.Lock()
		if s.err == nil {
			s.err = errors.New("the session was destroyed")
		}
		s.mu.Unlock()
		unix.Kill(s.pid, unix.SIGKILL)
		// init's exit waits for its namespace to empty; then the
		// control socket reads EOF and read() finishes.
		<-s.done
		s.ctrl.Close()
		s.closeListeners()
		s.mu.Lock()
		if s.rootFD >= 0 {
			unix.Close(s.rootFD)
			s.rootFD = -1
		}
		s.mu.Unlock()
		if s.leaf != nil {
			err = s.leaf.Remove()
		}
	})
	return err
}

// SweepSessions removes the cgroup leaves of servers (or runs) that are
// gone: `cordon-PID-N` whose PID is dead.
func SweepSessions() {
	var dirs []string
	for _, parent := range cgroup.Parents() {
		dirs = append(dirs, filepath.Join(parent, "x"))
	}
	sweepStaleLeaves(dirs)
}
