#include "tools/record_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include <cstring>
#include <memory>

#include "ringlib/error_format.hpp"

namespace sring::recording {
namespace {

// A page-aligned buffer for the header and trailer: O_DIRECT needs aligned
// memory, and these two are the only bytes the recorder writes from its own.
struct alignas(kDirectAlign) PageBuffer {
  std::byte bytes[kHeaderBytes];
};
static_assert(kHeaderBytes == kTrailerBytes);

uint64_t clock_ns(clockid_t clock) {
  timespec ts{};
  ::clock_gettime(clock, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

FileHeader make_file_header(const Ring& ring, std::string_view source) {
  const sring_producer_page& p = ring.producer();
  FileHeader header{};
  std::memcpy(header.magic, kFileMagic, sizeof(header.magic));
  header.version = kFormatVersion;
  header.header_bytes = kHeaderBytes;
  header.trailer_bytes = kTrailerBytes;
  header.block_bytes = load_relaxed(p.block_bytes);
  header.sample_rate = load_relaxed(p.sample_rate);
  // The layout as the ring declares it: a 1.3 producer's zeros read as one
  // 16-bit channel (SampleLayout::from_page()), written out explicitly.
  const SampleLayout layout = SampleLayout::from_page(p);
  header.sample_format = layout.format;
  header.channels = layout.channels;
  header.bits_per_sample = layout.bits_per_sample;
  header.pattern_seed = load_relaxed(p.pattern_seed);
  header.overrun_policy = load_relaxed(p.overrun_policy);
  header.abi_version = load_relaxed(p.abi_version);
  header.ring_size = ring.ring_size();
  header.start_realtime_ns = clock_ns(CLOCK_REALTIME);
  header.start_monotonic_ns = clock_ns(CLOCK_MONOTONIC);
  std::copy_n(source.data(), std::min(source.size(), sizeof(header.source) - 1), header.source);
  return header;
}

Expected<RecordingWriter> RecordingWriter::create(const std::string& path, const FileHeader& header,
                                                  bool try_direct) {
  if (auto valid = validate_header(header); !valid) return valid.error();
  if (header.version != kFormatVersion) {
    return make_error(EINVAL, "the writer writes recording format version {}, not {}", kFormatVersion,
                      header.version);
  }
  RecordingWriter writer;
  writer.path_ = path;
  writer.block_bytes_ = header.block_bytes;
  const int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  // O_DIRECT needs every buffer, offset and length aligned to the device's
  // logical block (512 or 4096): blocks of a multiple of 4096 bytes start
  // on a page of the (page-aligned) ring and at a 4096-aligned file offset.
  if (try_direct && header.block_bytes % kDirectAlign == 0) {
    writer.fd_ = UniqueFd(::open(path.c_str(), flags | O_DIRECT, 0644));
    // EINVAL: the file system has no O_DIRECT (tmpfs before Linux 6.6).
    if (!writer.fd_.valid() && errno != EINVAL) return errno_error("cannot create {}", path);
    writer.direct_ = writer.fd_.valid();
  }
  if (!writer.fd_.valid()) {
    writer.fd_ = UniqueFd(::open(path.c_str(), flags, 0644));
    if (!writer.fd_.valid()) return errno_error("cannot create {}", path);
  }
  struct stat st {};
  if (::fstat(writer.fd_.get(), &st) != 0) return errno_error("cannot stat {}", path);
  writer.regular_ = S_ISREG(st.st_mode);
  auto page = std::make_unique<PageBuffer>();
  std::memcpy(page->bytes, &header, sizeof(header));
  uint64_t written = 0;
  if (auto status = writer.write_at(page->bytes, kHeaderBytes, 0, written); !status) {
    return make_error(status.error().code, "cannot write the file header of {}: {}", path,
                      status.error().message);
  }
  return writer;
}

Status RecordingWriter::write_at(const std::byte* data, uint64_t length, uint64_t offset, uint64_t& written) {
  written = 0;
  while (written < length) {
    const ssize_t n = ::pwrite(fd_.get(), data + written, length - written, static_cast<off_t>(offset + written));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL && direct_) {
      // The file system refused this buffer or offset for O_DIRECT after
      // all: go on through the page cache rather than lose the run.
      const int fl = ::fcntl(fd_.get(), F_GETFL);
      if (fl >= 0 && ::fcntl(fd_.get(), F_SETFL, fl & ~O_DIRECT) == 0) {
        direct_ = false;
        continue;
      }
    }
    if (n < 0) return errno_error("write to {} failed", path_);
    if (n == 0) return make_error(EIO, "write to {} wrote nothing", path_);
    written += static_cast<uint64_t>(n);
  }
  return ok();
}

Status RecordingWriter::append(const std::byte* blocks, uint64_t count) {
  uint64_t written = 0;
  const Status status = write_at(blocks, count * block_bytes_, end_of_blocks(), written);
  blocks_stored_ += written / block_bytes_;
  if (!status && regular_ && written % block_bytes_ != 0) {
    // Cut off the partial block, so the file ends on a complete one. If even
    // that fails, a reader still stops at the last complete block.
    (void)!::ftruncate(fd_.get(), static_cast<off_t>(end_of_blocks()));
  }
  return status;
}

Status RecordingWriter::finish(FileTrailer& trailer, uint64_t frames_per_block) {
  auto page = std::make_unique<PageBuffer>();
  for (;;) {
    trailer.blocks_stored = blocks_stored_;
    trailer.samples_stored = blocks_stored_ * frames_per_block;
    std::memcpy(page->bytes, &trailer, sizeof(trailer));
    uint64_t written = 0;
    Status status = write_at(page->bytes, kTrailerBytes, end_of_blocks(), written);
    // The trailer must end the file, or a reader cannot find it: cut off
    // anything a failed write left beyond it.
    if (status && regular_ && ::ftruncate(fd_.get(), static_cast<off_t>(end_of_blocks() + kTrailerBytes)) != 0) {
      return errno_error("cannot cut {} to its trailer", path_);
    }
    if (status) break;
    if (regular_) (void)!::ftruncate(fd_.get(), static_cast<off_t>(end_of_blocks()));
    // Disk full: the trailer matters more than the last blocks, which are
    // then counted as not stored, exactly like those that never fit.
    if (status.error().code != ENOSPC || !regular_ || blocks_stored_ == 0) return status;
    const uint64_t give_back = std::min<uint64_t>(blocks_stored_, (kTrailerBytes + block_bytes_ - 1) / block_bytes_);
    blocks_stored_ -= give_back;
    blocks_given_back_ += give_back;
    trailer.blocks_not_stored += give_back;
    trailer.samples_not_stored += give_back * frames_per_block;
    if (::ftruncate(fd_.get(), static_cast<off_t>(end_of_blocks())) != 0) {
      return errno_error("cannot shorten {} to make room for the trailer", path_);
    }
  }
  if (regular_ && ::fdatasync(fd_.get()) != 0) return errno_error("fdatasync of {} failed", path_);
  return ok();
}

}  // namespace sring::recording
