// The user-space simulated device, stepped by hand: overrun policies, in-band
// loss marking, tail validation and the need-wakeup/watermark handshake.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sring/consumer.hpp"
#include "sring/detail/barriers.hpp"
#include "sring/format.hpp"
#include "sring/ring.hpp"
#include "sring/sring_pattern.h"
#include "sring/verify.hpp"
#include "sring/stream.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"

namespace {

using sring::Ring;
using sring::sim::HostRing;
using sring::sim::Produced;
using sring::sim::SimConfig;
using sring::sim::SimDevice;

constexpr uint64_t kRing = 64 * 1024;
constexpr uint32_t kBlock = 8192;  // eight blocks fill the ring

struct Fixture {
  explicit Fixture(uint32_t policy, uint64_t rate = 1'000'000)
      : host(std::move(*HostRing::create(kRing))),
        device(host, [&] {
          SimConfig c;
          c.block_bytes = kBlock;
          c.overrun_policy = policy;
          c.sample_rate = rate;
          c.flush_timeout = std::chrono::microseconds(1000);
          return c;
        }()) {
    device.begin();
    auto fd = host.duplicate_fd();
    ring.emplace(std::move(*Ring::attach(std::move(*fd), Ring::Access::kConsumer)));
  }
  uint64_t spb() const { return device.samples_per_block(); }

  HostRing host;
  SimDevice device;
  std::optional<Ring> ring;
};

// start() checks what the constructor took: a configuration the kernel
// device would refuse, and a second start over a running thread (which
// std::thread would turn into std::terminate), are errors that say so.
TEST(Start, RefusesABadConfigurationAndASecondStart) {
  HostRing host = std::move(*HostRing::create(kRing));
  for (const auto& bad : {SimConfig{.block_bytes = 64}, SimConfig{.block_bytes = 100},
                          SimConfig{.sample_rate = SRING_MAX_SAMPLE_RATE + 1},
                          SimConfig{.flush_timeout = std::chrono::seconds(11)}}) {
    SimDevice device(host, bad);
    auto started = device.start(std::chrono::milliseconds(10));
    ASSERT_FALSE(started.has_value());
    EXPECT_EQ(started.error_code(), std::errc::invalid_argument) << started.error().message;
    EXPECT_FALSE(device.running()) << "nothing started";
  }
  SimDevice device(host, SimConfig{.sample_rate = 1'000'000, .block_bytes = kBlock});
  ASSERT_TRUE(device.start().has_value());
  auto again = device.start();
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error_code(), std::errc::device_or_resource_busy);
  device.request_stop();
  device.join();
  EXPECT_TRUE(device.start(std::chrono::milliseconds(1)).has_value()) << "after join(), again";
  device.join();
}

TEST(DropNewest, DropsAreCountedAndMarkedOnTheNextBlock) {
  Fixture f(SRING_OVERRUN_DROP_NEWEST);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(f.device.produce_block(), Produced::kDropped);
  EXPECT_EQ(f.device.produce_block(), Produced::kDropped);
  const auto& p = f.host.producer();
  EXPECT_EQ(p.blocks_dropped, 2u);
  EXPECT_EQ(p.samples_dropped, 2 * f.spb());
  EXPECT_EQ(p.overruns, 1u) << "one episode of a full ring";
  EXPECT_EQ(p.high_water, kRing);

  sring::StreamConsumer consumer(*f.ring, true);
  consumer.accounting().expect_start(0, 0);
  ASSERT_EQ(*consumer.consume_available(), 8u);
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  const auto* marked = reinterpret_cast<const sring_block_header*>(f.host.data());  // wrapped to 0
  EXPECT_EQ(marked->flags & (SRING_BLOCK_F_GAP | SRING_BLOCK_F_OVERRUN),
            SRING_BLOCK_F_GAP | SRING_BLOCK_F_OVERRUN);
  EXPECT_EQ(marked->lost_samples, 2 * f.spb());
  EXPECT_EQ(marked->sequence, 10u);
  ASSERT_EQ(*consumer.consume_available(), 1u);
  const auto& c = consumer.counters();
  EXPECT_EQ(c.lost_samples, p.samples_dropped) << "accounting is exact";
  EXPECT_EQ(c.lost_blocks, p.blocks_dropped);
  EXPECT_EQ(c.flagged_lost_samples, p.samples_dropped);
  EXPECT_EQ(c.corrupted_samples, 0u);
  // The next block after the gap is clean again.
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(reinterpret_cast<const sring_block_header*>(f.host.data() + kBlock)->flags, 0u);
}

