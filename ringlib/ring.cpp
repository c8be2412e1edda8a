#include "ringlib/error_format.hpp"
#include "sring/ring.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <algorithm>
#include <type_traits>

#include "sring/detail/mapping.hpp"
#include "sring/format.hpp"

namespace sring {
namespace {

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Largest ring ringlib will map: far above any real ring, low enough that
// 2 * ring_size cannot overflow anything.
constexpr uint64_t kMaxRingSize = uint64_t{1} << 40;

using Clock = std::chrono::steady_clock;
static_assert(std::is_same_v<Clock::duration, std::chrono::nanoseconds>,
              "deadline_after() adds nanosecond counts");

// now + timeout, saturated: kWaitForever (and anything else that would run
// past the clock's end) is time_point::max(), which the sleep treats as no
// deadline. Plain addition would overflow to a time long past and turn
// "forever" into "at once".
Clock::time_point deadline_after(Clock::time_point now, std::chrono::nanoseconds timeout) {
  if (timeout <= std::chrono::nanoseconds::zero()) return now;
  Clock::rep sum = 0;
  if (timeout == kWaitForever ||
      __builtin_add_overflow(now.time_since_epoch().count(), timeout.count(), &sum)) {
    return Clock::time_point::max();
  }
  return Clock::time_point(Clock::duration(sum));
}

}  // namespace

std::optional<WaitStrategy> parse_wait_strategy(std::string_view name) {
  if (name == "eventfd") return WaitStrategy::kEventfd;
  if (name == "poll") return WaitStrategy::kPoll;
  if (name == "spin") return WaitStrategy::kSpin;
  if (name == "hybrid") return WaitStrategy::kHybrid;
  return std::nullopt;
}

std::string_view state_name(uint32_t state) {
  switch (state) {
    case SRING_STATE_STOPPED: return "stopped";
    case SRING_STATE_RUNNING: return "running";
    case SRING_STATE_OVERRUN_STOPPED: return "overrun-stopped";
    case SRING_STATE_FAILED: return "failed";
    case SRING_STATE_REMOVED: return "removed";
  }
  return "unknown";
}

std::string_view to_string(WaitStrategy strategy) {
  switch (strategy) {
    case WaitStrategy::kEventfd: return "eventfd";
    case WaitStrategy::kPoll: return "poll";
    case WaitStrategy::kSpin: return "spin";
    case WaitStrategy::kHybrid: return "hybrid";
  }
  return "unknown";
}

Status validate_producer_identity(const sring_producer_page& page, uint64_t file_size,
                                  uint32_t page_size) {
  // Identity fields are written before the ring becomes mappable and never
  // change, so plain reads are enough here.
  if (page.magic != SRING_MAGIC) {
    return make_error(EPROTO, "bad magic {:#010x} in the producer page (expected {:#010x}): not a sring ring",
                      page.magic, SRING_MAGIC);
  }
  if (SRING_ABI_MAJOR(page.abi_version) != SRING_ABI_VERSION_MAJOR) {
    return make_error(EPROTO, "the ring speaks ABI version {}.{}, this ringlib was built for {}.{}",
                      SRING_ABI_MAJOR(page.abi_version), SRING_ABI_MINOR(page.abi_version),
                      SRING_ABI_VERSION_MAJOR, SRING_ABI_VERSION_MINOR);
  }
  if (page.page_size != page_size) {
    return make_error(EINVAL, "the ring was laid out for {}-byte pages, this process uses {}",
                      page.page_size, page_size);
  }
  if (!is_power_of_two(page.ring_size) || page.ring_size < SRING_MIN_RING_SIZE ||
      page.ring_size > kMaxRingSize || page.ring_size % page_size != 0) {
    return make_error(EPROTO, "ring size {} is not a power of two between {} and {} bytes",
                      page.ring_size, SRING_MIN_RING_SIZE, kMaxRingSize);
  }
  if (page.consumer_offset != uint64_t{SRING_CONSUMER_PGOFF} * page_size ||
      page.data_offset != uint64_t{SRING_DATA_PGOFF} * page_size) {
    return make_error(EPROTO, "unexpected region offsets (consumer {}, data {})",
                      page.consumer_offset, page.data_offset);
  }
  if (page.block_bytes % SRING_BLOCK_ALIGN != 0 || page.block_bytes > SRING_MAX_BLOCK_BYTES ||
      page.block_bytes > page.ring_size / 2) {
    return make_error(EPROTO, "block size {} is not a multiple of {} up to {} and half the ring",
                      page.block_bytes, SRING_BLOCK_ALIGN, SRING_MAX_BLOCK_BYTES);
  }
  // Not the layout: it is configuration (it changes while stopped, a
  // monitor may attach during SET_CONFIG's stores, and a later minor may
  // add formats this ringlib does not know). Each block's layout is checked
  // by BlockCursor::next() before anyone reads its payload.
  if (file_size != 0 && file_size != page.data_offset + page.ring_size) {
    return make_error(EPROTO, "ring file is {} bytes, its producer page says {}", file_size,
                      page.data_offset + page.ring_size);
  }
  return ok();
}

SampleLayout Ring::layout() const {
  // Relaxed: configuration written while the device is stopped, published
  // by its state store (load state with acquire first to pair with it).
  const uint32_t channels = load_relaxed(kproducer_->channels);
  const uint32_t bits = load_relaxed(kproducer_->bits_per_sample);
  return SampleLayout{load_relaxed(kproducer_->sample_format), channels != 0 ? channels : 1u,
                      bits != 0 ? bits : 16u};
}

Expected<const sring_block_header*> BlockCursor::next() {
  if (offset_ == span_.bytes) return static_cast<const sring_block_header*>(nullptr);
  const uint64_t left = span_.bytes - offset_;
  if (left < SRING_BLOCK_HEADER_SIZE) {
    return make_error(EPROTO, "truncated block header at position {}", position());
  }
  const auto* block = reinterpret_cast<const sring_block_header*>(span_.data + offset_);
  // One copy, validated, and only the copy used: under overwrite-oldest the
  // producer may rewrite the block while we look at it, and a field read
  // twice could pass the check once and lie the second time. The block was
  // published by the head we loaded with acquire ordering, so the copy is
  // ordered after it.
  std::memcpy(&header_, block, sizeof(header_));
  if (header_.magic != SRING_BLOCK_MAGIC) {
    return make_error(EPROTO, "bad block magic {:#010x} at position {}", header_.magic, position());
  }
  const uint32_t total = header_.total_bytes;
  if (total < SRING_BLOCK_HEADER_SIZE || total % SRING_BLOCK_ALIGN != 0 ||
      total > max_block_bytes_ || total > left) {
    return make_error(EPROTO, "block at position {} claims {} bytes ({} left in the span)",
                      position(), total, left);
  }
  // A 1.3 producer leaves channels and bits_per_sample both zero (one
  // channel of bytes_per_sample); a 1.4 one writes both. One without the
  // other is neither, and its payload size cannot be trusted.
  if ((header_.channels == 0) != (header_.bits_per_sample == 0)) {
    return make_error(EPROTO, "block at position {} has channels {} and bits_per_sample {}: both or neither "
                      "(a 1.3 producer) must be zero", position(), header_.channels, header_.bits_per_sample);
  }
  // The layout (docs/abi.md, "Sample formats"): a standard format with its
  // own size, or a device's own with the size it declares; either way the
  // payload fits in the block.
  const SampleLayout layout = SampleLayout::from_header(header_);
  if (!layout.valid() ||
      header_.bytes_per_sample != (layout.bits_per_sample % 8 == 0 ? layout.bits_per_sample / 8 : 0) ||
      layout.payload_bytes(header_.sample_count) > total - SRING_BLOCK_HEADER_SIZE) {
    return make_error(EPROTO, "block at position {} has {} frames of {} ({} bits) in {} bytes", position(),
                      header_.sample_count, describe(layout), layout.bits_per_sample, total);
  }
  block_offset_ = offset_;
  offset_ += total;
  return block;
}

Expected<Ring> Ring::open(const std::string& path, Access access) {
  const int flags = (access == Access::kConsumer ? O_RDWR : O_RDONLY) | O_CLOEXEC;
  UniqueFd fd(::open(path.c_str(), flags));
  if (!fd.valid()) return errno_error("cannot open ring {}", path);
  auto ring = attach(std::move(fd), access);
  if (!ring) return make_error(ring.error().code, "{}: {}", path, ring.error().message);
  return ring;
}

Expected<Ring> Ring::attach(UniqueFd fd, Access access) { return attach(std::move(fd), UniqueFd(), access); }

namespace {

// A ring file's producer could shrink it under our mapping, and the next
// access would kill us with SIGBUS. A sealed memfd cannot be shrunk by anyone
// (docs/abi.md, "Ring files"): insist on it.
Status check_sealed(int fd, const char* what) {
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
    return make_error(EPROTO,
                      "{} is not sealed against shrinking (F_SEAL_SHRINK): its producer could cut it "
                      "under the mapping",
                      what);
  }
  return ok();
}

}  // namespace

