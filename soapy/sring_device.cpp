// The device side of driver=sring: opening the source, channels, formats,
// the sample rate, settings. Streams are in sring_stream.cpp.
#include "soapy/sring_device.hpp"

#include <sys/stat.h>
#include <time.h>

#include <SoapySDR/Formats.hpp>
#include <SoapySDR/Logger.hpp>

#include <cmath>
#include <mutex>
#include <set>
#include <stdexcept>

#include "sring/sring_abi.h"
#include "tools/cli.hpp"

namespace sring::soapy {

std::string soapy_format(uint32_t sring_format) {
  switch (sring_format) {
    case SRING_FMT_U8: return SOAPY_SDR_U8;
    case SRING_FMT_S8: return SOAPY_SDR_S8;
    case SRING_FMT_U16: return SOAPY_SDR_U16;
    case SRING_FMT_S16: return SOAPY_SDR_S16;
    case SRING_FMT_S32: return SOAPY_SDR_S32;
    case SRING_FMT_F32: return SOAPY_SDR_F32;
    case SRING_FMT_CS16: return SOAPY_SDR_CS16;
    case SRING_FMT_CF32: return SOAPY_SDR_CF32;
    default: return {};
  }
}

double full_scale(uint32_t sring_format) {
  // SoapySDR's converters read integers as offset (U) or two's complement
  // (S) fractions of these: -full_scale .. full_scale maps to -1.0 .. 1.0.
  switch (sring_format) {
    case SRING_FMT_U8:
    case SRING_FMT_S8: return 128.0;
    case SRING_FMT_S32: return 2147483648.0;
    case SRING_FMT_F32:
    case SRING_FMT_CF32: return 1.0;
    default: return 32768.0;  // U16, S16, CS16
  }
}

namespace {

std::mutex& open_sockets_mutex() {
  static std::mutex mutex;
  return mutex;
}

// A multiset: two devices on one path cannot both be connected, but one
// failing to open must not unlist the other.
std::multiset<std::string>& open_sockets() {
  static std::multiset<std::string> paths;
  return paths;
}

}  // namespace

bool socket_open_here(const std::string& path) {
  std::lock_guard lock(open_sockets_mutex());
  return open_sockets().count(path) != 0;
}

SocketClaim::SocketClaim(std::string path) : path_(std::move(path)) {
  std::lock_guard lock(open_sockets_mutex());
  open_sockets().insert(path_);
}

SocketClaim::~SocketClaim() {
  std::lock_guard lock(open_sockets_mutex());
  open_sockets().erase(open_sockets().find(path_));
}

SringDevice::SringDevice(DeviceOptions options) : options_(std::move(options)) {
  open();
  // An sring-sim process is never reopened (it serves one connection).
  if (options_.source.kind == Source::kSimSocket) socket_claim_.emplace(options_.source.path);
}

SringDevice::~SringDevice() {
  std::lock_guard lock(mutex_);
  if (stream_ && stream_->active && session_.producer) (void)session_.producer->stop_now();
  wait_for_readers();  // a read waiting (another thread's) wakes: the producer stopped
  stream_.reset();  // its Consumer refers to the session's ring
  close_session();
}

void SringDevice::close_session() {
  // The producer first (a simulated device's thread writes into the ring),
  // then the ring, then the memory it lives in.
  session_.producer.reset();
  session_.ring.reset();
  session_.host_ring.reset();
  session_.description.clear();
}

void SringDevice::open() {
  if (options_.source.kind == Source::kSimSocket) {
    // open_session() waits up to 30 s for a socket to appear (a simulator
    // still starting); a device that is asked for now should say at once
    // that there is none.
    struct stat st {};
    if (::stat(options_.source.path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
      throw std::runtime_error("sring: no sring-sim socket at " + options_.source.path +
                               " (start `sring-sim --socket " + options_.source.path + "` first)");
    }
  }
  // Into session_ itself, never moved afterwards: a simulated device holds
  // a reference to the session's host ring.
  if (auto opened = open_session(options_.source, session_); !opened) {
    close_session();
    throw std::runtime_error("sring: cannot open " + source_key(options_.source) + ": " + opened.error().message);
  }
  session_started_ = false;
}

void SringDevice::reopen(const DeviceOptions& previous) {
  // The stream is not active here (the producer is stopped): a read still
  // waiting on the ring about to close wakes at once.
  wait_for_readers();
  if (stream_) {
    // Its Consumer refers to the ring about to close; activateStream() makes another.
    stream_->consumer.reset();
    stream_->current.reset();
    stream_->held.clear();
  }
  // The old session closes before the new opens: a kernel device is opened
  // once at a time.
  close_session();
  try {
    open();
  } catch (const std::exception& refused) {
    options_ = previous;
    try {
      open();
    } catch (const std::exception& again) {
      throw std::runtime_error(std::string(refused.what()) + "; and the previous configuration did not open again: " +
                               again.what());
    }
    throw;
  }
}

uint64_t SringDevice::rate() const { return load_relaxed(page().sample_rate); }
uint32_t SringDevice::block_bytes() const { return load_relaxed(page().block_bytes); }

void SringDevice::check_rx(int direction, size_t channel) const {
  if (direction != SOAPY_SDR_RX) throw std::invalid_argument("sring: receive only (SOAPY_SDR_RX)");
  if (channel >= layout().channels) {
    throw std::invalid_argument("sring: channel " + std::to_string(channel) + " does not exist (the device has " +
                                std::to_string(layout().channels) + ")");
  }
}

void SringDevice::refuse_while_active(const std::string& what) const {
  if (stream_ && stream_->active) {
    throw std::runtime_error("sring: cannot change " + what +
                             " while the stream is active (deactivateStream() first)");
  }
}

std::string SringDevice::getHardwareKey() const {
  switch (options_.source.kind) {
    case Source::kSim: return "sring-sim (in-process)";
    case Source::kSimSocket: return "sring-sim (process)";
    default: return "sring";
  }
}

SoapySDR::Kwargs SringDevice::getHardwareInfo() const {
  std::lock_guard lock(mutex_);
  const auto& p = page();
  return {
      {"source", source_key(options_.source)},
      {"description", session_.description},
      {"abi_version", std::to_string(SRING_ABI_MAJOR(p.abi_version)) + "." +
                          std::to_string(SRING_ABI_MINOR(p.abi_version))},
      {"ring_size", std::to_string(session_.ring->ring_size())},
      {"block_size", std::to_string(block_bytes())},
      {"format", describe(layout())},
      {"timestamps", "CLOCK_MONOTONIC"},
  };
}

size_t SringDevice::getNumChannels(int direction) const {
  std::lock_guard lock(mutex_);
  return direction == SOAPY_SDR_RX ? layout().channels : 0;
}

SoapySDR::Kwargs SringDevice::getChannelInfo(int direction, size_t channel) const {
  std::lock_guard lock(mutex_);
  check_rx(direction, channel);
  return {{"interleaved_index", std::to_string(channel)}, {"format", format_name(layout().format)}};
}

std::vector<std::string> SringDevice::getStreamFormats(int direction, size_t channel) const {
  std::lock_guard lock(mutex_);
  check_rx(direction, channel);
  const std::string native = soapy_format(layout().format);
  if (native.empty()) return {};
  std::vector<std::string> formats{native};
  for (const auto& target : SoapySDR::ConverterRegistry::listTargetFormats(native)) {
    if (target != native) formats.push_back(target);
  }
  return formats;
}

std::string SringDevice::getNativeStreamFormat(int direction, size_t channel, double& fullScale) const {
  std::lock_guard lock(mutex_);
  check_rx(direction, channel);
  fullScale = full_scale(layout().format);
  return soapy_format(layout().format);
}

void SringDevice::setSampleRate(int direction, size_t channel, double rate_sps) {
  std::lock_guard lock(mutex_);
  check_rx(direction, channel);
  if (!(rate_sps >= 1) || rate_sps > static_cast<double>(SRING_MAX_SAMPLE_RATE) ||
      rate_sps != std::floor(rate_sps)) {
    throw std::invalid_argument("sring: sample rate " + std::to_string(rate_sps) +
                                ": whole frames per second, 1 to " + std::to_string(SRING_MAX_SAMPLE_RATE));
  }
  const auto wanted = static_cast<uint64_t>(rate_sps);
  if (wanted == rate()) return;
  refuse_while_active("the sample rate");
  if (options_.source.kind == Source::kSimSocket) {
    throw std::runtime_error("sring: an sring-sim process runs at its own rate (" + std::to_string(rate()) +
                             " frames/s): start it with sring-sim --rate " + std::to_string(wanted));
  }
  const DeviceOptions previous = options_;
  options_.source.sim.sample_rate = wanted;
  reopen(previous);
}

double SringDevice::getSampleRate(int direction, size_t channel) const {
  std::lock_guard lock(mutex_);
  check_rx(direction, channel);
  return static_cast<double>(rate());
}

std::vector<double> SringDevice::listSampleRates(int direction, size_t channel) const {
  std::lock_guard lock(mutex_);
  check_rx(direction, channel);
  if (options_.source.kind == Source::kSimSocket) return {static_cast<double>(rate())};
  // Any whole rate up to SRING_MAX_SAMPLE_RATE (getSampleRateRange); these
  // are examples for lists in user interfaces.
  return {1e6, 2e6, 5e6, 10e6, 20e6, 50e6, 100e6};
}

SoapySDR::RangeList SringDevice::getSampleRateRange(int direction, size_t channel) const {
  std::lock_guard lock(mutex_);
  check_rx(direction, channel);
  if (options_.source.kind == Source::kSimSocket) {
    const auto r = static_cast<double>(rate());
    return {SoapySDR::Range(r, r)};
  }
  return {SoapySDR::Range(1, static_cast<double>(SRING_MAX_SAMPLE_RATE), 1)};
}

bool SringDevice::hasHardwareTime(const std::string& what) const { return what.empty() || what == "monotonic"; }

long long SringDevice::getHardwareTime(const std::string& what) const {
  if (!hasHardwareTime(what)) throw std::invalid_argument("sring: the only time is CLOCK_MONOTONIC (\"\")");
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<long long>(now.tv_sec) * 1'000'000'000LL + now.tv_nsec;
}

// --- settings ----------------------------------------------------------

namespace {

SoapySDR::ArgInfo arg(const std::string& key, const std::string& value, const std::string& description,
                      SoapySDR::ArgInfo::Type type = SoapySDR::ArgInfo::STRING,
                      std::vector<std::string> options = {}) {
  SoapySDR::ArgInfo info;
  info.key = key;
  info.name = key;
  info.value = value;
  info.description = description;
  info.type = type;
  info.options = std::move(options);
  return info;
}

// The read-only settings, with the type getSettingInfo() gives them: counters
// are INT, flags BOOL ("true"/"false"), so that clients that show or convert
// ArgInfo values (GNU Radio) get numbers and booleans.
struct ReadOnly {
  const char* key;
  SoapySDR::ArgInfo::Type type;
};
constexpr ReadOnly kReadOnly[] = {
    {"source", SoapySDR::ArgInfo::STRING},
    {"state", SoapySDR::ArgInfo::STRING},
    {"samples_delivered", SoapySDR::ArgInfo::INT},
    {"samples_dropped", SoapySDR::ArgInfo::INT},
    {"samples_produced", SoapySDR::ArgInfo::INT},
    {"producer_samples_dropped", SoapySDR::ArgInfo::INT},
    {"overflows", SoapySDR::ArgInfo::INT},
    {"overwritten_while_read", SoapySDR::ArgInfo::INT},
    {"end_of_stream", SoapySDR::ArgInfo::BOOL},
    {"exact", SoapySDR::ArgInfo::BOOL},
};

}  // namespace

SoapySDR::ArgInfoList SringDevice::getSettingInfo() const {
  std::lock_guard lock(mutex_);
  const bool fixed = options_.source.kind == Source::kSimSocket;
  const std::string producer_note =
      fixed ? " (fixed by the sring-sim process)" : " (not while the stream is active; reopens the ring)";
  using T = SoapySDR::ArgInfo;
  SoapySDR::ArgInfoList list = {
      arg("policy", std::string(cli::overrun_policy_name(load_relaxed(page().overrun_policy))),
          "What the producer does when the ring is full: drop the new block, overwrite the oldest, or stop" +
              producer_note,
          T::STRING, {"drop", "overwrite", "stop"}),
      arg("format", format_name(layout().format),
          "The device's sample format, the stream's native one" + producer_note +
              (stream_ ? "; not while a stream is set up" : ""),
          T::STRING, {"u8", "s8", "u16", "s16", "s32", "f32", "cs16", "cf32"}),
      arg("channels", std::to_string(layout().channels), "Interleaved channels per frame, 1 to 256" + producer_note,
          T::INT),
      arg("block_size", std::to_string(block_bytes()), "Bytes per block, header included (64-byte multiple)" +
                                                           producer_note,
          T::INT),
      arg("ring_size", std::to_string(session_.ring->ring_size()),
          "Bytes of ring (a power of two); sim=1 only: a kernel ring's is set when its driver loads", T::INT),
      arg("seed", std::to_string(load_relaxed(page().pattern_seed)), "Seed of the sample pattern" + producer_note,
          T::INT),
      arg("wait", std::string(to_string(options_.source.wait)),
          "How a read waits for data: eventfd, poll, spin, hybrid (applies at activateStream)", T::STRING,
          {"eventfd", "poll", "spin", "hybrid"}),
      arg("watermark", std::to_string(options_.watermark),
          "Bytes of data that wake a waiting read; 0: any block (applies at activateStream)", T::INT),
      arg("duration", std::to_string(options_.duration_s),
          "sim=1: seconds the simulated device runs once activated; 0: until deactivateStream", T::FLOAT),
  };
  // Their live values: GNU Radio 3.10.5's soapy source read_setting()
  // returns the value getSettingInfo() lists, not readSetting()'s.
  for (const auto& r : kReadOnly) {
    list.push_back(arg(r.key, read_setting(r.key), std::string("read only: ") + r.key + " (docs/soapysdr.md)",
                       r.type));
  }
  return list;
}

void SringDevice::writeSetting(const std::string& key, const std::string& value) {
  std::lock_guard lock(mutex_);
  for (const auto& read_only : kReadOnly) {
    if (key == read_only.key) throw std::invalid_argument("sring: " + key + " is read only (readSetting)");
  }
  if (is_producer_key(key) || key == "ring_size") {
    refuse_while_active(key);
    if (options_.source.kind == Source::kSimSocket) {
      throw std::runtime_error("sring: an sring-sim process has its own " + key +
                               ": start it with sring-sim --" + (key == "block_size" ? std::string("block-size")
                                                                 : key == "ring_size" ? std::string("ring-size")
                                                                                      : key) +
                               " " + value);
    }
    if (key == "ring_size" && options_.source.kind == Source::kDevice) {
      throw std::runtime_error("sring: a kernel ring's size is set when its driver loads (ring_size= is for sim=1)");
    }
    if ((key == "format" || key == "channels") && stream_) {
      throw std::runtime_error("sring: cannot change " + key + " while a stream is set up (closeStream() first)");
    }
    const DeviceOptions previous = options_;
    apply_device_arg(options_, key, value);
    reopen(previous);
    return;
  }
  refuse_while_active(key);
  if (key == "duration" && options_.source.kind != Source::kSim) {
    throw std::invalid_argument("sring: duration is for sim=1 (an sring-sim process takes --duration itself)");
  }
  apply_device_arg(options_, key, value);  // wait, watermark, duration; throws for unknown keys
}

std::string SringDevice::readSetting(const std::string& key) const {
  std::lock_guard lock(mutex_);
  return read_setting(key);
}

std::string SringDevice::read_setting(const std::string& key) const {
  const auto& p = page();
  if (key == "rate") return std::to_string(rate());
  if (key == "policy") return std::string(cli::overrun_policy_name(load_relaxed(p.overrun_policy)));
  if (key == "format") return format_name(layout().format);
  if (key == "channels") return std::to_string(layout().channels);
  if (key == "block_size") return std::to_string(block_bytes());
  if (key == "ring_size") return std::to_string(session_.ring->ring_size());
  if (key == "seed") return std::to_string(load_relaxed(p.pattern_seed));
  if (key == "wait") return std::string(to_string(options_.source.wait));
  if (key == "watermark") return std::to_string(options_.watermark);
  if (key == "duration") return std::to_string(options_.duration_s);
  if (key == "source") return source_key(options_.source);
  if (key == "state") return std::string(state_name(session_.ring->state()));
  if (key == "samples_produced") return std::to_string(load_relaxed(p.samples_produced));
  if (key == "producer_samples_dropped") return std::to_string(load_relaxed(p.samples_dropped));
  const SringStream* s = stream_ && stream_->consumer ? stream_.get() : nullptr;
  const bool over = s && at_end(*s);
  // The Consumer's accounting (blocks done; once the stream is over, also
  // what the producer made after the last one, which it counted as
  // dropped) and the blocks handed out and not done yet (sring_device.hpp).
  if (key == "samples_delivered") return std::to_string(s ? s->consumer->counters().samples + s->pending_frames : 0);
  if (key == "samples_dropped") {
    if (!s) return "0";
    return std::to_string(s->consumer->snapshot().missing_samples + s->pending_lost);
  }
  if (key == "overflows") return std::to_string(s ? s->overflows : 0);
  if (key == "overwritten_while_read") return std::to_string(s ? s->not_counted : 0);
  if (key == "end_of_stream") return over ? "true" : "false";
  if (key == "exact") return over && s->consumer->snapshot().exact ? "true" : "false";
  throw std::invalid_argument("sring: unknown setting '" + key + "' (getSettingInfo() lists them)");
}

}  // namespace sring::soapy
