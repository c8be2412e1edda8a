// The C API against the user-space simulator's ring file: every block given
// in order with its samples in place, the loss accounting exact at the end
// in every policy, a callback that stops early, clear errors.
#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "sring/verify.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"
#include "sring/sring.h"

namespace {

using sring::sim::HostRing;
using sring::sim::SimConfig;
using sring::sim::SimDevice;

struct Tally {
  uint64_t blocks = 0;
  uint64_t corrupted = 0;
  uint64_t lost = 0;
  uint64_t next_sequence = 0;
  bool in_order = true;
};

int on_block(const sring_block_header* header, const uint16_t* samples, uint64_t lost_before, void* user) {
  auto* tally = static_cast<Tally*>(user);
  tally->in_order &= header->sequence >= tally->next_sequence;
  tally->next_sequence = header->sequence + 1;
  tally->corrupted += sring::count_pattern_mismatches(samples, header->first_sample, header->sample_count, 1);
  tally->lost += lost_before;
  ++tally->blocks;
  return 0;
}

struct Rig {
  explicit Rig(uint32_t policy) : host(std::move(*HostRing::create(64 * 1024))), device(host, config(policy)) {
    const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    EXPECT_TRUE(device.set_eventfd(efd).has_value());
    EXPECT_EQ(sring_attach_fd(host.duplicate_fd()->release(), efd, &ring), 0) << sring_last_error(nullptr);
  }
  ~Rig() { sring_close(ring); }
  static SimConfig config(uint32_t policy) {
    SimConfig c;
    c.sample_rate = 1'000'000;
    c.block_bytes = 4096;
    c.overrun_policy = policy;
    return c;
  }
  HostRing host;
  SimDevice device;
  sring_consumer* ring = nullptr;
};

class CApi : public testing::TestWithParam<uint32_t> {};

TEST_P(CApi, EveryBlockGivenOrCountedLostExactly) {
  Rig rig(GetParam());
  ASSERT_NE(rig.ring, nullptr);
  EXPECT_EQ(sring_ring_size(rig.ring), 64u * 1024);
  Tally tally;
  rig.device.begin();
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 20; ++i) (void)rig.device.produce_block();  // more than fit
    ASSERT_GE(sring_consume(rig.ring, on_block, &tally, SRING_ALL), 0) << sring_last_error(rig.ring);
  }
  rig.device.end();
  EXPECT_EQ(sring_wait(rig.ring, -1), 1) << "a stopped ring ends a wait forever";
  ASSERT_GE(sring_consume(rig.ring, on_block, &tally, SRING_ALL), 0);
  ASSERT_EQ(sring_end_of_stream(rig.ring), 1);
  sring_counters counters{};
  ASSERT_EQ(sring_get_counters(rig.ring, &counters), 0);
  EXPECT_EQ(counters.exact, 1u) << counters.missing_samples << " missing, " << counters.samples_dropped << " dropped";
  EXPECT_EQ(counters.samples + counters.samples_dropped, counters.samples_produced);
  EXPECT_EQ(counters.blocks, tally.blocks);
  EXPECT_EQ(tally.corrupted, 0u);
  EXPECT_TRUE(tally.in_order);
}

INSTANTIATE_TEST_SUITE_P(Policies, CApi,
                         testing::Values(SRING_OVERRUN_DROP_NEWEST, SRING_OVERRUN_OVERWRITE_OLDEST,
                                         SRING_OVERRUN_STOP));

TEST(CApiCalls, CallbackStopsEarlyAndTheRestWaits) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.device.begin();
  for (int i = 0; i < 6; ++i) (void)rig.device.produce_block();
  uint64_t seen = 0;
  auto stop_at_two = [](const sring_block_header*, const uint16_t*, uint64_t, void* user) {
    return ++*static_cast<uint64_t*>(user) == 2 ? 1 : 0;
  };
  EXPECT_EQ(sring_consume(rig.ring, stop_at_two, &seen, SRING_ALL), 2);
  EXPECT_EQ(sring_consume(rig.ring, stop_at_two, &seen, 3), 3) << "max_blocks";
  Tally tally;
  EXPECT_EQ(sring_consume(rig.ring, on_block, &tally, SRING_ALL), 1);
  EXPECT_EQ(sring_consume(rig.ring, on_block, &tally, SRING_ALL), 0) << "nothing left";
  EXPECT_EQ(sring_wait(rig.ring, 1'000'000), 0) << "1 ms, nothing came: a timeout";
}

