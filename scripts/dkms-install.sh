#!/bin/bash
# Registers sring with DKMS so the module is rebuilt for every new kernel:
#   scripts/dkms-install.sh [--build-only KERNEL_VERSION]
# --build-only adds and builds without installing (what the test does).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^#define SRING_VERSION "\(.*\)"/\1/p' include/sring/sring_version.h)
src=/usr/src/sring-$version
rm -rf "$src"
mkdir -p "$src/driver" "$src/include/sring" "$src/simulator/kernel" "$src/devices/edu" "$src/devices/digitizer"
cp dkms.conf "$src/"
cp driver/Makefile driver/*.c driver/*.h "$src/driver/"
cp include/sring/*.h "$src/include/sring/"
cp simulator/kernel/*.c "$src/simulator/kernel/"
cp devices/edu/*.c "$src/devices/edu/"
cp devices/digitizer/*.c "$src/devices/digitizer/"
dkms remove "sring/$version" --all >/dev/null 2>&1 || true
dkms add "sring/$version"
if [ "${1:-}" = "--build-only" ]; then
  dkms build "sring/$version" -k "$2"
else
  dkms install "sring/$version"
fi
