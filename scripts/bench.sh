#!/bin/bash
# Benchmarks (not part of the test suite; figures and ratios, no verdicts).
# Nine parts, each writing docs/bench/PART.txt (the command that made it at
# the top) and docs/bench/PART.json:
#   host    flat-out throughput: the ring against spsc_queue, a pipe, and
#           the verify-only and fill-only limits, with a generating and a
#           DMA-like producer; wake-up latencies (bench/ring_bench)
#   rates   the consumer's CPU per GB and the whole receiving side's (the
#           consumer plus the producer's transport work) at fixed rates from
#           20 MS/s up, in place against read() and a copying queue, on a
#           quiet machine and a noisy one (the consumer's CPU stolen for
#           2.5 ms of every 20 ms), the highest loss-free rate of each (ring_bench
#           --rates; rates-summary.txt side by side); the in-place
#           candidates, old behaviour to new a change at a time, in the same
#           runs (ring_bench --rates --candidates -> rates-candidates.txt;
#           as root it reserves 16 huge pages for the +huge candidate and
#           gives the old count back after); and callgrind instruction
#           counts of each consumer loop (scripts/bench-profile.sh ->
#           docs/bench/profile.txt). About 13 minutes.
#   scale   cost against ring size, block size and 1-16 rings, one thread
#           each or one epoll thread (bench/scale_bench)
#   qemu    in QEMU, the driver read through mmap + eventfd against read(),
#           3 interleaved pairs of runs per rate, rising until both paths
#           fail (tests/qemu/run-qemu-tests.sh --bench; raw lines in
#           docs/bench/qemu-raw.txt)
#   record  sring-record against dd on the same disk (scripts/bench-record.sh)
#   net     NetPublisher against plain zmq_send of the same message sizes
#           (bench/net_bench)
#   pages   the user-space simulator's ring in 4 KiB against 2 MiB (hugetlb)
#           pages: the in-place consumer's verify GB/s and CPU per GB at 20,
#           200 and 2000 MS/s, rings of 4 MiB to 1 GiB (ring_bench
#           --pages-sweep; pages-summary.txt is docs/performance.md's table). Needs
#           520 free 2 MiB pages: as root it reserves them for the part and
#           gives the old count back after
#   qemu-rings  the kernel ring of 4 MiB to 1 GiB in QEMU, in place against
#           read() at 20, 200 and 1000 MS/s (run-qemu-tests.sh --bench-rings)
#   qemu-dma  in QEMU with the producer outside the guest (the host's
#           sring-dma-model writing into guest RAM, sring_digitizer.ko):
#           mmap + eventfd against read(), 3 interleaved pairs per rate, the
#           highest loss-free rate of each, CPU and interrupts per GB, and
#           the verify-only limit of the same boot; the issue's goals (mmap
#           at least 3x read(), within 80% of the limit) MET / NOT MET
#           (run-qemu-tests.sh --bench-dma; raw lines in
#           docs/bench/qemu-dma-raw.txt). About 5 minutes.
# and the plots docs/throughput.png and docs/qemu-loss-free.png.
#
#   scripts/bench.sh [--quick] [--parts host,rates,scale,qemu,record,net,pages,qemu-rings,qemu-dma]
#   scripts/bench.sh --plot-only      redraw tables and plots from the saved raw results
#     --quick: fewer runs and sizes everywhere (QEMU: two rates), for a check
#              that everything builds and runs, not for figures
#
# Exits non-zero if any part fails to build or run. Do not run it beside
# other heavy work: the machine has 2 cores and every figure would show it.
set -euo pipefail
cd "$(dirname "$0")/.."
command_line="scripts/bench.sh${*:+ $*}"
quick=0; plot_only=0; parts="host,rates,scale,qemu,record,net,pages,qemu-rings,qemu-dma"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --plot-only) plot_only=1 ;;
    --parts) parts=$2; shift ;;
    --parts=*) parts=${1#--parts=} ;;
    *) echo "usage: scripts/bench.sh [--quick] [--parts host,rates,scale,qemu,record,net,pages,qemu-rings,qemu-dma] | --plot-only" >&2
       exit 2 ;;
  esac
  shift
