package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/cordon-sandbox/cordon/internal/audit"
	"github.com/cordon-sandbox/cordon/internal/policy"
	"github.com/cordon-sandbox/cordon/internal/policyfile"
	"github.com/cordon-sandbox/cordon/internal/trust"
)

// newPolicyCmd is `cordon policy`, with show and check.
func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Show the effective policy, or check policy files",
		Long: `A run's policy is stacked from layers, lowest first:

  built-in     the defaults: host read-only, credential stores masked,
               workspace writable, no network
  user         $XDG_CONFIG_HOME/cordon/policy.toml (else ~/.config/cordon/policy.toml)
  workspace    .cordon.toml at the workspace root, only once "cordon trust"
               recorded it (an untrusted one is never read)
  profile      the one named with --profile: built in, or [profile.NAME]
               of the user policy
  flags        the flags of "cordon run"

Lists merge; a scalar takes the highest layer's value; whatever denies wins
over whatever allows, from any layer: a host in network.deny stays denied, a
path in filesystem.mask stays masked, a variable in env.drop stays out.
The format of the files, every key with an example: docs/policy.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPolicyShowCmd(), newPolicyCheckCmd())
	return cmd
}

type policyShowFlags struct {
	profile   string
	workspace string
	json      bool
}

func newPolicyShowCmd() *cobra.Command {
	var f policyShowFlags
	cmd := &cobra.Command{
		Use:   "show [--profile P] [--workspace DIR] [--json]",
		Short: "Print the policy a run would have, and where each value comes from",
		Long: `Print the policy "cordon run" would enforce in the workspace (the current
directory, or --workspace) with the profile named, without its flags: every
value, and after it the layer it came from ("built-in", "user FILE",
"workspace FILE", "profile NAME"). A value that does not hold (an allowed
host that a deny covers, a writable path inside a masked one) is marked
"void:" with the reason. The text is TOML, with the layers as comments;
--json gives the same as one JSON object.

It reads the user policy and, if it is trusted, the workspace policy, as a
run would; it changes nothing.`,
		Example: `  cordon policy show
  cordon policy show --profile claude-code
  cordon policy show --workspace ~/src/app --json | jq '.values[] | select(.key == "network.allow")'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPolicyShow(cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.profile, "profile", "", "stack the profile `P` too, as cordon run --profile P would")
	fl.StringVarP(&f.workspace, "workspace", "w", "", "the workspace of the run (default: the current directory)")
	fl.BoolVar(&f.json, "json", false, "print JSON: the layers, and each value with its key, source and note")
	return cmd
}

