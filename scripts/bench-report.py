#!/usr/bin/env python3
"""Tables and JSON from the raw lines of scripts/bench.sh's parts.

  bench-report.py qemu   RAW OUT_PREFIX COMMAND   (BENCH lines of run-qemu-tests.sh --bench)
  bench-report.py qemu-rings RAW OUT_PREFIX COMMAND  (BENCH lines of run-qemu-tests.sh --bench-rings)
  bench-report.py qemu-dma RAW OUT_PREFIX COMMAND (BENCH and VERIFY_LIMIT lines of run-qemu-tests.sh --bench-dma)
  bench-report.py record RAW OUT_PREFIX COMMAND   (RAW lines of scripts/bench-record.sh)
  bench-report.py net    RAW OUT_PREFIX COMMAND   (RAW lines of bench/net_bench)
  bench-report.py host-plot HOST_JSON OUT_DAT     (gnuplot data from ring_bench's JSON)
  bench-report.py rates RATES_JSON OUT_TXT        (ring_bench --rates [--candidates]: quiet and noisy; OUT_TXT - : stdout)
  bench-report.py pages PAGES_JSON OUT_TXT        (ring_bench --pages-sweep: a markdown table, 4 KiB against 2 MiB)

Writes OUT_PREFIX.json, and for qemu also OUT_PREFIX.txt and OUT_PREFIX-plot.dat
(qemu-rings and qemu-dma: OUT_PREFIX.txt too)
(record and net print their own tables; bench.sh keeps them as .txt).
Every figure is min / median / max over the runs, and every ratio is taken
per run pair (the two runs next to each other) before its spread.
"""
import json
import statistics
import sys



