// What the benchmarks share: pinning a thread to a CPU, and the cross-core
// ping-pong each prints before and after its runs (when the two virtual
// CPUs sit "far apart", everything cross-core slows down together).
#pragma once

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

namespace sring::bench {

inline void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % std::max(1u, std::thread::hardware_concurrency()), &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// Round-trip time of a cache line between two threads pinned to CPUs 0
// and 1, in ns. Both ends are threads of their own, so the caller's
// affinity is left alone.
inline double ping_pong_ns() {
  // Each end waits for the other's store: acquire/release on the one line.
  std::atomic<uint64_t> ball{0};
  constexpr uint64_t kRounds = 20000;
  double ns = 0;
  std::thread other([&] {
    pin_to_cpu(1);
    for (uint64_t i = 1; i < 2 * kRounds; i += 2) {
      while (ball.load(std::memory_order_acquire) != i) {
      }
      ball.store(i + 1, std::memory_order_release);
    }
  });
  std::thread self([&] {
    pin_to_cpu(0);
    const auto start = std::chrono::steady_clock::now();
    for (uint64_t i = 0; i < 2 * kRounds; i += 2) {
      ball.store(i + 1, std::memory_order_release);
      while (ball.load(std::memory_order_acquire) != i + 2) {
      }
    }
    ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() / kRounds;
  });
  self.join();
  other.join();
  return ns;
}

}  // namespace sring::bench
