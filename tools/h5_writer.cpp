#include "tools/h5_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>

#include "ringlib/error_format.hpp"
#include "sring/sring_abi.h"
#include "sring/sring_pattern.h"
#include "sring/sring_version.h"
#include "sring/unique_fd.hpp"
#include "tools/cli.hpp"

namespace sring::recording {

static_assert(std::is_same_v<hid_t, int64_t>, "H5Id holds a hid_t");

H5Id& H5Id::operator=(H5Id&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.release();
  }
  return *this;
}

bool H5Id::reset() {
  if (id_ < 0) return true;
  const int left = H5Idec_ref(release());
  return left >= 0;
}

namespace {

// HDF5 reports errors on a stack of its own and prints them by default; the
// tools say what failed in one sentence instead: the failing call's own
// description, then what the innermost one says (errno text included).
herr_t collect_error(unsigned, const H5E_error2_t* error, void* data) {
  auto& parts = *static_cast<std::vector<std::string>*>(data);
  if (error->desc != nullptr && error->desc[0] != '\0') parts.emplace_back(error->desc);
  return 0;
}

Error hdf5_error(int fallback_code, std::string what) {
  std::vector<std::string> parts;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error, &parts);
  H5Eclear2(H5E_DEFAULT);
  int code = fallback_code;
  std::string detail;
  if (!parts.empty()) detail = parts.front();
  // The file driver's message carries the system error: "errno = 28, ...".
  for (const auto& part : parts) {
    const auto at = part.find("errno = ");
    if (at == std::string::npos) continue;
    const int number = std::atoi(part.c_str() + at + 8);
    if (number > 0) {
      code = number;
      detail = std::system_category().message(number);
    }
  }
  return Error{code, detail.empty() ? what : fmt::format("{}: {}", what, detail)};
}

std::string iso_time(uint64_t realtime_ns) {
  const time_t seconds = static_cast<time_t>(realtime_ns / 1'000'000'000u);
  tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:09}Z", text, realtime_ns % 1'000'000'000u);
}

std::string_view end_reason_name(uint32_t reason) {
  switch (static_cast<EndReason>(reason)) {
    case EndReason::kStreamEnded: return "stream ended";
    case EndReason::kSignal: return "signal";
    case EndReason::kWriteError: return "write error";
  }
  return "unknown";
}

// The HDF5 type of one element of the dataset: the sample type of a real
// format; cs16's I and Q are the last axis of int16; cf32 is a compound
// {r, i} of float32, which h5py and numpy read as complex64.
Expected<H5Id> element_type(uint32_t format) {
  switch (format) {
    case SRING_FMT_U8: return H5Id(H5Tcopy(H5T_STD_U8LE));
    case SRING_FMT_S8: return H5Id(H5Tcopy(H5T_STD_I8LE));
    case SRING_FMT_U16: return H5Id(H5Tcopy(H5T_STD_U16LE));
    case SRING_FMT_S16:
    case SRING_FMT_CS16: return H5Id(H5Tcopy(H5T_STD_I16LE));
    case SRING_FMT_S32: return H5Id(H5Tcopy(H5T_STD_I32LE));
    case SRING_FMT_F32: return H5Id(H5Tcopy(H5T_IEEE_F32LE));
    case SRING_FMT_CF32: {
      H5Id type(H5Tcreate(H5T_COMPOUND, 8));
      if (!type.valid() || H5Tinsert(type.get(), "r", 0, H5T_IEEE_F32LE) < 0 ||
          H5Tinsert(type.get(), "i", 4, H5T_IEEE_F32LE) < 0) {
        return hdf5_error(EIO, "cannot make the cf32 type");
      }
      return type;
    }
    default: break;
  }
  return make_error(EINVAL, "no HDF5 type for format {}", format_name(format));
}

// Attributes of / (or another object): one value each.
class Attributes {
 public:
  explicit Attributes(hid_t object) : object_(object) {}

  Status u64(const char* name, uint64_t value) { return number(name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value); }
  Status u32(const char* name, uint32_t value) { return number(name, H5T_STD_U32LE, H5T_NATIVE_UINT32, &value); }
  Status i32(const char* name, int32_t value) { return number(name, H5T_STD_I32LE, H5T_NATIVE_INT32, &value); }

