#!/usr/bin/env bash
# What TLS inspection adds to the latency of HTTPS requests, end to end:
# requests through a sandbox's proxy with the sandbox's TLS ended and
# re-originated by the proxy (inspected) against the same through an
# opaque CONNECT tunnel (not inspected), for cordon and for srt.
#
#   bash bench/inspect.sh
#
# Builds cordon from the work tree and bench/gwload, run as an HTTPS origin
# on loopback (-tls: a certificate for 127.0.0.1 from a CA it makes at
# start, whose certificate it writes to ca.pem; HTTP/1.1 only) answering
# each GET with SIZE bytes. Each way below runs ONE curl process a round
# that makes N requests one after the other (a URL glob, ?[1-N]), so that
# process and sandbox start do not count; curl prints time_total of each.
# Two patterns:
#   keepalive  all N requests on one connection (one CONNECT, one TLS
#              handshake with whoever ends the sandbox's TLS)
#   close      a new connection for each: curl sends "Connection: close"
#              and the origin answers /close with it, so the proxy's own
#              connection to the origin is new each time too (curl resumes
#              its TLS sessions, as it does by default)
# The ways, interleaved (each round starts with the next one):
#   direct          curl on the host, no proxy, --cacert TRUST
#   cordon-tunnel   cordon run --allow-domain 127.0.0.1:PORT -- curl -p -x
#                   http://127.0.0.1:3128 --cacert TRUST: curl verifies the
#                   origin itself through the tunnel
#   cordon-inspect  the same with --inspect 127.0.0.1:PORT and no --cacert:
#                   curl trusts the run's CA (CURL_CA_BUNDLE: the host's
#                   bundle and the run's CA), and cordon, started with
#                   SSL_CERT_FILE=ca.pem, the origin
#   srt-tunnel      srt -c 'curl -p -x "$HTTPS_PROXY" --cacert TRUST'
#   srt-inspect     the same with network.tlsTerminate {} (srt's ephemeral
#                   CA; srt points CURL_CA_BUNDLE at it, node's roots and
#                   NODE_EXTRA_CA_CERTS) and no --cacert; srt, started with
#                   NODE_EXTRA_CA_CERTS=ca.pem, verifies the origin with
#                   node's roots and that file
# TRUST is, with CAFILE=bundle (the default), the host's bundle
# (/etc/ssl/certs/ca-certificates.crt) with ca.pem added, so that every way
# makes curl read a bundle of about the same size for each connection,
# as the inspected ways must (OpenSSL 3 takes some 20 ms of CPU for
# ~150 roots here, more than the rest of a new connection); with
# CAFILE=origin, ca.pem alone, which flatters the direct and tunnelled ways.
# Both sandboxes put 127.0.0.1 in NO_PROXY, so curl is told --noproxy ''
# and the proxy explicitly; curl speaks HTTP/1.1 everywhere (--http1.1),
# since the origin does and "Connection: close" means nothing in HTTP/2.
# Before measuring, each way and pattern is checked once with curl -v: the
# certificate's issuer (the origin's CA, cordon's run CA or srt's) and the
# number of connections curl opened; the runs are checked again for status
# 200 and curl's num_connects (1 a round with keepalive, N with close).
#
# Knobs (environment): N (200 requests a curl), ROUNDS (5), SIZE (1024
# bytes an answer), CAFILE (bundle or origin: TRUST above). srt is
# installed into bench/.tools, as by bench/run.sh; the two srt settings
# files are copied to the results. Raw results (one file per way, pattern
# and round:
# "time_total num_connects http_code" a request) go to
# bench/results/inspect/ (gitignored). Traffic stays on loopback; the
# script kills only the server it started, by its pid, and removes its
# temporary directory (binaries, CA certificate, the workspace, cordon's
# audit log).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
RESULTS=$BENCH_DIR/results/inspect
N=${N:-200}
ROUNDS=${ROUNDS:-5}
SIZE=${SIZE:-1024}
CAFILE=${CAFILE:-bundle}
HOST_BUNDLE=/etc/ssl/certs/ca-certificates.crt
SRT_VERSION=0.0.83
SRT=$BENCH_DIR/.tools/node_modules/.bin/srt
export PATH=/usr/local/go/bin:$PATH
export LC_ALL=C

