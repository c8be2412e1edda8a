// Host benchmark: the sring ring with in-place verification against the
// copies people use today, side by side in one process, as ratios.
//
//   ring_bench [--runs N] [--json FILE] [--quick]
//
// Every transport moves the same bytes from a producer thread (which writes
// the sample pattern) to a consumer thread (which verifies every sample):
//   sring          HostRing + SimDevice flat out, verified in place
//   spsc batch     boost::lockfree::spsc_queue<uint16_t>, push/pop of a block
//   spsc element   the same queue, one sample at a time
//   pipe           write()/read() of blocks through a 1 MiB pipe
// and the limit: one thread reading and summing the same bytes (no transport).
// Wake-up latency, per block: from the block's commit timestamp to the moment
// the consumer's wait() returns with it; the raw eventfd baseline treats each
// write() as a block and is timed the same way, with the same pacing.
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
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

#include <boost/lockfree/spsc_queue.hpp>
#include <fmt/format.h>

#include "sring/ring.hpp"
#include "sring/stream.hpp"
#include "sring/verify.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"
#include "sring/sring_pattern.h"

namespace {

using Clock = std::chrono::steady_clock;
using sring::Ring;

void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % std::max(1u, std::thread::hardware_concurrency()), &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

struct Stat {
  double median = 0;
  double spread_pct = 0;  // (max - min) / median
};

Stat summarize(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  Stat s;
  s.median = values[values.size() / 2];
  s.spread_pct = s.median > 0 ? 100.0 * (values.back() - values.front()) / s.median : 0;
  return s;
}

// A cross-core ping-pong: round-trip time of a cache line between two pinned
// threads. Reported before and after the run: when the two virtual CPUs sit
// "far apart" everything cross-core slows down together.
double ping_pong_ns() {
  std::atomic<uint64_t> ball{0};
  constexpr uint64_t kRounds = 20000;
  std::thread other([&] {
    pin_to_cpu(1);
    for (uint64_t i = 1; i < 2 * kRounds; i += 2) {
      while (ball.load(std::memory_order_acquire) != i) {}
      ball.store(i + 1, std::memory_order_release);
    }
  });
  pin_to_cpu(0);
  const auto start = Clock::now();
  for (uint64_t i = 0; i < 2 * kRounds; i += 2) {
    ball.store(i + 1, std::memory_order_release);
    while (ball.load(std::memory_order_acquire) != i + 2) {}
  }
  const auto elapsed = Clock::now() - start;
  other.join();
  return std::chrono::duration<double, std::nano>(elapsed).count() / kRounds;
}

// ---- throughput: GB/s of samples verified by the consumer ----------------

double sring_run(uint64_t ring_size, uint32_t block_bytes, uint64_t total_bytes) {
  auto host = sring::sim::HostRing::create(ring_size);
  sring::sim::SimConfig config;
  config.sample_rate = 0;  // flat out: waits for room, loses nothing
  config.block_bytes = block_bytes;
  sring::sim::SimDevice device(*host, config);
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
  }
  return consumer.counters().samples * 2 / seconds / 1e9;
}

