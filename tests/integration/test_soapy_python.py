"""sring's SoapySDR module from Python: Debian's python3-soapysdr (`import
SoapySDR`) against driver=sring, the in-process simulated device (sim=1) and
an sring-sim process. Every sample read is checked against the pattern
(python/tests/pattern_numpy.py, written from docs/abi.md alone), and the
accounting is exact: delivered + dropped == produced, from the module's
readSetting() counters (and sring-sim's own totals), gaps located through
SOAPY_SDR_OVERFLOW and readSetting("samples_dropped").

Direct buffer access: python3-soapysdr 0.8.1 declares acquireReadBuffer()
and getDirectAccessBufferAddrs(), but its SWIG wrapper has no typemaps for
their size_t& / const void** / int& / long long& out-arguments, so they cannot
be called (TypeError; test_swig_direct_access_is_not_callable pins that). The
same device is reachable through SoapySDR's C API with ctypes (the SWIG
objects hold the C++ pointers the C API takes), which is how
test_direct_buffer_access_zero_copy reads the ring in place.

Run by scripts/test.sh with SRING_BIN (the module under soapy/, sring-sim)."""

import contextlib
import ctypes
import ctypes.util
import os
import sys
import time

import numpy as np
import pytest

from conftest import SOAPY_PLUGIN_PATH, SOURCE, sim_totals, start_sim, stop_sim, tool

os.environ["SOAPY_SDR_PLUGIN_PATH"] = SOAPY_PLUGIN_PATH  # before SoapySDR loads its modules
import SoapySDR  # noqa: E402
from SoapySDR import (SOAPY_SDR_CF32, SOAPY_SDR_END_BURST, SOAPY_SDR_HAS_TIME, SOAPY_SDR_OVERFLOW,  # noqa: E402
                      SOAPY_SDR_RX, SOAPY_SDR_TIMEOUT)

sys.path.insert(0, os.path.join(SOURCE, "python", "tests"))
import pattern_numpy  # noqa: E402

# SoapySDR stream format -> (numpy dtype of a buffer, values per sample).
BUFFERS = {"U8": (np.uint8, 1), "S8": (np.int8, 1), "U16": (np.uint16, 1), "S16": (np.int16, 1),
           "S32": (np.int32, 1), "F32": (np.float32, 1), "CS16": (np.int16, 2), "CF32": (np.complex64, 1)}


@pytest.fixture(autouse=True, scope="module")
def module_built():
    tool("soapy/libsringSupport.so")


@contextlib.contextmanager
def opened(args, fmt=None, channels=(0,)):
    """A device (and a stream on it), closed on the way out. Closing
    matters: SoapySDR keeps a table of open devices keyed by what find()
    reports, and a make() with the same arguments while one is still open
    gets that device back, in whatever state it was left."""
    dev = SoapySDR.Device(args)
    stream = None
    try:
        if fmt is not None:
            stream = dev.setupStream(SOAPY_SDR_RX, fmt, list(channels))
        yield (dev, stream) if fmt is not None else dev
    finally:
        if stream is not None:
            dev.deactivateStream(stream)
            dev.closeStream(stream)
        dev.close()


def expected(name, channels, channel, first, n):
    """Channel `channel` of n frames from `first`, shaped like a buffer of
    that channel (pattern_numpy.expected gives all channels)."""
    return pattern_numpy.expected(name, channels, first, n)[:, channel].reshape(-1)


