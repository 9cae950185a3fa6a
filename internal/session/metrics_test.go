package session_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/cordon-sandbox/cordon/client"
	"github.com/cordon-sandbox/cordon/internal/gateway"
	"github.com/cordon-sandbox/cordon/internal/session"
	"github.com/cordon-sandbox/cordon/internal/session/sessiontest"
)

func TestMetrics(t *testing.T) {
	// A runtime whose name needs escaping in a label.
	weird := `we"ird\name` + "\n"
	m, rt, _ := newManager(t, func(c *session.Config) {
		c.Runtimes["weird"] = &sessiontest.Runtime{RuntimeName: weird, Memory: 1000}
	})
	rt.Memory = 234
	a := mustCreate(t, m, client.CreateRequest{})
	mustCreate(t, m, client.CreateRequest{Runtime: "weird"})
	stopped := mustCreate(t, m, client.CreateRequest{})
	if err := m.Delete(context.Background(), stopped.ID); err != nil {
		t.Fatal(err)
	}
	e, err := m.Exec(context.Background(), a.ID, client.ExecRequest{Argv: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, e.Process().Stdout())
	<-e.Done()
	e.Close()
	_, sub, _ := m.Events(a.ID, true)
	defer sub.Close()
	connect(t, rt.Boxes()[0].Addr(gateway.HTTPPort), "example.com:443")
	nextEvent(t, sub, "connection")

	var buf bytes.Buffer
	if err := m.WriteMetrics(&buf); err != nil {
		t.Fatal(err)
	}
	fams := parseExposition(t, buf.String())
	for _, tt := range []struct {
		name, labels string
		want         float64
	}{
		{"cordon_sessions", `state="running"`, 2},
		{"cordon_sessions", `state="stopped"`, 1},
		{"cordon_sessions", `state="starting"`, 0},
		{"cordon_sessions_created_total", `runtime="native"`, 2},
		{"cordon_sessions_created_total", `runtime="we\"ird\\name\n"`, 1},
		{"cordon_session_create_seconds_count", ``, 3},
		{"cordon_execs_total", ``, 1},
		{"cordon_exec_duration_seconds_count", ``, 1},
		{"cordon_gateway_decisions_total", `decision="deny"`, 1},
		{"cordon_session_memory_bytes", ``, 1234},
	} {
		key := tt.name + "{" + tt.labels + "}"
		if got, ok := fams.samples[key]; !ok || got != tt.want {
			t.Errorf("%s = %v (present: %v), want %v\n%s", key, got, ok, tt.want, buf.String())
		}
	}
	for name, typ := range map[string]string{
		"cordon_sessions": "gauge", "cordon_sessions_created_total": "counter", "cordon_session_create_seconds": "histogram",
		"cordon_execs_total": "counter", "cordon_exec_duration_seconds": "histogram", "cordon_gateway_decisions_total": "counter",
		"cordon_session_memory_bytes": "gauge",
	} {
		if fams.types[name] != typ {
			t.Errorf("TYPE of %s = %q, want %s", name, fams.types[name], typ)
		}
	}
}

// exposition is what parseExposition read.
type exposition struct {
	types   map[string]string
	samples map[string]float64 // by name{labels as written}
}

// parseExposition checks text against the text format 0.0.4: every
// sample's family has HELP and TYPE before it, once; label values are
// escaped; a histogram has cumulative buckets ending at +Inf equal to its
// _count, and a _sum.
func parseExposition(t *testing.T, text string) exposition {
	t.Helper()
	ex := exposition{types: map[string]string{}, samples: map[string]float64{}}
	help := map[string]bool{}
	type hist struct {
		les    []float64
		counts []float64
	}
	hists := map[string]*hist{}
	if !strings.HasSuffix(text, "\n") {
		t.Errorf("the exposition does not end with a newline")
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		errorf := func(format string, args ...any) {
			t.Errorf("line %d %q: %s", i+1, line, fmt.Sprintf(format, args...))
		}
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name, _, _ := strings.Cut(rest, " ")
			if help[name] {
				errorf("a second HELP")
			}
			help[name] = true
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			if _, dup := ex.types[name]; dup {
				errorf("a second TYPE")
			}
			switch typ {
			case "counter", "gauge", "histogram", "summary", "untyped":
			default:
				errorf("unknown type %q", typ)
			}
			ex.types[name] = typ
			continue
		}
		if strings.HasPrefix(line, "#") || line == "" {
			errorf("not a sample")
			continue
		}
		name, labels, value := splitSample(t, line)
		fam := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok && ex.types[base] == "histogram" {
				fam = base
			}
		}
		if ex.types[fam] == "" || !help[fam] {
			errorf("no TYPE or HELP for %s before its sample", fam)
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			errorf("value: %v", err)
		}
		ex.samples[name+"{"+labels+"}"] = v
		if ex.types[fam] == "histogram" && strings.HasSuffix(name, "_bucket") {
			le, ok := strings.CutPrefix(labels, `le="`)
			if !ok {
				errorf("a bucket without le")
				continue
			}
			b, err := strconv.ParseFloat(strings.TrimSuffix(le, `"`), 64)
			if err != nil {
				errorf("le: %v", err)
			}
			h := hists[fam]
			if h == nil {
				h = &hist{}
				hists[fam] = h
			}
			if n := len(h.les); n > 0 && (b <= h.les[n-1] || v < h.counts[n-1]) {
				errorf("buckets not ascending and cumulative")
			}
			h.les, h.counts = append(h.les, b), append(h.counts, v)
		}
	}
	for fam, h := range hists {
		n := len(h.les)
		if n == 0 || !math.IsInf(h.les[n-1], 1) {
			t.Errorf("%s: the last bucket is not +Inf", fam)
			continue
		}
		if c, ok := ex.samples[fam+"_count{}"]; !ok || c != h.counts[n-1] {
			t.Errorf("%s: _count %v, want the +Inf bucket's %v", fam, c, h.counts[n-1])
		}
		if _, ok := ex.samples[fam+"_sum{}"]; !ok {
			t.Errorf("%s: no _sum", fam)
		}
	}
	return ex
}

// splitSample splits name{labels} value, checking the labels' escapes.
func splitSample(t *testing.T, line string) (name, labels, value string) {
	t.Helper()
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		t.Errorf("sample %q: no value", line)
		return line, "", ""
	}
	name, rest := line[:i], line[i:]
	if strings.HasPrefix(rest, "{") {
		// Walk the labels: a value is "..." with \\, \" and \n escapes
		// only; a raw newline or quote would end it wrongly.
		j := 1
		for j < len(rest) && rest[j] != '}' {
			eq := strings.IndexByte(rest[j:], '=')
			if eq < 0 || rest[j+eq+1] != '"' {
				t.Errorf("sample %q: bad label at %d", line, j)
				return name, "", ""
			}
			j += eq + 2
			for j < len(rest) && rest[j] != '"' {
				if rest[j] == '\\' {
					if j+1 >= len(rest) || !strings.ContainsRune(`\"n`, rune(rest[j+1])) {
						t.Errorf("sample %q: bad escape at %d", line, j)
					}
					j++
				}
				j++
			}
			j++ // the closing quote
			if j < len(rest) && rest[j] == ',' {
				j++
			}
		}
		if j >= len(rest) {
			t.Errorf("sample %q: unterminated labels", line)
			return name, "", ""
		}
		labels, rest = rest[1:j], rest[j+1:]
	}
	return name, labels, strings.TrimPrefix(rest, " ")
}
