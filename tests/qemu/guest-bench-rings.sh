# sring.mode=benchrings (tests/qemu/run-qemu-tests.sh --bench-rings [quick]
# [SIZE...] [nopin]; scripts/bench.sh --parts qemu-rings reads it), sourced
# by guest-init.sh: the kernel ring's consumer cost against the ring's size.
#
# RUNS rounds; in each, every size in turn: the core and the simulated
# device loaded with sring_sim ring_size=N (a ring of page chunks, "pages
# chunks=... order10=..." in sysfs memory), then at each rate one pair of
# runs of bench_run (guest-bench.sh): mmap (in place through the ring's
# 4 KiB user mappings: Debian's 6.1 cannot map a char device's memory with
# PMDs), then read() (the kernel's copy, through its 4 KiB vmap). Both
# verify every sample. Sizes and paths alternate, so drift of the emulated
# machine (or of the host under it) hits every cell alike.
#
# The top rate is the ABI's highest, 1 GS/s (SRING_MAX_SAMPLE_RATE: the
# kernel refuses 2 GS/s). The higher rates are beyond what the emulated
# machine keeps up with: runs lose data (--allow-loss; every loss accounted
# for exactly), and the figures there are the loss fraction and what got
# verified.
#
# Prints BENCH_RING ring=BYTES load_s=... memory=... per load, and the BENCH
# lines of bench_run tagged ring=BYTES. Arguments (sring.args): quick (two
# sizes, 4 MiB and 1 GiB), sizes (e.g. 64M 1G) instead of the list, nopin.
. /guest-bench.sh
ring_sizes="4M 16M 64M 256M 1G"; ring_rates="20M 200M 1000M"; ring_runs=3; own_sizes=""
for a in $extra; do
  case "$a" in quick) ring_sizes="4M 1G" ;; nopin) pin=0 ;; [0-9]*[MG]) own_sizes="$own_sizes $a" ;; esac
done
[ -n "$own_sizes" ] && ring_sizes=$own_sizes
echo "BENCH_INFO cpus=$(nproc) pin=$pin duration=2 runs=$ring_runs kernel=$(uname -r) mem_total_kb=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
run=1
while [ $run -le $ring_runs ]; do
  for size in $ring_sizes; do
    case "$size" in
      *G) bytes=$(( ${size%G} << 30 )) ;;
      *M) bytes=$(( ${size%M} << 20 )) ;;
      *) bytes=$size ;;
    esac
    t0=$(cut -d' ' -f1 /proc/uptime)
    if ! load_sring ring_size=$bytes; then
      dmesg | tail -n 15; grep -E "^Mem" /proc/meminfo; fail "a $size ring of page chunks loads (round $run)"; continue
    fi
    t1=$(cut -d' ' -f1 /proc/uptime)
    memory=$(cat /sys/class/sring/sring0/memory)
    pass "a $size ring of page chunks loads ($memory, round $run)"
    echo "BENCH_RING ring=$bytes round=$run load_s=$(awk -v a=$t0 -v b=$t1 'BEGIN {printf "%.2f", b - a}') mem_free_kb=$(awk '/^MemFree/ {print $2}' /proc/meminfo) memory=$(echo $memory | tr ' ' ',')"
    bench_tag="ring=$bytes "
    for rate in $ring_rates; do
      bench_run mmap $rate $run
      bench_run read $rate $run
    done
    bench_tag=""
    unload_sring || fail "modules unload after the $size ring (round $run)"
  done
  run=$((run + 1))
done
check_dmesg "ring-size sweep"
