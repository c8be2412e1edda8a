"""The Python binding against the user-space simulated device: zero-copy
views, the memory a view pins, exact accounting under every policy, the
same counts as the producer reports (and as acquire), waits without the GIL,
Ctrl-C. Run by scripts/test.sh with PYTHONPATH at the built package and
SRING_BIN at the tools (sring-sim, acquire)."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import sring

BIN = os.environ.get("SRING_BIN", "bazel-bin")
BLOCK_SAMPLES = 2016  # 4 KiB blocks with their 64-byte header


def verify(block, seed=1):
    """Every sample of the block (u16, one channel: shape (frames, 1)) is
    the pattern value for its index."""
    return np.array_equal(block.samples, sring.pattern(block.first_sample, block.sample_count, seed).reshape(-1, 1))


def intact(view, first):
    """A kept view of one channel of u16 is still the pattern."""
    return view.shape == (len(view), 1) and np.array_equal(view[:, 0], sring.pattern(first, len(view)))


def test_blocks_are_read_only_views_of_the_ring():
    ring = sring.simulate(ring_size=64 * 1024, sample_rate=1e6, block_samples=BLOCK_SAMPLES)
    ring.start(duration=0.05)
    data = ring.data
    assert data.nbytes == 2 * ring.ring_size
    seen = 0
    for block in ring.blocks():
        x = block.samples
        assert x.dtype == np.uint16 and x.shape == (BLOCK_SAMPLES, 1)
        assert np.shares_memory(x, data), "a copy, not a view of the ring"
        offset = x.ctypes.data - data.ctypes.data  # in either half of the mirror
        assert offset % ring.ring_size == (block.position + 64) % ring.ring_size, "right after the header"
        assert not x.flags.writeable
        with pytest.raises(ValueError):
            x[0] = 1
        assert verify(block)
        seen += 1
    assert seen > 0
    assert ring.counters()["exact"]


def test_signed_format_gives_int16():
    ring = sring.simulate(ring_size=64 * 1024, sample_rate=1e6, block_samples=BLOCK_SAMPLES, sample_format="s16")
    ring.start(duration=0.02)
    block = ring.next_block(timeout=5)
    assert block is not None and block.samples.dtype == np.int16 and block.samples.shape == (BLOCK_SAMPLES, 1)
    assert np.array_equal(block.samples[:, 0], sring.pattern(block.first_sample, block.frames).view(np.int16))


def test_a_live_view_pins_its_memory():
    # Flat out: the producer waits for room rather than drop. While a view of
    # block 0 lives, its memory must not be handed back, so the producer
    # fills the ring and waits; released, it laps the ring many times. If the
    # ring were released past the view, the producer would rewrite it.
    ring = sring.simulate(ring_size=64 * 1024, sample_rate=0, block_samples=BLOCK_SAMPLES)
    ring.start()
    try:
        first = ring.next_block(timeout=5)
        kept = first.samples
        first_sample = first.first_sample
        del first
        blocks = list(b.sequence for b in ring.blocks(timeout=0.3))
        assert len(blocks) == 15, "the ring holds 16 blocks; block 0 is still held"
        assert intact(kept, first_sample), "the view's memory was rewritten"
        del kept
        more = 0
        for block in ring.blocks(timeout=0.3):
            assert verify(block)
            more += 1
            if more == 200:
                break
        assert more == 200, "released, the producer runs again"
    finally:
        ring.stop()


def test_keeping_views_forever_is_counted_loss_not_corruption():
    # Paced drop-newest: views kept past the loop cost drops (with a warning),
    # never a rewritten view, and the accounting stays exact.
    ring = sring.simulate(ring_size=64 * 1024, sample_rate=4e6, block_samples=BLOCK_SAMPLES)
    ring.start(duration=0.2)
    kept = []
    with pytest.warns(RuntimeWarning, match="still alive"):
        for block in ring.blocks():
            kept.append((block.first_sample, block.samples))
            if len(kept) == 16:
                time.sleep(0.05)  # the ring is full now: the producer drops
    for first, x in kept:
        assert intact(x, first)
    c = ring.counters()
    assert c["end_of_stream"] and c["exact"], c
    assert c["samples_dropped"] > 0


@pytest.mark.parametrize("policy", ["drop", "overwrite", "stop"])
def test_slow_consumer_exact_accounting(policy):
    ring = sring.simulate(ring_size=128 * 1024, sample_rate=8e6, block_samples=BLOCK_SAMPLES, overrun_policy=policy)
    ring.start(duration=0.3)
    blocks = lost_before = 0
    for block in ring.blocks():
        assert verify(block)
        blocks += 1
        lost_before += block.lost_before
        if blocks % 50 == 0:
            time.sleep(0.01)  # slower than the device now and then
    c = ring.counters()
    assert c["end_of_stream"] and c["exact"], c
    # Under overwrite-oldest a block taken back while it was copied is not
    # handed out at all (it shows in overwritten_while_read).
    assert c["blocks"] == blocks
    assert c["samples"] + c["missing_samples"] == c["samples_produced"]
    assert c["missing_samples"] == c["samples_dropped"]
    if policy == "stop":
        assert c["samples_dropped"] == 0
    else:
        assert c["samples_dropped"] > 0, "the sleeps should have cost samples"
    if policy == "overwrite":
        assert not np.shares_memory(block.samples, ring.data), "overwrite-oldest hands out checked copies"


def test_verifies_every_sample_at_20_msps():
    ring = sring.simulate(ring_size=4 * 1024 * 1024, sample_rate=20e6, block_samples=4096)
    ring.start(duration=1.0)
    started = time.monotonic()
    verified = corrupted = 0
    for block in ring.blocks():
        if verify(block):
            verified += block.sample_count
        else:
            corrupted += 1
    elapsed = time.monotonic() - started
    c = ring.counters()
    print(f"python: {verified / elapsed / 1e6:.1f} MS/s verified, {c['samples_dropped']} dropped")
    assert corrupted == 0
    assert c["exact"] and verified == c["samples"], c


def test_wait_releases_the_gil():
    # Running, but its first block is 200 s away: the wait sleeps.
    ring = sring.simulate(ring_size=64 * 1024, sample_rate=10, block_samples=BLOCK_SAMPLES)
    ring.start()
    ticks = 0
    done = threading.Event()

    def tick():
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    thread = threading.Thread(target=tick)
    thread.start()
    try:
        started = time.monotonic()
        assert ring.next_block(timeout=0.3) is None
        assert time.monotonic() - started >= 0.3
    finally:
        done.set()
        thread.join()
        ring.stop()
    assert ticks > 50, "the other thread did not run during the wait"


def test_stop_from_another_thread_ends_the_loop():
    ring = sring.simulate(ring_size=64 * 1024, sample_rate=1e6, block_samples=BLOCK_SAMPLES)
    ring.start()
    threading.Timer(0.2, ring.stop).start()
    n = sum(1 for _ in ring.blocks())  # waits forever until the stop
    assert n > 0 and ring.counters()["exact"]


def test_errors_say_what_is_wrong():
    with pytest.raises(OSError) as missing:
        sring.open("/dev/sring-does-not-exist")
    assert missing.value.errno == 2 and "/dev/sring-does-not-exist" in str(missing.value)
    with pytest.raises(OSError):
        sring.simulate(ring_size=64 * 1024, block_bytes=100)  # not a multiple of 64
    with pytest.raises(TypeError, match="unknown setting"):
        sring.simulate(ring_size=64 * 1024, sample_rat=1)
    for rate in (-1, float("nan"), 2e9):
        with pytest.raises(ValueError, match="sample_rate"):
            sring.simulate(ring_size=64 * 1024, sample_rate=rate)
    with pytest.raises(ValueError, match="not both"):
        sring.simulate(ring_size=64 * 1024, block_bytes=4096, block_samples=2016)
    with pytest.raises(ValueError, match="overrun_policy"):
        sring.simulate(ring_size=64 * 1024, overrun_policy="overwrite-oldest")
    never_started = sring.simulate(ring_size=64 * 1024)
    with pytest.raises(RuntimeError, match="before start"):
        next(iter(never_started.blocks()))
    twice = sring.simulate(ring_size=64 * 1024, sample_rate=1e6)
    twice.start(duration=0.01)
    with pytest.raises(RuntimeError, match="runs once"):
        twice.start()
    ring = sring.simulate(ring_size=64 * 1024)
    ring.close()
    with pytest.raises(ValueError, match="closed"):
        ring.start()
    with pytest.raises(ValueError, match="closed"):
        next(iter(ring.blocks()))
    assert ring.counters()["state"] == "stopped", "the accounting stays readable"


def run_simulator(socket, *args):
    return subprocess.Popen([f"{BIN}/tools/sring-sim", "--socket", socket, *args],
                            stderr=subprocess.PIPE, text=True)


def producer_totals(stderr):
    m = re.search(r"produced (\d+) blocks \((\d+) (?:samples|frames)\), dropped (\d+) blocks \((\d+) (?:samples|frames)\)",
                  stderr)
    assert m, stderr
    return tuple(int(v) for v in m.groups())


def test_same_counts_as_the_producer_and_as_acquire(tmp_path):
    # A slow Python consumer of an sring-sim process: what it reports is what
    # the producer reports, and acquire, run the same way, reports the same.
    args = ["--rate", "8M", "--duration", "0.5", "--block-size", "4096", "--ring-size", "256K"]
    sim = run_simulator(str(tmp_path / "py.sock"), *args)
    ring = sring.connect(str(tmp_path / "py.sock"))
    ring.start()
    for i, block in enumerate(ring.blocks()):
        assert verify(block)
        if i % 100 == 0:
            time.sleep(0.01)
    c = ring.counters()
    ring.close()  # sring-sim keeps the ring until its consumer hangs up
    _, err = sim.communicate(timeout=30)
    produced_blocks, produced_samples, dropped_blocks, dropped_samples = producer_totals(err)
    assert (c["blocks_produced"], c["samples_produced"]) == (produced_blocks, produced_samples)
    assert (c["missing_blocks"], c["missing_samples"]) == (dropped_blocks, dropped_samples)
    assert c["samples"] + c["missing_samples"] == produced_samples and c["exact"]

    sim = run_simulator(str(tmp_path / "acq.sock"), *args)
    acquire = subprocess.run([f"{BIN}/tools/acquire", "--sim-socket", str(tmp_path / "acq.sock"),
                              "--duration", "2", "--slow-us", "2000", "--allow-loss"],
                             capture_output=True, text=True, timeout=60)
    _, err = sim.communicate(timeout=30)
    assert acquire.returncode == 0, acquire.stdout + acquire.stderr
    _, produced_samples, _, dropped_samples = producer_totals(err)
    samples = int(re.search(r"samples\s+([\d,]+)", acquire.stdout).group(1).replace(",", ""))
    lost = int(re.search(r"lost samples\s+([\d,]+)", acquire.stdout).group(1).replace(",", ""))
    assert (samples + lost, lost) == (produced_samples, dropped_samples), acquire.stdout


def test_ctrl_c_stops_cleanly():
    # Ctrl-C in a wait raises KeyboardInterrupt at once; the device is then
    # stopped, what it made before is drained, and nothing goes missing.
    # Leaving a `with` block stops the device too.
    script = textwrap.dedent("""
        import sring, sys
        ring = sring.simulate(ring_size=1 << 20, sample_rate=2e6, block_samples=2016)
        ring.start()
        print("running", flush=True)
        n = 0
        try:
            for block in ring.blocks():
                n += 1
        except KeyboardInterrupt:
            ring.stop()
            n += sum(1 for _ in ring.blocks())
            c = ring.counters()
            print("interrupted", ring.state, c["exact"], n == c["blocks"] > 0, flush=True)
        with sring.simulate(ring_size=1 << 20, sample_rate=2e6) as other:
            other.start()
            try:
                for block in other.blocks():
                    pass
            except KeyboardInterrupt:
                pass
        print("with:", other.state, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "running"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline().strip() == "interrupted stopped True True"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert out.strip() == "with: stopped"


def test_readme_spectrum_example():
    # The README's numpy example, as a user runs it: a timer thread stops the
    # device while the loop waits, then `with` closes the ring.
    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "spectrum.py")
    run = subprocess.run([sys.executable, example], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.rstrip().endswith("every sample accounted for"), run.stdout


def test_views_kept_across_the_release_step_stay_intact():
    # Flat out with a full ring: the producer writes the moment space is
    # given back. Views of blocks 1..5 must survive the release step that
    # lets block 0 go (a block's own memory must not go in the release
    # that counts it).
    ring = sring.simulate(ring_size=64 * 1024, sample_rate=0, block_samples=BLOCK_SAMPLES)
    ring.start()
    try:
        time.sleep(0.1)
        ring.next_block(timeout=5)  # block 0: no view kept
        kept = [ring.next_block(timeout=5) for _ in range(5)]
        views = [(b.first_sample, b.samples) for b in kept]
        del kept
        time.sleep(0.1)
        for first, v in views:
            assert intact(v, first), f"block at sample {first} rewritten"
    finally:
        ring.stop()


def test_a_view_outlives_its_ring_object():
    # The Ring object goes, an iterator goes on: a view taken before stays
    # pinned (the Blocks, not the Ring, say what is alive).
    ring = sring.simulate(ring_size=64 * 1024, sample_rate=0, block_samples=BLOCK_SAMPLES)
    ring.start(duration=0.5)
    it = ring.blocks(timeout=0.3)
    block = next(it)
    first, v = block.first_sample, block.samples
    del block, ring
    n = sum(1 for _ in it)
    assert n == 15, "the view pins block 0: the ring holds 15 more"
    assert intact(v, first)


def test_timeouts_none_inf_and_bad():
    ring = sring.simulate(ring_size=64 * 1024, sample_rate=1e6, block_samples=BLOCK_SAMPLES)
    ring.start(duration=0.2)
    assert ring.next_block(timeout=float("inf")) is not None, "inf waits, it does not return at once"
    assert ring.next_block(timeout=1e12) is not None
    with pytest.raises(ValueError):
        ring.next_block(timeout=-1)
    with pytest.raises(ValueError):
        ring.next_block(timeout=float("nan"))
    ring.stop()
