package gateway

// Benchmarks of the gateway on loopback; docs/BENCHMARKS.md, "Egress
// gateway", has the figures and the commands:
//
//	go test -run '^$' -bench 'Download' -benchtime 3x ./internal/gateway/
//	go test -run '^$' -bench 'Latency|ConnRate' ./internal/gateway/
//	go test -run '^$' -bench 'IdleTunnels' -benchtime 1x ./internal/gateway/
//	go test -run '^$' -bench 'IdleTunnels' -benchtime 1x -timeout 30m -v \
//		./internal/gateway/ -tunnels 10000 -hold 60s
//
// None of them runs without -bench (TestGatewayBenchPeer, below, skips at
// once). Traffic stays on loopback. Where the
// gateway's own cost must be told apart from its clients' (CPU time per
// connection, memory per tunnel), the clients and the echo server they
// reach run in a second process, this test binary started again as
// TestGatewayBenchPeer; what the benchmark's process then spends is the
// gateway's.

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var (
	benchHold    = flag.Duration("hold", 0, "BenchmarkIdleTunnels: keep the tunnels open this long, then check every one (the 10,000-tunnel test: -hold 60s)")
	benchTunnels = flag.String("tunnels", "2000,10000", "BenchmarkIdleTunnels: how many tunnels, one sub-benchmark each")
)

// downloadSize is what one BenchmarkDownload operation fetches.
const downloadSize = 1 << 30

// BenchmarkDownload fetches 1 GiB from a loopback HTTP server directly and
// through the gateway: a CONNECT tunnel, plain HTTP (absolute form) and
// SOCKS5. The client, the gateway and the server share the process; MB/s
// is the download's rate, x-direct its ratio to the direct sub-benchmark's
// rate in the same run, cpu-ms/GiB the CPU time of the whole process
// (client, server and gateway) per download: what a mode costs over direct
// is the gateway's.
func BenchmarkDownload(b *testing.B) {
	origin := startOrigin(b, downloadSize)
	tg := startGateway(b, Config{Rules: rules(b, []string{origin}, nil)})
	var direct float64 // MB/s
	for _, mode := range []string{"direct", "connect", "http", "socks5"} {
		b.Run(mode, func(b *testing.B) {
			buf := make([]byte, 256<<10)
			b.SetBytes(downloadSize)
			var cpu time.Duration
			for b.Loop() {
				cpu0 := cpuTime()
				c := openFor(b, mode, tg, origin)
				if n, err := get(c, mode, origin, buf); err != nil || n != downloadSize {
					b.Fatalf("%s: %d bytes, %v", mode, n, err)
				}
				c.Close()
				cpu += cpuTime() - cpu0
			}
			b.ReportMetric(float64(cpu/time.Millisecond)/float64(b.N), "cpu-ms/GiB")
			rate := float64(b.N) * downloadSize / 1e6 / b.Elapsed().Seconds()
			if mode == "direct" {
				direct = rate
			} else if direct > 0 {
				b.ReportMetric(rate/direct, "x-direct")
			}
		})
	}
}

// startOrigin serves size bytes of zeros at every path, from one buffer in
// 1 MiB writes, on loopback. It returns its address.
func startOrigin(t testing.TB, size int64) string {
	t.Helper()
	buf := make([]byte, 1<<20)
	return startHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		for left := size; left > 0; {
			n := min(left, int64(len(buf)))
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
			left -= n
		}
	}))
}

// startHTTP serves h on a loopback listener until the benchmark ends.
func startHTTP(t testing.TB, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return l.Addr().String()
}

// openFor opens the connection a GET to origin goes on: to origin itself,
// a CONNECT tunnel, the HTTP proxy, or a SOCKS5 tunnel.
func openFor(t testing.TB, mode string, tg *testGateway, origin string) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	switch mode {
	case "direct":
		c, err = net.Dial("tcp", origin)
	case "connect":
		c, err = dialTunnel(tg.httpAddr, origin)
	case "http":
		c, err = net.Dial("tcp", tg.httpAddr)
	case "socks5":
		if c, err = net.Dial("tcp", tg.socksAddr); err == nil {
			host, port, _ := net.SplitHostPort(origin)
			var reply byte
			if reply, err = socksHandshake(c, 0x01, host, port); err == nil && reply != 0 {
				err = fmt.Errorf("SOCKS5 reply %d", reply)
			}
		}
	}
	if err != nil {
		t.Fatalf("%s: %v", mode, err)
	}
	return c
}

// established is the gateway's answer to a CONNECT it allows, all of it.
const established = "HTTP/1.1 200 Connection established\r\n\r\n"

