#include "sring/sim/replay.hpp"

#include <cstring>

#include "ringlib/error_format.hpp"

namespace sring::sim {

Expected<std::unique_ptr<RecordingSource>> RecordingSource::open(const std::string& path) {
  auto file = recording::RecordingFile::open(path);
  if (!file) return file.error();
  // The whole file is checked before the device starts: a bad block found
  // mid-replay could only end the stream early.
  const recording::CheckReport report = recording::check(*file, /*verify=*/false);
  if (report.bad_blocks != 0) return make_error(EINVAL, "{}: {}", path, report.problem);
  const uint32_t samples_per_block = (file->header().block_bytes - SRING_BLOCK_HEADER_SIZE) / 2;
  for (uint64_t i = 0; i < file->blocks(); ++i) {
    if (file->block(i).sample_count != samples_per_block) {
      return make_error(EINVAL, "{}: block {} holds {} samples, not a full block of {}: cannot replay it", path,
                        i, file->block(i).sample_count, samples_per_block);
    }
  }
  return std::make_unique<RecordingSource>(std::move(*file));
}

std::optional<SampleSource::Recorded> RecordingSource::next() {
  if (next_block_ < file_.blocks()) {
    const sring_block_header& block = file_.block(next_block_);
    Recorded recorded{block.sequence, block.first_sample, file_.samples(next_block_)};
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
  config.sample_format = header().sample_format;
  config.pattern_seed = header().pattern_seed;
  config.overrun_policy = header().overrun_policy;
  return config;
}

}  // namespace sring::sim
