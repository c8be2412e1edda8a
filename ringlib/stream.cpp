#include "sring/stream.hpp"

#include "sring/verify.hpp"

namespace sring {

Expected<uint64_t> StreamConsumer::consume_available() {
  // The seed is configuration: it changes only while the device is stopped.
  const uint32_t seed = load_relaxed(ring_.producer().pattern_seed);
  // Verified while the block is held; counted only once it is kept (under
  // overwrite-oldest a block taken back while we read it counts for nothing).
  return consumer_.consume_blocks(
      [&](const Block& block) {
        // Any layout: the block's own (from its header), values counted.
        corrupted_in_block_ = verify_ ? count_pattern_mismatches(block.payload().data(), block.layout(),
                                                                 block.first_sample(), block.frames(), seed)
                                      : 0;
        return true;
      },
      [&](const Block&) { consumer_.accounting().add_corrupted(corrupted_in_block_); }, Consumer::kAll);
}

}  // namespace sring
