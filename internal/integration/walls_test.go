package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/cordon-sandbox/cordon/internal/cordontest"
)

// The sandbox reaches no host listener: not TCP on the host's loopback or
// its other addresses, not UDP, not DNS; on its own loopback it may listen,
// but connects only to the ports it was given; lo is its only interface.
func TestNetworkWall(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		// TCP on the host's loopback. Each listener first takes a
		// connection from the host itself, which proves it works.
		tcpL := cordontest.Listen(t, "tcp4", "127.0.0.1:0")
		tcp := cordontest.Serve(t, tcpL)
		tcp.Knock(t, "C")
		r := b.probe(nil, "connect-tcp", tcp.Addr)
		if !strings.HasPrefix(r.stdout, "err ") {
			t.Errorf("connect-tcp %s = %q, want err\n%s", tcp.Addr, r.stdout, r)
		}
		if got := tcp.Knock(t, "S"); !slices.Equal(got, []string{"C", "S"}) {
			t.Errorf("the host's TCP listener accepted %q, want only the host's own [C S]", got)
		}

		// TCP on an address of the host that is not loopback, if any.
		if ip := hostAddr(); ip != "" {
			ext := cordontest.Serve(t, cordontest.Listen(t, "tcp4", net.JoinHostPort(ip, "0")))
			ext.Knock(t, "C")
			r = b.probe(nil, "connect-tcp", ext.Addr)
			if !strings.HasPrefix(r.stdout, "err ") {
				t.Errorf("connect-tcp %s = %q, want err\n%s", ext.Addr, r.stdout, r)
			}
			if got := ext.Knock(t, "S"); !slices.Equal(got, []string{"C", "S"}) {
				t.Errorf("the host's TCP listener on %s accepted %q, want only the host's own [C S]", ip, got)
			}
		}

		// UDP: sending may well succeed (into the sandbox's own lo),
		// but nothing arrives on the host. A socket's receive queue is
		// in order, so a datagram from the sandbox would be read
		// before the host's sentinel.
		udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
		must(t, err)
		defer udp.Close()
		udpAddr := udp.LocalAddr().String()
		sendUDP(t, udpAddr, "C")
		if got := readUDPUntil(udp, "C"); !slices.Equal(got, []string{"C"}) {
			t.Fatalf("the host's UDP socket read %q, want [C]", got)
		}
		r = b.probe(nil, "send-udp", udpAddr)
		sendUDP(t, udpAddr, "S")
		if got := readUDPUntil(udp, "S"); !slices.Equal(got, []string{"S"}) {
			t.Errorf("the host's UDP socket read %q after send-udp from the sandbox, want only [S]\n%s", got, r)
		}

		// DNS: no resolver is reachable; /etc/hosts still answers.
		r = b.probe(nil, "dns", "example.com")
		if !strings.HasPrefix(r.stdout, "err ") {
			t.Errorf("dns example.com = %q, want err\n%s", r.stdout, r)
		}
		r = b.probe(nil, "dns", "localhost")
		if !strings.HasPrefix(r.stdout, "ok ") {
			t.Errorf("dns localhost = %q, want ok (from /etc/hosts)\n%s", r.stdout, r)
		}

		// The sandbox's own loopback: listening is allowed, connecting
		// is Landlock's to refuse but to the ports given.
		port := strconv.Itoa(20000 + int(randUint16()%20000))
		r = b.probe(nil, "listen-connect", port)
		if got := strings.TrimSpace(r.stdout); got != "err EACCES" {
			t.Errorf("listen-connect %s = %q, want %q\n%s", port, got, "err EACCES", r)
		}
		r = b.probe([]string{"--allow-loopback-port", port}, "listen-connect", port)
		if got := strings.TrimSpace(r.stdout); got != "ok connect" {
			t.Errorf("listen-connect %s with --allow-loopback-port %s = %q, want %q\n%s", port, port, got, "ok connect", r)
		}
		other := strconv.Itoa(atoi(port) + 1)
		r = b.probe([]string{"--allow-loopback-port", port}, "listen-connect", other)
		if got := strings.TrimSpace(r.stdout); got != "err EACCES" {
			t.Errorf("listen-connect %s with --allow-loopback-port %s = %q, want %q\n%s", other, port, got, "err EACCES", r)
		}

		// Interfaces: lo only.
		r = b.sh("cat /proc/net/dev")
		if got := netDevNames(r.stdout); !slices.Equal(got, []string{"lo"}) {
			t.Errorf("interfaces in /proc/net/dev = %q, want [lo]\n%s", got, r)
		}
		if _, err := exec.LookPath("ip"); err == nil {
			r = b.sh("ip -o link show")
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			if r.code != 0 || len(lines) != 1 || !strings.Contains(lines[0], " lo:") {
				t.Errorf("ip -o link show printed %d lines, want one for lo\n%s", len(lines), r)
			}
		}
	})
}

