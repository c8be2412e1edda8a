// ringlib's Ring against a real memfd ring: attach validation, the mirror,
// acquire/release and every way a shared page can lie.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>

#include "sring/ring.hpp"
#include "sring/stream.hpp"
#include "sring/verify.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"

namespace {

using sring::Ring;
using sring::sim::HostRing;
using sring::sim::SimConfig;
using sring::sim::SimDevice;

HostRing make_ring(uint64_t size = 64 * 1024) {
  auto ring = HostRing::create(size);
  EXPECT_TRUE(ring.has_value()) << ring.error().message;
  return std::move(*ring);
}

sring::Expected<Ring> attach(HostRing& host, Ring::Access access = Ring::Access::kConsumer) {
  auto fd = host.duplicate_fd();
  EXPECT_TRUE(fd.has_value());
  return Ring::attach(std::move(*fd), access);
}

// Attach must fail with this errno and a message that mentions `words`.
void expect_attach_error(HostRing& host, int code, const std::string& words) {
  auto ring = attach(host);
  ASSERT_FALSE(ring.has_value()) << "attach accepted a bad ring (" << words << ")";
  EXPECT_EQ(ring.error().code, code) << ring.error().message;
  EXPECT_NE(ring.error().message.find(words), std::string::npos) << ring.error().message;
}

TEST(Attach, ValidRingAttaches) {
  auto host = make_ring();
  auto ring = attach(host);
  ASSERT_TRUE(ring.has_value()) << ring.error().message;
  EXPECT_EQ(ring->ring_size(), 64u * 1024);
  EXPECT_FALSE(ring->is_device());
  EXPECT_EQ(ring->tail(), 0u);
}

TEST(Attach, EachIdentityMismatchHasItsOwnError) {
  {
    auto host = make_ring();
    host.producer().magic = 0xdeadbeef;
    expect_attach_error(host, EPROTO, "bad magic 0xdeadbeef");
  }
  {
    auto host = make_ring();
    host.producer().abi_version = (SRING_ABI_VERSION_MAJOR + 1) << 16;
    expect_attach_error(host, EPROTO, "ABI version 2.0");
  }
  {
    auto host = make_ring();
    host.producer().page_size = 65536;
    expect_attach_error(host, EINVAL, "65536-byte pages");
  }
  {
    auto host = make_ring();
    host.producer().ring_size = 3 * 65536;
    expect_attach_error(host, EPROTO, "not a power of two");
  }
  {
    auto host = make_ring();
    host.producer().data_offset = 0;
    expect_attach_error(host, EPROTO, "region offsets");
  }
  {
    auto host = make_ring();
    host.producer().block_bytes = 100;
    expect_attach_error(host, EPROTO, "block size 100");
  }
  {
    auto host = make_ring();
    host.producer().ring_size = 128 * 1024;  // the file holds only 64 KiB of data
    expect_attach_error(host, EPROTO, "ring file is");
  }
}

TEST(Attach, RefusesWhatIsNotARing) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  ::close(pipe_fds[1]);
  auto from_pipe = Ring::attach(sring::UniqueFd(pipe_fds[0]), Ring::Access::kConsumer);
  ASSERT_FALSE(from_pipe.has_value());
  EXPECT_EQ(from_pipe.error().code, EINVAL);

  auto missing = Ring::open("/nonexistent/sring9", Ring::Access::kMonitor);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_NE(missing.error().message.find("/nonexistent/sring9"), std::string::npos);

  // A ring file is sealed: nobody can cut it under a consumer's mapping.
  auto sealed = HostRing::create(64 * 1024);
  ASSERT_TRUE(sealed.has_value());
  EXPECT_EQ(::ftruncate(sealed->fd(), 100), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::ftruncate(sealed->fd(), 1 << 30), -1);
  EXPECT_EQ(errno, EPERM);
}

TEST(Attach, TailLeftOutsideTheRingIsRefused) {
  auto host = make_ring();
  host.producer().head = 1 << 20;
  host.consumer().tail = 0;  // more than a ring behind head
  expect_attach_error(host, EPROTO, "tail");
}