func newPolicyCheckCmd() *cobra.Command {
	var as string
	cmd := &cobra.Command{
		Use:   "check [--as user|workspace|profile] FILE...",
		Short: "Check policy files: FILE: ok, or each problem with its line and column",
		Long: `Check each FILE as cordon would read it, strictly: a TOML syntax error, an
unknown key, a value of the wrong type, a key set twice, a bad value (a host,
a size, a duration, a path) and values that contradict each other are all
errors, printed as FILE:LINE:COL: KEY: PROBLEM. Each good file prints
"FILE: ok". The exit status is 1 if any file has a problem.

What a file may hold depends on its role, which --as gives or the name
tells: .cordon.toml is a workspace policy; a .toml file in a directory
named profiles is a profile (it has a description, and may extend
another); anything else is a user policy, which may define profiles of
its own as [profile.NAME].

Checking a workspace policy does not trust it: "cordon trust" does.`,
		Example: `  cordon policy check ~/.config/cordon/policy.toml
  cordon policy check .cordon.toml
  cordon policy check --as profile my-profile.toml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPolicyCheck(cmd.OutOrStdout(), cmd.ErrOrStderr(), as, args)
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "check every FILE as a `ROLE`: user, workspace or profile (default: from each name)")
	return cmd
}

func runPolicyCheck(stdout, stderr io.Writer, as string, files []string) error {
	roles := map[string]policyfile.Role{"user": policyfile.User, "workspace": policyfile.Workspace, "profile": policyfile.Profile}
	role, forced := roles[as]
	if as != "" && !forced {
		return fmt.Errorf("--as %q: user, workspace or profile", as)
	}
	bad := 0
	for _, name := range files {
		r := policyfile.RoleOf(name)
		if forced {
			r = role
		}
		data, err := readPolicyFile(name)
		if err == nil {
			_, err = policyfile.ParseAs(name, data, r)
		}
		if err != nil {
			bad++
			fmt.Fprintln(stderr, err)
			continue
		}
		fmt.Fprintf(stdout, "%s: ok (%s)\n", name, r)
	}
	if bad > 0 {
		return exitStatus(1)
	}
	return nil
}

// readPolicyFile reads a policy file, refusing one too large to be one
// before reading it all.
func readPolicyFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, policyfile.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return data, nil
}

// userPolicyPath is $XDG_CONFIG_HOME/cordon/policy.toml, or
// ~/.config/cordon/policy.toml. A relative XDG_CONFIG_HOME is ignored, as
// the XDG spec says.
func userPolicyPath(home string) string {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "cordon", "policy.toml")
	}
	if !filepath.IsAbs(home) {
		return ""
	}
	return filepath.Join(home, ".config", "cordon", "policy.toml")
}

// policySources are the layers below the flags of a run in a workspace
// with a profile, and what was left out and why (an untrusted workspace
// policy), for the caller to say.
type policySources struct {
	layers  []policyfile.Layer
	user    *policyfile.File // nil: no user policy
	ignored []string
}

// loadPolicySources reads the user policy, the workspace policy if it is
// trusted (through the trust store only: an untrusted file is not parsed,
// not even for errors), and the profile. A user policy or trusted
// workspace policy that does not parse stops everything: the error names
// the line and column.
func loadPolicySources(ws, home, profile string) (*policySources, error) {
	src := &policySources{}
	if path := userPolicyPath(home); path != "" {
		data, err := readPolicyFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("the user policy: %w", err)
		default:
			f, err := policyfile.ParseAs(path, data, policyfile.User)
			if err != nil {
				return nil, fmt.Errorf("the user policy has problems (cordon policy check %s):\n%w", path, err)
			}
			src.user = f
			src.layers = append(src.layers, policyfile.UserLayer(f, home))
		}
	}

	wsFile := filepath.Join(ws, policyfile.WorkspaceFile)
	if _, err := os.Lstat(wsFile); err == nil {
		storePath, err := trust.DefaultPath()
		if err != nil {
			return nil, fmt.Errorf("%s: finding the trust store: %w", wsFile, err)
		}
		store, err := trust.Open(storePath)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", wsFile, err)
		}
		data, ok, why, err := store.Load(wsFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("%s: %w", wsFile, err)
		case !ok:
			src.ignored = append(src.ignored, fmt.Sprintf("ignoring %s: %s (run \"cordon trust\" in %s to use it)", printable(wsFile), why, printable(ws)))
		default:
			f, err := policyfile.ParseAs(wsFile, data, policyfile.Workspace)
			if err != nil {
				return nil, fmt.Errorf("the workspace policy, though trusted, has problems (cordon policy check %s):\n%w", wsFile, err)
			}
			src.layers = append(src.layers, policyfile.WorkspaceLayer(f))
		}
	}

	if profile != "" {
		layers, err := policyfile.LoadProfile(profile, src.user)
		if err != nil {
			return nil, fmt.Errorf("--profile: %w", err)
		}
		src.layers = append(src.layers, layers...)
	}
	return src, nil
}

// policyHost is what Merge needs of this machine. create lets a run make
// a missing writable directory that a policy file names in the home (an
// agent's state directory before its first run); policy show never does.
func policyHost(ws, home string, create bool) policyfile.Host {
	var own []policy.Entry
	if path := userPolicyPath(home); path != "" {
		own = append(own, policy.Entry{Path: filepath.Dir(path), Kind: policy.Dir, Why: "Cordon's user policy and profiles"})
	}
	if dir, err := audit.StateDir(); err == nil {
		own = append(own, policy.Entry{Path: dir, Kind: policy.Dir, Why: "Cordon's state: audit logs and the trust store"})
	}
	return policyfile.Host{
		Workspace:  ws,
		Home:       home,
		RuntimeDir: os.Getenv("XDG_RUNTIME_DIR"),
		Own:        own,
		Resolve: func(path string, flag bool) (string, error) {
			real, err := filepath.EvalSymlinks(path)
			if errors.Is(err, fs.ErrNotExist) && !create && !flag {
				return path, nil // shown as written; a run would make or refuse it
			}
			if errors.Is(err, fs.ErrNotExist) && !flag && filepath.IsAbs(home) && strings.HasPrefix(path, strings.TrimRight(home, "/")+"/") {
				if err := os.MkdirAll(path, 0o700); err != nil {
					return "", fmt.Errorf("making the missing directory: %w", err)
				}
				real, err = filepath.EvalSymlinks(path)
			}
			if errors.Is(err, fs.ErrNotExist) {
				return "", errors.New("no such directory; make it first")
			}
			if err != nil {
				return "", err
			}
			st, err := os.Stat(real)
			if err != nil {
				return "", err
			}
			if !st.IsDir() {
				return "", errors.New("not a directory")
			}
			return real, nil
		},
	}
}

// effectivePolicy is the policy of a run in workspace (absolute, resolved)
// with profile ("" for none), without flags, as policy show and
// blast-radius see it: nothing on the host is made or changed. ignored
// says what was left out (an untrusted workspace policy), for the caller
// to show.
func effectivePolicy(workspace, profile string) (eff *policyfile.Effective, ignored []string, err error) {
	home, _ := os.UserHomeDir()
	src, err := loadPolicySources(workspace, home, profile)
	if err != nil {
		return nil, nil, err
	}
	eff, err = policyfile.Merge(policyHost(workspace, home, false), src.layers...)
	if err != nil {
		return nil, nil, err
	}
	return eff, src.ignored, nil
}

// showPolicy is what policy show prints as JSON.
type showPolicy struct {
	Workspace string             `json:"workspace"`
	Profile   string             `json:"profile,omitempty"`
	Layers    []string           `json:"layers"`
	Ignored   []string           `json:"ignored,omitempty"`
	Values    []policyfile.Value `json:"values"`
}

func runPolicyShow(out io.Writer, f policyShowFlags) error {
	ws, err := workspaceDir(f.workspace)
	if err != nil {
		return err
	}
	eff, ignored, err := effectivePolicy(ws, f.profile)
	if err != nil {
		return err
	}
	s := showPolicy{Workspace: ws, Profile: f.profile, Layers: eff.Layers, Ignored: ignored, Values: eff.Values}
	if f.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	writePolicyText(out, s)
	return nil
}

// writePolicyText prints the effective policy as TOML, each value
// followed by the layer it came from.
func writePolicyText(out io.Writer, s showPolicy) {
	fmt.Fprintf(out, "# The policy of cordon run in %s", printable(s.Workspace))
	if s.Profile != "" {
		fmt.Fprintf(out, " with --profile %s", s.Profile)
	}
	fmt.Fprintf(out, ", before its flags.\n# Layers, lowest first: %s.\n", strings.Join(s.Layers, " < "))
	for _, ig := range s.Ignored {
		fmt.Fprintf(out, "# Not a layer: %s\n", ig)
	}
	fmt.Fprintln(out, "# After each value, the layer it came from; \"void:\" marks one that does not hold, and why.")

	byKey := map[string][]policyfile.Value{}
	var secretNames []string
	for _, v := range s.Values {
		if name, ok := strings.CutPrefix(v.Key, "network.secrets."); ok && byKey[v.Key] == nil {
			secretNames = append(secretNames, name)
		}
		byKey[v.Key] = append(byKey[v.Key], v)
	}
	section := ""
	for _, k := range policyfile.Keys() {
		if k.Section != section {
			section = k.Section
			fmt.Fprintf(out, "\n[%s]\n", section)
		}
		if k.Name == "secrets" {
			if len(secretNames) == 0 {
				fmt.Fprintf(out, "# secrets: not set: %s\n", k.Unset)
			}
			continue // a table of its own, below
		}
		writeKey(out, k.Name, k.List, byKey[k.Section+"."+k.Name], k.Unset)
	}
	if len(secretNames) > 0 {
		fmt.Fprintf(out, "\n[network.secrets]\n")
		for _, name := range secretNames {
			writeKey(out, name, true, byKey["network.secrets."+name], "")
		}
	}
}

func writeKey(out io.Writer, name string, list bool, vals []policyfile.Value, unset string) {
	if len(vals) == 0 {
		fmt.Fprintf(out, "# %s: not set: %s\n", name, unset)
		return
	}
	comment := func(v policyfile.Value) string {
		c := v.From
		if v.Note != "" {
			c += ": " + v.Note
		}
		if v.Void {
			c = "void: " + v.Note + "; " + v.From
		}
		return "# " + c
	}
	if !list {
		var live, void []policyfile.Value
		for _, v := range vals {
			if v.Void {
				void = append(void, v)
			} else {
				live = append(live, v)
			}
		}
		for _, v := range live {
			fmt.Fprintf(out, "%s = %s  %s\n", name, tomlValue(v.Value), comment(v))
		}
		for _, v := range void {
			fmt.Fprintf(out, "# %s = %s  %s\n", name, tomlValue(v.Value), comment(v))
		}
		return
	}
	width := 0
	for _, v := range vals {
		width = max(width, len(tomlValue(v.Value))+1)
	}
	fmt.Fprintf(out, "%s = [\n", name)
	for _, v := range vals {
		lit := tomlValue(v.Value) + ","
		if v.Void {
			fmt.Fprintf(out, "  # %-*s %s\n", width, lit, comment(v))
		} else {
			fmt.Fprintf(out, "  %-*s %s\n", width, lit, comment(v))
		}
	}
	fmt.Fprintln(out, "]")
}

// tomlValue writes v as a TOML literal. Strings escape what TOML and a
// terminal need escaped.
func tomlValue(v any) string {
	switch x := v.(type) {
	case string:
		var b strings.Builder
		b.WriteByte('"')
		for _, r := range x {
			switch {
			case r == '"' || r == '\\':
				b.WriteByte('\\')
				b.WriteRune(r)
			case !unicode.IsPrint(r):
				if r > 0xffff {
					fmt.Fprintf(&b, "\\U%08X", r)
				} else {
					fmt.Fprintf(&b, "\\u%04X", r)
				}
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('"')
		return b.String()
	case float64:
		s := strconv.FormatFloat(x, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	return fmt.Sprint(v)
}
