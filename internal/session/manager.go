package session

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/client"
	"github.com/cordon-sandbox/cordon/internal/audit"
	"github.com/cordon-sandbox/cordon/internal/gateway"
	"github.com/cordon-sandbox/cordon/internal/policy"
	"github.com/cordon-sandbox/cordon/internal/policyfile"
)

// Defaults of Config.
const (
	DefaultMaxSessions  = 1000
	DefaultTTL          = time.Hour
	DefaultMaxTTL       = 24 * time.Hour
	DefaultIdle         = 15 * time.Minute
	DefaultReapInterval = time.Second
	// DefaultKeepStopped is how long a stopped session's record stays for
	// GET and list, so that a caller can see why it ended.
	DefaultKeepStopped = 5 * time.Minute
)

// DefaultLimits are a session's limits when neither the request nor its
// policy sets them.
var DefaultLimits = client.Limits{MemoryBytes: 512 << 20, Pids: 512, CPUs: 1, DiskBytes: 1 << 30}

// Bounds of what one request may ask for.
const (
	maxLabels     = 64
	maxLabelKey   = 63
	maxLabelValue = 256
	maxEnv        = 1024
	maxEnvBytes   = 256 << 10
	maxArgs       = 64 << 10
	// waitExecs bounds how long a session's end waits for its execs'
	// ends to be recorded after its box is gone.
	waitExecs = 5 * time.Second
)

// SessionEnv is the start of every exec's environment; the gateway's proxy
// variables, the session's env and the exec's own follow.
var SessionEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/workspace",
	"LANG=C.UTF-8",
}

// Config is a Manager's.
type Config struct {
	// StateDir holds the sessions' directories, <StateDir>/sessions/<id>.
	StateDir string
	// Runtimes by name ("native", "gvisor"); "native" is the default.
	Runtimes map[string]Runtime
	// Store keeps the sessions' records; nil: NewMemoryStore().
	Store Store
	// MaxSessions caps the sessions not stopped; 0: DefaultMaxSessions.
	MaxSessions int
	// DefaultTTL and DefaultIdle are a session's when the request says 0;
	// MaxTTL bounds what a request may ask for, TTL and idle timeout.
	DefaultTTL, MaxTTL, DefaultIdle time.Duration
	// Defaults are the limits of a session whose request and policy set
	// none; zero fields: DefaultLimits. Max bounds what a request may ask
	// for; zero fields: no bound but the host's.
	Defaults, Max client.Limits
	// Bases are the directories under which a request may name a root
	// filesystem as its base. None: only "host". A request cannot name
	// any directory of the server: "/" or "/root" as a base would show it
	// whole, without the masks the host base has.
	Bases []string
	// Resolver resolves names for the sessions' gateways; nil: the
	// system's (tests point names at loopback).
	Resolver gateway.Resolver
	// Log receives one line per session created, ended or failed, and
	// what goes wrong in the background; nil discards.
	Log func(format string, args ...any)
	// ReapInterval is how often TTL and idle timeouts are checked;
	// KeepStopped how long a stopped session's record stays. 0: the
	// defaults (tests make them short).
	ReapInterval, KeepStopped time.Duration
	// EventHistory is how many past events each session keeps; 0:
	// DefaultEventHistory.
	EventHistory int
	// Hide are more paths of this host that no session may see over the
	// "host" base: the server's token file, TLS key, socket. The state
	// directory is always hidden.
	Hide []string
	// Degraded are the walls every session may go without where this
	// machine cannot raise them (policy.WallCgroup for a server run as a
	// user with no cgroup of its own).
	Degraded []policy.Wall
}

// Manager keeps the sessions of one server: it makes them through their
// Runtime, runs execs in them, ends them on request or at their TTL or
// idle timeout, and streams their events.
type Manager struct {
	cfg         Config
	store       Store
	sessionsDir string
	metrics     *metrics

	mu       sync.Mutex
	sessions map[string]*sess // every state, stopped ones until forgotten
	live     int              // sessions not stopped
	closed   bool             // Shutdown has begun: no new session

	wg         sync.WaitGroup // the reaper, box watchers, ends
	stopReaper chan struct{}  // closed by Shutdown: the reaper stops
	started    bool
}

// sess is one session: its record and what reaches its box.
type sess struct {
	id    string
	rt    Runtime
	dir   string
	env   []string // the session's part of every exec's environment
	hub   *hub
	ready chan struct{} // closed when Create has finished, either way
	ended chan struct{} // closed when it has stopped and nothing of it remains

	mu        sync.Mutex
	rec       client.Session
	gw        *gateway.Gateway
	box       Box
	execs     map[string]*Execution
	stoppedAt time.Time
}

