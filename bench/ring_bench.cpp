// Host benchmark: the sring ring with in-place verification against the
// copies people use today, side by side in one process, as ratios.
//
//   ring_bench [--runs N] [--json FILE] [--quick] [--producer generate|dma|both]
//   ring_bench --rates MSPS,MSPS,... [--candidates] [--setting quiet|noisy|both] [--runs N] [--seconds S]
//              [--ring-size B] [--block-size B] [--only PATH] [--json FILE]
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
// consumer's CPU time per GB and the whole receiving side's (the consumer
// plus the producer's transport work) for in-place, read() and a copying
// queue, on a quiet machine and a noisy one (the consumer's CPU stolen for
// fixed lengths: Contender); --candidates instead compares in-place variants, from
// the old behaviour to the new one a change at a time (candidates_sweep()).
// 4 KiB against 2 MiB pages (the third form): see pages_sweep(): the
// in-place path's verify GB/s and CPU per GB by rate and ring size.
// Limits, one thread, no transport, over an already-written buffer the size
// of the ring: verify-only (the same count_pattern_mismatches) and read+sum.
// Wake-up latency, per block: from the block's commit timestamp to the moment
// the consumer's wait() returns with it; the raw eventfd baseline treats each
// write() as a block and is timed the same way, with the same pacing.
#include <fcntl.h>
#include <poll.h>
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
#include <functional>
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
//   read()    the producer's DMA-like fill writes straight into kernel
//             pages as large as the ring (a memfd the producer maps, as a
//             read() driver's device DMAs into its kernel buffer); the
//             consumer pread()s whole blocks from them (the copy_to_user()
//             of a driver's read(), plus the system call), after the same
//             eventfd handshake
//   copy      boost spsc_queue as large as the ring: the DMA-like fill
//             writes the producer's own block buffer, which is pushed
//             (copied) into the queue; the block popped into the
//             consumer's buffer, an eventfd when the consumer sleeps (the
//             same need-wakeup handshake the ring uses)
// Each path runs twice: woken for every block, and woken once a quarter of
// the buffer waits (the ring's watermark; the same rule on the others).
// Blocks carry the same 64-byte header on every path (the copying paths
// need its first_sample to verify after a drop). The consumer's CPU time
// is getrusage(RUSAGE_THREAD), user + system, from its first wait to its
// last block: the copy inside read() is system time of the consumer.
//
// The whole receiving-side cost adds the producer's share of the transport:
// per block, the wall time of everything the producer does (steady clock,
// two pairs per block: around the block's work and around the fill inside
// it; the producer never sleeps inside it, and its CPU is not contended, so
// this is its CPU time) less the time inside the DMA-like
// fill, which stands for the device's DMA and is excluded on every path
// alike; the pacing sleep is outside it. What remains: in place, the
// simulated device's header, accounting, head store and wake-up; read(),
// the header, head store and wake-up; copy queue, the header, the push (a
// copy of the block: that design's real cost) and the wake-up.

// The fill every rate run uses: the DMA-like fill, timed into a per-thread
// counter (SimDevice takes a plain function pointer), so that the
// producer's transport cost can leave the fill out.
thread_local uint64_t t_fill_ns = 0;

void timed_fill_streaming(uint16_t* dst, uint64_t first, uint32_t count, uint32_t seed) {
  const uint64_t start = now_ns();
  pattern_fill_streaming(dst, first, count, seed);
  t_fill_ns += now_ns() - start;
}

// ---- two settings: a quiet machine and an unlucky one ---------------------
//
// Noisy: the consumer's CPU (cpu 0) is taken away from it for kStealMs out of
// every kPeriodMs, as a hypervisor takes a vCPU for another guest (the
// machine of issue 23, whose cross-core round trip was 1.8 us, not 89 ns):
// a contender thread pinned there sleeps, then at each period raises itself
// to SCHED_FIFO (which no normal thread preempts) and streams over a 64 MiB
// buffer (a read and a write of every word, evicting the caches and taking
// memory bandwidth) for the steal, then drops back and sleeps. The consumer
// cannot run at all during a steal, wherever in its work the steal falls; a
// path survives a rate only if its buffering covers the steal and it catches
// up before the next one. Fixed lengths, so every machine reproduces the same
// stalls (a normal-priority contender instead leaves it to the scheduler how
// long the consumer waits: runs then differ by luck). The producer's CPU
// (cpu 1) is left alone: it stands for the device. SCHED_FIFO needs root (or
// CAP_SYS_NICE); without it the steals run at normal priority and say so.
enum class Setting { kQuiet, kNoisy };

const char* to_string(Setting s) { return s == Setting::kQuiet ? "quiet" : "noisy"; }

class Contender {
 public:
  static constexpr size_t kBytes = size_t{64} << 20;
  static constexpr auto kSteal = std::chrono::microseconds(2500);
  static constexpr auto kPeriod = std::chrono::milliseconds(20);
  Contender() = default;
  ~Contender() { stop(); }
  Contender(const Contender&) = delete;
  Contender& operator=(const Contender&) = delete;

  void start() {
    if (words_.empty()) words_.assign(kBytes / 8, 1);  // written once: no page faults while it runs
    stop_.store(false);
    running_.store(false);
    chunks_.store(0);
    steals_ = 0;
    stolen_ = {};
    realtime_ = true;  // until a steal is refused SCHED_FIFO
    started_ = Clock::now();
    pinned_.store(true);
    thread_ = std::thread([this] {
      pin_to_cpu(0);
      // Only on the consumer's CPU is this the noisy setting: anywhere else
      // the steals would take the producer's CPU and measure the device.
      cpu_set_t set;
      CPU_ZERO(&set);
      const bool alone = pthread_getaffinity_np(pthread_self(), sizeof(set), &set) == 0 && CPU_COUNT(&set) == 1 &&
                         CPU_ISSET(0, &set) && std::thread::hardware_concurrency() >= 2;
      pinned_.store(alone);
      running_.store(true);
      if (alone) stream();
    });
    // Running on its CPU before the run begins.
    while (!running_.load()) std::this_thread::yield();
    if (!pinned_.load()) {
      thread_.join();
      fmt::print(stderr, "noisy setting: the contender cannot be pinned to cpu 0 alone, apart from the producer's cpu 1 "
                         "(needs 2 CPUs and an affinity mask that allows it); use --setting quiet\n");
      std::exit(1);
    }
  }
  // GB/s the contender streamed (read + written) over its whole time.
  double stop() {
    if (!thread_.joinable()) return 0;
    stop_.store(true);
    thread_.join();
    const double s = std::chrono::duration<double>(Clock::now() - started_).count();
    return s > 0 ? chunks_.load() * kChunkWords * 16.0 / s / 1e9 : 0;
  }
  // Whether the steals ran at SCHED_FIFO (else at normal priority).
  bool realtime() const { return realtime_; }
  // Mean length of a steal in the last run, in ms.
  double mean_steal_ms() const {
    return steals_ ? std::chrono::duration<double, std::milli>(stolen_).count() / double(steals_) : 0;
  }