Expected<Ring> Ring::attach(UniqueFd fd, UniqueFd data_fd, Access access) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat the ring");
  if (!S_ISCHR(st.st_mode) && !S_ISREG(st.st_mode)) {
    return make_error(EINVAL, "not a sring device or ring file");
  }
  Ring ring;
  ring.is_device_ = S_ISCHR(st.st_mode);
  ring.consumer_ = access == Access::kConsumer;
  const auto page_size = static_cast<uint32_t>(::sysconf(_SC_PAGESIZE));
  if (!ring.is_device_ && static_cast<uint64_t>(st.st_size) < 2 * uint64_t{page_size}) {
    return make_error(EPROTO, "ring file of {} bytes is too small to hold a ring", st.st_size);
  }

  const bool data_file = data_fd.valid();
  if (data_file && ring.is_device_) return make_error(EINVAL, "a sring device takes no separate data file");

  auto producer = map_region(fd.get(), page_size, 0, PROT_READ, "producer page");
  if (!producer) return producer.error();
  ring.producer_map_ = std::move(*producer);
  ring.kproducer_ = static_cast<const sring_producer_page*>(ring.producer_map_.get());
  const uint64_t file_size = ring.is_device_ || data_file ? 0 : static_cast<uint64_t>(st.st_size);
  if (auto valid = validate_producer_identity(*ring.kproducer_, file_size, page_size); !valid) {
    return valid.error();
  }
  ring.ring_size_ = ring.kproducer_->ring_size;
  if (data_file) {
    // The ring file holds the two pages only, the data file the data only.
    struct stat data_st {};
    if (::fstat(data_fd.get(), &data_st) != 0) return errno_error("cannot stat the ring's data file");
    if (static_cast<uint64_t>(st.st_size) != ring.kproducer_->data_offset) {
      return make_error(EPROTO, "ring file with a separate data file is {} bytes, expected {} (its two pages)",
                        st.st_size, ring.kproducer_->data_offset);
    }
    if (!S_ISREG(data_st.st_mode) || static_cast<uint64_t>(data_st.st_size) != ring.ring_size_) {
      return make_error(EPROTO, "the ring's data file is {} bytes, its producer page says {}",
                        data_st.st_size, ring.ring_size_);
    }
    if (auto sealed = check_sealed(data_fd.get(), "the ring's data file"); !sealed) return sealed.error();
  }
  if (!ring.is_device_) {
    if (auto sealed = check_sealed(fd.get(), "ring file"); !sealed) return sealed.error();
  }

  const int consumer_prot = ring.consumer_ ? PROT_READ | PROT_WRITE : PROT_READ;
  auto consumer = map_region(fd.get(), page_size, static_cast<off_t>(ring.kproducer_->consumer_offset),
                             consumer_prot, "consumer page");
  if (!consumer) return consumer.error();
  ring.consumer_map_ = std::move(*consumer);
  ring.kconsumer_ = static_cast<sring_consumer_page*>(ring.consumer_map_.get());

  auto data = data_file ? map_mirror(data_fd.get(), ring.ring_size_, 0, PROT_READ, MirrorSource::kFile)
                        : map_mirror(fd.get(), ring.ring_size_, static_cast<off_t>(ring.kproducer_->data_offset),
                                     PROT_READ, ring.is_device_ ? MirrorSource::kDevice : MirrorSource::kFile);
  if (!data) return data.error();
  ring.data_map_ = std::move(*data);
  ring.data_ = static_cast<const std::byte*>(ring.data_map_.get());

  if (auto adopted = ring.adopt_positions(); !adopted) return adopted.error();
  ring.fd_ = std::move(fd);
  return ring;
}

