// Host benchmark: the sring ring with in-place verification against the
// copies people use today, side by side in one process, as ratios.
//
//   ring_bench [--runs N] [--json FILE] [--quick] [--producer generate|dma|both]
//   ring_bench --rates MSPS,MSPS,... [--runs N] [--seconds S] [--ring-size B] [--block-size B] [--json FILE]
//   ring_bench --pages-sweep [--rates MSPS,...] [--ring-sizes 4M,...] [--runs N] [--seconds S] [--json FILE]
//
// Throughput (the first form): every transport moves the same bytes from a
// producer thread to a consumer thread as fast as it can, and the consumer
// verifies every sample with the same function (sring::count_pattern_mismatches):
//   sring          HostRing + SimDevice flat out, verified in place
//   spsc batch     boost::lockfree::spsc_queue<uint16_t>, push/pop of a block
//   spsc element   the same queue, one sample at a time
//   pipe           write()/read() of blocks through a 1 MiB pipe
// Two producers: "generate" computes the pattern with ordinary stores;
// "dma" (DMA-like) writes the same pattern with non-temporal stores, which
// write whole lines without reading them first, as a DMA engine does (see
// pattern_fill_streaming). Every buffer a transport uses is written once
// before its timed window (the ring is mapped MAP_POPULATE, the queue's
// storage is filled and drained, the pipe is filled and drained), so no
// transport takes first-touch page faults while timed.
// CPU per GB (the second form): see rate_sweep(): a paced producer, the
// consumer's CPU time per GB for in-place, read() and a copying queue.
// 4 KiB against 2 MiB pages (the third form): see pages_sweep(): the
// in-place path's verify GB/s and CPU per GB by rate and ring size.
// Limits, one thread, no transport, over an already-written buffer the size
// of the ring: verify-only (the same count_pattern_mismatches) and read+sum.
// Wake-up latency, per block: from the block's commit timestamp to the moment
// the consumer's wait() returns with it; the raw eventfd baseline treats each
// write() as a block and is timed the same way, with the same pacing.
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <boost/lockfree/spsc_queue.hpp>
#include <fmt/format.h>

#include "sring/consumer.hpp"
#include "bench/bench_util.hpp"
#include "sring/ring.hpp"
#include "sring/stream.hpp"
#include "sring/verify.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"
#include "sring/sring_pattern.h"

namespace {

using sring::bench::ping_pong_ns;
using sring::bench::pin_to_cpu;

using Clock = std::chrono::steady_clock;
using sring::Ring;

// Set when any run delivered a wrong sample or inexact accounting: the
// figures are then of a broken transport, and the exit status says so.
bool g_verification_failed = false;

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

// ---- throughput: GB/s of samples verified by the consumer ----------------

// The DMA-like producer: the same pattern written with non-temporal
// stores, as a DMA engine writes whole cache lines to memory without the CPU
// first reading them in (a normal store reads each line before writing it,
// which doubles the producer's memory traffic on a ring larger than the
// caches). The consumer then finds the samples in DRAM, not in the
// producer's cache, as it would after real DMA on a machine without
// cache-injection. Nothing is precomputed: the pattern is an arithmetic
// progression in 16-bit lanes, so generating it costs no more than copying.
void pattern_fill_streaming(uint16_t* dst, uint64_t first, uint32_t count, uint32_t seed) {
#if defined(__SSE2__)
  while (count) {
    const uint32_t in_chunk = SRING_PATTERN_CHUNK - static_cast<uint16_t>(first);
    const uint32_t n = std::min(count, in_chunk);
    const uint16_t mask = sring_pattern_chunk_mask(first >> 16, seed);
    uint16_t value = static_cast<uint16_t>(static_cast<uint16_t>(first) * SRING_PATTERN_MUL);
    uint32_t k = 0;
    for (; k < n && (reinterpret_cast<uintptr_t>(dst + k) & 15); ++k) {
      dst[k] = value ^ mask;
      value = static_cast<uint16_t>(value + SRING_PATTERN_MUL);
    }
    constexpr uint16_t m = SRING_PATTERN_MUL;
    __m128i lanes = _mm_add_epi16(_mm_set1_epi16(static_cast<int16_t>(value)),
                                  _mm_setr_epi16(0, int16_t(m), int16_t(2 * m), int16_t(3 * m), int16_t(4 * m),
                                                 int16_t(5 * m), int16_t(6 * m), int16_t(7 * m)));
    const __m128i step = _mm_set1_epi16(static_cast<int16_t>(8 * m));
    const __m128i xor_mask = _mm_set1_epi16(static_cast<int16_t>(mask));
    for (; k + 8 <= n; k += 8) {
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + k), _mm_xor_si128(lanes, xor_mask));
      lanes = _mm_add_epi16(lanes, step);
      value = static_cast<uint16_t>(value + 8 * m);
    }
    for (; k < n; ++k) {
      dst[k] = value ^ mask;
      value = static_cast<uint16_t>(value + SRING_PATTERN_MUL);
    }
    dst += n;
    first += n;
    count -= n;
  }
  // Non-temporal stores are weakly ordered: a release store does not order
  // them. The fence makes the samples globally visible before the producer's
  // store_release(head) that publishes them, as a device's DMA completes
  // before its completion is signalled.
  _mm_sfence();
#else
  sring_pattern_fill(dst, first, count, seed);
#endif
}

using PatternFill = sring::sim::SimDevice::PatternFill;

void pattern_fill(uint16_t* dst, uint64_t first, uint32_t count, uint32_t seed) {
  sring_pattern_fill(dst, first, count, seed);
}

