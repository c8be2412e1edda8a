// The C API against the user-space simulator's ring file: every block given
// in order with its samples in place, the loss accounting exact at the end
// in every policy, a callback that stops early, clear errors; every sample
// format and channel count described and read in place (ABI 1.4).
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sring/sring_pattern.h"
#include "sring/verify.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"
#include "sring/sring.h"

namespace {

using sring::sim::HostRing;
using sring::sim::SimConfig;
using sring::sim::SimDevice;

struct Tally {
  uint64_t blocks = 0;
  uint64_t corrupted = 0;
  uint64_t lost = 0;
  uint64_t next_sequence = 0;
  bool in_order = true;
};

int on_block(const sring_block_header* header, const uint16_t* samples, uint64_t lost_before, void* user) {
  auto* tally = static_cast<Tally*>(user);
  tally->in_order &= header->sequence >= tally->next_sequence;
  tally->next_sequence = header->sequence + 1;
  tally->corrupted += sring::count_pattern_mismatches(samples, header->first_sample, header->sample_count, 1);
  tally->lost += lost_before;
  ++tally->blocks;
  return 0;
}

struct Rig {
  explicit Rig(uint32_t policy) : Rig(config(policy)) {}
  explicit Rig(const SimConfig& config) : host(std::move(*HostRing::create(64 * 1024))), device(host, config) {
    const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    EXPECT_TRUE(device.set_eventfd(efd).has_value());
    EXPECT_EQ(sring_attach_fd(host.duplicate_fd()->release(), efd, &ring), 0) << sring_last_error(nullptr);
  }
  ~Rig() { sring_close(ring); }
  static SimConfig config(uint32_t policy, uint32_t format = SRING_FMT_U16, uint32_t channels = 1) {
    SimConfig c;
    c.sample_rate = 1'000'000;
    c.block_bytes = 4096;
    c.overrun_policy = policy;
    c.sample_format = format;
    c.channels = channels;
    return c;
  }
  HostRing host;
  SimDevice device;
  sring_consumer* ring = nullptr;
};

class CApi : public testing::TestWithParam<uint32_t> {};

TEST_P(CApi, EveryBlockGivenOrCountedLostExactly) {
  Rig rig(GetParam());
  ASSERT_NE(rig.ring, nullptr);
  EXPECT_EQ(sring_ring_size(rig.ring), 64u * 1024);
  Tally tally;
  rig.device.begin();
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 20; ++i) (void)rig.device.produce_block();  // more than fit
    ASSERT_GE(sring_consume(rig.ring, on_block, &tally, SRING_ALL), 0) << sring_last_error(rig.ring);
  }
  rig.device.end();
  EXPECT_EQ(sring_wait(rig.ring, -1), 1) << "a stopped ring ends a wait forever";
  ASSERT_GE(sring_consume(rig.ring, on_block, &tally, SRING_ALL), 0);
  ASSERT_EQ(sring_end_of_stream(rig.ring), 1);
  sring_counters counters{};
  ASSERT_EQ(sring_get_counters(rig.ring, &counters), 0);
  EXPECT_EQ(counters.exact, 1u) << counters.missing_samples << " missing, " << counters.samples_dropped << " dropped";
  EXPECT_EQ(counters.samples + counters.samples_dropped, counters.samples_produced);
  EXPECT_EQ(counters.blocks, tally.blocks);
  EXPECT_EQ(tally.corrupted, 0u);
  EXPECT_TRUE(tally.in_order);
}

INSTANTIATE_TEST_SUITE_P(Policies, CApi,
                         testing::Values(SRING_OVERRUN_DROP_NEWEST, SRING_OVERRUN_OVERWRITE_OLDEST,
                                         SRING_OVERRUN_STOP));

TEST(CApiCalls, CallbackStopsEarlyAndTheRestWaits) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.device.begin();
  for (int i = 0; i < 6; ++i) (void)rig.device.produce_block();
  uint64_t seen = 0;
  auto stop_at_two = [](const sring_block_header*, const uint16_t*, uint64_t, void* user) {
    return ++*static_cast<uint64_t*>(user) == 2 ? 1 : 0;
  };
  EXPECT_EQ(sring_consume(rig.ring, stop_at_two, &seen, SRING_ALL), 2);
  EXPECT_EQ(sring_consume(rig.ring, stop_at_two, &seen, 3), 3) << "max_blocks";
  Tally tally;
  EXPECT_EQ(sring_consume(rig.ring, on_block, &tally, SRING_ALL), 1);
  EXPECT_EQ(sring_consume(rig.ring, on_block, &tally, SRING_ALL), 0) << "nothing left";
  EXPECT_EQ(sring_wait(rig.ring, 1'000'000), 0) << "1 ms, nothing came: a timeout";
}

