// The host-side DMA model (devices/dma-model/, issue 24) against a fake QEMU
// and a fake guest driver: real Unix socket, real memfd, real eventfds, a
// real guest-RAM file in /dev/shm. The test is QEMU (it checks the ivshmem
// handshake message by message) and the guest driver (it registers DMA
// windows, posts descriptors, starts and stops the device, waits on its
// MSI-X vector eventfds and reads completions), and verifies every sample
// the model wrote into "guest RAM" from its index alone.
//
// The guest RAM layout of the tests: 16 MiB of file, lowmem 8 MiB, so
// guest-physical [0, 8 MiB) is file [0, 8 MiB) and [4 GiB, 4 GiB + 8 MiB)
// is file [8 MiB, 16 MiB). The test computes file offsets itself
// (file_offset()), not with the model's GuestRam.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <endian.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "sring/detail/barriers.hpp"
#include "sring/dma/model.hpp"
#include "sring/sring_abi.h"
#include "sring/sring_dma_model.h"
#include "sring/sring_pattern.h"
#include "sring/unique_fd.hpp"

namespace {

using namespace std::chrono_literals;
using sring::load_acquire;
using sring::load_relaxed;
using sring::Mapping;
using sring::store_release;
using sring::UniqueFd;

constexpr uint64_t kFourGiB = 1ULL << 32;
constexpr uint64_t kLowmem = 8ULL << 20;
constexpr uint64_t kRamSize = 16ULL << 20;
constexpr uint64_t kEntries = SRING_DMA_RING_ENTRIES;
constexpr uint32_t kBlockBytes = 4096;
constexpr uint32_t kSamples = (kBlockBytes - 64) / 2;  // 2016
constexpr uint32_t kSampleBytes = kSamples * 2;         // 4032
constexpr uint32_t kSeed = 0x5eed1234;
// Just below a 64 Ki-sample chunk boundary: the pattern's chunk mask
// changes inside the stream.
constexpr uint64_t kFirstSample = 3 * 65536 - 5000;
constexpr uint8_t kPoison = 0xA5;

uint64_t file_offset(uint64_t gpa) { return gpa < kLowmem ? gpa : gpa - kFourGiB + kLowmem; }

uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

bool contains(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

std::string fd_target(int fd) {
  char buffer[256] = {};
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), buffer, sizeof(buffer) - 1);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : std::string();
}

// One ivshmem server message as QEMU reads it: 8 bytes, with the fds that
// came with them.
struct Message {
  int64_t value = 0;
  std::vector<UniqueFd> fds;
};

bool receive_message(int socket, Message* out) {
  uint64_t wire = 0;
  iovec iov{&wire, sizeof(wire)};
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  if (::recvmsg(socket, &message, MSG_CMSG_CLOEXEC | MSG_WAITALL) != static_cast<ssize_t>(sizeof(wire))) {
    return false;
  }
  out->value = static_cast<int64_t>(le64toh(wire));
  for (cmsghdr* h = CMSG_FIRSTHDR(&message); h != nullptr; h = CMSG_NXTHDR(&message, h)) {
    if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
    const size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; ++i) {
      int fd = -1;
      std::memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
      out->fds.emplace_back(fd);
    }
  }
  return true;
}

sring_dma_desc_segment seg(uint64_t addr, uint32_t bytes) { return sring_dma_desc_segment{addr, bytes, 0}; }

sring_dma_config good_config(uint64_t rate) {
  sring_dma_config c{};
  c.sample_rate = rate;
  c.first_sample = kFirstSample;
  c.block_bytes = kBlockBytes;
  c.pattern_seed = kSeed;
  c.coalesce_blocks = 1;
  c.coalesce_timeout_us = 0;
  c.flags = 0;
  return c;
}

// The fake QEMU and, through what it was handed, the fake guest driver.
class FakeGuest {
 public:
  UniqueFd socket;
  std::vector<Message> handshake;  // as received, in order
  Mapping bar_mapping;
  sring_dma_bar2* bar = nullptr;
  Mapping ram_mapping;
  int doorbell[SRING_DMA_NR_VECTORS] = {-1, -1};  // the model's vectors (peer 1)
  int vector[SRING_DMA_NR_VECTORS] = {-1, -1};    // ours
  uint64_t desc_prod = 0;
  uint64_t comp_cons = 0;
  uint64_t interrupts_seen[SRING_DMA_NR_VECTORS] = {0, 0};

  uint8_t* ram(uint64_t gpa) { return static_cast<uint8_t*>(ram_mapping.get()) + file_offset(gpa); }

  void ring(uint32_t v) {
    const uint64_t one = 1;
    ASSERT_EQ(::write(doorbell[v], &one, sizeof(one)), 8);
  }

  void post(uint64_t tag, const std::vector<sring_dma_desc_segment>& segments) {
    // Pairs with the model's store-release of desc_cons: the entry is free.
    ASSERT_LT(desc_prod - load_acquire(bar->desc_cons), kEntries) << "descriptor ring full";
    sring_dma_desc& d = bar->desc[desc_prod & (kEntries - 1)];
    std::memset(&d, 0, sizeof(d));
    d.tag = tag;
    d.nr_segments = static_cast<uint32_t>(segments.size());
    for (size_t i = 0; i < segments.size(); ++i) d.segments[i] = segments[i];
    ++desc_prod;
    // Pairs with the model's load-acquire of desc_prod.
    store_release(bar->desc_prod, desc_prod);
    ring(SRING_DMA_DOORBELL_DESC);
  }

  void start(const sring_dma_config& config, const std::vector<sring_dma_window>& windows = {}) {
    for (size_t i = 0; i < windows.size(); ++i) bar->windows[i] = windows[i];
    bar->config = config;
    control(SRING_DMA_CONTROL_START);
  }

  // Returns the control word's sequence number, as a driver does.
  uint32_t stop() { return control(SRING_DMA_CONTROL_STOP); }

  uint32_t control(uint32_t word) {
    // Pairs with the model's load-acquire of control before it reads the
    // configuration; then control_seq, which it loads first.
    store_release(bar->control, word);
    const uint32_t seq = load_relaxed(bar->control_seq) + 1;
    store_release(bar->control_seq, seq);
    ring(SRING_DMA_DOORBELL_CONTROL);
    return seq;
  }

  // The model acted on control word seq (its state change published).
  bool wait_ack(uint32_t seq, std::chrono::milliseconds timeout = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (load_acquire(bar->control_ack) != seq) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }

  void fault(uint32_t kind, uint64_t arg) {
    bar->fault.kind = kind;
    bar->fault.arg = arg;
    const uint64_t seq = load_relaxed(bar->fault.request_seq) + 1;
    store_release(bar->fault.request_seq, seq);
    ring(SRING_DMA_DOORBELL_CONTROL);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (load_acquire(bar->fault.ack_seq) != seq && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    ASSERT_EQ(load_acquire(bar->fault.ack_seq), seq) << "fault not acknowledged";
  }

  // Waits for an interrupt on our vector v; returns the eventfd's count (how
  // many raises coalesced), 0 on timeout.
  uint64_t wait_vector(uint32_t v, std::chrono::milliseconds timeout) {
    pollfd pfd{vector[v], POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) != 1) return 0;
    uint64_t count = 0;
    if (::read(vector[v], &count, sizeof(count)) != sizeof(count)) return 0;
    interrupts_seen[v] += count;
    return count;
  }

  // The driver's state wait: read the state, sleep on the state vector.
  bool wait_state(uint32_t want, std::chrono::milliseconds timeout = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      // Pairs with the model's store-release of state: final indexes and
      // counters are visible after this.
      if (load_acquire(bar->state) == want) return true;
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return false;
      wait_vector(SRING_DMA_VECTOR_STATE,
                  std::min<std::chrono::milliseconds>(
                      20ms, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) + 1ms));
    }
  }

  std::vector<sring_dma_completion> drain() {
    // Pairs with the model's store-release of comp_prod: entries and
    // samples up to it are complete.
    const uint64_t prod = load_acquire(bar->comp_prod);
    std::vector<sring_dma_completion> out;
    for (; comp_cons != prod; ++comp_cons) out.push_back(bar->comp[comp_cons & (kEntries - 1)]);
    // Pairs with the model's load-acquire of comp_cons before it reuses them.
    store_release(bar->comp_cons, comp_cons);
    return out;
  }

  // Sleeps on the completion vector and hands each completion drained to
  // each(c) until done() says so or `limit` passes: interrupts coalesce, so
  // every wake drains whatever is there.
  template <typename Each, typename Done>
  void collect(std::chrono::seconds limit, Each each, Done done) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      wait_vector(SRING_DMA_VECTOR_COMPLETION, 100ms);
      for (const auto& c : drain()) each(c);
    }
  }

  uint64_t counter(const __u64& c) const { return load_relaxed(c); }
};

// Mismatching samples of a block gathered from its segments, in order.
std::string fmt_hex(uint64_t v) {
  std::ostringstream out;
  out << std::hex << v;
  return out.str();
}

size_t bad_samples(FakeGuest& guest, const std::vector<sring_dma_desc_segment>& segments, uint64_t first,
                   uint32_t count) {
  std::vector<uint8_t> bytes;
  for (const auto& s : segments) {
    const uint8_t* p = guest.ram(s.addr);
    bytes.insert(bytes.end(), p, p + s.bytes);
  }
  if (bytes.size() != static_cast<size_t>(count) * 2) return count;
  size_t bad = 0;
  for (uint32_t k = 0; k < count; ++k) {
    uint16_t v = 0;
    std::memcpy(&v, bytes.data() + 2 * k, 2);
    if (v != sring_pattern_sample(first + k, kSeed)) ++bad;
  }
  return bad;
}