if (($#)); then
	echo "usage: bash bench/inspect.sh   (knobs: N, ROUNDS, SIZE, CAFILE in the environment)" >&2
	exit 2
fi
case $CAFILE in
bundle | origin) ;;
*)
	echo "bench: CAFILE is bundle or origin, not '$CAFILE'" >&2
	exit 2
	;;
esac

say() { printf '\n== %s\n' "$*" >&2; }

# --- what the benchmark needs ----------------------------------------------
missing=()
for pair in curl:curl bwrap:bubblewrap socat:socat rg:ripgrep npm:npm; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
[[ -x /usr/bin/python3 ]] || missing+=(python3)
[[ -s $HOST_BUNDLE ]] || missing+=(ca-certificates)
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

# Under /var/tmp, not /tmp: the sandboxes see the host read-only but have
# a /tmp of their own, and the tunnelled curls read ca.pem from here.
tmp=$(mktemp -d /var/tmp/cordon-inspbench.XXXXXX)
server=
cleanup() {
	if [[ -n $server ]]; then
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
	fi
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
	# shellcheck disable=SC1091
	echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
	echo "go: $(go version | cut -d' ' -f3-)"
	echo "curl: $(curl --version | head -1 | cut -d' ' -f2-3)"
	echo "srt: $("$SRT" --version 2>/dev/null || echo 'not installed') (node $(node --version 2>/dev/null || echo none))"
	echo "requests: $N a curl, $SIZE bytes each, $ROUNDS rounds, CAFILE=$CAFILE"
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$RESULTS/env.txt"
cat "$RESULTS/env.txt" >&2

# --- the origin ------------------------------------------------------------------
"$tmp/gwload" -size "$SIZE" -addr-file "$tmp/addr" -tls "$tmp" -close-path /close 2>/dev/null &
server=$!
for _ in $(seq 100); do
	[[ -s $tmp/addr ]] && break
	sleep 0.1
done
[[ -s $tmp/addr && -s $tmp/ca.pem ]] || { echo "bench: gwload did not start" >&2; exit 1; }
ADDR=$(cat "$tmp/addr")
CA=$tmp/ca.pem
TRUST=$CA
if [[ $CAFILE == bundle ]]; then
	TRUST=$tmp/bundle.pem
	cat "$HOST_BUNDLE" "$CA" >"$TRUST"
fi
echo "trust of direct and tunnelled curls: $(grep -c 'BEGIN CERTIFICATE' "$TRUST") certificates" >>"$RESULTS/env.txt"

# --- the ways ----------------------------------------------------------------------
cat >"$tmp/srt-tunnel.json" <<EOF
{
  "filesystem": {"denyRead": [], "allowWrite": ["."], "denyWrite": []},
  "network": {"allowedDomains": ["127.0.0.1"], "deniedDomains": []}
}
EOF
cat >"$tmp/srt-inspect.json" <<EOF
{
  "filesystem": {"denyRead": [], "allowWrite": ["."], "denyWrite": []},
  "network": {"allowedDomains": ["127.0.0.1"], "deniedDomains": [], "tlsTerminate": {}}
}
EOF
cp "$tmp/srt-tunnel.json" "$tmp/srt-inspect.json" "$RESULTS/"
modes=(keepalive close)
# urls MODE N: curl's arguments for N requests.
urls() {
	case $1 in
	keepalive) printf "'https://%s/?[1-%d]'" "$ADDR" "$2" ;;
	close) printf -- "-H 'Connection: close' 'https://%s/close?[1-%d]'" "$ADDR" "$2" ;;
	esac
}
CURL="curl -sS --http1.1 -o /dev/null -w '%{time_total} %{num_connects} %{http_code}\n'"
names=() pres=() curls=() issuers=()
# way NAME ISSUER PREFIX CURL: the way runs PREFIX CURL, or, PREFIX ending
# in -c, PREFIX and then CURL quoted as one word. ISSUER is what the issuer
# of the certificate curl is shown must contain.
way() { names+=("$1") issuers+=("$2") pres+=("$3") curls+=("$4"); }
way direct "gwload benchmark CA" "" "$CURL --noproxy '*' --cacert $TRUST"
in_cordon="$CORDON run --audit $tmp/audit.jsonl --allow-domain $ADDR"
via_cordon="$CURL --noproxy '' -p -x http://127.0.0.1:3128"
way cordon-tunnel "gwload benchmark CA" "$in_cordon --" "$via_cordon --cacert $TRUST"
way cordon-inspect "Cordon run CA" "SSL_CERT_FILE=$CA $in_cordon --inspect $ADDR --" "$via_cordon"
if [[ -x $SRT ]]; then
	via_srt="$CURL --noproxy '' -p -x \"\$HTTPS_PROXY\""
	way srt-tunnel "gwload benchmark CA" "$SRT -s $tmp/srt-tunnel.json -c" "$via_srt --cacert $TRUST"
	way srt-inspect "sandbox-runtime" "NODE_EXTRA_CA_CERTS=$CA $SRT -s $tmp/srt-inspect.json -c" "$via_srt"
