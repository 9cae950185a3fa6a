package main

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cordon-sandbox/cordon/client"
	"github.com/cordon-sandbox/cordon/internal/policy"
)

// sessionWorkspace is where a session's relative paths start, as the
// server's default cwd does.
const sessionWorkspace = "/workspace"

// sessionGlobals are the flags every `cordon session` verb takes.
type sessionGlobals struct {
	server    string
	tokenFile string
}

func newSessionCmd() *cobra.Command {
	var g sessionGlobals
	cmd := &cobra.Command{
		Use:   "session",
		Short: "Create, use and remove sessions of a `cordon serve`",
		Long: `Talk to a session server ("cordon serve"): create sessions, run commands in
them as "docker exec" does, copy files in and out, list and remove them.

A session is a sandbox that stays up between commands: its own root (a
read-only base with a throwaway layer on top), its own /workspace, processes
and network behind the same walls as "cordon run", limits, and a TTL and an
idle timeout after which the server removes it and everything of it.

The server is --server, else $CORDON_SERVER, else the unix socket
/run/cordon/cordon.sock (as root) or $XDG_RUNTIME_DIR/cordon/cordon.sock.
A server on TCP wants a bearer token: --token-file names a file whose first
line is the token, or $CORDON_TOKEN holds it. docs/api.md describes the API
underneath, for other clients.`,
		Example: `  id=$(cordon session create --memory 1G --ttl 2h --label user=ada)
  cordon session exec $id -- python3 -c 'print(1)'
  cordon session exec -it $id -- bash
  cordon session cp ./src $id:/workspace/src
  cordon session cp $id:/workspace/out.txt .
  cordon session ls --label user=ada
  cordon session rm $id`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&g.server, "server", "", "the server's `ADDR`: unix:///PATH, tcp://HOST:PORT or https://HOST:PORT (default $CORDON_SERVER, else "+defaultServer()+")")
	pf.StringVar(&g.tokenFile, "token-file", "", "send the bearer token in the first line of `FILE` (default: $CORDON_TOKEN)")
	cmd.AddCommand(newSessionCreateCmd(&g), newSessionExecCmd(&g), newSessionCpCmd(&g), newSessionLsCmd(&g),
		newSessionRmCmd(&g), newSessionGetCmd(&g), newSessionEventsCmd(&g), newSessionTimeoutCmd(&g))
	return cmd
}

// defaultServer is where a local cordon serve listens by default.
func defaultServer() string {
	if os.Geteuid() == 0 {
		return "unix:///run/cordon/cordon.sock"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return "unix://" + filepath.Join(d, "cordon", "cordon.sock")
	}
	return "unix://" + filepath.Join("/run/user", strconv.Itoa(os.Geteuid()), "cordon", "cordon.sock")
}

// client makes the API client the flags and the environment name.
func (g *sessionGlobals) client() (*client.Client, error) {
	addr := g.server
	if addr == "" {
		addr = os.Getenv("CORDON_SERVER")
	}
	if addr == "" {
		addr = defaultServer()
	}
	token := os.Getenv("CORDON_TOKEN")
	if g.tokenFile != "" {
		b, err := os.ReadFile(g.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading the token: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		token = strings.TrimSpace(line)
		if token == "" {
			return nil, fmt.Errorf("--token-file %s: the first line is empty", g.tokenFile)
		}
	}
	var opts []client.Option
	if token != "" {
		opts = append(opts, client.WithToken(token))
	}
	return client.New(addr, opts...)
}

// parsePairs reads repeated K=V flags into a map. With fromEnv, a bare K
// takes its value from this environment.
func parsePairs(flag string, list []string, fromEnv bool) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("--%s %q: want KEY=VALUE", flag, kv)
		}
		if !ok {
			if !fromEnv {
				return nil, fmt.Errorf("--%s %q: want KEY=VALUE", flag, kv)
			}
			if v, ok = os.LookupEnv(k); !ok {
				return nil, fmt.Errorf("--%s %s: $%s is not set here (give %s=VALUE)", flag, k, k, k)
			}
		}
		m[k] = v
	}
	return m, nil
}

// printJSON writes v indented, with <, > and & as they are.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type createFlags struct {
	base, runtime, profile, policyFile string
	env, labels                        []string
	memory, disk                       string
	pids                               int64
	cpus                               float64
	ttl, idle                          time.Duration
	json                               bool
}