 private:
  static constexpr size_t kChunkWords = 8192;  // 64 KiB between looks at the clock
  void stream() {
    uint64_t* w = words_.data();
    const size_t n = words_.size();
    uint64_t chunks = 0;
    size_t i = 0;
    sched_param fifo{};
    fifo.sched_priority = 1;
    const sched_param normal{};
    auto next = Clock::now() + kPeriod / 2;
    while (!stop_.load(std::memory_order_relaxed)) {
      std::this_thread::sleep_until(next);
      if (stop_.load(std::memory_order_relaxed)) break;
      const bool fifo_ok = pthread_setschedparam(pthread_self(), SCHED_FIFO, &fifo) == 0;
      realtime_ = realtime_ && fifo_ok;
      const auto begin = Clock::now();
      const auto end = begin + kSteal;
      do {
        if (i + kChunkWords > n) i = 0;
        for (size_t j = i; j < i + kChunkWords; ++j) w[j] += 1;
        asm volatile("" ::: "memory");  // the stores happen, pass after pass
        i += kChunkWords;
        ++chunks;
      } while (Clock::now() < end);
      stolen_ += Clock::now() - begin;
      ++steals_;
      if (fifo_ok) pthread_setschedparam(pthread_self(), SCHED_OTHER, &normal);
      chunks_.store(chunks, std::memory_order_relaxed);
      // A late wake-up must not turn into back-to-back steals.
      next = std::max(next + kPeriod, Clock::now());
    }
  }
  std::vector<uint64_t> words_;
  std::thread thread_;
  std::atomic<bool> stop_{false}, running_{false}, pinned_{true};
  std::atomic<uint64_t> chunks_{0};
  bool realtime_ = true;  // written by the thread, read after join()
  uint64_t steals_ = 0;
  Clock::duration stolen_{};
  Clock::time_point started_;
};

// The cross-core ping-pong in a setting (the contender running for noisy).
double ping_pong_in(Setting setting, Contender& contender) {
  if (setting == Setting::kNoisy) contender.start();
  const double ns = ping_pong_ns();
  if (setting == Setting::kNoisy) contender.stop();
  return ns;
}

struct RateRun {
  double seconds = 0;            // wall time of the producer's run
  uint64_t offered_samples = 0;  // what the producer made (written or dropped)
  uint64_t delivered_samples = 0;
  uint64_t lost_samples = 0;     // dropped for lack of room, counted exactly
  uint64_t corrupted = 0;
  double user_s = 0, sys_s = 0;
  uint64_t sleeps = 0;           // voluntary context switches of the consumer
  uint64_t preemptions = 0;      // involuntary ones: the CPU taken from it
  uint64_t producer_preemptions = 0;  // the producer's involuntary context switches
  bool kept_rate = true;         // the producer kept its schedule (else it bounds the run)
  // The producer: wall time of its per-block work less the fill inside it
  // (its share of the transport), and the fill's own time.
  double producer_s = 0, fill_s = 0;
  // Most bytes waiting for the consumer at once, seen by the producer right
  // after it wrote a block (the ring's high_water; the same on the others).
  uint64_t max_fill = 0;
  // Consumer: wall time inside the verify calls and the bytes they verified
  // (in place: the data the DMA-like producer left in memory, not in a
  // cache), and inside the copy out (read(): pread(); copy queue: pop()).
  double verify_s = 0;
  uint64_t verified_bytes = 0;
  double copy_s = 0;
  uint64_t copied_bytes = 0;
  double contender_gb_per_s = 0;  // noisy setting: what the contender streamed
  double steal_ms = 0;            // noisy setting: mean length of a steal
  bool steal_realtime = true;     // noisy setting: the steals ran at SCHED_FIFO
  double gb() const { return delivered_samples * 2.0 / 1e9; }
  double cpu_s_per_gb() const { return delivered_samples ? (user_s + sys_s) / gb() : 0; }
  double producer_s_per_gb() const { return delivered_samples ? producer_s / gb() : 0; }
  double whole_s_per_gb() const { return delivered_samples ? (user_s + sys_s + producer_s) / gb() : 0; }
  double verify_gb_per_s() const { return verify_s > 0 ? verified_bytes / verify_s / 1e9 : 0; }
  double copy_gb_per_s() const { return copy_s > 0 ? copied_bytes / copy_s / 1e9 : 0; }
  bool loss_free() const { return lost_samples == 0 && corrupted == 0 && kept_rate; }
};

