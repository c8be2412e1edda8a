// The file sring-record writes: a .srec (RecordingWriter) or HDF5
// (H5Writer), behind one interface. Which containers a build can write is
// decided at link time, not by a macro in record_main.cpp: the dynamic
// sring-record links :record_output_h5 (.srec and HDF5), the static one
// for the QEMU guest, which has no libhdf5, links :record_output_srec
// (.srec only; it says so for an .h5). Each provides resolve_container()
// and open_record_output() below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "sring/error.hpp"
#include "sring/recording.hpp"

namespace sring::recording {

enum class Container { kByName, kSrec, kHdf5 };

class RecordOutput {
 public:
  virtual ~RecordOutput() = default;
  // count whole blocks from the ring's memory; says how many were stored.
  [[nodiscard]] virtual Status append(const std::byte* blocks, uint64_t count) = 0;
  virtual uint64_t blocks_stored() const = 0;
  // Frames: an HDF5 file may end on a short block; a .srec's are all full.
  virtual uint64_t samples_stored(uint64_t frames_per_block) const = 0;
  virtual uint64_t blocks_given_back() const = 0;
  [[nodiscard]] virtual Status finish(FileTrailer& trailer, uint64_t frames_per_block) = 0;
  // How the blocks reach the disk, for the summary.
  virtual std::string_view how() const = 0;
  // HDF5 takes a short block (a chunk padded in a copy) and keeps the final
  // accounting in attributes; a .srec takes full blocks and has a trailer.
  virtual bool hdf5() const = 0;
  std::string_view closing_part() const { return hdf5() ? "attributes" : "trailer"; }
};

// A path sring-record writes as HDF5 when asked by name: .h5 or .hdf5.
[[nodiscard]] bool is_hdf5_path(std::string_view path);

// kByName becomes kHdf5 for a path ending in .h5 or .hdf5, else kSrec; a
// container this build cannot write is refused with what to do instead.
[[nodiscard]] Expected<Container> resolve_container(Container asked, const std::string& path);

// Creates (or truncates) path. direct: O_DIRECT for a .srec where the
// block size allows it.
[[nodiscard]] Expected<std::unique_ptr<RecordOutput>> open_record_output(Container container,
                                                                         const std::string& path,
                                                                         const FileHeader& header, bool direct);

// The .srec output, which every build has.
[[nodiscard]] Expected<std::unique_ptr<RecordOutput>> open_srec_output(const std::string& path,
                                                                       const FileHeader& header, bool direct);

}  // namespace sring::recording
