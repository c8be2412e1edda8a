// Threaded tests written for ThreadSanitizer (tag "concurrent"), which sees a
// race only when two threads touch the same addresses with nothing ordering
// them: the statistics accessors read from a third thread while the ring
// runs. Also checks its results in the plain and ASan runs.
#include <sys/eventfd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "ringlib/ring.hpp"
#include "ringlib/stream.hpp"
#include "simulator/host_ring.hpp"
#include "simulator/sim_device.hpp"

namespace {

using namespace std::chrono_literals;
using sring::Ring;
using sring::WaitStrategy;
using sring::sim::HostRing;
using sring::sim::SimConfig;
using sring::sim::SimDevice;

// Consumes until the producer has stopped and the ring is drained.
void consume_until_over(Ring& ring, sring::StreamConsumer& consumer, WaitStrategy strategy) {
  for (;;) {
    auto n = consumer.consume_available();
    ASSERT_TRUE(n.has_value()) << n.error().message;
    if (*n > 0) continue;
    if (ring.state() != SRING_STATE_RUNNING && ring.head() == ring.tail()) break;
    auto waited = ring.wait(strategy, 50ms);
    ASSERT_TRUE(waited.has_value()) << waited.error().message;
  }
}

TEST(Accessors, ReadableFromAnyThreadWhileTheRingRuns) {
  // Ring::wakeups_received() and sleeps() (the consumer thread writes them)
  // and SimDevice::next_sample() (the producer thread writes it) are
  // documented as callable from any thread: a monitor thread polls them here
  // for the whole acquisition. As plain fields, TSan reports the race.
  auto host = HostRing::create(64 * 1024);
  ASSERT_TRUE(host.has_value()) << host.error().message;
  SimConfig config;
  config.sample_rate = 4'000'000;  // about 1000 blocks/s: the consumer sleeps between them
  config.block_bytes = 8192;
  config.flush_timeout = 1000us;
  SimDevice device(*host, config);
  auto fd = host->duplicate_fd();
  ASSERT_TRUE(fd.has_value());
  auto ring = Ring::attach(std::move(*fd), Ring::Access::kConsumer);
  ASSERT_TRUE(ring.has_value()) << ring.error().message;
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(device.set_eventfd(efd.get()).has_value());
  ASSERT_TRUE(ring->use_eventfd(std::move(efd)).has_value());

  std::atomic<bool> stop{false};
  uint64_t reads = 0;
  uint64_t seen_sleeps = 0;
  uint64_t seen_wakeups = 0;
  uint64_t seen_samples = 0;
  std::thread monitor([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      seen_sleeps = std::max(seen_sleeps, ring->sleeps());
      seen_wakeups = std::max(seen_wakeups, ring->wakeups_received());
      seen_samples = std::max(seen_samples, device.next_sample());
      ++reads;
      std::this_thread::sleep_for(100us);
    }
  });

  sring::StreamConsumer consumer(*ring, true);
  consumer.accounting().expect_start(0, 0);
  device.start(300ms);
  consume_until_over(*ring, consumer, WaitStrategy::kEventfd);
  device.join();
  stop.store(true, std::memory_order_relaxed);
  monitor.join();

  EXPECT_GT(reads, 10u);
  // The monitor saw the counters move while the ring ran, so its reads did
  // overlap the writes.
  EXPECT_GT(seen_sleeps, 0u);
  EXPECT_GT(seen_wakeups, 0u);
  EXPECT_GT(seen_samples, 0u);
  EXPECT_LE(seen_sleeps, ring->sleeps());
  EXPECT_LE(seen_wakeups, ring->wakeups_received());
  EXPECT_GE(device.next_sample(), consumer.counters().samples);
  EXPECT_EQ(consumer.counters().corrupted_samples, 0u);
}

}  // namespace
