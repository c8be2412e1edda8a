#!/bin/bash
# Installs sring for users who do not build with Bazel:
#   scripts/install.sh [--prefix DIR]     (default /usr/local)
# DIR/bin: acquire, ringstat, sring-sim, sring-record, sring-export,
#   sring-publish, sring-subscribe
# DIR/lib/libringlib.a and DIR/lib/pkgconfig/sring.pc (C++: ringlib and
#   the user-space simulated device; the archive has the fmt code it uses,
#   the headers include none)
# DIR/lib/libsring.so.1 and DIR/lib/pkgconfig/libsring.pc (the C API)
# DIR/include/sring/: the uapi ABI header and the C API's sring.h; the C++
#   headers as their namespaces say: <sring/consumer.hpp> (sring::),
#   <sring/sim/sim_device.hpp> (sring::sim::), internals in sring/detail/
# DIR/lib/python3.X/dist-packages/sring: the Python binding, for Debian's
#   python3 (on its path for DIR=/usr/local; else set PYTHONPATH)
# DIR/share/man/man1, man4; DIR/share/sring/ (udev rule, modprobe example,
#   examples/)
# DIR/lib/SoapySDR/modules0.8/libsringSupport.so: the SoapySDR module
# The module itself: make -C driver && make -C driver install, or DKMS
# (scripts/dkms-install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# bazel build, or stop with its errors: nothing stale from an earlier build
# may be installed.
build() {
  local out
  if ! out=$(bazel build "$@" 2>&1); then
    echo "$out" | grep -E '^(ERROR|FAILED)' >&2 || echo "$out" | tail -n 20 >&2
    echo "install: bazel build $* failed" >&2
    exit 1
  fi
}
prefix=/usr/local
if [ "${1:-}" = "--prefix" ]; then prefix=$2; fi
version=$(sed -n 's/^#define SRING_VERSION "\(.*\)"/\1/p' include/sring/sring_version.h)

build //ringlib //ringlib:verify //ringlib:format //simulator:usersim //tools:acquire //tools:ringstat \
  //tools:sring-publish //tools:sring-subscribe \
  //tools:sring-sim //capi:libsring.so.1

mkdir -p "$prefix"/{bin,lib/pkgconfig,include/sring/detail,include/sring/sim} \
  "$prefix"/share/man/{man1,man4} "$prefix/share/sring"
install -m 0755 bazel-bin/tools/acquire bazel-bin/tools/ringstat bazel-bin/tools/sring-sim \
  bazel-bin/tools/sring-publish bazel-bin/tools/sring-subscribe "$prefix/bin/"
# sring-record (.srec and HDF5) and sring-export (.srec to HDF5): they link
# Debian's libhdf5 (docs/recording.md, "HDF5").
build //tools:sring-record //tools:sring-export
install -m 0755 bazel-bin/tools/sring-record bazel-bin/tools/sring-export "$prefix/bin/"
install -m 0644 include/sring/*.h capi/include/sring/sring.h "$prefix/include/sring/"
install -m 0644 ringlib/include/sring/*.hpp "$prefix/include/sring/"
install -m 0644 ringlib/include/sring/detail/*.hpp "$prefix/include/sring/detail/"
install -m 0644 simulator/include/sring/sim/*.hpp "$prefix/include/sring/sim/"

# One static library from Bazel's four archives.
archives=()
for a in ringlib/libringlib ringlib/libverify ringlib/libformat simulator/libusersim; do
  if [ -f "bazel-bin/$a.a" ]; then archives+=("bazel-bin/$a.a"); else archives+=("bazel-bin/$a.pic.a"); fi
done
rm -f "$prefix/lib/libringlib.a"
{
  echo "create $prefix/lib/libringlib.a"
  for a in "${archives[@]}"; do echo "addlib $a"; done
  echo "save"
  echo "end"
} | ar -M
chmod 0644 "$prefix/lib/libringlib.a"

cat >"$prefix/lib/pkgconfig/sring.pc" <<PC
prefix=$prefix
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: sring
Description: zero-copy DMA ring buffer: the ringlib consumer library and the user-space simulated device
Version: $version
Cflags: -I\${includedir} -std=c++20
Libs: -L\${libdir} -lringlib -lpthread
PC

# The C API: a shared library with a versioned soname, sring_* only.
install -m 0755 bazel-bin/capi/libsring.so.1 "$prefix/lib/"
ln -sf libsring.so.1 "$prefix/lib/libsring.so"
cat >"$prefix/lib/pkgconfig/libsring.pc" <<PC
prefix=$prefix
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: libsring
Description: zero-copy DMA ring buffer: the stable C API (sring/sring.h)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lsring
PC

# The Python binding, where Debian's python3 looks under DIR.
pyver=$(/usr/bin/python3 -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')
scripts/build-python.sh "$prefix/lib/$pyver/dist-packages"

mkdir -p "$prefix/share/sring/examples"
install -m 0644 examples/*.cpp examples/*.c examples/*.py "$prefix/share/sring/examples/"

install -m 0644 man/acquire.1 man/ringstat.1 "$prefix/share/man/man1/"
install -m 0644 man/sring.4 "$prefix/share/man/man4/"
install -m 0644 packaging/udev/60-sring.rules packaging/modprobe.d/sring.conf "$prefix/share/sring/"
# The SoapySDR module, driver=sring (docs/soapysdr.md), in SoapySDR 0.8's
# module directory under the prefix (on its search path for /usr/local; for
# another prefix set SOAPY_SDR_PLUGIN_PATH to it).
build //soapy:libsringSupport.so
soapy_modules="$prefix/lib/SoapySDR/modules0.8"
mkdir -p "$soapy_modules"
install -m 0644 bazel-bin/soapy/libsringSupport.so "$soapy_modules/"
echo "SoapySDR module: $soapy_modules/libsringSupport.so"
echo "installed sring $version under $prefix"