def number_or_none(text):
    """A field's number, or None if it is missing or not a number."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None

def mmm(values):
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


def fell_behind(rows):
    """The qemu reports' line on rates the device did not keep (not counted
    loss-free), or "" if it kept them all."""
    short = [f"{row['rate'] / 1e6:.0f} MS/s {p} ({row[p]['produced_fraction']['min']:.0%})" for row in rows
             for p in ("mmap", "read") if row[p]["produced_fraction"] and row[p]["produced_fraction"]["min"] < 0.9]
    if not short:
        return ""
    return "the device made less than 90% of the rate (it fell behind; not counted loss-free): " + ", ".join(short)


def fmt_mmm(m, digits=1):
    if m is None:
        return "-"
    return f"{m['median']:.{digits}f} ({m['min']:.{digits}f}-{m['max']:.{digits}f})"


def write_text(lines, out_txt):
    """The lines to OUT_TXT, or to stdout for '-'."""
    text = "\n".join(lines) + "\n"
    if out_txt == "-":
        sys.stdout.write(text)
    else:
        with open(out_txt, "w") as f:
            f.write(text)


def parse_rate(text):
    mult = {"K": 10**3, "k": 10**3, "M": 10**6, "G": 10**9}
    return int(float(text[:-1]) * mult[text[-1]]) if text[-1] in mult else int(text)


def fields(line):
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


def qemu_read_raw(raw):
    """The BENCH_INFO settings and the BENCH runs by rate and path of a
    rate sweep (sring.mode=bench or benchdma)."""
    runs, info = {}, {}
    for line in open(raw):
        first = line.split(" ", 1)[0]
        if first == "BENCH_INFO":
            info.update(fields(line))
            if "sweep ends" in line:
                info["sweep_end"] = line.split("sweep ends:", 1)[1].strip()
        elif first == "BENCH":
            f = fields(line)
            runs.setdefault(parse_rate(f["rate"]), {}).setdefault(f["path"], []).append(f)
    return runs, info


def qemu_rows(runs, duration, max_seconds=None):
    """Per rate and path: loss-free runs, MB/s and CPU s/GB (min / median /
    max), the read/mmap CPU ratio per run pair; and the highest rate
    loss-free in 3 of 3 runs of each path. With max_seconds, a run that
    took longer (acquire's start to the end of its drain) is not loss-free:
    it fell behind and rode the ring's slack."""

    def loss_free(r, rate):
        # Nothing lost or corrupted, exit 0, and the device really offered
        # the rate (made at least 90% of rate x duration: under emulation
        # the simulated device itself can fall behind, which loses nothing).
        if r.get("rc") != "0" or r.get("lost") != "0" or r.get("corrupted") != "0":
            return False
        if max_seconds is not None and float(r.get("seconds", "0")) > max_seconds:
            return False
        made = produced_fraction(r, rate)
        return made is None or made >= 0.9

    def produced_fraction(r, rate):
        # None for raw lines from before samples= was printed.
        if "samples" not in r:
            return None
        try:
            return (int(r["samples"]) + int(r["lost"])) / (rate * duration)
        except ValueError:
            return 0.0

    rows = []
    best = {"mmap": None, "read": None}
    for rate in sorted(runs):
        row = {"rate": rate, "offered_mb_per_s": rate * 2 / 1e6}
        for path in ("mmap", "read"):
            rs = sorted(runs[rate].get(path, []), key=lambda r: int(r["run"]))
            lf = [loss_free(r, rate) for r in rs]
            row[path] = {
                "runs": len(rs),
                "loss_free_runs": sum(lf),
                "mb_per_s": mmm([float(r["mbps"]) for r in rs]),
                "cpu_s_per_gb": mmm([float(r["cpu_s_per_gb"]) for r in rs]),
                "cpu_s_per_gb_loss_free_runs": mmm([float(r["cpu_s_per_gb"]) for r, ok in zip(rs, lf) if ok]),
                "produced_fraction": mmm([x for x in (produced_fraction(r, rate) for r in rs) if x is not None]),
                "lost_samples": [int(r["lost"]) if r["lost"].isdigit() else None for r in rs],
                "pinned_runs": sum(r.get("pinned") == "1" for r in rs),
            }
            if rs and all(lf) and len(rs) >= 3:
                best[path] = rate
        pairs = []
        by_run = {p: {r["run"]: r for r in runs[rate].get(p, [])} for p in ("mmap", "read")}
        for run in sorted(set(by_run["mmap"]) & set(by_run["read"]), key=int):
            m, r = float(by_run["mmap"][run]["cpu_s_per_gb"]), float(by_run["read"][run]["cpu_s_per_gb"])
            if m > 0 and r > 0:
                pairs.append(r / m)
        row["cpu_ratio_read_over_mmap"] = mmm(pairs)
        row["cpu_ratio_read_over_mmap_per_pair"] = pairs
        rows.append(row)
    return rows, best


def qemu(raw, prefix, command):
    runs, info = qemu_read_raw(raw)
    duration = float(info.get("duration", "2"))
    rows, best = qemu_rows(runs, duration)
    result = {
        "command": command,
        "emulated": True,
        "info": info,
        "duration_s": duration,
        "criterion": "loss-free run: acquire exit 0, 0 samples lost, 0 corrupted, device made >= 90% of rate x duration",
        "rows": rows,
        "highest_loss_free_3_of_3": best,
        "highest_loss_free_ratio_mmap_over_read": (best["mmap"] / best["read"]) if best["mmap"] and best["read"] else None,
    }
    json.dump(result, open(prefix + ".json", "w"), indent=2)

    with open(prefix + ".txt", "w") as f:
        f.write(f"# command: {command}\n")
        f.write(f"# QEMU (TCG, emulated: absolute rates are the emulator's); {info.get('cpus', '?')} vCPUs, "
                f"kernel {info.get('kernel', '?')}, consumer pinned away from the device's CPU: "
                f"{'yes' if info.get('pin') == '1' else 'no'}\n")
        f.write(f"# acquire --device /dev/sring0 --block-size 64K --duration {duration:g} --allow-loss [--read];"
                " both paths verify every sample with count_pattern_mismatches\n")
        f.write("# per rate 3 runs of each path, interleaved mmap, read, mmap, read, ...; cells: median (min-max)\n")
        f.write("# CPU s/GB: acquire's user + system CPU (all threads, read()'s copy included) per GB of samples delivered\n")
        f.write("# ratio: read/mmap CPU s/GB of the runs next to each other, median (min-max) of the 3 pairs\n")
        f.write(f"# {result['criterion']}\n\n")
        f.write(f"{'MS/s':>5} {'offered':>8} | {'mmap ok':>7} {'mmap MB/s':>20} {'mmap CPU s/GB':>20} | "
                f"{'read ok':>7} {'read MB/s':>20} {'read CPU s/GB':>20} | {'CPU read/mmap':>20}\n")
        for row in rows:
            m, r = row["mmap"], row["read"]
            f.write(f"{row['rate'] / 1e6:5.0f} {row['offered_mb_per_s']:8.0f} | "
                    f"{m['loss_free_runs']}/{m['runs']:<5} {fmt_mmm(m['mb_per_s']):>20} {fmt_mmm(m['cpu_s_per_gb'], 2):>20} | "
                    f"{r['loss_free_runs']}/{r['runs']:<5} {fmt_mmm(r['mb_per_s']):>20} {fmt_mmm(r['cpu_s_per_gb'], 2):>20} | "
                    f"{fmt_mmm(row['cpu_ratio_read_over_mmap'], 2) + 'x':>20}\n")
        short = fell_behind(rows)
        if short:
            f.write("\n" + short + "\n")
        f.write("\nhighest rate loss-free in 3 of 3 runs: "
                + ", ".join(f"{p} {best[p] / 1e6:.0f} MS/s" if best[p] else f"{p} none" for p in ("mmap", "read")))
        ratio = result["highest_loss_free_ratio_mmap_over_read"]
        f.write(f" -> mmap/read {ratio:.2f}x\n" if ratio else "\n")
        if "sweep_end" in info:
            f.write(f"the sweep ended: {info['sweep_end']}\n")
        else:
            f.write("(the sweep ended with the rate list, not with both paths failing: add rates)\n")

    with open(prefix + "-plot.dat", "w") as f:
        for path in ("mmap", "read"):
            f.write(f"# {path}: rate_MS/s delivered_MB/s_median loss_free_3_of_3 cpu_s_per_gb_median\n")
            for row in rows:
                p = row[path]
                if p["runs"]:
                    ok = 1 if p["loss_free_runs"] == p["runs"] and p["runs"] >= 3 else 0
                    f.write(f"{row['rate'] / 1e6} {p['mb_per_s']['median']} {ok} {p['cpu_s_per_gb']['median']}\n")
            f.write("\n\n")


def qemu_dma(raw, prefix, command):
    """run-qemu-tests.sh --bench-dma: the same sweep as qemu's with the
    producer outside the guest (the host's sring-dma-model writing into
    guest RAM, sring_digitizer.ko), plus the verify-only limit of the same
    boot (first and last), the interrupts per GB and the model's counters,
    and the issue's two goals: mmap's highest loss-free rate at least 3x
    read()'s, and mmap's throughput there at least 80% of the verify-only
    limit."""
    runs, info = qemu_read_raw(raw)
    limits = {}
    for line in open(raw):
        if line.startswith("VERIFY_LIMIT "):
            f = fields(line)
            limits[f.get("when", str(len(limits)))] = {k: (float(v) if v.replace(".", "", 1).isdigit() else v)
                                                       for k, v in f.items()}
    duration = float(info.get("duration", "2"))
    # Kept up: drained within 50 ms of the stop. A consumer slower than the
    # rate loses nothing in a 2 s run while the ring's slack lasts (16 MiB
    # is 27 ms at 300 MS/s), but ends its drain late.
    max_seconds = duration + 0.05
    rows, best = qemu_rows(runs, duration, max_seconds)
    ring_bytes = float(info.get("ring_bytes", "0"))


    # What qemu_rows does not know: the driver's and the model's side, per rate and path.
    for row in rows:
        for path in ("mmap", "read"):
            rs = runs[row["rate"]].get(path, [])
            d = row[path]
            d["loss_free_but_behind"] = sum(r.get("rc") == "0" and r.get("lost") == "0" and r.get("corrupted") == "0"
                                            and (number_or_none(r.get("seconds")) or 0) > max_seconds for r in rs)
            # Runs that lost samples while the ring never filled: the model
            # had no descriptor (the driver, on the interrupt's CPU, late to
            # post), not a consumer behind.
            d["lossy_runs"] = sum(r.get("lost") not in ("0", None) for r in rs)
            d["lossy_runs_ring_not_full"] = sum(
                r.get("lost") not in ("0", None) and number_or_none(r.get("high_water")) is not None and ring_bytes > 0
                and number_or_none(r["high_water"]) < 0.9 * ring_bytes for r in rs)
            d["irqs_per_gb"] = mmm([x for x in (number_or_none(r.get("irqs_per_gb")) for r in rs) if x is not None and x > 0])
            d["model_blocks_dropped"] = [int(r["model_dropped"]) if str(r.get("model_dropped", "")).lstrip("-").isdigit()
                                         else None for r in rs]
            d["model_blocks_written"] = [int(r["model_written"]) if str(r.get("model_written", "")).lstrip("-").isdigit()
                                         else None for r in rs]
            busy = []
            irq_on_consumer = 0
            for r in rs:
                ticks = [number_or_none(x) for x in r.get("busy_ticks", "").split(",")]
                gb = (number_or_none(r.get("samples")) or 0) * 2 / 1e9
                if len(ticks) == 2 and None not in ticks and gb > 0:
                    busy.append(sum(ticks) / 100 / gb)  # USER_HZ ticks
                irqs = [number_or_none(x) for x in r.get("irqs", "").split(",")]
                cpu = r.get("irq_cpu")
                if len(irqs) == 2 and None not in irqs and cpu in ("0", "1") and irqs[1 - int(cpu)]:
                    irq_on_consumer += 1
            d["guest_busy_s_per_gb"] = mmm(busy)
            d["runs_with_interrupts_on_the_consumers_cpu"] = irq_on_consumer

    def mbps_at(rate, path):
        for row in rows:
            if row["rate"] == rate and row[path]["mb_per_s"]:
                return row[path]["mb_per_s"]["median"]
        return None

    two_of_three = {p: max((row["rate"] for row in rows if row[p]["runs"] >= 3 and row[p]["loss_free_runs"] >= 2),
                           default=None) for p in ("mmap", "read")}
    cpu_at_best = next((row["mmap"]["cpu_s_per_gb_loss_free_runs"]["median"] for row in rows
                        if row["rate"] == best["mmap"] and row["mmap"]["cpu_s_per_gb_loss_free_runs"]), None)
    lowest = rows[0]["rate"] if rows else None
    highest_tried = rows[-1]["rate"] if rows else None
    ratio = best["mmap"] / best["read"] if best["mmap"] and best["read"] else None
    # Goal 1: mmap's highest loss-free rate >= 3x read()'s. With read() never
    # loss-free, its highest is below the lowest rate tried.
    if best["mmap"] and best["read"]:
        goal1 = ratio >= 3
        goal1_text = f"{best['mmap'] / 1e6:g} / {best['read'] / 1e6:g} MS/s = {ratio:.2f}x"
    elif best["mmap"] and lowest:
        goal1 = best["mmap"] >= 3 * lowest
        goal1_text = (f"read() loss-free at no rate tried (below {lowest / 1e6:g} MS/s): "
                      f"more than {best['mmap'] / lowest:.2f}x")
    else:
        goal1 = False
        goal1_text = "mmap loss-free at no rate tried"
    # Goal 2: mmap's delivered MB/s at its highest loss-free rate against the
    # verify-only limit of the same boot; judged against the higher of the
    # two limit runs (the strict reading), both shown.
    mmap_mbps = mbps_at(best["mmap"], "mmap") if best["mmap"] else None
    limit_values = {k: v["mbps"] for k, v in limits.items() if "mbps" in v}
    limit_max = max(limit_values.values()) if limit_values else None
    fraction = mmap_mbps / limit_max if mmap_mbps and limit_max else None
    fractions = {k: (mmap_mbps / v if mmap_mbps and v else None) for k, v in limit_values.items()}
    goal2 = fraction is not None and fraction >= 0.8
    mmap_capped = best["mmap"] is not None and best["mmap"] == highest_tried and "sweep_end" not in info
    result = {
        "command": command,
        "emulated": True,
        "producer": "outside the guest: sring-dma-model on the host writing into guest RAM (ivshmem-doorbell, MSI-X)",
        "info": info,
        "duration_s": duration,
        "criterion": "loss-free run: acquire exit 0, 0 samples lost, 0 corrupted, device made >= 90% of rate x duration, "
                     f"and kept up: acquire's run (start to the end of its drain) at most {max_seconds:g} s",
        "verify_only_limit": limits,
        "rows": rows,
        "highest_loss_free_3_of_3": best,
        "highest_loss_free_ratio_mmap_over_read": ratio,
        "mmap_mb_per_s_at_highest_loss_free": mmap_mbps,
        "mmap_fraction_of_verify_only_limit": fraction,
        "mmap_fraction_of_verify_only_limit_per_limit_run": fractions,
        "mmap_loss_free_at_the_highest_rate_tried": mmap_capped,
        "highest_loss_free_2_of_3": two_of_three,
        "mmap_cpu_s_per_gb_at_highest_loss_free": cpu_at_best,
        "goals": {
            "mmap_loss_free_at_least_3x_read": {"met": goal1, "detail": goal1_text},
            "mmap_within_80_percent_of_verify_only_limit": {"met": goal2, "fraction": fraction},
        },
    }
    json.dump(result, open(prefix + ".json", "w"), indent=2)

    def verdict(ok):
        return "MET" if ok else "NOT MET"

    lines = [f"# command: {command}",
             f"# QEMU (TCG, emulated: absolute rates are the emulator's); {info.get('cpus', '?')} vCPUs, "
             f"kernel {info.get('kernel', '?')}",
             "# the producer outside the guest: sring-dma-model (a host process) writes each 64 KiB block straight"
             " into the ring's slot in guest RAM and completes by MSI-X; sring_digitizer.ko commits from the interrupt",
             f"# ring {int(info.get('ring_bytes', '0')) >> 20} MiB ({info.get('memory', '?').replace(',', ' ')}), "
             f"queue_depth {info.get('queue_depth', '?')}, coalesce {info.get('coalesce_blocks', '?')} blocks or "
             f"{info.get('coalesce_timeout_us', '?')} us; completion IRQ {info.get('irq', '?')} on CPU "
             f"{info.get('irq_cpu', '?')}, acquire pinned to CPU "
             f"{info.get('consumer_cpu', '?') if info.get('pin') == '1' else 'none (nopin)'}",
             f"# acquire --device /dev/<ring> --block-size 64K --duration {duration:g} --allow-loss [--read];"
             " both paths verify every sample with count_pattern_mismatches",
             "# per rate 3 runs of each path, interleaved mmap, read, mmap, read, ...; cells: median (min-max)",
             "# CPU s/GB: acquire's user + system CPU (all threads, read()'s copy included) per GB delivered; the"
             " driver's completion work runs in its interrupt thread on the interrupt's CPU, the other one",
             "# IRQ/GB: completion interrupts the guest took per GB delivered (the driver's cost);"
             " busy s/GB: both vCPUs' busy ticks (/proc/stat, 10 ms) per GB",
             "# ratio: read/mmap CPU s/GB of the runs next to each other, median (min-max) of the 3 pairs",
             f"# {result['criterion']}",
             ""]
    lines.append("verify-only limit (kernel_test verify-limit: count_pattern_mismatches over 64 KiB slots of a buffer "
                 "the ring's size, one thread, the consumer's CPU), same boot:")
    for when in ("first", "last"):
        v = limits.get(when)
        if v:
            pages = {"4k": ", 4 KiB pages like the ring's mapping"}.get(v.get("pages"), "")
            lines.append(f"  {when:<5} {v['mbps']:8.1f} MB/s  ({v['samples_per_s'] / 1e6:.1f} MS/s, "
                         f"{v.get('cpu_s', 0):.2f} s CPU over {v.get('seconds', 0):.2f} s{pages})")
        else:
            lines.append(f"  {when:<5} -")
    lines.append("")
    lines.append(f"{'MS/s':>5} {'offered':>7} | {'mmap ok':>7} {'mmap MB/s':>20} {'mmap CPU s/GB':>19} "
                 f"{'IRQ/GB':>7} {'busy s/GB':>9} | {'read ok':>7} {'read MB/s':>20} {'read CPU s/GB':>19} "
                 f"{'IRQ/GB':>7} {'busy s/GB':>9} | {'CPU read/mmap':>19} | {'model drops m/r':>15}")

    def med(m, digits=0):
        return "-" if m is None else f"{m['median']:.{digits}f}"

    for row in rows:
        m, r = row["mmap"], row["read"]
        drops = "/".join(str(sum(x for x in row[p]["model_blocks_dropped"] if x)) for p in ("mmap", "read"))
        lines.append(f"{row['rate'] / 1e6:5.0f} {row['offered_mb_per_s']:7.0f} | "
                     f"{m['loss_free_runs']}/{m['runs']:<5} {fmt_mmm(m['mb_per_s']):>20} {fmt_mmm(m['cpu_s_per_gb'], 2):>19} "
                     f"{med(m['irqs_per_gb']):>7} {med(m['guest_busy_s_per_gb'], 2):>9} | "
                     f"{r['loss_free_runs']}/{r['runs']:<5} {fmt_mmm(r['mb_per_s']):>20} {fmt_mmm(r['cpu_s_per_gb'], 2):>19} "
                     f"{med(r['irqs_per_gb']):>7} {med(r['guest_busy_s_per_gb'], 2):>9} | "
                     f"{fmt_mmm(row['cpu_ratio_read_over_mmap'], 2) + 'x':>19} | {drops:>15}")
    short = fell_behind(rows)
    if short:
        lines += ["", short]
    behind = [f"{row['rate'] / 1e6:.0f} MS/s {p} ({row[p]['loss_free_but_behind']})" for row in rows
              for p in ("mmap", "read") if row[p]["loss_free_but_behind"]]
    if behind:
        lines += ["", f"runs that lost nothing but ended their drain after {max_seconds:g} s (behind the rate, on the "
                  "ring's slack; not counted loss-free): " + ", ".join(behind)]
    starved = [f"{row['rate'] / 1e6:.0f} MS/s {p} {row[p]['lossy_runs_ring_not_full']}/{row[p]['lossy_runs']}"
               for row in rows for p in ("mmap", "read") if row[p]["lossy_runs"]]
    if starved and any(r["mmap"]["lossy_runs_ring_not_full"] or r["read"]["lossy_runs_ring_not_full"] for r in rows):
        lines += ["", "runs with losses while the ring stayed below 90% full (the model found no descriptor posted: "
                  "the driver late on the interrupt's CPU, not the consumer), of the runs with losses: "
                  + ", ".join(starved)]
    stray = [f"{row['rate'] / 1e6:.0f} MS/s {p}" for row in rows for p in ("mmap", "read")
             if row[p]["runs_with_interrupts_on_the_consumers_cpu"]]
    if stray:
        lines += ["", "runs where some completion interrupts landed on the consumer's CPU: " + ", ".join(stray)]
    lines.append("")
    lines.append("highest rate loss-free in 3 of 3 runs: "
                 + ", ".join(f"{p} {best[p] / 1e6:g} MS/s" if best[p] else f"{p} none" for p in ("mmap", "read"))
                 + (f" -> mmap/read {ratio:.2f}x" if ratio else ""))
    if "sweep_end" in info:
        lines.append(f"the sweep ended: {info['sweep_end']}")
    else:
        lines.append("(the sweep ended with the rate list, not with both paths failing)")
    if mmap_capped:
        lines.append("(mmap was loss-free at the highest rate tried: its limit is higher than shown)")
    lines.append("highest rate loss-free in at least 2 of 3 runs (for context; the goals use 3 of 3): "
                 + ", ".join(f"{p} {two_of_three[p] / 1e6:g} MS/s" if two_of_three[p] else f"{p} none"
                             for p in ("mmap", "read")))
    if cpu_at_best and limit_max:
        lines.append(f"mmap consumer's CPU at {best['mmap'] / 1e6:g} MS/s: {cpu_at_best:.2f} s/GB; verification alone "
                     f"(the higher limit run): {1000 / limit_max:.2f} s/GB ({cpu_at_best * limit_max / 1000:.2f}x)")
    lines.append("")
    lines.append("goals (issue 24):")
    lines.append(f"  mmap loss-free rate at least 3x read()'s: {verdict(goal1)} ({goal1_text})")
    if fraction is not None:
        per = ", ".join(f"{k} {v:.1%}" for k, v in fractions.items() if v is not None)
        lines.append(f"  mmap within 80% of the verify-only limit: {verdict(goal2)} ({mmap_mbps:.1f} MB/s at "
                     f"{best['mmap'] / 1e6:g} MS/s = {fraction:.1%} of the higher limit run, {limit_max:.1f} MB/s;"
                     f" against each: {per})")
    else:
        lines.append(f"  mmap within 80% of the verify-only limit: {verdict(goal2)} (no loss-free mmap rate or no limit)")
    write_text(lines, prefix + ".txt")


def record(raw, prefix, command):
    rows = [fields(line) for line in open(raw) if line.startswith("RAW ")]
    result = {"command": command, "runs": rows, "modes": {}}
    for mode in ("direct", "buffered"):
        s = {r["rep"]: float(r["mbps"]) for r in rows if r["tool"] == "sring-record" and r["mode"] == mode}
        d = {r["rep"]: float(r["mbps"]) for r in rows if r["tool"] == "dd" and r["mode"] == mode}
        own = [float(r["own_mbps"]) for r in rows if r["tool"] == "sring-record" and r["mode"] == mode]
        ratios = [s[k] / d[k] for k in sorted(set(s) & set(d), key=int)]
        result["modes"][mode] = {"sring_record_mb_per_s": mmm(list(s.values())), "dd_mb_per_s": mmm(list(d.values())),
                                 "sring_record_own_rate_without_final_sync": mmm(own),
                                 "ratio_sring_record_over_dd": mmm(ratios), "ratio_per_rep": ratios}
    json.dump(result, open(prefix + ".json", "w"), indent=2)


def net(raw, prefix, command):
    rows = [fields(line) for line in open(raw) if line.startswith("RAW ")]
    result = {"command": command, "runs": rows, "sizes": []}
    for block in sorted({int(r["block"]) for r in rows}):
        per = {}
        for r in rows:
            if int(r["block"]) == block:
                per.setdefault(r["sender"], {})[r["rep"]] = float(r["mbps"])
        entry = {"block_bytes": block, "mb_per_s": {k: mmm(list(v.values())) for k, v in per.items()}}
        for other in ("zmq/ring", "zmq/buffer"):
            if "sring" in per and other in per:
                reps = sorted(set(per["sring"]) & set(per[other]), key=int)
                ratios = [per["sring"][k] / per[other][k] for k in reps]
                entry[f"ratio_sring_over_{other.replace('/', '_')}"] = mmm(ratios)
                entry[f"ratio_sring_over_{other.replace('/', '_')}_per_rep"] = ratios
        result["sizes"].append(entry)
    json.dump(result, open(prefix + ".json", "w"), indent=2)


def host_plot(host_json, out_dat):
    host = json.load(open(host_json))
    if not isinstance(host, dict) or "throughput" not in host or not all(
            {"ring_bytes", "block_bytes", "series", "median"} <= set(r) for r in host["throughput"]):
        print(f"bench-report: {host_json} is not in the layout the throughput plot reads; no plot", file=sys.stderr)
        sys.exit(3)
    # One line per block size: the median of each series (NaN where a series was not run).
    cols = ["sring/generate", "spsc batch/generate", "pipe/generate", "verify-only",
            "spsc element/generate", "sring/dma", "spsc batch/dma", "pipe/dma", "read+sum"]
    with open(out_dat, "w") as f:
        f.write("# block_KiB " + " ".join(c.replace(" ", "_") for c in cols) + "\n")
        for ring in sorted({r["ring_bytes"] for r in host["throughput"]}):
            f.write(f"# ring {ring >> 20} MiB\n")
            for block in sorted({r["block_bytes"] for r in host["throughput"] if r["ring_bytes"] == ring}):
                med = {r["series"]: r["median"] for r in host["throughput"]
                       if r["ring_bytes"] == ring and r["block_bytes"] == block}
                f.write(f"{block >> 10} " + " ".join(str(med.get(c, "NaN")) for c in cols) + "\n")
            f.write("\n\n")


def rates(rates_json, out_txt):
    """ring_bench --rates (or --rates --candidates): per rate, every path in
    the quiet and the noisy setting side by side, the whole receiving-side
    cost and the consumer's alone (median and min-max over the runs), their
    ratios to the row each path is compared with (in place, or 'before' for
    the candidates; taken per repetition: the paths of a repetition run back
    to back in the same setting), the cold-data figures, the loss-free runs
    and the goal's check."""
    data = json.load(open(rates_json))
    settings = data.get("settings", ["quiet"])
    paths = [p["name"] for p in data["paths"]]
    vs = {p["name"]: p["vs"] for p in data["paths"]}
    rows = {}
    for r in data["rates"]:
        rows.setdefault(r["rate_msps"], {})[(r["setting"], r["path"])] = r
    runs = data["runs"]
    width = max(len(p) for p in paths) + 1
    what = "candidates (in-place variants)" if data.get("table") == "candidates" else "rates"
    ping = data.get("ping_pong_ns", {})
    noisy_ping = data.get("ping_pong_noisy_ns", {})
    lines = [f"ring_bench {what}: {runs} runs of {data['seconds']:g} s per rate, path and setting; "
             f"{data['block_bytes'] >> 10} KiB blocks, {data['ring_bytes'] >> 20} MiB of buffering.",
             "whole: the consumer's CPU plus the producer's transport work (the DMA-like fill left out), s/GB;",
             "consumer: the consumer's CPU alone, s/GB; median (min-max). x: per-repetition ratio to the row in 'vs',",
             "median. free: runs loss-free (nothing dropped or corrupted, the producer on schedule).",
             "noisy: the consumer's CPU stolen for 2.5 ms of every 20 ms (a SCHED_FIFO contender streaming over 64 MiB).",
             f"Cross-core ping-pong before/after: quiet {ping.get('before', 0):.0f}/{ping.get('after', 0):.0f} ns, "
             f"noisy {noisy_ping.get('before', 0):.0f}/{noisy_ping.get('after', 0):.0f} ns."]
    by_rate_ping = {}
    for p in data.get("ping_pong_by_rate", []):
        by_rate_ping.setdefault(p["rate_msps"], {})[p["setting"]] = p["ping_pong_ns"]

    def cell(values, digits=3):
        return fmt_mmm(mmm(values), digits)

    def med(values):
        return f"{statistics.median(values):.2f}" if values else ""

    setting_width = 19 + 1 + 19 + 1 + 6 + 1 + 6 + 1 + 6
    for rate in sorted(rows):
        lines.append("")
        pings = ", ".join(f"{s} {by_rate_ping.get(rate, {}).get(s, 0):.0f} ns" for s in settings)
        lines.append(f"{rate:g} MS/s ({rate * 2:g} MB/s); ping-pong {pings}")
        head = f"  {'path':<{width}} {'vs':<{width}}"
        sub = f"  {'':<{width}} {'':<{width}}"
        for s in settings:
            head += f" | {s:^{setting_width}}"
            sub += f" | {'whole s/GB':^19} {'consumer s/GB':^19} {'x whl':>6} {'x con':>6} {'free':>6}"
        lines += [head, sub]
        for p in paths:
            line = f"  {p:<{width}} {(vs[p] if vs[p] != p else ''):<{width}}"
            for s in settings:
                r = rows[rate].get((s, p))
                if r is None:
                    line += f" | {'-':^{setting_width}}"
                    continue
                star = "" if r["producer_kept_rate"] else "*"
                line += (f" | {cell(r['whole_s_per_gb']):>19} {cell(r['cpu_s_per_gb']):>19}"
                         f" {med(r['whole_ratio_to_vs']):>6} {med(r['cpu_ratio_to_vs']):>6}"
                         f" {str(r['loss_free_runs']) + '/' + str(r['runs']) + star:>6}")
            lines.append(line)
    # The cold-data hypothesis: the in-place pass over the DMA-like
    # producer's data against read()'s kernel copy of the same data.
    lines += ["", "Cold data: GB/s inside the verify pass (in place: over the ring as the DMA-like fill left it) and",
              "inside the copy out (read(): pread(); copy queue: pop()), median over the runs:"]
    cold = [p for p in paths if not p.endswith("/4")]

    def median_of(rate, s, p, key):
        r = rows[rate].get((s, p))
        return statistics.median(r[key]) if r and r[key] else None

    copy_paths = [p for p in cold if any((median_of(rate, s, p, "copy_gb_per_s") or 0) > 0
                                         for rate in rows for s in settings)]
    lines.append(f"  {'MS/s':>6} {'setting':<7}" + "".join(f" {p + ' verify':>{width + 7}}" for p in cold) +
                 "".join(f" {p + ' copy':>{width + 5}}" for p in copy_paths))
    for rate in sorted(rows):
        for s in settings:
            line = f"  {rate:>6g} {s:<7}"
            for p, key, w in [(p, "verify_gb_per_s", width + 7) for p in cold] + \
                             [(p, "copy_gb_per_s", width + 5) for p in copy_paths]:
                m = median_of(rate, s, p, key)
                line += f" {'-' if m is None else f'{m:.1f}':>{w}}"
            lines.append(line)
    # Loss-free runs per rate, then the highest rate loss-free in every run.
    lines += ["", f"loss-free runs of {runs}, per rate (* : the producer fell behind its schedule in some run):"]
    rates_sorted = sorted(rows)
    for s in settings:
        lines.append(f"  {s:<7} {'MS/s':<{width}}" + "".join(f" {r:>6g}" for r in rates_sorted))
        for p in paths:
            line = f"  {'':<7} {p:<{width}}"
            for rate in rates_sorted:
                r = rows[rate].get((s, p))
                line += f" {(str(r['loss_free_runs']) + ('' if r['producer_kept_rate'] else '*')) if r else '-':>6}"
            lines.append(line)
    best = data["highest_loss_free_msps"]
    lines += ["", f"highest rate loss-free in {runs} of {runs} runs, from the lowest rate up (MS/s):",
              f"  {'path':<{width}}" + "".join(f" {s:>7}" for s in settings)]
    for p in paths:
        lines.append(f"  {p:<{width}}" + "".join(f" {best.get(s, {}).get(p, 0):>7g}" for s in settings))
    goal = data.get("goal", [])
    if goal:
        lines += ["", f"goal: in place loss-free in {runs} of {runs} runs at every rate where a copying path with the "
                      "same wake-up rule is:"]
        for g in goal:
            verdict = "met" if g["met"] else "NOT met at " + ", ".join(f"{x:g}" for x in g["missed_at_msps"]) + " MS/s"
            lines.append(f"  {g['setting']:<6} {g['path']:<{width}} against {g['against']:<26} {verdict}")
    write_text(lines, out_txt)


def pages(pages_json, out_txt):
    """ring_bench --pages-sweep as a markdown table: per rate and ring size,
    the verify pass's GB/s and the consumer's CPU per GB with the ring's data
    in 4 KiB and in 2 MiB pages, and the huge/4k ratios taken within one
    repetition (the two runs of a cell run back to back)."""
    data = json.load(open(pages_json))

    def size(b):
        return f"{b >> 30} GiB" if b >= 1 << 30 else f"{b >> 20} MiB"

    lines = ["In place on the user-space simulator, data in 4 KiB pages against 2 MiB pages; median (min-max)",
             f"of {data['runs']} runs of {data['seconds']:g} s; huge/4k: per-repetition ratio. * : not loss-free in every run.",
             f"Cross-core ping-pong before/after: {data['ping_pong_ns']['before']:.0f}/{data['ping_pong_ns']['after']:.0f} ns.",
             "",
             "| MS/s | ring | verify GB/s, 4 KiB | verify GB/s, 2 MiB | verify huge/4k | CPU s/GB, 4 KiB | CPU s/GB, 2 MiB | CPU huge/4k |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in data["cells"]:
        star = "*" if c["loss_free_runs"] < c["runs"] else ""
        lines.append(f"| {c['rate_msps']:g}{star} | {size(c['ring_bytes'])} "
                     f"| {fmt_mmm(mmm(c['verify_gb_per_s_4k']), 1)} | {fmt_mmm(mmm(c['verify_gb_per_s_huge']), 1)} "
                     f"| {fmt_mmm(mmm(c['verify_ratio_huge_to_4k']), 2)}x "
                     f"| {fmt_mmm(mmm(c['cpu_s_per_gb_4k']), 3)} | {fmt_mmm(mmm(c['cpu_s_per_gb_huge']), 3)} "
                     f"| {fmt_mmm(mmm(c['cpu_ratio_huge_to_4k']), 2)}x |")
    write_text(lines, out_txt)


def qemu_rings(raw, prefix, command):
    """run-qemu-tests.sh --bench-rings: the kernel ring's consumer cost
    against ring size x rate x path (mmap in place / read()), with the
    mmap-read ratios taken per run pair (the two runs next to each other)."""
    runs, info, memory = {}, {}, {}
    for line in open(raw):
        first = line.split(" ", 1)[0]
        if first == "BENCH_INFO":
            info.update(fields(line))
        elif first == "BENCH_RING":
            f = fields(line)
            memory[int(f["ring"])] = f
        elif first == "BENCH" and "ring=" in line:
            f = fields(line)
            runs.setdefault((int(f["ring"]), parse_rate(f["rate"])), {}).setdefault(f["path"], []).append(f)
    duration = float(info.get("duration", "2"))


    def per_run(r, rate):
        samples, lost = number_or_none(r.get("samples")), number_or_none(r.get("lost"))
        made = (samples + lost) if samples is not None and lost is not None else None
        return {"gb_per_s": float(r["mbps"]) / 1e3, "cpu_s_per_gb": float(r["cpu_s_per_gb"]),
                "loss_fraction": (lost / made) if made else None,
                "made_fraction": (made / (rate * duration)) if made is not None else None,
                "ok": r.get("rc") in ("0", "1") and r.get("corrupted") == "0"}

    rows = []
    for ring, rate in sorted(runs):
        row = {"ring_bytes": ring, "rate": rate, "memory": memory.get(ring, {}).get("memory", "").replace(",", " "),
               "load_s": number_or_none(memory.get(ring, {}).get("load_s"))}
        by_run = {}
        for path in ("mmap", "read"):
            rs = sorted(runs[ring, rate].get(path, []), key=lambda r: int(r["run"]))
            pr = [per_run(r, rate) for r in rs]
            by_run[path] = {r["run"]: p for r, p in zip(rs, pr)}
            row[path] = {"runs": len(rs), "runs_without_corruption_or_error": sum(p["ok"] for p in pr)}
            for key in ("gb_per_s", "cpu_s_per_gb", "loss_fraction", "made_fraction"):
                row[path][key] = mmm([p[key] for p in pr if p[key] is not None])
        pairs = sorted(set(by_run["mmap"]) & set(by_run["read"]), key=int)
        cpu = [by_run["read"][k]["cpu_s_per_gb"] / by_run["mmap"][k]["cpu_s_per_gb"] for k in pairs
               if by_run["mmap"][k]["cpu_s_per_gb"] > 0]
        gbs = [by_run["mmap"][k]["gb_per_s"] / by_run["read"][k]["gb_per_s"] for k in pairs
               if by_run["read"][k]["gb_per_s"] > 0]
        row["cpu_ratio_read_over_mmap"], row["cpu_ratio_read_over_mmap_per_pair"] = mmm(cpu), cpu
        row["gb_per_s_ratio_mmap_over_read"], row["gb_per_s_ratio_mmap_over_read_per_pair"] = mmm(gbs), gbs
        rows.append(row)
    # What size does: each size's median against the smallest ring's, per rate and path.
    smallest = min((r["ring_bytes"] for r in rows), default=None)
    base = {(r["rate"], p): r[p] for r in rows if r["ring_bytes"] == smallest for p in ("mmap", "read")}
    for row in rows:
        for p in ("mmap", "read"):
            b = base.get((row["rate"], p))
            for key in ("cpu_s_per_gb", "gb_per_s"):
                ok = b and b[key] and row[p][key] and b[key]["median"] > 0
                row[p][key + "_over_smallest_ring"] = row[p][key]["median"] / b[key]["median"] if ok else None
    result = {"command": command, "emulated": True, "info": info, "duration_s": duration, "rings": memory,
              "mappings": "4 KiB user mappings (Debian 6.1: no PMD mappings of a char device's memory)",
              "rows": rows}
    json.dump(result, open(prefix + ".json", "w"), indent=2)

    def size(b):
        return f"{b >> 30} GiB" if b >= 1 << 30 else f"{b >> 20} MiB"

    def pct(m):
        return "-" if m is None else f"{m['median']:.1%} ({m['min']:.0%}-{m['max']:.0%})"

    with open(prefix + ".txt", "w") as f:
        f.write(f"# command: {command}\n")
        f.write(f"# QEMU (TCG, emulated: absolute figures are the emulator's); {info.get('cpus', '?')} vCPUs, "
                f"kernel {info.get('kernel', '?')}, {int(info.get('mem_total_kb', 0)) >> 10} MiB guest, consumer pinned "
                f"away from the device's CPU: {'yes' if info.get('pin') == '1' else 'no'}\n")
        f.write("# the kernel ring (sring_sim ring_size=N, a ring of page chunks) read through 4 KiB user mappings"
                " (mmap, in place) or copied by read() through the kernel's 4 KiB vmap of the same pages\n")
        f.write(f"# acquire --device /dev/sring0 --block-size 64K --duration {duration:g} --allow-loss [--read];"
                " both paths verify every sample\n")
        f.write(f"# {info.get('runs', '3')} rounds, in each every size in turn (modules reloaded), at each rate a run of mmap"
                " then one of read(); cells: median (min-max) of the rounds\n")
        f.write("# GB/s: samples delivered and verified per second; CPU s/GB: acquire's user + system CPU (all threads)"
                " per GB delivered; lost: lost / (delivered + lost)\n")
        f.write("# made: (delivered + lost) / (rate x duration); below 100%: the emulated device fell behind filling"
                " samples (a full ring's drops cost it nothing)\n")
        f.write("# ratios per run pair: read/mmap CPU s/GB (>1: mmap cheaper), mmap/read verified GB/s\n\n")
        for ring in sorted(memory):
            m = memory[ring]
            f.write(f"# {size(ring)} ring: {m.get('memory', '?').replace(',', ' ')} (loaded in {m.get('load_s', '?')} s)\n")
        f.write("\n")
        head = (f"{'ring':>7} {'MS/s':>5} | {'mmap GB/s':>19} {'mmap CPU s/GB':>19} {'mmap lost':>17} {'made':>5} | "
                f"{'read GB/s':>19} {'read CPU s/GB':>19} {'read lost':>17} {'made':>5} | "
                f"{'CPU read/mmap':>19} {'GB/s mmap/read':>19}\n")
        f.write(head)
        for row in rows:
            line = f"{size(row['ring_bytes']):>7} {row['rate'] / 1e6:5.0f} |"
            for p in ("mmap", "read"):
                d = row[p]
                made = f"{d['made_fraction']['median']:.0%}" if d["made_fraction"] else "-"
                line += (f" {fmt_mmm(d['gb_per_s'], 3):>19} {fmt_mmm(d['cpu_s_per_gb'], 2):>19}"
                         f" {pct(d['loss_fraction']):>17} {made:>5} |")
            line += (f" {fmt_mmm(row['cpu_ratio_read_over_mmap'], 2) + 'x':>19}"
                     f" {fmt_mmm(row['gb_per_s_ratio_mmap_over_read'], 2) + 'x':>19}\n")
            f.write(line)
        f.write(f"\nagainst the {size(smallest) if smallest else '?'} ring (ratio of medians): CPU s/GB, verified GB/s\n")
        for row in rows:
            if row["ring_bytes"] == smallest:
                continue
            parts = []
            for p in ("mmap", "read"):
                c, g = row[p]["cpu_s_per_gb_over_smallest_ring"], row[p]["gb_per_s_over_smallest_ring"]
                parts.append(f"{p} CPU {c:.2f}x GB/s {g:.2f}x" if c and g else f"{p} -")
            f.write(f"{size(row['ring_bytes']):>7} {row['rate'] / 1e6:5.0f} MS/s: " + ", ".join(parts) + "\n")
        bad = [f"{size(r['ring_bytes'])} {r['rate'] / 1e6:.0f} MS/s {p}" for r in rows for p in ("mmap", "read")
               if r[p]["runs_without_corruption_or_error"] < r[p]["runs"]]
        f.write("\nruns with corrupted samples or an error exit: " + (", ".join(bad) if bad else "none") + "\n")


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "host-plot":
        host_plot(sys.argv[2], sys.argv[3])
    elif what == "rates":
        rates(sys.argv[2], sys.argv[3])
    elif what == "pages":
        pages(sys.argv[2], sys.argv[3])
    else:
        {"qemu": qemu, "qemu-dma": qemu_dma, "qemu-rings": qemu_rings, "record": record,
         "net": net}[what](sys.argv[2], sys.argv[3], sys.argv[4])
