// Consumer::consume(): every block handed to user code in place, released as
// it goes, every overrun policy handled, and the loss accounting exact at the
// end of the stream. Driven step by step (SimDevice::produce_block()), so
// each case is deterministic.
#include <sys/eventfd.h>

#include <gtest/gtest.h>

#include <bit>
#include <complex>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "sring/consumer.hpp"
#include "sring/detail/barriers.hpp"
#include "sring/format.hpp"
#include "sring/sring_pattern.h"
#include "sring/verify.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"

namespace {

using sring::Block;
using sring::Consumer;
using sring::Ring;
using sring::sim::HostRing;
using sring::sim::Produced;
using sring::sim::SimConfig;
using sring::sim::SimDevice;

constexpr uint64_t kRingSize = 64 * 1024;
constexpr uint32_t kBlockBytes = 4096;
constexpr uint64_t kBlockSamples = (kBlockBytes - SRING_BLOCK_HEADER_SIZE) / 2;

struct Rig {
  explicit Rig(uint32_t policy) : host(std::move(*HostRing::create(kRingSize))), device(host, config(policy)) {
    auto fd = host.duplicate_fd();
    ring.emplace(std::move(*Ring::attach(std::move(*fd), Ring::Access::kConsumer)));
    device.begin();
  }
  static SimConfig config(uint32_t policy) {
    SimConfig c;
    c.sample_rate = 1'000'000;  // paced: a full ring drops (or reclaims, or stops)
    c.block_bytes = kBlockBytes;
    c.overrun_policy = policy;
    return c;
  }
  void produce(int blocks) {
    for (int i = 0; i < blocks; ++i) (void)device.produce_block();
  }
  HostRing host;
  SimDevice device;
  std::optional<Ring> ring;
};

TEST(Consume, EveryBlockInOrderInPlace) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.produce(10);
  auto span = rig.ring->acquire();
  ASSERT_TRUE(span.has_value());
  const auto* begin = reinterpret_cast<const uint16_t*>(span->data);
  const auto* end = reinterpret_cast<const uint16_t*>(span->data + span->bytes);
  Consumer consumer(*rig.ring);
  consumer.expect_start(0, 0);
  std::vector<uint64_t> sequences;
  uint64_t corrupted = 0;
  auto n = consumer.consume([&](const Block& block) {
    sequences.push_back(block.sequence());
    EXPECT_EQ(block.samples().size(), kBlockSamples);
    EXPECT_EQ(block.lost_before(), 0u);
    // In place: a view of the ring's own memory, as the block's own type
    // (u16: a signed view of it is a FormatMismatch, see Formats below).
    EXPECT_GE(block.samples().data(), begin);
    EXPECT_LE(block.samples().data() + block.samples().size(), end);
    EXPECT_EQ(static_cast<const void*>(block.payload().data()), static_cast<const void*>(block.samples().data()));
    EXPECT_EQ(block.payload().size(), block.samples().size_bytes());
    corrupted += sring::count_pattern_mismatches(block.samples().data(), block.first_sample(),
                                                 block.samples().size(), 1);
  });
  ASSERT_TRUE(n.has_value()) << n.error().message;
  EXPECT_EQ(*n, 10u);
  EXPECT_EQ(sequences, (std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(corrupted, 0u);
  EXPECT_EQ(rig.ring->shared_tail(), 10 * kBlockBytes) << "everything delivered is released";
  EXPECT_FALSE(consumer.end_of_stream()) << "running";
  rig.device.end();
  EXPECT_TRUE(consumer.end_of_stream());
  EXPECT_TRUE(consumer.finish().exact());
}

TEST(Consume, AtMostMaxBlocksAndReleasesAsItGoes) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.produce(16);  // a full ring: a consumer catching up after a stall
  Consumer consumer(*rig.ring);
  auto first = consumer.consume([](const Block&) {}, 3);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, 3u);
  EXPECT_EQ(rig.ring->shared_tail(), 3 * kBlockBytes);
  // The rest: space goes back to the producer while the callback works
  // (block by block), not only when the whole backlog is done.
  uint64_t tail_seen_last = 0;
  auto rest = consumer.consume([&](const Block& block) {
    if (block.sequence() == 15) tail_seen_last = rig.ring->shared_tail();
  });
  ASSERT_TRUE(rest.has_value());
  EXPECT_EQ(*rest, 13u);
  EXPECT_GT(tail_seen_last, 3 * kBlockBytes) << "nothing released until the backlog was done";
  EXPECT_EQ(rig.ring->shared_tail(), 16 * kBlockBytes);
}