else
	echo "srt: npm could not install @anthropic-ai/sandbox-runtime@$SRT_VERSION" >>"$RESULTS/skipped.txt"
fi

# command_of I MODE N [-v]: the command, for bash -c, of way I making N
# requests the MODE way.
command_of() {
	local c
	c="${curls[$1]} ${4:-} $(urls "$2" "$3")"
	if [[ ${pres[$1]} == *" -c" ]]; then
		printf '%s %q' "${pres[$1]}" "$c"
	else
		printf '%s %s' "${pres[$1]}" "$c"
	fi
}

# --- checked once: who ends curl's TLS, and how many connections it opens -------------
say "checking each way: 3 requests with curl -v"
: >"$RESULTS/check.txt"
for i in "${!names[@]}"; do
	for mode in "${modes[@]}"; do
		want=1
		[[ $mode == close ]] && want=3
		if ! (cd "$tmp/ws" && bash -c "$(command_of "$i" "$mode" 3 -v)") >"$tmp/out" 2>"$tmp/err"; then
			echo "bench: ${names[i]} $mode failed: $(grep -v '^[*<>{}]' "$tmp/err" | tail -3)" >&2
			exit 1
		fi
		issuer=$(grep -m1 '^\*  issuer:' "$tmp/err" | sed 's/^\*  issuer: //')
		conns=$(awk '{s += $2} END {print s + 0}' "$tmp/out")
		codes=$(awk '{print $3}' "$tmp/out" | sort -u | tr '\n' ' ')
		reused=$(grep -c '^\* Re-using existing connection' "$tmp/err" || true)
		printf '%-15s %-9s issuer: %s; connections: %s (reused %s); status: %s\n' \
			"${names[i]}" "$mode" "$issuer" "$conns" "$reused" "$codes" | tee -a "$RESULTS/check.txt" >&2
		if [[ $issuer != *"${issuers[i]}"* || $conns != "$want" || $codes != "200 " ]]; then
			echo "bench: ${names[i]} $mode: want issuer ~ '${issuers[i]}', $want connections, status 200" >&2
			exit 1
		fi
	done
done

