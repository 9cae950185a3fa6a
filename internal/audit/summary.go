package audit

import (
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// Summary is what a log says, in totals. Its JSON field names are stable;
// a value that the log does not give is null.
type Summary struct {
	Runs        []Run `json:"runs"`        // one for each start event, in order
	Events      int   `json:"events"`      // events read, of every kind
	Connections int   `json:"connections"` // connection events
	Allowed     int   `json:"allowed"`
	Denied      int   `json:"denied"`
	// Requests counts the requests of inspected tunnels, and
	// RequestsDenied those refused; refused ones are in Denials too.
	Requests       int   `json:"requests"`
	RequestsDenied int   `json:"requests_denied"`
	Errors         int   `json:"errors"`     // connections that ended with an error
	BytesUp        int64 `json:"bytes_up"`   // sandbox → destinations, all connections
	BytesDown      int64 `json:"bytes_down"` // destinations → sandbox
	// Destinations holds every host:port, the most connections first, then
	// the most bytes.
	Destinations []Destination `json:"destinations"`
	// Denials groups the denied connections and inspected requests by
	// host:port, rule and reason, the most attempts first.
	Denials []Denial `json:"denials"`
	// Other counts the events of other kinds ("canary", "secret", ...).
	Other map[string]int `json:"other"`
	// Truncated is set when the log ends in a partial line.
	Truncated bool `json:"truncated"`
}

// Run is one run of cordon: a start event, and the end event after it.
type Run struct {
	Start        *time.Time `json:"start"`
	End          *time.Time `json:"end"` // null: still running, or cordon was killed
	DurationMS   *float64   `json:"duration_ms"`
	ExitCode     *int       `json:"exit_code"`
	Command      []string   `json:"command"`
	Workspace    string     `json:"workspace"`
	PolicyDigest string     `json:"policy_digest"`
	Version      string     `json:"version"`
	Connections  int        `json:"connections"` // connection events between start and end
	Denied       int        `json:"denied"`
}

// Destination is what went to one host:port.
type Destination struct {
	Host      string `json:"host"`
	Port      int    `json:"port"`
	Count     int    `json:"count"` // connections, allowed and denied
	Denied    int    `json:"denied"`
	BytesUp   int64  `json:"bytes_up"`
	BytesDown int64  `json:"bytes_down"`
}

// Denial is the denied connections to one host:port by one rule.
type Denial struct {
	Host   string    `json:"host"`
	Port   int       `json:"port"`
	Rule   string    `json:"rule"`
	Reason string    `json:"reason"`
	Count  int       `json:"count"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
}

// HostPort is "host:port", with brackets for an IPv6 address; "host" when
// the port is unknown.
func HostPort(host string, port int) string {
	if port == 0 {
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

type destKey struct {
	host string
	port int
}

type denialKey struct {
	destKey
	rule, reason string
}

// addDenial counts denied event e in its group.
func addDenial(denials map[denialKey]*Denial, e Event) {
	dk := denialKey{destKey{e.Host, e.Port}, e.Rule, e.Reason}
	dn := denials[dk]
	if dn == nil {
		dn = &Denial{Host: e.Host, Port: e.Port, Rule: e.Rule, Reason: e.Reason, First: e.Time}
		denials[dk] = dn
	}
	dn.Count++
	if e.Time.Before(dn.First) {
		dn.First = e.Time
	}
	if e.Time.After(dn.Last) {
		dn.Last = e.Time
	}
}

// Summarize totals events, as Read returns them.
func Summarize(events []Event) Summary {
	s := Summary{Runs: []Run{}, Destinations: []Destination{}, Denials: []Denial{}, Other: map[string]int{}}
	dests := map[destKey]*Destination{}
	denials := map[denialKey]*Denial{}
	var run *Run // the open run: started, not ended
	for _, e := range events {
		if e.Event == KindTruncated {
			s.Truncated = true
			continue
		}
		s.Events++
		switch e.Event {
		case KindStart:
			t := e.Time
			s.Runs = append(s.Runs, Run{
				Start: &t, Command: e.Command, Workspace: e.Workspace,
				PolicyDigest: e.PolicyDigest, Version: e.Version,
			})
			run = &s.Runs[len(s.Runs)-1]
		case KindEnd:
			if run == nil { // an end without its start: keep what it says
				s.Runs = append(s.Runs, Run{})
				run = &s.Runs[len(s.Runs)-1]
			}
			t := e.Time
			run.End = &t
			run.ExitCode = e.ExitCode
			if run.Start != nil {
				ms := float64(t.Sub(*run.Start)) / float64(time.Millisecond)
				run.DurationMS = &ms
			}
			run = nil
		case KindRequest:
			s.Requests++
			if e.Decision == Deny {
				s.RequestsDenied++
				addDenial(denials, e)
			}
		case KindConnection:
			s.Connections++
			denied := e.Decision == Deny
			if denied {
				s.Denied++
			} else if e.Decision == Allow {
				s.Allowed++
			}
			if e.Error != "" {
				s.Errors++
			}
			s.BytesUp += e.BytesUp
			s.BytesDown += e.BytesDown
			if run != nil {
				run.Connections++
				if denied {
					run.Denied++
				}
			}
			k := destKey{e.Host, e.Port}
			d := dests[k]
			if d == nil {
				d = &Destination{Host: e.Host, Port: e.Port}
				dests[k] = d
			}
			d.Count++
			d.BytesUp += e.BytesUp
			d.BytesDown += e.BytesDown
			if !denied {
				continue
			}
			d.Denied++
			addDenial(denials, e)
		default:
			s.Other[e.Event]++
		}
	}
	for _, d := range dests {
		s.Destinations = append(s.Destinations, *d)
	}
	sort.Slice(s.Destinations, func(i, j int) bool {
		a, b := s.Destinations[i], s.Destinations[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if ab, bb := a.BytesUp+a.BytesDown, b.BytesUp+b.BytesDown; ab != bb {
			return ab > bb
		}
		return destLess(a.Host, a.Port, b.Host, b.Port)
	})
	for _, d := range denials {
		s.Denials = append(s.Denials, *d)
	}
	sort.Slice(s.Denials, func(i, j int) bool {
		a, b := s.Denials[i], s.Denials[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Host != b.Host || a.Port != b.Port {
			return destLess(a.Host, a.Port, b.Host, b.Port)
		}
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		return a.Reason < b.Reason
	})
	return s
}

func destLess(ah string, ap int, bh string, bp int) bool {
	if ah != bh {
		return ah < bh
	}
	return ap < bp
}

// What WriteText shows at most.
const (
	topDestinations = 10
	maxDenials      = 50
)

// WriteText writes the summary for a person: the runs, the totals, the
// busiest ten destinations and the denials (fifty at most). Text that came
// from the sandbox (host names, reasons, errors) is printed quoted, with
// escapes, when it holds anything but printable characters, so a log cannot
// drive the terminal that shows it.
func (s Summary) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	for i, r := range s.Runs {
		if i > 0 {
			p("\n")
		}
		p("Run\t%s\n", runLine(r))
		if len(r.Command) > 0 {
			p("Command\t%s\n", commandLine(r.Command))
		}
		if r.Workspace != "" {
			p("Workspace\t%s\n", printable(r.Workspace))
		}
		if r.PolicyDigest != "" {
			p("Policy\t%s\n", printable(r.PolicyDigest))
		}
		if r.Version != "" {
			p("Cordon\t%s\n", printable(r.Version))
		}
	}
	if len(s.Runs) == 0 {
		p("Run\tno start event\n")
	}
	p("Connections\t%d: %d allowed, %d denied", s.Connections, s.Allowed, s.Denied)
	if s.Errors > 0 {
		p(", %d with errors", s.Errors)
	}
	p("; %s up, %s down\n", bytesText(s.BytesUp), bytesText(s.BytesDown))
	if s.Requests > 0 {
		p("Inspected requests\t%d: %d allowed, %d denied\n", s.Requests, s.Requests-s.RequestsDenied, s.RequestsDenied)
	}
	if len(s.Other) > 0 {
		kinds := make([]string, 0, len(s.Other))
		for k := range s.Other {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for i, k := range kinds {
			kinds[i] = fmt.Sprintf("%s %d", printable(k), s.Other[k])
		}
		p("Other events\t%s (cordon audit --events shows them)\n", strings.Join(kinds, ", "))
	}
	if s.Truncated {
		p("Truncated\tthe log ends in a partial line: cordon was killed, or is still writing\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(s.Destinations) > 0 {
		n := min(len(s.Destinations), topDestinations)
		if n < len(s.Destinations) {
			p("\nTop destinations (%d of %d)\n", n, len(s.Destinations))
		} else {
			p("\nDestinations\n")
		}
		p("  COUNT\tDENIED\tUP\tDOWN\tDESTINATION\n")
		for _, d := range s.Destinations[:n] {
			p("  %d\t%d\t%s\t%s\t%s\n", d.Count, d.Denied, bytesText(d.BytesUp), bytesText(d.BytesDown), printable(HostPort(d.Host, d.Port)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if len(s.Denials) > 0 {
		if s.RequestsDenied > 0 {
			p("\nDenied connections and requests (%d)\n", s.Denied+s.RequestsDenied)
		} else {
			p("\nDenied connections (%d)\n", s.Denied)
		}
		p("  COUNT\tDESTINATION\tRULE\tREASON\n")
		n := min(len(s.Denials), maxDenials)
		for _, d := range s.Denials[:n] {
			p("  %d\t%s\t%s\t%s\n", d.Count, printable(HostPort(d.Host, d.Port)), orDash(d.Rule), orDash(d.Reason))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if more := len(s.Denials) - n; more > 0 {
			p("  ... and %d more\n", more)
		}
	}
	return tw.Flush()
}

func runLine(r Run) string {
	var b strings.Builder
	if r.Start != nil {
		b.WriteString(r.Start.UTC().Format("2006-01-02 15:04:05 UTC"))
	} else {
		b.WriteString("no start event")
	}
	switch {
	case r.End == nil:
		b.WriteString(", no end event (still running, or cordon was killed)")
	case r.DurationMS != nil:
		d := time.Duration(*r.DurationMS * float64(time.Millisecond))
		fmt.Fprintf(&b, ", %s", d.Round(time.Millisecond))
	}
	if r.ExitCode != nil {
		fmt.Fprintf(&b, ", exit status %d", *r.ExitCode)
	}
	return b.String()
}

// commandLine joins argv so that a person can read where each argument
// ends: plain words as they are, others in single quotes, and those with
// unprintable characters Go-quoted.
func commandLine(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		switch {
		case !isPrintable(a):
			out[i] = strconv.Quote(a)
		case a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == "":
			out[i] = a
		default:
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return printable(s)
}

// printable returns s as it is if every character of it is printable, and
// Go-quoted otherwise: escape sequences, tabs, newlines and bidirectional
// overrides reach the terminal as text.
func printable(s string) string {
	if isPrintable(s) {
		return s
	}
	return strconv.Quote(s)
}

func isPrintable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// bytesText is n in B, KiB, MiB, GiB, ...
func bytesText(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	const units = "KMGTPE"
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}
