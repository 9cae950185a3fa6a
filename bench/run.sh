#!/usr/bin/env bash
# Cordon's benchmarks; docs/BENCHMARKS.md says what they measure and why.
#
#   bash bench/run.sh
#
# Measured in one run, against the bare command and against peers:
#   1. startup: `cordon run -- true` vs bare `true`, bubblewrap, firejail and
#      Anthropic's sandbox-runtime (srt);
#   2. syscall-heavy workloads inside: `find /usr -type f | wc -l`,
#      `git status` in a 50,000-file tree, and a warm `go build` of Cordon
#      (a no-op build of the binary and `go build ./...`): bare vs cordon vs
#      bwrap.
# It installs what it lacks (apt-get, npm), builds cordon, writes hyperfine's
# raw JSON and markdown to bench/results/ (gitignored) and prints a summary
# with ratios, also written to bench/results/summary.md.
#
# Knobs (environment): STARTUP_RUNS (200), HEAVY_RUNS (30), BUILD_RUNS (20),
# ROUNDS (5: each benchmark's runs are split into rounds, see bench()),
# BENCH_NICE (-10: the priority hyperfine and what it runs get),
# CORDON_BENCH_WORK (/var/tmp/cordon-bench: workspaces and the git tree),
# CORDON_BENCH_BIN (/tmp/cordon-bench: the cordon binary built here).
# It sends no traffic anywhere but loopback (srt's proxy listens there) and
# kills nothing.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
RESULTS=$BENCH_DIR/results
WORK=${CORDON_BENCH_WORK:-/var/tmp/cordon-bench}
CORDON=${CORDON_BENCH_BIN:-/tmp/cordon-bench}
STARTUP_RUNS=${STARTUP_RUNS:-200}
HEAVY_RUNS=${HEAVY_RUNS:-30}
BUILD_RUNS=${BUILD_RUNS:-20}
ROUNDS=${ROUNDS:-5}
NICE=${BENCH_NICE:--10}
SRT_VERSION=0.0.83
SRT=$BENCH_DIR/.tools/node_modules/.bin/srt
export PATH=/usr/local/go/bin:$PATH
export LC_ALL=C

say() { printf '\n== %s\n' "$*" >&2; }

# --- what the benchmarks need ---------------------------------------------
say "checking tools"
missing=()
for pair in hyperfine:hyperfine bwrap:bubblewrap firejail:firejail socat:socat \
	rg:ripgrep git:git npm:npm; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