func newSessionCreateCmd(g *sessionGlobals) *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "create [flags]",
		Short: "Start a session and print its id",
		Long: `Start a session and print its id (with --json, all the server says of it).

The session's root is --base: "host", this server's own root filesystem
read-only with the homes and the policy's masks hidden, or the absolute path
of a directory on the server holding a root filesystem (docs/api.md says how
to make one with debootstrap). Writes go to a throwaway layer on top, within
--disk. The walls are those of "cordon run", set by --profile and the
policy file's TOML stacked over it; the network is closed unless the policy
allows destinations. --runtime gvisor runs the session's processes under
gVisor's runsc, where the server has it.

The server removes the session --ttl after its creation, or after --idle
without an API call naming it or a command running in it, whichever comes
first (server defaults when not given; "cordon session timeout" moves the
end).`,
		Example: `  cordon session create
  cordon session create --base /srv/roots/bookworm --memory 1G --cpus 2 --ttl 2h
  cordon session create --profile offline --label user=ada --label chat=42 --json
  cordon session create --policy-file allow-pypi.toml --env PIP_NO_CACHE_DIR=1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSessionCreate(cmd, g, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.base, "base", "", "the session's read-only root: host, or the absolute `DIR` of a root filesystem on the server (default host)")
	fl.StringVar(&f.runtime, "runtime", "", "native (namespaces, Landlock, seccomp, cgroups) or gvisor (runsc) (default native)")
	fl.StringVar(&f.profile, "profile", "", "the policy profile `NAME`: default, offline, dev, ... (default default)")
	fl.StringVar(&f.policyFile, "policy-file", "", "stack the policy in `FILE` (TOML, as in docs/policy.md) over the profile")
	fl.StringArrayVar(&f.env, "env", nil, "set `K=V` in every command of the session; a bare K takes its value from here (repeatable)")
	fl.StringArrayVar(&f.labels, "label", nil, "label the session `K=V`; \"ls --label\" filters on it (repeatable)")
	fl.StringVar(&f.memory, "memory", "", "memory limit, e.g. 512M or 4G (default: the server's)")
	fl.Int64Var(&f.pids, "pids", 0, "limit on processes and threads (default: the server's)")
	fl.Float64Var(&f.cpus, "cpus", 0, "CPU limit in cores, e.g. 1.5 (default: the server's)")
	fl.StringVar(&f.disk, "disk", "", "limit on what the session writes, e.g. 1G (default: the server's)")
	fl.DurationVar(&f.ttl, "ttl", 0, "remove the session this long after creation, e.g. 1h (default: the server's)")
	fl.DurationVar(&f.idle, "idle", 0, "remove the session after this long unused, e.g. 15m (default: the server's)")
	fl.BoolVar(&f.json, "json", false, "print the session as JSON, not just its id")
	return cmd
}

func runSessionCreate(cmd *cobra.Command, g *sessionGlobals, f createFlags) error {
	req := client.CreateRequest{Base: f.base, Runtime: f.runtime, Profile: f.profile,
		Limits: client.Limits{Pids: f.pids, CPUs: f.cpus}}
	var err error
	if req.Env, err = parsePairs("env", f.env, true); err != nil {
		return err
	}
	if req.Labels, err = parsePairs("label", f.labels, false); err != nil {
		return err
	}
	if f.policyFile != "" {
		b, err := os.ReadFile(f.policyFile)
		if err != nil {
			return fmt.Errorf("--policy-file: %w", err)
		}
		req.Policy = string(b)
	}
	if f.memory != "" {
		if req.Limits.MemoryBytes, err = policy.ParseSize(f.memory); err != nil {
			return fmt.Errorf("--memory %q: %w", f.memory, err)
		}
	}
	if f.disk != "" {
		if req.Limits.DiskBytes, err = policy.ParseSize(f.disk); err != nil {
			return fmt.Errorf("--disk %q: %w", f.disk, err)
		}
	}
	switch {
	case f.pids < 0:
		return fmt.Errorf("--pids %d: want a positive number", f.pids)
	case f.cpus < 0:
		return fmt.Errorf("--cpus %v: want a positive number", f.cpus)
	case f.ttl < 0:
		return fmt.Errorf("--ttl %v: want a positive duration", f.ttl)
	case f.idle < 0:
		return fmt.Errorf("--idle %v: want a positive duration", f.idle)
	}
	req.TTL, req.IdleTimeout = client.Duration(f.ttl), client.Duration(f.idle)
	c, err := g.client()
	if err != nil {
		return err
	}
	s, err := c.Create(cmd.Context(), req)
	if err != nil {
		return err
	}
	if f.json {
		return printJSON(cmd.OutOrStdout(), s)
	}
	fmt.Fprintln(cmd.OutOrStdout(), s.ID)
	return nil
}

type execFlags struct {
	interactive, tty bool
	env              []string
	cwd              string
	timeout          time.Duration
}

func newSessionExecCmd(g *sessionGlobals) *cobra.Command {
	var f execFlags
	cmd := &cobra.Command{
		Use:   "exec [-i] [-t] [flags] ID -- CMD [ARGS...]",
		Short: "Run a command in a session, as docker exec does",
		Long: `Run CMD in session ID and exit with its exit status.

