// The hot loops of a consumer: checking samples against the pattern of
// sring_pattern.h and summing them, in place. Both vectorise (built with
// SRING_HOT_COPTS; see the benchmark for measured rates).
#pragma once

#include <cstddef>
#include <cstdint>

#include "sring/format.hpp"

namespace sring {

// Number of samples in [samples, samples + count) that are not the pattern
// value for indices first, first + 1, ... with this seed.
[[nodiscard]] uint64_t count_pattern_mismatches(const uint16_t* samples, uint64_t first, uint64_t count,
                                                uint32_t seed);

// The same for a block's payload in any layout (docs/abi.md, "Sample
// formats"): `frames` frames from first_frame. Counts values (a complex
// sample is two, I and Q; a frame is `channels` samples). The 16-bit
// formats (u16, s16, cs16) take the vectorised path above; the others are
// compared with the pattern written out in batches. A format the pattern
// does not define (another device's own) counts every value as wrong. In
// sim-packed12 a non-zero padding nibble (after an odd last value) counts as
// one wrong value.
[[nodiscard]] uint64_t count_pattern_mismatches(const std::byte* payload, const SampleLayout& layout,
                                                uint64_t first_frame, uint64_t frames, uint32_t seed);

// Sum of count 16-bit samples, as a consumer computing statistics would.
[[nodiscard]] uint64_t sum_samples(const uint16_t* samples, size_t count);

}  // namespace sring
