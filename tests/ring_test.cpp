// ringlib's Ring against a real memfd ring: attach validation, the mirror,
// acquire/release and every way a shared page can lie.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>

#include "sring/device.hpp"
#include "sring/format.hpp"
#include "sring/ring.hpp"
#include "sring/sring_pattern.h"
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

// The page's layout is configuration, not identity: a layout this ringlib
// does not know (a later minor's format, or a page caught halfway through a
// SET_CONFIG) does not refuse the ring; Ring::layout() shows it as it is
// and each block's own header is what gets checked (BlockCursor).
TEST(Attach, AnUnknownPageLayoutDoesNotRefuseTheRing) {
  auto host = make_ring();
  host.producer().sample_format = 99;
  host.producer().channels = SRING_MAX_CHANNELS + 1;
  host.producer().bits_per_sample = 12;
  auto ring = attach(host);
  ASSERT_TRUE(ring.has_value()) << ring.error().message;
  EXPECT_FALSE(ring->layout().valid());
  EXPECT_EQ(ring->layout(), (sring::SampleLayout{99, SRING_MAX_CHANNELS + 1, 12}));
}

// The producer page's layout: what a 1.4 producer writes, and a 1.3 page
// (channels and bits_per_sample zero) read as one channel of 16 bits.
TEST(Attach, LayoutOfTheProducerPage) {
  auto host = make_ring();
  SimDevice device(host, SimConfig{.sample_format = SRING_FMT_CF32, .channels = 3});
  auto ring = attach(host);
  ASSERT_TRUE(ring.has_value()) << ring.error().message;
  EXPECT_EQ(ring->layout(), (sring::SampleLayout{SRING_FMT_CF32, 3, 64}));
  EXPECT_EQ(host.producer().channels, 3u);
  EXPECT_EQ(host.producer().bits_per_sample, 64u);

  auto old = make_ring();
  old.producer().channels = 0;
  old.producer().bits_per_sample = 0;
  old.producer().sample_format = SRING_FMT_S16;
  auto from_old = attach(old);
  ASSERT_TRUE(from_old.has_value()) << from_old.error().message;
  EXPECT_EQ(from_old->layout(), (sring::SampleLayout{SRING_FMT_S16, 1, 16}));
}