// Batch mode (sring_peek / sring_release) against sring_consume on the same
// production schedule: the same blocks, the same losses, the same counters.
void tally_block(Tally& tally, const sring_block& block) {
  tally.in_order &= block.header.sequence >= tally.next_sequence;
  tally.next_sequence = block.header.sequence + 1;
  tally.corrupted +=
      sring::count_pattern_mismatches(block.samples, block.header.first_sample, block.header.sample_count, 1);
  tally.lost += block.lost_before;
  ++tally.blocks;
}

// Everything available now, in batches of at most 5, each released in two
// parts, and the second part peeked again in between: the held blocks must
// come back first, unchanged.
void drain_in_batches(sring_consumer* ring, Tally& tally) {
  sring_block blocks[5];
  for (;;) {
    const int64_t n = sring_peek(ring, blocks, 5);
    ASSERT_GE(n, 0) << sring_last_error(ring);
    if (n == 0) return;
    const uint64_t first_part = static_cast<uint64_t>(n + 1) / 2;
    for (uint64_t i = 0; i < first_part; ++i) tally_block(tally, blocks[i]);
    ASSERT_EQ(sring_release(ring, first_part), 0) << sring_last_error(ring);
    if (first_part == static_cast<uint64_t>(n)) continue;
    sring_block again[5];
    const int64_t m = sring_peek(ring, again, static_cast<uint64_t>(n) - first_part);
    ASSERT_EQ(m, n - static_cast<int64_t>(first_part)) << "held blocks are available";
    for (int64_t i = 0; i < m; ++i) {
      ASSERT_EQ(again[i].header.sequence, blocks[first_part + i].header.sequence) << "held blocks come first";
      ASSERT_EQ(again[i].samples, blocks[first_part + i].samples);
      ASSERT_EQ(again[i].lost_before, blocks[first_part + i].lost_before);
      tally_block(tally, again[i]);
    }
    ASSERT_EQ(sring_release(ring, static_cast<uint64_t>(m)), 0) << sring_last_error(ring);
  }
}

struct StreamRun {
  Tally tally;
  sring_counters counters{};
};

// Three rounds of more blocks than fit, each drained, then the end of the
// stream: by callback or in batches.
StreamRun run_stream(uint32_t policy, bool batch) {
  Rig rig(policy);
  StreamRun run;
  if (!rig.ring) return run;
  rig.device.begin();
  auto drain = [&] {
    if (batch) {
      drain_in_batches(rig.ring, run.tally);
    } else {
      EXPECT_GE(sring_consume(rig.ring, on_block, &run.tally, SRING_ALL), 0) << sring_last_error(rig.ring);
    }
  };
  for (int round = 0; round < 3; ++round) {
    // The ring holds 16 blocks: some of these are lost, by the policy.
    for (int i = 0; i < 20; ++i) (void)rig.device.produce_block();
    drain();
  }
  rig.device.end();
  EXPECT_EQ(sring_wait(rig.ring, -1), 1);
  drain();
  EXPECT_EQ(sring_end_of_stream(rig.ring), 1);
  EXPECT_EQ(sring_get_counters(rig.ring, &run.counters), 0);
  return run;
}

class CApiBatch : public testing::TestWithParam<uint32_t> {};