std::string unique_name(const char* what) {
  static std::atomic<int> counter{0};
  return std::string(what) + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// A Unix socket connected to path, as QEMU's socket chardev connects: the
// connect() succeeds as soon as someone listens (the backlog), whether or
// not the server has accepted it.
UniqueFd connect_socket(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fd;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) return UniqueFd();
  return fd;
}

// What QEMU's ivshmem-doorbell does with a server's messages: 7 of them (the
// model serves one guest and is peer 1 with 2 vectors), BAR2 mapped, the
// eventfds kept. Fails (rather than hangs) if they do not come in time.
void receive_handshake(FakeGuest& guest, uint64_t shm_size, std::chrono::milliseconds timeout = 10000ms) {
  for (int i = 0; i < 7; ++i) {
    pollfd pfd{guest.socket.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&pfd, 1, static_cast<int>(timeout.count())), 1) << "no handshake message " << i;
    Message m;
    ASSERT_TRUE(receive_message(guest.socket.get(), &m)) << "message " << i;
    guest.handshake.push_back(std::move(m));
  }
  auto& h = guest.handshake;
  ASSERT_EQ(h[2].fds.size(), 1u);
  void* addr = ::mmap(nullptr, shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, h[2].fds[0].get(), 0);
  ASSERT_NE(addr, MAP_FAILED);
  guest.bar_mapping = Mapping(addr, shm_size);
  guest.bar = static_cast<sring_dma_bar2*>(addr);
  for (uint32_t v = 0; v < SRING_DMA_NR_VECTORS; ++v) {
    ASSERT_EQ(h[3 + v].fds.size(), 1u);
    ASSERT_EQ(h[5 + v].fds.size(), 1u);
    guest.doorbell[v] = h[3 + v].fds[0].get();
    guest.vector[v] = h[5 + v].fds[0].get();
  }
}

class DmaModelTest : public ::testing::Test {
 protected:
  sring::dma::ModelOptions options;
  std::string ram_path;
  std::unique_ptr<sring::dma::Model> model;
  std::thread server;
  sring::Status served = sring::ok();
  bool serving = false;
  FakeGuest guest;
  // The model's log lines (ModelOptions::log), written by the server thread.
  std::mutex log_mutex;
  std::vector<std::string> log_lines;

  // Options of a fixture that needs others (reconnect).
  virtual void configure(sring::dma::ModelOptions&) {}

  void SetUp() override {
    ram_path = "/dev/shm/" + unique_name("sring-dma-test-ram");
    {
      UniqueFd fd(::open(ram_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      ASSERT_TRUE(fd.valid()) << ram_path << ": " << std::strerror(errno);
      ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(kRamSize)), 0);
    }
    guest.ram_mapping = map_ram();
    ASSERT_TRUE(guest.ram_mapping.valid());
    std::memset(guest.ram_mapping.get(), kPoison, kRamSize);
    options.socket_path = "/tmp/" + unique_name("sring-dma-test") + ".sock";
    options.ram_path = ram_path;
    options.lowmem = kLowmem;
    options.shm_size = 2 * SRING_DMA_BAR2_MIN_SIZE;
    options.max_rate = 100000000;
    options.accept_timeout = 10s;
    options.log = [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(log_mutex);
      log_lines.push_back(line);
    };
    configure(options);
    auto created = sring::dma::Model::create(options);
    ASSERT_TRUE(created) << created.error().message;
    model = std::make_unique<sring::dma::Model>(std::move(*created));
    serving = true;
    server = std::thread([this] { served = model->serve(); });
    connect_guest(guest);
  }

  void TearDown() override {
    // QEMU exits: EOF on the socket ends serve() with ok() (reconnect: it
    // waits for the next QEMU, and stop() ends it).
    guest.socket.reset();
    if (serving) {
      if (options.reconnect) model->stop();
      server.join();
      EXPECT_TRUE(served) << served.error().message;
    }
    ::unlink(ram_path.c_str());
  }

  // Guest RAM as another QEMU process would map it.
  Mapping map_ram() const {
    UniqueFd fd(::open(ram_path.c_str(), O_RDWR | O_CLOEXEC));
    if (!fd.valid()) return Mapping();
    void* addr = ::mmap(nullptr, kRamSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    return addr == MAP_FAILED ? Mapping() : Mapping(addr, kRamSize);
  }

  void connect_guest(FakeGuest& g) {
    // create() listens before it returns: connect works at once.
    g.socket = connect_socket(options.socket_path);
    ASSERT_TRUE(g.socket.valid()) << std::strerror(errno);
    receive_handshake(g, options.shm_size);
  }

  std::vector<std::string> lines_with(const std::string& what) {
    std::lock_guard<std::mutex> lock(log_mutex);
    std::vector<std::string> out;
    for (const auto& line : log_lines) {
      if (contains(line, what)) out.push_back(line);
    }
    return out;
  }

  // The log lines with `what` once there are `count` of them, or those
  // there are after `timeout`: the model logs after it published the state
  // a test waits for, so a line may come a moment later.
  std::vector<std::string> wait_lines(const std::string& what, size_t count,
                                      std::chrono::milliseconds timeout = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto lines = lines_with(what);
      if (lines.size() >= count || std::chrono::steady_clock::now() >= deadline) return lines;
      std::this_thread::sleep_for(2ms);
    }
  }

  std::string whole_log() {
    std::lock_guard<std::mutex> lock(log_mutex);
    std::string text;
    for (const auto& line : log_lines) text += line + "\n";
    return text;
  }
};