TEST(Consume, LooksAtHeadOnceAndStopsWhenTheCallbackSaysSo) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.produce(4);
  Consumer consumer(*rig.ring);
  // Blocks that arrive while the callback works wait for the next call: a
  // slow callback under a fast producer still hands control back.
  auto n = consumer.consume([&](const Block&) { rig.produce(1); });
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 4u);
  // A callback that returns false stops after its block, which counts.
  auto stopped = consumer.consume([](const Block& block) { return block.sequence() < 5; });
  ASSERT_TRUE(stopped.has_value());
  EXPECT_EQ(*stopped, 2u) << "blocks 4 and 5; 6 and 7 wait";
  EXPECT_EQ(consumer.counters().blocks, 6u);
}

TEST(Consume, CallbackThatThrowsLosesNothingAndDuplicatesNothing) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.produce(5);
  Consumer consumer(*rig.ring);
  consumer.expect_start(0, 0);
  EXPECT_THROW((void)consumer.consume([](const Block& block) {
    if (block.sequence() == 2) throw std::runtime_error("bad block");
  }),
               std::runtime_error);
  EXPECT_EQ(consumer.counters().blocks, 2u) << "the blocks before the one that threw are delivered";
  EXPECT_EQ(rig.ring->shared_tail(), 2 * kBlockBytes) << "and released; the one that threw is not";
  std::vector<uint64_t> again;
  auto n = consumer.consume([&](const Block& block) { again.push_back(block.sequence()); });
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(again, (std::vector<uint64_t>{2, 3, 4}));
  rig.device.end();
  EXPECT_TRUE(consumer.end_of_stream());
  EXPECT_TRUE(consumer.finish().exact());
}

// A slow consumer under each policy: what it misses is exactly what the
// producer says it lost, also when the losses come last.
class Policies : public testing::TestWithParam<uint32_t> {};

TEST_P(Policies, LossesAccountedExactly) {
  Rig rig(GetParam());
  Consumer consumer(*rig.ring);
  consumer.expect_start(0, 0);
  uint64_t lost_seen = 0;
  auto count = [&](const Block& block) { lost_seen += block.lost_before(); };
  for (int round = 0; round < 3; ++round) {
    rig.produce(20);  // 4 more than fit
    auto n = consumer.consume(count);
    ASSERT_TRUE(n.has_value()) << n.error().message;
  }
  rig.produce(18);  // and losses after the last block delivered
  rig.device.end();
  auto n = consumer.consume(count);
  ASSERT_TRUE(n.has_value());
  ASSERT_TRUE(consumer.end_of_stream());
  const auto end = consumer.finish();
  EXPECT_TRUE(end.exact()) << "missing " << end.missing_samples << ", dropped " << end.dropped_samples;
  const auto producer = consumer.producer_counters();
  EXPECT_EQ(consumer.counters().samples + producer.samples_dropped, producer.samples_produced);
  if (GetParam() == SRING_OVERRUN_STOP) {
    EXPECT_EQ(producer.samples_dropped, 0u) << "the stop policy loses nothing";
    EXPECT_EQ(producer.state, uint32_t{SRING_STATE_OVERRUN_STOPPED});
  } else {
    EXPECT_GT(producer.samples_dropped, 0u);
    EXPECT_GT(lost_seen, 0u);
    EXPECT_EQ(lost_seen, consumer.counters().lost_samples) << "lost_before() adds up to the gaps between blocks";
  }
}

INSTANTIATE_TEST_SUITE_P(Consume, Policies,
                         testing::Values(SRING_OVERRUN_DROP_NEWEST, SRING_OVERRUN_OVERWRITE_OLDEST,
                                         SRING_OVERRUN_STOP));

