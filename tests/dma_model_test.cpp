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
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
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
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "sring/detail/barriers.hpp"
#include "sring/dma/model.hpp"
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

sring_dma_segment seg(uint64_t addr, uint32_t bytes) { return sring_dma_segment{addr, bytes, 0}; }

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

  void post(uint64_t tag, const std::vector<sring_dma_segment>& segments) {
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
    // Pairs with the model's load-acquire of control before it reads them.
    store_release(bar->control, static_cast<__u32>(SRING_DMA_CONTROL_START));
    ring(SRING_DMA_DOORBELL_CONTROL);
  }

  void stop() {
    store_release(bar->control, static_cast<__u32>(SRING_DMA_CONTROL_STOP));
    ring(SRING_DMA_DOORBELL_CONTROL);
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
size_t bad_samples(FakeGuest& guest, const std::vector<sring_dma_segment>& segments, uint64_t first,
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

class DmaModelTest : public ::testing::Test {
 protected:
  sring::dma::ModelOptions options;
  std::string ram_path;
  std::unique_ptr<sring::dma::Model> model;
  std::thread server;
  sring::Status served = sring::ok();
  bool serving = false;
  FakeGuest guest;

  void SetUp() override {
    ram_path = "/dev/shm/" + unique_name("sring-dma-test-ram");
    {
      UniqueFd fd(::open(ram_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      ASSERT_TRUE(fd.valid()) << ram_path << ": " << std::strerror(errno);
      ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(kRamSize)), 0);
      void* addr = ::mmap(nullptr, kRamSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
      ASSERT_NE(addr, MAP_FAILED);
      guest.ram_mapping = Mapping(addr, kRamSize);
      std::memset(addr, kPoison, kRamSize);
    }
    options.socket_path = "/tmp/" + unique_name("sring-dma-test") + ".sock";
    options.ram_path = ram_path;
    options.lowmem = kLowmem;
    options.shm_size = 128 * 1024;
    options.max_rate = 100000000;
    options.accept_timeout = 10s;
    auto created = sring::dma::Model::create(options);
    ASSERT_TRUE(created) << created.error().message;
    model = std::make_unique<sring::dma::Model>(std::move(*created));
    serving = true;
    server = std::thread([this] { served = model->serve(); });
    connect_guest();
  }

  void TearDown() override {
    // QEMU exits: EOF on the socket ends serve() with ok().
    guest.socket.reset();
    if (serving) {
      server.join();
      EXPECT_TRUE(served) << served.error().message;
    }
    ::unlink(ram_path.c_str());
  }

  void connect_guest() {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(fd.valid());
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, options.socket_path.c_str(), sizeof(address.sun_path) - 1);
    // create() listens before it returns: connect works at once.
    ASSERT_EQ(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0)
        << std::strerror(errno);
    guest.socket = std::move(fd);
    for (int i = 0; i < 7; ++i) {
      Message m;
      ASSERT_TRUE(receive_message(guest.socket.get(), &m)) << "message " << i;
      guest.handshake.push_back(std::move(m));
    }
    auto& h = guest.handshake;
    ASSERT_EQ(h[2].fds.size(), 1u);
    void* addr = ::mmap(nullptr, options.shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, h[2].fds[0].get(), 0);
    ASSERT_NE(addr, MAP_FAILED);
    guest.bar_mapping = Mapping(addr, options.shm_size);
    guest.bar = static_cast<sring_dma_bar2*>(addr);
    for (uint32_t v = 0; v < SRING_DMA_NR_VECTORS; ++v) {
      ASSERT_EQ(h[3 + v].fds.size(), 1u);
      ASSERT_EQ(h[5 + v].fds.size(), 1u);
      guest.doorbell[v] = h[3 + v].fds[0].get();
      guest.vector[v] = h[5 + v].fds[0].get();
    }
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

std::vector<sring_dma_segment> segments_for(uint64_t tag) {
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
    std::vector<sring_dma_segment> segments;
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
  std::vector<sring_dma_segment> sixteen;
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
      {"shm too small", [](auto& o) { o.shm_size = 32768; }, EINVAL},
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
