// Processing in place: hand every block to user code, release as it goes,
// handle each overrun policy, and keep the exact loss accounting of
// docs/abi.md. The shape of libbpf's ring_buffer__consume():
//
//   sring::Consumer consumer(ring);
//   auto n = consumer.consume([&](const sring::Block& block) {
//     for (int16_t s : block.as<int16_t>()) sum += s;   // in place, no copy (an s16 ring)
//   });
//
// or, waiting until the end of the stream:
//
//   for (const sring::Block& block : consumer.blocks()) { ... }
//
// A Block is valid only inside the callback: the block is released after it
// returns. Under overwrite-oldest the producer may take a block back while
// the callback reads it; the release then says so, the block is not counted
// as delivered (overwritten_while_read()), and its samples may have been
// torn: copy them first if that matters more than speed.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <span>
#include <type_traits>

#include "sring/accounting.hpp"
#include "sring/format.hpp"
#include "sring/ring.hpp"

namespace sring {

class Block {
 public:
  Block(const sring_block_header& header, const std::byte* payload, uint64_t position, uint64_t lost_before)
      : header_(header),
        layout_(SampleLayout::from_header(header)),
        payload_(payload),
        position_(position),
        lost_before_(lost_before) {}

  // The validated copy of the header: it cannot change under the caller.
  const sring_block_header& header() const { return header_; }
  uint64_t sequence() const { return header_.sequence; }
  // Index of the block's first frame since the reset (a frame is one
  // sample of each channel: docs/abi.md, "Sample formats").
  uint64_t first_sample() const { return header_.first_sample; }
  uint64_t timestamp_ns() const { return header_.timestamp_ns; }
  uint32_t flags() const { return header_.flags; }
  // Ring position of the block's header, and just after the block.
  uint64_t position() const { return position_; }
  uint64_t end_position() const { return position_ + header_.total_bytes; }
  // Samples (frames) missing right before this block (the loss rule: a
  // jump in first_sample, whether the producer dropped them or took them back).
  uint64_t lost_before() const { return lost_before_; }

  // Format, channels and bits per sample, and the frames in this block.
  const SampleLayout& layout() const { return layout_; }
  uint32_t format() const { return layout_.format; }
  uint32_t channels() const { return layout_.channels; }
  uint64_t frames() const { return header_.sample_count; }
  // The samples' bytes, in place in the ring, in any format (a device's
  // own included): layout().payload_bytes(frames()) of them.
  std::span<const std::byte> payload() const { return {payload_, layout_.payload_bytes(frames())}; }
  // The samples in place as the block's own type: frames() * channels()
  // values, frame by frame (sring/format.hpp has the types). A T that is
  // not the block's format throws FormatMismatch: for (int16_t s :
  // block.as<int16_t>()) on an s16 block; on a u16 block it throws.
  template <typename T>
  std::span<const T> as() const {
    return typed_view<T>(payload_, frames(), layout_);
  }
  // The 16-bit values of a u16 or s16 block as stored, what samples()
  // always was (ABI 1.0 had only those); any other format throws
  // FormatMismatch.
  std::span<const uint16_t> samples() const { return raw16_view(payload_, frames(), layout_); }

 private:
  sring_block_header header_;
  SampleLayout layout_;
  const std::byte* payload_;
  uint64_t position_;
  uint64_t lost_before_;
};

// A stream's accounting in one snapshot: what this consumer was given, what
// is missing, and what the producer says it made and dropped. The C API's
// struct sring_counters and the Python binding's counters() are this.
struct Counters {
  uint64_t blocks = 0;   // given and kept
  uint64_t samples = 0;
  // Missing between the blocks given (the loss rule); at the end of the
  // stream also after the last one given.
  uint64_t missing_blocks = 0;
  uint64_t missing_samples = 0;
  uint64_t blocks_produced = 0;
  uint64_t samples_produced = 0;
  uint64_t blocks_dropped = 0;
  uint64_t samples_dropped = 0;
  uint64_t overwritten_while_read = 0;  // read, then taken back: not given
  uint32_t state = 0;                   // enum sring_state
  bool end_of_stream = false;           // then the figures are final
  bool exact = false;                   // at the end: missing == dropped, exactly
};

class StreamConsumer;
class BlockRange;

class Consumer {
 public:
  static constexpr uint64_t kAll = std::numeric_limits<uint64_t>::max();

