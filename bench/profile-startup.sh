#!/usr/bin/env bash
# Where `cordon run -- true` spends its time, phase by phase.
#
#   bash bench/profile-startup.sh [RUNS]     (default 100)
#   PROFILE_REV=HEAD bash bench/profile-startup.sh   (a commit, not the work tree)
#
# Copies the work tree (or PROFILE_REV) to a temporary directory, inserts phase marks
# (bench/profile/instrument.py: monotonic timestamps appended to a trace file
# by the supervisor and by init), builds that copy, runs it RUNS times under a
# small launcher that stamps the fork and the wait, and prints the median and
# mean of each phase. The real tree is not touched. The marks cost a few
# microseconds each; the totals come out close to bench/run.sh's startup line.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
RUNS=${1:-100}
WORK=${CORDON_BENCH_WORK:-/var/tmp/cordon-bench}
export PATH=/usr/local/go/bin:$PATH

command -v cc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc >/dev/null; }

tmp=$(mktemp -d /var/tmp/cordon-profile.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src" "$tmp/traces" "$WORK/ws"
if [[ -n ${PROFILE_REV:-} ]]; then
	# A committed revision.
	git -C "$REPO" archive "$PROFILE_REV" | tar -x -C "$tmp/src"
	rev=$(git -C "$REPO" rev-parse --short=12 "$PROFILE_REV")
else
	# The work tree as it is, tracked and untracked files, without bench/.
	(cd "$REPO" && git ls-files -co --exclude-standard -z -- . ':!bench' |
		while IFS= read -r -d '' f; do if [[ -e $f ]]; then printf '%s\0' "$f"; fi; done |
		xargs -0 cp --parents -t "$tmp/src")
	rev=$(git -C "$REPO" describe --always --dirty --abbrev=12)
fi
/usr/bin/python3 "$BENCH_DIR/profile/instrument.py" "$tmp/src"
(cd "$tmp/src" && CGO_ENABLED=0 go build -o "$tmp/cordon" ./cmd/cordon)
cc -O2 -o "$tmp/launch" "$BENCH_DIR/profile/launch.c"

trace=$tmp/trace.log
cd "$WORK/ws"
for i in $(seq 1 $((RUNS + 5))); do
	: >"$trace"
	CORDON_TRACE=$trace "$tmp/launch" "$trace" "$tmp/cordon" run -- true
	if ((i > 5)); then # after 5 warm-up runs
		cp "$trace" "$tmp/traces/$(printf %04d "$i").log"
	fi
done
echo "cordon $rev, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 "$BENCH_DIR/profile/phases.py" "$tmp/traces"
