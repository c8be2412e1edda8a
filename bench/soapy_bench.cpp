// What SoapySDR costs on top of sring (docs/soapysdr.md, "Figures"): the
// same simulated device flat out (u16, one channel, 64 KiB blocks, a 4 MiB
// ring, 1 s per run), read three ways in one process, each verifying every
// sample with ringlib's vectorised pattern check:
//   consumer     sring::Consumer, blocks in place (tools/session.hpp's --sim)
//   direct       driver=sring through SoapySDR's direct buffer access
//   readStream   driver=sring through readStream() into a buffer of one block
// Runs interleaved (the order rotates each repetition, so none always goes
// first), several repetitions; prints GB/s verified and the reading thread's
// CPU seconds per GB (its cost, whatever limited the rate), median, min and
// max, and per repetition the ratio of each to sring's own Consumer. The
// producer (a thread filling the pattern) runs on the other core and limits
// all three alike: the differences are the consumer's cost.
#include <SoapySDR/Device.hpp>
#include <SoapySDR/Errors.hpp>
#include <SoapySDR/Formats.hpp>
#include <fmt/format.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/bench_util.hpp"
#include "sring/consumer.hpp"
#include "sring/verify.hpp"
#include "tools/session.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kSeconds = 1.0;
constexpr uint32_t kBlockBytes = 64 << 10;
constexpr uint64_t kRingSize = 4 << 20;
const std::string kArgs = "driver=sring,sim=1,rate=0,format=u16,block_size=64k,ring_size=4M,duration=1";

