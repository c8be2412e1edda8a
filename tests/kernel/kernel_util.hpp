// Helpers shared by the kernel test programs (kernel_test.cpp and the
// files linked into it): they run inside the QEMU guest against the real
// module, /dev/sring0 and its sysfs directory.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "sring/device.hpp"
#include "sring/ring.hpp"
#include "sring/stream.hpp"
#include "sring/sring_abi.h"

namespace sring_ktest {

using namespace std::chrono_literals;
using sring::Ring;
using sring::UniqueFd;

inline const char* kDevice = "/dev/sring0";
inline const char* kSysfs = "/sys/class/sring/sring0/";

inline std::string sysfs(const std::string& name) {
  std::ifstream in(std::string(kSysfs) + name);
  std::string value;
  std::getline(in, value);
  return value;
}

inline uint64_t sysfs_u64(const std::string& name) { return std::stoull(sysfs(name)); }

// The guest runs on a checkers' kernel (KASAN or KCSAN: guest-init.sh sets
// SRING_KTEST_CHECKERS_KERNEL=1), where the simulated device falls behind
// its rate several times over. A volume floor that proves the stock
// kernel keeps pace is divided by 8 there; every exactness check stays.
inline uint64_t volume_floor(uint64_t on_stock_kernel) {
  const char* checkers = std::getenv("SRING_KTEST_CHECKERS_KERNEL");
  return checkers != nullptr && checkers[0] == '1' ? on_stock_kernel / 8 : on_stock_kernel;
}

inline UniqueFd open_device(int flags) { return UniqueFd(::open(kDevice, flags | O_CLOEXEC)); }

// 20 MS/s in 8 KiB blocks, drop-newest, U16, seed 1, 2 ms flush timeout.
inline sring_config default_config() { return sring::default_device_config(); }

// Stops, resets and configures the device through a consumer fd.
inline void prepare(int fd, const sring_config& config) {
  ASSERT_EQ(::ioctl(fd, SRING_IOC_STOP), 0) << strerror(errno);
  ASSERT_EQ(::ioctl(fd, SRING_IOC_RESET), 0) << strerror(errno);
  ASSERT_EQ(::ioctl(fd, SRING_IOC_SET_CONFIG, &config), 0) << strerror(errno);
}

inline sring_stats stats_of(int fd) {
  sring_stats stats{};
  EXPECT_EQ(::ioctl(fd, SRING_IOC_GET_STATS, &stats), 0) << strerror(errno);
  return stats;
}

// Consumes through ringlib until `duration` has passed, then stops the
// device and drains. Returns the consumer's counters.
inline sring::StreamCounters consume_for(Ring& ring, std::chrono::milliseconds duration, bool from_start) {
  sring::StreamConsumer consumer(ring, true);
  if (from_start) consumer.accounting().expect_start(0, 0);
  const auto stop_at = std::chrono::steady_clock::now() + duration;
  bool stopped = false;
  for (;;) {
    auto n = consumer.consume_available();
    EXPECT_TRUE(n.has_value()) << (n ? "" : n.error().message);
    if (!n) break;
    if (!stopped && std::chrono::steady_clock::now() >= stop_at) {
      EXPECT_EQ(::ioctl(ring.fd(), SRING_IOC_STOP), 0);
      stopped = true;
    }
    if (*n > 0) continue;
    if (stopped && ring.state() != SRING_STATE_RUNNING && ring.head() == ring.tail()) break;
    auto waited = ring.wait(sring::WaitStrategy::kEventfd, 100ms);
    EXPECT_TRUE(waited.has_value());
    if (!waited) break;
  }
  return consumer.counters();
}

// A non-blocking eventfd, registered as the ring's (fd is the consumer's).
inline UniqueFd registered_eventfd(int fd) {
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  const int32_t e = efd.get();
  EXPECT_EQ(::ioctl(fd, SRING_IOC_SET_EVENTFD, &e), 0) << strerror(errno);
  return efd;
}

// Raw protocol: arm need_wakeup with a watermark, fence, and wait for the
// eventfd. Returns whether it was signalled within `timeout`.
inline bool signalled_within(sring_consumer_page* page, int efd, uint64_t watermark, std::chrono::milliseconds timeout) {
  uint64_t count = 0;
  while (::read(efd, &count, sizeof(count)) == sizeof(count)) {
  }
  __atomic_store_n(&page->wakeup_watermark, watermark, __ATOMIC_RELAXED);
  __atomic_store_n(&page->need_wakeup, 1u, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  pollfd pfd{efd, POLLIN, 0};
  return ::poll(&pfd, 1, static_cast<int>(timeout.count())) == 1;
}

struct RawConsumer {
  explicit RawConsumer(const sring_config& config) {
    fd = open_device(O_RDWR);
    EXPECT_TRUE(fd.valid());
    prepare(fd.get(), config);
    efd = registered_eventfd(fd.get());
    void* p = ::mmap(nullptr, ::sysconf(_SC_PAGESIZE), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(),
                     ::sysconf(_SC_PAGESIZE));
    EXPECT_NE(p, MAP_FAILED);
    page = static_cast<sring_consumer_page*>(p);
  }
  ~RawConsumer() {
    ::ioctl(fd.get(), SRING_IOC_STOP);
    ::munmap(page, ::sysconf(_SC_PAGESIZE));
  }
  UniqueFd fd;
  UniqueFd efd;
  sring_consumer_page* page = nullptr;
};

// The three shared regions of a ring, mapped from its descriptor as a
// consumer (or, with writable false, a monitor) maps them: the producer
// page, the consumer page and the data twice. A failed mapping is a test
// failure, and ok() says false.
struct RingMapping {
  explicit RingMapping(int fd, bool writable = true) : page(::sysconf(_SC_PAGESIZE)) {
    void* p = ::mmap(nullptr, page, PROT_READ, MAP_SHARED, fd, SRING_PRODUCER_PGOFF * page);
    void* c = ::mmap(nullptr, page, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd,
                     SRING_CONSUMER_PGOFF * page);
    EXPECT_NE(p, MAP_FAILED) << "mmap of the producer page: " << strerror(errno);
    EXPECT_NE(c, MAP_FAILED) << "mmap of the consumer page: " << strerror(errno);
    if (p == MAP_FAILED || c == MAP_FAILED) {
      if (p != MAP_FAILED) ::munmap(p, page);
      if (c != MAP_FAILED) ::munmap(c, page);
      return;
    }
    prod = static_cast<const sring_producer_page*>(p);
    cons = static_cast<sring_consumer_page*>(c);
    ring_size = prod->ring_size;
    void* d = ::mmap(nullptr, 2 * ring_size, PROT_READ, MAP_SHARED, fd, SRING_DATA_PGOFF * page);
    EXPECT_NE(d, MAP_FAILED) << "mmap of the data: " << strerror(errno);
    if (d != MAP_FAILED) data = static_cast<const uint8_t*>(d);
    // The consumer page outlives consumers and resets: start from no
    // request and the default watermark.
    if (writable) {
      __atomic_store_n(&cons->need_wakeup, 0u, __ATOMIC_RELAXED);
      __atomic_store_n(&cons->wakeup_watermark, 0u, __ATOMIC_RELAXED);
    }
  }
  ~RingMapping() {
    if (prod) ::munmap(const_cast<sring_producer_page*>(prod), page);
    if (cons) ::munmap(cons, page);
    if (data) ::munmap(const_cast<uint8_t*>(data), 2 * ring_size);
  }
  RingMapping(const RingMapping&) = delete;
  RingMapping& operator=(const RingMapping&) = delete;

  bool ok() const { return data != nullptr; }
  uint64_t head() const { return __atomic_load_n(&prod->head, __ATOMIC_ACQUIRE); }
  uint32_t state() const { return __atomic_load_n(&prod->state, __ATOMIC_ACQUIRE); }
  uint64_t tail() const { return __atomic_load_n(&cons->tail, __ATOMIC_ACQUIRE); }
  // The consumer's release (drop-newest): the blocks below are read.
  void release_to(uint64_t position) { __atomic_store_n(&cons->tail, position, __ATOMIC_RELEASE); }
  // docs/abi.md, "Waiting": the request, then the full fence.
  void arm(uint64_t watermark) {
    __atomic_store_n(&cons->wakeup_watermark, watermark, __ATOMIC_RELAXED);
    __atomic_store_n(&cons->need_wakeup, 1u, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
  }
  const uint8_t* at(uint64_t position) const { return data + (position & (ring_size - 1)); }
  const sring_block_header& block_at(uint64_t position) const {
    return *reinterpret_cast<const sring_block_header*>(at(position));
  }

  long page;
  uint64_t ring_size = 0;
  const sring_producer_page* prod = nullptr;
  sring_consumer_page* cons = nullptr;
  const uint8_t* data = nullptr;
};

}  // namespace sring_ktest
