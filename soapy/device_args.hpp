// The device arguments of driver=sring (docs/soapysdr.md): which source
// (device=/dev/sringN, sim=1, sim_socket=PATH) and its configuration, turned
// into tools/session.hpp's SourceOptions so that the module opens rings
// exactly as acquire and sring-record do.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "tools/session.hpp"

namespace sring::soapy {

struct DeviceOptions {
  SourceOptions source;
  // sim=1: how long the simulated device runs once activated (seconds);
  // 0: until deactivateStream(). An sring-sim process and a kernel device
  // have their own (sring-sim --duration; a device runs until stopped).
  double duration_s = 0;
  // Bytes of data that wake a waiting reader (Ring::set_wakeup_watermark);
  // 0 leaves ringlib's default (any block).
  uint64_t watermark = 0;
};

// The keys that configure the producer, for writeSetting() too: rate,
// format, channels, policy, block_size, ring_size, seed.
bool is_producer_key(std::string_view key);

// Applies one key=value to options. Throws std::invalid_argument with a
// message that names the argument (bad value, unknown key).
void apply_device_arg(DeviceOptions& options, std::string_view key, std::string_view value);

// All of a SoapySDR::Kwargs (a std::map<std::string, std::string>): the
// source first, then the rest. Keys SoapySDR itself adds (driver, label,
// serial, type) are ignored. Throws std::invalid_argument.
DeviceOptions parse_device_args(const std::map<std::string, std::string>& args);

// The keys that are no configuration: the source (sim, sim_socket, device)
// and what SoapySDR and find() add (driver, label, serial, type).
bool is_source_or_soapy_key(std::string_view key);

// "sim=1", "sim_socket=PATH", "device=PATH": the source, as find() reports it.
std::string source_key(const SourceOptions& source);

// /dev/sringN that exist, in order.
std::vector<std::string> kernel_rings();

}  // namespace sring::soapy
