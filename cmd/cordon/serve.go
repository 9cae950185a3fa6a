package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/audit"
	"github.com/cordon-sandbox/cordon/internal/policy"
	"github.com/cordon-sandbox/cordon/internal/server"
	"github.com/cordon-sandbox/cordon/internal/session"
)

type serveFlags struct {
	listen      string
	tokenFile   string
	tlsCert     string
	tlsKey      string
	stateDir    string
	socketGroup string
	bases       []string
	maxSessions int
	warm        int
	degraded    []string
	sessionUser string
	runsc       string
	defaultTTL  time.Duration
	maxTTL      time.Duration
	defaultIdle time.Duration
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Run the session server: disposable sandboxes behind an HTTP API",
		Long: `Run Cordon's session server. Each session is a sandbox that stays up between
commands: its own root (a read-only base under a throwaway writable layer),
its own /workspace, namespaces, Landlock, seccomp, cgroup limits and egress
gateway, the walls of "cordon run". Clients create sessions, run commands in
them, copy files in and out, follow their events, and delete them; nothing of
a session remains after it ends. A session also ends at its TTL, or when it
has been idle (no request naming it, no command running) for its idle
timeout.

The API (docs/api.md, docs/openapi.yaml), JSON under /v1:

  POST   /v1/sessions                    create: base, runtime, profile, policy, env, labels, limits, ttl
  GET    /v1/sessions[?label=K=V]        list;  GET|DELETE /v1/sessions/ID  get, delete
  POST   /v1/sessions/ID/exec            run a command; the answer streams its output as
                                         newline-delimited JSON frames, then its exit status
  POST   /v1/sessions/ID/execs/EXEC/stdin|resize|signal
  PUT|GET /v1/sessions/ID/files?path=P   one file;  GET .../files/stat, .../files/list
  PUT|GET /v1/sessions/ID/archive?path=D a tar of a directory
  GET    /v1/sessions/ID/events[?follow=1]  the session's gateway decisions and execs
  GET    /v1/health;  GET /metrics (Prometheus)

"cordon session" is a client of this API.

Where it listens: by default a unix socket, /run/cordon/cordon.sock when run
as root, else $XDG_RUNTIME_DIR/cordon/cordon.sock. Who may use the socket is
who may open it: mode 0660, in the group --socket-group names. On TCP
(--listen tcp://HOST:PORT) every request must carry "Authorization: Bearer
TOKEN" with the token in the first line of --token-file, a file no one but
its owner may read; --tls-cert and --tls-key serve HTTPS.

Where it keeps its state: --state-dir, by default /var/lib/cordon when run as
root, else $XDG_STATE_HOME/cordon/serve. It holds serve.lock (one server per
state directory) and sessions/ID, one directory per session. At start, what
a server that died left there, and its sessions' cgroups, are removed.

Bases: a session's root is "host" (this machine's root, read-only, with
/home, /root, /run, /tmp, /var/lib, /var/log and the like hidden) or a root
filesystem in a directory below a --base-dir (by default STATE/bases). To
make a Debian one:

  debootstrap --variant=minbase bookworm /var/lib/cordon/bases/bookworm

and create sessions with "base": "/var/lib/cordon/bases/bookworm".

Runtimes: "native" (the default), the walls of "cordon run" (Linux with
Landlock ABI 6 or newer; "cordon doctor" says if this machine has them), and
"gvisor": the session's processes run on gVisor's kernel under runsc, when
runsc is installed (CGO_ENABLED=0 go install gvisor.dev/gvisor/runsc@latest)
and the server runs as root. GET /v1/health says which runtimes can run
here, and why not.

--warm keeps a few native sessions started ahead of need for each shape of
session asked for lately (base, size, masks): a create takes one at once,
gives it its limits and gateway, and another is started 250 ms later.

Whom sessions run as: root of their own user namespace, with no capability.
For a root server, over the host base that root stands for an unprivileged
host uid (--session-user, nobody by default), so that a session owns none of
the host's root-owned files; over a base directory, for root. A server run
as a user runs its sessions as itself. The files API acts as the same user.

SIGINT or SIGTERM stops the server: it stops accepting, ends every session,
and exits 0. It writes one line on stderr for each session created, deleted
or expired.`,
		Example: `  cordon serve
  sudo cordon serve --socket-group cordon
  cordon serve --listen tcp://127.0.0.1:8790 --token-file ~/.config/cordon/token
  cordon serve --max-sessions 200 --default-ttl 30m --default-idle 5m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServe(cmd.Context(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "", "where to listen: unix:///PATH or tcp://HOST:PORT (default "+defaultServer()+")")
	fl.StringVar(&f.tokenFile, "token-file", "", "the bearer token clients must send, in the first line of `FILE` (required with tcp://)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS on TCP with the certificate in `FILE` (PEM, with --tls-key)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "the private key of --tls-cert, in `FILE`")
	fl.StringVar(&f.stateDir, "state-dir", "", "where sessions live on this machine (default "+defaultStateDirHelp()+")")
	fl.StringVar(&f.socketGroup, "socket-group", "", "give the unix socket to `GROUP` (name or gid): its members may use the API")
	fl.StringArrayVar(&f.bases, "base-dir", nil, "a `DIR` whose subdirectories sessions may name as their base root filesystem (repeatable; default STATE/bases)")
	fl.IntVar(&f.maxSessions, "max-sessions", session.DefaultMaxSessions, "the most sessions at once")
	fl.IntVar(&f.warm, "warm", 2, "keep `N` native sessions started ahead of need for each shape of session asked for lately (base, size, masks), so that a create waits for no box; their limits and gateway are given when taken")
	fl.StringVar(&f.sessionUser, "session-user", "65534:65534", "as root: the host's `UID:GID` that sessions over the host base run as (uid 0 of their user namespace stands for it), so that they own none of the host's root-owned files; sessions over a base directory run as root of theirs. A server run as a user runs its sessions as itself")
	fl.StringArrayVar(&f.degraded, "allow-degraded", nil, "let every session go without `WALL` where this machine cannot raise it (cgroup: limits become rlimits; landlock; seccomp)")
	fl.StringVar(&f.runsc, "runtime-gvisor-runsc", "runsc", "the runsc binary of the gvisor runtime: a `PATH`, or a name looked up in PATH")
	fl.DurationVar(&f.defaultTTL, "default-ttl", session.DefaultTTL, "a session's TTL when its request gives none")
	fl.DurationVar(&f.maxTTL, "max-ttl", session.DefaultMaxTTL, "the longest TTL (and idle timeout) a request may ask for")
	fl.DurationVar(&f.defaultIdle, "default-idle", session.DefaultIdle, "a session's idle timeout when its request gives none")
	cmd.MarkFlagsRequiredTogether("tls-cert", "tls-key")
	return cmd
}

func defaultStateDirHelp() string {
	if os.Geteuid() == 0 {
		return "/var/lib/cordon"
	}
	return "$XDG_STATE_HOME/cordon/serve"
}

func defaultStateDir() (string, error) {
	if os.Geteuid() == 0 {
		return "/var/lib/cordon", nil
	}
	dir, err := audit.StateDir()
	if err != nil {
		return "", fmt.Errorf("%w (name one with --state-dir)", err)
	}
	return filepath.Join(dir, "serve"), nil
}

func runServe(ctx context.Context, stderr io.Writer, f serveFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	logger := log.New(stderr, "", 0)
	logf := func(format string, args ...any) {
		logger.Printf("%s cordon serve: %s", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
	}

	addr := f.listen
	if addr == "" {
		addr = defaultServer()
	}
	tcp := strings.HasPrefix(addr, "tcp://")
	var token string
	switch {
	case tcp && f.tokenFile == "":
		return fmt.Errorf("--listen %s needs --token-file: on TCP, anyone who can connect could run commands otherwise", addr)
	case !tcp && (f.tlsCert != "" || f.tokenFile != ""):
		return fmt.Errorf("--token-file and --tls-cert are for --listen tcp://; on a unix socket, access is the socket's mode and --socket-group")
	case tcp:
		t, err := readTokenFile(f.tokenFile)
		if err != nil {
			return err
		}
		token = t
	}

	state := f.stateDir
	if state == "" {
		s, err := defaultStateDir()
		if err != nil {
			return err
		}
		state = s
	}
	state, err := filepath.Abs(state)
	if err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	if err := os.MkdirAll(state, 0o700); err != nil {
		return fmt.Errorf("making the state directory: %w", err)
	}
	unlock, err := lockState(state)
	if err != nil {
		return err
	}
	defer unlock()
	sessionUID, sessionGID, err := parseSessionUser(f.sessionUser)
	if err != nil {
		return err
	}
	// Archives sent in are spooled here by the server acting as the
	// session's owner (see internal/server): a root server gives it to
	// the ids its sessions run as. Sessions do not see the host's /tmp.
	spool, err := os.MkdirTemp("", "cordon-spool-")
	if err != nil {
		return fmt.Errorf("making the spool directory: %w", err)
	}
	defer os.RemoveAll(spool)
	if os.Geteuid() == 0 {
		if err := os.Chown(spool, sessionUID, sessionGID); err != nil {
			return fmt.Errorf("giving the spool directory to the sessions' user: %w", err)
		}
	}
	bases := f.bases
	if len(bases) == 0 {
		bases = []string{filepath.Join(state, "bases")}
	}
	for i, b := range bases {
		if bases[i], err = filepath.Abs(b); err != nil {
			return fmt.Errorf("--base-dir: %w", err)
		}
	}

	var degraded []policy.Wall
	for _, d := range f.degraded {
		w, err := policy.ParseWall(d)
		if err != nil {
			return fmt.Errorf("--allow-degraded: %w", err)
		}
		degraded = append(degraded, w)
	}
	if f.warm < 0 {
		return fmt.Errorf("--warm %d: want 0 or more", f.warm)
	}

	m, err := session.NewManager(session.Config{
		StateDir:    state,
		Runtimes:    serveRuntimes(f.runsc, f.warm, sessionUID, sessionGID),
		Degraded:    degraded,
		MaxSessions: f.maxSessions,
		DefaultTTL:  f.defaultTTL,
		MaxTTL:      f.maxTTL,
		DefaultIdle: f.defaultIdle,
		Bases:       bases,
		Hide:        serveHidden(&f, addr),
		Resolver:    testResolver,
		Log:         logf,
	})
	if err != nil {
		return err
	}
	for name, err := range m.Runtimes() {
		if err != nil {
			logf("the %s runtime cannot run here: %v", name, err)
		}
	}
	// The sweep comes before the socket: no request reaches a server
	// that has not yet removed what the last one left.
	if err := m.Start(ctx); err != nil {
		return err
	}
	shutdown := func() {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.Shutdown(c); err != nil {
			logf("%v", err)
		}
	}

	l, err := server.Listen(addr, f.socketGroup)
	if err != nil {
		shutdown()
		return err
	}
	srv := &http.Server{
		Handler: server.New(m, server.Options{Token: token, SpoolDir: spool, Log: logf}),
		// No WriteTimeout: an exec's answer streams for as long as the
		// command runs.
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(stderr, "cordon serve: http: ", 0),
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() {
		if f.tlsCert != "" {
			served <- srv.ServeTLS(l, f.tlsCert, f.tlsKey)
		} else {
			served <- srv.Serve(l)
		}
	}()
	logf("listening on %s; state in %s", addr, state)

	var serveErr error
	select {
	case <-ctx.Done():
		logf("stopping: ending every session")
	case serveErr = <-served:
	}
	// Stop accepting first; ending the sessions ends the exec and event
	// streams, which lets the server's Shutdown return.
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Shutdown(c); err != nil {
			srv.Close()
		}
	}()
	shutdown()
	<-stopped
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", serveErr)
	}
	logf("stopped")
	return nil
}

// readTokenFile reads the bearer token: the first line of path, which no
// one but its owner may read.
func readTokenFile(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("--token-file %s: mode %04o lets others read the token; chmod 600 it", path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(fh, 64<<10))
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	token := strings.TrimSpace(line)
	if len(token) < 16 {
		return "", fmt.Errorf("--token-file %s: the token in its first line is shorter than 16 characters (head -c 32 /dev/urandom | base64 makes one)", path)
	}
	return token, nil
}

// lockState takes the state directory for this server: a second one on
// the same directory would sweep the first one's sessions.
func lockState(state string) (func(), error) {
	path := filepath.Join(state, "serve.lock")
	fh, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := unix.Flock(int(fh.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		fh.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another cordon serve uses the state directory %s", state)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { fh.Close() }, nil
}

// serveHidden are the server's files that sessions over the host base must
// not see: the token, the TLS key and certificate, the socket.
func serveHidden(f *serveFlags, addr string) []string {
	var out []string
	for _, p := range []string{f.tokenFile, f.tlsKey, f.tlsCert} {
		if p != "" {
			if abs, err := filepath.Abs(p); err == nil {
				out = append(out, abs)
			}
		}
	}
	if path, ok := strings.CutPrefix(addr, "unix://"); ok && filepath.IsAbs(path) {
		out = append(out, path)
	}
	return out
}

// parseSessionUser reads --session-user, UID:GID, both numbers, neither 0.
func parseSessionUser(s string) (int, int, error) {
	u, g, ok := strings.Cut(s, ":")
	uid, uerr := strconv.Atoi(u)
	gid, gerr := strconv.Atoi(g)
	if !ok || uerr != nil || gerr != nil || uid <= 0 || gid <= 0 || uid > 1<<31-2 || gid > 1<<31-2 {
		return 0, 0, fmt.Errorf("--session-user %q: want UID:GID, two numbers other than 0, such as 65534:65534", s)
	}
	return uid, gid, nil
}
