// Real work on every block, in place: mean, RMS and the min/max envelope of
// each block, with exact loss accounting, in the shape of libbpf's
// ring_buffer__consume(). Built like minimal_consumer.cpp:
//   g++ envelope.cpp $(pkg-config --cflags --libs sring)
// On a device: sring::Ring::open("/dev/sring0", sring::Ring::Access::kConsumer).
#include <sys/eventfd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "sring/consumer.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"

int main() {
  // A ring and a simulated device writing signed 16-bit samples into it.
  auto host = sring::sim::HostRing::create(1 << 20);
  if (!host) return std::fprintf(stderr, "%s\n", host.error().message.c_str()), 2;
  sring::sim::SimConfig config;
  config.sample_rate = 10'000'000;
  config.sample_format = SRING_FMT_S16;
  sring::sim::SimDevice device(*host, config);
  auto ring = sring::Ring::attach(std::move(*host->duplicate_fd()), sring::Ring::Access::kConsumer);
  if (!ring) return std::fprintf(stderr, "%s\n", ring.error().message.c_str()), 2;
  // The loop below reads s16 (as<int16_t>(), which throws sring::FormatMismatch
  // on any other format): say so up front for a ring that carries another,
  // e.g. a device configured by someone else (its producer page announces
  // the layout). Several channels are fine: their values are all enveloped.
  if (ring->layout().format != SRING_FMT_S16) {
    return std::fprintf(stderr, "this example reads s16 samples; the ring carries %s\n",
                        sring::describe(ring->layout()).c_str()),
           2;
  }
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  // Both ends need the eventfd, or the wait below would never be woken.
  if (auto set = device.set_eventfd(efd.get()); !set)
    return std::fprintf(stderr, "%s\n", set.error().message.c_str()), 2;
  if (auto use = ring->use_eventfd(std::move(efd)); !use)
    return std::fprintf(stderr, "%s\n", use.error().message.c_str()), 2;

  sring::Consumer consumer(*ring);
  consumer.expect_start(0, 0);
  double sum = 0, sum_squares = 0;
  int low = 32767, high = -32768;
  if (auto started = device.start(std::chrono::milliseconds(300)); !started) {
    std::fprintf(stderr, "%s\n", started.error().message.c_str());
    return 1;
  }
  while (!consumer.end_of_stream()) {
    auto n = consumer.consume([&](const sring::Block& block) {
      for (const int16_t s : block.as<int16_t>()) {  // the ring's memory, no copy
        sum += s;
        sum_squares += double(s) * s;
        low = std::min<int>(low, s);
        high = std::max<int>(high, s);
      }
    });
    if (!n) return std::fprintf(stderr, "%s\n", n.error().message.c_str()), 2;
    if (*n > 0) continue;
    // An error here would otherwise spin this loop forever.
    if (auto waited = ring->wait(sring::WaitStrategy::kEventfd, sring::kWaitForever); !waited)
      return std::fprintf(stderr, "%s\n", waited.error().message.c_str()), 2;
  }
  device.join();
  const auto samples = double(consumer.counters().samples);
  const auto end = consumer.finish();
  std::printf("%.0f samples: mean %.1f, rms %.1f, envelope [%d, %d]; %llu lost, %llu dropped: %s\n", samples,
              sum / samples, std::sqrt(sum_squares / samples), low, high,
              (unsigned long long)end.missing_samples, (unsigned long long)end.dropped_samples,
              end.exact() ? "every sample accounted for" : "ACCOUNTING MISMATCH");
  return samples > 0 && end.exact() ? 0 : 1;
}
