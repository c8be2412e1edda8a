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
  f.device.start();
  std::atomic<uint64_t> after_failure{0};
  std::atomic<bool> thrown{false};
  // Small queues: the other workers block on full completion queues soon
  // after the reader stops collecting.
  sring::Pipeline pipeline(*f.ring, 3, [&](unsigned, const sring::BlockDescriptor& d) {
    if (thrown.load()) after_failure.fetch_add(1);
    if (d.sequence == 500) {
      thrown.store(true);
      throw UserError("block 500 is bad");
    }
  }, /*queue_depth=*/2);
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
}

TEST(PipelineFailure, ReaderCallbackThatThrowsDoesNotStrandWorkers) {
  Flatout f;
  f.device.start();
  // Tricky: a worker is stranded only if its completion queue is full when
  // the reader gives up, so build exactly that. One worker, depth-2 queues.
  // The worker holds block 40 until the reader has queued 41 and 42 behind
  // it; then keep_going() (on the reader thread, so nothing is collected
  // meanwhile) lets it go and waits until the worker stops making progress:
  // with work still in its inbox, the only thing that stops it is a full
  // done queue (how many of 38, 39, 40, 41 it reported first depends on
  // what the reader collected before: any count strands it). keep_going()
  // then throws. Before the fix the worker waited for that room forever
  // and the join hung.
  std::atomic<bool> gate{false};
  std::atomic<uint64_t> worked{0};
  sring::Pipeline pipeline(*f.ring, 1, [&](unsigned, const sring::BlockDescriptor& d) {
    while (d.sequence == 40 && !gate.load()) std::this_thread::sleep_for(100us);
    worked.fetch_add(1);
  }, /*queue_depth=*/2);
  within_watchdog([&] {
    EXPECT_THROW((void)pipeline.run(sring::WaitStrategy::kHybrid, [&] {
                   if (pipeline.blocks_dispatched() >= 43) {
                     gate.store(true);
                     // Stuck: block 40 done and no progress for 50 ms.
                     uint64_t seen = 0;
                     while (worked.load() < 41 || worked.load() != seen) {
                       seen = worked.load();
                       std::this_thread::sleep_for(50ms);
                     }
                     throw UserError("the application gave up");
                   }
                   return true;
                 }, nullptr),
                 UserError);
  });
  f.device.request_stop();
  f.device.join();
  // Only blocks the worker finished, in order: at most 0 to 40. At least 0
  // to 37: it had taken block 40, so it had reported 39, and its done queue
  // holds two.
  EXPECT_LE(pipeline.blocks_released(), 41u) << "released a block the worker never finished";
  EXPECT_GE(pipeline.blocks_released(), 38u) << "completions reported before the gate were not released";
}

}  // namespace
