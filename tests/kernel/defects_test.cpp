// Runs inside the QEMU guest, linked into kernel_test (tests/kernel/BUILD).
// Defects found by probing the driver from outside (issue 21), each with a
// test that failed before its fix: poll() at the end of a stream, the flush
// timeout, RESET during a read(), tails inside blocks, statistics after a
// stop, monitors writing the consumer page, control through a read-only fd,
// configure before stop, fault kinds.
//
// Sleeps here only make a failure likely to be seen early (a poller that is
// asleep when the stream ends); no verdict depends on one. Where something
// must not happen (a wake-up before the data, a RESET inside a read), the
// device is held still with an injected stall of 10 s, far longer than any
// bound the test waits.
#include <linux/userfaultfd.h>
#include <sys/epoll.h>
#include <sys/syscall.h>

#include <atomic>
#include <thread>
#include <vector>

#include "tests/kernel/kernel_util.hpp"

namespace {

using namespace sring_ktest;

constexpr uint64_t kRingSize = 4u << 20;
constexpr uint32_t kBlock = 8192;  // default_config()'s block size

// 1 MS/s: 2 MB/s, a block every 4 ms. Slow enough that what arrives while a
// test looks stays far below half the ring (the watermarks used here).
sring_config slow_config() {
  sring_config config = default_config();
  config.sample_rate = 1'000'000;
  return config;
}

int inject(int fd, uint32_t kind, uint64_t arg) {
  sring_fault fault{};
  fault.kind = kind;
  fault.arg = arg;
  return ::ioctl(fd, SRING_IOC_INJECT_FAULT, &fault);
}

// Holds the simulated device still: it makes nothing for 10 s (the longest
// stall allowed), and what it is in the middle of has landed once head stops
// moving.
void stall_device(int fd, const RingMapping& m) {
  ASSERT_EQ(inject(fd, SRING_FAULT_STALL, 10'000'000), 0) << strerror(errno);
  uint64_t head = m.head();
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(20ms);
    if (m.head() == head) return;
    head = m.head();
  }
  FAIL() << "the device kept producing through a stall";
}

// Waits (at most 5 s) until the device has published at least `bytes`.
void wait_for_data(const RingMapping& m, uint64_t bytes) {
  for (int i = 0; i < 500 && m.head() - m.tail() < bytes; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_GE(m.head() - m.tail(), bytes) << "the device produced nothing";
}

void wait_for_state(const std::string& state) {
  for (int i = 0; i < 500 && sysfs("state") != state; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(sysfs("state"), state);
}

// One waiter in poll() or epoll_wait() on the device fd, in its own thread.
// Bounded by 5 s: an end of stream that never shows is a failure, reported
// as such, not a hang.
struct Sleeper {
  Sleeper(int fd, bool use_epoll) {
    thread = std::thread([this, fd, use_epoll] {
      const auto began = std::chrono::steady_clock::now();
      if (use_epoll) {
        UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
        epoll_event ev{};
        ev.events = EPOLLIN;
        if (::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return;
        asleep = true;
        epoll_event out{};
        result = ::epoll_wait(ep.get(), &out, 1, 5000);
        revents = static_cast<short>(out.events);
      } else {
        pollfd pfd{fd, POLLIN, 0};
        asleep = true;
        result = ::poll(&pfd, 1, 5000);
        revents = pfd.revents;
      }
      waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began);
    });
    while (!asleep) std::this_thread::yield();
    std::this_thread::sleep_for(100ms);  // most likely in the kernel by now
  }
  void join() { thread.join(); }

  std::thread thread;
  std::atomic<bool> asleep{false};
  int result = -1;
  short revents = 0;
  std::chrono::milliseconds waited{0};
};

// ---- poll() at the end of a stream -----------------------------------------

// A consumer asleep in poll() (or epoll) on a drained ring while another
// thread stops the device, or the device fails: read() returns 0 at that
// moment, so poll() must report the ring readable instead of sleeping on.
// Armed: need_wakeup set as docs/abi.md's Waiting section says; unarmed:
// poll() arms it itself. (The device's removal: guest-init.sh's
// gone-checks, with poll() and epoll.)
enum class End { kStop, kFailure };

void end_wakes_sleeper(bool armed, bool use_epoll, End end = End::kStop) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  sring_config config = slow_config();
  config.flush_timeout_us = SRING_MAX_FLUSH_TIMEOUT_US;  // no flush can stand in for the stop's wake-up
  prepare(fd.get(), config);
  RingMapping m(fd.get());
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0);
  wait_for_data(m, kBlock);
  stall_device(fd.get(), m);
  m.release_to(m.head());  // drained
  if (armed) m.arm(kRingSize / 2);

  Sleeper sleeper(fd.get(), use_epoll);
  if (end == End::kStop) {
    ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0);
  } else {
    ASSERT_EQ(inject(fd.get(), SRING_FAULT_FAIL, 1), 0) << strerror(errno);
  }
  sleeper.join();
  EXPECT_EQ(sleeper.result, 1) << "poll() slept through the end of the stream";
  EXPECT_EQ(sysfs("state"), end == End::kStop ? "stopped" : "failed");
  EXPECT_TRUE(sleeper.revents & POLLIN);
  char buf[kBlock];
  EXPECT_EQ(::read(fd.get(), buf, sizeof(buf)), 0) << "read() says the stream ended";
  pollfd pfd{fd.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 1) << "and poll() goes on saying so";
}

