#include "sring/format.hpp"

#include <charconv>

#include "sring/sring_pattern.h"

namespace sring {

SampleLayout SampleLayout::from_header(const sring_block_header& header) {
  // A 1.3 producer leaves channels and bits_per_sample zero (docs/abi.md).
  return SampleLayout{header.sample_format, header.channels != 0 ? header.channels : 1u,
                      header.bits_per_sample != 0 ? header.bits_per_sample : 8u * header.bytes_per_sample};
}

SampleLayout SampleLayout::from_page(const sring_producer_page& page) {
  return SampleLayout{page.sample_format, page.channels != 0 ? page.channels : 1u,
                      page.bits_per_sample != 0 ? page.bits_per_sample : 16u};
}

std::optional<SampleLayout> SampleLayout::standard(uint32_t format, uint32_t channels) {
  const uint32_t bits = sring_format_bits(format);
  if (bits == 0 || channels == 0 || channels > SRING_MAX_CHANNELS) return std::nullopt;
  return SampleLayout{format, channels, bits};
}

uint64_t SampleLayout::frames_per_block(uint32_t block_bytes) const {
  if (block_bytes <= SRING_BLOCK_HEADER_SIZE || frame_bits() == 0) return 0;
  return uint64_t{block_bytes - SRING_BLOCK_HEADER_SIZE} * 8 / frame_bits();
}

bool SampleLayout::valid() const {
  const uint32_t standard_bits = sring_format_bits(format);
  const bool sized = standard_bits != 0 ? bits_per_sample == standard_bits
                                        : format >= SRING_FMT_DEVICE_FIRST && format <= SRING_FMT_DEVICE_LAST &&
                                              bits_per_sample != 0 && bits_per_sample <= 0xffff;
  return sized && channels >= 1 && channels <= SRING_MAX_CHANNELS;
}

std::string format_name(uint32_t format) {
  switch (format) {
    case SRING_FMT_U8: return "u8";
    case SRING_FMT_S8: return "s8";
    case SRING_FMT_U16: return "u16";
    case SRING_FMT_S16: return "s16";
    case SRING_FMT_S32: return "s32";
    case SRING_FMT_F32: return "f32";
    case SRING_FMT_CS16: return "cs16";
    case SRING_FMT_CF32: return "cf32";
    case SRING_FMT_SIM_PACKED12: return "sim-packed12";
    default: break;
  }
  char buf[32];
  if (format >= SRING_FMT_DEVICE_FIRST && format <= SRING_FMT_DEVICE_LAST) {
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), format, 16);
    return "device-0x" + std::string(buf, end);
  }
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), format);
  return "unknown-" + std::string(buf, end);
}

std::optional<uint32_t> parse_format(std::string_view name) {
  for (uint32_t format = 1; format <= SRING_FMT_LAST_STANDARD; ++format) {
    if (name == format_name(format)) return format;
  }
  if (name == "sim-packed12") return SRING_FMT_SIM_PACKED12;
  // A number, decimal or 0x-hex, for a device's own format.
  int base = 10;
  if (name.starts_with("0x") || name.starts_with("0X")) {
    name.remove_prefix(2);
    base = 16;
  }
  uint32_t value = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), value, base);
  if (ec != std::errc() || end != name.data() + name.size() || name.empty() || value == 0 || value > 0xffff) {
    return std::nullopt;
  }
  return value;
}

std::string describe(const SampleLayout& layout) {
  std::string text = format_name(layout.format);
  if (layout.channels != 1) text += " x " + std::to_string(layout.channels) + " channels";
  return text;
}

}  // namespace sring