TEST_F(DmaModelTest, HandshakeIsTheIvshmemServerProtocol) {
  const auto& h = guest.handshake;
  const int64_t values[7] = {0, 0, -1, 1, 1, 0, 0};
  const size_t fds[7] = {0, 0, 1, 1, 1, 1, 1};
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(h[i].value, values[i]) << "message " << i;
    EXPECT_EQ(h[i].fds.size(), fds[i]) << "message " << i;
  }
  // Nothing more after the handshake.
  pollfd pfd{guest.socket.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 100), 0);

  EXPECT_EQ(fd_target(h[2].fds[0].get()).rfind("/memfd:", 0), 0u) << fd_target(h[2].fds[0].get());
  struct stat st {};
  ASSERT_EQ(::fstat(h[2].fds[0].get(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), options.shm_size);
  EXPECT_EQ(st.st_size & (st.st_size - 1), 0) << "BAR2 must be a power of two";
  for (int i = 3; i < 7; ++i) {
    EXPECT_EQ(fd_target(h[i].fds[0].get()), "anon_inode:[eventfd]") << "message " << i;
  }

  EXPECT_EQ(guest.bar->magic, SRING_DMA_MAGIC);
  EXPECT_EQ(guest.bar->version, SRING_DMA_VERSION);
  EXPECT_EQ(guest.bar->layout_bytes, sizeof(sring_dma_bar2));
  EXPECT_EQ(guest.bar->ring_entries, SRING_DMA_RING_ENTRIES);
  EXPECT_EQ(guest.bar->bar2_bytes, options.shm_size);
  EXPECT_EQ(guest.bar->max_sample_rate, options.max_rate);
  EXPECT_EQ(load_acquire(guest.bar->state), static_cast<__u32>(SRING_DMA_STATE_STOPPED));

  // The doorbells are the model's: each ring is counted. The vectors are
  // ours: a START raises the state vector, not a doorbell.
  guest.ring(0);
  guest.ring(1);
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (guest.counter(guest.bar->counters.doorbells) < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(guest.counter(guest.bar->counters.doorbells), 2u);
  guest.start(good_config(1000));
  EXPECT_GE(guest.wait_vector(SRING_DMA_VECTOR_STATE, 2000ms), 1u);
  EXPECT_EQ(load_acquire(guest.bar->state), static_cast<__u32>(SRING_DMA_STATE_RUNNING));
  guest.stop();
  EXPECT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
}

// The descriptor of tag t: its slot area is one of 16 blocks of 4 KiB, 8 in
// low RAM, 8 above 4 GiB. Odd slots come in 3 segments out of order within
// the area; slot 2 straddles the lowmem boundary of the file: 2016 bytes
// ending at lowmem, then 2016 bytes at 4 GiB (contiguous in the file, not
// in guest-physical addresses).
constexpr uint64_t kLowRing = 1ULL << 20;
constexpr uint64_t kHighRing = kFourGiB + (1ULL << 20);
constexpr uint32_t kSlots = 16;

uint64_t slot_area(uint32_t slot) {
  return slot < 8 ? kLowRing + slot * uint64_t{4096} : kHighRing + (slot - 8) * uint64_t{4096};
}

std::vector<sring_dma_desc_segment> segments_for(uint64_t tag) {
  const uint32_t slot = static_cast<uint32_t>(tag % kSlots);
  const uint64_t a = slot_area(slot);
  if (slot == 2) return {seg(kLowmem - kSampleBytes / 2, kSampleBytes / 2), seg(kFourGiB, kSampleBytes / 2)};
  if (slot % 2 == 1) return {seg(a + 3072, 1024), seg(a, 2000), seg(a + 2016, 1008)};
  return {seg(a, kSampleBytes)};
}

std::vector<sring_dma_window> stream_windows() {
  return {
      {kLowRing, 8 * 4096},
      {kHighRing, 8 * 4096},
      {kLowmem - kSampleBytes / 2, kSampleBytes / 2},
      {kFourGiB, kSampleBytes / 2},
  };
}

struct Accounting {
  uint64_t written = 0;
  uint64_t dropped = 0;
  uint64_t refused = 0;
  uint64_t next_first = kFirstSample;
  uint64_t bad = 0;
  uint64_t out_of_order = 0;
  uint64_t corrupted = 0;
  std::map<uint32_t, uint64_t> last_first_of_slot;  // of OK blocks

  // Checks one completion against the running sample index.
  void take(FakeGuest& guest, const sring_dma_completion& c) {
    if (c.first_sample != next_first || c.samples != kSamples) ++out_of_order;
    if (c.flags & SRING_DMA_COMP_DROPPED) {
      dropped += c.blocks;
    } else if (c.flags & SRING_DMA_COMP_ERROR) {
      refused += c.blocks;
    } else if (c.flags & SRING_DMA_COMP_OK) {
      ++written;
      if (c.flags & SRING_DMA_COMP_CORRUPTED) ++corrupted;
      bad += bad_samples(guest, segments_for(c.tag), c.first_sample, c.samples);
      last_first_of_slot[static_cast<uint32_t>(c.tag % kSlots)] = c.first_sample;
    }
    next_first = c.first_sample + uint64_t{c.blocks} * c.samples;
  }
};

TEST_F(DmaModelTest, StreamWritesEverySampleWhereTheDescriptorsSay) {
  // 2000 blocks/s, checker on with the slot areas as windows.
  sring_dma_config config = good_config(uint64_t{kSamples} * 2000);
  config.flags = SRING_DMA_CFG_CHECKER;
  const auto windows = stream_windows();
  config.nr_windows = static_cast<uint32_t>(windows.size());
  uint64_t tag = 0;
  for (; tag < kSlots; ++tag) guest.post(tag, segments_for(tag));
  guest.start(config, windows);
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));

  Accounting acc;
  guest.collect(
      20s,
      [&](const sring_dma_completion& c) {
        acc.take(guest, c);
        // The slot is verified: give it back as the next descriptor.
        if (c.flags & SRING_DMA_COMP_OK) guest.post(tag, segments_for(tag)), ++tag;
      },
      [&] { return acc.written >= 300; });
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
  for (const auto& c : guest.drain()) acc.take(guest, c);

  const auto& k = guest.bar->counters;
  EXPECT_GE(acc.written, 300u);
  EXPECT_EQ(acc.bad, 0u);
  EXPECT_EQ(acc.out_of_order, 0u);
  EXPECT_EQ(acc.refused, 0u);
  EXPECT_EQ(guest.counter(k.blocks_written), acc.written);
  EXPECT_EQ(guest.counter(k.blocks_dropped), acc.dropped);
  EXPECT_EQ(guest.counter(k.blocks_due), acc.written + acc.dropped);
  EXPECT_EQ(kFirstSample + guest.counter(k.blocks_due) * kSamples, acc.next_first);
  EXPECT_EQ(guest.counter(k.samples_written), acc.written * kSamples);
  EXPECT_EQ(guest.counter(k.descriptors_taken) + guest.counter(k.descriptors_abandoned), tag);
  EXPECT_EQ(load_acquire(guest.bar->desc_cons), guest.desc_prod) << "every descriptor taken or abandoned";

  // The last block of the slot that straddles lowmem, read as the file
  // holds it: one contiguous run of samples across the boundary.
  ASSERT_EQ(acc.last_first_of_slot.count(2), 1u);
  EXPECT_EQ(bad_samples(guest, {seg(kLowmem - kSampleBytes / 2, kSampleBytes)}, acc.last_first_of_slot[2],
                        kSamples),
            0u)
      << "the block across lowmem is not where the file continues";
}

TEST_F(DmaModelTest, DropsKeepTheSampleIndexRunning) {
  guest.start(good_config(uint64_t{kSamples} * 1000));  // 1000 blocks/s, no descriptor yet
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  Accounting acc;
  guest.collect(10s, [&](const sring_dma_completion& c) { acc.take(guest, c); }, [&] { return acc.dropped >= 10; });
  ASSERT_GE(acc.dropped, 10u);
  EXPECT_EQ(acc.written, 0u);
  // Now descriptors: the blocks written continue the index where the
  // dropped ones left it.
  for (uint64_t tag = 0; tag < 8; ++tag) guest.post(tag, segments_for(tag));
  guest.collect(10s, [&](const sring_dma_completion& c) { acc.take(guest, c); }, [&] { return acc.written >= 8; });
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
  for (const auto& c : guest.drain()) acc.take(guest, c);
  const auto& k = guest.bar->counters;
  EXPECT_EQ(acc.written, 8u);
  EXPECT_EQ(acc.bad, 0u);
  EXPECT_EQ(acc.out_of_order, 0u);
  EXPECT_EQ(guest.counter(k.blocks_due), acc.written + acc.dropped);
  EXPECT_EQ(guest.counter(k.blocks_dropped), acc.dropped);
  EXPECT_EQ(guest.counter(k.no_descriptor), acc.dropped);
  EXPECT_EQ(guest.counter(k.samples_dropped), acc.dropped * kSamples);
  EXPECT_EQ(kFirstSample + guest.counter(k.blocks_due) * kSamples, acc.next_first);
  EXPECT_EQ(guest.counter(k.drops_unreported), 0u);
}