  // As h5py writes a bool: an int8 enum FALSE 0, TRUE 1 (read back as numpy.bool_).
  Status boolean(const char* name, bool value) {
    H5Id type(H5Tenum_create(H5T_NATIVE_INT8));
    const int8_t no = 0, yes = 1;
    if (!type.valid() || H5Tenum_insert(type.get(), "FALSE", &no) < 0 ||
        H5Tenum_insert(type.get(), "TRUE", &yes) < 0) {
      return hdf5_error(EIO, fmt::format("cannot make the type of attribute {}", name));
    }
    const int8_t v = value ? 1 : 0;
    return number(name, type.get(), type.get(), &v);
  }

  // A variable-length UTF-8 string (h5py reads it as str).
  Status text(const char* name, std::string_view value) {
    H5Id type(H5Tcopy(H5T_C_S1));
    if (!type.valid() || H5Tset_size(type.get(), H5T_VARIABLE) < 0 ||
        H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0) {
      return hdf5_error(EIO, fmt::format("cannot make the type of attribute {}", name));
    }
    const std::string copy(value);
    const char* pointer = copy.c_str();
    return number(name, type.get(), type.get(), &pointer);
  }

 private:
  Status number(const char* name, hid_t file_type, hid_t memory_type, const void* value) {
    H5Id space(H5Screate(H5S_SCALAR));
    // Rewritten if there already (an export over an existing name cannot
    // happen: the file is new; this keeps finish() idempotent).
    if (H5Aexists(object_, name) > 0) H5Adelete(object_, name);
    H5Id attribute(H5Acreate2(object_, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT));
    if (!attribute.valid() || H5Awrite(attribute.get(), memory_type, value) < 0) {
      return hdf5_error(EIO, fmt::format("cannot write attribute {}", name));
    }
    return ok();
  }

  hid_t object_;
};

Status write_configuration(hid_t file, const FileHeader& header, const SampleLayout& layout,
                           uint64_t frames_per_block) {
  Attributes a(file);
  const std::string_view source(header.source, strnlen(header.source, sizeof(header.source)));
  Status status = ok();
  // Stops at the first failure: each is a sentence already.
  auto put = [&](Status s) {
    if (status && !s) status = s;
  };
  put(a.u32("sring_hdf5_version", 1));
  put(a.text("format", format_name(layout.format)));
  put(a.u32("sample_format", layout.format));
  put(a.u32("channels", layout.channels));
  put(a.u32("bits_per_sample", layout.bits_per_sample));
  put(a.u64("sample_rate", header.sample_rate));
  put(a.u32("block_bytes", header.block_bytes));
  put(a.u64("frames_per_block", frames_per_block));
  put(a.text("overrun_policy", cli::overrun_policy_name(header.overrun_policy)));
  put(a.u32("pattern_seed", header.pattern_seed));
  put(a.text("source", source));
  put(a.text("sring_version", SRING_VERSION));
  put(a.text("abi_version", fmt::format("{}.{}", SRING_ABI_MAJOR(header.abi_version),
                                        SRING_ABI_MINOR(header.abi_version))));
  put(a.u64("ring_size", header.ring_size));
  put(a.text("start_time", iso_time(header.start_realtime_ns)));
  put(a.u64("start_realtime_ns", header.start_realtime_ns));
  put(a.u64("start_monotonic_ns", header.start_monotonic_ns));
  // Until finish() writes the accounting: a reader of a file whose writer
  // died knows the counters are missing.
  put(a.boolean("complete", false));
  return status;
}

}  // namespace


Status hdf5_layout_supported(const SampleLayout& layout) {
  if (layout.format == SRING_FMT_SIM_PACKED12) {
    return make_error(EINVAL, "sim-packed12 packs two 12-bit samples in three bytes: no HDF5 type holds its "
                              "samples as they are in the ring; record it to .srec instead");
  }
  if (layout.is_device_format() || !SampleLayout::standard(layout.format, layout.channels)) {
    return make_error(EINVAL, "format {} is a device's own: HDF5 has no type for its samples; record it to "
                              ".srec instead",
                      format_name(layout.format));
  }
  return ok();
}

