package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/cordon-sandbox/cordon/internal/policyfile"
	"github.com/cordon-sandbox/cordon/internal/trust"
)

type trustFlags struct {
	list   bool
	revoke bool
}

func newTrustCmd() *cobra.Command {
	var f trustFlags
	cmd := &cobra.Command{
		Use:   "trust [--list | --revoke] [DIR]",
		Short: "Let `cordon run` in DIR use the workspace policy DIR/.cordon.toml",
		Long: `Trust the workspace policy DIR/.cordon.toml (DIR is the current directory by
default), so that "cordon run" in DIR uses it.

A workspace policy can open the network, make paths writable and inject
secrets into requests. A repository you clone must not configure its own
walls, so "cordon run" ignores a .cordon.toml, with one line on stderr
saying so, until you have read it and trusted it here. Until then the file is
not even parsed.

cordon trust checks the file, prints what it would change, and records its
path (the symbolic links of DIR resolved) and the SHA-256 of its bytes in
$XDG_STATE_HOME/cordon/trust.json, or ~/.local/state/cordon/trust.json, which
no sandbox can see. Trust is for this exact file in this place: if one byte
changes, or the workspace is copied or moved, the file is ignored again
until you trust it again. A .cordon.toml that is a symbolic link is never
trusted. Inside a sandbox .cordon.toml is read-only and cannot be created,
so a contained agent cannot write the policy of the next run.

--list prints the trusted files and whether each is still as trusted (ok),
has changed, or is missing. --revoke forgets DIR/.cordon.toml; a workspace
that no longer exists is revoked by the path it had.`,
		Example: `  cordon trust                 # the .cordon.toml of the current directory
  cordon trust ~/src/app
  cordon trust --list
  cordon trust --revoke ~/src/app`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTrust(cmd, f, args)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.list, "list", false, "print the trusted workspace policies")
	fl.BoolVar(&f.revoke, "revoke", false, "forget DIR/.cordon.toml: cordon run ignores it again")
	cmd.MarkFlagsMutuallyExclusive("list", "revoke")
	return cmd
}

func runTrust(cmd *cobra.Command, f trustFlags, args []string) error {
	if f.list && len(args) > 0 {
		return fmt.Errorf("--list takes no DIR (see cordon trust --help)")
	}
	storePath, err := trust.DefaultPath()
	if err != nil {
		return err
	}
	store, err := trust.Open(storePath)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.list {
		return listTrusted(out, store)
	}
	dir := "."
	if len(args) == 1 {
		dir = args[0]
	}
	file := filepath.Join(dir, trust.FileName)
	if f.revoke {
		ok, err := store.Revoke(file)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s is not trusted: nothing to revoke (see cordon trust --list)", printable(file))
		}
		fmt.Fprintf(out, "revoked %s: cordon run ignores it again\n", printable(file))
		return nil
	}

	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("%s is not a directory: name the workspace that holds %s", printable(dir), trust.FileName)
	}
	path, data, err := trust.Read(file)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no %s in %s: nothing to trust", trust.FileName, printable(dir))
	}
	if err != nil {
		return err
	}
	summary, err := validateWorkspacePolicy(path, data)
	if err != nil {
		return fmt.Errorf("%w\n%s is not trusted: fix it and run cordon trust again", err, printable(path))
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	fmt.Fprintf(out, "%s (sha256 %s) sets:\n%s", printable(path), want, summary)
	rec, err := store.Trust(path)
	if err != nil {
		return err
	}
	// Trust reads the file again: if it changed since it was checked and
	// shown, what was shown is not what would be trusted.
	if rec.SHA256 != want {
		if _, err := store.Revoke(path); err != nil {
			return err
		}
		return fmt.Errorf("%s changed while it was being trusted: not trusted; run cordon trust again", printable(path))
	}
	fmt.Fprintf(out, "trusted: cordon run in %s uses this policy until the file changes\n", printable(filepath.Dir(path)))
	return nil
}

// listTrusted prints each record with whether the file is still as
// trusted.
func listTrusted(out io.Writer, store *trust.Store) error {
	recs := store.List()
	if len(recs) == 0 {
		fmt.Fprintf(out, "no workspace policy is trusted (%s)\n", store.Path())
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATE\tTRUSTED\tSHA256\tPATH")
	for _, r := range recs {
		state := "ok"
		_, ok, why, err := store.Load(r.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			state = "missing"
		case err != nil:
			state = "unreadable"
		case !ok && strings.HasPrefix(why, "changed"):
			state = "changed"
		case !ok:
			state = "refused"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", state, r.Trusted.UTC().Format("2006-01-02 15:04 UTC"), r.SHA256[:12], printable(r.Path))
	}
	return tw.Flush()
}

// validateWorkspacePolicy checks a workspace policy before it is trusted
// (policyfile.Parse, strict: any error refuses it) and returns what it
// sets, one key a line, for the user to read before trusting it.
func validateWorkspacePolicy(name string, data []byte) (summary string, err error) {
	f, err := policyfile.Parse(name, data)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	summarise(&b, "", reflect.ValueOf(f.Body))
	if b.Len() == 0 {
		return "  (it sets nothing)\n", nil
	}
	return b.String(), nil
}

// summarise writes each value a policyfile.Body sets as "  key = value",
// the key spelled as in the file (Network.LoopbackPorts is
// network.loopback_ports). It walks the struct, so that a key the parser
// learns is shown without a change here.
func summarise(b *strings.Builder, prefix string, v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			key := snake(v.Type().Field(i).Name)
			if prefix != "" {
				key = prefix + "." + key
			}
			summarise(b, key, v.Field(i))
		}
		return
	case reflect.Pointer:
		if !v.IsNil() {
			fmt.Fprintf(b, "  %s = %s\n", prefix, showValue(v.Elem()))
		}
	case reflect.Slice:
		if v.Len() == 0 {
			return
		}
		items := make([]string, v.Len())
		for i := range items {
			items[i] = showValue(v.Index(i))
		}
		fmt.Fprintf(b, "  %s = [%s]\n", prefix, strings.Join(items, ", "))
	case reflect.String:
		if v.String() != "" {
			fmt.Fprintf(b, "  %s = %s\n", prefix, showValue(v))
		}
	default:
		if !v.IsZero() {
			fmt.Fprintf(b, "  %s = %s\n", prefix, showValue(v))
		}
	}
}

// showValue is one value, strings quoted (which also escapes what a
// terminal would act on).
func showValue(v reflect.Value) string {
	if v.Kind() == reflect.String {
		return strconv.Quote(v.String())
	}
	return fmt.Sprint(v.Interface())
}

// snake turns a Go field name into the policy file's key: LoopbackPorts is
// loopback_ports, CPUs is cpus.
func snake(name string) string {
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) && i > 0 {
			prev := rune(name[i-1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// printable quotes s if it holds what a terminal would act on (control
// characters, escape sequences, bidirectional overrides): a path or a line
// of a file shown to the user must not rewrite the screen.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) && r != '\t' {
			return strconv.Quote(s)
		}
	}
	return s
}
