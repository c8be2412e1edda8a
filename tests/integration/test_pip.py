"""`pip install` of the Python binding (pyproject.toml, python/pyproject.toml,
python/sring_build.py, meson.build; docs/python.md, "Installing"), offline,
into fresh venvs of Debian's python3 under tmp_path, run outside the
checkout: the installed sring is the venv's and acquires verified samples
with exact accounting; what is missing (meson-python, numpy, Python.h, the
extension) is a message saying what to install. One real build (a module
fixture, a minute or more: it compiles ringlib), reused by every assert;
the failures stop at meson's configure step, before compiling."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import SOURCE

PYTHON = "/usr/bin/python3"
VERSION = next(line.split('"')[1] for line in open(os.path.join(SOURCE, "include/sring/sring_version.h"))
               if line.startswith("#define SRING_VERSION "))


def env_without_network(**extra):
    """The environment without the stage's PYTHONPATH (the Bazel-built
    binding) or pip settings, and with every proxy pointing at a closed
    port: pip must find everything on this machine, and a download it
    tried would fail at once (and show in its output) rather than hang."""
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith("PIP_") and k.lower() != "no_proxy"}
    closed = "http://127.0.0.1:9"
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
               PYTHONNOUSERSITE="1", http_proxy=closed, https_proxy=closed, HTTP_PROXY=closed,
               HTTPS_PROXY=closed)
    env.update(extra)
    return env


def make_venv(path, system_site_packages):
    subprocess.run([PYTHON, "-m", "venv", *(["--system-site-packages"] if system_site_packages else []), str(path)],
                   check=True, env=env_without_network(), timeout=120)
    return os.path.join(path, "bin", "python")


def pip_install(python, source, cwd, *options, **env):
    """pip install as docs/python.md says, output and errors together."""
    result = subprocess.run([python, "-m", "pip", "install", "--no-build-isolation", "--no-index", *options, source],
                            cwd=cwd, env=env_without_network(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=900)
    assert "Looking in indexes" not in result.stdout and "Downloading" not in result.stdout, result.stdout
    return result


def run_python(python, code, cwd, **env):
    return subprocess.run([python, "-c", textwrap.dedent(code)], cwd=cwd, env=env_without_network(**env),
                          capture_output=True, text=True, timeout=120)


def mesonpy_files():
    return {name for name in os.listdir(SOURCE) if name.startswith(".mesonpy")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A venv of Debian's python3 that sees its numpy and meson-python,
    with sring pip-installed from the repository root: (python, tmp dir)."""
    tmp = tmp_path_factory.mktemp("pip")
    python = make_venv(tmp / "venv", system_site_packages=True)
    before = mesonpy_files()
    # Warnings are errors here, as in the Bazel build (a user's install
    # only prints them).
    result = pip_install(python, SOURCE, tmp, "--config-settings=setup-args=-Dwerror=true")
    assert result.returncode == 0, result.stdout
    assert f"Successfully installed sring-{VERSION}\n" in result.stdout
    assert "Requirement already satisfied: numpy in /usr/lib/python3/dist-packages" in result.stdout
    assert mesonpy_files() == before, "meson-python's files were left in the checkout"
    return python, tmp


def test_installed_sring_acquires_verified_samples(installed):
    python, tmp = installed
    # Out of the checkout (cwd tmp, no PYTHONPATH): the venv's sring, every
    # block of a two-channel cs16 stream checked against the pattern
    # (python/tests/pattern_numpy.py, written from docs/abi.md), and the
    # accounting exact: what we saw, block by block, is what the counters say.
    result = run_python(python, f"""
        import json, sys
        import numpy as np
        import sring
        sys.path.append({os.path.join(SOURCE, "python", "tests")!r})
        import pattern_numpy

        ring = sring.simulate(ring_size=256 * 1024, sample_rate=2e6, block_samples=1000,
                              sample_format="cs16", channels=2)
        ring.start(duration=0.1)
        blocks = frames = lost = bad = 0
        next_frame = 0
        for block in ring.blocks(timeout=10):
            want = pattern_numpy.expected("cs16", 2, block.first_sample, block.frames)
            if not np.array_equal(block.samples, want):
                bad += 1
            if block.first_sample != next_frame + block.lost_before:
                bad += 1
            next_frame = block.first_sample + block.frames
            blocks += 1
            frames += block.frames
            lost += block.lost_before
        print(json.dumps(dict(file=sring.__file__, version=sring.__version__, blocks=blocks, frames=frames,
                              lost=lost, bad=bad, counters=ring.counters())))
        """, cwd=tmp)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    venv = os.path.join(tmp, "venv")
    assert seen["file"] == os.path.join(venv, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}",
                                        "site-packages", "sring", "__init__.py")
    assert seen["version"] == VERSION
    c = seen["counters"]
    assert seen["blocks"] > 0 and seen["bad"] == 0
    assert c["exact"] and c["end_of_stream"] and c["state"] == "stopped"
    assert (c["blocks"], c["samples"]) == (seen["blocks"], seen["frames"])
    assert c["missing_samples"] == seen["lost"]
    assert c["samples"] + c["samples_dropped"] == c["samples_produced"]
    assert c["blocks"] + c["blocks_dropped"] == c["blocks_produced"]


