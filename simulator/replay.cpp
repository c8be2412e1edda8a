#include "sring/sim/replay.hpp"

#include <cstring>

#include "ringlib/error_format.hpp"

namespace sring::sim {

Expected<std::unique_ptr<RecordingSource>> RecordingSource::open(const std::string& path) {
  auto file = recording::RecordingFile::open(path);
  if (!file) return file.error();
  // The simulated device makes the standard formats and its own packed one;
  // a recording of another device's format has bits it cannot make.
  const SampleLayout& layout = file->layout();
  const std::optional<SampleLayout> makeable = sim_layout(layout.format, layout.channels);
  if (!makeable || *makeable != layout) {
    return make_error(EINVAL, "{}: holds {} ({} bits per sample), which the simulated device cannot make", path,
                      describe(layout), layout.bits_per_sample);
  }
  // The whole file is checked before the device starts: a bad block found
  // mid-replay could only end the stream early.
  const recording::CheckReport report = recording::check(*file, /*verify=*/false);
  if (report.bad_blocks != 0) return make_error(EINVAL, "{}: {}", path, report.problem);
  const uint64_t frames_per_block = file->frames_per_block();
  for (uint64_t i = 0; i < file->blocks(); ++i) {
    if (file->block(i).sample_count != frames_per_block) {
      return make_error(EINVAL, "{}: block {} holds {} frames, not a full block of {}: cannot replay it", path, i,
                        file->block(i).sample_count, frames_per_block);
    }
  }
  return std::make_unique<RecordingSource>(std::move(*file));
}

std::optional<SampleSource::Recorded> RecordingSource::next() {
  if (next_block_ < file_.blocks()) {
    const sring_block_header& block = file_.block(next_block_);
    Recorded recorded{block.sequence, block.first_sample, file_.payload(next_block_)};
    ++next_block_;
    return recorded;
  }
  if (end_given_) return std::nullopt;
  end_given_ = true;
  // With a trailer, the recorded stream went on to its final counters:
  // what came after the last stored block was lost, and is lost again.
  if (const auto& trailer = file_.trailer()) return Recorded{trailer->blocks_produced, trailer->samples_produced, nullptr};
  return std::nullopt;
}

SimConfig RecordingSource::config() const {
  SimConfig config;
  config.sample_rate = header().sample_rate;
  config.block_bytes = header().block_bytes;
  // The replayed ring's producer page and block headers carry the
  // recording's layout (a version 1 file: one 16-bit channel).
  config.sample_format = file_.layout().format;
  config.channels = file_.layout().channels;
  config.pattern_seed = header().pattern_seed;
  config.overrun_policy = header().overrun_policy;
  return config;
}

}  // namespace sring::sim
