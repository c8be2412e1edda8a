// What the two SoapySDR clients share (soapy/clients/*.cpp): their command
// line, opening a driver=sring device through SoapySDR alone, checking every
// sample against the pattern of sring_pattern.h, and the result line the
// integration test reads. They know sring only through its pattern header
// and the device's settings: what any SoapySDR application would use.
#pragma once

#include <SoapySDR/Device.hpp>
#include <SoapySDR/Errors.hpp>
#include <SoapySDR/Formats.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "sring/sring_pattern.h"

namespace soapy_client {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string args;            // device arguments: "driver=sring,sim=1,..."
  std::string format;          // the stream's format; empty: the native one
  std::vector<size_t> channels{0};
  double seconds = 1.0;        // then deactivateStream() and drain to the end
  long slow_us = 0;            // a slow consumer: sleep this long ...
  uint64_t slow_every = 1;     // ... every this many reads
  size_t elems = 4096;         // readStream() buffer, frames
  size_t hold = 1;             // direct access: buffers held before releasing (in reverse)
};

[[noreturn]] inline void usage(const char* program, const std::string& why) {
  std::fprintf(stderr,
               "%s: %s\nusage: %s --args DEVICE_ARGS [--format SOAPY_FORMAT] [--channels 0,1] [--seconds S]\n"
               "       [--slow-us US --slow-every N] [--elems N] [--hold N]\n",
               program, why.c_str(), program);
  std::exit(2);
}

inline Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view option = argv[i];
    if (i + 1 >= argc) usage(argv[0], std::string(option) + " needs a value");
    const std::string value = argv[++i];
    try {
      if (option == "--args") {
        o.args = value;
      } else if (option == "--format") {
        o.format = value;
      } else if (option == "--channels") {
        o.channels.clear();
        for (size_t at = 0; at <= value.size();) {
          const size_t comma = std::min(value.find(',', at), value.size());
          o.channels.push_back(std::stoul(value.substr(at, comma - at)));
          at = comma + 1;
        }
      } else if (option == "--seconds") {
        o.seconds = std::stod(value);
      } else if (option == "--slow-us") {
        o.slow_us = std::stol(value);
      } else if (option == "--slow-every") {
        o.slow_every = std::max<uint64_t>(1, std::stoull(value));
      } else if (option == "--elems") {
        o.elems = std::stoul(value);
      } else if (option == "--hold") {
        o.hold = std::max<size_t>(1, std::stoul(value));
      } else {
        usage(argv[0], "unknown option " + std::string(option));
      }
    } catch (const std::logic_error&) {
      usage(argv[0], std::string(option) + ": not a number: " + value);
    }
  }
  if (o.args.empty()) usage(argv[0], "--args is required");
  return o;
}

// sring's format names (readSetting("format")) as enum sring_sample_format.
inline uint32_t sring_format(const std::string& name) {
  static const std::pair<const char*, uint32_t> kNames[] = {
      {"u8", SRING_FMT_U8},   {"s8", SRING_FMT_S8},   {"u16", SRING_FMT_U16},   {"s16", SRING_FMT_S16},
      {"s32", SRING_FMT_S32}, {"f32", SRING_FMT_F32}, {"cs16", SRING_FMT_CS16}, {"cf32", SRING_FMT_CF32}};
  for (const auto& [n, f] : kNames) {
    if (name == n) return f;
  }
  throw std::runtime_error("the device's format " + name + " is not one this client checks");
}

// Checks samples against the pattern: channel `channel` of a device with
// `channels` channels in `native` format, delivered in the SoapySDR format
// `format` (the native one, or a conversion to F32/CF32, whose values are
// SoapySDR's: the integer over the native full scale).
class Verifier {
 public:
  // native_format: the device's own name for it (getNativeStreamFormat()).
  Verifier(uint32_t native, const std::string& native_format, uint32_t channels, uint32_t seed,
           const std::string& format)
      : native_(native), channels_(channels), seed_(seed), components_(sring_format_components(native)) {
    if (format == native_format) {
      kind_ = kSame;
    } else if ((format == SOAPY_SDR_F32 && components_ == 1) || (format == SOAPY_SDR_CF32 && components_ == 2)) {
      kind_ = kToFloat;
      if (native == SRING_FMT_F32 || native == SRING_FMT_CF32 || native == SRING_FMT_S32) {
        throw std::runtime_error("this client checks conversions to float from 8- and 16-bit formats only");
      }
    } else {
      throw std::runtime_error("this client checks the native format or a conversion to F32/CF32, not " + format);
    }
    value_bytes_ = kind_ == kToFloat ? 4 : sring_format_bits(native) / 8 / components_;
  }

