package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/cordon-sandbox/cordon/internal/audit"
)

type auditFlags struct {
	json   bool
	events bool
	denied bool
}

func newAuditCmd() *cobra.Command {
	var f auditFlags
	cmd := &cobra.Command{
		Use:   "audit [flags] [FILE]",
		Short: "Summarise a run's audit log: what it connected to, and what was denied",
		Long: `Summarise an audit log: the run (command, workspace, policy digest, exit
status, duration), how many connections the egress gateway allowed and
denied, the bytes each way, the ten busiest destinations, and every denial
with the rule that decided it and how often.

Each run writes its own log in $XDG_STATE_HOME/cordon/audit, or
~/.local/state/cordon/audit when XDG_STATE_HOME is not set, named by its
start time in UTC and cordon's pid: 20261128T191405Z-4242.jsonl. A log is
JSON Lines, one event a line: "start" (command, workspace, policy_digest,
version), one "connection" for each connection the sandbox asked for (proto,
host, port, addr dialled, decision, rule, reason, bytes_up, bytes_down,
duration_ms, error), one "request" for each HTTP request inside an
inspected tunnel (--inspect; decision, reason, and in "detail" its method,
path and status), "canary" and "secret" for what was blocked for carrying a
watched token ("detail": kind, where, encoding), and "end" (exit_code).
Times are RFC 3339, UTC.

With no FILE, the newest log there is read, and its path is printed on
stderr. FILE "-" reads standard input. A log that ends in a partial line
(cordon was killed, or is still running) is read up to it, and says so.

--json prints the summary as JSON, with these fields: runs (start, end,
duration_ms, exit_code, command, workspace, policy_digest, version,
connections, denied), events, connections, allowed, denied, requests,
requests_denied, errors, bytes_up, bytes_down, destinations (host, port, count, denied, bytes_up,
bytes_down: all of them, the most connections first), denials (host, port,
rule, reason, count, first, last: the most attempts first), other (events of
other kinds, counted by kind) and truncated. What the log does not say is
null.

--events prints the events themselves, one JSON object a line, as Cordon
reads them; --denied prints only the denied connections and requests.`,
		Example: `  cordon audit                      # the last run
  cordon audit --denied             # what the last run was refused, event by event
  cordon audit --json ~/.local/state/cordon/audit/20261128T191405Z-4242.jsonl
  cordon audit --events | jq 'select(.host == "github.com")'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAudit(cmd, f, args)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.json, "json", false, "print the summary as JSON")
	fl.BoolVar(&f.events, "events", false, "print the events, one JSON object a line")
	fl.BoolVar(&f.denied, "denied", false, "print the events of denied connections and inspected requests only (implies --events)")
	cmd.MarkFlagsMutuallyExclusive("json", "events")
	cmd.MarkFlagsMutuallyExclusive("json", "denied")
	return cmd
}

func runAudit(cmd *cobra.Command, f auditFlags, args []string) error {
	var (
		r    io.Reader
		name string
	)
	switch {
	case len(args) == 1 && args[0] == "-":
		r, name = cmd.InOrStdin(), "stdin"
	case len(args) == 1:
		name = args[0]
	default:
		dir, err := audit.DefaultDir()
		if err != nil {
			return err
		}
		logs, err := audit.Logs(dir)
		if err != nil {
			return err
		}
		if len(logs) == 0 {
			return fmt.Errorf("no audit log in %s: name a FILE, or run `cordon run` first", dir)
		}
		name = logs[len(logs)-1]
		fmt.Fprintf(cmd.ErrOrStderr(), "cordon: reading %s\n", name)
	}
	if r == nil {
		file, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("reading audit log: %w", err)
		}
		defer file.Close()
		r = file
	}
	events, err := audit.Read(r)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}

	out := cmd.OutOrStdout()
	if f.events || f.denied {
		return writeEvents(out, cmd.ErrOrStderr(), name, events, f.denied)
	}
	s := audit.Summarize(events)
	if f.json {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(s); err != nil {
			return fmt.Errorf("encoding the summary: %w", err)
		}
		_, err := out.Write(terminalSafe(buf.Bytes()))
		return err
	}
	return s.WriteText(out)
}

// writeEvents prints events as JSON Lines, the denied connections only if
// denied is set.
func writeEvents(out, stderr io.Writer, name string, events []audit.Event, denied bool) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, e := range events {
		if e.Event == audit.KindTruncated {
			fmt.Fprintf(stderr, "cordon: %s ends in a partial line at line %s: cordon was killed, or is still writing\n", name, e.Detail["line"])
			continue
		}
		if denied && (e.Event != audit.KindConnection && e.Event != audit.KindRequest || e.Decision != audit.Deny) {
			continue
		}
		if err := enc.Encode(e); err != nil {
			return fmt.Errorf("encoding event: %w", err)
		}
	}
	_, err := out.Write(terminalSafe(buf.Bytes()))
	return err
}

// terminalSafe escapes, in JSON text, what encoding/json leaves as it is but
// a terminal would act on: DEL, the C1 controls (U+009B is CSI to some
// terminals) and other unprintable characters such as bidirectional
// overrides. Host names and reasons come from inside the sandbox. Outside
// ASCII, such characters occur only within strings, where \uXXXX means the
// same.
func terminalSafe(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r != 0x7f && (r < 0x80 || unicode.IsPrint(r)) {
			if out != nil {
				out = append(out, b[i:i+n]...)
			}
			i += n
			continue
		}
		if out == nil {
			out = append(make([]byte, 0, len(b)+16), b[:i]...)
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != unicode.ReplacementChar {
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		} else {
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		i += n
	}
	if out == nil {
		return b
	}
	return out
}
