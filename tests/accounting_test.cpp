#include <gtest/gtest.h>

#include "sring/accounting.hpp"

namespace {

sring_block_header block(uint64_t sequence, uint64_t first, uint32_t count, uint32_t flags = 0,
                         uint64_t lost = 0) {
  sring_block_header h{};
  h.magic = SRING_BLOCK_MAGIC;
  h.total_bytes = 64 + count * 2;
  h.sequence = sequence;
  h.first_sample = first;
  h.sample_count = count;
  h.flags = flags;
  h.lost_samples = lost;
  return h;
}

TEST(Accounting, ContiguousStreamHasNoGap) {
  sring::StreamAccounting a;
  a.expect_start(0, 0);
  for (uint64_t i = 0; i < 10; ++i) a.on_block(block(i, i * 100, 100));
  EXPECT_EQ(a.counters().blocks, 10u);
  EXPECT_EQ(a.counters().samples, 1000u);
  EXPECT_EQ(a.counters().gaps, 0u);
  EXPECT_EQ(a.counters().lost_samples, 0u);
  EXPECT_EQ(a.next_sample(), 1000u);
}

TEST(Accounting, FlaggedGapCountsSequenceAndSamples) {
  sring::StreamAccounting a;
  a.expect_start(0, 0);
  a.on_block(block(0, 0, 100));
  // Blocks 1 and 2 dropped: block 3 says so in band.
  a.on_block(block(3, 300, 100, SRING_BLOCK_F_GAP | SRING_BLOCK_F_OVERRUN, 200));
  const auto& c = a.counters();
  EXPECT_EQ(c.gaps, 1u);
  EXPECT_EQ(c.lost_blocks, 2u);
  EXPECT_EQ(c.lost_samples, 200u);
  EXPECT_EQ(c.flagged_lost_samples, 200u);
  EXPECT_EQ(c.overrun_blocks, 1u);
  EXPECT_EQ(c.unflagged_gaps, 0u);
}

TEST(Accounting, LossBeforeTheFirstBlockCountsWhenTheStartIsKnown) {
  sring::StreamAccounting a;
  a.expect_start(0, 0);
  a.on_block(block(2, 200, 100, SRING_BLOCK_F_GAP, 200));
  EXPECT_EQ(a.counters().lost_samples, 200u);

  sring::StreamAccounting joined_late;  // no expectation: first block is the baseline
  joined_late.on_block(block(2, 200, 100));
  EXPECT_EQ(joined_late.counters().lost_samples, 0u);
}

TEST(Accounting, UnflaggedGapAndBackwardsBlock) {
  sring::StreamAccounting a;
  a.on_block(block(5, 500, 100));
  a.on_block(block(7, 700, 100));  // overwritten block: no flag
  a.on_block(block(1, 100, 100));  // ring reset or corruption
  EXPECT_EQ(a.counters().unflagged_gaps, 1u);
  EXPECT_EQ(a.counters().lost_samples, 100u);
  EXPECT_EQ(a.counters().out_of_order, 1u);
}

TEST(Accounting, MergeAddsEveryCounter) {
  sring::StreamCounters x, y;
  x.samples = 1; x.corrupted_samples = 2; x.lost_samples = 3;
  y.samples = 10; y.corrupted_samples = 20; y.lost_samples = 30;
  x.merge(y);
  EXPECT_EQ(x.samples, 11u);
  EXPECT_EQ(x.corrupted_samples, 22u);
  EXPECT_EQ(x.lost_samples, 33u);
}

}  // namespace
