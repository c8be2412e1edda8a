// The producer side of a conformance test: something that owns a ring and a
// device that fills it, and can reset, configure, start and stop it. The same
// tests (conformance_test.cpp) run against the user-space simulator on the
// host (host_producer.cpp) and against the driver in QEMU
// (device_producer.cpp): docs/abi.md is one contract for both.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "sring/ring.hpp"
#include "sring/sring_abi.h"

namespace sring::conformance {

struct RingSetup {
  uint64_t sample_rate = 20'000'000;
  uint32_t block_bytes = 8192;
  uint32_t overrun_policy = SRING_OVERRUN_DROP_NEWEST;
  // Any standard format or SRING_FMT_SIM_PACKED12 (both simulated devices
  // make them all), 1 to 256 channels.
  uint32_t sample_format = SRING_FMT_U16;
  uint32_t channels = 1;
  uint32_t pattern_seed = 7;
  uint32_t flush_timeout_us = 2000;
};

class TestProducer {
 public:
  virtual ~TestProducer() = default;
  virtual std::string name() const = 0;
  // Stops the device, resets the ring (head and tail to the reset position,
  // counters to zero) and applies setup. Returns a consumer attached from the
  // reset tail, with an eventfd that the producer signals. The Ring returned
  // by the previous call must be gone.
  virtual Expected<Ring> prepare(const RingSetup& setup) = 0;
  virtual Status start() = 0;
  // Returns once the producer's state is no longer RUNNING.
  virtual Status stop() = 0;
};

// Defined once per binary: the simulator on the host, the driver in QEMU.
std::unique_ptr<TestProducer> make_test_producer();

}  // namespace sring::conformance
