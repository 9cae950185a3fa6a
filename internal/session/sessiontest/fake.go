// Package sessiontest is a fake session.Runtime for the tests of the
// Manager and the server: its boxes are a directory and processes started
// on the host, beside the wall rather than behind it. It tests what the
// Manager and the API do with a box, not the box's walls (the native
// runtime's tests and internal/integration do that).
package sessiontest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/creack/pty"

	"github.com/cordon-sandbox/cordon/internal/session"
)

// Runtime makes fake boxes.
type Runtime struct {
	// RuntimeName is Name's answer; "" is "native".
	RuntimeName string
	// Unavailable, if set, is Available's answer.
	Unavailable error
	// Memory is each box's MemoryBytes.
	Memory int64

	mu         sync.Mutex
	failCreate error
	boxes      []*Box
	sweeps     []string
}

// Name is the runtime's name.
func (r *Runtime) Name() string {
	if r.RuntimeName == "" {
		return "native"
	}
	return r.RuntimeName
}

// Available is nil unless Unavailable is set.
func (r *Runtime) Available() error { return r.Unavailable }

// FailCreate makes the next Creates fail with err (nil: succeed again).
func (r *Runtime) FailCreate(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failCreate = err
}

// Create makes a box: <spec.Dir>/root with a workspace directory, and a
// loopback listener on the host for each of spec.Listen, handed to
// spec.Serve.
func (r *Runtime) Create(ctx context.Context, spec session.Spec) (session.Box, error) {
	r.mu.Lock()
	fail := r.failCreate
	r.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	b := &Box{Spec: spec, root: filepath.Join(spec.Dir, "root"), procs: map[*proc]bool{}, done: make(chan struct{}), listeners: map[uint16]string{}, memory: r.Memory}
	if err := os.MkdirAll(filepath.Join(b.root, "workspace"), 0o755); err != nil {
		return nil, err
	}
	for _, port := range spec.Listen {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		b.listeners[port] = l.Addr().String()
		spec.Serve(port, l)
	}
	r.mu.Lock()
	r.boxes = append(r.boxes, b)
	r.mu.Unlock()
	return b, nil
}

// Sweep records that it was called.
func (r *Runtime) Sweep(stateDir string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweeps = append(r.sweeps, stateDir)
	return nil
}

// Sweeps are the state directories Sweep was called with.
func (r *Runtime) Sweeps() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.sweeps...)
}

// Boxes are the boxes made so far.
func (r *Runtime) Boxes() []*Box {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Box(nil), r.boxes...)
}

// Box is a fake box.
type Box struct {
	Spec      session.Spec
	root      string
	listeners map[uint16]string
	memory    int64

	mu        sync.Mutex
	procs     map[*proc]bool
	done      chan struct{}
	destroyed int
}

// Addr is the host address of the box's listener for port (the gateway's
// 3128 or 1080).
func (b *Box) Addr(port uint16) string { return b.listeners[port] }

// RootDir is the directory Root opens.
func (b *Box) RootDir() string { return b.root }

// Destroyed says how many times Destroy was called.
func (b *Box) Destroyed() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.destroyed
}

// Crash ends the box as if its init had died: its processes are killed
// and Done is closed.
func (b *Box) Crash() { b.stop(false) }

// Exec starts argv on the host, in its own process group, with cwd
// taken inside the box's root directory.
func (b *Box) Exec(ctx context.Context, e session.Exec) (session.Process, error) {
	b.mu.Lock()
	ended := b.isDone()
	b.mu.Unlock()
	if ended {
		return nil, errors.New("the box has ended")
	}
	path := e.Argv[0]
	if !strings.Contains(path, "/") {
		var ok bool
		if path, ok = lookPath(path, e.Env); !ok {
			return nil, &session.ExecError{Code: 127, Err: fmt.Errorf("%s: command not found", e.Argv[0])}
		}
	}
	cmd := exec.Command(path, e.Argv[1:]...)
	cmd.Args[0] = e.Argv[0]
	cmd.Env = e.Env
	cmd.Dir = filepath.Join(b.root, e.Cwd)
	p := &proc{cmd: cmd, done: make(chan struct{}), tty: e.TTY}
	if e.TTY {
		// pty makes it a session leader, and so its group's leader.
		f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: e.Rows, Cols: e.Cols})
		if err != nil {
			return nil, &session.ExecError{Code: 126, Err: err}
		}
		p.stdin, p.stdout = f, f
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		inR, inW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		errR, errW, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
		err = cmd.Start()
		inR.Close()
		outW.Close()
		errW.Close()
		if err != nil {
			inW.Close()
			outR.Close()
			errR.Close()
			return nil, &session.ExecError{Code: 126, Err: err}
		}
		p.stdin, p.stdout, p.stderr = inW, outR, errR
	}
	b.mu.Lock()
	b.procs[p] = true
	b.mu.Unlock()
	go func() {
		p.state, p.err = cmd.Process.Wait()
		b.mu.Lock()
		delete(b.procs, p)
		b.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func lookPath(name string, env []string) (string, bool) {
	for _, kv := range env {
		if dirs, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, d := range filepath.SplitList(dirs) {
				p := filepath.Join(d, name)
				if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
					return p, true
				}
			}
		}
	}
	return "", false
}

// Root opens the box's root directory.
func (b *Box) Root() (*os.Root, error) { return os.OpenRoot(b.root) }

// MemoryBytes is the runtime's Memory.
func (b *Box) MemoryBytes() int64 { return b.memory }

// Done is closed once the box has ended.
func (b *Box) Done() <-chan struct{} { return b.done }

// Destroy kills the box's processes and waits for them.
func (b *Box) Destroy() error {
	b.stop(true)
	return nil
}

func (b *Box) isDone() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

func (b *Box) stop(destroy bool) {
	b.mu.Lock()
	if destroy {
		b.destroyed++
	}
	procs := make([]*proc, 0, len(b.procs))
	for p := range b.procs {
		procs = append(procs, p)
	}
	if !b.isDone() {
		close(b.done)
	}
	b.mu.Unlock()
	for _, p := range procs {
		p.Signal(syscall.SIGKILL)
	}
	for _, p := range procs {
		<-p.done
	}
}

// proc is one process of a fake box.
type proc struct {
	cmd    *exec.Cmd
	tty    bool
	stdin  io.WriteCloser
	stdout *os.File
	stderr *os.File
	done   chan struct{}
	state  *os.ProcessState
	err    error
}

func (p *proc) Pid() int              { return p.cmd.Process.Pid }
func (p *proc) Stdin() io.WriteCloser { return p.stdin }
func (p *proc) Stdout() io.Reader     { return p.stdout }
func (p *proc) Stderr() io.Reader {
	if p.stderr == nil {
		return nil
	}
	return p.stderr
}

func (p *proc) Resize(rows, cols uint16) error {
	if !p.tty {
		return errors.New("no terminal")
	}
	return pty.Setsize(p.stdout, &pty.Winsize{Rows: rows, Cols: cols})
}

// Signal signals the process's group, as a box does.
func (p *proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

func (p *proc) Wait() (session.ExitStatus, error) {
	<-p.done
	if p.err != nil {
		return session.ExitStatus{Code: 125}, p.err
	}
	ws := p.state.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return session.ExitStatus{Code: 128 + int(ws.Signal()), Signal: ws.Signal()}, nil
	}
	return session.ExitStatus{Code: ws.ExitStatus()}, nil
}

func (p *proc) Close() error {
	p.stdin.Close()
	if !p.tty { // on a terminal, stdin is stdout
		p.stdout.Close()
		p.stderr.Close()
	}
	return nil
}
