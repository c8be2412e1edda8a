// The .srec output of tools/record_output.hpp, which every build has.
#include "tools/record_output.hpp"

#include <utility>

#include "tools/record_writer.hpp"

namespace sring::recording {
namespace {

class SrecOutput final : public RecordOutput {
 public:
  explicit SrecOutput(RecordingWriter writer) : writer_(std::move(writer)) {}
  Status append(const std::byte* blocks, uint64_t count) override { return writer_.append(blocks, count); }
  uint64_t blocks_stored() const override { return writer_.blocks_stored(); }
  uint64_t samples_stored(uint64_t frames_per_block) const override {
    return writer_.blocks_stored() * frames_per_block;
  }
  uint64_t blocks_given_back() const override { return writer_.blocks_given_back(); }
  Status finish(FileTrailer& trailer, uint64_t frames_per_block) override {
    return writer_.finish(trailer, frames_per_block);
  }
  std::string_view how() const override {
    return writer_.direct() ? "O_DIRECT, no copy" : "buffered: copied into the page cache";
  }
  bool hdf5() const override { return false; }

 private:
  RecordingWriter writer_;
};

}  // namespace

bool is_hdf5_path(std::string_view path) { return path.ends_with(".h5") || path.ends_with(".hdf5"); }

Expected<std::unique_ptr<RecordOutput>> open_srec_output(const std::string& path, const FileHeader& header,
                                                         bool direct) {
  auto writer = RecordingWriter::create(path, header, direct);
  if (!writer) return writer.error();
  return std::unique_ptr<RecordOutput>(std::make_unique<SrecOutput>(std::move(*writer)));
}

}  // namespace sring::recording
