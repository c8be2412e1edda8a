// Runs inside the QEMU guest against the real module: real /dev/sring0,
// real mmap, real eventfd. Every bad request must get its error and change
// nothing; tests/qemu/guest-init.sh also checks dmesg after the run.
//
//   kernel_test [gtest flags]   the scenarios
//   kernel_test hold DEVICE     map the ring and sleep (for the rmmod check)
//   kernel_test as-user UID GID PROGRAM ARGS...   run PROGRAM unprivileged
//   kernel_test fuzz SECONDS SEED                 random abuse of /dev/sring0 with a reach table (fuzz.cpp)
//   kernel_test start-device RATE | stop-device   leave the device running / stop it
//   kernel_test attach-consume SECONDS            attach mid-stream and verify
//   kernel_test expect-position P                 head and tail just above P
//   kernel_test fragment MIB KEEP                 hold 1 page in KEEP of MIB MiB, mlocked
//   kernel_test quiet-after-stop DEVICE RATE      once STOP returns, no byte of the ring changes
//   kernel_test verify-limit SECONDS [BYTES]      the CPU's verify-only limit (no device, one thread)
//   kernel_test refused-formats DEVICE            a 16-bit one-channel device refuses other layouts
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <mutex>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sring/consumer.hpp"
#include "sring/device.hpp"
#include "sring/ring.hpp"
#include "sring/stream.hpp"
#include "sring/verify.hpp"
#include "sring/sring_abi.h"
#include "sring/sring_pattern.h"
#include "tests/kernel/kernel_util.hpp"

namespace sring_ktest {
// tests/kernel/fuzz.cpp (docs/fuzzing.md).
int fuzz(double seconds, uint64_t seed);
}  // namespace sring_ktest

namespace {

using namespace std::chrono_literals;
using sring::Ring;
using sring::UniqueFd;

using namespace sring_ktest;

TEST(Load, DeviceAndSysfsAppear) {
  EXPECT_EQ(::access(kDevice, F_OK), 0);
  EXPECT_EQ(sysfs("state"), "stopped");
  // A 4 MiB ring is one chunk of the largest order; the simulated device
  // fills it with the CPU, so it has no DMA segments.
  EXPECT_EQ(sysfs("memory"), "pages chunks=1 order10=1");
  EXPECT_EQ(sysfs_u64("ring_size"), 4u << 20);
  EXPECT_EQ(sysfs("abi_version"), "1.4");
  EXPECT_EQ(sysfs("consumer"), "0");
  EXPECT_FALSE(sysfs("version").empty());
}

TEST(Open, OneConsumerManyMonitors) {
  UniqueFd consumer = open_device(O_RDWR);
  ASSERT_TRUE(consumer.valid()) << strerror(errno);
  EXPECT_EQ(sysfs("consumer"), "1");
  UniqueFd second = open_device(O_RDWR);
  EXPECT_FALSE(second.valid());
  EXPECT_EQ(errno, EBUSY);
  UniqueFd monitor = open_device(O_RDONLY);
  ASSERT_TRUE(monitor.valid());
  UniqueFd monitor2 = open_device(O_RDONLY);
  ASSERT_TRUE(monitor2.valid());
  // A monitor must not consume or control.
  char buf[8192];
  EXPECT_EQ(::read(monitor.get(), buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, EBUSY);
  EXPECT_EQ(::ioctl(monitor.get(), SRING_IOC_START), -1);
  EXPECT_EQ(errno, EPERM);
  sring_stats stats{};
  EXPECT_EQ(::ioctl(monitor.get(), SRING_IOC_GET_STATS, &stats), 0);
  consumer.reset();
  EXPECT_EQ(sysfs("consumer"), "0");
  UniqueFd again = open_device(O_RDWR);
  EXPECT_TRUE(again.valid()) << "the role is free once the consumer closed";
}

TEST(Ioctl, BadArgumentsChangeNothing) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  // One channel said as such: GET_CONFIG gives back what SET_CONFIG took.
  sring_config good = default_config();
  good.channels = 1;
  prepare(fd.get(), good);

  EXPECT_EQ(::ioctl(fd.get(), _IO(SRING_IOC_MAGIC, 0x7f)), -1);
  EXPECT_EQ(errno, ENOTTY);
  EXPECT_EQ(::ioctl(fd.get(), _IO('x', 1)), -1);
  EXPECT_EQ(errno, ENOTTY);

  struct Case {
    const char* what;
    void (*mutate)(sring_config&);
  } cases[] = {
      {"block too small", [](sring_config& c) { c.block_bytes = 64; }},
      {"block unaligned", [](sring_config& c) { c.block_bytes = 8100; }},
      {"block over half the ring", [](sring_config& c) { c.block_bytes = 4u << 20; }},
      {"policy", [](sring_config& c) { c.overrun_policy = 9; }},
      {"format", [](sring_config& c) { c.sample_format = 0; }},
      {"rate", [](sring_config& c) { c.sample_rate = ~0ull; }},
      {"flush", [](sring_config& c) { c.flush_timeout_us = ~0u; }},
      {"flags", [](sring_config& c) { c.flags = 1; }},
      {"reserved0", [](sring_config& c) { c.reserved0 = 1; }},
      {"reserved1", [](sring_config& c) { c.reserved1 = 1; }},
      {"channels", [](sring_config& c) { c.channels = SRING_MAX_CHANNELS + 1; }},
  };
  for (const auto& c : cases) {
    sring_config bad = good;
    c.mutate(bad);
    EXPECT_EQ(::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &bad), -1) << c.what;
    EXPECT_EQ(errno, EINVAL) << c.what;
    sring_config now{};
    ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_GET_CONFIG, &now), 0);
    EXPECT_EQ(std::memcmp(&now, &good, sizeof(now)), 0) << c.what << " changed the configuration";
  }
  EXPECT_EQ(::ioctl(fd.get(), SRING_IOC_SET_CONFIG, nullptr), -1);
  EXPECT_EQ(errno, EFAULT);
  EXPECT_EQ(::ioctl(fd.get(), SRING_IOC_GET_STATS, reinterpret_cast<void*>(8)), -1);
  EXPECT_EQ(errno, EFAULT);

  int32_t bad_fd = -1;
  EXPECT_EQ(::ioctl(fd.get(), SRING_IOC_SET_EVENTFD, &bad_fd), -1);
  EXPECT_EQ(errno, EBADF);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  EXPECT_EQ(::ioctl(fd.get(), SRING_IOC_SET_EVENTFD, &pipe_fds[0]), -1);
  EXPECT_EQ(errno, EINVAL) << "a pipe is not an eventfd";
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);

  sring_fault fault{};
  fault.kind = 77;
  fault.arg = 1;
  EXPECT_EQ(::ioctl(fd.get(), SRING_IOC_INJECT_FAULT, &fault), -1);
  EXPECT_EQ(errno, EINVAL);
  fault.kind = SRING_FAULT_STALL;
  fault.arg = ~0ull;
  EXPECT_EQ(::ioctl(fd.get(), SRING_IOC_INJECT_FAULT, &fault), -1);
  EXPECT_EQ(errno, EINVAL);

  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0);
  EXPECT_EQ(::ioctl(fd.get(), SRING_IOC_START), -1);
  EXPECT_EQ(errno, EBUSY);
  EXPECT_EQ(::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &good), -1);
  EXPECT_EQ(errno, EBUSY) << "configuration changes only while stopped";
  EXPECT_EQ(::ioctl(fd.get(), SRING_IOC_RESET), -1);
  EXPECT_EQ(errno, EBUSY);
  EXPECT_EQ(sysfs("state"), "running");
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0);
  EXPECT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0) << "stop is idempotent";
  EXPECT_EQ(sysfs("state"), "stopped");
}

