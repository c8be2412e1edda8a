// Fans the blocks of a ring out to N worker threads without copying: the
// reader thread passes descriptors (pointer into the mirror, length,
// sequence) through one boost::lockfree::spsc_queue per worker, workers
// process the block in place and report back through a second spsc_queue,
// and the reader releases the ring strictly in order once every block below
// the new tail is done.
//
// Blocks go to workers round-robin, so worker w sees blocks w, w+N, ... and
// reports them in that order: the reader finds the oldest outstanding block's
// completion at the front of one known queue, and in-order release needs no
// sorting and no lock.
//
// Not for the overwrite-oldest policy: a block reclaimed while a worker holds
// it could not be taken back from that worker (run() refuses it).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <memory>
#include <thread>
#include <vector>

#include <boost/lockfree/spsc_queue.hpp>

#include "sring/accounting.hpp"
#include "sring/error.hpp"
#include "sring/ring.hpp"

namespace sring {

struct BlockDescriptor {
  const sring_block_header* block = nullptr;  // in the ring's mirror
  uint64_t end_position = 0;                  // ring position just after it
  uint64_t sequence = 0;
};

class Pipeline {
 public:
  // Runs on worker `worker`'s thread, once per block, in place.
  using Work = std::function<void(unsigned worker, const BlockDescriptor& descriptor)>;
  // Runs on the reader thread, once per block, in ring order, at dispatch.
  using Observe = std::function<void(const sring_block_header& block)>;

  Pipeline(Ring& ring, unsigned workers, Work work, size_t queue_depth = 1024);
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  ~Pipeline();

  // The reader loop, on the calling thread, until keep_going() is false and
  // every dispatched block has been released. Workers start and stop with it.
  // If a Work callback throws, the run stops at once (blocks from the one
  // that threw on are not released) and, once every worker is joined, the
  // first exception is rethrown here; an exception from keep_going or
  // observe propagates the same way.
  Status run(WaitStrategy strategy, const std::function<bool()>& keep_going,
             const Observe& observe);

  uint64_t blocks_dispatched() const { return dispatched_; }
  uint64_t blocks_released() const { return released_; }
  // Ring position just after the last block handed to a worker.
  uint64_t dispatched_position() const { return dispatched_position_; }

 private:
  struct Worker {
    explicit Worker(size_t depth) : inbox(depth), done(depth) {}
    boost::lockfree::spsc_queue<BlockDescriptor> inbox;  // reader -> worker
    boost::lockfree::spsc_queue<uint64_t> done;          // worker -> reader: end positions
    std::thread thread;
  };

  Status run_reader(WaitStrategy strategy, const std::function<bool()>& keep_going,
                    const Observe& observe);
  void worker_loop(unsigned index);
  void fail(std::exception_ptr error);
  // Pops completions in dispatch order; returns the new tail, or 0 if none.
  uint64_t collect_completions();

  Ring& ring_;
  Work work_;
  std::vector<std::unique_ptr<Worker>> workers_;
  // Read by every worker on each idle round and by the reader on each loop:
  // each on its own cache line, away from the reader's counters below.
  alignas(64) std::atomic<bool> stop_{false};
  alignas(64) std::atomic<bool> failed_{false};
  std::mutex failure_mutex_;
  std::exception_ptr failure_;  // first exception from a Work callback
  alignas(64) uint64_t dispatched_ = 0;  // the reader's own, off the flags' lines
  uint64_t released_ = 0;
  uint64_t dispatched_position_ = 0;
};

}  // namespace sring
