// Threaded tests written for ThreadSanitizer (tag "concurrent"), which sees a
// race only when two threads touch the same addresses with nothing ordering
// them:
//  - the producer thread and the consumer on ONE mapping of the ring (the
//    consumer adopts the simulator's own addresses with Ring::attach_memory),
//    so that a missing acquire on head or release on tail shows up as a race
//    on the block bytes, which x86 and two mappings of a memfd would hide;
//  - the statistics accessors read from a third thread while the ring runs.
// Both also check their results in the plain and ASan runs.
#include <sys/eventfd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "sring/ring.hpp"
#include "sring/stream.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"

namespace {

using namespace std::chrono_literals;
using sring::Ring;
using sring::WaitStrategy;
using sring::sim::HostRing;
using sring::sim::SimConfig;
using sring::sim::SimDevice;

sring::RingMemory memory_of(HostRing& host) {
  return {&host.producer(), &host.consumer(), host.data()};
}

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

TEST(SameMapping, ProducerThreadAndConsumerVerifyEverySample) {
  // Tricky: the ordering this checks is invisible elsewhere. With head loaded
  // relaxed in Ring::head() or stored relaxed in SimDevice::publish(), the
  // consumer's reads of a block are not ordered after the producer's writes
  // of it; with tail stored relaxed in Ring::release() or loaded relaxed in
  // SimDevice::accepted_tail(), the producer's rewrite of a lap-old block is
  // not ordered after the consumer's reads of it. x86 keeps all of these in
  // order anyway, so only TSan can tell, and only on shared addresses.
  //
  // The consumer spins (kSpin): an eventfd wake-up is a synchronization TSan
  // knows, and it would order every block published before the signal
  // whatever head's ordering. A small ring and small blocks make the
  // producer lap the ring hundreds of times, reusing space the consumer has
  // just released.
  auto host = HostRing::create(64 * 1024);
  ASSERT_TRUE(host.has_value()) << host.error().message;
  SimConfig config;
  config.sample_rate = 0;  // flat out: waits for room, loses nothing
  config.block_bytes = 4096;
  SimDevice device(*host, config);
  auto ring = Ring::attach_memory(memory_of(*host), Ring::Access::kConsumer);
  ASSERT_TRUE(ring.has_value()) << ring.error().message;
  ASSERT_EQ(reinterpret_cast<const std::byte*>(&ring->producer()),
            reinterpret_cast<const std::byte*>(&host->producer()))
      << "the consumer must read the producer's own addresses";

  sring::StreamConsumer consumer(*ring, true);
  consumer.accounting().expect_start(0, 0);
  ASSERT_TRUE(device.start(300ms).has_value());
  consume_until_over(*ring, consumer, WaitStrategy::kSpin);
  device.join();

  const auto& p = host->producer();
  const auto& c = consumer.counters();
  const uint64_t laps = sring::load_relaxed(p.blocks_produced) * config.block_bytes / host->ring_size();
  EXPECT_GE(laps, 20u) << "the producer must reuse the ring's space many times";
  EXPECT_EQ(c.samples, sring::load_relaxed(p.samples_produced));
  EXPECT_EQ(c.lost_samples, 0u);
  EXPECT_EQ(c.corrupted_samples, 0u);
  EXPECT_EQ(c.out_of_order, 0u);
  EXPECT_EQ(sring::load_relaxed(p.bad_tails), 0u);
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
  ASSERT_TRUE(device.start(300ms).has_value());
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
