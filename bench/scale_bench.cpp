// Scaling benchmark: what sring costs the consumer as the ring grows, as
// blocks grow, and as rings multiply.
//
//   scale_bench [--runs N] [--seconds S] [--rate SAMPLES_PER_S] [--max-ring BYTES]
//               [--json FILE] [--only TEXT] [--watermark-blocks N] [--retries N] [--quick]
//
// --only runs the configurations whose printed name contains TEXT (for
// `perf stat` of one configuration). --watermark-blocks N asks for a wake-up
// only once N blocks are waiting (the producer's flush timeout, 2 ms, still
// wakes for fewer); the default is ringlib's, one byte: every block may wake.
//
// Every configuration is one or more HostRing + SimDevice pairs (the device
// on its own thread, generating the pattern), and consumers that attach to
// each ring through its file descriptor (Ring::attach, as another process
// would) and verify every sample in place with sring::count_pattern_mismatches.
// Rings are mapped MAP_POPULATE by ringlib (both the producer's and the
// consumer's mappings), so no page is first touched inside the timed
// window; the page faults taken inside it are counted and printed anyway.
//
// Series (each paced at a fixed aggregate rate, split equally between the
// rings, drop-newest; and, for the first two, flat out as well):
//   ring   ring size 64 KiB .. --max-ring (default 4 GiB; halved until
//          HostRing::create and Ring::attach succeed), 64 KiB blocks
//          (a 64 KiB ring takes 16 KiB blocks: a block may be at most half
//          the ring, and a quarter keeps four in flight)
//   block  block size 4 KiB .. 1 MiB (header included) in a 64 MiB ring
//   rings  1, 2, 4, 8, 16 rings of 16 MiB with 64 KiB blocks,
//          "thread": one consumer thread per ring, Consumer::wait(kEventfd)
//          "epoll":  one consumer thread for all rings, epoll over their
//                    eventfds (Ring::prepare_wait()/finish_wait())
// Wake-up watermark: the default (one byte: every block may wake).
//
// Per run: the consumers' CPU time (CLOCK_THREAD_CPUTIME_ID of each consumer
// thread, user + sys) per GB of samples verified; the whole process's CPU
// (consumers + producers) per GB; samples lost from the exact accounting of
// Consumer::snapshot() at the end of the stream (a run that lost anything is
// marked LOSSY, one whose accounting is not exact is marked INEXACT);
// the producers' eventfd signals per second (producer page "wakeups"), the
// consumer threads' sleeps per second; and flat out, GB/s verified.
// The machine is shared: each run also records the CPU the rest of the
// machine used meanwhile (/proc/stat busy time minus ours) and the steal
// time. A run where that exceeded a tenth of a CPU is made again (up to
// --retries times, default 2, within 60 s of retries in all) and the
// quietest attempt kept; a row with a run still above it is marked NOISY.
// Every configuration runs --runs times (default 3), interleaved: run r of
// every configuration comes before run r + 1 of any, so drift on this shared
// machine hits all of them alike. min/median/max are printed.
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "sring/consumer.hpp"
#include "bench/bench_util.hpp"
#include "sring/ring.hpp"
#include "sring/verify.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"

namespace {

using sring::bench::ping_pong_ns;
using sring::bench::pin_to_cpu;

using Clock = std::chrono::steady_clock;
using sring::Consumer;
using sring::Ring;
using sring::sim::HostRing;
using sring::sim::SimConfig;
using sring::sim::SimDevice;

constexpr uint64_t KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB;

std::string size_name(uint64_t bytes) {
  if (bytes >= GiB && bytes % GiB == 0) return fmt::format("{}G", bytes / GiB);
  if (bytes >= MiB && bytes % MiB == 0) return fmt::format("{}M", bytes / MiB);
  return fmt::format("{}K", bytes / KiB);
}



// Five in a row: the first is often slow (a virtual CPU waking up).
std::string ping_pong_report() {
  std::vector<double> ns;
  for (int i = 0; i < 5; ++i) ns.push_back(ping_pong_ns());
  std::string all;
  for (double v : ns) all += fmt::format(" {:.0f}", v);
  return fmt::format("{:.0f} ns round trip, min of 5 (all:{})", *std::min_element(ns.begin(), ns.end()), all);
}

// The machine's busy and stolen CPU time so far (/proc/stat, all CPUs), in
// seconds: busy minus this process's own CPU over a run is what the rest of
// the machine used meanwhile, steal what the hypervisor took from our
// virtual CPUs. This machine is shared: a run that others disturbed says so.
struct MachineCpu {
  double busy = 0;
  double steal = 0;
};

MachineCpu machine_cpu() {
  MachineCpu m;
  std::ifstream in("/proc/stat");
  std::string cpu;
  uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) || cpu != "cpu") return m;
  const double tick = double(::sysconf(_SC_CLK_TCK));
  m.busy = double(user + nice + system + irq + softirq) / tick;
  m.steal = double(steal) / tick;
  return m;
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

