// ringstat: see at a glance whether acquisition is keeping up.
//
//   ringstat [-i SECONDS] [-c COUNT] [--json] [--once] [RING...]
//   ringstat --prometheus [ADDR:]PORT [RING...]
//
// RING is sring0, /dev/sring0 or a ring file; without any, every ring the
// sring module has. Reads only: sysfs for kernel rings, a read-only mapping
// of the producer page for ring files; never disturbs a consumer.
// --prometheus serves the counters to Prometheus instead (docs/metrics.md).
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "tools/cli.hpp"
#include "tools/prometheus_serve.hpp"
#include "tools/ringstat.hpp"
#include "tools/version.hpp"

namespace {

constexpr char kUsage[] =
    "usage: ringstat [-i SECONDS] [-c COUNT] [--json] [--once] [RING...]\n"
    "       ringstat --prometheus [ADDR:]PORT [RING...]\n"
    "  -i SECONDS   interval between reports (default 1)\n"
    "  -c COUNT     stop after COUNT reports (default: until interrupted)\n"
    "  --json       one JSON object per ring per interval\n"
    "  --once       one report after one interval (same as -c 1)\n"
    "  --prometheus [ADDR:]PORT\n"
    "               serve every ring's counters, state and fill to Prometheus at\n"
    "               http://ADDR:PORT/metrics, read at each scrape, until interrupted. A bare\n"
    "               PORT listens on every IPv4 address; 127.0.0.1:PORT on loopback only;\n"
    "               port 0 takes a free one (printed). Rates are Prometheus' rate() of\n"
    "               the _total counters (docs/metrics.md).\n"
    "  RING         sring0, /dev/sring0 or a ring file (default: all kernel rings;\n"
    "               with --prometheus, listed again at each scrape)\n"
    "  --version    print the version and ABI version\n"
    "Columns: layout is the sample format and channels (\"cs16 x 2\": complex 16-bit, two\n"
    "channels; \"?\" from a module before ABI 1.4). MS/s is millions of frames per second (a\n"
    "frame is one sample of each channel); MB/s is bytes of samples (frames x channels x\n"
    "sample size); out MB/s is what the consumer released.\n";

volatile std::sig_atomic_t interrupted = 0;

void on_signal(int) { interrupted = 1; }

std::string usage() {
  std::string text = kUsage;
  if (!sring::stat::prometheus_available()) {
    text += "This static build has no --prometheus (prometheus-cpp is a shared library).\n";
  }
  return text;
}

int fail(const std::string& message) {
  fmt::print(stderr, "ringstat: {}\n", message);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sring;
  double interval = 1;
  uint64_t count = 0;
  bool json = false;
  std::optional<std::string> prometheus;  // --prometheus [ADDR:]PORT
  bool report_option = false;             // -i, -c, --once or --json given
  std::vector<std::string> specs;
  std::string sysfs_root = "/sys/class/sring";
  if (const char* root = std::getenv("SRING_SYSFS_ROOT")) sysfs_root = root;

  cli::Args args(argc, argv);
  while (!args.done()) {
    const std::string_view option = args.take();
    if (option == "--version") {
      cli::print_version("ringstat");
      return 0;
    }
    if (option == "-h" || option == "--help") {
      fmt::print("{}", usage());
      return 0;
    } else if (option == "--json") {
      json = report_option = true;
    } else if (option == "--once") {
      count = 1;
      report_option = true;
    } else if (option == "--prometheus") {
      auto value = args.value(option);
      if (!value) return fail(value.error().message);
      prometheus = std::string(*value);
    } else if (option == "-i" || option == "-c") {
      report_option = true;
      auto value = args.value(option);
      if (!value) return fail(value.error().message);
      if (option == "-i") {
        auto seconds = cli::parse_seconds(*value, option);
        if (!seconds || *seconds < 0.01) return fail("-i wants at least 0.01 seconds");
        interval = *seconds;
      } else {
        auto n = cli::parse_count(*value, option);
        if (!n || *n == 0) return fail("-c wants a positive count");
        count = *n;
      }
    } else if (!option.empty() && option[0] == '-') {
      fmt::print(stderr, "ringstat: unknown option {}\n{}", option, usage());
      return 2;
    } else {
      specs.emplace_back(option);
    }
  }
  if (prometheus) {
    // A server, not a report: the interval, count and output options do not apply.
    if (report_option) {
      return fail("--prometheus serves until interrupted: no -i, -c, --once or --json with it");
    }
    return stat::serve_prometheus({*prometheus, specs, sysfs_root});
  }
  if (specs.empty()) {
    specs = stat::list_kernel_rings(sysfs_root);
    if (specs.empty()) return fail("no sring rings found (is the sring module loaded?)");
  }

  std::vector<std::unique_ptr<stat::RingSource>> sources;
  std::vector<stat::Snapshot> last;
  for (const auto& spec : specs) {
    auto source = stat::open_source(spec, sysfs_root);
    if (!source) return fail(source.error().message);
    auto first = (*source)->read();
    if (!first) return fail(first.error().message);
    last.push_back(*first);
    sources.push_back(std::move(*source));
  }

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const bool live = !json && ::isatty(STDOUT_FILENO);
  if (!json && !live) fmt::print("{}\n", stat::format_header());
  const auto period = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(interval));
  auto next = std::chrono::steady_clock::now() + period;
  for (uint64_t report = 0; count == 0 || report < count; ++report) {
    while (!interrupted && std::chrono::steady_clock::now() < next) {
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          next - std::chrono::steady_clock::now(), std::chrono::milliseconds(100)));
    }
    if (interrupted) break;
    next += period;
    std::string screen;
    if (live) {
      const std::time_t now = std::time(nullptr);
      char stamp[32];
      std::strftime(stamp, sizeof(stamp), "%H:%M:%S", std::localtime(&now));
      // Home and clear: redraw in place like top.
      screen = fmt::format("\x1b[H\x1b[2Jringstat  {}  every {:.2f} s\n{}\n", stamp, interval,
                           stat::format_header());
    }
    for (size_t i = 0; i < sources.size(); ++i) {
      auto snapshot = sources[i]->read();
      if (!snapshot) {
        std::fputs(screen.c_str(), stdout);
        std::fflush(stdout);
        return fail(snapshot.error().message);
      }
      const stat::Report r = stat::make_report(sources[i]->name(), last[i], *snapshot);
      last[i] = *snapshot;
      if (json) {
        screen += stat::format_json(r) + "\n";
      } else {
        screen += stat::format_line(r, true) + "\n";
      }
    }
    std::fputs(screen.c_str(), stdout);
    std::fflush(stdout);
  }
  return 0;
}
