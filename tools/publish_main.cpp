// sring-publish: take the blocks of a ring and send each one over ZeroMQ,
// the samples in place (docs/streaming.md).
//
//   sring-publish --sim --bind tcp://*:5555 --pattern push    load-balanced workers (sring-subscribe)
//   sring-publish --device /dev/sring0 --bind tcp://*:5555 --pattern pub   monitors
//
// At the end it sends the producer's final counters to every peer and
// prints one "publish:" line of figures. Exit status: 0 done (losses are
// counted, not failures); 2 errors; 1 a peer never took the end of stream.
#include <sys/eventfd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "tools/cli.hpp"
#include "tools/version.hpp"
#include "ringlib/error_format.hpp"
#include "sring/consumer.hpp"
#include "sring/device.hpp"
#include "sring/format.hpp"
#include "sring/net.hpp"
#include "sring/ring.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"

namespace {

using namespace sring;
using Clock = std::chrono::steady_clock;

constexpr char kUsage[] =
    "usage: sring-publish (--sim | --device PATH) --bind ENDPOINT [options]\n"
    "  --pattern push|pub     PUSH to load-balanced workers (default) or PUB to monitors\n"
    "  --rate FRAMES_PER_S    frames (one sample of each channel) per second, k/M/G suffixes\n"
    "                         (default 20M; 0: flat out)\n"
    "  --duration SECONDS     how long to acquire (default 5)\n"
    "  --block-size BYTES     block size, header included (default 8K)\n"
    "  --ring-size BYTES      ring size for --sim (default 4M)\n"
    "  --format NAME          sample format: u8 s8 u16 s16 s32 f32 cs16 cf32 sim-packed12, or a\n"
    "                         device's own as a number (default u16)\n"
    "  --channels N           channels per frame, 1 to 256 (default 1)\n"
    "  --seed N               pattern seed (default 1)\n"
    "  --hwm MESSAGES         send high-water mark per peer (default 1000)\n"
    "  --wait-peers N         wait (up to 30 s) for N peers before starting the device\n"
    "  --drain-timeout SECONDS  after the device stopped, give up on blocks no peer takes (default 10)\n"
    "  --end-timeout SECONDS  keep sending the end of stream until every peer has it (default 10)\n";

struct Options {
  bool sim = false;
  std::string device_path;
  std::string endpoint;
  NetPattern pattern = NetPattern::kPushPull;
  sim::SimConfig sim_config;
  uint64_t ring_size = 4 << 20;
  double duration = 5;
  int hwm = 1000;
  int wait_peers = 0;
  double drain_timeout = 10;
  double end_timeout = 10;
};

Expected<Options> parse_options(int argc, char** argv) {
  Options options;
  cli::Args args(argc, argv);
  while (!args.done()) {
    const std::string_view option = args.take();
    if (option == "--sim") { options.sim = true; continue; }
    auto value = args.value(option);
    if (!value) return value.error();
    auto count = [&]() { return cli::parse_count(*value, option); };
    auto seconds = [&]() { return cli::parse_seconds(*value, option); };
    if (option == "--device") {
      options.device_path = std::string(*value);
    } else if (option == "--bind") {
      options.endpoint = std::string(*value);
    } else if (option == "--pattern") {
      auto v = parse_net_pattern(*value);
      if (!v) return v.error();
      options.pattern = *v;
    } else if (option == "--rate") {
      auto v = count(); if (!v) return v.error();
      options.sim_config.sample_rate = *v;
    } else if (option == "--duration") {
      auto v = seconds(); if (!v) return v.error();
      options.duration = *v;
    } else if (option == "--block-size") {
      auto v = cli::parse_size(*value, option); if (!v) return v.error();
      options.sim_config.block_bytes = static_cast<uint32_t>(std::min<uint64_t>(*v, UINT32_MAX));
    } else if (option == "--ring-size") {
      auto v = cli::parse_size(*value, option); if (!v) return v.error();
      options.ring_size = *v;
    } else if (option == "--seed") {
      auto v = count(); if (!v) return v.error();
      options.sim_config.pattern_seed = static_cast<uint32_t>(*v);
    } else if (option == "--format") {
      auto v = parse_format(*value);
      if (!v) return make_error(EINVAL, "unknown sample format '{}' (u8, s8, u16, s16, s32, f32, cs16, cf32, "
                                        "sim-packed12, or a device's own format as a number)", *value);
      options.sim_config.sample_format = *v;
    } else if (option == "--channels") {
      auto v = count();
      if (!v || *v == 0 || *v > SRING_MAX_CHANNELS) {
        return make_error(EINVAL, "--channels takes 1 to {}", SRING_MAX_CHANNELS);
      }
      options.sim_config.channels = static_cast<uint32_t>(*v);
    } else if (option == "--hwm") {
      auto v = count(); if (!v || *v == 0 || *v > 1'000'000) return make_error(EINVAL, "--hwm takes 1 to 1M");
      options.hwm = static_cast<int>(*v);
    } else if (option == "--wait-peers") {
      auto v = count(); if (!v || *v > 1000) return make_error(EINVAL, "--wait-peers takes 0 to 1000");
      options.wait_peers = static_cast<int>(*v);
    } else if (option == "--drain-timeout") {
      auto v = seconds(); if (!v) return v.error();
      options.drain_timeout = *v;
    } else if (option == "--end-timeout") {
      auto v = seconds(); if (!v) return v.error();
      options.end_timeout = *v;
    } else {
      return make_error(EINVAL, "unknown option {}", option);
    }
  }
  if (options.sim == !options.device_path.empty()) return make_error(EINVAL, "say where from: --sim or --device");
  if (options.endpoint.empty()) return make_error(EINVAL, "say where to send: --bind ENDPOINT (tcp://*:5555)");
  return options;
}

std::chrono::milliseconds to_ms(double seconds) { return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1e3)); }