// NewManager checks cfg and fills in its defaults. Nothing runs until
// Start.
func NewManager(cfg Config) (*Manager, error) {
	if !filepath.IsAbs(cfg.StateDir) {
		return nil, fmt.Errorf("the state directory %q is not an absolute path", cfg.StateDir)
	}
	if len(cfg.Runtimes) == 0 {
		return nil, errors.New("no runtime to make sessions with")
	}
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore()
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.DefaultTTL <= 0 {
		cfg.DefaultTTL = DefaultTTL
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.DefaultIdle <= 0 {
		cfg.DefaultIdle = DefaultIdle
	}
	if cfg.DefaultTTL > cfg.MaxTTL {
		return nil, fmt.Errorf("the default TTL %v is above the longest TTL %v", cfg.DefaultTTL, cfg.MaxTTL)
	}
	if cfg.DefaultIdle > cfg.MaxTTL {
		return nil, fmt.Errorf("the default idle timeout %v is above the longest TTL %v", cfg.DefaultIdle, cfg.MaxTTL)
	}
	d := DefaultLimits
	if cfg.Defaults.MemoryBytes == 0 {
		cfg.Defaults.MemoryBytes = d.MemoryBytes
	}
	if cfg.Defaults.Pids == 0 {
		cfg.Defaults.Pids = d.Pids
	}
	if cfg.Defaults.CPUs == 0 {
		cfg.Defaults.CPUs = d.CPUs
	}
	if cfg.Defaults.DiskBytes == 0 {
		cfg.Defaults.DiskBytes = d.DiskBytes
	}
	if err := checkLimits(cfg.Defaults, cfg.Max, "default"); err != nil {
		return nil, err
	}
	for i, b := range cfg.Bases {
		if !filepath.IsAbs(b) {
			return nil, fmt.Errorf("base directory %q is not an absolute path", b)
		}
		cfg.Bases[i] = filepath.Clean(b)
	}
	if cfg.ReapInterval <= 0 {
		cfg.ReapInterval = DefaultReapInterval
	}
	if cfg.KeepStopped <= 0 {
		cfg.KeepStopped = DefaultKeepStopped
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	return &Manager{
		cfg:         cfg,
		store:       cfg.Store,
		sessionsDir: filepath.Join(cfg.StateDir, "sessions"),
		metrics:     newMetrics(),
		sessions:    map[string]*sess{},
		stopReaper:  make(chan struct{}),
	}, nil
}

// Runtimes says of each runtime whether it can run here: nil, or why not.
func (m *Manager) Runtimes() map[string]error {
	out := map[string]error{}
	for name, rt := range m.cfg.Runtimes {
		out[name] = rt.Available()
	}
	return out
}

// Start removes what a previous server left, then starts the reaper. A
// server that died left boxes (the runtimes sweep them) and directories
// under <state>/sessions (removed here); none of its sessions is kept.
func (m *Manager) Start(ctx context.Context) error {
	if err := os.MkdirAll(m.sessionsDir, 0o700); err != nil {
		return fmt.Errorf("making the sessions' directory: %w", err)
	}
	for _, name := range sortedKeys(m.cfg.Runtimes) {
		if err := m.cfg.Runtimes[name].Sweep(m.cfg.StateDir); err != nil {
			return fmt.Errorf("removing what the %s runtime of a previous server left: %w", name, err)
		}
	}
	ents, err := os.ReadDir(m.sessionsDir)
	if err != nil {
		return fmt.Errorf("listing the sessions' directory: %w", err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		dir := filepath.Join(m.sessionsDir, e.Name())
		if err := removeDir(dir); err != nil {
			return fmt.Errorf("removing a previous server's session: %w", err)
		}
		m.cfg.Log("removed %s, left by a previous server", dir)
	}
	m.mu.Lock()
	if m.started || m.closed {
		m.mu.Unlock()
		return errors.New("the session manager was started already")
	}
	m.started = true
	m.wg.Add(1)
	go m.reaper()
	m.mu.Unlock()
	return nil
}

// Shutdown ends every session (reason "shutdown") and waits for them and
// every goroutine of the Manager, or for ctx. No session can be made
// after it.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.stopReaper)
	}
	all := make([]*sess, 0, len(m.sessions))
	for _, s := range m.sessions {
		all = append(all, s)
	}
	m.mu.Unlock()
	for _, s := range all {
		m.goEnd(s, "shutdown")
	}
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("ending the sessions: %w", ctx.Err())
	}
	// A runtime may hold boxes of its own (started ahead of need).
	var errs []error
	for _, rt := range m.cfg.Runtimes {
		if c, ok := rt.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// reaper ends the sessions past their TTL or idle timeout, and forgets
// stopped ones after KeepStopped.
func (m *Manager) reaper() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stopReaper:
			return
		case now := <-t.C:
			m.reap(now)
		}
	}
}

func (m *Manager) reap(now time.Time) {
	m.mu.Lock()
	all := make([]*sess, 0, len(m.sessions))
	for _, s := range m.sessions {
		all = append(all, s)
	}
	m.mu.Unlock()
	for _, s := range all {
		s.mu.Lock()
		reason, forget := "", false
		switch s.rec.State {
		case client.StateRunning:
			switch {
			case !now.Before(s.rec.ExpiresAt):
				reason = "ttl"
			case len(s.execs) == 0 && now.Sub(s.rec.LastActive) >= s.rec.IdleTimeout.D():
				reason = "idle"
			}
		case client.StateStopped:
			forget = now.Sub(s.stoppedAt) >= m.cfg.KeepStopped
		}
		s.mu.Unlock()
		if reason != "" {
			m.goEnd(s, reason)
		}
		if forget {
			m.mu.Lock()
			delete(m.sessions, s.id)
			m.mu.Unlock()
			if err := m.store.Delete(s.id); err != nil {
				m.cfg.Log("session %s: forgetting its record: %v", s.id, err)
			}
		}
	}
}

// goEnd ends s in the background, counted in m.wg.
func (m *Manager) goEnd(s *sess, reason string) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		<-s.ready
		m.end(s, reason)
	}()
}