struct ThreadUsage {
  double user_s = 0, sys_s = 0;
  uint64_t voluntary = 0, involuntary = 0;
  static ThreadUsage now() {
    rusage u{};
    getrusage(RUSAGE_THREAD, &u);
    return {u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6, u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6,
            uint64_t(u.ru_nvcsw), uint64_t(u.ru_nivcsw)};
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
  run.preemptions = after.involuntary - before.involuntary;
}

// Wall time of f() added to `seconds`.
template <typename F>
auto timed(double& seconds, F&& f) {
  const uint64_t start = now_ns();
  auto result = f();
  seconds += (now_ns() - start) / 1e9;
  return result;
}

// The paced producer loop every path shares. `make(k)` makes block k (it
// writes or drops it and counts which). Returns whether the producer kept
// its schedule: it may fall behind by a few blocks and catch up, but a run
// whose producer ends more than 5% late measures the producer, not the path.
// Times each make(k) and takes the fill's time (timed_fill_streaming, on
// this thread) out of it: run.producer_s is the producer's transport work.
template <typename Make>
bool paced_producer(uint64_t sample_rate, uint32_t samples_per_block, double seconds, RateRun& run, Make make) {
  pin_to_cpu(1);
  const uint64_t blocks = std::max<uint64_t>(1, uint64_t(seconds * sample_rate / samples_per_block));
  const auto start = Clock::now();
  auto due = [&](uint64_t k) {
    return start + std::chrono::nanoseconds(int64_t((k + 1) * samples_per_block * 1e9L / sample_rate));
  };
  const uint64_t fill_at_start = t_fill_ns;
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  const long preempted_before = usage.ru_nivcsw;
  uint64_t work_ns = 0;
  for (uint64_t k = 0; k < blocks; ++k) {
    const auto when = due(k);
    if (Clock::now() < when) std::this_thread::sleep_until(when);
    const uint64_t t0 = now_ns();
    make(k);
    work_ns += now_ns() - t0;
  }
  const auto end = Clock::now();
  getrusage(RUSAGE_THREAD, &usage);
  // The transport time is wall time: right only while nothing took the
  // producer's CPU. Runs where something did are counted and shown.
  run.producer_preemptions = uint64_t(usage.ru_nivcsw - preempted_before);
  const uint64_t fill_ns = t_fill_ns - fill_at_start;
  run.fill_s = fill_ns / 1e9;
  run.producer_s = (work_ns > fill_ns ? work_ns - fill_ns : 0) / 1e9;
  run.seconds = std::chrono::duration<double>(end - start).count();
  run.offered_samples = blocks * samples_per_block;
  return end - due(blocks - 1) < std::chrono::duration<double>(0.05 * seconds);
}

// count_pattern_mismatches with a software prefetch kPrefetchAhead bytes
// ahead of the 4 KiB piece it checks: the hardware's stream prefetcher stops
// at each 4 KiB page, and a page of data the DMA-like producer left in DRAM
// then starts with a miss. The same check, sample for sample: only the
// consumer's per-sample work changes (a candidate, not the transport).
constexpr size_t kPrefetchAhead = 8 << 10;

uint64_t count_mismatches_prefetching(const uint16_t* samples, uint64_t first, uint64_t count, uint32_t seed) {
  constexpr uint64_t kPiece = 2048;  // samples: 4 KiB
  const char* const end = reinterpret_cast<const char*>(samples + count);
  uint64_t bad = 0;
  while (count > 0) {
    const uint64_t n = std::min(count, kPiece);
    const char* ahead = reinterpret_cast<const char*>(samples) + kPrefetchAhead;
    for (size_t off = 0; off < n * 2 && ahead + off < end; off += 64) __builtin_prefetch(ahead + off, 0, 3);
    bad += sring::count_pattern_mismatches(samples, first, n, seed);
    samples += n;
    first += n;
    count -= n;
  }
  return bad;
}

// How the in-place consumer is set up: the main series uses the defaults;
// --candidates compares the variants of the ablation.
enum class WaitMode {
  kOneCall,         // Consumer::wait(kEventfd, 1 s): the library's wait
  kOneCallForever,  // the same with no timeout (kWaitForever)
  kTwoCalls,        // the old wait through the public API: prepare_wait(), poll(), finish_wait() reading the eventfd
};

struct InPlace {
  uint64_t release_step = sring::Consumer::kDefaultReleaseStep;  // Consumer::set_release_step()
  WaitMode wait = WaitMode::kOneCall;
  bool prefetch = false;      // count_mismatches_prefetching instead of count_pattern_mismatches
  sring::sim::RingPages pages = sring::sim::RingPages::k4K;
};

// The in-place path on a simulator ring.
RateRun rate_in_place_with(uint64_t sample_rate, uint64_t ring_size, uint32_t block_bytes, uint64_t wake_bytes,
                           double seconds, PatternFill fill, const InPlace& how) {
  RateRun run;
  auto host = sring::sim::HostRing::create(ring_size, "ring_bench", how.pages);
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
  consumer.set_release_step(how.release_step);
  // The 16-bit verifier (verify.hpp also has one for a payload in any layout).
  using Verify = uint64_t (*)(const uint16_t*, uint64_t, uint64_t, uint32_t);
  const Verify verify =
      how.prefetch ? count_mismatches_prefetching : static_cast<Verify>(sring::count_pattern_mismatches);
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
        bad += timed(run.verify_s, [&] {
          return verify(block.samples().data(), block.first_sample(), block.samples().size(), config.pattern_seed);
        });
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
      if (how.wait == WaitMode::kTwoCalls) {
        // What Ring::wait did before it slept with one system call: arm and
        // look again, poll() the eventfd, then read() it.
        consumer.flush();  // as Consumer::wait() does first
        if (!ring->prepare_wait()) {
          pollfd pfd{ring->wait_fd(), POLLIN, 0};
          const int n = ::poll(&pfd, 1, 1000);
          ring->finish_wait(n > 0);
        }
      } else {
        (void)consumer.wait(sring::WaitStrategy::kEventfd, how.wait == WaitMode::kOneCallForever
                                                               ? sring::kWaitForever
                                                               : std::chrono::nanoseconds(std::chrono::seconds(1)));
      }
    }
  });
  charge(run, before);
  producer.join();
  const sring::Counters c = consumer.snapshot();
  run.delivered_samples = c.samples;
  run.lost_samples = c.missing_samples;
  run.corrupted = bad;
  run.max_fill = sring::load_relaxed(ring->producer().high_water);
  if (!c.exact) {
    fmt::print(stderr, "rate_in_place: accounting not exact\n");
    g_verification_failed = true;
  }
  return run;
}

RateRun rate_in_place_pages(uint64_t sample_rate, uint64_t ring_size, uint32_t block_bytes, uint64_t wake_bytes,
                            double seconds, PatternFill fill, sring::sim::RingPages pages) {
  InPlace how;
  how.pages = pages;
  return rate_in_place_with(sample_rate, ring_size, block_bytes, wake_bytes, seconds, fill, how);
}

RateRun rate_in_place(uint64_t sample_rate, uint64_t ring_size, uint32_t block_bytes, uint64_t wake_bytes,
                      double seconds, PatternFill fill) {
  return rate_in_place_with(sample_rate, ring_size, block_bytes, wake_bytes, seconds, fill, InPlace{});
}

// The header of block k of a copying path (normal stores, as a device
// writes its descriptor).
void write_header(void* at, uint64_t k, uint32_t block_bytes, uint32_t samples) {
  sring_block_header header{};
  header.magic = SRING_BLOCK_MAGIC;
  header.total_bytes = block_bytes;
  header.sequence = k;
  header.first_sample = k * samples;
  header.sample_count = samples;
  std::memcpy(at, &header, sizeof(header));
}

