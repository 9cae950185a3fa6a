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
	"github.com/cordon-sandbox/cordon/internal/policyfile"
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
	profile      string
	verbose      bool
	// changed reports whether a flag was given: only those are the flags
	// layer of the policy, so a default never overrides a policy file.
	changed func(name string) bool
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

Policy files: the same settings can come from files, stacked in layers
(lowest first): the built-in defaults, the user policy
($XDG_CONFIG_HOME/cordon/policy.toml), the workspace's .cordon.toml once
"cordon trust" recorded it (an untrusted one is ignored, with one line on
stderr), the profile named with --profile, and these flags. Lists merge; a
deny, a mask or a dropped variable from any layer wins. "cordon policy
show" prints the result and where each value comes from; docs/policy.md
describes the format.

stdin, stdout and stderr pass through; when both stdin and stdout are a
terminal, CMD gets a terminal of its own (job control, Ctrl-C, resizes).
Signals sent to cordon are forwarded to CMD. If cordon is killed, everything
it started dies with it.

Exit status: CMD's own; 128+N if CMD died of signal N; 124 if --timeout
killed it; 125 if Cordon could not start the sandbox; 126 if CMD cannot be
executed; 127 if CMD is not found; 86 if a decoy credential tried to leave (see
--on-canary).`,
		Example: `  cordon run -- make test
  cordon run --profile claude-code -- claude
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
			f.changed = cmd.Flags().Changed
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
	fl.StringVar(&f.profile, "profile", "", "stack the profile `NAME` on the policy: built in (cordon policy show --profile NAME shows one; docs/policy.md lists them) or [profile.NAME] of your user policy")
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
	eff, err := buildPolicy(f, warnf, logf)
	if err != nil {
		return &sandbox.Error{Code: sandbox.ExitInternal, Err: err}
	}
	p := eff.Policy
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
	env = policy.SetEnv(env, gateway.ProxyEnv(self, os.Getenv("JAVA_TOOL_OPTIONS")))
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var dec *decoys
	var alarmed *alarm
	home, _ := os.UserHomeDir()
	if eff.Decoys && !filepath.IsAbs(home) {
		logf("no home directory: no decoys")
	} else if eff.Decoys {
		if dec, err = makeDecoys(home); err != nil {
			return &sandbox.Error{Code: sandbox.ExitInternal, Err: err}
		}
		alarmed = &alarm{d: dec}
		if eff.OnCanary == "stop" {
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
	for _, n := range p.PassEnv {
		passed[n] = true
	}
	// A variable dropped only because the policy names it is no secret:
	// its value is not watched for in what leaves.
	var secretDropped []string
	for _, d := range dropped {
		if !strings.HasSuffix(d, ": "+policy.DropReason) {
			secretDropped = append(secretDropped, d)
		}
	}
	w, err := prepareWatch(p, home, secretDropped, passed, canaries, logf)
	if err != nil {
		return &sandbox.Error{Code: sandbox.ExitInternal, Err: err}
	}
	env = policy.SetEnv(env, w.env)
	eg, err := startEgress(p, eff.Audit, argv, logf, alarmed, w)
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
	if alarmed != nil && alarmed.tripped() && eff.OnCanary == "stop" && err == nil {
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

// buildPolicy stacks the run's policy: the built-in defaults, the user
// policy, the trusted workspace policy, the profile, and the flags on top.
// What a layer sets that does not hold (an allowed host a deny covers, a
// writable path inside a mask) is said: with a warning if a flag of this
// command line set it, with -v otherwise.
func buildPolicy(f runFlags, warnf, logf func(string, ...any)) (*policyfile.Effective, error) {
	ws, err := workspaceDir(f.workspace)
	if err != nil {
		return nil, err
	}
	home, _ := os.UserHomeDir()
	src, err := loadPolicySources(ws, home, f.profile)
	if err != nil {
		return nil, err
	}
	for _, ig := range src.ignored {
		fmt.Fprintf(os.Stderr, "cordon: %s\n", ig)
	}
	flags, err := flagBody(f, home)
	if err != nil {
		return nil, err
	}
	eff, err := policyfile.Merge(policyHost(ws, home, true), append(src.layers, policyfile.FlagLayer(flags))...)
	if err != nil {
		return nil, err
	}
	logf("policy: %s", strings.Join(eff.Layers, " < "))
	for _, v := range eff.Void() {
		if strings.HasPrefix(v.From, "flag ") {
			warnf("%s %v: ignored: %s", strings.TrimPrefix(v.From, "flag "), v.Value, v.Note)
		} else {
			logf("%s %v (%s): ignored: %s", v.Key, v.Value, v.From, v.Note)
		}
	}
	for _, d := range f.degraded {
		for _, name := range strings.Split(d, ",") {
			w, err := policy.ParseWall(strings.TrimSpace(name))
			if err != nil {
				return nil, fmt.Errorf("--allow-degraded: %w", err)
			}
			eff.Policy.Degraded[w] = true
		}
	}
	return eff, nil
}

// flagBody is the flags layer: the flags given on the command line, each
// checked and named in its error as the flag it is.
func flagBody(f runFlags, home string) (policyfile.Body, error) {
	var b policyfile.Body
	changed := f.changed
	if changed == nil {
		changed = func(string) bool { return true }
	}
	for _, w := range f.write {
		abs, err := filepath.Abs(policy.ExpandHome(w, home))
		if err != nil {
			return b, fmt.Errorf("--write %s: %w", w, err)
		}
		b.Filesystem.Write = append(b.Filesystem.Write, abs)
	}
	for _, m := range f.mask {
		abs, err := filepath.Abs(policy.ExpandHome(m, home))
		if err != nil {
			return b, fmt.Errorf("--mask %s: %w", m, err)
		}
		b.Filesystem.Mask = append(b.Filesystem.Mask, abs)
	}
	b.Env.Pass = f.env
	if f.memory != "" {
		n, err := policy.ParseSize(f.memory)
		if err != nil {
			return b, fmt.Errorf("--memory %s: %w", f.memory, err)
		}
		b.Limits.Memory = &n
	}
	if changed("pids") {
		if f.pids < 0 || (f.pids > 0 && f.pids < policy.MinPids) {
			return b, fmt.Errorf("--pids %d: must be 0 (none) or at least %d (the limit counts every process and thread of the sandbox, its init's included)", f.pids, policy.MinPids)
		}
		b.Limits.Pids = &f.pids
	}
	if changed("cpus") {
		if f.cpus < 0 {
			return b, fmt.Errorf("--cpus %g: must be 0 (none) or more", f.cpus)
		}
		b.Limits.CPUs = &f.cpus
	}
	if changed("timeout") {
		if f.timeout < 0 {
			return b, fmt.Errorf("--timeout %s: must be positive", f.timeout)
		}
		b.Limits.Timeout = &f.timeout
	}
	for _, s := range f.ports {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || n == 0 {
			return b, fmt.Errorf("--allow-loopback-port %q: not a TCP port (1-65535)", s)
		}
		b.Network.LoopbackPorts = append(b.Network.LoopbackPorts, uint16(n))
	}
	b.Network.Allow, b.Network.Deny = f.allow, f.deny
	if changed("upstream-proxy") {
		b.Network.Upstream = &f.upstream
	}
	b.Network.Inspect, b.Network.Secrets, b.Network.AllowSecrets = f.inspect, f.secrets, f.allowSecrets
	if changed("no-decoys") {
		decoys := !f.noDecoys
		b.Canary.Decoys = &decoys
	}
	if changed("on-canary") {
		if f.onCanary != "stop" && f.onCanary != "block" {
			return b, fmt.Errorf("--on-canary %q: stop or block", f.onCanary)
		}
		b.Canary.OnCanary = f.onCanary
	}
	if f.audit != "" {
		b.Audit.Path = &f.audit
	}
	return b, nil
}

// workspaceDir is the workspace a --workspace value names: the current
// directory if it is empty, made absolute with symlinks resolved.
func workspaceDir(flag string) (string, error) {
	if flag == "" {
		cwd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("finding the current directory: %w", err)
		}
		flag = cwd
	}
	return resolveDir(flag, "--workspace")
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
