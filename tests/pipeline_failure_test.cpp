// A user callback that throws ends a pipeline run with that exception, every
// thread joined, nothing released past the block that failed, and no hang.
// Each run happens on its own thread under a watchdog: a hang fails the test
// (and ends the process, since a stuck run cannot be cancelled) instead of
// hanging the suite. Also runs under ThreadSanitizer (tag "concurrent").
#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <future>
#include <stdexcept>
#include <thread>

#include "sring/pipeline.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"

namespace {

using namespace std::chrono_literals;
using sring::Ring;
using sring::sim::HostRing;
using sring::sim::SimConfig;
using sring::sim::SimDevice;

struct UserError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Flatout {
  Flatout() : host(std::move(*HostRing::create(256 * 1024))), device(host, config()) {
    auto fd = host.duplicate_fd();
    ring.emplace(std::move(*Ring::attach(std::move(*fd), Ring::Access::kConsumer)));
    sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    EXPECT_TRUE(device.set_eventfd(efd.get()).has_value());
    EXPECT_TRUE(ring->use_eventfd(std::move(efd)).has_value());
  }
  static SimConfig config() {
    SimConfig c;
    c.sample_rate = 0;  // flat out: plenty of blocks, never a loss
    c.block_bytes = 4096;
    return c;
  }
  HostRing host;
  SimDevice device;
  std::optional<Ring> ring;
};

// Runs `run` on its own thread; fails the test if it takes more than 30 s.
template <typename Run>
void within_watchdog(Run run) {
  auto done = std::async(std::launch::async, run);
  if (done.wait_for(30s) != std::future_status::ready) {
    ADD_FAILURE() << "the pipeline run hung: still running after 30 s";
    std::fflush(nullptr);
    ::_exit(1);  // a hung thread cannot be joined; leave loudly
  }
  done.get();
}

TEST(PipelineFailure, WorkerThatThrowsEndsTheRunWithItsException) {
  Flatout f;
  ASSERT_TRUE(f.device.start().has_value());
  std::atomic<uint64_t> after_failure{0};
  std::atomic<bool> thrown{false};
  // Runs of a few blocks and short inboxes: the other workers are in the
  // middle of runs, with more queued, when block 500 throws.
  sring::PipelineOptions options;
  options.max_run_bytes = 3 * 4096;
  options.runs_per_worker = 2;
  sring::Pipeline pipeline(*f.ring, 3, [&](unsigned, const sring::BlockDescriptor& d) {
    if (thrown.load()) after_failure.fetch_add(1);
    if (d.sequence == 500) {
      thrown.store(true);
      throw UserError("block 500 is bad");
    }
  }, options);
  within_watchdog([&] {
    try {
      (void)pipeline.run(sring::WaitStrategy::kHybrid, [] { return true; }, nullptr);
      ADD_FAILURE() << "run() returned normally after a callback threw";
    } catch (const UserError& e) {
      EXPECT_STREQ(e.what(), "block 500 is bad");
    }
  });
  f.device.request_stop();
  f.device.join();
  // Strict in-order release: the tail stops before block 500 (blocks are
  // 4096 bytes from position 0), never past it.
  EXPECT_LE(f.ring->shared_tail(), 500u * 4096) << "released past the block whose callback threw";
  EXPECT_LE(pipeline.blocks_released(), 500u);
  EXPECT_GE(pipeline.blocks_dispatched(), 501u);
}

TEST(PipelineFailure, ReaderCallbackThatThrowsDoesNotStrandWorkers) {
  Flatout f;
  ASSERT_TRUE(f.device.start().has_value());
  // A worker holds a run and has another queued when keep_going() (on the
  // reader thread) throws: the join must not wait for the reader, and only
  // what the reader saw finished may be released. One worker, one block per
  // run, two runs per worker: the worker holds block 40 and block 41 waits
  // in its inbox, so the reader (which then has dispatched 42 blocks) had
  // seen blocks 0 to 39 finished before it could queue 41, and released
  // them in its next pass. keep_going() then lets block 40 go, waits until
  // the worker has finished 40 and 41 (so both are finished but never
  // collected), and throws.
  sring::PipelineOptions options;
  options.max_run_bytes = 4096;
  options.runs_per_worker = 2;
  std::atomic<bool> gate{false};
  std::atomic<uint64_t> worked{0};
  sring::Pipeline pipeline(*f.ring, 1, [&](unsigned, const sring::BlockDescriptor& d) {
    while (d.sequence == 40 && !gate.load()) std::this_thread::sleep_for(100us);
    worked.fetch_add(1);
  }, options);
  within_watchdog([&] {
    EXPECT_THROW((void)pipeline.run(sring::WaitStrategy::kHybrid, [&] {
                   if (pipeline.blocks_dispatched() >= 42) {
                     gate.store(true);
                     while (worked.load() < 42) std::this_thread::sleep_for(1ms);
                     throw UserError("the application gave up");
                   }
                   return true;
                 }, nullptr),
                 UserError);
  });
  f.device.request_stop();
  f.device.join();
  EXPECT_EQ(pipeline.blocks_dispatched(), 42u) << "a worker with two runs unfinished got a third";
  // Exactly the prefix the reader saw finished: 0 to 39. Not 40 or 41,
  // finished while the reader was in keep_going() and never collected.
  EXPECT_EQ(pipeline.blocks_released(), 40u);
  EXPECT_EQ(f.ring->shared_tail(), 40u * 4096);
}

}  // namespace
