#!/bin/bash
# A consumer in another process reads a ring made by the sring-sim process
# (memfd and eventfd passed over a Unix socket) and verifies every sample.
set -euo pipefail
sim="$1"
acquire="$2"
dir=$(mktemp -d)
trap 'rm -rf "$dir"; kill $sim_pid 2>/dev/null || true' EXIT
"$sim" --socket "$dir/sim.sock" --duration 1 --rate 20M &
sim_pid=$!
out=$("$acquire" --sim-socket "$dir/sim.sock" --wait hybrid)
echo "$out"
wait $sim_pid
grep -q "result         OK: every sample verified, none lost" <<<"$out"
samples=$(awk '/^  samples/ {gsub(",", "", $2); print $2}' <<<"$out")
# 1 s at 20 MS/s in blocks of 4064 samples: 4921 whole blocks.
test "$samples" -eq $((4921 * 4064))
