// Where acquire and sring-record take their blocks from, and how they start
// and stop the producer: the in-process simulated device, an sring-sim
// process, or a kernel device.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "tools/cli.hpp"
#include "sring/device.hpp"
#include "sring/ring.hpp"
#include "sring/sim/fd_passing.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"
#include "sring/unique_fd.hpp"

namespace sring {

enum class Source { kNone, kSim, kSimSocket, kDevice };

struct SourceOptions {
  Source kind = Source::kNone;
  std::string path;  // --sim-socket or --device
  sim::SimConfig sim;
  uint64_t ring_size = 4 << 20;  // --sim
  WaitStrategy wait = WaitStrategy::kEventfd;
  bool layout_given = false;  // --format or --channels: sim.sample_format, sim.channels
};

// The source options acquire and sring-record share: --sim, --sim-socket
// PATH, --device PATH, --rate, --block-size, --ring-size, --policy, --seed,
// --wait, --format, --channels (the last two for --sim and --device, whose
// configuration they set; an sring-sim process has its own). true if `option` is one of them (its value taken from args),
// false if it is not, or an error that names the option.
Expected<bool> parse_source_option(std::string_view option, cli::Args& args, SourceOptions& source);

// The producer side as acquire and sring-record see it: something that started, runs, and
// reports what it dropped.
class ProducerControl {
 public:
  virtual ~ProducerControl() = default;
  virtual Status start(double duration_s) = 0;
  // Called when the duration is up (a device must be told to stop).
  virtual Status stop() = 0;
  // Stop before the producer's own end (sring-record on SIGINT/SIGTERM):
  // the same as stop(), except that an sring-sim process, which otherwise
  // runs for its own duration, is asked over its socket.
  virtual Status stop_now() { return stop(); }
};

class InProcessSim final : public ProducerControl {
 public:
  explicit InProcessSim(std::unique_ptr<sim::SimDevice> device) : device_(std::move(device)) {}
  Status start(double duration_s) override {
    return device_->start(std::chrono::nanoseconds(static_cast<int64_t>(duration_s * 1e9)));
  }
  Status stop() override {
    device_->request_stop();  // it also stops itself at the end of the duration
    return ok();
  }

 private:
  std::unique_ptr<sim::SimDevice> device_;
};

class SimProcess final : public ProducerControl {
 public:
  explicit SimProcess(UniqueFd socket) : socket_(std::move(socket)) {}
  Status start(double) override {
    if (auto sent = sim::send_byte(socket_.get(), 1); !sent) return sent;
    // The simulator answers once its device is running, so that "not
    // running" afterwards means the stream is over.
    auto ack = sim::receive_byte(socket_.get(), std::chrono::milliseconds(30'000));
    if (!ack) return ack.error();
    return ok();
  }
  Status stop() override { return ok(); }
  Status stop_now() override { return sim::send_byte(socket_.get(), sim::kStopRequest); }

 private:
  UniqueFd socket_;
};

class KernelDevice final : public ProducerControl {
 public:
  explicit KernelDevice(Device device) : device_(std::move(device)) {}
  Status start(double) override { return device_.start(); }
  // A device that went away (state "removed") has stopped already: the run
  // drains what it committed (Device::stop() says so).
  Status stop() override { return device_.stop(); }

 private:
  Device device_;
};

// Neither copied nor moved: open_session() fills one in place, and an
// in-process simulated device (InProcessSim) keeps a reference to
// host_ring, which a moved Session would leave behind, freed. Declare it
// where it is used (or hold it by unique_ptr to pass it around).
struct Session {
  Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  Session(Session&&) = delete;
  Session& operator=(Session&&) = delete;

  std::optional<sim::HostRing> host_ring;  // --sim: the ring lives here
  std::optional<Ring> ring;
  std::unique_ptr<ProducerControl> producer;
  std::string description;
};

// Opens the source, attaches the ring and sets up wake-ups; the producer is
// configured but not started.
[[nodiscard]] Status open_session(const SourceOptions& options, Session& session);

}  // namespace sring
