// Threaded tests: the worker pipeline releases strictly in order, and whole
// acquisitions (producer thread + consumer) lose nothing with every wait
// strategy. These also run under ThreadSanitizer (tag "concurrent").
#include <sys/eventfd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "sring/format.hpp"
#include "sring/pipeline.hpp"
#include "sring/sring_pattern.h"
#include "sring/stream.hpp"
#include "sring/verify.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"

namespace {

using sring::Ring;
using sring::sim::HostRing;
using sring::sim::SimConfig;
using sring::sim::SimDevice;

struct Acquisition {
  Acquisition(uint64_t ring_size, SimConfig config)
      : host(std::move(*HostRing::create(ring_size))), device(host, config) {
    auto fd = host.duplicate_fd();
    ring.emplace(std::move(*Ring::attach(std::move(*fd), Ring::Access::kConsumer)));
    sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    EXPECT_TRUE(device.set_eventfd(efd.get()).has_value());
    EXPECT_TRUE(ring->use_eventfd(std::move(efd)).has_value());
    ring->set_wakeup_watermark(ring_size / 8);
  }
  bool over(uint64_t consumed_up_to) const {
    return ring->state() != SRING_STATE_RUNNING && ring->head() == consumed_up_to;
  }

  HostRing host;
  SimDevice device;
  std::optional<Ring> ring;
};

// Produces exactly `blocks` blocks on a thread of its own, flat out (the
// producer waits for room, never drops), and ends the stream.
std::thread produce_exactly(Acquisition& a, uint64_t blocks) {
  // Started before the consumer runs, so that "not running" means the
  // stream is over.
  a.device.begin();
  return std::thread([&a, blocks] {
    for (uint64_t made = 0; made < blocks;) {
      if (a.device.produce_block() == sring::sim::Produced::kWritten) {
        ++made;
      } else {
        a.device.poll_flush();
        std::this_thread::yield();
      }
    }
    a.device.end();
  });
}

TEST(Pipeline, ReleasesStrictlyInOrder) {
  SimConfig config;
  config.sample_rate = 0;  // flat out: the producer waits for room, never drops
  config.block_bytes = 4096;
  Acquisition a(256 * 1024, config);
  constexpr uint64_t kBlocks = 3000;
  constexpr unsigned kWorkers = 3;
  std::vector<std::atomic<int>> seen(kBlocks);
  std::atomic<uint64_t> released_too_early{0};
  std::atomic<uint64_t> out_of_range{0};
  std::atomic<uint64_t> behind_own_last{0};
  // Per worker, written by that worker only.
  std::vector<uint64_t> last_sequence(kWorkers, 0);

  // Runs of up to 4 blocks: many runs, so many chances to finish out of order.
  sring::PipelineOptions options;
  options.max_run_bytes = 4 * 4096;
  sring::Pipeline pipeline(*a.ring, kWorkers, [&](unsigned worker, const sring::BlockDescriptor& d) {
    // Tricky: workers finish out of order (uneven work below), yet the ring
    // must never be released past a block a worker still holds.
    if (a.ring->shared_tail() > d.begin_position) released_too_early.fetch_add(1);
    if (d.sequence >= kBlocks) {
      out_of_range.fetch_add(1);
      return;
    }
    // A worker walks its runs, and gets them, in ring order.
    if (d.sequence != 0 && d.sequence <= last_sequence[worker]) behind_own_last.fetch_add(1);
    last_sequence[worker] = d.sequence;
    if ((d.sequence + worker) % 5 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
    seen[d.sequence].fetch_add(1);
  }, options);

  std::thread producer = produce_exactly(a, kBlocks);
  sring::StreamAccounting accounting;
  accounting.expect_start(0, 0);
  auto run = pipeline.run(
      sring::WaitStrategy::kHybrid,
      [&] { return !a.over(pipeline.dispatched_position()); },
      [&](const sring_block_header& block) { accounting.on_block(block); });
  producer.join();
  ASSERT_TRUE(run.has_value()) << run.error().message;

  EXPECT_EQ(released_too_early.load(), 0u);
  EXPECT_EQ(out_of_range.load(), 0u);
  EXPECT_EQ(behind_own_last.load(), 0u);
  for (uint64_t i = 0; i < kBlocks; ++i) ASSERT_EQ(seen[i].load(), 1) << "block " << i;
  EXPECT_EQ(pipeline.blocks_dispatched(), kBlocks);
  EXPECT_EQ(pipeline.blocks_released(), kBlocks);
  EXPECT_GE(pipeline.runs_dispatched(), kBlocks / 4);
  EXPECT_EQ(a.ring->tail(), a.ring->head());
  EXPECT_EQ(a.host.consumer().tail, a.ring->head());
  EXPECT_EQ(accounting.counters().lost_samples, 0u);
}

// Worker 0 holds block 0 (its first run: on a fresh pipeline the first run
// goes to worker 0) until the other workers have finished many runs after it
// and the reader has gone round its loop after that: the tail must not have
// passed block 0. No timing: the ring (64 blocks) leaves the other workers
// at least 60 blocks after block 0 (worker 0's inbox takes at most 3),
// however late worker 0 gets to run, and the hold ends on counts, not on a
// clock.
TEST(Pipeline, HeldWorkerHoldsTheTail) {
  SimConfig config;
  config.sample_rate = 0;
  config.block_bytes = 4096;
  Acquisition a(256 * 1024, config);
  constexpr uint64_t kBlocks = 1000;
  constexpr uint64_t kFinishedWhileHeld = 32;
  sring::PipelineOptions options;
  options.max_run_bytes = 4096;  // one block per run: the others finish many runs
  options.runs_per_worker = 4;

  std::atomic<int> holder{-1};
  std::atomic<bool> let_go{false};
  std::atomic<uint64_t> finished_after_held{0};  // by workers 1 and 2
  std::atomic<uint64_t> reader_rounds{0};
  std::atomic<uint64_t> tail_seen_while_held{0};
  std::atomic<uint64_t> passed_while_held{0};
  std::atomic<uint64_t> blocks_worked{0};

  sring::Pipeline pipeline(*a.ring, 3, [&](unsigned worker, const sring::BlockDescriptor& d) {
    blocks_worked.fetch_add(1);
    if (d.sequence == 0) {
      holder.store(static_cast<int>(worker));
      while (finished_after_held.load() < kFinishedWhileHeld) std::this_thread::yield();
      // Two more passes of the reader's loop: it has looked at the others'
      // counters since they finished, and would have released past block 0
      // if it released anything but the finished prefix.
      const uint64_t rounds = reader_rounds.load();
      while (reader_rounds.load() < rounds + 2) std::this_thread::yield();
      tail_seen_while_held.store(a.ring->shared_tail());
      let_go.store(true);
      return;
    }
    // Block 0 is not finished until let_go: the tail must still be at 0.
    if (!let_go.load() && a.ring->shared_tail() > 0) passed_while_held.fetch_add(1);
    finished_after_held.fetch_add(1);  // one block per run: its run is about to be finished
  }, options);

  std::thread producer = produce_exactly(a, kBlocks);
  auto run = pipeline.run(
      sring::WaitStrategy::kHybrid,
      [&] {
        reader_rounds.fetch_add(1);
        return !pipeline.end_of_stream();
      },
      nullptr);
  producer.join();
  ASSERT_TRUE(run.has_value()) << run.error().message;

  EXPECT_EQ(holder.load(), 0) << "block 0 was meant to go to worker 0";
  EXPECT_GE(finished_after_held.load(), kFinishedWhileHeld);
  EXPECT_EQ(tail_seen_while_held.load(), 0u) << "the ring was released past the block worker 0 still held";
  EXPECT_EQ(passed_while_held.load(), 0u) << "another worker saw the tail past the held block";
  // Let go, it finished, and everything was released.
  EXPECT_EQ(blocks_worked.load(), kBlocks);
  EXPECT_EQ(pipeline.blocks_released(), kBlocks);
  EXPECT_EQ(a.ring->tail(), a.ring->head());
  EXPECT_EQ(a.host.consumer().tail, a.ring->head());
}

// For ThreadSanitizer, which sees a race only on shared addresses: the
// reader adopts the producer's own mapping (Ring::attach_memory), spins
// rather than sleeping on an eventfd (a wake-up is a synchronization TSan
// knows, and would order things on its own), and a small ring makes the
// producer rewrite each block soon after its release. Workers read every
// sample. The only thing that orders a worker's reads of a block before the
// producer's rewrite of it is the chain: worker's store-release of
// runs_finished -> reader's acquire load -> reader's store-release of the
// tail -> producer's acquire load of the tail. With runs_finished stored or
// loaded relaxed, TSan reports a race here (x86 never shows it).
TEST(Pipeline, SameMappingWorkerReadsComeBeforeTheProducerRewrites) {
  auto host = HostRing::create(64 * 1024);
  ASSERT_TRUE(host.has_value()) << host.error().message;
  SimConfig config;
  config.sample_rate = 0;
  config.block_bytes = 4096;
  SimDevice device(*host, config);
  auto ring = Ring::attach_memory({&host->producer(), &host->consumer(), host->data()},
                                  Ring::Access::kConsumer);
  ASSERT_TRUE(ring.has_value()) << ring.error().message;
  // 600 blocks lap the 16-block ring over 35 times; two workers and a
  // spinning reader are already more threads than this machine has cores.
  constexpr uint64_t kBlocks = 600;
  constexpr unsigned kWorkers = 2;
  std::vector<std::atomic<uint64_t>> corrupted(kWorkers);
  std::atomic<uint64_t> blocks_worked{0};
  sring::PipelineOptions options;
  options.max_run_bytes = 2 * 4096;
  sring::Pipeline pipeline(*ring, kWorkers, [&](unsigned worker, const sring::BlockDescriptor& d) {
    corrupted[worker].fetch_add(sring::count_pattern_mismatches(
        d.samples().data(), d.header->first_sample, d.header->sample_count, 1));
    blocks_worked.fetch_add(1);
  }, options);

  device.begin();
  std::thread producer([&] {
    for (uint64_t made = 0; made < kBlocks;) {
      if (device.produce_block() == sring::sim::Produced::kWritten) {
        ++made;
      } else {
        std::this_thread::yield();
      }
    }
    device.end();
  });
  auto run = pipeline.run(
      sring::WaitStrategy::kSpin,
      [&] { return !(ring->state() != SRING_STATE_RUNNING && ring->head() == pipeline.dispatched_position()); },
      nullptr);
  producer.join();
  ASSERT_TRUE(run.has_value()) << run.error().message;
  EXPECT_EQ(blocks_worked.load(), kBlocks);
  for (auto& c : corrupted) EXPECT_EQ(c.load(), 0u) << "a worker read a block being rewritten";
  EXPECT_EQ(ring->tail(), ring->head());
}

TEST(Pipeline, RefusesOverwriteOldest) {
  SimConfig config;
  config.overrun_policy = SRING_OVERRUN_OVERWRITE_OLDEST;
  Acquisition a(64 * 1024, config);
  a.device.begin();
  sring::Pipeline pipeline(*a.ring, 2, [](unsigned, const sring::BlockDescriptor&) {});
  auto run = pipeline.run(sring::WaitStrategy::kSpin, [] { return false; }, nullptr);
  ASSERT_FALSE(run.has_value());
  EXPECT_EQ(run.error().code, EINVAL);
}

// Consumes on this thread until the producer has stopped and the ring is
// drained. With slow_one_in > 0, sleeps up to max_sleep_us after one batch in
// slow_one_in (a consumer that sometimes falls behind).
void consume_until_over(Acquisition& a, sring::StreamConsumer& consumer,
                        sring::WaitStrategy strategy, uint32_t seed = 0,
                        uint32_t slow_one_in = 0, uint32_t max_sleep_us = 0) {
  std::mt19937 random(seed);
  for (;;) {
    auto n = consumer.consume_available();
    ASSERT_TRUE(n.has_value()) << n.error().message;
    if (*n > 0) {
      if (slow_one_in && random() % slow_one_in == 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(random() % max_sleep_us));
      }
      continue;
    }
    if (a.over(a.ring->tail())) break;
    auto waited = a.ring->wait(strategy, std::chrono::milliseconds(50));
    ASSERT_TRUE(waited.has_value()) << waited.error().message;
  }
}

// A whole acquisition with the producer flat out (it waits for room rather
// than drop, so the result does not depend on this machine's speed or a
// sanitizer's slowdown): every sample arrives, in order, and verifies.
// In any layout: the workers verify each block's payload in its own layout
// (BlockDescriptor::layout()), and a cs16 one through its typed view too.
void acquire_and_check(sring::WaitStrategy strategy, unsigned workers, uint32_t format = SRING_FMT_U16,
                       uint32_t channels = 1) {
  SimConfig config;
  config.sample_rate = 0;
  config.block_bytes = 16384;
  config.sample_format = format;
  config.channels = channels;
  Acquisition a(4 << 20, config);
  ASSERT_TRUE(a.device.start(std::chrono::milliseconds(400)).has_value());
  sring::StreamCounters counters;
  if (workers == 0) {
    sring::StreamConsumer consumer(*a.ring, true);
    consumer.accounting().expect_start(0, 0);
    consume_until_over(a, consumer, strategy);
    counters = consumer.counters();
  } else {
    std::vector<std::atomic<uint64_t>> corrupted(workers);
    std::atomic<uint64_t> wrong_views{0};
    sring::Pipeline pipeline(*a.ring, workers, [&](unsigned w, const sring::BlockDescriptor& d) {
      corrupted[w].fetch_add(sring::count_pattern_mismatches(d.payload().data(), d.layout(),
                                                             d.header->first_sample, d.header->sample_count, 1));
      if (d.layout().format == SRING_FMT_CS16) {
        const auto iq = d.as<sring::cs16>();
        wrong_views += iq.size() != uint64_t{d.header->sample_count} * channels ||
                       static_cast<const void*>(iq.data()) != static_cast<const void*>(d.payload().data());
        try {
          (void)d.as<int16_t>();
          ++wrong_views;
        } catch (const sring::FormatMismatch&) {
        }
      }
    });
    sring::StreamAccounting accounting;
    accounting.expect_start(0, 0);
    auto run = pipeline.run(
        strategy, [&] { return !a.over(pipeline.dispatched_position()); },
        [&](const sring_block_header& b) { accounting.on_block(b); });
    ASSERT_TRUE(run.has_value()) << run.error().message;
    for (auto& c : corrupted) accounting.add_corrupted(c.load());
    counters = accounting.counters();
    EXPECT_EQ(wrong_views.load(), 0u);
  }
  a.device.join();
  const auto& p = a.host.producer();
  EXPECT_GT(counters.samples, 0u);
  EXPECT_EQ(counters.samples, p.samples_produced);
  EXPECT_EQ(counters.lost_samples, 0u);
  EXPECT_EQ(p.samples_dropped, 0u);
  EXPECT_EQ(counters.corrupted_samples, 0u);
  EXPECT_EQ(counters.out_of_order, 0u);
  EXPECT_EQ(p.bad_tails, 0u);
}

TEST(Acquisition, EventfdSingleThread) { acquire_and_check(sring::WaitStrategy::kEventfd, 0); }
TEST(Acquisition, PollSingleThread) { acquire_and_check(sring::WaitStrategy::kPoll, 0); }
TEST(Acquisition, SpinSingleThread) { acquire_and_check(sring::WaitStrategy::kSpin, 0); }
TEST(Acquisition, HybridSingleThread) { acquire_and_check(sring::WaitStrategy::kHybrid, 0); }
TEST(Acquisition, EventfdTwoWorkers) { acquire_and_check(sring::WaitStrategy::kEventfd, 2); }
TEST(Acquisition, HybridThreeWorkers) { acquire_and_check(sring::WaitStrategy::kHybrid, 3); }
TEST(Acquisition, EventfdTwoWorkersComplexTwoChannels) {
  acquire_and_check(sring::WaitStrategy::kEventfd, 2, SRING_FMT_CS16, 2);
}
TEST(Acquisition, EventfdSingleThreadPacked12ThreeChannels) {
  acquire_and_check(sring::WaitStrategy::kEventfd, 0, SRING_FMT_SIM_PACKED12, 3);
}

// Stress: the producer flat out into a small ring, with injected stalls,
// bursts and an overrunning slow phase; whatever is lost is accounted exactly.
TEST(Stress, SmallRingDropNewestAccountsExactly) {
  SimConfig config;
  config.sample_rate = 400'000'000;  // faster than this consumer: it will drop
  config.block_bytes = 4096;
  Acquisition a(64 * 1024, config);
  ASSERT_TRUE(a.device.start(std::chrono::milliseconds(500)).has_value());
  a.device.inject_stall(std::chrono::microseconds(2000));
  a.device.inject_burst(20);
  sring::StreamConsumer consumer(*a.ring, true);
  consumer.accounting().expect_start(0, 0);
  consume_until_over(a, consumer, sring::WaitStrategy::kHybrid, 7, 4, 300);
  a.device.join();
  const auto& p = a.host.producer();
  const auto& c = consumer.counters();
  // samples_produced counts every sample the device made, written or lost.
  const uint64_t trailing = p.samples_produced - *consumer.accounting().next_sample();
  EXPECT_EQ(c.samples + p.samples_dropped, p.samples_produced);
  EXPECT_EQ(c.lost_samples + trailing, p.samples_dropped);
  EXPECT_EQ(c.flagged_lost_samples, c.lost_samples) << "drop-newest flags every gap in band";
  EXPECT_TRUE(consumer.accounting().finish(p).exact());
  EXPECT_EQ(c.corrupted_samples, 0u);
}

TEST(Stress, SmallRingOverwriteOldestAccountsExactly) {
  SimConfig config;
  config.sample_rate = 400'000'000;
  config.block_bytes = 4096;
  config.overrun_policy = SRING_OVERRUN_OVERWRITE_OLDEST;
  Acquisition a(64 * 1024, config);
  ASSERT_TRUE(a.device.start(std::chrono::milliseconds(500)).has_value());
  sring::StreamConsumer consumer(*a.ring, true);
  consumer.accounting().expect_start(0, 0);
  consume_until_over(a, consumer, sring::WaitStrategy::kEventfd, 11, 3, 500);
  a.device.join();
  const auto& p = a.host.producer();
  const auto& c = consumer.counters();
  const uint64_t trailing = p.samples_produced - *consumer.accounting().next_sample();
  EXPECT_EQ(c.lost_samples + trailing, p.samples_dropped);
  EXPECT_EQ(c.samples + p.samples_dropped, p.samples_produced);
  EXPECT_TRUE(consumer.accounting().finish(p).exact());
  EXPECT_EQ(c.corrupted_samples, 0u) << "a torn block was kept";
}

}  // namespace
