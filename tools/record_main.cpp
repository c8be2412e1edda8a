// sring-record: write every block of a ring to a file at the device's rate,
// and check such a file (docs/recording.md).
//
//   sring-record --sim -o run.srec                    the in-process simulated device
//   sring-record --sim-socket PATH -o run.srec        an sring-sim process
//   sring-record --device /dev/sring0 -o run.srec     the kernel device
//   sring-record --check run.srec                     what a recording holds
//   sring-record --sim -o run.h5                      HDF5 instead (docs/recording.md, "HDF5")
//
// Blocks go from the ring to the file without a copy in user space: the
// Consumer's pull API (next()) holds runs of blocks in place, pwrite()
// takes the ring's memory as its buffer, and only once the write returned
// are they done() and released to the producer. To HDF5 (an output
// named .h5/.hdf5, or --container h5), each block's payload is one chunk,
// written from the ring's memory with H5Dwrite_chunk (tools/h5_writer.hpp). A recorder slower than the
// device therefore shows as producer drops (counted, flagged in the next
// block), never as a silent gap.
//
// Exit status (recording): 0 every sample stored; 1 samples lost (dropped by
// the producer, or the accounting is not exact); 2 errors, including a
// write error (the file is still valid up to its last complete block and
// its trailer counts what was not stored). --check: 0 complete, exact and
// verified; 1 corrupt or inconsistent; 2 not a recording; 3 cut short (no
// trailer) but every complete block verified.
//
// Once it records (SIGINT/SIGTERM handled from then on), it says so on
// stderr: "sring-record: recording to FILE".
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "tools/cli.hpp"
#include "tools/record_output.hpp"
#include "tools/record_writer.hpp"
#include "tools/session.hpp"
#include "tools/version.hpp"
#include "ringlib/error_format.hpp"
#include "sring/consumer.hpp"
#include "sring/recording.hpp"

