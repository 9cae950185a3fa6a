package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// sessionInit is PID 1 of a session (Plan.Session set). It builds the
// session's root, raises the walls of `cordon run` on itself (Landlock,
// capabilities, seccomp: every exec it starts inherits them), tells the
// server "ready", and then serves the control socket: each "exec" starts a
// process, each "signal" signals one's process group, and each exit is
// reported. It exits when the server closes the socket or dies; the kernel
// then kills whatever is left in the PID namespace.
//
// All of it runs on init's locked main thread but the reaping: below
// Landlock ABI 8 each thread holds a Landlock domain of its own, and a
// signal is allowed only within one domain, so the processes are forked
// and signalled from the one thread.
func sessionInit(p *Plan, ctrl *os.File, fail func(int, error)) {
	var warnings []string
	if err := sessionRoot(p, &warnings); err != nil {
		fail(ExitInternal, err)
	}
	if err := setupNet(p, ctrl); err != nil {
		fail(ExitInternal, err)
	}
	for _, rl := range p.Rlimits {
		lim := unix.Rlimit{Cur: rl.Cur, Max: rl.Max}
		if err := unix.Setrlimit(rl.Resource, &lim); err != nil {
			fail(ExitInternal, fmt.Errorf("setting rlimit %d: %w", rl.Resource, err))
		}
	}
	// The write set is the session's own root: every top-level directory
	// but the kernel's.
	p.Workspace = "/workspace"
	p.Writable = nil
	ents, err := os.ReadDir("/")
	if err != nil {
		fail(ExitInternal, fmt.Errorf("listing the session's root: %w", err))
	}
	for _, e := range ents {
		switch n := e.Name(); {
		case !e.IsDir(), n == "proc", n == "sys", n == "dev", n == "workspace", n == "tmp":
		default:
			p.Writable = append(p.Writable, "/"+n)
		}
	}
	more, err := lockdown(p)
	warnings = append(warnings, more...)
	if err != nil {
		fail(ExitInternal, err)
	}
	for _, w := range warnings {
		sendMessage(ctrl, message{Kind: "warn", Text: w}, -1)
	}
	if err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fail(ExitInternal, fmt.Errorf("closing inherited descriptors: %w", err))
	}

	s := &sessionState{ctrl: ctrl, running: map[int]uint64{}}
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, unix.SIGCHLD)
	go s.reap(sigs)
	if err := sendMessage(ctrl, message{Kind: "ready"}, -1); err != nil {
		os.Exit(ExitInternal)
	}
	for {
		m, fds, err := readControl(ctrl)
		if err != nil {
			// The server closed the socket, or is gone.
			os.Exit(0)
		}
		switch m.Kind {
		case "exec":
			s.exec(m, fds)
		case "signal":
			closeAll(fds)
			s.signal(m)
		default:
			closeAll(fds)
		}
	}
}

// sessionState is what a session's init knows of its execs.
type sessionState struct {
	ctrl *os.File
	// mu is held from fork to registration, so the reaper, which looks
	// a pid up under it, never misses an exec that ended at once.
	mu      sync.Mutex
	running map[int]uint64 // pid → exec id
}