// dialTunnel opens a CONNECT tunnel to target through the HTTP proxy at
// proxy, reading exactly the gateway's answer so that nothing is buffered
// past it.
func dialTunnel(proxy, target string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", proxy, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	var resp [len(established)]byte
	if _, err := io.ReadFull(c, resp[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s: %w", target, err)
	}
	if string(resp[:]) != established {
		c.Close()
		return nil, fmt.Errorf("CONNECT %s: %q", target, resp[:])
	}
	return c, nil
}

// get sends one GET for origin's / on c (absolute form for the HTTP
// proxy) and reads the body with buf; it returns the body's length.
func get(c net.Conn, mode, origin string, buf []byte) (int64, error) {
	target := "/"
	if mode == "http" {
		target = "http://" + origin + "/"
	}
	if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: "+origin+"\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %s", resp.Status)
	}
	var n int64
	for {
		m, err := resp.Body.Read(buf)
		n += int64(m)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// BenchmarkLatency measures what the gateway adds to one exchange, p50 and
// p99, against the same exchange made directly, the two alternating in
// one loop:
//
//   - tunnel: 64 bytes to an echo server and back, over an established
//     CONNECT tunnel vs an established direct connection;
//   - connect: a new connection, the same 64-byte exchange, and close; a
//     new CONNECT tunnel (connect, CONNECT, 200) vs a new direct connection;
//   - http: a small GET, on a kept-alive connection to the HTTP proxy
//     (which opens a new connection upstream for each request) vs on a
//     kept-alive connection to the server.
//
// Times are in microseconds; added-* is via-* minus direct-*.
func BenchmarkLatency(b *testing.B) {
	echo := startEcho(b)
	web := startHTTP(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		io.WriteString(w, "ok\n")
	}))
	tg := startGateway(b, Config{Rules: rules(b, []string{echo, web}, nil)})
	msg := bytes.Repeat([]byte{'x'}, 64)
	reply := make([]byte, len(msg))
	exchange := func(c net.Conn) error {
		if _, err := c.Write(msg); err != nil {
			return err
		}
		_, err := io.ReadFull(c, reply)
		return err
	}

	b.Run("tunnel", func(b *testing.B) {
		d, err := net.Dial("tcp", echo)
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		v, err := dialTunnel(tg.httpAddr, echo)
		if err != nil {
			b.Fatal(err)
		}
		defer v.Close()
		latency(b, func(via bool) error {
			if via {
				return exchange(v)
			}
			return exchange(d)
		})
	})

	b.Run("connect", func(b *testing.B) {
		latency(b, func(via bool) error {
			var c net.Conn
			var err error
			if via {
				c, err = dialTunnel(tg.httpAddr, echo)
			} else {
				c, err = net.Dial("tcp", echo)
			}
			if err != nil {
				return err
			}
			defer c.Close()
			return exchange(c)
		})
	})

	b.Run("http", func(b *testing.B) {
		d, err := net.Dial("tcp", web)
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		v, err := net.Dial("tcp", tg.httpAddr)
		if err != nil {
			b.Fatal(err)
		}
		defer v.Close()
		dr, vr := bufio.NewReader(d), bufio.NewReader(v)
		get := func(c net.Conn, br *bufio.Reader, target string) error {
			if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: "+web+"\r\n\r\n"); err != nil {
				return err
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && (resp.StatusCode != 200 || resp.Close) {
				err = fmt.Errorf("status %s, close %v", resp.Status, resp.Close)
			}
			return err
		}
		latency(b, func(via bool) error {
			if via {
				return get(v, vr, "http://"+web+"/")
			}
			return get(d, dr, "/")
		})
	})
}

// latency runs op directly and via the gateway in turn, b.N times each,
// and reports both sides' p50 and p99 and the difference.
func latency(b *testing.B, op func(via bool) error) {
	var direct, via []time.Duration
	i := 0
	for b.Loop() {
		for _, v := range []bool{i%2 == 0, i%2 != 0} { // alternate which goes first
			start := time.Now()
			if err := op(v); err != nil {
				b.Fatal(err)
			}
			d := time.Since(start)
			if v {
				via = append(via, d)
			} else {
				direct = append(direct, d)
			}
		}
		i++
	}
	slices.Sort(direct)
	slices.Sort(via)
	for _, q := range []struct {
		name string
		q    float64
	}{{"p50", 0.50}, {"p99", 0.99}} {
		d, v := quantile(direct, q.q), quantile(via, q.q)
		b.ReportMetric(d, "direct-"+q.name+"-us")
		b.ReportMetric(v, "via-"+q.name+"-us")
		b.ReportMetric(v-d, "added-"+q.name+"-us")
		if q.name == "p50" && d > 0 {
			b.ReportMetric(v/d, "x-p50")
		}
	}
}

