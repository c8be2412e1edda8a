// Blocks to other hosts over ZeroMQ (docs/streaming.md): a publisher that
// sends each block of a ring without copying its samples, and a subscriber
// that keeps the same loss accounting as a local consumer.
//
// On the wire (little endian, the host's layout; wire version 2):
//   a block   two parts: [NetBlockPrefix: the 64-byte block header, then the
//             wire version and the stream's pattern seed] [the payload,
//             sring_payload_bytes(sample_count, channels, bits_per_sample)
//             bytes, sent from the ring in place]
//   the end   one part: [NetEnd] with the producer's final counters and what
//             the publisher took from the ring but never sent.
// The first part's size and magic say which it is. In wire version 2 (ABI
// 1.4) the header's sample_format, channels, bits_per_sample and
// bytes_per_sample always say the block's layout: the publisher writes a
// 1.3 producer's zeros out as one 16-bit channel, and a subscriber refuses
// a header without them. Version 1 (16-bit samples, one channel) and
// version 2 peers refuse each other with an error naming both versions.
//
// Threads: a NetPublisher and a NetSubscriber belong to the thread that
// made them. libzmq frees a sent samples part on its own I/O thread; that
// free only marks the block (one atomic store), and the publisher's thread
// releases ring space, oldest first, once libzmq let go of every block
// below (see NetPublisher::reclaim()).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "sring/accounting.hpp"
#include "sring/consumer.hpp"
#include "sring/error.hpp"
#include "sring/format.hpp"
#include "sring/sring_abi.h"

namespace sring {

inline constexpr uint32_t kNetWireVersion = 2;
inline constexpr uint32_t kNetEndMagic = 0x444e4553U;  // "SEND" in memory

struct NetBlockPrefix {
  sring_block_header header;  // its layout fields always set (wire version 2)
  uint32_t wire_version = kNetWireVersion;
  uint32_t pattern_seed = 0;
};
static_assert(sizeof(NetBlockPrefix) == SRING_BLOCK_HEADER_SIZE + 8);

// The publisher's final message (samples_* count frames, as the ring's
// counters do). blocks/samples_produced and _dropped are
// the producer page's final counters (read after it stopped); _unsent are
// the blocks the publisher took from the ring and never sent (a send error,
// or no peer would take them before --drain-timeout); _sent the rest.
// produced == sent + unsent + dropped, exactly.
struct NetEnd {
  uint32_t magic = kNetEndMagic;
  uint32_t wire_version = kNetWireVersion;
  uint64_t blocks_produced = 0;
  uint64_t samples_produced = 0;
  uint64_t blocks_dropped = 0;  // at the ring, by the producer (overruns)
  uint64_t samples_dropped = 0;
  uint64_t blocks_unsent = 0;  // taken from the ring, never handed to libzmq
  uint64_t samples_unsent = 0;
  uint64_t blocks_sent = 0;  // handed to libzmq (PUB may still drop them at its HWM)
  uint64_t samples_sent = 0;
  uint32_t pattern_seed = 0;
  uint32_t reserved = 0;
};
static_assert(sizeof(NetEnd) == 80);

// PUSH/PULL: load-balanced, back-pressure at the high-water mark (the ring
// fills and the producer drops, counted). PUB/SUB: monitors; libzmq drops at
// the HWM silently and the subscriber counts the gap.
enum class NetPattern { kPushPull, kPubSub };

[[nodiscard]] Expected<NetPattern> parse_net_pattern(std::string_view name);

struct NetPublisherOptions {
  int send_hwm = 1000;                       // messages queued per peer
  std::chrono::milliseconds linger{2000};    // at close: how long libzmq keeps trying
};

class NetPublisher {
 public:
  // Binds a PUSH or PUB socket to endpoint (tcp://*:5555, inproc://name).
  // EINVAL with the endpoint and libzmq's reason if it cannot.
  [[nodiscard]] static Expected<std::unique_ptr<NetPublisher>> bind(Consumer& consumer, zmq::context_t& context,
                                                                    NetPattern pattern, const std::string& endpoint,
                                                                    NetPublisherOptions options = {});
  NetPublisher(const NetPublisher&) = delete;
  NetPublisher& operator=(const NetPublisher&) = delete;
  // Closes the socket (libzmq keeps sending for the linger time, then drops
  // and frees), then waits until libzmq has freed every block: the ring
  // must not be unmapped, nor these markers freed, while it reads them.
  ~NetPublisher();