double sring_run(uint64_t ring_size, uint32_t block_bytes, uint64_t total_bytes, PatternFill fill) {
  auto host = sring::sim::HostRing::create(ring_size);
  sring::sim::SimConfig config;
  config.sample_rate = 0;  // flat out: waits for room, loses nothing
  config.block_bytes = block_bytes;
  sring::sim::SimDevice device(*host, config);
  device.set_pattern_fill(fill);
  auto ring = Ring::attach(std::move(*host->duplicate_fd()), Ring::Access::kConsumer);
  const uint64_t blocks = total_bytes / block_bytes;
  device.begin();
  std::thread producer([&] {
    pin_to_cpu(1);
    for (uint64_t made = 0; made < blocks;) {
      if (device.produce_block() == sring::sim::Produced::kWritten) ++made;
      else sring::cpu_relax();
    }
    device.end();
  });
  pin_to_cpu(0);
  sring::StreamConsumer consumer(*ring, true);
  const auto start = Clock::now();
  while (consumer.counters().blocks < blocks) {
    auto n = consumer.consume_available();
    if (!n || *n == 0) sring::cpu_relax();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  producer.join();
  if (consumer.counters().corrupted_samples || consumer.counters().lost_samples) {
    fmt::print(stderr, "sring run lost or corrupted samples\n");
    g_verification_failed = true;
  }
  return consumer.counters().samples * 2 / seconds / 1e9;
}

// The two ends every copying transport shares: a producer thread generating
// each block of the pattern and handing it to `send`, and a consumer (this
// thread) taking each block with `receive` and verifying it. GB/s of samples.
template <typename Send, typename Receive>
double copy_transport_run(uint32_t block_bytes, uint64_t total_bytes, PatternFill fill,
                          const char* name, Send send, Receive receive) {
  const uint32_t samples = (block_bytes - SRING_BLOCK_HEADER_SIZE) / 2;
  const uint64_t blocks = total_bytes / block_bytes;
  std::thread producer([&] {
    pin_to_cpu(1);
    std::vector<uint16_t> block(samples);
    uint64_t first = 0;
    for (uint64_t b = 0; b < blocks; ++b, first += samples) {
      fill(block.data(), first, samples, 1);
      if (!send(block)) return;
    }
  });
  pin_to_cpu(0);
  std::vector<uint16_t> block(samples);
  uint64_t first = 0, bad = 0;
  const auto start = Clock::now();
  for (uint64_t b = 0; b < blocks; ++b, first += samples) {
    if (!receive(block)) break;
    bad += sring::count_pattern_mismatches(block.data(), first, samples, 1);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  producer.join();
  if (bad) {
    fmt::print(stderr, "{} run corrupted {} samples\n", name, bad);
    g_verification_failed = true;
  }
  return blocks * samples * 2.0 / seconds / 1e9;
}

double spsc_run(uint64_t ring_size, uint32_t block_bytes, uint64_t total_bytes, bool batch, PatternFill fill) {
  boost::lockfree::spsc_queue<uint16_t> queue(ring_size / 2);
  // Pre-fault the queue's storage as MAP_POPULATE does the ring's: fill it
  // and drain it once, before the timed window.
  {
    std::vector<uint16_t> chunk(1 << 16);
    size_t pushed;
    do {
      pushed = queue.push(chunk.data(), chunk.size());
    } while (pushed == chunk.size());
    while (queue.pop(chunk.data(), chunk.size()) > 0) {}
  }
  auto send = [&](const std::vector<uint16_t>& block) {
    if (batch) {
      size_t done = 0;
      while (done < block.size()) done += queue.push(block.data() + done, block.size() - done);
    } else {
      for (uint16_t v : block) while (!queue.push(v)) {}
    }
    return true;
  };
  auto receive = [&](std::vector<uint16_t>& block) {
    size_t got = 0;
    if (batch) {
      while (got < block.size()) got += queue.pop(block.data() + got, block.size() - got);
    } else {
      while (got < block.size()) got += queue.pop(block[got]) ? 1 : 0;
    }
    return true;
  };
  return copy_transport_run(block_bytes, total_bytes, fill, "spsc", send, receive);
}

double pipe_run(uint32_t block_bytes, uint64_t total_bytes, PatternFill fill) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return 0;
  sring::UniqueFd read_end(fds[0]), write_end(fds[1]);
  ::fcntl(write_end.get(), F_SETPIPE_SZ, 1 << 20);
  // Pre-fault the pipe's buffer pages: fill it and drain it once, untimed.
  {
    std::vector<char> chunk(1 << 16);
    while (::write(write_end.get(), chunk.data(), chunk.size()) > 0) {}
    while (::read(read_end.get(), chunk.data(), chunk.size()) > 0) {}
    ::fcntl(read_end.get(), F_SETFL, 0);
    ::fcntl(write_end.get(), F_SETFL, 0);
  }
  auto send = [&](const std::vector<uint16_t>& block) {
    const char* p = reinterpret_cast<const char*>(block.data());
    for (size_t left = block.size() * 2; left > 0;) {
      const ssize_t n = ::write(write_end.get(), p, left);
      if (n <= 0) return false;
      p += n;
      left -= n;
    }
    return true;
  };
  auto receive = [&](std::vector<uint16_t>& block) {
    char* p = reinterpret_cast<char*>(block.data());
    for (size_t left = block.size() * 2; left > 0;) {
      const ssize_t n = ::read(read_end.get(), p, left);
      if (n <= 0) return false;
      p += n;
      left -= n;
    }
    return true;
  };
  return copy_transport_run(block_bytes, total_bytes, fill, "pipe", send, receive);
}

// The producer's limit: one thread, no consumer, writing the pattern with
// `fill` over a buffer the size of the ring, the same number of bytes. A
// transport cannot move more than its producer can write; when both limits
// are far above a transport's figure, the two threads sharing the memory
// (and the cross-core transfer of each line) bound it.
double fill_limit_run(uint64_t ring_size, uint32_t block_bytes, uint64_t total_bytes, PatternFill fill) {
  std::vector<uint16_t> buffer(ring_size / 2);
  const uint32_t samples = block_bytes / 2;
  uint64_t first = 0;
  const auto start = Clock::now();
  for (uint64_t done = 0; done < total_bytes; done += ring_size) {
    for (uint64_t off = 0; off + samples <= buffer.size(); off += samples, first += samples) {
      fill(buffer.data() + off, first, samples, 1);
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  volatile uint16_t sink = buffer[first % buffer.size()];
  (void)sink;
  return double(total_bytes) / seconds / 1e9;
}

// Both ends' limit together: one thread filling a buffer the size of the
// ring with `fill` while another verifies a second, already-written buffer
// of that size, the same bytes each, pinned as the transports' threads are.
// Nothing passes between them: what they reach is what the memory gives two
// threads streaming at once, the bound of any transport whose ring does not
// fit in the caches (the single-thread limits each had it to themselves).
double fill_and_verify_run(uint64_t ring_size, uint32_t block_bytes, uint64_t total_bytes, PatternFill fill) {
  std::vector<uint16_t> written(ring_size / 2), verified(ring_size / 2);
  sring_pattern_fill(verified.data(), 0, static_cast<uint32_t>(verified.size()), 1);
  std::fill(written.begin(), written.end(), uint16_t{0});  // pre-faulted, as the others
  std::atomic<int> ready{0};
  std::thread producer([&] {
    pin_to_cpu(1);
    ready.fetch_add(1);
    while (ready.load() < 2) {
    }
    const uint32_t samples = block_bytes / 2;
    uint64_t first = 0;
    for (uint64_t done = 0; done < total_bytes; done += ring_size) {
      for (uint64_t off = 0; off + samples <= written.size(); off += samples, first += samples) {
        fill(written.data() + off, first, samples, 1);
      }
    }
  });
  pin_to_cpu(0);
  ready.fetch_add(1);
  while (ready.load() < 2) {
  }
  const auto start = Clock::now();
  uint64_t bad = 0;
  for (uint64_t done = 0; done < total_bytes; done += ring_size) {
    bad += sring::count_pattern_mismatches(verified.data(), 0, verified.size(), 1);
  }
  producer.join();  // the slower of the two ends the window
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (bad) {
    fmt::print(stderr, "fill+verify: {} samples corrupted\n", bad);
    g_verification_failed = true;
  }
  return double(total_bytes) / seconds / 1e9;
}

// The consumer's limit: one thread, no transport, reading and summing the
// same number of bytes out of a buffer the size of the ring.
double limit_run(uint64_t ring_size, uint64_t total_bytes, bool verify) {
  std::vector<uint16_t> buffer(ring_size / 2);
  sring_pattern_fill(buffer.data(), 0, static_cast<uint32_t>(buffer.size()), 1);
  volatile uint64_t sink = 0;
  const auto start = Clock::now();
  for (uint64_t done = 0; done < total_bytes; done += ring_size) {
    sink = sink + (verify ? sring::count_pattern_mismatches(buffer.data(), 0, buffer.size(), 1)
                          : sring::sum_samples(buffer.data(), buffer.size()));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return double(total_bytes) / seconds / 1e9;
}

// ---- wake-up latency ------------------------------------------------------

struct Latency {
  double p50 = 0, p99 = 0, p999 = 0;
};

Latency percentiles(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[std::min(us.size() - 1, size_t(q * us.size()))]; };
  return {at(0.50), at(0.99), at(0.999)};
}

Latency ring_wakeup(sring::WaitStrategy strategy, int samples) {
  auto host = sring::sim::HostRing::create(4 << 20);
  sring::sim::SimConfig config;
  config.sample_rate = 1'000'000'000;  // paced by hand below
  config.block_bytes = 4096;
  sring::sim::SimDevice device(*host, config);
  auto ring = Ring::attach(std::move(*host->duplicate_fd()), Ring::Access::kConsumer);
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  // Without the eventfd on both sides a kEventfd wait would only ever time
  // out, and the figures would be the timeout, not a wake-up latency.
  if (auto set = device.set_eventfd(efd.get()); !set) {
    fmt::print(stderr, "ring_wakeup: {}\n", set.error().message);
    return {};
  }
  if (auto use = ring->use_eventfd(std::move(efd)); !use) {
    fmt::print(stderr, "ring_wakeup: {}\n", use.error().message);
    return {};
  }
  ring->set_wakeup_watermark(1);
  device.begin();
  std::atomic<bool> done{false};
  std::thread producer([&] {
    pin_to_cpu(1);
    std::mt19937 random(3);
    for (int i = 0; i < samples + 10; ++i) {
      std::this_thread::sleep_for(std::chrono::microseconds(100 + random() % 200));
      // A block not written (the consumer a whole 4 MiB ring behind, which
      // this pacing never reaches) only means one wake-up fewer to time.
      (void)device.produce_block();
    }
    done = true;
  });
  pin_to_cpu(0);
  std::vector<double> us;
  while (int(us.size()) < samples) {
    auto waited = ring->wait(strategy, std::chrono::milliseconds(100));
    const uint64_t woke = now_ns();
    if (!waited || !*waited) {
      if (done.load()) break;
      continue;
    }
    auto span = ring->acquire();
    // A wake-up with no block in it has no block to time (and neither has
    // a read of the raw eventfd without a write): per block, nothing to record.
    if (!span || span->empty()) continue;
    // Every block in the span: from its commit timestamp to this wake-up.
    for (uint64_t off = 0; off + config.block_bytes <= span->bytes; off += config.block_bytes) {
      const auto* block = reinterpret_cast<const sring_block_header*>(span->data + off);
      us.push_back((woke - block->timestamp_ns) / 1e3);
    }
    (void)ring->release(span->end());  // all of what was acquired: cannot be refused
  }
  producer.join();
  return percentiles(us);
}

// The baseline: the same pacing, each write() of the eventfd a "block" with
// its commit time; the consumer times every write it sees on each read()
// (an eventfd adds up writes, as the ring's consumer finds several blocks
// after one wake-up), from that write's time to the read's return.
Latency raw_eventfd(int samples) {
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC));
  auto sent_at = std::make_unique<std::atomic<uint64_t>[]>(samples);
  std::vector<double> us;
  std::thread consumer([&] {
    pin_to_cpu(0);
    for (int seen = 0; seen < samples;) {
      uint64_t count;
      if (::read(efd.get(), &count, 8) != 8) return;
      const uint64_t woke = now_ns();
      for (uint64_t k = 0; k < count && seen < samples; ++k, ++seen) {
        us.push_back((woke - sent_at[seen].load(std::memory_order_acquire)) / 1e3);
      }
    }
  });
  pin_to_cpu(1);
  std::mt19937 random(3);
  for (int i = 0; i < samples; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(100 + random() % 200));
    sent_at[i].store(now_ns(), std::memory_order_release);
    const uint64_t one = 1;
    if (::write(efd.get(), &one, 8) != 8) break;
  }
  consumer.join();
  return percentiles(us);
}

