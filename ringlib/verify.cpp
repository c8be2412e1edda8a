#include "sring/verify.hpp"

#include <algorithm>
#include <array>
#include <cstring>

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

namespace {

// The 12-bit value of element k of a packed payload (sring_pattern.h).
uint32_t packed12_at(const uint8_t* bytes, uint64_t k) {
  const uint8_t* pair = bytes + k / 2 * 3;
  return k % 2 == 0 ? pair[0] | (pair[1] & 0x0fu) << 8 : (pair[1] >> 4) | uint32_t{pair[2]} << 4;
}

}  // namespace

uint64_t count_pattern_mismatches(const std::byte* payload, const SampleLayout& layout, uint64_t first_frame,
                                  uint64_t frames, uint32_t seed) {
  const uint64_t per_frame = uint64_t{layout.channels} * layout.components();
  if (sring_pattern_format_bits(layout.format) != layout.bits_per_sample || layout.bits_per_sample == 0) {
    return frames * per_frame;  // not a format the pattern defines: nothing can be right
  }
  if (layout.bits_per_sample / layout.components() == 16) {  // u16, s16, cs16: the base values themselves
    return count_pattern_mismatches(reinterpret_cast<const uint16_t*>(payload), first_frame * per_frame,
                                    frames * per_frame, seed);
  }
  // Batches of an even number of values, so a packed format's pairs stay
  // aligned with the block's first value.
  constexpr uint64_t kBatchValues = 4096;
  const uint64_t batch_frames = std::max<uint64_t>(2, (kBatchValues / per_frame) & ~uint64_t{1});
  // at most 4096 values of at most 32 bits, aligned for the 32-bit stores of the fill
  alignas(8) std::array<uint8_t, kBatchValues * 4> expected;
  const uint64_t value_bits = layout.bits_per_sample / layout.components();
  uint64_t mismatches = 0;
  const auto* bytes = reinterpret_cast<const uint8_t*>(payload);
  for (uint64_t done = 0; done < frames;) {
    const uint64_t n = std::min(frames - done, batch_frames);
    const uint64_t batch_bytes = layout.payload_bytes(n);
    sring_pattern_fill_format(expected.data(), layout.format, layout.channels, first_frame + done,
                              static_cast<uint32_t>(n), seed);
    if (std::memcmp(bytes, expected.data(), batch_bytes) != 0) {
      const uint64_t values = n * per_frame;
      for (uint64_t k = 0; k < values; ++k) {
        if (layout.format == SRING_FMT_SIM_PACKED12) {
          mismatches += packed12_at(bytes, k) != packed12_at(expected.data(), k);
        } else {
          const uint64_t size = value_bits / 8;
          mismatches += std::memcmp(bytes + k * size, expected.data() + k * size, size) != 0;
        }
      }
      // An odd last packed value leaves the top half of its second byte
      // unused, and the contract says zero: anything else counts as one
      // wrong value, so that every bit of the payload is checked.
      if (layout.format == SRING_FMT_SIM_PACKED12 && values % 2 == 1 && (bytes[values / 2 * 3 + 1] & 0xf0) != 0) {
        ++mismatches;
      }
    }
    bytes += n * per_frame * value_bits / 8;  // n is even: whole bytes for packed12 too
    done += n;
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