done
want() { [[ ",$parts," == *",$1,"* ]]; }
out=docs/bench
mkdir -p "$out" test-logs
bench_started=$(date +%s)
timings=()
fail() { echo "bench: FAILED: $*" >&2; exit 1; }
# The pages part reserves 2 MiB huge pages; whatever happens, the old
# count goes back.
hugepages_before=""
restore_hugepages() {
  if [ -n "$hugepages_before" ]; then
    echo "$hugepages_before" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
    echo "bench: /proc/sys/vm/nr_hugepages back to $hugepages_before"
    hugepages_before=""
  fi
}
trap 'rc=$?; restore_hugepages; [ $rc -ne 0 ] && echo "bench: stopped with exit status $rc after $(( $(date +%s) - bench_started )) s" >&2' EXIT

# Figures taken beside other heavy work say little (and QEMU's CPU times
# count the time the host took the emulator's threads away): say so.
busy=$(pgrep -af '[r]ing_bench|[s]cale_bench|[n]et_bench|[r]un-qemu-tests|[q]emu-system|[b]azel.*test|[v]algrind|[c]c1plus' || true)
if [ $plot_only = 0 ] && [ -n "$busy" ]; then
  echo "bench: WARNING: other heavy processes are running; the figures will show it:" >&2
  echo "$busy" | cut -c1-120 | sed 's/^/  /' >&2
fi

scripts/setup-deps.sh
if ! command -v gnuplot >/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends gnuplot-nox >&2
fi

# The header of every docs/bench/*.txt: what made it, when, on what.
header() {  # header PART
  echo "# command: $command_line   (part: $1)"
  echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':(exclude)docs' 2>/dev/null || echo ' (with local changes to the sources)'), $(nproc) CPUs, $(uname -r)"
}
part_started=0
begin() { part_started=$(date +%s); echo; echo "== $1"; }
end() { timings+=("$1 $(( $(date +%s) - part_started )) s"); }

