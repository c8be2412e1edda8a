#include "ringlib/stream.hpp"

#include "ringlib/verify.hpp"

namespace sring {

uint64_t StreamConsumer::count_corrupted(const uint16_t* samples, const sring_block_header& header) const {
  if (!verify_) return 0;
  // The seed is configuration: it changes only while the device is stopped.
  const uint32_t seed = load_relaxed(ring_.producer().pattern_seed);
  return count_pattern_mismatches(samples, header.first_sample, header.sample_count, seed);
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
    accounting_.on_block(cursor.header());
    accounting_.add_corrupted(count_corrupted(cursor.samples(), cursor.header()));
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
    const uint64_t position = cursor.position();
    auto block = cursor.next();
    if (!block) {
      // Check after use: a header that does not check out is the producer
      // rewriting a block it took back if the shared tail (which it moves by
      // CAS before it writes) has passed it; then acquire again from there.
      // Only a block it cannot have reclaimed is an error.
      if (reclaimed(position)) {
        ++overwritten_while_read_;
        return blocks;
      }
      return block.error();
    }
    if (*block == nullptr) break;
    // Only the validated copy: the block may be rewritten under us, so
    // nothing is read from its header again and every sample read is
    // bounded by the copy.
    const sring_block_header header = cursor.header();
    const uint64_t corrupted = count_corrupted(cursor.samples(), header);
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

bool StreamConsumer::reclaimed(uint64_t position) const {
  // The producer's tail in (position, head]: the block at position is gone.
  // Pairs with the producer's reclaiming CAS (shared_tail() loads acquire).
  const uint64_t shared = ring_.shared_tail();
  return shared - position - 1 < ring_.head() - position;
}

}  // namespace sring
