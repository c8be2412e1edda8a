// sring-export: an sring recording (.srec, docs/recording.md) to HDF5, the
// layout sring-record --output run.h5 writes (tools/h5_writer.hpp): each
// block's payload becomes a chunk as it is in the file, by direct chunk
// writes from the read-only mapping of the .srec (no copy, no conversion).
//
//   sring-export run.srec run.h5
//
// Exit status: 0 converted (a .srec without its trailer too: what it holds,
// with complete = false and a warning); 2 errors (no input, not a
// recording, a corrupt block, a layout HDF5 cannot hold, the input itself
// as the output, an unwritable or full output).
#include <sys/stat.h>

#include <algorithm>
#include <string>

#include <fmt/format.h>

#include "ringlib/error_format.hpp"
#include "sring/recording.hpp"
#include "tools/cli.hpp"
#include "tools/h5_writer.hpp"
#include "tools/version.hpp"

namespace {

using namespace sring;

constexpr char kUsage[] =
    "usage: sring-export IN.srec OUT.h5\n"
    "  Converts an sring recording (sring-record's .srec) to HDF5: /samples with one chunk per\n"
    "  block (rows are frames since the start of the run), /gaps for the rows that are fill,\n"
    "  the run's configuration and accounting as attributes of / (docs/recording.md, \"HDF5\").\n"
    "  OUT.h5 is a new file: never IN.srec itself (or a link to it).\n"
    "  Formats: u8 s8 u16 s16 s32 f32 cs16 cf32 (not sim-packed12 or a device's own).\n"
    "  --version              print the version and ABI version\n";

// Blocks per direct-write run: the writer flushes its metadata after each.
constexpr uint64_t kRunBlocks = 256;

int fail(const std::string& message) {
  fmt::print(stderr, "sring-export: {}\n", message);
  return 2;
}

// True if `out` exists and is the file `in` names (the same path, a hard
// link, or a symlink to it, either way): creating the output truncates it,
// and the input is read from a mapping of it, whose pages would then be
// gone (SIGBUS at the next block read).
bool same_file(const std::string& in, const std::string& out) {
  struct stat a {}, b {};
  // stat() follows symlinks: a link to the input is the input.
  if (::stat(in.c_str(), &a) != 0 || ::stat(out.c_str(), &b) != 0) return false;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int convert(const std::string& in, const std::string& out) {
  auto file = recording::RecordingFile::open(in);
  if (!file) return fail(file.error().message);
  if (same_file(in, out)) {
    return fail(fmt::format("{} is {} itself: the output would overwrite the recording it is made from; "
                            "name another file",
                            out, in));
  }
  // Every block's header, order and size checked (the samples are copied as
  // they are; sring-record --check compares them with the pattern).
  const recording::CheckReport report = recording::check(*file, false);
  if (report.bad_blocks > 0) {
    return fail(fmt::format("{} is corrupt ({}); nothing exported (sring-record --check {} says more)", in,
                            report.problem, in));
  }
  auto writer = recording::H5Writer::create(out, file->header());
  if (!writer) return fail(fmt::format("{} -> {}: {}", in, out, writer.error().message));
  const auto* first = reinterpret_cast<const std::byte*>(file->blocks() > 0 ? &file->block(0) : nullptr);
  for (uint64_t i = 0; i < file->blocks(); i += kRunBlocks) {
    const uint64_t count = std::min(kRunBlocks, file->blocks() - i);
    if (auto written = writer->append(first + i * file->header().block_bytes, count); !written) {
      // The writer closes what it holds; the export did not finish.
      return fail(fmt::format("{} -> {}: {} ({} of {} blocks exported)", in, out, written.error().message,
                              writer->blocks_stored(), file->blocks()));
    }
  }
  recording::FileTrailer trailer = file->trailer().value_or(recording::FileTrailer{});
  const bool complete = file->trailer().has_value();
  if (auto finished = writer->finish(trailer, complete); !finished) {
    return fail(fmt::format("{} -> {}: {}", in, out, finished.error().message));
  }
  fmt::print("sring-export: {} -> {} ({}, {} blocks, {} samples, {} gaps)\n", in, out,
             describe(file->layout()), writer->blocks_stored(), writer->samples_stored(), writer->gaps());
  if (!complete) {
    fmt::print(stderr, "sring-export: warning: {} has no trailer (cut short): its accounting is unknown, "
                       "{} says complete = false\n", in, out);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (cli::answered_help_or_version(argc, argv, "sring-export", kUsage)) return 0;
  if (argc != 3) {
    fmt::print(stderr, "sring-export: {}\n{}", argc < 3 ? "say what to convert: IN.srec OUT.h5" : "too many arguments",
               kUsage);
    return 2;
  }
  return convert(argv[1], argv[2]);
}