namespace {

using namespace sring;
using Clock = std::chrono::steady_clock;

constexpr char kUsage[] =
    "usage: sring-record (--sim | --sim-socket PATH | --device PATH) --output FILE [options]\n"
    "       sring-record --check FILE [--no-verify]\n"
    "  -o, --output FILE      the recording (created or truncated): .srec, or HDF5 if FILE ends in\n"
    "                         .h5 or .hdf5 (one chunk per block, docs/recording.md \"HDF5\")\n"
    "  --container srec|h5    the file's kind whatever its name (default: by the name; srec)\n"
    "  --rate FRAMES_PER_S    sample rate in frames (one sample of each channel) per second,\n"
    "                         k/M/G suffixes (default 20M; 0: flat out)\n"
    "  --duration SECONDS     how long to record (default 5; SIGINT/SIGTERM end it early)\n"
    "  --block-size BYTES     block size, header included (default 8K; a multiple of 4K allows O_DIRECT)\n"
    "  --ring-size BYTES      ring size for --sim (default 4M)\n"
    "  --policy drop|stop     overrun policy (default drop; overwrite is refused)\n"
    "  --format NAME          sample format for --sim and --device: u8 s8 u16 s16 s32 f32 cs16 cf32\n"
    "                         sim-packed12, or a device's own as a number (default u16)\n"
    "  --channels N           channels per frame for --sim and --device, 1 to 256 (default 1)\n"
    "  --seed N               pattern seed (default 1)\n"
    "  --wait STRATEGY        eventfd, poll, spin, hybrid (default eventfd)\n"
    "  --max-run BYTES        largest write (default 1M, at most a quarter of the ring)\n"
    "  --buffered             no O_DIRECT, write through the page cache (.srec; HDF5 always is)\n"
    "  --slow-us N            sleep N microseconds after each write (a slow disk)\n"
    "  --allow-loss           exit 0 if every lost sample is accounted for exactly\n"
    "  --check FILE           read a recording, verify it, say what it holds\n"
    "  --no-verify            with --check: do not compare samples with the pattern\n"
    "  --version              print the version and ABI version\n"
    "Any layout is recorded as it is in the ring (HDF5: every standard format, not sim-packed12\n"
    "or a device's own); \"samples\" in the figures count frames. sring-export converts a .srec\n"
    "to HDF5.\n";

using recording::Container;

struct Options {
  SourceOptions source;
  std::string output;
  Container container = Container::kByName;
  std::string check;
  double duration = 5;
  uint64_t max_run = 1 << 20;
  bool direct = true;
  bool verify = true;
  bool allow_loss = false;
  uint64_t slow_us = 0;
};

std::atomic<int> g_stop_signal{0};
void on_stop_signal(int signal) { g_stop_signal.store(signal, std::memory_order_relaxed); }

int usage_error(std::string_view message) {
  fmt::print(stderr, "sring-record: {}\n{}", message, kUsage);
  return 2;
}

int runtime_error(const Error& error) {
  fmt::print(stderr, "sring-record: {}\n", error.message);
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
    if (option == "--buffered") { options.direct = false; continue; }
    if (option == "--no-verify") { options.verify = false; continue; }
    if (option == "--allow-loss") { options.allow_loss = true; continue; }
    auto value = args.value(option);
    if (!value) return value.error();
    if (option == "--output" || option == "-o") {
      options.output = std::string(*value);
    } else if (option == "--container") {
      if (*value == "srec") {
        options.container = Container::kSrec;
      } else if (*value == "h5" || *value == "hdf5") {
        options.container = Container::kHdf5;
      } else {
        return make_error(EINVAL, "--container takes srec or h5, not {}", *value);
      }
    } else if (option == "--check") {
      options.check = std::string(*value);
    } else if (option == "--duration") {
      auto v = cli::parse_seconds(*value, option);
      if (!v) return v.error();
      options.duration = *v;
    } else if (option == "--max-run") {
      auto v = cli::parse_size(*value, option);
      if (!v || *v == 0) return make_error(EINVAL, "--max-run takes a size above 0");
      options.max_run = *v;
    } else if (option == "--slow-us") {
      auto v = cli::parse_count(*value, option);
      if (!v) return v.error();
      options.slow_us = *v;
    } else {
      return make_error(EINVAL, "unknown option {}", option);
    }
  }
  if (!options.check.empty()) return options;
  if (options.source.kind == Source::kNone) {
    return make_error(EINVAL, "say where to record from: --sim, --sim-socket or --device");
  }
  if (options.output.empty()) return make_error(EINVAL, "say where to record to: --output FILE");
  auto container = recording::resolve_container(options.container, options.output);
  if (!container) return container.error();
  options.container = *container;
  // A recorder writes from the ring's memory while the blocks are held; under
  // overwrite-oldest the producer takes them back regardless, and the file
  // would get torn blocks.
  if (options.source.sim.overrun_policy == SRING_OVERRUN_OVERWRITE_OLDEST) {
    return make_error(EINVAL, "--policy overwrite cannot be recorded: the producer would rewrite blocks "
                              "while they are written (use drop or stop)");
  }
  return options;
}

