"""Shared by the integration tests (tests/integration): where the built
tools are. scripts/test.sh sets SRING_BIN (bazel-bin), SRING_SOURCE (the
checkout) and PYTHONPATH (the built binding), and runs them with Debian's
/usr/bin/python3, which has numpy, h5py, SoapySDR and GNU Radio."""

import os
import sys

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


@pytest.fixture(scope="session", autouse=True)
def debian_python():
    if sys.executable != "/usr/bin/python3" and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        pytest.fail(f"run with Debian's /usr/bin/python3 (this is {sys.executable}): "
                    "it has the numpy, h5py, SoapySDR and GNU Radio the tests use")
