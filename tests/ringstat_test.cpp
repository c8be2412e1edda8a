// ringstat's logic: rates from counter deltas over real elapsed time,
// resets shown as resets, wrap-around of free-running counters, the sysfs
// reader against a fake sysfs tree, and the ring-file reader; the layout
// (format and channels, "cs16 x 2") shown, MS/s in frames and MB/s in bytes
// of that layout.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tools/ringstat.hpp"
#include "sring/sring_pattern.h"
#include "sring/sim/host_ring.hpp"

namespace {

using sring::stat::Snapshot;
using namespace std::chrono_literals;

Snapshot snap(uint64_t samples, uint64_t head, std::chrono::steady_clock::time_point at) {
  Snapshot s;
  s.state = "running";
  s.ring_size = 1 << 20;
  s.samples_produced = samples;
  s.head = head;
  s.tail = head / 2;
  s.fill = head - s.tail;
  s.taken = at;
  return s;
}

TEST(Delta, ForwardWrapAndBackwards) {
  EXPECT_EQ(sring::stat::forward_delta(10, 15), 5u);
  EXPECT_EQ(sring::stat::forward_delta(UINT64_MAX - 1, 3), 5u) << "wrapped past 2^64";
  EXPECT_EQ(sring::stat::forward_delta(15, 10), std::nullopt) << "went backwards";
  EXPECT_EQ(sring::stat::forward_delta(7, 7), 0u);
}

TEST(Report, RatesUseTheRealElapsedTime) {
  const auto t0 = std::chrono::steady_clock::now();
  const Snapshot a = snap(1'000'000, 0, t0);
  Snapshot b = snap(1'000'000 + 10'000'000, 20'000'000, t0 + 500ms);
  b.wakeups = 50;
  b.samples_dropped = 400;
  const auto r = sring::stat::make_report("sring0", a, b);
  EXPECT_FALSE(r.reset);
  EXPECT_DOUBLE_EQ(r.seconds, 0.5);
  EXPECT_DOUBLE_EQ(r.samples_per_s, 20'000'000);
  EXPECT_DOUBLE_EQ(r.mb_per_s, 40.0);
  EXPECT_DOUBLE_EQ(r.consumed_mb_per_s, 20.0);
  EXPECT_DOUBLE_EQ(r.wakeups_per_s, 100);
  EXPECT_EQ(r.new_drops, 400u);
}

// MS/s counts frames; MB/s is frames x channels x sample size.
TEST(Report, RatesInFramesAndBytesOfTheLayout) {
  const auto t0 = std::chrono::steady_clock::now();
  Snapshot a = snap(0, 0, t0);
  Snapshot b = snap(20'000'000, 4096, t0 + 1s);
  a.layout = b.layout = sring::SampleLayout{SRING_FMT_CS16, 2, 32};  // 8 bytes a frame
  const auto r = sring::stat::make_report("sring0", a, b);
  EXPECT_DOUBLE_EQ(r.samples_per_s, 20'000'000);
  EXPECT_DOUBLE_EQ(r.mb_per_s, 160.0);
  const std::string line = sring::stat::format_line(r, false);
  EXPECT_NE(line.find("cs16 x 2"), std::string::npos) << line;
  EXPECT_NE(line.find(" 160.0 "), std::string::npos) << line;
  EXPECT_NE(line.find(" 20.00 "), std::string::npos) << line;
  const std::string json = sring::stat::format_json(r);
  for (const char* field : {"\"format\":\"cs16\"", "\"channels\":2", "\"bits_per_sample\":32", "\"mb_per_s\":160.000"}) {
    EXPECT_NE(json.find(field), std::string::npos) << field << " in " << json;
  }
  EXPECT_NE(sring::stat::format_header().find("layout"), std::string::npos);

  b.layout = sring::SampleLayout{SRING_FMT_SIM_PACKED12, 3, 12};  // 4.5 bytes a frame
  EXPECT_DOUBLE_EQ(sring::stat::make_report("sring0", a, b).mb_per_s, 90.0);
  b.layout.reset();  // a module that does not say: 16-bit, one channel
  const auto unknown = sring::stat::make_report("sring0", a, b);
  EXPECT_DOUBLE_EQ(unknown.mb_per_s, 40.0);
  EXPECT_EQ(sring::stat::layout_label(b.layout), "?");
  EXPECT_NE(sring::stat::format_json(unknown).find("\"format\":null,\"channels\":null"), std::string::npos);
  EXPECT_EQ(sring::stat::layout_label(sring::SampleLayout{}), "u16");
}

TEST(Report, ResetIsNotANegativeRate) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = sring::stat::make_report("sring0", snap(5'000'000, 9'000'000, t0),
                                          snap(1'000, 4096, t0 + 1s));
  EXPECT_TRUE(r.reset);
  EXPECT_EQ(r.samples_per_s, 0);
  EXPECT_EQ(r.mb_per_s, 0);
  EXPECT_NE(sring::stat::format_line(r, false).find("reset"), std::string::npos);
  EXPECT_NE(sring::stat::format_json(r).find("\"reset\":true"), std::string::npos);
}

TEST(Report, CountersNearTheTopOfSixtyFourBits) {
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t high = UINT64_MAX - 4095;
  const auto r = sring::stat::make_report("sring0", snap(high, high, t0),
                                          snap(high + 8192, high + 16384, t0 + 1s));
  EXPECT_FALSE(r.reset);
  EXPECT_DOUBLE_EQ(r.samples_per_s, 8192);
}

TEST(Format, BarAndJsonFields) {
  EXPECT_EQ(sring::stat::fill_bar(0, 100, 10), "[..........]");
  EXPECT_EQ(sring::stat::fill_bar(100, 100, 10), "[##########]");
  EXPECT_EQ(sring::stat::fill_bar(1, 100, 10), "[#.........]") << "any data shows";
  EXPECT_EQ(sring::stat::fill_bar(500, 100, 4), "[####]") << "clamped";
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = sring::stat::make_report("sring0", snap(0, 0, t0), snap(100, 200, t0 + 1s));
  const std::string json = sring::stat::format_json(r);
  for (const char* field : {"\"ring\":\"sring0\"", "\"samples_per_s\":100", "\"state\":\"running\"",
                            "\"fill_bytes\":", "\"samples_dropped\":0", "\"bad_tails\":0",
                            "\"interval_s\":1.000"}) {
    EXPECT_NE(json.find(field), std::string::npos) << field << " in " << json;
  }
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
}

class FakeSysfs : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::path(::testing::TempDir()) / "sring-sysfs";
    std::filesystem::remove_all(root_);
    write("sring0", "state", "running");
    for (const char* f : {"ring_size", "head", "tail", "blocks_produced", "samples_produced",
                          "blocks_dropped", "samples_dropped", "overruns", "wakeups", "bad_tails",
                          "high_water", "fill"}) {
      write("sring0", f, "0");
    }
    write("sring0", "ring_size", "4194304");
    write("sring0", "samples_produced", "123456");
  }
  void write(const std::string& ring, const std::string& file, const std::string& value) {
    std::filesystem::create_directories(root_ / ring);
    std::ofstream(root_ / ring / file) << value << "\n";
  }
  std::filesystem::path root_;
};

