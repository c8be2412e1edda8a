// The sring recording file (docs/recording.md, format version 2): a 4096-byte
// file header with the run's configuration and sample layout (format,
// channels, bits per sample), then the blocks exactly as they were in the
// ring (64-byte header, payload, padding; all block_bytes long),
// then, if the recorder closed the file, a 4096-byte trailer with the loss
// accounting. Every part is a multiple of 4096 bytes so that the recorder
// can write it with O_DIRECT when the block size allows.
//
// RecordingFile maps a recording read-only and finds its parts; a file cut
// short (no trailer, a partial last block) is still readable up to its last
// complete block. check() verifies it against the test pattern and its own
// accounting.
//
// Version 1 (before ABI 1.4) had no layout in its header: it held 16-bit
// samples of one channel (u16 or s16), and its blocks carry 0 in their
// channels and bits_per_sample. RecordingFile still reads it, as such;
// the writer writes version 2 only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "sring/error.hpp"
#include "sring/format.hpp"
#include "sring/sring_abi.h"
#include "sring/unique_fd.hpp"

namespace sring::recording {

inline constexpr char kFileMagic[8] = {'S', 'R', 'I', 'N', 'G', 'R', 'E', 'C'};
inline constexpr char kTrailerMagic[8] = {'S', 'R', 'R', 'E', 'C', 'E', 'N', 'D'};
// What the writer writes; a reader also takes kOldestFormatVersion (1: u16
// or s16, one channel) and refuses anything else.
inline constexpr uint32_t kFormatVersion = 2;
inline constexpr uint32_t kOldestFormatVersion = 1;
// Header and trailer: one page each, so the blocks start, and the trailer
// sits, at offsets O_DIRECT accepts (4096 covers 512- and 4096-byte devices).
inline constexpr uint32_t kHeaderBytes = 4096;
inline constexpr uint32_t kTrailerBytes = 4096;
inline constexpr uint32_t kDirectAlign = 4096;

// Why the recorder ended (FileTrailer::end_reason).
enum class EndReason : uint32_t {
  kStreamEnded = 0,  // the duration was up, or the device stopped on its own
  kSignal = 1,       // SIGINT or SIGTERM: the device was stopped and drained
  kWriteError = 2,   // a write failed (ENOSPC, EIO...): storing stopped there
};

// Offset 0 of the file. Little endian, as the ring's own structures.
struct FileHeader {
  char magic[8];                // kFileMagic, "SRINGREC"
  uint32_t version;             // kFormatVersion (2), or 1; a reader refuses another
  uint32_t header_bytes;        // kHeaderBytes: the first block starts here
  uint32_t trailer_bytes;       // kTrailerBytes
  uint32_t block_bytes;         // every block's total_bytes (header included)
  uint64_t sample_rate;         // frames per second the device was set to (0: flat out)
  uint32_t sample_format;       // enum sring_sample_format (version 1: U16 or S16 only)
  uint32_t pattern_seed;        // the device's pattern seed (sring_pattern.h)
  uint32_t overrun_policy;      // the ring's overrun policy during the run
  uint32_t abi_version;         // the ring's SRING_ABI_VERSION
  uint64_t ring_size;           // bytes of the ring recorded from
  uint64_t start_realtime_ns;   // CLOCK_REALTIME when recording started
  uint64_t start_monotonic_ns;  // CLOCK_MONOTONIC then (the blocks' timestamp clock)
  char source[128];             // what was recorded, NUL-terminated
  // Version 2 (ABI 1.4); zero in a version 1 file, which means 1 and 16.
  uint32_t channels;            // channels per frame, 1 to SRING_MAX_CHANNELS
  uint32_t bits_per_sample;     // bits of one sample of one channel (cs16: 32)
  uint8_t reserved[kHeaderBytes - 208];  // zero
};

// Right after the last block, written when the recorder closes the file.
// Its samples_* count frames, as the ring's counters do (ABI 1.4).
struct FileTrailer {
  char magic[8];                // kTrailerMagic, "SRRECEND"
  uint64_t blocks_stored;       // complete blocks in the file
  uint64_t samples_stored;
  uint64_t blocks_delivered;    // the ring gave the recorder (stored or not)
  uint64_t samples_delivered;
  uint64_t blocks_not_stored;   // delivered but not in the file (after a write error)
  uint64_t samples_not_stored;
  uint64_t blocks_produced;     // the producer's final counters (docs/abi.md)
  uint64_t samples_produced;
  uint64_t blocks_dropped;
  uint64_t samples_dropped;
  uint64_t missing_blocks;      // the loss rule over the delivered blocks, end included
  uint64_t missing_samples;
  uint32_t final_state;         // enum sring_state at the end
  uint32_t exact;               // 1: missing == dropped, exactly (the ring's contract)
  int32_t write_errno;          // the error that stopped storing, or 0
  uint32_t end_reason;          // enum EndReason
  uint64_t stop_realtime_ns;    // CLOCK_REALTIME when the file was closed
  uint8_t reserved[kTrailerBytes - 128];  // zero
};

static_assert(sizeof(FileHeader) == kHeaderBytes, "file header is one page");
static_assert(offsetof(FileHeader, source) == 72, "docs/recording.md pins this offset");
static_assert(offsetof(FileHeader, channels) == 200, "docs/recording.md pins this offset");
static_assert(offsetof(FileHeader, bits_per_sample) == 204, "docs/recording.md pins this offset");
static_assert(sizeof(FileTrailer) == kTrailerBytes, "trailer is one page");
static_assert(offsetof(FileTrailer, stop_realtime_ns) == 120, "docs/recording.md pins this offset");

// Checks a header read from a file: magic, version, sizes, and a layout
// that is valid (sring/format.hpp) and fits a block at least once.
[[nodiscard]] Status validate_header(const FileHeader& header);

// The layout of the samples a (validated) header describes: version 1
// files are 16-bit, one channel.
[[nodiscard]] SampleLayout header_layout(const FileHeader& header);

// A recording mapped read-only.
class RecordingFile {
 public:
  [[nodiscard]] static Expected<RecordingFile> open(const std::string& path);