  // Sends up to max_blocks of the blocks available now, without blocking.
  // When libzmq says EAGAIN (PUSH: every peer at its HWM, or none
  // connected), the block stays pending and nothing more is taken from the
  // ring until it goes: the ring fills and the producer drops, counted at
  // the ring. Returns the number of blocks sent.
  [[nodiscard]] Expected<uint64_t> pump(uint64_t max_blocks = 64);
  // The address bound, with the port libzmq chose for "tcp://127.0.0.1:*".
  [[nodiscard]] std::string bound_endpoint() const;
  // A block is waiting for libzmq to take it (the last send was EAGAIN).
  bool backed_up() const { return pending_.has_value(); }
  // Waits until the socket can take a message, or the timeout.
  void wait_writable(std::chrono::milliseconds timeout);
  // Releases the ring space of blocks libzmq has freed, oldest first,
  // stopping at the first it still holds. Returns how many were released.
  [[nodiscard]] Expected<uint64_t> reclaim();
  // Gives up on the pending block and every block still in the ring: they
  // count as unsent (NetEnd::blocks_unsent), and their space is released.
  [[nodiscard]] Expected<uint64_t> abandon_rest();

  // Sends the end-of-stream message, again every 50 ms, until every peer
  // that connected has disconnected (subscribers close when they have it;
  // PUSH hands each copy to one worker) or the timeout. Returns the peers
  // still connected then (0: every one had it).
  [[nodiscard]] Expected<int> send_end(NetEnd end, std::chrono::milliseconds timeout);

  uint64_t blocks_sent() const { return blocks_sent_; }
  uint64_t samples_sent() const { return samples_sent_; }  // frames
  uint64_t payload_bytes_sent() const { return payload_bytes_sent_; }
  uint64_t blocks_unsent() const { return blocks_unsent_; }
  uint64_t samples_unsent() const { return samples_unsent_; }
  // Taken from the ring and its space not yet released: pending, held by
  // libzmq (its queues, an inproc peer), or freed and waiting for reclaim().
  uint64_t unreleased() const { return handed_out_ - released_; }
  // Peers connected now: reads the socket monitor's events, waiting up to
  // timeout for one.
  int poll_peers(std::chrono::milliseconds timeout) {
    poll_monitor(timeout);
    return peers_;
  }
  // What would go into the end-of-stream message now (final once the ring
  // is stopped and drained).
  NetEnd end_counters() const;

 private:
  NetPublisher(Consumer& consumer, zmq::context_t& context, NetPattern pattern, NetPublisherOptions options);
  // Tries to send the pending block; true if it went.
  Expected<bool> send_pending();
  void poll_monitor(std::chrono::milliseconds timeout);
  std::atomic<uint8_t>& marker(uint64_t ordinal) { return freed_[ordinal & (marker_count_ - 1)]; }

  struct Pending {
    zmq::message_t prefix;
    zmq::message_t payload;
    bool prefix_sent = false;
    uint32_t frames = 0;
  };

