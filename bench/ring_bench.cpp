// Host benchmark: the sring ring with in-place verification against the
// copies people use today, side by side in one process, as ratios.
//
//   ring_bench [--runs N] [--json FILE] [--quick] [--producer generate|memcpy|both]
//
// Every transport moves the same bytes from a producer thread to a consumer
// thread, which verifies every sample with the same function
// (sring::count_pattern_mismatches):
//   sring          HostRing + SimDevice flat out, verified in place
//   spsc batch     boost::lockfree::spsc_queue<uint16_t>, push/pop of a block
//   spsc element   the same queue, one sample at a time
//   pipe           write()/read() of blocks through a 1 MiB pipe
// Two producers: "generate" computes the pattern for every sample;
// "memcpy" (DMA-like) copies each block from a precomputed copy of the whole
// run's stream (the pattern is not periodic over a ring: its xor mask changes
// every 65536 samples, so one ring's worth cannot be replayed and still
// verify). Every buffer a transport uses is written once before its timed
// window (the ring is mapped MAP_POPULATE, the queue's storage is filled and
// drained, the pipe is filled and drained), so no transport takes first-touch
// page faults while timed.
// Limits, one thread, no transport, over an already-written buffer the size
// of the ring: verify-only (the same count_pattern_mismatches) and read+sum.
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

// The DMA-like producer's source for the ring: block b is the precomputed
// stream's samples [b * n, (b + 1) * n), which SimDevice memcpy's into the
// ring with the right sequence and first_sample in the header.
class PrecomputedSource : public sring::sim::SampleSource {
 public:
  PrecomputedSource(const uint16_t* stream, uint32_t samples_per_block, uint64_t blocks)
      : stream_(stream), n_(samples_per_block), blocks_(blocks) {}
  std::optional<Recorded> next() override {
    if (next_ > blocks_) return std::nullopt;
    Recorded r;
    r.sequence = next_;
    r.first_sample = next_ * n_;
    r.samples = next_ < blocks_ ? stream_ + next_ * n_ : nullptr;
    ++next_;
    return r;
  }

 private:
  const uint16_t* stream_;
  uint64_t n_, blocks_, next_ = 0;
};