// Batch mode (sring_peek / sring_release) against sring_consume on the same
// production schedule: the same blocks, the same losses, the same counters.
void tally_block(Tally& tally, const sring_block& block) {
  tally.in_order &= block.header.sequence >= tally.next_sequence;
  tally.next_sequence = block.header.sequence + 1;
  tally.corrupted +=
      sring::count_pattern_mismatches(block.samples, block.header.first_sample, block.header.sample_count, 1);
  tally.lost += block.lost_before;
  ++tally.blocks;
}

// Everything available now, in batches of at most 5, each released in two
// parts, and the second part peeked again in between: the held blocks must
// come back first, unchanged.
void drain_in_batches(sring_consumer* ring, Tally& tally) {
  sring_block blocks[5];
  for (;;) {
    const int64_t n = sring_peek(ring, blocks, 5);
    ASSERT_GE(n, 0) << sring_last_error(ring);
    if (n == 0) return;
    const uint64_t first_part = static_cast<uint64_t>(n + 1) / 2;
    for (uint64_t i = 0; i < first_part; ++i) tally_block(tally, blocks[i]);
    ASSERT_EQ(sring_release(ring, first_part), 0) << sring_last_error(ring);
    if (first_part == static_cast<uint64_t>(n)) continue;
    sring_block again[5];
    const int64_t m = sring_peek(ring, again, static_cast<uint64_t>(n) - first_part);
    ASSERT_EQ(m, n - static_cast<int64_t>(first_part)) << "held blocks are available";
    for (int64_t i = 0; i < m; ++i) {
      ASSERT_EQ(again[i].header.sequence, blocks[first_part + i].header.sequence) << "held blocks come first";
      ASSERT_EQ(again[i].samples, blocks[first_part + i].samples);
      ASSERT_EQ(again[i].lost_before, blocks[first_part + i].lost_before);
      tally_block(tally, again[i]);
    }
    ASSERT_EQ(sring_release(ring, static_cast<uint64_t>(m)), 0) << sring_last_error(ring);
  }
}

struct StreamRun {
  Tally tally;
  sring_counters counters{};
};

// Three rounds of more blocks than fit, each drained, then the end of the
// stream: by callback or in batches.
StreamRun run_stream(uint32_t policy, bool batch) {
  Rig rig(policy);
  StreamRun run;
  if (!rig.ring) return run;
  rig.device.begin();
  auto drain = [&] {
    if (batch) {
      drain_in_batches(rig.ring, run.tally);
    } else {
      EXPECT_GE(sring_consume(rig.ring, on_block, &run.tally, SRING_ALL), 0) << sring_last_error(rig.ring);
    }
  };
  for (int round = 0; round < 3; ++round) {
    // The ring holds 16 blocks: some of these are lost, by the policy.
    for (int i = 0; i < 20; ++i) (void)rig.device.produce_block();
    drain();
  }
  rig.device.end();
  EXPECT_EQ(sring_wait(rig.ring, -1), 1);
  drain();
  EXPECT_EQ(sring_end_of_stream(rig.ring), 1);
  EXPECT_EQ(sring_get_counters(rig.ring, &run.counters), 0);
  return run;
}

class CApiBatch : public testing::TestWithParam<uint32_t> {};

