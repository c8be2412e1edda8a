// The C API against the user-space simulator's ring file: every block given
// in order with its samples in place, the loss accounting exact at the end
// in every policy, a callback that stops early, clear errors.
#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

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
  explicit Rig(uint32_t policy) : host(std::move(*HostRing::create(64 * 1024))), device(host, config(policy)) {
    const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    EXPECT_TRUE(device.set_eventfd(efd).has_value());
    EXPECT_EQ(sring_attach_fd(host.duplicate_fd()->release(), efd, &ring), 0) << sring_last_error(nullptr);
  }
  ~Rig() { sring_close(ring); }
  static SimConfig config(uint32_t policy) {
    SimConfig c;
    c.sample_rate = 1'000'000;
    c.block_bytes = 4096;
    c.overrun_policy = policy;
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
