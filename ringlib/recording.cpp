#include "sring/recording.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "ringlib/error_format.hpp"
#include "sring/sring_pattern.h"
#include "sring/verify.hpp"

namespace sring::recording {

Status validate_header(const FileHeader& header) {
  if (std::memcmp(header.magic, kFileMagic, sizeof(kFileMagic)) != 0) {
    return make_error(EINVAL, "not an sring recording (no SRINGREC magic)");
  }
  if (header.version != kFormatVersion && header.version != kOldestFormatVersion) {
    return make_error(EINVAL, "recording format version {}: this reader knows versions {} and {}", header.version,
                      kOldestFormatVersion, kFormatVersion);
  }
  if (header.header_bytes != kHeaderBytes || header.trailer_bytes != kTrailerBytes) {
    return make_error(EINVAL, "header of {} bytes and trailer of {} bytes (version {} has {} and {})",
                      header.header_bytes, header.trailer_bytes, header.version, kHeaderBytes, kTrailerBytes);
  }
  if (header.block_bytes < SRING_BLOCK_HEADER_SIZE + SRING_BLOCK_ALIGN ||
      header.block_bytes % SRING_BLOCK_ALIGN != 0 || header.block_bytes > SRING_MAX_BLOCK_BYTES) {
    return make_error(EINVAL, "block size {} in the file header is not a valid sring block size",
                      header.block_bytes);
  }
  if (header.version == kOldestFormatVersion) {
    // Before ABI 1.4 a recording could only be 16-bit, one channel.
    if (header.sample_format != SRING_FMT_U16 && header.sample_format != SRING_FMT_S16) {
      return make_error(EINVAL, "unknown sample format {} in a version 1 file header (u16 or s16 only)",
                        header.sample_format);
    }
    return ok();
  }
  const SampleLayout layout = header_layout(header);
  if (!layout.valid()) {
    return make_error(EINVAL,
                      "the file header's layout is not valid: format {} ({}), {} channels, {} bits per sample "
                      "(a standard format has its own size, a device's own format 1 to 65535 bits; 1 to {} "
                      "channels)",
                      header.sample_format, format_name(header.sample_format), header.channels,
                      header.bits_per_sample, SRING_MAX_CHANNELS);
  }
  if (layout.frames_per_block(header.block_bytes) == 0) {
    return make_error(EINVAL, "a frame of {} ({} bits) does not fit a block of {} bytes", describe(layout),
                      layout.frame_bits(), header.block_bytes);
  }
  return ok();
}

SampleLayout header_layout(const FileHeader& header) {
  if (header.version == kOldestFormatVersion) return SampleLayout{header.sample_format, 1, 16};
  return SampleLayout{header.sample_format, header.channels, header.bits_per_sample};
}

Expected<RecordingFile> RecordingFile::open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error("cannot open {}", path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error("cannot stat {}", path);
  if (!S_ISREG(st.st_mode)) return make_error(EINVAL, "{} is not a regular file", path);
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < kHeaderBytes) {
    return make_error(EINVAL, "{} is {} bytes, shorter than a recording's {}-byte header", path, size,
                      kHeaderBytes);
  }
  RecordingFile file;
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (addr == MAP_FAILED) return errno_error("cannot map {}", path);
  file.mapping_ = Mapping(addr, size);
  file.file_size_ = size;
  std::memcpy(&file.header_, addr, sizeof(FileHeader));
  if (auto valid = validate_header(file.header_); !valid) {
    return make_error(valid.error().code, "{}: {}", path, valid.error().message);
  }
  file.layout_ = header_layout(file.header_);
  const auto* bytes = static_cast<const std::byte*>(addr);
  const uint64_t block_bytes = file.header_.block_bytes;
  // The trailer is where the blocks end, and only there: a file whose tail
  // is not block_bytes-aligned after the header, or lacks the magic, has none.
  uint64_t data_bytes = size - kHeaderBytes;
  if (data_bytes >= kTrailerBytes && (data_bytes - kTrailerBytes) % block_bytes == 0 &&
      std::memcmp(bytes + size - kTrailerBytes, kTrailerMagic, sizeof(kTrailerMagic)) == 0) {
    FileTrailer trailer;
    std::memcpy(&trailer, bytes + size - kTrailerBytes, sizeof(trailer));
    file.trailer_ = trailer;
    data_bytes -= kTrailerBytes;
  }
  file.blocks_ = data_bytes / block_bytes;
  file.partial_bytes_ = data_bytes % block_bytes;
  return file;
}

const sring_block_header& RecordingFile::block(uint64_t index) const {
  const auto* bytes = static_cast<const std::byte*>(mapping_.get());
  return *reinterpret_cast<const sring_block_header*>(bytes + kHeaderBytes + index * header_.block_bytes);
}

const std::byte* RecordingFile::payload(uint64_t index) const {
  return reinterpret_cast<const std::byte*>(&block(index)) + SRING_BLOCK_HEADER_SIZE;
}