TEST(Defects, PollSeesTheStopArmed) { end_wakes_sleeper(true, false); }
TEST(Defects, PollSeesTheStopUnarmed) { end_wakes_sleeper(false, false); }
TEST(Defects, EpollSeesTheStopArmed) { end_wakes_sleeper(true, true); }
TEST(Defects, EpollSeesTheStopUnarmed) { end_wakes_sleeper(false, true); }
TEST(Defects, PollSeesAFailureArmed) { end_wakes_sleeper(true, false, End::kFailure); }
TEST(Defects, PollSeesAFailureUnarmed) { end_wakes_sleeper(false, false, End::kFailure); }
TEST(Defects, EpollSeesAFailureArmed) { end_wakes_sleeper(true, true, End::kFailure); }
TEST(Defects, EpollSeesAFailureUnarmed) { end_wakes_sleeper(false, true, End::kFailure); }

// The device ends the stream itself (stop policy, a full ring): once the
// consumer drained it, poll() and epoll report the end; a sleeper from
// before the drain would have been woken by the data.
TEST(Defects, PollSeesTheEndAfterAnOverrunStop) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  sring_config config = default_config();
  config.overrun_policy = SRING_OVERRUN_STOP;
  prepare(fd.get(), config);
  RingMapping m(fd.get());
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0);
  wait_for_state("overrun-stopped");
  m.release_to(m.head());
  m.arm(kRingSize / 2);
  pollfd pfd{fd.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 2000), 1) << "a drained, overrun-stopped ring is the end of the stream";
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ASSERT_EQ(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd.get(), &ev), 0);
  EXPECT_EQ(::epoll_wait(ep.get(), &ev, 1, 2000), 1);
  char buf[kBlock];
  EXPECT_EQ(::read(fd.get(), buf, sizeof(buf)), 0);
}

// Before the first start after a reset there is no stream yet: poll() sleeps
// (a poller may be waiting for the START), and read() waits with it.
TEST(Defects, BeforeTheFirstStartPollAndReadWait) {
  UniqueFd fd = open_device(O_RDWR | O_NONBLOCK);
  ASSERT_TRUE(fd.valid());
  prepare(fd.get(), default_config());
  pollfd pfd{fd.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 100), 0) << "nothing to report before the stream begins";
  char buf[kBlock];
  EXPECT_EQ(::read(fd.get(), buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, EAGAIN) << "no end of file before the stream began";
  // A poller waiting for the start is woken by its first blocks.
  RingMapping m(fd.get());
  Sleeper sleeper(fd.get(), false);
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0);
  sleeper.join();
  EXPECT_EQ(sleeper.result, 1);
  EXPECT_GT(m.head(), m.tail());
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0);
}

// ---- the flush timeout -----------------------------------------------------

// slow_config() with a flush timeout of 50 ms.
sring_config flush_config() {
  sring_config config = slow_config();
  config.flush_timeout_us = 50'000;
  return config;
}

