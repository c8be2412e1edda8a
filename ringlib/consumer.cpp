#include "sring/consumer.hpp"

#include <algorithm>

namespace sring {

Expected<uint64_t> Consumer::consume_blocks(const std::function<bool(const Block&)>& f,
                                            const std::function<void(const Block&)>& kept,
                                            uint64_t max_blocks) {
  auto span = ring_.acquire();
  if (!span) return span.error();
  if (span->empty() || max_blocks == 0) return uint64_t{0};
  // Under overwrite-oldest every block is released (by CAS) before it
  // counts, so that one the producer took back while we read it is known.
  // Otherwise release in steps of an eighth of the ring: a consumer that
  // catches up after a stall gives space back while it works, and pays one
  // store to the shared line per step, not per block.
  const bool overwrite = load_relaxed(ring_.producer().overrun_policy) == SRING_OVERRUN_OVERWRITE_OLDEST;
  const uint64_t release_step = std::max<uint64_t>(ring_.ring_size() / 8, 1);

  // Everything delivered is released on every way out, an exception from f
  // included, so that a block is never delivered twice.
  struct ReleaseDelivered {
    Ring& ring;
    uint64_t delivered_to;
    uint64_t released_to;
    ~ReleaseDelivered() {
      if (delivered_to != released_to) ring.release(delivered_to);
    }
  } progress{ring_, span->begin, span->begin};

  BlockCursor cursor(*span, ring_.max_block_bytes());
  uint64_t delivered = 0;
  while (delivered < max_blocks) {
    const uint64_t position = cursor.position();
    auto block = cursor.next();
    if (!block) {
      // Check after use: a header that does not check out is the producer
      // rewriting a block it took back if the shared tail (which it moves by
      // CAS before it writes) has passed it; then acquire again from there.
      // Only a block it cannot have reclaimed is an error.
      if (overwrite && reclaimed(position)) {
        ++overwritten_while_read_;
        break;
      }
      return block.error();
    }
    if (*block == nullptr) break;
    // Only the validated copy from here on: under overwrite-oldest the
    // block may be rewritten under us, so nothing is read from its header
    // again and every sample read is bounded by the copy.
    const sring_block_header& header = cursor.header();
    const auto expected = accounting_.next_sample();
    const uint64_t lost = expected && header.first_sample > *expected ? header.first_sample - *expected : 0;
    const Block view(header, cursor.samples(), cursor.block_begin(), lost);
    const bool go_on = f(view);
    if (overwrite) {
      if (ring_.release(cursor.position()).overwritten()) {
        // Reclaimed while we read it: what f saw may be torn, and it does
        // not count. The gap shows on the next block we keep.
        ++overwritten_while_read_;
        progress.delivered_to = progress.released_to = ring_.tail();
        break;
      }
      progress.released_to = cursor.position();
    } else if (cursor.position() - progress.released_to >= release_step) {
      ring_.release(cursor.position());
      progress.released_to = cursor.position();
    }
    progress.delivered_to = cursor.position();
    accounting_.on_block(header);
    if (kept) kept(view);
    ++delivered;
    if (!go_on) break;
  }
  return delivered;
}

bool Consumer::reclaimed(uint64_t position) const {
  // The producer's tail in (position, head]: the block at position is gone.
  // Pairs with the producer's reclaiming CAS (shared_tail() loads acquire).
  const uint64_t shared = ring_.shared_tail();
  return shared - position - 1 < ring_.head() - position;
}

bool Consumer::end_of_stream() const {
  // State first (acquire: pairs with the producer's store-release of state
  // after its last head and counters), then head: nothing beyond that head
  // comes until the next start.
  if (ring_.state() == SRING_STATE_RUNNING) return false;
  return ring_.head() == ring_.tail();
}

ProducerCounters Consumer::producer_counters() const {
  const auto& p = ring_.producer();
  ProducerCounters c;
  c.state = ring_.state();
  c.head = ring_.head();
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

}  // namespace sring