  Consumer& consumer_;
  NetPublisherOptions options_;
  uint32_t pattern_seed_;
  // One marker per block handed out and not yet released, indexed by its
  // hand-out ordinal: libzmq's free callback stores 1 (release), reclaim()
  // loads it (acquire) before the ring's tail moves past the block. At most
  // ring_size / 64 blocks fit in the ring, so that many markers never wrap
  // onto a block still in use.
  uint64_t marker_count_;
  std::unique_ptr<std::atomic<uint8_t>[]> freed_;
  uint64_t handed_out_ = 0;  // blocks taken from the consumer
  uint64_t released_ = 0;    // of those, done() and given back to the ring
  std::optional<Pending> pending_;
  uint64_t blocks_sent_ = 0;
  uint64_t samples_sent_ = 0;
  uint64_t payload_bytes_sent_ = 0;
  uint64_t blocks_unsent_ = 0;
  uint64_t samples_unsent_ = 0;
  int peers_ = 0;
  // Declared last: destroyed first (the monitor, then the data socket), while
  // the markers above still exist.
  zmq::socket_t monitor_;
  zmq::socket_t socket_;
};

// A block as received: the header, its layout, and the payload in the
// received message (valid until the next receive()).
struct NetBlock {
  sring_block_header header;
  SampleLayout layout;                 // from the header: format, channels, bits per sample
  std::span<const std::byte> payload;  // layout.payload_bytes(frames()) bytes
  uint64_t lost_before = 0;  // frames: the loss rule against the block received before
  uint32_t pattern_seed = 0;

  uint64_t frames() const { return header.sample_count; }
  // The samples as the block's own type (sring/format.hpp); FormatMismatch
  // for another T. The payload is aligned for it (see realigned_blocks()).
  template <typename T>
  std::span<const T> as() const {
    return typed_view<T>(payload.data(), frames(), layout);
  }
};

struct NetSubscriberOptions {
  int receive_hwm = 1000;
};

// The whole accounting of a subscriber once the end arrived.
struct NetAccounting {
  EndOfStream end;              // missing vs dropped at the ring + unsent
  uint64_t lost_in_transit_blocks = 0;   // missing beyond that (PUB/SUB: HWM, not connected)
  uint64_t lost_in_transit_samples = 0;
};

class NetSubscriber {
 public:
  // Connects a PULL or SUB (subscribed to everything) socket to endpoint.
  [[nodiscard]] static Expected<std::unique_ptr<NetSubscriber>> connect(zmq::context_t& context, NetPattern pattern,
                                                                        const std::string& endpoint,
                                                                        NetSubscriberOptions options = {});

  enum class Got { kBlock, kEnd, kNothing };
  // The next message within timeout: a block (block() until the next call;
  // counted in accounting()), the end (end()), or nothing. A message that is
  // neither is EPROTO, with what was wrong.
  [[nodiscard]] Expected<Got> receive(std::chrono::milliseconds timeout);
  const NetBlock& block() const { return block_; }
  const std::optional<NetEnd>& end() const { return end_; }
  // Blocks libzmq delivered at an address not aligned for their sample type
  // (an odd one for 16-bit samples), copied so that as<T>() may read them.
  uint64_t realigned_blocks() const { return realigned_blocks_; }

  // The stream is known to begin at sequence 0, sample 0 (a publisher
  // started its device): blocks missing before the first one received count.
  StreamAccounting& accounting() { return accounting_; }
  const StreamAccounting& accounting() const { return accounting_; }
  // The end-of-stream rule with the publisher's final counters (needs end()).
  // For a single PULL worker, or a SUB that missed nothing in transit,
  // end.exact() holds; a SUB's transit losses are what is missing beyond.
  [[nodiscard]] std::optional<NetAccounting> finish() const;

 private:
  explicit NetSubscriber(zmq::socket_t socket) : socket_(std::move(socket)) {}

  zmq::socket_t socket_;
  zmq::message_t prefix_;
  zmq::message_t payload_;
  std::vector<uint64_t> aligned_payload_;  // a block received misaligned for its type, copied
  uint64_t realigned_blocks_ = 0;
  NetBlock block_{};
  StreamAccounting accounting_;
  std::optional<NetEnd> end_;
};

}  // namespace sring
