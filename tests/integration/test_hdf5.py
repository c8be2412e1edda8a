"""HDF5 recordings (docs/recording.md, "HDF5"): sring-record --output x.h5
from the in-process simulator and from an sring-sim process, sring-export of
a .srec, read back with h5py. Every sample is compared with the pattern
(python/tests/pattern_numpy.py), the gap table with the rows that hold no
chunk, the accounting attributes with what sring-record printed; the chunks
are shown to be the blocks' bytes (read_direct_chunk) and one per block
stored. Also: a full disk (a small tmpfs), SIGINT, bad input."""

import os
import re
import select
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import SOURCE, sim_totals, start_sim, stop_sim, tool

sys.path.insert(0, os.path.join(SOURCE, "python", "tests"))
import pattern_numpy as pn  # noqa: E402

BLOCK = 8192


def run(name, *args, timeout=60):
    return subprocess.run([tool(f"tools/{name}"), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def figure(out, name):
    """'  dropped   12 blocks   345 samples' -> (12, 345)."""
    m = re.search(rf"^  {name}\s+(\d+) blocks\s+(\d+) samples", out, re.M)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def no_crash(r):
    text = r.stdout + r.stderr
    assert "Traceback" not in text and "HDF5-DIAG" not in text and r.returncode in (0, 1, 2, 3), text


def verify_h5(path, fmt, channels, seed, out=None, policy="drop", rate=None):
    """Every row of /samples: the pattern where a chunk was written, fill
    (zero) in the rows /gaps lists, nothing else; the chunks are the blocks'
    payloads as they were (read_direct_chunk) and one per block stored; the
    accounting attributes exact and, with `out`, those sring-record printed."""
    with h5py.File(path, "r") as f:
        a = dict(f.attrs)
        d = f["samples"]
        gaps = f["gaps"][:]
        fpb = pn.frames_per_block(fmt, channels, a["block_bytes"])
        assert a["format"] == fmt and a["channels"] == channels and a["pattern_seed"] == seed
        assert a["bits_per_sample"] == pn.FORMATS[fmt][1] and a["frames_per_block"] == fpb
        assert a["overrun_policy"] == policy and a["abi_version"] == "1.4" and a["sring_version"]
        assert a["start_time"].endswith("Z") and a["complete"] and a["exact"]
        if rate is not None:
            assert a["sample_rate"] == rate
        n = d.shape[0]
        iq = (2,) if fmt == "cs16" else ()
        assert d.shape == (n, channels) + iq and d.chunks == (fpb, channels) + iq
        assert d.maxshape == (None, channels) + iq
        expected = pn.expected(fmt, channels, 0, n, seed)
        assert d.dtype == expected.dtype, (d.dtype, expected.dtype)
        chunk_bytes = pn.payload_bytes(fmt, channels, fpb)

        # Rows: chunks and gaps tile [0, n) exactly, in order.
        chunks = [d.id.get_chunk_info(i) for i in range(d.id.get_num_chunks())]
        pieces = sorted([(c.chunk_offset[0], min(fpb, n - c.chunk_offset[0]), "chunk") for c in chunks] +
                        [(int(g["first_sample"]), int(g["samples"]), "gap") for g in gaps])
        row = 0
        for start, length, kind in pieces:
            assert start == row and length > 0, (start, row, kind)
            row += length
        assert row == n
        # Fill where nothing was written.
        fill = np.zeros(n, dtype=bool)
        for g in gaps:
            fill[g["first_sample"]:g["first_sample"] + g["samples"]] = True
        data = d[...]
        assert np.array_equal(data[~fill], expected[~fill]), "samples differ from the pattern"
        assert not np.any(data[fill].view(np.uint8)), "fill rows are not zero"
        # The file holds the blocks' bytes as they are: one chunk per block
        # stored, no filter, each the pattern's bytes (the ring's payload).
        assert len(chunks) == a["blocks_stored"]
        for c in chunks:
            mask, raw = d.id.read_direct_chunk(c.chunk_offset)
            start = c.chunk_offset[0]
            assert mask == 0 and c.filter_mask == 0 and c.size == chunk_bytes == len(raw)
            assert raw == expected[start:start + fpb].tobytes()
        # Accounting: every frame produced is stored or counted lost, exactly.
        stored = int(a["samples_stored"])
        assert stored == int((~fill).sum()) and n == a["samples_produced"]
        assert a["samples_delivered"] + a["samples_dropped"] == a["samples_produced"]
        assert a["blocks_delivered"] + a["blocks_dropped"] == a["blocks_produced"]
        assert a["samples_stored"] + a["samples_not_stored"] == a["samples_delivered"]
        assert int(gaps["samples"].sum()) == a["samples_dropped"] + a["samples_not_stored"]
        if out is not None:
            assert figure(out, "stored") == (a["blocks_stored"], a["samples_stored"])
            assert figure(out, "produced") == (a["blocks_produced"], a["samples_produced"])
            assert figure(out, "dropped") == (a["blocks_dropped"], a["samples_dropped"])
            assert figure(out, "not stored") == (a["blocks_not_stored"], a["samples_not_stored"])
        return a, gaps


LAYOUTS = [("u16", 1), ("s16", 2), ("cs16", 1), ("cs16", 2), ("cf32", 1), ("f32", 1), ("u8", 3), ("s32", 1)]


@pytest.mark.parametrize("fmt,channels", LAYOUTS)
def test_sim_layouts(tmp_path, fmt, channels):
    path = tmp_path / "run.h5"
    r = run("sring-record", "--sim", "--format", fmt, "--channels", channels, "--seed", 7, "--rate", "1M",
            "--duration", "0.4", "-o", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "direct chunk writes" in r.stdout
    a, gaps = verify_h5(path, fmt, channels, 7, r.stdout, rate=1_000_000)
    assert a["blocks_stored"] > 10 and len(gaps) == 0 and a["end_reason"] == "stream ended"


def test_sring_sim_process(tmp_path):
    sock = tmp_path / "s.sock"
    sim = start_sim(str(sock), "--format", "s16", "--channels", "2", "--rate", "2M", "--seed", "9",
                    "--duration", "0.5")
    try:
        r = run("sring-record", "--sim-socket", sock, "--duration", "30", "-o", tmp_path / "p.h5")
        # The recorder hung up: sring-sim prints its own totals and ends.
        produced, dropped, _ = sim_totals(sim, timeout=30)
    finally:
        stop_sim(sim)  # on every path: no sring-sim left behind by a failure or a timeout
    assert r.returncode == 0, r.stdout + r.stderr
    a, _ = verify_h5(tmp_path / "p.h5", "s16", 2, 9, r.stdout)
    assert a["blocks_stored"] > 10 and str(sock) in a["source"], a["source"]
    # The producer's own count, independent of the recorder's.
    assert (a["samples_produced"], a["samples_dropped"]) == (produced, dropped)


def record_with_drops(path, *extra):
    r = run("sring-record", "--sim", "--rate", "20M", "--ring-size", "256K", "--slow-us", 5000, "--duration", "0.4",
            "--allow-loss", *extra, "-o", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert figure(r.stdout, "dropped")[0] > 0, r.stdout
    return r


def test_drop_policy_gaps_are_the_rows_without_chunks(tmp_path):
    path = tmp_path / "drops.h5"
    r = record_with_drops(path, "--format", "cs16", "--channels", 2, "--seed", 4)
    a, gaps = verify_h5(path, "cs16", 2, 4, r.stdout)
    assert len(gaps) > 1 and a["samples_dropped"] > 0 and a["samples_not_stored"] == 0
    # Lost blocks cost no space: the file is about the stored chunks.
    assert os.path.getsize(path) < (a["blocks_stored"] + 64) * BLOCK


def srec_payloads(path, block_bytes, payload):
    raw = np.fromfile(path, dtype=np.uint8)
    n = (raw.size - 8192) // block_bytes
    blocks = raw[4096:4096 + n * block_bytes].reshape(n, block_bytes)
    first = blocks[:, 16:24].copy().view("<u8").ravel()
    return first, blocks[:, 64:64 + payload]


def test_export_matches_the_srec_and_a_direct_recording(tmp_path):
    srec, exported, direct = tmp_path / "run.srec", tmp_path / "exported.h5", tmp_path / "direct.h5"
    r = record_with_drops(srec, "--format", "s16", "--channels", 2, "--seed", 11)
    assert run("sring-record", "--check", srec).returncode == 0
    e = run("sring-export", srec, exported)
    assert e.returncode == 0, e.stdout + e.stderr
    # The srec's trailer is the h5's accounting: the same figures.
    a, gaps = verify_h5(exported, "s16", 2, 11, r.stdout)
    # Each chunk is the srec block's payload, byte for byte.
    fpb = pn.frames_per_block("s16", 2, BLOCK)
    first, payloads = srec_payloads(srec, BLOCK, pn.payload_bytes("s16", 2, fpb))
    with h5py.File(exported, "r") as f:
        d = f["samples"]
        assert d.id.get_num_chunks() == len(first)
        for start, payload in zip(first, payloads):
            assert d.id.read_direct_chunk((int(start), 0))[1] == payload.tobytes()
    # The same configuration straight to HDF5: the same file but for timing.
    r2 = record_with_drops(direct, "--format", "s16", "--channels", 2, "--seed", 11)
    b, _ = verify_h5(direct, "s16", 2, 11, r2.stdout)
    for key in ("format", "channels", "bits_per_sample", "sample_rate", "block_bytes", "frames_per_block",
                "overrun_policy", "pattern_seed", "source", "ring_size", "abi_version", "sring_version"):
        assert a[key] == b[key], key
    with h5py.File(exported, "r") as f, h5py.File(direct, "r") as g:
        x, y = f["samples"], g["samples"]
        assert x.dtype == y.dtype and x.chunks == y.chunks and x.maxshape == y.maxshape
        both = set(c.chunk_offset for c in map(x.id.get_chunk_info, range(x.id.get_num_chunks()))) & \
            set(c.chunk_offset for c in map(y.id.get_chunk_info, range(y.id.get_num_chunks())))
        assert both
        for offset in both:
            assert x.id.read_direct_chunk(offset)[1] == y.id.read_direct_chunk(offset)[1]


def test_export_of_a_cut_short_srec(tmp_path):
    srec, h5 = tmp_path / "cut.srec", tmp_path / "cut.h5"
    assert run("sring-record", "--sim", "--duration", "0.3", "--rate", "1M", "-o", srec).returncode == 0
    os.truncate(srec, 4096 + 20 * BLOCK + 999)
    e = run("sring-export", srec, h5)
    assert e.returncode == 0 and "no trailer" in e.stderr, e.stdout + e.stderr
    with h5py.File(h5, "r") as f:
        assert not f.attrs["complete"] and f.attrs["blocks_stored"] == 20 and "samples_produced" not in f.attrs
        assert f["samples"].shape[0] == 20 * pn.frames_per_block("u16", 1, BLOCK)
        assert np.array_equal(f["samples"][...], pn.expected("u16", 1, 0, f["samples"].shape[0], 1))


def test_export_never_overwrites_its_input(tmp_path):
    """sring-export X X (or a link to X): creating the output would truncate
    the recording it reads from a mapping (SIGBUS); it refuses, X intact."""
    srec = tmp_path / "run.srec"
    assert run("sring-record", "--sim", "--duration", "0.3", "--rate", "1M", "-o", srec).returncode == 0
    before = srec.read_bytes()
    (tmp_path / "link.h5").symlink_to(srec)
    os.link(srec, tmp_path / "hard.h5")
    (tmp_path / "in.srec").symlink_to(srec)
    cases = [(srec, srec), (srec, tmp_path / "link.h5"), (srec, tmp_path / "hard.h5"),
             (tmp_path / "in.srec", srec), (srec, tmp_path / "." / "run.srec")]
    for src, out in cases:
        r = run("sring-export", src, out)
        no_crash(r)
        assert r.returncode == 2 and r.stderr == \
            f"sring-export: {out} is {src} itself: the output would overwrite the recording it is made from; " \
            "name another file\n", (src, out, r.returncode, r.stderr)
        assert srec.read_bytes() == before
    assert run("sring-record", "--check", srec).returncode == 0
    # Another file next to it is fine.
    assert run("sring-export", tmp_path / "in.srec", tmp_path / "other.h5").returncode == 0


def test_bad_input_is_refused_clearly(tmp_path):
    srec = tmp_path / "ok.srec"
    assert run("sring-record", "--sim", "--duration", "0.2", "--rate", "1M", "-o", srec).returncode == 0
    junk = tmp_path / "junk.srec"
    junk.write_bytes(b"not a recording\n" * 1000)
    cases = [
        ((tmp_path / "missing.srec", tmp_path / "a.h5"), "cannot open"),
        ((junk, tmp_path / "b.h5"), "not an sring recording"),
        ((tmp_path / "tiny", tmp_path / "c.h5"), "shorter than"),
        ((srec, tmp_path / "no" / "dir" / "d.h5"), "No such file or directory"),
        ((srec, "/proc/e.h5"), "cannot create /proc/e.h5"),
        ((srec,), "say what to convert"),
    ]
    (tmp_path / "tiny").write_bytes(b"SRINGREC")
    for args, message in cases:
        r = run("sring-export", *args)
        no_crash(r)
        assert r.returncode == 2 and r.stderr.startswith("sring-export: ") and message in r.stderr, (args, r.stderr)
    assert not (tmp_path / "a.h5").exists() and not (tmp_path / "b.h5").exists()
    # A layout no HDF5 type holds: refused before the device starts.
    r = run("sring-record", "--sim", "--format", "sim-packed12", "--duration", "0.2", "-o", tmp_path / "p.h5")
    no_crash(r)
    assert r.returncode == 2 and "sim-packed12" in r.stderr and ".srec" in r.stderr, r.stderr
    packed = tmp_path / "p.srec"
    assert run("sring-record", "--sim", "--format", "sim-packed12", "--duration", "0.2", "-o", packed).returncode == 0
    r = run("sring-export", packed, tmp_path / "p2.h5")
    no_crash(r)
    assert r.returncode == 2 and "sim-packed12" in r.stderr
    r = run("sring-record", "--sim", "--duration", "0.2", "-o", tmp_path / "no" / "x.h5")
    no_crash(r)
    assert r.returncode == 2 and "cannot create" in r.stderr and "No such file" in r.stderr
    r = run("sring-record", "--sim", "--container", "zip", "-o", tmp_path / "x.h5")
    assert r.returncode == 2 and "--container takes srec or h5" in r.stderr


def test_container_option_overrides_the_name(tmp_path):
    r = run("sring-record", "--sim", "--duration", "0.2", "--rate", "1M", "--container", "h5", "-o", tmp_path / "a.dat")
    assert r.returncode == 0 and h5py.is_hdf5(tmp_path / "a.dat"), r.stdout + r.stderr
    r = run("sring-record", "--sim", "--duration", "0.2", "--rate", "1M", "--container", "srec", "-o",
            tmp_path / "b.h5")
    assert r.returncode == 0 and not h5py.is_hdf5(tmp_path / "b.h5")
    assert run("sring-record", "--check", tmp_path / "b.h5").returncode == 0


def mount_small_disk(mount):
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)]).returncode != 0:
        pytest.fail("cannot mount a small tmpfs (the test runs as root)")


def unmount(mount):
    # A file still open there (a process a failed test left) keeps it busy:
    # then detach it lazily, so no tmpfs mount is left behind either way.
    if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def mounted(path):
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == str(path) for line in mounts)


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount_small_disk(mount)
    yield mount
    unmount(mount)


