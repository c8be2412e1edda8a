// A ring in a memfd: the user-space twin of the driver's ring memory. The
// file holds the producer page, the consumer page and ring_size bytes of
// data at the same offsets the device uses, so ringlib attaches to either the
// same way (it mirrors the file's data pages itself).
//
// In 2 MiB pages (RingPages::kHuge) the data moves to a file of its own, a
// hugetlb memfd of exactly ring_size bytes (hugetlbfs maps only whole huge
// pages, so the two 4 KiB control pages cannot share its file): the ring
// file then holds the two pages only, and a consumer needs both descriptors
// (Ring::attach(fd, data_fd, ...); docs/abi.md, "Ring files").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sring/error.hpp"
#include "sring/unique_fd.hpp"
#include "sring/sring_abi.h"

namespace sring::sim {

// The pages the ring's data lives in.
enum class RingPages {
  k4K,    // ordinary 4 KiB pages, in the ring file itself (the classic layout)
  kHuge,  // 2 MiB hugetlb pages in a data file of their own; an error if none can be had
  kAuto,  // kHuge when the ring is at least 2 MiB and the pages can be had, else k4K with
          // one line on stderr saying why
};

std::string_view to_string(RingPages pages);  // "4k", "huge", "auto"
// Parses "4k", "huge" or "auto" (command lines).
[[nodiscard]] Expected<RingPages> parse_ring_pages(std::string_view text);

inline constexpr uint64_t kHugePageSize = uint64_t{2} << 20;

class HostRing {
 public:
  // ring_size: a power of two, at least SRING_MIN_RING_SIZE (at least
  // kHugePageSize for kHuge).
  [[nodiscard]] static Expected<HostRing> create(uint64_t ring_size, const std::string& name = "sring",
                                                 RingPages pages = RingPages::k4K);

  HostRing(HostRing&&) noexcept = default;
  HostRing& operator=(HostRing&&) noexcept = default;

  int fd() const { return fd_.get(); }
  // A new descriptor for the same ring, for a consumer to attach with.
  [[nodiscard]] Expected<UniqueFd> duplicate_fd() const;
  // The data file's descriptor (-1 when the data is in the ring file, k4K),
  // and a new descriptor for it (an invalid UniqueFd then). A consumer
  // attaches with Ring::attach(duplicate_fd(), duplicate_data_fd(), ...),
  // which works for both layouts.
  int data_fd() const { return data_fd_.get(); }
  [[nodiscard]] Expected<UniqueFd> duplicate_data_fd() const;

  // What the data really lives in: k4K or kHuge, never kAuto.
  RingPages pages() const { return pages_kind_; }
  // Why kAuto fell back to 4 KiB pages (empty otherwise).
  const std::string& fallback_reason() const { return fallback_reason_; }

  // As SRING_IOC_RESET: head and tail to position (a multiple of 64),
  // counters to zero, state stopped; the next device starts at sequence 0,
  // sample 0. EBUSY while a device runs on the ring.
  [[nodiscard]] Status reset(uint64_t position = 0);

  uint64_t ring_size() const { return ring_size_; }
  sring_producer_page& producer() { return *kproducer_; }
  sring_consumer_page& consumer() { return *kconsumer_; }
  std::byte* data() { return data_; }  // writable, mirrored: 2 * ring_size

 private:
  HostRing() = default;

  UniqueFd fd_;
  UniqueFd data_fd_;  // the hugetlb data file (kHuge), else invalid
  Mapping control_;  // producer and consumer pages
  Mapping data_map_;
  sring_producer_page* kproducer_ = nullptr;
  sring_consumer_page* kconsumer_ = nullptr;
  std::byte* data_ = nullptr;
  uint64_t ring_size_ = 0;
  RingPages pages_kind_ = RingPages::k4K;
  std::string fallback_reason_;
};

}  // namespace sring::sim
