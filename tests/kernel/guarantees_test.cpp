// Runs inside the QEMU guest, linked into kernel_test (tests/kernel/BUILD).
//
// Guarantees of docs/abi.md that the other tests pass without (issue 21,
// "Guarantees no test guards yet"): each test here fails when the kernel
// code that provides its guarantee is removed. None of them lets a timeout
// decide: a wake-up is checked with a non-blocking read right after the
// call that must have signalled, and the waits below only wait for the
// device to make progress (a slow emulated CPU makes them slower, never
// wrong).
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/kernel/kernel_util.hpp"

namespace {

using namespace sring_ktest;

constexpr uint32_t kBlock = 8192;  // default_config()'s block size
constexpr uint32_t kSamplesPerBlock = (kBlock - SRING_BLOCK_HEADER_SIZE) / 2;

// Waits until `done()` holds: for progress of the device, never for a
// wake-up. A device that makes no progress in 10 s fails the test.
template <typename Done>
bool eventually(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// The consumer of /dev/sring0, prepared with `config`, with everything
// mapped (RingMapping) and a non-blocking eventfd registered with the ring.
class Mapped {
 public:
  explicit Mapped(const sring_config& config) {
    fd_ = open_device(O_RDWR);
    if (!fd_.valid()) {
      ADD_FAILURE() << "open " << kDevice << ": " << strerror(errno);
      return;
    }
    prepare(fd_.get(), config);
    efd_ = registered_eventfd(fd_.get());
    map_.emplace(fd_.get());
  }
  ~Mapped() {
    if (fd_.valid()) ::ioctl(fd_.get(), SRING_IOC_STOP);
  }
  Mapped(const Mapped&) = delete;
  Mapped& operator=(const Mapped&) = delete;

  bool ok() const { return map_ && map_->ok(); }
  int fd() const { return fd_.get(); }
  int efd() const { return efd_.get(); }
  uint64_t ring_size() const { return map_->ring_size; }
  sring_consumer_page* cons() const { return map_->cons; }
  sring_stats stats() const { return stats_of(fd_.get()); }
  uint64_t head() const { return map_->head(); }
  uint32_t state() const { return map_->state(); }
  uint64_t tail() const { return map_->tail(); }
  const uint8_t* at(uint64_t position) const { return map_->at(position); }

 private:
  UniqueFd fd_;
  UniqueFd efd_;
  std::optional<RingMapping> map_;  // unmapped before fd_ is closed
};

// Overwrite-oldest, otherwise default_config(): 20 MS/s in 8 KiB blocks.
sring_config overwrite_config() {
  sring_config config = default_config();
  config.overrun_policy = SRING_OVERRUN_OVERWRITE_OLDEST;
  return config;
}

// Starts the device; the consumer takes nothing, so the ring fills and the
// producer reclaims. Returns once it has.
void start_until_reclaiming(const Mapped& ring) {
  ASSERT_EQ(::ioctl(ring.fd(), SRING_IOC_START), 0) << strerror(errno);
  ASSERT_TRUE(eventually([&] { return ring.stats().blocks_dropped > 2; })) << "no reclaim";
}

// The blocks in [from, to), headers copied and checked, in stream order.
struct Blocks {
  uint64_t blocks = 0;
  uint64_t samples = 0;
  std::string error;  // empty if every header checked out
};

Blocks walk(const Mapped& ring, uint64_t from, uint64_t to) {
  Blocks seen;
  uint64_t next_sample = 0;
  for (uint64_t position = from; position != to;) {
    sring_block_header h;
    std::memcpy(&h, ring.at(position), sizeof(h));
    if (h.magic != SRING_BLOCK_MAGIC || h.total_bytes < 128 || h.total_bytes % SRING_BLOCK_ALIGN != 0 ||
        h.total_bytes > to - position || uint64_t{h.sample_count} * 2 > h.total_bytes - SRING_BLOCK_HEADER_SIZE) {
      seen.error = "bad block header at position " + std::to_string(position) + " (magic " +
                   std::to_string(h.magic) + ", " + std::to_string(h.total_bytes) + " bytes)";
      return seen;
    }
    if (seen.blocks > 0 && h.first_sample < next_sample) {
      seen.error = "block at " + std::to_string(position) + " goes back to sample " + std::to_string(h.first_sample);
      return seen;
    }
    next_sample = h.first_sample + h.sample_count;
    seen.samples += h.sample_count;
    ++seen.blocks;
    position += h.total_bytes;
  }
  return seen;
}

// Arms the wake-up request as docs/abi.md's "Waiting" says: need_wakeup 1,
// then a full fence (the consumer side of the handshake).
void arm_wakeup(sring_consumer_page* page, uint64_t watermark) {
  __atomic_store_n(&page->wakeup_watermark, watermark, __ATOMIC_RELAXED);
  __atomic_store_n(&page->need_wakeup, 1u, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

// What a non-blocking read of the eventfd finds now: its count, or 0 if it
// was not signalled (EAGAIN).
uint64_t eventfd_count_now(int efd) {
  uint64_t count = 0;
  if (::read(efd, &count, sizeof(count)) == sizeof(count)) return count;
  EXPECT_EQ(errno, EAGAIN) << "eventfd read: " << strerror(errno);
  return 0;
}

// mprotect(PROT_WRITE) on a mapping made read-only: 0 if it was allowed,
// else its errno.
int make_writable(void* p, size_t length) {
  return ::mprotect(p, length, PROT_READ | PROT_WRITE) == 0 ? 0 : errno;
}

// docs/abi.md: VM_MAYWRITE is cleared on read-only regions, so
// mprotect(PROT_WRITE) fails with EACCES. For the data (read-only for
// everyone, the consumer included) only the driver's clearing of
// VM_MAYWRITE stops it: the file is open for writing.
TEST(Guarantees, DataMappingCannotBeMadeWritable) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid()) << strerror(errno);
  prepare(fd.get(), default_config());
  const long page = ::sysconf(_SC_PAGESIZE);
  const size_t data_length = 2 * sysfs_u64("ring_size");
  const off_t data_offset = SRING_DATA_PGOFF * page;

  void* data = ::mmap(nullptr, data_length, PROT_READ, MAP_SHARED, fd.get(), data_offset);
  ASSERT_NE(data, MAP_FAILED) << strerror(errno);
  EXPECT_EQ(make_writable(data, data_length), EACCES) << "the consumer made the whole data mapping writable";
  EXPECT_EQ(make_writable(static_cast<uint8_t*>(data) + data_length / 2, page), EACCES)
      << "the consumer made a page of the mirror writable";
  ::munmap(data, data_length);
  // A private read-only mapping maps (it cannot be copy-on-write), and
  // stays read-only.
  void* private_data = ::mmap(nullptr, data_length, PROT_READ, MAP_PRIVATE, fd.get(), data_offset);
  EXPECT_NE(private_data, MAP_FAILED) << "a private read-only data mapping: " << strerror(errno);
  if (private_data != MAP_FAILED) {
    EXPECT_EQ(make_writable(private_data, data_length), EACCES) << "a private data mapping was made writable";
    ::munmap(private_data, data_length);
  }

  // A monitor: its consumer page and the data stay read-only. (The file is
  // read-only here, so the kernel's mmap core refuses shared writes too.)
  UniqueFd monitor = open_device(O_RDONLY);
  ASSERT_TRUE(monitor.valid()) << strerror(errno);
  void* consumer_page = ::mmap(nullptr, page, PROT_READ, MAP_SHARED, monitor.get(), SRING_CONSUMER_PGOFF * page);
  ASSERT_NE(consumer_page, MAP_FAILED) << strerror(errno);
  EXPECT_EQ(make_writable(consumer_page, page), EACCES) << "a monitor made the consumer page writable";
  ::munmap(consumer_page, page);
  void* monitor_data = ::mmap(nullptr, data_length, PROT_READ, MAP_SHARED, monitor.get(), data_offset);
  ASSERT_NE(monitor_data, MAP_FAILED) << strerror(errno);
  EXPECT_EQ(make_writable(monitor_data, data_length), EACCES) << "a monitor made the data writable";
  ::munmap(monitor_data, data_length);
}

// A STOP answers a consumer that armed need_wakeup (docs/abi.md, "Waiting":
// the producer stores state, fences, and answers the flag). Checked with no
// timeout anywhere: the eventfd must be readable the moment STOP returns.
// Nothing else can signal: the ring is empty, the watermark is half the
// ring, and the flush timeout is 10 s.
void expect_stop_answers(Mapped& ring) {
  ASSERT_EQ(eventfd_count_now(ring.efd()), 0u) << "signalled before the request";
  const uint64_t before = ring.stats().wakeups;
  arm_wakeup(ring.cons(), ~uint64_t{0});
  ASSERT_EQ(eventfd_count_now(ring.efd()), 0u) << "signalled before the STOP (the test cannot tell who answered)";
  ASSERT_EQ(::ioctl(ring.fd(), SRING_IOC_STOP), 0) << strerror(errno);
  EXPECT_EQ(eventfd_count_now(ring.efd()), 1u) << "the STOP did not signal the consumer that asked";
  EXPECT_EQ(__atomic_load_n(&ring.cons()->need_wakeup, __ATOMIC_ACQUIRE), 0u) << "the request was not taken";
  EXPECT_EQ(ring.stats().wakeups, before + 1) << "one request, one answer";
}

sring_config quiet_config(uint64_t rate) {
  sring_config config = default_config();
  config.sample_rate = rate;
  config.flush_timeout_us = SRING_MAX_FLUSH_TIMEOUT_US;  // 10 s: the flush timer cannot be what signals
  return config;
}

TEST(Guarantees, StopAnswersAnArmedConsumerOfAStoppedRing) {
  Mapped ring(quiet_config(20'000'000));
  ASSERT_TRUE(ring.ok());
  ASSERT_EQ(ring.stats().state, uint32_t{SRING_STATE_STOPPED});
  ASSERT_EQ(ring.head(), ring.tail()) << "a reset ring is empty";
  expect_stop_answers(ring);
}

TEST(Guarantees, StopAnswersAnArmedConsumerOfARunningRing) {
  // 100 kS/s: an 8 KiB block every 41 ms, half the ring (the clamped
  // watermark) in 10 s: no block can answer the request in its place.
  Mapped ring(quiet_config(100'000));
  ASSERT_TRUE(ring.ok());
  const uint64_t start = ring.head();
  ASSERT_EQ(::ioctl(ring.fd(), SRING_IOC_START), 0) << strerror(errno);
  ASSERT_TRUE(eventually([&] { return ring.head() - start >= kBlock; })) << "no block in 10 s";
  // Drained: everything up to head released.
  __atomic_store_n(&ring.cons()->tail, ring.head(), __ATOMIC_RELEASE);
  ASSERT_EQ(ring.stats().state, uint32_t{SRING_STATE_RUNNING});
  expect_stop_answers(ring);
  EXPECT_EQ(ring.stats().bad_tails, 0u);
}

// read() copies whole blocks only: with room for 2.5 blocks it returns 2,
// never 2 and a half (docs/abi.md, "open, read, poll"). Two runs without a
// reset, 8 KiB blocks then 12 KiB ones: read() finds the older blocks by
// walking its own headers and the newer ones by their size, and both ways
// must stop at the last whole block that fits.
TEST(Guarantees, ReadNeverReturnsPartOfABlock) {
  constexpr uint32_t kOld = 8192;
  constexpr uint32_t kNew = 12288;
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid()) << strerror(errno);
  sring_config config = default_config();
  config.sample_rate = 2'000'000;  // the ring holds 1 s: it never fills here
  prepare(fd.get(), config);
  const uint64_t start = stats_of(fd.get()).head;
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0) << strerror(errno);
  ASSERT_TRUE(eventually([&] { return stats_of(fd.get()).head - start >= 6 * kOld; }));
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0);
  const uint64_t old_end = stats_of(fd.get()).head;
  config.block_bytes = kNew;
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &config), 0) << strerror(errno);
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0) << strerror(errno);
  ASSERT_TRUE(eventually([&] { return stats_of(fd.get()).head - old_end >= 6 * kNew; }));
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0);
  ASSERT_EQ(stats_of(fd.get()).blocks_dropped, 0u);
  const uint64_t old_blocks = (old_end - start) / kOld;

  // Room for the whole ring behind the count: a driver that copies more
  // than asked writes into the buffer, not past it.
  std::vector<uint8_t> buffer(sysfs_u64("ring_size"));
  uint64_t sequence = 0;
  auto expect_blocks = [&](size_t count, size_t blocks, uint32_t size, const std::string& what) {
    const ssize_t n = ::read(fd.get(), buffer.data(), count);
    EXPECT_EQ(n, static_cast<ssize_t>(blocks * size)) << "read() of " << what << ": " << strerror(errno);
    if (n <= 0) return;
    for (size_t k = 0; k < blocks && (k + 1) * size <= static_cast<size_t>(n); ++k) {
      sring_block_header h;
      std::memcpy(&h, buffer.data() + k * size, sizeof(h));
      EXPECT_EQ(h.magic, SRING_BLOCK_MAGIC) << what;
      EXPECT_EQ(h.total_bytes, size) << what;
      EXPECT_EQ(h.sequence, sequence++) << what;
    }
  };
  // The older blocks: the header walk.
  expect_blocks(5 * kOld / 2, 2, kOld, "2.5 blocks of 8 KiB");
  expect_blocks(3 * kOld / 2, 1, kOld, "1.5 blocks of 8 KiB");
  ASSERT_GE(old_blocks, 6u);
  expect_blocks((old_blocks - 3) * kOld + kNew / 2, old_blocks - 3, kOld,
                "the last " + std::to_string(old_blocks - 3) + " blocks of 8 KiB and half a 12 KiB one");
  // The newer ones: by their size.
  expect_blocks(5 * kNew / 2, 2, kNew, "2.5 blocks of 12 KiB");
  expect_blocks(3 * kNew / 2, 1, kNew, "1.5 blocks of 12 KiB");
  expect_blocks(2 * kNew - 64, 1, kNew, "2 blocks of 12 KiB less 64 bytes");
  expect_blocks(2 * kNew, 2, kNew, "exactly 2 blocks of 12 KiB");
}