Its stdout and stderr come here as it writes them. Without -i, its stdin is
empty; with -i, this stdin is sent to it, and its end closes the command's.
With -t it gets a terminal of this terminal's size (resizes follow), and its
output all comes on stdout; with -i too, this terminal is put in raw mode
until the command ends, so that keys, Ctrl-C included, go to the command.
Without -t, SIGINT, SIGTERM and SIGHUP sent to cordon are sent on to the
command.

CMD is found with the session's PATH; it starts in --cwd (default
/workspace) with the session's environment and --env on top.

Exit status: CMD's own; 128+N if it died of signal N; 124 if --timeout
killed it; 126 if it cannot be executed; 127 if it is not found; 125 if
cordon could not run it (the reason is printed).`,
		Example: `  cordon session exec $id -- python3 -c 'print(1)'
  cordon session exec -it $id -- bash
  tar c src | cordon session exec -i $id -- tar x -C /workspace
  cordon session exec --cwd /workspace/app --env CI=1 --timeout 10m $id -- make test`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 && args[1] == "--" {
				args = args[1:]
			}
			if len(args) < 2 {
				return fmt.Errorf("want a session id and a command: cordon session exec ID -- CMD [ARGS...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			id, argv := args[0], args[1:]
			// Flags stop at ID, so the "--" after it is still here.
			if argv[0] == "--" {
				argv = argv[1:]
			}
			return runSessionExec(cmd, g, f, id, argv)
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVarP(&f.interactive, "interactive", "i", false, "send this stdin to the command")
	fl.BoolVarP(&f.tty, "tty", "t", false, "give the command a terminal")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "set `K=V` for the command; a bare K takes its value from here (repeatable)")
	fl.StringVarP(&f.cwd, "cwd", "w", "", "the command's working `DIR` in the session (default /workspace)")
	fl.DurationVar(&f.timeout, "timeout", 0, "kill the command after this long, e.g. 30s or 10m; exit status 124")
	return cmd
}

// terminalFd is f's file descriptor if f is a terminal.
func terminalFd(f any) (int, bool) {
	file, ok := f.(*os.File)
	if !ok || !term.IsTerminal(int(file.Fd())) {
		return 0, false
	}
	return int(file.Fd()), true
}

func runSessionExec(cmd *cobra.Command, g *sessionGlobals, f execFlags, id string, argv []string) error {
	env, err := parsePairs("env", f.env, true)
	if err != nil {
		return err
	}
	if f.timeout < 0 {
		return fmt.Errorf("--timeout %v: want a positive duration", f.timeout)
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	req := client.ExecRequest{Argv: argv, Cwd: f.cwd, Env: env, Timeout: client.Duration(f.timeout), TTY: f.tty}
	stdin, stdout, stderr := cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	eio := client.ExecIO{Stdout: stdout, Stderr: stderr}
	if f.interactive {
		eio.Stdin = stdin
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()

	// restore gives the terminal back its modes, before anything of
	// cordon's own is printed and on every way out.
	var restoreOnce sync.Once
	restore := func() {}
	defer func() { restoreOnce.Do(restore) }()
	if f.tty {
		inFd, inTerm := terminalFd(stdin)
		outFd, outTerm := terminalFd(stdout)
		if f.interactive && !inTerm {
			return fmt.Errorf("-t with -i wants a terminal on stdin: drop -t to send piped input")
		}
		sizeFd, sized := outFd, outTerm
		if !sized {
			sizeFd, sized = inFd, inTerm
		}
		req.Rows, req.Cols = 24, 80
		if sized {
			if w, h, err := term.GetSize(sizeFd); err == nil && w > 0 && h > 0 {
				req.Rows, req.Cols = uint16(h), uint16(w)
			}
			resize := make(chan client.ResizeRequest, 1)
			eio.Resize = resize
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, syscall.SIGWINCH)
			defer signal.Stop(winch)
			go func() {
				for {
					select {
					case <-winch:
					case <-ctx.Done():
						return
					}
					w, h, err := term.GetSize(sizeFd)
					if err != nil || w <= 0 || h <= 0 {
						continue
					}
					// Only the newest size matters.
					select {
					case <-resize:
					default:
					}
					resize <- client.ResizeRequest{Rows: uint16(h), Cols: uint16(w)}
				}
			}()
		}
		if f.interactive {
			saved, err := term.MakeRaw(inFd)
			if err != nil {
				return fmt.Errorf("putting the terminal in raw mode: %w", err)
			}
			// The signals that would kill cordon are caught below and
			// end the exec instead, so restore runs.
			restore = func() { term.Restore(inFd, saved) }
		}
	}

	// Signals to cordon go to the command; before it has started, they
	// give up on it.
	var (
		mu      sync.Mutex
		execID  string
		stopped os.Signal
	)
	eio.OnStart = func(e string, pid int) {
		mu.Lock()
		execID = e
		mu.Unlock()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		for {
			select {
			case s := <-sigs:
				mu.Lock()
				e := execID
				mu.Unlock()
				if e == "" || c.Signal(ctx, id, e, unixSignalName(s)) != nil {
					mu.Lock()
					stopped = s
					mu.Unlock()
					cancel()
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()

	res, err := c.Exec(ctx, id, req, eio)
	restoreOnce.Do(restore)
	if err != nil {
		mu.Lock()
		s := stopped
		mu.Unlock()
		if s != nil {
			if n, ok := s.(syscall.Signal); ok {
				return exitStatus(128 + int(n))
			}
		}
		return err
	}
	if res.StdinErr != nil {
		fmt.Fprintf(stderr, "cordon: stdin was not sent whole: %v\n", res.StdinErr)
	}
	if res.Error != "" {
		fmt.Fprintf(stderr, "cordon: %s\n", printable(res.Error))
	}
	if res.Timeout {
		fmt.Fprintf(stderr, "cordon: %s timed out after %v\n", printable(argv[0]), f.timeout)
		return exitStatus(124)
	}
	if res.Code != 0 {
		return exitStatus(res.Code)
	}
	return nil
}

// unixSignalName is "SIGINT" for SIGINT.
func unixSignalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	if n, ok := s.(syscall.Signal); ok {
		return strconv.Itoa(int(n))
	}
	return s.String()
}

func newSessionCpCmd(g *sessionGlobals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cp SRC DST",
		Short: "Copy files between here and a session, as docker cp does",
		Long: `Copy a file or a directory between here and a session. One of SRC and DST is