  const FileHeader& header() const { return header_; }
  // Format, channels and bits per sample of every block (header_layout()).
  const SampleLayout& layout() const { return layout_; }
  // Frames a block of the file holds (its blocks are all full).
  uint64_t frames_per_block() const { return layout_.frames_per_block(header_.block_bytes); }
  // Complete blocks in the file (a partial last block is not one).
  uint64_t blocks() const { return blocks_; }
  // Bytes after the last complete block that are neither a block nor the
  // trailer: a block cut short by a crash.
  uint64_t partial_bytes() const { return partial_bytes_; }
  const std::optional<FileTrailer>& trailer() const { return trailer_; }
  // Block i (0 <= i < blocks()), header then payload, in the mapping:
  // layout().payload_bytes(block(i).sample_count) bytes of samples.
  const sring_block_header& block(uint64_t index) const;
  const std::byte* payload(uint64_t index) const;
  uint64_t file_size() const { return file_size_; }

 private:
  RecordingFile() = default;
  Mapping mapping_;
  FileHeader header_{};
  SampleLayout layout_{};
  uint64_t file_size_ = 0;
  uint64_t blocks_ = 0;
  uint64_t partial_bytes_ = 0;
  std::optional<FileTrailer> trailer_;
};

// What sring-record --check finds.
struct CheckReport {
  uint64_t blocks = 0;
  uint64_t samples = 0;             // frames (one sample of each channel), as the ring counts
  uint64_t values = 0;              // what was compared: frames * channels * (2 if complex)
  uint64_t partial_bytes = 0;       // a block cut short at the end
  uint64_t gaps = 0;                // jumps in first_sample between stored blocks
  uint64_t missing_samples = 0;     // in those jumps, plus before the first block
  uint64_t missing_blocks = 0;
  uint64_t bad_blocks = 0;          // wrong magic, size, layout, or out of order: reading stops there
  uint64_t corrupted_values = 0;    // values (a complex sample: I and Q) not the pattern, when verified
  bool verified = false;            // false also when the pattern has no such format (a device's own)
  std::string not_verified_reason;  // why not, when verify was asked
  bool has_trailer = false;
  // With a trailer: the file holds what the trailer says, and every sample
  // the device produced is stored or counted lost (dropped by the producer,
  // or delivered and not stored), exactly.
  bool trailer_matches = false;
  bool accounting_exact = false;
  uint64_t lost_at_end = 0;         // samples_produced after the last stored block
  std::string problem;              // the first inconsistency found, if any
};

// Reads every complete block; verify: compare every value of every block
// with the pattern of the seed in the file header, in the file's layout
// (count_pattern_mismatches(), sring/verify.hpp).
[[nodiscard]] CheckReport check(const RecordingFile& file, bool verify);

}  // namespace sring::recording
