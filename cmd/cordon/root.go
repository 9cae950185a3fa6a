package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "cordon",
		Short: "Contain AI agents and other commands behind walls, not prompts",
		Long: `Cordon runs a command so that, whatever it tries, it can reach only what the
policy gives it: the host read-only minus credential stores, the workspace
writable, the network only through a gateway that lets out what you allow,
no process outside its own.

  cordon run -- CMD [ARGS...]   run CMD contained, in the current directory
  cordon run --profile claude-code -- claude
                                the same with a built-in profile (dev, strict, codex, ...)
  cordon blast-radius           what a contained process could still do here, and with no sandbox
  cordon policy show            the effective policy, and where each value comes from
  cordon trust                  let this workspace's .cordon.toml configure its runs
  cordon doctor                 check that this machine can raise every wall
  cordon audit [FILE]           summarise a run's audit log (the newest by default)
  cordon connect HOST PORT      inside a sandbox: a connection through the gateway on stdio
  cordon serve                  run the session server: sandboxes that stay up, behind an HTTP API
  cordon session create|exec|cp|ls|rm
                                use a session server's sandboxes, as docker exec and docker cp do

Exit status of "cordon run": the command's own; 128+N if it died of signal N;
124 on --timeout; 125 if Cordon could not start the sandbox (the reason is
printed); 126 if the command cannot be executed; 127 if it is not found; 86
if a decoy credential tried to leave and the run was stopped.`,
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("cordon {{.Version}}\n")
	root.AddCommand(newRunCmd(), newBlastRadiusCmd(), newPolicyCmd(), newTrustCmd(), newDoctorCmd(), newAuditCmd(), newConnectCmd(), newSessionCmd(), newServeCmd())
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %s --help)", err, c.CommandPath())
	})
	return root
}

func versionString() string {
	v := version
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + info.GoVersion
	}
	return v
}