TEST_F(FakeSysfs, ReadsEveryFieldAndNoticesADisappearingRing) {
  write("sring10", "state", "stopped");
  write("sring2", "state", "stopped");
  EXPECT_EQ(sring::stat::list_kernel_rings(root_), (std::vector<std::string>{"sring0", "sring2", "sring10"}));
  auto source = sring::stat::open_source("/dev/sring0", root_);
  ASSERT_TRUE(source.has_value()) << source.error().message;
  auto s = (*source)->read();
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ(s->state, "running");
  EXPECT_EQ(s->ring_size, 4194304u);
  EXPECT_EQ(s->samples_produced, 123456u);

  write("sring0", "head", "garbage");
  auto bad = (*source)->read();
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("not a number"), std::string::npos);

  std::filesystem::remove_all(root_ / "sring0");  // module unloaded
  auto gone = (*source)->read();
  ASSERT_FALSE(gone.has_value());
  EXPECT_NE(gone.error().message.find("unloaded"), std::string::npos);
}

TEST_F(FakeSysfs, TheLayoutFromSysfsOrUnknown) {
  auto source = sring::stat::open_source("sring0", root_);
  ASSERT_TRUE(source.has_value()) << source.error().message;
  auto before = (*source)->read();
  ASSERT_TRUE(before.has_value()) << before.error().message;
  EXPECT_FALSE(before->layout.has_value()) << "no sample_format file: a module before ABI 1.4";

  write("sring0", "sample_format", "8");
  write("sring0", "channels", "4");
  write("sring0", "bits_per_sample", "64");
  auto s = (*source)->read();
  ASSERT_TRUE(s.has_value()) << s.error().message;
  ASSERT_TRUE(s->layout.has_value());
  EXPECT_EQ(*s->layout, (sring::SampleLayout{SRING_FMT_CF32, 4, 64}));
  EXPECT_EQ(sring::stat::layout_label(s->layout), "cf32 x 4");

  write("sring0", "bits_per_sample", "16");  // cf32 is 64 bits
  auto bad = (*source)->read();
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("not a valid layout"), std::string::npos) << bad.error().message;
}