ID:PATH, a path in session ID (relative paths start at /workspace); the
other is a local path, or - for a tar stream on stdin or stdout. A local
path holding a colon is written ./like:this.

A file copies as a file, keeping its permission bits: onto DST if DST is
not a directory, else into it. A directory copies as a tar: into DST as
DST/NAME if DST is an existing directory, else as DST itself (its parent
must exist); SRC/. copies only what SRC holds. Symbolic links are copied as
links; devices, sockets and pipes are skipped.

What comes out of a session is checked before anything is written here: an
entry with an absolute name, "..", a link that points out of the copy (or
an entry under such a link), a device, or a name given twice refuses the
whole copy, and nothing here is changed. A session's server checks what
goes in the same way.`,
		Example: `  cordon session cp ./src $id:/workspace/src
  cordon session cp ./build.sh $id:
  cordon session cp $id:/workspace/dist ./dist
  cordon session cp $id:out.json -                  # a tar on stdout
  tar c -C src . | cordon session cp - $id:/workspace/src`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return runSessionCp(cmd.Context(), c, args[0], args[1], cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	return cmd
}

// cpEnd is one side of a copy: a session's path, or a local one.
type cpEnd struct {
	id   string // "" for a local path
	path string
	// dir says the path was written to name a directory ("dst/", "src/.").
	dir bool
}

func parseCpEnd(s string) cpEnd {
	if i := strings.IndexByte(s, ':'); i > 0 && !strings.ContainsRune(s[:i], '/') {
		p := s[i+1:]
		e := cpEnd{id: s[:i], dir: p == "" || strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || p == "."}
		if !path.IsAbs(p) {
			p = path.Join(sessionWorkspace, p)
		}
		e.path = path.Clean(p)
		return e
	}
	return cpEnd{path: s, dir: strings.HasSuffix(s, "/") || strings.HasSuffix(s, "/.") || s == "."}
}

func runSessionCp(ctx context.Context, c *client.Client, srcArg, dstArg string, stdin io.Reader, stdout, stderr io.Writer) error {
	src, dst := parseCpEnd(srcArg), parseCpEnd(dstArg)
	switch {
	case src.id != "" && dst.id != "":
		return fmt.Errorf("cp %s %s: both sides are in sessions; one must be here", srcArg, dstArg)
	case src.id == "" && dst.id == "":
		return fmt.Errorf("cp %s %s: neither side is in a session; write one as ID:PATH", srcArg, dstArg)
	case dst.id != "":
		return copyIn(ctx, c, src, dst, srcArg, stdin, stderr)
	default:
		return copyOut(ctx, c, src, dst, srcArg, stdout)
	}
}

// copyIn copies a local file, directory or tar stream into a session.
func copyIn(ctx context.Context, c *client.Client, src, dst cpEnd, srcArg string, stdin io.Reader, stderr io.Writer) error {
	if src.path == "-" {
		return c.PutArchive(ctx, dst.id, dst.path, stdin)
	}
	fi, err := os.Stat(src.path)
	if err != nil {
		return err
	}
	remote, err := c.Stat(ctx, dst.id, dst.path)
	exists := err == nil
	if err != nil && !client.IsNotFound(err) {
		return err
	}
	if fi.Mode().IsRegular() {
		target := dst.path
		if (exists && remote.Type == "dir") || dst.dir {
			target = path.Join(dst.path, filepath.Base(src.path))
		}
		f, err := os.Open(src.path)
		if err != nil {
			return err
		}
		defer f.Close()
		return c.WriteFile(ctx, dst.id, target, f, fi.Mode().Perm())
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a file or a directory", printable(src.path))
	}
	target := dst.path
	if exists {
		if remote.Type != "dir" {
			return fmt.Errorf("cannot copy the directory %s onto %s:%s, which is not a directory", printable(src.path), dst.id, dst.path)
		}
		if !src.dir {
			target = path.Join(dst.path, filepath.Base(filepath.Clean(src.path)))
		}
	}
	// A link named on the command line is followed, as cp -r does.
	dir, err := filepath.EvalSymlinks(src.path)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	packed := make(chan error, 1)
	go func() {
		err := packDir(pw, dir, stderr)
		pw.CloseWithError(err)
		packed <- err
	}()
	err = c.PutArchive(ctx, dst.id, target, pr)
	// An upload that ended early stops the packing too.
	pr.CloseWithError(errUploadEnded)
	if perr := <-packed; perr != nil && !errors.Is(perr, errUploadEnded) {
		return fmt.Errorf("packing %s: %w", printable(srcArg), perr)
	}
	return err
}

var errUploadEnded = errors.New("the upload ended")

// packDir writes the tree under dir as a tar stream, names relative to
// dir. Devices, sockets and pipes are skipped, with a note.
func packDir(w io.Writer, dir string, stderr io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		switch {
		case fi.Mode().IsRegular(), fi.IsDir():
		case fi.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			fmt.Fprintf(stderr, "cordon: skipping %s: not a file, directory or symbolic link\n", printable(p))
			return nil
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		// A file that grew since it was listed is cut at its listed
		// size; one that shrank fails the copy.
		if _, err := io.CopyN(tw, f, h.Size); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// copyOut copies a session's file or directory here, or to stdout as a
// tar stream.
func copyOut(ctx context.Context, c *client.Client, src, dst cpEnd, srcArg string, stdout io.Writer) error {
	fi, err := c.Stat(ctx, src.id, src.path)
	if err != nil {
		return err
	}
	if dst.path == "-" {
		if fi.Type == "dir" {
			rc, err := c.GetArchive(ctx, src.id, src.path)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(stdout, rc)
			return err
		}
		return tarOne(ctx, c, src, fi, stdout)
	}
	switch fi.Type {
	case "file":
	case "dir":
		return copyDirOut(ctx, c, src, dst)
	case "symlink":
		return fmt.Errorf("%s is a symbolic link to %s: copy what it points to", printable(srcArg), printable(fi.Target))
	default:
		return fmt.Errorf("%s is not a file or a directory", printable(srcArg))
	}
	target := dst.path
	local, err := os.Stat(dst.path)
	switch {
	case err == nil && local.IsDir():
		target = filepath.Join(dst.path, path.Base(src.path))
	case err == nil:
	case errors.Is(err, fs.ErrNotExist) && dst.dir:
		return fmt.Errorf("%s: no such directory", printable(dst.path))
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	rc, err := c.ReadFile(ctx, src.id, src.path)
	if err != nil {
		return err
	}
	defer rc.Close()
	return writeFileAtomic(target, rc, fs.FileMode(fi.Mode).Perm())
}

// writeFileAtomic writes r to name through a temporary file in the same
// directory, so that name is either as it was or complete.
func writeFileAtomic(name string, r io.Reader, mode fs.FileMode) error {
	if fi, err := os.Lstat(name); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory", printable(name))
	}
	f, err := os.CreateTemp(filepath.Dir(name), ".cordon-cp-*")
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: no such directory", printable(filepath.Dir(name)))
	}
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

// tarOne writes a tar stream holding the one file (or link) src.
func tarOne(ctx context.Context, c *client.Client, src cpEnd, fi client.FileInfo, w io.Writer) error {
	h := &tar.Header{Name: path.Base(src.path), Mode: int64(fi.Mode & 0o7777), ModTime: fi.ModTime, Format: tar.FormatPAX}
	tw := tar.NewWriter(w)
	switch fi.Type {
	case "symlink":
		h.Typeflag, h.Linkname = tar.TypeSymlink, fi.Target
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	case "file":
		rc, err := c.ReadFile(ctx, src.id, src.path)
		if err != nil {
			return err
		}
		defer rc.Close()
		h.Typeflag, h.Size = tar.TypeReg, fi.Size
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if n, err := io.Copy(tw, rc); err != nil {
			return fmt.Errorf("%s:%s changed while it was copied (%d bytes, %d when looked at): %w", src.id, src.path, n, fi.Size, err)
		}
	default:
		return fmt.Errorf("%s:%s is not a file or a directory", src.id, src.path)
	}
	return tw.Close()
}

// copyDirOut unpacks a session's directory here: first whole into a new
// directory beside the target, checking every entry, then moved into
// place. A bad entry leaves nothing changed here.
func copyDirOut(ctx context.Context, c *client.Client, src, dst cpEnd) error {
	target := filepath.Clean(dst.path)
	local, err := os.Stat(target)
	switch {
	case err == nil && !local.IsDir():
		return fmt.Errorf("cannot copy the directory %s:%s onto %s, which is not a directory", src.id, src.path, printable(dst.path))
	case err == nil && !src.dir:
		target = filepath.Join(target, path.Base(src.path))
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		if dst.dir {
			return fmt.Errorf("%s: no such directory", printable(dst.path))
		}
	default:
		return err
	}
	tmp, err := mkdirNew(filepath.Dir(target))
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	rc, err := c.GetArchive(ctx, src.id, src.path)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := untar(rc, tmp); err != nil {
		return fmt.Errorf("copying %s:%s: %w; nothing was changed here", src.id, src.path, err)
	}
	if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
		return os.Rename(tmp, target)
	}
	if err := mergeCheck(tmp, target); err != nil {
		return fmt.Errorf("copying %s:%s: %w; nothing was changed here", src.id, src.path, err)
	}
	return mergeMove(tmp, target)
}

// untar extracts the tar stream r into the empty directory dir. It
// refuses, and stops at, the first entry that could write outside dir or
// leave a way out of it: an absolute name or one with "..", a name under a
// symbolic link, a link that points outside dir, a device, a name given
// twice. dir is opened as an os.Root, so nothing is resolved outside it
// whatever the entries did.
func untar(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	type dirMode struct {
		name string
		mode fs.FileMode
		mod  time.Time
	}
	var dirs []dirMode
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the archive: %w", err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := entryName(h.Name)
		if err != nil {
			return err
		}
		if err := underNoLink(root, name); err != nil {
			return err
		}
		mode := fs.FileMode(h.Mode).Perm()
		switch h.Typeflag {
		case tar.TypeDir:
			if name != "." {
				if err := root.MkdirAll(name, 0o700); err != nil {
					return fmt.Errorf("entry %q: %w", h.Name, err)
				}
			}
			dirs = append(dirs, dirMode{name, mode, h.ModTime})
			continue
		case tar.TypeReg: // the reader gives old-style TypeRegA entries as TypeReg
			if err := mkParent(root, name); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			if err := root.Chmod(name, mode); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := linkInside(name, h.Linkname); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			if err := mkParent(root, name); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			if err := root.Symlink(h.Linkname, name); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			continue
		case tar.TypeLink:
			old, err := entryName(h.Linkname)
			if err != nil {
				return fmt.Errorf("entry %q: a hard link to %w", h.Name, err)
			}
			if err := underNoLink(root, old); err != nil {
				return err
			}
			if fi, err := root.Lstat(old); err != nil || !fi.Mode().IsRegular() {
				return fmt.Errorf("entry %q: a hard link to %q, which is not a file before it in the archive", h.Name, h.Linkname)
			}
			if err := mkParent(root, name); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			if err := root.Link(old, name); err != nil {
				return fmt.Errorf("entry %q: %w", h.Name, err)
			}
			continue
		default:
			return fmt.Errorf("entry %q: a device, pipe or other special file (type %q)", h.Name, h.Typeflag)
		}
		root.Chtimes(name, h.ModTime, h.ModTime)
	}
	// Directories get their modes last: one without write permission
	// would have refused its own entries. They stay the user's to
	// change and remove.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := root.Chmod(d.name, d.mode|0o700); err != nil {
			return err
		}
		root.Chtimes(d.name, d.mod, d.mod)
	}
	return nil
}

// mkdirNew makes a new directory in parent, with a name of its own and
// the mode a new directory gets here.
func mkdirNew(parent string) (string, error) {
	for {
		p := filepath.Join(parent, ".cordon-cp-"+rand.Text()[:12])
		err := os.Mkdir(p, 0o777)
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s: no such directory", printable(parent))
		}
		if !errors.Is(err, fs.ErrExist) {
			return p, err
		}
	}
}

// entryName checks a tar entry's name and returns it clean and relative.
func entryName(n string) (string, error) {
	if n == "" {
		return "", fmt.Errorf("an entry with no name")
	}
	if path.IsAbs(n) {
		return "", fmt.Errorf("entry %q: an absolute name", n)
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", fmt.Errorf("entry %q: a name with \"..\"", n)
		}
	}
	if strings.ContainsRune(n, 0) {
		return "", fmt.Errorf("entry %q: a name with a NUL byte", n)
	}
	return path.Clean(n), nil
}

// underNoLink refuses a name whose parents include a symbolic link an
// earlier entry made: the link's target was checked from where the link
// is, not from where this entry would land.
func underNoLink(root *os.Root, name string) error {
	for p := path.Dir(name); p != "." && p != "/"; p = path.Dir(p) {
		fi, err := root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("entry %q: under %q, which is not a directory", name, p)
		}
	}
	return nil
}

// linkInside refuses a symbolic link target that is absolute or leads out
// of the copy from where the link is.
func linkInside(name, target string) error {
	if target == "" || path.IsAbs(target) {
		return fmt.Errorf("a symbolic link to %q, outside the copy", target)
	}
	to := path.Join(path.Dir(name), target)
	if to == ".." || strings.HasPrefix(to, "../") {
		return fmt.Errorf("a symbolic link to %q, outside the copy", target)
	}
	return nil
}

func mkParent(root *os.Root, name string) error {
	if d := path.Dir(name); d != "." {
		return root.MkdirAll(d, 0o755)
	}
	return nil
}

// mergeCheck finds what would stop tmp from being moved into target
// entry by entry: a directory where the other has something else. It
// follows no link in target.
func mergeCheck(tmp, target string) error {
	return filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tmp, p)
		if rel == "." {
			return nil
		}
		t, err := os.Lstat(filepath.Join(target, rel))
		if errors.Is(err, fs.ErrNotExist) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && t.IsDir():
			return nil
		case d.IsDir():
			return fmt.Errorf("%s exists here and is not a directory", printable(filepath.Join(target, rel)))
		case t.IsDir():
			return fmt.Errorf("%s is a directory here: it would be replaced by a file", printable(filepath.Join(target, rel)))
		}
		return nil
	})
}

// mergeMove moves tmp's entries into target: what target lacks is
// renamed in whole, directories both have are merged, files replace
// files.
func mergeMove(tmp, target string) error {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		from, to := filepath.Join(tmp, e.Name()), filepath.Join(target, e.Name())
		if t, err := os.Lstat(to); err == nil && t.IsDir() && e.IsDir() {
			if err := mergeMove(from, to); err != nil {
				return err
			}
			continue
		}
		if err := os.Rename(from, to); err != nil {
			return err
		}
	}
	return nil
}

type lsFlags struct {
	labels []string
	json   bool
}

func newSessionLsCmd(g *sessionGlobals) *cobra.Command {
	var f lsFlags
	cmd := &cobra.Command{
		Use:     "ls [--label K=V]... [--json]",
		Aliases: []string{"list"},
		Short:   "List the sessions",
		Long: `List the server's sessions: those running, and those stopped a short while