// The producer: the in-process simulator or a kernel device, as acquire has
// them (acquire's --sim and --device), started after the peers are there.
struct Source {
  std::optional<sim::HostRing> host_ring;
  std::unique_ptr<sim::SimDevice> sim_device;
  std::optional<Device> device;
  std::optional<Ring> ring;

  Status open(const Options& options) {
    if (options.sim) {
      if (auto valid = sim::validate_config(options.sim_config, options.ring_size); !valid) return valid;
      auto host = sim::HostRing::create(options.ring_size);
      if (!host) return host.error();
      host_ring.emplace(std::move(*host));
      auto fd = host_ring->duplicate_fd();
      if (!fd) return fd.error();
      auto attached = Ring::attach(std::move(*fd), Ring::Access::kConsumer);
      if (!attached) return attached.error();
      ring.emplace(std::move(*attached));
      sim_device = std::make_unique<sim::SimDevice>(*host_ring, options.sim_config);
      UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (!efd.valid()) return errno_error("cannot create an eventfd");
      if (auto set = sim_device->set_eventfd(efd.get()); !set) return set;
      return ring->use_eventfd(std::move(efd));
    }
    auto opened = Device::open(options.device_path);
    if (!opened) return opened.error();
    device.emplace(std::move(*opened));
    if (auto stopped = device->stop(); !stopped) return stopped;
    if (auto reset = device->reset(); !reset) return reset;
    if (auto configured = device->configure(sim::to_device_config(options.sim_config)); !configured) {
      return configured;
    }
    auto attached = device->attach();
    if (!attached) return attached.error();
    ring.emplace(std::move(*attached));
    return ring->enable_eventfd();
  }
  Status start(double duration_s) {
    if (sim_device) return sim_device->start(std::chrono::nanoseconds(static_cast<int64_t>(duration_s * 1e9)));
    return device->start();
  }
  Status stop() {
    if (sim_device) {
      sim_device->request_stop();
      return ok();
    }
    return device->stop();
  }
};