TEST(Mirror, BlocksStraddlingTheEndAreContiguous) {
  // 19200-byte blocks do not divide 64 KiB: every few blocks one runs over
  // the end of the ring and must read on through the mirror.
  auto host = make_ring();
  SimConfig config;
  config.block_bytes = 19200;
  config.sample_rate = 0;
  SimDevice device(host, config);
  device.begin();
  auto ring = attach(host);
  ASSERT_TRUE(ring.has_value());
  sring::StreamConsumer consumer(*ring, true);
  consumer.accounting().expect_start(0, 0);
  int straddling = 0;
  for (int i = 0; i < 40; ++i) {
    const uint64_t pos = host.producer().head;
    straddling += (pos % ring->ring_size()) + config.block_bytes > ring->ring_size();
    ASSERT_EQ(device.produce_block(), sring::sim::Produced::kWritten);
    auto n = consumer.consume_available();
    ASSERT_TRUE(n.has_value()) << n.error().message;
    ASSERT_EQ(*n, 1u);
  }
  EXPECT_GE(straddling, 5);
  EXPECT_EQ(consumer.counters().blocks, 40u);
  EXPECT_EQ(consumer.counters().corrupted_samples, 0u);
  EXPECT_EQ(consumer.counters().lost_samples, 0u);
}

TEST(Acquire, HeadRunningPastTheRingIsAnErrorNotACrash) {
  auto host = make_ring();
  auto ring = attach(host);
  ASSERT_TRUE(ring.has_value());
  host.producer().head = ring->ring_size() + 64;
  auto span = ring->acquire();
  ASSERT_FALSE(span.has_value());
  EXPECT_EQ(span.error().code, EPROTO);
  host.producer().head = uint64_t(-64);  // "behind" tail
  EXPECT_FALSE(ring->acquire().has_value());
}

TEST(Acquire, LyingBlockHeadersAreRejected) {
  auto host = make_ring();
  SimConfig config;
  config.sample_rate = 0;
  SimDevice device(host, config);
  device.begin();
  ASSERT_EQ(device.produce_block(), sring::sim::Produced::kWritten);
  auto ring = attach(host);
  ASSERT_TRUE(ring.has_value());
  auto* header = reinterpret_cast<sring_block_header*>(host.data());
  const sring_block_header good = *header;

  struct Case {
    const char* what;
    void (*corrupt)(sring_block_header&);
  } cases[] = {
      {"magic", [](sring_block_header& h) { h.magic = 0; }},
      {"length past the span", [](sring_block_header& h) { h.total_bytes = 1u << 30; }},
      {"length unaligned", [](sring_block_header& h) { h.total_bytes = 8191; }},
      {"length below header", [](sring_block_header& h) { h.total_bytes = 0; }},
      {"too many samples", [](sring_block_header& h) { h.sample_count = 1u << 31; }},
      {"unknown format", [](sring_block_header& h) { h.sample_format = 99; }},
  };
  for (const auto& c : cases) {
    *header = good;
    c.corrupt(*header);
    auto span = ring->acquire();
    ASSERT_TRUE(span.has_value());
    sring::BlockCursor cursor(*span, ring->max_block_bytes());
    auto block = cursor.next();
    EXPECT_FALSE(block.has_value()) << c.what;
    if (!block) {
      EXPECT_EQ(block.error().code, EPROTO) << c.what;
    }
  }
  *header = good;
  auto span = ring->acquire();
  sring::BlockCursor cursor(*span, ring->max_block_bytes());
  auto block = cursor.next();
  ASSERT_TRUE(block.has_value());
  EXPECT_NE(*block, nullptr);
}