TEST_F(DmaModelTest, CheckerRefusesWhatIsOutsideTheWindow) {
  constexpr uint64_t kWindow = 2ULL << 20;  // low RAM, two slots; poison after it
  struct Case {
    std::vector<sring_dma_desc_segment> segments;
    uint32_t error;
  };
  const std::vector<Case> cases = {
      // In RAM, but runs 64 bytes past the window into the guard.
      {{seg(kWindow + 4096 + 128, kSampleBytes)}, SRING_DMA_ERR_NOT_IN_WINDOW},
      // Its second segment entirely outside the window.
      {{seg(kWindow, 2016), seg(kWindow + 3 * 4096, 2016)}, SRING_DMA_ERR_NOT_IN_WINDOW},
      // The PCI hole between lowmem and 4 GiB.
      {{seg(kLowmem + 4096, kSampleBytes)}, SRING_DMA_ERR_NOT_IN_RAM},
      // Low RAM running on into the hole (contiguous in the file, not in
      // guest-physical addresses).
      {{seg(kLowmem - 2000, kSampleBytes)}, SRING_DMA_ERR_NOT_IN_RAM},
      // Beyond the end of guest RAM.
      {{seg(kFourGiB + (kRamSize - kLowmem) - 1000, kSampleBytes)}, SRING_DMA_ERR_NOT_IN_RAM},
      // Wrapping the address space.
      {{seg(~uint64_t{0} - 100, kSampleBytes)}, SRING_DMA_ERR_NOT_IN_RAM},
      // Segments that do not add up to the block, an odd one, too many.
      {{seg(kWindow, kSampleBytes - 64)}, SRING_DMA_ERR_BAD_SEGMENTS},
      {{seg(kWindow, 2015), seg(kWindow + 2016, 2017)}, SRING_DMA_ERR_BAD_SEGMENTS},
      {{}, SRING_DMA_ERR_BAD_SEGMENTS},
  };
  sring_dma_config config = good_config(0);  // as fast as descriptors come: no drops
  config.flags = SRING_DMA_CFG_CHECKER;
  config.nr_windows = 1;
  for (size_t i = 0; i < cases.size(); ++i) guest.post(100 + i, cases[i].segments);
  // A descriptor that says it has 17 segments, one more than it can hold.
  std::vector<sring_dma_desc_segment> sixteen;
  for (uint32_t i = 0; i < 16; ++i) sixteen.push_back(seg(kWindow + 256 * i, kSampleBytes / 16));
  guest.post(200, sixteen);
  guest.bar->desc[(guest.desc_prod - 1) & (kEntries - 1)].nr_segments = 17;
  guest.post(300, {seg(kWindow, kSampleBytes)});  // and a good one after them
  guest.start(config, {{kWindow, 2 * 4096}});
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));

  std::vector<sring_dma_completion> got;
  guest.collect(10s, [&](const sring_dma_completion& c) { got.push_back(c); },
                [&] { return got.size() >= cases.size() + 2; });
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
  ASSERT_EQ(got.size(), cases.size() + 2);
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(got[i].tag, 100 + i);
    EXPECT_EQ(got[i].flags, static_cast<__u32>(SRING_DMA_COMP_ERROR)) << "case " << i;
    EXPECT_EQ(got[i].error, cases[i].error) << "case " << i;
    EXPECT_EQ(got[i].first_sample, kFirstSample + i * kSamples) << "case " << i;
  }
  EXPECT_EQ(got[cases.size()].flags, static_cast<__u32>(SRING_DMA_COMP_ERROR));
  EXPECT_EQ(got[cases.size()].error, static_cast<__u32>(SRING_DMA_ERR_BAD_SEGMENTS));
  EXPECT_EQ(got.back().tag, 300u);
  EXPECT_EQ(got.back().flags, static_cast<__u32>(SRING_DMA_COMP_OK));
  EXPECT_EQ(bad_samples(guest, {seg(kWindow, kSampleBytes)}, got.back().first_sample, kSamples), 0u);

  const auto& k = guest.bar->counters;
  EXPECT_EQ(guest.counter(k.descriptors_refused), cases.size() + 1);
  EXPECT_EQ(guest.counter(k.window_faults), 2u);
  EXPECT_EQ(guest.counter(k.bad_addresses), 4u);
  EXPECT_EQ(guest.counter(k.blocks_written), 1u);
  EXPECT_EQ(guest.counter(k.blocks_dropped), cases.size() + 1);
  EXPECT_EQ(guest.counter(k.blocks_due), cases.size() + 2);

  // Nothing written anywhere but the good block: all of guest RAM still
  // holds the poison outside it.
  const auto* ram = static_cast<const uint8_t*>(guest.ram_mapping.get());
  size_t touched = 0;
  for (uint64_t off = 0; off < kRamSize; ++off) {
    if (off >= kWindow && off < kWindow + kSampleBytes) continue;
    if (ram[off] != kPoison) ++touched;
  }
  EXPECT_EQ(touched, 0u) << "the model wrote outside the one accepted descriptor";

  // Each refusal is in the log, once, with its reason and the segment at
  // fault: what a harness shows when a guest driver posts nonsense.
  const char* names[] = {"SRING_DMA_ERR_NOT_IN_WINDOW", "SRING_DMA_ERR_NOT_IN_WINDOW", "SRING_DMA_ERR_NOT_IN_RAM",
                         "SRING_DMA_ERR_NOT_IN_RAM",    "SRING_DMA_ERR_NOT_IN_RAM",    "SRING_DMA_ERR_NOT_IN_RAM",
                         "SRING_DMA_ERR_BAD_SEGMENTS",  "SRING_DMA_ERR_BAD_SEGMENTS",  "SRING_DMA_ERR_BAD_SEGMENTS"};
  ASSERT_EQ(std::size(names), cases.size());
  const auto refused = lines_with("refused descriptor");
  ASSERT_EQ(refused.size(), cases.size() + 1) << whole_log();
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_TRUE(contains(refused[i], "sring-dma-model: guest 1: refused descriptor tag 0x" + fmt_hex(100 + i)))
        << refused[i];
    EXPECT_TRUE(contains(refused[i], names[i])) << refused[i];
  }
  EXPECT_TRUE(contains(refused[0], "segment 0 of 1 at 0x201080 + 4032 bytes runs past the DMA window "
                                   "[0x200000, 0x202000)"))
      << refused[0];
  EXPECT_TRUE(contains(refused[1], "segment 1 of 2 at 0x203000 + 2016 bytes is in none of the 1 DMA windows"))
      << refused[1];
  EXPECT_TRUE(contains(refused[2], "segment 0 of 1 at 0x801000 + 4032 bytes is not guest RAM")) << refused[2];
  EXPECT_TRUE(contains(refused[6], "segments of 3968 bytes in all (0x200000 + 3968), the block is 4032 bytes"))
      << refused[6];
  EXPECT_TRUE(contains(refused[7], "segment 0 of 2 at 0x200000 + 2015 bytes: 0 or odd bytes")) << refused[7];
  EXPECT_TRUE(contains(refused[8], "0 segments (1 to 16)")) << refused[8];
  EXPECT_TRUE(contains(refused[9], "tag 0xc8") && contains(refused[9], "17 segments (1 to 16)")) << refused[9];
  EXPECT_TRUE(lines_with("not printed").empty()) << whole_log();
  EXPECT_TRUE(lines_with("FAILED").empty()) << whole_log();

  // Without the checker the first case is written: the window is what
  // refused it (the segment is RAM).
  guest.drain();
  config.flags = 0;
  config.nr_windows = 0;
  guest.post(400, cases[0].segments);
  guest.start(config);
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  std::vector<sring_dma_completion> again;
  guest.collect(5s, [&](const sring_dma_completion& c) { again.push_back(c); }, [&] { return !again.empty(); });
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].flags, static_cast<__u32>(SRING_DMA_COMP_OK));
  EXPECT_EQ(bad_samples(guest, cases[0].segments, again[0].first_sample, kSamples), 0u);
}

TEST_F(DmaModelTest, CoalescedInterruptsLoseNoCompletion) {
  // K = 8: 8 descriptors give one interrupt at the 8th completion. The
  // driver reads completions only when interrupted; it drains those 8, then
  // posts 5 more: they reach K never, and only the coalescing timeout can
  // tell the driver about them.
  sring_dma_config config = good_config(0);
  config.coalesce_blocks = 8;
  config.coalesce_timeout_us = 5000;
  for (uint64_t tag = 0; tag < 8; ++tag) guest.post(tag, segments_for(tag));
  guest.start(config);
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  std::vector<sring_dma_completion> got;
  ASSERT_EQ(guest.wait_vector(SRING_DMA_VECTOR_COMPLETION, 3000ms), 1u);
  for (const auto& c : guest.drain()) got.push_back(c);
  ASSERT_EQ(got.size(), 8u) << "one interrupt for K = 8 completions";
  for (uint64_t tag = 8; tag < 13; ++tag) guest.post(tag, segments_for(tag));
  const auto posted = std::chrono::steady_clock::now();
  ASSERT_EQ(guest.wait_vector(SRING_DMA_VECTOR_COMPLETION, 3000ms), 1u)
      << "the last completions were left without an interrupt";
  EXPECT_GE(std::chrono::steady_clock::now() - posted, 4ms) << "not the timeout's interrupt";
  for (const auto& c : guest.drain()) got.push_back(c);
  ASSERT_EQ(got.size(), 13u);
  for (const auto& c : got) {
    EXPECT_EQ(c.flags, static_cast<__u32>(SRING_DMA_COMP_OK));
    EXPECT_EQ(bad_samples(guest, segments_for(c.tag), c.first_sample, c.samples), 0u);
  }
  EXPECT_EQ(guest.counter(guest.bar->counters.interrupts), 2u);
  EXPECT_EQ(guest.interrupts_seen[SRING_DMA_VECTOR_COMPLETION], 2u);
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
  EXPECT_EQ(guest.counter(guest.bar->counters.interrupts), 2u) << "the stop had nothing left to signal";
}

TEST_F(DmaModelTest, PacedStreamCoalesces) {
  // K = 4 at 2000 blocks/s with 16 descriptors kept posted: fewer
  // interrupts than completions, and every completion seen in the end.
  sring_dma_config config = good_config(uint64_t{kSamples} * 2000);
  config.coalesce_blocks = 4;
  config.coalesce_timeout_us = 2000;
  uint64_t tag = 0;
  for (; tag < kSlots; ++tag) guest.post(tag, segments_for(tag));
  guest.start(config);
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  Accounting acc;
  uint64_t entries = 0;
  guest.collect(
      20s,
      [&](const sring_dma_completion& c) {
        ++entries;
        acc.take(guest, c);
        if (c.flags & SRING_DMA_COMP_OK) guest.post(tag, segments_for(tag)), ++tag;
      },
      [&] { return acc.written >= 200; });
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
  for (const auto& c : guest.drain()) ++entries, acc.take(guest, c);
  EXPECT_EQ(acc.bad, 0u);
  EXPECT_EQ(acc.out_of_order, 0u);
  const uint64_t interrupts = guest.counter(guest.bar->counters.interrupts);
  EXPECT_LT(interrupts, entries);
  EXPECT_GE(interrupts, entries / 4);
  EXPECT_EQ(guest.counter(guest.bar->counters.blocks_due), acc.written + acc.dropped);
}

TEST_F(DmaModelTest, StopAbandonsPostedDescriptorsAndWritesNoMore) {
  // 50 blocks/s, 16 descriptors posted: a couple complete, the rest are
  // still posted at the STOP.
  for (uint64_t tag = 0; tag < kSlots; ++tag) guest.post(tag, segments_for(tag));
  guest.start(good_config(uint64_t{kSamples} * 50));
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  std::vector<sring_dma_completion> got;
  guest.collect(10s, [&](const sring_dma_completion& c) { got.push_back(c); }, [&] { return got.size() >= 2; });
  ASSERT_GE(got.size(), 2u);
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
  for (const auto& c : guest.drain()) got.push_back(c);
  const auto& k = guest.bar->counters;
  const uint64_t taken = guest.counter(k.descriptors_taken);
  EXPECT_EQ(taken, got.size());
  EXPECT_EQ(guest.counter(k.descriptors_abandoned), kSlots - taken);
  EXPECT_EQ(load_acquire(guest.bar->desc_cons), guest.desc_prod) << "abandoned descriptors handed back";
  const uint64_t due = guest.counter(k.blocks_due);
  const uint64_t comp_prod = load_acquire(guest.bar->comp_prod);

  // Five block periods later: nothing more made, posted or written. The
  // slots of the abandoned descriptors still hold the poison.
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(guest.counter(k.blocks_due), due);
  EXPECT_EQ(load_acquire(guest.bar->comp_prod), comp_prod);
  for (uint64_t tag = taken; tag < kSlots; ++tag) {
    for (const auto& s : segments_for(tag)) {
      const uint8_t* p = guest.ram(s.addr);
      size_t written = 0;
      for (uint32_t i = 0; i < s.bytes; ++i) written += p[i] != kPoison;
      EXPECT_EQ(written, 0u) << "abandoned descriptor " << tag << " was written";
    }
  }
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].flags, static_cast<__u32>(SRING_DMA_COMP_OK));
    EXPECT_EQ(bad_samples(guest, segments_for(got[i].tag), got[i].first_sample, kSamples), 0u);
  }

  // And it starts again, where the driver says the stream continues.
  sring_dma_config again = good_config(0);
  again.first_sample = 12345;
  guest.post(50, segments_for(4));
  guest.start(again);
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  std::vector<sring_dma_completion> more;
  guest.collect(5s, [&](const sring_dma_completion& c) { more.push_back(c); }, [&] { return !more.empty(); });
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(more[0].tag, 50u);
  EXPECT_EQ(more[0].first_sample, 12345u);
  EXPECT_EQ(bad_samples(guest, segments_for(4), 12345, kSamples), 0u);
  EXPECT_EQ(load_relaxed(guest.bar->start_count), 2u);
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
}

