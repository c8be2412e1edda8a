// acquire: take samples from an sring ring, verify every one in place (any
// format, any channel count: every value of every frame), and say at the
// end whether anything was lost or corrupted.
//
//   acquire --sim                    the simulated device on a thread, in-process
//   acquire --sim-socket PATH        a ring made by an sring-sim process
//   acquire --device /dev/sring0     the kernel driver and its simulated device
//
// Exit status: 0 every sample verified and none lost (or, with --allow-loss,
// every loss accounted for exactly); 1 samples lost or corrupted; 2 errors;
// 3 the device ended the stream (removed or failed), everything up to its end
// verified and accounted for.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "tools/cli.hpp"
#include "tools/session.hpp"
#include "tools/version.hpp"
#include "ringlib/error_format.hpp"
#include "sring/device.hpp"
#include "sring/pipeline.hpp"
#include "sring/ring.hpp"
#include "sring/stream.hpp"
#include "sring/verify.hpp"
#include "sring/sim/fd_passing.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"

namespace {

using namespace sring;
using Clock = std::chrono::steady_clock;

constexpr char kUsage[] =
    "usage: acquire (--sim | --sim-socket PATH | --device PATH) [options]\n"
    "  --rate FRAMES_PER_S    frames (one sample of each channel) per second, k/M/G suffixes\n"
    "                         (default 20M; 0: flat out)\n"
    "  --duration SECONDS     how long to acquire (default 5)\n"
    "  --block-size BYTES     block size, header included (default 8K)\n"
    "  --ring-size BYTES      ring size for --sim (default 4M)\n"
    "  --policy POLICY        overrun policy: drop, overwrite, stop (default drop)\n"
    "  --wait STRATEGY        eventfd, poll, spin, hybrid (default eventfd)\n"
    "  --watermark BYTES      wake-up watermark (default 1/8 of the ring)\n"
    "  --workers N            verify on N worker threads (default 0: on the reader)\n"
    "  --format NAME          sample format for --sim and --device: u8 s8 u16 s16 s32 f32 cs16\n"
    "                         cf32 sim-packed12, or a device's own as a number (default u16)\n"
    "  --channels N           channels per frame for --sim and --device, 1 to 256 (default 1)\n"
    "  --seed N               pattern seed (default 1)\n"
    "  --no-verify            do not check samples\n"
    "  --slow-us N            sleep N microseconds per batch (a slow consumer)\n"
    "  --read                 with --device: copy blocks out with read() (the baseline)\n"
    "  --allow-loss           exit 0 if every lost sample is accounted for exactly\n"
    "  --version              print the version and ABI version\n"
    "\"samples\" and MS/s in the figures count frames; MB/s counts bytes of samples.\n";

struct Options {
  SourceOptions source;  // source.sim, source.ring_size, source.wait: see session.hpp
  double duration = 5;
  uint64_t watermark = 0;
  unsigned workers = 0;
  bool verify = true;
  uint64_t slow_us = 0;
  bool allow_loss = false;
  bool use_read = false;
};

// Per-worker corrupted-sample counts, each on its own cache line.
struct alignas(64) WorkerTally {
  uint64_t corrupted = 0;
};

int usage_error(std::string_view message) {
  fmt::print(stderr, "acquire: {}\n{}", message, kUsage);
  return 2;
}

int runtime_error(const Error& error) {
  fmt::print(stderr, "acquire: {}\n", error.message);
  return 2;
}

Expected<Options> parse_options(int argc, char** argv) {
  Options options;
  cli::Args args(argc, argv);
  while (!args.done()) {
    const std::string_view option = args.take();
    auto source = parse_source_option(option, args, options.source);
    if (!source) return source.error();
    if (*source) continue;
    if (option == "--no-verify") { options.verify = false; continue; }
    if (option == "--allow-loss") { options.allow_loss = true; continue; }
    if (option == "--read") { options.use_read = true; continue; }
    auto value = args.value(option);
    if (!value) return value.error();
    if (option == "--duration") {
      auto v = cli::parse_seconds(*value, option);
      if (!v) return v.error();
      options.duration = *v;
    } else if (option == "--watermark") {
      auto v = cli::parse_size(*value, option);
      if (!v) return v.error();
      options.watermark = *v;
    } else if (option == "--workers") {
      auto v = cli::parse_count(*value, option);
      if (!v || *v > 64) return make_error(EINVAL, "--workers takes 0 to 64");
      options.workers = static_cast<unsigned>(*v);
    } else if (option == "--slow-us") {
      auto v = cli::parse_count(*value, option);
      if (!v) return v.error();
      options.slow_us = *v;
    } else {
      return make_error(EINVAL, "unknown option {}", option);
    }
  }
  if (options.source.kind == Source::kNone) {
    return make_error(EINVAL, "say where to acquire from: --sim, --sim-socket or --device");
  }
  if (options.use_read && (options.source.kind != Source::kDevice || options.workers != 0)) {
    return make_error(EINVAL, "--read works with --device and without --workers");
  }
  return options;
}

struct RunResult {
  StreamAccounting accounting;  // every block seen, in order
  uint64_t overwritten_while_read = 0;
};

bool stream_over(const Ring& ring, uint64_t consumed_up_to) {
  return ring.state() != SRING_STATE_RUNNING && ring.head() == consumed_up_to;
}

Expected<RunResult> run_single(Ring& ring, const Options& options, const Clock::time_point stop_at,
                               ProducerControl& producer) {
  StreamConsumer consumer(ring, options.verify);
  consumer.accounting().expect_start(0, 0);
  bool stop_sent = false;
  for (;;) {
    auto n = consumer.consume_available();
    if (!n) return n.error();
    if (*n > 0 && options.slow_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(options.slow_us));
    if (!stop_sent && Clock::now() >= stop_at) {
      if (auto stopped = producer.stop(); !stopped) return stopped.error();
      stop_sent = true;
    }
    if (*n > 0) continue;
    if (stream_over(ring, ring.tail())) break;
    auto waited = ring.wait(options.source.wait, std::chrono::milliseconds(50));
    if (!waited) return waited.error();
  }
  return RunResult{consumer.accounting(), consumer.overwritten_while_read()};
}

// Verifies on worker threads: the pipeline hands each worker runs of blocks
// and calls the lambda below once per block there; loss accounting stays on
// this thread, in ring order (observe), and each worker's corrupted count is
// its own (WorkerTally: a cache line each), added up once all are joined.
Expected<RunResult> run_pipeline(Ring& ring, const Options& options, const Clock::time_point stop_at,
                                 ProducerControl& producer) {
  std::vector<WorkerTally> tallies(options.workers);
  const uint32_t seed = load_relaxed(ring.producer().pattern_seed);
  const bool verify = options.verify;
  Pipeline pipeline(ring, options.workers, [&](unsigned worker, const BlockDescriptor& d) {
    if (!verify) return;
    // The validated header copy, not the ring's: the frame count and the
    // layout cannot change between the cursor's check and this read.
    tallies[worker].corrupted += count_pattern_mismatches(d.payload().data(), d.layout(), d.header->first_sample,
                                                          d.header->sample_count, seed);
  });
  StreamAccounting accounting;
  accounting.expect_start(0, 0);
  bool stop_sent = false;
  Status stop_status = ok();
  auto keep_going = [&] {
    if (!stop_sent && Clock::now() >= stop_at) {
      stop_status = producer.stop();
      stop_sent = true;
    }
    return !pipeline.end_of_stream();  // stream_over() against what was handed to workers
  };
  auto observe = [&](const sring_block_header& block) { accounting.on_block(block); };
  if (auto run = pipeline.run(options.source.wait, keep_going, observe); !run) return run.error();
  if (!stop_status) return stop_status.error();
  for (const auto& tally : tallies) accounting.add_corrupted(tally.corrupted);
  return RunResult{accounting, 0};
}

// The copy path: read() whole blocks into a buffer, then verify them there.
// A helper thread stops the device at the deadline; read() then drains what
// is left and returns 0.
Expected<RunResult> run_read(Ring& ring, const Options& options, const Clock::time_point stop_at,
                             ProducerControl& producer) {
  Status stop_status = ok();
  std::thread stopper([&] {
    std::this_thread::sleep_until(stop_at);
    stop_status = producer.stop();
  });
  struct JoinOnExit {
    std::thread& thread;
    ~JoinOnExit() { thread.join(); }
  } join{stopper};
  std::vector<uint64_t> storage(SRING_MAX_BLOCK_BYTES / 8);  // 8-byte aligned
  auto* buffer = reinterpret_cast<std::byte*>(storage.data());
  StreamAccounting accounting;
  accounting.expect_start(0, 0);
  const uint32_t seed = load_relaxed(ring.producer().pattern_seed);
  for (;;) {
    const ssize_t n = ::read(ring.fd(), buffer, storage.size() * 8);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("read() from the device failed");
    if (n == 0) break;
    BlockCursor cursor(BlockSpan{buffer, 0, static_cast<uint64_t>(n)}, SRING_MAX_BLOCK_BYTES);
    for (;;) {
      auto block = cursor.next();
      if (!block) return block.error();
      if (*block == nullptr) break;
      accounting.on_block(**block);
      if (options.verify) {
        // The cursor's validated copy of the header: its layout and count.
        const sring_block_header& header = cursor.header();
        accounting.add_corrupted(count_pattern_mismatches(cursor.payload(), SampleLayout::from_header(header),
                                                          header.first_sample, header.sample_count, seed));
      }
    }
    if (options.slow_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(options.slow_us));
  }
  if (!stop_status) return stop_status.error();
  return RunResult{accounting, 0};
}

double cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

std::string with_commas(uint64_t value) {
  const std::string digits = std::to_string(value);
  std::string grouped;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) grouped += ',';
    grouped += digits[i];
  }
  return grouped;
}

}  // namespace