// Data published while nobody asked for a wake-up, then a consumer that asks
// below its watermark and sleeps, while the device stalls: it is signalled
// within the flush timeout, not at the next block (10 s away).
void flush_reaches_late_sleeper(bool through_poll) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  sring_config config = flush_config();
  prepare(fd.get(), config);
  const UniqueFd efd = registered_eventfd(fd.get());
  RingMapping m(fd.get());
  __atomic_store_n(&m.cons->need_wakeup, 0u, __ATOMIC_RELAXED);
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0);
  wait_for_data(m, kBlock);
  stall_device(fd.get(), m);
  const uint64_t head = m.head();
  ASSERT_LT(head - m.tail(), kRingSize / 2) << "below the watermark";
  const uint64_t wakeups = stats_of(fd.get()).wakeups;

  const auto asked = std::chrono::steady_clock::now();
  int woken;
  // Asked below the watermark: poll() on the device waits for the
  // watermark as the eventfd does (unasked, it reports any data at once).
  m.arm(kRingSize / 2);
  pollfd pfd{through_poll ? fd.get() : efd.get(), POLLIN, 0};
  woken = ::poll(&pfd, 1, 3000);
  const auto waited = std::chrono::steady_clock::now() - asked;
  EXPECT_EQ(woken, 1) << "a consumer asleep below its watermark was never flushed";
  EXPECT_EQ(m.head(), head) << "woken by the flush, not by new data";
  EXPECT_EQ(stats_of(fd.get()).wakeups, wakeups + 1);
  EXPECT_LT(waited, 2000ms);
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0);
}

TEST(Defects, FlushReachesAConsumerThatArmedAfterThePublish) { flush_reaches_late_sleeper(false); }

// Data left from before a STOP, a START, and a device whose next block is
// 4 s away: a consumer that asks below its watermark is flushed all the
// same (the start must not leave the flush timer off until a publish).
TEST(Defects, FlushAfterARestartWithDataLeft) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  sring_config config = flush_config();
  prepare(fd.get(), config);
  const UniqueFd efd = registered_eventfd(fd.get());
  RingMapping m(fd.get());
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0);
  wait_for_data(m, kBlock);
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0);
  config.sample_rate = 1000;  // 4064 samples a block: 4 s each
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &config), 0);
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0);
  const uint64_t head = m.head();
  m.arm(kRingSize / 2);
  pollfd pfd{efd.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 2000), 1) << "data left from before the start was never flushed";
  EXPECT_EQ(m.head(), head) << "woken by the flush, not by a block";
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0);
}
TEST(Defects, FlushReachesAPollerThatArmedAfterThePublish) { flush_reaches_late_sleeper(true); }

// ---- read() against RESET, and read() against read() -----------------------

