#!/usr/bin/env bash
# The egress gateway's throughput, end to end; docs/BENCHMARKS.md, "Egress
# gateway", says what is measured and why.
#
#   bash bench/gateway.sh           # downloads: direct, through cordon, through srt
#   bash bench/gateway.sh --go      # and the Go benchmarks of internal/gateway
#   bash bench/gateway.sh --hold    # and 10,000 idle tunnels held for 60 s
#
# Builds cordon from the work tree and bench/gwload, a loopback HTTP server
# that answers each GET with SIZE bytes of zeros, then downloads them with
# curl, ROUNDS times each way, the ways interleaved (each round starts with
# the next one), and prints curl's rate for each download, the medians and
# their ratios to direct:
#   direct          curl on the host, no proxy
#   cordon-http     cordon run -- curl -x http://127.0.0.1:3128 (absolute form)
#   cordon-connect  the same with -p: a CONNECT tunnel
#   cordon-socks5   cordon run -- curl -x socks5h://127.0.0.1:1080
#   srt-http        srt -c 'curl -x "$HTTP_PROXY"' (sandbox-runtime's proxy)
#   srt-connect     the same with -p
#   relay-floor     curl on the host through socat -b 4 MiB, a bare TCP
#                   relay (no proxy protocol, no policy): one extra loopback
#                   hop through a process, the least any relay adds. Its
#                   cpu s is curl's alone (socat is not curl's child).
# cordon runs with --allow-domain 127.0.0.1:PORT; srt with 127.0.0.1 in
# allowedDomains. Both sandboxes put 127.0.0.1 in NO_PROXY, so curl is told
# --noproxy '' and the proxy explicitly. "cpu s" is the user+system time of
# the command and everything it waited for (curl; cordon's gateway and init;
# srt's node proxy, socat bridges and bwrap), not the server's.
#
# Knobs (environment): ROUNDS (5), SIZE (1073741824 bytes). srt is
# installed into bench/.tools, as by bench/run.sh. Raw results go to
# bench/results/gateway/ (gitignored). Traffic stays on loopback; the
# script kills only the server it started, by its pid, and removes its
# temporary directory (binaries, the workspace, cordon's audit log).
#
# --hold needs more than 20,000 descriptors in the benchmark's process
# (two a tunnel): it raises the hard RLIMIT_NOFILE if it may
# (CAP_SYS_RESOURCE); where it may not, HOLD_TUNNELS sets how many tunnels
# to hold instead (the Go benchmark says how many fit).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
RESULTS=$BENCH_DIR/results/gateway
ROUNDS=${ROUNDS:-5}
SIZE=${SIZE:-1073741824}
SRT_VERSION=0.0.83
SRT=$BENCH_DIR/.tools/node_modules/.bin/srt
HOLD_TUNNELS=${HOLD_TUNNELS:-10000}
export PATH=/usr/local/go/bin:$PATH
export LC_ALL=C

run_go=0 run_hold=0
for arg in "$@"; do
	case $arg in
	--go) run_go=1 ;;
	--hold) run_hold=1 ;;
	*)
		echo "usage: bash bench/gateway.sh [--go] [--hold]" >&2
		exit 2
		;;
	esac
done

say() { printf '\n== %s\n' "$*" >&2; }

