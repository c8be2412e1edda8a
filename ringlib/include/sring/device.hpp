// Control of a kernel device (/dev/sringN) without raw ioctls: configure,
// start, stop, reset, statistics, fault injection. The data path is a Ring
// attached from it (attach()), after any reset: a reset moves head and tail.
//
//   auto device = sring::Device::open("/dev/sring0");
//   device->reset(); device->configure(config);
//   auto ring = device->attach();
//   device->start();  ... consume from *ring ...  device->stop();
#pragma once

#include <cstdint>
#include <string>

#include "sring/error.hpp"
#include "sring/ring.hpp"
#include "sring/unique_fd.hpp"
#include "sring/sring_abi.h"

namespace sring {

// What a device runs with until configured: 20 MS/s of one channel of u16
// in 8 KiB blocks, drop-newest, a 2 ms flush timeout. Set sample_format and
// channels for another layout (docs/abi.md, "Sample formats and channels").
sring_config default_device_config();

class Device {
 public:
  // Opens the device as its consumer (one per device: EBUSY if taken).
  [[nodiscard]] static Expected<Device> open(const std::string& path);

  // Each says what failed and why; a device that is gone (ENODEV: unbound,
  // unplugged, its driver unloaded) is an error for all but stop().
  // While stopped. Flags and reserved fields other than zero, more than
  // SRING_MAX_CHANNELS channels and a format number that is neither standard
  // nor in the device range are refused here (EINVAL, nothing sent); what
  // the driver refuses (EINVAL) comes back with the configuration it got.
  [[nodiscard]] Status configure(const sring_config& config);
  [[nodiscard]] Status start();
  // Stops the device; a device that is gone has stopped already.
  [[nodiscard]] Status stop();
  // Head and tail back to the reset position, counters to zero (stopped).
  [[nodiscard]] Status reset();
  [[nodiscard]] Status inject_fault(uint32_t kind, uint64_t arg);  // enum sring_fault_kind
  [[nodiscard]] Expected<sring_config> config() const;
  [[nodiscard]] Expected<sring_stats> stats() const;
  [[nodiscard]] Expected<sring_info> info() const;

  // The ring, for consuming: shares this consumer's open file.
  [[nodiscard]] Expected<Ring> attach() const;

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }

 private:
  Device(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  Status control(unsigned long command, void* argument, const char* what) const;

  UniqueFd fd_;
  std::string path_;
};

}  // namespace sring
