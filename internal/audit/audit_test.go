package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func intp(n int) *int { return &n }

func TestOpen(t *testing.T) {
	tests := []struct {
		name    string
		path    string // under a temporary directory
		newDirs []string
	}{
		{"existing directory", "run.jsonl", nil},
		{"missing parents", "state/cordon/audit/run.jsonl", []string{"state", "state/cordon", "state/cordon/audit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			path := filepath.Join(tmp, tt.path)
			l, err := Open(path)
			if err != nil {
				t.Fatalf("Open(%q) = %v", path, err)
			}
			defer l.Close()
			if l.Path() != path {
				t.Errorf("Path() = %q, want %q", l.Path(), path)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if m := st.Mode().Perm(); m != 0o600 {
				t.Errorf("mode of %s = %#o, want 0600", path, m)
			}
			for _, d := range tt.newDirs {
				st, err := os.Stat(filepath.Join(tmp, d))
				if err != nil {
					t.Fatal(err)
				}
				if m := st.Mode().Perm(); m != 0o700 {
					t.Errorf("mode of %s = %#o, want 0700", d, m)
				}
			}
		})
	}
}

func TestOpenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.jsonl")
	for i := range 2 {
		l, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Write(Event{Event: KindStart, Version: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	events := readFile(t, path)
	if len(events) != 2 || events[0].Version != "0" || events[1].Version != "1" {
		t.Errorf("after two Opens: %+v, want versions 0 then 1", events)
	}
}

func TestWriteRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 28, 19, 14, 5, 123456789, time.UTC)
	tests := []struct {
		name string
		in   Event
	}{
		{"start", Event{Time: at, Event: KindStart, PolicyDigest: "sha256:00ff", Command: []string{"sh", "-c", "echo 'hi'"}, Workspace: "/w", Version: "dev"}},
		{"allowed connection", Event{Time: at, Event: KindConnection, Proto: "connect", Host: "example.com", Port: 443, Addr: "93.184.216.34:443",
			Decision: Allow, Rule: "allow example.com", BytesUp: 1200, BytesDown: 56000, DurationMS: 12.5}},
		{"denied connection", Event{Time: at, Event: KindConnection, Proto: "socks5", Host: "::1", Port: 22, Decision: Deny, Reason: "loopback"}},
		{"failed connection", Event{Time: at, Event: KindConnection, Proto: "http", Host: "x.test", Port: 80, Decision: Allow, Error: "connection refused"}},
		{"end with status 0", Event{Time: at, Event: KindEnd, ExitCode: intp(0)}},
		{"later kind", Event{Time: at, Event: "canary", Detail: map[string]string{"token": "AKIA...", "file": "/home/u/.aws/credentials"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run.jsonl")
			l, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Write(tt.in); err != nil {
				t.Fatalf("Write(%+v) = %v", tt.in, err)
			}
			l.Close()
			got := readFile(t, path)
			if len(got) != 1 || !reflect.DeepEqual(got[0], tt.in) {
				t.Errorf("Write(%+v), Read = %+v", tt.in, got)
			}
		})
	}
}

func TestWriteTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	local := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	l.Write(Event{Event: KindStart})
	l.Write(Event{Event: KindEnd, Time: local})
	l.Close()
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), `"time":"2026-01-02T02:04:05.000000006Z"`) {
		t.Errorf("a time in +01:00 was not written in UTC with nanoseconds:\n%s", raw)
	}
	got := readFile(t, path)
	if got[0].Time.Before(before.Add(-time.Second)) || got[0].Time.After(time.Now()) {
		t.Errorf("a zero Time was written as %v, want about %v", got[0].Time, before)
	}
}

func TestWriteErrors(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "run.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Write(Event{}); err == nil {
		t.Error("Write(Event{}) = nil, want an error: an event needs a kind")
	}
	l.Close()
	if err := l.Write(Event{Event: KindEnd}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close = %v, want os.ErrClosed", err)
	}
}