TEST(Consume, BlockTakenBackWhileReadDoesNotCount) {
  Rig rig(SRING_OVERRUN_OVERWRITE_OLDEST);
  rig.produce(16);
  Consumer consumer(*rig.ring);
  consumer.expect_start(0, 0);
  std::vector<uint64_t> seen;
  auto n = consumer.consume([&](const Block& block) {
    seen.push_back(block.sequence());
    // The producer laps the ring while we read block 0: it takes block 0
    // (and more) back.
    if (block.sequence() == 0) rig.produce(4);
  });
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 0u) << "block 0 was read but taken back: not delivered";
  EXPECT_EQ(consumer.overwritten_while_read(), 1u);
  EXPECT_EQ(consumer.counters().blocks, 0u);
  auto more = consumer.consume([&](const Block& block) { seen.push_back(block.sequence()); });
  ASSERT_TRUE(more.has_value());
  EXPECT_EQ(*more, 16u);
  EXPECT_EQ(seen.front(), 0u);
  EXPECT_EQ(seen[1], 4u) << "the next block after the ones taken back";
  rig.device.end();
  ASSERT_TRUE(consumer.end_of_stream());
  EXPECT_TRUE(consumer.finish().exact());
}

// The pull style: blocks handed out stay held (not released) until done();
// several may be held; done() counts them oldest first.
TEST(Next, HeldBlocksAreNotReleasedUntilDone) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.produce(4);
  Consumer consumer(*rig.ring);
  consumer.expect_start(0, 0);
  std::vector<Block> held;
  for (int i = 0; i < 4; ++i) {
    auto block = consumer.next();
    ASSERT_TRUE(block.has_value()) << block.error().message;
    ASSERT_TRUE(block->has_value());
    EXPECT_EQ((*block)->sequence(), uint64_t(i));
    held.push_back(**block);
  }
  auto none = consumer.next();
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->has_value()) << "four produced, four handed out";
  EXPECT_EQ(consumer.held(), 4u);
  consumer.flush();
  EXPECT_EQ(rig.ring->shared_tail(), 0u) << "nothing done: nothing released";
  EXPECT_EQ(consumer.counters().blocks, 0u);
  auto counted = consumer.done(3);
  ASSERT_TRUE(counted.has_value());
  EXPECT_EQ(*counted, 3u);
  consumer.flush();
  EXPECT_EQ(rig.ring->shared_tail(), held[2].end_position()) << "released through the third block only";
  EXPECT_EQ(consumer.counters().blocks, 3u);
  auto too_many = consumer.done(2);
  ASSERT_FALSE(too_many.has_value()) << "one block is held, not two";
  EXPECT_EQ(too_many.error_code(), std::errc::invalid_argument);
  EXPECT_EQ(consumer.counters().blocks, 3u) << "a refused done() counts nothing";
  auto mixed = consumer.consume([](const Block&) {});
  ASSERT_FALSE(mixed.has_value()) << "consume() while next() holds a block";
  ASSERT_TRUE(consumer.done(1).has_value());
  rig.device.end();
  consumer.flush();
  EXPECT_EQ(rig.ring->shared_tail(), held[3].end_position());
  EXPECT_TRUE(consumer.end_of_stream());
  EXPECT_TRUE(consumer.finish().exact());
}

// hold_from(): done blocks count, but nothing at or past the hold is
// released, however far done() goes; lifting it releases the rest.
TEST(Next, HoldKeepsMemoryThatIsStillRead) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.produce(16);  // the whole ring
  Consumer consumer(*rig.ring);
  consumer.expect_start(0, 0);
  auto first = consumer.next();
  ASSERT_TRUE(first.has_value() && first->has_value());
  consumer.hold_from((*first)->position());  // user code keeps looking at block 0
  ASSERT_TRUE(consumer.done(1).has_value());
  for (int i = 1; i < 16; ++i) {
    auto block = consumer.next();
    ASSERT_TRUE(block.has_value() && block->has_value());
    ASSERT_TRUE(consumer.done(1).has_value());
  }
  consumer.flush();
  EXPECT_EQ(rig.ring->shared_tail(), 0u) << "released past a held block";
  EXPECT_EQ(consumer.counters().blocks, 16u);
  rig.produce(1);
  EXPECT_EQ(consumer.producer_counters().blocks_dropped, 1u) << "the ring is still full";
  // Looking at head again (nothing new) must not release either.
  auto none = consumer.next();
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->has_value());
  consumer.flush();
  EXPECT_EQ(rig.ring->shared_tail(), 0u) << "released past a held block at a refill";
  consumer.hold_from(std::nullopt);
  consumer.flush();
  EXPECT_EQ(rig.ring->shared_tail(), 16 * kBlockBytes);
  rig.device.end();
  EXPECT_TRUE(consumer.end_of_stream());
  EXPECT_TRUE(consumer.finish().exact()) << "the dropped block is counted";
}

