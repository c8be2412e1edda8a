// --version for every sring tool: the release, and the ABI it speaks.
#pragma once

#include <cstdio>
#include <string_view>

#include "sring/sring_abi.h"
#include "sring/sring_version.h"

namespace sring::cli {

inline void print_version(std::string_view tool) {
  std::printf("%.*s %s (sring ABI %d.%d)\n", static_cast<int>(tool.size()), tool.data(), SRING_VERSION,
              SRING_ABI_VERSION_MAJOR, SRING_ABI_VERSION_MINOR);
}

}  // namespace sring::cli
