package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cordon-sandbox/cordon/internal/gateway"
	"github.com/cordon-sandbox/cordon/internal/policy"
	"github.com/cordon-sandbox/cordon/internal/sandbox"
)

type runFlags struct {
	workspace    string
	write        []string
	mask         []string
	env          []string
	memory       string
	pids         int64
	cpus         float64
	timeout      time.Duration
	degraded     []string
	ports        []string
	allow        []string
	deny         []string
	upstream     string
	audit        string
	noDecoys     bool
	onCanary     string
	inspect      []string
	secrets      []string
	allowSecrets []string
	verbose      bool
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] -- CMD [ARGS...]",
		Short: "Run a command contained: host read-only, workspace writable, no network",
		Long: `Run CMD in a new sandbox and return its exit status.

Inside, CMD sees the host read-only, minus credential stores (~/.aws, ~/.ssh,
~/.config/gh, ... : see the README), which hold decoys instead (fakes in the
real formats, made for the run, with canary tokens: if one tries to leave
through the gateway, it is blocked, cordon raises an alarm on its stderr and
stops the run with exit status 86), and host sockets (/run), which appear
empty.
It can write only the workspace (the current directory, or --workspace), the
paths given with --write, and a private /tmp and /dev/shm. In the workspace,
files that host tools execute or trust later (.git/hooks, .git/config,
.vscode/, .envrc, .claude/, .mcp.json, ...) stay read-only and cannot be
created. There is no network but the sandbox's own loopback, and the egress
gateway, which lets out only the destinations --allow-domain names (none by
default; see "Network" below). CMD sees and
signals no process outside, holds no capability, and is limited to 4096
processes by default. Environment variables that look like secrets (AWS_*,
*_TOKEN, *SECRET*, *_KEY, *PASSWORD*, SSH_AUTH_SOCK, ...) are not passed in.

The walls are namespaces, a read-only mount view, Landlock, seccomp and a
cgroup, all at once. If one cannot be raised here, CMD does not run; see
"cordon doctor". --allow-degraded names a wall to run without, loudly.

Network: inside, an HTTP proxy listens on 127.0.0.1:3128 (CONNECT for any
TCP, TLS included; absolute-form requests for plain HTTP) and a SOCKS5 proxy
on 127.0.0.1:1080, and HTTP_PROXY, HTTPS_PROXY, ALL_PROXY (both cases),
NO_PROXY and the npm, pip, cargo, node, JVM and git-over-ssh settings point
at them. Names are resolved on the host; a name that resolves to a
loopback, private, link-local or metadata address, or one of this host's,
is refused unless --allow-domain names that address. A denied connection
gets HTTP 403 (SOCKS5: reply 2) saying which rule denied it and which flag
would allow it; --verbose says it on stderr too. Every decision goes to
the audit log; "cordon audit" summarises it.

Secrets: what leaves is watched for the decoys' canaries, for the values in
this host's real credential stores and dropped variables, and for
well-known token formats (AWS, GitHub, GitLab, Slack, npm, PyPI, private
keys, ...), in host names, URLs, headers and plaintext bodies, encoded or
not; a hit is blocked with HTTP 403 and said on cordon's stderr
(--allow-secret lets a false positive through). HTTPS is seen only for
domains named with --inspect: cordon then ends TLS itself with a
certificate from a CA made for the run (trusted inside through the system
trust store and SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE,
CURL_CA_BUNDLE, GIT_SSL_CAINFO, PIP_CERT), verifies the destination against
this host's trust store, and can limit methods and paths. --secret
NAME=HOST gives the command a placeholder in $NAME and puts cordon's own
$NAME in its place only on HTTPS requests to HOST.

stdin, stdout and stderr pass through; when both stdin and stdout are a
terminal, CMD gets a terminal of its own (job control, Ctrl-C, resizes).
Signals sent to cordon are forwarded to CMD. If cordon is killed, everything
it started dies with it.

Exit status: CMD's own; 128+N if CMD died of signal N; 124 if --timeout
killed it; 125 if Cordon could not start the sandbox; 126 if CMD cannot be
executed; 127 if CMD is not found; 86 if a decoy credential tried to leave (see
--on-canary).`,
		Example: `  cordon run -- make test
  cordon run --workspace ~/src/app --write ~/.cache/go-build -- go build ./...
  echo hi | cordon run -- cat
  cordon run --memory 2G --timeout 10m -- npm test
  cordon run --env GITHUB_TOKEN -- gh pr list   # pass one secret on purpose
  cordon run --allow-domain pypi.org --allow-domain files.pythonhosted.org -- pip download idna
  cordon run --allow-domain github.com --allow-domain '*.githubusercontent.com' -- git clone https://github.com/o/r
  cordon run --allow-domain registry.npmjs.org --inspect 'registry.npmjs.org GET,HEAD /' -- npm install
  cordon run --secret GITHUB_TOKEN=api.github.com -- gh api user`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("no command to run: cordon run [flags] -- CMD [ARGS...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() < 0 && len(args) > 0 && strings.HasPrefix(args[0], "-") {
				return fmt.Errorf("put -- before the command: cordon run [flags] -- %s", strings.Join(args, " "))
			}
			return runRun(cmd.Context(), f, args)
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.StringVarP(&f.workspace, "workspace", "w", "", "the writable directory (default: the current directory)")
	fl.StringArrayVar(&f.write, "write", nil, "also make `PATH` writable (repeatable)")
	fl.StringArrayVar(&f.mask, "mask", nil, "also hide `PATH` behind an empty directory or file (repeatable)")
	fl.StringArrayVar(&f.env, "env", nil, "pass the secret-looking variable `NAME` in anyway (repeatable)")
	fl.StringVar(&f.memory, "memory", "", "memory limit, e.g. 512M or 4G (default: none)")
	fl.Int64Var(&f.pids, "pids", policy.DefaultPids, "limit on processes and threads in the sandbox (0: none; at least 32)")
	fl.Float64Var(&f.cpus, "cpus", 0, "CPU limit in cores, e.g. 1.5 (default: none)")
	fl.DurationVar(&f.timeout, "timeout", 0, "kill the sandbox after this long, e.g. 30s or 10m; exit status 124")
	fl.StringArrayVar(&f.degraded, "allow-degraded", nil, "run without `WALL` if this host cannot raise it: landlock, seccomp or cgroup (repeatable)")
	fl.StringArrayVar(&f.ports, "allow-loopback-port", nil, "allow TCP connections to `PORT` on the sandbox's own loopback (repeatable)")
	fl.StringArrayVar(&f.allow, "allow-domain", nil, "let connections to `HOST` out through the gateway: example.com, *.example.org (not the apex), example.com:8443, 10.0.0.5, 10.0.0.0/8 (repeatable)")
	fl.StringArrayVar(&f.deny, "deny-domain", nil, "refuse `HOST` even if --allow-domain allows it; same forms (repeatable)")
	fl.StringVar(&f.upstream, "upstream-proxy", "", "send allowed connections on through this proxy, http://HOST:PORT or socks5://HOST:PORT (it resolves names)")
	fl.StringVar(&f.audit, "audit", "", "write the run's audit log (JSON Lines) to `FILE`; none: no log (default: a new file in ~/.local/state/cordon/audit)")
	fl.BoolVar(&f.noDecoys, "no-decoys", false, "leave masked credential stores empty instead of filling them with decoys that carry canary tokens")
	fl.StringVar(&f.onCanary, "on-canary", "stop", "when a decoy's canary tries to leave: stop (block it and end the run, exit status 86) or block (block it, keep running)")
	fl.StringArrayVar(&f.inspect, "inspect", nil, "inspect TLS to `HOST` (its requests are then scanned and decided one by one), optionally allowing only some methods and path prefixes: 'registry.npmjs.org GET,HEAD /' (repeatable)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "inject secret `NAME=HOST[,HOST...]`: the sandbox's $NAME holds a placeholder; the gateway swaps cordon's own $NAME in on HTTPS requests to those hosts only, which it inspects and allows (repeatable)")
	fl.StringArrayVar(&f.allowSecrets, "allow-secret", nil, "let a token format through that is a false positive: `RULE` or RULE@HOST, e.g. github-token@api.github.com (repeatable)")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "say what Cordon does: dropped variables, cgroup, walls, each denied connection")
	return cmd
}

