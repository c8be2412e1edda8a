// Fans the blocks of a ring out to N worker threads without copying, and
// gives the ring back strictly in order.
//
//   sring::Pipeline pipeline(ring, 4, [&](unsigned worker, const sring::BlockDescriptor& d) {
//     for (int16_t s : d.as<int16_t>()) peak[worker] = std::max<int>(peak[worker], s);  // in place
//   });
//   auto status = pipeline.run(sring::WaitStrategy::kEventfd, [&] { return !pipeline.end_of_stream(); },
//                              [&](const sring_block_header& h) { accounting.on_block(h); });
//
// (examples/parallel_envelope.cpp is a complete program.)
//
// The reader thread (the one that calls run()) walks the ring and hands each
// worker a run of whole, contiguous blocks (a BlockRun: a pointer into the
// ring's mirror and the run's ring positions) through that worker's
// boost::lockfree::spsc_queue. The worker calls Work once per block of the
// run, in place, then publishes how many runs it has finished: one
// std::atomic<uint64_t> per worker, on its own cache line (the gating
// sequences of the LMAX Disruptor). There is no completion queue. The reader
// remembers the order in which it dispatched runs (which worker, that
// worker's ordinal for the run, where the run ends) and releases the ring up
// to the end of the longest prefix of that order whose runs are all finished:
// never past a block that some worker still reads, however out of order the
// workers finish.
//
// Run size: the blocks available at one look are split so that every worker
// gets a share (about available / workers bytes per run), within
// [one block, PipelineOptions::max_run_bytes]. A run always ends on a block
// boundary. A run goes to the worker with the fewest unfinished runs.
//
// Not for the overwrite-oldest policy: a block reclaimed while a worker holds
// it could not be taken back from that worker (run() refuses it).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <type_traits>
#include <vector>

#include <boost/lockfree/spsc_queue.hpp>

#include "sring/error.hpp"
#include "sring/format.hpp"
#include "sring/ring.hpp"

namespace sring {

// One block, as a worker's Work callback sees it, valid during the call.
// Nothing is released past the block until the callback returns, so a
// well-behaved producer leaves it alone; header is the copy the worker's
// cursor validated, the one view that cannot change under the callback
// whatever the producer does, and samples() is sized by it.
struct BlockDescriptor {
  const sring_block_header* block = nullptr;   // in the ring's mirror
  const sring_block_header* header = nullptr;  // the validated copy: read fields here
  uint64_t begin_position = 0;                 // ring position of its header
  uint64_t end_position = 0;                   // ring position just after it
  uint64_t sequence = 0;

  // Its samples in place: the same views sring::Block gives (as<T>()
  // throws FormatMismatch unless T is the block's format).
  SampleLayout layout() const { return SampleLayout::from_header(*header); }
  std::span<const std::byte> payload() const {
    return {block_payload(block), layout().payload_bytes(header->sample_count)};
  }
  template <typename T>
  std::span<const T> as() const {
    return typed_view<T>(block_payload(block), header->sample_count, layout());
  }
  std::span<const uint16_t> samples() const {
    return raw16_view(block_payload(block), header->sample_count, layout());
  }
};

// A contiguous run of whole blocks handed to one worker: ring positions
// [begin, end), in memory at data thanks to the mirror.
struct BlockRun {
  const std::byte* data = nullptr;  // data[0] is the byte at ring position begin
  uint64_t begin = 0;
  uint64_t end = 0;
  uint64_t first_sequence = 0;  // the sequence of its first block
  uint32_t blocks = 0;
  BlockSpan span() const { return BlockSpan{data, begin, end - begin}; }
};

struct PipelineOptions {
  // Upper bound of one run (a run holds at least one block, whatever its size).
  uint64_t max_run_bytes = 256 * 1024;
  // Runs that may wait in one worker's inbox, the one it is working on
  // included: how far a fast worker may get ahead of a slow one.
  uint32_t runs_per_worker = 8;
};

class Pipeline {
 public:
  // Runs on worker `worker`'s thread (0 <= worker < workers), once per block,
  // in place, in ring order within a run. Blocks of different runs run
  // concurrently on different workers, in any order.
  using Work = std::function<void(unsigned worker, const BlockDescriptor& descriptor)>;
  // Runs on the reader thread, once per block, in ring order, as its run is
  // dispatched (before any worker sees it): the place for loss accounting.
  using Observe = std::function<void(const sring_block_header& block)>;

  Pipeline(Ring& ring, unsigned workers, Work work, PipelineOptions options = {});
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  ~Pipeline();

