// The sring recording file (docs/recording.md, format version 1): a 4096-byte
// file header with the run's configuration, then the blocks exactly as they
// were in the ring (64-byte header, samples, padding; all block_bytes long),
// then, if the recorder closed the file, a 4096-byte trailer with the loss
// accounting. Every part is a multiple of 4096 bytes so that the recorder
// can write it with O_DIRECT when the block size allows.
//
// RecordingFile maps a recording read-only and finds its parts; a file cut
// short (no trailer, a partial last block) is still readable up to its last
// complete block. check() verifies it against the test pattern and its own
// accounting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "sring/error.hpp"
#include "sring/sring_abi.h"
#include "sring/unique_fd.hpp"

namespace sring::recording {

inline constexpr char kFileMagic[8] = {'S', 'R', 'I', 'N', 'G', 'R', 'E', 'C'};
inline constexpr char kTrailerMagic[8] = {'S', 'R', 'R', 'E', 'C', 'E', 'N', 'D'};
inline constexpr uint32_t kFormatVersion = 1;
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
  uint32_t version;             // kFormatVersion; a reader refuses another
  uint32_t header_bytes;        // kHeaderBytes: the first block starts here
  uint32_t trailer_bytes;       // kTrailerBytes
  uint32_t block_bytes;         // every block's total_bytes (header included)
  uint64_t sample_rate;         // samples per second the device was set to (0: flat out)
  uint32_t sample_format;       // SRING_FMT_U16 or SRING_FMT_S16
  uint32_t pattern_seed;        // the device's pattern seed (sring_pattern.h)
  uint32_t overrun_policy;      // the ring's overrun policy during the run
  uint32_t abi_version;         // the ring's SRING_ABI_VERSION
  uint64_t ring_size;           // bytes of the ring recorded from
  uint64_t start_realtime_ns;   // CLOCK_REALTIME when recording started
  uint64_t start_monotonic_ns;  // CLOCK_MONOTONIC then (the blocks' timestamp clock)
  char source[128];             // what was recorded, NUL-terminated
  uint8_t reserved[kHeaderBytes - 200];  // zero
};

// Right after the last block, written when the recorder closes the file.
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
static_assert(sizeof(FileTrailer) == kTrailerBytes, "trailer is one page");
static_assert(offsetof(FileTrailer, stop_realtime_ns) == 120, "docs/recording.md pins this offset");

// Checks a header read from a file: magic, version, sizes.
[[nodiscard]] Status validate_header(const FileHeader& header);

// A recording mapped read-only.
class RecordingFile {
 public:
  [[nodiscard]] static Expected<RecordingFile> open(const std::string& path);

  const FileHeader& header() const { return header_; }
  // Complete blocks in the file (a partial last block is not one).
  uint64_t blocks() const { return blocks_; }
  // Bytes after the last complete block that are neither a block nor the
  // trailer: a block cut short by a crash.
  uint64_t partial_bytes() const { return partial_bytes_; }
  const std::optional<FileTrailer>& trailer() const { return trailer_; }
  // Block i (0 <= i < blocks()), header then samples, in the mapping.
  const sring_block_header& block(uint64_t index) const;
  const uint16_t* samples(uint64_t index) const;
  uint64_t file_size() const { return file_size_; }

 private:
  RecordingFile() = default;
  Mapping mapping_;
  FileHeader header_{};
  uint64_t file_size_ = 0;
  uint64_t blocks_ = 0;
  uint64_t partial_bytes_ = 0;
  std::optional<FileTrailer> trailer_;
};

// What sring-record --check finds.
struct CheckReport {
  uint64_t blocks = 0;
  uint64_t samples = 0;
  uint64_t partial_bytes = 0;       // a block cut short at the end
  uint64_t gaps = 0;                // jumps in first_sample between stored blocks
  uint64_t missing_samples = 0;     // in those jumps, plus before the first block
  uint64_t missing_blocks = 0;
  uint64_t bad_blocks = 0;          // wrong magic, size, format, or out of order: reading stops there
  uint64_t corrupted_samples = 0;   // not the pattern (when verified)
  bool verified = false;
  bool has_trailer = false;
  // With a trailer: the file holds what the trailer says, and every sample
  // the device produced is stored or counted lost (dropped by the producer,
  // or delivered and not stored), exactly.
  bool trailer_matches = false;
  bool accounting_exact = false;
  uint64_t lost_at_end = 0;         // samples_produced after the last stored block
  std::string problem;              // the first inconsistency found, if any
};

// Reads every complete block; verify: compare each sample with the pattern
// of the seed in the file header.
[[nodiscard]] CheckReport check(const RecordingFile& file, bool verify);

}  // namespace sring::recording
