// Ring files (docs/abi.md, "Ring files"): what makes a memfd ring as safe to
// attach to as the device.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "sring/ring.hpp"
#include "sring/sim/host_ring.hpp"

namespace {

using sring::Ring;
using sring::UniqueFd;

// A memfd laid out as a ring, identity valid, seals as given.
UniqueFd ring_file(unsigned seals) {
  const auto page = static_cast<uint32_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t ring_size = 64 * 1024;
  UniqueFd fd(::memfd_create("unsealed-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(::ftruncate(fd.get(), 2 * page + ring_size), 0);
  sring_producer_page p{};
  p.magic = SRING_MAGIC;
  p.abi_version = SRING_ABI_VERSION;
  p.page_size = page;
  p.ring_size = ring_size;
  p.consumer_offset = page;
  p.data_offset = 2 * page;
  p.block_bytes = 8192;
  p.sample_format = SRING_FMT_U16;
  EXPECT_EQ(::pwrite(fd.get(), &p, sizeof(p), 0), static_cast<ssize_t>(sizeof(p)));
  if (seals != 0) {
    EXPECT_EQ(::fcntl(fd.get(), F_ADD_SEALS, seals), 0);
  }
  return fd;
}

TEST(RingFile, AnUnsealedFileIsRefused) {
  // Its producer could shrink it under our mapping: SIGBUS on the next read.
  auto unsealed = Ring::attach(ring_file(0), Ring::Access::kConsumer);
  ASSERT_FALSE(unsealed.has_value());
  EXPECT_EQ(unsealed.error().code, EPROTO);
  EXPECT_NE(unsealed.error().message.find("F_SEAL_SHRINK"), std::string::npos) << unsealed.error().message;

  auto grow_only = Ring::attach(ring_file(F_SEAL_GROW), Ring::Access::kMonitor);
  EXPECT_FALSE(grow_only.has_value()) << "sealed against growing is not enough";

  auto sealed = Ring::attach(ring_file(F_SEAL_SHRINK), Ring::Access::kConsumer);
  EXPECT_TRUE(sealed.has_value()) << sealed.error().message;
}

TEST(RingFile, TheSimulatorsRingIsSealedForGood) {
  auto host = sring::sim::HostRing::create(64 * 1024);
  ASSERT_TRUE(host.has_value());
  const int seals = ::fcntl(host->fd(), F_GET_SEALS);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  EXPECT_EQ(::fcntl(host->fd(), F_ADD_SEALS, 0), -1) << "the seals cannot be changed";
  EXPECT_EQ(::ftruncate(host->fd(), 4096), -1);
  auto ring = Ring::attach(*host->duplicate_fd(), Ring::Access::kConsumer);
  EXPECT_TRUE(ring.has_value()) << ring.error().message;
}

}  // namespace
