#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "sring/verify.hpp"
#include "sring/sring_pattern.h"

namespace {

std::vector<uint16_t> pattern(uint64_t first, size_t count, uint32_t seed) {
  std::vector<uint16_t> samples(count);
  sring_pattern_fill(samples.data(), first, static_cast<uint32_t>(count), seed);
  return samples;
}

TEST(Verify, CleanPatternHasNoMismatch) {
  for (uint64_t first : {uint64_t{0}, uint64_t{65530}, (uint64_t{1} << 40) + 3}) {
    auto samples = pattern(first, 100000, 9);
    EXPECT_EQ(sring::count_pattern_mismatches(samples.data(), first, samples.size(), 9), 0u);
  }
}

TEST(Verify, CountsEveryCorruptedSampleExactly) {
  auto samples = pattern(1000, 200000, 3);
  const size_t corrupt_at[] = {0, 1, 15, 16, 64534, 64535, 64536, 199999};
  for (size_t at : corrupt_at) samples[at] ^= 0x0100;
  EXPECT_EQ(sring::count_pattern_mismatches(samples.data(), 1000, samples.size(), 3),
            std::size(corrupt_at));
}

TEST(Verify, DetectsShiftsAndWrongSeed) {
  auto samples = pattern(500, 4096, 3);
  EXPECT_EQ(sring::count_pattern_mismatches(samples.data(), 501, samples.size(), 3), samples.size());
  EXPECT_EQ(sring::count_pattern_mismatches(samples.data(), 500 + SRING_PATTERN_CHUNK, samples.size(), 3),
            samples.size());
  EXPECT_GT(sring::count_pattern_mismatches(samples.data(), 500, samples.size(), 4), samples.size() / 2);
}

TEST(Verify, OddLengthsAndEmpty) {
  auto samples = pattern(7, 33, 1);
  for (size_t n = 0; n <= samples.size(); ++n) {
    EXPECT_EQ(sring::count_pattern_mismatches(samples.data(), 7, n, 1), 0u) << n;
  }
}

TEST(Verify, SumMatchesAccumulateBeyondThirtyTwoBits) {
  // 200000 samples of 0xffff overflow a 32-bit total: the partial sums must
  // be folded into 64 bits before they can wrap.
  std::vector<uint16_t> samples(200000, 0xffff);
  EXPECT_EQ(sring::sum_samples(samples.data(), samples.size()), uint64_t{200000} * 0xffff);
  auto varied = pattern(0, 131073, 2);
  EXPECT_EQ(sring::sum_samples(varied.data(), varied.size()),
            std::accumulate(varied.begin(), varied.end(), uint64_t{0}));
}

}  // namespace