struct Run {
  uint64_t samples = 0;
  uint64_t mismatches = 0;
  uint64_t lost = 0;
  double seconds = 0;
  double cpu_seconds = 0;  // the reading thread's
  double gbps() const { return static_cast<double>(samples) * 2 / seconds / 1e9; }
  double cpu_s_per_gb() const { return cpu_seconds / (static_cast<double>(samples) * 2 / 1e9); }
};

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Run run_consumer() {
  sring::SourceOptions source;
  source.kind = sring::Source::kSim;
  source.sim.sample_rate = 0;
  source.sim.block_bytes = kBlockBytes;
  source.ring_size = kRingSize;
  sring::Session session;
  if (auto opened = sring::open_session(source, session); !opened) throw std::runtime_error(opened.error().message);
  const uint32_t seed = sring::load_relaxed(session.ring->producer().pattern_seed);
  sring::Consumer consumer(*session.ring);
  Run r;
  const auto start = Clock::now();
  const double cpu_start = thread_cpu_seconds();
  if (auto started = session.producer->start(kSeconds); !started) throw std::runtime_error(started.error().message);
  for (const sring::Block& block : consumer.blocks()) {
    const auto samples = block.samples();
    r.mismatches += sring::count_pattern_mismatches(samples.data(), block.first_sample(), samples.size(), seed);
    r.samples += samples.size();
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.cpu_seconds = thread_cpu_seconds() - cpu_start;
  r.lost = consumer.snapshot().missing_samples;
  return r;
}

// SoapySDR hands out devices by pointer, released with unmake().
struct SoapyDevice {
  SoapySDR::Device* device = SoapySDR::Device::make(kArgs);
  SoapyDevice() = default;
  SoapyDevice(const SoapyDevice&) = delete;
  SoapyDevice& operator=(const SoapyDevice&) = delete;
  ~SoapyDevice() { SoapySDR::Device::unmake(device); }
};

Run run_soapy(bool direct) {
  SoapyDevice d;
  SoapySDR::Device& device = *d.device;
  const auto seed = static_cast<uint32_t>(std::stoul(device.readSetting("seed")));
  SoapySDR::Stream* stream = device.setupStream(SOAPY_SDR_RX, SOAPY_SDR_U16, {0});
  const size_t mtu = device.getStreamMTU(stream);
  std::vector<uint16_t> buffer(mtu);
  void* buffers[] = {buffer.data()};
  Run r;
  const auto start = Clock::now();
  const double cpu_start = thread_cpu_seconds();
  if (device.activateStream(stream) != 0) throw std::runtime_error("activateStream failed");
  for (bool end = false; !end;) {
    int flags = 0;
    long long time_ns = 0;
    int n = 0;
    if (direct) {
      size_t handle = 0;
      const void* data = nullptr;
      n = device.acquireReadBuffer(stream, handle, &data, flags, time_ns, 1'000'000);
      if (n > 0) {
        r.mismatches += sring::count_pattern_mismatches(static_cast<const uint16_t*>(data), r.samples + r.lost,
                                                        static_cast<uint64_t>(n), seed);
        device.releaseReadBuffer(stream, handle);
      }
    } else {
      n = device.readStream(stream, buffers, mtu, flags, time_ns, 1'000'000);
      if (n > 0) {
        r.mismatches += sring::count_pattern_mismatches(buffer.data(), r.samples + r.lost, static_cast<uint64_t>(n),
                                                        seed);
      }
    }
    if (n == SOAPY_SDR_OVERFLOW) {
      r.lost = std::stoull(device.readSetting("samples_dropped"));
      continue;
    }
    if (n < 0 && n != SOAPY_SDR_TIMEOUT) throw std::runtime_error(SoapySDR::errToStr(n));
    if (n > 0) r.samples += static_cast<uint64_t>(n);
    end = flags & SOAPY_SDR_END_BURST;
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.cpu_seconds = thread_cpu_seconds() - cpu_start;
  r.lost = std::stoull(device.readSetting("samples_dropped"));
  device.deactivateStream(stream);
  device.closeStream(stream);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const int repetitions = argc > 1 ? std::atoi(argv[1]) : 5;
  fmt::print("soapy_bench: sim flat out, u16 x 1, 64 KiB blocks, 4 MiB ring, {:.0f} s per run, {} repetitions, "
             "every sample verified\n",
             kSeconds, repetitions);
  fmt::print("cross-core ping-pong before: {:.0f} ns\n", sring::bench::ping_pong_ns());
  const char* names[] = {"consumer", "direct", "readStream"};
  std::vector<double> gbps[3], cost[3], gbps_ratio[3], cost_ratio[3];
  bool clean = true;
  for (int rep = 0; rep < repetitions; ++rep) {
    Run runs[3];
    for (int i = 0; i < 3; ++i) {
      const int mode = (rep + i) % 3;
      const Run r = mode == 0 ? run_consumer() : run_soapy(mode == 1);
      fmt::print("  run {} {:<10} {:>6.2f} GB/s  {:>5.3f} CPU s/GB  {:>11} samples in {:.3f} s, {} mismatches, "
                 "{} lost\n",
                 rep + 1, names[mode], r.gbps(), r.cpu_s_per_gb(), r.samples, r.seconds, r.mismatches, r.lost);
      clean = clean && r.mismatches == 0 && r.lost == 0 && r.samples > 0;
      runs[mode] = r;
    }
    for (int mode = 0; mode < 3; ++mode) {
      gbps[mode].push_back(runs[mode].gbps());
      cost[mode].push_back(runs[mode].cpu_s_per_gb());
      gbps_ratio[mode].push_back(runs[mode].gbps() / runs[0].gbps());
      cost_ratio[mode].push_back(runs[mode].cpu_s_per_gb() / runs[0].cpu_s_per_gb());
    }
  }
  fmt::print("cross-core ping-pong after: {:.0f} ns\n", sring::bench::ping_pong_ns());
  fmt::print("{:<12} {:>24} {:>24}   x Consumer, median of the per-repetition ratios\n", "reader",
             "GB/s verified (min-max)", "CPU s/GB (min-max)");
  for (int mode = 0; mode < 3; ++mode) {
    const auto [gmin, gmax] = std::minmax_element(gbps[mode].begin(), gbps[mode].end());
    const auto [cmin, cmax] = std::minmax_element(cost[mode].begin(), cost[mode].end());
    fmt::print("{:<12} {:>7.2f} ({:>5.2f}-{:>5.2f})     {:>7.3f} ({:.3f}-{:.3f})     GB/s x{:.2f}, CPU x{:.2f}\n",
               names[mode], median(gbps[mode]), *gmin, *gmax, median(cost[mode]), *cmin, *cmax,
               median(gbps_ratio[mode]), median(cost_ratio[mode]));
  }
  fmt::print("{}\n", clean ? "every sample verified, none lost" : "MISMATCHES OR LOSSES");
  return clean ? 0 : 1;
}