TEST(Mmap, BadRequestsAreRefusedWhole) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  const long page = ::sysconf(_SC_PAGESIZE);
  const size_t ring_size = 4u << 20;
  auto try_map = [&](int mapfd, size_t length, int prot, off_t offset) -> int {
    void* p = ::mmap(nullptr, length, prot, MAP_SHARED, mapfd, offset);
    if (p == MAP_FAILED) return errno;
    ::munmap(p, length);
    return 0;
  };
  EXPECT_EQ(try_map(fd.get(), page, PROT_READ, 3 * page), EINVAL) << "unknown offset";
  EXPECT_EQ(try_map(fd.get(), page, PROT_READ, 12345 * page), EINVAL);
  EXPECT_EQ(try_map(fd.get(), 2 * page, PROT_READ, 0), EINVAL) << "producer page size";
  EXPECT_EQ(try_map(fd.get(), page, PROT_READ, 2 * page), EINVAL) << "data must be mapped whole";
  EXPECT_EQ(try_map(fd.get(), ring_size, PROT_READ, 2 * page), EINVAL) << "data must be mapped twice";
  EXPECT_EQ(try_map(fd.get(), page, PROT_READ | PROT_WRITE, 0), EPERM) << "producer page is read-only";
  EXPECT_EQ(try_map(fd.get(), 2 * ring_size, PROT_READ | PROT_WRITE, 2 * page), EPERM);
  EXPECT_EQ(try_map(fd.get(), page, PROT_READ | PROT_WRITE, page), 0) << "the consumer's own page";

  UniqueFd monitor = open_device(O_RDONLY);
  ASSERT_TRUE(monitor.valid());
  EXPECT_NE(try_map(monitor.get(), page, PROT_READ | PROT_WRITE, page), 0);
  EXPECT_EQ(try_map(monitor.get(), page, PROT_READ, page), 0);

  // A read-only page cannot be made writable afterwards.
  void* producer = ::mmap(nullptr, page, PROT_READ, MAP_SHARED, fd.get(), 0);
  ASSERT_NE(producer, MAP_FAILED);
  EXPECT_EQ(::mprotect(producer, page, PROT_READ | PROT_WRITE), -1);
  EXPECT_EQ(errno, EACCES);
  EXPECT_EQ(static_cast<const sring_producer_page*>(producer)->magic, SRING_MAGIC);
  ::munmap(producer, page);

  // The mirror: the same bytes in both halves.
  auto* data = static_cast<const uint8_t*>(::mmap(nullptr, 2 * ring_size, PROT_READ, MAP_SHARED, fd.get(), 2 * page));
  ASSERT_NE(data, MAP_FAILED);
  prepare(fd.get(), default_config());
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0);
  std::this_thread::sleep_for(50ms);
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0);
  EXPECT_EQ(std::memcmp(data, data + ring_size, ring_size), 0);
  EXPECT_EQ(reinterpret_cast<const sring_block_header*>(data)->magic, SRING_BLOCK_MAGIC);
  ::munmap(const_cast<uint8_t*>(data), 2 * ring_size);
}

TEST(Acquire, MmapAndEventfdVerifyEverySample) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  prepare(fd.get(), default_config());
  auto ring = Ring::attach(std::move(fd), Ring::Access::kConsumer);
  ASSERT_TRUE(ring.has_value()) << ring.error().message;
  ASSERT_TRUE(ring->enable_eventfd().has_value());
  ring->set_wakeup_watermark(512 * 1024);
  ASSERT_EQ(::ioctl(ring->fd(), SRING_IOC_START), 0);
  const auto counters = consume_for(*ring, 2000ms, true);
  const sring_stats stats = stats_of(ring->fd());
  EXPECT_GT(counters.samples, volume_floor(30'000'000u));
  EXPECT_EQ(counters.samples, stats.samples_produced);
  EXPECT_EQ(counters.lost_samples, 0u);
  EXPECT_EQ(stats.samples_dropped, 0u);
  EXPECT_EQ(counters.corrupted_samples, 0u);
  EXPECT_EQ(stats.bad_tails, 0u);
  EXPECT_GT(ring->wakeups_received(), 0u);
  EXPECT_LE(stats.wakeups, counters.blocks / 8) << "wake-ups only at the watermark";
}

TEST(Read, CopyPathVerifiesAndEndsAtStop) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  // Correctness of the copy path, not its speed: a rate an emulated CPU
  // keeps up with even when the host is busy.
  sring_config config = default_config();
  config.sample_rate = 5'000'000;
  prepare(fd.get(), config);
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0);
  std::vector<uint8_t> buffer(64 * 1024);
  char small[100];
  EXPECT_EQ(::read(fd.get(), small, sizeof(small)), -1) << "smaller than a block";
  EXPECT_EQ(errno, EINVAL);
  sring::StreamAccounting accounting;
  accounting.expect_start(0, 0);
  const auto stop_at = std::chrono::steady_clock::now() + 1000ms;
  bool stopped = false;
  uint64_t eof_reads = 0;
  for (;;) {
    if (!stopped && std::chrono::steady_clock::now() >= stop_at) {
      ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0);
      stopped = true;
    }
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    ASSERT_GE(n, 0) << strerror(errno);
    if (n == 0) {
      ++eof_reads;
      ASSERT_TRUE(stopped) << "EOF only once stopped";
      break;
    }
    ASSERT_EQ(n % 8192, 0) << "whole blocks only";
    for (ssize_t off = 0; off < n; off += 8192) {
      const auto* block = reinterpret_cast<const sring_block_header*>(buffer.data() + off);
      ASSERT_EQ(block->magic, SRING_BLOCK_MAGIC);
      accounting.on_block(*block);
      accounting.add_corrupted(sring::count_pattern_mismatches(
          reinterpret_cast<const uint16_t*>(block + 1), block->first_sample, block->sample_count, 1));
    }
  }
  const sring_stats stats = stats_of(fd.get());
  EXPECT_EQ(eof_reads, 1u);
  EXPECT_EQ(accounting.counters().samples, stats.samples_produced);
  EXPECT_EQ(accounting.counters().lost_samples, 0u);
  EXPECT_EQ(accounting.counters().corrupted_samples, 0u);
  EXPECT_GT(accounting.counters().samples, volume_floor(2'500'000u));
}

TEST(Tail, CorruptedTailIsCountedAndIgnored) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  prepare(fd.get(), default_config());
  const long page = ::sysconf(_SC_PAGESIZE);
  auto* consumer = static_cast<sring_consumer_page*>(
      ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), page));
  ASSERT_NE(consumer, MAP_FAILED);
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0);
  std::this_thread::sleep_for(20ms);
  const uint64_t good_tail = consumer->tail;
  // A buggy consumer: tail past head, then far behind, then a wild watermark.
  consumer->tail = ~0ull - 5;
  std::this_thread::sleep_for(20ms);
  consumer->tail = good_tail + 7;  // not on a block boundary, but in range
  consumer->wakeup_watermark = ~0ull;
  consumer->need_wakeup = 0xdead;
  std::this_thread::sleep_for(20ms);
  const sring_stats stats = stats_of(fd.get());
  EXPECT_GT(stats.bad_tails, 0u);
  EXPECT_GE(sysfs_u64("bad_tails"), stats.bad_tails);
  EXPECT_LE(sysfs_u64("fill"), 4u << 20);
  char buf[8];
  pollfd pfd{fd.get(), POLLIN, 0};
  EXPECT_GE(::poll(&pfd, 1, 10), 0);
  (void)buf;
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0);
  ::munmap(consumer, page);
  // The device is still sound: a fresh consumer verifies everything.
  prepare(fd.get(), default_config());
  auto ring = Ring::attach(std::move(fd), Ring::Access::kConsumer);
  ASSERT_TRUE(ring.has_value()) << ring.error().message;
  ASSERT_TRUE(ring->enable_eventfd().has_value());
  ASSERT_EQ(::ioctl(ring->fd(), SRING_IOC_START), 0);
  const auto counters = consume_for(*ring, 500ms, true);
  EXPECT_GT(counters.samples, 0u);
  EXPECT_EQ(counters.lost_samples, 0u);
  EXPECT_EQ(counters.corrupted_samples, 0u);
}

