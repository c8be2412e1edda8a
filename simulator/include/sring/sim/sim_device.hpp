// The user-space simulated sampling device: the twin of the kernel's, for
// host tests. It writes blocks of the sring pattern into a HostRing at a set
// sample rate, as a digitizer's DMA completions would, in any standard
// sample format or its own 12-bit packed one (SRING_FMT_SIM_PACKED12), with
// 1 to 256 interleaved channels (docs/abi.md, "Sample formats and
// channels"); applies the overrun
// policy when the ring is full, marks every loss in band and in the
// counters, and signals the consumer's eventfd only when it asked for it.
//
// Threading: produce_block() and poll_flush() belong to the producer thread
// (the one start() creates, or a test calling them directly), and so does
// set_reclaim_hook(). inject_*(), request_stop() and the const accessors may
// be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include "sring/detail/barriers.hpp"
#include "sring/format.hpp"
#include "sring/unique_fd.hpp"
#include "sring/sim/host_ring.hpp"

namespace sring::sim {

struct SimConfig {
  // Frames per second (a frame: one sample of each channel); 0: flat out,
  // waiting for space.
  uint64_t sample_rate = 20'000'000;
  uint32_t block_bytes = 8192;        // header included, multiple of 64
  uint32_t overrun_policy = SRING_OVERRUN_DROP_NEWEST;
  // Any standard format (SRING_FMT_*) or SRING_FMT_SIM_PACKED12.
  uint32_t sample_format = SRING_FMT_U16;
  uint32_t channels = 1;              // 1 to SRING_MAX_CHANNELS
  uint32_t pattern_seed = 1;
  std::chrono::microseconds flush_timeout{2000};  // wake below the watermark after this
};

// The layout of the blocks a format and channel count make: a standard
// format's, or sring_pattern.h's 12-bit packed one; nullopt for any other
// format, and for 0 or more than SRING_MAX_CHANNELS channels.
[[nodiscard]] std::optional<SampleLayout> sim_layout(uint32_t format, uint32_t channels);

// Refuses (EINVAL, saying why) what the kernel device would: a bad block
// size, policy, rate or flush timeout, a format the simulator cannot make,
// a channel count outside 1 .. SRING_MAX_CHANNELS, a block too small for one
// frame.
[[nodiscard]] Status validate_config(const SimConfig& config, uint64_t ring_size);
// The same settings as a device configuration (SRING_IOC_SET_CONFIG), for
// tools that drive either producer from one set of options.
[[nodiscard]] sring_config to_device_config(const SimConfig& config);

// Where a block's samples come from when they are not the pattern: a
// recording played back (sring-sim --replay). The device takes each
// recorded block's place in the stream (sequence, first_sample) and its
// samples; what the recording lacks between blocks is produced and dropped
// again, so the replayed stream's accounting is the recording's.
class SampleSource {
 public:
  struct Recorded {
    uint64_t sequence = 0;      // the block's place in the recorded stream
    uint64_t first_sample = 0;
    // The payload of samples_per_block() frames in the device's layout
    // (layout().payload_bytes(samples_per_block()) bytes); nullptr marks the
    // end of the recording, where sequence and first_sample are the
    // recorded stream's final blocks_produced and samples_produced (losses
    // after the last block).
    const void* payload = nullptr;
  };
  virtual ~SampleSource() = default;
  // The next recorded block (or the end marker); nullopt after the end.
  virtual std::optional<Recorded> next() = 0;
};

enum class Produced {
  kWritten,   // a block was written and published
  kDropped,   // ring full, block dropped (drop-newest)
  kStopped,   // ring full, device stopped (stop policy)
  kNoSpace,   // ring full and flat out: nothing lost, try again
  kExhausted, // the replayed recording has no more blocks: the device stops
};

class SimDevice {
 public:
  SimDevice(HostRing& ring, SimConfig config);
  SimDevice(const SimDevice&) = delete;
  SimDevice& operator=(const SimDevice&) = delete;
  ~SimDevice();

  // Samples from `source` instead of the pattern (before start()). Its
  // blocks must hold samples_per_block() frames each, in layout().
  void set_source(std::unique_ptr<SampleSource> source) { source_ = std::move(source); }

  // How the device writes the pattern into a block (before start()): by
  // default sring_pattern_fill_format(). A benchmark sets a fill with
  // non-temporal stores to model a DMA engine, which writes whole lines
  // without first reading them into a CPU cache. The fill must write exactly
  // the pattern. It is used for the formats whose values are the pattern's
  // 16-bit base values (u16, s16, cs16), called with the block's first
  // element and its element count (sring_pattern.h); the other formats
  // always take sring_pattern_fill_format().
  using PatternFill = void (*)(uint16_t* dst, uint64_t first, uint32_t count, uint32_t seed);
  void set_pattern_fill(PatternFill fill) { fill_ = fill; }

  // The eventfd to signal; the device keeps its own duplicate.
  [[nodiscard]] Status set_eventfd(int eventfd);

