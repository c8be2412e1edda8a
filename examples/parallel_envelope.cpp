// envelope.cpp on worker threads: each worker computes mean, RMS and the
// min/max envelope of the blocks it is handed, in place, into its own
// results; the reader thread accounts for every sample in ring order.
//   g++ parallel_envelope.cpp $(pkg-config --cflags --libs sring)
#include <sys/eventfd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "sring/accounting.hpp"
#include "sring/pipeline.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"

// One worker's results, on a cache line of its own: no worker writes a line another one writes.
struct alignas(64) Envelope {
  double samples = 0, sum = 0, sum_squares = 0;
  int low = 32767, high = -32768;
};

int main() {
  auto host = sring::sim::HostRing::create(4 << 20);
  if (!host) return std::fprintf(stderr, "%s\n", host.error().message.c_str()), 2;
  sring::sim::SimConfig config;
  config.sample_rate = 50'000'000;
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
  (void)device.set_eventfd(efd.get());
  (void)ring->use_eventfd(std::move(efd));

  std::vector<Envelope> results(3);  // one per worker, so no locks
  sring::Pipeline pipeline(*ring, results.size(), [&](unsigned worker, const sring::BlockDescriptor& block) {
    Envelope& e = results[worker];
    for (const int16_t s : block.as<int16_t>()) {  // the ring's memory, no copy
      e.sum += s, e.sum_squares += double(s) * s;
      e.low = std::min<int>(e.low, s), e.high = std::max<int>(e.high, s);
    }
    e.samples += block.header->sample_count;
  });
  sring::StreamAccounting accounting;  // on the reader thread, every block in ring order
  accounting.expect_start(0, 0);
  if (auto started = device.start(std::chrono::milliseconds(300)); !started) {
    std::fprintf(stderr, "%s\n", started.error().message.c_str());
    return 1;
  }
  auto run = pipeline.run(sring::WaitStrategy::kEventfd, [&] { return !pipeline.end_of_stream(); },
                          [&](const sring_block_header& header) { accounting.on_block(header); });
  device.join();
  if (!run) return std::fprintf(stderr, "%s\n", run.error().message.c_str()), 2;
  Envelope all;
  for (const Envelope& e : results) {
    all.samples += e.samples, all.sum += e.sum, all.sum_squares += e.sum_squares;
    all.low = std::min(all.low, e.low), all.high = std::max(all.high, e.high);
  }
  const auto end = accounting.finish(ring->producer());
  const bool whole = all.samples == double(accounting.counters().samples) && end.exact();
  std::printf("%.0f samples on %zu workers: mean %.1f, rms %.1f, envelope [%d, %d]; %llu lost, %llu dropped: %s\n",
              all.samples, results.size(), all.sum / all.samples, std::sqrt(all.sum_squares / all.samples), all.low,
              all.high, (unsigned long long)end.missing_samples, (unsigned long long)end.dropped_samples,
              whole ? "every sample accounted for" : "ACCOUNTING MISMATCH");
  return all.samples > 0 && whole ? 0 : 1;
}
