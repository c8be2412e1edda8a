"""Shared by the integration tests (tests/integration): where the built
tools are, the SoapySDR module's environment, sring-sim processes.
scripts/test.sh sets SRING_BIN (bazel-bin), SRING_SOURCE (the checkout) and
PYTHONPATH (the built binding), and runs them with Debian's /usr/bin/python3,
which has numpy, h5py, SoapySDR and GNU Radio."""

import os
import subprocess
import sys
import time

import pytest

SOURCE = os.environ.get("SRING_SOURCE", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("SRING_BIN", os.path.join(SOURCE, "bazel-bin"))


def tool(path):
    """A built target under bazel-bin, e.g. tool("tools/sring-sim"); a
    missing one fails the test that needs it (the stage builds //... first)."""
    full = os.path.join(BIN, path)
    if not os.path.exists(full):
        pytest.fail(f"{full} is missing: run `bazel build //...` first")
    return full


# Where SoapySDR finds sring's module (bazel build //soapy/...).
SOAPY_PLUGIN_PATH = os.path.join(BIN, "soapy")


def soapy_env():
    """The environment for a process that loads SoapySDR: this one's, with
    SOAPY_SDR_PLUGIN_PATH at the built module (which must exist)."""
    tool("soapy/libsringSupport.so")
    return dict(os.environ, SOAPY_SDR_PLUGIN_PATH=SOAPY_PLUGIN_PATH)


def start_sim(path, *args):
    """An sring-sim process serving `path`, once its socket is there (it
    listens once its ring exists); its stderr is piped for sim_totals()."""
    sim = subprocess.Popen([tool("tools/sring-sim"), "--socket", path, *args], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not os.path.exists(path):
        assert sim.poll() is None, sim.stderr.read()
        assert time.monotonic() < deadline, "sring-sim did not create its socket"
        time.sleep(0.02)
    return sim


def sim_totals(sim, timeout=60):
    """Waits for an sring-sim process to end (its consumer hung up, or its
    --duration is over) and returns its own totals: (frames produced, frames
    dropped), as python/tests/test_sring.py's producer_totals() reads them."""
    _, err = sim.communicate(timeout=timeout)
    sys.path.insert(0, os.path.join(SOURCE, "python", "tests"))
    from test_sring import producer_totals  # imports the sring binding: only where a test needs it

    _, produced, _, dropped = producer_totals(err)
    return produced, dropped, err


def stop_sim(sim):
    """Kills an sring-sim process that is still there (a test that failed
    before its consumer hung up)."""
    if sim.poll() is None:
        sim.kill()
        sim.wait()


@pytest.fixture(scope="session", autouse=True)
def debian_python():
    if sys.executable != "/usr/bin/python3" and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        pytest.fail(f"run with Debian's /usr/bin/python3 (this is {sys.executable}): "
                    "it has the numpy, h5py, SoapySDR and GNU Radio the tests use")