TEST_P(CApiBatch, AccountsExactlyAsConsumeDoes) {
  const StreamRun batch = run_stream(GetParam(), true);
  const StreamRun callback = run_stream(GetParam(), false);
  const sring_counters& c = batch.counters;
  EXPECT_EQ(c.exact, 1u) << c.missing_samples << " missing, " << c.samples_dropped << " dropped";
  EXPECT_GT(c.blocks, 0u);
  // The ring must have filled, or the policy was never exercised.
  if (GetParam() == SRING_OVERRUN_DROP_NEWEST) {
    EXPECT_GT(c.blocks_dropped, 0u) << "losses must happen for their accounting to be checked";
  } else {
    EXPECT_LT(c.blocks_produced, 60u) << "the device must have stopped on a full ring";
    EXPECT_EQ(c.blocks_dropped, 0u);
  }
  EXPECT_EQ(c.blocks, batch.tally.blocks) << "a block counts when it is released, once";
  EXPECT_EQ(c.samples + c.samples_dropped, c.samples_produced);
  EXPECT_EQ(batch.tally.corrupted, 0u);
  EXPECT_TRUE(batch.tally.in_order);
  // The same schedule by callback: the same counters, field by field.
  EXPECT_EQ(c.blocks, callback.counters.blocks);
  EXPECT_EQ(c.samples, callback.counters.samples);
  EXPECT_EQ(c.missing_blocks, callback.counters.missing_blocks);
  EXPECT_EQ(c.missing_samples, callback.counters.missing_samples);
  EXPECT_EQ(c.blocks_produced, callback.counters.blocks_produced);
  EXPECT_EQ(c.samples_produced, callback.counters.samples_produced);
  EXPECT_EQ(c.blocks_dropped, callback.counters.blocks_dropped);
  EXPECT_EQ(c.samples_dropped, callback.counters.samples_dropped);
  EXPECT_EQ(c.overwritten_while_read, 0u);
  EXPECT_EQ(c.state, callback.counters.state);
  EXPECT_EQ(batch.tally.lost, callback.tally.lost) << "lost_before as the callback is told it";
  EXPECT_EQ(batch.tally.blocks, callback.tally.blocks);
}

// Overwrite-oldest refuses batch mode (sring.h says why); those two do not.
INSTANTIATE_TEST_SUITE_P(Policies, CApiBatch, testing::Values(SRING_OVERRUN_DROP_NEWEST, SRING_OVERRUN_STOP));

TEST(CApiBatchCalls, BlocksAreHeldUntilReleased) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.device.begin();
  for (int i = 0; i < 6; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kWritten);
  sring_block blocks[8];
  ASSERT_EQ(sring_peek(rig.ring, blocks, 4), 4) << sring_last_error(rig.ring);
  for (uint64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(blocks[i].header.sequence, i);
    EXPECT_EQ(blocks[i].header.first_sample, i * rig.device.samples_per_block());
    EXPECT_EQ(blocks[i].header.sample_count, rig.device.samples_per_block());
    EXPECT_EQ(blocks[i].lost_before, 0u);
    EXPECT_EQ(sring::count_pattern_mismatches(blocks[i].samples, blocks[i].header.first_sample,
                                              blocks[i].header.sample_count, 1),
              0u);
  }
  sring_counters counters{};
  ASSERT_EQ(sring_get_counters(rig.ring, &counters), 0);
  EXPECT_EQ(counters.blocks, 0u) << "peeked is not given";

  EXPECT_EQ(sring_wait(rig.ring, -1), 1) << "held blocks are available: no sleep";
  // A smaller peek gives fewer, but all four stay held.
  sring_block first[1];
  ASSERT_EQ(sring_peek(rig.ring, first, 1), 1);
  EXPECT_EQ(first[0].header.sequence, 0u);
  Tally tally;
  EXPECT_EQ(sring_consume(rig.ring, on_block, &tally, SRING_ALL), -EBUSY) << "four are still held";
  EXPECT_EQ(sring_release(rig.ring, 5), -EINVAL);
  EXPECT_NE(std::string(sring_last_error(rig.ring)).find("only 4 are held"), std::string::npos)
      << sring_last_error(rig.ring);
  ASSERT_EQ(sring_release(rig.ring, 1), 0) << sring_last_error(rig.ring);
  ASSERT_EQ(sring_get_counters(rig.ring, &counters), 0);
  EXPECT_EQ(counters.blocks, 1u);
  EXPECT_EQ(counters.samples, rig.device.samples_per_block());

  // The three still held, then the two not peeked yet.
  ASSERT_EQ(sring_peek(rig.ring, blocks, 8), 5);
  for (uint64_t i = 0; i < 5; ++i) EXPECT_EQ(blocks[i].header.sequence, i + 1);
  ASSERT_EQ(sring_release(rig.ring, 5), 0) << sring_last_error(rig.ring);
  EXPECT_EQ(sring_peek(rig.ring, blocks, 8), 0) << "nothing left";
  rig.device.end();
  EXPECT_EQ(sring_end_of_stream(rig.ring), 1);
  ASSERT_EQ(sring_get_counters(rig.ring, &counters), 0);
  EXPECT_EQ(counters.blocks, 6u);
  EXPECT_EQ(counters.exact, 1u);
}

