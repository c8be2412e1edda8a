#!/bin/bash
# The main job: build, start the simulated sampling device, acquire 16-bit
# samples at 20 MS/s with every sample verified, and show the summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
bazel build //consumer:acquire //simulator:sring-sim 2>&1 | grep -E 'ERROR|error:' || true
exec bazel-bin/consumer/acquire --sim --rate 20M --duration "${DURATION:-5}" "$@"