func TestNilLog(t *testing.T) {
	var l *Log
	if err := l.Write(Event{Event: KindStart}); err != nil {
		t.Errorf("nil Log: Write = %v, want nil", err)
	}
	if p := l.Path(); p != "" {
		t.Errorf("nil Log: Path = %q, want \"\"", p)
	}
	if err := l.Close(); err != nil {
		t.Errorf("nil Log: Close = %v, want nil", err)
	}
}

// TestConcurrentWriters writes from many goroutines through two Logs on one
// file, as two processes would: every line must come out whole.
func TestConcurrentWriters(t *testing.T) {
	const writers, each = 50, 200
	path := filepath.Join(t.TempDir(), "run.jsonl")
	var logs [2]*Log
	for i := range logs {
		l, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		logs[i] = l
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := logs[w%2]
			for i := range each {
				// Long enough lines that a torn write would show.
				e := Event{Event: KindConnection, Host: fmt.Sprintf("w%d.example", w), Port: i + 1,
					Reason: strings.Repeat("x", 100+i), Detail: map[string]string{"i": fmt.Sprint(i)}}
				if err := l.Write(e); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	events := readFile(t, path)
	if len(events) != writers*each {
		t.Fatalf("Read: %d events, want %d", len(events), writers*each)
	}
	perWriter := map[string]int{}
	for _, e := range events {
		perWriter[e.Host]++
		if e.Event == KindTruncated {
			t.Fatalf("Read found a partial line: %+v", e)
		}
	}
	for w := range writers {
		h := fmt.Sprintf("w%d.example", w)
		if perWriter[h] != each {
			t.Errorf("writer %s: %d events, want %d", h, perWriter[h], each)
		}
	}
}

func TestDefaultPath(t *testing.T) {
	now := time.Date(2026, 11, 28, 19, 14, 5, 999, time.FixedZone("CET", 3600))
	tests := []struct {
		name      string
		xdg, home string
		want      string
	}{
		{"XDG_STATE_HOME", "/state", "/home/u", "/state/cordon/audit/20261128T181405Z-4242.jsonl"},
		{"HOME", "", "/home/u", "/home/u/.local/state/cordon/audit/20261128T181405Z-4242.jsonl"},
		{"relative XDG_STATE_HOME ignored", "state", "/home/u", "/home/u/.local/state/cordon/audit/20261128T181405Z-4242.jsonl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_STATE_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			got, err := DefaultPath(now, 4242)
			if err != nil || got != tt.want {
				t.Errorf("DefaultPath(%v, 4242) = %q, %v; want %q", now, got, err, tt.want)
			}
			if !logName.MatchString(filepath.Base(got)) {
				t.Errorf("DefaultPath made %q, which Logs and Prune do not take for a log", got)
			}
		})
	}
}

func TestPrune(t *testing.T) {
	logs := []string{
		"20261128T191405Z-10.jsonl",
		"20251231T235959Z-99999.jsonl",
		"20261128T191406Z-7.jsonl",
		"20260101T000000Z-1.jsonl",
	}
	oldestFirst := []string{logs[1], logs[3], logs[0], logs[2]}
	// Not logs of Cordon's naming: never counted, never removed.
	others := []string{"notes.jsonl", "zzz.jsonl", "20261128T191405Z-10.jsonl.bak"}
	tests := []struct {
		keep int
		want []string
	}{
		{keep: 10, want: oldestFirst},
		{keep: 4, want: oldestFirst},
		{keep: 2, want: oldestFirst[2:]},
		{keep: 1, want: oldestFirst[3:]},
		{keep: 0, want: nil},
		{keep: -1, want: nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("keep ", tt.keep), func(t *testing.T) {
			dir := t.TempDir()
			for _, n := range append(append([]string{}, logs...), others...) {
				if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Mkdir(filepath.Join(dir, "20270101T000000Z-1.jsonl"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := Prune(dir, tt.keep); err != nil {
				t.Fatalf("Prune(%d) = %v", tt.keep, err)
			}
			got, err := Logs(dir)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, n := range tt.want {
				want = append(want, filepath.Join(dir, n))
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Prune(%d), then Logs = %q, want %q", tt.keep, got, want)
			}
			for _, n := range others {
				if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
					t.Errorf("Prune(%d) removed %s, not one of its logs: %v", tt.keep, n, err)
				}
			}
		})
	}
}

func TestPruneMissingDir(t *testing.T) {
	if err := Prune(filepath.Join(t.TempDir(), "none"), 5); err != nil {
		t.Errorf("Prune(missing dir) = %v, want nil", err)
	}
}

func TestRead(t *testing.T) {
	const (
		start = `{"time":"2026-11-28T19:14:05Z","event":"start","command":["sh"]}`
		conn  = `{"time":"2026-11-28T19:14:06Z","event":"connection","host":"example.com","port":443,"decision":"allow"}`
		end   = `{"time":"2026-11-28T19:14:07Z","event":"end","exit_code":0}`
	)
	tests := []struct {
		name     string
		in       string
		kinds    []string // of the events read
		errLine  int      // 0: no error
		errMatch string
	}{
		{"empty", "", nil, 0, ""},
		{"whole log", start + "\n" + conn + "\n" + end + "\n", []string{"start", "connection", "end"}, 0, ""},
		{"blank lines skipped", start + "\n\n  \n" + end + "\n", []string{"start", "end"}, 0, ""},
		{"unknown kind and field kept", `{"event":"secret","detail":{"k":"v"},"new_field":1}` + "\n", []string{"secret"}, 0, ""},
		{"last line whole without newline", start + "\n" + end, []string{"start", "end"}, 0, ""},
		{"truncated last line", start + "\n" + conn + "\n" + end[:20], []string{"start", "connection", KindTruncated}, 0, ""},
		{"truncated to one byte", start + "\n{", []string{"start", KindTruncated}, 0, ""},
		{"NUL tail after a crash", start + "\n\x00\x00\x00\x00", []string{"start", KindTruncated}, 0, ""},
		{"malformed middle line", start + "\n" + conn[:30] + "\n" + end + "\n", nil, 2, "not an event"},
		{"malformed last line with newline", start + "\n" + "garbage\n", nil, 2, "invalid character"},
		{"line without event", start + "\n" + `{"time":"2026-11-28T19:14:05Z"}` + "\n" + end + "\n", nil, 2, `no "event" field`},
		{"null", "null\n", nil, 1, `no "event" field`},
		{"array", "[]\n", nil, 1, "cannot unmarshal"},
		{"two objects on a line", start + end + "\n", nil, 1, "after top-level value"},
		{"bad time", `{"time":"yesterday","event":"start"}` + "\n", nil, 1, "not an event"},
		{"line count includes blank lines", "\n\n" + "{\n" + end + "\n", nil, 3, "not an event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, err := Read(strings.NewReader(tt.in))
			if tt.errLine != 0 {
				var le *LineError
				if !errors.As(err, &le) || le.Line != tt.errLine || !strings.Contains(err.Error(), tt.errMatch) ||
					!strings.HasPrefix(err.Error(), fmt.Sprintf("line %d: ", tt.errLine)) {
					t.Errorf("Read(%q) = %v, want an error at line %d containing %q", tt.in, err, tt.errLine, tt.errMatch)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read(%q) = %v", tt.in, err)
			}
			var kinds []string
			for _, e := range events {
				kinds = append(kinds, e.Event)
			}
			if !reflect.DeepEqual(kinds, tt.kinds) {
				t.Errorf("Read(%q) kinds = %q, want %q", tt.in, kinds, tt.kinds)
			}
		})
	}
}

func TestReadTruncatedLine(t *testing.T) {
	events, err := Read(strings.NewReader("\n" + `{"event":"start"}` + "\n" + `{"event":"conn`))
	if err != nil {
		t.Fatal(err)
	}
	last := events[len(events)-1]
	if last.Event != KindTruncated || last.Detail["line"] != "3" {
		t.Errorf("last event = %+v, want kind %q at line 3", last, KindTruncated)
	}
}

func readFile(t *testing.T, path string) []Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events, err := Read(f)
	if err != nil {
		t.Fatalf("Read(%s) = %v", path, err)
	}
	return events
}
