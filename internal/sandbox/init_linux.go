package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Init is PID 1 of a sandbox. It never returns: it exits with the command's
// status, or with ExitInternal (and a message to the supervisor) when a wall
// cannot be raised.
func Init() {
	// One OS thread for the whole of init's main line: the per-thread
	// settings that the command inherits at fork (bounding set, securebits,
	// and below Landlock ABI 8 its Landlock domain) are made on it, and the
	// command is forked and signalled from it.
	runtime.LockOSThread()
	syncSock := os.NewFile(syncFD, "sync")
	fail := func(code int, err error) {
		sendMessage(syncSock, message{Kind: "error", Text: err.Error(), Code: code}, -1)
		os.Exit(code)
	}

	var plan Plan
	planFile := os.NewFile(planFD, "plan")
	if err := json.NewDecoder(planFile).Decode(&plan); err != nil {
		fail(ExitInternal, fmt.Errorf("reading the plan: %w", err))
	}
	planFile.Close()

	// Not dumpable: the command runs as the same uid, and must not read
	// init's memory or /proc/1/environ, nor ptrace it.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		fail(ExitInternal, fmt.Errorf("setting init non-dumpable: %w", err))
	}
	// The supervisor has moved init into its cgroup leaf by now (it wrote
	// the plan after that), so a new cgroup namespace is rooted at the leaf.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		fail(ExitInternal, fmt.Errorf("creating the cgroup namespace: %w", err))
	}
	if plan.Session != nil {
		sessionInit(&plan, syncSock, fail) // never returns
	}
	if err := setupMounts(&plan); err != nil {
		fail(ExitInternal, err)
	}
	if err := setupNet(&plan, syncSock); err != nil {
		fail(ExitInternal, err)
	}

	stdio := []*os.File{os.Stdin, os.Stdout, os.Stderr}
	if plan.TTY {
		master, slave, err := openPTY(plan.WinSize)
		if err != nil {
			fail(ExitInternal, fmt.Errorf("opening a terminal in the sandbox: %w", err))
		}
		if err := sendMessage(syncSock, message{Kind: "tty"}, int(master.Fd())); err != nil {
			fail(ExitInternal, fmt.Errorf("handing the terminal to the supervisor: %w", err))
		}
		master.Close()
		stdio = []*os.File{slave, slave, slave}
	}

	path, code, err := lookPath(plan.Argv[0], plan.Env, plan.Cwd)
	if err != nil {
		fail(code, err)
	}
	for _, rl := range plan.Rlimits {
		lim := unix.Rlimit{Cur: rl.Cur, Max: rl.Max}
		if err := unix.Setrlimit(rl.Resource, &lim); err != nil {
			fail(ExitInternal, fmt.Errorf("setting rlimit %d: %w", rl.Resource, err))
		}
	}
	warnings, err := lockdown(&plan)
	if err != nil {
		fail(ExitInternal, err)
	}
	for _, w := range warnings {
		sendMessage(syncSock, message{Kind: "warn", Text: w}, -1)
	}

	// Nothing but stdio passes to the command: not init's own files, and
	// not whatever the caller of cordon left open without close-on-exec
	// (a descriptor of a file outside the sandbox would be a way out).
	if err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fail(ExitInternal, fmt.Errorf("closing inherited descriptors: %w", err))
	}

	// Catch signals before the command exists, so none is lost between
	// start and forwarding.
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)

	// Below Landlock ABI 8 every thread of init was restricted on its
	// own, so each holds a domain of its own, and Landlock scopes signals
	// by domain: a signal from another thread of init than the one that
	// forked the command is refused (EPERM). The command is started and
	// signalled from the locked main thread.
	//
	// syscall.ForkExec, not os.StartProcess: the latter forks a throwaway
	// child first, once per process, to check pidfd support, which costs a
	// run a whole fork of init; init reaps with wait4 and needs no pidfd.
	pid, err := syscall.ForkExec(path, plan.Argv, &syscall.ProcAttr{
		Dir:   plan.Cwd,
		Env:   plan.Env,
		Files: []uintptr{stdio[0].Fd(), stdio[1].Fd(), stdio[2].Fd()},
		Sys: &syscall.SysProcAttr{
			// A new session: the command cannot reach the caller's
			// terminal as its controlling terminal.
			Setsid:  true,
			Setctty: plan.TTY,
			Ctty:    0,
		},
	})
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT):
			fail(ExitNotFound, fmt.Errorf("%s: %w", plan.Argv[0], unwrapPathError(err)))
		case errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EISDIR):
			fail(ExitNoExec, fmt.Errorf("%s: %w", plan.Argv[0], unwrapPathError(err)))
		}
		fail(ExitInternal, fmt.Errorf("starting %s: %w", plan.Argv[0], err))
	}
	if plan.TTY {
		stdio[0].Close()
	}
	sendMessage(syncSock, message{Kind: "started", Pid: pid}, -1)
	syncSock.Close()

	go func() { os.Exit(reap(pid)) }()
	for s := range sigs {
		sig := s.(syscall.Signal)
		if sig == unix.SIGCHLD || sig == unix.SIGURG || sig == unix.SIGPIPE {
			continue // ours: child exits, Go preemption, a closed pipe
		}
		unix.Kill(pid, sig)
	}
}