  // Mismatching values among `frames` frames from frame `first` of one
  // channel, contiguous at `data`.
  uint64_t check(const void* data, uint64_t first, size_t frames, uint32_t channel) const {
    const auto* bytes = static_cast<const uint8_t*>(data);
    uint64_t wrong = 0;
    for (size_t f = 0; f < frames; ++f) {
      const uint64_t element = ((first + f) * channels_ + channel) * components_;
      for (uint32_t k = 0; k < components_; ++k) {
        const uint16_t base = sring_pattern_sample(element + k, seed_);
        uint32_t got = 0;
        std::memcpy(&got, bytes + (f * components_ + k) * value_bytes_, value_bytes_);
        wrong += got != expected(base);
      }
    }
    return wrong;
  }

 private:
  enum Kind { kSame, kToFloat };
  uint32_t expected(uint16_t base) const {
    const uint32_t value = sring_pattern_value(base, native_);
    if (kind_ == kSame) return value_bytes_ == 4 ? value : value & ((1u << (8 * value_bytes_)) - 1);
    // SoapySDR's conversion to float: two's complement over full scale,
    // offset binary (U8, U16) first moved to it.
    float f = 0;
    switch (native_) {
      case SRING_FMT_U8: f = (static_cast<float>(value) - 128.0f) / 128.0f; break;
      case SRING_FMT_S8: f = static_cast<float>(static_cast<int8_t>(value)) / 128.0f; break;
      case SRING_FMT_U16: f = (static_cast<float>(value) - 32768.0f) / 32768.0f; break;
      default: f = static_cast<float>(static_cast<int16_t>(value)) / 32768.0f; break;  // S16, CS16
    }
    uint32_t bits = 0;
    std::memcpy(&bits, &f, 4);
    return bits;
  }

  uint32_t native_;
  uint32_t channels_;
  uint32_t seed_;
  uint32_t components_;
  Kind kind_ = kSame;
  size_t value_bytes_ = 2;
};

// The accounting a client keeps, and its result line.
struct Tally {
  uint64_t delivered = 0;   // frames handed to us
  uint64_t next = 0;        // the stream index of the next frame we expect
  uint64_t mismatches = 0;  // values not the pattern
  uint64_t late_mismatches = 0;  // direct access: values that changed while we held them
  // Reads (direct access: blocks) with any mismatch. Under policy=overwrite
  // the producer may take a block back while it is read, and its samples
  // may then be torn: at most overwritten_while_read of them may be bad.
  uint64_t bad_reads = 0;
  uint64_t overflows = 0;
  uint64_t reads = 0;
  uint64_t time_errors = 0;  // data without SOAPY_SDR_HAS_TIME, or time going backwards
  long long last_time = 0;
  bool ended = false;       // SOAPY_SDR_END_BURST seen

  void on_time(int flags, long long time_ns) {
    if (!(flags & SOAPY_SDR_HAS_TIME) || time_ns < last_time) ++time_errors;
    last_time = time_ns;
  }
  // After SOAPY_SDR_OVERFLOW the device's samples_dropped counts the gap:
  // the next frame is samples_delivered + samples_dropped (the device's
  // delivered, not ours: blocks taken back while read count as dropped).
  void on_overflow(SoapySDR::Device& device) {
    ++overflows;
    next = std::stoull(device.readSetting("samples_delivered")) + std::stoull(device.readSetting("samples_dropped"));
  }
};