Expected<H5Writer> H5Writer::create(const std::string& path, const FileHeader& header) {
  if (auto valid = validate_header(header); !valid) return valid.error();
  const SampleLayout layout = header_layout(header);
  if (auto supported = hdf5_layout_supported(layout); !supported) return supported.error();
  // Errors become messages (hdf5_error()), not HDF5's own printout.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  // HDF5 says only "unable to truncate a file"; open() says why.
  {
    UniqueFd probe(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!probe.valid()) return errno_error("cannot create {}", path);
  }
  H5Writer writer;
  writer.path_ = path;
  writer.layout_ = layout;
  writer.block_bytes_ = header.block_bytes;
  writer.frames_per_block_ = layout.frames_per_block(header.block_bytes);
  writer.chunk_bytes_ = layout.payload_bytes(writer.frames_per_block_);
  writer.file_ = H5Id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (!writer.file_.valid()) return hdf5_error(EIO, fmt::format("cannot create {}", path));

  auto type = element_type(layout.format);
  if (!type) return type.error();
  const bool iq_axis = layout.format == SRING_FMT_CS16;
  const int rank = iq_axis ? 3 : 2;
  const hsize_t dims[3] = {0, layout.channels, 2};
  const hsize_t max_dims[3] = {H5S_UNLIMITED, layout.channels, 2};
  const hsize_t chunk[3] = {writer.frames_per_block_, layout.channels, 2};
  H5Id space(H5Screate_simple(rank, dims, max_dims));
  H5Id dcpl(H5Pcreate(H5P_DATASET_CREATE));
  if (!space.valid() || !dcpl.valid() || H5Pset_chunk(dcpl.get(), rank, chunk) < 0) {
    return hdf5_error(EIO, fmt::format("cannot lay out /samples in {}", path));
  }
  writer.samples_ = H5Id(H5Dcreate2(writer.file_.get(), "samples", type->get(), space.get(), H5P_DEFAULT,
                                    dcpl.get(), H5P_DEFAULT));
  if (!writer.samples_.valid()) return hdf5_error(EIO, fmt::format("cannot create /samples in {}", path));
  if (auto status = write_configuration(writer.file_.get(), header, layout, writer.frames_per_block_); !status) {
    return make_error(status.error().code, "{}: {}", path, status.error().message);
  }
  void* handle = nullptr;
  H5Id fapl(H5Fget_access_plist(writer.file_.get()));
  if (!fapl.valid() || H5Fget_vfd_handle(writer.file_.get(), fapl.get(), &handle) < 0 || handle == nullptr) {
    return hdf5_error(EIO, fmt::format("cannot get the descriptor of {}", path));
  }
  writer.fd_ = *static_cast<int*>(handle);  // the sec2 driver's: an int
  if (H5Fflush(writer.file_.get(), H5F_SCOPE_LOCAL) < 0) {
    return hdf5_error(EIO, fmt::format("cannot write {}", path));
  }
  if (auto room = writer.keep_room(kH5MetadataRoom); !room) return room.error();
  return writer;
}

Status H5Writer::keep_room(uint64_t bytes) {
  if (!room_supported_ || fd_ < 0) return ok();
  // From the end of what is on disk: every address HDF5 hands out from here
  // on (chunks, and metadata it writes later) is at or above the smaller of
  // its allocation end and the file's end, and the last flush wrote
  // everything below.
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return errno_error("cannot stat {}", path_);
  hsize_t h5_size = 0;
  if (H5Fget_filesize(file_.get(), &h5_size) < 0) return hdf5_error(EIO, fmt::format("cannot size {}", path_));
  const uint64_t end = std::max<uint64_t>(static_cast<uint64_t>(st.st_size), h5_size);
  const uint64_t base = std::min<uint64_t>(static_cast<uint64_t>(st.st_size), h5_size);
  const uint64_t length = end - base + bytes;
  if (::fallocate(fd_, FALLOC_FL_KEEP_SIZE, static_cast<off_t>(base), static_cast<off_t>(length)) == 0) {
    room_end_ = std::max(room_end_, base + length);
    return ok();
  }
  if (errno == EOPNOTSUPP || errno == ENOSYS) {
    room_supported_ = false;  // documented: no room kept on such a file system
    return ok();
  }
  return errno_error("write to {} failed", path_);
}

Status H5Writer::extend_to(uint64_t frames) {
  if (frames <= extent_) return ok();
  const hsize_t dims[3] = {frames, layout_.channels, 2};
  if (H5Dset_extent(samples_.get(), dims) < 0) {
    return hdf5_error(EIO, fmt::format("cannot extend /samples of {} to {} rows", path_, frames));
  }
  extent_ = frames;
  return ok();
}

