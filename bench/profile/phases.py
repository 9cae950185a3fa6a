#!/usr/bin/env python3
"""Turn the traces of bench/profile-startup.sh into a table of phases.

Usage: phases.py TRACE_DIR   (one NNN.log per run)
"""
import glob
import statistics
import sys

# (from, to, what happens in between); "sup" is the supervisor, "init" the
# sandbox's PID 1.
PHASES = [
    ("launch.start", "main", "supervisor: fork/exec + Go runtime and package init"),
    ("main", "sup.run", "supervisor: CLI parsing, policy, environment filter"),
    ("sup.run", "sup.placeholders", "supervisor: preflight + placeholders in the workspace"),
    ("sup.placeholders", "sup.cgroup", "supervisor: cgroup leaf"),
    ("sup.cgroup", "sup.helper", "supervisor: cleanup helper (started, or scheduled)"),
    ("sup.helper", "sup.clone", "supervisor: pipes, socketpair"),
    ("sup.clone", "sup.initstarted", "supervisor: clone(NEWUSER|NEWNS|NEWPID|NEWNET|...) + exec init"),
    ("sup.initstarted", "init.main", "init: Go runtime and package init"),
    ("init.main", "init.plan", "init: wait for cgroup move + read the plan"),
    ("init.plan", "init.cgroupns", "init: non-dumpable + unshare(CLONE_NEWCGROUP)"),
    ("init.cgroupns", "init.mounts", "init: mounts"),
    ("init.mounts", "init.netuts", "init: loopback up + hostname"),
    ("init.netuts", "init.lookpath", "init: lookPath"),
    ("init.lookpath", "lock.nnp", "lockdown: no_new_privs (all threads)"),
    ("lock.nnp", "lock.landlock", "lockdown: Landlock"),
    ("lock.landlock", "lock.caps", "lockdown: drop capabilities (all threads)"),
    ("lock.caps", "init.lockdown", "lockdown: seccomp"),
    ("init.lockdown", "init.cmdstarted", "init: fork/exec the command"),
    ("init.cmdstarted", "init.cmdexited", "the command runs (`true`)"),
    ("init.cmdexited", "sup.initexited", "init exits, namespaces torn down, supervisor woken"),
    ("sup.initexited", "sup.finish", "supervisor: return path"),
    ("sup.finish", "sup.undone", "teardown: remove cgroup leaf + placeholders"),
    ("sup.undone", "sup.finished", "teardown: release the cleanup helper"),
    ("sup.finished", "launch.end", "supervisor: exit"),
]


def main():
    runs = []
    for path in sorted(glob.glob(sys.argv[1] + "/*.log")):
        marks = {}
        for line in open(path):
            pid, label, ns = line.split()
            if label == "main" and "main" in marks:
                continue  # the cleanup helper's main
            marks.setdefault(label, int(ns))
        runs.append(marks)
    print(f"{len(runs)} runs; milliseconds\n")
    print("| phase | median | mean |")
    print("|---|---:|---:|")
    msum = 0.0
    for a, b, what in PHASES:
        v = [(r[b] - r[a]) / 1e6 for r in runs if a in r and b in r]
        if not v:
            print(f"| {what} | – | – |")
            continue
        msum += statistics.median(v)
        print(f"| {what} | {statistics.median(v):.2f} | {statistics.mean(v):.2f} |")
    tot = [(r["launch.end"] - r["launch.start"]) / 1e6 for r in runs if "launch.end" in r]
    print(f"| **total** (sum of medians {msum:.1f}) | **{statistics.median(tot):.2f}** | **{statistics.mean(tot):.2f}** |")


if __name__ == "__main__":
    main()