TEST_F(DmaModelTest, NonsenseConfigurationsAreRefused) {
  struct Case {
    const char* what;
    sring_dma_config config;
    uint32_t error;
  };
  std::vector<Case> cases;
  auto add = [&](const char* what, auto change, uint32_t error) {
    sring_dma_config c = good_config(uint64_t{kSamples} * 1000);
    change(c);
    cases.push_back({what, c, error});
  };
  add("block not a multiple of 64", [](auto& c) { c.block_bytes = 4000; }, SRING_DMA_ERR_BAD_CONFIG);
  add("block too small", [](auto& c) { c.block_bytes = 64; }, SRING_DMA_ERR_BAD_CONFIG);
  add("block too large", [](auto& c) { c.block_bytes = 2 << 20; }, SRING_DMA_ERR_BAD_CONFIG);
  add("rate above --max-rate", [](auto& c) { c.sample_rate = 100000001; }, SRING_DMA_ERR_BAD_CONFIG);
  add("rate absurd", [](auto& c) { c.sample_rate = ~uint64_t{0}; }, SRING_DMA_ERR_BAD_CONFIG);
  add("K = 0", [](auto& c) { c.coalesce_blocks = 0; }, SRING_DMA_ERR_BAD_CONFIG);
  add("K > ring", [](auto& c) { c.coalesce_blocks = 65; }, SRING_DMA_ERR_BAD_CONFIG);
  add("K > 1 with no timeout", [](auto& c) { c.coalesce_blocks = 4, c.coalesce_timeout_us = 0; },
      SRING_DMA_ERR_BAD_CONFIG);
  add("timeout > 1 s", [](auto& c) { c.coalesce_timeout_us = 1000001; }, SRING_DMA_ERR_BAD_CONFIG);
  add("unknown flag", [](auto& c) { c.flags = 0x80; }, SRING_DMA_ERR_BAD_CONFIG);
  add("checker, no window", [](auto& c) { c.flags = SRING_DMA_CFG_CHECKER, c.nr_windows = 0; },
      SRING_DMA_ERR_BAD_WINDOW);
  add("checker, too many windows",
      [](auto& c) { c.flags = SRING_DMA_CFG_CHECKER, c.nr_windows = SRING_DMA_MAX_WINDOWS + 1; },
      SRING_DMA_ERR_BAD_WINDOW);
  add("checker, empty window", [](auto& c) { c.flags = SRING_DMA_CFG_CHECKER, c.nr_windows = 2; },
      SRING_DMA_ERR_BAD_WINDOW);
  // Window 1 is left empty (bytes 0) for the last case.
  guest.bar->windows[0] = {kLowRing, 4096};
  guest.bar->windows[1] = {kLowRing + 8192, 0};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    guest.bar->config = c.config;
    store_release(guest.bar->control, static_cast<__u32>(SRING_DMA_CONTROL_START));
    guest.ring(SRING_DMA_DOORBELL_CONTROL);
    ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_FAILED));
    EXPECT_EQ(load_relaxed(guest.bar->error), c.error);
    guest.stop();  // acknowledges the failure
    ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
  }
  // A driver index out of range at START.
  store_release(guest.bar->desc_prod, kEntries + 1);
  guest.start(good_config(1000));
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_FAILED));
  EXPECT_EQ(load_relaxed(guest.bar->error), static_cast<__u32>(SRING_DMA_ERR_BAD_INDEX));
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
  store_release(guest.bar->desc_prod, 0);

  // Every FAILED state is in the log with its error's name and why.
  const auto failed = wait_lines(": FAILED: ", cases.size() + 1);
  ASSERT_EQ(failed.size(), cases.size() + 1) << whole_log();
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_TRUE(contains(failed[i], std::string("sring-dma-model: guest 1: FAILED: SRING_DMA_ERR_BAD_")))
        << failed[i];
    EXPECT_TRUE(contains(failed[i], cases[i].error == SRING_DMA_ERR_BAD_CONFIG ? "_BAD_CONFIG: " : "_BAD_WINDOW: "))
        << cases[i].what << ": " << failed[i];
  }
  EXPECT_TRUE(contains(failed[0], "block_bytes 4000 is not a multiple of 64")) << failed[0];
  EXPECT_TRUE(contains(failed[3], "sample_rate 100000001 is above the model's --max-rate 100000000")) << failed[3];
  EXPECT_TRUE(contains(failed.back(), "SRING_DMA_ERR_BAD_INDEX: desc_prod " + std::to_string(kEntries + 1) + " is not within " + std::to_string(kEntries) + " of desc_cons 0"))
      << failed.back();

  const auto& k = guest.bar->counters;
  EXPECT_EQ(guest.counter(k.blocks_due), 0u) << "a refused START made blocks";
  EXPECT_EQ(load_relaxed(guest.bar->start_count), 0u);
  // The model still works after all that.
  guest.post(1, segments_for(0));
  guest.start(good_config(0));
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  std::vector<sring_dma_completion> got;
  guest.collect(5s, [&](const sring_dma_completion& c) { got.push_back(c); }, [&] { return !got.empty(); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].flags, static_cast<__u32>(SRING_DMA_COMP_OK));
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
}

TEST_F(DmaModelTest, FaultsCorruptAndFail) {
  guest.fault(SRING_DMA_FAULT_CORRUPT, 0);  // acknowledged while stopped, nothing to do
  for (uint64_t tag = 0; tag < 3; ++tag) guest.post(tag, segments_for(tag * 2));
  guest.start(good_config(uint64_t{kSamples} * 20));  // 20 blocks/s: time for the fault first
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  guest.fault(SRING_DMA_FAULT_CORRUPT, 1);
  std::vector<sring_dma_completion> got;
  guest.collect(10s, [&](const sring_dma_completion& c) { got.push_back(c); }, [&] { return got.size() >= 2; });
  ASSERT_GE(got.size(), 2u);
  EXPECT_EQ(got[0].flags, static_cast<__u32>(SRING_DMA_COMP_OK | SRING_DMA_COMP_CORRUPTED));
  EXPECT_EQ(bad_samples(guest, segments_for(got[0].tag * 2), got[0].first_sample, kSamples), 1u);
  EXPECT_EQ(got[1].flags, static_cast<__u32>(SRING_DMA_COMP_OK));
  EXPECT_EQ(bad_samples(guest, segments_for(got[1].tag * 2), got[1].first_sample, kSamples), 0u);

  guest.fault(SRING_DMA_FAULT_FAIL, 1);
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_FAILED));
  EXPECT_EQ(load_relaxed(guest.bar->error), static_cast<__u32>(SRING_DMA_ERR_INJECTED));
  EXPECT_EQ(load_acquire(guest.bar->desc_cons), guest.desc_prod);
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
  EXPECT_EQ(guest.counter(guest.bar->counters.faults), 3u);
}

TEST_F(DmaModelTest, ABadIndexMidStreamFailsBeforeTheNextBlock) {
  // 200 blocks/s with nothing posted: every block is dropped; then a
  // driver index out of range. The model fails before it makes another
  // block, so its counters still add up (the guest driver checks them).
  guest.start(good_config(uint64_t{kSamples} * 200));
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  const auto& k = guest.bar->counters;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (guest.counter(k.blocks_due) < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  store_release(guest.bar->desc_prod, uint64_t{kEntries} * 100);
  guest.ring(SRING_DMA_DOORBELL_DESC);
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_FAILED));
  EXPECT_EQ(load_relaxed(guest.bar->error), static_cast<__u32>(SRING_DMA_ERR_BAD_INDEX));
  EXPECT_GE(guest.counter(k.blocks_due), 3u);
  EXPECT_EQ(guest.counter(k.blocks_due), guest.counter(k.blocks_written) + guest.counter(k.blocks_dropped));
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
  store_release(guest.bar->desc_prod, 0);
}

TEST_F(DmaModelTest, ControlAckSaysWhenAControlWordWasActedOn) {
  // START: acknowledged with RUNNING published.
  guest.start(good_config(uint64_t{kSamples} * 20));
  const uint32_t started = load_relaxed(guest.bar->control_seq);
  ASSERT_TRUE(guest.wait_ack(started));
  EXPECT_EQ(load_acquire(guest.bar->state), static_cast<__u32>(SRING_DMA_STATE_RUNNING));
  // A STOP the slow stop is finishing: not acknowledged until STOPPED.
  guest.fault(SRING_DMA_FAULT_SLOW_STOP, 300000);
  const auto stop_at = std::chrono::steady_clock::now();
  const uint32_t stopped = guest.stop();
  std::this_thread::sleep_for(100ms);
  EXPECT_NE(load_acquire(guest.bar->control_ack), stopped) << "acknowledged before the slow stop ended";
  ASSERT_TRUE(guest.wait_ack(stopped));
  EXPECT_GE(std::chrono::steady_clock::now() - stop_at, 250ms);
  EXPECT_EQ(load_acquire(guest.bar->state), static_cast<__u32>(SRING_DMA_STATE_STOPPED));
  // A START the driver gave up on, overtaken by its STOP before the model
  // looked: the model sees only the STOP, acknowledges it, never starts.
  const uint32_t starts = load_relaxed(guest.bar->start_count);
  store_release(guest.bar->control, static_cast<__u32>(SRING_DMA_CONTROL_START));
  const uint32_t last = guest.stop();  // no doorbell for the START
  ASSERT_TRUE(guest.wait_ack(last));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(load_relaxed(guest.bar->start_count), starts);
  EXPECT_EQ(load_acquire(guest.bar->state), static_cast<__u32>(SRING_DMA_STATE_STOPPED));
}

