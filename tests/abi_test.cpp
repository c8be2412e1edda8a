// The ABI header is the contract between kernel and user space: its layout
// must not move silently. The static asserts pin offsets at compile time;
// these tests pin what the static asserts cannot say.
#include <gtest/gtest.h>

#include <bit>
#include <cstddef>
#include <cstring>
#include <set>
#include <vector>

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
  EXPECT_GE(offsetof(sring_producer_page, head), offsetof(sring_producer_page, bits_per_sample) + 2);
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

// ABI 1.4's fields sit where 1.3 had zeros: a 1.3 reader skips them, a 1.4
// reader finds them at these offsets whatever the compiler.
TEST(Abi, FormatAndChannelFieldsArePinned) {
  EXPECT_EQ(offsetof(sring_block_header, sample_count), 40u);
  EXPECT_EQ(offsetof(sring_block_header, sample_format), 44u);
  EXPECT_EQ(offsetof(sring_block_header, bytes_per_sample), 46u);
  EXPECT_EQ(offsetof(sring_block_header, flags), 48u);
  EXPECT_EQ(offsetof(sring_block_header, channels), 52u);
  EXPECT_EQ(offsetof(sring_block_header, bits_per_sample), 54u);
  EXPECT_EQ(offsetof(sring_block_header, reserved1), 56u);
  EXPECT_EQ(sizeof(sring_block_header::channels), 2u);
  EXPECT_EQ(sizeof(sring_block_header::bits_per_sample), 2u);
  EXPECT_EQ(offsetof(sring_producer_page, sample_format), 60u);
  EXPECT_EQ(offsetof(sring_producer_page, pattern_seed), 64u);
  EXPECT_EQ(offsetof(sring_producer_page, channels), 68u);
  EXPECT_EQ(offsetof(sring_producer_page, bits_per_sample), 70u);
  EXPECT_EQ(sizeof(sring_producer_page::channels), 2u);
  EXPECT_EQ(offsetof(sring_config, sample_format), 16u);
  EXPECT_EQ(offsetof(sring_config, channels), 32u);
  EXPECT_EQ(offsetof(sring_config, reserved0), 36u);
  EXPECT_EQ(offsetof(sring_config, reserved1), 40u);
  EXPECT_EQ(sizeof(sring_config), 48u);
  EXPECT_EQ(SRING_ABI_VERSION_MINOR, 4);
}

TEST(Abi, FormatNumbersAndSizes) {
  struct Row {
    uint32_t format, number, bits, components;
  } rows[] = {
      {SRING_FMT_U16, 1, 16, 1}, {SRING_FMT_S16, 2, 16, 1}, {SRING_FMT_U8, 3, 8, 1},
      {SRING_FMT_S8, 4, 8, 1},   {SRING_FMT_S32, 5, 32, 1}, {SRING_FMT_F32, 6, 32, 1},
      {SRING_FMT_CS16, 7, 32, 2}, {SRING_FMT_CF32, 8, 64, 2},
  };
  for (const Row& row : rows) {
    EXPECT_EQ(row.format, row.number);
    EXPECT_EQ(sring_format_bits(row.format), row.bits) << row.format;
    EXPECT_EQ(sring_format_components(row.format), row.components) << row.format;
    EXPECT_EQ(sring_pattern_format_bits(row.format), row.bits) << row.format;
  }
  EXPECT_EQ(SRING_FMT_LAST_STANDARD, 8u);
  for (uint32_t unknown : {0u, 9u, 0x7fffu, 0x8000u, 0xffffu, 0x10000u}) {
    EXPECT_EQ(sring_format_bits(unknown), 0u) << unknown;
  }
  EXPECT_EQ(SRING_FMT_SIM_PACKED12, SRING_FMT_DEVICE_FIRST) << "the simulators' own format is a device format";
  EXPECT_EQ(sring_pattern_format_bits(SRING_FMT_SIM_PACKED12), 12u);
  EXPECT_EQ(sring_pattern_format_bits(0x8001), 0u);
  EXPECT_EQ(SRING_MAX_CHANNELS, 256u);
}

