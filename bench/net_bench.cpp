// Streaming throughput against plain libzmq, in one run (docs/streaming.md):
// N blocks of one size over tcp loopback PUSH -> PULL, three senders:
//   sring        sring::NetPublisher from a flat-out simulated ring
//                (zero-copy sends: libzmq references the ring's memory);
//   zmq/ring     plain zmq_send (which copies) of each block from the same
//                kind of ring, fed by the same simulated device: the same
//                producer, ring, consumer and message parts, only the send
//                differs (equal work, the comparison that counts);
//   zmq/buffer   plain zmq_send of the same two parts from one preallocated,
//                pre-touched buffer, no producer at all (libzmq's ceiling
//                on this machine; it does less work than the other two).
// Every message is two parts of the same sizes: a 72-byte prefix (the block
// header, wire version, seed) and block_bytes - 64 bytes of samples. The
// receiver is the same raw PULL loop for all three, timed from the first
// message's arrival to the last (the first is not counted). Every buffer is
// written before its timed window: the rings are mapped MAP_POPULATE and
// the simulated device has filled the first blocks before the first
// arrives; the buffer of zmq/buffer is filled at allocation. Both sockets
// have send and receive high-water marks of 1000 messages.
//
// Repetitions alternate the senders (sring, zmq/ring, zmq/buffer, sring, ...)
// so that drift hits all alike. Prints one RAW line per run, then per size
// min / median / max MB/s of samples for each sender and the per-repetition
// ratios sring / zmq (min / median / max); figures only, no verdict.
// The publishing loop: reclaim, pump, and when neither did anything while
// libzmq still holds blocks, sleep --reclaim-wait-us (50) and look again:
// nothing signals libzmq's release of a block, and a flat-out producer,
// waiting for that space, signals nothing either, so waiting on the ring's
// eventfd (what sring-publish does, 10 ms) stalls the pipeline each time the
// ring is all in flight. --reclaim-wait-us 0 measures that loop.
//   bazel run //bench:net_bench -- [--mib-per-run M] [--reps R] [--sizes B,B,...] [--reclaim-wait-us N]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <cstring>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <zmq.hpp>

#include "sring/consumer.hpp"
#include "sring/net.hpp"
#include "sring/ring.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  fmt::print(stderr, "net_bench: {}\n", what);
  std::exit(2);
}

// A loopback port the kernel just gave out (a fresh one per run, so that no
// run waits for TIME_WAIT of the one before).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket()");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    die("cannot get a loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// The plain zmq_send senders' socket, set as NetPublisher sets its own.
zmq::socket_t bound_push(zmq::context_t& context, const std::string& endpoint) {
  zmq::socket_t push(context, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 0);
  push.set(zmq::sockopt::sndhwm, 1000);  // NetPublisher's default
  push.bind(endpoint);
  return push;
}

// The receiver every sender is measured against: a PULL socket connected
// to `endpoint` that receives `blocks` two-part messages; seconds from the
// first to the last.
double receive_from(zmq::context_t& context, const std::string& endpoint, uint64_t blocks) {
  zmq::socket_t pull(context, zmq::socket_type::pull);
  pull.set(zmq::sockopt::linger, 0);
  pull.set(zmq::sockopt::rcvhwm, 1000);  // NetSubscriber's default
  pull.connect(endpoint);
  zmq::message_t part;
  Clock::time_point first{};
  for (uint64_t i = 0; i < blocks; ++i) {
    bool more = true;
    while (more) {
      if (!pull.recv(part, zmq::recv_flags::none)) die("recv");
      more = part.more();
    }
    if (i == 0) first = Clock::now();
  }
  return std::chrono::duration<double>(Clock::now() - first).count();
}

// (a) A simulated device flat out (sample_rate 0: it waits for room, drops
// nothing) into a ring that a NetPublisher sends from, in place.
// How long the publishing loop sleeps while libzmq holds blocks and nothing
// else happened (--reclaim-wait-us; 0: wait on the ring's eventfd, up to
// 10 ms, as sring-publish does).
unsigned wait_us = 50;

// The source both ring-fed senders share: a flat-out simulated device on a
// ring of at least 16 MiB (and 8 blocks), an eventfd between them, and a
// Consumer on the ring. Members are destroyed in reverse order: the
// consumer and the ring before the device and the host ring.
struct SimulatedSource {
  explicit SimulatedSource(uint32_t block_bytes)
      : config(make_config(block_bytes)),
        host(unwrap(sring::sim::HostRing::create(std::max<uint64_t>(16u << 20, 8ull * block_bytes)))),
        device(host, config),
        ring(unwrap(sring::Ring::attach(unwrap(host.duplicate_fd()), sring::Ring::Access::kConsumer))) {
    sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!efd.valid() || !device.set_eventfd(efd.get()) || !ring.use_eventfd(std::move(efd))) die("eventfd");
    consumer.emplace(ring);
  }
  static sring::sim::SimConfig make_config(uint32_t block_bytes) {
    sring::sim::SimConfig c;
    c.sample_rate = 0;
    c.block_bytes = block_bytes;
    return c;
  }
  template <typename T>
  static T unwrap(sring::Expected<T> value) {
    if (!value) die(value.error().message);
    return std::move(*value);
  }

  sring::sim::SimConfig config;
  sring::sim::HostRing host;
  sring::sim::SimDevice device;
  sring::Ring ring;
  std::optional<sring::Consumer> consumer;
};