TEST_P(CApiBatch, AccountsExactlyAsConsumeDoes) {
  const StreamRun batch = run_stream(GetParam(), true);
  const StreamRun callback = run_stream(GetParam(), false);
  const sring_counters& c = batch.counters;
  EXPECT_EQ(c.exact, 1u) << c.missing_samples << " missing, " << c.samples_dropped << " dropped";
  EXPECT_GT(c.blocks, 0u);
  // The ring must have filled, or the policy was never exercised.
  if (GetParam() == SRING_OVERRUN_DROP_NEWEST) {
    EXPECT_GT(c.blocks_dropped, 0u) << "losses must happen for their accounting to be checked";
  } else {
    EXPECT_LT(c.blocks_produced, 60u) << "the device must have stopped on a full ring";
    EXPECT_EQ(c.blocks_dropped, 0u);
  }
  EXPECT_EQ(c.blocks, batch.tally.blocks) << "a block counts when it is released, once";
  EXPECT_EQ(c.samples + c.samples_dropped, c.samples_produced);
  EXPECT_EQ(batch.tally.corrupted, 0u);
  EXPECT_TRUE(batch.tally.in_order);
  // The same schedule by callback: the same counters, field by field.
  EXPECT_EQ(c.blocks, callback.counters.blocks);
  EXPECT_EQ(c.samples, callback.counters.samples);
  EXPECT_EQ(c.missing_blocks, callback.counters.missing_blocks);
  EXPECT_EQ(c.missing_samples, callback.counters.missing_samples);
  EXPECT_EQ(c.blocks_produced, callback.counters.blocks_produced);
  EXPECT_EQ(c.samples_produced, callback.counters.samples_produced);
  EXPECT_EQ(c.blocks_dropped, callback.counters.blocks_dropped);
  EXPECT_EQ(c.samples_dropped, callback.counters.samples_dropped);
  EXPECT_EQ(c.overwritten_while_read, 0u);
  EXPECT_EQ(c.state, callback.counters.state);
  EXPECT_EQ(batch.tally.lost, callback.tally.lost) << "lost_before as the callback is told it";
  EXPECT_EQ(batch.tally.blocks, callback.tally.blocks);
}

// Overwrite-oldest refuses batch mode (sring.h says why); those two do not.
INSTANTIATE_TEST_SUITE_P(Policies, CApiBatch, testing::Values(SRING_OVERRUN_DROP_NEWEST, SRING_OVERRUN_STOP));

TEST(CApiBatchCalls, BlocksAreHeldUntilReleased) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.device.begin();
  for (int i = 0; i < 6; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kWritten);
  sring_block blocks[8];
  ASSERT_EQ(sring_peek(rig.ring, blocks, 4), 4) << sring_last_error(rig.ring);
  for (uint64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(blocks[i].header.sequence, i);
    EXPECT_EQ(blocks[i].header.first_sample, i * rig.device.samples_per_block());
    EXPECT_EQ(blocks[i].header.sample_count, rig.device.samples_per_block());
    EXPECT_EQ(blocks[i].lost_before, 0u);
    EXPECT_EQ(sring::count_pattern_mismatches(blocks[i].samples, blocks[i].header.first_sample,
                                              blocks[i].header.sample_count, 1),
              0u);
  }
  sring_counters counters{};
  ASSERT_EQ(sring_get_counters(rig.ring, &counters), 0);
  EXPECT_EQ(counters.blocks, 0u) << "peeked is not given";

  EXPECT_EQ(sring_wait(rig.ring, -1), 1) << "held blocks are available: no sleep";
  // A smaller peek gives fewer, but all four stay held.
  sring_block first[1];
  ASSERT_EQ(sring_peek(rig.ring, first, 1), 1);
  EXPECT_EQ(first[0].header.sequence, 0u);
  Tally tally;
  EXPECT_EQ(sring_consume(rig.ring, on_block, &tally, SRING_ALL), -EBUSY) << "four are still held";
  EXPECT_EQ(sring_release(rig.ring, 5), -EINVAL);
  EXPECT_NE(std::string(sring_last_error(rig.ring)).find("only 4 are held"), std::string::npos)
      << sring_last_error(rig.ring);
  ASSERT_EQ(sring_release(rig.ring, 1), 0) << sring_last_error(rig.ring);
  ASSERT_EQ(sring_get_counters(rig.ring, &counters), 0);
  EXPECT_EQ(counters.blocks, 1u);
  EXPECT_EQ(counters.samples, rig.device.samples_per_block());

  // The three still held, then the two not peeked yet.
  ASSERT_EQ(sring_peek(rig.ring, blocks, 8), 5);
  for (uint64_t i = 0; i < 5; ++i) EXPECT_EQ(blocks[i].header.sequence, i + 1);
  ASSERT_EQ(sring_release(rig.ring, 5), 0) << sring_last_error(rig.ring);
  EXPECT_EQ(sring_peek(rig.ring, blocks, 8), 0) << "nothing left";
  rig.device.end();
  EXPECT_EQ(sring_end_of_stream(rig.ring), 1);
  ASSERT_EQ(sring_get_counters(rig.ring, &counters), 0);
  EXPECT_EQ(counters.blocks, 6u);
  EXPECT_EQ(counters.exact, 1u);
}