// setupNet brings lo up, hands the gateway's listening sockets to the
// supervisor, and sets the hostname.
func setupNet(p *Plan, sock *os.File) error {
	if err := LoopbackUp(); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	for _, port := range p.Listen {
		if err := handOverListener(sock, port); err != nil {
			return err
		}
	}
	if err := unix.Sethostname([]byte(p.Hostname)); err != nil {
		return fmt.Errorf("setting the hostname: %w", err)
	}
	return nil
}

// reap waits for every child (init is PID 1, orphans come to it) until the
// command itself exits, and returns its status the way a shell reports it.
// When init exits, the kernel kills what is left in the PID namespace.
func reap(pid int) int {
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return ExitInternal
		}
		if got != pid {
			continue
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus()
		case ws.Signaled():
			return 128 + int(ws.Signal())
		}
	}
}

// lookPath finds the command in the sandbox's own view with the PATH of the
// command's environment, and says whether a failure is 127 or 126.
func lookPath(name string, env []string, cwd string) (string, int, error) {
	check := func(p string) (int, error) {
		st, err := os.Stat(p)
		if err != nil {
			return ExitNotFound, err
		}
		if st.IsDir() {
			return ExitNoExec, unix.EISDIR
		}
		if unix.Access(p, unix.X_OK) != nil {
			return ExitNoExec, unix.EACCES
		}
		return 0, nil
	}
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		if code, err := check(p); err != nil {
			if code == ExitNotFound {
				return "", code, fmt.Errorf("%s: no such file or directory", name)
			}
			return "", code, fmt.Errorf("%s: %w", name, unwrapPathError(err))
		}
		return p, 0, nil
	}
	pathEnv := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	noExec := ""
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		code, err := check(p)
		if err == nil {
			return p, 0, nil
		}
		if code == ExitNoExec && noExec == "" {
			noExec = p
		}
	}
	if noExec != "" {
		return "", ExitNoExec, fmt.Errorf("%s: permission denied", noExec)
	}
	return "", ExitNotFound, fmt.Errorf("%s: command not found", name)
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}

// sendMessage writes one packet on the sync socket, with fd attached when
// fd >= 0.
func sendMessage(sock *os.File, m message, fd int) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	return unix.Sendmsg(int(sock.Fd()), b, oob, nil, 0)
}

// handOverListener listens on 127.0.0.1:port in the sandbox's network
// namespace and hands the socket to the supervisor, which accepts on it:
// a connection from inside reaches the gateway with no process of the
// sandbox in between, and init keeps no copy, so if the supervisor goes,
// connecting is refused.
func handOverListener(sock *os.File, port uint16) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the gateway's socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(port), Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fmt.Errorf("binding the gateway to 127.0.0.1:%d: %w", port, err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		return fmt.Errorf("listening on 127.0.0.1:%d: %w", port, err)
	}
	if err := sendMessage(sock, message{Kind: "listener", Port: port}, fd); err != nil {
		return fmt.Errorf("handing 127.0.0.1:%d to the supervisor: %w", port, err)
	}
	return nil
}