// Drop-newest: a bad tail is counted in bad_tails and frees no space. The
// bad tail is one block beyond head: if the producer used it after
// counting it, there would be room for exactly one more block.
TEST(Guarantees, BadTailFreesNoSpaceUnderDropNewest) {
  Mapped ring(default_config());
  ASSERT_TRUE(ring.ok());
  ASSERT_EQ(::ioctl(ring.fd(), SRING_IOC_START), 0) << strerror(errno);
  // The consumer takes nothing: the ring fills and the device drops.
  ASSERT_TRUE(eventually([&] { return ring.stats().blocks_dropped > 0; })) << "the ring never filled";
  const sring_stats full = ring.stats();
  ASSERT_EQ(full.head - full.tail, ring.ring_size()) << "a full ring of 8 KiB blocks";
  __atomic_store_n(&ring.cons()->tail, full.head + kBlock, __ATOMIC_RELEASE);
  ASSERT_TRUE(eventually([&] { return ring.stats().bad_tails > full.bad_tails; })) << "the bad tail was never read";
  const sring_stats seen = ring.stats();
  ASSERT_TRUE(eventually([&] { return ring.stats().blocks_produced >= seen.blocks_produced + 16; }));
  ASSERT_EQ(::ioctl(ring.fd(), SRING_IOC_STOP), 0);
  const sring_stats end = ring.stats();
  EXPECT_EQ(end.head, full.head) << "a refused tail made room for " << (end.head - full.head) / kBlock << " blocks";
  EXPECT_EQ(end.tail, full.tail) << "the accepted tail moved";
  EXPECT_GE(end.blocks_dropped, seen.blocks_dropped + 16) << "the ring stayed full: every new block dropped";
  EXPECT_GT(end.bad_tails, full.bad_tails);
  // Exact: what is in the ring plus what was dropped is what was made.
  EXPECT_EQ(end.blocks_produced, (end.head - end.tail) / kBlock + end.blocks_dropped);
  EXPECT_EQ(end.samples_produced, (end.head - end.tail) / kBlock * kSamplesPerBlock + end.samples_dropped);
}