// blocks(): the whole stream as a range, waiting when it runs dry, ending at
// the end of the stream, with exact accounting under every policy.
class RangePolicies : public testing::TestWithParam<uint32_t> {};

TEST_P(RangePolicies, WholeStreamWithExactAccounting) {
  HostRing host = std::move(*HostRing::create(kRingSize));
  SimConfig config = Rig::config(GetParam());
  config.sample_rate = 20'000'000;  // faster than this loop under sanitizers: losses
  SimDevice device(host, config);
  auto fd = host.duplicate_fd();
  Ring ring = std::move(*Ring::attach(std::move(*fd), Ring::Access::kConsumer));
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(device.set_eventfd(efd.get()).has_value());
  ASSERT_TRUE(ring.use_eventfd(std::move(efd)).has_value());
  Consumer consumer(ring);
  consumer.expect_start(0, 0);
  ASSERT_TRUE(device.start(std::chrono::milliseconds(150)).has_value());  // then it stops itself
  uint64_t blocks = 0, samples = 0, lost = 0, corrupted = 0, last_sequence = 0;
  for (const Block& block : consumer.blocks()) {
    if (blocks > 0) {
      EXPECT_GT(block.sequence(), last_sequence);
    }
    last_sequence = block.sequence();
    ++blocks;
    samples += block.samples().size();
    lost += block.lost_before();
    if (GetParam() != SRING_OVERRUN_OVERWRITE_OLDEST) {
      corrupted += sring::count_pattern_mismatches(block.samples().data(), block.first_sample(),
                                                   block.samples().size(), config.pattern_seed);
    }
  }
  device.join();
  ASSERT_TRUE(consumer.end_of_stream());
  const auto end = consumer.finish();
  EXPECT_TRUE(end.exact()) << "missing " << end.missing_samples << ", dropped " << end.dropped_samples;
  EXPECT_EQ(corrupted, 0u);
  EXPECT_EQ(blocks, consumer.counters().blocks + consumer.overwritten_while_read());
  const auto producer = consumer.producer_counters();
  EXPECT_EQ(consumer.counters().samples + end.missing_samples, producer.samples_produced);
  if (GetParam() != SRING_OVERRUN_OVERWRITE_OLDEST) {
    EXPECT_EQ(samples, consumer.counters().samples);
    EXPECT_EQ(lost + end.missing_samples - consumer.counters().lost_samples, end.missing_samples);
  }
}

INSTANTIATE_TEST_SUITE_P(Range, RangePolicies,
                         testing::Values(SRING_OVERRUN_DROP_NEWEST, SRING_OVERRUN_OVERWRITE_OLDEST,
                                         SRING_OVERRUN_STOP));

// Leaving the loop early gives the block in hand back: the next consumer
// call starts with it, nothing lost, nothing twice.
TEST(Range, BreakGivesTheCurrentBlockBack) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.produce(6);
  Consumer consumer(*rig.ring);
  consumer.expect_start(0, 0);
  {
    auto range = consumer.blocks();
    for (const Block& block : range) {
      if (block.sequence() == 3) break;
    }
  }
  EXPECT_EQ(consumer.counters().blocks, 3u);
  std::vector<uint64_t> rest;
  ASSERT_TRUE(consumer.consume([&](const Block& b) { rest.push_back(b.sequence()); }).has_value());
  EXPECT_EQ(rest, (std::vector<uint64_t>{3, 4, 5}));
  rig.device.end();
  EXPECT_TRUE(consumer.end_of_stream());
  EXPECT_TRUE(consumer.finish().exact());
}