// `precomputed`: null for the generating producer, else the whole run's
// stream for the memcpy producer.
double sring_run(uint64_t ring_size, uint32_t block_bytes, uint64_t total_bytes,
                 const uint16_t* precomputed) {
  auto host = sring::sim::HostRing::create(ring_size);
  sring::sim::SimConfig config;
  config.sample_rate = 0;  // flat out: waits for room, loses nothing
  config.block_bytes = block_bytes;
  sring::sim::SimDevice device(*host, config);
  if (precomputed) {
    device.set_source(std::make_unique<PrecomputedSource>(precomputed, device.samples_per_block(),
                                                          total_bytes / block_bytes));
  }
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
double copy_transport_run(uint32_t block_bytes, uint64_t total_bytes, const uint16_t* precomputed,
                          const char* name, Send send, Receive receive) {
  const uint32_t samples = (block_bytes - SRING_BLOCK_HEADER_SIZE) / 2;
  const uint64_t blocks = total_bytes / block_bytes;
  std::thread producer([&] {
    pin_to_cpu(1);
    std::vector<uint16_t> block(samples);
    uint64_t first = 0;
    for (uint64_t b = 0; b < blocks; ++b, first += samples) {
      if (precomputed) std::memcpy(block.data(), precomputed + first, samples * sizeof(uint16_t));
      else sring_pattern_fill(block.data(), first, samples, 1);
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

double spsc_run(uint64_t ring_size, uint32_t block_bytes, uint64_t total_bytes, bool batch,
                const uint16_t* precomputed) {
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
  return copy_transport_run(block_bytes, total_bytes, precomputed, "spsc", send, receive);
}

double pipe_run(uint32_t block_bytes, uint64_t total_bytes, const uint16_t* precomputed) {
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
  return copy_transport_run(block_bytes, total_bytes, precomputed, "pipe", send, receive);
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

struct Series {
  std::string name;
  std::string producer;  // "generate", "memcpy", or "" for the one-thread limits
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

int main(int argc, char** argv) {
  int runs = 5;
  bool quick = false;
  bool generate = true, dma = true;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
    else if (arg == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (arg == "--quick") quick = true;
    else if (arg == "--producer" && i + 1 < argc) {
      const std::string which = argv[++i];
      generate = which == "generate" || which == "both";
      dma = which == "memcpy" || which == "both";
      if (!generate && !dma) {
        fmt::print(stderr, "--producer: generate, memcpy or both\n");
        return 2;
      }
    } else {
      fmt::print(stderr, "usage: ring_bench [--runs N] [--json FILE] [--quick] [--producer generate|memcpy|both]\n");
      return 2;
    }
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress shows as it comes
  const double ping_before = ping_pong_ns();
  fmt::print("cross-core ping-pong before: {:.0f} ns per round trip\n\n", ping_before);
  fmt::print(
      "Throughput: GB/s of samples moved producer thread (cpu 1) -> consumer thread (cpu 0), every\n"
      "sample verified by the consumer with sring::count_pattern_mismatches; {} runs per row,\n"
      "min / median / max. Producers: generate = computes the pattern per sample; memcpy =\n"
      "DMA-like, copies each block from a precomputed copy of the run's stream (read from DRAM).\n"
      "Pre-faulted before every timed window: the ring (MAP_POPULATE), the spsc_queue storage\n"
      "(filled and drained once), the pipe (filled and drained once), the block buffers and the\n"
      "precomputed stream (written). Limits, one thread, no transport, over an already-written\n"
      "buffer the size of the ring: verify-only (the same count_pattern_mismatches) and read+sum.\n"
      "vs verify: per-run ratio to the verify-only limit of the same run (min / median / max).\n"
      "vs batch: median against the spsc batch median with the same producer.\n",
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
      const uint32_t per_block = (block - SRING_BLOCK_HEADER_SIZE) / 2;
      const uint64_t n_blocks = total / block;
      // The memcpy producer's source: the whole run's stream, written now
      // (untimed), shared by every transport and run of this row.
      std::vector<uint16_t> stream;
      if (dma) {
        stream.resize(n_blocks * per_block);
        for (uint64_t first = 0; first < stream.size(); first += SRING_PATTERN_CHUNK) {
          sring_pattern_fill(stream.data() + first, first,
                             uint32_t(std::min<uint64_t>(SRING_PATTERN_CHUNK, stream.size() - first)), 1);
        }
      }
      std::vector<Series> rows;
      auto add = [&](const std::string& name, const std::string& producer) -> std::vector<double>& {
        rows.push_back({name, producer, {}});
        return rows.back().gbps;
      };
      // Fixed order; indices into rows.
      std::vector<std::pair<std::string, const uint16_t*>> producers;
      if (generate) producers.push_back({"generate", nullptr});
      if (dma) producers.push_back({"memcpy", stream.data()});
      for (auto& [pname, src] : producers) {
        add("sring", pname);
        add("spsc batch", pname);
        add("spsc element", pname);
        add("pipe", pname);
      }
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
        rows[k++].gbps.push_back(limit_run(ring_size, total, true));
        rows[k++].gbps.push_back(limit_run(ring_size, total, false));
      }
      const std::vector<double>& verify = rows[rows.size() - 2].gbps;
      fmt::print("\nring {} MiB, block {} KiB\n", ring_size >> 20, block >> 10);
      fmt::print("  {:<13} {:<10} | {:>6} {:>6} {:>6} | {:>17} | {:>8}\n", "transport", "producer", "min",
                 "median", "max", "vs verify (%)", "vs batch");
      for (const Series& row : rows) {
        const Spread g = spread(row.gbps);
        std::string vs_verify = "", vs_batch = "";
        if (!row.producer.empty()) {
          const Spread v = spread(ratios(row.gbps, verify));
          vs_verify = fmt::format("{:4.0f} /{:4.0f} /{:4.0f}", 100 * v.min, 100 * v.median, 100 * v.max);
          for (const Series& other : rows) {
            if (other.name == "spsc batch" && other.producer == row.producer && row.name != "spsc batch") {
              vs_batch = fmt::format("{:.2f}x", g.median / std::max(1e-9, spread(other.gbps).median));
            }
          }
        }
        fmt::print("  {:<13} {:<10} | {:6.2f} {:6.2f} {:6.2f} | {:>17} | {:>8}\n", row.name,
                   row.producer.empty() ? "(1 thread)" : row.producer, g.min, g.median, g.max, vs_verify,
                   vs_batch);
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
  return 0;
}
