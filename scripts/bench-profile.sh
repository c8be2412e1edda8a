#!/bin/bash
# Profiles (figures, no pass/fail): what bounds each path of the CPU-per-GB
# comparison (ring_bench --rates). perf has no hardware counters on this
# virtual machine (cycles, instructions, cache-misses: "not supported"), so
# the bound is read from two sources side by side:
#   - callgrind: instructions the consumer's loop executes in user space per
#     byte delivered (only the consumer's loop is counted: --toggle-collect),
#     and which functions they are in;
#   - the rate sweep itself: CPU seconds per GB, and sleeps per GB (one
#     sleep = one wake-up, a system call pair and two context switches).
# Instructions per byte times the bytes per second the consumer sustains
# gives its instruction rate: far below the CPU's ~1-4 per ns means the
# loop waits for memory or for the kernel, not for its own work.
# Callgrind does not see the kernel: read()'s copy is system time only.
#
#   scripts/bench-profile.sh [RATE_MSPS]     default 500
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-500}
command -v valgrind >/dev/null || {
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends valgrind >&2
}
bazel build -c opt --jobs=2 //bench:ring_bench 2>&1 | grep -E '^(ERROR|FAILED)' && exit 1
bench=bazel-bin/bench/ring_bench
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
echo "callgrind, the consumer's loop only, ${rate} MS/s for 0.3 s per path (valgrind runs one thread at a"
echo "time, so the producer falls behind: only instructions per byte are meaningful here)"
printf '%-12s %14s %12s   %s\n' "path" "bytes" "Ir/byte" "where (self Ir, top 3 functions)"
for path in "in place" "read()" "copy queue" "in place/4" "read()/4" "copy q./4"; do
  valgrind --tool=callgrind --toggle-collect='*consume_loop*' --callgrind-out-file="$work/cg.out" \
    "$bench" --rates "$rate" --runs 1 --seconds 0.3 --only "$path" --json "$work/r.json" >"$work/log" 2>&1 || {
      cat "$work/log" >&2; echo "bench-profile: $path failed" >&2; exit 1; }
  ir=$(awk '/^summary:/ {print $2}' "$work/cg.out")
  bytes=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(int(sum(r['delivered_bytes'][0] for r in d['rates'])))" "$work/r.json")
  top=$(callgrind_annotate --inclusive=no "$work/cg.out" 2>/dev/null | python3 -c '
import re, sys
out = []
for line in sys.stdin:
    m = re.match(r"\s*[\d,]+\s+\(\s*([\d.]+)%\)\s+(.*)", line)
    if not m or "PROGRAM TOTALS" in line:
        continue
    name = re.sub(r"\s*\[.*\]$", "", m.group(2)).split(":")[-1].split("(")[0]
    out.append(f"{m.group(1)}% {name[:40]}")
    if len(out) == 3:
        break
print("; ".join(out))')
  printf '%-12s %14s %12s   %s\n' "$path" "$bytes" "$(awk -v i="$ir" -v b="$bytes" 'BEGIN {printf "%.3f", b ? i / b : 0}')" "$top"
done