// A loss right after a block still held: lost_before of the new block is
// counted from the held one, as the callback would be told once it is given.
TEST(CApiBatchCalls, LostBeforeCountsFromTheBlocksHeld) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.device.begin();
  const uint64_t per_block = rig.device.samples_per_block();
  for (int i = 0; i < 16; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kWritten);
  sring_block blocks[16];
  ASSERT_EQ(sring_peek(rig.ring, blocks, 16), 16);
  // Held blocks keep their space: the ring is full, these two are lost.
  for (int i = 0; i < 2; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kDropped);
  ASSERT_EQ(sring_release(rig.ring, 15), 0) << sring_last_error(rig.ring);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kWritten);
  ASSERT_EQ(sring_peek(rig.ring, blocks, 16), 4) << "the one held, then three new";
  EXPECT_EQ(blocks[0].header.sequence, 15u);
  EXPECT_EQ(blocks[0].lost_before, 0u);
  EXPECT_EQ(blocks[1].header.sequence, 18u);
  EXPECT_EQ(blocks[1].lost_before, 2 * per_block) << "the two dropped after the held block 15";
  EXPECT_EQ(blocks[2].lost_before, 0u);
  ASSERT_EQ(sring_release(rig.ring, 4), 0) << sring_last_error(rig.ring);
  rig.device.end();
  ASSERT_EQ(sring_end_of_stream(rig.ring), 1);
  sring_counters counters{};
  ASSERT_EQ(sring_get_counters(rig.ring, &counters), 0);
  EXPECT_EQ(counters.blocks, 19u);
  EXPECT_EQ(counters.missing_samples, 2 * per_block);
  EXPECT_EQ(counters.exact, 1u);
}

TEST(CApiBatchCalls, MisuseIsAnErrorThatSaysWhy) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.device.begin();
  for (int i = 0; i < 4; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kWritten);
  sring_block blocks[4];
  EXPECT_EQ(sring_release(rig.ring, 1), -EINVAL) << "nothing peeked";
  EXPECT_NE(std::string(sring_last_error(rig.ring)).find("only 0 are held"), std::string::npos)
      << sring_last_error(rig.ring);
  EXPECT_EQ(sring_peek(rig.ring, nullptr, 4), -EINVAL);
  EXPECT_EQ(sring_peek(rig.ring, nullptr, 0), 0) << "no room asked for: nothing given, nothing held";
  EXPECT_EQ(sring_peek(rig.ring, blocks, 0), 0);
  EXPECT_EQ(sring_release(rig.ring, 0), 0);

  ASSERT_EQ(sring_peek(rig.ring, blocks, 3), 3);
  EXPECT_EQ(sring_release(rig.ring, 4), -EINVAL) << "more than peeked";
  EXPECT_NE(std::string(sring_last_error(rig.ring)).find("4 blocks released, but only 3 are held"),
            std::string::npos)
      << sring_last_error(rig.ring);
  Tally tally;
  EXPECT_EQ(sring_consume(rig.ring, on_block, &tally, SRING_ALL), -EBUSY) << "consume with blocks held";
  EXPECT_NE(std::string(sring_last_error(rig.ring)).find("3 blocks from sring_peek() are still held"),
            std::string::npos)
      << sring_last_error(rig.ring);
  EXPECT_EQ(tally.blocks, 0u);
  sring_config config{};
  EXPECT_EQ(sring_configure(rig.ring, &config), -EBUSY);
  EXPECT_EQ(sring_reset(rig.ring), -EBUSY);

  // A failed release released nothing: all three are still held.
  ASSERT_EQ(sring_release(rig.ring, 2), 0) << sring_last_error(rig.ring);
  EXPECT_EQ(sring_release(rig.ring, 2), -EINVAL) << "one is left";
  ASSERT_EQ(sring_release(rig.ring, 1), 0) << sring_last_error(rig.ring);
  EXPECT_EQ(sring_consume(rig.ring, on_block, &tally, SRING_ALL), 1) << "all released: consume gives the rest";
  EXPECT_EQ(tally.next_sequence, 4u);
  EXPECT_EQ(sring_release(rig.ring, 1), -EINVAL) << "consume holds nothing";
}

