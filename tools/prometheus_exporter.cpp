#include "tools/prometheus_exporter.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <prometheus/exposer.h>

#include "ringlib/error_format.hpp"
#include "sring/ring.hpp"
#include "sring/unique_fd.hpp"
#include "tools/prometheus_serve.hpp"

namespace sring::stat {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// The producer page's counters, as Prometheus counters (the _total suffix
// says so). Names and meanings: docs/metrics.md; the counters: docs/abi.md.
struct CounterSpec {
  const char* name;
  const char* help;
  uint64_t Snapshot::*field;
};
constexpr CounterSpec kCounters[] = {
    {"sring_samples_produced_total",
     "Samples the device made since the ring's reset, delivered or dropped; a sample is a frame (one sample "
     "of each channel)",
     &Snapshot::samples_produced},
    {"sring_samples_dropped_total",
     "Samples (frames: one sample of each channel) no consumer will ever see: dropped on a full ring or "
     "reclaimed before release",
     &Snapshot::samples_dropped},
    {"sring_blocks_produced_total", "Blocks the device made since the ring's reset, delivered or dropped",
     &Snapshot::blocks_produced},
    {"sring_blocks_dropped_total", "Blocks no consumer will ever see", &Snapshot::blocks_dropped},
    {"sring_overruns_total", "Overrun episodes (runs of consecutive losses)", &Snapshot::overruns},
    {"sring_wakeups_total", "Consumer wake-ups the producer signalled", &Snapshot::wakeups},
    {"sring_bad_tails_total", "Tails the producer refused from the consumer (a consumer bug)",
     &Snapshot::bad_tails},
    {"sring_produced_bytes_total", "Bytes the producer has published into the ring, block headers included "
     "(the head position)", &Snapshot::head},
    {"sring_released_bytes_total", "Bytes the consumer has released back to the producer (the tail position)",
     &Snapshot::tail},
};

struct GaugeSpec {
  const char* name;
  const char* help;
  uint64_t Snapshot::*field;
};
constexpr GaugeSpec kGauges[] = {
    {"sring_fill_bytes", "Bytes in the ring not yet released by the consumer (head - tail)", &Snapshot::fill},
    {"sring_ring_size_bytes", "Size of the ring's data area", &Snapshot::ring_size},
    {"sring_high_water_bytes", "Largest fill the producer has seen since the ring's reset",
     &Snapshot::high_water},
};

// The states a ring can be in (sring_abi.h), each a series of sring_state
// (a state set: the current one is 1, the others 0), named as ringstat shows them.
constexpr uint32_t kStates[] = {SRING_STATE_STOPPED, SRING_STATE_RUNNING, SRING_STATE_OVERRUN_STOPPED,
                                SRING_STATE_FAILED, SRING_STATE_REMOVED};

ClientMetric series(const std::string& ring, std::vector<ClientMetric::Label> more = {}) {
  ClientMetric metric;
  metric.label.push_back({"ring", ring});
  for (auto& label : more) metric.label.push_back(std::move(label));
  return metric;
}

MetricFamily family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

// Why civetweb could not listen: its exception says only "possible problem
// binding to port", so bind the same address ourselves (as civetweb does,
// with SO_REUSEADDR) to get the errno: in use, not an address of this host.
std::string why_cannot_listen(const ListenAddress& address) {
  const bool v6 = address.host.find(':') != std::string::npos;
  UniqueFd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return std::strerror(errno);
  const int one = 1;
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int bound = 0;
  if (v6) {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(address.port);
    ::inet_pton(AF_INET6, address.host.c_str(), &sa.sin6_addr);
    bound = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
  } else {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(address.port);
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    if (!address.host.empty()) ::inet_pton(AF_INET, address.host.c_str(), &sa.sin_addr);
    bound = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof(sa));
  }
  if (bound != 0) return std::strerror(errno);
  return {};
}

}  // namespace