Expected<Ring> Ring::attach_memory(const RingMemory& memory, Access access) {
  if (memory.producer == nullptr || memory.consumer == nullptr || memory.data == nullptr) {
    return make_error(EINVAL, "attach_memory needs the producer page, the consumer page and the data");
  }
  const auto page_size = static_cast<uint32_t>(::sysconf(_SC_PAGESIZE));
  // No file to measure: the identity check covers the rest.
  if (auto valid = validate_producer_identity(*memory.producer, 0, page_size); !valid) {
    return valid.error();
  }
  Ring ring;
  ring.consumer_ = access == Access::kConsumer;
  ring.kproducer_ = memory.producer;
  ring.kconsumer_ = memory.consumer;
  ring.data_ = memory.data;
  ring.ring_size_ = memory.producer->ring_size;
  if (auto adopted = ring.adopt_positions(); !adopted) return adopted.error();
  return ring;
}

Status Ring::adopt_positions() {
  // A new consumer continues where the last one released. Pairs with the
  // previous consumer's store_release(tail).
  tail_ = load_acquire(kconsumer_->tail);
  acquired_head_ = tail_;
  if (head() - tail_ > ring_size_) {
    return make_error(EPROTO, "the ring's tail {} is not within a ring of head {}", tail_, head());
  }
  if (consumer_) {
    // Nobody waits yet: a stale request left by a previous consumer would
    // only cost a spurious signal, so relaxed is enough.
    store_relaxed(kconsumer_->need_wakeup, uint32_t{0});
    set_wakeup_watermark(watermark_);
  }
  return ok();
}