// Create makes a session and returns it running. A request the server
// cannot take is an error that Is ErrBadRequest, ErrNoRuntime or
// ErrLimit, with a message for the caller; on any error nothing of the
// session remains.
func (m *Manager) Create(ctx context.Context, req client.CreateRequest) (client.Session, error) {
	begin := time.Now()
	pl, err := m.plan(req)
	if err != nil {
		return client.Session{}, err
	}
	if err := pl.rt.Available(); err != nil {
		return client.Session{}, &apiError{ErrNoRuntime, fmt.Sprintf("the %s runtime cannot run here: %v", pl.rt.Name(), err)}
	}

	// The slot is taken before the box is made, so that concurrent
	// requests cannot pass MaxSessions together.
	m.mu.Lock()
	switch {
	case m.closed:
		m.mu.Unlock()
		return client.Session{}, &apiError{ErrLimit, "the server is shutting down"}
	case m.live >= m.cfg.MaxSessions:
		m.mu.Unlock()
		return client.Session{}, &apiError{ErrLimit, fmt.Sprintf("too many sessions: this server runs at most %d at once", m.cfg.MaxSessions)}
	}
	m.live++
	s := m.newSess(pl)
	s.fill(pl, time.Now().UTC())
	m.sessions[s.id] = s
	m.wg.Add(1) // for the box's watcher, or undone below
	m.mu.Unlock()

	if err := m.build(ctx, s, pl); err != nil {
		m.mu.Lock()
		m.live--
		delete(m.sessions, s.id)
		m.mu.Unlock()
		m.wg.Done()
		close(s.ready)
		close(s.ended)
		m.cfg.Log("session %s: not created: %v", s.id, err)
		return client.Session{}, err
	}

	s.mu.Lock()
	s.rec.State = client.StateRunning
	// The session's time starts now, not when it was asked for.
	s.rec.LastActive = time.Now().UTC()
	s.rec.ExpiresAt = s.rec.LastActive.Add(pl.ttl)
	rec := s.snapshot()
	box := s.box
	s.mu.Unlock()
	if err := m.store.Put(rec); err != nil {
		m.cfg.Log("session %s: recording it: %v", s.id, err)
	}
	close(s.ready)
	s.hub.publish(newEvent(EventSessionStart, s.id, map[string]any{
		"runtime": rec.Runtime, "base": rec.Base, "profile": rec.Profile,
	}))
	m.metrics.sessionCreated(rec.Runtime, time.Since(begin).Seconds())
	m.cfg.Log("session %s created: runtime %s, base %s, profile %s, in %v", s.id, rec.Runtime, rec.Base, rec.Profile, time.Since(begin).Round(time.Millisecond))

	// A box that ends on its own (its init died, the OOM killer) ends
	// the session.
	go func() {
		defer m.wg.Done()
		select {
		case <-box.Done():
			m.end(s, "failed: the session's box ended on its own")
		case <-s.ended:
		}
	}()
	return rec, nil
}

// newSess is a session not yet made, in state starting.
func (m *Manager) newSess(pl *plan) *sess {
	s := &sess{
		id:    newID("s-", 20),
		rt:    pl.rt,
		hub:   newHub(m.cfg.EventHistory),
		ready: make(chan struct{}),
		ended: make(chan struct{}),
		execs: map[string]*Execution{},
	}
	s.dir = filepath.Join(m.sessionsDir, s.id)
	s.rec = client.Session{ID: s.id, State: client.StateStarting}
	return s
}

// fill sets what the request says of s that is not its box's: its record
// and environment. Nothing else holds s yet.
func (s *sess) fill(pl *plan, now time.Time) {
	s.rec = client.Session{
		ID:          s.id,
		State:       client.StateStarting,
		Runtime:     pl.rt.Name(),
		Base:        pl.base,
		Profile:     pl.profile,
		Labels:      pl.labels,
		Limits:      pl.limits,
		CreatedAt:   now,
		ExpiresAt:   now.Add(pl.ttl),
		IdleTimeout: client.Duration(pl.idle),
		LastActive:  now,
	}
	s.env = policy.SetEnv(policy.SetEnv(append([]string(nil), SessionEnv...), gateway.ProxyEnv("", "")), pl.env)
}

// plan is a checked CreateRequest with the server's defaults in.
type plan struct {
	rt      Runtime
	base    string
	profile string
	layers  []policyfile.Layer // the profile's, then the inline policy
	labels  map[string]string
	env     []string
	limits  client.Limits
	ttl     time.Duration
	idle    time.Duration
}

func (m *Manager) plan(req client.CreateRequest) (*plan, error) {
	pl := &plan{base: req.Base, profile: req.Profile}
	if pl.base == "" {
		pl.base = "host"
	}
	if pl.base != "host" {
		b, err := m.checkBase(pl.base)
		if err != nil {
			return nil, err
		}
		pl.base = b
	}
	name := req.Runtime
	if name == "" {
		name = "native"
	}
	rt, ok := m.cfg.Runtimes[name]
	if !ok {
		return nil, badRequest("runtime %q: unknown; this server has %s", name, strings.Join(sortedKeys(m.cfg.Runtimes), ", "))
	}
	pl.rt = rt
	if pl.profile == "" {
		pl.profile = "default"
	}

	pl.ttl, pl.idle = req.TTL.D(), req.IdleTimeout.D()
	if pl.ttl == 0 {
		pl.ttl = m.cfg.DefaultTTL
	}
	if pl.idle == 0 {
		pl.idle = m.cfg.DefaultIdle
	}
	if pl.ttl > m.cfg.MaxTTL {
		return nil, badRequest("ttl %v: above this server's longest, %v", pl.ttl, m.cfg.MaxTTL)
	}
	if pl.idle > m.cfg.MaxTTL {
		return nil, badRequest("idle_timeout %v: above this server's longest TTL, %v", pl.idle, m.cfg.MaxTTL)
	}

	labels, err := checkLabels(req.Labels)
	if err != nil {
		return nil, err
	}
	pl.labels = labels
	if pl.env, err = checkEnv(req.Env, "env"); err != nil {
		return nil, err
	}

	layers, err := policyfile.LoadProfile(pl.profile, nil)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	if req.Policy != "" {
		f, err := policyfile.ParseAs("policy", []byte(req.Policy), policyfile.Workspace)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		if err := checkInline(f); err != nil {
			return nil, err
		}
		layers = append(layers, policyfile.Layer{Source: "policy", File: f})
	}

	// Limits: the server's defaults, then what the profile and the inline
	// policy set, then the request's own.
	lim := m.cfg.Defaults
	for _, l := range layers {
		b := l.File.Body.Limits
		if b.Memory != nil {
			lim.MemoryBytes = *b.Memory
		}
		if b.Pids != nil {
			lim.Pids = *b.Pids
		}
		if b.CPUs != nil {
			lim.CPUs = *b.CPUs
		}
	}
	if err := checkLimits(req.Limits, client.Limits{}, "limits"); err != nil {
		return nil, err
	}
	if req.Limits.MemoryBytes != 0 {
		lim.MemoryBytes = req.Limits.MemoryBytes
	}
	if req.Limits.Pids != 0 {
		lim.Pids = req.Limits.Pids
	}
	if req.Limits.CPUs != 0 {
		lim.CPUs = req.Limits.CPUs
	}
	if req.Limits.DiskBytes != 0 {
		lim.DiskBytes = req.Limits.DiskBytes
	}
	if err := checkLimits(lim, m.cfg.Max, "limits"); err != nil {
		return nil, err
	}
	pl.limits = lim
	pl.layers = layers
	return pl, nil
}

