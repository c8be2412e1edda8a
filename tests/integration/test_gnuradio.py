"""GNU Radio 3.10's soapy source against sring's SoapySDR module: the example
flowgraph examples/soapy_flowgraph.py (soapy source -> blocks.head -> a sink
that checks every sample against the pattern) run headless, against the
in-process simulated device (sim=1) and against an sring-sim process, and a
run under the drop policy with a deliberately slow sink, whose losses the sink
finds in the data and the module's counters must match exactly.

Run by scripts/test.sh with SRING_BIN (the module under soapy/, sring-sim)
and PYTHONPATH at the built binding (the flowgraph uses sring.pattern())."""

import os
import re
import subprocess
import sys

import pytest

from conftest import SOURCE, sim_totals, soapy_env, start_sim, stop_sim

FLOWGRAPH = os.path.join(SOURCE, "examples", "soapy_flowgraph.py")
RESULT = re.compile(r"^(\d+) samples verified of (\d+) delivered \((\w+)\), (\d+) bad, (\d+) gaps totalling (\d+) lost "
                    r"samples, next index (\d+)(.*)$", re.M)


def run_flowgraph(*args, timeout=90):
    proc = subprocess.run([sys.executable, FLOWGRAPH, *args], env=soapy_env(), capture_output=True, text=True,
                          timeout=timeout)
    m = RESULT.search(proc.stdout)
    assert m, f"no result line (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    verified, delivered, _, bad, gaps, lost, next_index = (int(v) if v.isdigit() else v for v in m.groups()[:7])
    return proc, dict(verified=verified, delivered=delivered, bad=bad, gaps=gaps, lost=lost, next=next_index,
                      rest=m.group(8))


@pytest.mark.parametrize("fmt, stream", [("cf32", "cf32"), ("cs16", "cs16"), ("cs16", "cf32"), ("cf32", "cs16")])
def test_sim_every_sample_verified(fmt, stream):
    # The stop policy at a rate this machine keeps up with: the producer
    # never drops (it would end the stream instead), so blocks.head's count
    # arrives in order from index 0, every sample checked. cs16 -> cf32 and
    # back go through SoapySDR's converters at full scale 32768: exact. A
    # 64 MiB ring (seconds of slack, not the default's quarter second) so
    # that a Python sink stalled on a busy machine does not end the stream.
    n = 300_000
    proc, r = run_flowgraph("--args", f"driver=sring,sim=1,format={fmt},policy=stop,ring_size=64M", "--rate", "2e6",
                            "--format", stream, "--samples", str(n))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (r["verified"], r["delivered"], r["bad"], r["gaps"], r["next"]) == (n, n, 0, 0, n), proc.stdout
    assert "every sample verified, accounting exact" in proc.stdout


def test_sring_sim_process(tmp_path):
    sock = str(tmp_path / "gr.sock")
    sim = start_sim(sock, "--rate", "2M", "--format", "cs16", "--policy", "stop", "--ring-size", "64M",
                    "--duration", "30")
    try:
        n = 250_000
        proc, r = run_flowgraph("--args", f"driver=sring,sim_socket={sock}", "--rate", "2e6", "--format", "cf32",
                                "--samples", str(n))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (r["verified"], r["delivered"], r["bad"], r["gaps"], r["next"]) == (n, n, 0, 0, n), proc.stdout
    finally:
        stop_sim(sim)


def ended(r):
    m = re.search(r"stream ended: module produced (\d+), dropped (\d+) in (\d+) overflows, missing at end (\d+)",
                  r["rest"])
    assert m, r["rest"]
    return (int(v) for v in m.groups())


SLOW = ["--samples", str(10 ** 9), "--slow-ms", "5", "--idle", "10"]  # the end comes from the module


def check_drops(proc, r):
    """Losses happened, the sink found each gap in the data, and the
    module's accounting is exactly what the sink saw."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    produced, dropped, overflows, at_end = ended(r)
    assert r["bad"] == 0 and r["gaps"] > 0 and r["lost"] > 0, proc.stdout
    assert r["verified"] == r["delivered"], proc.stdout
    assert r["verified"] + r["lost"] + at_end == produced, proc.stdout
    assert r["lost"] + at_end == dropped, proc.stdout
    # One SOAPY_SDR_OVERFLOW per gap, which GNU Radio's source prints as
    # "sO"; drops after the last block delivered are missing at the end.
    assert proc.stderr.count("sO") == overflows == r["gaps"], proc.stdout
    return produced, dropped


def test_drop_policy_losses_accounted_exactly():
    # A slow sink under the drop policy: the ring overflows, and the
    # simulated device runs for a second; after its end every sample it made
    # is verified, in a gap the sink located, or missing at the end.
    proc, r = run_flowgraph("--args", "driver=sring,sim=1,format=cs16,policy=drop,ring_size=256K,duration=1",
                            "--rate", "4e6", "--format", "cs16", *SLOW)
    check_drops(proc, r)


def test_drop_policy_sring_sim_process(tmp_path):
    # The same against an sring-sim process: the flowgraph reads the
    # module's counters through the soapy source's read_setting() as for
    # sim=1 and ends at the module's end of stream; the producer's own
    # totals, which sring-sim prints when its consumer hangs up, must be the
    # module's figures exactly.
    sock = str(tmp_path / "drop.sock")
    sim = start_sim(sock, "--rate", "4M", "--format", "cs16", "--policy", "drop", "--ring-size", "256K",
                    "--duration", "1")
    try:
        proc, r = run_flowgraph("--args", f"driver=sring,sim_socket={sock}", "--rate", "4e6", "--format", "cf32",
                                *SLOW)
        produced, dropped = check_drops(proc, r)
        sim_produced, sim_dropped, err = sim_totals(sim, timeout=30)
    finally:
        stop_sim(sim)
    assert (produced, dropped) == (sim_produced, sim_dropped), (proc.stdout, err)
