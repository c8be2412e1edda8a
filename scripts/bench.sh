#!/bin/bash
# Benchmarks (not part of the test suite): the host comparison of the ring
# against spsc_queue, a pipe and the memory limit, wake-up latencies, and in
# QEMU the driver through mmap + eventfd against read() over a rate sweep.
# Writes docs/bench/host.json, docs/bench/qemu.json, docs/bench/*.txt and the
# plots docs/throughput.png and docs/qemu-loss-free.png.
#
#   scripts/bench.sh [--quick | --plot-only]
#     --quick: one block size, fewer runs, host only
#     --plot-only: redraw the tables and plots from docs/bench/*.json and qemu-raw.txt
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
if ! command -v gnuplot >/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends gnuplot-nox >&2
fi
quick=0; [ "${1:-}" = "--quick" ] && quick=1
plot_only=0; [ "${1:-}" = "--plot-only" ] && plot_only=1   # redraw from the saved results
out=docs/bench
mkdir -p "$out"

if [ $plot_only = 0 ]; then
bazel build //bench:ring_bench 2>&1 | grep -E '^(ERROR|FAILED)' || true
echo "== host: ring vs spsc_queue vs pipe vs the verify-only limit (GB/s of verified samples; min / median / max)"
if [ $quick = 1 ]; then
  bazel-bin/bench/ring_bench --quick --runs 3 --json "$out/host.json" | tee "$out/host.txt"
  exit 0
fi
bazel-bin/bench/ring_bench --runs 5 --json "$out/host.json" | tee "$out/host.txt"

echo "== QEMU (emulated: absolute rates are TCG's, compare the two paths)"
rates="20M 40M 60M 80M 100M 150M 200M"
tests/qemu/run-qemu-tests.sh --bench $rates | grep '^BENCH' >"$out/qemu-raw.txt"
fi
python3 - "$out" <<'PY'
import json, statistics, sys
out = sys.argv[1]
runs = {}
for line in open(f"{out}/qemu-raw.txt"):
    fields = dict(kv.split("=", 1) for kv in line.split()[1:])
    rate = fields["rate"]
    value = int(rate[:-1]) * {"K": 10**3, "M": 10**6, "G": 10**9}[rate[-1]] if rate[-1] in "KMG" else int(rate)
    runs.setdefault((fields["path"], value), []).append(fields)
table, best = [], {}
for (path, rate), rs in sorted(runs.items()):
    lossless = all(r["lost"] == "0" and r["corrupted"] == "0" and r["rc"] == "0" for r in rs)
    mbps = [float(r["mbps"]) for r in rs]
    cpu = [float(r["cpu_s_per_gb"]) for r in rs]
    row = {"path": path, "rate": rate, "runs": len(rs), "loss_free_runs": sum(r["lost"] == "0" for r in rs),
           "loss_free": lossless, "mb_per_s_median": statistics.median(mbps),
           "mb_per_s_spread_pct": 100 * (max(mbps) - min(mbps)) / max(statistics.median(mbps), 1e-9),
           "cpu_s_per_gb_median": statistics.median(cpu)}
    table.append(row)
    if lossless:
        best[path] = max(best.get(path, 0), rate)
result = {"emulated": True, "rows": table, "highest_loss_free_rate": best}
mm, rd = best.get("mmap", 0), best.get("read", 0)
result["mmap_vs_read_loss_free"] = (mm / rd) if rd else None
json.dump(result, open(f"{out}/qemu.json", "w"), indent=2)
with open(f"{out}/qemu.txt", "w") as f:
    f.write("path  rate(MS/s)  loss-free runs  MB/s (median, spread)  CPU s/GB (median)   [emulated]\n")
    for r in table:
        f.write(f"{r['path']:5} {r['rate']/1e6:10.0f}  {r['loss_free_runs']}/{r['runs']:<13} "
                f"{r['mb_per_s_median']:8.1f} ±{r['mb_per_s_spread_pct']:4.0f}%        {r['cpu_s_per_gb_median']:6.2f}\n")
    f.write(f"highest loss-free rate: mmap {mm/1e6:.0f} MS/s, read() {rd/1e6:.0f} MS/s")
    f.write(f" -> {mm/rd:.1f}x\n" if rd else "\n")
    cpu = {p: statistics.median(r["cpu_s_per_gb_median"] for r in table if r["path"] == p and r["loss_free"]) for p in ("mmap", "read") if any(r["path"] == p and r["loss_free"] for r in table)}
    if len(cpu) == 2:
        f.write(f"CPU per GB over loss-free rates: mmap {cpu['mmap']:.2f} s, read() {cpu['read']:.2f} s -> read() costs {cpu['read']/cpu['mmap']:.1f}x\n")