Expected<BlockSpan> Ring::acquire() {
  if (load_relaxed(kproducer_->overrun_policy) == SRING_OVERRUN_OVERWRITE_OLDEST) {
    return acquire_overwritable();
  }
  const uint64_t head_now = head();
  const uint64_t used = head_now - tail_;
  if (used > ring_size_) {
    return make_error(EPROTO, "corrupt producer page: head {} is not within one ring of tail {}",
                      head_now, tail_);
  }
  acquired_head_ = head_now;
  return BlockSpan{data_ + (tail_ & (ring_size_ - 1)), tail_, used};
}

Expected<BlockSpan> Ring::acquire_overwritable() {
  // The producer may have reclaimed blocks we had not released, moving the
  // shared tail with its CAS. Load that tail (acquire, pairs with the CAS)
  // before head: the producer only reclaims below a head it has published.
  // Between the two loads it may reclaim and publish again, so head can run
  // more than a ring past the tail we loaded: then look again.
  for (int attempt = 0; attempt < 64; ++attempt) {
    const uint64_t shared = load_acquire(kconsumer_->tail);
    const uint64_t head_now = head();
    if (shared - tail_ > head_now - tail_) {
      return make_error(EPROTO, "corrupt consumer page: tail {} moved outside [{}, {}]", shared,
                        tail_, head_now);
    }
    if (head_now - shared > ring_size_) continue;
    tail_ = shared;
    acquired_head_ = head_now;
    return BlockSpan{data_ + (tail_ & (ring_size_ - 1)), tail_, head_now - tail_};
  }
  // Racing the producer: nothing now, later. What was acquired before
  // stays acquired (held blocks may still be released up to it).
  return BlockSpan{data_ + (tail_ & (ring_size_ - 1)), tail_, 0};
}

Expected<ReleaseResult> Ring::release(uint64_t new_tail) {
  ReleaseResult result;
  if (new_tail - tail_ > acquired_head_ - tail_) {
    return make_error(EINVAL, "release({}) outside what was acquired: [{}, {}]", new_tail, tail_, acquired_head_);
  }
  if (load_relaxed(kproducer_->overrun_policy) != SRING_OVERRUN_OVERWRITE_OLDEST) {
    // Pairs with the producer's smp_load_acquire(tail): our reads of the
    // blocks happen before it may overwrite them.
    store_release(kconsumer_->tail, new_tail);
    tail_ = new_tail;
    return result;
  }
  // Overwrite-oldest: the producer may be moving tail too. Our CAS (acq_rel)
  // pairs with its CAS; whoever moves tail first owns the blocks.
  __u64 expected = tail_;  // the shared field's own type, for the CAS
  while (!compare_exchange(kconsumer_->tail, expected, new_tail)) {
    // The producer reclaimed up to `expected`: the blocks below it were
    // overwritten while we held them.
    result.overwritten_below = expected;
    // The producer may have reclaimed past the head we acquired: what was
    // acquired then reaches at least the new tail.
    if (expected - acquired_head_ < (uint64_t{1} << 63)) acquired_head_ = expected;
    if (expected - tail_ >= new_tail - tail_) {
      tail_ = expected;
      return result;
    }
    tail_ = expected;
  }
  tail_ = new_tail;
  return result;
}

void Ring::set_wakeup_watermark(uint64_t bytes) {
  watermark_ = bytes == 0 ? 1 : bytes;
  if (consumer_) store_relaxed(kconsumer_->wakeup_watermark, watermark_);
}

