// Gap and overrun accounting from the block stream itself: sequence numbers
// and sample indices say exactly what was lost, the in-band GAP flag says
// what the producer knew it lost. Single-threaded: feed it blocks in order.
#pragma once

#include <cstdint>
#include <optional>

#include "sring/sring_abi.h"

namespace sring {

struct StreamCounters {
  uint64_t blocks = 0;
  uint64_t samples = 0;
  uint64_t bytes = 0;                 // block bytes, headers included
  uint64_t gaps = 0;                  // discontinuities in the sample index
  uint64_t lost_samples = 0;          // samples missing between blocks seen
  uint64_t lost_blocks = 0;           // sequence numbers missing
  uint64_t flagged_lost_samples = 0;  // sum of lost_samples of F_GAP blocks
  uint64_t overrun_blocks = 0;        // blocks flagged F_OVERRUN
  uint64_t unflagged_gaps = 0;        // gaps with no F_GAP (overwritten blocks)
  uint64_t out_of_order = 0;          // a block behind the last (reset or corrupt)
  uint64_t corrupted_samples = 0;     // samples that are not the pattern

  void merge(const StreamCounters& other);
};

// What a consumer is missing at the end of a stream against what the
// producer says it lost (docs/abi.md, "End of stream").
struct EndOfStream {
  uint64_t missing_blocks = 0;   // sequence jumps + blocks after the last one seen
  uint64_t missing_samples = 0;  // first_sample jumps + samples after the last one seen
  uint64_t dropped_blocks = 0;   // the producer's final blocks_dropped
  uint64_t dropped_samples = 0;  // the producer's final samples_dropped
  // The contract: every sample delivered or counted as lost, exactly.
  bool exact() const {
    return missing_blocks == dropped_blocks && missing_samples == dropped_samples;
  }
};

class StreamAccounting {
 public:
  // Where the stream is expected to begin: a consumer that started the device
  // expects sequence 0, sample 0, so even a loss before its first block counts.
  // Without it, the first block seen sets the baseline.
  void expect_start(uint64_t sequence, uint64_t first_sample) {
    next_sequence_ = sequence;
    next_sample_ = first_sample;
  }

  void on_block(const sring_block_header& block);
  void add_corrupted(uint64_t samples) { counters_.corrupted_samples += samples; }

  const StreamCounters& counters() const { return counters_; }
  std::optional<uint64_t> next_sample() const { return next_sample_; }
  std::optional<uint64_t> next_sequence() const { return next_sequence_; }

  // The end-of-stream rule. Call it once the ring's state was loaded (with
  // acquire) as not running and every block up to the head loaded after that
  // was fed here and released: then the producer's counters are final, and
  // blocks_produced/samples_produced are the sequence/first sample the next
  // block would have had, so whatever lies between our last block and them
  // was lost after it. Assumes the stream began where expect_start() said
  // (or at the first block seen).
  [[nodiscard]] EndOfStream finish(const sring_producer_page& producer) const;
  // The same rule with final counters that came from elsewhere (a
  // publisher's end-of-stream message over the network, <sring/net.hpp>).
  [[nodiscard]] EndOfStream finish(uint64_t blocks_produced, uint64_t samples_produced,
                                   uint64_t blocks_dropped, uint64_t samples_dropped) const;

 private:
  StreamCounters counters_;
  std::optional<uint64_t> next_sequence_;
  std::optional<uint64_t> next_sample_;
};

}  // namespace sring