// Monitors watching a running ring as hard as they can (every ringstat of a
// busy site at once): each of four processes loops GET_STATS, GET_INFO and
// a zero-timeout poll() on its own read-only fd, beside a consumer that
// verifies every sample. Every snapshot must be one moment's (GET_STATS
// reads under the producer's lock): tail <= head, head - tail within the
// ring, no loss counter above its total, and nothing going back from one
// snapshot to the next. It is also the KCSAN stage's hot task side: the
// ioctls race with the timer's commits thousands of times a second.
TEST(Monitors, EverySnapshotIsOneMomentsUnderAStorm) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  prepare(fd.get(), default_config());
  auto ring = Ring::attach(std::move(fd), Ring::Access::kConsumer);
  ASSERT_TRUE(ring.has_value()) << ring.error().message;
  ASSERT_TRUE(ring->enable_eventfd().has_value());
  const uint64_t ring_size = sysfs_u64("ring_size");
  // 2 s; the KCSAN stage asks for longer (SRING_KTEST_STORM_MS): the
  // detector watches one access in thousands, so a race needs many rounds.
  const char* storm_env = std::getenv("SRING_KTEST_STORM_MS");
  const std::chrono::milliseconds storm(storm_env != nullptr ? std::max(100, std::atoi(storm_env)) : 2000);
  // Reaps the monitors also when an ASSERT below returns early: none may
  // go on hammering the device into the next test.
  struct Monitors {
    std::vector<pid_t> pids;
    ~Monitors() {
      for (const pid_t pid : pids) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
  } monitors;
  for (int m = 0; m < 4; ++m) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // Exit 0: every snapshot consistent; 1: one was not (printed); 2: setup.
      UniqueFd monitor = open_device(O_RDONLY);
      if (!monitor.valid()) ::_exit(2);
      sring_stats last{};
      uint64_t snapshots = 0;
      const auto until = std::chrono::steady_clock::now() + storm + 500ms;
      while (std::chrono::steady_clock::now() < until) {
        sring_stats now{};
        sring_info info{};
        if (::ioctl(monitor.get(), SRING_IOC_GET_STATS, &now) != 0 ||
            ::ioctl(monitor.get(), SRING_IOC_GET_INFO, &info) != 0)
          ::_exit(2);
        // Every 16th with 1 ms: a zero timeout never joins the wait queue,
        // and the joining and leaving race the producer's wake-ups; the
        // others return at once, so GET_STATS is not slowed to one a
        // millisecond (it is the hot side KCSAN needs).
        pollfd pfd{monitor.get(), POLLIN, 0};
        (void)::poll(&pfd, 1, snapshots % 16 == 0 ? 1 : 0);
        const bool consistent =
            now.tail <= now.head && now.head - now.tail <= ring_size &&
            now.blocks_dropped <= now.blocks_produced && now.samples_dropped <= now.samples_produced &&
            now.head >= last.head && now.tail >= last.tail && now.blocks_produced >= last.blocks_produced &&
            now.samples_produced >= last.samples_produced && now.blocks_dropped >= last.blocks_dropped &&
            now.samples_dropped >= last.samples_dropped;
        if (!consistent) {
          std::fprintf(stderr,
                       "monitor %d, snapshot %llu: head %llu tail %llu blocks %llu/%llu dropped, samples %llu/%llu "
                       "dropped; the one before: head %llu tail %llu blocks %llu samples %llu\n",
                       m, static_cast<unsigned long long>(snapshots), static_cast<unsigned long long>(now.head),
                       static_cast<unsigned long long>(now.tail), static_cast<unsigned long long>(now.blocks_produced),
                       static_cast<unsigned long long>(now.blocks_dropped),
                       static_cast<unsigned long long>(now.samples_produced),
                       static_cast<unsigned long long>(now.samples_dropped), static_cast<unsigned long long>(last.head),
                       static_cast<unsigned long long>(last.tail), static_cast<unsigned long long>(last.blocks_produced),
                       static_cast<unsigned long long>(last.samples_produced));
          ::_exit(1);
        }
        last = now;
        ++snapshots;
      }
      ::_exit(snapshots > 0 ? 0 : 2);
    }
    monitors.pids.push_back(child);
  }
  ASSERT_EQ(::ioctl(ring->fd(), SRING_IOC_START), 0);
  const auto counters = consume_for(*ring, storm, true);
  const sring_stats stats = stats_of(ring->fd());
  while (!monitors.pids.empty()) {
    const pid_t child = monitors.pids.back();
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    monitors.pids.pop_back();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a monitor saw a snapshot of no one moment";
  }
  EXPECT_GT(counters.samples, 0u);
  EXPECT_EQ(counters.corrupted_samples, 0u);
  EXPECT_EQ(counters.out_of_order, 0u);
  EXPECT_EQ(counters.samples + stats.samples_dropped, stats.samples_produced) << "every sample delivered or counted";
}

TEST(Poll, DeviceFdBecomesReadable) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  prepare(fd.get(), default_config());
  pollfd pfd{fd.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 20), 0) << "no data while stopped";
  auto ring = Ring::attach(std::move(fd), Ring::Access::kConsumer);
  ASSERT_TRUE(ring.has_value());
  ring->set_wakeup_watermark(64 * 1024);
  ASSERT_EQ(::ioctl(ring->fd(), SRING_IOC_START), 0);
  auto waited = ring->wait(sring::WaitStrategy::kPoll, 2000ms);
  ASSERT_TRUE(waited.has_value()) << waited.error().message;
  EXPECT_TRUE(*waited);
  EXPECT_GE(ring->head() - ring->tail(), 8192u);
  ASSERT_EQ(::ioctl(ring->fd(), SRING_IOC_STOP), 0);
}

TEST(Lifecycle, KilledConsumerThenANewOneContinues) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    UniqueFd fd = open_device(O_RDWR);
    if (!fd.valid()) ::_exit(10);
    sring_config config = default_config();
    ::ioctl(fd.get(), SRING_IOC_STOP);
    ::ioctl(fd.get(), SRING_IOC_RESET);
    if (::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &config) != 0) ::_exit(11);
    auto ring = Ring::attach(std::move(fd), Ring::Access::kConsumer);
    if (!ring || !ring->enable_eventfd()) ::_exit(12);
    if (::ioctl(ring->fd(), SRING_IOC_START) != 0) ::_exit(13);
    sring::StreamConsumer consumer(*ring, true);
    bool told = false;
    for (;;) {  // consume until killed
      auto n = consumer.consume_available();
      if (!n) ::_exit(14);
      if (!told && consumer.counters().blocks > 100) {
        told = ::write(ready[1], "r", 1) == 1;
      }
      if (*n == 0) (void)ring->wait(sring::WaitStrategy::kEventfd, 100ms);
    }
  }
  ::close(ready[1]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1) << "the first consumer never got going";
  ::close(ready[0]);
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));

  EXPECT_EQ(sysfs("state"), "running") << "the device outlives its consumer";
  EXPECT_EQ(sysfs("consumer"), "0");
  // The second consumer attaches mid-stream and continues from the tail the
  // first one left: everything it sees verifies, and every gap is one the
  // device dropped while nobody was reading.
  auto ring = Ring::open(kDevice, Ring::Access::kConsumer);
  ASSERT_TRUE(ring.has_value()) << ring.error().message;
  ASSERT_TRUE(ring->enable_eventfd().has_value());
  const sring_stats before = stats_of(ring->fd());
  const auto counters = consume_for(*ring, 1000ms, false);
  const sring_stats after = stats_of(ring->fd());
  EXPECT_GT(counters.samples, 0u);
  EXPECT_EQ(counters.corrupted_samples, 0u);
  EXPECT_EQ(counters.out_of_order, 0u);
  EXPECT_LE(counters.lost_samples, after.samples_dropped);
  EXPECT_GT(before.tail, 0u) << "the first consumer's tail was kept";
}