class Reader:
    """readStream() until the end of the stream, checking every sample of
    every channel against the pattern `name` at its absolute index. After a
    SOAPY_SDR_OVERFLOW the index of the next sample is what was delivered
    plus what the module counts as dropped (readSetting("samples_dropped")),
    so every gap is placed exactly, not guessed."""

    def __init__(self, dev, stream, fmt, name, channels, nchan, chunk, pause=0.0):
        self.dev, self.stream, self.name, self.channels, self.nchan = dev, stream, name, channels, nchan
        dtype, per = BUFFERS[fmt]
        self.per = per
        self.buffs = [np.zeros(chunk * per, dtype) for _ in channels]
        self.chunk, self.pause = chunk, pause
        self.index = self.delivered = self.overflows = self.calls_with_end = 0
        self.times = []

    def run(self, limit_s=60):
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            r = self.dev.readStream(self.stream, self.buffs, self.chunk, timeoutUs=2_000_000)
            if r.ret == SOAPY_SDR_OVERFLOW:
                self.overflows += 1
                self.index = self.delivered + int(self.dev.readSetting("samples_dropped"))
                continue
            assert r.ret != SOAPY_SDR_TIMEOUT, "no data and no end within 2 s"
            assert r.ret >= 0, SoapySDR.errToStr(r.ret)
            n = r.ret
            for buf, c in zip(self.buffs, self.channels):
                got = buf[:n * self.per]
                want = expected(self.name, self.nchan, c, self.index, n)
                assert np.array_equal(got, want), f"channel {c}: samples {self.index}..{self.index + n} differ"
            if n:
                self.times.append(r.timeNs)
            self.index += n
            self.delivered += n
            if r.flags & SOAPY_SDR_END_BURST:
                return self
            if self.pause:
                time.sleep(self.pause)  # a slow reader: the ring overflows under the drop policy
        pytest.fail("the stream did not end")


READ_ONLY_TYPES = {"samples_delivered": SoapySDR.ArgInfo.INT, "samples_dropped": SoapySDR.ArgInfo.INT,
                   "samples_produced": SoapySDR.ArgInfo.INT, "producer_samples_dropped": SoapySDR.ArgInfo.INT,
                   "overflows": SoapySDR.ArgInfo.INT, "overwritten_while_read": SoapySDR.ArgInfo.INT,
                   "end_of_stream": SoapySDR.ArgInfo.BOOL, "exact": SoapySDR.ArgInfo.BOOL,
                   "state": SoapySDR.ArgInfo.STRING, "source": SoapySDR.ArgInfo.STRING}


def counters(dev):
    """The read-only settings, by readSetting(); getSettingInfo() must list
    the same live values, typed (GNU Radio 3.10.5's source returns those)."""
    c = {k: dev.readSetting(k) for k in READ_ONLY_TYPES}
    listed = {a.key: a for a in dev.getSettingInfo()}
    for k, t in READ_ONLY_TYPES.items():
        assert (listed[k].value, listed[k].type) == (c[k], t), (k, listed[k].value, listed[k].type, c)
    return c


def read_everything(args, fmt, name, channels=(0,), nchan=1, pause=0.0, rate=2e6):
    with opened(args) as dev:
        dev.setSampleRate(SOAPY_SDR_RX, 0, rate)  # before the stream: it configures the producer
        assert dev.getSampleRate(SOAPY_SDR_RX, 0) == rate
        stream = dev.setupStream(SOAPY_SDR_RX, fmt, list(channels))
        try:
            dev.activateStream(stream)
            reader = Reader(dev, stream, fmt, name, channels, nchan, dev.getStreamMTU(stream), pause).run()
            # readStreamStatus(): the overflows told since the last call (one
            # OVERFLOW for all of them), then nothing new.
            reader.status = [dev.readStreamStatus(stream, timeoutUs=0) for _ in range(2)]
            return reader, counters(dev)
        finally:
            dev.deactivateStream(stream)
            dev.closeStream(stream)


def test_enumerate_and_identify():
    found = [dict(k) for k in SoapySDR.Device.enumerate("driver=sring")]
    assert any(k.get("sim") == "1" and k["driver"] == "sring" for k in found), found
    only = [dict(k) for k in SoapySDR.Device.enumerate("driver=sring,sim=1")]
    assert len(only) == 1 and only[0]["driver"] == "sring", only
    with opened("driver=sring,sim=1,format=cs16,channels=2") as dev:
        assert dev.getDriverKey() == "sring"
        assert dev.getNumChannels(SOAPY_SDR_RX) == 2
        assert {"CS16", "CF32"} <= set(dev.getStreamFormats(SOAPY_SDR_RX, 0))
        keys = {a.key for a in dev.getSettingInfo()}
    assert {"policy", "format", "samples_dropped", "samples_produced", "end_of_stream"} <= keys, keys


