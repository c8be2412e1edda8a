// The single-threaded consume loop most applications want: take every block
// available, verify its samples in place against the pattern, account for
// gaps, release. Handles the overwrite-oldest policy by releasing block by
// block and discarding any block the producer took back while we read it.
#pragma once

#include <cstdint>

#include "ringlib/accounting.hpp"
#include "ringlib/ring.hpp"

namespace sring {

class StreamConsumer {
 public:
  StreamConsumer(Ring& ring, bool verify) : ring_(ring), verify_(verify) {}

  // Processes every block available now and releases it. Returns the number
  // of blocks processed (0: none available) or a ring error.
  Expected<uint64_t> consume_available();

  StreamAccounting& accounting() { return accounting_; }
  const StreamCounters& counters() const { return accounting_.counters(); }
  // Blocks read and then found overwritten (overwrite-oldest only).
  uint64_t overwritten_while_read() const { return overwritten_while_read_; }

 private:
  Expected<uint64_t> consume_batched(const BlockSpan& span);
  Expected<uint64_t> consume_one_by_one(const BlockSpan& span);
  uint64_t count_corrupted(const uint16_t* samples, const sring_block_header& header) const;
  bool reclaimed(uint64_t position) const;

  Ring& ring_;
  bool verify_;
  StreamAccounting accounting_;
  uint64_t overwritten_while_read_ = 0;
};

}  // namespace sring
