"""sring's SoapySDR module (driver=sring, soapy/): SoapySDRUtil finds,
probes and rate-tests it; two SoapySDR clients (soapy/clients: one with the
direct buffer access API, one with readStream) check every sample against
the pattern and the exact accounting (delivered + dropped == produced) under
a deliberately slow consumer, against the in-process simulated device
(sim=1) and against an sring-sim process; bad input gives clear errors; the
settings, timestamps and end of stream through Debian's python3-soapysdr.

Run by scripts/test.sh with SRING_BIN (bazel-bin: soapy/, tools/sring-sim)."""

import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import sim_totals, soapy_env as env, start_sim, stop_sim, tool

RESULT = re.compile(r"^(soapy-\w+-client): delivered=(\d+) dropped=(\d+) produced=(\d+) mismatches=(\d+) "
                    r"late_mismatches=(\d+) overflows=(\d+) time_errors=(\d+) end_burst=(\w+) exact=(\w+) "
                    r"accounting=(\w+)", re.M)


def soapy_util(*args, timeout=30):
    return subprocess.run(["SoapySDRUtil", *args], env=env(), capture_output=True, text=True, timeout=timeout)


def client(kind, *args, timeout=90):
    """Runs soapy-direct-client or soapy-stream-client; its result line as a dict."""
    proc = subprocess.run([tool(f"soapy/soapy-{kind}-client"), *args], env=env(), capture_output=True, text=True,
                          timeout=timeout)
    m = RESULT.search(proc.stdout)
    assert m, f"no result line (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    keys = ("delivered", "dropped", "produced", "mismatches", "late_mismatches", "overflows", "time_errors")
    r = dict(zip(keys, (int(v) for v in m.groups()[1:8])))
    r.update(end_burst=m.group(9), exact=m.group(10), accounting=m.group(11), rc=proc.returncode,
             out=proc.stdout + proc.stderr)
    # The module's own figures, after the fixed part of the line.
    line = proc.stdout[m.start():].splitlines()[0]
    for key in ("module_delivered", "producer_dropped", "overwritten", "bad_reads"):
        found = re.search(rf" {key}=(\d+)", line)
        assert found, line
        r[key] = int(found.group(1))
    return r


def assert_exact(r, losses):
    assert r["rc"] == 0, r["out"]
    assert r["mismatches"] == 0 and r["late_mismatches"] == 0 and r["time_errors"] == 0, r["out"]
    assert r["delivered"] + r["dropped"] == r["produced"], r["out"]
    assert r["module_delivered"] == r["delivered"] and r["overwritten"] == 0, r["out"]
    assert (r["accounting"], r["exact"], r["end_burst"]) == ("ok", "yes", "yes"), r["out"]
    assert r["delivered"] > 0, r["out"]
    if losses:
        # The slow client made the ring drop: the gaps were reported and counted.
        assert r["dropped"] > 0 and r["overflows"] > 0, r["out"]
    else:
        assert r["dropped"] == 0 and r["overflows"] == 0, r["out"]


# --- SoapySDRUtil ---------------------------------------------------------

def test_find_lists_the_simulator_and_a_running_sring_sim(tmp_path):
    out = soapy_util("--find=driver=sring").stdout
    assert "driver = sring" in out and "sim = 1" in out, out
    # Not asked for by name, the simulator is not offered (an application
    # opening "the first device" must not get it instead of a radio).
    assert "sim = 1" not in soapy_util("--find").stdout
    sock = str(tmp_path / "find.sock")
    missing = soapy_util(f"--find=driver=sring,sim_socket={sock}")
    assert missing.returncode >= 0 and "No devices found" in missing.stdout + missing.stderr, missing
    sim = start_sim(sock, "--rate", "1M", "--duration", "0.3")
    try:
        found = soapy_util(f"--find=driver=sring,sim_socket={sock}").stdout
        assert f"sim_socket = {sock}" in found, found
        # find() did not connect: the one connection sring-sim serves is still there.
        r = client("stream", "--args", f"driver=sring,sim_socket={sock}", "--seconds", "5")
        assert_exact(r, losses=False)
    finally:
        stop_sim(sim)


