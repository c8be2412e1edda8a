#include "ringlib/error_format.hpp"
#include "sring/detail/mapping.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

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

  // Large pages are mapped large only where the virtual address is aligned
  // as the file's pages are: hugetlbfs reports its page size as the block
  // size, and its mappings must start on such a page (a plain memfd says
  // 4096). Both halves land on that alignment because ring_size is a
  // multiple of it.
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_error("cannot stat the ring's data file");
  const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t align = std::max<uint64_t>(page, static_cast<uint64_t>(st.st_blksize));
  if ((align & (align - 1)) != 0 || ring_size % align != 0 || static_cast<uint64_t>(data_offset) % align != 0) {
    return make_error(EINVAL, "a ring of {} bytes at offset {} cannot be mapped in {}-byte pages", ring_size,
                      data_offset, align);
  }

  // Reserve the whole window first (with room to align it) so nothing else
  // can land in its second half, then replace both halves with the same file
  // pages.
  const size_t slack = align > page ? align : 0;
  void* reserved = ::mmap(nullptr, length + slack, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (reserved == MAP_FAILED) return errno_error("cannot reserve {} bytes for the data mirror", length + slack);
  auto* start = static_cast<unsigned char*>(reserved);
  auto* bytes = reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(start) + align - 1) & ~(align - 1));
  // Give back the slack before and after the aligned window: Mapping owns
  // exactly the window from here on.
  if (bytes > start) ::munmap(start, static_cast<size_t>(bytes - start));
  if (start + slack > bytes) ::munmap(bytes + length, static_cast<size_t>(start + slack - bytes));
  Mapping window(bytes, length);
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
