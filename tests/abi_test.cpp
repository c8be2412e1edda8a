// The ABI header is the contract between kernel and user space: its layout
// must not move silently. The static asserts pin offsets at compile time;
// these tests pin what the static asserts cannot say.
#include <gtest/gtest.h>

#include <cstddef>
#include <set>

#include "sring/sring_abi.h"
#include "sring/sring_pattern.h"

namespace {

TEST(Abi, SharedStructsFitTheirPages) {
  EXPECT_LE(sizeof(sring_producer_page), 4096u);
  EXPECT_LE(sizeof(sring_consumer_page), 4096u);
  EXPECT_EQ(sizeof(sring_block_header), SRING_BLOCK_HEADER_SIZE);
  EXPECT_EQ(SRING_BLOCK_HEADER_SIZE % SRING_BLOCK_ALIGN, 0u);
}

TEST(Abi, HeadAndCountersSitOnTheirOwnCacheLines) {
  // The producer writes head and counters; the consumer polls head. Keeping
  // identity, head and counters apart stops false sharing between them.
  EXPECT_EQ(offsetof(sring_producer_page, head) % 128, 0u);
  EXPECT_GE(offsetof(sring_producer_page, head), offsetof(sring_producer_page, reserved1) + 4);
  EXPECT_GE(offsetof(sring_producer_page, blocks_produced), offsetof(sring_producer_page, head) + 128);
  EXPECT_EQ(offsetof(sring_consumer_page, tail), 0u);
}

TEST(Abi, Every64BitFieldIsNaturallyAligned) {
  EXPECT_EQ(offsetof(sring_block_header, sequence) % 8, 0u);
  EXPECT_EQ(offsetof(sring_block_header, first_sample) % 8, 0u);
  EXPECT_EQ(offsetof(sring_block_header, lost_samples) % 8, 0u);
  EXPECT_EQ(offsetof(sring_producer_page, ring_size) % 8, 0u);
  EXPECT_EQ(offsetof(sring_producer_page, sample_rate) % 8, 0u);
  EXPECT_EQ(offsetof(sring_consumer_page, wakeup_watermark) % 8, 0u);
  EXPECT_EQ(offsetof(sring_config, sample_rate) % 8, 0u);
  EXPECT_EQ(offsetof(sring_stats, head) % 8, 0u);
}

TEST(Abi, IoctlNumbersAreDistinctAndCarryTheirSizes) {
  const unsigned long numbers[] = {
      SRING_IOC_GET_INFO, SRING_IOC_SET_EVENTFD, SRING_IOC_CLEAR_EVENTFD,
      SRING_IOC_SET_CONFIG, SRING_IOC_GET_CONFIG, SRING_IOC_START,
      SRING_IOC_STOP, SRING_IOC_GET_STATS, SRING_IOC_RESET, SRING_IOC_INJECT_FAULT,
  };
  std::set<unsigned long> unique(std::begin(numbers), std::end(numbers));
  EXPECT_EQ(unique.size(), std::size(numbers));
  for (unsigned long n : numbers) EXPECT_EQ(_IOC_TYPE(n), SRING_IOC_MAGIC);
  EXPECT_EQ(_IOC_SIZE(SRING_IOC_GET_INFO), sizeof(sring_info));
  EXPECT_EQ(_IOC_SIZE(SRING_IOC_SET_CONFIG), sizeof(sring_config));
  EXPECT_EQ(_IOC_SIZE(SRING_IOC_GET_STATS), sizeof(sring_stats));
  EXPECT_EQ(_IOC_DIR(SRING_IOC_GET_STATS), static_cast<unsigned>(_IOC_READ));
  EXPECT_EQ(_IOC_DIR(SRING_IOC_SET_CONFIG), static_cast<unsigned>(_IOC_WRITE));
}

TEST(Abi, VersionMacrosRoundTrip) {
  EXPECT_EQ(SRING_ABI_MAJOR(SRING_ABI_VERSION), SRING_ABI_VERSION_MAJOR);
  EXPECT_EQ(SRING_ABI_MINOR(SRING_ABI_VERSION), SRING_ABI_VERSION_MINOR);
}

TEST(Pattern, FillMatchesSampleAcrossChunkBoundaries) {
  // Tricky: a fill that starts just before a 65536 boundary changes chunk
  // mask mid-way; each sample must still equal sring_pattern_sample().
  std::vector<uint16_t> samples(70000);
  const uint64_t first = 3 * uint64_t{SRING_PATTERN_CHUNK} - 1234;
  sring_pattern_fill(samples.data(), first, static_cast<uint32_t>(samples.size()), 77);
  for (size_t k = 0; k < samples.size(); ++k) {
    ASSERT_EQ(samples[k], sring_pattern_sample(first + k, 77)) << "at " << k;
  }
}

TEST(Pattern, NeighboursAndChunksDiffer) {
  // Any shift of the stream must change the samples: within a chunk the
  // multiplier is odd (a bijection), across chunks the mask changes.
  int equal_neighbours = 0;
  for (uint64_t i = 0; i < 200000; ++i) {
    equal_neighbours += sring_pattern_sample(i, 5) == sring_pattern_sample(i + 1, 5);
  }
  EXPECT_EQ(equal_neighbours, 0);
  int equal_across_chunk = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    equal_across_chunk += sring_pattern_sample(i, 5) == sring_pattern_sample(i + SRING_PATTERN_CHUNK, 5);
  }
  EXPECT_EQ(equal_across_chunk, 0);
  EXPECT_NE(sring_pattern_sample(1000, 1), sring_pattern_sample(1000, 2));
}

TEST(Pattern, SixtyFourBitIndicesStayDistinct) {
  // Indices far past 2^32 (days of acquisition) still produce the pattern
  // from the index alone: chunk masks of indices 2^32 apart differ.
  const uint64_t base = (uint64_t{1} << 32) - 5;
  EXPECT_NE(sring_pattern_chunk_mask(base >> 16, 1), sring_pattern_chunk_mask(5, 1));
  std::vector<uint16_t> samples(100);
  sring_pattern_fill(samples.data(), base, 100, 1);
  for (size_t k = 0; k < samples.size(); ++k) EXPECT_EQ(samples[k], sring_pattern_sample(base + k, 1));
}

}  // namespace
