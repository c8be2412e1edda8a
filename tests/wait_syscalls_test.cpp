// Ring::wait() sleeps with one system call, whatever its timeout: counted,
// not assumed. A child process waits on a ring file under ptrace; the parent
// is its producer. Between two marker calls (getppid) around each wait, the
// parent counts the child's system calls, and at the first one (the sleep,
// entered after the child armed need_wakeup and found nothing) publishes a
// block, which signals the child's eventfd and ends the sleep. A wait that
// sleeps in poll() and then read()s the eventfd makes two calls and fails.
#include <sys/eventfd.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <optional>
#include <vector>

#include "sring/ring.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"

namespace {

using namespace std::chrono_literals;
using sring::Ring;
using sring::WaitStrategy;
using sring::sim::HostRing;
using sring::sim::Produced;
using sring::sim::SimConfig;
using sring::sim::SimDevice;

constexpr int kWaits = 5;

// System calls the child made inside each of its waits.
std::vector<int> calls_per_wait(WaitStrategy strategy, std::chrono::nanoseconds timeout) {
  auto host = HostRing::create(64 * 1024);
  if (!host) {
    ADD_FAILURE() << host.error().message;
    return {};
  }
  SimConfig config;
  config.sample_rate = 1'000'000;
  config.block_bytes = 8192;
  config.flush_timeout = std::chrono::hours(1);  // only the block wakes it
  SimDevice device(*host, config);
  auto ring = Ring::attach(std::move(*host->duplicate_fd()), Ring::Access::kConsumer);
  if (!ring) {
    ADD_FAILURE() << ring.error().message;
    return {};
  }
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  EXPECT_TRUE(device.set_eventfd(efd.get()).has_value());
  EXPECT_TRUE(ring->use_eventfd(std::move(efd)).has_value());
  device.begin();

  const pid_t child = ::fork();
  if (child == 0) {
    // The consumer. Nothing here may assert (gtest in a forked child): the
    // exit status says what went wrong.
    if (::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != 0) ::_exit(10);
    ::raise(SIGSTOP);
    for (int i = 0; i < kWaits; ++i) {
      ::syscall(SYS_getppid);
      auto woke = ring->wait(strategy, timeout);
      ::syscall(SYS_getppid);
      if (!woke || !*woke) ::_exit(11);
      auto span = ring->acquire();
      if (!span || !ring->release(span->end())) ::_exit(12);
    }
    ::_exit(0);
  }
  EXPECT_GT(child, 0);
  if (child <= 0) return {};

  std::vector<int> counts;
  int status = 0;
  EXPECT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSTOPPED(status));
  EXPECT_EQ(::ptrace(PTRACE_SETOPTIONS, child, nullptr, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL), 0);
  bool inside = false;
  int calls = 0;
  for (;;) {
    if (::ptrace(PTRACE_SYSCALL, child, nullptr, nullptr) != 0) break;
    if (::waitpid(child, &status, 0) != child || WIFEXITED(status) || WIFSIGNALED(status)) break;
    if (!WIFSTOPPED(status) || WSTOPSIG(status) != (SIGTRAP | 0x80)) continue;
    __ptrace_syscall_info info{};
    if (::ptrace(PTRACE_GET_SYSCALL_INFO, child, sizeof(info), &info) <= 0) break;
    if (info.op != PTRACE_SYSCALL_INFO_ENTRY) continue;
    if (info.entry.nr == SYS_getppid) {
      if (inside) counts.push_back(calls);
      inside = !inside;
      calls = 0;
      continue;
    }
    if (inside && calls++ == 0) {
      // The child armed need_wakeup, looked, and is entering its sleep.
      EXPECT_EQ(device.produce_block(), Produced::kWritten);
    }
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the waiting child ended with status " << status << " (10: ptrace refused, 11: a wait without data)";
  return counts;
}

TEST(WaitSyscalls, OnePerSleepWaitingForever) {
  EXPECT_EQ(calls_per_wait(WaitStrategy::kEventfd, sring::kWaitForever), std::vector<int>(kWaits, 1));
}

TEST(WaitSyscalls, OnePerSleepWithATimeout) {
  EXPECT_EQ(calls_per_wait(WaitStrategy::kEventfd, 30s), std::vector<int>(kWaits, 1));
  EXPECT_EQ(calls_per_wait(WaitStrategy::kPoll, 30s), std::vector<int>(kWaits, 1));
}

}  // namespace