// A user buffer whose pages fault into userfaultfd: read()'s copy stops at
// the first one until the test resolves it.
struct FaultingBuffer {
  // Kernels built without CONFIG_USERFAULTFD (Debian's has it) skip.
  static bool supported() {
    UniqueFd probe(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
    return probe.valid() || errno != ENOSYS;
  }
  explicit FaultingBuffer(size_t bytes) : length(bytes) {
    uffd.reset(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
    EXPECT_TRUE(uffd.valid()) << "userfaultfd: " << strerror(errno);
    uffdio_api api{};
    api.api = UFFD_API;
    EXPECT_EQ(::ioctl(uffd.get(), UFFDIO_API, &api), 0) << strerror(errno);
    void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT_NE(p, MAP_FAILED);
    data = static_cast<uint8_t*>(p);
    uffdio_register reg{};
    reg.range.start = reinterpret_cast<uintptr_t>(data);
    reg.range.len = length;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    EXPECT_EQ(::ioctl(uffd.get(), UFFDIO_REGISTER, &reg), 0) << strerror(errno);
  }
  ~FaultingBuffer() { ::munmap(data, length); }

  // Lets every fault go: closing the userfaultfd wakes the faulting
  // threads, whose faults then resolve as plain ones.
  void release() { uffd.reset(); }

  // Waits (5 s at most) for a fault; true if one is pending.
  bool fault_pending() {
    pollfd pfd{uffd.get(), POLLIN, 0};
    return ::poll(&pfd, 1, 5000) == 1;
  }
  // Resolves every pending fault with a zero page.
  void resolve_pending() {
    uffd_msg msg{};
    while (::read(uffd.get(), &msg, sizeof(msg)) == sizeof(msg)) {
      if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
      const long page = ::sysconf(_SC_PAGESIZE);
      uffdio_zeropage zero{};
      zero.range.start = msg.arg.pagefault.address & ~static_cast<uint64_t>(page - 1);
      zero.range.len = static_cast<uint64_t>(page);
      ::ioctl(uffd.get(), UFFDIO_ZEROPAGE, &zero);
    }
  }

  UniqueFd uffd;
  size_t length;
  uint8_t* data = nullptr;
};

// Joins threads that may be held in the buffer's faults at scope exit, also
// when an ASSERT returns early (a joinable std::thread would terminate).
struct JoinAll {
  FaultingBuffer& buffer;
  std::vector<std::thread*> threads;
  ~JoinAll() {
    buffer.release();
    for (std::thread* t : threads) {
      if (t->joinable()) t->join();
    }
  }
};

// Fills the ring with a few blocks of a stopped stream.
void stopped_with_blocks(int fd, const RingMapping& m, uint64_t blocks) {
  prepare(fd, slow_config());
  ASSERT_EQ(::ioctl(fd, SRING_IOC_START), 0);
  wait_for_data(m, blocks * kBlock);
  ASSERT_EQ(::ioctl(fd, SRING_IOC_STOP), 0);
}

TEST(Defects, ResetWaitsForAReadHeldInAPageFault) {
  if (!FaultingBuffer::supported()) GTEST_SKIP() << "this kernel has no userfaultfd";
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  RingMapping m(fd.get());
  stopped_with_blocks(fd.get(), m, 4);
  FaultingBuffer buffer(2 * kBlock);

  std::atomic<ssize_t> copied{-1};
  std::atomic<bool> reset_done{false};
  std::atomic<int> reset_result{-1};
  std::thread reader;
  std::thread resetter;
  const JoinAll join{buffer, {&reader, &resetter}};
  reader = std::thread([&] { copied = ::read(fd.get(), buffer.data, 2 * kBlock); });
  ASSERT_TRUE(buffer.fault_pending()) << "read() never touched the buffer";
  resetter = std::thread([&] {
    reset_result = ::ioctl(fd.get(), SRING_IOC_RESET);
    reset_done = true;
  });
  // The read() cannot go on: a RESET that returns now lands inside it.
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(reset_done) << "RESET returned while a read() was copying";
  // The waiting RESET holds nothing the ring's other users need: a
  // monitor's GET_CONFIG answers at once.
  UniqueFd monitor = open_device(O_RDONLY);
  ASSERT_TRUE(monitor.valid());
  std::atomic<bool> answered{false};
  std::thread asker([&] {
    sring_config config{};
    answered = ::ioctl(monitor.get(), SRING_IOC_GET_CONFIG, &config) == 0;
  });
  for (int i = 0; i < 200 && !answered; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_TRUE(answered) << "GET_CONFIG waited for a RESET that waits for a read()";
  while (!reset_done || copied < 0) {
    buffer.resolve_pending();
    std::this_thread::sleep_for(1ms);
    if (copied >= 0 && reset_done) break;
  }
  reader.join();
  resetter.join();
  asker.join();
  EXPECT_EQ(copied.load(), static_cast<ssize_t>(2 * kBlock));
  EXPECT_EQ(reset_result.load(), 0);
  const auto* first = reinterpret_cast<const sring_block_header*>(buffer.data);
  EXPECT_EQ(first->magic, SRING_BLOCK_MAGIC);
  EXPECT_EQ(first->sequence, 0u) << "the copy is of the stream before the reset";
  // The reset is whole: head and tail at the reset position, nothing
  // consumed, and a new consumer attaches.
  const sring_stats stats = stats_of(fd.get());
  EXPECT_EQ(m.tail(), stats.head) << "read() stored its old tail after the reset";
  EXPECT_EQ(stats.tail, stats.head);
  EXPECT_EQ(stats.bytes_consumed, 0u);
  EXPECT_EQ(stats.bad_tails, 0u);
}

TEST(Defects, TwoReadsNeverCopyTheSameBlocks) {
  if (!FaultingBuffer::supported()) GTEST_SKIP() << "this kernel has no userfaultfd";
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  RingMapping m(fd.get());
  stopped_with_blocks(fd.get(), m, 4);
  FaultingBuffer held(2 * kBlock);
  std::atomic<ssize_t> first_copied{-1};
  std::vector<uint8_t> plain(2 * kBlock);
  std::atomic<ssize_t> second_copied{-2};
  std::thread first;
  std::thread second;
  const JoinAll join{held, {&first, &second}};
  first = std::thread([&] { first_copied = ::read(fd.get(), held.data, 2 * kBlock); });
  ASSERT_TRUE(held.fault_pending());
  second = std::thread([&] { second_copied = ::read(fd.get(), plain.data(), plain.size()); });
  std::this_thread::sleep_for(300ms);
  while (first_copied < 0) {
    held.resolve_pending();
    std::this_thread::sleep_for(1ms);
  }
  first.join();
  second.join();
  ASSERT_EQ(first_copied, static_cast<ssize_t>(2 * kBlock));
  ASSERT_EQ(second_copied, static_cast<ssize_t>(2 * kBlock));
  const auto* a = reinterpret_cast<const sring_block_header*>(held.data);
  const auto* b = reinterpret_cast<const sring_block_header*>(plain.data());
  EXPECT_EQ(a->sequence, 0u);
  EXPECT_EQ(b->sequence, 2u) << "the second read() copied blocks the first one had";
  EXPECT_EQ(stats_of(fd.get()).bytes_consumed, 4u * kBlock);
}

// ---- tails and statistics --------------------------------------------------

TEST(Defects, StatisticsShowReleasesMadeAfterTheStop) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  RingMapping m(fd.get());
  stopped_with_blocks(fd.get(), m, 4);
  const uint64_t start = m.tail();
  m.release_to(m.head());
  const sring_stats stats = stats_of(fd.get());
  EXPECT_EQ(stats.tail, stats.head) << "a drained, stopped ring shows no lag";
  EXPECT_EQ(stats.bytes_consumed, stats.head - start);
  EXPECT_EQ(sysfs_u64("tail"), stats.tail) << "sysfs tail means what GET_STATS.tail means";
  EXPECT_EQ(sysfs_u64("bytes_consumed"), stats.bytes_consumed);
  EXPECT_EQ(sysfs_u64("fill"), 0u);
  // A tail the producer refuses shows as the last one it accepted, in both.
  m.release_to(stats.head + 64);
  EXPECT_EQ(stats_of(fd.get()).tail, stats.head);
  EXPECT_EQ(sysfs_u64("tail"), stats.head);
}

TEST(Defects, TailsInsideABlockAreRefused) {
  UniqueFd fd = open_device(O_RDWR | O_NONBLOCK);
  ASSERT_TRUE(fd.valid());
  RingMapping m(fd.get());
  stopped_with_blocks(fd.get(), m, 4);
  const uint64_t good = m.tail();
  for (uint64_t off : {2u, 10u, 64u, 4096u, kBlock + 64u}) {
    const uint64_t bad_before = stats_of(fd.get()).bad_tails;
    m.release_to(good + off);
    const sring_stats stats = stats_of(fd.get());
    EXPECT_EQ(stats.bad_tails, bad_before + 1) << "tail +" << off << " was taken";
    EXPECT_EQ(stats.tail, good);
    EXPECT_EQ(stats.bytes_consumed % kBlock, 0u);
  }
  m.release_to(good);
  // On a boundary: taken. read() then goes on from it with whole blocks.
  m.release_to(good + kBlock);
  const sring_stats stats = stats_of(fd.get());
  EXPECT_EQ(stats.tail, good + kBlock);
  std::vector<uint8_t> buf(kBlock);
  ASSERT_EQ(::read(fd.get(), buf.data(), buf.size()), static_cast<ssize_t>(kBlock)) << strerror(errno);
  EXPECT_EQ(reinterpret_cast<const sring_block_header*>(buf.data())->sequence, 1u);
}

// Blocks of two sizes in the ring (the size changed at a start while 8 KiB
// blocks were unconsumed): the boundaries of both are known, nothing else is
// taken, and read() copies across the change with whole blocks.
TEST(Defects, BoundariesAcrossABlockSizeChange) {
  UniqueFd fd = open_device(O_RDWR | O_NONBLOCK);
  ASSERT_TRUE(fd.valid());
  RingMapping m(fd.get());
  stopped_with_blocks(fd.get(), m, 2);
  const uint64_t start = m.tail();
  const uint64_t change = m.head();
  sring_config small = slow_config();
  small.block_bytes = 3072;  // not a divisor of 8 KiB
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &small), 0);
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0);
  wait_for_data(m, change - start + 4 * 3072);
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0);

  // Inside the first 8 KiB block, at a multiple of the new size: refused.
  uint64_t bad = stats_of(fd.get()).bad_tails;
  m.release_to(start + 3072 * 2);
  EXPECT_EQ(stats_of(fd.get()).bad_tails, bad + 1);
  m.release_to(start + kBlock);  // an old boundary
  EXPECT_EQ(stats_of(fd.get()).tail, start + kBlock);
  bad = stats_of(fd.get()).bad_tails;
  m.release_to(change + 1024);  // inside the first new block
  EXPECT_EQ(stats_of(fd.get()).bad_tails, bad + 1);
  m.release_to(start + kBlock);

  // read(): the rest of the old blocks and the new ones, each whole.
  std::vector<uint8_t> buf(1 << 20);
  const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
  ASSERT_GT(n, 0) << strerror(errno);
  EXPECT_EQ(static_cast<uint64_t>(n), m.head() - (start + kBlock)) << "read() stopped short";
  uint64_t expected_sequence = 1;
  for (ssize_t off = 0; off < n;) {
    const auto* block = reinterpret_cast<const sring_block_header*>(buf.data() + off);
    ASSERT_EQ(block->magic, SRING_BLOCK_MAGIC) << "at " << off;
    EXPECT_EQ(block->sequence, expected_sequence++);
    EXPECT_EQ(block->total_bytes, start + kBlock + off < change ? kBlock : 3072u);
    off += block->total_bytes;
    ASSERT_LE(off, n) << "read() returned part of a block";
  }
  m.release_to(m.head());
  EXPECT_EQ(stats_of(fd.get()).tail, m.head()) << "head is a boundary";
}

