package blast

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the report as one indented JSON document, as
// docs/blast-radius.schema.json describes it.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report as a plain terminal page: the scores side by
// side, what stays in reach inside the sandbox, then every asset by part.
// It uses no colour and no escape sequences.
func WriteText(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "Blast radius: what a process started by %s could do on %s\n", orUnknown(r.Host.User), orUnknown(r.Host.Name))
	fmt.Fprintf(ew, "Workspace %s; policy: %s\n\n", r.Policy.Workspace, policyName(r.Policy))

	fmt.Fprintf(ew, "SCORE  (0 = nothing in reach, 100 = everything this host has)\n")
	fmt.Fprintf(ew, "  %-30s %6s %11s %12s\n", "", "weight", "no sandbox", "this policy")
	for _, p := range r.Parts {
		fmt.Fprintf(ew, "  %-30s %6g %11.1f %12.1f\n", p.Title, p.Weight, p.NoSandbox, p.Policy)
	}
	fmt.Fprintf(ew, "  %-30s %6d %11.0f %12.0f\n\n", "TOTAL", 100, r.Score.NoSandbox, r.Score.Policy)

	var inside []Asset
	for _, a := range r.Assets {
		if a.Policy.InReach() {
			inside = append(inside, a)
		}
	}
	fmt.Fprintf(ew, "STILL IN REACH INSIDE THE SANDBOX  (%d of %d)\n", len(inside), len(r.Assets))
	if len(inside) == 0 {
		fmt.Fprintf(ew, "  nothing\n")
	}
	for _, a := range inside {
		fmt.Fprintf(ew, "  %3d  %s%s: %s (%s)\n", a.ID, a.Name, pathSuffix(a.Path), a.Policy.State, a.Policy.Detail)
	}
	fmt.Fprintln(ew)

	for _, p := range r.Parts {
		fmt.Fprintf(ew, "%s  (%g points)\n%s\n", strings.ToUpper(p.Title), p.Weight, wrap(p.Explain, 78, "  ", "  "))
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  #\twhat\twhere\tno sandbox\tthis policy\n")
		n := 0
		for _, a := range r.Assets {
			if a.Part != p.Name {
				continue
			}
			n++
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\n", a.ID, clipEnd(a.Name, 48), clip(a.Path, 44), a.NoSandbox.State, a.Policy.State)
		}
		if n == 0 {
			fmt.Fprintf(tw, "  -\tnone on this host\t\t\t\n")
		}
		tw.Flush()
		fmt.Fprintln(ew)
	}
	fmt.Fprintf(ew, "HOW THE SCORE IS COMPUTED\n%s\n", wrap(r.Score.Method, 78, "  ", "  "))
	if len(r.Notes) > 0 {
		fmt.Fprintf(ew, "\nNOTES\n")
		for _, n := range r.Notes {
			fmt.Fprintf(ew, "%s\n", wrap(n, 78, "  - ", "    "))
		}
	}
	return ew.err
}

func policyName(p PolicyInfo) string {
	if p.Profile == "" {
		return "the built-in defaults"
	}
	return "profile " + p.Profile
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

func pathSuffix(p string) string {
	if p == "" {
		return ""
	}
	return " " + p
}

// clip shortens s to n characters, keeping its end (a path's file name).
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "..." + string(r[len(r)-n+3:])
}

// clipEnd shortens s to n characters, keeping its start.
func clipEnd(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}

// wrap breaks s into lines of at most width characters, the first
// starting with first and the others with rest.
func wrap(s string, width int, first, rest string) string {
	var b strings.Builder
	indent := first
	line := indent
	for _, word := range strings.Fields(s) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			indent = rest
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	b.WriteString(line)
	return b.String()
}

// errWriter keeps the first write error, so the page is written without
// checking each line.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
