// How SoapySDR finds and makes driver=sring devices (docs/soapysdr.md,
// "Device arguments").
#include <sys/stat.h>

#include <SoapySDR/Registry.hpp>

#include <memory>

#include "soapy/device_args.hpp"
#include "soapy/sring_device.hpp"

namespace sring::soapy {
namespace {

bool is_socket(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

SoapySDR::Kwargs found(const std::string& key, const std::string& value, const std::string& label) {
  return {{"driver", "sring"}, {key, value}, {"label", label}};
}

// The in-process simulator, with the configuration asked for. SoapySDR 0.8's
// make() keeps a table of open devices keyed by the find() result and hands
// an open device back to a make() whose find() result matches: with the
// configuration in the result, the same arguments get the open device and
// different ones (format=, rate=, ...) a device of their own.
SoapySDR::Kwargs found_sim(const SoapySDR::Kwargs& args) {
  auto kwargs = found("sim", "1", "sring simulated device (in-process)");
  for (const auto& [key, value] : args) {
    if (!is_source_or_soapy_key(key)) kwargs.emplace(key, value);
  }
  return kwargs;
}

SoapySDR::KwargsList find_sring(const SoapySDR::Kwargs& args) {
  // find() looks, it opens nothing: an sring-sim process serves the one
  // consumer that connects, and a kernel ring is reset when opened.
  SoapySDR::KwargsList list;
  if (auto it = args.find("sim"); it != args.end()) {
    if (it->second == "1" || it->second == "true" || it->second == "yes") {
      list.push_back(found_sim(args));
    }
    return list;
  }
  if (auto it = args.find("sim_socket"); it != args.end()) {
    // sring-sim removes its socket once its one consumer connected: a path
    // this process has a device open on is still listed, so that make() with
    // the same arguments returns that device (SoapySDR's table of open
    // devices) instead of failing.
    if (is_socket(it->second) || socket_open_here(it->second)) {
      list.push_back(found("sim_socket", it->second, "sring-sim at " + it->second));
    }
    return list;
  }
  const auto device = args.find("device");
  for (const auto& ring : kernel_rings()) {
    if (device == args.end() || device->second == ring) list.push_back(found("device", ring, "sring ring " + ring));
  }
  // The simulator is always there, but only listed when sring is asked for
  // by name: an application that opens "the first device" must not get a
  // simulated one in place of a real radio.
  if (device == args.end()) {
    if (auto driver = args.find("driver"); driver != args.end() && driver->second == "sring") {
      list.push_back(found_sim(args));
    }
  }
  return list;
}

SoapySDR::Device* make_sring(const SoapySDR::Kwargs& args) {
  // SoapySDR owns the device (SoapySDR::Device::unmake deletes it).
  return std::make_unique<SringDevice>(parse_device_args(args)).release();
}

const SoapySDR::Registry kRegistration("sring", &find_sring, &make_sring, SOAPY_SDR_ABI_VERSION);

}  // namespace
}  // namespace sring::soapy