int main(int argc, char** argv) {
  if (cli::answered_help_or_version(argc, argv, "acquire", kUsage)) return 0;
  auto parsed = parse_options(argc, argv);
  if (!parsed) return usage_error(parsed.error().message);
  Options& options = *parsed;

  Session session;
  if (auto opened = open_session(options.source, session); !opened) return runtime_error(opened.error());
  Ring& ring = *session.ring;
  ring.set_wakeup_watermark(options.watermark != 0 ? options.watermark : ring.ring_size() / 8);

  const auto started = Clock::now();
  const auto stop_at = started + std::chrono::nanoseconds(static_cast<int64_t>(options.duration * 1e9));
  if (auto start = session.producer->start(options.duration); !start) return runtime_error(start.error());
  const double cpu_before = cpu_seconds();
  auto result = options.use_read        ? run_read(ring, options, stop_at, *session.producer)
                : options.workers == 0 ? run_single(ring, options, stop_at, *session.producer)
                                       : run_pipeline(ring, options, stop_at, *session.producer);
  const double cpu_used = cpu_seconds() - cpu_before;
  if (!result) return runtime_error(result.error());
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  const StreamCounters& c = result->accounting.counters();

  const auto& p = ring.producer();
  // Every run above ends only once it saw the device stopped (load_acquire of
  // state) and drained up to head: the counters are final (docs/abi.md, "End
  // of stream"), and losses after the last block seen count too.
  const uint32_t final_state = ring.state();
  const bool stopped_on_overrun = final_state == SRING_STATE_OVERRUN_STOPPED;
  // The device failed or was removed (unbound, unplugged, its driver
  // unloaded) before the run ended it: what it committed was still drained
  // and is accounted for like any stream.
  const bool device_ended = final_state == SRING_STATE_FAILED || final_state == SRING_STATE_REMOVED;
  const EndOfStream end = result->accounting.finish(p);
  const uint64_t lost = end.missing_samples;
  const uint64_t dropped = end.dropped_samples;
  const uint64_t signals = load_relaxed(p.wakeups);
  const uint64_t bad_tails = load_relaxed(p.bad_tails);
  // Every block has the ring's layout (the cursor checks each header).
  const SampleLayout layout = SampleLayout::from_page(p);
  const double sample_bytes = static_cast<double>(layout.payload_bytes(c.samples));
  const uint32_t policy = load_relaxed(p.overrun_policy);

  fmt::print("acquire: {} | {} | rate {} | block {} B | policy {} | wait {} | workers {}\n",
             session.description, describe(layout),
             load_relaxed(p.sample_rate) ? fmt::format("{:.2f} MS/s", load_relaxed(p.sample_rate) / 1e6)
                                         : std::string("flat out"),
             load_relaxed(p.block_bytes), cli::overrun_policy_name(policy), to_string(options.source.wait),
             options.workers);
  fmt::print("  samples        {:>16}  ({})\n", with_commas(c.samples),
             options.verify ? (layout.channels * layout.components() == 1
                                   ? std::string("each verified in place")
                                   : fmt::format("frames of {} values, each verified in place",
                                                 layout.channels * layout.components()))
                            : std::string("not verified"));
  fmt::print("  bytes          {:>16}\n", with_commas(static_cast<uint64_t>(sample_bytes)));
  fmt::print("  throughput     {:>16.1f} MB/s  ({:.2f} MS/s over {:.2f} s)\n",
             sample_bytes / seconds / 1e6, static_cast<double>(c.samples) / seconds / 1e6, seconds);
  fmt::print("  cpu            {:>16.3f} s   ({:.2f} s per GB of samples{})\n", cpu_used,
             sample_bytes > 0 ? cpu_used / (sample_bytes / 1e9) : 0.0,
             options.use_read ? ", read() copy path" : ", zero-copy");
  fmt::print("  blocks         {:>16}\n", with_commas(c.blocks));
  fmt::print("  gaps           {:>16}  ({} flagged in band)\n", with_commas(c.gaps),
             with_commas(c.gaps - c.unflagged_gaps));
  fmt::print("  lost samples   {:>16}  (producer dropped {})\n", with_commas(lost),
             with_commas(dropped));
  fmt::print("  corrupted      {:>16}\n", with_commas(c.corrupted_samples));
  fmt::print("  wake-ups       {:>16}  (producer signalled {}, consumer slept {} times)\n",
             with_commas(ring.wakeups_received()), with_commas(signals), with_commas(ring.sleeps()));
  if (result->overwritten_while_read) {
    fmt::print("  overwritten    {:>16}  blocks taken back while being read\n",
               with_commas(result->overwritten_while_read));
  }
  if (bad_tails) fmt::print("  bad tails      {:>16}\n", with_commas(bad_tails));
  if (device_ended) {
    fmt::print("  end            {:>16}  (the device {} the stream)\n",
               final_state == SRING_STATE_REMOVED ? "removed" : "failed",
               final_state == SRING_STATE_REMOVED ? "went away and ended" : "reported an error and ended");
  }

  std::vector<std::string> problems;
  if (c.corrupted_samples) problems.push_back(fmt::format("{} corrupted values", c.corrupted_samples));
  if (c.out_of_order) problems.push_back(fmt::format("{} blocks out of order", c.out_of_order));
  if (bad_tails) problems.push_back(fmt::format("the producer refused {} tails", bad_tails));
  // What the producer dropped must be exactly what the consumer misses.
  if (!end.exact()) {
    problems.push_back(fmt::format("accounting mismatch: {} samples ({} blocks) missing, producer dropped {} ({})",
                                   lost, end.missing_blocks, dropped, end.dropped_blocks));
  }
  // In band: under drop-newest every loss is dropped before it is written, so
  // the next block written carries it (F_GAP, lost_samples) and the flags
  // must add up to the jumps exactly; under stop nothing is ever lost.
  if (policy == SRING_OVERRUN_DROP_NEWEST &&
      (c.flagged_lost_samples != c.lost_samples || c.unflagged_gaps != 0)) {
    problems.push_back(fmt::format("in-band loss flags disagree: {} samples flagged, {} missing between blocks, "
                                   "{} gaps unflagged", c.flagged_lost_samples, c.lost_samples, c.unflagged_gaps));
  }
  if (policy == SRING_OVERRUN_STOP && dropped != 0) {
    problems.push_back(fmt::format("the stop policy lost {} samples", dropped));
  }
  if (!options.allow_loss) {
    if (lost) problems.push_back(fmt::format("{} samples lost", lost));
    if (stopped_on_overrun) problems.push_back("the device stopped on an overrun");
  }
  if (problems.empty() && device_ended) {
    fmt::print("  result         ENDED BY THE DEVICE: every sample up to the end {}\n",
               lost ? "accounted for" : (options.verify ? "verified, none lost" : "arrived"));
    return 3;
  }
  if (problems.empty()) {
    fmt::print("  result         OK: every sample {}\n",
               lost ? "accounted for" : (options.verify ? "verified, none lost" : "arrived"));
    return 0;
  }
  std::string joined;
  for (const auto& problem : problems) joined += (joined.empty() ? "" : "; ") + problem;
  fmt::print("  result         FAIL: {}\n", joined);
  return 1;
}
