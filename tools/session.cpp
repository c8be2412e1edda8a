#include "tools/session.hpp"

#include <sys/eventfd.h>

#include <algorithm>
#include <iterator>
#include <type_traits>

#include <fmt/format.h>

#include "ringlib/error_format.hpp"
#include "sring/format.hpp"
#include "sring/sim/fd_passing.hpp"

namespace sring {

// session.hpp: a moved Session would leave InProcessSim's reference to its
// host_ring behind.
static_assert(!std::is_move_constructible_v<Session> && !std::is_move_assignable_v<Session> &&
              !std::is_copy_constructible_v<Session>);

Expected<bool> parse_source_option(std::string_view option, cli::Args& args, SourceOptions& source) {
  if (option == "--sim") {
    source.kind = Source::kSim;
    return true;
  }
  static constexpr std::string_view kWithValue[] = {"--sim-socket", "--device", "--rate",   "--block-size",
                                                    "--ring-size",  "--policy", "--seed",   "--wait",
                                                    "--format",     "--channels"};
  if (std::find(std::begin(kWithValue), std::end(kWithValue), option) == std::end(kWithValue)) return false;
  auto value = args.value(option);
  if (!value) return value.error();
  if (option == "--sim-socket" || option == "--device") {
    source.kind = option == "--device" ? Source::kDevice : Source::kSimSocket;
    source.path = std::string(*value);
  } else if (option == "--rate") {
    auto v = cli::parse_count(*value, option);
    if (!v) return v.error();
    source.sim.sample_rate = *v;
  } else if (option == "--block-size") {
    auto v = cli::parse_size(*value, option);
    if (!v) return v.error();
    source.sim.block_bytes = static_cast<uint32_t>(std::min<uint64_t>(*v, UINT32_MAX));
  } else if (option == "--ring-size") {
    auto v = cli::parse_size(*value, option);
    if (!v) return v.error();
    source.ring_size = *v;
  } else if (option == "--policy") {
    auto v = cli::parse_overrun_policy(*value);
    if (!v) return v.error();
    source.sim.overrun_policy = *v;
  } else if (option == "--format") {
    auto v = parse_format(*value);
    if (!v) {
      return make_error(EINVAL, "unknown sample format '{}' (u8, s8, u16, s16, s32, f32, cs16, cf32, sim-packed12, "
                                "or a device's own format as a number)",
                        *value);
    }
    source.sim.sample_format = *v;
    source.layout_given = true;
  } else if (option == "--channels") {
    auto v = cli::parse_count(*value, option);
    if (!v) return v.error();
    if (*v == 0 || *v > SRING_MAX_CHANNELS) {
      return make_error(EINVAL, "--channels takes 1 to {}, not {}", SRING_MAX_CHANNELS, *value);
    }
    source.sim.channels = static_cast<uint32_t>(*v);
    source.layout_given = true;
  } else if (option == "--seed") {
    auto v = cli::parse_count(*value, option);
    if (!v) return v.error();
    source.sim.pattern_seed = static_cast<uint32_t>(*v);
  } else {  // --wait
    auto v = parse_wait_strategy(*value);
    if (!v) return make_error(EINVAL, "unknown wait strategy '{}'", *value);
    source.wait = *v;
  }
  return true;
}

Status open_session(const SourceOptions& options, Session& session) {
  switch (options.kind) {
    case Source::kSim: {
      if (auto valid = sim::validate_config(options.sim, options.ring_size); !valid) return valid;
      auto host = sim::HostRing::create(options.ring_size);
      if (!host) return host.error();
      session.host_ring.emplace(std::move(*host));
      auto fd = session.host_ring->duplicate_fd();
      if (!fd) return fd.error();
      auto ring = Ring::attach(std::move(*fd), Ring::Access::kConsumer);
      if (!ring) return ring.error();
      session.ring.emplace(std::move(*ring));
      auto device = std::make_unique<sim::SimDevice>(*session.host_ring, options.sim);
      UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      if (!efd.valid()) return errno_error("cannot create an eventfd");
      if (auto set = device->set_eventfd(efd.get()); !set) return set;
      if (auto use = session.ring->use_eventfd(std::move(efd)); !use) return use;
      session.producer = std::make_unique<InProcessSim>(std::move(device));
      session.description = "simulated device (thread)";
      return ok();
    }
    case Source::kSimSocket: {
      // The sring-sim process made its ring already: asking for another
      // layout here would silently get its own.
      if (options.layout_given) {
        return make_error(EINVAL, "--format and --channels set up --sim and --device; an sring-sim process "
                                  "takes them itself (sring-sim --format NAME --channels N)");
      }
      auto socket = sim::connect_unix(options.path, std::chrono::milliseconds(30'000));
      if (!socket) return socket.error();
      auto handover = sim::receive_ring(socket->get(), nullptr);
      if (!handover) return handover.error();
      auto ring = Ring::attach(std::move(handover->ring), std::move(handover->data), Ring::Access::kConsumer);
      if (!ring) return ring.error();
      session.ring.emplace(std::move(*ring));
      if (auto use = session.ring->use_eventfd(std::move(handover->eventfd)); !use) return use;
      session.producer = std::make_unique<SimProcess>(std::move(*socket));
      session.description = fmt::format("sring-sim process via {}", options.path);
      return ok();
    }
    case Source::kDevice: {
      auto device = Device::open(options.path);
      if (!device) return device.error();
      // Configuration only changes while stopped, and a reset starts the
      // stream at sample 0; both before attaching, so ringlib starts from
      // the reset tail.
      if (auto stopped = device->stop(); !stopped) return stopped;
      if (auto reset = device->reset(); !reset) return reset;
      if (auto configured = device->configure(sim::to_device_config(options.sim)); !configured) return configured;
      auto ring = device->attach();
      if (!ring) return ring.error();
      session.ring.emplace(std::move(*ring));
      if (options.wait != WaitStrategy::kSpin) {
        if (auto efd = session.ring->enable_eventfd(); !efd) return efd;
      }
      session.producer = std::make_unique<KernelDevice>(std::move(*device));
      session.description = fmt::format("device {}", options.path);
      return ok();
    }
    case Source::kNone: break;
  }
  return make_error(EINVAL, "no source");
}


}  // namespace sring