Status Ring::use_eventfd(UniqueFd eventfd) {
  // Edge-triggered: every signal (an eventfd write or the kernel's
  // eventfd_signal()) queues one event, reported once, whatever the
  // counter holds. A signal that lands between arming need_wakeup and
  // epoll_wait() is already queued, so epoll_wait() returns at once and
  // nothing is lost; a stale one costs one spurious wake, as a stale count
  // did with poll().
  // Everything that can fail comes before the device is told: a device
  // signalling an eventfd this Ring does not sleep on would leave every
  // wait() to its timeout.
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll.valid()) return errno_error("cannot create the epoll set wait() sleeps on");
  epoll_event event{};
  event.events = EPOLLIN | EPOLLET;
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, eventfd.get(), &event) != 0) {
    return errno_error("cannot add the eventfd to the epoll set wait() sleeps on");
  }
  if (is_device_) {
    const int32_t efd = eventfd.get();
    if (::ioctl(fd_.get(), SRING_IOC_SET_EVENTFD, &efd) != 0) {
      return errno_error("cannot register the eventfd with the device");
    }
  }
  eventfd_ = std::move(eventfd);
  eventfd_epoll_ = std::move(epoll);
  return ok();
}

Status Ring::enable_eventfd() {
  if (!is_device_) {
    // Only a device has a way to be handed an eventfd (the SET_EVENTFD
    // ioctl). A ring file's producer signals the eventfd it was given when
    // the ring was set up; one created here would never be signalled and
    // every wait() would sleep its whole timeout.
    return make_error(EOPNOTSUPP,
                      "enable_eventfd() works only on a sring device: a ring file's producer hands "
                      "over its eventfd (SimDevice::set_eventfd, or the one sring-sim sends); pass "
                      "that to use_eventfd()");
  }
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!efd.valid()) return errno_error("cannot create an eventfd");
  return use_eventfd(std::move(efd));
}

bool Ring::prepare_wait() {
  // A monitor's consumer page is read-only: it cannot ask for wake-ups.
  if (!consumer_ || readiness() != Readiness::kWaiting) return true;
  if (before_arm_hook_ != nullptr) before_arm_hook_(before_arm_context_);
  // As in sleep_until_signalled(): the full barrier pairs with the
  // producer's smp_mb() between storing head and reading need_wakeup.
  store_relaxed(kconsumer_->need_wakeup, uint32_t{1});
  smp_mb();
  if (readiness() != Readiness::kWaiting) {
    store_relaxed(kconsumer_->need_wakeup, uint32_t{0});
    return true;
  }
  sleeps_.add();
  return false;
}

void Ring::finish_wait(bool signalled) {
  if (!consumer_) return;
  if (signalled) {
    if (eventfd_.valid()) {
      // Readable was reported, so this does not block even on a blocking
      // eventfd (a reader elsewhere could have drained it: then EAGAIN on
      // a non-blocking one, and no wake-up counted).
      uint64_t count = 0;
      if (::read(eventfd_.get(), &count, sizeof(count)) == sizeof(count)) wakeups_received_.add();
    } else {
      wakeups_received_.add();
    }
  }
  // Awake: no need to be signalled. A stale flag costs a spurious signal.
  store_relaxed(kconsumer_->need_wakeup, uint32_t{0});
}

ProducerCounters Ring::producer_counters() const {
  const auto& p = *kproducer_;
  ProducerCounters c;
  c.state = state();
  c.head = head();
  c.blocks_produced = load_relaxed(p.blocks_produced);
  c.samples_produced = load_relaxed(p.samples_produced);
  c.blocks_dropped = load_relaxed(p.blocks_dropped);
  c.samples_dropped = load_relaxed(p.samples_dropped);
  c.overruns = load_relaxed(p.overruns);
  c.wakeups = load_relaxed(p.wakeups);
  c.bad_tails = load_relaxed(p.bad_tails);
  c.high_water = load_relaxed(p.high_water);
  return c;
}

Ring::Readiness Ring::readiness() const {
  // State before head. Pairs with the producer's store_release(state) after
  // its last head store: a producer seen not running has its final head
  // visible to the head() below, so "idle" never hides a last block.
  const bool running = state() == SRING_STATE_RUNNING;
  const uint64_t head_now = head();
  const uint64_t fresh = available_from(head_now);  // beyond what was consumed
  // The watermark counts as the producer does, from the released tail
  // (blocks still held count): it signals at that fill, and a wait must
  // not want more than it will be woken for. Below it, data is ready only
  // once the producer has stopped: no more will come to reach it.
  if (fresh > 0 && (head_now - tail_ >= watermark_ || !running)) return Readiness::kData;
  return running ? Readiness::kWaiting : Readiness::kIdle;
}