TEST(Stop, FullRingStopsTheDevice) {
  Fixture f(SRING_OVERRUN_STOP);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(f.device.produce_block(), Produced::kStopped);
  EXPECT_EQ(f.host.producer().state, uint32_t{SRING_STATE_OVERRUN_STOPPED});
  EXPECT_EQ(f.host.producer().overruns, 1u);
  EXPECT_EQ(f.host.producer().samples_dropped, 0u);
}

TEST(FlatOut, FullRingWaitsAndLosesNothing) {
  Fixture f(SRING_OVERRUN_DROP_NEWEST, /*rate=*/0);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(f.device.produce_block(), Produced::kNoSpace);
  EXPECT_EQ(f.host.producer().samples_dropped, 0u);
}

TEST(OverwriteOldest, ReclaimsAndTheReaderKnows) {
  Fixture f(SRING_OVERRUN_OVERWRITE_OLDEST);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  // The consumer takes the oldest block in hand...
  auto span = f.ring->acquire();
  ASSERT_TRUE(span.has_value());
  ASSERT_EQ(span->begin, 0u);
  // ...and the producer, needing room, takes it back (and one more).
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(f.host.consumer().tail, 2u * kBlock);
  EXPECT_EQ(f.host.producer().blocks_dropped, 2u);
  EXPECT_EQ(f.host.producer().samples_dropped, 2 * f.spb());
  // Releasing the block it read tells the consumer it was overwritten.
  const sring::ReleaseResult released = f.ring->release(kBlock).value();
  EXPECT_TRUE(released.overwritten());
  EXPECT_EQ(released.overwritten_below, 2u * kBlock);
  EXPECT_EQ(f.ring->tail(), 2u * kBlock);

  // A consumer reading from here sees exactly the reclaimed samples missing.
  sring::StreamConsumer consumer(*f.ring, true);
  consumer.accounting().expect_start(0, 0);
  ASSERT_EQ(*consumer.consume_available(), 8u);
  EXPECT_EQ(consumer.counters().lost_samples, f.host.producer().samples_dropped);
  EXPECT_EQ(consumer.counters().unflagged_gaps, 1u);
  EXPECT_EQ(consumer.counters().corrupted_samples, 0u);
}

TEST(OverwriteOldest, ConsumerReleaseWinsTheRace) {
  Fixture f(SRING_OVERRUN_OVERWRITE_OLDEST);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  auto span = f.ring->acquire();
  ASSERT_TRUE(span.has_value());
  // Released before the producer needed the room: nothing is lost.
  EXPECT_FALSE(f.ring->release(kBlock)->overwritten());
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(f.host.producer().blocks_dropped, 0u);
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(f.host.producer().blocks_dropped, 1u);
}

TEST(OverwriteOldest, ReclaimNeverTrustsABrokenHeader) {
  // Tricky: reclaim walks block headers from the oldest block. A header that
  // does not check out (here zeroed; in the kernel fuzzer, a stale position
  // after a policy change) must stop the walk, not loop on a zero length.
  Fixture f(SRING_OVERRUN_OVERWRITE_OLDEST);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  reinterpret_cast<sring_block_header*>(f.host.data())->total_bytes = 0;
  EXPECT_EQ(f.device.produce_block(), Produced::kDropped) << "nothing trustworthy to reclaim";
  reinterpret_cast<sring_block_header*>(f.host.data())->total_bytes = kBlock;
  EXPECT_EQ(f.device.produce_block(), Produced::kWritten) << "reclaims again once the header is sane";
}

TEST(TailValidation, BadTailsAreCountedAndIgnored) {
  Fixture f(SRING_OVERRUN_DROP_NEWEST);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  f.host.consumer().tail = 5u * kBlock;  // past head
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(f.host.producer().bad_tails, 1u);
  f.host.consumer().tail = uint64_t(-kBlock);  // far behind
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(f.host.producer().bad_tails, 2u);
  // A bad tail must not free space: the ring still holds 6 unreleased blocks.
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(f.device.produce_block(), Produced::kDropped);
  f.host.consumer().tail = 2u * kBlock;  // a real release is accepted again
  EXPECT_EQ(f.device.produce_block(), Produced::kWritten);
}

