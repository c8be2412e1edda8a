// ringstat-static's side of the hook (prometheus_serve.hpp): prometheus-cpp
// is shared libraries only, which a static binary cannot link.
#include <fmt/format.h>

#include "tools/prometheus_serve.hpp"

namespace sring::stat {

bool prometheus_available() { return false; }

int serve_prometheus(const PrometheusOptions& /*options*/) {
  fmt::print(stderr,
             "ringstat: --prometheus is not available in this static build (prometheus-cpp is a shared "
             "library); use the dynamically linked ringstat, or ringstat --json\n");
  return 1;
}

}  // namespace sring::stat