// sring knows its boundaries from one record per block size the
// unreleased part of the ring holds (8 at most): a start with a ninth size
// is refused until the consumer is past the oldest, and a bad tail costs the
// producer no walk through headers, whatever it is.
TEST(Defects, AtMostEightBlockSizesAtOnce) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  RingMapping m(fd.get());
  sring_config config = slow_config();
  prepare(fd.get(), config);
  const uint64_t start = m.tail();
  for (uint32_t size = 1024; size < 1024 + 9 * 128; size += 128) {
    config.block_bytes = size;
    ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &config), 0) << strerror(errno);
    if (size == 1024 + 8 * 128) {
      EXPECT_EQ(::ioctl(fd.get(), SRING_IOC_START), -1) << "a ninth block size in the ring";
      EXPECT_EQ(errno, EBUSY);
      EXPECT_EQ(sysfs("state"), "stopped");
      break;
    }
    ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0) << "size " << size << ": " << strerror(errno);
    const uint64_t before = m.head();
    for (int i = 0; i < 500 && m.head() == before; ++i) std::this_thread::sleep_for(5ms);
    ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0);
    ASSERT_GT(m.head(), before) << "no block of " << size << " bytes";
  }
  // Every boundary of the eight sizes is known: walk them by the headers
  // and release block by block; every tail is taken.
  for (uint64_t pos = start; pos != m.head(); pos += m.block_at(pos).total_bytes) {
    ASSERT_EQ(m.block_at(pos).magic, SRING_BLOCK_MAGIC);
    m.release_to(pos + m.block_at(pos).total_bytes);
    ASSERT_EQ(stats_of(fd.get()).tail, pos + m.block_at(pos).total_bytes);
  }
  EXPECT_EQ(stats_of(fd.get()).bad_tails, 0u);
  // Past the old sizes, the ninth starts.
  EXPECT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0) << strerror(errno);
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0);
}