ago (STATE says why they stopped). --label keeps those labelled so; given
more than once, those with every label.`,
		Example: `  cordon session ls
  cordon session ls --label user=ada --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := parsePairs("label", f.labels, false)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			list, err := c.List(cmd.Context(), labels)
			if err != nil {
				return err
			}
			sort.Slice(list, func(i, j int) bool { return list[i].CreatedAt.Before(list[j].CreatedAt) })
			if f.json {
				return printJSON(cmd.OutOrStdout(), client.List{Sessions: list})
			}
			return printSessions(cmd.OutOrStdout(), list, time.Now())
		},
	}
	cmd.Flags().StringArrayVar(&f.labels, "label", nil, "only sessions labelled `K=V` (repeatable)")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the list as JSON")
	return cmd
}

func printSessions(w io.Writer, list []client.Session, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tRUNTIME\tBASE\tAGE\tEXPIRES\tEXECS\tLABELS")
	for _, s := range list {
		state := s.State
		if s.Reason != "" {
			state += " (" + s.Reason + ")"
		}
		expires := "-"
		if s.State != client.StateStopped && !s.ExpiresAt.IsZero() {
			expires = "in " + shortDuration(s.ExpiresAt.Sub(now))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", printable(s.ID), printable(state), printable(s.Runtime),
			printable(s.Base), shortDuration(now.Sub(s.CreatedAt)), expires, s.Execs, printable(formatLabels(s.Labels)))
	}
	return tw.Flush()
}

func formatLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, ",")
}

// shortDuration is d rounded in its largest unit: 45s, 12m, 3h, 2d.
func shortDuration(d time.Duration) string {
	unit := func(u time.Duration) int { return int((d + u/2) / u) }
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute-time.Second/2:
		return fmt.Sprintf("%ds", unit(time.Second))
	case d < time.Hour-time.Minute/2:
		return fmt.Sprintf("%dm", unit(time.Minute))
	case d < 48*time.Hour-time.Hour/2:
		return fmt.Sprintf("%dh", unit(time.Hour))
	}
	return fmt.Sprintf("%dd", unit(24*time.Hour))
}

func newSessionRmCmd(g *sessionGlobals) *cobra.Command {
	return &cobra.Command{
		Use:     "rm ID...",
		Aliases: []string{"delete"},
		Short:   "Remove sessions: their processes and files are gone when it returns",
		Long: `Remove each session named: its processes are killed and its files, mounts and
cgroups removed before the server answers. Each removed id is printed; a
session that cannot be removed is said on stderr, the others are removed
anyway, and the exit status is 1.`,
		Example: `  cordon session rm $id
  cordon session ls --json | jq -r '.sessions[].id' | xargs cordon session rm`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			failed := false
			for _, id := range args {
				if err := c.Delete(cmd.Context(), id); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "cordon: removing %s: %v\n", printable(id), err)
					failed = true
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), id)
			}
			if failed {
				return exitStatus(1)
			}
			return nil
		},
	}
}