func runRun(ctx context.Context, f runFlags, argv []string) error {
	logf := func(format string, args ...any) {}
	if f.verbose {
		logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "cordon: "+format+"\n", args...) }
	}
	warnf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "cordon: warning: "+format+"\n", args...)
	}
	p, err := buildPolicy(f)
	if err != nil {
		return &sandbox.Error{Code: sandbox.ExitInternal, Err: err}
	}
	for w := range p.Degraded {
		warnf("--allow-degraded %s: the %s wall will be dropped if this host cannot raise it", w, w)
	}
	env, dropped := p.FilterEnv(os.Environ())
	for _, d := range dropped {
		logf("not passing %s", d)
	}
	self, err := os.Executable()
	if err != nil {
		self = ""
	}
	env = withEnv(env, proxyEnv(self, os.Getenv("JAVA_TOOL_OPTIONS")))
	if f.onCanary != "stop" && f.onCanary != "block" {
		return &sandbox.Error{Code: sandbox.ExitInternal, Err: fmt.Errorf("--on-canary %q: stop or block", f.onCanary)}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var dec *decoys
	var alarmed *alarm
	home, _ := os.UserHomeDir()
	if !f.noDecoys && !filepath.IsAbs(home) {
		logf("no home directory: no decoys")
	} else if !f.noDecoys {
		if dec, err = makeDecoys(home); err != nil {
			return &sandbox.Error{Code: sandbox.ExitInternal, Err: err}
		}
		alarmed = &alarm{d: dec}
		if f.onCanary == "stop" {
			alarmed.stop = stop
		}
		logf("%d decoy credential stores, %d canary tokens", len(dec.files), len(dec.canaries))
	}
	var canaries []string
	if dec != nil {
		for t := range dec.canaries {
			canaries = append(canaries, t)
		}
	}
	passed := map[string]bool{}
	for _, n := range f.env {
		passed[n] = true
	}
	w, err := prepareWatch(p, home, dropped, passed, canaries, logf)
	if err != nil {
		return &sandbox.Error{Code: sandbox.ExitInternal, Err: err}
	}
	env = withEnv(env, w.env)
	eg, err := startEgress(p, f.audit, argv, logf, alarmed, w)
	if err != nil {
		return &sandbox.Error{Code: sandbox.ExitInternal, Err: err}
	}
	cwd, _ := os.Getwd()
	if cwd != "" {
		if r, err := filepath.EvalSymlinks(cwd); err == nil {
			cwd = r
		}
	}
	var decoyFiles map[string][]sandbox.DecoyFile
	if dec != nil {
		decoyFiles = dec.files
	}
	status, err := sandbox.Run(ctx, sandbox.Options{
		Policy: p, Argv: argv, Env: env, Cwd: cwd,
		Listen: []uint16{gateway.HTTPPort, gateway.SOCKSPort},
		Serve:  eg.serve,
		Decoys: decoyFiles,
		Files:  w.files,
		Stdin:  os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		Log: logf, Warn: warnf,
	})
	if alarmed != nil && alarmed.tripped() && f.onCanary == "stop" && err == nil {
		status = ExitCanary
	}
	eg.finish(status, err)
	if err != nil {
		return err
	}
	if status != 0 {
		return exitStatus(status)
	}
	return nil
}