// checkInline refuses what an inline policy may not set in a session: what
// would hand the caller something of the server's (its files, its
// environment's secrets, a proxy it can reach, a file to write the audit
// log to).
func checkInline(f *policyfile.File) error {
	b := f.Body
	refuse := func(key, why string) error {
		return badRequest("policy: %s: not for sessions: %s", key, why)
	}
	switch {
	case len(b.Filesystem.Write) > 0:
		return refuse("filesystem.write", "a session's whole root is its own and writable; no directory of the server is given to it")
	case b.Network.Upstream != nil:
		return refuse("network.upstream", "the server's operator chooses the way out")
	case len(b.Network.Inspect) > 0:
		return refuse("network.inspect", "sessions' TLS is not inspected yet")
	case len(b.Network.Secrets) > 0:
		return refuse("network.secrets", "the values would be the server's own")
	case len(b.Network.AllowSecrets) > 0:
		return refuse("network.allow_secrets", "sessions' traffic is not scanned for token formats")
	case len(b.Env.Pass) > 0 || len(b.Env.Drop) > 0:
		return refuse("env", "a session gets no variable of the server's; set env in the request")
	case b.Audit.Path != nil:
		return refuse("audit.path", "a session's audit events are its event stream")
	case b.Limits.Timeout != nil:
		return refuse("limits.timeout", "set ttl in the request")
	}
	return nil
}

// checkBase returns the root filesystem directory a request named, with
// symbolic links resolved, if it lies below one of the server's bases.
func (m *Manager) checkBase(b string) (string, error) {
	if !filepath.IsAbs(b) || filepath.Clean(b) != b {
		return "", badRequest("base %q: want \"host\" or the absolute, clean path of a root filesystem on the server", b)
	}
	if len(m.cfg.Bases) == 0 {
		return "", badRequest("base %q: this server takes only \"host\" (it has no base directory)", b)
	}
	real, err := filepath.EvalSymlinks(b)
	if err != nil {
		return "", badRequest("base %q: %v", b, unwrapPath(err))
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", badRequest("base %q: %v", b, unwrapPath(err))
	}
	if !st.IsDir() {
		return "", badRequest("base %q: not a directory", b)
	}
	for _, dir := range m.cfg.Bases {
		if rd, err := filepath.EvalSymlinks(dir); err == nil && strings.HasPrefix(real, strings.TrimSuffix(rd, "/")+"/") {
			return real, nil
		}
	}
	return "", badRequest("base %q: not below one of this server's base directories (%s)", b, strings.Join(m.cfg.Bases, ", "))
}

// unwrapPath drops the path an *fs.PathError repeats.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// build makes the session's policy, gateway, directory and box; on error
// it undoes what it made.
func (m *Manager) build(ctx context.Context, s *sess, pl *plan) (err error) {
	home, _ := os.UserHomeDir()
	eff, err := policyfile.Merge(policyfile.Host{Workspace: s.dir, Home: home, RuntimeDir: os.Getenv("XDG_RUNTIME_DIR")}, pl.layers...)
	if err != nil {
		return badRequest("policy: %v", err)
	}
	p := eff.Policy
	// A session's root is an overlay of its own: the writable paths a
	// profile names are the server's (~/.cache/go of the server's user),
	// which no session may write to.
	p.Writable = nil
	p.Limits = policy.Limits{MemoryBytes: pl.limits.MemoryBytes, Pids: pl.limits.Pids, CPUs: pl.limits.CPUs}
	if p.Degraded == nil {
		p.Degraded = map[policy.Wall]bool{}
	}
	for _, w := range m.cfg.Degraded {
		p.Degraded[w] = true
	}

	var rules gateway.Rules
	for _, r := range p.Network.Allow {
		rule, err := gateway.ParseRule(r)
		if err != nil {
			return badRequest("network.allow %s: %v", r, err)
		}
		rules.Allow = append(rules.Allow, rule)
	}
	for _, r := range p.Network.Deny {
		rule, err := gateway.ParseRule(r)
		if err != nil {
			return badRequest("network.deny %s: %v", r, err)
		}
		rules.Deny = append(rules.Deny, rule)
	}
	var up *url.URL
	if p.Network.Upstream != "" {
		if up, err = gateway.ParseUpstream(p.Network.Upstream); err != nil {
			return badRequest("network.upstream: %v", err)
		}
	}
	sink := audit.NewSink(func(e audit.Event) {
		if e.Event == audit.KindConnection && e.Decision != "" {
			m.metrics.decision(e.Decision)
		}
		s.hub.publish(auditEvent(s.id, e))
	})
	gw, err := gateway.New(gateway.Config{Rules: rules, Upstream: up, Resolver: m.cfg.Resolver, Audit: sink})
	if err != nil {
		return fmt.Errorf("making the session's gateway: %w", err)
	}
	defer func() {
		if err != nil {
			gw.Close()
		}
	}()

	if err := os.Mkdir(s.dir, 0o700); err != nil {
		return fmt.Errorf("making the session's directory: %w", err)
	}
	defer func() {
		if err != nil {
			if rerr := removeDir(s.dir); rerr != nil {
				m.cfg.Log("session %s: %v", s.id, rerr)
			}
		}
	}()

	// The server's own files are not for the sessions to read: over the
	// host base, a session's uid may be the server's.
	for _, path := range append([]string{m.cfg.StateDir}, m.cfg.Hide...) {
		kind := policy.Dir
		if st, err := os.Stat(path); err == nil && !st.IsDir() {
			kind = policy.File
		}
		p.Masks = append(p.Masks, policy.Entry{Path: path, Kind: kind, Why: "cordon serve's own files"})
	}
	spec := Spec{
		ID:        s.id,
		Dir:       s.dir,
		Base:      pl.base,
		Policy:    p,
		DiskBytes: pl.limits.DiskBytes,
		Listen:    []uint16{gateway.HTTPPort, gateway.SOCKSPort},
		Serve: func(port uint16, l net.Listener) {
			switch port {
			case gateway.HTTPPort:
				go gw.ServeHTTP(l)
			case gateway.SOCKSPort:
				go gw.ServeSOCKS(l)
			default:
				l.Close()
			}
		},
		Log: func(format string, args ...any) { m.cfg.Log("session "+s.id+": "+format, args...) },
	}
	box, err := pl.rt.Create(ctx, spec)
	if err != nil {
		return fmt.Errorf("making the session's box: %w", err)
	}
	s.mu.Lock()
	s.gw, s.box = gw, box
	s.mu.Unlock()
	return nil
}