// A loss right after a block still held: lost_before of the new block is
// counted from the held one, as the callback would be told once it is given.
TEST(CApiBatchCalls, LostBeforeCountsFromTheBlocksHeld) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.device.begin();
  const uint64_t per_block = rig.device.samples_per_block();
  for (int i = 0; i < 16; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kWritten);
  sring_block blocks[16];
  ASSERT_EQ(sring_peek(rig.ring, blocks, 16), 16);
  // Held blocks keep their space: the ring is full, these two are lost.
  for (int i = 0; i < 2; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kDropped);
  ASSERT_EQ(sring_release(rig.ring, 15), 0) << sring_last_error(rig.ring);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kWritten);
  ASSERT_EQ(sring_peek(rig.ring, blocks, 16), 4) << "the one held, then three new";
  EXPECT_EQ(blocks[0].header.sequence, 15u);
  EXPECT_EQ(blocks[0].lost_before, 0u);
  EXPECT_EQ(blocks[1].header.sequence, 18u);
  EXPECT_EQ(blocks[1].lost_before, 2 * per_block) << "the two dropped after the held block 15";
  EXPECT_EQ(blocks[2].lost_before, 0u);
  ASSERT_EQ(sring_release(rig.ring, 4), 0) << sring_last_error(rig.ring);
  rig.device.end();
  ASSERT_EQ(sring_end_of_stream(rig.ring), 1);
  sring_counters counters{};
  ASSERT_EQ(sring_get_counters(rig.ring, &counters), 0);
  EXPECT_EQ(counters.blocks, 19u);
  EXPECT_EQ(counters.missing_samples, 2 * per_block);
  EXPECT_EQ(counters.exact, 1u);
}

TEST(CApiBatchCalls, MisuseIsAnErrorThatSaysWhy) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.device.begin();
  for (int i = 0; i < 4; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kWritten);
  sring_block blocks[4];
  EXPECT_EQ(sring_release(rig.ring, 1), -EINVAL) << "nothing peeked";
  EXPECT_NE(std::string(sring_last_error(rig.ring)).find("only 0 are held"), std::string::npos)
      << sring_last_error(rig.ring);
  EXPECT_EQ(sring_peek(rig.ring, nullptr, 4), -EINVAL);
  EXPECT_EQ(sring_peek(rig.ring, nullptr, 0), 0) << "no room asked for: nothing given, nothing held";
  EXPECT_EQ(sring_peek(rig.ring, blocks, 0), 0);
  EXPECT_EQ(sring_release(rig.ring, 0), 0);

  ASSERT_EQ(sring_peek(rig.ring, blocks, 3), 3);
  EXPECT_EQ(sring_release(rig.ring, 4), -EINVAL) << "more than peeked";
  EXPECT_NE(std::string(sring_last_error(rig.ring)).find("4 blocks released, but only 3 are held"),
            std::string::npos)
      << sring_last_error(rig.ring);
  Tally tally;
  EXPECT_EQ(sring_consume(rig.ring, on_block, &tally, SRING_ALL), -EBUSY) << "consume with blocks held";
  EXPECT_NE(std::string(sring_last_error(rig.ring)).find("3 blocks from sring_peek() are still held"),
            std::string::npos)
      << sring_last_error(rig.ring);
  EXPECT_EQ(tally.blocks, 0u);
  sring_config config{};
  EXPECT_EQ(sring_configure(rig.ring, &config), -EBUSY);
  EXPECT_EQ(sring_reset(rig.ring), -EBUSY);

  // A failed release released nothing: all three are still held.
  ASSERT_EQ(sring_release(rig.ring, 2), 0) << sring_last_error(rig.ring);
  EXPECT_EQ(sring_release(rig.ring, 2), -EINVAL) << "one is left";
  ASSERT_EQ(sring_release(rig.ring, 1), 0) << sring_last_error(rig.ring);
  EXPECT_EQ(sring_consume(rig.ring, on_block, &tally, SRING_ALL), 1) << "all released: consume gives the rest";
  EXPECT_EQ(tally.next_sequence, 4u);
  EXPECT_EQ(sring_release(rig.ring, 1), -EINVAL) << "consume holds nothing";
}

