"""sring.subscribe() against a real sring-publish process over tcp loopback:
every sample verified against the pattern the stream says it carries, and
the accounting exact (received + missing == produced). SRING_BIN holds
sring-publish."""

import os
import socket
import subprocess
import time

import numpy as np
import pytest

import sring

BIN = os.environ.get("SRING_BIN", "bazel-bin")
PUBLISH = os.path.join(BIN, "tools", "sring-publish")
SEED = 7  # not the default 1: the test checks the seed came over the wire


def free_port():
    # A port the kernel just gave out; the publisher binds it right after.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_pull_worker_verifies_every_sample_and_accounts_exactly():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    publisher = subprocess.Popen(
        [PUBLISH, "--sim", "--bind", endpoint, "--pattern", "push", "--wait-peers", "1",
         "--duration", "1", "--rate", "4M", "--seed", str(SEED)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        sub = sring.subscribe(endpoint, pattern="pull", timeout=20)
        blocks = samples = 0
        next_sample = 0
        for block in sub:
            assert (block.format, block.channels) == ("u16", 1)
            x = block.samples[:, 0]  # shape (frames, channels): the one channel
            assert block.samples.dtype == np.uint16 and block.samples.shape == (block.sample_count, 1)
            assert not x.flags.writeable
            if blocks == 0:
                assert sub.pattern_seed == SEED, "the stream's seed, carried by each block"
                # The check below tells seeds apart: it can fail.
                assert not np.array_equal(x, sring.pattern(block.first_sample, block.sample_count, SEED + 1))
            assert np.array_equal(x, sring.pattern(block.first_sample, block.sample_count, sub.pattern_seed)), \
                f"block {block.sequence}: samples are not the pattern"
            assert block.lost_before == block.first_sample - next_sample
            next_sample = block.first_sample + block.sample_count
            blocks += 1
            samples += block.sample_count
        out, _ = publisher.communicate(timeout=30)
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
    assert publisher.returncode == 0, out
    assert sub.end_of_stream
    c = sub.counters()
    assert c["end_of_stream"]
    assert c["blocks"] == blocks > 0 and c["samples"] == samples > 0
    assert c["samples_produced"] > 0
    assert c["samples"] + c["missing_samples"] == c["samples_produced"], c
    assert c["blocks"] + c["missing_blocks"] == c["blocks_produced"], c
    assert c["missing_samples"] == c["samples_dropped"] and c["exact"], c
    assert c["lost_in_transit_samples"] == 0, c
    # Iterating past the end yields nothing more.
    assert next(iter(sub), None) is None


def test_no_publisher_raises_timeout_error_and_counters_are_not_final():
    sub = sring.subscribe(f"tcp://127.0.0.1:{free_port()}", pattern="sub", timeout=0.3)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        next(iter(sub))
    assert 0.25 < time.monotonic() - start < 5
    c = sub.counters()
    assert not c["end_of_stream"] and not c["exact"] and c["blocks"] == 0


def test_bad_arguments():
    with pytest.raises(ValueError):
        sring.subscribe("tcp://127.0.0.1:5555", pattern="push")
    with pytest.raises(ValueError):
        sring.subscribe("tcp://127.0.0.1:5555", timeout=-1)
    with pytest.raises(OSError):
        sring.subscribe("nonsense://x")


def test_a_slow_worker_makes_the_ring_drop_and_the_accounting_stays_exact():
    # Back-pressure: small HWMs and ring, a consumer slower than the rate.
    # The ring drops (counted by the producer), the subscriber sees the gaps,
    # and missing == dropped exactly: the case where `exact` says something.
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    publisher = subprocess.Popen(
        [PUBLISH, "--sim", "--bind", endpoint, "--pattern", "push", "--wait-peers", "1", "--duration", "1",
         "--rate", "20M", "--hwm", "4", "--ring-size", "256K", "--seed", str(SEED)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        sub = sring.subscribe(endpoint, pattern="pull", timeout=20, hwm=4)
        gaps = 0
        for block in sub:
            assert np.array_equal(block.samples[:, 0], sring.pattern(block.first_sample, block.sample_count, SEED))
            gaps += block.lost_before > 0
            time.sleep(0.002)
        out, _ = publisher.communicate(timeout=30)
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
    assert publisher.returncode == 0, out
    c = sub.counters()
    assert c["samples_dropped"] > 0 and gaps > 0, c
    assert c["samples"] + c["missing_samples"] == c["samples_produced"], c
    assert c["missing_samples"] == c["samples_dropped"] and c["exact"], c


@pytest.mark.parametrize("name,channels", [("cs16", 2), ("f32", 4), ("sim-packed12", 3)])
def test_formats_and_channels_arrive_shaped_as_a_rings_blocks(name, channels):
    # Over the wire in another layout: each block's copy has the dtype and
    # shape of a ring's block, every value is the pattern (numpy, from
    # docs/abi.md), and the accounting is exact.
    from pattern_numpy import FORMATS, expected
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    publisher = subprocess.Popen(
        [PUBLISH, "--sim", "--bind", endpoint, "--pattern", "push", "--wait-peers", "1", "--duration", "0.3",
         "--rate", "1M", "--seed", str(SEED), "--format", name, "--channels", str(channels)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        sub = sring.subscribe(endpoint, pattern="pull", timeout=20)
        blocks = 0
        for block in sub:
            assert (block.format, block.channels, block.bits_per_sample) == (name, channels, FORMATS[name][1])
            want = expected(name, channels, block.first_sample, block.frames, SEED)
            x = block.samples
            assert x.dtype == want.dtype and x.shape == want.shape and not x.flags.writeable
            assert x.nbytes == block.payload_bytes
            assert np.array_equal(x.view(np.uint8), want.view(np.uint8)), f"block {block.sequence}"
            blocks += 1
        out, _ = publisher.communicate(timeout=30)
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
    assert publisher.returncode == 0, out
    c = sub.counters()
    assert blocks > 0 and c["blocks"] == blocks and c["exact"], c