def test_missing_numpy_at_import_is_one_clear_line(installed):
    python, tmp = installed
    # numpy made unimportable (None in sys.modules): the ImportError that
    # says what to install, without a chained one from inside.
    result = run_python(python, """
        import sys
        sys.modules["numpy"] = None
        try:
            import sring
        except ImportError as e:
            print(e.__cause__ is None and e.__suppress_context__)
            print(e)
        """, cwd=tmp)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "True",
        f"sring needs numpy, which this Python ({python}) cannot import (import of numpy halted; None in "
        "sys.modules): install python3-numpy (Debian) and use Debian's python3, or a venv of it made with "
        "--system-site-packages"]


def test_missing_extension_at_import_is_one_clear_line(installed):
    python, tmp = installed
    # The installed package without its extension module.
    site = os.path.dirname(os.path.dirname(run_python(python, "import sring; print(sring.__file__)",
                                                      cwd=tmp).stdout.strip()))
    copy = tmp / "without-extension"
    shutil.copytree(os.path.join(site, "sring"), copy / "sring", ignore=shutil.ignore_patterns("_sring*.so"))
    result = run_python(python, """
        try:
            import sring
        except ImportError as e:
            print(e.__cause__ is None and e.__suppress_context__)
            print(e)
        """, cwd=copy)
    assert result.returncode == 0, result.stderr
    version = ".".join(map(str, sys.version_info[:3]))
    assert result.stdout.splitlines() == [
        "True",
        f"sring's extension module cannot be loaded by this Python ({python}, {version}): No module named "
        "'sring._sring'; build it with this Python: `python3 -m pip install --no-build-isolation "
        "--no-index .` in an sring checkout (docs/python.md)"]


def pip_error(result):
    """pip's report of a failed build: our message, not a traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stdout and "BackendUnavailable" not in result.stdout, result.stdout
    return result.stdout


def test_python_without_meson_python_is_told_what_to_install(tmp_path):
    # A venv without Debian's packages has neither meson-python nor numpy.
    python = make_venv(tmp_path / "bare", system_site_packages=False)
    out = pip_error(pip_install(python, SOURCE, cwd=tmp_path))
    version = ".".join(map(str, sys.version_info[:3]))
    assert (f"sring: this Python ({python}, {version}) has no meson-python, which builds sring: run pip with "
            "Debian's /usr/bin/python3 (or a venv of it made with --system-site-packages) and install "
            "python3-mesonpy, meson, ninja-build, python3-dev, pybind11-dev and python3-numpy (Debian); or "
            "install meson-python, ninja and numpy into this Python") in out, out


def test_python_without_numpy_fails_to_install_with_a_clear_message(tmp_path):
    # A venv that has the build tools (Debian's meson-python, linked in by a
    # .pth) but no numpy; from python/, which builds the root's meson.build.
    python = make_venv(tmp_path / "no-numpy", system_site_packages=False)
    tools = tmp_path / "build-tools"
    tools.mkdir()
    dist = subprocess.run([PYTHON, "-c", "import mesonpy, os; print(os.path.dirname(os.path.dirname(mesonpy.__file__)))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    for module in ("mesonpy", "pyproject_metadata", "packaging"):
        os.symlink(os.path.join(dist, module), tools / module)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(site, "build-tools.pth"), "w") as pth:
        pth.write(f"{tools}\n")
    assert run_python(python, "import mesonpy", cwd=tmp_path).returncode == 0
    assert run_python(python, "import numpy", cwd=tmp_path).returncode != 0
    out = pip_error(pip_install(python, os.path.join(SOURCE, "python"), cwd=tmp_path))
    major_minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert (f"ERROR: Problem encountered: numpy is missing for Python {major_minor} ({python}): install "
            "python3-numpy (Debian); a venv sees it if made with --system-site-packages "
            "(ModuleNotFoundError: No module named 'numpy')") in out, out
    assert f"Source dir: {SOURCE}\n" in out, "python/ builds the root's meson.build"


def test_missing_python_headers_are_told_what_to_install(tmp_path):
    # Python.h made unfindable: pkg-config, which meson asks first, points at
    # an empty directory (the headers are in python3.X-dev).
    python = make_venv(tmp_path / "venv", system_site_packages=True)
    major_minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    (tmp_path / "include").mkdir()
    (tmp_path / "pkgconfig").mkdir()
    (tmp_path / "pkgconfig" / f"python-{major_minor}.pc").write_text(
        f"Name: Python\nDescription: headers not installed\nVersion: {major_minor}\n"
        f"Cflags: -I{tmp_path / 'include'}\nLibs:\n")
    out = pip_error(pip_install(python, SOURCE, cwd=tmp_path, PKG_CONFIG_PATH=str(tmp_path / "pkgconfig")))
    assert (f"ERROR: Problem encountered: Python.h for Python {major_minor} ({python}) is missing: install "
            f"python{major_minor}-dev (Debian; python3-dev installs it for the default python3)") in out, out
