#include "ringlib/error_format.hpp"
#include "sring/device.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sring/format.hpp"

namespace sring {

sring_config default_device_config() {
  sring_config config{};
  config.sample_rate = 20'000'000;
  config.block_bytes = 8192;
  config.overrun_policy = SRING_OVERRUN_DROP_NEWEST;
  config.sample_format = SRING_FMT_U16;
  config.channels = 1;
  config.pattern_seed = 1;
  config.flush_timeout_us = 2000;
  return config;
}

Expected<Device> Device::open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == EBUSY) return make_error(EBUSY, "{} already has a consumer", path);
    return errno_error("cannot open {}", path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat {}", path);
  if (!S_ISCHR(st.st_mode)) return make_error(ENOTTY, "{} is not a sring device", path);
  return Device(std::move(fd), path);
}

Status Device::control(unsigned long command, void* argument, const char* what) const {
  if (::ioctl(fd_.get(), command, argument) == 0) return ok();
  switch (errno) {
    case ENODEV:
      return make_error(ENODEV, "cannot {} {}: the device is gone (unbound, unplugged or its driver unloaded)",
                        what, path_);
    case EBUSY:
      return make_error(EBUSY, "cannot {} {} while it is running", what, path_);
    default:
      return errno_error("cannot {} {}", what, path_);
  }
}

Status Device::configure(const sring_config& config) {
  // What every driver refuses with a bare EINVAL (docs/abi.md,
  // SRING_IOC_SET_CONFIG), said here with the reason; the rest (block size
  // against the ring, rate, a format or layout this device cannot make) only
  // the driver can judge.
  if (config.flags != 0 || config.reserved0 != 0 || config.reserved1 != 0) {
    return make_error(EINVAL, "cannot configure {}: flags and the reserved fields must be zero", path_);
  }
  if (config.channels > SRING_MAX_CHANNELS) {
    return make_error(EINVAL, "cannot configure {}: {} channels, at most {}", path_, config.channels,
                      SRING_MAX_CHANNELS);
  }
  if (sring_format_bits(config.sample_format) == 0 && config.sample_format < SRING_FMT_DEVICE_FIRST) {
    return make_error(EINVAL, "cannot configure {}: sample format {} is neither a standard one nor in the "
                      "device range from {:#x}", path_, config.sample_format, SRING_FMT_DEVICE_FIRST);
  }
  sring_config copy = config;  // the ioctl takes a non-const pointer
  auto configured = control(SRING_IOC_SET_CONFIG, &copy, "configure");
  if (!configured && configured.error().code == EINVAL) {
    // Which setting the driver refused it does not say: give all of them.
    const SampleLayout layout{config.sample_format, config.channels == 0 ? 1 : config.channels, 0};
    return make_error(EINVAL, "{} refuses {} in blocks of {} bytes at {} frames/s, overrun policy {}, flush "
                      "timeout {} us (EINVAL; docs/abi.md, SRING_IOC_SET_CONFIG, says what a device takes)",
                      path_, describe(layout), config.block_bytes, config.sample_rate, config.overrun_policy,
                      config.flush_timeout_us);
  }
  return configured;
}

Status Device::start() { return control(SRING_IOC_START, nullptr, "start"); }

Status Device::stop() {
  auto stopped = control(SRING_IOC_STOP, nullptr, "stop");
  if (!stopped && stopped.error().code == ENODEV) return ok();  // it stopped when it went
  return stopped;
}

Status Device::reset() { return control(SRING_IOC_RESET, nullptr, "reset"); }

Status Device::inject_fault(uint32_t kind, uint64_t arg) {
  sring_fault fault{};
  fault.kind = kind;
  fault.arg = arg;
  return control(SRING_IOC_INJECT_FAULT, &fault, "inject a fault into");
}

Expected<sring_config> Device::config() const {
  sring_config config{};
  if (auto got = control(SRING_IOC_GET_CONFIG, &config, "read the configuration of"); !got) return got.error();
  return config;
}

Expected<sring_stats> Device::stats() const {
  sring_stats stats{};
  if (auto got = control(SRING_IOC_GET_STATS, &stats, "read the statistics of"); !got) return got.error();
  return stats;
}

Expected<sring_info> Device::info() const {
  sring_info info{};
  if (auto got = control(SRING_IOC_GET_INFO, &info, "read the layout of"); !got) return got.error();
  return info;
}

Expected<Ring> Device::attach() const {
  UniqueFd duplicate(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!duplicate.valid()) return errno_error("cannot duplicate the descriptor of {}", path_);
  auto ring = Ring::attach(std::move(duplicate), Ring::Access::kConsumer);
  if (!ring) return make_error(ring.error().code, "{}: {}", path_, ring.error().message);
  return ring;
}

}  // namespace sring
