#include "sring/pipeline.hpp"

#include <algorithm>
#include <cassert>
#include <chrono>

#include "ringlib/error_format.hpp"

namespace sring {
namespace {

// Idle backoff for threads with nothing to do: spin briefly, then yield, then
// sleep, so that idle workers do not starve the reader on a small machine.
class Backoff {
 public:
  void idle() {
    if (++rounds_ < 64) {
      cpu_relax();
    } else if (rounds_ < 128) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  void reset() { rounds_ = 0; }

 private:
  uint32_t rounds_ = 0;
};

}  // namespace

Pipeline::Pipeline(Ring& ring, unsigned workers, Work work, PipelineOptions options)
    : ring_(ring),
      work_(std::move(work)),
      options_(options) {
  options_.runs_per_worker = std::max(options_.runs_per_worker, 1u);
  for (unsigned i = 0; i < std::max(workers, 1u); ++i) {
    workers_.push_back(std::make_unique<Worker>(options_.runs_per_worker));
  }
  runs_given_.assign(workers_.size(), 0);
}

Pipeline::~Pipeline() {
  // run() joins its workers on every way out; nothing is running here unless
  // a thread was left by a bug, and then stopping it beats std::terminate.
  stop_.store(true, std::memory_order_release);  // pairs with the workers' acquire of stop_
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
}

void Pipeline::worker_loop(unsigned index) {
  Worker& self = *workers_[index];
  Backoff backoff;
  uint64_t finished = 0;
  // stop_ is set after the reader has released every dispatched run (or once
  // the run is over anyway: a failure or an exception on the reader), so a
  // worker that sees it leaves nothing behind that anyone waits for. Acquire
  // pairs with the reader's store-release; there is no data behind the flag
  // (the inbox carries its own ordering), so this is belt and braces.
  while (!stop_.load(std::memory_order_acquire)) {
    BlockRun run;
    // spsc pop is an acquire that pairs with the reader's push (a release):
    // the run's fields, and the ring data the reader saw below head before it
    // pushed, are visible here.
    if (!self.inbox.pop(run)) {
      backoff.idle();
      continue;
    }
    backoff.reset();
    // Walk the run again with a cursor: the reader validated these headers,
    // but the ring's memory is shared with the producer, and a cursor never
    // reads outside the run however the headers read now.
    BlockCursor cursor(run.span(), ring_.max_block_bytes());
    uint32_t blocks = 0;
    try {
      for (;;) {
        auto block = cursor.next();
        if (!block) {
          fail(block.error());
          return;
        }
        if (*block == nullptr) break;
        ++blocks;
        work_(index, BlockDescriptor{*block, &cursor.header(), cursor.block_begin(), cursor.position(),
                                     cursor.header().sequence});
      }
    } catch (...) {
      // The run is not finished: it is never published, so it is never
      // released. run() stops and rethrows this once every thread is joined.
      fail(std::current_exception());
      return;
    }
    if (blocks != run.blocks) {
      fail(make_error(EPROTO, "a run of {} blocks at ring position {} now holds {}: the producer "
                              "rewrote blocks it had handed over",
                      run.blocks, run.begin, blocks));
      return;
    }
    // Release: every read of this run's blocks (the Work calls above) happens
    // before the reader's acquire load of runs_finished that sees this value
    // (collect_finished), hence before its store-release of the ring's tail
    // past the run, hence before the producer writes there again.
    self.runs_finished.store(++finished, std::memory_order_release);
  }
}

void Pipeline::fail(std::exception_ptr error) {
  {
    std::lock_guard lock(failure_mutex_);
    if (!failure_) failure_ = std::move(error);  // the first one wins
  }
  // Release, paired with the reader's acquire of failed_ in run_reader();
  // failure_ itself is read under the mutex after the joins.
  failed_.store(true, std::memory_order_release);
}

void Pipeline::fail(Error error) {
  {
    std::lock_guard lock(failure_mutex_);
    if (!worker_error_) worker_error_ = std::move(error);
  }
  failed_.store(true, std::memory_order_release);  // as above
}

std::optional<unsigned> Pipeline::pick_worker() {
  const unsigned n = workers();
  std::optional<unsigned> best;
  uint64_t best_unfinished = options_.runs_per_worker;  // a worker at this is full
  for (unsigned k = 0; k < n; ++k) {
    const unsigned w = (next_worker_ + k) % n;
    // Acquire, paired with the worker's store-release of runs_finished. A
    // stale (smaller) value only makes the worker look busier than it is.
    const uint64_t unfinished =
        runs_given_[w] - workers_[w]->runs_finished.load(std::memory_order_acquire);
    if (unfinished < best_unfinished) {
      best = w;
      best_unfinished = unfinished;
      if (unfinished == 0) break;
    }
  }
  if (best) next_worker_ = (*best + 1) % n;  // ties go round-robin
  return best;
}

uint64_t Pipeline::collect_finished() {
  uint64_t new_tail = 0;
  while (!in_flight_.empty()) {
    const DispatchedRun& oldest = in_flight_.front();
    // Acquire, paired with the worker's store-release of runs_finished after
    // its last read of the run: the ring may be released past the run only
    // after this load has seen it finished. A worker finishes its own runs
    // in the order it got them, so a count >= the run's ordinal means this
    // run is finished.
    if (workers_[oldest.worker]->runs_finished.load(std::memory_order_acquire) < oldest.ordinal) {
      break;  // the longest finished prefix ends here, whatever came after it
    }
    new_tail = oldest.end;
    blocks_released_ += oldest.blocks;
    in_flight_.pop();
  }
  return new_tail;
}

Status Pipeline::run(WaitStrategy strategy, const std::function<bool()>& keep_going,
                     const Observe& observe) {
  if (load_relaxed(ring_.producer().overrun_policy) == SRING_OVERRUN_OVERWRITE_OLDEST) {
    return make_error(EINVAL, "the worker pipeline cannot run on an overwrite-oldest ring");
  }
  // No worker runs yet: plain resets, published by the threads' creation.
  failed_.store(false, std::memory_order_relaxed);
  failure_ = nullptr;
  worker_error_.reset();
  Status status = run_reader(strategy, keep_going, observe);  // joins the workers on every way out
  // Every worker is joined: failure_ and worker_error_ are no longer written.
  if (failure_) std::rethrow_exception(failure_);
  if (worker_error_) return *worker_error_;
  return status;
}

Status Pipeline::run_reader(WaitStrategy strategy, const std::function<bool()>& keep_going,
                            const Observe& observe) {
  // A previous run ended with every worker joined; start from a clean slate.
  // The counters restart at zero before the threads exist (thread creation
  // publishes these stores).
  in_flight_.clear();
  for (unsigned w = 0; w < workers(); ++w) {
    runs_given_[w] = 0;
    workers_[w]->runs_finished.store(0, std::memory_order_relaxed);
    workers_[w]->inbox.reset();
  }
  stop_.store(false, std::memory_order_relaxed);
  for (unsigned i = 0; i < workers(); ++i) {
    workers_[i]->thread = std::thread([this, i] { worker_loop(i); });
  }
  // Workers must be joined on every way out of this function.
  struct JoinOnExit {
    Pipeline& self;
    ~JoinOnExit() {
      // Release, paired with the workers' acquire of stop_.
      self.stop_.store(true, std::memory_order_release);
      for (auto& worker : self.workers_) {
        if (worker->thread.joinable()) worker->thread.join();
      }
    }
  } join_on_exit{*this};

  const uint64_t max_run_bytes = std::max<uint64_t>(options_.max_run_bytes, 1);
  dispatched_position_ = ring_.tail();
  Backoff backoff;
  Status status = ok();
  bool draining = false;
  for (;;) {
    if (const uint64_t new_tail = collect_finished(); new_tail != 0) {
      // Ends a dispatched run, within what was acquired: cannot be refused.
      if (auto released = ring_.release(new_tail); !released) return released.error();
    }
    // Acquire, paired with a failing worker's store-release. Its run will
    // never be finished, so the finished prefix (just released) cannot grow
    // past it: nothing more is released and the run ends now.
    if (failed_.load(std::memory_order_acquire)) break;
    if (!draining && !keep_going()) draining = true;
    if (draining && in_flight_.empty()) break;

    bool progressed = false;
    if (!draining) {
      auto span = ring_.acquire();
      if (!span) {
        status = span.error();
        draining = true;
        continue;
      }
      // The span starts at our tail; blocks below dispatched_position_ are in flight.
      const uint64_t fresh_bytes = span->end() - dispatched_position_;
      BlockCursor cursor(
          BlockSpan{span->data + (dispatched_position_ - span->begin), dispatched_position_, fresh_bytes},
          ring_.max_block_bytes());
      // Every worker gets a share of what is there now, in runs of at most
      // max_run_bytes (and at least one block).
      const uint64_t run_target = std::clamp<uint64_t>(fresh_bytes / workers(), 1, max_run_bytes);
      bool span_done = fresh_bytes == 0;
      while (!span_done) {
        const std::optional<unsigned> worker = pick_worker();
        if (!worker) break;  // every inbox is full: dispatch more after completions
        const uint64_t run_begin = cursor.position();
        BlockRun run{span->data + (run_begin - span->begin), run_begin, run_begin, 0, 0};
        while (run.end - run.begin < run_target) {
          auto block = cursor.next();
          if (!block) {
            status = block.error();  // the run up to here is whole: dispatch it, then drain
            draining = true;
            span_done = true;
            break;
          }
          if (*block == nullptr) {
            span_done = true;
            break;
          }
          if (run.blocks == 0) run.first_sequence = cursor.header().sequence;
          if (observe) observe(cursor.header());
          ++run.blocks;
          run.end = cursor.position();
        }
        if (run.blocks == 0) break;
        // Cannot fail: the worker has fewer than runs_per_worker runs
        // unfinished, and that is its inbox's capacity. The push is a release,
        // paired with the worker's pop.
        [[maybe_unused]] const bool pushed = workers_[*worker]->inbox.push(run);
        assert(pushed);
        in_flight_.push(DispatchedRun{*worker, ++runs_given_[*worker], run.end, run.blocks});
        ++runs_dispatched_;
        blocks_dispatched_ += run.blocks;
        dispatched_position_ = run.end;
        progressed = true;
      }
    }
    if (progressed) {
      backoff.reset();
    } else if (!in_flight_.empty() || draining) {
      backoff.idle();  // waiting for workers, not for the ring
    } else {
      auto waited = ring_.wait(strategy, std::chrono::milliseconds(20));
      if (!waited) {
        status = waited.error();
        draining = true;
      }
    }
  }
  return status;
}

}  // namespace sring