TEST(Abi, PayloadBytesRoundUpToWholeBytes) {
  EXPECT_EQ(sring_payload_bytes(0, 1, 16), 0u);
  EXPECT_EQ(sring_payload_bytes(4064, 1, 16), 8128u);
  EXPECT_EQ(sring_payload_bytes(3, 2, 8), 6u);
  EXPECT_EQ(sring_payload_bytes(5, 4, 64), 160u);
  EXPECT_EQ(sring_payload_bytes(1, 1, 12), 2u) << "one 12-bit value takes two bytes";
  EXPECT_EQ(sring_payload_bytes(2, 1, 12), 3u);
  EXPECT_EQ(sring_payload_bytes(3, 1, 12), 5u) << "4.5 bytes round up";
  EXPECT_EQ(sring_payload_bytes(5461, 1, 12), 8192u);
  EXPECT_EQ(sring_payload_bytes(1, 3, 12), 5u);
  EXPECT_EQ(sring_payload_bytes(1, 1, 1), 1u);
  // No overflow at the extremes a header can hold.
  EXPECT_EQ(sring_payload_bytes(0xffffffffu, SRING_MAX_CHANNELS, 0xffff),
            (uint64_t{0xffffffffu} * SRING_MAX_CHANNELS * 0xffff + 7) / 8);
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

// The kernel writes f32 with integer arithmetic only: its bits must be
// exactly the FPU's (s16)base / 32768 for every base value.
TEST(Pattern, F32BitsAreTheFloatConversionForEveryBaseValue) {
  for (uint32_t base = 0; base <= 0xffff; ++base) {
    const float value = static_cast<float>(static_cast<int16_t>(base)) / 32768.0f;
    ASSERT_EQ(sring_pattern_f32_bits(static_cast<uint16_t>(base)), std::bit_cast<uint32_t>(value))
        << "base " << base << " (" << value << ")";
  }
}

// The stored value of each element, written independently of
// sring_pattern_value() from docs/abi.md, "The sample pattern".
uint32_t documented_value(uint16_t u, uint32_t format) {
  switch (format) {
    case SRING_FMT_U8:
    case SRING_FMT_S8: return u >> 8;
    case SRING_FMT_S32: return uint32_t{u} << 16 | u;
    case SRING_FMT_F32:
    case SRING_FMT_CF32:
      return std::bit_cast<uint32_t>(static_cast<float>(static_cast<int16_t>(u)) / 32768.0f);
    case SRING_FMT_SIM_PACKED12: return u >> 4;
    default: return u;
  }
}

// Every format, one and several channels, a first frame just before a chunk
// boundary: each element of the filled payload is the documented value of
// element (f * channels + c) * components + k, and nothing past the payload
// is written.
TEST(Pattern, FillFormatWritesTheDocumentedValueOfEveryElement) {
  const uint32_t formats[] = {SRING_FMT_U8,  SRING_FMT_S8,  SRING_FMT_U16,  SRING_FMT_S16,
                              SRING_FMT_S32, SRING_FMT_F32, SRING_FMT_CS16, SRING_FMT_CF32};
  for (uint32_t format : formats) {
    for (uint32_t channels : {1u, 3u}) {
      const uint32_t components = sring_format_components(format);
      const uint32_t value_bytes = sring_format_bits(format) / components / 8;
      const uint32_t frames = 1000;
      const uint64_t first_frame = (uint64_t{SRING_PATTERN_CHUNK} * 5 - 700) / (channels * components);
      const uint64_t payload = sring_payload_bytes(frames, channels, sring_format_bits(format));
      std::vector<uint8_t> buffer(payload + 16, 0xee);
      ASSERT_EQ(sring_pattern_fill_format(buffer.data(), format, channels, first_frame, frames, 11), 0);
      const uint64_t elements = uint64_t{frames} * channels * components;
      ASSERT_EQ(elements * value_bytes, payload);
      for (uint64_t k = 0; k < elements; ++k) {
        const uint64_t element = first_frame * channels * components + k;
        const uint32_t expected = documented_value(sring_pattern_sample(element, 11), format);
        uint32_t stored = 0;
        std::memcpy(&stored, buffer.data() + k * value_bytes, value_bytes);  // little endian
        ASSERT_EQ(stored, expected) << "format " << format << ", " << channels << " channels, element " << k;
      }
      for (size_t k = payload; k < buffer.size(); ++k) ASSERT_EQ(buffer[k], 0xee) << "written past the payload";
    }
  }
}

// The 12-bit packing of sring_pattern.h, unpacked by hand: two values in
// three bytes, paired from the payload's first; an odd last value takes two
// bytes, the top half of the second zero.
TEST(Pattern, Packed12RoundTripsWithAnOddElementCount) {
  for (uint32_t channels : {1u, 3u}) {
    for (uint32_t frames : {1u, 7u, 8u, 1001u}) {
      const uint64_t first_frame = 65530;
      const uint64_t elements = uint64_t{frames} * channels;
      const uint64_t payload = sring_payload_bytes(frames, channels, SRING_FMT_SIM_PACKED12_BITS);
      ASSERT_EQ(payload, (elements * 12 + 7) / 8);
      std::vector<uint8_t> bytes(payload + 8, 0xff);  // set bits a fill that ORs would keep
      ASSERT_EQ(sring_pattern_fill_format(bytes.data(), SRING_FMT_SIM_PACKED12, channels, first_frame, frames, 5), 0);
      for (uint64_t k = 0; k < elements; ++k) {
        const uint8_t* pair = bytes.data() + k / 2 * 3;
        const uint32_t value = k % 2 == 0 ? pair[0] | (pair[1] & 0x0fu) << 8 : (pair[1] >> 4) | uint32_t{pair[2]} << 4;
        const uint32_t expected = sring_pattern_sample(first_frame * channels + k, 5) >> 4;
        ASSERT_EQ(value, expected) << channels << " channels, " << frames << " frames, element " << k;
      }
      if (elements % 2 == 1) {
        EXPECT_EQ(bytes[payload - 1] & 0xf0, 0) << "the odd last value's second byte has a zero top half";
      }
      for (size_t k = payload; k < bytes.size(); ++k) ASSERT_EQ(bytes[k], 0xff) << "written past the payload";
    }
  }
}

TEST(Pattern, OneChannelOfSixteenBitsIsTheOriginalPattern) {
  std::vector<uint16_t> original(5000), u16(5000), s16(5000);
  sring_pattern_fill(original.data(), 123456, 5000, 9);
  ASSERT_EQ(sring_pattern_fill_format(u16.data(), SRING_FMT_U16, 1, 123456, 5000, 9), 0);
  ASSERT_EQ(sring_pattern_fill_format(s16.data(), SRING_FMT_S16, 1, 123456, 5000, 9), 0);
  EXPECT_EQ(u16, original);
  EXPECT_EQ(s16, original);
}

TEST(Pattern, FillFormatRefusesAFormatItDoesNotDefineAndWritesNothing) {
  std::vector<uint8_t> bytes(64, 0xab);
  for (uint32_t format : {0u, 9u, 0x8001u, 0xffffu}) {
    EXPECT_EQ(sring_pattern_fill_format(bytes.data(), format, 1, 0, 8, 1), -1) << format;
  }
  for (uint8_t b : bytes) ASSERT_EQ(b, 0xab);
}

}  // namespace