// Prints the result line and returns the exit code: 0 only if every sample
// was the pattern (but for blocks the producer took back while read), and
// the device's delivered + dropped == produced exactly. Ours is the
// device's delivered, plus the frames of any block taken back.
inline int report(const char* name, SoapySDR::Device& device, const Tally& t, double seconds) {
  const uint64_t dropped = std::stoull(device.readSetting("samples_dropped"));
  const uint64_t produced = std::stoull(device.readSetting("samples_produced"));
  const uint64_t module_delivered = std::stoull(device.readSetting("samples_delivered"));
  const uint64_t producer_dropped = std::stoull(device.readSetting("producer_samples_dropped"));
  const uint64_t overwritten = std::stoull(device.readSetting("overwritten_while_read"));
  const bool exact = device.readSetting("exact") == "true";
  const bool adds_up = module_delivered + dropped == produced &&
                       (overwritten == 0 ? t.delivered == module_delivered : t.delivered > module_delivered);
  std::printf("%s: delivered=%llu dropped=%llu produced=%llu mismatches=%llu late_mismatches=%llu overflows=%llu "
              "time_errors=%llu end_burst=%s exact=%s accounting=%s seconds=%.3f module_delivered=%llu "
              "producer_dropped=%llu overwritten=%llu bad_reads=%llu\n",
              name, static_cast<unsigned long long>(t.delivered), static_cast<unsigned long long>(dropped),
              static_cast<unsigned long long>(produced), static_cast<unsigned long long>(t.mismatches),
              static_cast<unsigned long long>(t.late_mismatches), static_cast<unsigned long long>(t.overflows),
              static_cast<unsigned long long>(t.time_errors), t.ended ? "yes" : "no", exact ? "yes" : "no",
              adds_up ? "ok" : "BAD", seconds, static_cast<unsigned long long>(module_delivered),
              static_cast<unsigned long long>(producer_dropped), static_cast<unsigned long long>(overwritten),
              static_cast<unsigned long long>(t.bad_reads));
  return t.bad_reads <= overwritten && t.time_errors == 0 && t.ended && exact && adds_up ? 0 : 1;
}

// A driver=sring device, unmade when done with.
using DevicePtr = std::unique_ptr<SoapySDR::Device, void (*)(SoapySDR::Device*)>;
inline DevicePtr make_device(const std::string& args) {
  return DevicePtr(SoapySDR::Device::make(args), [](SoapySDR::Device* d) { SoapySDR::Device::unmake(d); });
}

// What a client learns from the device: the native format (SoapySDR's name
// and sring's) and the pattern's seed.
struct DeviceFacts {
  std::string native_format;
  uint32_t native = 0;
  uint32_t channels = 1;
  uint32_t seed = 1;
};
inline DeviceFacts facts(SoapySDR::Device& device) {
  DeviceFacts f;
  double full_scale = 0;
  f.native_format = device.getNativeStreamFormat(SOAPY_SDR_RX, 0, full_scale);
  f.native = sring_format(device.readSetting("format"));
  f.channels = static_cast<uint32_t>(device.getNumChannels(SOAPY_SDR_RX));
  f.seed = static_cast<uint32_t>(std::stoul(device.readSetting("seed")));
  return f;
}

// The loop both clients run: activate, read with read_once() (one
// readStream() or acquireReadBuffer(), which handles what it got and
// returns the call's result) until SOAPY_SDR_END_BURST, deactivating after
// `seconds` so that the producer stops and the rest drains. Overflows and
// timeouts are handled here; other errors throw. Returns the time taken.
template <typename ReadOnce>
double read_to_end(SoapySDR::Device& device, SoapySDR::Stream* stream, const Options& o, Tally& t,
                   ReadOnce&& read_once) {
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  const auto give_up = stop_at + std::chrono::seconds(30);
  if (device.activateStream(stream) != 0) throw std::runtime_error("activateStream failed");
  bool active = true;
  while (!t.ended) {
    const auto now = Clock::now();
    if (active && now >= stop_at) {
      // Stop the producer; what it made is still read, to the end.
      device.deactivateStream(stream);
      active = false;
    }
    if (now >= give_up) throw std::runtime_error("no end of stream 30 s after deactivateStream()");
    const int n = read_once();
    ++t.reads;
    if (n == SOAPY_SDR_OVERFLOW) {
      t.on_overflow(device);
    } else if (n < 0 && n != SOAPY_SDR_TIMEOUT) {
      throw std::runtime_error(std::string("read: ") + SoapySDR::errToStr(n));
    } else if (n > 0 && o.slow_us > 0 && t.reads % o.slow_every == 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(o.slow_us));
    }
  }
  if (active) device.deactivateStream(stream);
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs body() and turns SoapySDR's exceptions into one line and exit code 2.
template <typename F>
int guarded(const char* name, F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
    return 2;
  }
}

}  // namespace soapy_client