// ---- the consumer's CPU cost at a fixed rate ------------------------------
//
// One producer thread (cpu 1) makes blocks at a fixed sample rate, as a
// device does: block k is due when its last sample has been taken; a block
// that finds no room is dropped and counted, never waited for. The same
// paced loop and the same DMA-like fill drive every path. One consumer
// thread (cpu 0) takes every block, verifies every sample with
// count_pattern_mismatches, and sleeps when there is nothing to take:
//   in place  sring::Consumer over the ring, eventfd wake-ups, verified
//             where the producer wrote it
//   read()    pread() of whole blocks from kernel pages as large as the
//             ring (the copy_to_user() of a driver's read(), plus the
//             system call), after the same eventfd handshake
//   copy      boost spsc_queue as large as the ring, the block popped into
//             the consumer's buffer, an eventfd when the consumer sleeps
//             (the same need-wakeup handshake the ring uses)
// Each path runs twice: woken for every block, and woken once a quarter of
// the buffer waits (the ring's watermark; the same rule on the others).
// The DMA-like fill writes the copying paths' producer buffer, which is
// then copied with ordinary stores, so their consumers may find the copy
// still in a cache while the ring's consumer reads DRAM: conservative for
// the ring. Blocks carry the same 64-byte header on every path (the copying paths
// need its first_sample to verify after a drop). The consumer's CPU time
// is getrusage(RUSAGE_THREAD), user + system, from its first wait to its
// last block: the copy inside read() is system time of the consumer.

struct RateRun {
  double seconds = 0;            // wall time of the producer's run
  uint64_t offered_samples = 0;  // what the producer made (written or dropped)
  uint64_t delivered_samples = 0;
  uint64_t lost_samples = 0;     // dropped for lack of room, counted exactly
  uint64_t corrupted = 0;
  double user_s = 0, sys_s = 0;
  uint64_t sleeps = 0;           // voluntary context switches of the consumer
  bool kept_rate = true;         // the producer kept its schedule (else it bounds the run)
  // The in-place path only: wall time inside the consumer's verify calls and
  // the bytes they verified (the verify pass over data the DMA-like producer
  // left in memory, not in a cache).
  double verify_s = 0;
  uint64_t verified_bytes = 0;
  double cpu_s_per_gb() const {
    return delivered_samples ? (user_s + sys_s) / (delivered_samples * 2.0 / 1e9) : 0;
  }
  double verify_gb_per_s() const { return verify_s > 0 ? verified_bytes / verify_s / 1e9 : 0; }
};

struct ThreadUsage {
  double user_s = 0, sys_s = 0;
  uint64_t voluntary = 0;
  static ThreadUsage now() {
    rusage u{};
    getrusage(RUSAGE_THREAD, &u);
    return {u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6, u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6,
            uint64_t(u.ru_nvcsw)};
  }
};

// The consumer's loop on each path, behind one name, so that a profile can
// count it alone: valgrind --tool=callgrind --toggle-collect='*consume_loop*'
// (scripts/bench-profile.sh).
template <typename Loop>
[[gnu::noinline]] void consume_loop(Loop&& loop) {
  loop();
}

void charge(RateRun& run, const ThreadUsage& before) {
  const ThreadUsage after = ThreadUsage::now();
  run.user_s = after.user_s - before.user_s;
  run.sys_s = after.sys_s - before.sys_s;
  run.sleeps = after.voluntary - before.voluntary;
}

// The paced producer loop every path shares. `make(k)` makes block k (it
// writes or drops it and counts which). Returns whether the producer kept
// its schedule: it may fall behind by a few blocks and catch up, but a run
// whose producer ends more than 5% late measures the producer, not the path.
template <typename Make>
bool paced_producer(uint64_t sample_rate, uint32_t samples_per_block, double seconds, RateRun& run, Make make) {
  pin_to_cpu(1);
  const uint64_t blocks = std::max<uint64_t>(1, uint64_t(seconds * sample_rate / samples_per_block));
  const auto start = Clock::now();
  auto due = [&](uint64_t k) {
    return start + std::chrono::nanoseconds(int64_t((k + 1) * samples_per_block * 1e9L / sample_rate));
  };
  for (uint64_t k = 0; k < blocks; ++k) {
    const auto when = due(k);
    if (Clock::now() < when) std::this_thread::sleep_until(when);
    make(k);
  }
  const auto end = Clock::now();
  run.seconds = std::chrono::duration<double>(end - start).count();
  run.offered_samples = blocks * samples_per_block;
  return end - due(blocks - 1) < std::chrono::duration<double>(0.05 * seconds);
}