// The tail a consumer stores must be a block boundary (docs/abi.md, "struct
// sring_consumer_page"): one inside a block is refused like one out of
// range, counted, and frees nothing. Here the ring is full under
// drop-newest: a refused tail leaves it full (the next blocks are dropped
// and head stays), an accepted one makes room.
TEST(TailValidation, TailInsideABlockIsRefusedAndFreesNothing) {
  Fixture f(SRING_OVERRUN_DROP_NEWEST);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  auto& tail = f.host.consumer().tail;
  const uint64_t head = f.host.producer().head;
  ASSERT_EQ(head, kRing);
  uint64_t refused = 0;
  for (const uint64_t into : {2u, 10u, 64u, kBlock / 2, kBlock - 64}) {
    SCOPED_TRACE(into);
    sring::store_release(tail, 2 * kBlock + into);  // inside block 2
    EXPECT_EQ(f.device.produce_block(), Produced::kDropped) << "a tail inside a block freed space";
    EXPECT_EQ(f.host.producer().bad_tails, ++refused) << "a tail inside a block was accepted";
    EXPECT_EQ(f.host.producer().head, head);
  }
  EXPECT_EQ(f.host.producer().blocks_dropped, refused);
  // On a boundary: accepted, and the space below it is free again.
  sring::store_release(tail, 2 * kBlock);
  EXPECT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(f.device.produce_block(), Produced::kDropped) << "two blocks released, two written";
  EXPECT_EQ(f.host.producer().bad_tails, refused) << "a boundary was refused";
  // Head is a boundary too (everything released).
  sring::store_release(tail, f.host.producer().head);
  EXPECT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(f.host.producer().bad_tails, refused);
}

// Blocks below the head this device found (an earlier device's, here of
// another size) are not of its block size: their boundaries come from the
// producer's own headers, walked from the last accepted tail; from there on
// every block is the device's own size.
TEST(TailValidation, BoundariesOfAnEarlierDevicesBlocksComeFromTheirHeaders) {
  HostRing host = std::move(*HostRing::create(4 * kRing));  // room for every step's block
  constexpr uint32_t kSmall = 4096;
  {
    SimDevice small(host, SimConfig{.sample_rate = 1'000'000, .block_bytes = kSmall});
    small.begin();
    for (int i = 0; i < 3; ++i) ASSERT_EQ(small.produce_block(), Produced::kWritten);
    small.end();
  }
  SimDevice device(host, SimConfig{.sample_rate = 1'000'000, .block_bytes = kBlock});
  device.begin();
  const uint64_t from = 3 * kSmall;  // where this device's blocks begin
  for (int i = 0; i < 2; ++i) ASSERT_EQ(device.produce_block(), Produced::kWritten);
  auto& tail = host.consumer().tail;
  const auto& bad_tails = host.producer().bad_tails;
  struct Step {
    uint64_t tail;
    bool boundary;
  };
  for (const Step step : {Step{kSmall + kSmall / 2, false},  // inside the earlier device's block 1
                          Step{kSmall, true},                // its block 1
                          Step{2 * kSmall + 64, false},      // inside its block 2
                          Step{2 * kSmall, true},            // its block 2, one step of the walk
                          Step{from + kSmall, false},        // a small block's size into ours
                          Step{from, true},                  // our first block
                          Step{from + kBlock + 640, false},  // inside our second
                          Step{from + 2 * kBlock, true}}) {  // our third
    SCOPED_TRACE(step.tail);
    const uint64_t before = bad_tails;
    sring::store_release(tail, step.tail);
    ASSERT_EQ(device.produce_block(), Produced::kWritten);
    EXPECT_EQ(bad_tails - before, step.boundary ? 0u : 1u)
        << (step.boundary ? "a block boundary was refused" : "a tail inside a block was accepted");
  }
  sring::store_release(tail, host.producer().head);
  ASSERT_EQ(device.produce_block(), Produced::kWritten);
  EXPECT_EQ(bad_tails, 4u) << "head was refused";
}