double run_sring(zmq::context_t& context, uint32_t block_bytes, uint64_t blocks) {
  const std::string endpoint = fmt::format("tcp://127.0.0.1:{}", free_port());
  std::atomic<bool> bound{false};
  std::atomic<bool> done{false};
  std::string failure;
  std::thread sender([&] {
    // Everything the sender owns lives in this thread (a NetPublisher
    // belongs to the thread that made it); destroyed in reverse order: the
    // publisher waits for libzmq to free every block before the ring goes.
    SimulatedSource source(block_bytes);
    sring::sim::SimDevice& device = source.device;
    sring::Consumer& consumer = *source.consumer;
    sring::NetPublisherOptions options;
    options.linger = std::chrono::milliseconds(0);  // what the receiver did not take is dropped at the end
    auto publisher = sring::NetPublisher::bind(consumer, context, sring::NetPattern::kPushPull, endpoint, options);
    if (!publisher) die(publisher.error().message);
    bound = true;
    if (!device.start()) die("cannot start the simulated device");
    while (!done.load(std::memory_order_acquire)) {
      auto reclaimed = (*publisher)->reclaim();
      auto sent = (*publisher)->pump();
      if (!reclaimed || !sent) die("publisher failed");
      if ((*publisher)->backed_up()) {
        (*publisher)->wait_writable(std::chrono::milliseconds(10));
      } else if (*sent == 0 && *reclaimed == 0) {
        if ((*publisher)->unreleased() > 0 && wait_us > 0) {
          // Blocks still held by libzmq: their release signals nothing (no
          // eventfd: the producer is what writes it, and a flat-out
          // producer is waiting for this space), so a wait on the ring
          // would sleep its whole timeout. Look again shortly.
          std::this_thread::sleep_for(std::chrono::microseconds(wait_us));
        } else {
          (void)consumer.wait(sring::WaitStrategy::kEventfd, std::chrono::milliseconds(10));
        }
      }
    }
    device.request_stop();
    device.join();
  });
  while (!bound.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const double seconds = receive_from(context, endpoint, blocks);
  done.store(true, std::memory_order_release);
  sender.join();
  return seconds;
}

// zmq/ring: the same simulated device and ring as run_sring(), read by a
// Consumer in place, each block sent with two plain zmq_send calls (the
// prefix built from the header, then the samples, both copied by libzmq),
// exactly `blocks` of them (a PUSH socket blocks once its peer is gone).
double run_plain_ring(zmq::context_t& context, uint32_t block_bytes, uint64_t blocks) {
  const std::string endpoint = fmt::format("tcp://127.0.0.1:{}", free_port());
  zmq::socket_t push = bound_push(context, endpoint);
  std::thread sender([&] {
    SimulatedSource source(block_bytes);
    const sring::sim::SimConfig& config = source.config;
    sring::sim::SimDevice& device = source.device;
    sring::Consumer& consumer = *source.consumer;
    sring::NetBlockPrefix prefix{};
    prefix.pattern_seed = config.pattern_seed;
    if (!device.start()) die("cannot start the simulated device");
    uint64_t sent = 0;
    while (sent < blocks) {
      auto n = consumer.consume(
          [&](const sring::Block& block) {
            std::memcpy(&prefix.header, &block.header(), sizeof prefix.header);
            if (zmq_send(push.handle(), &prefix, sizeof prefix, ZMQ_SNDMORE) < 0 ||
                zmq_send(push.handle(), block.samples().data(), block.samples().size_bytes(), 0) < 0) {
              die(fmt::format("zmq_send: {}", zmq_strerror(zmq_errno())));
            }
          },
          blocks - sent);
      if (!n) die(n.error().message);
      sent += *n;
      if (*n == 0) (void)consumer.wait(sring::WaitStrategy::kEventfd, std::chrono::milliseconds(10));
    }
    device.request_stop();
    device.join();
  });
  const double seconds = receive_from(context, endpoint, blocks);
  sender.join();
  return seconds;
}

// zmq/buffer: plain zmq_send (which copies) of the same two parts from one
// preallocated buffer, written before the clock starts.
double run_plain(zmq::context_t& context, uint32_t block_bytes, uint64_t blocks) {
  const std::string endpoint = fmt::format("tcp://127.0.0.1:{}", free_port());
  zmq::socket_t push = bound_push(context, endpoint);
  std::vector<uint8_t> prefix(sizeof(sring::NetBlockPrefix), 0);
  std::vector<uint8_t> samples(block_bytes - SRING_BLOCK_HEADER_SIZE, 0x5a);
  std::thread sender([&] {
    for (uint64_t i = 0; i < blocks; ++i) {
      if (zmq_send(push.handle(), prefix.data(), prefix.size(), ZMQ_SNDMORE) < 0 ||
          zmq_send(push.handle(), samples.data(), samples.size(), 0) < 0) {
        die(fmt::format("zmq_send: {}", zmq_strerror(zmq_errno())));
      }
    }
  });
  const double seconds = receive_from(context, endpoint, blocks);
  sender.join();
  return seconds;
}

}  // namespace