// A hold at a position the tail has passed releases nothing more: it is not
// read as "far ahead" (the wrap of hold - tail), which let everything go.
TEST(Next, HoldBehindTheTailReleasesNothingMore) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  rig.produce(16);
  Consumer consumer(*rig.ring);
  std::vector<Block> blocks;
  for (int i = 0; i < 2; ++i) {
    auto b = consumer.next();
    ASSERT_TRUE(b.has_value() && b->has_value());
    blocks.push_back(**b);
    ASSERT_TRUE(consumer.done(1).has_value());
  }
  const uint64_t tail = rig.ring->shared_tail();
  ASSERT_GT(tail, blocks[1].position()) << "the release step let block 1 go with block 0";
  consumer.hold_from(blocks[1].position());
  for (int i = 2; i < 8; ++i) {
    auto b = consumer.next();
    ASSERT_TRUE(b.has_value() && b->has_value());
    ASSERT_TRUE(consumer.done(1).has_value());
  }
  consumer.flush();
  EXPECT_EQ(rig.ring->shared_tail(), tail) << "released past a hold behind the tail";
}

// Under overwrite-oldest, held blocks the producer took back stay held:
// done(count) still means the caller's own blocks, and they count as
// overwritten, not delivered.
TEST(Next, OverwriteKeepsHeldBlocksTakenBackUntilDone) {
  Rig rig(SRING_OVERRUN_OVERWRITE_OLDEST);
  rig.produce(2);
  Consumer consumer(*rig.ring);
  auto b0 = consumer.next();
  auto b1 = consumer.next();
  ASSERT_TRUE(b0.has_value() && b0->has_value());
  ASSERT_TRUE(b1.has_value() && b1->has_value());
  rig.produce(16);  // laps the ring: b0 and b1 are taken back
  auto b2 = consumer.next();  // a refill: the tail moved past the held blocks
  ASSERT_TRUE(b2.has_value() && b2->has_value()) << (b2 ? "" : b2.error().message);
  EXPECT_EQ(consumer.held(), 3u) << "three handed out by next(), none done";
  auto counted = consumer.done(3);
  ASSERT_TRUE(counted.has_value()) << counted.error().message;
  EXPECT_EQ(*counted, 1u) << "only the block handed out after the lap counts";
  EXPECT_EQ(consumer.overwritten_while_read(), 2u);
  EXPECT_EQ(consumer.counters().blocks, 1u);
}

// A refill that loses every race with the producer (head more than a ring
// ahead at each look) hands out nothing, and the blocks held from before
// can still be done: what was acquired stays acquired.
TEST(Next, OverwriteLostAcquireRaceKeepsHeldBlocksReleasable) {
  Rig rig(SRING_OVERRUN_OVERWRITE_OLDEST);
  rig.produce(2);
  Consumer consumer(*rig.ring);
  auto b0 = consumer.next();
  auto b1 = consumer.next();
  ASSERT_TRUE(b0.has_value() && b0->has_value());
  ASSERT_TRUE(b1.has_value() && b1->has_value());
  auto& head = rig.host.producer().head;
  const uint64_t real_head = head;
  head = real_head + 2 * kRingSize;  // what a producer lapping between the two loads looks like
  auto none = consumer.next();
  head = real_head;
  ASSERT_TRUE(none.has_value()) << none.error().message;
  EXPECT_FALSE(none->has_value());
  auto counted = consumer.done(1);
  ASSERT_TRUE(counted.has_value()) << counted.error().message;
  EXPECT_EQ(*counted, 1u);
}