// Host sockets stay out of reach: the user's agent socket in
// $XDG_RUNTIME_DIR (masked), and an abstract socket of the host (another
// network namespace, and outside the Landlock scope).
func TestHostSocketWall(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		// An ssh-agent stand-in, connectable by the user on the host.
		agentPath := filepath.Join(b.xdg, "agent.sock")
		agent := cordontest.Serve(t, cordontest.Listen(t, "unix", agentPath))
		b.u.Chown(t, agentPath)
		must(t, os.Chmod(agentPath, 0o600))
		if r := b.hostProbe("connect-unix", agentPath); !strings.HasPrefix(r.stdout, "ok ") {
			t.Fatalf("on the host, connect-unix %s = %q, want ok\n%s", agentPath, r.stdout, r)
		}
		agent.Knock(t, "C")
		r := b.probe(nil, "connect-unix", agentPath)
		if !strings.HasPrefix(r.stdout, "err ") {
			t.Errorf("connect-unix %s = %q, want err\n%s", agentPath, r.stdout, r)
		}
		// [ "" ] is the host probe's connection, which sent nothing.
		if got := agent.Knock(t, "S"); !slices.Equal(got, []string{"", "C", "S"}) {
			t.Errorf("the agent socket accepted %q, want only the host's own [\"\" C S]", got)
		}

		// An abstract socket of the host.
		name := "cordon-test-" + randText()
		abs := cordontest.Serve(t, cordontest.Listen(t, "unix", "@"+name))
		if r := b.hostProbe("connect-abstract", name); !strings.HasPrefix(r.stdout, "ok ") {
			t.Fatalf("on the host, connect-abstract %s = %q, want ok\n%s", name, r.stdout, r)
		}
		r = b.probe(nil, "connect-abstract", name)
		if !strings.HasPrefix(r.stdout, "err ") {
			t.Errorf("connect-abstract %s = %q, want err\n%s", name, r.stdout, r)
		}
		if got := abs.Knock(t, "S"); !slices.Equal(got, []string{"", "S"}) {
			t.Errorf("the host's abstract socket accepted %q, want only the host's own [\"\" S]", got)
		}
		// Abstract sockets of the sandbox's own still work.
		r = b.probe(nil, "listen-connect-abstract", name)
		if got := strings.TrimSpace(r.stdout); got != "ok connect" {
			t.Errorf("listen-connect-abstract %s = %q, want %q\n%s", name, got, "ok connect", r)
		}
	})
}

