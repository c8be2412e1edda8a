#!/bin/bash
# Installs what sring needs on Debian 12, from Debian's own packages only:
# the offline Bazel 4, the C++ libraries, and the kernel, headers and QEMU
# for the driver tests. Idempotent: installs only what is missing.
set -euo pipefail

packages=(
  # build and host tests
  g++ make python3
  bazel-bootstrap bazel-rules-java bazel-platforms bazel-skylib bazel-rules-cc
  libboost-dev libfmt-dev libgtest-dev libbenchmark-dev
  # streaming over ZeroMQ (sring-publish, sring::NetSubscriber)
  libzmq3-dev cppzmq-dev
  # kernel module and QEMU tests (Debian's 6.1 kernel and matching headers)
  linux-image-amd64 linux-headers-amd64 qemu-system-x86 busybox-static cpio gzip sparse
  # packaging tests: DKMS, pkg-config, man pages
  dkms pkg-config groff-base man-db kmod
  # the Python binding: pybind11 and numpy for Debian's python3, pytest
  python3-dev pybind11-dev python3-numpy python3-pytest
  # where users already work: SoapySDR (module, SoapySDRUtil, Python), GNU
  # Radio 3.10 (its soapy source), HDF5 (libhdf5, h5py), Prometheus metrics
  # (prometheus-cpp, and the server the test scrapes with), pip installs
  # of the binding (meson-python, venv)
  libsoapysdr-dev soapysdr-tools python3-soapysdr gnuradio
  libhdf5-dev python3-h5py
  prometheus-cpp-dev prometheus
  python3-mesonpy meson ninja-build python3-pip python3-venv
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "setup: installing ${missing[*]}" >&2
$sudo apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