int fail(const Error& error) {
  fmt::print(stderr, "sring-publish: {}\n", error.message);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (cli::answered_help_or_version(argc, argv, "sring-publish", kUsage)) return 0;
  auto parsed = parse_options(argc, argv);
  if (!parsed) {
    fmt::print(stderr, "sring-publish: {}\n{}", parsed.error().message, kUsage);
    return 2;
  }
  const Options& options = *parsed;
  // Declared in this order so that they go in reverse: the publisher waits
  // for libzmq to free every block before the context, the consumer and the
  // ring's mapping go.
  Source source;
  if (auto opened = source.open(options); !opened) return fail(opened.error());
  Ring& ring = *source.ring;
  Consumer consumer(ring);
  consumer.expect_start(0, 0);
  zmq::context_t context;
  NetPublisherOptions net_options;
  net_options.send_hwm = options.hwm;
  auto bound = NetPublisher::bind(consumer, context, options.pattern, options.endpoint, net_options);
  if (!bound) return fail(bound.error());
  NetPublisher& publisher = **bound;

  const auto wait_until = Clock::now() + std::chrono::seconds(30);
  while (publisher.poll_peers(std::chrono::milliseconds(50)) < options.wait_peers) {
    if (Clock::now() >= wait_until) {
      return fail(make_error(ETIMEDOUT, "{} of {} peers connected to {} after 30 s", publisher.poll_peers({}),
                             options.wait_peers, options.endpoint));
    }
  }

  const auto started = Clock::now();
  const auto stop_at = started + std::chrono::nanoseconds(static_cast<int64_t>(options.duration * 1e9));
  if (auto start = source.start(options.duration); !start) return fail(start.error());
  bool stop_sent = false;
  auto last_progress = Clock::now();
  for (;;) {
    auto reclaimed = publisher.reclaim();
    if (!reclaimed) return fail(reclaimed.error());
    if (!stop_sent && Clock::now() >= stop_at) {
      if (auto stopped = source.stop(); !stopped) return fail(stopped.error());
      stop_sent = true;
    }
    // State first (acquire), then pump() looks at head: if the device was
    // stopped and nothing is left after that, the stream is over.
    const bool stopped = ring.state() != SRING_STATE_RUNNING;
    auto sent = publisher.pump();
    if (!sent) return fail(sent.error());
    if (*sent > 0 || *reclaimed > 0) {
      last_progress = Clock::now();
      continue;
    }
    if (publisher.backed_up()) {
      // Back-pressure: no peer takes more. The ring fills meanwhile and
      // the producer drops, counted. After the device stopped, a stream
      // nobody takes is given up (counted unsent) so the end goes out.
      if (stopped && Clock::now() - last_progress > to_ms(options.drain_timeout)) {
        auto abandoned = publisher.abandon_rest();
        if (!abandoned) return fail(abandoned.error());
        fmt::print(stderr, "sring-publish: no peer took the last {} blocks for {} s: counted unsent\n", *abandoned,
                   options.drain_timeout);
        break;
      }
      publisher.wait_writable(std::chrono::milliseconds(10));
      continue;
    }
    if (stopped) break;
    // libzmq's free of a sent block signals nothing: while it still holds
    // some, look again after 1 ms rather than 10, or a ring whose every
    // block is in flight would sit idle (the producer dropping) for 10 ms
    // after libzmq let them go (found by bench/net_bench).
    const auto timeout = std::chrono::milliseconds(publisher.unreleased() > 0 ? 1 : 10);
    auto waited = consumer.wait(WaitStrategy::kEventfd, timeout);
    if (!waited) return fail(waited.error());
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  const NetEnd end = publisher.end_counters();
  auto peers_left = publisher.send_end(end, to_ms(options.end_timeout));
  if (!peers_left) return fail(peers_left.error());
  fmt::print("publish: produced_blocks={} produced_samples={} dropped_blocks={} dropped_samples={} "
             "unsent_blocks={} unsent_samples={} sent_blocks={} sent_samples={} peers_left={}\n",
             end.blocks_produced, end.samples_produced, end.blocks_dropped, end.samples_dropped, end.blocks_unsent,
             end.samples_unsent, end.blocks_sent, end.samples_sent, *peers_left);
  fmt::print("publish: {:.1f} MB/s of samples ({}) sent over {:.2f} s\n",
             static_cast<double>(publisher.payload_bytes_sent()) / seconds / 1e6,
             describe(SampleLayout::from_page(ring.producer())), seconds);
  if (end.blocks_sent + end.blocks_unsent + end.blocks_dropped != end.blocks_produced) {
    fmt::print("publish: FAIL: sent + unsent + dropped != produced\n");
    return 1;
  }
  if (*peers_left > 0) {
    fmt::print(stderr, "sring-publish: {} peer(s) never took the end of stream within {} s\n", *peers_left,
               options.end_timeout);
    return 1;
  }
  return 0;
}
