// Sample formats and channels (ABI 1.4) against the real module: sring_sim
// makes every standard format and its own 12-bit packed one with any number
// of channels; sring checks what SET_CONFIG asks, writes each block's
// header and the producer page, and counts frames. Every value is checked
// against the pattern of sring_pattern.h, in the layout the configuration
// asked for (not the one the header claims), and every header field
// against the configuration. Linked into kernel_test (tests/kernel/BUILD).
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <tuple>

#include "sring/consumer.hpp"
#include "sring/format.hpp"
#include "sring/ring.hpp"
#include "sring/verify.hpp"
#include "sring/sring_abi.h"
#include "sring/sring_pattern.h"
#include "tests/kernel/kernel_util.hpp"

namespace {

using namespace std::chrono_literals;
using namespace sring_ktest;
using sring::Ring;
using sring::SampleLayout;
using sring::UniqueFd;

// Not a divisor of most frame sizes: blocks end in a partial frame's room
// (sim-packed12 also in a partial byte), which the counts must leave out.
constexpr uint32_t kBlockBytes = 8192;
constexpr uint32_t kSeed = 7;

// What a configuration of `format` x `channels` should produce.
SampleLayout layout_of(uint32_t format, uint32_t channels) {
  return SampleLayout{format, channels, sring_pattern_format_bits(format)};
}

sring_config format_config(uint32_t format, uint32_t channels) {
  sring_config config = default_config();
  config.sample_format = format;
  config.channels = channels;
  config.block_bytes = kBlockBytes;
  config.sample_rate = 0;  // flat out: the device waits for room, loses nothing
  config.pattern_seed = kSeed;
  return config;
}

// One stream, from START to its drained end.
struct StreamRun {
  uint64_t blocks = 0;
  uint64_t frames = 0;
  uint64_t wrong_values = 0;      // against the pattern, in the configured layout
  uint64_t corrupted_blocks = 0;  // blocks with any wrong value
  uint64_t header_problems = 0;   // blocks whose header disagrees with the configuration
  uint64_t lost_before = 0;       // sum of Block::lost_before()
  std::string first_problem;
  double seconds_running = 0;  // START to STOP
  sring::EndOfStream end;
  sring::StreamCounters counters;
  sring_stats stats{};
  bool ok = false;  // the consumer saw the end of the stream without a ring error
};

// Starts the (configured) ring, waits `pause` without consuming (a slow
// consumer), then consumes and verifies every block until `stop_after_blocks`
// were delivered or `max_time` passed, stops the device and drains.
// `inject` runs right after START (fault injection).
template <typename Inject>
StreamRun run_verified(Ring& ring, const sring_config& config, uint64_t stop_after_blocks,
                 std::chrono::milliseconds max_time, std::chrono::milliseconds pause, Inject inject) {
  StreamRun run;
  const SampleLayout expected = layout_of(config.sample_format, config.channels ? config.channels : 1);
  const uint64_t full_frames = expected.frames_per_block(config.block_bytes);
  const uint32_t bits = expected.bits_per_sample;
  sring::Consumer consumer(ring);
  consumer.expect_start(0, 0);
  auto problem = [&](const std::string& what) {
    if (run.header_problems++ == 0) run.first_problem = what;
  };
  const auto started = std::chrono::steady_clock::now();
  if (::ioctl(ring.fd(), SRING_IOC_START) != 0) {
    run.first_problem = std::string("START: ") + strerror(errno);
    return run;
  }
  inject();
  std::this_thread::sleep_for(pause);
  const auto stop_at = started + max_time;
  bool stopped = false;
  while (!consumer.end_of_stream()) {
    auto n = consumer.consume([&](const sring::Block& block) {
      const sring_block_header& h = block.header();
      if (h.sample_format != config.sample_format) problem("sample_format " + std::to_string(h.sample_format));
      if (h.channels != expected.channels) problem("channels " + std::to_string(h.channels));
      if (h.bits_per_sample != bits) problem("bits_per_sample " + std::to_string(h.bits_per_sample));
      if (h.bytes_per_sample != (bits % 8 ? 0 : bits / 8)) {
        problem("bytes_per_sample " + std::to_string(h.bytes_per_sample));
      }
      if (h.sample_count != full_frames) problem("sample_count " + std::to_string(h.sample_count));
      if (h.total_bytes != config.block_bytes) problem("total_bytes " + std::to_string(h.total_bytes));
      if (expected.payload_bytes(h.sample_count) > h.total_bytes - SRING_BLOCK_HEADER_SIZE) {
        problem("payload of " + std::to_string(h.sample_count) + " frames does not fit");
      }
      if (h.reserved1 != 0) problem("reserved1 not zero");
      if (!(block.layout() == expected)) problem("layout " + sring::describe(block.layout()));
      // The configured layout, whatever the header says: a header that
      // lies cannot make wrong data verify.
      const uint64_t wrong =
          sring::count_pattern_mismatches(block.payload().data(), expected, block.first_sample(),
                                          std::min<uint64_t>(h.sample_count, full_frames), config.pattern_seed);
      run.wrong_values += wrong;
      run.corrupted_blocks += wrong != 0;
      run.lost_before += block.lost_before();
      run.blocks++;
      run.frames += h.sample_count;
    });
    if (!n) {
      run.first_problem = "consume: " + n.error().message;
      break;
    }
    if (!stopped && (run.blocks >= stop_after_blocks || std::chrono::steady_clock::now() >= stop_at)) {
      const auto stopping = std::chrono::steady_clock::now();
      if (::ioctl(ring.fd(), SRING_IOC_STOP) != 0) {
        run.first_problem = std::string("STOP: ") + strerror(errno);
        break;
      }
      run.seconds_running = std::chrono::duration<double>(stopping - started).count();
      stopped = true;
    }
    if (*n == 0) (void)consumer.wait(sring::WaitStrategy::kEventfd, 50ms);
  }
  run.ok = consumer.end_of_stream();
  run.end = consumer.finish();
  run.counters = consumer.counters();
  run.stats = stats_of(ring.fd());
  return run;
}

StreamRun run_verified(Ring& ring, const sring_config& config, uint64_t stop_after_blocks,
                 std::chrono::milliseconds max_time) {
  return run_verified(ring, config, stop_after_blocks, max_time, 0ms, [] {});
}

// Configures the device and attaches to it as the consumer, eventfd on.
std::optional<Ring> configured_ring(const sring_config& config) {
  UniqueFd fd = open_device(O_RDWR);
  EXPECT_TRUE(fd.valid()) << strerror(errno);
  if (!fd.valid()) return std::nullopt;
  prepare(fd.get(), config);
  if (::testing::Test::HasFatalFailure()) return std::nullopt;
  auto ring = Ring::attach(std::move(fd), Ring::Access::kConsumer);
  EXPECT_TRUE(ring.has_value()) << (ring ? "" : ring.error().message);
  if (!ring) return std::nullopt;
  EXPECT_TRUE(ring->enable_eventfd().has_value());
  return std::move(*ring);
}

// ---- every format x channels {1, 2, 4} -------------------------------------

class FormatsAndChannels : public ::testing::TestWithParam<std::tuple<uint32_t, uint32_t>> {};

TEST_P(FormatsAndChannels, EveryValueVerifiesAndEveryFrameIsCounted) {
  const auto [format, channels] = GetParam();
  const sring_config config = format_config(format, channels);
  const SampleLayout expected = layout_of(format, channels);
  const uint64_t full_frames = expected.frames_per_block(kBlockBytes);
  ASSERT_GT(full_frames, 0u);
  auto ring = configured_ring(config);
  ASSERT_TRUE(ring.has_value());

  sring_config now{};
  ASSERT_EQ(::ioctl(ring->fd(), SRING_IOC_GET_CONFIG, &now), 0) << strerror(errno);
  EXPECT_EQ(std::memcmp(&now, &config, sizeof(now)), 0) << "GET_CONFIG gives back what SET_CONFIG took";
  // The producer page describes the data before the first block.
  const sring_producer_page& page = ring->producer();
  EXPECT_EQ(page.sample_format, format);
  EXPECT_EQ(page.channels, channels);
  EXPECT_EQ(page.bits_per_sample, expected.bits_per_sample);
  EXPECT_EQ(page.block_bytes, kBlockBytes);
  EXPECT_EQ(page.pattern_seed, kSeed);
  EXPECT_TRUE(SampleLayout::from_page(page) == expected);

  const StreamRun run = run_verified(*ring, config, 300, 20'000ms);
  ASSERT_TRUE(run.ok) << run.first_problem;
  EXPECT_GE(run.blocks, 300u) << "the device made blocks";
  EXPECT_EQ(run.header_problems, 0u) << "first: " << run.first_problem;
  EXPECT_EQ(run.wrong_values, 0u) << sring::describe(expected);
  // Exact, in frames: every frame made was delivered (flat out loses none).
  EXPECT_TRUE(run.end.exact());
  EXPECT_EQ(run.stats.blocks_dropped, 0u);
  EXPECT_EQ(run.stats.samples_dropped, 0u);
  EXPECT_EQ(run.blocks, run.stats.blocks_produced);
  EXPECT_EQ(run.frames, run.stats.samples_produced);
  EXPECT_EQ(run.stats.samples_produced, run.stats.blocks_produced * full_frames)
      << "samples_produced counts frames of full blocks";
  EXPECT_EQ(run.counters.samples, run.frames);
  EXPECT_EQ(run.counters.lost_samples, 0u);
}

std::string name_of(const ::testing::TestParamInfo<std::tuple<uint32_t, uint32_t>>& info) {
  std::string name = sring::format_name(std::get<0>(info.param));
  for (char& c : name) {
    if (c == '-') c = '_';
  }
  return name + "_x" + std::to_string(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(Sim, FormatsAndChannels,
                         ::testing::Combine(::testing::Values(SRING_FMT_U8, SRING_FMT_S8, SRING_FMT_U16, SRING_FMT_S16,
                                                              SRING_FMT_S32, SRING_FMT_F32, SRING_FMT_CS16,
                                                              SRING_FMT_CF32, SRING_FMT_SIM_PACKED12),
                                            ::testing::Values(1u, 2u, 4u)),
                         name_of);

// ---- losses, corruption, limits --------------------------------------------

TEST(Formats, SlowConsumerDropNewestInCf32x4CountsFramesExactly) {
  // 500k frames/s of 4 complex floats (16 MB/s) into a 4 MiB ring: full in
  // about 0.26 s; the consumer sleeps 0.6 s first, so blocks are dropped.
  sring_config config = format_config(SRING_FMT_CF32, 4);
  config.sample_rate = 500'000;
  config.overrun_policy = SRING_OVERRUN_DROP_NEWEST;
  const uint64_t full_frames = layout_of(SRING_FMT_CF32, 4).frames_per_block(kBlockBytes);
  ASSERT_EQ(full_frames, 254u);  // 8128 bytes of 32-byte frames
  auto ring = configured_ring(config);
  ASSERT_TRUE(ring.has_value());
  const StreamRun run = run_verified(*ring, config, ~uint64_t{0}, 1500ms, 600ms, [] {});
  ASSERT_TRUE(run.ok) << run.first_problem;
  EXPECT_EQ(run.header_problems, 0u) << "first: " << run.first_problem;
  EXPECT_EQ(run.wrong_values, 0u) << "blocks after a drop continue the pattern at their own first frame";
  EXPECT_GT(run.stats.blocks_dropped, 0u) << "the slow consumer lost blocks";
  // Loss in frames: whole blocks of full_frames, and exactly what the
  // consumer found missing.
  EXPECT_EQ(run.stats.samples_dropped, run.stats.blocks_dropped * full_frames);
  EXPECT_TRUE(run.end.exact()) << run.end.missing_samples << " frames missing, " << run.end.dropped_samples
                               << " dropped";
  EXPECT_EQ(run.end.missing_samples, run.stats.samples_dropped);
  EXPECT_EQ(run.lost_before, run.stats.samples_dropped) << "every block after a loss says how much";
  EXPECT_EQ(run.frames + run.stats.samples_dropped, run.stats.samples_produced);
  EXPECT_EQ(run.blocks + run.stats.blocks_dropped, run.stats.blocks_produced);
  // The rate counts frames per second: what was made (delivered or lost)
  // follows the clock, not 16-bit samples or bytes.
  const double expected_frames = config.sample_rate * run.seconds_running;
  EXPECT_GT(run.stats.samples_produced, 0.8 * expected_frames) << run.seconds_running << " s";
  EXPECT_LT(run.stats.samples_produced, 1.05 * expected_frames + full_frames) << run.seconds_running << " s";
}

// SRING_FAULT_CORRUPT flips one byte in the middle of a block's payload:
// whatever the format, the consumer's verifier finds it, in exactly the
// corrupted blocks.
class CorruptionInFormat : public ::testing::TestWithParam<std::tuple<uint32_t, uint32_t>> {};

TEST_P(CorruptionInFormat, IsCaughtInEveryCorruptedBlock) {
  const auto [format, channels] = GetParam();
  const sring_config config = format_config(format, channels);
  auto ring = configured_ring(config);
  ASSERT_TRUE(ring.has_value());
  const int fd = ring->fd();
  const StreamRun run = run_verified(*ring, config, 200, 20'000ms, 0ms, [fd] {
    sring_fault fault{SRING_FAULT_CORRUPT, 0, 3};
    EXPECT_EQ(::ioctl(fd, SRING_IOC_INJECT_FAULT, &fault), 0) << strerror(errno);
  });
  ASSERT_TRUE(run.ok) << run.first_problem;
  EXPECT_EQ(run.header_problems, 0u) << "first: " << run.first_problem;
  EXPECT_EQ(run.corrupted_blocks, 3u);
  // The flipped byte belongs to one value alone (sring_corrupt_byte), in
  // sim-packed12 too: exactly one wrong value per corrupted block.
  EXPECT_EQ(run.wrong_values, 3u) << sring::format_name(format);
  EXPECT_TRUE(run.end.exact());
}

INSTANTIATE_TEST_SUITE_P(Sim, CorruptionInFormat,
                         ::testing::Values(std::make_tuple(uint32_t{SRING_FMT_U8}, 1u),
                                           std::make_tuple(uint32_t{SRING_FMT_U8}, 2u),
                                           std::make_tuple(uint32_t{SRING_FMT_CF32}, 1u),
                                           std::make_tuple(uint32_t{SRING_FMT_SIM_PACKED12}, 1u)),
                         name_of);

TEST(Formats, BadConfigurationsAreRefusedAndChangeNothing) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  // A configuration that is not the default, so that a refused one that
  // fell back to anything would show.
  sring_config good = format_config(SRING_FMT_S32, 2);
  good.sample_rate = 1'000'000;
  prepare(fd.get(), good);
  RingMapping mapping(fd.get());
  ASSERT_TRUE(mapping.ok());

  struct Case {
    const char* what;
    uint32_t format;
    uint32_t channels;
    uint32_t block_bytes;
    uint32_t reserved0;
    uint64_t reserved1;
  } cases[] = {
      {"format 9 (past the standard ones)", 9, 1, kBlockBytes, 0, 0},
      {"format 0x7fff (below the device range)", 0x7fff, 1, kBlockBytes, 0, 0},
      {"format 0x8001 (device range, not declared)", 0x8001, 1, kBlockBytes, 0, 0},
      {"format 0xffff (device range, not declared)", 0xffff, 1, kBlockBytes, 0, 0},
      {"format 0x18000 (beyond the device range)", 0x18000, 1, kBlockBytes, 0, 0},
      {"channels 257", SRING_FMT_U8, 257, kBlockBytes, 0, 0},
      {"channels 2^32 - 1", SRING_FMT_U8, ~0u, kBlockBytes, 0, 0},
      {"reserved0", SRING_FMT_U16, 1, kBlockBytes, 1, 0},
      {"reserved1", SRING_FMT_U16, 1, kBlockBytes, 0, uint64_t{1} << 63},
      {"cf32 x 256 in 128-byte blocks (a frame is 2048 bytes)", SRING_FMT_CF32, 256, 128, 0, 0},
      {"cf32 x 9 in 128-byte blocks (72 bytes > 64)", SRING_FMT_CF32, 9, 128, 0, 0},
      {"sim-packed12 x 43 in 128-byte blocks (65 bytes > 64)", SRING_FMT_SIM_PACKED12, 43, 128, 0, 0},
      {"cf32 x 256 in 2048-byte blocks (one byte short)", SRING_FMT_CF32, 256, 2048, 0, 0},
  };
  for (const auto& c : cases) {
    sring_config bad = good;
    bad.sample_format = c.format;
    bad.channels = c.channels;
    bad.block_bytes = c.block_bytes;
    bad.reserved0 = c.reserved0;
    bad.reserved1 = c.reserved1;
    errno = 0;
    EXPECT_EQ(::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &bad), -1) << c.what;
    EXPECT_EQ(errno, EINVAL) << c.what;
    sring_config now{};
    ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_GET_CONFIG, &now), 0);
    EXPECT_EQ(std::memcmp(&now, &good, sizeof(now)), 0) << c.what << " changed the configuration";
    EXPECT_EQ(mapping.prod->sample_format, uint32_t{SRING_FMT_S32}) << c.what;
    EXPECT_EQ(mapping.prod->channels, 2u) << c.what;
    EXPECT_EQ(mapping.prod->bits_per_sample, 32u) << c.what;
    EXPECT_EQ(mapping.prod->block_bytes, kBlockBytes) << c.what;
  }

  // The edges that are accepted: channels 0 is one channel (stored and
  // shown as 1), a block that holds exactly one frame, the most channels,
  // the sim's declared format.
  struct Accepted {
    const char* what;
    uint32_t format;
    uint32_t channels;
    uint32_t block_bytes;
    uint32_t stored_channels;
    uint32_t bits;
  } accepted[] = {
      {"channels 0 (a 1.3 caller's zero)", SRING_FMT_U16, 0, kBlockBytes, 1, 16},
      {"cf32 x 8 in 128-byte blocks (one 64-byte frame)", SRING_FMT_CF32, 8, 128, 8, 64},
      {"sim-packed12 x 42 in 128-byte blocks (63 bytes)", SRING_FMT_SIM_PACKED12, 42, 128, 42, 12},
      {"u8 x 256", SRING_FMT_U8, 256, kBlockBytes, 256, 8},
      {"cf32 x 256 in 2112-byte blocks (one frame)", SRING_FMT_CF32, 256, 2112, 256, 64},
  };
  for (const auto& a : accepted) {
    sring_config config = good;
    config.sample_format = a.format;
    config.channels = a.channels;
    config.block_bytes = a.block_bytes;
    ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &config), 0) << a.what << ": " << strerror(errno);
    sring_config now{};
    ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_GET_CONFIG, &now), 0);
    EXPECT_EQ(now.channels, a.stored_channels) << a.what;
    EXPECT_EQ(now.sample_format, a.format) << a.what;
    EXPECT_EQ(mapping.prod->channels, a.stored_channels) << a.what;
    EXPECT_EQ(mapping.prod->bits_per_sample, a.bits) << a.what;
    EXPECT_EQ(mapping.prod->sample_format, a.format) << a.what;
  }
}

