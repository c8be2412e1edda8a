#include "sring/consumer.hpp"

#include <algorithm>

#include "ringlib/error_format.hpp"

namespace sring {
namespace {

// Ring positions are free-running: a before b within half the 64-bit space.
bool before(uint64_t a, uint64_t b) { return static_cast<int64_t>(a - b) < 0; }

}  // namespace

Consumer::Consumer(Ring& ring)
    : ring_(ring),
      handed_to_(ring.tail()),
      done_to_(ring.tail()),
      release_step_(std::min(kDefaultReleaseStep, ring.ring_size() / 8)) {
  // A relaxed load is enough: a producer that starts meanwhile starts this
  // same stream at sample 0.
  if (load_relaxed(ring.producer().blocks_produced) == 0) accounting_.expect_start(0, 0);
}

bool Consumer::overwrite() const {
  // Configuration: it changes only while the device is stopped.
  return load_relaxed(ring_.producer().overrun_policy) == SRING_OVERRUN_OVERWRITE_OLDEST;
}

void Consumer::catch_up_with_tail() {
  // Only overwrite-oldest moves the tail past what we handed out: the
  // producer took those blocks back. Held blocks stay held (done() counts
  // them as overwritten, so the caller's done(count) still means its own
  // blocks); what was not handed out yet is skipped.
  const uint64_t tail = ring_.tail();
  if (held_.empty() && before(done_to_, tail)) done_to_ = tail;
  if (before(handed_to_, tail)) {
    handed_to_ = tail;
    cursor_.reset();
  }
}

Status Consumer::refill() {
  auto span = ring_.acquire();
  if (!span) return span.error();
  catch_up_with_tail();
  // The span starts at the released tail; blocks up to handed_to_ were
  // handed out already (held, or done and not yet released).
  const uint64_t skip = handed_to_ - span->begin;
  if (skip >= span->bytes) {
    cursor_.reset();
    return ok();
  }
  cursor_.emplace(BlockSpan{span->data + skip, handed_to_, span->bytes - skip}, ring_.max_block_bytes());
  return ok();
}

Expected<std::optional<Block>> Consumer::take() {
  if (!cursor_) return std::optional<Block>{};
  const uint64_t position = cursor_->position();
  auto block = cursor_->next();
  if (!block) {
    cursor_.reset();
    // Check after use: a header that does not check out is the producer
    // rewriting a block it took back if the shared tail (which it moves by
    // CAS before it writes) has passed it; then acquire again from there.
    // Only a block it cannot have reclaimed is an error.
    if (overwrite() && reclaimed(position)) {
      ++overwritten_while_read_;
      return std::optional<Block>{};
    }
    return block.error();
  }
  if (*block == nullptr) {
    cursor_.reset();
    return std::optional<Block>{};
  }
  // Only the validated copy from here on: under overwrite-oldest the block
  // may be rewritten under us, so nothing is read from its header again and
  // every sample read is bounded by the copy.
  const sring_block_header& header = cursor_->header();
  // The loss rule against the block before: the last one held, or the last
  // one counted.
  std::optional<uint64_t> expected = accounting_.next_sample();
  if (!held_.empty()) expected = held_.back().first_sample() + held_.back().header().sample_count;
  const uint64_t lost = expected && header.first_sample > *expected ? header.first_sample - *expected : 0;
  held_.emplace_back(header, cursor_->payload(), cursor_->block_begin(), lost);
  handed_to_ = cursor_->position();
  return std::optional<Block>{held_.back()};
}

Expected<std::optional<Block>> Consumer::next() {
  auto block = take();
  if (!block || *block) return block;
  // Nothing left from the last look at head: look again.
  if (auto refilled = refill(); !refilled) return refilled.error();
  return take();
}

Expected<uint64_t> Consumer::done(uint64_t count) {
  if (count > held_.size()) {
    return make_error(EINVAL, "done({}) with {} block(s) handed out and not done", count, held_.size());
  }
  if (count == 0) return uint64_t{0};
  uint64_t counted = 0;
  if (overwrite()) {
    // Released at once (by CAS), before it counts, so that a block the
    // producer took back while it was read is known. A block below the tail
    // we had already was taken back earlier (we never released it);
    // one below overwritten_below, during this release.
    const uint64_t tail_before = ring_.tail();
    const uint64_t end = held_[count - 1].end_position();
    ReleaseResult release;
    if (before(tail_before, end)) {
      auto released = ring_.release(end);
      if (!released) return released.error();  // cannot happen: handed out from what was acquired
      release = *released;
    }
    for (uint64_t i = 0; i < count; ++i) {
      const Block& block = held_.front();
      if (before(block.position(), tail_before) ||
          (release.overwritten() && before(block.position(), release.overwritten_below))) {
        ++overwritten_while_read_;  // what was read may be torn: it does not count
      } else {
        accounting_.on_block(block.header());
        ++counted;
      }
      done_to_ = block.end_position();
      held_.pop_front();
    }
    catch_up_with_tail();
    return counted;
  }
  for (uint64_t i = 0; i < count; ++i) {
    accounting_.on_block(held_.front().header());
    done_to_ = held_.front().end_position();
    held_.pop_front();
  }
  // Give the space back now (by default every block of 64 KiB or more): a
  // consumer preempted inside its next callback must not sit on space it
  // has finished with, or the producer drops while a copying consumer with
  // the same memory would not (tests/stall_test.cpp).
  if (!before(done_to_, ring_.tail() + release_step_)) flush();
  return count;
}

void Consumer::flush() {
  const uint64_t tail = ring_.tail();
  uint64_t to = done_to_;
  // A hold at or behind the tail releases nothing more (never a wrapped
  // "far ahead" hold that lets everything go).
  if (hold_from_ && !overwrite() && before(*hold_from_, to)) to = before(tail, *hold_from_) ? *hold_from_ : tail;
  // Not overwrite-oldest here (done() released those); within what was
  // acquired, since done_to_ ends a block handed out from it.
  if (before(tail, to)) (void)ring_.release(to);
  ring_.mark_consumed(handed_to_);
}

void Consumer::give_back() {
  held_.clear();
  handed_to_ = done_to_;
  cursor_.reset();
}

Expected<bool> Consumer::wait(WaitStrategy strategy, std::chrono::nanoseconds timeout) {
  flush();
  return ring_.wait(strategy, timeout);
}

Expected<uint64_t> Consumer::consume_blocks(const std::function<bool(const Block&)>& f,
                                            const std::function<void(const Block&)>& kept,
                                            uint64_t max_blocks) {
  if (!held_.empty()) {
    return make_error(EBUSY, "consume() with {} block(s) still held from next()", held_.size());
  }
  if (max_blocks == 0) return uint64_t{0};
  if (auto refilled = refill(); !refilled) return refilled.error();
  // Everything done is released on every way out, an exception from f
  // included, and the block f threw on is given again next time.
  struct OnExit {
    Consumer& consumer;
    ~OnExit() {
      consumer.give_back();
      consumer.flush();
    }
  } on_exit{*this};

  uint64_t delivered = 0;
  while (delivered < max_blocks) {
    auto block = take();
    if (!block) return block.error();
    if (!*block) break;
    const bool go_on = f(**block);
    auto counted = done(1);
    if (!counted) return counted.error();
    if (*counted == 0) break;  // taken back while f read it: it does not count
    if (kept) kept(**block);
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
  return held_.empty() && ring_.head() == std::max(done_to_, ring_.tail());
}

ProducerCounters Consumer::producer_counters() const { return ring_.producer_counters(); }

Counters Consumer::snapshot() const {
  // End of stream first: then the producer counters loaded after it are final.
  const bool over = end_of_stream();
  const auto producer = producer_counters();
  const auto& given = accounting_.counters();
  Counters c;
  c.blocks = given.blocks;
  c.samples = given.samples;
  c.missing_blocks = given.lost_blocks;
  c.missing_samples = given.lost_samples;
  c.blocks_produced = producer.blocks_produced;
  c.samples_produced = producer.samples_produced;
  c.blocks_dropped = producer.blocks_dropped;
  c.samples_dropped = producer.samples_dropped;
  c.overwritten_while_read = overwritten_while_read_;
  c.state = producer.state;
  c.end_of_stream = over;
  if (over) {
    const auto end = finish();
    c.missing_blocks = end.missing_blocks;
    c.missing_samples = end.missing_samples;
    c.exact = end.exact();
  }
  return c;
}

BlockRange Consumer::blocks(WaitStrategy strategy) { return BlockRange(*this, strategy); }

BlockRange::BlockRange(Consumer& consumer, WaitStrategy strategy) : consumer_(consumer), strategy_(strategy) {
  if (consumer_.range_open_) throw ExpectedAccessError(make_error(EBUSY, "a second blocks() range on one consumer"));
  consumer_.range_open_ = true;
}

BlockRange::~BlockRange() {
  // The block in hand when the loop was left (break, exception) was not
  // finished with: it is given again, like consume()'s.
  consumer_.give_back();
  consumer_.flush();
  consumer_.range_open_ = false;
}

void BlockRange::advance() {
  if (current_) {
    current_.reset();
    (void)consumer_.done(1).value();  // one block is held: done(1) cannot fail
  }
  fetch();
}

void BlockRange::fetch() {
  for (;;) {
    auto block = consumer_.next();
    if (*block) {  // value() throws ExpectedAccessError on a ring error
      current_ = **block;
      return;
    }
    if (consumer_.end_of_stream()) return;
    (void)consumer_.wait(strategy_, kWaitForever).value();
  }
}

}  // namespace sring
