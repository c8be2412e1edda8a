#include "ringlib/error_format.hpp"
#include "sring/detail/mapping.hpp"

#include <sys/mman.h>

namespace sring {

Expected<Mapping> map_region(int fd, size_t length, off_t offset, int prot, const char* what) {
  void* addr = ::mmap(nullptr, length, prot, MAP_SHARED, fd, offset);
  if (addr == MAP_FAILED) {
    return errno_error("cannot map the {} ({} bytes at offset {})", what, length, offset);
  }
  return Mapping(addr, length);
}

Expected<Mapping> map_mirror(int fd, uint64_t ring_size, off_t data_offset, int prot,
                             MirrorSource source) {
  const size_t length = 2 * ring_size;
  if (source == MirrorSource::kDevice) return map_region(fd, length, data_offset, prot, "data mirror");

  // Reserve the whole window first so nothing else can land in its second
  // half, then replace both halves with the same file pages.
  void* base = ::mmap(nullptr, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return errno_error("cannot reserve {} bytes for the data mirror", length);
  Mapping window(base, length);
  auto* bytes = static_cast<unsigned char*>(base);
  for (int half = 0; half < 2; ++half) {
    void* want = bytes + half * ring_size;
    // Populated up front, as a device's ring is: page faults belong to
    // attach, not to the first lap of the consumer's hot loop.
    void* got = ::mmap(want, ring_size, prot, MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd, data_offset);
    if (got == MAP_FAILED) return errno_error("cannot map half {} of the data mirror", half);
  }
  return window;
}

}  // namespace sring