  // Writes the configuration into the producer page and marks it running.
  void begin();
  // One block, now. Producer thread only. The result says whether it was
  // written or lost, and how: a caller that ignores it cannot know.
  [[nodiscard]] Produced produce_block();
  // The flush deadline (docs/abi.md, "Waiting"): while unreleased data is in
  // the ring and the device runs, a deadline runs, set at a publish when
  // none is pending and renewed a flush period (the flush timeout, at least
  // 100 us) after each expiry; at each expiry a consumer that armed
  // need_wakeup is signalled, whatever its watermark. Once tail reaches head
  // (or the device stopped) no deadline is pending until the next publish.
  // So a consumer that arms need_wakeup with data below its watermark is
  // signalled within the flush timeout, also while the device stalls. Call
  // it at least that often (run() does, a stall included). Producer thread
  // only.
  void poll_flush();
  // Marks the ring stopped (state store-release after the last head).
  void end();

  // Runs the producer on its own thread at the configured rate, for at most
  // `duration` (zero: until request_stop()). EINVAL for a configuration
  // validate_config() refuses, EBUSY if the thread was started already (one
  // run per start(); join() before starting again).
  [[nodiscard]] Status start(std::chrono::nanoseconds duration = {});
  void request_stop() { stop_.store(true, std::memory_order_release); }
  void join();
  bool running() const { return running_.load(std::memory_order_acquire); }

  // Fault injection, from any thread.
  void inject_stall(std::chrono::microseconds stall) { stall_us_.fetch_add(stall.count()); }
  void inject_burst(uint32_t blocks) { burst_blocks_.fetch_add(blocks); }
  void inject_corruption(uint32_t blocks) { corrupt_blocks_.fetch_add(blocks); }

  // For tests only: called on the producer thread inside reclaim_oldest()
  // (overwrite-oldest, ring full), after it loaded the consumer's tail and
  // before its compare-and-swap of that tail, at most once per reclaim, so
  // that a test can release a block exactly in that window. Empty (the
  // default) costs one test of a branch per reclaim. Set it while the
  // producer thread is not running, or from that thread.
  void set_reclaim_hook(std::function<void()> hook) { reclaim_hook_ = std::move(hook); }

  // Frames in each block (a frame is one sample of each channel; the name
  // is ABI 1.0's, whose frames were single samples).
  uint32_t samples_per_block() const { return samples_per_block_; }
  // The blocks' format, channels and bits per sample.
  const SampleLayout& layout() const { return layout_; }
  // Any thread: a relaxed snapshot of the producer thread's position.
  uint64_t next_sample() const { return next_sample_.load(); }

 private:
  using Clock = std::chrono::steady_clock;

  void run(std::chrono::nanoseconds duration);
  // An injected stall: no block is made, but poll_flush() still runs.
  void stall(std::chrono::microseconds length, Clock::time_point end_time);
  // When the producer thread, waiting, must look again: its flush deadline,
  // and at least every half flush timeout (faults, request_stop()).
  Clock::time_point next_look(Clock::time_point now) const;
  // Starts the flush deadline unless one is pending (unreleased data).
  void arm_flush();
  // Length of our block at `pos` (between last_tail_ and head_) from its
  // header, read once, if the header checks out; 0 if it does not.
  uint32_t sane_block_bytes(uint64_t pos) const;
  // Whether a tail read from the consumer page may be accepted: in
  // [last_tail_, head_], a multiple of SRING_BLOCK_ALIGN, and a block
  // boundary by our own records. accepted_tail() and reclaim_oldest() both
  // decide with it.
  bool tail_valid(uint64_t tail) const;
  uint64_t accepted_tail();
  void publish_config();
  bool reclaim_oldest(uint64_t needed_head, uint64_t& tail, bool& reclaimed);
  void block_made();
  void note_overrun();
  void publish(uint64_t new_head, uint64_t tail);
  void signal_consumer();
  void bump(__u64& counter, uint64_t by = 1);
  // Replay: the recorded block to make next, with what the recording lacks
  // before it dropped again; false at the end of the recording.
  bool next_recorded();

  HostRing& ring_;
  sring_producer_page& kproducer_;
  sring_consumer_page& kconsumer_;
  SimConfig config_;
  SampleLayout layout_;  // of config_; channels 0 (no frame fits) if config_ is refused
  uint32_t samples_per_block_;
  UniqueFd eventfd_;

  // Producer-thread state (the kernel twin keeps the same).
  uint64_t head_ = 0;
  uint64_t last_tail_ = 0;   // last valid tail read from the consumer page
  // Head when this device was made: every block from here on is ours and
  // config_.block_bytes long. Blocks below it (an earlier device's, maybe of
  // another size) have their boundaries checked through their headers.
  uint64_t uniform_from_ = 0;
  uint64_t sequence_ = 0;
  RelaxedCounter next_sample_;  // read by next_sample() from any thread
  uint64_t pending_lost_ = 0;
  bool pending_overrun_ = false;
  bool in_overrun_ = false;
  Clock::time_point flush_deadline_{};  // valid while flush_pending_
  bool flush_pending_ = false;

  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::atomic<int64_t> stall_us_{0};
  std::atomic<uint32_t> burst_blocks_{0};
  std::atomic<uint32_t> corrupt_blocks_{0};
  std::thread thread_;
  std::unique_ptr<SampleSource> source_;
  PatternFill fill_ = nullptr;  // null: sring_pattern_fill_format()
  std::optional<SampleSource::Recorded> recorded_;  // the replayed block to make next
  bool replay_ended_ = false;
  std::function<void()> reclaim_hook_;  // set_reclaim_hook(), tests only
};

}  // namespace sring::sim