// The in-place path on a simulator ring whose data lives in `pages` (4 KiB
// or 2 MiB pages: pages_sweep()).
RateRun rate_in_place_pages(uint64_t sample_rate, uint64_t ring_size, uint32_t block_bytes, uint64_t wake_bytes,
                            double seconds, PatternFill fill, sring::sim::RingPages pages) {
  RateRun run;
  auto host = sring::sim::HostRing::create(ring_size, "ring_bench", pages);
  if (!host) {
    fmt::print(stderr, "rate_in_place: {}\n", host.error().message);
    std::exit(1);
  }
  sring::sim::SimConfig config;
  config.sample_rate = sample_rate;  // paced: drop-newest when full, counted
  config.block_bytes = block_bytes;
  // No flush timeout acts here (this loop never calls poll_flush()): the
  // watermark alone decides when the consumer wakes, as on the copying paths.
  sring::sim::SimDevice device(*host, config);
  device.set_pattern_fill(fill);
  auto ring = Ring::attach(std::move(*host->duplicate_fd()), std::move(*host->duplicate_data_fd()),
                           Ring::Access::kConsumer);
  if (!ring) {
    fmt::print(stderr, "rate_in_place: {}\n", ring.error().message);
    std::exit(1);
  }
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!device.set_eventfd(efd.get()) || !ring->use_eventfd(std::move(efd))) {
    fmt::print(stderr, "rate_in_place: no eventfd\n");
    std::exit(1);
  }
  ring->set_wakeup_watermark(std::max<uint64_t>(wake_bytes, block_bytes));
  sring::Consumer consumer(*ring);
  device.begin();
  std::thread producer([&] {
    run.kept_rate = paced_producer(sample_rate, device.samples_per_block(), seconds, run,
                                   [&](uint64_t) { (void)device.produce_block(); });
    device.end();
  });
  pin_to_cpu(0);
  const ThreadUsage before = ThreadUsage::now();
  uint64_t bad = 0;
  consume_loop([&] {
    for (;;) {
      auto taken = consumer.consume([&](const sring::Block& block) {
        const auto start = Clock::now();
        bad += sring::count_pattern_mismatches(block.samples().data(), block.first_sample(),
                                               block.samples().size(), config.pattern_seed);
        run.verify_s += std::chrono::duration<double>(Clock::now() - start).count();
        run.verified_bytes += block.samples().size() * 2;
        return true;
      });
      if (!taken) {
        fmt::print(stderr, "rate_in_place: {}\n", taken.error().message);
        break;
      }
      if (*taken > 0) continue;
      if (consumer.end_of_stream()) break;
      // The timeout is a backstop only (the copying paths have none).
      (void)consumer.wait(sring::WaitStrategy::kEventfd, std::chrono::seconds(1));
    }
  });
  charge(run, before);
  producer.join();
  const sring::Counters c = consumer.snapshot();
  run.delivered_samples = c.samples;
  run.lost_samples = c.missing_samples;
  run.corrupted = bad;
  if (!c.exact) {
    fmt::print(stderr, "rate_in_place: accounting not exact\n");
    g_verification_failed = true;
  }
  return run;
}

RateRun rate_in_place(uint64_t sample_rate, uint64_t ring_size, uint32_t block_bytes, uint64_t wake_bytes,
                      double seconds, PatternFill fill) {
  return rate_in_place_pages(sample_rate, ring_size, block_bytes, wake_bytes, seconds, fill,
                             sring::sim::RingPages::k4K);
}

// The producer's side of the copying paths: block k with its header, filled
// by the DMA-like fill into the producer's own buffer (the driver's bounce
// buffer), then handed to `send`, which copies it or reports no room.
struct BlockMaker {
  uint32_t block_bytes, samples;
  std::vector<uint16_t> buffer;
  explicit BlockMaker(uint32_t bytes)
      : block_bytes(bytes), samples((bytes - SRING_BLOCK_HEADER_SIZE) / 2), buffer(bytes / 2) {}
  const uint16_t* make(uint64_t k, PatternFill fill) {
    sring_block_header header{};
    header.magic = SRING_BLOCK_MAGIC;
    header.total_bytes = block_bytes;
    header.sequence = k;
    header.first_sample = k * samples;
    header.sample_count = samples;
    std::memcpy(buffer.data(), &header, sizeof(header));
    fill(buffer.data() + SRING_BLOCK_HEADER_SIZE / 2, k * samples, samples, 1);
    return buffer.data();
  }
};

// Verifies one block of a copying path: its header first (a block cut or
// shifted in transit counts as all samples corrupted, and its sample count
// is never trusted to size the check), then every sample.
uint64_t verify_block(const uint16_t* block, uint32_t block_bytes) {
  sring_block_header header;
  std::memcpy(&header, block, sizeof(header));
  const uint32_t samples = (block_bytes - SRING_BLOCK_HEADER_SIZE) / 2;
  if (header.magic != SRING_BLOCK_MAGIC || header.total_bytes != block_bytes || header.sample_count != samples ||
      header.first_sample != header.sequence * samples) {
    return samples;
  }
  return sring::count_pattern_mismatches(block + SRING_BLOCK_HEADER_SIZE / 2, header.first_sample, samples, 1);
}

// The copying paths count their own drops: what the producer made must be
// what was delivered plus what was dropped, exactly, as the ring's
// accounting is checked (Consumer::snapshot().exact).
void check_accounting(const char* path, const RateRun& run) {
  if (run.delivered_samples + run.lost_samples != run.offered_samples) {
    fmt::print(stderr, "{}: {} delivered + {} dropped != {} made\n", path, run.delivered_samples,
               run.lost_samples, run.offered_samples);
    g_verification_failed = true;
  }
}

// The need-wakeup handshake of the batched copying paths, as the ring's:
// the consumer sets `sleeping`, fences, looks again, then sleeps on the
// eventfd; the producer makes data visible, fences, and signals only if it
// sees `sleeping` and the watermark is reached (or the stream ended). The
// two seq_cst fences pair as the ring's smp_mb() pair: at least one side
// sees the other's store, so no wake-up is lost.
struct WakeHandshake {
  sring::UniqueFd eventfd{::eventfd(0, EFD_CLOEXEC)};
  std::atomic<bool> sleeping{false}, finished{false};
  // Producer side, after making data visible.
  void wake_if(bool watermark_reached) {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with sleep()'s fence
    if ((finished.load() || watermark_reached) && sleeping.exchange(false)) {
      const uint64_t one = 1;
      (void)!::write(eventfd.get(), &one, sizeof(one));
    }
  }
  void finish() {
    finished.store(true);
    wake_if(true);
  }
  // Consumer side: sleeps unless `ready()` (looked at after arming) says
  // there is enough to take.
  template <typename Ready>
  void sleep(Ready ready) {
    sleeping.store(true);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with wake_if()'s fence
    if (ready() || finished.load()) {
      sleeping.store(false);
      return;
    }
    uint64_t count;
    (void)!::read(eventfd.get(), &count, sizeof(count));
  }
};

