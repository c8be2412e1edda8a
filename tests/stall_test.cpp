// A consumer stalled inside its callback (preempted, or busy with one block)
// must lose nothing that a copying consumer with the same memory would not
// lose. The stall is made deterministic: instead of a time at a rate, the
// producer writes a burst of blocks while the consumer holds one block in
// hand, and the test counts how many blocks it could write before the first
// one was dropped. Measured at every block of a round of R blocks (so with
// every backlog behind the block in hand, and every phase of any release
// step), for the in-place consumer (Consumer::consume() and next()/done())
// and for a copying one: a boost spsc_queue of the ring's size less one
// block, plus that block in the consumer's own buffer (the same bytes in
// all; the copying device's DMA buffer is not counted, in its favour).
//
// The in-place consumer survives exactly the bursts the copying one does
// only if it gives back every block as it finishes with it: with releases
// batched (the old eighth of the ring), the blocks done and not yet released
// are buffering the producer cannot use, and this test fails.
#include <gtest/gtest.h>

#include <boost/lockfree/spsc_queue.hpp>

#include <cstring>
#include <optional>
#include <vector>

#include "sring/consumer.hpp"
#include "sring/verify.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"
#include "sring/sring_pattern.h"

namespace {

using sring::Consumer;
using sring::Ring;
using sring::sim::HostRing;
using sring::sim::Produced;
using sring::sim::SimConfig;
using sring::sim::SimDevice;

constexpr uint64_t kRingSize = 1 << 20;
constexpr uint32_t kBlockBytes = 64 * 1024;
constexpr uint64_t kBlocksInRing = kRingSize / kBlockBytes;
constexpr uint32_t kSamples = (kBlockBytes - SRING_BLOCK_HEADER_SIZE) / 2;
constexpr int kRoundsBefore = 3;  // steady rounds before the one that stalls
// More than any burst can fit: the burst stops at its first drop.
constexpr int kBurstLimit = 2 * kBlocksInRing;

enum class Api { kConsume, kNextDone };

// The in-place consumer: rounds of `round` blocks (the producer writes them,
// the consumer takes them all), and in the last round, while the consumer
// holds block `at` of the round, a burst. Then everything left is drained
// and checked: every sample verified, the accounting exact.
int in_place_burst(uint32_t round, uint32_t at, Api api, std::optional<uint64_t> release_step) {
  auto host = HostRing::create(kRingSize);
  if (!host) {
    ADD_FAILURE() << host.error().message;
    return -1;
  }
  SimConfig config;
  config.sample_rate = 1'000'000;  // paced: a full ring drops the newest block
  config.block_bytes = kBlockBytes;
  SimDevice device(*host, config);
  auto ring = Ring::attach(std::move(*host->duplicate_fd()), Ring::Access::kConsumer);
  if (!ring) {
    ADD_FAILURE() << ring.error().message;
    return -1;
  }
  device.begin();
  Consumer consumer(*ring);
  if (release_step) consumer.set_release_step(*release_step);

  int survived = -1;  // blocks the burst wrote before its first drop
  uint64_t bad = 0;
  auto burst = [&] {
    survived = 0;
    while (survived < kBurstLimit && device.produce_block() == Produced::kWritten) ++survived;
  };
  auto check = [&](const sring::Block& block) {
    bad += sring::count_pattern_mismatches(block.samples().data(), block.first_sample(), block.samples().size(),
                                           config.pattern_seed);
  };
  for (int r = 0; r <= kRoundsBefore; ++r) {
    for (uint32_t i = 0; i < round; ++i) EXPECT_EQ(device.produce_block(), Produced::kWritten);
    const bool stalls = r == kRoundsBefore;
    uint32_t i = 0;
    if (api == Api::kConsume) {
      auto taken = consumer.consume([&](const sring::Block& block) {
        if (stalls && i == at) burst();
        check(block);
        ++i;
      });
      EXPECT_TRUE(taken.has_value());
    } else {
      for (;;) {
        auto block = consumer.next();
        EXPECT_TRUE(block.has_value());
        if (!block || !*block) break;
        if (stalls && i == at) burst();
        check(**block);
        ++i;
        EXPECT_TRUE(consumer.done(1).has_value());
      }
    }
    EXPECT_GE(i, round);
  }
  device.end();
  for (;;) {  // drain: the burst's blocks are delivered too
    auto taken = consumer.consume(check);
    EXPECT_TRUE(taken.has_value());
    if (!taken || *taken == 0) break;
  }
  const sring::Counters c = consumer.snapshot();
  EXPECT_TRUE(c.end_of_stream);
  EXPECT_TRUE(c.exact) << "missing " << c.missing_samples << " dropped " << c.samples_dropped;
  EXPECT_EQ(bad, 0u);
  return survived;
}

// The copying consumer with the same memory: the same rounds through a
// queue of the ring's size less one block; the consumer pops a block into
// its own buffer (the one block) and processes it from there.
int copy_queue_burst(uint32_t round, uint32_t at) {
  const size_t words = kBlockBytes / 2;
  boost::lockfree::spsc_queue<uint16_t> queue((kRingSize - kBlockBytes) / 2);
  std::vector<uint16_t> device_buffer(words), consumer_buffer(words);
  uint64_t next_sample = 0, made = 0, delivered = 0, dropped = 0, bad = 0;
  auto produce = [&] {
    const uint64_t first = next_sample;
    next_sample += kSamples;
    ++made;
    if (queue.write_available() < words) {
      ++dropped;
      return false;
    }
    sring_block_header header{};
    header.first_sample = first;
    header.sample_count = kSamples;
    std::memcpy(device_buffer.data(), &header, sizeof(header));
    sring_pattern_fill(device_buffer.data() + SRING_BLOCK_HEADER_SIZE / 2, first, kSamples, 1);
    EXPECT_EQ(queue.push(device_buffer.data(), words), words);
    return true;
  };
  auto pop = [&] {
    if (queue.read_available() < words) return false;
    queue.pop(consumer_buffer.data(), words);
    return true;
  };
  auto check = [&] {
    sring_block_header header;
    std::memcpy(&header, consumer_buffer.data(), sizeof(header));
    bad += sring::count_pattern_mismatches(consumer_buffer.data() + SRING_BLOCK_HEADER_SIZE / 2, header.first_sample,
                                           kSamples, 1);
    ++delivered;
  };
  int survived = -1;
  for (int r = 0; r <= kRoundsBefore; ++r) {
    for (uint32_t i = 0; i < round; ++i) EXPECT_TRUE(produce());
    for (uint32_t i = 0; pop(); ++i) {
      if (r == kRoundsBefore && i == at) {
        survived = 0;
        while (survived < kBurstLimit && produce()) ++survived;
      }
      check();
    }
  }
  while (pop()) check();
  EXPECT_EQ(delivered + dropped, made);
  EXPECT_EQ(bad, 0u);
  return survived;
}

// Every round and stall point: in place (with `release_step`, or the
// default) against the copying consumer. Returns the stall points where in
// place survived less.
int in_place_short(Api api, std::optional<uint64_t> release_step) {
  int shorter = 0;
  for (uint32_t round : {1u, 2u, 3u, 4u, 7u, 8u, 15u}) {
    for (uint32_t at = 0; at < round; ++at) {
      const int copying = copy_queue_burst(round, at);
      const int in_place = in_place_burst(round, at, api, release_step);
      // The arithmetic the copying consumer meets: the whole memory less
      // the block in hand and the blocks queued behind it.
      EXPECT_EQ(copying, int(kBlocksInRing - (round - at))) << "round " << round << ", stalled at block " << at;
      if (in_place < copying) {
        ++shorter;
        if (!release_step) {
          ADD_FAILURE() << "round of " << round << " blocks, stalled at block " << at << ": in place survived a burst of "
                        << in_place << " blocks, a copying consumer with the same memory " << copying;
        }
      }
    }
  }
  return shorter;
}

TEST(Stall, ConsumeSurvivesEveryBurstACopyingConsumerSurvives) {
  EXPECT_EQ(in_place_short(Api::kConsume, std::nullopt), 0);
}

TEST(Stall, NextDoneSurvivesEveryBurstACopyingConsumerSurvives) {
  EXPECT_EQ(in_place_short(Api::kNextDone, std::nullopt), 0);
}

// The test can see the difference: releases batched by an eighth of the
// ring (what the Consumer did before) lose bursts a copying consumer keeps.
TEST(Stall, BatchedReleasesLoseBurstsACopyingConsumerKeeps) {
  EXPECT_GT(in_place_short(Api::kConsume, kRingSize / 8), 0);
  EXPECT_GT(in_place_short(Api::kNextDone, kRingSize / 8), 0);
}

}  // namespace