# Data files for gnuplot.
with open(f"{out}/qemu-plot.dat", "w") as f:
    for path in ("mmap", "read"):
        f.write(f"# {path}\n")
        for r in table:
            if r["path"] == path:
                f.write(f"{r['rate']/1e6} {r['mb_per_s_median']} {1 if r['loss_free'] else 0}\n")
        f.write("\n\n")
host = json.load(open(f"{out}/host.json"))
# One line per block size: the median of each series (NaN where a series was not run).
cols = ["sring/generate", "spsc batch/generate", "pipe/generate", "verify-only",
        "spsc element/generate", "sring/memcpy", "spsc batch/memcpy", "pipe/memcpy", "read+sum"]
with open(f"{out}/host-plot.dat", "w") as f:
    f.write("# block_KiB " + " ".join(c.replace(" ", "_") for c in cols) + "\n")
    for ring in sorted({r["ring_bytes"] for r in host["throughput"]}):
        f.write(f"# ring {ring >> 20} MiB\n")
        for block in sorted({r["block_bytes"] for r in host["throughput"] if r["ring_bytes"] == ring}):
            med = {r["series"]: r["median"] for r in host["throughput"]
                   if r["ring_bytes"] == ring and r["block_bytes"] == block}
            f.write(f"{block >> 10} " + " ".join(str(med.get(c, "NaN")) for c in cols) + "\n")
        f.write("\n\n")
PY
cat "$out/qemu.txt"

gnuplot <<GP
set terminal pngcairo size 1000,420 font ",10"
set output "docs/throughput.png"
set multiplot layout 1,2 title "Host: verified throughput against block size (median of 5 runs; generating producer unless noted)"
set logscale x 2
set xlabel "block size (KiB)"
set ylabel "GB/s of samples, verified"
set key top left
set title "4 MiB ring (fits in cache)"
plot "$out/host-plot.dat" index 0 using 1:2 with linespoints title "sring (in place)", \
     "" index 0 using 1:3 with linespoints title "spsc\\\_queue batch", \
     "" index 0 using 1:4 with linespoints title "pipe", \
     "" index 0 using 1:7 with linespoints title "sring, memcpy producer", \
     "" index 0 using 1:5 with lines dashtype 2 title "verify-only limit"
set title "256 MiB ring"
plot "$out/host-plot.dat" index 1 using 1:2 with linespoints title "sring (in place)", \
     "" index 1 using 1:3 with linespoints title "spsc\\\_queue batch", \
     "" index 1 using 1:4 with linespoints title "pipe", \
     "" index 1 using 1:7 with linespoints title "sring, memcpy producer", \
     "" index 1 using 1:5 with lines dashtype 2 title "verify-only limit"
unset multiplot
set output "docs/qemu-loss-free.png"
set terminal pngcairo size 700,420 font ",10"
unset logscale x
set title "QEMU (emulated): delivered rate against the device rate; filled = no sample lost"
set xlabel "device rate (MS/s of 16-bit samples)"
set ylabel "MB/s delivered (median of 3)"
plot "$out/qemu-plot.dat" index 0 using 1:2 with lines title "mmap + eventfd", \
     "" index 0 using 1:(\$3 > 0 ? \$2 : 1/0) with points pt 7 ps 1.5 notitle, \
     "" index 1 using 1:2 with lines title "read()", \
     "" index 1 using 1:(\$3 > 0 ? \$2 : 1/0) with points pt 7 ps 1.5 notitle, \
     x*2 with lines dashtype 3 title "offered"
GP
echo "wrote $out/host.json $out/qemu.json docs/throughput.png docs/qemu-loss-free.png"