std::vector<MetricFamily> make_families(const std::vector<NamedSnapshot>& rings) {
  std::vector<MetricFamily> families;
  for (const auto& spec : kCounters) {
    auto f = family(spec.name, spec.help, MetricType::Counter);
    for (const auto& r : rings) {
      // A double holds every count below 2^53 exactly (104 days at 1 G
      // frames/s); beyond, it is off by less than one part in 2^53.
      f.metric.emplace_back(series(r.ring)).counter.value = static_cast<double>(r.snapshot.*spec.field);
    }
    families.push_back(std::move(f));
  }
  for (const auto& spec : kGauges) {
    auto f = family(spec.name, spec.help, MetricType::Gauge);
    for (const auto& r : rings) {
      f.metric.emplace_back(series(r.ring)).gauge.value = static_cast<double>(r.snapshot.*spec.field);
    }
    families.push_back(std::move(f));
  }

  auto frame = family("sring_frame_size_bytes",
                      "Bytes of one frame (channels x bits per sample / 8; 2 when the module does not say): "
                      "rate(sring_samples_produced_total) times this is the sample data rate",
                      MetricType::Gauge);
  auto info = family("sring_ring_info",
                     "The ring's sample layout: format, channels and bits per sample (\"unknown\" from a "
                     "module before ABI 1.4); always 1",
                     MetricType::Gauge);
  auto state = family("sring_state",
                      "The ring's state: 1 for the state it is in, 0 for the others", MetricType::Gauge);
  for (const auto& r : rings) {
    const auto& layout = r.snapshot.layout;
    // ringstat's rates assume one 16-bit channel when the module does not say.
    frame.metric.emplace_back(series(r.ring)).gauge.value =
        static_cast<double>(layout.value_or(SampleLayout{}).frame_bits()) / 8;
    std::string format = "unknown", channels = "unknown", bits = "unknown";
    if (layout) {
      format = format_name(layout->format);
      channels = fmt::format("{}", layout->channels);
      bits = fmt::format("{}", layout->bits_per_sample);
    }
    info.metric.emplace_back(series(r.ring, {{"format", format}, {"channels", channels}, {"bits_per_sample", bits}}))
        .gauge.value = 1;
    bool known = false;
    for (const uint32_t s : kStates) {
      const std::string name(state_name(s));
      known = known || name == r.snapshot.state;
      state.metric.emplace_back(series(r.ring, {{"state", name}})).gauge.value = name == r.snapshot.state ? 1 : 0;
    }
    // A state this ringstat does not know (a newer module): still shown.
    if (!known) state.metric.emplace_back(series(r.ring, {{"state", r.snapshot.state}})).gauge.value = 1;
  }
  families.push_back(std::move(state));
  families.push_back(std::move(info));
  families.push_back(std::move(frame));
  return families;
}

RingCollector::RingCollector(std::vector<std::string> specs, std::string sysfs_root)
    : specs_(std::move(specs)), sysfs_root_(std::move(sysfs_root)) {}

std::vector<MetricFamily> RingCollector::Collect() const {
  // Opened afresh for each scrape: a ring file that is gone (its producer
  // exited) cannot be read through a mapping we kept alive, and a kernel
  // ring that is removed or added is seen at once.
  const std::vector<std::string> specs = specs_.empty() ? list_kernel_rings(sysfs_root_) : specs_;
  std::vector<NamedSnapshot> read;
  std::vector<std::pair<std::string, std::string>> failed;
  for (const auto& spec : specs) {
    auto source = open_source(spec, sysfs_root_);
    if (!source) {
      failed.emplace_back(spec, source.error().message);
      continue;
    }
    auto snapshot = (*source)->read();
    if (!snapshot) {
      failed.emplace_back((*source)->name(), snapshot.error().message);
      continue;
    }
    read.push_back({(*source)->name(), std::move(*snapshot)});
  }
  note_changes(read, failed);
  return make_families(read);
}

