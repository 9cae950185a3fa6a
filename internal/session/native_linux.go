package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cordon-sandbox/cordon/internal/policy"
	"github.com/cordon-sandbox/cordon/internal/sandbox"
)

// HostHidden are the host's top-level directories a session over the
// "host" base sees empty: people's homes, sockets and runtime state,
// temporary files, and mounted media. The rest of the host is there,
// read-only below a throwaway layer.
//
// A session started by a root server runs as uid 0 of a user namespace
// that maps it to the host's root: without capabilities, but the owner of
// the host's root-owned files. So the places where a host keeps data only
// root should read are hidden too: /var/lib (databases, container and
// package state, cordon's own), /var/log, /var/spool, /var/mail,
// /var/backups, /var/cache and /etc/ssl/private; /etc/shadow and the SSH
// host keys are masks of the policy.
var HostHidden = []string{"/home", "/root", "/run", "/tmp", "/var/tmp", "/mnt", "/media", "/srv", "/lost+found",
	"/var/lib", "/var/log", "/var/spool", "/var/mail", "/var/backups", "/var/cache", "/etc/ssl/private"}

// native is the "native" runtime: each box is a sandbox session — its own
// user, mount, PID, network, IPC and UTS namespaces, a root of its own,
// Landlock, seccomp, no capabilities, a cgroup leaf.
//
// It keeps a few sessions started ahead of need (warm), for each shape of
// session asked for lately: starting one costs two process starts and the
// building of its root, which on a small machine is most of the time from
// "create" to the end of the first exec. A warm session has its walls up
// already; it gets its limits (in its cgroup leaf) and its gateway (the
// listening sockets it handed over at start) when it is taken. Nothing of
// one session's policy is in another's warm session: a shape is everything
// that is fixed at start (base, size, masks, degraded walls, hostname).
type native struct {
	warm     int
	uid, gid int // a root server's sessions over the host base: WithSessionUser
	mu       sync.Mutex
	pools    map[shape]*pool
	order    []shape // least recently used first
	closed   bool
}

// shape is what a warm session must match to be taken.
type shape struct {
	base, hostname, masks, degraded string
	disk                            int64
}

type pool struct {
	ready   []*sandbox.Session
	filling int
	// off: sessions of this shape get no cgroup leaf here, so they
	// cannot be given their limits when taken; none is kept warm.
	off bool
}

// maxShapes bounds the shapes kept warm; the least recently used goes.
const maxShapes = 4

// NativeOption configures NewNative.
type NativeOption func(*native)

// WithSessionUser sets the host uid and gid that a root server's sessions
// over the "host" base run as (default 65534:65534, nobody).
func WithSessionUser(uid, gid int) NativeOption {
	return func(r *native) { r.uid, r.gid = uid, gid }
}

// WithWarm keeps n sessions started ahead of need for each recent shape
// (0: none; the default is 2).
func WithWarm(n int) NativeOption { return func(r *native) { r.warm = n } }

// NewNative is the native runtime.
func NewNative(opts ...NativeOption) Runtime {
	r := &native{warm: 2, pools: map[shape]*pool{}, uid: 65534, gid: 65534}
	for _, o := range opts {
		o(r)
	}
	return r
}

func (*native) Name() string { return "native" }

func (*native) Available() error {
	if abi := sandbox.LandlockABI(); abi < sandbox.LandlockRequiredABI {
		return fmt.Errorf("landlock ABI %d is below the %d the walls need (see cordon doctor)", abi, sandbox.LandlockRequiredABI)
	}
	return nil
}

func (r *native) Create(ctx context.Context, spec Spec) (Box, error) {
	o := options(spec, r.uid, r.gid)
	k := shapeOf(o)
	if s := r.take(k, o); s != nil {
		return &nativeBox{s: s, uid: o.UID, gid: o.GID}, nil
	}
	s, err := sandbox.StartSession(o)
	if err != nil {
		return nil, err
	}
	return &nativeBox{s: s, uid: o.UID, gid: o.GID}, nil
}