if [ $plot_only = 0 ]; then
  echo "bench: building"
  if ! bazel build --jobs=2 //bench:ring_bench //bench:scale_bench //bench:net_bench //tools:sring-record >test-logs/bench-build.log 2>&1; then
    cat test-logs/bench-build.log >&2
    fail "the benchmarks did not build (test-logs/bench-build.log)"
  fi

  # ======================= host: BEGIN =======================
  # bench/ring_bench and bench/scale_bench (their flags belong to those
  # programs); writes host.*, rates.*, scale.* and profile.txt.
  if want host; then
    begin "host: ring vs spsc_queue vs pipe vs the verify-only and fill-only limits (GB/s of verified samples; min / median / max), wake-up latency"
    host_args=(--runs 5 --producer both); [ $quick = 1 ] && host_args=(--quick --runs 3 --producer both)
    { header host; bazel-bin/bench/ring_bench "${host_args[@]}" --json "$out/host.json"; } | tee "$out/host.txt"
    end host
  fi
  if want rates; then
    begin "rates: CPU per GB at fixed rates (consumer and whole), in place against read() and a copying queue, quiet and noisy; the in-place candidates"
    # Quiet and noisy, 12 runs per rate and repetition: 9 rates x 12 x 10 x 0.5 s, about 10 minutes.
    rate_list=20,50,100,200,500,1000,2000,3000,4000; rate_args=(--runs 10 --seconds 0.5)
    # The candidates: 3 rates x 2 settings x 16 rows x 10 x 0.3 s, about 5 minutes;
    # 2000 and 3000 MS/s are where the noisy setting's steals find the edges.
    candidate_list=20,2000,3000; candidate_args=(--runs 10 --seconds 0.3)
    if [ $quick = 1 ]; then
      rate_list=20,500; rate_args=(--runs 1 --seconds 0.3)
      candidate_list=200; candidate_args=(--runs 1 --seconds 0.2)
    fi
    rc=0
    { header rates; bazel-bin/bench/ring_bench --rates $rate_list "${rate_args[@]}" --json "$out/rates.json"; } |
      tee "$out/rates.txt" || rc=$?
    [ $rc -eq 0 ] || fail "ring_bench --rates exited $rc"
    { header rates; python3 scripts/bench-report.py rates "$out/rates.json" -; } >"$out/rates-summary.txt"
    cat "$out/rates-summary.txt"
    # The +huge candidate needs 8 free 2 MiB pages for the 16 MiB ring; as
    # root they are reserved for this run only (without them it is left out
    # and the table says so).
    if [ "$(id -u)" -eq 0 ]; then
      hugepages_before=$(cat /proc/sys/vm/nr_hugepages)
      echo $(( hugepages_before + 16 )) >/proc/sys/vm/nr_hugepages
    fi
    rc=0
    { header rates-candidates; bazel-bin/bench/ring_bench --rates $candidate_list --candidates "${candidate_args[@]}" \
        --json "$out/rates-candidates.json"; } | tee "$out/rates-candidates.txt" || rc=$?
    restore_hugepages
    [ $rc -eq 0 ] || fail "ring_bench --rates --candidates exited $rc"
    { echo; echo "== summary (scripts/bench-report.py rates $out/rates-candidates.json)";
      python3 scripts/bench-report.py rates "$out/rates-candidates.json" -; } >>"$out/rates-candidates.txt"
    { header profile; scripts/bench-profile.sh 500; } | tee "$out/profile.txt"
    end rates
  fi
  if want scale; then
    begin "scale: the consumer's cost against ring size, block size and number of rings"
    scale_args=(); [ $quick = 1 ] && scale_args=(--quick)
    { header scale; bazel-bin/bench/scale_bench "${scale_args[@]}" --json "$out/scale.json"; } | tee "$out/scale.txt"
    if [ $quick = 0 ]; then
      # Software counters only (this VM has no hardware ones): what the
      # context-switch and migration figures of docs/performance.md come from.
      if ! command -v perf >/dev/null; then
        sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends linux-perf >&2
      fi
      {
        header scale-perf
        for cfg in "block  64M ring    4K blk  1xthread paced" "block  64M ring    1M blk  1xthread paced" \
                   "rings  16M ring   64K blk 16xthread paced" "rings  16M ring   64K blk 16xepoll  paced"; do
          echo "=== $cfg (3 runs of 1 s per invocation)"
          perf stat -e task-clock,context-switches,cpu-migrations,page-faults \
            bazel-bin/bench/scale_bench --only "$cfg" --runs 3 --retries 0 2>&1 | grep -E "^(block|rings) |task-clock|context-switches|cpu-migrations|page-faults"
        done
      } | tee "$out/scale-perf.txt"
    fi
    end scale
  fi
  if want pages; then
    begin "pages: the simulator's ring in 4 KiB against 2 MiB pages (verify GB/s and consumer CPU per GB)"
    page_rings=4M,16M,64M,256M,1G; page_rates=20,200,2000; page_args=(--runs 5 --seconds 1)
    [ $quick = 1 ] && { page_rings=4M,64M; page_rates=20,2000; page_args=(--runs 1 --seconds 0.3); }
    # Enough free 2 MiB pages for the largest ring, plus a few.
    largest=${page_rings##*,}
    case $largest in *G) need=$(( ${largest%G} * 512 + 8 )) ;; *M) need=$(( ${largest%M} / 2 + 8 )) ;; esac
    huge_dir=/sys/kernel/mm/hugepages/hugepages-2048kB
    if [ "$(id -u)" -eq 0 ]; then
      hugepages_before=$(cat /proc/sys/vm/nr_hugepages)
      echo $(( hugepages_before + need )) >/proc/sys/vm/nr_hugepages
      echo "bench: /proc/sys/vm/nr_hugepages $hugepages_before -> $(cat /proc/sys/vm/nr_hugepages) for this part"
    fi
    free_pages=$(( $(cat $huge_dir/free_hugepages) - $(cat $huge_dir/resv_hugepages) ))
    [ "$free_pages" -ge "$need" ] ||
      fail "the pages part needs $need free 2 MiB huge pages, $free_pages are (run as root, or raise /proc/sys/vm/nr_hugepages)"
    rc=0
    { header pages; bazel-bin/bench/ring_bench --pages-sweep --rates $page_rates --ring-sizes $page_rings \
        "${page_args[@]}" --json "$out/pages.json"; } | tee "$out/pages.txt" || rc=$?
    restore_hugepages
    [ $rc -eq 0 ] || fail "ring_bench --pages-sweep exited $rc"
    { header pages; python3 scripts/bench-report.py pages "$out/pages.json" -; } >"$out/pages-summary.txt"
    cat "$out/pages-summary.txt"
    end pages
  fi
  # ======================= host: END =========================

  if want qemu; then
    begin "QEMU (emulated: absolute rates are TCG's; compare the two paths at equal rates)"
    # Rising until neither path has a loss-free run at two rates in a row (the
    # guest stops there; add rates to the list if both still pass at its end).
    rates=${SRING_BENCH_QEMU_RATES:-"20M 30M 40M 50M 60M 80M 100M 150M 200M 300M 400M 600M 800M"}
    [ $quick = 1 ] && rates=${SRING_BENCH_QEMU_RATES:-"20M 60M"}
    qemu_log=test-logs/bench-qemu-console.log
    if ! tests/qemu/run-qemu-tests.sh --bench $rates >"$qemu_log" 2>&1; then
      tail -n 40 "$qemu_log" >&2
      fail "the QEMU benchmark boot failed ($qemu_log)"
    fi
    { header qemu; grep -E '^BENCH' "$qemu_log"; } >"$out/qemu-raw.txt"
    grep -q '^BENCH path=' "$out/qemu-raw.txt" || fail "the QEMU benchmark printed no BENCH lines ($qemu_log)"
    python3 scripts/bench-report.py qemu "$out/qemu-raw.txt" "$out/qemu" "$command_line"
    cat "$out/qemu.txt"
    end qemu
  fi
  # qemu-rings: in QEMU, the kernel ring of 4 MiB to 1 GiB (4 KiB user
  # mappings: Debian's 6.1 maps no PMDs for a char device) read in place
  # against read() at 20, 200 and 1000 MS/s (the ABI's highest), 3
  # interleaved pairs per cell (tests/qemu/run-qemu-tests.sh --bench-rings;
  # raw lines in docs/bench/qemu-rings-raw.txt). About 6 minutes.
  if want qemu-rings; then
    begin "QEMU ring sizes: the kernel ring's consumer CPU per GB and verified GB/s against its size (emulated)"
    rings_args=(); [ $quick = 1 ] && rings_args=(quick)
    qemu_log=test-logs/bench-qemu-rings-console.log
    if ! tests/qemu/run-qemu-tests.sh --bench-rings "${rings_args[@]}" >"$qemu_log" 2>&1; then
      tail -n 40 "$qemu_log" >&2
      fail "the QEMU ring-size boot failed ($qemu_log)"
    fi
    { header qemu-rings; grep -E '^BENCH' "$qemu_log"; } >"$out/qemu-rings-raw.txt"
    grep -q '^BENCH ring=' "$out/qemu-rings-raw.txt" || fail "the QEMU ring-size boot printed no BENCH lines ($qemu_log)"
    python3 scripts/bench-report.py qemu-rings "$out/qemu-rings-raw.txt" "$out/qemu-rings" "$command_line"
    cat "$out/qemu-rings.txt"
    end qemu-rings
  fi
  # qemu-dma: the same sweep with the producer outside the guest: the DMA
  # model on this host writes the samples into guest RAM
  # (tests/qemu/guest-bench-dma.sh). "limit" adds rates at 60-110% of the
  # verify-only limit the guest measures first, where the 80% goal is
  # decided; the guest stops after two rates in a row with no loss-free
  # run of either path.
  if want qemu-dma; then
    begin "QEMU, producer outside the guest (DMA model): mmap + eventfd against read(), against the verify-only limit (emulated)"
    # Steps of 15-25% up to 400 MS/s: the highest loss-free rates, and so
    # their ratio, are only as fine as the grid.
    dma_rates=${SRING_BENCH_QEMU_DMA_RATES:-"20M 30M 40M 50M 60M 70M 85M 100M 120M 150M 175M 200M 230M 260M 300M 350M 400M 500M 600M 800M 1G limit"}
    [ $quick = 1 ] && dma_rates=${SRING_BENCH_QEMU_DMA_RATES:-"20M 200M"}
    qemu_log=test-logs/bench-qemu-dma-console.log
    if ! tests/qemu/run-qemu-tests.sh --bench-dma $dma_rates >"$qemu_log" 2>&1; then
      tail -n 40 "$qemu_log" >&2
      fail "the QEMU DMA benchmark boot failed ($qemu_log)"
    fi
    { header qemu-dma; grep -E '^(BENCH|VERIFY_LIMIT)' "$qemu_log"; } >"$out/qemu-dma-raw.txt"
    grep -q '^BENCH dev=digitizer path=' "$out/qemu-dma-raw.txt" || fail "the QEMU DMA benchmark printed no BENCH lines ($qemu_log)"
    grep -q '^VERIFY_LIMIT ' "$out/qemu-dma-raw.txt" || fail "the QEMU DMA benchmark printed no verify-only limit ($qemu_log)"
    python3 scripts/bench-report.py qemu-dma "$out/qemu-dma-raw.txt" "$out/qemu-dma" "$command_line"
    cat "$out/qemu-dma.txt"
    end qemu-dma
  fi

  if want record; then
    begin "recording: sring-record against dd on the same disk (MB/s; min / median / max)"
    record_args=(--reps 3 "" 5); [ $quick = 1 ] && record_args=(--reps 3 "" 1)
    { header record; scripts/bench-record.sh "${record_args[@]}"; } | tee "$out/record.txt"
    python3 scripts/bench-report.py record "$out/record.txt" "$out/record" "$command_line"
    end record
  fi

  if want net; then
    begin "streaming: NetPublisher against plain zmq_send, same message sizes (MB/s of samples)"
    net_args=(--mib-per-run 512 --reps 5); [ $quick = 1 ] && net_args=(--mib-per-run 32 --reps 3)
    { header net; bazel-bin/bench/net_bench "${net_args[@]}"; } | tee "$out/net.txt"
    python3 scripts/bench-report.py net "$out/net.txt" "$out/net" "$command_line"
    end net
  fi