TEST(Info, GetInfoDescribesTheRingAsThePagesDo) {
  UniqueFd fd = open_device(O_RDONLY);
  ASSERT_TRUE(fd.valid());
  sring_info info{};
  info.reserved[0] = 0xdead;  // must come back zeroed
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_GET_INFO, &info), 0) << strerror(errno);
  const long page = ::sysconf(_SC_PAGESIZE);
  EXPECT_EQ(info.abi_version, uint32_t{SRING_ABI_VERSION});
  EXPECT_EQ(info.page_size, static_cast<uint32_t>(page));
  EXPECT_EQ(info.ring_size, sysfs_u64("ring_size"));
  EXPECT_EQ(info.ring_size, 4u << 20) << "the module's default ring_size";
  EXPECT_EQ(info.consumer_offset, uint64_t{SRING_CONSUMER_PGOFF} * page);
  EXPECT_EQ(info.data_offset, uint64_t{SRING_DATA_PGOFF} * page);
  EXPECT_EQ(info.memory_kind, uint32_t{SRING_MEM_PAGES});
  EXPECT_EQ(info.max_block_bytes, SRING_MAX_BLOCK_BYTES);
  for (auto r : info.reserved) EXPECT_EQ(r, 0u);
  auto ring = Ring::attach(std::move(fd), Ring::Access::kMonitor);
  ASSERT_TRUE(ring.has_value()) << ring.error().message;
  EXPECT_EQ(ring->producer().ring_size, info.ring_size) << "GET_INFO and the producer page agree";
  EXPECT_EQ(ring->producer().data_offset, info.data_offset);
}


TEST(Watermark, WildValuesAreClampedAndStillWake) {
  // No flush wake-up within the test (10 s is the longest allowed): only the
  // clamp can make these signals come.
  sring_config config = default_config();
  config.flush_timeout_us = 10'000'000;
  RawConsumer c(config);
  ASSERT_EQ(::ioctl(c.fd.get(), SRING_IOC_START), 0);
  // Beyond the ring: clamped to ring_size / 2 (2 MiB, about 50 ms of data).
  EXPECT_TRUE(signalled_within(c.page, c.efd.get(), ~uint64_t{0}, 3000ms)) << "a huge watermark silenced the ring";
  const uint64_t after_huge = stats_of(c.fd.get()).wakeups;
  EXPECT_GE(after_huge, 1u);
  // Zero: clamped to 1 byte, the next block wakes. Tail moved up to head
  // first, so the ring is empty when we ask.
  __atomic_store_n(&c.page->tail, stats_of(c.fd.get()).head, __ATOMIC_RELEASE);
  EXPECT_TRUE(signalled_within(c.page, c.efd.get(), 0, 3000ms)) << "a zero watermark silenced the ring";
  EXPECT_GT(stats_of(c.fd.get()).wakeups, after_huge);
  EXPECT_EQ(stats_of(c.fd.get()).bad_tails, 0u);
}

TEST(Flush, DataBelowTheWatermarkIsFlushedInEveryRun) {
  // An 8 KiB block every 41 ms, and a watermark of half the ring (2 MiB)
  // that the test never reaches: only the flush timeout (0.3 s) signals.
  sring_config config = default_config();
  config.sample_rate = 100'000;
  config.flush_timeout_us = 300'000;
  const uint64_t watermark = 2u << 20;
  RawConsumer c(config);
  ASSERT_EQ(::ioctl(c.fd.get(), SRING_IOC_START), 0);
  EXPECT_TRUE(signalled_within(c.page, c.efd.get(), watermark, 3000ms)) << "data below the watermark never flushed";
  // Ask, give up after 0.1 s (a block is out, its flush owed) and take the
  // request back, as a consumer whose wait timed out does; then stop
  // before the flush is due, and start again without a reset.
  EXPECT_FALSE(signalled_within(c.page, c.efd.get(), watermark, 100ms));
  __atomic_store_n(&c.page->need_wakeup, 0u, __ATOMIC_RELAXED);
  ASSERT_EQ(::ioctl(c.fd.get(), SRING_IOC_STOP), 0);
  __atomic_store_n(&c.page->tail, stats_of(c.fd.get()).head, __ATOMIC_RELEASE);
  ASSERT_EQ(::ioctl(c.fd.get(), SRING_IOC_START), 0);
  EXPECT_TRUE(signalled_within(c.page, c.efd.get(), watermark, 3000ms))
      << "after a stop and a start, data below the watermark was never flushed";
}

TEST(Device, ControlsTheDeviceWithoutIoctlsAndSaysWhatFailed) {
  auto device = sring::Device::open(kDevice);
  ASSERT_TRUE(device.has_value()) << device.error().message;
  ASSERT_TRUE(device->stop().has_value());
  ASSERT_TRUE(device->reset().has_value());
  sring_config config = sring::default_device_config();
  config.block_bytes = 16384;
  ASSERT_TRUE(device->configure(config).has_value());
  auto read_back = device->config();
  ASSERT_TRUE(read_back.has_value());
  EXPECT_EQ(read_back->block_bytes, 16384u);
  auto ring = device->attach();
  ASSERT_TRUE(ring.has_value()) << ring.error().message;
  ASSERT_TRUE(ring->enable_eventfd().has_value());
  ASSERT_TRUE(device->start().has_value());

  auto busy = device->configure(config);
  ASSERT_FALSE(busy.has_value());
  EXPECT_EQ(busy.error().code, EBUSY);
  EXPECT_NE(busy.error().message.find("while it is running"), std::string::npos) << busy.error().message;
  auto second = sring::Device::open(kDevice);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, EBUSY);
  EXPECT_NE(second.error().message.find("already has a consumer"), std::string::npos) << second.error().message;
  auto bad = device->inject_fault(99, 1);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, EINVAL);

  // Consumed with consume(), stopped, drained: the accounting is exact and
  // the statistics agree with the producer page.
  sring::Consumer consumer(*ring);
  consumer.expect_start(0, 0);
  uint64_t corrupted = 0;
  const auto stop_at = std::chrono::steady_clock::now() + 300ms;
  bool stopped = false;
  while (!consumer.end_of_stream()) {
    auto n = consumer.consume([&](const sring::Block& block) {
      corrupted += sring::count_pattern_mismatches(block.samples().data(), block.first_sample(),
                                                   block.samples().size(), config.pattern_seed);
    });
    ASSERT_TRUE(n.has_value()) << n.error().message;
    if (!stopped && std::chrono::steady_clock::now() >= stop_at) {
      ASSERT_TRUE(device->stop().has_value());
      stopped = true;
    }
    if (*n == 0) (void)ring->wait(sring::WaitStrategy::kEventfd, 50ms);
  }
  EXPECT_GT(consumer.counters().samples, 0u);
  EXPECT_EQ(corrupted, 0u);
  EXPECT_TRUE(consumer.finish().exact());
  auto stats = device->stats();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->state, uint32_t{SRING_STATE_STOPPED});
  EXPECT_EQ(stats->samples_produced, consumer.producer_counters().samples_produced);
}

