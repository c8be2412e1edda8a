#!/bin/bash
# The main job: build the module and the tools, boot Debian's kernel under
# QEMU with sring.ko and its simulated sampling device, acquire 16-bit
# samples at 20 MS/s for 5 s through mmap + eventfd with every sample
# verified, and show the ring's statistics. Extra arguments go to acquire
# (e.g. scripts/run.sh --workers 2 --wait hybrid).
#
# SRING_HOST=1 scripts/run.sh runs the same acquisition against the
# user-space simulator on the host instead (no QEMU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
if [ "${SRING_HOST:-0}" = 1 ]; then
  bazel build //tools:acquire 2>&1 | grep -E '^(ERROR|FAILED)' || true
  exec bazel-bin/tools/acquire --sim --rate 20M --duration 5 "$@"
fi
exec tests/qemu/run-qemu-tests.sh --demo "$@"