// quantile of sorted durations, in microseconds.
func quantile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(q*float64(len(sorted))), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Microsecond)
}

// BenchmarkConnRate opens b.N tunnels, each for one small exchange: from
// the peer process, with that many clients at once, each client connects
// to the gateway, CONNECTs to the peer's echo server, sends 64 bytes,
// reads them back and closes. conns/s is the rate with the clients, the
// echo server and the gateway sharing this machine's cores;
// gw-cpu-us/conn is the CPU time of the gateway's process alone, and
// peer-cpu-us/conn that of the clients and the echo server.
//
// floor is the same load, 64 clients, on a bare CONNECT relay in this
// process (http.ReadRequest, net.Dial, io.Copy both ways, which splices):
// no policy, audit, TLS hello check or idle timeout. It is what any Go
// relay pays for a connection on this machine.
func BenchmarkConnRate(b *testing.B) {
	p := startPeer(b)
	tg := startGateway(b, Config{Rules: rules(b, []string{p.echo}, nil)})
	rate := func(b *testing.B, proxy string, clients int) {
		p.do(b, "conns %s %s %d %d", proxy, p.echo, 2*clients, clients) // warm up
		cpu0 := cpuTime()
		b.ResetTimer()
		r := p.do(b, "conns %s %s %d %d", proxy, p.echo, b.N, clients)
		b.StopTimer()
		gwCPU := cpuTime() - cpu0
		peerCPU, _ := time.ParseDuration(r[1])
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
		b.ReportMetric(float64(gwCPU/time.Microsecond)/float64(b.N), "gw-cpu-us/conn")
		b.ReportMetric(float64(peerCPU/time.Microsecond)/float64(b.N), "peer-cpu-us/conn")
	}
	for _, clients := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { rate(b, tg.httpAddr, clients) })
	}
	b.Run("floor", func(b *testing.B) { rate(b, startBareRelay(b), 64) })
}

// startBareRelay is BenchmarkConnRate's floor: a CONNECT relay with
// nothing but the protocol.
func startBareRelay(b *testing.B) string {
	return serveTCP(b, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil || req.Method != http.MethodConnect {
			return
		}
		u, err := net.Dial("tcp", req.Host)
		if err != nil {
			return
		}
		defer u.Close()
		io.WriteString(c, established)
		done := make(chan struct{})
		go func() {
			io.Copy(u, c)
			u.(*net.TCPConn).CloseWrite()
			close(done)
		}()
		io.Copy(c, u)
		c.(*net.TCPConn).CloseWrite()
		<-done
	})
}

// BenchmarkIdleTunnels opens n idle CONNECT tunnels (-tunnels, 2000 and
// 10000) from a peer process to an echo server in another and reports what
// they cost the gateway's process, per tunnel:
// B/tunnel is the growth of the Go heap in use plus the goroutine stacks
// (MemStats HeapInuse+StackInuse, after a GC, with the pipes and buffers
// that are only taken while bytes move back in their pools), heap-B and
// stack-B its two parts, sys-B what the runtime took from the kernel
// (with the poller's descriptors, which live outside the heap), rss-B the
// resident set's growth after returning free memory to the kernel. Kernel
// memory for the sockets is not counted. The tunnels are not counted
// until each has carried one byte each way.
//
// With -hold D the tunnels stay open for D, then each carries a byte each
// way again; any tunnel that ended, or any error, fails the benchmark.
// The gateway holds two descriptors a tunnel, so n=10000 needs more than
// 20,000 in its process: the benchmark raises RLIMIT_NOFILE, hard limit
// too if it must (which takes CAP_SYS_RESOURCE), or skips, saying how many
// tunnels would fit.
func BenchmarkIdleTunnels(b *testing.B) {
	for _, f := range strings.Split(*benchTunnels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("-tunnels %q: want counts such as 2000,10000", *benchTunnels)
		}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			raiseNOFILE(b, 2*n+openFDs()+64)
			echo, clients := startPeer(b), startPeer(b) // each holds one end of n connections
			tg := startGateway(b, Config{Rules: rules(b, []string{echo.echo}, nil)})
			for b.Loop() {
				idleTunnels(b, clients, echo.echo, tg, n)
			}
		})
	}
}

