// sring-sim: the user-space simulated sampling device as a process of its own.
// It creates a ring in a memfd, waits for one consumer on a Unix socket, hands
// it the ring and an eventfd (SCM_RIGHTS), waits for "ready", then produces
// for the given time and marks the ring stopped. With --replay FILE the
// device plays a recording (docs/recording.md) back instead of making the
// pattern: its samples, sequence and first_sample, at its rate or --rate,
// until the recording ends (or --duration).
#include <sys/eventfd.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tools/cli.hpp"
#include "tools/version.hpp"
#include "ringlib/error_format.hpp"
#include "sring/detail/barriers.hpp"
#include "sring/sim/fd_passing.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/replay.hpp"
#include "sring/sim/sim_device.hpp"

namespace {

constexpr char kUsage[] =
    "usage: sring-sim --socket PATH [--rate FRAMES_PER_S] [--duration SECONDS]\n"
    "                 [--format NAME] [--channels N]\n"
    "                 [--block-size BYTES] [--ring-size BYTES] [--policy drop|overwrite|stop]\n"
    "                 [--seed N] [--accept-timeout SECONDS] [--pages 4k|huge|auto]\n"
    "       sring-sim --socket PATH --replay FILE [--rate FRAMES_PER_S] [--ring-size BYTES]\n"
    "                 [--policy drop|stop] [--duration SECONDS] [--pages 4k|huge|auto]\n"
    "\n"
    "--format: u8, s8, u16 (the default), s16, s32, f32, cs16, cf32, or the simulator's own\n"
    "12-bit packed sim-packed12 (docs/abi.md, \"Sample formats and channels\"). --channels: 1 (the\n"
    "default) to 256, interleaved in each frame. --rate counts frames (one sample of each\n"
    "channel) per second. A replay takes its format and channels from the recording.\n"
    "\n"
    "--pages: what the ring's data lives in. 4k (the default): 4 KiB pages in the ring file\n"
    "itself, which every consumer written from docs/abi.md maps. huge: 2 MiB hugetlb pages\n"
    "(reserve them in /proc/sys/vm/nr_hugepages; a ring of at least 2 MiB) in a data file of\n"
    "its own, handed over as a third descriptor (ringlib 1.x from this release attaches it;\n"
    "docs/abi.md, \"Ring files\"); an error if they cannot be had. auto: huge when they can be\n"
    "had, else 4k with a line on stderr saying why. sring-sim prints what it used.\n";

int fail(const sring::Error& error) {
  fmt::print(stderr, "sring-sim: {}\n", error.message);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sring;
  std::string socket_path;
  sim::SimConfig config;
  uint64_t ring_size = 4 << 20;
  double duration = 5;
  double accept_timeout = 30;
  std::string replay_path;
  std::optional<uint64_t> rate;
  std::optional<uint32_t> policy;
  std::optional<uint32_t> format;
  std::optional<uint32_t> channels;
  bool duration_given = false;
  sim::RingPages pages = sim::RingPages::k4K;
  cli::Args args(argc, argv);
  while (!args.done()) {
    const std::string_view option = args.take();
    if (option == "--help" || option == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    }
    if (option == "--version") {
      cli::print_version("sring-sim");
      return 0;
    }
    auto value = args.value(option);
    if (!value) return fail(value.error());
    if (option == "--socket") {
      socket_path = std::string(*value);
    } else if (option == "--rate") {
      auto v = cli::parse_count(*value, option);
      if (!v) return fail(v.error());
      rate = *v;
    } else if (option == "--replay") {
      replay_path = std::string(*value);
    } else if (option == "--duration") {
      auto v = cli::parse_seconds(*value, option);
      if (!v) return fail(v.error());
      duration = *v;
      duration_given = true;
    } else if (option == "--block-size") {
      auto v = cli::parse_size(*value, option);
      if (!v) return fail(v.error());
      config.block_bytes = static_cast<uint32_t>(std::min<uint64_t>(*v, UINT32_MAX));
    } else if (option == "--ring-size") {
      auto v = cli::parse_size(*value, option);
      if (!v) return fail(v.error());
      ring_size = *v;
    } else if (option == "--policy") {
      auto v = cli::parse_overrun_policy(*value);
      if (!v) return fail(v.error());
      policy = *v;
    } else if (option == "--format") {
      auto v = parse_format(*value);
      if (!v) {
        return fail(make_error(EINVAL, "--format {}: not a format (u8, s8, u16, s16, s32, f32, cs16, cf32, "
                                       "sim-packed12)",
                               *value));
      }
      format = *v;
    } else if (option == "--channels") {
      auto v = cli::parse_count(*value, option);
      if (!v) return fail(v.error());
      if (*v == 0 || *v > SRING_MAX_CHANNELS) {
        return fail(make_error(EINVAL, "--channels {}: 1 to {}", *value, SRING_MAX_CHANNELS));
      }
      channels = static_cast<uint32_t>(*v);
    } else if (option == "--seed") {
      auto v = cli::parse_count(*value, option);
      if (!v) return fail(v.error());
      config.pattern_seed = static_cast<uint32_t>(*v);
    } else if (option == "--pages") {
      auto v = sim::parse_ring_pages(*value);
      if (!v) return fail(v.error());
      pages = *v;
    } else if (option == "--accept-timeout") {
      auto v = cli::parse_seconds(*value, option);
      if (!v) return fail(v.error());
      accept_timeout = *v;
    } else {
      fmt::print(stderr, "sring-sim: unknown option {}\n{}", option, kUsage);
      return 2;
    }
  }
  if (socket_path.empty()) {
    fmt::print(stderr, "sring-sim: --socket is required\n{}", kUsage);
    return 2;
  }

  std::unique_ptr<sim::RecordingSource> replay;
  if (!replay_path.empty() && (format || channels)) {
    fmt::print(stderr, "sring-sim: --replay plays the recording's format and channels: no --format or --channels\n");
    return 2;
  }
  if (format) config.sample_format = *format;
  if (channels) config.channels = *channels;
  if (!replay_path.empty()) {
    auto source = sim::RecordingSource::open(replay_path);
    if (!source) return fail(source.error());
    replay = std::move(*source);
    config = replay->config();  // the recording's block size, format, seed
    if (!duration_given) duration = 0;  // until the recording ends
    fmt::print(stderr, "sring-sim: replaying {}: {} blocks{}\n", replay_path, replay->file().blocks(),
               replay->file().trailer() ? "" : " (no trailer: cut short)");
  }
  if (rate) config.sample_rate = *rate;
  if (policy) config.overrun_policy = *policy;
  auto ring = sim::HostRing::create(ring_size, "sring", pages);
  if (!ring) return fail(ring.error());
  if (ring->pages() == sim::RingPages::kHuge) {
    fmt::print(stderr, "sring-sim: ring of {} MiB in 2 MiB pages (a data file of its own)\n", ring_size >> 20);
  } else {
    fmt::print(stderr, "sring-sim: ring of {} KiB in 4 KiB pages{}\n", ring_size >> 10,
               ring->fallback_reason().empty() ? "" : fmt::format(" ({})", ring->fallback_reason()));
  }
  if (auto valid = sim::validate_config(config, ring_size); !valid) return fail(valid.error());
  UniqueFd eventfd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!eventfd.valid()) return fail(errno_error("cannot create an eventfd"));
  sim::SimDevice device(*ring, config);
  if (replay) device.set_source(std::move(replay));
  if (auto set = device.set_eventfd(eventfd.get()); !set) return fail(set.error());

