#include "tools/ringstat.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <fstream>

#include <fmt/format.h>

#include "ringlib/error_format.hpp"
#include "sring/ring.hpp"

namespace sring::stat {
namespace {

// Kernel rings: one value per sysfs file, read-only, never touching the device.
class SysfsSource final : public RingSource {
 public:
  SysfsSource(std::string name, std::string dir) : name_(std::move(name)), dir_(std::move(dir)) {}
  const std::string& name() const override { return name_; }

  Expected<Snapshot> read() override {
    Snapshot s;
    s.taken = std::chrono::steady_clock::now();
    auto state = text("state");
    if (!state) return state.error();
    s.state = *state;
    struct Field {
      const char* file;
      uint64_t* into;
    } fields[] = {
        {"ring_size", &s.ring_size},         {"head", &s.head},
        {"tail", &s.tail},                   {"blocks_produced", &s.blocks_produced},
        {"samples_produced", &s.samples_produced}, {"blocks_dropped", &s.blocks_dropped},
        {"samples_dropped", &s.samples_dropped},   {"overruns", &s.overruns},
        {"wakeups", &s.wakeups},             {"bad_tails", &s.bad_tails},
        {"high_water", &s.high_water},       {"fill", &s.fill},
    };
    for (const auto& field : fields) {
      auto value = number(field.file);
      if (!value) return value.error();
      *field.into = *value;
    }
    // The layout (ABI 1.4): a module without these files is older, and its
    // rings are 16-bit, one channel; say "?" rather than guess u16 or s16.
    s.layout.reset();
    if (exists("sample_format")) {
      uint64_t layout_fields[3] = {};
      const char* files[3] = {"sample_format", "channels", "bits_per_sample"};
      for (int i = 0; i < 3; ++i) {
        auto value = number(files[i]);
        if (!value) return value.error();
        layout_fields[i] = *value;
      }
      SampleLayout layout{static_cast<uint32_t>(layout_fields[0]), static_cast<uint32_t>(layout_fields[1]),
                          static_cast<uint32_t>(layout_fields[2])};
      if (!layout.valid()) {
        return make_error(EPROTO, "{}: sysfs says format {}, {} channels, {} bits per sample: not a valid layout",
                          name_, layout_fields[0], layout_fields[1], layout_fields[2]);
      }
      s.layout = layout;
    }
    return s;
  }

 private:
  Expected<std::string> text(const char* file) {
    std::ifstream in(dir_ + "/" + file);
    std::string line;
    if (!in || !std::getline(in, line)) {
      return make_error(ENODEV, "{} is gone (was the sring module unloaded?)", name_);
    }
    return line;
  }
  Expected<uint64_t> number(const char* file) {
    auto value = text(file);
    if (!value) return value.error();
    uint64_t result = 0;
    const char* end = value->data() + value->size();
    auto [rest, ec] = std::from_chars(value->data(), end, result);
    if (ec != std::errc() || rest != end || value->empty()) {
      return make_error(EPROTO, "{}: {} holds '{}', not a number", name_, file, *value);
    }
    return result;
  }
  bool exists(const char* file) const {
    struct stat st {};
    return ::stat((dir_ + "/" + file).c_str(), &st) == 0;
  }

  std::string name_;
  std::string dir_;
};

// Ring files (a memfd through /proc/PID/fd/N, a file in /dev/shm): the
// producer page, mapped read-only through a monitor attach.
class FileSource final : public RingSource {
 public:
  FileSource(std::string name, Ring ring) : name_(std::move(name)), ring_(std::move(ring)) {}
  const std::string& name() const override { return name_; }

