// Processing in place: hand every block to user code, release as it goes,
// handle each overrun policy, and keep the exact loss accounting of
// docs/abi.md. The shape of libbpf's ring_buffer__consume():
//
//   sring::Consumer consumer(ring);
//   auto n = consumer.consume([&](const sring::Block& block) {
//     for (int16_t s : block.as<int16_t>()) sum += s;   // in place, no copy
//   });
//
// A Block is valid only inside the callback: the block is released after it
// returns. Under overwrite-oldest the producer may take a block back while
// the callback reads it; the release then says so, the block is not counted
// as delivered (overwritten_while_read()), and its samples may have been
// torn: copy them first if that matters more than speed.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <type_traits>

#include "sring/accounting.hpp"
#include "sring/ring.hpp"

namespace sring {

class Block {
 public:
  Block(const sring_block_header& header, const uint16_t* samples, uint64_t position,
        uint64_t lost_before)
      : header_(header), samples_(samples), position_(position), lost_before_(lost_before) {}

  // The validated copy of the header: it cannot change under the caller.
  const sring_block_header& header() const { return header_; }
  uint64_t sequence() const { return header_.sequence; }
  uint64_t first_sample() const { return header_.first_sample; }
  uint64_t timestamp_ns() const { return header_.timestamp_ns; }
  uint32_t flags() const { return header_.flags; }
  // Ring position of the block's header.
  uint64_t position() const { return position_; }
  // Samples missing right before this block (the loss rule: a jump in
  // first_sample, whether the producer dropped them or took them back).
  uint64_t lost_before() const { return lost_before_; }

  // The samples, in place in the ring, as stored (16 bits each).
  std::span<const uint16_t> samples() const { return {samples_, header_.sample_count}; }
  // The same memory as signed samples (SRING_FMT_S16) or unsigned ones.
  template <typename T>
  std::span<const T> as() const {
    static_assert(std::is_same_v<T, int16_t> || std::is_same_v<T, uint16_t>,
                  "sring samples are 16-bit: as<int16_t>() or as<uint16_t>()");
    return {reinterpret_cast<const T*>(samples_), header_.sample_count};
  }

 private:
  sring_block_header header_;
  const uint16_t* samples_;
  uint64_t position_;
  uint64_t lost_before_;
};

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

class StreamConsumer;

class Consumer {
 public:
  static constexpr uint64_t kAll = std::numeric_limits<uint64_t>::max();

  // The stream is taken from the ring's tail on. A consumer that started
  // (or reset) the device itself says where the stream begins with
  // expect_start(0, 0), so that a loss before the first block counts too.
  explicit Consumer(Ring& ring) : ring_(ring) {}
  void expect_start(uint64_t sequence, uint64_t first_sample) {
    accounting_.expect_start(sequence, first_sample);
  }

  // Hands the blocks available now (one look at head: a producer that
  // keeps adding does not keep it here), oldest first, to f(const Block&),
  // at most max_blocks of them, releasing as it goes. f may return bool:
  // false stops after that block (it counts as delivered). Returns the
  // number of blocks delivered (0: none available now) or a ring error. If
  // f throws, the blocks before are released and delivered, the one that
  // threw is not, and the exception propagates.
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

  // The end-of-stream rule of docs/abi.md: the device is not running (state
  // loaded with acquire) and everything up to the head loaded after it has
  // been consumed. Then finish() is final.
  [[nodiscard]] bool end_of_stream() const;
  // The accounting against the producer's counters: exact() at the end of a
  // stream means every sample was delivered or counted as lost.
  [[nodiscard]] EndOfStream finish() const { return accounting_.finish(ring_.producer()); }

  [[nodiscard]] ProducerCounters producer_counters() const;
  const StreamCounters& counters() const { return accounting_.counters(); }
  StreamAccounting& accounting() { return accounting_; }
  // Blocks read and then found overwritten (overwrite-oldest only).
  uint64_t overwritten_while_read() const { return overwritten_while_read_; }

 private:
  friend class StreamConsumer;
  // kept(block) runs once a block counts as delivered (after its release
  // under overwrite-oldest): StreamConsumer adds its verification there.
  Expected<uint64_t> consume_blocks(const std::function<bool(const Block&)>& f,
                                    const std::function<void(const Block&)>& kept,
                                    uint64_t max_blocks);
  bool reclaimed(uint64_t position) const;

  Ring& ring_;
  StreamAccounting accounting_;
  uint64_t overwritten_while_read_ = 0;
};

}  // namespace sring