// read(): what a read() driver does, without a driver. The samples sit in
// kernel pages that stay put (a memfd the size of the ring, written with
// pwrite() by the producer as a device's DMA fills a driver's buffer), and
// the consumer copies them out with pread(), the copy_to_user() of a
// driver's read(), after waiting on the same handshake as the other paths.
// (A pipe would add a page allocation and free per 4 KiB, which a driver
// does not have.) Per block: woken for every block, one pread() per block.
// Batched: woken once a quarter of the buffer waits, as sring's driver's
// read() honours the watermark, then one pread() per contiguous run.
RateRun rate_read(uint64_t sample_rate, uint64_t ring_size, uint32_t block_bytes, uint64_t wake_bytes,
                  double seconds, PatternFill fill) {
  RateRun run;
  sring::UniqueFd kernel_buffer(::memfd_create("ring_bench-read", MFD_CLOEXEC));
  if (!kernel_buffer.valid() || ::ftruncate(kernel_buffer.get(), off_t(ring_size)) != 0) {
    fmt::print(stderr, "read() path: memfd: {}\n", std::strerror(errno));
    std::exit(1);
  }
  {  // pre-fault the kernel buffer's pages (written, then read), untimed
    std::vector<char> chunk(1 << 20);
    for (uint64_t off = 0; off < ring_size; off += chunk.size()) {
      const size_t n = size_t(std::min<uint64_t>(chunk.size(), ring_size - off));
      if (::pwrite(kernel_buffer.get(), chunk.data(), n, off_t(off)) != ssize_t(n) ||
          ::pread(kernel_buffer.get(), chunk.data(), n, off_t(off)) != ssize_t(n)) {
        std::exit(1);
      }
    }
  }
  // Bytes written and bytes taken, free-running: head's release store after
  // the pwrite() pairs with the consumer's acquire load before its pread();
  // tail's release store after the pread() pairs with the producer's
  // acquire load before it reuses that space.
  std::atomic<uint64_t> head{0}, tail{0};
  const uint64_t wake_at = std::max<uint64_t>(wake_bytes, block_bytes);
  WakeHandshake handshake;
  BlockMaker maker(block_bytes);
  std::thread producer([&] {
    run.kept_rate = paced_producer(sample_rate, maker.samples, seconds, run, [&](uint64_t k) {
      const uint64_t h = head.load(std::memory_order_relaxed);  // only this thread stores it
      if (ring_size - (h - tail.load(std::memory_order_acquire)) < block_bytes) {
        run.lost_samples += maker.samples;
        return;
      }
      const ssize_t n = ::pwrite(kernel_buffer.get(), maker.make(k, fill), block_bytes, off_t(h % ring_size));
      if (n != ssize_t(block_bytes)) {
        fmt::print(stderr, "read() path: pwrite: {}\n", std::strerror(errno));
        g_verification_failed = true;
        return;
      }
      head.store(h + block_bytes, std::memory_order_release);
      handshake.wake_if(h + block_bytes - tail.load(std::memory_order_acquire) >= wake_at);
    });
    handshake.finish();
  });
  pin_to_cpu(0);
  const ThreadUsage before = ThreadUsage::now();
  consume_loop([&] {
    const uint64_t chunk = wake_at > block_bytes ? wake_at : block_bytes;
    std::vector<uint16_t> buffer(chunk / 2);
    uint64_t t = 0;  // only this thread stores tail
    for (;;) {
      const uint64_t available = head.load(std::memory_order_acquire) - t;
      if (available >= block_bytes) {
        // Up to `chunk`, whole blocks, not past the end of the buffer.
        const uint64_t n = std::min({available, chunk, ring_size - t % ring_size}) / block_bytes * block_bytes;
        if (::pread(kernel_buffer.get(), buffer.data(), n, off_t(t % ring_size)) != ssize_t(n)) {
          fmt::print(stderr, "read() path: pread: {}\n", std::strerror(errno));
          g_verification_failed = true;
          break;
        }
        t += n;
        tail.store(t, std::memory_order_release);
        for (uint64_t off = 0; off < n; off += block_bytes) {
          run.corrupted += verify_block(buffer.data() + off / 2, block_bytes);
          run.delivered_samples += maker.samples;
        }
        continue;
      }
      if (handshake.finished.load()) {
        if (head.load(std::memory_order_acquire) - t >= block_bytes) continue;
        break;
      }
      handshake.sleep([&] { return head.load(std::memory_order_acquire) - t >= wake_at; });
    }
  });
  charge(run, before);
  producer.join();
  check_accounting("read()", run);
  return run;
}

RateRun rate_copy(uint64_t sample_rate, uint64_t ring_size, uint32_t block_bytes, uint64_t wake_bytes,
                  double seconds, PatternFill fill) {
  RateRun run;
  const size_t words = block_bytes / 2;
  const size_t capacity = ring_size / 2;
  boost::lockfree::spsc_queue<uint16_t> queue(capacity);
  {  // pre-fault the queue's storage, untimed
    std::vector<uint16_t> chunk(1 << 16);
    while (queue.push(chunk.data(), chunk.size()) == chunk.size()) {}
    while (queue.pop(chunk.data(), chunk.size()) > 0) {}
  }
  // Per block: the consumer is woken for every block. Batched like the
  // ring's watermark: once `wake_words` are queued (or at the end).
  const size_t wake_words = std::max<uint64_t>(wake_bytes, block_bytes) / 2;
  WakeHandshake handshake;
  BlockMaker maker(block_bytes);
  std::thread producer([&] {
    run.kept_rate = paced_producer(sample_rate, maker.samples, seconds, run, [&](uint64_t k) {
      const size_t room = queue.write_available();  // producer-side call
      if (room < words) {
        run.lost_samples += maker.samples;
        return;
      }
      queue.push(maker.make(k, fill), words);
      handshake.wake_if(capacity - room + words >= wake_words);
    });
    handshake.finish();
  });
  pin_to_cpu(0);
  const ThreadUsage before = ThreadUsage::now();
  consume_loop([&] {
    std::vector<uint16_t> block(words);
    for (;;) {
      if (queue.read_available() >= words) {  // consumer-side call
        queue.pop(block.data(), words);
        run.corrupted += verify_block(block.data(), block_bytes);
        run.delivered_samples += maker.samples;
        continue;
      }
      if (handshake.finished.load()) {
        if (queue.read_available() >= words) continue;
        break;
      }
      handshake.sleep([&] { return queue.read_available() >= wake_words; });
    }
  });
  charge(run, before);
  producer.join();
  check_accounting("copy queue", run);
  return run;
}

}  // namespace

struct Series {
  std::string name;
  std::string producer;  // "generate", "dma", or "" for the one-thread limits
  std::vector<double> gbps;
};

std::string json_list(const std::vector<double>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += fmt::format("{}{:.3f}", i ? ", " : "", v[i]);
  return out + "]";
}

// min / median / max of the per-run ratios a[r] / b[r] (same run, same config).
std::vector<double> ratios(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> out;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) out.push_back(b[i] > 0 ? a[i] / b[i] : 0);
  return out;
}

struct Spread {
  double min = 0, median = 0, max = 0;
};

Spread spread(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return {};
  return {v.front(), v[v.size() / 2], v.back()};
}