double seconds_of(const timeval& tv) { return double(tv.tv_sec) + double(tv.tv_usec) * 1e-6; }

// What one consumer thread did, measured on that thread.
struct ThreadUsage {
  double cpu_s = 0;
  double wall_s = 0;
  Clock::time_point end;  // when the thread saw the end of its last stream
  uint64_t ctx_switches = 0;  // voluntary + involuntary
  uint64_t minor_faults = 0;
  uint64_t sleeps = 0;  // times the thread went to sleep waiting for data
};

class UsageMeter {
 public:
  UsageMeter() : cpu_(thread_cpu_seconds()), start_(Clock::now()) { getrusage(RUSAGE_THREAD, &ru_); }
  ThreadUsage stop(uint64_t sleeps) const {
    rusage now{};
    getrusage(RUSAGE_THREAD, &now);
    ThreadUsage u;
    u.cpu_s = thread_cpu_seconds() - cpu_;
    u.end = Clock::now();
    u.wall_s = std::chrono::duration<double>(u.end - start_).count();
    u.ctx_switches = uint64_t(now.ru_nvcsw - ru_.ru_nvcsw) + uint64_t(now.ru_nivcsw - ru_.ru_nivcsw);
    u.minor_faults = uint64_t(now.ru_minflt - ru_.ru_minflt);
    u.sleeps = sleeps;
    return u;
  }

 private:
  double cpu_;
  Clock::time_point start_;
  rusage ru_{};
};

// One ring: its memory, its device, and the consumer side attached through
// a descriptor. Stable in memory (the device and the consumer hold
// references), so always held by unique_ptr.
struct Lane {
  std::optional<HostRing> host;
  std::unique_ptr<SimDevice> device;
  std::optional<Ring> ring;
  std::unique_ptr<Consumer> consumer;
  uint32_t seed = 1;
  uint64_t mismatches = 0;

  // Verifies one block in place: the same function for every consumer.
  void verify(const sring::Block& block) {
    mismatches += sring::count_pattern_mismatches(block.samples().data(), block.first_sample(),
                                                  block.header().sample_count, seed);
  }
};

sring::Expected<std::unique_ptr<Lane>> make_lane(uint64_t ring_size, const SimConfig& config,
                                                 uint32_t watermark_blocks) {
  auto lane = std::make_unique<Lane>();
  auto host = HostRing::create(ring_size, "scale_bench");
  if (!host) return host.error();
  lane->host.emplace(std::move(*host));
  lane->seed = config.pattern_seed;
  lane->device = std::make_unique<SimDevice>(*lane->host, config);
  // The device signals this eventfd; the consumer sleeps on (or epolls) it.
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!efd.valid()) return sring::Error{errno, "cannot create an eventfd"};
  if (auto set = lane->device->set_eventfd(efd.get()); !set) return set.error();
  auto fd = lane->host->duplicate_fd();
  if (!fd) return fd.error();
  auto ring = Ring::attach(std::move(*fd), Ring::Access::kConsumer);
  if (!ring) return ring.error();
  lane->ring.emplace(std::move(*ring));
  if (auto used = lane->ring->use_eventfd(std::move(efd)); !used) return used.error();
  if (watermark_blocks > 0) lane->ring->set_wakeup_watermark(uint64_t{watermark_blocks} * config.block_bytes);
  // A fresh ring: the stream is known to begin at sequence 0, sample 0.
  lane->consumer = std::make_unique<Consumer>(*lane->ring);
  return lane;
}

enum class Mode { kThreadPerRing, kEpoll };

struct Config {
  std::string series;  // "ring", "block", "rings"
  uint64_t ring_size = 0;
  uint32_t block_bytes = 0;
  uint32_t rings = 1;
  Mode mode = Mode::kThreadPerRing;
  bool paced = true;