TEST(Formats, OneFrameBlocksOfTheMostChannels) {
  // cf32 x 256: a 2048-byte frame, one per 2112-byte block.
  sring_config config = format_config(SRING_FMT_CF32, SRING_MAX_CHANNELS);
  config.block_bytes = 2112;
  auto ring = configured_ring(config);
  ASSERT_TRUE(ring.has_value());
  const StreamRun run = run_verified(*ring, config, 200, 20'000ms);
  ASSERT_TRUE(run.ok) << run.first_problem;
  EXPECT_GE(run.blocks, 200u);
  EXPECT_EQ(run.frames, run.blocks) << "one frame per block";
  EXPECT_EQ(run.header_problems, 0u) << "first: " << run.first_problem;
  EXPECT_EQ(run.wrong_values, 0u);
  EXPECT_TRUE(run.end.exact());
  EXPECT_EQ(run.frames, run.stats.samples_produced);
}

TEST(Formats, AChannelCountOfZeroRunsAsOne) {
  // A 1.3 caller leaves the field zero: u16 of one channel, as before.
  sring_config config = format_config(SRING_FMT_U16, 0);
  auto ring = configured_ring(config);
  ASSERT_TRUE(ring.has_value());
  EXPECT_EQ(ring->producer().channels, 1u);
  const StreamRun run = run_verified(*ring, config, 100, 20'000ms);
  ASSERT_TRUE(run.ok) << run.first_problem;
  EXPECT_EQ(run.header_problems, 0u) << "first: " << run.first_problem;
  EXPECT_EQ(run.wrong_values, 0u);
  EXPECT_EQ(run.frames, run.blocks * ((kBlockBytes - SRING_BLOCK_HEADER_SIZE) / 2));
  EXPECT_TRUE(run.end.exact());
}

}  // namespace