TEST(Release, PublishesTailAndRefusesForeignPositions) {
  auto host = make_ring();
  SimConfig config;
  config.sample_rate = 0;
  SimDevice device(host, config);
  device.begin();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(device.produce_block(), sring::sim::Produced::kWritten);
  auto ring = attach(host);
  ASSERT_TRUE(ring.has_value());
  auto span = ring->acquire();
  ASSERT_TRUE(span.has_value());
  EXPECT_EQ(span->bytes, 3u * config.block_bytes);
  ASSERT_TRUE(ring->release(span->begin + config.block_bytes).has_value());
  EXPECT_EQ(host.consumer().tail, config.block_bytes);
  auto beyond = ring->release(span->end() + 64);  // beyond what was acquired
  ASSERT_FALSE(beyond.has_value()) << "a release past what was acquired is an error";
  EXPECT_EQ(beyond.error_code(), std::errc::invalid_argument);
  EXPECT_NE(beyond.error().message.find("outside what was acquired"), std::string::npos);
  EXPECT_EQ(host.consumer().tail, config.block_bytes) << "and moves nothing";
  EXPECT_FALSE(ring->release(0).has_value()) << "behind the tail";
  EXPECT_EQ(host.consumer().tail, config.block_bytes);
  ASSERT_TRUE(ring->release(span->end()).has_value());
  EXPECT_EQ(host.consumer().tail, 3u * config.block_bytes);
}

TEST(Monitor, ReadsWithoutDisturbing) {
  auto host = make_ring();
  auto monitor = attach(host, Ring::Access::kMonitor);
  ASSERT_TRUE(monitor.has_value());
  host.producer().head = 8192;
  EXPECT_EQ(monitor->head(), 8192u);
  EXPECT_EQ(monitor->shared_tail(), 0u);
  auto waited = monitor->wait(sring::WaitStrategy::kEventfd, std::chrono::milliseconds(1));
  // Data is there, so no sleep is needed; a monitor could not have slept.
  ASSERT_TRUE(waited.has_value());
  EXPECT_EQ(host.consumer().need_wakeup, 0u);
}

TEST(Wait, TimesOutWithoutDataAndWithoutEventfdSaysWhy) {
  auto host = make_ring();
  auto ring = attach(host);
  ASSERT_TRUE(ring.has_value());
  host.producer().state = SRING_STATE_RUNNING;
  auto spun = ring->wait(sring::WaitStrategy::kSpin, std::chrono::milliseconds(5));
  ASSERT_TRUE(spun.has_value());
  EXPECT_FALSE(*spun);
  auto blocked = ring->wait(sring::WaitStrategy::kEventfd, std::chrono::milliseconds(5));
  ASSERT_FALSE(blocked.has_value());
  EXPECT_NE(blocked.error().message.find("eventfd"), std::string::npos);
  // A ring file's eventfd comes from its producer; none here, so nothing
  // signals it and the wait runs out.
  ASSERT_TRUE(ring->use_eventfd(sring::UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))).has_value());
  auto timed_out = ring->wait(sring::WaitStrategy::kEventfd, std::chrono::milliseconds(5));
  ASSERT_TRUE(timed_out.has_value());
  EXPECT_FALSE(*timed_out);
  EXPECT_EQ(host.consumer().need_wakeup, 0u) << "a timed-out wait must disarm its wake-up";
}

TEST(Wait, EnableEventfdOnARingFileIsRefusedAndSaysWhatToDo) {
  // Nothing would ever signal an eventfd the consumer makes for itself on a
  // ring file: only the producer's own (handed over) eventfd works.
  auto host = make_ring();
  auto ring = attach(host);
  ASSERT_TRUE(ring.has_value());
  auto enabled = ring->enable_eventfd();
  ASSERT_FALSE(enabled.has_value()) << "enable_eventfd() accepted a ring file";
  EXPECT_EQ(enabled.error().code, EOPNOTSUPP) << enabled.error().message;
  EXPECT_NE(enabled.error().message.find("use_eventfd()"), std::string::npos) << enabled.error().message;
  EXPECT_NE(enabled.error().message.find("ring file"), std::string::npos) << enabled.error().message;

  // The same for a ring adopted from memory: there is no device either.
  auto adopted = Ring::attach_memory({&host.producer(), &host.consumer(), host.data()},
                                     Ring::Access::kConsumer);
  ASSERT_TRUE(adopted.has_value()) << adopted.error().message;
  auto adopted_enabled = adopted->enable_eventfd();
  ASSERT_FALSE(adopted_enabled.has_value());
  EXPECT_EQ(adopted_enabled.error().code, EOPNOTSUPP);

  // The producer's eventfd, handed over, is what works.
  sring::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(efd.valid());
  SimConfig config;
  config.sample_rate = 0;
  SimDevice device(host, config);
  ASSERT_TRUE(device.set_eventfd(efd.get()).has_value());
  ASSERT_TRUE(ring->use_eventfd(std::move(efd)).has_value());
}

