// resolve_container() and open_record_output() for the dynamic
// sring-record: .srec, or HDF5 through H5Writer (docs/recording.md, "HDF5").
#include "tools/record_output.hpp"

#include <utility>

#include "tools/h5_writer.hpp"

namespace sring::recording {
namespace {

class H5Output final : public RecordOutput {
 public:
  explicit H5Output(H5Writer writer) : writer_(std::move(writer)) {}
  Status append(const std::byte* blocks, uint64_t count) override { return writer_.append(blocks, count); }
  uint64_t blocks_stored() const override { return writer_.blocks_stored(); }
  uint64_t samples_stored(uint64_t) const override { return writer_.samples_stored(); }
  uint64_t blocks_given_back() const override { return 0; }
  Status finish(FileTrailer& trailer, uint64_t) override { return writer_.finish(trailer); }
  std::string_view how() const override {
    return "HDF5, a chunk per block by direct chunk writes, through the page cache";
  }
  bool hdf5() const override { return true; }

 private:
  H5Writer writer_;
};

}  // namespace

Expected<Container> resolve_container(Container asked, const std::string& path) {
  if (asked != Container::kByName) return asked;
  return is_hdf5_path(path) ? Container::kHdf5 : Container::kSrec;
}

Expected<std::unique_ptr<RecordOutput>> open_record_output(Container container, const std::string& path,
                                                           const FileHeader& header, bool direct) {
  if (container != Container::kHdf5) return open_srec_output(path, header, direct);
  auto writer = H5Writer::create(path, header);
  if (!writer) return writer.error();
  return std::unique_ptr<RecordOutput>(std::make_unique<H5Output>(std::move(*writer)));
}

}  // namespace sring::recording