// ---- monitors --------------------------------------------------------------

TEST(Defects, MonitorPollLeavesTheConsumerPageAlone) {
  UniqueFd consumer = open_device(O_RDWR);
  ASSERT_TRUE(consumer.valid());
  RingMapping m(consumer.get());
  stopped_with_blocks(consumer.get(), m, 1);
  m.release_to(m.head());
  __atomic_store_n(&m.cons->need_wakeup, 0u, __ATOMIC_RELAXED);
  prepare(consumer.get(), default_config());
  UniqueFd monitor = open_device(O_RDONLY);
  ASSERT_TRUE(monitor.valid());
  pollfd pfd{monitor.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 50), 0);
  EXPECT_EQ(__atomic_load_n(&m.cons->need_wakeup, __ATOMIC_RELAXED), 0u)
      << "a monitor's poll() asked the producer to wake the consumer";
}

// A monitor asleep in poll() is woken by new blocks, also after the
// consumer closed (which clears need_wakeup).
TEST(Defects, MonitorAsleepIsWokenByBlocksAfterTheConsumerLeft) {
  UniqueFd consumer = open_device(O_RDWR);
  ASSERT_TRUE(consumer.valid());
  sring_config config = default_config();
  prepare(consumer.get(), config);
  UniqueFd monitor = open_device(O_RDONLY);
  ASSERT_TRUE(monitor.valid());
  {
    RingMapping m(consumer.get());
    ASSERT_EQ(::ioctl(consumer.get(), SRING_IOC_START), 0);
    wait_for_data(m, kBlock);
    // Still for 1 s, then a burst of what it owes.
    ASSERT_EQ(inject(consumer.get(), SRING_FAULT_STALL, 1'000'000), 0);
    std::this_thread::sleep_for(50ms);
    m.release_to(m.head());
  }
  Sleeper sleeper(monitor.get(), false);
  consumer.reset();  // the device runs on without a consumer
  sleeper.join();
  EXPECT_EQ(sleeper.result, 1) << "the monitor slept through new blocks";
  EXPECT_LT(sleeper.waited, 3000ms) << "woken long after the blocks came (1 s)";
  std::printf("monitor woken after %lld ms\n", static_cast<long long>(sleeper.waited.count()));
  UniqueFd again = open_device(O_RDWR);
  ASSERT_TRUE(again.valid());
  ASSERT_EQ(::ioctl(again.get(), SRING_IOC_STOP), 0);
}

