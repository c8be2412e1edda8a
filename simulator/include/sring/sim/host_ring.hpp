// A ring in a memfd: the user-space twin of the driver's ring memory. The
// file holds the producer page, the consumer page and ring_size bytes of
// data at the same offsets the device uses, so ringlib attaches to either the
// same way (it mirrors the file's data pages itself).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "sring/error.hpp"
#include "sring/unique_fd.hpp"
#include "sring/sring_abi.h"

namespace sring::sim {

class HostRing {
 public:
  // ring_size: a power of two, at least SRING_MIN_RING_SIZE.
  [[nodiscard]] static Expected<HostRing> create(uint64_t ring_size, const std::string& name = "sring");

  HostRing(HostRing&&) noexcept = default;
  HostRing& operator=(HostRing&&) noexcept = default;

  int fd() const { return fd_.get(); }
  // A new descriptor for the same ring, for a consumer to attach with.
  [[nodiscard]] Expected<UniqueFd> duplicate_fd() const;

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
  Mapping pages_;  // producer and consumer pages
  Mapping data_map_;
  sring_producer_page* kproducer_ = nullptr;
  sring_consumer_page* kconsumer_ = nullptr;
  std::byte* data_ = nullptr;
  uint64_t ring_size_ = 0;
};

}  // namespace sring::sim