TEST(Eventfd, ClearedEventfdIsNeverSignalledAgain) {
  sring_config config = default_config();
  config.flush_timeout_us = 1000;
  RawConsumer c(config);
  ASSERT_EQ(::ioctl(c.fd.get(), SRING_IOC_START), 0);
  ASSERT_TRUE(signalled_within(c.page, c.efd.get(), 1, 3000ms)) << "registered: signalled";
  ASSERT_EQ(::ioctl(c.fd.get(), SRING_IOC_CLEAR_EVENTFD), 0) << strerror(errno);
  const uint64_t before = stats_of(c.fd.get()).wakeups;
  EXPECT_FALSE(signalled_within(c.page, c.efd.get(), 1, 500ms)) << "signalled after CLEAR_EVENTFD";
  // The request was still answered (poll() waiters would have been woken):
  // only the eventfd is gone.
  EXPECT_GT(stats_of(c.fd.get()).wakeups, before);
  UniqueFd monitor = open_device(O_RDONLY);
  EXPECT_EQ(::ioctl(monitor.get(), SRING_IOC_CLEAR_EVENTFD), -1);
  EXPECT_EQ(errno, EPERM) << "a monitor cannot clear the consumer's eventfd";
}

TEST(Read, NonBlockingReadOfAnEmptyRunningRingIsEagain) {
  UniqueFd fd = open_device(O_RDWR | O_NONBLOCK);
  ASSERT_TRUE(fd.valid());
  sring_config config = default_config();
  config.sample_rate = 1000;  // first block due in about 4 s
  prepare(fd.get(), config);
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_START), 0);
  std::vector<uint8_t> buffer(64 * 1024);
  EXPECT_EQ(::read(fd.get(), buffer.data(), buffer.size()), -1);
  EXPECT_EQ(errno, EAGAIN);
  ASSERT_EQ(::ioctl(fd.get(), SRING_IOC_STOP), 0);
  EXPECT_EQ(::read(fd.get(), buffer.data(), buffer.size()), 0) << "stopped and drained: end of file";
}

TEST(Faults, InjectedCorruptionIsDetected) {
  UniqueFd fd = open_device(O_RDWR);
  ASSERT_TRUE(fd.valid());
  prepare(fd.get(), default_config());
  auto ring = Ring::attach(std::move(fd), Ring::Access::kConsumer);
  ASSERT_TRUE(ring.has_value());
  ASSERT_TRUE(ring->enable_eventfd().has_value());
  ASSERT_EQ(::ioctl(ring->fd(), SRING_IOC_START), 0);
  sring_fault fault{SRING_FAULT_CORRUPT, 0, 3};
  ASSERT_EQ(::ioctl(ring->fd(), SRING_IOC_INJECT_FAULT, &fault), 0);
  fault = {SRING_FAULT_STALL, 0, 20000};
  ASSERT_EQ(::ioctl(ring->fd(), SRING_IOC_INJECT_FAULT, &fault), 0);
  fault = {SRING_FAULT_BURST, 0, 50};
  ASSERT_EQ(::ioctl(ring->fd(), SRING_IOC_INJECT_FAULT, &fault), 0);
  const auto counters = consume_for(*ring, 500ms, true);
  EXPECT_EQ(counters.corrupted_samples, 3u);
  EXPECT_EQ(counters.lost_samples, 0u) << "a stall and a burst lose nothing";
}

// ---- modes used by tests/qemu/guest-init.sh -----------------------------

// `kernel_test inject DEVICE KIND ARG`: injects one fault as the consumer
// and prints the result, "0" or the errno's name (EINVAL, EOPNOTSUPP): the
// edu scenarios check that fault kinds and bounds are the core's, the same
// on a device without fault injection.
int inject_fault(const char* device, uint32_t kind, uint64_t arg) {
  UniqueFd fd(::open(device, O_RDWR | O_CLOEXEC));
  if (!fd.valid()) {
    std::printf("open %s: %s\n", device, strerror(errno));
    return 2;
  }
  sring_fault fault{};
  fault.kind = kind;
  fault.arg = arg;
  if (::ioctl(fd.get(), SRING_IOC_INJECT_FAULT, &fault) == 0) {
    std::printf("0\n");
  } else {
    std::printf("%s\n", errno == EINVAL ? "EINVAL" : errno == EOPNOTSUPP ? "EOPNOTSUPP" : strerror(errno));
  }
  return 0;
}

// `kernel_test refused-formats DEVICE`, for the devices that make only
// 16-bit samples of one channel (sring_edu, sring_digitizer): stops the
// device, then asks for cs16, two channels of u16, u8, and the simulated
// devices' own format (which these drivers never declared). Each must fail
// with EINVAL and leave GET_CONFIG and the producer page as they were;
// then s16 and u16 of one channel (the field's 0 and 1) are still taken.
// Prints one line per request; exit 0 if all went as expected.
int refused_formats(const char* device) {
  UniqueFd fd(::open(device, O_RDWR | O_CLOEXEC));
  if (!fd.valid()) {
    std::printf("open %s: %s\n", device, strerror(errno));
    return 2;
  }
  const long page_size = ::sysconf(_SC_PAGESIZE);
  void* mapped = ::mmap(nullptr, page_size, PROT_READ, MAP_SHARED, fd.get(), 0);
  sring_config before{};
  if (mapped == MAP_FAILED || ::ioctl(fd.get(), SRING_IOC_STOP) != 0 ||
      ::ioctl(fd.get(), SRING_IOC_GET_CONFIG, &before) != 0) {
    std::printf("refused-formats: %s\n", strerror(errno));
    return 2;
  }
  const auto* producer = static_cast<const sring_producer_page*>(mapped);
  int problems = 0;
  auto ask = [&](const char* what, uint32_t format, uint32_t channels, bool accept) {
    sring_config config = before;
    config.sample_format = format;
    config.channels = channels;
    errno = 0;
    const int rc = ::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &config);
    const int error = rc == 0 ? 0 : errno;
    sring_config now{};
    ::ioctl(fd.get(), SRING_IOC_GET_CONFIG, &now);
    bool ok;
    if (accept) {
      ok = rc == 0 && now.sample_format == format && now.channels == 1 && producer->channels == 1 &&
           producer->bits_per_sample == 16;
    } else {
      ok = rc == -1 && error == EINVAL && std::memcmp(&now, &before, sizeof(now)) == 0 &&
           producer->sample_format == before.sample_format && producer->channels == (before.channels ? before.channels : 1);
    }
    std::printf("%s: %s: %s\n", ok ? "ok" : "FAILED", what,
                rc == 0 ? "accepted" : error == EINVAL ? "EINVAL" : strerror(error));
    if (!ok) ++problems;
  };
  ask("cs16 x 1 refused", SRING_FMT_CS16, 1, false);
  ask("u16 x 2 refused", SRING_FMT_U16, 2, false);
  ask("u8 x 1 refused", SRING_FMT_U8, 1, false);
  ask("sim-packed12 x 1 refused (not this driver's format)", SRING_FMT_SIM_PACKED12, 1, false);
  ask("s16 x 1 taken", SRING_FMT_S16, 1, true);
  ask("u16 x 0 (one channel) taken", SRING_FMT_U16, 0, true);
  // As it was, for the scenarios after this one.
  if (::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &before) != 0) ++problems;
  ::munmap(mapped, page_size);
  std::printf("refused-formats: %s\n", problems ? "FAILED" : "all as expected");
  return problems ? 1 : 0;
}

