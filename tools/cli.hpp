// Small command-line helpers shared by sring's tools: option values with
// unit suffixes, policy names, and a uniform "--name value" walker.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sring/error.hpp"

namespace sring::cli {

// "4M" -> 4 MiB: k, M, G are powers of 1024 (sizes).
Expected<uint64_t> parse_size(std::string_view text, std::string_view option);
// "20M" -> 20,000,000: k, M, G are powers of 1000 (rates, counts).
Expected<uint64_t> parse_count(std::string_view text, std::string_view option);
// Seconds with a fraction: "2.5".
Expected<double> parse_seconds(std::string_view text, std::string_view option);

Expected<uint32_t> parse_overrun_policy(std::string_view name);
std::string_view overrun_policy_name(uint32_t policy);

// Walks argv as "--name value" and "--flag" items.
class Args {
 public:
  Args(int argc, char** argv) : items_(argv + 1, argv + argc) {}
  bool done() const { return next_ >= items_.size(); }
  std::string_view take() { return items_[next_++]; }
  // The value after an option, or an error naming the option.
  Expected<std::string_view> value(std::string_view option);

 private:
  std::vector<std::string_view> items_;
  size_t next_ = 0;
};

}  // namespace sring::cli
