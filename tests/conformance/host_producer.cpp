// The conformance tests' producer on the host: the user-space simulator on a
// memfd ring, on its own thread, attached through the ring file as a
// consumer in another process would be.
#include <sys/eventfd.h>

#include <optional>

#include "ringlib/error_format.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"
#include "tests/conformance/producer.hpp"

namespace sring::conformance {
namespace {

class HostProducer final : public TestProducer {
 public:
  explicit HostProducer(sim::HostRing ring) : ring_(std::move(ring)) {}
  ~HostProducer() override { (void)stop(); }

  std::string name() const override { return "user-space simulator"; }

  Expected<Ring> prepare(const RingSetup& setup) override {
    if (auto stopped = stop(); !stopped) return stopped.error();
    device_.reset();
    if (auto reset = ring_.reset(0); !reset) return reset.error();
    sim::SimConfig config;
    config.sample_rate = setup.sample_rate;
    config.block_bytes = setup.block_bytes;
    config.overrun_policy = setup.overrun_policy;
    config.sample_format = setup.sample_format;
    config.channels = setup.channels;
    config.pattern_seed = setup.pattern_seed;
    config.flush_timeout = std::chrono::microseconds(setup.flush_timeout_us);
    if (auto valid = sim::validate_config(config, ring_.ring_size()); !valid) return valid.error();
    device_ = std::make_unique<sim::SimDevice>(ring_, config);
    UniqueFd eventfd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!eventfd.valid()) return errno_error("cannot create an eventfd");
    if (auto set = device_->set_eventfd(eventfd.get()); !set) return set.error();
    auto fd = ring_.duplicate_fd();
    if (!fd) return fd.error();
    auto ring = Ring::attach(std::move(*fd), Ring::Access::kConsumer);
    if (!ring) return ring.error();
    if (auto use = ring->use_eventfd(std::move(eventfd)); !use) return use.error();
    return ring;
  }

  Status start() override {
    if (!device_) return make_error(EINVAL, "start before prepare");
    return device_->start();  // until stop()
  }

  Status stop() override {
    if (!device_) return ok();
    device_->request_stop();
    device_->join();  // its end() stored a state other than RUNNING
    return ok();
  }

 private:
  sim::HostRing ring_;
  std::unique_ptr<sim::SimDevice> device_;
};

}  // namespace

std::unique_ptr<TestProducer> make_test_producer() {
  // 1 MiB: big enough for bursts of 8 KiB blocks, small enough that a slow
  // consumer overruns it within a test.
  auto ring = sim::HostRing::create(1 << 20, "sring-conformance");
  if (!ring) return nullptr;
  return std::make_unique<HostProducer>(std::move(*ring));
}

}  // namespace sring::conformance
