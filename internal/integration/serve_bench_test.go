package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/client"
	"github.com/cordon-sandbox/cordon/internal/cordontest"
)

// BenchmarkServe measures the session tier through its API, as root, for
// each runtime here (gvisor when runsc is installed): create → first exec
// finished (`true`), p50 and p99, one at a time, with the server's warm
// sessions (the default) and with none (--warm 0); sessions created per
// second, 8 at a time, each deleted after; and the memory of an idle
// session (the server's resident memory, the sessions' cgroups and their
// processes, per session, over 20 idle sessions). Run it with:
//
//	go test -run '^$' -bench Serve -benchtime 200x ./internal/integration/
func BenchmarkServe(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("measured as root (a cgroup leaf per session)")
	}
	runtimes := []string{"native"}
	if runscPath() != "" {
		runtimes = append(runtimes, "gvisor")
	}
	for _, rt := range runtimes {
		for _, warm := range []string{"2", "0"} {
			b.Run(fmt.Sprintf("runtime=%s/warm=%s", rt, warm), func(b *testing.B) {
				s := benchServer(b, "--warm", warm)
				ctx := context.Background()
				var lat []time.Duration
				for b.Loop() {
					start := time.Now()
					sess, err := s.c.Create(ctx, client.CreateRequest{Runtime: rt})
					if err != nil {
						b.Fatal(err)
					}
					res, err := s.c.Exec(ctx, sess.ID, client.ExecRequest{Argv: []string{"true"}}, client.ExecIO{})
					if err != nil || res.Code != 0 {
						b.Fatalf("%+v %v", res, err)
					}
					lat = append(lat, time.Since(start))
					b.StopTimer()
					s.c.Delete(ctx, sess.ID)
					// Creates 300 ms apart: a warm session's replacement
					// starts 250 ms after it is taken (the rate benchmark
					// below has no such pause).
					time.Sleep(300 * time.Millisecond)
					b.StartTimer()
				}
				b.ReportMetric(quantile(lat, 0.5), "p50-ms")
				b.ReportMetric(quantile(lat, 0.99), "p99-ms")
			})
		}
		b.Run(fmt.Sprintf("runtime=%s/rate", rt), func(b *testing.B) {
			s := benchServer(b)
			ctx := context.Background()
			n := b.N
			start := time.Now()
			var wg sync.WaitGroup
			sem := make(chan struct{}, 8)
			for range n {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					sess, err := s.c.Create(ctx, client.CreateRequest{Runtime: rt})
					if err != nil {
						b.Error(err)
						return
					}
					s.c.Delete(ctx, sess.ID)
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "sessions/s")
		})
		b.Run(fmt.Sprintf("runtime=%s/idle-memory", rt), func(b *testing.B) {
			s := benchServer(b, "--warm", "0")
			ctx := context.Background()
			pid := s.cmd.Process.Pid
			time.Sleep(time.Second)
			rss0 := rssKiB(pid)
			const n = 20
			var ids []string
			for range n {
				sess, err := s.c.Create(ctx, client.CreateRequest{Runtime: rt})
				if err != nil {
					b.Fatal(err)
				}
				ids = append(ids, sess.ID)
			}
			time.Sleep(2 * time.Second)
			var cg, inits int64
			dirs := cgroupsOf(pid)
			if rt == "gvisor" {
				// runsc makes each box's cgroup below the server's own.
				for _, pat := range []string{"/sys/fs/cgroup/memory/*/cordon-gvisor-*", "/sys/fs/cgroup/memory/*/*/cordon-gvisor-*", "/sys/fs/cgroup/memory/cordon-gvisor-*", "/sys/fs/cgroup/*/cordon-gvisor-*"} {
					m, _ := filepath.Glob(pat)
					dirs = append(dirs, m...)
				}
			}
			for _, dir := range dirs {
				mem := readInt(filepath.Join(dir, "memory.usage_in_bytes")) + readInt(filepath.Join(dir, "memory.current"))
				if mem == 0 {
					continue // another hierarchy's copy of the leaf
				}
				cg += mem
				for _, p := range strings.Fields(string(readAll(filepath.Join(dir, "cgroup.procs")))) {
					n, _ := strconv.Atoi(p)
					inits += rssKiB(n) * 1024
				}
			}
			server := (rssKiB(pid) - rss0) * 1024
			b.ReportMetric(float64(server)/n/(1<<20), "server-MiB/session")
			b.ReportMetric(float64(cg)/n/(1<<20), "cgroup-MiB/session")
			b.ReportMetric(float64(inits)/n/(1<<20), "processes-rss-MiB/session")
			for _, id := range ids {
				s.c.Delete(ctx, id)
			}
			for range b.N {
			}
		})
	}
}

// benchServer is a server as root for a benchmark.
func benchServer(b *testing.B, extra ...string) *server {
	b.Helper()
	return startServer(b, cordontest.Users()[0], extra...)
}

func quantile(d []time.Duration, q float64) float64 {
	d = slices.Clone(d)
	slices.Sort(d)
	if len(d) == 0 {
		return 0
	}
	return float64(d[int(q*float64(len(d)-1))].Microseconds()) / 1000
}

func rssKiB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

func readAll(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

func readInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// runscPath is runsc if this machine has it: $CORDON_RUNSC, or on PATH.
func runscPath() string {
	if p := os.Getenv("CORDON_RUNSC"); p != "" {
		return p
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if p := filepath.Join(dir, "runsc"); isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}