TEST(Wait, StoppedRingWithABlockBelowTheWatermarkIsReady) {
  // Once the producer has stopped, no more will come to reach the
  // watermark: what is there is ready, even for a wait forever.
  auto host = make_ring();
  auto ring = attach(host);
  ASSERT_TRUE(ring.has_value());
  ASSERT_TRUE(ring->use_eventfd(sring::UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK))).has_value());
  SimConfig config;
  config.sample_rate = 0;
  SimDevice device(host, config);
  device.begin();
  ASSERT_EQ(device.produce_block(), sring::sim::Produced::kWritten);
  device.end();
  ring->set_wakeup_watermark(ring->ring_size() / 2);
  auto waited = ring->wait(sring::WaitStrategy::kEventfd, sring::kWaitForever);
  ASSERT_TRUE(waited.has_value());
  EXPECT_TRUE(*waited);
}

TEST(AttachMemory, AdoptsAnInProcessRingWithoutOwningIt) {
  auto host = make_ring();
  SimConfig config;
  config.sample_rate = 0;
  SimDevice device(host, config);
  device.begin();
  for (int i = 0; i < 3; ++i) ASSERT_EQ(device.produce_block(), sring::sim::Produced::kWritten);
  {
    auto ring = Ring::attach_memory({&host.producer(), &host.consumer(), host.data()},
                                    Ring::Access::kConsumer);
    ASSERT_TRUE(ring.has_value()) << ring.error().message;
    EXPECT_EQ(ring->fd(), -1);
    EXPECT_FALSE(ring->is_device());
    EXPECT_EQ(ring->ring_size(), host.ring_size());
    sring::StreamConsumer consumer(*ring, true);
    consumer.accounting().expect_start(0, 0);
    auto n = consumer.consume_available();
    ASSERT_TRUE(n.has_value()) << n.error().message;
    EXPECT_EQ(*n, 3u);
    EXPECT_EQ(consumer.counters().corrupted_samples, 0u);
    EXPECT_EQ(host.consumer().tail, 3u * config.block_bytes) << "releases into the same page";
  }
  // The Ring is gone; the memory it adopted is still the producer's.
  ASSERT_EQ(device.produce_block(), sring::sim::Produced::kWritten);
  EXPECT_EQ(reinterpret_cast<const sring_block_header*>(host.data() + 3 * config.block_bytes)->magic,
            SRING_BLOCK_MAGIC);
}

TEST(AttachMemory, ValidatesLikeAttach) {
  auto host = make_ring();
  auto missing = Ring::attach_memory({&host.producer(), nullptr, host.data()}, Ring::Access::kConsumer);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, EINVAL);
  host.producer().magic = 0xdeadbeef;
  auto bad = Ring::attach_memory({&host.producer(), &host.consumer(), host.data()},
                                 Ring::Access::kConsumer);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, EPROTO);
  host.producer().magic = SRING_MAGIC;
  host.producer().head = 1 << 20;  // more than a ring ahead of tail
  auto far = Ring::attach_memory({&host.producer(), &host.consumer(), host.data()},
                                 Ring::Access::kConsumer);
  ASSERT_FALSE(far.has_value());
  EXPECT_NE(far.error().message.find("tail"), std::string::npos);
}

}  // namespace
