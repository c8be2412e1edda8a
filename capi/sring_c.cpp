// libsring: the C API (capi/include/sring/sring.h) over ringlib's Ring,
// Device and Consumer. No exception crosses into C: every entry point
// returns a negative errno and leaves a sentence in last_error.
#include "sring/sring.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "sring/consumer.hpp"
#include "sring/device.hpp"
#include "sring/ring.hpp"

struct sring_consumer {
  std::optional<sring::Device> device;  // a kernel device: control
  std::optional<sring::Ring> ring;      // the data path
  std::optional<sring::Consumer> consumer;
  bool has_eventfd = false;
  std::string last_error;

  // Batch mode: what the last sring_peek() gave, from peeked[first_held] on
  // still held (not released). The header copies are kept here, not read
  // back from the caller's array: what is accounted is what was validated.
  struct Peeked {
    sring_block_header header;
    const uint16_t* samples;
    uint64_t lost_before;
    uint64_t begin;  // ring position of the block
    uint64_t end;    // ring position after it: the tail once it is released
  };
  std::vector<Peeked> peeked;
  size_t first_held = 0;
  // Blocks released in batch mode but found taken back by the producer
  // (only if its policy became overwrite-oldest while they were held).
  uint64_t batch_overwritten = 0;

  uint64_t held() const { return peeked.size() - first_held; }
  int busy_if_held(const char* call) {
    if (held() == 0) return 0;
    return fail({EBUSY, std::string(call) + ": " + std::to_string(held()) +
                            " blocks from sring_peek() are still held; sring_release() them first"});
  }

  int fail(const sring::Error& error) {
    last_error = error.message;
    return -(error.code ? error.code : EIO);
  }
  // A Consumer over the ring as it is now. If the producer has made
  // nothing yet (a fresh or reset ring), this consumer sees the stream from
  // its start, so a loss before its first block counts too; otherwise it
  // counts from the first block it sees (docs/abi.md, "End of stream").
  void new_consumer() {
    consumer.emplace(*ring);
    if (sring::load_relaxed(ring->producer().blocks_produced) == 0) consumer->expect_start(0, 0);
  }
};

namespace {

thread_local std::string g_open_error;

int attach_device_ring(sring_consumer& s) {
  auto ring = s.device->attach();
  if (!ring) return s.fail(ring.error());
  s.ring.emplace(std::move(*ring));
  if (auto efd = s.ring->enable_eventfd(); !efd) return s.fail(efd.error());
  s.has_eventfd = true;
  s.new_consumer();
  return 0;
}

// A control call: only a device has them (a ring file's producer is
// controlled through its own socket).
template <typename Call>
int device_call(struct sring_consumer* ring, const char* done_by_producer, Call call) {
  if (!ring) return -EINVAL;
  if (!ring->device) {
    return ring->fail({EOPNOTSUPP, std::string("a ring file is ") + done_by_producer + " by its producer"});
  }
  if (auto done = call(*ring->device); !done) return ring->fail(done.error());
  return 0;
}

}  // namespace

