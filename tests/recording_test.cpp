// The recording format and its writer, reader, checker and replay source,
// without processes: a simulated device fills a ring, the Consumer's pull
// API holds blocks, RecordingWriter writes them from the ring, and
// RecordingFile/check()/RecordingSource read them back.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "consumer/record_writer.hpp"
#include "sring/consumer.hpp"
#include "sring/recording.hpp"
#include "sring/ring.hpp"
#include "sring/sim/host_ring.hpp"
#include "sring/sim/replay.hpp"
#include "sring/sim/sim_device.hpp"

namespace {

using namespace sring;
using sring::sim::HostRing;
using sring::sim::Produced;
using sring::sim::SimConfig;
using sring::sim::SimDevice;

constexpr uint64_t kRingSize = 256 * 1024;

SimConfig config(uint32_t block_bytes = 8192) {
  SimConfig c;
  c.block_bytes = block_bytes;
  c.pattern_seed = 7;
  return c;
}

std::string temp_path(const char* name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name + "-" + std::to_string(::getpid());
}

recording::FileHeader header_for(const Ring& ring) {
  recording::FileHeader header{};
  std::memcpy(header.magic, recording::kFileMagic, sizeof(header.magic));
  header.version = recording::kFormatVersion;
  header.header_bytes = recording::kHeaderBytes;
  header.trailer_bytes = recording::kTrailerBytes;
  header.block_bytes = load_relaxed(ring.producer().block_bytes);
  header.sample_rate = load_relaxed(ring.producer().sample_rate);
  header.sample_format = load_relaxed(ring.producer().sample_format);
  header.pattern_seed = load_relaxed(ring.producer().pattern_seed);
  header.ring_size = ring.ring_size();
  return header;
}

// A device that produced `blocks` blocks (dropping `drop_every`-th ones when
// asked), all recorded to path; returns the trailer written.
struct Recorded {
  recording::FileTrailer trailer{};
  uint64_t samples_per_block = 0;
};

Recorded record(const std::string& path, uint64_t blocks, uint64_t drop_after = 0, uint32_t block_bytes = 8192,
                std::unique_ptr<sim::SampleSource> source = nullptr) {
  auto host = HostRing::create(kRingSize);
  EXPECT_TRUE(host);
  SimDevice device(*host, config(block_bytes));
  if (source) device.set_source(std::move(source));
  auto ring = Ring::attach(std::move(*host->duplicate_fd()), Ring::Access::kConsumer);
  EXPECT_TRUE(ring);
  auto writer = recording::RecordingWriter::create(path, header_for(*ring), true);
  EXPECT_TRUE(writer) << writer.error().message;
  Consumer consumer(*ring);
  device.begin();
  uint64_t made = 0;
  auto drain = [&] {
    for (;;) {
      auto block = consumer.next();
      EXPECT_TRUE(block);
      if (!*block) break;
      const auto* at = reinterpret_cast<const std::byte*>((*block)->samples().data()) - SRING_BLOCK_HEADER_SIZE;
      EXPECT_TRUE(writer->append(at, 1));
      EXPECT_TRUE(consumer.done(1));
    }
    consumer.flush();
  };
  while (made < blocks) {
    const Produced produced = device.produce_block();
    if (produced == Produced::kExhausted) break;
    ++made;
    // Drain only until drop_after: then the ring fills and the device drops.
    if (drop_after == 0 || made < drop_after || made > drop_after + 60) drain();
  }
  device.end();
  drain();
  EXPECT_TRUE(consumer.end_of_stream());
  const Counters c = consumer.snapshot();
  Recorded result;
  result.samples_per_block = (block_bytes - SRING_BLOCK_HEADER_SIZE) / 2;
  std::memcpy(result.trailer.magic, recording::kTrailerMagic, sizeof(result.trailer.magic));
  result.trailer.blocks_delivered = c.blocks;
  result.trailer.samples_delivered = c.samples;
  result.trailer.blocks_produced = c.blocks_produced;
  result.trailer.samples_produced = c.samples_produced;
  result.trailer.blocks_dropped = c.blocks_dropped;
  result.trailer.samples_dropped = c.samples_dropped;
  result.trailer.exact = c.exact;
  EXPECT_TRUE(writer->finish(result.trailer, result.samples_per_block));
  return result;
}

TEST(Recording, RoundTripEveryBlockStoredAndVerified) {
  const std::string path = temp_path("round-trip");
  record(path, 200);
  auto file = recording::RecordingFile::open(path);
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->blocks(), 200u);
  ASSERT_TRUE(file->trailer().has_value());
  const auto report = recording::check(*file, true);
  EXPECT_EQ(report.samples, 200u * (8192 - 64) / 2);
  EXPECT_EQ(report.gaps, 0u);
  EXPECT_EQ(report.corrupted_samples, 0u);
  EXPECT_TRUE(report.trailer_matches);
  EXPECT_TRUE(report.accounting_exact) << report.problem;
  ::unlink(path.c_str());
}