def test_probe_reports_channels_formats_and_settings():
    proc = soapy_util("--probe=driver=sring,sim=1,format=cs16,channels=2,rate=3M")
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "driver=sring" in out and "hardware=sring-sim (in-process)" in out, out
    assert "RX Channel 1" in out and "RX Channel 2" not in out, out
    assert "Native format: CS16 [full-scale=32768]" in out, out
    assert re.search(r"Stream formats: CS16, .*CF32", out), out
    assert "Sample rates: [1e-06, 1000] MSps" in out, out
    for setting in ("policy", "block_size", "ring_size", "watermark", "samples_dropped"):
        assert f"* {setting} " in out, out


RATE_LINE = re.compile(r"([\d.]+) Msps\s+([\d.]+) MBps")


def test_rate_test_runs_against_the_simulator():
    # SoapySDRUtil --rate reads until interrupted and prints its rate about
    # every five seconds: check that it streamed, not how fast. Its output
    # is collected by a thread; the test waits for the first rate line (up
    # to a minute: a busy machine may start it late), then interrupts it.
    proc = subprocess.Popen(["SoapySDRUtil", "--args=driver=sring,sim=1", "--rate=2e6", "--direction=RX"],
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    collector = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    collector.start()
    try:
        deadline = time.monotonic() + 60
        while not RATE_LINE.search("".join(lines)) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    collector.join(timeout=30)
    out = "".join(lines)
    assert proc.returncode is not None and proc.returncode >= 0, out  # not killed by a signal (no crash)
    assert "Stream format: U16" in out and "Begin RX rate test at 2 Msps" in out, out
    m = RATE_LINE.search(out)
    assert m and float(m.group(1)) > 0, out
    assert "error" not in out.lower(), out


@pytest.mark.parametrize("args, words", [
    ("driver=sring,device=/dev/nonexistent", ["/dev/nonexistent", "No such file"]),
    ("driver=sring,sim_socket=/tmp/sring-no-such.sock", ["no sring-sim socket at /tmp/sring-no-such.sock"]),
    ("driver=sring,sim=1,format=u17", ["format=u17", "unknown sample format"]),
    ("driver=sring,sim=1,rat=2M", ["unknown device argument 'rat'"]),
    ("driver=sring,sim=1,policy=later", ["unknown overrun policy 'later'"]),
    ("driver=sring,sim=1,sim_socket=/tmp/x", ["one source only"]),
])
def test_bad_device_arguments_say_what_is_wrong(args, words):
    proc = soapy_util(f"--make={args}")
    assert proc.returncode >= 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "Error making device" in out, out
    for w in words:
        assert w in out, out


def test_a_format_the_device_does_not_have_is_refused():
    r = subprocess.run([tool("soapy/soapy-stream-client"), "--args", "driver=sring,sim=1", "--format", "CS16"],
                       env=env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "the device streams U16" in r.stderr and "not to 'CS16'" in r.stderr, r.stderr
    # Interleaved channels have no per-channel buffers to hand out in place.
    r = subprocess.run([tool("soapy/soapy-direct-client"), "--args", "driver=sring,sim=1,channels=2"],
                       env=env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "no direct access buffers" in r.stderr, r.stdout + r.stderr


def test_direct_access_needs_a_block_size_that_divides_the_ring():
    # 12k blocks (a 64-byte multiple, accepted) do not divide a 4 MiB ring:
    # from the second lap on, a block is no longer where its handle's
    # address is, so the module offers no direct access buffers (with one,
    # the client would count address_errors and fail).
    args = "driver=sring,sim=1,block_size=12k,ring_size=4M,rate=8M,policy=stop"
    r = subprocess.run([tool("soapy/soapy-direct-client"), "--args", args, "--seconds", "1", "--hold", "2"],
                       env=env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "no direct access buffers" in r.stderr, r.stdout + r.stderr
    # readStream() reads such a ring as any other.
    r = client("stream", "--args", args, "--seconds", "1")
    assert_exact(r, losses=False)


# --- the clients: every sample verified, exact accounting ----------------

SLOW = ["--slow-us", "4000", "--slow-every", "4"]


@pytest.mark.parametrize("kind, device, extra", [
    # 64 KiB blocks go back to the producer one by one (smaller ones in
    # runs): a block released before its time would be overwritten at once.
    ("direct", "format=u16,block_size=64k,ring_size=1M,rate=40M", ["--hold", "4"]),
    ("direct", "format=s8", ["--hold", "2"]),
    ("stream", "format=u16", []),
    ("stream", "format=cs16", ["--format", "CF32"]),
    ("stream", "format=s16,channels=3", ["--channels", "2,0"]),
    ("stream", "format=cs16,channels=2", ["--channels", "0,1", "--format", "CF32"]),
])
def test_slow_client_on_the_simulator_loses_and_accounts_exactly(kind, device, extra):
    args = f"driver=sring,sim=1,rate=4M,ring_size=256k,block_size=8k,policy=drop,{device}"
    r = client(kind, "--args", args, "--seconds", "1.5", *SLOW, *extra)
    assert_exact(r, losses=True)


@pytest.mark.parametrize("kind", ["direct", "stream"])
def test_fast_client_on_the_simulator_loses_nothing(kind):
    r = client(kind, "--args", "driver=sring,sim=1,rate=2M,policy=stop", "--seconds", "1", "--hold", "8")
    assert_exact(r, losses=False)


@pytest.mark.parametrize("kind, sim_args, extra", [
    ("direct", [], ["--hold", "3"]),
    ("stream", ["--format", "cs16"], ["--format", "CF32"]),
])
def test_slow_client_on_an_sring_sim_process(tmp_path, kind, sim_args, extra):
    sock = str(tmp_path / "sim.sock")
    sim = start_sim(sock, "--rate", "4M", "--ring-size", "256k", "--policy", "drop", "--duration", "30", *sim_args)
    try:
        # The client deactivates after 1.5 s: the module asks sring-sim to stop.
        r = client(kind, "--args", f"driver=sring,sim_socket={sock}", "--seconds", "1.5", *SLOW, *extra)
        produced, dropped, _ = sim_totals(sim)
    finally:
        stop_sim(sim)  # on any failure above (a timeout included): no sring-sim left behind
    assert_exact(r, losses=True)
    # The module's figures are the producer's own.
    assert (r["produced"], r["dropped"]) == (produced, dropped), r["out"]


@pytest.mark.parametrize("kind, extra", [
    # Four blocks held, a 20 ms pause after the first release: the producer
    # (8 MB/s into a 256 KiB ring) laps the ring meanwhile and takes held
    # blocks back.
    ("direct", ["--hold", "4"]),
    # One block per read (its MTU), a pause every fourth: blocks are taken
    # back while read, and some read after the producer rewrote them.
    ("stream", ["--elems", "4064"]),
])
def test_overwrite_policy_blocks_taken_back_while_read_count_as_dropped(kind, extra):
    # policy=overwrite: a block the producer takes back while it is read
    # does not count as delivered, and its frames are dropped, as the
    # producer counts them: the module's samples_dropped is the producer's
    # samples_dropped, and its delivered + dropped == produced, exactly.
    # The client got those blocks' frames (perhaps torn: at most one bad
    # read per block taken back), so its own count is larger.
    args = "driver=sring,sim=1,rate=4M,ring_size=256k,block_size=8k,policy=overwrite"
    r = client(kind, "--args", args, "--seconds", "1.5", "--slow-us", "20000", "--slow-every", "4", *extra)
    assert r["rc"] == 0 and r["time_errors"] == 0, r["out"]
    assert (r["accounting"], r["exact"], r["end_burst"]) == ("ok", "yes", "yes"), r["out"]
    assert r["overwritten"] > 0 and r["dropped"] > 0, r["out"]  # the case under test happened
    assert r["module_delivered"] + r["dropped"] == r["produced"], r["out"]
    assert r["dropped"] == r["producer_dropped"], r["out"]
    assert r["module_delivered"] < r["delivered"], r["out"]
    assert r["bad_reads"] <= r["overwritten"], r["out"]


def test_read_setting_answers_while_a_read_waits():
    # A read waiting for data (an idle producer: one block per 2016 s) must
    # not hold the device: readSetting() and getSettingInfo() from another
    # thread (GNU Radio polls read_setting()) answer at once, and
    # deactivateStream() ends the wait. python3-soapysdr gives up the GIL in
    # its calls. Each bound is half the read's 10 s timeout: a device held
    # through the wait would take all of it.
    script = r"""
import threading, time, numpy as np, SoapySDR
from SoapySDR import SOAPY_SDR_RX, SOAPY_SDR_END_BURST
d = SoapySDR.Device("driver=sring,sim=1,rate=1,block_size=4096,policy=drop")
s = d.setupStream(SOAPY_SDR_RX, "U16", [0])
d.activateStream(s)
buf = np.zeros(2016, np.uint16)
waiting, done = threading.Event(), {}
def reader():
    waiting.set()
    t = time.monotonic()
    r = d.readStream(s, [buf], 2016, timeoutUs=10_000_000)
    done["read"] = (r.ret, r.flags, time.monotonic() - t)
th = threading.Thread(target=reader)
th.start()
waiting.wait()
time.sleep(0.5)  # into its wait
assert th.is_alive(), done
t = time.monotonic()
dropped = d.readSetting("samples_dropped")
info = {a.key: a.value for a in d.getSettingInfo()}
took = time.monotonic() - t
assert th.is_alive(), done  # it was still waiting meanwhile
assert took < 5, took
assert dropped == "0" and info["state"] == "running", (dropped, info["state"])
t = time.monotonic()
d.deactivateStream(s)
th.join(timeout=30)
assert not th.is_alive()
ret, flags, read_took = done["read"]
assert ret == 0 and flags & SOAPY_SDR_END_BURST, done
assert read_took < 5 and time.monotonic() - t < 5, (read_took, time.monotonic() - t)
d.closeStream(s)
print("answered in", took, "read ended after", read_took)
"""
    proc = subprocess.run(["/usr/bin/python3", "-c", script], env=env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "answered in" in proc.stdout, proc.stdout + proc.stderr


# --- the SoapySDR API from Python (Debian's python3-soapysdr) -------------

def test_settings_timestamps_overflow_once_and_the_end_of_stream():
    script = r"""
import time, numpy as np, SoapySDR
from SoapySDR import SOAPY_SDR_RX, SOAPY_SDR_END_BURST, SOAPY_SDR_HAS_TIME, SOAPY_SDR_OVERFLOW, SOAPY_SDR_TIMEOUT
d = SoapySDR.Device("driver=sring,sim=1,ring_size=128k,policy=drop,duration=0.6")
d.setSampleRate(SOAPY_SDR_RX, 0, 4e6)
assert d.getSampleRate(SOAPY_SDR_RX, 0) == 4e6 and d.readSetting("rate") == "4000000"
d.writeSetting("block_size", "4096")
assert d.readSetting("block_size") == "4096"
keys = [a.key for a in d.getSettingInfo()]
assert {"policy", "block_size", "ring_size", "watermark", "samples_dropped"} <= set(keys), keys
for bad, why in (("policy", "bogus"), ("samples_dropped", "1")):
    try:
        d.writeSetting(bad, why); raise SystemExit("accepted " + bad)
    except (RuntimeError, ValueError) as e:  # std::runtime_error, std::invalid_argument
        print("refused:", e)
s = d.setupStream(SOAPY_SDR_RX, "U16", [0])
mtu = d.getStreamMTU(s)
assert mtu == (4096 - 64) // 2, mtu
d.activateStream(s)
for change in (lambda: d.setSampleRate(SOAPY_SDR_RX, 0, 1e6), lambda: d.writeSetting("policy", "stop")):
    try:
        change(); raise SystemExit("changed while active")
    except RuntimeError as e:
        assert "while the stream is active" in str(e), e
buf = np.zeros(mtu, np.uint16)
# timeNs is the first returned frame's: two reads within one block (2016
# frames) are 1000 frames apart, 1000 / 4e6 s exactly.
a = d.readStream(s, [buf], 1000, timeoutUs=2000000)
b = d.readStream(s, [buf], 1000, timeoutUs=2000000)
assert (a.ret, b.ret) == (1000, 1000) and b.timeNs - a.timeNs == 250000, (str(a), str(b))
last_ret, overflow_then, times, got = None, [], [a.timeNs, b.timeNs], 2000
while True:
    sr = d.readStream(s, [buf], mtu, timeoutUs=500000)
    if last_ret == SOAPY_SDR_OVERFLOW:
        overflow_then.append(sr.ret)
    last_ret = sr.ret
    if sr.ret > 0:
        got += sr.ret
        assert sr.flags & SOAPY_SDR_HAS_TIME
        times.append(sr.timeNs)
        time.sleep(0.002)  # slow: the ring drops
    if sr.flags & SOAPY_SDR_END_BURST:
        break
    assert sr.ret in (SOAPY_SDR_OVERFLOW, SOAPY_SDR_TIMEOUT) or sr.ret > 0, sr
now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
assert times == sorted(times) and 0 < now - times[-1] < 5e9, (times[-3:], now)
assert overflow_then and all(r > 0 for r in overflow_then), overflow_then  # OVERFLOW once, then data
dropped, produced = int(d.readSetting("samples_dropped")), int(d.readSetting("samples_produced"))
assert got + dropped == produced and dropped > 0 and d.readSetting("exact") == "true", (got, dropped, produced)
t0 = time.monotonic(); first = d.readStream(s, [buf], mtu, timeoutUs=300000); t1 = time.monotonic()
second = d.readStream(s, [buf], mtu, timeoutUs=300000); t2 = time.monotonic()
assert (first.ret, first.flags, second.ret, second.flags) == (0, SOAPY_SDR_END_BURST, 0, SOAPY_SDR_END_BURST)
assert t1 - t0 < 0.2 and t2 - t1 >= 0.25, (t1 - t0, t2 - t1)  # the first at once, then after the timeout
d.deactivateStream(s); d.closeStream(s)
print("python ok", got, dropped, produced, len(overflow_then))
"""
    proc = subprocess.run(["/usr/bin/python3", "-c", script], env=env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "python ok" in proc.stdout, proc.stdout + proc.stderr
    assert "refused: sring: policy=bogus: unknown overrun policy 'bogus'" in proc.stdout, proc.stdout
    assert "refused: sring: samples_dropped is read only" in proc.stdout, proc.stdout


def test_an_sring_sim_process_keeps_its_own_configuration(tmp_path):
    sock = str(tmp_path / "own.sock")
    sim = start_sim(sock, "--rate", "1M", "--duration", "0.2")
    script = f"""
import SoapySDR
from SoapySDR import SOAPY_SDR_RX
d = SoapySDR.Device("driver=sring,sim_socket={sock}")
assert d.getSampleRate(SOAPY_SDR_RX, 0) == 1e6
d.setSampleRate(SOAPY_SDR_RX, 0, 1e6)  # the same: fine
try:
    d.setSampleRate(SOAPY_SDR_RX, 0, 2e6); raise SystemExit("accepted a rate")
except RuntimeError as e:
    print(e)
"""
    try:
        proc = subprocess.run(["/usr/bin/python3", "-c", script], env=env(), capture_output=True, text=True,
                              timeout=60)
    finally:
        stop_sim(sim)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "an sring-sim process runs at its own rate (1000000 frames/s): start it with sring-sim --rate 2000000" \
        in proc.stdout, proc.stdout
