#!/usr/bin/env python3
"""Instrument a copy of Cordon's source with phase marks for
bench/profile-startup.sh. Never run it on the real tree.

Usage: instrument.py SRC_COPY

Each mark appends "PID LABEL MONOTONIC_NS" to the trace file: the
supervisor opens $CORDON_TRACE; init, which cannot open a host file once its
mounts are read-only, gets the supervisor's descriptor as fd 5. The marks are
inserted after anchor strings of the current code; when the code moves on and
an anchor is gone, this says which one, and the anchors need updating.
"""
import os
import sys

TRACE_GO = '''package sandbox

// Added by bench/profile/instrument.py to a copy of the source: phase marks.

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

var (
	traceOnce sync.Once
	traceFile *os.File
)

// Mark appends "pid label monotonic-ns" to the trace file, if there is one.
func Mark(label string) {
	traceOnce.Do(func() {
		if os.Args[0] == InitArg0 {
			var st unix.Stat_t
			if unix.Fstat(5, &st) == nil {
				unix.CloseOnExec(5)
				traceFile = os.NewFile(5, "trace")
			}
			return
		}
		if p := os.Getenv("CORDON_TRACE"); p != "" {
			if f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0); err == nil {
				traceFile = f
			}
		}
	})
	if traceFile == nil {
		return
	}
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	fmt.Fprintf(traceFile, "%d %s %d\\n", os.Getpid(), label, ts.Nano())
}

// traceExtra hands init the trace file as fd 5.
func traceExtra(files ...*os.File) []*os.File {
	Mark("sup.clone")
	if traceFile != nil {
		return append(files, traceFile)
	}
	return files
}
'''

# (file, anchor, replacement); the anchor must occur exactly once.
EDITS = [
    ("cmd/cordon/main.go", "func main() {\n", 'func main() {\n\tsandbox.Mark("main")\n'),
    ("cmd/cordon/main.go", "\tos.Exit(run(os.Args[1:]))",
     '\trc := run(os.Args[1:])\n\tsandbox.Mark("sup.exit")\n\tos.Exit(rc)'),

    ("internal/sandbox/start_linux.go", "\tp := o.Policy\n\tif err := preflight(p)",
     '\tMark("sup.run")\n\tp := o.Policy\n\tif err := preflight(p)'),
    ("internal/sandbox/start_linux.go",
     "\tif err := planFilesystem(&plan, p, &job); err != nil {\n\t\treturn 0, err\n\t}\n",
     '\tif err := planFilesystem(&plan, p, &job); err != nil {\n\t\treturn 0, err\n\t}\n\tMark("sup.placeholders")\n'),
    ("internal/sandbox/start_linux.go", "\t\tjob.CgroupDirs = leaf.Dirs()\n\t}\n",
     '\t\tjob.CgroupDirs = leaf.Dirs()\n\t}\n\tMark("sup.cgroup")\n'),
    ("internal/sandbox/start_linux.go", "\ttty := term.IsTerminal(",
     '\tMark("sup.helper")\n\ttty := term.IsTerminal('),
    ("internal/sandbox/start_linux.go", "ExtraFiles:  []*os.File{planR, syncThere},",
     "ExtraFiles:  traceExtra(planR, syncThere),"),
    ("internal/sandbox/start_linux.go", "\tplanR.Close()\n\tsyncThere.Close()\n",
     '\tMark("sup.initstarted")\n\tplanR.Close()\n\tsyncThere.Close()\n'),
    ("internal/sandbox/start_linux.go", "\tplanW.Close()\n", '\tMark("sup.planwritten")\n\tplanW.Close()\n'),
    ("internal/sandbox/start_linux.go", '\t\tcase "started":\n',
     '\t\tcase "started":\n\t\t\tMark("sup.gotstarted")\n'),
    ("internal/sandbox/start_linux.go", "\t\tcase err := <-done:\n",
     '\t\tcase err := <-done:\n\t\t\tMark("sup.initexited")\n'),

    ("internal/sandbox/cleanup_linux.go", "func (j *cleanupJob) finish(log func(string, ...any)) {\n",
     'func (j *cleanupJob) finish(log func(string, ...any)) {\n\tMark("sup.finish")\n\tdefer Mark("sup.finished")\n'),
    ("internal/sandbox/cleanup_linux.go", '\t\tlog("cleanup: %v", err)\n\t}\n',
     '\t\tlog("cleanup: %v", err)\n\t}\n\tMark("sup.undone")\n'),

    ("internal/sandbox/init_linux.go", "func Init() {\n", 'func Init() {\n\tMark("init.main")\n'),
    ("internal/sandbox/init_linux.go", "\tplanFile.Close()\n", '\tplanFile.Close()\n\tMark("init.plan")\n'),
    ("internal/sandbox/init_linux.go", "\tif err := setupMounts(&plan); err != nil {",
     '\tMark("init.cgroupns")\n\tif err := setupMounts(&plan); err != nil {'),
    ("internal/sandbox/init_linux.go", "\tif err := loopbackUp(); err != nil {",
     '\tMark("init.mounts")\n\tif err := loopbackUp(); err != nil {'),
    ("internal/sandbox/init_linux.go", "\tstdio := []*os.File{", '\tMark("init.netuts")\n\tstdio := []*os.File{'),
    ("internal/sandbox/init_linux.go", "\twarnings, err := lockdown(&plan)\n",
     '\tMark("init.lookpath")\n\twarnings, err := lockdown(&plan)\n\tMark("init.lockdown")\n'),
    ("internal/sandbox/init_linux.go", '\tsendMessage(syncSock, message{Kind: "started"',
     '\tMark("init.cmdstarted")\n\tsendMessage(syncSock, message{Kind: "started"'),
    ("internal/sandbox/init_linux.go", "\t\tif got != pid {\n\t\t\tcontinue\n\t\t}\n",
     '\t\tif got != pid {\n\t\t\tcontinue\n\t\t}\n\t\tMark("init.cmdexited")\n'),

    ("internal/sandbox/lock_linux.go", "\tif err := restrictLandlock(p); err != nil {",
     '\tMark("lock.nnp")\n\tif err := restrictLandlock(p); err != nil {'),
    ("internal/sandbox/lock_linux.go", "\tif err := dropCapabilities(); err != nil {",
     '\tMark("lock.landlock")\n\tif err := dropCapabilities(); err != nil {'),
    ("internal/sandbox/lock_linux.go", "\tif err := seccomp.Install(); err != nil {",
     '\tMark("lock.caps")\n\tif err := seccomp.Install(); err != nil {'),
]


def main():
    src = sys.argv[1]
    failed = []
    for path, anchor, repl in EDITS:
        full = os.path.join(src, path)
        with open(full) as f:
            text = f.read()
        n = text.count(anchor)
        if n != 1:
            failed.append(f"{path}: anchor found {n} times: {anchor!r}")
            continue
        with open(full, "w") as f:
            f.write(text.replace(anchor, repl, 1))
    if failed:
        sys.exit("instrument.py: the code has moved on; update bench/profile/instrument.py:\n  " + "\n  ".join(failed))
    with open(os.path.join(src, "internal/sandbox/trace_bench.go"), "w") as f:
        f.write(TRACE_GO)


if __name__ == "__main__":
    main()
