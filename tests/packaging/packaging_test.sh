#!/bin/bash
# Packaging, the way a user on a real machine meets sring: versions agree,
# the library installs under a prefix and an example builds against it with
# plain g++ and pkg-config, the ABI header compiles as C, the man pages
# render, modinfo describes the module, and DKMS builds it against the
# installed Debian headers (building needs no module loading).
# Prints "packaging: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
passed=0; failed=0
check() {  # check NAME COMMAND...
  local name="$1"; shift
  if "$@" >/tmp/sring-pkg.log 2>&1; then
    passed=$((passed + 1)); echo "PASS: $name"
  else
    failed=$((failed + 1)); echo "FAIL: $name"; tail -n 20 /tmp/sring-pkg.log
  fi
}
version=$(sed -n 's/^#define SRING_VERSION "\(.*\)"/\1/p' include/sring/sring_version.h)
# The ABI version the tools must report, from the header they are built with.
abi=$(awk '/^#define SRING_ABI_VERSION_MAJOR/ {major = $3} /^#define SRING_ABI_VERSION_MINOR/ {minor = $3} END {print major "." minor}' include/sring/sring_abi.h)
kver=""
for image in $(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V); do
  v=${image#/boot/vmlinuz-}; [ -d "/usr/src/linux-headers-$v" ] && kver=$v
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

check "dkms.conf has version $version" grep -q "^PACKAGE_VERSION=\"$version\"" dkms.conf
check "man pages carry version $version" bash -c "grep -l 'sring $version' man/acquire.1 man/ringstat.1 man/sring.4 | wc -l | grep -qx 3"

check "install under a prefix" scripts/install.sh --prefix "$work/prefix"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
check "pkg-config knows sring $version" bash -c "pkg-config --modversion sring | grep -qx '$version'"
for tool in acquire ringstat sring-sim; do
  check "$tool --version" bash -c "'$work/prefix/bin/$tool' --version | grep -q '$tool $version (sring ABI $abi)'"
done
check "installed C++ headers include no fmt, and sring.pc defines nothing" bash -c \
  "! grep -rl 'fmt/' '$work/prefix/include/sring' && ! pkg-config --cflags sring | grep -q -- '-D'"
check "every installed C++ header compiles on its own, as <sring/...>" bash -c \
  "cd '$work/prefix/include' && for h in sring/*.hpp sring/sim/*.hpp; do
     echo \"#include <\$h>\" | g++ -std=c++20 -Wall -Wextra -Werror -fsyntax-only -I. -x c++ - || exit 1; done"
check "example consumer builds with g++ and pkg-config" bash -c \
  "g++ -O2 -Wall -Wextra -Werror examples/minimal_consumer.cpp \$(pkg-config --cflags --libs sring) -o '$work/minimal_consumer'"
check "example consumer verifies every sample" bash -c "'$work/minimal_consumer' | grep -q ': OK$'"
check "processing example (consume(), mean/RMS/envelope) builds with g++ and pkg-config" bash -c \
  "g++ -O2 -Wall -Wextra -Werror examples/envelope.cpp \$(pkg-config --cflags --libs sring) -o '$work/envelope'"
check "processing example accounts for every sample" bash -c "'$work/envelope' | grep -q 'every sample accounted for$'"
check "worker pipeline example (Pipeline, per-worker envelopes) builds with g++ and pkg-config" bash -c \
  "g++ -O2 -Wall -Wextra -Werror examples/parallel_envelope.cpp \$(pkg-config --cflags --libs sring) -o '$work/parallel_envelope'"
check "worker pipeline example accounts for every sample" bash -c "'$work/parallel_envelope' | grep -q 'every sample accounted for$'"
# The README's C++ consumer, as printed there, so the front door cannot rot.
sed -n '/^```cpp$/,/^```$/p' README.md | sed '1d;$d' >"$work/readme_first.cpp"
check "README's C++ consumer builds with pkg-config sring and accounts for every sample" bash -c \
  "test -s '$work/readme_first.cpp' &&
   g++ -std=c++20 -O2 -Wall -Wextra -Werror '$work/readme_first.cpp' \$(pkg-config --cflags --libs sring) -o '$work/readme_first' &&
   '$work/readme_first' | grep -q 'every sample accounted for$'"
check "libsring.so.1: its soname, and nothing but sring_* exported" bash -c \
  "readelf -d '$work/prefix/lib/libsring.so.1' | grep -q 'SONAME.*libsring.so.1' &&
   test -z \"\$(nm -D --defined-only '$work/prefix/lib/libsring.so.1' | awk '{print \$3}' | grep -v '^sring_' | grep -v '^LIBSRING_1\$')\""
check "C API example builds with cc -std=c11 and pkg-config libsring" bash -c \
  "cc -std=c11 -Wall -Wextra -Werror examples/consume_from_c.c \$(pkg-config --cflags --libs libsring) -o '$work/consume_from_c'"
check "C API example runs against the shared library and says why a device is missing" bash -c \
  "out=\$(LD_LIBRARY_PATH='$work/prefix/lib' '$work/consume_from_c' /dev/sring-missing 2>&1); rc=\$?;
   echo \"\$out\" | grep -q 'cannot open /dev/sring-missing' && test \$rc -eq 2"
check "Python binding imports from the prefix and runs the README's numpy example" bash -c \
  "PYTHONPATH=\$(ls -d '$work'/prefix/lib/python3*/dist-packages) /usr/bin/python3 examples/spectrum.py | grep -q 'every sample accounted for\$'"
check "SoapySDR finds the installed module (driver=sring, the simulator)" bash -c \
  "SOAPY_SDR_PLUGIN_PATH='$work/prefix/lib/SoapySDR/modules0.8' SoapySDRUtil --find=driver=sring | grep -q 'driver = sring'"
check "ABI header compiles and runs as C11" bash -c \
  "gcc -std=c11 -Wall -Wextra -Werror -I'$work/prefix/include' examples/abi_from_c.c -o '$work/abi_c' && '$work/abi_c' | grep -q 'ABI $abi'"
for page in man1/acquire.1 man1/ringstat.1 man4/sring.4; do
  check "man page $page renders without warnings" bash -c \
    "groff -man -ww -z '$work/prefix/share/man/$page' 2>&1 | (! grep .) && man -l '$work/prefix/share/man/$page' 2>/dev/null | grep -q NAME"
done

if [ -z "$kver" ]; then
  check "kernel headers installed" false
else
  check "module builds with plain make" make -s -C driver KERNEL_SRC="/usr/src/linux-headers-$kver"
  check "modinfo: version, description, parameters with defaults" bash -c "
    info=\$(modinfo driver/sring.ko)
    echo \"\$info\" | grep -q '^version: *$version\$' &&
    echo \"\$info\" | grep -q '^description: .*data acquisition' &&
    echo \"\$info\" | grep -q '^license: *GPL' &&
    test \$(echo \"\$info\" | grep -c '^parm:') -eq 4 &&
    test \$(echo \"\$info\" | grep '^parm:' | grep -c 'default') -eq 4"
  check "modinfo: the device drivers depend on the core, with their parameters" bash -c "
    sim=\$(modinfo driver/sring_sim.ko) && edu=\$(modinfo driver/sring_edu.ko) &&
    echo \"\$sim\" | grep -q '^depends: *sring\$' && echo \"\$edu\" | grep -q '^depends: *sring\$' &&
    test \$(echo \"\$sim\" | grep '^parm:' | grep -c 'default') -eq 6 &&
    echo \"\$edu\" | grep -q '^alias: *pci:v00001234d000011E8' &&
    dig=\$(modinfo driver/sring_digitizer.ko) && echo \"\$dig\" | grep -q '^depends: *sring\$' &&
    echo \"\$dig\" | grep -q '^alias: *pci:v00001AF4d00001110' &&
    test \$(echo \"\$dig\" | grep '^parm:' | grep -c 'default') -eq 5"
  if [ "$(id -u)" -eq 0 ] && command -v dkms >/dev/null; then
    check "DKMS builds the module for $kver" scripts/dkms-install.sh --build-only "$kver"
    check "DKMS produced sring.ko, sring_sim.ko, sring_edu.ko and sring_digitizer.ko" bash -c "ls /var/lib/dkms/sring/$version/$kver/*/module/sring.ko* /var/lib/dkms/sring/$version/$kver/*/module/sring_sim.ko* /var/lib/dkms/sring/$version/$kver/*/module/sring_edu.ko* /var/lib/dkms/sring/$version/$kver/*/module/sring_digitizer.ko*"
    dkms remove "sring/$version" --all >/dev/null 2>&1 || true
    rm -rf "/usr/src/sring-$version"
  else
    check "DKMS available (root and the dkms package)" false
  fi
fi
echo "packaging: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
