// Streaming throughput against plain libzmq, in one run (docs/streaming.md):
// N blocks of one size over tcp loopback PUSH -> PULL,
//   (a) sring::NetPublisher from a flat-out simulated ring (zero-copy sends),
//   (b) plain zmq_send of two-part messages of the same sizes (the same
//       72-byte first part, then the samples) from one preallocated buffer.
// The receiver is the same raw PULL loop in both, so the figures compare the
// senders. Prints MB/s of samples per repetition, the spread over them, and
// the ratio of medians; figures only, no verdict (the machine is shared).
//   bazel run -c opt //bench:net_bench -- [--mib-per-run M] [--reps R]
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
#include <string>
#include <string_view>
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

// Receives `blocks` two-part messages; seconds from the first to the last.
double receive(zmq::socket_t& pull, uint64_t blocks) {
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
double run_sring(zmq::context_t& context, uint32_t block_bytes, uint64_t blocks) {
  const std::string endpoint = fmt::format("tcp://127.0.0.1:{}", free_port());
  std::atomic<bool> bound{false};
  std::atomic<bool> done{false};
  std::string failure;
  std::thread sender([&] {
    // Everything the sender owns lives in this thread (a NetPublisher
    // belongs to the thread that made it); destroyed in reverse order: the
    // publisher waits for libzmq to free every block before the ring goes.
    const uint64_t ring_size = std::max<uint64_t>(16u << 20, 8ull * block_bytes);
    sring::sim::SimConfig config;
    config.sample_rate = 0;
    config.block_bytes = block_bytes;
    auto host = sring::sim::HostRing::create(ring_size);
    if (!host) die(host.error().message);
    auto fd = host->duplicate_fd();
    if (!fd) die(fd.error().message);
    auto ring = sring::Ring::attach(std::move(*fd), sring::Ring::Access::kConsumer);
    if (!ring) die(ring.error().message);
    sring::sim::SimDevice device(*host, config);
    sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!efd.valid() || !device.set_eventfd(efd.get()) || !ring->use_eventfd(std::move(efd))) die("eventfd");
    sring::Consumer consumer(*ring);
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
        (void)consumer.wait(sring::WaitStrategy::kEventfd, std::chrono::milliseconds(10));
      }
    }
    device.request_stop();
    device.join();
  });
  while (!bound.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  double seconds = 0;
  {
    zmq::socket_t pull(context, zmq::socket_type::pull);
    pull.set(zmq::sockopt::linger, 0);
    pull.connect(endpoint);
    seconds = receive(pull, blocks);
  }
  done.store(true, std::memory_order_release);
  sender.join();
  return seconds;
}

// (b) Plain libzmq: zmq_send (which copies) of the same two parts from one
// preallocated buffer.
double run_plain(zmq::context_t& context, uint32_t block_bytes, uint64_t blocks) {
  const std::string endpoint = fmt::format("tcp://127.0.0.1:{}", free_port());
  zmq::socket_t push(context, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 0);
  push.set(zmq::sockopt::sndhwm, 1000);  // NetPublisher's default
  push.bind(endpoint);
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
  double seconds = 0;
  {
    zmq::socket_t pull(context, zmq::socket_type::pull);
    pull.set(zmq::sockopt::linger, 0);
    pull.connect(endpoint);
    seconds = receive(pull, blocks);
  }
  sender.join();
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t mib_per_run = 256;
  int reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view option = argv[i];
    if (option == "--mib-per-run") {
      mib_per_run = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (option == "--reps") {
      reps = std::atoi(argv[i + 1]);
    } else {
      die(fmt::format("unknown option {} (--mib-per-run M, --reps R)", option));
    }
  }
  if (mib_per_run == 0 || reps < 1) die("--mib-per-run and --reps: at least 1");
  zmq::context_t context;
  fmt::print("tcp loopback PUSH->PULL, {} MiB of samples per run, {} repetitions; MB/s of samples min/median/max\n",
             mib_per_run, reps);
  for (const uint32_t block_bytes : {8192u, 65536u, 1u << 20}) {
    const uint64_t sample_bytes = block_bytes - SRING_BLOCK_HEADER_SIZE;
    const uint64_t blocks = std::max<uint64_t>(16, (mib_per_run << 20) / sample_bytes);
    std::vector<double> sring_mbs, plain_mbs;
    for (int r = 0; r < reps; ++r) {
      // Alternated, so that a change in the machine's load hits both alike.
      // The first block is not timed (the clock starts when it arrives).
      sring_mbs.push_back(double(blocks - 1) * sample_bytes / run_sring(context, block_bytes, blocks) / 1e6);
      plain_mbs.push_back(double(blocks - 1) * sample_bytes / run_plain(context, block_bytes, blocks) / 1e6);
    }
    std::sort(sring_mbs.begin(), sring_mbs.end());
    std::sort(plain_mbs.begin(), plain_mbs.end());
    const auto median = [](const std::vector<double>& v) { return v[v.size() / 2]; };
    fmt::print("block {:>7} B x {:>6}: sring {:7.0f} / {:7.0f} / {:7.0f}   zmq_send {:7.0f} / {:7.0f} / {:7.0f}   "
               "ratio sring/zmq_send {:.2f}\n",
               block_bytes, blocks, sring_mbs.front(), median(sring_mbs), sring_mbs.back(), plain_mbs.front(),
               median(plain_mbs), plain_mbs.back(), median(sring_mbs) / median(plain_mbs));
  }
  return 0;
}