void RingCollector::note_changes(const std::vector<NamedSnapshot>& read,
                                 const std::vector<std::pair<std::string, std::string>>& failed) const {
  std::set<std::string> now;
  for (const auto& r : read) now.insert(r.ring);
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& ring : now) {
    if (!exported_.count(ring)) fmt::print(stderr, "ringstat: exporting {}\n", ring);
  }
  for (const auto& ring : exported_) {
    if (now.count(ring)) continue;
    std::string why = "no longer listed";
    for (const auto& [name, message] : failed) {
      if (name == ring || name == "/dev/" + ring) why = message;
    }
    fmt::print(stderr, "ringstat: {} is gone, no longer exported ({})\n", ring, why);
  }
  exported_ = std::move(now);
}

std::string ListenAddress::civetweb() const {
  if (host.empty()) return fmt::format("{}", port);
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

std::string ListenAddress::display(uint16_t actual_port) const {
  if (host.empty()) return fmt::format("0.0.0.0:{}", actual_port);
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, actual_port);
  return fmt::format("{}:{}", host, actual_port);
}

Expected<ListenAddress> parse_listen_address(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return make_error(EINVAL, "--prometheus {}: {} (want [ADDR:]PORT: 9732, 127.0.0.1:9732)", text,
                      why);
  };
  ListenAddress address;
  std::string_view port = text;
  if (const size_t colon = text.rfind(':'); colon != std::string_view::npos) {
    std::string_view host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
      in6_addr v6{};
      if (::inet_pton(AF_INET6, std::string(host).c_str(), &v6) != 1) return bad("not an IPv6 address");
    } else if (host == "localhost") {
      host = "127.0.0.1";
    } else if (!host.empty()) {
      in_addr v4{};
      if (::inet_pton(AF_INET, std::string(host).c_str(), &v4) != 1) {
        return bad(host.find(':') != std::string_view::npos
                       ? "an IPv6 address goes in brackets"
                       : "not an IP address (ringstat does not look names up)");
      }
    }
    address.host = host;
  }
  uint32_t value = 0;
  const auto [rest, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || rest != port.data() + port.size() || value > 65535) {
    return bad("the port is a number from 0 to 65535");
  }
  address.port = static_cast<uint16_t>(value);
  return address;
}

bool prometheus_available() { return true; }

int serve_prometheus(const PrometheusOptions& options) {
  const auto fail = [](const std::string& message) {
    fmt::print(stderr, "ringstat: {}\n", message);
    return 1;
  };
  auto address = parse_listen_address(options.listen);
  if (!address) return fail(address.error().message);
  // Rings named on the command line must exist now: a typo is an error, not
  // an empty exporter. Afterwards they may come and go.
  for (const auto& spec : options.specs) {
    auto source = open_source(spec, options.sysfs_root);
    if (!source) return fail(source.error().message);
    if (auto first = (*source)->read(); !first) return fail(first.error().message);
  }

  // The server's threads inherit this mask, so SIGINT and SIGTERM come to
  // sigwait() below and not to a handler in one of them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto collector = std::make_shared<RingCollector>(options.specs, options.sysfs_root);
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(address->civetweb());
  } catch (const std::exception& e) {
    std::string why = why_cannot_listen(*address);
    if (why.empty() && address->host.find(':') != std::string::npos) {
      // Debian's civetweb (prometheus-cpp's server) is built without IPv6.
      why = "the HTTP server (civetweb) has no IPv6 support here; give an IPv4 address";
    }
    if (why.empty()) why = e.what();
    return fail(fmt::format("cannot listen on {}: {}", address->display(address->port), why));
  }
  exposer->RegisterCollectable(collector);
  const std::vector<int> ports = exposer->GetListeningPorts();
  const uint16_t port = ports.empty() ? address->port : static_cast<uint16_t>(ports.front());
  // The one line on stdout: scripts (and tests, with port 0) read the port here.
  fmt::print("ringstat: serving Prometheus metrics on http://{}/metrics\n", address->display(port));
  std::fflush(stdout);
  if (options.specs.empty() && list_kernel_rings(options.sysfs_root).empty()) {
    fmt::print(stderr, "ringstat: no sring rings yet (is the sring module loaded?); "
                       "exporting them when they appear\n");
  }

  int signal = 0;
  sigwait(&signals, &signal);
  return 0;
}

}  // namespace sring::stat