# --- what the benchmark needs ----------------------------------------------
missing=()
for pair in curl:curl bwrap:bubblewrap socat:socat rg:ripgrep npm:npm; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
[[ -x /usr/bin/python3 ]] || missing+=(python3)
if ((${#missing[@]})); then
	say "installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "bench: go is not on PATH (expected /usr/local/go/bin)" >&2; exit 1; }
if [[ ! -x $SRT ]] || [[ $("$SRT" --version 2>/dev/null) != "$SRT_VERSION" ]]; then
	say "installing @anthropic-ai/sandbox-runtime@$SRT_VERSION into bench/.tools"
	npm install --prefix "$BENCH_DIR/.tools" --no-audit --no-fund --loglevel=error \
		"@anthropic-ai/sandbox-runtime@$SRT_VERSION" >&2 || true
fi

tmp=$(mktemp -d /var/tmp/cordon-gwbench.XXXXXX)
server= floor=
cleanup() {
	local p
	for p in $floor $server; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

say "building cordon and bench/gwload"
(cd "$REPO" && CGO_ENABLED=0 go build -o "$tmp/cordon" ./cmd/cordon && go build -o "$tmp/gwload" ./bench/gwload)
CORDON=$tmp/cordon

rm -rf "$RESULTS"
mkdir -p "$RESULTS" "$tmp/ws"
rev=$(git -C "$REPO" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
{
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "cordon: $rev (built from the work tree)"
	echo "kernel: $(uname -srm)"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cores)"
	echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
	echo "go: $(go version | cut -d' ' -f3-)"
	echo "curl: $(curl --version | head -1 | cut -d' ' -f2)"
	echo "srt: $("$SRT" --version 2>/dev/null || echo 'not installed') (node $(node --version 2>/dev/null || echo none))"
	echo "size: $SIZE bytes a download, $ROUNDS rounds"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$RESULTS/env.txt"
cat "$RESULTS/env.txt" >&2

# --- the server ---------------------------------------------------------------
"$tmp/gwload" -size "$SIZE" -addr-file "$tmp/addr" 2>/dev/null &
server=$!
for _ in $(seq 100); do
	[[ -s $tmp/addr ]] && break
	sleep 0.1
done
[[ -s $tmp/addr ]] || { echo "bench: gwload did not start" >&2; exit 1; }
ADDR=$(cat "$tmp/addr")
URL=http://$ADDR/

# The floor's relay: socat on a free loopback port, forwarding to the server.
FLOOR_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
socat -b 4194304 "TCP-LISTEN:$FLOOR_PORT,bind=127.0.0.1,reuseaddr,fork" "TCP:$ADDR" &
floor=$!
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$FLOOR_PORT") 2>/dev/null && break
	sleep 0.1
done

# --- the ways -------------------------------------------------------------------
CURL="curl -sS -o /dev/null -w %{speed_download}"
cat >"$tmp/srt.json" <<EOF
{
  "filesystem": {"denyRead": [], "allowWrite": ["."], "denyWrite": []},
  "network": {"allowedDomains": ["127.0.0.1"], "deniedDomains": []}
}
EOF
names=() cmds=()
way() { names+=("$1") cmds+=("$2"); }
way direct "$CURL --noproxy '*' $URL"
in_cordon="$CORDON run --audit $tmp/audit.jsonl --allow-domain $ADDR --"
way cordon-http "$in_cordon $CURL --noproxy '' -x http://127.0.0.1:3128 $URL"
way cordon-connect "$in_cordon $CURL --noproxy '' -p -x http://127.0.0.1:3128 $URL"
way cordon-socks5 "$in_cordon $CURL --noproxy '' -x socks5h://127.0.0.1:1080 $URL"
if [[ -x $SRT ]]; then
	way srt-http "$SRT -s $tmp/srt.json -c '$CURL --noproxy \"\" -x \"\$HTTP_PROXY\" $URL'"
	way srt-connect "$SRT -s $tmp/srt.json -c '$CURL --noproxy \"\" -p -x \"\$HTTP_PROXY\" $URL'"
else
	echo "srt: npm could not install @anthropic-ai/sandbox-runtime@$SRT_VERSION" >>"$RESULTS/skipped.txt"
fi
way relay-floor "$CURL --noproxy '*' http://127.0.0.1:$FLOOR_PORT/"

# once ROUND I: one download the way names[I] says; appends "round way MB/s
# wall user sys" to results/runs.txt. The command is run by bash -c, in the
# workspace.
TIMEFORMAT='%R %U %S'
once() {
	local round=$1 i=$2 out=$tmp/out rate t
	if ! { time (cd "$tmp/ws" && bash -c "${cmds[i]}" >"$out" 2>"$tmp/err"); } 2>"$tmp/time"; then
		echo "bench: ${names[i]} failed: $(tail -1 "$tmp/err")" >&2
		echo "${names[i]}: $(tail -1 "$tmp/err")" >>"$RESULTS/skipped.txt"
		return 0
	fi
	rate=$(awk '{printf "%.1f", $1 / 1e6}' "$out")
	t=$(cat "$tmp/time")
	echo "$round ${names[i]} $rate $t" >>"$RESULTS/runs.txt"
	printf '  round %d  %-15s %8s MB/s  (wall, user, sys: %s s)\n' "$round" "${names[i]}" "$rate" "$t" >&2
}

# settle: wait, at most a minute, until the CPUs were 90% idle over 2 s, so
# that a round does not start inside a burst of other work on a shared
# machine; prints the idle share seen last.
settle() {
	local a b ta tb k idle=0
	for _ in $(seq 30); do
		read -r -a a </proc/stat
		sleep 2
		read -r -a b </proc/stat
		ta=0 tb=0
		for k in 1 2 3 4 5 6 7 8; do
			ta=$((ta + a[k])) tb=$((tb + b[k]))
		done
		idle=$((100 * (b[4] - a[4]) / (tb - ta)))
		((idle >= 90)) && break
	done
	echo "$idle"
}

say "downloads of $SIZE bytes from $URL, $ROUNDS rounds"
n=${#names[@]}
: >"$RESULTS/runs.txt"
for r in $(seq 1 "$ROUNDS"); do
	idle=$(settle)
	echo "round $r: load $(cut -d' ' -f1-3 /proc/loadavg), CPUs ${idle}% idle before" >>"$RESULTS/load.txt"
	for k in $(seq 0 $((n - 1))); do
		once "$r" $(((k + r - 1) % n))
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/env.txt"

# --- summary --------------------------------------------------------------------
say "summary"
/usr/bin/python3 - "$RESULTS/runs.txt" "$SIZE" "${names[@]}" <<'EOF' | tee "$RESULTS/summary.md"
import statistics, sys
path, size, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
runs = {}  # way -> round -> (MB/s, cpu s)
for line in open(path):
    r, way, rate, wall, user, sys_ = line.split()
    runs.setdefault(way, {})[int(r)] = (float(rate), (float(user) + float(sys_)) * 2**30 / size)
direct = runs.get("direct", {})
d = statistics.median(v[0] for v in direct.values()) if direct else None
floor = runs.get("relay-floor", {})
print("| way | MB/s, median | min … max | × direct (medians) | × direct, per round: min … max | × relay-floor, per round: median (min … max) | cpu s / GiB, median |")
print("|---|---:|---:|---:|---:|---:|---:|")
for way in names:
    if way not in runs:
        print(f"| {way} | — | | | | | |")
        continue
    fl = [runs[way][r][0] / floor[r][0] for r in runs[way] if r in floor]
    fspan = f"{statistics.median(fl):.2f} ({min(fl):.2f} … {max(fl):.2f})" if fl else "—"
    rates = [v[0] for v in runs[way].values()]
    cpu = statistics.median(v[1] for v in runs[way].values())
    m = statistics.median(rates)
    per = [runs[way][r][0] / direct[r][0] for r in runs[way] if r in direct]
    ratio = f"{m / d:.3f}" if d else "—"
    span = f"{min(per):.3f} … {max(per):.3f}" if per else "—"
    print(f"| {way} | {m:.0f} | {min(rates):.0f} … {max(rates):.0f} | {ratio} | {span} | {fspan} | {cpu:.2f} |")
print()
print("MB/s is curl's speed_download (10^6 bytes a second); cpu s is user+system time of the")
print("command and what it waited for (the server's excluded), scaled to 1 GiB; for the sandboxes")
print("it includes their start and exit; for relay-floor it is curl's alone (socat's is not counted).")
EOF

# --- the Go benchmarks ------------------------------------------------------------
if ((run_go)); then
	say "Go benchmarks of internal/gateway"
	(cd "$REPO" &&
		go test -run '^$' -bench 'Download' -benchtime 3x -count 3 ./internal/gateway/ &&
		go test -run '^$' -bench 'Latency|ConnRate' -count 3 ./internal/gateway/ &&
		go test -run '^$' -bench 'IdleTunnels' -benchtime 1x -v ./internal/gateway/ -tunnels 2000) 2>&1 |
		tee "$RESULTS/go-bench.txt"
fi
if ((run_hold)); then
	say "$HOLD_TUNNELS idle tunnels held for 60 s"
	(cd "$REPO" &&
		go test -run '^$' -bench 'IdleTunnels' -benchtime 1x -timeout 30m -v ./internal/gateway/ -tunnels "$HOLD_TUNNELS" -hold 60s) 2>&1 |
		tee "$RESULTS/hold.txt"
fi