// The end of the stream is the state change AND everything up to head
// consumed (docs/abi.md, "End-of-stream rule"): a stopped device's blocks
// still in the ring, or handed out and not done, are not the end yet.
TEST(EndOfStream, NotWhileStoppedWithBlocksLeft) {
  Rig rig(SRING_OVERRUN_DROP_NEWEST);
  Consumer consumer(*rig.ring);
  rig.produce(4);
  rig.device.end();
  ASSERT_NE(rig.ring->state(), uint32_t{SRING_STATE_RUNNING});
  EXPECT_FALSE(consumer.end_of_stream()) << "stopped, but four blocks were never consumed";
  auto two = consumer.consume([](const Block&) {}, 2);
  ASSERT_TRUE(two.has_value());
  ASSERT_EQ(*two, 2u);
  EXPECT_FALSE(consumer.end_of_stream()) << "stopped, but two blocks are left";
  EXPECT_FALSE(consumer.snapshot().end_of_stream);
  std::vector<Block> held;
  for (int i = 0; i < 2; ++i) {
    auto block = consumer.next();
    ASSERT_TRUE(block.has_value() && block->has_value());
    held.push_back(**block);
  }
  EXPECT_FALSE(consumer.end_of_stream()) << "the last blocks are handed out, not done";
  ASSERT_TRUE(consumer.done(2).has_value());
  consumer.flush();
  EXPECT_TRUE(consumer.end_of_stream());
  EXPECT_TRUE(consumer.finish().exact());
  EXPECT_TRUE(consumer.snapshot().exact);
}

// --- Formats and channels: Block::as<T>() ---------------------------------

// The value of element `e` as type T, from docs/abi.md ("The sample
// pattern"), written without sring_pattern_value().
template <typename T>
T documented(uint64_t e, uint32_t seed) {
  const uint16_t u = sring_pattern_sample(e, seed);
  const auto as_float = [](uint16_t base) { return static_cast<float>(static_cast<int16_t>(base)) / 32768.0f; };
  if constexpr (std::is_same_v<T, uint8_t>) return static_cast<uint8_t>(u >> 8);
  else if constexpr (std::is_same_v<T, int8_t>) return static_cast<int8_t>(u >> 8);
  else if constexpr (std::is_same_v<T, uint16_t>) return u;
  else if constexpr (std::is_same_v<T, int16_t>) return static_cast<int16_t>(u);
  else if constexpr (std::is_same_v<T, int32_t>) return static_cast<int32_t>(uint32_t{u} << 16 | u);
  else if constexpr (std::is_same_v<T, float>) return as_float(u);
  else if constexpr (std::is_same_v<T, sring::cs16>) {
    return sring::cs16{static_cast<int16_t>(u), static_cast<int16_t>(sring_pattern_sample(e + 1, seed))};
  } else {
    return std::complex<float>(as_float(u), as_float(sring_pattern_sample(e + 1, seed)));
  }
}

// Each format's one C++ type, from docs/abi.md's table (not format_of(),
// which is under test).
template <typename T>
constexpr uint32_t documented_format() {
  if constexpr (std::is_same_v<T, uint8_t>) return SRING_FMT_U8;
  else if constexpr (std::is_same_v<T, int8_t>) return SRING_FMT_S8;
  else if constexpr (std::is_same_v<T, uint16_t>) return SRING_FMT_U16;
  else if constexpr (std::is_same_v<T, int16_t>) return SRING_FMT_S16;
  else if constexpr (std::is_same_v<T, int32_t>) return SRING_FMT_S32;
  else if constexpr (std::is_same_v<T, float>) return SRING_FMT_F32;
  else if constexpr (std::is_same_v<T, sring::cs16>) return SRING_FMT_CS16;
  else return SRING_FMT_CF32;
}

template <typename... Ts>
struct TypeList {};
using SampleTypes = TypeList<uint8_t, int8_t, uint16_t, int16_t, int32_t, float, sring::cs16, std::complex<float>>;