  std::string name() const {
    return fmt::format("{:<5} {:>4} ring {:>5} blk {:>2}x{:<6} {}", series, size_name(ring_size),
                       size_name(block_bytes), rings,
                       mode == Mode::kEpoll ? "epoll" : "thread", paced ? "paced" : "flat-out");
  }
};

struct RunResult {
  bool ok = false;
  std::string error;
  double wall_s = 0;           // from the first device's start to the last stream's end
  double consumer_cpu_s = 0;   // sum over consumer threads
  double process_cpu_s = 0;    // the whole process over the window (producers too)
  uint64_t samples_verified = 0;
  uint64_t samples_produced = 0;
  uint64_t samples_missing = 0;  // the consumers' count (jumps in first_sample)
  uint64_t samples_dropped = 0;  // the producers' count
  uint64_t mismatches = 0;
  bool exact = true;
  uint64_t signals = 0;          // eventfd signals sent by the producers
  uint64_t eventfd_reads = 0;    // signals the consumers received (Ring::wakeups_received())
  uint64_t sleeps = 0;           // consumer threads going to sleep
  uint64_t ctx_switches = 0;     // of the consumer threads
  uint64_t consumer_faults = 0;  // minor faults of the consumer threads
  uint64_t process_faults = 0;   // minor faults of the whole process
  double ping_pong_ns = 0;       // cross-core round trip right before the run
  double others_cpu_s = 0;       // CPU the rest of the machine used during the run
  double steal_s = 0;            // CPU the hypervisor took from us during the run
  int attempts = 1;              // runs made to get this one (see --retries)

  double gb() const { return double(samples_verified) * 2 / 1e9; }
  double cpu_per_gb() const { return gb() > 0 ? consumer_cpu_s / gb() : 0; }
  double process_cpu_per_gb() const { return gb() > 0 ? process_cpu_s / gb() : 0; }
  double gbps() const { return wall_s > 0 ? gb() / wall_s : 0; }
  double signals_per_s() const { return wall_s > 0 ? double(signals) / wall_s : 0; }
  double sleeps_per_s() const { return wall_s > 0 ? double(sleeps) / wall_s : 0; }
  // CPUs the rest of the machine and the hypervisor took, on average.
  double others_per_s() const { return wall_s > 0 ? (others_cpu_s + steal_s) / wall_s : 0; }
  bool noisy() const { return others_per_s() > 0.1; }
  double loss_fraction() const {
    return samples_produced ? double(samples_missing) / double(samples_produced) : 0;
  }
};

// One consumer thread per ring: the plain way, Consumer::wait(kEventfd).
ThreadUsage consume_one(Lane& lane, std::string& error) {
  UsageMeter meter;
  Consumer& consumer = *lane.consumer;
  for (;;) {
    auto n = consumer.consume([&](const sring::Block& block) { lane.verify(block); });
    if (!n) {
      error = n.error().message;
      break;
    }
    if (*n > 0) continue;
    if (consumer.end_of_stream()) break;
    if (auto waited = consumer.wait(sring::WaitStrategy::kEventfd, std::chrono::milliseconds(100)); !waited) {
      error = waited.error().message;
      break;
    }
  }
  return meter.stop(lane.ring->sleeps());
}

