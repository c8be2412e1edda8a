// The user-space simulator's rings in 2 MiB pages (HostRing with
// RingPages::kHuge / kAuto; docs/abi.md, "Ring files"): the data really is
// mapped in 2 MiB pages, on both sides, the mirror holds across the end of
// the ring, samples go round trip, and a ring that cannot have huge pages
// says why (kHuge) or falls back saying so (kAuto).
//
// Huge pages must be reserved (/proc/sys/vm/nr_hugepages). Without them the
// tests that need them skip, unless SRING_TEST_HUGEPAGES=1 (scripts/test.sh
// reserves them and sets it), when they fail.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "sring/consumer.hpp"
#include "sring/ring.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/sim_device.hpp"
#include "sring/verify.hpp"

namespace {

using sring::Ring;
using sring::UniqueFd;
using sring::sim::HostRing;
using sring::sim::kHugePageSize;
using sring::sim::RingPages;

constexpr char kHugeDir[] = "/sys/kernel/mm/hugepages/hugepages-2048kB/";

std::optional<uint64_t> read_count(const char* name) {
  std::ifstream in(std::string(kHugeDir) + name);
  uint64_t v = 0;
  if (!(in >> v)) return std::nullopt;
  return v;
}

// 2 MiB pages free and not promised to a mapping already.
uint64_t available_huge_pages() {
  const uint64_t free = read_count("free_hugepages").value_or(0);
  return free - std::min(free, read_count("resv_hugepages").value_or(0));
}

bool huge_pages_required() {
  const char* v = std::getenv("SRING_TEST_HUGEPAGES");
  return v != nullptr && std::string(v) == "1";
}

// Skips (or, when SRING_TEST_HUGEPAGES=1, fails) unless `pages` free 2 MiB
// pages are there.
#define REQUIRE_HUGE_PAGES(pages)                                                                     \
  do {                                                                                                \
    if (available_huge_pages() < (pages)) {                                                           \
      if (huge_pages_required()) {                                                                    \
        FAIL() << "SRING_TEST_HUGEPAGES=1 but only " << available_huge_pages() << " of " << (pages)  \
               << " 2 MiB huge pages are free";                                                       \
      }                                                                                               \
      GTEST_SKIP() << "needs " << (pages) << " free 2 MiB huge pages (/proc/sys/vm/nr_hugepages)";    \
    }                                                                                                 \
  } while (0)

// The page size the kernel maps [addr, addr + length) with, from
// /proc/self/smaps: the KernelPageSize (kB) of the mapping holding addr, or
// 0 when no single mapping holds the whole range.
uint64_t kernel_page_kb(const void* addr, size_t length) {
  const auto begin = reinterpret_cast<uintptr_t>(addr);
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream header(line);
    if (header >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) {
      inside = lo <= begin && begin + length <= hi;
      continue;
    }
    if (inside && line.rfind("KernelPageSize:", 0) == 0) {
      std::istringstream field(line.substr(std::strlen("KernelPageSize:")));
      uint64_t kb = 0;
      field >> kb;
      return kb;
    }
  }
  return 0;
}

Ring attach(const HostRing& host) {
  auto ring = Ring::attach(std::move(*host.duplicate_fd()), std::move(*host.duplicate_data_fd()),
                           Ring::Access::kConsumer);
  EXPECT_TRUE(ring.has_value()) << ring.error().message;
  return std::move(*ring);
}

// The smallest power-of-two ring that needs more 2 MiB pages than are free.
uint64_t ring_too_large_for_free_pages() {
  uint64_t size = kHugePageSize;
  while (size / kHugePageSize <= available_huge_pages()) size *= 2;
  return size;
}

TEST(HugeRing, DataIsMappedIn2MiBPagesOnBothSides) {
  constexpr uint64_t kSize = 8 << 20;
  REQUIRE_HUGE_PAGES(kSize / kHugePageSize);
  auto host = HostRing::create(kSize, "huge-test", RingPages::kHuge);
  ASSERT_TRUE(host.has_value()) << host.error().message;
  EXPECT_EQ(host->pages(), RingPages::kHuge);
  EXPECT_TRUE(host->fallback_reason().empty());
  ASSERT_GE(host->data_fd(), 0) << "the data lives in a file of its own";
  // Producer side: both halves of the mirror, 2 MiB-aligned and in 2 MiB pages.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(host->data()) % kHugePageSize, 0u);
  EXPECT_EQ(kernel_page_kb(host->data(), kSize), 2048u) << "first half";
  EXPECT_EQ(kernel_page_kb(host->data() + kSize, kSize), 2048u) << "second half";
  // The ring file is the two control pages only, in ordinary pages.
  EXPECT_EQ(kernel_page_kb(&host->producer(), 4096), uint64_t(::sysconf(_SC_PAGESIZE)) / 1024);
  // Consumer side: ringlib maps the data file the same way.
  Ring ring = attach(*host);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ring.data()) % kHugePageSize, 0u);
  EXPECT_EQ(kernel_page_kb(ring.data(), kSize), 2048u) << "consumer's first half";
  EXPECT_EQ(kernel_page_kb(ring.data() + kSize, kSize), 2048u) << "consumer's second half";
}

