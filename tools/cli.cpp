#include "tools/cli.hpp"

#include <charconv>
#include <cmath>

#include "ringlib/error_format.hpp"
#include "sring/sring_abi.h"

namespace sring::cli {
namespace {

Expected<uint64_t> parse_with_units(std::string_view text, std::string_view option, uint64_t base) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [rest, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || rest == text.data()) {
    return make_error(EINVAL, "{} wants a number, not '{}'", option, text);
  }
  uint64_t multiplier = 1;
  if (rest != end) {
    switch (*rest) {
      case 'k': case 'K': multiplier = base; break;
      case 'm': case 'M': multiplier = base * base; break;
      case 'g': case 'G': multiplier = base * base * base; break;
      default: return make_error(EINVAL, "{}: unknown unit in '{}'", option, text);
    }
    ++rest;
    if (rest != end && (*rest == 'i' || *rest == 'B' || *rest == 'b')) ++rest;
    if (rest != end && (*rest == 'B' || *rest == 'b')) ++rest;
    if (rest != end) return make_error(EINVAL, "{}: trailing characters in '{}'", option, text);
  }
  if (value > UINT64_MAX / multiplier) return make_error(ERANGE, "{}: '{}' is too large", option, text);
  return value * multiplier;
}

}  // namespace

Expected<uint64_t> parse_size(std::string_view text, std::string_view option) {
  return parse_with_units(text, option, 1024);
}

Expected<uint64_t> parse_count(std::string_view text, std::string_view option) {
  return parse_with_units(text, option, 1000);
}

Expected<double> parse_seconds(std::string_view text, std::string_view option) {
  double value = 0;
  auto [rest, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || rest != text.data() + text.size() || !std::isfinite(value) || value < 0) {
    return make_error(EINVAL, "{} wants seconds, not '{}'", option, text);
  }
  return value;
}

Expected<uint32_t> parse_overrun_policy(std::string_view name) {
  if (name == "drop") return uint32_t{SRING_OVERRUN_DROP_NEWEST};
  if (name == "overwrite") return uint32_t{SRING_OVERRUN_OVERWRITE_OLDEST};
  if (name == "stop") return uint32_t{SRING_OVERRUN_STOP};
  return make_error(EINVAL, "unknown overrun policy '{}' (drop, overwrite or stop)", name);
}

std::string_view overrun_policy_name(uint32_t policy) {
  switch (policy) {
    case SRING_OVERRUN_DROP_NEWEST: return "drop";
    case SRING_OVERRUN_OVERWRITE_OLDEST: return "overwrite";
    case SRING_OVERRUN_STOP: return "stop";
  }
  return "unknown";
}

Expected<std::string_view> Args::value(std::string_view option) {
  if (done()) return make_error(EINVAL, "{} needs a value", option);
  return take();
}

}  // namespace sring::cli
