#!/bin/bash
# Benchmark (prints figures, no pass/fail): how fast sring-record stores a
# ring to disk, flat out from the in-process simulated device, O_DIRECT and
# buffered, against dd writing the same number of bytes to the same
# directory (oflag=direct, and through the page cache with a final fsync),
# in one run.
#
#   scripts/bench-record.sh [DIR [SECONDS]]     DIR default: a fresh directory under /var/tmp
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-}; seconds=${2:-5}
if [ -z "$dir" ]; then dir=$(mktemp -d /var/tmp/sring-bench.XXXXXX); trap 'rm -rf "$dir"' EXIT; fi
bazel build //consumer:sring-record 2>&1 | grep -E '^(ERROR|FAILED)' && exit 1
record=bazel-bin/consumer/sring-record
df -h "$dir" | tail -n1 | awk '{print "disk: " $1 " mounted on " $6 ", " $4 " free"}'

mb_per_s() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
printf '%-44s %10s %10s %8s\n' "what" "bytes" "MB/s" "dropped"
for mode in direct buffered; do
  flags=(); [ $mode = buffered ] && flags=(--buffered)
  out=$("$record" --sim --rate 0 --duration "$seconds" --block-size 1M --ring-size 64M --max-run 8M \
        "${flags[@]}" --allow-loss -o "$dir/bench.srec")
  bytes=$(stat -c %s "$dir/bench.srec")
  [ $mode = direct ] && direct_bytes=$bytes
  rate=$(echo "$out" | awk '/^  rate/ {print $2}')
  dropped=$(echo "$out" | awk '/^  dropped/ {print $4}')
  printf '%-44s %10s %10s %8s\n' "sring-record --rate 0 ($mode)" "$bytes" "$rate" "$dropped"
  rm -f "$dir/bench.srec"
done
count=$(( direct_bytes / 1048576 ))   # dd writes as much as the O_DIRECT recording
for mode in direct buffered; do
  flag=oflag=direct; [ $mode = buffered ] && flag=conv=fsync
  line=$(dd if=/dev/zero of="$dir/dd.bin" bs=1M count="$count" $flag 2>&1 | tail -n1)
  secs=$(echo "$line" | awk -F', ' '{print $3}' | awk '{print $1}')
  printf '%-44s %10s %10s %8s\n' "dd bs=1M $flag" "$((count * 1048576))" "$(mb_per_s $((count * 1048576)) "$secs")" "-"
  rm -f "$dir/dd.bin"
done
echo "(sring-record: bytes stored per second of the run, block headers included, the final"
echo " fdatasync not included; the simulated device fills every sample with the CPU, on the same"
echo " 2 cores, so on a fast disk that fill is part of the limit)"
