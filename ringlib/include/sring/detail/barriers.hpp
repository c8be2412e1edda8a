// Memory ordering for memory shared with the producer (kernel or another
// process). Every access to a shared field in ringlib goes through one of
// these, under the kernel's names, so the pairing can be read next to each
// call: the producer's smp_store_release(head) pairs with our
// load_acquire(head), our store_release(tail) with its smp_load_acquire(tail).
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

namespace sring {

template <typename T>
inline T load_acquire(const T& shared) {
  // atomic_ref needs a non-const object; the load does not write.
  return std::atomic_ref<T>(const_cast<T&>(shared)).load(std::memory_order_acquire);
}

template <typename T>
inline T load_relaxed(const T& shared) {
  return std::atomic_ref<T>(const_cast<T&>(shared)).load(std::memory_order_relaxed);
}

template <typename T>
inline void store_release(T& shared, std::type_identity_t<T> value) {
  std::atomic_ref<T>(shared).store(value, std::memory_order_release);
}

template <typename T>
inline void store_relaxed(T& shared, std::type_identity_t<T> value) {
  std::atomic_ref<T>(shared).store(value, std::memory_order_relaxed);
}

template <typename T>
inline T exchange(T& shared, std::type_identity_t<T> value) {
  return std::atomic_ref<T>(shared).exchange(value, std::memory_order_seq_cst);
}

// Compare-and-swap with acquire-release ordering (used by the overwrite-oldest
// policy, where producer and consumer both move tail). On failure `expected`
// holds the value found.
template <typename T>
inline bool compare_exchange(T& shared, T& expected, std::type_identity_t<T> desired) {
  return std::atomic_ref<T>(shared).compare_exchange_strong(
      expected, desired, std::memory_order_acq_rel, std::memory_order_acquire);
}

// The kernel's smp_mb(): orders an earlier store before a later load, which
// acquire/release alone never do (the need-wakeup handshake needs it).
#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer does not model standalone fences (GCC refuses them under
// -fsanitize=thread). A seq_cst read-modify-write is a full barrier on every
// target we build for and is something TSan understands. The object is per
// thread on purpose: one shared by all threads would make TSan treat every
// pair of smp_mb() calls (the producer's after each head store, the
// consumer's before each sleep) as a release/acquire synchronization, which
// could hide a missing acquire on head or release on tail from the tests
// that exist to catch exactly that (tests/cross_thread_test.cpp).
inline void smp_mb() {
  thread_local std::atomic<uint32_t> barrier{0};
  barrier.fetch_add(0, std::memory_order_seq_cst);
}
#else
inline void smp_mb() { std::atomic_thread_fence(std::memory_order_seq_cst); }
#endif

// A statistic that one thread writes and any thread may read (Ring's
// wake-up and sleep counts, the simulator's sample position). Not shared
// with the producer's memory, but shared between threads: a plain field
// would be a data race the moment a monitoring thread reads it. One writer,
// so add() is a relaxed load and store, not a read-modify-write: it costs
// what a plain increment costs. Readers get some recent value, with no
// ordering against anything else (pair it with nothing).
//
// The conversion and += keep the writer's code as it reads with a plain
// integer; every access is still atomic.
class RelaxedCounter {
 public:
  RelaxedCounter() = default;
  // Copying (and so moving the object that holds it) takes a snapshot: only
  // meaningful while nobody writes, as for any move.
  RelaxedCounter(const RelaxedCounter& other) : value_(other.load()) {}
  RelaxedCounter& operator=(const RelaxedCounter& other) {
    store(other.load());
    return *this;
  }

  uint64_t load() const { return value_.load(std::memory_order_relaxed); }
  // Writer thread only.
  void store(uint64_t value) { value_.store(value, std::memory_order_relaxed); }
  void add(uint64_t by = 1) { store(load() + by); }

  operator uint64_t() const { return load(); }
  RelaxedCounter& operator+=(uint64_t by) {
    add(by);
    return *this;
  }

 private:
  std::atomic<uint64_t> value_{0};
};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

static_assert(std::atomic_ref<uint64_t>::is_always_lock_free,
              "shared 64-bit counters need lock-free atomics");
static_assert(std::atomic_ref<uint32_t>::is_always_lock_free,
              "shared 32-bit flags need lock-free atomics");

}  // namespace sring
