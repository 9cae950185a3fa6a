package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cordon-sandbox/cordon/internal/cgroup"
	"github.com/cordon-sandbox/cordon/internal/policy"
	"github.com/cordon-sandbox/cordon/internal/sandbox"
	"github.com/cordon-sandbox/cordon/internal/seccomp"
)

type check struct {
	name string
	wall string // what it gives
	err  error  // nil: available
	note string
	// optional checks do not fail the defaults: without them Cordon
	// falls back (cgroups to rlimits) and says so.
	optional bool
}

func newDoctorCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check that this machine can raise every wall of `cordon run`",
		Long: `Check each kernel feature Cordon relies on, say what wall it gives, and run
one contained "true" with the default walls. Exit status 0 when "cordon run"
works here with its defaults, 1 when it does not (the failing walls are
listed, with what to do).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ok := runDoctor(cmd.Context(), cmd.OutOrStdout())
			if !ok {
				return exitStatus(1)
			}
			return nil
		},
	}
}

func runDoctor(ctx context.Context, out io.Writer) bool {
	checks := []check{
		probeNamespaces(),
		probeLandlock(),
		{name: "seccomp", wall: "kernel attack surface: mount, namespaces, ptrace, bpf, keyrings, TIOCSTI, io_uring and more refused", err: seccomp.Available(),
			note: fmt.Sprintf("%d rules", len(seccomp.Rules()))},
		probeCgroup(),
	}
	ok := true
	for _, c := range checks {
		status := "ok  "
		if c.err != nil {
			status = "FAIL"
			if c.optional {
				status = "warn"
			} else {
				ok = false
			}
		}
		fmt.Fprintf(out, "%s  %-16s %s\n", status, c.name, c.wall)
		if c.note != "" {
			fmt.Fprintf(out, "      %-16s %s\n", "", c.note)
		}
		if c.err != nil {
			fmt.Fprintf(out, "      %-16s %v\n", "", c.err)
		}
	}
	if err := endToEnd(ctx); err != nil {
		fmt.Fprintf(out, "FAIL  %-16s %v\n", "cordon run", err)
		ok = false
	} else {
		fmt.Fprintf(out, "ok    %-16s %s\n", "cordon run", "a contained `true` ran with the default walls")
	}
	if ok {
		fmt.Fprintln(out, "\nThe default walls can be raised here.")
	} else {
		fmt.Fprintln(out, "\nThe default walls cannot all be raised here: `cordon run` will refuse to start\nunless the missing wall is named with --allow-degraded.")
	}
	return ok
}

func probeLandlock() check {
	c := check{name: "landlock", wall: "write set enforced again below the mounts; TCP connect and signal/abstract-socket scoping"}
	abi := sandbox.LandlockABI()
	c.note = fmt.Sprintf("ABI %d (Cordon needs %d)", abi, sandbox.LandlockRequiredABI)
	switch {
	case abi == 0:
		c.err = fmt.Errorf("not available: enable CONFIG_SECURITY_LANDLOCK and add landlock to the lsm= boot parameter, or run with --allow-degraded landlock")
	case abi < sandbox.LandlockRequiredABI:
		c.err = fmt.Errorf("ABI %d lacks TCP or scoping rules (Linux 6.12 has ABI 6); run with --allow-degraded landlock to use what is here", abi)
	}
	return c
}

func probeCgroup() check {
	c := check{name: "cgroup", wall: "memory, pids and CPU limits for the whole sandbox", optional: true}
	r := cgroup.Probe()
	var parts []string
	if r.V2Mount != "" {
		parts = append(parts, "v2 at "+r.V2Mount)
	}
	var v1 []string
	for name, mnt := range r.V1Mounts {
		v1 = append(v1, name+" at "+mnt)
	}
	sort.Strings(v1)
	if len(v1) > 0 {
		parts = append(parts, "v1: "+strings.Join(v1, ", "))
	}
	var ctrls []string
	for name, v := range r.Controllers {
		ctrls = append(ctrls, fmt.Sprintf("%s (v%d)", name, v))
	}
	sort.Strings(ctrls)
	parts = append(parts, "controllers: "+strings.Join(ctrls, ", "))
	c.note = strings.Join(parts, "; ")
	if !r.Writable {
		c.err = fmt.Errorf("no cgroup leaf can be made by this user (%s): the pids limit falls back to RLIMIT_NPROC; --memory and --cpus need --allow-degraded cgroup", r.Reason)
	} else {
		c.note += "; a leaf can be created: limits in force"
	}
	return c
}

// endToEnd runs `true` in a sandbox with the default policy in a scratch
// workspace: the one check that covers every wall together.
func endToEnd(ctx context.Context) error {
	ws, err := os.MkdirTemp("", "cordon-doctor-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(ws)
	home, _ := os.UserHomeDir()
	p := policy.Default(ws, home, os.Getenv("XDG_RUNTIME_DIR"))
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer null.Close()
	nop := func(string, ...any) {}
	if ctx == nil {
		ctx = context.Background()
	}
	status, err := sandbox.Run(ctx, sandbox.Options{
		Policy: p, Argv: []string{"true"}, Env: []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		Stdin: null, Stdout: null, Stderr: null, Log: nop, Warn: nop,
	})
	if err != nil {
		return err
	}
	if status != 0 {
		return fmt.Errorf("`true` exited %d", status)
	}
	return nil
}