// minPids leaves room for the sandbox's init, a Go program with a handful
// of threads, which --pids counts like everything else in the sandbox.
const minPids = 32

func buildPolicy(f runFlags) (policy.Policy, error) {
	ws := f.workspace
	if ws == "" {
		var err error
		if ws, err = os.Getwd(); err != nil {
			return policy.Policy{}, fmt.Errorf("finding the current directory: %w", err)
		}
	}
	ws, err := resolveDir(ws, "--workspace")
	if err != nil {
		return policy.Policy{}, err
	}
	home, _ := os.UserHomeDir()
	p := policy.Default(ws, home, os.Getenv("XDG_RUNTIME_DIR"))
	for _, w := range f.write {
		d, err := resolveDir(policy.ExpandHome(w, home), "--write")
		if err != nil {
			return p, err
		}
		if d == "/" {
			return p, fmt.Errorf("--write /: that would make the whole host writable")
		}
		p.Writable = append(p.Writable, d)
	}
	for _, m := range f.mask {
		abs, err := filepath.Abs(policy.ExpandHome(m, home))
		if err != nil {
			return p, fmt.Errorf("--mask %s: %w", m, err)
		}
		kind := policy.Dir
		if st, err := os.Stat(abs); err == nil && !st.IsDir() {
			kind = policy.File
		}
		p.Masks = append(p.Masks, policy.Entry{Path: abs, Kind: kind, Why: "--mask"})
	}
	p.PassEnv = f.env
	if f.memory != "" {
		n, err := parseSize(f.memory)
		if err != nil {
			return p, fmt.Errorf("--memory %s: %w", f.memory, err)
		}
		p.Limits.MemoryBytes = n
	}
	if f.pids < 0 || (f.pids > 0 && f.pids < minPids) {
		return p, fmt.Errorf("--pids %d: must be 0 (none) or at least %d (the limit counts every process and thread of the sandbox, its init's included)", f.pids, minPids)
	}
	p.Limits.Pids = f.pids
	if f.cpus < 0 {
		return p, fmt.Errorf("--cpus %g: must be 0 (none) or more", f.cpus)
	}
	p.Limits.CPUs = f.cpus
	if f.timeout < 0 {
		return p, fmt.Errorf("--timeout %s: must be positive", f.timeout)
	}
	p.Limits.Timeout = f.timeout
	for _, d := range f.degraded {
		for _, name := range strings.Split(d, ",") {
			w, err := policy.ParseWall(strings.TrimSpace(name))
			if err != nil {
				return p, fmt.Errorf("--allow-degraded: %w", err)
			}
			p.Degraded[w] = true
		}
	}
	p.Network = policy.Network{Allow: f.allow, Deny: f.deny, Upstream: f.upstream, Inspect: f.inspect, Secrets: f.secrets, AllowSecrets: f.allowSecrets}
	for _, s := range f.ports {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || n == 0 {
			return p, fmt.Errorf("--allow-loopback-port %q: not a TCP port (1-65535)", s)
		}
		p.ConnectPorts = append(p.ConnectPorts, uint16(n))
	}
	return p, nil
}

// resolveDir makes dir absolute with symlinks resolved, and checks it is a
// directory: the mounts are made on what the path really is.
func resolveDir(dir, flag string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", flag, dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", flag, dir, err)
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", flag, dir, err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s %s: not a directory", flag, dir)
	}
	return real, nil
}

// parseSize reads 512M, 4G, 1.5G, 1048576 (bytes); K, M, G, T are powers
// of 1024, with an optional trailing B or iB.
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := float64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v > 0) {
		return 0, fmt.Errorf("not a size (like 512M or 4G)")
	}
	if v*mult > 1<<50 {
		return 0, fmt.Errorf("larger than any machine")
	}
	n := int64(v * mult)
	if n < 1<<20 {
		return 0, fmt.Errorf("below 1M, too small to start anything")
	}
	return n, nil
}
