"""Sample formats and channels (ABI 1.4) through the Python binding: every
format x 1, 2 and 4 channels from an sring-sim process, each block's array
of the right dtype and shape, a view of the ring (zero-copy), every value
equal to the pattern computed in numpy (pattern_numpy.py, from docs/abi.md
alone), and the accounting exact against the producer's own totals; then
the in-process simulated device's settings, overwrite-oldest's copies, and
bad input (a dtype that is not the samples', an unknown format name, a bad
channel count), which raises and changes nothing. Run by scripts/test.sh
with PYTHONPATH at the built package and SRING_BIN at the tools."""

import os
import re
import subprocess
import time

import numpy as np
import pytest

import sring
from pattern_numpy import FORMATS, expected, frames_per_block, payload_bytes

BIN = os.environ.get("SRING_BIN", "bazel-bin")
BLOCK_BYTES = 4096
DTYPES = {name: np.dtype(dtype) for name, (dtype, _, _) in FORMATS.items()}


def shape_of(name, channels, frames):
    if name == "sim-packed12":
        return (payload_bytes(name, channels, frames),)  # a device's own format: its bytes
    if name == "cs16":
        return (frames, channels, 2)
    return (frames, channels)


def producer_totals(stderr):
    m = re.search(r"produced (\d+) blocks \((\d+) (?:samples|frames)\), dropped (\d+) blocks \((\d+) (?:samples|frames)\)",
                  stderr)
    assert m, stderr
    return tuple(int(v) for v in m.groups())


def check_block(block, ring_data, ring_size, name, channels, frames, seed=1):
    """dtype, shape, zero-copy, read-only, every value; returns the view."""
    x = block.samples
    assert (block.format, block.channels, block.bits_per_sample) == (name, channels, FORMATS[name][1])
    assert block.frames == block.sample_count == frames
    assert block.payload_bytes == payload_bytes(name, channels, frames)
    assert x.dtype == DTYPES[name], (name, x.dtype)
    assert x.shape == shape_of(name, channels, frames), (name, channels, x.shape)
    assert x.nbytes == block.payload_bytes
    assert not x.flags.writeable
    # A view of the ring, right after the block's header, not a copy.
    assert np.shares_memory(x, ring_data), "a copy, not a view of the ring"
    offset = x.ctypes.data - ring_data.ctypes.data  # in either half of the mirror
    assert offset % ring_size == (block.position + 64) % ring_size, "right after the header"
    payload = block.payload
    assert payload.dtype == np.uint8 and payload.shape == (block.payload_bytes,)
    assert payload.ctypes.data == x.ctypes.data and np.shares_memory(payload, ring_data)
    want = expected(name, channels, block.first_sample, frames, seed)
    assert want.dtype == x.dtype and want.shape == x.shape
    # Bit for bit (floats too: the pattern's floats are exact).
    assert np.array_equal(x.view(np.uint8), want.view(np.uint8)), \
        f"{name} x {channels}: block {block.sequence} is not the pattern"
    return x


@pytest.mark.parametrize("channels", [1, 2, 4])
@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_and_channel_count_from_sring_sim(tmp_path, name, channels):
    socket = str(tmp_path / "sim.sock")
    # 1 M frames/s into a 128 KiB ring of 4 KiB blocks: the 0.2 s pause
    # below overflows it in every layout (drop-newest: counted losses).
    sim = subprocess.Popen([f"{BIN}/tools/sring-sim", "--socket", socket, "--format", name,
                            "--channels", str(channels), "--rate", "1M", "--duration", "0.4",
                            "--block-size", str(BLOCK_BYTES), "--ring-size", "128K"],
                           stderr=subprocess.PIPE, text=True)
    try:
        ring = sring.connect(socket)
        frames = frames_per_block(name, channels, BLOCK_BYTES)
        config = ring.config()
        assert (config["sample_format"], config["channels"], config["bits_per_sample"], config["block_samples"]) \
            == (name, channels, FORMATS[name][1], frames)
        data = ring.data
        ring.start()
        blocks = given = lost_before = 0
        next_frame = 0
        for block in ring.blocks():
            check_block(block, data, ring.ring_size, name, channels, frames)
            assert block.first_sample == next_frame + block.lost_before, "first_sample counts frames"
            next_frame = block.first_sample + block.frames
            blocks += 1
            given += block.frames
            lost_before += block.lost_before
            if blocks == 1:
                time.sleep(0.2)  # the ring overflows meanwhile
        c = ring.counters()
        ring.close()  # sring-sim keeps the ring until its consumer hangs up
        _, err = sim.communicate(timeout=30)
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait()
    produced_blocks, produced_frames, dropped_blocks, dropped_frames = producer_totals(err)
    assert c["end_of_stream"] and c["exact"], c
    assert dropped_frames > 0, "the pause must cost frames, or the loss accounting was not exercised"
    assert (c["blocks"], c["samples"]) == (blocks, given)
    assert (c["blocks_produced"], c["samples_produced"]) == (produced_blocks, produced_frames)
    assert (c["missing_blocks"], c["missing_samples"]) == (dropped_blocks, dropped_frames)
    assert c["samples"] + c["missing_samples"] == produced_frames == produced_blocks * frames
    assert c["missing_samples"] == lost_before + (produced_frames - next_frame)