TEST_F(FakeSysfs, MissingRingIsAClearError) {
  auto missing = sring::stat::open_source("sring7", root_);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("no such ring: sring7"), std::string::npos);
  auto no_file = sring::stat::open_source("/nonexistent/ring", root_);
  ASSERT_FALSE(no_file.has_value());
}

TEST(FileSource, ReadsAHostRingWithoutDisturbingIt) {
  auto host = sring::sim::HostRing::create(64 * 1024);
  ASSERT_TRUE(host.has_value());
  host->producer().head = 8192;
  host->producer().samples_produced = 4064;
  host->producer().state = SRING_STATE_RUNNING;
  const std::string path = "/proc/self/fd/" + std::to_string(host->fd());
  auto source = sring::stat::open_source(path, "/nonexistent");
  ASSERT_TRUE(source.has_value()) << source.error().message;
  auto s = (*source)->read();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->state, "running");
  EXPECT_EQ(s->fill, 8192u);
  EXPECT_EQ(s->samples_produced, 4064u);
  EXPECT_EQ(host->consumer().tail, 0u);
  EXPECT_EQ(host->consumer().need_wakeup, 0u);
}

TEST(FileSource, TheLayoutFromTheProducerPage) {
  auto host = sring::sim::HostRing::create(64 * 1024);
  ASSERT_TRUE(host.has_value());
  const std::string path = "/proc/self/fd/" + std::to_string(host->fd());
  auto source = sring::stat::open_source(path, "/nonexistent");
  ASSERT_TRUE(source.has_value()) << source.error().message;
  // A 1.3 producer's page: channels and bits 0, one 16-bit channel.
  host->producer().sample_format = SRING_FMT_S16;
  auto old = (*source)->read();
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(sring::stat::layout_label(old->layout), "s16");
  host->producer().sample_format = SRING_FMT_CS16;
  host->producer().channels = 2;
  host->producer().bits_per_sample = 32;
  auto s = (*source)->read();
  ASSERT_TRUE(s.has_value());
  ASSERT_TRUE(s->layout.has_value());
  EXPECT_EQ(*s->layout, (sring::SampleLayout{SRING_FMT_CS16, 2, 32}));
  const auto r = sring::stat::make_report(path, std::nullopt, *s);
  EXPECT_NE(sring::stat::format_line(r, true).find("cs16 x 2"), std::string::npos);
}

}  // namespace
