package audit

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 19, 14, 5, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func conn(sec int, host string, port int, decision string, up, down int64) Event {
	e := Event{Time: at(sec), Event: KindConnection, Proto: "connect", Host: host, Port: port, Decision: decision, BytesUp: up, BytesDown: down}
	if decision == Deny {
		e.Rule = "deny *"
		e.Reason = "not in the allow list"
	} else {
		e.Rule = "allow " + host
	}
	return e
}

// handLog is one run: three destinations allowed, two denied, one failure,
// a canary, and a partial last line.
func handLog() []Event {
	fail := conn(7, "api.example.com", 443, Allow, 10, 0)
	fail.Error = "connection reset by peer"
	ssh := conn(8, "evil.test", 22, Deny, 0, 0)
	ssh.Rule = "deny port 22"
	ssh.Reason = "port"
	return []Event{
		{Time: at(0), Event: KindStart, Command: []string{"claude", "-p", "fix it"}, Workspace: "/home/u/app", PolicyDigest: "sha256:abc", Version: "dev"},
		conn(1, "api.example.com", 443, Allow, 1000, 50000),
		conn(2, "proxy.golang.org", 443, Allow, 500, 1<<20),
		conn(3, "api.example.com", 443, Allow, 1000, 20000),
		conn(4, "evil.test", 443, Deny, 0, 0),
		conn(5, "registry.npmjs.org", 443, Allow, 100, 100),
		conn(6, "evil.test", 443, Deny, 0, 0),
		fail,
		ssh,
		{Time: at(9), Event: "canary", Detail: map[string]string{"file": "~/.aws/credentials"}},
		{Time: at(65), Event: KindEnd, ExitCode: intp(3)},
		{Event: KindTruncated, Detail: map[string]string{"line": "13"}},
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize(handLog())
	totals := []struct {
		name      string
		got, want any
	}{
		{"events", s.Events, 11},
		{"connections", s.Connections, 8},
		{"allowed", s.Allowed, 5},
		{"denied", s.Denied, 3},
		{"errors", s.Errors, 1},
		{"bytes up", s.BytesUp, int64(2610)},
		{"bytes down", s.BytesDown, int64(70100 + 1<<20)},
		{"other", s.Other, map[string]int{"canary": 1}},
		{"truncated", s.Truncated, true},
		{"runs", len(s.Runs), 1},
	}
	for _, tt := range totals {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("Summarize: %s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}

	r := s.Runs[0]
	if r.Start == nil || !r.Start.Equal(at(0)) || r.End == nil || !r.End.Equal(at(65)) {
		t.Errorf("run start, end = %v, %v; want %v, %v", r.Start, r.End, at(0), at(65))
	}
	if r.DurationMS == nil || *r.DurationMS != 65000 {
		t.Errorf("run duration_ms = %v, want 65000", r.DurationMS)
	}
	if r.ExitCode == nil || *r.ExitCode != 3 {
		t.Errorf("run exit code = %v, want 3", r.ExitCode)
	}
	if r.Connections != 8 || r.Denied != 3 || r.PolicyDigest != "sha256:abc" || len(r.Command) != 3 {
		t.Errorf("run = %+v", r)
	}

	// By count, then bytes: proxy.golang.org and registry.npmjs.org have
	// one connection each, proxy.golang.org more bytes.
	wantDests := []Destination{
		{Host: "api.example.com", Port: 443, Count: 3, BytesUp: 2010, BytesDown: 70000},
		{Host: "evil.test", Port: 443, Count: 2, Denied: 2},
		{Host: "proxy.golang.org", Port: 443, Count: 1, BytesUp: 500, BytesDown: 1 << 20},
		{Host: "registry.npmjs.org", Port: 443, Count: 1, BytesUp: 100, BytesDown: 100},
		{Host: "evil.test", Port: 22, Count: 1, Denied: 1},
	}
	if !reflect.DeepEqual(s.Destinations, wantDests) {
		t.Errorf("destinations =\n%+v\nwant\n%+v", s.Destinations, wantDests)
	}

	wantDenials := []Denial{
		{Host: "evil.test", Port: 443, Rule: "deny *", Reason: "not in the allow list", Count: 2, First: at(4), Last: at(6)},
		{Host: "evil.test", Port: 22, Rule: "deny port 22", Reason: "port", Count: 1, First: at(8), Last: at(8)},
	}
	if !reflect.DeepEqual(s.Denials, wantDenials) {
		t.Errorf("denials =\n%+v\nwant\n%+v", s.Denials, wantDenials)
	}
}

// TestSummarizeRequests: requests of inspected tunnels are counted on
// their own, and the refused ones join the denials.
func TestSummarizeRequests(t *testing.T) {
	evs := []Event{
		{Time: at(1), Event: KindConnection, Proto: "connect", Host: "r.test", Port: 443, Decision: Allow},
		{Time: at(2), Event: KindRequest, Proto: "https", Host: "r.test", Port: 443, Decision: Allow, Detail: map[string]string{"method": "GET", "path": "/a", "status": "200"}},
		{Time: at(3), Event: KindRequest, Proto: "https", Host: "r.test", Port: 443, Decision: Deny, Reason: "POST /a is not among the HTTP requests allowed"},
	}
	s := Summarize(evs)
	if s.Connections != 1 || s.Requests != 2 || s.RequestsDenied != 1 || s.Denied != 0 || len(s.Other) != 0 {
		t.Errorf("connections %d, requests %d (%d denied), denied %d, other %v", s.Connections, s.Requests, s.RequestsDenied, s.Denied, s.Other)
	}
	if len(s.Denials) != 1 || s.Denials[0].Host != "r.test" || s.Denials[0].Count != 1 {
		t.Errorf("denials %+v", s.Denials)
	}
	var b strings.Builder
	if err := s.WriteText(&b); err != nil || !strings.Contains(b.String(), "2: 1 allowed, 1 denied") || !strings.Contains(b.String(), "Denied connections and requests (1)") {
		t.Errorf("WriteText: %v\n%s", err, b.String())
	}
}

func TestSummarizeRuns(t *testing.T) {
	tests := []struct {
		name   string
		events []Event
		want   []Run
	}{
		{"none", nil, []Run{}},
		{"no end", []Event{{Time: at(0), Event: KindStart}, conn(1, "a.test", 443, Deny, 0, 0)},
			[]Run{{Start: ptr(at(0)), Connections: 1, Denied: 1}}},
		{"end without start", []Event{{Time: at(5), Event: KindEnd, ExitCode: intp(0)}},
			[]Run{{End: ptr(at(5)), ExitCode: intp(0)}}},
		{"two runs, concatenated logs", []Event{
			{Time: at(0), Event: KindStart, Version: "1"}, {Time: at(2), Event: KindEnd, ExitCode: intp(0)},
			conn(3, "between.test", 80, Allow, 0, 0),
			{Time: at(10), Event: KindStart, Version: "2"}, conn(11, "a.test", 443, Allow, 1, 1), {Time: at(11), Event: KindEnd, ExitCode: intp(1)},
		}, []Run{
			{Start: ptr(at(0)), End: ptr(at(2)), DurationMS: ptr(2000.0), ExitCode: intp(0), Version: "1"},
			{Start: ptr(at(10)), End: ptr(at(11)), DurationMS: ptr(1000.0), ExitCode: intp(1), Version: "2", Connections: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Summarize(tt.events).Runs
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Summarize(%s).Runs = %s, want %s", tt.name, runsText(got), runsText(tt.want))
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func runsText(runs []Run) string {
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "{%v %v %v %v %+v}", deref(r.Start), deref(r.End), deref(r.DurationMS), deref(r.ExitCode), r)
	}
	return b.String()
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestWriteText(t *testing.T) {
	var b strings.Builder
	if err := Summarize(handLog()).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Run           2026-11-28 19:14:05 UTC, 1m5s, exit status 3\n",
		"Command       claude -p 'fix it'\n",
		"Policy        sha256:abc\n",
		"Connections   8: 5 allowed, 3 denied, 1 with errors; 2.5 KiB up, 1.1 MiB down\n",
		"Other events  canary 1",
		"Truncated",
		"\nDestinations\n",
		"  COUNT  DENIED  UP       DOWN      DESTINATION\n",
		"  3      0       2.0 KiB  68.4 KiB  api.example.com:443\n",
		"\nDenied connections (3)\n",
		"  2      evil.test:443  deny *        not in the allow list\n",
		"  1      evil.test:22   deny port 22  port\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("WriteText: no %q in\n%s", want, out)
		}
	}
}

func TestWriteTextLimits(t *testing.T) {
	events := []Event{{Time: at(0), Event: KindStart}}
	for i := range 15 {
		events = append(events, conn(i, fmt.Sprintf("allowed%02d.test", i), 443, Allow, int64(i), 0))
	}
	for i := range 60 {
		events = append(events, conn(i, fmt.Sprintf("denied%02d.test", i), 443, Deny, 0, 0))
	}
	var b strings.Builder
	if err := Summarize(events).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"Top destinations (10 of 75)", "... and 10 more\n", "denied49.test:443", "no end event"} {
		if !strings.Contains(out, want) {
			t.Errorf("WriteText: no %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "denied50.test") {
		t.Errorf("WriteText printed more than %d denials:\n%s", maxDenials, out)
	}
	if n := strings.Count(out, "\n  1      0"); n != 10 {
		t.Errorf("WriteText printed %d allowed destinations, want the top 10:\n%s", n, out)
	}
}

// TestWriteTextEscapes: what the sandbox chose (host names, reasons) must
// not reach the terminal as control sequences.
func TestWriteTextEscapes(t *testing.T) {
	e := conn(1, "evil.test\x1b]0;pwned\x07", 443, Deny, 0, 0)
	e.Reason = "bad\u202ereversed\ttab\nnewline"
	var b strings.Builder
	if err := Summarize([]Event{e, {Event: "x\x9b2J"}}).WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, bad := range []string{"\x1b", "\x07", "\u202e", "\t", "\u009b", "tab\nnewline"} {
		if strings.Contains(out, bad) {
			t.Errorf("WriteText wrote %q raw:\n%s", bad, out)
		}
	}
	for _, want := range []string{`"evil.test\x1b]0;pwned\a:443"`, `"bad\u202ereversed\ttab\nnewline"`} {
		if !strings.Contains(out, want) {
			t.Errorf("WriteText: no %s in\n%s", want, out)
		}
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"go", "test", "./..."}, "go test ./..."},
		{[]string{"sh", "-c", "echo hi"}, "sh -c 'echo hi'"},
		{[]string{"echo", "it's"}, `echo 'it'\''s'`},
		{[]string{"printf", ""}, "printf ''"},
		{[]string{"echo", "\x1b[2J"}, `echo "\x1b[2J"`},
	}
	for _, tt := range tests {
		if got := commandLine(tt.argv); got != tt.want {
			t.Errorf("commandLine(%q) = %s, want %s", tt.argv, got, tt.want)
		}
	}
}

func TestBytesText(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{5 << 20, "5.0 MiB"},
		{3 << 30, "3.0 GiB"},
		{1 << 62, "4.0 EiB"},
	}
	for _, tt := range tests {
		if got := bytesText(tt.n); got != tt.want {
			t.Errorf("bytesText(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