func idleTunnels(b *testing.B, p *peer, echo string, tg *testGateway, n int) {
	m0 := memNow()
	slab0 := slabKB()
	g0 := runtime.NumGoroutine()
	p.do(b, "open %s %s %d", tg.httpAddr, echo, n)
	if got := len(tg.slots); got != n {
		b.Fatalf("%d connections in the gateway, want %d", got, n)
	}
	m1 := memNow()
	b.ReportMetric(float64(int64(m1.heap+m1.stack)-int64(m0.heap+m0.stack))/float64(n), "B/tunnel")
	b.ReportMetric(float64(int64(m1.heap)-int64(m0.heap))/float64(n), "heap-B/tunnel")
	b.ReportMetric(float64(int64(m1.stack)-int64(m0.stack))/float64(n), "stack-B/tunnel")
	b.ReportMetric(float64(int64(m1.sys)-int64(m0.sys))/float64(n), "sys-B/tunnel")
	b.ReportMetric(float64(int64(m1.rss)-int64(m0.rss))/float64(n), "rss-B/tunnel")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0)/float64(n), "goroutines/tunnel")
	b.Logf("not counted above: the kernel's slab grew by %d B a tunnel, machine-wide (a tunnel's four sockets, and whatever else ran)", (slabKB()-slab0)*1024/int64(n))

	if *benchHold > 0 {
		b.StopTimer()
		start := time.Now()
		for left := *benchHold; left > 0; left = *benchHold - time.Since(start) {
			time.Sleep(min(left, time.Second))
			if got := len(tg.slots); got != n {
				b.Fatalf("after %v, %d of %d tunnels left", time.Since(start).Round(time.Second), got, n)
			}
		}
		r := p.do(b, "check")
		if s := tg.Stats(); s.Denied.Load() != 0 || tg.logs.String() != "" {
			b.Fatalf("denials during the hold: %d\n%s", s.Denied.Load(), tg.logs)
		}
		b.Logf("%d tunnels held %v, all open every second; then each of the %s carried a byte each way; no error", n, time.Since(start).Round(time.Second), r[1])
		b.StartTimer()
	}
	p.do(b, "close")
	for start := time.Now(); len(tg.slots) > 0; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > time.Minute {
			b.Fatalf("%d tunnels still open a minute after their clients closed", len(tg.slots))
		}
	}
}

type memStats struct{ heap, stack, sys, rss uint64 }

// memNow measures this process after a GC that returns free memory to
// the kernel (two cycles, so that sync.Pools are emptied).
func memNow() memStats {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memStats{heap: ms.HeapInuse, stack: ms.StackInuse, sys: ms.Sys - ms.HeapReleased}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.rss = kb << 10
			}
		}
	}
	return m
}

// slabKB is the kernel's slab memory (/proc/meminfo), in KiB.
func slabKB() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Slab:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// raiseNOFILE makes sure this process (and so the peer it starts) may
// open n descriptors, raising the hard limit if it must; it skips the
// benchmark if it cannot.
func raiseNOFILE(b *testing.B, n int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur >= uint64(n) {
		return
	}
	if lim.Max >= uint64(n) {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
			return
		}
	}
	want := syscall.Rlimit{Cur: uint64(n), Max: max(lim.Max, uint64(n))}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		b.Skipf("needs %d descriptors; the limit is %d (hard %d) and raising it failed (%v): it takes CAP_SYS_RESOURCE, or a higher ulimit -Hn; with this limit at most %d tunnels fit (-tunnels %d)",
			n, lim.Cur, lim.Max, err, (int(lim.Max)-openFDs()-64)/2, (int(lim.Max)-openFDs()-64)/2)
	}
}

// openFDs counts this process's open descriptors.
func openFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}

// cpuTime is the user and system time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peerEnv, set to 1, makes TestGatewayBenchPeer the peer process.
const peerEnv = "CORDON_GATEWAY_BENCH_PEER"

// peer is the second process of the benchmarks: the clients, and the echo
// server they reach through the gateway. It reads one command a line and
// answers one line, "ok ..." or "error: ...".
type peer struct {
	cmds    io.Writer
	replies *bufio.Reader
	echo    string // its echo server's address
}

// startPeer starts this test binary again as the peer, until the
// benchmark ends. It may open as many descriptors as the hard limit
// allows: the Go runtime raises the soft limit to it.
func startPeer(b *testing.B) *peer {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestGatewayBenchPeer$", "-test.timeout=0")
	cmd.Env = append(os.Environ(), peerEnv+"=1")
	cmd.ExtraFiles = []*os.File{cmdR, repW} // its fds 3 and 4
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	cmdR.Close()
	repW.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		cmdW.Close() // the peer exits at the end of its commands
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		repR.Close()
	})
	p := &peer{cmds: cmdW, replies: bufio.NewReader(repR)}
	r := p.read(b)
	p.echo = r[1]
	return p
}