// as<T>() for the block's own T: frames * channels values in place (its
// data() is the payload's first byte, inside the acquired span), each the
// documented pattern value; for every other T, FormatMismatch.
template <typename T>
void expect_view(const Block& block, const sring::BlockSpan& span, uint32_t seed) {
  if (block.format() != documented_format<T>()) {
    EXPECT_THROW((void)block.as<T>(), sring::FormatMismatch) << sring::format_name(documented_format<T>());
    return;
  }
  const std::span<const T> values = block.as<T>();
  ASSERT_EQ(values.size(), block.frames() * block.channels());
  EXPECT_EQ(static_cast<const void*>(values.data()), static_cast<const void*>(block.payload().data()))
      << "zero-copy: the view is the ring's memory";
  EXPECT_GE(reinterpret_cast<const std::byte*>(values.data()), span.data);
  EXPECT_LE(reinterpret_cast<const std::byte*>(values.data() + values.size()), span.data + span.bytes);
  EXPECT_EQ(values.size_bytes(), block.payload().size());
  const uint32_t components = sring_format_components(block.format());
  const uint64_t first = block.first_sample() * block.channels();
  for (size_t i = 0; i < values.size(); ++i) {
    ASSERT_TRUE(values[i] == documented<T>((first + i) * components, seed)) << "value " << i;
  }
}

template <typename... Ts>
void expect_views(TypeList<Ts...>, const Block& block, const sring::BlockSpan& span, uint32_t seed) {
  (expect_view<Ts>(block, span, seed), ...);
}

struct LayoutRig {
  LayoutRig(uint32_t format, uint32_t channels) : host(std::move(*HostRing::create(kRingSize))), device(host, [&] {
    SimConfig c = Rig::config(SRING_OVERRUN_DROP_NEWEST);
    c.sample_format = format;
    c.channels = channels;
    return c;
  }()) {
    auto fd = host.duplicate_fd();
    ring.emplace(std::move(*Ring::attach(std::move(*fd), Ring::Access::kConsumer)));
    device.begin();
  }
  HostRing host;
  SimDevice device;
  std::optional<Ring> ring;
};

TEST(Formats, AsGivesTheBlocksOwnTypeInPlaceAndRefusesEveryOther) {
  for (uint32_t format = 1; format <= SRING_FMT_LAST_STANDARD; ++format) {
    for (uint32_t channels : {1u, 2u, 4u}) {
      SCOPED_TRACE(sring::format_name(format) + " x " + std::to_string(channels));
      LayoutRig rig(format, channels);
      for (int i = 0; i < 3; ++i) ASSERT_EQ(rig.device.produce_block(), Produced::kWritten);
      auto span = rig.ring->acquire();
      ASSERT_TRUE(span.has_value());
      EXPECT_EQ(rig.ring->layout(), rig.device.layout()) << "the producer page announces the layout";
      Consumer consumer(*rig.ring);
      uint64_t seen = 0;
      auto n = consumer.consume([&](const Block& block) {
        ++seen;
        EXPECT_EQ(block.format(), format);
        EXPECT_EQ(block.channels(), channels);
        EXPECT_EQ(block.layout(), rig.device.layout());
        EXPECT_EQ(block.frames(), rig.device.samples_per_block());
        EXPECT_EQ(block.payload().size(), rig.device.layout().payload_bytes(block.frames()));
        EXPECT_EQ(block.payload().data(), span->data + (block.position() - span->begin) + SRING_BLOCK_HEADER_SIZE)
            << "the payload follows the block's header in the ring";
        expect_views(SampleTypes{}, block, *span, 1);
        // samples(): the stored 16-bit values of u16 and s16 alike (what it
        // was before 1.4), a FormatMismatch for every other format.
        if (format == SRING_FMT_U16 || format == SRING_FMT_S16) {
          EXPECT_EQ(static_cast<const void*>(block.samples().data()), static_cast<const void*>(block.payload().data()));
          EXPECT_EQ(block.samples().size(), block.frames() * channels);
        } else {
          EXPECT_THROW((void)block.samples(), sring::FormatMismatch);
        }
      });
      ASSERT_TRUE(n.has_value()) << n.error().message;
      EXPECT_EQ(seen, 3u);
    }
  }
}