// One consumer thread for every ring: drain each ring in turn; when all are
// empty, arm them all and sleep in epoll_wait on their eventfds.
ThreadUsage consume_all_epoll(std::vector<std::unique_ptr<Lane>>& lanes, std::string& error) {
  UsageMeter meter;
  uint64_t sleeps = 0;
  sring::UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) {
    error = fmt::format("epoll_create1: {}", std::strerror(errno));
    return meter.stop(0);
  }
  for (uint32_t i = 0; i < lanes.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = i;
    if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, lanes[i]->ring->wait_fd(), &ev) != 0) {
      error = fmt::format("epoll_ctl: {}", std::strerror(errno));
      return meter.stop(0);
    }
  }
  std::vector<uint8_t> finished(lanes.size(), 0), fired(lanes.size(), 0);
  std::vector<epoll_event> events(lanes.size());
  size_t remaining = lanes.size();
  while (remaining > 0 && error.empty()) {
    bool any = false;
    for (size_t i = 0; i < lanes.size(); ++i) {
      if (finished[i]) continue;
      Lane& lane = *lanes[i];
      auto n = lane.consumer->consume([&](const sring::Block& block) { lane.verify(block); });
      if (!n) {
        error = n.error().message;
        break;
      }
      if (*n > 0) {
        any = true;
      } else if (lane.consumer->end_of_stream()) {
        finished[i] = 1;
        --remaining;
      }
    }
    if (any || remaining == 0 || !error.empty()) continue;
    // Every ring is empty: ask each for a wake-up. consume() has released
    // everything already (Consumer::wait() would flush() first).
    bool ready = false;
    for (size_t i = 0; i < lanes.size(); ++i) {
      if (!finished[i]) ready |= lanes[i]->ring->prepare_wait();
    }
    std::fill(fired.begin(), fired.end(), 0);
    if (!ready) {
      ++sleeps;
      const int got = ::epoll_wait(epoll.get(), events.data(), int(events.size()), 100);
      if (got < 0 && errno != EINTR) error = fmt::format("epoll_wait: {}", std::strerror(errno));
      for (int k = 0; k < got; ++k) fired[events[k].data.u32] = 1;
    }
    for (size_t i = 0; i < lanes.size(); ++i) {
      if (!finished[i]) lanes[i]->ring->finish_wait(fired[i] != 0);
    }
  }
  return meter.stop(sleeps);
}

struct Options {
  int runs = 3;
  double seconds = 1.0;
  uint64_t rate = 500'000'000;  // aggregate samples/s (2 bytes each): 1 GB/s
  uint64_t max_ring = 4 * GiB;
  std::string json;
  std::string only;  // run only the configurations whose name contains this
  uint32_t watermark_blocks = 0;  // 0: the library's default watermark (one byte)
  int retries = 2;                // runs again a run others disturbed, up to this many times
  double retry_budget_s = 60;     // in all
  bool quick = false;
};

RunResult run_config(const Config& config, const Options& options) {
  RunResult result;
  // Where the two virtual CPUs sit can change from one run to the next;
  // each run carries the round trip measured right before it.
  result.ping_pong_ns = ping_pong_ns();
  std::vector<std::unique_ptr<Lane>> lanes;
  for (uint32_t i = 0; i < config.rings; ++i) {
    SimConfig sim;
    sim.sample_rate = config.paced ? options.rate / config.rings : 0;
    sim.block_bytes = config.block_bytes;
    sim.overrun_policy = SRING_OVERRUN_DROP_NEWEST;
    sim.pattern_seed = 1 + i;  // a ring's blocks verify only against their own seed
    auto lane = make_lane(config.ring_size, sim, options.watermark_blocks);
    if (!lane) {
      result.error = lane.error().message;
      return result;
    }
    lanes.push_back(std::move(*lane));
  }

  const auto duration = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(options.seconds));
  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  const MachineCpu machine_before = machine_cpu();
  // Devices first: a consumer that looks at a ring not yet running sees the
  // end of a stream.
  const auto started_at = Clock::now();
  for (auto& lane : lanes) {
    if (auto started = lane->device->start(duration); !started) {
      result.error = started.error().message;
      for (auto& l : lanes) l->device->request_stop();
      for (auto& l : lanes) l->device->join();
      return result;
    }
  }
  std::vector<ThreadUsage> usage(config.mode == Mode::kEpoll ? 1 : lanes.size());
  std::vector<std::string> errors(usage.size());
  {
    std::vector<std::jthread> consumers;
    if (config.mode == Mode::kEpoll) {
      consumers.emplace_back([&] { usage[0] = consume_all_epoll(lanes, errors[0]); });
    } else {
      for (size_t i = 0; i < lanes.size(); ++i) {
        consumers.emplace_back([&, i] { usage[i] = consume_one(*lanes[i], errors[i]); });
      }
    }
  }
  for (auto& lane : lanes) lane->device->join();
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  const MachineCpu machine_after = machine_cpu();

  for (const auto& e : errors) {
    if (!e.empty()) result.error = e;
  }
  for (const auto& u : usage) {
    result.consumer_cpu_s += u.cpu_s;
    result.wall_s = std::max(result.wall_s, std::chrono::duration<double>(u.end - started_at).count());
    result.ctx_switches += u.ctx_switches;
    result.consumer_faults += u.minor_faults;
    result.sleeps += u.sleeps;
  }
  result.process_cpu_s = seconds_of(after.ru_utime) + seconds_of(after.ru_stime) -
                         seconds_of(before.ru_utime) - seconds_of(before.ru_stime);
  result.process_faults = uint64_t(after.ru_minflt - before.ru_minflt);
  // Tick-based: +-10 ms per CPU is noise; more than a tenth of a CPU is not.
  result.others_cpu_s = std::max(0.0, machine_after.busy - machine_before.busy - result.process_cpu_s);
  result.steal_s = machine_after.steal - machine_before.steal;
  for (auto& lane : lanes) {
    const sring::Counters c = lane->consumer->snapshot();
    result.samples_verified += c.samples;
    result.samples_produced += c.samples_produced;
    result.samples_missing += c.missing_samples;
    result.samples_dropped += c.samples_dropped;
    result.exact = result.exact && c.end_of_stream && c.exact;
    result.mismatches += lane->mismatches;
    result.signals += lane->ring->producer_counters().wakeups;
    result.eventfd_reads += lane->ring->wakeups_received();
  }
  result.ok = result.error.empty();
  return result;
}

