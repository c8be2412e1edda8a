// Sample formats and channels (docs/abi.md, "Sample formats"): what a
// block's payload is, the C++ type of each format, and the typed views that
// Block::as<T>() and BlockDescriptor::as<T>() hand out in place.
//
//   format   C++ type              values per frame
//   u8       uint8_t               channels
//   s8       int8_t                channels
//   u16      uint16_t              channels
//   s16      int16_t               channels
//   s32      int32_t               channels
//   f32      float                 channels
//   cs16     sring::cs16 {i, q}    channels
//   cf32     std::complex<float>   channels
//
// A format in the device range (SRING_FMT_DEVICE_FIRST and up, e.g. the
// simulated devices' 12-bit packed one) has no C++ type: payload() gives its
// bytes, and its driver's documentation says what they mean.
#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include "sring/sring_abi.h"

namespace sring {

// One complex 16-bit sample (SRING_FMT_CS16): I then Q, as stored.
struct cs16 {
  int16_t i;
  int16_t q;
  friend bool operator==(const cs16&, const cs16&) = default;
};
static_assert(sizeof(cs16) == 4 && alignof(cs16) == 2);
static_assert(sizeof(std::complex<float>) == 8);

// The layout of a block's samples: its format, channels per frame, and bits
// of one sample of one channel. A 1.3 producer writes 0 for channels and
// bits; from_header()/from_page() read those as 1 and 8 * bytes_per_sample.
struct SampleLayout {
  uint32_t format = SRING_FMT_U16;
  uint32_t channels = 1;
  uint32_t bits_per_sample = 16;

  static SampleLayout from_header(const sring_block_header& header);
  static SampleLayout from_page(const sring_producer_page& page);
  // For a standard format: its bits; nullopt for an unknown format, a
  // device format (whose bits only its driver knows) or a bad channel count.
  static std::optional<SampleLayout> standard(uint32_t format, uint32_t channels);

  uint32_t components() const { return sring_format_components(format); }
  uint64_t frame_bits() const { return uint64_t{channels} * bits_per_sample; }
  uint64_t payload_bytes(uint64_t frames) const { return sring_payload_bytes(frames, channels, bits_per_sample); }
  // Frames that fit in a block of block_bytes (header included).
  uint64_t frames_per_block(uint32_t block_bytes) const;
  bool is_device_format() const { return format >= SRING_FMT_DEVICE_FIRST; }
  // A standard format with its own size, or a device's own format with a
  // size it declares; 1 to SRING_MAX_CHANNELS channels.
  bool valid() const;
  friend bool operator==(const SampleLayout&, const SampleLayout&) = default;
};

// "u8", "s8", "u16", "s16", "s32", "f32", "cs16", "cf32", "sim-packed12",
// or "device-0x8001" for another driver's own format, "unknown-9" otherwise.
[[nodiscard]] std::string format_name(uint32_t format);
// The inverse for the standard formats and "sim-packed12" (and a number).
[[nodiscard]] std::optional<uint32_t> parse_format(std::string_view name);
// "cs16 x 2 channels" (or "u16" for one channel).
[[nodiscard]] std::string describe(const SampleLayout& layout);

// The format whose samples have C++ type T (void when none does).
template <typename T>
constexpr uint32_t format_of() {
  if constexpr (std::is_same_v<T, uint8_t>) return SRING_FMT_U8;
  else if constexpr (std::is_same_v<T, int8_t>) return SRING_FMT_S8;
  else if constexpr (std::is_same_v<T, uint16_t>) return SRING_FMT_U16;
  else if constexpr (std::is_same_v<T, int16_t>) return SRING_FMT_S16;
  else if constexpr (std::is_same_v<T, int32_t>) return SRING_FMT_S32;
  else if constexpr (std::is_same_v<T, float>) return SRING_FMT_F32;
  else if constexpr (std::is_same_v<T, cs16>) return SRING_FMT_CS16;
  else if constexpr (std::is_same_v<T, std::complex<float>>) return SRING_FMT_CF32;
  else return 0;
}

// What as<T>() throws when T is not the block's format.
class FormatMismatch : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The samples of `frames` frames at `payload` as T: frames * channels
// values, frame by frame, channel by channel. Throws FormatMismatch unless T
// is the layout's format.
template <typename T>
std::span<const T> typed_view(const std::byte* payload, uint64_t frames, const SampleLayout& layout) {
  static_assert(format_of<T>() != 0,
                "sring sample types: uint8_t int8_t uint16_t int16_t int32_t float sring::cs16 "
                "std::complex<float>");
  if (layout.format != format_of<T>()) {
    throw FormatMismatch("samples are " + describe(layout) + ", not " + format_name(format_of<T>()) +
                         ": as<T>() takes the block's own type (sring/format.hpp)");
  }
  return {reinterpret_cast<const T*>(payload), static_cast<size_t>(frames * layout.channels)};
}

// The values of a u16 or s16 layout as stored (uint16_t), for callers
// that treat both alike (Block::samples()); other formats throw.
inline std::span<const uint16_t> raw16_view(const std::byte* payload, uint64_t frames, const SampleLayout& layout) {
  if (layout.format != SRING_FMT_U16 && layout.format != SRING_FMT_S16) {
    throw FormatMismatch("samples are " + describe(layout) +
                         ", not 16-bit: samples() is for u16 and s16; use as<T>() or payload()");
  }
  return {reinterpret_cast<const uint16_t*>(payload), static_cast<size_t>(frames * layout.channels)};
}

}  // namespace sring