// A device's own format has no C++ type: every as<T>() refuses it, and its
// bytes are still there to move (payload()).
TEST(Formats, ADeviceFormatHasOnlyItsPayload) {
  LayoutRig rig(SRING_FMT_SIM_PACKED12, 3);
  ASSERT_EQ(rig.device.produce_block(), Produced::kWritten);
  auto span = rig.ring->acquire();
  ASSERT_TRUE(span.has_value());
  Consumer consumer(*rig.ring);
  auto n = consumer.consume([&](const Block& block) {
    EXPECT_EQ(block.layout().bits_per_sample, 12u);
    EXPECT_EQ(block.payload().size(), (block.frames() * 3 * 12 + 7) / 8);
    EXPECT_EQ(sring::count_pattern_mismatches(block.payload().data(), block.layout(), block.first_sample(),
                                              block.frames(), 1),
              0u);
    expect_views(SampleTypes{}, block, *span, 1);
    EXPECT_THROW((void)block.samples(), sring::FormatMismatch);
  });
  ASSERT_TRUE(n.has_value()) << n.error().message;
  EXPECT_EQ(*n, 1u);
}

// A block header copy is validated before anything in it is used: a block
// whose total_bytes runs past what was acquired (head), or above the
// largest block a ring may hold, is a protocol error, not a block. The test
// is the producer here: it writes the headers into the ring by hand, each
// bad in one way only.
struct HandWrittenRing {
  explicit HandWrittenRing(uint64_t ring_size) : host(std::move(*HostRing::create(ring_size))) {
    auto fd = host.duplicate_fd();
    ring.emplace(std::move(*Ring::attach(std::move(*fd), Ring::Access::kConsumer)));
  }
  // A well-formed block at `position` but for total_bytes.
  void write_block(uint64_t position, uint32_t total_bytes, uint32_t sample_count) {
    sring_block_header header{};
    header.magic = SRING_BLOCK_MAGIC;
    header.total_bytes = total_bytes;
    header.sample_count = sample_count;
    header.sample_format = SRING_FMT_U16;
    header.bytes_per_sample = 2;
    std::memcpy(host.data() + (position & (host.ring_size() - 1)), &header, sizeof(header));
  }
  void publish(uint64_t head) { sring::store_release(host.producer().head, head); }

  HostRing host;
  std::optional<Ring> ring;
};

void expect_refused(Consumer& consumer, const char* why) {
  auto block = consumer.next();
  ASSERT_FALSE(block.has_value()) << why;
  EXPECT_EQ(block.error_code(), std::errc::protocol_error) << block.error().message;
  EXPECT_NE(block.error().message.find("claims"), std::string::npos) << block.error().message;
}

TEST(HeaderBounds, BlockPastWhatWasAcquiredIsRefused) {
  HandWrittenRing r(kRingSize);
  r.write_block(0, kBlockBytes, kBlockSamples);  // within every limit...
  r.publish(kBlockBytes / 2);                    // ...but head covers half of it
  Consumer consumer(*r.ring);
  expect_refused(consumer, "a block running past head was handed out");
  // The same header, once head covers it, is a block.
  r.publish(kBlockBytes);
  auto block = consumer.next();
  ASSERT_TRUE(block.has_value()) << block.error().message;
  ASSERT_TRUE(block->has_value());
  EXPECT_EQ((*block)->samples().size(), kBlockSamples);
}

TEST(HeaderBounds, BlockAboveTheBlockSizeLimitIsRefused) {
  constexpr uint64_t kBig = 4 * uint64_t{SRING_MAX_BLOCK_BYTES};
  HandWrittenRing r(kBig);
  ASSERT_EQ(r.ring->max_block_bytes(), uint32_t{SRING_MAX_BLOCK_BYTES});
  constexpr uint32_t kTooBig = 2 * SRING_MAX_BLOCK_BYTES;  // a multiple of 64, samples inside it
  r.write_block(0, kTooBig, 1000);
  r.publish(kTooBig);  // all of it acquired
  Consumer consumer(*r.ring);
  expect_refused(consumer, "a block above the block size limit was handed out");
  // At the limit it is a block.
  r.write_block(0, SRING_MAX_BLOCK_BYTES, 1000);
  auto block = consumer.next();
  ASSERT_TRUE(block.has_value()) << block.error().message;
  ASSERT_TRUE(block->has_value());
  EXPECT_EQ((*block)->end_position(), uint64_t{SRING_MAX_BLOCK_BYTES});
}

}  // namespace