def test_a_busy_small_disk_is_unmounted_all_the_same(tmp_path):
    mount = tmp_path / "busy"
    mount_small_disk(mount)
    try:
        with open(mount / "held", "w"):
            assert mounted(mount)
            unmount(mount)
            assert not mounted(mount)
    finally:
        if mounted(mount):
            subprocess.run(["umount", "-l", str(mount)])


def test_disk_full_leaves_a_valid_file_with_exact_accounting(small_disk):
    path = small_disk / "full.h5"
    r = run("sring-record", "--sim", "--duration", "3", "--format", "s16", "-o", path)
    no_crash(r)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "No space left on device" in r.stderr and "WRITE ERROR" in r.stdout
    a, gaps = verify_h5(path, "s16", 1, 1, r.stdout)
    assert a["samples_not_stored"] > 0 and a["end_reason"] == "write error"
    assert a["write_error"] == "No space left on device" and a["write_errno"] == 28
    # The last gap is what could not be stored (and any drops before it).
    assert gaps[-1]["first_sample"] + gaps[-1]["samples"] == a["samples_produced"]
    # The room kept for the metadata was handed back.
    st = os.stat(path)
    assert st.st_blocks * 512 <= st.st_size + 65536


def wait_for_output(proc, stream, expected, timeout=30):
    """What a process wrote on `stream` up to `expected` (a readiness signal,
    not a guessed sleep), which must come within `timeout` seconds. Read from
    the descriptor, so that communicate() gets the rest."""
    fd = stream.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while expected.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{expected!r} not printed in {timeout} s: {seen!r}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 4096)
            assert chunk, f"the process ended (exit {proc.wait()}) without printing {expected!r}: {seen!r}"
            seen += chunk
    return seen.decode()