// The sandbox neither sees nor touches a host process of the same user,
// nor its own init.
func TestProcessWall(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		needle := randText()
		host := b.u.Command("/bin/sleep", "300")
		host.Args[0] = "cordon-marker-" + needle // a distinctive argv[0]
		host.Env = append(append([]string{}, b.env...), "SECRET_MARKER="+needle)
		must(t, host.Start())
		pid := host.Process.Pid
		exited := make(chan struct{})
		go func() { host.Wait(); close(exited) }()
		t.Cleanup(func() {
			unix.Kill(pid, unix.SIGKILL)
			<-exited
		})
		p := strconv.Itoa(pid)

		// Positive control: on the host, the user's probe finds it.
		r := b.hostProbe("scan-proc", needle)
		for _, want := range []string{"found " + p + " environ", "found " + p + " cmdline"} {
			if !strings.Contains(r.stdout, want) {
				t.Fatalf("on the host, scan-proc did not print %q\n%s", want, r)
			}
		}

		for _, tt := range []struct {
			action string
			args   []string
			want   string // a prefix of the probe's stdout
		}{
			{"kill", []string{p}, "err ESRCH"},
			{"ptrace", []string{p}, "err "},
			{"readmem", []string{p}, "err "},
			{"ptrace", []string{"1"}, "err "},
			{"readmem", []string{"1"}, "err "},
			{"read", []string{"/proc/1/environ"}, "err "},
			{"read", []string{"/proc/" + p + "/environ"}, "err "},
			// Positive controls: the same probes on the probe itself.
			{"readmem", []string{"self"}, "ok "},
			{"read", []string{"/proc/self/environ"}, "ok "},
		} {
			r := b.probe(nil, tt.action, tt.args...)
			if !strings.HasPrefix(r.stdout, tt.want) {
				t.Errorf("%s %s = %q, want %s...\n%s", tt.action, strings.Join(tt.args, " "), r.stdout, tt.want, r)
			}
			noNeedle(t, r, needle)
		}

		r = b.probe(nil, "scan-proc", needle)
		noNeedle(t, r, needle)
		// The probe carries the needle as its own argument: one
		// "found N cmdline", its own, is all there may be.
		if found := regexp.MustCompile(`(?m)^found .*$`).FindAllString(r.stdout, -1); len(found) != 1 || !strings.HasSuffix(found[0], " cmdline") {
			t.Errorf("scan-proc found %q, want only the probe's own cmdline\n%s", found, r)
		}
		m := regexp.MustCompile(`ok scanned (\d+)`).FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("scan-proc printed no count\n%s", r)
		}
		// init and the probe; a few more would still be the sandbox's.
		if n := atoi(m[1]); n < 2 || n > 5 {
			t.Errorf("scan-proc saw %d processes, want the sandbox's 2 to 5\n%s", n, r)
		}

		select {
		case <-exited:
			t.Errorf("the host process %d died during the test", pid)
		default:
			if err := unix.Kill(pid, 0); err != nil {
				t.Errorf("kill(%d, 0) = %v, want nil (alive)", pid, err)
			}
		}
	})
}