TEST(Recording, DropsShowAsGapsCountedExactly) {
  const std::string path = temp_path("drops");
  const Recorded r = record(path, 300, 100);
  ASSERT_GT(r.trailer.samples_dropped, 0u);
  auto file = recording::RecordingFile::open(path);
  ASSERT_TRUE(file);
  const auto report = recording::check(*file, true);
  EXPECT_GT(report.gaps, 0u);
  EXPECT_EQ(report.missing_samples + report.lost_at_end, r.trailer.samples_dropped);
  EXPECT_TRUE(report.accounting_exact) << report.problem;
  ::unlink(path.c_str());
}

TEST(Recording, AccountingThatDoesNotAddUpIsCaught) {
  const std::string path = temp_path("inexact");
  record(path, 50);
  // Claim one more sample produced than the file and its losses explain.
  auto file = recording::RecordingFile::open(path);
  ASSERT_TRUE(file);
  recording::FileTrailer trailer = *file->trailer();
  trailer.samples_produced += 1;
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, &trailer, sizeof(trailer), static_cast<off_t>(file->file_size() - sizeof(trailer))),
            static_cast<ssize_t>(sizeof(trailer)));
  ::close(fd);
  auto reread = recording::RecordingFile::open(path);
  ASSERT_TRUE(reread);
  EXPECT_FALSE(recording::check(*reread, false).accounting_exact);
  ::unlink(path.c_str());
}

TEST(Recording, CutShortReadableToTheLastCompleteBlock) {
  const std::string path = temp_path("cut");
  record(path, 40);
  // A crash in the middle of block 30: no trailer, 30 complete blocks.
  ASSERT_EQ(::truncate(path.c_str(), recording::kHeaderBytes + 30 * 8192 + 1000), 0);
  auto file = recording::RecordingFile::open(path);
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_FALSE(file->trailer().has_value());
  EXPECT_EQ(file->blocks(), 30u);
  EXPECT_EQ(file->partial_bytes(), 1000u);
  const auto report = recording::check(*file, true);
  EXPECT_EQ(report.blocks, 30u);
  EXPECT_EQ(report.corrupted_samples, 0u);
  EXPECT_TRUE(report.problem.empty()) << report.problem;
  ::unlink(path.c_str());
}

TEST(Recording, CorruptedSampleIsFound) {
  const std::string path = temp_path("corrupt");
  record(path, 10);
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const uint16_t bad = 0xdead;
  ASSERT_EQ(::pwrite(fd, &bad, 2, recording::kHeaderBytes + 3 * 8192 + 64 + 100), 2);
  ::close(fd);
  auto file = recording::RecordingFile::open(path);
  ASSERT_TRUE(file);
  EXPECT_EQ(recording::check(*file, true).corrupted_samples, 1u);
  ::unlink(path.c_str());
}

TEST(Recording, NotARecordingIsRefusedClearly) {
  const std::string path = temp_path("junk");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  std::vector<char> junk(8192, 'x');
  ASSERT_EQ(::write(fd, junk.data(), junk.size()), 8192);
  ::close(fd);
  auto file = recording::RecordingFile::open(path);
  ASSERT_FALSE(file);
  EXPECT_NE(file.error().message.find("not an sring recording"), std::string::npos);
  ::unlink(path.c_str());
}

TEST(Recording, DiskFullAtTheHeaderFailsBeforeAnythingStarts) {
  auto host = HostRing::create(kRingSize);
  ASSERT_TRUE(host);
  SimDevice device(*host, config());
  auto ring = Ring::attach(std::move(*host->duplicate_fd()), Ring::Access::kConsumer);
  ASSERT_TRUE(ring);
  auto writer = recording::RecordingWriter::create("/dev/full", header_for(*ring), true);
  ASSERT_FALSE(writer);
  EXPECT_EQ(writer.error().code, ENOSPC);
  EXPECT_NE(writer.error().message.find("file header"), std::string::npos) << writer.error().message;
}

TEST(Recording, ReplayGivesTheSameSamplesAndTheSameLosses) {
  const std::string first = temp_path("replay-1");
  const std::string second = temp_path("replay-2");
  const Recorded original = record(first, 300, 100);
  ASSERT_GT(original.trailer.samples_dropped, 0u);
  auto source = sim::RecordingSource::open(first);
  ASSERT_TRUE(source) << source.error().message;
  const Recorded replayed = record(second, 1'000'000, 0, 8192, std::move(*source));
  EXPECT_EQ(replayed.trailer.samples_produced, original.trailer.samples_produced);
  EXPECT_EQ(replayed.trailer.samples_dropped, original.trailer.samples_dropped);
  EXPECT_EQ(replayed.trailer.blocks_dropped, original.trailer.blocks_dropped);
  EXPECT_EQ(replayed.trailer.exact, 1u);
  auto a = recording::RecordingFile::open(first);
  auto b = recording::RecordingFile::open(second);
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->blocks(), b->blocks());
  for (uint64_t i = 0; i < a->blocks(); ++i) {
    ASSERT_EQ(a->block(i).first_sample, b->block(i).first_sample) << "block " << i;
    ASSERT_EQ(a->block(i).sequence, b->block(i).sequence) << "block " << i;
    ASSERT_EQ(std::memcmp(a->samples(i), b->samples(i), a->block(i).sample_count * 2), 0) << "block " << i;
  }
  EXPECT_TRUE(recording::check(*b, true).accounting_exact);
  ::unlink(first.c_str());
  ::unlink(second.c_str());
}

}  // namespace