func newSessionGetCmd(g *sessionGlobals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "get ID [--json]",
		Short: "Say what the server knows of a session",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), s)
			}
			return printSession(cmd.OutOrStdout(), s, time.Now())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the session as JSON")
	return cmd
}

func printSession(w io.Writer, s client.Session, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, printable(v)) }
	row("ID", s.ID)
	row("STATE", s.State)
	if s.Reason != "" {
		row("REASON", s.Reason)
	}
	row("RUNTIME", s.Runtime)
	row("BASE", s.Base)
	row("PROFILE", s.Profile)
	row("CREATED", fmt.Sprintf("%s (%s ago)", s.CreatedAt.Format(time.RFC3339), shortDuration(now.Sub(s.CreatedAt))))
	if s.State != client.StateStopped {
		row("EXPIRES", fmt.Sprintf("%s (in %s)", s.ExpiresAt.Format(time.RFC3339), shortDuration(s.ExpiresAt.Sub(now))))
		row("IDLE", fmt.Sprintf("ends after %v unused (last used %s ago)", s.IdleTimeout.D(), shortDuration(now.Sub(s.LastActive))))
	}
	row("EXECS", strconv.Itoa(s.Execs))
	var lim []string
	if s.Limits.MemoryBytes > 0 {
		lim = append(lim, "memory "+policy.FormatSize(s.Limits.MemoryBytes))
	}
	if s.Limits.Pids > 0 {
		lim = append(lim, "pids "+strconv.FormatInt(s.Limits.Pids, 10))
	}
	if s.Limits.CPUs > 0 {
		lim = append(lim, "cpus "+strconv.FormatFloat(s.Limits.CPUs, 'g', -1, 64))
	}
	if s.Limits.DiskBytes > 0 {
		lim = append(lim, "disk "+policy.FormatSize(s.Limits.DiskBytes))
	}
	row("LIMITS", strings.Join(lim, ", "))
	row("LABELS", formatLabels(s.Labels))
	return tw.Flush()
}