// Positions are free-running and wrap at 2^64: boundaries and the
// overwrite-oldest reclaim are computed modulo 2^64 across the wrap.
TEST(TailValidation, BoundariesAcrossTheWrapOfPositions) {
  for (const uint32_t policy : {SRING_OVERRUN_DROP_NEWEST, SRING_OVERRUN_OVERWRITE_OLDEST}) {
    SCOPED_TRACE(policy);
    HostRing host = std::move(*HostRing::create(kRing));
    const uint64_t start = uint64_t(0) - 3 * kBlock;
    ASSERT_TRUE(host.reset(start).has_value());
    SimDevice device(host, SimConfig{.sample_rate = 1'000'000, .block_bytes = kBlock, .overrun_policy = policy});
    device.begin();
    auto fd = host.duplicate_fd();
    Ring ring = std::move(*Ring::attach(std::move(*fd), Ring::Access::kConsumer));
    sring::Consumer consumer(ring);
    for (int i = 0; i < 8; ++i) ASSERT_EQ(device.produce_block(), Produced::kWritten);
    auto& tail = host.consumer().tail;
    sring::store_release(tail, start + 4 * kBlock + 64);  // past the wrap, inside a block
    (void)device.produce_block();
    EXPECT_EQ(host.producer().bad_tails, policy == SRING_OVERRUN_DROP_NEWEST ? 1u : 2u);
    if (policy == SRING_OVERRUN_DROP_NEWEST) {
      sring::store_release(tail, start);  // put back what the consumer had
      // The consumer releases four blocks: a boundary past the wrap.
      auto n = consumer.consume([](const sring::Block&) {}, 4);
      ASSERT_TRUE(n.has_value()) << n.error().message;
      ASSERT_EQ(sring::load_acquire(tail), start + 4 * kBlock);
      ASSERT_EQ(device.produce_block(), Produced::kWritten);
      EXPECT_EQ(host.producer().bad_tails, 1u) << "a boundary past the wrap was refused";
    } else {
      // The reclaiming CAS replaced the bad tail with the end of the oldest block.
      EXPECT_EQ(tail, start + kBlock);
    }
    for (int i = 0; i < 8; ++i) (void)device.produce_block();
    auto n = consumer.consume([](const sring::Block&) {});
    ASSERT_TRUE(n.has_value()) << n.error().message;
    device.end();
    ASSERT_TRUE(consumer.end_of_stream());
    const auto end = consumer.finish();
    EXPECT_TRUE(end.exact()) << "missing " << end.missing_samples << ", dropped " << end.dropped_samples;
  }
}

// reclaim_oldest() checks the tail it reads itself, with the rule
// accepted_tail() uses: a bad tail found there is counted and replaced by
// the reclaiming CAS, and never taken as the last accepted tail. Here the
// consumer stores a tail one block behind the one the producer accepted (a
// consumer bug) into a full overwrite-oldest ring. Taken as valid, it would
// make the producer "reclaim" a block the consumer had already released
// (delivered) and count it as dropped too.
TEST(OverwriteOldest, ReclaimRefusesABadTailItReadsAndItsCasReplacesIt) {
  Fixture f(SRING_OVERRUN_OVERWRITE_OLDEST);
  sring::Consumer consumer(*f.ring);  // before the first block: counts from sample 0
  for (int i = 0; i < 8; ++i) ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  auto first = consumer.consume([](const sring::Block&) {}, 2);
  ASSERT_TRUE(first.has_value());
  ASSERT_EQ(*first, 2u);
  const uint64_t accepted = 2 * kBlock;
  ASSERT_EQ(f.ring->shared_tail(), accepted);
  // Full again, nothing lost: the producer accepted the consumer's tail.
  for (int i = 0; i < 2; ++i) ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  ASSERT_EQ(f.host.producer().blocks_dropped, 0u);

  sring::store_release(f.host.consumer().tail, accepted - kBlock);  // behind the accepted tail
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(f.host.producer().bad_tails, 2u) << "refused by accepted_tail() and by the reclaim";
  EXPECT_EQ(f.ring->shared_tail(), accepted + kBlock)
      << "the reclaiming CAS replaces the bad tail with the end of the oldest unreleased block";
  EXPECT_EQ(f.host.producer().blocks_dropped, 1u) << "exactly one block reclaimed: block 2";

  auto rest = consumer.consume([](const sring::Block&) {});
  ASSERT_TRUE(rest.has_value()) << rest.error().message;
  f.device.end();
  ASSERT_TRUE(consumer.end_of_stream());
  const auto end = consumer.finish();
  EXPECT_EQ(consumer.counters().samples + f.host.producer().samples_dropped, f.host.producer().samples_produced)
      << "a delivered block was also counted as dropped";
  EXPECT_TRUE(end.exact()) << "missing " << end.missing_samples << ", dropped " << end.dropped_samples;
}

