// The smallest complete sring consumer, built outside Bazel against an
// installed copy:  g++ minimal_consumer.cpp $(pkg-config --cflags --libs sring)
//
// It makes a ring in a memfd with the user-space simulated device (the same
// code works on /dev/sring0 with sring::Ring::open), acquires blocks in
// place, verifies every sample and accounts for every gap.
#include <sys/eventfd.h>

#include <chrono>
#include <cstdio>

#include "sring/ring.hpp"
#include "sring/stream.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"

int main() {
  auto host = sring::sim::HostRing::create(1 << 20);
  if (!host) {
    std::fprintf(stderr, "%s\n", host.error().message.c_str());
    return 2;
  }
  sring::sim::SimConfig config;
  config.sample_rate = 10'000'000;
  sring::sim::SimDevice device(*host, config);

  auto fd = host->duplicate_fd();
  auto ring = sring::Ring::attach(std::move(*fd), sring::Ring::Access::kConsumer);
  if (!ring) {
    std::fprintf(stderr, "%s\n", ring.error().message.c_str());
    return 2;
  }
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  // Both ends need the eventfd: without it every wait below would sleep its
  // whole timeout, and the consumer would fall behind without saying why.
  if (auto set = device.set_eventfd(efd.get()); !set) {
    std::fprintf(stderr, "%s\n", set.error().message.c_str());
    return 2;
  }
  if (auto use = ring->use_eventfd(std::move(efd)); !use) {
    std::fprintf(stderr, "%s\n", use.error().message.c_str());
    return 2;
  }

  sring::StreamConsumer consumer(*ring, /*verify=*/true);
  consumer.accounting().expect_start(0, 0);
  if (auto started = device.start(std::chrono::milliseconds(300)); !started) {
    std::fprintf(stderr, "%s\n", started.error().message.c_str());
    return 1;
  }
  for (;;) {
    auto n = consumer.consume_available();
    if (!n) {
      std::fprintf(stderr, "%s\n", n.error().message.c_str());
      return 2;
    }
    if (*n > 0) continue;
    if (ring->state() != SRING_STATE_RUNNING && ring->head() == ring->tail()) break;
    // Timed out or woken, the loop looks again either way; only an error
    // (the eventfd broken) would turn this into a busy loop.
    if (auto waited = ring->wait(sring::WaitStrategy::kEventfd, std::chrono::milliseconds(50)); !waited) {
      std::fprintf(stderr, "%s\n", waited.error().message.c_str());
      return 2;
    }
  }
  device.join();
  const auto& c = consumer.counters();
  std::printf("%llu samples, %llu lost, %llu corrupted: %s\n", (unsigned long long)c.samples,
              (unsigned long long)c.lost_samples, (unsigned long long)c.corrupted_samples,
              c.samples > 0 && c.lost_samples == 0 && c.corrupted_samples == 0 ? "OK" : "FAIL");
  return c.samples > 0 && c.lost_samples == 0 && c.corrupted_samples == 0 ? 0 : 1;
}