else
  # Tables from the saved raw lines, with the command that made them.
  if [ -f "$out/qemu-raw.txt" ]; then
    made_by=$(sed -n 's/^# command: \(.*\)   (part: qemu)$/\1/p' "$out/qemu-raw.txt" | head -n1)
    python3 scripts/bench-report.py qemu "$out/qemu-raw.txt" "$out/qemu" "${made_by:-unknown}"
  fi
  if [ -f "$out/qemu-dma-raw.txt" ]; then
    made_by=$(sed -n 's/^# command: \(.*\)   (part: qemu-dma)$/\1/p' "$out/qemu-dma-raw.txt" | head -n1)
    python3 scripts/bench-report.py qemu-dma "$out/qemu-dma-raw.txt" "$out/qemu-dma" "${made_by:-unknown}"
  fi
  for p in record net; do
    if [ -f "$out/$p.txt" ]; then
      made_by=$(sed -n "s/^# command: \(.*\)   (part: $p)\$/\1/p" "$out/$p.txt" | head -n1)
      python3 scripts/bench-report.py $p "$out/$p.txt" "$out/$p" "${made_by:-unknown}"
    fi
  done
fi

# Plots, from whatever results are there.
begin "plots"
plots=()
# The host plot reads ring_bench's JSON layout (rows of ring_bytes,
# block_bytes, series, median); if that layout changes, the plot is skipped
# with a message (exit 3 of bench-report.py) until it follows.
# Only the plots of the parts run now (all of them with --plot-only); none
# after --quick, whose results are a check, not figures (one ring size).
drew() { [ $plot_only = 1 ] || { [ $quick = 0 ] && want "$1"; }; }
host_plot=0
if drew host && [ -f "$out/host.json" ]; then
  python3 scripts/bench-report.py host-plot "$out/host.json" "$out/host-plot.dat" && host_plot=1 || {
    rc=$?; [ $rc -eq 3 ] || fail "the host plot data could not be made"; }
