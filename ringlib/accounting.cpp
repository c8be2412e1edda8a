#include "sring/accounting.hpp"

#include "sring/detail/barriers.hpp"

namespace sring {

void StreamCounters::merge(const StreamCounters& other) {
  blocks += other.blocks;
  samples += other.samples;
  bytes += other.bytes;
  gaps += other.gaps;
  lost_samples += other.lost_samples;
  lost_blocks += other.lost_blocks;
  flagged_lost_samples += other.flagged_lost_samples;
  overrun_blocks += other.overrun_blocks;
  unflagged_gaps += other.unflagged_gaps;
  out_of_order += other.out_of_order;
  corrupted_samples += other.corrupted_samples;
}

void StreamAccounting::on_block(const sring_block_header& block) {
  const bool flagged_gap = (block.flags & SRING_BLOCK_F_GAP) != 0;
  if (flagged_gap) counters_.flagged_lost_samples += block.lost_samples;
  if (block.flags & SRING_BLOCK_F_OVERRUN) ++counters_.overrun_blocks;

  if (next_sample_ && next_sequence_) {
    if (block.first_sample < *next_sample_ || block.sequence < *next_sequence_) {
      ++counters_.out_of_order;
    } else if (block.first_sample > *next_sample_ || block.sequence > *next_sequence_) {
      ++counters_.gaps;
      counters_.lost_samples += block.first_sample - *next_sample_;
      counters_.lost_blocks += block.sequence - *next_sequence_;
      if (!flagged_gap) ++counters_.unflagged_gaps;
    }
  }
  next_sequence_ = block.sequence + 1;
  next_sample_ = block.first_sample + block.sample_count;
  ++counters_.blocks;
  counters_.samples += block.sample_count;
  counters_.bytes += block.total_bytes;
}

EndOfStream StreamAccounting::finish(const sring_producer_page& producer) const {
  // Relaxed loads: the caller's load_acquire(state) that saw the device
  // stopped pairs with the producer's store_release(state) after its last
  // counter update, so these are the final values.
  return finish(load_relaxed(producer.blocks_produced), load_relaxed(producer.samples_produced),
                load_relaxed(producer.blocks_dropped), load_relaxed(producer.samples_dropped));
}

EndOfStream StreamAccounting::finish(uint64_t blocks_made, uint64_t samples_made, uint64_t blocks_dropped,
                                     uint64_t samples_dropped) const {
  const uint64_t next_sequence = next_sequence_.value_or(0);
  const uint64_t next_sample = next_sample_.value_or(0);
  EndOfStream end;
  end.missing_blocks = counters_.lost_blocks + (blocks_made > next_sequence ? blocks_made - next_sequence : 0);
  end.missing_samples = counters_.lost_samples + (samples_made > next_sample ? samples_made - next_sample : 0);
  end.dropped_blocks = blocks_dropped;
  end.dropped_samples = samples_dropped;
  return end;
}

}  // namespace sring