def test_cs16_converts_to_complex_in_one_step():
    # What the docstring promises for cs16: int16 (frames, channels, 2)
    # becomes complex64 (frames, channels) with astype + view, I real, Q imaginary.
    ring = sring.simulate(ring_size=64 * 1024, sample_rate=1e6, block_bytes=BLOCK_BYTES, sample_format="cs16",
                          channels=2)
    ring.start(duration=0.02)
    block = ring.next_block(timeout=5)
    x = block.samples
    z = x.astype(np.float32).view(np.complex64)[..., 0]
    assert z.shape == (block.frames, 2) and z.dtype == np.complex64
    assert np.array_equal(z.real, x[..., 0]) and np.array_equal(z.imag, x[..., 1])
    ring.stop()


@pytest.mark.parametrize("name,channels", [("u8", 3), ("cs16", 2), ("cf32", 4), ("f32", 1), ("sim-packed12", 2)])
def test_in_process_simulator_takes_format_and_channels(name, channels):
    # block_samples counts frames of the layout, whatever order the settings
    # come in; config() says the layout.
    ring = sring.simulate(ring_size=256 * 1024, block_samples=500, channels=channels, sample_format=name,
                          sample_rate=2e6)
    config = ring.config()
    frames = frames_per_block(name, channels, config["block_bytes"])
    assert config["block_bytes"] == (64 + payload_bytes(name, channels, 500) + 63) // 64 * 64
    assert (config["sample_format"], config["channels"], config["bits_per_sample"], config["block_samples"]) \
        == (name, channels, FORMATS[name][1], frames)
    assert frames >= 500
    data = ring.data
    ring.start(duration=0.05)
    seen = 0
    for block in ring.blocks():
        check_block(block, data, ring.ring_size, name, channels, frames)
        seen += 1
    c = ring.counters()
    assert seen > 0 and c["exact"] and c["samples"] == seen * frames, c


def test_configure_sets_channels_and_format_before_start():
    ring = sring.simulate(ring_size=64 * 1024, sample_rate=1e6)
    assert (ring.config()["sample_format"], ring.config()["channels"]) == ("u16", 1)
    ring.configure(sample_format="s32", channels=4, block_samples=200)
    config = ring.config()
    assert (config["sample_format"], config["channels"], config["block_samples"]) == ("s32", 4, 200)
    data = ring.data
    ring.start(duration=0.02)
    block = ring.next_block(timeout=5)
    check_block(block, data, ring.ring_size, "s32", 4, 200)
    ring.stop()


def test_one_channel_is_two_dimensional_too():
    # The shape is (frames, channels) for every channel count: one channel
    # is (frames, 1), and x[:, 0] is the channel as a 1-D view.
    ring = sring.simulate(ring_size=64 * 1024, sample_rate=1e6, block_bytes=BLOCK_BYTES)
    data = ring.data
    ring.start(duration=0.02)
    block = ring.next_block(timeout=5)
    x = block.samples
    assert x.shape == (2016, 1) and x.dtype == np.uint16
    column = x[:, 0]
    assert column.shape == (2016,) and np.shares_memory(column, data)
    assert np.array_equal(column, sring.pattern(block.first_sample, block.frames))
    ring.stop()