TEST(HugeRing, TheMirrorHoldsAcrossTheEnd) {
  constexpr uint64_t kSize = 4 << 20;
  REQUIRE_HUGE_PAGES(kSize / kHugePageSize);
  auto host = HostRing::create(kSize, "huge-test", RingPages::kHuge);
  ASSERT_TRUE(host.has_value()) << host.error().message;
  Ring ring = attach(*host);
  // Written across the end of the ring through the producer's first half:
  // the consumer reads the same bytes contiguously and at the ring's start
  // through the other half.
  std::byte* w = host->data();
  for (uint64_t i = 0; i < 4096; ++i) w[(kSize - 2048 + i) % kSize] = std::byte(i * 7 + 1);
  for (uint64_t i = 0; i < 4096; ++i) {
    ASSERT_EQ(ring.data()[kSize - 2048 + i], std::byte(i * 7 + 1)) << "contiguous read at " << i;
  }
  EXPECT_EQ(ring.data()[0], std::byte(2048 * 7 + 1));
  // And written through the producer's second half, read through the first.
  std::memset(w + kSize + 100, 0x5a, 64);
  EXPECT_EQ(ring.data()[100], std::byte{0x5a});
  EXPECT_EQ(ring.data()[163], std::byte{0x5a});
  EXPECT_EQ(host->data()[100], std::byte{0x5a}) << "the producer's own mirror too";
}

TEST(HugeRing, SamplesGoRoundTripOverThreeLaps) {
  constexpr uint64_t kSize = 2 << 20;
  REQUIRE_HUGE_PAGES(kSize / kHugePageSize);
  auto host = HostRing::create(kSize, "huge-test", RingPages::kHuge);
  ASSERT_TRUE(host.has_value()) << host.error().message;
  // 48 KiB blocks do not divide the ring: blocks straddle its end.
  sring::sim::SimConfig config{.sample_rate = 1'000'000, .block_bytes = 48 << 10};
  config.pattern_seed = 7;
  sring::sim::SimDevice device(*host, config);
  device.begin();
  Ring ring = attach(*host);
  sring::Consumer consumer(ring);
  uint64_t bad = 0, samples = 0, blocks = 0;
  auto verify = [&](const sring::Block& block) {
    bad += sring::count_pattern_mismatches(block.samples().data(), block.first_sample(), block.samples().size(),
                                           config.pattern_seed);
    samples += block.samples().size();
    ++blocks;
  };
  const uint64_t laps_of_blocks = 3 * kSize / config.block_bytes;
  for (uint64_t k = 0; k < laps_of_blocks; ++k) {
    ASSERT_EQ(device.produce_block(), sring::sim::Produced::kWritten) << "block " << k;
    if (k % 8 != 7) continue;
    auto n = consumer.consume(verify);
    ASSERT_TRUE(n.has_value()) << n.error().message;
  }
  auto n = consumer.consume(verify);  // the rest
  ASSERT_TRUE(n.has_value()) << n.error().message;
  device.end();
  ASSERT_TRUE(consumer.end_of_stream());
  const auto end = consumer.finish();
  EXPECT_EQ(blocks, laps_of_blocks);
  EXPECT_EQ(bad, 0u) << "of " << samples << " samples";
  EXPECT_TRUE(end.exact()) << "missing " << end.missing_samples << ", dropped " << end.dropped_samples;
  EXPECT_EQ(end.missing_samples, 0u);
}

TEST(HugeRing, TooFewHugePagesIsAnErrorThatSaysWhy) {
  if (read_count("nr_overcommit_hugepages").value_or(0) != 0) {
    GTEST_SKIP() << "surplus huge pages are allowed (nr_overcommit_hugepages): a ring could get them";
  }
  const uint64_t size = ring_too_large_for_free_pages();
  auto host = HostRing::create(size, "huge-test", RingPages::kHuge);
  ASSERT_FALSE(host.has_value()) << "a " << (size >> 20) << " MiB ring in 2 MiB pages";
  EXPECT_EQ(host.error().code, ENOMEM);
  EXPECT_NE(host.error().message.find("nr_hugepages"), std::string::npos) << host.error().message;
  EXPECT_NE(host.error().message.find("2 MiB"), std::string::npos) << host.error().message;

  auto small = HostRing::create(1 << 20, "huge-test", RingPages::kHuge);
  ASSERT_FALSE(small.has_value()) << "a 1 MiB ring cannot be in 2 MiB pages";
  EXPECT_EQ(small.error().code, EINVAL);
  EXPECT_NE(small.error().message.find("smaller than one 2 MiB page"), std::string::npos) << small.error().message;
}

