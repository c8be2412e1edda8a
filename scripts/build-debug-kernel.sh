#!/bin/bash
# Builds a kernel for the QEMU tests from Debian's linux-source-6.1 with the
# kernel's own checkers: KASAN, lockdep (PROVE_LOCKING), DEBUG_ATOMIC_SLEEP,
# kmemleak, UBSAN and DMA-API debugging, and userfaultfd, which Debian's
# kernel has and a test uses to hold a read() in a page fault. The result is
# cached (about 20 minutes on 2 cores the first time, nothing after):
# SRING_KERNEL_CACHE, default ~/.cache/sring.
# Prints the tree's path on the last line.
#   scripts/build-debug-kernel.sh
#   SRING_KERNEL=debug tests/qemu/run-qemu-tests.sh     boots it
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${SRING_KERNEL_CACHE:-$HOME/.cache/sring}
packages=(linux-source-6.1 bc flex bison libelf-dev libssl-dev dwarves make gcc)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
tarball=$(ls /usr/src/linux-source-6.1*.tar.xz | sort -V | tail -n1)
tree="$cache/$(basename "$tarball" .tar.xz)-debug"
# What the tree is built with; a change rebuilds it.
options="KASAN KASAN_INLINE PROVE_LOCKING DEBUG_ATOMIC_SLEEP DEBUG_KMEMLEAK UBSAN DMA_API_DEBUG PCI_MSI MODULES MODULE_UNLOAD DEVTMPFS DEVTMPFS_MOUNT DEBUG_FS USERFAULTFD HOTPLUG_PCI HOTPLUG_PCI_ACPI"
stamp="$tree/.sring-debug-stamp"
want="$(basename "$tarball") $options"
if [ -f "$tree/arch/x86/boot/bzImage" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  # Module.symvers comes from building the tree's own modules: without it,
  # modpost cannot check our module's symbols against this kernel.
  if [ ! -f "$tree/Module.symvers" ]; then
    echo "debug kernel: building its modules for Module.symvers" >&2
    make -s -C "$tree" -j"$(nproc)" modules >&2
  fi
  echo "$tree"
  exit 0
fi
mkdir -p "$cache"
rm -rf "$tree"
echo "debug kernel: unpacking $(basename "$tarball") into $tree" >&2
mkdir -p "$tree"
tar -xJf "$tarball" -C "$tree" --strip-components=1
cd "$tree"
make -s x86_64_defconfig >&2
make -s kvm_guest.config >&2
enable=()
for o in $options; do enable+=(-e "$o"); done
scripts/config "${enable[@]}" -e DEBUG_KMEMLEAK_AUTO_SCAN -d DEBUG_KMEMLEAK_DEFAULT_OFF \
  --set-val DEBUG_KMEMLEAK_MEM_POOL_SIZE 16000 -d RANDOMIZE_BASE -e DEBUG_INFO_NONE
make -s olddefconfig >&2
echo "debug kernel: building (about 20 minutes on 2 cores)" >&2
make -s -j"$(nproc)" bzImage modules >&2
echo "$want" >"$stamp"
echo "$tree"
