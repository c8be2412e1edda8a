#include <gtest/gtest.h>

#include <cstddef>
#include <numeric>
#include <string>
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

// Every layout the pattern defines: each standard format with 1, 2 and 4
// channels, and the simulators' 12-bit packed one with 1 and 3 (an odd
// number of values per frame).
std::vector<sring::SampleLayout> every_layout() {
  std::vector<sring::SampleLayout> layouts;
  for (uint32_t format = 1; format <= SRING_FMT_LAST_STANDARD; ++format) {
    for (uint32_t channels : {1u, 2u, 4u}) layouts.push_back(*sring::SampleLayout::standard(format, channels));
  }
  for (uint32_t channels : {1u, 3u}) {
    layouts.push_back(sring::SampleLayout{SRING_FMT_SIM_PACKED12, channels, SRING_FMT_SIM_PACKED12_BITS});
  }
  return layouts;
}

std::vector<std::byte> payload_of(const sring::SampleLayout& layout, uint64_t first_frame, uint32_t frames,
                                  uint32_t seed) {
  std::vector<std::byte> payload(layout.payload_bytes(frames));
  EXPECT_EQ(sring_pattern_fill_format(payload.data(), layout.format, layout.channels, first_frame, frames, seed), 0);
  return payload;
}

// Frames crossing a chunk boundary, an odd count (packed12 then ends in a
// half-used byte with one channel): clean is clean, and one flipped bit in
// any byte of the payload is exactly one wrong value.
TEST(VerifyPayload, EveryFlippedByteIsOneWrongValueInEveryLayout) {
  for (const sring::SampleLayout& layout : every_layout()) {
    SCOPED_TRACE(sring::describe(layout));
    const uint32_t frames = 301;
    const uint64_t first = SRING_PATTERN_CHUNK / layout.channels - 100;
    std::vector<std::byte> payload = payload_of(layout, first, frames, 6);
    EXPECT_EQ(sring::count_pattern_mismatches(payload.data(), layout, first, frames, 6), 0u);
    for (size_t at = 0; at < payload.size(); ++at) {
      // In packed12's shared middle byte, 0x01 is the even value's bit 8
      // and 0x80 the odd one's bit 3; the last byte of an odd count has
      // no odd value: its top half is padding, which must be zero and
      // counts as one wrong value when it is not.
      for (const std::byte bit : {std::byte{0x01}, std::byte{0x80}}) {
        payload[at] ^= bit;
        ASSERT_EQ(sring::count_pattern_mismatches(payload.data(), layout, first, frames, 6), 1u)
            << "byte " << at << ", bit " << std::to_integer<int>(bit);
        payload[at] ^= bit;
      }
    }
  }
}

// SRING_FAULT_CORRUPT's byte (sring_corrupt_byte, both producers) xor
// 0x5a is exactly one wrong value in every layout and frame count, packed12's
// shared bytes included: the fault's "one value" promise (docs/abi.md).
TEST(VerifyPayload, TheCorruptFaultsByteIsOneWrongValueInEveryLayout) {
  for (const sring::SampleLayout& layout : every_layout()) {
    for (const uint32_t frames : {1u, 2u, 3u, 127u, 128u, 2731u}) {
      SCOPED_TRACE(sring::describe(layout) + ", " + std::to_string(frames) + " frames");
      std::vector<std::byte> payload = payload_of(layout, 1000, frames, 3);
      const uint64_t at = sring_corrupt_byte(frames, layout.channels, layout.bits_per_sample, layout.components());
      ASSERT_LT(at, payload.size());
      payload[at] ^= std::byte{0x5a};
      EXPECT_EQ(sring::count_pattern_mismatches(payload.data(), layout, 1000, frames, 3), 1u);
    }
  }
}

TEST(VerifyPayload, Packed12SharedByteCountsBothValues) {
  const sring::SampleLayout layout{SRING_FMT_SIM_PACKED12, 1, SRING_FMT_SIM_PACKED12_BITS};
  std::vector<std::byte> payload = payload_of(layout, 1000, 64, 2);
  payload[3 * 10 + 1] ^= std::byte{0xff};  // values 20 and 21 share it
  EXPECT_EQ(sring::count_pattern_mismatches(payload.data(), layout, 1000, 64, 2), 2u);
}

// A payload one frame early or late (a producer or consumer off by a frame,
// or by a channel) is caught in nearly every value.
TEST(VerifyPayload, ShiftByOneFrameIsCaughtInEveryLayout) {
  for (const sring::SampleLayout& layout : every_layout()) {
    SCOPED_TRACE(sring::describe(layout));
    const uint32_t frames = 512;
    const uint64_t values = uint64_t{frames} * layout.channels * layout.components();
    const std::vector<std::byte> payload = payload_of(layout, 5000, frames, 4);
    // The 8-bit formats keep only the high byte: a neighbour's value matches
    // about once in 256.
    EXPECT_GT(sring::count_pattern_mismatches(payload.data(), layout, 5001, frames, 4), values * 9 / 10);
    EXPECT_GT(sring::count_pattern_mismatches(payload.data(), layout, 4999, frames, 4), values * 9 / 10);
  }
}

TEST(VerifyPayload, AFormatThePatternDoesNotDefineIsAllWrong) {
  const std::vector<std::byte> payload(4 * 24);
  const sring::SampleLayout other_device{0x8001, 2, 24};
  EXPECT_EQ(sring::count_pattern_mismatches(payload.data(), other_device, 0, 4, 1), 8u);
  const sring::SampleLayout wrong_bits{SRING_FMT_U16, 1, 8};
  EXPECT_EQ(sring::count_pattern_mismatches(payload.data(), wrong_bits, 0, 4, 1), 4u);
}

}  // namespace