TEST(CApiBatchCalls, OverwriteOldestRefusesBatchMode) {
  Rig rig(SRING_OVERRUN_OVERWRITE_OLDEST);
  rig.device.begin();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kWritten);
  sring_block blocks[4];
  EXPECT_EQ(sring_peek(rig.ring, blocks, 4), -EOPNOTSUPP);
  EXPECT_NE(std::string(sring_last_error(rig.ring)).find("sring_consume()"), std::string::npos)
      << sring_last_error(rig.ring);
  EXPECT_EQ(sring_release(rig.ring, 1), -EINVAL) << "nothing was held";
  Tally tally;
  EXPECT_EQ(sring_consume(rig.ring, on_block, &tally, SRING_ALL), 3) << "the callback still works";
}

// A ring file's producer that restarts under overwrite-oldest while blocks
// are held takes them back: the release says so and counts them as lost,
// not given, and the stream still adds up.
TEST(CApiBatchCalls, BlocksTakenBackWhileHeldAreNotGiven) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.device.begin();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kWritten);
  sring_block blocks[16];
  ASSERT_EQ(sring_peek(rig.ring, blocks, 16), 3);
  rig.device.end();
  {
    SimDevice restarted(rig.host, Rig::config(SRING_OVERRUN_OVERWRITE_OLDEST));
    restarted.begin();
    for (int i = 0; i < 20; ++i) ASSERT_EQ(restarted.produce_block(), sring::sim::Produced::kWritten);
    restarted.end();
  }
  EXPECT_EQ(sring_release(rig.ring, 3), -ESTALE);
  EXPECT_NE(std::string(sring_last_error(rig.ring)).find("took back 3 held blocks"), std::string::npos)
      << sring_last_error(rig.ring);
  EXPECT_EQ(sring_release(rig.ring, 1), -EINVAL) << "none stays held";
  Tally tally;
  ASSERT_GT(sring_consume(rig.ring, on_block, &tally, SRING_ALL), 0) << sring_last_error(rig.ring);
  ASSERT_EQ(sring_end_of_stream(rig.ring), 1);
  sring_counters counters{};
  ASSERT_EQ(sring_get_counters(rig.ring, &counters), 0);
  EXPECT_EQ(counters.overwritten_while_read, 3u);
  EXPECT_EQ(counters.blocks, tally.blocks) << "the three taken back are not given";
  EXPECT_EQ(counters.blocks_produced, 23u);
  EXPECT_EQ(counters.exact, 1u) << counters.missing_samples << " missing, " << counters.samples_dropped
                                << " dropped";
}

TEST(CApiCalls, ErrorsAreNegativeErrnoWithASentence) {
  sring_consumer* ring = nullptr;
  EXPECT_EQ(sring_open("/nonexistent/sring0", &ring), -ENOENT);
  EXPECT_EQ(ring, nullptr);
  EXPECT_NE(std::string(sring_last_error(nullptr)).find("/nonexistent/sring0"), std::string::npos);
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  sring_config config{};
  EXPECT_EQ(sring_configure(rig.ring, &config), -EOPNOTSUPP) << "a ring file is configured by its producer";
  EXPECT_NE(std::string(sring_last_error(rig.ring)).find("producer"), std::string::npos);
  EXPECT_EQ(sring_consume(rig.ring, nullptr, nullptr, SRING_ALL), -EINVAL);
}

}  // namespace
