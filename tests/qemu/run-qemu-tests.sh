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
#   tests/qemu/run-qemu-tests.sh --capi     only the C API consumer, sring-record and SoapySDR
#   tests/qemu/run-qemu-tests.sh --bigring  only the 1 GiB rings (3 GiB guest, 32-bit edu engine)
#   tests/qemu/run-qemu-tests.sh --bench-rings [quick] [SIZE...] [nopin]   ring sizes 4 MiB to 1 GiB,
#                                           mmap against read() at 20, 200, 1000 MS/s (guest-bench-rings.sh;
#                                           scripts/bench.sh --parts qemu-rings reads it); 3 GiB guest
#   tests/qemu/run-qemu-tests.sh --dma      only the host-side DMA model's scenarios (sring_digitizer.ko)
#   tests/qemu/run-qemu-tests.sh --bench-dma ARG...   the DMA model's benchmark (ARGs as for --bench)
#   tests/qemu/run-qemu-tests.sh --fuzz [SECONDS [SEED]]   only the fuzzer and its reach table
#                                           (tests/kernel/fuzz.cpp, docs/fuzzing.md; 40 s, seed 1)
#   tests/qemu/run-qemu-tests.sh --races    the scenarios where sring runs on both CPUs at once, then
#                                           the dma boot: the test command's KCSAN stage (SRING_KERNEL=kcsan)
#   SRING_KERNEL=debug tests/qemu/run-qemu-tests.sh --failnth   every allocation of sring's paths fails
#                                           once in turn (tests/kernel/failnth.cpp); needs fault injection
#
# The scenarios are four boots: tests, reserved, bigring, dma. The dma boots
# (and any benchdma*) share the guest's RAM, a file on /dev/shm, with the
# digitizer model sring-dma-model (devices/dma-model), which QEMU reaches as
# its ivshmem-doorbell device "digitizer" (chardev "dmachr"); the model's
# log is printed with "model: " in front. tests/qemu/host-requests.py serves
# the guest's hot-plug requests over QMP: a console line
# "HOST-REQUEST: unplug" ejects the digitizer (ACPI hotplug, the guest's
# acpiphp) and closes its chardev, "HOST-REQUEST: plug" connects a new
# chardev to the model and adds the device back; one "host: ..." line each.
#
# Environment:
#   SRING_QEMU_TIMEOUT=SECONDS   bound on each boot (900; 2400 for the debug kernel)
#   SRING_KERNEL=debug           the checkers' kernel of scripts/build-debug-kernel.sh
#   SRING_KERNEL=kcsan           its race detector's kernel (scripts/build-debug-kernel.sh --kcsan):
#                                a KCSAN report that names our code fails the boot
#   SRING_GUEST_INIT=FILE        for debugging the harness: FILE is the guest's /init
#                                instead of tests/qemu/guest-init.sh (a busybox sh script)
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=tests
append_extra=""
if [ "${1:-}" = "--demo" ] || [ "${1:-}" = "--bench" ] || [ "${1:-}" = "--edu" ] || [ "${1:-}" = "--removal" ] ||
   [ "${1:-}" = "--kernel-test" ] || [ "${1:-}" = "--late-commit" ] || [ "${1:-}" = "--capi" ] ||
   [ "${1:-}" = "--bigring" ] || [ "${1:-}" = "--bench-rings" ] || [ "${1:-}" = "--dma" ] ||
   [ "${1:-}" = "--bench-dma" ] || [ "${1:-}" = "--failnth" ] || [ "${1:-}" = "--fuzz" ] ||
   [ "${1:-}" = "--races" ]; then
  mode=${1#--}; mode=${mode/-/}; shift
  if [ $# -gt 0 ]; then append_extra=" sring.args=$(echo "$*" | tr ' ' ',')"; fi
fi
timeout_s=${SRING_QEMU_TIMEOUT:-900}
guest_init=${SRING_GUEST_INIT:-tests/qemu/guest-init.sh}
test -f "$guest_init" || { echo "qemu: no guest init $guest_init" >&2; echo "qemu: 0 passed, 1 failed"; exit 1; }

# The newest kernel that has both an image and matching headers, or with
# SRING_KERNEL=debug the checkers' kernel of scripts/build-debug-kernel.sh.
kernel_image=""; kernel_src=""; memory=1024
# How long host-requests.py gives the guest to eject the digitizer (and the
# model to take a new connection): about 0.1 s under TCG with the stock kernel.
host_timeout=30
if [ "${SRING_KERNEL:-stock}" = debug ]; then
  kernel_src=$(scripts/build-debug-kernel.sh | tail -n1)
  kernel_image="$kernel_src/arch/x86/boot/bzImage"
  kver="debug ($(basename "$kernel_src"))"
  memory=2048
  timeout_s=${SRING_QEMU_TIMEOUT:-2400}
  host_timeout=120
elif [ "${SRING_KERNEL:-stock}" = kcsan ]; then
  # The race detector's kernel: as slow as the checkers' one.
  kernel_src=$(scripts/build-debug-kernel.sh --kcsan | tail -n1)
  kernel_image="$kernel_src/arch/x86/boot/bzImage"
  kver="kcsan ($(basename "$kernel_src"))"
  memory=2048
  timeout_s=${SRING_QEMU_TIMEOUT:-2400}
  host_timeout=120
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
# The guest RAM files of the dma boots: shared memory, not $work's disk.
shm_dir=$(mktemp -d /dev/shm/sring-qemu.XXXXXX)
# The current boot's model and hot-plug helper, if the run ends early.
model_pid=""; host_pid=""
cleanup() {
  local pid
  for pid in $model_pid $host_pid; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work" "$shm_dir"
}
trap cleanup EXIT
# Build the module from a copy, so builds for different kernels never mix.
mkdir -p "$work/src/include" "$work/src/simulator" "$work/src/devices"
cp -r driver "$work/src/driver"
cp -r include/sring "$work/src/include/sring"
cp -r simulator/kernel "$work/src/simulator/kernel"
cp -r devices/edu "$work/src/devices/edu"
cp -r devices/digitizer "$work/src/devices/digitizer"
# A failed build ends the run with a verdict, never a boot of old binaries.
build_failed() {
  cat "$work/build.log" >&2
  echo "qemu: $1" >&2
  echo "qemu: 0 passed, 1 failed"
  exit 1
}
echo "qemu: building sring.ko, sring_sim.ko, sring_edu.ko and sring_digitizer.ko for $kver" >&2
make -s -C "$work/src/driver" KERNEL_SRC="$kernel_src" >"$work/build.log" 2>&1 ||
  build_failed "the modules did not build"
# Warning-free against the kernel's headers (Kbuild passes -Werror for our
# files; this also catches modpost's warnings).
grep -v 'Skipping BTF' "$work/build.log" | grep -E 'warning|WARNING' && build_failed "the modules built with warnings"
for module in sring sring_sim sring_edu sring_digitizer; do
  test -f "$work/src/driver/$module.ko" || build_failed "$module.ko is missing after the build"
done
guest_programs=(//tests/kernel:kernel_test //tests/conformance:conformance_kernel
                //tools:acquire-static //tools:ringstat-static //capi:consume_from_c-static
                //tests/kernel:failnth
                //tools:sring-record-static
                //soapy:soapy-direct-client //soapy:soapy-stream-client //soapy:libsringSupport.so
                //devices/dma-model:sring-dma-model)
# The benchmark shares this 2-core machine with other work: two jobs.
jobs=(); [[ "$mode" = bench* ]] && jobs=(--jobs=2)
bazel build "${jobs[@]}" "${guest_programs[@]}" >"$work/build.log" 2>&1 || build_failed "the guest programs did not build"

root="$work/root"
mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp}
cp /bin/busybox "$root/bin/busybox"
cp "$guest_init" "$root/init"
cp tests/qemu/kcsan-reports.awk "$root/kcsan-reports.awk"
cp tests/qemu/guest-bench.sh tests/qemu/guest-bench-rings.sh "$root/"
# The DMA model's benchmark boot sources it (written with scripts/bench.sh's qemu-dma part).
[ -f tests/qemu/guest-bench-dma.sh ] && cp tests/qemu/guest-bench-dma.sh "$root/"
chmod +x "$root/init"
cp "$work/src/driver/sring.ko" "$work/src/driver/sring_sim.ko" "$work/src/driver/sring_edu.ko" \
   "$work/src/driver/sring_digitizer.ko" "$root/"
cp packaging/udev/60-sring.rules "$root/60-sring.rules"
cp bazel-bin/tests/kernel/kernel_test "$root/kernel_test"
cp bazel-bin/tests/kernel/failnth "$root/failnth"
cp bazel-bin/tests/conformance/conformance_kernel "$root/conformance_kernel"
cp bazel-bin/tools/acquire-static "$root/acquire"
cp bazel-bin/tools/ringstat-static "$root/ringstat"
cp bazel-bin/capi/consume_from_c-static "$root/consume_from_c"
cp bazel-bin/tools/sring-record-static "$root/sring-record"
# SoapySDR's driver=sring and its two verifying clients are dynamic (SoapySDR
# loads modules with dlopen): the guest runs them with this machine's loader
# and the libraries they link, copied into /soapy.
mkdir -p "$root/soapy/lib" "$root/soapy/modules"
cp bazel-bin/soapy/soapy-direct-client bazel-bin/soapy/soapy-stream-client "$root/soapy/"
cp bazel-bin/soapy/libsringSupport.so "$root/soapy/modules/"
soapy_libs=$(ldd bazel-bin/soapy/soapy-direct-client bazel-bin/soapy/soapy-stream-client \
  bazel-bin/soapy/libsringSupport.so | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u)
[ -n "$soapy_libs" ] || build_failed "ldd found no libraries for the SoapySDR clients"
for lib in $soapy_libs; do cp -L "$lib" "$root/soapy/lib/"; done
interp=$(readelf -l bazel-bin/soapy/soapy-direct-client | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
cp -L "$interp" "$root/soapy/ld.so" || build_failed "no program interpreter for the SoapySDR clients"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"
# The host side of the dma boots, a copy: later builds may replace bazel-bin's.
cp bazel-bin/devices/dma-model/sring-dma-model "$work/sring-dma-model"
# --reconnect: after QEMU's chardev closes (an unplug), serve the next one.
model_reconnect=()
if "$work/sring-dma-model" --help 2>&1 | grep -q -- --reconnect; then
  model_reconnect=(--reconnect)
else
  echo "qemu: sring-dma-model has no --reconnect: a re-plug will find no model" >&2
fi

# Boots whose guest has the digitizer: the DMA model on the host, guest RAM
# shared with it.
needs_model() {
  [ "$1" = dma ] || [[ "$1" = benchdma* ]]
}
# Guest-physical RAM below 4 GiB for the pc machine with MIB of RAM (QEMU's
# below_4g_mem_size: 3 GiB once the guest has 3.5 GiB or more), in MiB.
pc_lowmem_mib() {
  if [ "$1" -ge 3584 ]; then echo 3072; else echo "$1"; fi
}

# One boot: boot MODE EXTRA_APPEND [EDU_DMA_MASK]; leaves its console in
# $work/console-MODE.log and appends its verdict line to $work/verdicts. The
# edu device's engine is narrowed to 24 address bits unless told otherwise
# (see guest-init.sh).
boot() {
  local boot_mode="$1" extra="$2" edu_mask="${3:-0xffffff}" log="$work/console-$1.log" rc
  local boot_memory=$memory
  # A 1 GiB ring, a second one's worth of memory held fragmented, and room.
  if [ "$boot_mode" = bigring ]; then boot_memory=3072; edu_mask=0xffffffff; fi
  local dma_args=() model_log="$work/model-$boot_mode.log" host_log="$work/host-$boot_mode.log"
  local model_failed="" host_failed=""
  : >"$log"
  if needs_model "$boot_mode"; then
    # Guest RAM in a file the model maps too; the model wants it to exist,
    # with its size, before it starts (QEMU keeps a file of the right size).
    local ram_file="$shm_dir/ram-$boot_mode" sock="$work/dma.sock" qmp="$work/qmp.sock"
    rm -f "$ram_file" "$sock" "$qmp"
    truncate -s "${boot_memory}M" "$ram_file"
    "$work/sring-dma-model" --socket "$sock" --ram "$ram_file" --lowmem "$(pc_lowmem_mib "$boot_memory")M" \
      --accept-timeout 60 "${model_reconnect[@]}" 2>"$model_log" &
    model_pid=$!
    # QEMU connects to the model at start: it must be listening by then.
    local waited=0
    until grep -q "listening on" "$model_log" 2>/dev/null; do
      if ! kill -0 "$model_pid" 2>/dev/null || [ $waited -ge 300 ]; then
        echo "qemu: the DMA model did not start listening" >&2
        model_failed=1
        break
      fi
      sleep 0.1; waited=$((waited + 1))
    done
    dma_args=(-object "memory-backend-file,id=ram,size=${boot_memory}M,mem-path=$ram_file,share=on"
              -machine pc,memory-backend=ram
              -chardev "socket,path=$sock,id=dmachr"
              -device ivshmem-doorbell,id=digitizer,chardev=dmachr,vectors=2
              -qmp "unix:$qmp,server=on,wait=off")
    /usr/bin/python3 tests/qemu/host-requests.py --console "$log" --qmp "$qmp" --socket "$sock" \
      --chardev dmachr --device driver=ivshmem-doorbell,id=digitizer,chardev=dmachr,vectors=2 \
      --timeout "$host_timeout" --log "$host_log" 2>>"$host_log" &
    host_pid=$!
  fi
  echo "qemu: booting $kver under TCG ($boot_mode)" >&2
  set +e
  if [ -z "$model_failed" ]; then
    timeout "$timeout_s" qemu-system-x86_64 \
      -accel tcg,thread=multi -cpu max -m "$boot_memory" -smp 2 \
      "${dma_args[@]}" \
      -kernel "$kernel_image" -initrd "$work/initrd.gz" \
      -device edu,dma_mask="$edu_mask" \
      -append "console=ttyS0 quiet panic=-1 oops=panic sring.mode=$boot_mode$extra" \
      -nographic -no-reboot -monitor none -serial stdio </dev/null >>"$log" 2>&1
    rc=$?
  else
    rc=1
  fi
  local i
  if [ -n "$host_pid" ]; then
    # It ends when QEMU's QMP socket closes; one that never got in is stopped.
    for i in $(seq 100); do kill -0 "$host_pid" 2>/dev/null || break; sleep 0.1; done
    kill "$host_pid" 2>/dev/null
    wait "$host_pid"
    [ $? -eq 0 ] || host_failed=1
    host_pid=""
  fi
  if [ -n "$model_pid" ]; then
    # Still serving (it waits for the next QEMU with --reconnect): stopped
    # (SIGTERM: it exits 0), killed if it does not go.
    # Status 1: the device failed while serving; 2: it could not start.
    kill "$model_pid" 2>/dev/null
    for i in $(seq 100); do kill -0 "$model_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$model_pid" 2>/dev/null
    wait "$model_pid"
    local model_rc=$?
    model_pid=""
    if [ $model_rc -eq 1 ] || [ $model_rc -eq 2 ]; then model_failed=1; fi
    rm -f "$ram_file"
  fi
  set -e
  # The guest's console, without the firmware's terminal escapes.
  tr -d '\r' <"$log" | sed -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' |
    grep -vE '^\s*$|^(SeaBIOS|iPXE|Booting from|Machine UUID)' || true
  if needs_model "$boot_mode"; then
    sed 's/^/model: /' "$model_log" 2>/dev/null || true
    cat "$host_log" 2>/dev/null || true
  fi
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
  if [ "${SRING_KERNEL:-stock}" = kcsan ]; then
    # Every KCSAN report of the boot, from the console (the guest's dmesg
    # may have wrapped): one of sring's (tests/qemu/kcsan-reports.awk says
    # which) fails the boot; the others are the rest of the kernel's.
    local ours others
    tr -d '\r' <"$log" >"$work/kcsan-$boot_mode.log"
    read -r ours others < <(awk -v mode=count -f tests/qemu/kcsan-reports.awk "$work/kcsan-$boot_mode.log")
    echo "qemu: KCSAN in the $boot_mode boot: $ours report(s) of sring's, $others on the rest of the kernel" >&2
    if [ "$ours" -gt 0 ]; then
      awk -v mode=ours -f tests/qemu/kcsan-reports.awk "$work/kcsan-$boot_mode.log" >&2
      echo "qemu: 0 passed, $ours failed" >>"$work/verdicts"
    fi
  fi
  if [ -n "$model_failed" ]; then
    echo "qemu: the $boot_mode boot's DMA model failed (see model: above)" >&2
    echo "qemu: 0 passed, 1 failed" >>"$work/verdicts"
  fi
  if [ -n "$host_failed" ]; then
    echo "qemu: the $boot_mode boot's host requests failed (see host: above)" >&2
    echo "qemu: 0 passed, 1 failed" >>"$work/verdicts"
  fi
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
  # The host-side DMA model behind QEMU's ivshmem-doorbell device.
  boot dma ""
fi
# The races' second boot: the digitizer's interrupts, threaded handler and
# hot-unplug against its consumers.
[ "$mode" = races ] && boot dma ""
total_passed=$(awk '{ s += $2 } END { print s + 0 }' "$work/verdicts")
total_failed=$(awk '{ s += $4 } END { print s + 0 }' "$work/verdicts")
echo "qemu: $total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