// Overwrite-oldest: the reclaim loop checks the range of the tail it loads
// itself (sring_reclaim_oldest), as sring_accepted_tail does. A full ring,
// a consumer that takes nothing and then writes a bad tail; the producer's
// reclaiming CAS replaces the bad tail with the end of the block it takes
// back. At the end the tail in the page is a valid position, GET_STATS says
// the same, and every sample made is in the ring or counted dropped, once.
void overwrite_with_a_bad_tail(bool beyond_head) {
  Mapped ring(overwrite_config());
  ASSERT_TRUE(ring.ok());
  ASSERT_NO_FATAL_FAILURE(start_until_reclaiming(ring));
  const sring_stats reclaiming = ring.stats();
  uint64_t bad = 0;
  if (beyond_head) {
    bad = ring.head() + ring.ring_size() / 2;
    __atomic_store_n(&ring.cons()->tail, bad, __ATOMIC_RELEASE);
  } else {
    // Exactly one block behind the tail the producer last moved it to: a
    // CAS, so that a reclaim in between cannot make it two.
    uint64_t expected = ring.tail();
    do {
      bad = expected - kBlock;
    } while (!__atomic_compare_exchange_n(&ring.cons()->tail, &expected, bad, false, __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE));
  }
  ASSERT_TRUE(eventually([&] { return ring.stats().bad_tails > reclaiming.bad_tails; })) << "never read";
  const sring_stats seen = ring.stats();
  ASSERT_TRUE(eventually([&] { return ring.stats().blocks_dropped >= seen.blocks_dropped + 16; }))
      << "reclaiming stopped after the bad tail";
  ASSERT_EQ(::ioctl(ring.fd(), SRING_IOC_STOP), 0);

  // The end of the stream: state, then head; the blocks up to it.
  ASSERT_NE(ring.state(), uint32_t{SRING_STATE_RUNNING});
  const uint64_t head = ring.head();
  const uint64_t tail = ring.tail();
  const sring_stats end = ring.stats();
  EXPECT_NE(tail, bad) << "the bad tail stayed in the consumer page";
  EXPECT_EQ(end.tail, tail) << "GET_STATS and the consumer page disagree on the tail";
  ASSERT_LE(head - tail, ring.ring_size()) << "the consumer page's tail " << tail << " is outside the ring (head "
                                           << head << ", bad tail written " << bad << ")";
  const Blocks left = walk(ring, tail, head);
  ASSERT_TRUE(left.error.empty()) << left.error;
  // Release them (the producer is stopped: the CAS must succeed).
  uint64_t expected = tail;
  EXPECT_TRUE(__atomic_compare_exchange_n(&ring.cons()->tail, &expected, head, false, __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE));
  EXPECT_EQ(end.blocks_produced, left.blocks + end.blocks_dropped)
      << "blocks: " << left.blocks << " in the ring, " << end.blocks_dropped << " dropped";
  EXPECT_EQ(end.samples_produced, left.samples + end.samples_dropped)
      << "samples: " << left.samples << " in the ring, " << end.samples_dropped << " dropped";
  EXPECT_EQ(end.head, head);
}

