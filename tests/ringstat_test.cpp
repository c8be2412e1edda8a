// ringstat's logic: rates from counter deltas over real elapsed time,
// resets shown as resets, wrap-around of free-running counters, the sysfs
// reader against a fake sysfs tree, and the ring-file reader; the layout
// (format and channels, "cs16 x 2") shown, MS/s in frames and MB/s in bytes
// of that layout. The Prometheus exporter's collection (ringstat
// --prometheus): families, types, labels and values read from a fake ring at
// each scrape; rings that go and come; the listen address.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tools/prometheus_exporter.hpp"
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
    write_ring("sring0", "running", "0");
    write("sring0", "ring_size", "4194304");
    write("sring0", "samples_produced", "123456");
  }
  // Every file a ring's sysfs directory has before ABI 1.4, each counter = value.
  void write_ring(const std::string& ring, const std::string& state, const std::string& value) {
    write(ring, "state", state);
    for (const char* f : {"ring_size", "head", "tail", "blocks_produced", "samples_produced",
                          "blocks_dropped", "samples_dropped", "overruns", "wakeups", "bad_tails",
                          "high_water", "fill"}) {
      write(ring, f, value);
    }
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

// --- ringstat --prometheus --------------------------------------------------

using prometheus::MetricFamily;
using prometheus::MetricType;

const MetricFamily* find_family(const std::vector<MetricFamily>& families, const std::string& name) {
  for (const auto& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// The value of the series with exactly these labels (ring first), or nullopt.
std::optional<double> value_of(const std::vector<MetricFamily>& families, const std::string& name,
                               const std::vector<prometheus::ClientMetric::Label>& labels) {
  const MetricFamily* f = find_family(families, name);
  if (f == nullptr) return std::nullopt;
  for (const auto& m : f->metric) {
    if (m.label != labels) continue;
    return f->type == MetricType::Counter ? m.counter.value : m.gauge.value;
  }
  return std::nullopt;
}

size_t series_count(const std::vector<MetricFamily>& families) {
  size_t n = 0;
  for (const auto& f : families) n += f.metric.size();
  return n;
}

TEST_F(FakeSysfs, PrometheusFamiliesFromAFakeRing) {
  const std::pair<const char*, const char*> values[] = {
      {"head", "9000"},          {"tail", "1000"},    {"blocks_produced", "70"},
      {"samples_produced", "4000000000"}, {"blocks_dropped", "3"}, {"samples_dropped", "6144"},
      {"overruns", "2"},         {"wakeups", "55"},   {"bad_tails", "1"},
      {"high_water", "65536"},   {"fill", "8000"},    {"sample_format", "7"},
      {"channels", "2"},         {"bits_per_sample", "32"}};
  for (const auto& [file, value] : values) write("sring0", file, value);
  write("sring0", "state", "overrun-stopped");
  const sring::stat::RingCollector collector({}, root_);
  const auto families = collector.Collect();

  // Every counter with the _total suffix, typed counter; the gauges in base units.
  const std::pair<const char*, double> counters[] = {
      {"sring_samples_produced_total", 4e9}, {"sring_samples_dropped_total", 6144},
      {"sring_blocks_produced_total", 70},   {"sring_blocks_dropped_total", 3},
      {"sring_overruns_total", 2},           {"sring_wakeups_total", 55},
      {"sring_bad_tails_total", 1},          {"sring_produced_bytes_total", 9000},
      {"sring_released_bytes_total", 1000}};
  for (const auto& [name, expected] : counters) {
    const MetricFamily* f = find_family(families, name);
    ASSERT_NE(f, nullptr) << name;
    EXPECT_EQ(f->type, MetricType::Counter) << name;
    EXPECT_FALSE(f->help.empty()) << name;
    EXPECT_EQ(value_of(families, name, {{"ring", "sring0"}}), expected) << name;
  }
  const std::pair<const char*, double> gauges[] = {{"sring_fill_bytes", 8000},
                                                   {"sring_ring_size_bytes", 4194304},
                                                   {"sring_high_water_bytes", 65536},
                                                   {"sring_frame_size_bytes", 8}};  // cs16 x 2
  for (const auto& [name, expected] : gauges) {
    const MetricFamily* f = find_family(families, name);
    ASSERT_NE(f, nullptr) << name;
    EXPECT_EQ(f->type, MetricType::Gauge) << name;
    EXPECT_EQ(value_of(families, name, {{"ring", "sring0"}}), expected) << name;
  }
  // "samples" are frames, and HELP says so.
  EXPECT_NE(find_family(families, "sring_samples_dropped_total")->help.find("frame"), std::string::npos);
  EXPECT_NE(find_family(families, "sring_samples_produced_total")->help.find("frame"), std::string::npos);

  // The state as a state set: one series per state, 1 for the current one.
  const MetricFamily* state = find_family(families, "sring_state");
  ASSERT_NE(state, nullptr);
  EXPECT_EQ(state->type, MetricType::Gauge);
  EXPECT_EQ(state->metric.size(), 5u);
  EXPECT_EQ(value_of(families, "sring_state", {{"ring", "sring0"}, {"state", "overrun-stopped"}}), 1.0);
  EXPECT_EQ(value_of(families, "sring_state", {{"ring", "sring0"}, {"state", "running"}}), 0.0);
  EXPECT_EQ(value_of(families, "sring_state", {{"ring", "sring0"}, {"state", "stopped"}}), 0.0);
  double sum = 0;
  for (const auto& m : state->metric) sum += m.gauge.value;
  EXPECT_EQ(sum, 1.0);
  EXPECT_EQ(value_of(families, "sring_ring_info",
                     {{"ring", "sring0"}, {"format", "cs16"}, {"channels", "2"}, {"bits_per_sample", "32"}}),
            1.0);
  EXPECT_EQ(series_count(families), 9u + 4u + 5u + 1u) << "one series per family and ring, five states";

  // Values are read at each scrape, never cached.
  write("sring0", "samples_dropped", "7000");
  write("sring0", "state", "running");
  const auto later = collector.Collect();
  EXPECT_EQ(value_of(later, "sring_samples_dropped_total", {{"ring", "sring0"}}), 7000.0);
  EXPECT_EQ(value_of(later, "sring_state", {{"ring", "sring0"}, {"state", "running"}}), 1.0);
}

TEST_F(FakeSysfs, PrometheusUnknownLayoutAndState) {
  write("sring0", "state", "sleeping");  // from a newer module
  const auto families = sring::stat::RingCollector({"sring0"}, root_).Collect();
  EXPECT_EQ(value_of(families, "sring_ring_info",
                     {{"ring", "sring0"},
                      {"format", "unknown"},
                      {"channels", "unknown"},
                      {"bits_per_sample", "unknown"}}),
            1.0);
  EXPECT_EQ(value_of(families, "sring_frame_size_bytes", {{"ring", "sring0"}}), 2.0) << "as ringstat's rates";
  EXPECT_EQ(value_of(families, "sring_state", {{"ring", "sring0"}, {"state", "sleeping"}}), 1.0);
  EXPECT_EQ(value_of(families, "sring_state", {{"ring", "sring0"}, {"state", "running"}}), 0.0);
}

TEST_F(FakeSysfs, PrometheusRingsThatGoAndCome) {
  write_ring("sring1", "stopped", "5");
  const sring::stat::RingCollector all({}, root_);  // every kernel ring, listed at each scrape
  const sring::stat::RingCollector named({"/dev/sring0"}, root_);
  auto families = all.Collect();
  EXPECT_EQ(value_of(families, "sring_samples_produced_total", {{"ring", "sring0"}}), 123456.0);
  EXPECT_EQ(value_of(families, "sring_samples_produced_total", {{"ring", "sring1"}}), 5.0);

  std::filesystem::remove_all(root_ / "sring0");  // the module removed the ring
  families = all.Collect();
  EXPECT_EQ(value_of(families, "sring_samples_produced_total", {{"ring", "sring0"}}), std::nullopt)
      << "no stale series";
  EXPECT_EQ(value_of(families, "sring_samples_produced_total", {{"ring", "sring1"}}), 5.0);
  for (const auto& f : families) {
    for (const auto& m : f.metric) EXPECT_EQ(m.label.front().value, "sring1") << f.name;
  }
  const auto none = named.Collect();
  EXPECT_EQ(series_count(none), 0u) << "a named ring that is gone is not exported either";

  write_ring("sring0", "running", "0");  // back (the module reloaded)
  write_ring("sring2", "running", "9");  // a new ring
  write("sring3", "state", "running");   // a new one, incomplete: left out, the others stay
  families = all.Collect();
  EXPECT_EQ(value_of(families, "sring_samples_produced_total", {{"ring", "sring0"}}), 0.0);
  EXPECT_EQ(value_of(families, "sring_samples_produced_total", {{"ring", "sring2"}}), 9.0) << "picked up";
  EXPECT_EQ(value_of(families, "sring_samples_produced_total", {{"ring", "sring3"}}), std::nullopt);
  EXPECT_EQ(value_of(named.Collect(), "sring_state", {{"ring", "sring0"}, {"state", "running"}}), 1.0);
}

TEST(Prometheus, ARingFileIsReadAtEachScrapeAndLeftOutWhenGone) {
  auto created = sring::sim::HostRing::create(64 * 1024);
  ASSERT_TRUE(created.has_value());
  std::optional<sring::sim::HostRing> host(std::move(*created));
  host->producer().samples_dropped = 777;
  host->producer().state = SRING_STATE_RUNNING;
  const std::string path = "/proc/self/fd/" + std::to_string(host->fd());
  const sring::stat::RingCollector collector({path}, "/nonexistent");
  EXPECT_EQ(value_of(collector.Collect(), "sring_samples_dropped_total", {{"ring", path}}), 777.0);
  host->producer().samples_dropped = 778;
  EXPECT_EQ(value_of(collector.Collect(), "sring_samples_dropped_total", {{"ring", path}}), 778.0);
  EXPECT_EQ(value_of(collector.Collect(), "sring_ring_size_bytes", {{"ring", path}}), 64.0 * 1024);
  host.reset();  // the producer is gone, and with it the ring file
  EXPECT_EQ(series_count(collector.Collect()), 0u);
}

TEST(Prometheus, ListenAddresses) {
  using sring::stat::parse_listen_address;
  struct Case {
    const char* text;
    const char* civetweb;
  } good[] = {{"9732", "9732"},
              {":9732", "9732"},
              {"0", "0"},
              {"127.0.0.1:9732", "127.0.0.1:9732"},
              {"localhost:80", "127.0.0.1:80"},
              {"0.0.0.0:65535", "0.0.0.0:65535"},
              {"[::1]:9732", "[::1]:9732"},
              {"[::]:1", "[::]:1"}};
  for (const auto& c : good) {
    auto address = parse_listen_address(c.text);
    ASSERT_TRUE(address.has_value()) << c.text << ": " << address.error().message;
    EXPECT_EQ(address->civetweb(), c.civetweb) << c.text;
  }
  EXPECT_EQ(parse_listen_address("9732")->display(9732), "0.0.0.0:9732") << "a bare port: every IPv4 address";
  EXPECT_EQ(parse_listen_address("[::1]:0")->display(4000), "[::1]:4000");
  const std::pair<const char*, const char*> bad[] = {
      {"", "the port"},          {"65536", "the port"},          {"9732s", "the port"},
      {"-1", "the port"},        {"127.0.0.1:", "the port"},     {"host:80", "not an IP address"},
      {"1.2.3:80", "not an IP address"}, {"::1:80", "brackets"}, {"[zz]:80", "not an IPv6 address"},
      {"127.0.0.1", "the port"}};
  for (const auto& [text, why] : bad) {
    auto address = parse_listen_address(text);
    ASSERT_FALSE(address.has_value()) << text;
    EXPECT_NE(address.error().message.find(why), std::string::npos) << text << ": " << address.error().message;
    EXPECT_NE(address.error().message.find("[ADDR:]PORT"), std::string::npos) << address.error().message;
  }
}

}  // namespace