@pytest.mark.parametrize("dev_format, fmt, name", [
    ("u16", "U16", "u16"),      # native
    ("cs16", "CS16", "cs16"),   # native, complex
    ("cs16", SOAPY_SDR_CF32, "cf32"),  # SoapySDR's converter at full scale 32768: exactly the cf32 pattern
    ("cf32", "CF32", "cf32"),
    ("s16", "S16", "s16"),
])
def test_read_stream_every_sample_verified(dev_format, fmt, name):
    # The stop policy: nothing is dropped; if Python falls behind the
    # device stops early, which is the end of the stream like any other.
    reader, c = read_everything(f"driver=sring,sim=1,format={dev_format},policy=stop,duration=0.3", fmt, name)
    assert reader.delivered > 0 and reader.overflows == 0
    assert [st.ret for st in reader.status] == [SOAPY_SDR_TIMEOUT] * 2
    assert int(c["samples_delivered"]) == reader.delivered == int(c["samples_produced"]), c
    assert int(c["samples_dropped"]) == 0 and c["end_of_stream"] == "true" and c["exact"] == "true", c
    assert reader.times == sorted(reader.times), "block times go forward"


def test_two_channels_deinterleaved():
    # Two interleaved channels in the ring, one buffer per channel; and the
    # second channel alone.
    reader, c = read_everything("driver=sring,sim=1,format=s16,channels=2,policy=stop,duration=0.2", "S16", "s16",
                                   channels=(0, 1), nchan=2)
    assert reader.delivered == int(c["samples_produced"]) > 0 and int(c["samples_dropped"]) == 0, c
    reader, c = read_everything("driver=sring,sim=1,format=cs16,channels=2,policy=stop,duration=0.2", "CF32",
                                   "cf32", channels=(1,), nchan=2)
    assert reader.delivered == int(c["samples_produced"]) > 0, c


def test_drop_policy_exact_accounting():
    # A slow reader of a fast device with a small ring: blocks are dropped.
    # Each gap comes as one SOAPY_SDR_OVERFLOW, the samples after it are
    # checked at the index the module's dropped count gives, and at the end
    # delivered + dropped == produced, the module's dropped count being the
    # producer's.
    reader, c = read_everything("driver=sring,sim=1,format=u16,policy=drop,ring_size=256K,duration=0.5",
                                "U16", "u16", pause=0.002, rate=20e6)
    delivered, dropped, produced = (int(c[k]) for k in ("samples_delivered", "samples_dropped", "samples_produced"))
    assert reader.overflows > 0 and dropped > 0, c
    assert delivered == reader.delivered and delivered + dropped == produced, c
    assert dropped == int(c["producer_samples_dropped"]) and int(c["overflows"]) == reader.overflows, c
    assert c["exact"] == "true", c
    first, second = reader.status
    assert (first.ret, first.flags & SOAPY_SDR_HAS_TIME, second.ret) == (SOAPY_SDR_OVERFLOW, SOAPY_SDR_HAS_TIME,
                                                                         SOAPY_SDR_TIMEOUT), (str(first), str(second))
    assert first.chanMask == 1 and reader.times[0] < first.timeNs <= reader.times[-1], str(first)


def test_end_of_stream():
    # The last data carries SOAPY_SDR_END_BURST; a read after it returns 0
    # samples with SOAPY_SDR_END_BURST again, at once, and so does the next
    # (after its timeout), never an error or new data.
    with opened("driver=sring,sim=1,format=u16,policy=stop,duration=0.05", "U16") as (dev, stream):
        dev.activateStream(stream)
        Reader(dev, stream, "U16", "u16", (0,), 1, 4096).run()
        buf = np.zeros(4096, np.uint16)
        for timeout in (0, 100_000):
            r = dev.readStream(stream, [buf], len(buf), timeoutUs=timeout)
            assert (r.ret, r.flags & SOAPY_SDR_END_BURST) == (0, SOAPY_SDR_END_BURST), r
        assert dev.readSetting("end_of_stream") == "true"


def test_sring_sim_process(tmp_path):
    # An sring-sim process, cs16 read as CF32 by a slow reader under the
    # drop policy: the module's counts are the producer's own (sring-sim
    # prints them when its consumer hangs up).
    sock = str(tmp_path / "py.sock")
    sim = start_sim(sock, "--rate", "8M", "--format", "cs16", "--policy", "drop", "--ring-size", "256K",
                    "--duration", "0.5")
    try:
        with opened(f"driver=sring,sim_socket={sock}", SOAPY_SDR_CF32) as (dev, stream):
            dev.activateStream(stream)
            reader = Reader(dev, stream, "CF32", "cf32", (0,), 1, 4096, pause=0.002).run()
            c = counters(dev)
        produced, dropped, err = sim_totals(sim, timeout=30)
    finally:
        stop_sim(sim)
    assert (int(c["samples_produced"]), int(c["samples_dropped"])) == (produced, dropped), (c, err)
    assert reader.delivered + dropped == produced and reader.overflows > 0, (c, err)