@pytest.mark.parametrize("name,channels", [("cs16", 2), ("f32", 3), ("sim-packed12", 1)])
def test_overwrite_oldest_hands_out_copies_shaped_as_views(name, channels):
    ring = sring.simulate(ring_size=64 * 1024, sample_rate=2e6, block_bytes=BLOCK_BYTES, sample_format=name,
                          channels=channels, overrun_policy="overwrite")
    data = ring.data
    ring.start(duration=0.05)
    frames = frames_per_block(name, channels, BLOCK_BYTES)
    seen = 0
    for block in ring.blocks():
        x = block.samples
        assert x.dtype == DTYPES[name] and x.shape == shape_of(name, channels, frames)
        assert not np.shares_memory(x, data), "overwrite-oldest hands out checked copies"
        assert not x.flags.writeable
        assert np.array_equal(x.view(np.uint8), expected(name, channels, block.first_sample, frames).view(np.uint8))
        assert np.array_equal(block.payload, x.reshape(-1).view(np.uint8))
        seen += 1
    assert seen > 0 and ring.counters()["exact"]


# name: a dtype that is not its samples'
WRONG_DTYPE = {"u8": np.int8, "s8": np.uint8, "u16": np.int16, "s16": np.uint16, "s32": np.float32,
               "f32": np.int32, "cs16": np.complex64, "cf32": np.float32, "sim-packed12": np.uint16}


@pytest.mark.parametrize("name", list(FORMATS))
def test_array_dtype_must_be_the_samples_own(name):
    ring = sring.simulate(ring_size=64 * 1024, sample_rate=1e6, block_bytes=BLOCK_BYTES, sample_format=name,
                          channels=2)
    data = ring.data
    ring.start(duration=0.02)
    block = ring.next_block(timeout=5)
    frames = frames_per_block(name, 2, BLOCK_BYTES)
    given = ("blocks", "samples", "missing_blocks", "missing_samples")  # the producer runs on meanwhile
    before = {k: ring.counters()[k] for k in given}
    with pytest.raises(sring.FormatMismatch, match=f"is {re.escape(name)} x 2 channels") as wrong:
        block.array(dtype=WRONG_DTYPE[name])
    assert isinstance(wrong.value, ValueError)
    assert np.dtype(WRONG_DTYPE[name]).name in str(wrong.value) and DTYPES[name].name in str(wrong.value)
    # Nothing changed: the same block, the same accounting, and its own
    # dtype gives the view.
    assert {k: ring.counters()[k] for k in given} == before
    x = block.array(dtype=DTYPES[name])
    assert x.dtype == DTYPES[name] and x.shape == shape_of(name, 2, frames)
    assert np.shares_memory(x, data) and x.ctypes.data == block.samples.ctypes.data
    assert block.array().ctypes.data == x.ctypes.data, "no dtype: the samples"
    assert np.array_equal(x.view(np.uint8), expected(name, 2, block.first_sample, frames).view(np.uint8))
    with pytest.raises(TypeError):
        block.array(dtype="not-a-dtype")
    ring.stop()


def test_bad_format_and_channels_are_refused_and_change_nothing():
    for bad in ("u12", "U16", "complex", ""):
        with pytest.raises(ValueError, match="sample_format"):
            sring.simulate(ring_size=64 * 1024, sample_format=bad)
    for bad in (0, -1, 257):
        with pytest.raises(ValueError, match="channels: 1 to 256"):
            sring.simulate(ring_size=64 * 1024, channels=bad)
    with pytest.raises(ValueError, match="driver"):
        sring.simulate(ring_size=64 * 1024, sample_format=0x8001, block_samples=100)
    # A frame count whose size would wrap 64 bits is too large, not small.
    for frames in (2**61 + 1000, 2**64 - 1, (1 << 20) * 8 + 1):
        with pytest.raises(ValueError, match="block_samples"):
            sring.simulate(ring_size=64 * 1024, sample_format="u8", block_samples=frames)
    with pytest.raises(OSError):
        sring.simulate(ring_size=64 * 1024, sample_format=0x8001, block_bytes=4096)  # the simulator cannot make it
    ring = sring.simulate(ring_size=64 * 1024, sample_rate=1e6, sample_format="cs16", channels=2)
    before = ring.config()
    with pytest.raises(ValueError, match="not 'u12'"):
        ring.configure(sample_format="u12", channels=4)
    with pytest.raises(ValueError, match="channels"):
        ring.configure(channels=300, sample_format="u8")
    assert ring.config() == before, "a refused configure() changes nothing"
    ring.start(duration=0.02)
    block = ring.next_block(timeout=5)
    assert (block.format, block.channels) == ("cs16", 2)
    ring.stop()
