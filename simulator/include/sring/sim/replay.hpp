// A recording (docs/recording.md) as the simulated device's sample source:
// sring-sim --replay plays a run back through a ring, so analysis code runs
// on real recordings.
#pragma once

#include <memory>
#include <string>

#include "sring/recording.hpp"
#include "sring/sim/sim_device.hpp"

namespace sring::sim {

class RecordingSource final : public SampleSource {
 public:
  // Refuses a recording whose blocks are not all full blocks of its block
  // size, in stream order (the replay device makes only such blocks).
  [[nodiscard]] static Expected<std::unique_ptr<RecordingSource>> open(const std::string& path);

  // Use open(); public for std::make_unique.
  explicit RecordingSource(recording::RecordingFile file) : file_(std::move(file)) {}

  std::optional<Recorded> next() override;
  const recording::FileHeader& header() const { return file_.header(); }
  const recording::RecordingFile& file() const { return file_; }
  // The configuration the recording was made with (rate, block size,
  // format, seed, policy); callers may change the rate.
  SimConfig config() const;

 private:
  recording::RecordingFile file_;
  uint64_t next_block_ = 0;
  bool end_given_ = false;
};

}  // namespace sring::sim