// Overwrite-oldest: the producer takes a block back with a compare-and-swap
// on the tail, so a consumer that releases the block between the producer's
// load of the tail and its CAS keeps it (its own CAS moved the tail first).
// The reclaim hook puts the consumer's release exactly there, every run.
// With a plain store instead of the producer's CAS, the block is both
// delivered and counted as dropped.
TEST(OverwriteOldest, ConsumerReleaseBetweenTheProducersLoadAndCasKeepsTheBlock) {
  Fixture f(SRING_OVERRUN_OVERWRITE_OLDEST);
  sring::Consumer consumer(*f.ring);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  auto held = consumer.next();  // block 0, in hand
  ASSERT_TRUE(held.has_value() && held->has_value());
  ASSERT_EQ((*held)->sequence(), 0u);

  int calls = 0;
  std::optional<sring::Expected<uint64_t>> counted;
  f.device.set_reclaim_hook([&] {
    // Producer thread (this one), between its load of the tail and its CAS:
    // the consumer finishes block 0 and releases it (its own CAS).
    if (++calls == 1) counted.emplace(consumer.done(1));
  });
  const Produced produced = f.device.produce_block();  // the ring is full: reclaim block 0
  f.device.set_reclaim_hook(nullptr);
  EXPECT_EQ(produced, Produced::kWritten);
  ASSERT_EQ(calls, 1) << "the producer never reached its CAS";
  ASSERT_TRUE(counted.has_value() && counted->has_value());
  EXPECT_EQ(**counted, 1u) << "the consumer's release came first: block 0 is delivered";
  EXPECT_EQ(consumer.overwritten_while_read(), 0u);
  EXPECT_EQ(f.host.producer().blocks_dropped, 0u) << "a block the consumer released was counted as dropped";
  EXPECT_EQ(f.ring->shared_tail(), kBlock);

  auto rest = consumer.consume([](const sring::Block&) {});
  ASSERT_TRUE(rest.has_value()) << rest.error().message;
  EXPECT_EQ(*rest, 8u);
  f.device.end();
  ASSERT_TRUE(consumer.end_of_stream());
  const auto end = consumer.finish();
  EXPECT_EQ(consumer.counters().samples + f.host.producer().samples_dropped, f.host.producer().samples_produced);
  EXPECT_TRUE(end.exact()) << "missing " << end.missing_samples << ", dropped " << end.dropped_samples;
}

uint64_t eventfd_count(int fd) {
  uint64_t count = 0;
  if (::read(fd, &count, sizeof(count)) != sizeof(count)) return 0;
  return count;
}

TEST(Wakeup, OnlyWhenAskedAndAtTheWatermark) {
  Fixture f(SRING_OVERRUN_DROP_NEWEST);
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(f.device.set_eventfd(efd.get()).has_value());

  // Not asked: no signal, however much data.
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(eventfd_count(efd.get()), 0u);

  // Asked, with a watermark of 4 blocks (2 already there).
  f.host.consumer().wakeup_watermark = 4 * kBlock;
  f.host.consumer().need_wakeup = 1;
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(eventfd_count(efd.get()), 0u) << "below the watermark";
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(eventfd_count(efd.get()), 1u) << "at the watermark";
  EXPECT_EQ(f.host.consumer().need_wakeup, 0u) << "the request is consumed by the signal";
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(eventfd_count(efd.get()), 0u) << "one signal per request";
  EXPECT_EQ(f.host.producer().wakeups, 1u);
}

TEST(Wakeup, FlushTimeoutDeliversATrickle) {
  Fixture f(SRING_OVERRUN_DROP_NEWEST);
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(f.device.set_eventfd(efd.get()).has_value());
  f.host.consumer().wakeup_watermark = 6 * kBlock;
  f.host.consumer().need_wakeup = 1;
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  f.device.poll_flush();
  EXPECT_EQ(eventfd_count(efd.get()), 0u) << "too early to flush";
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  f.device.poll_flush();
  EXPECT_EQ(eventfd_count(efd.get()), 1u) << "flush timeout passed";
}