uint64_t clock_ns(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// What happened to the blocks the ring gave the recorder.
struct Tally {
  uint64_t blocks_not_stored = 0;
  uint64_t samples_not_stored = 0;
  std::optional<Error> write_error;
  recording::EndReason reason = recording::EndReason::kStreamEnded;
};

int record(const Options& options) {
  Session session;
  if (auto opened = open_session(options.source, session); !opened) return runtime_error(opened.error());
  Ring& ring = *session.ring;
  ring.set_wakeup_watermark(ring.ring_size() / 8);
  if (load_relaxed(ring.producer().overrun_policy) == SRING_OVERRUN_OVERWRITE_OLDEST) {
    return runtime_error(make_error(EINVAL, "the ring's policy is overwrite-oldest: it cannot be recorded "
                                            "(blocks would be rewritten while they are written)"));
  }
  const recording::FileHeader header = recording::make_file_header(ring, session.description);
  const uint64_t block_bytes = header.block_bytes;
  const SampleLayout layout = recording::header_layout(header);
  const uint64_t frames_per_block = layout.frames_per_block(header.block_bytes);
  // Runs of at most a quarter of the ring: the producer keeps three
  // quarters to fill while a run is written.
  const uint64_t max_run_blocks =
      std::max<uint64_t>(1, std::min(options.max_run, ring.ring_size() / 4) / block_bytes);
  // Created before the device starts: a file that cannot be made (or a
  // layout HDF5 cannot hold) loses nothing.
  auto opened = recording::open_record_output(options.container, options.output, header, options.direct);
  if (!opened) return runtime_error(opened.error());
  const std::unique_ptr<recording::RecordOutput> writer = std::move(*opened);
  // HDF5 takes a short block (a chunk padded in a copy); a .srec only full ones.
  const bool short_blocks_ok = writer->hdf5();

  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);

  Consumer consumer(ring);
  consumer.expect_start(0, 0);
  const auto started = Clock::now();
  const auto stop_at = started + std::chrono::nanoseconds(static_cast<int64_t>(options.duration * 1e9));
  if (auto start = session.producer->start(options.duration); !start) return runtime_error(start.error());
  // Recording now, SIGINT/SIGTERM handled: a script (or a test) that wants
  // to stop it early waits for this line, not for a guessed time (stderr
  // is unbuffered: it is there as soon as printed).
  fmt::print(stderr, "sring-record: recording to {}\n", options.output);

  Tally tally;
  bool stop_sent = false;
  auto stop_producer = [&](bool early) {
    if (stop_sent) return;
    stop_sent = true;
    const Status stopped = early ? session.producer->stop_now() : session.producer->stop();
    if (!stopped) fmt::print(stderr, "sring-record: cannot stop the producer: {}\n", stopped.error().message);
  };
  for (;;) {
    if (g_stop_signal.load(std::memory_order_relaxed) != 0 && !stop_sent) {
      tally.reason = recording::EndReason::kSignal;
      stop_producer(true);
    }
    if (Clock::now() >= stop_at) stop_producer(false);
    // A run: blocks held in place, at consecutive ring positions. The mirror
    // makes them one contiguous piece of memory from the first block's
    // address on, even across the end of the ring (a later block's own
    // address may be in either copy: positions, not addresses, decide).
    const std::byte* run = nullptr;
    uint64_t run_position = 0;
    uint64_t count = 0;
    uint64_t run_frames = 0;
    std::optional<Error> bad_block;
    while (count < max_run_blocks) {
      auto next = consumer.next();
      if (!next) return runtime_error(next.error());
      if (!*next) break;
      const Block& block = **next;
      if (count == 0) {
        // From the first copy of the data: the run (at most a quarter of
        // the ring) then always ends inside the 2 * ring_size mapping.
        run = ring.data() + (block.position() & (ring.ring_size() - 1));
        run_position = block.position();
      }
      ++count;
      run_frames += block.frames();
      const bool frames_ok = short_blocks_ok ? block.frames() <= frames_per_block : block.frames() == frames_per_block;
      if (block.header().total_bytes != block_bytes || !frames_ok ||
          block.layout() != layout || block.position() != run_position + (count - 1) * block_bytes) {
        bad_block = make_error(EPROTO,
                               "block {} is {} bytes with {} frames of {}, the recording takes whole blocks of {} "
                               "bytes, {} frames of {}",
                               block.sequence(), block.header().total_bytes, block.frames(),
                               describe(block.layout()), block_bytes, frames_per_block, describe(layout));
        break;
      }
    }
    if (count > 0) {
      const uint64_t good = bad_block ? count - 1 : count;
      uint64_t stored = 0;
      uint64_t stored_frames = 0;
      if (!tally.write_error && good > 0) {
        const uint64_t before = writer->blocks_stored();
        const uint64_t frames_before = writer->samples_stored(frames_per_block);
        const Status written = writer->append(run, good);
        stored = writer->blocks_stored() - before;
        stored_frames = writer->samples_stored(frames_per_block) - frames_before;
        if (!written) tally.write_error = written.error();
      }
      if (bad_block && !tally.write_error) tally.write_error = *bad_block;
      if (tally.write_error && tally.reason != recording::EndReason::kWriteError) {
        // Nothing more can be stored: stop the device, and drain the ring,
        // counting every block from here on as delivered and not stored.
        tally.reason = recording::EndReason::kWriteError;
        fmt::print(stderr, "sring-record: {}; stopping the device and counting the rest as not stored\n",
                   tally.write_error->message);
        stop_producer(true);
      }
      tally.blocks_not_stored += count - stored;
      tally.samples_not_stored += run_frames - stored_frames;
      // Only now, written (or given up on), may the producer have them back.
      auto done = consumer.done(count);
      if (!done) return runtime_error(done.error());
      consumer.flush();  // the whole run back at once, not in 64 KiB steps
      if (options.slow_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(options.slow_us));
      continue;
    }
    if (consumer.end_of_stream()) break;
    auto waited = consumer.wait(options.source.wait, std::chrono::milliseconds(50));
    if (!waited) return runtime_error(waited.error());
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();

  // The stream is over (end-of-stream rule): the counters are final.
  const Counters c = consumer.snapshot();
  recording::FileTrailer trailer{};
  std::memcpy(trailer.magic, recording::kTrailerMagic, sizeof(trailer.magic));
  trailer.blocks_delivered = c.blocks;
  trailer.samples_delivered = c.samples;
  trailer.blocks_not_stored = tally.blocks_not_stored;
  trailer.samples_not_stored = tally.samples_not_stored;
  trailer.blocks_produced = c.blocks_produced;
  trailer.samples_produced = c.samples_produced;
  trailer.blocks_dropped = c.blocks_dropped;
  trailer.samples_dropped = c.samples_dropped;
  trailer.missing_blocks = c.missing_blocks;
  trailer.missing_samples = c.missing_samples;
  trailer.final_state = c.state;
  trailer.exact = c.exact ? 1 : 0;
  trailer.write_errno = tally.write_error ? tally.write_error->code : 0;
  trailer.end_reason = static_cast<uint32_t>(tally.reason);
  trailer.stop_realtime_ns = clock_ns(CLOCK_REALTIME);
  const Status finished = writer->finish(trailer, frames_per_block);

  const uint64_t stored_bytes = writer->blocks_stored() * block_bytes;
  fmt::print("sring-record: {} -> {} ({}; {})\n", session.description, options.output, describe(layout),
             writer->how());
  fmt::print("  stored         {:>16} blocks  {:>16} samples\n", trailer.blocks_stored, trailer.samples_stored);
  fmt::print("  rate           {:>16.1f} MB/s  over {:.2f} s\n", stored_bytes / seconds / 1e6, seconds);
  fmt::print("  produced       {:>16} blocks  {:>16} samples\n", c.blocks_produced, c.samples_produced);
  fmt::print("  dropped        {:>16} blocks  {:>16} samples  (by the producer: ring full)\n", c.blocks_dropped,
             c.samples_dropped);
  fmt::print("  not stored     {:>16} blocks  {:>16} samples  (delivered, not written)\n",
             trailer.blocks_not_stored, trailer.samples_not_stored);
  fmt::print("  accounting     {:>16}\n", c.exact ? "exact" : "NOT EXACT");
  if (tally.reason == recording::EndReason::kSignal) {
    fmt::print("  end            {:>16}  (device stopped, ring drained)\n",
               g_stop_signal.load() == SIGINT ? "SIGINT" : "SIGTERM");
  }
  if (!finished) {
    fmt::print(stderr, "sring-record: the {} could not be written ({}): {} holds {} complete blocks and "
                       "no {}; the figures above are the accounting\n",
               writer->closing_part(), finished.error().message, options.output, writer->blocks_stored(),
               writer->closing_part());
    return 2;
  }
  fmt::print("  {:<14} {:>16}\n", writer->closing_part(), writer->blocks_given_back() > 0
                                               ? fmt::format("written ({} blocks given back for room)",
                                                             writer->blocks_given_back())
                                               : std::string("written"));
  if (tally.write_error) {
    fmt::print("  result         WRITE ERROR: {}; the file is valid up to its last complete block\n",
               tally.write_error->message);
    return 2;
  }
  const bool lost = c.samples_dropped != 0;
  if (!c.exact) {
    fmt::print("  result         FAIL: accounting mismatch\n");
    return 1;
  }
  if (lost && !options.allow_loss) {
    fmt::print("  result         LOSS: {} samples dropped by the producer, counted exactly\n", c.samples_dropped);
    return 1;
  }
  fmt::print("  result         OK: every sample {}\n", lost ? "stored or counted as lost" : "stored");
  return 0;
}

int check(const Options& options) {
  auto file = recording::RecordingFile::open(options.check);
  if (!file) return runtime_error(file.error());
  const recording::CheckReport r = recording::check(*file, options.verify);
  const auto& h = file->header();
  fmt::print("sring-record --check {}: recording version {}, {}, {} B blocks ({} frames), {} frames/s, seed {}, "
             "source {}\n",
             options.check, h.version, describe(file->layout()), h.block_bytes, file->frames_per_block(),
             h.sample_rate, h.pattern_seed, std::string(h.source, strnlen(h.source, sizeof(h.source))));
  fmt::print("  blocks         {:>16}\n", r.blocks);
  // "samples" are frames; the values compared are frames x channels (x 2
  // for I and Q).
  fmt::print("  samples        {:>16}  ({})\n", r.samples,
             r.verified ? fmt::format("{} values, {} not the pattern", r.values, r.corrupted_values)
                        : (r.not_verified_reason.empty() ? std::string("not verified") : r.not_verified_reason));
  fmt::print("  gaps           {:>16}  ({} samples, {} blocks missing between stored blocks)\n", r.gaps,
             r.missing_samples, r.missing_blocks);
  if (r.partial_bytes) fmt::print("  partial block  {:>16} bytes after the last complete block\n", r.partial_bytes);
  if (r.bad_blocks) fmt::print("  bad blocks     {:>16}\n", r.bad_blocks);
  if (const auto& t = file->trailer()) {
    fmt::print("  trailer        {:>16}  (produced {}, dropped {}, not stored {}, lost after the last block {})\n",
               "present", t->samples_produced, t->samples_dropped, t->samples_not_stored, r.lost_at_end);
    fmt::print("  accounting     {:>16}\n", r.accounting_exact && r.trailer_matches ? "exact" : "NOT EXACT");
    if (t->write_errno) {
      fmt::print("  write error    {:>16}\n", std::system_category().message(t->write_errno));
    }
  } else {
    fmt::print("  trailer        {:>16}  (cut short: readable up to its last complete block)\n", "missing");
  }
  if (!r.problem.empty()) fmt::print("  problem        {}\n", r.problem);
  if (r.corrupted_values || r.bad_blocks || (r.has_trailer && !(r.accounting_exact && r.trailer_matches))) {
    fmt::print("  result         FAIL\n");
    return 1;
  }
  if (!r.has_trailer) {
    fmt::print("  result         TRUNCATED: {} complete blocks{}\n", r.blocks, r.verified ? ", all verified" : "");
    return 3;
  }
  fmt::print("  result         OK: complete, accounting exact{}\n", r.verified ? ", every sample verified" : "");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (cli::answered_help_or_version(argc, argv, "sring-record", kUsage)) return 0;
  auto parsed = parse_options(argc, argv);
  if (!parsed) return usage_error(parsed.error().message);
  return parsed->check.empty() ? record(*parsed) : check(*parsed);
}
