// The recording format and its writer, reader, checker and replay source,
// without processes: a simulated device fills a ring, the Consumer's pull
// API holds blocks, RecordingWriter writes them from the ring, and
// RecordingFile/check()/RecordingSource read them back. Every layout the
// simulated device makes (format x channels) round-trips with every value
// verified; a version 1 file made by the pre-1.4 sring-record
// (tests/data/recording-v1-u16.srec) still reads, verifies and replays.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tools/record_writer.hpp"
#include "sring/consumer.hpp"
#include "sring/recording.hpp"
#include "sring/ring.hpp"
#include "sring/sring_pattern.h"
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

// Recorded by the sring-record of ABI 1.3 (format version 1): 9 blocks of
// 4096 bytes, u16, seed 7, 10 kS/s, with its trailer. How it was made:
// tests/data/README.
constexpr char kV1Fixture[] = "tests/data/recording-v1-u16.srec";

SimConfig config(uint32_t block_bytes = 8192, uint32_t format = SRING_FMT_U16, uint32_t channels = 1) {
  SimConfig c;
  c.block_bytes = block_bytes;
  c.pattern_seed = 7;
  c.sample_format = format;
  c.channels = channels;
  return c;
}

std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name + "-" + std::to_string(::getpid());
}

// Writes `bytes` at `offset` of the file at path.
void patch(const std::string& path, uint64_t offset, const void* bytes, size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes, size, static_cast<off_t>(offset)), static_cast<ssize_t>(size));
  ::close(fd);
}

// The file header of the recording at path, as stored.
recording::FileHeader read_header(const std::string& path) {
  recording::FileHeader header{};
  const int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::pread(fd, &header, sizeof(header), 0), static_cast<ssize_t>(sizeof(header)));
  ::close(fd);
  return header;
}

// A device that produced `blocks` blocks (dropping `drop_every`-th ones when
// asked), all recorded to path; returns the trailer written.
struct Recorded {
  recording::FileTrailer trailer{};
  uint64_t frames_per_block = 0;
  SampleLayout layout;
};