TEST_F(DmaModelTest, SlowStopWritesPostedDescriptorsAfterTheStop) {
  // 20 blocks/s with 32 descriptors posted (1.6 s of blocks; tags t and
  // t + 16 share a slot area): the slow stop's 200 ms use some of them and
  // leave the rest to be abandoned.
  constexpr uint64_t kPosted = 32;
  constexpr auto kSlow = 200ms;
  for (uint64_t tag = 0; tag < kPosted; ++tag) guest.post(tag, segments_for(tag));
  guest.start(good_config(uint64_t{kSamples} * 20));
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  guest.fault(SRING_DMA_FAULT_SLOW_STOP, std::chrono::microseconds(kSlow).count());
  const uint64_t stop_ns = monotonic_ns();
  const auto stop_time = std::chrono::steady_clock::now();
  guest.stop();
  // The driver's wait for STOPPED: it must outlast the slow stop.
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED, 10000ms));
  const auto waited = std::chrono::steady_clock::now() - stop_time;
  EXPECT_GE(waited, kSlow) << "STOPPED before the slow stop's time was up";

  // Completions of blocks written after the STOP: posted normally (a
  // driver may ignore them, but they say its slots were written late).
  const auto got = guest.drain();
  uint64_t ok = 0;
  uint64_t after_stop = 0;
  uint64_t next_first = kFirstSample;
  for (const auto& c : got) {
    EXPECT_EQ(c.first_sample, next_first);
    next_first = c.first_sample + uint64_t{c.blocks} * c.samples;
    if (c.flags != SRING_DMA_COMP_OK) continue;
    ++ok;
    if (c.timestamp_ns > stop_ns) ++after_stop;
  }
  EXPECT_GE(after_stop, 2u) << "no block written during the slow stop";
  const auto& k = guest.bar->counters;
  const uint64_t taken = guest.counter(k.descriptors_taken);
  EXPECT_EQ(taken, ok);
  EXPECT_EQ(guest.counter(k.blocks_written), ok);
  EXPECT_EQ(guest.counter(k.blocks_due), guest.counter(k.blocks_written) + guest.counter(k.blocks_dropped));
  EXPECT_EQ(taken + guest.counter(k.descriptors_abandoned), kPosted);
  EXPECT_GE(guest.counter(k.descriptors_abandoned), 1u) << "the rest was not abandoned";
  EXPECT_EQ(load_acquire(guest.bar->desc_cons), guest.desc_prod);
  // The blocks written last into each slot area hold their samples.
  for (const auto& c : got) {
    if (c.flags == SRING_DMA_COMP_OK && c.tag + kSlots >= taken) {
      EXPECT_EQ(bad_samples(guest, segments_for(c.tag), c.first_sample, kSamples), 0u) << "tag " << c.tag;
    }
  }
  // STOPPED means stopped: nothing more made or posted.
  const uint64_t due = guest.counter(k.blocks_due);
  const uint64_t comp_prod = load_acquire(guest.bar->comp_prod);
  std::this_thread::sleep_for(150ms);
  EXPECT_EQ(guest.counter(k.blocks_due), due);
  EXPECT_EQ(load_acquire(guest.bar->comp_prod), comp_prod);
  EXPECT_EQ(lines_with("slow stop: running on for 200000 us").size(), 1u) << whole_log();

  // Taken once: the next stream's STOP is an ordinary one.
  guest.drain();
  guest.post(100, segments_for(0));
  guest.start(good_config(uint64_t{kSamples} * 20));
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
  EXPECT_EQ(lines_with("slow stop").size(), 1u) << whole_log();
}

TEST_F(DmaModelTest, SlowStopIsBoundedAndAFailureEndsIt) {
  for (uint64_t tag = 0; tag < 8; ++tag) guest.post(tag, segments_for(tag));
  // Armed while STOPPED: it waits for the next STOP of a running stream.
  guest.fault(SRING_DMA_FAULT_SLOW_STOP, ~uint64_t{0});
  guest.start(good_config(uint64_t{kSamples} * 20));
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  guest.stop();
  // An absurd arg is the bound: SRING_MAX_FAULT_STALL_US.
  const auto slow = wait_lines("slow stop: running on for", 1);
  ASSERT_EQ(slow.size(), 1u) << whole_log();
  EXPECT_TRUE(contains(slow[0], "running on for " + std::to_string(SRING_MAX_FAULT_STALL_US) + " us")) << slow[0];
  EXPECT_EQ(load_acquire(guest.bar->state), static_cast<__u32>(SRING_DMA_STATE_RUNNING));
  // A failure does not wait for it. control is still STOP, which
  // acknowledges the FAILED at once: the driver waiting for STOPPED gets it
  // long before the 10 s, with the error to say why.
  guest.fault(SRING_DMA_FAULT_FAIL, 0);
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED, 3000ms));
  EXPECT_EQ(load_relaxed(guest.bar->error), static_cast<__u32>(SRING_DMA_ERR_INJECTED));
  EXPECT_EQ(load_acquire(guest.bar->desc_cons), guest.desc_prod);
  const auto failed = wait_lines("FAILED: SRING_DMA_ERR_INJECTED", 1);
  EXPECT_EQ(failed.size(), 1u) << whole_log();
}

TEST_F(DmaModelTest, RefusalsArePrintedUpToALimitThenCounted) {
  // 30 descriptors in RAM but outside the one window: refused, every one.
  constexpr uint64_t kWindow = 2ULL << 20;
  constexpr uint64_t kBad = 30;
  sring_dma_config config = good_config(0);
  config.flags = SRING_DMA_CFG_CHECKER;
  config.nr_windows = 1;
  for (uint64_t tag = 0; tag < kBad; ++tag) guest.post(tag, {seg(kWindow + 8192, kSampleBytes)});
  guest.start(config, {{kWindow, 4096}});
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  std::vector<sring_dma_completion> got;
  guest.collect(10s, [&](const sring_dma_completion& c) { got.push_back(c); }, [&] { return got.size() >= kBad; });
  ASSERT_EQ(got.size(), kBad);
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
  EXPECT_EQ(guest.counter(guest.bar->counters.descriptors_refused), kBad) << "counted in BAR2 as before";
  EXPECT_EQ(guest.counter(guest.bar->counters.window_faults), kBad);

  // The first 20 printed, one line each, in order; then one line that says
  // the rest are counted; at the stop how many were not printed.
  const auto summary = wait_lines("more refused descriptors not printed", 1);
  ASSERT_EQ(summary.size(), 1u) << whole_log();
  EXPECT_EQ(summary[0], "sring-dma-model: guest 1: 10 more refused descriptors not printed");
  const auto refused = lines_with("refused descriptor tag");
  ASSERT_EQ(refused.size(), 20u) << whole_log();
  for (size_t i = 0; i < refused.size(); ++i) {
    EXPECT_TRUE(contains(refused[i], "tag 0x" + fmt_hex(i) + " ")) << refused[i];
    EXPECT_TRUE(contains(refused[i], "SRING_DMA_ERR_NOT_IN_WINDOW: segment 0 of 1 at 0x202000 + 4032 bytes"))
        << refused[i];
  }
  EXPECT_EQ(lines_with("are counted (counters.descriptors_refused), not printed").size(), 1u) << whole_log();
}

TEST_F(DmaModelTest, QemuExitingEndsTheModel) {
  for (uint64_t tag = 0; tag < 4; ++tag) guest.post(tag, segments_for(tag));
  guest.start(good_config(uint64_t{kSamples} * 1000));
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  const auto t0 = std::chrono::steady_clock::now();
  guest.socket.reset();  // EOF, as when QEMU exits
  server.join();
  serving = false;
  EXPECT_TRUE(served) << served.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  // Without reconnect, one guest: the socket went when it was served.
  EXPECT_NE(::access(options.socket_path.c_str(), F_OK), 0);
  EXPECT_EQ(whole_log(), "sring-dma-model: guest 1 connected\nsring-dma-model: guest 1 disconnected\n");
}

// ---------------------------------------------------------------------------
// Reconnect: QEMU after QEMU (hot-unplug, chardev-remove, chardev-add,
// device_add of a new ivshmem-doorbell)
// ---------------------------------------------------------------------------

constexpr auto kAcceptTimeout = 400ms;

class DmaModelReconnectTest : public DmaModelTest {
 protected:
  void configure(sring::dma::ModelOptions& o) override {
    o.reconnect = true;
    o.accept_timeout = kAcceptTimeout;  // for the first QEMU only
  }
};