// Device::configure() says what every driver would refuse before it asks
// the driver; /dev/null stands in for the device (a character device that
// answers every ioctl with ENOTTY), so a configuration that passes the
// checks reaches the ioctl.
TEST(Device, ConfigureRefusesReservedFieldsChannelsAndFormatsBeforeTheIoctl) {
  auto device = sring::Device::open("/dev/null");
  ASSERT_TRUE(device.has_value()) << device.error().message;
  struct Case {
    const char* what;
    void (*change)(sring_config&);
    const char* words;
  } cases[] = {
      {"reserved0", [](sring_config& c) { c.reserved0 = 1; }, "reserved"},
      {"reserved1", [](sring_config& c) { c.reserved1 = 1; }, "reserved"},
      {"flags", [](sring_config& c) { c.flags = 1; }, "flags"},
      {"257 channels", [](sring_config& c) { c.channels = SRING_MAX_CHANNELS + 1; }, "257 channels"},
      {"format 9", [](sring_config& c) { c.sample_format = SRING_FMT_LAST_STANDARD + 1; }, "sample format 9"},
      {"format 0", [](sring_config& c) { c.sample_format = 0; }, "sample format 0"},
  };
  for (const auto& c : cases) {
    sring_config config = sring::default_device_config();
    c.change(config);
    auto configured = device->configure(config);
    ASSERT_FALSE(configured.has_value()) << c.what;
    EXPECT_EQ(configured.error().code, EINVAL) << c.what << ": " << configured.error().message;
    EXPECT_NE(configured.error().message.find(c.words), std::string::npos) << configured.error().message;
  }
  // What passes reaches the driver (here: /dev/null's ENOTTY): 0 channels
  // (a 1.3 caller: 1), 256, a device format the driver may have declared.
  for (auto change : {+[](sring_config& c) { c.channels = 0; }, +[](sring_config& c) { c.channels = 256; },
                      +[](sring_config& c) { c.sample_format = SRING_FMT_SIM_PACKED12; }}) {
    sring_config config = sring::default_device_config();
    EXPECT_EQ(config.channels, 1u);
    change(config);
    auto configured = device->configure(config);
    ASSERT_FALSE(configured.has_value());
    EXPECT_EQ(configured.error().code, ENOTTY) << configured.error().message;
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
      // ABI 1.4: formats, channels, bits (docs/abi.md, "Sample formats and channels").
      {"format after the last standard one", [](sring_block_header& h) { h.sample_format = SRING_FMT_LAST_STANDARD + 1; }},
      {"bits_per_sample not the format's", [](sring_block_header& h) { h.bits_per_sample = 8; }},
      {"bits_per_sample not the format's, bytes agreeing",
       [](sring_block_header& h) {
         h.bits_per_sample = 8;
         h.bytes_per_sample = 1;
       }},
      {"bytes_per_sample not bits / 8", [](sring_block_header& h) { h.bytes_per_sample = 1; }},
      {"channels 0 from a 1.4 producer (bits set)", [](sring_block_header& h) { h.channels = 0; }},
      {"bits 0 from a 1.4 producer (channels set)", [](sring_block_header& h) { h.bits_per_sample = 0; }},
      {"more channels than SRING_MAX_CHANNELS",
       [](sring_block_header& h) {
         h.channels = SRING_MAX_CHANNELS + 1;
         h.sample_count = 1;
       }},
      {"payload larger than the block (channels)", [](sring_block_header& h) { h.channels = 2; }},
      {"payload larger than the block by one frame", [](sring_block_header& h) { h.sample_count += 1; }},
      {"device format without bits", [](sring_block_header& h) {
         h.sample_format = 0x8001;
         h.bits_per_sample = 0;
         h.channels = 0;
         h.bytes_per_sample = 0;
       }},
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

// What the cursor accepts of the layouts: a 1.4 block of the simulator's,
// a 1.3 block (channels and bits_per_sample zero: one channel of
// bytes_per_sample), a full block to the last byte, and a device format it
// does not know (its bits are the driver's to declare; it moves its bytes).
TEST(Acquire, LayoutsTheCursorAccepts) {
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
  EXPECT_EQ(good.channels, 1u);
  EXPECT_EQ(good.bits_per_sample, 16u);
  const uint32_t payload_room = good.total_bytes - SRING_BLOCK_HEADER_SIZE;

  struct Case {
    const char* what;
    void (*change)(sring_block_header&);
    sring::SampleLayout layout;
  } cases[] = {
      {"as written", [](sring_block_header&) {}, {SRING_FMT_U16, 1, 16}},
      {"a 1.3 header", [](sring_block_header& h) { h.channels = h.bits_per_sample = 0; }, {SRING_FMT_U16, 1, 16}},
      {"a 1.3 s16 header",
       [](sring_block_header& h) {
         h.sample_format = SRING_FMT_S16;
         h.channels = h.bits_per_sample = 0;
       },
       {SRING_FMT_S16, 1, 16}},
      {"4 channels of u8 filling the block",
       [](sring_block_header& h) {
         h.sample_format = SRING_FMT_U8;
         h.channels = 4;
         h.bits_per_sample = 8;
         h.bytes_per_sample = 1;
         h.sample_count = (h.total_bytes - SRING_BLOCK_HEADER_SIZE) / 4;
       },
       {SRING_FMT_U8, 4, 8}},
      {"another driver's 20-bit format, 3 channels",
       [](sring_block_header& h) {
         h.sample_format = 0x8123;
         h.channels = 3;
         h.bits_per_sample = 20;
         h.bytes_per_sample = 0;
         h.sample_count = (h.total_bytes - SRING_BLOCK_HEADER_SIZE) * 8 / 60;
       },
       {0x8123, 3, 20}},
      {"256 channels of cf32",
       [](sring_block_header& h) {
         h.sample_format = SRING_FMT_CF32;
         h.channels = SRING_MAX_CHANNELS;
         h.bits_per_sample = 64;
         h.bytes_per_sample = 8;
         h.sample_count = (h.total_bytes - SRING_BLOCK_HEADER_SIZE) / (8 * SRING_MAX_CHANNELS);
       },
       {SRING_FMT_CF32, SRING_MAX_CHANNELS, 64}},
  };
  for (const auto& c : cases) {
    *header = good;
    c.change(*header);
    auto span = ring->acquire();
    ASSERT_TRUE(span.has_value());
    sring::BlockCursor cursor(*span, ring->max_block_bytes());
    auto block = cursor.next();
    ASSERT_TRUE(block.has_value()) << c.what << ": " << block.error().message;
    ASSERT_NE(*block, nullptr) << c.what;
    const sring::SampleLayout layout = sring::SampleLayout::from_header(cursor.header());
    EXPECT_EQ(layout, c.layout) << c.what;
    EXPECT_LE(layout.payload_bytes(cursor.header().sample_count), payload_room) << c.what;
    EXPECT_EQ(cursor.payload(), span->data + SRING_BLOCK_HEADER_SIZE) << c.what;
  }
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