namespace {

struct Spread {
  double min, median, max;
};

Spread spread(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {v.front(), median, v.back()};
}

std::vector<uint32_t> parse_sizes(const char* text) {
  std::vector<uint32_t> sizes;
  for (const char* p = text; *p;) {
    char* end = nullptr;
    const unsigned long value = std::strtoul(p, &end, 10);
    if (end == p || value < 2 * SRING_BLOCK_HEADER_SIZE || value % 64 != 0 || value > (64u << 20)) {
      die("--sizes: block sizes in bytes, multiples of 64, comma-separated");
    }
    sizes.push_back(static_cast<uint32_t>(value));
    p = *end == ',' ? end + 1 : end;
  }
  return sizes;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t mib_per_run = 256;
  int reps = 3;
  std::vector<uint32_t> sizes = {8192u, 65536u, 1u << 20};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view option = argv[i];
    if (option == "--mib-per-run") {
      mib_per_run = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (option == "--reps") {
      reps = std::atoi(argv[i + 1]);
    } else if (option == "--reclaim-wait-us") {
      wait_us = static_cast<unsigned>(std::strtoul(argv[i + 1], nullptr, 10));
    } else if (option == "--sizes") {
      sizes = parse_sizes(argv[i + 1]);
    } else {
      die(fmt::format("unknown option {} (--mib-per-run M, --reps R, --sizes B,B,..., --reclaim-wait-us N)", option));
    }
  }
  if (argc % 2 == 0) die("options take a value: --mib-per-run M, --reps R, --sizes B,B,...");
  if (mib_per_run == 0 || reps < 1) die("--mib-per-run and --reps: at least 1");
  zmq::context_t context;
  fmt::print("tcp loopback PUSH->PULL, {} MiB of samples per run, {} repetitions, senders alternated; "
             "sring's loop re-checks held blocks every {} us{}\n",
             mib_per_run, reps, wait_us, wait_us ? "" : " (0: waits on the ring's eventfd, up to 10 ms)");
  struct Sender {
    const char* name;
    double (*run)(zmq::context_t&, uint32_t, uint64_t);
  };
  const Sender senders[] = {{"sring", run_sring}, {"zmq/ring", run_plain_ring}, {"zmq/buffer", run_plain}};
  struct Row {
    uint32_t block_bytes;
    uint64_t blocks;
    std::vector<double> mbs[3];
  };
  std::vector<Row> rows;
  for (const uint32_t block_bytes : sizes) {
    const uint64_t sample_bytes = block_bytes - SRING_BLOCK_HEADER_SIZE;
    const uint64_t blocks = std::max<uint64_t>(16, (mib_per_run << 20) / sample_bytes);
    Row row{block_bytes, blocks, {}};
    for (int r = 0; r < reps; ++r) {
      for (size_t s = 0; s < 3; ++s) {
        // The first block is not timed (the clock starts when it arrives).
        const double seconds = senders[s].run(context, block_bytes, blocks);
        const double mbs = double(blocks - 1) * sample_bytes / seconds / 1e6;
        row.mbs[s].push_back(mbs);
        fmt::print("RAW block={} blocks={} rep={} sender={} seconds={:.4f} mbps={:.1f}\n", block_bytes, blocks,
                   r + 1, senders[s].name, seconds, mbs);
        std::fflush(stdout);
      }
    }
    rows.push_back(std::move(row));
  }
  fmt::print("\nMB/s of samples, min / median / max over {} repetitions:\n", reps);
  fmt::print("{:>9} {:>26} {:>26} {:>26}\n", "block", "sring (NetPublisher)", "zmq_send from the ring",
             "zmq_send from a buffer");
  for (const Row& row : rows) {
    fmt::print("{:>9}", row.block_bytes);
    for (const auto& v : row.mbs) {
      const Spread m = spread(v);
      fmt::print(" {:>8.0f} / {:>6.0f} / {:>6.0f}", m.min, m.median, m.max);
    }
    fmt::print("\n");
  }
  fmt::print("\nratios per repetition (sring / zmq_send of the same repetition), min / median / max:\n");
  for (const Row& row : rows) {
    for (size_t other = 1; other < 3; ++other) {
      std::vector<double> ratios;
      std::string each;
      for (size_t r = 0; r < row.mbs[0].size(); ++r) {
        ratios.push_back(row.mbs[0][r] / row.mbs[other][r]);
        each += fmt::format("{}{:.2f}", each.empty() ? "" : " ", ratios.back());
      }
      const Spread m = spread(ratios);
      fmt::print("{:>9}  sring / {:<11} {:.2f} / {:.2f} / {:.2f}   ({})\n", row.block_bytes, senders[other].name,
                 m.min, m.median, m.max, each);
    }
  }
  return 0;
}
