package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cordon-sandbox/cordon/internal/audit"
)

// auditLog writes a small log of one run at path.
func auditLog(t *testing.T, path string, host string) {
	t.Helper()
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t0 := time.Date(2026, 11, 28, 19, 14, 5, 0, time.UTC)
	code := 0
	for _, e := range []audit.Event{
		{Time: t0, Event: audit.KindStart, Command: []string{"make", "test"}, Workspace: "/w", PolicyDigest: "sha256:abc"},
		{Time: t0.Add(time.Second), Event: audit.KindConnection, Proto: "connect", Host: host, Port: 443, Decision: audit.Allow, Rule: "allow " + host, BytesUp: 10, BytesDown: 2000},
		{Time: t0.Add(2 * time.Second), Event: audit.KindConnection, Proto: "socks5", Host: "exfil.test", Port: 8443, Decision: audit.Deny, Rule: "deny *", Reason: "not in the allow list"},
		{Time: t0.Add(3 * time.Second), Event: audit.KindEnd, ExitCode: &code},
	} {
		if err := l.Write(e); err != nil {
			t.Fatal(err)
		}
	}
}

// runAuditCmd runs `cordon audit ARGS` and returns stdout, stderr and the
// error main would print.
func runAuditCmd(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newAuditCmd()
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestAuditCmd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.jsonl")
	auditLog(t, path, "proxy.golang.org")
	logText, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	malformed := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(malformed, []byte(`{"event":"start"}`+"\n"+"oops\n"+`{"event":"end"}`+"\n"), 0o600)

	tests := []struct {
		name    string
		stdin   string
		args    []string
		want    []string // in stdout
		notWant []string
		errWant string // "" for success
	}{
		{name: "summary", args: []string{path}, want: []string{
			"make test\n", "exit status 0", "Connections  2: 1 allowed, 1 denied", "proxy.golang.org:443",
			"exfil.test:8443  deny *  not in the allow list",
		}},
		{name: "stdin", stdin: string(logText), args: []string{"-"}, want: []string{"exfil.test:8443"}},
		{name: "events", args: []string{"--events", path}, want: []string{`"event":"start"`, `"host":"proxy.golang.org"`, `"event":"end"`}},
		{name: "denied", args: []string{"--denied", path}, want: []string{`"host":"exfil.test"`}, notWant: []string{"proxy.golang.org", `"start"`}},
		{name: "missing file", args: []string{filepath.Join(dir, "none.jsonl")}, errWant: "reading audit log: open " + filepath.Join(dir, "none.jsonl")},
		{name: "malformed", args: []string{malformed}, errWant: malformed + ": line 2: not an event"},
		{name: "two files", args: []string{path, path}, errWant: "accepts at most 1 arg"},
		{name: "json and events", args: []string{"--json", "--events", path}, errWant: "none of the others can be"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runAuditCmd(t, tt.stdin, tt.args...)
			if tt.errWant != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errWant) {
					t.Errorf("cordon audit %q: error %v, want one containing %q", tt.args, err, tt.errWant)
				}
				return
			}
			if err != nil {
				t.Fatalf("cordon audit %q: %v", tt.args, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("cordon audit %q: no %q in\n%s", tt.args, w, out)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("cordon audit %q: %q in\n%s", tt.args, w, out)
				}
			}
		})
	}
}

func TestAuditCmdJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.jsonl")
	auditLog(t, path, "proxy.golang.org")
	out, _, err := runAuditCmd(t, "", "--json", path)
	if err != nil {
		t.Fatal(err)
	}
	var s audit.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, out)
	}
	if s.Connections != 2 || s.Denied != 1 || len(s.Runs) != 1 || *s.Runs[0].ExitCode != 0 ||
		len(s.Denials) != 1 || s.Denials[0].Host != "exfil.test" || s.Denials[0].Rule != "deny *" {
		t.Errorf("--json summary = %+v", s)
	}
	// The names are the interface: check a few spelled out.
	for _, field := range []string{`"runs"`, `"policy_digest"`, `"exit_code"`, `"bytes_down"`, `"destinations"`, `"denials"`, `"truncated"`} {
		if !strings.Contains(out, field) {
			t.Errorf("--json output has no field %s:\n%s", field, out)
		}
	}
}

func TestAuditCmdDefault(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	dir := filepath.Join(state, "cordon", "audit")

	_, _, err := runAuditCmd(t, "")
	if err == nil || !strings.Contains(err.Error(), "no audit log in "+dir) {
		t.Errorf("cordon audit with no log: error %v, want one naming %s", err, dir)
	}

	older := filepath.Join(dir, "20261128T191405Z-100.jsonl")
	newer := filepath.Join(dir, "20261128T201405Z-99.jsonl")
	auditLog(t, older, "older.test")
	auditLog(t, newer, "newer.test")
	os.WriteFile(filepath.Join(dir, "zzz.jsonl"), []byte("not a log of cordon's naming\n"), 0o600)
	out, stderr, err := runAuditCmd(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "newer.test") || strings.Contains(out, "older.test") {
		t.Errorf("cordon audit did not read the newest log, %s:\n%s", newer, out)
	}
	if stderr != "cordon: reading "+newer+"\n" {
		t.Errorf("cordon audit stderr = %q, want it to name %s", stderr, newer)
	}
}

func TestAuditCmdTerminalSafe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.jsonl")
	auditLog(t, path, "evil.test\u009b2J\u202e")
	for _, args := range [][]string{{path}, {"--json", path}, {"--events", path}} {
		out, _, err := runAuditCmd(t, "", args...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(out, "\u009b\u202e\x1b") {
			t.Errorf("cordon audit %q printed a control character raw:\n%q", args, out)
		}
	}
}

func TestTerminalSafe(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{`{"host":"example.com"}`, `{"host":"example.com"}`},
		{`{"host":"bücher.example"}`, `{"host":"bücher.example"}`},
		{"{\"h\":\"a\u009bb\"}", `{"h":"a\u009bb"}`},
		{"{\"h\":\"a\u202eb\x7f\"}", `{"h":"a\u202eb\u007f"}`},
		{"{\"h\":\"\U000E0001\"}", `{"h":"\udb40\udc01"}`}, // a tag character, outside the BMP
	}
	for _, tt := range tests {
		got := string(terminalSafe([]byte(tt.in)))
		if got != tt.want {
			t.Errorf("terminalSafe(%q) = %s, want %s", tt.in, got, tt.want)
		}
		var v any
		if err := json.Unmarshal([]byte(got), &v); err != nil {
			t.Errorf("terminalSafe(%q) = %s, not JSON: %v", tt.in, got, err)
		}
	}
}