// The rate sweep: every path at every rate, `runs` times, the paths
// interleaved within each repetition (their order rotating) so that drift
// hits them alike. Prints the consumer's CPU per GB and the paired ratios.
std::string rate_sweep(const std::vector<double>& rates_msps, int runs, double seconds, uint64_t ring_size,
                       uint32_t block_bytes, const std::string& only) {
  struct Path {
    const char* name;
    RateRun (*run)(uint64_t, uint64_t, uint32_t, uint64_t, double, PatternFill);
    uint64_t wake_bytes;  // wake the consumer once this much is waiting
  };
  // Row 0 is what the others are compared with. Per block: every path wakes
  // its consumer for each block (a pipe's reader cannot ask for less).
  // Batched: the ring's watermark at a quarter of the ring, and the same
  // watermark built into the copy queue, so that the copy's cost shows apart
  // from the wake-ups'.
  const uint64_t batch = ring_size / 4;
  const Path paths[] = {{"in place", rate_in_place, 0},
                        {"read()", rate_read, 0},
                        {"copy queue", rate_copy, 0},
                        {"in place/4", rate_in_place, batch},
                        {"read()/4", rate_read, batch},
                        {"copy q./4", rate_copy, batch}};
  constexpr size_t kPaths = std::size(paths);
  fmt::print(
      "\nConsumer CPU per GB at fixed rates: {} KiB blocks, {} MiB of buffering on every path, DMA-like\n"
      "producer (non-temporal stores) paced on cpu 1, one consumer on cpu 0 verifying every sample and\n"
      "sleeping when idle; {:.1f} s per run, {} runs per rate, paths interleaved. CPU = getrusage(RUSAGE_THREAD)\n"
      "user+sys of the consumer. Cells: min / median / max; x in place: per-run ratio to the in-place run of the\n"
      "same repetition. loss-free: runs with no sample dropped and the producer on schedule.\n",
      block_bytes >> 10, ring_size >> 20, seconds, runs);
  std::string json = "[\n";
  std::vector<double> best(kPaths, 0);
  std::vector<bool> still(kPaths, true);
  bool first_json = true;
  for (double msps : rates_msps) {
    const uint64_t rate = uint64_t(msps * 1e6);
    std::vector<std::vector<RateRun>> results(kPaths);
    for (int r = 0; r < runs; ++r) {
      for (size_t i = 0; i < kPaths; ++i) {
        const size_t p = (i + size_t(r)) % kPaths;
        if (!only.empty() && only != paths[p].name) {
          results[p].push_back({});
          continue;
        }
        results[p].push_back(
            paths[p].run(rate, ring_size, block_bytes, paths[p].wake_bytes, seconds, pattern_fill_streaming));
      }
    }
    fmt::print("\n{:g} MS/s ({:.0f} MB/s)\n", msps, msps * 2);
    fmt::print("  {:<10} | {:>22} | {:>6} {:>6} | {:>9} | {:>8} | {:>9} | {:>20}\n", "path",
               "CPU s/GB min/med/max", "user", "sys", "sleeps/GB", "MB/s", "loss-free", "x in place");
    for (size_t p = 0; p < kPaths; ++p) {
      if (!only.empty() && only != paths[p].name) continue;
      std::vector<double> cpu, user, sys, sleeps, mbps, vs;
      int loss_free = 0;
      for (size_t r = 0; r < results[p].size(); ++r) {
        const RateRun& run = results[p][r];
        const double gb = run.delivered_samples * 2.0 / 1e9;
        cpu.push_back(run.cpu_s_per_gb());
        user.push_back(gb > 0 ? run.user_s / gb : 0);
        sys.push_back(gb > 0 ? run.sys_s / gb : 0);
        sleeps.push_back(gb > 0 ? run.sleeps / gb : 0);
        mbps.push_back(run.seconds > 0 ? run.delivered_samples * 2.0 / run.seconds / 1e6 : 0);
        vs.push_back(results[0][r].cpu_s_per_gb() > 0 ? run.cpu_s_per_gb() / results[0][r].cpu_s_per_gb() : 0);
        if (run.lost_samples == 0 && run.corrupted == 0 && run.kept_rate) ++loss_free;
        if (run.corrupted) {
          fmt::print(stderr, "{} at {:g} MS/s: {} samples corrupted\n", paths[p].name, msps, run.corrupted);
          g_verification_failed = true;
        }
      }
      const Spread c = spread(cpu), v = spread(vs);
      const bool kept = std::all_of(results[p].begin(), results[p].end(), [](const RateRun& x) { return x.kept_rate; });
      fmt::print("  {:<10} | {:6.3f} {:7.3f} {:7.3f} | {:6.3f} {:6.3f} | {:9.0f} | {:8.0f} | {:>5}/{:<3}{} | {}\n",
                 paths[p].name, c.min, c.median, c.max, spread(user).median, spread(sys).median,
                 spread(sleeps).median, spread(mbps).median, loss_free, runs, kept ? " " : "*",
                 p == 0 ? std::string("") : fmt::format("{:5.2f} {:5.2f} {:5.2f}", v.min, v.median, v.max));
      if (loss_free == runs && still[p]) best[p] = msps;
      else still[p] = false;
      std::vector<double> delivered;
      for (const RateRun& run : results[p]) delivered.push_back(run.delivered_samples * 2.0);
      json += fmt::format("{}    {{\"rate_msps\": {:g}, \"path\": \"{}\", \"delivered_bytes\": {}, \"cpu_s_per_gb\": {}, \"user_s_per_gb\": {}, "
                          "\"sys_s_per_gb\": {}, \"sleeps_per_gb\": {}, \"mb_per_s\": {}, \"loss_free_runs\": {}, "
                          "\"runs\": {}, \"producer_kept_rate\": {}, \"ratio_to_in_place\": {}}}",
                          first_json ? "" : ",\n", msps, paths[p].name, json_list(delivered), json_list(cpu), json_list(user),
                          json_list(sys), json_list(sleeps), json_list(mbps), loss_free, runs, kept,
                          json_list(vs));
      first_json = false;
    }
  }
  fmt::print("  (* the producer fell behind its schedule in some run: that rate measures the producer)\n");
  fmt::print("\nhighest rate loss-free in {0} of {0} runs, from the lowest rate up:", runs);
  for (size_t p = 0; p < kPaths; ++p) {
    if (only.empty() || only == paths[p].name) fmt::print(" {} {:g} MS/s;", paths[p].name, best[p]);
  }
  fmt::print("\n");
  json += "\n  ],\n  \"highest_loss_free_msps\": {";
  for (size_t p = 0; p < kPaths; ++p) json += fmt::format("{}\"{}\": {:g}", p ? ", " : "", paths[p].name, best[p]);
  return json + "}";
}

// The page-size sweep: the in-place path on the user-space simulator, its
// ring's data in 4 KiB pages (the ring file, mapped twice) or in 2 MiB pages
// (a hugetlb data file, mapped twice at 2 MiB-aligned addresses, producer and
// consumer alike), at each rate and ring size. Per run: the verify pass's
// GB/s (bytes verified over wall time inside count_pattern_mismatches) and
// the consumer's CPU per GB (as rate_sweep). The two page sizes of a cell run
// back to back, their order alternating, and are compared per repetition.
std::string pages_sweep(const std::vector<double>& rates_msps, const std::vector<uint64_t>& ring_sizes, int runs,
                        double seconds, uint32_t block_bytes, uint64_t wake_bytes) {
  using sring::sim::RingPages;
  struct Cell {
    double msps;
    uint64_t ring;
    std::vector<RateRun> small, huge;  // 4 KiB, 2 MiB
  };
  std::vector<Cell> cells;
  for (double msps : rates_msps) {
    for (uint64_t ring : ring_sizes) cells.push_back({msps, ring, {}, {}});
  }
  fmt::print(
      "In place on the user-space simulator, data in 4 KiB pages against 2 MiB (hugetlb) pages: {} KiB\n"
      "blocks, DMA-like producer (non-temporal stores) paced on cpu 1, one consumer on cpu 0 verifying every\n"
      "sample, woken once {} KiB wait; {:.1f} s per run, {} runs per cell, the two page sizes back to back in\n"
      "alternating order. verify GB/s: bytes over wall time inside count_pattern_mismatches (the samples come\n"
      "from memory, not a cache: the producer's stores bypass it). CPU s/GB: getrusage(RUSAGE_THREAD) user+sys\n"
      "of the consumer. Cells: median (min-max); huge/4k: per-repetition ratio, median (min-max).\n",
      block_bytes >> 10, wake_bytes >> 10, seconds, runs);
  for (int r = 0; r < runs; ++r) {
    for (Cell& cell : cells) {
      const uint64_t rate = uint64_t(cell.msps * 1e6);
      for (int i = 0; i < 2; ++i) {
        const bool huge = (i + r) % 2 == 1;
        (huge ? cell.huge : cell.small)
            .push_back(rate_in_place_pages(rate, cell.ring, block_bytes, wake_bytes, seconds, pattern_fill_streaming,
                                           huge ? RingPages::kHuge : RingPages::k4K));
      }
    }
    fmt::print("  repetition {} of {} done\n", r + 1, runs);
  }
  auto column = [](const std::vector<RateRun>& v, double (RateRun::*f)() const) {
    std::vector<double> out;
    for (const RateRun& run : v) out.push_back((run.*f)());
    return out;
  };
  auto cell_text = [](const Spread& x, const char* format) {
    return fmt::format(fmt::runtime(format), x.median, x.min, x.max);
  };
  fmt::print("\n  {:>6} {:>6} | {:^22} {:^22} {:^19} | {:^22} {:^22} {:^19} | {:>9}\n", "MS/s", "ring",
             "verify GB/s, 4 KiB", "verify GB/s, 2 MiB", "huge/4k", "CPU s/GB, 4 KiB", "CPU s/GB, 2 MiB", "huge/4k",
             "loss-free");
  std::string json = "[\n";
  for (size_t c = 0; c < cells.size(); ++c) {
    const Cell& cell = cells[c];
    const auto v4 = column(cell.small, &RateRun::verify_gb_per_s), v2 = column(cell.huge, &RateRun::verify_gb_per_s);
    const auto c4 = column(cell.small, &RateRun::cpu_s_per_gb), c2 = column(cell.huge, &RateRun::cpu_s_per_gb);
    int loss_free = 0;
    for (const auto* side : {&cell.small, &cell.huge}) {
      for (const RateRun& run : *side) {
        if (run.lost_samples == 0 && run.corrupted == 0 && run.kept_rate) ++loss_free;
        if (run.corrupted) {
          fmt::print(stderr, "pages sweep at {:g} MS/s: {} samples corrupted\n", cell.msps, run.corrupted);
          g_verification_failed = true;
        }
      }
    }
    const std::string ring = cell.ring >= (1u << 30) ? fmt::format("{}G", cell.ring >> 30)
                                                     : fmt::format("{}M", cell.ring >> 20);
    fmt::print("  {:>6g} {:>6} | {:>22} {:>22} {:>19} | {:>22} {:>22} {:>19} | {:>5}/{:<3}\n", cell.msps, ring,
               cell_text(spread(v4), "{:6.2f} ({:5.2f}-{:5.2f})"), cell_text(spread(v2), "{:6.2f} ({:5.2f}-{:5.2f})"),
               cell_text(spread(ratios(v2, v4)), "{:4.2f}x ({:4.2f}-{:4.2f})"),
               cell_text(spread(c4), "{:6.3f} ({:5.3f}-{:5.3f})"), cell_text(spread(c2), "{:6.3f} ({:5.3f}-{:5.3f})"),
               cell_text(spread(ratios(c2, c4)), "{:4.2f}x ({:4.2f}-{:4.2f})"), loss_free, 2 * runs);
    json += fmt::format(
        "{}    {{\"rate_msps\": {:g}, \"ring_bytes\": {}, \"verify_gb_per_s_4k\": {}, \"verify_gb_per_s_huge\": {}, "
        "\"verify_ratio_huge_to_4k\": {}, \"cpu_s_per_gb_4k\": {}, \"cpu_s_per_gb_huge\": {}, "
        "\"cpu_ratio_huge_to_4k\": {}, \"loss_free_runs\": {}, \"runs\": {}}}",
        c ? ",\n" : "", cell.msps, cell.ring, json_list(v4), json_list(v2), json_list(ratios(v2, v4)), json_list(c4),
        json_list(c2), json_list(ratios(c2, c4)), loss_free, 2 * runs);
  }
  return json + "\n  ]";
}

