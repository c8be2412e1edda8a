"""sring-record, sring-record --check and sring-sim --replay end to end:
round trip read with numpy.memmap as docs/recording.md shows, a disk that
fills up mid-run (a small tmpfs), SIGTERM mid-run, a file cut short, a slow
disk, and a recording replayed and recorded again. Run by scripts/test.sh
with SRING_BIN at the tools."""

import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

import sring

BIN = os.environ.get("SRING_BIN", "bazel-bin")
RECORD = f"{BIN}/tools/sring-record"
SIM = f"{BIN}/tools/sring-sim"
DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "recording.md")


def doc_reader():
    """The numpy lines of docs/recording.md, run as they are written."""
    text = open(DOC).read()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    code = code.split("blocks, complete = ")[0]  # the function; the example calls it on run.srec
    scope = {}
    exec(code, scope)
    return scope["read_recording"]


def run_record(*args, timeout=60):
    return subprocess.run([RECORD, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def figure(out, name):
    """'  dropped   12 blocks   345 samples' -> (12, 345)."""
    m = re.search(rf"^  {name}\s+(\d+) blocks\s+(\d+) samples", out, re.M)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def assert_pattern(blocks, seed=1):
    for b in blocks:
        assert np.array_equal(b["samples"], sring.pattern(int(b["first_sample"]), int(b["sample_count"]), seed))


def test_round_trip_read_with_numpy(tmp_path):
    path = tmp_path / "run.srec"
    r = run_record("--sim", "--duration", "1", "--seed", "5", "-o", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "O_DIRECT" in r.stdout
    blocks, complete = doc_reader()(str(path))
    assert complete
    stored = figure(r.stdout, "stored")
    assert len(blocks) == stored[0] and blocks["sample_count"].sum() == stored[1] > 0
    assert np.all(np.diff(blocks["first_sample"]) == blocks["sample_count"][:-1])  # no gaps
    assert blocks["first_sample"][0] == 0 and np.all(blocks["sequence"] == np.arange(len(blocks)))
    assert_pattern(blocks[:: max(1, len(blocks) // 200)], seed=5)
    check = run_record("--check", path)
    assert check.returncode == 0 and "accounting                exact" in check.stdout, check.stdout


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)]).returncode != 0:
        pytest.fail("cannot mount a small tmpfs (the test runs as root)")
    yield mount
    # A file still open there (a process a failed test left) keeps it busy:
    # then detach it lazily, so no tmpfs mount is left behind either way.
    if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mount)], check=True)