func newSessionEventsCmd(g *sessionGlobals) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "events [-f] ID",
		Short: "Print a session's events: commands, connections, alarms",
		Long: `Print the events of a session so far, one JSON object a line: its start,
each command started and ended, each connection its gateway allowed or
refused, each canary or secret alarm. With -f, go on printing new events
until the session ends.`,
		Example: `  cordon session events $id
  cordon session events -f $id | jq -c 'select(.event == "connection")'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			es, err := c.Events(cmd.Context(), args[0], follow)
			if err != nil {
				return err
			}
			defer es.Close()
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetEscapeHTML(false)
			for {
				e, err := es.Next()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if err := enc.Encode(e); err != nil {
					return err
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "go on with new events until the session ends")
	return cmd
}

func newSessionTimeoutCmd(g *sessionGlobals) *cobra.Command {
	var idle time.Duration
	cmd := &cobra.Command{
		Use:   "timeout ID DURATION [--idle D]",
		Short: "Make a session end DURATION from now",
		Long: `Make session ID end DURATION from now (the server may cap it), and with
--idle replace its idle timeout.`,
		Example: `  cordon session timeout $id 2h
  cordon session timeout $id 30m --idle 5m`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := time.ParseDuration(args[1])
			if err != nil || d <= 0 {
				return fmt.Errorf("%q: want a duration such as 90s, 30m or 2h", args[1])
			}
			req := client.TimeoutRequest{TTL: client.Duration(d)}
			if cmd.Flags().Changed("idle") {
				if idle <= 0 {
					return fmt.Errorf("--idle %v: want a positive duration", idle)
				}
				i := client.Duration(idle)
				req.IdleTimeout = &i
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := c.SetTimeout(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s ends at %s (in %s)\n", printable(s.ID), s.ExpiresAt.Format(time.RFC3339),
				shortDuration(time.Until(s.ExpiresAt)))
			return nil
		},
	}
	cmd.Flags().DurationVar(&idle, "idle", 0, "also end the session after this long unused")
	return cmd
}