// The end of a sweep: the ping-pong after it (not under a profiler), the
// JSON (the sweep's own fields, its rows under `key`, both ping-pongs) and
// the exit status.
int finish_sweep(const std::string& json_path, const std::string& fields, const char* key, const std::string& rows,
                 double ping_before, bool measure_after) {
  const double ping_after = measure_after ? ping_pong_ns() : 0;
  fmt::print("\ncross-core ping-pong after: {:.0f} ns per round trip\n", ping_after);
  if (!json_path.empty()) {
    std::ofstream(json_path) << fmt::format(
        "{{\n  {},\n  \"{}\": {},\n  \"ping_pong_ns\": {{\"before\": {:.0f}, \"after\": {:.0f}}}\n}}\n", fields,
        key, rows, ping_before, ping_after);
  }
  return g_verification_failed ? 1 : 0;
}

// "4M,16M,1G" (K, M, G: binary) as bytes.
std::vector<uint64_t> parse_sizes(const std::string& list) {
  std::vector<uint64_t> out;
  for (size_t at = 0; at < list.size();) {
    const size_t comma = std::min(list.find(',', at), list.size());
    char* end = nullptr;
    uint64_t v = std::strtoull(list.c_str() + at, &end, 0);
    if (*end == 'K' || *end == 'k') v <<= 10;
    else if (*end == 'M' || *end == 'm') v <<= 20;
    else if (*end == 'G' || *end == 'g') v <<= 30;
    out.push_back(v);
    at = comma + 1;
  }
  return out;
}

