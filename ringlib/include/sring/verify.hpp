// The hot loops of a consumer: checking samples against the pattern of
// sring_pattern.h and summing them, in place. Both vectorise (built with
// SRING_HOT_COPTS; see the benchmark for measured rates).
#pragma once

#include <cstddef>
#include <cstdint>

namespace sring {

// Number of samples in [samples, samples + count) that are not the pattern
// value for indices first, first + 1, ... with this seed.
[[nodiscard]] uint64_t count_pattern_mismatches(const uint16_t* samples, uint64_t first, uint64_t count,
                                                uint32_t seed);

// Sum of count 16-bit samples, as a consumer computing statistics would.
[[nodiscard]] uint64_t sum_samples(const uint16_t* samples, size_t count);

}  // namespace sring
