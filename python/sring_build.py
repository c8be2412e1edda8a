"""The PEP 517 build backend of `pip install .` and `pip install ./python`:
meson-python (Debian's python3-mesonpy), run from the repository root
whichever of the two pip was pointed at, since meson.build and the C++
sources it compiles are there.

It exists for two reasons. The binding's sources are outside python/, and
meson-python builds the directory pip runs it in. And an interpreter
without meson-python (a pyenv or venv python, say) should be told what to
do: pip itself would only print a traceback ending in BackendUnavailable.
Everything else, the checks of Python.h, numpy, pybind11 and the libraries
included, is meson.build's, whose error() text pip shows.
"""

import contextlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# meson-python leaves its native file (the interpreter to build for) in the
# source directory, to reuse a build directory we never keep.
NATIVE_FILE = os.path.join(ROOT, ".mesonpy-native-file.ini")


def _mesonpy():
    try:
        import mesonpy
    except ImportError:
        sys.stderr.write(
            f"sring: this Python ({sys.executable}, {sys.version.split()[0]}) has no meson-python, "
            "which builds sring: run pip with Debian's /usr/bin/python3 (or a venv of it made with "
            "--system-site-packages) and install python3-mesonpy, meson, ninja-build, python3-dev, "
            "pybind11-dev and python3-numpy (Debian); or install meson-python, ninja and numpy into "
            "this Python\n")
        raise SystemExit(1)
    return mesonpy


@contextlib.contextmanager
def _at_root():
    """In the repository root, leaving behind none of meson-python's files."""
    had_native_file = os.path.exists(NATIVE_FILE)
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        yield
    finally:
        os.chdir(cwd)
        if not had_native_file:
            with contextlib.suppress(FileNotFoundError):
                os.remove(NATIVE_FILE)


def get_requires_for_build_wheel(config_settings=None):
    with _at_root():
        return _mesonpy().get_requires_for_build_wheel(config_settings)


def get_requires_for_build_sdist(config_settings=None):
    with _at_root():
        return _mesonpy().get_requires_for_build_sdist(config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    wheel_directory = os.path.abspath(wheel_directory)  # pip's may be relative to where it ran
    with _at_root():
        return _mesonpy().build_wheel(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    sdist_directory = os.path.abspath(sdist_directory)
    with _at_root():
        return _mesonpy().build_sdist(sdist_directory, config_settings)