Status H5Writer::append(const std::byte* blocks, uint64_t count) {
  if (!file_.valid()) return make_error(EBADF, "{} is closed", path_);
  // Check the whole run first: it is stored up to its first bad block.
  std::optional<Error> bad;
  uint64_t good = 0;
  uint64_t expected_from = next_frame_;
  for (; good < count; ++good) {
    const auto& h = *reinterpret_cast<const sring_block_header*>(blocks + good * block_bytes_);
    if (h.sample_count == 0 || h.sample_count > frames_per_block_) {
      bad = make_error(EPROTO, "block {} holds {} frames, a chunk of {} takes 1 to {}", h.sequence,
                       h.sample_count, path_, frames_per_block_);
    } else if (h.first_sample < expected_from) {
      bad = make_error(EPROTO, "block {} starts at frame {}, before the end of the block before it ({})",
                       h.sequence, h.first_sample, expected_from);
    } else if (h.first_sample % frames_per_block_ != 0) {
      bad = make_error(EPROTO,
                       "block {} starts at frame {}, not on a chunk of {} frames (a short block before it): "
                       "HDF5 rows cannot take it as it is",
                       h.sequence, h.first_sample, frames_per_block_);
    }
    if (bad) break;
    expected_from = h.first_sample + h.sample_count;
  }
  // Room on the disk for these chunks and for what the close writes; if the
  // disk cannot give it, fewer blocks (halving), then none.
  const uint64_t metadata_room = kH5MetadataRoom + (gaps_.size() + good) * sizeof(Gap);
  uint64_t fit = good;
  std::optional<Error> full;
  while (true) {
    auto room = keep_room(fit * chunk_bytes_ + metadata_room);
    if (room) break;
    if (room.error().code != ENOSPC) return room.error();
    if (!full) {
      full = make_error(ENOSPC, "{} (keeping {} KiB free for the HDF5 file's metadata)", room.error().message,
                        metadata_room >> 10);
    }
    if (fit == 0) break;  // the room kept before is still there
    fit /= 2;
  }
  if (fit > 0) {
    const auto& last = *reinterpret_cast<const sring_block_header*>(blocks + (fit - 1) * block_bytes_);
    if (auto extended = extend_to(last.first_sample + last.sample_count); !extended) return extended;
  }
  for (uint64_t i = 0; i < fit; ++i) {
    const std::byte* block = blocks + i * block_bytes_;
    const auto& h = *reinterpret_cast<const sring_block_header*>(block);
    const std::byte* payload = block + SRING_BLOCK_HEADER_SIZE;
    if (h.sample_count < frames_per_block_) {
      // A chunk is always whole: a short block's frames, then zeros (rows
      // past the extent, which no reader sees).
      padded_.assign(chunk_bytes_, std::byte{0});
      std::memcpy(padded_.data(), payload, layout_.payload_bytes(h.sample_count));
      payload = padded_.data();
    }
    const hsize_t offset[3] = {h.first_sample, 0, 0};
    // The block's payload as the chunk's bytes: no filter, no conversion.
    if (H5Dwrite_chunk(samples_.get(), H5P_DEFAULT, 0, offset, chunk_bytes_, payload) < 0) {
      return hdf5_error(EIO, fmt::format("write to {} failed", path_));
    }
    if (h.first_sample > next_frame_) gaps_.push_back(Gap{next_frame_, h.first_sample - next_frame_});
    next_frame_ = h.first_sample + h.sample_count;
    ++blocks_stored_;
    samples_stored_ += h.sample_count;
  }
  // The chunk index and the extent on disk now: the close then has little
  // left to write, well within the room kept.
  if (fit > 0 && H5Fflush(file_.get(), H5F_SCOPE_LOCAL) < 0) {
    return hdf5_error(EIO, fmt::format("write to {} failed", path_));
  }
  if (full) return *full;
  if (bad) return *bad;
  return ok();
}

