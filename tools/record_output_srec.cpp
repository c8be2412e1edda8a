// resolve_container() and open_record_output() for a build without
// libhdf5 (the static sring-record of the QEMU guest): .srec only.
#include "tools/record_output.hpp"

#include <cerrno>

#include "ringlib/error_format.hpp"

namespace sring::recording {

Expected<Container> resolve_container(Container asked, const std::string& path) {
  if (asked == Container::kHdf5 || (asked == Container::kByName && is_hdf5_path(path))) {
    return make_error(EINVAL, "this sring-record (the static build) writes .srec only: record to .srec and "
                              "convert it with sring-export, or use the dynamic sring-record");
  }
  return Container::kSrec;
}

Expected<std::unique_ptr<RecordOutput>> open_record_output(Container, const std::string& path,
                                                           const FileHeader& header, bool direct) {
  return open_srec_output(path, header, direct);
}

}  // namespace sring::recording
