#!/bin/bash
# A consumer in another process reads a ring made by the sring-sim process
# (memfd and eventfd passed over a Unix socket) and verifies every sample,
# with the ring's data in 4 KiB pages and in 2 MiB pages (a data file).
set -euo pipefail
sim="$1"
acquire="$2"
dir=$(mktemp -d)
trap 'rm -rf "$dir"; kill $sim_pid 2>/dev/null || true' EXIT
# every_frame_accounted OUT FRAMES: acquire's report says every sample it got
# was verified and that what it got plus what the producer dropped (counted
# exactly, acquire checks that) is all FRAMES the producer made. A loaded
# machine may make the consumer lose some (this is no speed test): exact
# accounting is the guarantee, not zero loss.
every_frame_accounted() {
  grep -Eq "result         OK: every sample (verified, none lost|accounted for)" <<<"$1"
  local samples lost
  samples=$(awk '/^  samples/ {gsub(",", "", $2); print $2}' <<<"$1")
  lost=$(awk '/^  lost samples/ {gsub(",", "", $3); print $3}' <<<"$1")
  test "$((samples + lost))" -eq "$2"
}
# run_once [SIM_ARGS...]: 1 s at 20 MS/s from sring-sim, every sample verified.
run_once() {
  rm -f "$dir/sim.sock"
  "$sim" --socket "$dir/sim.sock" --duration 1 --rate 20M "$@" 2>"$dir/sim.err" &
  sim_pid=$!
  out=$("$acquire" --sim-socket "$dir/sim.sock" --wait hybrid --allow-loss)
  echo "$out"
  wait $sim_pid
  cat "$dir/sim.err"
  # 1 s at 20 MS/s in blocks of 4064 samples: 4921 whole blocks.
  every_frame_accounted "$out" $((4921 * 4064))
}
run_once
grep -q "in 4 KiB pages" "$dir/sim.err"
# The ring's data in 2 MiB pages, handed over as a third descriptor (its
# 4 MiB ring needs two free huge pages); without them, --pages auto falls
# back saying why, unless SRING_TEST_HUGEPAGES=1 (scripts/test.sh) demands them.
huge=/sys/kernel/mm/hugepages/hugepages-2048kB
free=$(( $(cat $huge/free_hugepages 2>/dev/null || echo 0) - $(cat $huge/resv_hugepages 2>/dev/null || echo 0) ))
if [ "$free" -ge 2 ] || [ "${SRING_TEST_HUGEPAGES:-0}" = 1 ]; then
  run_once --pages huge
  grep -q "in 2 MiB pages" "$dir/sim.err"
else
  run_once --pages auto
  grep -q "using 4 KiB pages" "$dir/sim.err"
fi
# Another layout: complex 16-bit samples of two channels (sring-sim --format
# cs16 --channels 2), verified on two worker threads: every value of every
# frame (I and Q of both channels). 1 s at 5 M frames/s in blocks of 1016
# frames: 4921 whole blocks.
rm -f "$dir/sim.sock"
"$sim" --socket "$dir/sim.sock" --duration 1 --rate 5M --format cs16 --channels 2 2>"$dir/sim.err" &
sim_pid=$!
rc=0; out=$("$acquire" --sim-socket "$dir/sim.sock" --wait hybrid --workers 2 --allow-loss) || rc=$?
echo "$out"
test "$rc" -eq 0
wait $sim_pid
cat "$dir/sim.err"
grep -q "| cs16 x 2 channels |" <<<"$out"
grep -q "frames of 4 values, each verified in place" <<<"$out"
every_frame_accounted "$out" $((4921 * 1016))