// The stream position after a run with the module parameter
// initial_position=P: head and tail must be just above P (the reset
// position), never wrapped, truncated or reset to 0.
int expect_position(uint64_t position) {
  UniqueFd fd = open_device(O_RDONLY);
  if (!fd.valid()) return 2;
  const sring_stats stats = stats_of(fd.get());
  const uint64_t base = position & ~uint64_t{SRING_BLOCK_ALIGN - 1};
  const uint64_t ran = stats.head - base;
  std::printf("position: initial %llu, head %llu (+%llu), tail %llu, sysfs head %s\n",
              static_cast<unsigned long long>(position), static_cast<unsigned long long>(stats.head),
              static_cast<unsigned long long>(ran), static_cast<unsigned long long>(stats.tail),
              sysfs("head").c_str());
  const bool ok = ran > 0 && ran < (uint64_t{1} << 40) && stats.tail - base <= ran &&
                  sysfs("head") == std::to_string(stats.head) && stats.bytes_consumed == stats.tail - base;
  return ok ? 0 : 1;
}

// Configures and starts the device, then leaves it running with no consumer.
int start_device(uint64_t rate) {
  UniqueFd fd = open_device(O_RDWR);
  if (!fd.valid()) return 2;
  sring_config config = default_config();
  config.sample_rate = rate;
  if (::ioctl(fd.get(), SRING_IOC_STOP) || ::ioctl(fd.get(), SRING_IOC_RESET) ||
      ::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &config) || ::ioctl(fd.get(), SRING_IOC_START)) {
    perror("start-device");
    return 2;
  }
  return 0;
}

int stop_device() {
  UniqueFd fd = open_device(O_RDWR);
  return fd.valid() && ::ioctl(fd.get(), SRING_IOC_STOP) == 0 ? 0 : 2;
}

// Attaches to a running device mid-stream (no reset) and verifies what it
// sees for `seconds`. Killed at random by the lifecycle scenario.
int attach_consume(double seconds) {
  auto ring = Ring::open(kDevice, Ring::Access::kConsumer);
  if (!ring) {
    std::fprintf(stderr, "attach: %s\n", ring.error().message.c_str());
    return 2;
  }
  if (!ring->enable_eventfd()) return 2;
  sring::StreamConsumer consumer(*ring, true);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  bool announced = false;
  while (std::chrono::steady_clock::now() < deadline) {
    auto n = consumer.consume_available();
    if (!n) {
      std::fprintf(stderr, "attach: %s\n", n.error().message.c_str());
      return 1;
    }
    if (!announced && consumer.counters().samples > 0) {
      // For the lifecycle scenario: a consumer killed before this line
      // never attached and proves nothing.
      std::printf("attached and consuming\n");
      std::fflush(stdout);
      announced = true;
    }
    if (*n == 0) (void)ring->wait(sring::WaitStrategy::kEventfd, 50ms);
  }
  const auto& c = consumer.counters();
  std::printf("attach: %llu samples, %llu corrupted, %llu out of order, %llu lost\n",
              static_cast<unsigned long long>(c.samples), static_cast<unsigned long long>(c.corrupted_samples),
              static_cast<unsigned long long>(c.out_of_order), static_cast<unsigned long long>(c.lost_samples));
  return c.samples > 0 && c.corrupted_samples == 0 && c.out_of_order == 0 ? 0 : 1;
}

// Fragments free memory on purpose, the same way every time: takes @mib MiB
// of anonymous memory page by page, gives back all but one page in @keep, and
// locks the rest. With /proc/sys/vm/compact_unevictable_allowed at 0
// compaction cannot move the locked pages, so the free memory stays in
// blocks of fewer than @keep pages until this process ends (SIGTERM).
// Prints "fragmented" once done. keep 1: hold all of it.
int fragment(uint64_t mib, uint64_t keep) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t bytes = static_cast<size_t>(mib) << 20;
  auto* memory = static_cast<std::byte*>(
      ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (memory == MAP_FAILED || keep == 0) {
    perror("fragment: mmap");
    return 2;
  }
  // 4 KiB pages, not a transparent huge page that would be freed whole.
  (void)::madvise(memory, bytes, MADV_NOHUGEPAGE);
  for (size_t at = 0; at < bytes; at += page) memory[at] = std::byte{1};
  for (size_t at = 0; at < bytes; at += page) {
    if ((at / page) % keep != 0 && ::madvise(memory + at, page, MADV_DONTNEED) != 0) {
      perror("fragment: madvise");
      return 2;
    }
  }
  // Locks what is resident without faulting the rest back in.
  if (::mlock2(memory, bytes, MLOCK_ONFAULT) != 0) {
    perror("fragment: mlock2");
    return 2;
  }
  std::puts("fragmented");
  std::fflush(stdout);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  int signal = 0;
  sigwait(&signals, &signal);
  return 0;
}

// A device whose engine still writes after its driver's ops->stop returned
// scribbles over memory that sring hands to a consumer or frees. Runs the
// device at RATE under overwrite-oldest (so its driver keeps slots posted
// to the very end), stops it, and compares the whole ring before and after
// 500 ms: any difference is a write after the stop. With the DMA model's
// slow-stop fault armed, its engine finishes its queue for a while after
// it saw STOP: only a driver that waits for the engine passes.
int quiet_after_stop(const char* device, uint64_t rate) {
  UniqueFd fd(::open(device, O_RDWR | O_CLOEXEC));
  if (!fd.valid()) {
    perror("quiet-after-stop: open");
    return 2;
  }
  sring_config config = default_config();
  config.sample_rate = rate;
  config.overrun_policy = SRING_OVERRUN_OVERWRITE_OLDEST;
  if (::ioctl(fd.get(), SRING_IOC_STOP) != 0 || ::ioctl(fd.get(), SRING_IOC_RESET) != 0 ||
      ::ioctl(fd.get(), SRING_IOC_SET_CONFIG, &config) != 0) {
    perror("quiet-after-stop: configure");
    return 2;
  }
  const auto page_size = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  void* page = ::mmap(nullptr, page_size, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (page == MAP_FAILED) {
    perror("quiet-after-stop: mmap");
    return 2;
  }
  const auto* producer = static_cast<const sring_producer_page*>(page);
  const uint64_t ring_size = producer->ring_size;
  // The data and its mirror, as the ABI maps them; the ring itself is the
  // first ring_size bytes.
  void* data =
      ::mmap(nullptr, 2 * ring_size, PROT_READ, MAP_SHARED, fd.get(), static_cast<off_t>(producer->data_offset));
  if (data == MAP_FAILED) {
    perror("quiet-after-stop: mmap data");
    return 2;
  }
  auto digest = [&] {
    // FNV-1a over 8-byte words: any changed sample changes it.
    uint64_t h = 1469598103934665603ULL;
    const auto* words = static_cast<const volatile uint64_t*>(data);
    for (uint64_t i = 0; i < ring_size / 8; ++i) h = (h ^ words[i]) * 1099511628211ULL;
    return h;
  };
  if (::ioctl(fd.get(), SRING_IOC_START) != 0) {
    perror("quiet-after-stop: start");
    return 2;
  }
  std::this_thread::sleep_for(300ms);
  const auto stop_began = std::chrono::steady_clock::now();
  if (::ioctl(fd.get(), SRING_IOC_STOP) != 0) {
    perror("quiet-after-stop: stop");
    return 2;
  }
  const auto stop_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - stop_began).count();
  const uint64_t head = __atomic_load_n(&producer->head, __ATOMIC_ACQUIRE);
  const uint64_t before = digest();
  std::this_thread::sleep_for(500ms);
  const uint64_t after = digest();
  printf("quiet-after-stop: head %llu, stop took %lld ms, ring digest %016llx -> %016llx\n",
         static_cast<unsigned long long>(head), static_cast<long long>(stop_ms),
         static_cast<unsigned long long>(before), static_cast<unsigned long long>(after));
  ::munmap(data, 2 * ring_size);
  ::munmap(page, page_size);
  return head != 0 && before == after ? 0 : 1;
}