# 6208: buffered, and the 6 MiB disk fills 4864 bytes into a block, more than a trailer covers
@pytest.mark.parametrize("block_bytes", [8192, 6208])
def test_disk_full_mid_run_exact_accounting(small_disk, block_bytes):
    path = small_disk / "full.srec"
    r = run_record("--sim", "--duration", "3", "--block-size", block_bytes, "-o", path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "No space left on device" in r.stderr and "WRITE ERROR" in r.stdout
    assert ("O_DIRECT" in r.stdout) == (block_bytes % 4096 == 0)
    stored = figure(r.stdout, "stored")
    not_stored = figure(r.stdout, "not stored")
    produced = figure(r.stdout, "produced")
    dropped = figure(r.stdout, "dropped")
    assert not_stored[1] > 0
    # Every sample produced is stored, dropped or not stored: exactly.
    assert stored[1] + not_stored[1] + dropped[1] == produced[1]
    blocks, complete = doc_reader()(str(path))
    assert complete and len(blocks) == stored[0]
    assert os.path.getsize(path) == 4096 + len(blocks) * block_bytes + 4096
    assert_pattern(blocks[-3:])
    check = run_record("--check", path)
    assert check.returncode == 0 and "No space left on device" in check.stdout, check.stdout


def test_sigterm_mid_run_closes_the_file(tmp_path):
    path = tmp_path / "term.srec"
    proc = subprocess.Popen([RECORD, "--sim", "--duration", "30", "-o", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, out + err
    assert "SIGTERM" in out
    check = run_record("--check", path)
    assert check.returncode == 0, check.stdout
    assert "trailer                 present" in check.stdout
    blocks, complete = doc_reader()(str(path))
    assert complete and 0 < len(blocks) == figure(out, "stored")[0]


def test_sigterm_stops_an_sring_sim_process(tmp_path):
    sock = tmp_path / "s.sock"
    sim = subprocess.Popen([SIM, "--socket", str(sock), "--duration", "60"], stderr=subprocess.PIPE, text=True)
    rec = subprocess.Popen([RECORD, "--sim-socket", str(sock), "--duration", "60", "-o", str(tmp_path / "r.srec")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    rec.send_signal(signal.SIGTERM)
    out, err = rec.communicate(timeout=10)
    sim.communicate(timeout=10)
    assert rec.returncode == 0, out + err
    assert run_record("--check", tmp_path / "r.srec").returncode == 0


def test_cut_short_file_is_readable_to_its_last_block(tmp_path):
    path = tmp_path / "cut.srec"
    assert run_record("--sim", "--duration", "0.5", "-o", path).returncode == 0
    os.truncate(path, 4096 + 37 * 8192 + 999)  # a crash in the middle of block 37
    check = run_record("--check", path)
    assert check.returncode == 3, check.stdout
    assert re.search(r"blocks\s+37\n", check.stdout) and "trailer                 missing" in check.stdout
    assert "0 not the pattern" in check.stdout
    blocks, complete = doc_reader()(str(path))
    assert not complete and len(blocks) == 37
    assert_pattern(blocks)


def test_slow_disk_shows_as_counted_drops_not_gaps(tmp_path):
    path = tmp_path / "slow.srec"
    r = run_record("--sim", "--duration", "1", "--slow-us", "100000", "--allow-loss", "-o", path)
    assert r.returncode == 0, r.stdout + r.stderr
    dropped = figure(r.stdout, "dropped")
    assert dropped[1] > 0
    blocks, _ = doc_reader()(str(path))
    gaps = np.diff(blocks["first_sample"]) - blocks["sample_count"][:-1]
    # Every gap is flagged in band with its exact size, and they add up.
    after = blocks[1:][gaps > 0]
    assert np.all(after["flags"] & 1) and np.array_equal(after["lost_samples"], gaps[gaps > 0])
    produced = figure(r.stdout, "produced")
    assert blocks["sample_count"].sum() + dropped[1] == produced[1]
    assert run_record("--check", path).returncode == 0


def test_replay_then_record_again_same_samples(tmp_path):
    first, second = tmp_path / "first.srec", tmp_path / "second.srec"
    # With drops, so the replay has gaps to reproduce.
    r = run_record("--sim", "--duration", "1", "--seed", "3", "--slow-us", "60000", "--allow-loss", "-o", first)
    assert r.returncode == 0, r.stdout
    sock = tmp_path / "replay.sock"
    sim = subprocess.Popen([SIM, "--socket", str(sock), "--replay", str(first), "--rate", "50M"],
                           stderr=subprocess.PIPE, text=True)
    again = run_record("--sim-socket", sock, "--duration", "60", "--allow-loss", "-o", second)
    sim.communicate(timeout=30)
    assert again.returncode == 0, again.stdout + again.stderr
    read = doc_reader()
    a, _ = read(str(first))
    b, _ = read(str(second))
    assert len(a) == len(b) > 0
    assert np.array_equal(a["first_sample"], b["first_sample"]) and np.array_equal(a["sequence"], b["sequence"])
    assert np.array_equal(a["samples"], b["samples"])
    assert figure(again.stdout, "dropped") == figure(r.stdout, "dropped")
    # acquire verifies every replayed sample against the recorded seed.
    sock2 = tmp_path / "replay2.sock"
    sim = subprocess.Popen([SIM, "--socket", str(sock2), "--replay", str(first)], stderr=subprocess.PIPE, text=True)
    acq = subprocess.run([f"{BIN}/tools/acquire", "--sim-socket", str(sock2), "--duration", "60", "--allow-loss"],
                         capture_output=True, text=True, timeout=60)
    sim.communicate(timeout=30)
    assert acq.returncode == 0, acq.stdout + acq.stderr
    assert re.search(r"corrupted\s+0\n", acq.stdout) and "every sample accounted for" in acq.stdout


def test_bad_input_is_refused_clearly(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"x" * 10000)
    r = run_record("--check", junk)
    assert r.returncode == 2 and "not an sring recording" in r.stderr
    r = run_record("--sim", "--policy", "overwrite", "-o", tmp_path / "o.srec")
    assert r.returncode == 2 and "overwrite" in r.stderr and not (tmp_path / "o.srec").exists()
    r = run_record("--sim", "--duration", "1", "-o", "/dev/full")
    assert r.returncode == 2 and "No space left on device" in r.stderr


def test_flat_out_runs_across_the_end_of_the_ring(tmp_path):
    # Runs that span a refill of the consumer's cursor and the ring's end:
    # the run is written from the first copy of the data through the mirror.
    path = tmp_path / "flat.srec"
    r = run_record("--sim", "--rate", "0", "--duration", "1", "--block-size", "64K", "--ring-size", "1M",
                   "--max-run", "256K", "-o", path)
    assert r.returncode == 0, r.stdout + r.stderr
    check = run_record("--check", path)
    assert check.returncode == 0 and "0 not the pattern" in check.stdout, check.stdout