// The producer's side of the copy queue: block k with its header, filled
// by the DMA-like fill into the producer's own buffer (the driver's bounce
// buffer), then handed to the queue, which copies it or reports no room.
struct BlockMaker {
  uint32_t block_bytes, samples;
  std::vector<uint16_t> buffer;
  explicit BlockMaker(uint32_t bytes)
      : block_bytes(bytes), samples((bytes - SRING_BLOCK_HEADER_SIZE) / 2), buffer(bytes / 2) {}
  const uint16_t* make(uint64_t k, PatternFill fill) {
    write_header(buffer.data(), k, block_bytes, samples);
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
// kernel pages that stay put (a memfd the size of the ring), written where
// they lie by the producer through a shared mapping of them (the header
// with normal stores, the samples with the DMA-like fill), as a device's
// DMA fills a driver's buffer; the consumer copies them out with pread(),
// the copy_to_user() of a driver's read(), after waiting on the same
// handshake as the other paths. (A pipe would add a page allocation and
// free per 4 KiB, which a driver does not have.) Per block: woken for every
// block, one pread() per block. Batched: woken once a quarter of the buffer
// waits, as sring's driver's read() honours the watermark, then one pread()
// per contiguous run.
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
  // The device's view of the kernel buffer, mapped MAP_POPULATE as the
  // ring is: no page faults while timed.
  void* mapped = ::mmap(nullptr, ring_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                        kernel_buffer.get(), 0);
  if (mapped == MAP_FAILED) {
    fmt::print(stderr, "read() path: mmap: {}\n", std::strerror(errno));
    std::exit(1);
  }
  auto* const device_view = static_cast<char*>(mapped);
  // Bytes written and bytes taken, free-running: head's release store after
  // the fill (whose sfence orders its non-temporal stores) pairs with the
  // consumer's acquire load before its pread(); tail's release store after
  // the pread() pairs with the producer's acquire load before it reuses
  // that space.
  std::atomic<uint64_t> head{0}, tail{0};
  const uint64_t wake_at = std::max<uint64_t>(wake_bytes, block_bytes);
  const uint32_t samples = (block_bytes - SRING_BLOCK_HEADER_SIZE) / 2;
  WakeHandshake handshake;
  std::thread producer([&] {
    run.kept_rate = paced_producer(sample_rate, samples, seconds, run, [&](uint64_t k) {
      const uint64_t h = head.load(std::memory_order_relaxed);  // only this thread stores it
      const uint64_t used = h - tail.load(std::memory_order_acquire);
      if (ring_size - used < block_bytes) {
        run.lost_samples += samples;
        return;
      }
      char* at = device_view + h % ring_size;
      write_header(at, k, block_bytes, samples);
      fill(reinterpret_cast<uint16_t*>(at + SRING_BLOCK_HEADER_SIZE), k * samples, samples, 1);
      head.store(h + block_bytes, std::memory_order_release);
      run.max_fill = std::max(run.max_fill, used + block_bytes);
      handshake.wake_if(h + block_bytes - tail.load(std::memory_order_acquire) >= wake_at);
    });
    handshake.finish();
  });
  pin_to_cpu(0);
  // The consumer's buffer, written (so faulted in) before the timed window.
  const uint64_t chunk = wake_at > block_bytes ? wake_at : block_bytes;
  std::vector<uint16_t> buffer(chunk / 2);
  const ThreadUsage before = ThreadUsage::now();
  consume_loop([&] {
    uint64_t t = 0;  // only this thread stores tail
    for (;;) {
      const uint64_t available = head.load(std::memory_order_acquire) - t;
      if (available >= block_bytes) {
        // Up to `chunk`, whole blocks, not past the end of the buffer.
        const uint64_t n = std::min({available, chunk, ring_size - t % ring_size}) / block_bytes * block_bytes;
        const ssize_t got =
            timed(run.copy_s, [&] { return ::pread(kernel_buffer.get(), buffer.data(), n, off_t(t % ring_size)); });
        if (got != ssize_t(n)) {
          fmt::print(stderr, "read() path: pread: {}\n", std::strerror(errno));
          g_verification_failed = true;
          break;
        }
        run.copied_bytes += n;
        t += n;
        tail.store(t, std::memory_order_release);
        for (uint64_t off = 0; off < n; off += block_bytes) {
          run.corrupted += timed(run.verify_s, [&] { return verify_block(buffer.data() + off / 2, block_bytes); });
          run.verified_bytes += uint64_t(samples) * 2;
          run.delivered_samples += samples;
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
  ::munmap(mapped, ring_size);
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
      run.max_fill = std::max<uint64_t>(run.max_fill, (capacity - room + words) * 2);
      handshake.wake_if(capacity - room + words >= wake_words);
    });
    handshake.finish();
  });
  pin_to_cpu(0);
  std::vector<uint16_t> block(words);  // written before the timed window
  const ThreadUsage before = ThreadUsage::now();
  consume_loop([&] {
    for (;;) {
      if (queue.read_available() >= words) {  // consumer-side call
        timed(run.copy_s, [&] { return queue.pop(block.data(), words); });
        run.copied_bytes += block_bytes;
        run.corrupted += timed(run.verify_s, [&] { return verify_block(block.data(), block_bytes); });
        run.verified_bytes += uint64_t(maker.samples) * 2;
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

// The values of a list with five significant digits (CPU s/GB can be small).
std::string json_values(const std::vector<double>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += fmt::format("{}{:.5g}", i ? ", " : "", v[i]);
  return out + "]";
}

// One row of a rate table: a path and how to run it at a sample rate.
struct RatePath {
  std::string name;
  std::function<RateRun(uint64_t sample_rate)> run;
  size_t vs;                       // the row its per-run ratios are taken against (itself: none)
  std::vector<size_t> copies;      // for an in-place row: the copying rows of the goal (same wake-up rule)
};

// The rate sweep and the candidates: every path at every rate in every
// setting, `runs` times; within a repetition the settings alternate in
// order, and within a setting the paths run one after the other, their
// order rotating, so that drift hits them alike. In the noisy setting the
// contender runs from before each run to after it. Prints, per rate, the
// consumer-only and whole CPU per GB and their per-run ratios to the row
// named in "vs", and at the end the highest loss-free rate of each path in
// each setting and the goal's check. Returns the JSON fields.
std::string rate_table(const std::vector<double>& rates_msps, int runs, const std::vector<Setting>& settings,
                       const std::vector<RatePath>& paths, const std::string& only, Contender& contender) {
  const size_t n_paths = paths.size();
  auto shown = [&](size_t p) { return only.empty() || only == paths[p].name; };
  std::string json = "[\n";
  std::string ping_json = "[";
  // best[s][p]: highest rate loss-free in every run, from the lowest up.
  std::vector<std::vector<double>> best(settings.size(), std::vector<double>(n_paths, 0));
  std::vector<std::vector<bool>> still(settings.size(), std::vector<bool>(n_paths, true));
  // all_free[s][p][rate index]
  std::vector<std::vector<std::vector<bool>>> all_free(settings.size(),
                                                       std::vector<std::vector<bool>>(n_paths));
  bool first_json = true;
  const bool measure_ping = only.empty();
  for (size_t ri = 0; ri < rates_msps.size(); ++ri) {
    const double msps = rates_msps[ri];
    const uint64_t rate = uint64_t(msps * 1e6);
    std::vector<double> ping(settings.size(), 0);
    for (size_t s = 0; s < settings.size() && measure_ping; ++s) ping[s] = ping_pong_in(settings[s], contender);
    // results[s][p][r]
    std::vector<std::vector<std::vector<RateRun>>> results(settings.size(),
                                                           std::vector<std::vector<RateRun>>(n_paths));
    for (int r = 0; r < runs; ++r) {
      for (size_t k = 0; k < settings.size(); ++k) {
        const size_t s = (k + size_t(r)) % settings.size();
        for (size_t i = 0; i < n_paths; ++i) {
          const size_t p = (i + size_t(r)) % n_paths;
          if (!shown(p)) {
            results[s][p].push_back({});
            continue;
          }
          const bool noisy = settings[s] == Setting::kNoisy;
          if (noisy) contender.start();
          RateRun run = paths[p].run(rate);
          if (noisy) {
            run.contender_gb_per_s = contender.stop();
            run.steal_ms = contender.mean_steal_ms();
            run.steal_realtime = contender.realtime();
          }
          results[s][p].push_back(run);
        }
      }
    }
    fmt::print("\n{:g} MS/s ({:.0f} MB/s); cross-core ping-pong", msps, msps * 2);
    for (size_t s = 0; s < settings.size(); ++s) {
      fmt::print("{} {} {:.0f} ns", s ? "," : "", to_string(settings[s]), ping[s]);
      ping_json += fmt::format("{}{{\"rate_msps\": {:g}, \"setting\": \"{}\", \"ping_pong_ns\": {:.0f}}}",
                               ping_json.size() > 1 ? ", " : "", msps, to_string(settings[s]), ping[s]);
    }
    fmt::print("\n  {:<5} {:<12} | {:^22} | {:^22} | {:>6} | {:<10} {:^16} {:^16} | {:>7} {:>7} | {:>5} | {:>6} {:>5} "
               "| {:>5} | {:>9} | {}\n",
               "", "path", "consumer s/GB", "whole s/GB", "prod.", "vs", "x consumer", "x whole", "sleeps",
               "preempt", "MB/s", "verify", "copy", "fill", "lost", "loss-free");
    fmt::print("  {:<5} {:<12} | {:^22} | {:^22} | {:>6} | {:<10} {:^16} {:^16} | {:>7} {:>7} | {:>5} | {:>6} {:>5} "
               "| {:>5} | {:>9} |\n",
               "", "", "min    med    max", "min    med    max", "s/GB", "", "med (min-max)", "med (min-max)",
               "per GB", "per GB", "", "GB/s", "GB/s", "MiB", "max", "");
    for (size_t s = 0; s < settings.size(); ++s) {
      double contender_median = 0, steal_median = 0;
      bool realtime = true;
      int producer_preempted = 0, all_runs = 0;
      for (size_t p = 0; p < n_paths; ++p) {
        if (!shown(p)) continue;
        const std::vector<RateRun>& rs = results[s][p];
        const std::vector<RateRun>& ref = results[s][paths[p].vs];
        std::vector<double> cpu, whole, producer, user, sys, sleeps, preempt, mbps, verify, copy, fill, lost,
            contender_gbps, steal, producer_preempt, delivered, vs_cpu, vs_whole;
        std::string free_list = "[";
        int loss_free = 0;
        bool kept = true;
        for (size_t r = 0; r < rs.size(); ++r) {
          const RateRun& run = rs[r];
          const double gb = run.gb();
          cpu.push_back(run.cpu_s_per_gb());
          whole.push_back(run.whole_s_per_gb());
          producer.push_back(run.producer_s_per_gb());
          user.push_back(gb > 0 ? run.user_s / gb : 0);
          sys.push_back(gb > 0 ? run.sys_s / gb : 0);
          sleeps.push_back(gb > 0 ? run.sleeps / gb : 0);
          preempt.push_back(gb > 0 ? run.preemptions / gb : 0);
          mbps.push_back(run.seconds > 0 ? run.delivered_samples * 2.0 / run.seconds / 1e6 : 0);
          verify.push_back(run.verify_gb_per_s());
          copy.push_back(run.copy_gb_per_s());
          fill.push_back(double(run.max_fill));
          lost.push_back(double(run.lost_samples));
          contender_gbps.push_back(run.contender_gb_per_s);
          producer_preempted += run.producer_preemptions > 0;
          ++all_runs;
          producer_preempt.push_back(double(run.producer_preemptions));
          steal.push_back(run.steal_ms);
          realtime = realtime && run.steal_realtime;
          delivered.push_back(run.delivered_samples * 2.0);
          vs_cpu.push_back(ref[r].cpu_s_per_gb() > 0 ? run.cpu_s_per_gb() / ref[r].cpu_s_per_gb() : 0);
          vs_whole.push_back(ref[r].whole_s_per_gb() > 0 ? run.whole_s_per_gb() / ref[r].whole_s_per_gb() : 0);
          free_list += fmt::format("{}{}", r ? ", " : "", run.loss_free());
          if (run.loss_free()) ++loss_free;
          kept = kept && run.kept_rate;
          if (run.corrupted) {
            fmt::print(stderr, "{} ({}) at {:g} MS/s: {} samples corrupted\n", paths[p].name, to_string(settings[s]),
                       msps, run.corrupted);
            g_verification_failed = true;
          }
        }
        free_list += "]";
        const Spread c = spread(cpu), w = spread(whole), xc = spread(vs_cpu), xw = spread(vs_whole);
        const bool self = paths[p].vs == p;
        auto ratio_text = [&](const Spread& x) {
          return self ? std::string("") : fmt::format("{:4.2f} ({:4.2f}-{:4.2f})", x.median, x.min, x.max);
        };
        fmt::print("  {:<5} {:<12} | {:6.3f} {:6.3f} {:6.3f} | {:6.3f} {:6.3f} {:6.3f} | {:6.3f} | {:<10} {:>16} {:>16} "
                   "| {:7.0f} {:7.0f} | {:5.0f} | {:6.2f} {:5.1f} | {:5.1f} | {:9.0f} | {:>3}/{:<3}{}\n",
                   to_string(settings[s]), paths[p].name, c.min, c.median, c.max, w.min, w.median, w.max,
                   spread(producer).median, self ? "" : paths[paths[p].vs].name, ratio_text(xc), ratio_text(xw),
                   spread(sleeps).median, spread(preempt).median, spread(mbps).median, spread(verify).median,
                   spread(copy).median, spread(fill).max / (1 << 20), spread(lost).max, loss_free, runs,
                   kept ? "" : " *");
        const bool every = loss_free == runs;
        all_free[s][p].push_back(every);
        if (every && still[s][p]) best[s][p] = msps;
        else still[s][p] = false;
        contender_median = std::max(contender_median, spread(contender_gbps).median);
        steal_median = std::max(steal_median, spread(steal).median);
        json += fmt::format(
            "{}    {{\"rate_msps\": {:g}, \"setting\": \"{}\", \"path\": \"{}\", \"vs\": \"{}\", "
            "\"delivered_bytes\": {}, \"cpu_s_per_gb\": {}, \"whole_s_per_gb\": {}, \"producer_s_per_gb\": {}, "
            "\"user_s_per_gb\": {}, \"sys_s_per_gb\": {}, \"sleeps_per_gb\": {}, \"preemptions_per_gb\": {}, "
            "\"mb_per_s\": {}, \"verify_gb_per_s\": {}, \"copy_gb_per_s\": {}, \"max_fill_bytes\": {}, "
            "\"lost_samples\": {}, \"contender_gb_per_s\": {}, \"steal_ms\": {}, \"producer_preemptions\": {}, \"loss_free\": {}, \"loss_free_runs\": {}, "
            "\"runs\": {}, \"producer_kept_rate\": {}, \"cpu_ratio_to_vs\": {}, \"whole_ratio_to_vs\": {}}}",
            first_json ? "" : ",\n", msps, to_string(settings[s]), paths[p].name, paths[paths[p].vs].name,
            json_values(delivered), json_values(cpu), json_values(whole), json_values(producer), json_values(user),
            json_values(sys), json_values(sleeps), json_values(preempt), json_values(mbps), json_values(verify),
            json_values(copy), json_values(fill), json_values(lost), json_values(contender_gbps), json_values(steal),
            json_values(producer_preempt),
            free_list,
            loss_free, runs, kept, self ? "[]" : json_values(vs_cpu), self ? "[]" : json_values(vs_whole));
        first_json = false;
      }
      if (producer_preempted > 0) {
        std::vector<double> all_preempt;
        for (size_t p = 0; p < n_paths; ++p) {
          for (const RateRun& run : results[s][p]) all_preempt.push_back(double(run.producer_preemptions));
        }
        fmt::print("  ({}: the producer was preempted in {} of {} runs, {:.0f} times per run at the median; prod. s/GB\n"
                   "   is wall time, so a preemption inside a block's work adds the time it waited)\n",
                   to_string(settings[s]), producer_preempted, all_runs, spread(all_preempt).median);
      }
      if (settings[s] == Setting::kNoisy) {
        fmt::print("  (noisy: steals of {:.2f} ms (median of the runs' means) at {}; the contender streamed {:.1f} GB/s\n"
                   "   over its whole time)\n",
                   steal_median, realtime ? "SCHED_FIFO" : "NORMAL priority: SCHED_FIFO refused, run as root for the real setting",
                   contender_median);
      }
    }
  }
  fmt::print("  (* the producer fell behind its schedule in some run: that rate measures the producer)\n");
  // Loss-free: per path, per setting.
  fmt::print("\nhighest rate loss-free in {0} of {0} runs, from the lowest rate up (MS/s):\n  {1:<7}", runs, "");
  for (size_t p = 0; p < n_paths; ++p) {
    if (shown(p)) fmt::print(" {:>12}", paths[p].name);
  }
  fmt::print("\n");
  std::string best_json = "{";
  for (size_t s = 0; s < settings.size(); ++s) {
    fmt::print("  {:<7}", to_string(settings[s]));
    best_json += fmt::format("{}\"{}\": {{", s ? ", " : "", to_string(settings[s]));
    bool first = true;
    for (size_t p = 0; p < n_paths; ++p) {
      if (!shown(p)) continue;
      fmt::print(" {:>12g}", best[s][p]);
      best_json += fmt::format("{}\"{}\": {:g}", first ? "" : ", ", paths[p].name, best[s][p]);
      first = false;
    }
    best_json += "}";
    fmt::print("\n");
  }
  best_json += "}";
  // The goal: in place loss-free in every run at every rate where a copying
  // path with the same wake-up rule is.
  std::string goal_json = "[";
  bool any_goal = false;
  for (size_t p = 0; p < n_paths; ++p) {
    if (paths[p].copies.empty() || !shown(p)) continue;
    if (!any_goal) {
      fmt::print("\ngoal: in place loss-free in {0} of {0} runs at every rate where a copying path with the same "
                 "wake-up rule is:\n", runs);
      any_goal = true;
    }
    std::string against;
    for (size_t q : paths[p].copies) against += (against.empty() ? "" : ", ") + paths[q].name;
    for (size_t s = 0; s < settings.size(); ++s) {
      std::string missed, missed_json;
      for (size_t ri = 0; ri < rates_msps.size(); ++ri) {
        bool copy_free = false;
        for (size_t q : paths[p].copies) copy_free = copy_free || (shown(q) && all_free[s][q][ri]);
        if (copy_free && !all_free[s][p][ri]) {
          missed += fmt::format("{}{:g}", missed.empty() ? "" : ", ", rates_msps[ri]);
          missed_json += fmt::format("{}{:g}", missed_json.empty() ? "" : ", ", rates_msps[ri]);
        }
      }
      fmt::print("  {:<5} {:<12} against {:<24} {}\n", to_string(settings[s]), paths[p].name, against,
                 missed.empty() ? std::string("met") : "NOT met at " + missed + " MS/s");
      goal_json += fmt::format("{}{{\"setting\": \"{}\", \"path\": \"{}\", \"against\": \"{}\", \"met\": {}, "
                               "\"missed_at_msps\": [{}]}}",
                               goal_json.size() > 1 ? ", " : "", to_string(settings[s]), paths[p].name, against,
                               missed.empty(), missed_json);
    }
  }
  goal_json += "]";
  std::string names;
  for (size_t p = 0; p < n_paths; ++p) {
    names += fmt::format("{}{{\"name\": \"{}\", \"vs\": \"{}\"}}", p ? ", " : "", paths[p].name,
                         paths[paths[p].vs].name);
  }
  std::string settings_json;
  for (size_t s = 0; s < settings.size(); ++s) settings_json += fmt::format("{}\"{}\"", s ? ", " : "", to_string(settings[s]));
  return fmt::format("\"settings\": [{}],\n  \"paths\": [{}],\n  \"rates\": {}\n  ],\n  \"ping_pong_by_rate\": {}],\n"
                     "  \"highest_loss_free_msps\": {},\n  \"goal\": {}",
                     settings_json, names, json, ping_json, best_json, goal_json);
}

// What the header of both tables says about the settings and the columns.
void print_rate_header(const std::vector<Setting>& settings, uint64_t ring_size, uint32_t block_bytes, double seconds,
                       int runs) {
  fmt::print(
      "{} KiB blocks, {} MiB of buffering on every path, DMA-like producer (non-temporal stores) paced on\n"
      "cpu 1, one consumer on cpu 0 verifying every sample and sleeping when idle; {:.2g} s per run, {} runs per\n"
      "rate and setting; within a repetition the settings alternate and the paths rotate.\n",
      block_bytes >> 10, ring_size >> 20, seconds, runs);
  for (Setting s : settings) {
    if (s == Setting::kQuiet) {
      fmt::print("Setting quiet: nothing else runs on purpose (the machine is shared: it is as quiet as it is).\n");
    } else {
      fmt::print(
          "Setting noisy: the consumer's cpu 0 is stolen for {:.1f} ms of every {} ms, as a hypervisor takes a vCPU\n"
          "for another guest: a contender pinned there raises itself to SCHED_FIFO and streams over a 64 MiB buffer\n"
          "(a read and a write of every word: it evicts the caches and takes memory bandwidth) for the steal, then\n"
          "sleeps. The consumer cannot run during a steal, wherever in its work it falls: a path survives a rate\n"
          "only if its buffering covers the steal and it catches up before the next. Fixed lengths, so any machine\n"
          "reproduces the unlucky one on purpose. The producer's cpu 1 is left alone.\n",
          std::chrono::duration<double, std::milli>(Contender::kSteal).count(), Contender::kPeriod.count());
    }
  }
  fmt::print(
      "consumer s/GB: getrusage(RUSAGE_THREAD) user+sys of the consumer per GB delivered. whole s/GB: that plus the\n"
      "producer's transport work (prod. s/GB): per block, the steady-clock wall time of what the producer does\n"
      "(non-sleeping code on an uncontended CPU: its CPU time) less the time inside the DMA-like fill, which stands\n"
      "for the device and is left out on every path; the pacing sleep is outside it. In place: the simulated\n"
      "device's header, accounting, head store and wake-up; read(): header, head store, wake-up (the fill writes\n"
      "the kernel buffer in place, as a device's DMA); copy queue: header, the push (a copy) and the wake-up.\n"
      "x consumer / x whole: per-run ratio to the row named in vs, same repetition and setting, median (min-max).\n"
      "sleeps / preempt: voluntary / involuntary context switches of the consumer per GB. verify GB/s: bytes over\n"
      "wall time inside the verify calls (in place: the data as the DMA-like fill left it in memory); copy GB/s:\n"
      "inside pread() (read()) or pop() (copy queue). fill: most bytes waiting at once (max over runs). lost: most\n"
      "samples dropped in a run. loss-free: runs with no sample dropped, none corrupted, the producer on schedule.\n");
}

// The main sweep: in place (the library's defaults) against read() and the
// copying queue, each woken per block and at a quarter of the buffer.
std::string rate_sweep(const std::vector<double>& rates_msps, int runs, double seconds, uint64_t ring_size,
                       uint32_t block_bytes, const std::string& only, const std::vector<Setting>& settings,
                       Contender& contender) {
  const uint64_t batch = ring_size / 4;
  const PatternFill fill = timed_fill_streaming;
  auto in_place = [=](uint64_t wake) {
    return [=](uint64_t rate) { return rate_in_place(rate, ring_size, block_bytes, wake, seconds, fill); };
  };
  auto read_path = [=](uint64_t wake) {
    return [=](uint64_t rate) { return rate_read(rate, ring_size, block_bytes, wake, seconds, fill); };
  };
  auto copy_path = [=](uint64_t wake) {
    return [=](uint64_t rate) { return rate_copy(rate, ring_size, block_bytes, wake, seconds, fill); };
  };
  // Per block: every path wakes its consumer for each block (a pipe's reader
  // cannot ask for less). /4: the ring's watermark at a quarter of the ring,
  // and the same watermark built into the copying paths, so that the copy's
  // cost shows apart from the wake-ups'.
  const std::vector<RatePath> paths = {
      {"in place", in_place(0), 0, {1, 2}},
      {"read()", read_path(0), 0, {}},
      {"copy queue", copy_path(0), 0, {}},
      {"in place/4", in_place(batch), 0, {4, 5}},
      {"read()/4", read_path(batch), 3, {}},
      {"copy q./4", copy_path(batch), 3, {}},
  };
  fmt::print("\nCPU per GB at fixed rates, in place against read() and a copying queue, quiet and noisy.\n");
  print_rate_header(settings, ring_size, block_bytes, seconds, runs);
  fmt::print("in place: sring::Consumer on the library's defaults (release every block, Consumer::wait). Rows\n"
             "without /4 wake their consumer for every block; /4 once a quarter of the buffer waits.\n");
  return rate_table(rates_msps, runs, settings, paths, only, contender);
}

// The candidates (ablation): in-place variants from the old behaviour to
// the new one, one change at a time, interleaved with the copying paths in
// the same runs, per block and /4.
std::string candidates_sweep(const std::vector<double>& rates_msps, int runs, double seconds, uint64_t ring_size,
                             uint32_t block_bytes, const std::string& only, const std::vector<Setting>& settings,
                             Contender& contender) {
  const uint64_t batch = ring_size / 4;
  const PatternFill fill = timed_fill_streaming;
  // The huge-page ring only if 2 MiB pages can be had now.
  const bool huge = static_cast<bool>(sring::sim::HostRing::create(ring_size, "ring_bench-probe",
                                                                   sring::sim::RingPages::kHuge));
  struct Variant {
    const char* name;
    InPlace how;
  };
  std::vector<Variant> variants;
  {
    InPlace before;
    before.release_step = ring_size / 8;
    before.wait = WaitMode::kTwoCalls;
    InPlace release = before;
    release.release_step = sring::Consumer::kDefaultReleaseStep;
    InPlace wait = release;
    wait.wait = WaitMode::kOneCall;
    InPlace forever = wait;
    forever.wait = WaitMode::kOneCallForever;
    InPlace prefetch = wait;
    prefetch.prefetch = true;
    variants = {{"before", before}, {"+release", release}, {"+wait", wait}, {"+wait inf", forever},
                {"+prefetch", prefetch}};
    if (huge) {
      InPlace pages = wait;
      pages.pages = sring::sim::RingPages::kHuge;
      variants.push_back({"+huge", pages});
    }
  }
  std::vector<RatePath> paths;
  for (uint64_t wake : {uint64_t{0}, batch}) {
    const std::string suffix = wake ? "/4" : "";
    const size_t first = paths.size();
    for (const Variant& v : variants) {
      const InPlace how = v.how;
      paths.push_back({v.name + suffix,
                       [=](uint64_t rate) {
                         return rate_in_place_with(rate, ring_size, block_bytes, wake, seconds, fill, how);
                       },
                       first,
                       {}});
    }
    const size_t read_row = paths.size(), new_row = first + 2;  // "+wait": the new defaults
    paths.push_back({"read()" + suffix,
                     [=](uint64_t rate) { return rate_read(rate, ring_size, block_bytes, wake, seconds, fill); },
                     new_row,
                     {}});
    paths.push_back({(wake ? "copy q./4" : "copy queue"),
                     [=](uint64_t rate) { return rate_copy(rate, ring_size, block_bytes, wake, seconds, fill); },
                     new_row,
                     {}});
    for (size_t p = first; p < read_row; ++p) paths[p].copies = {read_row, read_row + 1};
  }
  fmt::print("\nCandidates (ablation): in-place variants, one change at a time, in the same runs as read() and\n"
             "the copying queue, quiet and noisy.\n");
  print_rate_header(settings, ring_size, block_bytes, seconds, runs);
  fmt::print(
      "before     the old in-place consumer: releases in steps of an eighth of the ring\n"
      "           (set_release_step(ring/8)) and the old wait, two system calls per sleep: prepare_wait(),\n"
      "           poll() on wait_fd() (1 s timeout), finish_wait() reading the eventfd\n"
      "+release   release as blocks are done: every block of 64 KiB or more, smaller ones in runs of 64 KiB\n"
      "           (Consumer::kDefaultReleaseStep, the new default), old wait\n"
      "+wait      the new release and Consumer::wait(kEventfd, 1 s), the library's wait (the new defaults)\n"
      "+wait inf  the same with no timeout (kWaitForever)\n"
      "+prefetch  +wait, and the verify pass prefetches {} KiB ahead (__builtin_prefetch per line): the\n"
      "           consumer's per-sample work changes, not the transport\n"
      "{}"
      "read(), copy queue: the same paths as in the rate sweep, for reference (their ratios: to +wait).\n"
      "The in-place variants' ratios are to 'before' of the same wake-up rule.\n",
      kPrefetchAhead >> 10,
      huge ? "+huge     +wait on a ring whose data lies in 2 MiB pages (hugetlb), producer and consumer alike\n"
           : "(+huge: the ring in 2 MiB pages: left out, no free hugetlb pages; reserve some with\n"
             " echo 64 > /proc/sys/vm/nr_hugepages as root)\n");
  return rate_table(rates_msps, runs, settings, paths, only, contender);
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
    // No key: `rows` is a list of fields of its own.
    const std::string body = *key ? fmt::format("\"{}\": {}", key, rows) : rows;
    std::ofstream(json_path) << fmt::format(
        "{{\n  {},\n  {},\n  \"ping_pong_ns\": {{\"before\": {:.0f}, \"after\": {:.0f}}}\n}}\n", fields, body,
        ping_before, ping_after);
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
  bool candidates = false;
  std::vector<Setting> settings;  // --rates: both unless told (--only: quiet)
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
    else if (arg == "--candidates") candidates = true;
    else if (arg == "--setting" && i + 1 < argc) {
      const std::string which = argv[++i];
      if (which == "quiet") settings = {Setting::kQuiet};
      else if (which == "noisy") settings = {Setting::kNoisy};
      else if (which == "both") settings = {Setting::kQuiet, Setting::kNoisy};
      else {
        fmt::print(stderr, "--setting: quiet, noisy or both\n");
        return 2;
      }
    }
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
                 "       ring_bench --rates MSPS,... [--candidates] [--setting quiet|noisy|both] [--runs N] [--seconds S]\n"
                 "                  [--ring-size B] [--block-size B] [--only PATH] [--json FILE]\n"
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
    if (settings.empty()) {
      settings = profiling ? std::vector<Setting>{Setting::kQuiet} : std::vector<Setting>{Setting::kQuiet, Setting::kNoisy};
    }
    Contender contender;
    const bool noisy = std::find(settings.begin(), settings.end(), Setting::kNoisy) != settings.end();
    const double noisy_before = noisy && !profiling ? ping_pong_in(Setting::kNoisy, contender) : 0;
    if (noisy) fmt::print("cross-core ping-pong before, noisy setting: {:.0f} ns per round trip\n", noisy_before);
    const std::string rows =
        candidates ? candidates_sweep(rates, runs, rate_seconds, rate_ring, rate_block, rate_only, settings, contender)
                   : rate_sweep(rates, runs, rate_seconds, rate_ring, rate_block, rate_only, settings, contender);
    const double noisy_after = noisy && !profiling ? ping_pong_in(Setting::kNoisy, contender) : 0;
    if (noisy) fmt::print("\ncross-core ping-pong after, noisy setting: {:.0f} ns per round trip\n", noisy_after);
    return finish_sweep(json_path,
                        fmt::format("\"table\": \"{}\", \"runs\": {}, \"seconds\": {}, \"ring_bytes\": {}, "
                                    "\"block_bytes\": {},\n  \"ping_pong_noisy_ns\": {{\"before\": {:.0f}, "
                                    "\"after\": {:.0f}}}",
                                    candidates ? "candidates" : "rates", runs, rate_seconds, rate_ring, rate_block,
                                    noisy_before, noisy_after),
                        "", rows, ping_before, !profiling);
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