// Variables that look like secrets stay out unless passed by name, and -v
// says which were dropped and why.
func TestSecretEnv(t *testing.T) {
	forEachUser(t, func(t *testing.T, b *box) {
		secrets := map[string]string{
			"AWS_SECRET_ACCESS_KEY": "aws-" + secret,
			"GITHUB_TOKEN":          "ghp-" + secret,
			"MY_API_KEY":            "api-" + secret,
			"DB_PASSWORD":           "db-" + secret,
			"SSH_AUTH_SOCK":         b.xdg + "/agent.sock",
			"DATABASE_URL":          "postgres://u:pw" + secret + "@h/db",
		}
		extra := []string{probeEnv + "=1", "EDITOR=vi"}
		for name, value := range secrets {
			extra = append(extra, name+"="+value)
		}
		envOf := func(flags ...string) (map[string]string, result) {
			t.Helper()
			args := append(append([]string{"run"}, flags...), "--", probeBin, "env")
			r := b.cordon(nil, extra, args...)
			if r.code != 0 {
				t.Fatalf("cordon %v: exit %d, want 0\n%s", args, r.code, r)
			}
			env := map[string]string{}
			for _, l := range strings.Split(r.stdout, "\n") {
				if k, v, ok := strings.Cut(l, "="); ok {
					env[k] = v
				}
			}
			return env, r
		}

		env, r := envOf("-v")
		if got := env["EDITOR"]; got != "vi" {
			t.Errorf("EDITOR inside = %q, want %q", got, "vi")
		}
		for name := range secrets {
			if v, ok := env[name]; ok {
				t.Errorf("%s passed in as %q, want it dropped", name, v)
			}
			if !regexp.MustCompile(`(?m)^cordon: not passing ` + name + `: \S`).MatchString(r.stderr) {
				t.Errorf("-v did not say %s was dropped, with a reason\n%s", name, r.stderr)
			}
		}
		// Neither the values under another name.
		if strings.Contains(r.stdout, secret) {
			t.Errorf("a secret value reached the sandbox:\n%s", r.stdout)
		}
		if strings.Contains(r.stderr, secret) {
			t.Errorf("-v printed a secret value:\n%s", r.stderr)
		}

		env, _ = envOf("--env", "GITHUB_TOKEN")
		if got, want := env["GITHUB_TOKEN"], secrets["GITHUB_TOKEN"]; got != want {
			t.Errorf("with --env GITHUB_TOKEN, GITHUB_TOKEN inside = %q, want %q", got, want)
		}
		for name := range secrets {
			if _, ok := env[name]; ok && name != "GITHUB_TOKEN" {
				t.Errorf("with --env GITHUB_TOKEN, %s passed in too", name)
			}
		}
	})
}

// The command cannot push characters into the input of the user's
// terminal (TIOCSTI), whether it has a pty of its own or the caller's
// terminal as stdin.
func TestTIOCSTI(t *testing.T) {
	legacy, _ := os.ReadFile("/proc/sys/dev/tty/legacy_tiocsti")
	forEachUser(t, func(t *testing.T, b *box) {
		probe := []string{"run", "--", probeBin, "tiocsti"}
		env := []string{probeEnv + "=1"}

		// Positive control: on the host, a process whose controlling
		// terminal this is does inject, and the echo shows on the master.
		if strings.TrimSpace(string(legacy)) != "0" {
			out, r := b.hostOnTerminal("tiocsti")
			if !strings.HasPrefix(r.stdout, "ok ") || !strings.Contains(out, "x") {
				t.Fatalf("on the host, tiocsti = %q and the master read %q, want ok and an x\n%s", r.stdout, out, r)
			}
		}

		// A terminal on both ends: the command gets a pty of its own.
		out, r := b.onTerminal(nil, true, env, probe...)
		if r.code != 0 || !strings.Contains(out, "err EPERM") {
			t.Errorf("tiocsti on the sandbox's pty printed %q, want err EPERM\n%s", out, r)
		}
		if strings.Contains(strings.ReplaceAll(out, "err EPERM", ""), "x") {
			t.Errorf("the host's terminal shows an injected x: %q", out)
		}

		// stdin a terminal, stdout a pipe: no pty; the command holds the
		// caller's terminal itself.
		out, r = b.onTerminal(nil, false, env, probe...)
		if got := strings.TrimSpace(r.stdout); r.code != 0 || got != "err EPERM" {
			t.Errorf("tiocsti on the caller's terminal = %q, want %q\n%s", got, "err EPERM", r)
		}
		if strings.Contains(out, "x") {
			t.Errorf("the host's terminal shows an injected x: %q", out)
		}
	})
}

// hostProbe runs the probe on the host as the box's user, without cordon:
// the positive control that what the sandbox is refused works outside.
func (b *box) hostProbe(action string, args ...string) result {
	b.t.Helper()
	cmd := b.u.Command(probeBin, append([]string{action}, args...)...)
	cmd.Dir = b.ws
	cmd.Env = append(append([]string{}, b.env...), probeEnv+"=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		b.t.Fatalf("running the probe on the host: %v", err)
	}
	return result{out.String(), errb.String(), code}
}

