// sring::NetPublisher / NetSubscriber over inproc sockets, step by step: the
// samples go out in place (zero-copy), ring space comes back only in order
// and only once libzmq let go of every block below, whatever order the
// free callbacks run in; and the accounting over the network is exact.
#include "sring/net.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "sring/consumer.hpp"
#include "sring/ring.hpp"
#include "sring/verify.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"

namespace {

using sring::Consumer;
using sring::NetPattern;
using sring::NetPublisher;
using sring::NetSubscriber;
using sring::Ring;
using sring::sim::HostRing;
using sring::sim::SimConfig;
using sring::sim::SimDevice;

constexpr uint64_t kRingSize = 64 * 1024;
constexpr uint32_t kBlockBytes = 4096;
constexpr uint64_t kBlockSamples = (kBlockBytes - SRING_BLOCK_HEADER_SIZE) / 2;

struct Rig {
  Rig() : host(std::move(*HostRing::create(kRingSize))), device(host, config()) {
    auto fd = host.duplicate_fd();
    ring.emplace(std::move(*Ring::attach(std::move(*fd), Ring::Access::kConsumer)));
    consumer.emplace(*ring);
    device.begin();
  }
  static SimConfig config() {
    SimConfig c;
    c.sample_rate = 1'000'000;  // paced: a full ring drops
    c.block_bytes = kBlockBytes;
    return c;
  }
  void produce(int blocks) {
    for (int i = 0; i < blocks; ++i) (void)device.produce_block();
  }
  HostRing host;
  SimDevice device;
  std::optional<Ring> ring;
  std::optional<Consumer> consumer;
};

// What a receiver holds of one block: both parts, not yet closed.
struct HeldBlock {
  zmq::message_t prefix;
  zmq::message_t samples;
};

HeldBlock receive_held(zmq::socket_t& pull) {
  HeldBlock held;
  EXPECT_TRUE(pull.recv(held.prefix, zmq::recv_flags::none));
  EXPECT_TRUE(held.prefix.more());
  EXPECT_TRUE(pull.recv(held.samples, zmq::recv_flags::none));
  return held;
}

TEST(NetPublisher, ReleasesInOrderOnlyWhatLibzmqLetGo) {
  Rig rig;
  zmq::context_t context;
  auto publisher = NetPublisher::bind(*rig.consumer, context, NetPattern::kPushPull, "inproc://in-order");
  ASSERT_TRUE(publisher.has_value()) << publisher.error().message;
  zmq::socket_t pull(context, ZMQ_PULL);
  pull.connect("inproc://in-order");

  rig.produce(4);
  const uint64_t tail_before = rig.ring->shared_tail();
  auto sent = (*publisher)->pump();
  ASSERT_TRUE(sent.has_value()) << sent.error().message;
  ASSERT_EQ(*sent, 4u);

  std::vector<HeldBlock> held;
  for (int i = 0; i < 4; ++i) held.push_back(receive_held(pull));
  // Zero-copy: over inproc the receiver's samples are the ring's memory.
  for (int i = 0; i < 4; ++i) {
    const auto* ring_samples = reinterpret_cast<const std::byte*>(rig.ring->data()) + tail_before % kRingSize +
                               i * kBlockBytes + SRING_BLOCK_HEADER_SIZE;
    EXPECT_EQ(held[i].samples.data(), static_cast<const void*>(ring_samples)) << "block " << i << " was copied";
    EXPECT_EQ(held[i].samples.size(), kBlockSamples * 2);
  }

  auto reclaim = [&] {
    auto n = (*publisher)->reclaim();
    EXPECT_TRUE(n.has_value());
    return n.value_or(99);
  };
  // libzmq (the receiver) holds all four: nothing is released.
  EXPECT_EQ(reclaim(), 0u);
  EXPECT_EQ(rig.ring->shared_tail(), tail_before);
  // Out of order: block 2 freed first. Block 0 still held below it.
  held[2].samples = zmq::message_t();
  EXPECT_EQ(reclaim(), 0u);
  EXPECT_EQ(rig.ring->shared_tail(), tail_before);
  // Block 0 freed: it alone goes back (1 is still held).
  held[0].samples = zmq::message_t();
  EXPECT_EQ(reclaim(), 1u);
  EXPECT_EQ(rig.ring->shared_tail(), tail_before + kBlockBytes);
  held[3].samples = zmq::message_t();
  EXPECT_EQ(reclaim(), 0u);
  EXPECT_EQ(rig.ring->shared_tail(), tail_before + kBlockBytes);
  // Block 1 freed: 1, 2 and 3 go back together.
  held[1].samples = zmq::message_t();
  EXPECT_EQ(reclaim(), 3u);
  EXPECT_EQ(rig.ring->shared_tail(), tail_before + 4 * kBlockBytes);
  EXPECT_EQ((*publisher)->unreleased(), 0u);
}

// Back-pressure: with no peer a PUSH send is EAGAIN; the publisher keeps the
// block, takes nothing more, the ring fills and the producer drops (counted
// at the ring). Then a worker connects and the rest goes; the worker's
// accounting with the end message is exact.
TEST(NetPublisher, BackPressureDropsAtTheRingAndTheAccountingIsExact) {
  Rig rig;
  zmq::context_t context;
  sring::NetPublisherOptions options;
  options.send_hwm = 4;
  auto publisher = NetPublisher::bind(*rig.consumer, context, NetPattern::kPushPull, "inproc://pressure", options);
  ASSERT_TRUE(publisher.has_value()) << publisher.error().message;

  rig.produce(40);  // 16 fit in the ring
  auto sent = (*publisher)->pump();
  ASSERT_TRUE(sent.has_value());
  EXPECT_EQ(*sent, 0u);  // no peer
  EXPECT_TRUE((*publisher)->backed_up());
  EXPECT_GT(sring::load_relaxed(rig.ring->producer().blocks_dropped), 0u);

  auto subscriber = NetSubscriber::connect(context, NetPattern::kPushPull, "inproc://pressure");
  ASSERT_TRUE(subscriber.has_value()) << subscriber.error().message;
  uint64_t received = 0, corrupted = 0;
  bool ended = false;
  bool device_ended = false;
  for (int round = 0; round < 10000 && !ended; ++round) {
    auto reclaimed = (*publisher)->reclaim();
    ASSERT_TRUE(reclaimed.has_value());
    if (round == 20) rig.produce(10);
    if (round == 40) {
      rig.device.end();
      device_ended = true;
    }
    auto n = (*publisher)->pump();
    ASSERT_TRUE(n.has_value()) << n.error().message;
    if (device_ended && !(*publisher)->backed_up() && *n == 0 && rig.ring->state() != SRING_STATE_RUNNING) {
      auto more = (*publisher)->pump();
      ASSERT_TRUE(more.has_value());
      if (*more == 0) {
        auto peers = (*publisher)->send_end((*publisher)->end_counters(), std::chrono::milliseconds(100));
        ASSERT_TRUE(peers.has_value());
      }
    }
    for (;;) {
      auto got = (*subscriber)->receive(std::chrono::milliseconds(0));
      ASSERT_TRUE(got.has_value()) << got.error().message;
      if (*got == NetSubscriber::Got::kNothing) break;
      if (*got == NetSubscriber::Got::kEnd) {
        ended = true;
        break;
      }
      const sring::NetBlock& block = (*subscriber)->block();
      ++received;
      corrupted += sring::count_pattern_mismatches(block.samples.data(), block.header.first_sample,
                                                   block.header.sample_count, block.pattern_seed);
    }
  }
  ASSERT_TRUE(ended);
  auto accounting = (*subscriber)->finish();
  ASSERT_TRUE(accounting.has_value());
  EXPECT_TRUE(accounting->end.exact()) << "missing " << accounting->end.missing_samples << ", dropped+unsent "
                                       << accounting->end.dropped_samples;
  EXPECT_EQ(accounting->lost_in_transit_samples, 0u);
  EXPECT_GT(accounting->end.dropped_samples, 0u);
  EXPECT_EQ(corrupted, 0u);
  const sring::NetEnd& end = *(*subscriber)->end();
  EXPECT_EQ(end.blocks_produced, 50u);
  EXPECT_EQ(received + end.blocks_dropped + end.blocks_unsent, end.blocks_produced);
  EXPECT_EQ(received, end.blocks_sent);
}

TEST(NetPublisher, BadEndpointIsAClearError) {
  Rig rig;
  zmq::context_t context;
  auto publisher = NetPublisher::bind(*rig.consumer, context, NetPattern::kPubSub, "tcp://no-such-host-x:1");
  ASSERT_FALSE(publisher.has_value());
  EXPECT_NE(publisher.error().message.find("tcp://no-such-host-x:1"), std::string::npos) << publisher.error().message;
  auto subscriber = NetSubscriber::connect(context, NetPattern::kPubSub, "nonsense");
  ASSERT_FALSE(subscriber.has_value());
  EXPECT_NE(subscriber.error().message.find("nonsense"), std::string::npos);
}

}  // namespace
