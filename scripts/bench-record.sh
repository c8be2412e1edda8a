#!/bin/bash
# Benchmark (prints figures, no pass/fail): how fast sring-record stores a
# ring to disk, flat out from the in-process simulated device, O_DIRECT and
# buffered, against the disk's sequential write rate as dd sees it: dd
# writing the same number of bytes to the same directory (oflag=direct, and
# through the page cache with a final fsync), in writes of 8 MiB, the largest
# the recorder makes (--max-run 8M).
#
#   scripts/bench-record.sh [--reps N] [DIR [SECONDS]]
#     DIR default: a fresh directory under /var/tmp; SECONDS per recording (5)
#
# N repetitions (default 3), interleaved so that a change in the disk's or
# the machine's load hits every configuration alike:
#   rep i: sring-record O_DIRECT, dd oflag=direct (the bytes that recording
#          stored), sring-record buffered, dd conv=fsync (the bytes that
#          recording stored).
# Every rate is bytes on disk / wall time of the whole process, timed from
# outside in the same way for both tools: for the buffered recording that
# includes its final fdatasync, as dd conv=fsync includes its fsync
# (sring-record's own "rate" line leaves the fdatasync out; it is shown as
# "own"). Ratios are per repetition (sring-record / dd of the same rep).
# Prints one RAW line per process and a summary; scripts/bench.sh keeps both.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=3
if [ "${1:-}" = "--reps" ]; then reps=$2; shift 2; fi
dir=${1:-}; seconds=${2:-5}
made_dir=0
if [ -z "$dir" ]; then dir=$(mktemp -d /var/tmp/sring-bench.XXXXXX); made_dir=1; fi
raw=$(mktemp)
trap 'rm -f "$raw" "$dir/bench.srec" "$dir/dd.bin"; [ $made_dir = 1 ] && rm -rf "$dir"' EXIT
if ! bazel build --jobs=2 //tools:sring-record >/tmp/sring-bench-record-build.log 2>&1; then
  cat /tmp/sring-bench-record-build.log >&2
  echo "bench-record: sring-record did not build" >&2
  exit 1
fi
record=bazel-bin/tools/sring-record
df -h "$dir" | tail -n1 | awk '{print "disk: " $1 " mounted on " $6 ", " $4 " free"}'
echo "sring-record --sim --rate 0 --duration $seconds --block-size 1M --ring-size 64M --max-run 8M; $reps reps, interleaved"

now() { date +%s.%N; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / s / 1e6 }'; }

for rep in $(seq 1 "$reps"); do
  for mode in direct buffered; do
    flags=(); [ $mode = buffered ] && flags=(--buffered)
    t0=$(now)
    out=$("$record" --sim --rate 0 --duration "$seconds" --block-size 1M --ring-size 64M --max-run 8M \
          "${flags[@]}" --allow-loss -o "$dir/bench.srec") || { echo "$out" >&2; echo "bench-record: sring-record failed" >&2; exit 1; }
    t1=$(now)
    bytes=$(stat -c %s "$dir/bench.srec")
    own=$(echo "$out" | awk '/^  rate/ {print $2}')
    dropped=$(echo "$out" | awk '/^  dropped/ {print $4}')
    rm -f "$dir/bench.srec"
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    echo "RAW tool=sring-record mode=$mode rep=$rep bytes=$bytes seconds=$secs mbps=$(mbps "$bytes" "$secs") own_mbps=$own dropped_samples=$dropped" | tee -a "$raw"

    count=$(( bytes / 1048576 ))   # dd writes as much as this recording stored
    flag=oflag=direct; [ $mode = buffered ] && flag=conv=fsync
    t0=$(now)
    dd if=/dev/zero of="$dir/dd.bin" ibs=1M obs=8M count="$count" $flag status=none
    t1=$(now)
    rm -f "$dir/dd.bin"
    dbytes=$((count * 1048576))
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    echo "RAW tool=dd mode=$mode rep=$rep bytes=$dbytes seconds=$secs mbps=$(mbps "$dbytes" "$secs") flag=$flag" | tee -a "$raw"
  done
done

python3 - "$raw" <<'PY'
import statistics, sys
rows = [dict(kv.split("=", 1) for kv in line.split()[1:]) for line in open(sys.argv[1]) if line.startswith("RAW ")]
def mmm(v):
    return f"{min(v):7.0f} / {statistics.median(v):7.0f} / {max(v):7.0f}"
print(f"{'MB/s, min / median / max':<34} {'direct (O_DIRECT)':>27} {'buffered (+ final fsync)':>27}")
for tool in ("sring-record", "dd"):
    cells = [mmm([float(r["mbps"]) for r in rows if r["tool"] == tool and r["mode"] == m]) for m in ("direct", "buffered")]
    print(f"{tool:<34} {cells[0]:>27} {cells[1]:>27}")
own = {m: [float(r["own_mbps"]) for r in rows if r["tool"] == "sring-record" and r["mode"] == m] for m in ("direct", "buffered")}
print(f"{'sring-record own rate (no fsync)':<34} {mmm(own['direct']):>27} {mmm(own['buffered']):>27}")
for m in ("direct", "buffered"):
    ratios = []
    for rep in sorted({r["rep"] for r in rows}, key=int):
        s = [float(r["mbps"]) for r in rows if r["tool"] == "sring-record" and r["mode"] == m and r["rep"] == rep]
        d = [float(r["mbps"]) for r in rows if r["tool"] == "dd" and r["mode"] == m and r["rep"] == rep]
        if s and d:
            ratios.append(s[0] / d[0])
    print(f"ratio sring-record/dd, {m:<8}: median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}; "
          f"per rep {', '.join(f'{x:.2f}' for x in ratios)})")
PY
echo "(bytes stored per second of wall time of the whole process, block headers included; the"
echo " simulated device fills every sample with the CPU, on the same 2 cores, while dd writes"
echo " zeroes: on a fast disk that fill is part of sring-record's limit)"