fi
plot_failed=0
if [ $host_plot = 1 ]; then
  gnuplot <<GP || { echo "bench: WARNING: the host plot failed" >&2; plot_failed=1; }
set terminal pngcairo size 1000,420 font ",10"
set output "docs/throughput.png"
set multiplot layout 1,2 title "Host: verified throughput against block size (median of the runs; generating producer unless noted)"
set logscale x 2
set xlabel "block size (KiB)"
set ylabel "GB/s of samples, verified"
set key top left
set title "4 MiB ring (fits in cache)"
plot "$out/host-plot.dat" index 0 using 1:2 with linespoints title "sring (in place)", \
     "" index 0 using 1:3 with linespoints title "spsc\\\_queue batch", \
     "" index 0 using 1:4 with linespoints title "pipe", \
     "" index 0 using 1:7 with linespoints title "sring, DMA-like producer", \
     "" index 0 using 1:5 with lines dashtype 2 title "verify-only limit"
set title "256 MiB ring"
plot "$out/host-plot.dat" index 1 using 1:2 with linespoints title "sring (in place)", \
     "" index 1 using 1:3 with linespoints title "spsc\\\_queue batch", \
     "" index 1 using 1:4 with linespoints title "pipe", \
     "" index 1 using 1:7 with linespoints title "sring, DMA-like producer", \
     "" index 1 using 1:5 with lines dashtype 2 title "verify-only limit"