// ---- control ---------------------------------------------------------------

// A read-only open that took the consumer role with read() (dd, cat)
// consumes, and controls nothing.
TEST(Defects, ReadOnlyConsumerControlsNothing) {
  UniqueFd control = open_device(O_RDWR);
  ASSERT_TRUE(control.valid());
  prepare(control.get(), default_config());
  control.reset();
  UniqueFd reader = open_device(O_RDONLY | O_NONBLOCK);
  ASSERT_TRUE(reader.valid());
  char buf[kBlock];
  EXPECT_EQ(::read(reader.get(), buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(sysfs("consumer"), "1") << "read() took the consumer role";
  const sring_config config = default_config();
  const int32_t efd = ::eventfd(0, EFD_CLOEXEC);
  EXPECT_EQ(::ioctl(reader.get(), SRING_IOC_SET_CONFIG, &config), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::ioctl(reader.get(), SRING_IOC_START), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::ioctl(reader.get(), SRING_IOC_RESET), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::ioctl(reader.get(), SRING_IOC_STOP), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::ioctl(reader.get(), SRING_IOC_SET_EVENTFD, &efd), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(inject(reader.get(), SRING_FAULT_CORRUPT, 1), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(sysfs("state"), "stopped");
  ::close(efd);
}

// The device ended the stream by itself (stop policy): SET_CONFIG stops it
// before asking it about the new configuration (the simulated device
// refuses to be configured while its engine is on).
TEST(Defects, ConfigureComesAfterTheDeviceStopped) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  sring_config config = default_config();
  config.overrun_policy = SRING_OVERRUN_STOP;
  prepare(fd.get(), config);
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0);
  wait_for_state("overrun-stopped");
  config.overrun_policy = SRING_OVERRUN_DROP_NEWEST;
  EXPECT_EQ(::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &config), 0) << strerror(errno);
}

TEST(Defects, FaultKindsAndBoundsAreCheckedForEveryDevice) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  prepare(fd.get(), default_config());
  EXPECT_EQ(inject(fd.get(), 99, 1), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(inject(fd.get(), SRING_FAULT_RECLAIM_RACE, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(inject(fd.get(), SRING_FAULT_RECLAIM_RACE, SRING_MAX_FAULT_BLOCKS + 1), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(inject(fd.get(), SRING_FAULT_STALL, SRING_MAX_FAULT_STALL_US + 1), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(inject(fd.get(), SRING_FAULT_FAIL, 2), -1);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_EQ(inject(fd.get(), SRING_FAULT_RECLAIM_RACE, 1), 0);
}

TEST(Defects, LseekIsRefused) {
  UniqueFd fd = open_device(O_RDONLY);
  ASSERT_TRUE(fd.valid());
  EXPECT_EQ(::lseek(fd.get(), 0, SEEK_SET), -1);
  EXPECT_EQ(errno, ESPIPE);
}

}  // namespace