[[ -x /usr/bin/python3 ]] || missing+=(python3)
if ((${#missing[@]})); then
	say "installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "bench: go is not on PATH (expected /usr/local/go/bin)" >&2; exit 1; }

rm -rf "$RESULTS"
mkdir -p "$RESULTS" "$WORK"
: >"$RESULTS/skipped.txt"
skip() { # skip NAME REASON: a peer that cannot run here is recorded, not faked
	printf '%s: %s\n' "$1" "$2" >>"$RESULTS/skipped.txt"
	say "skipping $1: $2"
}

if [[ ! -x $SRT ]] || [[ $("$SRT" --version 2>/dev/null) != "$SRT_VERSION" ]]; then
	say "installing @anthropic-ai/sandbox-runtime@$SRT_VERSION into bench/.tools"
	npm install --prefix "$BENCH_DIR/.tools" --no-audit --no-fund --loglevel=error \
		"@anthropic-ai/sandbox-runtime@$SRT_VERSION" >&2 || true
fi

say "building cordon"
(cd "$REPO" && CGO_ENABLED=0 go build -o "$CORDON" ./cmd/cordon)

# --- the environment, recorded with the results ---------------------------
rev=$(git -C "$REPO" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "cordon: $rev (built from the work tree; uncommitted changes, if any, saved to results/tree.diff)"
	echo "kernel: $(uname -srm)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cores)"
	echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
	echo "go: $(go version | cut -d' ' -f3-)"
	echo "hyperfine: $(hyperfine --version | cut -d' ' -f2)"
	echo "bwrap: $(bwrap --version | cut -d' ' -f2)"
	echo "firejail: $(firejail --version 2>/dev/null | head -1 | awk '{print $3}')"
	echo "srt: $("$SRT" --version 2>/dev/null || echo 'not installed') (node $(node --version 2>/dev/null || echo none))"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$RESULTS/env.txt"
cat "$RESULTS/env.txt" >&2
git -C "$REPO" diff HEAD -- . ':!bench' >"$RESULTS/tree.diff" 2>/dev/null || true

# --- fixtures ---------------------------------------------------------------
WS=$WORK/ws # an empty workspace for startup and find, made anew each time
rm -rf "$WS"
mkdir -p "$WS"

# A 50,000-file tree in git: 50 x 10 directories of 100 small files, one commit.
GITREPO=$WORK/gitrepo
if [[ ! -f $WORK/gitrepo.ready ]]; then
	say "creating the 50,000-file git tree at $GITREPO"
	rm -rf "$GITREPO"
	mkdir -p "$GITREPO"
	/usr/bin/python3 - "$GITREPO" <<'EOF'
import os, sys
root = sys.argv[1]
for a in range(50):
    for b in range(10):
        d = os.path.join(root, f"d{a:02d}", f"s{b}")
        os.makedirs(d, exist_ok=True)
        for c in range(100):
            with open(os.path.join(d, f"f{c:03d}.txt"), "w") as f:
                f.write(f"file {a}/{b}/{c}\n")
EOF
	git -C "$GITREPO" init -q
	git -C "$GITREPO" add -A
	git -C "$GITREPO" -c user.name=bench -c user.email=bench@localhost commit -q -m "50,000 files"
	touch "$WORK/gitrepo.ready"
fi
git -C "$GITREPO" status >/dev/null # refresh the index once, outside the timings

# Cordon's own source at the benchmarked revision (committed state), so that
# concurrent edits in the work tree do not change the build being timed.
SRC=$WORK/src
head=$(git -C "$REPO" rev-parse HEAD)
if [[ $(cat "$WORK/src.rev" 2>/dev/null) != "$head" ]]; then
	say "snapshotting $head to $SRC"
	rm -rf "$SRC"
	mkdir -p "$SRC"
	git -C "$REPO" archive HEAD | tar -x -C "$SRC"
	echo "$head" >"$WORK/src.rev"
fi
GOCACHE_DIR=$(go env GOCACHE)
mkdir -p "$GOCACHE_DIR"
say "warming the Go build cache"
(cd "$SRC" && go build ./... && go build -o bin/cordon ./cmd/cordon)
# Everything is in the module cache now: no variant may reach a network.
export GOTOOLCHAIN=local GOPROXY=off

# --- the sandboxes ------------------------------------------------------------
BWRAP=(bwrap --ro-bind / / --dev /dev --proc /proc --unshare-all --die-with-parent)
# For workloads bwrap gets what cordon gives: a private /tmp and the workspace.
bwrap_ws() { echo "bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --bind $1 $1 --chdir $1 --unshare-all --die-with-parent"; }

say "checking that each sandbox runs here"
(cd "$WS" && "$CORDON" run -- true) || { echo "bench: cordon run -- true fails here; see cordon doctor" >&2; exit 1; }
(cd "$WS" && "${BWRAP[@]}" true) || { echo "bench: bwrap fails here" >&2; exit 1; }
have_firejail=0
if out=$(cd "$WS" && timeout 60 firejail --quiet --noprofile --net=none true 2>&1); then
	have_firejail=1
else
	skip firejail "firejail --quiet --noprofile --net=none true failed: $(echo "$out" | head -1)"
fi
have_srt=0
if [[ ! -x $SRT ]]; then
	skip srt "npm could not install @anthropic-ai/sandbox-runtime@$SRT_VERSION"
elif out=$(cd "$WS" && timeout 60 "$SRT" -s "$BENCH_DIR/srt-settings.json" true 2>&1); then
	have_srt=1
else
	skip srt "srt true failed: $(echo "$out" | tail -1)"
fi

# bench NAME RUNS WARMUP DIR [-n NAME CMD]...: one benchmark. The runs are
# split into $ROUNDS hyperfine invocations, each starting with the next
# command, so that a burst of other work on this small machine falls on every
# command alike rather than on whichever one was running; hyperfine runs at
# nice $NICE for the same reason. The raw results are
# results/NAME.rN.{json,md}; summarize.py merges the rounds.
bench() {
	local name=$1 runs=$2 warmup=$3 dir=$4 r i k
	shift 4
	local names=() cmds=()
	while (($#)); do # -n NAME CMD triples
		names+=("$2") cmds+=("$3")
		shift 3
	done
	local n=${#names[@]} per=$(((runs + ROUNDS - 1) / ROUNDS))
	say "$name: $ROUNDS rounds of $per runs each, in $dir"
	echo "$name: load before $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/load.txt"
	for r in $(seq 1 "$ROUNDS"); do
		local args=() # each round starts with the next command
		for i in $(seq 0 $((n - 1))); do
			k=$(((i + r - 1) % n))
			args+=(-n "${names[k]}" "${cmds[k]}")
		done
		(cd "$dir" && nice -n "$NICE" hyperfine -N --style basic --warmup "$warmup" --runs "$per" \
			--export-json "$RESULTS/$name.r$r.json" --export-markdown "$RESULTS/$name.r$r.md" "${args[@]}") >&2
	done
}

# --- 1. startup ---------------------------------------------------------------
startup=(-n bare "true" -n cordon "$CORDON run -- true" -n bwrap "${BWRAP[*]} true")
if ((have_firejail)); then startup+=(-n firejail "firejail --quiet --noprofile --net=none true"); fi
if ((have_srt)); then startup+=(-n srt "$SRT -s $BENCH_DIR/srt-settings.json true"); fi
bench startup "$STARTUP_RUNS" 5 "$WS" "${startup[@]}"

# --- 2. syscall-heavy workloads -------------------------------------------------
FIND="sh -c 'find /usr -type f | wc -l'"
bench find "$HEAVY_RUNS" 3 "$WS" \
	-n bare "$FIND" \
	-n cordon "$CORDON run -- $FIND" \
	-n bwrap "$(bwrap_ws "$WS") $FIND"

bench git-status "$HEAVY_RUNS" 3 "$GITREPO" \
	-n bare "git status" \
	-n cordon "$CORDON run -- git status" \
	-n bwrap "$(bwrap_ws "$GITREPO") git status"

NOOP="go build -o bin/cordon ./cmd/cordon"
bench go-build-noop "$HEAVY_RUNS" 3 "$SRC" \
	-n bare "$NOOP" \
	-n cordon "$CORDON run --write $GOCACHE_DIR -- $NOOP" \
	-n bwrap "$(bwrap_ws "$SRC") --bind $GOCACHE_DIR $GOCACHE_DIR $NOOP"

ALL="go build ./..."
bench go-build-all "$BUILD_RUNS" 2 "$SRC" \
	-n bare "$ALL" \
	-n cordon "$CORDON run --write $GOCACHE_DIR -- $ALL" \
	-n bwrap "$(bwrap_ws "$SRC") --bind $GOCACHE_DIR $GOCACHE_DIR $ALL"

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/env.txt"

# --- summary ------------------------------------------------------------------
say "summary"
/usr/bin/python3 "$BENCH_DIR/summarize.py" "$RESULTS" | tee "$RESULTS/summary.md"
