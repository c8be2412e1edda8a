#include "ringlib/error_format.hpp"
#include "sring/pipeline.hpp"

#include <mutex>

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

Pipeline::Pipeline(Ring& ring, unsigned workers, Work work, size_t queue_depth)
    : ring_(ring), work_(std::move(work)) {
  for (unsigned i = 0; i < std::max(workers, 1u); ++i) {
    workers_.push_back(std::make_unique<Worker>(queue_depth));
  }
}

Pipeline::~Pipeline() {
  stop_.store(true, std::memory_order_release);
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) worker->thread.join();
  }
}

void Pipeline::worker_loop(unsigned index) {
  Worker& self = *workers_[index];
  Backoff backoff;
  // stop_ is only set after the reader has seen every completion, so a worker
  // never leaves a dispatched block behind.
  while (!stop_.load(std::memory_order_acquire)) {
    BlockDescriptor descriptor;
    if (!self.inbox.pop(descriptor)) {  // spsc pop: acquire, pairs with the reader's push
      backoff.idle();
      continue;
    }
    backoff.reset();
    try {
      work_(index, descriptor);
    } catch (...) {
      // The block is not done: it is never reported, so it is never
      // released. run() stops and rethrows this once every thread is joined.
      fail(std::current_exception());
      return;
    }
    // spsc push is a release: the reader sees our work done before the
    // completion, and only then lets the producer reuse the block. A reader
    // that left (an error, or its own callback threw) no longer drains the
    // queue: stop_ says so, and the completion no longer matters.
    while (!self.done.push(descriptor.end_position)) {
      if (stop_.load(std::memory_order_acquire)) return;
      backoff.idle();
    }
  }
}

void Pipeline::fail(std::exception_ptr error) {
  {
    std::lock_guard lock(failure_mutex_);
    if (!failure_) failure_ = std::move(error);  // the first one wins
  }
  // Release: run() reads failure_ (under the mutex) after it sees this.
  failed_.store(true, std::memory_order_release);
}

uint64_t Pipeline::collect_completions() {
  uint64_t new_tail = 0;
  const size_t n = workers_.size();
  while (released_ < dispatched_) {
    uint64_t end = 0;
    if (!workers_[released_ % n]->done.pop(end)) break;
    new_tail = end;
    ++released_;
  }
  return new_tail;
}

Status Pipeline::run(WaitStrategy strategy, const std::function<bool()>& keep_going,
                     const Observe& observe) {
  if (load_relaxed(ring_.producer().overrun_policy) == SRING_OVERRUN_OVERWRITE_OLDEST) {
    return make_error(EINVAL, "the worker pipeline cannot run on an overwrite-oldest ring");
  }
  failed_.store(false, std::memory_order_relaxed);
  failure_ = nullptr;
  Status status = run_reader(strategy, keep_going, observe);  // joins the workers on every way out
  // Every worker is joined: failure_ is no longer written.
  if (failure_) std::rethrow_exception(failure_);
  return status;
}

Status Pipeline::run_reader(WaitStrategy strategy, const std::function<bool()>& keep_going,
                            const Observe& observe) {
  stop_.store(false, std::memory_order_relaxed);
  for (unsigned i = 0; i < workers_.size(); ++i) {
    workers_[i]->thread = std::thread([this, i] { worker_loop(i); });
  }
  // Workers must be joined on every way out of this function.
  struct JoinOnExit {
    Pipeline& self;
    ~JoinOnExit() {
      self.stop_.store(true, std::memory_order_release);
      for (auto& worker : self.workers_) {
        if (worker->thread.joinable()) worker->thread.join();
      }
    }
  } join_on_exit{*this};

  const size_t n = workers_.size();
  dispatched_position_ = ring_.tail();
  Backoff backoff;
  Status status = ok();
  bool draining = false;
  for (;;) {
    // A worker's callback threw: its block and those after it will never be
    // done, so nothing more is released and the run ends now.
    if (failed_.load(std::memory_order_acquire)) break;
    if (!draining && !keep_going()) draining = true;
    if (const uint64_t new_tail = collect_completions(); new_tail != 0) ring_.release(new_tail);
    if (draining && released_ == dispatched_) break;

    bool progressed = false;
    if (!draining) {
      auto span = ring_.acquire();
      if (!span) {
        status = span.error();
        draining = true;
        continue;
      }
      // The span starts at our tail; blocks below dispatched_position_ are in flight.
      BlockSpan fresh{span->data + (dispatched_position_ - span->begin), dispatched_position_,
                      span->end() - dispatched_position_};
      BlockCursor cursor(fresh, ring_.max_block_bytes());
      for (;;) {
        auto block = cursor.next();
        if (!block) {
          status = block.error();
          draining = true;
          break;
        }
        if (*block == nullptr) break;
        BlockDescriptor descriptor{*block, cursor.position(), (*block)->sequence};
        Worker& target = *workers_[dispatched_ % n];
        if (!target.inbox.push(descriptor)) break;  // full: retry after completions
        if (observe) observe(**block);
        ++dispatched_;
        dispatched_position_ = cursor.position();
        progressed = true;
      }
    }
    if (progressed) {
      backoff.reset();
    } else if (released_ < dispatched_ || draining) {
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