CheckReport check(const RecordingFile& file, bool verify) {
  CheckReport report;
  report.partial_bytes = file.partial_bytes();
  report.has_trailer = file.trailer().has_value();
  report.verified = verify;
  const FileHeader& header = file.header();
  // The recorder starts the device from a reset: the stream begins at
  // sequence 0, sample 0, so a loss before the first stored block counts.
  uint64_t next_sequence = 0;
  uint64_t next_sample = 0;
  const SampleLayout& layout = file.layout();
  // The pattern is defined for the standard formats and the simulated
  // devices' own; another device's format cannot be compared with it.
  if (verify && sring_pattern_format_bits(layout.format) != layout.bits_per_sample) {
    report.verified = false;
    report.not_verified_reason =
        fmt::format("the test pattern has no format {}: only the size of its blocks was checked",
                    format_name(layout.format));
  }
  // What a block of this layout says its sample size is (docs/abi.md).
  const uint32_t bytes_per_sample = layout.bits_per_sample % 8 == 0 ? layout.bits_per_sample / 8 : 0;
  const uint64_t payload_capacity = header.block_bytes - SRING_BLOCK_HEADER_SIZE;
  for (uint64_t i = 0; i < file.blocks(); ++i) {
    sring_block_header block;
    std::memcpy(&block, &file.block(i), sizeof(block));
    // A version 1 block has 0 for channels and bits: from_header() reads
    // those as one 16-bit channel, which the version 1 layout is.
    const SampleLayout block_layout = SampleLayout::from_header(block);
    std::string wrong;
    if (block.magic != SRING_BLOCK_MAGIC) {
      wrong = fmt::format("has magic {:#x}, not a block's", block.magic);
    } else if (block.total_bytes != header.block_bytes) {
      wrong = fmt::format("is {} bytes, the file's blocks {}", block.total_bytes, header.block_bytes);
    } else if (block_layout != layout || block.bytes_per_sample != bytes_per_sample) {
      wrong = fmt::format("is {} ({} bits, {} bytes per sample), the file header says {} ({} bits)",
                          describe(block_layout), block_layout.bits_per_sample, block.bytes_per_sample,
                          describe(layout), layout.bits_per_sample);
    } else if (layout.payload_bytes(block.sample_count) > payload_capacity) {
      wrong = fmt::format("says {} frames of {}: {} bytes, more than its {}", block.sample_count,
                          describe(layout), layout.payload_bytes(block.sample_count), payload_capacity);
    } else if (block.sequence < next_sequence || block.first_sample < next_sample) {
      wrong = fmt::format("out of order (sequence {}, frame {} after {}, {})", block.sequence, block.first_sample,
                          next_sequence, next_sample);
    }
    if (!wrong.empty()) {
      report.bad_blocks = file.blocks() - i;
      report.problem = fmt::format("block {} (file offset {}) {}: reading stops there", i,
                                   kHeaderBytes + i * header.block_bytes, wrong);
      break;
    }
    if (block.first_sample != next_sample) {
      ++report.gaps;
      report.missing_samples += block.first_sample - next_sample;
      report.missing_blocks += block.sequence - next_sequence;
    }
    ++report.blocks;
    report.samples += block.sample_count;
    if (report.verified) {
      report.values += uint64_t{block.sample_count} * layout.channels * layout.components();
      report.corrupted_values += count_pattern_mismatches(file.payload(i), block_layout, block.first_sample,
                                                          block.sample_count, header.pattern_seed);
    }
    next_sequence = block.sequence + 1;
    next_sample = block.first_sample + block.sample_count;
  }
  if (const auto& trailer = file.trailer()) {
    report.trailer_matches = trailer->blocks_stored == report.blocks && trailer->samples_stored == report.samples;
    if (!report.trailer_matches && report.problem.empty()) {
      report.problem = fmt::format("the trailer says {} blocks ({} samples) were stored, the file holds {} ({})",
                                   trailer->blocks_stored, trailer->samples_stored, report.blocks, report.samples);
    }
    if (trailer->samples_produced >= next_sample && trailer->blocks_produced >= next_sequence) {
      report.lost_at_end = trailer->samples_produced - next_sample;
      const uint64_t blocks_lost_at_end = trailer->blocks_produced - next_sequence;
      // Everything the device made is in the file, or dropped by the
      // producer, or delivered to the recorder and not written: exactly.
      report.accounting_exact =
          trailer->exact == 1 &&
          report.missing_samples + report.lost_at_end == trailer->samples_dropped + trailer->samples_not_stored &&
          report.missing_blocks + blocks_lost_at_end == trailer->blocks_dropped + trailer->blocks_not_stored;
    }
    if (!report.accounting_exact && report.problem.empty()) {
      report.problem = fmt::format(
          "accounting does not add up: {} samples missing from the file, the trailer counts {} dropped "
          "and {} not stored (ring accounting {})",
          report.missing_samples + report.lost_at_end, trailer->samples_dropped, trailer->samples_not_stored,
          trailer->exact ? "exact" : "inexact");
    }
  }
  return report;
}

}  // namespace sring::recording