TEST(CApiBatchCalls, OverwriteOldestRefusesBatchMode) {
  Rig rig(SRING_OVERRUN_OVERWRITE_OLDEST);
  rig.device.begin();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kWritten);
  sring_block blocks[4];
  EXPECT_EQ(sring_peek(rig.ring, blocks, 4), -EOPNOTSUPP);
  EXPECT_NE(std::string(sring_last_error(rig.ring)).find("sring_consume()"), std::string::npos)
      << sring_last_error(rig.ring);
  EXPECT_EQ(sring_release(rig.ring, 1), -EINVAL) << "nothing was held";
  Tally tally;
  EXPECT_EQ(sring_consume(rig.ring, on_block, &tally, SRING_ALL), 3) << "the callback still works";
}

// A ring file's producer that restarts under overwrite-oldest while blocks
// are held takes them back: the release says so and counts them as lost,
// not given, and the stream still adds up.
TEST(CApiBatchCalls, BlocksTakenBackWhileHeldAreNotGiven) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.device.begin();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kWritten);
  sring_block blocks[16];
  ASSERT_EQ(sring_peek(rig.ring, blocks, 16), 3);
  rig.device.end();
  {
    SimDevice restarted(rig.host, Rig::config(SRING_OVERRUN_OVERWRITE_OLDEST));
    restarted.begin();
    for (int i = 0; i < 20; ++i) ASSERT_EQ(restarted.produce_block(), sring::sim::Produced::kWritten);
    restarted.end();
  }
  EXPECT_EQ(sring_release(rig.ring, 3), -ESTALE);
  EXPECT_NE(std::string(sring_last_error(rig.ring)).find("took back 3 held blocks"), std::string::npos)
      << sring_last_error(rig.ring);
  EXPECT_EQ(sring_release(rig.ring, 1), -EINVAL) << "none stays held";
  Tally tally;
  ASSERT_GT(sring_consume(rig.ring, on_block, &tally, SRING_ALL), 0) << sring_last_error(rig.ring);
  ASSERT_EQ(sring_end_of_stream(rig.ring), 1);
  sring_counters counters{};
  ASSERT_EQ(sring_get_counters(rig.ring, &counters), 0);
  EXPECT_EQ(counters.overwritten_while_read, 3u);
  EXPECT_EQ(counters.blocks, tally.blocks) << "the three taken back are not given";
  EXPECT_EQ(counters.blocks_produced, 23u);
  EXPECT_EQ(counters.exact, 1u) << counters.missing_samples << " missing, " << counters.samples_dropped
                                << " dropped";
}

// ---- Sample formats and channels (ABI 1.4) ----

struct Layout {
  uint32_t format;
  uint32_t channels;
};

std::string layout_name(const testing::TestParamInfo<Layout>& info) {
  std::string name = sring_format_name(info.param.format);
  for (char& c : name) {
    if (c == '-') c = '_';
  }
  return name + "_x" + std::to_string(info.param.channels);
}

template <typename T>
T read_value(const void* payload, uint64_t index) {
  T value;
  std::memcpy(&value, static_cast<const unsigned char*>(payload) + index * sizeof(T), sizeof(T));
  return value;
}

// Element e of the stream (docs/abi.md): its 16-bit base value, from
// sring_pattern.h's one-channel pattern of ABI 1.0 alone.
int16_t base(uint64_t element, uint32_t seed) { return static_cast<int16_t>(sring_pattern_sample(element, seed)); }
uint16_t ubase(uint64_t element, uint32_t seed) { return sring_pattern_sample(element, seed); }
float scaled(uint64_t element, uint32_t seed) { return static_cast<float>(base(element, seed)) / 32768.0f; }