  Expected<Snapshot> read() override {
    Snapshot s;
    s.taken = std::chrono::steady_clock::now();
    // Monotonic statistics: relaxed loads. head/tail with acquire, as a
    // consumer would read them, so fill is never negative by reordering.
    s.tail = ring_.shared_tail();
    // After the tail: head (loaded in there with acquire) is never behind it.
    const ProducerCounters p = ring_.producer_counters();
    s.head = p.head;
    s.state = std::string(state_name(p.state));
    s.ring_size = ring_.ring_size();
    s.blocks_produced = p.blocks_produced;
    s.samples_produced = p.samples_produced;
    s.blocks_dropped = p.blocks_dropped;
    s.samples_dropped = p.samples_dropped;
    s.overruns = p.overruns;
    s.wakeups = p.wakeups;
    s.bad_tails = p.bad_tails;
    s.high_water = p.high_water;
    s.fill = std::min(s.head - s.tail, s.ring_size);
    // A 1.3 producer's zeros read as one 16-bit channel.
    s.layout = SampleLayout::from_page(ring_.producer());
    return s;
  }

 private:
  std::string name_;
  Ring ring_;
};

std::string human_bytes(uint64_t bytes) {
  if (bytes >= (uint64_t{1} << 30)) return fmt::format("{:.1f}G", bytes / double(1 << 30));
  if (bytes >= (uint64_t{1} << 20)) return fmt::format("{:.1f}M", bytes / double(1 << 20));
  if (bytes >= 1024) return fmt::format("{:.1f}K", bytes / 1024.0);
  return fmt::format("{}", bytes);
}

double percent(uint64_t part, uint64_t whole) { return whole ? 100.0 * part / whole : 0.0; }

}  // namespace

std::optional<uint64_t> forward_delta(uint64_t before, uint64_t after) {
  const uint64_t delta = after - before;  // modular: a wrap past 2^64 is fine
  if (delta > (uint64_t{1} << 63)) return std::nullopt;
  return delta;
}

Report make_report(const std::string& name, const std::optional<Snapshot>& before,
                   const Snapshot& now) {
  Report r;
  r.name = name;
  r.now = now;
  r.lag = std::min(now.fill, now.ring_size);
  if (!before) return r;
  r.seconds = std::chrono::duration<double>(now.taken - before->taken).count();
  const auto head = forward_delta(before->head, now.head);
  const auto samples = forward_delta(before->samples_produced, now.samples_produced);
  const auto dropped = forward_delta(before->samples_dropped, now.samples_dropped);
  const auto wakeups = forward_delta(before->wakeups, now.wakeups);
  const auto bad_tails = forward_delta(before->bad_tails, now.bad_tails);
  if (!head || !samples || !dropped || !wakeups || !bad_tails) {
    r.reset = true;  // show a reset, never a negative rate
    return r;
  }
  r.new_drops = *dropped;
  r.new_bad_tails = *bad_tails;
  if (r.seconds <= 0) return r;
  // samples_produced counts frames; bytes per frame from the layout (16 bits,
  // one channel, for a module that does not say).
  r.samples_per_s = *samples / r.seconds;
  r.mb_per_s = r.samples_per_s * static_cast<double>(now.layout.value_or(SampleLayout{}).frame_bits()) / 8 / 1e6;
  // The consumer's tail is user-written; a backwards move is its bug, not a rate.
  r.consumed_mb_per_s = forward_delta(before->tail, now.tail).value_or(0) / r.seconds / 1e6;
  r.wakeups_per_s = *wakeups / r.seconds;
  return r;
}

std::vector<std::string> list_kernel_rings(const std::string& sysfs_root) {
  std::vector<std::string> names;
  DIR* dir = ::opendir(sysfs_root.c_str());
  if (dir == nullptr) return names;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name.rfind("sring", 0) == 0) names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;  // sring2 before sring10
  });
  return names;
}

Expected<std::unique_ptr<RingSource>> open_source(const std::string& spec,
                                                  const std::string& sysfs_root) {
  std::string name = spec;
  if (name.rfind("/dev/", 0) == 0) name = name.substr(5);
  const bool kernel_name = name.rfind("sring", 0) == 0 && name.find('/') == std::string::npos;
  if (kernel_name) {
    const std::string dir = sysfs_root + "/" + name;
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      return make_error(ENODEV, "no such ring: {} (is the sring module loaded?)", spec);
    }
    std::unique_ptr<RingSource> source = std::make_unique<SysfsSource>(name, dir);
    return source;
  }
  auto ring = Ring::open(spec, Ring::Access::kMonitor);
  if (!ring) return ring.error();
  std::unique_ptr<RingSource> source = std::make_unique<FileSource>(spec, std::move(*ring));
  return source;
}