TEST_F(DmaModelReconnectTest, ServesTheNextQemuFromACleanSlate) {
  // Guest 1 goes away in the middle of a stream, 32 descriptors posted (the
  // worst case: an unplug without a stop): 20 blocks/s, 1.6 s of them.
  for (uint64_t tag = 0; tag < 32; ++tag) guest.post(tag, segments_for(tag));
  guest.start(good_config(uint64_t{kSamples} * 20));
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  std::vector<sring_dma_completion> got;
  guest.collect(10s, [&](const sring_dma_completion& c) { got.push_back(c); }, [&] { return !got.empty(); });
  ASSERT_FALSE(got.empty());
  FakeGuest old = std::move(guest);  // keeps guest 1's BAR2 and fds to look at
  struct stat old_bar {};
  ASSERT_EQ(::fstat(old.handshake[2].fds[0].get(), &old_bar), 0);
  old.socket.reset();  // QEMU closes the chardev's socket
  const uint64_t comp_prod_at_eof = load_acquire(old.bar->comp_prod);
  // Longer than the accept timeout, which was for the first QEMU only.
  std::this_thread::sleep_for(2 * kAcceptTimeout);

  guest = FakeGuest{};
  guest.ram_mapping = map_ram();
  ASSERT_TRUE(guest.ram_mapping.valid());
  connect_guest(guest);
  ASSERT_FALSE(HasFatalFailure()) << whole_log();

  // The model serves one guest at a time: guest 2's handshake means it is
  // done with guest 1. At most the blocks it was late with at the EOF went
  // out after our close; none since (it would have made 16 in the sleep).
  const uint64_t comp_prod_after = load_acquire(old.bar->comp_prod);
  EXPECT_LE(comp_prod_after - comp_prod_at_eof, 4u) << "guest 1's stream ran on after its EOF";
  const uint64_t old_due = old.counter(old.bar->counters.blocks_due);
  const auto* ram = static_cast<const uint8_t*>(guest.ram_mapping.get());
  const std::vector<uint8_t> snapshot(ram, ram + kRamSize);
  std::this_thread::sleep_for(200ms);  // 4 block periods of guest 1's stream
  EXPECT_EQ(load_acquire(old.bar->comp_prod), comp_prod_after);
  EXPECT_EQ(old.counter(old.bar->counters.blocks_due), old_due);
  EXPECT_EQ(std::memcmp(snapshot.data(), ram, kRamSize), 0) << "guest RAM written after guest 1's EOF";

  // Guest 2: the same handshake, a new BAR2 memfd, zeroed but for the
  // identity.
  const auto& h = guest.handshake;
  const int64_t values[7] = {0, 0, -1, 1, 1, 0, 0};
  for (int i = 0; i < 7; ++i) EXPECT_EQ(h[i].value, values[i]) << "message " << i;
  struct stat new_bar {};
  ASSERT_EQ(::fstat(h[2].fds[0].get(), &new_bar), 0);
  EXPECT_NE(new_bar.st_ino, old_bar.st_ino) << "guest 2 got guest 1's BAR2";
  const sring_dma_bar2* bar = guest.bar;
  EXPECT_EQ(bar->magic, SRING_DMA_MAGIC);
  EXPECT_EQ(bar->version, SRING_DMA_VERSION);
  EXPECT_EQ(bar->layout_bytes, sizeof(sring_dma_bar2));
  EXPECT_EQ(bar->bar2_bytes, options.shm_size);
  EXPECT_EQ(load_acquire(bar->state), static_cast<__u32>(SRING_DMA_STATE_STOPPED));
  EXPECT_EQ(load_relaxed(bar->error), 0u);
  EXPECT_EQ(load_relaxed(bar->start_count), 0u);
  EXPECT_EQ(load_acquire(bar->desc_cons), 0u);
  EXPECT_EQ(load_acquire(bar->comp_prod), 0u);
  EXPECT_EQ(load_acquire(bar->fault.ack_seq), 0u);
  const auto* counters = reinterpret_cast<const __u64*>(&bar->counters);
  for (size_t i = 0; i < sizeof(bar->counters) / sizeof(__u64); ++i) {
    EXPECT_EQ(load_relaxed(counters[i]), 0u) << "counter " << i;
  }
  // New eventfds: guest 1's doorbell rings nothing of guest 2's.
  const uint64_t one = 1;
  ASSERT_EQ(::write(old.doorbell[SRING_DMA_DOORBELL_DESC], &one, sizeof(one)), 8);
  guest.ring(SRING_DMA_DOORBELL_DESC);
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (guest.counter(bar->counters.doorbells) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(guest.counter(bar->counters.doorbells), 1u);

  // And it works: a stream of its own, from its own first sample.
  for (uint64_t tag = 0; tag < 4; ++tag) guest.post(tag, segments_for(tag));
  guest.start(good_config(0));
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  std::vector<sring_dma_completion> second;
  guest.collect(10s, [&](const sring_dma_completion& c) { second.push_back(c); }, [&] { return second.size() >= 4; });
  ASSERT_EQ(second.size(), 4u);
  for (size_t i = 0; i < second.size(); ++i) {
    EXPECT_EQ(second[i].tag, i);
    EXPECT_EQ(second[i].flags, static_cast<__u32>(SRING_DMA_COMP_OK));
    EXPECT_EQ(second[i].first_sample, kFirstSample + i * kSamples);
    EXPECT_EQ(bad_samples(guest, segments_for(i), second[i].first_sample, kSamples), 0u);
  }
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
  EXPECT_EQ(load_relaxed(bar->start_count), 1u);

  EXPECT_EQ(whole_log(),
            "sring-dma-model: guest 1 connected\n"
            "sring-dma-model: guest 1 disconnected\n"
            "sring-dma-model: guest 2 connected\n");
}

TEST_F(DmaModelReconnectTest, ANewGuestRamFileIsRefused) {
  // Guest 1 leaves; its RAM file is replaced by another of the same size
  // (a new QEMU). The model must not write that guest's DMA into the file
  // it mapped: it refuses the connection (EOF, no handshake) and says why.
  guest.socket.reset();
  ASSERT_EQ(::unlink(ram_path.c_str()), 0);
  {
    UniqueFd fd(::open(ram_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd.valid()) << std::strerror(errno);
    ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(kRamSize)), 0);
  }
  UniqueFd second = connect_socket(options.socket_path);
  ASSERT_TRUE(second.valid()) << std::strerror(errno);
  pollfd pfd{second.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 10000), 1) << "no answer from the model";
  char byte = 0;
  EXPECT_EQ(::recv(second.get(), &byte, 1, 0), 0) << "a handshake for a guest whose RAM the model does not map";
  const auto refused = wait_lines("refused: ", 1);
  ASSERT_EQ(refused.size(), 1u) << whole_log();
  EXPECT_TRUE(contains(refused[0], "is not the one the model mapped")) << refused[0];
}

TEST_F(DmaModelReconnectTest, ASecondQemuWaitsInTheBacklogUntilTheFirstLeaves) {
  // Guest 1 is served (SetUp). A second QEMU's connect() succeeds: the
  // model still listens. It gets no handshake while guest 1 is there.
  FakeGuest second;
  second.socket = connect_socket(options.socket_path);
  ASSERT_TRUE(second.socket.valid()) << std::strerror(errno);
  pollfd pfd{second.socket.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 300), 0) << "a second QEMU was served while the first still was";
  // Guest 1 still works meanwhile.
  guest.post(1, segments_for(0));
  guest.start(good_config(0));
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_RUNNING));
  guest.stop();
  ASSERT_TRUE(guest.wait_state(SRING_DMA_STATE_STOPPED));
  EXPECT_EQ(guest.counter(guest.bar->counters.blocks_written), 1u);

  // Guest 1 goes: the waiting QEMU is served at once.
  guest.socket.reset();
  receive_handshake(second, options.shm_size, 5000ms);
  ASSERT_FALSE(HasFatalFailure()) << whole_log();
  EXPECT_EQ(second.bar->magic, SRING_DMA_MAGIC);
  EXPECT_EQ(load_relaxed(second.bar->counters.blocks_written), 0u);
  EXPECT_EQ(wait_lines("guest 2 connected", 1).size(), 1u) << whole_log();

  // stop() ends serving (guest 2 gets nothing more); the socket file stays
  // while the model lives (QEMU may come back) and goes with it.
  model->stop();
  server.join();
  serving = false;
  EXPECT_TRUE(served) << served.error().message;
  EXPECT_EQ(whole_log(),
            "sring-dma-model: guest 1 connected\n"
            "sring-dma-model: guest 1 disconnected\n"
            "sring-dma-model: guest 2 connected\n"
            "sring-dma-model: guest 2 disconnected: the model is stopping\n");
  EXPECT_EQ(::access(options.socket_path.c_str(), F_OK), 0);
  model.reset();
  EXPECT_NE(::access(options.socket_path.c_str(), F_OK), 0) << "the socket file outlived the model";
}

// ---------------------------------------------------------------------------
// Options and the binary
// ---------------------------------------------------------------------------

class DmaModelOptionsTest : public ::testing::Test {
 protected:
  std::string ram_path = "/dev/shm/" + unique_name("sring-dma-test-ram");
  std::string socket_path = "/tmp/" + unique_name("sring-dma-test") + ".sock";