// The emulated CPU's verify-only limit, the ceiling of any consumer that
// verifies every sample (scripts/bench.sh --parts qemu-dma compares the
// mmap consumer's throughput with it). A buffer of BYTES (default 4 MiB, a
// ring's size) in 4 KiB pages, laid out as the ring's 64 KiB slots (a
// 64-byte header, then 32736 samples), filled once with the pattern and
// pre-faulted; then for SECONDS one thread runs acquire's verification,
// count_pattern_mismatches over each slot's samples with the slot's
// first-sample index (rising slot by slot, as in a stream: every other
// block crosses a pattern chunk), pass after pass. No device, no
// transport, no wake-ups.
int verify_limit(double seconds, uint64_t bytes) {
  constexpr uint64_t kBlockBytes = 64 * 1024;
  constexpr uint64_t kSamplesPerBlock = (kBlockBytes - SRING_BLOCK_HEADER_SIZE) / 2;
  constexpr uint32_t kSeed = 1;  // acquire's default
  if (bytes < kBlockBytes || bytes % kBlockBytes != 0 || seconds <= 0) {
    fprintf(stderr, "verify-limit: BYTES must be a multiple of 64 KiB, SECONDS > 0\n");
    return 2;
  }
  void* mem = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    perror("verify-limit: mmap");
    return 2;
  }
  // In 4 KiB pages, as a consumer maps the ring (Debian's kernel has THP
  // "always", which would give this buffer 2 MiB pages the ring never has),
  // then faulted in and locked before the clock starts.
  const bool small_pages = ::madvise(mem, bytes, MADV_NOHUGEPAGE) == 0;
  ::mlock(mem, bytes);  // best effort: the fill below touches every page anyway
  auto* base = static_cast<std::byte*>(mem);
  const uint64_t blocks = bytes / kBlockBytes;
  auto samples_of = [&](uint64_t k) {
    return reinterpret_cast<uint16_t*>(base + k * kBlockBytes + SRING_BLOCK_HEADER_SIZE);
  };
  for (uint64_t k = 0; k < blocks; ++k) {
    std::memset(base + k * kBlockBytes, 0, SRING_BLOCK_HEADER_SIZE);
    sring_pattern_fill(samples_of(k), k * kSamplesPerBlock, static_cast<uint32_t>(kSamplesPerBlock), kSeed);
  }
  auto cpu_now = [] {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    auto s = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
    return s(usage.ru_utime) + s(usage.ru_stime);
  };
  uint64_t mismatches = 0, verified = 0, passes = 0;
  const double cpu_before = cpu_now();
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  auto now = start;
  do {
    for (uint64_t k = 0; k < blocks; ++k) {
      mismatches += sring::count_pattern_mismatches(samples_of(k), k * kSamplesPerBlock, kSamplesPerBlock, kSeed);
    }
    verified += blocks * kSamplesPerBlock;
    ++passes;
    now = std::chrono::steady_clock::now();
  } while (now < end);
  const double cpu_s = cpu_now() - cpu_before;
  const double wall = std::chrono::duration<double>(now - start).count();
  printf("VERIFY_LIMIT samples_per_s=%.0f mbps=%.1f cpu_s=%.3f seconds=%.3f mbps_per_cpu_s=%.1f "
         "buffer_bytes=%llu block_bytes=%llu pages=%s passes=%llu mismatches=%llu\n",
         double(verified) / wall, double(verified) * 2 / wall / 1e6, cpu_s, wall,
         cpu_s > 0 ? double(verified) * 2 / cpu_s / 1e6 : 0.0, static_cast<unsigned long long>(bytes),
         static_cast<unsigned long long>(kBlockBytes), small_pages ? "4k" : "any",
         static_cast<unsigned long long>(passes),
         static_cast<unsigned long long>(mismatches));
  ::munmap(mem, bytes);
  return mismatches == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "fuzz" && argc == 4) return sring_ktest::fuzz(std::stod(argv[2]), std::stoull(argv[3]));
  if (mode == "start-device" && argc == 3) return start_device(std::stoull(argv[2]));
  if (mode == "stop-device") return stop_device();
  if (mode == "attach-consume" && argc == 3) return attach_consume(std::stod(argv[2]));
  if (mode == "expect-position" && argc == 3) return expect_position(std::stoull(argv[2]));
  if (mode == "quiet-after-stop" && argc == 4) return quiet_after_stop(argv[2], std::stoull(argv[3]));
  if (mode == "verify-limit" && (argc == 3 || argc == 4)) {
    return verify_limit(std::stod(argv[2]), argc == 4 ? std::stoull(argv[3]) : uint64_t{4} << 20);
  }
  if (mode == "fragment" && argc == 4) return fragment(std::stoull(argv[2]), std::stoull(argv[3]));
  if (mode == "refused-formats" && argc == 3) return refused_formats(argv[2]);
  if (mode == "inject" && argc == 5) {
    return inject_fault(argv[2], static_cast<uint32_t>(std::stoul(argv[3])), std::stoull(argv[4]));
  }
  if (argc == 3 && std::string(argv[1]) == "hold") {
    // Map the producer page and the data, close the descriptor, and wait:
    // the mappings alone must keep the core loaded. On SIGUSR1 read them
    // (after the device went away they must still be valid: no SIGBUS, no
    // stale memory) and report the state; SIGTERM ends it.
    const int fd = ::open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      perror("hold: open");
      return 2;
    }
    const auto page_size = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    void* page = ::mmap(nullptr, page_size, PROT_READ, MAP_SHARED, fd, 0);
    if (page == MAP_FAILED) {
      perror("hold: mmap");
      return 2;
    }
    const auto* producer = static_cast<const sring_producer_page*>(page);
    const uint64_t ring_size = producer->ring_size;
    void* data = ::mmap(nullptr, 2 * ring_size, PROT_READ, MAP_SHARED, fd,
                        static_cast<off_t>(producer->data_offset));
    ::close(fd);
    if (data == MAP_FAILED) {
      perror("hold: mmap data");
      return 2;
    }
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGUSR1);
    sigaddset(&signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &signals, nullptr);
    puts("holding");
    fflush(stdout);
    for (;;) {
      int signal = 0;
      if (sigwait(&signals, &signal) != 0 || signal == SIGTERM) return 0;
      uint64_t sum = 0;
      const auto* bytes = static_cast<const volatile uint8_t*>(data);
      for (uint64_t offset = 0; offset < 2 * ring_size; offset += page_size) sum += bytes[offset];
      printf("read: state %u, head %llu, %llu data bytes readable (sum of page starts %llu)\n",
             __atomic_load_n(&producer->state, __ATOMIC_ACQUIRE),
             static_cast<unsigned long long>(__atomic_load_n(&producer->head, __ATOMIC_ACQUIRE)),
             static_cast<unsigned long long>(2 * ring_size), static_cast<unsigned long long>(sum));
      fflush(stdout);
    }
  }
  if (argc == 2 && std::string(argv[1]) == "late-commit-check") {
    // With sring_sim late_commit_ms=300 queue_depth=4, the device tries to
    // commit a block 300 ms into its stop, after sring stored "stopped".
    // A consumer that saw the state change and then read head and the
    // counters has the end of its stream (docs/abi.md): they must not move.
    UniqueFd fd = open_device(O_RDWR);
    if (!fd.valid()) return 2;
    // 1 MS/s: 200 KB in the 0.1 s before the stop, so the ring is not full
    // and the device holds slots when it is stopped.
    sring_config config = default_config();
    config.sample_rate = 1'000'000;
    prepare(fd.get(), config);
    const auto page_size = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    void* mapped = ::mmap(nullptr, page_size, PROT_READ, MAP_SHARED, fd.get(), 0);
    if (mapped == MAP_FAILED || ::ioctl(fd.get(), SRING_IOC_START) != 0) return 2;
    const auto* producer = static_cast<const sring_producer_page*>(mapped);
    std::this_thread::sleep_for(100ms);
    std::thread stopper([&] { ::ioctl(fd.get(), SRING_IOC_STOP); });
    while (__atomic_load_n(&producer->state, __ATOMIC_ACQUIRE) == SRING_STATE_RUNNING) {
    }
    const uint64_t head = __atomic_load_n(&producer->head, __ATOMIC_ACQUIRE);
    const uint64_t produced = __atomic_load_n(&producer->samples_produced, __ATOMIC_RELAXED);
    stopper.join();  // the stop, late commit included, is over
    const uint64_t head_after = __atomic_load_n(&producer->head, __ATOMIC_ACQUIRE);
    const uint64_t produced_after = __atomic_load_n(&producer->samples_produced, __ATOMIC_RELAXED);
    printf("late-commit-check: head %llu -> %llu, samples_produced %llu -> %llu\n",
           static_cast<unsigned long long>(head), static_cast<unsigned long long>(head_after),
           static_cast<unsigned long long>(produced), static_cast<unsigned long long>(produced_after));
    ::munmap(mapped, page_size);
    return head == head_after && produced == produced_after ? 0 : 1;
  }
  if (argc == 3 && std::string(argv[1]) == "gone-checks") {
    // The consumer of a reset ring whose device is about to go: open it,
    // say so, and sleep in poll() with no timeout: the removal must wake it
    // (a lost wake-up hangs here, and the caller's deadline fails it). Then
    // check what docs/abi.md promises: state REMOVED, EPOLLHUP, control
    // ioctls fail with ENODEV, read-only ones still answer, no new mapping.
    const int fd = ::open(argv[2], O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      perror("gone-checks: open");
      return 2;
    }
    // Reset: a ring waiting for its start, which poll() sleeps on (a ring
    // whose stream ended and is drained is readable: the end of file).
    if (::ioctl(fd, SRING_IOC_STOP) != 0 || ::ioctl(fd, SRING_IOC_RESET) != 0) {
      perror("gone-checks: stop and reset");
      return 2;
    }
    // Beside it, a sleeper in epoll_wait() on the same descriptor, also
    // without a timeout.
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event watched{};
    watched.events = EPOLLIN;
    if (ep < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &watched) != 0) {
      perror("gone-checks: epoll");
      return 2;
    }
    epoll_event epoll_out{};
    int epoll_woken = -1;
    std::thread epoll_sleeper([&] { epoll_woken = ::epoll_wait(ep, &epoll_out, 1, -1); });
    puts("open, asleep in poll() and epoll_wait()");
    fflush(stdout);
    pollfd sleeper{fd, POLLIN, 0};
    const int woken = ::poll(&sleeper, 1, -1);
    epoll_sleeper.join();
    ::close(ep);
    int problems = 0;
    auto expect = [&](bool ok, const char* what) {
      printf("%s: %s\n", ok ? "ok" : "FAILED", what);
      if (!ok) problems++;
    };
    sring_stats stats{};
    expect(::ioctl(fd, SRING_IOC_GET_STATS, &stats) == 0 && stats.state == SRING_STATE_REMOVED,
           "GET_STATS answers, state REMOVED");
    sring_info info{};
    expect(::ioctl(fd, SRING_IOC_GET_INFO, &info) == 0 && info.abi_version == SRING_ABI_VERSION,
           "GET_INFO answers");
    for (const unsigned long command : {static_cast<unsigned long>(SRING_IOC_START),
                                        static_cast<unsigned long>(SRING_IOC_STOP),
                                        static_cast<unsigned long>(SRING_IOC_RESET),
                                        static_cast<unsigned long>(SRING_IOC_CLEAR_EVENTFD)}) {
      errno = 0;
      expect(::ioctl(fd, command) == -1 && errno == ENODEV, "a control ioctl fails with ENODEV");
    }
    expect(woken == 1 && (sleeper.revents & POLLHUP), "the removal woke poll() with EPOLLHUP");
    expect(epoll_woken == 1 && (epoll_out.events & EPOLLHUP), "the removal woke epoll_wait() with EPOLLHUP");
    errno = 0;
    void* page = ::mmap(nullptr, static_cast<size_t>(::sysconf(_SC_PAGESIZE)), PROT_READ, MAP_SHARED, fd, 0);
    expect(page == MAP_FAILED && errno == ENODEV, "a new mapping fails with ENODEV");
    char buffer[65536];
    expect(::read(fd, buffer, sizeof(buffer)) >= 0, "read() drains or ends, no error");
    ::close(fd);
    printf("gone-checks: %s\n", problems ? "FAILED" : "all passed");
    return problems ? 1 : 0;
  }
  if (argc >= 5 && std::string(argv[1]) == "as-user") {
    // Run a program as an unprivileged user whose only group is GID, the
    // way a udev-managed group grants (or does not grant) the device.
    const auto uid = static_cast<uid_t>(std::stoul(argv[2]));
    const auto gid = static_cast<gid_t>(std::stoul(argv[3]));
    if (::setgroups(1, &gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
      perror("as-user");
      return 2;
    }
    ::execv(argv[4], argv + 4);
    perror("as-user: exec");
    return 2;
  }
  // A watchdog per test case: a case that hangs (a lost wake-up, a read()
  // that never returns) is named and the program exits at once with a
  // failure, so guest-init.sh counts it and the boot goes on, instead of
  // the whole boot ending in its timeout. A thread, not alarm(): it still
  // speaks when the case's thread sleeps in the kernel where no signal
  // reaches it. SRING_KTEST_WATCHDOG_S overrides the 60 s.
  class Watchdog final : public ::testing::EmptyTestEventListener {
   public:
    explicit Watchdog(int seconds) : seconds_(seconds), thread_([this] { watch(); }) {}
    ~Watchdog() override {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        quit_ = true;
      }
      changed_.notify_all();
      thread_.join();
    }
    void OnTestStart(const ::testing::TestInfo& test) override {
      std::lock_guard<std::mutex> lock(mutex_);
      message_ = "WATCHDOG: " + std::string(test.test_suite_name()) + "." + test.name() + " still running after " +
                 std::to_string(seconds_) + " s\n";
      deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(seconds_);
      armed_ = true;
      changed_.notify_all();
    }
    void OnTestEnd(const ::testing::TestInfo&) override {
      std::lock_guard<std::mutex> lock(mutex_);
      armed_ = false;
      changed_.notify_all();
    }

   private:
    void watch() {
      std::unique_lock<std::mutex> lock(mutex_);
      while (!quit_) {
        if (!armed_) {
          changed_.wait(lock);
        } else if (changed_.wait_until(lock, deadline_) == std::cv_status::timeout && armed_ && !quit_ &&
                   std::chrono::steady_clock::now() >= deadline_) {
          // What the case printed so far (unless the hung thread holds
          // stdout), then the verdict, unbuffered.
          if (::ftrylockfile(stdout) == 0) {
            ::fflush_unlocked(stdout);
            ::funlockfile(stdout);
          }
          const ssize_t written = ::write(STDOUT_FILENO, message_.data(), message_.size());
          (void)written;
          ::_exit(124);
        }
      }
    }
    const int seconds_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::string message_;
    std::chrono::steady_clock::time_point deadline_;
    bool armed_ = false;
    bool quit_ = false;
    std::thread thread_;  // last: starts once the rest is built
  };
  ::testing::InitGoogleTest(&argc, argv);
  const char* watchdog_env = std::getenv("SRING_KTEST_WATCHDOG_S");
  const auto watchdog =
      std::make_unique<Watchdog>(watchdog_env != nullptr ? std::max(1, std::atoi(watchdog_env)) : 60);
  ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
  listeners.Append(watchdog.get());  // gtest would own it: taken back below, before it is destroyed
  const int result = RUN_ALL_TESTS();
  listeners.Release(watchdog.get());
  return result;
}
