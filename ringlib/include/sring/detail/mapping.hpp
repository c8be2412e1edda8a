// mmap helpers shared by the consumer (ringlib) and the user-space producer
// (simulator): single regions and the data mirror.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "sring/error.hpp"
#include "sring/unique_fd.hpp"

namespace sring {

// Maps length bytes of fd at offset; the error names the region.
Expected<Mapping> map_region(int fd, size_t length, off_t offset, int prot, const char* what);

// How the data pages of a ring are mirrored.
enum class MirrorSource {
  // A sring device: the driver maps 2 * ring_size itself, the pages twice.
  kDevice,
  // A regular file (memfd) holding ring_size bytes at data_offset: ringlib
  // reserves 2 * ring_size of address space, aligned to the file's block size
  // (2 MiB for a hugetlbfs file, so that its pages are mapped large), and
  // maps the file into both halves.
  kFile,
};

// Maps the data region twice back to back, so that base[i] and
// base[i + ring_size] are the same byte for 0 <= i < ring_size.
Expected<Mapping> map_mirror(int fd, uint64_t ring_size, off_t data_offset, int prot,
                             MirrorSource source);

}  // namespace sring