Status H5Writer::write_attributes_end(const FileTrailer& t, bool accounting_known) {
  Attributes a(file_.get());
  Status status = ok();
  auto put = [&](Status s) {
    if (status && !s) status = s;
  };
  put(a.u64("blocks_stored", t.blocks_stored));
  put(a.u64("samples_stored", t.samples_stored));
  if (accounting_known) {
    put(a.u64("blocks_delivered", t.blocks_delivered));
    put(a.u64("samples_delivered", t.samples_delivered));
    put(a.u64("blocks_not_stored", t.blocks_not_stored));
    put(a.u64("samples_not_stored", t.samples_not_stored));
    put(a.u64("blocks_produced", t.blocks_produced));
    put(a.u64("samples_produced", t.samples_produced));
    put(a.u64("blocks_dropped", t.blocks_dropped));
    put(a.u64("samples_dropped", t.samples_dropped));
    put(a.u64("missing_blocks", t.missing_blocks));
    put(a.u64("missing_samples", t.missing_samples));
    put(a.u32("final_state", t.final_state));
    put(a.boolean("exact", t.exact == 1));
    put(a.i32("write_errno", t.write_errno));
    put(a.text("write_error", t.write_errno ? std::system_category().message(t.write_errno) : std::string()));
    put(a.text("end_reason", end_reason_name(t.end_reason)));
    put(a.u64("stop_realtime_ns", t.stop_realtime_ns));
    put(a.text("stop_time", iso_time(t.stop_realtime_ns)));
  }
  put(a.boolean("complete", accounting_known));
  return status;
}

Status H5Writer::finish(FileTrailer& trailer, bool accounting_known) {
  if (!file_.valid()) return make_error(EBADF, "{} is closed", path_);
  finished_ = true;
  // Every frame the device produced has a row: those after the last block
  // stored (dropped, or not stored after a write error) are the last gap.
  const uint64_t frames = accounting_known ? std::max(next_frame_, trailer.samples_produced) : next_frame_;
  if (frames > next_frame_) gaps_.push_back(Gap{next_frame_, frames - next_frame_});
  trailer.blocks_stored = blocks_stored_;
  trailer.samples_stored = samples_stored_;
  // The room kept at the last append covers this; more if it can be had.
  (void)keep_room(kH5MetadataRoom + gaps_.size() * sizeof(Gap));
  Status status = extend_to(frames);

  if (status) {
    H5Id type(H5Tcreate(H5T_COMPOUND, sizeof(Gap)));
    const hsize_t rows = gaps_.size();
    H5Id space(H5Screate_simple(1, &rows, nullptr));
    H5Id gaps;
    if (type.valid() && H5Tinsert(type.get(), "first_sample", offsetof(Gap, first_sample), H5T_STD_U64LE) >= 0 &&
        H5Tinsert(type.get(), "samples", offsetof(Gap, samples), H5T_STD_U64LE) >= 0 && space.valid()) {
      gaps = H5Id(H5Dcreate2(file_.get(), "gaps", type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    }
    if (!gaps.valid() ||
        (rows > 0 && H5Dwrite(gaps.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, gaps_.data()) < 0)) {
      status = hdf5_error(EIO, fmt::format("cannot write the gap table of {}", path_));
    }
  }
  if (status) {
    if (auto written = write_attributes_end(trailer, accounting_known); !written) {
      status = make_error(written.error().code, "{}: {}", path_, written.error().message);
    }
  }
  if (H5Fflush(file_.get(), H5F_SCOPE_LOCAL) < 0 && status) {
    status = hdf5_error(EIO, fmt::format("cannot write {}", path_));
  }
  samples_.reset();
  if (!file_.reset() && status) status = hdf5_error(EIO, fmt::format("cannot close {}", path_));
  fd_ = -1;
  hand_back_room();
  return status;
}

void H5Writer::hand_back_room() {
  if (room_end_ == 0) return;
  // The room kept past the end: punched out, and the file cut to its size
  // (either alone leaves it allocated on some file systems).
  UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_CLOEXEC));
  struct stat st {};
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0) return;
  const auto size = static_cast<uint64_t>(st.st_size);
  if (room_end_ > size) {
    (void)::fallocate(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(size),
                      static_cast<off_t>(room_end_ - size));
  }
  (void)!::ftruncate(fd.get(), st.st_size);
  room_end_ = 0;
}

H5Writer::~H5Writer() {
  if (finished_ || !file_.valid()) return;
  // Given up on (an error before finish()): closed with what it holds.
  samples_.reset();
  file_.reset();
  hand_back_room();
}

}  // namespace sring::recording
