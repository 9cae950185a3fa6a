package sandbox

import (
	"io"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/internal/policy"
)

// BenchmarkSessionCreateExec is a session's start to the end of its first
// exec (`true`), and, apart, its destruction: what `cordon serve` pays for
// POST /v1/sessions then the first exec, without HTTP.
//
//	go test -run '^$' -bench SessionCreateExec -benchtime 200x ./internal/sandbox/
func BenchmarkSessionCreateExec(b *testing.B) {
	if LandlockABI() < LandlockRequiredABI {
		b.Skip("no Landlock")
	}
	var lat, destroy []time.Duration
	for b.Loop() {
		start := time.Now()
		s, err := StartSession(SessionOptions{
			UID: 65534, GID: 65534,
			Base: "host", DiskBytes: 64 << 20,
			Hide:   []string{"/home", "/root", "/run", "/tmp", "/var/tmp", "/mnt", "/media"},
			Limits: policy.Limits{Pids: 256, MemoryBytes: 256 << 20}, Degraded: map[policy.Wall]bool{policy.WallCgroup: true},
			Listen: []uint16{3128, 1080},
			Serve:  func(port uint16, l net.Listener) { l.Close() },
			Log:    func(string, ...any) {}, Warn: func(string, ...any) {},
		})
		if err != nil {
			b.Fatal(err)
		}
		p, err := s.Exec(SessionExec{Argv: []string{"/bin/true"}})
		if err != nil {
			b.Fatal(err)
		}
		p.Stdin.Close()
		io.Copy(io.Discard, p.Stdout)
		if code, _, err := p.Wait(); err != nil || code != 0 {
			b.Fatalf("true: %d %v", code, err)
		}
		p.Close()
		lat = append(lat, time.Since(start))
		t0 := time.Now()
		if err := s.Destroy(); err != nil {
			b.Fatal(err)
		}
		destroy = append(destroy, time.Since(t0))
	}
	q := func(d []time.Duration, f float64) float64 {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[int(f*float64(len(d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(lat, 0.5), "p50-ms")
	b.ReportMetric(q(lat, 0.99), "p99-ms")
	b.ReportMetric(q(destroy, 0.5), "destroy-p50-ms")
}
