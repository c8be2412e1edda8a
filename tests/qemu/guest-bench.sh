# The measuring run of the QEMU benchmark boots, sourced by guest-init.sh
# (sring.mode=bench: the rate sweep), guest-bench-rings.sh
# (sring.mode=benchrings: the ring-size sweep) and guest-bench-dma.sh
# (sring.mode=benchdma: the host-side DMA model). bench_run PATH RATE RUN
# runs acquire on $bench_device (default /dev/sring0) for 2 s (blocks of
# 64 KiB, --allow-loss, --read for PATH read; both paths verify every sample
# with count_pattern_mismatches) and prints one line
# "BENCH [$bench_tag]path=... rate=... run=... ...[ $bench_fields]"
# (scripts/bench-report.py reads it). pin=0 leaves placement to the
# scheduler; pin=1 is the simulated device's placement below.
# For another device:
#   bench_cpu=N       acquire pinned to CPU N from its start (instead of pin's
#                     move from CPU 0 to CPU 1, which is about sring_sim's hrtimer)
#   bench_hook=FUNC   called as "FUNC before" and "FUNC after" around each run;
#                     what it leaves in bench_fields ("key=value ...") ends the line
pin=${pin:-1}
bench_device=${bench_device:-/dev/sring0}
# Placement: the simulated device is an hrtimer in softirq context, on the
# CPU that started it. Without IRQ time accounting (Debian's kernel has
# none) softirq work is charged to whatever task it interrupts, so a
# consumer sharing the producer's CPU would pay for some of the
# producer's pattern filling, and the busier path (read()) more often. So
# acquire starts on CPU 0 (the timer is armed there and stays there: a
# restarted hrtimer does not migrate) and is moved to CPU 1 once the
# device runs: the consumer's CPU time is then its own (user + kernel,
# read()'s copy included: acquire's getrusage(RUSAGE_SELF) over all its
# threads, from after the start to the end of the drain).
[ -w /proc/sys/kernel/timer_migration ] && echo 0 >/proc/sys/kernel/timer_migration
# Where the device's work ran: HRTIMER softirqs per CPU (/proc/softirqs)
# and softirq time per CPU in ticks (/proc/stat), as "cpu0,cpu1".
hrtimer_softirqs() { awk '$1 == "HRTIMER:" {print $2 "," $3}' /proc/softirqs; }
softirq_ticks() { awk '$1 == "cpu0" {a = $8} $1 == "cpu1" {b = $8} END {print a "," b}' /proc/stat; }
delta() { echo "$1 $2" | awk -F'[ ,]' '{print $3 - $1 "," $4 - $2}'; }
bench_run() {  # bench_run PATH RATE RUN
  flag=""; [ "$1" = read ] && flag="--read"
  bench_fields=""
  [ -n "${bench_hook:-}" ] && $bench_hook before
  h0=$(hrtimer_softirqs); s0=$(softirq_ticks)
  t0=$(cut -d' ' -f1 /proc/uptime)
  if [ -n "${bench_cpu:-}" ]; then
    taskset -c $bench_cpu /acquire --device $bench_device --rate $2 --duration 2 --block-size 64K --allow-loss $flag \
      >/tmp/b.log 2>&1
    rc=$?
    moved=1
  elif [ $pin = 1 ]; then
    taskset 1 /acquire --device $bench_device --rate $2 --duration 2 --block-size 64K --allow-loss $flag >/tmp/b.log 2>&1 &
    apid=$!
    # Once the device runs (its timer now lives on CPU 0), every thread of
    # acquire to CPU 1.
    n=0
    while [ "$(cat /sys/class/sring/${bench_device##*/}/state)" != running ] && [ $n -lt 2000 ] && [ -d /proc/$apid ]; do
      n=$((n + 1))
    done
    moved=1
    for t in /proc/$apid/task/*; do taskset -p 2 "${t##*/}" >/dev/null 2>&1 || moved=0; done
    wait $apid
    rc=$?
  else
    moved=0
    /acquire --device $bench_device --rate $2 --duration 2 --block-size 64K --allow-loss $flag >/tmp/b.log 2>&1
    rc=$?
  fi
  t1=$(cut -d' ' -f1 /proc/uptime)
  h1=$(hrtimer_softirqs); s1=$(softirq_ticks)
  samples=$(awk '/^  samples/ {gsub(",", "", $2); print $2}' /tmp/b.log)
  lost=$(awk '/^  lost samples/ {gsub(",", "", $3); print $3}' /tmp/b.log)
  corrupted=$(awk '/^  corrupted/ {gsub(",", "", $2); print $2}' /tmp/b.log)
  mbps=$(awk '/^  throughput/ {print $2}' /tmp/b.log)
  secs=$(awk '/^  throughput/ {print $7}' /tmp/b.log)
  cpu=$(awk '/^  cpu/ {print $2}' /tmp/b.log)
  cpu_gb=$(awk '/^  cpu/ {print $4}' /tmp/b.log | tr -d '(')
  [ $rc -ne 0 ] && [ $rc -ne 1 ] && sed 's/^/  acquire: /' /tmp/b.log
  # The hook sees samples, lost, rc and /tmp/b.log of this run.
  [ -n "${bench_hook:-}" ] && $bench_hook after
  echo "BENCH ${bench_tag:-}path=$1 rate=$2 run=$3 rc=$rc samples=${samples:-x} lost=${lost:-x} corrupted=${corrupted:-x} mbps=${mbps:-0} seconds=${secs:-0} cpu_s=${cpu:-0} cpu_s_per_gb=${cpu_gb:-0} pinned=$moved wall=$(awk -v a=$t0 -v b=$t1 'BEGIN {printf "%.2f", b - a}') hrtimer_softirqs=$(delta "$h0" "$h1") softirq_ticks=$(delta "$s0" "$s1")${bench_fields:+ $bench_fields}"
  # Loss-free: exit 0 and nothing lost or corrupted.
  [ $rc -eq 0 ] && [ "${lost:-x}" = 0 ] && [ "${corrupted:-x}" = 0 ]
}

# rate_done RATE OK_MMAP OK_READ: prints the rate's verdict line; false once
# two rates in a row had no loss-free run of either path, which ends the
# sweep (losses at high rates come from emulation stalls and are erratic:
# one rate without a loss-free run may be followed by one with).
failed_rates=0
rate_done() {
  echo "BENCH_RATE rate=$1 mmap_loss_free=$2/3 read_loss_free=$3/3"
  if [ "$2" = 0 ] && [ "$3" = 0 ]; then
    failed_rates=$((failed_rates + 1))
  else
    failed_rates=0
  fi
  if [ $failed_rates -ge 2 ]; then
    echo "BENCH_INFO sweep ends: no loss-free run of either path at two rates in a row"
    return 1
  fi
}
