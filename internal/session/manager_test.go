package session_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/client"
	"github.com/cordon-sandbox/cordon/internal/gateway"
	"github.com/cordon-sandbox/cordon/internal/session"
	"github.com/cordon-sandbox/cordon/internal/session/sessiontest"
)

// noHosts resolves nothing: no test reaches past loopback.
type noHosts struct{}

func (noHosts) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no such host (test)", Name: host, IsNotFound: true}
}

// newManager starts a Manager over a fake runtime, with a reaper that
// looks every few milliseconds; it is shut down when the test ends.
func newManager(t *testing.T, mod func(*session.Config)) (*session.Manager, *sessiontest.Runtime, session.Config) {
	t.Helper()
	rt := &sessiontest.Runtime{}
	cfg := session.Config{
		StateDir:     t.TempDir(),
		Runtimes:     map[string]session.Runtime{"native": rt},
		ReapInterval: 5 * time.Millisecond,
		Resolver:     noHosts{},
	}
	if mod != nil {
		mod(&cfg)
	}
	m, err := session.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return m, rt, cfg
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline: no test depends on how fast anything is.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited too long for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func mustCreate(t *testing.T, m *session.Manager, req client.CreateRequest) client.Session {
	t.Helper()
	s, err := m.Create(context.Background(), req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return s
}

func stateOf(t *testing.T, m *session.Manager, id string) client.Session {
	t.Helper()
	s, err := m.Get(id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return s
}

func sessionDirs(t *testing.T, cfg session.Config) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(cfg.StateDir, "sessions"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestCreateGetListDelete(t *testing.T) {
	m, rt, cfg := newManager(t, nil)
	s := mustCreate(t, m, client.CreateRequest{Labels: map[string]string{"user": "ana"}})
	if !session.ValidID(s.ID) {
		t.Errorf("id %q is not a session id", s.ID)
	}
	if s.State != client.StateRunning || s.Runtime != "native" || s.Base != "host" || s.Profile != "default" {
		t.Errorf("created %+v, want running, native, host, default", s)
	}
	if s.Limits != session.DefaultLimits {
		t.Errorf("limits %+v, want the defaults %+v", s.Limits, session.DefaultLimits)
	}
	if got := s.ExpiresAt.Sub(s.CreatedAt); got < session.DefaultTTL || got > session.DefaultTTL+time.Minute {
		t.Errorf("expires %v after creation, want the default TTL %v", got, session.DefaultTTL)
	}
	if s.IdleTimeout.D() != session.DefaultIdle {
		t.Errorf("idle timeout %v, want %v", s.IdleTimeout.D(), session.DefaultIdle)
	}
	box := rt.Boxes()[0]
	if box.Spec.ID != s.ID || box.Spec.Dir != filepath.Join(cfg.StateDir, "sessions", s.ID) {
		t.Errorf("spec %s in %s, want %s in its own directory", box.Spec.ID, box.Spec.Dir, s.ID)
	}
	if st, err := os.Stat(box.Spec.Dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("session directory: %v, %v; want mode 0700", st, err)
	}
	if !slices.Equal(box.Spec.Listen, []uint16{gateway.HTTPPort, gateway.SOCKSPort}) {
		t.Errorf("spec.Listen = %v, want the gateway's ports", box.Spec.Listen)
	}
	if box.Spec.DiskBytes != session.DefaultLimits.DiskBytes || box.Spec.Policy.Limits.MemoryBytes != session.DefaultLimits.MemoryBytes {
		t.Errorf("spec limits %d, %+v; want the defaults", box.Spec.DiskBytes, box.Spec.Policy.Limits)
	}

	if got := stateOf(t, m, s.ID); got.ID != s.ID || got.State != client.StateRunning || got.Labels["user"] != "ana" {
		t.Errorf("Get = %+v", got)
	}
	other := mustCreate(t, m, client.CreateRequest{Labels: map[string]string{"user": "bo", "team": "x"}})
	list, err := m.List(nil)
	if err != nil || len(list) != 2 || list[0].ID != s.ID || list[1].ID != other.ID {
		t.Fatalf("List = %v, %v; want both, oldest first", list, err)
	}
	for _, tt := range []struct {
		labels map[string]string
		want   []string
	}{
		{map[string]string{"user": "ana"}, []string{s.ID}},
		{map[string]string{"user": "bo", "team": "x"}, []string{other.ID}},
		{map[string]string{"user": "bo", "team": "y"}, nil},
		{map[string]string{"team": "x"}, []string{other.ID}},
	} {
		list, err := m.List(tt.labels)
		var ids []string
		for _, s := range list {
			ids = append(ids, s.ID)
		}
		if err != nil || !slices.Equal(ids, tt.want) {
			t.Errorf("List(%v) = %v, %v; want %v", tt.labels, ids, err, tt.want)
		}
	}

	if err := m.Delete(context.Background(), s.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	got := stateOf(t, m, s.ID)
	if got.State != client.StateStopped || got.Reason != "deleted" {
		t.Errorf("after Delete: %s (%s), want stopped (deleted)", got.State, got.Reason)
	}
	if box.Destroyed() != 1 {
		t.Errorf("box destroyed %d times, want once", box.Destroyed())
	}
	if dirs := sessionDirs(t, cfg); !slices.Equal(dirs, []string{other.ID}) {
		t.Errorf("session directories after Delete: %v, want only %s", dirs, other.ID)
	}
	if err := m.Delete(context.Background(), s.ID); err != nil {
		t.Errorf("Delete of a stopped session: %v, want nil", err)
	}
	if _, err := m.Exec(context.Background(), s.ID, client.ExecRequest{Argv: []string{"true"}}); !errors.Is(err, session.ErrStopped) {
		t.Errorf("Exec in a deleted session: %v, want ErrStopped", err)
	}
	if err := m.Delete(context.Background(), "s-aaaaaaaaaaaaaaaaaaaa"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Delete of an unknown session: %v, want ErrNotFound", err)
	}
	if _, err := m.Get("s-../../etc"); !errors.Is(err, session.ErrBadRequest) {
		t.Errorf("Get of a malformed id: %v, want ErrBadRequest", err)
	}
}

func TestStoppedRecordsAreForgotten(t *testing.T) {
	m, _, _ := newManager(t, func(c *session.Config) { c.KeepStopped = time.Millisecond })
	s := mustCreate(t, m, client.CreateRequest{})
	if err := m.Delete(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stopped session to be forgotten", func() bool {
		_, err := m.Get(s.ID)
		return errors.Is(err, session.ErrNotFound)
	})
	if list, _ := m.List(nil); len(list) != 0 {
		t.Errorf("List after forgetting: %v", list)
	}
}

func TestBadRequests(t *testing.T) {
	base := t.TempDir()
	rootfs := filepath.Join(base, "bookworm")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	m, rt, cfg := newManager(t, func(c *session.Config) {
		c.Bases = []string{base}
		c.Max = client.Limits{MemoryBytes: 1 << 30, Pids: 1000, CPUs: 2, DiskBytes: 1 << 30}
		c.Runtimes["gvisor"] = &sessiontest.Runtime{RuntimeName: "gvisor", Unavailable: errors.New("runsc is not installed")}
	})
	for _, tt := range []struct {
		name string
		req  client.CreateRequest
		want string // in the message
	}{
		{"relative base", client.CreateRequest{Base: "bases/x"}, "absolute"},
		{"unclean base", client.CreateRequest{Base: base + "/../" + filepath.Base(base) + "/bookworm"}, "clean"},
		{"base outside the bases", client.CreateRequest{Base: "/"}, "not below"},
		{"missing base", client.CreateRequest{Base: filepath.Join(base, "nope")}, "no such file"},
		{"unknown runtime", client.CreateRequest{Runtime: "qemu"}, "unknown"},
		{"unknown profile", client.CreateRequest{Profile: "nope"}, "unknown profile"},
		{"negative memory", client.CreateRequest{Limits: client.Limits{MemoryBytes: -1}}, "negative"},
		{"negative pids", client.CreateRequest{Limits: client.Limits{Pids: -5}}, "negative"},
		{"negative cpus", client.CreateRequest{Limits: client.Limits{CPUs: -1}}, "cpus"},
		{"memory above the most", client.CreateRequest{Limits: client.Limits{MemoryBytes: 2 << 30}}, "above"},
		{"cpus above the most", client.CreateRequest{Limits: client.Limits{CPUs: 3}}, "above"},
		{"ttl above the most", client.CreateRequest{TTL: client.Duration(25 * time.Hour)}, "ttl"},
		{"idle above the most", client.CreateRequest{IdleTimeout: client.Duration(25 * time.Hour)}, "idle_timeout"},
		{"bad label name", client.CreateRequest{Labels: map[string]string{"a b": "c"}}, "label"},
		{"control in a label", client.CreateRequest{Labels: map[string]string{"a": "b\nc"}}, "control"},
		{"bad env name", client.CreateRequest{Env: map[string]string{"1A": "x"}}, "variable name"},
		{"NUL in env", client.CreateRequest{Env: map[string]string{"A": "x\x00y"}}, "NUL"},
		{"policy syntax", client.CreateRequest{Policy: "[network]\nallow = [\"a.com\"\n"}, "policy:"},
		{"policy unknown key", client.CreateRequest{Policy: "[network]\nallw = [\"a.com\"]\n"}, "policy:2:"},
		{"policy writes the host", client.CreateRequest{Policy: "[filesystem]\nwrite = [\"/etc\"]\n"}, "filesystem.write"},
		{"policy secrets", client.CreateRequest{Policy: "[network]\nsecrets = [\"GITHUB_TOKEN=api.github.com\"]\n"}, "network.secrets"},
		{"policy upstream", client.CreateRequest{Policy: "[network]\nupstream = \"http://127.0.0.1:3128\"\n"}, "network.upstream"},
		{"policy audit path", client.CreateRequest{Policy: "[audit]\npath = \"/tmp/x\"\n"}, "audit.path"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Create(context.Background(), tt.req)
			if !errors.Is(err, session.ErrBadRequest) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Create(%+v) = %v, want a bad request saying %q", tt.req, err, tt.want)
			}
		})
	}
	if _, err := m.Create(context.Background(), client.CreateRequest{Runtime: "gvisor"}); !errors.Is(err, session.ErrNoRuntime) || !strings.Contains(err.Error(), "runsc is not installed") {
		t.Errorf("Create on an unavailable runtime = %v, want ErrNoRuntime with the reason", err)
	}
	if n := len(rt.Boxes()); n != 0 {
		t.Errorf("%d boxes made for bad requests", n)
	}
	if dirs := sessionDirs(t, cfg); len(dirs) != 0 {
		t.Errorf("directories left by bad requests: %v", dirs)
	}

	// A base below the bases is taken, with symbolic links resolved.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(rootfs, link); err != nil {
		t.Fatal(err)
	}
	s := mustCreate(t, m, client.CreateRequest{Base: link, Policy: "[limits]\npids = 99\n", Limits: client.Limits{CPUs: 0.5}})
	real, _ := filepath.EvalSymlinks(rootfs)
	if s.Base != real {
		t.Errorf("base %q, want %q", s.Base, real)
	}
	if s.Limits.Pids != 99 || s.Limits.CPUs != 0.5 || s.Limits.MemoryBytes != session.DefaultLimits.MemoryBytes {
		t.Errorf("limits %+v: want pids from the policy, cpus from the request, memory by default", s.Limits)
	}
}

func TestPolicyReachesTheGateway(t *testing.T) {
	m, rt, _ := newManager(t, nil)
	s := mustCreate(t, m, client.CreateRequest{Profile: "dev", Policy: "[network]\nallow = [\"example.com\"]\ndeny = [\"pypi.org\"]\n"})
	p := rt.Boxes()[0].Spec.Policy
	if !slices.Contains(p.Network.Allow, "example.com") || !slices.Contains(p.Network.Allow, "registry.npmjs.org") {
		t.Errorf("allow = %v, want the profile's and the inline policy's", p.Network.Allow)
	}
	if slices.Contains(p.Network.Allow, "pypi.org") || !slices.Contains(p.Network.Deny, "pypi.org") {
		t.Errorf("allow %v, deny %v: want pypi.org denied", p.Network.Allow, p.Network.Deny)
	}
	if len(p.Writable) != 0 {
		t.Errorf("writable %v: a session gets no directory of the server", p.Writable)
	}

	// The gateway decides with that policy: a denied host is refused, and
	// the decision is an event of the session.
	_, sub, err := m.Events(s.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	status := connect(t, rt.Boxes()[0].Addr(gateway.HTTPPort), "pypi.org:443")
	if !strings.Contains(status, "403") {
		t.Errorf("CONNECT pypi.org: %q, want 403", status)
	}
	e := nextEvent(t, sub, "connection")
	if e["decision"] != "deny" || e["host"] != "pypi.org" || e["session"] != s.ID {
		t.Errorf("event %v, want a denial of pypi.org in %s", e, s.ID)
	}
}

// connect asks the gateway at addr for a tunnel and returns its status line.
func connect(t *testing.T, addr, target string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

func nextEvent(t *testing.T, sub *session.Subscription, kind string) client.Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e, ok := <-sub.C:
			if !ok {
				t.Fatalf("the event stream ended before a %s event", kind)
			}
			if e["event"] == kind {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event", kind)
		}
	}
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	m, rt, cfg := newManager(t, func(c *session.Config) { c.MaxSessions = 1 })
	rt.FailCreate(errors.New("no room"))
	if _, err := m.Create(context.Background(), client.CreateRequest{}); err == nil || !strings.Contains(err.Error(), "no room") {
		t.Fatalf("Create = %v, want the runtime's error", err)
	}
	if dirs := sessionDirs(t, cfg); len(dirs) != 0 {
		t.Errorf("directories left by a failed create: %v", dirs)
	}
	if list, _ := m.List(nil); len(list) != 0 {
		t.Errorf("sessions after a failed create: %v", list)
	}
	rt.FailCreate(nil)
	// The failed session did not keep its slot.
	s := mustCreate(t, m, client.CreateRequest{})
	if _, err := m.Create(context.Background(), client.CreateRequest{}); !errors.Is(err, session.ErrLimit) {
		t.Errorf("a second session past MaxSessions 1: %v, want ErrLimit", err)
	}
	if err := m.Delete(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, m, client.CreateRequest{})
}

func TestTTL(t *testing.T) {
	m, rt, cfg := newManager(t, nil)
	s := mustCreate(t, m, client.CreateRequest{TTL: client.Duration(20 * time.Millisecond)})
	waitFor(t, "the session's TTL", func() bool { return stateOf(t, m, s.ID).State == client.StateStopped })
	if got := stateOf(t, m, s.ID); got.Reason != "ttl" {
		t.Errorf("reason %q, want ttl", got.Reason)
	}
	if rt.Boxes()[0].Destroyed() != 1 || len(sessionDirs(t, cfg)) != 0 {
		t.Errorf("after the TTL: box destroyed %d times, dirs %v", rt.Boxes()[0].Destroyed(), sessionDirs(t, cfg))
	}
}

func TestSetTimeout(t *testing.T) {
	m, _, _ := newManager(t, nil)
	s := mustCreate(t, m, client.CreateRequest{})
	idle := client.Duration(time.Minute)
	got, err := m.SetTimeout(s.ID, client.TimeoutRequest{TTL: client.Duration(2 * time.Hour), IdleTimeout: &idle})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(got.ExpiresAt); d < time.Hour || d > 2*time.Hour {
		t.Errorf("expires in %v, want about 2h", d)
	}
	if got.IdleTimeout != idle {
		t.Errorf("idle %v, want %v", got.IdleTimeout, idle)
	}
	for _, req := range []client.TimeoutRequest{{TTL: 0}, {TTL: client.Duration(48 * time.Hour)}, {TTL: client.Duration(time.Hour), IdleTimeout: new(client.Duration)}} {
		if _, err := m.SetTimeout(s.ID, req); !errors.Is(err, session.ErrBadRequest) {
			t.Errorf("SetTimeout(%+v) = %v, want ErrBadRequest", req, err)
		}
	}
	// Shortened, it expires.
	if _, err := m.SetTimeout(s.ID, client.TimeoutRequest{TTL: client.Duration(time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new TTL", func() bool { return stateOf(t, m, s.ID).Reason == "ttl" })
}

func TestIdle(t *testing.T) {
	m, _, _ := newManager(t, nil)
	s := mustCreate(t, m, client.CreateRequest{IdleTimeout: client.Duration(time.Millisecond)})
	// An exec running keeps it: cat waits on its stdin.
	e, err := m.Exec(context.Background(), s.ID, client.ExecRequest{Argv: []string{"cat"}, StdinStream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := stateOf(t, m, s.ID); got.Execs != 1 {
		t.Errorf("execs %d, want 1", got.Execs)
	}
	// Many reaper rounds pass with the exec running (a slow machine only
	// makes fewer pass): the session stays.
	time.Sleep(100 * time.Millisecond)
	if got := stateOf(t, m, s.ID); got.State != client.StateRunning {
		t.Fatalf("with an exec running: %s (%s), want running", got.State, got.Reason)
	}
	if err := e.WriteStdin(strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
	<-e.Done()
	waitFor(t, "the idle timeout", func() bool {
		got, _ := m.Get(s.ID) // Get touches it, but only a running one
		return got.State == client.StateStopped
	})
	if got := stateOf(t, m, s.ID); got.Reason != "idle" {
		t.Errorf("reason %q, want idle", got.Reason)
	}
}

func TestBoxEndsOnItsOwn(t *testing.T) {
	m, rt, cfg := newManager(t, nil)
	s := mustCreate(t, m, client.CreateRequest{})
	rt.Boxes()[0].Crash()
	waitFor(t, "the session to stop", func() bool { return stateOf(t, m, s.ID).State == client.StateStopped })
	if got := stateOf(t, m, s.ID); !strings.HasPrefix(got.Reason, "failed: ") {
		t.Errorf("reason %q, want failed: ...", got.Reason)
	}
	if len(sessionDirs(t, cfg)) != 0 {
		t.Errorf("directories left: %v", sessionDirs(t, cfg))
	}
}

func TestStartSweeps(t *testing.T) {
	state := t.TempDir()
	left := filepath.Join(state, "sessions", "s-aaaaaaaaaaaaaaaaaaaa")
	if err := os.MkdirAll(filepath.Join(left, "root", "workspace"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, rt, _ := newManager(t, func(c *session.Config) { c.StateDir = state })
	if sw := rt.Sweeps(); !slices.Equal(sw, []string{state}) {
		t.Errorf("Sweep called with %v, want [%s]", sw, state)
	}
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a previous server's session directory: %v, want it removed", err)
	}
}

func TestShutdown(t *testing.T) {
	rt := &sessiontest.Runtime{}
	state := t.TempDir()
	m, err := session.NewManager(session.Config{StateDir: state, Runtimes: map[string]session.Runtime{"native": rt}})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := mustCreate(t, m, client.CreateRequest{})
	b := mustCreate(t, m, client.CreateRequest{})
	e, err := m.Exec(context.Background(), a.ID, client.ExecRequest{Argv: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a.ID, b.ID} {
		if got := stateOf(t, m, id); got.State != client.StateStopped || got.Reason != "shutdown" {
			t.Errorf("%s after Shutdown: %s (%s)", id, got.State, got.Reason)
		}
	}
	select {
	case <-e.Done():
	default:
		t.Error("an exec still running after Shutdown")
	}
	if _, err := m.Create(context.Background(), client.CreateRequest{}); !errors.Is(err, session.ErrLimit) {
		t.Errorf("Create after Shutdown: %v, want refused", err)
	}
	ents, _ := os.ReadDir(filepath.Join(state, "sessions"))
	if len(ents) != 0 {
		t.Errorf("directories left after Shutdown: %v", ents)
	}
}

func TestExec(t *testing.T) {
	m, _, _ := newManager(t, nil)
	s := mustCreate(t, m, client.CreateRequest{Env: map[string]string{"A": "session", "B": "session"}})
	e, err := m.Exec(context.Background(), s.ID, client.ExecRequest{
		Argv: []string{"sh", "-c", "pwd; env; echo oops >&2; exit 3"},
		Env:  map[string]string{"B": "exec"},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(e.Process().Stdout())
	errOut, _ := io.ReadAll(e.Process().Stderr())
	<-e.Done()
	e.Close()
	st, err := e.Status()
	if err != nil || st.Code != 3 {
		t.Errorf("status %+v, %v; want exit 3", st, err)
	}
	if string(errOut) != "oops\n" {
		t.Errorf("stderr %q", errOut)
	}
	lines := strings.Split(string(out), "\n")
	if !strings.HasSuffix(lines[0], "/root/workspace") {
		t.Errorf("cwd %q, want the session's /workspace", lines[0])
	}
	for _, want := range []string{"A=session", "B=exec", "HOME=/workspace", "LANG=C.UTF-8", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HTTPS_PROXY=http://127.0.0.1:3128"} {
		if !slices.Contains(lines, want) {
			t.Errorf("env lacks %s:\n%s", want, out)
		}
	}
	if slices.Contains(lines, "B=session") || slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "TERM=") }) {
		t.Errorf("env has B=session or TERM without a tty:\n%s", out)
	}

	if _, err := m.Exec(context.Background(), s.ID, client.ExecRequest{Argv: []string{"no-such-command-here"}}); err == nil {
		t.Error("a command not found started")
	} else {
		var xe *session.ExecError
		if !errors.As(err, &xe) || xe.Code != 127 {
			t.Errorf("a command not found: %v, want an ExecError 127", err)
		}
	}

	for _, req := range []client.ExecRequest{
		{},
		{Argv: []string{""}},
		{Argv: []string{"true"}, Cwd: "relative"},
		{Argv: []string{"true"}, Env: map[string]string{"A=B": "c"}},
		{Argv: []string{"a\x00b"}},
		{Argv: []string{"true"}, Rows: 10},
	} {
		if _, err := m.Exec(context.Background(), s.ID, req); !errors.Is(err, session.ErrBadRequest) {
			t.Errorf("Exec(%+v) = %v, want ErrBadRequest", req, err)
		}
	}

	// The session's events tell the execs' starts and ends.
	past, _, err := m.Events(s.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range past {
		kinds = append(kinds, ev["event"].(string))
	}
	want := []string{"session_start", "exec_start", "exec_end", "exec_start", "exec_end"}
	if !slices.Equal(kinds, want) {
		t.Errorf("events %v, want %v", kinds, want)
	}
	if end := past[2]; end["exec_id"] != e.ID || end["exit_code"] != 3 {
		t.Errorf("exec_end %v, want %s with exit code 3", end, e.ID)
	}
	if end := past[4]; end["exit_code"] != 127 || end["error"] == nil {
		t.Errorf("exec_end of a command not found: %v", end)
	}
}

func TestExecTimeoutAndSignal(t *testing.T) {
	m, _, _ := newManager(t, nil)
	s := mustCreate(t, m, client.CreateRequest{})
	e, err := m.Exec(context.Background(), s.ID, client.ExecRequest{Argv: []string{"sleep", "60"}, Timeout: client.Duration(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	<-e.Done()
	e.Close()
	if st, _ := e.Status(); !e.TimedOut() || st.Signal != 9 || st.Code != 137 {
		t.Errorf("status %+v, timed out %v; want SIGKILL by the timeout", st, e.TimedOut())
	}

	e, err = m.Exec(context.Background(), s.ID, client.ExecRequest{Argv: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	found, err := m.Execution(s.ID, e.ID)
	if err != nil || found != e {
		t.Fatalf("Execution(%s) = %v, %v", e.ID, found, err)
	}
	if err := found.Signal("bogus"); !errors.Is(err, session.ErrBadRequest) {
		t.Errorf("Signal(bogus) = %v, want ErrBadRequest", err)
	}
	if err := found.Resize(10, 10); !errors.Is(err, session.ErrConflict) {
		t.Errorf("Resize without a tty = %v, want ErrConflict", err)
	}
	if err := found.WriteStdin(strings.NewReader("x")); !errors.Is(err, session.ErrConflict) {
		t.Errorf("WriteStdin without stdin_stream = %v, want ErrConflict", err)
	}
	if err := found.Signal("TERM"); err != nil {
		t.Fatal(err)
	}
	<-e.Done()
	if st, _ := e.Status(); st.Signal != 15 || e.TimedOut() {
		t.Errorf("status %+v, want ended by SIGTERM", st)
	}
	if _, err := m.Execution(s.ID, e.ID); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Execution of an ended exec: %v, want ErrNotFound", err)
	}
	if _, err := m.Execution(s.ID, "e-!"); !errors.Is(err, session.ErrBadRequest) {
		t.Errorf("Execution of a malformed id: %v, want ErrBadRequest", err)
	}
}

func TestParseSignal(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{{"SIGINT", 2}, {"INT", 2}, {"int", 2}, {"2", 2}, {"SIGKILL", 9}, {"15", 15}} {
		if got, err := session.ParseSignal(tt.in); err != nil || int(got) != tt.want {
			t.Errorf("ParseSignal(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "0", "65", "-1", "SIGNOPE", "KILL9"} {
		if _, err := session.ParseSignal(in); !errors.Is(err, session.ErrBadRequest) {
			t.Errorf("ParseSignal(%q) = %v, want ErrBadRequest", in, err)
		}
	}
}

func TestEventsEndWithTheSession(t *testing.T) {
	m, _, _ := newManager(t, nil)
	s := mustCreate(t, m, client.CreateRequest{})
	past, sub, err := m.Events(s.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(past) != 1 || past[0]["event"] != "session_start" || past[0]["session"] != s.ID {
		t.Errorf("past events %v, want session_start", past)
	}
	if err := m.Delete(context.Background(), s.ID); err != nil {
		t.Fatal(err)
	}
	e := nextEvent(t, sub, "session_end")
	if e["reason"] != "deleted" {
		t.Errorf("session_end %v, want reason deleted", e)
	}
	if _, ok := <-sub.C; ok {
		t.Error("the stream goes on after session_end")
	}
	if sub.Dropped() {
		t.Error("a follower that kept up was dropped")
	}
	// After the end, a reader gets the history and no subscription.
	past, sub, err = m.Events(s.ID, true)
	if err != nil || sub != nil || past[len(past)-1]["event"] != "session_end" {
		t.Errorf("Events of a stopped session: %v, %v, %v", past, sub, err)
	}
}

// A runtime that keeps boxes of its own (the native runtime's sessions
// started ahead of need) is closed at Shutdown, after the sessions end.
func TestShutdownClosesRuntimes(t *testing.T) {
	cr := &closingRuntime{Runtime: &sessiontest.Runtime{}}
	m, _, _ := newManager(t, func(c *session.Config) { c.Runtimes = map[string]session.Runtime{"native": cr} })
	mustCreate(t, m, client.CreateRequest{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if cr.closed != 1 {
		t.Errorf("the runtime was closed %d times at Shutdown, want once", cr.closed)
	}
}

type closingRuntime struct {
	session.Runtime
	closed int
}

func (c *closingRuntime) Close() error {
	c.closed++
	return nil
}
