#include "sring/net.hpp"

#include <cstring>
#include <thread>

#include "ringlib/error_format.hpp"
#include "sring/detail/barriers.hpp"

namespace sring {

namespace {

// libzmq's free callback for a payload part sent in place. It runs where
// libzmq lets go of the message: its I/O thread once written to the kernel,
// the sending thread for a message PUB drops at its HWM, a receiver's thread
// for inproc. It only marks the block: release, so that libzmq's last read
// of the samples happens-before NetPublisher::reclaim()'s acquire load of
// the marker, and so before the ring's tail moves past them (store-release
// of tail) and the producer writes there again.
void mark_freed(void* /*data*/, void* marker) {
  static_cast<std::atomic<uint8_t>*>(marker)->store(1, std::memory_order_release);
}

Error zmq_failure(const zmq::error_t& e, std::string_view what) {
  return make_error(e.num() != 0 ? e.num() : EIO, "{}: {}", what, e.what());
}

int socket_type(NetPattern pattern, bool sending) {
  if (pattern == NetPattern::kPushPull) return sending ? ZMQ_PUSH : ZMQ_PULL;
  return sending ? ZMQ_PUB : ZMQ_SUB;
}

uint64_t power_of_two_at_least(uint64_t n) {
  uint64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// The alignment a layout's C++ type needs (sring/format.hpp): a payload
// that libzmq hands out at another address is copied before as<T>() reads
// it. A device's own format has no type: bytes.
size_t payload_alignment(const SampleLayout& layout) {
  if (layout.is_device_format()) return 1;
  const uint32_t value_bits = layout.bits_per_sample / layout.components();
  return value_bits >= 32 ? 4 : value_bits / 8;
}

// Every monitor needs an inproc address of its own.
std::atomic<uint64_t> monitor_serial{0};

}  // namespace

Expected<NetPattern> parse_net_pattern(std::string_view name) {
  if (name == "push" || name == "pushpull" || name == "pull") return NetPattern::kPushPull;
  if (name == "pub" || name == "pubsub" || name == "sub") return NetPattern::kPubSub;
  return make_error(EINVAL, "unknown pattern '{}': push (PUSH/PULL) or pub (PUB/SUB)", name);
}

NetPublisher::NetPublisher(Consumer& consumer, zmq::context_t& context, NetPattern pattern,
                           NetPublisherOptions options)
    : consumer_(consumer),
      options_(options),
      pattern_seed_(load_relaxed(consumer.ring().producer().pattern_seed)),
      marker_count_(power_of_two_at_least(consumer.ring().ring_size() / SRING_BLOCK_HEADER_SIZE)),
      freed_(std::make_unique<std::atomic<uint8_t>[]>(marker_count_)),
      monitor_(context, ZMQ_PAIR),
      socket_(context, socket_type(pattern, true)) {}

Expected<std::unique_ptr<NetPublisher>> NetPublisher::bind(Consumer& consumer, zmq::context_t& context,
                                                           NetPattern pattern, const std::string& endpoint,
                                                           NetPublisherOptions options) {
  try {
    std::unique_ptr<NetPublisher> publisher(new NetPublisher(consumer, context, pattern, options));
    zmq::socket_t& socket = publisher->socket_;
    socket.set(zmq::sockopt::sndhwm, options.send_hwm);
    socket.set(zmq::sockopt::linger, static_cast<int>(options.linger.count()));
    // Peers are counted from the monitor, so that the end of stream goes on
    // until every one that connected has it.
    const std::string monitor_address =
        fmt::format("inproc://sring-net-monitor-{}", monitor_serial.fetch_add(1, std::memory_order_relaxed));
    if (zmq_socket_monitor(socket.handle(), monitor_address.c_str(),
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0) {
      return make_error(zmq_errno(), "cannot monitor the publisher's socket: {}", zmq_strerror(zmq_errno()));
    }
    publisher->monitor_.connect(monitor_address);
    try {
      socket.bind(endpoint);
    } catch (const zmq::error_t& e) {
      return zmq_failure(e, fmt::format("cannot bind the publisher to '{}'", endpoint));
    }
    return publisher;
  } catch (const zmq::error_t& e) {
    return zmq_failure(e, "cannot set up the publisher's socket");
  }
}

NetPublisher::~NetPublisher() {
  (void)zmq_socket_monitor(socket_.handle(), nullptr, 0);
  monitor_.close();
  // An unsent block: destroying its message runs the free callback here.
  pending_.reset();
  // libzmq keeps what it queued for the linger time, then drops it; either
  // way it frees each message, and until then it may read the ring.
  socket_.close();
  for (uint64_t ordinal = released_; ordinal < handed_out_; ++ordinal) {
    while (marker(ordinal).load(std::memory_order_acquire) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

Expected<bool> NetPublisher::send_pending() {
  Pending& pending = *pending_;
  try {
    if (!pending.prefix_sent) {
      if (!socket_.send(pending.prefix, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return false;
      pending.prefix_sent = true;
    }
    // libzmq's HWM counts whole messages, so a second part after an
    // accepted first one is not refused in practice; if it were, the block
    // stays pending with its first part sent and goes on the next try.
    const size_t payload_bytes = pending.payload.size();
    if (!socket_.send(pending.payload, zmq::send_flags::dontwait)) return false;
    payload_bytes_sent_ += payload_bytes;
  } catch (const zmq::error_t& e) {
    return zmq_failure(e, "sending a block failed");
  }
  ++blocks_sent_;
  samples_sent_ += pending.frames;
  pending_.reset();
  return true;
}

Expected<uint64_t> NetPublisher::pump(uint64_t max_blocks) {
  uint64_t sent = 0;
  if (pending_) {
    auto went = send_pending();
    if (!went) return went.error();
    if (!*went) return sent;  // back-pressure: take nothing more from the ring
    ++sent;
  }
  while (sent < max_blocks) {
    auto next = consumer_.next();
    if (!next) return next.error();
    if (!*next) break;
    const Block& block = **next;
    std::atomic<uint8_t>& freed = marker(handed_out_++);
    // The marker was cleared by reclaim() (or never used) on this thread,
    // before this send; libzmq's hand-over to its I/O thread orders that
    // store before the callback's.
    NetBlockPrefix prefix{block.header(), kNetWireVersion, pattern_seed_};
    // Wire version 2: the layout always spelled out, a 1.3 producer's
    // zeros included (Block::layout() read them as one 16-bit channel).
    prefix.header.sample_format = static_cast<__u16>(block.layout().format);
    prefix.header.channels = static_cast<__u16>(block.layout().channels);
    prefix.header.bits_per_sample = static_cast<__u16>(block.layout().bits_per_sample);
    const std::span<const std::byte> payload = block.payload();
    Pending pending{
        zmq::message_t(&prefix, sizeof prefix),  // 72 bytes: copied
        // The payload in place in the ring: libzmq calls mark_freed() when
        // it no longer needs it.
        zmq::message_t(const_cast<std::byte*>(payload.data()), payload.size(), &mark_freed, &freed), false,
        block.header().sample_count};
    pending_.emplace(std::move(pending));
    auto went = send_pending();
    if (!went) return went.error();
    if (!*went) break;
    ++sent;
  }
  return sent;
}

std::string NetPublisher::bound_endpoint() const {
  try {
    return socket_.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t&) {
    return {};
  }
}

void NetPublisher::wait_writable(std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLOUT, 0};
  try {
    zmq::poll(&item, 1, timeout);
  } catch (const zmq::error_t&) {
    // EINTR: the caller's loop comes back.
  }
}

Expected<uint64_t> NetPublisher::reclaim() {
  uint64_t ready = 0;
  while (released_ + ready < handed_out_) {
    std::atomic<uint8_t>& freed = marker(released_ + ready);
    // Acquire: pairs with mark_freed()'s release (see there).
    if (freed.load(std::memory_order_acquire) == 0) break;  // libzmq still holds this one: in order
    freed.store(0, std::memory_order_relaxed);  // reused by this thread only, before a later send
    ++ready;
  }
  if (ready == 0) return ready;
  auto done = consumer_.done(ready);
  if (!done) return done.error();
  released_ += ready;
  consumer_.flush();  // now, whatever release step the caller's Consumer has
  return ready;
}

Expected<uint64_t> NetPublisher::abandon_rest() {
  uint64_t abandoned = 0;
  if (pending_) {
    if (pending_->prefix_sent) return make_error(EBUSY, "a block is half sent: it cannot be abandoned");
    ++blocks_unsent_;
    samples_unsent_ += pending_->frames;
    pending_.reset();  // runs mark_freed() here
    ++abandoned;
  }
  for (;;) {
    auto next = consumer_.next();
    if (!next) return next.error();
    if (!*next) break;
    ++blocks_unsent_;
    samples_unsent_ += (*next)->header().sample_count;
    marker(handed_out_++).store(1, std::memory_order_relaxed);  // never given to libzmq
    ++abandoned;
  }
  if (auto reclaimed = reclaim(); !reclaimed) return reclaimed.error();
  return abandoned;
}

void NetPublisher::poll_monitor(std::chrono::milliseconds timeout) {
  try {
    zmq::pollitem_t item{monitor_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, timeout);
    zmq::message_t event;
    while (monitor_.recv(event, zmq::recv_flags::dontwait)) {
      // An event is two parts: [uint16 event, uint32 value] [endpoint].
      if (event.size() >= sizeof(uint16_t)) {
        uint16_t id = 0;
        std::memcpy(&id, event.data(), sizeof id);
        if (id == ZMQ_EVENT_ACCEPTED) ++peers_;
        if (id == ZMQ_EVENT_DISCONNECTED) --peers_;
      }
      while (event.more() && monitor_.recv(event, zmq::recv_flags::dontwait)) {
      }
    }
  } catch (const zmq::error_t&) {
    // EINTR while polling: the next call reads the events.
  }
}

NetEnd NetPublisher::end_counters() const {
  const sring_producer_page& producer = consumer_.ring().producer();
  NetEnd end;
  end.blocks_produced = load_relaxed(producer.blocks_produced);
  end.samples_produced = load_relaxed(producer.samples_produced);
  end.blocks_dropped = load_relaxed(producer.blocks_dropped);
  end.samples_dropped = load_relaxed(producer.samples_dropped);
  end.blocks_unsent = blocks_unsent_;
  end.samples_unsent = samples_unsent_;
  end.blocks_sent = blocks_sent_;
  end.samples_sent = samples_sent_;
  end.pattern_seed = pattern_seed_;
  return end;
}

Expected<int> NetPublisher::send_end(NetEnd end, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool tried = false;
  for (;;) {
    poll_monitor(std::chrono::milliseconds(0));
    if (tried && peers_ <= 0) return 0;
    if (std::chrono::steady_clock::now() >= deadline) return peers_;
    try {
      zmq::message_t message(&end, sizeof end);
      (void)socket_.send(message, zmq::send_flags::dontwait);  // EAGAIN: a peer still full; again
    } catch (const zmq::error_t& e) {
      return zmq_failure(e, "sending the end of stream failed");
    }
    tried = true;
    poll_monitor(std::chrono::milliseconds(50));
  }
}

Expected<std::unique_ptr<NetSubscriber>> NetSubscriber::connect(zmq::context_t& context, NetPattern pattern,
                                                                 const std::string& endpoint,
                                                                 NetSubscriberOptions options) {
  try {
    zmq::socket_t socket(context, socket_type(pattern, false));
    socket.set(zmq::sockopt::rcvhwm, options.receive_hwm);
    socket.set(zmq::sockopt::linger, 0);
    if (pattern == NetPattern::kPubSub) socket.set(zmq::sockopt::subscribe, "");
    try {
      socket.connect(endpoint);
    } catch (const zmq::error_t& e) {
      return zmq_failure(e, fmt::format("cannot connect to '{}'", endpoint));
    }
    std::unique_ptr<NetSubscriber> subscriber(new NetSubscriber(std::move(socket)));
    subscriber->accounting_.expect_start(0, 0);
    return subscriber;
  } catch (const zmq::error_t& e) {
    return zmq_failure(e, "cannot set up the subscriber's socket");
  }
}

Expected<NetSubscriber::Got> NetSubscriber::receive(std::chrono::milliseconds timeout) {
  try {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, timeout);
    if (!(item.revents & ZMQ_POLLIN)) return Got::kNothing;
    if (!socket_.recv(prefix_, zmq::recv_flags::dontwait)) return Got::kNothing;
    // The parts of a message arrive together: once the first is here, the
    // rest are.
    auto drain = [&] {
      zmq::message_t rest;
      bool more = prefix_.more();
      while (more && socket_.recv(rest, zmq::recv_flags::none)) more = rest.more();
    };
    if (prefix_.size() == sizeof(NetEnd)) {
      NetEnd end;
      std::memcpy(&end, prefix_.data(), sizeof end);
      if (end.magic != kNetEndMagic || prefix_.more()) {
        drain();
        return make_error(EPROTO, "a {}-byte message that is not an sring end of stream", prefix_.size());
      }
      if (end.wire_version != kNetWireVersion) {
        return make_error(EPROTO, "an end of stream of wire version {}: this subscriber speaks version {} only",
                          end.wire_version, kNetWireVersion);
      }
      end_ = end;
      return Got::kEnd;
    }
    if (prefix_.size() != sizeof(NetBlockPrefix) || !prefix_.more()) {
      drain();
      return make_error(EPROTO, "a message that is not an sring block: first part {} bytes{}", prefix_.size(),
                        prefix_.more() ? "" : ", no payload part");
    }
    NetBlockPrefix prefix;
    std::memcpy(&prefix, prefix_.data(), sizeof prefix);
    (void)socket_.recv(payload_, zmq::recv_flags::none);
    if (payload_.more()) {
      zmq::message_t rest;
      bool more = true;
      while (more && socket_.recv(rest, zmq::recv_flags::none)) more = rest.more();
      return make_error(EPROTO, "an sring block message with more than two parts");
    }
    const sring_block_header& header = prefix.header;
    if (header.magic != SRING_BLOCK_MAGIC) {
      return make_error(EPROTO, "a block with magic {:#x} (expected {:#x})", header.magic, SRING_BLOCK_MAGIC);
    }
    if (prefix.wire_version != kNetWireVersion) {
      return make_error(EPROTO,
                        "a block of wire version {}: this subscriber speaks version {} only (version 1 is "
                        "sring before ABI 1.4: run the same sring release at both ends)",
                        prefix.wire_version, kNetWireVersion);
    }
    // Version 2 spells the layout out: no zero read as a default here.
    const SampleLayout layout{header.sample_format, header.channels, header.bits_per_sample};
    const uint32_t bytes_per_sample = layout.bits_per_sample % 8 == 0 ? layout.bits_per_sample / 8 : 0;
    if (!layout.valid() || header.bytes_per_sample != bytes_per_sample) {
      return make_error(EPROTO,
                        "block {}: no valid layout in its header (format {}, {} channels, {} bits, {} bytes per "
                        "sample)",
                        header.sequence, format_name(header.sample_format), header.channels,
                        header.bits_per_sample, header.bytes_per_sample);
    }
    if (payload_.size() != layout.payload_bytes(header.sample_count)) {
      return make_error(EPROTO, "block {}: {} frames of {} in the header are {} bytes, {} bytes of payload received",
                        header.sequence, header.sample_count, describe(layout),
                        layout.payload_bytes(header.sample_count), payload_.size());
    }
    // libzmq may hand a large message out of its receive buffer in place, at
    // any byte offset: a payload misaligned for its sample type is copied.
    const std::byte* payload = static_cast<const std::byte*>(payload_.data());
    if (reinterpret_cast<uintptr_t>(payload) % payload_alignment(layout) != 0) {
      aligned_payload_.resize((payload_.size() + sizeof(uint64_t) - 1) / sizeof(uint64_t));
      std::memcpy(aligned_payload_.data(), payload, payload_.size());
      payload = reinterpret_cast<const std::byte*>(aligned_payload_.data());
      ++realigned_blocks_;
    }
    const std::optional<uint64_t> expected = accounting_.next_sample();
    block_.header = header;
    block_.layout = layout;
    block_.payload = {payload, payload_.size()};
    block_.lost_before = expected && header.first_sample > *expected ? header.first_sample - *expected : 0;
    block_.pattern_seed = prefix.pattern_seed;
    accounting_.on_block(header);
    return Got::kBlock;
  } catch (const zmq::error_t& e) {
    return zmq_failure(e, "receiving failed");
  }
}

std::optional<NetAccounting> NetSubscriber::finish() const {
  if (!end_) return std::nullopt;
  const NetEnd& e = *end_;
  NetAccounting result;
  // Lost before the network: dropped at the ring, or never sent.
  result.end = accounting_.finish(e.blocks_produced, e.samples_produced, e.blocks_dropped + e.blocks_unsent,
                                  e.samples_dropped + e.samples_unsent);
  const EndOfStream& end = result.end;
  result.lost_in_transit_blocks = end.missing_blocks > end.dropped_blocks ? end.missing_blocks - end.dropped_blocks : 0;
  result.lost_in_transit_samples =
      end.missing_samples > end.dropped_samples ? end.missing_samples - end.dropped_samples : 0;
  return result;
}

}  // namespace sring
