#!/usr/bin/env python3
"""Summarize bench/run.sh's hyperfine results as markdown, with ratios.

Usage: summarize.py RESULTS_DIR

Reads RESULTS_DIR/env.txt, skipped.txt, load.txt and <benchmark>.r<N>.json
(one per round; the rounds of a benchmark are merged by command name) and
prints the environment, one table per benchmark (mean ± σ, median, ratios to
the bare command and to bubblewrap) and the issue's targets with whether they
are met.

A verdict rests on the ratio of medians, with a 95% bootstrap interval: "yes"
when the whole interval is within the target, "no" when the whole interval
misses it, "undecided" otherwise (the run was too noisy to tell).
"""
import glob
import json
import math
import os
import random
import re
import statistics
import sys

STARTUP_TARGET = 0.80  # cordon at most 0.8x bubblewrap's startup
WORKLOAD_TARGET = 1.03  # cordon within 3% of the bare command

BENCHMARKS = [
    ("startup", "Startup: `true`"),
    ("find", "`find /usr -type f | wc -l`"),
    ("git-status", "`git status` in a 50,000-file tree"),
    ("go-build-noop", "`go build -o bin/cordon ./cmd/cordon`, up to date (warm cache, nothing to do)"),
    ("go-build-all", "`go build ./...`, warm cache"),
]
WORKLOADS = [b for b, _ in BENCHMARKS if b != "startup"]
ORDER = ["bare", "cordon", "bwrap", "firejail", "srt"]


def load(results, name):
    """Merge the rounds of one benchmark: {tool: {"times": [...], "command": ...}}."""
    paths = sorted(glob.glob(os.path.join(results, name + ".r*.json")),
                   key=lambda p: int(re.search(r"\.r(\d+)\.json$", p).group(1)))
    if not paths:
        return None
    out = {}
    for path in paths:
        with open(path) as f:
            for r in json.load(f)["results"]:
                t = out.setdefault(r["command"], {"times": []})
                t["times"].extend(r["times"])
    for t in out.values():
        xs = t["times"]
        t["mean"] = statistics.mean(xs)
        t["stddev"] = statistics.stdev(xs) if len(xs) > 1 else 0.0
        t["median"] = statistics.median(xs)
        t["min"], t["max"] = min(xs), max(xs)
    return dict(sorted(out.items(), key=lambda kv: ORDER.index(kv[0]) if kv[0] in ORDER else 99))


def ratio(a, b):
    """a/b of the means, with the propagated standard deviation (as hyperfine)."""
    r = a["mean"] / b["mean"]
    sa = a["stddev"] / a["mean"]
    sb = b["stddev"] / b["mean"]
    return r, r * math.sqrt(sa * sa + sb * sb)


def median_ratio_ci(a, b, n=2000, seed=1):
    """The ratio of medians and its 95% bootstrap interval."""
    rng = random.Random(seed)
    xa, xb = a["times"], b["times"]
    rs = []
    for _ in range(n):
        ma = statistics.median(rng.choices(xa, k=len(xa)))
        mb = statistics.median(rng.choices(xb, k=len(xb)))
        rs.append(ma / mb)
    rs.sort()
    return a["median"] / b["median"], rs[int(0.025 * n)], rs[int(0.975 * n) - 1]


def verdict(lo, hi, target):
    if hi <= target:
        return "yes"
    if lo > target:
        return "**no**"
    return "undecided (noise)"


def fmt_ratio(a, b):
    if a is None or b is None:
        return "–"
    r, s = ratio(a, b)
    return f"{r:.2f} ± {s:.2f} (med {a['median'] / b['median']:.2f})"


def main():
    results = sys.argv[1]
    print("## Environment\n")
    print("```")
    for f in ("env.txt", "load.txt"):
        p = os.path.join(results, f)
        if os.path.exists(p):
            with open(p) as fh:
                print(fh.read().rstrip())
    print("```\n")
    skipped = os.path.join(results, "skipped.txt")
    if os.path.exists(skipped) and os.path.getsize(skipped):
        print("Skipped peers:\n")
        with open(skipped) as f:
            for line in f:
                print(f"- {line.rstrip()}")
        print()

    print("## Results\n")
    print("Times in ms; ratios are of means (± propagated σ), with the ratio of medians after it.\n")
    data = {}
    for name, title in BENCHMARKS:
        rs = load(results, name)
        if rs is None:
            continue
        data[name] = rs
        bare, bwrap = rs.get("bare"), rs.get("bwrap")
        n = len(next(iter(rs.values()))["times"])
        print(f"### {title}\n")
        print(f"{n} runs each.\n")
        print("| tool | mean ± σ | median | min … max | × bare | × bwrap |")
        print("|---|---:|---:|---:|---:|---:|")
        for tool, r in rs.items():
            xb = "1" if tool == "bare" else fmt_ratio(r, bare)
            xw = "1" if tool == "bwrap" else fmt_ratio(r, bwrap)
            print(f"| {tool} | {r['mean'] * 1e3:.1f} ± {r['stddev'] * 1e3:.1f} | {r['median'] * 1e3:.1f} | "
                  f"{r['min'] * 1e3:.1f} … {r['max'] * 1e3:.1f} | {xb} | {xw} |")
        print()

    print("## Targets\n")
    print("| target | ratio of means ± σ | ratio of medians [95% CI] | met? |")
    print("|---|---:|---:|---|")
    st = data.get("startup", {})
    if "cordon" in st and "bwrap" in st:
        r, s = ratio(st["cordon"], st["bwrap"])
        m, lo, hi = median_ratio_ci(st["cordon"], st["bwrap"])
        print(f"| startup ≤ {STARTUP_TARGET:.2f}× bwrap | {r:.2f} ± {s:.2f} | {m:.2f} [{lo:.2f}, {hi:.2f}] | "
              f"{verdict(lo, hi, STARTUP_TARGET)} |")
    for name in WORKLOADS:
        rs = data.get(name)
        if not rs or "cordon" not in rs or "bare" not in rs:
            continue
        r, s = ratio(rs["cordon"], rs["bare"])
        m, lo, hi = median_ratio_ci(rs["cordon"], rs["bare"])
        print(f"| {name} ≤ {WORKLOAD_TARGET:.2f}× bare | {r:.3f} ± {s:.3f} | {m:.3f} [{lo:.3f}, {hi:.3f}] | "
              f"{verdict(lo, hi, WORKLOAD_TARGET)} |")
    print()

    if "cordon" in st and "bare" in st:
        fixed = st["cordon"]["median"] - st["bare"]["median"]
        print("What cordon adds to each workload (medians), split into its fixed startup cost "
              f"(cordon `true` − bare `true` = {fixed * 1e3:.1f} ms in this run) and the rest, "
              "which is what running inside the walls costs:\n")
        print("| workload | cordon − bare | startup | the rest | the rest / bare | bwrap − bare |")
        print("|---|---:|---:|---:|---:|---:|")
        for name in WORKLOADS:
            rs = data.get(name)
            if not rs or "cordon" not in rs or "bare" not in rs:
                continue
            d = rs["cordon"]["median"] - rs["bare"]["median"]
            rest = d - fixed
            bw = rs["bwrap"]["median"] - rs["bare"]["median"] if "bwrap" in rs else float("nan")
            print(f"| {name} | {d * 1e3:.1f} | {fixed * 1e3:.1f} | {rest * 1e3:.1f} | "
                  f"{100 * rest / rs['bare']['median']:+.1f}% | {bw * 1e3:.1f} |")
        print()


if __name__ == "__main__":
    main()