// onTerminal runs cordon with args as a user at a terminal would: a new
// pty's slave as its controlling terminal and stdin, and as stdout too
// when both is set (else stdout is a pipe). It returns what reached the
// pty's master, and the run.
func (b *box) onTerminal(size *pty.Winsize, both bool, extraEnv []string, args ...string) (string, result) {
	b.t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		b.t.Skipf("no pty: %v", err)
	}
	defer master.Close()
	if size != nil {
		must(b.t, pty.Setsize(master, size))
	}
	cmd := b.u.Command(cordonBin, args...)
	cmd.Dir = b.ws
	cmd.Env = append(append([]string{}, b.env...), extraEnv...)
	return b.runOnTerminal(cmd, master, slave, both)
}

// hostOnTerminal runs the probe on the host, as the box's user, with a new
// pty as its controlling terminal, stdin and stderr.
func (b *box) hostOnTerminal(action string, args ...string) (string, result) {
	b.t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		b.t.Skipf("no pty: %v", err)
	}
	defer master.Close()
	cmd := b.u.Command(probeBin, append([]string{action}, args...)...)
	cmd.Dir = b.ws
	cmd.Env = append(append([]string{}, b.env...), probeEnv+"=1")
	return b.runOnTerminal(cmd, master, slave, false)
}

func (b *box) runOnTerminal(cmd *exec.Cmd, master, slave *os.File, both bool) (string, result) {
	b.t.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Setctty = true
	cmd.SysProcAttr.Ctty = 0
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, &out, &errb
	if both {
		cmd.Stdout = slave
	}
	if err := cmd.Start(); err != nil {
		slave.Close()
		b.t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	// Ours closed, the master reads EIO once the last holder is gone.
	slave.Close()
	var tty bytes.Buffer
	read := make(chan struct{})
	go func() {
		io.Copy(&tty, master)
		close(read)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inTime, err := waitBounded(ctx, cmd)
	if !inTime {
		b.t.Fatalf("%s did not finish in time", cmd.Path)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		b.t.Fatalf("running %s: %v", cmd.Path, err)
	}
	select {
	case <-read:
	case <-time.After(5 * time.Second):
		// Something still holds the slave: what it wrote so far will do.
		master.Close()
		<-read
	}
	return tty.String(), result{out.String(), errb.String(), code}
}

func sendUDP(t *testing.T, addr, msg string) {
	t.Helper()
	c, err := net.Dial("udp4", addr)
	must(t, err)
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// readUDPUntil reads datagrams until one is mark, for at most a second.
func readUDPUntil(c net.PacketConn, mark string) []string {
	var got []string
	buf := make([]byte, 1500)
	c.SetReadDeadline(time.Now().Add(time.Second))
	for !slices.Contains(got, mark) {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			break
		}
		got = append(got, string(buf[:n]))
	}
	return got
}

// hostAddr returns an IPv4 address of the host that is not loopback, or "".
func hostAddr() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	return ""
}

// netDevNames returns the interface names in /proc/net/dev's text.
func netDevNames(s string) []string {
	var names []string
	for _, l := range strings.Split(s, "\n") {
		if name, _, ok := strings.Cut(l, ":"); ok && !strings.Contains(name, "|") {
			names = append(names, strings.TrimSpace(name))
		}
	}
	return names
}

func noNeedle(t *testing.T, r result, needle string) {
	t.Helper()
	if strings.Contains(r.stdout, needle) || strings.Contains(r.stderr, needle) {
		t.Errorf("the host process's marker showed up inside:\n%s", r)
	}
}

func randText() string {
	return strings.ToLower(rand.Text()[:12])
}

func randUint16() uint16 {
	var b [2]byte
	rand.Read(b[:])
	return uint16(b[0])<<8 | uint16(b[1])
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(errors.New("not a number: " + s))
	}
	return n
}
