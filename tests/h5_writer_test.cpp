// H5Writer on blocks made here (the simulator makes only full blocks): a
// short last block is padded into its chunk and the extent ends with it; a
// block that would follow it off the chunk grid is refused; the pattern
// survives the round trip.
#include "tools/h5_writer.hpp"

#include <hdf5.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sring/sring_abi.h"

namespace sring::recording {
namespace {

constexpr uint32_t kBlockBytes = 1024;
constexpr uint64_t kFrames = (kBlockBytes - SRING_BLOCK_HEADER_SIZE) / 2;  // u16, one channel

FileHeader make_header() {
  FileHeader h{};
  std::memcpy(h.magic, kFileMagic, sizeof(h.magic));
  h.version = kFormatVersion;
  h.header_bytes = kHeaderBytes;
  h.trailer_bytes = kTrailerBytes;
  h.block_bytes = kBlockBytes;
  h.sample_format = SRING_FMT_U16;
  h.channels = 1;
  h.bits_per_sample = 16;
  h.abi_version = SRING_ABI_VERSION;
  return h;
}

// Blocks as a ring lays them out: frames[i] frames from first[i]; sample
// value = its frame index (mod 2^16).
std::vector<std::byte> make_blocks(const std::vector<uint64_t>& first, const std::vector<uint32_t>& frames) {
  std::vector<std::byte> memory(first.size() * kBlockBytes);
  for (size_t i = 0; i < first.size(); ++i) {
    auto* h = reinterpret_cast<sring_block_header*>(memory.data() + i * kBlockBytes);
    h->magic = SRING_BLOCK_MAGIC;
    h->total_bytes = kBlockBytes;
    h->sequence = i;
    h->first_sample = first[i];
    h->sample_count = frames[i];
    auto* samples = reinterpret_cast<uint16_t*>(memory.data() + i * kBlockBytes + SRING_BLOCK_HEADER_SIZE);
    for (uint32_t f = 0; f < frames[i]; ++f) samples[f] = static_cast<uint16_t>(first[i] + f);
  }
  return memory;
}

std::string temp_path(const char* name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

TEST(H5Writer, ShortLastBlockIsPaddedAndEndsTheExtent) {
  const std::string path = temp_path("short.h5");
  auto writer = H5Writer::create(path, make_header());
  ASSERT_TRUE(writer) << writer.error().message;
  // Two full blocks, one lost, then a short last one.
  const auto blocks = make_blocks({0, kFrames, 3 * kFrames}, {kFrames, kFrames, 100});
  ASSERT_TRUE(writer->append(blocks.data(), 3));
  FileTrailer trailer{};
  trailer.samples_produced = 3 * kFrames + 100;
  trailer.exact = 1;
  ASSERT_TRUE(writer->finish(trailer));
  EXPECT_EQ(trailer.blocks_stored, 3u);
  EXPECT_EQ(trailer.samples_stored, 2 * kFrames + 100);

  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  const hid_t set = H5Dopen2(file, "samples", H5P_DEFAULT);
  const hid_t space = H5Dget_space(set);
  hsize_t dims[2] = {};
  H5Sget_simple_extent_dims(space, dims, nullptr);
  EXPECT_EQ(dims[0], 3 * kFrames + 100);
  hsize_t chunks = 0;
  ASSERT_GE(H5Dget_num_chunks(set, space, &chunks), 0);
  EXPECT_EQ(chunks, 3u);
  std::vector<uint16_t> data(dims[0]);
  ASSERT_GE(H5Dread(set, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()), 0);
  for (uint64_t f = 0; f < dims[0]; ++f) {
    const bool lost = f >= 2 * kFrames && f < 3 * kFrames;
    ASSERT_EQ(data[f], lost ? 0 : static_cast<uint16_t>(f)) << "frame " << f;
  }
  // The gap table: the lost block's rows, and no more (the short block
  // ends the extent, so its padding is no row).
  const hid_t gaps = H5Dopen2(file, "gaps", H5P_DEFAULT);
  const hid_t gap_type = H5Tcreate(H5T_COMPOUND, 16);
  H5Tinsert(gap_type, "first_sample", 0, H5T_NATIVE_UINT64);
  H5Tinsert(gap_type, "samples", 8, H5T_NATIVE_UINT64);
  const hid_t gap_space = H5Dget_space(gaps);
  EXPECT_EQ(H5Sget_simple_extent_npoints(gap_space), 1);
  uint64_t gap[2] = {};
  ASSERT_GE(H5Dread(gaps, gap_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, gap), 0);
  EXPECT_EQ(gap[0], 2 * kFrames);
  EXPECT_EQ(gap[1], kFrames);
  H5Sclose(gap_space);
  H5Tclose(gap_type);
  H5Dclose(gaps);
  H5Sclose(space);
  H5Dclose(set);
  H5Fclose(file);
  ::unlink(path.c_str());
}

TEST(H5Writer, BlockOffTheChunkGridIsRefused) {
  const std::string path = temp_path("grid.h5");
  auto writer = H5Writer::create(path, make_header());
  ASSERT_TRUE(writer) << writer.error().message;
  // A short block, then one right after it: not on a chunk.
  const auto blocks = make_blocks({0, 100}, {100, kFrames});
  const Status status = writer->append(blocks.data(), 2);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, EPROTO);
  EXPECT_NE(status.error().message.find("not on a chunk"), std::string::npos) << status.error().message;
  EXPECT_EQ(writer->blocks_stored(), 1u);  // the short one, stored
  FileTrailer trailer{};
  trailer.samples_produced = 100 + kFrames;
  ASSERT_TRUE(writer->finish(trailer));
  EXPECT_EQ(writer->gaps(), 1u);  // the refused block's frames: fill
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace sring::recording