// options is the sandbox session for spec.
//
// Whom the session's root stands for on the host: for a server run as a
// user, that user. For a root server over the "host" base, the
// unprivileged uid and gid (WithSessionUser): the session then owns none
// of the host's root-owned files, which it could otherwise read. Over a
// base directory, root: the operator's root filesystem, owned by root, is
// then the session's to change (in its throwaway layer), and nothing of
// the host is in it.
func options(spec Spec, uid, gid int) sandbox.SessionOptions {
	o := sandbox.SessionOptions{
		UID:       -1,
		GID:       -1,
		Base:      spec.Base,
		DiskBytes: spec.DiskBytes,
		Limits:    spec.Policy.Limits,
		Degraded:  spec.Policy.Degraded,
		Hostname:  spec.Policy.Hostname,
		// The session's own servers, by the policy's loopback_ports.
		ConnectPorts: spec.Policy.ConnectPorts,
		Listen:       spec.Listen,
		Serve:        spec.Serve,
		Log:          spec.Log,
		Warn:         spec.Log,
	}
	if spec.Base == "host" {
		o.Hide = HostHidden
		o.Masks = hostMasks(spec.Policy.Masks)
	}
	if os.Geteuid() == 0 {
		o.UID, o.GID = 0, 0
		if spec.Base == "host" {
			o.UID, o.GID = uid, gid
		}
	}
	return o
}

func shapeOf(o sandbox.SessionOptions) shape {
	var masks, degraded strings.Builder
	fmt.Fprintf(&masks, "ports %v\n", o.ConnectPorts)
	for _, m := range o.Masks {
		fmt.Fprintf(&masks, "%s:%v\n", m.Path, m.Kind)
	}
	for _, w := range slices.Sorted(maps.Keys(o.Degraded)) {
		if o.Degraded[w] {
			fmt.Fprintf(&degraded, "%v,", w)
		}
	}
	fmt.Fprintf(&masks, "ids %d:%d\n", o.UID, o.GID)
	return shape{base: o.Base, hostname: o.Hostname, masks: masks.String(), degraded: degraded.String(), disk: o.DiskBytes}
}

// take returns a warm session of shape k, given o's limits and gateway, or
// nil; either way the pool of k is filled again in the background.
func (r *native) take(k shape, o sandbox.SessionOptions) *sandbox.Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.warm <= 0 || r.closed {
		return nil
	}
	p := r.pools[k]
	if p == nil {
		p = &pool{}
		r.pools[k] = p
	}
	r.order = append(slices.DeleteFunc(r.order, func(s shape) bool { return s == k }), k)
	for len(r.order) > maxShapes {
		old := r.order[0]
		r.order = r.order[1:]
		for _, s := range r.pools[old].ready {
			go s.Destroy()
		}
		delete(r.pools, old)
	}
	var got *sandbox.Session
	for len(p.ready) > 0 && got == nil {
		s := p.ready[0]
		p.ready = p.ready[1:]
		select {
		case <-s.Done():
			go s.Destroy() // died while it waited
			continue
		default:
		}
		if err := s.SetLimits(o.Limits); err != nil {
			// No cgroup leaf: its rlimits were set at start.
			go s.Destroy()
			continue
		}
		s.Serve(o.Serve)
		got = s
	}
	for n := len(p.ready) + p.filling; n < r.warm && !p.off; n++ {
		p.filling++
		delay := time.Duration(0)
		if got != nil {
			// The session just taken runs its first commands now:
			// its replacement starts a little later, not sharing
			// the CPU with them.
			delay = refillDelay
		}
		go func() {
			time.Sleep(delay)
			r.fill(k, o)
		}()
	}
	return got
}

// refillDelay is how long after a warm session is taken its replacement
// starts.
const refillDelay = 250 * time.Millisecond

// fill starts one session of shape k ahead of need.
func (r *native) fill(k shape, o sandbox.SessionOptions) {
	o.Serve = nil // held until taken
	o.Background = true
	quiet := func(string, ...any) {}
	o.Log, o.Warn = quiet, quiet
	s, err := sandbox.StartSession(o)
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pools[k]
	if p != nil {
		p.filling--
	}
	if err != nil {
		return
	}
	if p == nil || r.closed || !s.HasLeaf() {
		if p != nil && !s.HasLeaf() {
			p.off = true
		}
		go s.Destroy()
		return
	}
	p.ready = append(p.ready, s)
}

// Close destroys the sessions kept warm.
func (r *native) Close() error {
	r.mu.Lock()
	r.closed = true
	var all []*sandbox.Session
	for k, p := range r.pools {
		all = append(all, p.ready...)
		delete(r.pools, k)
	}
	r.mu.Unlock()
	var errs []error
	for _, s := range all {
		errs = append(errs, s.Destroy())
	}
	return errors.Join(errs...)
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
func (*native) Sweep(stateDir string) error {
	sandbox.SweepSessions()
	return nil
}

type nativeBox struct {
	s        *sandbox.Session
	uid, gid int // the host's ids of the session's root; -1: the server's
}

// Owner is whom the session's files belong to on the host: the server
// acts as them in the session's root (see internal/server).
func (b *nativeBox) Owner() (uid, gid int) { return b.uid, b.gid }

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

func (b *nativeBox) Root() (*os.Root, error) { return b.s.OpenRoot() }

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