// The flush deadline runs while unreleased data is in the ring, whether or
// not a consumer asked when it was published: a consumer that arms
// need_wakeup afterwards, below its watermark, is signalled at the next
// expiry, and again at each later one while data stays unreleased. Once
// everything is released, nothing is signalled.
TEST(Wakeup, FlushDeadlineAnswersAConsumerThatArmsAfterThePublish) {
  Fixture f(SRING_OVERRUN_DROP_NEWEST);  // flush timeout 1 ms
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(f.device.set_eventfd(efd.get()).has_value());
  auto& page = f.host.consumer();
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);  // nobody asked yet
  // The consumer finds one block, below its watermark, and asks.
  sring::store_relaxed(page.wakeup_watermark, 6 * kBlock);
  sring::store_relaxed(page.need_wakeup, 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  f.device.poll_flush();
  EXPECT_EQ(eventfd_count(efd.get()), 1u) << "data published before need_wakeup was armed was never flushed";
  EXPECT_EQ(sring::load_relaxed(page.need_wakeup), 0u);
  // It asks again, with the block still unreleased: the next deadline.
  sring::store_relaxed(page.need_wakeup, 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  f.device.poll_flush();
  EXPECT_EQ(eventfd_count(efd.get()), 1u) << "the flush deadline was forgotten after one expiry";
  // Everything released: no deadline, no signal, the request stays armed.
  sring::store_release(page.tail, f.host.producer().head);
  sring::store_relaxed(page.need_wakeup, 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  f.device.poll_flush();
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  f.device.poll_flush();
  EXPECT_EQ(eventfd_count(efd.get()), 0u) << "flushed an empty ring";
  EXPECT_EQ(sring::load_relaxed(page.need_wakeup), 1u);
  EXPECT_EQ(f.host.producer().wakeups, 2u);
  // The next publish starts a deadline again.
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  f.device.poll_flush();
  EXPECT_EQ(eventfd_count(efd.get()), 1u);
}

// Data left unreleased across a stop and a start: the start owes it its
// flush, as a publish would, with no block made since (kernel twin:
// Defects.FlushAfterARestartWithDataLeft).
TEST(Wakeup, StartWithDataLeftStartsTheFlushDeadline) {
  Fixture f(SRING_OVERRUN_DROP_NEWEST);  // flush timeout 1 ms
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(f.device.set_eventfd(efd.get()).has_value());
  auto& page = f.host.consumer();
  ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  f.device.end();
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  f.device.poll_flush();  // stopped: the deadline ends
  f.device.begin();
  sring::store_relaxed(page.wakeup_watermark, 6 * kBlock);
  sring::store_relaxed(page.need_wakeup, 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  f.device.poll_flush();
  EXPECT_EQ(eventfd_count(efd.get()), 1u) << "data left from before the start was never flushed";
}

TEST(Wakeup, WildWatermarkCannotSilenceTheRing) {
  Fixture f(SRING_OVERRUN_DROP_NEWEST);
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(f.device.set_eventfd(efd.get()).has_value());
  f.host.consumer().wakeup_watermark = uint64_t(-1);
  f.host.consumer().need_wakeup = 1;
  for (int i = 0; i < 4; ++i) ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  EXPECT_EQ(eventfd_count(efd.get()), 1u) << "clamped to half the ring";
}

TEST(Faults, CorruptionIsInjectedAndDetected) {
  Fixture f(SRING_OVERRUN_DROP_NEWEST);
  f.device.inject_corruption(2);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
  sring::StreamConsumer consumer(*f.ring, true);
  ASSERT_EQ(*consumer.consume_available(), 4u);
  EXPECT_EQ(consumer.counters().corrupted_samples, 2u);
}

TEST(Config, BadConfigurationsAreRefused) {
  SimConfig c;
  c.block_bytes = 100;
  EXPECT_FALSE(sring::sim::validate_config(c, kRing).has_value());
  c.block_bytes = kRing;  // more than half the ring
  EXPECT_FALSE(sring::sim::validate_config(c, kRing).has_value());
  c.block_bytes = kBlock;
  c.overrun_policy = 7;
  EXPECT_FALSE(sring::sim::validate_config(c, kRing).has_value());
  c.overrun_policy = SRING_OVERRUN_STOP;
  EXPECT_TRUE(sring::sim::validate_config(c, kRing).has_value());
  EXPECT_FALSE(HostRing::create(100'000).has_value()) << "not a power of two";
}

// --- Formats and channels (docs/abi.md, "Sample formats and channels") ---

// Every layout the simulator makes: each standard format with 1, 2 and 4
// channels, its own 12-bit packed one with 1 (an odd value count per block
// in kLayoutBlock) and 3.
std::vector<std::pair<uint32_t, uint32_t>> every_layout() {
  std::vector<std::pair<uint32_t, uint32_t>> layouts;
  for (uint32_t format = 1; format <= SRING_FMT_LAST_STANDARD; ++format) {
    for (uint32_t channels : {1u, 2u, 4u}) layouts.emplace_back(format, channels);
  }
  layouts.emplace_back(SRING_FMT_SIM_PACKED12, 1);
  layouts.emplace_back(SRING_FMT_SIM_PACKED12, 3);
  return layouts;
}

// 8192 bytes of payload: 5461 values of 12 bits (an odd number, the last
// byte half used), whole frames of every other layout.
constexpr uint32_t kLayoutBlock = 8192 + 64;

struct LayoutFixture {
  LayoutFixture(uint32_t format, uint32_t channels)
      : host(std::move(*HostRing::create(128 * 1024))), device(host, [&] {
          SimConfig c;
          c.block_bytes = kLayoutBlock;
          c.sample_rate = 0;
          c.sample_format = format;
          c.channels = channels;
          return c;
        }()) {
    device.begin();
    auto fd = host.duplicate_fd();
    ring.emplace(std::move(*Ring::attach(std::move(*fd), Ring::Access::kConsumer)));
  }
  HostRing host;
  SimDevice device;
  std::optional<Ring> ring;
};

// The headers and the producer page say the layout, each block holds as
// many whole frames as fit, first_sample counts frames, and the payload is
// the pattern in that layout.
TEST(Formats, EveryLayoutHasItsHeadersPageAndPattern) {
  for (const auto& [format, channels] : every_layout()) {
    SCOPED_TRACE(sring::format_name(format) + " x " + std::to_string(channels));
    LayoutFixture f(format, channels);
    const uint32_t bits = format == SRING_FMT_SIM_PACKED12 ? 12 : sring_format_bits(format);
    const uint64_t frames = uint64_t{kLayoutBlock - SRING_BLOCK_HEADER_SIZE} * 8 / (channels * bits);
    EXPECT_EQ(f.device.samples_per_block(), frames);
    const auto& page = f.host.producer();
    EXPECT_EQ(page.sample_format, format);
    EXPECT_EQ(page.channels, channels);
    EXPECT_EQ(page.bits_per_sample, bits);
    for (int i = 0; i < 3; ++i) ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
    for (uint64_t k = 0; k < 3; ++k) {
      const auto* block = reinterpret_cast<const sring_block_header*>(f.host.data() + k * kLayoutBlock);
      EXPECT_EQ(block->sample_format, format);
      EXPECT_EQ(block->channels, channels);
      EXPECT_EQ(block->bits_per_sample, bits);
      EXPECT_EQ(block->bytes_per_sample, bits % 8 == 0 ? bits / 8 : 0);
      EXPECT_EQ(block->sample_count, frames);
      EXPECT_EQ(block->first_sample, k * frames);
      EXPECT_EQ(block->reserved1, 0u);
      const uint64_t payload = sring_payload_bytes(frames, channels, bits);
      EXPECT_LE(payload, kLayoutBlock - SRING_BLOCK_HEADER_SIZE);
      EXPECT_GT((frames + 1) * channels * bits, uint64_t{kLayoutBlock - SRING_BLOCK_HEADER_SIZE} * 8)
          << "another frame would not fit";
      EXPECT_EQ(sring::count_pattern_mismatches(reinterpret_cast<const std::byte*>(block + 1),
                                                sring::SampleLayout{format, channels, bits}, block->first_sample,
                                                block->sample_count, 1),
                0u);
    }
    EXPECT_EQ(page.samples_produced, 3 * frames) << "counters count frames";
    sring::StreamConsumer consumer(*f.ring, true);
    consumer.accounting().expect_start(0, 0);
    ASSERT_EQ(*consumer.consume_available(), 3u);
    EXPECT_EQ(consumer.counters().samples, 3 * frames);
    EXPECT_EQ(consumer.counters().corrupted_samples, 0u);
  }
}

// inject_corruption() flips one payload byte: exactly one wrong value per
// corrupted block, in any layout, and the verifier sees it.
TEST(Formats, CorruptionIsOneWrongValueInEveryLayout) {
  for (const auto& [format, channels] : every_layout()) {
    SCOPED_TRACE(sring::format_name(format) + " x " + std::to_string(channels));
    LayoutFixture f(format, channels);
    f.device.inject_corruption(2);
    for (int i = 0; i < 4; ++i) ASSERT_EQ(f.device.produce_block(), Produced::kWritten);
    sring::StreamConsumer consumer(*f.ring, true);
    ASSERT_EQ(*consumer.consume_available(), 4u);
    EXPECT_EQ(consumer.counters().corrupted_samples, 2u);
  }
}

TEST(Formats, RefusedLayoutsSayWhyAndChangeNothing) {
  HostRing host = std::move(*HostRing::create(kRing));
  struct Case {
    SimConfig config;
    const char* words;
  } cases[] = {
      {SimConfig{.sample_format = 0}, "not one the simulator makes"},
      {SimConfig{.sample_format = SRING_FMT_LAST_STANDARD + 1}, "not one the simulator makes"},
      {SimConfig{.sample_format = 0x8001}, "device-0x8001"},
      {SimConfig{.channels = 0}, "0 channels"},
      {SimConfig{.channels = SRING_MAX_CHANNELS + 1}, "257 channels"},
      {SimConfig{.sample_format = SRING_FMT_SIM_PACKED12, .channels = SRING_MAX_CHANNELS + 1}, "257 channels"},
      {SimConfig{.sample_format = SRING_FMT_SIM_PACKED12, .channels = 0}, "0 channels"},
      // 64 bytes of payload; a frame of 256 channels of cf32 is 2048.
      {SimConfig{.block_bytes = 128, .sample_format = SRING_FMT_CF32, .channels = 256}, "no room for one frame"},
      {SimConfig{.block_bytes = 128, .sample_format = SRING_FMT_S32, .channels = 17}, "no room for one frame"},
  };
  for (const auto& c : cases) {
    auto valid = sring::sim::validate_config(c.config, kRing);
    ASSERT_FALSE(valid.has_value()) << c.words;
    EXPECT_EQ(valid.error_code(), std::errc::invalid_argument);
    EXPECT_NE(valid.error().message.find(c.words), std::string::npos) << valid.error().message;
    SimDevice device(host, c.config);
    EXPECT_EQ(host.producer().sample_format, uint32_t{SRING_FMT_U16}) << "a refused layout is not published";
    EXPECT_EQ(host.producer().channels, 1u);
    EXPECT_EQ(host.producer().bits_per_sample, 16u);
    auto started = device.start(std::chrono::milliseconds(1));
    ASSERT_FALSE(started.has_value()) << c.words;
    EXPECT_EQ(started.error_code(), std::errc::invalid_argument);
  }
  // The edges that fit: 256 channels, one frame exactly filling a block.
  for (const SimConfig& fits : {SimConfig{.channels = 256}, SimConfig{.block_bytes = 128, .sample_format = SRING_FMT_S32, .channels = 16},
                                SimConfig{.block_bytes = 128, .sample_format = SRING_FMT_SIM_PACKED12, .channels = 42}}) {
    EXPECT_TRUE(sring::sim::validate_config(fits, kRing).has_value());
  }
  sring_config device_config = sring::sim::to_device_config(SimConfig{.sample_format = SRING_FMT_CS16, .channels = 4});
  EXPECT_EQ(device_config.sample_format, uint32_t{SRING_FMT_CS16});
  EXPECT_EQ(device_config.channels, 4u);
  EXPECT_EQ(device_config.reserved0, 0u);
  EXPECT_EQ(device_config.reserved1, 0u);
}

// The rate counts frames: 4 channels at 1,016,000 frames/s in blocks of
// 1016 frames is 1000 blocks a second, not a quarter of that.
TEST(Formats, PacingCountsFrames) {
  HostRing host = std::move(*HostRing::create(1 << 20));
  SimConfig config;
  config.block_bytes = 8192;  // 8128 bytes: 1016 frames of 4 x u16
  config.channels = 4;
  config.sample_rate = 1'016'000;
  SimDevice device(host, config);
  ASSERT_EQ(device.samples_per_block(), 1016u);
  ASSERT_TRUE(device.start(std::chrono::milliseconds(200)).has_value());
  device.join();
  // The schedule is fixed from the start (late blocks come out as a burst,
  // or are dropped in the full ring, and count as made): every block due
  // within the 200 ms is made, however busy the machine.
  const uint64_t blocks = host.producer().blocks_produced;
  EXPECT_GE(blocks, 199u);
  EXPECT_LE(blocks, 200u);
  EXPECT_EQ(host.producer().samples_produced, blocks * 1016);
}

}  // namespace