  void SetUp() override {
    UniqueFd fd(::open(ram_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::ftruncate(fd.get(), 1 << 20), 0);
  }
  void TearDown() override {
    ::unlink(ram_path.c_str());
    ::unlink(socket_path.c_str());
  }
  sring::dma::ModelOptions good() const {
    sring::dma::ModelOptions o;
    o.socket_path = socket_path;
    o.ram_path = ram_path;
    o.lowmem = 1 << 20;
    return o;
  }
};

TEST_F(DmaModelOptionsTest, NonsenseSettingsAreRefused) {
  struct Case {
    const char* what;
    void (*change)(sring::dma::ModelOptions&);
    int code;
  };
  const Case cases[] = {
      {"shm not a power of two", [](auto& o) { o.shm_size = 100000; }, EINVAL},
      {"shm too small", [](auto& o) { o.shm_size = SRING_DMA_BAR2_MIN_SIZE / 2; }, EINVAL},
      {"shm zero", [](auto& o) { o.shm_size = 0; }, EINVAL},
      {"lowmem zero", [](auto& o) { o.lowmem = 0; }, EINVAL},
      {"lowmem above 4 GiB", [](auto& o) { o.lowmem = 5ULL << 30; }, EINVAL},
      {"max rate zero", [](auto& o) { o.max_rate = 0; }, EINVAL},
      {"max rate absurd", [](auto& o) { o.max_rate = 2000000000; }, EINVAL},
      {"no socket", [](auto& o) { o.socket_path.clear(); }, EINVAL},
      {"no RAM file given", [](auto& o) { o.ram_path.clear(); }, EINVAL},
      {"RAM file missing", [](auto& o) { o.ram_path = "/dev/shm/sring-dma-test-no-such-file"; }, ENOENT},
      {"RAM not a file", [](auto& o) { o.ram_path = "/dev/shm"; }, EISDIR},
      {"socket path too long", [](auto& o) { o.socket_path = "/tmp/" + std::string(200, 'x'); }, ENAMETOOLONG},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    auto o = good();
    c.change(o);
    auto model = sring::dma::Model::create(o);
    ASSERT_FALSE(model);
    EXPECT_EQ(model.error().code, c.code) << model.error().message;
    EXPECT_FALSE(model.error().message.empty());
  }
  // A regular file where the socket should be is not removed.
  { std::ofstream(socket_path) << "keep me"; }
  auto model = sring::dma::Model::create(good());
  ASSERT_FALSE(model);
  EXPECT_EQ(model.error().code, EEXIST);
  struct stat st {};
  EXPECT_EQ(::stat(socket_path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  ::unlink(socket_path.c_str());
  // And the good options work.
  auto ok = sring::dma::Model::create(good());
  EXPECT_TRUE(ok) << ok.error().message;
}

std::string binary_path() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr || workspace == nullptr) return {};
  return std::string(srcdir) + "/" + workspace + "/devices/dma-model/sring-dma-model";
}

// Runs the binary; returns its exit code and stderr.
std::pair<int, std::string> run_binary(const std::string& args) {
  const std::string err = "/tmp/" + unique_name("sring-dma-test-stderr");
  const int status = std::system((binary_path() + " " + args + " 2>" + err).c_str());
  std::ifstream in(err);
  std::stringstream text;
  text << in.rdbuf();
  ::unlink(err.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
}

TEST_F(DmaModelOptionsTest, BinaryExitsWithAClearError) {
  ASSERT_FALSE(binary_path().empty()) << "run under bazel test";
  const std::string base = "--socket " + socket_path + " --lowmem 1M ";
  struct Case {
    std::string args;
    int code;
    const char* says;
  };
  const Case cases[] = {
      {base + "--ram /dev/shm/sring-dma-test-no-such-file", 2, "cannot open the guest RAM file"},
      {base + "--ram " + ram_path + " --shm-size 100000", 2, "power of two"},
      {base + "--ram " + ram_path + " --max-rate 0", 2, "--max-rate"},
      {"--ram " + ram_path + " --lowmem 1M", 2, "--socket is required"},
      {"--socket " + socket_path + " --ram " + ram_path + " --lowmem 8G", 2, "--lowmem"},
      {base + "--ram " + ram_path + " --frobnicate 1", 2, "unknown option --frobnicate"},
      {base + "--ram " + ram_path + " --lowmem banana", 2, "--lowmem"},
      // Good options, but no QEMU comes: a failure while serving.
      {base + "--ram " + ram_path + " --accept-timeout 0.2", 1, "no QEMU connected"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args);
    const auto [code, text] = run_binary(c.args);
    EXPECT_EQ(code, c.code) << text;
    EXPECT_NE(text.find(c.says), std::string::npos) << text;
  }
}

// The binary's stdout for args.
std::string binary_stdout(const std::string& args) {
  std::string text;
  FILE* pipe = ::popen((binary_path() + " " + args).c_str(), "r");
  if (pipe == nullptr) return text;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) text.append(buffer, n);
  ::pclose(pipe);
  return text;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_F(DmaModelOptionsTest, BinaryReconnectsAndLogsEachGuest) {
  ASSERT_FALSE(binary_path().empty()) << "run under bazel test";
  EXPECT_TRUE(contains(binary_stdout("--help"), "--reconnect")) << binary_stdout("--help");

  const std::string err = "/tmp/" + unique_name("sring-dma-test-stderr");
  const std::string binary = binary_path();
  std::vector<std::string> args = {binary,   "--socket", socket_path, "--ram",       ram_path,
                                   "--lowmem", "1M",       "--reconnect", "--accept-timeout", "20"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  ASSERT_EQ(posix_spawn_file_actions_init(&actions), 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ASSERT_EQ(spawned, 0) << std::strerror(spawned);
  // Reaped (and killed, if the test fails before it exits) on every path.
  struct Child {
    pid_t pid;
    int status = -1;
    bool reaped = false;
    bool wait_exit(std::chrono::milliseconds timeout) {
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      while (!reaped && std::chrono::steady_clock::now() < deadline) {
        if (::waitpid(pid, &status, WNOHANG) == pid) reaped = true;
        else std::this_thread::sleep_for(5ms);
      }
      return reaped;
    }
    ~Child() {
      if (!reaped) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
      }
    }
  } child{pid};

  // Two QEMUs, one after the other, each with a full handshake.
  for (int g = 1; g <= 2; ++g) {
    SCOPED_TRACE(g);
    FakeGuest qemu;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!(qemu.socket = connect_socket(socket_path)).valid() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);  // the model is starting
    }
    ASSERT_TRUE(qemu.socket.valid()) << read_file(err);
    receive_handshake(qemu, SRING_DMA_BAR2_MIN_SIZE);
    ASSERT_FALSE(HasFatalFailure()) << read_file(err);
    EXPECT_EQ(qemu.bar->magic, SRING_DMA_MAGIC);
    qemu.socket.reset();
    // The disconnect is seen before the next QEMU is served.
    const std::string line = "sring-dma-model: guest " + std::to_string(g) + " disconnected\n";
    while (!contains(read_file(err), line) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    EXPECT_TRUE(contains(read_file(err), line)) << read_file(err);
  }
  // SIGTERM: a clean exit 0, the socket file removed.
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  ASSERT_TRUE(child.wait_exit(10000ms)) << "still running after SIGTERM";
  EXPECT_TRUE(WIFEXITED(child.status) && WEXITSTATUS(child.status) == 0) << child.status << "\n" << read_file(err);
  EXPECT_NE(::access(socket_path.c_str(), F_OK), 0);
  const std::string text = read_file(err);
  ::unlink(err.c_str());
  EXPECT_TRUE(contains(text, "listening on " + socket_path)) << text;
  const size_t g1 = text.find("sring-dma-model: guest 1 connected\n");
  const size_t g1_gone = text.find("sring-dma-model: guest 1 disconnected\n");
  const size_t g2 = text.find("sring-dma-model: guest 2 connected\n");
  const size_t g2_gone = text.find("sring-dma-model: guest 2 disconnected\n");
  EXPECT_TRUE(g1 < g1_gone && g1_gone < g2 && g2 < g2_gone && g2_gone != std::string::npos) << text;
}

TEST(DmaModelGuestRam, TranslatesAroundTheHole) {
  const std::string path = "/dev/shm/" + unique_name("sring-dma-test-ram");
  {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(kRamSize)), 0);
  }
  auto ram = sring::dma::GuestRam::open(path, kLowmem);
  ::unlink(path.c_str());
  ASSERT_TRUE(ram) << ram.error().message;
  uint8_t* base = ram->translate(0, 1);
  ASSERT_NE(base, nullptr);
  EXPECT_EQ(ram->translate(kLowmem - 2, 2), base + kLowmem - 2);
  EXPECT_EQ(ram->translate(kLowmem - 2, 4), nullptr);  // runs into the hole
  EXPECT_EQ(ram->translate(kLowmem, 2), nullptr);
  EXPECT_EQ(ram->translate(kFourGiB - 2, 2), nullptr);
  EXPECT_EQ(ram->translate(kFourGiB, 2), base + kLowmem);
  EXPECT_EQ(ram->translate(kFourGiB + kRamSize - kLowmem - 2, 2), base + kRamSize - 2);
  EXPECT_EQ(ram->translate(kFourGiB + kRamSize - kLowmem - 2, 4), nullptr);
  EXPECT_EQ(ram->translate(kFourGiB + kRamSize - kLowmem, 2), nullptr);
  EXPECT_EQ(ram->translate(0, 0), nullptr);
  EXPECT_EQ(ram->translate(~uint64_t{0} - 1, 4), nullptr);
}

}  // namespace