// ---- statistics and printing ---------------------------------------------

struct Spread {
  double min = 0, median = 0, max = 0;
};

template <typename F>
Spread spread_of(const std::vector<RunResult>& runs, F f) {
  std::vector<double> v;
  for (const auto& r : runs) {
    if (r.ok) v.push_back(f(r));
  }
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {v.front(), median, v.back()};
}

std::string fmt_spread(const Spread& s, int precision) {
  return fmt::format("{:.{}f} {:.{}f} {:.{}f}", s.min, precision, s.median, precision, s.max, precision);
}

struct Row {
  Config config;
  std::vector<RunResult> runs;

  bool lossy() const {
    return std::any_of(runs.begin(), runs.end(), [](const RunResult& r) { return r.samples_missing > 0; });
  }
  // The most CPUs the rest of the machine (and the hypervisor) took in any run.
  double others() const {
    double most = 0;
    for (const auto& r : runs) {
      most = std::max(most, r.others_per_s());
    }
    return most;
  }
  bool inexact() const {
    return std::any_of(runs.begin(), runs.end(),
                       [](const RunResult& r) { return r.ok && (!r.exact || r.mismatches > 0); });
  }
  std::string failure() const {
    for (const auto& r : runs) {
      if (!r.ok) return r.error;
    }
    return {};
  }
};

void print_header(bool paced) {
  if (paced) {
    fmt::print("{:<46} {:>20} {:>8} {:>9} {:>9} {:>9} {:>6} {:>6} {:>6} {:>10}\n", "configuration",
               "consumer CPU s/GB", "all s/GB", "signals/s", "sleeps/s", "ctxsw/s", "flt", "GB", "others",
               "lost max");
    fmt::print("{:<46} {:>20}\n", "", "min med max");
  } else {
    fmt::print("{:<46} {:>20} {:>8} {:>9} {:>9} {:>9} {:>6} {:>6} {:>6}\n", "configuration", "GB/s verified",
               "cons s/GB", "all s/GB", "signals/s", "sleeps/s", "flt", "GB", "others");
    fmt::print("{:<46} {:>20}\n", "", "min med max");
  }
}

