#!/bin/bash
# Builds sring.ko against Debian's kernel headers and the guest programs,
# packs them with busybox into an initramfs, boots Debian's kernel under
# QEMU (software emulation: KVM does not work here), and turns the guest's
# verdict into an exit code.
#
#   tests/qemu/run-qemu-tests.sh            the scenarios
#   tests/qemu/run-qemu-tests.sh --demo     the main job: acquire and show stats
#   tests/qemu/run-qemu-tests.sh --bench RATE...   rate sweep, mmap against read()
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=tests
append_extra=""
if [ "${1:-}" = "--demo" ] || [ "${1:-}" = "--bench" ]; then
  mode=${1#--}; shift
  if [ $# -gt 0 ]; then append_extra=" sring.args=$(echo "$*" | tr ' ' ',')"; fi
fi
timeout_s=${SRING_QEMU_TIMEOUT:-900}

# The newest kernel that has both an image and matching headers, or with
# SRING_KERNEL=debug the checkers' kernel of scripts/build-debug-kernel.sh.
kernel_image=""; kernel_src=""; memory=1024
if [ "${SRING_KERNEL:-stock}" = debug ]; then
  kernel_src=$(scripts/build-debug-kernel.sh | tail -n1)
  kernel_image="$kernel_src/arch/x86/boot/bzImage"
  kver="debug ($(basename "$kernel_src"))"
  memory=2048
  timeout_s=${SRING_QEMU_TIMEOUT:-2400}
else
  kver=""
  for image in $(ls /boot/vmlinuz-*-amd64 2>/dev/null | sort -V); do
    v=${image#/boot/vmlinuz-}
    [ -d "/usr/src/linux-headers-$v" ] && kver=$v
  done
  if [ -z "$kver" ]; then
    echo "qemu: no kernel with matching headers (run scripts/setup-deps.sh)" >&2
    echo "qemu: 0 passed, 1 failed"
    exit 1
  fi
  kernel_image="/boot/vmlinuz-$kver"
  kernel_src="/usr/src/linux-headers-$kver"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Build the module from a copy, so builds for different kernels never mix.
mkdir -p "$work/src/include" "$work/src/simulator"
cp -r driver "$work/src/driver"
cp -r include/sring "$work/src/include/sring"
cp -r simulator/kernel "$work/src/simulator/kernel"
echo "qemu: building sring.ko for $kver" >&2
make -s -C "$work/src/driver" clean >/dev/null 2>&1 || true
make -s -C "$work/src/driver" KERNEL_SRC="$kernel_src" 2>&1 | grep -v 'Skipping BTF' >&2 || true
test -f "$work/src/driver/sring.ko"
bazel build //tests/kernel:kernel_test //consumer:acquire-static //consumer:ringstat-static 2>&1 |
  grep -E '^(ERROR|FAILED)' >&2 || true
test -x bazel-bin/tests/kernel/kernel_test
test -x bazel-bin/consumer/acquire-static
test -x bazel-bin/consumer/ringstat-static

root="$work/root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp}
cp /bin/busybox "$root/bin/busybox"
cp tests/qemu/guest-init.sh "$root/init"
chmod +x "$root/init"
cp "$work/src/driver/sring.ko" "$root/sring.ko"
cp packaging/udev/60-sring.rules "$root/60-sring.rules"
cp bazel-bin/tests/kernel/kernel_test "$root/kernel_test"
cp bazel-bin/consumer/acquire-static "$root/acquire"
cp bazel-bin/consumer/ringstat-static "$root/ringstat"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"

log="$work/console.log"
echo "qemu: booting $kver under TCG ($mode)" >&2
set +e
timeout "$timeout_s" qemu-system-x86_64 \
  -accel tcg,thread=multi -cpu max -m "$memory" -smp 2 \
  -kernel "$kernel_image" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 quiet panic=-1 oops=panic sring.mode=$mode$append_extra" \
  -nographic -no-reboot -monitor none -serial stdio </dev/null >"$log" 2>&1
qemu_rc=$?
set -e
# The guest's console, without the firmware's terminal escapes.
tr -d '\r' <"$log" | sed -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' |
  grep -vE '^\s*$|^(SeaBIOS|iPXE|Booting from|Machine UUID)' || true
if [ $qemu_rc -eq 124 ]; then
  echo "qemu: timed out after ${timeout_s}s" >&2
fi
result=$(tr -d '\r' <"$log" | grep -E '^qemu: [0-9]+ passed, [0-9]+ failed' | tail -n1)
if [ -z "$result" ]; then
  echo "qemu: 0 passed, 1 failed (the guest gave no verdict)"
  exit 1
fi
echo "$result"
failed=$(echo "$result" | awk '{print $4}')
[ "$failed" -eq 0 ]
