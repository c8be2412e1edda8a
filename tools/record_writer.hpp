// Writes an sring recording (docs/recording.md): the file header, runs of
// blocks straight from the ring's memory, and the trailer. No copy on the
// way: pwrite() takes the ring's pages as its buffer. With O_DIRECT (when
// the block size is a multiple of 4096, so every run starts and ends on a
// page of the ring and of the file) the kernel does not copy them into the
// page cache either.
//
// A failed write leaves the file valid up to its last complete block (a
// partial block is cut off with ftruncate); the writer says how many blocks
// of the run made it, and the caller counts the rest as not stored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sring/error.hpp"
#include "sring/recording.hpp"
#include "sring/ring.hpp"
#include "sring/unique_fd.hpp"

namespace sring::recording {

// The file header of a recording of `ring` (format version kFormatVersion):
// block size, rate, layout (format, channels, bits per sample; a 1.3
// producer's zeros written out as one 16-bit channel), seed, policy and ABI
// version from its producer page, the clocks now, and `source`.
[[nodiscard]] FileHeader make_file_header(const Ring& ring, std::string_view source);

class RecordingWriter {
 public:
  // Creates (truncates) path and writes the header, which must be of the
  // current version (kFormatVersion) and valid. try_direct: use
  // O_DIRECT if the block size allows it and the file system takes it;
  // direct() says whether it did.
  [[nodiscard]] static Expected<RecordingWriter> create(const std::string& path, const FileHeader& header,
                                                        bool try_direct);

  // Appends `count` blocks of header().block_bytes each, contiguous at
  // `blocks` (ring memory). Returns how many were stored; on an error,
  // blocks_stored() counts those of the run that made it whole and the
  // file ends after them.
  [[nodiscard]] Status append(const std::byte* blocks, uint64_t count);

  // Writes the trailer after the last block stored and syncs the file. If
  // the disk is full, gives back blocks from the end until the trailer fits
  // (trailer.blocks_not_stored etc. are updated from blocks_given_back());
  // fills blocks_stored and samples_stored (frames: every block is full,
  // frames_per_block each) itself.
  [[nodiscard]] Status finish(FileTrailer& trailer, uint64_t frames_per_block);

  bool direct() const { return direct_; }
  uint64_t blocks_stored() const { return blocks_stored_; }
  // Blocks removed from the end to make room for the trailer.
  uint64_t blocks_given_back() const { return blocks_given_back_; }
  const std::string& path() const { return path_; }

 private:
  RecordingWriter() = default;
  // Writes all of [data, data + length) at offset; written says how far it got.
  Status write_at(const std::byte* data, uint64_t length, uint64_t offset, uint64_t& written);
  uint64_t end_of_blocks() const { return kHeaderBytes + blocks_stored_ * block_bytes_; }

  UniqueFd fd_;
  std::string path_;
  uint64_t block_bytes_ = 0;
  uint64_t blocks_stored_ = 0;
  uint64_t blocks_given_back_ = 0;
  bool direct_ = false;
  bool regular_ = true;  // ftruncate() and fdatasync() apply (not /dev/full)
};

}  // namespace sring::recording