extern "C" {

int sring_open(const char* path, struct sring_consumer** out) {
  if (!path || !out) return -EINVAL;
  auto s = std::make_unique<sring_consumer>();
  auto device = sring::Device::open(path);
  if (!device) {
    g_open_error = device.error().message;
    return -device.error().code;
  }
  s->device.emplace(std::move(*device));
  if (const int ret = attach_device_ring(*s); ret < 0) {
    g_open_error = s->last_error;
    return ret;
  }
  *out = s.release();  // owned by the caller until sring_close()
  return 0;
}

int sring_attach_fd(int ring_fd, int event_fd, struct sring_consumer** out) {
  sring::UniqueFd owned_ring(ring_fd), owned_event(event_fd);
  if (!out || ring_fd < 0) return -EINVAL;
  auto s = std::make_unique<sring_consumer>();
  auto ring = sring::Ring::attach(std::move(owned_ring), sring::Ring::Access::kConsumer);
  if (!ring) {
    g_open_error = ring.error().message;
    return -ring.error().code;
  }
  s->ring.emplace(std::move(*ring));
  if (owned_event.valid()) {
    if (auto use = s->ring->use_eventfd(std::move(owned_event)); !use) {
      g_open_error = use.error().message;
      return -use.error().code;
    }
    s->has_eventfd = true;
  }
  s->new_consumer();
  *out = s.release();
  return 0;
}

void sring_close(struct sring_consumer* ring) { std::unique_ptr<sring_consumer> owned(ring); }

const char* sring_last_error(const struct sring_consumer* ring) {
  return ring ? ring->last_error.c_str() : g_open_error.c_str();
}

int sring_configure(struct sring_consumer* ring, const struct sring_config* config) {
  if (!ring || !config) return -EINVAL;
  if (const int busy = ring->busy_if_held("sring_configure"); busy < 0) return busy;
  return device_call(ring, "configured", [&](sring::Device& device) { return device.configure(*config); });
}

int sring_start(struct sring_consumer* ring) {
  return device_call(ring, "started", [](sring::Device& device) { return device.start(); });
}

int sring_stop(struct sring_consumer* ring) {
  return device_call(ring, "stopped", [](sring::Device& device) { return device.stop(); });
}

int sring_reset(struct sring_consumer* ring) {
  if (!ring) return -EINVAL;
  if (const int busy = ring->busy_if_held("sring_reset"); busy < 0) return busy;
  const int ret = device_call(ring, "reset", [](sring::Device& device) { return device.reset(); });
  if (ret < 0) return ret;
  // Head and tail moved: attach again from the reset position.
  ring->consumer.reset();
  ring->ring.reset();
  return attach_device_ring(*ring);
}

int64_t sring_consume(struct sring_consumer* ring, sring_block_fn fn, void* user, uint64_t max_blocks) {
  if (!ring || !fn) return -EINVAL;
  if (const int busy = ring->busy_if_held("sring_consume"); busy < 0) return busy;
  // One look at head: what is available now, not what keeps arriving while
  // a slow callback works (the caller's loop would never regain control).
  auto n = ring->consumer->consume(
      [&](const sring::Block& block) {
        return fn(&block.header(), block.samples().data(), block.lost_before(), user) == 0;
      },
      max_blocks);
  if (!n) return ring->fail(n.error());
  return static_cast<int64_t>(*n);
}

int64_t sring_peek(struct sring_consumer* ring, struct sring_block* blocks, uint64_t max_blocks) {
  if (!ring) return -EINVAL;
  if (!blocks && max_blocks != 0) return ring->fail({EINVAL, "sring_peek: blocks is NULL"});
  // Held blocks must not be rewritten under the caller, and only
  // overwrite-oldest lets the producer take back what was not released.
  // The policy changes only while the producer is stopped and, on a device,
  // through sring_configure(), which is refused while blocks are held.
  if (sring::load_relaxed(ring->ring->producer().overrun_policy) == SRING_OVERRUN_OVERWRITE_OLDEST) {
    return ring->fail({EOPNOTSUPP,
                       "sring_peek: the ring is overwrite-oldest, where the producer may rewrite a held "
                       "block while it is read; use sring_consume(), which releases each block as it goes"});
  }
  auto span = ring->ring->acquire();
  if (!span) return ring->fail(span.error());
  // What is held stays held, whatever max_blocks is now (a smaller peek
  // must not let sring_consume() hand out blocks the caller still reads):
  // drop the released entries, then look for new blocks after the held ones.
  auto& peeked = ring->peeked;
  peeked.erase(peeked.begin(), peeked.begin() + static_cast<std::ptrdiff_t>(ring->first_held));
  ring->first_held = 0;
  // Nothing was released since they were peeked, so the tail is where the
  // oldest held block begins, and the span starts with the held blocks.
  if (!peeked.empty() && peeked.front().begin != span->begin) {
    return ring->fail({EPROTO, "sring_peek: the ring's tail moved under the blocks held"});
  }
  const uint64_t skip = peeked.empty() ? 0 : peeked.back().end - span->begin;
  const sring::BlockSpan rest{span->data + skip, span->begin + skip, span->bytes - skip};
  sring::BlockCursor cursor(rest, ring->ring->max_block_bytes());
  // lost_before as sring_consume() says it: against the last block given,
  // or held (blocks are given in order, once released).
  std::optional<uint64_t> next_sample = ring->consumer->accounting().next_sample();
  if (!peeked.empty()) next_sample = peeked.back().header.first_sample + peeked.back().header.sample_count;
  try {
    while (peeked.size() < max_blocks) {
      auto block = cursor.next();
      if (!block) {
        // The blocks before it are good: give those, and the error on the
        // next peek, once they are released.
        if (!peeked.empty()) break;
        return ring->fail(block.error());
      }
      if (*block == nullptr) break;
      const sring_block_header& header = cursor.header();
      const uint64_t lost =
          next_sample && header.first_sample > *next_sample ? header.first_sample - *next_sample : 0;
      next_sample = header.first_sample + header.sample_count;
      peeked.push_back({header, cursor.samples(), lost, cursor.block_begin(), cursor.position()});
    }
  } catch (const std::bad_alloc&) {
    // No exception crosses into C: give what was found so far, if anything.
    if (peeked.empty()) return -ENOMEM;
  }
  const uint64_t given = std::min<uint64_t>(peeked.size(), max_blocks);
  for (uint64_t i = 0; i < given; ++i) {
    blocks[i].header = peeked[i].header;
    blocks[i].samples = peeked[i].samples;
    blocks[i].lost_before = peeked[i].lost_before;
  }
  return static_cast<int64_t>(given);
}

int sring_release(struct sring_consumer* ring, uint64_t count) {
  if (!ring) return -EINVAL;
  const uint64_t held = ring->held();
  if (count > held) {
    return ring->fail({EINVAL, "sring_release: " + std::to_string(count) + " blocks released, but only " +
                                   std::to_string(held) + " are held (peeked and not yet released)"});
  }
  if (count == 0) return 0;
  const size_t first = ring->first_held;
  const size_t last = first + static_cast<size_t>(count);
  const auto released = ring->ring->release(ring->peeked[last - 1].end);
  // Given when released, in order, exactly as sring_consume() counts them;
  // except blocks the producer had taken back first, which can only happen
  // if it restarted under overwrite-oldest while they were held (a ring
  // file's producer): not given, and their loss shows as a gap.
  uint64_t overwritten = 0;
  for (size_t i = first; i < last; ++i) {
    if (released.overwritten() && ring->peeked[i].begin < released.overwritten_below) {
      ++overwritten;
    } else {
      ring->consumer->accounting().on_block(ring->peeked[i].header);
    }
  }
  ring->first_held = last;
  if (ring->first_held == ring->peeked.size()) {
    ring->peeked.clear();
    ring->first_held = 0;
  }
  if (released.overwritten()) {
    // The tail may now be past blocks still held: hold none, peek again.
    ring->batch_overwritten += overwritten;
    ring->peeked.clear();
    ring->first_held = 0;
    return ring->fail({ESTALE, "sring_release: the producer took back " + std::to_string(overwritten) +
                                   " held blocks (it runs overwrite-oldest now): their samples may have "
                                   "changed while read; they are not counted as given"});
  }
  return 0;
}

int sring_wait(struct sring_consumer* ring, int64_t timeout_ns) {
  if (!ring) return -EINVAL;
  const auto timeout = timeout_ns < 0 ? sring::kWaitForever : std::chrono::nanoseconds(timeout_ns);
  const auto strategy = ring->has_eventfd ? sring::WaitStrategy::kEventfd : sring::WaitStrategy::kHybrid;
  auto waited = ring->ring->wait(strategy, timeout);
  if (!waited) return ring->fail(waited.error());
  if (*waited) return 1;
  // A stopped, empty ring ends any wait: that is not a timeout.
  return ring->consumer->end_of_stream() ? 1 : 0;
}

int sring_end_of_stream(struct sring_consumer* ring) { return ring && ring->consumer->end_of_stream() ? 1 : 0; }

int sring_get_counters(struct sring_consumer* ring, struct sring_counters* out) {
  if (!ring || !out) return -EINVAL;
  const auto& given = ring->consumer->counters();
  const auto producer = ring->consumer->producer_counters();
  *out = {};
  out->blocks = given.blocks;
  out->samples = given.samples;
  out->missing_blocks = given.lost_blocks;
  out->missing_samples = given.lost_samples;
  out->blocks_produced = producer.blocks_produced;
  out->samples_produced = producer.samples_produced;
  out->blocks_dropped = producer.blocks_dropped;
  out->samples_dropped = producer.samples_dropped;
  out->overwritten_while_read = ring->consumer->overwritten_while_read() + ring->batch_overwritten;
  out->state = producer.state;
  if (ring->consumer->end_of_stream()) {
    const auto end = ring->consumer->finish();
    out->missing_blocks = end.missing_blocks;
    out->missing_samples = end.missing_samples;
    out->exact = end.exact() ? 1 : 0;
  }
  return 0;
}

uint64_t sring_ring_size(const struct sring_consumer* ring) { return ring ? ring->ring->ring_size() : 0; }

}  // extern "C"