void print_row(const Row& row) {
  if (const std::string failed = row.failure(); !failed.empty()) {
    fmt::print("{:<46} FAILED: {}\n", row.config.name(), failed);
    return;
  }
  const auto& runs = row.runs;
  const Spread all = spread_of(runs, [](const RunResult& r) { return r.process_cpu_per_gb(); });
  const Spread signals = spread_of(runs, [](const RunResult& r) { return r.signals_per_s(); });
  const Spread sleeps = spread_of(runs, [](const RunResult& r) { return r.sleeps_per_s(); });
  const Spread ctx = spread_of(runs, [](const RunResult& r) { return r.wall_s > 0 ? r.ctx_switches / r.wall_s : 0; });
  const Spread faults = spread_of(runs, [](const RunResult& r) { return double(r.process_faults); });
  const Spread gb = spread_of(runs, [](const RunResult& r) { return r.gb(); });
  std::string marks;
  if (row.lossy()) marks += " LOSSY";
  if (row.inexact()) marks += " INEXACT";
  if (std::any_of(row.runs.begin(), row.runs.end(), [](const RunResult& r) { return r.noisy(); })) {
    marks += " NOISY";
  }
  if (row.config.paced) {
    uint64_t lost_max = 0;
    double loss_frac = 0;
    for (const auto& r : runs) {
      lost_max = std::max(lost_max, r.samples_missing);
      loss_frac = std::max(loss_frac, r.loss_fraction());
    }
    const Spread cpu = spread_of(runs, [](const RunResult& r) { return r.cpu_per_gb(); });
    fmt::print("{:<46} {:>20} {:>8.3f} {:>9.0f} {:>9.0f} {:>9.0f} {:>6.0f} {:>6.2f} {:>6.2f} {:>10}{}{}\n",
               row.config.name(), fmt_spread(cpu, 3), all.median, signals.median, sleeps.median,
               ctx.median, faults.max, gb.median, row.others(), lost_max,
               lost_max ? fmt::format(" ({:.2g}%)", loss_frac * 100) : "", marks);
  } else {
    const Spread gbps = spread_of(runs, [](const RunResult& r) { return r.gbps(); });
    const Spread cpu = spread_of(runs, [](const RunResult& r) { return r.cpu_per_gb(); });
    fmt::print("{:<46} {:>20} {:>8.3f} {:>9.3f} {:>9.0f} {:>9.0f} {:>6.0f} {:>6.2f} {:>6.2f}{}\n",
               row.config.name(), fmt_spread(gbps, 2), cpu.median, all.median, signals.median, sleeps.median,
               faults.max, gb.median, row.others(), marks);
  }
}

void write_json(const std::string& path, const Options& options, const std::vector<Row>& rows,
                const std::string& ping_before, const std::string& ping_after, uint64_t largest_ring, const std::string& largest_why) {
  std::ofstream out(path);
  out << "{\n";
  out << fmt::format("  \"runs\": {}, \"seconds\": {}, \"aggregate_rate\": {}, \"quick\": {}, "
                     "\"watermark_blocks\": {},\n",
                     options.runs, options.seconds, options.rate, options.quick ? "true" : "false",
                     options.watermark_blocks);
  out << fmt::format("  \"ping_pong_before\": \"{}\", \"ping_pong_after\": \"{}\",\n", ping_before,
                     ping_after);
  std::string why;
  for (char c : largest_why) {
    if (c == '"' || c == '\\') why += '\\';
    why += c;
  }
  out << fmt::format("  \"largest_ring\": {}, \"largest_ring_note\": \"{}\",\n", largest_ring, why);
  out << "  \"results\": [\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& row = rows[i];
    const Config& c = row.config;
    out << fmt::format(
        "    {{\"series\": \"{}\", \"ring_size\": {}, \"block_bytes\": {}, \"rings\": {}, \"mode\": \"{}\", "
        "\"paced\": {}, \"rate\": {}, \"lossy\": {}, \"runs\": [\n",
        c.series, c.ring_size, c.block_bytes, c.rings, c.mode == Mode::kEpoll ? "epoll" : "thread",
        c.paced ? "true" : "false", c.paced ? options.rate : 0, row.lossy() ? "true" : "false");
    for (size_t k = 0; k < row.runs.size(); ++k) {
      const RunResult& r = row.runs[k];
      out << fmt::format(
          "      {{\"ok\": {}, \"wall_s\": {:.6f}, \"consumer_cpu_s\": {:.6f}, \"process_cpu_s\": {:.6f}, "
          "\"samples_verified\": {}, \"samples_produced\": {}, \"samples_missing\": {}, "
          "\"samples_dropped\": {}, \"mismatches\": {}, \"exact\": {}, \"signals\": {}, "
          "\"eventfd_reads\": {}, \"sleeps\": {}, \"ctx_switches\": {}, \"consumer_faults\": {}, "
          "\"process_faults\": {}, \"ping_pong_ns\": {:.0f}, \"others_cpu_s\": {:.2f}, \"steal_s\": {:.2f}, \"attempts\": {}, "
          "\"consumer_cpu_s_per_gb\": {:.6f}, \"gb_per_s\": {:.4f}}}{}\n",
          r.ok ? "true" : "false", r.wall_s, r.consumer_cpu_s, r.process_cpu_s, r.samples_verified,
          r.samples_produced, r.samples_missing, r.samples_dropped, r.mismatches, r.exact ? "true" : "false",
          r.signals, r.eventfd_reads, r.sleeps, r.ctx_switches, r.consumer_faults, r.process_faults,
          r.ping_pong_ns, r.others_cpu_s, r.steal_s, r.attempts, r.cpu_per_gb(), r.gbps(), k + 1 < row.runs.size() ? "," : "");
    }
    out << fmt::format("    ]}}{}\n", i + 1 < rows.size() ? "," : "");
  }
  out << "  ]\n}\n";
}

