// libsring: the C API (capi/include/sring/sring.h) over ringlib's Ring,
// Device and Consumer. No exception crosses into C: every entry point
// returns a negative errno and leaves a sentence in last_error.
#include "sring/sring.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>

#include "sring/consumer.hpp"
#include "sring/device.hpp"
#include "sring/format.hpp"
#include "sring/ring.hpp"
#include "sring/sring_pattern.h"

struct sring_consumer {
  std::optional<sring::Device> device;  // a kernel device: control
  std::optional<sring::Ring> ring;      // the data path
  std::optional<sring::Consumer> consumer;
  bool has_eventfd = false;
  std::string last_error;

  // Batch mode: the blocks sring_peek() gave and sring_release() has not
  // covered are the Consumer's held blocks (Consumer::next()/done()).
  uint64_t held() const { return consumer->held(); }
  int busy_if_held(const char* call) {
    if (held() == 0) return 0;
    return fail({EBUSY, std::string(call) + ": " + std::to_string(held()) +
                            " blocks from sring_peek() are still held; sring_release() them first"});
  }

  int fail(const sring::Error& error) {
    last_error = error.message;
    return -(error.code ? error.code : EIO);
  }
  // A Consumer over the ring as it is now: from sample 0 if the producer
  // has made nothing yet, else from the first block it sees (Consumer()).
  void new_consumer() { consumer.emplace(*ring); }
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

// What sring.h's struct sring_block says of a block: its header, its
// layout and payload, and the 16-bit view for the formats that are 16-bit
// values (NULL for the others: see sring.h).
sring_block to_c_block(const sring::Block& block) {
  const sring::SampleLayout& layout = block.layout();
  const std::span<const std::byte> payload = block.payload();
  sring_block out{};
  out.header = block.header();
  const bool sixteen_bit_values = layout.format == SRING_FMT_U16 || layout.format == SRING_FMT_S16;
  out.samples = sixteen_bit_values ? reinterpret_cast<const uint16_t*>(payload.data()) : nullptr;
  out.lost_before = block.lost_before();
  out.payload = payload.data();
  out.payload_bytes = payload.size();
  out.frames = block.frames();
  out.format = layout.format;
  out.channels = layout.channels;
  out.bits_per_sample = layout.bits_per_sample;
  return out;
}

// sring_consume() and sring_consume_blocks(): `give` is called with each
// block and says whether to go on.
template <typename Give>
int64_t consume_with(struct sring_consumer* ring, Give give, uint64_t max_blocks) {
  if (const int busy = ring->busy_if_held("sring_consume"); busy < 0) return busy;
  // One look at head: what is available now, not what keeps arriving while
  // a slow callback works (the caller's loop would never regain control).
  auto n = ring->consumer->consume([&](const sring::Block& block) { return give(to_c_block(block)); }, max_blocks);
  if (!n) return ring->fail(n.error());
  return static_cast<int64_t>(*n);
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
  return consume_with(
      ring, [&](const sring_block& block) { return fn(&block.header, block.samples, block.lost_before, user) == 0; },
      max_blocks);
}

int64_t sring_consume_blocks(struct sring_consumer* ring, sring_block_view_fn fn, void* user, uint64_t max_blocks) {
  if (!ring || !fn) return -EINVAL;
  return consume_with(ring, [&](const sring_block& block) { return fn(&block, user) == 0; }, max_blocks);
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
  // What is held stays held and comes first, whatever max_blocks is now;
  // then the blocks after it, up to max_blocks.
  auto& consumer = *ring->consumer;
  try {
    while (consumer.held() < max_blocks) {
      auto block = consumer.next();
      if (!block) {
        // The blocks before it are good: give those, and the error on a
        // later peek, once they are released.
        if (consumer.held() > 0) break;
        return ring->fail(block.error());
      }
      if (!*block) break;
    }
  } catch (const std::bad_alloc&) {
    // No exception crosses into C: give what was found so far, if anything.
    if (consumer.held() == 0) return -ENOMEM;
  }
  const uint64_t given = std::min<uint64_t>(consumer.held(), max_blocks);
  for (uint64_t i = 0; i < given; ++i) {
    blocks[i] = to_c_block(consumer.held_block(i));
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
  // Given when released, in order, exactly as sring_consume() counts them.
  auto counted = ring->consumer->done(count);
  if (!counted) return ring->fail(counted.error());
  ring->consumer->flush();  // released means given back now, whatever the step
  if (*counted < count) {
    // Only if a ring file's producer restarted under overwrite-oldest while
    // they were held: taken back, not given, and their loss shows as a gap.
    return ring->fail({ESTALE, "sring_release: the producer took back " + std::to_string(count - *counted) +
                                   " held blocks (it runs overwrite-oldest now): their samples may have "
                                   "changed while read; they are not counted as given"});
  }
  return 0;
}

int sring_wait(struct sring_consumer* ring, int64_t timeout_ns) {
  if (!ring) return -EINVAL;
  const auto timeout = timeout_ns < 0 ? sring::kWaitForever : std::chrono::nanoseconds(timeout_ns);
  const auto strategy = ring->has_eventfd ? sring::WaitStrategy::kEventfd : sring::WaitStrategy::kHybrid;
  // Waits for blocks beyond those held from sring_peek().
  auto waited = ring->consumer->wait(strategy, timeout);
  if (!waited) return ring->fail(waited.error());
  if (*waited) return 1;
  // A stopped ring with nothing new ends any wait: that is not a timeout.
  return ring->ring->state() != SRING_STATE_RUNNING ? 1 : 0;
}

int sring_end_of_stream(struct sring_consumer* ring) { return ring && ring->consumer->end_of_stream() ? 1 : 0; }

int sring_get_counters(struct sring_consumer* ring, struct sring_counters* out) {
  if (!ring || !out) return -EINVAL;
  // The accounting of every ringlib consumer (C++, Python), field by field.
  const sring::Counters c = ring->consumer->snapshot();
  *out = {};
  out->blocks = c.blocks;
  out->samples = c.samples;
  out->missing_blocks = c.missing_blocks;
  out->missing_samples = c.missing_samples;
  out->blocks_produced = c.blocks_produced;
  out->samples_produced = c.samples_produced;
  out->blocks_dropped = c.blocks_dropped;
  out->samples_dropped = c.samples_dropped;
  out->overwritten_while_read = c.overwritten_while_read;
  out->state = c.state;
  out->exact = c.exact ? 1 : 0;
  return 0;
}

uint64_t sring_ring_size(const struct sring_consumer* ring) { return ring ? ring->ring->ring_size() : 0; }

const char* sring_format_name(uint32_t format) {
  // The names format.hpp gives, kept for the life of the library so that C
  // gets static strings; a device's own format has no name here.
  try {
    static const std::map<uint32_t, std::string> names = [] {
      std::map<uint32_t, std::string> known;
      for (uint32_t f = 1; f <= SRING_FMT_LAST_STANDARD; ++f) known.emplace(f, sring::format_name(f));
      known.emplace(SRING_FMT_SIM_PACKED12, sring::format_name(SRING_FMT_SIM_PACKED12));
      return known;
    }();
    const auto name = names.find(format);
    return name != names.end() ? name->second.c_str() : nullptr;
  } catch (const std::bad_alloc&) {
    return nullptr;  // no exception crosses into C; the next call tries again
  }
}

int sring_parse_format(const char* name, uint32_t* format) {
  if (!name || !format) return -EINVAL;
  const auto parsed = sring::parse_format(name);
  if (!parsed) {
    try {
      g_open_error = std::string("unknown sample format '") + name +
                     "': u8, s8, u16, s16, s32, f32, cs16, cf32, sim-packed12, or a device's own number";
    } catch (const std::bad_alloc&) {
      g_open_error.clear();
    }
    return -EINVAL;
  }
  *format = *parsed;
  return 0;
}

}  // extern "C"