std::string layout_label(const std::optional<SampleLayout>& layout) {
  if (!layout) return "?";
  std::string label = format_name(layout->format);
  if (layout->channels != 1) label += fmt::format(" x {}", layout->channels);
  return label;
}

std::string fill_bar(uint64_t fill, uint64_t size, int width) {
  const int filled =
      size ? static_cast<int>(std::min<uint64_t>(width, (fill * width + size - 1) / size)) : 0;
  return "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
}

std::string format_json(const Report& r) {
  const Snapshot& s = r.now;
  // Stable field names: scripts and dashboards depend on them.
  return fmt::format(
      "{{\"ring\":\"{}\",\"interval_s\":{:.3f},\"state\":\"{}\",\"reset\":{},"
      "\"format\":{},\"channels\":{},\"bits_per_sample\":{},"
      "\"samples_per_s\":{:.0f},\"mb_per_s\":{:.3f},\"consumed_mb_per_s\":{:.3f},"
      "\"fill_bytes\":{},\"fill_pct\":{:.2f},\"high_water_bytes\":{},\"lag_bytes\":{},"
      "\"ring_size\":{},\"samples_produced\":{},\"blocks_produced\":{},"
      "\"samples_dropped\":{},\"blocks_dropped\":{},\"new_dropped_samples\":{},"
      "\"overruns\":{},\"wakeups\":{},\"wakeups_per_s\":{:.1f},\"bad_tails\":{},"
      "\"head\":{},\"tail\":{}}}",
      r.name, r.seconds, s.state, r.reset ? "true" : "false",
      s.layout ? fmt::format("\"{}\"", format_name(s.layout->format)) : std::string("null"),
      s.layout ? fmt::format("{}", s.layout->channels) : std::string("null"),
      s.layout ? fmt::format("{}", s.layout->bits_per_sample) : std::string("null"), r.samples_per_s, r.mb_per_s,
      r.consumed_mb_per_s, s.fill, percent(s.fill, s.ring_size), s.high_water, r.lag, s.ring_size,
      s.samples_produced, s.blocks_produced, s.samples_dropped, s.blocks_dropped, r.new_drops,
      s.overruns, s.wakeups, r.wakeups_per_s, s.bad_tails, s.head, s.tail);
}

std::string format_header() {
  return fmt::format("{:<10} {:<15} {:<14} {:>8} {:>8} {:>8}  {:<14} {:>6} {:>6} {:>8} {:>12} {:>8} {:>8} {:>7}",
                     "ring", "state", "layout", "MB/s", "MS/s", "out MB/s", "fill", "fill%", "high%", "lag",
                     "dropped", "overruns", "wake/s", "badtail");
}

std::string format_line(const Report& r, bool with_bar) {
  const Snapshot& s = r.now;
  const std::string rate = r.reset ? "reset" : fmt::format("{:.1f}", r.mb_per_s);
  const std::string msps = r.reset ? "reset" : fmt::format("{:.2f}", r.samples_per_s / 1e6);
  const std::string out = r.reset ? "reset" : fmt::format("{:.1f}", r.consumed_mb_per_s);
  const std::string bar = with_bar ? fill_bar(s.fill, s.ring_size, 12) : std::string(14, ' ');
  return fmt::format("{:<10} {:<15} {:<14} {:>8} {:>8} {:>8}  {:<14} {:>5.1f}% {:>5.1f}% {:>8} {:>12} {:>8} {:>8.0f} {:>7}",
                     r.name, s.state, layout_label(s.layout), rate, msps, out, bar, percent(s.fill, s.ring_size),
                     percent(s.high_water, s.ring_size), human_bytes(r.lag), s.samples_dropped,
                     s.overruns, r.wakeups_per_s, s.bad_tails);
}

}  // namespace sring::stat
