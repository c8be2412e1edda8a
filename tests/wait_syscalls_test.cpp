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

#include "sring/detail/barriers.hpp"
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

// The calls that read the clock are not counted: they are normally vDSO
// calls that never enter the kernel, but a clock source without a vDSO path
// turns them into system calls, which would not be the wait's doing.
bool counted(uint64_t nr) {
  return nr != SYS_clock_gettime && nr != SYS_gettimeofday && nr != SYS_time;
}

// The calls a wait may sleep in.
bool sleeps_in(uint64_t nr) {
  return nr == SYS_epoll_wait || nr == SYS_epoll_pwait || nr == SYS_epoll_pwait2 || nr == SYS_poll ||
         nr == SYS_ppoll || nr == SYS_read;
}

struct Traced {
  std::vector<int> calls_per_wait;  // system calls the child made inside each wait
  bool ptrace_refused = false;
};

Traced trace_waits(WaitStrategy strategy, std::chrono::nanoseconds timeout) {
  Traced traced;
  auto host = HostRing::create(64 * 1024);
  if (!host) {
    ADD_FAILURE() << host.error().message;
    return traced;
  }
  SimConfig config;
  config.sample_rate = 1'000'000;
  config.block_bytes = 8192;
  config.flush_timeout = std::chrono::hours(1);  // only the block wakes it
  SimDevice device(*host, config);
  auto ring = Ring::attach(std::move(*host->duplicate_fd()), Ring::Access::kConsumer);
  if (!ring) {
    ADD_FAILURE() << ring.error().message;
    return traced;
  }
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  EXPECT_TRUE(device.set_eventfd(efd.get()).has_value());
  EXPECT_TRUE(ring->use_eventfd(std::move(efd)).has_value());
  device.begin();

  const pid_t child = ::fork();
  if (child == 0) {
    // The consumer. Nothing here may assert (gtest in a forked child): the
    // exit status says what went wrong. A wait that is never woken is
    // ended by the alarm, which fails the test instead of hanging it.
    if (::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != 0) ::_exit(10);
    ::raise(SIGSTOP);
    ::alarm(20);
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
  if (child <= 0) return traced;

  int status = 0;
  EXPECT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFSTOPPED(status));
  EXPECT_EQ(::ptrace(PTRACE_SETOPTIONS, child, nullptr, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL), 0);
  bool inside = false, published = false;
  int calls = 0, signal = 0;
  for (;;) {
    if (::ptrace(PTRACE_SYSCALL, child, nullptr, signal) != 0) break;
    signal = 0;
    if (::waitpid(child, &status, 0) != child || WIFEXITED(status) || WIFSIGNALED(status)) break;
    if (!WIFSTOPPED(status)) continue;
    if (WSTOPSIG(status) != (SIGTRAP | 0x80)) {
      signal = WSTOPSIG(status);  // a real signal (the alarm): deliver it
      continue;
    }
    __ptrace_syscall_info info{};
    if (::ptrace(PTRACE_GET_SYSCALL_INFO, child, sizeof(info), &info) <= 0) break;
    if (info.op != PTRACE_SYSCALL_INFO_ENTRY) continue;
    const uint64_t nr = info.entry.nr;
    if (nr == SYS_getppid) {
      if (inside) {
        traced.calls_per_wait.push_back(calls);
        EXPECT_TRUE(published) << "wait " << traced.calls_per_wait.size() << " returned without sleeping";
      }
      inside = !inside;
      calls = 0;
      published = false;
      continue;
    }
    if (!inside || !counted(nr)) continue;
    ++calls;
    if (!published && sleeps_in(nr)) {
      // The child is entering its sleep: it must have asked to be woken
      // (need_wakeup, in the shared consumer page). Now the block.
      EXPECT_EQ(sring::load_acquire(host->consumer().need_wakeup), 1u) << "sleeping without need_wakeup armed";
      EXPECT_EQ(device.produce_block(), Produced::kWritten);
      published = true;
    }
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 10) {
    traced.ptrace_refused = true;
    return traced;
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the waiting child ended with status " << status << " (11: a wait without data; killed by SIGALRM: "
      << "a wait that was never woken)";
  return traced;
}

void expect_one_call_per_sleep(WaitStrategy strategy, std::chrono::nanoseconds timeout) {
  const Traced traced = trace_waits(strategy, timeout);
  if (traced.ptrace_refused) GTEST_SKIP() << "ptrace(PTRACE_TRACEME) refused here: the calls cannot be counted";
  EXPECT_EQ(traced.calls_per_wait, std::vector<int>(kWaits, 1));
}

TEST(WaitSyscalls, OnePerSleepWaitingForever) { expect_one_call_per_sleep(WaitStrategy::kEventfd, sring::kWaitForever); }

TEST(WaitSyscalls, OnePerSleepWithATimeout) { expect_one_call_per_sleep(WaitStrategy::kEventfd, 30s); }

// Hybrid spins first (no system calls: it reads head and the vDSO clock),
// then sleeps as eventfd does.
TEST(WaitSyscalls, OnePerSleepAfterSpinning) { expect_one_call_per_sleep(WaitStrategy::kHybrid, 30s); }

}  // namespace