int main(int argc, char** argv) {
  int runs = 5;
  bool quick = false;
  bool generate = true, dma = true;
  std::string json_path;
  std::vector<double> rates;
  double rate_seconds = 1.0;
  uint64_t rate_ring = 16 << 20;  // every path buffers this much
  uint32_t rate_block = 64 << 10;
  std::string rate_only;
  bool page_sweep = false;
  std::vector<uint64_t> sweep_rings = {4 << 20, 16 << 20, 64 << 20, 256 << 20, 1 << 30};
  uint64_t sweep_wake = 1 << 20;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else if (arg == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (arg == "--quick") quick = true;
    else if (arg == "--rates" && i + 1 < argc) {
      // MS/s, comma-separated: the CPU-per-GB sweep instead of the throughput runs
      std::string list = argv[++i];
      for (size_t at = 0; at < list.size();) {
        const size_t comma = std::min(list.find(',', at), list.size());
        rates.push_back(std::atof(list.substr(at, comma - at).c_str()));
        at = comma + 1;
      }
    } else if (arg == "--seconds" && i + 1 < argc) rate_seconds = std::atof(argv[++i]);
    else if (arg == "--ring-size" && i + 1 < argc) rate_ring = std::strtoull(argv[++i], nullptr, 0);
    else if (arg == "--block-size" && i + 1 < argc) rate_block = uint32_t(std::strtoul(argv[++i], nullptr, 0));
    else if (arg == "--only" && i + 1 < argc) rate_only = argv[++i];  // one path of the sweep (profiles)
    else if (arg == "--pages-sweep") page_sweep = true;
    else if (arg == "--ring-sizes" && i + 1 < argc) sweep_rings = parse_sizes(argv[++i]);
    else if (arg == "--wake-bytes" && i + 1 < argc) sweep_wake = std::strtoull(argv[++i], nullptr, 0);
    else if (arg == "--producer" && i + 1 < argc) {
      const std::string which = argv[++i];
      generate = which == "generate" || which == "both";
      dma = which == "dma" || which == "both";
      if (!generate && !dma) {
        fmt::print(stderr, "--producer: generate, dma or both\n");
        return 2;
      }
    } else {
      fmt::print(stderr,
                 "usage: ring_bench [--runs N] [--json FILE] [--quick] [--producer generate|dma|both]\n"
                 "       ring_bench --rates MSPS,... [--runs N] [--seconds S] [--ring-size B] [--block-size B] "
                 "[--json FILE]\n"
                 "       ring_bench --pages-sweep [--rates MSPS,...] [--ring-sizes 4M,...,1G] [--runs N] [--seconds S]\n"
                 "                  [--block-size B] [--wake-bytes B] [--json FILE]\n");
      return 2;
    }
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows as it comes
  // Not under a profiler (--only): valgrind runs one thread at a time, and
  // a ping-pong between two spinning threads would take minutes there.
  const bool profiling = !rate_only.empty();
  const double ping_before = profiling ? 0 : ping_pong_ns();
  fmt::print("cross-core ping-pong before: {:.0f} ns per round trip\n\n", ping_before);
  if (page_sweep) {
    if (rates.empty()) rates = {20, 200, 2000};
    for (uint64_t ring : sweep_rings) {
      if (ring < sring::sim::kHugePageSize || (ring & (ring - 1)) || rate_block > ring / 2 ||
          rate_block <= SRING_BLOCK_HEADER_SIZE || rate_seconds <= 0) {
        fmt::print(stderr, "ring_bench: --ring-sizes must be powers of two of at least 2 MiB and two blocks\n");
        return 2;
      }
    }
    const std::string rows = pages_sweep(rates, sweep_rings, runs, rate_seconds, rate_block, sweep_wake);
    return finish_sweep(json_path,
                        fmt::format("\"runs\": {}, \"seconds\": {}, \"block_bytes\": {}, \"wake_bytes\": {}", runs,
                                    rate_seconds, rate_block, sweep_wake),
                        "cells", rows, ping_before, true);
  }
  if (!rates.empty()) {
    if (rate_block <= SRING_BLOCK_HEADER_SIZE || rate_block > rate_ring / 2 || (rate_ring & (rate_ring - 1)) ||
        rate_seconds <= 0) {
      fmt::print(stderr, "ring_bench: --ring-size must be a power of two of at least two blocks, --seconds > 0\n");
      return 2;
    }
    const std::string rows = rate_sweep(rates, runs, rate_seconds, rate_ring, rate_block, rate_only);
    return finish_sweep(json_path,
                        fmt::format("\"runs\": {}, \"seconds\": {}, \"ring_bytes\": {}, \"block_bytes\": {}", runs,
                                    rate_seconds, rate_ring, rate_block),
                        "rates", rows, ping_before, !profiling);
  }
  fmt::print(
      "Throughput: GB/s of samples moved producer thread (cpu 1) -> consumer thread (cpu 0), every\n"
      "sample verified by the consumer with sring::count_pattern_mismatches; {} runs per row,\n"
      "min / median / max. Producers: generate = the pattern with ordinary stores; dma = DMA-like,\n"
      "the same pattern with non-temporal stores (whole lines written without being read first).\n"
      "Pre-faulted before every timed window: the ring (MAP_POPULATE), the spsc_queue storage\n"
      "(filled and drained once), the pipe (filled and drained once), the block buffers (written).\n"
      "Limits, one thread, no transport, over an already-written\n"
      "buffer the size of the ring: verify-only (the same count_pattern_mismatches) and read+sum.\n"
      "vs verify: per-run ratio to the verify-only limit of the same run (min / median / max).\n"
      "vs batch: per-run ratio to the spsc batch run of the same repetition and producer, median (min-max).\n"
      "fill-only: one thread writing the pattern with that producer's stores over a buffer the size of\n"
      "the ring (the producer's limit, as verify-only is the consumer's). fill+verify: both at once on\n"
      "the two CPUs, on separate buffers, nothing passed between them (what the memory gives two\n"
      "threads streaming together: the bound of a ring larger than the caches).\n",
      runs);

  std::string json = "{\n  \"runs\": " + std::to_string(runs) + ",\n  \"throughput\": [\n";
  const std::vector<uint64_t> rings = quick ? std::vector<uint64_t>{4 << 20}
                                            : std::vector<uint64_t>{4 << 20, 256 << 20};
  const std::vector<uint32_t> blocks = quick ? std::vector<uint32_t>{64 << 10}
                                             : std::vector<uint32_t>{4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20};
  bool first_row = true;
  for (uint64_t ring_size : rings) {
    const uint64_t total = std::max<uint64_t>(ring_size * 2, 512 << 20);
    for (uint32_t block : blocks) {
      if (block > ring_size / 2) continue;
      std::vector<Series> rows;
      auto add = [&](const std::string& name, const std::string& producer) -> std::vector<double>& {
        rows.push_back({name, producer, {}});
        return rows.back().gbps;
      };
      // Fixed order; indices into rows.
      std::vector<std::pair<std::string, PatternFill>> producers;
      if (generate) producers.push_back({"generate", pattern_fill});
      if (dma) producers.push_back({"dma", pattern_fill_streaming});
      for (auto& [pname, src] : producers) {
        add("sring", pname);
        add("spsc batch", pname);
        add("spsc element", pname);
        add("pipe", pname);
      }
      for (auto& [pname, fill] : producers) add("fill-only", pname);
      for (auto& [pname, fill] : producers) add("fill+verify", pname);
      add("verify-only", "");
      add("read+sum", "");
      for (int r = 0; r < runs; ++r) {
        size_t k = 0;
        for (auto& [pname, src] : producers) {
          rows[k++].gbps.push_back(sring_run(ring_size, block, total, src));
          rows[k++].gbps.push_back(spsc_run(ring_size, block, total, true, src));
          // One sample at a time is slow: a sixteenth of the bytes.
          rows[k++].gbps.push_back(spsc_run(ring_size, block, total / 16, false, src));
          rows[k++].gbps.push_back(pipe_run(block, total, src));
        }
        for (auto& [pname, fill] : producers) rows[k++].gbps.push_back(fill_limit_run(ring_size, block, total, fill));
        for (auto& [pname, fill] : producers) {
          rows[k++].gbps.push_back(fill_and_verify_run(ring_size, block, total, fill));
        }
        rows[k++].gbps.push_back(limit_run(ring_size, total, true));
        rows[k++].gbps.push_back(limit_run(ring_size, total, false));
      }
      const std::vector<double>& verify = rows[rows.size() - 2].gbps;
      fmt::print("\nring {} MiB, block {} KiB\n", ring_size >> 20, block >> 10);
      fmt::print("  {:<13} {:<10} | {:>6} {:>6} {:>6} | {:>17} | {:>18} | {:>17}\n", "transport", "producer", "min",
                 "median", "max", "vs verify (%)", "vs batch", "vs fill+verify(%)");
      for (const Series& row : rows) {
        const Spread g = spread(row.gbps);
        std::string vs_verify = "", vs_batch = "", vs_both = "";
        if (!row.producer.empty() && row.name != "fill-only" && row.name != "fill+verify") {
          const Spread v = spread(ratios(row.gbps, verify));
          vs_verify = fmt::format("{:4.0f} /{:4.0f} /{:4.0f}", 100 * v.min, 100 * v.median, 100 * v.max);
          for (const Series& other : rows) {
            if (other.name == "spsc batch" && other.producer == row.producer && row.name != "spsc batch") {
              // Paired: run r of this transport against run r of the queue.
              const Spread b = spread(ratios(row.gbps, other.gbps));
              vs_batch = fmt::format("{:.2f} ({:.2f}-{:.2f})x", b.median, b.min, b.max);
            }
            if (other.name == "fill+verify" && other.producer == row.producer) {
              const Spread b = spread(ratios(row.gbps, other.gbps));
              vs_both = fmt::format("{:4.0f} /{:4.0f} /{:4.0f}", 100 * b.min, 100 * b.median, 100 * b.max);
            }
          }
        }
        fmt::print("  {:<13} {:<10} | {:6.2f} {:6.2f} {:6.2f} | {:>17} | {:>18} | {:>17}\n", row.name,
                   row.producer.empty() ? "(1 thread)" : row.producer, g.min, g.median, g.max, vs_verify,
                   vs_batch, vs_both);
        std::string key = row.name + (row.producer.empty() ? "" : "/" + row.producer);
        json += fmt::format("{}    {{\"ring_bytes\": {}, \"block_bytes\": {}, \"series\": \"{}\", "
                            "\"min\": {:.3f}, \"median\": {:.3f}, \"max\": {:.3f}, \"gbps\": {}}}",
                            first_row ? "" : ",\n", ring_size, block, key, g.min, g.median, g.max,
                            json_list(row.gbps));
        first_row = false;
      }
    }
  }
  json += "\n  ],\n  \"wakeup_us\": {\n";
  const int samples = quick ? 500 : 3000;
  const Latency raw = raw_eventfd(samples);
  fmt::print("\nwake-up latency per block: the block's commit timestamp -> the consumer's wait() returning with it\n"
             "(us; every block counted, several per wake-up included; the raw eventfd: every write, same pacing),\n"
             "{} blocks each\n", samples);
  fmt::print("{:>14} {:>9} {:>9} {:>9} {:>12}\n", "strategy", "p50", "p99", "p99.9", "p99 vs raw");
  fmt::print("{:>14} {:>9.1f} {:>9.1f} {:>9.1f} {:>12}\n", "raw eventfd", raw.p50, raw.p99, raw.p999, "1.00x");
  json += fmt::format("    \"raw_eventfd\": {{\"p50\": {:.2f}, \"p99\": {:.2f}, \"p999\": {:.2f}}}", raw.p50,
                      raw.p99, raw.p999);
  for (auto strategy : {sring::WaitStrategy::kEventfd, sring::WaitStrategy::kPoll,
                        sring::WaitStrategy::kSpin, sring::WaitStrategy::kHybrid}) {
    const Latency l = ring_wakeup(strategy, samples);
    fmt::print("{:>14} {:>9.1f} {:>9.1f} {:>9.1f} {:>11.2f}x\n", sring::to_string(strategy), l.p50, l.p99,
               l.p999, l.p99 / raw.p99);
    json += fmt::format(",\n    \"{}\": {{\"p50\": {:.2f}, \"p99\": {:.2f}, \"p999\": {:.2f}}}",
                        sring::to_string(strategy), l.p50, l.p99, l.p999);
  }
  const double ping_after = ping_pong_ns();
  fmt::print("\ncross-core ping-pong after: {:.0f} ns per round trip\n", ping_after);
  json += fmt::format("\n  }},\n  \"ping_pong_ns\": {{\"before\": {:.0f}, \"after\": {:.0f}}}\n}}\n",
                      ping_before, ping_after);
  if (!json_path.empty()) std::ofstream(json_path) << json;
  return g_verification_failed ? 1 : 0;
}
