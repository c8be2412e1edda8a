// ringlib's consumer side of an sring ring: attach and validate, acquire
// whole blocks in place, release them, wait for more.
//
// Threading: a Ring belongs to one consumer thread. acquire(), release() and
// wait() are called from that thread only; the const accessors (except
// tail()) may be called from any thread that holds the Ring: they read
// shared memory with atomics and the Ring's own statistics as
// RelaxedCounter. None of them takes a lock or makes a system call on the
// fast path (wait() sleeps only when there is no data).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sring/sring_abi.h"
#include "sring/detail/barriers.hpp"
#include "sring/error.hpp"
#include "sring/format.hpp"
#include "sring/unique_fd.hpp"

namespace sring {

enum class WaitStrategy {
  kEventfd,  // arm need-wakeup, sleep on the eventfd (epoll_wait, edge-triggered)
  kPoll,     // arm need-wakeup, poll() the device fd (a file ring: as kEventfd)
  kSpin,     // busy-poll head; lowest latency, burns a core
  kHybrid,   // spin briefly, then sleep as kEventfd
};

// Ring::wait() with this timeout never times out (any timeout that would run
// past the end of the clock is the same): it returns when data is ready or
// when the producer is not running.
inline constexpr std::chrono::nanoseconds kWaitForever = std::chrono::nanoseconds::max();

[[nodiscard]] std::optional<WaitStrategy> parse_wait_strategy(std::string_view name);
[[nodiscard]] std::string_view to_string(WaitStrategy strategy);
// "stopped", "running", "overrun-stopped", "failed", "removed" (enum sring_state).
[[nodiscard]] std::string_view state_name(uint32_t state);

// Checks a producer page's identity against what this ringlib understands.
// file_size is the size of the backing file (0 for a device); page_size is
// ours. Each mismatch has its own message.
[[nodiscard]] Status validate_producer_identity(const sring_producer_page& page, uint64_t file_size,
                                                uint32_t page_size);

// What the producer page says, in one snapshot (relaxed loads: statistics;
// final only at the end of a stream, see Consumer::finish()).
struct ProducerCounters {
  uint64_t blocks_produced = 0;
  uint64_t samples_produced = 0;
  uint64_t blocks_dropped = 0;
  uint64_t samples_dropped = 0;
  uint64_t overruns = 0;
  uint64_t wakeups = 0;
  uint64_t bad_tails = 0;
  uint64_t high_water = 0;
  uint64_t head = 0;
  uint32_t state = 0;
};

// A run of whole blocks, contiguous in memory thanks to the mirror.
struct BlockSpan {
  const std::byte* data = nullptr;  // data[0] is the byte at ring position begin
  uint64_t begin = 0;
  uint64_t bytes = 0;
  bool empty() const { return bytes == 0; }
  uint64_t end() const { return begin + bytes; }
};

// Walks the blocks of a span, validating each header against the span: a
// header that is torn, lies, or points outside the span is an error, never
// an out-of-bounds read.
class BlockCursor {
 public:
  BlockCursor(const BlockSpan& span, uint32_t max_block_bytes)
      : span_(span), max_block_bytes_(max_block_bytes) {}

  // The next block, nullptr at the end of the span, or an error. The pointer
  // is into the ring: its fields are stable while the block is held, except
  // under overwrite-oldest, where only header() and payload() may be used.
  [[nodiscard]] Expected<const sring_block_header*> next();
  // The validated copy of the header of the block next() returned last: the
  // only view of it that cannot change under the caller.
  const sring_block_header& header() const { return header_; }
  // Its samples, in place: header().sample_count frames, always within the
  // span (under overwrite-oldest their values mean something only if the
  // release that follows says the block was not overwritten).
  const std::byte* payload() const { return span_.data + block_offset_ + SRING_BLOCK_HEADER_SIZE; }
  // Ring position of the block next() returned last (valid after a block).
  uint64_t block_begin() const { return span_.begin + block_offset_; }
  uint64_t position() const { return span_.begin + offset_; }

 private:
  BlockSpan span_;
  uint32_t max_block_bytes_;
  uint64_t offset_ = 0;
  uint64_t block_offset_ = 0;
  sring_block_header header_{};
};

// The payload (samples) of a validated block.
[[nodiscard]] inline const std::byte* block_payload(const sring_block_header* block) {
  return reinterpret_cast<const std::byte*>(block) + SRING_BLOCK_HEADER_SIZE;
}

// A ring's three regions, already mapped in this process (see
// Ring::attach_memory).
struct RingMemory {
  const sring_producer_page* producer = nullptr;
  sring_consumer_page* consumer = nullptr;  // writable, for a consumer
  const std::byte* data = nullptr;          // 2 * ring_size, mirrored
};

// What release() found.
struct ReleaseResult {
  // Positions below this were reclaimed by the producer before we released
  // them (overwrite-oldest only): blocks that begin below it were overwritten
  // while we held them and their contents must be discarded.
  uint64_t overwritten_below = 0;
  bool overwritten() const { return overwritten_below != 0; }
};

class Ring {
 public:
  enum class Access {
    kConsumer,  // maps the consumer page writable, moves tail
    kMonitor,   // read-only: counters, head and tail; never disturbs
  };