  // The stream is taken from the ring's tail on. If the producer has made
  // nothing yet (a fresh or reset ring), the stream is known to begin at
  // sequence 0, sample 0, so a loss before the first block counts too;
  // otherwise (attached mid-stream) the first block seen sets the baseline,
  // and expect_start() can say where the stream began.
  explicit Consumer(Ring& ring);
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;
  void expect_start(uint64_t sequence, uint64_t first_sample) {
    accounting_.expect_start(sequence, first_sample);
  }

  // Hands the blocks available now (one look at head: a producer that
  // keeps adding does not keep it here), oldest first, to f(const Block&),
  // at most max_blocks of them, releasing as it goes. f may return bool:
  // false stops after that block (it counts as delivered). Returns the
  // number of blocks delivered (0: none available now) or a ring error. If
  // f throws, the blocks before are released and delivered, the one that
  // threw is not (the next call gives it again), and the exception
  // propagates.
  template <typename F>
  [[nodiscard]] Expected<uint64_t> consume(F&& f, uint64_t max_blocks = kAll) {
    static_assert(std::is_invocable_v<F&, const Block&>, "consume(f): f(const sring::Block&)");
    if constexpr (std::is_same_v<std::invoke_result_t<F&, const Block&>, bool>) {
      return consume_blocks(std::function<bool(const Block&)>(std::ref(f)), nullptr, max_blocks);
    } else {
      return consume_blocks(
          [&f](const Block& block) {
            f(block);
            return true;
          },
          nullptr, max_blocks);
    }
  }

  // Every block of the stream as a range, waiting when the ring is empty,
  // until the end of the stream (the device stopped and everything it made
  // was given):
  //
  //   for (const sring::Block& block : consumer.blocks()) { ... }
  //   auto end = consumer.finish();   // exact() if nothing went missing
  //
  // A block is valid until the loop moves on; it counts as delivered then.
  // A ring error or a failed wait throws ExpectedAccessError (a
  // std::system_error). Only one range at a time, and not mixed with
  // consume() or next() while it runs.
  [[nodiscard]] BlockRange blocks(WaitStrategy strategy = WaitStrategy::kEventfd);

  // --- pull style: what blocks() and the Python binding are built on ---
  // The next block available now, or nullopt if there is none; it stays
  // held (not released) until done() covers it. Several may be held; they
  // are done oldest first.
  [[nodiscard]] Expected<std::optional<Block>> next();
  // The oldest `count` blocks handed out by next() are finished with: they
  // count as delivered and may be released. Under overwrite-oldest they are
  // released at once and a block the producer took back meanwhile does not
  // count (its contents may be torn). Returns how many counted; done()
  // beyond what was handed out is EINVAL.
  [[nodiscard]] Expected<uint64_t> done(uint64_t count = 1);
  // Releases what is done. wait() and consume() do it themselves, and done()
  // releases as soon as `release_step()` bytes are done and unreleased.
  void flush();
  // How much done() lets accumulate before it gives the space back. Space
  // held back here is buffering the producer cannot use: with the default,
  // kDefaultReleaseStep, blocks of 64 KiB and more go back one by one as
  // they are done, so a consumer preempted inside its callback holds only
  // the block in hand and survives every burst a copying consumer with the
  // same memory survives (tests/stall_test.cpp); smaller blocks go back in
  // runs of 64 KiB, so the producer's look at the tail misses its cache
  // once per 64 KiB, not once per block (with 4 KiB blocks the runs cost
  // no more than the old eighth of the ring: docs/bench/rates-candidates-4k.txt).
  // A ring under 512 KiB uses an eighth of itself.
  // 0 releases every block; the step is capped at half the ring, so that
  // next()/done() alone never starve the producer.
  static constexpr uint64_t kDefaultReleaseStep = 64 * 1024;
  void set_release_step(uint64_t bytes) { release_step_ = std::min(bytes, ring_.ring_size() / 2); }
  uint64_t release_step() const { return release_step_; }
  // Never release at or beyond position (a block whose memory user code
  // still reads after done(), like a numpy view in the Python binding);
  // nullopt lifts it. Overwrite-oldest ignores it: the producer takes its
  // blocks back regardless. done() blocks still count as delivered.
  void hold_from(std::optional<uint64_t> position) { hold_from_ = position; }
  // Releases what is done, then waits for blocks beyond those handed out
  // (Ring::wait()'s result: true when there is data).
  [[nodiscard]] Expected<bool> wait(WaitStrategy strategy, std::chrono::nanoseconds timeout);

