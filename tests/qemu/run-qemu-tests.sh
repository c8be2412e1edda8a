#!/bin/bash
# Builds sring.ko against Debian's kernel headers and the guest programs,
# packs them with busybox into an initramfs, boots Debian's kernel under
# QEMU (software emulation: KVM does not work here), and turns the guest's
# verdict into an exit code.
#
#   tests/qemu/run-qemu-tests.sh            the scenarios
#   tests/qemu/run-qemu-tests.sh --demo     the main job: acquire and show stats
#   tests/qemu/run-qemu-tests.sh --bench RATE... [nopin]   rate sweep, mmap against read(),
#                                           interleaved (guest-init.sh; scripts/bench.sh reads it)
#   tests/qemu/run-qemu-tests.sh --edu      only the edu PCI device's scenarios
#   tests/qemu/run-qemu-tests.sh --removal  only the device-goes-away scenarios
#   tests/qemu/run-qemu-tests.sh --kernel-test FILTER   kernel_test's cases matching FILTER, then the
#                                           conformance tests (all of them: they guard the counters)
#   tests/qemu/run-qemu-tests.sh --late-commit  only the commit-after-stop scenario
#   tests/qemu/run-qemu-tests.sh --capi     only the C API consumer
#   tests/qemu/run-qemu-tests.sh --bigring  only the 1 GiB rings (3 GiB guest, 32-bit edu engine)
#   tests/qemu/run-qemu-tests.sh --bench-rings [quick] [SIZE...] [nopin]   ring sizes 4 MiB to 1 GiB,
#                                           mmap against read() at 20, 200, 1000 MS/s (guest-bench-rings.sh;
#                                           scripts/bench.sh --parts qemu-rings reads it); 3 GiB guest
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=tests
append_extra=""
if [ "${1:-}" = "--demo" ] || [ "${1:-}" = "--bench" ] || [ "${1:-}" = "--edu" ] || [ "${1:-}" = "--removal" ] ||
   [ "${1:-}" = "--kernel-test" ] || [ "${1:-}" = "--late-commit" ] || [ "${1:-}" = "--capi" ] ||
   [ "${1:-}" = "--bigring" ] || [ "${1:-}" = "--bench-rings" ]; then
  mode=${1#--}; mode=${mode/-/}; shift
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
# Room for a 1 GiB ring: its kernel mirror maps it twice, and vmap() refuses
# to map more pages than the machine has (a 2 GiB guest cannot).
if [ "$mode" = benchrings ]; then memory=3072; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Build the module from a copy, so builds for different kernels never mix.
mkdir -p "$work/src/include" "$work/src/simulator" "$work/src/devices"
cp -r driver "$work/src/driver"
cp -r include/sring "$work/src/include/sring"
cp -r simulator/kernel "$work/src/simulator/kernel"
cp -r devices/edu "$work/src/devices/edu"
# A failed build ends the run with a verdict, never a boot of old binaries.
build_failed() {
  cat "$work/build.log" >&2
  echo "qemu: $1" >&2
  echo "qemu: 0 passed, 1 failed"
  exit 1
}
echo "qemu: building sring.ko, sring_sim.ko and sring_edu.ko for $kver" >&2
make -s -C "$work/src/driver" KERNEL_SRC="$kernel_src" >"$work/build.log" 2>&1 ||
  build_failed "the modules did not build"
# Warning-free against the kernel's headers (Kbuild passes -Werror for our
# files; this also catches modpost's warnings).
grep -v 'Skipping BTF' "$work/build.log" | grep -E 'warning|WARNING' && build_failed "the modules built with warnings"
for module in sring sring_sim sring_edu; do
  test -f "$work/src/driver/$module.ko" || build_failed "$module.ko is missing after the build"
done
guest_programs=(//tests/kernel:kernel_test //tests/conformance:conformance_kernel
                //consumer:acquire-static //consumer:ringstat-static //capi:consume_from_c-static
                //consumer:sring-record-static)
# The benchmark shares this 2-core machine with other work: two jobs.
jobs=(); [[ "$mode" = bench* ]] && jobs=(--jobs=2)
bazel build "${jobs[@]}" "${guest_programs[@]}" >"$work/build.log" 2>&1 || build_failed "the guest programs did not build"

root="$work/root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp}
cp /bin/busybox "$root/bin/busybox"
cp tests/qemu/guest-init.sh "$root/init"
cp tests/qemu/guest-bench.sh tests/qemu/guest-bench-rings.sh "$root/"
chmod +x "$root/init"
cp "$work/src/driver/sring.ko" "$work/src/driver/sring_sim.ko" "$work/src/driver/sring_edu.ko" "$root/"
cp packaging/udev/60-sring.rules "$root/60-sring.rules"
cp bazel-bin/tests/kernel/kernel_test "$root/kernel_test"
cp bazel-bin/tests/conformance/conformance_kernel "$root/conformance_kernel"
cp bazel-bin/consumer/acquire-static "$root/acquire"
cp bazel-bin/consumer/ringstat-static "$root/ringstat"
cp bazel-bin/capi/consume_from_c-static "$root/consume_from_c"
cp bazel-bin/consumer/sring-record-static "$root/sring-record"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"

# One boot: boot MODE EXTRA_APPEND [EDU_DMA_MASK]; leaves its console in
# $work/console-MODE.log and appends its verdict line to $work/verdicts. The
# edu device's engine is narrowed to 24 address bits unless told otherwise
# (see guest-init.sh).
boot() {
  local boot_mode="$1" extra="$2" edu_mask="${3:-0xffffff}" log="$work/console-$1.log" rc
  local boot_memory=$memory
  # A 1 GiB ring, a second one's worth of memory held fragmented, and room.
  if [ "$boot_mode" = bigring ]; then boot_memory=3072; edu_mask=0xffffffff; fi
  echo "qemu: booting $kver under TCG ($boot_mode)" >&2
  set +e
  timeout "$timeout_s" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -m "$boot_memory" -smp 2 \
    -kernel "$kernel_image" -initrd "$work/initrd.gz" \
    -device edu,dma_mask="$edu_mask" \
    -append "console=ttyS0 quiet panic=-1 oops=panic sring.mode=$boot_mode$extra" \
    -nographic -no-reboot -monitor none -serial stdio </dev/null >"$log" 2>&1
  rc=$?
  set -e
  # The guest's console, without the firmware's terminal escapes.
  tr -d '\r' <"$log" | sed -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' |
    grep -vE '^\s*$|^(SeaBIOS|iPXE|Booting from|Machine UUID)' || true
  [ $rc -eq 124 ] && echo "qemu: the $boot_mode boot timed out after ${timeout_s}s" >&2
  local verdict
  verdict=$(tr -d '\r' <"$log" | grep -E '^qemu: [0-9]+ passed, [0-9]+ failed' | tail -n1)
  if [ -z "$verdict" ]; then
    echo "qemu: the $boot_mode boot gave no verdict" >&2
    verdict="qemu: 0 passed, 1 failed"
  elif [ "$(echo "$verdict" | awk '{print $2}')" = 0 ]; then
    # A boot that checked nothing (a scenario function missing, a mode
    # mistyped) has not passed.
    echo "qemu: the $boot_mode boot passed no check" >&2
    verdict="qemu: 0 passed, 1 failed"
  fi
  echo "$verdict ($boot_mode boot)" >&2
  echo "$verdict" >>"$work/verdicts"
}

: >"$work/verdicts"
boot "$mode" "$append_extra"
if [ "$mode" = tests ]; then
  # Rings carved from memory reserved at boot (memmap=SIZE$BASE): a boot of
  # its own, because the reservation is on the kernel command line.
  # 34 MiB at 128 MiB: two 16 MiB rings of the simulated device, and the
  # edu device's ring, mapped for its 28-bit engine (the default edu).
  boot reserved ' memmap=34M$0x8000000' 0xfffffff
  # Rings of a gigabyte from page chunks: a guest of its own size.
  boot bigring ""
fi
total_passed=$(awk '{ s += $2 } END { print s + 0 }' "$work/verdicts")
total_failed=$(awk '{ s += $4 } END { print s + 0 }' "$work/verdicts")
echo "qemu: $total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
