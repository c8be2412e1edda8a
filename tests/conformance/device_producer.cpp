// The conformance tests' producer in the QEMU guest: the driver's ring
// /dev/sring0 and its in-kernel simulated device, driven by the ioctls of
// docs/abi.md. The consumer role belongs to the open file, so the producer
// controls the device through a duplicate of the consumer's descriptor.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>

#include "ringlib/error_format.hpp"
#include "tests/conformance/producer.hpp"

namespace sring::conformance {
namespace {

class DeviceProducer final : public TestProducer {
 public:
  explicit DeviceProducer(std::string path) : path_(std::move(path)) {}
  ~DeviceProducer() override { (void)stop(); }

  std::string name() const override { return "driver " + path_; }

  Expected<Ring> prepare(const RingSetup& setup) override {
    control_.reset();  // the previous consumer role goes with the last descriptor
    UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd.valid()) return errno_error("cannot open {}", path_);
    if (::ioctl(fd.get(), SRING_IOC_STOP) != 0) return errno_error("SRING_IOC_STOP");
    if (::ioctl(fd.get(), SRING_IOC_RESET) != 0) return errno_error("SRING_IOC_RESET");
    sring_config config{};
    config.sample_rate = setup.sample_rate;
    config.block_bytes = setup.block_bytes;
    config.overrun_policy = setup.overrun_policy;
    config.sample_format = setup.sample_format;
    config.channels = setup.channels;
    config.pattern_seed = setup.pattern_seed;
    config.flush_timeout_us = setup.flush_timeout_us;
    if (::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &config) != 0) return errno_error("SRING_IOC_SET_CONFIG");
    control_.reset(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0));
    if (!control_.valid()) return errno_error("cannot duplicate the device descriptor");
    auto ring = Ring::attach(std::move(fd), Ring::Access::kConsumer);
    if (!ring) return ring.error();
    if (auto efd = ring->enable_eventfd(); !efd) return efd.error();
    return ring;
  }

  Status start() override {
    if (::ioctl(control_.get(), SRING_IOC_START) != 0) return errno_error("SRING_IOC_START");
    return ok();
  }

  Status stop() override {
    if (!control_.valid()) return ok();
    // Returns after the state store (under the ring's lock, after the last
    // head): it is not RUNNING any more when this returns.
    if (::ioctl(control_.get(), SRING_IOC_STOP) != 0) return errno_error("SRING_IOC_STOP");
    return ok();
  }

 private:
  std::string path_;
  UniqueFd control_;
};

}  // namespace

std::unique_ptr<TestProducer> make_test_producer() {
  const char* path = std::getenv("SRING_DEVICE");
  return std::make_unique<DeviceProducer>(path != nullptr ? path : "/dev/sring0");
}

}  // namespace sring::conformance
