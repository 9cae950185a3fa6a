package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cordon-sandbox/cordon/internal/blast"
)

type blastFlags struct {
	profile   string
	workspace string
	format    string
	output    string
}

func newBlastRadiusCmd() *cobra.Command {
	var f blastFlags
	cmd := &cobra.Command{
		Use:   "blast-radius [--profile P] [--workspace DIR] [--format text|json|html] [-o FILE]",
		Short: "Show what a process could do on this host, with no sandbox and inside one",
		Long: `Look at this host as a contained process would, and say, side by side, what
it could do with no sandbox and inside "cordon run" with the effective policy:
which credentials it could read (the real stores of your home directory and
/etc, secret-looking environment variables, key and .env files in the
workspace), which files that something else runs later it could change
(shell start-up files, git hooks and config, editor and agent settings,
autostart units, $PATH directories), where it could send data, which host
sockets and processes it could reach, which privileges it could use, and
which resource ceilings hold it.

Two scores sum it up, from 0 (nothing in reach) to 100 (everything this
host has), with their parts shown; the JSON form gives each asset's weight
and reach (schema: docs/blast-radius.schema.json). Nothing is written to
the host and no secret value is printed: stores are counted, not shown.

The html format is one self-contained page (no script, nothing fetched)
with a picture: rings from the program outward, one dot per asset.`,
		Example: `  cordon blast-radius
  cordon blast-radius --format html -o blast.html
  cordon blast-radius --workspace ~/src/app --format json | jq .score`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBlastRadius(cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.profile, "profile", "", "compute for the profile `P` instead of the defaults")
	fl.StringVarP(&f.workspace, "workspace", "w", "", "the workspace a run would write (default: the current directory)")
	fl.StringVar(&f.format, "format", "text", "text, json or html")
	fl.StringVarP(&f.output, "output", "o", "", "write to `FILE` instead of standard output")
	return cmd
}

func runBlastRadius(stdout io.Writer, f blastFlags) error {
	var write func(io.Writer, *blast.Report) error
	switch f.format {
	case "text":
		write = blast.WriteText
	case "json":
		write = blast.WriteJSON
	case "html":
		write = blast.WriteHTML
	default:
		return fmt.Errorf("--format %q: text, json or html", f.format)
	}
	ws, err := workspaceDir(f.workspace)
	if err != nil {
		return err
	}
	eff, ignored, err := effectivePolicy(ws, f.profile)
	if err != nil {
		return err
	}
	for _, line := range ignored {
		fmt.Fprintln(os.Stderr, "cordon: "+line)
	}
	p := eff.Policy
	home, _ := os.UserHomeDir()
	if !filepath.IsAbs(home) {
		home = ""
	}
	r, err := blast.Compute(blast.Options{
		Policy:  p,
		Profile: f.profile,
		Home:    home,
		Env:     os.Environ(),
		Decoys:  eff.Decoys,
		Host:    blast.ProbeHost(),
	})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := write(&buf, r); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if f.output == "" {
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	// 0600: the report names where this host keeps its credentials.
	if err := os.WriteFile(f.output, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}