unset multiplot
GP
  plots+=(docs/throughput.png)
fi
if drew qemu && [ -f "$out/qemu-plot.dat" ]; then
  gnuplot <<GP || { echo "bench: WARNING: the QEMU plot failed" >&2; plot_failed=1; }
set terminal pngcairo size 1000,420 font ",10"
set output "docs/qemu-loss-free.png"
set multiplot layout 1,2 title "QEMU (emulated), mmap + eventfd against read(), 3 runs of each per rate, interleaved"
set xlabel "device rate (MS/s of 16-bit samples)"
set key top left
set title "delivered (median); filled = no sample lost in 3 of 3"
set ylabel "MB/s delivered"
plot "$out/qemu-plot.dat" index 0 using 1:2 with lines title "mmap + eventfd", \
     "" index 0 using 1:(\$3 > 0 ? \$2 : 1/0) with points pt 7 ps 1.5 notitle, \
     "" index 1 using 1:2 with lines title "read()", \
     "" index 1 using 1:(\$3 > 0 ? \$2 : 1/0) with points pt 7 ps 1.5 notitle, \
     x*2 with lines dashtype 3 title "offered"
set title "consumer CPU per GB delivered (median)"
set ylabel "CPU s per GB (user + system)"
plot "$out/qemu-plot.dat" index 0 using 1:4 with linespoints title "mmap + eventfd", \
     "" index 1 using 1:4 with linespoints title "read()"
unset multiplot
GP
  plots+=(docs/qemu-loss-free.png)
fi
end plots

echo
echo "wrote $(ls "$out"/*.json "$out"/*.txt 2>/dev/null | tr '\n' ' ')${plots[*]:+ ${plots[*]}}"
echo "bench: wall time per part: $(IFS=,; echo "${timings[*]}" | sed 's/,/, /g'); total $(( $(date +%s) - bench_started )) s"
# A plot that could not be drawn fails the run too, once everything else is written.
[ $plot_failed = 0 ] || fail "a plot could not be drawn"