  [[nodiscard]] static Expected<Ring> open(const std::string& path, Access access);
  // Takes ownership of fd: a sring device or a ring file (memfd).
  [[nodiscard]] static Expected<Ring> attach(UniqueFd fd, Access access);
  // A ring file whose data lives in a file of its own (docs/abi.md, "Ring
  // files": the user-space simulator's rings in 2 MiB pages). data_fd holds
  // exactly ring_size bytes at offset 0; fd then holds only the producer and
  // consumer pages. An invalid data_fd is the one-file attach above.
  [[nodiscard]] static Expected<Ring> attach(UniqueFd fd, UniqueFd data_fd, Access access);
  // Adopts a ring that this process has already mapped, for a producer in
  // the same process (the simulator's HostRing) and for tests. The Ring then
  // reads and writes the very addresses the producer uses, which is what
  // lets ThreadSanitizer check the head/tail ordering between them (through
  // two mappings of one memfd it sees unrelated addresses and no race).
  // Non-owning: nothing is mapped, unmapped or closed, and the memory must
  // outlive the Ring. data must be the mirrored 2 * ring_size window (not
  // checked). The producer page is validated as attach() does; there is no
  // descriptor, so fd() is -1, and wake-ups come through use_eventfd() as for
  // a ring file.
  [[nodiscard]] static Expected<Ring> attach_memory(const RingMemory& memory, Access access);

  Ring(Ring&&) noexcept = default;
  Ring& operator=(Ring&&) noexcept = default;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring() = default;

  int fd() const { return fd_.get(); }
  bool is_device() const { return is_device_; }
  uint64_t ring_size() const { return ring_size_; }
  uint32_t max_block_bytes() const { return SRING_MAX_BLOCK_BYTES; }

  // The producer page, for identity, configuration and counters. Read the
  // counters with load_relaxed(): they are monotonic statistics.
  const sring_producer_page& producer() const { return *kproducer_; }
  uint32_t state() const { return load_acquire(kproducer_->state); }
  // The sample layout the producer page announces (format, channels, bits
  // per sample; a 1.3 producer's zeros read as one channel of 16 bits): the
  // blocks' from the device's start on. Configuration, so it changes only
  // while the device is stopped; every block carries its own layout too
  // (Block::layout()), which is the one to read its payload with.
  [[nodiscard]] SampleLayout layout() const;
  uint64_t head() const {
    // Pairs with the producer's smp_store_release(head) after it wrote the
    // blocks: everything below head is visible after this load.
    return load_acquire(kproducer_->head);
  }
  // The data mapping: 2 * ring_size() bytes, the second half mirroring the
  // first; position p is at data()[p % ring_size()].
  const std::byte* data() const { return data_; }
  // The producer page's counters, state and head in one snapshot.
  [[nodiscard]] ProducerCounters producer_counters() const;
  // The tail as published in the consumer page (a monitor's view).
  uint64_t shared_tail() const { return load_acquire(kconsumer_->tail); }

  // --- consumer thread only ------------------------------------------
  // Our position: everything below it has been released.
  uint64_t tail() const { return tail_; }

  // All whole blocks available now, possibly none. An error means the
  // producer page is corrupt (head behind tail or more than a ring ahead).
  [[nodiscard]] Expected<BlockSpan> acquire();

  // Hands [tail(), new_tail) back to the producer. new_tail must lie within
  // what acquire() returned (a release past it, or behind the tail, is
  // EINVAL and moves nothing), on a block boundary.
  [[nodiscard]] Expected<ReleaseResult> release(uint64_t new_tail);

  // Where the producer should signal: bytes available before a wake-up.
  void set_wakeup_watermark(uint64_t bytes);

  // Everything below position has been read, though not all of it released
  // yet (a consumer that holds blocks while user code still looks at them):
  // wait() then waits for data beyond it, not for what it already has. The
  // producer still sees the released tail.
  void mark_consumed(uint64_t position) { consumed_ = position; }

  // The eventfd the producer signals. For a device, registers it with the
  // driver (SRING_IOC_SET_EVENTFD); for a ring file (or adopted memory), the
  // producer must already hold the same eventfd (SimDevice::set_eventfd, or
  // the one sring-sim sends with the ring): this only tells wait() where to
  // sleep. wait() sleeps on it through an edge-triggered epoll set of its
  // own and does not read its counter, which then only grows (2^64 signals
  // away from saturating); finish_wait() still drains it for level-triggered
  // loops of the caller's.
  [[nodiscard]] Status use_eventfd(UniqueFd eventfd);
  // Creates an eventfd and registers it with the device. A device only:
  // for a ring file nothing would ever signal an eventfd made here, so it is
  // EOPNOTSUPP (use use_eventfd() with the producer's eventfd).
  [[nodiscard]] Status enable_eventfd();