uint64_t parse_size(const std::string& text) {
  size_t used = 0;
  const uint64_t n = std::stoull(text, &used);
  const std::string unit = text.substr(used);
  if (unit == "K" || unit == "k") return n * KiB;
  if (unit == "M" || unit == "m") return n * MiB;
  if (unit == "G" || unit == "g") return n * GiB;
  return n;
}

// The largest ring this machine gives us, from `want` down: a HostRing and
// a consumer attached to it, both populated, as every run needs.
uint64_t largest_ring(uint64_t want, std::string& why) {
  for (uint64_t size = want; size >= SRING_MIN_RING_SIZE; size /= 2) {
    auto host = HostRing::create(size, "scale_bench_probe");
    if (!host) {
      why += fmt::format("{}: {}; ", size_name(size), host.error().message);
      continue;
    }
    auto fd = host->duplicate_fd();
    if (!fd) {
      why += fmt::format("{}: {}; ", size_name(size), fd.error().message);
      continue;
    }
    auto ring = Ring::attach(std::move(*fd), Ring::Access::kConsumer);
    if (!ring) {
      why += fmt::format("{}: {}; ", size_name(size), ring.error().message);
      continue;
    }
    why += fmt::format("{} created and attached", size_name(size));
    return size;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  bool runs_given = false, seconds_given = false, retries_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        fmt::print(stderr, "{} needs a value\n", arg);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--runs") {
      options.runs = std::max(1, std::stoi(value()));
      runs_given = true;
    } else if (arg == "--seconds") {
      options.seconds = std::stod(value());
      seconds_given = true;
    } else if (arg == "--rate") {
      options.rate = std::stoull(value());
    } else if (arg == "--max-ring") {
      options.max_ring = parse_size(value());
    } else if (arg == "--json") {
      options.json = value();
    } else if (arg == "--watermark-blocks") {
      options.watermark_blocks = uint32_t(std::stoul(value()));
    } else if (arg == "--retries") {
      options.retries = std::max(0, std::stoi(value()));
      retries_given = true;
    } else if (arg == "--only") {
      options.only = value();
    } else if (arg == "--quick") {
      options.quick = true;
    } else {
      fmt::print(stderr,
                 "usage: scale_bench [--runs N] [--seconds S] [--rate SAMPLES_PER_S] [--max-ring BYTES[K|M|G]] "
                 "[--json FILE] [--only TEXT] [--watermark-blocks N] [--retries N] [--quick]\n");
      return 2;
    }
  }
  if (options.quick) {
    if (!runs_given) options.runs = 1;
    if (!seconds_given) options.seconds = 0.3;
    if (!retries_given) options.retries = 0;
  }

  fmt::print("scale_bench: {} run(s) per configuration, interleaved; {:.2f} s per run\n", options.runs,
             options.seconds);
  fmt::print("paced: {} MS/s aggregate ({:.2f} GB/s of samples), split equally between rings; drop-newest\n",
             options.rate / 1'000'000, double(options.rate) * 2 / 1e9);
  fmt::print("every sample verified in place with sring::count_pattern_mismatches; wake-up watermark: {}\n",
             options.watermark_blocks ? fmt::format("{} blocks", options.watermark_blocks)
                                      : std::string("one byte (ringlib's default)"));
  fmt::print("{} CPUs\n", std::thread::hardware_concurrency());
  const std::string ping_before = ping_pong_report();
  fmt::print("cross-core ping-pong before: {}\n", ping_before);

  std::string largest_why;
  const uint64_t largest = options.quick ? 0 : largest_ring(options.max_ring, largest_why);
  if (!options.quick) fmt::print("largest ring: {} ({})\n", size_name(largest), largest_why);

  std::vector<Config> configs;
  auto add = [&](const std::string& series, uint64_t ring, uint64_t block, uint32_t rings, Mode mode, bool paced) {
    configs.push_back(Config{series, ring, uint32_t(block), rings, mode, paced});
  };
  std::vector<uint64_t> ring_sizes = options.quick
                                         ? std::vector<uint64_t>{64 * KiB, 16 * MiB, 256 * MiB}
                                         : std::vector<uint64_t>{64 * KiB, 1 * MiB, 16 * MiB, 256 * MiB, 1 * GiB};
  if (largest > ring_sizes.back()) ring_sizes.push_back(largest);
  const std::vector<uint64_t> block_sizes =
      options.quick ? std::vector<uint64_t>{4 * KiB, 64 * KiB, 1 * MiB}
                    : std::vector<uint64_t>{4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB};
  const std::vector<uint32_t> ring_counts =
      options.quick ? std::vector<uint32_t>{1, 4, 16} : std::vector<uint32_t>{1, 2, 4, 8, 16};
  for (bool paced : {true, false}) {
    for (uint64_t size : ring_sizes) {
      add("ring", size, std::min<uint64_t>(64 * KiB, size / 4), 1, Mode::kThreadPerRing, paced);
    }
    for (uint64_t block : block_sizes) add("block", 64 * MiB, block, 1, Mode::kThreadPerRing, paced);
  }
  for (Mode mode : {Mode::kThreadPerRing, Mode::kEpoll}) {
    for (uint32_t n : ring_counts) add("rings", 16 * MiB, 64 * KiB, n, mode, true);
  }

  std::vector<Row> rows;
  for (const Config& c : configs) {
    if (c.name().find(options.only) != std::string::npos) rows.push_back(Row{c, {}});
  }
  const auto start = Clock::now();
  double retry_seconds = 0;
  for (int run = 0; run < options.runs; ++run) {
    for (Row& row : rows) {
      RunResult result = run_config(row.config, options);
      // A run others disturbed is run again, while the retry budget lasts;
      // the quietest attempt is kept, and says how many it took.
      for (int retry = 1; result.ok && result.noisy() && retry <= options.retries &&
                          retry_seconds < options.retry_budget_s;
           ++retry) {
        const auto retry_start = Clock::now();
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        RunResult again = run_config(row.config, options);
        again.attempts = result.attempts + 1;
        if (!again.ok || again.others_per_s() < result.others_per_s()) {
          result = std::move(again);
        } else {
          result.attempts = again.attempts;
        }
        retry_seconds += std::chrono::duration<double>(Clock::now() - retry_start).count();
      }
      if (!result.ok) fmt::print(stderr, "{}: {}\n", row.config.name(), result.error);
      row.runs.push_back(std::move(result));
    }
    fmt::print(stderr, "run {}/{} done after {:.0f} s\n", run + 1, options.runs,
               std::chrono::duration<double>(Clock::now() - start).count());
  }

  fmt::print("\nPaced at {:.2f} GB/s aggregate: consumer CPU per GB verified (min med max of {} runs), medians "
             "of the rest; 'all' = whole process (producers too); flt = page faults in the window (max); "
             "others = most CPUs the rest of the machine and the hypervisor took in any run (NOISY above 0.1); "
             "lost max = samples lost in the worst run\n",
             double(options.rate) * 2 / 1e9, options.runs);
  print_header(true);
  for (const Row& row : rows) {
    if (row.config.paced) print_row(row);
  }
  fmt::print("\nFlat out (sample_rate 0: the device waits for room, nothing lost)\n");
  print_header(false);
  for (const Row& row : rows) {
    if (!row.config.paced) print_row(row);
  }

  const std::string ping_after = ping_pong_report();
  fmt::print("\ncross-core ping-pong after: {}\n             before: {}\n", ping_after, ping_before);
  int repeated = 0;
  for (const Row& row : rows) {
    for (const auto& r : row.runs) repeated += r.attempts - 1;
  }
  fmt::print("total {:.0f} s; {} run(s) made again because others used the machine ({:.0f} s)\n",
             std::chrono::duration<double>(Clock::now() - start).count(), repeated, retry_seconds);
  if (!options.json.empty()) {
    write_json(options.json, options, rows, ping_before, ping_after, largest, largest_why);
    fmt::print("results written to {}\n", options.json);
  }
  // A wrong sample, inexact accounting or a failed run makes the figures
  // those of a broken transport: the exit status says so (the test suite
  // runs --quick for this, never judging a figure).
  const bool broken = std::any_of(rows.begin(), rows.end(), [](const Row& row) {
    return row.inexact() || !row.failure().empty();
  });
  return broken ? 1 : 0;
}
