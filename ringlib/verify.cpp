#include "sring/verify.hpp"

#include <algorithm>

#include "sring/sring_pattern.h"

namespace sring {
namespace {

// OR of (sample ^ expected) over one pattern chunk: zero when all match.
// Kept branch-free and in 16-bit lanes so it vectorises; mismatches are rare,
// so they are counted by a second, scalar pass only when this is non-zero.
uint16_t chunk_difference(const uint16_t* samples, uint16_t first_value, uint16_t mask,
                          uint32_t count) {
  uint16_t difference = 0;
  uint16_t value = first_value;
  for (uint32_t k = 0; k < count; ++k) {
    difference |= static_cast<uint16_t>(samples[k] ^ value ^ mask);
    value = static_cast<uint16_t>(value + SRING_PATTERN_MUL);
  }
  return difference;
}

}  // namespace

uint64_t count_pattern_mismatches(const uint16_t* samples, uint64_t first, uint64_t count,
                                  uint32_t seed) {
  uint64_t mismatches = 0;
  while (count > 0) {
    const uint32_t in_chunk = SRING_PATTERN_CHUNK - static_cast<uint16_t>(first);
    const auto n = static_cast<uint32_t>(std::min<uint64_t>(count, in_chunk));
    const uint16_t mask = sring_pattern_chunk_mask(first >> 16, seed);
    const auto first_value =
        static_cast<uint16_t>(uint32_t{static_cast<uint16_t>(first)} * SRING_PATTERN_MUL);
    if (chunk_difference(samples, first_value, mask, n) != 0) {
      for (uint32_t k = 0; k < n; ++k) {
        mismatches += samples[k] != sring_pattern_sample(first + k, seed);
      }
    }
    samples += n;
    first += n;
    count -= n;
  }
  return mismatches;
}

uint64_t sum_samples(const uint16_t* samples, size_t count) {
  // Widening straight into uint64_t keeps GCC scalar; 32-bit partial sums
  // over runs of at most 65536 samples cannot overflow and do vectorise.
  uint64_t total = 0;
  while (count > 0) {
    const size_t n = std::min<size_t>(count, 65536);
    uint32_t partial = 0;
    for (size_t k = 0; k < n; ++k) partial += samples[k];
    total += partial;
    samples += n;
    count -= n;
  }
  return total;
}

}  // namespace sring