// Values of the block, read through struct sring_block as a C caller
// would (its payload as the format's type), that are not the pattern. The
// expected values are computed here from the base pattern, with the FPU
// for the floats: independent of ringlib's verifier and of the
// simulator's sring_pattern_fill_format().
uint64_t wrong_values(const sring_block& b, uint32_t seed) {
  uint64_t wrong = 0;
  const uint64_t values = b.frames * b.channels;  // samples: one per channel per frame
  for (uint64_t v = 0; v < values; ++v) {
    const uint64_t frame_first = b.header.first_sample * b.channels;
    const uint64_t e = frame_first + v;  // element of a real sample
    bool ok = false;
    switch (b.format) {
      case SRING_FMT_U8: ok = read_value<uint8_t>(b.payload, v) == ubase(e, seed) >> 8; break;
      case SRING_FMT_S8: ok = read_value<int8_t>(b.payload, v) == static_cast<int8_t>(ubase(e, seed) >> 8); break;
      case SRING_FMT_U16: ok = read_value<uint16_t>(b.payload, v) == ubase(e, seed); break;
      case SRING_FMT_S16: ok = read_value<int16_t>(b.payload, v) == base(e, seed); break;
      case SRING_FMT_S32:
        ok = read_value<int32_t>(b.payload, v) ==
             static_cast<int32_t>(uint32_t{ubase(e, seed)} << 16 | ubase(e, seed));
        break;
      case SRING_FMT_F32: ok = read_value<float>(b.payload, v) == scaled(e, seed); break;
      case SRING_FMT_CS16:  // I, Q: elements 2v, 2v + 1 of the frame's run
        ok = read_value<int16_t>(b.payload, 2 * v) == base(2 * e, seed) &&
             read_value<int16_t>(b.payload, 2 * v + 1) == base(2 * e + 1, seed);
        break;
      case SRING_FMT_CF32:
        ok = read_value<float>(b.payload, 2 * v) == scaled(2 * e, seed) &&
             read_value<float>(b.payload, 2 * v + 1) == scaled(2 * e + 1, seed);
        break;
      case SRING_FMT_SIM_PACKED12: {  // two in three bytes, from the block's first
        const auto* bytes = static_cast<const unsigned char*>(b.payload) + v / 2 * 3;
        const uint32_t got = v % 2 == 0 ? bytes[0] | (bytes[1] & 0xfu) << 8 : bytes[1] >> 4 | uint32_t{bytes[2]} << 4;
        ok = got == ubase(e, seed) >> 4u;
        break;
      }
      default: break;
    }
    wrong += ok ? 0 : 1;
  }
  return wrong;
}

// Bits of one sample of one channel: the standard formats' and the
// simulated devices' own 12-bit packed one.
uint32_t layout_bits(uint32_t format) {
  return format == SRING_FMT_SIM_PACKED12 ? SRING_FMT_SIM_PACKED12_BITS : sring_format_bits(format);
}

struct LayoutTally {
  uint64_t blocks = 0;
  uint64_t frames = 0;
  uint64_t wrong = 0;
  uint64_t lost = 0;
  uint64_t next_frame = 0;  // first_sample the next block must have, less what was lost
  bool contiguous = true;   // first_sample == previous end + lost_before, every block
  uint64_t bad_descriptions = 0;
  Layout expected{};
  uint32_t block_bytes = 0;
};

// Everything struct sring_block says of a block, against the configuration.
void tally_layout_block(LayoutTally& t, const sring_block& b) {
  const uint32_t bits = layout_bits(t.expected.format);
  const uint64_t frame_bits = uint64_t{t.expected.channels} * bits;
  const bool described =
      b.format == t.expected.format && b.channels == t.expected.channels && b.bits_per_sample == bits && bits != 0 &&
      b.frames == b.header.sample_count && b.frames == (t.block_bytes - SRING_BLOCK_HEADER_SIZE) * 8 / frame_bits &&
      b.payload_bytes == (b.frames * frame_bits + 7) / 8 &&
      b.payload_bytes <= b.header.total_bytes - SRING_BLOCK_HEADER_SIZE && b.header.channels == b.channels &&
      b.header.bits_per_sample == bits && b.header.sample_format == b.format && b.reserved0 == 0 &&
      reinterpret_cast<uintptr_t>(b.payload) % SRING_BLOCK_ALIGN == 0 &&
      // The 16-bit view only where the values are 16-bit, and then the payload.
      (b.format == SRING_FMT_U16 || b.format == SRING_FMT_S16 ? static_cast<const void*>(b.samples) == b.payload
                                                              : b.samples == nullptr);
  t.bad_descriptions += described ? 0 : 1;
  t.contiguous &= b.header.first_sample == t.next_frame + b.lost_before;
  t.next_frame = b.header.first_sample + b.frames;
  t.wrong += wrong_values(b, 1);
  t.lost += b.lost_before;
  t.frames += b.frames;
  ++t.blocks;
}

int tally_layout_view(const sring_block* block, void* user) {
  tally_layout_block(*static_cast<LayoutTally*>(user), *block);
  return 0;
}