# --- which device make() returns -------------------------------------------

def test_sim_devices_with_other_arguments_are_other_devices():
    # find() reports sim=1 with the configuration asked for, so SoapySDR's
    # table of open devices returns an open device only to the same
    # arguments: two configurations stream side by side, each its own
    # pattern from index 0.
    a = SoapySDR.Device("driver=sring,sim=1,format=cs16,rate=3M,policy=stop,duration=0.1")
    try:
        b = SoapySDR.Device("driver=sring,sim=1,format=u16,policy=stop,duration=0.1")
        try:
            same = SoapySDR.Device("driver=sring,sim=1,format=cs16,rate=3M,policy=stop,duration=0.1")
            assert int(same.this) == int(a.this), "the same arguments: the open device"
            same.close()
            assert int(b.this) != int(a.this)
            assert (a.readSetting("format"), a.readSetting("rate"), b.readSetting("format")) == ("cs16", "3000000",
                                                                                                 "u16")
            sa, sb = a.setupStream(SOAPY_SDR_RX, "CS16", [0]), b.setupStream(SOAPY_SDR_RX, "U16", [0])
            a.activateStream(sa)
            b.activateStream(sb)
            ra = Reader(a, sa, "CS16", "cs16", (0,), 1, 4096).run()
            rb = Reader(b, sb, "U16", "u16", (0,), 1, 4096).run()
            assert ra.delivered == int(a.readSetting("samples_produced")) > 0 and ra.overflows == 0
            assert rb.delivered == int(b.readSetting("samples_produced")) > 0 and rb.overflows == 0
            for d, st in ((a, sa), (b, sb)):
                d.deactivateStream(st)
                d.closeStream(st)
        finally:
            b.close()
    finally:
        a.close()


def test_sring_sim_process_open_is_found_and_made_again(tmp_path):
    # sring-sim removes its socket once its consumer connected; find()
    # still lists the path while this process has it open, and a second
    # make() with the same arguments returns that device (not an error).
    sock = str(tmp_path / "again.sock")
    sim = start_sim(sock, "--rate", "1M", "--format", "cs16", "--duration", "0.2")
    args = f"driver=sring,sim_socket={sock}"
    try:
        with opened(args, "CS16") as (dev, stream):
            deadline = time.monotonic() + 10
            while os.path.exists(sock):  # sring-sim unlinks it after accepting
                assert time.monotonic() < deadline, "sring-sim kept its socket"
                time.sleep(0.01)
            assert [dict(k).get("sim_socket") for k in SoapySDR.Device.enumerate(args)] == [sock]
            again = SoapySDR.Device(args)
            assert int(again.this) == int(dev.this)
            assert again.readSetting("source") == f"sim_socket={sock}"
            again.close()  # SoapySDR counts the makes: dev stays open
            dev.activateStream(stream)
            reader = Reader(dev, stream, "CS16", "cs16", (0,), 1, 4096).run()
            assert reader.delivered == int(dev.readSetting("samples_produced")) > 0
        # Closed: nothing left to find.
        assert list(SoapySDR.Device.enumerate(args)) == []
        produced, dropped, err = sim_totals(sim, timeout=30)
    finally:
        stop_sim(sim)
    assert (reader.delivered, dropped) == (produced, 0), err


# --- direct buffer access -------------------------------------------------

def test_swig_direct_access_is_not_callable():
    # What python3-soapysdr offers: the count works, the calls that hand
    # out buffers do not (no typemaps for their out-arguments).
    with opened("driver=sring,sim=1,format=u16", "U16") as (dev, stream):
        assert dev.getNumDirectAccessBuffers(stream) > 0
        with pytest.raises(TypeError):
            dev.acquireReadBuffer(stream, 0, [0], 0, 0, 100_000)
        with pytest.raises(TypeError):
            dev.getDirectAccessBufferAddrs(stream, 0, [0])