# once ROUND I MODE: one curl of N requests the way names[I] says; its
# output goes to results/WAY.MODE.rROUND.txt, its wall time to
# results/runs.txt.
TIMEFORMAT='%R'
once() {
	local round=$1 i=$2 mode=$3 out=$RESULTS/${names[$2]}.$3.r$1.txt t
	if ! { time (cd "$tmp/ws" && bash -c "$(command_of "$i" "$mode" "$N")" >"$out" 2>"$tmp/err"); } 2>"$tmp/time"; then
		echo "bench: ${names[i]} $mode failed: $(tail -1 "$tmp/err")" >&2
		echo "${names[i]} $mode round $round: $(tail -1 "$tmp/err")" >>"$RESULTS/skipped.txt"
		rm -f "$out"
		return 0
	fi
	t=$(cat "$tmp/time")
	echo "$round ${names[i]} $mode $t" >>"$RESULTS/runs.txt"
	printf '  round %d  %-15s %-9s median %6.3f ms  (curl ran %s s)\n' "$round" "${names[i]}" "$mode" \
		"$(sort -n "$out" | awk '{a[NR] = $1} END {print 1000 * a[int((NR + 1) / 2)]}')" "$t" >&2
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

say "$N requests a curl to https://$ADDR/, $ROUNDS rounds"
combos=()
for mode in "${modes[@]}"; do
	for i in "${!names[@]}"; do
		combos+=("$i $mode")
	done
done
n=${#combos[@]}
: >"$RESULTS/runs.txt"
for r in $(seq 1 "$ROUNDS"); do
	idle=$(settle)
	echo "round $r: load $(cut -d' ' -f1-3 /proc/loadavg), CPUs ${idle}% idle before" >>"$RESULTS/load.txt"
	for k in $(seq 0 $((n - 1))); do
		# shellcheck disable=SC2086 # "I MODE", split on purpose
		once "$r" ${combos[(k + r - 1) % n]}
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/env.txt"

# --- summary --------------------------------------------------------------------
say "summary"
/usr/bin/python3 - "$RESULTS" "$N" "${names[@]}" <<'EOF' | tee "$RESULTS/summary.md"
import glob, math, os, re, statistics, sys
results, n, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
modes = ["keepalive", "close"]
times, rounds, bad = {}, {}, []  # (way, mode) -> all times in ms; -> per-round medians
for path in sorted(glob.glob(os.path.join(results, "*.r*.txt"))):
    m = re.fullmatch(r"(.+)\.(keepalive|close)\.r(\d+)\.txt", os.path.basename(path))
    if not m:
        continue
    way, mode, r = m.group(1), m.group(2), int(m.group(3))
    rows = [line.split() for line in open(path) if line.strip()]
    t = [float(x[0]) * 1000 for x in rows]
    conns = sum(int(x[1]) for x in rows)
    want = 1 if mode == "keepalive" else n
    if len(rows) != n or conns != want or any(x[2] != "200" for x in rows):
        bad.append(f"{way} {mode} round {r}: {len(rows)} requests, {conns} connections (want {want}), "
                   f"status {sorted(set(x[2] for x in rows))}")
    times.setdefault((way, mode), []).extend(t)
    rounds.setdefault((way, mode), []).append(statistics.median(t))

def p90(v):
    v = sorted(v)
    return v[math.ceil(0.9 * len(v)) - 1]

stat = {k: (statistics.median(v), p90(v)) for k, v in times.items()}
for mode in modes:
    print(f"### {mode}: {'one connection for all' if mode == 'keepalive' else 'a new connection (CONNECT and TLS) for each'} of {n} requests a curl")
    print()
    print("| way | median ms | p90 ms | per-round medians, min … max | × direct (median) | × direct (p90) |")
    print("|---|---:|---:|---:|---:|---:|")
    d = stat.get(("direct", mode))
    for way in names:
        if (way, mode) not in stat:
            print(f"| {way} | — | | | | |")
            continue
        med, p = stat[(way, mode)]
        rr = rounds[(way, mode)]
        xd = f"{med / d[0]:.2f}" if d else "—"
        xp = f"{p / d[1]:.2f}" if d else "—"
        print(f"| {way} | {med:.3f} | {p:.3f} | {min(rr):.3f} … {max(rr):.3f} | {xd} | {xp} |")
    print()
    print("| sandbox | inspect / tunnel (median) | inspect / tunnel (p90) | inspect − tunnel (median, ms) |")
    print("|---|---:|---:|---:|")
    for box in ("cordon", "srt"):
        a, b = stat.get((f"{box}-inspect", mode)), stat.get((f"{box}-tunnel", mode))
        if a and b:
            print(f"| {box} | {a[0] / b[0]:.2f} | {a[1] / b[1]:.2f} | {a[0] - b[0]:+.3f} |")
    print()
print("Times are curl's time_total of each request, all rounds pooled; with keepalive the first")
print("request of each curl includes the connection's CONNECT and TLS handshakes.")
if bad:
    print()
    print("Unexpected runs:")
    for b in bad:
        print(f"- {b}")
EOF