TEST(Guarantees, ReclaimRefusesATailBeyondHead) { overwrite_with_a_bad_tail(true); }

TEST(Guarantees, ReclaimRefusesATailBehindTheAcceptedOne) { overwrite_with_a_bad_tail(false); }

// Overwrite-oldest reclaims with a compare-and-swap on tail, so that a
// consumer that releases the oldest block at the same moment owns it: the
// producer's CAS fails and it finds the room the release made. The race is
// made deterministic by SRING_FAULT_RECLAIM_RACE: at the next reclaim, the
// core releases the oldest block itself between the producer's load of tail
// and its CAS. That block went to the fault's consumer: it is neither in the
// ring nor dropped, so the test's accounting is short of exactly one block.
// A producer that stored tail instead would count it dropped as well.
TEST(Guarantees, ReclaimLosesTheRaceToAConsumerRelease) {
  Mapped ring(overwrite_config());
  ASSERT_TRUE(ring.ok());
  ASSERT_NO_FATAL_FAILURE(start_until_reclaiming(ring));
  sring_fault fault{SRING_FAULT_RECLAIM_RACE, 0, 1};
  ASSERT_EQ(::ioctl(ring.fd(), SRING_IOC_INJECT_FAULT, &fault), 0) << strerror(errno);
  // A reclaim takes the fault at its first victim: once more blocks were
  // reclaimed after the injection, it was consumed.
  const sring_stats injected = ring.stats();
  ASSERT_TRUE(eventually([&] { return ring.stats().blocks_dropped >= injected.blocks_dropped + 8; }));
  ASSERT_EQ(::ioctl(ring.fd(), SRING_IOC_STOP), 0);

  // The end of the stream: state, then head; everything up to it consumed.
  ASSERT_NE(ring.state(), uint32_t{SRING_STATE_RUNNING});
  const uint64_t head = ring.head();
  const uint64_t tail = ring.tail();
  ASSERT_LE(head - tail, ring.ring_size());
  const Blocks left = walk(ring, tail, head);
  ASSERT_TRUE(left.error.empty()) << left.error;
  uint64_t expected = tail;
  EXPECT_TRUE(__atomic_compare_exchange_n(&ring.cons()->tail, &expected, head, false, __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE));
  const sring_stats end = ring.stats();
  EXPECT_EQ(end.blocks_produced, left.blocks + end.blocks_dropped + 1)
      << "blocks: " << left.blocks << " delivered here, " << end.blocks_dropped
      << " dropped, and one released by the injected consumer";
  EXPECT_EQ(end.samples_produced, left.samples + end.samples_dropped + kSamplesPerBlock)
      << "samples: " << left.samples << " delivered here, " << end.samples_dropped
      << " dropped, and one block's released by the injected consumer";
  EXPECT_EQ(end.bad_tails, 0u);
}

}  // namespace