Expected<bool> Ring::wait(WaitStrategy strategy, std::chrono::nanoseconds timeout) {
  const auto deadline = deadline_after(Clock::now(), timeout);
  if (const Readiness ready = readiness(); ready != Readiness::kWaiting) {
    return ready == Readiness::kData;
  }

  if (strategy == WaitStrategy::kSpin || strategy == WaitStrategy::kHybrid) {
    const auto spin_deadline = strategy == WaitStrategy::kSpin
                                   ? deadline
                                   : std::min(deadline, deadline_after(Clock::now(), spin_before_sleep_));
    for (uint32_t i = 1;; ++i) {
      if (const Readiness ready = readiness(); ready != Readiness::kWaiting) {
        return ready == Readiness::kData;
      }
      cpu_relax();
      // Reading the clock costs more than a head load: do it now and then.
      if (i % 256 == 0 && spin_deadline != Clock::time_point::max() && Clock::now() >= spin_deadline) {
        break;
      }
    }
    if (strategy == WaitStrategy::kSpin) return false;
  }
  return sleep_until_signalled(strategy, deadline);
}

Expected<bool> Ring::sleep_until_signalled(WaitStrategy strategy,
                                           std::chrono::steady_clock::time_point deadline) {
  if (!consumer_) return make_error(EPERM, "a monitor cannot wait for wake-ups");
  const bool use_device_poll = strategy == WaitStrategy::kPoll && is_device_;
  if (!use_device_poll && !eventfd_.valid()) {
    return make_error(EINVAL, "the {} strategy needs an eventfd (enable_eventfd or use_eventfd)",
                      to_string(strategy));
  }
  const bool forever = deadline == Clock::time_point::max();
  bool got_data = false;
  for (;;) {
    if (before_arm_hook_ != nullptr) before_arm_hook_(before_arm_context_);
    // Ask for a wake-up, then look again. The full barrier pairs with the
    // producer's smp_mb() between storing head and reading need_wakeup: it
    // either sees our flag and signals, or we see its head here. Without
    // this second look, a block published after our last look but before
    // the flag was set would never be signalled (tests/wait_test.cpp).
    store_relaxed(kconsumer_->need_wakeup, uint32_t{1});
    smp_mb();
    if (const Readiness ready = readiness(); ready != Readiness::kWaiting) {
      got_data = ready == Readiness::kData;
      break;
    }

    int poll_ms = -1;  // forever
    if (!forever) {
      const auto now = Clock::now();
      if (now >= deadline) break;
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
      // Far deadlines sleep in steps: the loop looks again and sleeps on.
      poll_ms = static_cast<int>(std::min<int64_t>(left.count(), 1 << 30));
    }
    // One system call per sleep, whatever the timeout. The device's poll()
    // is level-triggered on its own readiness (data at the watermark, or a
    // state change), so there is nothing to consume. The eventfd is watched
    // edge-triggered (use_eventfd()): epoll_wait() returns once per signal
    // and its counter is left alone, where poll() would need a read() after
    // every wake-up to stop it reporting readable.
    sleeps_.add();
    int n;
    if (use_device_poll) {
      pollfd pfd{fd_.get(), POLLIN, 0};
      n = ::poll(&pfd, 1, poll_ms);
      if (n > 0 && (pfd.revents & (POLLERR | POLLNVAL))) {
        return make_error(EIO, "the ring's wait descriptor reported an error");
      }
    } else {
      epoll_event event{};
      n = ::epoll_wait(eventfd_epoll_.get(), &event, 1, poll_ms);
      // An eventfd reports an error only when its counter saturated
      // (2^64 - 1 signals never read): it can no longer signal.
      if (n > 0 && (event.events & EPOLLERR)) return make_error(EIO, "the ring's eventfd counter saturated");
    }
    if (n < 0 && errno != EINTR) return errno_error("waiting on the ring failed");
    if (n > 0) wakeups_received_.add();
    // A flush wake-up may deliver less than the watermark: take what is
    // there. A wake-up for a state change with nothing there (the producer
    // stopped) ends the wait at the next look above.
    if (n > 0 && available_now() > 0) {
      got_data = true;
      break;
    }
  }
  // We have data, or give up: no need to be signalled now. A stale set
  // flag would only cost a spurious signal, so relaxed is enough.
  store_relaxed(kconsumer_->need_wakeup, uint32_t{0});
  return got_data;
}

}  // namespace sring