def test_sigint_closes_the_file(tmp_path):
    path = tmp_path / "int.h5"
    proc = subprocess.Popen([tool("tools/sring-record"), "--sim", "--rate", "2M", "--duration", "30", "-o", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Its SIGINT handler is in place once it says it records (a SIGINT
        # before that would kill it).
        started = wait_for_output(proc, proc.stderr, f"sring-record: recording to {path}\n")
        # And blocks in the file (a chunk's bytes past the file as created):
        # the SIGINT then ends a run with something stored.
        empty = os.path.getsize(path)
        deadline = time.monotonic() + 30
        while os.path.getsize(path) < empty + BLOCK:
            assert proc.poll() is None and time.monotonic() < deadline, "sring-record stored nothing in 30 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        err = started + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out + err
    assert "SIGINT" in out
    a, _ = verify_h5(path, "u16", 1, 1, out)
    assert a["end_reason"] == "signal" and a["blocks_stored"] > 0


def test_doc_h5py_lines_read_and_verify(tmp_path):
    """The h5py lines of docs/recording.md ("HDF5"), run as written, on a run
    with gaps."""
    text = open(os.path.join(SOURCE, "docs", "recording.md")).read()
    code = next(c for c in re.findall(r"```python\n(.*?)```", text, re.S) if "def read_h5" in c)
    scope = {}
    exec(code.split("samples, fill, attrs = ")[0], scope)
    path = tmp_path / "doc.h5"
    record_with_drops(path, "--format", "f32", "--seed", 2)
    samples, fill, attrs = scope["read_h5"](str(path))
    assert fill.any() and not fill.all()
    assert np.array_equal(samples[~fill], pn.expected("f32", 1, 0, len(samples), 2)[~fill])