// end stops s: its box destroyed, its gateway closed, its directory
// removed. Only the first call for s does it; the others return at once.
func (m *Manager) end(s *sess, reason string) {
	s.mu.Lock()
	if s.rec.State != client.StateRunning {
		s.mu.Unlock()
		return
	}
	s.rec.State = client.StateStopping
	rec := s.snapshot()
	box, gw := s.box, s.gw
	execs := make([]*Execution, 0, len(s.execs))
	for _, e := range s.execs {
		execs = append(execs, e)
	}
	s.mu.Unlock()
	m.store.Put(rec)

	if err := box.Destroy(); err != nil {
		m.cfg.Log("session %s: destroying its box: %v", s.id, err)
	}
	gw.Close()
	// The execs' ends come before the session's in its events.
	timeout := time.NewTimer(waitExecs)
	for _, e := range execs {
		select {
		case <-e.done:
		case <-timeout.C:
		}
	}
	timeout.Stop()
	if err := removeDir(s.dir); err != nil {
		m.cfg.Log("session %s: %v", s.id, err)
	}

	s.mu.Lock()
	s.rec.State = client.StateStopped
	s.rec.Reason = reason
	s.stoppedAt = time.Now()
	rec = s.snapshot()
	s.mu.Unlock()
	m.mu.Lock()
	m.live--
	m.mu.Unlock()
	if err := m.store.Put(rec); err != nil {
		m.cfg.Log("session %s: recording its end: %v", s.id, err)
	}
	s.hub.publish(newEvent(EventSessionEnd, s.id, map[string]any{"reason": reason}))
	s.hub.close()
	close(s.ended)
	m.cfg.Log("session %s ended: %s", s.id, reason)
}

// snapshot is the record of s as the API shows it; s.mu held.
func (s *sess) snapshot() client.Session {
	r := copySession(s.rec)
	r.Execs = len(s.execs)
	return r
}

// lookup finds a session by id, any state.
func (m *Manager) lookup(id string) (*sess, error) {
	if !ValidID(id) {
		return nil, badRequest("session id %q: malformed (want s- and 20 letters and digits)", id)
	}
	m.mu.Lock()
	s, ok := m.sessions[id]
	m.mu.Unlock()
	if !ok {
		return nil, &apiError{ErrNotFound, fmt.Sprintf("no session %s", id)}
	}
	return s, nil
}

