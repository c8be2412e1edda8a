#include "sring/recording.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "ringlib/error_format.hpp"
#include "sring/verify.hpp"

namespace sring::recording {

Status validate_header(const FileHeader& header) {
  if (std::memcmp(header.magic, kFileMagic, sizeof(kFileMagic)) != 0) {
    return make_error(EINVAL, "not an sring recording (no SRINGREC magic)");
  }
  if (header.version != kFormatVersion) {
    return make_error(EINVAL, "recording format version {} (this reader knows {})", header.version,
                      kFormatVersion);
  }
  if (header.header_bytes != kHeaderBytes || header.trailer_bytes != kTrailerBytes) {
    return make_error(EINVAL, "header of {} bytes and trailer of {} bytes (version 1 has {} and {})",
                      header.header_bytes, header.trailer_bytes, kHeaderBytes, kTrailerBytes);
  }
  if (header.block_bytes < SRING_BLOCK_HEADER_SIZE + SRING_BLOCK_ALIGN ||
      header.block_bytes % SRING_BLOCK_ALIGN != 0 || header.block_bytes > SRING_MAX_BLOCK_BYTES) {
    return make_error(EINVAL, "block size {} in the file header is not a valid sring block size",
                      header.block_bytes);
  }
  if (header.sample_format != SRING_FMT_U16 && header.sample_format != SRING_FMT_S16) {
    return make_error(EINVAL, "unknown sample format {} in the file header", header.sample_format);
  }
  return ok();
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

const uint16_t* RecordingFile::samples(uint64_t index) const {
  return reinterpret_cast<const uint16_t*>(&block(index) + 1);
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
  for (uint64_t i = 0; i < file.blocks(); ++i) {
    sring_block_header block;
    std::memcpy(&block, &file.block(i), sizeof(block));
    const bool well_formed = block.magic == SRING_BLOCK_MAGIC && block.total_bytes == header.block_bytes &&
                             block.sample_format == header.sample_format && block.bytes_per_sample == 2 &&
                             uint64_t{block.sample_count} * 2 <= block.total_bytes - SRING_BLOCK_HEADER_SIZE;
    if (!well_formed || block.sequence < next_sequence || block.first_sample < next_sample) {
      report.bad_blocks = file.blocks() - i;
      report.problem = fmt::format("block {} (file offset {}) is {}: reading stops there", i,
                                   kHeaderBytes + i * header.block_bytes,
                                   well_formed ? "out of order" : "not a valid block");
      break;
    }
    if (block.first_sample != next_sample) {
      ++report.gaps;
      report.missing_samples += block.first_sample - next_sample;
      report.missing_blocks += block.sequence - next_sequence;
    }
    ++report.blocks;
    report.samples += block.sample_count;
    if (verify) {
      report.corrupted_samples +=
          count_pattern_mismatches(file.samples(i), block.first_sample, block.sample_count, header.pattern_seed);
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
