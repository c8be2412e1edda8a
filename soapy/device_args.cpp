#include "soapy/device_args.hpp"

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <stdexcept>

#include "tools/cli.hpp"

namespace sring::soapy {
namespace {

// Device argument -> the tools' option of the same meaning: parsed by
// parse_source_option(), so units ("20M", "4M"), names and limits are the
// tools' own (tools/session.hpp).
struct KeyOption {
  std::string_view key;
  std::string_view option;
};
constexpr KeyOption kProducerKeys[] = {
    {"rate", "--rate"},           {"format", "--format"},       {"channels", "--channels"},
    {"policy", "--policy"},       {"block_size", "--block-size"}, {"ring_size", "--ring-size"},
    {"seed", "--seed"},
};

bool truthy(std::string_view value) { return value == "1" || value == "true" || value == "yes"; }

void parse_as_option(DeviceOptions& options, std::string_view key, std::string_view option, std::string_view value) {
  // cli::Args walks an argv: give it "prog --option value".
  std::string storage[] = {"sring", std::string(option), std::string(value)};
  char* argv[] = {storage[0].data(), storage[1].data(), storage[2].data()};
  cli::Args args(3, argv);
  (void)args.take();
  auto parsed = parse_source_option(option, args, options.source);
  if (!parsed) {
    throw std::invalid_argument("sring: " + std::string(key) + "=" + std::string(value) + ": " +
                                parsed.error().message);
  }
}

}  // namespace

bool is_producer_key(std::string_view key) {
  return std::any_of(std::begin(kProducerKeys), std::end(kProducerKeys),
                     [&](const KeyOption& k) { return k.key == key; });
}

void apply_device_arg(DeviceOptions& options, std::string_view key, std::string_view value) {
  for (const auto& k : kProducerKeys) {
    if (k.key == key) {
      // The session refuses --format/--channels for an sring-sim process
      // (which has its own); layout_given is what tells it.
      parse_as_option(options, key, k.option, value);
      return;
    }
  }
  if (key == "wait") {
    parse_as_option(options, key, "--wait", value);
  } else if (key == "watermark") {
    auto v = cli::parse_size(value, "watermark");
    if (!v) throw std::invalid_argument("sring: " + v.error().message);
    options.watermark = *v;
  } else if (key == "duration") {
    auto v = cli::parse_seconds(value, "duration");
    if (!v) throw std::invalid_argument("sring: " + v.error().message);
    options.duration_s = *v;
  } else {
    throw std::invalid_argument("sring: unknown device argument '" + std::string(key) +
                                "' (sources: sim=1, sim_socket=PATH, device=/dev/sringN; settings: rate, format, "
                                "channels, policy, block_size, ring_size, seed, wait, watermark, duration)");
  }
}

DeviceOptions parse_device_args(const std::map<std::string, std::string>& args) {
  DeviceOptions options;
  int sources = 0;
  if (auto it = args.find("sim"); it != args.end() && truthy(it->second)) {
    options.source.kind = Source::kSim;
    ++sources;
  }
  if (auto it = args.find("sim_socket"); it != args.end()) {
    options.source.kind = Source::kSimSocket;
    options.source.path = it->second;
    ++sources;
  }
  if (auto it = args.find("device"); it != args.end()) {
    options.source.kind = Source::kDevice;
    options.source.path = it->second;
    ++sources;
  }
  if (sources != 1) {
    throw std::invalid_argument(sources == 0 ? "sring: no source: give device=/dev/sringN, sim=1 or sim_socket=PATH"
                                             : "sring: give one source only (device=, sim=1 or sim_socket=)");
  }
  for (const auto& [key, value] : args) {
    if (!is_source_or_soapy_key(key)) apply_device_arg(options, key, value);  // the source is above
  }
  if (options.duration_s != 0 && options.source.kind != Source::kSim) {
    throw std::invalid_argument("sring: duration= is for sim=1 (an sring-sim process takes --duration itself; "
                                "a device runs until the stream is deactivated)");
  }
  return options;
}

bool is_source_or_soapy_key(std::string_view key) {
  static constexpr std::string_view kKeys[] = {"driver", "label", "serial", "type", "sim", "sim_socket", "device"};
  return std::find(std::begin(kKeys), std::end(kKeys), key) != std::end(kKeys);
}

std::string source_key(const SourceOptions& source) {
  switch (source.kind) {
    case Source::kSim: return "sim=1";
    case Source::kSimSocket: return "sim_socket=" + source.path;
    case Source::kDevice: return "device=" + source.path;
    case Source::kNone: break;
  }
  return "none";
}

std::vector<std::string> kernel_rings() {
  std::vector<std::string> rings;
  glob_t found{};
  if (::glob("/dev/sring[0-9]*", 0, nullptr, &found) == 0) {
    for (size_t i = 0; i < found.gl_pathc; ++i) {
      struct stat st {};
      if (::stat(found.gl_pathv[i], &st) == 0 && S_ISCHR(st.st_mode)) rings.emplace_back(found.gl_pathv[i]);
    }
  }
  ::globfree(&found);
  // /dev/sring10 after /dev/sring9.
  std::sort(rings.begin(), rings.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  return rings;
}

}  // namespace sring::soapy
