// The hook between ringstat's main() and its Prometheus exporter.
//
// prometheus-cpp exists only as shared libraries, and the QEMU guest's
// ringstat-static links nothing shared. So main() only declares this
// function, and the binary picks the definition at link time:
// prometheus_exporter.cpp (ringstat) serves the metrics,
// prometheus_unavailable.cpp (ringstat-static) says it cannot.
#pragma once

#include <string>
#include <vector>

namespace sring::stat {

struct PrometheusOptions {
  std::string listen;              // [ADDR:]PORT, as given to --prometheus
  std::vector<std::string> specs;  // RINGs; empty: every kernel ring, listed at each scrape
  std::string sysfs_root;          // /sys/class/sring (tests pass another)
};

// True in a binary that can serve --prometheus.
bool prometheus_available();

// Serves the metrics until SIGINT or SIGTERM; returns the exit status
// (0 after a signal, 1 with a message on stderr when it cannot serve).
int serve_prometheus(const PrometheusOptions& options);

}  // namespace sring::stat