  // The reader loop, on the calling thread, until keep_going() is false and
  // every dispatched block has been released. Workers start and stop with it.
  // If a Work callback throws, the run stops at once: the finished prefix
  // is released, never the run that threw nor anything dispatched after it,
  // and, once every worker is joined, the first exception is rethrown here.
  // An exception from keep_going or observe propagates the same way, with
  // nothing released past what the reader had seen finished. A corrupt
  // header seen by the reader ends the run with that error once every
  // dispatched run is finished and released; one seen by a worker (the
  // producer rewrote a block it had handed over) ends it at once, like an
  // exception, with that error.
  Status run(WaitStrategy strategy, const std::function<bool()>& keep_going,
             const Observe& observe);

  // The end-of-stream rule of docs/abi.md for a pipeline: the device is not
  // running (state loaded with acquire) and every block up to the head
  // loaded after that has been dispatched. Use !end_of_stream() as
  // keep_going: run() then returns once all of it is released, and
  // StreamAccounting::finish() is final. Reader thread only.
  bool end_of_stream() const {
    return ring_.state() != SRING_STATE_RUNNING && ring_.head() == dispatched_position_;
  }

  // Reader thread only (from keep_going, observe, or after run() returned).
  uint64_t blocks_dispatched() const { return blocks_dispatched_; }
  uint64_t blocks_released() const { return blocks_released_; }
  uint64_t runs_dispatched() const { return runs_dispatched_; }
  // Ring position just after the last block handed to a worker.
  uint64_t dispatched_position() const { return dispatched_position_; }
  unsigned workers() const { return static_cast<unsigned>(workers_.size()); }

 private:
  struct Worker {
    explicit Worker(size_t depth) : inbox(depth) {}
    // Runs this worker has finished: written by the worker only (release),
    // read by the reader (acquire). On its own cache line: the worker's store
    // must not invalidate the line the reader polls for another worker, nor
    // the inbox indices.
    alignas(64) std::atomic<uint64_t> runs_finished{0};
    // reader -> worker (boost pads its two indices apart itself).
    alignas(64) boost::lockfree::spsc_queue<BlockRun> inbox;
    std::thread thread;
  };

  // A run in flight, in the reader's dispatch order.
  struct DispatchedRun {
    unsigned worker = 0;
    uint64_t ordinal = 0;  // finished once the worker's runs_finished reaches it
    uint64_t end = 0;
    uint32_t blocks = 0;
  };

  // The reader's dispatch order, oldest first. Runs that a worker finished
  // stay here until every run before them is finished too, so its length is
  // bounded by the ring (every run holds at least one block), not by the
  // inboxes: it grows by doubling when full and never shrinks, so once it
  // has seen the deepest backlog the hot loop no longer allocates.
  class DispatchOrder {
   public:
    bool empty() const { return count_ == 0; }
    const DispatchedRun& front() const { return slots_[first_]; }
    void pop() {
      first_ = (first_ + 1) % slots_.size();
      --count_;
    }
    void push(const DispatchedRun& run) {
      if (count_ == slots_.size()) grow();
      slots_[(first_ + count_) % slots_.size()] = run;
      ++count_;
    }
    void clear() { first_ = count_ = 0; }

   private:
    void grow() {
      std::vector<DispatchedRun> larger(std::max<size_t>(16, 2 * slots_.size()));
      for (size_t i = 0; i < count_; ++i) larger[i] = slots_[(first_ + i) % slots_.size()];
      slots_ = std::move(larger);
      first_ = 0;
    }
    std::vector<DispatchedRun> slots_;
    size_t first_ = 0;
    size_t count_ = 0;
  };

  Status run_reader(WaitStrategy strategy, const std::function<bool()>& keep_going,
                    const Observe& observe);
  void worker_loop(unsigned index);
  void fail(std::exception_ptr error);
  void fail(Error error);
  // The worker with the fewest unfinished runs that can take one more, or
  // none.
  std::optional<unsigned> pick_worker();
  // Forgets the finished prefix of the dispatch order; returns the ring
  // position up to which it may be released (0: nothing new).
  uint64_t collect_finished();

  Ring& ring_;
  Work work_;
  PipelineOptions options_;
  std::vector<std::unique_ptr<Worker>> workers_;

  // Written by the reader, read by every worker between runs and on each
  // idle round: its own cache line.
  alignas(64) std::atomic<bool> stop_{false};
  // Written by a failing worker, read by the reader on each loop: its own
  // line, away from stop_ and from the reader's fields below.
  alignas(64) std::atomic<bool> failed_{false};
  std::mutex failure_mutex_;
  std::exception_ptr failure_;        // the first exception from a Work callback
  std::optional<Error> worker_error_;  // a corrupt run found by a worker

  // The reader's own, off the flags' lines.
  alignas(64) DispatchOrder in_flight_;
  std::vector<uint64_t> runs_given_;  // per worker: runs dispatched to it
  unsigned next_worker_ = 0;          // where pick_worker() starts looking
  uint64_t blocks_dispatched_ = 0;
  uint64_t blocks_released_ = 0;
  uint64_t runs_dispatched_ = 0;
  uint64_t dispatched_position_ = 0;
};

}  // namespace sring
