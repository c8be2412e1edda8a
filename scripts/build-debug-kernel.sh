#!/bin/bash
# Builds a kernel for the QEMU tests from Debian's linux-source-6.1 with the
# kernel's own checkers: KASAN, lockdep (PROVE_LOCKING), DEBUG_ATOMIC_SLEEP,
# kmemleak, UBSAN and DMA-API debugging, fault injection (failslab,
# fail_page_alloc: /proc/<pid>/task/<tid>/fail-nth, which the fail-nth boot
# uses) and userfaultfd, which Debian's kernel has and a test uses to hold a
# read() in a page fault. With --kcsan, a second kernel in a tree of its own:
# the race detector KCSAN (strict: plain writes are not assumed atomic,
# interrupts are watched too, and missing barriers are modelled), which
# cannot be combined with KASAN (nor kmemleak, which would only slow it),
# with lockdep, UBSAN and DMA-API debugging as above.
# The result is cached (about 20 minutes on 2 cores the first time, nothing
# after): SRING_KERNEL_CACHE, default ~/.cache/sring. A tree is built beside
# the cached one and replaces it only when complete, so a boot of the old one
# is never pulled from under it.
# Prints the tree's path on the last line.
#   scripts/build-debug-kernel.sh [--kcsan] [--check]
#     --check: build nothing; exit 1 unless the tree is cached and up to date
#     (scripts/test.sh runs the stages on these kernels only then)
#   SRING_KERNEL=debug tests/qemu/run-qemu-tests.sh     boots the first
#   SRING_KERNEL=kcsan tests/qemu/run-qemu-tests.sh     boots the second
#   scripts/build-debug-kernel.sh && scripts/build-debug-kernel.sh --kcsan   builds both
set -euo pipefail
cd "$(dirname "$0")/.."
variant=debug; check_only=""
for arg in "$@"; do
  case "$arg" in
    --kcsan) variant=kcsan ;;
    --check) check_only=1 ;;
    *) echo "usage: $0 [--kcsan] [--check]" >&2; exit 2 ;;
  esac
done
cache=${SRING_KERNEL_CACHE:-$HOME/.cache/sring}
if [ -n "$check_only" ] && ! ls /usr/src/linux-source-6.1*.tar.xz >/dev/null 2>&1; then
  echo "$variant kernel: no linux-source-6.1 (scripts/build-debug-kernel.sh installs it)" >&2
  exit 1
fi
packages=(linux-source-6.1 bc flex bison libelf-dev libssl-dev dwarves make gcc)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ -z "$check_only" ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
tarball=$(ls /usr/src/linux-source-6.1*.tar.xz | sort -V | tail -n1)
tree="$cache/$(basename "$tarball" .tar.xz)-$variant"
# What the tree is built with; a change rebuilds it.
common="PROVE_LOCKING DEBUG_ATOMIC_SLEEP UBSAN DMA_API_DEBUG PCI_MSI MODULES MODULE_UNLOAD DEVTMPFS DEVTMPFS_MOUNT DEBUG_FS USERFAULTFD HOTPLUG_PCI HOTPLUG_PCI_ACPI"
if [ "$variant" = debug ]; then
  # fail-nth (Documentation/fault-injection/fault-injection.rst) needs only
  # FAULT_INJECTION; FAILSLAB and FAIL_PAGE_ALLOC make kmalloc/kmem_cache
  # and the page allocator fault points, FAULT_INJECTION_DEBUG_FS their
  # debugfs knobs (ignore-gfp-wait, min-order: by default GFP_KERNEL
  # allocations and order-0 pages are never failed).
  options="KASAN KASAN_INLINE DEBUG_KMEMLEAK FAULT_INJECTION FAILSLAB FAIL_PAGE_ALLOC FAULT_INJECTION_DEBUG_FS $common"
  extra=(-e DEBUG_KMEMLEAK_AUTO_SCAN -d DEBUG_KMEMLEAK_DEFAULT_OFF --set-val DEBUG_KMEMLEAK_MEM_POOL_SIZE 16000)
else
  # KCSAN_VERBOSE: a report also shows the locks held (it needs lockdep).
  options="KCSAN KCSAN_STRICT KCSAN_VERBOSE $common"
  extra=(-d KASAN -d DEBUG_KMEMLEAK)
fi
stamp="$tree/.sring-debug-stamp"
want="$(basename "$tarball") $options"
if [ -n "$check_only" ]; then
  if [ -f "$tree/arch/x86/boot/bzImage" ] && [ -f "$tree/Module.symvers" ] && [ -f "$stamp" ] &&
     [ "$(cat "$stamp")" = "$want" ]; then
    echo "$tree"
    exit 0
  fi
  flag=""; [ "$variant" = kcsan ] && flag=" --kcsan"
  echo "$variant kernel: not cached or out of date in $tree (scripts/build-debug-kernel.sh$flag builds it)" >&2
  exit 1
fi
# One build at a time per tree: a second caller waits for the first, then
# finds the tree up to date.
mkdir -p "$cache"
exec 9>"$cache/.$variant.lock"
flock 9
if [ -f "$tree/arch/x86/boot/bzImage" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  # Module.symvers comes from building the tree's own modules: without it,
  # modpost cannot check our module's symbols against this kernel.
  if [ ! -f "$tree/Module.symvers" ]; then
    echo "$variant kernel: building its modules for Module.symvers" >&2
    make -s -C "$tree" -j"$(nproc)" modules >&2
  fi
  echo "$tree"
  exit 0
fi
mkdir -p "$cache"
build="$tree.build"
rm -rf "$build"
echo "$variant kernel: unpacking $(basename "$tarball") into $build" >&2
mkdir -p "$build"
tar -xJf "$tarball" -C "$build" --strip-components=1
cd "$build"
make -s x86_64_defconfig >&2
make -s kvm_guest.config >&2
enable=()
for o in $options; do enable+=(-e "$o"); done
scripts/config "${enable[@]}" "${extra[@]}" -d RANDOMIZE_BASE -e DEBUG_INFO_NONE
make -s olddefconfig >&2
# olddefconfig drops what a dependency forbids: every option must have stuck.
for o in $options; do
  grep -q "^CONFIG_$o=y" .config || { echo "$variant kernel: CONFIG_$o did not stick" >&2; exit 1; }
done
echo "$variant kernel: building (about 20 minutes on 2 cores)" >&2
make -s -j"$(nproc)" bzImage modules >&2
echo "$want" >"$build/.sring-debug-stamp"
cd /
rm -rf "$tree.old"
[ -d "$tree" ] && mv "$tree" "$tree.old"
mv "$build" "$tree"
rm -rf "$tree.old"
echo "$tree"