class DirectAccess:
    """SoapySDR's C API on a python3-soapysdr device and stream: the SWIG
    objects wrap the SoapySDR::Device* and SoapySDR::Stream* that the C
    API's SoapySDRDevice* and SoapySDRStream* are (SoapySDR's C API casts
    one to the other)."""

    def __init__(self, dev, stream):
        lib = ctypes.CDLL(ctypes.util.find_library("SoapySDR") or "libSoapySDR.so.0.8")
        P, L = ctypes.c_void_p, ctypes.POINTER
        self.acquire = lib.SoapySDRDevice_acquireReadBuffer
        self.acquire.argtypes = [P, P, L(ctypes.c_size_t), L(P), L(ctypes.c_int), L(ctypes.c_longlong), ctypes.c_long]
        self.acquire.restype = ctypes.c_int
        self.release = lib.SoapySDRDevice_releaseReadBuffer
        self.release.argtypes = [P, P, ctypes.c_size_t]
        self.release.restype = None
        self.addrs = lib.SoapySDRDevice_getDirectAccessBufferAddrs
        self.addrs.argtypes = [P, P, ctypes.c_size_t, L(P)]
        self.addrs.restype = ctypes.c_int
        self.dev, self.stream = P(int(dev.this)), P(int(stream))

    def next(self, timeout_us=2_000_000):
        """(ret, handle, address, flags)."""
        handle, buffs, flags, t = ctypes.c_size_t(), (ctypes.c_void_p * 1)(), ctypes.c_int(), ctypes.c_longlong()
        ret = self.acquire(self.dev, self.stream, ctypes.byref(handle), buffs, ctypes.byref(flags), ctypes.byref(t),
                           timeout_us)
        return ret, handle.value, buffs[0], flags.value

    def address(self, handle):
        buffs = (ctypes.c_void_p * 1)()
        assert self.addrs(self.dev, self.stream, handle, buffs) == 0
        return buffs[0]


def view(address, n):
    """The ring's samples in place: a numpy array over the mapping, no copy."""
    return np.ctypeslib.as_array(ctypes.cast(address, ctypes.POINTER(ctypes.c_uint16)), shape=(n,))


def test_direct_buffer_access_zero_copy():
    # Blocks handed out in place, checked where they lie, released out of
    # order (three held, the middle one first); under the drop policy with a
    # slow reader, so that gaps come too, and the accounting is exact.
    with opened("driver=sring,sim=1,format=u16,policy=drop,rate=20M,ring_size=256K,duration=0.3", "U16") as (dev, stream):
        direct_read(dev, stream)


def direct_read(dev, stream):
    da = DirectAccess(dev, stream)
    dev.activateStream(stream)
    index = delivered = overflows = 0
    held, ended = [], False
    deadline = time.monotonic() + 60
    while not ended:
        assert time.monotonic() < deadline, "the stream did not end"
        ret, handle, address, flags = da.next()
        if ret == SOAPY_SDR_OVERFLOW:
            overflows += 1
            index = delivered + int(dev.readSetting("samples_dropped"))
            continue
        assert ret >= 0, SoapySDR.errToStr(ret)
        ended = bool(flags & SOAPY_SDR_END_BURST)
        if ret == 0:
            continue
        assert da.address(handle) == address, "getDirectAccessBufferAddrs: the same place"
        x = view(address, ret)
        assert np.array_equal(x, pattern_numpy.expected("u16", 1, index, ret)[:, 0]), f"samples {index}.."
        index += ret
        delivered += ret
        held.append(handle)
        if len(held) == 3 or ended:
            for h in (held[1:2] + held[:1] + held[2:]) if len(held) == 3 else held:
                da.release(da.dev, da.stream, h)
            held = []
            time.sleep(0.002)  # slow: the producer laps the reader and drops
    for h in held:
        da.release(da.dev, da.stream, h)
    c = counters(dev)
    assert int(c["samples_delivered"]) == delivered and overflows > 0, c
    assert delivered + int(c["samples_dropped"]) == int(c["samples_produced"]), c
    assert c["exact"] == "true", c


def test_direct_access_refused_for_converted_streams():
    # Direct access hands out the ring's own bytes: a stream converted to
    # CF32 has none to hand out, and the module says so with an error code.
    with opened("driver=sring,sim=1,format=cs16,duration=0.05", SOAPY_SDR_CF32) as (dev, stream):
        da = DirectAccess(dev, stream)
        dev.activateStream(stream)
        ret, _, _, _ = da.next(100_000)
        assert ret < 0 and ret != SOAPY_SDR_TIMEOUT, ret