  // The end-of-stream rule of docs/abi.md: the device is not running (state
  // loaded with acquire) and every block up to the head loaded after it has
  // been handed out and done. Then finish() is final.
  [[nodiscard]] bool end_of_stream() const;
  // The accounting against the producer's counters: exact() at the end of a
  // stream means every sample was delivered or counted as lost.
  [[nodiscard]] EndOfStream finish() const { return accounting_.finish(ring_.producer()); }

  [[nodiscard]] ProducerCounters producer_counters() const;
  // The whole accounting, final once end_of_stream().
  [[nodiscard]] Counters snapshot() const;
  const StreamCounters& counters() const { return accounting_.counters(); }
  StreamAccounting& accounting() { return accounting_; }
  // Blocks read and then found overwritten (overwrite-oldest only).
  uint64_t overwritten_while_read() const { return overwritten_while_read_; }
  Ring& ring() { return ring_; }
  // Blocks handed out by next() and not yet done(), oldest first: the C
  // API's batch mode gives them again from here.
  uint64_t held() const { return held_.size(); }
  const Block& held_block(uint64_t index) const { return held_[index]; }

 private:
  friend class StreamConsumer;
  // kept(block) runs once a block counts as delivered (after its release
  // under overwrite-oldest): StreamConsumer adds its verification there.
  Expected<uint64_t> consume_blocks(const std::function<bool(const Block&)>& f,
                                    const std::function<void(const Block&)>& kept,
                                    uint64_t max_blocks);
  // Looks at head once: the cursor then runs over the blocks not yet handed out.
  Status refill();
  // The next block from the cursor, without looking at head again.
  Expected<std::optional<Block>> take();
  // Forgets the blocks handed out but not done: the next take gives them again.
  void give_back();
  // After the producer reclaimed (overwrite-oldest): what we held below the
  // new tail is gone.
  void catch_up_with_tail();
  bool overwrite() const;
  bool reclaimed(uint64_t position) const;

  Ring& ring_;
  StreamAccounting accounting_;
  std::optional<BlockCursor> cursor_;  // over [handed_to_, head at the last refill)
  std::deque<Block> held_;             // handed out, not done, oldest first
  uint64_t handed_to_;                 // just after the last block handed out
  uint64_t done_to_;                   // just after the last block done
  std::optional<uint64_t> hold_from_;
  uint64_t release_step_;
  uint64_t overwritten_while_read_ = 0;
  bool range_open_ = false;
  friend class BlockRange;
};

// consumer.blocks(): an input range over the stream.
class BlockRange {
 public:
  class iterator {
   public:
    using value_type = Block;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    const Block& operator*() const { return *range_->current_; }
    const Block* operator->() const { return &*range_->current_; }
    iterator& operator++() {
      range_->advance();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return range_ == nullptr || !range_->current_; }

   private:
    friend class BlockRange;
    explicit iterator(BlockRange* range) : range_(range) {}
    BlockRange* range_ = nullptr;
  };

  BlockRange(Consumer& consumer, WaitStrategy strategy);
  BlockRange(const BlockRange&) = delete;
  BlockRange& operator=(const BlockRange&) = delete;
  ~BlockRange();

  // begin() fetches the first block (waiting for it): call it once.
  iterator begin() {
    if (!started_) {
      started_ = true;
      fetch();
    }
    return iterator(this);
  }
  std::default_sentinel_t end() const { return {}; }

 private:
  void advance();  // the current block is done; fetch the next
  void fetch();    // the next block, waiting; none at the end of the stream

  Consumer& consumer_;
  WaitStrategy strategy_;
  std::optional<Block> current_;
  bool started_ = false;
};

}  // namespace sring
