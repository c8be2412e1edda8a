#include "ringlib/error_format.hpp"
#include "sring/sim/sim_device.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "sring/detail/barriers.hpp"
#include "sring/sring_pattern.h"

namespace sring::sim {
namespace {

// As SRING_RECLAIM_ATTEMPTS in driver/sring_producer.c.
constexpr int kReclaimAttempts = 64;
// As SRING_FLUSH_MIN_PERIOD_NS in driver/sring_producer.c: the flush
// deadline is renewed at least this far ahead, so a zero flush timeout
// cannot keep the producer thread spinning.
constexpr std::chrono::microseconds kFlushMinPeriod{100};

constexpr char kFormats[] = "u8, s8, u16, s16, s32, f32, cs16, cf32 or sim-packed12";

uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// The layout's bits per sample, whether or not the configuration holds.
SampleLayout configured_layout(const SimConfig& config) {
  return SampleLayout{config.sample_format, config.channels, sring_pattern_format_bits(config.sample_format)};
}

}  // namespace

std::optional<SampleLayout> sim_layout(uint32_t format, uint32_t channels) {
  if (format == SRING_FMT_SIM_PACKED12) {
    if (channels == 0 || channels > SRING_MAX_CHANNELS) return std::nullopt;
    return SampleLayout{format, channels, SRING_FMT_SIM_PACKED12_BITS};
  }
  return SampleLayout::standard(format, channels);
}

Status validate_config(const SimConfig& config, uint64_t ring_size) {
  if (config.block_bytes < SRING_BLOCK_HEADER_SIZE + SRING_BLOCK_ALIGN ||
      config.block_bytes % SRING_BLOCK_ALIGN != 0 || config.block_bytes > SRING_MAX_BLOCK_BYTES ||
      config.block_bytes > ring_size / 2) {
    return make_error(EINVAL,
                      "block size {} must be a multiple of {} between {} and the smaller of {} "
                      "and half the ring ({})",
                      config.block_bytes, SRING_BLOCK_ALIGN, SRING_BLOCK_HEADER_SIZE + SRING_BLOCK_ALIGN,
                      SRING_MAX_BLOCK_BYTES, ring_size / 2);
  }
  if (config.overrun_policy > SRING_OVERRUN_STOP) {
    return make_error(EINVAL, "unknown overrun policy {}", config.overrun_policy);
  }
  const std::optional<SampleLayout> layout = sim_layout(config.sample_format, config.channels);
  if (!layout && sring_pattern_format_bits(config.sample_format) == 0) {
    return make_error(EINVAL, "sample format {} ({}) is not one the simulator makes: {}", config.sample_format,
                      format_name(config.sample_format), kFormats);
  }
  if (!layout) {
    return make_error(EINVAL, "{} channels: a frame has 1 to {}", config.channels, SRING_MAX_CHANNELS);
  }
  if (layout->frames_per_block(config.block_bytes) == 0) {
    return make_error(EINVAL, "a block of {} bytes has no room for one frame of {} ({} bits)", config.block_bytes,
                      describe(*layout), layout->frame_bits());
  }
  // The kernel device's bounds (sring_abi.h), so both producers refuse alike.
  if (config.sample_rate > SRING_MAX_SAMPLE_RATE) {
    return make_error(EINVAL, "sample rate {} is above {} samples/s", config.sample_rate, SRING_MAX_SAMPLE_RATE);
  }
  if (config.flush_timeout.count() < 0 || config.flush_timeout.count() > SRING_MAX_FLUSH_TIMEOUT_US) {
    return make_error(EINVAL, "flush timeout {} us is outside 0 .. {} us", config.flush_timeout.count(),
                      SRING_MAX_FLUSH_TIMEOUT_US);
  }
  return ok();
}

sring_config to_device_config(const SimConfig& config) {
  sring_config c{};
  c.sample_rate = config.sample_rate;
  c.block_bytes = config.block_bytes;
  c.overrun_policy = config.overrun_policy;
  c.sample_format = config.sample_format;
  c.channels = config.channels;
  c.pattern_seed = config.pattern_seed;
  c.flush_timeout_us = static_cast<uint32_t>(config.flush_timeout.count());
  return c;
}

SimDevice::SimDevice(HostRing& ring, SimConfig config)
    : ring_(ring),
      kproducer_(ring.producer()),
      kconsumer_(ring.consumer()),
      config_(config),
      layout_(configured_layout(config)),
      samples_per_block_(static_cast<uint32_t>(layout_.frames_per_block(config.block_bytes))) {
  // Continue an existing stream (a ring may be restarted without a reset):
  // the counters are the stream's position, as in the kernel, because
  // blocks_produced and samples_produced are the sequence and first sample
  // of the next block (docs/abi.md). Nothing else writes the producer page
  // while no device runs on it, so relaxed loads are enough.
  head_ = load_relaxed(kproducer_.head);
  sequence_ = load_relaxed(kproducer_.blocks_produced);
  next_sample_.store(load_relaxed(kproducer_.samples_produced));
  last_tail_ = load_acquire(kconsumer_.tail);  // pairs with the consumer's release of tail
  if (head_ - last_tail_ > ring_.ring_size()) last_tail_ = head_;
  uniform_from_ = head_;
  // A configuration start() will refuse is not published: the page keeps
  // the last good one.
  if (validate_config(config_, ring_.ring_size())) publish_config();
}

SimDevice::~SimDevice() {
  request_stop();
  join();
}

Status SimDevice::set_eventfd(int eventfd) {
  UniqueFd copy(::fcntl(eventfd, F_DUPFD_CLOEXEC, 0));
  if (!copy.valid()) return errno_error("cannot keep the consumer's eventfd");
  eventfd_ = std::move(copy);
  return ok();
}

void SimDevice::bump(__u64& counter, uint64_t by) {
  // Only this thread writes the counters; readers load them relaxed.
  store_relaxed(counter, load_relaxed(counter) + by);
}

void SimDevice::publish_config() {
  // Configuration changes only while stopped (as SRING_IOC_SET_CONFIG); the
  // release store of state in begin() publishes it to consumers that load
  // state with acquire. Written at construction, so a consumer handed the
  // ring file sees the real rate and seed before the device starts.
  store_relaxed(kproducer_.overrun_policy, config_.overrun_policy);
  store_relaxed(kproducer_.sample_rate, config_.sample_rate);
  store_relaxed(kproducer_.block_bytes, config_.block_bytes);
  store_relaxed(kproducer_.sample_format, config_.sample_format);
  store_relaxed(kproducer_.channels, static_cast<__u16>(layout_.channels));
  store_relaxed(kproducer_.bits_per_sample, static_cast<__u16>(layout_.bits_per_sample));
  store_relaxed(kproducer_.pattern_seed, config_.pattern_seed);
}

void SimDevice::begin() {
  store_release(kproducer_.state, uint32_t{SRING_STATE_RUNNING});
  running_.store(true, std::memory_order_release);
  // As the kernel's sring_start(): data left from before the start is owed
  // its flush like data published now, device quiet or not.
  if (accepted_tail() != head_) arm_flush();
}

void SimDevice::arm_flush() {
  // Unreleased data is in the ring: keep a flush deadline running, also when
  // nobody asks for a wake-up now. A consumer may arm need_wakeup after this
  // and sleep below its watermark; poll_flush() answers it within the flush
  // timeout. As the kernel's sring_arm_flush().
  if (flush_pending_) return;
  flush_pending_ = true;
  flush_deadline_ = Clock::now() + config_.flush_timeout;
}

void SimDevice::end() {
  // After the last head store: a consumer that sees "stopped" and then finds
  // no data knows the stream is over.
  if (load_relaxed(kproducer_.state) == SRING_STATE_RUNNING) {
    store_release(kproducer_.state, uint32_t{SRING_STATE_STOPPED});
  }
  // As the kernel's sring_producer_wake(): the state store before the flag
  // load, paired with the consumer's smp_mb() between arming need_wakeup and
  // re-reading state and head.
  smp_mb();
  if (eventfd_.valid()) signal_consumer();
  running_.store(false, std::memory_order_release);
}

uint32_t SimDevice::sane_block_bytes(uint64_t pos) const {
  // Our own header (consumers map the data read-only), checked anyway, as in
  // the kernel (sring_block_sane): a bad length must not walk out of the
  // ring or loop on zero. Each field read once: the copy is what we use.
  const auto* b = reinterpret_cast<const sring_block_header*>(ring_.data() + (pos & (ring_.ring_size() - 1)));
  const uint32_t magic = b->magic;
  const uint32_t total = b->total_bytes;
  const bool sane = magic == SRING_BLOCK_MAGIC && total >= SRING_BLOCK_HEADER_SIZE + SRING_BLOCK_ALIGN &&
                    total % SRING_BLOCK_ALIGN == 0 && total <= head_ - pos;
  return sane ? total : 0;
}

bool SimDevice::tail_valid(uint64_t tail) const {
  // As the kernel's sring_tail_valid() (docs/abi.md, "struct
  // sring_consumer_page"). The tail is the consumer's to write: it is only
  // compared here, never used to index memory. Positions wrap at 2^64, so
  // every comparison is a modular difference.
  if (tail == last_tail_) return true;
  // Between the last tail we accepted and our head...
  if (tail - last_tail_ > head_ - last_tail_ || tail % SRING_BLOCK_ALIGN != 0) return false;
  // ...and a block boundary by our own records, never by the consumer's:
  // head, or the start of a block we wrote.
  if (tail == head_) return true;
  if (tail - uniform_from_ <= head_ - uniform_from_) {
    // Among the blocks this device wrote: all config_.block_bytes long.
    return (tail - uniform_from_) % config_.block_bytes == 0;
  }
  // Below them: an earlier device's blocks, maybe of another size. Walk
  // their headers from the last accepted tail (a boundary) until we reach or
  // step over the tail. Each step advances at least 128 bytes, and the walk
  // ends once the consumer is past them.
  for (uint64_t pos = last_tail_; pos != tail;) {
    const uint32_t total = sane_block_bytes(pos);
    if (total == 0) return false;  // a header that does not check out: no boundary we know
    pos += total;
    if (pos - last_tail_ > tail - last_tail_) return false;  // stepped over it: inside a block
  }
  return true;
}

uint64_t SimDevice::accepted_tail() {
  // Pairs with the consumer's store_release(tail): its reads of the blocks
  // below tail are done before we reuse their space.
  const uint64_t tail = load_acquire(kconsumer_.tail);
  // Anything tail_valid() refuses is a consumer bug: count it and keep the
  // last good value (the space it would free stays ours to wait for).
  if (!tail_valid(tail)) {
    bump(kproducer_.bad_tails);
    return last_tail_;
  }
  last_tail_ = tail;
  return tail;
}

bool SimDevice::reclaim_oldest(uint64_t needed_head, uint64_t& tail, bool& reclaimed) {
  const uint64_t size = ring_.ring_size();
  const uint64_t mask = size - 1;
  auto block_at = [&](uint64_t pos) {
    return reinterpret_cast<const sring_block_header*>(ring_.data() + (pos & mask));
  };
  // The tail as it is in shared memory now: the CAS must expect exactly this.
  // Pairs with the consumer's release of tail (store or CAS).
  __u64 in_memory = load_acquire(kconsumer_.tail);  // the field's own type, for the CAS
  bool hooked = false;  // reclaim_hook_ runs at most once per call
  // Bounded as in the kernel (SRING_RECLAIM_ATTEMPTS): a consumer that keeps
  // moving or scribbling on tail cannot keep the producer here.
  for (int attempt = 0; attempt < kReclaimAttempts; ++attempt) {
    // Every decision below uses the tail we are about to CAS from, so a
    // block the consumer released a moment ago is never counted as lost.
    // The same check as accepted_tail()'s: a tail refused there is refused
    // here, and never becomes last_tail_.
    if (tail_valid(in_memory)) {
      last_tail_ = in_memory;
    } else {
      bump(kproducer_.bad_tails);  // the CAS below replaces the bad value
    }
    tail = last_tail_;
    if (needed_head - tail <= size) return true;
    // The oldest block is the one at the accepted tail, a block boundary
    // (tail_valid()), as in the kernel's sring_reclaim_oldest(). Its header
    // is our own (the consumer maps data read-only), checked anyway: one
    // that does not check out is not reclaimed, the new block is dropped.
    const uint32_t victim_bytes = tail == head_ ? 0 : sane_block_bytes(tail);
    if (victim_bytes == 0) return false;
    const sring_block_header* victim = block_at(tail);
    const uint64_t victim_end = tail + victim_bytes;
    if (reclaim_hook_ && !hooked) {
      hooked = true;
      reclaim_hook_();  // tests: a consumer releasing right here, between our load and our CAS
    }
    // Take the block from the consumer. The CAS pairs with the consumer's CAS
    // in release(): whichever moves tail first owns the block. If ours wins,
    // the consumer's later CAS fails and it discards what it read. If the
    // consumer's wins, in_memory now holds its tail and we look again.
    if (compare_exchange(kconsumer_.tail, in_memory, victim_end)) {
      // Made (and counted in blocks_produced) when it was written; now lost.
      bump(kproducer_.blocks_dropped);
      bump(kproducer_.samples_dropped, victim->sample_count);
      note_overrun();
      reclaimed = true;
      last_tail_ = in_memory = victim_end;
    }
  }
  return false;
}

void SimDevice::block_made() {
  // Written or lost, a block the device made takes the next sequence number
  // and sample indices: blocks_produced and samples_produced always equal
  // the sequence and first sample of the next block (docs/abi.md).
  ++sequence_;
  next_sample_ += samples_per_block_;
  bump(kproducer_.blocks_produced);
  bump(kproducer_.samples_produced, samples_per_block_);
}

void SimDevice::note_overrun() {
  // An overrun episode starts at the first loss after a block that fit.
  if (!in_overrun_) bump(kproducer_.overruns);
  in_overrun_ = true;
}

bool SimDevice::next_recorded() {
  if (recorded_) return true;
  recorded_ = source_->next();
  if (!recorded_) {
    replay_ended_ = true;
    return false;
  }
  // What the recording lacks before this block (or after its last one) was
  // made and lost in the recorded run: make and drop it again, flagged on
  // the next block, so the replayed stream counts exactly what the
  // recording did.
  const uint64_t sample = next_sample_.load();
  if (recorded_->sequence > sequence_ || recorded_->first_sample > sample) {
    // The source hands out blocks in stream order (RecordingSource checks).
    const uint64_t blocks = recorded_->sequence > sequence_ ? recorded_->sequence - sequence_ : 0;
    const uint64_t samples = recorded_->first_sample > sample ? recorded_->first_sample - sample : 0;
    note_overrun();
    pending_overrun_ = true;
    pending_lost_ += samples;
    sequence_ += blocks;
    next_sample_ += samples;
    bump(kproducer_.blocks_produced, blocks);
    bump(kproducer_.samples_produced, samples);
    bump(kproducer_.blocks_dropped, blocks);
    bump(kproducer_.samples_dropped, samples);
  }
  if (recorded_->payload == nullptr) {
    replay_ended_ = true;
    recorded_.reset();
    return false;
  }
  return true;
}

Produced SimDevice::produce_block() {
  const uint64_t size = ring_.ring_size();
  const uint64_t need = config_.block_bytes;
  if (replay_ended_ || (source_ && !next_recorded())) return Produced::kExhausted;
  uint64_t tail = accepted_tail();
  bool reclaimed = false;

  if (head_ + need - tail > size) {
    if (config_.sample_rate == 0) return Produced::kNoSpace;  // flat out: wait, lose nothing
    switch (config_.overrun_policy) {
      case SRING_OVERRUN_STOP:
        // The device stops instead of making this block: nothing is lost.
        note_overrun();
        // After the counters: pairs with the consumer's load_acquire(state)
        // of the end-of-stream rule.
        store_release(kproducer_.state, uint32_t{SRING_STATE_OVERRUN_STOPPED});
        return Produced::kStopped;
      case SRING_OVERRUN_OVERWRITE_OLDEST:
        if (reclaim_oldest(head_ + need, tail, reclaimed)) break;
        [[fallthrough]];
      default:  // drop newest
        note_overrun();
        pending_overrun_ = true;
        pending_lost_ += samples_per_block_;
        recorded_.reset();  // a replayed block is lost like a sampled one
        block_made();
        bump(kproducer_.blocks_dropped);
        bump(kproducer_.samples_dropped, samples_per_block_);
        return Produced::kDropped;
    }
  }
  // The episode lasts while every block costs a loss.
  if (!reclaimed) in_overrun_ = false;

  auto* block = reinterpret_cast<sring_block_header*>(ring_.data() + (head_ & (size - 1)));
  auto* payload = reinterpret_cast<std::byte*>(block + 1);
  if (recorded_) {
    std::memcpy(payload, recorded_->payload, layout_.payload_bytes(samples_per_block_));
    recorded_.reset();
  } else if (fill_ && layout_.bits_per_sample / layout_.components() == 16) {
    // u16, s16, cs16: the values are the pattern's 16-bit elements.
    const uint64_t per_frame = uint64_t{layout_.channels} * layout_.components();
    fill_(reinterpret_cast<uint16_t*>(payload), next_sample_ * per_frame,
          static_cast<uint32_t>(samples_per_block_ * per_frame), config_.pattern_seed);
  } else {
    // The configuration was validated (start()): the format is one the
    // pattern defines.
    (void)sring_pattern_fill_format(payload, layout_.format, layout_.channels, next_sample_, samples_per_block_,
                                    config_.pattern_seed);
  }
  uint32_t corrupt = corrupt_blocks_.load(std::memory_order_relaxed);
  while (corrupt > 0 && !corrupt_blocks_.compare_exchange_weak(corrupt, corrupt - 1)) {
  }
  if (corrupt > 0) {
    // Exactly one value wrong, as the kernel's fault does (sring_pattern.h).
    payload[sring_corrupt_byte(samples_per_block_, layout_.channels, layout_.bits_per_sample, layout_.components())] ^=
        std::byte{0x5a};
  }

  sring_block_header header{};
  header.magic = SRING_BLOCK_MAGIC;
  header.total_bytes = config_.block_bytes;
  header.sequence = sequence_;
  header.first_sample = next_sample_;
  header.timestamp_ns = monotonic_ns();
  header.lost_samples = pending_lost_;
  header.sample_count = samples_per_block_;
  header.sample_format = static_cast<uint16_t>(layout_.format);
  header.bytes_per_sample = static_cast<uint16_t>(layout_.bits_per_sample % 8 == 0 ? layout_.bits_per_sample / 8 : 0);
  header.channels = static_cast<uint16_t>(layout_.channels);
  header.bits_per_sample = static_cast<uint16_t>(layout_.bits_per_sample);
  header.flags = (pending_lost_ ? SRING_BLOCK_F_GAP : 0) |
                 (pending_overrun_ ? SRING_BLOCK_F_OVERRUN : 0);
  std::memcpy(block, &header, sizeof(header));

  block_made();
  pending_lost_ = 0;
  pending_overrun_ = false;
  publish(head_ + need, tail);
  return Produced::kWritten;
}

void SimDevice::publish(uint64_t new_head, uint64_t tail) {
  // Pairs with the consumer's load_acquire(head): the block is visible before
  // the head that covers it.
  store_release(kproducer_.head, new_head);
  head_ = new_head;
  if (new_head - tail > load_relaxed(kproducer_.high_water)) {
    store_relaxed(kproducer_.high_water, new_head - tail);
  }

  arm_flush();

  // Pairs with the consumer's smp_mb() between setting need_wakeup and
  // re-reading head: it sees our head, or we see its flag.
  smp_mb();
  if (!load_relaxed(kconsumer_.need_wakeup)) return;
  // The watermark is the consumer's to set; clamp it so a wild value cannot
  // silence wake-ups (the flush deadline still covers anything below it).
  const uint64_t watermark =
      std::clamp<uint64_t>(load_relaxed(kconsumer_.wakeup_watermark), 1, ring_.ring_size() / 2);
  if (new_head - tail >= watermark) signal_consumer();
}

void SimDevice::poll_flush() {
  // As the kernel's sring_flush_expired(), run by the producer thread.
  if (!flush_pending_) return;
  const auto now = Clock::now();
  if (now < flush_deadline_) return;
  // Only while the device runs: once it stopped, a consumer that arms
  // need_wakeup sees the state and does not sleep (end() answered one that
  // had asked). Our own field: only this thread writes state.
  if (load_relaxed(kproducer_.state) != SRING_STATE_RUNNING) {
    flush_pending_ = false;
    return;
  }
  smp_mb();  // as in publish(): our head store before the flag load
  // The tail as we accept it (as the kernel's flush tick): a refused one
  // releases nothing.
  if (accepted_tail() == head_) {
    flush_pending_ = false;  // all released: no deadline until the next publish
    return;
  }
  // Data is still unreleased: a consumer that asked is answered, whatever
  // its watermark, and the next deadline is a flush period from now.
  if (load_relaxed(kconsumer_.need_wakeup)) signal_consumer();
  flush_deadline_ = now + std::max<std::chrono::nanoseconds>(config_.flush_timeout, kFlushMinPeriod);
}

void SimDevice::signal_consumer() {
  // Clear the request and signal once: a consumer that re-arms after this
  // gets the next signal, and one that is already awake loses nothing.
  if (exchange(kconsumer_.need_wakeup, uint32_t{0}) == 0) return;
  // Counted per request answered, as the kernel does (it also wakes poll()
  // waiters, which a ring file does not have).
  bump(kproducer_.wakeups);
  if (!eventfd_.valid()) return;
  const uint64_t one = 1;
  // An eventfd write fails only when its counter would overflow, after
  // 2^64 - 2 signals: Ring::wait() never reads the counter (it sleeps on it
  // edge-triggered), so it only grows, but never that far.
  (void)!::write(eventfd_.get(), &one, sizeof(one));
}

Status SimDevice::start(std::chrono::nanoseconds duration) {
  if (auto valid = validate_config(config_, ring_.ring_size()); !valid) return valid;
  if (thread_.joinable()) return make_error(EBUSY, "the simulated device is running: join() it before a new start()");
  stop_.store(false, std::memory_order_relaxed);
  begin();
  thread_ = std::thread([this, duration] { run(duration); });
  return ok();
}

void SimDevice::join() {
  if (thread_.joinable()) thread_.join();
}

SimDevice::Clock::time_point SimDevice::next_look(Clock::time_point now) const {
  // Not before a minimum period: a zero flush timeout must not spin.
  const auto period = std::max<std::chrono::nanoseconds>(config_.flush_timeout / 2, kFlushMinPeriod);
  const auto at = now + period;
  if (!flush_pending_) return at;
  return std::min(at, std::max(flush_deadline_, now + kFlushMinPeriod));
}

void SimDevice::stall(std::chrono::microseconds length, Clock::time_point end_time) {
  // A stalled device makes nothing, but its flush deadline runs on (in the
  // kernel, a timer that fires whatever the device does): sleep in pieces
  // that end at the deadline, or after at most half the flush timeout, and
  // run poll_flush() between them. request_stop() and the end of the run
  // end the stall.
  const auto until = std::min(Clock::now() + length, end_time);
  while (!stop_.load(std::memory_order_acquire)) {
    poll_flush();
    const auto now = Clock::now();
    if (now >= until) return;
    std::this_thread::sleep_until(std::min(until, next_look(now)));
  }
}

void SimDevice::run(std::chrono::nanoseconds duration) {
  const auto start = Clock::now();
  const bool paced = config_.sample_rate != 0;
  // Block k completes when its last frame has been taken (the rate counts
  // frames, whatever the channels).
  auto due = [&](uint64_t k) {
    const long double ns = static_cast<long double>(k + 1) * samples_per_block_ * 1e9L /
                           static_cast<long double>(config_.sample_rate);
    return start + std::chrono::nanoseconds(static_cast<int64_t>(ns));
  };
  const auto end_time = duration.count() > 0 ? start + duration : Clock::time_point::max();
  uint64_t made = 0;  // blocks the device made, written or dropped
  uint32_t full_spins = 0;

  while (!stop_.load(std::memory_order_acquire)) {
    if (const int64_t length = stall_us_.exchange(0); length > 0) {
      // What the device owes after a stall comes out as a burst (the blocks
      // are overdue). Look at stop_ and new faults again first.
      stall(std::chrono::microseconds(length), end_time);
      continue;
    }
    // A burst that ends the stream (the stop policy, a replay's end) ends
    // the run: nothing may be published after the state left RUNNING.
    bool ended = false;
    for (uint32_t burst = burst_blocks_.exchange(0); burst > 0; --burst) {
      const Produced result = produce_block();
      if (result == Produced::kStopped || result == Produced::kExhausted) {
        ended = true;
        break;
      }
      ++made;
    }
    if (ended) break;
    const auto next_due = paced ? due(made) : Clock::now();
    if (next_due > end_time || (!paced && Clock::now() >= end_time)) break;
    if (paced && Clock::now() < next_due) {
      poll_flush();
      std::this_thread::sleep_until(std::min(next_due, next_look(Clock::now())));
      continue;
    }
    const Produced result = produce_block();
    if (result == Produced::kStopped || result == Produced::kExhausted) break;
    if (result == Produced::kNoSpace) {
      poll_flush();
      if (++full_spins < 64) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
      continue;
    }
    full_spins = 0;
    ++made;
  }
  end();
}

}  // namespace sring::sim
