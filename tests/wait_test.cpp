// Ring::wait() across threads: a wait forever blocks for as long as it must
// and no longer, and the need-wakeup re-check catches a block published in
// the window before the consumer arms its flag. Each wait runs on its own
// thread under a watchdog: a broken wait fails the test, it does not hang it.
// Also run under ThreadSanitizer (tag "concurrent").
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <thread>

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

constexpr auto kWatchdog = 5s;

// A ring file with a simulated device stepped by hand (no producer thread:
// nothing signals unless the test publishes) and the device's eventfd
// handed to the consumer, as a real set-up does.
struct HandSteppedRing {
  HandSteppedRing()
      : host(std::move(*HostRing::create(64 * 1024))), device(host, [] {
          SimConfig c;
          c.sample_rate = 1'000'000;
          c.block_bytes = 8192;
          // No flush wake-up can rescue a lost signal (poll_flush() is
          // never called here anyway).
          c.flush_timeout = std::chrono::hours(1);
          return c;
        }()) {
    auto fd = host.duplicate_fd();
    ring.emplace(std::move(*Ring::attach(std::move(*fd), Ring::Access::kConsumer)));
    sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    eventfd = efd.get();
    EXPECT_TRUE(device.set_eventfd(efd.get()).has_value());
    EXPECT_TRUE(ring->use_eventfd(std::move(efd)).has_value());
    device.begin();
  }
  // Signals the consumer's eventfd behind the device's back (the watchdog's
  // rescue). The ring keeps the descriptor open until it is destroyed.
  void kick() const {
    const uint64_t one = 1;
    EXPECT_EQ(::write(eventfd, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
  }
  void release_all() {
    auto span = ring->acquire();
    ASSERT_TRUE(span.has_value());
    ASSERT_TRUE(ring->release(span->end()).has_value());
  }

  HostRing host;
  SimDevice device;
  std::optional<Ring> ring;
  int eventfd = -1;
};

// ring.wait(strategy, kWaitForever) on its own thread.
class BackgroundWait {
 public:
  BackgroundWait(Ring& ring, WaitStrategy strategy)
      : thread_([this, &ring, strategy] {
          result_.emplace(ring.wait(strategy, sring::kWaitForever));
          // Pairs with the acquire in done(): result_ is complete before.
          done_.store(true, std::memory_order_release);
        }) {}
  ~BackgroundWait() { thread_.join(); }

  bool done() const { return done_.load(std::memory_order_acquire); }
  bool done_within(std::chrono::milliseconds limit) const {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= until) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }
  // Waits for the thread; if it is still in wait() after the watchdog
  // period, fails the test with `why` and calls rescue (which must make the
  // wait return) rather than hang. Returns what wait() returned.
  sring::Expected<bool> finish(const std::string& why, const std::function<void()>& rescue) {
    if (!done_within(kWatchdog)) {
      ADD_FAILURE() << "wait() still blocked after " << kWatchdog.count() << " s: " << why;
      rescue();
      if (!done_within(kWatchdog)) {
        std::fprintf(stderr, "wait() did not return even after the rescue; giving up\n");
        std::abort();
      }
    }
    return *result_;
  }

 private:
  std::optional<sring::Expected<bool>> result_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

constexpr WaitStrategy kAllStrategies[] = {WaitStrategy::kEventfd, WaitStrategy::kPoll,
                                           WaitStrategy::kSpin, WaitStrategy::kHybrid};

bool sleeps_in_the_kernel(WaitStrategy strategy) { return strategy != WaitStrategy::kSpin; }

// Waits until the consumer thread is asleep (sleeps() moved past `before`),
// or a while for a spinning one. false: it never got there.
bool until_blocked(const Ring& ring, WaitStrategy strategy, uint64_t before) {
  if (!sleeps_in_the_kernel(strategy)) {
    std::this_thread::sleep_for(50ms);
    return true;
  }
  const auto until = std::chrono::steady_clock::now() + kWatchdog;
  while (ring.sleeps() == before) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(WaitForever, BlocksUntilAProducerPublishes) {
  // Tricky: nanoseconds::max() added to now() overflowed, and the "forever"
  // wait returned "timed out" at once. It must stay blocked however long
  // nothing arrives, and return true as soon as a block does.
  HandSteppedRing s;
  for (const WaitStrategy strategy : kAllStrategies) {
    SCOPED_TRACE(std::string(to_string(strategy)));
    const uint64_t sleeps_before = s.ring->sleeps();
    BackgroundWait waiter(*s.ring, strategy);
    ASSERT_TRUE(until_blocked(*s.ring, strategy, sleeps_before) || waiter.done())
        << "the consumer never went to sleep";
    std::this_thread::sleep_for(200ms);
    ASSERT_FALSE(waiter.done()) << "a wait forever returned with no data and the producer running";

    ASSERT_EQ(s.device.produce_block(), Produced::kWritten);
    auto waited = waiter.finish("the published block did not end the wait", [&] { s.kick(); });
    ASSERT_TRUE(waited.has_value()) << waited.error().message;
    EXPECT_TRUE(*waited);
    s.release_all();
  }
}

TEST(WaitForever, EndsWhenTheProducerStopsWithNothing) {
  // The end of a stream: the producer stops with the ring empty. Nothing will
  // come, so a wait forever must return (false: no data), as data_ready's
  // "anything is ready once it stopped" implies; looping back to sleep would
  // hang the consumer for good.
  HandSteppedRing s;
  for (const WaitStrategy strategy : kAllStrategies) {
    SCOPED_TRACE(std::string(to_string(strategy)));
    s.device.begin();
    const uint64_t sleeps_before = s.ring->sleeps();
    BackgroundWait waiter(*s.ring, strategy);
    ASSERT_TRUE(until_blocked(*s.ring, strategy, sleeps_before) || waiter.done());
    ASSERT_FALSE(waiter.done()) << "returned while the producer was running and the ring empty";

    s.device.end();  // state "stopped", and a wake-up for the sleeper
    auto waited = waiter.finish("the producer stopped and the waiter slept on", [&] {
      // Data, and a kick: ends even a wait that ignores the stop.
      (void)s.device.produce_block();
      s.kick();
    });
    ASSERT_TRUE(waited.has_value()) << waited.error().message;
    EXPECT_FALSE(*waited) << "nothing was published";
    EXPECT_EQ(s.ring->head(), s.ring->tail());
  }
}

TEST(WaitForever, OnAStoppedEmptyRingReturnsAtOnce) {
  // "Not running and empty" ends any wait, a wait forever included: nothing
  // will come until the producer starts again.
  HandSteppedRing s;
  s.device.end();
  for (const WaitStrategy strategy : kAllStrategies) {
    SCOPED_TRACE(std::string(to_string(strategy)));
    BackgroundWait waiter(*s.ring, strategy);
    auto waited = waiter.finish("the producer was stopped and the ring empty", [&] {
      (void)s.device.produce_block();
      s.kick();
    });
    ASSERT_TRUE(waited.has_value()) << waited.error().message;
    EXPECT_FALSE(*waited);
    s.release_all();
  }
}

// The hook: publishes one block right before the consumer arms need_wakeup,
// the moment a producer that finds the flag clear does not signal.
struct BetweenCheckAndArm {
  SimDevice* device = nullptr;
  const sring_consumer_page* consumer_page = nullptr;
  int calls = 0;
  uint32_t need_wakeup_when_published = 99;
  Produced produced = Produced::kNoSpace;

  static void hook(void* context) {
    auto& self = *static_cast<BetweenCheckAndArm*>(context);
    if (++self.calls != 1) return;
    // Consumer-thread code (wait() has just looked at head and found
    // nothing); this thread is the only producer in the test, too.
    self.need_wakeup_when_published = sring::load_relaxed(self.consumer_page->need_wakeup);
    self.produced = self.device->produce_block();
  }
};

TEST(NeedWakeup, RecheckAfterArmingCatchesABlockPublishedJustBefore) {
  // Tricky: the consumer looks at head (nothing), the producer publishes,
  // finds need_wakeup clear and does not signal, then the consumer sets the
  // flag. Only its second look at head after smp_mb() finds that block;
  // without it the consumer sleeps with data in the ring and no signal ever
  // coming (here: no flush timeout, no deadline, nothing else published).
  // The hook puts the publication in that window on every run.
  HandSteppedRing s;
  for (const WaitStrategy strategy :
       {WaitStrategy::kEventfd, WaitStrategy::kPoll, WaitStrategy::kHybrid}) {
    SCOPED_TRACE(std::string(to_string(strategy)));
    BetweenCheckAndArm window;
    window.device = &s.device;
    window.consumer_page = &s.host.consumer();
    s.ring->set_before_arm_hook_for_testing(&BetweenCheckAndArm::hook, &window);
    const uint64_t signals_before = sring::load_relaxed(s.host.producer().wakeups);
    const uint64_t sleeps_before = s.ring->sleeps();
    sring::Expected<bool> waited = false;
    {
      BackgroundWait waiter(*s.ring, strategy);
      waited = waiter.finish("a block published before need_wakeup was armed was never seen "
                             "(the re-check of head after smp_mb() is missing)",
                             [&] { s.kick(); });
    }
    s.ring->set_before_arm_hook_for_testing(nullptr, nullptr);
    ASSERT_TRUE(waited.has_value()) << waited.error().message;
    EXPECT_TRUE(*waited);
    // The window was hit as intended: published once, with the flag clear,
    // and so without a signal; the consumer never slept.
    EXPECT_EQ(window.calls, 1);
    EXPECT_EQ(window.produced, Produced::kWritten);
    EXPECT_EQ(window.need_wakeup_when_published, 0u);
    EXPECT_EQ(sring::load_relaxed(s.host.producer().wakeups), signals_before)
        << "the producer signalled: the test missed the window";
    EXPECT_EQ(s.ring->sleeps(), sleeps_before);
    EXPECT_EQ(sring::load_relaxed(s.host.consumer().need_wakeup), 0u);
    s.release_all();
  }
}

// The flush timeout with a producer thread: a consumer that finds one block,
// below its watermark, arms need_wakeup and sleeps on the eventfd (the raw
// protocol of docs/abi.md, "Waiting") is signalled within the flush timeout
// although the next block is seconds away: the device stalls, or is too
// slow. The block was published before the consumer asked, so only the
// flush deadline can answer it. Each sleep is bounded (kFlushBound), so a
// lost wake-up fails the test instead of hanging it.
constexpr auto kFlushTimeout = 20ms;
constexpr auto kFlushBound = 2s;  // generous: a hundred flush timeouts

struct FlushRig {
  explicit FlushRig(uint64_t sample_rate)
      : host(std::move(*HostRing::create(64 * 1024))), device(host, [&] {
          SimConfig c;
          c.sample_rate = sample_rate;
          c.block_bytes = 8192;
          c.flush_timeout = kFlushTimeout;
          return c;
        }()),
        efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    EXPECT_TRUE(device.set_eventfd(efd.get()).has_value());
  }
  ~FlushRig() {
    device.request_stop();  // ends a stall too: the test does not wait for it
    device.join();
  }
  uint64_t head() { return sring::load_acquire(host.producer().head); }
  // The consumer's side of docs/abi.md "Waiting", with nothing taken: ask
  // for a wake-up at `watermark` bytes, full fence, look again; if still
  // below it, sleep on the eventfd for at most kFlushBound. true: signalled.
  bool wait_below_watermark(uint64_t watermark) {
    auto& page = host.consumer();
    sring::store_relaxed(page.wakeup_watermark, watermark);
    sring::store_relaxed(page.need_wakeup, 1u);
    sring::smp_mb();  // pairs with the producer's smp_mb() after its head store
    EXPECT_EQ(sring::load_acquire(host.producer().state), uint32_t{SRING_STATE_RUNNING});
    EXPECT_LT(head() - sring::load_acquire(page.tail), watermark) << "the watermark was reached: no flush needed";
    pollfd pfd{efd.get(), POLLIN, 0};
    const int n = ::poll(&pfd, 1, static_cast<int>(std::chrono::milliseconds(kFlushBound).count()));
    uint64_t count = 0;
    return n == 1 && ::read(efd.get(), &count, sizeof(count)) == sizeof(count) && count == 1;
  }

  HostRing host;
  SimDevice device;
  sring::UniqueFd efd;
};

TEST(FlushTimeout, WakesAConsumerBelowItsWatermarkWhileTheDeviceStalls) {
  FlushRig rig(1'000'000);  // a block every 4 ms, but for the stall
  // One block, published with nobody asking (the test is the producer thread
  // until start()), then a stall far longer than the wait allowed.
  rig.device.begin();
  ASSERT_EQ(rig.device.produce_block(), Produced::kWritten);
  const uint64_t head = rig.head();
  rig.device.inject_stall(8s);
  ASSERT_TRUE(rig.device.start().has_value());  // the run begins with the stall

  const auto asked = std::chrono::steady_clock::now();
  EXPECT_TRUE(rig.wait_below_watermark(4 * 8192))
      << "not signalled within " << kFlushBound.count() << " s while the device stalled";
  const auto waited = std::chrono::steady_clock::now() - asked;
  EXPECT_EQ(rig.head(), head) << "the stall ended first: the wake-up came from a block, not the flush";
  EXPECT_LT(waited, kFlushBound);
  EXPECT_EQ(sring::load_relaxed(rig.host.producer().wakeups), 1u);
  EXPECT_EQ(sring::load_relaxed(rig.host.consumer().need_wakeup), 0u) << "the producer takes the request";
}

TEST(FlushTimeout, WakesAConsumerBelowItsWatermarkWhenTheNextBlockIsFarAway) {
  // 4064 samples a block at 406 samples/s: a block every 10 s. The first one
  // comes at once (a burst), the next 20 s after the start.
  FlushRig rig(406);
  rig.device.inject_burst(1);
  ASSERT_TRUE(rig.device.start().has_value());
  // The consumer waits for the block without asking for a wake-up.
  const auto until = std::chrono::steady_clock::now() + kWatchdog;
  while (rig.head() == 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
  const uint64_t head = rig.head();
  ASSERT_EQ(head, 8192u) << "the burst block never came";

  EXPECT_TRUE(rig.wait_below_watermark(4 * 8192))
      << "not signalled within " << kFlushBound.count() << " s with the next block 20 s away";
  EXPECT_EQ(rig.head(), head) << "a block came first";
  EXPECT_EQ(sring::load_relaxed(rig.host.producer().wakeups), 1u);
}

}  // namespace

// One thread over many rings: prepare_wait() is wait()'s arming step on its
// own, so it needs the same second look.
TEST(PrepareWait, RecheckAfterArmingCatchesABlockPublishedJustBefore) {
  HandSteppedRing s;
  BetweenCheckAndArm window;
  window.device = &s.device;
  window.consumer_page = &s.host.consumer();
  s.ring->set_before_arm_hook_for_testing(&BetweenCheckAndArm::hook, &window);
  const uint64_t signals_before = sring::load_relaxed(s.host.producer().wakeups);
  const bool ready = s.ring->prepare_wait();
  s.ring->set_before_arm_hook_for_testing(nullptr, nullptr);
  // Without the look at head after arming, prepare_wait() says "sleep"
  // with a block in the ring that nobody will ever signal.
  EXPECT_TRUE(ready) << "a block published before need_wakeup was armed was missed";
  EXPECT_EQ(window.calls, 1);
  EXPECT_EQ(window.produced, Produced::kWritten);
  EXPECT_EQ(window.need_wakeup_when_published, 0u);
  EXPECT_EQ(sring::load_relaxed(s.host.producer().wakeups), signals_before);
  EXPECT_EQ(sring::load_relaxed(s.host.consumer().need_wakeup), 0u) << "left armed although ready";
  s.release_all();
}

TEST(PrepareWait, EpollOverTwoRingsWakesForTheOneThatPublishes) {
  HandSteppedRing quiet, busy;
  sring::UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  ASSERT_TRUE(epoll.valid());
  for (HandSteppedRing* s : {&quiet, &busy}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = s;
    ASSERT_GE(s->ring->wait_fd(), 0);
    ASSERT_EQ(::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, s->ring->wait_fd(), &ev), 0);
  }
  // Both empty: both armed, so a publication on either must signal.
  ASSERT_FALSE(quiet.ring->prepare_wait());
  ASSERT_FALSE(busy.ring->prepare_wait());
  EXPECT_EQ(sring::load_relaxed(busy.host.consumer().need_wakeup), 1u);
  std::atomic<bool> woke{false};
  HandSteppedRing* fired = nullptr;
  std::thread sleeper([&] {
    epoll_event ev{};
    // No timeout: a lost wake-up hangs here and the watchdog below fails
    // the test, instead of a timeout passing it quietly.
    while (::epoll_wait(epoll.get(), &ev, 1, -1) != 1) {
    }
    fired = static_cast<HandSteppedRing*>(ev.data.ptr);
    woke.store(true, std::memory_order_release);  // pairs with the acquire below
  });
  ASSERT_EQ(busy.device.produce_block(), Produced::kWritten);
  const auto until = std::chrono::steady_clock::now() + kWatchdog;
  while (!woke.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(1ms);
  }
  if (!woke.load(std::memory_order_acquire)) {
    ADD_FAILURE() << "epoll_wait() never woke: the armed ring's producer did not signal";
    busy.kick();
  }
  sleeper.join();
  EXPECT_EQ(fired, &busy);
  quiet.ring->finish_wait(false);
  busy.ring->finish_wait(true);
  EXPECT_EQ(busy.ring->wakeups_received(), 1u);
  EXPECT_EQ(sring::load_relaxed(busy.host.consumer().need_wakeup), 0u);
  EXPECT_EQ(sring::load_relaxed(quiet.host.consumer().need_wakeup), 0u);
  auto span = busy.ring->acquire();
  ASSERT_TRUE(span.has_value());
  EXPECT_EQ(span->bytes, 8192u);
  busy.release_all();
}
