#include "ringlib/stream.hpp"

#include "ringlib/verify.hpp"

namespace sring {

uint64_t StreamConsumer::corrupted_in(const sring_block_header& block) const {
  if (!verify_) return 0;
  // The seed is configuration: it changes only while the device is stopped.
  const uint32_t seed = load_relaxed(ring_.producer().pattern_seed);
  return count_pattern_mismatches(block_samples(&block), block.first_sample, block.sample_count,
                                  seed);
}

Expected<uint64_t> StreamConsumer::consume_available() {
  auto span = ring_.acquire();
  if (!span) return span.error();
  if (span->empty()) return uint64_t{0};
  if (load_relaxed(ring_.producer().overrun_policy) == SRING_OVERRUN_OVERWRITE_OLDEST) {
    return consume_one_by_one(*span);
  }
  return consume_batched(*span);
}

Expected<uint64_t> StreamConsumer::consume_batched(const BlockSpan& span) {
  BlockCursor cursor(span, ring_.max_block_bytes());
  uint64_t blocks = 0;
  for (;;) {
    auto block = cursor.next();
    if (!block) {
      ring_.release(cursor.position());  // keep what was good
      return block.error();
    }
    if (*block == nullptr) break;
    accounting_.on_block(**block);
    accounting_.add_corrupted(corrupted_in(**block));
    ++blocks;
  }
  // One release for the whole span: one store to the shared line per batch.
  ring_.release(span.end());
  return blocks;
}

Expected<uint64_t> StreamConsumer::consume_one_by_one(const BlockSpan& span) {
  BlockCursor cursor(span, ring_.max_block_bytes());
  uint64_t blocks = 0;
  for (;;) {
    auto block = cursor.next();
    if (!block) return block.error();
    if (*block == nullptr) break;
    // Copy the header first: the producer may overwrite the block under us.
    const sring_block_header header = **block;
    const uint64_t corrupted = corrupted_in(**block);
    const ReleaseResult released = ring_.release(cursor.position());
    if (released.overwritten()) {
      // Reclaimed while we read it: what we read may be torn. The gap shows
      // on the next block we keep. Re-acquire from the producer's tail.
      ++overwritten_while_read_;
      return blocks;
    }
    accounting_.on_block(header);
    accounting_.add_corrupted(corrupted);
    ++blocks;
  }
  return blocks;
}

}  // namespace sring
