#!/bin/bash
# Builds the Python binding and assembles the package:
#   scripts/build-python.sh DIR   ->  DIR/sring/{__init__.py,_version.py,_sring.so}
# For Debian's python3 (pybind11-dev, python3-numpy); then
# PYTHONPATH=DIR python3 -c 'import sring'.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:?usage: build-python.sh DIR}
# Stop on a failed build: a stale _sring.so from an earlier one must not be used.
if ! out=$(bazel build //python:_sring.so 2>&1); then
  echo "$out" | grep -E '^(ERROR|FAILED)' >&2 || echo "$out" | tail -n 20 >&2
  exit 1
fi
mkdir -p "$dest/sring"
install -m 0644 python/sring/*.py "$dest/sring/"
install -m 0755 bazel-bin/python/_sring.so "$dest/sring/_sring.so"
# sring.__version__, the line meson.build generates for a pip install.
version=$(sed -n 's/^#define SRING_VERSION "\(.*\)"$/\1/p' include/sring/sring_version.h)
echo "__version__ = \"$version\"" >"$dest/sring/_version.py"
