package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/cordon-sandbox/cordon/internal/policy"
	"github.com/cordon-sandbox/cordon/internal/sandbox"
)

// HostHidden are the host's top-level directories a session over the
// "host" base sees empty: people's homes, sockets and runtime state,
// temporary files, and mounted media. The rest of the host is there,
// read-only below a throwaway layer.
var HostHidden = []string{"/home", "/root", "/run", "/tmp", "/var/tmp", "/mnt", "/media", "/srv", "/lost+found"}

// native is the "native" runtime: each box is a sandbox session — its own
// user, mount, PID, network, IPC and UTS namespaces, a root of its own,
// Landlock, seccomp, no capabilities, a cgroup leaf.
type native struct{}

// NewNative is the native runtime.
func NewNative() Runtime { return native{} }

func (native) Name() string { return "native" }

func (native) Available() error {
	if abi := sandbox.LandlockABI(); abi < sandbox.LandlockRequiredABI {
		return fmt.Errorf("landlock ABI %d is below the %d the walls need (see cordon doctor)", abi, sandbox.LandlockRequiredABI)
	}
	return nil
}

func (native) Create(ctx context.Context, spec Spec) (Box, error) {
	o := sandbox.SessionOptions{
		Base:      spec.Base,
		DiskBytes: spec.DiskBytes,
		Limits:    spec.Policy.Limits,
		Degraded:  spec.Policy.Degraded,
		Hostname:  spec.Policy.Hostname,
		Listen:    spec.Listen,
		Serve:     spec.Serve,
		Log:       spec.Log,
		Warn:      spec.Log,
	}
	if spec.Base == "host" {
		o.Hide = HostHidden
		o.Masks = hostMasks(spec.Policy.Masks)
	}
	s, err := sandbox.StartSession(o)
	if err != nil {
		return nil, err
	}
	return &nativeBox{s: s}, nil
}

// hostMasks keeps the masks that mean something in a session's root: the
// system's secrets (/etc/shadow, host keys); the homes are hidden whole.
func hostMasks(masks []policy.Entry) []policy.Entry {
	var out []policy.Entry
	for _, m := range masks {
		hidden := false
		for _, h := range HostHidden {
			if m.Path == h || len(m.Path) > len(h) && m.Path[:len(h)+1] == h+"/" {
				hidden = true
			}
		}
		if !hidden {
			out = append(out, m)
		}
	}
	return out
}

// Sweep removes the cgroup leaves of dead servers. A native session leaves
// nothing else on the host: its mounts live in its own mount namespace,
// and its processes die with the server (their init has Pdeathsig).
func (native) Sweep(stateDir string) error {
	sandbox.SweepSessions()
	return nil
}

type nativeBox struct{ s *sandbox.Session }

func (b *nativeBox) Exec(ctx context.Context, e Exec) (Process, error) {
	p, err := b.s.Exec(sandbox.SessionExec{Argv: e.Argv, Env: e.Env, Cwd: e.Cwd, TTY: e.TTY, Rows: e.Rows, Cols: e.Cols})
	if err != nil {
		var serr *sandbox.Error
		if errors.As(err, &serr) && (serr.Code == sandbox.ExitNotFound || serr.Code == sandbox.ExitNoExec) {
			return nil, &ExecError{Code: serr.Code, Err: serr.Err}
		}
		return nil, err
	}
	return &nativeProc{p: p}, nil
}

func (b *nativeBox) Root() (*os.Root, error) { return os.OpenRoot(b.s.RootPath()) }

func (b *nativeBox) MemoryBytes() int64 { return b.s.MemoryBytes() }

func (b *nativeBox) Done() <-chan struct{} { return b.s.Done() }

func (b *nativeBox) Destroy() error { return b.s.Destroy() }

type nativeProc struct{ p *sandbox.SessionProc }

func (p *nativeProc) Pid() int              { return p.p.Pid() }
func (p *nativeProc) Stdin() io.WriteCloser { return p.p.Stdin }
func (p *nativeProc) Stdout() io.Reader     { return p.p.Stdout }
func (p *nativeProc) Stderr() io.Reader {
	if p.p.Stderr == nil {
		return nil // a TTY: stderr is the terminal
	}
	return p.p.Stderr
}
func (p *nativeProc) Resize(rows, cols uint16) error  { return p.p.Resize(rows, cols) }
func (p *nativeProc) Signal(sig syscall.Signal) error { return p.p.Signal(sig) }
func (p *nativeProc) Close() error                    { return p.p.Close() }
func (p *nativeProc) Wait() (ExitStatus, error) {
	code, sig, err := p.p.Wait()
	return ExitStatus{Code: code, Signal: sig}, err
}