// running finds a running session and marks it active.
func (m *Manager) running(id string) (*sess, error) {
	s, err := m.lookup(id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.stateError(); err != nil {
		return nil, err
	}
	s.rec.LastActive = time.Now().UTC()
	return s, nil
}

// stateError is why s cannot take a request now; s.mu held.
func (s *sess) stateError() error {
	switch s.rec.State {
	case client.StateRunning:
		return nil
	case client.StateStarting:
		return &apiError{ErrStopped, fmt.Sprintf("session %s is still starting", s.id)}
	case client.StateStopped:
		return &apiError{ErrStopped, fmt.Sprintf("session %s has stopped (%s)", s.id, s.rec.Reason)}
	}
	return &apiError{ErrStopped, fmt.Sprintf("session %s is stopping", s.id)}
}

// Get returns a session, and marks it active.
func (m *Manager) Get(id string) (client.Session, error) {
	s, err := m.lookup(id)
	if errors.Is(err, ErrNotFound) {
		// Another replica's, for a Store that is shared.
		if r, serr := m.store.Get(id); serr == nil {
			return r, nil
		}
	}
	if err != nil {
		return client.Session{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec.State == client.StateRunning {
		s.rec.LastActive = time.Now().UTC()
	}
	return s.snapshot(), nil
}

// List returns the sessions, running and recently stopped, oldest first,
// that carry every label of labels.
func (m *Manager) List(labels map[string]string) ([]client.Session, error) {
	recs, err := m.store.List()
	if err != nil {
		return nil, fmt.Errorf("listing the sessions: %w", err)
	}
	byID := map[string]int{}
	for i, r := range recs {
		byID[r.ID] = i
	}
	m.mu.Lock()
	all := make([]*sess, 0, len(m.sessions))
	for _, s := range m.sessions {
		all = append(all, s)
	}
	m.mu.Unlock()
	for _, s := range all {
		s.mu.Lock()
		r := s.snapshot()
		s.mu.Unlock()
		if i, ok := byID[r.ID]; ok {
			recs[i] = r
		} else {
			recs = append(recs, r)
		}
	}
	out := recs[:0]
	for _, r := range recs {
		if hasLabels(r.Labels, labels) {
			out = append(out, r)
		}
	}
	sortSessions(out)
	return out, nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

// Delete ends a session (reason "deleted") and returns once nothing of it
// remains. Deleting a stopped session is no error.
func (m *Manager) Delete(ctx context.Context, id string) error {
	s, err := m.lookup(id)
	if err != nil {
		return err
	}
	select {
	case <-s.ready:
	case <-ctx.Done():
		return ctx.Err()
	}
	m.end(s, "deleted")
	select {
	case <-s.ended:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SetTimeout makes a session end TTL from now, and replaces its idle
// timeout if one is given.
func (m *Manager) SetTimeout(id string, req client.TimeoutRequest) (client.Session, error) {
	ttl := req.TTL.D()
	if ttl <= 0 {
		return client.Session{}, badRequest("ttl: want a duration above zero, such as \"30m\"")
	}
	if ttl > m.cfg.MaxTTL {
		return client.Session{}, badRequest("ttl %v: above this server's longest, %v", ttl, m.cfg.MaxTTL)
	}
	if req.IdleTimeout != nil {
		idle := req.IdleTimeout.D()
		if idle <= 0 {
			return client.Session{}, badRequest("idle_timeout: want a duration above zero, such as \"15m\"")
		}
		if idle > m.cfg.MaxTTL {
			return client.Session{}, badRequest("idle_timeout %v: above this server's longest TTL, %v", idle, m.cfg.MaxTTL)
		}
	}
	s, err := m.running(id)
	if err != nil {
		return client.Session{}, err
	}
	s.mu.Lock()
	s.rec.ExpiresAt = time.Now().UTC().Add(ttl)
	if req.IdleTimeout != nil {
		s.rec.IdleTimeout = *req.IdleTimeout
	}
	rec := s.snapshot()
	s.mu.Unlock()
	if err := m.store.Put(rec); err != nil {
		m.cfg.Log("session %s: recording its timeout: %v", s.id, err)
	}
	return rec, nil
}

// Events returns a session's past events, oldest first, and if follow a
// subscription to the ones after them (nil if the session has ended).
func (m *Manager) Events(id string, follow bool) ([]client.Event, *Subscription, error) {
	s, err := m.lookup(id)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	if s.rec.State == client.StateRunning {
		s.rec.LastActive = time.Now().UTC()
	}
	s.mu.Unlock()
	past, sub := s.hub.subscribe(follow)
	return past, sub, nil
}

// Root opens a running session's root directory for file operations, and
// says whom its files belong to.
func (m *Manager) Root(id string) (*os.Root, Owner, error) {
	s, err := m.running(id)
	if err != nil {
		return nil, Owner{}, err
	}
	s.mu.Lock()
	box := s.box
	s.mu.Unlock()
	r, err := box.Root()
	if err != nil {
		return nil, Owner{}, fmt.Errorf("opening the session's root: %w", err)
	}
	o := Owner{UID: -1, GID: -1}
	if ob, ok := box.(Owned); ok {
		o.UID, o.GID = ob.Owner()
	}
	return r, o, nil
}

// Owner is whom a session's files belong to on the host (see Owned).
type Owner struct{ UID, GID int }

// Execution is one exec of a session: its process, and what the Manager
// records of it. The server streams its output; the Manager waits for it.
type Execution struct {
	ID  string
	TTY bool

	proc     Process
	s        *sess
	start    time.Time
	done     chan struct{}
	status   ExitStatus
	err      error
	timedOut atomic.Bool
	// stdinStream: stdin requests are taken, one at a time (stdinMu),
	// until one ends and closes it (stdinClosed). A terminal is never
	// closed: its end of input is the ^D the client types.
	stdinStream bool
	stdinMu     sync.Mutex
	stdinClosed bool
	stdinReady  chan struct{} // closed once the request's Stdin is written
	closeOnce   sync.Once
}

// Process is the exec's process: read its Stdout and Stderr.
func (e *Execution) Process() Process { return e.proc }

// Done is closed when the process has ended and its end is recorded.
func (e *Execution) Done() <-chan struct{} { return e.done }

// Status is how the process ended; valid once Done is closed.
func (e *Execution) Status() (ExitStatus, error) { return e.status, e.err }

// TimedOut says whether the exec's timeout killed it.
func (e *Execution) TimedOut() bool { return e.timedOut.Load() }

// Kill sends SIGKILL to the exec's process group: its client went away.
func (e *Execution) Kill() {
	e.proc.Signal(syscall.SIGKILL)
}

// Close releases the server's ends of the process's stdio. The process
// is not killed.
func (e *Execution) Close() error {
	var err error
	e.closeOnce.Do(func() { err = e.proc.Close() })
	return err
}

// WriteStdin copies r into the process's stdin, then closes it; on a
// terminal it is left open, and another request may follow. Only an exec
// started with StdinStream takes it, one request at a time.
func (e *Execution) WriteStdin(r io.Reader) error {
	if !e.stdinStream {
		return &apiError{ErrConflict, fmt.Sprintf("exec %s was started without stdin_stream: its stdin is closed", e.ID)}
	}
	if !e.stdinMu.TryLock() {
		return &apiError{ErrConflict, fmt.Sprintf("exec %s: another request is writing its stdin", e.ID)}
	}
	defer e.stdinMu.Unlock()
	if e.stdinClosed {
		return &apiError{ErrConflict, fmt.Sprintf("exec %s: its stdin is closed (a request's end closes it)", e.ID)}
	}
	<-e.stdinReady
	w := e.proc.Stdin()
	if w == nil {
		return &apiError{ErrConflict, fmt.Sprintf("exec %s has no stdin", e.ID)}
	}
	_, err := io.Copy(w, r)
	if !e.TTY {
		e.stdinClosed = true
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Resize sets the exec's terminal size.
func (e *Execution) Resize(rows, cols uint16) error {
	if !e.TTY {
		return &apiError{ErrConflict, fmt.Sprintf("exec %s has no terminal to resize", e.ID)}
	}
	if rows == 0 || cols == 0 {
		return badRequest("rows and cols: want both above zero")
	}
	return e.proc.Resize(rows, cols)
}

// Signal sends a signal, by name ("SIGINT", "INT") or number, to the
// exec's process group.
func (e *Execution) Signal(name string) error {
	sig, err := ParseSignal(name)
	if err != nil {
		return err
	}
	return e.proc.Signal(sig)
}

// ParseSignal reads "SIGTERM", "TERM" or "15".
func ParseSignal(name string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(name); err == nil {
		if n < 1 || n > 64 {
			return 0, badRequest("signal %q: want 1 to 64", name)
		}
		return syscall.Signal(n), nil
	}
	up := strings.ToUpper(name)
	if !strings.HasPrefix(up, "SIG") {
		up = "SIG" + up
	}
	if sig := unix.SignalNum(up); sig != 0 {
		return sig, nil
	}
	return 0, badRequest("signal %q: unknown (want a name such as \"SIGINT\" or a number)", name)
}

// SignalName is "SIGKILL" for 9.
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return "SIG" + strconv.Itoa(int(sig))
}

// Exec starts a process in a running session. The request's Stdin is
// written (and stdin closed unless StdinStream) in the background. A
// command that cannot be found or run is an *ExecError.
func (m *Manager) Exec(ctx context.Context, id string, req client.ExecRequest) (*Execution, error) {
	x, err := checkExec(req)
	if err != nil {
		return nil, err
	}
	s, err := m.running(id)
	if err != nil {
		return nil, err
	}
	e := &Execution{ID: newID("e-", 12), TTY: req.TTY, stdinStream: req.StdinStream, s: s, done: make(chan struct{}), stdinReady: make(chan struct{})}
	if req.TTY {
		x.Env = append([]string{"TERM=xterm-256color"}, s.env...)
	} else {
		x.Env = append([]string(nil), s.env...)
	}
	x.Env = policy.SetEnv(x.Env, mustEnv(req.Env))

	// Registered before it starts: a session with an exec starting is not
	// idle.
	s.mu.Lock()
	if err := s.stateError(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	s.execs[e.ID] = e
	box := s.box
	s.mu.Unlock()

	e.start = time.Now()
	m.metrics.execStarted()
	s.hub.publish(newEvent(EventExecStart, s.id, map[string]any{"exec_id": e.ID, "argv": req.Argv}))
	proc, err := box.Exec(ctx, x)
	if err != nil {
		code := 125
		var xe *ExecError
		if errors.As(err, &xe) {
			code = xe.Code
		}
		m.execEnded(e, ExitStatus{Code: code}, err)
		close(e.stdinReady)
		close(e.done)
		return nil, err
	}
	s.mu.Lock()
	e.proc = proc // now Execution finds it
	s.mu.Unlock()

	var timer *time.Timer
	if t := req.Timeout.D(); t > 0 {
		timer = time.AfterFunc(t, func() {
			e.timedOut.Store(true)
			proc.Signal(syscall.SIGKILL)
		})
	}
	stdin := req.Stdin
	// Written in the background: a process that writes before it reads
	// would otherwise hold this call, and its output, up.
	go func() {
		defer close(e.stdinReady)
		w := proc.Stdin()
		if w == nil {
			return
		}
		if len(stdin) > 0 {
			// An error is the process's: it closed its stdin or ended.
			w.Write(stdin)
		}
		// A terminal stays open: its stdin and its output are one
		// descriptor.
		if !e.stdinStream && !e.TTY {
			w.Close()
		}
	}()
	go func() {
		st, err := proc.Wait()
		if timer != nil {
			timer.Stop()
		}
		e.status, e.err = st, err
		m.execEnded(e, st, err)
		close(e.done)
	}()
	return e, nil
}

// execEnded records an exec's end: its event, its duration, and the
// session active from now.
func (m *Manager) execEnded(e *Execution, st ExitStatus, err error) {
	d := time.Since(e.start)
	s := e.s
	s.mu.Lock()
	delete(s.execs, e.ID)
	if s.rec.State == client.StateRunning {
		s.rec.LastActive = time.Now().UTC()
	}
	s.mu.Unlock()
	m.metrics.execEnded(d.Seconds())
	f := map[string]any{"exec_id": e.ID, "exit_code": st.Code, "duration_ms": float64(d.Microseconds()) / 1000}
	if st.Signal != 0 {
		f["signal"] = SignalName(st.Signal)
	}
	if e.timedOut.Load() {
		f["timeout"] = true
	}
	if err != nil {
		f["error"] = err.Error()
	}
	s.hub.publish(newEvent(EventExecEnd, s.id, f))
}

// Execution finds a running exec of a session.
func (m *Manager) Execution(id, execID string) (*Execution, error) {
	if !ValidExecID(execID) {
		return nil, badRequest("exec id %q: malformed (want e- and 12 letters and digits)", execID)
	}
	s, err := m.running(id)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	e, ok := s.execs[execID]
	ok = ok && e.proc != nil
	s.mu.Unlock()
	if !ok {
		return nil, &apiError{ErrNotFound, fmt.Sprintf("no exec %s running in session %s", execID, id)}
	}
	return e, nil
}

// checkExec checks an exec request and makes the Exec of it, but for its
// environment.
func checkExec(req client.ExecRequest) (Exec, error) {
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return Exec{}, badRequest("argv: want the command and its arguments, such as [\"ls\", \"-l\"]")
	}
	n := 0
	for i, a := range req.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return Exec{}, badRequest("argv[%d]: holds a NUL byte", i)
		}
		n += len(a) + 1
	}
	if n > maxArgs {
		return Exec{}, badRequest("argv: %d bytes, more than %d", n, maxArgs)
	}
	cwd := req.Cwd
	if cwd == "" {
		cwd = "/workspace"
	}
	if !path.IsAbs(cwd) || strings.IndexByte(cwd, 0) >= 0 {
		return Exec{}, badRequest("cwd %q: want an absolute path inside the session", req.Cwd)
	}
	if _, err := checkEnv(req.Env, "env"); err != nil {
		return Exec{}, err
	}
	x := Exec{Argv: req.Argv, Cwd: path.Clean(cwd), TTY: req.TTY, Rows: req.Rows, Cols: req.Cols}
	if !req.TTY && (req.Rows != 0 || req.Cols != 0) {
		return Exec{}, badRequest("rows and cols: only with tty")
	}
	if req.TTY {
		if x.Rows == 0 {
			x.Rows = 24
		}
		if x.Cols == 0 {
			x.Cols = 80
		}
	}
	return x, nil
}

// checkEnv checks variables' names and values and returns them as
// NAME=VALUE, sorted by name.
func checkEnv(env map[string]string, key string) ([]string, error) {
	if len(env) > maxEnv {
		return nil, badRequest("%s: %d variables, more than %d", key, len(env), maxEnv)
	}
	n := 0
	for k, v := range env {
		if !validEnvName(k) {
			return nil, badRequest("%s: %q is not a variable name (letters, digits and _, not starting with a digit)", key, k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return nil, badRequest("%s: %s: the value holds a NUL byte", key, k)
		}
		n += len(k) + len(v) + 2
	}
	if n > maxEnvBytes {
		return nil, badRequest("%s: %d bytes, more than %d", key, n, maxEnvBytes)
	}
	return mustEnv(env), nil
}

// mustEnv is env as NAME=VALUE, sorted.
func mustEnv(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range sortedKeys(env) {
		out = append(out, k+"="+env[k])
	}
	return out
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// checkLabels bounds labels: keys of letters, digits and ._/-, values of
// printable text.
func checkLabels(labels map[string]string) (map[string]string, error) {
	if len(labels) > maxLabels {
		return nil, badRequest("labels: %d, more than %d", len(labels), maxLabels)
	}
	if len(labels) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(labels))
	for k, v := range labels {
		if err := CheckLabel(k, v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// CheckLabel checks one label, as a request sets it or a list filters by
// it.
func CheckLabel(k, v string) error {
	if k == "" || len(k) > maxLabelKey {
		return badRequest("label %q: want a name of 1 to %d characters", k, maxLabelKey)
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._/-", c)) {
			return badRequest("label %q: want letters, digits and . _ / - in its name", k)
		}
	}
	if len(v) > maxLabelValue || !utf8.ValidString(v) {
		return badRequest("label %s: want a value of at most %d bytes of UTF-8", k, maxLabelValue)
	}
	for _, c := range v {
		if c < ' ' || c == 0x7f {
			return badRequest("label %s: the value holds a control character", k)
		}
	}
	return nil
}

// checkLimits refuses negative or absurd limits, and those above max
// (its zero fields bound nothing).
func checkLimits(l, max client.Limits, key string) error {
	ints := []struct {
		name   string
		v, max int64
	}{
		{"memory_bytes", l.MemoryBytes, max.MemoryBytes},
		{"pids", l.Pids, max.Pids},
		{"disk_bytes", l.DiskBytes, max.DiskBytes},
	}
	for _, f := range ints {
		if f.v < 0 {
			return badRequest("%s.%s %d: negative", key, f.name, f.v)
		}
		if f.max > 0 && f.v > f.max {
			return badRequest("%s.%s %d: above this server's most, %d", key, f.name, f.v, f.max)
		}
	}
	if l.MemoryBytes != 0 && l.MemoryBytes < 16<<20 {
		return badRequest("%s.memory_bytes %d: below 16 MiB, too little to start a process", key, l.MemoryBytes)
	}
	if l.CPUs < 0 || math.IsNaN(l.CPUs) || math.IsInf(l.CPUs, 0) {
		return badRequest("%s.cpus %v: want a positive number", key, l.CPUs)
	}
	if max.CPUs > 0 && l.CPUs > max.CPUs {
		return badRequest("%s.cpus %v: above this server's most, %v", key, l.CPUs, max.CPUs)
	}
	return nil
}

// IDs: a prefix and lower-case base32 letters from crypto/rand.
const idAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

func newID(prefix string, n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand panics instead)
	for i := range b {
		b[i] = idAlphabet[b[i]&31]
	}
	return prefix + string(b)
}

func validID(s, prefix string, n int) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) != n {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if strings.IndexByte(idAlphabet, rest[i]) < 0 {
			return false
		}
	}
	return true
}

// ValidID says whether s is written as a session id: s- and 20 base32
// letters and digits.
func ValidID(s string) bool { return validID(s, "s-", 20) }

// ValidExecID says whether s is written as an exec id: e- and 12.
func ValidExecID(s string) bool { return validID(s, "e-", 12) }

// ErrConflict is a request that the session or exec cannot take in its
// state: a resize without a terminal, a second stdin.
var ErrConflict = errors.New("conflict")

// apiError is an error for the API's caller: its message alone, and Is
// the Manager's error it is a case of.
type apiError struct {
	kind error
	msg  string
}

func (e *apiError) Error() string        { return e.msg }
func (e *apiError) Is(target error) bool { return target == e.kind }

func badRequest(format string, args ...any) error {
	return &apiError{ErrBadRequest, fmt.Sprintf(format, args...)}
}

// removeDir removes a session's directory, unless something is mounted at
// or below it: os.RemoveAll would go down into the mount, and a base
// bound there is a root filesystem, or the host's.
func removeDir(dir string) error {
	mounted, err := mountedBelow(dir)
	if err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	if mounted != "" {
		return fmt.Errorf("not removing %s: %s is still mounted", dir, mounted)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}

// mountedBelow returns a mount point at or below dir in this process's
// mount namespace, "" if there is none (or no /proc/self/mountinfo: not
// Linux).
func mountedBelow(dir string) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	dir = filepath.Clean(dir)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			return mp, nil
		}
	}
	return "", sc.Err()
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
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
