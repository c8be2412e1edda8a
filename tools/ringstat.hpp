// ringstat's pieces, apart from its main() so they can be tested: reading a
// ring's counters (from sysfs for kernel rings, from the producer page for
// ring files), turning two readings into rates, and formatting a report.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sring/error.hpp"
#include "sring/format.hpp"

namespace sring::stat {

// One reading of a ring's counters.
struct Snapshot {
  std::string state;  // "running", "stopped", "overrun-stopped"
  uint64_t ring_size = 0;
  uint64_t head = 0;
  uint64_t tail = 0;
  uint64_t blocks_produced = 0;
  uint64_t samples_produced = 0;
  uint64_t blocks_dropped = 0;
  uint64_t samples_dropped = 0;
  uint64_t overruns = 0;
  uint64_t wakeups = 0;
  uint64_t bad_tails = 0;
  uint64_t high_water = 0;
  uint64_t fill = 0;         // head - tail, bytes, at most ring_size
  // Format and channels: from the producer page of a ring file, from sysfs
  // (sample_format, channels, bits_per_sample) for a kernel ring; nullopt
  // when sysfs has no such files (a module before ABI 1.4, whose rings are
  // all 16-bit, one channel: rates in bytes count that).
  std::optional<SampleLayout> layout = SampleLayout{};
  std::chrono::steady_clock::time_point taken;
};

// What one interval looked like.
struct Report {
  std::string name;
  Snapshot now;
  double seconds = 0;        // real elapsed time between the two readings
  bool reset = false;        // a counter went backwards: the ring was reset
  bool first = false;        // no earlier reading: no rates yet
  double samples_per_s = 0;  // produced, in frames (one sample of each channel): "MS/s"
  double mb_per_s = 0;       // produced, 1e6 bytes of samples per second
  double consumed_mb_per_s = 0;
  double wakeups_per_s = 0;
  uint64_t new_drops = 0;       // samples dropped during the interval
  uint64_t new_bad_tails = 0;
  uint64_t lag = 0;             // bytes the consumer is behind
};

// Counter difference that knows about resets: a free-running 64-bit counter
// that moved "forward" by more than 2^63 actually went backwards.
std::optional<uint64_t> forward_delta(uint64_t before, uint64_t after);

Report make_report(const std::string& name, const std::optional<Snapshot>& before,
                   const Snapshot& now);

// A source of snapshots for one ring.
class RingSource {
 public:
  virtual ~RingSource() = default;
  virtual const std::string& name() const = 0;
  // An error says the ring is gone (module unloaded, file removed).
  virtual Expected<Snapshot> read() = 0;
};

// "sring0", "/dev/sring0" or a ring file path. sysfs_root is
// /sys/class/sring normally (tests pass another).
Expected<std::unique_ptr<RingSource>> open_source(const std::string& spec,
                                                  const std::string& sysfs_root);
// Every ring the sring class has; empty if the module is not loaded.
std::vector<std::string> list_kernel_rings(const std::string& sysfs_root);

// Presentation.
// "cs16 x 2", "u16", "?" (unknown): the layout column.
std::string layout_label(const std::optional<SampleLayout>& layout);
std::string fill_bar(uint64_t fill, uint64_t size, int width);
std::string format_json(const Report& report);
std::string format_header();
std::string format_line(const Report& report, bool with_bar);

}  // namespace sring::stat
