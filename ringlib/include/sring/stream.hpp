// The single-threaded consume loop of the tools and tests: every block
// available, its samples verified in place against the pattern (in the
// block's own format and channels; corrupted_samples counts wrong values,
// a complex sample being two), gaps accounted, released. A Consumer (consumer.hpp) underneath handles the
// overrun policies; this adds the verification.
#pragma once

#include <cstdint>

#include "sring/accounting.hpp"
#include "sring/consumer.hpp"
#include "sring/ring.hpp"

namespace sring {

class StreamConsumer {
 public:
  StreamConsumer(Ring& ring, bool verify) : ring_(ring), consumer_(ring), verify_(verify) {}

  // Processes every block available now and releases it. Returns the number
  // of blocks processed (0: none available) or a ring error.
  [[nodiscard]] Expected<uint64_t> consume_available();

  StreamAccounting& accounting() { return consumer_.accounting(); }
  const StreamCounters& counters() const { return consumer_.counters(); }
  // Blocks read and then found overwritten (overwrite-oldest only).
  uint64_t overwritten_while_read() const { return consumer_.overwritten_while_read(); }

 private:
  Ring& ring_;
  Consumer consumer_;
  bool verify_;
  uint64_t corrupted_in_block_ = 0;
};

}  // namespace sring