Recorded record(const std::string& path, uint64_t blocks, uint64_t drop_after = 0, SimConfig sim_config = config(),
                std::unique_ptr<sim::SampleSource> source = nullptr) {
  auto host = HostRing::create(kRingSize);
  EXPECT_TRUE(host);
  EXPECT_TRUE(sim::validate_config(sim_config, kRingSize));
  SimDevice device(*host, sim_config);
  if (source) device.set_source(std::move(source));
  auto ring = Ring::attach(std::move(*host->duplicate_fd()), Ring::Access::kConsumer);
  EXPECT_TRUE(ring);
  Consumer consumer(*ring);
  device.begin();  // the layout is in the producer page from here
  auto writer = recording::RecordingWriter::create(path, recording::make_file_header(*ring, "recording_test"), true);
  EXPECT_TRUE(writer) << writer.error().message;
  uint64_t made = 0;
  auto drain = [&] {
    for (;;) {
      auto block = consumer.next();
      EXPECT_TRUE(block);
      if (!*block) break;
      const auto* at = (*block)->payload().data() - SRING_BLOCK_HEADER_SIZE;
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
  result.frames_per_block = device.samples_per_block();
  result.layout = device.layout();
  std::memcpy(result.trailer.magic, recording::kTrailerMagic, sizeof(result.trailer.magic));
  result.trailer.blocks_delivered = c.blocks;
  result.trailer.samples_delivered = c.samples;
  result.trailer.blocks_produced = c.blocks_produced;
  result.trailer.samples_produced = c.samples_produced;
  result.trailer.blocks_dropped = c.blocks_dropped;
  result.trailer.samples_dropped = c.samples_dropped;
  result.trailer.exact = c.exact;
  EXPECT_TRUE(writer->finish(result.trailer, result.frames_per_block));
  return result;
}

TEST(Recording, RoundTripEveryBlockStoredAndVerified) {
  const std::string path = temp_path("round-trip");
  record(path, 200);
  auto file = recording::RecordingFile::open(path);
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->header().version, 2u);
  EXPECT_EQ(file->layout(), (SampleLayout{SRING_FMT_U16, 1, 16}));
  EXPECT_EQ(file->blocks(), 200u);
  ASSERT_TRUE(file->trailer().has_value());
  const auto report = recording::check(*file, true);
  EXPECT_EQ(report.samples, 200u * (8192 - 64) / 2);
  EXPECT_EQ(report.values, report.samples);
  EXPECT_EQ(report.gaps, 0u);
  EXPECT_EQ(report.corrupted_values, 0u);
  EXPECT_TRUE(report.trailer_matches);
  EXPECT_TRUE(report.accounting_exact) << report.problem;
  ::unlink(path.c_str());
}

// Every format the simulated device makes, with several channel counts:
// the file header carries the layout, each block is stored whole with its
// 1.4 header, and check() compares every value (I and Q, every channel)
// with the pattern. One changed byte is then exactly one wrong value.
struct LayoutCase {
  uint32_t format;
  uint32_t channels;
  uint32_t bits;
};

class RecordingLayout : public ::testing::TestWithParam<LayoutCase> {};

TEST_P(RecordingLayout, RoundTripsWithEveryValueVerified) {
  const LayoutCase& c = GetParam();
  const std::string path = temp_path("layout-" + format_name(c.format) + "-" + std::to_string(c.channels));
  const Recorded r = record(path, 40, 0, config(8192, c.format, c.channels));
  const SampleLayout expected{c.format, c.channels, c.bits};
  ASSERT_EQ(r.layout, expected) << describe(r.layout);

  // The header as stored on disk: version 2, the layout spelled out.
  const recording::FileHeader stored = read_header(path);
  EXPECT_EQ(stored.version, 2u);
  EXPECT_EQ(stored.sample_format, c.format);
  EXPECT_EQ(stored.channels, c.channels);
  EXPECT_EQ(stored.bits_per_sample, c.bits);

  auto file = recording::RecordingFile::open(path);
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->layout(), expected);
  EXPECT_EQ(file->frames_per_block(), r.frames_per_block);
  ASSERT_EQ(file->blocks(), 40u);
  for (uint64_t i = 0; i < file->blocks(); ++i) {
    const sring_block_header& block = file->block(i);
    ASSERT_EQ(SampleLayout::from_header(block), expected) << "block " << i;
    ASSERT_EQ(block.sample_count, r.frames_per_block) << "block " << i;
  }
  const uint64_t values_per_frame = uint64_t{c.channels} * sring_format_components(c.format);
  const auto report = recording::check(*file, true);
  EXPECT_TRUE(report.verified);
  EXPECT_EQ(report.samples, 40 * r.frames_per_block);
  EXPECT_EQ(report.values, 40 * r.frames_per_block * values_per_frame);
  EXPECT_EQ(report.corrupted_values, 0u);
  EXPECT_EQ(report.bad_blocks, 0u) << report.problem;
  EXPECT_TRUE(report.trailer_matches && report.accounting_exact) << report.problem;

  // The payload is the pattern's, byte for byte (the last block).
  const uint64_t last = file->blocks() - 1;
  std::vector<uint8_t> expected_payload(expected.payload_bytes(r.frames_per_block));
  ASSERT_EQ(sring_pattern_fill_format(expected_payload.data(), c.format, c.channels, file->block(last).first_sample,
                                      static_cast<uint32_t>(r.frames_per_block), 7),
            0);
  EXPECT_EQ(std::memcmp(file->payload(last), expected_payload.data(), expected_payload.size()), 0);

  // One byte of one value changed in block 5, in its last frame's last
  // channel: check() finds exactly that value (a packed pair's first byte
  // holds bits of one value only).
  const uint64_t value_index = r.frames_per_block * values_per_frame - (c.format == SRING_FMT_SIM_PACKED12 ? 2 : 1);
  ASSERT_TRUE(c.format != SRING_FMT_SIM_PACKED12 || value_index % 2 == 0) << "the first of a packed pair";
  const uint64_t byte_in_payload = value_index * c.bits / sring_format_components(c.format) / 8;
  const uint64_t offset = recording::kHeaderBytes + 5 * 8192 + SRING_BLOCK_HEADER_SIZE + byte_in_payload;
  uint8_t byte = static_cast<const uint8_t*>(static_cast<const void*>(file->payload(5)))[byte_in_payload];
  byte ^= 0x01;
  patch(path, offset, &byte, 1);
  auto changed = recording::RecordingFile::open(path);
  ASSERT_TRUE(changed);
  EXPECT_EQ(recording::check(*changed, true).corrupted_values, 1u);
  ::unlink(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(
    FormatsAndChannels, RecordingLayout,
    ::testing::Values(LayoutCase{SRING_FMT_U8, 1, 8}, LayoutCase{SRING_FMT_S8, 3, 8}, LayoutCase{SRING_FMT_S16, 1, 16},
                      LayoutCase{SRING_FMT_S32, 2, 32}, LayoutCase{SRING_FMT_F32, 1, 32},
                      LayoutCase{SRING_FMT_CS16, 2, 32}, LayoutCase{SRING_FMT_CF32, 4, 64},
                      LayoutCase{SRING_FMT_SIM_PACKED12, 1, 12}, LayoutCase{SRING_FMT_SIM_PACKED12, 3, 12}),
    [](const ::testing::TestParamInfo<LayoutCase>& info) {
      std::string name = format_name(info.param.format) + "x" + std::to_string(info.param.channels);
      for (char& ch : name) {
        if (ch == '-') ch = '_';
      }
      return name;
    });

// The file made by the pre-1.4 tools: version 1, no layout in its header,
// zeros in its blocks' channels and bits_per_sample. Read as what it is:
// u16, one channel; every value verified, the accounting exact.
TEST(RecordingV1, TheOldRecorderFileReadsAndVerifies) {
  const recording::FileHeader stored = read_header(kV1Fixture);
  ASSERT_EQ(std::memcmp(stored.magic, recording::kFileMagic, 8), 0) << kV1Fixture << " missing?";
  ASSERT_EQ(stored.version, 1u);
  ASSERT_EQ(stored.channels, 0u) << "not a version 1 file: the fixture must come from the old recorder";
  ASSERT_EQ(stored.bits_per_sample, 0u);

  auto file = recording::RecordingFile::open(kV1Fixture);
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->layout(), (SampleLayout{SRING_FMT_U16, 1, 16}));
  EXPECT_EQ(file->frames_per_block(), (4096u - 64) / 2);
  ASSERT_EQ(file->blocks(), 9u);
  ASSERT_TRUE(file->trailer().has_value());
  EXPECT_EQ(file->block(0).channels, 0u) << "1.3 blocks: no channels";
  EXPECT_EQ(file->block(0).bits_per_sample, 0u);
  const auto report = recording::check(*file, true);
  EXPECT_TRUE(report.verified);
  EXPECT_EQ(report.bad_blocks, 0u) << report.problem;
  EXPECT_EQ(report.blocks, 9u);
  EXPECT_EQ(report.samples, 9u * 2016);
  EXPECT_EQ(report.values, 9u * 2016);
  EXPECT_EQ(report.corrupted_values, 0u);
  EXPECT_TRUE(report.trailer_matches && report.accounting_exact) << report.problem;
}

// Replayed through a ring and recorded again: a version 2 file of the same
// layout (one 16-bit channel, spelled out) with the same samples.
TEST(RecordingV1, ReplaysAndRecordsAgainAsVersion2) {
  auto source = sim::RecordingSource::open(kV1Fixture);
  ASSERT_TRUE(source) << source.error().message;
  const SimConfig replay_config = (*source)->config();
  EXPECT_EQ(replay_config.sample_format, SRING_FMT_U16);
  EXPECT_EQ(replay_config.channels, 1u);
  const std::string path = temp_path("v1-again");
  record(path, 1'000'000, 0, replay_config, std::move(*source));
  auto old_file = recording::RecordingFile::open(kV1Fixture);
  auto new_file = recording::RecordingFile::open(path);
  ASSERT_TRUE(old_file && new_file);
  EXPECT_EQ(new_file->header().version, 2u);
  EXPECT_EQ(new_file->header().channels, 1u);
  EXPECT_EQ(new_file->header().bits_per_sample, 16u);
  ASSERT_EQ(new_file->blocks(), old_file->blocks());
  for (uint64_t i = 0; i < old_file->blocks(); ++i) {
    ASSERT_EQ(new_file->block(i).first_sample, old_file->block(i).first_sample);
    ASSERT_EQ(std::memcmp(new_file->payload(i), old_file->payload(i), 4096 - 64), 0) << "block " << i;
  }
  const auto report = recording::check(*new_file, true);
  EXPECT_EQ(report.corrupted_values, 0u);
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
  patch(path, file->file_size() - sizeof(trailer), &trailer, sizeof(trailer));
  auto reread = recording::RecordingFile::open(path);
  ASSERT_TRUE(reread);
  EXPECT_FALSE(recording::check(*reread, false).accounting_exact);
  ::unlink(path.c_str());
}

TEST(Recording, CutShortReadableToTheLastCompleteBlock) {
  const std::string path = temp_path("cut");
  record(path, 40, 0, config(8192, SRING_FMT_CS16, 2));
  // A crash in the middle of block 30: no trailer, 30 complete blocks.
  ASSERT_EQ(::truncate(path.c_str(), recording::kHeaderBytes + 30 * 8192 + 1000), 0);
  auto file = recording::RecordingFile::open(path);
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_FALSE(file->trailer().has_value());
  EXPECT_EQ(file->blocks(), 30u);
  EXPECT_EQ(file->partial_bytes(), 1000u);
  const auto report = recording::check(*file, true);
  EXPECT_EQ(report.blocks, 30u);
  EXPECT_EQ(report.values, 30u * 1016 * 4);
  EXPECT_EQ(report.corrupted_values, 0u);
  EXPECT_TRUE(report.problem.empty()) << report.problem;
  ::unlink(path.c_str());
}

TEST(Recording, CorruptedSampleIsFound) {
  const std::string path = temp_path("corrupt");
  record(path, 10);
  const uint16_t bad = 0xdead;
  patch(path, recording::kHeaderBytes + 3 * 8192 + 64 + 100, &bad, 2);
  auto file = recording::RecordingFile::open(path);
  ASSERT_TRUE(file);
  EXPECT_EQ(recording::check(*file, true).corrupted_values, 1u);
  ::unlink(path.c_str());
}

// A block that claims more frames than its bytes hold, or another layout
// than the file's, stops the reading there with a message that says so.
TEST(Recording, ABlockThatDoesNotFitOrDisagreesIsBad) {
  const std::string path = temp_path("bad-block");
  record(path, 10, 0, config(8192, SRING_FMT_CS16, 2));
  auto file = recording::RecordingFile::open(path);
  ASSERT_TRUE(file);
  sring_block_header block = file->block(4);
  block.sample_count = 1016 + 1;  // 1016 frames of 8 bytes fill the 8128
  patch(path, recording::kHeaderBytes + 4 * 8192, &block, sizeof(block));
  {
    auto reread = recording::RecordingFile::open(path);
    ASSERT_TRUE(reread);
    const auto report = recording::check(*reread, true);
    EXPECT_EQ(report.blocks, 4u);
    EXPECT_EQ(report.bad_blocks, 6u);
    EXPECT_NE(report.problem.find("block 4"), std::string::npos) << report.problem;
    EXPECT_NE(report.problem.find("1017 frames"), std::string::npos) << report.problem;
  }
  block = file->block(4);
  block.channels = 1;  // cs16 x 1 in a cs16 x 2 file
  block.sample_count = 1016;
  patch(path, recording::kHeaderBytes + 4 * 8192, &block, sizeof(block));
  auto reread = recording::RecordingFile::open(path);
  ASSERT_TRUE(reread);
  const auto report = recording::check(*reread, true);
  EXPECT_EQ(report.bad_blocks, 6u);
  EXPECT_NE(report.problem.find("the file header says cs16 x 2 channels"), std::string::npos) << report.problem;
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

// Headers that are not right: each refused with a message naming what is
// wrong, the file left alone.
TEST(Recording, BadHeadersAreRefusedClearly) {
  const std::string path = temp_path("bad-header");
  record(path, 4, 0, config(8192, SRING_FMT_CS16, 2));
  const recording::FileHeader good = read_header(path);
  struct Case {
    const char* what;
    void (*spoil)(recording::FileHeader&);
    const char* message;
  };
  const Case cases[] = {
      {"a version from the future", [](recording::FileHeader& h) { h.version = 3; },
       "recording format version 3: this reader knows versions 1 and 2"},
      {"cs16 of 16 bits", [](recording::FileHeader& h) { h.bits_per_sample = 16; }, "layout is not valid"},
      {"no channels", [](recording::FileHeader& h) { h.channels = 0; }, "layout is not valid"},
      {"too many channels", [](recording::FileHeader& h) { h.channels = SRING_MAX_CHANNELS + 1; },
       "layout is not valid"},
      {"an unknown standard format", [](recording::FileHeader& h) { h.sample_format = 99; }, "unknown-99"},
      {"a device format of no size",
       [](recording::FileHeader& h) {
         h.sample_format = 0x8001;
         h.bits_per_sample = 0;
       },
       "device-0x8001"},
      {"a frame larger than a block",
       [](recording::FileHeader& h) {
         h.sample_format = SRING_FMT_CF32;
         h.bits_per_sample = 64;
         h.channels = 256;
         h.block_bytes = 1024;
       },
       "does not fit a block of 1024 bytes"},
      {"version 1 of a complex format", [](recording::FileHeader& h) { h.version = 1; },
       "unknown sample format 7 in a version 1 file header"},
  };
  for (const Case& c : cases) {
    recording::FileHeader header = good;
    c.spoil(header);
    patch(path, 0, &header, sizeof(header));
    auto file = recording::RecordingFile::open(path);
    ASSERT_FALSE(file) << c.what;
    EXPECT_NE(file.error().message.find(c.message), std::string::npos) << c.what << ": " << file.error().message;
    EXPECT_NE(file.error().message.find(path), std::string::npos) << c.what << ": names the file";
  }
  patch(path, 0, &good, sizeof(good));
  EXPECT_TRUE(recording::RecordingFile::open(path));
  ::unlink(path.c_str());
}

TEST(Recording, TheWriterWritesTheCurrentVersionOnly) {
  auto host = HostRing::create(kRingSize);
  ASSERT_TRUE(host);
  SimDevice device(*host, config());
  device.begin();
  auto ring = Ring::attach(std::move(*host->duplicate_fd()), Ring::Access::kConsumer);
  ASSERT_TRUE(ring);
  recording::FileHeader header = recording::make_file_header(*ring, "test");
  header.version = 1;
  const std::string path = temp_path("old-writer");
  auto writer = recording::RecordingWriter::create(path, header, true);
  ASSERT_FALSE(writer);
  EXPECT_NE(writer.error().message.find("version 2, not 1"), std::string::npos) << writer.error().message;
}

TEST(Recording, DiskFullAtTheHeaderFailsBeforeAnythingStarts) {
  auto host = HostRing::create(kRingSize);
  ASSERT_TRUE(host);
  SimDevice device(*host, config());
  device.begin();
  auto ring = Ring::attach(std::move(*host->duplicate_fd()), Ring::Access::kConsumer);
  ASSERT_TRUE(ring);
  auto writer = recording::RecordingWriter::create("/dev/full", recording::make_file_header(*ring, "test"), true);
  ASSERT_FALSE(writer);
  EXPECT_EQ(writer.error().code, ENOSPC);
  EXPECT_NE(writer.error().message.find("file header"), std::string::npos) << writer.error().message;
}

// Replay of every kind of layout: the replayed ring's producer page and
// block headers carry the recording's layout, and the payloads, the
// positions and the losses are the recording's.
class ReplayLayout : public ::testing::TestWithParam<LayoutCase> {};

TEST_P(ReplayLayout, GivesTheSameSamplesAndTheSameLosses) {
  const LayoutCase& c = GetParam();
  const std::string first = temp_path("replay-1");
  const std::string second = temp_path("replay-2");
  const Recorded original = record(first, 300, 100, config(8192, c.format, c.channels));
  ASSERT_GT(original.trailer.samples_dropped, 0u);
  auto source = sim::RecordingSource::open(first);
  ASSERT_TRUE(source) << source.error().message;
  const SimConfig replay_config = (*source)->config();
  EXPECT_EQ(replay_config.sample_format, c.format);
  EXPECT_EQ(replay_config.channels, c.channels);
  const Recorded replayed = record(second, 1'000'000, 0, replay_config, std::move(*source));
  EXPECT_EQ(replayed.layout, original.layout);
  EXPECT_EQ(replayed.trailer.samples_produced, original.trailer.samples_produced);
  EXPECT_EQ(replayed.trailer.samples_dropped, original.trailer.samples_dropped);
  EXPECT_EQ(replayed.trailer.blocks_dropped, original.trailer.blocks_dropped);
  EXPECT_EQ(replayed.trailer.exact, 1u);
  auto a = recording::RecordingFile::open(first);
  auto b = recording::RecordingFile::open(second);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(b->layout(), a->layout());
  ASSERT_EQ(a->blocks(), b->blocks());
  const uint64_t payload_bytes = a->layout().payload_bytes(a->frames_per_block());
  for (uint64_t i = 0; i < a->blocks(); ++i) {
    ASSERT_EQ(a->block(i).first_sample, b->block(i).first_sample) << "block " << i;
    ASSERT_EQ(a->block(i).sequence, b->block(i).sequence) << "block " << i;
    ASSERT_EQ(SampleLayout::from_header(b->block(i)), a->layout()) << "block " << i;
    ASSERT_EQ(std::memcmp(a->payload(i), b->payload(i), payload_bytes), 0) << "block " << i;
  }
  const auto report = recording::check(*b, true);
  EXPECT_EQ(report.corrupted_values, 0u);
  EXPECT_TRUE(report.accounting_exact) << report.problem;
  ::unlink(first.c_str());
  ::unlink(second.c_str());
}

INSTANTIATE_TEST_SUITE_P(Layouts, ReplayLayout,
                         ::testing::Values(LayoutCase{SRING_FMT_U16, 1, 16}, LayoutCase{SRING_FMT_CS16, 2, 32},
                                           LayoutCase{SRING_FMT_SIM_PACKED12, 3, 12}),
                         [](const ::testing::TestParamInfo<LayoutCase>& info) {
                           std::string name = format_name(info.param.format) + "x" +
                                              std::to_string(info.param.channels);
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

// A recording of another device's own format cannot be replayed by the
// simulated device: refused up front, saying so.
TEST(Replay, ADeviceFormatTheSimulatorCannotMakeIsRefused) {
  const std::string path = temp_path("device-format");
  record(path, 4);
  recording::FileHeader header = read_header(path);
  header.sample_format = 0x8001;  // 16 bits of some other driver's format
  patch(path, 0, &header, sizeof(header));
  auto file = recording::RecordingFile::open(path);
  ASSERT_TRUE(file) << file.error().message;
  // Its pattern is unknown: sizes are checked, values are not compared.
  const auto report = recording::check(*file, true);
  EXPECT_FALSE(report.verified);
  EXPECT_NE(report.not_verified_reason.find("device-0x8001"), std::string::npos) << report.not_verified_reason;
  auto source = sim::RecordingSource::open(path);
  ASSERT_FALSE(source);
  EXPECT_NE(source.error().message.find("cannot make"), std::string::npos) << source.error().message;
  ::unlink(path.c_str());
}

}  // namespace