class CApiLayouts : public testing::TestWithParam<Layout> {};

// Three rounds of more blocks than the ring holds (drop-newest: some are
// lost), drained by callback or in batches, then the end of the stream:
// every value read in place is the pattern, every block is described as
// configured, and the accounting is exact.
TEST_P(CApiLayouts, EveryValueReadInPlaceAndEverySampleAccounted) {
  const Layout layout = GetParam();
  for (const bool batch : {false, true}) {
    SCOPED_TRACE(batch ? "sring_peek" : "sring_consume_blocks");
    Rig rig(Rig::config(SRING_OVERRUN_DROP_NEWEST, layout.format, layout.channels));
    ASSERT_NE(rig.ring, nullptr);
    LayoutTally tally;
    tally.expected = layout;
    tally.block_bytes = 4096;
    rig.device.begin();
    auto drain = [&] {
      if (!batch) {
        ASSERT_GE(sring_consume_blocks(rig.ring, tally_layout_view, &tally, SRING_ALL), 0) << sring_last_error(rig.ring);
        return;
      }
      sring_block blocks[4];
      for (int64_t n; (n = sring_peek(rig.ring, blocks, 4)) != 0;) {
        ASSERT_GT(n, 0) << sring_last_error(rig.ring);
        for (int64_t i = 0; i < n; ++i) tally_layout_block(tally, blocks[i]);
        ASSERT_EQ(sring_release(rig.ring, static_cast<uint64_t>(n)), 0) << sring_last_error(rig.ring);
      }
    };
    for (int round = 0; round < 3; ++round) {
      for (int i = 0; i < 20; ++i) (void)rig.device.produce_block();  // 16 fit
      drain();
    }
    rig.device.end();
    drain();
    ASSERT_EQ(sring_end_of_stream(rig.ring), 1);
    sring_counters c{};
    ASSERT_EQ(sring_get_counters(rig.ring, &c), 0);
    EXPECT_EQ(tally.bad_descriptions, 0u) << "blocks whose struct sring_block is not the configured layout";
    EXPECT_EQ(tally.wrong, 0u) << "values that are not the pattern";
    EXPECT_TRUE(tally.contiguous) << "first_sample counts frames, lost_before too";
    EXPECT_GT(c.samples_dropped, 0u) << "losses must happen for their accounting to be checked";
    EXPECT_EQ(c.blocks, tally.blocks);
    EXPECT_EQ(c.samples, tally.frames) << "counters count frames";
    // Missing: before the blocks given, and after the last one (the last
    // round's drops).
    EXPECT_EQ(c.missing_samples, tally.lost + (c.samples_produced - tally.next_frame));
    EXPECT_EQ(c.samples + c.samples_dropped, c.samples_produced);
    EXPECT_EQ(c.samples_produced, c.blocks_produced * ((4096 - SRING_BLOCK_HEADER_SIZE) * 8 /
                                                       (uint64_t{layout.channels} * layout_bits(layout.format))));
    EXPECT_EQ(c.exact, 1u) << c.missing_samples << " missing, " << c.samples_dropped << " dropped";
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, CApiLayouts,
                         testing::Values(Layout{SRING_FMT_U8, 1}, Layout{SRING_FMT_S32, 1}, Layout{SRING_FMT_CS16, 2},
                                         Layout{SRING_FMT_CF32, 4}, Layout{SRING_FMT_S8, 3},
                                         Layout{SRING_FMT_F32, 2}, Layout{SRING_FMT_S16, 3},
                                         Layout{SRING_FMT_U16, 1}, Layout{SRING_FMT_SIM_PACKED12, 3}),
                         layout_name);

// Code written for ABI 1.0 reads samples as header->sample_count 16-bit
// values: on a complex ring it gets NULL, not 32-bit data misread; on a
// 16-bit ring of several channels it gets the interleaved values.
TEST(CApiLayoutCalls, OldCallbackGetsSamplesOnlyFor16BitFormats) {
  struct Seen {
    uint64_t blocks = 0;
    uint64_t with_samples = 0;
    uint64_t wrong = 0;
  };
  auto on_old_block = [](const sring_block_header* header, const uint16_t* samples, uint64_t, void* user) {
    auto* seen = static_cast<Seen*>(user);
    ++seen->blocks;
    if (samples) {
      ++seen->with_samples;
      const uint64_t values = uint64_t{header->sample_count} * header->channels;
      seen->wrong += sring::count_pattern_mismatches(samples, header->first_sample * header->channels, values, 1);
    }
    return 0;
  };
  {
    Rig rig(Rig::config(SRING_OVERRUN_DROP_NEWEST, SRING_FMT_CS16, 1));
    rig.device.begin();
    for (int i = 0; i < 3; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kWritten);
    Seen seen;
    EXPECT_EQ(sring_consume(rig.ring, on_old_block, &seen, SRING_ALL), 3) << sring_last_error(rig.ring);
    EXPECT_EQ(seen.blocks, 3u);
    EXPECT_EQ(seen.with_samples, 0u) << "cs16: samples is NULL";
  }
  {
    Rig rig(Rig::config(SRING_OVERRUN_DROP_NEWEST, SRING_FMT_U16, 2));
    rig.device.begin();
    for (int i = 0; i < 3; ++i) ASSERT_EQ(rig.device.produce_block(), sring::sim::Produced::kWritten);
    Seen seen;
    EXPECT_EQ(sring_consume(rig.ring, on_old_block, &seen, SRING_ALL), 3) << sring_last_error(rig.ring);
    EXPECT_EQ(seen.with_samples, 3u) << "u16 x 2: samples are its 16-bit values";
    EXPECT_EQ(seen.wrong, 0u);
  }
}

TEST(CApiLayoutCalls, FormatNamesAndParsing) {
  const std::vector<std::pair<uint32_t, std::string>> names = {
      {SRING_FMT_U8, "u8"},   {SRING_FMT_S8, "s8"},     {SRING_FMT_U16, "u16"},   {SRING_FMT_S16, "s16"},
      {SRING_FMT_S32, "s32"}, {SRING_FMT_F32, "f32"},   {SRING_FMT_CS16, "cs16"}, {SRING_FMT_CF32, "cf32"},
      {SRING_FMT_SIM_PACKED12, "sim-packed12"}};
  for (const auto& [format, name] : names) {
    ASSERT_NE(sring_format_name(format), nullptr) << format;
    EXPECT_EQ(std::string(sring_format_name(format)), name);
    uint32_t parsed = 0;
    EXPECT_EQ(sring_parse_format(name.c_str(), &parsed), 0) << name;
    EXPECT_EQ(parsed, format) << name;
  }
  EXPECT_EQ(sring_format_name(0), nullptr);
  EXPECT_EQ(sring_format_name(SRING_FMT_LAST_STANDARD + 1), nullptr);
  EXPECT_EQ(sring_format_name(0x8001), nullptr) << "another device's own format: its driver names it";
  uint32_t parsed = 0;
  EXPECT_EQ(sring_parse_format("0x8001", &parsed), 0);
  EXPECT_EQ(parsed, 0x8001u) << "a device's own format by number";
  for (const char* bad : {"u12", "", "U16", "cs16 ", "0", "0x10000", "complex"}) {
    parsed = 12345;
    EXPECT_EQ(sring_parse_format(bad, &parsed), -EINVAL) << "'" << bad << "'";
    EXPECT_EQ(parsed, 12345u) << "untouched on error: '" << bad << "'";
  }
  (void)sring_parse_format("u12", &parsed);
  EXPECT_NE(std::string(sring_last_error(nullptr)).find("unknown sample format 'u12'"), std::string::npos)
      << sring_last_error(nullptr);
  EXPECT_EQ(sring_parse_format(nullptr, &parsed), -EINVAL);
  EXPECT_EQ(sring_parse_format("u8", nullptr), -EINVAL);
}

TEST(CApiCalls, ErrorsAreNegativeErrnoWithASentence) {
  sring_consumer* ring = nullptr;
  EXPECT_EQ(sring_open("/nonexistent/sring0", &ring), -ENOENT);
  EXPECT_EQ(ring, nullptr);
  EXPECT_NE(std::string(sring_last_error(nullptr)).find("/nonexistent/sring0"), std::string::npos);
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  sring_config config{};
  EXPECT_EQ(sring_configure(rig.ring, &config), -EOPNOTSUPP) << "a ring file is configured by its producer";
  EXPECT_NE(std::string(sring_last_error(rig.ring)).find("producer"), std::string::npos);
  EXPECT_EQ(sring_consume(rig.ring, nullptr, nullptr, SRING_ALL), -EINVAL);
}

}  // namespace