// The two ends every copying transport shares: a producer thread generating
// each block of the pattern and handing it to `send`, and a consumer (this
// thread) taking each block with `receive` and verifying it. GB/s of samples.
template <typename Send, typename Receive>
double copy_transport_run(uint32_t block_bytes, uint64_t total_bytes, const char* name, Send send,
                          Receive receive) {
  const uint32_t samples = (block_bytes - SRING_BLOCK_HEADER_SIZE) / 2;
  const uint64_t blocks = total_bytes / block_bytes;
  std::thread producer([&] {
    pin_to_cpu(1);
    std::vector<uint16_t> block(samples);
    uint64_t first = 0;
    for (uint64_t b = 0; b < blocks; ++b, first += samples) {
      sring_pattern_fill(block.data(), first, samples, 1);
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
  if (bad) fmt::print(stderr, "{} run corrupted {} samples\n", name, bad);
  return blocks * samples * 2.0 / seconds / 1e9;
}

double spsc_run(uint64_t ring_size, uint32_t block_bytes, uint64_t total_bytes, bool batch) {
  boost::lockfree::spsc_queue<uint16_t> queue(ring_size / 2);
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
  return copy_transport_run(block_bytes, total_bytes, "spsc", send, receive);
}

double pipe_run(uint32_t block_bytes, uint64_t total_bytes) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return 0;
  sring::UniqueFd read_end(fds[0]), write_end(fds[1]);
  ::fcntl(write_end.get(), F_SETPIPE_SZ, 1 << 20);
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
  return copy_transport_run(block_bytes, total_bytes, "pipe", send, receive);
}

// The limit: one thread, no transport, reading and summing the same number
// of bytes out of a buffer the size of the ring.
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

}  // namespace

int main(int argc, char** argv) {
  int runs = 5;
  bool quick = false;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else if (arg == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (arg == "--quick") quick = true;
    else {
      fmt::print(stderr, "usage: ring_bench [--runs N] [--json FILE] [--quick]\n");
      return 2;
    }
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows as it comes
  const double ping_before = ping_pong_ns();
  fmt::print("cross-core ping-pong before: {:.0f} ns per round trip\n\n", ping_before);

  std::string json = "{\n  \"throughput\": [\n";
  fmt::print("{:>9} {:>8} | {:>14} {:>14} {:>14} {:>14} {:>14} {:>14} | {:>9} {:>9}\n", "ring", "block",
             "sring GB/s", "spsc batch", "spsc element", "pipe", "read+sum", "verify-only",
             "vs batch", "vs limit");
  const std::vector<uint64_t> rings = quick ? std::vector<uint64_t>{4 << 20}
                                            : std::vector<uint64_t>{4 << 20, 256 << 20};
  const std::vector<uint32_t> blocks = quick ? std::vector<uint32_t>{64 << 10}
                                             : std::vector<uint32_t>{4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20};
  bool first_row = true;
  for (uint64_t ring_size : rings) {
    const uint64_t total = std::max<uint64_t>(ring_size * 2, 512 << 20);
    for (uint32_t block : blocks) {
      if (block > ring_size / 2) continue;
      std::vector<double> ring_v, batch_v, elem_v, pipe_v, limit_v, verify_v;
      for (int r = 0; r < runs; ++r) {
        ring_v.push_back(sring_run(ring_size, block, total));
        batch_v.push_back(spsc_run(ring_size, block, total, true));
        elem_v.push_back(spsc_run(ring_size, block, total / 16, false));
        pipe_v.push_back(pipe_run(block, total));
        limit_v.push_back(limit_run(ring_size, total, false));
        verify_v.push_back(limit_run(ring_size, total, true));
      }
      const Stat s = summarize(ring_v), b = summarize(batch_v), e = summarize(elem_v),
                 p = summarize(pipe_v), l = summarize(limit_v), v = summarize(verify_v);
      auto cell = [](const Stat& x) { return fmt::format("{:6.2f} ±{:3.0f}%", x.median, x.spread_pct); };
      fmt::print("{:>8}M {:>7}K | {:>14} {:>14} {:>14} {:>14} {:>14} {:>14} | {:>8.2f}x {:>8.0f}%\n",
                 ring_size >> 20, block >> 10, cell(s), cell(b), cell(e), cell(p), cell(l), cell(v),
                 s.median / b.median, 100 * s.median / l.median);
      json += fmt::format(
          "{}    {{\"ring_bytes\": {}, \"block_bytes\": {}, \"sring_gbps\": {:.3f}, \"sring_spread_pct\": {:.1f}, "
          "\"spsc_batch_gbps\": {:.3f}, \"spsc_element_gbps\": {:.3f}, \"pipe_gbps\": {:.3f}, "
          "\"read_sum_gbps\": {:.3f}, \"verify_only_gbps\": {:.3f}, \"sring_vs_spsc_batch\": {:.2f}, "
          "\"sring_vs_read_sum\": {:.3f}}}",
          first_row ? "" : ",\n", ring_size, block, s.median, s.spread_pct, b.median, e.median, p.median,
          l.median, v.median, s.median / b.median, s.median / l.median);
      first_row = false;
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
  return 0;
}
