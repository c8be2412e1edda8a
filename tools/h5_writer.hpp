// Writes an sring recording as HDF5 (docs/recording.md, "HDF5"), for
// sring-record --output run.h5 and sring-export: one chunked dataset,
// /samples, whose chunks are the ring's blocks, written with direct chunk
// writes (H5Dwrite_chunk, no filter): a block's payload goes to the file as
// it is in the ring (or in the .srec mapping), with no copy and no
// conversion in user space. Row i is frame i of the run, so a lost block is
// a chunk never written: it costs no space, and /gaps lists which rows are
// fill. The run's configuration and final accounting are attributes of /.
//
// Disk full: HDF5 writes its metadata (chunk index, attributes, the gap
// table) when the file is flushed and closed; if that fails the file is
// unreadable. So the writer keeps room for it allocated past the end of the
// file (fallocate(FALLOC_FL_KEEP_SIZE)) before each run of chunks, stores
// only the blocks that leave that room, and reports ENOSPC for the rest; the
// room is handed back when the file is closed. On a file system without
// fallocate there is no such room (write_error says ENOSPC all the same, but
// the close may then fail).
//
// The header keeps hdf5.h out: HDF5 identifiers are int64_t (hid_t) here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sring/error.hpp"
#include "sring/format.hpp"
#include "sring/recording.hpp"

namespace sring::recording {

// An HDF5 identifier owned: released with H5Idec_ref, whatever its type.
class H5Id {
 public:
  H5Id() = default;
  explicit H5Id(int64_t id) : id_(id) {}
  H5Id(H5Id&& other) noexcept : id_(other.release()) {}
  H5Id& operator=(H5Id&& other) noexcept;
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  ~H5Id() { reset(); }
  int64_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  int64_t release() {
    const int64_t id = id_;
    id_ = -1;
    return id;
  }
  // Closes it; false if HDF5 reported an error doing so (a file's last
  // flush failed).
  bool reset();

 private:
  int64_t id_ = -1;
};

// Whether HDF5 rows can hold this layout as it is: every standard format
// can; sim-packed12 and a device's own formats cannot (their samples are
// not whole bytes, or their type is unknown) and are refused with a
// message saying so.
[[nodiscard]] Status hdf5_layout_supported(const SampleLayout& layout);

// Bytes kept allocated past the end of the file for the metadata written at
// the close (plus 16 per gap, for the gap table).
inline constexpr uint64_t kH5MetadataRoom = 1 << 20;

class H5Writer {
 public:
  // Creates (truncates) path with /samples laid out for header's layout,
  // its chunks one block's frames, and the configuration attributes.
  [[nodiscard]] static Expected<H5Writer> create(const std::string& path, const FileHeader& header);
  H5Writer(H5Writer&&) = default;
  H5Writer& operator=(H5Writer&&) = delete;
  // Without finish() (given up on after an error): closes the file with
  // what it holds, and hands the room back.
  ~H5Writer();

  // Stores `count` blocks laid out every header.block_bytes from `blocks`
  // (ring memory or a .srec mapping), each as the chunk at row
  // first_sample. A block must start on a chunk (first_sample a multiple of
  // the frames per block) and hold at most a block's frames: a short block
  // is padded with zeros in a copy (the only copy), and only a last block
  // can be short, since the next would not start on a chunk. On an error,
  // blocks_stored() counts those of the run that were stored.
  [[nodiscard]] Status append(const std::byte* blocks, uint64_t count);

  // Writes the gap table and the accounting attributes from `trailer` (its
  // blocks_stored and samples_stored set here), extends /samples to every
  // frame produced, closes the file and hands back the room kept for it.
  // accounting_known false: the counters are not known (a .srec without
  // its trailer): only what was stored is written, and complete is false.
  [[nodiscard]] Status finish(FileTrailer& trailer, bool accounting_known = true);

  uint64_t blocks_stored() const { return blocks_stored_; }
  uint64_t samples_stored() const { return samples_stored_; }
  uint64_t chunk_bytes() const { return chunk_bytes_; }
  // Rows of /gaps (after finish(): the last, up to every frame produced, too).
  uint64_t gaps() const { return gaps_.size(); }
  const std::string& path() const { return path_; }

 private:
  struct Gap {
    uint64_t first_sample;
    uint64_t samples;
  };

  H5Writer() = default;
  // Allocates bytes past the end of the file; ENOSPC if the disk cannot.
  Status keep_room(uint64_t bytes);
  Status extend_to(uint64_t frames);
  Status write_attributes_end(const FileTrailer& trailer, bool accounting_known);
  void hand_back_room();

  H5Id file_;
  H5Id samples_;
  int fd_ = -1;  // the file's descriptor, HDF5's (H5Fget_vfd_handle): not ours to close
  bool room_supported_ = true;
  bool finished_ = false;
  std::string path_;
  SampleLayout layout_;
  uint32_t block_bytes_ = 0;
  uint64_t frames_per_block_ = 0;
  uint64_t chunk_bytes_ = 0;
  uint64_t next_frame_ = 0;     // just after the last block stored
  uint64_t extent_ = 0;         // rows of /samples now
  uint64_t blocks_stored_ = 0;
  uint64_t samples_stored_ = 0;
  uint64_t room_end_ = 0;       // the end of the room kept past the file's end
  std::vector<Gap> gaps_;
  std::vector<std::byte> padded_;  // a short block's chunk
};

}  // namespace sring::recording