// do sends a command and returns the fields of the peer's "ok" answer.
func (p *peer) do(b *testing.B, format string, args ...any) []string {
	b.Helper()
	if _, err := fmt.Fprintf(p.cmds, format+"\n", args...); err != nil {
		b.Fatalf("peer: %v", err)
	}
	return p.read(b)
}

func (p *peer) read(b *testing.B) []string {
	b.Helper()
	line, err := p.replies.ReadString('\n')
	if err != nil {
		b.Fatalf("peer: %v", err)
	}
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "ok" {
		b.Fatalf("peer: %s", strings.TrimSpace(line))
	}
	return f
}

// TestGatewayBenchPeer is not a test: it is the peer process of the
// benchmarks, and runs only when one of them starts it.
func TestGatewayBenchPeer(t *testing.T) {
	if os.Getenv(peerEnv) != "1" {
		t.Skip("the benchmarks' peer process; it runs only when they start it")
	}
	if err := runPeer(os.NewFile(3, "commands"), os.NewFile(4, "replies")); err != nil {
		t.Fatal(err)
	}
	os.Exit(0) // no "PASS" in the benchmark's output
}

// runPeer serves echo on loopback and runs commands until in ends:
//
//	open PROXY ECHO N     open N CONNECT tunnels through PROXY to the echo
//	                      server ECHO, each carrying one byte each way, and
//	                      hold them
//	check                 one byte each way on every held tunnel
//	close                 close the held tunnels
//	conns PROXY ECHO N C  N tunnels, C at a time: connect, CONNECT, 64
//	                      bytes each way, close; answers the CPU time it
//	                      took
func runPeer(in io.Reader, out io.Writer) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var buf [512]byte
				for {
					n, err := c.Read(buf[:])
					if n > 0 {
						if _, err := c.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	fmt.Fprintf(out, "ok %s\n", l.Addr())

	var held []net.Conn
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		var reply string
		switch {
		case len(f) == 4 && f[0] == "open":
			n, _ := strconv.Atoi(f[3])
			conns := make([]net.Conn, n)
			err := parallel(n, 64, func(i int) error {
				c, err := dialTunnel(f[1], f[2])
				if err != nil {
					return err
				}
				conns[i] = c
				return roundTrip(c, 1)
			})
			for _, c := range conns {
				if c != nil {
					held = append(held, c)
				}
			}
			reply = "ok"
			if err != nil {
				reply = "error: " + err.Error()
			}
		case len(f) == 1 && f[0] == "check":
			err := parallel(len(held), 64, func(i int) error { return roundTrip(held[i], 1) })
			reply = fmt.Sprintf("ok %d", len(held))
			if err != nil {
				reply = "error: " + err.Error()
			}
		case len(f) == 1 && f[0] == "close":
			for _, c := range held {
				c.Close()
			}
			held = nil
			reply = "ok"
		case len(f) == 5 && f[0] == "conns":
			n, _ := strconv.Atoi(f[3])
			clients, _ := strconv.Atoi(f[4])
			cpu0 := cpuTime()
			err := parallel(n, clients, func(int) error {
				c, err := dialTunnel(f[1], f[2])
				if err != nil {
					return err
				}
				defer c.Close()
				return roundTrip(c, 64)
			})
			reply = fmt.Sprintf("ok %v", cpuTime()-cpu0)
			if err != nil {
				reply = "error: " + err.Error()
			}
		default:
			reply = fmt.Sprintf("error: unknown command %q", sc.Text())
		}
		if _, err := fmt.Fprintln(out, reply); err != nil {
			return err
		}
	}
	for _, c := range held {
		c.Close()
	}
	return sc.Err()
}

// roundTrip sends n bytes on c and reads them back.
func roundTrip(c net.Conn, n int) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	b := bytes.Repeat([]byte{'x'}, n)
	if _, err := c.Write(b); err != nil {
		return err
	}
	_, err := io.ReadFull(c, b)
	return err
}

// parallel runs f(0) … f(n-1), workers at a time. It returns nil, or how
// many failed and the first error.
func parallel(n, workers int, f func(i int) error) error {
	var next, failed atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		return fmt.Errorf("%d of %d failed; the first: %v", failed.Load(), n, first.Load())
	}
	return nil
}