TEST(HugeRing, AutoFallsBackTo4KiBPagesSayingWhy) {
  if (read_count("nr_overcommit_hugepages").value_or(0) != 0) {
    GTEST_SKIP() << "surplus huge pages are allowed (nr_overcommit_hugepages): a ring could get them";
  }
  const uint64_t size = ring_too_large_for_free_pages();
  testing::internal::CaptureStderr();
  auto host = HostRing::create(size, "huge-test", RingPages::kAuto);
  const std::string said = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(host.has_value()) << host.error().message;
  EXPECT_EQ(host->pages(), RingPages::k4K);
  EXPECT_EQ(host->data_fd(), -1) << "the classic one-file layout";
  EXPECT_NE(host->fallback_reason().find("nr_hugepages"), std::string::npos) << host->fallback_reason();
  EXPECT_NE(said.find("using 4 KiB pages"), std::string::npos) << said;
  EXPECT_NE(said.find(host->fallback_reason()), std::string::npos) << said;
  EXPECT_EQ(std::count(said.begin(), said.end(), '\n'), 1) << "one line: " << said;
  // The fallen-back ring is an ordinary ring: one descriptor attaches.
  auto ring = Ring::attach(std::move(*host->duplicate_fd()), Ring::Access::kMonitor);
  EXPECT_TRUE(ring.has_value()) << ring.error().message;

  // A ring below one huge page is 4 KiB by rule: said by fallback_reason(), not on stderr.
  testing::internal::CaptureStderr();
  auto small = HostRing::create(1 << 20, "huge-test", RingPages::kAuto);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  ASSERT_TRUE(small.has_value()) << small.error().message;
  EXPECT_EQ(small->pages(), RingPages::k4K);
  EXPECT_NE(small->fallback_reason().find("smaller than one 2 MiB page"), std::string::npos);
}

TEST(HugeRing, AutoUsesHugePagesWhenThereAreSome) {
  constexpr uint64_t kSize = 2 << 20;
  REQUIRE_HUGE_PAGES(kSize / kHugePageSize);
  testing::internal::CaptureStderr();
  auto host = HostRing::create(kSize, "huge-test", RingPages::kAuto);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  ASSERT_TRUE(host.has_value()) << host.error().message;
  EXPECT_EQ(host->pages(), RingPages::kHuge);
}

// A consumer that knows only the one-file layout (docs/abi.md before the data
// file) refuses a ring in 2 MiB pages rather than misreading it, and ringlib
// checks the data file as it checks a ring file.
TEST(HugeRing, ConsumersCheckBothFiles) {
  constexpr uint64_t kSize = 2 << 20;
  REQUIRE_HUGE_PAGES(kSize / kHugePageSize);
  auto host = HostRing::create(kSize, "huge-test", RingPages::kHuge);
  ASSERT_TRUE(host.has_value()) << host.error().message;
  const int seals = ::fcntl(host->data_fd(), F_GET_SEALS);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);

  auto one_file = Ring::attach(std::move(*host->duplicate_fd()), Ring::Access::kConsumer);
  ASSERT_FALSE(one_file.has_value()) << "the ring file holds no data";
  EXPECT_EQ(one_file.error().code, EPROTO);

  // A data file of the wrong size, and one not sealed against shrinking.
  UniqueFd wrong(::memfd_create("wrong-data", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  ASSERT_EQ(::ftruncate(wrong.get(), kSize / 2), 0);
  ASSERT_EQ(::fcntl(wrong.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
  auto sized = Ring::attach(std::move(*host->duplicate_fd()), std::move(wrong), Ring::Access::kConsumer);
  ASSERT_FALSE(sized.has_value());
  EXPECT_NE(sized.error().message.find("data file"), std::string::npos) << sized.error().message;
  UniqueFd unsealed(::memfd_create("unsealed-data", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(unsealed.get(), kSize), 0);
  auto open = Ring::attach(std::move(*host->duplicate_fd()), std::move(unsealed), Ring::Access::kConsumer);
  ASSERT_FALSE(open.has_value());
  EXPECT_NE(open.error().message.find("F_SEAL_SHRINK"), std::string::npos) << open.error().message;
}

}  // namespace