// exec starts one process and reports it; a failure is reported, never
// fatal to the session.
func (s *sessionState) exec(m message, fds []int) {
	refuse := func(code int, err error) {
		closeAll(fds)
		sendMessage(s.ctrl, message{Kind: "exec-error", ID: m.ID, Code: code, Text: err.Error()}, -1)
	}
	if len(m.Argv) == 0 {
		refuse(ExitInternal, errors.New("no command given"))
		return
	}
	cwd := m.Cwd
	if cwd == "" {
		cwd = "/workspace"
	}
	if st, err := os.Stat(cwd); err != nil || !st.IsDir() {
		refuse(ExitInternal, fmt.Errorf("working directory %s: not a directory in the session", cwd))
		return
	}
	var stdio [3]int
	var master *os.File
	if m.TTY {
		closeAll(fds)
		fds = nil
		var ws *Window
		if m.Rows > 0 && m.Cols > 0 {
			ws = &Window{Rows: m.Rows, Cols: m.Cols}
		}
		mst, slave, err := openPTY(ws)
		if err != nil {
			refuse(ExitInternal, fmt.Errorf("opening a terminal: %w", err))
			return
		}
		defer slave.Close()
		master = mst
		defer master.Close()
		fd := int(slave.Fd())
		stdio = [3]int{fd, fd, fd}
	} else {
		if len(fds) != 3 {
			refuse(ExitInternal, fmt.Errorf("exec sent %d descriptors, not 3", len(fds)))
			return
		}
		copy(stdio[:], fds)
	}
	path, code, err := lookPath(m.Argv[0], m.Env, cwd)
	if err != nil {
		refuse(code, err)
		return
	}
	// mu is held from the fork until "exec-started" is sent: the reaper
	// takes it before it reports an exit, so the server always hears of
	// the start first, however soon the process ends.
	s.mu.Lock()
	defer s.mu.Unlock()
	pid, err := syscall.ForkExec(path, m.Argv, &syscall.ProcAttr{
		Dir:   cwd,
		Env:   m.Env,
		Files: []uintptr{uintptr(stdio[0]), uintptr(stdio[1]), uintptr(stdio[2])},
		Sys: &syscall.SysProcAttr{
			Setsid:  true,
			Setctty: m.TTY,
			Ctty:    0,
		},
	})
	// The child has its copies; init keeps none of the server's pipes.
	closeAll(fds)
	fds = nil
	if err != nil {
		code := ExitInternal
		switch {
		case errors.Is(err, unix.ENOENT):
			code = ExitNotFound
		case errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EISDIR):
			code = ExitNoExec
		}
		refuse(code, fmt.Errorf("%s: %w", m.Argv[0], unwrapPathError(err)))
		return
	}
	s.running[pid] = m.ID
	fd := -1
	if master != nil {
		fd = int(master.Fd())
	}
	sendMessage(s.ctrl, message{Kind: "exec-started", ID: m.ID, Pid: pid}, fd)
}

// signal sends a signal to an exec's process group (its own session), or
// to the process if the group is gone.
func (s *sessionState) signal(m message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for pid, id := range s.running {
		if id != m.ID {
			continue
		}
		sig := syscall.Signal(m.Signal)
		if err := unix.Kill(-pid, sig); err != nil {
			unix.Kill(pid, sig)
		}
	}
}

// reap waits for every child (orphans come to PID 1 too) and reports the
// end of each exec.
func (s *sessionState) reap(sigs chan os.Signal) {
	for range sigs {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || pid <= 0 {
				break
			}
			s.mu.Lock()
			id, ok := s.running[pid]
			delete(s.running, pid)
			s.mu.Unlock()
			if !ok {
				continue
			}
			m := message{Kind: "exit", ID: id, Pid: pid}
			switch {
			case ws.Exited():
				m.Code = ws.ExitStatus()
			case ws.Signaled():
				m.Code = 128 + int(ws.Signal())
				m.Signal = int(ws.Signal())
			}
			sendMessage(s.ctrl, m, -1)
		}
	}
}

// readControl reads one packet with the descriptors it carries.
func readControl(sock *os.File) (message, []int, error) {
	buf := make([]byte, maxControl)
	oob := make([]byte, unix.CmsgSpace(3*4))
	n, oobn, _, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return message{}, nil, err
	}
	var fds []int
	if oobn > 0 {
		cmsgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, c := range cmsgs {
			if got, err := unix.ParseUnixRights(&c); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	if n == 0 {
		closeAll(fds)
		return message{}, nil, errors.New("control socket closed")
	}
	var m message
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		closeAll(fds)
		return message{}, nil, nil // ignored as an unknown kind
	}
	return m, fds, nil
}

// maxControl bounds one control message (an exec's argv and env): the
// socket's send buffer must hold it whole.
const maxControl = 160 << 10

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