  // Waits until data is ready: at least the watermark, anything the producer
  // flushed, or anything at all once the producer is not running. Up to
  // timeout; kWaitForever (nanoseconds::max()) waits with no deadline.
  // true: data is there. false: timed out, or the producer is not running
  // and the ring is empty, so nothing will come until it starts again (this
  // is how a wait-forever ends at the end of a stream; callers tell the two
  // apart with state()).
  [[nodiscard]] Expected<bool> wait(WaitStrategy strategy, std::chrono::nanoseconds timeout);

  // --- sleeping elsewhere: one thread over many rings (epoll) ---------
  // wait() sleeps on one ring. To sleep on several at once, put
  // each ring's wait_fd() in an epoll set (EPOLLIN) and, when every ring is
  // empty, call prepare_wait() on each before epoll_wait():
  //
  //   bool ready = false;
  //   for (auto& r : rings) ready |= r.prepare_wait();
  //   if (!ready) n = epoll_wait(...);                 // the sleep
  //   for (auto& r : rings) r.finish_wait(fired(r));   // disarm, drain
  //
  // The descriptor wait() sleeps on: the eventfd (use_eventfd() or
  // enable_eventfd()), else a device's own descriptor; -1 if neither.
  int wait_fd() const { return eventfd_.valid() ? eventfd_.get() : (is_device_ ? fd_.get() : -1); }
  // What wait() does right before it sleeps: arm need_wakeup, full barrier,
  // look at head and state again. true: data is ready (or the producer is
  // not running), nothing is left armed, do not sleep. false: armed; the
  // producer will signal wait_fd() once the watermark is reached (or its
  // flush timeout passes, or it stops). Consumer thread only; a monitor
  // cannot arm and always gets true.
  [[nodiscard]] bool prepare_wait();
  // After the sleep, for every ring prepare_wait() armed: disarms, and if
  // its wait_fd() was reported readable (`signalled`) reads the eventfd and
  // counts the wake-up in wakeups_received(). Consumer thread only.
  void finish_wait(bool signalled);

  // Spin time of WaitStrategy::kHybrid before it sleeps.
  void set_spin_before_sleep(std::chrono::nanoseconds spin) { spin_before_sleep_ = spin; }

  // Statistics, from any thread (written by the consumer thread only).
  uint64_t wakeups_received() const { return wakeups_received_.load(); }
  uint64_t sleeps() const { return sleeps_.load(); }

  // Test seam: called on the consumer thread by wait() right before it arms
  // need_wakeup to sleep, every time it is about to. A test publishes a block
  // from here to land exactly in the window between the consumer's last look
  // at head and its setting the flag, the window the re-check after smp_mb()
  // exists for (tests/wait_test.cpp). Costs one predictable branch on the
  // path that is about to make a system call, nothing on the data path.
  // Pass nullptr to remove it. Not for production use.
  using BeforeArmHook = void (*)(void* context);
  void set_before_arm_hook_for_testing(BeforeArmHook hook, void* context) {
    before_arm_hook_ = hook;
    before_arm_context_ = context;
  }

 private:
  // What a wait can end on.
  enum class Readiness {
    kWaiting,  // running, below the watermark
    kData,     // the watermark reached, or anything once the producer stopped
    kIdle,     // the producer is not running and the ring is empty
  };

  Ring() = default;
  Status adopt_positions();
  Expected<BlockSpan> acquire_overwritable();
  // Bytes beyond what was consumed (mark_consumed), or beyond tail.
  uint64_t available_now() const { return available_from(head()); }
  uint64_t available_from(uint64_t head_now) const {
    const uint64_t from = consumed_ - tail_ <= head_now - tail_ ? consumed_ : tail_;
    return head_now - from;
  }
  Readiness readiness() const;
  Expected<bool> sleep_until_signalled(WaitStrategy strategy,
                                       std::chrono::steady_clock::time_point deadline);

  UniqueFd fd_;
  UniqueFd eventfd_;
  // wait()'s sleep on eventfd_: an epoll set holding it edge-triggered, so
  // one epoll_wait() both sleeps (with any timeout) and consumes the signal;
  // the eventfd's counter is never read there (see sleep_until_signalled()).
  UniqueFd eventfd_epoll_;
  Mapping producer_map_;
  Mapping consumer_map_;
  Mapping data_map_;
  const sring_producer_page* kproducer_ = nullptr;
  sring_consumer_page* kconsumer_ = nullptr;
  const std::byte* data_ = nullptr;
  uint64_t ring_size_ = 0;
  uint64_t tail_ = 0;
  uint64_t acquired_head_ = 0;
  uint64_t consumed_ = 0;  // see mark_consumed(); below tail_ means tail_
  uint64_t watermark_ = 1;
  bool is_device_ = false;
  bool consumer_ = false;
  std::chrono::nanoseconds spin_before_sleep_{std::chrono::microseconds(20)};
  RelaxedCounter wakeups_received_;
  RelaxedCounter sleeps_;
  BeforeArmHook before_arm_hook_ = nullptr;
  void* before_arm_context_ = nullptr;
};

}  // namespace sring