  auto listener = sim::listen_unix(socket_path);
  if (!listener) return fail(listener.error());
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(accept_timeout * 1000));
  auto client = sim::accept_unix(listener->get(), timeout);
  ::unlink(socket_path.c_str());
  if (!client) return fail(client.error());
  // The ring file and the eventfd; a ring in 2 MiB pages adds its data file.
  std::vector<int> handed = {ring->fd(), eventfd.get()};
  if (ring->data_fd() >= 0) handed.push_back(ring->data_fd());
  if (auto sent = sim::send_fds(client->get(), handed, 1); !sent) {
    return fail(sent.error());
  }
  auto ready = sim::receive_byte(client->get(), timeout);
  if (!ready) return fail(ready.error());

  if (auto started = device.start(std::chrono::nanoseconds(static_cast<int64_t>(duration * 1e9))); !started) {
    return fail(started.error());
  }
  if (auto ack = sim::send_byte(client->get(), 1); !ack) return fail(ack.error());
  // While it runs, the consumer may ask for an early stop (sim::kStopRequest);
  // any other outcome (it hung up, an error) leaves the device to its duration.
  while (device.running()) {
    auto request = sim::receive_byte(client->get(), std::chrono::milliseconds(50));
    if (request && *request == sim::kStopRequest) {
      device.request_stop();
      break;
    }
    if (!request && request.error().code != ETIMEDOUT) break;
  }
  device.join();
  const auto& p = ring->producer();
  fmt::print(stderr, "sring-sim: produced {} blocks ({} frames), dropped {} blocks ({} frames)\n",
             load_relaxed(p.blocks_produced), load_relaxed(p.samples_produced),
             load_relaxed(p.blocks_dropped), load_relaxed(p.samples_dropped));
  // Wait for the consumer to hang up, so the ring outlives its reading.
  (void)sim::receive_byte(client->get(), std::chrono::milliseconds(60'000));
  return 0;
}
