// ringstat --prometheus: every ring's counters, state, fill and layout in
// Prometheus' exposition format (docs/metrics.md), read at each scrape.
// prometheus-cpp serves and formats; this file only says what to export.
#pragma once

#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "sring/error.hpp"
#include "tools/ringstat.hpp"

namespace sring::stat {

// One ring's reading, named as its "ring" label: sring0, or a ring file's path.
struct NamedSnapshot {
  std::string ring;
  Snapshot snapshot;
};

// The metric families for these readings, in a fixed order, with one series
// per ring in each (sring_state: one per ring and state).
std::vector<prometheus::MetricFamily> make_families(const std::vector<NamedSnapshot>& rings);

// Reads the rings at every Collect() (each scrape), so that values are never
// stale: a ring that cannot be read any more is left out, and with no specs
// the kernel rings are listed again each time, so new ones appear.
class RingCollector final : public prometheus::Collectable {
 public:
  // specs: RINGs as ringstat takes them; empty means every kernel ring
  // under sysfs_root.
  RingCollector(std::vector<std::string> specs, std::string sysfs_root);
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  // Says on stderr which rings appeared and went, once per change.
  void note_changes(const std::vector<NamedSnapshot>& read,
                    const std::vector<std::pair<std::string, std::string>>& failed) const;

  std::vector<std::string> specs_;
  std::string sysfs_root_;
  // Scrapes may run concurrently (several server threads): the rings
  // exported last time, for note_changes(), are guarded.
  mutable std::mutex mutex_;
  mutable std::set<std::string> exported_;
};

// --prometheus [ADDR:]PORT.
struct ListenAddress {
  std::string host;  // "" = every IPv4 address; "127.0.0.1"; "::1" (IPv6, if civetweb has it)
  uint16_t port = 0;  // 0: any free port (the one taken is printed)
  // civetweb's listening_ports syntax: "9732", "127.0.0.1:9732", "[::1]:9732".
  std::string civetweb() const;
  // For messages and the URL: "0.0.0.0:9732", "[::1]:9732".
  std::string display(uint16_t actual_port) const;
};
// PORT, :PORT, IPV4:PORT, [IPV6]:PORT or localhost:PORT; addresses are
// literals (no name lookups), the port 0 to 65535.
Expected<ListenAddress> parse_listen_address(std::string_view text);

}  // namespace sring::stat
