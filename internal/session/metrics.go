package session

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/cordon-sandbox/cordon/client"
)

// The Manager's metrics, in the Prometheus text exposition format 0.0.4,
// written by hand. Not prometheus/client_golang: its package init
// registers collectors and it pulls in protobuf, and this is the one
// binary whose start every `cordon run` pays for; a few counters and two
// histograms do not need it.

// Buckets of the histograms, in seconds.
var (
	createBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	execBuckets   = []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800}
)

// histogram counts observations per bucket (not yet cumulative).
type histogram struct {
	bounds []float64
	counts []uint64 // len(bounds)+1: the last is above every bound
	sum    float64
	count  uint64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v) // the first bound >= v: le is inclusive
	h.counts[i]++
	h.sum += v
	h.count++
}

// metrics are the counters the Manager keeps; the gauges are read from
// its sessions when written.
type metrics struct {
	mu         sync.Mutex
	created    map[string]uint64 // by runtime
	createTime *histogram
	execs      uint64
	execTime   *histogram
	decisions  map[string]uint64 // gateway connections by decision
}

func newMetrics() *metrics {
	return &metrics{
		created:    map[string]uint64{},
		createTime: newHistogram(createBuckets),
		execTime:   newHistogram(execBuckets),
		decisions:  map[string]uint64{},
	}
}

func (m *metrics) sessionCreated(runtime string, seconds float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.created[runtime]++
	m.createTime.observe(seconds)
}

func (m *metrics) execStarted() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.execs++
}

func (m *metrics) execEnded(seconds float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.execTime.observe(seconds)
}

func (m *metrics) decision(d string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.decisions[d]++
}

// WriteMetrics writes the Manager's metrics in the Prometheus text format.
func (m *Manager) WriteMetrics(w io.Writer) error {
	states := map[string]int{client.StateStarting: 0, client.StateRunning: 0, client.StateStopping: 0, client.StateStopped: 0}
	var memory int64
	m.mu.Lock()
	ss := make([]*sess, 0, len(m.sessions))
	for _, s := range m.sessions {
		ss = append(ss, s)
	}
	m.mu.Unlock()
	for _, s := range ss {
		s.mu.Lock()
		states[s.rec.State]++
		box := s.box
		running := s.rec.State == client.StateRunning
		s.mu.Unlock()
		if running && box != nil {
			memory += box.MemoryBytes()
		}
	}

	bw := bufio.NewWriter(w)
	e := expo{w: bw}
	e.header("cordon_sessions", "gauge", "Sessions by state; stopped ones are kept a few minutes for GET.")
	for _, st := range sortedKeys(states) {
		e.sample("cordon_sessions", labels("state", st), float64(states[st]))
	}

	m.metrics.mu.Lock()
	e.header("cordon_sessions_created_total", "counter", "Sessions created, by runtime.")
	for _, rt := range sortedKeys(m.metrics.created) {
		e.sample("cordon_sessions_created_total", labels("runtime", rt), float64(m.metrics.created[rt]))
	}
	e.histogram("cordon_session_create_seconds", "Time to create a session, from the request to a running box.", m.metrics.createTime)
	e.header("cordon_execs_total", "counter", "Execs started in sessions.")
	e.sample("cordon_execs_total", "", float64(m.metrics.execs))
	e.histogram("cordon_exec_duration_seconds", "Time from an exec's start to its end.", m.metrics.execTime)
	e.header("cordon_gateway_decisions_total", "counter", "Connections the sessions' gateways decided, by decision.")
	for _, d := range sortedKeys(m.metrics.decisions) {
		e.sample("cordon_gateway_decisions_total", labels("decision", d), float64(m.metrics.decisions[d]))
	}
	m.metrics.mu.Unlock()

	e.header("cordon_session_memory_bytes", "gauge", "Memory the running sessions' processes use now.")
	e.sample("cordon_session_memory_bytes", "", float64(memory))
	return bw.Flush()
}

// expo writes the text format.
type expo struct{ w *bufio.Writer }

func (e expo) header(name, typ, help string) {
	fmt.Fprintf(e.w, "# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

func (e expo) sample(name, labels string, v float64) {
	fmt.Fprintf(e.w, "%s%s %s\n", name, labels, formatFloat(v))
}

// histogram writes h's buckets cumulative, ending with +Inf, then its sum
// and count.
func (e expo) histogram(name, help string, h *histogram) {
	e.header(name, "histogram", help)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		e.sample(name+"_bucket", labels("le", formatFloat(b)), float64(cum))
	}
	cum += h.counts[len(h.bounds)]
	e.sample(name+"_bucket", labels("le", "+Inf"), float64(cum))
	e.sample(name+"_sum", "", h.sum)
	e.sample(name+"_count", "", float64(h.count))
}

// labels writes {k="v",...} from pairs, each value escaped.
func labels(kv ...string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(kv[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
func escapeHelp(s string) string  { return helpEscaper.Replace(s) }

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
